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
#   anything else             404 JSON {"backend":"not found"}
use strict;
use warnings;

use FindBin ();
use lib "$FindBin::Bin/../lib";

use Digest::SHA qw(sha256_hex);
use Fcntl qw(:flock);
use Getopt::Long qw(GetOptions);
use IO::Compress::Gzip qw(gzip $GzipError);
use IO::Socket::INET ();
use JSON::PP ();
use POSIX ();
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

my %ROUTES = (
    'POST /echo' => \&route_echo,
    'PUT /echo'  => \&route_echo,
    'GET /echo'  => \&route_echo,
    'GET /bytes' => \&route_bytes,
    'GET /gzip'  => \&route_gzip,
    'GET /status/204' => sub { { status => 204, headers => [] } },
    'GET /status/304' => sub { { status => 304, headers => [ETag => '"zeq"'] } },
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

sub reason {
    my %r = (100 => 'Continue', 200 => 'OK', 204 => 'No Content',
             304 => 'Not Modified', 404 => 'Not Found');
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

sub route_gzip {
    my ($req) = @_;
    my $json = $JSON->encode({ compressed => JSON::PP::true, text => 'zeq ' x 64 });
    gzip(\$json => \my $gz) or die "gzip: $GzipError\n";
    return { status => 200,
             headers => ['Content-Type' => 'application/json',
                         'Content-Encoding' => 'gzip', 'Vary' => 'Accept-Encoding'],
             body => $gz };
}
