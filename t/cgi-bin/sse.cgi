#!/usr/bin/perl
# Server-Sent Events from a CGI script (t/stream.t): ?n=N events ?ms=M ms
# apart (default 20 and 100), each written on its own with the time it was
# written, so that a test can tell it arrived before the next was written.
use strict;
use warnings;
use Time::HiRes ();

$| = 1;
binmode STDOUT;
my %q = map { my ($k, $v) = split /=/, $_, 2; ($k => $v // '') }
        grep { length } split /[&;]/, $ENV{QUERY_STRING} // '';
my $n = ($q{n} // '') =~ /^(\d+)$/ ? $1 : 20;
my $ms = ($q{ms} // '') =~ /^(\d+)$/ ? $1 : 100;

print "Content-Type: text/event-stream\r\nCache-Control: no-cache\r\n\r\n";
for my $i (0 .. $n - 1) {
    Time::HiRes::sleep($ms / 1000) if $i > 0;
    printf "id: %d\nevent: tick\ndata: {\"i\":%d,\"written\":%.6f}\n\n", $i, $i, Time::HiRes::time();
}
