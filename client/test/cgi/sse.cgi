#!/usr/bin/perl
# An event stream for the client's tests (browser-stream.test.mjs):
# ?n=N events ?ms=M ms apart (default 20 and 150), each written and flushed
# on its own with the time it was written, so that a test can tell it
# arrived before the next one was written. Event ids count on from the
# Last-Event-ID the request came with; the odd ones are named "tick", the
# even ones unnamed, and each says which Last-Event-ID its request carried.
# ?retry=MS sends a retry field first; ?eol=crlf|cr|lf ends lines so
# (default lf); ?until=K answers 204 (stop reconnecting) to a request whose
# Last-Event-ID is K or more.
use strict;
use warnings;
use Time::HiRes ();

$| = 1;
binmode STDOUT;
my %q = map { my ($k, $v) = split /=/, $_, 2; ($k => $v // '') }
        grep { length } split /[&;]/, $ENV{QUERY_STRING} // '';
my $num = sub { my ($name, $default) = @_; ($q{$name} // '') =~ /^(\d+)$/ ? $1 : $default };
my $n = $num->('n', 20);
my $ms = $num->('ms', 150);
my $eol = { crlf => "\r\n", cr => "\r", lf => "\n" }->{ $q{eol} // 'lf' } // "\n";
my $last = $ENV{HTTP_LAST_EVENT_ID} // '';
my $from = $last =~ /^(\d+)$/ ? $1 + 1 : 0;

if (defined $q{until} && $last =~ /^\d+$/ && $last >= $q{until}) {
    print "Status: 204 No Content\r\nContent-Type: text/event-stream\r\n\r\n";
    exit 0;
}
print "Content-Type: text/event-stream\r\nCache-Control: no-cache\r\n\r\n";
print ": events from $from$eol";
print "retry: $q{retry}$eol" if $num->('retry', '') ne '';
for my $i (0 .. $n - 1) {
    Time::HiRes::sleep($ms / 1000) if $i > 0;
    my $id = $from + $i;
    my $event = $id % 2 ? "event: tick$eol" : '';
    printf "id: %d%s%sdata: {\"id\":%d,\"written\":%.6f,\"lastEventId\":\"%s\"}%s%s",
        $id, $eol, $event, $id, Time::HiRes::time(), $last =~ /^\d*$/ ? $last : '?', $eol, $eol;
}
