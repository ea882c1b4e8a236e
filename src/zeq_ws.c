/* Encrypted WebSockets: connection filters on a protected upgrade. Client
 * frames carry envelopes of type || message; the input filter opens them and
 * forwards ordinary (re-masked) text or binary frames to the backend; the
 * output filter seals the backend's messages into binary frames. Control
 * frames pass unchanged. The filters stay transparent until the 101 and its
 * blank line are out, and disarm when the upgrade fails.
 *
 * Lifetimes: the state lives in the request's pool (the tunnel runs inside
 * the request); a small holder in the connection's pool points to it and is
 * cleared when the request ends, so filters left behind by a refused
 * upgrade on a keep-alive connection remove themselves on their next call.
 * Frame buffers are malloc'd once per connection and reused: nothing is
 * allocated from a pool per frame. */
#include "zeq_private.h"
#include "zeq_frame.h"

#include "apr_strings.h"

#include <stdlib.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#define ZEQ_WS_QUERY_PARAM "e2e_session"

static ap_filter_rec_t *zeq_ws_in_handle;
static ap_filter_rec_t *zeq_ws_out_handle;

typedef struct zeq_ws_ctx zeq_ws_ctx;

typedef struct {
    zeq_ws_ctx *ctx;            /* NULL once the request is gone */
} zeq_ws_holder;

struct zeq_ws_ctx {
    conn_rec *c;
    zeq_ws_holder *holder;
    ap_filter_t *in_f, *out_f;
    unsigned char key[ZEQ_KEY_LEN];
    zeq_envelope_ctx *cipher;
    zeq_frame_reader from_client, from_backend;
    apr_bucket_brigade *in_tmp, *in_ready, *out_bb;
    unsigned char head[16];     /* first bytes of the response head */
    apr_size_t head_len;
    int crlf;                   /* progress through "\r\n\r\n" */
    int armed;                  /* the 101 is out: frames follow */
    int closed;                 /* a close was sent after an error */
};

static apr_status_t zeq_ws_cleanup(void *data)
{
    zeq_ws_ctx *ctx = data;

    ctx->holder->ctx = NULL;
    zeq_frame_reader_free(&ctx->from_client);
    zeq_frame_reader_free(&ctx->from_backend);
    zeq_envelope_ctx_free(ctx->cipher);
    ctx->cipher = NULL;
    OPENSSL_cleanse(ctx->key, sizeof(ctx->key));
    return APR_SUCCESS;
}

/* A heap bucket that owns a malloc'd buffer. */
static apr_bucket *zeq_ws_bucket(zeq_ws_ctx *ctx, unsigned char *buf,
                                 apr_size_t len)
{
    return apr_bucket_heap_create((const char *)buf, len, free,
                                  ctx->c->bucket_alloc);
}

/* Answers an error with a close frame straight to the client (below the
 * sealing filter) and stops both directions. */
static void zeq_ws_fail(zeq_ws_ctx *ctx, int code, const char *why)
{
    unsigned char frame[4];
    apr_bucket_brigade *bb;

    ap_log_cerror(APLOG_MARK, APLOG_INFO, 0, ctx->c, ZEQLOG(60001)
                  "WebSocket closed with %d: %s", code, why);
    if (ctx->closed) {
        return;
    }
    ctx->closed = 1;
    bb = apr_brigade_create(ctx->c->pool, ctx->c->bucket_alloc);
    APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_heap_create(
                                    (const char *)frame,
                                    zeq_frame_close(frame, code), NULL,
                                    ctx->c->bucket_alloc));
    APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_flush_create(ctx->c->bucket_alloc));
    ap_pass_brigade(ctx->out_f->next, bb);
    apr_brigade_destroy(bb);
}

/* Client message: an envelope of type || message in a binary frame. */
static int zeq_ws_open_message(zeq_ws_ctx *ctx, const zeq_frame_event *ev)
{
    unsigned char *frame, *payload, mask[4];
    size_t n, hlen;
    unsigned char hdr[ZEQ_FRAME_HEADER_MAX];
    int opcode;

    if (ev->opcode != ZEQ_FRAME_BINARY
        || ev->len < ZEQ_ENVELOPE_OVERHEAD + 1) {
        zeq_ws_fail(ctx, ZEQ_FRAME_CLOSE_POLICY, ev->opcode != ZEQ_FRAME_BINARY
                    ? "plaintext message on an encrypted socket"
                    : "envelope too short");
        return 0;
    }
    n = ev->len - ZEQ_ENVELOPE_OVERHEAD;     /* type byte + message */
    if (RAND_bytes(mask, sizeof(mask)) != 1) {
        zeq_ws_fail(ctx, ZEQ_FRAME_CLOSE_INTERNAL, "no random mask");
        return 0;
    }
    hlen = zeq_frame_write_header(hdr, ZEQ_FRAME_TEXT, mask, n - 1);
    /* Decrypt type || message so that the message lands after the header,
     * the type byte on the header's last byte, restored below. */
    frame = malloc(hlen + n);
    if (frame == NULL) {
        zeq_ws_fail(ctx, ZEQ_FRAME_CLOSE_INTERNAL, "out of memory");
        return 0;
    }
    payload = frame + hlen - 1;
    if (zeq_envelope_open_init(ctx->cipher, ctx->key, ev->data,
                               ev->data + ZEQ_ENVELOPE_IV_LEN, NULL, 0)
            != ZEQ_OK
        || zeq_envelope_open_update(ctx->cipher,
                                    ev->data + ZEQ_ENVELOPE_OVERHEAD, n,
                                    payload) != ZEQ_OK
        || zeq_envelope_open_final(ctx->cipher) != ZEQ_OK) {
        OPENSSL_cleanse(frame, hlen + n);
        free(frame);
        zeq_ws_fail(ctx, ZEQ_FRAME_CLOSE_POLICY,
                    "a client frame does not verify under the session key");
        return 0;
    }
    if (payload[0] == ZEQ_FRAME_MSG_TEXT) {
        opcode = ZEQ_FRAME_TEXT;
    }
    else if (payload[0] == ZEQ_FRAME_MSG_BINARY) {
        opcode = ZEQ_FRAME_BINARY;
    }
    else {
        OPENSSL_cleanse(frame, hlen + n);
        free(frame);
        zeq_ws_fail(ctx, ZEQ_FRAME_CLOSE_POLICY, "unknown message type");
        return 0;
    }
    hlen = zeq_frame_write_header(hdr, opcode, mask, n - 1);
    memcpy(frame, hdr, hlen);
    zeq_frame_mask(frame + hlen, n - 1, mask, 0);
    APR_BRIGADE_INSERT_TAIL(ctx->in_ready, zeq_ws_bucket(ctx, frame,
                                                          hlen + n - 1));
    return 1;
}

/* Backend message: sealed as type || message into one binary frame. */
static int zeq_ws_seal_message(zeq_ws_ctx *ctx, const zeq_frame_event *ev,
                               apr_bucket_brigade *out)
{
    unsigned char hdr[ZEQ_FRAME_HEADER_MAX], *frame, *env, type;
    size_t hlen, elen = ZEQ_ENVELOPE_OVERHEAD + 1 + ev->len;

    hlen = zeq_frame_write_header(hdr, ZEQ_FRAME_BINARY, NULL, elen);
    frame = malloc(hlen + elen);
    if (frame == NULL) {
        zeq_ws_fail(ctx, ZEQ_FRAME_CLOSE_INTERNAL, "out of memory");
        return 0;
    }
    memcpy(frame, hdr, hlen);
    env = frame + hlen;
    type = ev->opcode == ZEQ_FRAME_TEXT ? ZEQ_FRAME_MSG_TEXT
                                        : ZEQ_FRAME_MSG_BINARY;
    if (RAND_bytes(env, ZEQ_ENVELOPE_IV_LEN) != 1
        || zeq_envelope_seal_init(ctx->cipher, ctx->key, env, NULL, 0)
               != ZEQ_OK
        || zeq_envelope_seal_update(ctx->cipher, &type, 1,
                                    env + ZEQ_ENVELOPE_OVERHEAD) != ZEQ_OK
        || zeq_envelope_seal_update(ctx->cipher, ev->data, ev->len,
                                    env + ZEQ_ENVELOPE_OVERHEAD + 1)
               != ZEQ_OK
        || zeq_envelope_seal_final(ctx->cipher, env + ZEQ_ENVELOPE_IV_LEN)
               != ZEQ_OK) {
        free(frame);
        zeq_ws_fail(ctx, ZEQ_FRAME_CLOSE_INTERNAL, "encryption failed");
        return 0;
    }
    APR_BRIGADE_INSERT_TAIL(out, zeq_ws_bucket(ctx, frame, hlen + elen));
    return 1;
}

/* A copy of a control frame's raw bytes. */
static int zeq_ws_control(zeq_ws_ctx *ctx, const zeq_frame_event *ev,
                          apr_bucket_brigade *out)
{
    APR_BRIGADE_INSERT_TAIL(out, apr_bucket_heap_create(
                                     (const char *)ev->data, ev->len, NULL,
                                     ctx->c->bucket_alloc));
    return 1;
}

static apr_status_t zeq_ws_in_filter(ap_filter_t *f, apr_bucket_brigade *bb,
                                     ap_input_mode_t mode,
                                     apr_read_type_e block,
                                     apr_off_t readbytes)
{
    zeq_ws_holder *holder = f->ctx;
    zeq_ws_ctx *ctx = holder->ctx;
    apr_status_t rv;

    if (ctx == NULL) {
        ap_remove_input_filter(f);
        return ap_get_brigade(f->next, bb, mode, block, readbytes);
    }
    if (!ctx->armed || mode != AP_MODE_READBYTES) {
        return ap_get_brigade(f->next, bb, mode, block, readbytes);
    }
    for (;;) {
        zeq_frame_event ev;
        apr_bucket *e;

        if (!APR_BRIGADE_EMPTY(ctx->in_ready)) {
            APR_BRIGADE_CONCAT(bb, ctx->in_ready);
            return APR_SUCCESS;
        }
        if (ctx->closed) {
            return APR_EOF;
        }
        rv = ap_get_brigade(f->next, ctx->in_tmp, AP_MODE_READBYTES, block,
                            readbytes);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        if (APR_BRIGADE_EMPTY(ctx->in_tmp)) {
            return block == APR_NONBLOCK_READ ? APR_EAGAIN : APR_EOF;
        }
        while (!APR_BRIGADE_EMPTY(ctx->in_tmp)) {
            const char *data;
            apr_size_t len;

            e = APR_BRIGADE_FIRST(ctx->in_tmp);
            if (APR_BUCKET_IS_METADATA(e)) {
                APR_BUCKET_REMOVE(e);
                APR_BRIGADE_INSERT_TAIL(ctx->in_ready, e);
                continue;
            }
            rv = apr_bucket_read(e, &data, &len, APR_BLOCK_READ);
            if (rv != APR_SUCCESS) {
                apr_brigade_cleanup(ctx->in_tmp);
                return rv;
            }
            if (zeq_frame_reader_feed(&ctx->from_client,
                                      (const unsigned char *)data, len)
                != 0) {
                apr_brigade_cleanup(ctx->in_tmp);
                zeq_ws_fail(ctx, ZEQ_FRAME_CLOSE_INTERNAL, "out of memory");
                return APR_EOF;
            }
            apr_bucket_delete(e);
        }
        for (;;) {
            zeq_frame_reader_next(&ctx->from_client, &ev);
            if (ev.type == ZEQ_FRAME_NEED_MORE) {
                break;
            }
            if (ev.type == ZEQ_FRAME_EV_ERROR) {
                zeq_ws_fail(ctx, ev.close_code,
                            ev.close_code == ZEQ_FRAME_CLOSE_TOO_BIG
                                ? "a client message is over ZeqE2EMaxMessage"
                                : "a client frame breaks RFC 6455");
                break;
            }
            if (!(ev.type == ZEQ_FRAME_EV_CONTROL
                      ? zeq_ws_control(ctx, &ev, ctx->in_ready)
                      : zeq_ws_open_message(ctx, &ev))) {
                break;
            }
        }
        if (ctx->closed) {
            /* Nothing of a failed exchange reaches the backend. */
            apr_brigade_cleanup(ctx->in_ready);
            return APR_EOF;
        }
    }
}

/* Scans the response head; returns the offset just past its blank line in
 * [data, data+len), or len when it goes on. */
static apr_size_t zeq_ws_scan_head(zeq_ws_ctx *ctx, const char *data,
                                   apr_size_t len)
{
    static const char end[] = "\r\n\r\n";
    apr_size_t i;

    for (i = 0; i < len; i++) {
        if (ctx->head_len < sizeof(ctx->head)) {
            ctx->head[ctx->head_len++] = (unsigned char)data[i];
        }
        ctx->crlf = data[i] == end[ctx->crlf] ? ctx->crlf + 1
                    : (data[i] == '\r' ? 1 : 0);
        if (ctx->crlf == 4) {
            return i + 1;
        }
    }
    return len;
}

static int zeq_ws_head_is_101(const zeq_ws_ctx *ctx)
{
    return ctx->head_len >= 12 && memcmp(ctx->head, "HTTP/1.", 7) == 0
           && memcmp(ctx->head + 8, " 101", 4) == 0;
}

static apr_status_t zeq_ws_out_frames(ap_filter_t *f, zeq_ws_ctx *ctx,
                                      apr_bucket_brigade *bb)
{
    apr_status_t rv;

    while (!APR_BRIGADE_EMPTY(bb)) {
        apr_bucket *e = APR_BRIGADE_FIRST(bb);
        const char *data;
        apr_size_t len;
        zeq_frame_event ev;

        if (APR_BUCKET_IS_METADATA(e)) {
            APR_BUCKET_REMOVE(e);
            APR_BRIGADE_INSERT_TAIL(ctx->out_bb, e);
            continue;
        }
        if (ctx->closed) {
            apr_bucket_delete(e);
            continue;
        }
        rv = apr_bucket_read(e, &data, &len, APR_BLOCK_READ);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        if (zeq_frame_reader_feed(&ctx->from_backend,
                                  (const unsigned char *)data, len) != 0) {
            zeq_ws_fail(ctx, ZEQ_FRAME_CLOSE_INTERNAL, "out of memory");
        }
        apr_bucket_delete(e);
        while (!ctx->closed) {
            zeq_frame_reader_next(&ctx->from_backend, &ev);
            if (ev.type == ZEQ_FRAME_NEED_MORE) {
                break;
            }
            if (ev.type == ZEQ_FRAME_EV_ERROR) {
                zeq_ws_fail(ctx, ev.close_code,
                            ev.close_code == ZEQ_FRAME_CLOSE_TOO_BIG
                                ? "a backend message is over ZeqE2EMaxMessage"
                                : "a backend frame breaks RFC 6455");
                break;
            }
            if (ev.type == ZEQ_FRAME_EV_CONTROL) {
                zeq_ws_control(ctx, &ev, ctx->out_bb);
            }
            else {
                zeq_ws_seal_message(ctx, &ev, ctx->out_bb);
            }
        }
    }
    rv = APR_SUCCESS;
    if (!APR_BRIGADE_EMPTY(ctx->out_bb)) {
        rv = ap_pass_brigade(f->next, ctx->out_bb);
        apr_brigade_cleanup(ctx->out_bb);
    }
    if (ctx->closed) {
        /* The close frame is out (flushed): end the tunnel instead of
         * dropping the backend's frames until a timeout. mod_proxy stops
         * quietly on an aborted client connection, where an error status
         * here would be logged as a failure. */
        ctx->c->aborted = 1;
    }
    return rv;
}

static apr_status_t zeq_ws_out_filter(ap_filter_t *f, apr_bucket_brigade *bb)
{
    zeq_ws_holder *holder = f->ctx;
    zeq_ws_ctx *ctx = holder->ctx;
    apr_bucket *e;
    apr_status_t rv;

    if (ctx == NULL) {
        ap_remove_output_filter(f);
        return ap_pass_brigade(f->next, bb);
    }
    if (ctx->armed) {
        return zeq_ws_out_frames(f, ctx, bb);
    }
    for (e = APR_BRIGADE_FIRST(bb); e != APR_BRIGADE_SENTINEL(bb);
         e = APR_BUCKET_NEXT(e)) {
        const char *data;
        apr_size_t len, at;
        apr_bucket_brigade *rest;

        if (APR_BUCKET_IS_METADATA(e)) {
            continue;
        }
        rv = apr_bucket_read(e, &data, &len, APR_BLOCK_READ);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        at = zeq_ws_scan_head(ctx, data, len);
        if (ctx->crlf != 4) {
            continue;
        }
        if (!zeq_ws_head_is_101(ctx)) {
            /* The upgrade was refused: stand aside for good. */
            ap_log_cerror(APLOG_MARK, APLOG_DEBUG, 0, ctx->c, ZEQLOG(60002)
                          "WebSocket upgrade not accepted by the backend");
            holder->ctx = NULL;
            ap_remove_input_filter(ctx->in_f);
            ap_remove_output_filter(f);
            return ap_pass_brigade(f->next, bb);
        }
        ctx->armed = 1;
        ap_log_cerror(APLOG_MARK, APLOG_DEBUG, 0, ctx->c, ZEQLOG(60003)
                      "WebSocket upgraded: frames are sealed from now on");
        if (at < len) {
            apr_bucket_split(e, at);
        }
        rest = apr_brigade_split_ex(bb, APR_BUCKET_NEXT(e), NULL);
        /* The head goes out now, with a flush, then the frames. */
        APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_flush_create(
                                        ctx->c->bucket_alloc));
        rv = ap_pass_brigade(f->next, bb);
        apr_brigade_cleanup(bb);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        return zeq_ws_out_frames(f, ctx, rest);
    }
    return ap_pass_brigade(f->next, bb);
}

/* True for an Upgrade: websocket request. */
static int zeq_ws_is_upgrade(request_rec *r)
{
    const char *up = apr_table_get(r->headers_in, "Upgrade");

    return up != NULL && ap_find_token(r->pool, up, "websocket");
}

/* Removes e2e_session from the query string everywhere mod_proxy may
 * read it; returns 1 with the id, 0 when absent, -1 when malformed. */
static int zeq_ws_take_session(request_rec *r, char *id, apr_size_t cap)
{
    char *args, *q;
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
        r->unparsed_uri = r->args
            ? apr_pstrcat(r->pool, apr_pstrmemdup(r->pool, r->unparsed_uri,
                                                  (apr_size_t)(q - r->unparsed_uri)),
                          "?", r->args, NULL)
            : apr_pstrmemdup(r->pool, r->unparsed_uri,
                             (apr_size_t)(q - r->unparsed_uri));
    }
    if (r->filename != NULL && strncmp(r->filename, "proxy:", 6) == 0
        && (q = strchr(r->filename, '?')) != NULL) {
        char *fq = apr_pstrdup(r->pool, q + 1);
        char dummy[ZEQ_PROTO_SESSION_ID_MAX + 1];
        zeq_proto_query_take(fq, ZEQ_WS_QUERY_PARAM, dummy, sizeof(dummy));
        r->filename = apr_pstrcat(r->pool,
                                  apr_pstrmemdup(r->pool, r->filename,
                                                 (apr_size_t)(q - r->filename)),
                                  *fq ? "?" : "", fq, NULL);
    }
    return found;
}

int zeq_ws_fixups(request_rec *r, const zeq_dir_conf *dc,
                  const zeq_srv_conf *sc)
{
    char id[ZEQ_PROTO_SESSION_ID_MAX + 1];
    zeq_ws_holder *holder;
    zeq_ws_ctx *ctx;
    apr_size_t max;
    int found, result;

    if (!zeq_ws_is_upgrade(r)) {
        return DECLINED;
    }
    found = zeq_ws_take_session(r, id, sizeof(id));
    if (found == 0) {
        if (zeq_config_required(dc)) {
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, ZEQLOG(60004)
                          "plaintext WebSocket refused: ZeqE2ERequire On");
            return zeq_error_send(r, HTTP_FORBIDDEN, ZEQ_E2E_ERR_REQUIRED,
                                  "this location requires end-to-end "
                                  "encryption");
        }
        return OK;   /* a plaintext WebSocket, untouched */
    }
    ctx = apr_pcalloc(r->pool, sizeof(*ctx));
    result = zeq_request_session(r, sc, found > 0 ? id : NULL, ctx->key);
    if (result != OK) {
        return result;
    }
    /* Frames are sealed whole: no compression extension with the backend. */
    apr_table_unset(r->headers_in, "Sec-WebSocket-Extensions");

    max = (apr_size_t)zeq_config_max_message(dc);
    ctx->c = r->connection;
    ctx->cipher = zeq_envelope_ctx_new();
    ctx->in_tmp = apr_brigade_create(r->pool, ctx->c->bucket_alloc);
    ctx->in_ready = apr_brigade_create(r->pool, ctx->c->bucket_alloc);
    ctx->out_bb = apr_brigade_create(r->pool, ctx->c->bucket_alloc);
    /* A client message is an envelope of one more byte than the message. */
    zeq_frame_reader_init(&ctx->from_client, max + ZEQ_ENVELOPE_OVERHEAD + 1);
    ctx->from_client.require_mask = 1;
    zeq_frame_reader_init(&ctx->from_backend, max);
    holder = apr_pcalloc(ctx->c->pool, sizeof(*holder));
    holder->ctx = ctx;
    ctx->holder = holder;
    apr_pool_cleanup_register(r->pool, ctx, zeq_ws_cleanup,
                              apr_pool_cleanup_null);
    if (ctx->cipher == NULL) {
        return zeq_error_send(r, HTTP_SERVICE_UNAVAILABLE,
                              ZEQ_E2E_ERR_UNAVAILABLE,
                              "the server could not set up the cipher");
    }
    ctx->in_f = ap_add_input_filter_handle(zeq_ws_in_handle, holder, r,
                                           r->connection);
    ctx->out_f = ap_add_output_filter_handle(zeq_ws_out_handle, holder, r,
                                             r->connection);
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, ZEQLOG(60006)
                  "WebSocket upgrade with a valid session: frames will be "
                  "sealed");
    return OK;
}

void zeq_ws_register_hooks(apr_pool_t *p)
{
    (void)p;
    /* Below mod_ssl's connection filters, so frames are seen in clear. */
    zeq_ws_in_handle = ap_register_input_filter("ZEQ_E2E_WS_IN",
                                                zeq_ws_in_filter, NULL,
                                                AP_FTYPE_CONNECTION);
    zeq_ws_out_handle = ap_register_output_filter("ZEQ_E2E_WS_OUT",
                                                  zeq_ws_out_filter, NULL,
                                                  AP_FTYPE_CONNECTION);
}
