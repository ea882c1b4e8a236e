/* The session record codec: the bytes a session is stored as in the
 * session cache (its version, scope, times and keys). Pure C11, no
 * library: unit-tested and fuzzed alone.
 *
 * Version 1 (protocol v1 sessions; all integers big-endian):
 *   0 version (1), 1 flags (0), 2 reserved (2 bytes, 0),
 *   4 scope (16 bytes: the virtual host and secret it belongs to),
 *   20 created, 28 expires (seconds since the epoch, 8 bytes each),
 *   36 key (32 bytes)                                           68 bytes
 * Version 2 (protocol v2 sessions): the same up to 36, then
 *   36 k_c2s (32 bytes), 68 k_s2c (32 bytes),
 *   100 the replay window (zeq_replay.h, 138 bytes)             238 bytes
 * The window lives in the record, so that a cache that evicts a session
 * evicts its window with it: a session is never found without the numbers
 * it has seen.
 * Readers reject versions and lengths they do not know, which costs the
 * client one new handshake. */
#ifndef ZEQ_SESSREC_H
#define ZEQ_SESSREC_H

#include <stddef.h>
#include <stdint.h>

#include "zeq_kex.h"
#include "zeq_replay.h"

#define ZEQ_SESSREC_SCOPE_LEN 16
#define ZEQ_SESSREC_V1_LEN 68
#define ZEQ_SESSREC_V2_LEN (100 + ZEQ_REPLAY_ENCODED_LEN)
#define ZEQ_SESSREC_MAX_LEN ZEQ_SESSREC_V2_LEN

typedef struct {
    unsigned char scope[ZEQ_SESSREC_SCOPE_LEN];
    int64_t created;
    int64_t expires;
    zeq_keys keys;                 /* keys.version is the record's */
    zeq_replay window;             /* v2: the sequence numbers seen */
} zeq_sessrec;

/* Writes the record (of rec->keys.version) to out; returns its length. */
size_t zeq_sessrec_encode(const zeq_sessrec *rec,
                          unsigned char out[ZEQ_SESSREC_MAX_LEN]);
/* ZEQ_OK, or ZEQ_ERR_BAD for bytes that are no record of a known version
 * (rec is then zeroed). */
int zeq_sessrec_decode(const unsigned char *in, size_t len, zeq_sessrec *rec);

#endif
