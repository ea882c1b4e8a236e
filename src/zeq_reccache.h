/* Owns each process's read-through cache of opened session records (one
 * server's store only), read by its threads without a lock.
 *
 * A fixed array of ZEQ_RECCACHE_SLOTS slots in the process's own memory,
 * direct-mapped by the record's id hash; each slot is a seqlock (C11
 * atomics): a reader copies the slot and keeps the copy only when the
 * slot's sequence word was even and unchanged around the copy; a writer
 * takes the slot by moving the word from even to odd (and gives up when
 * another writer holds it: the entry is then simply not cached). A slot's
 * bytes are zeroed with OPENSSL_cleanse whenever its entry is replaced or
 * dropped. An entry answers for at most ZEQ_RECCACHE_RECHECK seconds after
 * it was read from the store, and never at or after its record's expiry:
 * the caller reads the store again then.
 *
 * Pure C11 and libcrypto's OPENSSL_cleanse: no httpd or APR header. The
 * caller gives the times (seconds since the epoch). */
#ifndef ZEQ_RECCACHE_H
#define ZEQ_RECCACHE_H

#include <stdint.h>

#include "zeq_kex.h"

#define ZEQ_RECCACHE_SLOTS 1024
#define ZEQ_RECCACHE_RECHECK 30
#define ZEQ_RECCACHE_HASH_LEN 32
#define ZEQ_RECCACHE_SCOPE_LEN 16
#define ZEQ_RECCACHE_NO_WINDOW UINT32_MAX

typedef struct {
    unsigned char hash[ZEQ_RECCACHE_HASH_LEN];   /* the record's store id */
    unsigned char scope[ZEQ_RECCACHE_SCOPE_LEN];
    int64_t expires;               /* the record's expiry */
    int64_t checked;               /* when it was read from the store */
    uint32_t window;               /* its window table slot, or
                                    * ZEQ_RECCACHE_NO_WINDOW */
    int valid;                     /* 1 in a filled slot */
    zeq_keys keys;
} zeq_reccache_entry;

/* The entry of hash, live at now, into out: 1; else 0 (out zeroed). */
int zeq_reccache_get(const unsigned char hash[ZEQ_RECCACHE_HASH_LEN],
                     int64_t now, zeq_reccache_entry *out);
/* Caches e (its valid field is set here), replacing what its slot held;
 * nothing when another thread is writing that slot. */
void zeq_reccache_put(const zeq_reccache_entry *e);
/* Forgets the entry of hash, if cached. */
void zeq_reccache_drop(const unsigned char hash[ZEQ_RECCACHE_HASH_LEN]);
/* Forgets every entry (a new configuration, a new record key). */
void zeq_reccache_clear(void);

#endif
