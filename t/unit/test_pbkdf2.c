/* Unit tests of zeq_kex_pbkdf2_sha256, the PBKDF2-HMAC-SHA256 of protocol
 * v1 and of v2's pre-shared key, built on SHA-256's compression function:
 * identical output to OpenSSL's PKCS5_PBKDF2_HMAC for passwords shorter
 * than, as long as and longer than a SHA-256 block (hashed first), salts
 * from empty to several blocks, iteration counts from 1 and derived keys
 * of one, several and partial blocks; bad arguments refused. Timing is
 * printed as a comment line, never asserted (make bench measures it). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "zeq_kex.h"
#include "unit.h"

static int reference(const unsigned char *pass, size_t passlen,
                     const unsigned char *salt, size_t saltlen,
                     unsigned iter, unsigned char *out, size_t outlen)
{
    return PKCS5_PBKDF2_HMAC((const char *)pass, (int)passlen, salt,
                             (int)saltlen, (int)iter, EVP_sha256(),
                             (int)outlen, out);
}

static void compare(const unsigned char *pass, size_t passlen,
                    const unsigned char *salt, size_t saltlen, unsigned iter,
                    size_t outlen)
{
    unsigned char got[200], want[200];

    memset(got, 0xa5, sizeof got);
    memset(want, 0x5a, sizeof want);
    unit_int(reference(pass, passlen, salt, saltlen, iter, want, outlen), 1,
             "PKCS5_PBKDF2_HMAC password %zu salt %zu c=%u dkLen=%zu",
             passlen, saltlen, iter, outlen);
    unit_int(zeq_kex_pbkdf2_sha256(pass, passlen, salt, saltlen, iter, got,
                                   outlen), ZEQ_OK,
             "zeq_kex_pbkdf2_sha256 password %zu salt %zu c=%u dkLen=%zu "
             "succeeds", passlen, saltlen, iter, outlen);
    unit_mem(got, outlen, want, outlen,
             "zeq_kex_pbkdf2_sha256 = PKCS5_PBKDF2_HMAC, password %zu salt "
             "%zu c=%u dkLen=%zu", passlen, saltlen, iter, outlen);
    unit_int(got[outlen], 0xa5, "nothing written past dkLen=%zu", outlen);
}

static double seconds(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(void)
{
    static const size_t passlens[] = {0, 1, 19, 32, 55, 56, 63, 64, 65, 100,
                                      128, 129, 200};
    static const size_t saltlens[] = {0, 1, 13, 51, 52, 55, 56, 59, 60, 64,
                                      119, 120, 190};
    static const unsigned iters[] = {1, 2, 3, 17, 1000};
    static const size_t outlens[] = {1, 16, 31, 32, 33, 64, 65, 100, 160};
    unsigned char pass[200], salt[200], key[32], ref[32];
    unsigned char nonces[64];
    size_t i, j;
    double t0, fast, slow;

    unit_fill(pass, sizeof pass, 11);
    unit_fill(salt, sizeof salt, 29);
    for (i = 0; i < sizeof passlens / sizeof *passlens; i++) {
        for (j = 0; j < sizeof saltlens / sizeof *saltlens; j++) {
            compare(pass, passlens[i], salt, saltlens[j],
                    iters[(i + j) % (sizeof iters / sizeof *iters)],
                    outlens[(i * 3 + j) % (sizeof outlens / sizeof *outlens)]);
        }
    }
    for (i = 0; i < sizeof outlens / sizeof *outlens; i++) {
        compare(pass, 19, salt, 64, 2, outlens[i]);
    }
    /* Protocol v1's own shape: a 19-byte secret, both nonces, 100,000. */
    unit_fill(nonces, sizeof nonces, 7);
    compare((const unsigned char *)"zeq-e2e test secret", 19, nonces, 64,
            ZEQ_KEX_V1_ITERATIONS, 32);

    unit_int(zeq_kex_pbkdf2_sha256(pass, 8, salt, 8, 0, key, 32), ZEQ_ERR_BAD,
             "0 iterations refused");
    unit_int(zeq_kex_pbkdf2_sha256(pass, 8, salt, 8, 1, key, 0), ZEQ_ERR_BAD,
             "an empty key refused");
    unit_int(zeq_kex_pbkdf2_sha256(NULL, 8, salt, 8, 1, key, 32), ZEQ_ERR_BAD,
             "a NULL password with a length refused");
    unit_int(zeq_kex_pbkdf2_sha256(pass, 8, NULL, 8, 1, key, 32), ZEQ_ERR_BAD,
             "a NULL salt with a length refused");

    /* The cost of one v1 derivation, both ways (information only). */
    t0 = seconds();
    for (i = 0; i < 5; i++) {
        zeq_kex_pbkdf2_sha256(pass, 19, nonces, 64, ZEQ_KEX_V1_ITERATIONS, key,
                              32);
    }
    fast = (seconds() - t0) / 5;
    t0 = seconds();
    for (i = 0; i < 5; i++) {
        reference(pass, 19, nonces, 64, ZEQ_KEX_V1_ITERATIONS, ref, 32);
    }
    slow = (seconds() - t0) / 5;
    unit_mem(key, 32, ref, 32, "timed derivations agree");
    printf("# PBKDF2-HMAC-SHA256 100,000 iterations: %.2f ms here, %.2f ms "
           "PKCS5_PBKDF2_HMAC (%.2fx)\n", fast * 1e3, slow * 1e3, slow / fast);
    return unit_done();
}
