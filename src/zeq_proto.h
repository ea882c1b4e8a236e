/* Pure parsers and encoders of the protocol (no httpd or APR header):
 * hex, base64url, the handshake request and answer, sequence numbers,
 * targets, media types, Accept lists, query parameters, JSON strings.
 * Every function takes explicit lengths or NUL-terminated strings and never
 * allocates except where stated, so each can be fuzzed alone. */
#ifndef ZEQ_PROTO_H
#define ZEQ_PROTO_H

#include <stddef.h>
#include "zeq_result.h"

#define ZEQ_PROTO_HANDSHAKE_MAX 4096      /* bytes of handshake body */
#define ZEQ_PROTO_JSON_DEPTH 32          /* nesting of a handshake body */
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

#define ZEQ_PROTO_NONCE_LEN  32
#define ZEQ_PROTO_POINT_LEN  65      /* an uncompressed P-256 point */
#define ZEQ_PROTO_SIG_LEN    64
#define ZEQ_PROTO_SIGNER_LEN 32
#define ZEQ_PROTO_SEQ_MAX ((((unsigned long long)1) << 53) - 1)

/* Decodes unpadded base64url strictly (no padding, no other alphabet, the
 * unused low bits zero): ZEQ_OK with *outlen bytes, or ZEQ_ERR_BAD
 * (also when more than outcap bytes would come out). */
int zeq_proto_b64url_decode(const char *in, size_t inlen, unsigned char *out,
                            size_t outcap, size_t *outlen);

/* A handshake request body (PROTOCOL.md sections 3 and 18.1). */
typedef struct {
    int version;                             /* 1 (no "version") or 2 */
    int psk;                                 /* "psk": true */
    unsigned char client_nonce[ZEQ_PROTO_NONCE_LEN];
    unsigned char client_key[ZEQ_PROTO_POINT_LEN];   /* v2: clientKey */
} zeq_proto_handshake;

/* Parses a handshake request body: a JSON object of at most
 * ZEQ_PROTO_HANDSHAKE_MAX bytes with clientNonce (64 hex), for v2 also
 * "version": 2 and clientKey (base64url of 65 bytes; whether they are a
 * point on the curve is for the caller to check), "psk" a boolean when
 * present. ZEQ_OK; ZEQ_ERR_VERSION when "version" is an integer other
 * than 1 and 2; ZEQ_ERR_BAD otherwise (not JSON, not UTF-8, a NUL byte
 * raw or escaped, a byte order mark, nested deeper than
 * ZEQ_PROTO_JSON_DEPTH, not an object, one of the members it reads given
 * twice, missing or of the wrong type or form). */
int zeq_proto_handshake_parse(const char *body, size_t len,
                              zeq_proto_handshake *hs);

/* A handshake answer. */
typedef struct {
    int version;
    const char *session_id;
    const unsigned char *server_nonce;       /* 32 bytes */
    const unsigned char *server_key;         /* v2: 65 bytes */
    int expires_in;
    const unsigned char *signature;          /* v2, or NULL: 64 bytes */
    const unsigned char *signer;             /* with it: 32 bytes */
} zeq_proto_answer;

/* The answer's JSON text, {"version", "sessionId", "serverNonce",
 * ["serverKey",] "expiresIn"[, "signature", "signer"]}, without a final
 * newline; free it with zeq_proto_free. NULL when out of memory. */
char *zeq_proto_answer_json(const zeq_proto_answer *a);
void zeq_proto_free(char *text);

/* Parses X-E2E-Seq: decimal, 0 or without leading zeros, at most
 * ZEQ_PROTO_SEQ_MAX. ZEQ_OK or ZEQ_ERR_BAD. */
int zeq_proto_seq_parse(const char *s, unsigned long long *seq);

/* Writes target (path?query) without the query items whose name (up to
 * the first '=', not decoded) is one of names (NULL-terminated list):
 * the query is split on '&', the other items kept in order and joined
 * with '&'; the '?' goes when nothing remains. out holds strlen(target)
 * + 1 bytes. Returns the length written. */
size_t zeq_proto_target_without(const char *target, const char *const *names,
                                char *out);

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

/* The parameters of a v2 WebSocket opening's query string (PROTOCOL.md
 * 18.11): e2e_session exactly once, e2e_seq and e2e_seal at most once,
 * each under exactly that name (an item whose name only decodes to one of
 * them, e2e%5Fseq, is one the seal does not account for, and so counts as
 * a second). ZEQ_OK with *seq and *seal at the values of e2e_seq and
 * e2e_seal in query (up to the next '&', *seqlen and *seallen bytes;
 * NULL when the parameter is absent), or ZEQ_ERR_BAD. */
int zeq_proto_opening_params(const char *query, const char **seq,
                             size_t *seqlen, const char **seal,
                             size_t *seallen);

/* Writes s as the contents of a JSON string into out (2 * strlen(s) + 1
 * bytes): '"' and '\\' escaped, control characters and bytes above 0x7e
 * replaced by '?' (the module's error messages are its own ASCII texts).
 * Returns the length written, the NUL after it not counted. */
size_t zeq_proto_json_escape(const char *s, char *out);

#endif
