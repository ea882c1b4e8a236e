/* Unit tests of zeq_kex_hkdf_sha256, the HKDF-SHA256 of protocol v2's keys
 * and of the session records' keys, built on SHA-256's compression
 * function: RFC 5869's three SHA-256 test cases, and identical output to
 * OpenSSL's HKDF (EVP_KDF "HKDF", mode extract and expand) for input
 * keys, salts and infos from empty to several blocks (a salt longer than
 * a block is hashed first as an HMAC key), outputs of one, several and
 * partial blocks up to the most HKDF gives (255 blocks); bad arguments
 * refused. Timing is printed as a comment line, never asserted. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include "zeq_kex.h"
#include "unit.h"

#define MAX_OUT (255 * 32)

static EVP_KDF *hkdf;

/* OpenSSL's HKDF-SHA256: 1 on success. */
static int reference(const unsigned char *ikm, size_t ikmlen,
                     const unsigned char *salt, size_t saltlen,
                     const unsigned char *info, size_t infolen,
                     unsigned char *out, size_t outlen)
{
    static unsigned char empty;
    EVP_KDF_CTX *ctx = EVP_KDF_CTX_new(hkdf);
    OSSL_PARAM params[5];
    int ok;

    if (ctx == NULL) {
        return 0;
    }
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
                                                 (char *)"SHA256", 0);
    params[1] = OSSL_PARAM_construct_octet_string(
        OSSL_KDF_PARAM_KEY, ikmlen ? (void *)ikm : &empty, ikmlen);
    params[2] = OSSL_PARAM_construct_octet_string(
        OSSL_KDF_PARAM_SALT, saltlen ? (void *)salt : &empty, saltlen);
    params[3] = OSSL_PARAM_construct_octet_string(
        OSSL_KDF_PARAM_INFO, infolen ? (void *)info : &empty, infolen);
    params[4] = OSSL_PARAM_construct_end();
    ok = EVP_KDF_derive(ctx, out, outlen, params) == 1;
    EVP_KDF_CTX_free(ctx);
    return ok;
}

static void compare(const unsigned char *ikm, size_t ikmlen,
                    const unsigned char *salt, size_t saltlen,
                    const unsigned char *info, size_t infolen, size_t outlen)
{
    static unsigned char got[MAX_OUT + 1], want[MAX_OUT + 1];

    memset(got, 0xa5, sizeof got);
    memset(want, 0x5a, sizeof want);
    unit_int(reference(ikm, ikmlen, salt, saltlen, info, infolen, want,
                       outlen), 1,
             "EVP_KDF HKDF ikm %zu salt %zu info %zu L=%zu", ikmlen, saltlen,
             infolen, outlen);
    unit_int(zeq_kex_hkdf_sha256(ikm, ikmlen, salt, saltlen, info, infolen,
                                 got, outlen), ZEQ_OK,
             "zeq_kex_hkdf_sha256 ikm %zu salt %zu info %zu L=%zu succeeds",
             ikmlen, saltlen, infolen, outlen);
    unit_mem(got, outlen, want, outlen,
             "zeq_kex_hkdf_sha256 = EVP_KDF HKDF, ikm %zu salt %zu info %zu "
             "L=%zu", ikmlen, saltlen, infolen, outlen);
    unit_int(got[outlen], 0xa5, "nothing written past L=%zu", outlen);
}

/* RFC 5869 appendix A: test cases 1 to 3 (SHA-256). */
static void rfc5869(void)
{
    static const struct {
        const char *ikm, *salt, *info, *okm;
    } v[] = {
        {"0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b",
         "000102030405060708090a0b0c", "f0f1f2f3f4f5f6f7f8f9",
         "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
         "34007208d5b887185865"},
        {"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
         "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
         "404142434445464748494a4b4c4d4e4f",
         "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f"
         "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
         "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf",
         "b0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecf"
         "d0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeef"
         "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff",
         "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c"
         "59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71"
         "cc30c58179ec3e87c14c01d5c1f3434f1d87"},
        {"0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", "", "",
         "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d"
         "9d201395faa4b61a96c8"},
    };
    size_t i;

    for (i = 0; i < sizeof v / sizeof *v; i++) {
        size_t il, sl, nl, ol;
        unsigned char *ikm = unit_unhex(v[i].ikm, &il);
        unsigned char *salt = unit_unhex(v[i].salt, &sl);
        unsigned char *info = unit_unhex(v[i].info, &nl);
        unsigned char *okm = unit_unhex(v[i].okm, &ol);
        unsigned char got[100], ref[100];

        unit_int(zeq_kex_hkdf_sha256(ikm, il, sl ? salt : NULL, sl,
                                     nl ? info : NULL, nl, got, ol), ZEQ_OK,
                 "RFC 5869 case %zu: HKDF succeeds", i + 1);
        unit_mem(got, ol, okm, ol, "RFC 5869 case %zu: OKM", i + 1);
        unit_int(reference(ikm, il, salt, sl, info, nl, ref, ol), 1,
                 "RFC 5869 case %zu: EVP_KDF HKDF succeeds", i + 1);
        unit_mem(ref, ol, okm, ol, "RFC 5869 case %zu: EVP_KDF's OKM too",
                 i + 1);
        free(ikm);
        free(salt);
        free(info);
        free(okm);
    }
}

static double seconds(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(void)
{
    static const size_t ikmlens[] = {0, 1, 22, 32, 55, 56, 64, 65, 100, 200};
    static const size_t saltlens[] = {0, 1, 13, 32, 63, 64, 65, 129, 200};
    static const size_t infolens[] = {0, 1, 13, 22, 23, 54, 55, 56, 119, 300};
    static const size_t outlens[] = {1, 16, 31, 32, 33, 42, 64, 82, 255,
                                     256, 257, 1000, MAX_OUT - 1, MAX_OUT};
    unsigned char ikm[200], salt[200], info[300], out[32], ref[32], i8;
    size_t i, j, k, n = 0;
    double t0, fast, slow;

    hkdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    unit_ok(hkdf != NULL, "OpenSSL has HKDF");
    if (hkdf == NULL) {
        return unit_done();
    }
    rfc5869();
    unit_fill(ikm, sizeof ikm, 3);
    unit_fill(salt, sizeof salt, 17);
    unit_fill(info, sizeof info, 41);
    for (i = 0; i < sizeof ikmlens / sizeof *ikmlens; i++) {
        for (j = 0; j < sizeof saltlens / sizeof *saltlens; j++) {
            for (k = 0; k < sizeof infolens / sizeof *infolens; k++, n++) {
                compare(ikm, ikmlens[i], salt, saltlens[j], info, infolens[k],
                        outlens[(n * 7) % (sizeof outlens / sizeof *outlens)]);
            }
        }
    }
    for (i = 0; i < sizeof outlens / sizeof *outlens; i++) {
        compare(ikm, 64, salt, 64, info, 13, outlens[i]);
    }
    /* Random inputs of random lengths. */
    srand(20260);
    for (i = 0; i < 200; i++) {
        size_t il = (size_t)rand() % (sizeof ikm + 1);
        size_t sl = (size_t)rand() % (sizeof salt + 1);
        size_t nl = (size_t)rand() % (sizeof info + 1);
        size_t ol = 1 + (size_t)rand() % 200;
        unit_fill(ikm, il, (unsigned)rand());
        unit_fill(salt, sl, (unsigned)rand());
        unit_fill(info, nl, (unsigned)rand());
        compare(ikm, il, salt, sl, info, nl, ol);
    }

    unit_int(zeq_kex_hkdf_sha256(ikm, 32, NULL, 0, NULL, 0, out, 0),
             ZEQ_ERR_BAD, "L = 0 is refused");
    {
        static unsigned char big[MAX_OUT + 1];
        unit_int(zeq_kex_hkdf_sha256(ikm, 32, NULL, 0, NULL, 0, big,
                                     MAX_OUT + 1),
                 ZEQ_ERR_BAD, "L over 255 blocks is refused");
    }
    unit_int(zeq_kex_hkdf_sha256(NULL, 32, NULL, 0, NULL, 0, out, 32),
             ZEQ_ERR_BAD, "a NULL key of length 32 is refused");
    unit_int(zeq_kex_hkdf_sha256(ikm, 32, NULL, 1, NULL, 0, out, 32),
             ZEQ_ERR_BAD, "a NULL salt of length 1 is refused");
    unit_int(zeq_kex_hkdf_sha256(ikm, 32, NULL, 0, NULL, 1, out, 32),
             ZEQ_ERR_BAD, "a NULL info of length 1 is refused");

    /* What the record keys cost: a 32-byte key, no salt, a 47-byte info. */
    unit_fill(ikm, 32, 5);
    unit_fill(info, 47, 6);
    t0 = seconds();
    for (i = 0; i < 20000; i++) {
        zeq_kex_hkdf_sha256(ikm, 32, NULL, 0, info, 47, out, 32);
        ikm[0] ^= out[0];
    }
    fast = (seconds() - t0) / 20000;
    t0 = seconds();
    for (i = 0; i < 20000; i++) {
        reference(ikm, 32, NULL, 0, info, 47, ref, 32);
        i8 = ref[0];
        ikm[0] ^= i8;
    }
    slow = (seconds() - t0) / 20000;
    printf("# HKDF-SHA256 of 32 bytes: %.2f us here, %.2f us EVP_KDF (%.1fx)\n",
           fast * 1e6, slow * 1e6, slow / fast);
    EVP_KDF_free(hkdf);
    return unit_done();
}
