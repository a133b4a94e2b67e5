# kvstore/: memcached's data commands on the LSM engine, shared by
# strata-node (a key's primary) and strata-proxy (backend = local). Uses
# common and storage.
KVSTORE_SRCS := $(wildcard kvstore/*.c)
KVSTORE_LIB := $(B)/lib/libstrata_kvstore.a
$(eval $(call archive,$(KVSTORE_LIB),$(KVSTORE_SRCS:%.c=$(B)/obj/%.o)))
$(B)/obj/kvstore/%.o: CFLAGS_ALL += -Istorage/include
