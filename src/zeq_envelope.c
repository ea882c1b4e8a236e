/* The v1 envelope (AES-256-GCM).
 * Pure C11 + libcrypto; see zeq_envelope.h. */
#include "zeq_envelope.h"

#include <limits.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

struct zeq_envelope_ctx {
    EVP_CIPHER_CTX *evp;
};

zeq_envelope_ctx *zeq_envelope_ctx_new(void)
{
    zeq_envelope_ctx *ctx = OPENSSL_zalloc(sizeof(*ctx));
    if (ctx == NULL) {
        return NULL;
    }
    ctx->evp = EVP_CIPHER_CTX_new();
    if (ctx->evp == NULL) {
        OPENSSL_free(ctx);
        return NULL;
    }
    return ctx;
}

void zeq_envelope_ctx_free(zeq_envelope_ctx *ctx)
{
    if (ctx != NULL) {
        /* EVP_CIPHER_CTX_free cleanses the key schedule. */
        EVP_CIPHER_CTX_free(ctx->evp);
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
    if (EVP_CipherInit_ex(ctx->evp, EVP_aes_256_gcm(), NULL, NULL, NULL,
                          enc) != 1
        || EVP_CIPHER_CTX_ctrl(ctx->evp, EVP_CTRL_GCM_SET_IVLEN,
                               ZEQ_ENVELOPE_IV_LEN, NULL) != 1
        || EVP_CipherInit_ex(ctx->evp, NULL, NULL, key, iv, enc) != 1) {
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
    ok = EVP_EncryptInit_ex(evp, EVP_aes_256_ctr(), NULL, key, counter) == 1;
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
