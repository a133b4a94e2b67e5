# server/: strata-node - the coordinator executor, membership, hinted
# handoff, repair (uses common and storage; ARCHITECTURE.md "Layout").
# Everything but main.c goes into a library the unit tests link.
SERVER_SRCS := $(filter-out server/main.c,$(wildcard server/*.c))
SERVER_LIB := $(B)/lib/libstrata_server.a
$(eval $(call archive,$(SERVER_LIB),$(SERVER_SRCS:%.c=$(B)/obj/%.o)))
$(B)/obj/server/%.o: CFLAGS_ALL += -Istorage/include

NODE_BIN := $(B)/bin/strata-node
BINS += $(NODE_BIN)
$(NODE_BIN): $(B)/obj/server/main.o $(SERVER_LIB) $(FRONTEND_LIB) $(KVSTORE_LIB) $(STORAGE_LIB) $(COMMON_LIB)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS_ALL)

# make bench-cluster: three nodes against one, at ONE, QUORUM and ALL
# (bench/cluster.py, docs/BENCH.md).
.PHONY: bench-cluster
bench-cluster: deps-test
	@$(MAKE) --no-print-directory all
	$(PYTHON) bench/cluster.py $(NODE_BIN) $(B)/bin/strata-bench

# make soak-cluster: 30 minutes (SOAK_MINUTES) of QUORUM load with random
# kills and restarts, checked by the history checker (tests/soak/).
.PHONY: soak-cluster
soak-cluster: deps-test
	@$(MAKE) --no-print-directory all
	STRATA_NODE_BIN=$(NODE_BIN) STRATA_TEST_SERVER=strata $(PYTHON) tests/soak/cluster_soak.py

# make cluster: three nodes on loopback in the foreground (tools/cluster.sh);
# CLUSTER_BASE / CLUSTER_PORT_BASE move the memcached / cluster ports.
CLUSTER_BASE ?= 11311
CLUSTER_PORT_BASE ?= 7311
.PHONY: cluster
cluster: deps
	@$(MAKE) --no-print-directory all
	tools/cluster.sh $(NODE_BIN) $(CLUSTER_BASE) $(CLUSTER_PORT_BASE)
