# The store goes away and comes back, under a server of its own: redis is
# stopped (it saves its data, as a redis with persistence does) and
# started again, then paused (SIGSTOP: connections are accepted, nothing is
# answered) and resumed; memcached is stopped and started (it forgets
# everything). Meanwhile handshakes and encrypted requests answer 503
# e2e_unavailable with Retry-After (not 401: the session may well exist),
# plaintext is served, no answer waits much longer than
# ZeqE2ESessionCacheTimeout (500ms here), nothing reaches the application;
# service resumes by itself once the store is back.
use strict;
use warnings;

use FindBin ();
use lib "$FindBin::Bin/lib";

use Apache::Test;
use Apache::TestUtil;
use File::Spec::Functions qw(catfile);
use Time::HiRes ();
use ZeqTest;
use ZeqTest::Cluster;
use ZeqTest::Fixtures ();
use ZeqTest::V2 ();

use constant PARALLEL => 6;
# The bound on an answer while the store hangs: far above the 500 ms
# timeout, far below the client's own timeout (a hung server would hit it).
use constant BOUND => 20;

my $CE = ZeqTest::CHECK_ERROR_TESTS;

plan tests => (1 + 3 * ($CE + 1) + 2 + 3) + ($CE + 1 + 5) + 1 + (1 + ($CE + 1) + 2 + 2 + 1),
    need need_lwp,
    { 'redis-server and redis-cli (Debian: redis-server)' => \&ZeqTest::Cluster::have_redis,
      'memcached (Debian: memcached)' => \&ZeqTest::Cluster::have_memcached };

sub check { ok t_cmp($_[0], $_[1], $_[2]) }
sub note { print map { "# $_\n" } split /\n/, join '', @_ }
sub code_of { (json_error($_[0]) // {})->{error} // '' }

my $secret = ZeqTest::Fixtures::FILE_SECRET;
my $keys_dir = ZeqTest::Cluster::work_dir('outage-keys');
my $record_key = ZeqTest::Cluster::record_key_file(catfile($keys_dir, 'record.key'), 'outage');
my $be = ZeqTest::Cluster::Backend->start('outage-backend');
my %common = (record_key => $record_key, backend => $be->addr, timeout => '500ms',
              secret => ZeqTest::Fixtures::secret_file());
sub hits_of { my ($re) = @_; scalar grep { $_ =~ $re } $be->hits }

# 503 e2e_unavailable with a Retry-After of whole seconds.
sub check_unavailable {
    my ($r, $what) = @_;
    check_error($r, 503, 'e2e_unavailable', $what);
    my $h = ref $r eq 'HASH' ? $r->{h} : $r->headers;
    check(($h->header('Retry-After') // '') =~ /^[1-9]\d*$/ ? 'seconds' : 'none', 'seconds',
          "$what: Retry-After (whole seconds)");
}

# A v2 request with a fresh number until it is answered 200 (at most secs).
sub until_served {
    my ($s, $srv, $secs) = @_;
    my $r;
    ZeqTest::Cluster::wait_for($secs, sub {
        $r = ZeqTest::V2::request(session => $s, vhost => $srv->hostport, path => '/app/echo?after=outage');
        $r->{status} != 503;
    });
    return $r;
}

my @expected_lines = (
    qr/\[zeq_e2e:error\] .*ZEQ40010: session cache lookup failed/,
    qr/\[zeq_e2e:error\] .*ZEQ30003: handshake failed: cannot store the session/,
    qr/\[zeq_e2e:error\] .*ZEQ70005: session cache update failed/,
);

# --- redis stopped, then started ----------------------------------------------------
my $redis = ZeqTest::Cluster::Store->start('redis', 'outage-redis');
my $A = ZeqTest::Cluster::Apache->start('outage-a', store => $redis->spec, %common);
my $s = ZeqTest::V2::handshake(vhost => $A->hostport);
my $s1 = handshake(vhost => $A->hostport, secret => $secret);
{
    my $r = ZeqTest::V2::request(session => $s, vhost => $A->hostport, method => 'POST', path => '/app/echo',
                                 body => 'before');
    check("$s->{ok} $s1->{ok} $r->{status}", '1 1 200', 'control: v2 and v1 sessions on redis, a request served');

    $redis->down;
    my $hits0 = hits_of(qr{^POST /echo\?during=});
    check_unavailable(ZeqTest::V2::handshake(vhost => $A->hostport)->{res}, 'redis stopped: a v2 handshake');
    $r = ZeqTest::V2::request(session => $s, vhost => $A->hostport, method => 'POST',
                              path => '/app/echo?during=v2', body => 'while redis is down');
    check_unavailable($r, 'redis stopped: an encrypted v2 request of a live session');
    $r = request(vhost => $A->hostport, session => $s1, method => 'POST', path => '/app/echo?during=v1',
                 body => 'v1 while redis is down');
    check_unavailable($r, 'redis stopped: an encrypted v1 request');
    check(hits_of(qr{^POST /echo\?during=}) - $hits0, 0, 'none of them reached the application');
    $r = request(vhost => $A->hostport, method => 'POST', path => '/app/echo?plain=1', body => '{"plain":1}');
    check("$r->{status} " . ((decode_json_safe($r->{body}) // {})->{body} // ''), '200 {"plain":1}',
          'redis stopped: a plaintext request is served');

    $redis->up or die 'redis did not start again';
    $r = until_served($s, $A, 15);
    check("$r->{status} " . ($r->{verified} // 'x'), '200 1',
          'redis back: the same session serves again, by itself (redis kept it)');
    $r = request(vhost => $A->hostport, session => $s1, path => '/app/echo?after=v1');
    check("$r->{status} " . ($r->{opened} // 'x'), '200 1', 'redis back: the v1 session too');
    check(ZeqTest::V2::handshake(vhost => $A->hostport)->{ok}, 1, 'redis back: a new handshake succeeds');
}

# --- redis paused: connections accepted, nothing answered ----------------------------------
{
    $redis->pause;
    my $t0 = Time::HiRes::time();
    my $r = ZeqTest::V2::request(session => $s, vhost => $A->hostport, path => '/app/echo?paused=1');
    my $took = Time::HiRes::time() - $t0;
    check_unavailable($r, 'redis paused: an encrypted request');
    check($took < BOUND ? 'bounded' : sprintf('%.1f s', $took), 'bounded',
          'redis paused: it is answered by the module\'s timeout, not left hanging (' . BOUND . ' s bound)');
    note(sprintf('redis paused: the first answer took %.2f s (ZeqE2ESessionCacheTimeout 500ms)', $took));

    # Several at once, each on a thread of its own.
    my @res = ZeqTest::Cluster::at_once(PARALLEL, sub {
        my $t = Time::HiRes::time();
        my $sk = ZeqTest::V2::handshake(vhost => $A->hostport);
        return sprintf('%d %s %.2f', $sk->{res}->code, code_of($sk->{res}), Time::HiRes::time() - $t);
    });
    my @slow = grep { (split / /)[2] >= BOUND } @res;
    check(join(' ', map { join ' ', (split / /)[0, 1] } @res), join(' ', ('503 e2e_unavailable') x PARALLEL),
          'redis paused: ' . PARALLEL . ' handshakes at once all answer 503 e2e_unavailable');
    check(scalar(@slow), 0, 'and none waited as long as the bound');
    note('redis paused: handshakes took ' . join(', ', map { (split / /)[2] . ' s' } @res));
    $r = request(vhost => $A->hostport, path => '/app/echo?plain=paused');
    check($r->{status}, 200, 'redis paused: plaintext is served meanwhile');

    $redis->resume;
    $r = until_served($s, $A, 15);
    check("$r->{status} " . ($r->{verified} // 'x'), '200 1', 'redis resumed: service resumes by itself');
}
check(join("\n", $A->unexpected_log_lines(@expected_lines)), '',
      'the server logged nothing at warn or above but the store failures');
$A->stop;
$redis->down;

# --- memcached stopped, then started ------------------------------------------------
{
    my $mc = ZeqTest::Cluster::Store->start('memcached', 'outage-memcached');
    my $M = ZeqTest::Cluster::Apache->start('outage-m', store => $mc->spec, %common);
    my $m = ZeqTest::V2::handshake(vhost => $M->hostport);
    my $r = ZeqTest::V2::request(session => $m, vhost => $M->hostport, path => '/app/echo');
    check("$m->{ok} $r->{status}", '1 200', 'control: a session on memcached serves');
    $mc->down;
    check_unavailable(ZeqTest::V2::handshake(vhost => $M->hostport)->{res}, 'memcached stopped: a handshake');
    $r = ZeqTest::V2::request(session => $m, vhost => $M->hostport, path => '/app/echo?during=mc');
    check("$r->{status} " . code_of($r), '503 e2e_unavailable',
          'memcached stopped: an encrypted request of a live session answers 503 (not 401)');
    $r = request(vhost => $M->hostport, path => '/app/echo?plain=mc');
    check($r->{status}, 200, 'memcached stopped: plaintext is served');
    $mc->up or die 'memcached did not start again';
    my $n;
    ZeqTest::Cluster::wait_for(15, sub { $n = ZeqTest::V2::handshake(vhost => $M->hostport); $n->{ok} });
    check($n->{ok}, 1, 'memcached back: handshakes succeed again, by themselves');
    $r = ZeqTest::V2::request(session => $m, vhost => $M->hostport, path => '/app/echo');
    check("$r->{status} " . code_of($r), '401 e2e_session_invalid',
          'memcached back: the old session is gone with its data (401, now that the store says so)');
    check(join("\n", $M->unexpected_log_lines(@expected_lines)), '',
          'the memcached server logged nothing at warn or above but the store failures');
    $M->stop;
    $mc->down;
}
