/* The sealer: the output filter of a sealed exchange.
 *
 * Version 1 seals the whole body into one envelope and emits
 * [iv||tag][ciphertext][EOS] in a single brigade, so that the headers (a
 * Content-Length of 28 + n) are decided before anything is sent. The
 * ciphertext waits in a spool (zeq_spool.h): memory up to a small bound,
 * then an unlinked temporary file. A static file's bytes in an answer of
 * at most 1 MiB are read and encrypted once and wait in memory whole;
 * beyond, they pass the cipher once for the tag and are encrypted again
 * from the file as they are sent.
 *
 * Version 2 seals as the application writes: records of 16 KiB bound to the
 * request's session and sequence number and to the answer's status, type
 * and encoding, sealed in place in a batch of four (the plaintext is
 * copied, or a file read with one preadv, straight into the records' own
 * places) and passed on a batch at a time (memory per response: one batch
 * of 64 KiB). Where the length is known before the first byte (a static file,
 * a backend's Content-Length) the answer has the exact sealed
 * Content-Length; otherwise it is chunked, and a flush of the application
 * (SSE, long polling) sends the record pending. A failure once the headers
 * are out ends the answer without its final record and aborts it: the
 * client sees truncation, never a short body that looks whole. An answer
 * without a body (HEAD, 204, 304) carries the sealed empty message in
 * X-E2E-Seal.
 *
 * Never passes plaintext: a body that cannot be sealed before the headers
 * are out becomes a plaintext JSON 500. */
#include "zeq_response.h"
#include "zeq_config.h"
#include "zeq_proto.h"
#include "zeq_record.h"
#include "zeq_spool.h"

#include "apr_strings.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <openssl/crypto.h>

#define ZEQ_RESPONSE_SCRATCH (64 * 1024)
/* v2: one full record, and a batch: the message's prefix and four of them
 * (64 KiB of plaintext, what a file read fetches at once). */
#define ZEQ_RESPONSE_SLOT    (ZEQ_RECORD_OVERHEAD + ZEQ_RECORD_SIZE)
#define ZEQ_RESPONSE_RECORDS 4
#define ZEQ_RESPONSE_BATCH   (ZEQ_RECORD_PREFIX_LEN \
                              + ZEQ_RESPONSE_RECORDS * ZEQ_RESPONSE_SLOT)
/* A batch passed on with fewer sealed bytes (a flush of a stream) is
 * copied into a bucket of its size and the batch kept. */
#define ZEQ_RESPONSE_COPY_MAX 4096

static ap_filter_rec_t *zeq_response_out_handle;

typedef struct {
    zeq_exchange *ex;
    zeq_spool *spool;            /* the ciphertext so far */
    apr_bucket_brigade *meta;    /* metadata buckets kept for the end */
    apr_off_t plain_len;
    apr_off_t limit;
    int done;                    /* EOS or a failure has been passed */
    /* version 1 */
    zeq_envelope_ctx *cipher;
    unsigned char *scratch;      /* a file region's bytes, encrypted */
    unsigned char head[ZEQ_ENVELOPE_OVERHEAD];   /* iv || tag */
    /* version 2 */
    zeq_record_sealer sealer;
    unsigned char *batch;        /* ZEQ_RESPONSE_BATCH bytes (malloc) */
    apr_size_t batch_len;        /* of sealed bytes in it; the current
                                  * record's header follows them */
    apr_size_t pending_len;      /* plaintext in the current record */
    apr_size_t ahead_end;        /* where a file read's plaintext ahead of
                                  * the current record ends in the batch
                                  * (cleansed if it is never sealed) */
    int status;                  /* what the AAD binds */
    const char *type, *encoding;
    apr_off_t length;            /* the plaintext length, -1 unknown */
    apr_bucket_brigade *out;     /* sealed records on their way */
    apr_size_t out_len;
    int started;                 /* something was passed: headers are out */
    int final;                   /* the final record is sealed */
} zeq_response_ctx;

static apr_status_t zeq_response_ctx_cleanup(void *data)
{
    zeq_response_ctx *ctx = data;

    zeq_envelope_ctx_free(ctx->cipher);
    ctx->cipher = NULL;
    zeq_record_sealer_free(&ctx->sealer);
    if (ctx->scratch != NULL) {
        OPENSSL_cleanse(ctx->scratch, ZEQ_RESPONSE_SCRATCH);
    }
    if (ctx->batch != NULL) {
        /* What is not sealed yet: the current record's plaintext and, after
         * a failure inside a file read, the records it filled after it. */
        apr_size_t end = ctx->batch_len + ZEQ_RECORD_HEADER_LEN
                         + ctx->pending_len;
        if (ctx->ahead_end > end) {
            end = ctx->ahead_end;
        }
        OPENSSL_cleanse(ctx->batch + ctx->batch_len, end - ctx->batch_len);
        free(ctx->batch);
        ctx->batch = NULL;
    }
    return APR_SUCCESS;
}

static void zeq_response_unset(request_rec *r, const char *name)
{
    apr_table_unset(r->headers_out, name);
    apr_table_unset(r->err_headers_out, name);
}

/* Headers that describe the plaintext representation go. */
static void zeq_response_strip_headers(request_rec *r)
{
    zeq_response_unset(r, "ETag");
    zeq_response_unset(r, "Last-Modified");
    zeq_response_unset(r, "Content-MD5");
    zeq_response_unset(r, "Accept-Ranges");
    zeq_response_unset(r, "Content-Range");
    zeq_response_unset(r, "Expires");
    zeq_response_unset(r, "Cache-Control");
    zeq_response_unset(r, "Content-Encoding");
    r->content_encoding = NULL;
    apr_table_setn(r->headers_out, "Cache-Control", "no-store, private");
}

/* The application's content coding, wherever it put it (CGI script
 * headers land in err_headers_out). */
static const char *zeq_response_encoding(const request_rec *r)
{
    const char *enc = r->content_encoding;

    if (enc == NULL) {
        enc = apr_table_get(r->headers_out, "Content-Encoding");
    }
    if (enc == NULL) {
        enc = apr_table_get(r->err_headers_out, "Content-Encoding");
    }
    return enc;
}

/* Replaces the response with a plaintext JSON 500 (headers are unsent:
 * nothing passes before EOS). */
static apr_status_t zeq_response_fail(ap_filter_t *f, zeq_response_ctx *ctx,
                                      const char *why)
{
    request_rec *r = f->r;
    apr_bucket_brigade *bb;
    static const char body[] =
        "{\"error\":\"" ZEQ_E2E_ERR_ENCRYPT "\",\"message\":\"the response "
        "could not be encrypted\"}\n";

    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, ZEQLOG(50001)
                  "response not sent: %s; answering 500 "
                  ZEQ_E2E_ERR_ENCRYPT, why);
    if (ctx->spool != NULL) {
        zeq_spool_discard(ctx->spool);
    }
    apr_brigade_cleanup(ctx->meta);
    ctx->done = 1;
    ctx->ex->answered = 1;
    r->status = HTTP_INTERNAL_SERVER_ERROR;
    r->status_line = NULL;
    zeq_response_strip_headers(r);
    zeq_response_unset(r, ZEQ_E2E_HDR_CONTENT_TYPE);
    zeq_response_unset(r, ZEQ_E2E_HDR_CONTENT_ENCODING);
    zeq_response_unset(r, ZEQ_E2E_HDR_SEAL);
    ap_set_content_type(r, "application/json");
    ap_set_content_length(r, (apr_off_t)(sizeof(body) - 1));
    bb = apr_brigade_create(r->pool, f->c->bucket_alloc);
    APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_immortal_create(
                                    body, sizeof(body) - 1,
                                    f->c->bucket_alloc));
    APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_eos_create(f->c->bucket_alloc));
    return ap_pass_brigade(f->next, bb);
}

static apr_status_t zeq_response_over_limit(ap_filter_t *f,
                                            zeq_response_ctx *ctx)
{
    return zeq_response_fail(f, ctx, apr_psprintf(f->r->pool,
        "the body is over ZeqE2EMaxResponseBody (%" APR_OFF_T_FMT " bytes)",
        ctx->limit));
}

/* The headers of a sealed answer: the inner type and encoding (exactly
 * what v2's AAD bound), the sealed length (-1: none). */
static void zeq_response_set_headers(request_rec *r, const char *type,
                                     const char *encoding, apr_off_t length)
{
    zeq_response_unset(r, ZEQ_E2E_HDR_CONTENT_ENCODING);
    if (encoding != NULL) {
        /* A backend compressed anyway: the coding travels inside. */
        apr_table_setn(r->headers_out, ZEQ_E2E_HDR_CONTENT_ENCODING,
                       apr_pstrdup(r->pool, encoding));
    }
    if (type != NULL) {
        apr_table_setn(r->headers_out, ZEQ_E2E_HDR_CONTENT_TYPE, type);
    }
    zeq_response_strip_headers(r);
    apr_table_mergen(r->headers_out, "Vary", "Accept, " ZEQ_E2E_HDR_SESSION);
    ap_set_content_type(r, ZEQ_E2E_MEDIA_TYPE);
    if (length >= 0) {
        ap_set_content_length(r, length);
    }
    else {
        apr_table_unset(r->headers_out, "Content-Length");
    }
}

/* v2: the sealed empty message of this answer, in base64url. */
static const char *zeq_response_seal_header(request_rec *r,
                                            const zeq_exchange *ex,
                                            int status, const char *type,
                                            const char *encoding)
{
    unsigned char msg[ZEQ_RECORD_EMPTY_LEN];
    apr_size_t aadlen;
    unsigned char *aad = zeq_exchange_response_aad(r->pool, ex, status, type,
                                                   encoding, &aadlen);
    char *b64;

    if (zeq_record_seal_message(ex->keys.s2c, NULL, aad, aadlen, NULL, 0,
                                ZEQ_RECORD_SIZE, msg) != ZEQ_OK) {
        return NULL;
    }
    b64 = apr_palloc(r->pool, zeq_proto_b64url_len(sizeof(msg)) + 1);
    zeq_proto_b64url_encode(msg, sizeof(msg), b64);
    return b64;
}

/* The end of a sealed answer: a FLUSH, then its EOS. Without the FLUSH
 * the core output filter sets aside what it holds under its minimum write
 * (4 KiB: a whole small answer, the tail of a large one) instead of
 * writing it; the request then ends with its answer unsent, the check for
 * a pipelined request finds none (the client is still waiting), and the
 * event MPM writes the answer in write completion and hands the connection
 * to its listener to wait for the next request: an epoll_ctl to add and
 * one to remove it, and futex wake-ups of the listener and of a worker
 * through the queue (about 9 futex calls a request). Flushed, the answer
 * is on the wire before the handler returns, and the worker usually finds
 * the client's next request already there (as after a plaintext answer,
 * which the core sends at once: a file bucket). Pipelined requests are
 * answered in turn all the same, one write each; under HTTP/2 a FLUSH
 * only hands the stream's data to the connection now. */
static void zeq_response_end(ap_filter_t *f, apr_bucket_brigade *bb,
                             apr_bucket *eos)
{
    APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_flush_create(f->c->bucket_alloc));
    APR_BRIGADE_INSERT_TAIL(bb, eos);
}

/* v2: moves the records sealed in the batch onto ctx->out. A batch of
 * ZEQ_RESPONSE_COPY_MAX sealed bytes or more with no plaintext pending
 * goes as it is, in a heap bucket that frees it; otherwise its records are
 * copied into a bucket of their size, the plaintext pending moves to the
 * front and the batch stays. */
static void zeq_response_v2_emit(ap_filter_t *f, zeq_response_ctx *ctx)
{
    apr_size_t n = ctx->batch_len, p = ctx->pending_len;
    apr_bucket *b;

    if (n == 0) {
        return;
    }
    if (p == 0 && n >= ZEQ_RESPONSE_COPY_MAX) {
        b = apr_bucket_heap_create((const char *)ctx->batch, n, free,
                                   f->c->bucket_alloc);
        ctx->batch = NULL;
    }
    else {
        unsigned char *from = ctx->batch + n + ZEQ_RECORD_HEADER_LEN;
        unsigned char *to = ctx->batch + ZEQ_RECORD_HEADER_LEN;
        b = apr_bucket_heap_create((const char *)ctx->batch, n, NULL,
                                   f->c->bucket_alloc);
        if (p > 0) {
            /* What of its old place the move leaves is cleansed. */
            unsigned char *stale = from > to + p ? from : to + p;
            memmove(to, from, p);
            OPENSSL_cleanse(stale, (apr_size_t)(from + p - stale));
        }
    }
    ctx->batch_len = 0;
    ctx->ahead_end = 0;
    ctx->out_len += n;
    APR_BRIGADE_INSERT_TAIL(ctx->out, b);
}

/* v2: passes ctx->out (and, with flush, a FLUSH after it). */
static apr_status_t zeq_response_v2_send(ap_filter_t *f, zeq_response_ctx *ctx,
                                         int flush)
{
    apr_status_t rv;

    if (flush) {
        APR_BRIGADE_INSERT_TAIL(ctx->out,
                                apr_bucket_flush_create(f->c->bucket_alloc));
    }
    if (APR_BRIGADE_EMPTY(ctx->out)) {
        return APR_SUCCESS;
    }
    ctx->started = 1;
    rv = ap_pass_brigade(f->next, ctx->out);
    apr_brigade_cleanup(ctx->out);
    ctx->out_len = 0;
    return rv;
}

/* v2: passes what is sealed so far (and, with flush, a FLUSH after it). */
static apr_status_t zeq_response_v2_pass(ap_filter_t *f, zeq_response_ctx *ctx,
                                         int flush)
{
    zeq_response_v2_emit(f, ctx);
    return zeq_response_v2_send(f, ctx, flush);
}

/* v2: a batch to fill, when the last was passed on. */
static apr_status_t zeq_response_v2_batch(zeq_response_ctx *ctx)
{
    if (ctx->batch == NULL) {
        ctx->batch = malloc(ZEQ_RESPONSE_BATCH);
        ctx->batch_len = 0;
        if (ctx->batch == NULL) {
            return APR_ENOMEM;
        }
    }
    return APR_SUCCESS;
}

/* v2: seals the current record (final: the last) in place; once the
 * batch has no room for another full record, its records go onto
 * ctx->out. */
static apr_status_t zeq_response_v2_record(ap_filter_t *f,
                                           zeq_response_ctx *ctx, int final)
{
    unsigned char *rec;

    if (zeq_response_v2_batch(ctx) != APR_SUCCESS) {
        return APR_ENOMEM;
    }
    rec = ctx->batch + ctx->batch_len;
    if (zeq_record_seal(&ctx->sealer, rec + ZEQ_RECORD_HEADER_LEN,
                        ctx->pending_len, final, rec) != ZEQ_OK) {
        return APR_EGENERAL;
    }
    ctx->batch_len += ZEQ_RECORD_OVERHEAD + ctx->pending_len;
    ctx->pending_len = 0;
    ctx->final = final;
    if (final || ZEQ_RESPONSE_BATCH - ctx->batch_len < ZEQ_RESPONSE_SLOT) {
        zeq_response_v2_emit(f, ctx);
    }
    return APR_SUCCESS;
}

/* v2: where the next plaintext goes: *at, room for *room bytes (the rest
 * of the current record, within a known length). A full record is sealed
 * first: more follows it, so it is not the last. APR_EOF: the body is
 * longer than its known length. */
static apr_status_t zeq_response_v2_room(ap_filter_t *f,
                                         zeq_response_ctx *ctx,
                                         unsigned char **at, apr_size_t *room)
{
    apr_status_t rv;

    if (ctx->final) {
        return APR_EOF;
    }
    if (ctx->pending_len == ZEQ_RECORD_SIZE
        && (rv = zeq_response_v2_record(f, ctx, 0)) != APR_SUCCESS) {
        return rv;
    }
    if ((rv = zeq_response_v2_batch(ctx)) != APR_SUCCESS) {
        return rv;
    }
    *at = ctx->batch + ctx->batch_len + ZEQ_RECORD_HEADER_LEN
          + ctx->pending_len;
    *room = ZEQ_RECORD_SIZE - ctx->pending_len;
    if (ctx->length >= 0 && (apr_off_t)*room > ctx->length - ctx->plain_len) {
        *room = (apr_size_t)(ctx->length - ctx->plain_len);
    }
    return APR_SUCCESS;
}

/* v2: n bytes of plaintext (at most the room) are in place. The record
 * that ends a body of known length is sealed at once (it is final); at
 * most 64 KiB of sealed records wait on ctx->out before they are passed
 * (the batch stays as it is: a file read may have filled records ahead). */
static apr_status_t zeq_response_v2_took(ap_filter_t *f, zeq_response_ctx *ctx,
                                         apr_size_t n)
{
    apr_status_t rv;

    ctx->pending_len += n;
    ctx->plain_len += (apr_off_t)n;
    if (ctx->length >= 0 && ctx->plain_len == ctx->length
        && (rv = zeq_response_v2_record(f, ctx, 1)) != APR_SUCCESS) {
        return rv;
    }
    if (ctx->out_len >= ZEQ_RESPONSE_RECORDS * ZEQ_RECORD_SIZE) {
        return zeq_response_v2_send(f, ctx, 0);
    }
    return APR_SUCCESS;
}

/* v2: takes len bytes of plaintext at data into the records. */
static apr_status_t zeq_response_v2_add(ap_filter_t *f, zeq_response_ctx *ctx,
                                        const unsigned char *data,
                                        apr_size_t len)
{
    apr_status_t rv;

    while (len > 0) {
        unsigned char *at;
        apr_size_t n;
        if ((rv = zeq_response_v2_room(f, ctx, &at, &n)) != APR_SUCCESS) {
            return rv;
        }
        if (n == 0) {
            return APR_EOF;          /* more than the known length */
        }
        if (n > len) {
            n = len;
        }
        memcpy(at, data, n);
        data += n;
        len -= n;
        if ((rv = zeq_response_v2_took(f, ctx, n)) != APR_SUCCESS) {
            return rv;
        }
    }
    return APR_SUCCESS;
}

/* Reads into iov (n buffers) from fd at offset at, with one preadv
 * (again after a signal): the bytes read, 0 at the end of the file, -1
 * (errno) on an error. The file's own offset does not move. */
static apr_ssize_t zeq_response_preadv(apr_file_t *file, apr_off_t at,
                                       const struct iovec *iov, int n)
{
    apr_os_file_t fd;
    ssize_t got;

    if (apr_os_file_get(&fd, file) != APR_SUCCESS) {
        errno = EBADF;
        return -1;
    }
    do {
        got = preadv(fd, iov, n, (off_t)at);
    } while (got < 0 && errno == EINTR);
    return (apr_ssize_t)got;
}

/* v2: takes len bytes of file from offset at into the records: each
 * preadv fills the current record and the whole records after it that the
 * batch holds (64 KiB of plaintext a call). *read_rv gets a read error (a
 * file shorter than its bucket: APR_EOF). */
static apr_status_t zeq_response_v2_add_file(ap_filter_t *f,
                                             zeq_response_ctx *ctx,
                                             apr_file_t *file, apr_off_t at,
                                             apr_size_t len,
                                             apr_status_t *read_rv)
{
    apr_status_t rv;

    if (ctx->length >= 0 && (apr_off_t)len > ctx->length - ctx->plain_len) {
        return APR_EOF;              /* more than the known length */
    }
    while (len > 0) {
        struct iovec iov[ZEQ_RESPONSE_RECORDS];
        unsigned char *p;
        apr_size_t room, want, next;
        apr_ssize_t got;
        int n = 1, i;

        if ((rv = zeq_response_v2_room(f, ctx, &p, &room)) != APR_SUCCESS) {
            return rv;
        }
        want = room < len ? room : len;
        iov[0].iov_base = p;
        iov[0].iov_len = want;
        /* Whole records after the current one, in their places. */
        next = ctx->batch_len + ZEQ_RESPONSE_SLOT;
        while (n < ZEQ_RESPONSE_RECORDS && want < len
               && ctx->pending_len + iov[0].iov_len == ZEQ_RECORD_SIZE
               && next + ZEQ_RESPONSE_SLOT <= ZEQ_RESPONSE_BATCH) {
            apr_size_t k = len - want < ZEQ_RECORD_SIZE ? len - want
                                                        : ZEQ_RECORD_SIZE;
            iov[n].iov_base = ctx->batch + next + ZEQ_RECORD_HEADER_LEN;
            iov[n].iov_len = k;
            want += k;
            next += ZEQ_RESPONSE_SLOT;
            n++;
        }
        if (n > 1) {
            ctx->ahead_end = next - ZEQ_RESPONSE_SLOT + ZEQ_RECORD_HEADER_LEN
                             + iov[n - 1].iov_len;
        }
        got = zeq_response_preadv(file, at, iov, n);
        if (got <= 0) {
            *read_rv = got == 0 ? APR_EOF : APR_FROM_OS_ERROR(errno);
            return *read_rv;
        }
        at += (apr_off_t)got;
        len -= (apr_size_t)got;
        /* Record by record: each one filled before the next has bytes is
         * sealed by the room of the next (more follows it). */
        for (i = 0; i < n && got > 0; i++) {
            apr_size_t k = (apr_size_t)got < iov[i].iov_len ? (apr_size_t)got
                                                            : iov[i].iov_len;
            if (i > 0 && (rv = zeq_response_v2_room(f, ctx, &p, &room))
                         != APR_SUCCESS) {
                return rv;
            }
            if ((rv = zeq_response_v2_took(f, ctx, k)) != APR_SUCCESS) {
                return rv;
            }
            got -= (apr_ssize_t)k;
        }
    }
    return APR_SUCCESS;
}

/* v2: the answer fails once its headers are out: no final record, an
 * error bucket that makes the core abort the connection (HTTP/1.1: no
 * last chunk) or reset the stream (HTTP/2), and a line in the error log. */
static apr_status_t zeq_response_v2_abort(ap_filter_t *f, zeq_response_ctx *ctx,
                                          const char *why)
{
    request_rec *r = f->r;

    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, ZEQLOG(50003)
                  "sealed answer cut short after %" APR_OFF_T_FMT " bytes: %s; "
                  "no final record, the client sees it truncated",
                  ctx->plain_len, why);
    ctx->done = 1;
    apr_brigade_cleanup(ctx->out);
    r->connection->keepalive = AP_CONN_CLOSE;
    APR_BRIGADE_INSERT_TAIL(ctx->out, ap_bucket_error_create(HTTP_BAD_GATEWAY,
                                                             NULL, r->pool,
                                                             f->c->bucket_alloc));
    APR_BRIGADE_INSERT_TAIL(ctx->out, apr_bucket_eos_create(f->c->bucket_alloc));
    ctx->started = 1;
    return ap_pass_brigade(f->next, ctx->out);
}

/* v2: a failure before anything was passed is answered like v1's; after,
 * the answer is cut. */
static apr_status_t zeq_response_v2_fail(ap_filter_t *f, zeq_response_ctx *ctx,
                                         const char *why)
{
    return ctx->started ? zeq_response_v2_abort(f, ctx, why)
                        : zeq_response_fail(f, ctx, why);
}

/* v2: what a failure to add plaintext answers. Passing failed: the
 * client went away (or the network failed), the filters below have said
 * so; otherwise the body overran its length or sealing failed. */
static apr_status_t zeq_response_v2_add_failed(ap_filter_t *f,
                                               zeq_response_ctx *ctx,
                                               apr_bucket_brigade *bb,
                                               apr_status_t rv)
{
    apr_brigade_cleanup(bb);
    if (f->c->aborted) {
        ctx->done = 1;
        return rv;
    }
    return zeq_response_v2_fail(f, ctx, rv == APR_EOF
                                ? "the body is longer than its Content-Length"
                                : "encryption failed");
}

/* v2: the body of known length n, in records, with its headers. */
static void zeq_response_v2_headers(request_rec *r, zeq_response_ctx *ctx)
{
    zeq_response_set_headers(r, ctx->type, ctx->encoding,
                             ctx->length >= 0
                             ? (apr_off_t)zeq_record_sealed_len(
                                   (unsigned long long)ctx->length,
                                   ZEQ_RECORD_SIZE)
                             : -1);
}

/* The length of a body before its first byte: the handler's Content-Length
 * (a static file, a backend's), or the brigade when it already holds the
 * whole body; -1 when unknown. */
static apr_off_t zeq_response_known_length(request_rec *r,
                                           apr_bucket_brigade *bb)
{
    const char *cl = apr_table_get(r->headers_out, "Content-Length");
    apr_off_t n = 0;
    apr_bucket *e;

    if (cl != NULL && ap_parse_strict_length(&n, cl)) {
        return n;
    }
    for (e = APR_BRIGADE_FIRST(bb); e != APR_BRIGADE_SENTINEL(bb);
         e = APR_BUCKET_NEXT(e)) {
        if (APR_BUCKET_IS_EOS(e)) {
            return n;
        }
        if (APR_BUCKET_IS_FLUSH(e) || e->length == (apr_size_t)-1) {
            return -1;
        }
        n += (apr_off_t)e->length;
    }
    return -1;
}

/* v2: the streaming loop over one brigade (every bucket but those of a
 * HEAD answer). */
static apr_status_t zeq_response_v2_filter(ap_filter_t *f,
                                           zeq_response_ctx *ctx,
                                           apr_bucket_brigade *bb)
{
    apr_status_t rv;

    while (!APR_BRIGADE_EMPTY(bb)) {
        apr_bucket *e = APR_BRIGADE_FIRST(bb);
        const char *data;
        apr_size_t len;

        if (APR_BUCKET_IS_EOS(e)) {
            if (ctx->length >= 0 && ctx->plain_len < ctx->length) {
                apr_brigade_cleanup(bb);
                return zeq_response_v2_fail(f, ctx, "the body ended short of "
                                                    "its Content-Length");
            }
            if (!ctx->final && zeq_response_v2_record(f, ctx, 1) != APR_SUCCESS) {
                apr_brigade_cleanup(bb);
                return zeq_response_v2_fail(f, ctx, "encryption failed");
            }
            ctx->done = 1;
            APR_BUCKET_REMOVE(e);
            zeq_response_end(f, ctx->out, e);
            apr_brigade_cleanup(bb);
            ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, f->r, ZEQLOG(50002)
                          "answer sealed (version 2): %" APR_OFF_T_FMT " bytes "
                          "of plaintext", ctx->plain_len);
            return zeq_response_v2_pass(f, ctx, 0);
        }
        if (AP_BUCKET_IS_ERROR(e)) {
            if (!ctx->started) {
                /* The handler failed before anything was sent: its error
                 * page is sealed anew. */
                apr_brigade_cleanup(ctx->out);
                ap_remove_output_filter(f);
                return ap_pass_brigade(f->next, bb);
            }
            apr_brigade_cleanup(bb);
            return zeq_response_v2_abort(f, ctx, "the handler or the backend "
                                                 "failed");
        }
        if (APR_BUCKET_IS_FLUSH(e)) {
            /* Where the length is unknown, a flush sends what is pending:
             * the event reaches the client now. */
            if (ctx->length < 0 && ctx->pending_len > 0
                && zeq_response_v2_record(f, ctx, 0) != APR_SUCCESS) {
                apr_brigade_cleanup(bb);
                return zeq_response_v2_fail(f, ctx, "encryption failed");
            }
            apr_bucket_delete(e);
            rv = zeq_response_v2_pass(f, ctx, 1);
            if (rv != APR_SUCCESS) {
                apr_brigade_cleanup(bb);
                return rv;
            }
            continue;
        }
        if (APR_BUCKET_IS_METADATA(e)) {
            /* After the records sealed before it. */
            zeq_response_v2_emit(f, ctx);
            APR_BUCKET_REMOVE(e);
            APR_BRIGADE_INSERT_TAIL(ctx->out, e);
            continue;
        }
        if (APR_BUCKET_IS_FILE(e) && e->length != (apr_size_t)-1) {
            /* A file region is read into the records: apr_bucket_read
             * would mmap it, and every munmap of a threaded process
             * interrupts all its cores (for a small file that costs more
             * than the read). */
            apr_bucket_file *file = e->data;
            apr_status_t read_rv = APR_SUCCESS;
            rv = zeq_response_v2_add_file(f, ctx, file->fd, e->start,
                                          e->length, &read_rv);
            if (read_rv != APR_SUCCESS) {
                apr_brigade_cleanup(bb);
                return zeq_response_v2_fail(f, ctx, "reading the file failed");
            }
            if (rv != APR_SUCCESS) {
                return zeq_response_v2_add_failed(f, ctx, bb, rv);
            }
            apr_bucket_delete(e);
            continue;
        }
        rv = apr_bucket_read(e, &data, &len, APR_NONBLOCK_READ);
        if (APR_STATUS_IS_EAGAIN(rv)) {
            /* The application pauses: what it wrote goes out meanwhile. */
            if (ctx->length < 0 && ctx->pending_len > 0
                && zeq_response_v2_record(f, ctx, 0) != APR_SUCCESS) {
                apr_brigade_cleanup(bb);
                return zeq_response_v2_fail(f, ctx, "encryption failed");
            }
            rv = zeq_response_v2_pass(f, ctx, 1);
            if (rv == APR_SUCCESS) {
                rv = apr_bucket_read(e, &data, &len, APR_BLOCK_READ);
            }
        }
        if (rv != APR_SUCCESS) {
            apr_brigade_cleanup(bb);
            return zeq_response_v2_fail(f, ctx, "reading the body failed");
        }
        rv = zeq_response_v2_add(f, ctx, (const unsigned char *)data, len);
        if (rv != APR_SUCCESS) {
            return zeq_response_v2_add_failed(f, ctx, bb, rv);
        }
        apr_bucket_delete(e);
    }
    return zeq_response_v2_pass(f, ctx, 0);
}

static apr_status_t zeq_response_finish(ap_filter_t *f,
                                        zeq_response_ctx *ctx,
                                        apr_bucket *eos)
{
    request_rec *r = f->r;
    zeq_exchange *ex = ctx->ex;
    apr_bucket_brigade *bb = apr_brigade_create(r->pool, f->c->bucket_alloc);

    if (r->header_only) {
        /* HEAD: the length the GET would have. A proxied HEAD has no body
         * but the backend's plaintext Content-Length. */
        apr_off_t n = ctx->plain_len, length;
        const char *cl = apr_table_get(r->headers_out, "Content-Length");
        if (n == 0 && cl != NULL && !ap_parse_strict_length(&n, cl)) {
            n = 0;
        }
        if (ex->version == 1 && n > ctx->limit) {
            /* What the GET would answer (v2 streams: no limit). */
            return zeq_response_over_limit(f, ctx);
        }
        if (ex->version == 2) {
            const char *type = r->content_type, *enc = zeq_response_encoding(r);
            const char *seal = zeq_response_seal_header(r, ex, r->status, type,
                                                        enc);
            if (seal == NULL) {
                return zeq_response_fail(f, ctx, "encryption failed");
            }
            length = n > 0 || cl != NULL
                     ? (apr_off_t)zeq_record_sealed_len((unsigned long long)n,
                                                        ZEQ_RECORD_SIZE)
                     : -1;
            zeq_response_set_headers(r, type, enc, length);
            apr_table_setn(r->headers_out, ZEQ_E2E_HDR_SEAL, seal);
        }
        else {
            zeq_response_set_headers(r, r->content_type,
                                     zeq_response_encoding(r),
                                     n + ZEQ_ENVELOPE_OVERHEAD);
        }
    }
    else {
        if (zeq_envelope_seal_final(ctx->cipher,
                                    ctx->head + ZEQ_ENVELOPE_IV_LEN)
            != ZEQ_OK) {
            return zeq_response_fail(f, ctx, "encryption failed");
        }
        zeq_response_set_headers(r, r->content_type, zeq_response_encoding(r),
                                 ctx->plain_len + ZEQ_ENVELOPE_OVERHEAD);
        APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_heap_create(
                                        (const char *)ctx->head,
                                        sizeof(ctx->head), NULL,
                                        f->c->bucket_alloc));
        zeq_spool_drain(ctx->spool, bb);
    }
    ctx->done = 1;
    ex->answered = 1;
    APR_BRIGADE_CONCAT(bb, ctx->meta);
    APR_BUCKET_REMOVE(eos);
    zeq_response_end(f, bb, eos);
    ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r, ZEQLOG(50002)
                  "response sealed (version %d): %" APR_OFF_T_FMT " bytes of "
                  "plaintext", ex->version, ctx->plain_len);
    return ap_pass_brigade(f->next, bb);
}

/* v1: the file of an answer changed between its two passes (the request
 * lives until its buckets are sent: r is valid when they are read). */
static void zeq_response_v1_cut(void *baton, apr_off_t at, apr_status_t rv)
{
    request_rec *r = baton;

    ap_log_rerror(APLOG_MARK, APLOG_ERR, rv == APR_EOF ? 0 : rv, r,
                  ZEQLOG(50004) "sealed answer cut short after %" APR_OFF_T_FMT
                  " bytes: the file %s", at, rv == APR_EOF
                  ? "became shorter while it was sent" : "could not be read "
                    "or encrypted again while it was sent");
}

/* Sets up f->ctx; returns 0 when the cipher could not be set up (the
 * context is usable all the same, to answer the failure). */
static int zeq_response_ctx_init(ap_filter_t *f, zeq_exchange *ex,
                                 apr_bucket_brigade *bb)
{
    request_rec *r = f->r;
    zeq_response_ctx *ctx = apr_pcalloc(r->pool, sizeof(*ctx));

    f->ctx = ctx;
    ctx->ex = ex;
    ctx->meta = apr_brigade_create(r->pool, f->c->bucket_alloc);
    ctx->limit = zeq_config_max_response(zeq_config_dir(r));
    if (r->header_only) {
        return 1;    /* HEAD: lengths (and v2's seal) only */
    }
    apr_pool_cleanup_register(r->pool, ctx, zeq_response_ctx_cleanup,
                              apr_pool_cleanup_null);
    if (ex->version == 2) {
        apr_size_t aadlen;
        unsigned char *aad;
        /* The AAD binds the answer as its headers go out: now, with the
         * first record or flush. */
        ctx->status = r->status;
        ctx->type = r->content_type ? apr_pstrdup(r->pool, r->content_type)
                                    : NULL;
        ctx->encoding = zeq_response_encoding(r);
        if (ctx->encoding != NULL) {
            ctx->encoding = apr_pstrdup(r->pool, ctx->encoding);
        }
        ctx->length = zeq_response_known_length(r, bb);
        ctx->out = apr_brigade_create(r->pool, f->c->bucket_alloc);
        aad = zeq_exchange_response_aad(r->pool, ex, ctx->status, ctx->type,
                                        ctx->encoding, &aadlen);
        /* The first batch starts with the message's prefix. */
        if (zeq_response_v2_batch(ctx) != APR_SUCCESS
            || zeq_record_sealer_init(&ctx->sealer, ex->keys.s2c, NULL, aad,
                                      aadlen) != ZEQ_OK) {
            return 0;
        }
        zeq_record_sealer_prefix(&ctx->sealer, ctx->batch);
        ctx->batch_len = ZEQ_RECORD_PREFIX_LEN;
        zeq_response_v2_headers(r, ctx);
        ex->answered = 1;
        return 1;
    }
    ctx->cipher = zeq_envelope_ctx_new();
    if (ctx->cipher == NULL
        || zeq_envelope_random(ctx->head, ZEQ_ENVELOPE_IV_LEN) != ZEQ_OK
        || zeq_envelope_seal_init(ctx->cipher, ex->keys.s2c, ctx->head, NULL,
                                  0) != ZEQ_OK) {
        return 0;
    }
    ctx->spool = zeq_spool_create(r->pool, f->c->bucket_alloc, ex->keys.s2c,
                                  ctx->head, NULL);
    zeq_spool_on_cut(ctx->spool, zeq_response_v1_cut, r);
    return 1;
}

/* v1: a file region of an answer of at most ZEQ_SPOOL_WHOLE bytes so far,
 * read (one pread) and encrypted once, in place; its ciphertext waits in
 * memory. What an answer holds so is at most its own size: the memory
 * bound of v1, twice the body, holds. */
static apr_status_t zeq_response_seal_whole(zeq_response_ctx *ctx,
                                            apr_file_t *fd, apr_off_t at,
                                            apr_size_t len)
{
    unsigned char *buf = malloc(len);
    apr_size_t done = 0;

    if (buf == NULL) {
        return APR_ENOMEM;
    }
    while (done < len) {
        struct iovec iov;
        apr_ssize_t got;
        iov.iov_base = buf + done;
        iov.iov_len = len - done;
        got = zeq_response_preadv(fd, at + (apr_off_t)done, &iov, 1);
        if (got <= 0) {
            apr_status_t rv = got == 0 ? APR_EOF : APR_FROM_OS_ERROR(errno);
            OPENSSL_cleanse(buf, done);
            free(buf);
            return rv;
        }
        done += (apr_size_t)got;
    }
    if (zeq_envelope_seal_update(ctx->cipher, buf, len, buf) != ZEQ_OK) {
        OPENSSL_cleanse(buf, len);
        free(buf);
        return APR_EGENERAL;
    }
    return zeq_spool_add_whole(ctx->spool, buf, len);
}

/* v1: passes a file region's plaintext through the cipher (for the tag);
 * its ciphertext is produced again from the file when sent. Two passes of
 * AES over the body (v1's tag precedes the ciphertext), for answers over
 * ZEQ_SPOOL_WHOLE: what waits is 64 KiB of scratch and the spool's 64 KiB
 * whatever the body's size, far under v1's bound of twice the body. */
static apr_status_t zeq_response_seal_file(zeq_response_ctx *ctx,
                                           apr_pool_t *p, apr_file_t *fd,
                                           apr_off_t start, apr_off_t len)
{
    apr_off_t at = start, left = len;
    apr_status_t rv;

    if (ctx->scratch == NULL) {
        ctx->scratch = apr_palloc(p, ZEQ_RESPONSE_SCRATCH);
    }
    rv = apr_file_seek(fd, APR_SET, &at);
    while (rv == APR_SUCCESS && left > 0) {
        apr_size_t n = left > ZEQ_RESPONSE_SCRATCH ? ZEQ_RESPONSE_SCRATCH
                                                   : (apr_size_t)left;
        apr_size_t got = 0;
        rv = apr_file_read_full(fd, ctx->scratch, n, &got);
        if (rv == APR_SUCCESS
            && zeq_envelope_seal_update(ctx->cipher, ctx->scratch, n,
                                        ctx->scratch) != ZEQ_OK) {
            rv = APR_EGENERAL;
        }
        left -= (apr_off_t)n;
    }
    if (rv == APR_SUCCESS) {
        rv = zeq_spool_add_file(ctx->spool, fd, start, len);
    }
    return rv;
}

/* Seals len bytes of plaintext: NULL, or why not. */
static const char *zeq_response_add(zeq_response_ctx *ctx, const char *data,
                                    apr_size_t len)
{
    unsigned char *out;

    out = malloc(len);
    if (out == NULL
        || zeq_envelope_seal_update(ctx->cipher, (const unsigned char *)data,
                                    len, out) != ZEQ_OK) {
        free(out);
        return "encryption failed";
    }
    return zeq_spool_add(ctx->spool, out, len) == APR_SUCCESS
           ? NULL : "cannot spool the ciphertext";
}

/* An answer without a body (204, 304): v2 carries its seal. */
static apr_status_t zeq_response_bodiless(ap_filter_t *f, zeq_exchange *ex,
                                          apr_bucket_brigade *bb)
{
    request_rec *r = f->r;

    if (ex->version == 2) {
        const char *enc = zeq_response_encoding(r);
        const char *seal = zeq_response_seal_header(r, ex, r->status,
                                                    r->content_type, enc);
        if (seal != NULL) {
            apr_table_setn(r->headers_out, ZEQ_E2E_HDR_SEAL, seal);
            if (r->content_type != NULL) {
                apr_table_setn(r->headers_out, ZEQ_E2E_HDR_CONTENT_TYPE,
                               r->content_type);
            }
            if (enc != NULL) {
                apr_table_setn(r->headers_out, ZEQ_E2E_HDR_CONTENT_ENCODING,
                               apr_pstrdup(r->pool, enc));
            }
        }
    }
    ex->answered = 1;
    ap_remove_output_filter(f);
    return ap_pass_brigade(f->next, bb);
}

static apr_status_t zeq_response_out_filter(ap_filter_t *f,
                                            apr_bucket_brigade *bb)
{
    request_rec *r = f->r;
    zeq_response_ctx *ctx = f->ctx;
    apr_status_t rv;

    if (ctx == NULL) {
        zeq_exchange *ex = zeq_exchange_get(r);
        if (!zeq_exchange_sealed(ex)) {
            /* A module error that came after this filter was added is
             * plaintext by design. */
            if (ex != NULL) {
                ex->answered = 1;
            }
            ap_remove_output_filter(f);
            return ap_pass_brigade(f->next, bb);
        }
        if (AP_STATUS_IS_HEADER_ONLY(r->status)) {
            return zeq_response_bodiless(f, ex, bb);
        }
        if (!zeq_response_ctx_init(f, ex, bb)) {
            apr_brigade_cleanup(bb);
            return zeq_response_fail(f, f->ctx, "cannot set up the cipher");
        }
        ctx = f->ctx;
    }
    if (ctx->done) {
        apr_brigade_cleanup(bb);
        return APR_SUCCESS;
    }
    if (ctx->ex->version == 2 && !r->header_only) {
        return zeq_response_v2_filter(f, ctx, bb);
    }
    while (!APR_BRIGADE_EMPTY(bb)) {
        apr_bucket *e = APR_BRIGADE_FIRST(bb);
        const char *data, *why;
        apr_size_t len;

        if (APR_BUCKET_IS_EOS(e)) {
            rv = zeq_response_finish(f, ctx, e);
            apr_brigade_cleanup(bb);
            return rv;
        }
        if (AP_BUCKET_IS_ERROR(e)) {
            /* The handler failed: drop what was sealed so far and let
             * httpd answer the error (its page is sealed anew). */
            if (ctx->spool != NULL) {
                zeq_spool_discard(ctx->spool);
            }
            apr_brigade_cleanup(ctx->meta);
            ap_remove_output_filter(f);
            return ap_pass_brigade(f->next, bb);
        }
        if (APR_BUCKET_IS_FLUSH(e)) {
            /* Nothing may pass before EOS: the headers would go out. */
            apr_bucket_delete(e);
            continue;
        }
        if (APR_BUCKET_IS_METADATA(e)) {
            APR_BUCKET_REMOVE(e);
            APR_BRIGADE_INSERT_TAIL(ctx->meta, e);
            continue;
        }
        if (r->header_only && e->length != (apr_size_t)-1) {
            /* HEAD: count, read nothing. */
            ctx->plain_len += (apr_off_t)e->length;
            apr_bucket_delete(e);
            continue;
        }
        if (APR_BUCKET_IS_FILE(e) && !r->header_only
            && ctx->ex->version == 1) {
            apr_bucket_file *file = e->data;
            ctx->plain_len += (apr_off_t)e->length;
            if (ctx->plain_len > ctx->limit) {
                apr_brigade_cleanup(bb);
                return zeq_response_over_limit(f, ctx);
            }
            if (ctx->plain_len <= ZEQ_SPOOL_WHOLE) {
                /* Small: read and encrypted once, now. */
                rv = e->length > 0
                     ? zeq_response_seal_whole(ctx, file->fd, e->start,
                                               e->length)
                     : APR_SUCCESS;
            }
            else {
                /* The file is read again when the answer is sent: it
                 * must live as long as this request. A subrequest's file
                 * belongs to the subrequest's pool, which its caller may
                 * destroy before EOS (mod_autoindex does, for
                 * HeaderName): setting the bucket aside moves the file
                 * into r->pool. */
                rv = apr_bucket_setaside(e, r->pool);
                file = e->data;
                if (rv == APR_SUCCESS) {
                    rv = zeq_response_seal_file(ctx, r->pool, file->fd,
                                                e->start,
                                                (apr_off_t)e->length);
                }
            }
            if (rv != APR_SUCCESS) {
                apr_brigade_cleanup(bb);
                return zeq_response_fail(f, ctx, "reading the file to seal "
                                                 "failed");
            }
            apr_bucket_delete(e);
            continue;
        }
        rv = apr_bucket_read(e, &data, &len, APR_BLOCK_READ);
        if (rv != APR_SUCCESS) {
            apr_brigade_cleanup(bb);
            return zeq_response_fail(f, ctx, "reading the response body "
                                             "failed");
        }
        ctx->plain_len += (apr_off_t)len;
        if (ctx->ex->version == 1 && ctx->plain_len > ctx->limit) {
            apr_brigade_cleanup(bb);
            return zeq_response_over_limit(f, ctx);
        }
        if (len > 0 && !r->header_only
            && (why = zeq_response_add(ctx, data, len)) != NULL) {
            apr_brigade_cleanup(bb);
            return zeq_response_fail(f, ctx, why);
        }
        apr_bucket_delete(e);
    }
    return APR_SUCCESS;
}

void zeq_response_add_filter(request_rec *r)
{
    ap_add_output_filter_handle(zeq_response_out_handle, NULL, r,
                                r->connection);
}

static int zeq_e2e_response_encrypted(request_rec *r)
{
    return zeq_exchange_sealed(zeq_exchange_get(r));
}

void zeq_response_register_hooks(apr_pool_t *p)
{
    (void)p;
    /* After RESOURCE filters, DEFLATE and CACHE_SAVE; before BYTERANGE,
     * CONTENT_LENGTH and HTTP_HEADER. */
    zeq_response_out_handle = ap_register_output_filter(
        "ZEQ_E2E_SEAL", zeq_response_out_filter, NULL,
        AP_FTYPE_CONTENT_SET + 5);
    APR_REGISTER_OPTIONAL_FN(zeq_e2e_response_encrypted);
}
