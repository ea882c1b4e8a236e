/* The handshake request body, v1 and v2 (zeq_proto_handshake_parse in
 * src/zeq_proto.c), and for v2 the client's point as the handler checks it
 * (zeq_kex_point_valid). A body that parses is written again as JSON from
 * what was read (zeq_proto_hex_encode, zeq_proto_b64url_encode) and must
 * parse to the same fields.
 * libFuzzer options: -max_len=4200 */
#include "fuzz.h"

#include "zeq_kex.h"
#include "zeq_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *body = (char *)fuzz_dup(data, size);
    zeq_proto_handshake hs, again;
    int rv = zeq_proto_handshake_parse(body, size, &hs);

    FUZZ_CHECK(rv == ZEQ_OK || rv == ZEQ_ERR_BAD || rv == ZEQ_ERR_VERSION,
               "OK, BAD or VERSION");
    if (rv == ZEQ_OK) {
        char nonce[2 * ZEQ_PROTO_NONCE_LEN + 1];
        char key[ZEQ_PROTO_POINT_LEN * 2];
        char json[512];
        int n;

        FUZZ_CHECK(size <= ZEQ_PROTO_HANDSHAKE_MAX, "at most 4096 bytes");
        FUZZ_CHECK(hs.version == 1 || hs.version == 2, "version 1 or 2");
        FUZZ_CHECK(hs.psk == 0 || hs.psk == 1, "psk 0 or 1");
        if (hs.version == 2) {
            (void)zeq_kex_point_valid(hs.client_key);
        }
        zeq_proto_hex_encode(hs.client_nonce, ZEQ_PROTO_NONCE_LEN, nonce);
        zeq_proto_b64url_encode(hs.client_key, ZEQ_PROTO_POINT_LEN, key);
        n = snprintf(json, sizeof(json),
                     "{\"version\":%d,\"clientNonce\":\"%s\"%s%s%s,\"psk\":%s}",
                     hs.version, nonce, hs.version == 2 ? ",\"clientKey\":\"" : "",
                     hs.version == 2 ? key : "", hs.version == 2 ? "\"" : "",
                     hs.psk ? "true" : "false");
        FUZZ_CHECK(n > 0 && (size_t)n < sizeof(json), "the JSON written again");
        FUZZ_CHECK(zeq_proto_handshake_parse(json, (size_t)n, &again) == ZEQ_OK,
                   "the body written again parses");
        FUZZ_CHECK(again.version == hs.version && again.psk == hs.psk
                   && memcmp(again.client_nonce, hs.client_nonce,
                             ZEQ_PROTO_NONCE_LEN) == 0
                   && (hs.version == 1
                       || memcmp(again.client_key, hs.client_key,
                                 ZEQ_PROTO_POINT_LEN) == 0),
                   "... to the same fields");
    }
    free(body);
    return 0;
}
