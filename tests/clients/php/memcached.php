<?php
// PHP's memcached extension (php-memcached, over libmemcached) against one
// server:  php memcached.php binary|text HOST:PORT
// binary: OPT_BINARY_PROTOCOL on; both modes run with OPT_COMPRESSION on
// (the extension's default). One "ok NAME" / "not ok NAME: why" line per
// check, "# done" at the end, exit 1 if a check failed.

const EXPIRY_TTL = 2;          // a TTL of 1 can expire at once
const EXPIRY_DEADLINE = 5.0;   // seconds
const POLL_US = 50000;

$failed = false;

function check(string $name, callable $fn): void {
    global $failed;
    try {
        $fn();
        echo "ok $name\n";
    } catch (Throwable $e) {
        $why = preg_replace('/\s+/', ' ', $e->getMessage());
        echo "not ok $name: $why\n";
        $failed = true;
    }
}

function show($v): string {
    if (is_string($v) && strlen($v) > 60) return '<' . strlen($v) . ' bytes>';
    return var_export($v, true);
}

function expect(string $what, $got, $want): void {
    if ($got !== $want) throw new Exception("$what: got " . show($got) . ", expected " . show($want));
}

function expect_code(Memcached $m, string $what, int $want): void {
    $code = $m->getResultCode();
    if ($code !== $want) {
        throw new Exception("$what: result code $code (" . $m->getResultMessage() . "), expected $want");
    }
}

function all_bytes(): string {
    $up = '';
    for ($i = 0; $i < 256; $i++) $up .= chr($i);
    return $up . "\r\nEND\r\n" . strrev($up);
}

function wait_gone(string $what, callable $get): void {
    $start = microtime(true);
    while (microtime(true) - $start < EXPIRY_DEADLINE) {
        if ($get() === false) return;
        usleep(POLL_US);
    }
    throw new Exception("$what still there after " . EXPIRY_DEADLINE . " s");
}

function env(string $name): string {
    $v = getenv($name);
    if ($v === false) throw new Exception("environment variable $name is not set");
    return $v;
}

if ($argc != 3 || !in_array($argv[1], ['binary', 'text'], true)) {
    fwrite(STDERR, "usage: php memcached.php binary|text HOST:PORT\n");
    exit(2);
}
$binary = $argv[1] === 'binary';
[$host, $port] = explode(':', $argv[2]);
$port = (int)$port;
$server = "$host:$port";
$item_max = (int)env('CLIENT_ITEM_SIZE_MAX');
$want_version = env('CLIENT_EXPECT_VERSION');
$want_pid = (int)env('CLIENT_EXPECT_PID');
$prefix = env('CLIENT_KEY_PREFIX');

function client(): Memcached {
    global $binary, $host, $port, $prefix;
    $m = new Memcached();
    $m->setOption(Memcached::OPT_BINARY_PROTOCOL, $binary);
    $m->setOption(Memcached::OPT_COMPRESSION, true);
    $m->setOption(Memcached::OPT_PREFIX_KEY, $prefix);
    $m->setOption(Memcached::OPT_CONNECT_TIMEOUT, 5000);
    $m->setOption(Memcached::OPT_RECV_TIMEOUT, 5000000);
    $m->setOption(Memcached::OPT_SEND_TIMEOUT, 5000000);
    $m->setOption(Memcached::OPT_POLL_TIMEOUT, 5000);
    $m->addServer($host, $port);
    return $m;
}

// The raw text-protocol reply header of `get KEY` (prefix included), to
// see what the client put on the wire.
function raw_get_header(string $key): string {
    global $host, $port;
    $s = fsockopen($host, $port, $errno, $errstr, 5);
    if (!$s) throw new Exception("connect: $errstr");
    stream_set_timeout($s, 5);
    fwrite($s, "get $key\r\n");
    $line = fgets($s);
    fclose($s);
    return $line === false ? '' : rtrim($line, "\r\n");
}

$m = client();

check('set_get', function () use ($m) {
    expect('set', $m->set('sg', 'value'), true);
    expect('get', $m->get('sg'), 'value');
    expect('get of a missing key', $m->get('sg_missing'), false);
    expect_code($m, 'get of a missing key', Memcached::RES_NOTFOUND);
});

check('multi_get', function () use ($m) {
    $m->set('mg1', 'one');
    $m->set('mg2', 'two');
    $got = $m->getMulti(['mg1', 'mg_missing', 'mg2']);
    if (!is_array($got)) throw new Exception('getMulti: ' . show($got));
    ksort($got);
    expect('getMulti', $got, ['mg1' => 'one', 'mg2' => 'two']);
});

check('set_multi', function () use ($m) {
    expect('setMulti', $m->setMulti(['sm1' => 'a', 'sm2' => 'b', 'sm3' => 'c']), true);
    $got = $m->getMulti(['sm1', 'sm2', 'sm3']);
    ksort($got);
    expect('getMulti', $got, ['sm1' => 'a', 'sm2' => 'b', 'sm3' => 'c']);
});

check('add', function () use ($m, $binary) {
    expect('add', $m->add('ad', 'first'), true);
    expect('add of an existing key', $m->add('ad', 'second'), false);
    expect_code($m, 'add of an existing key',
                $binary ? Memcached::RES_DATA_EXISTS : Memcached::RES_NOTSTORED);
    expect('get', $m->get('ad'), 'first');
});

check('replace', function () use ($m, $binary) {
    expect('replace of a missing key', $m->replace('rp', 'x'), false);
    expect_code($m, 'replace of a missing key',
                $binary ? Memcached::RES_NOTFOUND : Memcached::RES_NOTSTORED);
    expect('get', $m->get('rp'), false);
    $m->set('rp', 'old');
    expect('replace', $m->replace('rp', 'new'), true);
    expect('get', $m->get('rp'), 'new');
});

check('append_prepend', function () use ($m, $binary) {
    // the extension refuses append/prepend while compression is on
    $m->setOption(Memcached::OPT_COMPRESSION, false);
    try {
        $m->set('ap', 'mid');
        expect('append', $m->append('ap', '-end'), true);
        expect('prepend', $m->prepend('ap', 'start-'), true);
        expect('get', $m->get('ap'), 'start-mid-end');
        expect('append to a missing key', $m->append('ap_missing', 'x'), false);
        expect_code($m, 'append to a missing key', Memcached::RES_NOTSTORED);
        expect('prepend to a missing key', $m->prepend('ap_missing', 'x'), false);
    } finally {
        $m->setOption(Memcached::OPT_COMPRESSION, true);
    }
});

check('cas_success', function () use ($m) {
    $m->set('cs', 'a');
    $r = $m->get('cs', null, Memcached::GET_EXTENDED);
    if (!is_array($r) || !is_int($r['cas']) || $r['cas'] <= 0) throw new Exception('get extended: ' . show($r));
    expect('value', $r['value'], 'a');
    expect('cas', $m->cas($r['cas'], 'cs', 'b'), true);
    expect('get', $m->get('cs'), 'b');
});

check('cas_conflict', function () use ($m) {
    $m->set('cc', 'a');
    $r = $m->get('cc', null, Memcached::GET_EXTENDED);
    $m->set('cc', 'changed');
    expect('cas with a stale unique', $m->cas($r['cas'], 'cc', 'b'), false);
    expect_code($m, 'cas with a stale unique', Memcached::RES_DATA_EXISTS);
    expect('get', $m->get('cc'), 'changed');
    $m->delete('cc');
    expect('cas of a deleted key', $m->cas($r['cas'], 'cc', 'c'), false);
    expect_code($m, 'cas of a deleted key', Memcached::RES_NOTFOUND);
});

check('incr_decr', function () use ($m) {
    $m->set('n', '10');
    expect('increment', $m->increment('n', 5), 15);
    expect('decrement', $m->decrement('n', 3), 12);
    expect('decrement below 0', $m->decrement('n', 100), 0);
    $m->set('n', '18446744073709551615');
    // PHP integers are signed: 2**64-1 + 1 wraps to 0 on the server either way
    expect('increment wraps', $m->increment('n', 1), 0);
});

check('incr_decr_missing', function () use ($m) {
    expect('increment of a missing key', $m->increment('n_missing', 1), false);
    expect_code($m, 'increment of a missing key', Memcached::RES_NOTFOUND);
    expect('decrement of a missing key', $m->decrement('n_missing', 1), false);
    expect_code($m, 'decrement of a missing key', Memcached::RES_NOTFOUND);
    expect('get', $m->get('n_missing'), false);
});

if ($binary) {
    check('incr_initial', function () use ($m) {
        // binary INCREMENT/DECREMENT with an initial value create the key
        expect('increment with initial', $m->increment('ni', 1, 5), 5);
        expect('increment', $m->increment('ni', 1, 5), 6);
        expect('decrement with initial', $m->decrement('nd', 1, 7), 7);
        expect('get', $m->get('ni'), '6');
    });
}

check('delete', function () use ($m) {
    $m->set('de', 'x');
    expect('delete', $m->delete('de'), true);
    expect('get', $m->get('de'), false);
    expect('delete of a missing key', $m->delete('de'), false);
    expect_code($m, 'delete of a missing key', Memcached::RES_NOTFOUND);
});

check('touch', function () use ($m) {
    $m->set('to', 'x', EXPIRY_TTL);
    $m->set('to_control', 'x', EXPIRY_TTL);
    expect('touch', $m->touch('to', 100), true);
    expect('touch of a missing key', $m->touch('to_missing', 100), false);
    expect_code($m, 'touch of a missing key', Memcached::RES_NOTFOUND);
    wait_gone('untouched item', fn() => $m->get('to_control'));
    expect('touched item', $m->get('to'), 'x');
});

check('expiry', function () use ($m) {
    $m->set('ex', 'x', EXPIRY_TTL);
    expect('get right after set', $m->get('ex'), 'x');
    wait_gone('item with a TTL', fn() => $m->get('ex'));
});

check('binary_value', function () use ($m) {
    $v = all_bytes();
    expect('set', $m->set('bin', $v), true);
    expect('get', $m->get('bin'), $v);
});

check('serialized_value', function () use ($m) {
    $v = ['a' => [1, 2], 'b' => 'x', 'f' => 1.5];
    expect('set', $m->set('ser', $v), true);
    expect('get', $m->get('ser'), $v);
    expect('set int', $m->set('int', 42), true);
    expect('get int', $m->get('int'), 42);
});

check('compression', function () use ($m, $prefix) {
    $v = str_repeat('compressible ', 10000);
    expect('set', $m->set('cz', $v), true);
    expect('get', $m->get('cz'), $v);
    // on the wire the value is compressed: shorter, with a flags bit set
    $header = raw_get_header($prefix . 'cz');
    if (!preg_match('/^VALUE \S+ (\d+) (\d+)$/', $header, $mm)) {
        throw new Exception('raw get: ' . show($header));
    }
    if ((int)$mm[2] >= strlen($v) || (int)$mm[1] === 0) {
        throw new Exception("stored uncompressed: flags $mm[1], $mm[2] bytes");
    }
});

check('large_value', function () use ($m, $item_max) {
    $v = random_bytes($item_max - 2048);
    expect('set', $m->set('large', $v), true);
    expect('get', $m->get('large'), $v);
});

check('too_large', function () use ($m, $item_max) {
    $m->set('too_large', 'old');
    expect('set', $m->set('too_large', random_bytes($item_max + intdiv($item_max, 2))), false);
    expect_code($m, 'set of a too-large value', Memcached::RES_E2BIG);
    // the server refused it: a refused set removes the old value
    expect('old value after the refused set', $m->get('too_large'), false);
});

check('after_too_large', function () use ($m, $item_max) {
    $m->set('atl', random_bytes($item_max + intdiv($item_max, 2)));
    expect('set', $m->set('atl_small', 'fine'), true);
    expect('get', $m->get('atl_small'), 'fine');
});

check('stats', function () use ($m, $server, $want_pid, $want_version, $item_max) {
    $all = $m->getStats();
    if (!is_array($all) || !isset($all[$server])) throw new Exception('getStats: ' . show($all));
    $s = $all[$server];
    expect('pid', $s['pid'], $want_pid);
    expect('version', $s['version'], $want_version);
    if (!is_int($s['curr_items']) || $s['curr_items'] <= 0) throw new Exception('curr_items ' . show($s['curr_items']));
    $settings = $m->getStats('settings');
    expect('settings item_size_max', $settings[$server]['item_size_max'] ?? null, $item_max);
});

check('version', function () use ($m, $server, $want_version) {
    $v = $m->getVersion();
    expect('getVersion', $v, [$server => $want_version]);
});

echo "# done\n";
exit($failed ? 1 : 0);
