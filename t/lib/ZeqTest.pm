package ZeqTest;
# The test suite's client of protocol v1, written from the protocol alone
# with CryptX (libtomcrypt), independent of the module's OpenSSL code:
# handshake, key derivation, envelopes, requests over HTTP/1.1 (LWP or a raw
# socket) and HTTP/2 (curl), JSON errors, hit counters.
use strict;
use warnings;

use Exporter 'import';

use Apache::Test ();
use Apache::TestRequest ();
use Apache::TestUtil qw(t_cmp);
use Crypt::AuthEnc::GCM qw(gcm_encrypt_authenticate gcm_decrypt_verify);
use Crypt::KeyDerivation qw(pbkdf2);
use Crypt::PRNG qw(random_bytes);
use Digest::SHA qw(sha256_hex);
use File::Spec::Functions qw(catfile catdir);
use HTTP::Request ();
use HTTP::Response ();
use IO::Select ();
use IO::Socket::INET ();
use IO::Uncompress::Gunzip qw(gunzip $GunzipError);
use JSON::PP ();
use LWP::UserAgent ();
use Socket qw(SOL_SOCKET SO_RCVBUF inet_aton pack_sockaddr_in);
use Time::HiRes ();

use ZeqTest::Fixtures ();

our @EXPORT = qw(
    E2E_TYPE OVERHEAD
    secret_for url hostport
    derive_key seal open_envelope
    handshake handshake_raw request raw_request
    slow_socket read_head read_bytes
    json_error check_error error_checks decode_json_safe
    cgi_hits backend_hits hits_delta
    random_hex det_bytes gunzip_bytes media_type sha256_hex digest_of
    error_log_path log_mark log_since
);

use constant E2E_TYPE   => 'application/x-zeq-e2e';
use constant OVERHEAD   => 28;            # iv(12) + tag(16)
use constant ITERATIONS => 100_000;
use constant DEFAULT_HANDSHAKE => '/api/e2e/handshake';

# Secrets of the virtual hosts in t/conf/extra.conf.in.
my %SECRET = (
    zeq_file    => ZeqTest::Fixtures::FILE_SECRET,
    zeq_h2      => ZeqTest::Fixtures::FILE_SECRET,
    zeq_env     => ZeqTest::Fixtures::ENV_SECRET,
    zeq_literal => ZeqTest::Fixtures::LITERAL_SECRET,
    zeq_gate    => ZeqTest::Fixtures::FILE_SECRET,
    zeq_scope_a => ZeqTest::Fixtures::FILE_SECRET,
    zeq_scope_b => ZeqTest::Fixtures::FILE_SECRET,
    zeq_psk     => ZeqTest::Fixtures::FILE_SECRET,
    zeq_v1only  => ZeqTest::Fixtures::FILE_SECRET,
    zeq_slow    => ZeqTest::Fixtures::FILE_SECRET,
);
my %HANDSHAKE_PATH = (zeq_literal => '/custom/handshake');
my %SCHEME = (zeq_h2 => 'https');

my $JSON = JSON::PP->new->canonical(1);

sub secret_for { $SECRET{ $_[0] } }
sub handshake_path { $HANDSHAKE_PATH{ $_[0] } // DEFAULT_HANDSHAKE }
sub det_bytes { ZeqTest::Fixtures::det_bytes(@_) }

sub hostport {
    my ($vhost) = @_;
    # A server of its own (t/lib/ZeqTest/Cluster.pm): HOST:PORT.
    return $vhost if defined $vhost && $vhost =~ /^[\w.-]+:\d+$/;
    my $cfg = Apache::Test::config();
    return Apache::TestRequest::hostport($cfg) if !$vhost || $vhost eq 'main';
    my $v = $cfg->{vhosts}{$vhost} or die "no virtual host '$vhost' in the test config\n";
    return $v->{hostport};
}

sub url {
    my ($vhost, $path) = @_;
    return ($SCHEME{$vhost // ''} // 'http') . '://' . hostport($vhost) . $path;
}

sub random_hex { unpack 'H*', random_bytes($_[0] // 32) }

# A short stand-in for bytes in t_cmp (so a failure does not print megabytes).
sub digest_of {
    my ($bytes) = @_;
    return 'undef' unless defined $bytes;
    return length($bytes) . ' bytes, sha256 ' . substr(sha256_hex($bytes), 0, 16);
}

sub media_type {
    my ($ct) = @_;
    return '' unless defined $ct;
    (my $m = lc $ct) =~ s/;.*//s;
    $m =~ s/^\s+|\s+$//g;
    return $m;
}

# --- crypto ---------------------------------------------------------------

sub derive_key {
    my ($secret, $client_nonce, $server_nonce) = @_;
    return pbkdf2($secret, $client_nonce . $server_nonce, ITERATIONS, 'SHA256', 32);
}

sub seal {
    my ($key, $plaintext, $iv) = @_;
    $iv //= random_bytes(12);
    my ($ct, $tag) = gcm_encrypt_authenticate('AES', $key, $iv, '', $plaintext // '');
    return $iv . $tag . $ct;
}

# Plaintext, or undef when the envelope is short or does not verify.
sub open_envelope {
    my ($key, $env) = @_;
    return undef unless defined $env && length($env) >= OVERHEAD;
    my ($iv, $tag, $ct) = (substr($env, 0, 12), substr($env, 12, 16), substr($env, 28));
    return gcm_decrypt_verify('AES', $key, $iv, '', $ct, $tag);
}

sub gunzip_bytes {
    my ($gz) = @_;
    my $out;
    gunzip(\$gz => \$out) or return undef;
    return $out;
}

sub decode_json_safe {
    my ($text) = @_;
    return undef unless defined $text;
    my $d = eval { $JSON->decode($text) };
    return $d;
}

# --- HTTP over LWP ----------------------------------------------------------

my $UA;
sub ua {
    $UA ||= do {
        my $ua = LWP::UserAgent->new(
            max_redirect => 0, timeout => 120, keep_alive => 0,
            agent => 'zeq-e2e-tests/1',
            ssl_opts => { verify_hostname => 0, SSL_verify_mode => 0 },
        );
        $ua->default_headers(HTTP::Headers->new);
        $ua;
    };
}

# Handshake (options: vhost, path, secret, client_nonce_hex, headers);
# returns a session:
#   { ok, vhost, id, key, client_nonce, server_nonce, expires_in, json, res }
# ok is false (and id/key undef) when the server did not answer 200 with
# a well-formed reply; res is always the HTTP::Response.
sub handshake {
    my (%a) = @_;
    my $vhost = $a{vhost} // 'zeq_file';
    my $cn_hex = $a{client_nonce_hex} // random_hex(32);
    my $res = handshake_raw(vhost => $vhost, path => $a{path}, headers => $a{headers},
                            body => $JSON->encode({ clientNonce => $cn_hex }));
    my $s = { ok => 0, vhost => $vhost, res => $res, client_nonce_hex => $cn_hex };
    return $s unless $res->code == 200;
    my $j = decode_json_safe($res->decoded_content(charset => 'none'));
    $s->{json} = $j;
    return $s unless ref $j eq 'HASH'
        && defined $j->{sessionId} && defined $j->{serverNonce}
        && $j->{serverNonce} =~ /^[0-9a-f]{64}$/;
    $s->{id} = $j->{sessionId};
    record_session_id($s->{id});
    $s->{expires_in} = $j->{expiresIn};
    $s->{client_nonce} = pack 'H*', $cn_hex;
    $s->{server_nonce} = pack 'H*', $j->{serverNonce};
    my $secret = $a{secret} // secret_for($vhost);
    if (defined $secret) {
        $s->{key} = derive_key($secret, $s->{client_nonce}, $s->{server_nonce});
        record_key($s->{key});
    }
    $s->{ok} = 1;
    return $s;
}

# POSTs (or METHOD) raw bytes to the handshake path, with more headers
# ([Name => value, ...]) if given; returns HTTP::Response.
sub handshake_raw {
    my (%a) = @_;
    my $vhost = $a{vhost} // 'zeq_file';
    my $path = $a{path} // handshake_path($vhost);
    my $req = HTTP::Request->new($a{method} // 'POST', url($vhost, $path));
    $req->header('Content-Type' => $a{content_type} // 'application/json');
    $req->header(@{ $a{headers} }) if $a{headers} && @{ $a{headers} };
    if (defined $a{body}) {
        $req->content($a{body});
        $req->header('Content-Length' => length $a{body});
    }
    return ua()->request($req);
}

# One request. Arguments:
#   vhost      (zeq_file)     method (GET)    path
#   session    a handshake() result: sends X-E2E-Session and, unless
#              accept is given, Accept: application/x-zeq-e2e
#   session_id X-E2E-Session value to send instead of session's
#   body       plaintext body; sealed with the session key when a session
#              is given (unless encrypt => 0), sent as is otherwise
#   key        key to seal with instead of the session's
#   raw_body   bytes to send as they are
#   content_type  outer Content-Type (default: the envelope type when
#              sealing, application/json for a plain body)
#   inner_type X-E2E-Content-Type
#   accept     Accept header ('' = none)
#   headers    [Name => value, ...] more headers
#   via        'lwp' (default) or 'curl' (HTTP/2, see curl_request)
#   timeout    seconds LWP waits for the server (default 120); a server
#              that never answers gives status 500 (LWP's own answer)
# Returns { status, h (HTTP::Headers), body (raw bytes), plain (the opened
# envelope, or the body when the answer is not an envelope), opened (1/0/
# undef when no envelope), enveloped, res, sent (the body sent) }.
sub request {
    my (%a) = @_;
    my $vhost = $a{vhost} // 'zeq_file';
    my $method = $a{method} // 'GET';
    my $s = $a{session};
    my @h;
    my $sid = exists $a{session_id} ? $a{session_id} : ($s ? $s->{id} : undef);
    push @h, 'X-E2E-Session' => $sid if defined $sid;
    my $accept = exists $a{accept} ? $a{accept} : ($s ? E2E_TYPE : undef);
    push @h, 'Accept' => $accept if defined $accept && length $accept;

    my ($body, $ctype);
    if (defined $a{raw_body}) {
        $body = $a{raw_body};
        $ctype = $a{content_type};
    }
    elsif (defined $a{body}) {
        my $encrypt = $a{encrypt} // ($s ? 1 : 0);
        if ($encrypt) {
            # Without a key (a failed handshake) seal with zeros: the
            # assertions on the answer fail instead of the script dying.
            my $key = $a{key} // $s->{key} // ("\0" x 32);
            $body = seal($key, $a{body});
            record_plaintext($a{body});
            $ctype = $a{content_type} // E2E_TYPE;
        }
        else {
            $body = $a{body};
            $ctype = $a{content_type} // 'application/json';
        }
    }
    else {
        $ctype = $a{content_type};
    }
    push @h, 'Content-Type' => $ctype if defined $ctype;
    push @h, 'X-E2E-Content-Type' => $a{inner_type} if defined $a{inner_type};
    push @h, @{ $a{headers} || [] };

    my $key = $a{key} // ($s ? $s->{key} : undef);
    my $via = $a{via} // 'lwp';
    my $r;
    if ($via eq 'curl') {
        $r = curl_request(vhost => $vhost, method => $method, path => $a{path},
                          headers => \@h, body => $body, http2 => $a{http2} // 1);
    }
    else {
        my $req = HTTP::Request->new($method, url($vhost, $a{path}));
        $req->header(@h) if @h;
        if (defined $body) {
            $req->content($body);
            $req->header('Content-Length' => length $body);
        }
        my $ua = ua();
        my $timeout = $ua->timeout;
        $ua->timeout($a{timeout}) if defined $a{timeout};
        my $res = $ua->request($req);
        $ua->timeout($timeout);
        $r = { status => $res->code, h => $res->headers, body => $res->content,
               res => $res };
    }
    $r->{sent} = $body;
    finish_response($r, $key);
    return $r;
}

# Opens the body when the response is an envelope.
sub finish_response {
    my ($r, $key) = @_;
    $r->{body} //= '';
    $r->{enveloped} = media_type($r->{h}->header('Content-Type')) eq E2E_TYPE ? 1 : 0;
    if ($r->{enveloped} && defined $key) {
        my $pt = open_envelope($key, $r->{body});
        $r->{opened} = defined $pt ? 1 : 0;
        $r->{plain} = $pt;
    }
    else {
        $r->{opened} = undef;
        $r->{plain} = $r->{enveloped} ? undef : $r->{body};
    }
    return $r;
}

# --- HTTP/2 with curl --------------------------------------------------------

sub tmp_dir {
    # Not TMPDIR: that is the server's temporary directory, which
    # t/proxy.t expects to stay empty.
    my $d = catdir(Apache::Test::vars('t_logs'), 'client-tmp');
    mkdir $d unless -d $d;
    return $d;
}

# curl (HTTP/2 by default, --http2 over TLS negotiates h2 with ALPN, over
# cleartext it offers an h2c upgrade; http2 => 'prior' speaks HTTP/2 from
# the first byte).
# Returns { status, h, body, http_version }.
sub curl_request {
    my (%a) = @_;
    my $dir = tmp_dir();
    my $tag = "$$-" . int(rand(1e9));
    my ($hfile, $bfile, $dfile) = map { catfile($dir, "$tag.$_") } qw(headers body data);
    my @cmd = ('curl', '-sS', '-k', '--max-time', '120',
               (!$a{http2} ? '--http1.1'
                : $a{http2} eq 'prior' ? '--http2-prior-knowledge' : '--http2'),
               '-D', $hfile, '-o', $bfile, '-w', '%{http_version}',
               '-X', $a{method} // 'GET');
    my @h = @{ $a{headers} || [] };
    while (my ($k, $v) = splice @h, 0, 2) {
        push @cmd, '-H', "$k: $v";
    }
    push @cmd, '-H', 'Expect:';
    if (defined $a{body}) {
        open my $fh, '>:raw', $dfile or die "$dfile: $!";
        print {$fh} $a{body};
        close $fh;
        push @cmd, '--data-binary', "\@$dfile";
    }
    push @cmd, url($a{vhost}, $a{path});
    open my $pipe, '-|', @cmd or die "cannot run curl: $!";
    my $version = do { local $/; <$pipe> } // '';
    close $pipe;
    my $rc = $? >> 8;
    my $r = { curl_rc => $rc, http_version => $version, status => 0,
              h => HTTP::Headers->new, body => '' };
    if (-e $hfile) {
        open my $hf, '<:raw', $hfile or die;
        my $text = do { local $/; <$hf> };
        close $hf;
        # Skip interim (1xx) blocks.
        my @blocks = grep { length } split /\r?\n\r?\n/, $text;
        my $last = $blocks[-1] // '';
        my ($status_line, @lines) = split /\r?\n/, $last;
        ($r->{status}) = ($status_line // '') =~ m{^HTTP/\S+\s+(\d{3})};
        $r->{status} //= 0;
        for (@lines) {
            my ($k, $v) = /^([^:]+):\s*(.*)$/ or next;
            $r->{h}->push_header($k => $v);
        }
    }
    if (-e $bfile) {
        open my $bf, '<:raw', $bfile or die;
        $r->{body} = do { local $/; <$bf> } // '';
        close $bf;
    }
    unlink grep { -e } $hfile, $bfile, $dfile;
    return $r;
}

# --- raw HTTP/1.1 over a socket --------------------------------------------

# Sends exactly the given head (without the final CRLF pair) and body
# parts; options: chunks => [bytes...] sends the body chunked (the head must
# say Transfer-Encoding: chunked), expect_continue => 1 waits for the
# interim 100 before the body, chunk_delay => seconds pauses after each
# chunk. Returns { status, h, body, got_100, raw }.
sub raw_request {
    my (%a) = @_;
    my ($host, $port) = split /:/, hostport($a{vhost} // 'zeq_file');
    my $sock = IO::Socket::INET->new(PeerAddr => $host, PeerPort => $port,
                                     Proto => 'tcp', Timeout => 30)
        or die "connect $host:$port: $!";
    binmode $sock;
    $sock->autoflush(1);
    my $head = $a{head};
    $head =~ s/\r?\n/\r\n/g;
    $head =~ s/(\r\n)*$/\r\n\r\n/;
    print {$sock} $head;
    my $buf = '';
    my $got_100 = 0;
    if ($a{expect_continue}) {
        # Wait for "HTTP/1.1 100 Continue" before sending the body.
        my $deadline = time + 10;
        while ($buf !~ /\r\n\r\n/ && time < $deadline) {
            my $rin = '';
            vec($rin, fileno($sock), 1) = 1;
            last unless select(my $rout = $rin, undef, undef, 1) >= 0;
            next unless vec($rout // '', fileno($sock), 1);
            my $n = sysread($sock, $buf, 65536, length $buf);
            last unless $n;
        }
        if ($buf =~ s{^HTTP/1\.\d 100[^\r\n]*\r\n(?:[^\r\n]+\r\n)*\r\n}{}) {
            $got_100 = 1;
        }
    }
    if ($a{chunks}) {
        for my $c (@{ $a{chunks} }) {
            next unless length $c;
            print {$sock} sprintf('%x', length $c) . "\r\n" . $c . "\r\n";
            select(undef, undef, undef, $a{chunk_delay}) if $a{chunk_delay};
        }
        print {$sock} "0\r\n\r\n";
    }
    elsif (defined $a{body}) {
        print {$sock} $a{body};
    }
    while (1) {
        my $n = sysread($sock, $buf, 65536, length $buf);
        last unless $n;
    }
    close $sock;
    # Without expect_continue, an interim 100 may still precede the answer.
    $got_100 ||= ($buf =~ s{^HTTP/1\.\d 100[^\r\n]*\r\n(?:[^\r\n]+\r\n)*\r\n}{}) ? 1 : 0;
    my $res = HTTP::Response->parse($buf);
    my $body = $res->content;
    $body = dechunk($body) if ($res->header('Transfer-Encoding') // '') =~ /chunked/i;
    my $r = { status => $res->code // 0, h => $res->headers, body => $body,
              got_100 => $got_100, raw => $buf };
    return finish_response($r, $a{key});
}

# Pipelined requests: writes the heads (each without its final CRLF pair)
# at once to vhost and reads to the end of the connection. Returns the
# answers in order ({ status, h, body }) and whatever was left over; heads
# are HEAD requests where head_only->[i] is true (no body, whatever the
# Content-Length says), and a 304 has none either.
sub pipelined {
    my (%a) = @_;
    my ($host, $port) = split /:/, hostport($a{vhost} // 'zeq_file');
    my $sock = IO::Socket::INET->new(PeerAddr => $host, PeerPort => $port,
                                     Proto => 'tcp', Timeout => 60)
        or die "connect $host:$port: $!";
    binmode $sock;
    print {$sock} join '', map { "$_\r\n\r\n" } @{ $a{heads} };
    my $buf = '';
    while (1) {
        my $n = sysread($sock, $buf, 1 << 20, length $buf);
        last unless $n;
    }
    close $sock;
    my @answers;
    while ($buf =~ s/^(HTTP\/1\.1 .*?\r\n)\r\n//s) {
        my $res = HTTP::Response->parse($1);
        my $len = $res->header('Content-Length') // 0;
        $len = 0 if $a{head_only}[scalar @answers] || $res->code == 304;
        push @answers, { status => $res->code, h => $res->headers,
                         body => substr($buf, 0, $len, '') };
    }
    return (\@answers, $buf);
}

# A file's bytes ('' when it cannot be read).
sub slurp {
    open my $fh, '<:raw', $_[0] or return '';
    local $/;
    my $d = <$fh>;
    close $fh;
    return $d // '';
}

# The data of a chunked body (chunk extensions and trailers dropped).
sub dechunk {
    my ($body) = @_;
    my $out = '';
    while ($body =~ s/^([0-9a-fA-F]+)[^\r\n]*\r\n//) {
        my $len = hex $1;
        last if $len == 0;
        $out .= substr($body, 0, $len, '');
        $body =~ s/^\r\n//;
    }
    return $out;
}

# --- a reader that lags behind -----------------------------------------------

# A connection to vhost whose receive buffer is rcvbuf bytes (default
# 4096), set before connect so that the window it announces stays small:
# the server can send little more than that until the client reads.
sub slow_socket {
    my (%a) = @_;
    my ($host, $port) = split /:/, hostport($a{vhost} // 'zeq_file');
    my $sock = IO::Socket::INET->new(Proto => 'tcp') or die "socket: $!";
    setsockopt($sock, SOL_SOCKET, SO_RCVBUF, pack('i', $a{rcvbuf} // 4096))
        or die "setsockopt SO_RCVBUF: $!";
    my $addr = inet_aton($host) or die "cannot resolve $host";
    $sock->connect(pack_sockaddr_in($port, $addr)) or die "connect $host:$port: $!";
    binmode $sock;
    $sock->autoflush(1);
    return $sock;
}

# Reads from sock until the end of a response head, in reads of 1 kB, for
# at most timeout seconds (default 30). Returns the head (HTTP::Response,
# without a body; undef when none came in time) and the bytes read after it.
sub read_head {
    my ($sock, $timeout) = @_;
    my $deadline = Time::HiRes::time() + ($timeout // 30);
    my $sel = IO::Select->new($sock);
    my $buf = '';
    while ($buf !~ /\r\n\r\n/) {
        my $left = $deadline - Time::HiRes::time();
        last if $left <= 0 || !$sel->can_read($left);
        my $n = sysread($sock, $buf, 1024, length $buf);
        last unless $n;
    }
    my ($head, $rest) = $buf =~ /^(.*?\r\n)\r\n(.*)\z/s or return (undef, $buf);
    return (HTTP::Response->parse($head), $rest);
}

# Reads n bytes from sock, for at most timeout seconds (default 60); fewer
# when the connection ends or the time is up.
sub read_bytes {
    my ($sock, $n, $timeout) = @_;
    my $deadline = Time::HiRes::time() + ($timeout // 60);
    my $sel = IO::Select->new($sock);
    my $buf = '';
    while (length($buf) < $n) {
        my $left = $deadline - Time::HiRes::time();
        last if $left <= 0 || !$sel->can_read($left);
        my $got = sysread($sock, $buf, $n - length($buf), length $buf);
        last unless $got;
    }
    return $buf;
}

# --- errors -----------------------------------------------------------------

# { error, message } when r is a JSON error answer, else undef.
sub json_error {
    my ($r) = @_;
    my $body = ref $r eq 'HASH' ? $r->{body} : $r->content;
    my $j = decode_json_safe($body);
    return undef unless ref $j eq 'HASH' && defined $j->{error};
    return $j;
}

# Three assertions: the status, a JSON body with the error code, a
# non-empty message and Content-Type application/json.
# The checks of a module error, for suites that collect their checks
# first: ([got, expected, name], ...) for its status, its JSON error code
# and its plaintext application/json type.
sub error_checks {
    my ($r, $status, $code, $what) = @_;
    my $err = json_error($r) // {};
    return ([$r->{status}, $status, "$what: status $status"],
            [$err->{error}, $code, "$what: JSON error $code"],
            [media_type($r->{h}->header('Content-Type')), 'application/json',
             "$what: a plaintext application/json module error"]);
}

sub check_error {
    my ($r, $status, $code, $what) = @_;
    my $h = ref $r eq 'HASH' ? $r->{h} : $r->headers;
    my $st = ref $r eq 'HASH' ? $r->{status} : $r->code;
    my $err = json_error($r) // {};
    my $ok = 1;
    $ok &= Apache::Test::ok(t_cmp($st, $status, "$what: status $status"));
    $ok &= Apache::Test::ok(t_cmp($err->{error}, $code, "$what: JSON error \"$code\""));
    $ok &= Apache::Test::ok(t_cmp(
        media_type($h->header('Content-Type')) . ' / '
            . ((defined $err->{message} && !ref $err->{message} && length $err->{message})
               ? 'message' : 'no message'),
        'application/json / message',
        "$what: Content-Type application/json and a non-empty \"message\""));
    return $ok;
}
use constant CHECK_ERROR_TESTS => 3;

# --- application hits ---------------------------------------------------------

sub _count_lines {
    my ($file) = @_;
    open my $fh, '<', $file or return 0;
    my $n = 0;
    $n++ while <$fh>;
    close $fh;
    return $n;
}
sub cgi_hits     { _count_lines(catfile(ZeqTest::Fixtures::hits_dir(), 'cgi.log')) }
sub backend_hits { _count_lines(catfile(ZeqTest::Fixtures::hits_dir(), 'backend.log')) }

# Runs code and returns (cgi hits, backend hits) it caused.
sub hits_delta {
    my ($code) = @_;
    my ($c0, $b0) = (cgi_hits(), backend_hits());
    $code->();
    return (cgi_hits() - $c0, backend_hits() - $b0);
}

sub error_log_path { catfile(Apache::Test::vars('t_logs'), 'error_log') }

# Why a bound on the server's resident memory is not checked in this run,
# or '' when it is. Under make test SANITIZE=1 (t/run-tests sets
# ZEQ_T_SANITIZE) the server runs under AddressSanitizer, whose quarantine
# keeps up to 256 MB of freed memory resident to catch its use after free:
# the bound would measure the quarantine, not the module. The plain run
# checks it.
sub rss_bound_skipped {
    return ($ENV{ZEQ_T_SANITIZE} // '') eq '1'
        ? 'skipped under AddressSanitizer: its quarantine keeps freed memory resident' : '';
}

# log_mark() before a request, log_since($mark) after: the error_log lines
# written in between.
sub log_mark { -s error_log_path() // 0 }
sub log_since {
    my ($mark) = @_;
    select(undef, undef, undef, 0.3);    # let the server finish writing
    open my $fh, '<:raw', error_log_path() or return '';
    seek $fh, $mark, 0;
    my $text = do { local $/; <$fh> } // '';
    close $fh;
    return $text;
}

# Every value a test learns that must never reach a log (session ids,
# derived keys, shared secrets, plaintexts it sealed) is listed in the
# run's needle file, one "KIND<tab>HEX" line each, for t/zz_log_search.t.
# The file lasts across the passes of t/run-tests (whose start empties
# it); helper programs (t/loop_client.cjs) get its name in ZEQ_T_NEEDLES.
sub needles_file { ZeqTest::Fixtures::needles_file() }
# (for the helper programs the tests start)
$ENV{ZEQ_T_NEEDLES} ||= needles_file();
sub record_needle {
    my ($kind, $value) = @_;
    return unless defined $value && length $value;
    open my $fh, '>>', needles_file() or return;
    print {$fh} "$kind\t", unpack('H*', $value), "\n";
    close $fh;
}
sub record_key        { record_needle('key', $_[0]) }
sub record_session_id { record_needle('session-id', $_[0]) }
# A plaintext the client sealed: its first 64 bytes, when they are long
# and varied enough not to turn up in a log by chance (16 bytes or more,
# 8 different ones or more).
sub record_plaintext {
    my ($pt) = @_;
    return unless defined $pt && length $pt >= 16;
    my $head = substr($pt, 0, 64);
    my %seen = map { $_ => 1 } split //, $head;
    record_needle('plaintext', $head) if keys %seen >= 8;
}

1;
