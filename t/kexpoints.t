# v2 handshakes with clientKeys at the ends of the group: the generator
# (private key 1), 2G, and -G (private key n - 1: the generator's x, y = p - Gy).
# Each is a valid P-256 point: the server decodes it, answers 200 with a
# session, and the keys it derives are the ones the client derives with
# CryptX (a request on the session verifies and opens). The malformed
# points (off the curve, over p, compressed, hybrid, the identity, wrong
# lengths) are t/badinput.t's and t/v2.t's.
use strict;
use warnings;

use FindBin ();
use lib "$FindBin::Bin/lib";

use Apache::Test;
use Apache::TestUtil;
use Crypt::PK::ECC;
use File::Spec::Functions qw(catfile);
use ZeqTest;
use ZeqTest::V2 ();

use constant N => 'ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551';
use constant GX => '6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296';

use constant X2G => '7cf27b188d034f7e8a52380304b51ac3c08969e277f21b35a60b48fc47669978';

# [what, private key (hex), the point's x]
my @KEYS = (['the generator (private key 1)', '01', GX], ['2G (private key 2)', '02', X2G],
            ['-G (private key n - 1)', do { (my $h = N) =~ s/51$/50/; $h }, GX]);

plan tests => 4 * @KEYS, need_lwp;

my $docroot = Apache::Test::vars('documentroot');
my $small = ZeqTest::slurp(catfile($docroot, 'gen', 'small.txt'));

for my $k (@KEYS) {
    my ($what, $hex, $x) = @$k;
    my $pair = Crypt::PK::ECC->new;
    $pair->import_key_raw(pack('H*', ('0' x (64 - length $hex)) . $hex), 'secp256r1');
    my $point = $pair->export_key_raw('public');
    my $s = ZeqTest::V2::handshake(vhost => 'zeq_file', client_key => $pair);
    ok t_cmp(unpack('H*', substr($point, 0, 33)), "04$x",
             "$what: CryptX makes the uncompressed point with x = $x (control)");
    ok t_cmp($s->{res}->code, 200, "handshake with $what: 200");
    ok t_cmp($s->{ok}, 1, "handshake with $what: a session id and a server key");
    my $r = $s->{ok} ? ZeqTest::V2::request(session => $s, path => '/gen/small.txt')
                     : { verified => 0, plain => undef };
    ok t_cmp(($r->{verified} // 0) && ($r->{plain} // '') eq $small ? 'opens' : 'no', 'opens',
             "$what: a GET on the session is sealed with the keys CryptX derives, and opens to the file");
}
