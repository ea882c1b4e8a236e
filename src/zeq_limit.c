/* The handshake guard's tables (see zeq_limit.h). */
#include "zeq_limit.h"

#include <stdatomic.h>
#include <string.h>

#if ATOMIC_LLONG_LOCK_FREE != 2
#error "zeq_limit needs lock-free 64-bit atomics (shared between processes)"
#endif

#define ZEQ_LIMIT_MAGIC 0x7a65716cu            /* "zeql" */
#define ZEQ_LIMIT_TAG_BITS 20
#define ZEQ_LIMIT_TAG_MASK ((UINT64_C(1) << ZEQ_LIMIT_TAG_BITS) - 1)
#define ZEQ_LIMIT_TAT_BITS 44
#define ZEQ_LIMIT_TAT_MASK ((UINT64_C(1) << ZEQ_LIMIT_TAT_BITS) - 1)
#define ZEQ_LIMIT_PID_BITS 22
#define ZEQ_LIMIT_PID_MASK ((UINT64_C(1) << ZEQ_LIMIT_PID_BITS) - 1)
#define ZEQ_LIMIT_SEC_BITS 22
#define ZEQ_LIMIT_SEC_MASK ((UINT64_C(1) << ZEQ_LIMIT_SEC_BITS) - 1)
/* Compare-and-swap rounds a taker tries before it reports the slots busy
 * (others changed them meanwhile). */
#define ZEQ_LIMIT_SLOT_ROUNDS 8

typedef _Atomic uint64_t zeq_limit_word;

/* The block starts with this header; the tables follow at their offsets
 * (from the block's start, so that any mapping of it works). */
struct zeq_limit {
    uint32_t magic;
    int32_t slots;
    int32_t ring;
    int32_t reserved;
    uint64_t rate_off;
    uint64_t slot_off;
    uint64_t ring_off;
    uint64_t entry_size;
};

typedef struct {
    unsigned char id[ZEQ_LIMIT_ID_LEN];
    int64_t expires;
} zeq_limit_session;

/* One address's ring; `ring` sessions follow it. */
typedef struct {
    uint64_t key;
    int64_t latest;     /* the latest expiry of its sessions: free after */
    int64_t last;       /* its last push */
    uint32_t head;      /* the oldest session */
    uint32_t count;
} zeq_limit_entry;

static size_t zeq_limit_align(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

static size_t zeq_limit_entry_size(int ring)
{
    return zeq_limit_align(sizeof(zeq_limit_entry)
                           + (size_t)ring * sizeof(zeq_limit_session));
}

size_t zeq_limit_size(int slots, int ring)
{
    size_t n = zeq_limit_align(sizeof(zeq_limit));

    n += (size_t)ZEQ_LIMIT_RATE_GROUPS * ZEQ_LIMIT_RATE_WAYS
         * sizeof(zeq_limit_word);
    n += zeq_limit_align((size_t)slots * sizeof(zeq_limit_word));
    if (ring > 0) {
        n += (size_t)ZEQ_LIMIT_RING_ENTRIES * zeq_limit_entry_size(ring);
    }
    return n;
}

zeq_limit *zeq_limit_init(void *block, int slots, int ring)
{
    zeq_limit *l = block;
    size_t off = zeq_limit_align(sizeof(zeq_limit));

    if (block == NULL || ((uintptr_t)block & 7) != 0 || slots < 1
        || slots > ZEQ_LIMIT_SLOTS_MAX || ring < 0
        || ring > ZEQ_LIMIT_RING_MAX) {
        return NULL;
    }
    l->magic = ZEQ_LIMIT_MAGIC;
    l->slots = slots;
    l->ring = ring;
    l->rate_off = off;
    off += (size_t)ZEQ_LIMIT_RATE_GROUPS * ZEQ_LIMIT_RATE_WAYS
           * sizeof(zeq_limit_word);
    l->slot_off = off;
    off += zeq_limit_align((size_t)slots * sizeof(zeq_limit_word));
    l->ring_off = ring > 0 ? off : 0;
    l->entry_size = ring > 0 ? zeq_limit_entry_size(ring) : 0;
    return l;
}

static zeq_limit_word *zeq_limit_words(zeq_limit *l, uint64_t off)
{
    return (zeq_limit_word *)(void *)((char *)l + off);
}

/* --- rate buckets -------------------------------------------------------- */

uint64_t zeq_limit_interval(double rate)
{
    double t = (double)ZEQ_LIMIT_TICKS_PER_SEC / rate + 0.5;

    return rate > 0 && t >= 1 ? (uint64_t)t : 1;
}

uint64_t zeq_limit_tolerance(double rate, int burst)
{
    return zeq_limit_interval(rate) * (uint64_t)(burst > 1 ? burst - 1 : 0);
}

static uint64_t zeq_limit_tat(uint64_t w)
{
    return w & ZEQ_LIMIT_TAT_MASK;
}

static uint64_t zeq_limit_bucket(uint64_t tag, uint64_t tat)
{
    return tag << ZEQ_LIMIT_TAT_BITS | (tat & ZEQ_LIMIT_TAT_MASK);
}

int zeq_limit_rate_take(zeq_limit *l, uint64_t key, uint64_t now,
                        uint64_t interval, uint64_t tolerance,
                        uint64_t *retry, int *evicted)
{
    zeq_limit_word *group = zeq_limit_words(l, l->rate_off)
        + ((key >> ZEQ_LIMIT_TAG_BITS) % ZEQ_LIMIT_RATE_GROUPS)
          * ZEQ_LIMIT_RATE_WAYS;
    uint64_t tag = key & ZEQ_LIMIT_TAG_MASK;

    *evicted = 0;
    *retry = 0;
    for (;;) {
        uint64_t w[ZEQ_LIMIT_RATE_WAYS], want;
        int i, match = -1, free = -1, nearest = -1;

        for (i = 0; i < ZEQ_LIMIT_RATE_WAYS; i++) {
            w[i] = atomic_load(&group[i]);
            if (zeq_limit_tat(w[i]) > now) {
                if (w[i] >> ZEQ_LIMIT_TAT_BITS == tag) {
                    match = i;
                    break;
                }
                if (nearest < 0
                    || zeq_limit_tat(w[i]) < zeq_limit_tat(w[nearest])) {
                    nearest = i;
                }
            }
            else if (free < 0) {
                free = i;
            }
        }
        if (match >= 0) {
            uint64_t tat = zeq_limit_tat(w[match]);
            if (tat - now > tolerance) {
                *retry = tat - tolerance - now;
                return 0;
            }
            want = zeq_limit_bucket(tag, tat + interval);
            i = match;
        }
        else {
            /* A full bucket: the token is there. */
            i = free >= 0 ? free : nearest;
            want = zeq_limit_bucket(tag, now + interval);
        }
        if (atomic_compare_exchange_strong(&group[i], &w[i], want)) {
            *evicted = match < 0 && free < 0;
            return 1;
        }
    }
}

/* --- derivation slots ---------------------------------------------------- */

static uint64_t zeq_limit_slot_word(uint32_t pid, uint64_t tag, uint64_t now)
{
    return ((uint64_t)pid & ZEQ_LIMIT_PID_MASK)
               << (ZEQ_LIMIT_TAG_BITS + ZEQ_LIMIT_SEC_BITS)
           | tag << ZEQ_LIMIT_SEC_BITS | (now & ZEQ_LIMIT_SEC_MASK);
}

static uint32_t zeq_limit_slot_pid(uint64_t w)
{
    return (uint32_t)(w >> (ZEQ_LIMIT_TAG_BITS + ZEQ_LIMIT_SEC_BITS));
}

static uint64_t zeq_limit_slot_tag(uint64_t w)
{
    return (w >> ZEQ_LIMIT_SEC_BITS) & ZEQ_LIMIT_TAG_MASK;
}

static int zeq_limit_older(uint64_t w, uint64_t now, uint64_t secs)
{
    return ((now - (w & ZEQ_LIMIT_SEC_MASK)) & ZEQ_LIMIT_SEC_MASK) > secs;
}

int zeq_limit_slot_take(zeq_limit *l, uint64_t key, uint32_t pid,
                        uint64_t now, int share, zeq_limit_alive_fn alive,
                        int *reclaimed, uint64_t *word)
{
    zeq_limit_word *s = zeq_limit_words(l, l->slot_off);
    uint64_t tag = key & ZEQ_LIMIT_TAG_MASK;
    uint64_t mine = zeq_limit_slot_word(pid, tag, now);
    int round, i;

    /* pid 0 would make a taken slot look free. */
    if (mine >> (ZEQ_LIMIT_TAG_BITS + ZEQ_LIMIT_SEC_BITS) == 0) {
        return ZEQ_LIMIT_BUSY;
    }
    for (round = 0; round < ZEQ_LIMIT_SLOT_ROUNDS; round++) {
        int held = 0, free = -1;
        for (i = 0; i < l->slots; i++) {
            uint64_t w = atomic_load(&s[i]);
            if (w != 0 && alive != NULL
                && (zeq_limit_older(w, now, ZEQ_LIMIT_SLOT_STALE)
                    || !alive(zeq_limit_slot_pid(w)))
                && atomic_compare_exchange_strong(&s[i], &w, 0)) {
                (*reclaimed)++;
                w = 0;
            }
            if (w == 0) {
                if (free < 0) {
                    free = i;
                }
            }
            else if (zeq_limit_slot_tag(w) == tag) {
                held++;
            }
        }
        if (held >= share) {
            return ZEQ_LIMIT_SHARE;
        }
        if (free < 0) {
            return ZEQ_LIMIT_BUSY;
        }
        {
            uint64_t zero = 0;
            if (atomic_compare_exchange_strong(&s[free], &zero, mine)) {
                *word = mine;
                return free;
            }
        }
    }
    return ZEQ_LIMIT_BUSY;
}

void zeq_limit_slot_give(zeq_limit *l, int i, uint64_t word)
{
    zeq_limit_word *s = zeq_limit_words(l, l->slot_off);

    if (i >= 0 && i < l->slots) {
        atomic_compare_exchange_strong(&s[i], &word, 0);
    }
}

int zeq_limit_slots_taken(zeq_limit *l)
{
    zeq_limit_word *s = zeq_limit_words(l, l->slot_off);
    int i, n = 0;

    for (i = 0; i < l->slots; i++) {
        n += atomic_load(&s[i]) != 0;
    }
    return n;
}

int zeq_limit_slots(const zeq_limit *l)
{
    return l->slots;
}

/* --- rings of sessions --------------------------------------------------- */

static zeq_limit_entry *zeq_limit_entry_at(zeq_limit *l, size_t i)
{
    return (zeq_limit_entry *)(void *)((char *)l + l->ring_off
                                       + i * l->entry_size);
}

static zeq_limit_session *zeq_limit_ring_at(zeq_limit_entry *e, uint32_t i)
{
    return (zeq_limit_session *)(void *)(e + 1) + i;
}

int zeq_limit_ring_len(const zeq_limit *l)
{
    return l->ring;
}

int zeq_limit_ring_push(zeq_limit *l, uint64_t key,
                        const unsigned char id[ZEQ_LIMIT_ID_LEN],
                        int64_t expires, int64_t now,
                        unsigned char out_id[ZEQ_LIMIT_ID_LEN],
                        int64_t *out_expires, int *forgotten)
{
    size_t first = (size_t)((key >> 32) % (ZEQ_LIMIT_RING_ENTRIES
                                           / ZEQ_LIMIT_RING_WAYS))
                   * ZEQ_LIMIT_RING_WAYS;
    zeq_limit_entry *e = NULL, *free = NULL, *oldest = NULL;
    zeq_limit_session *slot;
    uint32_t ring = (uint32_t)l->ring;
    int i, pushed_out = 0;

    *forgotten = 0;
    if (ring == 0) {
        return 0;
    }
    for (i = 0; i < ZEQ_LIMIT_RING_WAYS; i++) {
        zeq_limit_entry *c = zeq_limit_entry_at(l, first + (size_t)i);
        if (c->latest <= now) {
            if (free == NULL) {
                free = c;
            }
        }
        else if (c->key == key) {
            e = c;
            break;
        }
        else if (oldest == NULL || c->last < oldest->last) {
            oldest = c;
        }
    }
    if (e == NULL) {
        e = free != NULL ? free : oldest;
        *forgotten = free == NULL;
        e->key = key;
        e->head = 0;
        e->count = 0;
        e->latest = 0;
    }
    e->last = now;
    if (e->count == ring) {
        slot = zeq_limit_ring_at(e, e->head);
        if (slot->expires > now) {
            memcpy(out_id, slot->id, ZEQ_LIMIT_ID_LEN);
            *out_expires = slot->expires;
            pushed_out = 1;
        }
        e->head = (e->head + 1) % ring;
    }
    else {
        slot = zeq_limit_ring_at(e, (e->head + e->count) % ring);
        e->count++;
    }
    memcpy(slot->id, id, ZEQ_LIMIT_ID_LEN);
    slot->expires = expires;
    if (expires > e->latest) {
        e->latest = expires;
    }
    return pushed_out;
}
