/* Key exchange (see zeq_kex.h). Pure C11 + OpenSSL 3 libcrypto. */
#include "zeq_kex.h"

#include <limits.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/param_build.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

struct zeq_kex_pair {
    EVP_PKEY *pkey;
};

struct zeq_kex_signer {
    EVP_PKEY *pkey;
};

void zeq_keys_cleanse(zeq_keys *keys)
{
    OPENSSL_cleanse(keys, sizeof(*keys));
}

/* PBKDF2-HMAC-SHA256 (RFC 8018 5.2) on SHA-256's compression function.
 * PKCS5_PBKDF2_HMAC goes through the EVP and provider layers for each of
 * its HMACs; here the HMAC's inner and outer states (the compressed
 * key XOR ipad and key XOR opad blocks) are computed once per derivation,
 * and every further iteration is exactly two compressions of one padded
 * 64-byte block: U_j = H(outer, H(inner, U_{j-1})). SHA256_Transform is
 * libcrypto's own compression function (SHA extensions, AVX2 or ARMv8
 * code, whatever the CPU has); OpenSSL 3 marks the low-level SHA-256 API
 * deprecated but keeps it, and it is the only way to reach that code. */
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#endif

#define ZEQ_KEX_SHA_BLOCK 64
#define ZEQ_KEX_SHA_LEN   32

/* The state words of a SHA-256 context as the digest's bytes. */
static void zeq_kex_sha_out(const SHA256_CTX *c, unsigned char *out)
{
    int i;

    for (i = 0; i < 8; i++) {
        out[4 * i] = (unsigned char)(c->h[i] >> 24);
        out[4 * i + 1] = (unsigned char)(c->h[i] >> 16);
        out[4 * i + 2] = (unsigned char)(c->h[i] >> 8);
        out[4 * i + 3] = (unsigned char)c->h[i];
    }
}

/* The HMAC-SHA256 states of a key: SHA-256 after key XOR ipad (inner) and
 * after key XOR opad (outer), one block each. */
static void zeq_kex_hmac_states(const unsigned char *key, size_t keylen,
                                SHA256_CTX *inner, SHA256_CTX *outer)
{
    unsigned char k[ZEQ_KEX_SHA_BLOCK], pad[ZEQ_KEX_SHA_BLOCK];
    int i;

    memset(k, 0, sizeof(k));
    if (keylen > ZEQ_KEX_SHA_BLOCK) {
        SHA256(key, keylen, k);
    }
    else if (keylen > 0) {
        memcpy(k, key, keylen);
    }
    for (i = 0; i < ZEQ_KEX_SHA_BLOCK; i++) {
        pad[i] = k[i] ^ 0x36;
    }
    SHA256_Init(inner);
    SHA256_Update(inner, pad, sizeof(pad));
    for (i = 0; i < ZEQ_KEX_SHA_BLOCK; i++) {
        pad[i] = k[i] ^ 0x5c;
    }
    SHA256_Init(outer);
    SHA256_Update(outer, pad, sizeof(pad));
    OPENSSL_cleanse(k, sizeof(k));
    OPENSSL_cleanse(pad, sizeof(pad));
}

/* T_i = U_1 ^ ... ^ U_c for block number i. */
static void zeq_kex_pbkdf2_block(const SHA256_CTX *inner,
                                 const SHA256_CTX *outer,
                                 const unsigned char *salt, size_t saltlen,
                                 unsigned long i, unsigned int iterations,
                                 unsigned char t[ZEQ_KEX_SHA_LEN])
{
    /* U || 0x80 || zeros || the bit length of key block + U (768). */
    unsigned char block[ZEQ_KEX_SHA_BLOCK], be[4];
    SHA256_CTX c;
    unsigned int acc[8];
    unsigned int j;
    int k;

    be[0] = (unsigned char)(i >> 24);
    be[1] = (unsigned char)(i >> 16);
    be[2] = (unsigned char)(i >> 8);
    be[3] = (unsigned char)i;
    /* U_1 = HMAC(P, S || INT(i)): the salt has any length. */
    c = *inner;
    SHA256_Update(&c, salt, saltlen);
    SHA256_Update(&c, be, 4);
    SHA256_Final(block, &c);
    c = *outer;
    SHA256_Update(&c, block, ZEQ_KEX_SHA_LEN);
    SHA256_Final(block, &c);

    memset(block + ZEQ_KEX_SHA_LEN, 0, ZEQ_KEX_SHA_BLOCK - ZEQ_KEX_SHA_LEN);
    block[ZEQ_KEX_SHA_LEN] = 0x80;
    block[ZEQ_KEX_SHA_BLOCK - 2] = 0x03;
    for (k = 0; k < 8; k++) {
        acc[k] = ((unsigned int)block[4 * k] << 24)
                 | ((unsigned int)block[4 * k + 1] << 16)
                 | ((unsigned int)block[4 * k + 2] << 8)
                 | (unsigned int)block[4 * k + 3];
    }
    for (j = 1; j < iterations; j++) {
        memcpy(c.h, inner->h, sizeof(c.h));
        SHA256_Transform(&c, block);
        zeq_kex_sha_out(&c, block);
        memcpy(c.h, outer->h, sizeof(c.h));
        SHA256_Transform(&c, block);
        zeq_kex_sha_out(&c, block);
        for (k = 0; k < 8; k++) {
            acc[k] ^= (unsigned int)c.h[k];
        }
    }
    for (k = 0; k < 8; k++) {
        c.h[k] = acc[k];
    }
    zeq_kex_sha_out(&c, t);
    OPENSSL_cleanse(&c, sizeof(c));
    OPENSSL_cleanse(acc, sizeof(acc));
    OPENSSL_cleanse(block, sizeof(block));
}

int zeq_kex_pbkdf2_sha256(const unsigned char *password, size_t passlen,
                          const unsigned char *salt, size_t saltlen,
                          unsigned int iterations,
                          unsigned char *out, size_t outlen)
{
    SHA256_CTX inner, outer;
    unsigned char t[ZEQ_KEX_SHA_LEN];
    unsigned long i;
    size_t done = 0;

    /* RFC 8018: dkLen at most (2^32 - 1) hLen. */
    if (iterations == 0 || outlen == 0
        || outlen / ZEQ_KEX_SHA_LEN >= 0xffffffffUL
        || (password == NULL && passlen > 0) || (salt == NULL && saltlen > 0)) {
        return ZEQ_ERR_BAD;
    }
    zeq_kex_hmac_states(password, passlen, &inner, &outer);
    for (i = 1; done < outlen; i++) {
        size_t n = outlen - done < ZEQ_KEX_SHA_LEN ? outlen - done
                                                   : ZEQ_KEX_SHA_LEN;
        zeq_kex_pbkdf2_block(&inner, &outer, salt, saltlen, i, iterations, t);
        memcpy(out + done, t, n);
        done += n;
    }
    OPENSSL_cleanse(t, sizeof(t));
    OPENSSL_cleanse(&inner, sizeof(inner));
    OPENSSL_cleanse(&outer, sizeof(outer));
    return ZEQ_OK;
}

/* HMAC-SHA256 of a || b || c under the states of zeq_kex_hmac_states. */
static void zeq_kex_hmac_3(const SHA256_CTX *inner, const SHA256_CTX *outer,
                           const unsigned char *a, size_t alen,
                           const unsigned char *b, size_t blen,
                           const unsigned char *c, size_t clen,
                           unsigned char out[ZEQ_KEX_SHA_LEN])
{
    SHA256_CTX h = *inner;

    SHA256_Update(&h, a, alen);
    SHA256_Update(&h, b, blen);
    SHA256_Update(&h, c, clen);
    SHA256_Final(out, &h);
    h = *outer;
    SHA256_Update(&h, out, ZEQ_KEX_SHA_LEN);
    SHA256_Final(out, &h);
    OPENSSL_cleanse(&h, sizeof(h));
}

/* HKDF-SHA256 (RFC 5869) on the HMAC states above, as PBKDF2: no EVP_KDF
 * context, parameters or provider call per derivation (the per-request
 * record keys and each handshake's two keys), 8 compressions for 32 bytes
 * of output. An empty salt is HMAC's all-zero key, as the RFC's HashLen
 * zeros: the same blocks. */
int zeq_kex_hkdf_sha256(const unsigned char *ikm, size_t ikmlen,
                        const unsigned char *salt, size_t saltlen,
                        const unsigned char *info, size_t infolen,
                        unsigned char *out, size_t outlen)
{
    SHA256_CTX inner, outer;
    unsigned char prk[ZEQ_KEX_SHA_LEN], t[ZEQ_KEX_SHA_LEN], i;
    size_t done = 0, tlen = 0;

    if (outlen == 0 || outlen > 255 * ZEQ_KEX_SHA_LEN
        || (ikm == NULL && ikmlen > 0) || (salt == NULL && saltlen > 0)
        || (info == NULL && infolen > 0)) {
        return ZEQ_ERR_BAD;
    }
    /* PRK = HMAC(salt, IKM) */
    zeq_kex_hmac_states(salt, saltlen, &inner, &outer);
    zeq_kex_hmac_3(&inner, &outer, ikm, ikmlen, NULL, 0, NULL, 0, prk);
    /* T(i) = HMAC(PRK, T(i-1) || info || i) */
    zeq_kex_hmac_states(prk, sizeof(prk), &inner, &outer);
    for (i = 1; done < outlen; i++) {
        size_t n = outlen - done < ZEQ_KEX_SHA_LEN ? outlen - done
                                                   : ZEQ_KEX_SHA_LEN;
        zeq_kex_hmac_3(&inner, &outer, t, tlen, info, infolen, &i, 1, t);
        tlen = ZEQ_KEX_SHA_LEN;
        memcpy(out + done, t, n);
        done += n;
    }
    OPENSSL_cleanse(prk, sizeof(prk));
    OPENSSL_cleanse(t, sizeof(t));
    OPENSSL_cleanse(&inner, sizeof(inner));
    OPENSSL_cleanse(&outer, sizeof(outer));
    return ZEQ_OK;
}

#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

int zeq_kex_v1(const unsigned char *secret, size_t secretlen,
               const unsigned char client_nonce[ZEQ_KEX_NONCE_LEN],
               const unsigned char server_nonce[ZEQ_KEX_NONCE_LEN],
               zeq_keys *keys)
{
    unsigned char salt[2 * ZEQ_KEX_NONCE_LEN];
    int rv;

    memcpy(salt, client_nonce, ZEQ_KEX_NONCE_LEN);
    memcpy(salt + ZEQ_KEX_NONCE_LEN, server_nonce, ZEQ_KEX_NONCE_LEN);
    rv = zeq_kex_pbkdf2_sha256(secret, secretlen, salt, sizeof(salt),
                               ZEQ_KEX_V1_ITERATIONS, keys->c2s,
                               ZEQ_KEX_KEY_LEN);
    OPENSSL_cleanse(salt, sizeof(salt));
    if (rv != ZEQ_OK) {
        zeq_keys_cleanse(keys);
        return rv;
    }
    keys->version = 1;
    memcpy(keys->s2c, keys->c2s, ZEQ_KEX_KEY_LEN);
    return ZEQ_OK;
}

int zeq_kex_psk(const unsigned char *secret, size_t secretlen,
                unsigned char psk[ZEQ_KEX_KEY_LEN])
{
    static const char label[] = "zeq-e2e/2 psk";

    return zeq_kex_pbkdf2_sha256(secret, secretlen,
                                 (const unsigned char *)label,
                                 sizeof(label) - 1, ZEQ_KEX_PSK_ITERATIONS,
                                 psk, ZEQ_KEX_KEY_LEN);
}

/* --- P-256 ---------------------------------------------------------------- */

static zeq_kex_pair *zeq_kex_pair_wrap(EVP_PKEY *pkey)
{
    zeq_kex_pair *pair;

    if (pkey == NULL) {
        return NULL;
    }
    pair = OPENSSL_zalloc(sizeof(*pair));
    if (pair == NULL) {
        EVP_PKEY_free(pkey);
        return NULL;
    }
    pair->pkey = pkey;
    return pair;
}

zeq_kex_pair *zeq_kex_pair_generate(void)
{
    return zeq_kex_pair_wrap(EVP_EC_gen("P-256"));
}

/* An EVP_PKEY of the given parts (public only when priv is NULL). */
static EVP_PKEY *zeq_kex_pkey_from(const unsigned char *pub, size_t publen,
                                   const BIGNUM *priv)
{
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    EVP_PKEY *pkey = NULL;

    if (bld != NULL
        && OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
                                           "P-256", 0)
        && OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY,
                                            pub, publen)
        && (priv == NULL
            || OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, priv))
        && (params = OSSL_PARAM_BLD_to_param(bld)) != NULL
        && (ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) != NULL
        && EVP_PKEY_fromdata_init(ctx) == 1) {
        if (EVP_PKEY_fromdata(ctx, &pkey,
                              priv ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY,
                              params) != 1) {
            pkey = NULL;
        }
    }
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    return pkey;
}

/* The public point of a private scalar (EC_POINT arithmetic). */
static int zeq_kex_public_of(const BIGNUM *d,
                             unsigned char pub[ZEQ_KEX_POINT_LEN])
{
    EC_GROUP *group = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
    EC_POINT *q = group ? EC_POINT_new(group) : NULL;
    BN_CTX *bn = BN_CTX_new();
    const BIGNUM *order = group ? EC_GROUP_get0_order(group) : NULL;
    int ok = 0;

    if (q != NULL && bn != NULL && order != NULL && !BN_is_zero(d)
        && BN_cmp(d, order) < 0
        && EC_POINT_mul(group, q, d, NULL, NULL, bn) == 1
        && EC_POINT_point2oct(group, q, POINT_CONVERSION_UNCOMPRESSED, pub,
                              ZEQ_KEX_POINT_LEN, bn) == ZEQ_KEX_POINT_LEN) {
        ok = 1;
    }
    BN_CTX_free(bn);
    EC_POINT_free(q);
    EC_GROUP_free(group);
    return ok;
}

zeq_kex_pair *zeq_kex_pair_from_private(const unsigned char d[32])
{
    unsigned char pub[ZEQ_KEX_POINT_LEN];
    BIGNUM *priv = BN_secure_new();
    EVP_PKEY *pkey = NULL;

    if (priv != NULL && BN_bin2bn(d, 32, priv) != NULL
        && zeq_kex_public_of(priv, pub)) {
        pkey = zeq_kex_pkey_from(pub, sizeof(pub), priv);
    }
    BN_clear_free(priv);
    return zeq_kex_pair_wrap(pkey);
}

void zeq_kex_pair_free(zeq_kex_pair *pair)
{
    if (pair != NULL) {
        /* EVP_PKEY_free clears the private scalar (a secure BIGNUM). */
        EVP_PKEY_free(pair->pkey);
        OPENSSL_free(pair);
    }
}

int zeq_kex_pair_public(const zeq_kex_pair *pair,
                        unsigned char point[ZEQ_KEX_POINT_LEN])
{
    size_t len = 0;

    if (EVP_PKEY_get_octet_string_param(pair->pkey,
                                        OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY,
                                        point, ZEQ_KEX_POINT_LEN, &len) != 1
        || len != ZEQ_KEX_POINT_LEN || point[0] != 0x04) {
        return ZEQ_ERR_CRYPTO;
    }
    return ZEQ_OK;
}

/* The peer's point as a key, checked: on P-256, not the identity. P-256
 * has cofactor 1, so a point on the curve is in the prime-order group:
 * the full check (EVP_PKEY_public_check) would add a scalar
 * multiplication by the order, as costly as the ECDH itself, that cannot
 * fail for such a point. */
static EVP_PKEY *zeq_kex_peer(const unsigned char point[ZEQ_KEX_POINT_LEN])
{
    EVP_PKEY *pkey;
    EVP_PKEY_CTX *ctx;
    int ok;

    if (point[0] != 0x04) {
        return NULL;    /* uncompressed points only */
    }
    pkey = zeq_kex_pkey_from(point, ZEQ_KEX_POINT_LEN, NULL);
    if (pkey == NULL) {
        return NULL;
    }
    ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    ok = ctx != NULL && EVP_PKEY_public_check_quick(ctx) == 1;
    EVP_PKEY_CTX_free(ctx);
    if (!ok) {
        EVP_PKEY_free(pkey);
        return NULL;
    }
    return pkey;
}

int zeq_kex_point_valid(const unsigned char point[ZEQ_KEX_POINT_LEN])
{
    EVP_PKEY *pkey = zeq_kex_peer(point);

    EVP_PKEY_free(pkey);
    return pkey != NULL;
}

int zeq_kex_ecdh(const zeq_kex_pair *pair,
                 const unsigned char peer[ZEQ_KEX_POINT_LEN],
                 unsigned char z[32])
{
    EVP_PKEY *peer_key = zeq_kex_peer(peer);
    EVP_PKEY_CTX *ctx = NULL;
    size_t len = 32;
    int rv = ZEQ_ERR_CRYPTO;

    if (peer_key == NULL) {
        return ZEQ_ERR_BAD;
    }
    ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pair->pkey, NULL);
    if (ctx != NULL && EVP_PKEY_derive_init(ctx) == 1
        && EVP_PKEY_derive_set_peer(ctx, peer_key) == 1
        && EVP_PKEY_derive(ctx, z, &len) == 1 && len == 32) {
        rv = ZEQ_OK;
    }
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(peer_key);
    if (rv != ZEQ_OK) {
        OPENSSL_cleanse(z, 32);
    }
    return rv;
}

int zeq_kex_v2(const zeq_kex_pair *pair,
               const unsigned char client_point[ZEQ_KEX_POINT_LEN],
               const unsigned char *psk,
               const unsigned char client_nonce[ZEQ_KEX_NONCE_LEN],
               const unsigned char server_nonce[ZEQ_KEX_NONCE_LEN],
               zeq_keys *keys)
{
    static const char c2s[] = "zeq-e2e/2 c2s", s2c[] = "zeq-e2e/2 s2c";
    unsigned char ikm[32 + ZEQ_KEX_KEY_LEN];
    unsigned char salt[2 * ZEQ_KEX_NONCE_LEN];
    size_t ikmlen = 32;
    int rv;

    rv = zeq_kex_ecdh(pair, client_point, ikm);
    if (rv != ZEQ_OK) {
        return rv;
    }
    if (psk != NULL) {
        memcpy(ikm + 32, psk, ZEQ_KEX_KEY_LEN);
        ikmlen += ZEQ_KEX_KEY_LEN;
    }
    memcpy(salt, client_nonce, ZEQ_KEX_NONCE_LEN);
    memcpy(salt + ZEQ_KEX_NONCE_LEN, server_nonce, ZEQ_KEX_NONCE_LEN);
    rv = zeq_kex_hkdf_sha256(ikm, ikmlen, salt, sizeof(salt),
                             (const unsigned char *)c2s, sizeof(c2s) - 1,
                             keys->c2s, ZEQ_KEX_KEY_LEN);
    if (rv == ZEQ_OK) {
        rv = zeq_kex_hkdf_sha256(ikm, ikmlen, salt, sizeof(salt),
                                 (const unsigned char *)s2c, sizeof(s2c) - 1,
                                 keys->s2c, ZEQ_KEX_KEY_LEN);
    }
    OPENSSL_cleanse(ikm, sizeof(ikm));
    if (rv != ZEQ_OK) {
        zeq_keys_cleanse(keys);
        return rv;
    }
    keys->version = 2;
    return ZEQ_OK;
}

/* --- the transcript and its signature ------------------------------------- */

static const char zeq_kex_transcript_label[] = "zeq-e2e/2 handshake";

size_t zeq_kex_transcript_len(size_t idlen)
{
    return sizeof(zeq_kex_transcript_label)          /* label and 0x00 */
           + 2 * ZEQ_KEX_NONCE_LEN + 2 * ZEQ_KEX_POINT_LEN + idlen;
}

size_t zeq_kex_transcript(unsigned char *out,
                          const unsigned char client_nonce[ZEQ_KEX_NONCE_LEN],
                          const unsigned char server_nonce[ZEQ_KEX_NONCE_LEN],
                          const unsigned char client_point[ZEQ_KEX_POINT_LEN],
                          const unsigned char server_point[ZEQ_KEX_POINT_LEN],
                          const char *session_id, size_t idlen)
{
    unsigned char *p = out;

    memcpy(p, zeq_kex_transcript_label, sizeof(zeq_kex_transcript_label));
    p += sizeof(zeq_kex_transcript_label);
    memcpy(p, client_nonce, ZEQ_KEX_NONCE_LEN);
    p += ZEQ_KEX_NONCE_LEN;
    memcpy(p, server_nonce, ZEQ_KEX_NONCE_LEN);
    p += ZEQ_KEX_NONCE_LEN;
    memcpy(p, client_point, ZEQ_KEX_POINT_LEN);
    p += ZEQ_KEX_POINT_LEN;
    memcpy(p, server_point, ZEQ_KEX_POINT_LEN);
    p += ZEQ_KEX_POINT_LEN;
    memcpy(p, session_id, idlen);
    p += idlen;
    return (size_t)(p - out);
}

int zeq_kex_signer_load(const char *pem, size_t len, zeq_kex_signer **out)
{
    BIO *bio;
    EVP_PKEY *pkey;
    char group[64];
    size_t glen = 0;

    *out = NULL;
    if (len > INT_MAX) {
        return ZEQ_ERR_BAD;
    }
    bio = BIO_new_mem_buf(pem, (int)len);
    if (bio == NULL) {
        return ZEQ_ERR_CRYPTO;
    }
    pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    BIO_free(bio);
    if (pkey == NULL) {
        return ZEQ_ERR_BAD;
    }
    if (!EVP_PKEY_is_a(pkey, "EC")
        || EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME,
                                          group, sizeof(group), &glen) != 1
        || (strcmp(group, "prime256v1") != 0 && strcmp(group, "P-256") != 0)) {
        EVP_PKEY_free(pkey);
        return ZEQ_ERR_VERSION;
    }
    *out = OPENSSL_zalloc(sizeof(**out));
    if (*out == NULL) {
        EVP_PKEY_free(pkey);
        return ZEQ_ERR_CRYPTO;
    }
    (*out)->pkey = pkey;
    return ZEQ_OK;
}

void zeq_kex_signer_free(zeq_kex_signer *signer)
{
    if (signer != NULL) {
        EVP_PKEY_free(signer->pkey);
        OPENSSL_free(signer);
    }
}

int zeq_kex_signer_id(const zeq_kex_signer *signer,
                      unsigned char id[ZEQ_KEX_SIGNER_LEN])
{
    unsigned char *der = NULL;
    unsigned int n = 0;
    int len = i2d_PUBKEY(signer->pkey, &der), ok;

    if (len <= 0) {
        return ZEQ_ERR_CRYPTO;
    }
    ok = EVP_Digest(der, (size_t)len, id, &n, EVP_sha256(), NULL) == 1
         && n == ZEQ_KEX_SIGNER_LEN;
    OPENSSL_free(der);
    return ok ? ZEQ_OK : ZEQ_ERR_CRYPTO;
}

int zeq_kex_sign(const zeq_kex_signer *signer, const unsigned char *msg,
                 size_t len, unsigned char sig[ZEQ_KEX_SIG_LEN])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char der[80];
    const unsigned char *p = der;
    size_t derlen = sizeof(der);
    ECDSA_SIG *es = NULL;
    const BIGNUM *r, *s;
    int ok = 0;

    if (md != NULL
        && EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, signer->pkey) == 1
        && EVP_DigestSign(md, der, &derlen, msg, len) == 1
        && (es = d2i_ECDSA_SIG(NULL, &p, (long)derlen)) != NULL) {
        ECDSA_SIG_get0(es, &r, &s);
        ok = BN_bn2binpad(r, sig, 32) == 32 && BN_bn2binpad(s, sig + 32, 32) == 32;
    }
    ECDSA_SIG_free(es);
    EVP_MD_CTX_free(md);
    return ok ? ZEQ_OK : ZEQ_ERR_CRYPTO;
}
