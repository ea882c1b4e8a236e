/* The handshake: POST {"clientNonce": hex} -> {"version", "sessionId",
 * "serverNonce", "expiresIn"}. Served by a handler that runs before
 * mod_proxy's, so it also answers inside a ProxyPass'd URL space. */
#include "zeq_handshake.h"
#include "zeq_config.h"
#include "zeq_error.h"
#include "zeq_proto.h"
#include "zeq_session.h"

#include "apr_strings.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

/* Reads at most ZEQ_PROTO_HANDSHAKE_MAX bytes of body; ZEQ_ERR_BAD when it
 * is larger, an HTTP status on a read error, ZEQ_OK otherwise. */
static int zeq_handshake_read(request_rec *r, char *buf, apr_size_t *len)
{
    apr_size_t got = 0;
    long n;
    int rv;

    rv = ap_setup_client_block(r, REQUEST_CHUNKED_DECHUNK);
    if (rv != OK) {
        return rv;
    }
    if (r->remaining > ZEQ_PROTO_HANDSHAKE_MAX) {
        return ZEQ_ERR_BAD;
    }
    if (ap_should_client_block(r)) {
        /* One byte more than allowed tells an oversized body apart. */
        while ((n = ap_get_client_block(r, buf + got,
                                        ZEQ_PROTO_HANDSHAKE_MAX + 1 - got))
               > 0) {
            got += (apr_size_t)n;
            if (got > ZEQ_PROTO_HANDSHAKE_MAX) {
                return ZEQ_ERR_BAD;
            }
        }
        if (n < 0) {
            return HTTP_BAD_REQUEST;
        }
    }
    *len = got;
    return ZEQ_OK;
}

static int zeq_handshake_handler(request_rec *r)
{
    zeq_srv_conf *sc;
    unsigned char client_nonce[ZEQ_NONCE_LEN], server_nonce[ZEQ_NONCE_LEN];
    unsigned char key[ZEQ_KEY_LEN];
    char nonce_hex[2 * ZEQ_NONCE_LEN + 1];
    char body[ZEQ_PROTO_HANDSHAKE_MAX + 1];
    apr_size_t len = 0;
    const char *sid = NULL, *answer;
    apr_status_t rv;
    int st;

    if (r->handler == NULL || strcmp(r->handler, ZEQ_HANDSHAKE_HANDLER) != 0) {
        return DECLINED;
    }
    sc = zeq_config_srv(r->server);
    if (r->method_number != M_POST) {
        r->allowed = AP_METHOD_BIT << M_POST;
        apr_table_setn(r->err_headers_out, "Allow", "POST");
        return zeq_error_send(r, HTTP_METHOD_NOT_ALLOWED,
                              ZEQ_E2E_ERR_METHOD,
                              "the handshake accepts POST only");
    }
    if (sc->secret == NULL) {
        return zeq_error_unconfigured(r);
    }
    st = zeq_handshake_read(r, body, &len);
    if (st != ZEQ_OK && st != ZEQ_ERR_BAD) {
        return st;
    }
    if (st == ZEQ_ERR_BAD
        || zeq_proto_handshake_parse(body, len, client_nonce) != ZEQ_OK) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, ZEQLOG(30002)
                      "handshake refused: malformed request body "
                      "(%" APR_SIZE_T_FMT " bytes)", len);
        return zeq_error_send(r, HTTP_BAD_REQUEST, ZEQ_E2E_ERR_BAD_HANDSHAKE,
                              "the body must be a JSON object with "
                              "clientNonce: 64 hex characters, at most "
                              "4096 bytes");
    }
    if (RAND_bytes(server_nonce, sizeof(server_nonce)) != 1
        || zeq_kdf_session_key(sc->secret->bytes, sc->secret->len,
                               client_nonce,
                               server_nonce, key) != ZEQ_OK) {
        OPENSSL_cleanse(key, sizeof(key));
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, ZEQLOG(30003)
                      "handshake failed: random source or key derivation "
                      "error");
        return zeq_error_send(r, HTTP_SERVICE_UNAVAILABLE,
                              ZEQ_E2E_ERR_UNAVAILABLE,
                              "the server could not create a session");
    }
    rv = zeq_session_create(r, sc, key, &sid);
    OPENSSL_cleanse(key, sizeof(key));
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, ZEQLOG(30004)
                      "handshake failed: cannot store the session");
        return zeq_error_send(r, HTTP_SERVICE_UNAVAILABLE,
                              ZEQ_E2E_ERR_UNAVAILABLE,
                              "the server could not store the session");
    }
    zeq_proto_hex_encode(server_nonce, sizeof(server_nonce), nonce_hex);
    answer = apr_psprintf(r->pool,
                          "{\"version\":%d,\"sessionId\":\"%s\","
                          "\"serverNonce\":\"%s\",\"expiresIn\":%d}\n",
                          ZEQ_E2E_PROTOCOL_VERSION, sid, nonce_hex,
                          zeq_config_ttl(sc));
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, ZEQLOG(30005)
                  "handshake: new session, expires in %ds",
                  zeq_config_ttl(sc));
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    ap_set_content_type(r, "application/json");
    ap_set_content_length(r, (apr_off_t)strlen(answer));
    if (!r->header_only) {
        ap_rputs(answer, r);
    }
    return OK;
}

void zeq_handshake_register_hooks(apr_pool_t *p)
{
    (void)p;
    /* Before mod_proxy's handler (APR_HOOK_FIRST), which claims every
     * request in a ProxyPass'd space whatever r->handler says. */
    ap_hook_handler(zeq_handshake_handler, NULL, NULL, APR_HOOK_REALLY_FIRST);
}
