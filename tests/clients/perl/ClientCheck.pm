# ClientCheck - the check harness shared by the Perl client scripts: runs
# named checks, prints "ok NAME" or "not ok NAME: why" for each, "# done"
# at the end, and exits 1 if any check failed. A check passes unless it dies;
# die messages are the detail. Values and timings as in ../README.md.
package ClientCheck;

use strict;
use warnings;
use Exporter 'import';
use Time::HiRes qw(time sleep);

our @EXPORT = qw(check finish all_bytes random_bytes wait_gone expect expect_num expect_false
  env_value show EXPIRY_TTL);

use constant EXPIRY_TTL      => 2;      # a TTL of 1 can expire at once
use constant EXPIRY_DEADLINE => 5.0;    # seconds
use constant POLL            => 0.05;

my $failed = 0;

sub check {
    my ( $name, $code ) = @_;
    my $ok = eval { $code->(); 1 };
    if ($ok) {
        print "ok $name\n";
    }
    else {
        my $why = $@ || 'died without a message';
        $why =~ s/\s+/ /g;
        $why =~ s/ $//;
        print "not ok $name: $why\n";
        $failed = 1;
    }
}

sub finish {
    print "# done\n";
    exit( $failed ? 1 : 0 );
}

sub env_value {
    my ($name) = @_;
    my $v = $ENV{$name};
    die "environment variable $name is not set\n" unless defined $v;
    return $v;
}

# A printable form of a value for failure messages.
sub show {
    my ($v) = @_;
    return 'undef' unless defined $v;
    return ref($v) ? "$v" : length($v) > 60 ? sprintf( "<%d bytes>", length $v ) : "'$v'";
}

# Dies with what: got X, expected Y unless $got eq $want (both may be undef).
sub expect {
    my ( $what, $got, $want ) = @_;
    return if !defined $got && !defined $want;
    return if defined $got && defined $want && $got eq $want;
    die "$what: got " . show($got) . ", expected " . show($want) . "\n";
}

# Numeric form, for counters ('0E0' is Cache::Memcached::Fast's true zero).
sub expect_num {
    my ( $what, $got, $want ) = @_;
    return if defined $got && $got =~ /^[0-9]+(?:E0)?$/ && $got == $want;
    die "$what: got " . show($got) . ", expected $want\n";
}

# Dies unless $got is defined and false: the clients' "not stored / not
# found" answer (undef would mean an error).
sub expect_false {
    my ( $what, $got ) = @_;
    die "$what: got " . show($got) . ", expected a defined false value\n"
      if !defined $got || $got;
}

sub all_bytes {
    my $up = join '', map { chr } 0 .. 255;
    return $up . "\r\nEND\r\n" . reverse($up);
}

sub random_bytes {
    my ($n) = @_;
    open my $fh, '<:raw', '/dev/urandom' or die "/dev/urandom: $!\n";
    my $buf;
    my $got = read $fh, $buf, $n;
    die "short read from /dev/urandom\n" unless $got == $n;
    close $fh;
    return $buf;
}

# Polls $get->() until it returns undef, at most EXPIRY_DEADLINE seconds;
# returns the seconds it took, or dies.
sub wait_gone {
    my ( $what, $get ) = @_;
    my $start = time;
    while ( time - $start < EXPIRY_DEADLINE ) {
        return time - $start unless defined $get->();
        sleep POLL;
    }
    die "$what still there after " . EXPIRY_DEADLINE . " s\n";
}

1;
