# Pipelined sealed requests: several GETs of static files written at once
# on one keep-alive connection (v1, then v2) are answered in order, each
# answer whole and sealed on its own (the sealer ends every answer with a
# FLUSH; the pipeline must not be cut, merged or reordered by it). The
# files span one record, several batches of records, and (v1) the sizes
# sealed in one pass and in two.
use strict;
use warnings;

use FindBin ();
use lib "$FindBin::Bin/lib";

use Apache::Test;
use Apache::TestUtil;
use File::Spec::Functions qw(catfile);
use HTTP::Headers ();
use ZeqTest;
use ZeqTest::V2 ();

my @FILES = ('/gen/small.txt', '/gen/odd.bin', '/gen/big.bin', '/gen/five-k.txt');

plan tests => 2 * (2 + 3 * @FILES), need_lwp;

my $docroot = Apache::Test::vars('documentroot');
my %want = map { $_ => ZeqTest::slurp(catfile($docroot, split m{/}, substr($_, 1))) } @FILES;

# Head of the i-th request of n: the last one closes the connection.
sub head_of {
    my ($i, $n, $path, @h) = @_;
    my $hp = ZeqTest::hostport('zeq_file');
    return join "\r\n", "GET $path HTTP/1.1", "Host: $hp", 'Accept: ' . E2E_TYPE, @h,
        $i == $n - 1 ? 'Connection: close' : ();
}

# --- v1 ------------------------------------------------------------------------
{
    my $s = handshake(vhost => 'zeq_file');
    my @heads = map { head_of($_, scalar @FILES, $FILES[$_], "X-E2E-Session: $s->{id}") }
        0 .. $#FILES;
    my ($answers, $rest) = ZeqTest::pipelined(heads => \@heads);
    ok t_cmp(scalar @$answers, scalar @FILES, 'v1: one answer per pipelined request');
    ok t_cmp(length $rest, 0, 'v1: nothing after the last answer');
    for my $i (0 .. $#FILES) {
        my $a = $answers->[$i] // { status => 0, h => HTTP::Headers->new, body => '' };
        my $pt = open_envelope($s->{key}, $a->{body});
        ok t_cmp($a->{status}, 200, "v1: $FILES[$i] (answer $i): 200");
        ok t_cmp(media_type($a->{h}->header('Content-Type')), E2E_TYPE,
                 "v1: $FILES[$i]: sealed");
        ok t_cmp(defined $pt && $pt eq $want{ $FILES[$i] } ? 1 : 0, 1,
                 "v1: $FILES[$i]: opens to the file's " . length($want{ $FILES[$i] }) . ' bytes');
    }
}

# --- v2 ------------------------------------------------------------------------
{
    my $s = ZeqTest::V2::handshake(vhost => 'zeq_file');
    my @heads;
    for my $i (0 .. $#FILES) {
        my $aad = ZeqTest::V2::request_aad($s, $i, 'GET', $FILES[$i], undef);
        my $seal = ZeqTest::V2::b64url(ZeqTest::V2::seal($s->{c2s}, $aad, ''));
        push @heads, head_of($i, scalar @FILES, $FILES[$i], "X-E2E-Session: $s->{id}",
                             "X-E2E-Seq: $i", "X-E2E-Seal: $seal");
    }
    my ($answers, $rest) = ZeqTest::pipelined(heads => \@heads);
    ok t_cmp(scalar @$answers, scalar @FILES, 'v2: one answer per pipelined request');
    ok t_cmp(length $rest, 0, 'v2: nothing after the last answer');
    for my $i (0 .. $#FILES) {
        my $a = $answers->[$i] // { status => 0, h => HTTP::Headers->new, body => '' };
        ZeqTest::V2::check_answer($s, $a, $i, 'GET');
        ok t_cmp($a->{status}, 200, "v2: $FILES[$i] (answer $i): 200");
        ok t_cmp($a->{verified}, 1, "v2: $FILES[$i]: sealed, bound to sequence number $i");
        ok t_cmp(defined $a->{plain} && $a->{plain} eq $want{ $FILES[$i] } ? 1 : 0, 1,
                 "v2: $FILES[$i]: opens to the file's " . length($want{ $FILES[$i] }) . ' bytes');
    }
}
