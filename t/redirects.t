# Subrequests and internal redirects decrypt and encrypt exactly once:
# mod_dir's index, ErrorDocument to a local page, mod_rewrite [PT] in the
# virtual host and a per-directory rewrite (an internal redirect).
use strict;
use warnings;

use FindBin ();
use lib "$FindBin::Bin/lib";

use Apache::Test;
use Apache::TestUtil;
use File::Spec::Functions qw(catfile);
use ZeqTest;

plan tests => 5 + 2 + 4 + 2 + 2 * 6 + 2, need_lwp;

my $docroot = Apache::Test::vars('documentroot');
sub slurp {
    open my $fh, '<:raw', $_[0] or return undef;
    local $/;
    my $d = <$fh>;
    close $fh;
    return $d;
}
my $index = slurp(catfile($docroot, 'dir', 'index.html'));
my $notfound = slurp(catfile($docroot, 'errdoc', 'notfound.html'));

my $s = handshake(vhost => 'zeq_file');

# --- mod_dir: /dir/ is a subrequest for index.html -----------------------------------
{
    my $r = request(path => '/dir/', session => $s);
    ok t_cmp($r->{status}, 200, 'GET /dir/ with a session: 200');
    ok t_cmp($r->{opened}, 1, 'GET /dir/: the envelope opens');
    ok t_cmp($r->{plain}, $index, 'GET /dir/: opens to index.html exactly (sealed once)');
    ok t_cmp(media_type($r->{h}->header('X-E2E-Content-Type')), 'text/html',
             'GET /dir/: X-E2E-Content-Type text/html');
    ok t_cmp($r->{h}->header('Content-Length'), length($index // '') + OVERHEAD,
             'GET /dir/: Content-Length is 28 + the index size');
    my $p = request(path => '/dir/');
    ok t_cmp($p->{body}, $index, 'plaintext GET /dir/: index.html byte for byte');
    my $d = request(path => '/dir', session => $s);
    ok t_cmp("$d->{status} " . ($d->{h}->header('Location') // ''), qr{^301 \S*/dir/$},
             'GET /dir with a session: mod_dir\'s 301 to /dir/');
}

# --- ErrorDocument 404 /errdoc/notfound.html -------------------------------------------------
{
    my $r = request(path => '/errdoc/missing.html', session => $s);
    ok t_cmp($r->{status}, 404, 'ErrorDocument with a session: 404');
    ok t_cmp($r->{opened}, 1, 'ErrorDocument: the envelope opens');
    ok t_cmp($r->{plain}, $notfound, 'ErrorDocument: opens to the local error page exactly (sealed once)');
    ok t_cmp($r->{h}->header('Content-Length'), length($notfound // '') + OVERHEAD,
             'ErrorDocument: Content-Length is 28 + the page size');
    my $p = request(path => '/errdoc/missing.html');
    ok t_cmp($p->{status}, 404, 'ErrorDocument in plaintext: 404');
    ok t_cmp($p->{body}, $notfound, 'ErrorDocument in plaintext: the page byte for byte');
}

# --- mod_rewrite to the CGI with an encrypted POST ---------------------------------------------
for my $case (['RewriteRule [PT] in the virtual host', '/rw/echo'],
              ['per-directory RewriteRule (internal redirect)', '/rwdir/go']) {
    my ($what, $path) = @$case;
    my $pt = '{"rewritten":"' . $path . '","pad":"' . ('r' x 1000) . '"}';
    my $r;
    my ($cgi) = hits_delta(sub {
        $r = request(method => 'POST', path => $path, session => $s, body => $pt);
    });
    my $e = decode_json_safe($r->{plain}) // {};
    ok t_cmp($r->{status}, 200, "$what: 200");
    ok t_cmp($r->{opened}, 1, "$what: the envelope opens (sealed once)");
    ok t_cmp($e->{script}, 'echo.cgi', "$what: the CGI answered");
    ok t_cmp($e->{CONTENT_LENGTH}, length($pt), "$what: CONTENT_LENGTH is the plaintext length");
    ok t_cmp(digest_of($e->{body}), digest_of($pt),
             "$what: the CGI received the plaintext (decrypted once)");
    ok t_cmp($cgi, 1, "$what: the CGI ran once");
}

# A per-directory rewrite of a plaintext POST still works (control).
{
    my $r = request(method => 'POST', path => '/rwdir/go', raw_body => 'plain=1',
                    content_type => 'application/x-www-form-urlencoded');
    my $e = decode_json_safe($r->{body}) // {};
    ok t_cmp($e->{body}, 'plain=1', 'plaintext POST through the per-directory rewrite: body intact');
    ok t_cmp($r->{enveloped}, 0, 'plaintext POST through the rewrite: plaintext answer');
}
