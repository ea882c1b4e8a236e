# The handshake: well-formed answers, key agreement, every bad input.
use strict;
use warnings;

use FindBin ();
use lib "$FindBin::Bin/lib";

use Apache::Test;
use Apache::TestUtil;
use ZeqTest;

my @bad_bodies = (
    ['not JSON'                        => 'clientNonce=' . ('a' x 64)],
    ['a JSON array'                    => '["' . ('a' x 64) . '"]'],
    ['empty body'                      => ''],
    ['clientNonce missing'             => '{"nonce":"' . ('a' x 64) . '"}'],
    ['clientNonce a number'            => '{"clientNonce":12345}'],
    ['clientNonce null'                => '{"clientNonce":null}'],
    ['clientNonce 62 hex'              => '{"clientNonce":"' . ('a' x 62) . '"}'],
    ['clientNonce 66 hex'              => '{"clientNonce":"' . ('a' x 66) . '"}'],
    ['clientNonce with a non-hex char' => '{"clientNonce":"' . ('a' x 63) . 'g"}'],
    ['body over 4 KiB'                 => '{"clientNonce":"' . ('a' x 64) . '","pad":"'
                                          . ('x' x 4200) . '"}'],
);
my @bad_methods = qw(GET PUT DELETE);

plan tests => 14 + 3 + 2 + 4 + 1
            + @bad_bodies * (ZeqTest::CHECK_ERROR_TESTS + 1)
            + @bad_methods * (ZeqTest::CHECK_ERROR_TESTS + 1) + 2,
    need_lwp;

# --- a good handshake --------------------------------------------------------
my $s = handshake(vhost => 'zeq_file');
my $res = $s->{res};
ok t_cmp($res->code, 200, 'handshake answers 200');
ok t_cmp(media_type($res->header('Content-Type')), 'application/json',
         'handshake Content-Type is application/json');
ok t_cmp(lc($res->header('Cache-Control') // ''), qr/\bno-store\b/,
         'handshake Cache-Control contains no-store');
my $j = $s->{json} // {};
ok t_cmp($j->{version}, 1, 'handshake says "version": 1');
ok t_cmp($j->{sessionId} // '', qr/^[A-Za-z0-9_-]{22,}$/,
         'sessionId is URL-safe and at least 22 characters (128 bits)');
ok t_cmp($j->{serverNonce} // '', qr/^[0-9a-f]{64}$/,
         'serverNonce is 64 lowercase hex characters');
ok t_cmp(defined $j->{expiresIn} && $j->{expiresIn} =~ /^\d+$/ ? $j->{expiresIn} : 'not an integer',
         3600, 'expiresIn is the default TTL, 3600 seconds');
ok t_cmp(ref $j, 'HASH', 'handshake body is a JSON object');
ok t_cmp($s->{ok}, 1, 'the client accepted the handshake');

# The derived key works: an encrypted POST to the CGI decrypts on both sides.
my $payload = '{"hello":"handshake"}';
my $r = request(session => $s, method => 'POST', path => '/cgi-bin/echo.cgi',
                body => $payload);
ok t_cmp($r->{status}, 200, 'encrypted POST with the derived key: 200');
ok t_cmp($r->{opened}, 1, 'the answer opens with the key derived by the client');
my $echo = decode_json_safe($r->{plain}) // {};
ok t_cmp($echo->{body}, $payload, 'the CGI received the plaintext the client sealed');

# A second handshake gives a fresh session and a fresh server nonce.
my $s2 = handshake(vhost => 'zeq_file');
ok t_cmp(($s2->{id} // '') ne ($s->{id} // '') ? 'different' : 'same', 'different',
         'two handshakes give two different session ids');
ok t_cmp(($s2->{json}{serverNonce} // '') ne ($j->{serverNonce} // '') ? 'different' : 'same',
         'different', 'two handshakes give two different server nonces');

# --- client nonce in upper case, and a JSON charset parameter ------------------
{
    my $upper = uc random_hex(32);
    my $su = handshake(vhost => 'zeq_file', client_nonce_hex => $upper);
    ok t_cmp($su->{res}->code, 200, 'clientNonce in upper-case hex is accepted');
    # The key must use the nonce's bytes, not its text.
    my $ru = request(session => $su, method => 'POST', path => '/cgi-bin/echo.cgi',
                     body => '{"upper":true}');
    ok t_cmp($ru->{opened}, 1,
             'upper-case clientNonce: the key is derived from the nonce bytes');
    my $rc = handshake_raw(vhost => 'zeq_file',
                           content_type => 'application/json; charset=utf-8',
                           body => '{"clientNonce":"' . random_hex(32) . '"}');
    ok t_cmp($rc->code, 200, 'Content-Type application/json; charset=utf-8 is accepted');
}

# --- handshake on the other secrets' hosts ---------------------------------------
{
    my $se = handshake(vhost => 'zeq_env');
    ok t_cmp($se->{json}{expiresIn}, 2,
             'zeq_env (ZeqE2ESessionTTL 2): expiresIn is 2');
    my $re = request(vhost => 'zeq_env', session => $se, method => 'POST',
                     path => '/cgi-bin/echo.cgi', body => '{"env":1}');
    ok t_cmp($re->{opened}, 1, 'env: secret: the answer opens with the derived key');
}

# --- moved handshake path, and ZeqE2E Off around the default path ---------------
{
    my $sl = handshake(vhost => 'zeq_literal');
    ok t_cmp($sl->{res}->code, 200, 'ZeqE2EHandshakePath /custom/handshake answers 200');
    my $rl = request(vhost => 'zeq_literal', session => $sl, method => 'POST',
                     path => '/custom/cgi-bin/echo.cgi', body => '{"literal":1}');
    ok t_cmp($rl->{opened}, 1, 'literal secret: the answer opens with the derived key');
    my $off = handshake_raw(vhost => 'zeq_literal', path => '/api/e2e/handshake',
                            body => '{"clientNonce":"' . random_hex(32) . '"}');
    my $oj = decode_json_safe($off->content) // {};
    ok t_cmp(defined $oj->{sessionId} ? 'answered' : 'not answered', 'not answered',
             'zeq_literal: the default path (where ZeqE2E is Off) is no handshake');
    ok t_cmp($off->code, 404, 'zeq_literal: POST to the default path is a plain 404');
}

# --- inside a ProxyPass'd URL space ---------------------------------------------
{
    # On zeq_file, /api/ is proxied to the backend; the handshake still answers.
    my $before = backend_hits();
    my $sp = handshake(vhost => 'zeq_file');
    ok t_cmp($sp->{res}->code . ' ' . (backend_hits() - $before), '200 0',
             'handshake under ProxyPass /api/: 200 and the backend saw nothing');
}

# --- bad bodies ------------------------------------------------------------------
for my $case (@bad_bodies) {
    my ($what, $body) = @$case;
    my $rb = handshake_raw(vhost => 'zeq_file', body => $body);
    check_error($rb, 400, 'e2e_bad_handshake', "handshake, $what");
    ok t_cmp(lc($rb->header('Cache-Control') // ''), qr/no-store/,
             "handshake, $what: Cache-Control no-store on the error too");
}

# --- bad methods -----------------------------------------------------------------
for my $m (@bad_methods) {
    my $rm = handshake_raw(vhost => 'zeq_file', method => $m,
                           body => $m eq 'PUT' ? '{"clientNonce":"' . random_hex(32) . '"}' : undef);
    check_error($rm, 405, 'e2e_method_not_allowed', "handshake with $m");
    ok t_cmp($rm->header('Allow') // '', qr/^\s*POST\s*$/, "handshake with $m: Allow: POST");
}

# --- no secret -------------------------------------------------------------------
{
    my $rn = handshake_raw(vhost => 'zeq_nosecret',
                           body => '{"clientNonce":"' . random_hex(32) . '"}');
    ok t_cmp($rn->code, 503, 'vhost without a secret: handshake answers 503');
    ok t_cmp((json_error($rn) // {})->{error}, 'e2e_unavailable',
             'vhost without a secret: error e2e_unavailable');
}
