# storage/: the LSM engine library (uses common only; public header
# storage/include/lsm.h).
STORAGE_SRCS := $(wildcard storage/*.c)
STORAGE_LIB := $(B)/lib/libstrata_storage.a
$(eval $(call archive,$(STORAGE_LIB),$(STORAGE_SRCS:%.c=$(B)/obj/%.o)))
$(B)/obj/storage/%.o: CFLAGS_ALL += -Istorage/include
