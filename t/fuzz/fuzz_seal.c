/* The seal of a bodiless v2 request (X-E2E-Seal, e2e_seal:
 * src/zeq_seal.c): base64url text of a sealed message under FUZZ_KEY and
 * FUZZ_AAD. Its result must be what decoding the text and opening the
 * bytes with the one-shot opener give.
 * libFuzzer options: -max_len=256 */
#include "fuzz.h"

#include "zeq_proto.h"
#include "zeq_seal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *seal = (char *)fuzz_dup(data, size);
    unsigned char raw[ZEQ_SEAL_MAX_LEN], pt[ZEQ_SEAL_MAX_LEN];
    size_t ptlen = 99, rawlen = 0, n = 0;
    int rv = zeq_seal_open(FUZZ_KEY, FUZZ_AAD, FUZZ_AAD_LEN, seal, size, &ptlen);
    int drv = zeq_proto_b64url_decode(seal, size, raw, sizeof(raw), &rawlen);

    FUZZ_CHECK(rv == ZEQ_OK || rv == ZEQ_ERR_BAD || rv == ZEQ_ERR_AUTH,
               "seal_open: OK, BAD or AUTH");
    FUZZ_CHECK((rv == ZEQ_ERR_BAD) == (drv != ZEQ_OK),
               "seal_open: BAD exactly when it is no base64url of a seal");
    if (drv == ZEQ_OK) {
        int orv = zeq_record_open_message(2, FUZZ_KEY, FUZZ_AAD, FUZZ_AAD_LEN,
                                          raw, rawlen, pt, &n);
        FUZZ_CHECK((rv == ZEQ_OK) == (orv == ZEQ_OK),
                   "seal_open: OK exactly when the message opens");
        if (rv == ZEQ_OK) {
            FUZZ_CHECK(ptlen == n, "seal_open: the plaintext length");
        }
    }
    if (rv != ZEQ_OK) {
        FUZZ_CHECK(ptlen == 0, "seal_open: no plaintext length when refused");
    }
    free(seal);
    return 0;
}
