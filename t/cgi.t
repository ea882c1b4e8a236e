# CGI (mod_cgid, or mod_cgi with t/TEST -defines ZEQ_MOD_CGI): the script
# sees the plaintext, its CONTENT_LENGTH and CONTENT_TYPE, for
# Content-Length, chunked and Expect: 100-continue uploads; its answers are
# sealed; plaintext requests pass through untouched.
use strict;
use warnings;

use FindBin ();
use lib "$FindBin::Bin/lib";

use Apache::Test;
use Apache::TestUtil;
use File::Spec::Functions qw(catfile);
use ZeqTest;

plan tests => 2 + 9 + 3 + 4 + 4 + 3 + 5 + 6 + 2 + 4 + 4 + 5
            + ZeqTest::CHECK_ERROR_TESTS + 1 + 2, need_lwp;

my $cgi_mod = (Apache::Test::vars('defines') // '') =~ /\bZEQ_MOD_CGI\b/ ? 'mod_cgi' : 'mod_cgid';
my $hp = ZeqTest::hostport('zeq_file');

# --- which CGI module serves the scripts ---------------------------------------
{
    my $info = request(vhost => 'main', path => '/server-info?list')->{body};
    my %loaded = map { $_ => ($info =~ /\b\Q$_\E\.c\b/ ? 1 : 0) } qw(mod_cgi mod_cgid);
    ok t_cmp($loaded{$cgi_mod}, 1, "$cgi_mod is loaded (mod_info ?list)");
    my $other = $cgi_mod eq 'mod_cgi' ? 'mod_cgid' : 'mod_cgi';
    ok t_cmp($loaded{$other}, 0, "$other is not loaded");
}

my $s = handshake(vhost => 'zeq_file');

sub echo_of { decode_json_safe($_[0]->{plain}) // {} }

# --- Content-Length upload ------------------------------------------------------
{
    my $pt = '{"message":"hello CGI","n":' . ('7' x 40) . '}';
    my $r = request(method => 'POST', path => '/cgi-bin/echo.cgi', session => $s, body => $pt);
    my $e = echo_of($r);
    ok t_cmp($r->{status}, 200, "$cgi_mod, encrypted POST: 200");
    ok t_cmp($r->{opened}, 1, "$cgi_mod, encrypted POST: the answer is an envelope that opens");
    ok t_cmp($e->{CONTENT_LENGTH}, length($pt), 'CGI CONTENT_LENGTH is the plaintext length');
    ok t_cmp($e->{CONTENT_TYPE}, 'application/json',
             'CGI CONTENT_TYPE defaults to application/json');
    ok t_cmp($e->{HTTP_TRANSFER_ENCODING}, undef, 'CGI sees no Transfer-Encoding');
    ok t_cmp($e->{body}, $pt, 'CGI read exactly the plaintext');
    ok t_cmp($r->{h}->header('X-E2E-Content-Type'), 'application/json',
             'answer: X-E2E-Content-Type is the script\'s Content-Type');
    ok t_cmp($r->{h}->header('Content-Length'), length($r->{plain} // '') + OVERHEAD,
             'answer: Content-Length is 28 + the plaintext length');
    ok t_cmp(lc($r->{h}->header('Cache-Control') // ''), qr/no-store.*private|private.*no-store/,
             'answer: Cache-Control no-store, private');
}

# --- X-E2E-Content-Type, binary bodies --------------------------------------------
{
    my $pt = "line one\nline two: caf\xc3\xa9\n";
    my $r = request(method => 'POST', path => '/cgi-bin/echo.cgi', session => $s, body => $pt,
                    inner_type => 'text/plain; charset=utf-8');
    my $e = echo_of($r);
    ok t_cmp($e->{CONTENT_TYPE}, 'text/plain; charset=utf-8',
             'CGI CONTENT_TYPE is X-E2E-Content-Type');
    my $bin = join '', map { chr } 0 .. 255, reverse 0 .. 255;
    my $rb = request(method => 'PUT', path => '/cgi-bin/echo.cgi', session => $s, body => $bin,
                     inner_type => 'application/octet-stream');
    my $eb = echo_of($rb);
    ok t_cmp($eb->{REQUEST_METHOD}, 'PUT', 'encrypted PUT reaches the CGI as PUT');
    ok t_cmp($eb->{bodySha256}, sha256_hex($bin), 'all 256 byte values arrive intact');
}

# --- a 1 MiB body and an empty one -------------------------------------------------
{
    my $pt = det_bytes(1024 * 1024, 'cgi-upload');
    my $r = request(method => 'POST', path => '/cgi-bin/echo.cgi', session => $s, body => $pt,
                    inner_type => 'application/octet-stream');
    my $e = echo_of($r);
    ok t_cmp($e->{CONTENT_LENGTH}, 1024 * 1024, '1 MiB upload: CONTENT_LENGTH 1048576');
    ok t_cmp($e->{bodySha256}, sha256_hex($pt), '1 MiB upload: SHA-256 of what the CGI read');
    my $r0 = request(method => 'POST', path => '/cgi-bin/echo.cgi', session => $s, body => '');
    my $e0 = echo_of($r0);
    ok t_cmp($e0->{CONTENT_LENGTH}, '0', 'empty plaintext (28-byte envelope): CONTENT_LENGTH 0');
    ok t_cmp($e0->{bodyLength}, 0, 'empty plaintext: the CGI read nothing');
}

# --- chunked upload (raw socket) -------------------------------------------------
{
    my $pt = '{"chunked":true,"pad":"' . ('c' x 20000) . '"}';
    my $env = seal($s->{key} // ("\0" x 32), $pt);
    my @chunks = (substr($env, 0, 10), substr($env, 10, 5000), substr($env, 5010));
    my $r = raw_request(vhost => 'zeq_file', key => $s->{key}, chunks => \@chunks, head => <<"EOH");
POST /cgi-bin/echo.cgi HTTP/1.1
Host: $hp
X-E2E-Session: @{[ $s->{id} // '' ]}
Accept: application/x-zeq-e2e
Content-Type: application/x-zeq-e2e
Transfer-Encoding: chunked
Connection: close
EOH
    my $e = echo_of($r);
    ok t_cmp($r->{opened}, 1, 'chunked encrypted upload: the answer opens');
    ok t_cmp($e->{CONTENT_LENGTH}, length($pt), 'chunked upload: CONTENT_LENGTH is the plaintext length');
    ok t_cmp($e->{HTTP_TRANSFER_ENCODING}, undef, 'chunked upload: no Transfer-Encoding for the CGI');
    ok t_cmp($e->{bodySha256}, sha256_hex($pt), 'chunked upload: the CGI read exactly the plaintext');
}

# --- Expect: 100-continue (raw socket) ----------------------------------------------
{
    my $pt = '{"expect":"100-continue","pad":"' . ('e' x 3000) . '"}';
    my $env = seal($s->{key} // ("\0" x 32), $pt);
    my $len = length $env;
    my $r = raw_request(vhost => 'zeq_file', key => $s->{key}, expect_continue => 1,
                        body => $env, head => <<"EOH");
POST /cgi-bin/echo.cgi HTTP/1.1
Host: $hp
X-E2E-Session: @{[ $s->{id} // '' ]}
Accept: application/x-zeq-e2e
Content-Type: application/x-zeq-e2e
Content-Length: $len
Expect: 100-continue
Connection: close
EOH
    my $e = echo_of($r);
    ok t_cmp($r->{got_100}, 1, 'Expect: 100-continue: the server sent 100 Continue');
    ok t_cmp($e->{CONTENT_LENGTH}, length($pt), 'Expect: CONTENT_LENGTH is the plaintext length');
    ok t_cmp($e->{bodySha256}, sha256_hex($pt), 'Expect: the CGI read exactly the plaintext');
}

# --- GET with a session, and an encrypted body with a plaintext answer --------------
{
    my $r = request(path => '/cgi-bin/echo.cgi?x=1', session => $s);
    my $e = echo_of($r);
    ok t_cmp($r->{opened}, 1, 'encrypted GET: the answer opens');
    ok t_cmp($e->{REQUEST_METHOD}, 'GET', 'encrypted GET: REQUEST_METHOD GET');
    ok t_cmp($e->{bodyLength}, 0, 'encrypted GET: no body for the CGI');

    my $pt = '{"answer":"in plaintext"}';
    my $r2 = request(method => 'POST', path => '/cgi-bin/echo.cgi', session => $s, body => $pt,
                     accept => 'application/json');
    ok t_cmp($r2->{enveloped}, 0,
             'session and envelope, Accept without the envelope type: plaintext answer');
    ok t_cmp((decode_json_safe($r2->{body}) // {})->{body}, $pt,
             'that CGI still received the decrypted plaintext');
}

# --- plaintext requests pass through untouched -------------------------------------------
for my $scope (['ZeqE2E On', '/cgi-bin/echo.cgi'], ['ZeqE2E Off', '/off/cgi-bin/echo.cgi']) {
    my ($name, $path) = @$scope;
    my $pt = "plain body \x00\x01\xff for $name";
    my $r = request(method => 'POST', path => $path, raw_body => $pt,
                    content_type => 'text/plain; charset=x-user-defined');
    my $e = decode_json_safe($r->{body}) // {};
    ok t_cmp($r->{enveloped}, 0, "$name, plaintext POST: plaintext answer");
    ok t_cmp("$e->{CONTENT_LENGTH}|$e->{CONTENT_TYPE}",
             length($pt) . '|text/plain; charset=x-user-defined',
             "$name, plaintext POST: CONTENT_LENGTH and CONTENT_TYPE as sent");
    ok t_cmp($e->{body}, $pt, "$name, plaintext POST: body byte for byte");
}

# A plaintext chunked upload keeps its framing (Apache's behaviour, untouched).
{
    my $r = raw_request(vhost => 'zeq_file', chunks => ['abc', 'defgh'], head => <<"EOH");
POST /cgi-bin/echo.cgi HTTP/1.1
Host: $hp
Content-Type: text/plain
Transfer-Encoding: chunked
Connection: close
EOH
    my $e = decode_json_safe($r->{body}) // {};
    ok t_cmp($e->{HTTP_TRANSFER_ENCODING}, 'chunked',
             'ZeqE2E On, plaintext chunked POST: the CGI sees Transfer-Encoding chunked');
    ok t_cmp($e->{body}, 'abcdefgh', 'plaintext chunked POST: body intact');
}

# ZeqE2E Off: the module does nothing, even with its headers.
{
    my $junk = 'not an envelope, but labelled as one';
    my $r = request(method => 'POST', path => '/off/cgi-bin/echo.cgi', session => $s,
                    raw_body => $junk, content_type => E2E_TYPE);
    my $e = decode_json_safe($r->{body}) // {};
    ok t_cmp($r->{status}, 200, 'ZeqE2E Off: an "envelope" with a session passes through (200)');
    ok t_cmp($r->{enveloped}, 0, 'ZeqE2E Off: the answer is not sealed');
    ok t_cmp($e->{CONTENT_TYPE}, E2E_TYPE, 'ZeqE2E Off: the CGI sees the outer Content-Type');
    ok t_cmp($e->{body}, $junk, 'ZeqE2E Off: the CGI sees the bytes as sent');
}

# --- a script that compresses anyway --------------------------------------------------------
{
    my $r = request(path => '/cgi-bin/echo.cgi?gzip=1', session => $s,
                    headers => ['Accept-Encoding' => 'gzip']);
    ok t_cmp($r->{h}->header('Content-Encoding'), undef,
             'CGI that gzips: no outer Content-Encoding on the envelope');
    ok t_cmp($r->{h}->header('X-E2E-Content-Encoding'), 'gzip',
             'CGI that gzips: X-E2E-Content-Encoding: gzip');
    my $json = decode_json_safe(gunzip_bytes($r->{plain} // '')) // {};
    ok t_cmp($json->{script}, 'echo.cgi', 'CGI that gzips: opened and gunzipped, the JSON reads');
    ok t_cmp($r->{opened}, 1, 'CGI that gzips: the envelope opens');
}

# --- failing scripts ----------------------------------------------------------------------
{
    my $r = request(path => '/cgi-bin/error.cgi', session => $s);
    ok t_cmp($r->{status}, 500, 'CGI "Status: 500" without a body: 500');
    ok t_cmp($r->{opened}, 1, 'CGI 500 without a body: sealed (an envelope that opens)');
    ok t_cmp(length($r->{plain} // 'x'), 0, 'CGI 500 without a body: the envelope holds nothing');
    my $mark = log_mark();
    my $m = request(path => '/cgi-bin/error.cgi?mode=malformed', session => $s);
    my $log = log_since($mark);
    ok t_cmp("$m->{status} " . ($m->{opened} // 'not an envelope'), '500 1',
             'CGI with malformed headers: Apache\'s 500 page, sealed');
    ok t_cmp($m->{plain} // '', qr/Internal Server Error/i,
             'the sealed 500 page is Apache\'s own error page');
}

# --- nph- scripts are refused in an encrypted exchange -------------------------------------
{
    my $r = request(path => '/cgi-bin/nph-echo.cgi', session => $s);
    check_error($r, 500, 'e2e_encrypt_failed', "$cgi_mod, nph- CGI with a session");
    ok t_cmp(index($r->{body}, 'NPH-PLAINTEXT-MARKER') < 0 ? 'absent' : 'leaked', 'absent',
             "$cgi_mod, nph- CGI with a session: none of its output reaches the client");
}

# --- the sanitizers' runtime stays in the server ----------------------------------------------
# Under make test SANITIZE=1, t/sanitize/httpd starts the server with
# libasan preloaded; httpd builds a script's environment from the request
# (and SetEnv, PassEnv), never from its own, so the scripts run without it.
{
    my @runtime = qw(LD_PRELOAD ASAN_OPTIONS UBSAN_OPTIONS PHP_INI_SCAN_DIR);
    my $env = echo_of(request(path => '/cgi-bin/echo.cgi', session => $s))->{env} // {};
    ok t_cmp(join(',', grep { exists $env->{$_} } @runtime), '',
             "$cgi_mod: none of @runtime in the script's environment");
    my $sanitized = ($ENV{ZEQ_T_SANITIZE} // '') eq '1';
    my $pidfile = catfile(Apache::Test::vars('t_logs'), 'httpd.pid');
    my $ppid = do { open my $fh, '<', $pidfile or die "$pidfile: $!"; local $/; <$fh> } // '';
    $ppid =~ s/\D//g;
    my $server_env = do { open my $fh, '<', "/proc/$ppid/environ" or die "/proc/$ppid/environ: $!"; local $/; <$fh> } // '';
    my ($preload) = $server_env =~ /(?:^|\0)LD_PRELOAD=([^\0]*)/;
    skip($sanitized ? 0 : 'a plain build: the server runs without the sanitizers',
         ($preload // '') =~ /libasan/ ? 'libasan preloaded' : 'no libasan in LD_PRELOAD',
         'libasan preloaded', 'control, sanitized build: the server itself runs with libasan preloaded');
}
