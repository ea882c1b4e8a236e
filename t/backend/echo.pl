#!/usr/bin/perl
# The proxied application of the test suite: a small HTTP/1.1 server on
# 127.0.0.1 that reports exactly what it received.
#
#   echo.pl --port-file FILE [--hits-file FILE] [--port N]
#
# Listens on 127.0.0.1 (port 0 = any free port unless --port), writes
# "127.0.0.1:PORT" to the port file once it accepts connections, and forks
# one child per connection. Each request is appended as "METHOD TARGET" to
# the hits file, so the tests can tell whether a request reached it.
#
# Endpoints (add new ones to %ROUTES):
#   POST|PUT|GET /echo        200 JSON: method, contentLength (header as
#                             received, or null), transferEncoding,
#                             contentType, bodySha256, bodyLength, body
#                             (when at most 64 KiB), headers {lowercased}
#   GET|HEAD /bytes?n=N       N deterministic bytes, application/octet-stream
#   GET|HEAD /gzip            gzip-compressed JSON, Content-Encoding: gzip
#                             whatever Accept-Encoding says
#   GET|HEAD /status/204, /status/304
#   GET /sse?n=N&ms=M         text/event-stream without a length: N events
#                             {"i":i,"written":time} M ms apart, each
#                             written (and flushed) on its own
#   GET|HEAD /big?n=N         N bytes of the marked pattern (ZeqTest::Fixtures::
#                             marked_block), with their Content-Length, written
#                             1 MiB at a time
#   GET /cut?n=N&after=K      Content-Length N, then only K bytes of the marked
#                             pattern, then the connection is closed (a backend
#                             that fails mid-body)
#   anything else             404 JSON {"backend":"not found"}
#
# WebSocket endpoints (RFC 6455, version 13; add new ones to %WS_ROUTES).
# An upgrade elsewhere gets the ordinary answer of the path (404 for
# /ws/anything-else, on a connection that stays open). No extension is
# ever accepted (no permessage-deflate), a Sec-WebSocket-Protocol offer
# gets its first protocol.
#   /ws/echo    echoes every message with its type, answers a ping with a
#               pong of the same payload, echoes a close; these text
#               messages are commands instead:
#                 fragment-me         text reply "frag-one|frag-two|frag-three"
#                                     in 3 frames, a ping "between-1" and a
#                                     pong "between-2" between them
#                 fragment-me-binary  the same with 70000 bytes
#                                     (det_bytes(70000, 'fragment')) in frames
#                                     of 100, 65536 and 4364 bytes
#                 send-bytes N        a binary message of det_bytes(N, 'ws')
#                 ping-me             a ping "backend-ping"
#                 close-me            a close 1001 "backend going away"
#   /ws/pulse   the same, and a text message {"tick":n,"time":t} every
#               100 ms from the upgrade on
#   /ws/greet   the echo, which sends the text message "greetings from the
#               backend" in the same write as its 101
#   /ws/DIR/echo, /ws/DIR/pulse, /ws/DIR/greet: the same (for proxy
#               locations with their own settings)
# Every event of a WebSocket is appended as one JSON line to
# HITSDIR/ws-ID.jsonl, ID being the query parameter conn (letters, digits,
# - and _; "none" without it): {"ev":"open","target","path","headers"},
# {"ev":"message","type":"text"|"binary","len","sha256","head" (hex of the
# first 16 bytes),"frames","masked","utf8"}, {"ev":"ping"|"pong","data"
# (hex)}, {"ev":"close","code","reason"}, {"ev":"error","why"},
# {"ev":"eof"} and last {"ev":"end"} (nothing is recorded after it).
# HITSDIR is the directory of the hits file. A text message that is not
# UTF-8 or a frame that breaks RFC 6455 gets the close code RFC 6455 asks
# for (1007, 1002), and so does an unmasked frame.
use strict;
use warnings;

use FindBin ();
use lib "$FindBin::Bin/../lib";

use Digest::SHA qw(sha1 sha256_hex);
use Encode ();
use Fcntl qw(:flock);
use File::Basename qw(dirname);
use File::Spec::Functions qw(catfile);
use Getopt::Long qw(GetOptions);
use IO::Compress::Gzip qw(gzip $GzipError);
use IO::Socket::INET ();
use JSON::PP ();
use MIME::Base64 qw(encode_base64);
use POSIX ();
use Time::HiRes ();
use ZeqTest::Fixtures ();

my ($port_file, $hits_file, $port) = (undef, undef, 0);
GetOptions('port-file=s' => \$port_file, 'hits-file=s' => \$hits_file,
           'port=i' => \$port)
    or die "usage: $0 --port-file FILE [--hits-file FILE] [--port N]\n";
die "usage: $0 --port-file FILE [--hits-file FILE] [--port N]\n"
    unless defined $port_file;

use constant MAX_BODY_IN_JSON => 64 * 1024;
use constant MAX_HEADER_BYTES => 64 * 1024;
use constant IO_TIMEOUT => 60;

my $JSON = JSON::PP->new->canonical(1)->ascii(1);

# WebSocket endpoints by last path segment (pulse: ticks, greet: a
# greeting). They answer under /ws/ and any folder below it (/ws/small/echo
# is the echo).
my %WS_ROUTES = (
    'echo'  => { pulse => 0 },
    'pulse' => { pulse => 1 },
    'greet' => { pulse => 0, greet => 'greetings from the backend' },
);
sub ws_route {
    my ($path) = @_;
    my ($name) = $path =~ m{^/ws/(?:[A-Za-z0-9_-]+/)*([A-Za-z0-9_-]+)$} or return undef;
    return $WS_ROUTES{$name};
}
use constant WS_GUID => '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
use constant WS_MAX_MESSAGE => 16 * 1024 * 1024;
use constant WS_PULSE_INTERVAL => 0.1;

my %ROUTES = (
    'POST /echo' => \&route_echo,
    'PUT /echo'  => \&route_echo,
    'GET /echo'  => \&route_echo,
    'GET /bytes' => \&route_bytes,
    'GET /gzip'  => \&route_gzip,
    'GET /status/204' => sub { { status => 204, headers => [] } },
    'GET /status/304' => sub { { status => 304, headers => [ETag => '"zeq"'] } },
    'GET /sse'   => \&route_sse,
    'GET /big'   => \&route_big,
    'GET /cut'   => \&route_cut,
);

my $listen = IO::Socket::INET->new(
    LocalAddr => '127.0.0.1', LocalPort => $port, Proto => 'tcp',
    Listen => 128, ReuseAddr => 1,
) or die "echo.pl: cannot listen on 127.0.0.1:$port: $!\n";

$SIG{CHLD} = sub { 1 while waitpid(-1, POSIX::WNOHANG()) > 0 };
$SIG{TERM} = $SIG{INT} = sub { exit 0 };

{
    my $tmp = "$port_file.tmp.$$";
    open my $fh, '>', $tmp or die "echo.pl: cannot write $tmp: $!\n";
    print {$fh} '127.0.0.1:' . $listen->sockport . "\n";
    close $fh;
    rename $tmp, $port_file or die "echo.pl: cannot write $port_file: $!\n";
}

while (1) {
    my $conn = $listen->accept;
    unless ($conn) {
        next if $!{EINTR};
        die "echo.pl: accept: $!\n";
    }
    my $pid = fork;
    if (!defined $pid) {
        warn "echo.pl: fork: $!\n";
        close $conn;
        next;
    }
    if ($pid == 0) {
        close $listen;
        $SIG{CHLD} = 'DEFAULT';
        # A write to a connection the proxy closed fails (and is recorded)
        # instead of killing the child.
        $SIG{PIPE} = 'IGNORE';
        eval { serve_connection($conn); 1 } or warn "echo.pl: $@";
        close $conn;
        POSIX::_exit(0);
    }
    close $conn;
}

# --- connection handling --------------------------------------------------

sub serve_connection {
    my ($c) = @_;
    binmode $c;
    my $buf = '';
    while (1) {
        my $req = read_request($c, \$buf) or return;
        record_hit($req);
        if (is_ws_upgrade($req) && (my $ws = ws_route($req->{path}))) {
            serve_websocket($c, $req, \$buf, $ws);
            return;
        }
        my $res = dispatch($req);
        my $keep = write_response($c, $req, $res);
        return unless $keep;
    }
}

sub fill {
    my ($c, $bufref) = @_;
    my $rin = '';
    vec($rin, fileno($c), 1) = 1;
    my $n = select(my $rout = $rin, undef, undef, IO_TIMEOUT);
    return 0 unless $n && $n > 0;
    my $got = sysread($c, $$bufref, 65536, length $$bufref);
    return $got ? $got : 0;
}

sub read_exact {
    my ($c, $bufref, $n) = @_;
    while (length($$bufref) < $n) {
        fill($c, $bufref) or die "short body\n";
    }
    return substr($$bufref, 0, $n, '');
}

sub read_line {
    my ($c, $bufref) = @_;
    while ($$bufref !~ /\n/) {
        die "line too long\n" if length($$bufref) > MAX_HEADER_BYTES;
        fill($c, $bufref) or die "connection closed in a line\n";
    }
    $$bufref =~ s/^([^\n]*)\n// or die;
    (my $line = $1) =~ s/\r$//;
    return $line;
}

# Returns { method, target, path, query, version, headers => [[name, value]..],
# h => {lcname => value}, body } or undef at the end of the connection.
sub read_request {
    my ($c, $bufref) = @_;
    while ($$bufref !~ /\r?\n\r?\n/) {
        return undef if length($$bufref) > MAX_HEADER_BYTES;
        fill($c, $bufref) or return undef;
    }
    my $start = read_line($c, $bufref);
    $start = read_line($c, $bufref) while $start eq '';
    my ($method, $target, $version) = split ' ', $start, 3;
    return undef unless $method && $target;
    my (@headers, %h);
    while ((my $line = read_line($c, $bufref)) ne '') {
        my ($name, $value) = $line =~ /^([^:]+):\s*(.*?)\s*$/ or next;
        push @headers, [$name, $value];
        my $lc = lc $name;
        $h{$lc} = exists $h{$lc} ? "$h{$lc}, $value" : $value;
    }
    my ($path, $query) = split /\?/, $target, 2;
    my $req = { method => $method, target => $target, path => $path,
                query => $query // '', version => $version // 'HTTP/1.0',
                headers => \@headers, h => \%h, body => '' };

    if (($h{expect} // '') =~ /100-continue/i) {
        print {$c} "HTTP/1.1 100 Continue\r\n\r\n";
    }
    if (($h{'transfer-encoding'} // '') =~ /chunked/i) {
        my $body = '';
        while (1) {
            my $size_line = read_line($c, $bufref);
            my ($hex) = $size_line =~ /^([0-9A-Fa-f]+)/ or die "bad chunk\n";
            my $size = hex $hex;
            if ($size == 0) {
                1 while read_line($c, $bufref) ne '';   # trailers
                last;
            }
            $body .= read_exact($c, $bufref, $size);
            read_exact($c, $bufref, 2);
        }
        $req->{body} = $body;
    }
    elsif (defined $h{'content-length'}) {
        my $len = $h{'content-length'};
        die "bad Content-Length\n" unless $len =~ /^\d+$/;
        $req->{body} = read_exact($c, $bufref, $len);
    }
    return $req;
}

sub record_hit {
    my ($req) = @_;
    return unless defined $hits_file;
    open my $fh, '>>', $hits_file or return;
    flock $fh, LOCK_EX;
    print {$fh} "$req->{method} $req->{target}\n";
    close $fh;
}

sub dispatch {
    my ($req) = @_;
    my $method = $req->{method} eq 'HEAD' ? 'GET' : $req->{method};
    my $route = $ROUTES{"$method $req->{path}"};
    return $route->($req) if $route;
    return json_response(404, { backend => 'not found', path => $req->{path} });
}

# Writes the response; returns true to keep the connection open.
sub write_response {
    my ($c, $req, $res) = @_;
    return write_stream($c, $req, $res) if $res->{stream};
    my $status = $res->{status};
    my @headers = @{ $res->{headers} || [] };
    my $body = $res->{body} // '';
    my $no_body = $status == 204 || $status == 304 || $status < 200;
    my $out = "HTTP/1.1 $status " . reason($status) . "\r\n";
    $out .= "Date: " . http_date() . "\r\n";
    while (my ($k, $v) = splice @headers, 0, 2) {
        $out .= "$k: $v\r\n";
    }
    $out .= "Content-Length: " . length($body) . "\r\n" unless $no_body;
    my $keep = lc($req->{h}{connection} // '') ne 'close'
        && $req->{version} eq 'HTTP/1.1';
    $out .= "Connection: close\r\n" unless $keep;
    $out .= "\r\n";
    $out .= $body unless $no_body || $req->{method} eq 'HEAD';
    print {$c} $out;
    return $keep;
}

# A streamed answer: the head, then $res->{stream}->($write) writes the
# body in parts (with $res->{length}: that Content-Length; else chunked).
# Returns false: the connection ends with the answer.
sub write_stream {
    my ($c, $req, $res) = @_;
    my @headers = @{ $res->{headers} || [] };
    my $out = "HTTP/1.1 $res->{status} " . reason($res->{status}) . "\r\n";
    $out .= "Date: " . http_date() . "\r\n";
    while (my ($k, $v) = splice @headers, 0, 2) {
        $out .= "$k: $v\r\n";
    }
    my $chunked = !defined $res->{length};
    $out .= $chunked ? "Transfer-Encoding: chunked\r\n" : "Content-Length: $res->{length}\r\n";
    $out .= "Connection: close\r\n\r\n";
    $c->autoflush(1);
    print {$c} $out;
    return 0 if $req->{method} eq 'HEAD';
    my $write = sub {
        my ($data) = @_;
        return 1 unless length $data;
        my $ok = print {$c} ($chunked ? sprintf('%x', length $data) . "\r\n$data\r\n" : $data);
        return $ok;
    };
    my $complete = $res->{stream}->($write);
    print {$c} "0\r\n\r\n" if $chunked && $complete;
    return 0;
}

sub reason {
    my %r = (100 => 'Continue', 200 => 'OK', 204 => 'No Content',
             304 => 'Not Modified', 400 => 'Bad Request', 404 => 'Not Found');
    return $r{ $_[0] } // 'Status';
}

sub http_date {
    my @t = gmtime;
    return POSIX::strftime('%a, %d %b %Y %H:%M:%S GMT', @t);
}

sub json_response {
    my ($status, $data, @headers) = @_;
    return { status => $status,
             headers => ['Content-Type' => 'application/json', @headers],
             body => $JSON->encode($data) };
}

# --- routes ---------------------------------------------------------------

sub route_echo {
    my ($req) = @_;
    my $body = $req->{body};
    my %headers = map { (lc $_->[0]) => $req->{h}{ lc $_->[0] } } @{ $req->{headers} };
    return json_response(200, {
        method           => $req->{method},
        contentLength    => $req->{h}{'content-length'},
        transferEncoding => $req->{h}{'transfer-encoding'},
        contentType      => $req->{h}{'content-type'},
        bodySha256       => sha256_hex($body),
        bodyLength       => length($body),
        body             => length($body) <= MAX_BODY_IN_JSON ? $body : undef,
        headers          => \%headers,
    });
}

sub route_bytes {
    my ($req) = @_;
    my ($n) = $req->{query} =~ /(?:^|&)n=(\d+)/;
    $n //= 0;
    return { status => 200,
             headers => ['Content-Type' => 'application/octet-stream'],
             body => ZeqTest::Fixtures::det_bytes($n, 'backend') };
}

sub query_n {
    my ($req, $name, $default) = @_;
    my ($v) = ($req->{query} // '') =~ /(?:^|&)\Q$name\E=(\d+)/;
    return $v // $default;
}

sub route_sse {
    my ($req) = @_;
    my $n = query_n($req, 'n', 20);
    my $ms = query_n($req, 'ms', 100);
    return { status => 200, headers => ['Content-Type' => 'text/event-stream',
                                        'Cache-Control' => 'no-cache'],
             stream => sub {
                 my ($write) = @_;
                 for my $i (0 .. $n - 1) {
                     Time::HiRes::sleep($ms / 1000) if $i > 0;
                     my $ev = sprintf '{"i":%d,"written":%.6f}', $i, Time::HiRes::time();
                     $write->("id: $i\nevent: tick\ndata: $ev\n\n") or return 0;
                 }
                 return 1;
             } };
}

# The marked pattern, 1 MiB at a time, up to n bytes (from offset 0).
sub write_marked {
    my ($write, $n) = @_;
    my $mib = 1024 * 1024;
    for (my ($i, $off) = (0, 0); $off < $n; $i++, $off += $mib) {
        my $block = ZeqTest::Fixtures::marked_block($i);
        my $len = $n - $off < $mib ? $n - $off : $mib;
        $write->(substr($block, 0, $len)) or return 0;
    }
    return 1;
}

sub route_big {
    my ($req) = @_;
    my $n = query_n($req, 'n', 0);
    return { status => 200, length => $n, headers => ['Content-Type' => 'application/octet-stream'],
             stream => sub { write_marked($_[0], $n) } };
}

sub route_cut {
    my ($req) = @_;
    my $n = query_n($req, 'n', 0);
    my $after = query_n($req, 'after', 0);
    return { status => 200, length => $n, headers => ['Content-Type' => 'application/octet-stream'],
             stream => sub { write_marked($_[0], $after); return 0 } };
}

sub route_gzip {
    my ($req) = @_;
    my $json = $JSON->encode({ compressed => JSON::PP::true, text => 'zeq ' x 64 });
    gzip(\$json => \my $gz) or die "gzip: $GzipError\n";
    return { status => 200,
             headers => ['Content-Type' => 'application/json',
                         'Content-Encoding' => 'gzip', 'Vary' => 'Accept-Encoding'],
             body => $gz };
}

# --- WebSockets (RFC 6455) ------------------------------------------------------

sub is_ws_upgrade {
    my ($req) = @_;
    return $req->{method} eq 'GET'
        && ($req->{h}{upgrade} // '') =~ /\bwebsocket\b/i
        && ($req->{h}{connection} // '') =~ /\bupgrade\b/i;
}

# One JSON line per event in HITSDIR/ws-ID.jsonl (see the top of the file).
sub ws_log_open {
    my ($req) = @_;
    return undef unless defined $hits_file;
    my ($id) = $req->{query} =~ /(?:^|&)conn=([A-Za-z0-9_-]{1,64})(?:&|$)/;
    my $file = catfile(dirname($hits_file), 'ws-' . ($id // 'none') . '.jsonl');
    open my $fh, '>>', $file or return undef;
    $fh->autoflush(1);
    return $fh;
}

sub ws_record {
    my ($log, %ev) = @_;
    return unless $log;
    flock $log, LOCK_EX;
    print {$log} $JSON->encode(\%ev), "\n";
    flock $log, LOCK_UN;
}

sub ws_frame {
    my ($opcode, $payload, $fin) = @_;
    $fin //= 1;
    my $len = length $payload;
    my $head = chr(($fin ? 0x80 : 0) | $opcode);
    if ($len < 126) {
        $head .= chr($len);
    }
    elsif ($len <= 0xffff) {
        $head .= chr(126) . pack('n', $len);
    }
    else {
        $head .= chr(127) . pack('Q>', $len);
    }
    return $head . $payload;
}

sub write_all {
    my ($c, $bytes) = @_;
    my $off = 0;
    while ($off < length $bytes) {
        my $n = syswrite($c, $bytes, length($bytes) - $off, $off);
        die "write: $!\n" unless defined $n;
        $off += $n;
    }
}

sub utf8_valid {
    my ($bytes) = @_;
    return eval { Encode::decode('UTF-8', $bytes, Encode::FB_CROAK()); 1 } ? 1 : 0;
}

sub serve_websocket {
    my ($c, $req, $bufref, $route) = @_;
    my $key = $req->{h}{'sec-websocket-key'} // '';
    if (($req->{h}{'sec-websocket-version'} // '') ne '13' || $key !~ /^[A-Za-z0-9+\/]{22}==$/) {
        write_response($c, { %$req, h => { %{ $req->{h} }, connection => 'close' } },
                       json_response(400, { backend => 'bad WebSocket handshake' },
                                     'Sec-WebSocket-Version' => '13'));
        return;
    }
    my $log = ws_log_open($req);
    my %headers = map { (lc $_->[0]) => $req->{h}{ lc $_->[0] } } @{ $req->{headers} };
    ws_record($log, ev => 'open', target => $req->{target}, path => $req->{path},
              headers => \%headers);

    my $accept = encode_base64(sha1($key . WS_GUID), '');
    my $out = "HTTP/1.1 101 Switching Protocols\r\n"
            . "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            . "Sec-WebSocket-Accept: $accept\r\n";
    if (defined(my $offer = $req->{h}{'sec-websocket-protocol'})) {
        my ($first) = split /\s*,\s*/, $offer;
        $out .= "Sec-WebSocket-Protocol: $first\r\n" if defined $first && length $first;
    }
    # Never a Sec-WebSocket-Extensions: no extension is negotiated. A
    # greeting goes in the same write as the 101.
    write_all($c, "$out\r\n" . (defined $route->{greet} ? ws_frame(0x1, $route->{greet}) : ''));

    # A failed write (the proxy closed the connection) ends the socket too.
    unless (eval { ws_loop($c, $log, $$bufref, $route); 1 }) {
        (my $why = $@ // 'unknown') =~ s/\s+$//;
        ws_record($log, ev => 'error', why => $why);
    }
    # Nothing is recorded after this.
    ws_record($log, ev => 'end');
    # Let the peer finish reading, then go.
    shutdown($c, 1);
    my $deadline = Time::HiRes::time() + 2;
    while (Time::HiRes::time() < $deadline) {
        my $rin = '';
        vec($rin, fileno($c), 1) = 1;
        last unless select(my $rout = $rin, undef, undef, $deadline - Time::HiRes::time()) > 0;
        my $junk;
        last unless sysread($c, $junk, 65536);
    }
}

# Reads frames until a close, an error or the end of the connection.
sub ws_loop {
    my ($c, $log, $buf, $route) = @_;
    my $pulse = $route->{pulse};
    my $tick = 0;
    my $next_tick = Time::HiRes::time() + WS_PULSE_INTERVAL;
    my ($msg_opcode, $msg, $msg_frames) = (0, '', 0);
    my $close_sent = 0;

    my $fail = sub {
        my ($code, $why) = @_;
        ws_record($log, ev => 'error', why => $why, code => $code);
        write_all($c, ws_frame(0x8, pack('n', $code))) unless $close_sent;
        $close_sent = 1;
    };

    CONN: while (1) {
        # Parse every complete frame in the buffer.
        my $pos = 0;
        while (1) {
            my $avail = length($buf) - $pos;
            last if $avail < 2;
            my ($b0, $b1) = unpack 'CC', substr($buf, $pos, 2);
            my $fin = $b0 & 0x80;
            my $rsv = $b0 & 0x70;
            my $opcode = $b0 & 0x0f;
            my $masked = $b1 & 0x80;
            my $len = $b1 & 0x7f;
            my $hlen = 2;
            if ($len == 126) {
                last if $avail < 4;
                $len = unpack 'n', substr($buf, $pos + 2, 2);
                $hlen = 4;
            }
            elsif ($len == 127) {
                last if $avail < 10;
                $len = unpack 'Q>', substr($buf, $pos + 2, 8);
                $hlen = 10;
            }
            if ($rsv) { $fail->(1002, 'reserved bits set (no extension negotiated)'); last CONN }
            if (!$masked) { $fail->(1002, 'unmasked frame from the client'); last CONN }
            if ($len > WS_MAX_MESSAGE) { $fail->(1009, 'frame too big'); last CONN }
            $hlen += 4;
            last if $avail < $hlen + $len;
            my $mask = substr($buf, $pos + $hlen - 4, 4);
            my $payload = substr($buf, $pos + $hlen, $len);
            $pos += $hlen + $len;
            $payload ^= substr($mask x (int($len / 4) + 1), 0, $len) if $len;

            if ($opcode >= 0x8) {
                if (!$fin || $len > 125) { $fail->(1002, 'bad control frame'); last CONN }
                if ($opcode == 0x9) {
                    ws_record($log, ev => 'ping', data => unpack('H*', $payload));
                    write_all($c, ws_frame(0xA, $payload)) unless $close_sent;
                }
                elsif ($opcode == 0xA) {
                    ws_record($log, ev => 'pong', data => unpack('H*', $payload));
                }
                elsif ($opcode == 0x8) {
                    my ($code, $reason) = (undef, '');
                    if ($len >= 2) {
                        $code = unpack 'n', $payload;
                        $reason = substr($payload, 2);
                    }
                    ws_record($log, ev => 'close', code => $code, reason => $reason);
                    write_all($c, ws_frame(0x8, $payload)) unless $close_sent;
                    $close_sent = 1;
                    last CONN;
                }
                else { $fail->(1002, "unknown control opcode $opcode"); last CONN }
                next;
            }
            if ($opcode == 0x0) {
                if (!$msg_opcode) { $fail->(1002, 'continuation without a message'); last CONN }
            }
            elsif ($opcode == 0x1 || $opcode == 0x2) {
                if ($msg_opcode) { $fail->(1002, 'new message inside a fragmented one'); last CONN }
                ($msg_opcode, $msg, $msg_frames) = ($opcode, '', 0);
            }
            else { $fail->(1002, "unknown data opcode $opcode"); last CONN }
            $msg .= $payload;
            $msg_frames++;
            if (length($msg) > WS_MAX_MESSAGE) { $fail->(1009, 'message too big'); last CONN }
            next unless $fin;

            my ($type, $data) = ($msg_opcode == 0x1 ? 'text' : 'binary', $msg);
            my $frames = $msg_frames;
            ($msg_opcode, $msg, $msg_frames) = (0, '', 0);
            my $utf8 = $type eq 'text' ? utf8_valid($data) : undef;
            ws_record($log, ev => 'message', type => $type, len => length($data),
                      sha256 => sha256_hex($data), head => unpack('H*', substr($data, 0, 16)),
                      frames => $frames, masked => 1,
                      (defined $utf8 ? (utf8 => $utf8) : ()));
            if ($type eq 'text' && !$utf8) { $fail->(1007, 'text message is not UTF-8'); last CONN }
            next if $close_sent;
            $close_sent = 1 if ws_reply($c, $type, $data, $log) eq 'close-sent';
        }
        substr($buf, 0, $pos, '') if $pos;

        # Wait for more bytes (or the next tick).
        my $timeout = IO_TIMEOUT;
        if ($pulse) {
            my $now = Time::HiRes::time();
            while ($now >= $next_tick) {
                $tick++;
                write_all($c, ws_frame(0x1, $JSON->encode({ tick => $tick, time => $now })))
                    unless $close_sent;
                $next_tick += WS_PULSE_INTERVAL;
            }
            $timeout = $next_tick - $now;
        }
        my $rin = '';
        vec($rin, fileno($c), 1) = 1;
        my $n = select(my $rout = $rin, undef, undef, $timeout);
        next CONN if $n == 0 && $pulse;
        if ($n < 0) {
            next CONN if $!{EINTR};
            last CONN;
        }
        if ($n == 0) {
            ws_record($log, ev => 'error', why => 'idle timeout');
            last CONN;
        }
        my $got = sysread($c, $buf, 65536, length $buf);
        unless ($got) {
            ws_record($log, ev => 'eof', pending => length($buf),
                      in_message => $msg_opcode ? 1 : 0);
            last CONN;
        }
    }
}

# The answer to a whole message: its echo, or what a command asks for.
# Returns 'close-sent' after sending a close, '' otherwise.
sub ws_reply {
    my ($c, $type, $data, $log) = @_;
    if ($type eq 'text' && $data eq 'fragment-me') {
        write_all($c, ws_frame(0x1, 'frag-one|', 0)
                    . ws_frame(0x9, 'between-1')
                    . ws_frame(0x0, 'frag-two|', 0)
                    . ws_frame(0xA, 'between-2')
                    . ws_frame(0x0, 'frag-three', 1));
    }
    elsif ($type eq 'text' && $data eq 'fragment-me-binary') {
        my $bytes = ZeqTest::Fixtures::det_bytes(70000, 'fragment');
        write_all($c, ws_frame(0x2, substr($bytes, 0, 100), 0)
                    . ws_frame(0x9, 'between-1')
                    . ws_frame(0x0, substr($bytes, 100, 65536), 0)
                    . ws_frame(0xA, 'between-2')
                    . ws_frame(0x0, substr($bytes, 65636), 1));
    }
    elsif ($type eq 'text' && $data =~ /^send-bytes (\d{1,8})$/) {
        write_all($c, ws_frame(0x2, ZeqTest::Fixtures::det_bytes($1, 'ws')));
    }
    elsif ($type eq 'text' && $data eq 'ping-me') {
        write_all($c, ws_frame(0x9, 'backend-ping'));
    }
    elsif ($type eq 'text' && $data eq 'close-me') {
        write_all($c, ws_frame(0x8, pack('n', 1001) . 'backend going away'));
        ws_record($log, ev => 'close-sent', code => 1001);
        return 'close-sent';
    }
    else {
        write_all($c, ws_frame($type eq 'text' ? 0x1 : 0x2, $data));
    }
    return '';
}
