// spymemcached (libspymemcached-java) against one server, with its ASCII or
// its binary connection factory:  java SpyCheck ascii|binary HOST:PORT
// One "ok NAME" / "not ok NAME: why" line per check, "# done" at the end,
// exit status 1 if a check failed. Expectations come from CLIENT_* variables.

import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.security.SecureRandom;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

import net.spy.memcached.BinaryConnectionFactory;
import net.spy.memcached.CASResponse;
import net.spy.memcached.CASValue;
import net.spy.memcached.ConnectionFactory;
import net.spy.memcached.DefaultConnectionFactory;
import net.spy.memcached.MemcachedClient;
import net.spy.memcached.internal.OperationFuture;

public final class SpyCheck {
    private static final int EXPIRY_TTL = 2;            // a TTL of 1 can expire at once
    private static final long EXPIRY_DEADLINE_MS = 5000;
    private static final long POLL_MS = 50;
    private static final long WAIT_S = 10;              // one operation's future

    private interface Check {
        void run() throws Exception;
    }

    private static boolean failed = false;

    private static void check(String name, Check c) {
        try {
            c.run();
            System.out.println("ok " + name);
        } catch (Throwable e) {
            String why = e.getClass().getSimpleName() + ": " + e.getMessage();
            System.out.println("not ok " + name + ": " + why.replaceAll("\\s+", " "));
            failed = true;
        }
        System.out.flush();
    }

    private static String show(Object v) {
        if (v instanceof byte[]) {
            return "<" + ((byte[]) v).length + " bytes>";
        }
        if (v instanceof String && ((String) v).length() > 60) {
            return "<" + ((String) v).length() + " chars>";
        }
        return String.valueOf(v);
    }

    private static void expect(String what, Object got, Object want) {
        boolean same = (got instanceof byte[] && want instanceof byte[])
                ? Arrays.equals((byte[]) got, (byte[]) want)
                : (got == null ? want == null : got.equals(want));
        if (!same) {
            throw new AssertionError(what + ": got " + show(got) + ", expected " + show(want));
        }
    }

    private static <T> T done(OperationFuture<T> f) throws Exception {
        return f.get(WAIT_S, TimeUnit.SECONDS);
    }

    private interface Getter {
        Object get() throws Exception;
    }

    private static void waitGone(String what, Getter g) throws Exception {
        long start = System.nanoTime();
        while ((System.nanoTime() - start) / 1000000 < EXPIRY_DEADLINE_MS) {
            if (g.get() == null) {
                return;
            }
            Thread.sleep(POLL_MS);
        }
        throw new AssertionError(what + " still there after " + EXPIRY_DEADLINE_MS + " ms");
    }

    private static byte[] allBytes() {
        byte[] v = new byte[256 * 2 + 7];
        for (int i = 0; i < 256; i++) {
            v[i] = (byte) i;
            v[256 + 7 + i] = (byte) (255 - i);
        }
        System.arraycopy("\r\nEND\r\n".getBytes(), 0, v, 256, 7);
        return v;
    }

    private static byte[] randomBytes(int n) {
        byte[] v = new byte[n];
        new SecureRandom().nextBytes(v);
        return v;
    }

    private static String env(String name) {
        String v = System.getenv(name);
        if (v == null) {
            throw new IllegalStateException("environment variable " + name + " is not set");
        }
        return v;
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 2 || !(args[0].equals("ascii") || args[0].equals("binary"))) {
            System.err.println("usage: java SpyCheck ascii|binary HOST:PORT");
            System.exit(2);
        }
        final boolean binary = args[0].equals("binary");
        String[] hp = args[1].split(":");
        final InetSocketAddress addr = new InetSocketAddress(hp[0], Integer.parseInt(hp[1]));
        final int itemMax = Integer.parseInt(env("CLIENT_ITEM_SIZE_MAX"));
        final String wantVersion = env("CLIENT_EXPECT_VERSION");
        final String wantPid = env("CLIENT_EXPECT_PID");
        final String p = env("CLIENT_KEY_PREFIX");

        ConnectionFactory cf = binary ? new BinaryConnectionFactory() : new DefaultConnectionFactory();
        final MemcachedClient m = new MemcachedClient(cf, Collections.singletonList(addr));

        check("set_get", () -> {
            expect("set", done(m.set(p + "sg", 0, "value")), true);
            expect("get", m.get(p + "sg"), "value");
            expect("get of a missing key", m.get(p + "sg_missing"), null);
        });

        check("multi_get", () -> {
            done(m.set(p + "mg1", 0, "one"));
            done(m.set(p + "mg2", 0, "two"));
            Map<String, Object> got = new TreeMap<>(m.getBulk(p + "mg1", p + "mg_missing", p + "mg2"));
            Map<String, Object> want = new TreeMap<>();
            want.put(p + "mg1", "one");
            want.put(p + "mg2", "two");
            expect("getBulk", got, want);
        });

        check("add", () -> {
            expect("add", done(m.add(p + "ad", 0, "first")), true);
            expect("add of an existing key", done(m.add(p + "ad", 0, "second")), false);
            expect("get", m.get(p + "ad"), "first");
        });

        check("replace", () -> {
            expect("replace of a missing key", done(m.replace(p + "rp", 0, "x")), false);
            expect("get", m.get(p + "rp"), null);
            done(m.set(p + "rp", 0, "old"));
            expect("replace", done(m.replace(p + "rp", 0, "new")), true);
            expect("get", m.get(p + "rp"), "new");
        });

        check("append_prepend", () -> {
            done(m.set(p + "ap", 0, "mid"));
            expect("append", done(m.append(p + "ap", "-end")), true);
            expect("prepend", done(m.prepend(p + "ap", "start-")), true);
            expect("get", m.get(p + "ap"), "start-mid-end");
            expect("append to a missing key", done(m.append(p + "ap_missing", "x")), false);
            expect("prepend to a missing key", done(m.prepend(p + "ap_missing", "x")), false);
        });

        check("cas_success", () -> {
            done(m.set(p + "cs", 0, "a"));
            CASValue<Object> g = m.gets(p + "cs");
            expect("gets value", g.getValue(), "a");
            expect("cas", m.cas(p + "cs", g.getCas(), "b"), CASResponse.OK);
            expect("get", m.get(p + "cs"), "b");
        });

        check("cas_conflict", () -> {
            done(m.set(p + "cc", 0, "a"));
            CASValue<Object> g = m.gets(p + "cc");
            done(m.set(p + "cc", 0, "changed"));
            expect("cas with a stale unique", m.cas(p + "cc", g.getCas(), "b"), CASResponse.EXISTS);
            expect("get", m.get(p + "cc"), "changed");
            done(m.delete(p + "cc"));
            expect("cas of a deleted key", m.cas(p + "cc", g.getCas(), "c"), CASResponse.NOT_FOUND);
        });

        check("incr_decr", () -> {
            done(m.set(p + "n", 0, "10"));
            expect("incr", m.incr(p + "n", 5), 15L);
            expect("decr", m.decr(p + "n", 3), 12L);
            expect("decr below 0", m.decr(p + "n", 100), 0L);
            // Counters up to 2**63-1 only: over it the ASCII side of this
            // client fails to parse the reply (NumberFormatException) and
            // reconnects; the binary side returns it as a negative long.
            done(m.set(p + "n", 0, "9223372036854775806"));
            expect("incr to 2**63-1", m.incr(p + "n", 1), Long.MAX_VALUE);
        });

        check("incr_decr_missing", () -> {
            expect("incr of a missing key", m.incr(p + "n_missing", 1), -1L);
            expect("decr of a missing key", m.decr(p + "n_missing", 1), -1L);
            expect("get", m.get(p + "n_missing"), null);
        });

        check("incr_default", () -> {
            // a default creates the missing key (ASCII: add, binary: initial value)
            expect("incr with a default", m.incr(p + "ni", 1, 5), 5L);
            expect("incr", m.incr(p + "ni", 1, 5), 6L);
            expect("decr with a default", m.decr(p + "nd", 1, 7), 7L);
        });

        check("delete", () -> {
            done(m.set(p + "de", 0, "x"));
            expect("delete", done(m.delete(p + "de")), true);
            expect("get", m.get(p + "de"), null);
            expect("delete of a missing key", done(m.delete(p + "de")), false);
        });

        check("touch", () -> {
            done(m.set(p + "to", EXPIRY_TTL, "x"));
            done(m.set(p + "to_control", EXPIRY_TTL, "x"));
            expect("touch", done(m.touch(p + "to", 100)), true);
            expect("touch of a missing key", done(m.touch(p + "to_missing", 100)), false);
            waitGone("untouched item", () -> m.get(p + "to_control"));
            expect("touched item", m.get(p + "to"), "x");
        });

        if (binary) { // spymemcached has getAndTouch for the binary protocol only
            check("gat", () -> {
                done(m.set(p + "ga", EXPIRY_TTL, "x"));
                done(m.set(p + "ga_control", EXPIRY_TTL, "x"));
                CASValue<Object> g = m.getAndTouch(p + "ga", 100);
                expect("getAndTouch value", g == null ? null : g.getValue(), "x");
                expect("getAndTouch of a missing key", m.getAndTouch(p + "ga_missing", 100), null);
                waitGone("item not touched", () -> m.get(p + "ga_control"));
                expect("item after getAndTouch", m.get(p + "ga"), "x");
            });
        }

        check("expiry", () -> {
            done(m.set(p + "ex", EXPIRY_TTL, "x"));
            expect("get right after set", m.get(p + "ex"), "x");
            waitGone("item with a TTL", () -> m.get(p + "ex"));
        });

        check("binary_value", () -> {
            byte[] v = allBytes();
            expect("set", done(m.set(p + "bin", 0, v)), true);
            expect("get", m.get(p + "bin"), v);
        });

        check("serialized_value", () -> {
            // a Serializable object; a String over 16 KiB is gzipped
            List<Integer> v = Arrays.asList(1, 2, 3);
            expect("set", done(m.set(p + "ser", 0, new java.util.ArrayList<>(v))), true);
            expect("get", m.get(p + "ser"), v);
            String big = "compressible ".repeat(5000);
            expect("set compressed", done(m.set(p + "cz", 0, big)), true);
            expect("get compressed", m.get(p + "cz"), big);
        });

        check("large_value", () -> {
            byte[] v = randomBytes(itemMax - 2048);
            expect("set", done(m.set(p + "large", 0, v)), true);
            expect("get", m.get(p + "large"), v);
        });

        check("too_large", () -> {
            done(m.set(p + "too_large", 0, "old"));
            OperationFuture<Boolean> f = m.set(p + "too_large", 0, randomBytes(itemMax + itemMax / 2));
            String msg;
            if (binary) {
                // status E2BIG: the future says false, its status the server's text
                expect("set of a too-large value", f.get(WAIT_S, TimeUnit.SECONDS), false);
                msg = f.getStatus().getMessage();
            } else {
                // SERVER_ERROR: the future throws the server's line
                try {
                    Boolean r = f.get(WAIT_S, TimeUnit.SECONDS);
                    throw new AssertionError("set of a too-large value returned " + r);
                } catch (ExecutionException e) {
                    msg = String.valueOf(e.getCause());
                }
            }
            String want = binary ? "Too large." : "SERVER_ERROR object too large for cache";
            if (msg == null || !msg.contains(want)) {
                throw new AssertionError("error: " + msg + ", expected one with " + want);
            }
            // the server refused it: a refused set removes the old value
            expect("old value after the refused set", m.get(p + "too_large"), null);
        });

        check("after_too_large", () -> {
            OperationFuture<Boolean> f = m.set(p + "atl", 0, randomBytes(itemMax + itemMax / 2));
            try {
                expect("set of a too-large value", f.get(WAIT_S, TimeUnit.SECONDS), false);
            } catch (ExecutionException e) {
                if (binary) {
                    throw e;
                }
            }
            expect("set", done(m.set(p + "atl_small", 0, "fine")), true);
            expect("get", m.get(p + "atl_small"), "fine");
        });

        check("stats", () -> {
            Map<SocketAddress, Map<String, String>> all = m.getStats();
            if (all.size() != 1) {
                throw new AssertionError("getStats: " + all);
            }
            Map<String, String> s = all.values().iterator().next();
            expect("pid", s.get("pid"), wantPid);
            expect("version", s.get("version"), wantVersion);
            Map<String, String> settings = m.getStats("settings").values().iterator().next();
            expect("settings item_size_max", settings.get("item_size_max"), String.valueOf(itemMax));
        });

        check("version", () -> {
            Map<SocketAddress, String> v = m.getVersions();
            expect("getVersions", v.size() == 1 ? v.values().iterator().next() : v, wantVersion);
        });

        m.shutdown(WAIT_S, TimeUnit.SECONDS);
        System.out.println("# done");
        System.exit(failed ? 1 : 0);
    }
}
