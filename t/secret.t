# The secret stays secret: not in CGI environments (file:, env: and literal
# secrets), not in mod_info's configuration dump (a literal one is zeroed in
# the configuration tree once read). (t/zz_error_log.t checks the logs.)
use strict;
use warnings;

use FindBin ();
use lib "$FindBin::Bin/lib";

use Apache::Test;
use Apache::TestUtil;
use ZeqTest;
use ZeqTest::Fixtures ();

my @hosts = (['zeq_file', '/cgi-bin/echo.cgi'], ['zeq_env', '/cgi-bin/echo.cgi'],
             ['zeq_literal', '/custom/cgi-bin/echo.cgi'], ['zeq_nosecret', '/cgi-bin/echo.cgi']);
my @secrets = (ZeqTest::Fixtures::FILE_SECRET, ZeqTest::Fixtures::ENV_SECRET,
               ZeqTest::Fixtures::LITERAL_SECRET);

plan tests => 1 + @hosts * 3 + 7, need_lwp;

sub leaks {
    my ($text) = @_;
    my @found = grep { index($text // '', $_) >= 0 } @secrets;
    return @found ? 'contains a secret' : 'no secret';
}

# --- CGI environments ---------------------------------------------------------------
# Control: /off/cgi-bin/ sets ZEQ_T_CONTROL for the CGI; the check sees it.
{
    my $r = request(vhost => 'zeq_file', path => '/off/cgi-bin/echo.cgi');
    my $e = decode_json_safe($r->{body}) // {};
    ok t_cmp(join(',', @{ $e->{suspiciousEnvNames} || [] }), 'ZEQ_T_CONTROL',
             'control: a variable named ZEQ_* set with SetEnv is reported by the CGI');
}
for my $h (@hosts) {
    my ($vhost, $path) = @$h;
    # zeq_literal sits under ZeqE2ERequire: talk to it encrypted; the others
    # both ways are equivalent for the environment, use plaintext where the
    # host has no secret.
    my $s = $vhost eq 'zeq_nosecret' ? undef : handshake(vhost => $vhost);
    my $r = request(vhost => $vhost, path => $path, ($s ? (session => $s) : ()));
    my $e = decode_json_safe($r->{plain}) // {};
    ok t_cmp(ref $e->{env}, 'HASH', "$vhost: the CGI answered with its environment");
    ok t_cmp(join(',', @{ $e->{suspiciousEnvNames} || [] }), '',
             "$vhost: no CGI environment variable name contains SECRET or ZEQ");
    ok t_cmp(leaks(join "\n", map { "$_=" . ($e->{env}{$_} // '') } keys %{ $e->{env} || {} }),
             'no secret', "$vhost: no CGI environment value contains a secret");
}

# --- mod_info ---------------------------------------------------------------------------
{
    my $r = request(vhost => 'main', path => '/server-info?config');
    my $info = $r->{body};
    ok t_cmp($r->{status}, 200, 'mod_info ?config answers 200');
    ok t_cmp($info, qr/ZeqE2ESecret/, 'mod_info shows the ZeqE2ESecret directives');
    ok t_cmp($info, qr/env:ZEQ_T_ENV_SECRET/, 'mod_info shows the env: reference (the name only)');
    ok t_cmp(index($info, ZeqTest::Fixtures::ENV_SECRET) < 0 ? 'absent' : 'shown', 'absent',
             'mod_info does not show the value of the env: secret');
    ok t_cmp(index($info, ZeqTest::Fixtures::FILE_SECRET) < 0 ? 'absent' : 'shown', 'absent',
             'mod_info does not show the content of the file: secret');
    ok t_cmp(index($info, ZeqTest::Fixtures::LITERAL_SECRET) < 0 ? 'absent' : 'shown', 'absent',
             'mod_info does not show the literal secret (zeroed in the configuration tree)');
    my $all = request(vhost => 'main', path => '/server-info');
    ok t_cmp(index($all->{body}, ZeqTest::Fixtures::FILE_SECRET) < 0
             && index($all->{body}, ZeqTest::Fixtures::ENV_SECRET) < 0
             && index($all->{body}, ZeqTest::Fixtures::LITERAL_SECRET) < 0 ? 'absent' : 'shown',
             'absent', 'mod_info\'s full page shows none of the env:, file: and literal secrets');
}
