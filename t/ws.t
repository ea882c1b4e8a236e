# Encrypted WebSockets (docs/PROTOCOL.md section 16) through both proxies
# (/ws/: mod_proxy_http with upgrade=websocket, /wst/: mod_proxy_wstunnel)
# to t/backend/echo.pl, with the independent client of
# t/lib/ZeqTest/WebSocket.pm. The backend records every message it gets,
# so each test checks both ends: the backend receives the exact plaintext
# of the right type in one frame, the client receives nothing but binary
# frames whose envelopes verify, and after a refused frame nothing more
# reaches the backend.
use strict;
use warnings;

use FindBin ();
use lib "$FindBin::Bin/lib";

use Apache::Test;
use Apache::TestUtil;
use Digest::SHA qw(sha256_hex);
use File::Spec::Functions qw(catfile);
use Time::HiRes ();
use ZeqTest;
use ZeqTest::WebSocket qw(
    ws_frame seal_message new_conn_id wait_records records_at_end messages_of backend_saw
    text_bytes contains_plaintext server_pid_of children_of rss_kb
);

use constant MiB => 1024 * 1024;

my $CE = ZeqTest::CHECK_ERROR_TESTS;
my @PATHS = (['/ws/', 'mod_proxy_http'], ['/wst/', 'mod_proxy_wstunnel']);
# Around every length encoding, on the wire (envelope = 29 + n bytes) and
# at the backend (n bytes): 96/97 and 65506/65507 put the envelope at
# 125/126 and 65535/65536 bytes.
my @SIZES = (0, 96, 97, 125, 126, 65506, 65507, 65535, 65536, MiB);
my @BAD_1008 = ('a flipped ciphertext bit', 'a flipped tag bit', 'another session\'s key',
                'a 28-byte envelope (no type byte)', 'type byte 0x03',
                'a plaintext text frame', 'a short binary frame (10 bytes)',
                'a tampered fragmented message');
my @BAD_1002 = ('a reserved bit set', 'a continuation without a message',
                'a fragmented ping', 'a ping of 126 bytes', 'an unmasked frame',
                'a new message inside a fragmented one');

my $per_path = 5                  # open
    + 3                           # greeting
    + 2 * @SIZES * 4              # sizes
    + 6 + 6 + 4 + 4 + 2           # client fragments
    + 4 + 4                       # backend fragments
    + 8                           # ping / pong
    + 3 + 2                       # closes
    + @BAD_1008 * 4 + 1           # 1008
    + @BAD_1002 * 4               # 1002
    + 9 + 6 + 2                   # 1009
    + 4                           # pulse
    + 6                           # plaintext socket
    + 4;                          # unknown session
plan tests => @PATHS * $per_path
    + 10                          # e2e_session removed
    + 2 * ($CE + 1) + 1 + ($CE + 1)   # 401s
    + ($CE + 1)                   # 403
    + ($CE + 1) + 1               # 503
    + 6                           # keep-alive after a refused upgrade
    + 1                           # mod_proxy_wstunnel really served /wst/
    + 4,                          # memory
    need_lwp;

my $s = handshake(vhost => 'zeq_file');
my $other = handshake(vhost => 'zeq_file');
my $key = $s->{key} // ("\0" x 32);

# --- helpers ---------------------------------------------------------------------------

sub frame_desc {
    my ($m) = @_;
    return $m->{kind} unless $m->{kind} eq 'message';
    my $f = $m->{frame};
    return sprintf('opcode 0x%x fin %d rsv %d masked %d %s', $f->{opcode}, $f->{fin}, $f->{rsv},
                   $f->{masked}, defined $m->{type} ? 'verifies' : 'does not verify');
}
use constant SEALED => 'opcode 0x2 fin 1 rsv 0 masked 0 verifies';

# Three tests on a message read from the server: one sealed binary frame,
# the expected type and bytes, an envelope of 29 + n bytes in which the
# plaintext does not appear.
sub check_sealed {
    my ($m, $type, $data, $what) = @_;
    ok t_cmp(frame_desc($m), SEALED, "$what: one binary frame (FIN, unmasked) whose envelope verifies");
    ok t_cmp(($m->{type} // 'none') . ' ' . digest_of($m->{data}), "$type " . digest_of($data),
             "$what: it opens to the $type message");
    my $payload = $m->{frame} ? $m->{frame}{payload} : '';
    ok t_cmp(length($payload) . ' bytes, plaintext ' . (contains_plaintext($payload, $data)
                                                        ? 'inside' : 'absent'),
             (29 + length $data) . ' bytes, plaintext absent',
             "$what: envelope of 29 + n bytes, the plaintext is not on the wire");
}

# What the backend recorded of a message, and what it should have.
sub rec_desc {
    my ($r) = @_;
    return 'nothing' unless $r;
    return join ' ', $r->{type}, $r->{len}, substr($r->{sha256}, 0, 16), "frames $r->{frames}";
}
sub want_desc {
    my ($type, $data) = @_;
    return join ' ', $type, length($data), substr(sha256_hex($data), 0, 16), 'frames 1';
}

# Waits until the backend recorded n messages on conn; returns its records.
sub wait_messages {
    my ($conn, $n, $timeout) = @_;
    return wait_records($conn, sub { messages_of(@_) >= $n }, $timeout // 10);
}

sub connect_ws { ZeqTest::WebSocket->connect(session => $s, @_) }

# Sends a message and reads the next one back (control frames on the way
# are in $ws->{controls}).
sub roundtrip {
    my ($ws, $type, $data, %o) = @_;
    $ws->send_message($type, $data, %o);
    return $ws->read_message($o{timeout});
}

# The backend's socket in short: open, message:LEN..., end.
sub ev_summary {
    return join ',', map { $_->{ev} eq 'message' ? "message:$_->{len}" : $_->{ev} }
                     grep { $_->{ev} =~ /^(?:open|message|end)$/ } @_;
}

sub close_desc {
    my ($m) = @_;
    return $m->{kind} unless $m->{kind} eq 'close';
    return 'close ' . unpack('H*', $m->{frame}{raw});
}
sub close_frame_hex { '8802' . unpack('H*', pack('n', $_[0])) }

# --- per proxy path ------------------------------------------------------------------------

for my $p (@PATHS) {
    my ($prefix, $via) = @$p;
    my $echo = "${prefix}echo";

    # --- open: 101, no extension, the subprotocol, the backend's view ----------------------
    {
        my $ws = connect_ws(path => $echo, extensions => 'permessage-deflate; client_max_window_bits',
                            protocols => 'zeq.test, other');
        ok t_cmp("$ws->{status} $ws->{accept_ok}", '101 1',
                 "$via: upgrade with a valid session: 101 and a correct Sec-WebSocket-Accept");
        ok t_cmp($ws->{h}->header('Sec-WebSocket-Extensions'), undef,
                 "$via: permessage-deflate offered: no extension negotiated");
        ok t_cmp($ws->{h}->header('Sec-WebSocket-Protocol'), 'zeq.test',
                 "$via: the backend's Sec-WebSocket-Protocol reaches the client");
        $ws->send_close(1000);
        $ws->wait_eof(5);
        my ($open) = grep { $_->{ev} eq 'open' } records_at_end($ws->conn);
        ok t_cmp($open ? $open->{target} : 'no upgrade', '/ws/echo?conn=' . $ws->conn,
                 "$via: the backend's request target has no e2e_session");
        ok t_cmp(join(',', grep { /^sec-websocket-(?:extensions|protocol)$/ } sort keys %{ $open->{headers} || {} }),
                 'sec-websocket-protocol',
                 "$via: the backend saw Sec-WebSocket-Protocol but no Sec-WebSocket-Extensions");
    }

    # --- a message right behind the backend's 101, in the same write -------------------------
    {
        my $ws = connect_ws(path => "${prefix}greet");
        check_sealed($ws->read_message, 'text', 'greetings from the backend',
                     "$via: a message in the same packet as the backend's 101");
        $ws->send_close(1000);
    }

    # --- text and binary of every size, both ways ----------------------------------------------
    {
        my $ws = connect_ws(path => $echo);
        my @sent;
        for my $type ('text', 'binary') {
            for my $n (@SIZES) {
                my $data = $type eq 'text' ? text_bytes($n, "$via $n") : det_bytes($n, "ws $via $n");
                push @sent, [$type, $data];
                my $m = roundtrip($ws, $type, $data, timeout => 30);
                check_sealed($m, $type, $data, "$via: $type of $n bytes");
            }
        }
        my @msgs = messages_of(wait_messages($ws->conn, scalar @sent));
        for my $i (0 .. $#sent) {
            my ($type, $data) = @{ $sent[$i] };
            ok t_cmp(rec_desc($msgs[$i]), want_desc($type, $data),
                     "$via: the backend got the exact $type message of " . length($data) . ' bytes in one frame');
        }
        $ws->send_close(1000);
    }

    # --- fragmented client messages, control frames between the fragments ----------------------
    for my $case (['text', text_bytes(300, "$via fragments"), [10, 20, 50]],
                  ['binary', det_bytes(200_000, "$via fragments"), [1, 70_000, 126]]) {
        my ($type, $data, $sizes) = @$case;
        my $what = "$via: $type of " . length($data) . ' bytes in ' . (@$sizes + 1) . ' fragments';
        my $ws = connect_ws(path => $echo);
        my $m = roundtrip($ws, $type, $data, fragments => $sizes,
                          between => sub { $ws->send_ping("f$_[0]") });
        check_sealed($m, $type, $data, $what);
        ok t_cmp(join(',', map { sprintf '0x%x:%s', $_->{opcode}, $_->{payload} } $ws->take_controls),
                 join(',', map { "0xa:f$_" } 0 .. $#$sizes),
                 "$what: the pings between the fragments were answered, in order, before the echo");
        my @ev = wait_messages($ws->conn, 1);
        ok t_cmp(rec_desc((messages_of(@ev))[0]), want_desc($type, $data),
                 "$what: the backend got one frame with the exact message");
        ok t_cmp(join(',', map { $_->{ev} eq 'ping' ? pack('H*', $_->{data}) : $_->{ev} }
                           grep { $_->{ev} =~ /^(?:ping|message)$/ } @ev),
                 join(',', (map { "f$_" } 0 .. $#$sizes), 'message'),
                 "$what: the pings reached the backend before the message");
        $ws->send_close(1000);
    }
    {
        my $data = text_bytes(40, "$via empty");
        my $ws = connect_ws(path => $echo);
        my $m = roundtrip($ws, text => $data, fragments => [0, 0, 5, 0]);
        check_sealed($m, 'text', $data, "$via: a message with empty fragments");
        ok t_cmp(rec_desc((messages_of(wait_messages($ws->conn, 1)))[0]), want_desc('text', $data),
                 "$via: empty fragments: the backend got the exact message");
        $ws->send_close(1000);
    }
    {
        # One frame (64-bit length) written a few bytes at a time.
        my $data = det_bytes(70_000, "$via trickle");
        my $ws = connect_ws(path => $echo);
        my $frame = ws_frame(0x2, seal_message($key, binary => $data));
        my @pieces = ((map { substr($frame, $_, 1) } 0 .. 13), substr($frame, 14, 1000),
                      substr($frame, 1014, 30_000), substr($frame, 31_014));
        for my $piece (@pieces) {
            $ws->write_raw($piece);
            Time::HiRes::sleep(0.01);
        }
        my $m = $ws->read_message;
        check_sealed($m, 'binary', $data, "$via: a frame written in 17 pieces");
        ok t_cmp(rec_desc((messages_of(wait_messages($ws->conn, 1)))[0]), want_desc('binary', $data),
                 "$via: a frame written in pieces: the backend got the exact message");
        $ws->send_close(1000);
    }
    {
        # 50 frames in one write: 50 sealed echoes in order.
        my $ws = connect_ws(path => $echo);
        my @data = map { text_bytes(20 + $_, "$via pipelined $_") } 1 .. 50;
        $ws->write_raw(join '', map { ws_frame(0x2, seal_message($key, text => $_)) } @data);
        my @got = map { $ws->read_message } 1 .. 50;
        ok t_cmp(join(',', map { $_->{kind} eq 'message' && frame_desc($_) eq SEALED ? $_->{data} : '?' } @got),
                 join(',', @data), "$via: 50 frames in one write: 50 sealed echoes in order");
        my @msgs = messages_of(wait_messages($ws->conn, 50));
        ok t_cmp(join(',', map { $_->{sha256} } @msgs), join(',', map { sha256_hex($_) } @data),
                 "$via: 50 frames in one write: the backend got the 50 messages in order");
        $ws->send_close(1000);
    }

    # --- the backend's fragmented answers ------------------------------------------------------------
    for my $case (['fragment-me', 'text', 'frag-one|frag-two|frag-three'],
                  ['fragment-me-binary', 'binary', det_bytes(70_000, 'fragment')]) {
        my ($cmd, $type, $data) = @$case;
        my $ws = connect_ws(path => $echo);
        my $m = roundtrip($ws, text => $cmd);
        ok t_cmp(join(',', map { unpack 'H*', $_->{raw} } $ws->take_controls),
                 join(',', unpack('H*', "\x89\x09between-1"), unpack('H*', "\x8a\x09between-2")),
                 "$via: backend's fragmented $type message: its ping and pong first, unchanged");
        check_sealed($m, $type, $data, "$via: backend's fragmented $type message");
        $ws->send_close(1000);
    }

    # --- ping and pong -------------------------------------------------------------------------
    {
        my $ws = connect_ws(path => $echo);
        my $p125 = 'p' x 125;
        $ws->send_ping('are you there?');
        $ws->send_ping('');
        $ws->send_ping($p125);
        my $m = roundtrip($ws, text => 'after the pings');
        my @pongs = $ws->take_controls;
        ok t_cmp(join(',', map { unpack 'H*', $_->{raw} } @pongs),
                 join(',', map { unpack 'H*', $_ } "\x8a\x0eare you there?", "\x8a\x00", "\x8a\x7d$p125"),
                 "$via: pings of 14, 0 and 125 bytes: pongs with the same payloads, unmasked, unchanged");
        ok t_cmp($m->{data}, 'after the pings', "$via: the echo after the pings");
        $ws->send_pong('unsolicited');
        my $m2 = roundtrip($ws, text => 'ping-me', timeout => 0.5);
        my ($ping) = $ws->take_controls;
        ok t_cmp($ping ? unpack('H*', $ping->{raw}) : 'none', unpack('H*', "\x89\x0cbackend-ping"),
                 "$via: the backend's ping reaches the client unchanged");
        ok t_cmp($m2->{kind}, 'timeout', "$via: ping-me: nothing but the ping came");
        $ws->send_pong('backend-ping');
        my $m3 = roundtrip($ws, binary => 'sync');
        ok t_cmp(frame_desc($m3) . ' ' . ($m3->{data} // ''), SEALED . ' sync',
                 "$via: the socket still echoes after the control frames");
        my @ev = wait_messages($ws->conn, 3);
        my @ctl = map { "$_->{ev}:" . pack('H*', $_->{data}) } grep { $_->{ev} =~ /^p[io]ng$/ } @ev;
        ok t_cmp(join(',', map { $_ // 'none' } @ctl[0 .. 2]), "ping:are you there?,ping:,ping:$p125",
                 "$via: the pings reached the backend unchanged");
        ok t_cmp($ctl[3] // 'none', 'pong:unsolicited', "$via: an unsolicited pong reached the backend");
        ok t_cmp($ctl[4] // 'none', 'pong:backend-ping', "$via: the answer to the backend's ping reached it");
        $ws->send_close(1000);
    }

    # --- closes ----------------------------------------------------------------------------------------
    {
        my $ws = connect_ws(path => $echo);
        $ws->send_close(1000, 'bye');
        my $m = $ws->read_message;
        ok t_cmp(close_desc($m), 'close ' . unpack('H*', "\x88\x05\x03\xe8bye"),
                 "$via: close 1000 \"bye\" comes back unchanged");
        ok t_cmp($ws->wait_eof(5), 1, "$via: then the connection ends");
        my ($c) = grep { $_->{ev} eq 'close' } records_at_end($ws->conn);
        ok t_cmp($c ? "$c->{code} $c->{reason}" : 'none', '1000 bye', "$via: the backend got close 1000 \"bye\"");
    }
    {
        my $ws = connect_ws(path => $echo);
        my $m = roundtrip($ws, text => 'close-me');
        ok t_cmp(close_desc($m), 'close ' . unpack('H*', "\x88\x14\x03\xe9backend going away"),
                 "$via: the backend's close 1001 reaches the client unchanged");
        $ws->send_close(1001);
        ok t_cmp($ws->wait_eof(5), 1, "$via: after the closing handshake the connection ends");
    }

    # --- 1008: frames that must not reach the backend ------------------------------------------------
    for my $i (0 .. $#BAD_1008) {
        my $what = "$via: $BAD_1008[$i]";
        my $mark = log_mark();
        my $ws = connect_ws(path => $echo);
        my $m0 = roundtrip($ws, text => 'before');
        ok t_cmp(($m0->{data} // '') . ' ' . frame_desc($m0), 'before ' . SEALED,
                 "$what: a good message first");
        my $env = seal_message($key, text => 'must not arrive');
        if ($i == 0) { substr($env, 30, 1) ^= "\x01"; $ws->send_payload(0x2, $env) }
        elsif ($i == 1) { substr($env, 12, 1) ^= "\x80"; $ws->send_payload(0x2, $env) }
        elsif ($i == 2) { $ws->send_message(text => 'must not arrive', key => $other->{key} // ("\1" x 32)) }
        elsif ($i == 3) { $ws->send_payload(0x2, ZeqTest::seal($key, '')) }
        elsif ($i == 4) { $ws->send_payload(0x2, ZeqTest::seal($key, "\x03must not arrive")) }
        elsif ($i == 5) { $ws->send_message(text => 'must not arrive', plain => 1) }
        elsif ($i == 6) { $ws->send_payload(0x2, 'x' x 10) }
        else {
            substr($env, -1, 1) ^= "\x01";
            $ws->send_payload(0x2, $env, fragments => [20, 10], between => sub { $ws->send_ping('mid') });
        }
        my $m = $ws->read_message;
        ok t_cmp(close_desc($m), 'close ' . close_frame_hex(1008), "$what: close frame 1008");
        ok t_cmp($ws->wait_eof(5), 1, "$what: then the connection ends");
        my @ev = records_at_end($ws->conn);
        ok t_cmp(join(',', map { $_->{ev} eq 'message' ? "message:$_->{len}" : $_->{ev} }
                           grep { $_->{ev} =~ /^(?:message|end)$/ } @ev),
                 'message:6,end', "$what: the backend got the first message and nothing else");
        if ($i == 0) {
            ok t_cmp(log_since($mark), qr/\[zeq_e2e:info\] .*ZEQ60001: WebSocket closed with 1008/,
                     "$what: error_log says why, at info level");
        }
    }

    # --- 1002: frames that break RFC 6455 ---------------------------------------------------------------
    for my $i (0 .. $#BAD_1002) {
        my $what = "$via: $BAD_1002[$i]";
        my $ws = connect_ws(path => $echo);
        my $m0 = roundtrip($ws, text => 'before');
        ok t_cmp(($m0->{data} // '') . ' ' . frame_desc($m0), 'before ' . SEALED,
                 "$what: a good message first");
        my $env = seal_message($key, text => 'must not arrive');
        my $frame = \&ws_frame;
        if ($i == 0) { $ws->write_raw($frame->(0x2, $env, rsv => 4)) }
        elsif ($i == 1) { $ws->write_raw($frame->(0x0, $env)) }
        elsif ($i == 2) { $ws->write_raw($frame->(0x9, 'half', fin => 0) . $frame->(0x0, 'ping')) }
        elsif ($i == 3) { $ws->write_raw($frame->(0x9, 'p' x 126)) }
        elsif ($i == 4) { $ws->write_raw($frame->(0x2, $env, mask => 0)) }
        else {
            $ws->write_raw($frame->(0x2, substr($env, 0, 10), fin => 0) . $frame->(0x2, $env));
        }
        my $m = $ws->read_message;
        ok t_cmp(close_desc($m), 'close ' . close_frame_hex(1002), "$what: close frame 1002");
        ok t_cmp($ws->wait_eof(5), 1, "$what: then the connection ends");
        my @ev = records_at_end($ws->conn);
        ok t_cmp(join(',', map { $_->{ev} eq 'message' ? "message:$_->{len}" : $_->{ev} }
                           grep { $_->{ev} =~ /^(?:message|ping|end)$/ } @ev),
                 'message:6,end', "$what: the backend got the first message and nothing else");
    }

    # --- 1009: over ZeqE2EMaxMessage (4096 under ${prefix}small/, 1 MiB by default) -----------------
    {
        my $small = "${prefix}small/echo";
        my $ws = connect_ws(path => $small);
        my $ok = det_bytes(4096, 'max');
        check_sealed(roundtrip($ws, binary => $ok), 'binary', $ok, "$via: 4096 bytes under ZeqE2EMaxMessage 4096");
        $ws->send_message(binary => det_bytes(4097, 'max'));
        ok t_cmp(close_desc($ws->read_message), 'close ' . close_frame_hex(1009),
                 "$via: 4097 bytes under ZeqE2EMaxMessage 4096: close frame 1009");
        ok t_cmp($ws->wait_eof(5), 1, "$via: 4097 bytes: then the connection ends");
        ok t_cmp(join(',', map { $_->{len} } messages_of(records_at_end($ws->conn))), '4096',
                 "$via: 4097 bytes: the backend got only the 4096-byte message");

        my $wf = connect_ws(path => $small);
        $wf->send_message(binary => det_bytes(4097, 'max'), fragments => [2000]);
        ok t_cmp(close_desc($wf->read_message), 'close ' . close_frame_hex(1009),
                 "$via: 4097 bytes in two fragments: close frame 1009");
        ok t_cmp($wf->wait_eof(5), 1, "$via: 4097 bytes in two fragments: then the connection ends");
        ok t_cmp(ev_summary(records_at_end($wf->conn)), 'open,end',
                 "$via: 4097 bytes in two fragments: the backend had the socket but got no message");

        my $wb = connect_ws(path => $small);
        check_sealed(roundtrip($wb, text => 'send-bytes 4096'), 'binary', det_bytes(4096, 'ws'),
                     "$via: a backend message of 4096 bytes under ZeqE2EMaxMessage 4096");
        $wb->send_close(1000);
        # The pulse goes on ticking at the backend after the 4097 bytes.
        my $wp = connect_ws(path => "${prefix}small/pulse");
        $wp->send_message(text => 'send-bytes 4097');
        my ($m, $unsealed) = (undef, 0);
        while (($m = $wp->read_message)->{kind} eq 'message') {
            $unsealed++ unless frame_desc($m) eq SEALED;
        }
        ok t_cmp(close_desc($m) . ", $unsealed unsealed frames before", 'close ' . close_frame_hex(1009)
                 . ', 0 unsealed frames before', "$via: a backend message of 4097 bytes: close frame 1009 instead");
        my $after = $wp->read_frame(5);
        ok t_cmp($after->{timeout} ? 'nothing' : $after->{eof} ? 'the end' : 'a frame', 'the end',
                 "$via: after that close the connection ends, no tick after it");
        ok t_cmp($wp->wait_eof(1), 1, "$via: a backend message of 4097 bytes: the connection stays ended");

        my $wd = connect_ws(path => $echo);
        $wd->send_message(binary => det_bytes(MiB + 1, 'max'));
        ok t_cmp(close_desc($wd->read_message(30)), 'close ' . close_frame_hex(1009),
                 "$via: 1 MiB + 1 byte under the default ZeqE2EMaxMessage: close frame 1009");
        ok t_cmp(ev_summary(records_at_end($wd->conn)), 'open,end',
                 "$via: 1 MiB + 1 byte: the backend had the socket but got no message");
    }

    # --- pulse: sealed ticks every 100 ms, and echoes ---------------------------------------------------
    {
        my $ws = connect_ws(path => "${prefix}pulse");
        my $t0 = Time::HiRes::time();
        my (@ticks, @other, $sent);
        while (Time::HiRes::time() - $t0 < 1.0) {
            if (!$sent && Time::HiRes::time() - $t0 > 0.5) {
                $ws->send_message(text => 'echo on pulse');
                $sent = 1;
            }
            my $m = $ws->read_message(0.05);
            next if $m->{kind} eq 'timeout';
            last unless $m->{kind} eq 'message';
            my $j = ($m->{type} // '') eq 'text' ? decode_json_safe($m->{data}) : undef;
            if (ref $j eq 'HASH' && defined $j->{tick}) { push @ticks, [$m, $j] } else { push @other, $m }
        }
        my $echo_m = @other ? $other[0] : $ws->read_message(2);
        ok t_cmp(scalar(@ticks) >= 3 ? 'at least 3' : scalar(@ticks), 'at least 3',
                 "$via: pulse: at least 3 ticks in 1 s (got " . scalar(@ticks) . ')');
        ok t_cmp(join(',', sort { $a cmp $b } keys %{ { map { frame_desc($_->[0]) => 1 } @ticks } }), SEALED,
                 "$via: pulse: every tick came as a sealed binary frame");
        ok t_cmp(join(',', map { $_->[1]{tick} } @ticks), join(',', 1 .. scalar @ticks),
                 "$via: pulse: text ticks 1, 2, 3... in order");
        ok t_cmp(($echo_m->{data} // '') . ' ' . frame_desc($echo_m), 'echo on pulse ' . SEALED,
                 "$via: pulse: an echo between the ticks");
        $ws->send_close(1000);
    }

    # --- no e2e_session: a plaintext WebSocket, untouched -----------------------------------------------
    {
        my $ws = ZeqTest::WebSocket->connect(path => $echo, extensions => 'permessage-deflate');
        ok t_cmp("$ws->{status} $ws->{accept_ok}", '101 1', "$via: no e2e_session: 101");
        my $text = text_bytes(100, "$via plain");
        my $bin = det_bytes(300, "$via plain");
        my $m1 = roundtrip($ws, text => $text);
        my $m2 = roundtrip($ws, binary => $bin);
        ok t_cmp(sprintf('0x%x %s', $m1->{frame}{opcode} // 0, $m1->{data} // ''), "0x1 $text",
                 "$via: no e2e_session: the text echo comes as a plain text frame");
        ok t_cmp(sprintf('0x%x %s', $m2->{frame}{opcode} // 0, digest_of($m2->{data})), '0x2 ' . digest_of($bin),
                 "$via: no e2e_session: the binary echo comes as a plain binary frame");
        $ws->send_close(1000);
        my @ev = records_at_end($ws->conn);
        ok t_cmp(join(',', map { rec_desc($_) } messages_of(@ev)),
                 join(',', want_desc('text', $text), want_desc('binary', $bin)),
                 "$via: no e2e_session: the backend got both messages as sent");
        my ($open) = grep { $_->{ev} eq 'open' } @ev;
        ok t_cmp($open->{headers}{'sec-websocket-extensions'}, 'permessage-deflate',
                 "$via: no e2e_session: Sec-WebSocket-Extensions reaches the backend untouched");
        ok t_cmp($ws->{h}->header('Sec-WebSocket-Extensions'), undef,
                 "$via: no e2e_session: (the backend accepts no extension)");
    }

    # --- unknown session: 401 before any tunnel ---------------------------------------------------------
    {
        my $ws = ZeqTest::WebSocket->connect(path => $echo, session_id => 'A' x 43);
        check_error({ status => $ws->{status}, h => $ws->{h}, body => $ws->{body} },
                    401, 'e2e_session_invalid', "$via: upgrade with an unknown session");
        ok t_cmp(backend_saw($ws->conn), 0, "$via: unknown session: the backend never saw it");
    }
}

# --- e2e_session is removed wherever it stands -------------------------------------------------------
for my $case (['first', 'a=1&b=2', 0], ['in the middle', 'a=1&b=2', 2], ['last', 'a=1&b=2', undef],
              ['alone', '', 0], ['first, before conn alone', '', 0]) {
    my ($where, $query, $at) = @$case;
    my $conn = new_conn_id();
    my $ws = connect_ws(path => '/ws/echo', conn => $where eq 'alone' ? '' : $conn, query => $query,
                        session_at => $at);
    my $m = roundtrip($ws, text => "session $where");
    ok t_cmp(($m->{data} // '') . ' ' . frame_desc($m), "session $where " . SEALED,
             "e2e_session $where: the socket is encrypted");
    $ws->send_close(1000);
    $ws->wait_eof(5);
    my @q = (($where eq 'alone' ? () : "conn=$conn"), (length $query ? $query : ()));
    my $want = '/ws/echo' . (@q ? '?' . join('&', @q) : '');
    my $id = $where eq 'alone' ? 'none' : $conn;
    my @opens = grep { $_->{ev} eq 'open' } records_at_end($id);
    ok t_cmp(@opens ? $opens[-1]{target} : 'no upgrade', $want,
             "e2e_session $where: the backend's target is $want");
}

# --- refused upgrades --------------------------------------------------------------------------------
for my $case (['malformed', '!!!'], ['empty', '']) {
    my ($what, $id) = @$case;
    my $ws = ZeqTest::WebSocket->connect(path => '/ws/echo', session_id => $id);
    check_error({ status => $ws->{status}, h => $ws->{h}, body => $ws->{body} },
                401, 'e2e_session_invalid', "upgrade with a $what e2e_session");
    ok t_cmp(backend_saw($ws->conn), 0, "$what e2e_session: the backend never saw it");
}
{
    # zeq_env: ZeqE2ESessionTTL 2, ZeqE2ERequire On.
    my $e = handshake(vhost => 'zeq_env');
    my $ws = ZeqTest::WebSocket->connect(vhost => 'zeq_env', path => '/ws/echo', session => $e);
    my $m = roundtrip($ws, text => 'fresh');
    ok t_cmp("$ws->{status} " . ($m->{data} // '') . ' ' . frame_desc($m), '101 fresh ' . SEALED,
             'zeq_env: a fresh session opens an encrypted socket');
    $ws->send_close(1000);
    sleep 3;
    my $late = ZeqTest::WebSocket->connect(vhost => 'zeq_env', path => '/ws/echo', session => $e);
    check_error({ status => $late->{status}, h => $late->{h}, body => $late->{body} },
                401, 'e2e_session_invalid', 'upgrade with an expired session');
    ok t_cmp(backend_saw($late->conn), 0, 'expired session: the backend never saw it');

    my $plain = ZeqTest::WebSocket->connect(vhost => 'zeq_env', path => '/ws/echo');
    check_error({ status => $plain->{status}, h => $plain->{h}, body => $plain->{body} },
                403, 'e2e_required', 'no e2e_session under ZeqE2ERequire On');
    ok t_cmp(backend_saw($plain->conn), 0, 'ZeqE2ERequire: the backend never saw it');
}
{
    my $ws = ZeqTest::WebSocket->connect(vhost => 'zeq_nosecret', path => '/ws/echo', session_id => 'A' x 43);
    check_error({ status => $ws->{status}, h => $ws->{h}, body => $ws->{body} },
                503, 'e2e_unavailable', 'e2e_session where no secret is configured');
    ok t_cmp(backend_saw($ws->conn), 0, 'no secret: the backend never saw it');
    my $plain = ZeqTest::WebSocket->connect(vhost => 'zeq_nosecret', path => '/ws/echo');
    my $m = roundtrip($plain, text => 'plain');
    ok t_cmp("$plain->{status} " . sprintf('0x%x ', $m->{frame}{opcode} // 0) . ($m->{data} // ''), '101 0x1 plain',
             'no secret, no e2e_session: a plaintext WebSocket');
    $plain->send_close(1000);
}

# --- a refused upgrade leaves a keep-alive connection clean ------------------------------------------
{
    my $hp = ZeqTest::hostport('zeq_file');
    my $ws = connect_ws(path => '/ws/not-an-endpoint');
    my $opened = open_envelope($key, $ws->{body});
    ok t_cmp("$ws->{status} " . media_type($ws->{h}->header('Content-Type')) . ' '
             . ((decode_json_safe($opened // '') // {})->{backend} // ''),
             '404 application/x-zeq-e2e not found',
             'upgrade refused by the backend (404) with a valid session: its answer arrives sealed');
    my $r1 = $ws->http_request("GET /proxy/echo?after=refused HTTP/1.1\nHost: $hp\n");
    my $j1 = decode_json_safe($r1->{body}) // {};
    ok t_cmp("$r1->{status} " . ($j1->{method} // ''), '200 GET',
             'the same connection: a plain GET through the proxy answers 200');
    my $pt = '{"after":"a refused upgrade"}';
    my $env = seal($key, $pt);
    my $r2 = $ws->http_request("POST /proxy/echo HTTP/1.1\nHost: $hp\nX-E2E-Session: $s->{id}\n"
                               . "Accept: application/x-zeq-e2e\nContent-Type: application/x-zeq-e2e\n"
                               . 'Content-Length: ' . length($env) . "\n", $env);
    my $j2 = decode_json_safe(open_envelope($key, $r2->{body}) // '') // {};
    ok t_cmp("$r2->{status} " . ($j2->{body} // ''), "200 $pt",
             'the same connection: an encrypted POST: the backend got the plaintext, the answer opens');
    $ws->upgrade(path => '/ws/echo', session => $s);
    ok t_cmp("$ws->{status} $ws->{accept_ok}", '101 1', 'the same connection: a new upgrade succeeds');
    my $m = roundtrip($ws, text => 'after all that');
    ok t_cmp(($m->{data} // '') . ' ' . frame_desc($m), 'after all that ' . SEALED,
             'the same connection: the new socket is encrypted');
    ok t_cmp(rec_desc((messages_of(wait_messages($ws->conn, 1)))[0]), want_desc('text', 'after all that'),
             'the same connection: the backend got the plaintext');
    $ws->send_close(1000);
}

# --- /wst/ really went through mod_proxy_wstunnel -----------------------------------------------------
{
    my $mark = log_mark();
    my $ws = connect_ws(path => '/wst/echo');
    my $m = roundtrip($ws, text => 'wstunnel');
    $ws->send_close(1000);
    $ws->wait_eof(5);
    my $conn = $ws->conn;
    ok t_cmp(log_since($mark), qr/\[proxy_wstunnel:debug\] .*AH02451: serving URL ws:\/\/[^ ]*\/ws\/echo\?conn=$conn$/m,
             'mod_proxy_wstunnel served /wst/ (without e2e_session in its URL)');
}

# --- 10,000 messages on one socket: the child's memory stays flat ---------------------------------------
{
    my $ws = connect_ws(path => '/ws/echo');
    my (undef, $sport) = split /:/, ZeqTest::hostport('zeq_file');
    my $pidfile = catfile(Apache::Test::vars('t_logs'), 'httpd.pid');
    my $ppid = do { open my $fh, '<', $pidfile or die "$pidfile: $!"; local $/; <$fh> } // '';
    $ppid =~ s/\D//g;
    # The child is found once the upgrade is done (it holds the socket).
    my $child = server_pid_of($ws->local_port, $sport, children_of($ppid));
    ok t_cmp(defined $child ? 'found' : 'not found', 'found',
             'the server child that serves the socket is found');
    # 200 messages of 16 to 1015 bytes, text and binary, sent in turn.
    my @pool = map { $_ % 2 ? ['binary', det_bytes(16 + $_ * 5, "mem $_")]
                            : ['text', text_bytes(16 + $_ * 5, "mem $_")] } 0 .. 199;
    my $bad = 0;
    my $count = 0;
    my $run = sub {
        my ($n) = @_;
        while ($n > 0) {
            my $batch = $n > 100 ? 100 : $n;
            my @msgs = map { $pool[($count + $_) % @pool] } 0 .. $batch - 1;
            $ws->write_raw(join '', map { ws_frame(0x2, seal_message($key, @$_)) } @msgs);
            for my $want (@msgs) {
                my $m = $ws->read_message;
                $bad++ unless $m->{kind} eq 'message' && frame_desc($m) eq SEALED
                    && $m->{type} eq $want->[0] && $m->{data} eq $want->[1];
            }
            $count += $batch;
            $n -= $batch;
        }
    };
    $run->(1000);
    my $before = defined $child ? rss_kb($child) : undef;
    my $t0 = Time::HiRes::time();
    $run->(10_000);
    my $secs = Time::HiRes::time() - $t0;
    my $after = defined $child ? rss_kb($child) : undef;
    ok t_cmp("$bad bad of $count", "0 bad of 11000", '11,000 messages on one socket: every echo sealed, right type, in order');
    my $growth = defined $before && defined $after ? $after - $before : undef;
    print STDERR sprintf("# server child %s VmRSS: %s kB after 1,000 warm-up messages, %s kB after 10,000 more "
                         . "(growth %s kB; 10,000 round trips in %.1f s)\n",
                         $child // '?', $before // '?', $after // '?', $growth // '?', $secs);
    skip(ZeqTest::rss_bound_skipped(),
         defined $growth && $growth < 2048 ? 'below 2 MiB' : ($growth // 'unknown') . ' kB',
         'below 2 MiB', 'the child\'s VmRSS grew by less than 2 MiB over 10,000 messages');
    $ws->send_close(1000);
    my @msgs = messages_of(records_at_end($ws->conn, 10));
    my $wrong = grep { $msgs[$_]{sha256} ne sha256_hex($pool[$_ % @pool][1]) } 0 .. $#msgs;
    ok t_cmp(scalar(@msgs) . " messages, $wrong wrong", '11000 messages, 0 wrong',
             '11,000 messages on one socket: the backend got each one exactly');
}
