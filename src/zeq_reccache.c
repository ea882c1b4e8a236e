/* The per-process cache of opened session records (see zeq_reccache.h). */
#include "zeq_reccache.h"

#include <stdatomic.h>
#include <string.h>

#include <openssl/crypto.h>

#define ZEQ_RECCACHE_WORDS \
    ((sizeof(zeq_reccache_entry) + sizeof(uint64_t) - 1) / sizeof(uint64_t))

typedef struct {
    _Atomic uint64_t seq;                       /* odd while written */
    _Atomic uint64_t w[ZEQ_RECCACHE_WORDS];     /* the entry's bytes */
} zeq_reccache_slot;

typedef union {
    zeq_reccache_entry e;
    uint64_t w[ZEQ_RECCACHE_WORDS];
} zeq_reccache_buf;

static zeq_reccache_slot zeq_reccache_slots[ZEQ_RECCACHE_SLOTS];

static zeq_reccache_slot *zeq_reccache_slot_of(const unsigned char *hash)
{
    uint32_t i = ((uint32_t)hash[0] << 24) | ((uint32_t)hash[1] << 16)
                 | ((uint32_t)hash[2] << 8) | hash[3];

    return &zeq_reccache_slots[i % ZEQ_RECCACHE_SLOTS];
}

int zeq_reccache_get(const unsigned char hash[ZEQ_RECCACHE_HASH_LEN],
                     int64_t now, zeq_reccache_entry *out)
{
    zeq_reccache_slot *slot = zeq_reccache_slot_of(hash);
    zeq_reccache_buf b;
    uint64_t s1, s2;
    size_t i;
    int hit;

    s1 = atomic_load_explicit(&slot->seq, memory_order_acquire);
    for (i = 0; i < ZEQ_RECCACHE_WORDS; i++) {
        b.w[i] = atomic_load_explicit(&slot->w[i], memory_order_relaxed);
    }
    atomic_thread_fence(memory_order_acquire);
    s2 = atomic_load_explicit(&slot->seq, memory_order_relaxed);
    hit = s1 == s2 && (s1 & 1) == 0 && b.e.valid == 1
          && memcmp(b.e.hash, hash, ZEQ_RECCACHE_HASH_LEN) == 0
          && now < b.e.expires && now >= b.e.checked
          && now - b.e.checked < ZEQ_RECCACHE_RECHECK;
    if (hit) {
        memcpy(out, &b.e, sizeof(*out));
    }
    else {
        memset(out, 0, sizeof(*out));
    }
    OPENSSL_cleanse(&b, sizeof(b));
    return hit;
}

/* Takes slot for writing: its even sequence word, or 1 when another writer
 * holds it. */
static uint64_t zeq_reccache_lock(zeq_reccache_slot *slot)
{
    uint64_t s = atomic_load_explicit(&slot->seq, memory_order_relaxed);
    size_t i;

    if ((s & 1) != 0
        || !atomic_compare_exchange_strong_explicit(&slot->seq, &s, s + 1,
                                                    memory_order_acquire,
                                                    memory_order_relaxed)) {
        return 1;
    }
    atomic_thread_fence(memory_order_release);
    /* The old entry (keys included) goes before anything else is written;
     * a reader that copies it meanwhile sees the odd word and drops it.
     * Zeroed word by word with atomic stores, which readers may race
     * (OPENSSL_cleanse's plain stores to these words would be a data race)
     * and which the compiler may not drop. */
    for (i = 0; i < ZEQ_RECCACHE_WORDS; i++) {
        atomic_store_explicit(&slot->w[i], 0, memory_order_relaxed);
    }
    return s;
}

static void zeq_reccache_unlock(zeq_reccache_slot *slot, uint64_t s)
{
    atomic_store_explicit(&slot->seq, s + 2, memory_order_release);
}

void zeq_reccache_put(const zeq_reccache_entry *e)
{
    zeq_reccache_slot *slot = zeq_reccache_slot_of(e->hash);
    zeq_reccache_buf b;
    uint64_t s = zeq_reccache_lock(slot);
    size_t i;

    if (s == 1) {
        return;
    }
    memset(&b, 0, sizeof(b));
    memcpy(&b.e, e, sizeof(*e));
    b.e.valid = 1;
    for (i = 0; i < ZEQ_RECCACHE_WORDS; i++) {
        atomic_store_explicit(&slot->w[i], b.w[i], memory_order_relaxed);
    }
    zeq_reccache_unlock(slot, s);
    OPENSSL_cleanse(&b, sizeof(b));
}

void zeq_reccache_drop(const unsigned char hash[ZEQ_RECCACHE_HASH_LEN])
{
    zeq_reccache_slot *slot = zeq_reccache_slot_of(hash);
    uint64_t s;

    /* Whatever the slot holds goes (another id's entry merely misses
     * once); a writer in it now is waited for. */
    while ((s = zeq_reccache_lock(slot)) == 1) {
        ;
    }
    zeq_reccache_unlock(slot, s);
}

void zeq_reccache_clear(void)
{
    size_t i;
    uint64_t s;

    for (i = 0; i < ZEQ_RECCACHE_SLOTS; i++) {
        while ((s = zeq_reccache_lock(&zeq_reccache_slots[i])) == 1) {
            ;
        }
        zeq_reccache_unlock(&zeq_reccache_slots[i], s);
    }
}
