/*
 * wire_int.h - what the protocol files of strata-bench's wire module share:
 * wire.c drives the line protocols (find a line, skip a value and its CRLF)
 * and calls wire_text.c / wire_meta.c to classify each line; wire_bin.c
 * parses the binary protocol on its own. Pure functions.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tools/strata-bench/wire.h"

/* Parser states. */
enum {
    WIRE_ST_HEAD, /* a line (or binary header) is next */
    WIRE_ST_DATA, /* p->left value bytes are next */
    WIRE_ST_CRLF, /* the CRLF after a value is next (line protocols) */
};

/* Result of classifying one reply line. */
enum wire_line {
    WIRE_LINE_EVENT, /* *ev is a complete reply */
    WIRE_LINE_VALUE, /* p->pending is set; p->left value bytes and CRLF follow */
};

/*
 * Classify one line (without its CRLF) of the text or meta protocol into
 * *ev, or start a value. Unknown lines give WIRE_EV_BAD.
 */
enum wire_line wire_text_line(struct wire_parser *p, const char *line, size_t n,
                              struct wire_event *ev);
enum wire_line wire_meta_line(struct wire_parser *p, const char *line, size_t n,
                              struct wire_event *ev);

/* ERROR / CLIENT_ERROR / SERVER_ERROR lines, common to text and meta. Fills
 * *ev and returns true if line is one. */
bool wire_error_line(struct wire_parser *p, const char *line, size_t n, struct wire_event *ev);

/* Sets *ev to an event carrying a copy of text (truncated) in p->text. */
void wire_event_text(struct wire_parser *p, struct wire_event *ev, enum wire_ev type,
                     const char *text, size_t n);

/* Sets *ev to WIRE_EV_BAD with a printable description of the bytes. */
void wire_event_bad(struct wire_parser *p, struct wire_event *ev, const char *what,
                    const char *bytes, size_t n);

/* Splits the next space-separated token off [*cur, end); false if none. */
bool wire_token(const char **cur, const char *end, const char **tok, size_t *ntok);

/* Parses a whole token as a decimal u64 without sign; false otherwise. */
bool wire_u64(const char *tok, size_t n, uint64_t *out);

size_t wire_text_compose_get(char *buf, const struct keys *ks, const uint64_t *ids, unsigned n);
size_t wire_text_compose_set(char *buf, const struct keys *ks, uint64_t id, uint32_t vlen,
                             uint32_t exptime);
size_t wire_meta_compose_get(char *buf, const struct keys *ks, const uint64_t *ids, unsigned n);
size_t wire_meta_compose_set(char *buf, const struct keys *ks, uint64_t id, uint32_t vlen,
                             uint32_t exptime);
size_t wire_bin_compose_get(char *buf, const struct keys *ks, const uint64_t *ids, unsigned n,
                            uint32_t opaque);
size_t wire_bin_compose_set(char *buf, const struct keys *ks, uint64_t id, uint32_t vlen,
                            uint32_t exptime, uint32_t opaque);

/* The binary protocol's parser (same contract as wire_parse). */
size_t wire_bin_parse(struct wire_parser *p, const char *buf, size_t len, struct wire_event *ev);
