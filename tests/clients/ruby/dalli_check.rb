# Dalli 3.0.6 (ruby-dalli) against one server:  ruby dalli_check.rb HOST:PORT
# This version speaks the binary protocol only (its meta protocol came in
# 3.1). One "ok NAME" / "not ok NAME: why" line per check, "# done" at the
# end, exit status 1 if a check failed. Expectations come from CLIENT_*
# environment variables.
require 'dalli'
require 'logger'
require 'securerandom'
require 'socket'

EXPIRY_TTL = 2          # a TTL of 1 can expire at once
EXPIRY_DEADLINE = 5.0   # seconds
POLL = 0.05

$failed = false

def check(name)
  yield
  puts "ok #{name}"
rescue StandardError, ScriptError => e
  puts "not ok #{name}: #{e.class}: #{e.message}".gsub(/\s+/, ' ')
  $failed = true
ensure
  $stdout.flush
end

class CheckFailed < StandardError; end

def show(v)
  v.is_a?(String) && v.bytesize > 60 ? "<#{v.bytesize} bytes>" : v.inspect
end

def expect(what, got, want)
  raise CheckFailed, "#{what}: got #{show(got)}, expected #{show(want)}" unless got == want
end

def wait_gone(what)
  start = Process.clock_gettime(Process::CLOCK_MONOTONIC)
  while Process.clock_gettime(Process::CLOCK_MONOTONIC) - start < EXPIRY_DEADLINE
    return if yield.nil?

    sleep POLL
  end
  raise CheckFailed, "#{what} still there after #{EXPIRY_DEADLINE} s"
end

def all_bytes
  up = (0..255).map(&:chr).join.b
  up + "\r\nEND\r\n".b + up.reverse
end

def env(name)
  ENV.fetch(name) { abort "environment variable #{name} is not set" }
end

# The header line of a raw text-protocol `get KEY`: what Dalli stored.
def raw_get_header(host, port, key)
  Socket.tcp(host, port, connect_timeout: 5) do |s|
    s.write("get #{key}\r\n")
    s.gets&.chomp || ''
  end
end

abort 'usage: ruby dalli_check.rb HOST:PORT' unless ARGV.size == 1
server = ARGV[0]
host, port = server.split(':')
item_max = Integer(env('CLIENT_ITEM_SIZE_MAX'))
want_version = env('CLIENT_EXPECT_VERSION')
want_pid = env('CLIENT_EXPECT_PID')
p = env('CLIENT_KEY_PREFIX')

Dalli.logger = Logger.new($stderr, level: Logger::INFO) # default: stdout, our check channel
# value_max_bytes over the server's limit: the server, not the client, must
# refuse the too-large value.
d = Dalli::Client.new(server, socket_timeout: 5, value_max_bytes: 4 * item_max)

check 'set_get' do
  raise CheckFailed, 'set did not return a cas' unless d.set("#{p}sg", 'value').is_a?(Integer)
  expect 'get', d.get("#{p}sg"), 'value'
  expect 'get of a missing key', d.get("#{p}sg_missing"), nil
end

check 'multi_get' do
  d.set("#{p}mg1", 'one')
  d.set("#{p}mg2", 'two')
  expect 'get_multi', d.get_multi("#{p}mg1", "#{p}mg_missing", "#{p}mg2"),
         { "#{p}mg1" => 'one', "#{p}mg2" => 'two' }
end

check 'multi_block' do
  # quiet binary stores (SETQ) in a multi block, then one round trip
  d.multi { 10.times { |i| d.set("#{p}q#{i}", "v#{i}") } }
  got = d.get_multi((0...10).map { |i| "#{p}q#{i}" })
  expect 'values', got.values_at(*(0...10).map { |i| "#{p}q#{i}" }), (0...10).map { |i| "v#{i}" }
end

check 'add' do
  raise CheckFailed, 'add of a new key failed' unless d.add("#{p}ad", 'first')
  expect 'add of an existing key', d.add("#{p}ad", 'second'), false
  expect 'get', d.get("#{p}ad"), 'first'
end

check 'replace' do
  # Dalli 3.0.6 returns the reply's cas (0) for "Key not found"
  expect 'replace of a missing key', d.replace("#{p}rp", 'x'), 0
  expect 'get', d.get("#{p}rp"), nil
  d.set("#{p}rp", 'old')
  raise CheckFailed, 'replace failed' unless d.replace("#{p}rp", 'new')
  expect 'get', d.get("#{p}rp"), 'new'
end

check 'append_prepend' do
  d.set("#{p}ap", 'mid', nil, raw: true)
  raise CheckFailed, 'append failed' unless d.append("#{p}ap", '-end')
  raise CheckFailed, 'prepend failed' unless d.prepend("#{p}ap", 'start-')
  expect 'get', d.get("#{p}ap", raw: true), 'start-mid-end'
  expect 'append to a missing key', d.append("#{p}ap_missing", 'x'), false
  expect 'prepend to a missing key', d.prepend("#{p}ap_missing", 'x'), false
end

check 'cas_success' do
  d.set("#{p}cs", 'a')
  value, cas = d.get_cas("#{p}cs")
  expect 'get_cas value', value, 'a'
  raise CheckFailed, "get_cas cas #{cas.inspect}" unless cas.is_a?(Integer) && cas != 0
  raise CheckFailed, 'set_cas failed' unless d.set_cas("#{p}cs", 'b', cas)
  expect 'get', d.get("#{p}cs"), 'b'
  # the read-modify-write helper
  raise CheckFailed, 'cas block failed' unless d.cas("#{p}cs") { |old| "#{old}!" }
  expect 'get after the cas block', d.get("#{p}cs"), 'b!'
end

check 'cas_conflict' do
  d.set("#{p}cc", 'a')
  _, cas = d.get_cas("#{p}cc")
  d.set("#{p}cc", 'changed')
  expect 'set_cas with a stale cas', d.set_cas("#{p}cc", 'b', cas), false
  expect 'get', d.get("#{p}cc"), 'changed'
  d.delete("#{p}cc")
  expect 'set_cas of a deleted key', d.set_cas("#{p}cc", 'c', cas), 0
  expect 'get', d.get("#{p}cc"), nil
end

check 'incr_decr' do
  d.set("#{p}n", '10', nil, raw: true)
  expect 'incr', d.incr("#{p}n", 5), 15
  expect 'decr', d.decr("#{p}n", 3), 12
  expect 'decr below 0', d.decr("#{p}n", 100), 0
  d.set("#{p}n", '18446744073709551615', nil, raw: true)
  expect 'incr wraps', d.incr("#{p}n", 1), 0
end

check 'incr_decr_missing' do
  expect 'incr of a missing key', d.incr("#{p}n_missing", 1), nil
  expect 'decr of a missing key', d.decr("#{p}n_missing", 1), nil
  expect 'get', d.get("#{p}n_missing"), nil
end

check 'incr_default' do
  # a default creates the missing key (binary INCREMENT's initial value)
  expect 'incr with a default', d.incr("#{p}ni", 1, nil, 5), 5
  expect 'incr', d.incr("#{p}ni", 1, nil, 5), 6
  expect 'decr with a default', d.decr("#{p}nd", 1, nil, 7), 7
  expect 'get', d.get("#{p}ni", raw: true), '6'
end

check 'delete' do
  d.set("#{p}de", 'x')
  expect 'delete', d.delete("#{p}de"), true
  expect 'get', d.get("#{p}de"), nil
  expect 'delete of a missing key', d.delete("#{p}de"), nil
end

check 'touch' do
  d.set("#{p}to", 'x', EXPIRY_TTL)
  d.set("#{p}to_control", 'x', EXPIRY_TTL)
  expect 'touch', d.touch("#{p}to", 100), true
  expect 'touch of a missing key', d.touch("#{p}to_missing", 100), nil
  wait_gone('untouched item') { d.get("#{p}to_control") }
  expect 'touched item', d.get("#{p}to"), 'x'
end

check 'gat' do
  d.set("#{p}ga", 'x', EXPIRY_TTL)
  d.set("#{p}ga_control", 'x', EXPIRY_TTL)
  expect 'gat', d.gat("#{p}ga", 100), 'x'
  expect 'gat of a missing key', d.gat("#{p}ga_missing", 100), nil
  wait_gone('item not gat') { d.get("#{p}ga_control") }
  expect 'item after gat', d.get("#{p}ga"), 'x'
end

check 'expiry' do
  d.set("#{p}ex", 'x', EXPIRY_TTL)
  expect 'get right after set', d.get("#{p}ex"), 'x'
  wait_gone('item with a TTL') { d.get("#{p}ex") }
end

check 'binary_value' do
  d.set("#{p}bin", all_bytes, nil, raw: true)
  expect 'get', d.get("#{p}bin", raw: true), all_bytes
end

check 'serialized_value' do
  v = { 'a' => [1, 2], b: 'x', f: 1.5 }
  d.set("#{p}ser", v)
  expect 'get', d.get("#{p}ser"), v
end

check 'compression' do
  v = 'compressible ' * 10_000
  d.set("#{p}cz", v, nil, raw: true)
  expect 'get', d.get("#{p}cz", raw: true), v
  header = raw_get_header(host, port, "#{p}cz")
  m = /\AVALUE \S+ (\d+) (\d+)\z/.match(header) or raise CheckFailed, "raw get: #{header.inspect}"
  raise CheckFailed, "stored uncompressed: #{header}" unless (m[1].to_i & 2) != 0 && m[2].to_i < v.bytesize
end

check 'large_value' do
  # compress: false, so exactly this many bytes go to the server (deflate
  # would make random bytes a little longer)
  v = SecureRandom.random_bytes(item_max - 2048)
  d.set("#{p}large", v, nil, raw: true, compress: false)
  expect 'get', d.get("#{p}large", raw: true), v
end

check 'too_large' do
  d.set("#{p}too_large", 'old')
  begin
    d.set("#{p}too_large", SecureRandom.random_bytes(item_max + item_max / 2), nil, raw: true)
    raise CheckFailed, 'set of a too-large value did not raise'
  rescue Dalli::DalliError => e
    raise CheckFailed, "error: #{e.message}" unless e.message == 'Response error 3: Value too large'
  end
  # the server refused it: a refused set removes the old value
  expect 'old value after the refused set', d.get("#{p}too_large"), nil
end

check 'after_too_large' do
  begin
    d.set("#{p}atl", SecureRandom.random_bytes(item_max + item_max / 2), nil, raw: true)
  rescue Dalli::DalliError
    nil
  end
  d.set("#{p}atl_small", 'fine')
  expect 'get', d.get("#{p}atl_small"), 'fine'
end

check 'stats' do
  all = d.stats
  s = all[server] or raise CheckFailed, "stats: #{all.inspect}"
  expect 'pid', s['pid'], want_pid
  expect 'version', s['version'], want_version
  settings = d.stats(:settings)[server] || {}
  expect 'settings item_size_max', settings['item_size_max'], item_max.to_s
end

check 'version' do
  expect 'version', d.version, { server => want_version }
  expect 'Gem::Version', Gem::Version.new(d.version[server]), Gem::Version.new(want_version)
end

d.close
puts '# done'
exit($failed ? 1 : 0)
