/*
 * detail.h - memcached's per-prefix statistics (`stats detail on|off|dump`,
 * delimiter -D, default ':'): for each key prefix up to the first
 * delimiter, how many get lookups, hits, sets and deletes the text and
 * binary protocols saw. Off by default; when off, each record call costs
 * one relaxed atomic load. Any worker thread.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "common/status.h"

struct detail;

/* At most this many prefixes are tracked; later new prefixes are not
 * recorded (memcached has no bound: a client could grow it without end). */
#define DETAIL_PREFIXES_MAX 65536

/* enabled: collecting from the start (memcached: -D turns it on). */
enum st_status detail_create(struct detail **out, char delimiter, bool enabled);
/* Accepts NULL and *d == NULL; sets *d to NULL. */
void detail_destroy(struct detail **d);

void detail_set_enabled(struct detail *d, bool on);
bool detail_enabled(const struct detail *d);

/* Each records only while enabled and only keys holding the delimiter. */
void detail_record_get(struct detail *d, const char *key, size_t nkey, bool hit);
void detail_record_set(struct detail *d, const char *key, size_t nkey);
void detail_record_delete(struct detail *d, const char *key, size_t nkey);

/* Forgets every prefix (stats reset). */
void detail_clear(struct detail *d);

/* A dump's text; owned by the caller until detail_text_free(). */
struct detail_text {
    char *buf;
    size_t len, cap;
};

/*
 * The `stats detail dump` text: "PREFIX <p> get N hit N set N del N\r\n"
 * per prefix, sorted by prefix, then "END\r\n". ST_OK or ST_NOMEM.
 */
enum st_status detail_dump(struct detail *d, struct detail_text *out);
void detail_text_free(struct detail_text *t);
