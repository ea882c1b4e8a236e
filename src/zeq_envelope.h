/* The envelope of mod_zeq_e2e protocol v1 (AES-256-GCM, tag first).
 *
 * Pure C11 + OpenSSL libcrypto: no httpd or APR header, so this part can be
 * unit-tested and fuzzed on its own.
 *
 * Envelope (protocol v1) = iv (12 bytes) || tag (16 bytes) || ciphertext,
 * AES-256-GCM; v1 uses no additional authenticated data (aad = NULL, 0),
 * the parameter exists for later protocol versions.
 */
#ifndef ZEQ_ENVELOPE_H
#define ZEQ_ENVELOPE_H

#include <stddef.h>

#define ZEQ_ENVELOPE_IV_LEN    12
#define ZEQ_ENVELOPE_TAG_LEN   16
#define ZEQ_ENVELOPE_OVERHEAD  (ZEQ_ENVELOPE_IV_LEN + ZEQ_ENVELOPE_TAG_LEN)
#define ZEQ_KEY_LEN            32
/* The most plaintext one AES-GCM message may hold (2^32 - 2 blocks,
 * NIST SP 800-38D): the largest body one v1 envelope can seal. */
#define ZEQ_ENVELOPE_MAX_PLAINTEXT ((((long long)1) << 36) - 32)

#include "zeq_result.h"

typedef struct zeq_envelope_ctx zeq_envelope_ctx;

/* Cipher contexts and random bytes for the hot path, per thread.
 *
 * acquire hands out an AES-256-GCM EVP_CIPHER_CTX (an EVP_CIPHER_CTX *
 * behind the void *) whose cipher is set, from the calling thread's spares
 * (or a new one): callers key it with EVP_{En,De}cryptInit_ex(ctx, NULL,
 * NULL, key, iv), which reuses its provider state. release re-keys it with
 * zeros (the key schedule and GHASH key are overwritten) and keeps it for
 * the releasing thread, or frees it; a context moves freely between
 * threads with its owner. AES-256-GCM is fetched from the provider once
 * per process, not at every initialisation. NULL on failure. */
void *zeq_envelope_evp_acquire(void);
void zeq_envelope_evp_release(void *evp);

/* n fresh random bytes (IVs, nonce bases) from RAND_bytes, drawn in
 * batches into a per-thread buffer: one DRBG call (and the getpid of its
 * fork check) for many messages. Each byte is handed out once; a fork
 * discards the buffers (pthread_atfork). ZEQ_OK or ZEQ_ERR_CRYPTO. */
int zeq_envelope_random(unsigned char *out, size_t n);

/* SHA-256 of n bytes into out (32 bytes) with the process's fetched
 * digest: EVP_sha256() fetches it again, under OpenSSL's locks, at every
 * call. ZEQ_OK or ZEQ_ERR_CRYPTO. */
int zeq_envelope_sha256(const void *data, size_t n, unsigned char out[32]);

/* A reusable cipher context; NULL on allocation failure. */
zeq_envelope_ctx *zeq_envelope_ctx_new(void);
/* Frees the context and cleanses its key schedule; NULL is accepted. */
void zeq_envelope_ctx_free(zeq_envelope_ctx *ctx);

/* Streaming seal: init with key and iv, update any number of times (out
 * receives exactly len bytes, in and out may be the same buffer), final
 * writes the tag. */
int zeq_envelope_seal_init(zeq_envelope_ctx *ctx,
                           const unsigned char key[ZEQ_KEY_LEN],
                           const unsigned char iv[ZEQ_ENVELOPE_IV_LEN],
                           const unsigned char *aad, size_t aadlen);
int zeq_envelope_seal_update(zeq_envelope_ctx *ctx, const unsigned char *in,
                             size_t len, unsigned char *out);
int zeq_envelope_seal_final(zeq_envelope_ctx *ctx,
                            unsigned char tag[ZEQ_ENVELOPE_TAG_LEN]);

/* Streaming open: the tag is given at init (it precedes the ciphertext on
 * the wire); final returns ZEQ_ERR_AUTH when it does not verify, in which
 * case every byte produced by update must be discarded. */
int zeq_envelope_open_init(zeq_envelope_ctx *ctx,
                           const unsigned char key[ZEQ_KEY_LEN],
                           const unsigned char iv[ZEQ_ENVELOPE_IV_LEN],
                           const unsigned char tag[ZEQ_ENVELOPE_TAG_LEN],
                           const unsigned char *aad, size_t aadlen);
int zeq_envelope_open_update(zeq_envelope_ctx *ctx, const unsigned char *in,
                             size_t len, unsigned char *out);
int zeq_envelope_open_final(zeq_envelope_ctx *ctx);

/* One-shot forms. seal writes ptlen + ZEQ_ENVELOPE_OVERHEAD bytes to out,
 * using the given iv. open writes envlen - ZEQ_ENVELOPE_OVERHEAD bytes to
 * out (on ZEQ_ERR_AUTH out holds garbage and must be discarded). */
int zeq_envelope_seal(const unsigned char key[ZEQ_KEY_LEN],
                      const unsigned char iv[ZEQ_ENVELOPE_IV_LEN],
                      const unsigned char *pt, size_t ptlen,
                      unsigned char *out);
int zeq_envelope_open(const unsigned char key[ZEQ_KEY_LEN],
                      const unsigned char *env, size_t envlen,
                      unsigned char *out, size_t *outlen);

/* XORs len bytes at data with the keystream the envelope sealed with key
 * and iv applies at plaintext offset offset: turns plaintext bytes
 * [offset, offset+len) into exactly the ciphertext a streaming seal of the
 * whole body produces there (and back). The tag is not touched: this
 * serves to produce ciphertext again for bytes whose tag was already
 * computed. offset + len must not exceed ZEQ_ENVELOPE_MAX_PLAINTEXT. */
int zeq_envelope_keystream_xor(const unsigned char key[ZEQ_KEY_LEN],
                               const unsigned char iv[ZEQ_ENVELOPE_IV_LEN],
                               unsigned long long offset,
                               unsigned char *data, size_t len);

#endif
