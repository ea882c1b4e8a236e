#!/usr/bin/perl
# Demo only: hands the page the shared secret, so that the demo needs nothing
# but a browser. Protocol v1 shares the secret with the browser anyway (see
# docs/PROTOCOL.md, section 12): a real site would embed it in its page or
# its build, and still gains nothing against whoever can load that page.
#
# The secret is the file named by ZEQ_DEMO_SECRET_FILE (SetEnv), else the
# demo-secret beside this cgi-bin directory (where demo/run puts its copy),
# else the one `make run` generates into the build directory; like the
# module, it drops one trailing newline. Answers 404 JSON when there is none
# it can read (the file must be readable by the user CGI scripts run as).
use strict;
use warnings;
use FindBin ();
use JSON::PP ();
use Encode ();

my @candidates = grep { defined && length } (
    $ENV{ZEQ_DEMO_SECRET_FILE},
    "$FindBin::Bin/../demo-secret",             # demo/run's copy of the tree
    "$FindBin::Bin/../../build/demo-secret",    # this checkout's
);
my $json = JSON::PP->new->canonical->utf8;
for my $file (@candidates) {
    open my $fh, '<:raw', $file or next;
    local $/;
    my $secret = <$fh>;
    close $fh;
    next unless defined $secret;
    $secret =~ s/\r?\n\z//;
    next unless length $secret;
    my $text = eval { Encode::decode('UTF-8', $secret, Encode::FB_CROAK) };
    next unless defined $text;
    print "Content-Type: application/json\r\nCache-Control: no-store\r\n\r\n",
        $json->encode({ secret => $text }), "\n";
    exit 0;
}
print "Status: 404 Not Found\r\nContent-Type: application/json\r\n",
    "Cache-Control: no-store\r\n\r\n",
    $json->encode({ error => 'no_secret',
                    message => 'no readable secret file for the demo' }), "\n";
