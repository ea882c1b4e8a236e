#!/usr/bin/perl
# The round trip of make test-deb (t/deb/run): a protocol v2 handshake and
# encrypted requests against the system's apache2 with the installed
# package, made with the test suite's own v2 client (t/lib/ZeqTest/V2.pm,
# CryptX, independent of the module's code). Prints TAP; exits non-zero
# when a check failed.
#
#   perl -It/lib t/deb/roundtrip.pl --server 127.0.0.1:PORT --site DIR [--log FILE ...]
#
# DIR is the site t/deb/run serves: htdocs/hello.txt, htdocs/app/data.json
# (under ZeqE2ERequire On), cgi-bin/echo.cgi (t/cgi-bin/echo.cgi, counting
# its runs in var/hits/cgi.log). Each --log is an error log of the server,
# which must hold neither a session key nor a plaintext.
use strict;
use warnings;

use Digest::SHA qw(sha256_hex);
use File::Spec::Functions qw(catfile);
use Getopt::Long qw(GetOptions);
use JSON::PP ();
use Test::More;

use ZeqTest ();
use ZeqTest::V2 ();

my ($server, $site, @logs);
GetOptions('server=s' => \$server, 'site=s' => \$site, 'log=s' => \@logs)
    && $server && $site or die "usage: $0 --server HOST:PORT --site DIR [--log FILE ...]\n";
ZeqTest::external_server(deb => $server);

sub slurp {
    open my $fh, '<:raw', $_[0] or return undef;
    local $/;
    return scalar <$fh>;
}
sub hits {
    my $log = slurp(catfile($site, 'var', 'hits', 'cgi.log')) // '';
    return scalar(() = $log =~ /\n/g);
}
sub error_of { (ZeqTest::json_error({ body => $_[0]{body} }) // {})->{error} // 'none' }

my $hello = slurp(catfile($site, 'htdocs', 'hello.txt'));
my $data = slurp(catfile($site, 'htdocs', 'app', 'data.json'));
die "no htdocs/hello.txt or htdocs/app/data.json in $site\n" unless defined $hello && defined $data;

# --- the handshake ------------------------------------------------------------------------------
my $s = ZeqTest::V2::handshake(vhost => 'deb');
ok($s->{ok}, 'v2 handshake: 200 with a well-formed answer')
    or diag('status ' . $s->{res}->code . ': ' . $s->{res}->decoded_content(charset => 'none'));
is($s->{json}{version} // 'none', 2, 'the answer is protocol version 2');
is($s->{expires_in} // 'none', 3600, 'expiresIn: the default ZeqE2ESessionTTL (3600)');
like($s->{res}->header('Cache-Control') // 'none', qr/\bno-store\b/, 'the answer is not to be stored');
BAIL_OUT('no session: nothing more to try') unless $s->{ok};

# --- encrypted requests ---------------------------------------------------------------------------
{
    my $r = ZeqTest::V2::request(session => $s, path => '/hello.txt');
    is($r->{status}, 200, 'GET /hello.txt, sealed: 200');
    is(ZeqTest::media_type($r->{h}->header('Content-Type')), ZeqTest::E2E_TYPE,
       'the answer is sealed (Content-Type ' . ZeqTest::E2E_TYPE . ')');
    is($r->{verified} // 'plaintext', 1, 'the answer verifies under the server-to-client key');
    is(ZeqTest::digest_of($r->{plain}), ZeqTest::digest_of($hello), 'and opens to the file');
    is(index($r->{body}, $hello), -1, 'the plaintext is not on the wire');
}

my $payload = JSON::PP->new->canonical(1)->encode(
    { note => 'make test-deb', nonce => ZeqTest::random_hex(16), items => [1 .. 50] });
my $post;
{
    my $before = hits();
    $post = ZeqTest::V2::request(session => $s, method => 'POST', path => '/cgi-bin/echo.cgi',
                                 inner_type => 'application/json', body => $payload);
    is($post->{status}, 200, 'POST /cgi-bin/echo.cgi, sealed: 200');
    is($post->{verified} // 'plaintext', 1, 'the answer verifies');
    my $seen = eval { JSON::PP->new->decode($post->{plain} // '') } // {};
    is(($seen->{bodyLength} // 'none') . ' ' . ($seen->{bodySha256} // 'none'),
       length($payload) . ' ' . sha256_hex($payload),
       'the CGI script read the plaintext (its length and SHA-256)');
    is($seen->{CONTENT_LENGTH} // 'none', length($payload),
       'the CGI script saw the plaintext Content-Length');
    is($seen->{CONTENT_TYPE} // 'none', 'application/json',
       'the CGI script saw the inner Content-Type');
    is(hits() - $before, 1, 'the CGI script ran once');
}

{
    my $before = hits();
    my $r = ZeqTest::V2::request(session => $s, method => 'POST', path => '/cgi-bin/echo.cgi',
                                 inner_type => 'application/json', body => $payload,
                                 seq => $post->{sent_seq});
    is("$r->{status} " . error_of($r), '400 e2e_replayed', 'the same request again: 400 e2e_replayed');
    my $sealed = ZeqTest::V2::seal($s->{c2s}, ZeqTest::V2::request_aad(
        $s, $s->{seq}, 'POST', '/cgi-bin/echo.cgi', 'application/json'), $payload);
    substr($sealed, 20, 1) ^= "\x01";
    $r = ZeqTest::V2::request(session => $s, method => 'POST', path => '/cgi-bin/echo.cgi',
                              inner_type => 'application/json', raw_body => $sealed,
                              content_type => ZeqTest::E2E_TYPE);
    is("$r->{status} " . error_of($r), '400 e2e_decrypt_failed',
       'a sealed body with one bit changed: 400 e2e_decrypt_failed');
    is(hits() - $before, 0, 'neither reached the CGI script');
}

{
    my $plain = ZeqTest::ua()->get(ZeqTest::url('deb', '/app/data.json'));
    is($plain->code . ' ' . error_of({ body => $plain->content }), '403 e2e_required',
       'plaintext GET under ZeqE2ERequire On: 403 e2e_required');
    my $r = ZeqTest::V2::request(session => $s, path => '/app/data.json');
    is("$r->{status} " . ($r->{verified} // 'plaintext'), '200 1', 'the same GET, sealed: 200, verifies');
    is(ZeqTest::digest_of($r->{plain}), ZeqTest::digest_of($data), 'and opens to the file');
}

{
    my $lib = ZeqTest::ua()->get(ZeqTest::url('deb', '/static/zeq-e2e-client.js'));
    is($lib->code . ' ' . ZeqTest::media_type($lib->header('Content-Type')),
       '200 text/javascript', 'the module serves its browser library');
}

# --- the logs --------------------------------------------------------------------------------------
for my $log (@logs) {
    my $text = slurp($log) // '';
    my @found = grep { index($text, $_) >= 0 }
        (unpack('H*', $s->{c2s}), unpack('H*', $s->{s2c}), $payload, $hello);
    is(scalar @found, 0, "$log holds no session key and no plaintext");
}

done_testing();
