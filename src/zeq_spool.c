/* The spool of a v1 response envelope (see zeq_spool.h). */
#include "zeq_spool.h"

#include "apr_atomic.h"
#include "apr_strings.h"

#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>

/* Bytes of ciphertext each read of a file region produces. */
#define ZEQ_SPOOL_CHUNK (64 * 1024)

/* Ciphertext that all spools of this process hold in memory. */
static apr_uint32_t zeq_spool_in_memory;

struct zeq_spool {
    apr_pool_t *pool;
    apr_bucket_alloc_t *list;
    apr_bucket_brigade *out;     /* the ciphertext so far, in order */
    const char *tmpdir;
    apr_file_t *tmp;             /* the spill file (unlinked), or NULL */
    apr_bucket *tmp_bucket;      /* a file bucket of tmp in no brigade,
                                  * of which each segment is a copy */
    apr_off_t tmp_len;           /* bytes written to it */
    apr_off_t tmp_mark;          /* start of its bytes not yet in out */
    apr_size_t mem;              /* bytes of out in memory (counted) */
    apr_off_t pos;               /* ciphertext bytes so far */
    int spilling;                /* the memory bound was reached */
    zeq_spool_cut_fn *on_cut;    /* a file region read short, or NULL */
    void *cut_baton;
    unsigned char key[ZEQ_KEY_LEN];
    unsigned char iv[ZEQ_ENVELOPE_IV_LEN];
};

/* --- the file-region bucket ------------------------------------------------
 * A region of a file whose plaintext the envelope's cipher has already
 * seen: reading it reads the plaintext and applies the keystream at its
 * offset (zeq_envelope_keystream_xor), chunk by chunk, morphing into a heap
 * bucket of one chunk followed by a region bucket for the rest (the way
 * APR's file buckets read). Setaside does nothing: the file belongs to the
 * request's pool, which the request's EOR bucket keeps alive until every
 * bucket before it has been sent. */

typedef struct {
    apr_bucket_refcount refcount;
    apr_file_t *fd;
    apr_off_t file_start;        /* file offset of bucket offset 0 */
    apr_off_t stream_start;      /* keystream offset of bucket offset 0 */
    zeq_spool_cut_fn *on_cut;
    void *cut_baton;
    unsigned char key[ZEQ_KEY_LEN];
    unsigned char iv[ZEQ_ENVELOPE_IV_LEN];
} zeq_spool_region;

static void zeq_spool_region_destroy(void *data)
{
    zeq_spool_region *rg = data;

    if (apr_bucket_shared_destroy(rg)) {
        OPENSSL_cleanse(rg, sizeof(*rg));
        apr_bucket_free(rg);
    }
}

static apr_status_t zeq_spool_region_setaside(apr_bucket *b, apr_pool_t *p)
{
    (void)b;
    (void)p;
    return APR_SUCCESS;
}

static apr_status_t zeq_spool_region_read(apr_bucket *b, const char **str,
                                          apr_size_t *len,
                                          apr_read_type_e block);

static const apr_bucket_type_t zeq_spool_region_type = {
    "ZEQ_E2E_SEALED_FILE", 5, APR_BUCKET_DATA,
    zeq_spool_region_destroy,
    zeq_spool_region_read,
    zeq_spool_region_setaside,
    apr_bucket_shared_split,
    apr_bucket_shared_copy
};

static apr_status_t zeq_spool_region_read(apr_bucket *b, const char **str,
                                          apr_size_t *len,
                                          apr_read_type_e block)
{
    zeq_spool_region *rg = b->data;
    apr_size_t n = b->length < ZEQ_SPOOL_CHUNK ? b->length : ZEQ_SPOOL_CHUNK;
    apr_off_t at = rg->file_start + b->start;
    apr_size_t got = 0;
    apr_bucket *rest;
    char *buf;
    apr_status_t rv;

    (void)block;
    buf = apr_bucket_alloc(n, b->list);
    rv = apr_file_seek(rg->fd, APR_SET, &at);
    if (rv == APR_SUCCESS) {
        rv = apr_file_read_full(rg->fd, buf, n, &got);
    }
    if (rv == APR_SUCCESS && got != n) {
        rv = APR_EOF;
    }
    if (rv == APR_SUCCESS
        && zeq_envelope_keystream_xor(rg->key, rg->iv,
                                      (unsigned long long)(rg->stream_start
                                                           + b->start),
                                      (unsigned char *)buf, n) != ZEQ_OK) {
        rv = APR_EGENERAL;
    }
    if (rv != APR_SUCCESS) {
        /* A file that shrank or changed under the response: the client
         * gets a truncated body, whose envelope does not verify. */
        if (rg->on_cut != NULL) {
            rg->on_cut(rg->cut_baton, rg->stream_start + b->start, rv);
        }
        OPENSSL_cleanse(buf, n);
        apr_bucket_free(buf);
        return rv == APR_EOF ? APR_EGENERAL : rv;
    }
    if (b->length > n) {
        apr_bucket_shared_copy(b, &rest);
        rest->start += (apr_off_t)n;
        rest->length -= n;
        APR_BUCKET_INSERT_AFTER(b, rest);
    }
    zeq_spool_region_destroy(rg);
    apr_bucket_heap_make(b, buf, n, apr_bucket_free);
    *str = buf;
    *len = n;
    return APR_SUCCESS;
}

static apr_bucket *zeq_spool_region_create(zeq_spool *sp, apr_file_t *fd,
                                           apr_off_t offset, apr_size_t len)
{
    apr_bucket *b = apr_bucket_alloc(sizeof(*b), sp->list);
    zeq_spool_region *rg = apr_bucket_alloc(sizeof(*rg), sp->list);

    APR_BUCKET_INIT(b);
    b->free = apr_bucket_free;
    b->list = sp->list;
    rg->fd = fd;
    rg->file_start = offset;
    rg->stream_start = sp->pos;
    rg->on_cut = sp->on_cut;
    rg->cut_baton = sp->cut_baton;
    memcpy(rg->key, sp->key, sizeof(rg->key));
    memcpy(rg->iv, sp->iv, sizeof(rg->iv));
    b = apr_bucket_shared_make(b, rg, 0, len);
    b->type = &zeq_spool_region_type;
    return b;
}

/* --- the spool ---------------------------------------------------------- */

static void zeq_spool_release(zeq_spool *sp)
{
    if (sp->mem > 0) {
        apr_atomic_sub32(&zeq_spool_in_memory, (apr_uint32_t)sp->mem);
        sp->mem = 0;
    }
}

/* Drops the spool's own reference to the spill file's buckets. */
static void zeq_spool_drop_tmp_bucket(zeq_spool *sp)
{
    if (sp->tmp_bucket != NULL) {
        apr_bucket_destroy(sp->tmp_bucket);
        sp->tmp_bucket = NULL;
    }
}

static apr_status_t zeq_spool_cleanup(void *data)
{
    zeq_spool *sp = data;

    zeq_spool_drop_tmp_bucket(sp);
    zeq_spool_release(sp);
    OPENSSL_cleanse(sp->key, sizeof(sp->key));
    return APR_SUCCESS;
}

zeq_spool *zeq_spool_create(apr_pool_t *p, apr_bucket_alloc_t *list,
                            const unsigned char key[ZEQ_KEY_LEN],
                            const unsigned char iv[ZEQ_ENVELOPE_IV_LEN],
                            const char *tmpdir)
{
    zeq_spool *sp = apr_pcalloc(p, sizeof(*sp));

    sp->pool = p;
    sp->list = list;
    sp->out = apr_brigade_create(p, list);
    sp->tmpdir = tmpdir;
    if (key != NULL && iv != NULL) {
        memcpy(sp->key, key, sizeof(sp->key));
        memcpy(sp->iv, iv, sizeof(sp->iv));
    }
    apr_pool_cleanup_register(p, sp, zeq_spool_cleanup,
                              apr_pool_cleanup_null);
    return sp;
}

/* Appends the spill file's bytes written since the last mark to out.
 * Segments (one before each file region and one at the end) are copies
 * of one file bucket, so they share one apr_bucket_file: setting one
 * aside into another pool (the core's deferred writes, mod_http2's beam)
 * moves the file for all of them. Separate file buckets of one apr_file_t
 * would not survive that: apr_file_setaside() leaves the original
 * apr_file_t without its descriptor. */
static void zeq_spool_close_segment(zeq_spool *sp)
{
    if (sp->tmp == NULL || sp->tmp_len <= sp->tmp_mark) {
        return;
    }
    if (sp->tmp_bucket == NULL) {
        sp->tmp_bucket = apr_bucket_file_create(sp->tmp, 0, 0, sp->pool,
                                                sp->list);
        /* Read in small buffers, never mapped: a stalled reader then
         * holds a few kilobytes, not a mapping of megabytes. */
        apr_bucket_file_enable_mmap(sp->tmp_bucket, 0);
    }
    while (sp->tmp_len > sp->tmp_mark) {
        apr_off_t left = sp->tmp_len - sp->tmp_mark;
        apr_size_t n = left > (apr_off_t)1 << 30 ? (apr_size_t)1 << 30
                                                 : (apr_size_t)left;
        apr_bucket *e;

        apr_bucket_copy(sp->tmp_bucket, &e);
        e->start = sp->tmp_mark;
        e->length = n;
        APR_BRIGADE_INSERT_TAIL(sp->out, e);
        sp->tmp_mark += (apr_off_t)n;
    }
}

static apr_status_t zeq_spool_open_tmp(zeq_spool *sp)
{
    const char *dir = sp->tmpdir;
    char *path;
    apr_status_t rv;

    if (dir == NULL) {
        rv = apr_temp_dir_get(&dir, sp->pool);
        if (rv != APR_SUCCESS) {
            return rv;
        }
    }
    path = apr_pstrcat(sp->pool, dir, "/zeq-e2e-spool.XXXXXX", NULL);
    rv = apr_file_mktemp(&sp->tmp, path,
                         APR_FOPEN_CREATE | APR_FOPEN_READ | APR_FOPEN_WRITE
                         | APR_FOPEN_EXCL | APR_FOPEN_BINARY, sp->pool);
    if (rv != APR_SUCCESS) {
        sp->tmp = NULL;
        return rv;
    }
    /* Unlinked at once: nothing is left behind, whatever happens. */
    rv = apr_file_remove(path, sp->pool);
    if (rv != APR_SUCCESS) {
        apr_file_close(sp->tmp);
        sp->tmp = NULL;
    }
    return rv;
}

/* Appends ciphertext: in memory while this spool holds at most bound
 * bytes there (and the process's spools their bound), else spilled. */
static apr_status_t zeq_spool_put(zeq_spool *sp, unsigned char *buf,
                                  apr_size_t len, apr_size_t bound)
{
    apr_status_t rv;
    apr_size_t done;

    if (len == 0) {
        free(buf);
        return APR_SUCCESS;
    }
    if (!sp->spilling && sp->mem + len <= bound) {
        apr_uint32_t before = apr_atomic_add32(&zeq_spool_in_memory,
                                               (apr_uint32_t)len);
        if ((apr_size_t)before + len <= ZEQ_SPOOL_PROCESS_MEMORY) {
            sp->mem += len;
            sp->pos += (apr_off_t)len;
            APR_BRIGADE_INSERT_TAIL(sp->out, apr_bucket_heap_create(
                                                 (const char *)buf, len,
                                                 free, sp->list));
            return APR_SUCCESS;
        }
        apr_atomic_sub32(&zeq_spool_in_memory, (apr_uint32_t)len);
    }
    sp->spilling = 1;
    if (sp->tmp == NULL && (rv = zeq_spool_open_tmp(sp)) != APR_SUCCESS) {
        free(buf);
        return rv;
    }
    rv = apr_file_write_full(sp->tmp, buf, len, &done);
    free(buf);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    sp->tmp_len += (apr_off_t)len;
    sp->pos += (apr_off_t)len;
    return APR_SUCCESS;
}

apr_status_t zeq_spool_add(zeq_spool *sp, unsigned char *buf, apr_size_t len)
{
    return zeq_spool_put(sp, buf, len, ZEQ_SPOOL_MEMORY);
}

apr_status_t zeq_spool_add_whole(zeq_spool *sp, unsigned char *buf,
                                 apr_size_t len)
{
    return zeq_spool_put(sp, buf, len, ZEQ_SPOOL_WHOLE);
}

void zeq_spool_on_cut(zeq_spool *sp, zeq_spool_cut_fn *fn, void *baton)
{
    sp->on_cut = fn;
    sp->cut_baton = baton;
}

apr_status_t zeq_spool_add_file(zeq_spool *sp, apr_file_t *fd,
                                apr_off_t offset, apr_off_t len)
{
    if (len <= 0) {
        return APR_SUCCESS;
    }
    zeq_spool_close_segment(sp);
    while (len > 0) {
        /* Bucket lengths are apr_size_t: keep each under 1 GiB. */
        apr_size_t n = len > (apr_off_t)1 << 30 ? (apr_size_t)1 << 30
                                                : (apr_size_t)len;
        APR_BRIGADE_INSERT_TAIL(sp->out,
                                zeq_spool_region_create(sp, fd, offset, n));
        sp->pos += (apr_off_t)n;
        offset += (apr_off_t)n;
        len -= (apr_off_t)n;
    }
    return APR_SUCCESS;
}

apr_off_t zeq_spool_length(const zeq_spool *sp)
{
    return sp->pos;
}

apr_status_t zeq_spool_drain(zeq_spool *sp, apr_bucket_brigade *bb)
{
    zeq_spool_close_segment(sp);
    /* The segments hold the file bucket now; nothing more is added. */
    zeq_spool_drop_tmp_bucket(sp);
    /* What passes on is the connection's to hold (and its flow control):
     * no longer counted as sealing memory. */
    zeq_spool_release(sp);
    APR_BRIGADE_CONCAT(bb, sp->out);
    return APR_SUCCESS;
}

void zeq_spool_discard(zeq_spool *sp)
{
    apr_brigade_cleanup(sp->out);
    zeq_spool_drop_tmp_bucket(sp);
    zeq_spool_release(sp);
    sp->tmp_mark = sp->tmp_len;
}
