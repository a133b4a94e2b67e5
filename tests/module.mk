# tests/: one cmocka executable per module under tests/unit/<component>/,
# linked against that component only, plus integration helpers.

# $(call unit_test,component,libs[,files left out])
define unit_test
$(foreach t,$(filter-out $(3),$(wildcard tests/unit/$(1)/test_*.c)),$(eval $(call unit_test_one,$(t),$(2))))
endef
define unit_test_one
UNIT_TESTS += $(B)/$(basename $(1))
$(B)/$(basename $(1)): $(B)/obj/$(basename $(1)).o $(2)
	@mkdir -p $$(@D)
	@$$(if $$(Q),echo "  LD      $$@")
	$$(Q)$$(CC) $$(LDFLAGS_ALL) -o $$@ $$^ $$(CMOCKA_LIBS) $$(LIBS_ALL)
endef

$(B)/obj/tests/%.o: CFLAGS_ALL += $(CMOCKA_CFLAGS)

$(eval $(call unit_test,common,$(COMMON_LIB)))
# test_ketama checks placement against libmemcached's own.
$(B)/tests/unit/common/test_ketama: LIBS_ALL += $(LMC_LIBS)
$(eval $(call unit_test,cache,$(CACHE_LIB) $(COMMON_LIB)))
$(eval $(call unit_test,frontend,$(FRONTEND_LIB) $(COMMON_LIB)))
# test_killpoint needs KILL_POINT compiled in, or it would have nothing to
# test: it links the engine lsm-stress links (tools/lsm/module.mk), which in
# release is the kill-point build of the storage sources. It fails, rather
# than skips, if kill points are compiled out anyway.
KILLPOINT_TEST_SRC := tests/unit/storage/test_killpoint.c
$(eval $(call unit_test,storage,$(STORAGE_LIB) $(COMMON_LIB),$(KILLPOINT_TEST_SRC)))
$(eval $(call unit_test_one,$(KILLPOINT_TEST_SRC),$(LSM_STRESS_STORAGE) $(COMMON_LIB)))
$(B)/obj/tests/unit/storage/%.o: CFLAGS_ALL += -Istorage/include
$(eval $(call unit_test,server,$(SERVER_LIB) $(KVSTORE_LIB) $(STORAGE_LIB) $(COMMON_LIB)))
$(B)/obj/tests/unit/server/%.o: CFLAGS_ALL += -Istorage/include

LMC_TEST := $(B)/tests/integration/lmc_test
TEST_BINS += $(LMC_TEST)
$(LMC_TEST): $(B)/obj/tests/integration/lmc_test.o
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LMC_LIBS) $(CMOCKA_LIBS)

LMC_BINARY_TEST := $(B)/tests/integration/lmc_binary_test
TEST_BINS += $(LMC_BINARY_TEST)
$(LMC_BINARY_TEST): $(B)/obj/tests/integration/lmc_binary_test.o
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LMC_LIBS) $(CMOCKA_LIBS)
