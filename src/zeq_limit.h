/* The handshake guard's tables, in one block of memory that every child of
 * the server shares (made by zeq_guard): per-address token buckets,
 * derivation slots, and the rings of each address's latest sessions. Pure
 * C11 with <stdatomic.h>: no httpd or APR header, unit-tested alone. The
 * caller hashes addresses into 64-bit keys and gives the times.
 *
 * Rate buckets (lock-free): GCRA, the token bucket written as one
 * "theoretical arrival time" (TAT) per key. A handshake at `now` is
 * admitted when max(TAT, now) - now <= tolerance, and then TAT =
 * max(TAT, now) + interval; interval = 1/RATE and tolerance =
 * (BURST - 1) * interval, so BURST handshakes pass at once and RATE a
 * second after. One 64-bit word per bucket: a 20-bit tag of the key and
 * the TAT in 44 bits of ticks (ZEQ_LIMIT_TICKS_PER_SEC, 55 years of a
 * monotonic clock), changed by compare-and-swap. Buckets live in groups of
 * 8 words (one cache line) chosen by other bits of the key; a bucket whose
 * TAT has passed is full again and holds nothing, so its word is free. A
 * group with no free word gives up the bucket nearest to full. Two
 * addresses share a bucket only when their keys agree in 33 bits.
 *
 * Derivation slots (lock-free): one 64-bit word each, 0 when free, else
 * the owner's pid (22 bits), the 20-bit tag of its address key and the
 * second it was taken (22 bits). A slot whose owner is gone (the caller
 * says which pids live) or that is held longer than ZEQ_LIMIT_SLOT_STALE
 * seconds is taken back, so a child that dies in the middle of a
 * derivation loses nothing for good. An address holds at most its share
 * of the slots, so that one address cannot take every core.
 *
 * Rings (under the caller's lock): per address key, the store ids (32
 * bytes) and expiry of its latest sessions, at most `ring` of them; the
 * session pushed out by a newer one is handed back, for the caller to drop
 * if it was never used. ZEQ_LIMIT_RING_ENTRIES addresses, in groups of 4;
 * an address whose sessions have all expired frees its entry, and a full
 * group gives up the address that made its last handshake longest ago. */
#ifndef ZEQ_LIMIT_H
#define ZEQ_LIMIT_H

#include <stddef.h>
#include <stdint.h>

#define ZEQ_LIMIT_TICKS_PER_SEC 10000       /* 100 µs */
#define ZEQ_LIMIT_RATE_GROUPS   8192
#define ZEQ_LIMIT_RATE_WAYS     8
#define ZEQ_LIMIT_SLOTS_MAX     4096
#define ZEQ_LIMIT_SLOT_STALE    120         /* seconds */
#define ZEQ_LIMIT_RING_ENTRIES  4096
#define ZEQ_LIMIT_RING_WAYS     4
#define ZEQ_LIMIT_RING_MAX      256
#define ZEQ_LIMIT_ID_LEN        32

typedef struct zeq_limit zeq_limit;

/* The bytes a block needs for `slots` derivation slots (1 to
 * ZEQ_LIMIT_SLOTS_MAX) and rings of `ring` sessions (0: none, to
 * ZEQ_LIMIT_RING_MAX). */
size_t zeq_limit_size(int slots, int ring);
/* Lays a block of zeq_limit_size() bytes out (it must be zeroed, aligned
 * to 8 bytes) and returns it as a table; NULL for sizes out of range. */
zeq_limit *zeq_limit_init(void *block, int slots, int ring);

/* --- rate buckets -------------------------------------------------------- */

/* The interval and tolerance of RATE per second and BURST, in ticks. */
uint64_t zeq_limit_interval(double rate);
uint64_t zeq_limit_tolerance(double rate, int burst);
/* Takes a token of key's bucket at now (ticks of a monotonic clock, > 0):
 * 1, or 0 with *retry the ticks until one is there. *evicted is set to 1
 * when a full group gave up another key's bucket for this one. */
int zeq_limit_rate_take(zeq_limit *l, uint64_t key, uint64_t now,
                        uint64_t interval, uint64_t tolerance,
                        uint64_t *retry, int *evicted);

/* --- derivation slots ---------------------------------------------------- */

/* 1 when the process pid still runs. */
typedef int (*zeq_limit_alive_fn)(uint32_t pid);

#define ZEQ_LIMIT_BUSY  (-1)   /* every slot taken */
#define ZEQ_LIMIT_SHARE (-2)   /* this address holds its share */

/* Takes a slot for pid on behalf of the address key, which may hold at
 * most `share` slots at once: its index, ZEQ_LIMIT_BUSY or
 * ZEQ_LIMIT_SHARE. With alive given, a slot whose
 * owner is gone or which is stale is taken back first (*reclaimed counts
 * them); without, only free slots are taken (the cheap attempt). now:
 * seconds of a monotonic clock. *word receives what zeq_limit_slot_give
 * needs. */
int zeq_limit_slot_take(zeq_limit *l, uint64_t key, uint32_t pid,
                        uint64_t now, int share, zeq_limit_alive_fn alive,
                        int *reclaimed, uint64_t *word);
/* Gives slot i back, unless it was taken back from its owner since. */
void zeq_limit_slot_give(zeq_limit *l, int i, uint64_t word);
/* Slots taken now, and their number. */
int zeq_limit_slots_taken(zeq_limit *l);
int zeq_limit_slots(const zeq_limit *l);

/* --- rings of sessions --------------------------------------------------- */

/* Appends the session id (expiring at expires, seconds) to key's ring at
 * now (seconds). Returns 1 when that pushed out a session that had not
 * expired yet: its id into out_id, its expiry into *out_expires; else 0.
 * *forgotten is set to 1 when another address's ring was given up for
 * this one. Not thread-safe: the caller holds a lock. */
int zeq_limit_ring_push(zeq_limit *l, uint64_t key,
                        const unsigned char id[ZEQ_LIMIT_ID_LEN],
                        int64_t expires, int64_t now,
                        unsigned char out_id[ZEQ_LIMIT_ID_LEN],
                        int64_t *out_expires, int *forgotten);
/* The ring's length (0: no rings). */
int zeq_limit_ring_len(const zeq_limit *l);

#endif
