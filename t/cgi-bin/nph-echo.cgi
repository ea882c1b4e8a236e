#!/usr/bin/perl
# Non-parsed-header CGI (also the DirectoryIndex of t/htdocs/nphdir/, as a
# link): writes its own status line and headers, so its
# output goes straight to the connection. Its body carries a marker the
# tests look for: it must never reach a client of an encrypted exchange.
use strict;
use warnings;
use FindBin ();
use Fcntl qw(:flock);

binmode STDOUT;
if (open my $fh, '>>', "$FindBin::RealBin/../var/hits/cgi.log") {
    flock $fh, LOCK_EX;
    print {$fh} ($ENV{REQUEST_METHOD} // '') . ' ' . ($ENV{REQUEST_URI} // '') . "\n";
    close $fh;
}
my $body = "NPH-PLAINTEXT-MARKER: the nph script's output\n";
my $proto = $ENV{SERVER_PROTOCOL} // 'HTTP/1.0';
$proto = 'HTTP/1.1' unless $proto =~ m{^HTTP/1\.[01]$};
print "$proto 200 OK\r\n",
      "Content-Type: text/plain\r\n",
      "Content-Length: " . length($body) . "\r\n",
      "Connection: close\r\n",
      "\r\n",
      $body;
