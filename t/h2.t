# HTTP/2 over TLS (mod_http2 + mod_ssl, zeq_h2), with curl: handshake,
# encrypted POST to the CGI and to the proxy, encrypted GETs of a small and
# a 3 MB static file, an error. HTTP/2 request bodies come without a
# Content-Length from curl's point of view: the CGI and the backend must
# still see the plaintext length.
use strict;
use warnings;

use FindBin ();
use lib "$FindBin::Bin/lib";

use Apache::Test;
use Apache::TestUtil;
use File::Spec::Functions qw(catfile);
use JSON::PP ();
use ZeqTest;

my $CE = ZeqTest::CHECK_ERROR_TESTS;

plan tests => 4 + 6 + 4 + 3 + 3 + $CE + 2 + 1,
    need need_lwp,
    { 'curl with HTTP/2 support' => sub { (`curl --version 2>/dev/null` // '') =~ /\bHTTP2\b/ } };

my $docroot = Apache::Test::vars('documentroot');
sub slurp {
    open my $fh, '<:raw', $_[0] or return undef;
    local $/;
    my $d = <$fh>;
    close $fh;
    return $d;
}

sub h2 {
    my (%a) = @_;
    return request(vhost => 'zeq_h2', via => 'curl', %a);
}

# --- handshake over h2 ------------------------------------------------------------
my $cn = random_hex(32);
my $hs = ZeqTest::curl_request(vhost => 'zeq_h2', method => 'POST', path => '/api/e2e/handshake',
                               http2 => 1,
                               headers => ['Content-Type' => 'application/json'],
                               body => JSON::PP->new->encode({ clientNonce => $cn }));
my $j = decode_json_safe($hs->{body}) // {};
ok t_cmp($hs->{http_version}, '2', 'handshake: the exchange really was HTTP/2');
ok t_cmp($hs->{status}, 200, 'handshake over HTTP/2: 200');
ok t_cmp($j->{sessionId} // '', qr/^[A-Za-z0-9_-]{22,}$/, 'handshake over HTTP/2: a sessionId');
ok t_cmp(lc($hs->{h}->header('Cache-Control') // ''), qr/no-store/,
         'handshake over HTTP/2: Cache-Control no-store');

my $s = { ok => 0, id => $j->{sessionId} };
if (($j->{serverNonce} // '') =~ /^[0-9a-f]{64}$/) {
    $s->{key} = derive_key(ZeqTest::secret_for('zeq_h2'), pack('H*', $cn), pack('H*', $j->{serverNonce}));
    ZeqTest::record_key($s->{key});
    $s->{ok} = 1;
}

# --- encrypted POST to the CGI ------------------------------------------------------
{
    my $pt = '{"over":"h2","pad":"' . ('h' x 30000) . '"}';
    my $r = h2(method => 'POST', path => '/cgi-bin/echo.cgi', session => $s, body => $pt);
    my $e = decode_json_safe($r->{plain}) // {};
    ok t_cmp($r->{http_version}, '2', 'POST to the CGI: HTTP/2');
    ok t_cmp($r->{status}, 200, 'encrypted POST to the CGI over HTTP/2: 200');
    ok t_cmp($r->{opened}, 1, 'over HTTP/2: the answer opens');
    ok t_cmp($e->{CONTENT_LENGTH}, length($pt), 'over HTTP/2: CGI CONTENT_LENGTH is the plaintext length');
    ok t_cmp($e->{HTTP_TRANSFER_ENCODING}, undef, 'over HTTP/2: no Transfer-Encoding for the CGI');
    ok t_cmp(digest_of($e->{body}), digest_of($pt), 'over HTTP/2: the CGI read exactly the plaintext');
}

# --- encrypted POST to the proxy -------------------------------------------------------
{
    my $pt = det_bytes(200_000, 'h2-proxy');
    my $r = h2(method => 'POST', path => '/proxy/echo', session => $s, body => $pt,
               inner_type => 'application/octet-stream');
    my $e = decode_json_safe($r->{plain}) // {};
    ok t_cmp($r->{http_version}, '2', 'POST to the proxy: HTTP/2');
    ok t_cmp($e->{contentLength}, 200_000, 'over HTTP/2: backend Content-Length 200000');
    ok t_cmp($e->{transferEncoding}, undef, 'over HTTP/2: backend saw no Transfer-Encoding');
    ok t_cmp($e->{bodySha256}, sha256_hex($pt), 'over HTTP/2: backend got the exact plaintext');
}

# --- encrypted GETs of static files ---------------------------------------------------------
{
    my $hello = slurp(catfile($docroot, 'static', 'hello.txt'));
    my $r = h2(path => '/static/hello.txt', session => $s);
    ok t_cmp($r->{http_version}, '2', 'GET hello.txt: HTTP/2');
    ok t_cmp($r->{plain}, $hello, 'over HTTP/2: hello.txt opens to the file');
    ok t_cmp($r->{h}->header('content-length'), length($hello // '') + OVERHEAD,
             'over HTTP/2: content-length 28 + size');
}
{
    my $big = slurp(catfile($docroot, 'gen', 'big.bin'));
    my $r = h2(path => '/gen/big.bin', session => $s);
    ok t_cmp($r->{http_version}, '2', 'GET 3 MB: HTTP/2');
    ok t_cmp(length($r->{body}), length($big // '') + OVERHEAD, 'over HTTP/2: 3 MB + 28 bytes arrived');
    ok t_cmp(sha256_hex($r->{plain} // ''), sha256_hex($big // 'x'),
             'over HTTP/2: the 3 MB envelope opens to the file');
}

# --- an error over HTTP/2 ----------------------------------------------------------------------
{
    my $r = h2(path => '/cgi-bin/echo.cgi', session_id => 'B' x 43, accept => E2E_TYPE);
    check_error($r, 401, 'e2e_session_invalid', 'unknown session over HTTP/2');
    ok t_cmp($r->{http_version}, '2', 'error: HTTP/2');
    my $p = h2(path => '/static/hello.txt');
    ok t_cmp($p->{enveloped}, 0, 'plaintext GET over HTTP/2: not sealed');
}

# The same vhost over HTTP/1.1 and TLS (curl --http1.1) gives the same answer.
{
    my $r = request(vhost => 'zeq_h2', via => 'curl', http2 => 0, path => '/static/hello.txt',
                    session => $s);
    ok t_cmp(($r->{http_version} // '') . ' ' . ($r->{opened} // 0), '1.1 1',
             'zeq_h2 over HTTP/1.1 + TLS: sealed answer that opens');
}
