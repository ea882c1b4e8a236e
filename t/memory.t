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

# A connection with a 4 kB receive buffer that asks for the file sealed.
sub stalled_get {
    my $sock = slow_socket(vhost => 'zeq_file');
    print {$sock} "GET " . PATH . " HTTP/1.1\r\nHost: $hp\r\n"
        . 'X-E2E-Session: ' . ($s->{id} // '') . "\r\n"
        . 'Accept: ' . E2E_TYPE . "\r\n\r\n";
    return $sock;
}

# "status type length" of a response head.
sub head_of {
    my ($res) = @_;
    return 'no head in time' unless $res;
    return join ' ', $res->code // '?', media_type($res->header('Content-Type')) || 'no type',
                     $res->header('Content-Length') // 'no length';
}

# --- eight stalled readers ------------------------------------------------------
{
    my ($before, $nbefore, $each_before) = stable_rss();
    my @socks = map { stalled_get() } 1 .. STALLED;
    my $t0 = Time::HiRes::time();
    my @heads = map { head_of((read_head($_, $t0 + 60 - Time::HiRes::time()))[0]) } @socks;
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
