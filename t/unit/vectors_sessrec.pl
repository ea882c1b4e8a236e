#!/usr/bin/perl
# Computes the session record vectors of docs/PROTOCOL.md (section 19) and
# t/unit/test_sessrec.c with an implementation independent of the module's
# C code (Perl CryptX: Crypt::KeyDerivation, Crypt::AuthEnc::GCM).
#
#   perl t/unit/vectors_sessrec.pl        (needs CryptX; Debian: libcryptx-perl)
use strict;
use warnings;
use Crypt::KeyDerivation qw(hkdf);
use Crypt::AuthEnc::GCM qw(gcm_encrypt_authenticate);
use Digest::SHA qw(sha256);

sub hex_of { unpack 'H*', $_[0] }
sub out { printf "%-14s = %s\n", @_ }

my $ikm = 'zeq-e2e test record key, 32 bytes or more';
my $master = hkdf($ikm, '', 'SHA256', 32, 'zeq-e2e record key');
my $key_id = hkdf($ikm, '', 'SHA256', 4, 'zeq-e2e record key id');
my $sid = 'AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8';
my $id_hash = sha256($sid);
my $rkey = hkdf($master, '', 'SHA256', 32, "zeq-e2e record\0" . $id_hash);
my $scope = pack 'H*', '00112233445566778899aabbccddeeff';
my $created = 1700000000;
my $expires = 1700003600;
my $c2s = pack 'H*', '1f' x 32;
my $s2c = pack 'H*', '2e' x 32;
my $nonce = pack 'H*', '0102030405060708090a0b0c';

out('ikm', $ikm);
out('master', hex_of($master));
out('key id', hex_of($key_id));
out('session id', $sid);
out('id hash', hex_of($id_hash));
out('record key', hex_of($rkey));
for my $v (1, 2) {
    my $head = pack('CCCC', 3, $v, 0, 0) . $key_id;
    my $body = $scope . pack('Q>', $created) . pack('Q>', $expires) . $c2s . ($v == 2 ? $s2c : '');
    my ($ct, $tag) = gcm_encrypt_authenticate('AES', $rkey, $nonce, $head . $id_hash, $body);
    my $rec = $head . $nonce . $ct . $tag;
    out("v$v record", hex_of($rec));
    out("v$v length", length $rec);
}
# A v2 session no request has named yet (flags bit 1).
{
    my $head = pack('CCCC', 3, 2, 2, 0) . $key_id;
    my $body = $scope . pack('Q>', $created) . pack('Q>', $expires) . $c2s . $s2c;
    my ($ct, $tag) = gcm_encrypt_authenticate('AES', $rkey, $nonce, $head . $id_hash, $body);
    out('v2 unused', hex_of($head . $nonce . $ct . $tag));
}
# A v2 session whose replay window is in the server's window table, at slot
# 123456 (flags bit 2, the slot's number in 4 bytes after the keys).
{
    my $head = pack('CCCC', 3, 2, 4, 0) . $key_id;
    my $body = $scope . pack('Q>', $created) . pack('Q>', $expires) . $c2s . $s2c
               . pack('N', 123456);
    my ($ct, $tag) = gcm_encrypt_authenticate('AES', $rkey, $nonce, $head . $id_hash, $body);
    my $rec = $head . $nonce . $ct . $tag;
    out('v2 slot', hex_of($rec));
    out('v2 slot length', length $rec);
}
