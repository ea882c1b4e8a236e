# The handshake guard (docs/directives.md: ZeqE2EHandshakeRate,
# ZeqE2EHandshakeConcurrency, ZeqE2EUnusedSessions), on a server of its own
# that takes the client's address from X-Forwarded-For (mod_remoteip, the
# header trusted from 127.0.0.1), so that each part of the test speaks from
# addresses of its own:
#   - over the rate: 429 e2e_rate_limited with Retry-After, v1 and v2 alike,
#     before anything is derived; other addresses, plaintext requests and
#     existing sessions unaffected; IPv6 addresses counted by /64, an
#     IPv4-mapped one as its IPv4 address; after the Retry-After it gave, a
#     handshake passes again;
#   - the derivation cap (1): while a handshake holds the slot (held by
#     t/modules/mod_zeq_test.c where the module logs that it derives),
#     others get 503 e2e_busy with Retry-After and derive nothing; once it
#     is released it completes and its keys work; a child killed while it
#     holds the slot loses it for good: the next handshake takes it back;
#   - unused sessions (2 per address): a session still unused when its
#     address has made 2 more handshakes is dropped (401), a used one
#     stays, another address's stay; on shmcb and, if redis-server is
#     installed, on redis;
#   - the counters of mod_status for each of them.
use strict;
use warnings;

use FindBin ();
use lib "$FindBin::Bin/lib";

use Apache::Test;
use Apache::TestUtil;
use File::Spec::Functions qw(catfile rel2abs);
use POSIX ();
use Time::HiRes ();
use ZeqTest;
use ZeqTest::Cluster;
use ZeqTest::Fixtures ();
use ZeqTest::V2 ();

my $lib = Apache::Test::vars('libexecdir');
plan tests => 21 + 12 + 9 + 9,
    need need_lwp,
    { 'mod_remoteip (Debian: apache2)' => sub { -f "$lib/mod_remoteip.so" } };

sub check { ok t_cmp($_[0], $_[1], $_[2]) }

my $secret = ZeqTest::Fixtures::FILE_SECRET;
my $test_module = rel2abs(catfile(ZeqTest::Cluster::top_dir(), 'build', '.libs', 'mod_zeq_test.so'));
my $hold = ZeqTest::Cluster::work_dir('flood-hold');
chmod 0777, $hold;

# One token every 10 s, 5 at once: a part's requests from one address all
# come within the 10 s a token takes to come back.
sub guard_conf {
    my (%o) = @_;
    return <<"EOC";
LoadModule remoteip_module "$lib/mod_remoteip.so"
LoadModule zeq_test_module "$test_module"
RemoteIPHeader X-Forwarded-For
RemoteIPInternalProxy 127.0.0.1
LogLevel warn zeq_e2e:debug
ZeqE2EHandshakeRate 0.1 5
ZeqE2EHandshakeConcurrency 1
ZeqE2EUnusedSessions 2
ZeqTestHoldDir "$hold"
EOC
}

my $srv = ZeqTest::Cluster::Apache->start('flood', secret => ZeqTest::Fixtures::secret_file(),
                                          extra => guard_conf());
my $hp = $srv->hostport;

sub from { ['X-Forwarded-For' => $_[0], @_[1 .. $#_]] }
sub v2_from { my ($addr, %o) = @_; ZeqTest::V2::handshake(vhost => $o{vhost} // $hp, headers => from($addr, @{ $o{headers} || [] })) }
sub v1_from { my ($addr, %o) = @_; handshake(vhost => $o{vhost} // $hp, secret => $secret, headers => from($addr)) }
sub status_of { $_[0]{res}->code }
sub counter { ($_[0] // $srv)->status_auto->{"ZeqE2E$_[1]"} // 'missing' }
# A sealed GET of a static file with the session (v1 or v2): its status,
# and whether the answer opened.
sub use_session {
    my ($s, $vhost) = @_;
    $vhost //= $hp;
    if (($s->{json}{version} // 1) == 2) {
        my $r = ZeqTest::V2::request(session => $s, vhost => $vhost, path => '/static/hello.txt');
        return "$r->{status} " . ($r->{verified} ? 'verified' : 'not verified');
    }
    my $r = request(vhost => $vhost, session => $s, path => '/static/hello.txt');
    return "$r->{status} " . ($r->{opened} ? 'verified' : 'not verified');
}

# --- the rate: 0.1 per second, burst 5 ------------------------------------------

{
    my $limited0 = counter(undef, 'Refused_e2e_rate_limited');
    my $created0 = counter(undef, 'SessionsCreated');
    my $seen = 0;           # the 429s this part receives
    my $st = sub { my $c = status_of($_[0]); $seen++ if $c == 429; $c };
    my @burst = map { $st->(v2_from('192.0.2.10')) } 1 .. 5;
    check("@burst", '200 200 200 200 200', 'a burst of 5 handshakes from one address passes');
    my $over = v2_from('192.0.2.10');
    check($st->($over), 429, 'the sixth gets 429');
    check((json_error($over->{res}) // {})->{error}, 'e2e_rate_limited', 'with the JSON error e2e_rate_limited');
    check(media_type($over->{res}->header('Content-Type')), 'application/json', 'in JSON');
    my $retry = $over->{res}->header('Retry-After') // '';
    check($retry =~ /^(?:[1-9]|10)$/ ? 'seconds' : $retry, 'seconds',
          "and Retry-After in whole seconds, at most a token's 10 ($retry)");
    check($st->(v1_from('192.0.2.10')), 429, 'a v1 handshake from that address: 429 as well');
    check(counter(undef, 'SessionsCreated') - $created0, 5, 'the refused ones created no session');
    check($st->(v2_from('192.0.2.11')), 200, 'another address is not limited');
    check($st->(v2_from('192.0.2.11')), 200, '... twice');
    check($st->(v1_from('192.0.2.12')), 200, 'nor is a v1 handshake from a third');
    check($st->(ZeqTest::V2::handshake(vhost => $hp)), 200,
          'the proxy itself (127.0.0.1, without the header) has its own bucket');
    my $plain = ZeqTest::request(vhost => $hp, path => '/static/hello.txt', headers => from('192.0.2.10'));
    check($plain->{status}, 200, 'a plaintext request from the limited address is served');
    # (Used at once: unused, it would be dropped by the next two.)
    my $earlier = v2_from('192.0.2.13');
    use_session($earlier);
    $st->(v2_from('192.0.2.13')) for 1 .. 4;
    check($st->(v2_from('192.0.2.13')), 429, 'an address that used its burst');
    check(use_session($earlier), '200 verified', '... still uses the session it made');

    # IPv6: counted by /64.
    my @v6 = map { $st->(v2_from("2001:db8:1:1::$_")) } 1 .. 5;
    check("@v6", '200 200 200 200 200', 'five handshakes from five addresses of one IPv6 /64 pass');
    check($st->(v2_from('2001:db8:1:1:ffff:ffff:ffff:9')), 429, 'a sixth from that /64: 429');
    check($st->(v2_from('2001:db8:1:2::1')), 200, 'the next /64 has its own bucket');
    check($st->(v2_from('::ffff:192.0.2.10')), 429,
          'an IPv4-mapped IPv6 address counts as its IPv4 address');

    # The Retry-After holds: after waiting what a refusal says, a handshake
    # passes (and the next does not, the bucket being empty again).
    my $again;
    for (1 .. 3) {
        $again = v2_from('192.0.2.10');
        last if $st->($again) == 429;
    }
    my $wait = $again->{res}->header('Retry-After') // 10;
    Time::HiRes::sleep($wait);
    check($st->(v2_from('192.0.2.10')), 200, "after the Retry-After it gave ($wait s), a handshake passes");
    check($st->(v2_from('192.0.2.10')), 429, '... and only one');
    check(counter(undef, 'Refused_e2e_rate_limited') - $limited0, $seen,
          "Refused_e2e_rate_limited counts each 429 of this part ($seen)");
}

# --- the derivation cap: 1 --------------------------------------------------------

# Starts a handshake from $addr whose derivation mod_zeq_test holds under
# $name; returns the pid of the client process, which writes the outcome
# to $hold/$name.out.
sub held_handshake {
    my ($addr, $name, $v1) = @_;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        my $s = $v1 ? handshake(vhost => $hp, secret => $secret, headers => from($addr, 'X-Zeq-Test-Hold' => $name))
                    : v2_from($addr, headers => ['X-Zeq-Test-Hold' => $name]);
        my $line = status_of($s) . ($s->{ok} ? ', ' . use_session($s) : '');
        open my $fh, '>', catfile($hold, "$name.out.tmp") or POSIX::_exit(1);
        print {$fh} $line;
        close $fh;
        rename catfile($hold, "$name.out.tmp"), catfile($hold, "$name.out");
        POSIX::_exit(0);
    }
    return $pid;
}
sub slurp { open my $fh, '<', $_[0] or return undef; local $/; my $t = <$fh>; close $fh; $t }
sub held_pid {
    my ($name) = @_;
    my $f = catfile($hold, "$name.held");
    ZeqTest::Cluster::wait_for(30, sub { -s $f });
    my $p = slurp($f) // '';
    return $p =~ /^(\d+)/ ? $1 : undef;
}

{
    my $busy0 = counter(undef, 'Refused_e2e_busy');
    my $client = held_handshake('192.0.2.20', 'h1');
    my $child = held_pid('h1');
    check(defined $child ? 'held' : 'not held', 'held', 'a handshake holds the one derivation slot');
    check(counter(undef, 'Derivations') . ' of ' . counter(undef, 'DerivationSlots'), '1 of 1',
          'mod_status: 1 derivation running, of 1 slot');
    my $created0 = counter(undef, 'SessionsCreated');
    my $t0 = Time::HiRes::time();
    my $busy = v2_from('192.0.2.21');
    check(status_of($busy), 503, 'meanwhile a v2 handshake from another address gets 503');
    check((json_error($busy->{res}) // {})->{error}, 'e2e_busy', 'with the JSON error e2e_busy');
    check($busy->{res}->header('Retry-After') // 'none', '1', 'and Retry-After: 1');
    check(status_of(v1_from('192.0.2.22')), 503, 'a v1 handshake as well');
    check(status_of(v2_from('192.0.2.20')), 503, 'and one from the holder\'s own address');
    check(counter(undef, 'SessionsCreated') - $created0, 0, 'none of them made a session');
    open my $fh, '>', catfile($hold, 'h1.release') or die "$hold: $!";
    close $fh;
    waitpid($client, 0);
    check(slurp(catfile($hold, 'h1.out')) // 'no outcome', '200, 200 verified',
          'released, the held handshake completes and its session works');
    check(status_of(v2_from('192.0.2.21')), 200, 'then a handshake from the other address passes');
    check(counter(undef, 'Refused_e2e_busy') - $busy0, 3, 'Refused_e2e_busy counts the three 503s');

    # A child killed while it holds the slot: the slot comes back.
    my $client2 = held_handshake('192.0.2.23', 'h2', 1);
    my $victim = held_pid('h2');
    kill 'KILL', $victim if $victim;
    ZeqTest::Cluster::wait_for(10, sub { !kill(0, $victim) });
    waitpid($client2, 0);
    my $after = v2_from('192.0.2.24');
    check(status_of($after) . ' ' . counter(undef, 'DerivationSlotsReclaimed'), '200 1',
          'after killing the child that held the slot (a v1 derivation), the next handshake takes it back '
          . '(DerivationSlotsReclaimed 1)');
}

# --- unused sessions: 2 per address ---------------------------------------------

sub unused_part {
    my ($srv, $label) = @_;
    my $vhost = $srv->hostport;
    my $dropped0 = counter($srv, 'UnusedDropped');
    my ($s1, $s2) = map { v2_from('192.0.2.30', vhost => $vhost) } 1 .. 2;
    my $other = v2_from('192.0.2.31', vhost => $vhost);
    check(use_session($s2, $vhost), '200 verified', "$label: the second of two sessions is used");
    my $s3 = v2_from('192.0.2.30', vhost => $vhost);
    check(use_session($s1, $vhost), '401 not verified',
          "$label: a third handshake drops the first, never used: 401");
    my $s4 = v2_from('192.0.2.30', vhost => $vhost);
    check(use_session($s2, $vhost), '200 verified', "$label: a fourth pushes out the second, used: it stays");
    check(join(' ', map { use_session($_, $vhost) } $s3, $s4), '200 verified 200 verified',
          "$label: the third and fourth work");
    check(use_session($other, $vhost), '200 verified', "$label: another address's unused session stays");
    my ($t1, $t2, $t3) = map { v1_from('192.0.2.32', vhost => $vhost) } 1 .. 3;
    check(join(' ', map { use_session($_, $vhost) } $t1, $t2, $t3), '401 not verified 200 verified 200 verified',
          "$label: v1 alike: the first of three unused sessions is dropped");
    check(counter($srv, 'UnusedDropped') - $dropped0, 2, "$label: UnusedDropped counts the two");
    return;
}

unused_part($srv, 'shmcb');

my @unexpected = $srv->unexpected_log_lines(qr/ZEQ30009: took back 1 derivation slot/);
check(scalar(@unexpected) ? join("\n", @unexpected) : 'none', 'none',
      'no unexpected warning or error in the log (the slot taken back is expected)');
check(scalar(() = $srv->error_log =~ /ZEQ30009: /g), 1, 'the slot taken back is logged once, as a warning');
undef $srv;

SKIP: {
    skip 'redis-server is not installed', 9 unless ZeqTest::Cluster::have_redis();
    my $redis = ZeqTest::Cluster::Store->start('redis', 'flood-redis');
    my $r = ZeqTest::Cluster::Apache->start('flood-redis', store => $redis->spec,
                                            secret => ZeqTest::Fixtures::secret_file(),
                                            record_key => ZeqTest::Cluster::record_key_file(
                                                catfile(ZeqTest::Cluster::work_dir('flood-keys'), 'record.key'),
                                                'flood'),
                                            extra => guard_conf());
    unused_part($r, 'redis');
    check(join("\n", $r->unexpected_log_lines) || 'none', 'none', 'redis: no warning or error in the log');
    check($redis->ping ? 'up' : 'down', 'up', 'redis ran throughout');
}
