package ZeqTest::V2;
# The suite's client of protocol v2 (docs/PROTOCOL.md section 18), written
# from the protocol alone with CryptX (Crypt::PK::ECC, hkdf, pbkdf2,
# Crypt::AuthEnc::GCM), independent of the module's OpenSSL code: the ECDH
# handshake (plain, pre-shared key, signed), sealed messages, the AADs of
# requests, answers and WebSocket messages, requests with sequence numbers
# and seals, and the check of every answer (its body or its X-E2E-Seal).
#
#   my $s = ZeqTest::V2::handshake(vhost => 'zeq_file');
#   my $r = ZeqTest::V2::request(session => $s, method => 'POST',
#                                path => '/cgi-bin/echo.cgi', body => '{}');
#   $r->{status}, $r->{plain}, $r->{verified} (1: the answer verified)
use strict;
use warnings;

use Crypt::AuthEnc::GCM qw(gcm_encrypt_authenticate gcm_decrypt_verify);
use Crypt::KeyDerivation qw(hkdf pbkdf2);
use Crypt::PK::ECC ();
use Crypt::PRNG qw(random_bytes);
use Digest::SHA qw(sha256);
use HTTP::Request ();
use JSON::PP ();
use IO::Select ();
use MIME::Base64 qw(encode_base64 decode_base64);
use Time::HiRes ();

use ZeqTest ();

use constant E2E_TYPE    => 'application/x-zeq-e2e';
use constant RECORD_SIZE => 16384;
use constant FINAL       => 0x80000000;

my $JSON = JSON::PP->new->canonical(1);

sub b64url {
    (my $s = encode_base64($_[0], '')) =~ tr{+/}{-_};
    $s =~ s/=+$//;
    return $s;
}
sub unb64url {
    my ($s) = @_;
    return undef unless defined $s && $s =~ /^[A-Za-z0-9_-]*$/;
    (my $t = $s) =~ tr{-_}{+/};
    $t .= '=' x ((4 - length($t) % 4) % 4);
    return decode_base64($t);
}

# --- sealed messages (18.5) -------------------------------------------------------------

sub aad { join "\0", @_ }
sub request_aad  { my ($s, $seq, $method, $target, $type) = @_;
                   aad('zeq-e2e/2 request', $s->{id}, $seq // '', $method, $target, $type // '') }
sub response_aad { my ($s, $seq, $status, $type, $enc) = @_;
                   aad('zeq-e2e/2 response', $s->{id}, $seq, sprintf('%03d', $status),
                       $type // '', $enc // '') }
sub ws_aad       { my ($s, $seq, $dir, $n) = @_; aad('zeq-e2e/2 ws', $s->{id}, $seq, $dir, $n) }

sub nonce_of {
    my ($base, $i) = @_;
    return $base ^ ("\0\0\0\0" . pack('N', int($i / 2**32)) . pack('N', $i % 2**32));
}

# Seals plaintext: 0x02 || nonce_base || records of record_size bytes.
# Options: nonce_base, record_size, records => [sizes...] (explicit record
# lengths, the last one final), final_flags => [...] (override).
sub seal {
    my ($key, $aad, $pt, %o) = @_;
    $pt //= '';
    my $base = $o{nonce_base} // random_bytes(12);
    my $size = $o{record_size} // RECORD_SIZE;
    my @sizes;
    if ($o{records}) {
        @sizes = @{ $o{records} };
    }
    else {
        my $left = length $pt;
        do { my $n = $left > $size ? $size : $left; push @sizes, $n; $left -= $n } while ($left > 0);
    }
    my ($out, $off) = ("\x02" . $base, 0);
    for my $i (0 .. $#sizes) {
        my $n = $sizes[$i];
        my $final = $o{final_flags} ? $o{final_flags}[$i] : ($i == $#sizes ? 1 : 0);
        my $header = pack('N', ($final ? FINAL : 0) | $n);
        # (a copy: CryptX reads a substr() argument as empty)
        my $chunk = substr($pt, $off, $n);
        my ($ct, $tag) = gcm_encrypt_authenticate('AES', $key, nonce_of($base, $i), $aad . $header,
                                                  $chunk);
        $out .= $header . $ct . $tag;
        $off += $n;
    }
    return $out;
}

# The plaintext of a sealed message, or undef when anything is wrong with
# it (the prefix, a header, a tag, a missing final record, trailing bytes).
sub open_msg {
    my ($key, $aad, $msg) = @_;
    return undef unless defined $msg && length($msg) >= 13 && substr($msg, 0, 1) eq "\x02";
    my $base = substr($msg, 1, 12);
    my ($at, $i, $pt) = (13, 0, '');
    while (1) {
        return undef if length($msg) - $at < 4;
        my $h = unpack('N', substr($msg, $at, 4));
        my $header = substr($msg, $at, 4);
        my $len = $h & 0xffffff;
        return undef if ($h & 0x7f000000) || $len > 1048576;
        return undef if length($msg) - $at - 4 < $len + 16;
        my $ct = substr($msg, $at + 4, $len);
        my $tag = substr($msg, $at + 4 + $len, 16);
        my $p = gcm_decrypt_verify('AES', $key, nonce_of($base, $i), $aad . $header, $ct, $tag);
        return undef unless defined $p;
        $pt .= $p;
        $at += 4 + $len + 16;
        $i++;
        if ($h & FINAL) {
            return $at == length($msg) ? $pt : undef;
        }
    }
}

sub sealed_len {
    my ($n) = @_;
    my $records = $n == 0 ? 1 : int(($n + RECORD_SIZE - 1) / RECORD_SIZE);
    return 13 + 20 * $records + $n;
}

# --- the handshake (18.1 to 18.4) ---------------------------------------------------------

sub psk_of { pbkdf2($_[0], 'zeq-e2e/2 psk', 100000, 'SHA256', 32) }

# Returns { ok, vhost, id, c2s, s2c, seq (the next number), json, res,
# client_point, server_point, cn, sn, transcript }. Options: vhost, psk (1:
# "psk": true), secret (the secret PSK mode uses; the vhost's by default),
# body (raw JSON to send instead), client_key (a Crypt::PK::ECC pair),
# headers (more request headers: [Name => value, ...]).
sub handshake {
    my (%a) = @_;
    my $vhost = $a{vhost} // 'zeq_file';
    my $pair = $a{client_key} // do { my $k = Crypt::PK::ECC->new; $k->generate_key('secp256r1'); $k };
    my $cn = random_bytes(32);
    my $point = $pair->export_key_raw('public');
    my $body = $a{body} // $JSON->encode({ version => 2, clientNonce => unpack('H*', $cn),
                                           clientKey => b64url($point),
                                           ($a{psk} ? (psk => JSON::PP::true) : ()) });
    my $res = ZeqTest::handshake_raw(vhost => $vhost, path => $a{path}, body => $body,
                                     headers => $a{headers});
    my $s = { ok => 0, vhost => $vhost, res => $res, client_point => $point, cn => $cn, seq => 0 };
    return $s unless $res->code == 200;
    my $j = ZeqTest::decode_json_safe($res->decoded_content(charset => 'none'));
    $s->{json} = $j;
    return $s unless ref $j eq 'HASH' && ($j->{version} // 0) == 2
        && ($j->{serverNonce} // '') =~ /^[0-9a-f]{64}$/
        && ($j->{sessionId} // '') =~ /^[A-Za-z0-9_-]{1,128}$/;
    my $sk = unb64url($j->{serverKey});
    return $s unless defined $sk && length $sk == 65;
    my $server = Crypt::PK::ECC->new;
    return $s unless eval { $server->import_key_raw($sk, 'secp256r1'); 1 };
    my $z = $pair->shared_secret($server);
    ZeqTest::record_needle('shared-secret', $z);
    my $sn = pack 'H*', $j->{serverNonce};
    my $ikm = $z;
    if ($a{psk}) {
        my $secret = $a{secret} // ZeqTest::secret_for($vhost);
        $ikm .= psk_of($secret);
    }
    $s->{id} = $j->{sessionId};
    $s->{sn} = $sn;
    $s->{server_point} = $sk;
    $s->{expires_in} = $j->{expiresIn};
    $s->{c2s} = hkdf($ikm, $cn . $sn, 'SHA256', 32, 'zeq-e2e/2 c2s');
    $s->{s2c} = hkdf($ikm, $cn . $sn, 'SHA256', 32, 'zeq-e2e/2 s2c');
    $s->{transcript} = "zeq-e2e/2 handshake\0" . $cn . $sn . $point . $sk . $s->{id};
    ZeqTest::record_key($_) for $s->{c2s}, $s->{s2c};
    ZeqTest::record_session_id($s->{id});
    $s->{ok} = 1;
    return $s;
}

# 1 when the answer's signature verifies over the transcript with the
# public key in PEM or DER (Crypt::PK::ECC accepts both), and its signer
# is the SHA-256 of that key's SubjectPublicKeyInfo.
sub signature_ok {
    my ($s, $pubkey) = @_;
    my $j = $s->{json} // {};
    my $sig = unb64url($j->{signature});
    my $signer = unb64url($j->{signer});
    return 0 unless defined $sig && length $sig == 64 && defined $signer;
    my $pk = Crypt::PK::ECC->new(\$pubkey);
    # (public_short: the named curve, as OpenSSL writes a SubjectPublicKeyInfo)
    return 0 unless $signer eq sha256($pk->export_key_der('public_short'));
    return $pk->verify_message_rfc7518($sig, $s->{transcript}, 'SHA256') ? 1 : 0;
}

# --- requests (18.6) and their answers (18.8) ------------------------------------------------

# One request. Arguments: session, vhost (the session's), method (GET),
# path, body (plaintext, sealed), raw_body (bytes as they are),
# content_type, inner_type, accept (default the envelope type; '' none),
# seq (default the session's next number, which is then advanced),
# seal (an X-E2E-Seal value instead of the computed one; '' none),
# aad_method / aad_target / aad_type / aad_seq (what the seal or the body
# binds, if not what is sent), key (instead of c2s), headers, via ('lwp'
# or 'curl'), http2. Returns { status, h, body, plain, verified (1/0/undef
# when the answer is not sealed and has a body), sent_seq, ... }.
sub request {
    my (%a) = @_;
    my $s = $a{session};
    my $vhost = $a{vhost} // $s->{vhost};
    my $method = $a{method} // 'GET';
    my $path = $a{path};
    my $seq = exists $a{seq} ? $a{seq} : $s->{seq}++;
    my $type = $a{inner_type};
    my $key = $a{key} // $s->{c2s};
    my $aad = request_aad($s, $a{aad_seq} // $seq, $a{aad_method} // $method,
                          $a{aad_target} // $path, $a{aad_type} // $type);
    my @h = ('X-E2E-Session' => $a{session_id} // $s->{id});
    push @h, 'X-E2E-Seq' => $seq if defined $seq;
    my $accept = $a{accept} // E2E_TYPE;
    push @h, Accept => $accept if length $accept;
    push @h, 'X-E2E-Content-Type' => $type if defined $type;
    my ($body, $ctype);
    if (defined $a{raw_body}) {
        $body = $a{raw_body};
        $ctype = $a{content_type};
    }
    elsif (defined $a{body}) {
        $body = seal($key, $aad, $a{body}, %{ $a{seal_opts} || {} });
        ZeqTest::record_plaintext($a{body});
        $ctype = $a{content_type} // E2E_TYPE;
    }
    my $seal = $a{seal};
    $seal = b64url(seal($key, $aad, '')) if !defined $seal && !defined $body;
    push @h, 'X-E2E-Seal' => $seal if defined $seal && length $seal;
    push @h, 'Content-Type' => $ctype if defined $ctype;
    push @h, @{ $a{headers} || [] };
    my $r;
    if (($a{via} // 'lwp') eq 'curl') {
        $r = ZeqTest::curl_request(vhost => $vhost, method => $method, path => $path,
                                   headers => \@h, body => $body, http2 => $a{http2} // 1);
    }
    else {
        my $req = HTTP::Request->new($method, ZeqTest::url($vhost, $path));
        $req->header(@h);
        if (defined $body) {
            $req->content($body);
            $req->header('Content-Length' => length $body);
        }
        my $res = ZeqTest::ua()->request($req);
        $r = { status => $res->code, h => $res->headers, body => $res->content, res => $res };
    }
    $r->{sent_seq} = $seq;
    $r->{sent} = $body;
    return check_answer($s, $r, $seq, $method);
}

# Verifies an answer as a v2 client must (18.8): a sealed body under k_s2c
# with the answer's AAD, or, without a body, its X-E2E-Seal.
sub check_answer {
    my ($s, $r, $seq, $method) = @_;
    $r->{body} //= '';
    my $h = $r->{h};
    my $status = $r->{status};
    my $type = $h->header('X-E2E-Content-Type');
    my $enc = $h->header('X-E2E-Content-Encoding');
    my $aad = response_aad($s, $seq // 0, $status, $type, $enc);
    $r->{enveloped} = ZeqTest::media_type($h->header('Content-Type')) eq E2E_TYPE ? 1 : 0;
    if (length $r->{body} && $r->{enveloped}) {
        my $pt = open_msg($s->{s2c}, $aad, $r->{body});
        $r->{verified} = defined $pt ? 1 : 0;
        $r->{plain} = $pt;
    }
    elsif (!length $r->{body}) {
        my $seal = unb64url($h->header('X-E2E-Seal'));
        my $pt = defined $seal ? open_msg($s->{s2c}, $aad, $seal) : undef;
        $r->{verified} = defined $pt && $pt eq '' ? 1 : 0;
        $r->{plain} = '';
    }
    else {
        $r->{verified} = undef;         # a plaintext body: a module error or plaintext
        $r->{plain} = $r->{body};
    }
    return $r;
}

# --- streamed answers (18.8, streaming) -----------------------------------------------------

# An incremental reader of one sealed message: feed it bytes as they
# arrive; it opens each record as soon as it is whole and calls
# on_record->({ plain, final, len, time }). $r->{error} says why it stopped
# (a record that does not verify, bytes after the final one).
sub reader {
    my ($key, $aad, $on_record) = @_;
    return bless { key => $key, aad => $aad, buf => '', i => 0, final => 0, error => undef,
                   records => 0, on_record => $on_record }, 'ZeqTest::V2::Reader';
}

package ZeqTest::V2::Reader;

sub feed {
    my ($self, $bytes) = @_;
    return if $self->{error};
    $self->{buf} .= $bytes;
    if (!defined $self->{base}) {
        return if length $self->{buf} < 13;
        return $self->{error} = 'not a v2 message' if substr($self->{buf}, 0, 1) ne "\x02";
        $self->{base} = substr($self->{buf}, 1, 12);
        substr($self->{buf}, 0, 13, '');
    }
    while (!$self->{error}) {
        if ($self->{final}) {
            $self->{error} = 'bytes after the final record' if length $self->{buf};
            return;
        }
        return if length $self->{buf} < 4;
        my $h = unpack('N', substr($self->{buf}, 0, 4));
        my $len = $h & 0xffffff;
        return $self->{error} = 'a bad record header' if ($h & 0x7f000000) || $len > 1048576;
        return if length $self->{buf} < 4 + $len + 16;
        my $header = substr($self->{buf}, 0, 4);
        my $ct = substr($self->{buf}, 4, $len);
        my $tag = substr($self->{buf}, 4 + $len, 16);
        substr($self->{buf}, 0, 4 + $len + 16, '');
        my $pt = Crypt::AuthEnc::GCM::gcm_decrypt_verify(
            'AES', $self->{key}, ZeqTest::V2::nonce_of($self->{base}, $self->{i}),
            $self->{aad} . $header, $ct, $tag);
        return $self->{error} = "record $self->{i} does not verify" unless defined $pt;
        $self->{i}++;
        $self->{final} = ($h & 0x80000000) ? 1 : 0;
        $self->{on_record}->({ plain => $pt, final => $self->{final}, len => $len,
                               time => Time::HiRes::time() });
    }
}

package ZeqTest::V2;

# A GET whose answer is read as it comes, over HTTP/1.1 (a raw socket,
# chunked or with a Content-Length) or HTTP/2 (curl --http2 -N, vhost
# zeq_h2). on_record is called for each record as it verifies. Returns
# { status, h, error (of the message), final (1: its final record came),
# records, ended ('eof', 'timeout', 'reset') }.
sub stream_get {
    my (%a) = @_;
    my $s = $a{session};
    my $vhost = $a{vhost} // $s->{vhost};
    my $path = $a{path};
    my $seq = $s->{seq}++;
    my $seal = b64url(seal($s->{c2s}, request_aad($s, $seq, 'GET', $path, undef), ''));
    my $timeout = $a{timeout} // 120;
    my %res = (final => 0, records => 0);
    my $rd;
    my $on = sub {
        my ($rec) = @_;
        $res{records}++;
        $a{on_record}->($rec) if $a{on_record};
    };
    my $start_reader = sub {
        my ($h, $status) = @_;
        my $aad = response_aad($s, $seq, $status, scalar $h->header('X-E2E-Content-Type'),
                               scalar $h->header('X-E2E-Content-Encoding'));
        $rd = reader($s->{s2c}, $aad, $on);
    };
    if ($a{http2}) {
        my @cmd = ('curl', '-s', '-k', '-N', '--http2', '--max-time', $timeout, '-D', '-',
                   '-H', "X-E2E-Session: $s->{id}", '-H', "X-E2E-Seq: $seq", '-H', "X-E2E-Seal: $seal",
                   '-H', 'Accept: ' . E2E_TYPE, ZeqTest::url($vhost, $path));
        open my $pipe, '-|', @cmd or die "curl: $!";
        binmode $pipe;
        my ($buf, $head) = ('', undef);
        while (1) {
            my $n = sysread($pipe, $buf, 65536, length $buf);
            last unless $n;
            if (!$head) {
                # skip interim blocks; the final head ends with a blank line
                while ($buf =~ s/^(HTTP\/\S+ (\d{3})[^\r\n]*\r\n(?:[^\r\n]+\r\n)*)\r\n//) {
                    my ($block, $st) = ($1, $2);
                    next if $st =~ /^1/;
                    $head = HTTP::Response->parse($block);
                    $res{status} = $st;
                    $res{h} = $head->headers;
                    $start_reader->($res{h}, $st);
                    last;
                }
                next unless $head;
            }
            $rd->feed($buf);
            $buf = '';
        }
        close $pipe;
        # curl's exit codes: 92, the stream was reset (HTTP/2 stream error)
        my $exit = $? >> 8;
        $res{ended} = $exit == 0 ? 'eof' : $exit == 92 ? 'reset' : "curl exit $exit";
    }
    else {
        my $sock = ZeqTest::slow_socket(vhost => $vhost, rcvbuf => $a{rcvbuf} // 262144);
        print {$sock} "GET $path HTTP/1.1\r\nHost: " . ZeqTest::hostport($vhost) . "\r\n"
            . "X-E2E-Session: $s->{id}\r\nX-E2E-Seq: $seq\r\nX-E2E-Seal: $seal\r\n"
            . 'Accept: ' . E2E_TYPE . "\r\nConnection: close\r\n\r\n";
        my ($head, $rest) = ZeqTest::read_head($sock, $timeout);
        return { status => 0, ended => 'timeout' } unless $head;
        $res{status} = $head->code;
        $res{h} = $head->headers;
        $start_reader->($res{h}, $head->code);
        my $chunked = ($head->header('Transfer-Encoding') // '') =~ /chunked/i;
        my $sel = IO::Select->new($sock);
        my $deadline = Time::HiRes::time() + $timeout;
        my ($raw, $chunk_left, $last_chunk) = ($rest, 0, 0);
        $res{ended} = 'eof';
        while (1) {
            # decode what is buffered
            if (!$chunked) {
                $rd->feed($raw);
                $raw = '';
            }
            else {
                while (length $raw) {
                    if ($chunk_left == 0) {
                        last unless $raw =~ s/^(?:\r\n)?([0-9a-fA-F]+)[^\r\n]*\r\n//;
                        $chunk_left = hex $1;
                        if ($chunk_left == 0) { $last_chunk = 1; $raw = ''; last }
                    }
                    my $take = $chunk_left < length $raw ? $chunk_left : length $raw;
                    $rd->feed(substr($raw, 0, $take, ''));
                    $chunk_left -= $take;
                }
            }
            last if $last_chunk;
            my $left = $deadline - Time::HiRes::time();
            if ($left <= 0 || !$sel->can_read($left)) { $res{ended} = 'timeout'; last }
            my $n = sysread($sock, $raw, 262144, length $raw);
            if (!defined $n) { $res{ended} = 'reset'; last }
            last if $n == 0;
        }
        $res{last_chunk} = $last_chunk;
        close $sock;
    }
    $res{final} = $rd ? $rd->{final} : 0;
    $res{error} = $rd ? $rd->{error} : 'no answer';
    return \%res;
}

1;
