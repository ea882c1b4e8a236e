# One version and one license. The version is written once, as
# ZEQ_E2E_VERSION in include/mod_zeq_e2e.h; the Makefile's VERSION (which
# names the Debian package), debian/changelog's newest entry, the npm
# package (client/package.json) and CHANGES.md's newest release carry the
# same. LICENSE is the Apache License 2.0, which client/package.json and
# debian/copyright name too. Reads the sources; needs no request.
use strict;
use warnings;

use FindBin ();
use lib "$FindBin::Bin/lib";

use Apache::Test;
use Apache::TestUtil;
use File::Spec::Functions qw(catfile);
use JSON::PP ();

# The checkout (t/run-tests says where, also when the server runs a copy of t/).
my $top = $ENV{ZEQ_T_REPO} // catfile($FindBin::Bin, '..');
sub slurp {
    my ($path) = @_;
    open my $fh, '<:raw', catfile($top, $path) or return '';
    local $/;
    return scalar <$fh> // '';
}

plan tests => 9;

my ($version) = slurp('include/mod_zeq_e2e.h') =~ /^#define\s+ZEQ_E2E_VERSION\s+"([^"]*)"/m;
ok t_cmp($version // 'none', qr/^\d+\.\d+\.\d+$/,
         'include/mod_zeq_e2e.h: ZEQ_E2E_VERSION is MAJOR.MINOR.PATCH');
$version //= 'none';

my $make = qx(make --no-print-directory -s -C "$top" version 2>&1) // '';
chomp $make;
ok t_cmp($make, $version, 'make version (the name of the Debian package) gives the same');

# libapache2-mod-zeq-e2e (VERSION) DIST; urgency=...: a native package, no
# Debian revision.
my ($deb_name, $deb_version) = slurp('debian/changelog') =~ /\A(\S+) \(([^)]+)\) /;
ok t_cmp(($deb_name // 'none') . ' ' . ($deb_version // 'none'),
         "libapache2-mod-zeq-e2e $version",
         "debian/changelog's newest entry is the package at that version");

my $pkg = eval { JSON::PP->new->decode(slurp('client/package.json')) } // {};
ok t_cmp($pkg->{version} // 'none', $version, 'client/package.json has the same version');

# Keep a Changelog: "## [Unreleased]" first, then "## [VERSION] - DATE".
my @releases = slurp('CHANGES.md') =~ /^## \[([^\]]+)\](?: - (\S+))?/mg;
my %date;
my @order;
while (my ($v, $d) = splice @releases, 0, 2) {
    push @order, $v;
    $date{$v} = $d;
}
my ($newest) = grep { $_ ne 'Unreleased' } @order;
ok t_cmp($newest // 'none', $version, "CHANGES.md's newest release is that version");
ok t_cmp($date{$newest // ''} // 'none', qr/^\d{4}-\d{2}-\d{2}$/,
         "CHANGES.md: the release has a date (YYYY-MM-DD)");

my $license = slurp('LICENSE');
ok t_cmp($license =~ /^\s*Apache License\s*\n\s*Version 2\.0, January 2004/ ? 'Apache-2.0' : 'other',
         'Apache-2.0', 'LICENSE is the Apache License, Version 2.0');
ok t_cmp($pkg->{license} // 'none', 'Apache-2.0', 'client/package.json: "license": "Apache-2.0"');
my @deb_licenses = slurp('debian/copyright') =~ /^License: (\S+)/mg;
my %uniq = map { $_ => 1 } @deb_licenses;
ok t_cmp(join(' ', sort keys %uniq), 'Apache-2.0', 'debian/copyright: Apache-2.0 only');
