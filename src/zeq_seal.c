/* The seal of a bodiless v2 request (see zeq_seal.h). */
#include "zeq_seal.h"
#include "zeq_proto.h"

#include <openssl/crypto.h>

int zeq_seal_open(const unsigned char key[ZEQ_KEY_LEN],
                  const unsigned char *aad, size_t aadlen, const char *seal,
                  size_t len, size_t *ptlen)
{
    unsigned char raw[ZEQ_SEAL_MAX_LEN], pt[ZEQ_SEAL_MAX_LEN];
    size_t rawlen = 0, n = 0;
    int rv;

    *ptlen = 0;
    if (seal == NULL
        || zeq_proto_b64url_decode(seal, len, raw, sizeof(raw), &rawlen)
           != ZEQ_OK) {
        return ZEQ_ERR_BAD;
    }
    rv = zeq_record_open_message(2, key, aad, aadlen, raw, rawlen, pt, &n);
    OPENSSL_cleanse(pt, sizeof(pt));
    if (rv == ZEQ_ERR_CRYPTO) {
        return rv;
    }
    if (rv != ZEQ_OK) {
        return ZEQ_ERR_AUTH;
    }
    *ptlen = n;
    return ZEQ_OK;
}
