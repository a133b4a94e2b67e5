// gomemcache (golang-github-bradfitz-gomemcache-dev, Debian's 2014 snapshot)
// against one server:  gomemcache_check HOST:PORT
// One "ok NAME" / "not ok NAME: why" line per check, "# done" at the end,
// exit status 1 if a check failed. This version has no stats, version,
// append or prepend call. Expectations come from CLIENT_* variables.
package main

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
)

const (
	expiryTTL      = 2 // a TTL of 1 can expire at once
	expiryDeadline = 5 * time.Second
	poll           = 50 * time.Millisecond
)

var failed bool

func check(name string, fn func() error) {
	if err := fn(); err != nil {
		why := regexp.MustCompile(`\s+`).ReplaceAllString(err.Error(), " ")
		fmt.Printf("not ok %s: %s\n", name, why)
		failed = true
		return
	}
	fmt.Printf("ok %s\n", name)
}

func show(v interface{}) string {
	if b, ok := v.([]byte); ok {
		if len(b) > 60 {
			return fmt.Sprintf("<%d bytes>", len(b))
		}
		return strconv.Quote(string(b))
	}
	return fmt.Sprintf("%#v", v)
}

func expect(what string, got, want interface{}) error {
	if !reflect.DeepEqual(got, want) {
		return fmt.Errorf("%s: got %s, expected %s", what, show(got), show(want))
	}
	return nil
}

// value is the stored value of key, nil on a miss, or an error.
func value(c *memcache.Client, key string) ([]byte, error) {
	it, err := c.Get(key)
	if err == memcache.ErrCacheMiss {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get %s: %v", key, err)
	}
	return it.Value, nil
}

func expectValue(c *memcache.Client, key string, want []byte) error {
	got, err := value(c, key)
	if err != nil {
		return err
	}
	if want == nil && got != nil || !bytes.Equal(got, want) {
		return fmt.Errorf("get %s: got %s, expected %s", key, show(got), show(want))
	}
	return nil
}

func waitGone(c *memcache.Client, key string) error {
	start := time.Now()
	for time.Since(start) < expiryDeadline {
		v, err := value(c, key)
		if err != nil {
			return err
		}
		if v == nil {
			return nil
		}
		time.Sleep(poll)
	}
	return fmt.Errorf("%s still there after %v", key, expiryDeadline)
}

func allBytes() []byte {
	v := make([]byte, 0, 256*2+7)
	for i := 0; i < 256; i++ {
		v = append(v, byte(i))
	}
	v = append(v, "\r\nEND\r\n"...)
	for i := 255; i >= 0; i-- {
		v = append(v, byte(i))
	}
	return v
}

func randomBytes(n int) []byte {
	v := make([]byte, n)
	if _, err := rand.Read(v); err != nil {
		panic(err)
	}
	return v
}

func env(name string) string {
	v, ok := os.LookupEnv(name)
	if !ok {
		fmt.Fprintf(os.Stderr, "environment variable %s is not set\n", name)
		os.Exit(2)
	}
	return v
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: gomemcache_check HOST:PORT")
		os.Exit(2)
	}
	itemMax, err := strconv.Atoi(env("CLIENT_ITEM_SIZE_MAX"))
	if err != nil {
		panic(err)
	}
	p := env("CLIENT_KEY_PREFIX")
	c := memcache.New(os.Args[1])
	c.Timeout = 5 * time.Second // the default 100 ms is tight for 1 MB values

	set := func(key string, v []byte, ttl int32) error {
		if err := c.Set(&memcache.Item{Key: p + key, Value: v, Expiration: ttl}); err != nil {
			return fmt.Errorf("set %s: %v", key, err)
		}
		return nil
	}

	check("set_get", func() error {
		if err := c.Set(&memcache.Item{Key: p + "sg", Value: []byte("value"), Flags: 42}); err != nil {
			return err
		}
		it, err := c.Get(p + "sg")
		if err != nil {
			return err
		}
		if err := expect("value", it.Value, []byte("value")); err != nil {
			return err
		}
		if err := expect("flags", it.Flags, uint32(42)); err != nil {
			return err
		}
		_, err = c.Get(p + "sg_missing")
		return expect("get of a missing key", err, memcache.ErrCacheMiss)
	})

	check("multi_get", func() error {
		if err := set("mg1", []byte("one"), 0); err != nil {
			return err
		}
		if err := set("mg2", []byte("two"), 0); err != nil {
			return err
		}
		got, err := c.GetMulti([]string{p + "mg1", p + "mg_missing", p + "mg2"})
		if err != nil {
			return err
		}
		values := map[string]string{}
		for k, it := range got {
			values[strings.TrimPrefix(k, p)] = string(it.Value)
		}
		return expect("GetMulti", values, map[string]string{"mg1": "one", "mg2": "two"})
	})

	check("add", func() error {
		if err := c.Add(&memcache.Item{Key: p + "ad", Value: []byte("first")}); err != nil {
			return err
		}
		err := c.Add(&memcache.Item{Key: p + "ad", Value: []byte("second")})
		if err := expect("add of an existing key", err, memcache.ErrNotStored); err != nil {
			return err
		}
		return expectValue(c, p+"ad", []byte("first"))
	})

	check("replace", func() error {
		err := c.Replace(&memcache.Item{Key: p + "rp", Value: []byte("x")})
		if err := expect("replace of a missing key", err, memcache.ErrNotStored); err != nil {
			return err
		}
		if err := expectValue(c, p+"rp", nil); err != nil {
			return err
		}
		if err := set("rp", []byte("old"), 0); err != nil {
			return err
		}
		if err := c.Replace(&memcache.Item{Key: p + "rp", Value: []byte("new")}); err != nil {
			return err
		}
		return expectValue(c, p+"rp", []byte("new"))
	})

	check("cas_success", func() error {
		if err := set("cs", []byte("a"), 0); err != nil {
			return err
		}
		it, err := c.Get(p + "cs") // gomemcache's Get is a gets: it keeps the unique
		if err != nil {
			return err
		}
		it.Value = []byte("b")
		if err := c.CompareAndSwap(it); err != nil {
			return fmt.Errorf("CompareAndSwap: %v", err)
		}
		return expectValue(c, p+"cs", []byte("b"))
	})

	check("cas_conflict", func() error {
		if err := set("cc", []byte("a"), 0); err != nil {
			return err
		}
		it, err := c.Get(p + "cc")
		if err != nil {
			return err
		}
		if err := set("cc", []byte("changed"), 0); err != nil {
			return err
		}
		it.Value = []byte("b")
		if err := expect("cas with a stale unique", c.CompareAndSwap(it), memcache.ErrCASConflict); err != nil {
			return err
		}
		if err := expectValue(c, p+"cc", []byte("changed")); err != nil {
			return err
		}
		if err := c.Delete(p + "cc"); err != nil {
			return err
		}
		return expect("cas of a deleted key", c.CompareAndSwap(it), memcache.ErrCacheMiss)
	})

	check("incr_decr", func() error {
		if err := set("n", []byte("10"), 0); err != nil {
			return err
		}
		steps := []struct {
			what  string
			incr  bool
			delta uint64
			want  uint64
		}{
			{"incr", true, 5, 15}, {"decr", false, 3, 12}, {"decr below 0", false, 100, 0},
		}
		for _, s := range steps {
			var got uint64
			var err error
			if s.incr {
				got, err = c.Increment(p+"n", s.delta)
			} else {
				got, err = c.Decrement(p+"n", s.delta)
			}
			if err != nil {
				return fmt.Errorf("%s: %v", s.what, err)
			}
			if err := expect(s.what, got, s.want); err != nil {
				return err
			}
		}
		if err := set("n", []byte("18446744073709551615"), 0); err != nil {
			return err
		}
		got, err := c.Increment(p+"n", 1)
		if err != nil {
			return err
		}
		return expect("incr wraps", got, uint64(0))
	})

	check("incr_decr_missing", func() error {
		_, err := c.Increment(p+"n_missing", 1)
		if err := expect("incr of a missing key", err, memcache.ErrCacheMiss); err != nil {
			return err
		}
		_, err = c.Decrement(p+"n_missing", 1)
		if err := expect("decr of a missing key", err, memcache.ErrCacheMiss); err != nil {
			return err
		}
		return expectValue(c, p+"n_missing", nil)
	})

	check("delete", func() error {
		if err := set("de", []byte("x"), 0); err != nil {
			return err
		}
		if err := c.Delete(p + "de"); err != nil {
			return err
		}
		if err := expectValue(c, p+"de", nil); err != nil {
			return err
		}
		return expect("delete of a missing key", c.Delete(p+"de"), memcache.ErrCacheMiss)
	})

	check("touch", func() error {
		if err := set("to", []byte("x"), expiryTTL); err != nil {
			return err
		}
		if err := set("to_control", []byte("x"), expiryTTL); err != nil {
			return err
		}
		if err := c.Touch(p+"to", 100); err != nil {
			return fmt.Errorf("touch: %v", err)
		}
		if err := expect("touch of a missing key", c.Touch(p+"to_missing", 100), memcache.ErrCacheMiss); err != nil {
			return err
		}
		if err := waitGone(c, p+"to_control"); err != nil {
			return err
		}
		return expectValue(c, p+"to", []byte("x"))
	})

	check("expiry", func() error {
		if err := set("ex", []byte("x"), expiryTTL); err != nil {
			return err
		}
		if err := expectValue(c, p+"ex", []byte("x")); err != nil {
			return err
		}
		return waitGone(c, p+"ex")
	})

	check("binary_value", func() error {
		v := allBytes()
		if err := set("bin", v, 0); err != nil {
			return err
		}
		return expectValue(c, p+"bin", v)
	})

	check("large_value", func() error {
		v := randomBytes(itemMax - 2048)
		if err := set("large", v, 0); err != nil {
			return err
		}
		return expectValue(c, p+"large", v)
	})

	check("too_large", func() error {
		if err := set("too_large", []byte("old"), 0); err != nil {
			return err
		}
		err := set("too_large", randomBytes(itemMax+itemMax/2), 0)
		if err == nil || !strings.Contains(err.Error(), "SERVER_ERROR object too large for cache") {
			return fmt.Errorf("set of a too-large value: %v", err)
		}
		// the server refused it: a refused set removes the old value
		return expectValue(c, p+"too_large", nil)
	})

	check("after_too_large", func() error {
		if err := set("atl", randomBytes(itemMax+itemMax/2), 0); err == nil {
			return fmt.Errorf("set of a too-large value succeeded")
		}
		if err := set("atl_small", []byte("fine"), 0); err != nil {
			return err
		}
		return expectValue(c, p+"atl_small", []byte("fine"))
	})

	fmt.Println("# done")
	if failed {
		os.Exit(1)
	}
}
