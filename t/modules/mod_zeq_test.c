/* mod_zeq_test: test handlers of the Apache::Test suite (t/readers.t),
 * loaded only by t/conf/extra.conf.in; not part of the product.
 *
 * Each handler reads the request body the way a family of real modules
 * does and answers JSON (application/json) saying what it got:
 *
 *   zeq-test-blocks       ap_setup_client_block / ap_should_client_block /
 *                         ap_get_client_block(r, buf, 8192) in a loop, as
 *                         classic modules do: what a read brings beyond the
 *                         buffer is lost (mod_php and mod_perl flatten
 *                         their reads into a buffer the same way).
 *   zeq-test-speculative  two AP_MODE_SPECULATIVE peeks (10 and 100 bytes),
 *                         then AP_MODE_READBYTES reads of 8 KiB until EOS;
 *                         peeks: [{asked, length, eos, matches}], matches
 *                         being whether the peek brought exactly the
 *                         body's first min(asked, length) bytes.
 *   zeq-test-lines        AP_MODE_GETLINE reads until EOS; lines,
 *                         newlines, multi_line_reads (answers holding more
 *                         than one line), rss_growth_kb (this process's
 *                         resident memory growth during the reads, or
 *                         null without /proc).
 *
 * Common fields: handler, length and sha256 of the body as read,
 * CONTENT_LENGTH (the request's Content-Length as the handler saw it, or
 * null), reads (reads that brought data), max_read (the most bytes one
 * read brought), error (null, or what went wrong). Every read loop is
 * bounded, so a filter that never ends the body makes the answer say so
 * instead of hanging. The handlers log nothing.
 *
 * Holding a key derivation (t/flood.t): with ZeqTestHoldDir DIR, a
 * handshake that carries "X-Zeq-Test-Hold: NAME" (letters, digits, '-')
 * stops where mod_zeq_e2e logs that it derives its keys (ZEQ30006, at
 * LogLevel zeq_e2e:debug), holding its derivation slot: this module's
 * error_log hook writes DIR/NAME.held (the child's pid) and waits until
 * DIR/NAME.release exists (at most 60 s), or until the test kills the
 * child. */
#include "httpd.h"
#include "http_config.h"
#include "http_core.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"
#include "util_filter.h"

#include "apr_file_io.h"
#include "apr_lib.h"
#include "apr_strings.h"

#include <openssl/evp.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define ZEQ_TEST_BLOCK     8192
/* Bounds of the read loops: more reads than this, or more bytes, and the
 * answer reports an error. */
#define ZEQ_TEST_MAX_READS 4000000L
#define ZEQ_TEST_MAX_BYTES ((apr_off_t)64 * 1024 * 1024)
#define ZEQ_TEST_PEEK_MAX  128

typedef struct {
    EVP_MD_CTX *md;
    apr_off_t length;
    long reads;
    apr_off_t max_read;
    const char *error;
    /* The body's first bytes, to compare with the speculative peeks. */
    unsigned char head[ZEQ_TEST_PEEK_MAX];
    apr_size_t head_len;
    /* Newlines seen, the last byte read; GETLINE: answers holding a
     * newline anywhere but at their end (more than one line). */
    long newlines;
    int last_byte;
    long multi_line_reads;
} zeq_test_result;

static apr_status_t zeq_test_md_free(void *data)
{
    EVP_MD_CTX_free(data);
    return APR_SUCCESS;
}

static void zeq_test_init(request_rec *r, zeq_test_result *res)
{
    memset(res, 0, sizeof(*res));
    res->last_byte = -1;
    res->md = EVP_MD_CTX_new();
    if (res->md == NULL || EVP_DigestInit_ex(res->md, EVP_sha256(), NULL) != 1) {
        res->error = "cannot set up SHA-256";
        return;
    }
    apr_pool_cleanup_register(r->pool, res->md, zeq_test_md_free,
                              apr_pool_cleanup_null);
}

static void zeq_test_feed(zeq_test_result *res, const char *data,
                          apr_size_t len)
{
    if (len == 0) {
        return;
    }
    if (res->head_len < sizeof(res->head)) {
        apr_size_t take = sizeof(res->head) - res->head_len;
        if (take > len) {
            take = len;
        }
        memcpy(res->head + res->head_len, data, take);
        res->head_len += take;
    }
    if (res->md != NULL && EVP_DigestUpdate(res->md, data, len) != 1) {
        res->error = "SHA-256 update failed";
    }
    for (const char *p = data, *end = data + len;
         (p = memchr(p, '\n', (apr_size_t)(end - p))) != NULL; p++) {
        res->newlines++;
    }
    res->length += (apr_off_t)len;
    res->last_byte = (unsigned char)data[len - 1];
}

/* One read's worth of data (already counted by the caller's feed). */
static void zeq_test_count_read(zeq_test_result *res, apr_off_t n)
{
    if (n <= 0) {
        return;
    }
    res->reads++;
    if (n > res->max_read) {
        res->max_read = n;
    }
}

/* Moves bb's data into res; *eos is set when bb holds EOS. */
static apr_status_t zeq_test_drain(zeq_test_result *res,
                                   apr_bucket_brigade *bb, int *eos,
                                   apr_off_t *got)
{
    apr_bucket *e;

    *got = 0;
    for (e = APR_BRIGADE_FIRST(bb); e != APR_BRIGADE_SENTINEL(bb);
         e = APR_BUCKET_NEXT(e)) {
        const char *data;
        apr_size_t len;
        apr_status_t rv;

        if (APR_BUCKET_IS_EOS(e)) {
            *eos = 1;
            break;
        }
        if (APR_BUCKET_IS_METADATA(e)) {
            continue;
        }
        rv = apr_bucket_read(e, &data, &len, APR_BLOCK_READ);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        zeq_test_feed(res, data, len);
        *got += (apr_off_t)len;
    }
    apr_brigade_cleanup(bb);
    return APR_SUCCESS;
}

static int zeq_test_over_bounds(zeq_test_result *res, long calls)
{
    if (calls >= ZEQ_TEST_MAX_READS) {
        res->error = "read loop bound reached (no end of body)";
        return 1;
    }
    if (res->length > ZEQ_TEST_MAX_BYTES) {
        res->error = "more than 64 MiB read";
        return 1;
    }
    return 0;
}

static const char *zeq_test_json_str(request_rec *r, const char *s)
{
    /* The strings here are header values and fixed messages: escape what
     * JSON needs and drop other control bytes. */
    char *out, *o;
    const char *p;

    if (s == NULL) {
        return "null";
    }
    out = o = apr_palloc(r->pool, 2 * strlen(s) + 3);
    *o++ = '"';
    for (p = s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            *o++ = '\\';
            *o++ = *p;
        }
        else if ((unsigned char)*p >= 0x20) {
            *o++ = *p;
        }
    }
    *o++ = '"';
    *o = '\0';
    return out;
}

static int zeq_test_answer(request_rec *r, const char *handler,
                           zeq_test_result *res, const char *extra)
{
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0, i;
    char hex[2 * EVP_MAX_MD_SIZE + 1];

    hex[0] = '\0';
    if (res->md != NULL && EVP_DigestFinal_ex(res->md, digest, &dlen) == 1) {
        for (i = 0; i < dlen; i++) {
            snprintf(hex + 2 * i, 3, "%02x", digest[i]);
        }
    }
    else if (res->error == NULL) {
        res->error = "SHA-256 failed";
    }
    ap_set_content_type(r, "application/json");
    ap_rprintf(r,
               "{\"handler\":\"%s\",\"length\":%" APR_OFF_T_FMT
               ",\"sha256\":\"%s\",\"CONTENT_LENGTH\":%s"
               ",\"reads\":%ld,\"max_read\":%" APR_OFF_T_FMT
               ",\"error\":%s%s%s}\n",
               handler, res->length, hex,
               zeq_test_json_str(r, apr_table_get(r->headers_in,
                                                  "Content-Length")),
               res->reads, res->max_read, zeq_test_json_str(r, res->error),
               extra != NULL ? "," : "", extra != NULL ? extra : "");
    return OK;
}

/* --- zeq-test-blocks ------------------------------------------------------ */

static int zeq_test_blocks(request_rec *r)
{
    zeq_test_result res;
    char buf[ZEQ_TEST_BLOCK];
    long calls = 0;
    int rc;

    zeq_test_init(r, &res);
    rc = ap_setup_client_block(r, REQUEST_CHUNKED_DECHUNK);
    if (rc != OK) {
        return rc;
    }
    if (ap_should_client_block(r)) {
        while (res.error == NULL && !zeq_test_over_bounds(&res, calls++)) {
            long n = ap_get_client_block(r, buf, sizeof(buf));
            if (n == 0) {
                break;
            }
            if (n < 0) {
                res.error = "ap_get_client_block failed";
                break;
            }
            zeq_test_feed(&res, buf, (apr_size_t)n);
            zeq_test_count_read(&res, n);
        }
    }
    return zeq_test_answer(r, "zeq-test-blocks", &res, NULL);
}

/* --- zeq-test-speculative ------------------------------------------------- */

typedef struct {
    apr_off_t asked;
    apr_off_t length;           /* what the peek brought */
    unsigned char data[ZEQ_TEST_PEEK_MAX];
    apr_size_t data_len;
    int eos;
} zeq_test_peek;

static apr_status_t zeq_test_do_peek(request_rec *r, apr_bucket_brigade *bb,
                                     zeq_test_peek *pk, apr_off_t n)
{
    apr_bucket *e;
    apr_status_t rv;

    memset(pk, 0, sizeof(*pk));
    pk->asked = n;
    rv = ap_get_brigade(r->input_filters, bb, AP_MODE_SPECULATIVE,
                        APR_BLOCK_READ, n);
    if (rv != APR_SUCCESS) {
        apr_brigade_cleanup(bb);
        return rv;
    }
    for (e = APR_BRIGADE_FIRST(bb); e != APR_BRIGADE_SENTINEL(bb);
         e = APR_BUCKET_NEXT(e)) {
        const char *data;
        apr_size_t len;

        if (APR_BUCKET_IS_EOS(e)) {
            pk->eos = 1;
            break;
        }
        if (APR_BUCKET_IS_METADATA(e)) {
            continue;
        }
        rv = apr_bucket_read(e, &data, &len, APR_BLOCK_READ);
        if (rv != APR_SUCCESS) {
            break;
        }
        if (pk->data_len < sizeof(pk->data)) {
            apr_size_t take = sizeof(pk->data) - pk->data_len;
            if (take > len) {
                take = len;
            }
            memcpy(pk->data + pk->data_len, data, take);
            pk->data_len += take;
        }
        pk->length += (apr_off_t)len;
    }
    apr_brigade_cleanup(bb);
    return rv;
}

/* True when the peek brought exactly the body's first min(asked, length)
 * bytes. */
static int zeq_test_peek_matches(const zeq_test_peek *pk,
                                 const zeq_test_result *res)
{
    apr_off_t want = pk->asked < res->length ? pk->asked : res->length;

    return pk->length == want && (apr_size_t)want <= res->head_len
           && (apr_size_t)want <= pk->data_len
           && memcmp(pk->data, res->head, (apr_size_t)want) == 0;
}

static int zeq_test_speculative(request_rec *r)
{
    static const apr_off_t sizes[2] = {10, 100};
    zeq_test_result res;
    zeq_test_peek peeks[2];
    apr_bucket_brigade *bb;
    long calls = 0;
    int eos = 0, i;
    const char *extra;

    zeq_test_init(r, &res);
    bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    for (i = 0; i < 2; i++) {
        if (zeq_test_do_peek(r, bb, &peeks[i], sizes[i]) != APR_SUCCESS
            && res.error == NULL) {
            res.error = "speculative read failed";
        }
    }
    while (res.error == NULL && !eos
           && !zeq_test_over_bounds(&res, calls++)) {
        apr_off_t got;
        apr_status_t rv = ap_get_brigade(r->input_filters, bb,
                                         AP_MODE_READBYTES, APR_BLOCK_READ,
                                         ZEQ_TEST_BLOCK);
        if (rv != APR_SUCCESS) {
            res.error = "ap_get_brigade (READBYTES) failed";
            break;
        }
        if (APR_BRIGADE_EMPTY(bb)) {
            res.error = "a blocking READBYTES read brought an empty brigade";
            break;
        }
        if (zeq_test_drain(&res, bb, &eos, &got) != APR_SUCCESS) {
            res.error = "reading a bucket failed";
            break;
        }
        zeq_test_count_read(&res, got);
    }
    extra = apr_psprintf(
        r->pool,
        "\"peeks\":[{\"asked\":%" APR_OFF_T_FMT ",\"length\":%" APR_OFF_T_FMT
        ",\"eos\":%s,\"matches\":%s},{\"asked\":%" APR_OFF_T_FMT
        ",\"length\":%" APR_OFF_T_FMT ",\"eos\":%s,\"matches\":%s}]",
        peeks[0].asked, peeks[0].length, peeks[0].eos ? "true" : "false",
        zeq_test_peek_matches(&peeks[0], &res) ? "true" : "false",
        peeks[1].asked, peeks[1].length, peeks[1].eos ? "true" : "false",
        zeq_test_peek_matches(&peeks[1], &res) ? "true" : "false");
    return zeq_test_answer(r, "zeq-test-speculative", &res, extra);
}

/* --- zeq-test-lines ------------------------------------------------------- */

/* The resident set size of this process in KiB (VmRSS of Linux's
 * /proc/self/status), or -1. */
static long zeq_test_rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;

    if (f == NULL) {
        return -1;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1) {
            break;
        }
    }
    fclose(f);
    return kb;
}

static int zeq_test_lines(request_rec *r)
{
    zeq_test_result res;
    apr_bucket_brigade *bb;
    long calls = 0, rss_before, rss_after;
    int eos = 0;

    zeq_test_init(r, &res);
    bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    rss_before = zeq_test_rss_kb();
    while (res.error == NULL && !eos
           && !zeq_test_over_bounds(&res, calls++)) {
        apr_off_t got;
        long before = res.newlines, n;
        apr_status_t rv = ap_get_brigade(r->input_filters, bb,
                                         AP_MODE_GETLINE, APR_BLOCK_READ,
                                         HUGE_STRING_LEN);
        if (rv != APR_SUCCESS) {
            res.error = "ap_get_brigade (GETLINE) failed";
            break;
        }
        if (APR_BRIGADE_EMPTY(bb)) {
            res.error = "a blocking GETLINE read brought an empty brigade";
            break;
        }
        if (zeq_test_drain(&res, bb, &eos, &got) != APR_SUCCESS) {
            res.error = "reading a bucket failed";
            break;
        }
        /* One line, or a piece of one: a newline only at the end. */
        n = res.newlines - before;
        if (got > 0 && (n > 1 || (n == 1 && res.last_byte != '\n'))) {
            res.multi_line_reads++;
        }
        zeq_test_count_read(&res, got);
    }
    rss_after = zeq_test_rss_kb();
    return zeq_test_answer(
        r, "zeq-test-lines", &res,
        apr_psprintf(r->pool,
                     "\"lines\":%ld,\"newlines\":%ld,\"multi_line_reads\":%ld"
                     ",\"rss_growth_kb\":%s",
                     res.newlines
                         + (res.length > 0 && res.last_byte != '\n' ? 1 : 0),
                     res.newlines, res.multi_line_reads,
                     rss_before < 0 || rss_after < 0
                         ? "null"
                         : apr_ltoa(r->pool, rss_after - rss_before)));
}

/* --- holding a key derivation ------------------------------------------ */

#define ZEQ_TEST_HOLD_HEADER "X-Zeq-Test-Hold"
#define ZEQ_TEST_HOLD_TAG    "ZEQ30006:"
#define ZEQ_TEST_HOLD_MAX    apr_time_from_sec(60)

static const char *zeq_test_hold_dir;

static const char *zeq_test_set_hold_dir(cmd_parms *cmd, void *dc,
                                         const char *arg)
{
    (void)cmd;
    (void)dc;
    zeq_test_hold_dir = arg;
    return NULL;
}

static int zeq_test_hold_name_ok(const char *name)
{
    const char *p;

    for (p = name; *p != '\0'; p++) {
        if (!apr_isalnum(*p) && *p != '-') {
            return 0;
        }
    }
    return p > name && p - name <= 32;
}

/* Writes DIR/NAME.held with this process's pid (as a whole: written to
 * a temporary name, then renamed). */
static void zeq_test_hold_mark(apr_pool_t *p, const char *name)
{
    const char *held = apr_pstrcat(p, zeq_test_hold_dir, "/", name, ".held",
                                   NULL);
    const char *tmp = apr_pstrcat(p, held, ".tmp", NULL);
    const char *pid = apr_psprintf(p, "%ld\n", (long)getpid());
    apr_file_t *f;

    if (apr_file_open(&f, tmp, APR_FOPEN_WRITE | APR_FOPEN_CREATE
                      | APR_FOPEN_TRUNCATE, APR_FPROT_OS_DEFAULT, p)
        == APR_SUCCESS) {
        apr_file_write_full(f, pid, strlen(pid), NULL);
        apr_file_close(f);
        apr_file_rename(tmp, held, p);
    }
}

static void zeq_test_error_log(const ap_errorlog_info *info,
                               const char *errstr)
{
    const char *name, *release;
    apr_finfo_t fi;
    apr_time_t until;
    apr_pool_t *p;

    if (zeq_test_hold_dir == NULL || info->r == NULL || errstr == NULL
        || strstr(errstr, ZEQ_TEST_HOLD_TAG) == NULL) {
        return;
    }
    name = apr_table_get(info->r->headers_in, ZEQ_TEST_HOLD_HEADER);
    if (name == NULL || !zeq_test_hold_name_ok(name)) {
        return;
    }
    p = info->r->pool;
    release = apr_pstrcat(p, zeq_test_hold_dir, "/", name, ".release", NULL);
    zeq_test_hold_mark(p, name);
    until = apr_time_now() + ZEQ_TEST_HOLD_MAX;
    while (apr_stat(&fi, release, APR_FINFO_TYPE, p) != APR_SUCCESS
           && apr_time_now() < until) {
        apr_sleep(apr_time_from_msec(10));
    }
}

/* --- module --------------------------------------------------------------- */

static int zeq_test_handler(request_rec *r)
{
    if (r->handler == NULL) {
        return DECLINED;
    }
    if (strcmp(r->handler, "zeq-test-blocks") == 0) {
        return zeq_test_blocks(r);
    }
    if (strcmp(r->handler, "zeq-test-speculative") == 0) {
        return zeq_test_speculative(r);
    }
    if (strcmp(r->handler, "zeq-test-lines") == 0) {
        return zeq_test_lines(r);
    }
    return DECLINED;
}

static void zeq_test_register_hooks(apr_pool_t *p)
{
    (void)p;
    ap_hook_handler(zeq_test_handler, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_error_log(zeq_test_error_log, NULL, NULL, APR_HOOK_MIDDLE);
}

static const command_rec zeq_test_cmds[] = {
    AP_INIT_TAKE1("ZeqTestHoldDir", zeq_test_set_hold_dir, NULL, RSRC_CONF,
                  "directory of the files that hold a key derivation "
                  "(t/flood.t)"),
    {NULL}
};

AP_DECLARE_MODULE(zeq_test) = {
    STANDARD20_MODULE_STUFF,
    NULL, NULL, NULL, NULL, zeq_test_cmds,
    zeq_test_register_hooks,
    0
};
