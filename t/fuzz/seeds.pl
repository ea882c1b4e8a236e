#!/usr/bin/perl
# Writes the seed corpus of the fuzz harnesses, t/fuzz/corpus/NAME/ (one
# file a seed: valid inputs and near misses), with an implementation
# independent of the module's C code (Perl CryptX: Crypt::AuthEnc::GCM,
# Crypt::PK::ECC, Crypt::KeyDerivation). The keys and the AAD are those of
# t/fuzz/fuzz.h.
#
#   perl t/fuzz/seeds.pl        (needs CryptX; Debian: libcryptx-perl)
#
# It replaces what it writes and leaves other files alone; the output is
# the same on every run.
use strict;
use warnings;
use Crypt::AuthEnc::GCM qw(gcm_encrypt_authenticate);
use Crypt::KeyDerivation qw(hkdf);
use Crypt::PK::ECC ();
use Digest::SHA qw(sha256);
use File::Basename qw(dirname);
use File::Path qw(make_path);
use Math::BigInt;
use MIME::Base64 qw(encode_base64);

my $dir = dirname(__FILE__) . '/corpus';
my $key = 'zeq-e2e fuzz key: 32 bytes long.';
my $aad = join "\0", 'zeq-e2e/2 request', 'fuzz-session', 7, 'POST', '/fuzz?x=1',
    'application/json';
my $record_ikm = 'zeq-e2e fuzz record key, 32 bytes or more';
my $record_sid = 'fuzz-session';
die "the fuzz key is not 32 bytes\n" unless length $key == 32;

my %count;
sub seed {
    my ($harness, $name, $bytes) = @_;
    make_path("$dir/$harness");
    open my $fh, '>:raw', "$dir/$harness/$name" or die "$dir/$harness/$name: $!\n";
    print {$fh} $bytes;
    close $fh or die "$dir/$harness/$name: $!\n";
    $count{$harness}++;
}
sub b64url { (my $s = encode_base64($_[0], '')) =~ tr{+/}{-_}; $s =~ s/=+$//; $s }
sub flip { my ($s, $at) = @_; substr($s, $at, 1) = chr(ord(substr($s, $at, 1)) ^ 1); $s }
sub filler { my ($n, $seed) = @_; my $s = ''; $s .= sha256("$seed" . length $s) while length $s < $n; substr($s, 0, $n) }

# --- v1 envelopes: iv || tag || ciphertext ---------------------------------------
sub envelope {
    my ($iv, $pt) = @_;
    my ($ct, $tag) = gcm_encrypt_authenticate('AES', $key, $iv, '', $pt);
    return $iv . $tag . $ct;
}
my $iv = join '', map { chr } 1 .. 12;
for my $n (0, 1, 15, 16, 17, 100, 200) {
    seed('envelope', "valid-$n", envelope($iv, filler($n, 'v1')));
}
my $env = envelope($iv, 'hello, envelope');
seed('envelope', 'tag-flipped', flip($env, 12));
seed('envelope', 'ciphertext-flipped', flip($env, 30));
seed('envelope', 'iv-flipped', flip($env, 0));
seed('envelope', 'cut-27', substr($env, 0, 27));
seed('envelope', 'cut-28', substr($env, 0, 28));
seed('envelope', 'cut-29', substr($env, 0, 29));
seed('envelope', 'empty', '');

# --- v2 sealed messages: 0x02 || nonce_base || records ---------------------------
# record i's nonce: nonce_base XOR (0^32 || uint64(i))
sub nonce_of {
    my ($base, $i) = @_;
    return $base ^ ("\0\0\0\0" . pack('N', int($i / 2**32)) . pack('N', $i % 2**32));
}
# Seals the chunks as records; $flags (optional) gives each header's top
# byte (default: 0x80 on the last one only).
sub message {
    my ($base, $chunks, $flags, $k, $a) = @_;
    $k //= $key;
    $a //= $aad;
    my $out = "\x02" . $base;
    for my $i (0 .. $#$chunks) {
        my $f = $flags ? $flags->[$i] : ($i == $#$chunks ? 0x80 : 0);
        my $chunk = $chunks->[$i];
        my $header = pack('N', ($f << 24) | length $chunk);
        my ($ct, $tag) = gcm_encrypt_authenticate('AES', $k, nonce_of($base, $i), $a . $header,
                                                  "$chunk");
        $out .= $header . $ct . $tag;
    }
    return $out;
}
sub chunks { my ($pt, $size) = @_; my @c; push @c, substr($pt, 0, $size, '') while length $pt; @c ? \@c : [''] }
my $base = join '', map { chr } 0xa0 .. 0xab;
seed('record', 'empty', message($base, ['']));
seed('record', 'hello', message($base, ['hello, v2']));
seed('record', '64-in-16', message($base, chunks(filler(64, 'r16'), 16)));
seed('record', '300-in-64', message($base, chunks(filler(300, 'r64'), 64)));
seed('record', '20-in-1', message($base, chunks(filler(20, 'r1'), 1)));
seed('record', '100-in-7', message($base, chunks(filler(100, 'r7'), 7)));
seed('record', 'empty-records-between', message($base, ['ab', '', '', 'c', '']));
my $msg = message($base, chunks(filler(40, 'm'), 10));
seed('record', 'flipped-in-record-2', flip($msg, 13 + 30 + 5));
seed('record', 'flipped-header', flip($msg, 13 + 3));
seed('record', 'flipped-base', flip($msg, 1));
seed('record', 'bytes-after-final', $msg . "\x00");
seed('record', 'message-twice', $msg . $msg);
seed('record', 'cut-in-record-3', substr($msg, 0, 13 + 2 * 30 + 7));
seed('record', 'cut-after-record-1', substr($msg, 0, 13 + 30));
seed('record', 'prefix-only', substr($msg, 0, 13));
seed('record', 'no-final-record', message($base, ['ab', 'cd'], [0, 0]));
seed('record', 'reserved-bit', message($base, ['ab'], [0x81]));
seed('record', 'length-over-maximum', "\x02" . $base . "\x80\xff\xff\xff" . ("\0" x 20));
seed('record', 'version-1-byte', "\x01" . substr($msg, 1));
seed('record', 'another-key', message($base, ['hello'], undef, 'k' x 32));
seed('record', 'another-aad', message($base, ['hello'], undef, undef, "$aad!"));
seed('record', 'records-swapped', do {
    my $m = message($base, ['abcd', 'efgh', 'ijkl']);
    substr($m, 0, 13) . substr($m, 13 + 24, 24) . substr($m, 13, 24) . substr($m, 13 + 48);
});

# --- seals: base64url of a message under the same key and AAD -------------------
my $seal = message($base, ['']);
seed('seal', 'valid', b64url($seal));
seed('seal', 'holds-a-byte', b64url(message($base, ['x'])));
seed('seal', 'holds-33-bytes', b64url(message($base, [filler(33, 's')])));
seed('seal', 'holds-34-bytes', b64url(message($base, [filler(34, 's')])));
seed('seal', 'flipped', b64url(flip($seal, 20)));
seed('seal', 'padded', b64url($seal) . '=');
seed('seal', 'standard-alphabet', encode_base64($seal, ''));
seed('seal', 'cut', substr(b64url($seal), 0, 40));
seed('seal', 'not-base64url', '!!!');
seed('seal', 'empty', '');

# --- handshake bodies ------------------------------------------------------------
my $client = Crypt::PK::ECC->new;
$client->import_key_raw(pack('H*', 'c1' x 32), 'secp256r1');
my $point = $client->export_key_raw('public');
my $nonce = unpack 'H*', join '', map { chr } 0 .. 31;
my $ck = b64url($point);
my %bodies = (
    'v1' => qq({"clientNonce":"$nonce"}),
    'v1-version' => qq({"version":1,"clientNonce":"$nonce"}),
    'v2' => qq({"version":2,"clientNonce":"$nonce","clientKey":"$ck"}),
    'v2-psk' => qq({"version":2,"psk":true,"clientNonce":"$nonce","clientKey":"$ck"}),
    'v2-blanks' => qq( \t{ "version" : 2 , "clientKey" : "$ck" , "clientNonce" : "$nonce" }\r\n),
    'v2-off-curve' => qq({"version":2,"clientNonce":"$nonce","clientKey":") . b64url(flip($point, 64)) . '"}',
    'v2-uppercase-nonce' => qq({"version":2,"clientNonce":") . uc($nonce) . qq(","clientKey":"$ck"}),
    'version-3' => qq({"version":3,"clientNonce":"$nonce"}),
    'version-string' => qq({"version":"2","clientNonce":"$nonce"}),
    'version-fraction' => qq({"version":2.5,"clientNonce":"$nonce"}),
    'version-huge' => qq({"version":0111111111111111111111111111}),
    'version-exponent' => qq({"version":2e0,"clientNonce":"$nonce","clientKey":"$ck"}),
    'version-infinite' => qq({"version":1e400,"clientNonce":"$nonce"}),
    'psk-number' => qq({"version":2,"psk":1,"clientNonce":"$nonce","clientKey":"$ck"}),
    'duplicate-keys' => qq({"clientNonce":"$nonce","clientNonce":"00"}),
    'nested' => qq({"clientNonce":{"clientNonce":"$nonce"}}),
    'deeply-nested' => ('[' x 1000) . (']' x 1000),
    'array' => qq(["$nonce"]),
    'escapes' => qq({"clientNonce":"\\u0030$nonce"}),
    'nul-escape' => qq({"clientNonce":"\\u0000$nonce"}),
    'invalid-utf8' => qq({"clientNonce":"\xc3\x28$nonce"}),
    'trailing-garbage' => qq({"clientNonce":"$nonce"}x),
    'two-values' => qq({"clientNonce":"$nonce"} {}),
    'null' => 'null',
    'truncated' => qq({"clientNonce":"$nonce),
    'key-padded' => qq({"version":2,"clientNonce":"$nonce","clientKey":"$ck="}),
    'max-size' => qq({"clientNonce":"$nonce"}) . (' ' x (4096 - 2 - length qq({"clientNonce":"$nonce"}))) . "\r\n",
    'over-max-size' => qq({"clientNonce":"$nonce"}) . (' ' x 4096),
);
seed('handshake', $_, $bodies{$_}) for sort keys %bodies;

# --- P-256 points ------------------------------------------------------------------
my $p = Math::BigInt->from_hex('ffffffff00000001000000000000000000000000ffffffffffffffffffffffff');
my $b = Math::BigInt->from_hex('5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604b');
sub be32 { my $h = $_[0]->copy->as_hex; $h =~ s/^0x//; length $h <= 64 ? pack('H*', ('0' x (64 - length $h)) . $h) : undef }
# The smallest x on the curve: (x, y) is valid, (x + p, y) the same point
# with a coordinate that is not reduced.
my ($sx, $sy);
for my $x (1 .. 64) {
    my $bx = Math::BigInt->new($x);
    my $rhs = ($bx->copy->bpow(3) - 3 * $bx + $b)->bmod($p);
    my $y = $rhs->copy->bmodpow(($p + 1) / 4, $p);
    if (($y->copy->bmul($y))->bmod($p) == $rhs) { ($sx, $sy) = ($bx, $y); last }
}
die "no small x on P-256\n" unless defined $sx;
my $server = Crypt::PK::ECC->new;
$server->import_key_raw(pack('H*', '5e' x 32), 'secp256r1');
seed('point', 'client', $point);
seed('point', 'server', $server->export_key_raw('public'));
seed('point', 'client-compressed', $client->export_key_raw('public_compressed'));
seed('point', 'server-compressed', $server->export_key_raw('public_compressed'));
seed('point', 'small-x', "\x04" . be32($sx) . be32($sy));
seed('point', 'small-x-negated', "\x04" . be32($sx) . be32($p - $sy));
seed('point', 'x-not-reduced', "\x04" . be32($sx + $p) . be32($sy));
# (y + p fits in 32 bytes for one of y and p - y only when it is small.)
for my $y ($sy, $p - $sy) {
    my $big = be32($y + $p);
    seed('point', 'y-not-reduced', "\x04" . be32($sx) . $big) if defined $big;
}
seed('point', 'off-curve', flip($point, 64));
seed('point', 'compressed-prefix', "\x02" . substr($point, 1));
seed('point', 'hybrid-prefix', "\x06" . substr($point, 1));
seed('point', 'zeros', "\x04" . ("\0" x 64));
seed('point', 'infinity', "\x00");
seed('point', 'compressed-no-point', "\x02" . ("\xff" x 32));

# --- request headers: a selector byte, then the value ---------------------------
my $sid = b64url(join '', map { chr } 0 .. 31);
my @headers = (
    [0, 'id', $sid], [0, 'id-128', 'a' x 128], [0, 'id-129', 'a' x 129],
    [0, 'id-plus', "$sid+"], [0, 'id-empty', ''], [0, 'id-dot', 'a.b'],
    [1, 'seq-0', '0'], [1, 'seq-1', '1'], [1, 'seq-max', '9007199254740991'],
    [1, 'seq-max-plus-1', '9007199254740992'], [1, 'seq-leading-zero', '01'],
    [1, 'seq-negative', '-1'], [1, 'seq-blank', ' 5'], [1, 'seq-2^64', '18446744073709551616'],
    [1, 'seq-16-digits', '1234567890123456'], [1, 'seq-17-digits', '12345678901234567'],
    [1, 'seq-plus', '+5'], [1, 'seq-hex', '0x10'],
    [2, 'type', 'application/x-zeq-e2e'], [2, 'type-params', 'Application/X-ZEQ-E2E; charset=utf-8'],
    [2, 'type-blanks', " application/x-zeq-e2e\t;x"], [2, 'type-json', 'application/json'],
    [2, 'type-semicolon', ';'], [2, 'type-suffix', 'application/x-zeq-e2e+json'],
    [3, 'accept', 'application/x-zeq-e2e'],
    [3, 'accept-list', 'application/json, application/x-zeq-e2e;q=0.5'],
    [3, 'accept-q0', 'application/x-zeq-e2e;q=0'], [3, 'accept-any', '*/*'],
    [3, 'accept-q-blanks', 'application/x-zeq-e2e ; Q = 0.000'],
    [3, 'accept-params', 'text/html,application/x-zeq-e2e;level=1;q=0.9'],
    [3, 'accept-empty-elements', ',,application/x-zeq-e2e,,'],
    [3, 'accept-q-empty', 'application/x-zeq-e2e;q='],
    [4, 'json', 'the seal does not verify'], [4, 'json-quotes', 'quote " backslash \\ end'],
    [4, 'json-controls', "tab\tnewline\n\x01\x7f\xff"],
    [5, 'b64-point', $ck], [5, 'b64-3', 'AQID'], [5, 'b64-2', 'AQI'], [5, 'b64-1', 'A'],
    [5, 'b64-low-bits', 'AB'], [5, 'b64-padding', 'AQ=='], [5, 'b64-alphabet', '-_-_'],
    [5, 'b64-standard', '+/+/'],
    [6, 'hex-nonce', $nonce], [6, 'hex-bad-digit', '0g'], [6, 'hex-upper', 'ABCDEF'],
    [6, 'hex-odd', 'abc'],
);
seed('headers', $_->[1], chr($_->[0]) . $_->[2]) for @headers;

# --- WebSocket query strings ------------------------------------------------------
my @queries = (
    ['session', "e2e_session=$sid"], ['among-others', "a=1&e2e_session=$sid&b=2"],
    ['escaped-name', "e2e%5Fsession=$sid"], ['all-escaped', '%65%32%65%5f%73%65%73%73%69%6f%6e=x'],
    ['twice', 'e2e_session=abc&e2e_session=def'], ['escaped-value', 'e2e_session=%41%42'],
    ['bad-escape', 'e2e_session=%4'], ['nul-escape', 'e2e_session=%00'],
    ['v2', "e2e_seq=1&e2e_seal=AQID&e2e_session=$sid"], ['v2-escaped', 'e2e%5fseq=1&e2e_seal=x'],
    ['empty-items', '&&e2e_session=&&'], ['bare-name', 'e2e_session'],
    ['uppercase', 'E2E_SESSION=x'], ['long-value', 'e2e_session=' . ('a' x 200)],
    ['long-name', ('%41' x 70) . '=x'], ['plus', 'e2e+session=x&e2e_session=a+b'],
    ['equals-in-value', 'e2e_session=a=b'], ['empty', ''],
);
seed('query', $_->[0], $_->[1]) for @queries;

# --- session records --------------------------------------------------------------
my $master = hkdf($record_ikm, '', 'SHA256', 32, 'zeq-e2e record key');
my $key_id = hkdf($record_ikm, '', 'SHA256', 4, 'zeq-e2e record key id');
my $id_hash = sha256($record_sid);
my $rkey = hkdf($master, '', 'SHA256', 32, "zeq-e2e record\0" . $id_hash);
my $rnonce = "\x6e" x 12;     # the nonce the harness seals with
sub record {
    my ($head, $body, $kid) = @_;
    $kid //= $key_id;
    my ($ct, $tag) = gcm_encrypt_authenticate('AES', $rkey, $rnonce, $head . $kid . $id_hash, $body);
    return $head . $kid . $rnonce . $ct . $tag;
}
my $times = pack('Q>', 1700000000) . pack('Q>', 1700003600);
my $scope = pack 'H*', '00112233445566778899aabbccddeeff';
my $window = "\x01\x01" . pack('Q>', 1000) . "\x05" . ("\0" x 126) . "\x80";
my %bodies_sr = (
    v1 => ["\x03\x01\x00\x00", $scope . $times . ('1' x 32)],
    v2 => ["\x03\x02\x00\x00", $scope . $times . ('1' x 32) . ('2' x 32)],
    'v2-window' => ["\x03\x02\x01\x00", $scope . $times . ('1' x 32) . ('2' x 32) . $window],
    'v2-empty-window' => ["\x03\x02\x01\x00", $scope . $times . ('1' x 32) . ('2' x 32)
                          . "\x01\x00" . ("\0" x 136)],
    'v2-window-format-2' => ["\x03\x02\x01\x00", $scope . $times . ('1' x 32) . ('2' x 32)
                             . "\x02" . substr($window, 1)],
    'v2-window-none-seen' => ["\x03\x02\x01\x00", $scope . $times . ('1' x 32) . ('2' x 32)
                              . "\x01\x00" . substr($window, 2)],
    'v2-window-too-high' => ["\x03\x02\x01\x00", $scope . $times . ('1' x 32) . ('2' x 32)
                             . "\x01\x01" . pack('Q>', 2**53) . ("\0" x 128)],
    'v2-slot' => ["\x03\x02\x04\x00", $scope . $times . ('1' x 32) . ('2' x 32) . pack('N', 123456)],
    'v2-slot-unused' => ["\x03\x02\x06\x00", $scope . $times . ('1' x 32) . ('2' x 32) . pack('N', 7)],
    'v2-slot-and-window' => ["\x03\x02\x05\x00", $scope . $times . ('1' x 32) . ('2' x 32) . $window],
    'v1-slot' => ["\x03\x01\x04\x00", $scope . $times . ('1' x 32) . pack('N', 1)],
    'v1-flags' => ["\x03\x01\x01\x00", $scope . $times . ('1' x 32)],
    'reserved' => ["\x03\x02\x00\x01", $scope . $times . ('1' x 32) . ('2' x 32)],
    'old-version' => ["\x02\x02\x00\x00", $scope . $times . ('1' x 32) . ('2' x 32)],
);
for my $name (sort keys %bodies_sr) {
    my ($head, $body) = @{ $bodies_sr{$name} };
    seed('sessrec', "stored-$name", "\x00" . record($head, $body));
    seed('sessrec', "sealed-$name", "\x01" . $head . $body);
}
seed('sessrec', 'stored-another-key-id', "\x00" . record("\x03\x01\x00\x00", $scope . $times . ('1' x 32), 'kkkk'));
seed('sessrec', 'stored-flipped', "\x00" . flip(record("\x03\x01\x00\x00", $scope . $times . ('1' x 32)), 40));
seed('sessrec', 'stored-cut', "\x00" . substr(record("\x03\x02\x00\x00", $scope . $times . ('1' x 64)), 0, 100));

# --- WebSocket frames: a setup byte (bit 0: masked frames required; bits 1-3:
# the largest message, 0 1 125 126 1000 65535 65536 1 MiB), then the stream.
sub frame {
    my ($b0, $payload, $mask, $len_form) = @_;
    my $n = length $payload;
    my $m = defined $mask ? 0x80 : 0;
    my $h = chr($b0);
    $len_form //= $n < 126 ? 0 : $n < 65536 ? 126 : 127;
    if ($len_form == 0) { $h .= chr($m | $n) }
    elsif ($len_form == 126) { $h .= chr($m | 126) . pack('n', $n) }
    else { $h .= chr($m | 127) . pack('Q>', $n) }
    if (defined $mask) {
        my $k = substr($mask x (1 + int($n / 4)), 0, $n);
        $h .= $mask;
        $payload ^= $k;
    }
    return $h . $payload;
}
my $mk = "\x37\xfa\x21\x3d";
my $client_setup = chr(1 | (7 << 1));
my $server_setup = chr(7 << 1);
my %frames = (
    'binary' => $client_setup . frame(0x82, "\x01hello", $mk),
    'text' => $client_setup . frame(0x81, 'hello', $mk),
    'fragmented-with-ping' => $client_setup . frame(0x01, 'hel', $mk) . frame(0x89, 'ping', $mk)
        . frame(0x00, 'l', $mk) . frame(0x80, 'o', $mk),
    'close' => $client_setup . frame(0x88, pack('n', 1000) . 'bye', $mk),
    'length-126' => $client_setup . frame(0x82, filler(200, 'f'), $mk),
    'length-127-form' => $client_setup . frame(0x82, filler(130, 'f'), $mk, 127),
    'length-126-form-small' => $client_setup . frame(0x82, 'tiny', $mk, 126),
    'two-messages' => $client_setup . frame(0x82, 'one', $mk) . frame(0x81, 'two', $mk),
    'unmasked-from-client' => $client_setup . frame(0x82, 'hello'),
    'server-unmasked' => $server_setup . frame(0x82, "\x01hello") . frame(0x8a, ''),
    'rsv-bit' => $client_setup . frame(0xc2, 'x', $mk),
    'continuation-alone' => $client_setup . frame(0x80, 'x', $mk),
    'message-inside-message' => $client_setup . frame(0x01, 'a', $mk) . frame(0x81, 'b', $mk),
    'fragmented-ping' => $client_setup . frame(0x09, 'p', $mk),
    'long-ping' => $client_setup . frame(0x89, 'p' x 126, $mk),
    'opcode-3' => $client_setup . frame(0x83, 'x', $mk),
    'opcode-b' => $client_setup . frame(0x8b, 'x', $mk),
    'too-big' => chr(1 | (2 << 1)) . frame(0x82, 'x' x 126, $mk),
    'too-big-in-fragments' => chr(1 | (2 << 1)) . frame(0x02, 'x' x 100, $mk) . frame(0x80, 'x' x 26, $mk),
    'max-zero' => chr(1) . frame(0x82, '', $mk) . frame(0x82, 'x', $mk),
    'length-top-bit' => $client_setup . "\x82\xff\x80" . ("\0" x 7) . $mk,
    'empty-fragments' => $client_setup . frame(0x02, '', $mk) . frame(0x00, '', $mk) . frame(0x80, 'z', $mk),
    'cut' => $client_setup . substr(frame(0x82, 'hello world', $mk), 0, 9),
);
seed('frame', $_, $frames{$_}) for sort keys %frames;

# --- response heads before the frames ---------------------------------------------
my %heads = (
    '101' => "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             . "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n\x81\x05hello",
    '101-lf' => "HTTP/1.1 101 Switching Protocols\nUpgrade: websocket\n\n\x82\x00",
    '101-mixed' => "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\n\r\n",
    '403' => "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n",
    '1.0' => "HTTP/1.0 200 OK\n\n",
    'http2' => "HTTP/2 200\r\n\r\n",
    'blank-first' => "\n\n",
    'cr-cr' => "HTTP/1.1 101 x\n\r\r\n\n",
    'status-600' => "HTTP/1.1 600 X\r\n\r\n",
    'status-only' => "HTTP/1.1 101\r\n\r\n",
    'short-line' => "HTTP/1.1 10\r\n\r\n",
    'unfinished' => "HTTP/1.1 101 Switching Protocols\r\nUpgrade: web",
    'no-space' => "HTTP/1.1_101 x\r\n\r\n",
);
seed('head', $_, $heads{$_}) for sort keys %heads;

# --- PBKDF2: iterations byte, length byte, password length byte, then bytes ---
my @pbkdf2 = (
    ['password-salt', "\x00\x1f\x08passwordsalt"],
    ['long-password', "\x03\x3f\x50" . filler(80, 'pw') . 'salt'],
    ['empty-salt', "\x07\x20\x05secret"],
    ['empty-password', "\x01\x40\x00" . 'zeq-e2e/2 psk'],
    ['several-blocks', "\x1f\xc7\x10" . filler(16, 'p') . filler(100, 's')],
    ['nothing', "\x00\x00\x00"],
);
seed('pbkdf2', $_->[0], $_->[1]) for @pbkdf2;

printf "%-10s %3d seeds\n", $_, $count{$_} for sort keys %count;
