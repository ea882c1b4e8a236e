/* The P-256 point decoder of the v2 handshake (zeq_kex_point_valid and
 * zeq_kex_ecdh in src/zeq_kex.c) against OpenSSL's low-level EC_POINT code
 * as the reference. The input is a 65-byte uncompressed point (shorter
 * inputs padded with zeros), or 33 bytes of a compressed point, which the
 * reference decompresses into a point that is on the curve (so that the
 * fuzzer reaches valid points too). The module must accept exactly the
 * points the reference accepts, and its ECDH with a fixed key pair must
 * give the reference's shared x-coordinate.
 * libFuzzer options: -max_len=65 */
#include "fuzz.h"

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/obj_mac.h>

#include "zeq_kex.h"

static const unsigned char fuzz_d[32] = {
    0x5e, 0x5e, 0x5e, 0x5e, 0x5e, 0x5e, 0x5e, 0x5e, 0x5e, 0x5e, 0x5e,
    0x5e, 0x5e, 0x5e, 0x5e, 0x5e, 0x5e, 0x5e, 0x5e, 0x5e, 0x5e, 0x5e,
    0x5e, 0x5e, 0x5e, 0x5e, 0x5e, 0x5e, 0x5e, 0x5e, 0x5e, 0x5e};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static zeq_kex_pair *pair;
    EC_GROUP *group = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
    EC_POINT *pt = group ? EC_POINT_new(group) : NULL;
    BN_CTX *bn = BN_CTX_new();
    unsigned char point[ZEQ_KEX_POINT_LEN], z[32], zref[32];
    int ref, got;

    FUZZ_CHECK(pt != NULL && bn != NULL, "the reference's group");
    if (pair == NULL) {
        pair = zeq_kex_pair_from_private(fuzz_d);
        FUZZ_CHECK(pair != NULL, "the fixed key pair");
    }
    memset(point, 0, sizeof(point));
    if (size == 33 && (data[0] == 2 || data[0] == 3)) {
        if (EC_POINT_oct2point(group, pt, data, size, bn) != 1
            || EC_POINT_point2oct(group, pt, POINT_CONVERSION_UNCOMPRESSED,
                                  point, sizeof(point), bn) != sizeof(point)) {
            memcpy(point, data, size);    /* no such point: as it is */
        }
    }
    else {
        memcpy(point, data, size < sizeof(point) ? size : sizeof(point));
    }
    ref = point[0] == 0x04
          && EC_POINT_oct2point(group, pt, point, sizeof(point), bn) == 1
          && !EC_POINT_is_at_infinity(group, pt)
          && EC_POINT_is_on_curve(group, pt, bn) == 1;
    got = zeq_kex_point_valid(point);
    FUZZ_CHECK(got == ref, "zeq_kex_point_valid agrees with EC_POINT_oct2point");
    if (ref) {
        BIGNUM *d = BN_bin2bn(fuzz_d, sizeof(fuzz_d), NULL);
        BIGNUM *x = BN_new();
        EC_POINT *shared = EC_POINT_new(group);
        FUZZ_CHECK(d != NULL && x != NULL && shared != NULL
                   && EC_POINT_mul(group, shared, NULL, pt, d, bn) == 1
                   && EC_POINT_get_affine_coordinates(group, shared, x, NULL,
                                                      bn) == 1
                   && BN_bn2binpad(x, zref, sizeof(zref)) == sizeof(zref),
                   "the reference's ECDH");
        FUZZ_CHECK(zeq_kex_ecdh(pair, point, z) == ZEQ_OK,
                   "ECDH with a valid point");
        FUZZ_CHECK(memcmp(z, zref, sizeof(z)) == 0,
                   "the shared secret is the reference's");
        BN_free(d);
        BN_free(x);
        EC_POINT_free(shared);
    }
    else {
        FUZZ_CHECK(zeq_kex_ecdh(pair, point, z) == ZEQ_ERR_BAD,
                   "ECDH refuses a point that is not valid");
    }
    EC_POINT_free(pt);
    EC_GROUP_free(group);
    BN_CTX_free(bn);
    return 0;
}
