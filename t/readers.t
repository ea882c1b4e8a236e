# Handlers that read the body their own way get the whole plaintext: the
# test handlers of t/modules/mod_zeq_test.c read with ap_get_client_block
# into an 8 KiB buffer (what lies beyond the buffer is lost, as in classic
# modules, mod_php and mod_perl), with two AP_MODE_SPECULATIVE peeks before
# AP_MODE_READBYTES reads, and by AP_MODE_GETLINE. Each answers JSON with
# the length and SHA-256 of what it read and the Content-Length it saw.
# Encrypted POSTs of 100,000, 20,000, 1,000 (a plaintext of one bucket:
# the one two speculative peeks used to corrupt) and 0 bytes, a plaintext
# control for each handler; their answers are sealed and open.
use strict;
use warnings;

use FindBin ();
use lib "$FindBin::Bin/lib";

use Apache::Test;
use Apache::TestUtil;
use ZeqTest;

use constant BLOCK   => 8192;     # what the handlers ask for in one read
use constant TIMEOUT => 15;       # seconds; a spinning server shows as a timeout

# Cases per handler: encrypted 100,000, 20,000, 1,000 and 0 bytes,
# plaintext 100,000. Five common assertions each, two more for the
# speculative and the line readers; the line reader's many-short-lines
# body has eight.
use constant COMMON => 5;
use constant CASES  => 5;
plan tests => CASES * COMMON             # blocks
            + CASES * (COMMON + 2)       # speculative
            + CASES * (COMMON + 2)       # lines
            + COMMON + 3,                # lines: many short lines
     need_lwp;

my $s = handshake(vhost => 'zeq_file');

# Lines of 0 to 79 characters (hex) and, when $long is given, one line of
# $long characters a third of the way in; exactly $size bytes, the last
# one a newline.
sub lines_of {
    my ($size, $seed, $long) = @_;
    my $text = unpack 'H*', det_bytes(($size >> 1) + 1, $seed);
    my ($out, $i, $pos) = ('', 0, 0);
    while (length($out) < $size) {
        my $len = ($i++ * 37) % 80;
        if (defined $long && length($out) >= $size / 3) {
            ($len, $long) = ($long, undef);
        }
        $out .= substr($text, $pos, $len) . "\n";
        $pos += $len;
    }
    substr($out, $size - 1) = "\n";
    return $out;
}
sub newlines { my ($b) = @_; return $b =~ tr/\n// }

# POSTs $body to $path, sealed with the session's key when $encrypted.
sub post {
    my ($path, $body, $encrypted) = @_;
    return request(method => 'POST', path => $path, body => $body,
                   timeout => TIMEOUT,
                   $encrypted
                       ? (session => $s, inner_type => 'application/octet-stream')
                       : (content_type => 'application/octet-stream'));
}

# The five assertions every case makes; returns the handler's JSON.
sub check_common {
    my ($what, $r, $handler, $body, $encrypted) = @_;
    ok t_cmp($r->{status}, 200, "$what: 200 within " . TIMEOUT . ' s');
    if ($encrypted) {
        ok t_cmp($r->{opened}, 1, "$what: the answer is sealed and opens");
    }
    else {
        ok t_cmp($r->{enveloped}, 0, "$what: the answer is plaintext");
    }
    my $j = decode_json_safe($r->{plain}) // {};
    ok t_cmp(($j->{handler} // 'no JSON') . ' / ' . ($j->{error} // 'no error'),
             "$handler / no error", "$what: $handler answered, without a read error");
    ok t_cmp(($j->{length} // 'undef') . ' bytes, sha256 ' . substr($j->{sha256} // '', 0, 16),
             digest_of($body),
             "$what: the handler read exactly the " . length($body) . ' bytes of plaintext');
    ok t_cmp($j->{CONTENT_LENGTH}, length($body),
             "$what: the handler saw Content-Length " . length($body));
    return $j;
}

my @sizes = ([100_000, 'encrypted 100,000 bytes', 1],
             [20_000,  'encrypted 20,000 bytes', 1],
             [1_000,   'encrypted 1,000 bytes', 1],
             [0,       'encrypted empty body', 1],
             [100_000, 'plaintext 100,000 bytes (control)', 0]);

# --- ap_get_client_block into an 8 KiB buffer ---------------------------------------
for my $c (@sizes) {
    my ($n, $label, $enc) = @$c;
    my $body = det_bytes($n, "blocks-$n-$enc");
    my $r = post('/readers/blocks', $body, $enc);
    check_common("ap_get_client_block, $label", $r, 'zeq-test-blocks', $body, $enc);
}

# --- two speculative peeks, then READBYTES of 8 KiB ------------------------------------
for my $c (@sizes) {
    my ($n, $label, $enc) = @$c;
    my $body = det_bytes($n, "speculative-$n-$enc");
    my $what = "speculative peeks, $label";
    my $r = post('/readers/speculative', $body, $enc);
    my $j = check_common($what, $r, 'zeq-test-speculative', $body, $enc);
    my @peeks = ref $j->{peeks} eq 'ARRAY' ? @{ $j->{peeks} } : ();
    my $got = join ', ', map {
        "$_->{asked}: " . ($_->{length} // '?') . ' bytes, '
            . ($_->{matches} ? 'the first ones' : 'not the first ones')
    } @peeks;
    my $want = join ', ', map {
        my $k = $_ < $n ? $_ : $n;
        "$_: $k bytes, the first ones"
    } 10, 100;
    ok t_cmp($got, $want,
             "$what: each peek brought the body's first min(asked, $n) bytes");
    ok t_cmp(defined $j->{max_read} && $j->{max_read} <= BLOCK ? 'at most ' . BLOCK : $j->{max_read},
             'at most ' . BLOCK,
             "$what: no READBYTES read brought more than the " . BLOCK . ' bytes asked');
}

# --- AP_MODE_GETLINE until EOS -------------------------------------------------------------
my @line_cases = ([lines_of(100_000, 'lines-100k', 30_000), 'encrypted 100,000 bytes of lines, one of 30,000', 1],
                  [lines_of(20_000, 'lines-20k', 9_000), 'encrypted 20,000 bytes of lines, one of 9,000', 1],
                  [lines_of(1_000, 'lines-1k'), 'encrypted 1,000 bytes of short lines', 1],
                  ['', 'encrypted empty body', 1],
                  [lines_of(100_000, 'lines-plain', 30_000),
                   'plaintext 100,000 bytes of lines, one of 30,000 (control)', 0]);
for my $c (@line_cases) {
    my ($body, $label, $enc) = @$c;
    my $what = "GETLINE, $label";
    my $r = post('/readers/lines', $body, $enc);
    my $j = check_common($what, $r, 'zeq-test-lines', $body, $enc);
    ok t_cmp($j->{lines}, newlines($body), "$what: the handler counted " . newlines($body) . ' lines');
    ok t_cmp($j->{multi_line_reads}, 0,
             "$what: no GETLINE answer held more than one line");
}

# Many short lines: one brigade for every GETLINE answer, not a new one
# per line (the server's memory does not grow with the line count).
{
    my $body = join '', map { "$_\n" } 1 .. 300_000;
    my $what = 'GETLINE, encrypted ' . length($body) . ' bytes in 300,000 short lines';
    my $r = post('/readers/lines', $body, 1);
    my $j = check_common($what, $r, 'zeq-test-lines', $body, 1);
    ok t_cmp($j->{lines}, 300_000, "$what: the handler counted 300,000 lines");
    ok t_cmp($j->{multi_line_reads}, 0, "$what: no GETLINE answer held more than one line");
    my $growth = $j->{rss_growth_kb} // 'undef';
    t_debug("rss growth while reading 300,000 lines: $growth kB");
    ok t_cmp($growth =~ /^-?\d+$/ && $growth < 4096 ? 'under 4 MiB' : "$growth kB",
             'under 4 MiB',
             "$what: the server child's memory grew by less than 4 MiB while reading");
}
