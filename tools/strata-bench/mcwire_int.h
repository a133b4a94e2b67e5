/*
 * mcwire_int.h - what the protocol files of strata-bench's mcwire module share:
 * mcwire.c drives the line protocols (find a line, skip a value and its CRLF)
 * and calls mcwire_text.c / mcwire_meta.c / mcwire_resp.c to classify each
 * line; mcwire_bin.c parses the binary protocol on its own. Pure functions.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tools/strata-bench/mcwire.h"

/* Parser states. */
enum {
    MCWIRE_ST_HEAD, /* a line (or binary header) is next */
    MCWIRE_ST_DATA, /* p->left value bytes are next */
    MCWIRE_ST_CRLF, /* the CRLF after a value is next (line protocols) */
};

/* Result of classifying one reply line. */
enum mcwire_line {
    MCWIRE_LINE_EVENT, /* *ev is a complete reply */
    MCWIRE_LINE_VALUE, /* p->pending is set; p->left value bytes and CRLF follow */
};

/*
 * Classify one line (without its CRLF) of the text, meta or RESP protocol
 * into *ev, or start a value. Unknown lines give MCWIRE_EV_BAD.
 */
enum mcwire_line mcwire_text_line(struct mcwire_parser *p, const char *line, size_t n,
                                  struct mcwire_event *ev);
enum mcwire_line mcwire_meta_line(struct mcwire_parser *p, const char *line, size_t n,
                                  struct mcwire_event *ev);
enum mcwire_line mcwire_resp_line(struct mcwire_parser *p, const char *line, size_t n,
                                  struct mcwire_event *ev);

/* ERROR / CLIENT_ERROR / SERVER_ERROR lines, common to text and meta. Fills
 * *ev and returns true if line is one. */
bool mcwire_error_line(struct mcwire_parser *p, const char *line, size_t n,
                       struct mcwire_event *ev);

/* Sets *ev to an event carrying a copy of text (truncated) in p->text. */
void mcwire_event_text(struct mcwire_parser *p, struct mcwire_event *ev, enum mcwire_ev type,
                       const char *text, size_t n);

/* Sets *ev to MCWIRE_EV_BAD with a printable description of the bytes. */
void mcwire_event_bad(struct mcwire_parser *p, struct mcwire_event *ev, const char *what,
                      const char *bytes, size_t n);

/* Splits the next space-separated token off [*cur, end); false if none. */
bool mcwire_token(const char **cur, const char *end, const char **tok, size_t *ntok);

/* Parses a whole token as a decimal u64 without sign; false otherwise. */
bool mcwire_u64(const char *tok, size_t n, uint64_t *out);

size_t mcwire_text_compose_get(char *buf, const struct keys *ks, const uint64_t *ids, unsigned n);
size_t mcwire_text_compose_set(char *buf, const struct keys *ks, uint64_t id, uint32_t vlen,
                               uint32_t exptime);
size_t mcwire_meta_compose_get(char *buf, const struct keys *ks, const uint64_t *ids, unsigned n);
size_t mcwire_meta_compose_set(char *buf, const struct keys *ks, uint64_t id, uint32_t vlen,
                               uint32_t exptime);
/* REQUIRES: n == 1 (a RESP get is a GET of one key). */
size_t mcwire_resp_compose_get(char *buf, const struct keys *ks, const uint64_t *ids, unsigned n);
/* RESP has no exptime in this form: opts.c refuses --exptime with RESP. */
size_t mcwire_resp_compose_set(char *buf, const struct keys *ks, uint64_t id, uint32_t vlen);
size_t mcwire_bin_compose_get(char *buf, const struct keys *ks, const uint64_t *ids, unsigned n,
                              uint32_t opaque);
size_t mcwire_bin_compose_set(char *buf, const struct keys *ks, uint64_t id, uint32_t vlen,
                              uint32_t exptime, uint32_t opaque);

/* The binary protocol's parser (same contract as mcwire_parse). */
size_t mcwire_bin_parse(struct mcwire_parser *p, const char *buf, size_t len,
                        struct mcwire_event *ev);
