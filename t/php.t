# Debian's mod_php under the prefork MPM, the most common PHP set-up (the
# mod_php pass of t/run-tests: ZEQ_T_MPM=prefork, -defines ZEQ_PHP; skipped
# in the other passes). t/php/input.php reads the body through php://input
# (mod_php reads it in 16 KiB blocks and keeps what fits in its buffer): an
# encrypted POST arrives whole with its plaintext Content-Length, the
# answer is sealed and opens; a plaintext POST is the control.
use strict;
use warnings;

use FindBin ();
use lib "$FindBin::Bin/lib";

use Apache::Test;
use Apache::TestUtil;
use ZeqTest;

use constant TIMEOUT => 15;

my $in_pass = (Apache::Test::vars('defines') // '') =~ /\bZEQ_PHP\b/ ? 1 : 0;
my @cases = ([100_000, 'encrypted 100,000 bytes', 1],
             [20_000,  'encrypted 20,000 bytes', 1],
             [0,       'encrypted empty body', 1],
             [100_000, 'plaintext 100,000 bytes (control)', 0]);

plan tests => 2 + 5 * @cases,
     need need_lwp,
     { 'runs in the mod_php pass of t/run-tests (ZEQ_T_MPM=prefork, -defines ZEQ_PHP)'
           => $in_pass };

# --- the set-up: mod_php under prefork -----------------------------------------
{
    my $info = request(vhost => 'main', path => '/server-info?list')->{body};
    ok t_cmp($info =~ /\bprefork\.c\b/ ? 'prefork' : 'not prefork', 'prefork',
             'the server runs the prefork MPM (mod_info ?list)');
    ok t_cmp($info =~ /\bmod_php\d*\.c\b/ ? 'loaded' : 'not loaded', 'loaded',
             'mod_php is loaded (mod_info ?list)');
}

my $s = handshake(vhost => 'zeq_file');

for my $c (@cases) {
    my ($n, $label, $enc) = @$c;
    my $body = det_bytes($n, "php-$n-$enc");
    my $what = "php://input, $label";
    my $r = request(method => 'POST', path => '/php/input.php', body => $body,
                    timeout => TIMEOUT,
                    $enc ? (session => $s, inner_type => 'application/octet-stream')
                         : (content_type => 'application/octet-stream'));
    ok t_cmp($r->{status}, 200, "$what: 200 within " . TIMEOUT . ' s');
    if ($enc) {
        ok t_cmp($r->{opened}, 1, "$what: the answer is sealed and opens");
    }
    else {
        ok t_cmp($r->{enveloped}, 0, "$what: the answer is plaintext");
    }
    my $j = decode_json_safe($r->{plain}) // {};
    ok t_cmp(($j->{handler} // 'no JSON') . ' / ' . ($j->{sapi} // ''),
             'mod_php / apache2handler', "$what: the script ran under mod_php");
    ok t_cmp(($j->{length} // 'undef') . ' bytes, sha256 ' . substr($j->{sha256} // '', 0, 16),
             digest_of($body),
             "$what: php://input held exactly the $n bytes of plaintext");
    ok t_cmp($j->{CONTENT_LENGTH}, $n, "$what: \$_SERVER['CONTENT_LENGTH'] is $n");
}
