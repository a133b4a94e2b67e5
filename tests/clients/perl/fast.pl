#!/usr/bin/perl
# Cache::Memcached::Fast (libcache-memcached-fast-perl) against one server:
#   perl fast.pl HOST:PORT
# Prints one "ok NAME" / "not ok NAME: why" line per check (ClientCheck.pm);
# the expectations come from CLIENT_* environment variables (../conftest.py).
use strict;
use warnings;
use FindBin;
use lib $FindBin::Bin;
use ClientCheck;
use Cache::Memcached::Fast;
use version;

my $server = shift or die "usage: $0 HOST:PORT\n";
my $item_max = env_value('CLIENT_ITEM_SIZE_MAX');
my $want_version = env_value('CLIENT_EXPECT_VERSION');

# max_size well over the server's limit: the server, not the client, must
# refuse the too-large value.
my %conf = (
    servers         => [$server],
    connect_timeout => 5,
    io_timeout      => 5,
    max_size        => 4 * $item_max,
    close_on_error  => 1,
    namespace       => env_value('CLIENT_KEY_PREFIX'),
);
my $m = Cache::Memcached::Fast->new( {%conf} );

check set_get => sub {
    expect 'set', $m->set( 'sg', 'value' ), 1;
    expect 'get', $m->get('sg'), 'value';
    expect 'get of a missing key', $m->get('sg_missing'), undef;
};

check multi_get => sub {
    $m->set( 'mg1', 'one' );
    $m->set( 'mg2', 'two' );
    my $h = $m->get_multi( 'mg1', 'mg_missing', 'mg2' );
    my $got = join ',', map {"$_=$h->{$_}"} sort keys %$h;
    expect 'get_multi', $got, 'mg1=one,mg2=two';
};

check add => sub {
    expect 'add', $m->add( 'ad', 'first' ), 1;
    expect_false 'add of an existing key', $m->add( 'ad', 'second' );
    expect 'get', $m->get('ad'), 'first';
};

check replace => sub {
    expect_false 'replace of a missing key', $m->replace( 'rp', 'x' );
    expect 'get', $m->get('rp'), undef;
    $m->set( 'rp', 'old' );
    expect 'replace', $m->replace( 'rp', 'new' ), 1;
    expect 'get', $m->get('rp'), 'new';
};

check append_prepend => sub {
    $m->set( 'ap', 'mid' );
    expect 'append',  $m->append( 'ap', '-end' ),    1;
    expect 'prepend', $m->prepend( 'ap', 'start-' ), 1;
    expect 'get', $m->get('ap'), 'start-mid-end';
    expect_false 'append to a missing key',  $m->append( 'ap_missing', 'x' );
    expect_false 'prepend to a missing key', $m->prepend( 'ap_missing', 'x' );
};

check cas_success => sub {
    $m->set( 'cs', 'a' );
    my $g = $m->gets('cs') or die "gets returned nothing\n";
    expect 'gets value', $g->[1], 'a';
    die "gets returned cas " . show( $g->[0] ) . "\n" unless $g->[0] && $g->[0] =~ /^\d+$/;
    expect 'cas', $m->cas( 'cs', $g->[0], 'b' ), 1;
    expect 'get', $m->get('cs'), 'b';
};

check cas_conflict => sub {
    $m->set( 'cc', 'a' );
    my $g = $m->gets('cc') or die "gets returned nothing\n";
    $m->set( 'cc', 'changed' );
    expect_false 'cas with a stale unique', $m->cas( 'cc', $g->[0], 'b' );
    expect 'get', $m->get('cc'), 'changed';
    $m->delete('cc');
    expect_false 'cas of a deleted key', $m->cas( 'cc', $g->[0], 'c' );
    expect 'get', $m->get('cc'), undef;
};

check incr_decr => sub {
    $m->set( 'n', '10' );
    expect_num 'incr', $m->incr( 'n', 5 ), 15;
    expect_num 'decr', $m->decr( 'n', 3 ), 12;
    expect_num 'decr below 0', $m->decr( 'n', 100 ), 0;
    $m->set( 'n', '18446744073709551615' );
    expect_num 'incr wraps', $m->incr( 'n', 1 ), 0;
};

check incr_decr_missing => sub {
    expect_false 'incr of a missing key', $m->incr( 'n_missing', 1 );
    expect_false 'decr of a missing key', $m->decr( 'n_missing', 1 );
    expect 'get', $m->get('n_missing'), undef;
};

check delete => sub {
    $m->set( 'de', 'x' );
    expect 'delete', $m->delete('de'), 1;
    expect 'get', $m->get('de'), undef;
    expect_false 'delete of a missing key', $m->delete('de');
};

check touch => sub {
    $m->set( 'to',         'x', EXPIRY_TTL );
    $m->set( 'to_control', 'x', EXPIRY_TTL );
    expect 'touch', $m->touch( 'to', 100 ), 1;
    expect_false 'touch of a missing key', $m->touch( 'to_missing', 100 );
    wait_gone 'untouched item', sub { $m->get('to_control') };
    expect 'touched item', $m->get('to'), 'x';
};

check gat => sub {
    $m->set( 'ga',         'x', EXPIRY_TTL );
    $m->set( 'ga_control', 'x', EXPIRY_TTL );
    expect 'gat', $m->gat( 100, 'ga' ), 'x';
    expect 'gat of a missing key', scalar $m->gat( 100, 'ga_missing' ), undef;
    my $g = $m->gats( 100, 'ga' ) or die "gats returned nothing\n";
    expect 'gats value', $g->[1], 'x';
    wait_gone 'item not gat', sub { $m->get('ga_control') };
    expect 'item after gat', $m->get('ga'), 'x';
};

check expiry => sub {
    $m->set( 'ex', 'x', EXPIRY_TTL );
    expect 'get right after set', $m->get('ex'), 'x';
    wait_gone 'item with a TTL', sub { $m->get('ex') };
};

check binary_value => sub {
    my $v = all_bytes();
    expect 'set', $m->set( 'bin', $v ), 1;
    my $got = $m->get('bin');
    die "binary value changed\n" unless defined $got && $got eq $v;
};

check large_value => sub {
    my $v = random_bytes( $item_max - 2048 );
    expect 'set', $m->set( 'large', $v ), 1;
    my $got = $m->get('large');
    die "large value: got " . show($got) . "\n" unless defined $got && $got eq $v;
};

check too_large => sub {
    $m->set( 'too_large', 'old' );
    my $r = $m->set( 'too_large', random_bytes( $item_max + int( $item_max / 2 ) ) );
    die "set of a too-large value returned " . show($r) . "\n" if $r;
    # The server refused it: a refused set removes the old value.
    expect 'old value after the refused set', $m->get('too_large'), undef;
};

check after_too_large => sub {
    $m->set( 'atl', random_bytes( $item_max + int( $item_max / 2 ) ) );
    expect 'set', $m->set( 'atl_small', 'fine' ), 1;
    expect 'get', $m->get('atl_small'), 'fine';
};

check nowait => sub {
    my $q = Cache::Memcached::Fast->new( { %conf, nowait => 1 } );
    $q->set( "nw$_", "v$_" ) for 1 .. 20;    # void context: noreply
    $q->nowait_push;
    my $h = $m->get_multi( map {"nw$_"} 1 .. 20 );
    my @bad = grep { ( $h->{"nw$_"} // '' ) ne "v$_" } 1 .. 20;
    die "nowait sets missing: @bad\n" if @bad;
};

check version => sub {
    my $v = $m->server_versions;
    expect 'server_versions', $v->{$server}, $want_version;
    my $parsed = eval { version->parse( $v->{$server} ) };
    die "version->parse died: $@" unless defined $parsed;
    die "version->parse: $parsed\n" unless $parsed == version->parse($want_version);
};

finish;
