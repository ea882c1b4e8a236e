# Static files: sealed when asked (small and 3 MB), with the envelope's
# headers and none of the file's validators; Range answered whole; HEAD;
# mod_deflate; plaintext requests untouched.
use strict;
use warnings;

use FindBin ();
use lib "$FindBin::Bin/lib";

use Apache::Test;
use Apache::TestUtil;
use File::Spec::Functions qw(catfile);
use ZeqTest;

plan tests => 13 + 5 + 4 + 3 + 5 + 4 + 5 + 4, need_lwp;

my $docroot = Apache::Test::vars('documentroot');
sub slurp {
    open my $fh, '<:raw', $_[0] or return undef;
    local $/;
    my $d = <$fh>;
    close $fh;
    return $d;
}
my $hello = slurp(catfile($docroot, 'static', 'hello.txt'));
my $big = slurp(catfile($docroot, 'gen', 'big.bin'));

my $s = handshake(vhost => 'zeq_file');

# --- a small file, sealed ------------------------------------------------------
{
    my $r = request(path => '/static/hello.txt', session => $s);
    my $h = $r->{h};
    ok t_cmp($r->{status}, 200, 'encrypted GET of a static file: 200');
    ok t_cmp(media_type($h->header('Content-Type')), E2E_TYPE,
             'Content-Type application/x-zeq-e2e');
    ok t_cmp($r->{opened}, 1, 'the envelope opens with the session key');
    ok t_cmp($r->{plain}, $hello, 'it opens to the file\'s bytes exactly');
    ok t_cmp(media_type($h->header('X-E2E-Content-Type')), 'text/plain',
             'X-E2E-Content-Type: text/plain (the file\'s type)');
    ok t_cmp($h->header('Content-Length'), length($hello) + OVERHEAD,
             'Content-Length is 28 + the file size');
    ok t_cmp(lc($h->header('Cache-Control') // ''), qr/^(?=.*\bno-store\b)(?=.*\bprivate\b)/,
             'Cache-Control: no-store, private');
    my $vary = lc join(',', $h->header('Vary'));
    ok t_cmp($vary, qr/\baccept\b/, 'Vary lists Accept');
    ok t_cmp($vary, qr/\bx-e2e-session\b/, 'Vary lists X-E2E-Session');
    ok t_cmp($h->header('ETag'), undef, 'no ETag on an envelope');
    ok t_cmp($h->header('Last-Modified'), undef, 'no Last-Modified on an envelope');
    ok t_cmp($h->header('Accept-Ranges'), undef, 'no Accept-Ranges on an envelope');
    ok t_cmp($h->header('Content-Encoding'), undef, 'no Content-Encoding on an envelope');
}

# --- the same file in plaintext: untouched, with its validators -----------------------
for my $path ('/static/hello.txt', '/off/static/hello.txt') {
    my $r = request(path => $path);
    ok t_cmp($r->{body}, $hello, "plaintext GET $path: the file byte for byte");
}
{
    my $r = request(path => '/static/hello.txt');
    ok t_cmp(media_type($r->{h}->header('Content-Type')), 'text/plain',
             'plaintext GET: Content-Type text/plain');
    ok t_cmp(defined $r->{h}->header('ETag') ? 'ETag' : 'none', 'ETag',
             'plaintext GET: the ETag is there (so its absence above means something)');
    ok t_cmp($r->{h}->header('Content-Length'), length($hello),
             'plaintext GET: Content-Length is the file size');
}

# --- 3 MB -------------------------------------------------------------------------
{
    my $r = request(path => '/gen/big.bin', session => $s);
    ok t_cmp($r->{status}, 200, 'encrypted GET of 3 MB: 200');
    ok t_cmp($r->{h}->header('Content-Length'), length($big // '') + OVERHEAD,
             '3 MB: Content-Length is 28 + 3145728');
    ok t_cmp(length($r->{body}), length($big // '') + OVERHEAD, '3 MB: as many bytes arrived');
    ok t_cmp(sha256_hex($r->{plain} // ''), sha256_hex($big // 'x'),
             '3 MB: the envelope opens to the file');
}

# --- Range: answered whole ------------------------------------------------------------
{
    my $r = request(path => '/gen/big.bin', session => $s, headers => [Range => 'bytes=0-99']);
    ok t_cmp($r->{status}, 200, 'Range on an encrypted answer: 200, not 206');
    ok t_cmp($r->{h}->header('Content-Range'), undef, 'Range: no Content-Range');
    ok t_cmp(sha256_hex($r->{plain} // ''), sha256_hex($big // 'x'),
             'Range: the envelope holds the whole file');
}
{
    my $r = request(path => '/gen/big.bin', session => $s,
                    headers => [Range => 'bytes=0-9', 'If-Range' => 'Wed, 01 Jan 2020 00:00:00 GMT']);
    ok t_cmp($r->{status}, 200, 'Range with If-Range: 200 whole');
    my $p = request(path => '/gen/big.bin', headers => [Range => 'bytes=0-99']);
    ok t_cmp($p->{status}, 206, 'plaintext Range: 206 (Range works where nothing is sealed)');
    ok t_cmp($p->{body}, substr($big // '', 0, 100), 'plaintext Range: the first 100 bytes');
    my $mr = request(path => '/static/hello.txt', session => $s,
                     headers => [Range => 'bytes=0-1,5-6']);
    ok t_cmp("$mr->{status} " . ($mr->{plain} // ''), "200 $hello",
             'multi-range on an encrypted answer: 200 with the whole file');
    ok t_cmp(media_type($mr->{h}->header('Content-Type')), E2E_TYPE,
             'multi-range: still the envelope type (no multipart/byteranges)');
}

# --- HEAD -----------------------------------------------------------------------------
{
    my $r = request(method => 'HEAD', path => '/static/hello.txt', session => $s);
    my $cl = $r->{h}->header('Content-Length');
    ok t_cmp($r->{status}, 200, 'HEAD with a session: 200');
    ok t_cmp(length $r->{body}, 0, 'HEAD: no body');
    ok t_cmp(media_type($r->{h}->header('Content-Type')), E2E_TYPE, 'HEAD: the envelope type');
    ok t_cmp(defined $cl ? $cl : 'absent', qr/^(?:absent|${\ (length($hello) + OVERHEAD)})$/,
             'HEAD: Content-Length absent or 28 + size, never the file size');
}

# --- mod_deflate (AddOutputFilterByType DEFLATE text/plain) ------------------------------
# (five-k.txt: mod_deflate leaves very small bodies alone.)
{
    my $five = slurp(catfile($docroot, 'gen', 'five-k.txt'));
    my $p = request(path => '/gen/five-k.txt', headers => ['Accept-Encoding' => 'gzip']);
    ok t_cmp($p->{h}->header('Content-Encoding'), 'gzip',
             'plaintext with Accept-Encoding: gzip: mod_deflate compresses (control)');
    my $r = request(path => '/gen/five-k.txt', session => $s,
                    headers => ['Accept-Encoding' => 'gzip']);
    ok t_cmp($r->{h}->header('Content-Encoding'), undef,
             'sealed with Accept-Encoding: gzip: no outer Content-Encoding');
    ok t_cmp($r->{opened}, 1, 'sealed with Accept-Encoding: gzip: the envelope opens');
    my $inner = $r->{plain} // '';
    my $ie = $r->{h}->header('X-E2E-Content-Encoding');
    $inner = gunzip_bytes($inner) // '' if ($ie // '') eq 'gzip';
    ok t_cmp($inner, $five, 'sealed with Accept-Encoding: gzip: decodes to the file '
             . '(X-E2E-Content-Encoding ' . ($ie // 'none') . ')');
    ok t_cmp(lc join(',', $r->{h}->header('Vary')), qr/\baccept\b/,
             'sealed with Accept-Encoding: Vary still lists Accept');
}

# --- Accept variants ------------------------------------------------------------------------
{
    my $a = request(path => '/static/hello.txt', session => $s,
                    accept => 'text/html, application/x-zeq-e2e;q=0.5, */*;q=0.1');
    ok t_cmp($a->{plain} // '', $hello, 'Accept listing the envelope type among others: sealed');
    my $c = request(path => '/static/hello.txt', session => $s,
                    accept => 'Application/X-Zeq-E2E');
    ok t_cmp($c->{opened}, 1, 'Accept with the type in other case: sealed');
    my $w = request(path => '/static/hello.txt', session => $s, accept => '*/*');
    ok t_cmp("$w->{enveloped} " . ($w->{body} eq $hello ? 'file' : 'other'), '0 file',
             'Accept: */* (a wildcard) with a session: the plaintext file');
    my $z = request(path => '/static/hello.txt', session => $s,
                    accept => 'application/x-zeq-e2e;q=0');
    ok t_cmp($z->{enveloped}, 0, 'Accept: application/x-zeq-e2e;q=0: not sealed');
}
