# Every row of the error table except the handshake's own (t/handshake.t):
# status, JSON error code, and the application never sees the request.
use strict;
use warnings;

use FindBin ();
use lib "$FindBin::Bin/lib";

use Apache::Test;
use Apache::TestUtil;
use ZeqTest;

my $CE = ZeqTest::CHECK_ERROR_TESTS;

# Each case: [description, code returning a response, status, error code].
my @cases;
my $s = handshake(vhost => 'zeq_file');
my $unknown = 'A' x 43;            # well-formed, never issued
my $good = sub { seal($s->{key} // ("\0" x 32), $_[0]) };

# 401 e2e_session_invalid: unknown session, any method, body or not.
for my $m (qw(GET DELETE)) {
    push @cases, ["unknown X-E2E-Session, $m without a body, CGI",
        sub { request(method => $m, path => '/cgi-bin/echo.cgi', session_id => $unknown,
                      accept => E2E_TYPE) }, 401, 'e2e_session_invalid'];
}
for my $m (qw(POST PUT)) {
    push @cases, ["unknown X-E2E-Session, $m with an envelope, CGI",
        sub { request(method => $m, path => '/cgi-bin/echo.cgi', session_id => $unknown,
                      raw_body => $good->('{"x":1}'), content_type => E2E_TYPE,
                      accept => E2E_TYPE) }, 401, 'e2e_session_invalid'];
}
push @cases, ["unknown X-E2E-Session, POST with a plaintext body, CGI",
    sub { request(method => 'POST', path => '/cgi-bin/echo.cgi', session_id => $unknown,
                  raw_body => '{"x":1}', content_type => 'application/json') },
    401, 'e2e_session_invalid'];
push @cases, ["unknown X-E2E-Session, GET, static file",
    sub { request(path => '/static/hello.txt', session_id => $unknown, accept => E2E_TYPE) },
    401, 'e2e_session_invalid'];
push @cases, ["unknown X-E2E-Session, POST with an envelope, proxy",
    sub { request(method => 'POST', path => '/proxy/echo', session_id => $unknown,
                  raw_body => $good->('{"x":1}'), content_type => E2E_TYPE) },
    401, 'e2e_session_invalid'];
push @cases, ["X-E2E-Session with characters outside [A-Za-z0-9_-]",
    sub { request(path => '/cgi-bin/echo.cgi', session_id => 'not a valid id!*',
                  accept => E2E_TYPE) }, 401, 'e2e_session_invalid'];

# 400 e2e_decrypt_failed.
push @cases, ["envelope of 27 bytes",
    sub { request(method => 'POST', path => '/cgi-bin/echo.cgi', session => $s,
                  raw_body => 'x' x 27, content_type => E2E_TYPE) },
    400, 'e2e_decrypt_failed'];
push @cases, ["empty envelope",
    sub { request(method => 'POST', path => '/cgi-bin/echo.cgi', session => $s,
                  raw_body => '', content_type => E2E_TYPE) },
    400, 'e2e_decrypt_failed'];
push @cases, ["envelope with a flipped tag bit",
    sub { my $e = $good->('{"tampered":"tag"}');
          substr($e, 12, 1) = chr(ord(substr($e, 12, 1)) ^ 1);
          request(method => 'POST', path => '/cgi-bin/echo.cgi', session => $s,
                  raw_body => $e, content_type => E2E_TYPE) },
    400, 'e2e_decrypt_failed'];
push @cases, ["envelope with a flipped ciphertext bit",
    sub { my $e = $good->('{"tampered":"ciphertext"}');
          substr($e, -1, 1) = chr(ord(substr($e, -1, 1)) ^ 0x80);
          request(method => 'POST', path => '/cgi-bin/echo.cgi', session => $s,
                  raw_body => $e, content_type => E2E_TYPE) },
    400, 'e2e_decrypt_failed'];
push @cases, ["envelope with a flipped IV bit",
    sub { my $e = $good->('{"tampered":"iv"}');
          substr($e, 0, 1) = chr(ord(substr($e, 0, 1)) ^ 1);
          request(method => 'POST', path => '/cgi-bin/echo.cgi', session => $s,
                  raw_body => $e, content_type => E2E_TYPE) },
    400, 'e2e_decrypt_failed'];
push @cases, ["envelope truncated by one byte",
    sub { my $e = $good->('{"tampered":"length"}');
          chop $e;
          request(method => 'POST', path => '/cgi-bin/echo.cgi', session => $s,
                  raw_body => $e, content_type => E2E_TYPE) },
    400, 'e2e_decrypt_failed'];
push @cases, ["envelope sealed with a wrong key",
    sub { request(method => 'POST', path => '/cgi-bin/echo.cgi', session => $s,
                  body => '{"wrong":"key"}', key => "\x42" x 32) },
    400, 'e2e_decrypt_failed'];
push @cases, ["envelope without X-E2E-Session",
    sub { request(method => 'POST', path => '/cgi-bin/echo.cgi',
                  raw_body => $good->('{"no":"session"}'), content_type => E2E_TYPE) },
    400, 'e2e_decrypt_failed'];
push @cases, ["envelope type in other case with parameters, bad tag",
    sub { my $e = $good->('{"x":1}');
          substr($e, 20, 1) = chr(ord(substr($e, 20, 1)) ^ 1);
          request(method => 'POST', path => '/cgi-bin/echo.cgi', session => $s,
                  raw_body => $e, content_type => 'Application/X-Zeq-E2E; v=1') },
    400, 'e2e_decrypt_failed'];
push @cases, ["bad envelope to the proxy",
    sub { request(method => 'POST', path => '/proxy/echo', session => $s,
                  raw_body => 'y' x 40, content_type => E2E_TYPE) },
    400, 'e2e_decrypt_failed'];

# 413 e2e_body_too_large (ZeqE2EMaxRequestBody 1024 under /limits/).
push @cases, ["encrypted body of 5028 bytes over ZeqE2EMaxRequestBody 1024, CGI",
    sub { request(method => 'POST', path => '/limits/cgi-bin/echo.cgi', session => $s,
                  body => 'z' x 5000) },
    413, 'e2e_body_too_large'];
push @cases, ["encrypted body of 5028 bytes over ZeqE2EMaxRequestBody 1024, proxy",
    sub { request(method => 'POST', path => '/limits/proxy/echo', session => $s,
                  body => 'z' x 5000) },
    413, 'e2e_body_too_large'];

# 403 e2e_required (ZeqE2ERequire On under /required/).
push @cases, ["ZeqE2ERequire: plaintext GET without a session",
    sub { request(path => '/required/cgi-bin/echo.cgi') }, 403, 'e2e_required'];
push @cases, ["ZeqE2ERequire: plaintext POST without a session",
    sub { request(method => 'POST', path => '/required/cgi-bin/echo.cgi',
                  raw_body => '{"plain":1}', content_type => 'application/json') },
    403, 'e2e_required'];
push @cases, ["ZeqE2ERequire: valid session but a plaintext body",
    sub { request(method => 'POST', path => '/required/cgi-bin/echo.cgi', session => $s,
                  body => '{"plain":1}', encrypt => 0) },
    403, 'e2e_required'];
push @cases, ["ZeqE2ERequire: valid session and envelope, Accept without the envelope type",
    sub { request(method => 'POST', path => '/required/cgi-bin/echo.cgi', session => $s,
                  body => '{"x":1}', accept => 'application/json') },
    403, 'e2e_required'];
push @cases, ["ZeqE2ERequire: valid session, Accept: */*",
    sub { request(path => '/required/cgi-bin/echo.cgi', session => $s, accept => '*/*') },
    403, 'e2e_required'];
push @cases, ["ZeqE2ERequire: valid session, no Accept",
    sub { request(path => '/required/cgi-bin/echo.cgi', session => $s, accept => '') },
    403, 'e2e_required'];
push @cases, ["ZeqE2ERequire: plaintext GET of a static file",
    sub { request(path => '/required/static/hello.txt') }, 403, 'e2e_required'];
push @cases, ["ZeqE2ERequire: plaintext POST to the proxy",
    sub { request(method => 'POST', path => '/required/proxy/echo',
                  raw_body => '{"plain":1}', content_type => 'application/json') },
    403, 'e2e_required'];
push @cases, ["ZeqE2ERequire for the whole zeq_env host: plaintext GET",
    sub { request(vhost => 'zeq_env', path => '/cgi-bin/echo.cgi') }, 403, 'e2e_required'];
push @cases, ["ZeqE2ERequire at <Location> of zeq_literal: plaintext GET",
    sub { request(vhost => 'zeq_literal', path => '/custom/cgi-bin/echo.cgi') },
    403, 'e2e_required'];

# 503 e2e_unavailable: a session header where no secret is configured.
push @cases, ["no secret: GET with X-E2E-Session",
    sub { request(vhost => 'zeq_nosecret', path => '/cgi-bin/echo.cgi',
                  session_id => $unknown, accept => E2E_TYPE) },
    503, 'e2e_unavailable'];
push @cases, ["no secret: POST with X-E2E-Session and an envelope",
    sub { request(vhost => 'zeq_nosecret', method => 'POST', path => '/cgi-bin/echo.cgi',
                  session_id => $unknown, raw_body => $good->('{"x":1}'),
                  content_type => E2E_TYPE) },
    503, 'e2e_unavailable'];

# 500 e2e_encrypt_failed: nph- scripts cannot be encrypted. (Whether the
# script ran is not asserted; its output must not reach the client.)
push @cases, ["nph- CGI with an encrypted exchange",
    sub { request(path => '/cgi-bin/nph-echo.cgi', session => $s) },
    500, 'e2e_encrypt_failed', 'may run'];
push @cases, ["nph- CGI under ZeqE2ERequire with an encrypted exchange",
    sub { request(path => '/required/cgi-bin/nph-echo.cgi', session => $s) },
    500, 'e2e_encrypt_failed', 'may run'];

plan tests => 2 + @cases * ($CE + 2) + 10, need_lwp;

ok t_cmp($s->{ok}, 1, 'handshake on zeq_file succeeded (needed by the cases below)');

# Control: requests that do reach the applications are counted.
{
    my ($cgi, $backend) = hits_delta(sub {
        request(method => 'POST', path => '/cgi-bin/echo.cgi', session => $s, body => '{}');
        request(method => 'POST', path => '/proxy/echo', session => $s, body => '{}');
    });
    ok t_cmp("cgi=$cgi backend=$backend", 'cgi=1 backend=1',
             'control: one CGI and one backend request are counted as one hit each');
}

for my $case (@cases) {
    my ($what, $code, $status, $error, $may_run) = @$case;
    my $r;
    my ($cgi, $backend) = hits_delta(sub { $r = $code->() });
    $cgi = 0 if $may_run;
    check_error($r, $status, $error, $what);
    ok t_cmp("cgi=$cgi backend=$backend", 'cgi=0 backend=0',
             "$what: the application never saw the request");
    ok t_cmp(index($r->{body}, 'NPH-PLAINTEXT-MARKER') < 0 ? 'absent' : 'leaked', 'absent',
             "$what: no application output in the answer");
}

# The same requests in a scope without ZeqE2ERequire pass: the 403s above
# come from the Require scope, not from the requests themselves.
{
    my $r = request(path => '/cgi-bin/echo.cgi');
    ok t_cmp($r->{status}, 200, 'plaintext GET outside ZeqE2ERequire: 200');
    my $n = request(vhost => 'zeq_nosecret', path => '/cgi-bin/echo.cgi');
    ok t_cmp($n->{status}, 200, 'no secret: a plaintext GET without X-E2E-Session passes (200)');
    my $r2 = request(path => '/required/cgi-bin/echo.cgi', session => $s);
    ok t_cmp($r2->{status}, 200, 'ZeqE2ERequire: GET with a session and Accept: 200');
    ok t_cmp($r2->{opened}, 1, 'ZeqE2ERequire: that answer is an envelope that opens');
    my $r3 = request(method => 'POST', path => '/required/proxy/echo', session => $s,
                     body => '{"required":"proxy"}');
    my $j = decode_json_safe($r3->{plain}) // {};
    ok t_cmp($j->{body}, '{"required":"proxy"}',
             'ZeqE2ERequire: encrypted POST through the proxy reaches the backend in plaintext');
    # Under the size limit, the same location works (plaintext answer: the
    # CGI's JSON is larger than the ZeqE2EMaxResponseBody 1000 there).
    my $r4 = request(method => 'POST', path => '/limits/cgi-bin/echo.cgi', session => $s,
                     body => 'z' x 500, accept => 'application/json');
    my $j4 = decode_json_safe($r4->{body}) // {};
    ok t_cmp($j4->{bodyLength}, 500,
             'ZeqE2EMaxRequestBody 1024: an envelope of 528 bytes passes');
}

# The nph refusals are logged; plaintext nph requests outside any
# encryption still work (the script is fine).
{
    my $mark = log_mark();
    my $r = request(path => '/cgi-bin/nph-echo.cgi', session => $s);
    my $log = log_since($mark);
    ok t_cmp($r->{status}, 500, 'nph- CGI with a session: 500 again');
    ok t_cmp($log, qr/\[zeq_e2e:(?:error|crit|alert|emerg)\][^\n]*ZEQ\d+:[^\n]*/,
             'nph- refusal: an error line of the module in error_log');
    my $p = request(path => '/cgi-bin/nph-echo.cgi');
    ok t_cmp($p->{body}, qr/NPH-PLAINTEXT-MARKER/,
             'nph- CGI without a session in a ZeqE2E On scope: its output passes through');
    my $o = request(path => '/off/cgi-bin/nph-echo.cgi');
    ok t_cmp($o->{body}, qr/NPH-PLAINTEXT-MARKER/,
             'nph- CGI in a ZeqE2E Off scope: its output passes through');
}
