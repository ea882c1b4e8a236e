#!/usr/bin/perl
# A failing CGI script.
#   (no query)      "Status: 500" and no body at all
#   ?mode=malformed a header block Apache cannot parse: Apache answers with
#                   its own 500 error page and logs "malformed header"
use strict;
use warnings;
binmode STDOUT;
my $q = $ENV{QUERY_STRING} // '';
if ($q =~ /(?:^|&)mode=malformed(?:&|$)/) {
    print "this line is not a CGI header\r\n\r\n";
    exit 0;
}
print "Status: 500 Internal Server Error\r\nContent-Type: text/plain\r\n\r\n";
