/* Pure parsers and encoders of protocol v1 (no httpd or APR header):
 * hex, base64url, the handshake request body, media types, Accept lists.
 * Every function takes explicit lengths or NUL-terminated strings and never
 * allocates except where stated, so each can be fuzzed alone. */
#ifndef ZEQ_PROTO_H
#define ZEQ_PROTO_H

#include <stddef.h>
#include "zeq_envelope.h"

#define ZEQ_PROTO_HANDSHAKE_MAX 4096      /* bytes of handshake body */
#define ZEQ_PROTO_SESSION_ID_BYTES 32     /* random bytes in a session id */
#define ZEQ_PROTO_SESSION_ID_MAX 128      /* longest id accepted on input */

/* Decodes exactly outlen bytes from 2*outlen hex characters (either case).
 * ZEQ_OK, or ZEQ_ERR_BAD on a wrong length or a non-hex character. */
int zeq_proto_hex_decode(const char *hex, size_t hexlen,
                         unsigned char *out, size_t outlen);
/* Writes 2*len lowercase hex characters and a NUL. */
void zeq_proto_hex_encode(const unsigned char *in, size_t len, char *out);

/* Unpadded base64url of len bytes; out holds zeq_proto_b64url_len(len)+1. */
size_t zeq_proto_b64url_len(size_t len);
void zeq_proto_b64url_encode(const unsigned char *in, size_t len, char *out);

/* Parses a handshake request body {"clientNonce": "<64 hex>"}: ZEQ_OK with
 * the 32 nonce bytes, or ZEQ_ERR_BAD (not JSON, not an object, over
 * ZEQ_PROTO_HANDSHAKE_MAX, clientNonce missing, not a string, not 64 hex). */
int zeq_proto_handshake_parse(const char *body, size_t len,
                              unsigned char client_nonce[ZEQ_NONCE_LEN]);

/* True when a session id has 1..ZEQ_PROTO_SESSION_ID_MAX characters, all
 * from the URL-safe set [A-Za-z0-9_-]. */
int zeq_proto_session_id_valid(const char *id);

/* True when the media type of a Content-Type value equals type (case
 * insensitive, parameters and surrounding blanks ignored). */
int zeq_proto_media_type_is(const char *content_type, const char *type);

/* True when an Accept header lists type exactly (case insensitive) with a
 * q-value above 0. Wildcards do not count: encryption is asked for by name. */
int zeq_proto_accept_lists(const char *accept, const char *type);

/* Longest query parameter name zeq_proto_query_take compares (decoded). */
#define ZEQ_PROTO_QUERY_NAME_MAX 64

/* Removes every NAME=VALUE item of a query string whose NAME,
 * percent-decoded, is name (so e2e%5Fsession is e2e_session), in place:
 * args stays a well-formed query, possibly empty. Copies the first item's
 * VALUE, percent-decoded, into value (NUL-terminated; valuecap bytes with
 * the NUL). Returns 1 when found with a value that decodes and fits, 0
 * when absent, -1 when the value is malformed or too long, -2 when the
 * name appears more than once. The items are removed in every case. '+'
 * is not decoded (a name with a space is never a parameter of ours). */
int zeq_proto_query_take(char *args, const char *name, char *value,
                         size_t valuecap);

#endif
