/* Minimal TAP-like helpers shared by the C unit tests in t/unit/.
 *
 * Each check prints one line:
 *     ok N - description
 *     not ok N - description: expected X, got Y
 * and unit_done() prints "N passed, M failed" and returns the exit status
 * (0 only when nothing failed). Everything here is static, so each test
 * program includes it on its own.
 */
#ifndef ZEQ_UNIT_H
#define ZEQ_UNIT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__)
#define UNIT_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define UNIT_PRINTF(f, a)
#endif

struct unit_state {
    unsigned passed;
    unsigned failed;
};

static inline struct unit_state *unit_state(void)
{
    static struct unit_state st;
    return &st;
}

/* Records one check. detail (may be NULL) is printed after the
 * description of a failing check. */
static inline int unit_report(int ok, const char *detail, const char *fmt,
                              va_list ap)
{
    struct unit_state *st = unit_state();
    unsigned n = st->passed + st->failed + 1;

    if (ok)
        st->passed++;
    else
        st->failed++;
    printf("%s %u - ", ok ? "ok" : "not ok", n);
    vprintf(fmt, ap);
    if (!ok && detail)
        printf(": %s", detail);
    putchar('\n');
    fflush(stdout);
    return ok;
}

/* Hex of up to 48 bytes, then "..." for longer buffers. */
static inline void unit_hexdump(char *dst, size_t cap, const unsigned char *p,
                                size_t len)
{
    static const char digits[] = "0123456789abcdef";
    size_t shown = len > 48 ? 48 : len, i, o = 0;

    if (cap == 0)
        return;
    if (p == NULL) {
        snprintf(dst, cap, "(null)");
        return;
    }
    for (i = 0; i < shown && o + 3 < cap; i++) {
        dst[o++] = digits[p[i] >> 4];
        dst[o++] = digits[p[i] & 15];
    }
    dst[o] = '\0';
    if (len > shown)
        snprintf(dst + o, cap - o, "...");
    else if (len == 0)
        snprintf(dst, cap, "(empty)");
}

/* ok when cond is true. */
UNIT_PRINTF(2, 3)
static inline int unit_ok(int cond, const char *fmt, ...)
{
    va_list ap;
    int r;

    va_start(ap, fmt);
    r = unit_report(cond != 0, "expected true, got false", fmt, ap);
    va_end(ap);
    return r;
}

/* ok when a boolean result equals the expected truth value (any non-zero
 * value counts as true). */
UNIT_PRINTF(3, 4)
static inline int unit_bool(int got, int expected, const char *fmt, ...)
{
    char detail[64];
    va_list ap;
    int r;

    snprintf(detail, sizeof detail, "expected %s, got %s (%d)",
             expected ? "true" : "false", got ? "true" : "false", got);
    va_start(ap, fmt);
    r = unit_report((got != 0) == (expected != 0), detail, fmt, ap);
    va_end(ap);
    return r;
}

/* ok when two integers are equal. */
UNIT_PRINTF(3, 4)
static inline int unit_int(long long got, long long expected,
                           const char *fmt, ...)
{
    char detail[96];
    va_list ap;
    int r;

    snprintf(detail, sizeof detail, "expected %lld, got %lld", expected, got);
    va_start(ap, fmt);
    r = unit_report(got == expected, detail, fmt, ap);
    va_end(ap);
    return r;
}

/* ok when two byte strings have the same length and contents. */
UNIT_PRINTF(5, 6)
static inline int unit_mem(const unsigned char *got, size_t gotlen,
                           const unsigned char *expected, size_t explen,
                           const char *fmt, ...)
{
    char g[160], e[160], detail[512];
    va_list ap;
    int ok, r;

    ok = gotlen == explen && got != NULL && expected != NULL
         && (explen == 0 || memcmp(got, expected, explen) == 0);
    if (!ok) {
        size_t i = 0;
        unit_hexdump(g, sizeof g, got, gotlen);
        unit_hexdump(e, sizeof e, expected, explen);
        if (got && expected && gotlen == explen)
            while (i < explen && got[i] == expected[i])
                i++;
        if (got && expected && gotlen == explen)
            snprintf(detail, sizeof detail,
                     "expected %s, got %s (%zu bytes, first difference at "
                     "byte %zu)", e, g, explen, i);
        else
            snprintf(detail, sizeof detail,
                     "expected %s (%zu bytes), got %s (%zu bytes)",
                     e, explen, g, gotlen);
    }
    va_start(ap, fmt);
    r = unit_report(ok, ok ? NULL : detail, fmt, ap);
    va_end(ap);
    return r;
}

/* ok when two NUL-terminated strings are equal (got may be NULL). */
UNIT_PRINTF(3, 4)
static inline int unit_str(const char *got, const char *expected,
                           const char *fmt, ...)
{
    char detail[400];
    va_list ap;
    int ok, r;

    ok = got != NULL && strcmp(got, expected) == 0;
    if (!ok)
        snprintf(detail, sizeof detail, "expected \"%.160s\", got %s%.160s%s",
                 expected, got ? "\"" : "", got ? got : "NULL",
                 got ? "\"" : "");
    va_start(ap, fmt);
    r = unit_report(ok, ok ? NULL : detail, fmt, ap);
    va_end(ap);
    return r;
}

/* Prints the summary line; returns the process exit status. */
static inline int unit_done(void)
{
    struct unit_state *st = unit_state();

    printf("%u passed, %u failed\n", st->passed, st->failed);
    fflush(stdout);
    return st->failed == 0 && st->passed > 0 ? 0 : 1;
}

/* Test-side hex decoder (independent of the code under test): decodes a
 * literal into a fresh malloc'd buffer and stores its length. Aborts on a
 * malformed literal, which is a bug in the test itself. */
static inline unsigned char *unit_unhex(const char *hex, size_t *len)
{
    size_t n = strlen(hex), i;
    unsigned char *out;

    if (n % 2) {
        fprintf(stderr, "unit_unhex: odd literal \"%s\"\n", hex);
        abort();
    }
    out = malloc(n / 2 + 1);
    if (!out)
        abort();
    for (i = 0; i < n; i++) {
        int c = hex[i], v;
        if (c >= '0' && c <= '9')
            v = c - '0';
        else if (c >= 'a' && c <= 'f')
            v = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            v = c - 'A' + 10;
        else {
            fprintf(stderr, "unit_unhex: bad literal \"%s\"\n", hex);
            abort();
        }
        if (i % 2)
            out[i / 2] |= (unsigned char)v;
        else
            out[i / 2] = (unsigned char)(v << 4);
    }
    *len = n / 2;
    return out;
}

/* A copy of len bytes in a buffer of exactly len bytes (1 when len is 0),
 * so that a function reading past its given length shows up under a
 * memory checker. */
static inline unsigned char *unit_dup(const void *p, size_t len)
{
    unsigned char *d = malloc(len ? len : 1);

    if (!d)
        abort();
    if (len)
        memcpy(d, p, len);
    return d;
}

/* Deterministic filler (xorshift32), so failures are reproducible. */
static inline void unit_fill(unsigned char *p, size_t len, unsigned seed)
{
    unsigned x = seed ? seed : 0x9e3779b9u;
    size_t i;

    for (i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (unsigned char)(x >> 24);
    }
}

#endif
