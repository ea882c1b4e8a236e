/* Request side: in the fixups hook (after authentication, before the
 * handler) validate the session, read and decrypt an envelope whole, and
 * rewrite the request headers; a request-level input filter then serves the
 * plaintext to the handler (CGI, mod_proxy, ...). */
#include "zeq_private.h"

#include "apr_strings.h"
#include "http_core.h"

#include <openssl/crypto.h>

#define ZEQ_READ_CHUNK (64 * 1024)

static ap_filter_rec_t *zeq_request_in_handle;

static apr_status_t zeq_request_state_cleanup(void *data)
{
    zeq_state *st = data;

    OPENSSL_cleanse(st->key, sizeof(st->key));
    return APR_SUCCESS;
}

/* The state lives on the initial request: internal redirects (ErrorDocument,
 * mod_rewrite, mod_dir's fast redirect keeps request_config) find it there;
 * subrequests never get one. */
zeq_state *zeq_request_state(request_rec *r)
{
    while (r->prev != NULL) {
        r = r->prev;
    }
    return ap_get_module_config(r->request_config, &zeq_e2e_module);
}

static zeq_state *zeq_request_state_new(request_rec *r)
{
    zeq_state *st = apr_pcalloc(r->pool, sizeof(*st));

    apr_pool_cleanup_register(r->pool, st, zeq_request_state_cleanup,
                              apr_pool_cleanup_null);
    ap_set_module_config(r->request_config, &zeq_e2e_module, st);
    return st;
}

static int zeq_request_is_nph(const request_rec *r)
{
    const char *base;

    if (r->handler == NULL || r->filename == NULL
        || (strcmp(r->handler, "cgi-script") != 0
            && strcmp(r->handler, "application/x-httpd-cgi") != 0)) {
        return 0;
    }
    base = strrchr(r->filename, '/');
    base = base ? base + 1 : r->filename;
    return strncmp(base, "nph-", 4) == 0;
}

static int zeq_request_has_body(const request_rec *r)
{
    const char *cl = apr_table_get(r->headers_in, "Content-Length");

    return apr_table_get(r->headers_in, "Transfer-Encoding") != NULL
           || (cl != NULL && strspn(cl, "0 \t") != strlen(cl));
}

static int zeq_request_too_large(request_rec *r)
{
    return zeq_error_send(r, HTTP_REQUEST_ENTITY_TOO_LARGE,
                          ZEQ_E2E_ERR_TOO_LARGE,
                          "the encrypted body is over the limit");
}

/* Reads the whole envelope from the input filters and decrypts it into
 * st->plain; returns OK or the answer to send. Nothing is released to the
 * application unless the tag verifies. */
static int zeq_request_decrypt(request_rec *r, zeq_state *st,
                               apr_off_t limit)
{
    unsigned char head[ZEQ_ENVELOPE_OVERHEAD];
    apr_size_t head_len = 0;
    apr_off_t total = 0;
    apr_bucket_brigade *bb;
    zeq_envelope_ctx *cipher = NULL;
    const char *cl = apr_table_get(r->headers_in, "Content-Length");
    apr_status_t rv;
    int seen_eos = 0, result = OK;

    if (cl != NULL) {
        apr_off_t n;
        char *end;
        if (apr_strtoff(&n, cl, &end, 10) == APR_SUCCESS && *end == '\0'
            && n > limit) {
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, ZEQLOG(40001)
                          "encrypted body of %" APR_OFF_T_FMT " bytes over "
                          "ZeqE2EMaxRequestBody %" APR_OFF_T_FMT, n, limit);
            return zeq_request_too_large(r);
        }
    }
    bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    st->plain = apr_brigade_create(r->pool, r->connection->bucket_alloc);

    while (!seen_eos && result == OK) {
        apr_bucket *e;

        rv = ap_get_brigade(r->input_filters, bb, AP_MODE_READBYTES,
                            APR_BLOCK_READ, ZEQ_READ_CHUNK);
        if (rv != APR_SUCCESS) {
            int status = ap_map_http_request_error(rv, HTTP_BAD_REQUEST);
            ap_log_rerror(APLOG_MARK, APLOG_INFO, rv, r, ZEQLOG(40002)
                          "reading the encrypted body failed (%d)", status);
            if (status == HTTP_REQUEST_ENTITY_TOO_LARGE) {
                result = zeq_request_too_large(r);
            }
            else {
                result = status;
            }
            break;
        }
        while (!APR_BRIGADE_EMPTY(bb) && result == OK) {
            const char *data;
            apr_size_t len;

            e = APR_BRIGADE_FIRST(bb);
            if (APR_BUCKET_IS_EOS(e)) {
                seen_eos = 1;
                apr_bucket_delete(e);
                continue;
            }
            if (APR_BUCKET_IS_METADATA(e)) {
                apr_bucket_delete(e);
                continue;
            }
            rv = apr_bucket_read(e, &data, &len, APR_BLOCK_READ);
            if (rv != APR_SUCCESS) {
                result = ap_map_http_request_error(rv, HTTP_BAD_REQUEST);
                break;
            }
            total += (apr_off_t)len;
            if (total > limit) {
                ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, ZEQLOG(40003)
                              "encrypted body over ZeqE2EMaxRequestBody %"
                              APR_OFF_T_FMT, limit);
                result = zeq_request_too_large(r);
                break;
            }
            if (head_len < sizeof(head)) {
                apr_size_t take = sizeof(head) - head_len;
                if (take > len) {
                    take = len;
                }
                memcpy(head + head_len, data, take);
                head_len += take;
                data += take;
                len -= take;
                if (head_len == sizeof(head)) {
                    cipher = zeq_envelope_ctx_new();
                    if (cipher == NULL
                        || zeq_envelope_open_init(
                               cipher, st->key, head,
                               head + ZEQ_ENVELOPE_IV_LEN, NULL, 0)
                               != ZEQ_OK) {
                        result = HTTP_INTERNAL_SERVER_ERROR;
                        break;
                    }
                }
            }
            if (len > 0) {
                unsigned char *out = apr_palloc(r->pool, len);
                if (zeq_envelope_open_update(cipher,
                                             (const unsigned char *)data,
                                             len, out) != ZEQ_OK) {
                    result = HTTP_INTERNAL_SERVER_ERROR;
                    break;
                }
                APR_BRIGADE_INSERT_TAIL(st->plain,
                    apr_bucket_pool_create((const char *)out, len, r->pool,
                                           r->connection->bucket_alloc));
                st->plain_len += (apr_off_t)len;
            }
            apr_bucket_delete(e);
        }
        apr_brigade_cleanup(bb);
    }

    if (result == OK) {
        if (head_len < sizeof(head)) {
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, ZEQLOG(40004)
                          "envelope of %" APR_OFF_T_FMT " bytes is shorter "
                          "than %d", total, ZEQ_ENVELOPE_OVERHEAD);
            result = zeq_error_send(r, HTTP_BAD_REQUEST, ZEQ_E2E_ERR_DECRYPT,
                                    "the envelope is shorter than 28 bytes");
        }
        else if (zeq_envelope_open_final(cipher) != ZEQ_OK) {
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, ZEQLOG(40005)
                          "envelope of %" APR_OFF_T_FMT " bytes does not "
                          "verify under the session key", total);
            result = zeq_error_send(r, HTTP_BAD_REQUEST, ZEQ_E2E_ERR_DECRYPT,
                                    "the envelope does not verify");
        }
    }
    zeq_envelope_ctx_free(cipher);
    if (result != OK) {
        apr_brigade_cleanup(st->plain);
        st->plain_len = 0;
        /* The body is consumed (or unreadable): nothing left to discard. */
        r->connection->keepalive = AP_CONN_CLOSE;
    }
    return result;
}

/* Rewrites the request headers so the application sees the plaintext. */
static void zeq_request_rewrite_headers(request_rec *r, const zeq_state *st)
{
    const char *inner = apr_table_get(r->headers_in,
                                      ZEQ_E2E_HDR_CONTENT_TYPE);

    apr_table_unset(r->headers_in, "Transfer-Encoding");
    apr_table_unset(r->headers_in, "Content-Encoding");
    apr_table_setn(r->headers_in, "Content-Length",
                   apr_off_t_toa(r->pool, st->plain_len));
    apr_table_setn(r->headers_in, "Content-Type",
                   inner && *inner ? inner : ZEQ_E2E_DEFAULT_INNER_TYPE);
    apr_table_unset(r->headers_in, ZEQ_E2E_HDR_CONTENT_TYPE);
    r->clength = st->plain_len;
}

/* Prepares a response that will be sealed: no compression the outer
 * Content-Encoding would describe, no ranges of the ciphertext, no caching. */
static void zeq_request_prepare_response(request_rec *r)
{
    apr_table_setn(r->subprocess_env, "no-gzip", "1");
    apr_table_setn(r->subprocess_env, "no-brotli", "1");
    apr_table_unset(r->headers_in, "Accept-Encoding");
    apr_table_unset(r->headers_in, "Range");
    apr_table_unset(r->headers_in, "If-Range");
    r->no_cache = 1;
}

int zeq_request_session(request_rec *r, const zeq_srv_conf *sc,
                        const char *id, unsigned char key[ZEQ_KEY_LEN])
{
    apr_status_t rv;

    if (sc->secret == NULL) {
        return zeq_error_unconfigured(r);
    }
    rv = id != NULL ? zeq_session_lookup(r, sc, id, key) : APR_NOTFOUND;
    if (rv == APR_SUCCESS) {
        return OK;
    }
    OPENSSL_cleanse(key, ZEQ_KEY_LEN);
    if (rv == APR_NOTFOUND) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, ZEQLOG(40009)
                      "unknown or expired session");
        return zeq_error_send(r, HTTP_UNAUTHORIZED, ZEQ_E2E_ERR_SESSION,
                              "the session is unknown or expired; perform "
                              "a new handshake");
    }
    ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, ZEQLOG(40010)
                  "session cache lookup failed");
    return zeq_error_send(r, HTTP_SERVICE_UNAVAILABLE,
                          ZEQ_E2E_ERR_UNAVAILABLE,
                          "the session store is unavailable");
}

static int zeq_request_fixups(request_rec *r)
{
    zeq_dir_conf *dc;
    zeq_srv_conf *sc;
    zeq_state *st;
    const char *sid, *accept;
    int is_envelope, wants, required, result;

    if (r->main != NULL || r->prev != NULL) {
        /* Subrequests never decrypt; internal redirects reuse the state. */
        return DECLINED;
    }
    dc = zeq_config_dir(r);
    if (!zeq_config_enabled(dc)) {
        return DECLINED;
    }
    sc = zeq_config_srv(r->server);
    /* The module's own resources stay open, also under ZeqE2ERequire. */
    if (strcmp(r->uri, zeq_config_handshake_path(sc)) == 0) {
        r->handler = ZEQ_HANDSHAKE_HANDLER;
        return DECLINED;
    }
    if (strcmp(r->uri, zeq_config_client_path(sc)) == 0) {
        r->handler = ZEQ_CLIENT_HANDLER;
        return DECLINED;
    }
    switch (zeq_ws_fixups(r, dc, sc)) {
    case DECLINED:
        break;          /* not a WebSocket upgrade */
    case OK:
        return DECLINED;
    default:
        return DONE;
    }
    required = zeq_config_required(dc);
    sid = apr_table_get(r->headers_in, ZEQ_E2E_HDR_SESSION);
    is_envelope = zeq_proto_media_type_is(
        apr_table_get(r->headers_in, "Content-Type"), ZEQ_E2E_MEDIA_TYPE);

    if (sid == NULL) {
        if (is_envelope) {
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, ZEQLOG(40006)
                          "envelope without " ZEQ_E2E_HDR_SESSION);
            return zeq_error_send(r, HTTP_BAD_REQUEST, ZEQ_E2E_ERR_DECRYPT,
                                  "an envelope needs the "
                                  ZEQ_E2E_HDR_SESSION " header");
        }
        if (required) {
            if (zeq_request_is_nph(r)) {
                goto nph;
            }
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, ZEQLOG(40007)
                          "plaintext request refused: ZeqE2ERequire On");
            return zeq_error_send(r, HTTP_FORBIDDEN, ZEQ_E2E_ERR_REQUIRED,
                                  "this location requires end-to-end "
                                  "encryption");
        }
        return DECLINED;
    }

    st = zeq_request_state_new(r);
    result = zeq_request_session(r, sc, sid, st->key);
    if (result != OK) {
        ap_set_module_config(r->request_config, &zeq_e2e_module, NULL);
        return result;
    }
    if (zeq_request_is_nph(r)) {
        ap_set_module_config(r->request_config, &zeq_e2e_module, NULL);
        goto nph;
    }
    /* The answer depends on these two headers, encrypted or not: tell
     * shared caches (httpd merges duplicate Vary tokens). */
    apr_table_mergen(r->err_headers_out, "Vary", "Accept, "
                     ZEQ_E2E_HDR_SESSION);
    accept = apr_table_get(r->headers_in, "Accept");
    wants = zeq_proto_accept_lists(accept, ZEQ_E2E_MEDIA_TYPE);
    if (required && (!wants || (!is_envelope && zeq_request_has_body(r)))) {
        ap_set_module_config(r->request_config, &zeq_e2e_module, NULL);
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, ZEQLOG(40011)
                      "request refused under ZeqE2ERequire On: %s",
                      wants ? "plaintext body" : "Accept does not list "
                      ZEQ_E2E_MEDIA_TYPE);
        return zeq_error_send(r, HTTP_FORBIDDEN, ZEQ_E2E_ERR_REQUIRED,
                              "this location requires an encrypted body "
                              "and an encrypted response");
    }
    if (is_envelope) {
        result = zeq_request_decrypt(r, st, zeq_config_max_request(dc));
        if (result != OK) {
            ap_set_module_config(r->request_config, &zeq_e2e_module, NULL);
            return result;
        }
        st->decrypted = 1;
        zeq_request_rewrite_headers(r, st);
    }
    /* The session id is the client's credential: the application does not
     * need it. */
    apr_table_unset(r->headers_in, ZEQ_E2E_HDR_SESSION);
    if (wants) {
        st->encrypt = 1;
        zeq_request_prepare_response(r);
    }
    if (APLOGrdebug(r)) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, ZEQLOG(40012)
                      "session request: body %s, response %s",
                      st->decrypted ? apr_psprintf(r->pool, "decrypted (%"
                                                   APR_OFF_T_FMT " bytes)",
                                                   st->plain_len)
                                    : "not encrypted",
                      st->encrypt ? "to be encrypted" : "in plaintext");
    }
    return DECLINED;

nph:
    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, ZEQLOG(40013)
                  "refusing nph- CGI script %s in an encrypted location: "
                  "its output would bypass encryption", r->filename);
    return zeq_error_send(r, HTTP_INTERNAL_SERVER_ERROR, ZEQ_E2E_ERR_ENCRYPT,
                          "this resource cannot be served encrypted");
}

/* Serves the decrypted body: everything in one reply, then EOS, so that
 * mod_proxy_http sees the end at once (and never spools to disk). */
static apr_status_t zeq_request_in_filter(ap_filter_t *f,
                                          apr_bucket_brigade *bb,
                                          ap_input_mode_t mode,
                                          apr_read_type_e block,
                                          apr_off_t readbytes)
{
    zeq_state *st = f->ctx;
    apr_bucket *e;
    apr_status_t rv;

    if (mode != AP_MODE_READBYTES && mode != AP_MODE_GETLINE
        && mode != AP_MODE_SPECULATIVE && mode != AP_MODE_EXHAUSTIVE) {
        return ap_get_brigade(f->next, bb, mode, block, readbytes);
    }
    if (mode == AP_MODE_SPECULATIVE) {
        apr_off_t left = readbytes;
        for (e = APR_BRIGADE_FIRST(st->plain);
             e != APR_BRIGADE_SENTINEL(st->plain) && left > 0;
             e = APR_BUCKET_NEXT(e)) {
            apr_bucket *copy;
            rv = apr_bucket_copy(e, &copy);
            if (rv != APR_SUCCESS) {
                return rv;
            }
            if ((apr_off_t)copy->length > left) {
                apr_bucket_split(copy, (apr_size_t)left);
                apr_bucket_destroy(APR_BUCKET_NEXT(copy));
            }
            left -= (apr_off_t)copy->length;
            APR_BRIGADE_INSERT_TAIL(bb, copy);
        }
        if (APR_BRIGADE_EMPTY(st->plain)) {
            APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_eos_create(
                                            f->c->bucket_alloc));
        }
        return APR_SUCCESS;
    }
    if (mode == AP_MODE_GETLINE && !APR_BRIGADE_EMPTY(st->plain)) {
        apr_bucket_brigade *line = apr_brigade_create(f->r->pool,
                                                      f->c->bucket_alloc);
        rv = apr_brigade_split_line(line, st->plain, APR_BLOCK_READ,
                                    HUGE_STRING_LEN);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        APR_BRIGADE_CONCAT(bb, line);
        return APR_SUCCESS;
    }
    APR_BRIGADE_CONCAT(bb, st->plain);
    APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_eos_create(f->c->bucket_alloc));
    return APR_SUCCESS;
}

static void zeq_request_insert_filter(request_rec *r)
{
    zeq_state *st;
    ap_filter_t *f;

    if (r->main != NULL) {
        return;
    }
    st = zeq_request_state(r);
    if (st == NULL || !st->decrypted) {
        return;
    }
    for (f = r->input_filters; f != NULL; f = f->next) {
        if (f->frec == zeq_request_in_handle) {
            return;
        }
    }
    ap_add_input_filter_handle(zeq_request_in_handle, st, r, r->connection);
}

static int zeq_e2e_request_decrypted(request_rec *r)
{
    zeq_state *st = zeq_request_state(r->main ? r->main : r);

    return st != NULL && st->decrypted;
}

void zeq_request_register_hooks(apr_pool_t *p)
{
    /* Before mod_proxy's fixups, which build the backend URL from the
     * query string (the WebSocket e2e_session parameter goes first). */
    static const char *const zeq_request_before[] = {"mod_proxy.c", NULL};

    (void)p;
    /* First among fixups: after authentication and authorization (no body
     * is read for refused clients), before mod_dir, mod_rewrite's internal
     * redirects and the handler, which reads Content-Length. */
    ap_hook_fixups(zeq_request_fixups, NULL, zeq_request_before,
                   APR_HOOK_FIRST);
    /* Not from fixups: an internal redirect resets the input filters. */
    ap_hook_insert_filter(zeq_request_insert_filter, NULL, NULL,
                          APR_HOOK_MIDDLE);
    /* Above HTTP_IN and the protocol filters, below RESOURCE and CONTENT_SET
     * input filters (which then see plaintext). */
    zeq_request_in_handle = ap_register_input_filter(
        "ZEQ_E2E_PLAINTEXT", zeq_request_in_filter, NULL,
        AP_FTYPE_CONTENT_SET + 5);
    APR_REGISTER_OPTIONAL_FN(zeq_e2e_request_decrypted);
}
