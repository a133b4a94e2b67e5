# cache/: the L1 item store library (uses common only).
CACHE_SRCS := $(wildcard cache/*.c)
CACHE_LIB := $(B)/lib/libstrata_cache.a
$(eval $(call archive,$(CACHE_LIB),$(CACHE_SRCS:%.c=$(B)/obj/%.o)))
