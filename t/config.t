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
use ZeqTest::Cluster ();
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

# Files of secrets with their modes: the module refuses one other users
# may read, warns about one its group may read.
sub mode_file {
    my ($name, $bytes, $mode) = @_;
    my $f = $name =~ m{^/} ? $name : catfile($work, $name);
    open my $fh, '>', $f or die "$f: $!";
    print {$fh} $bytes;
    close $fh;
    chmod $mode, $f or die "chmod $f: $!";
    return $f;
}
# Record keys for ZeqE2ERecordKey: one of 64 hex digits, one too short.
my $record_key = mode_file('record.key', ('ab' x 32) . "\n", 0600);
my $short_key = mode_file('short.key', "0123456789\n", 0600);
my $pem = do { open my $fh, '<', $sign_key or die "$sign_key: $!"; local $/; <$fh> };
my %file;
for my $mode (0640, 0644, 0604) {
    my $m = sprintf '%04o', $mode;
    $file{"secret $m"} = mode_file("secret-$m", ZeqTest::Fixtures::FILE_SECRET, $mode);
    $file{"key $m"} = mode_file("key-$m.pem", $pem, $mode);
    $file{"record $m"} = mode_file("record-$m.key", ('cd' x 32) . "\n", $mode);
}
my $short_secret = 'short secret, 31 bytes long...';
$short_secret .= '.' x (31 - length $short_secret);
my $just_secret = 'x' x 32;
$file{'secret short'} = mode_file('secret-short', "$short_secret\n", 0600);

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
    ['ZeqE2EReplayWindows 15', "ZeqE2EReplayWindows 15\n", 'fail',
     [qr/ZeqE2EReplayWindows/, qr/'15' is not a whole number of windows from 16 to 10000000/]],
    ['ZeqE2EReplayWindows many', "ZeqE2EReplayWindows many\n", 'fail', [qr/ZeqE2EReplayWindows/, qr/'many'/]],
    ['ZeqE2EReplayWindows inside <VirtualHost>',
     "<VirtualHost 127.0.0.1:8>\n    ZeqE2EReplayWindows 64\n</VirtualHost>\n", 'fail',
     [qr/ZeqE2EReplayWindows/]],
    ['ZeqE2EReplayWindows 16', "ZeqE2EReplayWindows 16\n", 'ok', [qr/Syntax OK/]],
    ['ZeqE2EUnusedSessions 0', "ZeqE2EUnusedSessions 0\n", 'fail',
     [qr/ZeqE2EUnusedSessions/, qr/'0' is not a whole number of sessions from 1 to 256 \(or off\)/]],
    ['ZeqE2EUnusedSessions 257', "ZeqE2EUnusedSessions 257\n", 'fail', [qr/ZeqE2EUnusedSessions/, qr/'257'/]],
    ['ZeqE2EUnusedSessions inside <VirtualHost>',
     "<VirtualHost 127.0.0.1:8>\n    ZeqE2EUnusedSessions 8\n</VirtualHost>\n", 'fail', [qr/ZeqE2EUnusedSessions/]],
    # Files other users may read are refused, files the group may read
    # warned about; the messages name the directive and the file.
    (map {
        my ($d, $kind, $line) = @$_;
        (["$d of a file other users may read (0644)", "$line\"file:$file{\"$kind 0644\"}\"\n", 'fail',
          [qr/\b$d: the \w[\w ]* file '\Q$file{"$kind 0644"}\E' is readable by other users \(mode 0644\)/, qr/chmod 600/]],
         ["$d of a file only other users may read (0604)", "$line\"file:$file{\"$kind 0604\"}\"\n", 'fail',
          [qr/\b$d: .* readable by other users \(mode 0604\)/]],
         ["$d of a file its group may read (0640)", "$line\"file:$file{\"$kind 0640\"}\"\n", 'ok',
          [qr/Syntax OK/, qr/\[zeq_e2e:warn\] .*ZEQ10006: $d: the \w[\w ]* file '\Q$file{"$kind 0640"}\E' is readable by its group \(mode 0640\)/]])
     } ['ZeqE2ESecret', 'secret', 'ZeqE2ESecret '], ['ZeqE2EServerKey', 'key', 'ZeqE2EServerKey '],
       ['ZeqE2ERecordKey', 'record', 'ZeqE2ERecordKey ']),
    ['ZeqE2ESecret of a file readable by its owner only', qq{ZeqE2ESecret "file:$secret_file"\n}, 'ok',
     [qr/Syntax OK/], [qr/ZEQ10006/]],
    # Secrets shorter than 32 bytes are warned about; never shown.
    ['a literal ZeqE2ESecret of 31 bytes', qq{ZeqE2ESecret "$short_secret"\n}, 'ok',
     [qr/ZEQ10006: ZeqE2ESecret: the secret configured literally is 31 bytes long, shorter than 32/],
     [qr/\Q$short_secret\E/]],
    ['a literal ZeqE2ESecret of 32 bytes', qq{ZeqE2ESecret "$just_secret"\n}, 'ok', [qr/Syntax OK/],
     [qr/ZEQ10006/, qr/\Q$just_secret\E/]],
    ['ZeqE2ESecret env: of 31 bytes', "ZeqE2ESecret env:ZEQ_T_SHORT_SECRET\n", 'ok',
     [qr/ZEQ10006: ZeqE2ESecret: the secret of the environment variable ZEQ_T_SHORT_SECRET is 31 bytes long/],
     [qr/\Q$short_secret\E/]],
    ['ZeqE2ESecret file: of 31 bytes (and a newline)', qq{ZeqE2ESecret "file:$file{'secret short'}"\n}, 'ok',
     [qr/ZEQ10006: ZeqE2ESecret: the secret of the file '\Q$file{'secret short'}\E' is 31 bytes long/],
     [qr/\Q$short_secret\E/]],
    ['no ZeqE2ESecret and a ZEQ_E2E_SECRET of 31 bytes', "ZeqE2E On\n", 'ok',
     [qr/ZEQ10006: ZeqE2ESecret \(not set\): the secret of the environment variable ZEQ_E2E_SECRET is 31 bytes long/],
     [qr/\Q$short_secret\E/], { ZEQ_E2E_SECRET => $short_secret }],
);

my $checks = 0;
$checks += 1 + @{ $_->[3] } + @{ $_->[4] || [] } for @cases;
plan tests => $checks + 2 + 10 + 4;

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
    my ($n, $config, $env) = @_;
    my $file = catfile($work, "$n.conf");
    open my $fh, '>', $file or die "$file: $!";
    print {$fh} $config;
    close $fh;
    local $ENV{ZEQ_T_ENV_SECRET} = ZeqTest::Fixtures::ENV_SECRET;
    local $ENV{ZEQ_T_SHORT_SECRET} = $short_secret;
    local @ENV{ keys %{ $env || {} } } = values %{ $env || {} };
    my $out = `"$httpd" -t -d "$t_dir" -f "$file" 2>&1`;
    my $rc = $? >> 8;
    return ($rc, $out);
}

my $n = 0;
for my $case (@cases) {
    my ($what, $body, $expect, $regexes, $absent, $env) = @$case;
    $n++;
    my ($rc, $out) = run_check("case$n", base_config("case$n") . $body, $env);
    (my $one_line = $out) =~ s/\s+/ /g;
    ok t_cmp($rc == 0 ? 'ok' : 'fail', $expect,
             "httpd -t with $what: " . ($expect eq 'ok' ? 'passes' : 'fails')
             . " (output: $one_line)");
    for my $re (@$regexes) {
        ok t_cmp($out, $re, "httpd -t with $what: the output matches $re");
    }
    for my $re (@{ $absent || [] }) {
        ok t_cmp($out =~ $re ? 'matches' : 'does not match', 'does not match',
                 "httpd -t with $what: the output does not match $re");
    }
}

# Real starts (apache2 -k start, as an operator types it): the warnings
# land in the error log, the refusals stop the start.
{
    my $a = ZeqTest::Cluster::Apache->prepare('config-group', secret => $file{'secret 0640'},
        record_key => $file{'record 0640'}, extra => qq{ZeqE2EServerKey "file:$file{'key 0640'}"\n});
    my ($rc, $out) = $a->start_output;
    my $up = $rc == 0 && ZeqTest::Cluster::wait_for(30, sub { ZeqTest::Cluster::port_open($a->{port}) });
    ok t_cmp($up ? 'running' : "not running (exit $rc: $out)", 'running',
             'a start with a secret, a server key and a record key its group may read: Apache runs');
    # The port opens before the modules' post_config has run: wait for
    # the last of the three warnings (or 30 s).
    ZeqTest::Cluster::wait_for(30, sub { $a->error_log =~ /ZEQ10006: ZeqE2ERecordKey/ }) if $up;
    my $log = $a->error_log;
    for my $d (['ZeqE2ESecret', 'secret'], ['ZeqE2EServerKey', 'key'], ['ZeqE2ERecordKey', 'record']) {
        ok t_cmp($log, qr/\[zeq_e2e:warn\] .*ZEQ10006: $d->[0]: the \w[\w ]* file '\Q$file{"$d->[1] 0640"}\E' is readable by its group \(mode 0640\)/,
                 "that start: the error log warns about the $d->[0] file");
    }
    ok t_cmp(index($log, ZeqTest::Fixtures::FILE_SECRET) < 0 ? 'absent' : 'shown', 'absent',
             'that start: the error log does not hold the secret');
    $a->ctl('graceful-stop');

    my $b = ZeqTest::Cluster::Apache->prepare('config-others', secret => $file{'secret 0644'});
    ($rc, $out) = $b->start_output;
    ok t_cmp($rc == 0 ? 'started' : 'refused', 'refused', 'a start with a secret file other users may read is refused');
    ok t_cmp($out, qr/ZeqE2ESecret: the secret file '\Q$file{'secret 0644'}\E' is readable by other users \(mode 0644\)/,
             'that start: the message names the directive and the file');
    ok t_cmp(ZeqTest::Cluster::port_open($b->{port}) ? 'listening' : 'not listening', 'not listening',
             'that start: nothing listens on its port');

    # The record key the module generates in the runtime directory.
    my $c = ZeqTest::Cluster::Apache->prepare('config-generated');
    my $gen = catfile($c->dir, 'zeq_e2e-record.key');
    mode_file($gen, ('ef' x 32) . "\n", 0644);
    ($rc, $out) = $c->start_output;
    ZeqTest::Cluster::wait_for(30, sub { $c->error_log =~ /ZEQ20016|Configuration Failed/ });
    ok t_cmp($c->error_log, qr/\[zeq_e2e:emerg\] .*ZEQ20016: the session record key \Q$gen\E is readable by other users \(mode 0644\)/,
             'a generated record key other users may read: the error log says so, naming the file');
    ok t_cmp(ZeqTest::Cluster::wait_for(10, sub { !ZeqTest::Cluster::port_open($c->{port}) }) ? 'stopped' : 'running',
             'stopped', 'that start: Apache does not run');
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

# The module's mutexes: flock unless httpd's Mutex directive chooses.
for my $case ([ '', 'flock', [qw(zeq-e2e-cache zeq-e2e-replay zeq-e2e-unused)] ],
              [ "Mutex sysvsem zeq-e2e-cache\n", 'sysvsem', ['zeq-e2e-cache'] ]) {
    my ($extra, $mech, $names) = @$case;
    my $file = catfile($work, "mutex-$mech.conf");
    open my $fh, '>', $file or die "$file: $!";
    print {$fh} base_config("mutex-$mech"), qq{ZeqE2E On\nZeqE2ESecret "some literal secret"\n}, $extra;
    close $fh;
    my $out = `"$httpd" -t -D DUMP_RUN_CFG -d "$t_dir" -f "$file" 2>&1`;
    for my $m (@$names) {
        ok t_cmp($out, qr/^Mutex \Q$m\E: .*mechanism=\Q$mech\E\b/m,
                 "httpd -D DUMP_RUN_CFG" . ($extra ? " with $extra" =~ s/\n//r : '')
                 . ": the mutex $m uses $mech");
    }
}
