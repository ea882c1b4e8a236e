/* The parsers of the request headers the module reads (src/zeq_proto.c),
 * each against a reference written here: the first byte chooses one, the
 * rest is the header's value.
 *   0  X-E2E-Session: zeq_proto_session_id_valid
 *   1  X-E2E-Seq (and e2e_seq): zeq_proto_seq_parse
 *   2  Content-Type and X-E2E-Content-Type: zeq_proto_media_type_is
 *   3  Accept: zeq_proto_accept_lists (a list lists the type when one of
 *      its elements does; a type it lists is named in it)
 *   4  the JSON string of an error message: zeq_proto_json_escape
 *   5  base64url (clientKey, X-E2E-Seal): zeq_proto_b64url_decode, one
 *      encoding for each byte string
 *   6  hex (clientNonce): zeq_proto_hex_decode
 * libFuzzer options: -max_len=512 */
#include "fuzz.h"

#include <ctype.h>
#include <strings.h>

#include "mod_zeq_e2e.h"
#include "zeq_proto.h"

static void check_session_id(const char *s)
{
    size_t n = strlen(s);
    int ref = n >= 1 && n <= ZEQ_PROTO_SESSION_ID_MAX
              && strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                           "0123456789-_") == n;

    FUZZ_CHECK(zeq_proto_session_id_valid(s) == ref,
               "session_id_valid: 1 to 128 characters of [A-Za-z0-9_-]");
}

static void check_seq(const char *s)
{
    size_t n = strlen(s);
    unsigned long long v = 12345, want = 0;
    int rv = zeq_proto_seq_parse(s, &v);
    int ref = n >= 1 && n <= 16 && strspn(s, "0123456789") == n
              && (s[0] != '0' || n == 1);

    if (ref) {
        want = strtoull(s, NULL, 10);
        ref = want <= ZEQ_PROTO_SEQ_MAX;
    }
    FUZZ_CHECK((rv == ZEQ_OK) == ref,
               "seq_parse: decimal, no leading zero, at most 2^53 - 1");
    FUZZ_CHECK(rv == ZEQ_OK || rv == ZEQ_ERR_BAD, "seq_parse: OK or BAD");
    if (rv == ZEQ_OK) {
        FUZZ_CHECK(v == want, "seq_parse: the value strtoull reads");
    }
    else {
        FUZZ_CHECK(v == 12345, "seq_parse: nothing written when refused");
    }
}

/* The media type of a Content-Type value: up to ';', blanks trimmed. */
static int ref_media_type_is(const char *s, const char *type)
{
    size_t n = strcspn(s, ";");

    while (n > 0 && (*s == ' ' || *s == '\t')) {
        s++;
        n--;
    }
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t')) {
        n--;
    }
    return n > 0 && n == strlen(type) && strncasecmp(s, type, n) == 0;
}

static void check_media_type(const char *s)
{
    static const char *const types[] = {ZEQ_E2E_MEDIA_TYPE, "application/json",
                                        "a"};
    size_t i;

    for (i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        FUZZ_CHECK(zeq_proto_media_type_is(s, types[i])
                   == ref_media_type_is(s, types[i]),
                   "media_type_is: the type before ';', blanks and case aside");
    }
}

static int contains_nocase(const char *s, const char *t)
{
    size_t n = strlen(t);

    for (; *s != '\0'; s++) {
        if (strncasecmp(s, t, n) == 0) {
            return 1;
        }
    }
    return 0;
}

static void check_accept(const char *s)
{
    int got = zeq_proto_accept_lists(s, ZEQ_E2E_MEDIA_TYPE), any = 0;
    char *copy = strdup(s), *item, *next;

    FUZZ_CHECK(copy != NULL, "memory");
    FUZZ_CHECK(got == 0 || got == 1, "accept_lists: 0 or 1");
    if (got) {
        FUZZ_CHECK(contains_nocase(s, ZEQ_E2E_MEDIA_TYPE),
                   "accept_lists: a type it lists is named");
    }
    for (item = copy; item != NULL; item = next) {
        next = strchr(item, ',');
        if (next != NULL) {
            *next++ = '\0';
        }
        any |= zeq_proto_accept_lists(item, ZEQ_E2E_MEDIA_TYPE);
    }
    FUZZ_CHECK(got == any, "accept_lists: a list lists what one element lists");
    free(copy);
}

static void check_json_escape(const char *s)
{
    size_t n = strlen(s), o, i, j = 0;
    char *out = malloc(2 * n + 1);

    FUZZ_CHECK(out != NULL, "memory");
    o = zeq_proto_json_escape(s, out);
    FUZZ_CHECK(o <= 2 * n && out[o] == '\0' && strlen(out) == o,
               "json_escape: at most twice as long, NUL-terminated");
    /* Unescaped, it is s with every byte outside 0x20..0x7e a '?'. */
    for (i = 0; i < o; i++, j++) {
        unsigned char c = (unsigned char)out[i];
        FUZZ_CHECK(c >= 0x20 && c < 0x7f, "json_escape: printable ASCII only");
        FUZZ_CHECK(c != '"' || (i > 0 && out[i - 1] == '\\'),
                   "json_escape: every quote escaped");
        if (c == '\\') {
            c = (unsigned char)out[++i];
            FUZZ_CHECK(c == '"' || c == '\\', "json_escape: \\\" or \\\\ only");
        }
        FUZZ_CHECK(j < n, "json_escape: no byte added");
        FUZZ_CHECK((unsigned char)s[j] == c
                   || (c == '?' && ((unsigned char)s[j] < 0x20
                                    || (unsigned char)s[j] >= 0x7f)),
                   "json_escape: the same text");
    }
    FUZZ_CHECK(j == n, "json_escape: no byte lost");
    free(out);
}

static void check_b64url(const uint8_t *in, size_t len)
{
    unsigned char out[512];
    char *again = malloc(len + 4);
    size_t n = 0;
    int rv = zeq_proto_b64url_decode((const char *)in, len, out, sizeof(out),
                                     &n);

    FUZZ_CHECK(again != NULL, "memory");
    if (rv == ZEQ_OK) {
        FUZZ_CHECK(n <= sizeof(out) && zeq_proto_b64url_len(n) == len,
                   "b64url: the length of what it decodes");
        zeq_proto_b64url_encode(out, n, again);
        FUZZ_CHECK(strlen(again) == len && memcmp(again, in, len) == 0,
                   "b64url: decoding then encoding gives the input");
    }
    else {
        FUZZ_CHECK(rv == ZEQ_ERR_BAD, "b64url: OK or BAD");
    }
    /* Too small an output: refused, whatever it is. */
    if (rv == ZEQ_OK && n > 0) {
        FUZZ_CHECK(zeq_proto_b64url_decode((const char *)in, len, out, n - 1,
                                           &n) == ZEQ_ERR_BAD,
                   "b64url: refused when it does not fit");
    }
    free(again);
}

static void check_hex(const uint8_t *in, size_t len)
{
    unsigned char out[256];
    char again[2 * sizeof(out) + 1];
    size_t i;
    int rv, ref;

    if (len > 2 * sizeof(out)) {
        return;
    }
    rv = zeq_proto_hex_decode((const char *)in, len, out, len / 2);
    ref = len % 2 == 0;
    for (i = 0; i < len; i++) {
        ref = ref && isxdigit(in[i]);
    }
    FUZZ_CHECK((rv == ZEQ_OK) == ref, "hex_decode: 2n hex digits");
    if (rv == ZEQ_OK) {
        zeq_proto_hex_encode(out, len / 2, again);
        for (i = 0; i < len; i++) {
            FUZZ_CHECK(again[i] == tolower(in[i]), "hex: the same digits");
        }
    }
    FUZZ_CHECK(zeq_proto_hex_decode((const char *)in, len, out, len / 2 + 1)
               == ZEQ_ERR_BAD, "hex_decode: refused for another length");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *v = data + 1;
    size_t vlen = size > 0 ? size - 1 : 0;
    unsigned char *raw;
    char *s;

    if (size == 0) {
        return 0;
    }
    raw = fuzz_dup(v, vlen);
    s = fuzz_str(v, vlen);
    switch (data[0] % 7) {
    case 0:
        check_session_id(s);
        break;
    case 1:
        check_seq(s);
        break;
    case 2:
        check_media_type(s);
        break;
    case 3:
        check_accept(s);
        break;
    case 4:
        check_json_escape(s);
        break;
    case 5:
        check_b64url(raw, vlen);
        break;
    default:
        check_hex(raw, vlen);
        break;
    }
    free(raw);
    free(s);
    return 0;
}
