/* The session-record decoder (zeq_sessrec_open in src/zeq_sessrec.c), as
 * records come back from a shared store. The first byte chooses:
 *   even  the rest is a record, stored under SHA-256(FUZZ_RECORD_SID);
 *   odd   the rest is the record's first 4 bytes and then its plaintext,
 *         sealed here (AES-256-GCM with OpenSSL's EVP, under the key of
 *         FUZZ_RECORD_IKM) so that the fuzzer reaches the parser behind
 *         the tag: such a record never fails to verify.
 * A record that opens is sealed again with its nonce (zeq_sessrec_seal)
 * and must give the same bytes; its replay window must take a number.
 * libFuzzer options: -max_len=400 */
#include "fuzz.h"

#include <openssl/evp.h>
#include <openssl/sha.h>

#include "zeq_kex.h"
#include "zeq_sessrec.h"

static zeq_sessrec_key fuzz_key;
static unsigned char fuzz_id_hash[ZEQ_SESSREC_ID_HASH_LEN];

static void fuzz_setup(void)
{
    static int done;

    if (done) {
        return;
    }
    FUZZ_CHECK(zeq_sessrec_key_derive((const unsigned char *)FUZZ_RECORD_IKM,
                                      strlen(FUZZ_RECORD_IKM), &fuzz_key)
               == ZEQ_OK, "the record key");
    SHA256((const unsigned char *)FUZZ_RECORD_SID, strlen(FUZZ_RECORD_SID),
           fuzz_id_hash);
    done = 1;
}

/* Seals head (4 bytes) || key id || nonce || body under the record's key:
 * returns the record's length. */
static size_t fuzz_seal(const uint8_t *head, const uint8_t *body, size_t n,
                        unsigned char *out)
{
    static const char label[] = "zeq-e2e record";
    unsigned char info[sizeof(label) + ZEQ_SESSREC_ID_HASH_LEN], k[32];
    unsigned char aad[8 + ZEQ_SESSREC_ID_HASH_LEN];
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int len;

    memcpy(info, label, sizeof(label));          /* with its NUL */
    memcpy(info + sizeof(label), fuzz_id_hash, ZEQ_SESSREC_ID_HASH_LEN);
    FUZZ_CHECK(zeq_kex_hkdf_sha256(fuzz_key.master, sizeof(fuzz_key.master),
                                   NULL, 0, info, sizeof(info), k, sizeof(k))
               == ZEQ_OK, "the record's key");
    memcpy(out, head, 4);
    memcpy(out + 4, fuzz_key.id, ZEQ_SESSREC_KEY_ID_LEN);
    memset(out + 8, 0x6e, ZEQ_SESSREC_NONCE_LEN);
    memcpy(aad, out, 8);
    memcpy(aad + 8, fuzz_id_hash, ZEQ_SESSREC_ID_HASH_LEN);
    FUZZ_CHECK(c != NULL
               && EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, k, out + 8) == 1
               && EVP_EncryptUpdate(c, NULL, &len, aad, sizeof(aad)) == 1
               && (n == 0
                   || EVP_EncryptUpdate(c, out + ZEQ_SESSREC_HEAD_LEN, &len,
                                        body, (int)n) == 1)
               && EVP_EncryptFinal_ex(c, out + ZEQ_SESSREC_HEAD_LEN + n, &len) == 1
               && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16,
                                      out + ZEQ_SESSREC_HEAD_LEN + n) == 1,
               "sealing the record");
    EVP_CIPHER_CTX_free(c);
    return ZEQ_SESSREC_HEAD_LEN + n + ZEQ_SESSREC_TAG_LEN;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned char *rec, again[ZEQ_SESSREC_MAX_LEN];
    size_t len;
    zeq_sessrec out, zero;
    int rv, sealed;

    if (size < 1) {
        return 0;
    }
    fuzz_setup();
    sealed = data[0] & 1;
    if (sealed) {
        if (size < 5 || size - 5 > ZEQ_SESSREC_MAX_LEN) {
            return 0;
        }
        rec = malloc(ZEQ_SESSREC_HEAD_LEN + size - 5 + ZEQ_SESSREC_TAG_LEN);
        FUZZ_CHECK(rec != NULL, "memory");
        len = fuzz_seal(data + 1, data + 5, size - 5, rec);
    }
    else {
        len = size - 1;
        rec = fuzz_dup(data + 1, len);
    }
    rv = zeq_sessrec_open(&fuzz_key, rec, len, fuzz_id_hash, &out);
    FUZZ_CHECK(rv == ZEQ_OK || rv == ZEQ_ERR_VERSION || rv == ZEQ_ERR_BAD
               || rv == ZEQ_ERR_KEY || rv == ZEQ_ERR_AUTH,
               "sessrec_open: OK, VERSION, BAD, KEY or AUTH");
    if (sealed) {
        FUZZ_CHECK(rv != ZEQ_ERR_AUTH && rv != ZEQ_ERR_KEY,
                   "a record sealed under the right key verifies");
    }
    if (rv != ZEQ_OK) {
        memset(&zero, 0, sizeof(zero));
        FUZZ_CHECK(memcmp(&out, &zero, sizeof(out)) == 0,
                   "sessrec_open: nothing left in the record when refused");
    }
    else {
        FUZZ_CHECK(out.keys.version == rec[1], "the record's version");
        FUZZ_CHECK(zeq_sessrec_len(&out) == len, "the record's length");
        FUZZ_CHECK(zeq_sessrec_seal(&fuzz_key, &out, fuzz_id_hash, rec + 8,
                                    again) == len
                   && memcmp(again, rec, len) == 0,
                   "sealed again with its nonce: the same record");
        if (out.keys.version == 2) {
            uint64_t seq = out.window.highest + 1;
            if (seq <= ZEQ_SEQ_MAX) {
                FUZZ_CHECK(zeq_replay_accept(&out.window, seq) == ZEQ_OK
                           && zeq_replay_check(&out.window, seq)
                              == ZEQ_ERR_REPLAY,
                           "the window takes a new number once");
            }
        }
        else {
            FUZZ_CHECK(memcmp(out.keys.c2s, out.keys.s2c, 32) == 0,
                       "v1: one key for both directions");
        }
    }
    free(rec);
    return 0;
}
