/* status.c - names for enum st_status (logs and error messages). */
#include "common/status.h"

const char *st_status_name(enum st_status s)
{
    switch (s) {
    case ST_OK: return "ok";
    case ST_AGAIN: return "again";
    case ST_NOMEM: return "out of memory";
    case ST_INVAL: return "invalid argument";
    case ST_IO: return "i/o error";
    case ST_CORRUPT: return "corruption";
    case ST_TIMEOUT: return "timeout";
    case ST_UNAVAIL: return "unavailable";
    case ST_CLOSED: return "closed";
    }
    return "unknown status";
}
