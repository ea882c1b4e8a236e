#!/usr/bin/perl
# CGI echo application of the test suite. Prints JSON describing what the
# script received, and appends "METHOD REQUEST_URI" to ../var/hits/cgi.log
# so that tests can tell whether a request reached it.
#
# Query parameters:
#   type=MEDIA    Content-Type of the answer (default application/json)
#   size=N        answer N deterministic bytes instead of the JSON
#   gzip=1        gzip the JSON and say Content-Encoding: gzip (whatever
#                 Accept-Encoding says)
#   status=NNN    Status: of the answer
use strict;
use warnings;

use Digest::SHA qw(sha256_hex sha256);
use FindBin ();
use Fcntl qw(:flock);
use JSON::PP ();

binmode STDIN;
binmode STDOUT;

my $method = $ENV{REQUEST_METHOD} // '';
my %q = map { my ($k, $v) = split /=/, $_, 2; ($k => $v // '') }
        grep { length } split /[&;]/, $ENV{QUERY_STRING} // '';

my $body = '';
if (defined $ENV{CONTENT_LENGTH} && $ENV{CONTENT_LENGTH} =~ /^\d+$/) {
    my $want = $ENV{CONTENT_LENGTH};
    while (length($body) < $want) {
        my $n = read(STDIN, $body, $want - length($body), length $body);
        last unless $n;
    }
}
else {
    local $/;
    my $rest = <STDIN>;
    $body = $rest // '';
}

if (open my $fh, '>>', "$FindBin::Bin/../var/hits/cgi.log") {
    flock $fh, LOCK_EX;
    print {$fh} "$method " . ($ENV{REQUEST_URI} // '') . "\n";
    close $fh;
}

my $status = ($q{status} // '') =~ /^(\d{3})$/ ? "Status: $1\r\n" : '';

if (defined $q{size} && $q{size} =~ /^\d+$/) {
    my $out = '';
    my $i = 0;
    $out .= sha256('cgi' . pack('N', $i++)) while length($out) < $q{size};
    $out = substr($out, 0, $q{size});
    print "${status}Content-Type: application/octet-stream\r\n\r\n", $out;
    exit 0;
}

my %env = map { $_ => $ENV{$_} } keys %ENV;
my $answer = JSON::PP->new->canonical(1)->ascii(1)->encode({
    script                => 'echo.cgi',
    REQUEST_METHOD        => $method,
    CONTENT_LENGTH        => $ENV{CONTENT_LENGTH},
    CONTENT_TYPE          => $ENV{CONTENT_TYPE},
    HTTP_TRANSFER_ENCODING => $ENV{HTTP_TRANSFER_ENCODING},
    HTTP_CONTENT_ENCODING => $ENV{HTTP_CONTENT_ENCODING},
    HTTP_X_E2E_SESSION    => $ENV{HTTP_X_E2E_SESSION},
    bodySha256            => sha256_hex($body),
    bodyLength            => length($body),
    body                  => length($body) <= 65536 ? $body : undef,
    suspiciousEnvNames    => [ sort grep { /SECRET|ZEQ/i } keys %ENV ],
    env                   => \%env,
});

my $type = length($q{type} // '') ? $q{type} : 'application/json';
$type =~ s/%2F/\//gi;
if ($q{gzip}) {
    require IO::Compress::Gzip;
    IO::Compress::Gzip::gzip(\$answer => \my $gz) or die "gzip failed\n";
    print "${status}Content-Type: $type\r\nContent-Encoding: gzip\r\n\r\n", $gz;
}
else {
    print "${status}Content-Type: $type\r\n\r\n", $answer;
}
