/* Unit tests of protocol v2's pure parts: the key exchange (NIST CAVP ECC
 * CDH P-256, PROTOCOL.md's v2 vectors computed with Perl CryptX by
 * t/unit/vectors_v2.pl; RFC 5869's HKDF vectors are in test_hkdf.c),
 * sealed messages (the vectors, every way a reader can be fed, every way a
 * message can be damaged), the AAD builder, the replay window, and the v2
 * parsers of zeq_proto. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "zeq_kex.h"
#include "zeq_proto.h"
#include "zeq_record.h"
#include "zeq_replay.h"
#include "zeq_seal.h"
#include "unit.h"

/* --- PROTOCOL.md section 18.9 (t/unit/vectors_v2.pl) ----------------------- */

static const char v_client_d[] =
    "c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1";
static const char v_server_d[] =
    "5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e";
static const char v_client_point[] =
    "04991498c2ef7f1ca5fd7f1d2ee033dc0aed84745da9b5ebb60a7d854307ebf996"
    "4a48ccf94fa5f206b0550e62aad49e4a0ec26dcb562201c4dd8bec6d11d39f44";
static const char v_client_b64[] =
    "BJkUmMLvfxyl_X8dLuAz3ArthHRdqbXrtgp9hUMH6_mWSkjM-U-l8gawVQ5iqtSeSg7Cb"
    "ctWIgHE3YvsbRHTn0Q";
static const char v_server_point[] =
    "04ae2f585e24b77570e31c91082e3c73f4035f1fe4b297444b1a1b94699668e90f"
    "3622840fa69e725d3a2be6168a6779ae834b3cf92f866370f0753060418801ad";
static const char v_z[] =
    "8d5826830f6a7065b5d26f5bf75f492425ca4de6a4bda1a5c9fc18df2cfb2d8f";
static const char v_c2s[] =
    "591ba64c8dce53bf8b51b963a2c7efb93c64a5ec8d726870122736957d1facf2";
static const char v_s2c[] =
    "439942400a9f29f77411a439afe825d98776a4f1e45c8317490d279a4bf4b2fd";
static const char v_psk[] =
    "1f57fc1a6c3672125176d4e1202381c1eebae5ebd5db476b22d16a1af35bcb10";
static const char v_c2s_psk[] =
    "9e77f19ceaa93be214282541e92b90a8448014c9993373e15026329f6d06b905";
static const char v_s2c_psk[] =
    "ba3429cfbac35351fd92cd18582b027b4e424908f5faa37ca0f618c1ea3a8ce6";
static const char v_transcript_sha[] =
    "bb41b2f18457f7a34110873adb1e1dce0b6435f911c86a3fc92f9fe7f8ea56c2";
static const char v_sid[] = "4OHi4-Tl5ufo6err7O3u7_Dx8vP09fb3-Pn6-_z9_v8";
static const char v_secret[] = "zeq-e2e test secret";

static const char v_req_aad[] =
    "7a65712d6532652f32207265717565737400344f4869342d546c3575666f366572"
    "72374f3375375f447838765030396662332d506e362d5f7a395f7638003000504f"
    "5354002f6367692d62696e2f6563686f3f783d31006170706c69636174696f6e2f"
    "6a736f6e";
static const char v_req_sealed[] =
    "02000102030405060708090a0b80000011f6a495d4db02ba63b3d57647be7d8ae3"
    "d25866d005eb7fc0fa34a4aa0a8683fa4f";
static const char v_get_aad[] =
    "7a65712d6532652f32207265717565737400344f4869342d546c3575666f366572"
    "72374f3375375f447838765030396662332d506e362d5f7a395f76380031004745"
    "54002f6170692f6974656d733f706167653d3200";
static const char v_get_seal_b64[] = "AqChoqOkpaanqKmqq4AAAACoFZZ-1DPQg4gFB41pILLF";
static const char v_res_aad[] =
    "7a65712d6532652f3220726573706f6e736500344f4869342d546c3575666f3665"
    "7272374f3375375f447838765030396662332d506e362d5f7a395f763800300032"
    "3030006170706c69636174696f6e2f6a736f6e00";
static const char v_res_sealed[] =
    "02101112131415161718191a1b8000000b1dfb60cdc5d7116bef1f72bb73dede1d"
    "6a4b4087452f7cbe4e4fa1";
static const char v_big_sha[] =
    "97efb463981350146c5efb934a1baf5641c9073cc289ee5e0b4b3a4b021f8a0b";
static const char v_big_sealed_sha[] =
    "61bd5e1f97ee5098df1780845cedafb8b33b9451386ee99ab624b3b02732f174";
static const char v_ws_aad[] =
    "7a65712d6532652f3220777300344f4869342d546c3575666f36657272374f3375"
    "375f447838765030396662332d506e362d5f7a395f76380032006332730030";
static const char v_ws_sealed[] =
    "02a0a1a2a3a4a5a6a7a8a9aaab80000006c07ada0ba9cd2b41e1a298927349449f"
    "4503b287aed3";

static void sha256(const unsigned char *p, size_t n, unsigned char out[32])
{
    unsigned int len = 0;

    EVP_Digest(p, n, out, &len, EVP_sha256(), NULL);
}

static void check_sha(const unsigned char *p, size_t n, const char *hex,
                      const char *what)
{
    unsigned char d[32], *want;
    size_t wl;

    sha256(p, n, d);
    want = unit_unhex(hex, &wl);
    unit_mem(d, sizeof d, want, wl, "%s: SHA-256", what);
    free(want);
}

static void nonces(unsigned char cn[32], unsigned char sn[32])
{
    int i;

    for (i = 0; i < 32; i++) {
        cn[i] = (unsigned char)i;
        sn[i] = (unsigned char)(0x20 + i);
    }
}

/* The 40000 bytes of the big vector: SHA-256("v2 big" || uint32(offset))
 * blocks. */
static unsigned char *big_body(void)
{
    unsigned char *b = malloc(40000 + 32), in[10];
    size_t n = 0;

    memcpy(in, "v2 big", 6);
    while (n < 40000) {
        in[6] = (unsigned char)(n >> 24);
        in[7] = (unsigned char)(n >> 16);
        in[8] = (unsigned char)(n >> 8);
        in[9] = (unsigned char)n;
        sha256(in, sizeof in, b + n);
        n += 32;
    }
    return b;
}

/* --- the key exchange --------------------------------------------------- */

static void test_cavp(void)
{
    static const char *const v[][4] = {
        {"700c48f77f56584c5cc632ca65640db91b6bacce3a4df6b42ce7cc838833d287",
         "db71e509e3fd9b060ddb20ba5c51dcc5948d46fbf640dfe0441782cab85fa4ac",
         "7d7dc5f71eb29ddaf80d6214632eeae03d9058af1fb6d22ed80badb62bc1a534",
         "46fc62106420ff012e54a434fbdd2d25ccc5852060561e68040dd7778997bd7b"},
        {"809f04289c64348c01515eb03d5ce7ac1a8cb9498f5caa50197e58d43a86a7ae",
         "b29d84e811197f25eba8f5194092cb6ff440e26d4421011372461f579271cda3",
         "38f65d6dce47676044d58ce5139582d568f64bb16098d179dbab07741dd5caf5",
         "057d636096cb80b67a8c038c890e887d1adfa4195e9b3ce241c8a778c59cda67"},
    };
    size_t i;

    for (i = 0; i < sizeof v / sizeof *v; i++) {
        char hex[140];
        unsigned char *peer, *d, *z, got[32];
        size_t pl, dl, zl;
        zeq_kex_pair *pair;

        snprintf(hex, sizeof hex, "04%s%s", v[i][0], v[i][1]);
        peer = unit_unhex(hex, &pl);
        d = unit_unhex(v[i][2], &dl);
        z = unit_unhex(v[i][3], &zl);
        pair = zeq_kex_pair_from_private(d);
        unit_ok(pair != NULL, "CAVP P-256 %zu: the private key imports", i);
        unit_bool(zeq_kex_point_valid(peer), 1, "CAVP P-256 %zu: QCAVS is valid", i);
        memset(got, 0, sizeof got);
        unit_int(pair ? zeq_kex_ecdh(pair, peer, got) : -99, ZEQ_OK,
                 "CAVP P-256 %zu: ECDH succeeds", i);
        unit_mem(got, sizeof got, z, zl, "CAVP P-256 %zu: ZIUT", i);
        zeq_kex_pair_free(pair);
        free(peer);
        free(d);
        free(z);
    }
}

static void test_v2_keys(void)
{
    unsigned char *cd = unit_unhex(v_client_d, &(size_t){0});
    unsigned char *sd = unit_unhex(v_server_d, &(size_t){0});
    unsigned char cpub[65], spub[65], z[32], psk[32], cn[32], sn[32];
    unsigned char *want, *tr;
    size_t wl, tl;
    zeq_kex_pair *client = zeq_kex_pair_from_private(cd);
    zeq_kex_pair *server = zeq_kex_pair_from_private(sd);
    zeq_keys keys, keys2;

    nonces(cn, sn);
    unit_ok(client != NULL && server != NULL, "v2 vectors: fixed key pairs import");
    if (client == NULL || server == NULL) {
        return;
    }
    zeq_kex_pair_public(client, cpub);
    zeq_kex_pair_public(server, spub);
    want = unit_unhex(v_client_point, &wl);
    unit_mem(cpub, sizeof cpub, want, wl, "v2 vectors: clientKey point");
    free(want);
    want = unit_unhex(v_server_point, &wl);
    unit_mem(spub, sizeof spub, want, wl, "v2 vectors: serverKey point");
    free(want);
    {
        char b64[100];
        zeq_proto_b64url_encode(cpub, sizeof cpub, b64);
        unit_str(b64, v_client_b64, "v2 vectors: clientKey in base64url");
    }
    unit_int(zeq_kex_ecdh(server, cpub, z), ZEQ_OK, "v2 vectors: the server's ECDH");
    want = unit_unhex(v_z, &wl);
    unit_mem(z, sizeof z, want, wl, "v2 vectors: Z (server side)");
    unit_int(zeq_kex_ecdh(client, spub, z), ZEQ_OK, "v2 vectors: the client's ECDH");
    unit_mem(z, sizeof z, want, wl, "v2 vectors: Z (client side), the same");
    free(want);

    unit_int(zeq_kex_v2(server, cpub, NULL, cn, sn, &keys), ZEQ_OK,
             "v2 vectors: keys without PSK");
    unit_int(keys.version, 2, "v2 vectors: version 2 keys");
    want = unit_unhex(v_c2s, &wl);
    unit_mem(keys.c2s, 32, want, wl, "v2 vectors: k_c2s");
    free(want);
    want = unit_unhex(v_s2c, &wl);
    unit_mem(keys.s2c, 32, want, wl, "v2 vectors: k_s2c");
    free(want);
    unit_ok(memcmp(keys.c2s, keys.s2c, 32) != 0, "v2: a key per direction");
    unit_int(zeq_kex_v2(server, cpub, NULL, sn, cn, &keys2), ZEQ_OK,
             "v2: the nonces swapped");
    unit_ok(memcmp(keys.c2s, keys2.c2s, 32) != 0, "v2: the nonces' order matters");

    unit_int(zeq_kex_psk((const unsigned char *)v_secret, strlen(v_secret), psk),
             ZEQ_OK, "v2 vectors: PSK of the secret");
    want = unit_unhex(v_psk, &wl);
    unit_mem(psk, 32, want, wl, "v2 vectors: PSK = PBKDF2(secret, \"zeq-e2e/2 psk\")");
    free(want);
    unit_int(zeq_kex_v2(server, cpub, psk, cn, sn, &keys), ZEQ_OK,
             "v2 vectors: keys in PSK mode");
    want = unit_unhex(v_c2s_psk, &wl);
    unit_mem(keys.c2s, 32, want, wl, "v2 vectors: k_c2s (PSK mode)");
    free(want);
    want = unit_unhex(v_s2c_psk, &wl);
    unit_mem(keys.s2c, 32, want, wl, "v2 vectors: k_s2c (PSK mode)");
    free(want);

    tl = zeq_kex_transcript_len(strlen(v_sid));
    tr = malloc(tl);
    unit_int((long long)zeq_kex_transcript(tr, cn, sn, cpub, spub, v_sid,
                                           strlen(v_sid)),
             257, "v2 vectors: transcript length");
    unit_int((long long)tl, 257, "v2: transcript_len");
    check_sha(tr, 257, v_transcript_sha, "v2 vectors: transcript");
    free(tr);

    /* Points that are not P-256 points */
    {
        unsigned char bad[65];
        memcpy(bad, cpub, 65);
        bad[64] ^= 1;
        unit_bool(zeq_kex_point_valid(bad), 0, "a point off the curve is refused");
        unit_int(zeq_kex_v2(server, bad, NULL, cn, sn, &keys2), ZEQ_ERR_BAD,
                 "ECDH with a point off the curve: ZEQ_ERR_BAD");
        memcpy(bad, cpub, 65);
        bad[0] = 0x02;
        unit_bool(zeq_kex_point_valid(bad), 0, "a point with prefix 0x02 is refused");
        memset(bad, 0, 65);
        bad[0] = 0x04;
        unit_bool(zeq_kex_point_valid(bad), 0, "(0, 0) is refused");
        memset(bad, 0xff, 65);
        bad[0] = 0x04;
        unit_bool(zeq_kex_point_valid(bad), 0, "coordinates over p are refused");
    }
    {
        unsigned char zero[32], order[32];
        size_t ol;
        unsigned char *n = unit_unhex("ffffffff00000000ffffffffffffffffbce6faada7179e84"
                                      "f3b9cac2fc632551", &ol);
        memset(zero, 0, sizeof zero);
        memcpy(order, n, 32);
        unit_ok(zeq_kex_pair_from_private(zero) == NULL, "private key 0 is refused");
        unit_ok(zeq_kex_pair_from_private(order) == NULL, "private key n is refused");
        free(n);
    }
    {
        zeq_kex_pair *a = zeq_kex_pair_generate(), *b = zeq_kex_pair_generate();
        unsigned char pa[65], pb[65], za[32], zb[32];
        unit_ok(a != NULL && b != NULL, "fresh key pairs");
        if (a != NULL && b != NULL) {
            zeq_kex_pair_public(a, pa);
            zeq_kex_pair_public(b, pb);
            unit_ok(memcmp(pa, pb, 65) != 0, "two fresh key pairs differ");
            unit_ok(zeq_kex_ecdh(a, pb, za) == ZEQ_OK && zeq_kex_ecdh(b, pa, zb) == ZEQ_OK
                    && memcmp(za, zb, 32) == 0, "fresh pairs agree on Z");
        }
        zeq_kex_pair_free(a);
        zeq_kex_pair_free(b);
    }
    zeq_kex_pair_free(client);
    zeq_kex_pair_free(server);
    free(cd);
    free(sd);
}

static void test_signer(void)
{
    /* A P-256 key, and one on another curve. */
    EVP_PKEY *k = EVP_EC_gen("P-256"), *k384 = EVP_EC_gen("P-384");
    BIO *bio = BIO_new(BIO_s_mem());
    char *pem;
    long pl;
    zeq_kex_signer *signer = NULL;
    unsigned char sig[64], id[32], msg[] = "a transcript";
    EVP_MD_CTX *md;
    unsigned char der[72];
    size_t dl;

    PEM_write_bio_PrivateKey(bio, k, NULL, NULL, 0, NULL, NULL);
    pl = BIO_get_mem_data(bio, &pem);
    unit_int(zeq_kex_signer_load(pem, (size_t)pl, &signer), ZEQ_OK,
             "a PEM P-256 private key loads");
    unit_int(zeq_kex_signer_id(signer, id), ZEQ_OK, "its signer id");
    {
        unsigned char *spki = NULL, want[32];
        int n = i2d_PUBKEY(k, &spki);
        sha256(spki, (size_t)n, want);
        unit_mem(id, 32, want, 32, "signer id = SHA-256 of the DER SubjectPublicKeyInfo");
        OPENSSL_free(spki);
    }
    unit_int(zeq_kex_sign(signer, msg, sizeof msg, sig), ZEQ_OK, "signing succeeds");
    /* verify r || s with OpenSSL: back to DER */
    {
        ECDSA_SIG *es = ECDSA_SIG_new();
        unsigned char *p = der;
        ECDSA_SIG_set0(es, BN_bin2bn(sig, 32, NULL), BN_bin2bn(sig + 32, 32, NULL));
        dl = (size_t)i2d_ECDSA_SIG(es, &p);
        ECDSA_SIG_free(es);
        md = EVP_MD_CTX_new();
        unit_int(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, k) == 1
                 && EVP_DigestVerify(md, der, dl, msg, sizeof msg), 1,
                 "the r || s signature verifies (ECDSA P-256 SHA-256)");
        EVP_MD_CTX_free(md);
    }
    zeq_kex_signer_free(signer);
    BIO_free(bio);

    bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(bio, k384, NULL, NULL, 0, NULL, NULL);
    pl = BIO_get_mem_data(bio, &pem);
    unit_int(zeq_kex_signer_load(pem, (size_t)pl, &signer), ZEQ_ERR_VERSION,
             "a P-384 key is refused as not P-256");
    BIO_free(bio);
    unit_int(zeq_kex_signer_load("not pem", 7, &signer), ZEQ_ERR_BAD,
             "text that is not PEM is refused");
    EVP_PKEY_free(k);
    EVP_PKEY_free(k384);
}

/* --- sealed messages ---------------------------------------------------- */

typedef struct {
    unsigned char *buf;
    size_t len, cap;
    size_t calls;
} sink;

static int sink_emit(void *baton, const unsigned char *data, size_t len)
{
    sink *s = baton;

    if (s->len + len > s->cap) {
        s->cap = (s->len + len) * 2 + 16;
        s->buf = realloc(s->buf, s->cap);
    }
    memcpy(s->buf + s->len, data, len);
    s->len += len;
    s->calls++;
    return 0;
}

/* Opens msg fed in pieces of step bytes (0: whole): the final result. */
static int open_steps(int version, const unsigned char *key,
                      const unsigned char *aad, size_t aadlen,
                      const unsigned char *msg, size_t len, size_t step,
                      sink *out)
{
    zeq_record_reader *rd = zeq_record_reader_new(version, key, aad, aadlen,
                                                  ZEQ_RECORD_MAX, sink_emit, out);
    size_t at = 0;
    int rv = ZEQ_OK;

    if (rd == NULL) {
        return -99;
    }
    while (rv == ZEQ_OK && at < len) {
        size_t n = step == 0 || len - at < step ? len - at : step;
        rv = zeq_record_reader_feed(rd, msg + at, n);
        at += n;
    }
    if (rv == ZEQ_OK) {
        rv = zeq_record_reader_finish(rd);
    }
    zeq_record_reader_free(rd);
    return rv;
}

/* zeq_seal_open: the X-E2E-Seal vector of the GET and its misshapes. */
static void test_seal_open(const unsigned char *c2s, const unsigned char *aad,
                           size_t al)
{
    const char *v = v_get_seal_b64;
    size_t vl = strlen(v), pl = 99, n;
    unsigned char base[12], msg[128], other[32];
    char *copy = (char *)unit_dup(v, vl), text[200];

    unit_int(zeq_seal_open(c2s, aad, al, copy, vl, &pl), ZEQ_OK,
             "seal_open: the X-E2E-Seal vector verifies");
    unit_int((long long)pl, 0, "seal_open: ... and holds nothing");
    unit_int(zeq_seal_open(c2s, aad, al, NULL, 0, &pl), ZEQ_ERR_BAD,
             "seal_open: no seal");
    unit_int(zeq_seal_open(c2s, aad, al, "", 0, &pl), ZEQ_ERR_AUTH,
             "seal_open: an empty seal is no message");
    unit_int(zeq_seal_open(c2s, aad, al, "!!!", 3, &pl), ZEQ_ERR_BAD,
             "seal_open: not base64url");
    unit_int(zeq_seal_open(c2s, aad, al, copy, vl - 4, &pl), ZEQ_ERR_AUTH,
             "seal_open: the vector cut by 4 characters (3 bytes)");
    unit_int(zeq_seal_open(c2s, aad, al - 1, copy, vl, &pl), ZEQ_ERR_AUTH,
             "seal_open: another AAD");
    memcpy(other, c2s, 32);
    other[0] ^= 1;
    unit_int(zeq_seal_open(other, aad, al, copy, vl, &pl), ZEQ_ERR_AUTH,
             "seal_open: another key");
    copy[20] = copy[20] == 'A' ? 'B' : 'A';
    unit_int(zeq_seal_open(c2s, aad, al, copy, vl, &pl), ZEQ_ERR_AUTH,
             "seal_open: a character changed");
    /* A message that holds a byte verifies, and says so. */
    memset(base, 7, sizeof base);
    zeq_record_seal_message(c2s, base, aad, al, (const unsigned char *)"x", 1,
                            ZEQ_RECORD_SIZE, msg);
    zeq_proto_b64url_encode(msg, ZEQ_RECORD_EMPTY_LEN + 1, text);
    unit_int(zeq_seal_open(c2s, aad, al, text, strlen(text), &pl), ZEQ_OK,
             "seal_open: a seal that holds a byte verifies");
    unit_int((long long)pl, 1, "seal_open: ... and holds 1 byte");
    /* The longest seal looked at, and one byte more. */
    n = zeq_record_sealed_len(ZEQ_SEAL_MAX_LEN - ZEQ_RECORD_EMPTY_LEN,
                              ZEQ_RECORD_SIZE);
    unit_int((long long)n, ZEQ_SEAL_MAX_LEN, "a %d-byte message fills a seal",
             ZEQ_SEAL_MAX_LEN);
    memset(msg, 'p', sizeof msg);
    zeq_record_seal_message(c2s, base, aad, al, msg, ZEQ_SEAL_MAX_LEN
                            - ZEQ_RECORD_EMPTY_LEN, ZEQ_RECORD_SIZE, msg);
    zeq_proto_b64url_encode(msg, ZEQ_SEAL_MAX_LEN, text);
    unit_int(zeq_seal_open(c2s, aad, al, text, strlen(text), &pl), ZEQ_OK,
             "seal_open: a message of ZEQ_SEAL_MAX_LEN bytes is opened");
    zeq_proto_b64url_encode(msg, ZEQ_SEAL_MAX_LEN + 1, text);
    unit_int(zeq_seal_open(c2s, aad, al, text, strlen(text), &pl), ZEQ_ERR_BAD,
             "seal_open: one byte more is not looked at");
    free(copy);
}

static void test_vectors_messages(void)
{
    size_t kl, al, wl, bl;
    unsigned char *c2s = unit_unhex(v_c2s, &kl), *s2c = unit_unhex(v_s2c, &kl);
    unsigned char *aad = unit_unhex(v_req_aad, &al), *want = unit_unhex(v_req_sealed, &wl);
    unsigned char base[12], out[256], built[256], *big, *bigs;
    zeq_record_field f[5];
    size_t n, step;
    unsigned long long bl2;
    sink s = {0};

    /* the request AAD, built */
    f[0] = (zeq_record_field){v_sid, strlen(v_sid)};
    f[1] = (zeq_record_field){"0", 1};
    f[2] = (zeq_record_field){"POST", 4};
    f[3] = (zeq_record_field){"/cgi-bin/echo?x=1", 17};
    f[4] = (zeq_record_field){"application/json", 16};
    n = zeq_record_aad(built, sizeof built, ZEQ_RECORD_AAD_REQUEST, f, 5);
    unit_mem(built, n, aad, al, "v2 vectors: the request AAD");
    unit_int((long long)zeq_record_aad_len(ZEQ_RECORD_AAD_REQUEST, f, 5), (long long)al,
             "aad_len of the request AAD");
    unit_int((long long)zeq_record_aad(built, al - 1, ZEQ_RECORD_AAD_REQUEST, f, 5), 0,
             "an AAD buffer one byte short: 0");

    for (n = 0; n < 12; n++) {
        base[n] = (unsigned char)n;
    }
    unit_int((long long)zeq_record_sealed_len(17, ZEQ_RECORD_SIZE), (long long)wl,
             "sealed_len(17)");
    unit_int(zeq_record_seal_message(c2s, base, aad, al,
                                     (const unsigned char *)"{\"hello\":\"world\"}", 17,
                                     ZEQ_RECORD_SIZE, out), ZEQ_OK, "sealing the request");
    unit_mem(out, wl, want, wl, "v2 vectors: the sealed request");
    for (step = 0; step <= wl; step++) {
        s.len = 0;
        if (open_steps(2, c2s, aad, al, want, wl, step, &s) != ZEQ_OK
            || s.len != 17 || memcmp(s.buf, "{\"hello\":\"world\"}", 17) != 0) {
            break;
        }
    }
    unit_int((long long)step, (long long)wl + 1,
             "the sealed request opens fed whole and in pieces of 1 to %zu bytes", wl);
    free(aad);
    free(want);

    /* the empty GET seal (X-E2E-Seal) */
    aad = unit_unhex(v_get_aad, &al);
    {
        unsigned char raw[64];
        size_t rl;
        char b64[80];
        unit_int(zeq_proto_b64url_decode(v_get_seal_b64, strlen(v_get_seal_b64), raw,
                                         sizeof raw, &rl), ZEQ_OK, "the X-E2E-Seal vector decodes");
        unit_int((long long)rl, ZEQ_RECORD_EMPTY_LEN, "an empty message is 33 bytes");
        s.len = 0;
        unit_int(open_steps(2, c2s, aad, al, raw, rl, 0, &s), ZEQ_OK,
                 "v2 vectors: the X-E2E-Seal of the GET verifies");
        unit_int((long long)s.len, 0, "... to nothing");
        for (n = 0; n < 12; n++) {
            base[n] = (unsigned char)(0xa0 + n);
        }
        zeq_record_seal_message(c2s, base, aad, al, NULL, 0, ZEQ_RECORD_SIZE, out);
        zeq_proto_b64url_encode(out, ZEQ_RECORD_EMPTY_LEN, b64);
        unit_str(b64, v_get_seal_b64, "v2 vectors: sealing the empty GET message");
        /* the same seal under another target, seq, method */
        aad[al - 3] ^= 1;
        unit_int(open_steps(2, c2s, aad, al, raw, rl, 0, &s), ZEQ_ERR_AUTH,
                 "the GET's seal does not verify for another target");
        aad[al - 3] ^= 1;
        test_seal_open(c2s, aad, al);
    }
    free(aad);

    /* the response */
    aad = unit_unhex(v_res_aad, &al);
    want = unit_unhex(v_res_sealed, &wl);
    for (n = 0; n < 12; n++) {
        base[n] = (unsigned char)(0x10 + n);
    }
    zeq_record_seal_message(s2c, base, aad, al, (const unsigned char *)"{\"ok\":true}", 11,
                            ZEQ_RECORD_SIZE, out);
    unit_mem(out, wl, want, wl, "v2 vectors: the sealed response");
    s.len = 0;
    unit_int(open_steps(2, c2s, aad, al, want, wl, 0, &s), ZEQ_ERR_AUTH,
             "the response does not open under k_c2s (no reflection)");
    free(want);

    /* 40000 bytes in three records */
    big = big_body();
    check_sha(big, 40000, v_big_sha, "v2 vectors: the 40000-byte body");
    bl2 = zeq_record_sealed_len(40000, ZEQ_RECORD_SIZE);
    unit_int((long long)bl2, 40073, "sealed_len(40000) = 13 + 3 * 20 + 40000");
    bigs = malloc((size_t)bl2);
    zeq_record_seal_message(s2c, base, aad, al, big, 40000, ZEQ_RECORD_SIZE, bigs);
    check_sha(bigs, (size_t)bl2, v_big_sealed_sha, "v2 vectors: the 40000 bytes sealed");
    bl = (size_t)bl2;
    {
        static const size_t steps[] = {0, 1, 3, 13, 17, 4096, 16403, 16404, 16405, 40000};
        size_t i;
        for (i = 0; i < sizeof steps / sizeof *steps; i++) {
            s.len = 0;
            s.calls = 0;
            unit_int(open_steps(2, s2c, aad, al, bigs, bl, steps[i], &s), ZEQ_OK,
                     "40000 bytes fed in steps of %zu: open", steps[i]);
            unit_mem(s.buf, s.len, big, 40000, "40000 bytes fed in steps of %zu: the body",
                     steps[i]);
            unit_int((long long)s.calls, 3, "40000 bytes in steps of %zu: three records emitted",
                     steps[i]);
        }
    }
    /* damage: every single-bit flip of the first and last 40 bytes fails */
    {
        size_t i, failed = 0, total = 0;
        for (i = 0; i < bl; i = (i == 40 ? bl - 40 : i + 1)) {
            int b;
            for (b = 0; b < 8; b++) {
                bigs[i] ^= (unsigned char)(1 << b);
                s.len = 0;
                failed += open_steps(2, s2c, aad, al, bigs, bl, 0, &s) != ZEQ_OK;
                total++;
                bigs[i] ^= (unsigned char)(1 << b);
            }
        }
        unit_int((long long)failed, (long long)total,
                 "every bit flipped in the prefix, headers, ciphertext and tags fails");
    }
    /* truncation at every record boundary and inside */
    {
        static const size_t cuts[] = {0, 1, 12, 13, 16, 17, 16416, 16417, 32836, 32837, 40072};
        size_t i;
        for (i = 0; i < sizeof cuts / sizeof *cuts; i++) {
            s.len = 0;
            unit_int(open_steps(2, s2c, aad, al, bigs, cuts[i], 0, &s) == ZEQ_OK, 0,
                     "the message cut after %zu bytes is refused", cuts[i]);
        }
    }
    /* bytes after the final record */
    {
        unsigned char *more = malloc(bl + 1);
        memcpy(more, bigs, bl);
        more[bl] = 0;
        s.len = 0;
        unit_int(open_steps(2, s2c, aad, al, more, bl + 1, 0, &s), ZEQ_ERR_BAD,
                 "one byte after the final record: ZEQ_ERR_BAD");
        free(more);
    }
    /* records swapped */
    {
        unsigned char *sw = malloc(bl);
        memcpy(sw, bigs, bl);
        memcpy(sw + 13, bigs + 13 + 16404, 16404);
        memcpy(sw + 13 + 16404, bigs + 13, 16404);
        s.len = 0;
        unit_int(open_steps(2, s2c, aad, al, sw, bl, 0, &s), ZEQ_ERR_AUTH,
                 "the first two records swapped: ZEQ_ERR_AUTH");
        free(sw);
    }
    free(bigs);
    free(big);
    free(aad);

    /* a WebSocket message */
    aad = unit_unhex(v_ws_aad, &al);
    want = unit_unhex(v_ws_sealed, &wl);
    f[0] = (zeq_record_field){v_sid, strlen(v_sid)};
    f[1] = (zeq_record_field){"2", 1};
    f[2] = (zeq_record_field){"c2s", 3};
    f[3] = (zeq_record_field){"0", 1};
    n = zeq_record_aad(built, sizeof built, ZEQ_RECORD_AAD_WS, f, 4);
    unit_mem(built, n, aad, al, "v2 vectors: the ws AAD");
    for (n = 0; n < 12; n++) {
        base[n] = (unsigned char)(0xa0 + n);
    }
    zeq_record_seal_message(c2s, base, aad, al, (const unsigned char *)"\x01hello", 6,
                            ZEQ_RECORD_SIZE, out);
    unit_mem(out, wl, want, wl, "v2 vectors: the sealed ws message");
    {
        unsigned char pt[64];
        size_t ptl = 0;
        unit_int(zeq_record_open_message(2, c2s, aad, al, want, wl, pt, &ptl), ZEQ_OK,
                 "open_message: the ws message");
        unit_mem(pt, ptl, (const unsigned char *)"\x01hello", 6, "open_message: type || hello");
        built[n - 1] = '1';
        unit_int(zeq_record_open_message(2, c2s, built, n, want, wl, pt, &ptl), ZEQ_ERR_AUTH,
                 "the ws message under counter 1: refused (no reorder)");
    }
    free(aad);
    free(want);
    free(c2s);
    free(s2c);
    free(s.buf);
}

/* Hand-made records: reserved bits, sizes, empty records, v1 through the
 * reader. */
static void test_records_edges(void)
{
    unsigned char key[32], base[12], msg[200], pt[64];
    zeq_record_sealer sl;
    size_t n, ptl;
    sink s = {0};

    memset(key, 7, sizeof key);
    memset(base, 9, sizeof base);
    /* empty records before the final one */
    zeq_record_sealer_init(&sl, key, base, (const unsigned char *)"aad", 3);
    zeq_record_sealer_prefix(&sl, msg);
    n = 13;
    zeq_record_seal(&sl, NULL, 0, 0, msg + n);
    n += 20;
    zeq_record_seal(&sl, (const unsigned char *)"ab", 2, 0, msg + n);
    n += 22;
    zeq_record_seal(&sl, NULL, 0, 0, msg + n);
    n += 20;
    zeq_record_seal(&sl, (const unsigned char *)"c", 1, 1, msg + n);
    n += 21;
    unit_int(zeq_record_seal(&sl, (const unsigned char *)"d", 1, 1, msg + n), ZEQ_ERR_BAD,
             "nothing may be sealed after the final record");
    zeq_record_sealer_free(&sl);
    unit_int(zeq_record_open_message(2, key, (const unsigned char *)"aad", 3, msg, n, pt, &ptl),
             ZEQ_OK, "empty records before the final one are accepted");
    unit_mem(pt, ptl, (const unsigned char *)"abc", 3, "... and the message is abc");
    unit_int(zeq_record_open_message(2, key, (const unsigned char *)"aaD", 3, msg, n, pt, &ptl),
             ZEQ_ERR_AUTH, "another message AAD: ZEQ_ERR_AUTH");
    /* a reserved bit in a header (bits 24 to 30) */
    msg[13] |= 0x40;
    unit_int(zeq_record_open_message(2, key, (const unsigned char *)"aad", 3, msg, n, pt, &ptl),
             ZEQ_ERR_BAD, "a reserved header bit set: ZEQ_ERR_BAD");
    msg[13] &= (unsigned char)~0x40;
    /* not a v2 message */
    msg[0] = 0x01;
    unit_int(zeq_record_open_message(2, key, (const unsigned char *)"aad", 3, msg, n, pt, &ptl),
             ZEQ_ERR_BAD, "a first byte other than 0x02: ZEQ_ERR_BAD");
    msg[0] = 0x02;
    /* a record over the reader's maximum */
    {
        zeq_record_reader *rd = zeq_record_reader_new(2, key, (const unsigned char *)"aad", 3,
                                                      1, sink_emit, &s);
        int rv = zeq_record_reader_feed(rd, msg, n);
        unit_int(rv, ZEQ_ERR_BAD, "a record of 2 bytes with max_record 1: ZEQ_ERR_BAD");
        unit_int(zeq_record_reader_finish(rd), ZEQ_ERR_BAD, "... and the reader stays failed");
        zeq_record_reader_free(rd);
    }
    {
        unsigned char hdr[17] = {0x02};
        hdr[13] = 0x00;
        hdr[14] = 0x10;              /* L = 1048577 */
        hdr[15] = 0x00;
        hdr[16] = 0x01;
        unit_int(zeq_record_open_message(2, key, NULL, 0, hdr, sizeof hdr, pt, &ptl), ZEQ_ERR_BAD,
                 "a record header over 1 MiB: ZEQ_ERR_BAD at once");
    }
    unit_int(zeq_record_seal(&(zeq_record_sealer){0}, pt, 1, 1, msg), ZEQ_ERR_BAD,
             "a sealer that was never set up refuses");
    /* sealed in place: each record's plaintext already at its place */
    {
        unsigned char text[45], whole[13 + 3 * 20 + 45], in_place[sizeof whole];
        size_t i, at = 13;
        for (i = 0; i < sizeof text; i++) {
            text[i] = (unsigned char)(i * 37 + 5);
        }
        unit_int(zeq_record_seal_message(key, base, (const unsigned char *)"aad", 3, text,
                                         sizeof text, 16, whole),
                 ZEQ_OK, "45 bytes in records of 16, sealed from their own buffer");
        zeq_record_sealer_init(&sl, key, base, (const unsigned char *)"aad", 3);
        zeq_record_sealer_prefix(&sl, in_place);
        for (i = 0; i < sizeof text; i += 16) {
            size_t k = sizeof text - i < 16 ? sizeof text - i : 16;
            memcpy(in_place + at + 4, text + i, k);
            unit_int(zeq_record_seal(&sl, in_place + at + 4, k, i + k == sizeof text,
                                     in_place + at),
                     ZEQ_OK, "record %zu sealed in place", i / 16);
            at += 20 + k;
        }
        zeq_record_sealer_free(&sl);
        unit_int((long long)at, (long long)sizeof whole, "... the same length");
        unit_mem(in_place, sizeof in_place, whole, sizeof whole,
                 "... and the same bytes as sealed from another buffer");
    }
    /* v1 through the reader, the v1 vector of PROTOCOL.md */
    {
        size_t kl, el;
        unsigned char *k1 = unit_unhex("54384ae6ed175fd538bf0025ca7255e8e799b250ecf6770759cb491d6c403e1f",
                                       &kl);
        unsigned char *env = unit_unhex("000102030405060708090a0b8212c82f0742a17e1b84840d9811b1a1"
                                        "28190944410569174dd66a11898276691d", &el);
        size_t step;
        for (step = 0; step <= el; step++) {
            s.len = 0;
            if (open_steps(1, k1, NULL, 0, env, el, step, &s) != ZEQ_OK || s.len != 17
                || memcmp(s.buf, "{\"hello\":\"world\"}", 17) != 0) {
                break;
            }
        }
        unit_int((long long)step, (long long)el + 1,
                 "v1 envelope 1 opens through the reader, whole and in pieces");
        env[40] ^= 0x10;
        s.len = 0;
        unit_int(open_steps(1, k1, NULL, 0, env, el, 0, &s), ZEQ_ERR_AUTH,
                 "v1: a flipped bit fails at finish");
        unit_int(open_steps(1, k1, NULL, 0, env, 27, 0, &s), ZEQ_ERR_SHORT,
                 "v1: 27 bytes are too short");
        unit_ok(zeq_record_reader_new(1, k1, (const unsigned char *)"x", 1, 10, NULL, NULL) == NULL,
                "v1 takes no AAD");
        free(k1);
        free(env);
    }
    free(s.buf);
}

/* --- the replay window ---------------------------------------------------- */

static void test_replay(void)
{
    zeq_replay w, w2;
    unsigned char enc[ZEQ_REPLAY_ENCODED_LEN];
    uint64_t i;
    int ok;

    zeq_replay_init(&w);
    unit_int(zeq_replay_accept(&w, 0), ZEQ_OK, "replay: 0 first");
    unit_int(zeq_replay_accept(&w, 0), ZEQ_ERR_REPLAY, "replay: 0 again");
    unit_int(zeq_replay_accept(&w, 1), ZEQ_OK, "replay: 1");
    unit_int(zeq_replay_accept(&w, 5), ZEQ_OK, "replay: 5 (a gap)");
    unit_int(zeq_replay_accept(&w, 3), ZEQ_OK, "replay: 3 out of order, within the window");
    unit_int(zeq_replay_accept(&w, 3), ZEQ_ERR_REPLAY, "replay: 3 again");
    unit_int(zeq_replay_accept(&w, 2), ZEQ_OK, "replay: 2 late");
    unit_int(zeq_replay_accept(&w, 4), ZEQ_OK, "replay: 4 late");
    unit_int(zeq_replay_accept(&w, 5), ZEQ_ERR_REPLAY, "replay: 5 again");
    unit_int(zeq_replay_check(&w, ZEQ_SEQ_MAX + 1), ZEQ_ERR_BAD, "replay: over 2^53 - 1");

    /* every number below the highest within 1023 accepted once */
    zeq_replay_init(&w);
    zeq_replay_accept(&w, 5000);
    ok = 1;
    for (i = 5000 - 1023; i < 5000; i++) {
        ok &= zeq_replay_accept(&w, i) == ZEQ_OK;
    }
    for (i = 5000 - 1023; i <= 5000; i++) {
        ok &= zeq_replay_check(&w, i) == ZEQ_ERR_REPLAY;
    }
    unit_ok(ok, "replay: the 1023 numbers below the highest once each, then never");
    unit_int(zeq_replay_check(&w, 5000 - 1024), ZEQ_ERR_REPLAY,
             "replay: 1024 below the highest: refused (too old)");
    zeq_replay_accept(&w, 100000);
    unit_int(zeq_replay_check(&w, 100000 - 65537), ZEQ_ERR_REPLAY,
             "replay: more than 65536 below the highest: refused");
    unit_int(zeq_replay_check(&w, 100000 - 1023), ZEQ_OK,
             "replay: 1023 below the new highest, never seen: accepted");
    /* shifts of every size keep what they must */
    {
        static const uint64_t jumps[] = {1, 2, 63, 64, 65, 127, 128, 500, 1023, 1024, 1025, 70000};
        size_t j;
        for (j = 0; j < sizeof jumps / sizeof *jumps; j++) {
            uint64_t top = 100000, k;
            int good = 1;
            zeq_replay_init(&w);
            for (k = top - 1023; k <= top; k += 7) {
                zeq_replay_accept(&w, k);
            }
            zeq_replay_accept(&w, top + jumps[j]);
            for (k = top - 1023; k <= top; k++) {
                int seen = (k - (top - 1023)) % 7 == 0;
                int inwin = top + jumps[j] - k < ZEQ_REPLAY_WINDOW;
                int want = (!inwin || seen) ? ZEQ_ERR_REPLAY : ZEQ_OK;
                good &= zeq_replay_check(&w, k) == want;
            }
            good &= zeq_replay_check(&w, top + jumps[j]) == ZEQ_ERR_REPLAY;
            good &= zeq_replay_check(&w, top + jumps[j] + 1) == ZEQ_OK;
            unit_ok(good, "replay: a jump of %llu keeps exactly the numbers in the window",
                    (unsigned long long)jumps[j]);
        }
    }
    /* the encoding round-trips */
    zeq_replay_init(&w);
    for (i = 10; i < 3000; i += 3) {
        zeq_replay_accept(&w, i);
    }
    zeq_replay_encode(&w, enc);
    unit_int(zeq_replay_decode(&w2, enc, sizeof enc), ZEQ_OK, "replay: decode");
    unit_ok(memcmp(&w, &w2, sizeof w) == 0, "replay: encode then decode is the same window");
    unit_int(zeq_replay_decode(&w2, enc, sizeof enc - 1), ZEQ_ERR_BAD, "replay: a short record");
    enc[0] = 9;
    unit_int(zeq_replay_decode(&w2, enc, sizeof enc), ZEQ_ERR_BAD, "replay: an unknown format");
}

/* --- proto --------------------------------------------------------------- */

static int hs(const char *body, zeq_proto_handshake *out)
{
    return zeq_proto_handshake_parse(body, strlen(body), out);
}

/* zeq_proto_opening_params: the query of a v2 WebSocket opening. */
static void opening(const char *query, int want, const char *seq,
                    const char *seal)
{
    size_t n = strlen(query), sqn = 99, sln = 99;
    char *q = (char *)unit_dup(query, n + 1);
    const char *sq = "x", *sl = "x";
    int rv = zeq_proto_opening_params(q, &sq, &sqn, &sl, &sln);

    unit_int(rv, want, "opening_params(\"%s\")", query);
    if (seq == NULL) {
        unit_ok(sq == NULL && sqn == 0, "opening_params(\"%s\"): no e2e_seq", query);
    }
    else {
        unit_mem((const unsigned char *)sq, sq ? sqn : 0, (const unsigned char *)seq,
                 strlen(seq), "opening_params(\"%s\"): e2e_seq", query);
    }
    if (seal == NULL) {
        unit_ok(sl == NULL && sln == 0, "opening_params(\"%s\"): no e2e_seal", query);
    }
    else {
        unit_mem((const unsigned char *)sl, sl ? sln : 0, (const unsigned char *)seal,
                 strlen(seal), "opening_params(\"%s\"): e2e_seal", query);
    }
    free(q);
}

static void test_opening_params(void)
{
    opening("e2e_session=abc&e2e_seq=7&e2e_seal=AQID", ZEQ_OK, "7", "AQID");
    opening("x=1&e2e_seal=AQID&e2e_session=abc&y&e2e_seq=12", ZEQ_OK, "12", "AQID");
    opening("e2e_session=abc", ZEQ_OK, NULL, NULL);
    opening("e2e_session=abc&e2e_seq&e2e_seal=", ZEQ_ERR_BAD, "", "");
    opening("e2e_session=abc&e2e_seq=&e2e_seal=", ZEQ_OK, "", "");
    opening("", ZEQ_ERR_BAD, NULL, NULL);
    opening("e2e_seq=1&e2e_seal=x", ZEQ_ERR_BAD, "1", "x");
    opening("e2e_session=a&e2e_session=b&e2e_seq=1&e2e_seal=x", ZEQ_ERR_BAD, "1", "x");
    opening("e2e_session=a&e2e_seq=1&e2e_seq=2&e2e_seal=x", ZEQ_ERR_BAD, "2", "x");
    opening("e2e_session=a&e2e_seq=1&e2e_seal=x&e2e_seal=y", ZEQ_ERR_BAD, "1", "y");
    /* An escaped spelling is a second appearance, or the only one. */
    opening("e2e_session=a&e2e_seq=1&e2e%5Fseq=2&e2e_seal=x", ZEQ_ERR_BAD, "1", "x");
    opening("e2e_session=a&e2e%5fseq=1&e2e_seal=x", ZEQ_ERR_BAD, NULL, "x");
    opening("e2e%5Fsession=a&e2e_seq=1&e2e_seal=x", ZEQ_ERR_BAD, "1", "x");
    opening("%65%32%65%5f%73%65%61%6c=x&e2e_session=a&e2e_seq=1", ZEQ_ERR_BAD, "1", NULL);
    /* Names are case-sensitive; '+' is not a space. */
    opening("e2e_session=a&E2E_SEQ=1&e2e_seal=x", ZEQ_OK, NULL, "x");
    opening("e2e_session=a&e2e+seq=1&e2e_seq=2&e2e_seal=x", ZEQ_OK, "2", "x");
    opening("&&e2e_session=a&&e2e_seq=3&&e2e_seal=x&&", ZEQ_OK, "3", "x");
    opening("e2e_session=a&e2e_seq=1=2&e2e_seal=x", ZEQ_OK, "1=2", "x");
}

static void test_proto_v2(void)
{
    zeq_proto_handshake h;
    char body[600];
    unsigned long long seq;
    char out[256];
    static const char nonce[] = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    static const char *const three[] = {"e2e_session", "e2e_seq", "e2e_seal", NULL};

    snprintf(body, sizeof body, "{\"version\":2,\"clientNonce\":\"%s\",\"clientKey\":\"%s\"}",
             nonce, v_client_b64);
    unit_int(hs(body, &h), ZEQ_OK, "v2 handshake body");
    unit_int(h.version, 2, "v2 handshake: version 2");
    unit_int(h.psk, 0, "v2 handshake: no psk");
    {
        size_t pl;
        unsigned char *p = unit_unhex(v_client_point, &pl);
        unit_mem(h.client_key, 65, p, pl, "v2 handshake: the client point");
        free(p);
    }
    snprintf(body, sizeof body, "{\"version\":2,\"psk\":true,\"clientNonce\":\"%s\","
             "\"clientKey\":\"%s\"}", nonce, v_client_b64);
    unit_int(hs(body, &h) == ZEQ_OK && h.psk == 1, 1, "v2 handshake with psk: true");
    snprintf(body, sizeof body, "{\"version\":1,\"clientNonce\":\"%s\"}", nonce);
    unit_int(hs(body, &h) == ZEQ_OK && h.version == 1, 1, "\"version\": 1 is v1");
    snprintf(body, sizeof body, "{\"clientNonce\":\"%s\",\"clientKey\":\"x\"}", nonce);
    unit_int(hs(body, &h) == ZEQ_OK && h.version == 1, 1, "no version: v1 (clientKey ignored)");
    snprintf(body, sizeof body, "{\"version\":3,\"clientNonce\":\"%s\"}", nonce);
    unit_int(hs(body, &h), ZEQ_ERR_VERSION, "\"version\": 3: ZEQ_ERR_VERSION");
    snprintf(body, sizeof body, "{\"version\":0,\"clientNonce\":\"%s\"}", nonce);
    unit_int(hs(body, &h), ZEQ_ERR_VERSION, "\"version\": 0: ZEQ_ERR_VERSION");
    snprintf(body, sizeof body, "{\"version\":\"2\",\"clientNonce\":\"%s\"}", nonce);
    unit_int(hs(body, &h), ZEQ_ERR_BAD, "\"version\": \"2\": ZEQ_ERR_BAD");
    snprintf(body, sizeof body, "{\"version\":2.5,\"clientNonce\":\"%s\"}", nonce);
    unit_int(hs(body, &h), ZEQ_ERR_BAD, "\"version\": 2.5: ZEQ_ERR_BAD");
    snprintf(body, sizeof body, "{\"version\":true,\"clientNonce\":\"%s\"}", nonce);
    unit_int(hs(body, &h), ZEQ_ERR_BAD, "\"version\": true: ZEQ_ERR_BAD");
    /* Found by t/fuzz/fuzz_handshake.c: a version beyond long long's range
     * was converted to long long (undefined behaviour). */
    snprintf(body, sizeof body, "{\"version\":0111111111111111111111111111}");
    unit_int(hs(body, &h), ZEQ_ERR_VERSION, "\"version\": 111...1 (28 digits): ZEQ_ERR_VERSION");
    snprintf(body, sizeof body, "{\"version\":-1e300,\"clientNonce\":\"%s\"}", nonce);
    unit_int(hs(body, &h), ZEQ_ERR_VERSION, "\"version\": -1e300: ZEQ_ERR_VERSION");
    snprintf(body, sizeof body, "{\"version\":1e400,\"clientNonce\":\"%s\"}", nonce);
    unit_int(hs(body, &h), ZEQ_ERR_BAD, "\"version\": 1e400 (infinite): ZEQ_ERR_BAD");
    snprintf(body, sizeof body, "{\"version\":9007199254740993,\"clientNonce\":\"%s\"}",
             nonce);
    unit_int(hs(body, &h), ZEQ_ERR_VERSION, "\"version\": 2^53 + 1: ZEQ_ERR_VERSION");
    snprintf(body, sizeof body, "{\"version\":2e0,\"clientNonce\":\"%s\",\"clientKey\":\"%s\"}",
             nonce, v_client_b64);
    unit_int(hs(body, &h) == ZEQ_OK && h.version == 2, 1, "\"version\": 2e0 is 2");
    snprintf(body, sizeof body, "{\"version\":2,\"psk\":1,\"clientNonce\":\"%s\","
             "\"clientKey\":\"%s\"}", nonce, v_client_b64);
    unit_int(hs(body, &h), ZEQ_ERR_BAD, "\"psk\": 1: ZEQ_ERR_BAD");
    snprintf(body, sizeof body, "{\"version\":2,\"clientNonce\":\"%s\"}", nonce);
    unit_int(hs(body, &h), ZEQ_ERR_BAD, "v2 without clientKey: ZEQ_ERR_BAD");
    snprintf(body, sizeof body, "{\"version\":2,\"clientNonce\":\"%s\",\"clientKey\":\"%s=\"}",
             nonce, v_client_b64);
    unit_int(hs(body, &h), ZEQ_ERR_BAD, "v2 clientKey with padding: ZEQ_ERR_BAD");
    snprintf(body, sizeof body, "{\"version\":2,\"clientNonce\":\"%s\",\"clientKey\":\"%.86s\"}",
             nonce, v_client_b64);
    unit_int(hs(body, &h), ZEQ_ERR_BAD, "v2 clientKey one character short: ZEQ_ERR_BAD");
    snprintf(body, sizeof body, "{\"version\":2,\"clientNonce\":\"%s\",\"clientKey\":\"%sAA\"}",
             nonce, v_client_b64);
    unit_int(hs(body, &h), ZEQ_ERR_BAD, "v2 clientKey too long: ZEQ_ERR_BAD");
    snprintf(body, sizeof body, "{\"version\":2,\"clientNonce\":\"%s\",\"clientKey\":7}", nonce);
    unit_int(hs(body, &h), ZEQ_ERR_BAD, "v2 clientKey a number: ZEQ_ERR_BAD");
    snprintf(body, sizeof body, "{\"version\":2,\"clientNonce\":\"%.62s\",\"clientKey\":\"%s\"}",
             nonce, v_client_b64);
    unit_int(hs(body, &h), ZEQ_ERR_BAD, "v2 with a 62-digit nonce: ZEQ_ERR_BAD");
    snprintf(body, sizeof body, "{\"version\":3,\"clientNonce\":7}");
    unit_int(hs(body, &h), ZEQ_ERR_VERSION, "version 3 with a bad nonce: the version decides");
    {
        /* integral values, huge ones too, name a version; duplicates of a
         * member the parser reads are refused, even when equal */
        static const struct { const char *members; int rv; const char *what; } cases[] = {
            {"\"version\":1e300", ZEQ_ERR_VERSION, "\"version\": 1e300 (an integer)"},
            {"\"version\":-1e300", ZEQ_ERR_VERSION, "\"version\": -1e300"},
            {"\"version\":1e400", ZEQ_ERR_BAD, "\"version\": 1e400 (no finite number)"},
            {"\"version\":2.0", ZEQ_OK, "\"version\": 2.0 (the integer 2)"},
            {"\"version\":2,\"version\":1", ZEQ_ERR_BAD, "\"version\" twice"},
            {"\"version\":2,\"version\":2", ZEQ_ERR_BAD, "\"version\" twice, equal"},
            {"\"version\":2,\"psk\":false,\"psk\":true", ZEQ_ERR_BAD, "\"psk\" twice"},
            {"\"version\":2,\"clientKey\":\"x\"", ZEQ_ERR_BAD, "\"clientKey\" twice"},
        };
        size_t k;
        for (k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
            snprintf(body, sizeof body, "{%s,\"clientNonce\":\"%s\",\"clientKey\":\"%s\"}",
                     cases[k].members, nonce, v_client_b64);
            unit_int(hs(body, &h), cases[k].rv, "%s", cases[k].what);
        }
    }

    /* base64url */
    {
        unsigned char o[8];
        size_t n;
        unit_int(zeq_proto_b64url_decode("AQID", 4, o, sizeof o, &n) == ZEQ_OK && n == 3
                 && o[0] == 1 && o[2] == 3, 1, "b64url AQID");
        unit_int(zeq_proto_b64url_decode("AQI", 3, o, sizeof o, &n) == ZEQ_OK && n == 2, 1,
                 "b64url AQI: 2 bytes");
        unit_int(zeq_proto_b64url_decode("AQJ", 3, o, sizeof o, &n), ZEQ_ERR_BAD,
                 "b64url AQJ: non-zero unused bits");
        unit_int(zeq_proto_b64url_decode("A", 1, o, sizeof o, &n), ZEQ_ERR_BAD, "b64url A");
        unit_int(zeq_proto_b64url_decode("AQ+D", 4, o, sizeof o, &n), ZEQ_ERR_BAD,
                 "b64url with '+'");
        unit_int(zeq_proto_b64url_decode("AQIDBAUGBwgJ", 12, o, sizeof o, &n), ZEQ_ERR_BAD,
                 "b64url longer than the buffer");
    }

    /* the answer */
    {
        unsigned char sn[32], sk[65], sig[64], signer[32];
        zeq_proto_answer a;
        char *text;
        memset(sn, 0xab, 32);
        memset(sk, 0x04, 65);
        memset(sig, 0x11, 64);
        memset(signer, 0x22, 32);
        a = (zeq_proto_answer){1, "sid-1", sn, NULL, 3600, NULL, NULL};
        text = zeq_proto_answer_json(&a);
        unit_str(text, "{\"version\":1,\"sessionId\":\"sid-1\",\"serverNonce\":\""
                 "abababababababababababababababababababababababababababababababab\","
                 "\"expiresIn\":3600}", "the v1 answer");
        zeq_proto_free(text);
        a = (zeq_proto_answer){2, "sid-2", sn, sk, 60, NULL, NULL};
        text = zeq_proto_answer_json(&a);
        unit_ok(text != NULL && strstr(text, "\"version\":2,\"sessionId\":\"sid-2\"") != NULL
                && strstr(text, "\"serverKey\":\"BAQEBAQE") != NULL
                && strstr(text, "\"expiresIn\":60}") != NULL && strstr(text, "signature") == NULL,
                "the v2 answer: version, sessionId, serverKey, expiresIn, no signature");
        zeq_proto_free(text);
        a.signature = sig;
        a.signer = signer;
        text = zeq_proto_answer_json(&a);
        unit_ok(text != NULL && strstr(text, "\"signature\":\"ERERERER") != NULL
                && strstr(text, "\"signer\":\"IiIiIiIi") != NULL, "the signed v2 answer");
        zeq_proto_free(text);
    }

    /* X-E2E-Seq */
    unit_int(zeq_proto_seq_parse("0", &seq) == ZEQ_OK && seq == 0, 1, "seq 0");
    unit_int(zeq_proto_seq_parse("9007199254740991", &seq) == ZEQ_OK
             && seq == 9007199254740991ULL, 1, "seq 2^53 - 1");
    unit_int(zeq_proto_seq_parse("9007199254740992", &seq), ZEQ_ERR_BAD, "seq 2^53");
    unit_int(zeq_proto_seq_parse("01", &seq), ZEQ_ERR_BAD, "seq 01");
    unit_int(zeq_proto_seq_parse("", &seq), ZEQ_ERR_BAD, "seq empty");
    unit_int(zeq_proto_seq_parse("-1", &seq), ZEQ_ERR_BAD, "seq -1");
    unit_int(zeq_proto_seq_parse("1 ", &seq), ZEQ_ERR_BAD, "seq with a blank");
    unit_int(zeq_proto_seq_parse("+1", &seq), ZEQ_ERR_BAD, "seq +1");
    unit_int(zeq_proto_seq_parse("99999999999999999999", &seq), ZEQ_ERR_BAD, "seq 20 digits");

    /* the target without the three parameters */
    zeq_proto_target_without("/ws/x?a=1&e2e_session=S&b=2&e2e_seq=3&e2e_seal=Z", three, out);
    unit_str(out, "/ws/x?a=1&b=2", "target without the three, the rest in order");
    zeq_proto_target_without("/ws/x?e2e_session=S&e2e_seq=3&e2e_seal=Z", three, out);
    unit_str(out, "/ws/x", "target without the three: no '?' left");
    zeq_proto_target_without("/ws/x?e2e%5Fseq=3&e2e_seq=4", three, out);
    unit_str(out, "/ws/x?e2e%5Fseq=3", "names are compared undecoded");
    zeq_proto_target_without("/ws/x?a=%26&&e2e_seq=1", three, out);
    unit_str(out, "/ws/x?a=%26&", "empty items are kept, escapes untouched");
    zeq_proto_target_without("/ws/x", three, out);
    unit_str(out, "/ws/x", "a target without a query");
    zeq_proto_target_without("/ws/x?", three, out);
    unit_str(out, "/ws/x", "an empty query");
    zeq_proto_target_without("/ws/x?e2e_seq", three, out);
    unit_str(out, "/ws/x", "a bare name is an item of that name");
}

int main(void)
{
    test_cavp();
    test_v2_keys();
    test_signer();
    test_vectors_messages();
    test_records_edges();
    test_replay();
    test_proto_v2();
    test_opening_params();
    return unit_done();
}
