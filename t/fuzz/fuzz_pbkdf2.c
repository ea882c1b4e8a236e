/* The fast PBKDF2-HMAC-SHA256 (zeq_kex_pbkdf2_sha256 in src/zeq_kex.c, on
 * SHA-256's compression function) against OpenSSL's PKCS5_PBKDF2_HMAC:
 * the input's first three bytes give the iteration count (1 to 32), the
 * derived key's length (1 to 200 bytes: partial and several blocks) and
 * where the password ends and the salt begins in the rest (either may be
 * empty or longer than a block).
 * libFuzzer options: -max_len=400 */
#include "fuzz.h"

#include <openssl/evp.h>

#include "zeq_kex.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned char got[200], want[200];
    unsigned int iterations;
    size_t outlen, passlen, rest;
    const unsigned char *pass, *salt;

    if (size < 3) {
        return 0;
    }
    iterations = 1u + data[0] % 32u;
    outlen = 1u + data[1] % sizeof(got);
    rest = size - 3;
    passlen = data[2] % (rest + 1);
    pass = passlen ? data + 3 : NULL;
    salt = rest - passlen ? data + 3 + passlen : NULL;
    FUZZ_CHECK(zeq_kex_pbkdf2_sha256(pass, passlen, salt, rest - passlen,
                                     iterations, got, outlen) == ZEQ_OK,
               "zeq_kex_pbkdf2_sha256 derives");
    FUZZ_CHECK(PKCS5_PBKDF2_HMAC((const char *)pass, (int)passlen, salt,
                                 (int)(rest - passlen), (int)iterations,
                                 EVP_sha256(), (int)outlen, want) == 1,
               "PKCS5_PBKDF2_HMAC derives");
    FUZZ_CHECK(memcmp(got, want, outlen) == 0,
               "the derived key is OpenSSL's");
    return 0;
}
