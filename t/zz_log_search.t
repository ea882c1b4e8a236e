# Runs last: no log of this run of t/run-tests, at the LogLevel trace8 the
# test configuration sets for the module and for the httpd modules a
# request passes through, holds a secret, a key, a session id or a
# plaintext that a test used. The logs: the error and access logs of every
# pass (t/logs, t/var/logs-mod_*), of the servers of their own
# (t/var/cluster), the CGI scripts' stderr (in the error logs), the
# backends' logs and hit records (t/var/hits, t/var/backend.log, ...).
# The values: what the test clients recorded in the needle file
# (ZeqTest::record_needle: session ids, session keys, ECDH shared secrets,
# sealed plaintexts), the fixtures' secrets and their pre-shared keys, the
# record keys and the signing keys; keys in hex (either case), base64 and
# base64url. A failure names the kind, the log and the line, never the
# value. The search is shown to work: a marker this test puts into a
# request URL is found in the access log, and the needles are many.
use strict;
use warnings;

use FindBin ();
use lib "$FindBin::Bin/lib";

use Apache::Test;
use Apache::TestUtil;
use Crypt::KeyDerivation qw(hkdf);
use Crypt::PRNG qw(random_bytes);
use File::Find ();
use File::Spec::Functions qw(catdir catfile);
use MIME::Base64 qw(encode_base64);
use ZeqTest;
use ZeqTest::Fixtures ();
use ZeqTest::V2 ();

my @KINDS = ('secret', 'key', 'shared secret', 'record key', 'signing key', 'session id', 'plaintext');
my $full = $ENV{ZEQ_T_FULL} ? 1 : 0;
# What a whole run of the suite records at least (a run records over 200
# distinct session ids, 350 keys, 120 shared secrets and 110 plaintexts;
# these floors only catch a recording that broke).
my %FLOOR = $full ? ('session id' => 100, key => 200, 'shared secret' => 50, plaintext => 50)
                  : ('session id' => 2, key => 3, 'shared secret' => 1, plaintext => 2);

plan tests => 3 + keys(%FLOOR) + @KINDS, need_lwp;

my $t = ZeqTest::Fixtures::t_dir();
my $var = ZeqTest::Fixtures::var_dir();

# --- this test's own exchanges: needles even when it runs alone -------------------
my $canary = 'zeq-log-search-canary-' . random_hex(12);
request(vhost => 'zeq_file', path => "/static/hello.txt?$canary");
my $v1 = handshake(vhost => 'zeq_file');
request(vhost => 'zeq_file', method => 'POST', path => '/cgi-bin/echo.cgi', session => $v1,
        body => '{"zz_log_search":"a v1 plaintext marker ' . random_hex(8) . '"}');
my $v2 = ZeqTest::V2::handshake(vhost => 'zeq_file');
ZeqTest::V2::request(session => $v2, method => 'POST', path => '/cgi-bin/echo.cgi',
                     body => '{"zz_log_search":"a v2 plaintext marker ' . random_hex(8) . '"}');
my $access = catfile(Apache::Test::vars('t_logs'), 'access_log');
for (1 .. 50) {
    last if index(ZeqTest::slurp($access), $canary) >= 0;
    select(undef, undef, undef, 0.1);
}

# --- the needles ---------------------------------------------------------------------
my (%needles, $run_start);
sub needle { my ($kind, $v) = @_; $needles{$kind}{$v} = 1 if defined $v && length $v }
open my $nf, '<', ZeqTest::needles_file() or die 'no needle file ' . ZeqTest::needles_file() . ": $!\n";
while (my $line = <$nf>) {
    chomp $line;
    if ($line =~ /^# run (\d+)$/) { $run_start = $1; next }
    my ($kind, $hex) = split /\t/, $line or next;
    next unless defined $hex && $hex =~ /^(?:[0-9a-f]{2})+$/;
    $kind =~ tr/-/ /;
    needle($kind, pack 'H*', $hex);
}
close $nf;
$run_start //= 0;
for my $secret (ZeqTest::Fixtures::FILE_SECRET, ZeqTest::Fixtures::ENV_SECRET, ZeqTest::Fixtures::LITERAL_SECRET) {
    needle('secret', $secret);
    needle('key', ZeqTest::V2::psk_of($secret));
}
# Record keys: every record key file of the run (generated or written by a
# test), its bytes and the master key the module derives from them.
my @record_files;
File::Find::find({ no_chdir => 1, wanted => sub { push @record_files, $_ if -f $_ && /\.key$/ } },
                 grep { -d } catfile($t, 'logs'), catdir($var, 'cluster'));
for my $f (@record_files) {
    (my $ikm = ZeqTest::slurp($f)) =~ s/\n\z//;
    next unless length $ikm >= 32;
    needle('record key', $ikm);
    needle('key', hkdf($ikm, '', 'SHA256', 32, 'zeq-e2e record key'));
}
# Signing keys: the lines of their PEM bodies.
for my $pem (glob(catfile($var, 'signing-key-*.pem'))) {
    needle('signing key', $_) for grep { length >= 40 } map { s/\s+$//r } grep { !/^-----/ } split /\n/, ZeqTest::slurp($pem);
}

# The forms a value may take in a log.
my %forms;                         # pattern => kind
for my $kind (keys %needles) {
    for my $v (keys %{ $needles{$kind} }) {
        my @f;
        if ($kind eq 'session id' || $kind eq 'record key' || $kind eq 'signing key') {
            @f = ($v);
        }
        elsif ($kind eq 'plaintext') {
            (my $p = $v) =~ s/[\r\n\0].*//s;    # grep -F: one line each
            @f = length $p >= 16 ? ($p) : ();
        }
        else {
            my $b64 = encode_base64($v, '');
            (my $b64url = $b64) =~ tr{+/}{-_};
            $b64url =~ s/=+$//;
            @f = (unpack('H*', $v), uc unpack('H*', $v), $b64, $b64url);
            push @f, $v if $kind eq 'secret';
        }
        $forms{$_} //= $kind for grep { length >= 12 } @f;
    }
}

# --- the logs -----------------------------------------------------------------------------
my @logs;
File::Find::find({ no_chdir => 1, wanted => sub {
    return unless -f $_ && (stat _)[9] >= $run_start;
    push @logs, $_ if m{(?:^|/)(?:[\w.-]*_log|[\w.-]+\.log|[\w.-]+\.jsonl)$};
} }, grep { -d } catfile($t, 'logs'), $var);
@logs = sort @logs;
my $bytes = 0;
$bytes += -s $_ for @logs;

# grep -F over all of them at once (GNU grep's many-pattern matcher); the
# lines it finds are then looked at here, and only their place reported.
my $pats = catfile($var, 'log-search-patterns');
open my $pf, '>:raw', $pats or die "$pats: $!";
chmod 0600, $pats;
print {$pf} "$_\n" for sort(keys %forms), $canary;
close $pf;
my %found;                         # kind => [places]
my $canary_at = '';
my $core_lines = 0;
if (@logs) {
    local $ENV{LC_ALL} = 'C';
    open my $g, '-|', 'grep', '-F', '-a', '-n', '-f', $pats, '--', @logs or die "grep: $!";
    while (my $line = <$g>) {
        my ($file, $no, $text) = $line =~ /^(.*?):(\d+):(.*)$/s or next;
        (my $where = $file) =~ s{^\Q$t\E/}{t/};
        if (index($text, $canary) >= 0) {
            $canary_at .= "$where\n" if $where =~ m{access_log$};
        }
        my ($tag) = $text =~ /(\[[\w.]+:\w+\])/;
        # httpd's own line about a request it refused while mapping its URL,
        # before any module ran (t/attack.t's openings with a %2F and a path
        # above the root): the URL as the client sent it.
        if ($text =~ /\[core:(?:info|error)\] .*(?:AH00026: found %2f|AH10244: invalid URI path)/) {
            $core_lines++;
            next;
        }
        for my $p (grep { index($text, $_) >= 0 } keys %forms) {
            push @{ $found{ $forms{$p} } }, "$where line $no" . ($tag ? " $tag" : '');
        }
    }
    close $g;
}
unlink $pats;

my %count = map { $_ => scalar keys %{ $needles{$_} || {} } } @KINDS;
print STDERR sprintf("# t/zz_log_search.t: %s; %d forms searched in %d logs (%.1f MB); %d lines of httpd's "
                     . "own about URLs it refused before any module ran left aside\n",
                     join(', ', map { "$count{$_} $_" . ($count{$_} == 1 ? '' : 's') } @KINDS),
                     scalar(keys %forms), scalar(@logs), $bytes / 1e6, $core_lines);

ok t_cmp(scalar(grep { m{/logs/error_log$} } @logs) && scalar(grep { m{/logs/access_log$} } @logs) ? 'both' : 'missing',
         'both', 'the search reads this pass\'s error_log and access_log (' . scalar(@logs) . ' logs of this run)');
ok t_cmp($canary_at =~ /access_log/ ? 'found' : 'not found', 'found',
         'self-check: the marker in this test\'s request URL is found in an access log by the same search');
ok t_cmp($full ? (grep({ m{/logs-mod_cgi/error_log$} } @logs) ? 'read' : 'not read') : 'read', 'read',
         'a whole run: the mod_cgi pass\'s error_log is searched too');
for my $kind (sort keys %FLOOR) {
    ok t_cmp($count{$kind} >= $FLOOR{$kind} ? 'enough' : "only $count{$kind}", 'enough',
             "the tests recorded at least $FLOOR{$kind} values of kind '$kind' (the search means something)");
}
for my $kind (@KINDS) {
    my @at = @{ $found{$kind} || [] };
    ok t_cmp(join("\n", @at[0 .. ($#at < 9 ? $#at : 9)]) . (@at > 10 ? "\n... " . (@at - 10) . ' more' : ''), '',
             "no log holds any of the $count{$kind} values of kind '$kind' (a failure names the place, never the value)");
}

