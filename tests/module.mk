# tests/: one cmocka executable per module under tests/unit/<component>/,
# linked against that component only, plus integration helpers.

# $(call unit_test,component,libs)
define unit_test
$(foreach t,$(wildcard tests/unit/$(1)/test_*.c),$(eval $(call unit_test_one,$(t),$(2))))
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
$(eval $(call unit_test,cache,$(CACHE_LIB) $(COMMON_LIB)))
$(eval $(call unit_test,storage,$(STORAGE_LIB) $(COMMON_LIB)))
$(B)/obj/tests/unit/storage/%.o: CFLAGS_ALL += -Istorage/include

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
