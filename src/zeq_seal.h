/* The seal of a bodiless protocol v2 request (X-E2E-Seal, or e2e_seal of
 * a WebSocket opening; docs/PROTOCOL.md): the unpadded base64url of a
 * sealed message that holds nothing, under k_c2s with the request's AAD.
 * Decodes and verifies one.
 *
 * Pure C11 (zeq_proto's base64url, zeq_record's reader): no httpd or APR
 * header, unit-tested and fuzzed alone. */
#ifndef ZEQ_SEAL_H
#define ZEQ_SEAL_H

#include <stddef.h>

#include "zeq_record.h"
#include "zeq_result.h"

/* The most bytes a seal may decode to: an empty message is
 * ZEQ_RECORD_EMPTY_LEN bytes; anything much longer is not looked at. */
#define ZEQ_SEAL_MAX_LEN (2 * ZEQ_RECORD_EMPTY_LEN)

/* Opens the seal text (len characters, no NUL needed): ZEQ_OK when it is a
 * v2 message that verifies under key and aad, *ptlen then the plaintext
 * bytes it holds (a proper seal holds none); ZEQ_ERR_BAD when seal is NULL,
 * not base64url or longer than ZEQ_SEAL_MAX_LEN bytes decoded;
 * ZEQ_ERR_AUTH when it is no message that verifies (malformed, cut,
 * altered, another key or AAD); ZEQ_ERR_CRYPTO. */
int zeq_seal_open(const unsigned char key[ZEQ_KEY_LEN],
                  const unsigned char *aad, size_t aadlen, const char *seal,
                  size_t len, size_t *ptlen);

#endif
