#!/usr/bin/perl
# Cache::Memcached (libcache-memcached-perl, the pure-Perl client) against
# one server:  perl memcached.pl HOST:PORT
# It has no cas, touch or version call (1.30): its stats call carries the
# version. One "ok NAME" / "not ok NAME: why" line per check (ClientCheck.pm).
use strict;
use warnings;
use FindBin;
use lib $FindBin::Bin;
use ClientCheck;
use Cache::Memcached;
use version;

my $server = shift or die "usage: $0 HOST:PORT\n";
my $item_max = env_value('CLIENT_ITEM_SIZE_MAX');
my $want_version = env_value('CLIENT_EXPECT_VERSION');
my $want_pid = env_value('CLIENT_EXPECT_PID');

my %conf = (
    servers         => [$server],
    connect_timeout => 5,
    select_timeout  => 5,
    namespace       => env_value('CLIENT_KEY_PREFIX'),
);
my $m = Cache::Memcached->new( {%conf} );

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

check incr_decr => sub {
    $m->set( 'n', '10' );
    expect_num 'incr', $m->incr( 'n', 5 ), 15;
    expect_num 'decr', $m->decr( 'n', 3 ), 12;
    expect_num 'decr below 0', $m->decr( 'n', 100 ), 0;
    $m->set( 'n', '18446744073709551615' );
    expect_num 'incr wraps', $m->incr( 'n', 1 ), 0;
};

check incr_decr_missing => sub {
    # This client answers undef for NOT_FOUND (and for errors).
    expect 'incr of a missing key', $m->incr( 'n_missing', 1 ), undef;
    expect 'decr of a missing key', $m->decr( 'n_missing', 1 ), undef;
    expect 'get', $m->get('n_missing'), undef;
    # ...so check the connection is still in step.
    $m->set( 'n_after', '1' );
    expect_num 'incr after the misses', $m->incr( 'n_after', 1 ), 2;
};

check delete => sub {
    $m->set( 'de', 'x' );
    expect 'delete', $m->delete('de'), 1;
    expect 'get', $m->get('de'), undef;
    expect_false 'delete of a missing key', $m->delete('de');
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

check serialized_value => sub {
    # references go through Storable (flags bit 0)
    expect 'set', $m->set( 'ref', { a => [ 1, 2 ], b => 'x' } ), 1;
    my $got = $m->get('ref');
    die "got " . show($got) . "\n" unless ref $got eq 'HASH';
    expect 'value', join( ',', @{ $got->{a} }, $got->{b} ), '1,2,x';
};

check compression => sub {
    # compress_threshold: values over it are gzipped (flags bit 1)
    my $c = Cache::Memcached->new( { %conf, compress_threshold => 1000 } );
    my $v = 'compressible ' x 5000;
    expect 'set', $c->set( 'cz', $v ), 1;
    expect 'get', $c->get('cz'), $v;
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
    expect 'old value after the refused set', $m->get('too_large'), undef;
};

check after_too_large => sub {
    $m->set( 'atl', random_bytes( $item_max + int( $item_max / 2 ) ) );
    expect 'set', $m->set( 'atl_small', 'fine' ), 1;
    expect 'get', $m->get('atl_small'), 'fine';
};

check stats => sub {
    my $s = $m->stats or die "stats returned nothing\n";
    my $misc = $s->{hosts}{$server}{misc} or die "no stats for $server\n";
    expect 'pid',     $misc->{pid},     $want_pid;
    expect 'version', $misc->{version}, $want_version;
    die "total curr_items " . show( $s->{total}{curr_items} ) . "\n"
      unless defined $s->{total}{curr_items} && $s->{total}{curr_items} > 0;
    # The default stats types include "malloc", which memcached 1.6
    # answers with ERROR: the client must still be in step.
    expect 'get after stats', $m->get('sg'), 'value';
};

check version => sub {
    my $v = $m->stats('misc')->{hosts}{$server}{misc}{version};
    my $parsed = eval { version->parse($v) };
    die "version->parse(" . show($v) . ") died: $@" unless defined $parsed;
    die "version->parse: $parsed\n" unless $parsed == version->parse($want_version);
};

finish;
