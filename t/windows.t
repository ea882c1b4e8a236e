# The replay window table of a store of one server (ZeqE2EReplayWindows,
# src/zeq_wintab.c), tried on servers of its own: with 16 windows, 40 v2
# sessions made and used one after the other leave the 24 oldest without a
# window (401 from their next request on, their numbers never accepted
# again) and the 16 latest with theirs (a new number accepted, an old one
# refused); the same sealed request sent by 8 connections at once, round
# after round, is executed exactly once (one 200, seven 400 e2e_replayed);
# across a graceful and a full restart (shmcb forgets its sessions, the
# table outlives the graceful one) no session of before goes on with an
# empty window: its numbers, seen or new, are refused (401), and the
# sessions made after accept theirs once.
use strict;
use warnings;

use FindBin ();
use lib "$FindBin::Bin/lib";

use Apache::Test;
use Apache::TestUtil;
use File::Spec::Functions qw(catfile);
use ZeqTest;
use ZeqTest::Cluster;
use ZeqTest::V2 ();

use constant WINDOWS => 16;
use constant SESSIONS => 40;
use constant ROUNDS => 10;
use constant RACERS => 8;

plan tests => 7 + 3 + 9, need need_lwp;

sub check { ok t_cmp($_[0], $_[1], $_[2]) }
sub note { print map { "# $_\n" } split /\n/, join '', @_ }
sub code_of { my ($r) = @_; return "$r->{status} " . ((json_error($r) // {})->{error} // '') }

my $be = ZeqTest::Cluster::Backend->start('windows-backend');
my $A = ZeqTest::Cluster::Apache->start('windows-a', backend => $be->addr,
                                         extra => 'ZeqE2EReplayWindows ' . WINDOWS . "\n"
                                                  . "ZeqE2EHandshakeRate off\n");

# --- more sessions than windows ------------------------------------------------------------
{
    my @s;
    for my $k (1 .. SESSIONS) {
        my $s = ZeqTest::V2::handshake(vhost => $A->hostport);
        my $r = $s->{ok} ? ZeqTest::V2::request(session => $s, path => "/app/echo?many=$k", seq => 0)
                         : { status => 0 };
        push @s, [$s, $r->{status}];
    }
    check(scalar(grep { $_->[1] == 200 } @s), SESSIONS,
          SESSIONS . ' sessions made and used one after the other: each first request answered');
    my $lost = SESSIONS - WINDOWS;
    my @old = map { code_of(ZeqTest::V2::request(session => $_->[0], path => '/app/echo?old', seq => 1)) }
              @s[0 .. $lost - 1];
    my @new = map { code_of(ZeqTest::V2::request(session => $_->[0], path => '/app/echo?new', seq => 1)) }
              @s[$lost .. SESSIONS - 1];
    check(scalar(grep { /^401 e2e_session_invalid/ } @old), $lost,
          "with @{[WINDOWS]} windows the $lost oldest sessions lost theirs: 401 for a new number");
    check(scalar(grep { /^200/ } @new), WINDOWS, 'the ' . WINDOWS . ' latest accept a new number');
    my @again = map { code_of(ZeqTest::V2::request(session => $_->[0], path => '/app/echo?again', seq => 0)) }
                @s[$lost .. SESSIONS - 1];
    check(scalar(grep { /^400 e2e_replayed/ } @again), WINDOWS, 'and refuse the number they used first');
    my @old0 = map { code_of(ZeqTest::V2::request(session => $_->[0], path => '/app/echo?old0', seq => 0)) }
               @s[0 .. $lost - 1];
    check(scalar(grep { /^401 e2e_session_invalid/ } @old0), $lost,
          'the sessions without a window: their number seen before is refused too (401), not accepted');
    my $log = $A->error_log;
    check(scalar(() = $log =~ /ZEQ20019: every replay window is in use/g), $lost,
          'each window taken from a live session is logged (ZEQ20019)');
    check(scalar(() = $log =~ /ZEQ20020: session \w+ has lost its replay window/g) >= $lost ? 'yes' : 'no',
          'yes', 'and each session that lost its own, when it next comes (ZEQ20020)');
}

# --- the same request at once on parallel connections ---------------------------------------
{
    my (@won, @replayed, @ran);
    for my $round (1 .. ROUNDS) {
        my $s = ZeqTest::V2::handshake(vhost => $A->hostport);
        my $seq = 3 + $round;
        my @res = ZeqTest::Cluster::race_sealed(RACERS, $s, $A->hostport, $seq, "/app/echo?race=$round",
                                                "race $round");
        push @won, scalar grep { /^200/ } @res;
        push @replayed, scalar grep { /^400 e2e_replayed/ } @res;
        push @ran, scalar grep { $_ eq "POST /echo?race=$round" } $be->hits;
    }
    check("@won", join(' ', (1) x ROUNDS), RACERS . ' connections send one sealed request at once, '
          . ROUNDS . ' rounds: exactly one accepted each round');
    check("@replayed", join(' ', (RACERS - 1) x ROUNDS), 'every other one 400 e2e_replayed');
    check("@ran", join(' ', (1) x ROUNDS), 'and the backend executed each request once');
}
$A->stop;

# --- restarts ----------------------------------------------------------------------------------
# shmcb forgets its sessions at every restart; the window table outlives a
# graceful one. Neither kind may let a session of before go on with an
# empty window, and the sessions made after start with empty ones.
{
    my $B = ZeqTest::Cluster::Apache->start('windows-restart', backend => $be->addr,
                                             extra => "ZeqE2EReplayWindows 64\n");
    my $s = ZeqTest::V2::handshake(vhost => $B->hostport);
    my @first = map { ZeqTest::V2::request(session => $s, path => "/app/echo?r=$_", seq => $_)->{status} } 0 .. 2;
    check("@first", '200 200 200', 'a session accepts 0, 1 and 2');
    check($B->graceful ? 1 : 0, 1, 'a graceful restart');
    check(join(' ', map { code_of(ZeqTest::V2::request(session => $s, path => "/app/echo?r=$_", seq => $_)) } 1, 3),
          '401 e2e_session_invalid 401 e2e_session_invalid',
          'after it the session of before is unknown: 1 (seen) and 3 (new) both refused, neither accepted');
    my $t = ZeqTest::V2::handshake(vhost => $B->hostport);
    my @t = map { code_of(ZeqTest::V2::request(session => $t, path => "/app/echo?t=$_", seq => $_)) } 0, 1, 2, 1;
    check("@t", '200  200  200  400 e2e_replayed',
          'a session made after it accepts 0, 1, 2 (the numbers of the one before) and refuses 1 again');
    check($B->restart_full ? 1 : 0, 1, 'a full restart (stop, then start)');
    check(join(' ', map { code_of(ZeqTest::V2::request(session => $t, path => "/app/echo?t=$_", seq => $_)) } 2, 3),
          '401 e2e_session_invalid 401 e2e_session_invalid',
          'after it the session of before is unknown: 2 (seen) and 3 (new) refused');
    my $u = ZeqTest::V2::handshake(vhost => $B->hostport);
    my @u = map { code_of(ZeqTest::V2::request(session => $u, path => "/app/echo?u=$_", seq => $_)) } 0, 0;
    check("@u", '200  400 e2e_replayed', 'a session made after it accepts 0 once');
    my @execs = grep { m{^GET /echo\?[rtu]=} } $be->hits;
    check(scalar(@execs), 3 + 3 + 1, 'the backend executed the 7 accepted requests, nothing refused');
    check(scalar(() = $B->error_log =~ /ZEQ20020/g), 0, 'no session lost its window (the table had room)');
    $B->stop;
}
