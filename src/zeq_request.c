/* The request reader (see zeq_request.h): in the fixups hook of the
 * initial request the gate calls zeq_request_decrypt, which reads the
 * message whole and verifies it; the plaintext input filter then serves
 * the plaintext to whatever reads the body (CGI, mod_proxy, a module).
 * A body of up to ZEQ_REQUEST_KEEP bytes keeps its plaintext from that
 * first pass; a larger one keeps its ciphertext in a spool (memory, then
 * an unlinked temporary file) and is opened again as it is read
 * (zeq_body.h): a client that stalls before its last bytes, or a handler
 * that reads slowly, pins one chunk of memory, not the body. */
#include "zeq_request.h"
#include "zeq_body.h"
#include "zeq_error.h"
#include "zeq_record.h"
#include "zeq_spool.h"

#include "apr_strings.h"
#include "http_core.h"

#include <openssl/crypto.h>

#define ZEQ_READ_CHUNK (64 * 1024)
/* Ciphertext up to which a body keeps its plaintext from the first pass. */
#define ZEQ_REQUEST_KEEP ZEQ_SPOOL_MEMORY

static ap_filter_rec_t *zeq_request_in_handle;

typedef struct {
    zeq_exchange *ex;
    apr_bucket_brigade *line;   /* reused by AP_MODE_GETLINE */
} zeq_request_in_ctx;

static int zeq_request_too_large(request_rec *r)
{
    return zeq_error_send(r, HTTP_REQUEST_ENTITY_TOO_LARGE,
                          ZEQ_E2E_ERR_TOO_LARGE,
                          "the encrypted body is over the limit");
}

/* Rewrites the request headers so the application sees the plaintext. */
static void zeq_request_rewrite_headers(request_rec *r, const zeq_exchange *ex)
{
    const char *inner = apr_table_get(r->headers_in,
                                      ZEQ_E2E_HDR_CONTENT_TYPE);

    apr_table_unset(r->headers_in, "Transfer-Encoding");
    apr_table_unset(r->headers_in, "Content-Encoding");
    apr_table_setn(r->headers_in, "Content-Length",
                   apr_off_t_toa(r->pool, ex->plain_len));
    apr_table_setn(r->headers_in, "Content-Type",
                   inner && *inner ? inner : ZEQ_E2E_DEFAULT_INNER_TYPE);
    apr_table_unset(r->headers_in, ZEQ_E2E_HDR_CONTENT_TYPE);
}

/* The record reader hands over plaintext: counted, and kept in the
 * exchange's brigade (in the request's pool; served only once the whole
 * message verified) unless the body is opened again as it is read. */
typedef struct {
    request_rec *r;
    zeq_exchange *ex;
    zeq_spool *spool;           /* the ciphertext, for a second pass */
    int again;                  /* the plaintext is not kept */
} zeq_request_sink;

/* Drops the plaintext kept so far (cleansed). */
static void zeq_request_drop_plain(zeq_exchange *ex)
{
    apr_bucket *e;

    for (e = APR_BRIGADE_FIRST(ex->plain); e != APR_BRIGADE_SENTINEL(ex->plain);
         e = APR_BUCKET_NEXT(e)) {
        const char *data;
        apr_size_t len;
        if (apr_bucket_read(e, &data, &len, APR_BLOCK_READ) == APR_SUCCESS) {
            OPENSSL_cleanse((void *)data, len);
        }
    }
    apr_brigade_cleanup(ex->plain);
}

static int zeq_request_emit(void *baton, const unsigned char *data,
                            size_t len)
{
    zeq_request_sink *sink = baton;
    request_rec *r = sink->r;
    char *copy;

    sink->ex->plain_len += (apr_off_t)len;
    if (sink->again) {
        return 0;
    }
    copy = apr_pmemdup(r->pool, data, len);
    APR_BRIGADE_INSERT_TAIL(sink->ex->plain,
        apr_bucket_pool_create(copy, len, r->pool,
                               r->connection->bucket_alloc));
    return 0;
}

/* Keeps len bytes of ciphertext for a second pass: from the first byte
 * when the body is known to be large, else from the first one beyond
 * ZEQ_REQUEST_KEEP (the kept plaintext is then dropped). */
static apr_status_t zeq_request_keep(zeq_request_sink *sink,
                                     const char *data, apr_size_t len,
                                     apr_off_t total)
{
    unsigned char *copy;

    if (sink->spool == NULL) {
        return APR_SUCCESS;
    }
    if (!sink->again && total > ZEQ_REQUEST_KEEP) {
        sink->again = 1;
        zeq_request_drop_plain(sink->ex);
    }
    copy = malloc(len ? len : 1);
    if (copy == NULL) {
        return APR_ENOMEM;
    }
    memcpy(copy, data, len);
    return zeq_spool_add(sink->spool, copy, len);
}

static apr_status_t zeq_request_reader_cleanup(void *data)
{
    zeq_record_reader_free(data);
    return APR_SUCCESS;
}

/* The answer for a message that does not open. */
static int zeq_request_refuse(request_rec *r, const zeq_exchange *ex, int rv,
                              apr_off_t total)
{
    const char *why = rv == ZEQ_ERR_SHORT
                      ? (ex->version == 1 ? "the envelope is shorter than 28 "
                                            "bytes"
                                          : "the sealed message ends before "
                                            "its final record")
                      : rv == ZEQ_ERR_AUTH
                      ? (ex->version == 1 ? "the envelope does not verify"
                                          : "the sealed message does not "
                                            "verify for this method, target, "
                                            "sequence number and type")
                      : "the sealed message is malformed";

    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, ZEQLOG(40005)
                  "encrypted body of %" APR_OFF_T_FMT " bytes refused "
                  "(version %d): %s", total, ex->version, why);
    return zeq_error_send(r, HTTP_BAD_REQUEST, ZEQ_E2E_ERR_DECRYPT, why);
}

int zeq_request_decrypt(request_rec *r, zeq_exchange *ex, apr_off_t limit)
{
    apr_off_t total = 0, n;
    apr_bucket_brigade *bb;
    zeq_record_reader *rd;
    zeq_request_sink sink;
    unsigned char *aad = NULL;
    apr_size_t aadlen = 0;
    const char *cl = apr_table_get(r->headers_in, "Content-Length");
    apr_status_t rv;
    int seen_eos = 0, result = OK, zrv = ZEQ_OK;

    /* HTTP_IN has checked the Content-Length already. */
    if (cl != NULL && ap_parse_strict_length(&n, cl) && n > limit) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, ZEQLOG(40001)
                      "encrypted body of %" APR_OFF_T_FMT " bytes over "
                      "ZeqE2EMaxRequestBody %" APR_OFF_T_FMT, n, limit);
        return zeq_request_too_large(r);
    }
    ex->plain = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    sink.r = r;
    sink.ex = ex;
    /* A body known to fit keeps its plaintext, one known not to keeps its
     * ciphertext; any other keeps both until it is known which pass serves
     * it. */
    n = -1;
    if (cl != NULL && !ap_parse_strict_length(&n, cl)) {
        n = -1;
    }
    sink.again = n > ZEQ_REQUEST_KEEP;
    sink.spool = n >= 0 && n <= ZEQ_REQUEST_KEEP
                 ? NULL
                 : zeq_spool_create(r->pool, r->connection->bucket_alloc,
                                    NULL, NULL, NULL);
    if (ex->version == 2) {
        aad = zeq_exchange_request_aad(r->pool, ex, r->method, &aadlen);
    }
    rd = zeq_record_reader_new(ex->version, ex->keys.c2s, aad, aadlen,
                               ZEQ_RECORD_MAX, zeq_request_emit, &sink);
    if (rd == NULL) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    apr_pool_cleanup_register(r->pool, rd, zeq_request_reader_cleanup,
                              apr_pool_cleanup_null);
    bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);

    while (!seen_eos && result == OK && zrv == ZEQ_OK) {
        rv = ap_get_brigade(r->input_filters, bb, AP_MODE_READBYTES,
                            APR_BLOCK_READ, ZEQ_READ_CHUNK);
        if (rv != APR_SUCCESS) {
            int status = ap_map_http_request_error(rv, HTTP_BAD_REQUEST);
            ap_log_rerror(APLOG_MARK, APLOG_INFO, rv, r, ZEQLOG(40002)
                          "reading the encrypted body failed (%d)", status);
            result = status == HTTP_REQUEST_ENTITY_TOO_LARGE
                     ? zeq_request_too_large(r) : status;
            break;
        }
        while (!APR_BRIGADE_EMPTY(bb) && result == OK && zrv == ZEQ_OK) {
            apr_bucket *e = APR_BRIGADE_FIRST(bb);
            const char *data;
            apr_size_t len;

            if (APR_BUCKET_IS_EOS(e)) {
                seen_eos = 1;
            }
            else if (!APR_BUCKET_IS_METADATA(e)) {
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
                zrv = zeq_record_reader_feed(rd, (const unsigned char *)data,
                                             len);
                if (zrv == ZEQ_OK
                    && zeq_request_keep(&sink, data, len, total)
                       != APR_SUCCESS) {
                    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, ZEQLOG(40014)
                                  "cannot keep the encrypted body for its "
                                  "second pass (temporary directory full "
                                  "or unwritable?)");
                    result = HTTP_INTERNAL_SERVER_ERROR;
                    break;
                }
            }
            apr_bucket_delete(e);
        }
        apr_brigade_cleanup(bb);
    }
    if (result == OK && zrv == ZEQ_OK) {
        zrv = zeq_record_reader_finish(rd);
    }
    if (result == OK && zrv != ZEQ_OK) {
        result = zrv == ZEQ_ERR_CRYPTO ? HTTP_INTERNAL_SERVER_ERROR
                                       : zeq_request_refuse(r, ex, zrv, total);
    }
    apr_pool_cleanup_run(r->pool, rd, zeq_request_reader_cleanup);
    if (result == OK && sink.again) {
        apr_bucket_brigade *ct = apr_brigade_create(r->pool,
                                                    r->connection->bucket_alloc);
        zeq_body *body;

        zeq_spool_drain(sink.spool, ct);
        body = zeq_body_create(r->pool, r->connection->bucket_alloc, ct,
                               ex->version, ex->keys.c2s, aad, aadlen,
                               ex->plain_len);
        if (body == NULL) {
            result = HTTP_INTERNAL_SERVER_ERROR;
        }
        else {
            zeq_body_buckets(body, ex->plain);
        }
    }
    else if (sink.spool != NULL) {
        zeq_spool_discard(sink.spool);
    }
    if (result != OK) {
        zeq_request_drop_plain(ex);
        ex->plain_len = 0;
        /* The body is consumed (or unreadable): nothing left to discard. */
        r->connection->keepalive = AP_CONN_CLOSE;
        return result;
    }
    ex->decrypted = 1;
    zeq_request_rewrite_headers(r, ex);
    return OK;
}

/* True when r's body goes to a mod_proxy scheme handler that prefetches it
 * (mod_proxy_http, mod_proxy_fcgi) or keeps what it is given (h2, h2c).
 * Those get the whole plaintext and EOS in their first read: they then
 * send it with its Content-Length, where a body that arrives in parts
 * would make them spool the plaintext to a temporary file (a request-level
 * input filter makes them distrust Content-Length). Every other reader
 * (CGI, mod_php, mod_perl, mod_proxy_ajp, ...) gets at most the readbytes
 * it asks for. */
static int zeq_request_whole_reader(request_rec *r)
{
    /* ws: and wss: too: mod_proxy_wstunnel hands mod_proxy_http every
     * request to them that is no upgrade. */
    static const char *const schemes[] = {"http:", "https:", "ws:", "wss:",
                                          "fcgi:", "h2:", "h2c:", NULL};
    const char *url;
    int i;

    if (r->proxyreq == PROXYREQ_NONE || r->filename == NULL
        || strncmp(r->filename, "proxy:", 6) != 0) {
        return 0;
    }
    url = r->filename + 6;
    if (ap_cstr_casecmpn(url, "balancer:", 9) == 0) {
        /* The member mod_proxy_balancer chose (its URL). */
        url = apr_table_get(r->subprocess_env, "BALANCER_WORKER_NAME");
        if (url == NULL) {
            return 0;
        }
    }
    for (i = 0; schemes[i] != NULL; i++) {
        if (ap_cstr_casecmpn(url, schemes[i], strlen(schemes[i])) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Copies up to readbytes of the plaintext into bb without consuming it.
 * Each copy goes into bb before it is split, so that the split touches
 * bb's ring and never the plaintext's. */
static apr_status_t zeq_request_speculative(zeq_exchange *ex,
                                            apr_bucket_brigade *bb,
                                            apr_off_t readbytes)
{
    apr_off_t left = readbytes;
    apr_bucket *e;
    apr_status_t rv;

    for (e = APR_BRIGADE_FIRST(ex->plain);
         e != APR_BRIGADE_SENTINEL(ex->plain) && left > 0;
         e = APR_BUCKET_NEXT(e)) {
        apr_bucket *copy;
        const char *data;
        apr_size_t len;

        /* A body opened as it is read opens in order: the original
         * first (it becomes a heap bucket of what it opened), then the
         * copy of that. */
        rv = apr_bucket_read(e, &data, &len, APR_BLOCK_READ);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        rv = apr_bucket_copy(e, &copy);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        APR_BRIGADE_INSERT_TAIL(bb, copy);
        if ((apr_off_t)copy->length > left) {
            rv = apr_bucket_split(copy, (apr_size_t)left);
            if (rv != APR_SUCCESS) {
                return rv;
            }
            apr_bucket_delete(APR_BUCKET_NEXT(copy));
        }
        left -= (apr_off_t)copy->length;
    }
    return APR_SUCCESS;
}

static apr_status_t zeq_request_in_filter(ap_filter_t *f,
                                          apr_bucket_brigade *bb,
                                          ap_input_mode_t mode,
                                          apr_read_type_e block,
                                          apr_off_t readbytes)
{
    zeq_request_in_ctx *ctx = f->ctx;
    zeq_exchange *ex = ctx->ex;
    apr_bucket *after;
    apr_status_t rv;

    if (mode != AP_MODE_READBYTES && mode != AP_MODE_GETLINE
        && mode != AP_MODE_SPECULATIVE && mode != AP_MODE_EXHAUSTIVE) {
        return ap_get_brigade(f->next, bb, mode, block, readbytes);
    }
    /* A line that ends where its bucket ends leaves a zero-length bucket
     * behind (apr_brigade_split_line): drop it, so that a plaintext whose
     * last byte is a newline answers EOS next, never an empty brigade. */
    while (!APR_BRIGADE_EMPTY(ex->plain)
           && APR_BRIGADE_FIRST(ex->plain)->length == 0) {
        apr_bucket_delete(APR_BRIGADE_FIRST(ex->plain));
    }
    /* The plaintext is all here: never a partial answer, never the
     * network. After the last byte, EOS. */
    if (APR_BRIGADE_EMPTY(ex->plain)) {
        APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_eos_create(f->c->bucket_alloc));
        return APR_SUCCESS;
    }
    switch (mode) {
    case AP_MODE_SPECULATIVE:
        return zeq_request_speculative(ex, bb, readbytes);
    case AP_MODE_GETLINE:
        rv = apr_brigade_split_line(ctx->line, ex->plain, APR_BLOCK_READ,
                                    HUGE_STRING_LEN);
        APR_BRIGADE_CONCAT(bb, ctx->line);
        return rv;
    case AP_MODE_READBYTES:
        if (readbytes > 0 && !zeq_request_whole_reader(f->r)) {
            rv = apr_brigade_partition(ex->plain, readbytes, &after);
            if (rv != APR_SUCCESS && rv != APR_INCOMPLETE) {
                return rv;
            }
            while (APR_BRIGADE_FIRST(ex->plain) != after) {
                apr_bucket *e = APR_BRIGADE_FIRST(ex->plain);
                APR_BUCKET_REMOVE(e);
                APR_BRIGADE_INSERT_TAIL(bb, e);
            }
            break;
        }
        APR_BRIGADE_CONCAT(bb, ex->plain);    /* the whole plaintext */
        break;
    default:
        APR_BRIGADE_CONCAT(bb, ex->plain);
        break;
    }
    if (APR_BRIGADE_EMPTY(ex->plain)) {
        APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_eos_create(f->c->bucket_alloc));
    }
    return APR_SUCCESS;
}

void zeq_request_add_filter(request_rec *r, zeq_exchange *ex)
{
    zeq_request_in_ctx *ctx;
    ap_filter_t *f;

    for (f = r->input_filters; f != NULL; f = f->next) {
        if (f->frec == zeq_request_in_handle) {
            return;
        }
    }
    ctx = apr_palloc(r->pool, sizeof(*ctx));
    ctx->ex = ex;
    ctx->line = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    ap_add_input_filter_handle(zeq_request_in_handle, ctx, r, r->connection);
}

static int zeq_e2e_request_decrypted(request_rec *r)
{
    zeq_exchange *ex = zeq_exchange_get(r);

    return ex != NULL && ex->decrypted;
}

void zeq_request_register_hooks(apr_pool_t *p)
{
    (void)p;
    /* Above HTTP_IN and the protocol filters, below RESOURCE and CONTENT_SET
     * input filters (which then see plaintext). */
    zeq_request_in_handle = ap_register_input_filter(
        "ZEQ_E2E_PLAINTEXT", zeq_request_in_filter, NULL,
        AP_FTYPE_CONTENT_SET + 5);
    APR_REGISTER_OPTIONAL_FN(zeq_e2e_request_decrypted);
}
