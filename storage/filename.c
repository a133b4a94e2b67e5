/*
 * filename.c - database file names (filename.h). Pure functions.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/filename.h"

void filename_path(char *out, const char *dir, enum filename_kind kind, uint64_t number)
{
    unsigned long long n = (unsigned long long)number;
    switch (kind) {
    case FILENAME_WAL: snprintf(out, FILENAME_MAX_PATH, "%s/%06llu.wal", dir, n); break;
    case FILENAME_SST: snprintf(out, FILENAME_MAX_PATH, "%s/%06llu.sst", dir, n); break;
    case FILENAME_SST_TMP: snprintf(out, FILENAME_MAX_PATH, "%s/%06llu.sst.tmp", dir, n); break;
    case FILENAME_MANIFEST: snprintf(out, FILENAME_MAX_PATH, "%s/MANIFEST-%06llu", dir, n); break;
    case FILENAME_CURRENT: snprintf(out, FILENAME_MAX_PATH, "%s/CURRENT", dir); break;
    case FILENAME_CURRENT_TMP: snprintf(out, FILENAME_MAX_PATH, "%s/CURRENT.tmp", dir); break;
    case FILENAME_LOCK: snprintf(out, FILENAME_MAX_PATH, "%s/LOCK", dir); break;
    case FILENAME_UNKNOWN: snprintf(out, FILENAME_MAX_PATH, "%s/?", dir); break;
    }
}

/* Parses leading decimal digits; returns the rest or NULL. */
static const char *parse_num(const char *s, uint64_t *out)
{
    if (*s < '0' || *s > '9')
        return NULL;
    uint64_t v = 0;
    while (*s >= '0' && *s <= '9') {
        if (v > (UINT64_MAX - 9) / 10)
            return NULL;
        v = v * 10 + (uint64_t)(*s++ - '0');
    }
    *out = v;
    return s;
}

enum filename_kind filename_parse(const char *name, uint64_t *number)
{
    if (strcmp(name, "CURRENT") == 0)
        return FILENAME_CURRENT;
    if (strcmp(name, "CURRENT.tmp") == 0)
        return FILENAME_CURRENT_TMP;
    if (strcmp(name, "LOCK") == 0)
        return FILENAME_LOCK;
    if (strncmp(name, "MANIFEST-", 9) == 0) {
        const char *rest = parse_num(name + 9, number);
        return rest != NULL && *rest == 0 ? FILENAME_MANIFEST : FILENAME_UNKNOWN;
    }
    const char *rest = parse_num(name, number);
    if (rest == NULL)
        return FILENAME_UNKNOWN;
    if (strcmp(rest, ".wal") == 0)
        return FILENAME_WAL;
    if (strcmp(rest, ".sst") == 0)
        return FILENAME_SST;
    if (strcmp(rest, ".sst.tmp") == 0)
        return FILENAME_SST_TMP;
    return FILENAME_UNKNOWN;
}
