# More than 10,000 generated malformed requests, protocol v1 and v2: random
# and truncated envelopes and sealed messages, every bit of genuine ones
# flipped, records cut, reordered and altered, wrong and malformed
# sessions, sequence numbers and seals, bogus, repeated and oversized
# headers, handshake bodies of every wrong shape (not JSON, invalid UTF-8,
# NUL bytes, nesting, duplicate members, nonces and keys of every wrong
# length, points off the curve), WebSocket openings and frames of every
# wrong shape after genuine encrypted openings, and bodies that stall
# (zeq_slow, mod_reqtimeout). Each case knows the answer docs/PROTOCOL.md
# gives it (status and error code, or the server's own plaintext or
# sealed page, or the WebSocket close code) and gets exactly that; the
# error log gains no line at warn or above and no child dies; neither the
# CGI scripts, nor the proxied backend, nor a WebSocket backend sees any
# of them. Genuine requests of each kind (the controls) reach the
# application, so the counting is not vacuous.
#
# Four worker processes share the cases, one connection per request
# (most of these answers close the connection: 400, 413, 408).
use strict;
use warnings;

use FindBin ();
use lib "$FindBin::Bin/lib";

use Apache::Test;
use Apache::TestUtil;
use Crypt::PK::ECC ();
use Crypt::PRNG qw(random_bytes);
use File::Path qw(make_path remove_tree);
use File::Spec::Functions qw(catdir catfile);
use HTTP::Headers ();
use IO::Select ();
use IO::Socket::INET ();
use JSON::PP ();
use List::Util qw(sum0);
use MIME::Base64 qw(encode_base64);
use POSIX ();
use Time::HiRes ();
use ZeqTest;
use ZeqTest::Fixtures ();
use ZeqTest::V2 ();
use ZeqTest::WebSocket qw(ws_frame wait_records messages_of);

use constant WORKERS => 4;
use constant MIN_CASES => 10_000;
use constant CGI => '/cgi-bin/echo.cgi';
use constant PROXY => '/proxy/echo';
# v2: a request at this number first, so that numbers far below it are
# too old (18.7: 1,024 below the highest accepted).
use constant HIGH_SEQ => 1_000_000;

my $JSON = JSON::PP->new->canonical(1);
my $b64url = \&ZeqTest::V2::b64url;

# --- the wire ---------------------------------------------------------------------------

my %HP;
sub hp { $HP{ $_[0] } //= ZeqTest::hostport($_[0]) }

# The bytes of one HTTP/1.1 request: method, path, vhost, headers [name =>
# value, ...] in order, lines (raw header lines after them), body (with
# its Content-Length unless no_cl), chunks (the body chunked). The head
# ends with Connection: close.
sub http {
    my (%a) = @_;
    my $out = "$a{method} $a{path} HTTP/1.1\r\nHost: " . hp($a{vhost} // 'zeq_file') . "\r\n";
    my @h = @{ $a{headers} || [] };
    while (my ($k, $v) = splice @h, 0, 2) {
        $out .= "$k: $v\r\n";
    }
    $out .= "$_\r\n" for @{ $a{lines} || [] };
    my $body = '';
    if ($a{chunks}) {
        $out .= "Transfer-Encoding: chunked\r\n";
        $body = join('', map { sprintf('%x', length) . "\r\n$_\r\n" } grep { length } @{ $a{chunks} })
              . "0\r\n\r\n";
    }
    elsif (defined $a{body}) {
        $out .= 'Content-Length: ' . length($a{body}) . "\r\n" unless $a{no_cl};
        $body = $a{body};
    }
    return $out . "Connection: close\r\n\r\n" . $body;
}

# Sends bytes on a connection of their own and reads the answer to the
# end: { status, h (HTTP::Headers), body } (status 0 when none came).
sub exchange {
    my ($vhost, $bytes) = @_;
    my ($host, $port) = split /:/, hp($vhost);
    my $sock = IO::Socket::INET->new(PeerAddr => $host, PeerPort => $port, Proto => 'tcp', Timeout => 10)
        or return { status => 0, error => "connect: $!" };
    binmode $sock;
    local $SIG{PIPE} = 'IGNORE';
    for (my $off = 0; $off < length $bytes;) {
        my $n = syswrite($sock, $bytes, 65536, $off);
        last unless $n;
        $off += $n;
    }
    my $buf = read_to_end($sock, 30);
    close $sock;
    return parse_answer($buf);
}

sub read_to_end {
    my ($sock, $secs) = @_;
    my $sel = IO::Select->new($sock);
    my $deadline = Time::HiRes::time() + $secs;
    my $buf = '';
    while (1) {
        my $left = $deadline - Time::HiRes::time();
        last if $left <= 0 || !$sel->can_read($left);
        my $n = sysread($sock, $buf, 65536, length $buf);
        last unless $n;
    }
    return $buf;
}

sub parse_answer {
    my ($buf) = @_;
    my $r = { status => 0, h => HTTP::Headers->new, body => '' };
    1 while $buf =~ s{^HTTP/1\.\d 1\d\d[^\r\n]*\r\n(?:[^\r\n]+\r\n)*\r\n}{};
    my $end = index($buf, "\r\n\r\n");
    return $r if $end < 0;
    my ($line, @lines) = split /\r\n/, substr($buf, 0, $end);
    ($r->{status}) = ($line // '') =~ m{^HTTP/1\.\d (\d{3})};
    $r->{status} //= 0;
    for (@lines) {
        my ($k, $v) = /^([^:]+):\s*(.*?)\s*$/ or next;
        $r->{h}->push_header($k => $v);
    }
    my $body = substr($buf, $end + 4);
    if (($r->{h}->header('Transfer-Encoding') // '') =~ /chunked/i) {
        $body = ZeqTest::dechunk($body);
    }
    elsif (defined(my $cl = $r->{h}->header('Content-Length'))) {
        $body = substr($body, 0, $cl) if $cl =~ /^\d+$/;
    }
    $r->{body} = $body;
    return $r;
}

# What came, in the words of the expectations: "400 e2e_decrypt_failed"
# (a module error: plaintext JSON with a message), "400 sealed" (a sealed
# answer that verifies for the client), "400 plain" (the server's own
# plaintext page), "405 HEAD application/json" (HEAD); 405 adds its Allow.
sub describe {
    my ($c, $r) = @_;
    return 'no answer' . ($r->{error} ? " ($r->{error})" : '') unless $r->{status};
    my $ct = media_type($r->{h}->header('Content-Type'));
    my $allow = $r->{status} == 405 ? ' Allow: ' . ($r->{h}->header('Allow') // 'none') : '';
    return "$r->{status} HEAD $ct$allow" if $c->{head};
    if ($ct eq 'application/json') {
        my $j = decode_json_safe($r->{body});
        return "$r->{status} json" unless ref $j eq 'HASH' && ($j->{error} // '') =~ /^e2e_/
                                          && length($j->{message} // '');
        return "$r->{status} $j->{error}$allow";
    }
    if ($ct eq E2E_TYPE) {
        return "$r->{status} sealed" . (opens($c, $r) ? '' : ' (does not verify)');
    }
    return "$r->{status} plain";
}

# A sealed answer verifies under the keys the case's client holds.
sub opens {
    my ($c, $r) = @_;
    my $o = $c->{open} or return 0;
    if ($o->{v} == 1) {
        return defined ZeqTest::open_envelope($o->{key}, $r->{body}) ? 1 : 0;
    }
    my $a = ZeqTest::V2::check_answer($o->{s}, { %$r }, $o->{seq}, 'GET');
    return $a->{verified} ? 1 : 0;
}

# --- the cases -------------------------------------------------------------------------

# A case: { cat, what, vhost, bytes, expect, open, head, setup => [[vhost,
# bytes, expect], ...] (genuine requests first, not counted), ws => {...} }.
my @CASES;
my $CTX;
sub add {
    my ($cat, $what, %c) = @_;
    push @CASES, { cat => $cat, what => $what, vhost => 'zeq_file', %c };
}
sub err { "$_[0] $_[1]" }
use constant DECRYPT => '400 e2e_decrypt_failed';
use constant SESSION => '401 e2e_session_invalid';
use constant BAD_HS  => '400 e2e_bad_handshake';
use constant VERSION => '400 e2e_version_unsupported';
use constant REPLAY  => '400 e2e_replayed';

sub path_of { $_[0] % 2 ? PROXY : CGI }
sub flip { my ($s, $bit) = @_; substr($s, $bit >> 3, 1) ^= chr(1 << ($bit & 7)); $s }

# v1: an encrypted POST of body bytes with the session (or sid).
sub v1_post {
    my ($i, $body, %o) = @_;
    return http(method => 'POST', path => $o{path} // path_of($i),
                headers => [(exists $o{sid} ? (defined $o{sid} ? ('X-E2E-Session' => $o{sid}) : ())
                                            : ('X-E2E-Session' => $CTX->{v1}{id})),
                            Accept => E2E_TYPE, 'Content-Type' => $o{type} // E2E_TYPE,
                            'X-E2E-Content-Type' => 'application/json', @{ $o{headers} || [] }],
                ($o{chunks} ? (chunks => $o{chunks}) : (body => $body)));
}

# v2: a request of session s (the worker's by default) with number seq.
# body: sealed bytes to send as they are; else a bodiless request whose
# seal is given (undef: none) or computed for what aad_* say.
sub v2_req {
    my (%o) = @_;
    my $s = $o{s} // $CTX->{v2};
    my $method = $o{method} // 'GET';
    my $path = $o{path} // CGI;
    my @h = ('X-E2E-Session' => $o{sid} // $s->{id});
    push @h, 'X-E2E-Seq' => $o{seq} if defined $o{seq};
    push @h, Accept => E2E_TYPE;
    push @h, 'X-E2E-Content-Type' => $o{type} if defined $o{type};
    if (exists $o{body}) {
        push @h, 'Content-Type' => $o{ctype} // E2E_TYPE;
        push @h, 'X-E2E-Seal' => $o{seal} if defined $o{seal};
    }
    else {
        my $seal = exists $o{seal} ? $o{seal} : $b64url->(v2_seal($s, $o{seq}, $method, $path));
        push @h, 'X-E2E-Seal' => $seal if defined $seal;
    }
    push @h, @{ $o{headers} || [] };
    return http(method => $method, path => $path, headers => \@h,
                ($o{chunks} ? (chunks => $o{chunks}) : exists $o{body} ? (body => $o{body}) : ()));
}
sub v2_aad  { my ($s, $seq, $m, $t, $type) = @_; ZeqTest::V2::request_aad($s, $seq, $m, $t, $type) }
sub v2_seal { my ($s, $seq, $m, $t, $pt) = @_; ZeqTest::V2::seal($s->{c2s}, v2_aad($s, $seq, $m, $t), $pt // '') }
sub next_seq { $CTX->{seq}++ }

# The records of a sealed message: [[offset, header, length], ...].
sub records_of {
    my ($msg) = @_;
    my ($at, @r) = (13);
    while ($at + 4 <= length $msg) {
        my $h = unpack 'N', substr($msg, $at, 4);
        my $len = $h & 0xffffff;
        push @r, [$at, $h, 4 + $len + 16];
        $at += 4 + $len + 16;
    }
    return @r;
}

sub gen_v1_envelopes {
    my $k = $CTX->{v1}{key};
    my @genuine = map { ZeqTest::seal($k, $_) }
        ('', '{"hello":"world"}', ZeqTest::det_bytes(100, 'v1 bad'), 'y' x 150);
    my $i = 0;
    for my $e (@genuine) {
        my $n = length $e;
        add('v1 envelope', "bit $_ of a $n-byte envelope flipped", bytes => v1_post($i++, flip($e, $_)),
            expect => DECRYPT) for 0 .. 8 * $n - 1;
        add('v1 envelope', "a $n-byte envelope cut to $_ bytes", bytes => v1_post($i++, substr($e, 0, $_)),
            expect => DECRYPT) for 0 .. $n - 1;
        add('v1 envelope', "a $n-byte envelope with $_ bytes more", bytes => v1_post($i++, $e . random_bytes($_)),
            expect => DECRYPT) for 1 .. 8;
        add('v1 envelope', "a $n-byte envelope without X-E2E-Session",
            bytes => v1_post($i++, $e, sid => undef), expect => DECRYPT);
    }
    add('v1 envelope', "random bytes, $_ of them", bytes => v1_post($i++, random_bytes($_)), expect => DECRYPT)
        for 0 .. 80, 200, 1000, 20000;
    my $e = $genuine[1];
    add('v1 envelope', "chunked, cut to $_ bytes", bytes => v1_post($i++, undef, chunks => [substr($e, 0, $_ >> 1),
        substr($e, $_ >> 1, $_ - ($_ >> 1))]), expect => DECRYPT) for 1 .. length($e) - 1;
    for my $key (["another session's key", $CTX->{v1b}{key}], ['a key of zeros', "\0" x 32],
                 ["the v2 session's c2s key", $CTX->{v2}{c2s}]) {
        add('v1 envelope', "sealed under $key->[0]", bytes => v1_post($i++, ZeqTest::seal($key->[1], $_)),
            expect => DECRYPT) for '', '{"x":1}';
    }
    # ZeqE2EMaxRequestBody 1024 under /limits/.
    for my $n (1025, 1100, 5000, 100_000) {
        add('v1 envelope', "an envelope of $n bytes over ZeqE2EMaxRequestBody 1024",
            bytes => v1_post($i++, random_bytes($n), path => "/limits$_"), expect => '413 e2e_body_too_large')
            for CGI, PROXY;
    }
    add('v1 envelope', "a chunked envelope of $_ bytes over ZeqE2EMaxRequestBody 1024",
        bytes => v1_post($i++, undef, path => '/limits' . CGI, chunks => [random_bytes($_ >> 1), random_bytes($_ >> 1)]),
        expect => '413 e2e_body_too_large') for 2000, 100_000;
    # A v1 session takes no X-E2E-Seq (18.9).
    for my $seq ('0', '1', 'abc') {
        add('v1 envelope', "a v1 session with X-E2E-Seq: $seq",
            bytes => v1_post($i++, $genuine[1], headers => ['X-E2E-Seq' => $seq]), expect => DECRYPT);
        add('v1 envelope', "a v1 GET with X-E2E-Seq: $seq",
            bytes => http(method => 'GET', path => CGI, headers => ['X-E2E-Session' => $CTX->{v1}{id},
                          'X-E2E-Seq' => $seq, Accept => E2E_TYPE]), expect => DECRYPT);
    }
}

sub gen_v2_bodies {
    my $s = $CTX->{v2};
    my $i = 0;
    my $type = 'application/json';
    # Each message bound to its POST (a number of its own, never used:
    # they all fail verification).
    my @msgs;
    for my $shape ([17], [0], [5, 0, 12], [1, 1, 1, 1]) {
        my $seq = next_seq();
        my $path = path_of($i++);
        my $pt = ZeqTest::det_bytes(sum0(@$shape), 'v2 bad');
        my $m = ZeqTest::V2::seal($s->{c2s}, v2_aad($s, $seq, 'POST', $path, $type), $pt, records => $shape);
        push @msgs, { seq => $seq, path => $path, pt => $pt, m => $m, shape => "@$shape" };
    }
    my $post = sub {
        my ($g, $body, %o) = @_;
        return v2_req(method => 'POST', path => $g->{path}, seq => $g->{seq}, type => $type, body => $body, %o);
    };
    for my $g (@msgs) {
        my ($m, $n) = ($g->{m}, length $g->{m});
        my $what = "a $n-byte message (records of $g->{shape} bytes)";
        add('v2 sealed body', "bit $_ of $what flipped", bytes => $post->($g, flip($m, $_)), expect => DECRYPT)
            for 0 .. 8 * $n - 1;
        add('v2 sealed body', "$what cut to $_ bytes", bytes => $post->($g, substr($m, 0, $_)), expect => DECRYPT)
            for 0 .. $n - 1;
        add('v2 sealed body', "$what chunked, cut to $_ bytes",
            bytes => $post->($g, undef, chunks => [substr($m, 0, $_ >> 1), substr($m, $_ >> 1, $_ - ($_ >> 1))]),
            expect => DECRYPT) for 1 .. $n - 1;
        add('v2 sealed body', "$what with $_ bytes after its final record",
            bytes => $post->($g, $m . random_bytes($_)), expect => DECRYPT) for 1 .. 8;
        add('v2 sealed body', "$what with the prefix byte $_", bytes => $post->($g, chr($_) . substr($m, 1)),
            expect => DECRYPT) for 0x00, 0x01, 0x03, 0x20, 0x82, 0xff;
        my @rec = records_of($m);
        for my $j (0 .. $#rec) {
            my ($at, $h) = @{ $rec[$j] };
            for my $bit (24 .. 30) {
                add('v2 sealed body', "$what, reserved bit $bit of record $j set",
                    bytes => $post->($g, substr($m, 0, $at) . pack('N', $h | (1 << $bit)) . substr($m, $at + 4)),
                    expect => DECRYPT);
            }
            add('v2 sealed body', "$what, record $j claiming 1,048,577 bytes",
                bytes => $post->($g, substr($m, 0, $at) . pack('N', ($h & 0x80000000) | 0x100001) . substr($m, $at + 4)),
                expect => DECRYPT);
            add('v2 sealed body', "$what, the final flag of record $j inverted",
                bytes => $post->($g, substr($m, 0, $at) . pack('N', $h ^ 0x80000000) . substr($m, $at + 4)),
                expect => DECRYPT);
        }
        next unless @rec > 1;
        my @parts = map { substr($m, $_->[0], $_->[2]) } @rec;
        my $pre = substr($m, 0, 13);
        my %shuffles = (
            'records 0 and 1 swapped' => [$parts[1], $parts[0], @parts[2 .. $#parts]],
            'record 1 dropped' => [@parts[0, 2 .. $#parts]],
            'the final record dropped' => [@parts[0 .. $#parts - 1]],
            'record 0 twice' => [$parts[0], @parts],
            'the final record twice' => [@parts, $parts[-1]],
            'the records reversed' => [reverse @parts],
        );
        add('v2 sealed body', "$what, $_", bytes => $post->($g, join('', $pre, @{ $shuffles{$_} })), expect => DECRYPT)
            for sort keys %shuffles;
    }
    # Bound to something else than the request that carries it.
    my $g = $msgs[0];
    my $pt = $g->{pt};
    my %other = (
        'another method (PUT)' => [$s->{c2s}, v2_aad($s, $g->{seq}, 'PUT', $g->{path}, $type)],
        'another target' => [$s->{c2s}, v2_aad($s, $g->{seq}, 'POST', "$g->{path}?x=1", $type)],
        'another number' => [$s->{c2s}, v2_aad($s, $g->{seq} + 1, 'POST', $g->{path}, $type)],
        'another inner type' => [$s->{c2s}, v2_aad($s, $g->{seq}, 'POST', $g->{path}, 'text/plain')],
        'no inner type' => [$s->{c2s}, v2_aad($s, $g->{seq}, 'POST', $g->{path}, undef)],
        'another session id' => [$s->{c2s}, v2_aad({ id => $CTX->{v2b}{id} }, $g->{seq}, 'POST', $g->{path}, $type)],
        'the answer key (s2c)' => [$s->{s2c}, v2_aad($s, $g->{seq}, 'POST', $g->{path}, $type)],
        "another session's key" => [$CTX->{v2b}{c2s}, v2_aad($s, $g->{seq}, 'POST', $g->{path}, $type)],
        "a v1 session's key" => [$CTX->{v1}{key}, v2_aad($s, $g->{seq}, 'POST', $g->{path}, $type)],
        'the response AAD' => [$s->{c2s}, ZeqTest::V2::response_aad($s, $g->{seq}, 200, $type, '')],
    );
    for my $w (sort keys %other) {
        my ($key, $aad) = @{ $other{$w} };
        add('v2 sealed body', "sealed for $w", bytes => $post->($g, ZeqTest::V2::seal($key, $aad, $pt)),
            expect => DECRYPT);
    }
    add('v2 sealed body', 'sealed for the other path', expect => DECRYPT,
        bytes => v2_req(method => 'POST', path => $g->{path} eq CGI ? PROXY : CGI, seq => $g->{seq}, type => $type,
                        body => $g->{m}));
    # A body that is not a sealed message, a body and a seal.
    add('v2 sealed body', "a body of Content-Type $_", bytes => $post->($g, $g->{m}, ctype => $_), expect => DECRYPT)
        for 'application/json', 'application/x-zeq-e2e2', 'text/plain', 'application/x-zeq-e2e, application/x-zeq-e2e';
    add('v2 sealed body', 'a body and an X-E2E-Seal', expect => DECRYPT,
        bytes => $post->($g, $g->{m}, seal => $b64url->(v2_seal($s, $g->{seq}, 'POST', $g->{path}))));
    add('v2 sealed body', "random bytes, $_ of them", bytes => $post->($g, random_bytes($_)), expect => DECRYPT)
        for 1 .. 40, 1000;
    # ZeqE2EMaxRequestBody 1024 under /limits/.
    add('v2 sealed body', "a message of $_ bytes over ZeqE2EMaxRequestBody 1024", expect => '413 e2e_body_too_large',
        bytes => v2_req(method => 'POST', path => '/limits' . CGI, seq => $g->{seq}, body => random_bytes($_)))
        for 1025, 70_000;
}

sub gen_v2_seals {
    my $s = $CTX->{v2};
    my $i = 0;
    for my $path (CGI, PROXY) {
        my $seq = next_seq();
        my $seal = v2_seal($s, $seq, 'GET', $path);
        my $get = sub { v2_req(path => $path, seq => $seq, seal => $_[0], @_[1 .. $#_]) };
        my $n = length $seal;
        add('v2 seal', "bit $_ of the $n-byte seal flipped", bytes => $get->($b64url->(flip($seal, $_))),
            expect => DECRYPT) for 0 .. 8 * $n - 1;
        add('v2 seal', "the seal cut to $_ bytes", bytes => $get->($b64url->(substr($seal, 0, $_))), expect => DECRYPT)
            for 0 .. $n - 1;
        add('v2 seal', "the seal with $_ bytes more", bytes => $get->($b64url->($seal . random_bytes($_))),
            expect => DECRYPT) for 1 .. 8, 40;
        my $text = $b64url->($seal);
        # (a seal whose base64url has a - or _, so that base64 differs)
        my $other = $seal;
        $other = v2_seal($s, $seq, 'GET', $path) until $b64url->($other) =~ /[-_]/;
        my $std = encode_base64($other, '');
        my %forms = (
            'with = padding' => "$text=", 'with == padding' => "$text==", 'in standard base64' => $std,
            'with a blank inside' => substr($text, 0, 10) . ' ' . substr($text, 10),
            'with a dot inside' => substr($text, 0, 10) . '.' . substr($text, 10),
            'with a + inside' => substr($text, 0, 3) . '+' . substr($text, 4),
            'with a / inside' => substr($text, 0, 3) . '/' . substr($text, 4),
            'lowercased' => lc $text, 'uppercased' => uc $text,
            'with a % escape' => substr($text, 0, 5) . '%41' . substr($text, 5),
            'with its unused low bits set' => substr($text, 0, -1) . 'B',
            'one character short' => substr($text, 0, -1), 'of one character' => 'A',
            'quoted' => qq{"$text"},
        );
        add('v2 seal', "the seal $_", bytes => $get->($forms{$_}), expect => DECRYPT) for sort keys %forms;
        add('v2 seal', "random bytes, $_ of them", bytes => $get->($b64url->(random_bytes($_))), expect => DECRYPT)
            for 0 .. 70;
        add('v2 seal', "a seal holding $_ bytes", expect => DECRYPT,
            bytes => $get->($b64url->(v2_seal($s, $seq, 'GET', $path, 'x' x $_)))) for 1, 16, 1000;
        my %other = (
            'POST' => v2_aad($s, $seq, 'POST', $path), 'another target' => v2_aad($s, $seq, 'GET', "$path?x"),
            'another number' => v2_aad($s, $seq + 1, 'GET', $path), 'an inner type' => v2_aad($s, $seq, 'GET', $path, 'text/plain'),
            'another session id' => v2_aad({ id => $CTX->{v2b}{id} }, $seq, 'GET', $path),
        );
        add('v2 seal', "a seal of $_", expect => DECRYPT,
            bytes => $get->($b64url->(ZeqTest::V2::seal($s->{c2s}, $other{$_}, '')))) for sort keys %other;
        add('v2 seal', "a seal under $_->[0]", expect => DECRYPT,
            bytes => $get->($b64url->(ZeqTest::V2::seal($_->[1], v2_aad($s, $seq, 'GET', $path), ''))))
            for ['the answer key (s2c)', $s->{s2c}], ["another session's key", $CTX->{v2b}{c2s}],
                ["a v1 session's key", $CTX->{v1}{key}];
        add('v2 seal', 'no seal on a ' . $_, bytes => v2_req(method => $_, path => $path, seq => $seq, seal => undef),
            expect => DECRYPT) for qw(GET DELETE OPTIONS);
        add('v2 seal', 'a POST of Content-Length: 0 without a seal', expect => DECRYPT,
            bytes => v2_req(method => 'POST', path => $path, seq => $seq, body => ''));
        add('v2 seal', 'the seal given twice', bytes => $get->($text, headers => ['X-E2E-Seal' => $text]),
            expect => DECRYPT);
        add('v2 seal', 'a seal bound to an inner type with another one sent', expect => DECRYPT,
            bytes => v2_req(path => $path, seq => $seq, type => 'text/html',
                            seal => $b64url->(ZeqTest::V2::seal($s->{c2s}, v2_aad($s, $seq, 'GET', $path, 'text/plain'), ''))));
        add('v2 seal', 'X-E2E-Content-Type given twice', expect => DECRYPT,
            bytes => v2_req(path => $path, seq => $seq, type => 'text/plain', headers => ['X-E2E-Content-Type' => 'text/plain'],
                            seal => $b64url->(ZeqTest::V2::seal($s->{c2s}, v2_aad($s, $seq, 'GET', $path, 'text/plain'), ''))));
        add('v2 seal', 'an X-E2E-Content-Type of 8,000 bytes the seal does not bind', expect => DECRYPT,
            bytes => v2_req(path => $path, seq => $seq, type => 'x' x 8000));
        $i++;
    }
}

sub gen_v2_seqs {
    my $s = $CTX->{v2};
    # 18.6: decimal, no leading zeros, at most 2^53 - 1.
    my @bad = ('', '-1', '+1', '01', '00', '007', '1.0', '0x1', '1e3', '1 2', 'a', 'one', '1a', '٣', '１',
               '9007199254740992', '18446744073709551615', '18446744073709551616', '99999999999999999',
               '0' x 20, '1' x 300, '1,2', '1;2', '-0', '0.', '.5', 'NaN', 'Infinity');
    my $i = 0;
    for my $q (@bad) {
        my $path = path_of($i++);
        add('v2 sequence number', "X-E2E-Seq: '$q' (a GET sealed for it)", bytes => v2_req(path => $path, seq => $q),
            expect => DECRYPT);
        add('v2 sequence number', "X-E2E-Seq: '$q' (a POST sealed for it)", expect => DECRYPT,
            bytes => v2_req(method => 'POST', path => $path, seq => $q,
                            body => ZeqTest::V2::seal($s->{c2s}, v2_aad($s, $q, 'POST', $path), '{"n":1}')));
    }
    add('v2 sequence number', "a v2 session without X-E2E-Seq, a GET sealed without one", expect => DECRYPT,
        bytes => v2_req(path => CGI, seq => undef, seal => $b64url->(v2_seal($s, '', 'GET', CGI))));
    add('v2 sequence number', 'a v2 session without X-E2E-Seq, a POST', expect => DECRYPT,
        bytes => v2_req(method => 'POST', path => PROXY, seq => undef,
                        body => ZeqTest::V2::seal($s->{c2s}, v2_aad($s, '', 'POST', PROXY), '{"n":1}')));
    my $seq = next_seq();
    add('v2 sequence number', 'X-E2E-Seq given twice (the same number)', expect => DECRYPT,
        bytes => v2_req(path => CGI, seq => $seq, headers => ['X-E2E-Seq' => $seq]));
    # Replays: a genuine GET of a static file takes the number, then a
    # request sealed for the CGI or the backend comes with it.
    for my $k (1 .. 60) {
        my $n = next_seq();
        my $path = path_of($k);
        add('v2 replay', "number $n again, after a GET of a static file",
            setup => [['zeq_file', v2_req(path => '/static/hello.txt', seq => $n), '200 sealed',
                       { v => 2, s => $s, seq => $n }]],
            bytes => $k % 3 ? v2_req(path => $path, seq => $n)
                            : v2_req(method => 'POST', path => $path, seq => $n,
                                     body => ZeqTest::V2::seal($s->{c2s}, v2_aad($s, $n, 'POST', $path), '{"replay":1}')),
            expect => REPLAY);
    }
    # Too old: more than 1,024 below HIGH_SEQ, never used.
    for my $k (1 .. 60) {
        my $n = $k == 1 ? 0 : $k == 2 ? HIGH_SEQ - 1025 : int(rand(HIGH_SEQ - 1100));
        add('v2 replay', "number $n, over 1,024 below the highest accepted", bytes => v2_req(path => path_of($k), seq => $n),
            expect => REPLAY);
    }
}

sub gen_sessions {
    my $i = 0;
    my $v1get = sub { http(method => 'GET', path => path_of($i++), headers => ['X-E2E-Session' => $_[0], Accept => E2E_TYPE]) };
    my $v2get = sub {
        my ($sid) = @_;
        my $seq = next_seq();
        my $path = path_of($i++);
        my $fake = { id => $sid };
        return v2_req(path => $path, seq => $seq, sid => $sid,
                      seal => $b64url->(ZeqTest::V2::seal($CTX->{v2}{c2s}, v2_aad($fake, $seq, 'GET', $path), '')));
    };
    my @ids;
    push @ids, ["an unknown id of $_ characters", join('', map { ('A' .. 'Z', 'a' .. 'z', 0 .. 9, '-', '_')[rand 64] } 1 .. $_)]
        for 1 .. 128;
    push @ids, ["an id of $_ characters", 'A' x $_] for 129, 200, 1000, 4000;
    push @ids, ['an empty id', ''];
    for my $ch (' ', '+', '/', '=', '%', '.', '~', '!', '*', ';', ':', '"', "\x80", "\xc3\xa9", "\xff", '\\') {
        push @ids, [sprintf('an id with 0x%v02x inside', $ch), substr($CTX->{v1}{id}, 0, 5) . $ch . substr($CTX->{v1}{id}, 5)];
    }
    for my $which (['v1', $CTX->{v1}{id}], ['v2', $CTX->{v2}{id}]) {
        my ($v, $id) = @$which;
        push @ids, ["the $v id with character $_ changed", substr($id, 0, $_) . (substr($id, $_, 1) eq 'A' ? 'B' : 'A')
                                                           . substr($id, $_ + 1)] for 0 .. length($id) - 1;
        push @ids, ["the $v id cut to $_ characters", substr($id, 0, $_)] for 1 .. length($id) - 1;
        push @ids, ["the $v id and one more character", "${id}A"];
        push @ids, ["the $v id twice (one header)", "$id$id"];
    }
    for my $id (@ids) {
        add('sessions', "$id->[0], v1 style", bytes => $v1get->($id->[1]), expect => SESSION);
        add('sessions', "$id->[0], v2 style", bytes => $v2get->($id->[1]), expect => SESSION);
    }
    # X-E2E-Session given twice: "id, id" is no id.
    add('sessions', 'the v1 id given twice', expect => SESSION,
        bytes => http(method => 'GET', path => CGI, headers => ['X-E2E-Session' => $CTX->{v1}{id},
                      'X-E2E-Session' => $CTX->{v1}{id}, Accept => E2E_TYPE]));
    add('sessions', 'the v2 id given twice', expect => SESSION,
        bytes => v2_req(path => CGI, seq => next_seq(), headers => ['X-E2E-Session' => $CTX->{v2}{id}]));
    # Sessions of other virtual hosts (section 11); a v1 session where
    # there is no secret (503).
    add('sessions', 'a v1 session of zeq_gate (same secret) on zeq_file', bytes => $v1get->($CTX->{gate}{id}),
        expect => SESSION);
    add('sessions', 'a v2 session of zeq_signed on zeq_file', bytes => $v2get->($CTX->{signed}{id}), expect => SESSION);
    add('sessions', 'a v1 session id on zeq_nosecret', vhost => 'zeq_nosecret', expect => '503 e2e_unavailable',
        bytes => http(method => 'GET', vhost => 'zeq_nosecret', path => CGI,
                      headers => ['X-E2E-Session' => $CTX->{v1}{id}, Accept => E2E_TYPE]));
    my $seq = next_seq();
    add('sessions', 'a v2 session of zeq_file on zeq_nosecret', vhost => 'zeq_nosecret', expect => SESSION,
        bytes => http(method => 'GET', vhost => 'zeq_nosecret', path => CGI,
                      headers => ['X-E2E-Session' => $CTX->{v2}{id}, 'X-E2E-Seq' => $seq, Accept => E2E_TYPE,
                                  'X-E2E-Seal' => $b64url->(v2_seal($CTX->{v2}, $seq, 'GET', CGI))]));
    # ZeqE2ERequire On: plaintext where encryption is required (section 9).
    for my $p ('/required' . CGI, '/required' . PROXY, '/required/static/hello.txt') {
        add('sessions', "plaintext GET of $p under ZeqE2ERequire", expect => '403 e2e_required',
            bytes => http(method => 'GET', path => $p));
        add('sessions', "plaintext POST to $p under ZeqE2ERequire", expect => '403 e2e_required',
            bytes => http(method => 'POST', path => $p, headers => ['Content-Type' => 'application/json'], body => '{"a":1}'));
        add('sessions', "a v1 session without Accept under ZeqE2ERequire at $p", expect => '403 e2e_required',
            bytes => http(method => 'GET', path => $p, headers => ['X-E2E-Session' => $CTX->{v1}{id}]));
        add('sessions', "a v1 session posting plaintext under ZeqE2ERequire at $p", expect => '403 e2e_required',
            bytes => http(method => 'POST', path => $p, headers => ['X-E2E-Session' => $CTX->{v1}{id}, Accept => E2E_TYPE,
                          'Content-Type' => 'application/json'], body => '{"a":1}'));
    }
}

# Headers the server refuses while it reads the head (section 7.4):
# plaintext, unless X-E2E-Session and Accept came two lines before the
# faulty one (zeq_file has ZeqE2E On for the whole host): then sealed.
sub gen_headers {
    my $v1 = $CTX->{v1};
    my $s = $CTX->{v2};
    my $big = 'x' x 9000;                    # over LimitRequestFieldSize 8190
    my @many = map { ("X-Junk-$_" => 'j') } 1 .. 101;    # over LimitRequestFields 100
    my $v1h = ['X-E2E-Session' => $v1->{id}, Accept => E2E_TYPE, 'X-Pad' => 'p'];
    my $seq = next_seq();
    my $v2h = ['X-E2E-Session' => $s->{id}, 'X-E2E-Seq' => $seq, Accept => E2E_TYPE, 'X-Pad' => 'p'];
    my %open1 = (v => 1, key => $v1->{key});
    my %open2 = (v => 2, s => $s, seq => $seq);
    for my $path (CGI, PROXY) {
        add('headers', "a header of 9,000 bytes before the session, $path", expect => '400 plain',
            bytes => http(method => 'GET', path => $path, headers => ['X-Big' => $big, @$v1h]));
        add('headers', "an X-E2E-Session of 9,000 bytes, $path", expect => '400 plain',
            bytes => http(method => 'GET', path => $path, headers => ['X-E2E-Session' => $big, Accept => E2E_TYPE]));
        add('headers', "a header of 9,000 bytes after a v1 session, $path", expect => '400 sealed', open => \%open1,
            bytes => http(method => 'GET', path => $path, headers => [@$v1h, 'X-Big' => $big]));
        add('headers', "a header of 9,000 bytes after a v2 session, $path", expect => '400 sealed', open => \%open2,
            bytes => http(method => 'GET', path => $path, headers => [@$v2h, 'X-Big' => $big]));
        add('headers', "101 headers before the session, $path", expect => '400 plain',
            bytes => http(method => 'GET', path => $path, headers => [@many, @$v1h]));
        add('headers', "101 headers after a v1 session, $path", expect => '400 sealed', open => \%open1,
            bytes => http(method => 'GET', path => $path, headers => [@$v1h, @many]));
        add('headers', "a header name with a blank, $path", expect => '400 plain',
            bytes => http(method => 'GET', path => $path, lines => ['X Blank: a']));
        add('headers', "a control character in a header value, $path", expect => '400 plain',
            bytes => http(method => 'GET', path => $path, lines => ["X-Ctl: a\x01b"]));
        add('headers', "a header line without a colon, $path", expect => '400 plain',
            bytes => http(method => 'GET', path => $path, lines => ['X-No-Colon']));
        # Found once the head is read whole: sealed, wherever the session stands.
        for my $cl ('abc', '-5', '1, 1', '99999999999999999999', '0x10', '1 0') {
            add('headers', "Content-Length: $cl on an encrypted POST, $path", expect => '400 sealed', open => \%open1,
                bytes => http(method => 'POST', path => $path, no_cl => 1, body => 'x' x 10,
                              headers => ['Content-Length' => $cl, @$v1h, 'Content-Type' => E2E_TYPE]));
        }
        for my $te ('gzip', 'chunked, gzip', 'identity', 'chunked;x=1') {
            add('headers', "Transfer-Encoding: $te on an encrypted POST, $path", expect => '400 sealed', open => \%open1,
                bytes => http(method => 'POST', path => $path, no_cl => 1, body => "5\r\nhello\r\n0\r\n\r\n",
                              headers => ['Transfer-Encoding' => $te, @$v1h, 'Content-Type' => E2E_TYPE]));
        }
    }
    for my $line ("GET\r\n", "GET / HTTP/1.1 extra\r\n", "GET  / HTTP/1.1\r\n", "\x01GET / HTTP/1.1\r\n", "GET /\x7f HTTP/1.1\r\n",
                  "GET / HTTP/1.10\r\n", "GET / HTTP/1\r\n", "GET / FTP/1.1\r\n") {
        add('headers', sprintf('a request line %s', $JSON->encode([$line])), expect => '400 plain',
            bytes => $line . 'Host: ' . hp('zeq_file') . "\r\nX-E2E-Session: $v1->{id}\r\nAccept: " . E2E_TYPE
                     . "\r\nConnection: close\r\n\r\n");
    }
}

# --- handshakes -------------------------------------------------------------------------

my $P256 = 'ffffffff00000001000000000000000000000000ffffffffffffffffffffffff';

sub gen_handshakes {
    my $i = 0;
    my $hs = sub {
        my ($body, %o) = @_;
        return http(method => $o{method} // 'POST', path => '/api/e2e/handshake', vhost => $o{vhost} // 'zeq_file',
                    headers => ['Content-Type' => 'application/json'],
                    ($o{chunks} ? (chunks => $o{chunks}) : defined $body ? (body => $body) : ()));
    };
    my $bad = sub { my ($what, $body, %o) = @_; add('handshake', $what, bytes => $hs->($body, %o), expect => BAD_HS) };
    my $cn = random_hex(32);
    my $pair = Crypt::PK::ECC->new;
    $pair->generate_key('secp256r1');
    my $point = $pair->export_key_raw('public');
    my $key = $b64url->($point);
    my $v1 = qq({"clientNonce":"$cn"});
    my $v2 = qq({"version":2,"clientNonce":"$cn","clientKey":"$key"});

    for my $m (qw(GET PUT DELETE OPTIONS PATCH PROPFIND TRACE FOO)) {
        add('handshake', "method $m", bytes => $hs->($m eq 'GET' || $m eq 'TRACE' ? undef : $v1, method => $m),
            expect => '405 e2e_method_not_allowed Allow: POST');
    }
    add('handshake', 'method HEAD', head => 1, bytes => $hs->(undef, method => 'HEAD'),
        expect => '405 HEAD application/json Allow: POST');
    $bad->("random bytes, $_ of them", random_bytes($_)) for 1 .. 60;
    $bad->("the text '$_'", $_) for '', ' ', "\r\n", 'hello', "clientNonce=$cn", "<clientNonce>$cn</clientNonce>", '{}', '[]',
        'null', 'true', '1', '"x"', qq{{"clientNonce":}}, qq{{"clientNonce":"$cn",}}, qq{{"clientNonce":"$cn"}} . qq{{"clientNonce":"$cn"}},
        qq{{'clientNonce':'$cn'}}, qq{{clientNonce:"$cn"}}, qq{{"clientNonce":"$cn"} x}, qq{["$cn"]}, qq{"$cn"},
        qq{{"clientNonce":"$cn"/*c*/}};
    $bad->(sprintf('control character 0x%02x between tokens', $_), qq({"clientNonce":"$cn") . chr($_) . '}')
        for grep { $_ != 9 && $_ != 10 && $_ != 13 } 1 .. 31;
    $bad->(sprintf('control character 0x%02x in a string', $_), qq({"clientNonce":"$cn","x":"a) . chr($_) . 'b"}')
        for 1 .. 31;
    $bad->("the v1 body cut to $_ bytes", substr($v1, 0, $_)) for 1 .. length($v1) - 1;
    $bad->("the v2 body cut to $_ bytes", substr($v2, 0, $_)) for 1 .. length($v2) - 1;
    # Not UTF-8 (RFC 8259 8.1), anywhere.
    my @utf8 = ("\xff", "\x80", "\xc3", "\xc0\xaf", "\xc1\xbf", "\xe0\x80\xaf", "\xed\xa0\x80", "\xf0\x80\x80\xaf",
                "\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xe2\x82", "\xe2\x28\xa1", "\xfe\xff");
    for my $u (@utf8) {
        my $x = sprintf '%vx', $u;
        $bad->("bytes $x in an ignored member", qq({"clientNonce":"$cn","note":"a${u}b"}));
        $bad->("bytes $x in an ignored member's name", qq({"clientNonce":"$cn","n${u}":1}));
        $bad->("bytes $x after the object", qq({"clientNonce":"$cn"} $u));
        $bad->("bytes $x at the end of the nonce", qq({"clientNonce":"$cn$u"}));
        $bad->("bytes $x in a v2 body", qq({"version":2,"clientNonce":"$cn","clientKey":"$key","x":"$u"}));
    }
    $bad->('a byte order mark first', "\xef\xbb\xbf$v1");
    # NUL, raw or escaped.
    $bad->("a NUL byte at $_", substr($v1, 0, $_) . "\0" . substr($v1, $_)) for 0, 1, 5, 20, length($v1) - 1, length($v1);
    $bad->('\\u0000 after the 64 hex digits', qq({"clientNonce":"$cn\\u0000ff"}));
    $bad->('\\u0000 in an ignored member', qq({"clientNonce":"$cn","x":"\\u0000"}));
    $bad->('\\u0000 in a member name', qq({"clientNonce":"$cn","\\u0000":1}));
    $bad->('\\u0000 in the v2 key', qq({"version":2,"clientNonce":"$cn","clientKey":"$key\\u0000"}));
    # Shapes: nesting, types.
    for my $v ('{}', '[]', "[\"$cn\"]", "{\"clientNonce\":\"$cn\"}", '123', '1e300', 'null', 'true', 'false', '""') {
        $bad->("clientNonce: $v", qq({"clientNonce":$v}));
    }
    $bad->('the object in an array', "[$v1]");
    $bad->('the object in an object', qq({"data":$v1}));
    $bad->('2000 nested arrays in an ignored member', qq({"clientNonce":"$cn","deep":) . ('[' x 2000) . (']' x 2000) . '}');
    $bad->('32 nested arrays in an ignored member (33 levels)', qq({"clientNonce":"$cn","deep":) . ('[' x 32) . (']' x 32) . '}');
    $bad->('1001 nested arrays in an ignored member', qq({"clientNonce":"$cn","deep":) . ('[' x 1001) . (']' x 1001) . '}');
    # Duplicate members (RFC 8259 section 4: which one counts differs).
    my $cn2 = random_hex(32);
    $bad->('clientNonce twice', qq({"clientNonce":"$cn","clientNonce":"$cn2"}));
    $bad->('clientNonce twice, the same', qq({"clientNonce":"$cn","clientNonce":"$cn"}));
    $bad->('version twice', qq({"version":2,"version":1,"clientNonce":"$cn","clientKey":"$key"}));
    $bad->('version twice, the same', qq({"version":2,"version":2,"clientNonce":"$cn","clientKey":"$key"}));
    $bad->('clientKey twice', qq({"version":2,"clientNonce":"$cn","clientKey":"$key","clientKey":"$key"}));
    $bad->('psk twice', qq({"version":2,"psk":false,"psk":true,"clientNonce":"$cn","clientKey":"$key"}));
    # Nonces of every wrong length and form.
    my $hex = random_hex(70);
    $bad->("a nonce of $_ hex digits", qq({"clientNonce":") . substr($hex, 0, $_) . '"}') for grep { $_ != 64 } 0 .. 140;
    for my $p (0 .. 63) {
        $bad->("a nonce with a non-hex character at $p", qq({"clientNonce":") . substr($cn, 0, $p) . 'g' . substr($cn, $p + 1) . '"}');
    }
    $bad->("a nonce $_->[0]", qq({"clientNonce":"$_->[1]"})) for ['with 0x', '0x' . substr($cn, 2)], ['with a blank', substr($cn, 0, 32) . ' ' . substr($cn, 33)],
        ['in base64url', $b64url->(pack 'H*', $cn)];
    # v2 keys of every wrong length and form, points off the curve.
    my $v2b = sub { qq({"version":2,"clientNonce":"$cn","clientKey":"$_[0]"}) };
    $bad->("a clientKey of $_ bytes", $v2b->($b64url->(random_bytes($_)))) for grep { $_ != 65 } 0 .. 100;
    $bad->("a clientKey $_->[0]", $v2b->($_->[1])) for ['with = padding', "$key="], ['in standard base64', encode_base64($point, '')],
        ['with a blank inside', substr($key, 0, 40) . ' ' . substr($key, 40)], ['with its unused low bits set', substr($key, 0, -1) . 'B'],
        ['that is empty', ''], ['of a compressed point', $b64url->(chr(2 + (ord(substr($point, 64, 1)) & 1)) . substr($point, 1, 32))];
    $bad->("the point with the prefix byte $_", $v2b->($b64url->(chr($_) . substr($point, 1)))) for 0x00, 0x02, 0x03, 0x05, 0x06, 0x07, 0xff;
    $bad->('the point at infinity (65 zero bytes)', $v2b->($b64url->("\0" x 65)));
    $bad->('a point of zeros after 0x04', $v2b->($b64url->("\x04" . ("\0" x 64))));
    $bad->('a point with x = p', $v2b->($b64url->("\x04" . pack('H*', $P256) . substr($point, 33))));
    $bad->('a point with y = p', $v2b->($b64url->(substr($point, 0, 33) . pack('H*', $P256))));
    $bad->('a point with all coordinate bits set', $v2b->($b64url->("\x04" . ("\xff" x 64))));
    $bad->("a random point off the curve ($_)", $v2b->($b64url->("\x04" . random_bytes(64)))) for 1 .. 100;
    $bad->("the point with bit $_ of its coordinates flipped", $v2b->($b64url->(flip($point, 8 + $_)))) for 0 .. 511;
    # version and psk (18.1).
    $bad->("version $_", qq({"version":$_,"clientNonce":"$cn","clientKey":"$key"})) for '"2"', '2.5', 'true', 'null', '[2]', '{}', '-0.5', '1e400';
    add('handshake', "version $_", bytes => $hs->(qq({"version":$_,"clientNonce":"$cn","clientKey":"$key"})), expect => VERSION)
        for '3', '0', '-1', '100', '1e300', '9007199254740993';
    $bad->("psk $_", qq({"version":2,"psk":$_,"clientNonce":"$cn","clientKey":"$key"})) for '"true"', '1', '0', 'null', '[]', '{}';
    # Over 4096 bytes.
    $bad->("a body of $_ bytes", $v1 . (' ' x ($_ - length $v1))) for 4097, 5000, 65536;
    $bad->('a chunked body of 5000 bytes', undef, chunks => [$v1 . (' ' x 2000), ' ' x (5000 - 2000 - length $v1)]);
    # The policy of other hosts (18.1, 18.9), once the body is valid.
    add('handshake', 'a v1 handshake where there is no secret (zeq_signed)', vhost => 'zeq_signed',
        bytes => $hs->($v1, vhost => 'zeq_signed'), expect => '503 e2e_unavailable');
    add('handshake', 'a PSK handshake where there is no secret (zeq_signed)', vhost => 'zeq_signed', expect => '503 e2e_unavailable',
        bytes => $hs->(qq({"version":2,"psk":true,"clientNonce":"$cn","clientKey":"$key"}), vhost => 'zeq_signed'));
    add('handshake', 'a v2 handshake where only v1 is offered (zeq_v1only)', vhost => 'zeq_v1only',
        bytes => $hs->($v2, vhost => 'zeq_v1only'), expect => VERSION);
    add('handshake', 'a v1 handshake where only v2 is offered (zeq_psk)', vhost => 'zeq_psk',
        bytes => $hs->($v1, vhost => 'zeq_psk'), expect => VERSION);
    add('handshake', 'a v2 handshake without psk where it is required (zeq_psk)', vhost => 'zeq_psk',
        bytes => $hs->($v2, vhost => 'zeq_psk'), expect => '400 e2e_psk_required');
}

# --- WebSockets ---------------------------------------------------------------------------

# Openings refused before any tunnel (16.1, 18.11).
sub gen_ws_openings {
    my $s = $CTX->{v2};
    my $wsget = sub {
        my ($query, %o) = @_;
        return http(method => 'GET', path => '/ws/echo?' . $query,
                    headers => [Upgrade => 'websocket', Connection => 'Upgrade',
                                'Sec-WebSocket-Key' => encode_base64(random_bytes(16), ''),
                                'Sec-WebSocket-Version' => 13, @{ $o{headers} || [] }],
                    ($o{body} ? (body => $o{body}) : ()));
    };
    my $conn = 'tbadopening';
    my $v2q = sub {
        my ($seq, $seal, @more) = @_;
        return join '&', "conn=$conn", "e2e_session=$s->{id}", "e2e_seq=$seq", "e2e_seal=$seal", @more;
    };
    my $seal_for = sub { my ($seq, $target) = @_; $b64url->(v2_seal($s, $seq, 'GET', $target // "/ws/echo?conn=$conn")) };
    add('websocket opening', 'e2e_session unknown', bytes => $wsget->("conn=$conn&e2e_session=" . ('Q' x 43)), expect => SESSION);
    add('websocket opening', 'e2e_session malformed', bytes => $wsget->("conn=$conn&e2e_session=a%2Bb"), expect => SESSION);
    add('websocket opening', 'e2e_session twice', bytes => $wsget->("conn=$conn&e2e_session=$CTX->{v1}{id}&e2e_session=x"),
        expect => '400 e2e_bad_request');
    add('websocket opening', 'e2e_session and e2e%5Fsession', expect => '400 e2e_bad_request',
        bytes => $wsget->("conn=$conn&e2e_session=$CTX->{v1}{id}&e2e%5Fsession=$CTX->{v1}{id}"));
    add('websocket opening', "a v1 opening with a body of $_->[0]", expect => '400 e2e_bad_request',
        bytes => $wsget->("conn=$conn&e2e_session=$CTX->{v1}{id}", body => $_->[1])) for ['5 bytes', 'hello'], ['a frame', ws_frame(2, 'x')];
    add('websocket opening', 'a v1 session with e2e_seq and e2e_seal', expect => DECRYPT,
        bytes => $wsget->("conn=$conn&e2e_session=$CTX->{v1}{id}&e2e_seq=0&e2e_seal=AAAA"));
    add('websocket opening', 'a v1 session id on zeq_nosecret', vhost => 'zeq_nosecret', expect => '503 e2e_unavailable',
        bytes => http(method => 'GET', vhost => 'zeq_nosecret', path => "/ws/echo?conn=$conn&e2e_session=$CTX->{v1}{id}",
                      headers => [Upgrade => 'websocket', Connection => 'Upgrade', 'Sec-WebSocket-Key' => 'AAAAAAAAAAAAAAAAAAAAAA==',
                                  'Sec-WebSocket-Version' => 13]));
    for my $k (1 .. 3) {
        my $seq = next_seq();
        my $seal = $seal_for->($seq);
        add('websocket opening', 'a v2 session without e2e_seq and e2e_seal', expect => DECRYPT,
            bytes => $wsget->("conn=$conn&e2e_session=$s->{id}")) if $k == 1;
        add('websocket opening', 'a v2 opening without e2e_seal', expect => DECRYPT,
            bytes => $wsget->("conn=$conn&e2e_session=$s->{id}&e2e_seq=$seq")) if $k == 1;
        add('websocket opening', 'a v2 opening without e2e_seq', expect => DECRYPT,
            bytes => $wsget->("conn=$conn&e2e_session=$s->{id}&e2e_seal=$seal")) if $k == 1;
        add('websocket opening', "a v2 opening whose seal has bit $_ flipped", expect => DECRYPT,
            bytes => $wsget->($v2q->($seq, $b64url->(flip(ZeqTest::V2::unb64url($seal), $_))))) for map { $_ * 3 + $k } 0 .. 87;
        add('websocket opening', 'a v2 opening with a seal of another target', expect => DECRYPT,
            bytes => $wsget->($v2q->($seq, $seal_for->($seq, '/ws/echo?conn=other'))));
        add('websocket opening', "a v2 opening with e2e_seq '$_'", expect => DECRYPT, bytes => $wsget->($v2q->($_, $seal_for->($_))))
            for '01', '-1', 'x', '9007199254740992';
        add('websocket opening', 'a v2 opening with e2e_seq twice', expect => '400 e2e_bad_request',
            bytes => $wsget->($v2q->($seq, $seal, "e2e_seq=$seq")));
        add('websocket opening', 'a v2 opening with e2e%5Fseal as well', expect => '400 e2e_bad_request',
            bytes => $wsget->($v2q->($seq, $seal, "e2e%5Fseal=$seal")));
        add('websocket opening', 'a v2 opening with a body', expect => '400 e2e_bad_request',
            bytes => $wsget->($v2q->($seq, $seal), body => 'x'));
    }
}

# Frames after a genuine encrypted opening: each closes the socket with
# its code (16.3, 18.11) and nothing reaches the backend.
sub gen_ws_frames {
    my $n = 0;
    for my $v (1, 2) {
        my $add = sub {
            my ($what, $frames, $code, %o) = @_;
            my $seq = $v == 2 ? next_seq() : undef;
            my $conn = sprintf 't%s%05d', $CTX->{tag}, $n++;
            my $ws = { v => $v, seq => $seq, conn => $conn, path => $o{path} // '/ws/echo', code => $code,
                       messages => $o{messages} // 0 };
            # frames: bytes, or a sub given (seq) returning bytes
            $ws->{frames} = ref $frames eq 'CODE' ? $frames->($seq) : $frames;
            add('websocket frame', "v$v: $what", ws => $ws, expect => "close $code");
        };
        my $s = $v == 1 ? $CTX->{v1} : $CTX->{v2};
        # A message as the client seals it: v1 an envelope of type ||
        # data, v2 a sealed message bound to the socket and counter.
        my $msg = sub {
            my ($seq, $pt, %o) = @_;
            return ZeqTest::seal($o{key} // $s->{key}, $pt) if $v == 1;
            return ZeqTest::V2::seal($o{key} // $s->{c2s},
                                     ZeqTest::V2::ws_aad($o{s} // $s, $o{seq} // $seq, $o{dir} // 'c2s', $o{n} // 0), $pt);
        };
        my $bin = sub { ws_frame(2, $_[0], %{ $_[1] || {} }) };
        my $len = length $msg->(0, "\x01hello");
        $add->("bit $_ of a sealed message flipped", sub { $bin->(flip($msg->($_[0], "\x01hello"), $_)) }, 1008)
            for 0 .. 8 * $len - 1;
        $add->("a sealed message cut to $_ bytes", sub { $bin->(substr($msg->($_[0], "\x01hello"), 0, $_)) }, 1008)
            for 0 .. $len - 1;
        $add->("random bytes, $_ of them", $bin->(random_bytes($_)), 1008) for 1 .. 40;
        $add->('a valid message in a text frame', sub { ws_frame(1, $msg->($_[0], "\x01hello")) }, 1008);
        $add->(sprintf('type byte 0x%02x', $_), sub { $bin->($msg->($_[0], chr($_) . 'data')) }, 1008)
            for 0x00, ($v == 1 ? 0x03 : ()), 0x04 .. 0x10, 0x7f, 0x80, 0xfe, 0xff;
        $add->('a message without a type byte', sub { $bin->($msg->($_[0], '')) }, 1008);
        $add->('a message sealed under another key', sub { $bin->($msg->($_[0], "\x01x", key => "\x42" x 32)) }, 1008);
        if ($v == 2) {
            $add->("a message $_->[0]", $_->[1], 1008) for
                ['under counter 1 first', sub { $bin->($msg->($_[0], "\x01x", n => 1)) }],
                ['under counter 7 first', sub { $bin->($msg->($_[0], "\x01x", n => 7)) }],
                ['bound to s2c', sub { $bin->($msg->($_[0], "\x01x", dir => 's2c')) }],
                ['bound to another upgrade number', sub { $bin->($msg->($_[0], "\x01x", seq => $_[0] + 1)) }],
                ['bound to another session', sub { $bin->($msg->($_[0], "\x01x", s => { id => $CTX->{v2b}{id} })) }],
                ['under the answer key', sub { $bin->($msg->($_[0], "\x01x", key => $s->{s2c})) }],
                ['an end message with data', sub { $bin->($msg->($_[0], "\x03x")) }],
                ['after the end message', sub { $bin->($msg->($_[0], "\x03")) . $bin->($msg->($_[0], "\x01x", n => 1)) }];
            # (the echo of the first read before the second is sent)
            $add->('message 0 again after message 0', sub { [$bin->($msg->($_[0], "\x01first")), $bin->($msg->($_[0], "\x01again"))] },
                   1008, messages => 1);
        }
        # RFC 6455 broken: 1002.
        $add->("reserved bits $_ set", sub { $bin->($msg->($_[0], "\x01x"), { rsv => $_ }) }, 1002) for 1 .. 7;
        $add->('a continuation without a message', sub { ws_frame(0, $msg->($_[0], "\x01x")) }, 1002);
        $add->('a new message inside a fragmented one',
               sub { my $m = $msg->($_[0], "\x01x"); ws_frame(2, substr($m, 0, 5), fin => 0) . ws_frame(2, substr($m, 5)) }, 1002);
        $add->('a fragmented ping', ws_frame(9, 'ping', fin => 0), 1002);
        $add->('a ping of 126 bytes', ws_frame(9, 'p' x 126), 1002);
        $add->(sprintf('reserved opcode 0x%x', $_), sub { ws_frame($_, $msg->($_[0], "\x01x")) }, 1002) for 3 .. 7, 0xb .. 0xf;
        $add->('an unmasked frame', sub { $bin->($msg->($_[0], "\x01x"), { mask => 0 }) }, 1002);
        $add->('a 64-bit length with its top bit set', "\x82\xff" . pack('Q>', 1 << 63) . 'mask', 1002);
        # Over ZeqE2EMaxMessage (4096 under /ws/small/): 1009.
        $add->('a message of 4,097 bytes', sub { $bin->($msg->($_[0], "\x02" . ('b' x 4097))) }, 1009, path => '/ws/small/echo');
        $add->('a frame announcing 2^40 bytes', "\x82\xff" . pack('Q>', 1 << 40) . 'mask', 1009, path => '/ws/small/echo');
        $add->('a message of 6,000 bytes in three fragments', sub {
            my $m = $msg->($_[0], "\x02" . ('b' x 6000));
            ws_frame(2, substr($m, 0, 2000), fin => 0) . ws_frame(0, substr($m, 2000, 2000), fin => 0) . ws_frame(0, substr($m, 4000))
        }, 1009, path => '/ws/small/echo');
    }
}

# Runs one WebSocket case: the genuine opening, the frames, the close.
sub run_ws {
    my ($c) = @_;
    my $w = $c->{ws};
    my $ws;
    if ($w->{v} == 1) {
        $ws = ZeqTest::WebSocket->connect(vhost => 'zeq_file', path => $w->{path}, conn => $w->{conn},
                                          session => $CTX->{v1}, timeout => 10);
    }
    else {
        my $s = $CTX->{v2};
        my $target = "$w->{path}?conn=$w->{conn}";
        my $seal = $b64url->(v2_seal($s, $w->{seq}, 'GET', $target));
        $ws = ZeqTest::WebSocket->connect(vhost => 'zeq_file', path => $w->{path}, conn => $w->{conn}, session_id => undef,
                                          query => "e2e_session=$s->{id}&e2e_seq=$w->{seq}&e2e_seal=$seal", timeout => 10);
        $ws->{key} = undef;
    }
    return "opening answered $ws->{status}" unless $ws->{open};
    my @frames = ref $w->{frames} ? @{ $w->{frames} } : ($w->{frames});
    $ws->write_raw(shift @frames);
    for my $f (@frames) {
        my $echo = $ws->read_message;
        return "no echo of the first message: $echo->{kind}" unless $echo->{kind} eq 'message';
        $ws->write_raw($f);
    }
    while (1) {
        my $m = $ws->read_message;
        next if $m->{kind} eq 'message';
        my $got = $m->{kind} eq 'close' ? 'close ' . ($m->{code} // 'without a code') : $m->{kind};
        $got .= ' (the connection stays open)' if $m->{kind} eq 'close' && !$ws->wait_eof(10);
        $ws->close_socket;
        return $got;
    }
}

# --- running the cases ------------------------------------------------------------------

sub run_case {
    my ($c) = @_;
    for my $s (@{ $c->{setup} || [] }) {
        my ($vhost, $bytes, $want, $open) = @$s;
        my $got = describe({ open => $open }, exchange($vhost, $bytes));
        return "its genuine first request answered $got, not $want" if $got ne $want;
    }
    return run_ws($c) if $c->{ws};
    return describe($c, exchange($c->{vhost}, $c->{bytes}));
}

# Genuine requests of each kind: they must reach the application.
sub controls {
    my @out;
    my $v1 = $CTX->{v1};
    my $s = $CTX->{v2};
    my $pt = '{"control":"' . $CTX->{tag} . '"}';
    my $r = exchange('zeq_file', v1_post(0, ZeqTest::seal($v1->{key}, $pt), path => CGI . "?control=$CTX->{tag}-v1"));
    my $e = decode_json_safe(ZeqTest::open_envelope($v1->{key}, $r->{body}) // '') // {};
    push @out, ["v1 POST to the CGI", "$r->{status} " . ($e->{body} // 'no plaintext'), "200 $pt"];
    my $seq = next_seq();
    my $path = PROXY . "?control=$CTX->{tag}-v2";
    $r = exchange('zeq_file', v2_req(method => 'POST', path => $path, seq => $seq, type => 'application/json',
                                     body => ZeqTest::V2::seal($s->{c2s}, v2_aad($s, $seq, 'POST', $path, 'application/json'), $pt)));
    my $a = ZeqTest::V2::check_answer($s, $r, $seq, 'POST');
    $e = decode_json_safe($a->{plain} // '') // {};
    push @out, ["v2 POST to the backend", "$r->{status} $a->{verified} " . ($e->{body} // 'no plaintext'), "200 1 $pt"];
    $seq = next_seq();
    $path = CGI . "?control=$CTX->{tag}-v2get";
    $r = exchange('zeq_file', v2_req(path => $path, seq => $seq));
    $a = ZeqTest::V2::check_answer($s, $r, $seq, 'GET');
    push @out, ["v2 GET of the CGI", "$r->{status} $a->{verified}", '200 1'];
    for my $v (1, 2) {
        my $conn = "t$CTX->{tag}control$v";
        my $c = { ws => { v => $v, seq => $v == 2 ? next_seq() : undef, conn => $conn, path => '/ws/echo' } };
        $c->{ws}{frames} = $v == 1 ? ws_frame(2, ZeqTest::seal($v1->{key}, "\x01control"))
                         : ws_frame(2, ZeqTest::V2::seal($s->{c2s}, ZeqTest::V2::ws_aad($s, $c->{ws}{seq}, 'c2s', 0), "\x01control"))
                           . ws_frame(2, ZeqTest::V2::seal($s->{c2s}, ZeqTest::V2::ws_aad($s, $c->{ws}{seq}, 'c2s', 1), "\x03"));
        $c->{ws}{frames} .= ws_frame(8, pack('n', 1000));
        my $got = run_ws($c);
        push @out, ["v$v WebSocket message", $got, 'close 1000'];
        push @out, ["v$v WebSocket message: the backend got it",
                    scalar(messages_of(wait_records($conn, sub { grep { $_->{ev} eq 'end' } @_ }, 10))), 1];
    }
    return @out;
}

# Builds every case with this worker's sessions.
sub build {
    @CASES = ();
    gen_v1_envelopes();
    gen_v2_bodies();
    gen_v2_seals();
    gen_v2_seqs();
    gen_sessions();
    gen_headers();
    gen_handshakes();
    gen_ws_openings();
    gen_ws_frames();
}

sub new_context {
    my ($tag) = @_;
    my %c = (tag => $tag, seq => HIGH_SEQ + 1);
    $c{v1} = handshake(vhost => 'zeq_file');
    $c{v1b} = handshake(vhost => 'zeq_file');
    $c{gate} = handshake(vhost => 'zeq_gate');
    $c{v2} = ZeqTest::V2::handshake(vhost => 'zeq_file');
    $c{v2b} = ZeqTest::V2::handshake(vhost => 'zeq_file');
    $c{signed} = ZeqTest::V2::handshake(vhost => 'zeq_signed');
    return \%c;
}

my $work = catdir(ZeqTest::Fixtures::var_dir(), 'badinput');
remove_tree($work);
make_path($work);

# The categories, in the order of the checks (the count is known before
# any case runs: build() makes the same list for every worker).
my @CATS = ('v1 envelope', 'v2 sealed body', 'v2 seal', 'v2 sequence number', 'v2 replay', 'sessions', 'headers',
            'handshake', 'websocket opening', 'websocket frame', 'slow body');

plan tests => @CATS + 9, need_lwp;

my $mark = log_mark();
my ($cgi0, $backend0) = (cgi_hits(), backend_hits());
my $t0 = Time::HiRes::time();

my @kids;
for my $w (0 .. WORKERS - 1) {
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        my %out = (counts => {}, failures => [], controls => [], conns => [], setup => 0);
        eval {
            $CTX = new_context("w$w");
            die "the worker's handshakes failed\n"
                unless $CTX->{v1}{ok} && $CTX->{v1b}{ok} && $CTX->{gate}{ok} && $CTX->{v2}{ok} && $CTX->{v2b}{ok}
                       && $CTX->{signed}{ok};
            my $high = describe({ open => { v => 2, s => $CTX->{v2}, seq => HIGH_SEQ } },
                                exchange('zeq_file', v2_req(path => '/static/hello.txt', seq => HIGH_SEQ)));
            die "the first request at number " . HIGH_SEQ . " answered $high\n" if $high ne '200 sealed';
            build();
            for my $k (0 .. $#CASES) {
                next unless $k % WORKERS == $w;
                my $c = $CASES[$k];
                my $got = run_case($c);
                $out{counts}{ $c->{cat} }++;
                $out{setup} += @{ $c->{setup} || [] };
                push @{ $out{conns} }, [$c->{ws}{conn}, $c->{ws}{messages}, $c->{what}] if $c->{ws};
                push @{ $out{failures} }, [$c->{cat}, $c->{what}, $c->{expect}, $got] if $got ne $c->{expect};
            }
            $out{total_built} = scalar @CASES;
            $out{controls} = [controls()];
            1;
        } or $out{died} = "$@";
        open my $fh, '>', catfile($work, "worker-$w.json") or POSIX::_exit(1);
        print {$fh} $JSON->encode(\%out);
        close $fh;
        POSIX::_exit(0);
    }
    push @kids, $pid;
}
waitpid($_, 0) for @kids;

my (%count, @failures, @controls, @conns, @died, $built, $setup);
for my $w (0 .. WORKERS - 1) {
    my $f = catfile($work, "worker-$w.json");
    my $o = decode_json_safe(do { open my $fh, '<', $f or next; local $/; <$fh> }) // { died => "no result from worker $w" };
    push @died, "worker $w: $o->{died}" if $o->{died};
    $count{$_} += $o->{counts}{$_} for keys %{ $o->{counts} || {} };
    push @failures, @{ $o->{failures} || [] };
    push @controls, @{ $o->{controls} || [] };
    push @conns, @{ $o->{conns} || [] };
    $built //= $o->{total_built};
    $setup += $o->{setup} // 0;
}

# --- bodies that stall (zeq_slow: RequestReadTimeout body=1) ---------------------------------
# Every connection sends its head and part of its body, then waits; the
# server answers each when the second has passed, before the application
# runs: a module error (408 is not one) or the server's own page.
{
    my $v1s = handshake(vhost => 'zeq_slow');
    my $v2s = ZeqTest::V2::handshake(vhost => 'zeq_slow');
    my @slow;
    my $cn = random_hex(32);
    for my $path (CGI, PROXY) {
        my $env = ZeqTest::seal($v1s->{key} // "\0" x 32, 'x' x 500);
        push @slow, ["a v1 envelope of 528 bytes, 100 sent, $path", "POST $path HTTP/1.1\r\nHost: " . hp('zeq_slow')
            . "\r\nX-E2E-Session: $v1s->{id}\r\nAccept: " . E2E_TYPE . "\r\nContent-Type: " . E2E_TYPE
            . "\r\nContent-Length: 528\r\n\r\n" . substr($env, 0, 100), '408 sealed', { v => 1, key => $v1s->{key} }];
        push @slow, ["a v1 envelope, chunked, the last chunk missing, $path", "POST $path HTTP/1.1\r\nHost: " . hp('zeq_slow')
            . "\r\nX-E2E-Session: $v1s->{id}\r\nAccept: " . E2E_TYPE . "\r\nContent-Type: " . E2E_TYPE
            . "\r\nTransfer-Encoding: chunked\r\n\r\n64\r\n" . substr($env, 0, 100) . "\r\n", '408 sealed', { v => 1, key => $v1s->{key} }];
        my $seq = $v2s->{seq}++;
        my $m = ZeqTest::V2::seal($v2s->{c2s}, v2_aad($v2s, $seq, 'POST', $path), 'x' x 500);
        push @slow, ["a v2 message of " . length($m) . " bytes, 100 sent, $path", "POST $path HTTP/1.1\r\nHost: " . hp('zeq_slow')
            . "\r\nX-E2E-Session: $v2s->{id}\r\nX-E2E-Seq: $seq\r\nAccept: " . E2E_TYPE . "\r\nContent-Type: " . E2E_TYPE
            . "\r\nContent-Length: " . length($m) . "\r\n\r\n" . substr($m, 0, 100), '408 sealed', { v => 2, s => $v2s, seq => $seq }];
        push @slow, ["a v1 envelope, nothing of the body sent, $path", "POST $path HTTP/1.1\r\nHost: " . hp('zeq_slow')
            . "\r\nX-E2E-Session: $v1s->{id}\r\nAccept: " . E2E_TYPE . "\r\nContent-Type: " . E2E_TYPE
            . "\r\nContent-Length: 528\r\n\r\n", '408 sealed', { v => 1, key => $v1s->{key} }];
    }
    for my $body (qq({"clientNonce":"$cn"}), qq({"version":2,"clientNonce":"$cn","clientKey":")
                                                . $b64url->("\x04" . random_bytes(64)) . '"}') {
        push @slow, ['a handshake of ' . length($body) . ' bytes, half sent', "POST /api/e2e/handshake HTTP/1.1\r\nHost: "
            . hp('zeq_slow') . "\r\nContent-Type: application/json\r\nContent-Length: " . length($body) . "\r\n\r\n"
            . substr($body, 0, length($body) >> 1), '408 plain'];
    }
    my ($host, $port) = split /:/, hp('zeq_slow');
    my @socks;
    for my $c (@slow) {
        my $sock = IO::Socket::INET->new(PeerAddr => $host, PeerPort => $port, Proto => 'tcp', Timeout => 10)
            or die "connect zeq_slow: $!";
        binmode $sock;
        syswrite $sock, $c->[1];
        push @socks, $sock;
    }
    for my $k (0 .. $#slow) {
        my $c = $slow[$k];
        my $got = describe({ open => $c->[3] }, parse_answer(read_to_end($socks[$k], 20)));
        close $socks[$k];
        $count{'slow body'}++;
        push @failures, ['slow body', $c->[0], $c->[2], $got] if $got ne $c->[2];
    }
}
my $elapsed = Time::HiRes::time() - $t0;

# --- the verdicts ---------------------------------------------------------------------------
my $total = 0;
$total += $_ for values %count;
print STDERR sprintf("# t/badinput.t: %d malformed requests in %.1f s (%s), %d genuine ones before some of them\n",
                     $total, $elapsed, join(', ', map { "$_ " . ($count{$_} // 0) } @CATS), $setup);
ok t_cmp(join("\n", @died), '', 'every worker made its handshakes and ran its cases');
ok t_cmp($total >= MIN_CASES ? 'enough' : "only $total", 'enough', 'at least ' . MIN_CASES . ' malformed requests');
for my $cat (@CATS) {
    my @f = grep { $_->[0] eq $cat } @failures;
    ok t_cmp(join("\n", map { "$_->[1]: expected $_->[2], got $_->[3]" } @f[0 .. ($#f < 19 ? $#f : 19)])
             . (@f > 20 ? "\n... " . (@f - 20) . ' more' : ''), '',
             "$cat: every one of the " . ($count{$cat} // 0) . ' cases got the answer docs/PROTOCOL.md gives it');
}

# The controls reached the application; nothing else did.
ok t_cmp(join("\n", map { "$_->[0]: $_->[1]" } grep { $_->[1] ne $_->[2] } @controls), '',
         'the genuine requests of each worker (v1 and v2 POST, v2 GET, v1 and v2 WebSocket messages) worked');
my @cgi = new_lines(catfile(ZeqTest::Fixtures::hits_dir(), 'cgi.log'), $cgi0);
# The backend sees the genuine openings of the frame cases, and the controls.
my %opened = map { $_->[0] => 1 } @conns;
my @backend = grep { !(m{^GET /ws/(?:small/)?echo\?conn=(\w+)$} && ($opened{$1} || $1 =~ /^t\w+control[12]$/)) }
              new_lines(catfile(ZeqTest::Fixtures::hits_dir(), 'backend.log'), $backend0);
ok t_cmp(join("\n", grep { !/[?&]control=/ } @cgi, @backend), '',
         'neither the CGI scripts nor the proxied backend saw a request but the controls (and genuine openings)');
ok t_cmp(scalar(@cgi) . ' CGI, ' . scalar(@backend) . ' backend', (2 * WORKERS) . ' CGI, ' . WORKERS . ' backend',
         'and they saw every control (the counting is not vacuous)');
my @ws_leaks;
for my $c (@conns) {
    my ($conn, $want, $what) = @$c;
    my @ev = wait_records($conn, sub { grep { $_->{ev} eq 'end' } @_ }, 10);
    my $got = scalar messages_of(@ev);
    push @ws_leaks, "$what: the backend got $got messages (expected $want)" if $got != $want;
}
ok t_cmp(join("\n", @ws_leaks[0 .. ($#ws_leaks < 19 ? $#ws_leaks : 19)]), '',
         'the WebSocket backend got no message of the ' . scalar(@conns) . ' sockets closed for a bad frame');

# The error log: nothing at warn or above, no child that died.
my @log = split /\n/, log_since($mark);
my @crash = grep { /exit signal|AH0005[0-9]|AH00060|possible coredump|Segmentation|child process \d+ still did not exit/ } @log;
ok t_cmp(join("\n", @crash[0 .. ($#crash < 9 ? $#crash : 9)]), '', 'no child of the server died');
my @loud = grep { /^\[[^\]]+\] \[[\w.]+:(?:warn|error|crit|alert|emerg)\]/ && !/\[ssl:warn\] .*AH01882: / } @log;
ok t_cmp(join("\n", @loud[0 .. ($#loud < 9 ? $#loud : 9)]), '', 'the error log gained no line at warn or above');
my $refusals = grep { /\[zeq_e2e:info\] .*ZEQ\d+: / } @log;
ok t_cmp($refusals >= MIN_CASES / 2 ? 'logged' : "only $refusals lines", 'logged',
         'the module logged its refusals at info (the log was read)');

sub new_lines {
    my ($file, $skip) = @_;
    open my $fh, '<', $file or return ();
    my @l = <$fh>;
    close $fh;
    chomp @l;
    return @l[$skip .. $#l];
}
