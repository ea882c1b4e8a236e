# Encrypted WebSockets over HTTP/2 (RFC 8441 extended CONNECT, mod_http2
# with H2WebSockets on, zeq_h2): t/ws_h2_client.cjs, a Node client with
# node:http2 and node:crypto only, does the handshake over h2, opens
# sockets with :protocol websocket and ?e2e_session=, and reports what it
# saw; the backend's records tell what reached the application. Skipped
# without Node 18 or newer.
use strict;
use warnings;

use FindBin ();
use lib "$FindBin::Bin/lib";

use Apache::Test;
use Apache::TestUtil;
use Digest::SHA qw(sha256_hex);
use File::Spec::Functions qw(catfile);
use HTTP::Headers ();
use ZeqTest;
use ZeqTest::WebSocket qw(new_conn_id records_at_end messages_of backend_saw);

my $CE = ZeqTest::CHECK_ERROR_TESTS;

sub node_major {
    my $v = `node --version 2>/dev/null` // '';
    return $v =~ /^v(\d+)\./ ? $1 : 0;
}

plan tests => 5 + 4 + 2 + 3 + 2 + 3 + ($CE + 1) + 2,
    need need_lwp,
    { 'node 18 or newer (t/ws_h2_client.cjs uses node:http2 and node:crypto)' => sub { node_major() >= 18 } };

my ($host, $port) = split /:/, ZeqTest::hostport('zeq_h2');
my $conn = new_conn_id();
my $script = catfile($FindBin::Bin, 'ws_h2_client.cjs');
my $json = do {
    local $ENV{ZEQ_T_H2_SECRET} = ZeqTest::secret_for('zeq_h2');
    open my $pipe, '-|', 'node', $script, $host, $port, $conn or die "cannot run node: $!";
    local $/;
    my $text = <$pipe>;
    close $pipe;
    $text;
};
my $o = decode_json_safe($json) // { error => "no JSON from the client: " . ($json // '') };
print STDERR "# ws_h2_client.cjs (node " . ($o->{node} // "?") . "): $o->{error}\n" if $o->{error};
ZeqTest::record_key(pack 'H*', $o->{keyHex}) if ($o->{keyHex} // '') =~ /^[0-9a-f]{64}$/;
ZeqTest::record_session_id($o->{sessionId});

sub desc {
    my ($f) = @_;
    return 'nothing' unless ref $f eq 'HASH' && defined $f->{opcode};
    return sprintf('opcode 0x%x fin %d rsv %d masked %d %s', $f->{opcode}, $f->{fin} ? 1 : 0, $f->{rsv},
                   $f->{masked} ? 1 : 0, $f->{verifies} ? 'verifies' : 'does not verify');
}
use constant SEALED => 'opcode 0x2 fin 1 rsv 0 masked 0 verifies';

# --- handshake and extended CONNECT ----------------------------------------------------
ok t_cmp($o->{alpn}, 'h2', 'the connection is HTTP/2 (ALPN h2)');
ok t_cmp($o->{enableConnectProtocol} ? 1 : 0, 1, 'the server announces SETTINGS_ENABLE_CONNECT_PROTOCOL');
ok t_cmp($o->{handshakeStatus}, 200, 'handshake over HTTP/2: 200');
ok t_cmp($o->{connectStatus}, 200, 'CONNECT :protocol websocket with a valid e2e_session: 200');
ok t_cmp($o->{connectExtensions}, undef, 'permessage-deflate offered: no extension negotiated');

# --- messages ------------------------------------------------------------------------------
ok t_cmp(desc($o->{textEcho}), SEALED, 'text over h2: the echo is one sealed binary frame');
ok t_cmp(($o->{textEcho}{type} // 0) . ' ' . ($o->{textEcho}{sha256} // ''), "1 $o->{sent}{text}",
         'text over h2: it opens to the text message sent');
ok t_cmp(desc($o->{binaryEcho}), SEALED, '70000 bytes over h2: the echo is one sealed binary frame');
ok t_cmp(($o->{binaryEcho}{type} // 0) . ' ' . ($o->{binaryEcho}{sha256} // ''), "2 $o->{sent}{binary}",
         '70000 bytes over h2: it opens to the binary message sent');
ok t_cmp($o->{pong}{payloadHex} // '', unpack('H*', 'h2 ping'), 'ping over h2: pong with the same payload');
ok t_cmp(($o->{close}{payloadHex} // '') . ' ' . ($o->{ended} ? 'ended' : 'open'), '03e8 ended',
         'close 1000 over h2: echoed, then the stream ends');

# --- what the backend got -----------------------------------------------------------------
{
    my @ev = records_at_end($conn);
    my ($open) = grep { $_->{ev} eq 'open' } @ev;
    ok t_cmp($open ? $open->{target} : 'no upgrade', "/ws/h2/echo?conn=$conn",
             'over h2: the backend\'s request target has no e2e_session');
    ok t_cmp(join(',', map { "$_->{type}:$_->{sha256}:$_->{frames}" } messages_of(@ev)),
             "text:$o->{sent}{text}:1,binary:$o->{sent}{binary}:1",
             'over h2: the backend got both messages exactly, as text and binary, one frame each');
    ok t_cmp($open->{headers}{'sec-websocket-extensions'}, undef,
             'over h2: no Sec-WebSocket-Extensions reached the backend');
}

# --- a last message and the close in the stream's final DATA frame ---------------------------------
ok t_cmp($o->{lastStatus}, 200, 'last-words socket over h2: 200');
ok t_cmp(join(',', map { $_->{ev} eq 'message' ? "message:$_->{sha256}" : $_->{ev} eq 'close' ? "close:$_->{code}" : $_->{ev} }
              grep { $_->{ev} =~ /^(?:open|message|close)$/ } records_at_end("$conn-last")),
         "open,message:$o->{sent}{last},close:1000",
         'a message and a close in the DATA frame with END_STREAM: the backend gets both, in order');

# --- a tampered envelope --------------------------------------------------------------------
ok t_cmp($o->{tamperStatus}, 200, 'tamper socket over h2: 200');
ok t_cmp((desc($o->{tamperClose}) =~ /^opcode 0x8/ ? "close $o->{tamperClose}{payloadHex}"
                                                    : desc($o->{tamperClose}))
         . ($o->{tamperEnded} ? ', ended' : ', open'),
         'close 03f0, ended', 'a tampered envelope over h2: close frame 1008, then the stream ends');
ok t_cmp(join(',', map { $_->{ev} } grep { $_->{ev} =~ /^(?:open|message|end)$/ } records_at_end("$conn-tamper")),
         'open,end', 'a tampered envelope over h2: the backend had the socket but got no message');

# --- an unknown session ------------------------------------------------------------------------
check_error({ status => $o->{unknownStatus} // 0,
              h => HTTP::Headers->new('Content-Type' => $o->{unknownType} // ''),
              body => $o->{unknownBody} // '' },
            401, 'e2e_session_invalid', 'CONNECT with an unknown e2e_session over h2');
ok t_cmp(backend_saw("$conn-unknown"), 0, 'unknown session over h2: the backend never saw it');

# --- no e2e_session: plaintext -------------------------------------------------------------------
ok t_cmp($o->{plainStatus}, 200, 'CONNECT without e2e_session over h2: 200');
ok t_cmp(sprintf('0x%x %s', $o->{plainEcho}{opcode} // 0, $o->{plainEcho}{textStart} // ''),
         '0x1 plain over h2', 'without e2e_session over h2: a plain text echo');
