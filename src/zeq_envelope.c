/* The v1 envelope (AES-256-GCM).
 * Pure C11 + libcrypto; see zeq_envelope.h. */
#include "zeq_envelope.h"

#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

/* --- per-thread contexts and random bytes ------------------------------- */

#define ZEQ_ENVELOPE_SPARES 8      /* contexts a thread keeps */
#define ZEQ_ENVELOPE_RANDOM 1024   /* random bytes a thread draws at once */

typedef struct {
    EVP_CIPHER_CTX *spare[ZEQ_ENVELOPE_SPARES];
    int nspare;
    unsigned char random[ZEQ_ENVELOPE_RANDOM];
    size_t random_left;            /* unused bytes at the buffer's end */
    unsigned long generation;      /* zeq_envelope_forks when filled */
} zeq_envelope_thread;

static pthread_once_t zeq_envelope_once = PTHREAD_ONCE_INIT;
static pthread_key_t zeq_envelope_key;
static int zeq_envelope_key_ok;
static EVP_CIPHER *zeq_envelope_gcm_fetched;
static EVP_CIPHER *zeq_envelope_ctr_fetched;
static EVP_MD *zeq_envelope_sha256_fetched;
/* Bumped in the child of every fork: its threads' random bytes are the
 * parent's, never to be used twice. */
static volatile unsigned long zeq_envelope_forks;

static void zeq_envelope_thread_free(void *data)
{
    zeq_envelope_thread *t = data;

    while (t->nspare > 0) {
        EVP_CIPHER_CTX_free(t->spare[--t->nspare]);
    }
    OPENSSL_cleanse(t, sizeof(*t));
    free(t);
}

static void zeq_envelope_forked(void)
{
    zeq_envelope_forks++;
}

static void zeq_envelope_setup(void)
{
    zeq_envelope_gcm_fetched = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
    zeq_envelope_ctr_fetched = EVP_CIPHER_fetch(NULL, "AES-256-CTR", NULL);
    zeq_envelope_sha256_fetched = EVP_MD_fetch(NULL, "SHA256", NULL);
    zeq_envelope_key_ok = pthread_key_create(&zeq_envelope_key,
                                             zeq_envelope_thread_free) == 0;
    /* glibc drops the handler when this object is unloaded (Apache
     * unloads modules on every restart). */
    pthread_atfork(NULL, NULL, zeq_envelope_forked);
}

#if defined(__GNUC__)
/* The key's destructor lives in this object: no thread may run it once
 * the module is unloaded. */
__attribute__((destructor)) static void zeq_envelope_unload(void)
{
    if (zeq_envelope_key_ok) {
        pthread_key_delete(zeq_envelope_key);
        zeq_envelope_key_ok = 0;
    }
}
#endif

static const EVP_CIPHER *zeq_envelope_gcm(void)
{
    pthread_once(&zeq_envelope_once, zeq_envelope_setup);
    return zeq_envelope_gcm_fetched ? zeq_envelope_gcm_fetched
                                    : EVP_aes_256_gcm();
}

static zeq_envelope_thread *zeq_envelope_self(void)
{
    zeq_envelope_thread *t;

    pthread_once(&zeq_envelope_once, zeq_envelope_setup);
    if (!zeq_envelope_key_ok) {
        return NULL;
    }
    t = pthread_getspecific(zeq_envelope_key);
    if (t == NULL) {
        t = calloc(1, sizeof(*t));
        if (t != NULL && pthread_setspecific(zeq_envelope_key, t) != 0) {
            free(t);
            t = NULL;
        }
    }
    return t;
}

void *zeq_envelope_evp_acquire(void)
{
    zeq_envelope_thread *t = zeq_envelope_self();
    const EVP_CIPHER *gcm = zeq_envelope_gcm();
    EVP_CIPHER_CTX *evp;

    if (t != NULL && t->nspare > 0) {
        return t->spare[--t->nspare];
    }
    evp = EVP_CIPHER_CTX_new();
    if (evp != NULL
        && EVP_CipherInit_ex(evp, gcm, NULL, NULL, NULL, 1) != 1) {
        EVP_CIPHER_CTX_free(evp);
        evp = NULL;
    }
    return evp;
}

void zeq_envelope_evp_release(void *evp)
{
    static const unsigned char zero[ZEQ_KEY_LEN];
    zeq_envelope_thread *t;

    if (evp == NULL) {
        return;
    }
    t = zeq_envelope_self();
    /* Keyed with zeros: nothing of the last key stays in it. */
    if (t == NULL || t->nspare == ZEQ_ENVELOPE_SPARES
        || EVP_CipherInit_ex(evp, NULL, NULL, zero, NULL, 1) != 1) {
        EVP_CIPHER_CTX_free(evp);   /* cleanses the key schedule */
        return;
    }
    t->spare[t->nspare++] = evp;
}

int zeq_envelope_sha256(const void *data, size_t n, unsigned char out[32])
{
    unsigned int len = 0;

    pthread_once(&zeq_envelope_once, zeq_envelope_setup);
    return EVP_Digest(data, n, out, &len,
                      zeq_envelope_sha256_fetched ? zeq_envelope_sha256_fetched
                                                  : EVP_sha256(), NULL) == 1
           && len == 32 ? ZEQ_OK : ZEQ_ERR_CRYPTO;
}

int zeq_envelope_random(unsigned char *out, size_t n)
{
    zeq_envelope_thread *t = zeq_envelope_self();

    if (t == NULL || n > ZEQ_ENVELOPE_RANDOM / 4) {
        return RAND_bytes(out, (int)n) == 1 ? ZEQ_OK : ZEQ_ERR_CRYPTO;
    }
    if (t->generation != zeq_envelope_forks) {
        OPENSSL_cleanse(t->random, sizeof(t->random));
        t->random_left = 0;
        t->generation = zeq_envelope_forks;
    }
    if (t->random_left < n) {
        if (RAND_bytes(t->random, (int)sizeof(t->random)) != 1) {
            return ZEQ_ERR_CRYPTO;
        }
        t->random_left = sizeof(t->random);
    }
    t->random_left -= n;
    memcpy(out, t->random + t->random_left, n);
    OPENSSL_cleanse(t->random + t->random_left, n);
    return ZEQ_OK;
}

/* --- envelopes ------------------------------------------------------------ */

struct zeq_envelope_ctx {
    EVP_CIPHER_CTX *evp;
};

zeq_envelope_ctx *zeq_envelope_ctx_new(void)
{
    zeq_envelope_ctx *ctx = OPENSSL_zalloc(sizeof(*ctx));
    if (ctx == NULL) {
        return NULL;
    }
    ctx->evp = zeq_envelope_evp_acquire();
    if (ctx->evp == NULL) {
        OPENSSL_free(ctx);
        return NULL;
    }
    return ctx;
}

void zeq_envelope_ctx_free(zeq_envelope_ctx *ctx)
{
    if (ctx != NULL) {
        zeq_envelope_evp_release(ctx->evp);
        OPENSSL_free(ctx);
    }
}

static int zeq_envelope_init(zeq_envelope_ctx *ctx, int enc,
                             const unsigned char *key,
                             const unsigned char *iv,
                             const unsigned char *aad, size_t aadlen)
{
    int outl;

    if (ctx == NULL || key == NULL || iv == NULL) {
        return ZEQ_ERR_BAD;
    }
    /* The context's cipher is set (its IV length is GCM's default, 12):
     * keying it keeps its provider state. */
    if (EVP_CipherInit_ex(ctx->evp, NULL, NULL, key, iv, enc) != 1) {
        return ZEQ_ERR_CRYPTO;
    }
    while (aadlen > 0) {
        int n = aadlen > INT_MAX ? INT_MAX : (int)aadlen;
        if (EVP_CipherUpdate(ctx->evp, NULL, &outl, aad, n) != 1) {
            return ZEQ_ERR_CRYPTO;
        }
        aad += n;
        aadlen -= (size_t)n;
    }
    return ZEQ_OK;
}

static int zeq_envelope_update(zeq_envelope_ctx *ctx, const unsigned char *in,
                               size_t len, unsigned char *out)
{
    int outl;

    while (len > 0) {
        int n = len > (INT_MAX / 2) ? (INT_MAX / 2) : (int)len;
        if (EVP_CipherUpdate(ctx->evp, out, &outl, in, n) != 1
            || outl != n) {
            return ZEQ_ERR_CRYPTO;
        }
        in += n;
        out += n;
        len -= (size_t)n;
    }
    return ZEQ_OK;
}

int zeq_envelope_seal_init(zeq_envelope_ctx *ctx,
                           const unsigned char key[ZEQ_KEY_LEN],
                           const unsigned char iv[ZEQ_ENVELOPE_IV_LEN],
                           const unsigned char *aad, size_t aadlen)
{
    return zeq_envelope_init(ctx, 1, key, iv, aad, aadlen);
}

int zeq_envelope_seal_update(zeq_envelope_ctx *ctx, const unsigned char *in,
                             size_t len, unsigned char *out)
{
    return zeq_envelope_update(ctx, in, len, out);
}

int zeq_envelope_seal_final(zeq_envelope_ctx *ctx,
                            unsigned char tag[ZEQ_ENVELOPE_TAG_LEN])
{
    unsigned char dummy[16];
    int outl = 0;

    if (EVP_EncryptFinal_ex(ctx->evp, dummy, &outl) != 1 || outl != 0
        || EVP_CIPHER_CTX_ctrl(ctx->evp, EVP_CTRL_GCM_GET_TAG,
                               ZEQ_ENVELOPE_TAG_LEN, tag) != 1) {
        return ZEQ_ERR_CRYPTO;
    }
    return ZEQ_OK;
}

int zeq_envelope_open_init(zeq_envelope_ctx *ctx,
                           const unsigned char key[ZEQ_KEY_LEN],
                           const unsigned char iv[ZEQ_ENVELOPE_IV_LEN],
                           const unsigned char tag[ZEQ_ENVELOPE_TAG_LEN],
                           const unsigned char *aad, size_t aadlen)
{
    int rv;

    if (tag == NULL) {
        return ZEQ_ERR_BAD;
    }
    rv = zeq_envelope_init(ctx, 0, key, iv, aad, aadlen);
    if (rv != ZEQ_OK) {
        return rv;
    }
    /* The ctrl takes a non-const pointer but only reads the tag. */
    if (EVP_CIPHER_CTX_ctrl(ctx->evp, EVP_CTRL_GCM_SET_TAG,
                            ZEQ_ENVELOPE_TAG_LEN, (void *)tag) != 1) {
        return ZEQ_ERR_CRYPTO;
    }
    return ZEQ_OK;
}

int zeq_envelope_open_update(zeq_envelope_ctx *ctx, const unsigned char *in,
                             size_t len, unsigned char *out)
{
    return zeq_envelope_update(ctx, in, len, out);
}

int zeq_envelope_open_final(zeq_envelope_ctx *ctx)
{
    unsigned char dummy[16];
    int outl = 0;

    if (EVP_DecryptFinal_ex(ctx->evp, dummy, &outl) != 1) {
        return ZEQ_ERR_AUTH;
    }
    return ZEQ_OK;
}

int zeq_envelope_seal(const unsigned char key[ZEQ_KEY_LEN],
                      const unsigned char iv[ZEQ_ENVELOPE_IV_LEN],
                      const unsigned char *pt, size_t ptlen,
                      unsigned char *out)
{
    zeq_envelope_ctx *ctx = zeq_envelope_ctx_new();
    int rv;

    if (ctx == NULL) {
        return ZEQ_ERR_CRYPTO;
    }
    memcpy(out, iv, ZEQ_ENVELOPE_IV_LEN);
    rv = zeq_envelope_seal_init(ctx, key, iv, NULL, 0);
    if (rv == ZEQ_OK) {
        rv = zeq_envelope_seal_update(ctx, pt, ptlen,
                                      out + ZEQ_ENVELOPE_OVERHEAD);
    }
    if (rv == ZEQ_OK) {
        rv = zeq_envelope_seal_final(ctx, out + ZEQ_ENVELOPE_IV_LEN);
    }
    zeq_envelope_ctx_free(ctx);
    return rv;
}

int zeq_envelope_open(const unsigned char key[ZEQ_KEY_LEN],
                      const unsigned char *env, size_t envlen,
                      unsigned char *out, size_t *outlen)
{
    zeq_envelope_ctx *ctx;
    size_t n;
    int rv;

    if (env == NULL || envlen < ZEQ_ENVELOPE_OVERHEAD) {
        return ZEQ_ERR_SHORT;
    }
    n = envlen - ZEQ_ENVELOPE_OVERHEAD;
    ctx = zeq_envelope_ctx_new();
    if (ctx == NULL) {
        return ZEQ_ERR_CRYPTO;
    }
    rv = zeq_envelope_open_init(ctx, key, env, env + ZEQ_ENVELOPE_IV_LEN,
                                NULL, 0);
    if (rv == ZEQ_OK) {
        rv = zeq_envelope_open_update(ctx, env + ZEQ_ENVELOPE_OVERHEAD, n,
                                      out);
    }
    if (rv == ZEQ_OK) {
        rv = zeq_envelope_open_final(ctx);
    }
    zeq_envelope_ctx_free(ctx);
    if (rv != ZEQ_OK) {
        OPENSSL_cleanse(out, n);
        return rv;
    }
    if (outlen != NULL) {
        *outlen = n;
    }
    return ZEQ_OK;
}

int zeq_envelope_keystream_xor(const unsigned char key[ZEQ_KEY_LEN],
                               const unsigned char iv[ZEQ_ENVELOPE_IV_LEN],
                               unsigned long long offset,
                               unsigned char *data, size_t len)
{
    /* GCM encrypts plaintext block i with AES-CTR counter block
     * iv || uint32(2 + i) (J0 = iv || 1 for a 96-bit iv). OpenSSL's CTR
     * mode increments all 128 bits, GCM only the low 32: the same while
     * 2 + i stays below 2^32, which ZEQ_ENVELOPE_MAX_PLAINTEXT ensures. */
    unsigned char counter[16], skip[16];
    unsigned long long block = offset / 16, end = offset + len;
    size_t lead = (size_t)(offset % 16), done = 0;
    EVP_CIPHER_CTX *evp;
    int n, ok;

    if (len == 0) {
        return ZEQ_OK;
    }
    if (offset > (unsigned long long)ZEQ_ENVELOPE_MAX_PLAINTEXT
        || end > (unsigned long long)ZEQ_ENVELOPE_MAX_PLAINTEXT
        || end < offset) {
        return ZEQ_ERR_BAD;
    }
    memcpy(counter, iv, ZEQ_ENVELOPE_IV_LEN);
    block += 2;
    counter[12] = (unsigned char)(block >> 24);
    counter[13] = (unsigned char)(block >> 16);
    counter[14] = (unsigned char)(block >> 8);
    counter[15] = (unsigned char)block;
    evp = EVP_CIPHER_CTX_new();
    if (evp == NULL) {
        return ZEQ_ERR_CRYPTO;
    }
    (void)zeq_envelope_gcm();   /* fetches CTR too */
    ok = EVP_EncryptInit_ex(evp, zeq_envelope_ctr_fetched
                                 ? zeq_envelope_ctr_fetched : EVP_aes_256_ctr(),
                            NULL, key, counter) == 1;
    if (ok && lead > 0) {
        memset(skip, 0, sizeof(skip));
        ok = EVP_EncryptUpdate(evp, skip, &n, skip, (int)lead) == 1;
    }
    while (ok && done < len) {
        size_t chunk = len - done;
        if (chunk > (size_t)INT_MAX / 2) {
            chunk = (size_t)INT_MAX / 2;
        }
        ok = EVP_EncryptUpdate(evp, data + done, &n, data + done,
                               (int)chunk) == 1 && (size_t)n == chunk;
        done += chunk;
    }
    EVP_CIPHER_CTX_free(evp);
    OPENSSL_cleanse(skip, sizeof(skip));
    OPENSSL_cleanse(counter, sizeof(counter));
    return ok ? ZEQ_OK : ZEQ_ERR_CRYPTO;
}
