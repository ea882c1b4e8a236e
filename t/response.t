# The response side across handlers: Apache's own error pages sealed,
# ZeqE2EMaxResponseBody (never plaintext, always logged), HEAD on CGI
# output, the envelope headers on CGI and proxied answers.
use strict;
use warnings;

use FindBin ();
use lib "$FindBin::Bin/lib";

use Apache::Test;
use Apache::TestUtil;
use ZeqTest;

my $CE = ZeqTest::CHECK_ERROR_TESTS;
my @too_big = (
    ['static file of 5200 bytes' => '/limits/gen/five-k.txt', "0123456789abcdef"],
    ['CGI output of 5000 bytes'  => '/limits/cgi-bin/echo.cgi?size=5000', undef],
    ['proxied answer of 5000 bytes' => '/limits/proxy/bytes?n=5000', undef],
);

plan tests => 5 + 3 + @too_big * ($CE + 3) + 3 + 4 + 2 * 4, need_lwp;

my $s = handshake(vhost => 'zeq_file');

# --- Apache's own 404 page, sealed ----------------------------------------------------
{
    my $r = request(path => '/static/no-such-file.txt', session => $s);
    ok t_cmp($r->{status}, 404, 'missing file with a session: 404');
    ok t_cmp(media_type($r->{h}->header('Content-Type')), E2E_TYPE,
             '404 page: the envelope type');
    ok t_cmp($r->{opened}, 1, '404 page: the envelope opens');
    ok t_cmp($r->{plain} // '', qr/Not Found/i, '404 page: Apache\'s own "Not Found" page inside');
    ok t_cmp(media_type($r->{h}->header('X-E2E-Content-Type')), 'text/html',
             '404 page: X-E2E-Content-Type text/html');
}
{
    my $p = request(path => '/static/no-such-file.txt');
    ok t_cmp($p->{status}, 404, 'missing file in plaintext: 404');
    ok t_cmp($p->{enveloped}, 0, 'missing file in plaintext: not sealed');
    ok t_cmp($p->{body}, qr/Not Found/i, 'missing file in plaintext: Apache\'s page');
}

# --- ZeqE2EMaxResponseBody 1000 under /limits/ -------------------------------------------
for my $case (@too_big) {
    my ($what, $path, $marker) = @$case;
    my $mark = log_mark();
    my $r = request(path => $path, session => $s);
    my $log = log_since($mark);
    check_error($r, 500, 'e2e_encrypt_failed', "over ZeqE2EMaxResponseBody, $what");
    ok t_cmp(length($r->{body}) < 1000 ? 'short' : length($r->{body}) . ' bytes', 'short',
             "$what: the answer is not the oversized body");
    if (defined $marker) {
        ok t_cmp(index($r->{body}, $marker) < 0 ? 'absent' : 'leaked', 'absent',
                 "$what: no plaintext of the file in the answer");
    }
    else {
        ok t_cmp($r->{enveloped}, 0, "$what: the error itself is not an envelope");
    }
    ok t_cmp($log, qr/\[zeq_e2e:(?:error|crit|alert|emerg|warn)\][^\n]*ZEQ\d+:/,
             "$what: the module logged why");
}
{
    my $r = request(path => '/limits/gen/small.txt', session => $s);
    ok t_cmp($r->{status}, 200, 'under ZeqE2EMaxResponseBody 1000: 180 bytes are sealed (200)');
    ok t_cmp($r->{opened}, 1, 'under the limit: the envelope opens');
    my $p = request(path => '/limits/gen/five-k.txt');
    ok t_cmp(length($p->{body}), 5200,
             'plaintext GET under /limits/: not subject to the response limit');
}

# --- HEAD on CGI output ------------------------------------------------------------------
{
    my $get = request(path => '/cgi-bin/echo.cgi?size=3000', session => $s);
    my $head = request(method => 'HEAD', path => '/cgi-bin/echo.cgi?size=3000', session => $s);
    my $cl = $head->{h}->header('Content-Length');
    ok t_cmp($get->{h}->header('Content-Length'), 3000 + OVERHEAD,
             'GET of 3000 CGI bytes: Content-Length 3028');
    ok t_cmp(length $head->{body}, 0, 'HEAD on the CGI: no body');
    ok t_cmp(media_type($head->{h}->header('Content-Type')), E2E_TYPE,
             'HEAD on the CGI: the envelope type');
    ok t_cmp(defined $cl ? $cl : 'absent', qr/^(?:absent|3028)$/,
             'HEAD on the CGI: Content-Length absent or 3028, never 3000');
}

# --- envelope headers on CGI and proxied answers ------------------------------------------
for my $case (['CGI', '/cgi-bin/echo.cgi'], ['proxy', '/proxy/bytes?n=10']) {
    my ($what, $path) = @$case;
    my $r = request(path => $path, session => $s);
    my $h = $r->{h};
    ok t_cmp(lc($h->header('Cache-Control') // ''), qr/^(?=.*\bno-store\b)(?=.*\bprivate\b)/,
             "$what: Cache-Control no-store, private");
    my $vary = lc join(',', $h->header('Vary'));
    ok t_cmp($vary, qr/^(?=.*\baccept\b)(?=.*\bx-e2e-session\b)/,
             "$what: Vary lists Accept and X-E2E-Session");
    ok t_cmp($h->header('Content-Encoding'), undef, "$what: no Content-Encoding");
    ok t_cmp($r->{opened}, 1, "$what: the envelope opens");
}
