/* Encrypted WebSockets: connection filters on an encrypted opening (the
 * gate decides which requests are openings). Client frames carry envelopes
 * of type || message; the input filter opens them and forwards ordinary
 * (re-masked) text or binary frames to the backend; the output filter seals
 * the backend's messages into binary frames. Control frames pass unchanged.
 * Until the answer's head is whole nothing of it leaves, and nothing the
 * client sends reaches the backend: a raw tunnel (mod_proxy_wstunnel
 * without the fallback to mod_proxy_http) relays both ways at once. A 101
 * arms the filters: the client's early bytes are then read as frames. An
 * answer other than 101 passes only when the sealer has handled it (it is
 * then sealed, or a module error); a raw tunnel's plaintext answer is
 * refused and the connection closed.
 *
 * Lifetimes: the state lives in the request's pool (the tunnel runs inside
 * the request); a small holder in the connection's pool points to it and is
 * cleared when the request ends, so filters left behind by a refused
 * upgrade on a keep-alive connection remove themselves on their next call.
 * Frame buffers are malloc'd once per connection and reused: nothing is
 * allocated from a pool per frame. */
#include "zeq_ws.h"
#include "zeq_envelope.h"
#include "zeq_error.h"
#include "zeq_frame.h"
#include "zeq_record.h"

#include "apr_strings.h"
#include "http_connection.h"
#include "http_core.h"

#include <stdlib.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

/* The longest answer head held back before it is judged. */
#define ZEQ_WS_HEAD_MAX (64 * 1024)

static ap_filter_rec_t *zeq_ws_in_handle;
static ap_filter_rec_t *zeq_ws_out_handle;

typedef struct zeq_ws_ctx zeq_ws_ctx;

typedef struct {
    zeq_ws_ctx *ctx;            /* NULL once the request is gone */
} zeq_ws_holder;

struct zeq_ws_ctx {
    conn_rec *c;
    apr_pool_t *pool;           /* the opening's request pool */
    zeq_exchange *ex;
    zeq_ws_holder *holder;
    ap_filter_t *in_f, *out_f;
    zeq_keys keys;              /* a copy: the socket outlives nothing */
    zeq_envelope_ctx *cipher;   /* v1 */
    apr_uint64_t from_client_n; /* v2: the next message of each direction */
    apr_uint64_t from_backend_n;
    apr_size_t max_message;     /* plaintext bytes of one message */
    zeq_frame_reader from_client, from_backend;
    apr_bucket_brigade *in_tmp, *in_ready, *in_meta, *out_bb;
    apr_bucket_brigade *early;  /* client bytes that came before the 101 */
    apr_off_t early_len;
    apr_bucket_brigade *held;   /* the answer's head, until it is whole */
    zeq_frame_head head;
    int armed;                  /* the 101 is out: frames follow */
    int closed;                 /* a close was sent after an error */
    int client_ended;           /* v2: the client's end message came */
    int server_ended;           /* v2: the server's end message went */
    int refused;                /* a plaintext answer was refused */
    int reading;                /* inside the input filter */
};

static apr_status_t zeq_ws_cleanup(void *data)
{
    zeq_ws_ctx *ctx = data;

    ctx->holder->ctx = NULL;
    zeq_frame_reader_free(&ctx->from_client);
    zeq_frame_reader_free(&ctx->from_backend);
    zeq_envelope_ctx_free(ctx->cipher);
    ctx->cipher = NULL;
    zeq_keys_cleanse(&ctx->keys);
    return APR_SUCCESS;
}

/* A heap bucket that owns a malloc'd buffer. */
static apr_bucket *zeq_ws_bucket(zeq_ws_ctx *ctx, unsigned char *buf,
                                 apr_size_t len)
{
    return apr_bucket_heap_create((const char *)buf, len, free,
                                  ctx->c->bucket_alloc);
}

/* Answers an error with a close frame straight to the client (after the
 * frames already sealed for it) and ends the socket quietly: from now on
 * the input filter answers EOF, so that mod_proxy's tunnel (with
 * proxy-nohalfclose, which the gate sets) ends as when the client goes
 * away, and nothing else of the exchange reaches the backend. When the
 * failure is the client's, the input filter answers that EOF in the same
 * call; the connection's read side stays open, so that httpd's lingering
 * close reads away what the client sent meanwhile (closing a socket with
 * unread data resets it, which can destroy the close frame before the
 * client has read it). When the failure is the backend's, the tunnel is
 * not reading the client: over HTTP/1.1 the read side is shut down, so
 * that the tunnel sees the EOF at once instead of when the client answers
 * the close; over HTTP/2 the stream ends with the tunnel. Nothing here
 * marks the connection aborted: mod_proxy would then log its flush as
 * failed. */
static void zeq_ws_fail(zeq_ws_ctx *ctx, int code, const char *why)
{
    unsigned char frame[4];
    apr_bucket_brigade *bb;
    apr_socket_t *sock;

    ap_log_cerror(APLOG_MARK, APLOG_INFO, 0, ctx->c, ZEQLOG(60001)
                  "WebSocket closed with %d: %s", code, why);
    if (ctx->closed) {
        return;
    }
    ctx->closed = 1;
    bb = apr_brigade_create(ctx->c->pool, ctx->c->bucket_alloc);
    APR_BRIGADE_CONCAT(bb, ctx->out_bb);
    APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_heap_create(
                                    (const char *)frame,
                                    zeq_frame_close(frame, code), NULL,
                                    ctx->c->bucket_alloc));
    APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_flush_create(ctx->c->bucket_alloc));
    ap_pass_brigade(ctx->out_f->next, bb);
    apr_brigade_destroy(bb);
    ctx->c->keepalive = AP_CONN_CLOSE;
    if (!ctx->reading && ctx->c->master == NULL
        && (sock = ap_get_conn_socket(ctx->c)) != NULL) {
        apr_socket_shutdown(sock, APR_SHUTDOWN_READ);
    }
}

/* Opens a client message into pt (ev->len bytes): its length, or 0 after
 * closing the socket. v1: an envelope; v2: a sealed message bound to the
 * socket, the direction and the message's place. */
static apr_size_t zeq_ws_open(zeq_ws_ctx *ctx, const zeq_frame_event *ev,
                              unsigned char *pt)
{
    unsigned char aad[512];
    apr_size_t aadlen = 0, ptlen = 0;
    int rv;

    if (ctx->keys.version == 2) {
        aadlen = zeq_exchange_ws_aad(ctx->ex, "c2s", ctx->from_client_n, aad,
                                     sizeof(aad));
        rv = aadlen == 0 ? ZEQ_ERR_CRYPTO
             : zeq_record_open_message(2, ctx->keys.c2s, aad, aadlen, ev->data,
                                       ev->len, pt, &ptlen);
    }
    else {
        rv = zeq_record_open_message(1, ctx->keys.c2s, NULL, 0, ev->data,
                                     ev->len, pt, &ptlen);
    }
    if (rv != ZEQ_OK || ptlen < 1) {
        zeq_ws_fail(ctx, ZEQ_FRAME_CLOSE_POLICY, rv != ZEQ_OK
                    ? (ctx->keys.version == 2
                       ? "a client message does not verify (key, socket, "
                         "direction or order)"
                       : "a client frame does not verify under the session "
                         "key")
                    : "a client message without a type byte");
        return 0;
    }
    ctx->from_client_n++;
    return ptlen;
}

/* Client message: the sealed type || message of one binary frame, passed
 * on as an ordinary (re-masked) text or binary frame. */
static int zeq_ws_open_message(zeq_ws_ctx *ctx, const zeq_frame_event *ev)
{
    unsigned char *frame, *pt, mask[4];
    unsigned char hdr[ZEQ_FRAME_HEADER_MAX];
    apr_size_t n, hlen;
    int opcode;

    if (ev->opcode != ZEQ_FRAME_BINARY) {
        zeq_ws_fail(ctx, ZEQ_FRAME_CLOSE_POLICY,
                    "plaintext message on an encrypted socket");
        return 0;
    }
    pt = malloc(ev->len ? ev->len : 1);
    if (pt == NULL) {
        zeq_ws_fail(ctx, ZEQ_FRAME_CLOSE_INTERNAL, "out of memory");
        return 0;
    }
    n = zeq_ws_open(ctx, ev, pt);
    if (n == 0) {
        free(pt);
        return 0;
    }
    if (ctx->client_ended) {
        OPENSSL_cleanse(pt, n);
        free(pt);
        zeq_ws_fail(ctx, ZEQ_FRAME_CLOSE_POLICY,
                    "a client message after its end message");
        return 0;
    }
    if (pt[0] == ZEQ_FRAME_MSG_TEXT) {
        opcode = ZEQ_FRAME_TEXT;
    }
    else if (pt[0] == ZEQ_FRAME_MSG_BINARY) {
        opcode = ZEQ_FRAME_BINARY;
    }
    else if (pt[0] == ZEQ_FRAME_MSG_END && n == 1 && ctx->keys.version == 2) {
        /* v2: the client's last word before its close frame; nothing of it
         * goes to the backend. */
        OPENSSL_cleanse(pt, n);
        free(pt);
        ctx->client_ended = 1;
        return 1;
    }
    else {
        OPENSSL_cleanse(pt, n);
        free(pt);
        zeq_ws_fail(ctx, ZEQ_FRAME_CLOSE_POLICY, "unknown message type");
        return 0;
    }
    if (n - 1 > ctx->max_message) {
        OPENSSL_cleanse(pt, n);
        free(pt);
        zeq_ws_fail(ctx, ZEQ_FRAME_CLOSE_TOO_BIG,
                    "a client message is over ZeqE2EMaxMessage");
        return 0;
    }
    if (RAND_bytes(mask, sizeof(mask)) != 1
        || (hlen = zeq_frame_write_header(hdr, opcode, mask, n - 1),
            frame = malloc(hlen + n - 1)) == NULL) {
        OPENSSL_cleanse(pt, n);
        free(pt);
        zeq_ws_fail(ctx, ZEQ_FRAME_CLOSE_INTERNAL, "no mask or no memory");
        return 0;
    }
    memcpy(frame, hdr, hlen);
    memcpy(frame + hlen, pt + 1, n - 1);
    OPENSSL_cleanse(pt, n);
    free(pt);
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
    apr_size_t hlen, elen;
    int ok;

    type = ev->opcode == ZEQ_FRAME_TEXT ? ZEQ_FRAME_MSG_TEXT
           : ev->opcode == ZEQ_FRAME_MSG_END_OPCODE ? ZEQ_FRAME_MSG_END
           : ZEQ_FRAME_MSG_BINARY;
    elen = ctx->keys.version == 2
           ? (apr_size_t)zeq_record_sealed_len(ev->len + 1, ZEQ_RECORD_SIZE)
           : ZEQ_ENVELOPE_OVERHEAD + 1 + ev->len;
    hlen = zeq_frame_write_header(hdr, ZEQ_FRAME_BINARY, NULL, elen);
    frame = malloc(hlen + elen);
    if (frame == NULL) {
        zeq_ws_fail(ctx, ZEQ_FRAME_CLOSE_INTERNAL, "out of memory");
        return 0;
    }
    memcpy(frame, hdr, hlen);
    env = frame + hlen;
    if (ctx->keys.version == 2) {
        unsigned char aad[512], *pt = malloc(ev->len + 1);
        apr_size_t aadlen = zeq_exchange_ws_aad(ctx->ex, "s2c",
                                                ctx->from_backend_n, aad,
                                                sizeof(aad));
        ok = pt != NULL && aadlen > 0;
        if (ok) {
            pt[0] = type;
            memcpy(pt + 1, ev->data, ev->len);
            ok = zeq_record_seal_message(ctx->keys.s2c, NULL, aad, aadlen, pt,
                                         ev->len + 1, ZEQ_RECORD_SIZE, env)
                 == ZEQ_OK;
            OPENSSL_cleanse(pt, ev->len + 1);
        }
        free(pt);
        ctx->from_backend_n++;
    }
    else {
        ok = RAND_bytes(env, ZEQ_ENVELOPE_IV_LEN) == 1
             && zeq_envelope_seal_init(ctx->cipher, ctx->keys.s2c, env, NULL, 0)
                    == ZEQ_OK
             && zeq_envelope_seal_update(ctx->cipher, &type, 1,
                                         env + ZEQ_ENVELOPE_OVERHEAD) == ZEQ_OK
             && zeq_envelope_seal_update(ctx->cipher, ev->data, ev->len,
                                         env + ZEQ_ENVELOPE_OVERHEAD + 1)
                    == ZEQ_OK
             && zeq_envelope_seal_final(ctx->cipher, env + ZEQ_ENVELOPE_IV_LEN)
                    == ZEQ_OK;
    }
    if (!ok) {
        free(frame);
        zeq_ws_fail(ctx, ZEQ_FRAME_CLOSE_INTERNAL, "encryption failed");
        return 0;
    }
    APR_BRIGADE_INSERT_TAIL(out, zeq_ws_bucket(ctx, frame, hlen + elen));
    return 1;
}

/* v2: the sealed end message (type 0x03, empty) that precedes the close
 * frame of the server's side, so that a client can tell the last messages
 * were not dropped. */
static int zeq_ws_seal_end(zeq_ws_ctx *ctx, apr_bucket_brigade *out)
{
    zeq_frame_event end;

    if (ctx->keys.version != 2 || ctx->server_ended) {
        return 1;
    }
    ctx->server_ended = 1;
    memset(&end, 0, sizeof(end));
    end.type = ZEQ_FRAME_EV_MESSAGE;
    end.opcode = ZEQ_FRAME_MSG_END_OPCODE;
    end.data = (const unsigned char *)"";
    end.len = 0;
    return zeq_ws_seal_message(ctx, &end, out);
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

/* Refuses an answer that would reach an encrypting client in plaintext, or
 * a client that will not wait for the answer: nothing more is sent, the
 * connection is closed. */
static void zeq_ws_abort(zeq_ws_ctx *ctx)
{
    ctx->closed = 1;
    ctx->refused = 1;
    ctx->c->keepalive = AP_CONN_CLOSE;
    ctx->c->aborted = 1;
}

/* Before the 101: the client's bytes wait (a client must not send before
 * the answer, RFC 6455 4.1; a raw tunnel would relay them to a backend
 * that reads them as plaintext frames), bounded by one client frame. Only
 * metadata goes up: the EOS with which mod_http2 ends the (empty) body of
 * an extended CONNECT for mod_proxy_http's blocking prefetch. Bytes held
 * here are read as frames once the 101 is out. */
static apr_status_t zeq_ws_hold_early(ap_filter_t *f, zeq_ws_ctx *ctx,
                                      apr_bucket_brigade *bb,
                                      apr_read_type_e block,
                                      apr_off_t readbytes)
{
    apr_status_t rv;
    apr_bucket *e, *next;

    rv = ap_get_brigade(f->next, ctx->in_tmp, AP_MODE_READBYTES, block,
                        readbytes);
    for (e = APR_BRIGADE_FIRST(ctx->in_tmp);
         e != APR_BRIGADE_SENTINEL(ctx->in_tmp); e = next) {
        apr_status_t srv;

        next = APR_BUCKET_NEXT(e);
        APR_BUCKET_REMOVE(e);
        if (APR_BUCKET_IS_METADATA(e)) {
            APR_BRIGADE_INSERT_TAIL(bb, e);
            continue;
        }
        srv = apr_bucket_setaside(e, ctx->pool);
        if (srv == APR_SUCCESS && e->length == (apr_size_t)-1) {
            const char *data;
            apr_size_t len;
            srv = apr_bucket_read(e, &data, &len, APR_BLOCK_READ);
        }
        APR_BRIGADE_INSERT_TAIL(ctx->early, e);
        ctx->early_len += (apr_off_t)e->length;
        if (srv != APR_SUCCESS) {
            rv = srv;
        }
    }
    if (ctx->early_len > (apr_off_t)ctx->from_client.max_message
                         + ZEQ_FRAME_HEADER_MAX) {
        ap_log_cerror(APLOG_MARK, APLOG_INFO, 0, ctx->c, ZEQLOG(60009)
                      "the client sent %" APR_OFF_T_FMT " bytes before its "
                      "opening was answered: connection closed",
                      ctx->early_len);
        apr_brigade_cleanup(ctx->early);
        zeq_ws_abort(ctx);
        return APR_ECONNABORTED;
    }
    if (rv != APR_SUCCESS || !APR_BRIGADE_EMPTY(bb)) {
        return rv;
    }
    /* Nothing for the reader yet (a blocking one included: there is
     * nothing to wait for before the answer). */
    return APR_EAGAIN;
}

static apr_status_t zeq_ws_in_frames(ap_filter_t *f, zeq_ws_ctx *ctx,
                                     apr_bucket_brigade *bb,
                                     apr_read_type_e block,
                                     apr_off_t readbytes);

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
    if (ctx->refused) {
        return APR_EOF;
    }
    if (mode != AP_MODE_READBYTES) {
        return ap_get_brigade(f->next, bb, mode, block, readbytes);
    }
    if (!ctx->armed) {
        return zeq_ws_hold_early(f, ctx, bb, block, readbytes);
    }
    ctx->reading = 1;
    rv = zeq_ws_in_frames(f, ctx, bb, block, readbytes);
    ctx->reading = 0;
    return rv;
}

/* The client's frames, opened (armed). */
static apr_status_t zeq_ws_in_frames(ap_filter_t *f, zeq_ws_ctx *ctx,
                                     apr_bucket_brigade *bb,
                                     apr_read_type_e block,
                                     apr_off_t readbytes)
{
    apr_status_t rv;

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
        if (!APR_BRIGADE_EMPTY(ctx->early)) {
            /* What came before the 101: frames like any other. */
            APR_BRIGADE_CONCAT(ctx->in_tmp, ctx->early);
        }
        else {
            rv = ap_get_brigade(f->next, ctx->in_tmp, AP_MODE_READBYTES,
                                block, readbytes);
            if (rv != APR_SUCCESS) {
                return rv;
            }
            if (APR_BRIGADE_EMPTY(ctx->in_tmp)) {
                return block == APR_NONBLOCK_READ ? APR_EAGAIN : APR_EOF;
            }
        }
        while (!APR_BRIGADE_EMPTY(ctx->in_tmp)) {
            const char *data;
            apr_size_t len;

            e = APR_BRIGADE_FIRST(ctx->in_tmp);
            if (APR_BUCKET_IS_METADATA(e)) {
                /* After the frames decoded from this read (an EOS must
                 * not overtake the close frame that came with it). */
                APR_BUCKET_REMOVE(e);
                APR_BRIGADE_INSERT_TAIL(ctx->in_meta, e);
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
            if (ev.type == ZEQ_FRAME_EV_CONTROL && ev.opcode == ZEQ_FRAME_CLOSE
                && ctx->keys.version == 2 && !ctx->client_ended) {
                ap_log_cerror(APLOG_MARK, APLOG_INFO, 0, ctx->c, ZEQLOG(60008)
                              "the client closed without its end message: "
                              "its last messages may have been dropped");
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
            apr_brigade_cleanup(ctx->in_meta);
            return APR_EOF;
        }
        APR_BRIGADE_CONCAT(ctx->in_ready, ctx->in_meta);
    }
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
                if (ev.opcode == ZEQ_FRAME_CLOSE) {
                    zeq_ws_seal_end(ctx, ctx->out_bb);
                }
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
    return rv;
}

/* Refuses an answer that would reach an encrypting client in plaintext
 * (status 0: no HTTP/1.x head, or one too long): nothing of it is sent,
 * the connection is closed. */
static void zeq_ws_refuse(zeq_ws_ctx *ctx, int status)
{
    ap_log_cerror(APLOG_MARK, APLOG_ERR, 0, ctx->c, ZEQLOG(60007)
                  "an encrypted WebSocket opening was answered %s through "
                  "a raw tunnel (mod_proxy_wstunnel with "
                  "ProxyWebsocketFallbackToProxyHttp Off?): that answer "
                  "cannot be sealed and is not sent; connection closed",
                  status ? apr_itoa(ctx->pool, status)
                         : "with no HTTP/1.x head it could read");
    zeq_ws_abort(ctx);
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
    if (ctx->refused) {
        apr_brigade_cleanup(bb);
        return APR_SUCCESS;
    }
    if (ctx->armed) {
        return zeq_ws_out_frames(f, ctx, bb);
    }
    /* Before the answer's head is whole: every bucket waits in held. */
    while (!APR_BRIGADE_EMPTY(bb)) {
        const char *data;
        apr_size_t len, at;
        int status;

        e = APR_BRIGADE_FIRST(bb);
        if (!APR_BUCKET_IS_METADATA(e)) {
            rv = apr_bucket_read(e, &data, &len, APR_BLOCK_READ);
            if (rv != APR_SUCCESS) {
                return rv;
            }
            at = zeq_frame_head_scan(&ctx->head, (const unsigned char *)data,
                                     len);
            if (at < len) {
                apr_bucket_split(e, at);
            }
        }
        rv = apr_bucket_setaside(e, ctx->pool);
        if (rv != APR_SUCCESS && rv != APR_ENOTIMPL) {
            return rv;
        }
        APR_BUCKET_REMOVE(e);
        APR_BRIGADE_INSERT_TAIL(ctx->held, e);
        if (ctx->head.state != 3) {
            if (ctx->head.len > ZEQ_WS_HEAD_MAX) {
                if (!ctx->ex->answered && !ctx->ex->refused) {
                    zeq_ws_refuse(ctx, 0);
                    apr_brigade_cleanup(bb);
                    apr_brigade_cleanup(ctx->held);
                    return APR_SUCCESS;
                }
                break;      /* a sealed answer: stand aside (below) */
            }
            continue;
        }
        status = zeq_frame_head_status(&ctx->head);
        if (status >= 100 && status < 200 && status != 101) {
            /* An interim answer (100, 103): the final one follows. */
            zeq_frame_head_reset(&ctx->head);
            continue;
        }
        if (status != 101) {
            if (!ctx->ex->answered && !ctx->ex->refused) {
                /* Not through the sealer: plaintext from a raw tunnel. */
                zeq_ws_refuse(ctx, status);
                apr_brigade_cleanup(bb);
                apr_brigade_cleanup(ctx->held);
                return APR_SUCCESS;
            }
            break;
        }
        ctx->armed = 1;
        ap_log_cerror(APLOG_MARK, APLOG_DEBUG, 0, ctx->c, ZEQLOG(60003)
                      "WebSocket upgraded: frames are sealed from now on");
        /* The head goes out now, with a flush, then the frames. */
        APR_BRIGADE_INSERT_TAIL(ctx->held, apr_bucket_flush_create(
                                               ctx->c->bucket_alloc));
        rv = ap_pass_brigade(f->next, ctx->held);
        apr_brigade_cleanup(ctx->held);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        return zeq_ws_out_frames(f, ctx, bb);
    }
    if (APR_BRIGADE_EMPTY(bb) && ctx->head.state != 3
        && ctx->head.len <= ZEQ_WS_HEAD_MAX) {
        return APR_SUCCESS;   /* the head goes on */
    }
    /* A sealed answer or a module error: stand aside for good. */
    ap_log_cerror(APLOG_MARK, APLOG_DEBUG, 0, ctx->c, ZEQLOG(60002)
                  "WebSocket opening answered %d (sealed or a module error), "
                  "not upgraded", zeq_frame_head_status(&ctx->head));
    holder->ctx = NULL;
    ap_remove_input_filter(ctx->in_f);
    ap_remove_output_filter(f);
    APR_BRIGADE_PREPEND(bb, ctx->held);
    return ap_pass_brigade(f->next, bb);
}

int zeq_ws_arm(request_rec *r, zeq_exchange *ex, apr_size_t max_message)
{
    zeq_ws_holder *holder;
    zeq_ws_ctx *ctx = apr_pcalloc(r->pool, sizeof(*ctx));

    ctx->keys = ex->keys;
    ctx->max_message = max_message;
    ctx->ex = ex;
    ctx->c = r->connection;
    ctx->cipher = zeq_envelope_ctx_new();
    ctx->pool = r->pool;
    ctx->in_tmp = apr_brigade_create(r->pool, ctx->c->bucket_alloc);
    ctx->early = apr_brigade_create(r->pool, ctx->c->bucket_alloc);
    ctx->held = apr_brigade_create(r->pool, ctx->c->bucket_alloc);
    zeq_frame_head_reset(&ctx->head);
    ctx->in_ready = apr_brigade_create(r->pool, ctx->c->bucket_alloc);
    ctx->in_meta = apr_brigade_create(r->pool, ctx->c->bucket_alloc);
    ctx->out_bb = apr_brigade_create(r->pool, ctx->c->bucket_alloc);
    /* A client frame holds the sealed type || message: v1 an envelope of
     * one more byte than the message; v2 a sealed message, allowed twice
     * the size it has in 16 KiB records (a client may use smaller ones;
     * the plaintext is what ZeqE2EMaxMessage counts, checked once
     * opened). */
    zeq_frame_reader_init(&ctx->from_client,
                          ex->keys.version == 2
                          ? 2 * (apr_size_t)zeq_record_sealed_len(
                                    max_message + 1, ZEQ_RECORD_SIZE)
                          : max_message + ZEQ_ENVELOPE_OVERHEAD + 1);
    ctx->from_client.require_mask = 1;
    zeq_frame_reader_init(&ctx->from_backend, max_message);
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
                  "WebSocket opening with a valid session: frames will be "
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
