# frontend/: the memcached front end as a library (listener, workers,
# connections, the text, meta and binary protocols, ordered replies) that
# runs commands on an executor a daemon plugs in (exec.h, docs/FRONTEND.md).
# Uses common only.
FRONTEND_SRCS := $(wildcard frontend/*.c)
FRONTEND_LIB := $(B)/lib/libstrata_frontend.a
$(eval $(call archive,$(FRONTEND_LIB),$(FRONTEND_SRCS:%.c=$(B)/obj/%.o)))
