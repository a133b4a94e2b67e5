# proxy/: the strata-proxy daemon.
PROXY_SRCS := $(wildcard proxy/*.c)
PROXY_BIN := $(B)/bin/strata-proxy
BINS += $(PROXY_BIN)
$(PROXY_BIN): $(PROXY_SRCS:%.c=$(B)/obj/%.o) $(FRONTEND_LIB) $(CACHE_LIB) $(KVSTORE_LIB) \
              $(STORAGE_LIB) $(COMMON_LIB)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS_ALL)
$(B)/obj/proxy/%.o: CFLAGS_ALL += -Istorage/include
