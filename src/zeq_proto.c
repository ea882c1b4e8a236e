/* Pure parsers and encoders of protocol v1; see zeq_proto.h. */
#include "zeq_proto.h"

#include <string.h>
#include <cjson/cJSON.h>

static int zeq_proto_hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

int zeq_proto_hex_decode(const char *hex, size_t hexlen,
                         unsigned char *out, size_t outlen)
{
    size_t i;

    if (hex == NULL || hexlen != 2 * outlen) {
        return ZEQ_ERR_BAD;
    }
    for (i = 0; i < outlen; i++) {
        int hi = zeq_proto_hexval(hex[2 * i]);
        int lo = zeq_proto_hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return ZEQ_ERR_BAD;
        }
        out[i] = (unsigned char)((hi << 4) | lo);
    }
    return ZEQ_OK;
}

void zeq_proto_hex_encode(const unsigned char *in, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    size_t i;

    for (i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 0x0f];
    }
    out[2 * len] = '\0';
}

size_t zeq_proto_b64url_len(size_t len)
{
    return (len / 3) * 4 + (len % 3 == 0 ? 0 : len % 3 + 1);
}

void zeq_proto_b64url_encode(const unsigned char *in, size_t len, char *out)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t i = 0;
    char *o = out;

    while (len - i >= 3) {
        unsigned long v = ((unsigned long)in[i] << 16)
                          | ((unsigned long)in[i + 1] << 8) | in[i + 2];
        *o++ = alphabet[(v >> 18) & 63];
        *o++ = alphabet[(v >> 12) & 63];
        *o++ = alphabet[(v >> 6) & 63];
        *o++ = alphabet[v & 63];
        i += 3;
    }
    if (len - i == 1) {
        unsigned long v = (unsigned long)in[i] << 16;
        *o++ = alphabet[(v >> 18) & 63];
        *o++ = alphabet[(v >> 12) & 63];
    }
    else if (len - i == 2) {
        unsigned long v = ((unsigned long)in[i] << 16)
                          | ((unsigned long)in[i + 1] << 8);
        *o++ = alphabet[(v >> 18) & 63];
        *o++ = alphabet[(v >> 12) & 63];
        *o++ = alphabet[(v >> 6) & 63];
    }
    *o = '\0';
}

int zeq_proto_b64url_decode(const char *in, size_t inlen, unsigned char *out,
                            size_t outcap, size_t *outlen)
{
    size_t i, o = 0, need;
    unsigned long acc = 0;
    int bits = 0;

    if (inlen % 4 == 1) {
        return ZEQ_ERR_BAD;
    }
    need = inlen / 4 * 3 + (inlen % 4 ? inlen % 4 - 1 : 0);
    if (need > outcap) {
        return ZEQ_ERR_BAD;
    }
    for (i = 0; i < inlen; i++) {
        char c = in[i];
        int v;
        if (c >= 'A' && c <= 'Z') {
            v = c - 'A';
        }
        else if (c >= 'a' && c <= 'z') {
            v = c - 'a' + 26;
        }
        else if (c >= '0' && c <= '9') {
            v = c - '0' + 52;
        }
        else if (c == '-') {
            v = 62;
        }
        else if (c == '_') {
            v = 63;
        }
        else {
            return ZEQ_ERR_BAD;     /* no padding, no other alphabet */
        }
        acc = (acc << 6) | (unsigned long)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1UL << bits) - 1;
        }
    }
    /* The bits left over must be zero: one encoding for each input. */
    if (acc != 0) {
        return ZEQ_ERR_BAD;
    }
    *outlen = o;
    return ZEQ_OK;
}

/* The length of the UTF-8 sequence at s[0..left) (RFC 3629: shortest
 * form, no surrogates, at most U+10FFFF), or 0 when there is none. */
static size_t zeq_proto_utf8_len(const unsigned char *s, size_t left)
{
    unsigned char lo = 0x80, hi = 0xbf;
    size_t n, i;

    if (s[0] < 0x80) {
        return 1;
    }
    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        n = 2;
    }
    else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        n = 3;
        lo = s[0] == 0xe0 ? 0xa0 : 0x80;      /* overlong */
        hi = s[0] == 0xed ? 0x9f : 0xbf;      /* surrogates */
    }
    else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        n = 4;
        lo = s[0] == 0xf0 ? 0x90 : 0x80;      /* overlong */
        hi = s[0] == 0xf4 ? 0x8f : 0xbf;      /* over U+10FFFF */
    }
    else {
        return 0;
    }
    if (left < n || s[1] < lo || s[1] > hi) {
        return 0;
    }
    for (i = 2; i < n; i++) {
        if (s[i] < 0x80 || s[i] > 0xbf) {
            return 0;
        }
    }
    return n;
}

/* True when a JSON text is UTF-8 (RFC 8259 section 8.1) without control
 * characters but its four blanks between tokens (cJSON would take any
 * byte up to 0x20 for a blank, and control characters inside strings),
 * no string in it holds the escape \u0000 (a NUL would cut the C string
 * cJSON makes of a member short of what the client sent: "64 hex
 * digits\u0000x"), and its arrays and objects nest at most
 * ZEQ_PROTO_JSON_DEPTH deep (a limit of the protocol's own, not whatever
 * cJSON was built with). */
static int zeq_proto_json_text_ok(const unsigned char *s, size_t len)
{
    size_t i = 0, n;
    int in_string = 0, depth = 0;

    while (i < len) {
        if (s[i] < 0x20 && (in_string || (s[i] != '\t' && s[i] != '\n'
                                          && s[i] != '\r'))) {
            return 0;
        }
        if (!in_string && (s[i] == '[' || s[i] == '{')
            && ++depth > ZEQ_PROTO_JSON_DEPTH) {
            return 0;
        }
        if (!in_string && (s[i] == ']' || s[i] == '}') && depth > 0) {
            depth--;
        }
        if (in_string && s[i] == '\\' && i + 1 < len && s[i + 1] < 0x80) {
            if (s[i + 1] == 'u' && len - i >= 6
                && memcmp(s + i + 2, "0000", 4) == 0) {
                return 0;
            }
            i += 2;       /* the escaped character (cJSON checks the rest) */
            continue;
        }
        if (s[i] == '"') {
            in_string = !in_string;
        }
        n = zeq_proto_utf8_len(s + i, len - i);
        if (n == 0) {
            return 0;
        }
        i += n;
    }
    return 1;
}

/* Parses a JSON text of at most ZEQ_PROTO_HANDSHAKE_MAX bytes, UTF-8
 * without NUL (escaped or not), that is one value with nothing but
 * blanks around it: no byte order mark either, which cJSON would skip
 * (RFC 8259 section 8.1: senders MUST NOT add one). */
static cJSON *zeq_proto_json(const char *body, size_t len)
{
    cJSON *root;
    const char *end = NULL;

    if (body == NULL || len == 0 || len > ZEQ_PROTO_HANDSHAKE_MAX
        || memchr(body, '\0', len) != NULL
        || (len >= 3 && memcmp(body, "\xef\xbb\xbf", 3) == 0)
        || !zeq_proto_json_text_ok((const unsigned char *)body, len)) {
        return NULL;
    }
    /* (cJSON's own require_null_terminated would reject every buffer
     * without a NUL.) */
    root = cJSON_ParseWithLengthOpts(body, len, &end, 0);
    if (root == NULL) {
        return NULL;
    }
    while (end != NULL && end < body + len
           && (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')) {
        end++;
    }
    if (end != body + len) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

/* True when v is an integer. Every double of magnitude 2^53 or more is
 * one; the others fit a long long (a cast of a larger one would be
 * undefined). */
static int zeq_proto_integral(double v)
{
    if (v != v || v - v != 0) {
        return 0;                       /* NaN, or infinite */
    }
    if (v >= 9007199254740992.0 || v <= -9007199254740992.0) {
        return 1;
    }
    return v == (double)(long long)v;
}

/* True when a member the handshake reads is given more than once: JSON
 * parsers differ on which one counts (RFC 8259 section 4), so none is
 * taken. */
static int zeq_proto_duplicates(const cJSON *obj)
{
    static const char *const read[] = {"version", "psk", "clientNonce",
                                       "clientKey", NULL};
    int seen[4] = {0, 0, 0, 0}, k;
    const cJSON *item;

    cJSON_ArrayForEach(item, obj) {
        for (k = 0; read[k] != NULL; k++) {
            if (item->string != NULL && strcmp(item->string, read[k]) == 0
                && seen[k]++ > 0) {
                return 1;
            }
        }
    }
    return 0;
}

int zeq_proto_handshake_parse(const char *body, size_t len,
                              zeq_proto_handshake *hs)
{
    cJSON *root = zeq_proto_json(body, len);
    const cJSON *item;
    int rv = ZEQ_ERR_BAD;

    memset(hs, 0, sizeof(*hs));
    if (root == NULL) {
        return ZEQ_ERR_BAD;
    }
    if (!cJSON_IsObject(root) || zeq_proto_duplicates(root)) {
        goto done;
    }
    hs->version = 1;
    item = cJSON_GetObjectItemCaseSensitive(root, "version");
    if (item != NULL) {
        double v = item->valuedouble;
        if (!cJSON_IsNumber(item) || !zeq_proto_integral(v)) {
            goto done;          /* not an integer */
        }
        if (item->valuedouble != 1 && item->valuedouble != 2) {
            rv = ZEQ_ERR_VERSION;
            goto done;
        }
        hs->version = (int)item->valuedouble;
    }
    item = cJSON_GetObjectItemCaseSensitive(root, "psk");
    if (item != NULL) {
        if (!cJSON_IsBool(item)) {
            goto done;
        }
        hs->psk = cJSON_IsTrue(item) ? 1 : 0;
    }
    item = cJSON_GetObjectItemCaseSensitive(root, "clientNonce");
    if (!cJSON_IsString(item) || item->valuestring == NULL
        || zeq_proto_hex_decode(item->valuestring, strlen(item->valuestring),
                                hs->client_nonce, ZEQ_PROTO_NONCE_LEN)
               != ZEQ_OK) {
        goto done;
    }
    if (hs->version == 2) {
        size_t n = 0;
        item = cJSON_GetObjectItemCaseSensitive(root, "clientKey");
        if (!cJSON_IsString(item) || item->valuestring == NULL
            || zeq_proto_b64url_decode(item->valuestring,
                                       strlen(item->valuestring),
                                       hs->client_key, sizeof(hs->client_key),
                                       &n) != ZEQ_OK
            || n != ZEQ_PROTO_POINT_LEN) {
            goto done;
        }
    }
    rv = ZEQ_OK;
done:
    cJSON_Delete(root);
    return rv;
}

/* Adds name: the unpadded base64url of len bytes. */
static int zeq_proto_add_b64(cJSON *obj, const char *name,
                             const unsigned char *in, size_t len)
{
    char buf[2 * ZEQ_PROTO_POINT_LEN + 4];

    if (zeq_proto_b64url_len(len) + 1 > sizeof(buf)) {
        return 0;
    }
    zeq_proto_b64url_encode(in, len, buf);
    return cJSON_AddStringToObject(obj, name, buf) != NULL;
}

char *zeq_proto_answer_json(const zeq_proto_answer *a)
{
    cJSON *obj = cJSON_CreateObject();
    char nonce[2 * ZEQ_PROTO_NONCE_LEN + 1];
    char *text = NULL;
    int ok;

    if (obj == NULL) {
        return NULL;
    }
    zeq_proto_hex_encode(a->server_nonce, ZEQ_PROTO_NONCE_LEN, nonce);
    ok = cJSON_AddNumberToObject(obj, "version", a->version) != NULL
         && cJSON_AddStringToObject(obj, "sessionId", a->session_id) != NULL
         && cJSON_AddStringToObject(obj, "serverNonce", nonce) != NULL
         && (a->version != 2
             || zeq_proto_add_b64(obj, "serverKey", a->server_key,
                                  ZEQ_PROTO_POINT_LEN))
         && cJSON_AddNumberToObject(obj, "expiresIn", a->expires_in) != NULL
         && (a->signature == NULL
             || (zeq_proto_add_b64(obj, "signature", a->signature,
                                   ZEQ_PROTO_SIG_LEN)
                 && zeq_proto_add_b64(obj, "signer", a->signer,
                                      ZEQ_PROTO_SIGNER_LEN)));
    if (ok) {
        text = cJSON_PrintUnformatted(obj);
    }
    cJSON_Delete(obj);
    return text;
}

void zeq_proto_free(char *text)
{
    cJSON_free(text);
}

int zeq_proto_seq_parse(const char *s, unsigned long long *seq)
{
    unsigned long long v = 0;
    size_t i;

    if (s == NULL || s[0] == '\0' || (s[0] == '0' && s[1] != '\0')) {
        return ZEQ_ERR_BAD;
    }
    for (i = 0; s[i] != '\0'; i++) {
        if (s[i] < '0' || s[i] > '9' || i >= 16) {
            return ZEQ_ERR_BAD;
        }
        v = v * 10 + (unsigned long long)(s[i] - '0');
    }
    if (v > ZEQ_PROTO_SEQ_MAX) {
        return ZEQ_ERR_BAD;
    }
    *seq = v;
    return ZEQ_OK;
}

size_t zeq_proto_target_without(const char *target, const char *const *names,
                                char *out)
{
    const char *q = strchr(target, '?');
    size_t o, kept = 0;
    const char *item;

    if (q == NULL) {
        o = strlen(target);
        memcpy(out, target, o + 1);
        return o;
    }
    o = (size_t)(q - target);
    memcpy(out, target, o);
    out[o++] = '?';
    item = q + 1;
    for (;;) {
        const char *amp = strchr(item, '&');
        size_t len = amp ? (size_t)(amp - item) : strlen(item);
        const char *eq = memchr(item, '=', len);
        size_t nlen = eq ? (size_t)(eq - item) : len;
        int drop = 0, k;

        for (k = 0; names[k] != NULL; k++) {
            if (strlen(names[k]) == nlen && memcmp(item, names[k], nlen) == 0) {
                drop = 1;
            }
        }
        if (!drop) {
            if (kept++ > 0) {
                out[o++] = '&';
            }
            memcpy(out + o, item, len);
            o += len;
        }
        if (amp == NULL) {
            break;
        }
        item = amp + 1;
    }
    if (o == (size_t)(q - target) + 1) {
        o--;                         /* nothing remains: no '?' */
    }
    out[o] = '\0';
    return o;
}

int zeq_proto_session_id_valid(const char *id)
{
    size_t n = 0;

    if (id == NULL) {
        return 0;
    }
    for (; id[n] != '\0'; n++) {
        char c = id[n];
        if (n >= ZEQ_PROTO_SESSION_ID_MAX
            || !((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
                 || (c >= '0' && c <= '9') || c == '-' || c == '_')) {
            return 0;
        }
    }
    return n > 0;
}

static int zeq_proto_is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static char zeq_proto_lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* Compares [s, s+n) case-insensitively with the NUL-terminated type. */
static int zeq_proto_token_eq(const char *s, size_t n, const char *type)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (type[i] == '\0' || zeq_proto_lower(s[i]) != zeq_proto_lower(type[i])) {
            return 0;
        }
    }
    return type[n] == '\0';
}

/* Trims blanks around [*s, *s + *n). */
static void zeq_proto_trim(const char **s, size_t *n)
{
    while (*n > 0 && zeq_proto_is_blank(**s)) {
        (*s)++;
        (*n)--;
    }
    while (*n > 0 && zeq_proto_is_blank((*s)[*n - 1])) {
        (*n)--;
    }
}

int zeq_proto_media_type_is(const char *content_type, const char *type)
{
    const char *end;
    size_t n;

    if (content_type == NULL || type == NULL) {
        return 0;
    }
    end = strchr(content_type, ';');
    n = end ? (size_t)(end - content_type) : strlen(content_type);
    zeq_proto_trim(&content_type, &n);
    return n > 0 && zeq_proto_token_eq(content_type, n, type);
}

/* Parses the q parameter of one Accept element's parameter list
 * [p, p + n); returns 0 when q is zero (0, 0.0, 0.000), else 1. */
static int zeq_proto_q_positive(const char *p, size_t n)
{
    while (n > 0) {
        const char *semi = memchr(p, ';', n);
        size_t len = semi ? (size_t)(semi - p) : n;
        const char *param = p;
        size_t plen = len;

        zeq_proto_trim(&param, &plen);
        if (plen >= 2 && zeq_proto_lower(param[0]) == 'q') {
            const char *v = param + 1;
            size_t vlen = plen - 1;
            zeq_proto_trim(&v, &vlen);
            if (vlen > 0 && v[0] == '=') {
                size_t i;
                v++;
                vlen--;
                zeq_proto_trim(&v, &vlen);
                for (i = 0; i < vlen; i++) {
                    if (v[i] != '0' && v[i] != '.') {
                        return 1;
                    }
                }
                return 0;
            }
        }
        if (semi == NULL) {
            break;
        }
        p = semi + 1;
        n -= len + 1;
    }
    return 1;
}

int zeq_proto_accept_lists(const char *accept, const char *type)
{
    const char *p = accept;

    if (accept == NULL || type == NULL) {
        return 0;
    }
    while (*p != '\0') {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        const char *semi = memchr(p, ';', len);
        const char *mt = p;
        size_t mtlen = semi ? (size_t)(semi - p) : len;

        zeq_proto_trim(&mt, &mtlen);
        if (mtlen > 0 && zeq_proto_token_eq(mt, mtlen, type)
            && (semi == NULL
                || zeq_proto_q_positive(semi + 1,
                                        len - (size_t)(semi + 1 - p)))) {
            return 1;
        }
        if (comma == NULL) {
            break;
        }
        p = comma + 1;
    }
    return 0;
}

/* Decodes the %XX escapes of [s, s+len) into out (cap bytes, a NUL
 * after): the decoded length, or -1 when an escape is malformed, the
 * result holds a NUL byte or does not fit. '+' stays '+'. Nothing is
 * written unless the whole of it decodes and fits. */
static long zeq_proto_pct_decode(const char *s, size_t len, char *out,
                                 size_t cap)
{
    int pass;

    for (pass = 0; pass < 2; pass++) {
        size_t i, o = 0;
        for (i = 0; i < len; i++) {
            int c = (unsigned char)s[i];
            if (c == '%') {
                int hi, lo;
                if (i + 2 >= len) {
                    return -1;
                }
                hi = zeq_proto_hexval(s[i + 1]);
                lo = zeq_proto_hexval(s[i + 2]);
                if (hi < 0 || lo < 0) {
                    return -1;
                }
                c = hi * 16 + lo;
                i += 2;
            }
            if (c == 0 || o + 1 >= cap) {
                return -1;
            }
            if (pass == 1) {
                out[o] = (char)c;
            }
            o++;
        }
        if (cap == 0) {
            return -1;
        }
        if (pass == 1) {
            out[o] = '\0';
            return (long)o;
        }
    }
    return -1;
}

/* True when the item's name [s, s+len), percent-decoded, is name. */
static int zeq_proto_name_is(const char *s, size_t len, const char *name)
{
    char buf[ZEQ_PROTO_QUERY_NAME_MAX + 1];
    long n;

    if (len > 3 * ZEQ_PROTO_QUERY_NAME_MAX) {
        return 0;
    }
    n = zeq_proto_pct_decode(s, len, buf, sizeof(buf));
    return n >= 0 && strcmp(buf, name) == 0;
}

int zeq_proto_query_take(char *args, const char *name, char *value,
                         size_t valuecap)
{
    char *in = args, *out = args;
    int found = 0, count = 0;

    if (args == NULL) {
        return 0;
    }
    while (*in != '\0') {
        char *amp = strchr(in, '&');
        size_t len = amp ? (size_t)(amp - in) : strlen(in);
        char *eq = memchr(in, '=', len);

        if (eq != NULL && zeq_proto_name_is(in, (size_t)(eq - in), name)) {
            if (++count == 1) {
                found = zeq_proto_pct_decode(eq + 1,
                                             len - (size_t)(eq + 1 - in),
                                             value, valuecap) < 0 ? -1 : 1;
            }
        }
        else if (len > 0) {
            if (out != args) {
                *out++ = '&';
            }
            memmove(out, in, len);
            out += len;
        }
        in += len;
        if (*in == '&') {
            in++;
        }
    }
    *out = '\0';
    return count > 1 ? -2 : found;
}

int zeq_proto_opening_params(const char *query, const char **seq,
                             size_t *seqlen, const char **seal,
                             size_t *seallen)
{
    static const char *const names[3] = {"e2e_session", "e2e_seq",
                                         "e2e_seal"};
    const char **value[3] = {NULL, seq, seal};
    size_t *vlen[3] = {NULL, seqlen, seallen};
    int exact[3] = {0, 0, 0}, decoded[3] = {0, 0, 0}, k;
    const char *item = query;

    *seq = *seal = NULL;
    *seqlen = *seallen = 0;
    for (;;) {
        size_t len = strcspn(item, "&");
        const char *eq = memchr(item, '=', len);
        size_t nlen = eq ? (size_t)(eq - item) : len;

        for (k = 0; k < 3; k++) {
            if (strlen(names[k]) == nlen && memcmp(item, names[k], nlen) == 0) {
                exact[k]++;
                if (value[k] != NULL) {
                    *value[k] = eq ? eq + 1 : item + len;
                    *vlen[k] = eq ? len - nlen - 1 : 0;
                }
            }
            /* As zeq_proto_query_take reads names: decoded, with a '='. */
            if (eq != NULL && zeq_proto_name_is(item, nlen, names[k])) {
                decoded[k]++;
            }
        }
        if (item[len] == '\0') {
            break;
        }
        item += len + 1;
    }
    for (k = 0; k < 3; k++) {
        if ((decoded[k] > 2 ? 2 : decoded[k])
            != (exact[k] > 2 ? 2 : exact[k])) {
            exact[k] = 2;
        }
    }
    return exact[0] == 1 && exact[1] <= 1 && exact[2] <= 1 ? ZEQ_OK
                                                           : ZEQ_ERR_BAD;
}

size_t zeq_proto_json_escape(const char *s, char *out)
{
    size_t o = 0;

    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        }
        else if (c < 0x20 || c >= 0x7f) {
            out[o++] = '?';
        }
        else {
            out[o++] = (char)c;
        }
    }
    out[o] = '\0';
    return o;
}
