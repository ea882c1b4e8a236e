# The ways around the module an attacker on the path tries, against the
# zeq_gate virtual host, which is configured the way Debian users run Apache
# (h2c, DirectoryIndex, ErrorDocument, Action, .htaccess rewrites, SSI,
# basic auth): Upgrade tricks, bodies on WebSocket openings, h2c, nph-
# scripts reached indirectly, ZeqE2ERequire behind internal redirects and
# subrequests, sessions of other virtual hosts, other modules' errors, and
# the e2e_session parameter spelt with escapes. Each case says what the
# module promises (README.md, docs/PROTOCOL.md) and tries to break it.
use strict;
use warnings;

use FindBin ();
use lib "$FindBin::Bin/lib";

use Apache::Test;
use Apache::TestUtil;
use File::Spec::Functions qw(catfile);
use MIME::Base64 qw(encode_base64);
use Time::HiRes ();
use ZeqTest;
use ZeqTest::Fixtures ();
use ZeqTest::WebSocket qw(wait_records backend_saw);

# The checks are collected first and counted for the plan at the end, so
# that a case can add as many as it needs.
my @checks;
sub check { push @checks, [@_] }
sub check_err { check(@$_) for error_checks(@_) }

my $static = do {
    open my $fh, '<:raw', catfile(Apache::Test::vars('documentroot'), 'static', 'hello.txt')
        or die "hello.txt: $!";
    local $/;
    <$fh>;
};
my $strict_marker = 'content only an encrypted exchange may get';
my $nph_marker = 'NPH-PLAINTEXT-MARKER';
my $hp = ZeqTest::hostport('zeq_gate');

my $s = handshake(vhost => 'zeq_gate');
check($s->{ok}, 1, 'a handshake on zeq_gate');
my $key = $s->{key} // ("\0" x 32);

# A WebSocket opening's head (RFC 6455 4.1), for raw requests.
my $fake_id = 'Q' x 43;    # of a session's form, never issued

sub opening_head {
    my ($target, @more) = @_;
    return join "\n", "GET $target HTTP/1.1", "Host: $hp", 'Upgrade: websocket',
        'Connection: Upgrade', 'Sec-WebSocket-Key: ' . encode_base64('0123456789abcdef', ''),
        'Sec-WebSocket-Version: 13', @more, 'Connection: close';
}

# --- 1. Upgrade: websocket turns nothing off ------------------------------------------------
{
    # Not an opening (no Connection: upgrade, no key): the HTTP rules apply,
    # and an e2e_session parameter is the application's (so not the real id
    # here: it would go where query strings go, the access log included).
    my $r = request(vhost => 'zeq_gate', path => "/required/static/hello.txt?e2e_session=$fake_id",
                    headers => [Upgrade => 'websocket']);
    check_err($r, 403, 'e2e_required',
              'Upgrade: websocket and ?e2e_session on a static file under ZeqE2ERequire (no X-E2E-Session)');
    check(index($r->{body}, $static), -1, 'Upgrade trick on a static file: the file does not come back');

    my ($cgi, $backend) = hits_delta(sub {
        $r = request(vhost => 'zeq_gate', method => 'POST',
                     path => "/required/proxy/echo?e2e_session=$fake_id", raw_body => '{"plain":1}',
                     content_type => 'application/json',
                     headers => [Upgrade => 'websocket', Connection => 'Upgrade']);
    });
    check_err($r, 403, 'e2e_required', 'a plaintext POST with Upgrade: websocket to a proxied app under ZeqE2ERequire');
    check($backend, 0, 'the plaintext POST with Upgrade never reached the backend');

    # A sealed POST with Upgrade headers to a CGI: decrypted, the session
    # id removed, the answer sealed; no Upgrade reaches the script.
    my $pt = '{"sealed":"post with an upgrade header"}';
    ($cgi) = hits_delta(sub {
        $r = request(vhost => 'zeq_gate', method => 'POST', path => "/cgi-bin/echo.cgi?e2e_session=$fake_id",
                     session => $s, body => $pt,
                     headers => [Upgrade => 'websocket', Connection => 'Upgrade',
                                 'Sec-WebSocket-Version' => 13]);
    });
    my $e = decode_json_safe($r->{plain}) // {};
    check("$r->{status} $r->{opened}", '200 1', 'a sealed POST with Upgrade headers to a CGI: 200, the answer opens');
    check($e->{body}, $pt, 'the CGI got the plaintext, not the envelope');
    check($e->{HTTP_X_E2E_SESSION}, undef, 'the CGI did not get X-E2E-Session');
    check($e->{env}{HTTP_UPGRADE}, undef, 'the CGI did not get the Upgrade header');
    check($cgi, 1, 'the CGI ran once');

    # A real opening with a valid session to a URL that is no WebSocket:
    # the answer is an ordinary sealed one, never plaintext.
    my $ws = ZeqTest::WebSocket->connect(vhost => 'zeq_gate', path => '/required/static/hello.txt',
                                         session => $s);
    check($ws->{status}, 200, 'an encrypted opening of a static file under ZeqE2ERequire: 200');
    check(media_type($ws->{h}->header('Content-Type')), E2E_TYPE, 'that answer is sealed');
    check(open_envelope($key, $ws->{body}), $static, 'it opens to the file');
    check(index($ws->{body}, $static), -1, 'the file does not travel in plaintext');

    # An opening the backend refuses (404) through mod_proxy_http: sealed.
    $ws = ZeqTest::WebSocket->connect(vhost => 'zeq_gate', path => '/ws/not-an-endpoint', session => $s);
    my $j = decode_json_safe(open_envelope($key, $ws->{body}) // '') // {};
    check("$ws->{status} " . media_type($ws->{h}->header('Content-Type')) . " " . ($j->{backend} // ''),
          '404 ' . E2E_TYPE . ' not found',
          'an encrypted opening the backend answers 404 (mod_proxy_http): the 404 arrives sealed');

    # Through mod_proxy_wstunnel's raw tunnel the answer cannot be sealed:
    # refused, the connection closed, nothing of it sent.
    my $t0 = Time::HiRes::time();
    $ws = ZeqTest::WebSocket->connect(vhost => 'zeq_gate', path => '/wst/not-an-endpoint', session => $s,
                                      timeout => 10);
    check($ws->{status}, 0, 'an encrypted opening the backend answers 404 through mod_proxy_wstunnel: '
                            . 'no answer, the connection is closed');
    check(index($ws->{body} // '', 'not found'), -1, 'none of the backend\'s plaintext answer arrives');
}

# --- 2. an opening with a body is refused --------------------------------------------------------
for my $case (['Content-Length', "Content-Length: 10", "\x81\x84abcd" . ("\x01" x 4)],
              ['chunked', "Transfer-Encoding: chunked", "a\r\n\x81\x84abcd\x01\x01\x01\x01\r\n0\r\n\r\n"]) {
    my ($what, $hdr, $body) = @$case;
    my $conn = ZeqTest::WebSocket::new_conn_id();
    my $r = raw_request(vhost => 'zeq_gate',
                        head => opening_head("/ws/echo?conn=$conn&e2e_session=$s->{id}", $hdr),
                        body => $body);
    check_err($r, 400, 'e2e_bad_request', "an encrypted WebSocket opening with a body ($what)");
    check(backend_saw($conn), 0, "the opening with a body ($what) never reached the backend");
}

# --- 3. h2c: an exchange the module handles is never upgraded ------------------------------------
{
    my $r = request(vhost => 'zeq_gate', path => '/static/hello.txt', via => 'curl', http2 => 1);
    check("$r->{status} $r->{http_version}", '200 2',
          'control: a plaintext GET with curl --http2 over cleartext is upgraded to h2c');
    for my $case (['/static/hello.txt', 'a static file'], ['/cgi-bin/echo.cgi', 'a CGI'],
                  ['/proxy/echo', 'a proxied app'], ['/required/static/hello.txt', 'a static file under ZeqE2ERequire']) {
        my ($path, $what) = @$case;
        $r = request(vhost => 'zeq_gate', path => $path, session => $s, via => 'curl', http2 => 1);
        check("$r->{status} $r->{http_version} $r->{enveloped} " . ($r->{opened} // 'undef'), '200 1.1 1 1',
              "curl --http2 over cleartext with a session, $what: answered over HTTP/1.1, sealed, opens");
    }
    $r = request(vhost => 'zeq_gate', method => 'POST', path => '/cgi-bin/echo.cgi', session => $s,
                 body => '{"h2c":"post"}', via => 'curl', http2 => 1);
    my $e = decode_json_safe($r->{plain}) // {};
    check("$r->{status} " . ($r->{opened} // 'undef') . ' ' . ($e->{body} // ''), '200 1 {"h2c":"post"}',
          'an encrypted POST with curl --http2 over cleartext: decrypted for the CGI, the answer opens');
    # HTTP/2 with prior knowledge (no upgrade): sealed like over TLS.
    $r = request(vhost => 'zeq_gate', path => '/static/hello.txt', session => $s, via => 'curl',
                 http2 => 'prior');
    check("$r->{status} $r->{http_version} " . ($r->{opened} // 'undef') . ' ' . ($r->{plain} // ''),
          "200 2 1 $static", 'h2c with prior knowledge and a session: sealed over HTTP/2');
}

# --- 4. nph- scripts reached indirectly ----------------------------------------------------------
for my $case (['/nphdir/', 'DirectoryIndex nph-index.cgi (mod_dir\'s fast redirect)'],
              ['/nph-errdoc/missing.html', 'ErrorDocument 404 to an nph- script'],
              ['/action/x.act', 'Action to an nph- script']) {
    my ($path, $what) = @$case;
    my $r;
    my ($cgi) = hits_delta(sub { $r = request(vhost => 'zeq_gate', path => $path, session => $s) });
    check_err($r, 500, 'e2e_encrypt_failed', "$what with a session");
    check(index($r->{body}, $nph_marker), -1, "$what: none of the script's output reaches the client");
    check($cgi, 0, "$what: the nph- script never ran");
}
{
    my $r = request(vhost => 'zeq_gate', path => '/nphdir/', session => $s, via => 'curl', http2 => 1);
    check("$r->{status} " . (index($r->{body}, $nph_marker) < 0 ? 'no marker' : 'MARKER'), '500 no marker',
          'DirectoryIndex nph-index.cgi with a session over curl --http2 (h2c): refused, no plaintext');
    my $p = request(vhost => 'zeq_gate', path => '/nphdir/');
    check(index($p->{body}, $nph_marker) >= 0 ? 'marker' : 'none', 'marker',
          'control: without a session the nph- DirectoryIndex answers (plaintext exchanges are not refused)');
}

# --- 5. ZeqE2ERequire behind internal redirects and subrequests -----------------------------------
for my $case (['/htrw/anything', 'a per-directory RewriteRule (.htaccess) to /strict/'],
              ['/strict-errdoc/missing.html', 'ErrorDocument 404 /strict/s.json']) {
    my ($path, $what) = @$case;
    my $r = request(vhost => 'zeq_gate', path => $path);
    check_err($r, 403, 'e2e_required', "$what without a session");
    check(index($r->{body}, $strict_marker), -1, "$what without a session: the /strict/ content does not come back");
    $r = request(vhost => 'zeq_gate', path => $path, session => $s);
    check(($r->{opened} // 'undef') . ' ' . (index($r->{plain} // '', $strict_marker) >= 0 ? 'content' : 'none'),
          '1 content', "$what with a session: the content, sealed");
}
{
    my $r = request(vhost => 'zeq_gate', path => '/ssi/page.shtml');
    check($r->{status}, 200, 'an SSI page that includes /strict/s.json, without a session: the page answers');
    check(index($r->{body}, $strict_marker), -1,
          'the SSI page without a session: the included /strict/ content is not in it');
    $r = request(vhost => 'zeq_gate', path => '/ssi/page.shtml', session => $s);
    check(($r->{opened} // 'undef') . ' ' . (index($r->{plain} // '', $strict_marker) >= 0 ? 'content' : 'none'),
          '1 content', 'the SSI page with a session: the included content, sealed with the page');
    check(index($r->{body}, $strict_marker), -1, 'the SSI page with a session: nothing of it in plaintext');
}

# --- 7. sessions belong to their virtual host -----------------------------------------------------
{
    my $f = handshake(vhost => 'zeq_file');
    check("$f->{expires_in} $s->{expires_in}", '3600 60',
          'zeq_file and zeq_gate share the secret and have their own TTLs');
    my $r = request(vhost => 'zeq_gate', path => '/static/hello.txt', session => $f);
    check_err($r, 401, 'e2e_session_invalid', 'a session of zeq_file on zeq_gate (same secret)');
    $r = request(vhost => 'zeq_file', path => '/static/hello.txt', session => $s);
    check_err($r, 401, 'e2e_session_invalid', 'a session of zeq_gate on zeq_file (same secret)');
    my $ws = ZeqTest::WebSocket->connect(vhost => 'zeq_gate', path => '/ws/echo', session => $f);
    check($ws->{status}, 401, 'a session of zeq_file opening a WebSocket on zeq_gate: 401');
    $r = request(vhost => 'zeq_file', path => '/static/hello.txt', session => $f);
    check("$r->{status} " . ($r->{opened} // 'undef'), '200 1', 'control: the zeq_file session on zeq_file');

    # ZeqE2ESessionScope: two hosts that say they share, share.
    my $a = handshake(vhost => 'zeq_scope_a');
    my $b = handshake(vhost => 'zeq_scope_b');
    $r = request(vhost => 'zeq_scope_b', method => 'POST', path => '/cgi-bin/echo.cgi', session => $a,
                 body => '{"from":"a"}');
    my $e = decode_json_safe($r->{plain}) // {};
    check("$r->{status} " . ($r->{opened} // 'undef') . ' ' . ($e->{body} // ''), '200 1 {"from":"a"}',
          'ZeqE2ESessionScope: a session of zeq_scope_a serves zeq_scope_b');
    $r = request(vhost => 'zeq_scope_a', path => '/cgi-bin/echo.cgi', session => $b);
    check("$r->{status} " . ($r->{opened} // 'undef'), '200 1', 'and one of zeq_scope_b serves zeq_scope_a');
    $r = request(vhost => 'zeq_gate', path => '/static/hello.txt', session => $a);
    check($r->{status}, 401, 'a shared-scope session is still refused by a host outside the scope');
}

# --- 8. other modules' answers to an encrypting client are sealed -----------------------------------
{
    my $r = request(vhost => 'zeq_gate', path => '/auth/secret.txt', session => $s);
    check("$r->{status} " . ($r->{opened} // 'undef'), '401 1', 'a 401 of mod_auth_basic to a client with a session: sealed');
    check($r->{plain} // '', qr/401|Unauthorized/i, 'the sealed 401 opens to Apache\'s page');
    check($r->{h}->header('WWW-Authenticate') // '', qr/^Basic /, 'the WWW-Authenticate challenge is visible');
    my $cred = encode_base64(ZeqTest::Fixtures::AUTH_USER . ':' . ZeqTest::Fixtures::AUTH_PASSWORD, '');
    $r = request(vhost => 'zeq_gate', path => '/auth/missing.txt', session => $s,
                 headers => [Authorization => "Basic $cred"]);
    check("$r->{status} " . ($r->{opened} // 'undef'), '404 1', 'authenticated: the 404 behind the auth is sealed too');
    $r = request(vhost => 'zeq_gate', path => '/auth/secret.txt');
    check("$r->{status} $r->{enveloped}", '401 0', 'control: without a session the 401 is plaintext');

    # A header over LimitRequestFieldSize: Apache refuses the request while
    # reading its head; the session and Accept came before, so the 400 is
    # sealed.
    my $head = join "\n", 'GET /static/hello.txt HTTP/1.1', "Host: $hp", "X-E2E-Session: $s->{id}",
        'Accept: ' . E2E_TYPE, 'User-Agent: zeq-e2e-tests', 'X-Big: ' . ('x' x 4000), 'Connection: close';
    $r = raw_request(vhost => 'zeq_gate', head => $head, key => $key);
    check("$r->{status} " . ($r->{opened} // 'undef'), '400 1', 'a 400 for an oversized header: sealed');
    # A request line Apache cannot parse: nothing of the request is known.
    $r = raw_request(vhost => 'zeq_gate', key => $key,
                     head => "GET /static/hello.txt HTTP/1.1 trailing\nHost: $hp\nX-E2E-Session: $s->{id}\n"
                             . 'Accept: ' . E2E_TYPE . "\nConnection: close");
    check("$r->{status} $r->{enveloped}", '400 0',
          'a 400 for a request line Apache cannot parse: plaintext (PROTOCOL.md 7.3)');
}

# --- 9. the e2e_session parameter, however it is spelt ----------------------------------------------
{
    # A session used only on openings here, so that the access log check
    # below sees only requests whose target the module owns.
    my $w = handshake(vhost => 'zeq_gate');
    my $ws = ZeqTest::WebSocket->connect(vhost => 'zeq_gate', path => '/ws/echo', session => $w,
                                         session_param => 'e2e%5Fsession');
    check($ws->{open}, 1, '?e2e%5Fsession=ID opens a WebSocket');
    $ws->send_message(text => 'spelt with an escape');
    my $m = $ws->read_message;
    check(($m->{type} // '') . ' ' . ($m->{data} // ''), 'text spelt with an escape',
          '?e2e%5Fsession=ID: the socket is encrypted (the echo opens under the session key)');
    my @ev = wait_records($ws->conn, sub { grep { $_->{ev} eq 'open' } @_ });
    my ($open) = grep { $_->{ev} eq 'open' } @ev;
    check(($open->{target} // '') =~ /e2e|\Q$w->{id}\E/ ? 'leaked' : 'clean', 'clean',
          '?e2e%5Fsession=ID: the backend saw no parameter and no session id');
    $ws->send_close(1000);

    $ws = ZeqTest::WebSocket->connect(vhost => 'zeq_gate', path => '/ws/echo', session => $w,
                                      headers => ['X-E2E-Session' => $w->{id}]);
    @ev = wait_records($ws->conn, sub { grep { $_->{ev} eq 'open' } @_ });
    ($open) = grep { $_->{ev} eq 'open' } @ev;
    check(exists(($open->{headers} // {})->{'x-e2e-session'}) ? 'header' : 'none', 'none',
          'an X-E2E-Session header on an opening does not reach the backend');
    $ws->send_close(1000);

    my $conn = ZeqTest::WebSocket::new_conn_id();
    my $r = raw_request(vhost => 'zeq_gate',
                        head => opening_head("/ws/echo?conn=$conn&e2e_session=$w->{id}&e2e%5Fsession=$w->{id}"));
    check_err($r, 400, 'e2e_bad_request', 'e2e_session given twice');
    check(backend_saw($conn), 0, 'e2e_session given twice: the backend never saw the opening');

    # The request line in the access log (%r) carries no session id.
    select(undef, undef, undef, 0.3);
    open my $fh, '<', catfile(Apache::Test::vars('t_logs'), 'access_log') or die "access_log: $!";
    my @leaks = grep { index($_, $w->{id}) >= 0 } <$fh>;
    close $fh;
    check(scalar(@leaks), 0, 'the access log holds no request line with the session id (WebSockets included)');
}

plan tests => scalar(@checks), need_lwp;
ok t_cmp($_->[0], $_->[1], $_->[2]) for @checks;
