/* The session record codec: the sealed bytes a session is stored as in the
 * session store (docs/PROTOCOL.md section 19). Pure C11 + OpenSSL
 * libcrypto (HKDF, AES-256-GCM through zeq_kex and zeq_envelope): no httpd
 * or APR header, unit-tested and fuzzed alone.
 *
 * A record (all integers big-endian):
 *   0 record version (3), 1 protocol version (1 or 2),
 *   2 flags (bit 0: a replay window follows the keys; bit 1: the session
 *     was never used for a request; bit 2: the number of the session's
 *     slot in the server's window table follows the keys, not with bit 0),
 *   3 reserved (0),
 *   4 key id (4 bytes: which record key sealed it),
 *   8 nonce (12 bytes), 20 ciphertext, then the GCM tag (16 bytes).
 * The ciphertext holds: scope (16), created (8), expires (8), k_c2s (32),
 * for v2 k_s2c (32), with bit 0 the replay window (zeq_replay.h, 138), with
 * bit 2 the slot (4).
 *   v1: 100 bytes; v2: 132 bytes, 136 with its slot, 270 with its window.
 * AES-256-GCM under HKDF-SHA256(master, salt "", info "zeq-e2e record"
 * 0x00 || id hash, 32), where master comes from the record key (see
 * zeq_sessrec_key_derive) and the id hash is the store key of the record
 * (SHA-256 of the session id); the additional data is the record's first
 * 8 bytes || the id hash. So the store holds no usable key, no session id,
 * and a record moved to another id does not open.
 * Versions 1 and 2 were the clear records of earlier releases: refused. */
#ifndef ZEQ_SESSREC_H
#define ZEQ_SESSREC_H

#include <stddef.h>
#include <stdint.h>

#include "zeq_kex.h"
#include "zeq_replay.h"

#define ZEQ_SESSREC_VERSION 3
#define ZEQ_SESSREC_SCOPE_LEN 16
#define ZEQ_SESSREC_ID_HASH_LEN 32
#define ZEQ_SESSREC_KEY_ID_LEN 4
#define ZEQ_SESSREC_NONCE_LEN 12
#define ZEQ_SESSREC_HEAD_LEN 20          /* up to the ciphertext */
#define ZEQ_SESSREC_TAG_LEN 16
#define ZEQ_SESSREC_FLAG_WINDOW 0x01
#define ZEQ_SESSREC_FLAG_UNUSED 0x02
#define ZEQ_SESSREC_FLAG_SLOT 0x04
#define ZEQ_SESSREC_SLOT_LEN 4
#define ZEQ_SESSREC_V1_LEN (ZEQ_SESSREC_HEAD_LEN + 64 + ZEQ_SESSREC_TAG_LEN)
#define ZEQ_SESSREC_V2_LEN (ZEQ_SESSREC_V1_LEN + ZEQ_KEX_KEY_LEN)
#define ZEQ_SESSREC_V2_SLOT_LEN (ZEQ_SESSREC_V2_LEN + ZEQ_SESSREC_SLOT_LEN)
#define ZEQ_SESSREC_MAX_LEN (ZEQ_SESSREC_V2_LEN + ZEQ_REPLAY_ENCODED_LEN)
/* The shortest record key (file) accepted. */
#define ZEQ_SESSREC_MIN_IKM 32

typedef struct {
    unsigned char scope[ZEQ_SESSREC_SCOPE_LEN];
    int64_t created;
    int64_t expires;
    zeq_keys keys;                 /* keys.version is the record's */
    int has_window;                /* v2: the window travels in the record */
    int has_slot;                  /* v2: the window is in the table, at */
    uint32_t slot;                 /* this slot */
    int unused;                    /* no request has named it yet */
    zeq_replay window;             /* with has_window: the numbers seen */
} zeq_sessrec;

/* The key records are sealed with, derived from the record key's bytes. */
typedef struct {
    unsigned char master[32];      /* HKDF(ikm, "", "zeq-e2e record key") */
    unsigned char id[ZEQ_SESSREC_KEY_ID_LEN]; /* HKDF(ikm, "", "zeq-e2e
                                               * record key id", 4) */
} zeq_sessrec_key;

/* Derives the sealing key from a record key of at least
 * ZEQ_SESSREC_MIN_IKM bytes: ZEQ_OK, ZEQ_ERR_SHORT, ZEQ_ERR_CRYPTO. */
int zeq_sessrec_key_derive(const unsigned char *ikm, size_t ikmlen,
                           zeq_sessrec_key *key);
void zeq_sessrec_key_cleanse(zeq_sessrec_key *key);

/* The length of rec's record. */
size_t zeq_sessrec_len(const zeq_sessrec *rec);
/* Seals rec for the record stored under id_hash, with the given fresh
 * random nonce, into out (zeq_sessrec_len(rec) bytes): returns that
 * length, 0 on a libcrypto failure. */
size_t zeq_sessrec_seal(const zeq_sessrec_key *key, const zeq_sessrec *rec,
                        const unsigned char id_hash[ZEQ_SESSREC_ID_HASH_LEN],
                        const unsigned char nonce[ZEQ_SESSREC_NONCE_LEN],
                        unsigned char out[ZEQ_SESSREC_MAX_LEN]);
/* Opens a record found under id_hash into rec: ZEQ_OK; ZEQ_ERR_VERSION for
 * another record version; ZEQ_ERR_BAD for a malformed one (its length, its
 * flags, its window); ZEQ_ERR_KEY when another record key sealed it;
 * ZEQ_ERR_AUTH when it does not verify (altered, or moved from another
 * id); ZEQ_ERR_CRYPTO. rec is zeroed unless ZEQ_OK. */
int zeq_sessrec_open(const zeq_sessrec_key *key, const unsigned char *in,
                     size_t len,
                     const unsigned char id_hash[ZEQ_SESSREC_ID_HASH_LEN],
                     zeq_sessrec *rec);

#endif
