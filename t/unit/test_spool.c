/* Unit tests of src/zeq_spool.c (the spool of a v1 response envelope) and
 * zeq_envelope_keystream_xor.
 *
 * The reference is a one-shot zeq_envelope_seal of the whole plaintext
 * (its ciphertext and tag), and for offsets no one-shot seal can reach in
 * a test, AES-256 of the GCM counter block computed here (iv || 2 + block,
 * big-endian). The spool is fed the way src/zeq_response.c feeds it:
 * memory chunks are encrypted by a streaming seal and added, a file
 * region is passed through the same seal (for the tag) and added as a
 * region of the file. What drain gives is read bucket by bucket, after
 * splits, copies and setasides of the kind httpd's filters do. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "apr_buckets.h"
#include "apr_file_io.h"
#include "apr_general.h"
#include "apr_pools.h"
#include "apr_strings.h"

#include "zeq_envelope.h"
#include "zeq_spool.h"
#include "unit.h"

#define KIB 1024u
#define REGION_TYPE "ZEQ_E2E_SEALED_FILE"

static unsigned char key[ZEQ_KEY_LEN];
static unsigned char iv[ZEQ_ENVELOPE_IV_LEN];
static apr_pool_t *root;
static apr_bucket_alloc_t *list;
static const char *spill_dir;    /* the spools' temporary directory */
static const char *data_dir;     /* the test's own files */

/* ------------------------------------------------------------------ */
/* Reference, buckets, files */

/* The one-shot reference: the ciphertext of pt (malloc'd) and its tag. */
static unsigned char *reference(const unsigned char *pt, size_t n,
                                unsigned char tag[ZEQ_ENVELOPE_TAG_LEN])
{
    unsigned char *env = malloc(n + ZEQ_ENVELOPE_OVERHEAD);

    if (env == NULL
        || zeq_envelope_seal(key, iv, pt, n, env) != ZEQ_OK) {
        fprintf(stderr, "one-shot seal failed\n");
        abort();
    }
    memcpy(tag, env + ZEQ_ENVELOPE_IV_LEN, ZEQ_ENVELOPE_TAG_LEN);
    memmove(env, env + ZEQ_ENVELOPE_OVERHEAD, n);
    return env;
}

static size_t dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    size_t n = 0;

    if (d == NULL)
        return (size_t)-1;
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

static int is_region(const apr_bucket *e)
{
    return strcmp(e->type->name, REGION_TYPE) == 0;
}

/* One letter per bucket: H heap, F file, R file region, ? other. */
static void bucket_kinds(apr_bucket_brigade *bb, char *out, size_t cap,
                         apr_size_t *heap_bytes)
{
    apr_bucket *e;
    size_t o = 0;

    *heap_bytes = 0;
    for (e = APR_BRIGADE_FIRST(bb); e != APR_BRIGADE_SENTINEL(bb);
         e = APR_BUCKET_NEXT(e)) {
        char c = APR_BUCKET_IS_HEAP(e) ? 'H' : APR_BUCKET_IS_FILE(e) ? 'F'
                 : is_region(e) ? 'R' : '?';
        if (c == 'H')
            *heap_bytes += e->length;
        if (o + 1 < cap)
            out[o++] = c;
    }
    out[o] = '\0';
}

/* Reads bb bucket by bucket (deleting each), alternating blocking and
 * non-blocking reads, into a malloc'd buffer of *len bytes. Stops at the
 * first failing read (*rv). *max_region: the largest read of a region
 * bucket. */
static unsigned char *read_all(apr_bucket_brigade *bb, size_t *len,
                               apr_status_t *rv, apr_size_t *max_region)
{
    size_t cap = 1024, n = 0;
    unsigned char *out = malloc(cap);
    unsigned i = 0;

    *rv = APR_SUCCESS;
    *max_region = 0;
    while (!APR_BRIGADE_EMPTY(bb)) {
        apr_bucket *e = APR_BRIGADE_FIRST(bb);
        int region = is_region(e);
        const char *data;
        apr_size_t got;

        *rv = apr_bucket_read(e, &data, &got,
                              i++ % 2 ? APR_NONBLOCK_READ : APR_BLOCK_READ);
        if (*rv != APR_SUCCESS)
            break;
        if (region && got > *max_region)
            *max_region = got;
        while (n + got > cap)
            cap *= 2;
        out = realloc(out, cap);
        memcpy(out + n, data, got);
        n += got;
        apr_bucket_delete(e);
    }
    *len = n;
    return out;
}

/* Writes len bytes to a new file of data_dir; returns its path. */
static const char *write_file(const char *name, const unsigned char *p,
                              size_t len)
{
    const char *path = apr_pstrcat(root, data_dir, "/", name, NULL);
    FILE *f = fopen(path, "wb");

    if (f == NULL || fwrite(p, 1, len, f) != len || fclose(f) != 0) {
        fprintf(stderr, "cannot write %s\n", path);
        abort();
    }
    return path;
}

static apr_file_t *open_file(const char *path, apr_pool_t *p)
{
    apr_file_t *fd;

    if (apr_file_open(&fd, path, APR_FOPEN_READ | APR_FOPEN_BINARY,
                      APR_OS_DEFAULT, p) != APR_SUCCESS) {
        fprintf(stderr, "cannot open %s\n", path);
        abort();
    }
    return fd;
}

/* A body built piece by piece, and the streaming seal of it. */
struct feed {
    zeq_envelope_ctx *cipher;
    zeq_spool *sp;
    unsigned char *pt;           /* the plaintext so far */
    size_t len, cap;
    int failures;                /* calls that did not return success */
};

static void feed_init(struct feed *fd, zeq_spool *sp)
{
    memset(fd, 0, sizeof(*fd));
    fd->sp = sp;
    fd->cipher = zeq_envelope_ctx_new();
    if (fd->cipher == NULL
        || zeq_envelope_seal_init(fd->cipher, key, iv, NULL, 0) != ZEQ_OK)
        abort();
    fd->cap = 1024;
    fd->pt = malloc(fd->cap);
}

static void feed_plain(struct feed *fd, const unsigned char *p, size_t n)
{
    while (fd->len + n > fd->cap)
        fd->cap *= 2;
    fd->pt = realloc(fd->pt, fd->cap);
    memcpy(fd->pt + fd->len, p, n);
    fd->len += n;
}

/* A memory chunk: encrypted into a malloc'd buffer the spool takes. */
static void feed_memory(struct feed *fd, size_t n, unsigned seed)
{
    unsigned char *p = malloc(n ? n : 1), *out = malloc(n ? n : 1);

    unit_fill(p, n, seed);
    feed_plain(fd, p, n);
    if (zeq_envelope_seal_update(fd->cipher, p, n, out) != ZEQ_OK)
        fd->failures++;
    if (zeq_spool_add(fd->sp, out, n) != APR_SUCCESS)
        fd->failures++;
    free(p);
}

/* A file region: its plaintext through the cipher (output discarded, as
 * zeq_response.c does), then added as a region. */
static void feed_file(struct feed *fd, apr_file_t *f,
                      const unsigned char *contents, size_t off, size_t n)
{
    unsigned char *scratch = malloc(n ? n : 1);

    feed_plain(fd, contents + off, n);
    if (zeq_envelope_seal_update(fd->cipher, contents + off, n, scratch)
        != ZEQ_OK)
        fd->failures++;
    free(scratch);
    if (zeq_spool_add_file(fd->sp, f, (apr_off_t)off, (apr_off_t)n)
        != APR_SUCCESS)
        fd->failures++;
}

static void feed_free(struct feed *fd)
{
    zeq_envelope_ctx_free(fd->cipher);
    free(fd->pt);
}

/* ------------------------------------------------------------------ */
/* zeq_envelope_keystream_xor */

/* Bytes of pt[off, off+len) run through keystream_xor at off that differ
 * from ct; a failing call counts as len differing bytes. */
static size_t xor_diff(const unsigned char *pt, const unsigned char *ct,
                       size_t off, size_t len)
{
    unsigned char *buf = unit_dup(pt + off, len);
    size_t i, bad = 0;

    if (zeq_envelope_keystream_xor(key, iv, off, buf, len) != ZEQ_OK)
        bad = len;
    else
        for (i = 0; i < len; i++)
            bad += buf[i] != ct[off + i];
    free(buf);
    return bad;
}

/* AES-256(key, iv || be32(counter)): the keystream block GCM uses. */
static void counter_block(unsigned long long counter, unsigned char out[16])
{
    unsigned char in[16];
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int n = 0;

    memcpy(in, iv, ZEQ_ENVELOPE_IV_LEN);
    in[12] = (unsigned char)(counter >> 24);
    in[13] = (unsigned char)(counter >> 16);
    in[14] = (unsigned char)(counter >> 8);
    in[15] = (unsigned char)counter;
    if (c == NULL
        || EVP_EncryptInit_ex(c, EVP_aes_256_ecb(), NULL, key, NULL) != 1
        || EVP_CIPHER_CTX_set_padding(c, 0) != 1
        || EVP_EncryptUpdate(c, out, &n, in, 16) != 1 || n != 16)
        abort();
    EVP_CIPHER_CTX_free(c);
}

static void test_keystream(void)
{
    static const size_t lens[] = { 1, 15, 16, 17, 31, 33, 100, 1000 };
    static const int around[] = { -17, -16, -15, -1, 0, 1, 15, 16, 17 };
    const size_t n = 4 * 16 * KIB + 1000;
    unsigned char *pt = malloc(n), *ct, tag[ZEQ_ENVELOPE_TAG_LEN];
    unsigned char *buf, block[16], want[16];
    unsigned long long max = (unsigned long long)ZEQ_ENVELOPE_MAX_PLAINTEXT;
    size_t off, i, k, bad;

    unit_fill(pt, n, 1);
    ct = reference(pt, n, tag);

    for (off = 0; off <= 64; off++) {
        bad = 0;
        for (i = 0; i < sizeof lens / sizeof *lens; i++)
            bad += xor_diff(pt, ct, off, lens[i]);
        unit_int((long long)bad, 0, "keystream_xor at offset %zu, lengths "
                 "1 to 1000: bytes that differ from the one-shot "
                 "ciphertext", off);
    }
    for (k = 1; k <= 4; k++) {
        bad = 0;
        for (i = 0; i < sizeof around / sizeof *around; i++) {
            size_t j;
            off = k * 16 * KIB + (size_t)(long)around[i];
            for (j = 0; j < sizeof lens / sizeof *lens; j++)
                if (off + lens[j] <= n)
                    bad += xor_diff(pt, ct, off, lens[j]);
            if (off + 16 * KIB + 3 <= n)
                bad += xor_diff(pt, ct, off, 16 * KIB + 3);
        }
        unit_int((long long)bad, 0, "keystream_xor around %zu KiB (-17 to "
                 "+17, lengths 1 to 16 KiB + 3): bytes that differ from the "
                 "one-shot ciphertext", k * 16);
    }

    buf = unit_dup(pt, n);
    unit_int(zeq_envelope_keystream_xor(key, iv, 0, buf, n), ZEQ_OK,
             "keystream_xor of the whole body: ZEQ_OK");
    unit_mem(buf, n, ct, n, "keystream_xor of the whole body at offset 0 "
             "is the one-shot ciphertext");
    zeq_envelope_keystream_xor(key, iv, 0, buf, n);
    unit_mem(buf, n, pt, n, "keystream_xor twice gives the plaintext back");

    /* In consecutive pieces of odd sizes, as a region is read chunk by
     * chunk. */
    memcpy(buf, pt, n);
    for (off = 0, i = 0; off < n; i++) {
        size_t piece = (size_t)((i * 7919 + 5) % 4099) + 1;
        if (piece > n - off)
            piece = n - off;
        zeq_envelope_keystream_xor(key, iv, off, buf + off, piece);
        off += piece;
    }
    unit_mem(buf, n, ct, n, "keystream_xor in consecutive pieces of 1 to "
             "4099 bytes is the one-shot ciphertext");

    memcpy(buf, pt, 16);
    unit_int(zeq_envelope_keystream_xor(key, iv, 5, buf, 0), ZEQ_OK,
             "keystream_xor of 0 bytes: ZEQ_OK");
    unit_mem(buf, 16, pt, 16, "keystream_xor of 0 bytes changes nothing");

    /* The last block a v1 envelope can have uses counter 2^32 - 1 (no
     * wrap into the iv), the middle one 2^31 + 1. */
    memset(buf, 0, 16);
    unit_int(zeq_envelope_keystream_xor(key, iv, max - 16, buf, 16), ZEQ_OK,
             "keystream_xor of the last 16 bytes an envelope can hold: "
             "ZEQ_OK");
    counter_block(0xffffffffull, want);
    unit_mem(buf, 16, want, 16, "the last block's keystream is AES(key, iv "
             "|| ffffffff)");
    memset(buf, 0, 16);
    zeq_envelope_keystream_xor(key, iv, (0x7fffffffull) * 16 + 3, buf, 16);
    counter_block(0x80000001ull, block);
    counter_block(0x80000002ull, want);
    unit_mem(buf, 13, block + 3, 13, "at block 2^31 - 1, byte 3: the "
             "keystream of counter 2^31 + 1 from its byte 3");
    unit_mem(buf + 13, 3, want, 3, "then the first bytes of counter "
             "2^31 + 2");

    unit_int(zeq_envelope_keystream_xor(key, iv, max - 16, buf, 17),
             ZEQ_ERR_BAD, "keystream_xor past ZEQ_ENVELOPE_MAX_PLAINTEXT: "
             "ZEQ_ERR_BAD");
    unit_int(zeq_envelope_keystream_xor(key, iv, max + 1, buf, 1),
             ZEQ_ERR_BAD, "keystream_xor from beyond the maximum: "
             "ZEQ_ERR_BAD");
    unit_int(zeq_envelope_keystream_xor(key, iv, ~0ull - 3, buf, 16),
             ZEQ_ERR_BAD, "keystream_xor whose end wraps around: "
             "ZEQ_ERR_BAD");

    free(buf);
    free(ct);
    free(pt);
}

/* ------------------------------------------------------------------ */
/* Memory, a file region, memory past the bound (spill), more regions */

static void test_sequence(void)
{
    const size_t flen = 150000;
    unsigned char *contents = malloc(flen), *ct, *got;
    unsigned char tag[ZEQ_ENVELOPE_TAG_LEN], ref_tag[ZEQ_ENVELOPE_TAG_LEN];
    apr_pool_t *p, *later;
    apr_bucket_brigade *bb, *side;
    apr_bucket *e, *mid, *copy;
    apr_file_t *f;
    struct feed fd;
    zeq_spool *sp;
    char kinds[64];
    apr_size_t heap, max_region, side_len;
    size_t got_len, region1_at;
    apr_status_t rv;
    int setaside_failed = 0;

    apr_pool_create(&p, root);
    apr_pool_create(&later, root);
    unit_fill(contents, flen, 2);
    f = open_file(write_file("region.bin", contents, flen), p);
    sp = zeq_spool_create(p, list, key, iv, spill_dir);
    feed_init(&fd, sp);

    feed_memory(&fd, 1000, 10);           /* memory: 1000 */
    feed_memory(&fd, 7, 11);              /* 1007 */
    feed_memory(&fd, 20000, 12);          /* 21007 */
    region1_at = fd.len;
    feed_file(&fd, f, contents, 333, 140001);
    feed_memory(&fd, 30000, 13);          /* 51007 */
    feed_memory(&fd, 30000, 14);          /* over 64 KiB: spills */
    feed_memory(&fd, 30000, 15);
    unit_int((long long)dir_entries(spill_dir), 0, "after spilling, the "
             "spool's temporary directory lists nothing (unlinked at once)");
    feed_file(&fd, f, contents, 0, 5000);
    feed_memory(&fd, 17, 16);
    feed_file(&fd, f, contents, flen - 10, 10);
    feed_memory(&fd, 3, 17);
    unit_int(fd.failures, 0, "every seal_update, add and add_file "
             "succeeded");
    unit_int(zeq_spool_length(sp), (long long)fd.len, "zeq_spool_length "
             "is the body's length (%zu)", fd.len);

    unit_int(zeq_envelope_seal_final(fd.cipher, tag), ZEQ_OK,
             "seal_final: ZEQ_OK");
    ct = reference(fd.pt, fd.len, ref_tag);
    unit_mem(tag, sizeof tag, ref_tag, sizeof ref_tag, "the streaming tag "
             "(file regions passed through once) is the one-shot tag");

    bb = apr_brigade_create(p, list);
    unit_int(zeq_spool_drain(sp, bb), APR_SUCCESS, "drain: APR_SUCCESS");
    bucket_kinds(bb, kinds, sizeof kinds, &heap);
    unit_str(kinds, "HHHRHFRFRF", "drain gives heap buckets up to the "
             "bound, the region, a heap bucket, then spill segments and "
             "regions in order");
    unit_int((long long)heap, 51007, "the heap buckets hold 51007 bytes "
             "(the memory bound is %u)", ZEQ_SPOOL_MEMORY);

    /* Split the first region at 5 and 5 + 65539 (neither on a chunk nor
     * on a block boundary), read a copy of the middle piece on its own. */
    for (e = APR_BRIGADE_FIRST(bb); !is_region(e); e = APR_BUCKET_NEXT(e))
        ;
    unit_int(apr_bucket_split(e, 5), APR_SUCCESS, "split of a region at 5");
    mid = APR_BUCKET_NEXT(e);
    unit_int(apr_bucket_split(mid, 65539), APR_SUCCESS,
             "split of the rest at 65539");
    unit_int(apr_bucket_copy(mid, &copy), APR_SUCCESS, "copy of the middle "
             "piece");
    side = apr_brigade_create(p, list);
    APR_BRIGADE_INSERT_TAIL(side, copy);
    got = read_all(side, &got_len, &rv, &side_len);
    unit_int(rv, APR_SUCCESS, "reading the copy: APR_SUCCESS");
    unit_mem(got, got_len, ct + region1_at + 5, 65539, "the copy reads as "
             "the ciphertext of region bytes 5 to 65543");
    free(got);

    /* Set every bucket aside into another pool, as the core's deferred
     * writes and mod_http2's beam do (files move into that pool). */
    for (e = APR_BRIGADE_FIRST(bb); e != APR_BRIGADE_SENTINEL(bb);
         e = APR_BUCKET_NEXT(e))
        if (apr_bucket_setaside(e, later) != APR_SUCCESS)
            setaside_failed++;
    unit_int(setaside_failed, 0, "every bucket sets aside into another "
             "pool");

    got = read_all(bb, &got_len, &rv, &max_region);
    unit_int(rv, APR_SUCCESS, "reading the drained brigade bucket by "
             "bucket: APR_SUCCESS");
    unit_mem(got, got_len, ct, fd.len, "the buckets concatenate to exactly "
             "the one-shot ciphertext");
    unit_bool(max_region > 0 && max_region <= 64 * KIB, 1, "a region is "
              "read 64 KiB at a time at most (largest read: %zu bytes)",
              (size_t)max_region);
    free(got);

    apr_pool_destroy(later);
    apr_pool_destroy(p);
    unit_int((long long)dir_entries(spill_dir), 0, "the temporary directory "
             "is still empty");
    free(ct);
    feed_free(&fd);
    free(contents);
}

/* ------------------------------------------------------------------ */
/* The process-wide bound, and memory given back */

/* Drains sp and tells where its first bucket's bytes are. */
static const char *first_kind(zeq_spool *sp, apr_pool_t *p)
{
    apr_bucket_brigade *bb = apr_brigade_create(p, list);
    char kinds[64];
    apr_size_t heap;

    zeq_spool_drain(sp, bb);
    bucket_kinds(bb, kinds, sizeof kinds, &heap);
    apr_brigade_destroy(bb);
    return kinds[0] == 'H' ? "memory" : kinds[0] == 'F' ? "spill file"
           : kinds[0] ? "other" : "nothing";
}

/* A spool holding n bytes given to add (zeq_spool_add or _add_whole). */
static zeq_spool *spool_by(apr_pool_t *p, size_t n,
                           apr_status_t (*add)(zeq_spool *, unsigned char *,
                                               apr_size_t))
{
    zeq_spool *sp = zeq_spool_create(p, list, key, iv, spill_dir);
    unsigned char *buf = malloc(n);

    unit_fill(buf, n, (unsigned)n);
    if (add(sp, buf, n) != APR_SUCCESS)
        abort();
    return sp;
}

static zeq_spool *spool_with(apr_pool_t *p, size_t n)
{
    return spool_by(p, n, zeq_spool_add);
}

static void test_process_bound(void)
{
    enum { FULL = ZEQ_SPOOL_PROCESS_MEMORY / ZEQ_SPOOL_MEMORY };
    static zeq_spool *held[FULL];
    apr_pool_t *p, *q;
    int i, in_memory = 0;
    const char *k;

    apr_pool_create(&p, root);
    apr_pool_create(&q, root);
    for (i = 0; i < FULL; i++)
        held[i] = spool_with(q, ZEQ_SPOOL_MEMORY);

    k = first_kind(spool_with(p, 1), p);
    unit_str(k, "spill file", "with %d spools of 64 KiB held (%d MiB), one more "
             "byte goes to a spill file", FULL,
             ZEQ_SPOOL_PROCESS_MEMORY / (1024 * 1024));

    zeq_spool_discard(held[0]);
    k = first_kind(spool_with(p, ZEQ_SPOOL_MEMORY), p);
    unit_str(k, "memory", "after one of them is discarded, a new spool holds "
             "64 KiB in memory (exactly the room given back)");
    held[0] = spool_with(q, ZEQ_SPOOL_MEMORY);
    k = first_kind(spool_with(p, 1), p);
    unit_str(k, "spill file", "once a spool holds that room again, one more byte "
             "spills");

    for (i = 0; i < FULL; i++)
        in_memory += strcmp(first_kind(held[i], q), "memory") == 0;
    unit_int(in_memory, FULL, "each held spool had its 64 KiB in memory "
             "(drained now)");
    k = first_kind(spool_with(p, ZEQ_SPOOL_MEMORY), p);
    unit_str(k, "memory", "after they are drained, a new spool holds 64 KiB in "
             "memory");

    /* A pool's cleanup gives the memory back too. */
    for (i = 0; i < FULL; i++)
        held[i] = spool_with(q, ZEQ_SPOOL_MEMORY);
    k = first_kind(spool_with(p, 1), p);
    unit_str(k, "spill file", "held full again: one more byte spills");
    apr_pool_destroy(q);
    k = first_kind(spool_with(p, ZEQ_SPOOL_MEMORY), p);
    unit_str(k, "memory", "after the pool of the held spools is destroyed, a "
             "new spool holds 64 KiB in memory");
    apr_pool_destroy(p);
    unit_int((long long)dir_entries(spill_dir), 0, "the temporary directory "
             "is empty");
}

/* A body held whole (zeq_spool_add_whole): memory up to ZEQ_SPOOL_WHOLE
 * for one spool, within the process's bound. */
static zeq_spool *spool_whole(apr_pool_t *p, size_t n)
{
    return spool_by(p, n, zeq_spool_add_whole);
}

static void test_whole(void)
{
    enum { FULL = ZEQ_SPOOL_PROCESS_MEMORY / ZEQ_SPOOL_WHOLE };
    static zeq_spool *held[FULL];
    apr_pool_t *p, *q;
    int i, in_memory = 0;

    apr_pool_create(&p, root);
    apr_pool_create(&q, root);
    unit_str(first_kind(spool_whole(p, ZEQ_SPOOL_WHOLE), p), "memory",
             "1 MiB added whole stays in memory");
    unit_str(first_kind(spool_with(p, ZEQ_SPOOL_WHOLE), p), "spill file",
             "1 MiB added as zeq_spool_add spills (over 64 KiB)");
    unit_str(first_kind(spool_whole(p, ZEQ_SPOOL_WHOLE + 1), p), "spill file",
             "1 MiB and a byte added whole spills");
    for (i = 0; i < FULL; i++)
        held[i] = spool_whole(q, ZEQ_SPOOL_WHOLE);
    unit_str(first_kind(spool_whole(p, 1), p), "spill file",
             "with %d bodies of 1 MiB held whole, one more byte goes to a spill "
             "file", FULL);
    for (i = 0; i < FULL; i++)
        in_memory += strcmp(first_kind(held[i], q), "memory") == 0;
    unit_int(in_memory, FULL, "each of them was in memory (drained now)");
    unit_str(first_kind(spool_whole(p, ZEQ_SPOOL_WHOLE), p), "memory",
             "after they are drained, 1 MiB is held whole again");
    apr_pool_destroy(q);
    apr_pool_destroy(p);
    unit_int((long long)dir_entries(spill_dir), 0, "the temporary directory "
             "is empty");
}

/* ------------------------------------------------------------------ */
/* Discard, and a file that shrinks after sealing */

static void test_discard(void)
{
    const size_t flen = 10000;
    unsigned char *contents = malloc(flen);
    apr_bucket_brigade *bb;
    apr_pool_t *p;
    struct feed fd;
    zeq_spool *sp;

    apr_pool_create(&p, root);
    unit_fill(contents, flen, 3);
    sp = zeq_spool_create(p, list, key, iv, spill_dir);
    feed_init(&fd, sp);
    feed_memory(&fd, 60000, 20);
    feed_file(&fd, open_file(write_file("discard.bin", contents, flen), p),
              contents, 0, flen);
    feed_memory(&fd, 60000, 21);          /* spills */
    zeq_spool_discard(sp);
    bb = apr_brigade_create(p, list);
    zeq_spool_drain(sp, bb);
    unit_bool(APR_BRIGADE_EMPTY(bb), 1, "after discard, drain gives "
              "nothing");
    apr_pool_destroy(p);
    feed_free(&fd);
    free(contents);
}

struct cut {
    int calls;
    apr_off_t at;
    apr_status_t rv;
};

static void note_cut(void *baton, apr_off_t at, apr_status_t rv)
{
    struct cut *c = baton;

    c->calls++;
    c->at = at;
    c->rv = rv;
}

static void test_shrinking(size_t keep)
{
    struct cut cut = { 0, -1, APR_SUCCESS };
    const size_t flen = 100000;
    unsigned char *contents = malloc(flen), *ct, tag[ZEQ_ENVELOPE_TAG_LEN];
    const char *path;
    apr_bucket_brigade *bb;
    apr_pool_t *p;
    struct feed fd;
    zeq_spool *sp;
    const char *data;
    apr_size_t len;
    apr_status_t rv;

    apr_pool_create(&p, root);
    unit_fill(contents, flen, 4);
    path = write_file("shrinks.bin", contents, flen);
    sp = zeq_spool_create(p, list, key, iv, spill_dir);
    zeq_spool_on_cut(sp, note_cut, &cut);
    feed_init(&fd, sp);
    feed_file(&fd, open_file(path, p), contents, 0, flen);
    ct = reference(fd.pt, fd.len, tag);
    bb = apr_brigade_create(p, list);
    zeq_spool_drain(sp, bb);
    if (truncate(path, (off_t)keep) != 0)
        abort();

    rv = apr_bucket_read(APR_BRIGADE_FIRST(bb), &data, &len, APR_BLOCK_READ);
    if (keep >= 64 * KIB) {
        unit_int(rv, APR_SUCCESS, "file cut to %zu bytes after sealing: "
                 "the first 64 KiB still read", keep);
        unit_mem((const unsigned char *)data, len, ct, 64 * KIB,
                 "and they are the right ciphertext");
        apr_bucket_delete(APR_BRIGADE_FIRST(bb));
        rv = apr_bucket_read(APR_BRIGADE_FIRST(bb), &data, &len,
                             APR_BLOCK_READ);
    }
    unit_bool(rv != APR_SUCCESS, 1, "file cut to %zu bytes after sealing: "
              "the read that reaches past its end fails (not wrong or "
              "short bytes)", keep);
    unit_int(cut.calls, 1, "file cut to %zu bytes: the spool says so once",
             keep);
    unit_int((int)cut.at, keep >= 64 * KIB ? 64 * KIB : 0, "file cut to %zu "
             "bytes: at the ciphertext offset of the read that failed", keep);
    unit_int(cut.rv, APR_EOF, "file cut to %zu bytes: because it is shorter "
             "(APR_EOF)", keep);
    apr_pool_destroy(p);
    free(ct);
    feed_free(&fd);
    free(contents);
}

/* ------------------------------------------------------------------ */

static const char *make_dir(const char *tmp, const char *name)
{
    char *path = apr_pstrcat(root, tmp, "/", name, ".XXXXXX", NULL);

    if (mkdtemp(path) == NULL) {
        fprintf(stderr, "cannot create a directory in %s\n", tmp);
        abort();
    }
    return path;
}

static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;

    while (d != NULL && (de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, ".."))
            unlink(apr_pstrcat(root, dir, "/", de->d_name, NULL));
    if (d != NULL)
        closedir(d);
    rmdir(dir);
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    int rc;

    if (tmp == NULL || *tmp == '\0')
        tmp = "/tmp";
    if (apr_initialize() != APR_SUCCESS
        || apr_pool_create(&root, NULL) != APR_SUCCESS) {
        fprintf(stderr, "cannot initialise APR\n");
        return 1;
    }
    list = apr_bucket_alloc_create(root);
    spill_dir = make_dir(tmp, "zeq-unit-spill");
    data_dir = make_dir(tmp, "zeq-unit-data");
    unit_fill(key, sizeof key, 0xc0ffee);
    unit_fill(iv, sizeof iv, 0xbeef);

    test_keystream();
    test_sequence();
    test_process_bound();
    test_whole();
    test_discard();
    test_shrinking(70000);
    test_shrinking(65536 + 1);
    test_shrinking(1000);
    test_shrinking(0);

    remove_dir(spill_dir);
    remove_dir(data_dir);
    rc = unit_done();
    apr_pool_destroy(root);
    apr_terminate();
    return rc;
}
