/* Unit tests of src/zeq_envelope.c: AES-256-GCM envelope (streaming and
 * one-shot), PBKDF2-HMAC-SHA256 and the protocol v1 session key, against
 * published known-answer vectors and the vectors of docs/PROTOCOL.md. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "zeq_envelope.h"
#include "zeq_kex.h"
#include "unit.h"

/* ------------------------------------------------------------------ */
/* AES-256-GCM known answers.
 *
 * Source: D. McGrew, J. Viega, "The Galois/Counter Mode of Operation
 * (GCM)", revised submission to NIST (2005), Appendix B, Test Cases 13-16
 * (the 256-bit key cases; all four use 96-bit IVs). Test Cases 13-15 have
 * no AAD and match protocol v1 envelopes exactly; Test Case 16 has AAD and
 * is checked through the aad parameter of the streaming functions. */
struct gcm_vector {
    const char *name;
    const char *key, *iv, *pt, *aad, *ct, *tag;
};

static const struct gcm_vector gcm_vectors[] = {
    { "GCM Test Case 13",
      "0000000000000000000000000000000000000000000000000000000000000000",
      "000000000000000000000000",
      "",
      "",
      "",
      "530f8afbc74536b9a963b4f1c4cb738b" },
    { "GCM Test Case 14",
      "0000000000000000000000000000000000000000000000000000000000000000",
      "000000000000000000000000",
      "00000000000000000000000000000000",
      "",
      "cea7403d4d606b6e074ec5d3baf39d18",
      "d0d1c8a799996bf0265b98b5d48ab919" },
    { "GCM Test Case 15",
      "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
      "cafebabefacedbaddecaf888",
      "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
      "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255",
      "",
      "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
      "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad",
      "b094dac5d93471bdec1a502270e3cc6c" },
    { "GCM Test Case 16",
      "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
      "cafebabefacedbaddecaf888",
      "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
      "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
      "feedfacedeadbeeffeedfacedeadbeefabaddad2",
      "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
      "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
      "76fc6ece0f4e1768cddf8853bb2d551b" },
};

/* Odd chunk sizes (cycled) for the streaming checks; the 0 checks that an
 * empty update is harmless. */
static const size_t chunk_pattern[] = { 1, 3, 0, 7, 13, 2, 31, 5 };

struct gcm_bytes {
    unsigned char *key, *iv, *pt, *aad, *ct, *tag;
    size_t keylen, ivlen, ptlen, aadlen, ctlen, taglen;
};

static void gcm_load(const struct gcm_vector *v, struct gcm_bytes *b)
{
    b->key = unit_unhex(v->key, &b->keylen);
    b->iv = unit_unhex(v->iv, &b->ivlen);
    b->pt = unit_unhex(v->pt, &b->ptlen);
    b->aad = unit_unhex(v->aad, &b->aadlen);
    b->ct = unit_unhex(v->ct, &b->ctlen);
    b->tag = unit_unhex(v->tag, &b->taglen);
    if (b->keylen != ZEQ_KEY_LEN || b->ivlen != ZEQ_ENVELOPE_IV_LEN
        || b->taglen != ZEQ_ENVELOPE_TAG_LEN || b->ptlen != b->ctlen) {
        fprintf(stderr, "bad vector %s\n", v->name);
        abort();
    }
}

static void gcm_unload(struct gcm_bytes *b)
{
    free(b->key); free(b->iv); free(b->pt);
    free(b->aad); free(b->ct); free(b->tag);
}

/* Streams len bytes of in through update in chunks (chunked != 0) or in
 * one call; returns the first non-ZEQ_OK code. */
static int stream_updates(zeq_envelope_ctx *ctx, int seal,
                          const unsigned char *in, size_t len,
                          unsigned char *out, int chunked)
{
    size_t off = 0, k = 0;
    int rc;

    while (off < len) {
        size_t n = chunked ? chunk_pattern[k++ % (sizeof chunk_pattern
                                                  / sizeof *chunk_pattern)]
                           : len;
        if (n > len - off)
            n = len - off;
        rc = seal ? zeq_envelope_seal_update(ctx, in + off, n, out + off)
                  : zeq_envelope_open_update(ctx, in + off, n, out + off);
        if (rc != ZEQ_OK)
            return rc;
        off += n;
    }
    return ZEQ_OK;
}

static void test_gcm_vector(zeq_envelope_ctx *ctx, const struct gcm_vector *v)
{
    struct gcm_bytes b;
    const unsigned char *aad;
    unsigned char *out, *env, tag[ZEQ_ENVELOPE_TAG_LEN];
    size_t envlen, outlen;
    int chunked, rc;

    gcm_load(v, &b);
    aad = b.aadlen ? b.aad : NULL;
    out = malloc(b.ptlen + 1);
    envlen = ZEQ_ENVELOPE_OVERHEAD + b.ptlen;
    env = malloc(envlen);
    if (!out || !env)
        abort();

    for (chunked = 0; chunked <= 1; chunked++) {
        const char *how = chunked ? "odd-sized chunks" : "one update";

        /* streaming seal */
        memset(out, 0xaa, b.ptlen + 1);
        memset(tag, 0xaa, sizeof tag);
        rc = zeq_envelope_seal_init(ctx, b.key, b.iv, aad, b.aadlen);
        unit_int(rc, ZEQ_OK, "%s: seal_init", v->name);
        rc = stream_updates(ctx, 1, b.pt, b.ptlen, out, chunked);
        unit_int(rc, ZEQ_OK, "%s: seal_update (%s)", v->name, how);
        rc = zeq_envelope_seal_final(ctx, tag);
        unit_int(rc, ZEQ_OK, "%s: seal_final (%s)", v->name, how);
        unit_mem(out, b.ptlen, b.ct, b.ctlen, "%s: streaming ciphertext (%s)",
                 v->name, how);
        unit_mem(tag, sizeof tag, b.tag, b.taglen, "%s: streaming tag (%s)",
                 v->name, how);
        unit_int(out[b.ptlen], 0xaa,
                 "%s: seal_update writes no byte past len (%s)", v->name, how);

        /* streaming open */
        memset(out, 0xaa, b.ptlen + 1);
        rc = zeq_envelope_open_init(ctx, b.key, b.iv, b.tag, aad, b.aadlen);
        unit_int(rc, ZEQ_OK, "%s: open_init", v->name);
        rc = stream_updates(ctx, 0, b.ct, b.ctlen, out, chunked);
        unit_int(rc, ZEQ_OK, "%s: open_update (%s)", v->name, how);
        rc = zeq_envelope_open_final(ctx);
        unit_int(rc, ZEQ_OK, "%s: open_final verifies the tag (%s)",
                 v->name, how);
        unit_mem(out, b.ptlen, b.pt, b.ptlen, "%s: streaming plaintext (%s)",
                 v->name, how);
    }

    /* in place: in and out are the same buffer */
    memcpy(out, b.pt, b.ptlen);
    rc = zeq_envelope_seal_init(ctx, b.key, b.iv, aad, b.aadlen);
    if (rc == ZEQ_OK)
        rc = stream_updates(ctx, 1, out, b.ptlen, out, 1);
    if (rc == ZEQ_OK)
        rc = zeq_envelope_seal_final(ctx, tag);
    unit_int(rc, ZEQ_OK, "%s: in-place streaming seal succeeds", v->name);
    unit_mem(out, b.ptlen, b.ct, b.ctlen, "%s: in-place streaming ciphertext",
             v->name);
    rc = zeq_envelope_open_init(ctx, b.key, b.iv, b.tag, aad, b.aadlen);
    if (rc == ZEQ_OK)
        rc = stream_updates(ctx, 0, out, b.ptlen, out, 1);
    if (rc == ZEQ_OK)
        rc = zeq_envelope_open_final(ctx);
    unit_int(rc, ZEQ_OK, "%s: in-place streaming open succeeds", v->name);
    unit_mem(out, b.ptlen, b.pt, b.ptlen, "%s: in-place streaming plaintext",
             v->name);

    if (b.aadlen == 0) {
        /* one-shot API: envelope = iv || tag || ciphertext */
        unsigned char *expect = malloc(envlen);
        if (!expect)
            abort();
        memcpy(expect, b.iv, ZEQ_ENVELOPE_IV_LEN);
        memcpy(expect + ZEQ_ENVELOPE_IV_LEN, b.tag, ZEQ_ENVELOPE_TAG_LEN);
        memcpy(expect + ZEQ_ENVELOPE_OVERHEAD, b.ct, b.ctlen);

        rc = zeq_envelope_seal(b.key, b.iv, b.pt, b.ptlen, env);
        unit_int(rc, ZEQ_OK, "%s: one-shot seal", v->name);
        unit_mem(env, envlen, expect, envlen,
                 "%s: one-shot envelope = iv || tag || ciphertext", v->name);

        memset(out, 0xaa, b.ptlen + 1);
        outlen = (size_t)-1;
        rc = zeq_envelope_open(b.key, expect, envlen, out, &outlen);
        unit_int(rc, ZEQ_OK, "%s: one-shot open", v->name);
        unit_mem(out, outlen, b.pt, b.ptlen, "%s: one-shot plaintext",
                 v->name);
        free(expect);
    } else {
        /* the AAD is authenticated: wrong or missing AAD must fail */
        unsigned char *bad = unit_dup(b.aad, b.aadlen);

        bad[b.aadlen - 1] ^= 0x01;
        rc = zeq_envelope_open_init(ctx, b.key, b.iv, b.tag, bad, b.aadlen);
        if (rc == ZEQ_OK)
            rc = stream_updates(ctx, 0, b.ct, b.ctlen, out, 0);
        if (rc == ZEQ_OK)
            rc = zeq_envelope_open_final(ctx);
        unit_int(rc, ZEQ_ERR_AUTH, "%s: a flipped AAD bit fails to verify",
                 v->name);

        rc = zeq_envelope_open_init(ctx, b.key, b.iv, b.tag, NULL, 0);
        if (rc == ZEQ_OK)
            rc = stream_updates(ctx, 0, b.ct, b.ctlen, out, 0);
        if (rc == ZEQ_OK)
            rc = zeq_envelope_open_final(ctx);
        unit_int(rc, ZEQ_ERR_AUTH, "%s: opening without the AAD fails",
                 v->name);
        free(bad);
    }

    free(out);
    free(env);
    gcm_unload(&b);
}

/* ------------------------------------------------------------------ */
/* Protocol v1 vectors of docs/PROTOCOL.md (computed with Perl CryptX by
 * t/unit/vectors.pl, cross-checked with Python). */
static const char proto_secret[] = "zeq-e2e test secret";
static const char proto_key_hex[] =
    "54384ae6ed175fd538bf0025ca7255e8e799b250ecf6770759cb491d6c403e1f";

struct proto_vector {
    const char *name, *iv, *pt, *env;
};

static const struct proto_vector proto_vectors[] = {
    { "PROTOCOL.md envelope 1",
      "000102030405060708090a0b",
      "7b2268656c6c6f223a22776f726c64227d", /* {"hello":"world"} */
      "000102030405060708090a0b8212c82f0742a17e1b84840d9811b1a128190944"
      "410569174dd66a11898276691d" },
    { "PROTOCOL.md envelope 2",
      "0f0e0d0c0b0a090807060504",
      "",
      "0f0e0d0c0b0a090807060504fb77c331d3543dc2947c7d9570b519ca" },
    { "PROTOCOL.md envelope 3",
      "a0a1a2a3a4a5a6a7a8a9aaab",
      "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
      "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
      "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f"
      "60616263",
      "a0a1a2a3a4a5a6a7a8a9aaab019c6ad5b5811458f46e9f0c3b7a9940a2dcb4db"
      "477aeeaf82179db5d9784c012c7cc82cdb97bc9a14052fe6a55e14487c1a9183"
      "ea4e601afa795f26050c7ac5ad0fa4524503f021c66e0d60244924c6e6c2951a"
      "ac4d1987897d83be44ee25f17f509496d3ca3f0bb847bb341269d9981ebbfb50" },
    { "PROTOCOL.md example response",
      "101112131415161718191a1b",
      "7b226f6b223a747275657d", /* {"ok":true} */
      "101112131415161718191a1b65f11b3eedd0b80fe90e2d966fb837cd752b06aa"
      "0c9fda6872c52a" },
};

static void test_protocol_vectors(unsigned char key_out[ZEQ_KEY_LEN])
{
    unsigned char cn[ZEQ_KEX_NONCE_LEN], sn[ZEQ_KEX_NONCE_LEN], salt[64];
    unsigned char key[ZEQ_KEY_LEN], key2[ZEQ_KEY_LEN], *expkey;
    zeq_keys keys;
    size_t explen, i;
    int rc;

    for (i = 0; i < ZEQ_KEX_NONCE_LEN; i++) {
        cn[i] = (unsigned char)i;
        sn[i] = (unsigned char)(0x20 + i);
    }
    expkey = unit_unhex(proto_key_hex, &explen);

    memset(&keys, 0, sizeof keys);
    rc = zeq_kex_v1((const unsigned char *)proto_secret,
                    strlen(proto_secret), cn, sn, &keys);
    unit_int(rc, ZEQ_OK, "PROTOCOL.md key: zeq_kex_v1 succeeds");
    unit_int(keys.version, 1, "PROTOCOL.md key: version 1 keys");
    unit_mem(keys.c2s, sizeof keys.c2s, expkey, explen,
             "PROTOCOL.md key: zeq_kex_v1, client to server");
    unit_mem(keys.s2c, sizeof keys.s2c, expkey, explen,
             "PROTOCOL.md key: zeq_kex_v1, the same key server to client");
    memcpy(key, keys.c2s, sizeof key);

    memcpy(salt, cn, 32);
    memcpy(salt + 32, sn, 32);
    memset(key2, 0, sizeof key2);
    rc = zeq_kex_pbkdf2_sha256((const unsigned char *)proto_secret,
                               strlen(proto_secret), salt, sizeof salt,
                               ZEQ_KEX_V1_ITERATIONS, key2, sizeof key2);
    unit_int(rc, ZEQ_OK, "PROTOCOL.md key: pbkdf2 succeeds");
    unit_mem(key2, sizeof key2, expkey, explen,
             "PROTOCOL.md key: pbkdf2(secret, clientNonce || serverNonce, "
             "100000, 32)");

    /* The nonces' order matters: serverNonce || clientNonce is another key. */
    rc = zeq_kex_v1((const unsigned char *)proto_secret,
                    strlen(proto_secret), sn, cn, &keys);
    unit_ok(rc == ZEQ_OK && memcmp(keys.c2s, expkey, sizeof keys.c2s) != 0,
            "PROTOCOL.md key: swapping the nonces gives another key");

    for (i = 0; i < sizeof proto_vectors / sizeof *proto_vectors; i++) {
        const struct proto_vector *v = &proto_vectors[i];
        size_t ivlen, ptlen, envlen, outlen;
        unsigned char *iv = unit_unhex(v->iv, &ivlen);
        unsigned char *pt = unit_unhex(v->pt, &ptlen);
        unsigned char *env = unit_unhex(v->env, &envlen);
        unsigned char *out = malloc(envlen + 1);

        if (!out)
            abort();
        rc = zeq_envelope_seal(expkey, iv, pt, ptlen, out);
        unit_int(rc, ZEQ_OK, "%s: seal succeeds", v->name);
        unit_mem(out, ptlen + ZEQ_ENVELOPE_OVERHEAD, env, envlen,
                 "%s: seal with the fixed iv gives the documented envelope",
                 v->name);

        outlen = (size_t)-1;
        memset(out, 0xaa, envlen + 1);
        rc = zeq_envelope_open(expkey, env, envlen, out, &outlen);
        unit_int(rc, ZEQ_OK, "%s: open succeeds", v->name);
        unit_mem(out, outlen, pt, ptlen, "%s: open gives the plaintext",
                 v->name);
        free(iv); free(pt); free(env); free(out);
    }

    memcpy(key_out, expkey, ZEQ_KEY_LEN);
    free(expkey);
}

/* ------------------------------------------------------------------ */
/* Tampering and short envelopes. */
static void test_tamper(const unsigned char key[ZEQ_KEY_LEN],
                        zeq_envelope_ctx *ctx)
{
    static const struct { size_t at; const char *what; } flips[] = {
        { 0, "iv, first byte" },
        { 11, "iv, last byte" },
        { 12, "tag, first byte" },
        { 27, "tag, last byte" },
        { 28, "ciphertext, first byte" },
        { 44, "ciphertext, last byte" },
    };
    size_t envlen, outlen, i;
    unsigned char *env = unit_unhex(proto_vectors[0].env, &envlen);
    unsigned char out[64], other[ZEQ_KEY_LEN];
    int rc;

    for (i = 0; i < sizeof flips / sizeof *flips; i++) {
        unsigned char *t = unit_dup(env, envlen);
        t[flips[i].at] ^= 0x80;
        outlen = 0;
        rc = zeq_envelope_open(key, t, envlen, out, &outlen);
        unit_int(rc, ZEQ_ERR_AUTH, "tamper: flipped bit in %s -> ZEQ_ERR_AUTH",
                 flips[i].what);
        free(t);
    }

    {   /* a flipped low bit in the middle of the ciphertext */
        unsigned char *t = unit_dup(env, envlen);
        t[35] ^= 0x01;
        rc = zeq_envelope_open(key, t, envlen, out, &outlen);
        unit_int(rc, ZEQ_ERR_AUTH,
                 "tamper: flipped low bit in ciphertext byte 7 -> ZEQ_ERR_AUTH");
        free(t);
    }

    rc = zeq_envelope_open(key, env, envlen - 1, out, &outlen);
    unit_int(rc, ZEQ_ERR_AUTH, "tamper: last ciphertext byte cut -> ZEQ_ERR_AUTH");

    {
        unsigned char *t = malloc(envlen + 1);
        if (!t)
            abort();
        memcpy(t, env, envlen);
        t[envlen] = 0;
        rc = zeq_envelope_open(key, t, envlen + 1, out, &outlen);
        unit_int(rc, ZEQ_ERR_AUTH,
                 "tamper: one byte appended -> ZEQ_ERR_AUTH");
        free(t);
    }

    memcpy(other, key, sizeof other);
    other[31] ^= 0x01;
    rc = zeq_envelope_open(other, env, envlen, out, &outlen);
    unit_int(rc, ZEQ_ERR_AUTH, "tamper: another key -> ZEQ_ERR_AUTH");

    /* streaming open with a flipped tag bit fails at final */
    {
        unsigned char tag[ZEQ_ENVELOPE_TAG_LEN];
        memcpy(tag, env + ZEQ_ENVELOPE_IV_LEN, sizeof tag);
        tag[5] ^= 0x10;
        rc = zeq_envelope_open_init(ctx, key, env, tag, NULL, 0);
        if (rc == ZEQ_OK)
            rc = zeq_envelope_open_update(ctx, env + ZEQ_ENVELOPE_OVERHEAD,
                                          envlen - ZEQ_ENVELOPE_OVERHEAD, out);
        if (rc == ZEQ_OK)
            rc = zeq_envelope_open_final(ctx);
        unit_int(rc, ZEQ_ERR_AUTH,
                 "tamper: streaming open with a flipped tag bit -> "
                 "ZEQ_ERR_AUTH at final");
    }

    /* the tag of the empty envelope (envelope 2) is all it has */
    {
        size_t e2len;
        unsigned char *e2 = unit_unhex(proto_vectors[1].env, &e2len);
        e2[20] ^= 0x04;
        rc = zeq_envelope_open(key, e2, e2len, out, &outlen);
        unit_int(rc, ZEQ_ERR_AUTH,
                 "tamper: 28-byte envelope with a flipped tag bit -> "
                 "ZEQ_ERR_AUTH");
        free(e2);
    }

    /* the same context opens a good envelope after a failure */
    rc = zeq_envelope_open_init(ctx, key, env, env + ZEQ_ENVELOPE_IV_LEN,
                                NULL, 0);
    if (rc == ZEQ_OK)
        rc = zeq_envelope_open_update(ctx, env + ZEQ_ENVELOPE_OVERHEAD,
                                      envlen - ZEQ_ENVELOPE_OVERHEAD, out);
    if (rc == ZEQ_OK)
        rc = zeq_envelope_open_final(ctx);
    unit_int(rc, ZEQ_OK, "context reused after a failed open verifies a good "
                         "envelope");

    /* short envelopes: 0..27 bytes */
    for (i = 0; i < ZEQ_ENVELOPE_OVERHEAD; i++) {
        unsigned char *t = unit_dup(env, i);
        rc = zeq_envelope_open(key, t, i, out, &outlen);
        unit_int(rc, ZEQ_ERR_SHORT, "short envelope of %zu bytes -> "
                                    "ZEQ_ERR_SHORT", i);
        free(t);
    }
    free(env);
}

/* ------------------------------------------------------------------ */
/* Round trips, compared with a reference AES-256-GCM computed here
 * directly with libcrypto's EVP interface. */
static int ref_seal(const unsigned char *key, const unsigned char *iv,
                    const unsigned char *pt, size_t len, unsigned char *env)
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int n = 0, ok;
    size_t off = 0;

    ok = c && EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1
         && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, 12, NULL) == 1
         && EVP_EncryptInit_ex(c, NULL, NULL, key, iv) == 1;
    while (ok && off < len) {
        size_t chunk = len - off > 65536 ? 65536 : len - off;
        ok = EVP_EncryptUpdate(c, env + 28 + off, &n, pt + off,
                               (int)chunk) == 1 && (size_t)n == chunk;
        off += chunk;
    }
    ok = ok && EVP_EncryptFinal_ex(c, env + 28 + len, &n) == 1
         && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, env + 12) == 1;
    memcpy(env, iv, 12);
    EVP_CIPHER_CTX_free(c);
    return ok;
}

static void test_round_trips(zeq_envelope_ctx *ctx)
{
    static const size_t sizes[] = { 0, 1, 15, 16, 17, 4096, 1024 * 1024 };
    unsigned char key[ZEQ_KEY_LEN], iv[ZEQ_ENVELOPE_IV_LEN];
    size_t i;

    for (i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        size_t len = sizes[i], envlen = len + ZEQ_ENVELOPE_OVERHEAD, outlen;
        unsigned char *pt = malloc(len + 1), *env = malloc(envlen),
                      *ref = malloc(envlen), *out = malloc(len + 1),
                      tag[ZEQ_ENVELOPE_TAG_LEN];
        int rc, refok;

        if (!pt || !env || !ref || !out)
            abort();
        unit_fill(key, sizeof key, 0x1000u + (unsigned)i);
        unit_fill(iv, sizeof iv, 0x2000u + (unsigned)i);
        unit_fill(pt, len, 0x3000u + (unsigned)i);
        refok = ref_seal(key, iv, pt, len, ref);
        if (!refok) {
            fprintf(stderr, "reference AES-256-GCM failed\n");
            abort();
        }

        rc = zeq_envelope_seal(key, iv, pt, len, env);
        unit_int(rc, ZEQ_OK, "round trip %zu bytes: one-shot seal", len);
        unit_mem(env, envlen, ref, envlen,
                 "round trip %zu bytes: envelope equals reference "
                 "AES-256-GCM iv || tag || ciphertext", len);

        memset(out, 0xaa, len + 1);
        outlen = (size_t)-1;
        rc = zeq_envelope_open(key, env, envlen, out, &outlen);
        unit_int(rc, ZEQ_OK, "round trip %zu bytes: one-shot open", len);
        unit_mem(out, outlen, pt, len, "round trip %zu bytes: plaintext back",
                 len);
        unit_int(out[len], 0xaa,
                 "round trip %zu bytes: open writes no byte past the plaintext",
                 len);

        /* streaming, in chunks, compared with the one-shot envelope */
        memset(out, 0, len + 1);
        rc = zeq_envelope_seal_init(ctx, key, iv, NULL, 0);
        if (rc == ZEQ_OK)
            rc = stream_updates(ctx, 1, pt, len, out, len < 100000);
        if (rc == ZEQ_OK)
            rc = zeq_envelope_seal_final(ctx, tag);
        unit_int(rc, ZEQ_OK, "round trip %zu bytes: streaming seal", len);
        unit_ok(memcmp(out, ref + ZEQ_ENVELOPE_OVERHEAD, len) == 0
                    && memcmp(tag, ref + ZEQ_ENVELOPE_IV_LEN, sizeof tag) == 0,
                "round trip %zu bytes: streaming seal equals one-shot", len);

        /* streaming open, in place */
        memcpy(out, env + ZEQ_ENVELOPE_OVERHEAD, len);
        rc = zeq_envelope_open_init(ctx, key, env, env + ZEQ_ENVELOPE_IV_LEN,
                                    NULL, 0);
        if (rc == ZEQ_OK)
            rc = stream_updates(ctx, 0, out, len, out, 1);
        if (rc == ZEQ_OK)
            rc = zeq_envelope_open_final(ctx);
        unit_int(rc, ZEQ_OK, "round trip %zu bytes: streaming open in place",
                 len);
        unit_mem(out, len, pt, len,
                 "round trip %zu bytes: streaming plaintext back", len);

        free(pt); free(env); free(ref); free(out);
    }
}

/* ------------------------------------------------------------------ */
/* PBKDF2-HMAC-SHA256 published vectors. */
struct kdf_vector {
    const char *source;
    const char *pass; size_t passlen;
    const char *salt; size_t saltlen;
    unsigned iter;
    const char *dk;
};

#define S(x) x, sizeof(x) - 1
static const struct kdf_vector kdf_vectors[] = {
    /* RFC 7914 (scrypt), section 11: PBKDF2-HMAC-SHA256 test vectors. */
    { "RFC 7914 sec. 11 passwd/salt c=1 dkLen=64",
      S("passwd"), S("salt"), 1,
      "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
      "49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783" },
    { "RFC 7914 sec. 11 Password/NaCl c=80000 dkLen=64",
      S("Password"), S("NaCl"), 80000,
      "4ddcd8f60b98be21830cee5ef22701f9641a4418d04c0414aeff08876b34ab56"
      "a1d425a1225833549adb841b51c9b3176a272bdebba1d078478f62b397f33c8d" },
    /* RFC 6070's inputs run with HMAC-SHA256 instead of HMAC-SHA1, as
     * widely published: Stack Overflow question 5130513 ("PBKDF2-HMAC-SHA2
     * test vectors") and CPython's Lib/test/test_hashlib.py
     * (KDFTests.pbkdf2_results["sha256"]). */
    { "RFC 6070 inputs, SHA-256: password/salt c=1 dkLen=32",
      S("password"), S("salt"), 1,
      "120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b" },
    { "RFC 6070 inputs, SHA-256: password/salt c=2 dkLen=32",
      S("password"), S("salt"), 2,
      "ae4d0c95af6b46d32d0adff928f06dd02a303f8ef3c251dfd6e2d85a95474c43" },
    { "RFC 6070 inputs, SHA-256: password/salt c=4096 dkLen=32",
      S("password"), S("salt"), 4096,
      "c5e478d59288c841aa530db6845c4c8d962893a001ce4e11a4963873aa98134a" },
    { "RFC 6070 inputs, SHA-256: passwordPASSWORDpassword c=4096 dkLen=40",
      S("passwordPASSWORDpassword"),
      S("saltSALTsaltSALTsaltSALTsaltSALTsalt"), 4096,
      "348c89dbcbd32b2f32d814b8116e84cf2b17347ebc1800181c4e2a1fb8dd53e1"
      "c635518c7dac47e9" },
    { "RFC 6070 inputs, SHA-256: pass\\0word/sa\\0lt c=4096 dkLen=16",
      S("pass\0word"), S("sa\0lt"), 4096,
      "89b69d0516f829893c696226650a8687" },
};
#undef S

static void test_pbkdf2(void)
{
    size_t i;

    for (i = 0; i < sizeof kdf_vectors / sizeof *kdf_vectors; i++) {
        const struct kdf_vector *v = &kdf_vectors[i];
        size_t dklen;
        unsigned char *dk = unit_unhex(v->dk, &dklen);
        unsigned char out[64];
        int rc;

        memset(out, 0, sizeof out);
        rc = zeq_kex_pbkdf2_sha256((const unsigned char *)v->pass, v->passlen,
                                   (const unsigned char *)v->salt, v->saltlen,
                                   v->iter, out, dklen);
        unit_int(rc, ZEQ_OK, "PBKDF2-HMAC-SHA256 %s: succeeds", v->source);
        unit_mem(out, dklen, dk, dklen, "PBKDF2-HMAC-SHA256 %s", v->source);
        free(dk);
    }
}

/* FIPS 180-2 appendix B: "abc", the two-block message, and the empty one. */
static void test_sha256(void)
{
    static const struct { const char *msg, *md; } v[] = {
        { "abc",
          "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" },
        { "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
          "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1" },
        { "",
          "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" },
    };
    size_t i, mdlen;

    for (i = 0; i < sizeof v / sizeof *v; i++) {
        unsigned char out[32], *md = unit_unhex(v[i].md, &mdlen);
        unit_int(zeq_envelope_sha256(v[i].msg, strlen(v[i].msg), out), ZEQ_OK,
                 "SHA-256 of %zu bytes: succeeds", strlen(v[i].msg));
        unit_mem(out, 32, md, mdlen, "SHA-256 of \"%s\" (FIPS 180-2)", v[i].msg);
        free(md);
    }
}

int main(void)
{
    zeq_envelope_ctx *ctx = zeq_envelope_ctx_new();
    unsigned char key[ZEQ_KEY_LEN];
    size_t i;

    if (!unit_ok(ctx != NULL, "zeq_envelope_ctx_new returns a context"))
        return unit_done();

    /* one context reused for every vector, as the module reuses it */
    for (i = 0; i < sizeof gcm_vectors / sizeof *gcm_vectors; i++)
        test_gcm_vector(ctx, &gcm_vectors[i]);
    test_pbkdf2();
    test_sha256();
    test_protocol_vectors(key);
    test_tamper(key, ctx);
    test_round_trips(ctx);

    zeq_envelope_ctx_free(ctx);
    zeq_envelope_ctx_free(NULL); /* documented as accepted */
    return unit_done();
}
