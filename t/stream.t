# Streaming v2 answers (docs/PROTOCOL.md 18.8, "Streaming"), with the
# suite's independent client reading each answer as it arrives: Server-Sent
# Events from a CGI script and from the proxied backend reach the client
# event by event (each one opened before the next is written); a 200 MiB
# static file and a 200 MiB proxied body, and a 1 GiB static file, stream
# with the server's memory flat (sampled during the download) and arrive
# exact; a static file has its exact sealed Content-Length; a backend that
# fails mid-body gives a message without its final record and a cut
# connection, never a body that looks whole; the same over HTTP/2; HEAD,
# Range and 304 as before; a v1 client still gets one whole envelope.
use strict;
use warnings;

use FindBin ();
use lib "$FindBin::Bin/lib";

use Apache::Test;
use Apache::TestUtil;
use Digest::SHA ();
use File::Spec::Functions qw(catfile);
use JSON::PP ();
use Time::HiRes ();
use ZeqTest;
use ZeqTest::Fixtures ();
use ZeqTest::V2 ();
use ZeqTest::WebSocket qw(children_of rss_kb);

my @checks;
sub check { push @checks, [@_] }

my $pidfile = catfile(Apache::Test::vars('t_logs'), 'httpd.pid');
my $ppid = do { open my $fh, '<', $pidfile or die "$pidfile: $!"; local $/; <$fh> } // '';
$ppid =~ s/\D//g;
sub server_rss_kb {
    my $sum = 0;
    $sum += rss_kb($_) // 0 for $ppid, children_of($ppid);
    return $sum;
}

# --- Server-Sent Events arrive event by event ----------------------------------------------------
# Each event says when it was written; the client notes when its record
# verified. Every event must have been opened before the next was written.
# A stream held back until its end (the failure this looks for) is late
# every time; a machine busy with other work can make one event of a run
# late by chance: a run with late events is tried once more, and the
# second run decides.
sub sse_case {
    my ($what, %a) = @_;
    my ($r, @events, $late);
    for my $attempt (1, 2) {
        ($r, @events) = sse_run(%a);
        $late = join(',', grep { $events[$_]{opened} >= $events[$_ + 1]{written} } 0 .. $#events - 1);
        last if $late eq '' && @events == 20;
        t_debug("$what: attempt $attempt: events late: $late");
    }
    check("$r->{status} " . media_type($r->{h} ? $r->{h}->header('Content-Type') : '')
          . " $r->{final} " . ($r->{error} // 'ok'), '200 ' . E2E_TYPE . ' 1 ok',
          "$what: 200, sealed, ends with its final record");
    check(scalar(@events), 20, "$what: 20 events opened");
    check($late, '', "$what: each event was opened before the next one was written");
    check(($r->{h} && $r->{h}->header('X-E2E-Content-Type')) // '', 'text/event-stream',
          "$what: the inner type is text/event-stream");
}
sub sse_run {
    my (%a) = @_;
    my $s = ZeqTest::V2::handshake(vhost => $a{vhost});
    my @events;
    my $text = '';
    my $r = ZeqTest::V2::stream_get(session => $s, path => $a{path}, http2 => $a{http2}, timeout => 60,
                                    on_record => sub {
        my ($rec) = @_;
        $text .= $rec->{plain};
        while ($text =~ s/^id: (\d+)\nevent: tick\ndata: (\{[^\n]*\})\n\n//) {
            my $d = decode_json_safe($2) // {};
            push @events, { i => $1, written => $d->{written}, opened => $rec->{time} };
        }
    });
    return ($r, @events);
}
sse_case('SSE from a CGI script', vhost => 'zeq_file', path => '/cgi-bin/sse.cgi?n=20&ms=100');
sse_case('SSE from the proxied backend', vhost => 'zeq_file', path => '/proxy/sse?n=20&ms=100');
sse_case('SSE from a CGI script over HTTP/2', vhost => 'zeq_h2', path => '/cgi-bin/sse.cgi?n=20&ms=100',
         http2 => 1);
sse_case('SSE from the proxied backend over HTTP/2', vhost => 'zeq_h2', path => '/proxy/sse?n=20&ms=100',
         http2 => 1);

# --- large downloads with flat memory ---------------------------------------------------------------
sub big_case {
    my ($what, %a) = @_;
    my $s = ZeqTest::V2::handshake(vhost => $a{vhost});
    my $d = Digest::SHA->new(256);
    my ($bytes, $peak, $samples) = (0, 0, 0);
    my $base = server_rss_kb();
    my $next = Time::HiRes::time();
    my $r = ZeqTest::V2::stream_get(session => $s, path => $a{path}, http2 => $a{http2}, timeout => 300,
                                    on_record => sub {
        my ($rec) = @_;
        $d->add($rec->{plain});
        $bytes += length $rec->{plain};
        if (Time::HiRes::time() >= $next) {
            my $now = server_rss_kb();
            $peak = $now if $now > $peak;
            $samples++;
            $next = Time::HiRes::time() + 0.05;
        }
    });
    my $growth = $peak - $base;
    t_debug(sprintf '%s: %d bytes, %d samples, server RSS %d kB before, %d kB at most during: %+d kB',
            $what, $bytes, $samples, $base, $peak, $growth);
    print STDERR sprintf("# %s: server RSS %d kB before, peak %d kB during (%+d kB), %d samples\n",
                         $what, $base, $peak, $growth, $samples);
    check("$r->{status} $r->{final} " . ($r->{error} // 'ok'), '200 1 ok', "$what: 200, final record, no error");
    check($bytes, $a{size}, "$what: $a{size} bytes of plaintext");
    check($d->hexdigest, ZeqTest::Fixtures::marked_sha256($a{size}), "$what: exact bytes (SHA-256)");
    check($samples >= 5 ? 'sampled' : "only $samples samples", 'sampled', "$what: memory sampled during the download");
    if (my $why = ZeqTest::rss_bound_skipped()) {
        print STDERR "# $what: the bound on the server's resident memory $why\n";
    } else {
        check($growth < 32 * 1024 ? 'flat' : "grew by $growth kB", 'flat',
              "$what: the server's resident memory grew by under 32 MiB");
    }
    return $r;
}
{
    my $r = big_case('a 200 MiB static file', vhost => 'zeq_file', path => '/gen/marked-200m.bin',
                     size => ZeqTest::Fixtures::MARKED_200M);
    check(($r->{h}->header('Content-Length') // 'none') . ' ' . ($r->{h}->header('Transfer-Encoding') // 'none'),
          ZeqTest::V2::sealed_len(ZeqTest::Fixtures::MARKED_200M) . ' none',
          'the 200 MiB static file: the exact sealed Content-Length, not chunked');
    $r = big_case('a 200 MiB proxied body', vhost => 'zeq_file',
                  path => '/proxy/big?n=' . ZeqTest::Fixtures::MARKED_200M, size => ZeqTest::Fixtures::MARKED_200M);
    check($r->{h}->header('Content-Length') // 'none', ZeqTest::V2::sealed_len(ZeqTest::Fixtures::MARKED_200M),
          'the 200 MiB proxied body: the backend\'s length sealed');
    big_case('a 200 MiB static file over HTTP/2', vhost => 'zeq_h2', path => '/gen/marked-200m.bin',
             size => ZeqTest::Fixtures::MARKED_200M, http2 => 1);
    big_case('a 1 GiB static file', vhost => 'zeq_file', path => '/gen/marked-1g.bin',
             size => ZeqTest::Fixtures::MARKED_1G);
}

# --- a backend that fails mid-body ----------------------------------------------------------------------
for my $proto (['HTTP/1.1', 'zeq_file', 0], ['HTTP/2', 'zeq_h2', 1]) {
    my ($name, $vhost, $h2) = @$proto;
    my $s = ZeqTest::V2::handshake(vhost => $vhost);
    my $bytes = 0;
    my $r = ZeqTest::V2::stream_get(session => $s, path => '/proxy/cut?n=3000000&after=1000000', http2 => $h2,
                                    timeout => 60, on_record => sub { $bytes += length $_[0]{plain} });
    check($r->{final}, 0, "$name: a backend that stops after 1 MB of its 3 MB: no final record");
    check($bytes < 3000000 ? 'short' : 'whole', 'short', "$name: the client got less than the length");
    check($h2 ? $r->{ended} : ($r->{last_chunk} ? 'last chunk' : 'cut'), $h2 ? 'reset' : 'cut',
          "$name: the transfer is cut (" . ($h2 ? 'the stream reset' : 'no last chunk') . '), never ended cleanly');
}
{
    my $mark = log_mark();
    select(undef, undef, undef, 0.5);
    my $log = log_since($mark);
    # the lines of the cuts above were written before the mark; check the whole log
    open my $fh, '<', error_log_path() or die;
    my @cut = grep { /ZEQ50003: sealed answer cut short/ } <$fh>;
    check(scalar(@cut) >= 2 ? 'logged' : 'not logged', 'logged', 'the error log says why each answer was cut');
}

# --- the rules that do not change ----------------------------------------------------------------------
{
    my $s = ZeqTest::V2::handshake(vhost => 'zeq_file');
    my $r = ZeqTest::V2::request(session => $s, path => '/gen/big.bin', headers => [Range => 'bytes=0-99']);
    check("$r->{status} $r->{verified} " . length($r->{plain} // ''), '200 1 3145728',
          'Range on a v2 answer: ignored, 200 with the whole body');
    $r = ZeqTest::V2::request(session => $s, method => 'HEAD', path => '/gen/marked-200m.bin');
    check(($r->{h}->header('Content-Length') // 'none') . " $r->{verified}",
          ZeqTest::V2::sealed_len(ZeqTest::Fixtures::MARKED_200M) . ' 1',
          'HEAD of the 200 MiB file: the GET\'s sealed Content-Length, a seal that verifies');
    $r = ZeqTest::V2::request(session => $s, path => '/proxy/status/304');
    check("$r->{status} $r->{verified}", '304 1', '304: no body, its seal');
    # a v1 client: one whole envelope with its Content-Length
    my $v1 = handshake(vhost => 'zeq_file');
    my $o = request(vhost => 'zeq_file', path => '/cgi-bin/sse.cgi?n=3&ms=10', session => $v1);
    check("$o->{status} $o->{opened} " . ($o->{h}->header('Content-Length') // 'none'),
          "200 1 " . length($o->{body}), 'v1: the event stream comes whole, in one envelope with its length');
}

plan tests => scalar(@checks), need_lwp;
ok t_cmp($_->[0], $_->[1], $_->[2]) for @checks;
