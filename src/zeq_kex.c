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
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

struct zeq_kex_pair {
    BIGNUM *d;                             /* secure, constant-time */
    BN_CTX *bn;                            /* secure */
    unsigned char pub[ZEQ_KEX_POINT_LEN];  /* d * G, uncompressed */
};

struct zeq_kex_peer {
    EC_POINT *point;
};

struct zeq_kex_signer {
    EVP_PKEY *pkey;
    EVP_MD *sha256;                      /* fetched once, for every signature */
    unsigned char id[ZEQ_KEX_SIGNER_LEN]; /* SHA-256 of the public key's DER */
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

/* The handshake's P-256 arithmetic is done on one EC_GROUP per process
 * with EC_POINT and BIGNUM calls, none of them deprecated in OpenSSL 3.0
 * (only EC_KEY and ECDH_compute_key are): EVP_EC_gen, EVP_PKEY_fromdata
 * and EVP_PKEY_derive build a group from its name, fetch the key
 * management, encode and decode parameters and take the provider store's
 * locks for every key, which cost more than the scalar multiplications.
 * The calls below are those that OpenSSL's own EC key generation and ECDH
 * make under EVP (the built-in EC implementation, not a provider's): the
 * scalar drawn with BN_priv_rand_range_ex from the private generator,
 * flagged constant-time, Q = d * G and Z = x(d * P) by EC_POINT_mul. The
 * group is read only once made, so threads share it; it is never freed
 * (one per load of the module). */
static EC_GROUP *zeq_kex_group_made;

static void zeq_kex_group_make(void)
{
    zeq_kex_group_made = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
}

static const EC_GROUP *zeq_kex_group(void)
{
    static CRYPTO_ONCE once = CRYPTO_ONCE_STATIC_INIT;

    if (!CRYPTO_THREAD_run_once(&once, zeq_kex_group_make)) {
        return NULL;
    }
    return zeq_kex_group_made;
}

void zeq_kex_pair_free(zeq_kex_pair *pair)
{
    if (pair != NULL) {
        BN_clear_free(pair->d);
        BN_CTX_free(pair->bn);
        OPENSSL_clear_free(pair, sizeof(*pair));
    }
}

/* A pair with its scalar and context allocated, d still zero. */
static zeq_kex_pair *zeq_kex_pair_new(void)
{
    zeq_kex_pair *pair = OPENSSL_zalloc(sizeof(*pair));

    if (pair == NULL) {
        return NULL;
    }
    pair->d = BN_secure_new();
    pair->bn = BN_CTX_secure_new();
    if (pair->d == NULL || pair->bn == NULL) {
        zeq_kex_pair_free(pair);
        return NULL;
    }
    BN_set_flags(pair->d, BN_FLG_CONSTTIME);
    return pair;
}

/* The public point of the pair's scalar, which must be in [1, n-1]; the
 * pair is freed on failure. */
static zeq_kex_pair *zeq_kex_pair_finish(zeq_kex_pair *pair)
{
    const EC_GROUP *group = zeq_kex_group();
    const BIGNUM *order = group ? EC_GROUP_get0_order(group) : NULL;
    EC_POINT *q = group ? EC_POINT_new(group) : NULL;
    int ok = q != NULL && order != NULL && !BN_is_zero(pair->d)
             && BN_cmp(pair->d, order) < 0
             && EC_POINT_mul(group, q, pair->d, NULL, NULL, pair->bn) == 1
             && EC_POINT_point2oct(group, q, POINT_CONVERSION_UNCOMPRESSED,
                                   pair->pub, ZEQ_KEX_POINT_LEN, pair->bn)
                == ZEQ_KEX_POINT_LEN;

    EC_POINT_free(q);
    if (!ok) {
        zeq_kex_pair_free(pair);
        return NULL;
    }
    return pair;
}

zeq_kex_pair *zeq_kex_pair_generate(void)
{
    const EC_GROUP *group = zeq_kex_group();
    zeq_kex_pair *pair = group ? zeq_kex_pair_new() : NULL;

    if (pair == NULL) {
        return NULL;
    }
    /* d uniform in [1, n-1], as OpenSSL's EC key generation draws it. */
    do {
        if (BN_priv_rand_range_ex(pair->d, EC_GROUP_get0_order(group), 0,
                                  pair->bn) != 1) {
            zeq_kex_pair_free(pair);
            return NULL;
        }
    } while (BN_is_zero(pair->d));
    return zeq_kex_pair_finish(pair);
}

zeq_kex_pair *zeq_kex_pair_from_private(const unsigned char d[32])
{
    zeq_kex_pair *pair = zeq_kex_pair_new();

    if (pair == NULL) {
        return NULL;
    }
    if (BN_bin2bn(d, 32, pair->d) == NULL) {
        zeq_kex_pair_free(pair);
        return NULL;
    }
    return zeq_kex_pair_finish(pair);
}

int zeq_kex_pair_public(const zeq_kex_pair *pair,
                        unsigned char point[ZEQ_KEX_POINT_LEN])
{
    memcpy(point, pair->pub, ZEQ_KEX_POINT_LEN);
    return ZEQ_OK;
}

/* The peer's point, decoded and checked once: uncompressed, coordinates
 * below p, on P-256 (EC_POINT_oct2point checks the last two, the curve
 * equation through EC_POINT_set_affine_coordinates), not the identity. P-256 has
 * cofactor 1, so a point on the curve is in the prime-order group: a
 * multiplication by the order, as costly as the ECDH itself, could not
 * fail for such a point. */
zeq_kex_peer *zeq_kex_peer_new(const unsigned char point[ZEQ_KEX_POINT_LEN])
{
    const EC_GROUP *group = zeq_kex_group();
    zeq_kex_peer *peer;

    if (point[0] != 0x04 || group == NULL) {
        return NULL;    /* uncompressed points only */
    }
    peer = OPENSSL_zalloc(sizeof(*peer));
    if (peer == NULL) {
        return NULL;
    }
    peer->point = EC_POINT_new(group);
    if (peer->point == NULL
        || EC_POINT_oct2point(group, peer->point, point, ZEQ_KEX_POINT_LEN,
                              NULL) != 1
        || EC_POINT_is_at_infinity(group, peer->point)) {
        zeq_kex_peer_free(peer);
        return NULL;
    }
    return peer;
}

void zeq_kex_peer_free(zeq_kex_peer *peer)
{
    if (peer != NULL) {
        EC_POINT_free(peer->point);
        OPENSSL_free(peer);
    }
}

int zeq_kex_point_valid(const unsigned char point[ZEQ_KEX_POINT_LEN])
{
    zeq_kex_peer *peer = zeq_kex_peer_new(point);

    zeq_kex_peer_free(peer);
    return peer != NULL;
}

int zeq_kex_ecdh_peer(const zeq_kex_pair *pair, const zeq_kex_peer *peer,
                      unsigned char z[32])
{
    const EC_GROUP *group = zeq_kex_group();
    EC_POINT *r = group ? EC_POINT_new(group) : NULL;
    BIGNUM *x;
    int rv = ZEQ_ERR_CRYPTO;

    BN_CTX_start(pair->bn);
    x = BN_CTX_get(pair->bn);
    /* Z = x(d * P); the identity (impossible for a point of the
     * prime-order group and d in [1, n-1]) is refused, as ECDH does. */
    if (r != NULL && x != NULL
        && EC_POINT_mul(group, r, NULL, peer->point, pair->d, pair->bn) == 1
        && !EC_POINT_is_at_infinity(group, r)
        && EC_POINT_get_affine_coordinates(group, r, x, NULL, pair->bn) == 1
        && BN_bn2binpad(x, z, 32) == 32) {
        rv = ZEQ_OK;
    }
    if (x != NULL) {
        BN_clear(x);
    }
    BN_CTX_end(pair->bn);
    EC_POINT_clear_free(r);
    if (rv != ZEQ_OK) {
        OPENSSL_cleanse(z, 32);
    }
    return rv;
}

int zeq_kex_ecdh(const zeq_kex_pair *pair,
                 const unsigned char peer[ZEQ_KEX_POINT_LEN],
                 unsigned char z[32])
{
    zeq_kex_peer *p = zeq_kex_peer_new(peer);
    int rv;

    if (p == NULL) {
        return ZEQ_ERR_BAD;
    }
    rv = zeq_kex_ecdh_peer(pair, p, z);
    zeq_kex_peer_free(p);
    return rv;
}

int zeq_kex_v2_peer(const zeq_kex_pair *pair, const zeq_kex_peer *client,
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

    rv = zeq_kex_ecdh_peer(pair, client, ikm);
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

int zeq_kex_v2(const zeq_kex_pair *pair,
               const unsigned char client_point[ZEQ_KEX_POINT_LEN],
               const unsigned char *psk,
               const unsigned char client_nonce[ZEQ_KEX_NONCE_LEN],
               const unsigned char server_nonce[ZEQ_KEX_NONCE_LEN],
               zeq_keys *keys)
{
    zeq_kex_peer *client = zeq_kex_peer_new(client_point);
    int rv;

    if (client == NULL) {
        return ZEQ_ERR_BAD;
    }
    rv = zeq_kex_v2_peer(pair, client, psk, client_nonce, server_nonce, keys);
    zeq_kex_peer_free(client);
    return rv;
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

/* signer->id: the SHA-256 of the public key's DER (SubjectPublicKeyInfo). */
static int zeq_kex_signer_hash(zeq_kex_signer *signer)
{
    unsigned char *der = NULL;
    unsigned int n = 0;
    int len = i2d_PUBKEY(signer->pkey, &der), ok;

    if (len <= 0) {
        return ZEQ_ERR_CRYPTO;
    }
    ok = EVP_Digest(der, (size_t)len, signer->id, &n, signer->sha256, NULL) == 1
         && n == ZEQ_KEX_SIGNER_LEN;
    OPENSSL_free(der);
    return ok ? ZEQ_OK : ZEQ_ERR_CRYPTO;
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
    /* The id and the digest once, here: encoding the key (OpenSSL looks its
     * encoder up among all of them) and fetching SHA-256 took longer than
     * the signature, under OpenSSL's locks, on every signed handshake. */
    if (((*out)->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL)) == NULL
        || zeq_kex_signer_hash(*out) != ZEQ_OK) {
        zeq_kex_signer_free(*out);
        *out = NULL;
        return ZEQ_ERR_CRYPTO;
    }
    return ZEQ_OK;
}

void zeq_kex_signer_free(zeq_kex_signer *signer)
{
    if (signer != NULL) {
        EVP_PKEY_free(signer->pkey);
        EVP_MD_free(signer->sha256);
        OPENSSL_free(signer);
    }
}

int zeq_kex_signer_id(const zeq_kex_signer *signer,
                      unsigned char id[ZEQ_KEX_SIGNER_LEN])
{
    memcpy(id, signer->id, ZEQ_KEX_SIGNER_LEN);
    return ZEQ_OK;
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
        && EVP_DigestSignInit(md, NULL, signer->sha256, NULL, signer->pkey) == 1
        && EVP_DigestSign(md, der, &derlen, msg, len) == 1
        && (es = d2i_ECDSA_SIG(NULL, &p, (long)derlen)) != NULL) {
        ECDSA_SIG_get0(es, &r, &s);
        ok = BN_bn2binpad(r, sig, 32) == 32 && BN_bn2binpad(s, sig + 32, 32) == 32;
    }
    ECDSA_SIG_free(es);
    EVP_MD_CTX_free(md);
    return ok ? ZEQ_OK : ZEQ_ERR_CRYPTO;
}
