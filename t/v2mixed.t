# Version 2 answers made of file and heap buckets mixed, as Apache's own
# modules produce them: server-side includes (70,007 bytes of text, then
# a file of 3 x 64 KiB + 12,345 bytes or of 3 MiB, then text: the file
# starts at no record or batch boundary), mod_autoindex's listing with a
# subrequest's HEADER.html of about 1.1 MB (a file the subrequest closes
# before the answer ends), mod_dir's DirectoryIndex and an ErrorDocument
# (internal redirects), and a static file asked for with a Range (sealed
# whole, never a 206). Over HTTP/1.1 and HTTP/2 each answer has the
# plaintext answer's status, verifies (bound to its sequence number and
# status) and opens to exactly the body of the plaintext answer over the
# same transport.
use strict;
use warnings;

use FindBin ();
use lib "$FindBin::Bin/lib";

use Apache::Test;
use Apache::TestUtil;
use ZeqTest;
use ZeqTest::V2 ();

# [path, extra request headers, what]
my @CASES = (
    ['/gen/ssi/page.shtml', [], 'SSI page including odd.bin'],
    ['/gen/ssi/big.shtml', [], 'SSI page including big.bin'],
    ['/gen/listing/', [], 'listing with a 1.1 MB HEADER.html'],
    ['/dir/', [], 'DirectoryIndex'],
    ['/errdoc/missing.html', [], 'ErrorDocument of a 404'],
    ['/gen/odd.bin', [Range => 'bytes=65530-65545'], 'static file with a Range'],
);
my @VIA = (['HTTP/1.1', 'zeq_file', 'lwp'], ['HTTP/2', 'zeq_h2', 'curl']);

plan tests => @CASES * @VIA * 4 + 2, need_lwp;

for my $v (@VIA) {
    my ($proto, $vhost, $via) = @$v;
    my $s = ZeqTest::V2::handshake(vhost => $vhost);
    for my $c (@CASES) {
        my ($path, $headers, $what) = @$c;
        my $want = request(vhost => $vhost, via => $via, path => $path);
        ok t_cmp($want->{status} =~ /^(?:200|404)$/ && length $want->{body} ? 'an answer'
                 : "$want->{status}, " . length($want->{body}) . ' bytes',
                 'an answer', "plaintext over $proto: $what ($path): a body (control)");
        my $r = ZeqTest::V2::request(session => $s, path => $path, via => $via, headers => $headers);
        ok t_cmp($r->{status}, $want->{status}, "v2 over $proto: $what: the plaintext answer's status");
        ok t_cmp($r->{verified}, 1, "v2 over $proto: $what: sealed, bound to sequence number $r->{sent_seq}");
        ok t_cmp(digest_of($r->{plain}), digest_of($want->{body}),
                 "v2 over $proto: $what: opens to the plaintext answer's " . length($want->{body}) . ' bytes');
        if ($path eq '/gen/odd.bin' && $proto eq 'HTTP/1.1') {
            ok t_cmp($r->{h}->header('Content-Range'), undef, "v2: $what: no Content-Range");
            ok t_cmp($r->{h}->header('Content-Length'), ZeqTest::V2::sealed_len(length $want->{body}),
                     "v2: $what: the whole file's sealed length");
        }
    }
}
