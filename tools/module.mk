# tools/: operator and load tools (use common only).

# strata-bench: the memcached-protocol load generator. Everything but main.o
# also goes into a library that the unit tests under tests/unit/tools link.
BENCH_SRCS := $(wildcard tools/strata-bench/*.c)
BENCH_OBJS := $(BENCH_SRCS:%.c=$(B)/obj/%.o)
BENCH_LIB := $(B)/lib/libstrata_bench.a
BENCH_BIN := $(B)/bin/strata-bench
BINS += $(BENCH_BIN)
$(eval $(call archive,$(BENCH_LIB),$(filter-out %/main.o,$(BENCH_OBJS))))
$(BENCH_BIN): $(B)/obj/tools/strata-bench/main.o $(BENCH_LIB) $(COMMON_LIB)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS_ALL)

# Unit tests of strata-bench's pure parts, one cmocka executable per file.
# tests/module.mk's unit_test macro is defined after this file is included,
# so the same rule is spelled out here; its CMOCKA_CFLAGS pattern rule for
# $(B)/obj/tests/%.o applies to these objects as well.
TOOLS_TESTS := $(patsubst %.c,$(B)/%,$(wildcard tests/unit/tools/test_*.c))
UNIT_TESTS += $(TOOLS_TESTS)
$(TOOLS_TESTS): $(B)/tests/unit/tools/%: $(B)/obj/tests/unit/tools/%.o $(BENCH_LIB) $(COMMON_LIB)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(CMOCKA_LIBS) $(LIBS_ALL)

# make bench-tiers: strata-proxy --backend local against redis-server with
# an append-only file, L1 hits with and without a backend, and the backend
# paths: miss, write-through, write-behind (bench/tiers.py, docs/BENCH.md).
.PHONY: bench-tiers
bench-tiers: deps-test
	@$(MAKE) --no-print-directory all
	$(PYTHON) bench/tiers.py $(PROXY_BIN) $(BENCH_BIN)

# make bench-l2: strata-proxy's routing mode (--l1 off, an L2 pool of two
# memcached servers) against Debian's nutcracker (twemproxy) in front of
# the same servers, GET and SET at depth 1 and 16; then the staleness of
# L1 copies across three proxies with peers (bench/l2.py, docs/L2.md).
.PHONY: bench-l2
bench-l2: deps-test
	@command -v nutcracker >/dev/null || apt-get install -y -q nutcracker
	@$(MAKE) --no-print-directory all
	$(PYTHON) bench/l2.py $(PROXY_BIN) $(BENCH_BIN)

# strata-admin: operator commands against a strata-node (its stats).
ADMIN_BIN := $(B)/bin/strata-admin
BINS += $(ADMIN_BIN)
$(ADMIN_BIN): $(B)/obj/tools/strata-admin/main.o
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^
