# Strata - one non-recursive Makefile; each component adds itself through
# its module.mk. Objects live under build/$(MODE)/.
#
#   make [all]     build the daemons and tools (MODE=release by default)
#   make run       install missing dependencies, build, start strata-proxy
#   make test      install dependencies, build, run unit + integration tests
#                  (integration against strata-proxy and stock memcached)
#   make asan      the test suite built with -fsanitize=address,undefined
#   make tsan      the same suite under ThreadSanitizer
#   make bench     side-by-side benchmark against memcached
#   make crash-test / bench-storage   storage engine kill loop / vs LevelDB, RocksDB
#   make install   DESTDIR= PREFIX=/usr/local
#   make deb / rpm / package-test   packages (packaging/, docs/PACKAGING.md)
#   make check-deps / check-headers / fmt / check-format / clean

MODE ?= release
PREFIX ?= /usr/local
DESTDIR ?=
B := build/$(MODE)

CC ?= cc
PKG_CONFIG ?= pkg-config
PYTHON ?= /usr/bin/python3

WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
        -Wformat=2 -Wvla -Wno-format-nonliteral
BASE_CFLAGS := -std=c11 -D_GNU_SOURCE -pthread -I. $(WARN) -MMD -MP -g

ifeq ($(MODE),release)
OPT_CFLAGS := -O2 -DNDEBUG
USE_JEMALLOC := 1
else ifeq ($(MODE),debug)
OPT_CFLAGS := -O0
USE_JEMALLOC := 1
else ifeq ($(MODE),asan)
# Sanitizers need libc malloc (STYLE.md: jemalloc in normal builds only).
OPT_CFLAGS := -O1 -fno-omit-frame-pointer -fsanitize=address,undefined \
              -fno-sanitize-recover=all
SAN_LDFLAGS := -fsanitize=address,undefined
USE_JEMALLOC := 0
else ifeq ($(MODE),tsan)
# ThreadSanitizer: every lock-free path (refcounts, stats, the memtable's
# readers, worker hand-off) checked for data races. libc malloc, as above.
OPT_CFLAGS := -O1 -fno-omit-frame-pointer -fsanitize=thread
SAN_LDFLAGS := -fsanitize=thread
USE_JEMALLOC := 0
else
$(error MODE must be release, debug, asan or tsan)
endif

PKGS := libevent_core libxxhash libzstd inih libmd
ifeq ($(USE_JEMALLOC),1)
PKGS += jemalloc
else
OPT_CFLAGS += -DSTRATA_NO_JEMALLOC
endif

# systemd readiness notification (Type=notify) when libsystemd is there.
ifeq ($(shell $(PKG_CONFIG) --exists libsystemd && echo yes),yes)
PKGS += libsystemd
OPT_CFLAGS += -DSTRATA_HAVE_SYSTEMD
endif

PKG_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null)
CMOCKA_CFLAGS := $(shell $(PKG_CONFIG) --cflags cmocka 2>/dev/null)
CMOCKA_LIBS := $(shell $(PKG_CONFIG) --libs cmocka 2>/dev/null)
LMC_LIBS := $(shell $(PKG_CONFIG) --libs libmemcached 2>/dev/null)

CFLAGS_ALL := $(BASE_CFLAGS) $(OPT_CFLAGS) $(PKG_CFLAGS) $(CPPFLAGS) $(CFLAGS)
LDFLAGS_ALL := -pthread $(SAN_LDFLAGS) $(LDFLAGS)
LIBS_ALL := $(PKG_LIBS) -lm

VERSION := $(shell cat VERSION)
CFLAGS_ALL += -DSTRATA_VERSION='"$(VERSION)"'

.PHONY: all run test test-unit test-integration asan tsan bench install clean \
        deps deps-test check-deps check-headers fmt check-format
.DEFAULT_GOAL := all

# Filled in by the module.mk files.
BINS :=
UNIT_TESTS :=
TEST_BINS :=

# `make V=1` shows whole command lines.
Q := $(if $(V),,@)

$(B)/obj/%.o: %.c
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS_ALL) -c $< -o $@

# $(call archive,lib,objs)
define archive
$(1): $(2)
	@mkdir -p $$(@D)
	$$(Q)rm -f $$@ && ar rcs $$@ $$^
endef

include common/module.mk
include cache/module.mk
include frontend/module.mk
include storage/module.mk
include kvstore/module.mk
include proxy/module.mk
include server/module.mk
include tools/module.mk
include tools/lsm/module.mk
include tests/module.mk
include packaging/module.mk

all: $(BINS)

deps:
	@tools/install-deps.sh build

deps-test:
	@tools/install-deps.sh test

# make run: a persistent memcached (backend = local) whose data lives in
# RUN_DATA across restarts; `make run RUN_DATA=/some/dir` moves it.
RUN_DATA ?= build/run-data
run: deps
	@$(MAKE) --no-print-directory all
	exec $(B)/bin/strata-proxy -p 11211 -l 127.0.0.1 -v --backend local --data-dir $(RUN_DATA)

test: deps-test
	@$(MAKE) --no-print-directory all $(UNIT_TESTS) $(TEST_BINS)
	tools/run-tests.sh $(B) all

asan: deps-test
	@$(MAKE) --no-print-directory MODE=asan all-asan

tsan: deps-test
	@$(MAKE) --no-print-directory MODE=tsan all-tsan

# Under sanitizers only strata itself is tested (memcached is not ours).
.PHONY: all-asan all-tsan
all-asan: all $(UNIT_TESTS) $(TEST_BINS)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	tools/run-tests.sh $(B) strata,strata-async,strata-router

# A race makes the process exit 66, which fails its test (the integration
# fixture checks strata's exit status). The lock-order checker is on too.
# The client libraries' suites (tests/clients) drive the same protocol
# paths the integration suite does from more processes; they run in the
# release and ASan passes, not here (CI's time budget).
all-tsan: all $(UNIT_TESTS) $(TEST_BINS)
	TSAN_OPTIONS=detect_deadlocks=1:second_deadlock_stack=1 STRATA_TEST_DIRS=tests/integration \
	tools/run-tests.sh $(B) strata

bench: deps-test
	@$(MAKE) --no-print-directory all
	bench/run.sh $(B)

install: all
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(BINS) $(DESTDIR)$(PREFIX)/bin/

clean:
	rm -rf build

# Dependencies point downwards only (ARCHITECTURE.md "Layout").
check-deps:
	@tools/check-deps.sh

check-headers:
	@for h in $$(git ls-files '*.h'); do \
	  echo "#include \"$$h\"" | $(CC) $(filter-out -MMD -MP,$(CFLAGS_ALL)) -fsyntax-only -x c - || exit 1; \
	done; echo "all headers compile alone"

fmt:
	clang-format -i $$(git ls-files '*.c' '*.h')

# Fails, listing the differences, if a C file is not as `make fmt` leaves it.
check-format:
	clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')

-include $(shell find $(B) -name '*.d' 2>/dev/null)
