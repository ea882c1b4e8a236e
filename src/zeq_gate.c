/* The request gate (see zeq_gate.h).
 *
 * When it decides:
 * - header_parser of the initial request (after the URL's location is
 *   known, before authentication): recognise the exchange: its kind, its
 *   session, whether its answer is sealed. From then on every answer to an
 *   encrypting client is sealed, other modules' errors (a 401 of
 *   mod_auth_basic) included. A request Apache refuses before that (while
 *   reading its head) is recognised when its error page is set up.
 * - fixups of the initial request (after authentication, before the
 *   handler): answer the exchange's own errors (session, Require, nph,
 *   malformed openings), decrypt the body, arm a WebSocket.
 * - fixups and handler of every request that can produce content for the
 *   client, internal redirects (ErrorDocument, mod_rewrite, mod_actions),
 *   mod_dir's fast redirect and subrequests (mod_include) included: its own
 *   location's ZeqE2ERequire and the nph- rule, judged on the exchange.
 * Internal redirects and subrequests inherit the exchange: once sealed,
 * everything the client receives is sealed. */
#include "zeq_gate.h"
#include "zeq_config.h"
#include "zeq_error.h"
#include "zeq_exchange.h"
#include "zeq_proto.h"
#include "zeq_request.h"
#include "zeq_response.h"
#include "zeq_session.h"
#include "zeq_ws.h"

#include "apr_strings.h"
#include "http_core.h"

#include <openssl/crypto.h>

#define ZEQ_WS_QUERY_PARAM "e2e_session"

/* --- what the request is ------------------------------------------------ */

/* True when the request carries body bytes (chunked, or a Content-Length
 * other than 0). */
static int zeq_gate_has_body(const request_rec *r)
{
    const char *cl = apr_table_get(r->headers_in, "Content-Length");
    apr_off_t n;

    if (apr_table_get(r->headers_in, "Transfer-Encoding") != NULL) {
        return 1;
    }
    return cl != NULL && (!ap_parse_strict_length(&n, cl) || n > 0);
}

static int zeq_gate_has_token(request_rec *r, const char *header,
                              const char *token)
{
    const char *v = apr_table_get(r->headers_in, header);

    return v != NULL && ap_find_token(r->pool, v, token);
}

/* True for a WebSocket opening (RFC 6455 4.1): a GET with Connection:
 * upgrade, Upgrade: websocket, Sec-WebSocket-Key and -Version. Over
 * HTTP/2, mod_http2 turns an extended CONNECT into exactly such a GET on
 * its secondary connection (HTTP/2 forbids those headers otherwise). Its
 * body is judged apart (zeq_gate_opening_has_body). */
static int zeq_gate_is_opening(request_rec *r)
{
    return r->method_number == M_GET && !r->header_only
           && zeq_gate_has_token(r, "Upgrade", "websocket")
           && zeq_gate_has_token(r, "Connection", "upgrade")
           && apr_table_get(r->headers_in, "Sec-WebSocket-Key") != NULL
           && apr_table_get(r->headers_in, "Sec-WebSocket-Version") != NULL;
}

/* An opening with body bytes: mod_proxy would forward them to the backend
 * before the 101, as frames nobody sealed. mod_http2 marks its openings
 * chunked itself and ends their request body at once: there only a
 * Content-Length counts. */
static int zeq_gate_opening_has_body(const request_rec *r)
{
    const char *cl;
    apr_off_t n;

    if (r->connection->master == NULL) {
        return zeq_gate_has_body(r);
    }
    cl = apr_table_get(r->headers_in, "Content-Length");
    return cl != NULL && (!ap_parse_strict_length(&n, cl) || n > 0);
}

/* True when r's handler is a CGI script whose name starts with nph-: it
 * writes to the connection itself, past every filter (mod_cgi, mod_cgid
 * decide so on the file name). */
static int zeq_gate_is_nph(const request_rec *r)
{
    const char *handler = r->handler ? r->handler : r->content_type;
    const char *base;

    if (handler == NULL || r->filename == NULL
        || (strcmp(handler, "cgi-script") != 0
            && strcmp(handler, "application/x-httpd-cgi") != 0)) {
        return 0;
    }
    base = strrchr(r->filename, '/');
    base = base ? base + 1 : r->filename;
    return strncmp(base, "nph-", 4) == 0;
}

static int zeq_gate_own_handler(const request_rec *r)
{
    return r->handler != NULL
           && (strcmp(r->handler, ZEQ_HANDSHAKE_HANDLER) == 0
               || strcmp(r->handler, ZEQ_CLIENT_HANDLER) == 0);
}

/* Removes e2e_session from the target everywhere it is read later: the
 * query (mod_proxy builds the backend URL from it), the proxy: file name,
 * and the request line (%r in the access log, mod_status). Returns what
 * zeq_proto_query_take returns. */
static int zeq_gate_take_session_param(request_rec *r, char *id,
                                       apr_size_t cap)
{
    char *args, *q, dummy[ZEQ_PROTO_SESSION_ID_MAX + 1];
    const char *sp1, *sp2;
    int found;

    if (r->args == NULL) {
        return 0;
    }
    args = apr_pstrdup(r->pool, r->args);
    found = zeq_proto_query_take(args, ZEQ_WS_QUERY_PARAM, id, cap);
    if (found == 0) {
        return 0;
    }
    r->args = *args ? args : NULL;
    r->parsed_uri.query = r->args;
    q = strchr(r->unparsed_uri, '?');
    if (q != NULL) {
        r->unparsed_uri = apr_pstrcat(
            r->pool,
            apr_pstrmemdup(r->pool, r->unparsed_uri,
                           (apr_size_t)(q - r->unparsed_uri)),
            r->args ? "?" : "", r->args ? r->args : "", NULL);
    }
    if (r->filename != NULL && strncmp(r->filename, "proxy:", 6) == 0
        && (q = strchr(r->filename, '?')) != NULL) {
        char *fq = apr_pstrdup(r->pool, q + 1);
        zeq_proto_query_take(fq, ZEQ_WS_QUERY_PARAM, dummy, sizeof(dummy));
        r->filename = apr_pstrcat(r->pool,
                                  apr_pstrmemdup(r->pool, r->filename,
                                                 (apr_size_t)(q - r->filename)),
                                  *fq ? "?" : "", fq, NULL);
    }
    /* "METHOD target PROTOCOL": the target replaced, the rest kept. */
    sp1 = r->the_request ? strchr(r->the_request, ' ') : NULL;
    sp2 = r->the_request ? strrchr(r->the_request, ' ') : NULL;
    if (sp1 != NULL && sp2 != NULL && sp2 > sp1) {
        r->the_request = apr_pstrcat(
            r->pool,
            apr_pstrmemdup(r->pool, r->the_request,
                           (apr_size_t)(sp1 - r->the_request)),
            " ", r->unparsed_uri, sp2, NULL);
    }
    return found;
}

/* Looks the session up into ex->key. */
static zeq_session_state zeq_gate_lookup(request_rec *r,
                                         const zeq_srv_conf *sc,
                                         const char *id, zeq_exchange *ex)
{
    apr_status_t rv;

    if (sc->secret == NULL) {
        return ZEQ_SESSION_UNCONFIGURED;
    }
    if (id == NULL) {
        return ZEQ_SESSION_UNKNOWN;
    }
    rv = zeq_session_lookup(r, sc, id, ex->key);
    if (rv == APR_SUCCESS) {
        return ZEQ_SESSION_VALID;
    }
    OPENSSL_cleanse(ex->key, sizeof(ex->key));
    if (rv == APR_NOTFOUND) {
        return ZEQ_SESSION_UNKNOWN;
    }
    ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, ZEQLOG(40010)
                  "session cache lookup failed");
    return ZEQ_SESSION_UNAVAILABLE;
}

/* A sealed answer: no compression the outer Content-Encoding would
 * describe, no ranges of the ciphertext, no caching. */
static void zeq_gate_seal_answer(request_rec *r, zeq_exchange *ex)
{
    ex->encrypt = 1;
    apr_table_setn(r->subprocess_env, "no-gzip", "1");
    apr_table_setn(r->subprocess_env, "no-brotli", "1");
    apr_table_unset(r->headers_in, "Accept-Encoding");
    apr_table_unset(r->headers_in, "Range");
    apr_table_unset(r->headers_in, "If-Range");
    r->no_cache = 1;
}

static void zeq_gate_recognise_opening(request_rec *r, const zeq_srv_conf *sc,
                                       zeq_exchange *ex)
{
    char id[ZEQ_PROTO_SESSION_ID_MAX + 1];
    int found = zeq_gate_take_session_param(r, id, sizeof(id));

    ex->opening = 1;
    /* Only the parameter counts on a WebSocket; the header never reaches
     * the backend. */
    apr_table_unset(r->headers_in, ZEQ_E2E_HDR_SESSION);
    if (found == 0) {
        ex->kind = ZEQ_EXCHANGE_PLAIN;    /* a plaintext WebSocket */
        return;
    }
    ex->kind = ZEQ_EXCHANGE_WEBSOCKET;
    if (found == -2) {
        ex->bad = "e2e_session is given more than once";
    }
    else if (zeq_gate_opening_has_body(r)) {
        ex->bad = "a WebSocket opening must not carry a body";
    }
    ex->session = zeq_gate_lookup(r, sc, found > 0 ? id : NULL, ex);
    if (ex->session == ZEQ_SESSION_VALID && ex->bad == NULL) {
        ex->meets_require = 1;
        /* An answer other than the 101 is an ordinary HTTP answer: sealed
         * (the WebSocket filters let nothing else pass). */
        zeq_gate_seal_answer(r, ex);
        apr_table_mergen(r->err_headers_out, "Vary",
                         "Accept, " ZEQ_E2E_HDR_SESSION);
    }
}

/* Recognises the exchange of an initial request. early: the request died
 * before header_parser (its head could not be read whole): only its
 * session and Accept are looked at, with the configuration of its virtual
 * host (the location is not known yet). */
static zeq_exchange *zeq_gate_recognise(request_rec *r, int early)
{
    zeq_exchange *ex = zeq_exchange_create(r);
    zeq_srv_conf *sc;
    const char *sid;

    if (!zeq_config_enabled(zeq_config_dir(r))) {
        ex->kind = ZEQ_EXCHANGE_OFF;
        return ex;
    }
    sc = zeq_config_srv(r->server);
    if (!early && r->uri != NULL
        && (strcmp(r->uri, zeq_config_handshake_path(sc)) == 0
            || strcmp(r->uri, zeq_config_client_path(sc)) == 0)) {
        ex->kind = ZEQ_EXCHANGE_OWN;
        return ex;
    }
    if (!early && zeq_gate_is_opening(r)) {
        zeq_gate_recognise_opening(r, sc, ex);
        return ex;
    }
    sid = apr_table_get(r->headers_in, ZEQ_E2E_HDR_SESSION);
    ex->envelope = zeq_proto_media_type_is(
        apr_table_get(r->headers_in, "Content-Type"), ZEQ_E2E_MEDIA_TYPE);
    ex->has_body = zeq_gate_has_body(r);
    ex->wants = zeq_proto_accept_lists(apr_table_get(r->headers_in, "Accept"),
                                       ZEQ_E2E_MEDIA_TYPE);
    if (sid == NULL) {
        ex->kind = ZEQ_EXCHANGE_PLAIN;
        return ex;
    }
    ex->kind = ZEQ_EXCHANGE_HTTP;
    ex->session = zeq_gate_lookup(r, sc, sid, ex);
    if (ex->session != ZEQ_SESSION_VALID) {
        return ex;
    }
    /* The answer depends on these two headers, encrypted or not: tell
     * shared caches (httpd merges duplicate Vary tokens). */
    apr_table_mergen(r->err_headers_out, "Vary",
                     "Accept, " ZEQ_E2E_HDR_SESSION);
    ex->meets_require = ex->wants && (ex->envelope || !ex->has_body);
    if (ex->wants) {
        zeq_gate_seal_answer(r, ex);
    }
    return ex;
}

/* --- refusals ------------------------------------------------------------ */

/* Refuses a request with a module error. A main request answers it (in
 * plaintext: the sealer steps aside); a subrequest only fails, with the
 * status and no output (its output would land inside its main request's
 * answer). */
static int zeq_gate_refuse(request_rec *r, zeq_exchange *ex, int status,
                           const char *code, const char *message)
{
    if (r->main != NULL) {
        return status;
    }
    if (ex != NULL) {
        ex->refused = 1;
    }
    return zeq_error_send(r, status, code, message);
}

static int zeq_gate_refuse_nph(request_rec *r, zeq_exchange *ex)
{
    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, ZEQLOG(40013)
                  "refusing nph- CGI script %s in an encrypted location: "
                  "its output would bypass encryption", r->filename);
    return zeq_gate_refuse(r, ex, HTTP_INTERNAL_SERVER_ERROR,
                           ZEQ_E2E_ERR_ENCRYPT,
                           "this resource cannot be served encrypted");
}

static int zeq_gate_refuse_required(request_rec *r, zeq_exchange *ex)
{
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, ZEQLOG(70001)
                  "%s of %s refused: ZeqE2ERequire On applies to %s and the "
                  "exchange is not encrypted",
                  r->main ? "subrequest" : r->prev ? "internal redirect"
                                                   : "request",
                  r->uri, r->uri);
    return zeq_gate_refuse(r, ex, HTTP_FORBIDDEN, ZEQ_E2E_ERR_REQUIRED,
                           "this location requires end-to-end encryption");
}

/* The session's own errors, answered before the application runs. */
static int zeq_gate_session_error(request_rec *r, const zeq_exchange *ex)
{
    switch (ex->session) {
    case ZEQ_SESSION_UNCONFIGURED:
        return zeq_error_unconfigured(r);
    case ZEQ_SESSION_UNAVAILABLE:
        return zeq_error_send(r, HTTP_SERVICE_UNAVAILABLE,
                              ZEQ_E2E_ERR_UNAVAILABLE,
                              "the session store is unavailable");
    case ZEQ_SESSION_VALID:
        return OK;
    default:
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, ZEQLOG(40009)
                      "unknown or expired session");
        return zeq_error_send(r, HTTP_UNAUTHORIZED, ZEQ_E2E_ERR_SESSION,
                              "the session is unknown or expired; perform "
                              "a new handshake");
    }
}

/* True when a request at dc may produce content for this exchange. */
static int zeq_gate_allows(const zeq_dir_conf *dc, const zeq_exchange *ex)
{
    return !zeq_config_required(dc)
           || (ex != NULL && ex->meets_require && !ex->refused);
}

/* --- the initial request ------------------------------------------------- */

static int zeq_gate_opening(request_rec *r, zeq_exchange *ex,
                            const zeq_dir_conf *dc)
{
    int result;

    if (ex->bad != NULL) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, ZEQLOG(60005)
                      "WebSocket opening refused: %s", ex->bad);
        return zeq_error_send(r, HTTP_BAD_REQUEST, ZEQ_E2E_ERR_BAD_REQUEST,
                              ex->bad);
    }
    result = zeq_gate_session_error(r, ex);
    if (result != OK) {
        return result;
    }
    /* Frames are sealed whole: no compression extension with the
     * backend. */
    apr_table_unset(r->headers_in, "Sec-WebSocket-Extensions");
    /* When the module closes the socket (1008, 1009), the tunnel ends with
     * the client's side, as a WebSocket should. */
    apr_table_setn(r->subprocess_env, "proxy-nohalfclose", "1");
    if (zeq_ws_arm(r, ex, (apr_size_t)zeq_config_max_message(dc)) != OK) {
        return DONE;
    }
    return DECLINED;
}

static int zeq_gate_initial(request_rec *r, zeq_exchange *ex,
                            const zeq_dir_conf *dc)
{
    const zeq_srv_conf *sc = zeq_config_srv(r->server);
    int required = zeq_config_required(dc), result;

    switch (ex->kind) {
    case ZEQ_EXCHANGE_OFF:
        return DECLINED;
    case ZEQ_EXCHANGE_OWN:
        /* The module's own resources stay open, also under
         * ZeqE2ERequire. */
        r->handler = strcmp(r->uri, zeq_config_handshake_path(sc)) == 0
                     ? ZEQ_HANDSHAKE_HANDLER : ZEQ_CLIENT_HANDLER;
        return DECLINED;
    case ZEQ_EXCHANGE_WEBSOCKET:
        return zeq_gate_opening(r, ex, dc);
    case ZEQ_EXCHANGE_PLAIN:
        if (ex->opening) {
            if (required) {
                ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, ZEQLOG(60004)
                              "plaintext WebSocket refused: ZeqE2ERequire "
                              "On");
                return zeq_error_send(r, HTTP_FORBIDDEN,
                                      ZEQ_E2E_ERR_REQUIRED,
                                      "this location requires end-to-end "
                                      "encryption");
            }
            return DECLINED;   /* a plaintext WebSocket, untouched */
        }
        if (ex->envelope) {
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, ZEQLOG(40006)
                          "envelope without " ZEQ_E2E_HDR_SESSION);
            return zeq_error_send(r, HTTP_BAD_REQUEST, ZEQ_E2E_ERR_DECRYPT,
                                  "an envelope needs the "
                                  ZEQ_E2E_HDR_SESSION " header");
        }
        if (required) {
            if (zeq_gate_is_nph(r)) {
                return zeq_gate_refuse_nph(r, ex);
            }
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, ZEQLOG(40007)
                          "plaintext request refused: ZeqE2ERequire On");
            return zeq_error_send(r, HTTP_FORBIDDEN, ZEQ_E2E_ERR_REQUIRED,
                                  "this location requires end-to-end "
                                  "encryption");
        }
        return DECLINED;
    case ZEQ_EXCHANGE_HTTP:
        break;
    }

    result = zeq_gate_session_error(r, ex);
    if (result != OK) {
        return result;
    }
    if (zeq_gate_is_nph(r)) {
        return zeq_gate_refuse_nph(r, ex);
    }
    if (required && !ex->meets_require) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, ZEQLOG(40011)
                      "request refused under ZeqE2ERequire On: %s",
                      ex->wants ? "plaintext body" : "Accept does not list "
                      ZEQ_E2E_MEDIA_TYPE);
        return zeq_error_send(r, HTTP_FORBIDDEN, ZEQ_E2E_ERR_REQUIRED,
                              "this location requires an encrypted body "
                              "and an encrypted response");
    }
    if (ex->envelope) {
        result = zeq_request_decrypt(r, ex, zeq_config_max_request(dc));
        if (result != OK) {
            return result;
        }
    }
    /* The session id is the client's credential: the application does not
     * need it. No protocol switch either: an h2c upgrade would answer on a
     * stream rebuilt from these headers, and an Upgrade: websocket on a
     * request that is no opening would have mod_proxy tunnel it; such
     * requests are answered over HTTP/1.1 like any other. */
    apr_table_unset(r->headers_in, ZEQ_E2E_HDR_SESSION);
    apr_table_unset(r->headers_in, "Upgrade");
    if (APLOGrdebug(r)) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, ZEQLOG(40012)
                      "session request: body %s, response %s",
                      ex->decrypted ? apr_psprintf(r->pool, "decrypted (%"
                                                   APR_OFF_T_FMT " bytes)",
                                                   ex->plain_len)
                                    : "not encrypted",
                      ex->encrypt ? "to be encrypted" : "in plaintext");
    }
    return DECLINED;
}

/* --- hooks ------------------------------------------------------------- */

static int zeq_gate_header_parser(request_rec *r)
{
    /* Internal redirects inherit the exchange of their initial request
     * (header_parser never runs for subrequests). */
    if (r->prev == NULL && r->main == NULL && zeq_exchange_get(r) == NULL) {
        zeq_gate_recognise(r, 0);
    }
    return DECLINED;
}

static int zeq_gate_fixups(request_rec *r)
{
    zeq_dir_conf *dc = zeq_config_dir(r);
    zeq_exchange *ex = zeq_exchange_get(r);

    if (r->main == NULL && r->prev == NULL) {
        if (ex == NULL) {
            ex = zeq_gate_recognise(r, 0);
        }
        return zeq_gate_initial(r, ex, dc);
    }
    /* An internal redirect or a subrequest: its own location's rules. */
    if (zeq_config_enabled(dc) && !zeq_gate_allows(dc, ex)) {
        return zeq_gate_refuse_required(r, ex);
    }
    return DECLINED;
}

/* Runs before every handler of every request (the core's h2c upgrade,
 * mod_proxy, mod_cgi included): mod_dir's fast redirect, mod_actions and
 * ErrorDocument can change the handler and the location after fixups. */
static int zeq_gate_handler(request_rec *r)
{
    zeq_dir_conf *dc = zeq_config_dir(r);
    zeq_exchange *ex;

    if (!zeq_config_enabled(dc) || zeq_gate_own_handler(r)) {
        return DECLINED;
    }
    ex = zeq_exchange_get(r);
    if (zeq_gate_is_nph(r)
        && (zeq_config_required(dc)
            || (ex != NULL && ex->session == ZEQ_SESSION_VALID))) {
        return zeq_gate_refuse_nph(r, ex);
    }
    if (!zeq_gate_allows(dc, ex)) {
        return zeq_gate_refuse_required(r, ex);
    }
    return DECLINED;
}

static void zeq_gate_insert_filter(request_rec *r)
{
    zeq_exchange *ex;

    if (r->main != NULL) {
        return;      /* a subrequest's output goes through its main's */
    }
    ex = zeq_exchange_get(r);
    if (ex == NULL) {
        return;
    }
    if (ex->decrypted) {
        zeq_request_add_filter(r, ex);
    }
    if (zeq_exchange_sealed(ex) && !zeq_gate_own_handler(r)) {
        zeq_response_add_filter(r);
    }
}

/* Apache's error pages: ap_send_error_response() resets the output
 * filters and asks again. */
static void zeq_gate_insert_error_filter(request_rec *r)
{
    zeq_exchange *ex;

    if (r->main != NULL) {
        return;
    }
    ex = zeq_exchange_get(r);
    if (ex == NULL && r->prev == NULL) {
        ex = zeq_gate_recognise(r, 1);
    }
    if (zeq_exchange_sealed(ex)) {
        zeq_response_add_filter(r);
    }
}

void zeq_gate_register_hooks(apr_pool_t *p)
{
    /* Before mod_proxy's fixups, which build the backend URL from the
     * query string (the WebSocket e2e_session parameter goes first). */
    static const char *const before_proxy[] = {"mod_proxy.c", NULL};

    (void)p;
    ap_hook_header_parser(zeq_gate_header_parser, NULL, NULL,
                          APR_HOOK_REALLY_FIRST);
    /* First among fixups: after authentication and authorization (no body
     * is read for refused clients), before mod_dir, mod_rewrite's internal
     * redirects and the handler, which reads Content-Length. */
    ap_hook_fixups(zeq_gate_fixups, NULL, before_proxy, APR_HOOK_FIRST);
    ap_hook_handler(zeq_gate_handler, NULL, NULL, APR_HOOK_REALLY_FIRST);
    /* Not from fixups: an internal redirect resets the input filters. */
    ap_hook_insert_filter(zeq_gate_insert_filter, NULL, NULL,
                          APR_HOOK_MIDDLE);
    ap_hook_insert_error_filter(zeq_gate_insert_error_filter, NULL, NULL,
                                APR_HOOK_MIDDLE);
}
