# Configuration mistakes fail at startup (httpd -t) with a message naming
# the directive; a correct configuration using every directive passes; the
# shipped sample configuration (conf/zeq_e2e.conf) loads as shipped.
use strict;
use warnings;

use FindBin ();
use lib "$FindBin::Bin/lib";

use Apache::Test;
use Apache::TestUtil;
use File::Path qw(make_path);
use File::Spec::Functions qw(catdir catfile rel2abs);
use ZeqTest;
use ZeqTest::Fixtures ();

my $t_dir   = Apache::Test::vars('t_dir');
my $httpd   = Apache::Test::vars('httpd');
my $libexec = Apache::Test::vars('libexecdir');
my $module  = rel2abs(catfile($t_dir, '..', '.libs', 'mod_zeq_e2e.so'));
my $sample  = rel2abs(catfile($t_dir, '..', 'conf', 'zeq_e2e.conf'));
my $work    = catdir(Apache::Test::vars('t_logs'), 'config-t');
make_path($work);
my $secret_file = ZeqTest::Fixtures::secret_file();
my $sign_key = ZeqTest::Fixtures::signing_key(1);
# A key on another curve, for the refusal.
my $p384 = catfile($work, 'p384.pem');
system('openssl', 'genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-384',
       '-out', $p384) == 0 or die "openssl genpkey P-384 failed\n";

# Record keys for ZeqE2ERecordKey: one of 64 hex digits, one too short.
my $record_key = catfile($work, 'record.key');
my $short_key = catfile($work, 'short.key');
for ([$record_key, ('ab' x 32) . "\n"], [$short_key, "0123456789\n"]) {
    open my $fh, '>', $_->[0] or die "$_->[0]: $!";
    print {$fh} $_->[1];
    close $fh;
}

# [name, configuration body, expected outcome, regexes the output must match]
my @cases = (
    ['every directive where it may stand', <<"EOC", 'ok', [qr/Syntax OK/]],
ZeqE2ESessionCache shmcb
ZeqE2ECleanupInterval 30
ZeqE2ESecret "file:$secret_file"
ZeqE2ESessionTTL 60
ZeqE2E On
<VirtualHost 127.0.0.1:8>
    ServerName vhost.example
    ZeqE2E On
    ZeqE2ESecret env:ZEQ_T_ENV_SECRET
    ZeqE2ESessionTTL 120
    ZeqE2EHandshakePath /hs
    ZeqE2ERequire On
    ZeqE2EMaxRequestBody 1048576
    ZeqE2EMaxResponseBody 2097152
    <Location /open>
        ZeqE2ERequire Off
        ZeqE2EMaxRequestBody 1024
    </Location>
</VirtualHost>
<Directory "$t_dir/htdocs">
    ZeqE2E Off
    ZeqE2ERequire Off
    ZeqE2EMaxResponseBody 4096
</Directory>
<Location /x>
    ZeqE2E On
</Location>
EOC
    ['a literal secret and the defaults', qq{ZeqE2E On\nZeqE2ESecret "some literal secret"\n},
     'ok', [qr/Syntax OK/]],
    ['ZeqE2ESessionCache nosuch', "ZeqE2ESessionCache nosuch\n", 'fail',
     [qr/ZeqE2ESessionCache/, qr/\bshmcb\b/, qr/\bredis\b.*\bmemcache\b/]],
    ['the shared-store directives where they may stand',
     "ZeqE2ESessionCache redis:127.0.0.1:6379,[::1]:6380\nZeqE2ESessionCacheTimeout 500ms\n"
     . qq{ZeqE2ERecordKey "file:$record_key"\n}, 'ok', [qr/Syntax OK/]],
    ['ZeqE2ESessionCache memcache: with the default port', "ZeqE2ESessionCache memcache:127.0.0.1\n"
     . "ZeqE2ESessionCacheTimeout 2\n", 'ok', [qr/Syntax OK/]],
    ['ZeqE2ESessionCache redis: without a server', "ZeqE2ESessionCache redis:\n", 'fail',
     [qr/ZeqE2ESessionCache/, qr/no server given/]],
    ['ZeqE2ESessionCache redis: with a port that is none', "ZeqE2ESessionCache redis:127.0.0.1:port\n", 'fail',
     [qr/ZeqE2ESessionCache/, qr/'127\.0\.0\.1:port' is not HOST:PORT/]],
    ['ZeqE2ERecordKey that cannot be read', "ZeqE2ERecordKey file:/nonexistent/zeq-e2e/record.key\n", 'fail',
     [qr/ZeqE2ERecordKey/, qr/cannot read the record key file/]],
    ['ZeqE2ERecordKey of fewer than 32 bytes', qq{ZeqE2ERecordKey "file:$short_key"\n}, 'fail',
     [qr/ZeqE2ERecordKey/, qr/fewer than 32/]],
    ['ZeqE2ERecordKey without file:', "ZeqE2ERecordKey /etc/zeq.key\n", 'fail',
     [qr/ZeqE2ERecordKey/, qr/file:PATH/]],
    ['ZeqE2ERecordKey inside <VirtualHost>',
     qq{<VirtualHost 127.0.0.1:8>\n    ZeqE2ERecordKey "file:$record_key"\n</VirtualHost>\n}, 'fail',
     [qr/ZeqE2ERecordKey/]],
    ['ZeqE2ESessionCacheTimeout 0', "ZeqE2ESessionCacheTimeout 0\n", 'fail',
     [qr/ZeqE2ESessionCacheTimeout/, qr/from 10ms to 60s/]],
    ['ZeqE2ESessionCacheTimeout soon', "ZeqE2ESessionCacheTimeout soon\n", 'fail',
     [qr/ZeqE2ESessionCacheTimeout/]],
    ['ZeqE2ESessionCacheTimeout inside <VirtualHost>',
     "<VirtualHost 127.0.0.1:8>\n    ZeqE2ESessionCacheTimeout 1\n</VirtualHost>\n", 'fail',
     [qr/ZeqE2ESessionCacheTimeout/]],
    ['ZeqE2ESecret file: that cannot be read',
     "ZeqE2ESecret file:/nonexistent/zeq-e2e/secret\n", 'fail', [qr/ZeqE2ESecret/]],
    ['ZeqE2ESessionTTL 0', "ZeqE2ESessionTTL 0\n", 'fail', [qr/ZeqE2ESessionTTL/]],
    ['ZeqE2ESessionCache inside <VirtualHost>',
     "<VirtualHost 127.0.0.1:8>\n    ZeqE2ESessionCache shmcb\n</VirtualHost>\n", 'fail',
     [qr/ZeqE2ESessionCache/]],
    ['ZeqE2ECleanupInterval inside <VirtualHost>',
     "<VirtualHost 127.0.0.1:8>\n    ZeqE2ECleanupInterval 60\n</VirtualHost>\n", 'fail',
     [qr/ZeqE2ECleanupInterval/]],
    ['ZeqE2ESecret inside <Location>',
     "<Location /x>\n    ZeqE2ESecret abc\n</Location>\n", 'fail', [qr/ZeqE2ESecret/]],
    ['ZeqE2ESessionTTL inside <Directory>',
     "<Directory /x>\n    ZeqE2ESessionTTL 60\n</Directory>\n", 'fail', [qr/ZeqE2ESessionTTL/]],
    ['ZeqE2E Maybe', "ZeqE2E Maybe\n", 'fail', [qr/ZeqE2E\b/]],
    ['ZeqE2ESessionScope in a virtual host', "<VirtualHost 127.0.0.1:8>\n    ZeqE2ESessionScope shared-app\n</VirtualHost>\n",
     'ok', [qr/Syntax OK/]],
    ['ZeqE2ESessionScope with a blank', qq{ZeqE2ESessionScope "two words"\n}, 'fail', [qr/ZeqE2ESessionScope/]],
    ['ZeqE2ESessionScope inside <Location>', "<Location /x>\n    ZeqE2ESessionScope a\n</Location>\n", 'fail',
     [qr/ZeqE2ESessionScope/]],
    ['ZeqE2EMaxResponseBody over what one AES-GCM envelope can hold', "ZeqE2EMaxResponseBody 68719476705\n", 'fail',
     [qr/ZeqE2EMaxResponseBody/, qr/68719476704/]],
    ['ZeqE2EMaxRequestBody 1.5', "ZeqE2EMaxRequestBody 1.5\n", 'fail', [qr/ZeqE2EMaxRequestBody/]],
    ['the v2 directives where they may stand',
     qq{ZeqE2EProtocol 1 2\nZeqE2EServerKey "file:$sign_key"\nZeqE2ERequirePSK Off\n}
     . qq{<VirtualHost 127.0.0.1:8>\n    ZeqE2EProtocol 2\n    ZeqE2ERequirePSK On\n}
     . qq{    ZeqE2EServerKey "file:$sign_key" "file:$sign_key"\n</VirtualHost>\n}, 'ok', [qr/Syntax OK/]],
    ['ZeqE2EProtocol 3', "ZeqE2EProtocol 3\n", 'fail', [qr/ZeqE2EProtocol/, qr/'3'/]],
    ['ZeqE2EProtocol 2 v1', "ZeqE2EProtocol 2 v1\n", 'fail', [qr/ZeqE2EProtocol/, qr/'v1'/]],
    ['ZeqE2EServerKey that cannot be read', "ZeqE2EServerKey file:/nonexistent/zeq-e2e/key.pem\n", 'fail',
     [qr/ZeqE2EServerKey/, qr/cannot read/]],
    ['ZeqE2EServerKey on another curve (P-384)', qq{ZeqE2EServerKey "file:$p384"\n}, 'fail',
     [qr/ZeqE2EServerKey/, qr/P-256/]],
    ['ZeqE2EServerKey of a file that is no key', qq{ZeqE2EServerKey "file:$secret_file"\n}, 'fail',
     [qr/ZeqE2EServerKey/, qr/no PEM private key/]],
    ['ZeqE2EServerKey without file:', "ZeqE2EServerKey /etc/key.pem\n", 'fail', [qr/ZeqE2EServerKey/, qr/file:PATH/]],
    ['ZeqE2ERequirePSK inside <Location>', "<Location /x>\n    ZeqE2ERequirePSK On\n</Location>\n", 'fail',
     [qr/ZeqE2ERequirePSK/]],
    ['the handshake guard directives where they may stand',
     "ZeqE2EHandshakeRate 50 500\nZeqE2EHandshakeConcurrency 8\nZeqE2EUnusedSessions 64\n"
     . "<VirtualHost 127.0.0.1:8>\n    ZeqE2EHandshakeRate off\n</VirtualHost>\n"
     . "<VirtualHost 127.0.0.1:9>\n    ZeqE2EHandshakeRate 0.5\n</VirtualHost>\n", 'ok', [qr/Syntax OK/]],
    ['ZeqE2EUnusedSessions off and ZeqE2EHandshakeRate OFF', "ZeqE2EUnusedSessions off\nZeqE2EHandshakeRate OFF\n",
     'ok', [qr/Syntax OK/]],
    ['ZeqE2EHandshakeRate 0', "ZeqE2EHandshakeRate 0\n", 'fail',
     [qr/ZeqE2EHandshakeRate/, qr/'0' is not a number of handshakes per second from 0\.01 to 10000 \(or off\)/]],
    ['ZeqE2EHandshakeRate fast', "ZeqE2EHandshakeRate fast\n", 'fail', [qr/ZeqE2EHandshakeRate/, qr/'fast'/]],
    ['ZeqE2EHandshakeRate nan', "ZeqE2EHandshakeRate nan\n", 'fail', [qr/ZeqE2EHandshakeRate/, qr/'nan'/]],
    ['ZeqE2EHandshakeRate 20001', "ZeqE2EHandshakeRate 20001\n", 'fail', [qr/ZeqE2EHandshakeRate/, qr/'20001'/]],
    ['ZeqE2EHandshakeRate 20 0', "ZeqE2EHandshakeRate 20 0\n", 'fail',
     [qr/ZeqE2EHandshakeRate/, qr/the burst '0' is not a whole number of handshakes from 1 to 100000/]],
    ['ZeqE2EHandshakeRate 20 1.5', "ZeqE2EHandshakeRate 20 1.5\n", 'fail',
     [qr/ZeqE2EHandshakeRate/, qr/the burst '1\.5'/]],
    ['ZeqE2EHandshakeRate off 10', "ZeqE2EHandshakeRate off 10\n", 'fail', [qr/ZeqE2EHandshakeRate/, qr/'off'/]],
    ['ZeqE2EHandshakeRate inside <Location>', "<Location /x>\n    ZeqE2EHandshakeRate 5\n</Location>\n", 'fail',
     [qr/ZeqE2EHandshakeRate/]],
    ['ZeqE2EHandshakeConcurrency 0', "ZeqE2EHandshakeConcurrency 0\n", 'fail',
     [qr/ZeqE2EHandshakeConcurrency/, qr/'0' is not a whole number of key derivations from 1 to 4096/]],
    ['ZeqE2EHandshakeConcurrency all', "ZeqE2EHandshakeConcurrency all\n", 'fail',
     [qr/ZeqE2EHandshakeConcurrency/, qr/'all'/]],
    ['ZeqE2EHandshakeConcurrency inside <VirtualHost>',
     "<VirtualHost 127.0.0.1:8>\n    ZeqE2EHandshakeConcurrency 4\n</VirtualHost>\n", 'fail',
     [qr/ZeqE2EHandshakeConcurrency/]],
    ['ZeqE2EUnusedSessions 0', "ZeqE2EUnusedSessions 0\n", 'fail',
     [qr/ZeqE2EUnusedSessions/, qr/'0' is not a whole number of sessions from 1 to 256 \(or off\)/]],
    ['ZeqE2EUnusedSessions 257', "ZeqE2EUnusedSessions 257\n", 'fail', [qr/ZeqE2EUnusedSessions/, qr/'257'/]],
    ['ZeqE2EUnusedSessions inside <VirtualHost>',
     "<VirtualHost 127.0.0.1:8>\n    ZeqE2EUnusedSessions 8\n</VirtualHost>\n", 'fail', [qr/ZeqE2EUnusedSessions/]],
);

my $checks = 0;
$checks += 1 + @{ $_->[3] } for @cases;
plan tests => $checks + 2;

sub base_config {
    my ($n) = @_;
    my $logs = catdir($work, $n);
    make_path($logs);
    my $c = <<"EOC";
ServerRoot "$t_dir"
ServerName localhost
PidFile "$logs/httpd.pid"
ErrorLog "$logs/error_log"
DefaultRuntimeDir "$logs"
LoadModule mpm_event_module "$libexec/mod_mpm_event.so"
LoadModule authz_core_module "$libexec/mod_authz_core.so"
LoadModule socache_shmcb_module "$libexec/mod_socache_shmcb.so"
LoadModule zeq_e2e_module "$module"
EOC
    return $c;
}

sub run_check {
    my ($n, $config) = @_;
    my $file = catfile($work, "$n.conf");
    open my $fh, '>', $file or die "$file: $!";
    print {$fh} $config;
    close $fh;
    local $ENV{ZEQ_T_ENV_SECRET} = ZeqTest::Fixtures::ENV_SECRET;
    my $out = `"$httpd" -t -d "$t_dir" -f "$file" 2>&1`;
    my $rc = $? >> 8;
    return ($rc, $out);
}

my $n = 0;
for my $case (@cases) {
    my ($what, $body, $expect, $regexes) = @$case;
    $n++;
    my ($rc, $out) = run_check("case$n", base_config("case$n") . $body);
    (my $one_line = $out) =~ s/\s+/ /g;
    ok t_cmp($rc == 0 ? 'ok' : 'fail', $expect,
             "httpd -t with $what: " . ($expect eq 'ok' ? 'passes' : 'fails')
             . " (output: $one_line)");
    for my $re (@$regexes) {
        ok t_cmp($out, $re, "httpd -t with $what: the output matches $re");
    }
}

# The sample configuration as shipped.
if (-f $sample) {
    my ($rc, $out) = run_check('sample', base_config('sample') . qq{Include "$sample"\n});
    (my $one_line = $out) =~ s/\s+/ /g;
    ok t_cmp($rc, 0, "httpd -t with conf/zeq_e2e.conf as shipped passes (output: $one_line)");
    ok t_cmp($out, qr/Syntax OK/, 'conf/zeq_e2e.conf: Syntax OK');
}
else {
    skip('conf/zeq_e2e.conf is not there yet', 0) for 1 .. 2;
}
