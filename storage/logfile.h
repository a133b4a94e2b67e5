/*
 * logfile.h - the record framing shared by WAL segments and the manifest:
 * an append-only file of length-prefixed, checksummed records. The WAL
 * writer is driven by the group-commit leader (db_write.c), the manifest
 * writer under the manifest lock; readers run at open, single-threaded.
 * Spec: docs/formats/wal.md (framing) and docs/formats/manifest.md.
 *
 * File header (24 bytes, little-endian):
 *
 *   offset  size  field
 *   0       8     magic: "STRTWAL1" (WAL) or "STRTMAN1" (manifest)
 *   8       4     format version (1)
 *   12      8     file number (matches the NNNNNN in the file name)
 *   20      4     header check: low 32 bits of XXH3_64bits(bytes 0..19)
 *
 * Record (16-byte header, then the payload):
 *
 *   offset  size  field
 *   0       4     payload length n (LE), 1..LOGFILE_MAX_RECORD
 *   4       4     header check: low 32 bits of XXH3_64bits(bytes 0..3)
 *   8       8     payload checksum: XXH3_64bits(payload) (LE)
 *   16      n     payload
 *
 * Reading stops at the first bad record. In the newest file of a log it is
 * a torn tail (ignored) when the damage reaches the end of the file: fewer
 * than 16 bytes left, a payload running past the end, a bad record followed
 * only by zero bytes or by nothing. Anything else is corruption.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/status.h"
#include "storage/coding.h"
#include "storage/env.h"

#define LOGFILE_HEADER_SIZE 24u
#define LOGFILE_RECORD_HEADER 16u
#define LOGFILE_MAX_RECORD (1u << 30)
#define LOGFILE_VERSION 1u
#define LOGFILE_MAGIC_WAL "STRTWAL1"
#define LOGFILE_MAGIC_MANIFEST "STRTMAN1"

struct logfile_writer;
struct logfile_reader;

/* Creates `path` (truncating), writes the header. Does not sync. ST_IO. */
enum st_status logfile_writer_create(struct lsm_env *env, const char *path, const char *magic,
                                     uint64_t number, struct logfile_writer **out);
/* Closes (without syncing) and frees; NULLs *w; accepts NULL. */
void logfile_writer_destroy(struct logfile_writer **w);
/* Appends the framing of one record to `b` (for one write of many). */
enum st_status logfile_frame(struct buf *b, const void *payload, size_t n);
/* Fills the 16-byte record header at `rec` for the n payload bytes that
 * follow it (a caller that encoded the payload in place). */
void logfile_frame_inplace(uint8_t *rec, size_t n);
/* Appends already-framed bytes with one env append. ST_IO. */
enum st_status logfile_writer_append(struct logfile_writer *w, const void *framed, size_t n);
/* Frames and appends one record. */
enum st_status logfile_writer_add(struct logfile_writer *w, const void *payload, size_t n);
enum st_status logfile_writer_sync(struct logfile_writer *w);
/* Bytes in the file so far (header included). */
uint64_t logfile_writer_size(const struct logfile_writer *w);
uint64_t logfile_writer_number(const struct logfile_writer *w);

/*
 * Reads all of `path` and checks the header (magic, version). `newest`
 * says whether this is the newest file of its log (torn tails allowed).
 * ST_IO; ST_CORRUPT (bad header; a file shorter than its header is an empty
 * torn file when `newest`, corrupt otherwise).
 */
enum st_status logfile_reader_open(struct lsm_env *env, const char *path, const char *magic,
                                   bool newest, struct logfile_reader **out);
void logfile_reader_destroy(struct logfile_reader **r);
/*
 * Next record: ST_OK with *payload and *n (valid until the reader is destroyed)
 * and *eof false; ST_OK with *eof true at the end (clean or torn tail, see
 * logfile_reader_torn); ST_CORRUPT at a bad record in the middle
 * (logfile_reader_offset gives where).
 */
enum st_status logfile_reader_next(struct logfile_reader *r, const uint8_t **payload, size_t *n,
                                   bool *eof);
/* Whether reading ended at a torn tail. */
bool logfile_reader_torn(const struct logfile_reader *r);
/* Offset of the next unread (or the bad) record. */
uint64_t logfile_reader_offset(const struct logfile_reader *r);
uint64_t logfile_reader_number(const struct logfile_reader *r);
