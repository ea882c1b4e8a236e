/* Unit tests of src/zeq_body.c (the plaintext of a verified request body,
 * opened again from its spooled ciphertext as it is read).
 *
 * A v1 envelope is sealed here with OpenSSL's EVP interface directly (iv
 * || tag || ciphertext), a v2 message with zeq_record_seal_message in
 * records of several sizes; the ciphertext goes through a spool the way
 * src/zeq_request.c fills it (in chunks, spilling to a file beyond 64 KiB).
 * The body's buckets are then read the ways httpd's readers do: whole,
 * after partitions at odd offsets, after copies of buckets read first;
 * a bucket read out of order and a message changed in the spool must fail,
 * never give bytes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "apr_buckets.h"
#include "apr_general.h"
#include "apr_pools.h"

#include "zeq_body.h"
#include "zeq_record.h"
#include "zeq_spool.h"
#include "unit.h"

static apr_pool_t *root;
static apr_bucket_alloc_t *list;
static unsigned char key[ZEQ_KEY_LEN];

/* iv || tag || AES-256-GCM(pt), malloc'd; *len gets its length. */
static unsigned char *seal_v1(const unsigned char *pt, size_t n, size_t *len)
{
    unsigned char *env = malloc(n + ZEQ_ENVELOPE_OVERHEAD);
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int out = 0, fin = 0;

    if (env == NULL || c == NULL || RAND_bytes(env, 12) != 1
        || EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, env) != 1
        || EVP_EncryptUpdate(c, env + ZEQ_ENVELOPE_OVERHEAD, &out, pt,
                             (int)n) != 1
        || EVP_EncryptFinal_ex(c, env + ZEQ_ENVELOPE_OVERHEAD + out, &fin) != 1
        || EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, env + 12) != 1) {
        fprintf(stderr, "EVP seal failed\n");
        abort();
    }
    EVP_CIPHER_CTX_free(c);
    *len = n + ZEQ_ENVELOPE_OVERHEAD;
    return env;
}

static const unsigned char aad[] = "zeq-e2e/2 request\0sid\0007\0POST\0/x\0";

static unsigned char *seal_v2(const unsigned char *pt, size_t n,
                              size_t record, size_t *len)
{
    size_t need = (size_t)zeq_record_sealed_len(n, record);
    unsigned char *msg = malloc(need);

    if (msg == NULL
        || zeq_record_seal_message(key, NULL, aad, sizeof(aad) - 1, pt, n,
                                   record, msg) != ZEQ_OK) {
        fprintf(stderr, "v2 seal failed\n");
        abort();
    }
    *len = need;
    return msg;
}

/* A body over msg, spooled in chunks of 7,000 bytes; flip: a byte of the
 * spooled ciphertext to change (or -1). */
static zeq_body *make_body(apr_pool_t *p, int version, const unsigned char *msg,
                           size_t len, apr_off_t plain_len, long flip)
{
    zeq_spool *sp = zeq_spool_create(p, list, NULL, NULL, NULL);
    apr_bucket_brigade *ct = apr_brigade_create(p, list);
    size_t at;

    for (at = 0; at < len; at += 7000) {
        size_t n = len - at < 7000 ? len - at : 7000;
        unsigned char *copy = malloc(n);
        memcpy(copy, msg + at, n);
        if (flip >= 0 && (size_t)flip >= at && (size_t)flip < at + n) {
            copy[flip - (long)at] ^= 0x01;
        }
        if (zeq_spool_add(sp, copy, n) != APR_SUCCESS) {
            fprintf(stderr, "spool add failed\n");
            abort();
        }
    }
    zeq_spool_drain(sp, ct);
    return zeq_body_create(p, list, ct, version, key,
                           version == 2 ? aad : NULL,
                           version == 2 ? sizeof(aad) - 1 : 0, plain_len);
}

/* Reads every bucket of bb in order into out (cap bytes): the bytes read,
 * or -1 when a read fails. */
static long read_all(apr_bucket_brigade *bb, unsigned char *out, size_t cap)
{
    size_t got = 0;

    while (!APR_BRIGADE_EMPTY(bb)) {
        apr_bucket *e = APR_BRIGADE_FIRST(bb);
        const char *data;
        apr_size_t len;

        if (apr_bucket_read(e, &data, &len, APR_BLOCK_READ) != APR_SUCCESS
            || got + len > cap) {
            return -1;
        }
        memcpy(out + got, data, len);
        got += len;
        apr_bucket_delete(e);
    }
    return (long)got;
}

static void round_trip(int version, size_t n, size_t record, const char *what)
{
    apr_pool_t *p;
    unsigned char *pt = malloc(n + 1), *msg, *out = malloc(n + 1);
    size_t len;
    apr_bucket_brigade *bb;
    zeq_body *body;
    apr_off_t total = -1;

    apr_pool_create(&p, root);
    RAND_bytes(pt, (int)n + 1);
    msg = version == 1 ? seal_v1(pt, n, &len) : seal_v2(pt, n, record, &len);

    /* whole, in order */
    body = make_body(p, version, msg, len, (apr_off_t)n, -1);
    unit_ok(body != NULL, "%s: a body is made", what);
    bb = apr_brigade_create(p, list);
    zeq_body_buckets(body, bb);
    apr_brigade_length(bb, 0, &total);
    unit_int(total, (long long)n, "%s: the buckets have the plaintext's length "
             "before any is read", what);
    unit_mem(out, (size_t)read_all(bb, out, n), pt, n,
             "%s: read in order, the buckets give the plaintext", what);

    /* partitioned at odd offsets (a CGI reading in blocks), copies of
     * buckets that were read first (a speculative reader) */
    body = make_body(p, version, msg, len, (apr_off_t)n, -1);
    bb = apr_brigade_create(p, list);
    zeq_body_buckets(body, bb);
    if (n == 0) {
        unit_ok(APR_BRIGADE_EMPTY(bb), "%s: no bucket for an empty body", what);
    }
    else {
        apr_bucket *after, *e, *copy;
        apr_bucket_brigade *taken = apr_brigade_create(p, list);
        const char *data;
        apr_size_t l;
        size_t got = 0;
        long r;
        int ok = 1;

        if (n > 3) {
            apr_brigade_partition(bb, 3, &after);
        }
        e = APR_BRIGADE_FIRST(bb);
        ok = apr_bucket_read(e, &data, &l, APR_BLOCK_READ) == APR_SUCCESS
             && apr_bucket_copy(e, &copy) == APR_SUCCESS;
        if (ok) {
            APR_BRIGADE_INSERT_TAIL(taken, copy);
            r = read_all(taken, out, n);
            ok = r == (long)l && memcmp(out, pt, l) == 0;
        }
        unit_ok(ok, "%s: a copy of a bucket read first gives its bytes", what);
        while (!APR_BRIGADE_EMPTY(bb) && ok) {
            apr_off_t step = 70001;
            apr_brigade_partition(bb, step, &after);
            while (APR_BRIGADE_FIRST(bb) != after) {
                e = APR_BRIGADE_FIRST(bb);
                APR_BUCKET_REMOVE(e);
                APR_BRIGADE_INSERT_TAIL(taken, e);
            }
            r = read_all(taken, out + got, n - got);
            ok = r >= 0;
            got += r > 0 ? (size_t)r : 0;
        }
        unit_mem(out, got, pt, n, "%s: partitioned at 3 and every 70,001 "
                 "bytes, the buckets give the plaintext", what);
    }

    if (n > 20000) {
        /* a bucket read before the one in front of it */
        apr_bucket *after, *second;
        const char *data;
        apr_size_t l;

        body = make_body(p, version, msg, len, (apr_off_t)n, -1);
        bb = apr_brigade_create(p, list);
        zeq_body_buckets(body, bb);
        apr_brigade_partition(bb, 10000, &after);
        second = after;
        unit_bool(apr_bucket_read(second, &data, &l, APR_BLOCK_READ)
                  == APR_SUCCESS, 0, "%s: a bucket read out of order fails",
                  what);

        /* a byte of the spooled ciphertext changed */
        body = make_body(p, version, msg, len, (apr_off_t)n, (long)len / 2);
        bb = apr_brigade_create(p, list);
        zeq_body_buckets(body, bb);
        unit_bool(read_all(bb, out, n) == (long)n, 0,
                  "%s: a ciphertext changed in the spool never reads whole",
                  what);
    }
    free(pt);
    free(out);
    free(msg);
    apr_pool_destroy(p);
}

int main(void)
{
    apr_initialize();
    apr_pool_create(&root, NULL);
    list = apr_bucket_alloc_create(root);
    RAND_bytes(key, sizeof(key));

    round_trip(1, 0, 0, "v1, empty");
    round_trip(1, 5, 0, "v1, 5 bytes");
    round_trip(1, 300 * 1024 + 17, 0, "v1, 300 KiB + 17 (spilled)");
    round_trip(2, 0, 16384, "v2, empty");
    round_trip(2, 100 * 1024 + 3, 16384, "v2, 100 KiB + 3 in 16 KiB records");
    round_trip(2, 200 * 1024, 1000, "v2, 200 KiB in 1,000-byte records");
    round_trip(2, 3 * 1024 * 1024, 1048576, "v2, 3 MiB in 1 MiB records");

    apr_pool_destroy(root);
    apr_terminate();
    return unit_done();
}
