# The browser library the module serves where the protocol is enabled
# (docs/PROTOCOL.md section 17): /static/zeq-e2e-client.js, text/javascript,
# an ETag and 304 to If-None-Match; it stays open under ZeqE2ERequire (like
# the handshake) and is not served where ZeqE2E is Off.
use strict;
use warnings;

use FindBin ();
use lib "$FindBin::Bin/lib";

use Apache::Test;
use Apache::TestUtil;
use ZeqTest;

use constant SCRIPT => '/static/zeq-e2e-client.js';

plan tests => 5 + 2 + 1, need_lwp;

{
    my $r = request(path => SCRIPT);
    my $etag = $r->{h}->header('ETag');
    ok t_cmp($r->{status}, 200, 'zeq_file: GET ' . SCRIPT . ': 200');
    ok t_cmp(media_type($r->{h}->header('Content-Type')), 'text/javascript',
             'the library is text/javascript');
    ok t_cmp(length($r->{body}) > 0 ? 'a body' : 'empty', 'a body', 'the library has a body');
    ok t_cmp(defined $etag ? 'ETag' : 'none', 'ETag', 'the library has an ETag');
    my $c = request(path => SCRIPT, headers => ['If-None-Match' => $etag // '"none"']);
    ok t_cmp("$c->{status} " . length($c->{body}), '304 0', 'If-None-Match with that ETag: 304, no body');
}

# zeq_env has ZeqE2ERequire On for the whole host.
{
    my $r = request(vhost => 'zeq_env', path => SCRIPT);
    ok t_cmp($r->{status}, 200, 'under ZeqE2ERequire: the library stays open (200)');
    ok t_cmp(media_type($r->{h}->header('Content-Type')), 'text/javascript',
             'under ZeqE2ERequire: still the library, in plaintext');
}

# zeq_literal: ZeqE2E is On only under /custom.
{
    my $r = request(vhost => 'zeq_literal', path => SCRIPT);
    ok t_cmp($r->{status}, 404, 'where ZeqE2E is Off: no library (404)');
}
