# docs/directives.md documents every directive of the module's command table
# (mod_zeq_e2e.c) and nothing else: each with its Description, Syntax,
# Default, Context, Override, Status and Module lines, an explanation and an
# example, its Context and Override as the table and its setter allow; the
# README's directive table lists the same directives, each linking to its
# section. Reads the sources; needs no request to the server.
use strict;
use warnings;

use FindBin ();
use lib "$FindBin::Bin/lib";

use Apache::Test;
use Apache::TestUtil;
use File::Spec::Functions qw(catfile);

# The checkout (t/run-tests says where, also when the server runs a copy of t/).
my $top = $ENV{ZEQ_T_REPO} // catfile($FindBin::Bin, '..');
sub slurp {
    my ($path) = @_;
    open my $fh, '<:raw', catfile($top, $path) or die "cannot read $path: $!\n";
    local $/;
    return scalar <$fh>;
}

# --- the command table --------------------------------------------------------------------------

my $glue = slurp('mod_zeq_e2e.c');
my ($table) = $glue =~ /command_rec\s+\w+\s*\[\]\s*=\s*\{(.*?)\{\s*NULL\s*\}/s
    or die "no command table in mod_zeq_e2e.c\n";
$table =~ s{/\*.*?\*/}{}gs;
my %cmd;    # name => { setter, flags }
while ($table =~ /AP_INIT_\w+\(\s*"([^"]+)"\s*,\s*(\w+)\s*,(.*?),\s*((?:\w+\s*\|\s*)*\w+)\s*,\s*"/gs) {
    $cmd{$1} = { setter => $2, flags => { map { $_ => 1 } split /\s*\|\s*/, $4 } };
}
die "no directive found in the command table of mod_zeq_e2e.c\n" unless %cmd;

# The body of each setter of the module (mod_zeq_e2e.c and src/*.c), to see
# which contexts it refuses with ap_check_cmd_context().
my $sources = join "\n", $glue, map { slurp(File::Spec->abs2rel($_, $top)) }
    glob(catfile($top, 'src', '*.c'));
sub setter_check {
    my ($fn) = @_;
    my ($body) = $sources =~ /\n[^\n;]*\b\Q$fn\E\s*\([^;{]*\)\s*\{(.*?)\n\}/s;
    return '' unless defined $body;    # httpd's own (ap_set_flag_slot ...)
    my ($check) = $body =~ /ap_check_cmd_context\s*\(\s*cmd\s*,\s*([A-Z_ |]+?)\s*\)/;
    return $check // '';
}

my %override_class = (OR_OPTIONS => 'Options', OR_FILEINFO => 'FileInfo',
                      OR_AUTHCFG => 'AuthConfig', OR_INDEXES => 'Indexes',
                      OR_LIMIT => 'Limit', OR_ALL => 'All');
sub expected_context {
    my ($c) = @_;
    my $check = setter_check($c->{setter});
    return 'server config' if $check =~ /GLOBAL_ONLY/;
    my @ctx;
    push @ctx, 'server config', 'virtual host' if $c->{flags}{RSRC_CONF} || $c->{flags}{OR_ALL};
    push @ctx, 'directory' if ($c->{flags}{ACCESS_CONF} || $c->{flags}{OR_ALL})
        && $check !~ /NOT_IN_DIR_CONTEXT|NOT_IN_DIR_LOC_FILE/;
    return join ', ', @ctx;
}
sub expected_override {
    my ($c) = @_;
    my @o = map { $override_class{$_} } grep { $c->{flags}{$_} } sort keys %override_class;
    return @o ? join(', ', @o) : 'none';
}

# --- docs/directives.md -------------------------------------------------------------------------

my $doc = slurp('docs/directives.md');
my %section;    # name => text of its section
{
    my @parts = split /^## /m, $doc;
    shift @parts;
    for my $p (@parts) {
        my ($title, $body) = $p =~ /^([^\n]*)\n(.*)$/s;
        $title =~ s/\s+$//;
        $section{$title} = $body if $title =~ /^ZeqE2E/;
    }
}
# The summary table at the top: [Name](#anchor) | context
my %summary;
while ($doc =~ /^\|\s*\[(ZeqE2E\w*)\]\(#([\w-]+)\)\s*\|\s*([^|\n]*?)\s*\|/mg) {
    $summary{$1} = { anchor => $2, context => $3 };
}

# --- README.md ------------------------------------------------------------------------------------

my $readme = slurp('README.md');
my %readme_row;    # name => link target
while ($readme =~ /^\|\s*\[`(ZeqE2E\w*)[^`]*`\]\(([^)]*)\)/mg) {
    $readme_row{$1} = $2;
}

my @names = sort keys %cmd;
my @lines = qw(Description Syntax Default Context Override Status Module);

plan tests => 4 + @names * (@lines + 6);

ok t_cmp(join(' ', sort keys %section), join(' ', @names),
         'docs/directives.md has one section for each directive of the command table, and no other');
ok t_cmp(join(' ', sort keys %summary), join(' ', @names),
         "docs/directives.md's summary table lists the same directives");
ok t_cmp(join(' ', sort keys %readme_row), join(' ', @names),
         "README.md's directive table lists the same directives");
ok t_cmp(scalar(grep { $readme_row{$_} ne 'docs/directives.md#' . lc $_ } keys %readme_row), 0,
         "every row of README.md's table links to docs/directives.md#<its name>");

for my $name (@names) {
    my $s = $section{$name} // '';
    my %line;
    while ($s =~ /^\|\s*(\w+):\s*\|\s*(.*?)\s*\|\s*$/mg) {
        $line{$1} = $2;
    }
    for my $l (@lines) {
        ok t_cmp(length($line{$l} // '') ? 'present' : 'missing', 'present', "$name: a $l line");
    }
    ok t_cmp(($line{Syntax} // '') =~ /^`\Q$name\E(?:\s|`)/ ? 'starts with its name' : $line{Syntax} // 'none',
             'starts with its name', "$name: the Syntax line starts with the directive");
    ok t_cmp($line{Context} // '', expected_context($cmd{$name}),
             "$name: Context as the command table and its setter allow");
    ok t_cmp(($summary{$name} // {})->{context} // '', $line{Context} // '',
             "$name: the summary table gives the same Context");
    ok t_cmp($line{Override} // '', expected_override($cmd{$name}),
             "$name: Override as the command table allows");
    ok t_cmp(($line{Status} // '') . ' / ' . ($line{Module} // ''), 'External / mod_zeq_e2e',
             "$name: Status and Module");
    # an explanation (a paragraph outside the table) and an example
    my $prose = grep { /^[A-Za-z`(]/ && !/^\|/ } split /\n/, $s;
    my $example = $s =~ /^```apache\n.*?\Q$name\E.*?^```/ms ? 'an example' : 'no example';
    ok t_cmp(($prose >= 2 ? 'explained' : 'not explained') . ", $example", 'explained, an example',
             "$name: an explanation and an ```apache example that uses it");
}
