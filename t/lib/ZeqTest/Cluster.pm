package ZeqTest::Cluster;
# What the tests of several servers, shared stores and restarts run besides
# the Apache::Test server: redis-server and memcached (Debian's) on private
# ports of 127.0.0.1, started, stopped, paused and resumed by the tests;
# Apache instances of their own (their own configuration, port, logs and
# runtime directory under t/var/cluster/NAME) that load the module from the
# build tree; and a backend of their own (t/backend/echo.pl) whose hits
# file tells exactly what the application executed.
#
#   my $redis = ZeqTest::Cluster::Store->start('redis', 'c-redis');
#   my $be = ZeqTest::Cluster::Backend->start('c-backend');
#   my $a = ZeqTest::Cluster::Apache->start('c-a', store => $redis->spec,
#                                           backend => $be->addr, ...);
#   ZeqTest::V2::handshake(vhost => $a->hostport) ...
use strict;
use warnings;

use Apache::Test ();
use Cwd ();
use File::Path qw(make_path remove_tree);
use File::Spec::Functions qw(catdir catfile rel2abs);
use IO::Socket::INET ();
use POSIX ();
use Time::HiRes ();

use ZeqTest::Fixtures ();

sub t_dir   { ZeqTest::Fixtures::t_dir() }
sub top_dir { Cwd::abs_path(catdir(t_dir(), '..')) }

# A fresh working directory t/var/cluster/NAME.
sub work_dir {
    my ($name, %o) = @_;
    my $d = catdir(ZeqTest::Fixtures::var_dir(), 'cluster', $name);
    remove_tree($d) unless $o{keep};
    make_path($d);
    chmod 0755, $d, catdir(ZeqTest::Fixtures::var_dir(), 'cluster');
    return $d;
}

# A port of 127.0.0.1 nobody listens on right now.
sub free_port {
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                  Proto => 'tcp', Listen => 1, ReuseAddr => 1)
        or die "no free port: $!";
    my $p = $s->sockport;
    close $s;
    return $p;
}

sub port_open {
    my ($port) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Proto => 'tcp', Timeout => 1);
    return 0 unless $s;
    close $s;
    return 1;
}

# Waits (at most $secs) until $cond->() is true; returns its last value.
sub wait_for {
    my ($secs, $cond) = @_;
    my $deadline = Time::HiRes::time() + $secs;
    while (1) {
        my $v = $cond->();
        return $v if $v || Time::HiRes::time() > $deadline;
        Time::HiRes::sleep(0.1);
    }
}

# Runs $code->($k) for k = 1 .. $n in $n processes that all begin at the
# same moment; returns what each returned (one line of text), in order.
sub at_once {
    my ($n, $code) = @_;
    my $dir = work_dir("at-once-$$", keep => 1);
    my $go = Time::HiRes::time() + 0.3;
    my @kids;
    for my $k (1 .. $n) {
        my $pid = fork;
        die "fork: $!" unless defined $pid;
        if ($pid == 0) {
            Time::HiRes::sleep(0.001) while Time::HiRes::time() < $go;
            my $line = eval { $code->($k) } // "died: $@";
            open my $fh, '>', catfile($dir, $k) or POSIX::_exit(1);
            print {$fh} $line;
            close $fh;
            POSIX::_exit(0);
        }
        push @kids, $pid;
    }
    waitpid($_, 0) for @kids;
    my @out = map {
        my $f = catfile($dir, $_);
        open my $fh, '<', $f or die "$f: $!";
        my $l = do { local $/; <$fh> } // '';
        close $fh;
        $l
    } 1 .. $n;
    remove_tree($dir);
    return @out;
}

# One sealed POST (number seq, path, body) of the v2 session s, sent by n
# connections to hostport at the same moment: what each got ("STATUS
# error", the error empty when the answer has none), in order.
sub race_sealed {
    my ($n, $s, $hostport, $seq, $path, $body) = @_;
    require ZeqTest::V2;
    my $sealed = ZeqTest::V2::seal($s->{c2s}, ZeqTest::V2::request_aad($s, $seq, 'POST', $path, undef),
                                   $body);
    return at_once($n, sub {
        my $r = ZeqTest::V2::request(session => $s, vhost => $hostport, method => 'POST', path => $path,
                                     seq => $seq, raw_body => $sealed, content_type => ZeqTest::E2E_TYPE);
        return "$r->{status} " . ((ZeqTest::json_error($r) // {})->{error} // '');
    });
}

sub which {
    my ($prog) = @_;
    for my $d (split /:/, ($ENV{PATH} // '') . ':/usr/sbin:/usr/bin:/sbin') {
        return "$d/$prog" if -x "$d/$prog";
    }
    return undef;
}
sub have_redis     { which('redis-server') && which('redis-cli') ? 1 : 0 }
sub have_memcached { which('memcached') ? 1 : 0 }
sub node_major {
    my $v = `node --version 2>/dev/null` // '';
    return $v =~ /^v(\d+)\./ ? $1 : 0;
}

# A record key file for ZeqE2ERecordKey (64 hex digits), readable by root.
sub record_key_file {
    my ($path, $seed) = @_;
    open my $fh, '>', $path or die "$path: $!";
    print {$fh} unpack('H*', ZeqTest::Fixtures::det_bytes(32, "record key $seed")), "\n";
    close $fh;
    chmod 0600, $path;
    return $path;
}

# Runs a program in the background with its output in $log; returns its pid.
sub spawn {
    my ($log, @cmd) = @_;
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        POSIX::setsid();
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', $log or POSIX::_exit(127);
        open STDERR, '>&', \*STDOUT;
        exec @cmd or POSIX::_exit(127);
    }
    return $pid;
}

sub reap {
    my ($pid, $secs) = @_;
    return 1 unless $pid;
    my $deadline = Time::HiRes::time() + ($secs // 10);
    while (Time::HiRes::time() < $deadline) {
        my $r = waitpid($pid, POSIX::WNOHANG());
        return 1 if $r == $pid || $r == -1;
        Time::HiRes::sleep(0.05);
    }
    return 0;
}

# --- redis-server and memcached --------------------------------------------

package ZeqTest::Cluster::Store;

use File::Spec::Functions qw(catfile);

# kind: 'redis' or 'memcached'. redis keeps its data in dump.rdb of its
# directory when it is stopped (SHUTDOWN SAVE) and loads it again when it
# starts, as a redis with persistence does; memcached forgets everything.
sub start {
    my ($class, $kind, $name) = @_;
    my $self = bless { kind => $kind, name => $name,
                       dir => ZeqTest::Cluster::work_dir($name),
                       port => ZeqTest::Cluster::free_port() }, $class;
    $self->up or die "$kind did not start on port $self->{port}: " . $self->log_text;
    return $self;
}

sub spec {
    my ($self) = @_;
    return ($self->{kind} eq 'redis' ? 'redis' : 'memcache') . ":127.0.0.1:$self->{port}";
}
sub port { $_[0]{port} }
sub log_text {
    my ($self) = @_;
    open my $fh, '<', catfile($self->{dir}, 'store.log') or return '';
    local $/;
    return <$fh> // '';
}

# Starts the server (again, on the same port); 1 once it answers.
sub up {
    my ($self) = @_;
    my $log = catfile($self->{dir}, 'store.log');
    my @cmd;
    if ($self->{kind} eq 'redis') {
        @cmd = (ZeqTest::Cluster::which('redis-server'), '--port', $self->{port},
                '--bind', '127.0.0.1', '--dir', $self->{dir}, '--dbfilename', 'dump.rdb',
                '--save', '', '--appendonly', 'no', '--daemonize', 'no',
                '--protected-mode', 'yes', '--logfile', '');
    }
    else {
        @cmd = (ZeqTest::Cluster::which('memcached'), '-l', '127.0.0.1', '-p', $self->{port},
                '-U', '0', '-m', '64', '-c', '256');
        push @cmd, '-u', 'nobody' if $> == 0;
    }
    $self->{pid} = ZeqTest::Cluster::spawn($log, @cmd);
    return ZeqTest::Cluster::wait_for(15, sub { $self->ping });
}

sub ping {
    my ($self) = @_;
    if ($self->{kind} eq 'redis') {
        my $r = eval { $self->redis('PING') };
        return defined $r && $r eq 'PONG' ? 1 : 0;
    }
    my $r = eval { $self->memcached("version\r\n", qr/^VERSION [^\r\n]*\r\n/) };
    return defined $r ? 1 : 0;
}

# Stops the server for good: redis saves its data first.
sub down {
    my ($self) = @_;
    return unless $self->{pid};
    if ($self->{kind} eq 'redis') {
        eval { $self->redis('SHUTDOWN', 'SAVE') };
    }
    kill 'TERM', $self->{pid};
    ZeqTest::Cluster::reap($self->{pid}, 15) or do { kill 'KILL', $self->{pid}; ZeqTest::Cluster::reap($self->{pid}) };
    delete $self->{pid};
    ZeqTest::Cluster::wait_for(5, sub { !ZeqTest::Cluster::port_open($self->{port}) });
}

# The server stops answering (SIGSTOP): connections are accepted by the
# kernel, nothing is read. resume() lets it go on.
sub pause  { kill 'STOP', $_[0]{pid} if $_[0]{pid} }
sub resume { kill 'CONT', $_[0]{pid} if $_[0]{pid} }

sub DESTROY {
    my ($self) = @_;
    return unless $self->{pid};
    kill 'CONT', $self->{pid};
    kill 'KILL', $self->{pid};
    ZeqTest::Cluster::reap($self->{pid}, 5);
}

# One redis command over RESP; returns the reply (an array reference for
# arrays, undef for nil); dies on an error reply.
sub redis {
    my ($self, @args) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $self->{port},
                                  Proto => 'tcp', Timeout => 5)
        or die "connect redis: $!";
    binmode $s;
    my $cmd = '*' . @args . "\r\n";
    $cmd .= '$' . length($_) . "\r\n$_\r\n" for @args;
    print {$s} $cmd;
    my $r = _resp($s);
    close $s;
    return $r;
}

sub _resp {
    my ($s) = @_;
    my $line = <$s>;
    die "redis: no answer\n" unless defined $line;
    $line =~ s/\r\n$//;
    my ($t, $v) = (substr($line, 0, 1), substr($line, 1));
    return $v if $t eq '+' || $t eq ':';
    die "redis: $v\n" if $t eq '-';
    if ($t eq '$') {
        return undef if $v < 0;
        my $data = '';
        while (length($data) < $v + 2) {
            my $n = read($s, $data, $v + 2 - length($data), length $data);
            die "redis: short read\n" unless $n;
        }
        return substr($data, 0, $v);
    }
    if ($t eq '*') {
        return undef if $v < 0;
        return [ map { _resp($s) } 1 .. $v ];
    }
    die "redis: unexpected '$line'\n";
}

# Sends raw text to memcached and reads until $end matches.
sub memcached {
    my ($self, $text, $end) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $self->{port},
                                  Proto => 'tcp', Timeout => 5)
        or die "connect memcached: $!";
    binmode $s;
    print {$s} $text;
    my $buf = '';
    my $deadline = time + 10;
    while ($buf !~ $end && time < $deadline) {
        my $n = sysread($s, $buf, 65536, length $buf);
        last unless $n;
    }
    close $s;
    die "memcached: no answer\n" unless $buf =~ $end;
    return $buf;
}

# Every entry of the store: { key => value }.
sub dump {
    my ($self) = @_;
    my %all;
    if ($self->{kind} eq 'redis') {
        for my $k (@{ $self->redis('KEYS', '*') || [] }) {
            $all{$k} = $self->redis('GET', $k);
        }
        return \%all;
    }
    my $meta = $self->memcached("lru_crawler metadump all\r\n", qr/(?:^|\n)END\r?\n/);
    for my $line (split /\r?\n/, $meta) {
        next unless $line =~ /^key=(\S+)/;
        (my $k = $1) =~ s/%([0-9A-Fa-f]{2})/chr hex $1/ge;
        my $r = $self->memcached("get $k\r\n", qr/END\r\n$/);
        $all{$k} = substr($r, $+[0], $1) if $r =~ /^VALUE \S+ \d+ (\d+)\r\n/;
    }
    return \%all;
}

# --- the backend --------------------------------------------------------------

package ZeqTest::Cluster::Backend;

use File::Spec::Functions qw(catfile);

sub start {
    my ($class, $name) = @_;
    my $dir = ZeqTest::Cluster::work_dir($name);
    my $self = bless { dir => $dir, hits => catfile($dir, 'hits.log') }, $class;
    my $addr = catfile($dir, 'addr');
    $self->{pid} = ZeqTest::Cluster::spawn(catfile($dir, 'backend.log'), $^X,
                                           catfile(ZeqTest::Cluster::t_dir(), 'backend', 'echo.pl'),
                                           '--port-file', $addr, '--hits-file', $self->{hits});
    ZeqTest::Cluster::wait_for(10, sub { -s $addr }) or die "backend did not start";
    open my $fh, '<', $addr or die;
    chomp($self->{addr} = <$fh>);
    close $fh;
    return $self;
}
sub addr { $_[0]{addr} }

# The lines of its hits file ("METHOD TARGET").
sub hits {
    my ($self) = @_;
    open my $fh, '<', $self->{hits} or return ();
    chomp(my @l = <$fh>);
    close $fh;
    return @l;
}
sub DESTROY {
    my ($self) = @_;
    return unless $self->{pid};
    kill 'TERM', $self->{pid};
    ZeqTest::Cluster::reap($self->{pid}, 5) or kill 'KILL', $self->{pid};
}

# --- Apache instances ---------------------------------------------------------

package ZeqTest::Cluster::Apache;

use File::Spec::Functions qw(catfile catdir rel2abs);

# Options: store (a ZeqE2ESessionCache value; none: the default shmcb),
# record_key (a file), ttl, timeout (ZeqE2ESessionCacheTimeout), backend
# (host:port: /app/ is proxied there), scope (ZeqE2ESessionScope, default
# "zeq-cluster"), secret (a file: v1 too), extra (more configuration).
sub start {
    my ($class, $name, %o) = @_;
    my $self = $class->prepare($name, %o);
    $self->ctl('start') or die "apache $name did not start: " . $self->error_log;
    return $self;
}

# The instance with its configuration written, not started (the same
# options; files may be put into its directory before it starts).
sub prepare {
    my ($class, $name, %o) = @_;
    my $self = bless { name => $name, o => \%o,
                       dir => ZeqTest::Cluster::work_dir($name, keep => $o{keep}),
                       port => $o{port} // ZeqTest::Cluster::free_port() }, $class;
    $self->write_config;
    return $self;
}

sub dir { $_[0]{dir} }

# apache2 -k start as an operator types it: (its exit status, what it
# printed). The server may still fail after it detached: see error_log.
sub start_output {
    my ($self) = @_;
    my $httpd = Apache::Test::vars('httpd');
    local $ENV{ZEQ_T_ENV_SECRET};
    delete local @ENV{qw(ZEQ_E2E_SECRET ZEQ_HITE_SECRET)};
    my $out = `"$httpd" -d "@{[ ZeqTest::Cluster::t_dir() ]}" -f "@{[ $self->conf ]}" -k start 2>&1`;
    return ($? >> 8, $out);
}

sub hostport { "127.0.0.1:$_[0]{port}" }
sub conf     { catfile($_[0]{dir}, 'httpd.conf') }
sub pid_file { catfile($_[0]{dir}, 'httpd.pid') }
sub error_log_path { catfile($_[0]{dir}, 'error_log') }

sub error_log {
    my ($self) = @_;
    open my $fh, '<', $self->error_log_path or return '';
    local $/;
    return <$fh> // '';
}

sub pid {
    my ($self) = @_;
    open my $fh, '<', $self->pid_file or return undef;
    my $p = <$fh>;
    close $fh;
    return $p && $p =~ /^(\d+)/ ? $1 : undef;
}

sub write_config {
    my ($self) = @_;
    my %o = %{ $self->{o} };
    my $t = ZeqTest::Cluster::t_dir();
    my $lib = Apache::Test::vars('libexecdir');
    my $module = rel2abs(catfile(ZeqTest::Cluster::top_dir(), '.libs', 'mod_zeq_e2e.so'));
    my $dir = $self->{dir};
    my $user = '';
    if ($> == 0) {
        my $group = getgrgid((getpwnam('nobody'))[3] // 65534) // 'nogroup';
        $user = "User nobody\nGroup $group\n";
    }
    my $mpm = $o{mpm} // 'event';
    my $c = <<"EOC";
ServerRoot "$t"
ServerName 127.0.0.1
Listen 127.0.0.1:$self->{port}
PidFile "$dir/httpd.pid"
ErrorLog "$dir/error_log"
DefaultRuntimeDir "$dir"
Mutex file:$dir default
${user}LogLevel warn zeq_e2e:trace8 proxy:trace8 proxy_http:trace8
LoadModule mpm_${mpm}_module "$lib/mod_mpm_${mpm}.so"
LoadModule authz_core_module "$lib/mod_authz_core.so"
LoadModule authz_host_module "$lib/mod_authz_host.so"
LoadModule socache_shmcb_module "$lib/mod_socache_shmcb.so"
LoadModule proxy_module "$lib/mod_proxy.so"
LoadModule proxy_http_module "$lib/mod_proxy_http.so"
LoadModule status_module "$lib/mod_status.so"
LoadModule zeq_e2e_module "$module"
DocumentRoot "$t/htdocs"
<Directory "$t/htdocs">
    Require all granted
</Directory>
KeepAlive On
MaxKeepAliveRequests 0
GracefulShutdownTimeout 30
ExtendedStatus On
ZeqE2E On
ZeqE2ESessionScope "@{[ $o{scope} // 'zeq-cluster' ]}"
EOC
    $c .= "ZeqE2ESessionCache \"$o{store}\"\n" if $o{store};
    $c .= "ZeqE2ERecordKey \"file:$o{record_key}\"\n" if $o{record_key};
    $c .= "ZeqE2ESessionTTL $o{ttl}\n" if $o{ttl};
    $c .= "ZeqE2ESessionCacheTimeout $o{timeout}\n" if $o{timeout};
    $c .= "ZeqE2ESecret \"file:$o{secret}\"\n" if $o{secret};
    $c .= "ProxyPass /app/ \"http://$o{backend}/\"\n" if $o{backend};
    $c .= <<"EOC";
<Location /server-status>
    SetHandler server-status
    ZeqE2E Off
    Require ip 127.0.0.1
</Location>
EOC
    $c .= $o{extra} // '';
    open my $fh, '>', $self->conf or die "$self->{dir}: $!";
    print {$fh} $c;
    close $fh;
}

# apache2 -k ACTION with this configuration. start: 1 once the port
# answers; stop (graceful-stop): 1 once the parent is gone; graceful: 1
# once the new generation answers.
sub ctl {
    my ($self, $action) = @_;
    my $httpd = Apache::Test::vars('httpd');
    my $old = $self->pid;
    my $gen = $self->generation;
    local $ENV{ZEQ_T_ENV_SECRET};
    delete @ENV{qw(ZEQ_E2E_SECRET ZEQ_HITE_SECRET)};
    system($httpd, '-d', ZeqTest::Cluster::t_dir(), '-f', $self->conf, '-k', $action) == 0
        or return 0;
    if ($action eq 'start') {
        return ZeqTest::Cluster::wait_for(30, sub { $self->pid && ZeqTest::Cluster::port_open($self->{port}) });
    }
    if ($action eq 'graceful-stop' || $action eq 'stop') {
        return ZeqTest::Cluster::wait_for(60, sub { !$old || !kill(0, $old) });
    }
    if ($action eq 'graceful' || $action eq 'restart') {
        return ZeqTest::Cluster::wait_for(30, sub { $self->generation > $gen });
    }
    return 1;
}

# How many times the parent has read its configuration (mod_status's
# "Parent Server Config. Generation"), 0 when it does not answer.
sub generation {
    my ($self) = @_;
    my $s = $self->status_auto;
    return $s->{ParentServerConfigGeneration} // 0;
}

sub graceful { $_[0]->ctl('graceful') }
sub stop     { $_[0]->ctl('graceful-stop') }
# A full restart as a deploy does it: the server stops (letting the
# requests in progress finish) and a new one starts.
sub restart_full {
    my ($self) = @_;
    return $self->ctl('graceful-stop') && $self->ctl('start');
}

# GET /server-status?auto: { Name => value } (names without blanks).
sub status_auto {
    my ($self) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $self->{port},
                                  Proto => 'tcp', Timeout => 10) or return {};
    print {$s} "GET /server-status?auto HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    local $/;
    my $text = <$s> // '';
    close $s;
    my %v;
    for my $line (split /\r?\n/, $text) {
        next unless $line =~ /^([^:]+):\s*(.*)$/;
        (my $k = $1) =~ s/[\s.]//g;
        $v{$k} = $2;
    }
    return \%v;
}

sub status_html {
    my ($self) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $self->{port},
                                  Proto => 'tcp', Timeout => 10) or return '';
    print {$s} "GET /server-status HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    local $/;
    my $text = <$s> // '';
    close $s;
    return $text;
}

# Lines of the error log at warn or above that are no expected ones.
sub unexpected_log_lines {
    my ($self, @expected) = @_;
    return grep {
        my $l = $_;
        $l =~ /^\[[^\]]+\] \[[\w.]+:(?:warn|error|crit|alert|emerg)\]/
            && !grep { $l =~ $_ } @expected, qr/\[ssl:warn\] .*AH01882: /
    } split /\n/, $self->error_log;
}

sub DESTROY {
    my ($self) = @_;
    my $pid = $self->pid;
    return unless $pid && kill 0, $pid;
    kill 'TERM', $pid;
    ZeqTest::Cluster::wait_for(10, sub { !kill(0, $pid) });
}

1;
