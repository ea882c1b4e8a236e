# Several servers on one store: two Apache servers of their own (separate
# processes, ports and mutexes) share one redis, then one memcached
# (Debian's, started here on private ports). A session made on one serves
# encrypted requests on the other, both ways, v1 and v2; the store's TTL
# ends it on both; each sequence number is accepted once between them, also
# when the same sealed request reaches both at the same moment, round after
# round; a dump of the store holds no key and no session id; a record that
# does not open (another record key, altered, the old clear format) answers
# 401 and is logged once at info.
use strict;
use warnings;

use FindBin ();
use lib "$FindBin::Bin/lib";

use Apache::Test;
use Apache::TestUtil;
use Digest::SHA qw(sha256_hex);
use File::Spec::Functions qw(catfile);
use MIME::Base64 qw(encode_base64);
use Time::HiRes ();
use ZeqTest;
use ZeqTest::Cluster;
use ZeqTest::Fixtures ();
use ZeqTest::V2 ();

use constant ROUNDS => 25;        # races on redis
use constant MC_ROUNDS => 10;     # races on memcached
use constant RACERS => 8;         # copies of one request per round (half to each server)

my $CE = ZeqTest::CHECK_ERROR_TESTS;

plan tests => 8 + 4 + 3 + 4 + (3 * ($CE + 1) + 2) + 2 + 4,
    need need_lwp,
    { 'redis-server and redis-cli (Debian: redis-server)' => \&ZeqTest::Cluster::have_redis,
      'memcached (Debian: memcached)' => \&ZeqTest::Cluster::have_memcached };

sub check { ok t_cmp($_[0], $_[1], $_[2]) }
sub note { print map { "# $_\n" } split /\n/, join '', @_ }

my $secret = ZeqTest::Fixtures::FILE_SECRET;
my $keys_dir = ZeqTest::Cluster::work_dir('cluster-keys');
my $record_key = ZeqTest::Cluster::record_key_file(catfile($keys_dir, 'record.key'), 'cluster');
my $other_key = ZeqTest::Cluster::record_key_file(catfile($keys_dir, 'other.key'), 'another');
my $be = ZeqTest::Cluster::Backend->start('cluster-backend');
my $redis = ZeqTest::Cluster::Store->start('redis', 'cluster-redis');
my %common = (record_key => $record_key, backend => $be->addr, ttl => 5,
              secret => ZeqTest::Fixtures::secret_file());
my $A = ZeqTest::Cluster::Apache->start('cluster-a', store => $redis->spec, %common);
my $B = ZeqTest::Cluster::Apache->start('cluster-b', store => $redis->spec, %common);
my %name = ($A->hostport => 'A', $B->hostport => 'B');

# Everything a client derived and every id it got, for the dump.
my (@secrets, @ids);
sub remember {
    my ($s) = @_;
    push @ids, $s->{id} if $s->{id};
    push @secrets, grep { defined } @$s{qw(key c2s s2c)};
    return $s;
}
sub v1_session { remember(handshake(vhost => $_[0]->hostport, secret => $secret)) }
sub v2_session { remember(ZeqTest::V2::handshake(vhost => $_[0]->hostport)) }
sub hits_of { my ($re) = @_; scalar grep { $_ =~ $re } $be->hits }
sub echoed { (decode_json_safe($_[0]) // {})->{body} // '' }

# --- a session of one serves the other, both ways, v1 and v2 ---------------------------
for my $pair ([$A, $B], [$B, $A]) {
    my ($x, $y) = @$pair;
    my $what = "$name{$x->hostport} to $name{$y->hostport}";
    my $s1 = v1_session($x);
    my $pt = qq({"v1":"made on $name{$x->hostport}"});
    my $r = request(vhost => $y->hostport, session => $s1, method => 'POST',
                    path => "/app/echo?v1=$name{$x->hostport}", body => $pt);
    check("$r->{status} " . ($r->{opened} // 'x'), '200 1', "v1, $what: the request is served and the answer opens");
    check(echoed($r->{plain}), $pt, "v1, $what: the backend got the exact plaintext");

    my $s2 = v2_session($x);
    $pt = qq({"v2":"made on $name{$x->hostport}"});
    $r = ZeqTest::V2::request(session => $s2, vhost => $y->hostport, method => 'POST',
                              path => "/app/echo?v2=$name{$x->hostport}", body => $pt);
    check("$r->{status} " . ($r->{verified} // 'x'), '200 1', "v2, $what: the request is served and the answer verifies");
    check(echoed($r->{plain}), $pt, "v2, $what: the backend got the exact plaintext");
}

# --- replays between the servers, one after the other ------------------------------------
{
    my $s = v2_session($A);
    my $path = '/app/echo?replay=sequential';
    my $sealed = ZeqTest::V2::seal($s->{c2s}, ZeqTest::V2::request_aad($s, 7, 'POST', $path, undef), 'once');
    my @st = map {
        my $r = ZeqTest::V2::request(session => $s, vhost => $_->hostport, method => 'POST', path => $path,
                                     seq => 7, raw_body => $sealed, content_type => E2E_TYPE);
        "$r->{status}" . ($r->{status} == 200 ? '' : ' ' . ((json_error($r) // {})->{error} // ''))
    } ($A, $B, $A);
    check("@st", '200 400 e2e_replayed 400 e2e_replayed',
          'the same sealed request on A, then B, then A: accepted once, then replays');
    check(hits_of(qr{^POST /echo\?replay=sequential$}), 1, 'the backend executed it once');
    my $r = ZeqTest::V2::request(session => $s, vhost => $B->hostport, method => 'POST', path => $path,
                                 seq => 8, body => 'a new number');
    check($r->{status}, 200, 'the next number is accepted on B');
    $r = ZeqTest::V2::request(session => $s, vhost => $A->hostport, path => '/app/echo', seq => 8);
    check((json_error($r) // {})->{error}, 'e2e_replayed', '... and then refused on A');
}

# --- the same sealed request at the same moment on both servers, round after round -------
sub race {
    my ($x, $y, $rounds, $label) = @_;
    my (@won, @replayed, @ran);
    for my $round (1 .. $rounds) {
        # A session of its own each round (made on either server).
        my $s = v2_session($round % 2 ? $x : $y);
        my $seq = $round;
        my $path = "/app/echo?race=$label-$round";
        my $sealed = ZeqTest::V2::seal($s->{c2s}, ZeqTest::V2::request_aad($s, $seq, 'POST', $path, undef),
                                       "race $round");
        my @res = ZeqTest::Cluster::at_once(RACERS, sub {
            my $srv = $_[0] % 2 ? $x : $y;
            my $r = ZeqTest::V2::request(session => $s, vhost => $srv->hostport, method => 'POST',
                                         path => $path, seq => $seq, raw_body => $sealed,
                                         content_type => E2E_TYPE);
            return "$r->{status} " . ((json_error($r) // {})->{error} // '');
        });
        push @won, scalar grep { /^200/ } @res;
        push @replayed, scalar grep { /^400 e2e_replayed/ } @res;
        push @ran, hits_of(qr{^POST /echo\?race=\Q$label-$round\E$});
    }
    return (\@won, \@replayed, \@ran);
}

{
    my ($won, $replayed, $ran) = race($A, $B, ROUNDS, 'redis');
    my $n = ROUNDS;
    check(join(' ', @$won), join(' ', (1) x $n),
          "redis: the same sealed request sent " . RACERS . " times at once to A and B, $n rounds: exactly one accepted each round");
    check(join(' ', @$replayed), join(' ', (RACERS - 1) x $n), 'redis: every other copy: 400 e2e_replayed');
    check(join(' ', @$ran), join(' ', (1) x $n), 'redis: the backend executed each round exactly once');
    note("redis race: $n rounds of " . RACERS . " copies: accepted @$won");
}

# --- the TTL: the store ends the session on both ----------------------------------------
{
    my $s = v2_session($A);
    my $rkey = 'zeq_e2e:' . sha256_hex($s->{id});
    my $pttl = $redis->redis('PTTL', $rkey);
    check($pttl > 0 && $pttl <= 5000 ? 'within the TTL' : "PTTL $pttl", 'within the TTL',
          'redis holds the record under the hash of the id, with an expiry of at most ZeqE2ESessionTTL (5 s)');
    my $r = ZeqTest::V2::request(session => $s, vhost => $B->hostport, path => '/app/echo');
    check($r->{status}, 200, 'the session serves B');
    ZeqTest::Cluster::wait_for(12, sub { !$redis->redis('EXISTS', $rkey) });
    check($redis->redis('EXISTS', $rkey), 0, 'after the TTL the record is gone from redis');
    my @st = map { ZeqTest::V2::request(session => $s, vhost => $_->hostport, path => '/app/echo')->{status} } ($A, $B);
    check("@st", '401 401', 'and the session is unknown on A and on B');
}

# --- records that do not open --------------------------------------------------------
{
    my $C = ZeqTest::Cluster::Apache->start('cluster-c', store => $redis->spec, %common,
                                            record_key => $other_key);
    my $s = v2_session($A);
    my $tag = substr(sha256_hex($s->{id}), 0, 12);
    my $r = ZeqTest::V2::request(session => $s, vhost => $C->hostport, path => '/app/echo');
    check_error($r, 401, 'e2e_session_invalid', 'a record sealed under another record key (server C)');
    my @lines = grep { /ZEQ20010: the record of session \Q$tag\E does not open \(sealed under another record key\)/ }
                split /\n/, $C->error_log;
    check(scalar(@lines) . ' ' . (($lines[0] // '') =~ /\[zeq_e2e:info\]/ ? 'info' : 'other'), '1 info',
          'C logged it once, at info (with the hash prefix, not the id)');

    # altered in the store
    my $s2 = v2_session($A);
    my $rkey = 'zeq_e2e:' . sha256_hex($s2->{id});
    my $rec = $redis->redis('GET', $rkey);
    substr($rec, -1, 1) = chr(ord(substr($rec, -1, 1)) ^ 1);
    $redis->redis('SET', $rkey, $rec, 'PX', 5000);
    $r = ZeqTest::V2::request(session => $s2, vhost => $B->hostport, path => '/app/echo');
    check_error($r, 401, 'e2e_session_invalid', 'a record altered in the store');
    my $tag2 = substr(sha256_hex($s2->{id}), 0, 12);
    check(scalar(grep { /\[zeq_e2e:info\].*ZEQ20010: the record of session \Q$tag2\E does not open \(it does not verify\)/ }
                 split /\n/, $B->error_log), 1, 'B logged it once, at info');

    # a record of the earlier clear format (version 2, 238 bytes) under a valid id
    my $id = ZeqTest::V2::b64url(ZeqTest::Fixtures::det_bytes(32, 'clear record'));
    my $clear = "\x02\0\0\0" . ("\x11" x 234);
    $redis->redis('SET', 'zeq_e2e:' . sha256_hex($id), $clear, 'PX', 5000);
    $r = ZeqTest::V2::request(session => { %$s2, id => $id }, vhost => $A->hostport, path => '/app/echo');
    check_error($r, 401, 'e2e_session_invalid', 'a record of the earlier clear format');
    my $tag3 = substr(sha256_hex($id), 0, 12);
    check(scalar(grep { /\[zeq_e2e:info\].*ZEQ20010: the record of session \Q$tag3\E does not open \(a record version/ }
                 split /\n/, $A->error_log), 1, 'A logged it once, at info');
    $redis->redis('DEL', 'zeq_e2e:' . sha256_hex($id));

    my $s3 = v2_session($C);
    $r = ZeqTest::V2::request(session => $s3, vhost => $C->hostport, method => 'POST', path => '/app/echo',
                              body => 'still fine');
    check("$s3->{ok} $r->{status}", '1 200', 'the servers go on serving (no crash): a new session on C works');
    my @bad = map { $_->unexpected_log_lines } ($A, $B, $C);
    check(join("\n", @bad), '', 'no unexpected warn or error line in the logs of A, B and C');
}

# --- a dump of redis --------------------------------------------------------------------
sub dump_findings {
    my ($store) = @_;
    my $all = $store->dump;
    my @needles;
    for my $k (@secrets) {
        (my $b64 = encode_base64($k, '')) =~ s/=+$//;
        (my $b64url = $b64) =~ tr{+/}{-_};
        push @needles, $k, unpack('H*', $k), uc unpack('H*', $k), $b64, $b64url;
    }
    push @needles, @ids;
    my @found;
    while (my ($key, $val) = each %$all) {
        for my $n (@needles) {
            push @found, $key if index($key, $n) >= 0 || index($val // '', $n) >= 0;
        }
    }
    my @odd = grep { !/^zeq_e2e:[0-9a-f]{64}(?:[0-9a-f]{16})?$/ } keys %$all;
    my %sizes;
    $sizes{ length($all->{$_} // '') }++ for keys %$all;
    return (scalar(keys %$all), scalar(@found), \@odd, \%sizes);
}
{
    # fresh sessions of both versions (the older ones may have expired)
    v1_session($A);
    my $s = v2_session($B);
    ZeqTest::V2::request(session => $s, vhost => $A->hostport, path => '/app/echo');
    my ($n, $found, $odd, $sizes) = dump_findings($redis);
    check($n > 0 && $found == 0 ? 'none' : "$found of $n entries", 'none',
          'a dump of redis holds none of the ' . scalar(@secrets) . ' session keys (raw, hex, base64) nor any of the '
          . scalar(@ids) . " session ids ($n entries)");
    check(join(',', @$odd) . ' / ' . join(',', grep { !/^(?:100|132|1)$/ } keys %$sizes), ' / ',
          'its entries are zeq_e2e:<hash> (records of 100 or 132 bytes) and zeq_e2e:<hash><seq> (claims of 1 byte)');
}

# --- memcached -------------------------------------------------------------------------
{
    my $mc = ZeqTest::Cluster::Store->start('memcached', 'cluster-memcached');
    my %mcc = (%common, store => $mc->spec);
    my $A2 = ZeqTest::Cluster::Apache->start('cluster-a-mc', %mcc);
    my $B2 = ZeqTest::Cluster::Apache->start('cluster-b-mc', %mcc);
    $name{$A2->hostport} = 'A';
    $name{$B2->hostport} = 'B';
    my @st;
    for my $pair ([$A2, $B2], [$B2, $A2]) {
        my ($x, $y) = @$pair;
        my $s = v2_session($x);
        my $r = ZeqTest::V2::request(session => $s, vhost => $y->hostport, method => 'POST',
                                     path => '/app/echo?mc=1', body => 'over memcached');
        push @st, "$r->{status}/" . ($r->{verified} // 'x');
        my $s1 = v1_session($x);
        $r = request(vhost => $y->hostport, session => $s1, path => '/app/echo?mc=v1');
        push @st, "$r->{status}/" . ($r->{opened} // 'x');
    }
    check("@st", '200/1 200/1 200/1 200/1', 'memcached: v2 and v1 sessions of A serve B and the reverse');
    my ($won, $replayed, $ran) = race($A2, $B2, MC_ROUNDS, 'memcached');
    check(join(' ', @$won) . ' / ' . join(' ', @$ran), join(' ', (1) x MC_ROUNDS) . ' / ' . join(' ', (1) x MC_ROUNDS),
          'memcached: the same sealed request at once on A and B, ' . MC_ROUNDS
          . ' rounds: exactly one accepted and executed each round (memcached\'s add)');
    note("memcached race: " . MC_ROUNDS . " rounds: accepted @$won, executed @$ran, replays refused @$replayed");
    my ($n, $found, $odd) = dump_findings($mc);
    check($n > 0 && $found == 0 && !@$odd ? 'none' : "$found of $n entries, odd keys @$odd", 'none',
          "a dump of memcached ($n entries) holds no session key and no session id");
    my @bad = map { $_->unexpected_log_lines } ($A2, $B2);
    check(join("\n", @bad), '', 'no unexpected warn or error line in the logs of the memcached servers');
    $A2->stop;
    $B2->stop;
}

$_->stop for ($A, $B);
