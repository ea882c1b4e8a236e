/* The plaintext of a request body that verified, opened again from its
 * ciphertext as it is read. A large body is verified whole before the
 * application runs, but its plaintext is not kept: its ciphertext waits in
 * a spool (memory, then an unlinked temporary file: zeq_spool.h), and the
 * body's buckets open it a second time, chunk by chunk, when the
 * application reads them. Memory per body: one chunk, whatever its size.
 *
 * The buckets must be read in order (each read opens what follows the
 * last); a bucket read out of order fails. Copies made before reading
 * (AP_MODE_SPECULATIVE) must read the originals first.
 *
 * APR, APR-util and libcrypto only (no httpd header): unit-tested alone. */
#ifndef ZEQ_BODY_H
#define ZEQ_BODY_H

#include "apr_buckets.h"

#include "zeq_envelope.h"

typedef struct zeq_body zeq_body;

/* A body of plain_len bytes whose message (protocol version 1 or 2, under
 * key, v2 with aad) is the ciphertext of ct (moved out of it). Its state
 * lives in p; key and aad are copied (cleansed with p). NULL when no
 * reader could be made. */
zeq_body *zeq_body_create(apr_pool_t *p, apr_bucket_alloc_t *list,
                          apr_bucket_brigade *ct, int version,
                          const unsigned char key[ZEQ_KEY_LEN],
                          const unsigned char *aad, apr_size_t aadlen,
                          apr_off_t plain_len);
/* Appends the buckets of the whole plaintext to bb. */
void zeq_body_buckets(zeq_body *body, apr_bucket_brigade *bb);

#endif
