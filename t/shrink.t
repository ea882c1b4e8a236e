# A static file cut shorter while its sealed answer is being sent. The
# client reads slowly (a 4 kB receive buffer), so that the server is
# still reading the file when it shrinks to a length that is not a
# multiple of a record or a batch (v2's preadv then comes back short,
# then empty; v1's second pass reads less than it sealed). The client
# must never get a complete, valid answer: v2 sends records that open to
# the file's own first bytes and no final record, v1 an envelope that
# does not open; and the server logs why.
use strict;
use warnings;

use FindBin ();
use lib "$FindBin::Bin/lib";

use Apache::Test;
use Apache::TestUtil;
use File::Path qw(make_path);
use File::Spec::Functions qw(catfile catdir);
use IO::Select;
use ZeqTest;
use ZeqTest::Fixtures ();
use ZeqTest::V2 ();

use constant SIZE => 24 * 1024 * 1024;         # far more than the sockets hold
use constant CUT => 12 * 1024 * 1024 + 12_345; # what is left of it

plan tests => 6 + 6, need_lwp;

my $dir = catdir(ZeqTest::Fixtures::gen_dir(), 'shrink');
make_path($dir);
my $hp = ZeqTest::hostport('zeq_file');

# Each 64 KiB block starts with its number: data from the wrong place,
# or zeros, is not the file's.
my $block = det_bytes(65536, 'shrink');
sub content {
    my ($n) = @_;
    my $out = '';
    my $i = 0;
    $out .= sprintf('%08d', $i++) . substr($block, 8) while length($out) < $n;
    return substr($out, 0, $n);
}
my $whole = content(SIZE);

sub fresh_file {
    my ($name) = @_;
    my $path = catfile($dir, $name);
    open my $fh, '>:raw', "$path.tmp" or die "$path.tmp: $!";
    print {$fh} $whole;
    close $fh or die "$path.tmp: $!";
    chmod 0644, "$path.tmp";
    rename "$path.tmp", $path or die "$path: $!";
    return $path;
}

# Reads what comes until the connection ends (or 60 s pass).
sub read_rest {
    my ($sock) = @_;
    my $sel = IO::Select->new($sock);
    my $buf = '';
    while ($sel->can_read(60)) {
        my $n = sysread($sock, $buf, 1 << 16, length $buf);
        last unless $n;
    }
    return $buf;
}

# --- v2: records of the file's first bytes, no final record -------------------------------
{
    my $path = fresh_file('v2.bin');
    my $target = '/gen/shrink/v2.bin';
    my $s = ZeqTest::V2::handshake(vhost => 'zeq_file');
    my $seal = ZeqTest::V2::b64url(ZeqTest::V2::seal(
        $s->{c2s}, ZeqTest::V2::request_aad($s, 0, 'GET', $target, undef), ''));
    my $mark = log_mark();
    my $sock = slow_socket(vhost => 'zeq_file');
    print {$sock} "GET $target HTTP/1.1\r\nHost: $hp\r\nAccept: " . E2E_TYPE . "\r\n"
        . "X-E2E-Session: $s->{id}\r\nX-E2E-Seq: 0\r\nX-E2E-Seal: $seal\r\n"
        . "Connection: close\r\n\r\n";
    my ($res, $first) = read_head($sock);
    truncate $path, CUT or die "truncate $path: $!";
    my $body = $first . read_rest($sock);
    close $sock;
    ok t_cmp($res ? $res->code : 'no head', 200, 'v2: the answer started (200)');
    ok t_cmp($res ? $res->header('Content-Length') : undef, ZeqTest::V2::sealed_len(SIZE),
             'v2: its Content-Length is that of the whole file sealed');
    my $plain = '';
    my $r = ZeqTest::V2::reader($s->{s2c}, ZeqTest::V2::response_aad($s, 0, 200,
                                    $res ? $res->header('X-E2E-Content-Type') : undef, undef),
                                sub { $plain .= $_[0]{plain} });
    $r->feed($body);
    ok t_cmp($r->{error} // 'none', 'none', 'v2: every record that came verifies');
    ok t_cmp($r->{final}, 0, 'v2: no final record: the client sees the answer cut');
    ok t_cmp(length($plain) < SIZE && $plain eq substr($whole, 0, length $plain)
             ? 'a prefix' : length($plain) . ' bytes that are not a prefix of the file',
             'a prefix', 'v2: what opened is a proper prefix of the file as it was');
    my $log = log_since($mark);
    ok t_cmp($log =~ /ZEQ50003.*cut short.*reading the file failed/ ? 1 : 0, 1,
             'v2: the error log says the answer was cut (ZEQ50003, reading the file failed)');
}

# --- v1: the envelope does not open --------------------------------------------------------
{
    my $path = fresh_file('v1.bin');
    my $target = '/gen/shrink/v1.bin';
    my $s = handshake(vhost => 'zeq_file');
    my $mark = log_mark();
    my $sock = slow_socket(vhost => 'zeq_file');
    print {$sock} "GET $target HTTP/1.1\r\nHost: $hp\r\nAccept: " . E2E_TYPE . "\r\n"
        . "X-E2E-Session: $s->{id}\r\nConnection: close\r\n\r\n";
    my ($res, $first) = read_head($sock, 60);
    truncate $path, CUT or die "truncate $path: $!";
    my $body = $first . read_rest($sock);
    close $sock;
    ok t_cmp($res ? $res->code : 'no head', 200, 'v1: the answer started (200)');
    ok t_cmp($res ? $res->header('Content-Length') : undef, SIZE + OVERHEAD,
             'v1: its Content-Length is that of the whole file sealed');
    ok t_cmp(length($body) < SIZE + OVERHEAD ? 1 : 0, 1,
             'v1: fewer bytes than its Content-Length came');
    my $pt = open_envelope($s->{key}, $body);
    ok t_cmp(defined $pt ? 'it opened' : 'no', 'no', 'v1: the envelope does not open');
    my $log = log_since($mark);
    ok t_cmp($log =~ /ZEQ50004: sealed answer cut short after (\d+) bytes: the file became shorter/ ? $1 : 'no ZEQ50004',
             qr/^\d+$/, 'v1: the error log says the answer was cut (ZEQ50004, the file became shorter)');
    ok t_cmp(scalar(() = $log =~ /ZEQ50004/g), 1, 'v1: and says it once');
}
