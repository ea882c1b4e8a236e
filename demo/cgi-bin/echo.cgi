#!/usr/bin/perl
# The demo's CGI app: answers what it received, in plaintext JSON.
use strict;
use warnings;
use JSON::PP;
use Digest::SHA qw(sha256_hex);

binmode STDIN;
my $len = $ENV{CONTENT_LENGTH} || 0;
my $body = '';
while (length($body) < $len) {
    my $n = read(STDIN, $body, $len - length($body), length($body));
    last unless $n;
}
my %answer = (
    app           => 'cgi',
    method        => $ENV{REQUEST_METHOD},
    contentType   => $ENV{CONTENT_TYPE},
    contentLength => $ENV{CONTENT_LENGTH},
    bodyLength    => length($body),
    bodySha256    => sha256_hex($body),
    body          => length($body) <= 4096 ? $body : undef,
);
my $json = JSON::PP->new->canonical->encode(\%answer);
print "Content-Type: application/json\r\n\r\n$json\n";
