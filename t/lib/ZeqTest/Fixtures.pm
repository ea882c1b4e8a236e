package ZeqTest::Fixtures;
# Secrets and generated files of the test suite. Loaded by t/TEST.PL, by
# t/run-tests (perl -It/lib -MZeqTest::Fixtures -e ZeqTest::Fixtures::generate)
# and by t/lib/ZeqTest.pm; it needs nothing outside core Perl and the
# openssl command line tool.
use strict;
use warnings;

use Cwd ();
use Digest::SHA qw(sha1 sha256);
use Digest::SHA ();
use MIME::Base64 qw(encode_base64);
use File::Basename qw(dirname);
use File::Path qw(make_path remove_tree);
use File::Spec::Functions qw(catdir catfile);

# Fixed secrets, one per kind of ZeqE2ESecret (see t/conf/extra.conf.in).
use constant FILE_SECRET    => 'zeq-file-secret-2b7e151628aed2a6abf7158809cf4f3c';
use constant ENV_SECRET     => 'zeq-env-secret-f0e1d2c3b4a5968778695a4b3c2d1e0f';
use constant LITERAL_SECRET => 'zeq-literal-secret-8d0f6a2e4b1c9d73';

use constant BIG_SIZE => 3 * 1024 * 1024;
use constant MIB => 1024 * 1024;
# The large streamed downloads of t/stream.t: sparse files of the marked
# pattern (they take no disk).
use constant MARKED_200M => 200 * MIB;
use constant MARKED_1G   => 1024 * MIB;
# t/memory.t: a static file of 60 MB (decimal), under the default
# ZeqE2EMaxResponseBody of 64 MiB.
use constant SIXTY_SIZE => 60_000_000;
# t/spool.t: a static file over one 64 KiB read of the sealer's file
# buckets and not a multiple of the 16-byte AES block.
use constant ODD_SIZE => 3 * 65536 + 12_345;

# The user of the basic-auth location of zeq_gate (t/gate.t).
use constant AUTH_USER => 'zeq';
use constant AUTH_PASSWORD => 'gate-pass-7c1d';

sub env_secret { ENV_SECRET }

# t/ of this checkout, whatever the current directory.
sub t_dir { Cwd::abs_path(catdir(dirname(__FILE__), '..', '..')) }

sub var_dir      { catdir(t_dir(), 'var') }
sub hits_dir     { catdir(var_dir(), 'hits') }
sub server_tmp   { catdir(var_dir(), 'tmp', 'server') }
sub secret_file  { catfile(var_dir(), 'secret-file.txt') }
sub signing_key  { catfile(var_dir(), "signing-key-$_[0].pem") }
sub tls_dir      { catdir(var_dir(), 'tls') }
sub gen_dir      { catdir(t_dir(), 'htdocs', 'gen') }

# n deterministic bytes: SHA-256 in counter mode over a seed. The backend
# (t/backend/echo.pl) and the static fixtures use the same function.
sub det_bytes {
    my ($n, $seed) = @_;
    $seed //= 'zeq';
    my $out = '';
    my $i = 0;
    while (length($out) < $n) {
        $out .= sha256($seed . pack('N', $i++));
    }
    return substr($out, 0, $n);
}

sub _write {
    my ($path, $bytes, $mode) = @_;
    make_path(dirname($path));
    open my $fh, '>:raw', $path or die "cannot write $path: $!\n";
    print {$fh} $bytes;
    close $fh or die "cannot write $path: $!\n";
    chmod $mode, $path if defined $mode;
}

# The text that starts t/htdocs/gen/ssi/page.shtml: 70,007 bytes (over 64
# KiB, no multiple of 16), and the text that ends it.
sub ssi_text {
    my $line = sprintf "%s\n", 'text of the page before the included file ' x 2;
    my $text = $line x (int(70_007 / length $line) + 1);
    return substr($text, 0, 70_006) . "\n";
}
use constant SSI_TAIL => "\nend of the page\n";

# The HTML header of t/htdocs/gen/listing/ (about 1.1 MB: over the 1 MiB
# that v1 seals in one pass, so that its file is read again when sent).
sub listing_header {
    return "<h1>Listing header</h1>\n<pre>\n"
        . join('', map { sprintf "line %05d of the listing header %s\n", $_, 'z' x 60 } 1 .. 12000)
        . "</pre>\n";
}

# The 60 MB file, quickly: one deterministic MiB repeated, each copy
# starting with its own number (so no two MiB of the file are equal).
sub _write_sixty {
    my ($path) = @_;
    my $block = det_bytes(1024 * 1024, 'sixty');
    make_path(dirname($path));
    open my $fh, '>:raw', "$path.tmp" or die "cannot write $path.tmp: $!\n";
    my ($left, $i) = (SIXTY_SIZE, 0);
    while ($left > 0) {
        my $tag = sprintf "zeq-e2e 60 MB fixture, MiB %02d\n", $i++;
        my $n = $left < length $block ? $left : length $block;
        print {$fh} substr($tag . substr($block, length $tag), 0, $n)
            or die "cannot write $path.tmp: $!\n";
        $left -= $n;
    }
    close $fh or die "cannot write $path.tmp: $!\n";
    chmod 0644, "$path.tmp";
    rename "$path.tmp", $path or die "cannot rename $path.tmp: $!\n";
}

# Block i (1 MiB) of the marked pattern: its number in a line, then zeros.
# No two blocks are equal, so a lost, repeated or reordered MiB changes
# the SHA-256; the zeros let a file of it be sparse.
sub marked_block {
    my ($i) = @_;
    my $tag = sprintf "zeq-e2e marked MiB %08d\n", $i;
    return $tag . ("\0" x (MIB - length $tag));
}

# The SHA-256 (hex) of the first n bytes of the marked pattern.
sub marked_sha256 {
    my ($n) = @_;
    my $d = Digest::SHA->new(256);
    for (my ($i, $off) = (0, 0); $off < $n; $i++, $off += MIB) {
        my $len = $n - $off < MIB ? $n - $off : MIB;
        $d->add(substr(marked_block($i), 0, $len));
    }
    return $d->hexdigest;
}

# A sparse file of the first n bytes of the marked pattern: only the tags
# are written.
sub _write_marked_file {
    my ($path, $n) = @_;
    make_path(dirname($path));
    open my $fh, '+>:raw', "$path.tmp" or die "cannot write $path.tmp: $!\n";
    for (my ($i, $off) = (0, 0); $off < $n; $i++, $off += MIB) {
        my $tag = substr(marked_block($i), 0, 32);
        $tag =~ s/\0+$//;
        seek $fh, $off, 0 or die "seek: $!\n";
        print {$fh} substr($tag, 0, $n - $off) or die "cannot write $path.tmp: $!\n";
    }
    truncate $fh, $n or die "cannot truncate $path.tmp: $!\n";
    close $fh or die "cannot write $path.tmp: $!\n";
    chmod 0644, "$path.tmp";
    rename "$path.tmp", $path or die "cannot rename $path.tmp: $!\n";
}

# Creates every generated fixture; safe to run again.
sub generate {
    my $var = var_dir();
    make_path($var);

    # The file: secret, without a trailing newline.
    _write(secret_file(), FILE_SECRET, 0600);

    # mod_authn_file's users ({SHA} entries), readable by the server.
    _write(catfile($var, 'htpasswd'),
           AUTH_USER . ':{SHA}' . encode_base64(sha1(AUTH_PASSWORD), '') . "\n", 0644);

    # Writable by the server's user (nobody when the suite runs as root):
    # the CGI scripts record their hits here, mod_proxy would spool here.
    for my $dir (hits_dir(), server_tmp()) {
        make_path($dir);
        chmod 01777, $dir;
    }
    chmod 0755, catdir($var, 'tmp');

    # Static files.
    my $gen = gen_dir();
    make_path($gen);
    my $big = catfile($gen, 'big.bin');
    _write($big, det_bytes(BIG_SIZE, 'big'), 0644)
        unless -s $big && -s $big == BIG_SIZE;
    my $odd = catfile($gen, 'odd.bin');
    _write($odd, det_bytes(ODD_SIZE, 'odd'), 0644)
        unless -s $odd && -s $odd == ODD_SIZE;
    for my $m (['marked-200m.bin', MARKED_200M], ['marked-1g.bin', MARKED_1G]) {
        my $f = catfile($gen, $m->[0]);
        _write_marked_file($f, $m->[1]) unless -s $f && -s $f == $m->[1];
    }
    my $sixty = catfile($gen, 'sixty-mb.bin');
    _write_sixty($sixty) unless -s $sixty && -s $sixty == SIXTY_SIZE;
    # A directory listing with a header file of two 64 KiB reads and more
    # (mod_autoindex's HeaderName).
    my $listing = catdir($gen, 'listing');
    _write(catfile($listing, 'HEADER.html'), listing_header(), 0644);
    _write(catfile($listing, 'item.txt'), "an item of the listing\n", 0644);
    # A page of server-side includes: text over 64 KiB, odd.bin, text.
    _write(catfile($gen, 'ssi', 'page.shtml'),
           ssi_text() . '<!--#include virtual="/gen/odd.bin" -->' . SSI_TAIL, 0644);
    # The same with big.bin (3 MB: over 1 MiB, read again when sent).
    _write(catfile($gen, 'ssi', 'big.shtml'),
           ssi_text() . '<!--#include virtual="/gen/big.bin" -->' . SSI_TAIL, 0644);
    _write(catfile($gen, 'small.txt'), "small static file\n" x 10, 0644);  # 180 B
    my $line = ('0123456789abcdef' x 4) . "\n";
    _write(catfile($gen, 'five-k.txt'), $line x 80, 0644);           # 5200 B

    # The signing keys of zeq_signed (ZeqE2EServerKey: the first signs).
    for my $i (1, 2) {
        my $pem = signing_key($i);
        next if -s $pem;
        open my $saved, '>&', \*STDERR or die;
        open STDERR, '>', catfile($var, 'openssl-sign.log') or die;
        my $rc = system('openssl', 'genpkey', '-algorithm', 'EC', '-pkeyopt',
                        'ec_paramgen_curve:P-256', '-out', $pem);
        open STDERR, '>&', $saved or die;
        die "openssl genpkey failed (see $var/openssl-sign.log)\n" if $rc != 0;
        chmod 0600, $pem;
    }

    # A self-signed certificate for the HTTP/2 virtual host.
    my $tls = tls_dir();
    my ($cert, $key) = (catfile($tls, 'cert.pem'), catfile($tls, 'key.pem'));
    unless (-s $cert && -s $key) {
        make_path($tls);
        my @cmd = ('openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes',
                   '-keyout', $key, '-out', $cert, '-days', '3650',
                   '-subj', '/CN=localhost',
                   '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
                   '-addext', 'basicConstraints=critical,CA:FALSE',
                   '-addext', 'keyUsage=digitalSignature,keyEncipherment',
                   '-addext', 'extendedKeyUsage=serverAuth');
        open my $saved, '>&', \*STDERR or die;
        open STDERR, '>', catfile($tls, 'openssl.log') or die;
        my $rc = system(@cmd);
        open STDERR, '>&', $saved or die;
        die "openssl req failed (see $tls/openssl.log)\n" if $rc != 0;
        chmod 0600, $key;
    }
    return 1;
}

# The values t/zz_log_search.t looks for in every log (ZeqTest::record_needle);
# its first line records when the run began.
sub needles_file { $ENV{ZEQ_T_NEEDLES} || catfile(var_dir(), 'log-needles.txt') }

# The start of a run of t/run-tests (not of each pass): no needle yet, and
# no log of an earlier run's passes.
sub reset_run {
    make_path(var_dir());
    remove_tree(catdir(var_dir(), $_)) for qw(logs-mod_cgi logs-mod_php logs-mod_cgid);
    open my $fh, '>', needles_file() or die 'cannot write ' . needles_file() . ": $!\n";
    print {$fh} '# run ', time, "\n";
    close $fh;
    chmod 0600, needles_file();
}

# Empties the per-run state (hit logs, the server's temp directory).
sub reset_state {
    for my $dir (hits_dir(), server_tmp()) {
        next unless -d $dir;
        opendir my $dh, $dir or next;
        for my $e (grep { !/^\.\.?$/ } readdir $dh) {
            remove_tree(catfile($dir, $e));
        }
    }
}

1;
