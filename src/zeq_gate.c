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
#include "zeq_seal.h"
#include "zeq_session.h"
#include "zeq_stats.h"
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

/* Looks the session up into ex->keys. version: the protocol the request
 * speaks (a v1 request needs a secret on this host; v2 does not). */
static zeq_session_state zeq_gate_lookup(request_rec *r,
                                         const zeq_srv_conf *sc,
                                         const char *id, int version,
                                         zeq_exchange *ex)
{
    apr_status_t rv;

    if (version == 1 && sc->secret == NULL) {
        return ZEQ_SESSION_UNCONFIGURED;
    }
    if (id == NULL) {
        return ZEQ_SESSION_UNKNOWN;
    }
    rv = zeq_session_lookup(r, sc, id, &ex->keys, NULL);
    if (rv == APR_SUCCESS) {
        /* A copy: a WebSocket opening's id is in its caller's stack, and
         * the seal is checked (its AAD built) after that caller returned. */
        ex->sid = apr_pstrdup(r->pool, id);
        ex->version = ex->keys.version;
        return ZEQ_SESSION_VALID;
    }
    zeq_keys_cleanse(&ex->keys);
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

static void zeq_gate_bad(zeq_exchange *ex, const char *code, const char *why)
{
    if (ex->bad == NULL) {
        ex->bad = why;
        ex->bad_code = code;
    }
}

/* The request target a v2 seal binds: as sent on the request line (the
 * :path over HTTP/2); of an absolute-form target its path and query. */
static const char *zeq_gate_target(request_rec *r)
{
    const char *t = r->unparsed_uri ? r->unparsed_uri : "";
    const char *p = strstr(t, "://");

    if (*t != '/' && *t != '*' && p != NULL) {
        p = strchr(p + 3, '/');
        return p ? p : "/";
    }
    return t;
}

static char *zeq_gate_trim(apr_pool_t *p, const char *v)
{
    const char *end;

    if (v == NULL) {
        return NULL;
    }
    while (*v == ' ' || *v == '\t') {
        v++;
    }
    end = v + strlen(v);
    while (end > v && (end[-1] == ' ' || end[-1] == '\t')) {
        end--;
    }
    return apr_pstrmemdup(p, v, (apr_size_t)(end - v));
}

static int zeq_gate_seq(const char *text, zeq_exchange *ex)
{
    unsigned long long v;
    int rv = zeq_proto_seq_parse(text, &v);

    ex->seq = (apr_uint64_t)v;
    return rv;
}

/* The v2 parameters of an opening (PROTOCOL.md 18.11): e2e_seq and
 * e2e_seal exactly once each, by their exact names; the target the seal
 * binds and the application receives is the target without the three. */
static void zeq_gate_opening_v2(request_rec *r, zeq_exchange *ex,
                                const char *target)
{
    static const char *const names[] = {ZEQ_WS_QUERY_PARAM, "e2e_seq",
                                        "e2e_seal", NULL};
    const char *q = strchr(target, '?'), *sq, *sl;
    apr_size_t sqlen, sllen;
    char *out;
    int rv = zeq_proto_opening_params(q ? q + 1 : "", &sq, &sqlen, &sl,
                                      &sllen);
    const char *seq = sq ? apr_pstrmemdup(r->pool, sq, sqlen) : NULL;
    const char *seal = sl ? apr_pstrmemdup(r->pool, sl, sllen) : NULL;

    if (rv != ZEQ_OK) {
        zeq_gate_bad(ex, ZEQ_E2E_ERR_BAD_REQUEST,
                     "e2e_session, e2e_seq and e2e_seal must each appear "
                     "once, under exactly these names");
    }
    else if (seq == NULL || seal == NULL) {
        zeq_gate_bad(ex, ZEQ_E2E_ERR_DECRYPT,
                     "a version 2 session opens a WebSocket with e2e_seq and "
                     "e2e_seal");
    }
    else if (zeq_gate_seq(seq, ex) != ZEQ_OK) {
        zeq_gate_bad(ex, ZEQ_E2E_ERR_DECRYPT, "e2e_seq is not a sequence "
                     "number");
    }
    ex->seal = seal;
    out = apr_palloc(r->pool, strlen(target) + 1);
    zeq_proto_target_without(target, names, out);
    ex->target = out;
    ex->inner_type = "";
}

/* A query string without the WebSocket parameters: v1 every e2e_session
 * item, whatever its spelling; v2 the three parameters by their exact
 * names (what its seal binds). */
static char *zeq_gate_query_without(request_rec *r, const char *query,
                                    int version)
{
    static const char *const names[] = {ZEQ_WS_QUERY_PARAM, "e2e_seq",
                                        "e2e_seal", NULL};
    char dummy[ZEQ_PROTO_SESSION_ID_MAX + 1];
    char *t, *o;

    if (version == 2) {
        t = apr_pstrcat(r->pool, "?", query, NULL);
        o = apr_palloc(r->pool, strlen(t) + 1);
        zeq_proto_target_without(t, names, o);
        return *o == '?' ? o + 1 : o;
    }
    o = apr_pstrdup(r->pool, query);
    zeq_proto_query_take(o, ZEQ_WS_QUERY_PARAM, dummy, sizeof(dummy));
    return o;
}

/* Takes the WebSocket parameters out of everywhere the target is read
 * later: the query (mod_proxy builds the backend URL from it), the proxy:
 * file name, and the request line (%r in the access log, mod_status). */
static void zeq_gate_strip_params(request_rec *r, int version)
{
    const char *sp1, *sp2;
    char *q;

    if (r->args != NULL) {
        char *args = zeq_gate_query_without(r, r->args, version);
        r->args = *args ? args : NULL;
        r->parsed_uri.query = r->args;
    }
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
        char *fq = zeq_gate_query_without(r, q + 1, version);
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
}

/* The request line of an internal redirect without the WebSocket
 * parameters (it is a copy of its initial request's, made before the gate
 * saw that one), and the initial query it carries for CGI scripts
 * (REDIRECT_QUERY_STRING): an ErrorDocument's script gets neither. */
static void zeq_gate_strip_redirect(request_rec *r, int version)
{
    const char *sp1 = r->the_request ? strchr(r->the_request, ' ') : NULL;
    const char *sp2 = r->the_request ? strrchr(r->the_request, ' ') : NULL;
    const char *rq = apr_table_get(r->subprocess_env, "REDIRECT_QUERY_STRING");

    if (sp1 != NULL && sp2 != NULL && sp2 > sp1) {
        char *target = apr_pstrmemdup(r->pool, sp1 + 1,
                                      (apr_size_t)(sp2 - sp1 - 1));
        char *q = strchr(target, '?'), *kept;
        if (q != NULL) {
            *q = '\0';
            kept = zeq_gate_query_without(r, q + 1, version);
            r->the_request = apr_pstrcat(
                r->pool,
                apr_pstrmemdup(r->pool, r->the_request,
                               (apr_size_t)(sp1 - r->the_request)),
                " ", target, *kept ? "?" : "", kept, sp2, NULL);
        }
    }
    if (rq != NULL) {
        apr_table_set(r->subprocess_env, "REDIRECT_QUERY_STRING",
                      zeq_gate_query_without(r, rq, version));
    }
}

static void zeq_gate_recognise_opening(request_rec *r, const zeq_srv_conf *sc,
                                       zeq_exchange *ex)
{
    char id[ZEQ_PROTO_SESSION_ID_MAX + 1];
    char *args = r->args ? apr_pstrdup(r->pool, r->args) : NULL;
    const char *target = zeq_gate_target(r);
    char dummy[4];
    int found = args ? zeq_proto_query_take(args, ZEQ_WS_QUERY_PARAM, id,
                                            sizeof(id)) : 0;
    int v2 = 0;

    ex->opening = 1;
    /* Only the parameter counts on a WebSocket; the header never reaches
     * the backend. */
    apr_table_unset(r->headers_in, ZEQ_E2E_HDR_SESSION);
    if (found == 0) {
        ex->kind = ZEQ_EXCHANGE_PLAIN;    /* a plaintext WebSocket */
        return;
    }
    ex->kind = ZEQ_EXCHANGE_WEBSOCKET;
    /* A v2 opening names its sequence number (any spelling counts here:
     * the version decides how strictly the rest is read). */
    if (args != NULL) {
        char *a2 = apr_pstrdup(r->pool, r->args);
        v2 = zeq_proto_query_take(a2, "e2e_seq", dummy, sizeof(dummy)) != 0
             || zeq_proto_query_take(a2, "e2e_seal", dummy, sizeof(dummy)) != 0;
    }
    if (found == -2) {
        zeq_gate_bad(ex, ZEQ_E2E_ERR_BAD_REQUEST,
                     "e2e_session is given more than once");
    }
    else if (zeq_gate_opening_has_body(r)) {
        zeq_gate_bad(ex, ZEQ_E2E_ERR_BAD_REQUEST,
                     "a WebSocket opening must not carry a body");
    }
    ex->session = zeq_gate_lookup(r, sc, found > 0 ? id : NULL, v2 ? 2 : 1,
                                  ex);
    if (ex->session == ZEQ_SESSION_VALID) {
        if (ex->version != (v2 ? 2 : 1)) {
            zeq_gate_bad(ex, ZEQ_E2E_ERR_DECRYPT,
                         ex->version == 2
                         ? "a version 2 session opens a WebSocket with "
                           "e2e_seq and e2e_seal"
                         : "a version 1 session takes no e2e_seq or "
                           "e2e_seal");
        }
        else if (ex->version == 2) {
            zeq_gate_opening_v2(r, ex, target);
        }
    }
    zeq_gate_strip_params(r, ex->version == 2 ? 2 : 1);
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
    const char *sid, *seq;
    int version;

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
    seq = apr_table_get(r->headers_in, ZEQ_E2E_HDR_SEQ);
    version = seq != NULL ? 2 : 1;
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
    ex->session = zeq_gate_lookup(r, sc, sid, version, ex);
    if (ex->session != ZEQ_SESSION_VALID) {
        return ex;
    }
    if (ex->version != version) {
        zeq_gate_bad(ex, ZEQ_E2E_ERR_DECRYPT,
                     ex->version == 2
                     ? "a version 2 session needs X-E2E-Seq"
                     : "a version 1 session takes no X-E2E-Seq");
        return ex;
    }
    if (version == 2) {
        ex->seal = apr_table_get(r->headers_in, ZEQ_E2E_HDR_SEAL);
        ex->target = zeq_gate_target(r);
        ex->inner_type = zeq_gate_trim(r->pool,
                                       apr_table_get(r->headers_in,
                                                     ZEQ_E2E_HDR_CONTENT_TYPE));
        if (zeq_gate_seq(zeq_gate_trim(r->pool, seq), ex) != ZEQ_OK) {
            zeq_gate_bad(ex, ZEQ_E2E_ERR_DECRYPT,
                         "X-E2E-Seq is not a sequence number");
            return ex;
        }
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

/* The exchange of r: the one its initial request began, or, when that
 * request died before header_parser (a %2F in its path, a path above the
 * root, a RewriteRule [F] of its virtual host), one recognised now from its
 * session and Accept with the configuration it had, so that its error page
 * and ErrorDocument are sealed, and its session id reaches neither the
 * application nor the access log. */
static zeq_exchange *zeq_gate_exchange(request_rec *r)
{
    zeq_exchange *ex = zeq_exchange_get(r);
    request_rec *first;

    if (ex != NULL) {
        return ex;
    }
    first = zeq_exchange_initial(r);
    ex = zeq_gate_recognise(first, 1);
    if (ex->kind != ZEQ_EXCHANGE_OFF) {
        apr_table_unset(first->headers_in, ZEQ_E2E_HDR_SESSION);
        apr_table_unset(first->headers_in, ZEQ_E2E_HDR_SEQ);
        apr_table_unset(first->headers_in, ZEQ_E2E_HDR_SEAL);
        apr_table_unset(r->headers_in, ZEQ_E2E_HDR_SESSION);
        apr_table_unset(r->headers_in, ZEQ_E2E_HDR_SEQ);
        apr_table_unset(r->headers_in, ZEQ_E2E_HDR_SEAL);
        /* Whatever it was meant to be: no WebSocket parameter in the
         * request line, nor in those of the redirects made since. */
        zeq_gate_strip_params(first, 1);
        zeq_gate_strip_params(first, 2);
        for (; r != first && r != NULL; r = r->prev) {
            zeq_gate_strip_redirect(r, 1);
            zeq_gate_strip_redirect(r, 2);
        }
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
        return zeq_error_store_unavailable(r);
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

static int zeq_gate_malformed(request_rec *r, const zeq_exchange *ex)
{
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, ZEQLOG(70002)
                  "request refused: %s", ex->bad);
    return zeq_error_send(r, HTTP_BAD_REQUEST, ex->bad_code, ex->bad);
}

static int zeq_gate_decrypt_failed(request_rec *r, const char *why)
{
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, ZEQLOG(70003)
                  "version 2 request refused: %s", why);
    return zeq_error_send(r, HTTP_BAD_REQUEST, ZEQ_E2E_ERR_DECRYPT, why);
}

/* Verifies a v2 seal (X-E2E-Seal, or e2e_seal of an opening): the sealed
 * empty message under k_c2s with the request's AAD. OK, or the answer. */
static int zeq_gate_check_seal(request_rec *r, const zeq_exchange *ex,
                               const char *method)
{
    apr_size_t aadlen, ptlen = 0;
    unsigned char *aad = zeq_exchange_request_aad(r->pool, ex, method,
                                                  &aadlen);
    int rv = zeq_seal_open(ex->keys.c2s, aad, aadlen, ex->seal,
                           ex->seal ? strlen(ex->seal) : 0, &ptlen);

    if (rv == ZEQ_ERR_BAD) {
        return zeq_gate_decrypt_failed(r, "the seal is missing or not "
                                          "base64url");
    }
    if (rv != ZEQ_OK || ptlen != 0) {
        return zeq_gate_decrypt_failed(r, rv != ZEQ_OK
                                          ? "the seal does not verify for "
                                            "this method, target, sequence "
                                            "number and type"
                                          : "the seal holds a body");
    }
    return OK;
}

/* Accepts the verified request's sequence number, once. */
static int zeq_gate_accept_seq(request_rec *r, const zeq_srv_conf *sc,
                               const zeq_exchange *ex)
{
    apr_status_t rv = zeq_session_accept_seq(r, sc, ex->sid, ex->seq);

    if (rv == APR_SUCCESS) {
        return OK;
    }
    if (rv == APR_EEXIST) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, ZEQLOG(70004)
                      "sequence number %" APR_UINT64_T_FMT " refused: seen "
                      "before or too old", ex->seq);
        return zeq_error_send(r, HTTP_BAD_REQUEST, ZEQ_E2E_ERR_REPLAYED,
                              "this sequence number was used before (or is "
                              "too old)");
    }
    if (rv == APR_NOTFOUND) {
        return zeq_error_send(r, HTTP_UNAUTHORIZED, ZEQ_E2E_ERR_SESSION,
                              "the session is unknown or expired; perform "
                              "a new handshake");
    }
    ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, ZEQLOG(70005)
                  "session cache update failed");
    return zeq_error_store_unavailable(r);
}

static int zeq_gate_opening(request_rec *r, zeq_exchange *ex,
                            const zeq_dir_conf *dc)
{
    int result;

    /* The opening itself first (a body, a repeated parameter), then the
     * session, then what the session's version asks for. */
    if (ex->bad != NULL && strcmp(ex->bad_code, ZEQ_E2E_ERR_BAD_REQUEST) == 0) {
        return zeq_gate_malformed(r, ex);
    }
    result = zeq_gate_session_error(r, ex);
    if (result != OK) {
        return result;
    }
    if (ex->bad != NULL) {
        return zeq_gate_malformed(r, ex);
    }
    if (ex->version == 2) {
        result = zeq_gate_check_seal(r, ex, "GET");
        if (result == OK) {
            result = zeq_gate_accept_seq(r, zeq_config_srv(r->server), ex);
        }
        if (result != OK) {
            return result;
        }
    }
    /* Frames are sealed whole: no compression extension with the
     * backend. And no other protocol than WebSocket: "Upgrade: websocket,
     * h2c" would have the core switch the connection to HTTP/2. */
    apr_table_unset(r->headers_in, "Sec-WebSocket-Extensions");
    apr_table_setn(r->headers_in, "Upgrade", "websocket");
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
    if (ex->bad != NULL) {
        return zeq_gate_malformed(r, ex);
    }
    if (ex->version == 2) {
        /* A body travels sealed, a bodiless request carries its seal. */
        if (ex->has_body && !ex->envelope) {
            return zeq_gate_decrypt_failed(r, "a version 2 body must be a "
                                              "sealed message ("
                                              ZEQ_E2E_MEDIA_TYPE ")");
        }
        if (ex->has_body && ex->seal != NULL) {
            return zeq_gate_decrypt_failed(r, "a request with a body carries "
                                              "no " ZEQ_E2E_HDR_SEAL);
        }
        if (!ex->has_body) {
            result = zeq_gate_check_seal(r, ex, r->method);
            if (result != OK) {
                return result;
            }
        }
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
    if (ex->envelope && (ex->has_body || ex->version == 1)) {
        result = zeq_request_decrypt(r, ex, zeq_config_max_request(dc));
        if (result != OK) {
            return result;
        }
    }
    /* Verified: now its number counts, once. */
    if (ex->version == 2) {
        result = zeq_gate_accept_seq(r, sc, ex);
        if (result != OK) {
            return result;
        }
        apr_table_unset(r->headers_in, ZEQ_E2E_HDR_SEQ);
        apr_table_unset(r->headers_in, ZEQ_E2E_HDR_SEAL);
    }
    /* The session id is the client's credential: the application does not
     * need it. No protocol switch either: an h2c upgrade would answer on a
     * stream rebuilt from these headers, and an Upgrade: websocket on a
     * request that is no opening would have mod_proxy tunnel it; such
     * requests are answered over HTTP/1.1 like any other. */
    apr_table_unset(r->headers_in, ZEQ_E2E_HDR_SESSION);
    apr_table_unset(r->headers_in, "Upgrade");
    zeq_stats_opened(ex->decrypted ? ex->plain_len : 0);
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
    if (r->prev == NULL && r->main == NULL) {
        if (zeq_exchange_get(r) == NULL) {
            zeq_gate_recognise(r, 0);
        }
    }
    else {
        zeq_gate_exchange(r);
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
    ex = zeq_gate_exchange(r);
    if (zeq_config_enabled(dc) && !zeq_gate_allows(dc, ex)) {
        return zeq_gate_refuse_required(r, ex);
    }
    return DECLINED;
}

/* TRACE is answered during map_to_storage (by http_core), before
 * header_parser and with the server's configuration only: the gate looks
 * at it there, with the configuration of its location (walked here, then
 * put back for the other map_to_storage hooks). */
static int zeq_gate_trace(request_rec *r)
{
    ap_conf_vector_t *server_conf = r->per_dir_config;
    zeq_exchange *ex;
    int result = DECLINED;

    if (r->method_number != M_TRACE || r->main != NULL || r->prev != NULL
        || zeq_exchange_get(r) != NULL) {
        return DECLINED;
    }
    if (ap_location_walk(r) == OK) {
        ex = zeq_gate_recognise(r, 0);
        result = zeq_gate_initial(r, ex, zeq_config_dir(r));
        if (result == DECLINED && zeq_exchange_sealed(ex)) {
            zeq_response_add_filter(r);
        }
    }
    r->per_dir_config = server_conf;
    return result;
}

/* Runs before every handler of every request (the core's h2c upgrade,
 * mod_proxy, mod_cgi included): mod_dir's fast redirect, mod_actions and
 * ErrorDocument can change the handler and the location after fixups. */
static int zeq_gate_handler(request_rec *r)
{
    zeq_dir_conf *dc = zeq_config_dir(r);
    zeq_exchange *ex = zeq_gate_exchange(r);

    /* An encrypted exchange stays one where the module is off (an
     * ErrorDocument or a rewrite into such a location). */
    if (zeq_gate_is_nph(r)
        && ((zeq_config_enabled(dc) && zeq_config_required(dc))
            || (ex != NULL && ex->session == ZEQ_SESSION_VALID))) {
        return zeq_gate_refuse_nph(r, ex);
    }
    if (!zeq_config_enabled(dc) || zeq_gate_own_handler(r)) {
        return DECLINED;
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
    ex = zeq_gate_exchange(r);
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
    ex = zeq_gate_exchange(r);
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
    ap_hook_map_to_storage(zeq_gate_trace, NULL, NULL, APR_HOOK_REALLY_FIRST);
    /* Not from fixups: an internal redirect resets the input filters. */
    ap_hook_insert_filter(zeq_gate_insert_filter, NULL, NULL,
                          APR_HOOK_MIDDLE);
    ap_hook_insert_error_filter(zeq_gate_insert_error_filter, NULL, NULL,
                                APR_HOOK_MIDDLE);
}
