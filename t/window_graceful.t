# A v2 session's requests across a graceful restart under way (a server of
# its own): connections the old generation accepted before the restart,
# whose requests are sent only after it, are served by the old children,
# with the old store and the window table that outlives the restart; the
# new children have a new store. Whatever generation answers, no number is
# executed twice: the old children go on with the session's window as it
# was (a new number accepted once, a seen one refused), the new children
# know no such session (401), and a session made after the restart accepts
# its numbers once.
use strict;
use warnings;

use FindBin ();
use lib "$FindBin::Bin/lib";

use Apache::Test;
use Apache::TestUtil;
use ZeqTest;
use ZeqTest::Cluster;
use ZeqTest::V2 ();

use constant HELD => 3;         # connections the old generation holds

plan tests => 9, need need_lwp;

sub check { ok t_cmp($_[0], $_[1], $_[2]) }
sub code_of { my ($r) = @_; return "$r->{status} " . ((json_error($r) // {})->{error} // '') }

# A connection whose request line is begun ("GET "), so that a worker
# waits for the rest of it.
sub begin_request {
    my ($hostport) = @_;
    my $sock = ZeqTest::slow_socket(vhost => $hostport, rcvbuf => 262144);
    print {$sock} 'GET ';
    return $sock;
}

# Sends the rest of a GET of session s with number seq on sock: "STATUS
# error" of its answer ("0 " without one).
sub end_request {
    my ($sock, $hostport, $s, $seq, $path) = @_;
    my $seal = ZeqTest::V2::b64url(ZeqTest::V2::seal($s->{c2s},
                                   ZeqTest::V2::request_aad($s, $seq, 'GET', $path, undef), ''));
    print {$sock} "$path HTTP/1.1\r\nHost: $hostport\r\nX-E2E-Session: $s->{id}\r\nX-E2E-Seq: $seq\r\n"
        . "X-E2E-Seal: $seal\r\nAccept: " . E2E_TYPE . "\r\nConnection: close\r\n\r\n";
    my ($head, $rest) = ZeqTest::read_head($sock);
    return '0 ' unless $head;
    my $len = $head->header('Content-Length') // 0;
    $rest .= ZeqTest::read_bytes($sock, $len - length $rest) if $len > length $rest;
    close $sock;
    return code_of({ status => $head->code, body => $rest });
}

my $be = ZeqTest::Cluster::Backend->start('graceful-backend');
my $G = ZeqTest::Cluster::Apache->start('window-graceful', backend => $be->addr,
                                         extra => "ZeqE2EReplayWindows 64\nZeqE2EHandshakeRate off\n");
my $hp = $G->hostport;
my $s = ZeqTest::V2::handshake(vhost => $hp);
check(code_of(ZeqTest::V2::request(session => $s, path => '/app/echo?g=0', seq => 0)), '200 ',
      'before the restart the session accepts 0');

my @held = map { begin_request($hp) } 1 .. HELD;
# Each held connection is a worker reading a request ("R" on the scoreboard).
my $reading = ZeqTest::Cluster::wait_for(30, sub { (($G->status_auto->{Scoreboard} // '') =~ tr/R//) >= HELD });
check($reading ? 'held' : 'not held', 'held', HELD . ' connections accepted by the old generation, '
      . 'their requests begun');
check($G->graceful ? 1 : 0, 1, 'a graceful restart');

my @old = (end_request($held[0], $hp, $s, 1, '/app/echo?g=1'),
           end_request($held[1], $hp, $s, 0, '/app/echo?g=0'),
           end_request($held[2], $hp, $s, 1, '/app/echo?g=1'));
check("@old", '200  400 e2e_replayed 400 e2e_replayed',
      'the old generation, after the restart: a new number (1) accepted; 0 (seen before it) and 1 '
      . 'again refused: the window went on, not empty');
my @new = map { code_of(ZeqTest::V2::request(session => $s, path => "/app/echo?g=$_", seq => $_)) } 1, 2;
check("@new", '401 e2e_session_invalid 401 e2e_session_invalid',
      'the new generation: the session of before is unknown (1 and 2 refused)');
my %ran;
$ran{$_}++ for grep { m{^GET /echo\?g=} } $be->hits;
check(join(' ', map { "$_=" . ($ran{"GET /echo?g=$_"} // 0) } 0 .. 2), '0=1 1=1 2=0',
      'the backend executed 0 and 1 once each, 2 never');
my $t = ZeqTest::V2::handshake(vhost => $hp);
my @t = map { code_of(ZeqTest::V2::request(session => $t, path => "/app/echo?t=$_", seq => $_)) } 0, 1, 0;
check("@t", '200  200  400 e2e_replayed', 'a session made after the restart accepts 0 and 1, and 0 once');
check(scalar(() = $G->error_log =~ /ZEQ20020/g), 0, 'no session lost its window (the table had room)');
check(scalar(grep { m{^GET /echo\?t=} } $be->hits), 2, 'the backend executed its 2 accepted requests');
$G->stop;
