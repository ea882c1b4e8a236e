# Edges of the replay window table and the per-process record cache
# (src/zeq_wintab.c, src/zeq_reccache.c) on servers of their own whose
# event MPM runs several children of two threads each, so that parallel
# connections land in different processes:
#   - sequence numbers at the ends of their range: 0, then 2^53 - 1 far
#     ahead (accepted once), 0 then too old, the oldest number the window
#     still holds and the one below it; 2^53, 2^64 - 1, 2^64 and 2^64 + 5
#     (which would wrap to 5) refused as malformed. The backend executes
#     exactly the accepted requests;
#   - the same sealed request on 8 connections at once, round after round:
#     executed once;
#   - with every window live, a session cached in several children loses it to a
#     newer one; the two are then used alternately, each from several
#     connections: the old one gets 401 e2e_session_invalid every time
#     (whatever child, whatever number) and never reaches the backend, the
#     new one accepts each of its numbers once;
#   - a session cached in every child, then named on a virtual host of
#     another ZeqE2ESessionScope: 401, the backend never sees it; on one of
#     the same scope it is served and shares the window (a number used on
#     the first host is refused on the second).
use strict;
use warnings;

use FindBin ();
use lib "$FindBin::Bin/lib";

use Apache::Test;
use Apache::TestUtil;
use ZeqTest;
use ZeqTest::Cluster;
use ZeqTest::V2 ();

use constant RACERS => 8;
use constant ROUNDS => 6;
use constant SPREAD => 8;       # connections that warm the caches
use constant WINDOWS => 16;     # the least ZeqE2EReplayWindows

plan tests => 11 + 3 + 6 + 5, need need_lwp;

sub check { ok t_cmp($_[0], $_[1], $_[2]) }
sub code_of { my ($r) = @_; return "$r->{status} " . ((json_error($r) // {})->{error} // '') }

my $mpm = <<'EOC';
StartServers 4
ServerLimit 4
ThreadsPerChild 2
MaxRequestWorkers 8
MinSpareThreads 8
MaxSpareThreads 8
ZeqE2EHandshakeRate off
EOC

my $be = ZeqTest::Cluster::Backend->start('edges-backend');

# How many of the backend's hits have this exact line.
sub ran { my ($line) = @_; return scalar grep { $_ eq $line } $be->hits }

# --- numbers at the ends of their range ------------------------------------------------------
{
    my $A = ZeqTest::Cluster::Apache->start('edges-seq', backend => $be->addr,
                                             extra => $mpm . "ZeqE2EReplayWindows 16\n");
    my $s = ZeqTest::V2::handshake(vhost => $A->hostport);
    my $max = '9007199254740991';                                   # 2^53 - 1
    my $oldest = '9007199254739968';                                # 2^53 - 1 - 1023
    my $below = '9007199254739967';                                 # 2^53 - 1 - 1024
    my @steps = (
        [0,       '200 ',                 1, '0 accepted'],
        [$max,    '200 ',                 1, '2^53 - 1, far ahead of 0, accepted'],
        [$max,    '400 e2e_replayed',     0, '2^53 - 1 again refused'],
        [0,       '400 e2e_replayed',     0, '0 again refused (now too old)'],
        [$oldest, '200 ',                 1, '2^53 - 1 - 1023 (the oldest the window holds) accepted'],
        [$below,  '400 e2e_replayed',     0, '2^53 - 1 - 1024 refused: too old'],
        ['9007199254740992',     '400 e2e_decrypt_failed', 0, '2^53 refused as malformed'],
        ['18446744073709551615', '400 e2e_decrypt_failed', 0, '2^64 - 1 refused as malformed'],
        ['18446744073709551616', '400 e2e_decrypt_failed', 0, '2^64 refused as malformed'],
        ['18446744073709551621', '400 e2e_decrypt_failed', 0, '2^64 + 5 (5 if it wrapped) refused as malformed'],
    );
    my (@codes, @want, @runs, @want_runs);
    for my $k (0 .. $#steps) {
        my ($seq, $code, $runs, $what) = @{ $steps[$k] };
        my $line = "GET /echo?edge=$k";
        push @codes, code_of(ZeqTest::V2::request(session => $s, path => "/app/echo?edge=$k", seq => $seq));
        push @want, $code;
        push @runs, ran($line);
        push @want_runs, $runs;
        check($codes[-1], $code, "$what: $code");
    }
    check("@runs", "@want_runs", 'the backend executed exactly the accepted requests (1 = ran once)');
    $A->stop;
}

# --- one sealed request on several connections at once, several children -----------------------
my $B = ZeqTest::Cluster::Apache->start('edges-race', backend => $be->addr,
                                         extra => $mpm . "ZeqE2EReplayWindows 16\n");
{
    my (@won, @replayed, @ran);
    for my $round (1 .. ROUNDS) {
        my $s = ZeqTest::V2::handshake(vhost => $B->hostport);
        # The session is used (and cached) first, on several connections.
        ZeqTest::V2::request(session => $s, path => "/app/echo?warm=$round-$_", seq => $_) for 0 .. 3;
        my $seq = 1000 + $round;
        my @res = ZeqTest::Cluster::race_sealed(RACERS, $s, $B->hostport, $seq, "/app/echo?race=$round",
                                                "race $round");
        push @won, scalar grep { /^200/ } @res;
        push @replayed, scalar grep { /^400 e2e_replayed/ } @res;
        push @ran, ran("POST /echo?race=$round");
    }
    check("@won", join(' ', (1) x ROUNDS), RACERS . ' connections, one sealed request, ' . ROUNDS
          . ' rounds: one accepted each round');
    check("@replayed", join(' ', (RACERS - 1) x ROUNDS), 'every other one 400 e2e_replayed');
    check("@ran", join(' ', (1) x ROUNDS), 'the backend executed each request once');
}
$B->stop;

# --- a reused window, the old and the new session alternately ------------------------------------
{
    my $C = ZeqTest::Cluster::Apache->start('edges-reuse', backend => $be->addr,
                                             extra => $mpm . "ZeqE2EReplayWindows " . WINDOWS . "\n");
    my $old = ZeqTest::V2::handshake(vhost => $C->hostport);
    my @warm = map { code_of(ZeqTest::V2::request(session => $old, path => "/app/echo?old=$_", seq => $_)) }
               0 .. SPREAD - 1;
    check(scalar(grep { /^200/ } @warm), SPREAD, SPREAD . ' requests of the old session on as many '
          . 'connections (cached where they ran): all accepted');
    # The first session took slot 0; the next WINDOWS - 1 the free ones;
    # every slot is then live, and the one after takes slot 0.
    my $new;
    $new = ZeqTest::V2::handshake(vhost => $C->hostport) for 1 .. WINDOWS;
    check(scalar(() = $C->error_log =~ /ZEQ20019: every replay window is in use/g), 1,
          'the last of ' . WINDOWS . ' newer sessions took the old one\'s window (ZEQ20019 logged once)');
    my (@o, @n);
    for my $k (0 .. 5) {
        # The old one: a new number, and one it used.
        push @o, code_of(ZeqTest::V2::request(session => $old, path => "/app/echo?oldnew=$k", seq => SPREAD + $k));
        push @o, code_of(ZeqTest::V2::request(session => $old, path => "/app/echo?oldseen=$k", seq => $k));
        push @n, code_of(ZeqTest::V2::request(session => $new, path => "/app/echo?new=$k", seq => $k));
    }
    check(scalar(grep { /^401 e2e_session_invalid/ } @o), scalar(@o),
          'the old session, its window given to the new one: 401 e2e_session_invalid for all '
          . scalar(@o) . ' of its requests, new numbers and seen ones');
    check("@n", join(' ', ('200 ') x 6), 'the new session, used in between: 0 to 5 accepted');
    my @again = map { code_of(ZeqTest::V2::request(session => $new, path => "/app/echo?newagain=$_", seq => $_)) }
                0 .. 5;
    check(scalar(grep { /^400 e2e_replayed/ } @again), 6,
          'and 0 to 5 refused when sent again: its window is its own, empty when it got it');
    my @oldran = grep { m{^GET /echo\?old(new|seen)=} } $be->hits;
    check(scalar(@oldran), 0, 'the backend never saw a request of the old session after it lost its window');
    $C->stop;
}

# --- a cached session on other virtual hosts ---------------------------------------------------
{
    my ($p2, $p3) = (ZeqTest::Cluster::free_port(), ZeqTest::Cluster::free_port());
    $p3 = ZeqTest::Cluster::free_port() while $p3 == $p2;
    my $vhosts = <<"EOC";
Listen 127.0.0.1:$p2
Listen 127.0.0.1:$p3
<VirtualHost 127.0.0.1:$p2>
    ServerName 127.0.0.1
    ZeqE2ESessionScope zeq-other
</VirtualHost>
<VirtualHost 127.0.0.1:$p3>
    ServerName 127.0.0.1
    ZeqE2ESessionScope zeq-cluster
</VirtualHost>
EOC
    my $D = ZeqTest::Cluster::Apache->start('edges-vhosts', backend => $be->addr,
                                             extra => $mpm . $vhosts);
    my $s = ZeqTest::V2::handshake(vhost => $D->hostport);
    my @warm = map { code_of(ZeqTest::V2::request(session => $s, path => "/app/echo?home=$_", seq => $_)) }
               0 .. SPREAD - 1;
    check(scalar(grep { /^200/ } @warm), SPREAD, 'a session used on ' . SPREAD . ' connections of its host');
    my @other = map { code_of(ZeqTest::V2::request(session => $s, vhost => "127.0.0.1:$p2",
                                                   path => "/app/echo?other=$_", seq => SPREAD + $_)) }
                0 .. SPREAD - 1;
    check(scalar(grep { /^401 e2e_session_invalid/ } @other), SPREAD,
          'named on a virtual host of another ZeqE2ESessionScope, on ' . SPREAD
          . ' connections: 401 e2e_session_invalid each time');
    check(scalar(grep { m{^GET /echo\?other=} } $be->hits), 0, 'and the backend never saw those');
    my @same = map { code_of(ZeqTest::V2::request(session => $s, vhost => "127.0.0.1:$p3",
                                                  path => "/app/echo?same=$_", seq => SPREAD + $_)) }
               0 .. 1;
    check("@same", '200  200 ', 'on a virtual host of the same scope: served (numbers the other host refused)');
    check(code_of(ZeqTest::V2::request(session => $s, vhost => "127.0.0.1:$p3", path => '/app/echo?same=seen',
                                       seq => 0)),
          '400 e2e_replayed', 'and it shares the window: 0, used on the first host, refused on the second');
    $D->stop;
}
