# Nothing lost across restarts: a Node client (t/loop_client.cjs, v2 with
# node:crypto) sends 2,000 encrypted POSTs, 4 at a time, to a proxied
# backend that records every call it executes, while the test restarts the
# server under it: twice with apachectl -k graceful on shmcb (which forgets
# every session: the client makes a new handshake on the 401 it then
# gets); on redis, graceful, a full restart (the server stops, letting the
# requests in progress finish, and a new one starts) and graceful again,
# through all of which the one session lives on. Every call succeeds for
# the caller, and the backend executes each exactly once: none twice, none
# missing.
use strict;
use warnings;

use FindBin ();
use lib "$FindBin::Bin/lib";

use Apache::Test;
use Apache::TestUtil;
use File::Spec::Functions qw(catfile);
use JSON::PP ();
use POSIX ();
use ZeqTest;
use ZeqTest::Cluster;
use ZeqTest::V2 ();

use constant CALLS => 2000;
use constant CONCURRENCY => 4;

plan tests => 6 + 6,
    need need_lwp,
    { 'node 18 or newer (t/loop_client.cjs)' => sub { ZeqTest::Cluster::node_major() >= 18 },
      'redis-server and redis-cli (Debian: redis-server)' => \&ZeqTest::Cluster::have_redis };

sub check { ok t_cmp($_[0], $_[1], $_[2]) }
sub note { print map { "# $_\n" } split /\n/, join '', @_ }

my $script = catfile($FindBin::Bin, 'loop_client.cjs');

# Runs the loop against $srv, calling $at->{N}->() once the backend has
# executed N calls; returns (the client's report, { call => times executed }).
sub loop {
    my ($srv, $be, $prefix, %at) = @_;
    my $out = catfile(ZeqTest::Cluster::work_dir("restart-$prefix-loop"), 'report.json');
    my $pid = ZeqTest::Cluster::spawn($out, 'node', $script, $srv->hostport, '/app/echo', CALLS,
                                      CONCURRENCY, $prefix);
    my $executed = sub { scalar grep { m{^POST /echo\?call=\Q$prefix\E-\d+$} } $be->hits };
    for my $n (sort { $a <=> $b } keys %at) {
        ZeqTest::Cluster::wait_for(300, sub { $executed->() >= $n || waitpid($pid, POSIX::WNOHANG()) == $pid });
        my $ok = $at{$n}->();
        note("after $n calls: " . ($ok ? 'done' : 'FAILED'));
    }
    ZeqTest::Cluster::reap($pid, 600) or do { kill 'KILL', $pid; ZeqTest::Cluster::reap($pid) };
    open my $fh, '<', $out or die "$out: $!";
    my $text = do { local $/; <$fh> } // '';
    close $fh;
    my ($line) = grep { /^\{/ } split /\n/, $text;
    my $report = eval { JSON::PP->new->decode($line // '') } // { fatal => $text };
    my %count;
    for ($be->hits) {
        $count{$1}++ if m{^POST /echo\?call=\Q$prefix\E-(\d+)$};
    }
    return ($report, \%count);
}

sub exactly_once {
    my ($count) = @_;
    my @twice = grep { $count->{$_} > 1 } keys %$count;
    my @missing = grep { !$count->{$_} } 1 .. CALLS;
    return sprintf('%d executed, %d twice or more, %d missing', scalar(keys %$count), scalar(@twice),
                   scalar(@missing));
}
my $want_once = sprintf('%d executed, 0 twice or more, 0 missing', CALLS);

sub summary {
    my ($r) = @_;
    return JSON::PP->new->canonical->encode($r);
}

# --- shmcb, two graceful restarts ----------------------------------------------------
{
    my $be = ZeqTest::Cluster::Backend->start('restart-shmcb-backend');
    my $srv = ZeqTest::Cluster::Apache->start('restart-shmcb', backend => $be->addr);
    my $gen0 = $srv->generation;
    my $before = ZeqTest::V2::handshake(vhost => $srv->hostport);
    my ($report, $count) = loop($srv, $be, 'shmcb',
                                500 => sub { $srv->graceful }, 1200 => sub { $srv->graceful });
    note('shmcb: ' . summary($report));
    check(($report->{ok} // 0) . ' ok, ' . ($report->{failed} // '?') . ' failed', CALLS . ' ok, 0 failed',
          'shmcb, 2 graceful restarts: every one of the ' . CALLS . ' calls succeeded for the client'
          . (@{ $report->{failures} || [] } ? " (@{ $report->{failures} })" : '')
          . ($report->{fatal} ? " ($report->{fatal})" : ''));
    check(exactly_once($count), $want_once, 'shmcb: the backend executed each call exactly once');
    check($srv->generation - $gen0, 2, 'the server went through 2 graceful restarts meanwhile');
    check(($report->{handshakes} // 0) >= 2 && ($report->{retries}{session} // 0) >= 1 ? 'new handshakes' : 'none',
          'new handshakes', 'shmcb forgot the sessions: the client made new handshakes on the 401 it got');
    my $r = ZeqTest::V2::request(session => $before, vhost => $srv->hostport, path => '/app/echo');
    check($r->{status}, 401, 'shmcb: a session of before the restarts is unknown after them');
    my $st = $srv->status_auto;
    check(($st->{ZeqE2ERequestsOpened} // 0) >= CALLS ? 'kept' : 'lost: ' . ($st->{ZeqE2ERequestsOpened} // 'none'),
          'kept', 'mod_status: the counters survived the graceful restarts (' . ($st->{ZeqE2ERequestsOpened} // 0)
          . ' requests opened)');
    $srv->stop;
}

# --- redis: graceful, full restart, graceful ---------------------------------------------
{
    my $redis = ZeqTest::Cluster::Store->start('redis', 'restart-redis');
    my $be = ZeqTest::Cluster::Backend->start('restart-redis-backend');
    my $key = ZeqTest::Cluster::record_key_file(catfile(ZeqTest::Cluster::work_dir('restart-keys'), 'record.key'),
                                                'restart');
    my $srv = ZeqTest::Cluster::Apache->start('restart-redis', store => $redis->spec, record_key => $key,
                                              backend => $be->addr);
    my $before = ZeqTest::V2::handshake(vhost => $srv->hostport);
    my $pid0 = $srv->pid;
    my $pid1;
    my ($report, $count) = loop($srv, $be, 'redis',
                                500 => sub { $srv->graceful },
                                1000 => sub { my $ok = $srv->restart_full; $pid1 = $srv->pid; $ok },
                                1500 => sub { $srv->graceful });
    note('redis: ' . summary($report));
    check(($report->{ok} // 0) . ' ok, ' . ($report->{failed} // '?') . ' failed', CALLS . ' ok, 0 failed',
          'redis, graceful + full restart + graceful: every one of the ' . CALLS . ' calls succeeded for the client'
          . (@{ $report->{failures} || [] } ? " (@{ $report->{failures} })" : '')
          . ($report->{fatal} ? " ($report->{fatal})" : ''));
    check(exactly_once($count), $want_once, 'redis: the backend executed each call exactly once');
    check(defined $pid1 && $pid1 != $pid0 ? 'a new server' : 'the same', 'a new server',
          'the full restart made a new server process');
    check(($report->{handshakes} // 0) . ' handshake, ' . ($report->{retries}{session} // '?') . ' 401',
          '1 handshake, 0 401', 'redis: the one session lived through all the restarts');
    my $r = ZeqTest::V2::request(session => $before, vhost => $srv->hostport, method => 'POST',
                                 path => '/app/echo', body => 'after');
    check("$r->{status} " . ($r->{verified} // 'x'), '200 1',
          'redis: a session made before the restarts serves after them');
    check(join("\n", $srv->unexpected_log_lines), '', 'no unexpected warn or error line in the server\'s log');
    $srv->stop;
}
