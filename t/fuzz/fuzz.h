/* What the libFuzzer harnesses of t/fuzz/ share: the entry point, the
 * check whose failure is a finding (it aborts, so libFuzzer and the
 * replayer both report it), and the keys and additional data the seed
 * corpus (t/fuzz/seeds.pl) was made with. No code of the module here. */
#ifndef ZEQ_FUZZ_H
#define ZEQ_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond, what)                                              \
    do {                                                                    \
        if (!(cond)) {                                                      \
            fprintf(stderr, "%s:%d: %s (failed: %s)\n", __FILE__, __LINE__, \
                    (what), #cond);                                         \
            abort();                                                        \
        }                                                                   \
    } while (0)

/* The session key of the envelope, record and seal harnesses (32 bytes). */
#define FUZZ_KEY ((const unsigned char *)"zeq-e2e fuzz key: 32 bytes long.")
/* The message AAD of the record and seal harnesses: a request's. */
#define FUZZ_AAD ((const unsigned char *)"zeq-e2e/2 request\0fuzz-session\0" \
                  "7\0POST\0/fuzz?x=1\0application/json")
#define FUZZ_AAD_LEN (sizeof("zeq-e2e/2 request\0fuzz-session\0" \
                             "7\0POST\0/fuzz?x=1\0application/json") - 1)
/* The record key of the session-record harness, and the session id whose
 * SHA-256 its records are stored under. */
#define FUZZ_RECORD_IKM "zeq-e2e fuzz record key, 32 bytes or more"
#define FUZZ_RECORD_SID "fuzz-session"

/* A copy of len bytes in a buffer of exactly len bytes (1 when len is 0),
 * so that reading past it shows under AddressSanitizer. */
static inline unsigned char *fuzz_dup(const uint8_t *data, size_t len)
{
    unsigned char *p = malloc(len ? len : 1);

    if (p == NULL) {
        abort();
    }
    if (len > 0) {
        memcpy(p, data, len);
    }
    return p;
}

/* The bytes as a C string of exactly len + 1 bytes (a NUL ends it early,
 * as in a header value). */
static inline char *fuzz_str(const uint8_t *data, size_t len)
{
    const uint8_t *nul = len ? memchr(data, 0, len) : NULL;
    size_t n = nul ? (size_t)(nul - data) : len;
    char *s = malloc(n + 1);

    if (s == NULL) {
        abort();
    }
    if (n > 0) {
        memcpy(s, data, n);
    }
    s[n] = '\0';
    return s;
}

/* A growing byte buffer: what a reader emitted. */
typedef struct {
    unsigned char *buf;
    size_t len, cap;
    int stop;            /* the emit callback refuses (returns 1) */
} fuzz_sink;

static inline int fuzz_sink_emit(void *baton, const unsigned char *data,
                                 size_t len)
{
    fuzz_sink *s = baton;

    if (s->stop) {
        return 1;
    }
    if (s->len + len > s->cap) {
        size_t cap = (s->len + len) * 2 + 16;
        unsigned char *nb = realloc(s->buf, cap);
        if (nb == NULL) {
            abort();
        }
        s->buf = nb;
        s->cap = cap;
    }
    if (len > 0) {
        memcpy(s->buf + s->len, data, len);
    }
    s->len += len;
    return 0;
}

static inline void fuzz_sink_free(fuzz_sink *s)
{
    free(s->buf);
    memset(s, 0, sizeof(*s));
}

static inline int fuzz_same(const unsigned char *a, size_t alen,
                            const unsigned char *b, size_t blen)
{
    return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

#endif
