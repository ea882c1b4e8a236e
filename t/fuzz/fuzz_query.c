/* The WebSocket query parameters (src/zeq_proto.c): zeq_proto_query_take,
 * which takes e2e_session (and v2's e2e_seq, e2e_seal) out of a query
 * string under any percent-encoded spelling of its name, and
 * zeq_proto_target_without, which drops items by their exact names (what
 * a v2 seal binds), and zeq_proto_opening_params, which reads e2e_seq and
 * e2e_seal of a v2 opening: each against a reference written here.
 * libFuzzer options: -max_len=1024 */
#include "fuzz.h"

#include "zeq_proto.h"

static int hexval(int c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decodes [s, s + n) into out (cap bytes with the NUL): its length,
 * or -1 (a malformed escape, a NUL byte, too long). */
static long ref_decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t i, o = 0;

    for (i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            if (n - i < 3 || hexval(s[i + 1]) < 0 || hexval(s[i + 2]) < 0) {
                return -1;
            }
            c = hexval(s[i + 1]) * 16 + hexval(s[i + 2]);
            i += 2;
        }
        if (c == 0 || o + 1 >= cap) {
            return -1;
        }
        out[o++] = (char)c;
    }
    if (cap == 0) {
        return -1;
    }
    out[o] = '\0';
    return (long)o;
}

/* What query_take should give: the items kept, joined, in kept; the
 * result and the first value. */
static int ref_take(const char *q, const char *name, char *kept, char *value,
                    size_t valuecap)
{
    const char *item = q;
    size_t k = 0;
    int count = 0, found = 0;

    kept[0] = '\0';
    while (*item != '\0') {
        size_t len = strcspn(item, "&");
        const char *eq = memchr(item, '=', len);
        char nbuf[ZEQ_PROTO_QUERY_NAME_MAX + 1];
        int match = 0;

        if (eq != NULL && (size_t)(eq - item) <= 3 * ZEQ_PROTO_QUERY_NAME_MAX
            && ref_decode(item, (size_t)(eq - item), nbuf, sizeof(nbuf)) >= 0
            && strcmp(nbuf, name) == 0) {
            match = 1;
        }
        if (match) {
            if (++count == 1) {
                found = ref_decode(eq + 1, len - (size_t)(eq + 1 - item),
                                   value, valuecap) < 0 ? -1 : 1;
            }
        }
        else if (len > 0) {
            if (k > 0) {
                kept[k++] = '&';
            }
            memcpy(kept + k, item, len);
            k += len;
            kept[k] = '\0';
        }
        item += len;
        if (*item == '&') {
            item++;
        }
    }
    return count > 1 ? -2 : found;
}

static void check_take(const char *q, const char *name, size_t valuecap)
{
    size_t n = strlen(q);
    char *args = strdup(q), *kept = malloc(n + 1);
    char *value = malloc(valuecap), *want = malloc(valuecap);
    int rv, ref;

    FUZZ_CHECK(args && kept && value && want, "memory");
    rv = zeq_proto_query_take(args, name, value, valuecap);
    ref = ref_take(q, name, kept, want, valuecap);
    FUZZ_CHECK(rv == ref, "query_take: the reference's result");
    FUZZ_CHECK(strcmp(args, kept) == 0, "query_take: the reference's query");
    if (rv == 1) {
        FUZZ_CHECK(strcmp(value, want) == 0, "query_take: the value");
    }
    FUZZ_CHECK(args[0] != '&' && (args[0] == '\0'
                                  || args[strlen(args) - 1] != '&')
               && strstr(args, "&&") == NULL,
               "query_take: a well-formed query remains");
    /* Nothing of that name remains. */
    FUZZ_CHECK(zeq_proto_query_take(args, name, value, valuecap) == 0
               && strcmp(args, kept) == 0, "query_take: taken once is gone");
    free(args);
    free(kept);
    free(value);
    free(want);
}

static void check_target_without(const char *q)
{
    static const char *const names[] = {"e2e_session", "e2e_seq", "e2e_seal",
                                        NULL};
    size_t n = strlen(q), k, o = 0;
    char *target = malloc(n + 4), *out = malloc(n + 4), *want = malloc(n + 4);
    const char *item;
    int kept = 0;

    FUZZ_CHECK(target && out && want, "memory");
    snprintf(target, n + 4, "/p?%s", q);
    k = zeq_proto_target_without(target, names, out);
    FUZZ_CHECK(k == strlen(out), "target_without: the length written");
    /* The reference: the items whose name (up to '=') is none of names. */
    memcpy(want, "/p?", 3);
    o = 3;
    for (item = q;; item += strcspn(item, "&") + 1) {
        size_t len = strcspn(item, "&");
        const char *eq = memchr(item, '=', len);
        size_t nlen = eq ? (size_t)(eq - item) : len;
        int drop = 0, i;
        for (i = 0; names[i] != NULL; i++) {
            drop |= strlen(names[i]) == nlen
                    && strncmp(item, names[i], nlen) == 0;
        }
        if (!drop) {
            if (kept++ > 0) {
                want[o++] = '&';
            }
            memcpy(want + o, item, len);
            o += len;
        }
        if (item[len] == '\0') {
            break;
        }
    }
    if (o == 3) {
        o = 2;
    }
    want[o] = '\0';
    FUZZ_CHECK(strcmp(out, want) == 0, "target_without: the reference's target");
    free(target);
    free(out);
    free(want);
}

/* zeq_proto_opening_params: each of the three names counted as written
 * and as decoded (items with a '='); OK when e2e_session appears once and
 * the others at most once, the same way both times. */
static void check_opening(const char *q)
{
    static const char *const names[3] = {"e2e_session", "e2e_seq", "e2e_seal"};
    const char *sq, *sl, *item, *val[3] = {NULL, NULL, NULL};
    size_t sqn, sln, vlen[3] = {0, 0, 0};
    int exact[3] = {0, 0, 0}, decoded[3] = {0, 0, 0}, k, ok;
    int rv = zeq_proto_opening_params(q, &sq, &sqn, &sl, &sln);

    for (item = q;; item += strcspn(item, "&") + 1) {
        size_t len = strcspn(item, "&");
        const char *eq = memchr(item, '=', len);
        size_t nlen = eq ? (size_t)(eq - item) : len;
        char nbuf[ZEQ_PROTO_QUERY_NAME_MAX + 1];
        long d = eq && nlen <= 3 * ZEQ_PROTO_QUERY_NAME_MAX
                 ? ref_decode(item, nlen, nbuf, sizeof(nbuf)) : -1;
        for (k = 0; k < 3; k++) {
            if (nlen == strlen(names[k]) && strncmp(item, names[k], nlen) == 0) {
                exact[k]++;
                val[k] = eq ? eq + 1 : item + len;
                vlen[k] = eq ? len - nlen - 1 : 0;
            }
            decoded[k] += d >= 0 && strcmp(nbuf, names[k]) == 0;
        }
        if (item[len] == '\0') {
            break;
        }
    }
    ok = 1;
    for (k = 0; k < 3; k++) {
        int e = exact[k] > 2 ? 2 : exact[k], dd = decoded[k] > 2 ? 2 : decoded[k];
        ok = ok && e == dd && e <= 1 && (k > 0 || e == 1);
    }
    FUZZ_CHECK(rv == (ok ? ZEQ_OK : ZEQ_ERR_BAD),
               "opening_params: the reference's result");
    FUZZ_CHECK(sq == val[1] && sqn == vlen[1] && sl == val[2] && sln == vlen[2],
               "opening_params: e2e_seq and e2e_seal where the reference "
               "finds them");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *q = fuzz_str(data, size);

    check_take(q, "e2e_session", ZEQ_PROTO_SESSION_ID_MAX + 1);
    check_take(q, "e2e_seq", 4);
    check_take(q, "e2e_seal", 4);
    check_take(q, "x", 1);
    check_target_without(q);
    check_opening(q);
    free(q);
    return 0;
}
