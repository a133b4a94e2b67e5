# tools/lsm/: the storage engine's stress/crash tool and db_bench-style benchmark.
#
#   make crash-test                      short crash test (CI): >= 100 kill /
#                                        reopen / verify cycles, every named
#                                        kill point, ~3 minutes on 2 cores
#   make crash-test CRASH_SECONDS=3600   the long version (runs that long)
#   make bench-storage                   ours vs LevelDB vs RocksDB, 1M keys,
#                                        two tables: compression off, and each
#                                        engine's production compression
#                                        (docs/STORAGE_BENCH.md), ~4-5 minutes
#   make bench-storage BENCH_NUM=10000000   the 10M-key run (~1 hour on 2 cores)
#
# Kill points: lsm-stress needs them compiled in. Debug and asan builds have
# them already (killpoint.h); in release (the default MODE) the storage
# sources are compiled a second time with -DSTRATA_KILL_POINTS into
# $(B)/obj-kp/ and archived as libstrata_storage_kp.a, so the crash test runs
# the optimised engine with kill points while strata's own binaries and
# lsm-bench link the normal library, where kill points compile away.
# lsm-stress is part of TEST_BINS (built by `make test`, never installed).

.PHONY: crash-test bench-storage

LSM_KP_LIB := $(B)/lib/libstrata_storage_kp.a
$(eval $(call archive,$(LSM_KP_LIB),$(STORAGE_SRCS:%.c=$(B)/obj-kp/%.o)))
$(B)/obj-kp/storage/%.o: storage/%.c
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $< (kill points)")
	$(Q)$(CC) $(CFLAGS_ALL) -Istorage/include -DSTRATA_KILL_POINTS -c $< -o $@

ifeq ($(MODE),release)
LSM_STRESS_STORAGE := $(LSM_KP_LIB)
else
LSM_STRESS_STORAGE := $(STORAGE_LIB)
endif

LSM_STRESS_SRCS := tools/lsm/stress.c tools/lsm/stress_model.c
LSM_STRESS_BIN := $(B)/bin/lsm-stress
TEST_BINS += $(LSM_STRESS_BIN)
$(LSM_STRESS_BIN): $(LSM_STRESS_SRCS:%.c=$(B)/obj/%.o) $(LSM_STRESS_STORAGE) $(COMMON_LIB)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS_ALL)

# CRASH_SECONDS=0: the short run (CRASH_CYCLES cycles, every kill point);
# otherwise run for that many seconds. CRASH_DIR: where the databases go
# (kept on failure). CRASH_ARGS: anything else for the driver (--help).
CRASH_SECONDS ?= 0
CRASH_CYCLES ?= 120
CRASH_DIR ?=
CRASH_ARGS ?=
crash-test: $(LSM_STRESS_BIN)
	$(PYTHON) tests/lsm/crash_test.py --bin $(LSM_STRESS_BIN) \
	  --cycles $(CRASH_CYCLES) --seconds $(CRASH_SECONDS) \
	  $(if $(CRASH_DIR),--dir $(CRASH_DIR)) $(CRASH_ARGS)

# lsm-bench links LevelDB and RocksDB (Debian: libleveldb-dev librocksdb-dev),
# so it is not part of `all`; bench-storage builds it in release mode whatever
# MODE says (numbers from -O0 or sanitizer builds mean nothing).
LSM_BENCH_SRCS := $(wildcard tools/lsm/bench/*.c)
LSM_BENCH_BIN := $(B)/bin/lsm-bench
LSM_BENCH_LIBS := -lleveldb -lrocksdb
$(LSM_BENCH_BIN): $(LSM_BENCH_SRCS:%.c=$(B)/obj/%.o) $(STORAGE_LIB) $(COMMON_LIB)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LSM_BENCH_LIBS) $(LIBS_ALL)

# BENCH_NUM=10000000 for the long run; BENCH_STORAGE_ARGS for anything else
# (lsm-bench --help), e.g. --memtable-mb 64, --engines strata,leveldb or
# --compression default (one table).
BENCH_NUM ?= 1000000
BENCH_STORAGE_ARGS ?=
bench-storage:
	@tools/install-deps.sh bench
	@$(MAKE) --no-print-directory MODE=release build/release/bin/lsm-bench
	bench/storage/run.sh build/release/bin/lsm-bench --num $(BENCH_NUM) $(BENCH_STORAGE_ARGS)
