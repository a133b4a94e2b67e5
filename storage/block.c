/*
 * block.c - block builder, parser and cursor (format in block.h). Builders
 * belong to one thread; parsed blocks are immutable and shared.
 */
#include "storage/block.h"
#include "common/mem.h"
#include "storage/ikey.h"

void block_builder_reset(struct block_builder *b)
{
    b->data.len = 0;
    b->restarts.len = 0;
    b->last_key.len = 0;
    b->since_restart = 0;
    b->count = 0;
}

void block_builder_deinit(struct block_builder *b)
{
    buf_deinit(&b->data);
    buf_deinit(&b->restarts);
    buf_deinit(&b->last_key);
}

enum st_status block_builder_add(struct block_builder *b, const uint8_t *key, size_t key_len,
                                 const uint8_t *value, size_t value_len)
{
    size_t shared = 0;
    enum st_status st;
    uint32_t interval = b->restart_interval ? b->restart_interval : BLOCK_RESTART_INTERVAL;
    if (b->count == 0 || b->since_restart >= interval) {
        uint8_t off[4];
        enc_u32le(off, (uint32_t)b->data.len);
        if ((st = buf_append(&b->restarts, off, 4)) != ST_OK)
            return st;
        b->since_restart = 0;
    } else {
        size_t n = b->last_key.len < key_len ? b->last_key.len : key_len;
        while (shared < n && b->last_key.data[shared] == key[shared])
            shared++;
    }
    if ((st = buf_reserve(&b->data, 30 + key_len - shared + value_len)) != ST_OK)
        return st;
    buf_append_varint(&b->data, shared);
    buf_append_varint(&b->data, key_len - shared);
    buf_append_varint(&b->data, value_len);
    buf_append(&b->data, key + shared, key_len - shared);
    buf_append(&b->data, value, value_len);
    b->last_key.len = 0;
    if ((st = buf_append(&b->last_key, key, key_len)) != ST_OK)
        return st;
    b->since_restart++;
    b->count++;
    return ST_OK;
}

size_t block_builder_size(const struct block_builder *b)
{
    return b->data.len + b->restarts.len + 4;
}

enum st_status block_builder_finish(struct block_builder *b)
{
    enum st_status st;
    if (b->restarts.len == 0) { /* empty block: one restart at 0 */
        uint8_t z[4] = {0};
        if ((st = buf_append(&b->restarts, z, 4)) != ST_OK)
            return st;
    }
    if ((st = buf_append(&b->data, b->restarts.data, b->restarts.len)) != ST_OK)
        return st;
    uint8_t n[4];
    enc_u32le(n, (uint32_t)(b->restarts.len / 4));
    return buf_append(&b->data, n, 4);
}

enum st_status block_create(uint8_t *data, size_t len, size_t cap, struct block **out)
{
    enum st_status st = ST_CORRUPT;
    struct block *b = NULL;
    if (len < 4)
        goto err;
    uint32_t n = dec_u32le(data + len - 4);
    if (n == 0 || n > (len - 4) / 4)
        goto err;
    size_t roff = len - 4 - (size_t)n * 4;
    for (uint32_t i = 0; i < n; i++)
        if (dec_u32le(data + roff + 4 * i) > roff)
            goto err;
    b = mem_alloc(MEM_STORAGE, sizeof(*b));
    if (b == NULL) {
        st = ST_NOMEM;
        goto err;
    }
    atomic_init(&b->refs, 1);
    b->data = data;
    b->len = len;
    b->cap = cap;
    b->restarts_off = roff;
    b->nrestarts = n;
    *out = b;
    return ST_OK;
err:
    mem_free(MEM_STORAGE, data, cap);
    return st;
}

void block_ref(struct block *b)
{
    atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
}

void block_unref(struct block **bp)
{
    if (bp == NULL || *bp == NULL)
        return;
    struct block *b = *bp;
    *bp = NULL;
    if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) != 1)
        return;
    mem_free(MEM_STORAGE, b->data, b->cap);
    mem_free(MEM_STORAGE, b, sizeof(*b));
}

void block_iter_init(struct block_iter *it, struct block *b)
{
    block_ref(b);
    it->b = b;
    it->cur = it->next = 0;
    it->key_len = 0;
    it->value = NULL;
    it->value_len = 0;
    it->valid = false;
    it->status = ST_OK;
}

void block_iter_deinit(struct block_iter *it)
{
    block_unref(&it->b);
    it->valid = false;
}

static void corrupt(struct block_iter *it)
{
    it->valid = false;
    it->status = ST_CORRUPT;
}

/* Decodes the entry at it->next into the cursor. */
static void decode_next(struct block_iter *it)
{
    struct block *b = it->b;
    if (it->next >= b->restarts_off) {
        it->valid = false;
        return;
    }
    const uint8_t *p = b->data + it->next;
    const uint8_t *end = b->data + b->restarts_off;
    uint64_t shared, unshared, vlen;
    if (!dec_varint(&p, end, &shared) || !dec_varint(&p, end, &unshared) ||
        !dec_varint(&p, end, &vlen) || shared > it->key_len || unshared > (uint64_t)(end - p) ||
        shared + unshared > IKEY_MAX_LEN || vlen > (uint64_t)(end - p) - unshared) {
        corrupt(it);
        return;
    }
    memcpy(it->key + shared, p, unshared);
    it->key_len = shared + unshared;
    if (it->key_len < IKEY_OVERHEAD + 1) {
        corrupt(it);
        return;
    }
    it->value = p + unshared;
    it->value_len = vlen;
    it->cur = it->next;
    it->next = (size_t)(it->value + vlen - b->data);
    it->valid = true;
}

void block_iter_seek_first(struct block_iter *it)
{
    if (it->status != ST_OK)
        return;
    it->key_len = 0;
    it->next = 0;
    decode_next(it);
}

void block_iter_next(struct block_iter *it)
{
    if (it->valid)
        decode_next(it);
}

/* The key of restart entry i, in place (a restart entry shares no bytes
 * with its predecessor, so it needs no cursor to rebuild it). */
static bool restart_key(const struct block *b, uint32_t i, const uint8_t **key, size_t *len)
{
    size_t off = dec_u32le(b->data + b->restarts_off + 4 * (size_t)i);
    if (off >= b->restarts_off)
        return false;
    const uint8_t *p = b->data + off;
    const uint8_t *end = b->data + b->restarts_off;
    uint64_t shared, unshared, vlen;
    if (!dec_varint(&p, end, &shared) || !dec_varint(&p, end, &unshared) ||
        !dec_varint(&p, end, &vlen) || shared != 0 || unshared > (uint64_t)(end - p) ||
        unshared < IKEY_OVERHEAD + 1 || unshared > IKEY_MAX_LEN)
        return false;
    *key = p;
    *len = (size_t)unshared;
    return true;
}

void block_iter_seek(struct block_iter *it, const uint8_t *target, size_t target_len)
{
    if (it->status != ST_OK)
        return;
    struct block *b = it->b;
    /* Binary search: last restart whose key < target. */
    uint32_t lo = 0, hi = b->nrestarts - 1;
    while (lo < hi) {
        uint32_t mid = (lo + hi + 1) / 2;
        const uint8_t *key;
        size_t key_len;
        if (!restart_key(b, mid, &key, &key_len)) {
            corrupt(it); /* a restart must point at a whole first entry */
            return;
        }
        if (ikey_compare(key, key_len, target, target_len) < 0)
            lo = mid;
        else
            hi = mid - 1;
    }
    it->key_len = 0;
    it->next = dec_u32le(b->data + b->restarts_off + 4 * lo);
    decode_next(it);
    while (it->valid && ikey_compare(it->key, it->key_len, target, target_len) < 0)
        decode_next(it);
}
