#!/usr/bin/perl
# Computes the protocol v2 test vectors of docs/PROTOCOL.md (section 18.9)
# with an implementation independent of the module's C code (Perl CryptX:
# Crypt::PK::ECC, Crypt::KeyDerivation, Crypt::AuthEnc::GCM).
#
#   perl t/unit/vectors_v2.pl        (needs CryptX; Debian: libcryptx-perl)
#
# The output must match docs/PROTOCOL.md and t/unit/test_v2.c byte for
# byte. Also checks two NIST CAVP ECC CDH P-256 vectors and RFC 5869 test
# cases 1 and 3 with CryptX, so the C tests' copies of them are known good.
use strict;
use warnings;
use Crypt::PK::ECC ();
use Crypt::KeyDerivation qw(hkdf pbkdf2);
use Crypt::AuthEnc::GCM qw(gcm_encrypt_authenticate);
use Digest::SHA qw(sha256 sha256_hex);
use MIME::Base64 qw(encode_base64);

sub hex_of { unpack 'H*', $_[0] }
sub b64url { (my $s = encode_base64($_[0], '')) =~ tr{+/}{-_}; $s =~ s/=+$//; $s }
sub out { printf "%-28s = %s\n", @_ }

# --- independent checks of the primitives -----------------------------------------
my @cavp = (
    ['700c48f77f56584c5cc632ca65640db91b6bacce3a4df6b42ce7cc838833d287',
     'db71e509e3fd9b060ddb20ba5c51dcc5948d46fbf640dfe0441782cab85fa4ac',
     '7d7dc5f71eb29ddaf80d6214632eeae03d9058af1fb6d22ed80badb62bc1a534',
     '46fc62106420ff012e54a434fbdd2d25ccc5852060561e68040dd7778997bd7b'],
    ['809f04289c64348c01515eb03d5ce7ac1a8cb9498f5caa50197e58d43a86a7ae',
     'b29d84e811197f25eba8f5194092cb6ff440e26d4421011372461f579271cda3',
     '38f65d6dce47676044d58ce5139582d568f64bb16098d179dbab07741dd5caf5',
     '057d636096cb80b67a8c038c890e887d1adfa4195e9b3ce241c8a778c59cda67'],
);
for my $i (0 .. $#cavp) {
    my ($qx, $qy, $d, $z) = @{ $cavp[$i] };
    my $peer = Crypt::PK::ECC->new;
    $peer->import_key_raw(pack('H*', "04$qx$qy"), 'secp256r1');
    my $own = Crypt::PK::ECC->new;
    $own->import_key_raw(pack('H*', $d), 'secp256r1');
    my $got = hex_of($own->shared_secret($peer));
    die "CAVP ECC CDH P-256 vector $i: got $got, want $z\n" unless $got eq $z;
}
print "NIST CAVP ECC CDH P-256 COUNT 0 and 1: ok\n";
{
    my $ikm = "\x0b" x 22;
    my $t1 = hex_of(hkdf($ikm, pack('H*', '000102030405060708090a0b0c'), 'SHA256', 42,
                         pack('H*', 'f0f1f2f3f4f5f6f7f8f9')));
    die "RFC 5869 case 1: $t1\n" unless $t1 eq
        '3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865';
    my $t3 = hex_of(hkdf($ikm, '', 'SHA256', 42, ''));
    die "RFC 5869 case 3: $t3\n" unless $t3 eq
        '8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8';
}
print "RFC 5869 HKDF-SHA256 cases 1 and 3: ok\n\n";

# --- the handshake --------------------------------------------------------------------
my $client_d = pack 'H*', 'c1' x 32;         # fixed private scalars, for the vectors only
my $server_d = pack 'H*', '5e' x 32;
my $client_nonce = join '', map { chr } 0x00 .. 0x1f;
my $server_nonce = join '', map { chr } 0x20 .. 0x3f;
my $session_id = '4OHi4-Tl5ufo6err7O3u7_Dx8vP09fb3-Pn6-_z9_v8';
my $secret = 'zeq-e2e test secret';

my $client = Crypt::PK::ECC->new;
$client->import_key_raw($client_d, 'secp256r1');
my $server = Crypt::PK::ECC->new;
$server->import_key_raw($server_d, 'secp256r1');
my $client_point = $client->export_key_raw('public');
my $server_point = $server->export_key_raw('public');
my $z = $client->shared_secret($server);
die "ECDH is not symmetric\n" unless $z eq $server->shared_secret($client);

out 'client private key', hex_of($client_d);
out 'clientKey (point)', hex_of($client_point);
out 'clientKey (base64url)', b64url($client_point);
out 'server private key', hex_of($server_d);
out 'serverKey (point)', hex_of($server_point);
out 'serverKey (base64url)', b64url($server_point);
out 'clientNonce', hex_of($client_nonce);
out 'serverNonce', hex_of($server_nonce);
out 'Z', hex_of($z);

my $salt = $client_nonce . $server_nonce;
my $c2s = hkdf($z, $salt, 'SHA256', 32, 'zeq-e2e/2 c2s');
my $s2c = hkdf($z, $salt, 'SHA256', 32, 'zeq-e2e/2 s2c');
out 'k_c2s', hex_of($c2s);
out 'k_s2c', hex_of($s2c);

my $psk = pbkdf2($secret, 'zeq-e2e/2 psk', 100000, 'SHA256', 32);
out 'PSK of the secret', hex_of($psk);
out 'k_c2s (PSK mode)', hex_of(hkdf($z . $psk, $salt, 'SHA256', 32, 'zeq-e2e/2 c2s'));
out 'k_s2c (PSK mode)', hex_of(hkdf($z . $psk, $salt, 'SHA256', 32, 'zeq-e2e/2 s2c'));

my $transcript = "zeq-e2e/2 handshake\0" . $client_nonce . $server_nonce
    . $client_point . $server_point . $session_id;
out 'transcript length', length $transcript;
out 'transcript SHA-256', sha256_hex($transcript);
print "\n";

# --- sealed messages -----------------------------------------------------------------------
sub aad { join "\0", @_ }

# record i's nonce: nonce_base XOR (0^32 || uint64(i))
sub nonce_of {
    my ($base, $i) = @_;
    my $x = "\0\0\0\0" . pack('N', int($i / 2**32)) . pack('N', $i % 2**32);
    return $base ^ $x;
}

sub seal {
    my ($key, $base, $aad, $pt, $size) = @_;
    $size //= 16384;
    my $out = "\x02" . $base;
    my ($i, $off) = (0, 0);
    do {
        my $n = length($pt) - $off > $size ? $size : length($pt) - $off;
        my $final = $off + $n == length($pt) ? 1 : 0;
        my $header = pack('N', ($final ? 0x80000000 : 0) | $n);
        # (A plain copy: CryptX reads a substr() argument as empty.)
        my $chunk = substr($pt, $off, $n);
        my ($ct, $tag) = gcm_encrypt_authenticate('AES', $key, nonce_of($base, $i), $aad . $header,
                                                  $chunk);
        $out .= $header . $ct . $tag;
        $off += $n;
        $i++;
    } while ($off < length $pt);
    return $out;
}

my $base1 = join '', map { chr } 0x00 .. 0x0b;
my $base2 = join '', map { chr } 0x10 .. 0x1b;
my $base3 = join '', map { chr } 0xa0 .. 0xab;

my $req_aad = aad('zeq-e2e/2 request', $session_id, 0, 'POST', '/cgi-bin/echo?x=1', 'application/json');
out 'request AAD (seq 0)', hex_of($req_aad);
out 'sealed request', hex_of(seal($c2s, $base1, $req_aad, '{"hello":"world"}'));

my $get_aad = aad('zeq-e2e/2 request', $session_id, 1, 'GET', '/api/items?page=2', '');
out 'GET AAD (seq 1)', hex_of($get_aad);
out 'X-E2E-Seal of the GET', b64url(seal($c2s, $base3, $get_aad, ''));

my $res_aad = aad('zeq-e2e/2 response', $session_id, 0, '200', 'application/json', '');
out 'response AAD', hex_of($res_aad);
out 'sealed response', hex_of(seal($s2c, $base2, $res_aad, '{"ok":true}'));

my $big = '';
$big .= sha256("v2 big" . pack('N', length $big)) while length($big) < 40000;
$big = substr($big, 0, 40000);
my $big_sealed = seal($s2c, $base2, $res_aad, $big);
out '40000 bytes: SHA-256', sha256_hex($big);
out '40000 bytes sealed: length', length $big_sealed;
out '40000 bytes sealed: SHA-256', sha256_hex($big_sealed);

my $ws_aad = aad('zeq-e2e/2 ws', $session_id, 2, 'c2s', 0);
out 'ws AAD (seq 2, c2s, 0)', hex_of($ws_aad);
out 'ws message "\x01hello"', hex_of(seal($c2s, $base3, $ws_aad, "\x01hello"));
