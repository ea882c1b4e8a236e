package ZeqTest::WebSocket;
# The test suite's WebSocket client (RFC 6455 over a plain TCP socket),
# written from docs/PROTOCOL.md section 16 with CryptX (through ZeqTest's
# seal and open_envelope), independent of the module: the upgrade with
# ?e2e_session=, masked frames with 7, 16 and 64-bit lengths, fragments,
# control frames, frames read with a timeout, and the envelopes of
# messages: iv || tag || AES-256-GCM(type || message), type 0x01 text,
# 0x02 binary.
#
#   my $ws = ZeqTest::WebSocket->connect(path => '/ws/echo', session => $s);
#   $ws->send_message(text => "hello");       # sealed (session given)
#   my $m = $ws->read_message;                 # { type, data, frame, ... }
#
# Also the records t/backend/echo.pl keeps of each socket (ws-ID.jsonl in
# the hits directory, ID the conn query parameter).
use strict;
use warnings;

use Digest::SHA qw(sha1);
use File::Spec::Functions qw(catfile);
use HTTP::Headers ();
use IO::Socket::INET ();
use JSON::PP ();
use MIME::Base64 qw(encode_base64);
use Socket qw(IPPROTO_TCP TCP_NODELAY);
use Time::HiRes ();

use Crypt::PRNG qw(random_bytes);
use Exporter 'import';
use ZeqTest ();
use ZeqTest::Fixtures ();

our @EXPORT_OK = qw(
    ws_frame seal_message open_message new_conn_id
    backend_records wait_records records_at_end messages_of backend_saw
    text_bytes contains_plaintext server_pid_of children_of rss_kb
);

use constant GUID => '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
use constant {
    OP_CONT => 0x0, OP_TEXT => 0x1, OP_BINARY => 0x2,
    OP_CLOSE => 0x8, OP_PING => 0x9, OP_PONG => 0xA,
};
use constant { TYPE_TEXT => 0x01, TYPE_BINARY => 0x02 };
use constant DEFAULT_TIMEOUT => 10;

my $JSON = JSON::PP->new->canonical(1);

# --- envelopes of messages (PROTOCOL.md 16.2) ---------------------------------------

# The payload of the binary frame carrying a message: an envelope of
# type || message. $type: 'text', 'binary' or a type byte (number).
sub seal_message {
    my ($key, $type, $data) = @_;
    my $byte = $type eq 'text' ? TYPE_TEXT : $type eq 'binary' ? TYPE_BINARY : $type;
    return ZeqTest::seal($key, chr($byte) . ($data // ''));
}

# (type name or byte, message), or () when the envelope does not verify or
# holds no type byte.
sub open_message {
    my ($key, $payload) = @_;
    my $pt = ZeqTest::open_envelope($key, $payload);
    return () unless defined $pt && length $pt >= 1;
    my $byte = ord substr($pt, 0, 1);
    my $type = $byte == TYPE_TEXT ? 'text' : $byte == TYPE_BINARY ? 'binary' : $byte;
    return ($type, substr($pt, 1));
}

# --- frames ----------------------------------------------------------------------------

# A frame's bytes. Options: fin (1), rsv (0..7), mask (1: a random mask,
# a 4-byte string: that mask, 0: unmasked), len_bits (7, 16 or 64: force
# that length encoding when the length fits).
sub ws_frame {
    my ($opcode, $payload, %o) = @_;
    $payload //= '';
    my $fin = $o{fin} // 1;
    my $len = length $payload;
    my $mask = $o{mask} // 1;
    $mask = random_bytes(4) if $mask && length($mask) != 4;
    my $out = chr(($fin ? 0x80 : 0) | (($o{rsv} // 0) << 4) | $opcode);
    my $mbit = $mask ? 0x80 : 0;
    my $bits = $o{len_bits} // ($len < 126 ? 7 : $len <= 0xffff ? 16 : 64);
    if ($bits == 7) {
        $out .= chr($mbit | $len);
    }
    elsif ($bits == 16) {
        $out .= chr($mbit | 126) . pack('n', $len);
    }
    else {
        $out .= chr($mbit | 127) . pack('Q>', $len);
    }
    if ($mask) {
        $out .= $mask;
        $payload ^= substr($mask x (int($len / 4) + 1), 0, $len) if $len;
    }
    return $out . $payload;
}

# --- the connection ------------------------------------------------------------------------

sub new_conn_id { 't' . ZeqTest::random_hex(8) }

# Opens the socket and sends the upgrade. Arguments:
#   vhost (zeq_file), path (/ws/echo), conn (the conn parameter; a fresh
#   one by default, '' for none), query (more parameters, before
#   e2e_session), session (a handshake() result: e2e_session=its id, its
#   key seals and opens), session_id (e2e_session value instead; undef
#   for none), session_param ('e2e_session'), session_at (e2e_session's
#   index among the parameters: 0 first; last by default), key (instead of the
#   session's), extensions (Sec-WebSocket-Extensions), protocols
#   (Sec-WebSocket-Protocol), headers ([Name => value ...]), timeout.
# Returns the object; $ws->{status}, {h} (HTTP::Headers), {body} (when
# not 101), {accept_ok} (Sec-WebSocket-Accept verifies), {open} (101 and
# accept_ok), {target} (the request target sent). $ws->upgrade(%args)
# sends another upgrade on the same connection (after a refused one).
sub connect {
    my ($class, %a) = @_;
    my $vhost = $a{vhost} // 'zeq_file';
    my $hp = ZeqTest::hostport($vhost);
    my ($host, $port) = split /:/, $hp;
    my $sock = IO::Socket::INET->new(PeerAddr => $host, PeerPort => $port,
                                     Proto => 'tcp', Timeout => 30)
        or die "connect $hp: $!";
    binmode $sock;
    setsockopt($sock, IPPROTO_TCP, TCP_NODELAY, 1);
    my $self = bless {
        sock => $sock, buf => '', vhost => $vhost, hostport => $hp,
        session => $a{session},
        key => $a{key} // ($a{session} ? $a{session}{key} : undef),
        timeout => $a{timeout} // DEFAULT_TIMEOUT,
        controls => [],
        conn => exists $a{conn} ? $a{conn} : new_conn_id(),
    }, $class;
    $self->upgrade(%a);
    return $self;
}

sub sock { $_[0]{sock} }
sub conn { $_[0]{conn} }
sub key  { $_[0]{key} }

# Builds and sends the upgrade request on this socket, reads the answer.
sub upgrade {
    my ($self, %a) = @_;
    my $path = $a{path} // '/ws/echo';
    $self->{key} = $a{key} // $a{session}{key} if $a{key} || $a{session};
    my @q;
    push @q, "conn=$self->{conn}" if defined $self->{conn} && length $self->{conn};
    push @q, split /&/, $a{query} if defined $a{query} && length $a{query};
    my $sid = exists $a{session_id} ? $a{session_id}
            : $a{session} ? ($a{session}{id} // '') : undef;
    if (defined $sid) {
        my $p = ($a{session_param} // 'e2e_session') . "=$sid";
        splice @q, $a{session_at} // scalar(@q), 0, $p;
    }
    my $target = $path . (@q ? '?' . join('&', @q) : '');
    $self->{target} = $target;
    $self->{ws_key} = encode_base64(random_bytes(16), '');
    my @h = (
        Host => $self->{hostport},
        Upgrade => 'websocket',
        Connection => 'Upgrade',
        'Sec-WebSocket-Key' => $self->{ws_key},
        'Sec-WebSocket-Version' => 13,
    );
    push @h, 'Sec-WebSocket-Extensions' => $a{extensions} if defined $a{extensions};
    push @h, 'Sec-WebSocket-Protocol' => $a{protocols} if defined $a{protocols};
    push @h, @{ $a{headers} || [] };
    my $head = "GET $target HTTP/1.1\r\n";
    while (my ($k, $v) = splice @h, 0, 2) {
        $head .= "$k: $v\r\n";
    }
    $self->write_raw("$head\r\n");
    my $res = $self->read_http_response;
    @$self{qw(status h body http_ok)} = @$res{qw(status h body ok)};
    my $want = encode_base64(sha1($self->{ws_key} . GUID), '');
    $self->{accept_ok} = ($self->{h}->header('Sec-WebSocket-Accept') // '') eq $want ? 1 : 0;
    $self->{open} = $self->{status} == 101 && $self->{accept_ok} ? 1 : 0;
    return $self;
}

sub write_raw {
    my ($self, $bytes) = @_;
    my $off = 0;
    local $SIG{PIPE} = 'IGNORE';
    while ($off < length $bytes) {
        my $n = syswrite($self->{sock}, $bytes, length($bytes) - $off, $off);
        unless (defined $n) {
            $self->{write_error} = "$!";
            return 0;
        }
        $off += $n;
    }
    return 1;
}

# Reads more bytes into the buffer; 1, 0 at EOF, undef at the timeout.
sub fill {
    my ($self, $deadline) = @_;
    my $left = $deadline - Time::HiRes::time();
    return undef if $left <= 0;
    my $rin = '';
    vec($rin, fileno($self->{sock}), 1) = 1;
    my $n = select(my $rout = $rin, undef, undef, $left);
    return undef unless $n && $n > 0;
    my $got = sysread($self->{sock}, $self->{buf}, 262144, length $self->{buf});
    if (!$got) {
        $self->{eof} = 1;
        return 0;
    }
    return 1;
}

# Reads one HTTP/1.1 response: its head and, unless it is a 101, its body
# (Content-Length, chunked, or up to the end of the connection). Returns
# { status, h, body, ok }; the bytes after it (frames after a 101, the
# next response) stay in the buffer.
sub read_http_response {
    my ($self, %o) = @_;
    my $deadline = Time::HiRes::time() + ($o{timeout} // $self->{timeout});
    my $r = { status => 0, h => HTTP::Headers->new, body => '', ok => 0 };
    while ($self->{buf} !~ /\r\n\r\n/) {
        return $r unless $self->fill($deadline);
    }
    $self->{buf} =~ s/^(.*?)\r\n\r\n//s;
    my ($status_line, @lines) = split /\r\n/, $1;
    ($r->{status}) = ($status_line // '') =~ m{^HTTP/1\.[01] (\d{3})};
    $r->{status} //= 0;
    for (@lines) {
        my ($k, $v) = /^([^:]+):\s*(.*?)\s*$/ or next;
        $r->{h}->push_header($k => $v);
    }
    return { %$r, ok => 1 } if $r->{status} == 101;
    my $te = $r->{h}->header('Transfer-Encoding') // '';
    my $cl = $r->{h}->header('Content-Length');
    if ($te =~ /chunked/i) {
        my $body = '';
        while (1) {
            while ($self->{buf} !~ /\r\n/) {
                return $r unless $self->fill($deadline);
            }
            $self->{buf} =~ s/^([0-9a-fA-F]+)[^\r\n]*\r\n// or return $r;
            my $size = hex $1;
            if ($size == 0) {
                while ($self->{buf} !~ /^\r\n/ && $self->{buf} !~ /\r\n\r\n/) {
                    return $r unless $self->fill($deadline);
                }
                $self->{buf} =~ s/^(?:[^\r\n]+\r\n)*\r\n//;
                last;
            }
            while (length($self->{buf}) < $size + 2) {
                return $r unless $self->fill($deadline);
            }
            $body .= substr($self->{buf}, 0, $size, '');
            substr($self->{buf}, 0, 2, '');
        }
        $r->{body} = $body;
    }
    elsif (defined $cl) {
        while (length($self->{buf}) < $cl) {
            return $r unless $self->fill($deadline);
        }
        $r->{body} = substr($self->{buf}, 0, $cl, '');
    }
    elsif ($r->{status} != 204 && $r->{status} != 304) {
        1 while $self->fill($deadline);
        $r->{body} = $self->{buf};
        $self->{buf} = '';
    }
    $r->{ok} = 1;
    return $r;
}

# Sends a plain HTTP request on this socket (after a refused upgrade) and
# reads the answer: { status, h, body, ok }.
sub http_request {
    my ($self, $head, $body) = @_;
    $head =~ s/\r?\n/\r\n/g;
    $head =~ s/(\r\n)*$/\r\n\r\n/;
    $self->write_raw($head . ($body // ''));
    return $self->read_http_response;
}

# Reads one frame: { fin, rsv, opcode, masked, len, len_bits, payload
# (unmasked), header_len, raw (the frame's bytes as received) };
# { eof => 1 } when the connection ended, { timeout => 1 } when nothing
# came in time.
sub read_frame {
    my ($self, $timeout) = @_;
    my $deadline = Time::HiRes::time() + ($timeout // $self->{timeout});
    while (1) {
        my $f = $self->_parse_frame;
        return $f if $f;
        my $got = $self->fill($deadline);
        return { eof => 1, pending => length $self->{buf} } if defined $got && !$got;
        return { timeout => 1 } unless defined $got;
    }
}

sub _parse_frame {
    my ($self) = @_;
    my $avail = length $self->{buf};
    return undef if $avail < 2;
    my ($b0, $b1) = unpack 'CC', $self->{buf};
    my $len = $b1 & 0x7f;
    my ($hlen, $bits) = (2, 7);
    if ($len == 126) {
        return undef if $avail < 4;
        $len = unpack 'n', substr($self->{buf}, 2, 2);
        ($hlen, $bits) = (4, 16);
    }
    elsif ($len == 127) {
        return undef if $avail < 10;
        $len = unpack 'Q>', substr($self->{buf}, 2, 8);
        ($hlen, $bits) = (10, 64);
    }
    my $masked = $b1 & 0x80 ? 1 : 0;
    $hlen += 4 if $masked;
    return undef if $avail < $hlen + $len;
    my $raw = substr($self->{buf}, 0, $hlen + $len, '');
    my $payload = substr($raw, $hlen);
    if ($masked) {
        my $mask = substr($raw, $hlen - 4, 4);
        $payload ^= substr($mask x (int($len / 4) + 1), 0, $len) if $len;
    }
    return { fin => ($b0 & 0x80) ? 1 : 0, rsv => ($b0 >> 4) & 7, opcode => $b0 & 0x0f,
             masked => $masked, len => $len, len_bits => $bits, payload => $payload,
             header_len => $hlen, raw => $raw };
}

# Reads frames until a data frame (or EOF, timeout, a close). Control
# frames on the way are pushed to $ws->{controls} (and a close ends the
# wait). With a key, checks what PROTOCOL.md 16.2 asks of a server frame
# and opens it. Returns
#   { kind => 'message', frame, type ('text'|'binary'|byte), data,
#     sealed (1: an opcode 0x2 frame, FIN set, no RSV, unmasked, whose
#     envelope verified), plain_frame (opcode 0x1/0x2 data without a key) }
#   { kind => 'close', frame, code, reason }
#   { kind => 'eof' } or { kind => 'timeout' }.
sub read_message {
    my ($self, $timeout) = @_;
    my $deadline = Time::HiRes::time() + ($timeout // $self->{timeout});
    while (1) {
        my $f = $self->read_frame(max(0.001, $deadline - Time::HiRes::time()));
        return { kind => 'eof' } if $f->{eof};
        return { kind => 'timeout' } if $f->{timeout};
        if ($f->{opcode} >= 0x8) {
            push @{ $self->{controls} }, $f;
            if ($f->{opcode} == OP_CLOSE) {
                my ($code, $reason) = (undef, '');
                ($code, $reason) = (unpack('n', $f->{payload}), substr($f->{payload}, 2))
                    if $f->{len} >= 2;
                return { kind => 'close', frame => $f, code => $code, reason => $reason };
            }
            next;
        }
        my $m = { kind => 'message', frame => $f, sealed => 0 };
        if (defined $self->{key}) {
            my ($type, $data) = open_message($self->{key}, $f->{payload});
            $m->{type} = $type;
            $m->{data} = $data;
            $m->{sealed} = ($f->{opcode} == OP_BINARY && $f->{fin} && !$f->{rsv}
                            && !$f->{masked} && defined $type) ? 1 : 0;
        }
        else {
            $m->{type} = $f->{opcode} == OP_TEXT ? 'text' : $f->{opcode} == OP_BINARY ? 'binary'
                       : $f->{opcode};
            $m->{data} = $f->{payload};
        }
        return $m;
    }
}

sub max { $_[0] > $_[1] ? $_[0] : $_[1] }

# Control frames read so far (and forgets them): list of frames.
sub take_controls {
    my ($self) = @_;
    my @c = @{ $self->{controls} };
    $self->{controls} = [];
    return @c;
}

# Sends a message. Sealed into one binary frame when the socket has a key
# (unless plain => 1), as an ordinary text/binary frame otherwise.
# Options: fragments => [sizes...] splits the frame payload into frames of
# these sizes (the rest in a last frame), between => sub { } runs after
# each fragment but the last (e.g. to send a ping), key => another key,
# type_byte => a raw type byte to seal, opcode => the first frame's opcode.
# Returns the payload sent (the envelope when sealed).
sub send_message {
    my ($self, $type, $data, %o) = @_;
    my $key = $o{key} // $self->{key};
    my ($opcode, $payload);
    if (defined $key && !$o{plain}) {
        $payload = seal_message($key, $o{type_byte} // $type, $data);
        ZeqTest::record_plaintext($data);
        $opcode = OP_BINARY;
    }
    else {
        $payload = $data;
        $opcode = $type eq 'text' ? OP_TEXT : OP_BINARY;
    }
    $opcode = $o{opcode} if defined $o{opcode};
    $self->send_payload($opcode, $payload, %o);
    return $payload;
}

# Sends payload as one frame or as fragments (see send_message).
sub send_payload {
    my ($self, $opcode, $payload, %o) = @_;
    my @sizes = @{ $o{fragments} || [] };
    unless (@sizes) {
        return $self->write_raw(ws_frame($opcode, $payload, %o));
    }
    my $off = 0;
    my $first = 1;
    my @parts;
    for my $n (@sizes) {
        push @parts, substr($payload, $off, $n);
        $off += $n;
    }
    push @parts, substr($payload, $off) if $off < length $payload || !@parts;
    for my $i (0 .. $#parts) {
        my $last = $i == $#parts;
        $self->write_raw(ws_frame($first ? $opcode : OP_CONT, $parts[$i], %o, fin => $last ? 1 : 0))
            or return 0;
        $first = 0;
        $o{between}->($i) if $o{between} && !$last;
    }
    return 1;
}

sub send_ping  { $_[0]->write_raw(ws_frame(OP_PING, $_[1])) }
sub send_pong  { $_[0]->write_raw(ws_frame(OP_PONG, $_[1])) }
sub send_close {
    my ($self, $code, $reason) = @_;
    return $self->write_raw(ws_frame(OP_CLOSE, defined $code ? pack('n', $code) . ($reason // '') : ''));
}

# Waits for the connection to end (EOF); true when it did in time.
# Frames that still come are kept in $ws->{after_close}.
sub wait_eof {
    my ($self, $timeout) = @_;
    my $deadline = Time::HiRes::time() + ($timeout // $self->{timeout});
    while (1) {
        my $f = $self->read_frame(max(0.001, $deadline - Time::HiRes::time()));
        return 1 if $f->{eof};
        return 0 if $f->{timeout};
        push @{ $self->{after_close} }, $f;
    }
}

sub close_socket {
    my ($self) = @_;
    close $self->{sock} if $self->{sock};
    delete $self->{sock};
}

sub DESTROY { $_[0]->close_socket }

# The port of this connection's client side (to find the server's child).
sub local_port { $_[0]{sock}->sockport }

# --- the backend's records -----------------------------------------------------------------

sub records_file { catfile(ZeqTest::Fixtures::hits_dir(), 'ws-' . $_[0] . '.jsonl') }

# The events the backend recorded for a conn id (a list of hashes).
sub backend_records {
    my ($conn) = @_;
    open my $fh, '<', records_file($conn) or return ();
    my @ev;
    while (my $line = <$fh>) {
        my $e = eval { $JSON->decode($line) } or next;
        push @ev, $e;
    }
    close $fh;
    return @ev;
}

# Polls the records until $cond->(@events) is true or the timeout passes;
# returns the events last read.
sub wait_records {
    my ($conn, $cond, $timeout) = @_;
    my $deadline = Time::HiRes::time() + ($timeout // 5);
    while (1) {
        my @ev = backend_records($conn);
        return @ev if $cond->(@ev) || Time::HiRes::time() >= $deadline;
        Time::HiRes::sleep(0.02);
    }
}

# The backend's records of conn once the socket ended there (an "end"
# event), or what it had after the timeout.
sub records_at_end {
    my ($conn, $timeout) = @_;
    return wait_records($conn, sub { grep { $_->{ev} eq 'end' } @_ }, $timeout);
}

sub messages_of { grep { $_->{ev} eq 'message' } @_ }

# True when the backend saw anything of conn: a request line in its hits
# file or a WebSocket record.
sub backend_saw {
    my ($conn) = @_;
    return 1 if -e records_file($conn);
    open my $fh, '<', catfile(ZeqTest::Fixtures::hits_dir(), 'backend.log') or return 0;
    while (my $line = <$fh>) {
        return 1 if index($line, "conn=$conn") >= 0;
    }
    close $fh;
    return 0;
}

# --- test data -------------------------------------------------------------------------------

# Exactly n bytes of valid UTF-8 text with multi-byte characters.
sub text_bytes {
    my ($n, $seed) = @_;
    my $unit = "$seed: zeq \xc3\xbc \xe2\x82\xac \xf0\x9d\x84\x9e | ";
    my $s = substr($unit x (int($n / length($unit)) + 1), 0, $n);
    # Do not end inside a character; pad with ASCII.
    while (length $s) {
        my $copy = $s;
        last if utf8::decode($copy);
        chop $s;
    }
    return $s . ('.' x ($n - length $s));
}

# True when payload contains (the first 32 bytes of) a non-empty plaintext.
sub contains_plaintext {
    my ($payload, $plain) = @_;
    return 0 unless defined $plain && length $plain >= 4;
    return index($payload, substr($plain, 0, 32)) >= 0 ? 1 : 0;
}

# --- the server's child serving a connection ------------------------------------------------

# The pid of the process that holds the server's end of the TCP connection
# from local port cport to server port sport (from /proc/net/tcp{,6} and
# the processes' open files), or undef.
sub server_pid_of {
    my ($cport, $sport, @candidates) = @_;
    my %inodes;
    for my $table ('/proc/net/tcp', '/proc/net/tcp6') {
        open my $fh, '<', $table or next;
        <$fh>;
        while (my $line = <$fh>) {
            my @f = split ' ', $line;
            my ($lport) = $f[1] =~ /:([0-9A-F]{4})$/ or next;
            my ($rport) = $f[2] =~ /:([0-9A-F]{4})$/ or next;
            $inodes{ $f[9] } = 1 if hex($lport) == $sport && hex($rport) == $cport && $f[9];
        }
        close $fh;
    }
    return undef unless %inodes;
    for my $pid (@candidates) {
        opendir my $dh, "/proc/$pid/fd" or next;
        for my $fd (grep { /^\d+$/ } readdir $dh) {
            my $target = readlink "/proc/$pid/fd/$fd" or next;
            my ($inode) = $target =~ /^socket:\[(\d+)\]$/ or next;
            return $pid if $inodes{$inode};
        }
        closedir $dh;
    }
    return undef;
}

# The children of a pid (from /proc/PID/stat).
sub children_of {
    my ($ppid) = @_;
    my @kids;
    opendir my $dh, '/proc' or return ();
    for my $pid (grep { /^\d+$/ } readdir $dh) {
        open my $fh, '<', "/proc/$pid/stat" or next;
        my $stat = <$fh> // '';
        close $fh;
        # pid (comm) state ppid ...: comm may hold spaces and parentheses.
        my ($parent) = $stat =~ /\)\s+\S+\s+(\d+)/ or next;
        push @kids, $pid if $parent == $ppid;
    }
    closedir $dh;
    return sort { $a <=> $b } @kids;
}

# VmRSS of a process in kB, or undef.
sub rss_kb {
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/status" or return undef;
    while (my $line = <$fh>) {
        return $1 if $line =~ /^VmRSS:\s+(\d+)\s+kB/;
    }
    return undef;
}

1;
