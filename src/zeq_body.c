/* The plaintext of a verified request body, opened again as it is read
 * (see zeq_body.h). */
#include "zeq_body.h"
#include "zeq_record.h"

#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>

/* Plaintext bytes one read hands over at most. */
#define ZEQ_BODY_CHUNK (64 * 1024)
/* Ciphertext bytes fed to the reader at once. */
#define ZEQ_BODY_FEED (16 * 1024)

struct zeq_body {
    apr_pool_t *pool;
    apr_bucket_alloc_t *list;
    apr_bucket_brigade *ct;      /* ciphertext not yet opened */
    zeq_record_reader *rd;
    apr_off_t pos;               /* plaintext handed out so far */
    apr_off_t plain_len;
    unsigned char *pending;      /* opened, not yet handed out */
    apr_size_t pending_len, pending_at, pending_cap;
    int failed, finished;
};

static int zeq_body_emit(void *baton, const unsigned char *data, size_t len)
{
    zeq_body *body = baton;
    size_t need = body->pending_len + len;

    if (need > body->pending_cap) {
        unsigned char *grown = malloc(need);
        if (grown == NULL) {
            return -1;
        }
        if (body->pending != NULL) {
            memcpy(grown, body->pending, body->pending_len);
            OPENSSL_cleanse(body->pending, body->pending_cap);
            free(body->pending);
        }
        body->pending = grown;
        body->pending_cap = need;
    }
    memcpy(body->pending + body->pending_len, data, len);
    body->pending_len += len;
    return 0;
}

static apr_status_t zeq_body_cleanup(void *data)
{
    zeq_body *body = data;

    zeq_record_reader_free(body->rd);
    body->rd = NULL;
    if (body->pending != NULL) {
        OPENSSL_cleanse(body->pending, body->pending_cap);
        free(body->pending);
        body->pending = NULL;
    }
    return APR_SUCCESS;
}

/* Feeds the next piece of ciphertext to the reader. */
static apr_status_t zeq_body_feed(zeq_body *body)
{
    apr_bucket *e = APR_BRIGADE_FIRST(body->ct);
    const char *data;
    apr_size_t len;
    apr_status_t rv = APR_SUCCESS;

    if (!APR_BUCKET_IS_METADATA(e)) {
        if (e->length != (apr_size_t)-1 && e->length > ZEQ_BODY_FEED) {
            apr_bucket_split(e, ZEQ_BODY_FEED);
        }
        rv = apr_bucket_read(e, &data, &len, APR_BLOCK_READ);
        if (rv == APR_SUCCESS
            && zeq_record_reader_feed(body->rd, (const unsigned char *)data,
                                      len) != ZEQ_OK) {
            rv = APR_EGENERAL;
        }
    }
    apr_bucket_delete(e);
    return rv;
}

/* Opens ciphertext until some plaintext is pending: APR_SUCCESS, or
 * APR_EGENERAL when the message does not open (again) or ends early. */
static apr_status_t zeq_body_fill(zeq_body *body)
{
    if (body->pending_at == body->pending_len) {
        body->pending_at = body->pending_len = 0;
    }
    while (body->pending_len == 0 && !body->failed && !body->finished) {
        if (APR_BRIGADE_EMPTY(body->ct)) {
            body->failed = 1;    /* less plaintext than the first pass */
            break;
        }
        if (zeq_body_feed(body) != APR_SUCCESS) {
            body->failed = 1;
        }
    }
    return !body->failed && body->pending_len > body->pending_at
           ? APR_SUCCESS : APR_EGENERAL;
}

/* Opens the rest of the ciphertext, which must hold no more plaintext, and
 * checks that the message is whole and verifies. */
static apr_status_t zeq_body_finish(zeq_body *body)
{
    apr_size_t before = body->pending_len;

    while (!body->finished && !body->failed) {
        if (APR_BRIGADE_EMPTY(body->ct)) {
            body->failed = zeq_record_reader_finish(body->rd) != ZEQ_OK;
            body->finished = 1;
            break;
        }
        if (zeq_body_feed(body) != APR_SUCCESS) {
            body->failed = 1;
        }
    }
    if (body->pending_len != before) {
        body->failed = 1;        /* more plaintext than the first pass */
    }
    return body->failed ? APR_EGENERAL : APR_SUCCESS;
}

/* --- the plaintext bucket ----------------------------------------------
 * A shared bucket whose start is its offset in the plaintext; reading it
 * opens the next chunk and morphs it into a heap bucket of that chunk,
 * followed by a plaintext bucket for the rest (the way APR's file buckets
 * read). Setaside does nothing: the body lives in the request's pool,
 * which outlives every read of its body. */

typedef struct {
    apr_bucket_refcount refcount;
    zeq_body *body;
} zeq_body_ref;

static void zeq_body_ref_destroy(void *data)
{
    zeq_body_ref *ref = data;

    if (apr_bucket_shared_destroy(ref)) {
        apr_bucket_free(ref);
    }
}

static apr_status_t zeq_body_ref_setaside(apr_bucket *b, apr_pool_t *p)
{
    (void)b;
    (void)p;
    return APR_SUCCESS;
}

static apr_status_t zeq_body_read(apr_bucket *b, const char **str,
                                  apr_size_t *len, apr_read_type_e block);

static const apr_bucket_type_t zeq_body_type = {
    "ZEQ_E2E_PLAINTEXT", 5, APR_BUCKET_DATA,
    zeq_body_ref_destroy,
    zeq_body_read,
    zeq_body_ref_setaside,
    apr_bucket_shared_split,
    apr_bucket_shared_copy
};

static apr_status_t zeq_body_read(apr_bucket *b, const char **str,
                                  apr_size_t *len, apr_read_type_e block)
{
    zeq_body_ref *ref = b->data;
    zeq_body *body = ref->body;
    apr_size_t n;
    apr_bucket *rest;
    char *buf;

    (void)block;
    if (b->start != body->pos || zeq_body_fill(body) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    n = body->pending_len - body->pending_at;
    if (n > b->length) {
        n = b->length;
    }
    if (n > ZEQ_BODY_CHUNK) {
        n = ZEQ_BODY_CHUNK;
    }
    if (body->pos + (apr_off_t)n == body->plain_len
        && zeq_body_finish(body) != APR_SUCCESS) {
        /* The last bytes only once the message verified again whole (v1's
         * tag comes at its end). */
        return APR_EGENERAL;
    }
    buf = apr_bucket_alloc(n, b->list);
    if (buf == NULL) {
        return APR_ENOMEM;
    }
    memcpy(buf, body->pending + body->pending_at, n);
    OPENSSL_cleanse(body->pending + body->pending_at, n);
    body->pending_at += n;
    body->pos += (apr_off_t)n;
    if (b->length > n) {
        apr_bucket_shared_copy(b, &rest);
        rest->start += (apr_off_t)n;
        rest->length -= n;
        APR_BUCKET_INSERT_AFTER(b, rest);
    }
    zeq_body_ref_destroy(ref);
    apr_bucket_heap_make(b, buf, n, apr_bucket_free);
    *str = buf;
    *len = n;
    return APR_SUCCESS;
}

zeq_body *zeq_body_create(apr_pool_t *p, apr_bucket_alloc_t *list,
                          apr_bucket_brigade *ct, int version,
                          const unsigned char key[ZEQ_KEY_LEN],
                          const unsigned char *aad, apr_size_t aadlen,
                          apr_off_t plain_len)
{
    zeq_body *body = apr_pcalloc(p, sizeof(*body));

    body->pool = p;
    body->list = list;
    body->plain_len = plain_len;
    body->ct = apr_brigade_create(p, list);
    APR_BRIGADE_CONCAT(body->ct, ct);
    body->rd = zeq_record_reader_new(version, key, aad, aadlen,
                                     ZEQ_RECORD_MAX, zeq_body_emit, body);
    if (body->rd == NULL) {
        apr_brigade_cleanup(body->ct);
        return NULL;
    }
    apr_pool_cleanup_register(p, body, zeq_body_cleanup,
                              apr_pool_cleanup_null);
    return body;
}

void zeq_body_buckets(zeq_body *body, apr_bucket_brigade *bb)
{
    apr_off_t at = 0;

    while (at < body->plain_len) {
        /* Bucket lengths are apr_size_t: keep each under 1 GiB. */
        apr_off_t left = body->plain_len - at;
        apr_size_t n = left > (apr_off_t)1 << 30 ? (apr_size_t)1 << 30
                                                 : (apr_size_t)left;
        apr_bucket *b = apr_bucket_alloc(sizeof(*b), body->list);
        zeq_body_ref *ref = apr_bucket_alloc(sizeof(*ref), body->list);

        APR_BUCKET_INIT(b);
        b->free = apr_bucket_free;
        b->list = body->list;
        ref->body = body;
        b = apr_bucket_shared_make(b, ref, at, n);
        b->type = &zeq_body_type;
        APR_BRIGADE_INSERT_TAIL(bb, b);
        at += (apr_off_t)n;
    }
}
