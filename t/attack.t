# Ways around the module that remain after the request gate (t/gate.t has
# the ones it closed). Each case says what the module promises (README.md,
# docs/PROTOCOL.md) and what an intermediary on the path, or a misbehaving
# application, tries against it. Configuration: the zeq_attack and zeq_nb
# virtual hosts of t/conf/extra.conf.in. The misbehaving application is
# served by this file itself, on a Unix socket (t/var/attack.sock) that
# zeq_attack proxies to with mod_proxy_wstunnel's raw tunnel
# (/evil-wst/), mod_proxy_http with upgrade=websocket (/evil-ws/) and
# plain mod_proxy_http (/unix-http/).
#
# Each check failed on the module before its fix (a way around it); each
# that fails again is one reopened.
use strict;
use warnings;

use FindBin ();
use lib "$FindBin::Bin/lib";

use Apache::Test;
use Apache::TestUtil;
use Digest::SHA qw(sha1);
use Fcntl qw(:flock);
use File::Spec::Functions qw(catfile);
use IO::Select ();
use IO::Socket::INET ();
use IO::Socket::UNIX ();
use MIME::Base64 qw(encode_base64);
use POSIX ();
use Socket qw(SOCK_STREAM);
use Time::HiRes ();
use ZeqTest;
use ZeqTest::Fixtures ();
use ZeqTest::WebSocket qw(ws_frame children_of rss_kb);

my @checks;
sub check { push @checks, [@_] }
sub check_err { check(@$_) for error_checks(@_) }

use constant SECRET => ZeqTest::Fixtures::FILE_SECRET;
use constant BACKEND_MARKER => 'BACKEND-PLAINTEXT-MARKER';
my $nph_marker = 'NPH-PLAINTEXT-MARKER';
my $hp = ZeqTest::hostport('zeq_attack');
my ($host, $port) = split /:/, $hp;

my $s = handshake(vhost => 'zeq_attack', secret => SECRET);
check($s->{ok}, 1, 'a handshake on zeq_attack');
my $key = $s->{key} // ("\0" x 32);

# --- the misbehaving application ------------------------------------------------------------
# One process per connection; what it does depends on the path, and it
# appends "CONN EVENT DATA" lines to t/var/hits/attack-backend.log (CONN:
# the conn query parameter):
#   /slow-101  waits 0.8 s, then answers 101 (CRLF); logs the bytes that
#              came before its 101 (EARLY) and every frame it reads, those
#              bytes first, as a WebSocket server would (FRAME opcode text)
#   /lf-101    answers 101 with bare LF line ends, then a plaintext text
#              frame with the marker; logs the frames it reads
#   /lf-200    answers 200 with bare LF line ends and the marker as body
#   /interim   answers "100 Continue", then the marker (no other head)
#   /echo      reads the body (Content-Length or chunked), waits 1 s,
#              answers JSON {contentLength, transferEncoding, received}
my $sock_path = catfile(Apache::Test::vars('serverroot'), 'var', 'attack.sock');
my $log_path = catfile(ZeqTest::Fixtures::hits_dir(), 'attack-backend.log');
my $app_pid = start_app();
END { kill 'TERM', $app_pid if $app_pid; }

sub app_log {
    my ($conn, @what) = @_;
    open my $fh, '>>', $log_path or return;
    flock $fh, LOCK_EX;
    print {$fh} join(' ', $conn, @what), "\n";
    close $fh;
}

sub app_events {
    my ($conn) = @_;
    open my $fh, '<', $log_path or return ();
    my @ev = map { chomp; my ($c, $rest) = split / /, $_, 2; $c eq $conn ? ($rest) : () } <$fh>;
    close $fh;
    return @ev;
}

# Frames (opcode, unmasked payload) at the start of $buf; removes them.
sub take_frames {
    my ($buf) = @_;
    my @f;
    while (length($$buf) >= 2) {
        my ($b0, $b1) = unpack 'CC', $$buf;
        my ($len, $h) = ($b1 & 0x7f, 2);
        if ($len == 126) { last if length($$buf) < 4; $len = unpack 'n', substr($$buf, 2, 2); $h = 4 }
        elsif ($len == 127) { last if length($$buf) < 10; $len = unpack 'Q>', substr($$buf, 2, 8); $h = 10 }
        my $mask = ($b1 & 0x80) ? substr($$buf, $h, 4) : '';
        $h += 4 if length $mask;
        last if length($$buf) < $h + $len;
        my $p = substr($$buf, $h, $len);
        $p ^= substr($mask x (int($len / 4) + 1), 0, $len) if length $mask;
        push @f, [$b0 & 0x0f, $p];
        substr($$buf, 0, $h + $len, '');
    }
    return @f;
}

sub app_connection {
    my ($c) = @_;
    binmode $c;
    $c->autoflush(1);
    my $sel = IO::Select->new($c);
    my $buf = '';
    while ($buf !~ /\r\n\r\n/) {
        return unless $sel->can_read(10);
        my $n = sysread($c, $buf, 65536, length $buf);
        return unless $n;
    }
    my ($head, $rest) = $buf =~ /^(.*?\r\n\r\n)(.*)\z/s;
    my ($target) = $head =~ /^\S+ (\S+)/;
    my ($conn) = $target =~ /[?&]conn=([\w-]+)/;
    $conn //= 'none';
    my ($wskey) = $head =~ /^Sec-WebSocket-Key:[ \t]*(\S+)/mi;
    my $accept = encode_base64(sha1(($wskey // '') . '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'), '');
    my $marker = BACKEND_MARKER;
    app_log($conn, 'REQUEST', $target);
    my $in = $rest;
    if ($target =~ m{/slow-101}) {
        Time::HiRes::sleep(0.8);
        while ($sel->can_read(0)) {
            my $n = sysread($c, $in, 65536, length $in);
            last unless $n;
        }
        app_log($conn, 'EARLY', unpack('H*', $in));
        syswrite $c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            . "Connection: Upgrade\r\nSec-WebSocket-Accept: $accept\r\n\r\n";
    }
    elsif ($target =~ m{/lf-101}) {
        syswrite $c, "HTTP/1.1 101 Switching Protocols\nUpgrade: websocket\nConnection: Upgrade\n"
            . "Sec-WebSocket-Accept: $accept\n\n" . "\x81" . chr(length $marker) . $marker;
    }
    elsif ($target =~ m{/lf-200}) {
        syswrite $c, "HTTP/1.1 200 OK\nContent-Type: text/plain\nContent-Length: "
            . length($marker) . "\nConnection: close\n\n$marker";
        Time::HiRes::sleep(1);
        return;
    }
    elsif ($target =~ m{/interim}) {
        syswrite $c, "HTTP/1.1 100 Continue\r\n\r\n";
        Time::HiRes::sleep(0.2);
        syswrite $c, "$marker\n";
        Time::HiRes::sleep(1);
        return;
    }
    elsif ($target =~ m{/echo}) {
        my ($cl) = $head =~ /^Content-Length:[ \t]*(\d+)/mi;
        my ($te) = $head =~ /^Transfer-Encoding:[ \t]*(\S+)/mi;
        my $body = $rest;
        while (defined $cl ? length($body) < $cl : ($te && $body !~ /(?:^|\r\n)0\r\n\r\n\z/)) {
            last unless $sel->can_read(10);
            my $n = sysread($c, $body, 65536, length $body);
            last unless $n;
        }
        Time::HiRes::sleep(1);
        my $j = sprintf '{"contentLength":%s,"transferEncoding":%s,"received":%d}',
            $cl // 'null', $te ? qq("$te") : 'null', length $body;
        syswrite $c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
            . length($j) . "\r\nConnection: close\r\n\r\n$j";
        return;
    }
    else {
        syswrite $c, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        return;
    }
    # A WebSocket: log every frame for 3 s.
    my $deadline = Time::HiRes::time() + 3;
    while (1) {
        for my $f (take_frames(\$in)) {
            my ($op, $p) = @$f;
            app_log($conn, 'FRAME', $op, $p =~ /^[\x20-\x7e]*\z/ ? $p : unpack('H*', $p));
        }
        my $left = $deadline - Time::HiRes::time();
        last if $left <= 0 || !$sel->can_read($left);
        my $n = sysread($c, $in, 65536, length $in);
        last unless $n;
    }
}

sub start_app {
    unlink $sock_path;
    my $srv = IO::Socket::UNIX->new(Type => SOCK_STREAM, Local => $sock_path, Listen => 16)
        or die "listen on $sock_path: $!";
    chmod 0777, $sock_path;    # the server's user (nobody, as root) connects
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if ($pid) {
        close $srv;
        return $pid;
    }
    my $parent = getppid;
    local $SIG{CHLD} = sub { 1 while waitpid(-1, POSIX::WNOHANG()) > 0 };
    my $sel = IO::Select->new($srv);
    my $until = time + 600;
    while (time < $until && getppid == $parent) {
        next unless $sel->can_read(1);
        my $c = $srv->accept or next;
        my $kid = fork;
        if (defined $kid && $kid == 0) {
            close $srv;
            app_connection($c);
            POSIX::_exit(0);
        }
        close $c;
    }
    POSIX::_exit(0);
}

# --- a WebSocket client on a raw socket ---------------------------------------------------------

sub opening {
    my ($path, $conn) = @_;
    return "GET $path?conn=$conn&e2e_session=$s->{id} HTTP/1.1\r\nHost: $hp\r\n"
        . "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        . 'Sec-WebSocket-Key: ' . encode_base64('0123456789abcdef', '') . "\r\n"
        . "Sec-WebSocket-Version: 13\r\n\r\n";
}

# Sends the opening of $path; then, for each [delay, bytes] of @sends,
# waits and sends; reads whatever comes for $read seconds. Returns the
# bytes received.
sub ws_exchange {
    my ($path, $conn, $read, @sends) = @_;
    my $sock = IO::Socket::INET->new(PeerAddr => $host, PeerPort => $port, Proto => 'tcp', Timeout => 10)
        or die "connect $hp: $!";
    binmode $sock;
    $sock->autoflush(1);
    syswrite $sock, opening($path, $conn);
    my $sel = IO::Select->new($sock);
    my $got = '';
    my $t0 = Time::HiRes::time();
    for my $step (@sends) {
        my ($at, $bytes) = @$step;
        while ((my $left = $t0 + $at - Time::HiRes::time()) > 0) {
            last unless $sel->can_read($left);
            my $n = sysread($sock, $got, 65536, length $got);
            last unless $n;
        }
        syswrite $sock, $bytes;
    }
    my $deadline = Time::HiRes::time() + $read;
    while ((my $left = $deadline - Time::HiRes::time()) > 0) {
        last unless $sel->can_read($left);
        my $n = sysread($sock, $got, 65536, length $got);
        last unless $n;
    }
    close $sock;
    return $got;
}

sub conn_id { 'a' . random_hex(6) }
sub wait_app { Time::HiRes::sleep(0.5) }

# --- 1. the raw tunnel: client frames sent before the backend's 101 --------------------------------
# README: "A client that opens it with ?e2e_session=<id> gets every message
# sealed both ways"; PROTOCOL.md 16.3: a text frame on an encrypted socket
# closes it with 1008 and "the message does not reach the application".
# mod_proxy_wstunnel's raw tunnel relays the client's bytes as soon as
# they come; the module's filters pass everything until they have seen the
# 101. An intermediary sends a plaintext frame right after the opening; a
# backend that takes a moment to accept (authentication, a database) gets
# it as the socket's first message.
{
    my $text = 'INJECTED-BEFORE-THE-101';
    my $conn = conn_id();
    ws_exchange('/evil-wst/slow-101', $conn, 3, [0.2, ws_frame(0x1, $text)]);
    wait_app();
    my @ev = app_events($conn);
    check(scalar(grep { /^REQUEST / } @ev), 1, 'raw tunnel, slow 101: the opening reached the application');
    my ($early) = map { /^EARLY (\S*)/ ? $1 : () } @ev;
    check(defined $early && length $early ? 'bytes before its 101' : 'nothing', 'nothing',
          'raw tunnel: a plaintext frame sent before the backend\'s 101 does not reach the backend');
    check(scalar(grep { /^FRAME 1 \Q$text\E$/ } @ev), 0,
          'raw tunnel: the injected plaintext text message is not delivered to the application');

    # Control: mod_proxy_http (upgrade=websocket) holds the client's bytes
    # until the 101 is out; the frame then closes the socket (1008).
    $conn = conn_id();
    ws_exchange('/evil-ws/slow-101', $conn, 3, [0.2, ws_frame(0x1, $text)]);
    wait_app();
    @ev = app_events($conn);
    check(scalar(grep { /^FRAME 1 \Q$text\E$/ } @ev) . ' ' . scalar(grep { /^EARLY .+/ } @ev), '0 0',
          'control: through mod_proxy_http the same frame never reaches the backend');
}

# --- 2. the raw tunnel: answers whose head the module does not recognise -------------------------
# README: "With mod_proxy_wstunnel's raw tunnel ... such an answer cannot be
# sealed: the connection is closed and the error log says so";
# PROTOCOL.md 16.1: "nothing of the answer is sent". The module looks for
# "\r\n\r\n" and passes everything before it. A backend that ends its
# lines with a bare LF (which clients accept), or that sends an interim
# answer and then no second head, has its plaintext passed to the client.
for my $case (['/evil-wst/lf-200', 'a 200 with bare LF line ends'],
              ['/evil-wst/interim', 'a 100 Continue followed by body bytes'],
              ['/evil-wst/lf-101', 'a 101 with bare LF line ends and a plaintext frame']) {
    my ($path, $what) = @$case;
    my $got = ws_exchange($path, conn_id(), 2);
    check(index($got, BACKEND_MARKER), -1,
          "raw tunnel, $what: none of the backend's plaintext reaches the client");
}
{
    # After a 101 the module does not recognise, the socket is not
    # encrypted at all: the client's plaintext frames reach the backend.
    my $conn = conn_id();
    my $text = 'PLAINTEXT-FROM-THE-PATH';
    ws_exchange('/evil-wst/lf-101', $conn, 2, [0.5, ws_frame(0x1, $text)]);
    wait_app();
    my @ev = app_events($conn);
    check(scalar(grep { /^FRAME 1 \Q$text\E$/ } @ev), 0,
          'raw tunnel, a 101 with bare LF line ends: a plaintext client frame does not reach the backend');
}

# --- 3. an nph- script where the module is off, reached from an encrypted exchange ------------------
# README: nph- scripts "in an encrypted exchange ... are refused with 500
# e2e_encrypt_failed ... however they are reached (directly, as a
# DirectoryIndex, an ErrorDocument, an Action)"; "An encrypted exchange
# stays encrypted through internal redirects". The handler check returns
# early where ZeqE2E is Off at the script's own location, although the
# exchange is encrypted (its other answers there are sealed).
{
    my $r;
    my ($cgi) = hits_delta(sub {
        $r = request(vhost => 'zeq_attack', path => '/nph-off-errdoc/missing.html', session => $s);
    });
    check_err($r, 500, 'e2e_encrypt_failed',
              'ErrorDocument 404 to an nph- script under ZeqE2E Off, with a session');
    check(index($r->{body}, $nph_marker), -1,
          'that nph- script\'s plaintext does not reach the encrypting client');
    check($cgi, 0, 'that nph- script never ran');
}

# --- 4. answers Apache makes before the module has looked at the request ---------------------------
# PROTOCOL.md 7.1: answers "to the server's own error pages ... and to the
# answers of other server modules" are sealed for a client with a session;
# 7.4 lists the exceptions (head parse errors, HTTP/2 layer errors). 6:
# the application never gets X-E2E-Session. Errors found while the URL is
# mapped (a %2F in the path, a path above the root, a vhost RewriteRule
# [F]) come before header_parser, where the module recognises the
# exchange; their ErrorDocument then runs as if there were no session:
# unsealed, with the session id in its environment. Anyone on the path
# can add a %2F to a request.
for my $case (['GET /static/a%2Fb.txt HTTP/1.1', '404 for a %2F in the path (vhost ErrorDocument 404)'],
              ['GET /../static/hello.txt HTTP/1.1', '400 for a path above the root (vhost ErrorDocument 400)'],
              ['GET /early-forbidden HTTP/1.1', '403 of a vhost RewriteRule [F] (vhost ErrorDocument 403)'],
              ['GET /static/missing.txt HTTP/1.1', 'control: an ordinary 404 (vhost ErrorDocument 404)']) {
    my ($line, $what) = @$case;
    my $r = raw_request(vhost => 'zeq_attack', key => $key,
                        head => "$line\nHost: $hp\nX-E2E-Session: $s->{id}\nAccept: " . E2E_TYPE
                                . "\nConnection: close");
    my $e = decode_json_safe($r->{plain} // '') // {};
    check("$r->{enveloped} " . ($r->{opened} // 'undef'), '1 1', "$what, with a session: the answer is sealed");
    check(defined $e->{script} ? ($e->{HTTP_X_E2E_SESSION} // 'no session id') : 'no script output',
          'no session id', "$what: the ErrorDocument script does not get X-E2E-Session");
}
{
    # README: "The request line (%r in LogFormat, and mod_status) of an
    # encrypted WebSocket carries no e2e_session". An opening refused
    # before header_parser keeps it: a %2F added on the path puts the
    # session id into the access log.
    my $w = handshake(vhost => 'zeq_attack', secret => SECRET);
    my $id = $w->{id} // 'no-session';
    for my $path ("/evil-ws/a%2Fb?e2e_session=$id", "/evil-ws/../../x?e2e_session=$id") {
        my $r = raw_request(vhost => 'zeq_attack',
                            head => "GET $path HTTP/1.1\nHost: $hp\nUpgrade: websocket\nConnection: Upgrade\n"
                                    . 'Sec-WebSocket-Key: ' . encode_base64('0123456789abcdef', '')
                                    . "\nSec-WebSocket-Version: 13\nConnection: close");
        # PROTOCOL.md 7.4: the session id reaches no ErrorDocument script
        # (REQUEST_URI comes from the request line, REDIRECT_QUERY_STRING
        # from the initial query).
        my $e = decode_json_safe($r->{plain} // '') // {};
        my $env = $e->{env} // {};
        (my $shown = $path) =~ s/=\Q$id\E/=ID/;
        check(defined $e->{script} ? (grep({ index($env->{$_} // '', $id) >= 0 } sort keys %$env)
                                      ? 'the id in ' . join(', ', grep { index($env->{$_} // '', $id) >= 0 } sort keys %$env)
                                      : 'no session id')
                                   : 'no script output',
              'no session id', "an opening refused while its URL is mapped ($shown): its ErrorDocument script "
                               . 'gets the session id nowhere (REQUEST_URI, REDIRECT_QUERY_STRING)');
    }
    Time::HiRes::sleep(0.3);
    my @leaks;
    if (open my $fh, '<', catfile(Apache::Test::vars('t_logs'), 'access_log')) {
        @leaks = grep { index($_, $id) >= 0 } <$fh>;
        close $fh;
    }
    check(scalar(@leaks), 0, 'openings refused while the URL is mapped (%2F, a path above the root): '
                             . 'the access log holds no request line with their session id');
}

# --- 5. the plaintext of an encrypted upload on disk -------------------------------------------------
# README: spooled bodies are ciphertext only ("Only ciphertext is written
# there, never plaintext"); t/proxy.t: the backend gets the plaintext
# "with a correct Content-Length (no chunking, no spool file on disk)".
# The plaintext filter gives mod_proxy_http the whole body at once only
# for backends whose URL starts with http:, https:, fcgi:, h2: or h2c:;
# mod_proxy_http also serves ws:// and wss:// URLs (mod_proxy_wstunnel
# hands it every request that is no upgrade, by default), gets the body
# of those in parts, distrusts their Content-Length (a request filter is
# in the chain) and spools the decrypted body to a temporary file before
# sending it. (A unix:...|http:// backend holds: mod_proxy rewrites its
# URL to http:// first.)
{
    my $dir = ZeqTest::Fixtures::server_tmp();
    my $word = 'PLAINTEXT-UPLOAD-MARKER';
    my $pt = "$word " x 4000;    # 96,000 bytes: over mod_proxy_http's 16 KiB
    for my $case (['/unix-http/echo', 'control: an http:// backend on a Unix socket'],
                  ['/ws-fallback/echo', 'a ws:// ProxyPass (mod_proxy_wstunnel falling back to mod_proxy_http)']) {
        my ($path, $what) = @$case;
        # Watch the server's temporary directory while the request runs.
        pipe(my $rd, my $wr) or die "pipe: $!";
        my $pid = fork;
        die "fork: $!" unless defined $pid;
        if ($pid == 0) {
            close $rd;
            my %plain;
            my $until = Time::HiRes::time() + 5;
            while (Time::HiRes::time() < $until && getppid != 1) {
                if (opendir my $dh, $dir) {
                    for my $f (grep { !/^\.\.?$/ } readdir $dh) {
                        next if $plain{$f};
                        open my $fh, '<:raw', catfile($dir, $f) or next;
                        local $/;
                        my $c = <$fh> // '';
                        close $fh;
                        $plain{$f} = 1 if index($c, $word) >= 0;
                    }
                    closedir $dh;
                }
                Time::HiRes::sleep(0.002);
            }
            print {$wr} join(' ', sort keys %plain);
            close $wr;
            POSIX::_exit(0);
        }
        close $wr;
        my $r = request(vhost => 'zeq_attack', method => 'POST', path => $path, session => $s,
                        body => $pt, inner_type => 'text/plain');
        my $files = do { local $/; <$rd> } // '';
        close $rd;
        waitpid $pid, 0;
        my $e = decode_json_safe($r->{plain} // '') // {};
        check("$r->{status} " . ($r->{opened} // 'undef') . ' ' . ($e->{received} // $e->{bodyLength} // '?'),
              '200 1 ' . length($pt), "an encrypted upload to $what: 200, sealed, the backend got it all");
        check($files, '', "an encrypted upload to $what: no file with its plaintext appeared in the "
                          . "server's temporary directory");
    }
}

# --- 6. TRACE -------------------------------------------------------------------------------------
# PROTOCOL.md 9: where ZeqE2ERequire On applies, every request without a
# session gets 403 e2e_required; 7.1: answers to a client with a session
# are sealed. TRACE is answered during map_to_storage, before the module
# looks at the request.
{
    my $r = raw_request(vhost => 'zeq_attack', head => "TRACE /strict/s.json HTTP/1.1\nHost: $hp\nConnection: close");
    check_err($r, 403, 'e2e_required', 'TRACE under ZeqE2ERequire On without a session');
    $r = raw_request(vhost => 'zeq_attack', key => $key,
                     head => "TRACE /static/hello.txt HTTP/1.1\nHost: $hp\nX-E2E-Session: $s->{id}\n"
                             . 'Accept: ' . E2E_TYPE . "\nConnection: close");
    check("$r->{status} $r->{enveloped}", '200 1', 'TRACE with a session and Accept: the answer is sealed');
}

# --- 6b. an encrypted opening that also offers h2c ---------------------------------------------------
# PROTOCOL.md 7.5: a request the server handles for the protocol is never
# switched to another protocol. An opening keeps its Upgrade header for
# the backend; "Upgrade: websocket, h2c" with HTTP2-Settings, to a URL that
# is no WebSocket service on a host with h2c, had the core switch it to
# HTTP/2 (101 h2c).
{
    my $w = handshake(vhost => 'zeq_attack', secret => SECRET);
    my $r = raw_request(vhost => 'zeq_attack', key => $w->{key},
                        head => "GET /static/hello.txt?e2e_session=$w->{id} HTTP/1.1\nHost: $hp\n"
                                . "Connection: Upgrade, HTTP2-Settings, close\nUpgrade: websocket, h2c\n"
                                . "HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\n"
                                . 'Sec-WebSocket-Key: ' . encode_base64('0123456789abcdef', '')
                                . "\nSec-WebSocket-Version: 13\nAccept: " . E2E_TYPE);
    my ($first) = split /\r\n/, $r->{raw} // '';
    check(($first // '') =~ m{^HTTP/1\.1 101} ? "switched: $first" : 'not switched', 'not switched',
          'an encrypted opening offering h2c as well is not switched to HTTP/2');
    check("$r->{status} $r->{enveloped} " . ($r->{opened} // 'undef'), '200 1 1',
          'it is answered as an ordinary encrypted request: 200, sealed');
}

# --- 7. sessions of name-based virtual hosts on one port ----------------------------------------------
# (Holds today; kept so that it stays so.) PROTOCOL.md 11: a session
# belongs to the virtual host that made it, whatever Host or absolute-form
# URL names another on the same port.
{
    my $nb = ZeqTest::hostport('zeq_nb');
    my (undef, $nbport) = split /:/, $nb;
    my $cn = random_hex(32);
    my $body = qq({"clientNonce":"$cn"});
    my $h = raw_request(vhost => 'zeq_nb', body => $body,
                        head => "POST /api/e2e/handshake HTTP/1.1\nHost: nb-one.test:$nbport\n"
                                . "Content-Type: application/json\nContent-Length: " . length($body)
                                . "\nConnection: close");
    my $j = decode_json_safe($h->{body}) // {};
    my $id = $j->{sessionId} // 'none';
    for my $case (["Host: nb-two.test:$nbport", "GET /cgi-bin/echo.cgi HTTP/1.1", 401, 'Host names the other'],
                  ["Host: nb-one.test:$nbport", "GET http://nb-two.test:$nbport/cgi-bin/echo.cgi HTTP/1.1", 401,
                   'an absolute-form URL names the other'],
                  ["Host: nb-one.test:$nbport", "GET /cgi-bin/echo.cgi HTTP/1.1", 200, 'control: its own host']) {
        my ($hosthdr, $line, $want, $what) = @$case;
        my $r = raw_request(vhost => 'zeq_nb',
                            head => "$line\n$hosthdr\nX-E2E-Session: $id\nAccept: " . E2E_TYPE . "\nConnection: close");
        check($r->{status}, $want, "a session of nb-one.test, $what: $want");
    }
}

# --- 8. memory pinned by encrypted uploads -----------------------------------------------------------
# The counterpart of t/memory.t for request bodies: an encrypted body is
# read and decrypted whole, into the request's pool, before the handler
# runs, and stays there until the request ends; a plaintext one streams.
# Eight connections that send a 16 MiB envelope (ZeqE2EMaxRequestBody's
# default) but its last 16 bytes pin all of it: MaxRequestWorkers x
# ZeqE2EMaxRequestBody for requests that cost the client a session and
# the upload. Expected: like plaintext, under 64 MB for the eight.
{
    my $pidfile = catfile(Apache::Test::vars('t_logs'), 'httpd.pid');
    my $ppid = do { open my $fh, '<', $pidfile or die "$pidfile: $!"; local $/; <$fh> } // '';
    $ppid =~ s/\D//g;
    my $rss = sub {
        my $sum = 0;
        $sum += rss_kb($_) // 0 for $ppid, children_of($ppid);
        return $sum;
    };
    my $stable = sub {
        my $prev = $rss->();
        my $deadline = Time::HiRes::time() + 10;
        while (1) {
            Time::HiRes::sleep(0.3);
            my $now = $rss->();
            return $now if abs($now - $prev) < 1024 || Time::HiRes::time() > $deadline;
            $prev = $now;
        }
    };
    my $fhp = ZeqTest::hostport('zeq_file');
    my $fs = handshake(vhost => 'zeq_file');
    my $size = 16 * 1024 * 1024 - OVERHEAD - 1024;
    my $pt = 'u' x $size;
    my %growth;
    for my $mode ('plaintext', 'encrypted') {
        my $body = $mode eq 'plaintext' ? $pt : seal($fs->{key} // ("\0" x 32), $pt);
        my $before = $stable->();
        my @socks;
        for (1 .. 8) {
            my ($h, $p) = split /:/, $fhp;
            my $sock = IO::Socket::INET->new(PeerAddr => $h, PeerPort => $p, Proto => 'tcp', Timeout => 10)
                or die "connect $fhp: $!";
            binmode $sock;
            print {$sock} "POST /static/hello.txt HTTP/1.1\r\nHost: $fhp\r\nContent-Length: " . length($body) . "\r\n"
                . ($mode eq 'plaintext'
                   ? "Content-Type: application/octet-stream\r\n"
                   : 'X-E2E-Session: ' . ($fs->{id} // '') . "\r\nAccept: " . E2E_TYPE
                     . "\r\nContent-Type: " . E2E_TYPE . "\r\n")
                . "\r\n", substr($body, 0, length($body) - 16);
            push @socks, $sock;
        }
        $growth{$mode} = $stable->() - $before;
        close $_ for @socks;
        Time::HiRes::sleep(0.5);
    }
    print STDERR "# server VmRSS growth with 8 stalled 16 MiB uploads: plaintext $growth{plaintext} kB, "
        . "encrypted $growth{encrypted} kB\n";
    if (my $why = ZeqTest::rss_bound_skipped()) {
        print STDERR "# eight stalled 16 MiB encrypted uploads: the bound on the server's VmRSS $why\n";
    } else {
        check($growth{encrypted} < 64 * 1024 ? 'under 64 MB' : "$growth{encrypted} kB", 'under 64 MB',
              'eight stalled 16 MiB encrypted uploads: the server\'s VmRSS grows by less than 64 MB');
    }
}

plan tests => scalar(@checks), need_lwp;
ok t_cmp($_->[0], $_->[1], $_->[2]) for @checks;
