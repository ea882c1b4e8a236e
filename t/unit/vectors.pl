#!/usr/bin/perl
# Recomputes the test vectors of docs/PROTOCOL.md ("Test vectors") with an
# implementation independent of the module's C code (Perl CryptX).
#
#   perl t/unit/vectors.pl        (needs CryptX; Debian: libcryptx-perl)
#
# The output must match the values in docs/PROTOCOL.md and in
# t/unit/test_envelope.c byte for byte.
use strict;
use warnings;
use Crypt::KeyDerivation qw(pbkdf2);
use Crypt::AuthEnc::GCM qw(gcm_encrypt_authenticate gcm_decrypt_verify);

my $secret       = "zeq-e2e test secret";        # ASCII, so UTF-8 = these bytes
my $client_nonce = join '', map { chr } 0x00 .. 0x1f;
my $server_nonce = join '', map { chr } 0x20 .. 0x3f;

# Session key: PBKDF2-HMAC-SHA256(secret, clientNonce || serverNonce, 100000, 32).
my $key = pbkdf2($secret, $client_nonce . $server_nonce, 100000, 'SHA256', 32);

printf "%-26s = %s\n", 'secret (UTF-8)', unpack('H*', $secret);
printf "%-26s = %s\n", 'clientNonce', unpack('H*', $client_nonce);
printf "%-26s = %s\n", 'serverNonce', unpack('H*', $server_nonce);
printf "%-26s = %s\n", 'key', unpack('H*', $key);

# Envelope = iv (12) || tag (16) || ciphertext, AES-256-GCM, no AAD.
sub envelope {
    my ($iv, $pt) = @_;
    my ($ct, $tag) = gcm_encrypt_authenticate('AES', $key, $iv, '', $pt);
    my $env = $iv . $tag . $ct;
    # Self-check: the envelope opens again to the same plaintext.
    my $back = gcm_decrypt_verify('AES', $key, $iv, '', $ct, $tag);
    die "envelope does not open\n" unless defined $back && $back eq $pt;
    return $env;
}

my @vectors = (
    [ 1, pack('H*', '000102030405060708090a0b'), '{"hello":"world"}' ],
    [ 2, pack('H*', '0f0e0d0c0b0a090807060504'), '' ],
    [ 3, pack('H*', 'a0a1a2a3a4a5a6a7a8a9aaab'), join('', map { chr } 0x00 .. 0x63) ],
    # The response of the example exchange in docs/PROTOCOL.md.
    [ 'example response', pack('H*', '101112131415161718191a1b'), '{"ok":true}' ],
);

for my $v (@vectors) {
    my ($n, $iv, $pt) = @$v;
    my $env = envelope($iv, $pt);
    print "\n";
    my $name = $n =~ /^\d+$/ ? "envelope $n" : $n;
    printf "%-26s = %s\n", "$name iv", unpack('H*', $iv);
    printf "%-26s = %s (%d bytes)\n", "$name plaintext", unpack('H*', $pt), length($pt);
    printf "%-26s = %s (%d bytes)\n", $name, unpack('H*', $env), length($env);
}
