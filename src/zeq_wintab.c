/* The table of replay windows (see zeq_wintab.h). */
#include "zeq_wintab.h"

#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#define ZEQ_WINTAB_MAGIC UINT64_C(0x7a65717774623031)   /* "zeqwtb01" */
#define ZEQ_WINTAB_SPINS 64         /* tries between yields */
#define ZEQ_WINTAB_CHECK 256        /* yields between looks at the holder */
/* Seconds a live holder is waited for: more than the second a dead one
 * may stay a zombie until its parent reaps it (and counts as alive). */
#define ZEQ_WINTAB_GIVEUP 3

typedef struct {
    uint64_t magic;
    uint32_t slots;
    uint32_t reserved;
    _Atomic uint64_t cursor;
} zeq_wintab_head;

/* The fields after the lock word are read and written only under it. */
typedef struct {
    _Atomic uint32_t lock;            /* 0, or the holder's pid */
    uint32_t used;                    /* 1: holds a session's window */
    int64_t expires;
    unsigned char hash[ZEQ_WINTAB_HASH_LEN];
    zeq_replay window;
} zeq_wintab_slot;

#define ZEQ_WINTAB_HEAD_LEN \
    ((sizeof(zeq_wintab_head) + 63) / 64 * 64)

size_t zeq_wintab_size(uint32_t slots)
{
    return ZEQ_WINTAB_HEAD_LEN + (size_t)slots * sizeof(zeq_wintab_slot);
}

static zeq_wintab_head *zeq_wintab_head_of(const zeq_wintab *t)
{
    return t->mem;
}

static zeq_wintab_slot *zeq_wintab_slot_at(const zeq_wintab *t, uint32_t i)
{
    return (zeq_wintab_slot *)((char *)t->mem + ZEQ_WINTAB_HEAD_LEN) + i;
}

int zeq_wintab_format(zeq_wintab *t, void *mem, size_t size, uint32_t slots)
{
    zeq_wintab_head *h = mem;

    if (mem == NULL || slots < 1 || slots > ZEQ_WINTAB_MAX_SLOTS
        || size < zeq_wintab_size(slots)) {
        return ZEQ_ERR_BAD;
    }
    /* The slots are zero already: free, unlocked, empty (their pages stay
     * untouched until a session claims them). */
    memset(h, 0, ZEQ_WINTAB_HEAD_LEN);
    h->magic = ZEQ_WINTAB_MAGIC;
    h->slots = slots;
    atomic_init(&h->cursor, 0);
    t->mem = mem;
    t->slots = slots;
    return ZEQ_OK;
}

int zeq_wintab_attach(zeq_wintab *t, void *mem, size_t size)
{
    const zeq_wintab_head *h = mem;

    if (mem == NULL || size < sizeof(*h) || h->magic != ZEQ_WINTAB_MAGIC
        || h->slots < 1 || h->slots > ZEQ_WINTAB_MAX_SLOTS
        || size < zeq_wintab_size(h->slots)) {
        return ZEQ_ERR_BAD;
    }
    t->mem = mem;
    t->slots = h->slots;
    return ZEQ_OK;
}

static void zeq_wintab_empty(zeq_wintab_slot *s)
{
    s->used = 0;
    s->expires = 0;
    memset(s->hash, 0, sizeof(s->hash));
    zeq_replay_init(&s->window);
}

/* Seconds on the monotonic clock (0 if it cannot be read). */
static int64_t zeq_wintab_clock(void)
{
    struct timespec ts;

    return clock_gettime(CLOCK_MONOTONIC, &ts) == 0 ? (int64_t)ts.tv_sec : 0;
}

/* Takes slot s's lock word: ZEQ_OK. A holder found gone loses the word,
 * and the slot is emptied: its window may be half written. A live holder
 * that keeps the word for more than ZEQ_WINTAB_GIVEUP seconds (a process
 * stopped, or a dead holder's pid given to another process) is given up
 * on: ZEQ_ERR_BUSY, the word left alone. */
static int zeq_wintab_lock(const zeq_wintab *t, zeq_wintab_slot *s)
{
    unsigned spins = 0, yields = 0;
    uint32_t holder = 0;
    /* A handle whose pid was not set still locks (as pid 1, never gone). */
    uint32_t self = t->self != 0 ? t->self : 1;
    int64_t since = -1;

    while (!atomic_compare_exchange_weak_explicit(&s->lock, &holder, self,
                                                  memory_order_acquire,
                                                  memory_order_relaxed)) {
        if (holder != 0 && ++spins >= ZEQ_WINTAB_SPINS) {
            spins = 0;
            sched_yield();
            if (++yields >= ZEQ_WINTAB_CHECK) {
                yields = 0;
                if (t->alive != NULL && !t->alive(holder)
                    && atomic_compare_exchange_strong_explicit(
                           &s->lock, &holder, self, memory_order_acquire,
                           memory_order_relaxed)) {
                    zeq_wintab_empty(s);
                    return ZEQ_OK;
                }
                if (since < 0) {
                    since = zeq_wintab_clock();
                }
                else if (zeq_wintab_clock() - since > ZEQ_WINTAB_GIVEUP) {
                    return ZEQ_ERR_BUSY;
                }
            }
        }
        holder = 0;
    }
    return ZEQ_OK;
}

static void zeq_wintab_unlock(zeq_wintab_slot *s)
{
    atomic_store_explicit(&s->lock, 0, memory_order_release);
}

uint32_t zeq_wintab_claim(zeq_wintab *t,
                          const unsigned char hash[ZEQ_WINTAB_HASH_LEN],
                          int64_t expires, int64_t now, int *evicted)
{
    zeq_wintab_head *h = zeq_wintab_head_of(t);
    uint64_t c = atomic_fetch_add_explicit(&h->cursor, 1,
                                           memory_order_relaxed);
    uint32_t i, k, j, busy[ZEQ_WINTAB_PROBE + 1], nbusy = 0;
    zeq_wintab_slot *s;

    for (k = 0; k <= ZEQ_WINTAB_PROBE; k++) {
        /* The probes, then (k == PROBE) the cursor's own slot, live or
         * not; a slot whose word cannot be had is skipped. */
        i = (uint32_t)((c + (k < ZEQ_WINTAB_PROBE ? k : 0)) % t->slots);
        for (j = 0; j < nbusy && busy[j] != i; j++) {
            ;
        }
        if (j < nbusy) {
            continue;               /* waited for once already */
        }
        s = zeq_wintab_slot_at(t, i);
        if (zeq_wintab_lock(t, s) != ZEQ_OK) {
            busy[nbusy++] = i;
            continue;
        }
        if (k == ZEQ_WINTAB_PROBE || !s->used || s->expires <= now) {
            *evicted = s->used && s->expires > now;
            zeq_wintab_empty(s);
            s->used = 1;
            s->expires = expires;
            memcpy(s->hash, hash, ZEQ_WINTAB_HASH_LEN);
            zeq_wintab_unlock(s);
            return i;
        }
        zeq_wintab_unlock(s);
    }
    *evicted = 0;
    return ZEQ_WINTAB_NONE;
}

/* Slot i locked into *out when it holds hash's window: ZEQ_OK; else
 * ZEQ_ERR_GONE or ZEQ_ERR_BUSY (unlocked). */
static int zeq_wintab_own(const zeq_wintab *t, uint32_t i,
                          const unsigned char *hash, zeq_wintab_slot **out)
{
    zeq_wintab_slot *s;

    if (i >= t->slots) {
        return ZEQ_ERR_GONE;
    }
    s = zeq_wintab_slot_at(t, i);
    if (zeq_wintab_lock(t, s) != ZEQ_OK) {
        return ZEQ_ERR_BUSY;
    }
    if (!s->used || memcmp(s->hash, hash, ZEQ_WINTAB_HASH_LEN) != 0) {
        zeq_wintab_unlock(s);
        return ZEQ_ERR_GONE;
    }
    *out = s;
    return ZEQ_OK;
}

int zeq_wintab_accept(zeq_wintab *t, uint32_t slot,
                      const unsigned char hash[ZEQ_WINTAB_HASH_LEN],
                      uint64_t seq)
{
    zeq_wintab_slot *s;
    int rv;

    if (seq > ZEQ_SEQ_MAX) {
        return ZEQ_ERR_BAD;
    }
    rv = zeq_wintab_own(t, slot, hash, &s);
    if (rv != ZEQ_OK) {
        return rv;
    }
    rv = zeq_replay_accept(&s->window, seq);
    zeq_wintab_unlock(s);
    return rv;
}

void zeq_wintab_release(zeq_wintab *t, uint32_t slot,
                        const unsigned char hash[ZEQ_WINTAB_HASH_LEN])
{
    zeq_wintab_slot *s;

    if (zeq_wintab_own(t, slot, hash, &s) == ZEQ_OK) {
        zeq_wintab_empty(s);
        zeq_wintab_unlock(s);
    }
}
