# Sealed static answers at the sizes where the sealer changes its way:
# empty, one byte, around one record (16 KiB), around one batch (64 KiB),
# around the 1 MiB that v1 seals in one pass. On one keep-alive
# connection the requests are pipelined, each sealed GET followed by a
# plaintext GET of the same file (a file bucket the core sends as it is),
# then a sealed HEAD and a sealed conditional GET (304) of the largest:
# every answer comes in order, the sealed ones open to exactly the file's
# bytes (v2: bound to their sequence number), the plaintext ones are the
# file itself, and nothing is left after the last answer.
use strict;
use warnings;

use FindBin ();
use lib "$FindBin::Bin/lib";

use Apache::Test;
use Apache::TestUtil;
use File::Path qw(make_path);
use File::Spec::Functions qw(catfile catdir);
use HTTP::Date ();
use HTTP::Headers ();
use ZeqTest;
use ZeqTest::Fixtures ();
use ZeqTest::V2 ();

use constant MIB => 1024 * 1024;
my @SIZES = (0, 1, 16383, 16384, 16385, 65535, 65536, 65537, MIB - 1, MIB, MIB + 1);
my $LAST = $SIZES[-1];

# Per version: count and leftover, 4 per size (sealed: status, sealed,
# bytes; plaintext: bytes), HEAD (status, length, sealed), 304 (status, sealed).
plan tests => 2 * (2 + 4 * @SIZES + 3 + 2), need_lwp;

my $dir = catdir(ZeqTest::Fixtures::gen_dir(), 'sizes');
make_path($dir);
my %want;
for my $n (@SIZES) {
    my $path = catfile($dir, "$n.bin");
    $want{$n} = det_bytes($n, "size $n");
    open my $fh, '>:raw', "$path.tmp" or die "$path.tmp: $!";
    print {$fh} $want{$n};
    close $fh or die "$path.tmp: $!";
    chmod 0644, "$path.tmp";
    rename "$path.tmp", $path or die "$path: $!";
    utime time - 3600, time - 3600, $path;    # modified before the If-Modified-Since below
}
my $since = HTTP::Date::time2str(time - 60);

sub head_of {
    my ($method, $last, $path, @h) = @_;
    my $hp = ZeqTest::hostport('zeq_file');
    return join "\r\n", "$method $path HTTP/1.1", "Host: $hp", @h,
        $last ? 'Connection: close' : ();
}

sub none { { status => 0, h => HTTP::Headers->new, body => '' } }

for my $v (1, 2) {
    my $s = $v == 1 ? handshake(vhost => 'zeq_file') : ZeqTest::V2::handshake(vhost => 'zeq_file');
    my $seq = 0;
    # [method, path, sealed, extra header lines, what]
    my @reqs;
    for my $n (@SIZES) {
        push @reqs, ['GET', "/gen/sizes/$n.bin", 1, [], "$n bytes"];
        push @reqs, ['GET', "/gen/sizes/$n.bin", 0, [], "$n bytes"];
    }
    push @reqs, ['HEAD', "/gen/sizes/$LAST.bin", 1, [], 'HEAD'];
    push @reqs, ['GET', "/gen/sizes/$LAST.bin", 1, ["If-Modified-Since: $since"], '304'];
    my (@heads, @seqs);
    for my $i (0 .. $#reqs) {
        my ($method, $path, $sealed, $extra) = @{ $reqs[$i] };
        my @h = @$extra;
        if ($sealed && $v == 1) {
            push @h, 'Accept: ' . E2E_TYPE, "X-E2E-Session: $s->{id}";
        }
        elsif ($sealed) {
            my $aad = ZeqTest::V2::request_aad($s, $seq, $method, $path, undef);
            my $seal = ZeqTest::V2::b64url(ZeqTest::V2::seal($s->{c2s}, $aad, ''));
            push @h, 'Accept: ' . E2E_TYPE, "X-E2E-Session: $s->{id}", "X-E2E-Seq: $seq",
                "X-E2E-Seal: $seal";
            $seqs[$i] = $seq++;
        }
        push @heads, head_of($method, $i == $#reqs, $path, @h);
    }
    my ($answers, $rest) = ZeqTest::pipelined(heads => \@heads,
                                               head_only => [map { $_->[0] eq 'HEAD' } @reqs]);
    ok t_cmp(scalar @$answers, scalar @reqs, "v$v: one answer per pipelined request");
    ok t_cmp(length $rest, 0, "v$v: nothing after the last answer");
    for my $i (0 .. $#reqs) {
        my ($method, $path, $sealed, undef, $what) = @{ $reqs[$i] };
        my $a = $answers->[$i] // none();
        my $n = $path =~ m{/(\d+)\.bin$} ? $1 : 0;
        if (!$sealed) {
            ok t_cmp($a->{body} eq $want{$n} ? 'the file' : length($a->{body}) . ' other bytes',
                     'the file', "v$v: plaintext GET of $what (answer $i): the file's bytes");
            next;
        }
        my $pt;
        if ($v == 1) {
            $pt = length $a->{body} ? open_envelope($s->{key}, $a->{body}) : '';
            $a->{verified} = media_type($a->{h}->header('Content-Type')) eq E2E_TYPE ? 1 : 0;
        }
        else {
            ZeqTest::V2::check_answer($s, $a, $seqs[$i], $method);
            $pt = $a->{plain};
        }
        if ($what eq 'HEAD') {
            my $len = $v == 1 ? $LAST + OVERHEAD : ZeqTest::V2::sealed_len($LAST);
            ok t_cmp($a->{status}, 200, "v$v: sealed HEAD (answer $i): 200");
            ok t_cmp($a->{h}->header('Content-Length'), $len,
                     "v$v: sealed HEAD: the sealed length of $LAST bytes, never the plaintext's");
            ok t_cmp($a->{verified}, 1, "v$v: sealed HEAD: sealed" . ($v == 2 ? ' (its X-E2E-Seal verifies)' : ''));
            next;
        }
        if ($what eq '304') {
            ok t_cmp($a->{status}, 304, "v$v: sealed GET If-Modified-Since after its change (answer $i): 304");
            ok t_cmp($v == 1 ? length $a->{body} : $a->{verified}, $v == 1 ? 0 : 1,
                     $v == 1 ? 'v1: 304 without a body' : 'v2: 304 carries an X-E2E-Seal that verifies');
            next;
        }
        ok t_cmp($a->{status}, 200, "v$v: sealed GET of $what (answer $i): 200");
        ok t_cmp($a->{verified}, 1, "v$v: $what: sealed" . ($v == 2 ? ", bound to sequence number $seqs[$i]" : ''));
        ok t_cmp(defined $pt && $pt eq $want{$n} ? 'the file' : defined $pt ? length($pt) . ' other bytes' : 'nothing',
                 'the file', "v$v: $what: opens to the file's bytes");
    }
}
