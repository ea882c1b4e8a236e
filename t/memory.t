# Stalled readers pin little memory: eight connections ask for a sealed
# 60 MB static file and read nothing but the answer's head; the resident
# memory of the server's processes grows by less than 64 MB (with the
# whole ciphertext in memory it grew by about 60 MB per connection). Then
# one client reads the same file whole and it opens to the file's bytes.
use strict;
use warnings;

use FindBin ();
use lib "$FindBin::Bin/lib";

use Apache::Test;
use Apache::TestUtil;
use Digest::SHA ();
use File::Spec::Functions qw(catfile);
use IO::Select ();
use IO::Socket::INET ();
use Socket qw(SOL_SOCKET SO_RCVBUF inet_aton pack_sockaddr_in);
use Time::HiRes ();
use ZeqTest;
use ZeqTest::Fixtures ();
use ZeqTest::WebSocket qw(children_of rss_kb);

use constant STALLED   => 8;
use constant MAX_GROWTH_KB => 64 * 1024;
use constant PATH      => '/gen/sixty-mb.bin';
use constant SIZE      => ZeqTest::Fixtures::SIXTY_SIZE;

plan tests => 6, need(need_lwp(),
    { 'the resident memory of processes is read from /proc/PID/status' => -r "/proc/$$/status" });

my $file = catfile(Apache::Test::vars('documentroot'), 'gen', 'sixty-mb.bin');
my $hp = ZeqTest::hostport('zeq_file');
my ($host, $port) = split /:/, $hp;
my $s = handshake(vhost => 'zeq_file');

my $pidfile = catfile(Apache::Test::vars('t_logs'), 'httpd.pid');
my $ppid = do { open my $fh, '<', $pidfile or die "$pidfile: $!"; local $/; <$fh> } // '';
$ppid =~ s/\D//g;

# VmRSS of the server's parent and all its children, in kB, the number of
# processes and "pid:kB" of each.
sub server_rss {
    my @pids = ($ppid, children_of($ppid));
    my $sum = 0;
    my @each;
    for my $pid (@pids) {
        my $kb = rss_kb($pid);
        next unless defined $kb;
        $sum += $kb;
        push @each, "$pid:$kb";
    }
    return ($sum, scalar(@each), join(' ', @each));
}

# Polls until two readings 300 ms apart differ by less than 1 MB (at most
# 10 s); returns the last reading.
sub stable_rss {
    my ($prev) = server_rss();
    my @r;
    my $deadline = Time::HiRes::time() + 10;
    while (1) {
        Time::HiRes::sleep(0.3);
        @r = server_rss();
        last if abs($r[0] - $prev) < 1024 || Time::HiRes::time() > $deadline;
        $prev = $r[0];
    }
    return @r;
}

# A connection with a small receive buffer (set before connect, so that
# the window it announces stays small), asking for the file.
sub stalled_get {
    my $sock = IO::Socket::INET->new(Proto => 'tcp') or die "socket: $!";
    setsockopt($sock, SOL_SOCKET, SO_RCVBUF, pack('i', 4096)) or die "SO_RCVBUF: $!";
    my $addr = inet_aton($host) or die "cannot resolve $host";
    $sock->connect(pack_sockaddr_in($port, $addr)) or die "connect $hp: $!";
    binmode $sock;
    $sock->autoflush(1);
    print {$sock} "GET " . PATH . " HTTP/1.1\r\nHost: $hp\r\n"
        . 'X-E2E-Session: ' . ($s->{id} // '') . "\r\n"
        . 'Accept: ' . E2E_TYPE . "\r\n\r\n";
    return $sock;
}

# Reads the answer's head only (a few kB at most), with a deadline.
sub read_head {
    my ($sock, $deadline) = @_;
    my $buf = '';
    my $sel = IO::Select->new($sock);
    while ($buf !~ /\r\n\r\n/) {
        my $left = $deadline - Time::HiRes::time();
        last if $left <= 0 || !$sel->can_read($left);
        my $n = sysread($sock, $buf, 1024, length $buf);
        last unless $n;
    }
    my ($head) = $buf =~ /^(.*?)\r\n\r\n/s or return 'no head in time';
    my ($status) = $head =~ m{^HTTP/1\.\d (\d{3})};
    my ($ct) = $head =~ /^Content-Type:\s*([^\r\n;]+)/mi;
    my ($cl) = $head =~ /^Content-Length:\s*(\d+)/mi;
    return join ' ', $status // '?', $ct // 'no type', $cl // 'no length';
}

# --- eight stalled readers ------------------------------------------------------
{
    my ($before, $nbefore, $each_before) = stable_rss();
    my @socks = map { stalled_get() } 1 .. STALLED;
    my $deadline = Time::HiRes::time() + 60;
    my @heads = map { read_head($_, $deadline) } @socks;
    my $want = '200 ' . E2E_TYPE . ' ' . (SIZE + OVERHEAD);
    my @wrong = grep { $_ ne $want } @heads;
    ok t_cmp(join('; ', @wrong), '', STALLED . " connections that read nothing: each answered "
             . "\"$want\" (the whole file sealed, so its tag is known)");
    my ($after, $nafter, $each_after) = stable_rss();
    my $growth = $after - $before;
    print STDERR sprintf("# server VmRSS (parent and children): %d kB in %d processes before, "
                         . "%d kB in %d processes with %d stalled readers of %d bytes "
                         . "(growth %d kB)\n",
                         $before, $nbefore, $after, $nafter, STALLED, SIZE, $growth);
    print STDERR "# pid:kB before: $each_before\n# pid:kB with the stalled readers: $each_after\n";
    ok t_cmp($nbefore > 1 ? 'found' : "$nbefore process", 'found',
             "the server's processes are found (parent $ppid and its children)");
    ok t_cmp($growth < MAX_GROWTH_KB ? 'below 64 MB' : "$growth kB", 'below 64 MB',
             STALLED . ' stalled readers of a sealed 60 MB file: the server\'s VmRSS grew by '
             . 'less than 64 MB');
    close $_ for @socks;
}

# --- control: one reader that reads everything -------------------------------------
{
    my $sha = Digest::SHA->new(256);
    $sha->addfile($file, 'b');
    my $expected = $sha->hexdigest;
    my $r = request(path => PATH, session => $s);
    ok t_cmp($r->{status}, 200, 'a client that reads the 60 MB file: 200');
    ok t_cmp(length($r->{body}), SIZE + OVERHEAD, '60 MB: 60,000,028 bytes arrived');
    ok t_cmp(sha256_hex($r->{plain} // ''), $expected,
             '60 MB: the envelope opens to the file (SHA-256 of the file on disk)');
}
