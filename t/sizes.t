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
my @H2 = (['HTTP/2 over TLS', 'zeq_h2', 1], ['h2c', 'zeq_gate', 'prior']);
plan tests => 2 * (2 + 4 * @SIZES + 3 + 2) + @H2 * (1 + 4 * @SIZES + 3 + 2), need_lwp;

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

# [method, path, sealed, extra header lines, what]: each size sealed and
# in plaintext, a sealed HEAD and a sealed conditional GET of the largest.
sub requests {
    my @reqs;
    for my $n (@SIZES) {
        push @reqs, ['GET', "/gen/sizes/$n.bin", 1, [], "$n bytes"];
        push @reqs, ['GET', "/gen/sizes/$n.bin", 0, [], "$n bytes"];
    }
    push @reqs, ['HEAD', "/gen/sizes/$LAST.bin", 1, [], 'HEAD'];
    push @reqs, ['GET', "/gen/sizes/$LAST.bin", 1, ["If-Modified-Since: $since"], '304'];
    return @reqs;
}

# The header lines that seal request i (v2: sequence number seq).
sub sealing {
    my ($v, $s, $method, $path, $seq) = @_;
    return ('Accept: ' . E2E_TYPE, "X-E2E-Session: $s->{id}") if $v == 1;
    my $aad = ZeqTest::V2::request_aad($s, $seq, $method, $path, undef);
    my $seal = ZeqTest::V2::b64url(ZeqTest::V2::seal($s->{c2s}, $aad, ''));
    return ('Accept: ' . E2E_TYPE, "X-E2E-Session: $s->{id}", "X-E2E-Seq: $seq", "X-E2E-Seal: $seal");
}

# Checks answer a of request req (v: 1 or 2, seq: its sequence number).
sub check {
    my ($v, $s, $req, $a, $seq, $where) = @_;
    my ($method, $path, $sealed, undef, $what) = @$req;
    my $n = $path =~ m{/(\d+)\.bin$} ? $1 : 0;
    if (!$sealed) {
        ok t_cmp($a->{body} eq $want{$n} ? 'the file' : length($a->{body}) . ' other bytes',
                 'the file', "$where: plaintext GET of $what: the file's bytes");
        return;
    }
    my $pt;
    if ($v == 1) {
        $pt = length $a->{body} ? open_envelope($s->{key}, $a->{body}) : '';
        $a->{verified} = media_type($a->{h}->header('Content-Type')) eq E2E_TYPE ? 1 : 0;
    }
    else {
        ZeqTest::V2::check_answer($s, $a, $seq, $method);
        $pt = $a->{plain};
    }
    if ($what eq 'HEAD') {
        my $len = $v == 1 ? $LAST + OVERHEAD : ZeqTest::V2::sealed_len($LAST);
        ok t_cmp($a->{status}, 200, "$where: sealed HEAD: 200");
        ok t_cmp($a->{h}->header('Content-Length'), $len,
                 "$where: sealed HEAD: the sealed length of $LAST bytes, never the plaintext's");
        ok t_cmp($a->{verified}, 1, "$where: sealed HEAD: sealed" . ($v == 2 ? ' (its X-E2E-Seal verifies)' : ''));
        return;
    }
    if ($what eq '304') {
        ok t_cmp($a->{status}, 304, "$where: sealed GET If-Modified-Since after its change: 304");
        ok t_cmp($v == 1 ? length $a->{body} : $a->{verified}, $v == 1 ? 0 : 1,
                 $v == 1 ? "$where: 304 without a body" : "$where: 304 carries an X-E2E-Seal that verifies");
        return;
    }
    ok t_cmp($a->{status}, 200, "$where: sealed GET of $what: 200");
    ok t_cmp($a->{verified}, 1, "$where: $what: sealed" . ($v == 2 ? ", bound to sequence number $seq" : ''));
    ok t_cmp(defined $pt && $pt eq $want{$n} ? 'the file' : defined $pt ? length($pt) . ' other bytes' : 'nothing',
             'the file', "$where: $what: opens to the file's bytes");
}

for my $v (1, 2) {
    my $s = $v == 1 ? handshake(vhost => 'zeq_file') : ZeqTest::V2::handshake(vhost => 'zeq_file');
    my @reqs = requests();
    my ($seq, @heads, @seqs) = (0);
    for my $i (0 .. $#reqs) {
        my ($method, $path, $sealed, $extra) = @{ $reqs[$i] };
        my @h = @$extra;
        if ($sealed) {
            $seqs[$i] = $seq;
            push @h, sealing($v, $s, $method, $path, $seq++);
        }
        push @heads, head_of($method, $i == $#reqs, $path, @h);
    }
    my ($answers, $rest) = ZeqTest::pipelined(heads => \@heads,
                                               head_only => [map { $_->[0] eq 'HEAD' } @reqs]);
    ok t_cmp(scalar @$answers, scalar @reqs, "v$v: one answer per pipelined request");
    ok t_cmp(length $rest, 0, "v$v: nothing after the last answer");
    check($v, $s, $reqs[$_], $answers->[$_] // none(), $seqs[$_], "v$v, answer $_") for 0 .. $#reqs;
}

# --- HTTP/2 (v2): over TLS as parallel streams of one curl, over h2c one curl each ----------
for my $c (@H2) {
    my ($proto, $vhost, $http2) = @$c;
    my $s = ZeqTest::V2::handshake(vhost => $vhost);
    my @reqs = requests();
    my $dir = ZeqTest::tmp_dir();
    my ($seq, @seqs, @each) = (0);
    for my $i (0 .. $#reqs) {
        my ($method, $path, $sealed, $extra) = @{ $reqs[$i] };
        my @h = @$extra;
        if ($sealed) {
            $seqs[$i] = $seq;
            push @h, sealing(2, $s, $method, $path, $seq++);
        }
        push @each, ['-sS', '-k', '--max-time', '120',
                     $http2 eq 'prior' ? '--http2-prior-knowledge' : '--http2',
                     '-D', catfile($dir, "h2-$$-$i.h"), '-o', catfile($dir, "h2-$$-$i.b"),
                     $method eq 'HEAD' ? '-I' : (), map({ ('-H', $_) } @h), ZeqTest::url($vhost, $path)];
    }
    my $rc = 0;
    if ($http2 eq 'prior') {
        system('curl', @$_) == 0 or $rc = $? >> 8 for @each;
    }
    else {
        system('curl', '-sS', '--parallel', '--parallel-max', scalar @each,
               map { ($_ ? '--next' : ()), @{ $each[$_] } } 0 .. $#each);
        $rc = $? >> 8;
    }
    ok t_cmp($rc, 0, "$proto: curl fetched every answer");
    for my $i (0 .. $#reqs) {
        my $a = none();
        my ($hf, $bf) = map { catfile($dir, "h2-$$-$i.$_") } 'h', 'b';
        my @blocks = grep { length } split /\r?\n\r?\n/, ZeqTest::slurp($hf);
        my ($status_line, @lines) = split /\r?\n/, $blocks[-1] // '';
        ($a->{status}) = ($status_line // '') =~ m{^HTTP/2 (\d{3})};
        for (@lines) {
            my ($k, $v) = /^([^:]+):\s*(.*)$/ or next;
            $a->{h}->push_header($k => $v);
        }
        $a->{body} = $reqs[$i][0] eq 'HEAD' ? '' : ZeqTest::slurp($bf);
        unlink $hf, $bf;
        check(2, $s, $reqs[$i], $a, $seqs[$i], "$proto, answer $i");
    }
}
