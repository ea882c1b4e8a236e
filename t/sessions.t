# Sessions: isolation between sessions, two sessions interleaved, many
# clients at once (every child and thread sees every session), expiry on
# the zeq_env host (ZeqE2ESessionTTL 2).
use strict;
use warnings;

use FindBin ();
use lib "$FindBin::Bin/lib";

use Apache::Test;
use Apache::TestUtil;
use ZeqTest;

use constant PARALLEL => 8;
my $CE = ZeqTest::CHECK_ERROR_TESTS;

plan tests => 2 + ($CE + 1) + 6 + 2 + 4 + 2 * $CE, need_lwp;

my $sa = handshake(vhost => 'zeq_file');
my $sb = handshake(vhost => 'zeq_file');
ok t_cmp("$sa->{ok} $sb->{ok}", '1 1', 'two handshakes succeed');
ok t_cmp(($sa->{key} // 'a') ne ($sb->{key} // 'a') ? 'different' : 'same', 'different',
         'the two sessions have different keys');

# --- isolation: A's envelope with B's id ---------------------------------------------
{
    my $r;
    my ($cgi) = hits_delta(sub {
        $r = request(method => 'POST', path => '/cgi-bin/echo.cgi', session => $sb,
                     body => '{"sealed":"with A"}', key => $sa->{key});
    });
    check_error($r, 400, 'e2e_decrypt_failed', "envelope sealed with session A's key, sent with B's id");
    ok t_cmp($cgi, 0, 'that request never reached the CGI');
}

# --- two sessions interleaved ---------------------------------------------------------------
{
    my @order = ($sa, $sb, $sa, $sb);
    my @names = qw(A B A B);
    my $ok = 0;
    for my $i (0 .. $#order) {
        my $sess = $order[$i];
        my $pt = qq({"session":"$names[$i]","i":$i});
        my $r = request(method => 'POST', path => '/cgi-bin/echo.cgi', session => $sess, body => $pt);
        my $e = decode_json_safe($r->{plain}) // {};
        ok t_cmp($e->{body}, $pt, "interleaved request $i (session $names[$i]) round-trips");
    }
    # An answer for A does not open with B's key.
    my $r = request(path => '/static/hello.txt', session => $sa);
    ok t_cmp(defined open_envelope($sb->{key} // ("\0" x 32), $r->{body}) ? 'opens' : 'does not open',
             'does not open', 'an answer sealed for session A does not open with B\'s key');
    ok t_cmp($r->{opened}, 1, 'it opens with A\'s key');
}

# --- many clients at once ---------------------------------------------------------------------
{
    my @kids;
    for my $n (1 .. PARALLEL) {
        pipe my $rd, my $wr or die "pipe: $!";
        my $pid = fork;
        die "fork: $!" unless defined $pid;
        if ($pid == 0) {
            close $rd;
            my $ok = 0;
            my $s = handshake(vhost => 'zeq_file');
            for my $i (1 .. 3) {
                my $pt = "client $n request $i " . ('p' x (100 * $n));
                my $r = request(method => 'POST', path => '/cgi-bin/echo.cgi', session => $s,
                                body => $pt, inner_type => 'text/plain');
                my $e = decode_json_safe($r->{plain}) // {};
                $ok++ if ($e->{body} // '') eq $pt;
            }
            print {$wr} "$ok\n";
            close $wr;
            require POSIX;
            POSIX::_exit(0);
        }
        close $wr;
        push @kids, [$pid, $rd];
    }
    my @results;
    for my $k (@kids) {
        my $fh = $k->[1];
        my $line = <$fh>;
        chomp($line) if defined $line;
        push @results, $line // 0;
        waitpid $k->[0], 0;
    }
    ok t_cmp(join(' ', @results), join(' ', (3) x PARALLEL),
             PARALLEL . ' clients at once, 3 encrypted requests each: all round-trip');
    # Sessions made by those clients' server threads are seen everywhere:
    # the earlier sessions still work now.
    my $r = request(path => '/static/hello.txt', session => $sa);
    ok t_cmp($r->{opened}, 1, 'session A still works after the parallel clients');
}

# --- expiry (zeq_env: ZeqE2ESessionTTL 2) --------------------------------------------------
{
    my $e = handshake(vhost => 'zeq_env');
    ok t_cmp($e->{json}{expiresIn}, 2, 'zeq_env: expiresIn 2');
    my $r1 = request(vhost => 'zeq_env', method => 'POST', path => '/cgi-bin/echo.cgi',
                     session => $e, body => '{"fresh":1}');
    ok t_cmp($r1->{opened}, 1, 'zeq_env: the fresh session works');
    sleep 3;
    my ($r2, $r3);
    my ($cgi) = hits_delta(sub {
        $r2 = request(vhost => 'zeq_env', path => '/cgi-bin/echo.cgi', session => $e);
        $r3 = request(vhost => 'zeq_env', method => 'POST', path => '/cgi-bin/echo.cgi',
                      session => $e, body => '{"expired":1}');
    });
    check_error($r2, 401, 'e2e_session_invalid', 'expired session, GET');
    check_error($r3, 401, 'e2e_session_invalid', 'expired session, POST with an envelope');
    ok t_cmp($cgi, 0, 'expired session: the CGI never ran');
    my $f = handshake(vhost => 'zeq_env');
    my $r4 = request(vhost => 'zeq_env', path => '/cgi-bin/echo.cgi', session => $f);
    ok t_cmp($r4->{opened}, 1, 'zeq_env: a new handshake works again');
}
