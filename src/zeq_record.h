/* Sealed messages of mod_zeq_e2e (docs/PROTOCOL.md): protocol v1's
 * envelope (iv || tag || ciphertext) and protocol v2's sealed message
 * (0x02 || nonce_base || records, each record header || ciphertext ||
 * tag), behind one incremental reader; v2's record sealer; and the one
 * builder of v2's additional authenticated data.
 *
 * Pure C11 + OpenSSL libcrypto, malloc only: no httpd or APR header, so
 * this part is unit-tested and fuzzed alone. */
#ifndef ZEQ_RECORD_H
#define ZEQ_RECORD_H

#include <stddef.h>

#include "zeq_envelope.h"
#include "zeq_result.h"

#define ZEQ_RECORD_V2            0x02     /* first byte of a v2 message */
#define ZEQ_RECORD_NONCE_LEN     12
#define ZEQ_RECORD_PREFIX_LEN    (1 + ZEQ_RECORD_NONCE_LEN)
#define ZEQ_RECORD_HEADER_LEN    4
#define ZEQ_RECORD_TAG_LEN       16
#define ZEQ_RECORD_OVERHEAD      (ZEQ_RECORD_HEADER_LEN + ZEQ_RECORD_TAG_LEN)
#define ZEQ_RECORD_MAX           1048576u /* plaintext bytes of one record */
#define ZEQ_RECORD_SIZE          16384u   /* what senders use */
#define ZEQ_RECORD_FINAL         0x80000000u
/* The smallest v2 message: the prefix and one empty final record. */
#define ZEQ_RECORD_EMPTY_LEN     (ZEQ_RECORD_PREFIX_LEN + ZEQ_RECORD_OVERHEAD)

/* --- v2 additional authenticated data ---------------------------------- */

/* What the AAD of a v2 message binds: a label and fields joined by 0x00,
 * label 0x00 f1 0x00 f2 ... (PROTOCOL.md). Each field is bytes with a
 * length; numbers are written in decimal by the callers below. */
typedef struct {
    const char *data;
    size_t len;
} zeq_record_field;

/* Joins label and n fields into out (cap bytes); returns the length, or 0
 * when it does not fit. zeq_record_aad_len gives the size needed. */
size_t zeq_record_aad_len(const char *label, const zeq_record_field *fields,
                          size_t n);
size_t zeq_record_aad(unsigned char *out, size_t cap, const char *label,
                      const zeq_record_field *fields, size_t n);

/* The labels of v2 (PROTOCOL.md). */
#define ZEQ_RECORD_AAD_REQUEST  "zeq-e2e/2 request"
#define ZEQ_RECORD_AAD_RESPONSE "zeq-e2e/2 response"
#define ZEQ_RECORD_AAD_WS       "zeq-e2e/2 ws"

/* --- v2 sealing ------------------------------------------------------------ */

/* The length of the v2 message of n plaintext bytes sealed in records of
 * record_size bytes (the last one shorter, one empty record for n = 0). */
unsigned long long zeq_record_sealed_len(unsigned long long n,
                                         size_t record_size);

typedef struct {
    void *evp;                         /* EVP_CIPHER_CTX */
    unsigned char key[ZEQ_KEY_LEN];
    unsigned char nonce_base[ZEQ_RECORD_NONCE_LEN];
    unsigned char *aad;                /* message AAD || 4 header bytes */
    size_t aadlen;                     /* of the message AAD */
    unsigned long long index;          /* the next record's number */
    int done;                          /* the final record is sealed */
} zeq_record_sealer;

/* Sets up a sealer; nonce_base NULL draws one from the system's random
 * source. ZEQ_OK or ZEQ_ERR_CRYPTO. */
int zeq_record_sealer_init(zeq_record_sealer *s,
                           const unsigned char key[ZEQ_KEY_LEN],
                           const unsigned char *nonce_base,
                           const unsigned char *aad, size_t aadlen);
/* Frees and cleanses it (safe on a zeroed or failed one). */
void zeq_record_sealer_free(zeq_record_sealer *s);
/* The message's first 13 bytes: 0x02 || nonce_base. */
void zeq_record_sealer_prefix(const zeq_record_sealer *s,
                              unsigned char out[ZEQ_RECORD_PREFIX_LEN]);
/* Seals the next record of len plaintext bytes (len <= ZEQ_RECORD_MAX):
 * writes ZEQ_RECORD_OVERHEAD + len bytes to out. in and out may not
 * overlap, but for in == out + ZEQ_RECORD_HEADER_LEN: the record is then
 * sealed in place, around its plaintext. final marks the last record;
 * nothing may follow it. */
int zeq_record_seal(zeq_record_sealer *s, const unsigned char *in,
                    size_t len, int final, unsigned char *out);

/* One-shot: seals in (len bytes) in records of record_size into out,
 * which holds zeq_record_sealed_len(len, record_size) bytes. */
int zeq_record_seal_message(const unsigned char key[ZEQ_KEY_LEN],
                            const unsigned char *nonce_base,
                            const unsigned char *aad, size_t aadlen,
                            const unsigned char *in, size_t len,
                            size_t record_size, unsigned char *out);

/* --- reading (v1 and v2) ------------------------------------------------- */

/* Receives plaintext as the reader produces it. For v2 each call is one
 * record that verified; for v1 the bytes are not verified until
 * zeq_record_reader_finish succeeds, and must be held back until then.
 * Returns 0 to go on, anything else to stop (the reader then fails with
 * ZEQ_ERR_CRYPTO). */
typedef int (*zeq_record_emit)(void *baton, const unsigned char *data,
                               size_t len);

typedef struct zeq_record_reader zeq_record_reader;

/* A reader of one message of protocol version 1 or 2 under key. v2: aad
 * is the message AAD (copied); max_record bounds a record's plaintext
 * (<= ZEQ_RECORD_MAX). v1: aad must be NULL. NULL on failure. */
zeq_record_reader *zeq_record_reader_new(int version,
                                         const unsigned char key[ZEQ_KEY_LEN],
                                         const unsigned char *aad,
                                         size_t aadlen, size_t max_record,
                                         zeq_record_emit emit, void *baton);
/* Frees it; its buffers are cleansed. NULL is accepted. */
void zeq_record_reader_free(zeq_record_reader *rd);
/* Feeds bytes of the message: ZEQ_OK, or an error after which the reader
 * stays failed: ZEQ_ERR_BAD (not a message of its version, a reserved bit,
 * a record over the maximum, bytes after the final record), ZEQ_ERR_AUTH
 * (a record whose tag fails), ZEQ_ERR_CRYPTO. */
int zeq_record_reader_feed(zeq_record_reader *rd, const unsigned char *data,
                           size_t len);
/* At the end of the bytes: ZEQ_OK when the message was whole and
 * verified, ZEQ_ERR_SHORT when it ended early (v2: before its final
 * record), ZEQ_ERR_AUTH when v1's tag fails, or the feed error. */
int zeq_record_reader_finish(zeq_record_reader *rd);

/* One-shot open of a whole message into out (at least inlen bytes);
 * *outlen gets the plaintext length. On an error out holds nothing of
 * use (it is cleansed). */
int zeq_record_open_message(int version, const unsigned char key[ZEQ_KEY_LEN],
                            const unsigned char *aad, size_t aadlen,
                            const unsigned char *in, size_t inlen,
                            unsigned char *out, size_t *outlen);

#endif
