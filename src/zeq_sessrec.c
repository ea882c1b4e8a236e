/* The session record codec (see zeq_sessrec.h). */
#include "zeq_sessrec.h"
#include "zeq_envelope.h"

#include <string.h>

#include <openssl/crypto.h>

#define ZEQ_SESSREC_BODY_MAX (ZEQ_SESSREC_MAX_LEN - ZEQ_SESSREC_HEAD_LEN \
                              - ZEQ_SESSREC_TAG_LEN)
#define ZEQ_SESSREC_AAD_LEN (8 + ZEQ_SESSREC_ID_HASH_LEN)

static const char zeq_sessrec_label_key[] = "zeq-e2e record key";
static const char zeq_sessrec_label_id[] = "zeq-e2e record key id";
static const char zeq_sessrec_label_rec[] = "zeq-e2e record";

static void zeq_sessrec_put64(unsigned char *p, int64_t v)
{
    uint64_t u = (uint64_t)v;
    int i;

    for (i = 7; i >= 0; i--) {
        p[i] = (unsigned char)(u & 0xff);
        u >>= 8;
    }
}

static int64_t zeq_sessrec_get64(const unsigned char *p)
{
    uint64_t v = 0;
    int i;

    for (i = 0; i < 8; i++) {
        v = (v << 8) | p[i];
    }
    return (int64_t)v;
}

int zeq_sessrec_key_derive(const unsigned char *ikm, size_t ikmlen,
                           zeq_sessrec_key *key)
{
    int rv;

    memset(key, 0, sizeof(*key));
    if (ikmlen < ZEQ_SESSREC_MIN_IKM) {
        return ZEQ_ERR_SHORT;
    }
    rv = zeq_kex_hkdf_sha256(ikm, ikmlen, NULL, 0,
                             (const unsigned char *)zeq_sessrec_label_key,
                             sizeof(zeq_sessrec_label_key) - 1, key->master,
                             sizeof(key->master));
    if (rv == ZEQ_OK) {
        rv = zeq_kex_hkdf_sha256(ikm, ikmlen, NULL, 0,
                                 (const unsigned char *)zeq_sessrec_label_id,
                                 sizeof(zeq_sessrec_label_id) - 1, key->id,
                                 sizeof(key->id));
    }
    if (rv != ZEQ_OK) {
        zeq_sessrec_key_cleanse(key);
    }
    return rv;
}

void zeq_sessrec_key_cleanse(zeq_sessrec_key *key)
{
    OPENSSL_cleanse(key, sizeof(*key));
}

/* The key of one record: HKDF(master, "", label 0x00 id_hash). */
static int zeq_sessrec_record_key(const zeq_sessrec_key *key,
                                  const unsigned char *id_hash,
                                  unsigned char out[ZEQ_KEY_LEN])
{
    unsigned char info[sizeof(zeq_sessrec_label_rec) + ZEQ_SESSREC_ID_HASH_LEN];

    memcpy(info, zeq_sessrec_label_rec, sizeof(zeq_sessrec_label_rec));
    memcpy(info + sizeof(zeq_sessrec_label_rec), id_hash,
           ZEQ_SESSREC_ID_HASH_LEN);
    return zeq_kex_hkdf_sha256(key->master, sizeof(key->master), NULL, 0, info,
                               sizeof(info), out, ZEQ_KEY_LEN);
}

static void zeq_sessrec_aad(const unsigned char *head,
                            const unsigned char *id_hash,
                            unsigned char aad[ZEQ_SESSREC_AAD_LEN])
{
    memcpy(aad, head, 8);
    memcpy(aad + 8, id_hash, ZEQ_SESSREC_ID_HASH_LEN);
}

size_t zeq_sessrec_len(const zeq_sessrec *rec)
{
    if (rec->keys.version != 2) {
        return ZEQ_SESSREC_V1_LEN;
    }
    return rec->has_window ? ZEQ_SESSREC_MAX_LEN
           : rec->has_slot ? ZEQ_SESSREC_V2_SLOT_LEN : ZEQ_SESSREC_V2_LEN;
}

/* The plaintext of rec; returns its length. */
static size_t zeq_sessrec_body(const zeq_sessrec *rec, unsigned char *out)
{
    size_t n = 0;

    memcpy(out, rec->scope, ZEQ_SESSREC_SCOPE_LEN);
    n += ZEQ_SESSREC_SCOPE_LEN;
    zeq_sessrec_put64(out + n, rec->created);
    zeq_sessrec_put64(out + n + 8, rec->expires);
    n += 16;
    memcpy(out + n, rec->keys.c2s, ZEQ_KEX_KEY_LEN);
    n += ZEQ_KEX_KEY_LEN;
    if (rec->keys.version == 2) {
        memcpy(out + n, rec->keys.s2c, ZEQ_KEX_KEY_LEN);
        n += ZEQ_KEX_KEY_LEN;
        if (rec->has_window) {
            zeq_replay_encode(&rec->window, out + n);
            n += ZEQ_REPLAY_ENCODED_LEN;
        }
        else if (rec->has_slot) {
            out[n] = (unsigned char)(rec->slot >> 24);
            out[n + 1] = (unsigned char)(rec->slot >> 16);
            out[n + 2] = (unsigned char)(rec->slot >> 8);
            out[n + 3] = (unsigned char)rec->slot;
            n += ZEQ_SESSREC_SLOT_LEN;
        }
    }
    return n;
}

size_t zeq_sessrec_seal(const zeq_sessrec_key *key, const zeq_sessrec *rec,
                        const unsigned char id_hash[ZEQ_SESSREC_ID_HASH_LEN],
                        const unsigned char nonce[ZEQ_SESSREC_NONCE_LEN],
                        unsigned char out[ZEQ_SESSREC_MAX_LEN])
{
    unsigned char body[ZEQ_SESSREC_BODY_MAX], k[ZEQ_KEY_LEN];
    unsigned char aad[ZEQ_SESSREC_AAD_LEN];
    zeq_envelope_ctx *ctx = NULL;
    size_t n, total = 0;
    int v2 = rec->keys.version == 2;

    out[0] = ZEQ_SESSREC_VERSION;
    out[1] = v2 ? 2 : 1;
    out[2] = (unsigned char)((v2 && rec->has_window ? ZEQ_SESSREC_FLAG_WINDOW
                              : v2 && rec->has_slot ? ZEQ_SESSREC_FLAG_SLOT
                                                    : 0)
                             | (rec->unused ? ZEQ_SESSREC_FLAG_UNUSED : 0));
    out[3] = 0;
    memcpy(out + 4, key->id, ZEQ_SESSREC_KEY_ID_LEN);
    memcpy(out + 8, nonce, ZEQ_SESSREC_NONCE_LEN);
    n = zeq_sessrec_body(rec, body);
    zeq_sessrec_aad(out, id_hash, aad);
    if (zeq_sessrec_record_key(key, id_hash, k) == ZEQ_OK
        && (ctx = zeq_envelope_ctx_new()) != NULL
        && zeq_envelope_seal_init(ctx, k, nonce, aad, sizeof(aad)) == ZEQ_OK
        && zeq_envelope_seal_update(ctx, body, n, out + ZEQ_SESSREC_HEAD_LEN)
               == ZEQ_OK
        && zeq_envelope_seal_final(ctx, out + ZEQ_SESSREC_HEAD_LEN + n)
               == ZEQ_OK) {
        total = ZEQ_SESSREC_HEAD_LEN + n + ZEQ_SESSREC_TAG_LEN;
    }
    zeq_envelope_ctx_free(ctx);
    OPENSSL_cleanse(body, sizeof(body));
    OPENSSL_cleanse(k, sizeof(k));
    return total;
}

/* Reads the plaintext of a record of the given version and flags. */
static int zeq_sessrec_parse(const unsigned char *body, int version, int flags,
                             zeq_sessrec *rec)
{
    size_t n = 0;

    rec->keys.version = version;
    rec->unused = (flags & ZEQ_SESSREC_FLAG_UNUSED) != 0;
    memcpy(rec->scope, body, ZEQ_SESSREC_SCOPE_LEN);
    n += ZEQ_SESSREC_SCOPE_LEN;
    rec->created = zeq_sessrec_get64(body + n);
    rec->expires = zeq_sessrec_get64(body + n + 8);
    n += 16;
    memcpy(rec->keys.c2s, body + n, ZEQ_KEX_KEY_LEN);
    n += ZEQ_KEX_KEY_LEN;
    if (version == 1) {
        memcpy(rec->keys.s2c, rec->keys.c2s, ZEQ_KEX_KEY_LEN);
        return ZEQ_OK;
    }
    memcpy(rec->keys.s2c, body + n, ZEQ_KEX_KEY_LEN);
    n += ZEQ_KEX_KEY_LEN;
    rec->has_window = (flags & ZEQ_SESSREC_FLAG_WINDOW) != 0;
    if (rec->has_window) {
        return zeq_replay_decode(&rec->window, body + n,
                                 ZEQ_REPLAY_ENCODED_LEN);
    }
    zeq_replay_init(&rec->window);
    rec->has_slot = (flags & ZEQ_SESSREC_FLAG_SLOT) != 0;
    if (rec->has_slot) {
        rec->slot = ((uint32_t)body[n] << 24) | ((uint32_t)body[n + 1] << 16)
                    | ((uint32_t)body[n + 2] << 8) | body[n + 3];
    }
    return ZEQ_OK;
}

int zeq_sessrec_open(const zeq_sessrec_key *key, const unsigned char *in,
                     size_t len,
                     const unsigned char id_hash[ZEQ_SESSREC_ID_HASH_LEN],
                     zeq_sessrec *rec)
{
    unsigned char body[ZEQ_SESSREC_BODY_MAX], k[ZEQ_KEY_LEN];
    unsigned char aad[ZEQ_SESSREC_AAD_LEN];
    zeq_envelope_ctx *ctx = NULL;
    size_t want, n;
    int rv, flags;

    memset(rec, 0, sizeof(*rec));
    if (len < 1 || in[0] != ZEQ_SESSREC_VERSION) {
        return ZEQ_ERR_VERSION;
    }
    if (len < ZEQ_SESSREC_HEAD_LEN || (in[1] != 1 && in[1] != 2)
        || in[3] != 0
        || (in[2] & ~(ZEQ_SESSREC_FLAG_WINDOW | ZEQ_SESSREC_FLAG_UNUSED
                      | ZEQ_SESSREC_FLAG_SLOT)) != 0
        || (in[1] == 1 && (in[2] & (ZEQ_SESSREC_FLAG_WINDOW
                                    | ZEQ_SESSREC_FLAG_SLOT)) != 0)
        || (in[2] & (ZEQ_SESSREC_FLAG_WINDOW | ZEQ_SESSREC_FLAG_SLOT))
           == (ZEQ_SESSREC_FLAG_WINDOW | ZEQ_SESSREC_FLAG_SLOT)) {
        return ZEQ_ERR_BAD;
    }
    flags = in[2];
    want = in[1] == 1 ? ZEQ_SESSREC_V1_LEN
           : (flags & ZEQ_SESSREC_FLAG_WINDOW) ? ZEQ_SESSREC_MAX_LEN
           : (flags & ZEQ_SESSREC_FLAG_SLOT) ? ZEQ_SESSREC_V2_SLOT_LEN
                                             : ZEQ_SESSREC_V2_LEN;
    if (len != want) {
        return ZEQ_ERR_BAD;
    }
    if (CRYPTO_memcmp(in + 4, key->id, ZEQ_SESSREC_KEY_ID_LEN) != 0) {
        return ZEQ_ERR_KEY;
    }
    n = len - ZEQ_SESSREC_HEAD_LEN - ZEQ_SESSREC_TAG_LEN;
    zeq_sessrec_aad(in, id_hash, aad);
    rv = zeq_sessrec_record_key(key, id_hash, k);
    if (rv == ZEQ_OK) {
        ctx = zeq_envelope_ctx_new();
        rv = ctx == NULL ? ZEQ_ERR_CRYPTO
             : zeq_envelope_open_init(ctx, k, in + 8, in + len
                                      - ZEQ_SESSREC_TAG_LEN, aad, sizeof(aad));
    }
    if (rv == ZEQ_OK) {
        rv = zeq_envelope_open_update(ctx, in + ZEQ_SESSREC_HEAD_LEN, n, body);
    }
    if (rv == ZEQ_OK) {
        rv = zeq_envelope_open_final(ctx);
    }
    if (rv == ZEQ_OK) {
        rv = zeq_sessrec_parse(body, in[1], flags, rec);
    }
    zeq_envelope_ctx_free(ctx);
    OPENSSL_cleanse(body, sizeof(body));
    OPENSSL_cleanse(k, sizeof(k));
    if (rv != ZEQ_OK) {
        OPENSSL_cleanse(rec, sizeof(*rec));
    }
    return rv;
}
