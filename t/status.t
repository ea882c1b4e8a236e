# The module's section of mod_status, on servers of its own: what each kind
# of exchange adds to the counters (handshakes by version, sessions created
# and, on shmcb, active; requests opened and their bytes; responses sealed;
# refusals by error code; replays refused), in ?auto form and on the HTML
# page; the counters survive a graceful restart (shmcb's sessions do not);
# the store and its state (redis up, then down); LogLevel zeq_e2e:info logs
# each handshake with a prefix of the id's hash, the client's address and
# the version, never the id.
use strict;
use warnings;

use FindBin ();
use lib "$FindBin::Bin/lib";

use Apache::Test;
use Apache::TestUtil;
use Digest::SHA qw(sha256_hex);
use File::Spec::Functions qw(catfile);
use ZeqTest;
use ZeqTest::Cluster;
use ZeqTest::Fixtures ();
use ZeqTest::V2 ();

plan tests => 5 + 3 + 2 + 2 + 4,
    need need_lwp,
    { 'redis-server and redis-cli (Debian: redis-server)' => \&ZeqTest::Cluster::have_redis };

sub check { ok t_cmp($_[0], $_[1], $_[2]) }

my $secret = ZeqTest::Fixtures::FILE_SECRET;
my $be = ZeqTest::Cluster::Backend->start('status-backend');
my $srv = ZeqTest::Cluster::Apache->start('status-shmcb', backend => $be->addr,
                                          secret => ZeqTest::Fixtures::secret_file());
my $hp = $srv->hostport;

my @counters = qw(HandshakesV1 HandshakesV2 SessionsCreated RequestsOpened BytesOpened ResponsesSealed
                  ReplaysRefused Refused_e2e_replayed Refused_e2e_session_invalid Refused_e2e_bad_handshake
                  Refused_e2e_method_not_allowed Refused_e2e_decrypt_failed);
sub counters { my $s = $srv->status_auto; return { map { $_ => $s->{"ZeqE2E$_"} } @counters, 'BytesSealed', 'SessionsActive' } }
sub deltas {
    my ($a, $b) = @_;
    return join ' ', map { "$_=" . (($b->{$_} // 0) - ($a->{$_} // 0)) } @counters;
}

my $s0 = counters();
check(defined $s0->{HandshakesV2} && defined $s0->{SessionsActive} ? 'present' : 'missing', 'present',
      '?auto carries the ZeqE2E counters, and SessionsActive on shmcb');

my $v1 = handshake(vhost => $hp, secret => $secret);
my $v2 = ZeqTest::V2::handshake(vhost => $hp);
my $r1 = ZeqTest::V2::request(session => $v2, vhost => $hp, method => 'POST', path => '/app/echo', seq => 0,
                              body => 'x' x 100);
my $r2 = request(vhost => $hp, session => $v1, method => 'POST', path => '/app/echo', body => 'y' x 50);
my $r3 = ZeqTest::V2::request(session => $v2, vhost => $hp, path => '/app/echo', seq => 1);
my $replay = ZeqTest::V2::request(session => $v2, vhost => $hp, path => '/app/echo', seq => 1);
my $unknown = ZeqTest::V2::request(session => { %$v2, id => 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' },
                                   vhost => $hp, path => '/app/echo');
my $bad = ZeqTest::handshake_raw(vhost => $hp, body => '{"clientNonce": 1}');
my $get = ZeqTest::handshake_raw(vhost => $hp, method => 'GET');
check(join(' ', $r1->{status}, $r2->{status}, $r3->{status}, $replay->{status}, $unknown->{status}, $bad->code,
           $get->code), '200 200 200 400 401 400 405', 'the exchanges answered as they should');
my $s1 = counters();
check(deltas($s0, $s1),
      'HandshakesV1=1 HandshakesV2=1 SessionsCreated=2 RequestsOpened=3 BytesOpened=150 ResponsesSealed=3 '
      . 'ReplaysRefused=1 Refused_e2e_replayed=1 Refused_e2e_session_invalid=1 Refused_e2e_bad_handshake=1 '
      . 'Refused_e2e_method_not_allowed=1 Refused_e2e_decrypt_failed=0',
      'each exchange counted once, where it belongs');
check(($s1->{BytesSealed} // 0) - ($s0->{BytesSealed} // 0) > 150 ? 'counted' : 'not counted', 'counted',
      'the sealed bytes sent are counted');
check($s1->{SessionsActive}, 2, 'shmcb counts the sessions it holds');

my $html = $srv->status_html;
check($html =~ m{<h2>mod_zeq_e2e</h2>} && $html =~ m{<td>handshakes, version 2</td><td>1</td>} ? 'shown' : 'missing',
      'shown', 'the HTML page has the module\'s section with its counters');
check($html =~ /SHMCB/i ? 'shown' : 'missing', 'shown', 'and the provider\'s own status (shmcb\'s)');
check(($srv->status_auto->{ZeqE2EStore} // '') =~ /^shmcb / ? 'shmcb' : 'other', 'shmcb', '?auto names the store');

# --- a graceful restart -----------------------------------------------------------------
$srv->graceful or die 'graceful restart failed';
my $s2 = counters();
check(deltas($s1, $s2), join(' ', map { "$_=0" } @counters),
      'after a graceful restart the counters are those of before (not reset)');
check($s2->{SessionsActive}, 0, 'while shmcb has forgotten the sessions');

# --- the handshake log ---------------------------------------------------------------------
{
    my $log = $srv->error_log;
    my ($t1, $t2) = map { substr(sha256_hex($_->{id}), 0, 12) } $v1, $v2;
    my $lines = join '', map { $log =~ /\[zeq_e2e:info\] .*ZEQ30005: handshake from 127\.0\.0\.1: version $_->[0] session $_->[1],/ ? 1 : 0 }
                         [1, $t1], [2, $t2];
    check($lines, '11', 'LogLevel zeq_e2e:info: each handshake is logged with its version, the client address '
          . 'and a prefix of the id\'s hash');
    check(join(' ', grep { index($log, $_) >= 0 } $v1->{id}, $v2->{id}), '', 'the ids themselves are never logged');
    $srv->stop;
}

# --- redis: the store and its state -------------------------------------------------------
{
    my $redis = ZeqTest::Cluster::Store->start('redis', 'status-redis');
    my $key = ZeqTest::Cluster::record_key_file(catfile(ZeqTest::Cluster::work_dir('status-keys'), 'record.key'),
                                                'status');
    my $rs = ZeqTest::Cluster::Apache->start('status-redis-a', store => $redis->spec, record_key => $key,
                                             backend => $be->addr, timeout => '500ms');
    my $s = ZeqTest::V2::handshake(vhost => $rs->hostport);
    my $st = $rs->status_auto;
    check(($st->{ZeqE2EStore} // '') . ' / ' . ($st->{ZeqE2EStoreState} // ''), 'redis ' . '127.0.0.1:'
          . $redis->port . ' / up', 'redis: the store and its state (up)');
    check(exists $st->{ZeqE2ESessionsActive} ? 'counted' : 'not counted', 'not counted',
          'redis cannot count its sessions: no SessionsActive line');
    $redis->down;
    my $r = ZeqTest::V2::request(session => $s, vhost => $rs->hostport, path => '/app/echo');
    $st = $rs->status_auto;
    check("$r->{status} " . ($st->{ZeqE2EStoreState} // ''), '503 down', 'redis stopped: the state says down');
    check(($st->{ZeqE2EStoreFailures} // 0) >= 1 && ($st->{ZeqE2ERefused_e2e_unavailable} // 0) >= 1
          ? 'counted' : 'not counted', 'counted', 'the failure and the 503 are counted');
    $rs->stop;
}
