# common/: codecs, clock, logging, allocation - used by every component.
COMMON_SRCS := $(wildcard common/*.c)
COMMON_LIB := $(B)/lib/libstrata_common.a
$(eval $(call archive,$(COMMON_LIB),$(COMMON_SRCS:%.c=$(B)/obj/%.o)))
