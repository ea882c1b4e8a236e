# A child killed (SIGKILL) while it holds the lock word of a session's
# replay window (src/zeq_wintab.c), on a server of its own with one child:
# gdb stops the child inside the window check of the victim's number 5
# (zeq_replay_accept, called with the slot's lock held) and kills it there.
# Then, in the child the parent starts instead: a bystander session goes on
# (a new number accepted, a seen one refused); the victim counts as unknown
# (401 e2e_session_invalid for 5, for a new number and for one it used
# before), since its window may have been half written, and none of those
# requests reaches the backend; a session made after accepts its numbers
# once. Needs gdb, x86-64 (the number is read from the register of the
# second argument) and root (to trace a child that runs as nobody).
use strict;
use warnings;

use FindBin ();
use lib "$FindBin::Bin/lib";

use Apache::Test;
use Apache::TestUtil;
use Config ();
use File::Spec::Functions qw(catfile);
use POSIX ();
use ZeqTest;
use ZeqTest::Cluster;
use ZeqTest::V2 ();

use constant VICTIM_SEQ => 5;

plan tests => 9, need need_lwp,
    need({ 'gdb, on x86-64, as root' => ZeqTest::Cluster::which('gdb') && $> == 0
                                         && $Config::Config{archname} =~ /^x86_64/ });

sub check { ok t_cmp($_[0], $_[1], $_[2]) }
sub code_of { my ($r) = @_; return "$r->{status} " . ((json_error($r) // {})->{error} // '') }

# The pids whose parent is $ppid.
sub children_of {
    my ($ppid) = @_;
    my @kids;
    for my $stat (glob '/proc/[0-9]*/stat') {
        open my $fh, '<', $stat or next;
        my $l = <$fh> // '';
        close $fh;
        push @kids, $1 if $l =~ /^(\d+) \(.*\) \S (\d+) / && $2 == $ppid;
    }
    return @kids;
}

my $be = ZeqTest::Cluster::Backend->start('kill-backend');
my $K = ZeqTest::Cluster::Apache->start('window-kill', backend => $be->addr, extra => <<'EOC');
StartServers 1
ServerLimit 1
ThreadsPerChild 4
MaxRequestWorkers 4
MinSpareThreads 1
MaxSpareThreads 4
ZeqE2EReplayWindows 16
ZeqE2EHandshakeRate off
EOC

my $victim = ZeqTest::V2::handshake(vhost => $K->hostport);
my $bystander = ZeqTest::V2::handshake(vhost => $K->hostport);
my @before = map { code_of(ZeqTest::V2::request(session => $_, path => '/app/echo?before', seq => 0)) }
             $victim, $bystander;
check("@before", '200  200 ', 'two sessions accept their number 0');

my @kids = children_of($K->pid);
my $child = $kids[0] // 0;
my $out = catfile($K->dir, 'gdb.out');
my $gdb = fork;
die "fork: $!" unless defined $gdb;
if ($gdb == 0) {
    open STDOUT, '>', $out or POSIX::_exit(1);
    open STDERR, '>&', \*STDOUT or POSIX::_exit(1);
    { exec 'gdb', '-nx', '-batch', '-p', $child,
          '-ex', 'handle SIGPIPE SIGHUP SIGUSR1 SIGUSR2 SIGALRM SIGCHLD SIGTERM SIGWINCH nostop noprint pass',
          '-ex', 'break *zeq_replay_accept if $rsi == ' . VICTIM_SEQ,
          '-ex', 'continue',
          '-ex', 'info registers rsi',
          '-ex', 'kill' }
    POSIX::_exit(1);
}
my $slurp = sub { open my $fh, '<', $out or return ''; local $/; my $t = <$fh> // ''; close $fh; $t };
ZeqTest::Cluster::wait_for(60, sub { $slurp->() =~ /Breakpoint 1 at/ });

my $cut = ZeqTest::V2::request(session => $victim, path => '/app/echo?victim=' . VICTIM_SEQ,
                               seq => VICTIM_SEQ);
my $gdb_done = ZeqTest::Cluster::wait_for(60, sub { waitpid($gdb, POSIX::WNOHANG()) == $gdb });
kill 'KILL', $gdb unless $gdb_done;
my $log = $slurp->();
check(scalar(@kids) == 1 && $log =~ /Breakpoint 1, .*zeq_replay_accept/
      && $log =~ /rsi\s+0x0*@{[ sprintf '%x', VICTIM_SEQ ]}\b/ && $log =~ /\[Inferior 1 \(process $child\) killed\]/
      ? 'stopped and killed' : "not: children @kids, gdb said:\n$log",
      'stopped and killed', 'the only child, stopped in the window check of the victim\'s number '
      . VICTIM_SEQ . ' (the slot\'s lock held), then killed');
check($cut->{status} == 200 ? 'answered' : 'cut', 'cut', 'the request it was checking got no answer');

# The parent starts a child again; the bystander's first request waits for it.
my $t1 = ZeqTest::Cluster::wait_for(60, sub {
    my $c = code_of(ZeqTest::V2::request(session => $bystander, path => '/app/echo?after=1', seq => 1));
    return $c =~ /^(500|503) / && $c !~ /e2e/ ? 0 : $c;
});
check($t1, '200 ', 'in the new child the bystander accepts a new number');
check(code_of(ZeqTest::V2::request(session => $bystander, path => '/app/echo?after=0', seq => 0)),
      '400 e2e_replayed', 'and refuses its number 0 (its window held)');
my @v = map { code_of(ZeqTest::V2::request(session => $victim, path => "/app/echo?victim=$_", seq => $_)) }
        VICTIM_SEQ, VICTIM_SEQ + 1, 0;
check("@v", join(' ', ('401 e2e_session_invalid') x 3),
      'the victim, whose window the dead child may have left half written: 401 for '
      . VICTIM_SEQ . ', for a new number and for 0');
check(scalar(grep { m{^GET /echo\?victim=} } $be->hits), 0, 'none of the victim\'s requests since reached the backend');
my $new = ZeqTest::V2::handshake(vhost => $K->hostport);
my @n = map { code_of(ZeqTest::V2::request(session => $new, path => '/app/echo?new', seq => 0)) } 1 .. 2;
check("@n", '200  400 e2e_replayed', 'a session made after accepts 0 once');
check($K->error_log =~ /ZEQ20020: session \w+ has lost its replay window/ ? 'logged' : 'not logged',
      'logged', 'the victim\'s loss is logged (ZEQ20020)');
$K->stop;
