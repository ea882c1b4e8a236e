/* Owns the replay windows of the v2 sessions of a store of one server: a
 * table of slots in one block of memory every child shares, each slot one
 * session's window (zeq_replay) behind a lock word of its own.
 *
 * A session claims a slot when it is made; its record names the slot
 * (docs/PROTOCOL.md section 19) and the slot names the session (its store
 * id, 32 bytes), so that a slot given to another session since refuses the
 * first one's numbers (ZEQ_ERR_GONE: the session has lost its window and
 * counts as unknown) and starts empty for the new one. A claim takes the
 * first free or expired slot of ZEQ_WINTAB_PROBE after a cursor that every
 * claim moves on by one; when all of them are live, the slot at the cursor
 * (the one claimed longest ago) is taken from its session.
 *
 * The lock word is 0 or the pid of its holder, taken by compare-and-swap
 * and held only to check and record one number (no system call inside).
 * A waiter spins, then yields; one that finds the holder gone (the caller
 * says which pids live) takes the word and empties the slot, whose window
 * the dead holder may have left half written: that session loses its
 * window rather than risk accepting a number twice. A live holder that
 * keeps the word for more than three seconds (stopped, or a pid that a
 * dead holder left and another process got since) is given up on, the
 * word left as it is: the number is refused as busy, and a claim skips
 * the slot (waiting for it once).
 *
 * Pure C11 with <stdatomic.h> (and sched_yield): no httpd or APR header,
 * unit-tested alone. The caller gives the times. */
#ifndef ZEQ_WINTAB_H
#define ZEQ_WINTAB_H

#include <stddef.h>
#include <stdint.h>

#include "zeq_replay.h"
#include "zeq_result.h"

#define ZEQ_WINTAB_HASH_LEN 32
#define ZEQ_WINTAB_PROBE 8
#define ZEQ_WINTAB_MAX_SLOTS 10000000
#define ZEQ_WINTAB_NONE UINT32_MAX     /* a claim that got no slot */

/* A process's handle of the table; self and alive are the caller's to
 * set (format and attach leave them). */
typedef struct {
    void *mem;                        /* the shared block */
    uint32_t slots;
    uint32_t self;                    /* this process's pid */
    int (*alive)(uint32_t pid);       /* NULL: holders never die */
} zeq_wintab;

/* The bytes a table of slots windows takes. */
size_t zeq_wintab_size(uint32_t slots);
/* Makes an empty table of slots windows (1 to ZEQ_WINTAB_MAX_SLOTS) in
 * mem, zeq_wintab_size(slots) bytes of zeroes (fresh from mmap), and t,
 * this process's handle of it: ZEQ_OK or ZEQ_ERR_BAD. */
int zeq_wintab_format(zeq_wintab *t, void *mem, size_t size, uint32_t slots);
/* A handle t of the table already made in mem: ZEQ_OK, or ZEQ_ERR_BAD when
 * mem holds none of that size. */
int zeq_wintab_attach(zeq_wintab *t, void *mem, size_t size);
/* Gives the session of store id hash, live until expires, an empty window:
 * its slot. *evicted is 1 when that slot was taken from a live session.
 * ZEQ_WINTAB_NONE when no slot it tried could be locked. */
uint32_t zeq_wintab_claim(zeq_wintab *t,
                          const unsigned char hash[ZEQ_WINTAB_HASH_LEN],
                          int64_t expires, int64_t now, int *evicted);
/* Accepts seq once in the window of slot for the session of hash: ZEQ_OK;
 * ZEQ_ERR_REPLAY (seen, or too old); ZEQ_ERR_BAD above ZEQ_SEQ_MAX;
 * ZEQ_ERR_GONE when the slot does not hold that session's window (given
 * to another, emptied, or beyond the table); ZEQ_ERR_BUSY when its lock
 * word could not be had (nothing accepted, the window kept). */
int zeq_wintab_accept(zeq_wintab *t, uint32_t slot,
                      const unsigned char hash[ZEQ_WINTAB_HASH_LEN],
                      uint64_t seq);
/* Empties slot if it holds hash's window (the session was removed);
 * nothing when its lock word cannot be had. */
void zeq_wintab_release(zeq_wintab *t, uint32_t slot,
                        const unsigned char hash[ZEQ_WINTAB_HASH_LEN]);

#endif
