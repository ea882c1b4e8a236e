# mod_proxy_http to t/backend/echo.pl: the backend gets the exact plaintext
# with a correct Content-Length (no chunking, no spool file on disk, also
# for 5 MiB), its answers are sealed, its compression is carried inside,
# header-only answers stay header-only.
use strict;
use warnings;

use FindBin ();
use lib "$FindBin::Bin/lib";

use Apache::Test;
use Apache::TestUtil;
use File::Spec::Functions qw(catfile);
use POSIX ();
use Time::HiRes qw(usleep);
use ZeqTest;
use ZeqTest::Fixtures ();

plan tests => 8 + 2 + 7 + 4 + 3 + 3 + 5 + 6 + 5 + 6 + 2 + 2, need_lwp;

my $hp = ZeqTest::hostport('zeq_file');
my $spool_dir = ZeqTest::Fixtures::server_tmp();
my $s = handshake(vhost => 'zeq_file');

sub backend_echo { decode_json_safe($_[0]->{plain}) // {} }

# Watches the server's temporary directory while $code runs; returns the
# names of the files seen there, but for the module's own spool of a large
# body's ciphertext (zeq-e2e-spool.*, unlinked as soon as it is created;
# t/attack.t checks that no file ever holds the plaintext).
sub watch_spool {
    my ($code) = @_;
    my $stop = catfile(ZeqTest::tmp_dir(), "spool-stop.$$");
    my $seen_file = catfile(ZeqTest::tmp_dir(), "spool-seen.$$");
    unlink $stop, $seen_file;
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        my %seen;
        while (!-e $stop) {
            if (opendir my $dh, $spool_dir) {
                $seen{$_} = 1 for grep { !/^\.\.?$/ && !/^zeq-e2e-spool\./ } readdir $dh;
                closedir $dh;
            }
            usleep(2000);
        }
        open my $fh, '>', $seen_file or die;
        print {$fh} map { "$_\n" } sort keys %seen;
        close $fh;
        POSIX::_exit(0);
    }
    my @ret = $code->();
    open my $sf, '>', $stop or die;
    close $sf;
    waitpid $pid, 0;
    open my $fh, '<', $seen_file or die "no spool watcher result";
    chomp(my @seen = <$fh>);
    close $fh;
    unlink $stop, $seen_file;
    return (\@seen, @ret);
}

sub spool_entries {
    opendir my $dh, $spool_dir or return ('(cannot read the directory)');
    my @e = grep { !/^\.\.?$/ } readdir $dh;
    closedir $dh;
    return @e;
}

# --- a small encrypted POST ----------------------------------------------------
{
    my $pt = '{"to":"backend","n":42}';
    my $r = request(method => 'POST', path => '/proxy/echo', session => $s, body => $pt);
    my $e = backend_echo($r);
    ok t_cmp($r->{status}, 200, 'encrypted POST through the proxy: 200');
    ok t_cmp($r->{opened}, 1, 'the backend\'s answer is sealed and opens');
    ok t_cmp($e->{contentLength}, length($pt), 'backend: Content-Length is the plaintext length');
    ok t_cmp($e->{transferEncoding}, undef, 'backend: no Transfer-Encoding');
    ok t_cmp($e->{contentType}, 'application/json', 'backend: Content-Type application/json');
    ok t_cmp($e->{body}, $pt, 'backend: the exact plaintext');
    ok t_cmp($r->{h}->header('X-E2E-Content-Type'), 'application/json',
             'answer: X-E2E-Content-Type is the backend\'s type');
    ok t_cmp($r->{h}->header('Content-Length'), length($r->{plain} // '') + OVERHEAD,
             'answer: Content-Length is 28 + the plaintext length');
}
{
    my $pt = "a,b\n1,2\n";
    my $r = request(method => 'PUT', path => '/proxy/echo', session => $s, body => $pt,
                    inner_type => 'text/csv');
    my $e = backend_echo($r);
    ok t_cmp($e->{method}, 'PUT', 'encrypted PUT reaches the backend as PUT');
    ok t_cmp($e->{contentType}, 'text/csv', 'backend: Content-Type is X-E2E-Content-Type');
}

# --- 5 MiB, and nothing spooled to disk ------------------------------------------
{
    my @before = spool_entries();
    my $pt = det_bytes(5 * 1024 * 1024, 'proxy-upload');
    my ($seen, $r) = watch_spool(sub {
        request(method => 'POST', path => '/proxy/echo', session => $s, body => $pt,
                inner_type => 'application/octet-stream');
    });
    my $e = backend_echo($r);
    ok t_cmp(scalar(@before), 0, 'the server\'s temporary directory is empty before');
    ok t_cmp($r->{status}, 200, '5 MiB encrypted POST through the proxy: 200');
    ok t_cmp($e->{contentLength}, 5 * 1024 * 1024, '5 MiB: backend Content-Length 5242880');
    ok t_cmp($e->{transferEncoding}, undef, '5 MiB: backend saw no Transfer-Encoding');
    ok t_cmp($e->{bodySha256}, sha256_hex($pt), '5 MiB: backend got the exact plaintext');
    ok t_cmp(join(' ', @$seen), '', '5 MiB: no file appeared in the server\'s temp directory meanwhile');
    ok t_cmp(join(' ', spool_entries()), '', '5 MiB: the temp directory is empty after');
}

# --- chunked and Expect: 100-continue uploads (raw socket) -----------------------------
{
    my $pt = det_bytes(100_000, 'proxy-chunked');
    my $env = seal($s->{key} // ("\0" x 32), $pt);
    my @chunks = map { substr($env, $_ * 8192, 8192) } 0 .. int(length($env) / 8192);
    my $r = raw_request(vhost => 'zeq_file', key => $s->{key}, chunks => \@chunks, head => <<"EOH");
POST /proxy/echo HTTP/1.1
Host: $hp
X-E2E-Session: @{[ $s->{id} // '' ]}
Accept: application/x-zeq-e2e
Content-Type: application/x-zeq-e2e
X-E2E-Content-Type: application/octet-stream
Transfer-Encoding: chunked
Connection: close
EOH
    my $e = backend_echo($r);
    ok t_cmp($r->{opened}, 1, 'chunked upload to the proxy: the answer opens');
    ok t_cmp($e->{contentLength}, 100_000, 'chunked upload: backend Content-Length 100000');
    ok t_cmp($e->{transferEncoding}, undef, 'chunked upload: backend saw no Transfer-Encoding');
    ok t_cmp($e->{bodySha256}, sha256_hex($pt), 'chunked upload: backend got the exact plaintext');
}
{
    my $pt = '{"expect":"proxy"}';
    my $env = seal($s->{key} // ("\0" x 32), $pt);
    my $len = length $env;
    my $r = raw_request(vhost => 'zeq_file', key => $s->{key}, expect_continue => 1,
                        body => $env, head => <<"EOH");
POST /proxy/echo HTTP/1.1
Host: $hp
X-E2E-Session: @{[ $s->{id} // '' ]}
Accept: application/x-zeq-e2e
Content-Type: application/x-zeq-e2e
Content-Length: $len
Expect: 100-continue
Connection: close
EOH
    my $e = backend_echo($r);
    ok t_cmp($r->{got_100}, 1, 'Expect: 100-continue to the proxy: 100 Continue received');
    ok t_cmp($e->{contentLength}, length($pt), 'Expect: backend Content-Length is the plaintext length');
    ok t_cmp($e->{body}, $pt, 'Expect: backend got the exact plaintext');
}

# --- answers ----------------------------------------------------------------------------
{
    my $r = request(path => '/proxy/bytes?n=100000', session => $s);
    ok t_cmp($r->{h}->header('Content-Length'), 100_000 + OVERHEAD,
             'GET 100000 bytes: Content-Length 100028');
    ok t_cmp(sha256_hex($r->{plain} // ''), sha256_hex(det_bytes(100_000, 'backend')),
             'GET 100000 bytes: the envelope opens to the backend\'s bytes');
    ok t_cmp($r->{h}->header('X-E2E-Content-Type'), 'application/octet-stream',
             'GET bytes: X-E2E-Content-Type application/octet-stream');
}
{
    my $r = request(path => '/proxy/gzip', session => $s, headers => ['Accept-Encoding' => 'gzip']);
    ok t_cmp($r->{h}->header('Content-Encoding'), undef,
             'backend that gzips: no outer Content-Encoding');
    ok t_cmp($r->{h}->header('X-E2E-Content-Encoding'), 'gzip',
             'backend that gzips: X-E2E-Content-Encoding: gzip');
    ok t_cmp($r->{opened}, 1, 'backend that gzips: the envelope opens');
    my $json = decode_json_safe(gunzip_bytes($r->{plain} // '')) // {};
    ok t_cmp(($json->{compressed} // 0) ? 'true' : 'false', 'true',
             'backend that gzips: opened then gunzipped, the JSON reads');
    my $p = request(path => '/proxy/gzip', headers => ['Accept-Encoding' => 'gzip']);
    ok t_cmp($p->{h}->header('Content-Encoding'), 'gzip',
             'plaintext request: the backend\'s Content-Encoding passes through');
}
for my $code (204, 304) {
    my $r = request(path => "/proxy/status/$code", session => $s);
    ok t_cmp($r->{status}, $code, "backend $code with a session: $code");
    ok t_cmp(length($r->{body}), 0, "backend $code: no body");
    ok t_cmp(media_type($r->{h}->header('Content-Type')) eq E2E_TYPE ? 'envelope' : 'no envelope',
             'no envelope', "backend $code: not labelled as an envelope");
}
{
    my $get = request(path => '/proxy/bytes?n=1000', session => $s);
    my $head = request(method => 'HEAD', path => '/proxy/bytes?n=1000', session => $s);
    my $cl = $head->{h}->header('Content-Length');
    ok t_cmp($head->{status}, 200, 'HEAD through the proxy with a session: 200');
    ok t_cmp(length($head->{body}), 0, 'HEAD: no body');
    ok t_cmp(media_type($head->{h}->header('Content-Type')), E2E_TYPE,
             'HEAD: Content-Type is the envelope type');
    ok t_cmp(defined $cl ? $cl : 'absent', qr/^(?:absent|1028)$/,
             'HEAD: Content-Length absent or 28 + 1000, never the plaintext 1000');
    ok t_cmp($get->{h}->header('Content-Length'), 1028, 'the matching GET: Content-Length 1028');
}

# --- plaintext requests pass through untouched -----------------------------------------
{
    my $pt = "plain \x00\xff body";
    my %e;
    for my $path ('/proxy/echo', '/off/proxy/echo') {
        my $r = request(method => 'POST', path => $path, raw_body => $pt,
                        content_type => 'application/x-www-form-urlencoded');
        $e{$path} = decode_json_safe($r->{body}) // {};
        $e{"$path enveloped"} = $r->{enveloped};
    }
    for my $path ('/proxy/echo', '/off/proxy/echo') {
        my $scope = $path =~ /off/ ? 'ZeqE2E Off' : 'ZeqE2E On';
        ok t_cmp($e{"$path enveloped"}, 0, "$scope, plaintext POST to the proxy: plaintext answer");
        ok t_cmp("$e{$path}{contentLength}|$e{$path}{contentType}",
                 length($pt) . '|application/x-www-form-urlencoded',
                 "$scope: backend Content-Length and Content-Type as sent");
        ok t_cmp($e{$path}{body}, $pt, "$scope: backend body byte for byte");
    }
}

# --- the handshake path sits inside ProxyPass /api/ ------------------------------------
{
    my $r = request(method => 'POST', path => '/api/other', raw_body => '{}',
                    content_type => 'application/json');
    my $j = decode_json_safe($r->{body}) // {};
    ok t_cmp($r->{status}, 404, '/api/other goes to the backend (404 there)');
    ok t_cmp($j->{backend}, 'not found', '/api/other: the backend\'s own 404 JSON');
}

# --- control: the spool watcher does see mod_proxy's spool files ---------------------
# ZeqE2E Off, proxy-sendcl: a plaintext chunked upload is spooled by
# mod_proxy_http into the server's temporary directory. This proves that
# the assertions above watch the right directory.
{
    my $chunk = 'q' x 65536;
    my ($seen, $r) = watch_spool(sub {
        raw_request(vhost => 'zeq_file', chunks => [($chunk) x 64], chunk_delay => 0.005,
                    head => <<"EOH");
POST /off/spool/echo HTTP/1.1
Host: $hp
Content-Type: application/octet-stream
Transfer-Encoding: chunked
Connection: close
EOH
    });
    my $e = decode_json_safe($r->{body}) // {};
    ok t_cmp($e->{contentLength}, 64 * 65536, 'control: proxy-sendcl gives the backend a Content-Length');
    ok t_cmp(join(' ', @$seen), qr/modproxy\.tmp/,
             'control: mod_proxy\'s spool file appeared in the watched directory');
}
