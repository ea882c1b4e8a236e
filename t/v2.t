# Protocol v2 (docs/PROTOCOL.md section 18) with the suite's independent
# client (t/lib/ZeqTest/V2.pm, CryptX): handshakes plain, with the
# pre-shared key and signed; every handshake error; encrypted requests to
# CGI, the proxied backend and static files (small and 3 MB), error pages,
# HEAD, 204 and 304 with their seals; every binding (method, target,
# sequence number, type, status, bodies swapped, a response sent as a
# request, another session's id); replays (sequential, concurrent from
# several connections, out of order within the window, below it); HTTP/2;
# WebSockets with e2e_seq and e2e_seal. The application must never see a
# request that fails.
use strict;
use warnings;

use FindBin ();
use lib "$FindBin::Bin/lib";

use Apache::Test;
use Apache::TestUtil;
use Digest::SHA qw(sha256_hex);
use File::Spec::Functions qw(catfile);
use JSON::PP ();
use POSIX ();
use Time::HiRes ();
use ZeqTest;
use ZeqTest::Fixtures ();
use ZeqTest::V2 ();
use Crypt::PK::ECC ();
use ZeqTest::WebSocket qw(wait_records backend_saw records_at_end messages_of);

my @checks;
sub check { push @checks, [@_] }
sub check_err {
    my ($r, $status, $code, $what) = @_;
    $r = { status => $r->code, h => $r->headers, body => $r->content } if ref $r eq 'HTTP::Response';
    my $err = json_error($r) // {};
    check("$r->{status} " . ($err->{error} // 'no JSON error') . ' '
          . media_type($r->{h}->header('Content-Type')),
          "$status $code application/json", "$what: $status $code (plaintext JSON)");
}
sub req { ZeqTest::V2::request(@_) }
sub json { decode_json_safe($_[0] // '') // {} }
my $JSON = JSON::PP->new->canonical(1);

my $docroot = Apache::Test::vars('documentroot');
sub slurp { open my $fh, '<:raw', $_[0] or return undef; local $/; my $d = <$fh>; $d }
my $hello = slurp(catfile($docroot, 'static', 'hello.txt'));
my $big = slurp(catfile($docroot, 'gen', 'big.bin'));
my $cn_hex = random_hex(32);

# --- 18.1 handshakes ---------------------------------------------------------------------------
my $s = ZeqTest::V2::handshake(vhost => 'zeq_file');
{
    my $j = $s->{json} // {};
    check($s->{ok}, 1, 'a v2 handshake on a host with a secret');
    check(join(',', sort keys %$j), 'expiresIn,serverKey,serverNonce,sessionId,version',
          'the v2 answer: version, sessionId, serverNonce, serverKey, expiresIn (no signature here)');
    check($s->{res}->header('Cache-Control') // '', 'no-store', 'the answer is not cached');
    my $t = ZeqTest::V2::handshake(vhost => 'zeq_file');
    check($t->{server_point} ne $s->{server_point} ? 'fresh' : 'reused', 'fresh',
          'every handshake has a fresh serverKey');
    my $n = ZeqTest::V2::handshake(vhost => 'zeq_nosecret');
    check($n->{ok}, 1, 'v2 needs no secret: a handshake on the host without one');
    my $r = req(session => $n, method => 'POST', path => '/cgi-bin/echo.cgi', body => '{"no":"secret"}');
    check("$r->{status} $r->{verified} " . (json($r->{plain})->{body} // ''), '200 1 {"no":"secret"}',
          'v2 on the host without a secret: the CGI gets the plaintext, the answer verifies');
}
# pre-shared key mode
{
    my $p = ZeqTest::V2::handshake(vhost => 'zeq_file', psk => 1);
    my $r = req(session => $p, method => 'POST', path => '/cgi-bin/echo.cgi', body => 'with the psk');
    check("$r->{status} $r->{verified} " . (json($r->{plain})->{body} // ''), '200 1 with the psk',
          'PSK mode: keys from Z || PSK work both ways');
    my $w = ZeqTest::V2::handshake(vhost => 'zeq_file', psk => 1, secret => 'not the secret');
    my $c = cgi_hits();
    $r = req(session => $w, method => 'POST', path => '/cgi-bin/echo.cgi', body => 'wrong psk');
    check_err($r, 400, 'e2e_decrypt_failed', 'PSK mode with another secret: the first request');
    check(cgi_hits() - $c, 0, 'PSK mode with another secret: the CGI never ran');
    my $n = ZeqTest::V2::handshake(vhost => 'zeq_nosecret', psk => 1);
    check_err($n->{res}, 503, 'e2e_unavailable', '"psk": true where no secret is configured');
    my $ok = ZeqTest::V2::handshake(vhost => 'zeq_psk', psk => 1);
    check($ok->{ok}, 1, 'ZeqE2ERequirePSK On: a PSK handshake is accepted');
    my $no = ZeqTest::V2::handshake(vhost => 'zeq_psk');
    check_err($no->{res}, 400, 'e2e_psk_required', 'ZeqE2ERequirePSK On: a handshake without it');
}
# signed handshakes
{
    my @pub = map {
        open my $fh, '-|', 'openssl', 'pkey', '-in', ZeqTest::Fixtures::signing_key($_), '-pubout'
            or die "openssl: $!";
        local $/;
        <$fh>;
    } 1, 2;
    my $g = ZeqTest::V2::handshake(vhost => 'zeq_signed');
    check($g->{ok}, 1, 'a handshake on the host with signing keys');
    check(ZeqTest::V2::signature_ok($g, $pub[0]), 1,
          'the signature verifies over the transcript with the first ZeqE2EServerKey, its signer names it');
    check(ZeqTest::V2::signature_ok($g, $pub[1]), 0, 'the second key (listed for rotation) did not sign');
    my $bad = { %$g, transcript => $g->{transcript} . 'x' };
    check(ZeqTest::V2::signature_ok($bad, $pub[0]), 0, 'the signature binds the transcript');
    my $r = req(session => $g, path => '/cgi-bin/echo.cgi');
    check("$r->{status} $r->{verified}", '200 1', 'the signed session works');
    my $h = ZeqTest::V2::handshake(vhost => 'zeq_signed');
    check(ZeqTest::V2::signature_ok({ %$h, json => { %{ $h->{json} }, signature => $g->{json}{signature} } },
                                    $pub[0]), 0,
          'another handshake\'s signature does not verify (it binds the nonces and keys)');
}
# handshake errors: the body first, then the policy
{
    my $ck = ZeqTest::V2::b64url(do { my $k = Crypt::PK::ECC->new; $k->generate_key('secp256r1');
                                      $k->export_key_raw('public') });
    my $off = do { my $p = ZeqTest::V2::unb64url($ck); substr($p, 64, 1) ^= "\x01"; ZeqTest::V2::b64url($p) };
    my @bad = (
        ['"version": 3', { version => 3, clientNonce => $cn_hex, clientKey => $ck }, 400, 'e2e_version_unsupported'],
        ['"version": 0', { version => 0, clientNonce => $cn_hex }, 400, 'e2e_version_unsupported'],
        ['"version": "2"', { version => '2', clientNonce => $cn_hex, clientKey => $ck }, 400, 'e2e_bad_handshake'],
        ['"version": 2.5', '{"version":2.5,"clientNonce":"' . $cn_hex . '","clientKey":"' . $ck . '"}', 400, 'e2e_bad_handshake'],
        ['"psk": 1', { version => 2, psk => 1, clientNonce => $cn_hex, clientKey => $ck }, 400, 'e2e_bad_handshake'],
        ['no clientKey', { version => 2, clientNonce => $cn_hex }, 400, 'e2e_bad_handshake'],
        ['a clientKey off the curve', { version => 2, clientNonce => $cn_hex, clientKey => $off }, 400, 'e2e_bad_handshake'],
        ['a clientKey with padding', { version => 2, clientNonce => $cn_hex, clientKey => "$ck=" }, 400, 'e2e_bad_handshake'],
        ['a compressed clientKey', { version => 2, clientNonce => $cn_hex,
                                     clientKey => ZeqTest::V2::b64url("\x02" . substr(ZeqTest::V2::unb64url($ck), 1, 32)) },
         400, 'e2e_bad_handshake'],
        ['the point at infinity', { version => 2, clientNonce => $cn_hex,
                                    clientKey => ZeqTest::V2::b64url("\x04" . ("\0" x 64)) }, 400, 'e2e_bad_handshake'],
        ['a 62-digit clientNonce', { version => 2, clientNonce => substr($cn_hex, 2), clientKey => $ck }, 400, 'e2e_bad_handshake'],
    );
    for my $b (@bad) {
        my ($what, $body, $status, $code) = @$b;
        my $res = handshake_raw(vhost => 'zeq_file', body => ref $body ? $JSON->encode($body) : $body);
        check_err($res, $status, $code, "handshake with $what");
    }
    my $v2 = $JSON->encode({ version => 2, clientNonce => $cn_hex, clientKey => $ck });
    check_err(handshake_raw(vhost => 'zeq_v1only', body => $v2), 400, 'e2e_version_unsupported',
              'a v2 handshake where ZeqE2EProtocol 1');
    check_err(handshake_raw(vhost => 'zeq_psk', body => $JSON->encode({ clientNonce => $cn_hex })), 400,
              'e2e_version_unsupported', 'a v1 handshake where ZeqE2EProtocol 2 (with a secret)');
    check_err(handshake_raw(vhost => 'zeq_nosecret', body => $JSON->encode({ clientNonce => $cn_hex })), 503,
              'e2e_unavailable', 'a v1 handshake where no secret is configured (no secret before not offered)');
    check_err(handshake_raw(vhost => 'zeq_psk', body => $JSON->encode({ version => 2, clientNonce => 'x',
                                                                         clientKey => $ck })),
              400, 'e2e_bad_handshake', 'a bad body where ZeqE2ERequirePSK: the body is judged first');
    my $v1 = handshake(vhost => 'zeq_v1only');
    check($v1->{ok}, 1, 'control: the v1 handshake where ZeqE2EProtocol 1');
}

# --- 18.6 and 18.8: requests and answers ---------------------------------------------------------
{
    my $pt = '{"v2":"a body for the CGI","pad":"' . ('x' x 40000) . '"}';
    my ($cgi) = hits_delta(sub { });
    my $r = req(session => $s, method => 'POST', path => '/cgi-bin/echo.cgi?q=1', body => $pt,
                inner_type => 'application/json');
    my $e = json($r->{plain});
    check("$r->{status} $r->{verified}", '200 1', 'an encrypted POST to a CGI (three records): the answer verifies');
    check(digest_of($e->{body}), digest_of($pt), 'the CGI got the plaintext');
    check("$e->{CONTENT_LENGTH} $e->{CONTENT_TYPE}", length($pt) . ' application/json',
          'the CGI saw the plaintext Content-Length and the inner type');
    check(join(',', grep { /^HTTP_X_E2E/ } sort keys %{ $e->{env} || {} }), '',
          'the CGI got no X-E2E-Session, X-E2E-Seq, X-E2E-Seal or X-E2E-Content-Type');
    # (LWP reports the transfer coding it undid as Client-Transfer-Encoding.)
    # mod_cgid may hand over a short output whole, with its end: the length
    # is then known before the first byte, and exact.
    my $cl = $r->{h}->header('Content-Length');
    my $te = $r->{h}->header('Client-Transfer-Encoding') // $r->{h}->header('Transfer-Encoding') // 'none';
    check(defined $cl ? "exact " . ($cl == ZeqTest::V2::sealed_len(length($r->{plain} // '')) ? 'yes' : "no ($cl)")
                      : "none $te",
          defined $cl ? 'exact yes' : 'none chunked',
          'a CGI answer is streamed chunked, or, when it came whole at once, with its exact sealed Content-Length (18.8)');

    $r = req(session => $s, method => 'POST', path => '/proxy/echo', body => 'to the backend',
             inner_type => 'text/plain');
    $e = json($r->{plain});
    check("$r->{status} $r->{verified} " . ($e->{body} // ''), '200 1 to the backend',
          'an encrypted POST to the proxied backend');
    check($e->{headers}{'content-length'} // '', '14', 'the backend got the plaintext Content-Length');

    $r = req(session => $s, path => '/static/hello.txt');
    check("$r->{status} $r->{verified}", '200 1', 'GET of a small static file');
    check($r->{plain}, $hello, 'it opens to the file');
    $r = req(session => $s, path => '/gen/big.bin');
    check("$r->{status} $r->{verified} " . digest_of($r->{plain}), '200 1 ' . digest_of($big),
          'GET of the 3 MB static file: verifies, opens to the file');
    check(($r->{h}->header('Content-Length') // 'none') . ' '
          . ($r->{h}->header('Client-Transfer-Encoding') // $r->{h}->header('Transfer-Encoding') // 'none'),
          ZeqTest::V2::sealed_len(length $big) . ' none',
          'its length is known: the exact sealed Content-Length (13 + 20 per 16 KiB record + n), not chunked');

    $r = req(session => $s, path => '/static/no-such-file');
    check("$r->{status} $r->{verified}", '404 1', 'Apache\'s own 404 page is sealed, bound to 404');
    check($r->{plain} // '', qr/Not Found/, 'it opens to the 404 page');
    $r = req(session => $s, path => '/cgi-bin/echo.cgi?status=201');
    check("$r->{status} $r->{verified}", '201 1', 'a CGI\'s 201: sealed, bound to 201');
    $r = req(session => $s, path => '/cgi-bin/echo.cgi?gzip=1');
    check("$r->{status} $r->{verified} " . ($r->{h}->header('X-E2E-Content-Encoding') // ''), '200 1 gzip',
          'a CGI that compresses: the coding is bound as the inner encoding');

    $r = req(session => $s, method => 'HEAD', path => '/static/hello.txt');
    check("$r->{status} $r->{verified}", '200 1', 'HEAD: no body, X-E2E-Seal verifies');
    check($r->{h}->header('Content-Length') // 'none', ZeqTest::V2::sealed_len(length $hello),
          'HEAD: the Content-Length the GET has');
    check(media_type($r->{h}->header('Content-Type')) . ' ' . ($r->{h}->header('X-E2E-Content-Type') // ''),
          E2E_TYPE . ' text/plain', 'HEAD: Content-Type and X-E2E-Content-Type of a sealed answer');
    for my $st (204, 304) {
        $r = req(session => $s, path => "/proxy/status/$st");
        check("$r->{status} $r->{verified}", "$st 1", "a $st from the backend carries an X-E2E-Seal that verifies");
    }
    # the seal binds the status
    $r = req(session => $s, path => '/proxy/status/204');
    my $seal = ZeqTest::V2::unb64url($r->{h}->header('X-E2E-Seal'));
    check(defined ZeqTest::V2::open_msg($s->{s2c}, ZeqTest::V2::response_aad($s, $r->{sent_seq}, 200, undef, undef),
                                        $seal) ? 'opens' : 'refused', 'refused',
          'the 204\'s seal does not verify as a 200 (the status is bound)');
    # an answer is bound to its request's number
    $r = req(session => $s, path => '/static/hello.txt');
    check(defined ZeqTest::V2::open_msg($s->{s2c},
                                        ZeqTest::V2::response_aad($s, $r->{sent_seq} + 1, 200, 'text/plain', undef),
                                        $r->{body}) ? 'opens' : 'refused', 'refused',
          'an answer does not verify for another request\'s number');
    check(defined ZeqTest::V2::open_msg($s->{c2s},
                                        ZeqTest::V2::response_aad($s, $r->{sent_seq}, 200, 'text/plain', undef),
                                        $r->{body}) ? 'opens' : 'refused', 'refused',
          'an answer does not open under the client\'s key (no reflection)');
    # HTTP/2 over TLS
    my $h2 = ZeqTest::V2::handshake(vhost => 'zeq_h2');
    $r = req(session => $h2, method => 'POST', path => '/cgi-bin/echo.cgi', body => 'over h2', via => 'curl');
    check("$r->{status} $r->{http_version} $r->{verified} " . (json($r->{plain})->{body} // ''), '200 2 1 over h2',
          'HTTP/2: an encrypted POST');
    $r = req(session => $h2, path => '/cgi-bin/echo.cgi?a=%41&b=1', via => 'curl');
    check("$r->{status} $r->{http_version} $r->{verified}", '200 2 1',
          'HTTP/2: a sealed GET with a percent-encoded query (the :path as sent is bound)');
}

# --- bindings: each altered request is refused and never reaches the application ----------------
{
    my $other = ZeqTest::V2::handshake(vhost => 'zeq_file');
    my $body = 'a body for the bindings';
    my @cases = (
        ['the method changed (sealed for POST, sent as PUT)',
         method => 'PUT', aad_method => 'POST', body => $body],
        ['the target changed (sealed for ?a=1, sent to ?a=2)',
         method => 'POST', path => '/cgi-bin/echo.cgi?a=2', aad_target => '/cgi-bin/echo.cgi?a=1', body => $body],
        ['the target\'s escapes changed (%41 for A)',
         method => 'POST', path => '/cgi-bin/echo.cgi?x=%41', aad_target => '/cgi-bin/echo.cgi?x=A', body => $body],
        ['the sequence number changed', method => 'POST', aad_seq => 999999, body => $body],
        ['the inner type changed', method => 'POST', inner_type => 'text/plain', aad_type => 'application/json',
         body => $body],
        ['the inner type removed', method => 'POST', aad_type => 'application/json', body => $body],
        ['another session\'s id', method => 'POST', session_id => $other->{id}, body => $body],
        ['a body sealed under k_s2c (a response sent as a request)', method => 'POST',
         key => $s->{s2c}, body => $body],
        ['a v1 envelope with v2 headers', method => 'POST', raw_body => seal($s->{c2s}, $body),
         content_type => E2E_TYPE],
        ['a plaintext body with X-E2E-Seq', method => 'POST', raw_body => $body, content_type => 'text/plain',
         seal => ''],
        ['a body and X-E2E-Seal', method => 'POST', body => $body,
         seal => ZeqTest::V2::b64url(ZeqTest::V2::seal($s->{c2s}, 'x', ''))],
        ['a bodiless GET without X-E2E-Seal', method => 'GET', seal => ''],
        ['a GET with the seal of another target', method => 'GET', path => '/cgi-bin/echo.cgi?b',
         aad_target => '/cgi-bin/echo.cgi?a'],
        ['a GET whose seal holds a body', method => 'GET', seal => 'BODY'],
        ['a GET with a seal that is not base64url', method => 'GET', seal => '!!!'],
        ['a message cut before its final record', method => 'POST', body => $body,
         seal_opts => { final_flags => [0] }],
        ['a message with a record after the final one', method => 'POST', body => $body,
         seal_opts => { records => [10, 13], final_flags => [1, 1] }],
        ['X-E2E-Seq 01', method => 'GET', seq => '01'],
        ['X-E2E-Seq -1', method => 'GET', seq => '-1'],
        ['X-E2E-Seq 2^53', method => 'GET', seq => '9007199254740992'],
        ['no X-E2E-Seq with a v2 session', method => 'GET', seq => undef],
    );
    for my $c (@cases) {
        my ($what, %o) = @$c;
        $o{path} //= '/cgi-bin/echo.cgi';
        if (($o{seal} // '') eq 'BODY') {
            my $aad = ZeqTest::V2::request_aad($s, $s->{seq}, 'GET', $o{path}, undef);
            $o{seal} = ZeqTest::V2::b64url(ZeqTest::V2::seal($s->{c2s}, $aad, 'not empty'));
        }
        my $r;
        my ($cgi) = hits_delta(sub { $r = req(session => $s, %o) });
        check_err($r, 400, 'e2e_decrypt_failed', $what);
        check($cgi, 0, "$what: the application never ran");
    }
    # bodies swapped between two requests
    my $aad_a = ZeqTest::V2::request_aad($s, $s->{seq}, 'POST', '/cgi-bin/echo.cgi?a', undef);
    my $body_a = ZeqTest::V2::seal($s->{c2s}, $aad_a, 'body A');
    $s->{seq}++;
    my $r = req(session => $s, method => 'POST', path => '/cgi-bin/echo.cgi?b', raw_body => $body_a,
                content_type => E2E_TYPE);
    check_err($r, 400, 'e2e_decrypt_failed', 'request A\'s body under request B\'s headers');
    # a v1 session with v2 headers, a v2 session without
    my $v1 = handshake(vhost => 'zeq_file');
    my $res = request(vhost => 'zeq_file', path => '/cgi-bin/echo.cgi', session => $v1, headers => ['X-E2E-Seq' => 0]);
    check_err($res, 400, 'e2e_decrypt_failed', 'a v1 session with X-E2E-Seq');
    $res = request(vhost => 'zeq_file', method => 'POST', path => '/cgi-bin/echo.cgi', session => $v1, body => 'v1');
    check("$res->{status} $res->{opened}", '200 1', 'control: the v1 session in v1 works');
}

# --- 18.7 replays -------------------------------------------------------------------------------------
{
    my $p = ZeqTest::V2::handshake(vhost => 'zeq_file');
    my $aad = ZeqTest::V2::request_aad($p, 0, 'POST', '/cgi-bin/echo.cgi', undef);
    my $sealed = ZeqTest::V2::seal($p->{c2s}, $aad, 'once only');
    my @r;
    my ($cgi) = hits_delta(sub {
        push @r, req(session => $p, method => 'POST', path => '/cgi-bin/echo.cgi', seq => 0,
                     raw_body => $sealed, content_type => E2E_TYPE) for 1 .. 3;
    });
    check(join(' ', map { $_->{status} } @r), '200 400 400', 'the same sealed request three times: 200, then 400, 400');
    check((json_error($r[1]) // {})->{error}, 'e2e_replayed', 'the replay answers e2e_replayed');
    check($cgi, 1, 'the application ran once');

    # out of order within the window
    my @order = (5, 3, 4, 1, 2, 0);
    my @st = map { req(session => $p, path => '/cgi-bin/echo.cgi', seq => $_)->{status} } @order;
    check("@st", '200 200 200 200 200 400', 'numbers 5, 3, 4, 1, 2 out of order accepted; 0 again refused');
    # far ahead, then below the window
    check(req(session => $p, path => '/cgi-bin/echo.cgi', seq => 5000)->{status}, 200, 'a jump to 5000');
    check(req(session => $p, path => '/cgi-bin/echo.cgi', seq => 5000 - 1023)->{status}, 200,
          '1023 below the highest, never seen: accepted');
    my $r = req(session => $p, path => '/cgi-bin/echo.cgi', seq => 5000 - 1024);
    check_err($r, 400, 'e2e_replayed', '1024 below the highest: too old');
    $r = req(session => $p, path => '/cgi-bin/echo.cgi', seq => 100);
    check_err($r, 400, 'e2e_replayed', 'far below the highest, never seen: refused');
    # a request that fails verification consumes nothing
    $r = req(session => $p, method => 'POST', path => '/cgi-bin/echo.cgi', seq => 6000, aad_seq => 6001,
             body => 'bad');
    check_err($r, 400, 'e2e_decrypt_failed', 'a bad seal at 6000');
    $r = req(session => $p, method => 'POST', path => '/cgi-bin/echo.cgi', seq => 6000, body => 'good');
    check("$r->{status} $r->{verified}", '200 1', 'then a good request at 6000: accepted (nothing was consumed)');

    # concurrent: the same sealed request on 8 connections at once, 5 times
    my $q = ZeqTest::V2::handshake(vhost => 'zeq_file');
    my $rounds_ran = sub {
        open my $fh, '<', catfile(ZeqTest::Fixtures::hits_dir(), 'cgi.log') or return 0;
        my $n = grep { m{^POST /cgi-bin/echo\.cgi\?round=\d} } <$fh>;
        return $n;
    };
    my $ran0 = $rounds_ran->();
    my @wins;
    my $runs_ok = 1;
    for my $round (1 .. 5) {
        my $seq = 100 + $round;
        my $a2 = ZeqTest::V2::request_aad($q, $seq, 'POST', "/cgi-bin/echo.cgi?round=$round", undef);
        my $b2 = ZeqTest::V2::seal($q->{c2s}, $a2, "round $round");
        my $dir = ZeqTest::tmp_dir();
        my $go = Time::HiRes::time() + 0.5;
        my @kids;
        for my $k (1 .. 8) {
            my $pid = fork();
            die "fork: $!" unless defined $pid;
            if ($pid == 0) {
                Time::HiRes::sleep(0.001) while Time::HiRes::time() < $go;
                my $rr = req(session => $q, method => 'POST', path => "/cgi-bin/echo.cgi?round=$round",
                             seq => $seq, raw_body => $b2, content_type => E2E_TYPE);
                open my $fh, '>', catfile($dir, "conc-$round-$k") or POSIX::_exit(1);
                print {$fh} $rr->{status}, ' ', (json_error($rr) // {})->{error} // '', "\n";
                close $fh;
                POSIX::_exit(0);
            }
            push @kids, $pid;
        }
        waitpid($_, 0) for @kids;
        my @res = map { my $f = catfile($dir, "conc-$round-$_"); my $t = slurp($f) // 'none'; unlink $f; chomp $t; $t } 1 .. 8;
        my $won = grep { /^200/ } @res;
        my $replayed = grep { /^400 e2e_replayed/ } @res;
        push @wins, $won;
        $runs_ok &&= $won == 1 && $replayed == 7;
    }
    check("@wins", '1 1 1 1 1', 'the same sealed request on 8 connections at once, 5 rounds: exactly one accepted each time');
    check($runs_ok, 1, 'and the 7 others each time: 400 e2e_replayed');
    check($rounds_ran->() - $ran0, 5, 'the CGI ran once per round');
}

# --- 18.11 WebSockets -----------------------------------------------------------------------------------
sub ws_open {
    my (%a) = @_;
    my $sess = $a{session};
    my $seq = $a{seq} // $sess->{seq}++;
    my $conn = ZeqTest::WebSocket::new_conn_id();
    my $path = $a{path} // '/ws/echo';
    my $target = "$path?conn=$conn";
    my $aad = ZeqTest::V2::request_aad($sess, $a{aad_seq} // $seq, 'GET', $a{aad_target} // $target, undef);
    my $seal = $a{seal} // ZeqTest::V2::b64url(ZeqTest::V2::seal($sess->{c2s}, $aad, ''));
    my @q = ("e2e_session=$sess->{id}");
    push @q, "e2e_seq=$seq" unless $a{no_seq};
    push @q, "e2e_seal=$seal" unless $a{no_seal};
    push @q, @{ $a{more} || [] };
    my $ws = ZeqTest::WebSocket->connect(vhost => $a{vhost} // $sess->{vhost}, path => $path, conn => $conn,
                                         query => join('&', @q), session_id => undef, timeout => 10);
    $ws->{key} = undef;          # v2 messages are not v1 envelopes
    return ($ws, $conn, $seq);
}
sub ws_send {
    my ($ws, $sess, $seq, $n, $type, $data, %o) = @_;
    my $pt = chr({ text => 1, binary => 2, end => 3 }->{$type}) . $data;
    my $aad = ZeqTest::V2::ws_aad($sess, $seq, $o{dir} // 'c2s', $n);
    $ws->send_payload(0x2, ZeqTest::V2::seal($o{key} // $sess->{c2s}, $aad, $pt));
}
sub ws_read {
    my ($ws, $sess, $seq, $n) = @_;
    my $m = $ws->read_message;
    return $m unless $m->{kind} eq 'message';
    my $pt = ZeqTest::V2::open_msg($sess->{s2c}, ZeqTest::V2::ws_aad($sess, $seq, 's2c', $n), $m->{frame}{payload});
    $m->{verified} = defined $pt ? 1 : 0;
    $m->{type} = defined $pt ? ({ 1 => 'text', 2 => 'binary', 3 => 'end' }->{ord(substr($pt, 0, 1))} // 'unknown')
                             : undef;
    $m->{data} = defined $pt ? substr($pt, 1) : undef;
    return $m;
}
{
    my $w = ZeqTest::V2::handshake(vhost => 'zeq_file');
    my ($ws, $conn, $seq) = ws_open(session => $w);
    check($ws->{open}, 1, 'a v2 WebSocket opening with e2e_session, e2e_seq and e2e_seal: 101');
    ws_send($ws, $w, $seq, 0, 'text', 'first over v2');
    my $m = ws_read($ws, $w, $seq, 0);
    check(($m->{verified} // 0) . ' ' . ($m->{type} // '') . ' ' . ($m->{data} // ''), '1 text first over v2',
          'v2 WebSocket: the echo verifies as s2c message 0');
    ws_send($ws, $w, $seq, 1, 'binary', "\x00\x01 second");
    $m = ws_read($ws, $w, $seq, 1);
    check(($m->{verified} // 0) . ' ' . ($m->{type} // ''), '1 binary', 'the second message: s2c message 1');
    my @ev = wait_records($conn, sub { (grep { $_->{ev} eq 'message' } @_) >= 2 });
    my ($open) = grep { $_->{ev} eq 'open' } @ev;
    check($open->{target} // '', "/ws/echo?conn=$conn", 'the backend got the target without the three parameters');
    check(join(',', map { "$_->{type}:$_->{len}" } messages_of(@ev)), 'text:13,binary:9',
          'the backend got both messages in plaintext');
    # a message replayed (counter 0 again) closes the socket
    ws_send($ws, $w, $seq, 0, 'text', 'replayed');
    $m = $ws->read_message;
    check(($m->{kind} // '') . ' ' . ($m->{code} // ''), 'close 1008', 'a client message under a used counter: close 1008');
    $ws->close_socket;

    ($ws, $conn, $seq) = ws_open(session => $w);
    ws_send($ws, $w, $seq, 1, 'text', 'skipped one');
    $m = $ws->read_message;
    check(($m->{kind} // '') . ' ' . ($m->{code} // ''), 'close 1008', 'a client message that skips a counter: close 1008');
    $ws->close_socket;
    ($ws, $conn, $seq) = ws_open(session => $w);
    ws_send($ws, $w, $seq, 0, 'text', 'wrong direction', dir => 's2c');
    $m = $ws->read_message;
    check(($m->{kind} // '') . ' ' . ($m->{code} // ''), 'close 1008', 'a client message bound to s2c: close 1008');
    $ws->close_socket;
    my @rec = records_at_end($conn);
    check(scalar(messages_of(@rec)), 0, 'nothing of the refused messages reached the backend');

    # openings that are refused
    my @bad = (
        ['without e2e_seq and e2e_seal (a v2 session)', { no_seq => 1, no_seal => 1 }, 400, 'e2e_decrypt_failed'],
        ['without e2e_seal', { no_seal => 1 }, 400, 'e2e_decrypt_failed'],
        ['with a seal of another target', { aad_target => '/ws/echo?conn=other' }, 400, 'e2e_decrypt_failed'],
        ['with a seal of another number', { aad_seq => 999 }, 400, 'e2e_decrypt_failed'],
        ['with e2e_seq twice', { more => ['e2e_seq=77'] }, 400, 'e2e_bad_request'],
        ['with e2e%5Fseal as well', { more => ['e2e%5Fseal=x'] }, 400, 'e2e_bad_request'],
    );
    for my $b (@bad) {
        my ($what, $o, $status, $code) = @$b;
        my ($bws, $bconn) = ws_open(session => $w, %$o);
        check_err({ status => $bws->{status}, h => $bws->{h}, body => $bws->{body} }, $status, $code,
                  "a v2 opening $what");
        check(backend_saw($bconn), 0, "a v2 opening $what: the backend never saw it");
    }
    my ($r1) = ws_open(session => $w, seq => 40);
    check($r1->{open}, 1, 'an opening at number 40');
    $r1->close_socket;
    my ($r2, $c2) = ws_open(session => $w, seq => 40);
    check_err({ status => $r2->{status}, h => $r2->{h}, body => $r2->{body} }, 400, 'e2e_replayed',
              'another opening at number 40 (the upgrade consumed it)');
    # a v1 session opening with v2 parameters
    my $v1 = handshake(vhost => 'zeq_file');
    my $v1ws = ZeqTest::WebSocket->connect(vhost => 'zeq_file', path => '/ws/echo', session => $v1,
                                           query => 'e2e_seq=0&e2e_seal=AAAA');
    check("$v1ws->{status} " . ((json_error({ body => $v1ws->{body} }) // {})->{error} // ''), '400 e2e_decrypt_failed',
          'a v1 session opening with e2e_seq and e2e_seal: 400 e2e_decrypt_failed');
}

# the end messages (0x03) around a clean close
{
    my $w = ZeqTest::V2::handshake(vhost => 'zeq_file');
    # the client ends: its end message, then its close; the server answers with its own end first
    my ($ws, $conn, $seq) = ws_open(session => $w);
    ws_send($ws, $w, $seq, 0, 'text', 'before the end');
    my $m = ws_read($ws, $w, $seq, 0);
    check(($m->{verified} // 0) . ' ' . ($m->{type} // ''), '1 text', 'the echo before the end');
    ws_send($ws, $w, $seq, 1, 'end', '');
    $ws->send_close(1000, 'done');
    $m = ws_read($ws, $w, $seq, 1);
    check(($m->{kind} // '') . ' ' . ($m->{verified} // 0) . ' ' . ($m->{type} // '') . ' ' . length($m->{data} // 'x'),
          'message 1 end 0', 'after the client\'s end and close: the server\'s end message, s2c message 1, empty');
    $m = $ws->read_message;
    check(($m->{kind} // '') . ' ' . ($m->{code} // ''), 'close 1000', 'then the application\'s close 1000');
    my @ev = records_at_end($conn);
    check(join(',', map { "$_->{type}:$_->{len}" } messages_of(@ev)), 'text:14',
          'the backend got the message and nothing of the end message');
    my ($closed) = grep { $_->{ev} eq 'close' } @ev;
    check($closed->{code} // 'none', 1000, 'the backend got the client\'s close');
    $ws->close_socket;

    # the application ends: the server sends its end message before the application's close
    ($ws, $conn, $seq) = ws_open(session => $w);
    ws_send($ws, $w, $seq, 0, 'text', 'close-me');
    $m = ws_read($ws, $w, $seq, 0);
    check(($m->{kind} // '') . ' ' . ($m->{verified} // 0) . ' ' . ($m->{type} // ''), 'message 1 end',
          'the application closes: first the server\'s end message (s2c message 0)');
    $m = $ws->read_message;
    check(($m->{kind} // '') . ' ' . ($m->{code} // ''), 'close 1001', 'then the application\'s close 1001');
    $ws->close_socket;

    # a data message after the client's end message
    ($ws, $conn, $seq) = ws_open(session => $w);
    ws_send($ws, $w, $seq, 0, 'end', '');
    ws_send($ws, $w, $seq, 1, 'text', 'after the end');
    $m = $ws->read_message;
    check(($m->{kind} // '') . ' ' . ($m->{code} // ''), 'close 1008', 'a client message after its end message: close 1008');
    $ws->close_socket;
    check(scalar(messages_of(records_at_end($conn))), 0, 'the message after the end never reached the backend');

    # an end message that carries something
    ($ws, $conn, $seq) = ws_open(session => $w);
    ws_send($ws, $w, $seq, 0, 'end', 'x');
    $m = $ws->read_message;
    check(($m->{kind} // '') . ' ' . ($m->{code} // ''), 'close 1008', 'an end message with a byte after its type: close 1008');
    $ws->close_socket;
    check(scalar(messages_of(records_at_end($conn))), 0, 'and nothing of it reached the backend');

    # a v1 socket knows no end message: type 0x03 is unknown there
    my $v1 = handshake(vhost => 'zeq_file');
    my $v1ws = ZeqTest::WebSocket->connect(vhost => 'zeq_file', path => '/ws/echo', session => $v1);
    $v1ws->send_payload(0x2, ZeqTest::WebSocket::seal_message($v1ws->key, 3, ""));
    $m = $v1ws->read_message;
    check(($m->{kind} // '') . ' ' . ($m->{code} // ''), 'close 1008', 'v1: a message of type 0x03 closes with 1008');
}

plan tests => scalar(@checks), need_lwp;
ok t_cmp($_->[0], $_->[1], $_->[2]) for @checks;
