# Bodies beyond the sealer's 64 KiB of memory: a 5,000,000-byte CGI answer
# over HTTP/1.1 (with a reader that lags behind, so that the server's
# spill file can be seen while the answer is sent) and HTTP/2, a large
# proxied answer, a static file of several 64 KiB reads and an odd length
# with a Range header, a subrequest's file (mod_autoindex's HeaderName),
# server-side includes (a file between two runs of text, under and over
# the 1 MiB that v1 seals in one pass).
# Each opens to exactly the right bytes, and the server's temporary
# directory stays empty: the spill file is unlinked at once, holds
# ciphertext only and is closed once the answer is sent.
use strict;
use warnings;

use FindBin ();
use lib "$FindBin::Bin/lib";

use Apache::Test;
use Apache::TestUtil;
use Digest::SHA qw(sha256);
use File::Spec::Functions qw(catfile);
use Time::HiRes ();
use ZeqTest;
use ZeqTest::Fixtures ();
use ZeqTest::WebSocket qw(children_of);

use constant MEMORY => 64 * 1024;     # ciphertext the sealer keeps in memory
use constant CGI_SIZE => 5_000_000;
use constant PROXY_SIZE => 5_000_000;
use constant ODD_SIZE => ZeqTest::Fixtures::ODD_SIZE;

plan tests => 12 + 5 + 4 + 1 + 2 * 5 + 6 + 2 * (1 + 2 * 2 + 1), need(need_lwp(),
    { 'the server\'s open files are read from /proc/PID/fd' => -d "/proc/$$/fd" });

my $tmp = ZeqTest::Fixtures::server_tmp();
my $hp = ZeqTest::hostport('zeq_file');
my $s = handshake(vhost => 'zeq_file');
my $s2 = handshake(vhost => 'zeq_h2');

my $pidfile = catfile(Apache::Test::vars('t_logs'), 'httpd.pid');
my $ppid = do { open my $fh, '<', $pidfile or die "$pidfile: $!"; local $/; <$fh> } // '';
$ppid =~ s/\D//g;

# What t/cgi-bin/echo.cgi answers to ?size=N, computed here: SHA-256 of
# "cgi" and a 32-bit big-endian counter, concatenated, cut to N bytes.
sub cgi_bytes {
    my ($n) = @_;
    my $out = '';
    my $i = 0;
    $out .= sha256('cgi' . pack('N', $i++)) while length($out) < $n;
    return substr($out, 0, $n);
}

sub slurp {
    open my $fh, '<:raw', $_[0] or return undef;
    local $/;
    my $d = <$fh>;
    close $fh;
    return $d;
}

sub tmp_entries {
    opendir my $dh, $tmp or return ('(cannot read the directory)');
    my @e = grep { !/^\.\.?$/ } readdir $dh;
    closedir $dh;
    return @e;
}

# The spill files the server's processes hold open: [pid, fd, link] each.
sub open_spools {
    my @found;
    for my $pid (children_of($ppid)) {
        opendir my $dh, "/proc/$pid/fd" or next;
        for my $fd (grep { /^\d+$/ } readdir $dh) {
            my $link = readlink "/proc/$pid/fd/$fd" // next;
            push @found, [$pid, $fd, $link] if $link =~ m{/zeq-e2e-spool\.[^/]*$};
        }
        closedir $dh;
    }
    return @found;
}

my $cgi_pt = cgi_bytes(CGI_SIZE);

# --- HTTP/1.1, a reader that lags: the spill file while the answer is sent ----------
{
    my @before = tmp_entries();
    my $sock = slow_socket(vhost => 'zeq_file');
    print {$sock} "GET /cgi-bin/echo.cgi?size=" . CGI_SIZE . " HTTP/1.1\r\nHost: $hp\r\n"
        . 'X-E2E-Session: ' . ($s->{id} // '') . "\r\n"
        . 'Accept: ' . E2E_TYPE . "\r\nConnection: close\r\n\r\n";
    my ($head, $got) = read_head($sock, 30);
    my $cl = $head ? $head->header('Content-Length') // 0 : 0;
    ok t_cmp($head ? $head->code . ' ' . media_type($head->header('Content-Type')) . " $cl" : 'no head',
             '200 ' . E2E_TYPE . ' ' . (CGI_SIZE + OVERHEAD),
             'CGI answer of 5,000,000 bytes: 200, the envelope type, Content-Length 5000028');

    # The answer is on its way (its head is out) but the client reads slowly.
    my @spools = open_spools();
    my $link = @spools ? $spools[0][2] : '';
    ok t_cmp(scalar(@spools), 1,
             'while the answer is sent: one server process holds a spill file open');
    ok t_cmp($link, qr/^\Q$tmp\E\/zeq-e2e-spool\.[^\/]+ \(deleted\)$/,
             'the spill file is in the server\'s temporary directory, and unlinked');
    ok t_cmp(join(' ', tmp_entries()), '',
             'while the spill file is open, the server\'s temporary directory lists nothing');
    ok t_cmp(scalar(@before), 0, 'the server\'s temporary directory was empty before');
    my $spilled = @spools ? slurp("/proc/$spools[0][0]/fd/$spools[0][1]") // '' : '';
    my $in_memory = CGI_SIZE - length $spilled;
    ok t_cmp($in_memory >= 0 && $in_memory <= MEMORY ? 'at most 64 KiB' : "$in_memory bytes",
             'at most 64 KiB',
             'the spill file holds all of the ciphertext but at most 64 KiB (the memory bound) '
             . '(' . length($spilled) . ' bytes)');

    # Now read everything.
    $got .= read_bytes($sock, $cl - length($got), 60) if $cl > length $got;
    close $sock;
    my $pt = open_envelope($s->{key}, $got);
    ok t_cmp(length($got), CGI_SIZE + OVERHEAD, 'read on: all 5,000,028 bytes arrive');
    ok t_cmp(digest_of($pt), digest_of($cgi_pt),
             'the envelope opens to exactly the 5,000,000 bytes of the CGI');
    my $ct_tail = length($spilled) ? substr($got, -length($spilled)) : 'x';
    ok t_cmp(digest_of($spilled), digest_of($ct_tail),
             'the spill file held exactly the tail of the ciphertext sent');
    ok t_cmp(length($spilled) && $spilled eq substr($cgi_pt, -length($spilled)) ? 'plaintext' : 'not plaintext',
             'not plaintext', 'the spill file did not hold the plaintext');

    my $deadline = Time::HiRes::time() + 10;
    my @left;
    while (1) {
        @left = open_spools();
        last if !@left || Time::HiRes::time() > $deadline;
        Time::HiRes::sleep(0.1);
    }
    ok t_cmp(join(' ', map { $_->[2] } @left), '',
             'once the answer is sent, no server process holds a spill file open');
    ok t_cmp(join(' ', tmp_entries()), '', 'the server\'s temporary directory is empty after');
}

# --- HTTP/2 ----------------------------------------------------------------------------
{
    my $r = request(vhost => 'zeq_h2', via => 'curl', path => '/cgi-bin/echo.cgi?size=' . CGI_SIZE,
                    session => $s2);
    ok t_cmp($r->{http_version}, '2', 'CGI answer of 5,000,000 bytes over HTTP/2 (curl)');
    ok t_cmp($r->{status}, 200, 'HTTP/2: 200');
    ok t_cmp($r->{h}->header('Content-Length') // length($r->{body}), CGI_SIZE + OVERHEAD,
             'HTTP/2: 5,000,028 bytes');
    ok t_cmp(digest_of($r->{plain}), digest_of($cgi_pt),
             'HTTP/2: the envelope opens to exactly the CGI\'s bytes');
    ok t_cmp(join(' ', tmp_entries()), '', 'HTTP/2: the server\'s temporary directory is empty after');
}

# --- a proxied answer ------------------------------------------------------------------------
{
    my $r = request(path => '/proxy/bytes?n=' . PROXY_SIZE, session => $s);
    ok t_cmp($r->{status}, 200, 'proxied answer of 5,000,000 bytes: 200');
    ok t_cmp($r->{h}->header('Content-Length'), PROXY_SIZE + OVERHEAD,
             'proxied: Content-Length 5000028');
    ok t_cmp(digest_of($r->{plain}), digest_of(det_bytes(PROXY_SIZE, 'backend')),
             'proxied: the envelope opens to exactly the backend\'s bytes');
    ok t_cmp(join(' ', tmp_entries()), '', 'proxied: the server\'s temporary directory is empty after');
}

# --- a static file of several 64 KiB reads and an odd length, Range ignored ----------------------
{
    my $odd = slurp(catfile(Apache::Test::vars('documentroot'), 'gen', 'odd.bin')) // '';
    ok t_cmp(length($odd), ODD_SIZE, 'the static file has ' . ODD_SIZE . ' bytes (3 x 64 KiB + 12345)');
    for my $case (['HTTP/1.1', 'zeq_file', $s, 'lwp'], ['HTTP/2', 'zeq_h2', $s2, 'curl']) {
        my ($proto, $vhost, $sess, $via) = @$case;
        my $r = request(vhost => $vhost, via => $via, path => '/gen/odd.bin', session => $sess,
                        headers => [Range => 'bytes=65530-65545']);
        my $version = $via eq 'curl' ? 'HTTP/' . ($r->{http_version} // '?') : $r->{res}->protocol // '?';
        ok t_cmp($version, $proto, "static file with Range over $proto");
        ok t_cmp($r->{status}, 200, "$proto: static file of " . ODD_SIZE . ' bytes with Range: 200, not 206');
        ok t_cmp($r->{h}->header('Content-Range'), undef, "$proto: no Content-Range");
        ok t_cmp($r->{h}->header('Content-Length') // length($r->{body}), ODD_SIZE + OVERHEAD,
                 "$proto: " . (ODD_SIZE + OVERHEAD) . ' bytes');
        ok t_cmp(digest_of($r->{plain}), digest_of($odd),
                 "$proto: the envelope opens to the whole file");
    }
}

# --- a subrequest's file: mod_autoindex's HeaderName ------------------------------------------------
# mod_autoindex runs a subrequest for HEADER.html, whose file the sealer
# sees, and destroys the subrequest (closing the file) before the listing
# ends and the answer is sent. The header starts at an offset of the body
# that is no multiple of 16. It is over 1 MiB: v1 reads it again as the
# answer is sent, after the subrequest is gone.
{
    my $header = slurp(catfile(Apache::Test::vars('documentroot'), 'gen', 'listing', 'HEADER.html')) // '';
    my $p = request(path => '/gen/listing/');
    my $at = index($p->{body}, $header);
    ok t_cmp($p->{status} . ($at >= 0 && length $header ? ' with the header' : ' without the header'),
             '200 with the header', 'plaintext listing of /gen/listing/: 200 with HEADER.html in it (control)');
    ok t_cmp($at > 0 && $at % 16 ? 'unaligned' : "at $at", 'unaligned',
             'the header starts at an offset that is no multiple of 16');
    my $r = request(path => '/gen/listing/', session => $s);
    ok t_cmp($r->{status}, 200, 'sealed listing with a header file: 200');
    ok t_cmp($r->{opened}, 1, 'sealed listing: the envelope opens');
    ok t_cmp(digest_of($r->{plain}), digest_of($p->{body}),
             'sealed listing: opens to the plaintext listing, header included');
    my $r2 = request(vhost => 'zeq_h2', via => 'curl', path => '/gen/listing/', session => $s2);
    ok t_cmp("$r2->{status} " . digest_of($r2->{plain}), "200 " . digest_of($p->{body}),
             'sealed listing over HTTP/2: 200, opens to the same listing');
}

# --- server-side includes: a file between two runs of text -------------------------------------------
# Over 64 KiB of text first (it spills), the included file, more text.
# page.shtml includes odd.bin (under 1 MiB: v1 reads and encrypts it once,
# its ciphertext joins the spill file); big.shtml includes big.bin (the
# ciphertext goes out as a spill file segment, the file encrypted again as
# it is sent, a second segment of the same spill file).
for my $page (['page.shtml', 'odd.bin'], ['big.shtml', 'big.bin']) {
    my ($shtml, $file) = @$page;
    my $inc = slurp(catfile(Apache::Test::vars('documentroot'), 'gen', $file)) // '';
    my $want = ZeqTest::Fixtures::ssi_text() . $inc . ZeqTest::Fixtures::SSI_TAIL;
    my $p = request(path => "/gen/ssi/$shtml");
    ok t_cmp("$p->{status} " . digest_of($p->{body}), '200 ' . digest_of($want),
             "plaintext SSI page $shtml: 70,007 bytes of text, $file, the tail (control)");
    for my $case (['HTTP/1.1', 'zeq_file', $s, 'lwp'], ['HTTP/2', 'zeq_h2', $s2, 'curl']) {
        my ($proto, $vhost, $sess, $via) = @$case;
        my $r = request(vhost => $vhost, via => $via, path => "/gen/ssi/$shtml", session => $sess);
        ok t_cmp($r->{status}, 200, "sealed SSI page $shtml over $proto: 200");
        ok t_cmp(digest_of($r->{plain}), digest_of($want),
                 "sealed SSI page $shtml over $proto: opens to the text, $file and the tail");
    }
    ok t_cmp(join(' ', tmp_entries()), '', "SSI $shtml: the server's temporary directory is empty after");
}
