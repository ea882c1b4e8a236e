/* Unit tests of src/zeq_proto.c: hex, base64url, the handshake request
 * body, session ids, media types, Accept lists, taking a parameter out
 * of a query string, JSON string escaping. Every input is copied into a
 * buffer of exactly its length first, so a parser that reads past the
 * length it was given shows up under a memory checker. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zeq_proto.h"
#include "unit.h"

/* ------------------------------------------------------------------ */
/* hex */

static void hex_decode_ok(const char *hex, const char *expect_hex,
                          const char *what)
{
    size_t n = strlen(hex), explen;
    unsigned char *in = unit_dup(hex, n);
    unsigned char *expect = unit_unhex(expect_hex, &explen);
    unsigned char out[64];
    int rc;

    memset(out, 0xaa, sizeof out);
    rc = zeq_proto_hex_decode((const char *)in, n, out, explen);
    unit_int(rc, ZEQ_OK, "hex_decode %s: accepted", what);
    unit_mem(out, explen, expect, explen, "hex_decode %s: bytes", what);
    unit_int(out[explen], 0xaa, "hex_decode %s: nothing written past outlen",
             what);
    free(in);
    free(expect);
}

static void hex_decode_bad(const char *hex, size_t hexlen, size_t outlen,
                           const char *what)
{
    unsigned char *in = unit_dup(hex, hexlen);
    unsigned char out[64];
    int rc;

    rc = zeq_proto_hex_decode((const char *)in, hexlen, out, outlen);
    unit_int(rc, ZEQ_ERR_BAD, "hex_decode rejects %s", what);
    free(in);
}

static void test_hex(void)
{
    unsigned char all[256];
    char enc[2 * 256 + 2], expect[2 * 256 + 1];
    unsigned char back[256];
    size_t i;
    int rc;

    hex_decode_ok("00ff107f80", "00ff107f80", "lowercase");
    hex_decode_ok("DEADBEEF", "deadbeef", "uppercase");
    hex_decode_ok("aBcDeF09", "abcdef09", "mixed case");
    hex_decode_ok("0123456789abcdefABCDEF", "0123456789abcdefabcdef",
                  "every digit");
    hex_decode_ok("", "", "empty input, empty output");

    hex_decode_bad("abc", 3, 1, "odd length (3 chars, outlen 1)");
    hex_decode_bad("abc", 3, 2, "odd length (3 chars, outlen 2)");
    hex_decode_bad("abcd", 4, 1, "4 chars for outlen 1");
    hex_decode_bad("abcd", 4, 3, "4 chars for outlen 3");
    hex_decode_bad("", 0, 1, "empty input for outlen 1");
    hex_decode_bad("0g", 2, 1, "'g'");
    hex_decode_bad("G0", 2, 1, "'G'");
    hex_decode_bad("0 ", 2, 1, "a blank");
    hex_decode_bad("-1", 2, 1, "'-'");
    hex_decode_bad("0x", 2, 1, "'x' (0x prefix)");
    hex_decode_bad("a\0", 2, 1, "an embedded NUL");
    hex_decode_bad("\xc3\xa9", 2, 1, "a non-ASCII byte");
    hex_decode_bad("0/", 2, 1, "'/' (just below '0')");
    hex_decode_bad("0:", 2, 1, "':' (just above '9')");
    hex_decode_bad("0@", 2, 1, "'@' (just below 'A')");
    hex_decode_bad("0`", 2, 1, "'`' (just below 'a')");

    for (i = 0; i < 256; i++) {
        all[i] = (unsigned char)i;
        snprintf(expect + 2 * i, 3, "%02x", (unsigned)i);
    }
    memset(enc, 'X', sizeof enc);
    zeq_proto_hex_encode(all, 256, enc);
    unit_mem((unsigned char *)enc, 512, (unsigned char *)expect, 512,
             "hex_encode of bytes 0..255 is lowercase hex");
    unit_int(enc[512], '\0', "hex_encode terminates with a NUL");
    unit_int(enc[513], 'X', "hex_encode writes nothing past the NUL");

    memset(enc, 'X', sizeof enc);
    zeq_proto_hex_encode(all, 0, enc);
    unit_int(enc[0], '\0', "hex_encode of no bytes is the empty string");

    rc = zeq_proto_hex_decode(expect, 512, back, 256);
    unit_int(rc, ZEQ_OK, "hex round trip 0..255: decode accepted");
    unit_mem(back, 256, all, 256, "hex round trip 0..255: bytes");
}

/* ------------------------------------------------------------------ */
/* base64url, RFC 4648 section 10 vectors in the URL-safe alphabet
 * (section 5) without padding, plus inputs that use '-' and '_'. */

static void b64_check(const char *in_hex, const char *expect)
{
    size_t len, elen = strlen(expect);
    unsigned char *in = unit_unhex(in_hex, &len);
    unsigned char *dup = unit_dup(in, len);
    char out[128];

    unit_int((long long)zeq_proto_b64url_len(len), (long long)elen,
             "b64url_len(%zu)", len);
    memset(out, 'X', sizeof out);
    zeq_proto_b64url_encode(dup, len, out);
    unit_str(out, expect, "b64url of %s", len ? in_hex : "(empty)");
    unit_int(out[elen + 1], 'X', "b64url of %s writes nothing past the NUL",
             len ? in_hex : "(empty)");
    free(in);
    free(dup);
}

static void test_b64url(void)
{
    unsigned char nonce[32];
    char out[64];
    size_t i;

    b64_check("", "");
    b64_check("66", "Zg");                 /* "f" */
    b64_check("666f", "Zm8");              /* "fo" */
    b64_check("666f6f", "Zm9v");           /* "foo" */
    b64_check("666f6f62", "Zm9vYg");       /* "foob" */
    b64_check("666f6f6261", "Zm9vYmE");    /* "fooba" */
    b64_check("666f6f626172", "Zm9vYmFy"); /* "foobar" */
    b64_check("fbff", "-_8");              /* standard: +/8= */
    b64_check("fbffbf", "-_-_");           /* standard: +/+/ */
    b64_check("ffffff", "____");
    b64_check("f8", "-A");
    b64_check("3e3f", "Pj8");
    b64_check("000102030405060708090a0b0c0d0e0f"
              "101112131415161718191a1b1c1d1e1f",
              "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8");
    b64_check("e0e1e2e3e4e5e6e7e8e9eaebecedeeef"
              "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff",
              "4OHi4-Tl5ufo6err7O3u7_Dx8vP09fb3-Pn6-_z9_v8");

    unit_int((long long)zeq_proto_b64url_len(ZEQ_PROTO_SESSION_ID_BYTES), 43,
             "a session id of 32 random bytes is 43 characters");

    /* every 32-byte value encodes to a valid session id */
    for (i = 0; i < 32; i++)
        nonce[i] = (unsigned char)(0xff - 7 * i);
    zeq_proto_b64url_encode(nonce, 32, out);
    unit_bool(zeq_proto_session_id_valid(out), 1,
              "b64url of 32 bytes (\"%s\") is a valid session id", out);
}

/* ------------------------------------------------------------------ */
/* handshake body */

static const char nonce_lc[] =
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
static const char nonce_uc_hex[] =
    "A0B1C2D3E4F5A6B7C8D9EAFBACBDCEDF00112233445566778899AABBCCDDEEFF";

/* A v1 body's parse: the nonce bytes, and version 1. */
static int hs_parse(const char *body, size_t len, unsigned char *nonce)
{
    unsigned char *copy = unit_dup(body, len);
    zeq_proto_handshake hs;
    int rc = zeq_proto_handshake_parse((const char *)copy, len, &hs);

    if (rc == ZEQ_OK) {
        memcpy(nonce, hs.client_nonce, ZEQ_PROTO_NONCE_LEN);
        if (hs.version != 1) {
            rc = ZEQ_ERR_VERSION;
        }
    }
    free(copy);
    return rc;
}

static void hs_ok(const char *body, const char *nonce_hex, const char *what)
{
    unsigned char nonce[ZEQ_PROTO_NONCE_LEN], *expect;
    size_t explen;
    int rc;

    expect = unit_unhex(nonce_hex, &explen);
    memset(nonce, 0xaa, sizeof nonce);
    rc = hs_parse(body, strlen(body), nonce);
    unit_int(rc, ZEQ_OK, "handshake %s: accepted", what);
    unit_mem(nonce, sizeof nonce, expect, explen, "handshake %s: nonce bytes",
             what);
    free(expect);
}

static void hs_bad_len(const char *body, size_t len, const char *what)
{
    unsigned char nonce[ZEQ_PROTO_NONCE_LEN];

    unit_int(hs_parse(body, len, nonce), ZEQ_ERR_BAD,
             "handshake rejects %s", what);
}

static void hs_bad(const char *body, const char *what)
{
    hs_bad_len(body, strlen(body), what);
}

static void test_handshake(void)
{
    char buf[ZEQ_PROTO_HANDSHAKE_MAX + 64], nonce63[64], nonce65[66];
    size_t n;

    hs_ok("{\"clientNonce\":\"000102030405060708090a0b0c0d0e0f"
          "101112131415161718191a1b1c1d1e1f\"}", nonce_lc, "lowercase hex");
    hs_ok("{\"clientNonce\": \"A0B1C2D3E4F5A6B7C8D9EAFBACBDCEDF"
          "00112233445566778899AABBCCDDEEFF\"}", nonce_uc_hex,
          "uppercase hex");
    hs_ok("{\"clientNonce\":\"a0B1c2D3e4F5a6B7c8D9eAfBaCbDcEdF"
          "00112233445566778899aAbBcCdDeEfF\"}", nonce_uc_hex,
          "mixed-case hex");
    hs_ok("{\"v\":1,\"clientNonce\":\"000102030405060708090a0b0c0d0e0f"
          "101112131415161718191a1b1c1d1e1f\",\"extra\":{\"a\":[1,2,null]},"
          "\"z\":\"x\"}", nonce_lc, "with extra fields (ignored)");
    hs_ok(" \r\n\t{ \"clientNonce\" : \"000102030405060708090a0b0c0d0e0f"
          "101112131415161718191a1b1c1d1e1f\" }\r\n ", nonce_lc,
          "with blanks around the JSON");

    hs_bad("", "an empty body");
    hs_bad("clientNonce=000102030405060708090a0b0c0d0e0f"
           "101112131415161718191a1b1c1d1e1f", "a form body (not JSON)");
    hs_bad("{\"clientNonce\":\"000102030405060708090a0b0c0d0e0f"
           "101112131415161718191a1b1c1d1e1f\"", "truncated JSON");
    hs_bad("{clientNonce:\"000102030405060708090a0b0c0d0e0f"
           "101112131415161718191a1b1c1d1e1f\"}", "an unquoted key");
    hs_bad("{\"clientNonce\":\"000102030405060708090a0b0c0d0e0f"
           "101112131415161718191a1b1c1d1e1f\"} x",
           "trailing garbage after the object");
    hs_bad("[\"000102030405060708090a0b0c0d0e0f"
           "101112131415161718191a1b1c1d1e1f\"]", "a JSON array");
    hs_bad("[{\"clientNonce\":\"000102030405060708090a0b0c0d0e0f"
           "101112131415161718191a1b1c1d1e1f\"}]",
           "an array holding a valid object");
    hs_bad("\"000102030405060708090a0b0c0d0e0f"
           "101112131415161718191a1b1c1d1e1f\"", "a JSON string");
    hs_bad("null", "JSON null");
    hs_bad("{}", "an empty object (nonce missing)");
    hs_bad("{\"nonce\":\"000102030405060708090a0b0c0d0e0f"
           "101112131415161718191a1b1c1d1e1f\"}", "a nonce under another name");
    hs_bad("{\"clientnonce\":\"000102030405060708090a0b0c0d0e0f"
           "101112131415161718191a1b1c1d1e1f\"}",
           "\"clientnonce\" (JSON member names are case-sensitive)");
    hs_bad("{\"data\":{\"clientNonce\":\"000102030405060708090a0b0c0d0e0f"
           "101112131415161718191a1b1c1d1e1f\"}}", "a nonce in a nested object");
    hs_bad("{\"clientNonce\":123}", "a nonce that is a number");
    hs_bad("{\"clientNonce\":1e300}", "a nonce that is a big number");
    hs_bad("{\"clientNonce\":null}", "a nonce that is null");
    hs_bad("{\"clientNonce\":true}", "a nonce that is true");
    hs_bad("{\"clientNonce\":[\"000102030405060708090a0b0c0d0e0f"
           "101112131415161718191a1b1c1d1e1f\"]}", "a nonce in an array");
    hs_bad("{\"clientNonce\":{}}", "a nonce that is an object");
    hs_bad("{\"clientNonce\":\"\"}", "an empty nonce");

    memcpy(nonce63, nonce_lc, 63);
    nonce63[63] = '\0';
    snprintf(buf, sizeof buf, "{\"clientNonce\":\"%s\"}", nonce63);
    hs_bad(buf, "a nonce of 63 hex characters");
    snprintf(nonce65, sizeof nonce65, "%s0", nonce_lc);
    snprintf(buf, sizeof buf, "{\"clientNonce\":\"%s\"}", nonce65);
    hs_bad(buf, "a nonce of 65 hex characters");
    snprintf(buf, sizeof buf, "{\"clientNonce\":\"%s%s\"}", nonce_lc, nonce_lc);
    hs_bad(buf, "a nonce of 128 hex characters");
    hs_bad("{\"clientNonce\":\"000102030405060708090a0b0c0d0e0f"
           "101112131415161718191a1b1c1d1e1g\"}", "a nonce ending in 'g'");
    hs_bad("{\"clientNonce\":\"000102030405060708090a0b0c0d0e0f"
           "1011121314151617 8191a1b1c1d1e1f\"}", "a nonce with a blank");
    hs_bad("{\"clientNonce\":\"0x0102030405060708090a0b0c0d0e0f"
           "101112131415161718191a1b1c1d1e1f\"}", "a nonce with a 0x prefix");
    hs_bad("{\"clientNonce\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\"}",
           "a base64url nonce");

    /* embedded NUL: after the object, and inside the nonce string */
    n = (size_t)snprintf(buf, sizeof buf, "{\"clientNonce\":\"%s\"}", nonce_lc);
    buf[n] = '\0';
    memcpy(buf + n + 1, "{}", 2);
    hs_bad_len(buf, n + 3, "a NUL and more bytes after the object");
    n = (size_t)snprintf(buf, sizeof buf, "{\"clientNonce\":\"%s\"}", nonce_lc);
    buf[16 + 20] = '\0';
    hs_bad_len(buf, n, "a NUL inside the nonce string");
    hs_bad("{\"clientNonce\":\"000102030405060708090a0b0c0d0e0f"
           "101112131415161718191a1b1c1d1e\\u0000\"}",
           "a \\u0000 escape inside the nonce string");
    hs_bad("{\"clientNonce\":\"000102030405060708090a0b0c0d0e0f"
           "101112131415161718191a1b1c1d1e1f\\u0000x\"}",
           "64 hex digits, then \\u0000 and more (a C string would stop at 64)");
    hs_bad("{\"clientNonce\":\"000102030405060708090a0b0c0d0e0f"
           "101112131415161718191a1b1c1d1e1f\",\"x\":\"\\u0000\"}",
           "a \\u0000 escape in an ignored member");
    hs_ok("{\"clientNonce\":\"000102030405060708090a0b0c0d0e0f"
          "101112131415161718191a1b1c1d1e1f\",\"x\":\"\\\\u0000\"}", nonce_lc,
          "with an escaped backslash before u0000 (no NUL)");

    /* RFC 8259's four blanks only; no control character in a string */
    hs_bad("{\"clientNonce\":\"000102030405060708090a0b0c0d0e0f"
           "101112131415161718191a1b1c1d1e1f\"\x0c}", "a form feed between tokens");
    hs_bad("\x0b{\"clientNonce\":\"000102030405060708090a0b0c0d0e0f"
           "101112131415161718191a1b1c1d1e1f\"}", "a vertical tab before the object");
    hs_bad("{\"clientNonce\":\"000102030405060708090a0b0c0d0e0f"
           "101112131415161718191a1b1c1d1e1f\",\"x\":\"a\tb\"}", "a raw tab inside a string");
    hs_bad("{\"clientNonce\":\"000102030405060708090a0b0c0d0e0f"
           "101112131415161718191a1b1c1d1e1f\",\"x\":\"a\x01b\"}", "a raw 0x01 inside a string");
    hs_ok("{\"clientNonce\":\"000102030405060708090a0b0c0d0e0f"
          "101112131415161718191a1b1c1d1e1f\",\"x\":\"a\\tb\\u0001\"}", nonce_lc,
          "escaped control characters inside a string");

    /* nesting: 32 levels, the object included */
    n = (size_t)snprintf(buf, sizeof buf, "{\"clientNonce\":\"%s\",\"x\":", nonce_lc);
    memset(buf + n, '[', ZEQ_PROTO_JSON_DEPTH - 1);
    memset(buf + n + ZEQ_PROTO_JSON_DEPTH - 1, ']', ZEQ_PROTO_JSON_DEPTH - 1);
    memcpy(buf + n + 2 * (ZEQ_PROTO_JSON_DEPTH - 1), "}", 2);
    hs_ok(buf, nonce_lc, "nested 32 levels deep");
    memmove(buf + n + 1, buf + n, strlen(buf + n) + 1);
    buf[n] = '[';
    memmove(buf + n + ZEQ_PROTO_JSON_DEPTH + 1, buf + n + ZEQ_PROTO_JSON_DEPTH,
            strlen(buf + n + ZEQ_PROTO_JSON_DEPTH) + 1);
    buf[n + ZEQ_PROTO_JSON_DEPTH] = ']';
    hs_bad(buf, "nested 33 levels deep");
    hs_ok("{\"clientNonce\":\"000102030405060708090a0b0c0d0e0f"
          "101112131415161718191a1b1c1d1e1f\",\"x\":\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\"}",
          nonce_lc, "brackets inside a string do not nest");

    /* duplicate members the parser reads; an ignored one may repeat */
    hs_bad("{\"clientNonce\":\"000102030405060708090a0b0c0d0e0f"
           "101112131415161718191a1b1c1d1e1f\",\"clientNonce\":\"000102030405060708090a0b0c0d0e0f"
           "101112131415161718191a1b1c1d1e1f\"}", "clientNonce given twice");
    hs_ok("{\"x\":1,\"clientNonce\":\"000102030405060708090a0b0c0d0e0f"
          "101112131415161718191a1b1c1d1e1f\",\"x\":2}", nonce_lc,
          "an ignored member given twice");

    /* UTF-8 (RFC 8259 8.1): valid sequences pass, any invalid one fails;
     * no byte order mark (which cJSON would skip) */
    hs_bad("\xef\xbb\xbf{\"clientNonce\":\"000102030405060708090a0b0c0d0e0f"
           "101112131415161718191a1b1c1d1e1f\"}", "a byte order mark before the object");
    hs_ok("{\"clientNonce\":\"000102030405060708090a0b0c0d0e0f"
          "101112131415161718191a1b1c1d1e1f\",\"x\":\"\xc3\xbc \xe2\x82\xac \xf0\x9d\x84\x9e\"}",
          nonce_lc, "with 2-, 3- and 4-byte UTF-8 in an ignored member");
    {
        static const char *const bad_utf8[] = {
            "\xff", "\x80", "\xc3", "\xc0\xaf", "\xc1\xbf", "\xe0\x80\xaf",
            "\xed\xa0\x80", "\xf0\x80\x80\xaf", "\xf4\x90\x80\x80", "\xf5\x80\x80\x80",
            "\xe2\x82", "\xe2\x28\xa1", NULL};
        int k;
        for (k = 0; bad_utf8[k] != NULL; k++) {
            snprintf(buf, sizeof buf, "{\"clientNonce\":\"%s\",\"x\":\"a%sb\"}",
                     nonce_lc, bad_utf8[k]);
            hs_bad(buf, "invalid UTF-8 in an ignored member");
            snprintf(buf, sizeof buf, "{\"clientNonce\":\"%s\"} %s", nonce_lc, bad_utf8[k]);
            hs_bad(buf, "invalid UTF-8 after the object");
        }
    }

    /* size limit: exactly ZEQ_PROTO_HANDSHAKE_MAX bytes is fine, one more
     * is not (the padding is JSON whitespace, so only the size differs). */
    n = (size_t)snprintf(buf, sizeof buf, "{\"clientNonce\":\"%s\"}", nonce_lc);
    memset(buf + n, ' ', sizeof buf - n);
    {
        unsigned char nonce[ZEQ_PROTO_NONCE_LEN], *expect;
        size_t explen;
        int rc;

        expect = unit_unhex(nonce_lc, &explen);
        memset(nonce, 0, sizeof nonce);
        rc = hs_parse(buf, ZEQ_PROTO_HANDSHAKE_MAX, nonce);
        unit_int(rc, ZEQ_OK, "handshake of exactly %d bytes (padded with "
                             "blanks) is accepted", ZEQ_PROTO_HANDSHAKE_MAX);
        unit_mem(nonce, sizeof nonce, expect, explen,
                 "handshake of exactly %d bytes: nonce bytes",
                 ZEQ_PROTO_HANDSHAKE_MAX);
        free(expect);
    }
    hs_bad_len(buf, ZEQ_PROTO_HANDSHAKE_MAX + 1,
               "a body of 4097 bytes (over the limit)");
    hs_bad_len(buf, ZEQ_PROTO_HANDSHAKE_MAX + 60, "a body of 4156 bytes");
    unit_int(ZEQ_PROTO_HANDSHAKE_MAX, 4096, "the handshake limit is 4 KiB");
}

/* ------------------------------------------------------------------ */
/* session ids */

static void sid(const char *id, int expect, const char *what)
{
    unit_bool(zeq_proto_session_id_valid(id), expect, "session id %s is %s",
              what, expect ? "valid" : "invalid");
}

static void test_session_id(void)
{
    char buf[ZEQ_PROTO_SESSION_ID_MAX + 8];

    sid("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8", 1, "of 43 base64url chars");
    sid("4OHi4-Tl5ufo6err7O3u7_Dx8vP09fb3-Pn6-_z9_v8", 1, "with '-' and '_'");
    sid("a", 1, "\"a\" (1 char)");
    sid("azAZ09-_", 1, "\"azAZ09-_\" (every class)");
    sid("", 0, "\"\" (empty)");
    sid("abc+def", 0, "with '+'");
    sid("abc/def", 0, "with '/'");
    sid("abcdef==", 0, "with '=' padding");
    sid("abc def", 0, "with a blank");
    sid(" abcdef", 0, "with a leading blank");
    sid("abcdef\n", 0, "with a newline");
    sid("abc.def", 0, "with '.'");
    sid("abc%2Fdef", 0, "with '%'");
    sid("abc:def", 0, "with ':'");
    sid("abc~def", 0, "with '~'");
    sid("abc\xc3\xa9", 0, "with a non-ASCII byte");
    sid("abc\x7f", 0, "with DEL");

    memset(buf, 'x', ZEQ_PROTO_SESSION_ID_MAX);
    buf[ZEQ_PROTO_SESSION_ID_MAX] = '\0';
    sid(buf, 1, "of 128 chars (the maximum)");
    buf[ZEQ_PROTO_SESSION_ID_MAX] = 'x';
    buf[ZEQ_PROTO_SESSION_ID_MAX + 1] = '\0';
    sid(buf, 0, "of 129 chars");
    memset(buf, 'x', sizeof buf - 1);
    buf[sizeof buf - 1] = '\0';
    sid(buf, 0, "of 135 chars");
}

/* ------------------------------------------------------------------ */
/* media types */

#define E2E "application/x-zeq-e2e"

static void mt(const char *ct, const char *type, int expect)
{
    size_t n = strlen(ct);
    char *copy = (char *)unit_dup(ct, n + 1);

    unit_bool(zeq_proto_media_type_is(copy, type), expect,
              "media_type_is(\"%s\", \"%s\") is %s", ct, type,
              expect ? "true" : "false");
    free(copy);
}

static void test_media_type(void)
{
    mt(E2E, E2E, 1);
    mt("Application/X-Zeq-E2E", E2E, 1);
    mt("APPLICATION/X-ZEQ-E2E", E2E, 1);
    mt("application/json", "Application/JSON", 1);
    mt(E2E "; charset=utf-8", E2E, 1);
    mt(E2E ";charset=utf-8", E2E, 1);
    mt(E2E ";v=1;x=\"a;b\"", E2E, 1);
    mt("  " E2E "  ", E2E, 1);
    mt("\t" E2E "\t", E2E, 1);
    mt(" " E2E " ; v=1", E2E, 1);
    mt(E2E "\t;v=1", E2E, 1);
    mt(E2E ";", E2E, 1);

    mt("", E2E, 0);
    mt("   ", E2E, 0);
    mt(";" E2E, E2E, 0);
    mt("application/json", E2E, 0);
    mt("application/json; x=" E2E, E2E, 0);
    mt(E2E "-foo", E2E, 0);
    mt(E2E "x", E2E, 0);
    mt(E2E "+json", E2E, 0);
    mt(E2E "/x", E2E, 0);
    mt(E2E " foo", E2E, 0);
    mt("application/x-zeq-e2", E2E, 0);
    mt("application/x-zeq", E2E, 0);
    mt("application/", E2E, 0);
    mt("xapplication/x-zeq-e2e", E2E, 0);
    mt("text/x-zeq-e2e", E2E, 0);
    mt("application /x-zeq-e2e", E2E, 0);
    mt("*/*", E2E, 0);
    mt("application/*", E2E, 0);
    mt("application/json", "application/json", 1);
    mt("application/jsonp", "application/json", 0);
}

/* ------------------------------------------------------------------ */
/* Accept lists */

static void acc(const char *accept, int expect)
{
    size_t n = strlen(accept);
    char *copy = (char *)unit_dup(accept, n + 1);

    unit_bool(zeq_proto_accept_lists(copy, E2E), expect,
              "accept_lists(\"%s\") is %s", accept, expect ? "true" : "false");
    free(copy);
}

static void test_accept(void)
{
    acc(E2E, 1);
    acc("APPLICATION/X-ZEQ-E2E", 1);
    acc("Application/X-Zeq-E2e", 1);
    acc("application/json, " E2E, 1);
    acc(E2E ", application/json", 1);
    acc("text/html,application/xhtml+xml," E2E ",*/*;q=0.8", 1);
    acc("application/json,\t" E2E, 1);
    acc("  application/json ,  " E2E "  ;  q=0.9 ", 1);
    acc(", ," E2E ",", 1);
    acc(E2E ";q=1", 1);
    acc(E2E ";q=1.0", 1);
    acc(E2E ";q=1.000", 1);
    acc(E2E ";q=0.5", 1);
    acc(E2E "; q=0.001", 1);
    acc(E2E ";Q=0.5", 1);
    acc(E2E ";charset=utf-8", 1);
    acc(E2E ";v=1;q=0.7", 1);
    acc("text/html;level=1;q=0.5, " E2E ";charset=utf-8", 1);
    acc("text/html;q=0, " E2E, 1);
    acc(E2E ";x=\"a,b\";q=0.3", 1);

    acc(E2E ";q=0", 0);
    acc(E2E "; q=0", 0);
    acc(E2E ";q=0.0", 0);
    acc(E2E ";q=0.000", 0);
    acc(E2E ";q=0.", 0);
    acc(E2E ";Q=0", 0);
    acc(E2E ";charset=utf-8;q=0", 0);
    acc("application/json, " E2E ";q=0", 0);
    acc(E2E ";q=0, application/json", 0);

    acc("", 0);
    acc(" ", 0);
    acc(",", 0);
    acc("*/*", 0);
    acc("*/*;q=1", 0);
    acc("application/*", 0);
    acc("application/*, */*", 0);
    acc("application/json", 0);
    acc("text/html, application/json;q=0.9", 0);
    acc(E2E "-foo", 0);
    acc(E2E "-foo, text/html", 0);
    acc(E2E "x;q=1", 0);
    acc(E2E "+json", 0);
    acc("application/x-zeq-e2", 0);
    acc("xapplication/x-zeq-e2e", 0);
    acc("text/x-zeq-e2e", 0);
    acc("text/plain; note=" E2E, 0);
    acc("text/plain;a=b;c=" E2E ";q=1", 0);
    acc(E2E " foo", 0);
}

/* ------------------------------------------------------------------ */
/* query_take: removing e2e_session=VALUE from a query string */

#define QP "e2e_session"

/* args is copied into a buffer of exactly its length plus the NUL; value
 * gets valuecap bytes followed by a guard byte that must stay untouched. */
static void qt(const char *args, const char *name, size_t valuecap,
               int expect_rc, const char *expect_args,
               const char *expect_value)
{
    size_t n = strlen(args);
    char *copy = (char *)unit_dup(args, n + 1);
    char *nm = (char *)unit_dup(name, strlen(name) + 1);
    char *value = malloc(valuecap + 1);
    int rc;

    if (!value)
        abort();
    memset(value, '#', valuecap + 1);
    rc = zeq_proto_query_take(copy, nm, value, valuecap);
    unit_int(rc, expect_rc, "query_take(\"%s\", \"%s\", cap %zu): returns %d",
             args, name, valuecap, expect_rc);
    unit_str(copy, expect_args, "query_take(\"%s\", \"%s\", cap %zu): args",
             args, name, valuecap);
    if (expect_value != NULL)
        unit_str(value, expect_value,
                 "query_take(\"%s\", \"%s\", cap %zu): value", args, name,
                 valuecap);
    else if (valuecap > 0)
        unit_int(value[0], '#', "query_take(\"%s\", \"%s\", cap %zu): value "
                 "left alone", args, name, valuecap);
    unit_int(value[valuecap], '#', "query_take(\"%s\", \"%s\", cap %zu): "
             "nothing written past valuecap", args, name, valuecap);
    free(copy);
    free(nm);
    free(value);
}

static void test_query_take(void)
{
    char value[8] = "#######", want[8];
    char big[600], expect[600];
    size_t i;

    /* where the parameter sits */
    qt(QP "=abc", QP, 64, 1, "", "abc");
    qt(QP "=abc&a=1&b=2", QP, 64, 1, "a=1&b=2", "abc");
    qt("a=1&" QP "=abc&b=2", QP, 64, 1, "a=1&b=2", "abc");
    qt("a=1&b=2&" QP "=abc", QP, 64, 1, "a=1&b=2", "abc");
    qt("a=1&" QP "=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8", QP, 129, 1,
       "a=1", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8");

    /* repeated: -2, every item removed (the first value copied) */
    qt(QP "=first&a=1&" QP "=second&b=2&" QP "=third", QP, 64, -2, "a=1&b=2",
       "first");
    qt(QP "=x&" QP "=y", QP, 64, -2, "", "x");
    qt("a=1&" QP "=&" QP "=late", QP, 64, -2, "a=1", "");
    qt(QP "=x&e2e%5Fsession=y", QP, 64, -2, "", "x");

    /* absent: 0 and the query unchanged */
    qt("a=1&b=2", QP, 64, 0, "a=1&b=2", NULL);
    qt("a=1", QP, 64, 0, "a=1", NULL);
    qt("session=abc&e2e=1", QP, 64, 0, "session=abc&e2e=1", NULL);
    qt("E2E_SESSION=abc", QP, 64, 0, "E2E_SESSION=abc", NULL);
    qt("a=" QP "=abc", QP, 64, 0, "a=" QP "=abc", NULL);
    qt("e2e+session=abc", QP, 64, 0, "e2e+session=abc", NULL);
    qt("e2e%20session=abc", QP, 64, 0, "e2e%20session=abc", NULL);
    qt("e2e%5session=abc", QP, 64, 0, "e2e%5session=abc", NULL);
    qt("e2e_session%=abc", QP, 64, 0, "e2e_session%=abc", NULL);
    qt("e2e_session%00=abc", QP, 64, 0, "e2e_session%00=abc", NULL);

    /* the name is percent-decoded: any escape of any of its bytes */
    qt("e2e%5Fsession=abc&a=1", QP, 64, 1, "a=1", "abc");
    qt("e2e%5fsession=abc", QP, 64, 1, "", "abc");
    qt("%65%32%65%5f%73%65%73%73%69%6f%6e=abc", QP, 64, 1, "", "abc");
    qt("a=1&e2e_sessio%6E=abc&b=2", QP, 64, 1, "a=1&b=2", "abc");

    /* a name that extends or ends with the parameter's name stays */
    qt(QP "2=x", QP, 64, 0, QP "2=x", NULL);
    qt(QP "2=x&" QP "=abc&" QP "x=y", QP, 64, 1, QP "2=x&" QP "x=y", "abc");
    qt("x" QP "=1&" QP "=abc", QP, 64, 1, "x" QP "=1", "abc");
    qt(QP "_id=1&" QP "=abc", QP, 64, 1, QP "_id=1", "abc");
    qt("e2e_sessio=1&" QP "=abc", QP, 64, 1, "e2e_sessio=1", "abc");

    /* bare name without '=' is not a NAME=VALUE pair: kept */
    qt(QP, QP, 64, 0, QP, NULL);
    qt(QP "&a=1", QP, 64, 0, QP "&a=1", NULL);
    qt("a=1&" QP, QP, 64, 0, "a=1&" QP, NULL);
    qt(QP "&" QP "=abc", QP, 64, 1, QP, "abc");

    /* empty value */
    qt(QP "=", QP, 64, 1, "", "");
    qt("a=1&" QP "=", QP, 64, 1, "a=1", "");
    qt(QP "=&a=1", QP, 64, 1, "a=1", "");
    qt(QP "=", QP, 1, 1, "", "");

    /* the value is percent-decoded ('+' kept), up to the next '&' */
    qt(QP "=a=b&c=d", QP, 64, 1, "c=d", "a=b");
    qt(QP "=a%26b&c", QP, 64, 1, "c", "a&b");
    qt(QP "=a+b;c", QP, 64, 1, "", "a+b;c");
    qt(QP "=%41%2d%5F", QP, 64, 1, "", "A-_");

    /* a value that does not decode: -1, the item removed */
    qt(QP "=a%2&b=1", QP, 64, -1, "b=1", NULL);
    qt(QP "=a%&b=1", QP, 64, -1, "b=1", NULL);
    qt(QP "=a%zz", QP, 64, -1, "", NULL);
    qt(QP "=a%00b", QP, 64, -1, "", NULL);
    /* decoded, the value fits where its escapes would not */
    qt(QP "=%41%42%43", QP, 4, 1, "", "ABC");

    /* value too long: -1, the pair removed all the same */
    qt(QP "=abcd&a=1", QP, 4, -1, "a=1", NULL);
    qt(QP "=abcd&a=1", QP, 5, 1, "a=1", "abcd");
    qt("a=1&" QP "=abcd", QP, 3, -1, "a=1", NULL);
    qt(QP "=", QP, 0, -1, "", NULL);
    qt(QP "=x", QP, 1, -1, "", NULL);
    qt(QP "=x", QP, 2, 1, "", "x");
    qt(QP "=toolong&" QP "=ok&b=2", QP, 3, -2, "b=2", NULL);
    qt("a=1&" QP "=toolong&b=2&" QP "=ok", QP, 7, -2, "a=1&b=2", NULL);
    qt(QP "=ok&" QP "=toolong", QP, 3, -2, "", "ok");

    /* empty pairs: no leading, trailing or doubled '&' is left behind */
    qt("&&a=1&&" QP "=abc&&b=2&&", QP, 64, 1, "a=1&b=2", "abc");
    qt("&" QP "=abc&", QP, 64, 1, "", "abc");
    qt("a=1&&" QP "=abc", QP, 64, 1, "a=1", "abc");
    qt(QP "=abc&&a=1", QP, 64, 1, "a=1", "abc");
    qt("a=1&" QP "=abc&", QP, 64, 1, "a=1", "abc");
    qt("&&", QP, 64, 0, "", NULL);
    qt("a=1&&b=2", QP, 64, 0, "a=1&b=2", NULL);

    /* empty args, and no args at all */
    qt("", QP, 64, 0, "", NULL);
    unit_int(zeq_proto_query_take(NULL, QP, value, sizeof value), 0,
             "query_take(NULL args): returns 0");
    unit_str(value, "#######", "query_take(NULL args): value left alone");

    /* many pairs, the parameter after each of them in turn */
    for (i = 0; i <= 40; i += 8) {
        size_t k, o = 0, e = 0;
        for (k = 0; k <= 40; k++) {
            if (k == i) {
                o += (size_t)snprintf(big + o, sizeof big - o, "%s" QP "=v%zu",
                                      o ? "&" : "", k);
            }
            o += (size_t)snprintf(big + o, sizeof big - o, "%sk%zu=%zu",
                                  o ? "&" : "", k, k);
            e += (size_t)snprintf(expect + e, sizeof expect - e, "%sk%zu=%zu",
                                  e ? "&" : "", k, k);
        }
        snprintf(want, sizeof want, "v%zu", i);
        qt(big, QP, 64, 1, expect, want);
    }
}

/* ------------------------------------------------------------------ */
/* JSON strings (the module's error messages) */

static void esc(const char *in, const char *want, const char *what)
{
    size_t n = strlen(in);
    char *src = (char *)unit_dup(in, n + 1);
    char *out = malloc(2 * n + 2);

    memset(out, 'X', 2 * n + 2);
    unit_int((long long)zeq_proto_json_escape(src, out), (long long)strlen(want),
             "json_escape %s: length", what);
    unit_str(out, want, "json_escape %s", what);
    unit_int(out[2 * n + 1], 'X', "json_escape %s: nothing past 2n + 1 bytes", what);
    free(src);
    free(out);
}

static void test_json_escape(void)
{
    esc("", "", "the empty string");
    esc("plain text", "plain text", "ASCII unchanged");
    esc("a \"quoted\" \\ path", "a \\\"quoted\\\" \\\\ path",
        "quotes and backslashes escaped");
    esc("\"\"\"", "\\\"\\\"\\\"", "only quotes: twice the length");
    esc("tab\there\nnl\x7f del", "tab?here?nl? del", "controls and DEL replaced");
    esc("caf\xc3\xa9", "caf??", "bytes above 0x7f replaced, one '?' each");
}

int main(void)
{
    test_hex();
    test_b64url();
    test_handshake();
    test_session_id();
    test_media_type();
    test_accept();
    test_query_take();
    test_json_escape();
    return unit_done();
}
