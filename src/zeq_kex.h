/* Key exchange of mod_zeq_e2e (docs/PROTOCOL.md): protocol v1's PBKDF2 of
 * the shared secret over both nonces, and protocol v2's ECDH on P-256 with
 * HKDF-SHA256 (optionally mixed with a pre-shared key), both producing one
 * keys structure; v2's handshake transcript and its ECDSA P-256 signature.
 *
 * Pure C11 + OpenSSL 3 libcrypto: no httpd or APR header, so this part is
 * unit-tested and fuzzed alone. */
#ifndef ZEQ_KEX_H
#define ZEQ_KEX_H

#include <stddef.h>

#include "zeq_result.h"

#define ZEQ_KEX_KEY_LEN     32
#define ZEQ_KEX_NONCE_LEN   32
#define ZEQ_KEX_POINT_LEN   65    /* uncompressed P-256 point: 0x04 || x || y */
#define ZEQ_KEX_SIG_LEN     64    /* IEEE P1363 r || s */
#define ZEQ_KEX_SIGNER_LEN  32    /* SHA-256 of the DER SubjectPublicKeyInfo */
#define ZEQ_KEX_V1_ITERATIONS 100000
#define ZEQ_KEX_PSK_ITERATIONS 100000

/* A session's keys: v1 has one key for both directions (c2s == s2c). */
typedef struct {
    int version;                              /* 1 or 2 */
    unsigned char c2s[ZEQ_KEX_KEY_LEN];       /* client to server */
    unsigned char s2c[ZEQ_KEX_KEY_LEN];       /* server to client */
} zeq_keys;

/* Zeroes the keys. */
void zeq_keys_cleanse(zeq_keys *keys);

/* PBKDF2-HMAC-SHA256. */
int zeq_kex_pbkdf2_sha256(const unsigned char *password, size_t passlen,
                          const unsigned char *salt, size_t saltlen,
                          unsigned int iterations,
                          unsigned char *out, size_t outlen);

/* HKDF-SHA256 (RFC 5869: extract, then expand; an empty salt is HashLen
 * zeros): ZEQ_OK, or ZEQ_ERR_BAD when outlen is 0 or over 255 * 32. */
int zeq_kex_hkdf_sha256(const unsigned char *ikm, size_t ikmlen,
                        const unsigned char *salt, size_t saltlen,
                        const unsigned char *info, size_t infolen,
                        unsigned char *out, size_t outlen);

/* Protocol v1: key = PBKDF2-HMAC-SHA256(secret, client_nonce ||
 * server_nonce, 100000, 32); c2s = s2c = key. */
int zeq_kex_v1(const unsigned char *secret, size_t secretlen,
               const unsigned char client_nonce[ZEQ_KEX_NONCE_LEN],
               const unsigned char server_nonce[ZEQ_KEX_NONCE_LEN],
               zeq_keys *keys);

/* Protocol v2's pre-shared key of a secret: PBKDF2-HMAC-SHA256(secret,
 * "zeq-e2e/2 psk", 100000, 32), computed once per secret. */
int zeq_kex_psk(const unsigned char *secret, size_t secretlen,
                unsigned char psk[ZEQ_KEX_KEY_LEN]);

/* An ephemeral (or, for tests, fixed) P-256 key pair. */
typedef struct zeq_kex_pair zeq_kex_pair;

/* A fresh key pair from the system's random source; NULL on failure. */
zeq_kex_pair *zeq_kex_pair_generate(void);
/* The key pair of a given private scalar (32 bytes, big-endian, in
 * [1, n-1]); NULL when it is not one. */
zeq_kex_pair *zeq_kex_pair_from_private(const unsigned char d[32]);
/* Frees the pair; the private key is cleansed. NULL is accepted. */
void zeq_kex_pair_free(zeq_kex_pair *pair);
/* The uncompressed public point. */
int zeq_kex_pair_public(const zeq_kex_pair *pair,
                        unsigned char point[ZEQ_KEX_POINT_LEN]);

/* A peer's public point, decoded and checked. */
typedef struct zeq_kex_peer zeq_kex_peer;

/* The peer of an uncompressed P-256 point on the curve (not the point at
 * infinity); NULL when it is not one (or on allocation failure). */
zeq_kex_peer *zeq_kex_peer_new(const unsigned char point[ZEQ_KEX_POINT_LEN]);
/* NULL is accepted. */
void zeq_kex_peer_free(zeq_kex_peer *peer);

/* True when point is an uncompressed P-256 point on the curve (not the
 * point at infinity). */
int zeq_kex_point_valid(const unsigned char point[ZEQ_KEX_POINT_LEN]);

/* The ECDH shared secret Z (the x-coordinate) of pair and a peer's point:
 * ZEQ_OK, or ZEQ_ERR_BAD for a point that is not valid. */
int zeq_kex_ecdh(const zeq_kex_pair *pair,
                 const unsigned char peer[ZEQ_KEX_POINT_LEN],
                 unsigned char z[32]);
/* The same with a decoded peer: ZEQ_OK or ZEQ_ERR_CRYPTO. */
int zeq_kex_ecdh_peer(const zeq_kex_pair *pair, const zeq_kex_peer *peer,
                      unsigned char z[32]);

/* Protocol v2: IKM = Z, or Z || psk when psk is not NULL; salt =
 * client_nonce || server_nonce; c2s = HKDF(IKM, salt, "zeq-e2e/2 c2s", 32),
 * s2c = HKDF(IKM, salt, "zeq-e2e/2 s2c", 32). */
int zeq_kex_v2(const zeq_kex_pair *pair,
               const unsigned char client_point[ZEQ_KEX_POINT_LEN],
               const unsigned char *psk,
               const unsigned char client_nonce[ZEQ_KEX_NONCE_LEN],
               const unsigned char server_nonce[ZEQ_KEX_NONCE_LEN],
               zeq_keys *keys);
/* The same with the client's point decoded once (zeq_kex_peer_new). */
int zeq_kex_v2_peer(const zeq_kex_pair *pair, const zeq_kex_peer *client,
                    const unsigned char *psk,
                    const unsigned char client_nonce[ZEQ_KEX_NONCE_LEN],
                    const unsigned char server_nonce[ZEQ_KEX_NONCE_LEN],
                    zeq_keys *keys);

/* The handshake transcript that the server signs: "zeq-e2e/2 handshake" ||
 * 0x00 || client_nonce || server_nonce || client_point || server_point ||
 * session_id. Writes it to out (at least zeq_kex_transcript_len(idlen)
 * bytes) and returns its length. */
size_t zeq_kex_transcript_len(size_t idlen);
size_t zeq_kex_transcript(unsigned char *out,
                          const unsigned char client_nonce[ZEQ_KEX_NONCE_LEN],
                          const unsigned char server_nonce[ZEQ_KEX_NONCE_LEN],
                          const unsigned char client_point[ZEQ_KEX_POINT_LEN],
                          const unsigned char server_point[ZEQ_KEX_POINT_LEN],
                          const char *session_id, size_t idlen);

/* A signing key: an EC P-256 private key. */
typedef struct zeq_kex_signer zeq_kex_signer;

/* Reads a PEM private key: ZEQ_OK, ZEQ_ERR_BAD when it is not PEM or not
 * a private key, ZEQ_ERR_VERSION when it is not EC on P-256. */
int zeq_kex_signer_load(const char *pem, size_t len, zeq_kex_signer **out);
void zeq_kex_signer_free(zeq_kex_signer *signer);
/* SHA-256 of the key's DER SubjectPublicKeyInfo. */
int zeq_kex_signer_id(const zeq_kex_signer *signer,
                      unsigned char id[ZEQ_KEX_SIGNER_LEN]);
/* ECDSA P-256 with SHA-256 over msg, as r || s (32 bytes each). */
int zeq_kex_sign(const zeq_kex_signer *signer, const unsigned char *msg,
                 size_t len, unsigned char sig[ZEQ_KEX_SIG_LEN]);

#endif
