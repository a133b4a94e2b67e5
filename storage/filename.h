/*
 * filename.h - names of the files in a database directory. Pure functions.
 *
 *   NNNNNN.wal        WAL segment number N (6+ decimal digits)
 *   NNNNNN.sst        SSTable number N
 *   NNNNNN.sst.tmp    SSTable being written (deleted at open)
 *   MANIFEST-NNNNNN   manifest log
 *   CURRENT           name of the live manifest, one line
 *   CURRENT.tmp       CURRENT being replaced
 *   LOCK              flock(2)ed while the db is open
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define FILENAME_MAX_PATH 4096

enum filename_kind {
    FILENAME_WAL,
    FILENAME_SST,
    FILENAME_SST_TMP,
    FILENAME_MANIFEST,
    FILENAME_CURRENT,
    FILENAME_CURRENT_TMP,
    FILENAME_LOCK,
    FILENAME_UNKNOWN,
};

/* Writes dir/name into out (FILENAME_MAX_PATH bytes). */
void filename_path(char *out, const char *dir, enum filename_kind kind, uint64_t number);
/* Classifies a directory entry; *number is set for numbered kinds. */
enum filename_kind filename_parse(const char *name, uint64_t *number);
