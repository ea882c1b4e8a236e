# Runs last: the error_log of this run has no unexpected warning or error,
# and every line of the module carries its own tag. (t/zz_log_search.t,
# after it, looks for secrets, keys, session ids and plaintexts in every
# log.)
use strict;
use warnings;

use FindBin ();
use lib "$FindBin::Bin/lib";

use Apache::Test;
use Apache::TestUtil;
use File::Spec::Functions qw(catfile);
use ZeqTest;

plan tests => 4, need_lwp;

my $logs = Apache::Test::vars('t_logs');
my $error_log = ZeqTest::slurp(catfile($logs, 'error_log'));
my @lines = split /\n/, $error_log;

# Lines the suite provokes on purpose, each tied to its test. Keep it tight.
my @expected = (
    # t/errors.t, t/cgi.t, t/gate.t: nph- scripts refused in an encrypted
    # exchange (t/gate.t: reached through DirectoryIndex, ErrorDocument and
    # Action).
    [qr/\[zeq_e2e:error\] .* ZEQ40013: refusing nph- CGI script \S*\/nph-(?:echo|index)\.cgi /,
     'nph- refusal'],
    # t/gate.t: an encrypted opening answered 404 through mod_proxy_wstunnel's
    # raw tunnel is refused.
    [qr/\[zeq_e2e:error\] .* ZEQ60007: an encrypted WebSocket opening was answered (?:404|200) through a raw tunnel/,
     'raw-tunnel answer refused'],
    # t/gate.t: the SSI page's include of /strict/ content without a session.
    [qr/\[include:error\] .*unable to include "\/strict\/s\.json" in parsed file \S*\/ssi\/page\.shtml, subrequest setup returned 403/,
     'SSI include refused under ZeqE2ERequire'],
    # t/response.t: answers over ZeqE2EMaxResponseBody (1000 under /limits/).
    [qr/\[zeq_e2e:error\] .* ZEQ50001: .*\bZeqE2EMaxResponseBody \(1000 bytes\)/,
     'response over ZeqE2EMaxResponseBody'],
    # t/stream.t: a backend that stops in the middle of its answer (over
    # HTTP/1.1 and HTTP/2): mod_proxy_http says so, and the module says it
    # cut the sealed answer.
    [qr/\[proxy_http:error\] .*AH01110: error reading response/,
     'backend cut in the middle (mod_proxy_http)'],
    [qr/\[zeq_e2e:error\] .* ZEQ50003: sealed answer cut short after 1000000 bytes/,
     'backend cut in the middle (sealed answer cut)'],
    # t/shrink.t: a static file cut shorter while its v2 answer is sent.
    [qr/\[zeq_e2e:error\] .* ZEQ50003: sealed answer cut short after \d+ bytes: reading the file failed/,
     'a static file that shrank under its sealed answer'],
    [qr/\[zeq_e2e:error\] .* ZEQ50004: sealed answer cut short after \d+ bytes: the file became shorter while it was sent/,
     'a static file that shrank under its sealed v1 answer'],
    # t/attack.t: requests for a path above the root (one of them a
    # WebSocket opening), refused while Apache maps the URL.
    [qr/\[core:error\] .*AH10244: invalid URI path \((?:\/\.\.\/static\/hello\.txt|\/evil-ws\/\.\.\/\.\.\/x\?e2e_session=[\w-]+)\)/,
     'a path above the root'],
    # t/cgi.t: error.cgi?mode=malformed.
    [qr/\[cgid?:error\] .*(?:malformed header|Bad header).*error\.cgi/i,
     'error.cgi?mode=malformed'],
);
# Not about the module: this machine's mod_ssl was built against a newer
# OpenSSL than the one installed.
my @environment = (
    qr/\[ssl:warn\] .*AH01882: /,
);

my (@unexpected, %used);
for my $line (@lines) {
    next unless $line =~ /^\[[^\]]+\] \[[\w.]+:(warn|error|crit|alert|emerg)\]/;
    next if grep { $line =~ $_ } @environment;
    my ($hit) = grep { $line =~ $_->[0] } @expected;
    if ($hit) { $used{ $hit->[1] }++; next }
    push @unexpected, $line;
}
ok t_cmp(join("\n", @unexpected), '',
         'error_log: no unexpected line at warn, error, crit, alert or emerg level');

# The module's own lines: [zeq_e2e:LEVEL] ... ZEQnnnnn: message.
my @mod = grep { /\[zeq_e2e:\w+\]/ } @lines;
ok t_cmp(scalar(@mod) > 0 ? 'some' : 'none', 'some',
         'error_log: the module logged at debug level (LogLevel zeq_e2e:debug honoured)');
my @untagged = grep { !/\[zeq_e2e:\w+\] .*?\bZEQ\d+: / } @mod;
ok t_cmp(join("\n", @untagged), '', 'error_log: every line of the module carries a ZEQnnnnn: tag');
# Lines that mention the module but come through someone else's logger.
my @foreign = grep { /zeq_e2e|ZeqE2E/i && !/\[zeq_e2e:\w+\]/ && !/\bZEQ\d+: / } @lines;
ok t_cmp(join("\n", @foreign), '', 'error_log: no untagged line about the module from elsewhere');
