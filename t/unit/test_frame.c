/* Unit tests of src/zeq_frame.c: the incremental RFC 6455 frame reader
 * (control frames, reassembled messages, protocol errors), the header
 * writer, masking and close frames.
 *
 * Frames are built here by a small encoder of the test's own (minimal
 * length encoding, masking by hand) or written out in hex, so the reader is
 * never checked against the module's writer alone. Every stream is fed in
 * several ways: whole, byte by byte, in chunks of pseudo-random sizes
 * (a fixed xorshift seed, so failures are reproducible) and in chunks with
 * a single call of next per feed (events left buffered across feeds). Each
 * chunk is copied into a buffer of exactly its length and freed right
 * after the feed, so a reader that reads past a chunk or keeps a pointer to
 * it shows up under a memory checker. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zeq_frame.h"
#include "unit.h"

#define KIB 1024u
#define MIB (1024u * 1024u)

/* ------------------------------------------------------------------ */
/* Byte strings and the test's own frame encoder */

struct bytes {
    unsigned char *p;
    size_t len, cap;
};

static void b_put(struct bytes *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        size_t ncap = b->cap ? b->cap : 64;
        unsigned char *np;

        while (ncap < b->len + n)
            ncap *= 2;
        np = realloc(b->p, ncap);
        if (!np)
            abort();
        b->p = np;
        b->cap = ncap;
    }
    if (n)
        memcpy(b->p + b->len, p, n);
    b->len += n;
}

static void b_hex(struct bytes *b, const char *hex)
{
    size_t n;
    unsigned char *raw = unit_unhex(hex, &n);

    b_put(b, raw, n);
    free(raw);
}

static void b_free(struct bytes *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

/* Appends a frame: first byte b0 (FIN, RSV bits and opcode as given), the
 * length in its minimal encoding, then the mask key and the payload masked
 * with it when mask is not NULL. */
static void b_frame(struct bytes *b, unsigned b0, const unsigned char *mask,
                    const unsigned char *payload, size_t len)
{
    unsigned char h[14];
    size_t n = 2, i;
    unsigned m = mask ? 0x80u : 0u;

    h[0] = (unsigned char)b0;
    if (len < 126) {
        h[1] = (unsigned char)(m | len);
    }
    else if (len < 65536) {
        h[1] = (unsigned char)(m | 126);
        h[2] = (unsigned char)(len >> 8);
        h[3] = (unsigned char)len;
        n = 4;
    }
    else {
        uint64_t l = len;
        h[1] = (unsigned char)(m | 127);
        for (i = 0; i < 8; i++)
            h[2 + i] = (unsigned char)(l >> (56 - 8 * i));
        n = 10;
    }
    if (mask) {
        memcpy(h + n, mask, 4);
        n += 4;
    }
    b_put(b, h, n);
    for (i = 0; i < len; i++) {
        unsigned char c = payload[i];
        if (mask)
            c ^= mask[i % 4];
        b_put(b, &c, 1);
    }
}

/* ------------------------------------------------------------------ */
/* Recorded events */

struct rec {
    int type, opcode, code;
    unsigned char *data;
    size_t len;
};

struct recs {
    struct rec *v;
    size_t n, cap;
    int after_error;    /* CONTROL or MESSAGE events seen after an ERROR */
    int errors_seen;
    int feed_rc;        /* first non-zero return of feed, else 0 */
};

static void recs_add(struct recs *r, const zeq_frame_event *ev)
{
    struct rec *e;

    if (r->n == r->cap) {
        size_t ncap = r->cap ? 2 * r->cap : 16;
        struct rec *nv = realloc(r->v, ncap * sizeof *nv);
        if (!nv)
            abort();
        r->v = nv;
        r->cap = ncap;
    }
    e = &r->v[r->n++];
    e->type = ev->type;
    e->opcode = ev->opcode;
    e->code = ev->close_code;
    e->len = ev->type == ZEQ_FRAME_EV_ERROR ? 0 : ev->len;
    e->data = unit_dup(ev->type == ZEQ_FRAME_EV_ERROR ? "" : (const void *)ev->data,
                       e->len);
}

static void recs_free(struct recs *r)
{
    size_t i;

    for (i = 0; i < r->n; i++)
        free(r->v[i].data);
    free(r->v);
    memset(r, 0, sizeof *r);
}

/* Takes events until NEED_MORE (at most limit of them). Events are copied
 * at once: their pointers only last until the next call. After the first
 * ERROR, further ERRORs are not recorded (the reader may repeat it) but a
 * CONTROL or MESSAGE is, and is counted in after_error. */
static void drain(zeq_frame_reader *rd, struct recs *r, size_t limit)
{
    zeq_frame_event ev;
    size_t taken = 0;

    while (taken < limit) {
        zeq_frame_reader_next(rd, &ev);
        if (ev.type == ZEQ_FRAME_NEED_MORE)
            return;
        taken++;
        if (r->errors_seen && ev.type != ZEQ_FRAME_EV_ERROR)
            r->after_error++;
        if (ev.type == ZEQ_FRAME_EV_ERROR) {
            if (r->errors_seen++)
                return;
            recs_add(r, &ev);
            return;
        }
        recs_add(r, &ev);
    }
}

/* ------------------------------------------------------------------ */
/* Feeding */

enum feed_mode { FEED_WHOLE, FEED_BYTES, FEED_RANDOM, FEED_LAZY };

static unsigned prng(unsigned *s)
{
    unsigned x = *s;

    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

/* Feeds stream to a fresh reader in chunks (WHOLE: one; BYTES: 1 byte;
 * RANDOM and LAZY: 1..maxchunk bytes from seed; LAZY takes one event per
 * feed, the rest at the end) and records the events. pending_end gets
 * zeq_frame_reader_pending once everything is taken. */
static void feed_stream(const unsigned char *s, size_t len, size_t max_message,
                        enum feed_mode mode, unsigned seed, size_t maxchunk,
                        struct recs *r, int *pending_end)
{
    zeq_frame_reader rd;
    size_t off = 0;
    unsigned st = seed;

    memset(r, 0, sizeof *r);
    zeq_frame_reader_init(&rd, max_message);
    while (off < len) {
        size_t n = len - off;
        unsigned char *chunk;
        int rc;

        if (mode == FEED_BYTES)
            n = 1;
        else if (mode == FEED_RANDOM || mode == FEED_LAZY) {
            size_t want = 1 + prng(&st) % maxchunk;
            if (want < n)
                n = want;
        }
        chunk = unit_dup(s + off, n);
        rc = zeq_frame_reader_feed(&rd, chunk, n);
        free(chunk);
        if (rc != 0 && r->feed_rc == 0)
            r->feed_rc = rc;
        off += n;
        drain(&rd, r, mode == FEED_LAZY ? 1 : (size_t)-1);
    }
    drain(&rd, r, (size_t)-1);
    *pending_end = zeq_frame_reader_pending(&rd);
    zeq_frame_reader_free(&rd);
}

/* ------------------------------------------------------------------ */
/* Expected events */

struct want {
    int type, opcode, code;
    const unsigned char *data;
    size_t len;
};

static struct want w_msg(int opcode, const void *data, size_t len)
{
    struct want w = { ZEQ_FRAME_EV_MESSAGE, opcode, 0,
                      (const unsigned char *)data, len };
    return w;
}

static struct want w_ctl(int opcode, const void *raw, size_t len)
{
    struct want w = { ZEQ_FRAME_EV_CONTROL, opcode, 0,
                      (const unsigned char *)raw, len };
    return w;
}

static struct want w_err(int code)
{
    struct want w = { ZEQ_FRAME_EV_ERROR, 0, code, NULL, 0 };
    return w;
}

static const char *type_name(int t)
{
    switch (t) {
    case ZEQ_FRAME_NEED_MORE: return "NEED_MORE";
    case ZEQ_FRAME_EV_CONTROL: return "CONTROL";
    case ZEQ_FRAME_EV_MESSAGE: return "MESSAGE";
    case ZEQ_FRAME_EV_ERROR: return "ERROR";
    }
    return "?";
}

static const char *mode_name(enum feed_mode m, size_t maxchunk, char *buf,
                             size_t cap)
{
    switch (m) {
    case FEED_WHOLE: return "whole";
    case FEED_BYTES: return "byte by byte";
    case FEED_RANDOM:
        snprintf(buf, cap, "random chunks of 1..%zu", maxchunk);
        return buf;
    case FEED_LAZY:
        snprintf(buf, cap, "random chunks of 1..%zu, one next per feed",
                 maxchunk);
        return buf;
    }
    return "?";
}

static void check_recs(const struct recs *r, int pending_end,
                       const struct want *w, size_t nw, const char *what,
                       const char *how)
{
    size_t i;
    int ends_in_error = nw > 0 && w[nw - 1].type == ZEQ_FRAME_EV_ERROR;

    unit_int(r->feed_rc, 0, "%s (%s): feed returns 0", what, how);
    unit_int((long long)r->n, (long long)nw, "%s (%s): number of events",
             what, how);
    for (i = 0; i < r->n && i < nw; i++) {
        const struct rec *g = &r->v[i];

        if (!unit_int(g->type, w[i].type, "%s (%s): event %zu is %s", what,
                      how, i + 1, type_name(w[i].type)))
            continue;
        if (w[i].type == ZEQ_FRAME_EV_ERROR) {
            unit_int(g->code, w[i].code, "%s (%s): event %zu close code",
                     what, how, i + 1);
            continue;
        }
        unit_int(g->opcode, w[i].opcode, "%s (%s): event %zu opcode", what,
                 how, i + 1);
        unit_mem(g->data, g->len, w[i].data, w[i].len,
                 "%s (%s): event %zu %s", what, how, i + 1,
                 w[i].type == ZEQ_FRAME_EV_CONTROL ? "raw frame bytes"
                                                   : "payload");
    }
    if (ends_in_error)
        unit_int(r->after_error, 0,
                 "%s (%s): no CONTROL or MESSAGE after the ERROR", what, how);
    else
        unit_bool(pending_end, 0, "%s (%s): nothing pending at the end",
                  what, how);
}

/* Appended to every stream that must end in an ERROR: a good text frame
 * and a ping, of which nothing may come out. */
#define TRAILER "810548656c6c6f8900"

/* Feeds stream in every mode and checks the events against w. Byte by
 * byte feeding is skipped for streams over bytes_limit. */
static void expect_events_lim(const char *what, const struct bytes *s,
                              size_t max_message, const struct want *w,
                              size_t nw, size_t bytes_limit)
{
    static const struct {
        enum feed_mode mode;
        unsigned seed;
        size_t maxchunk;
    } plan[] = {
        { FEED_WHOLE, 0, 0 },
        { FEED_BYTES, 0, 1 },
        { FEED_RANDOM, 0x2545f491u, 7 },
        { FEED_RANDOM, 0x9e3779b9u, 300 },
        { FEED_RANDOM, 0x1b873593u, 70000 },
        { FEED_LAZY, 0x85ebca6bu, 5 },
        { FEED_LAZY, 0xc2b2ae35u, 4096 },
    };
    struct bytes t = { 0 };
    size_t i;

    b_put(&t, s->p, s->len);
    if (nw > 0 && w[nw - 1].type == ZEQ_FRAME_EV_ERROR)
        b_hex(&t, TRAILER);
    for (i = 0; i < sizeof plan / sizeof plan[0]; i++) {
        struct recs r;
        char buf[96];
        int pend;

        if (plan[i].mode == FEED_BYTES && t.len > bytes_limit)
            continue;
        feed_stream(t.p, t.len, max_message, plan[i].mode, plan[i].seed,
                    plan[i].maxchunk, &r, &pend);
        check_recs(&r, pend, w, nw, what,
                   mode_name(plan[i].mode, plan[i].maxchunk, buf, sizeof buf));
        recs_free(&r);
    }
    b_free(&t);
}

static void expect_events(const char *what, const struct bytes *s,
                          size_t max_message, const struct want *w, size_t nw)
{
    expect_events_lim(what, s, max_message, w, nw, (size_t)-1);
}

/* A stream given in hex that must give one ERROR with code, and nothing
 * else. */
static void expect_error_hex(const char *what, const char *hex,
                             size_t max_message, int code)
{
    struct bytes s = { 0 };
    struct want w = w_err(code);

    b_hex(&s, hex);
    expect_events(what, &s, max_message, &w, 1);
    b_free(&s);
}

/* ------------------------------------------------------------------ */
/* RFC 6455 section 5.7 examples */

static const unsigned char hello[] = { 'H', 'e', 'l', 'l', 'o' };
static const unsigned char rfc_key[] = { 0x37, 0xfa, 0x21, 0x3d };

static void test_rfc_examples(void)
{
    struct bytes s = { 0 };
    unsigned char *payload;
    struct want w[2];
    size_t i;

    b_hex(&s, "810548656c6c6f");
    w[0] = w_msg(ZEQ_FRAME_TEXT, hello, 5);
    expect_events("RFC 6455 5.7 single-frame unmasked text \"Hello\"", &s,
                  1000, w, 1);
    b_free(&s);

    b_hex(&s, "818537fa213d7f9f4d5158");
    expect_events("RFC 6455 5.7 single-frame masked text \"Hello\"", &s,
                  1000, w, 1);
    b_free(&s);

    b_hex(&s, "010348656c");
    b_hex(&s, "80026c6f");
    expect_events("RFC 6455 5.7 fragmented unmasked text \"Hel\"+\"lo\"", &s,
                  1000, w, 1);
    b_free(&s);

    b_hex(&s, "890548656c6c6f");
    w[0] = w_ctl(ZEQ_FRAME_PING, s.p, s.len);
    expect_events("RFC 6455 5.7 unmasked ping \"Hello\" (raw bytes)", &s,
                  1000, w, 1);
    b_free(&s);

    b_hex(&s, "8a8537fa213d7f9f4d5158");
    w[0] = w_ctl(ZEQ_FRAME_PONG, s.p, s.len);
    expect_events("RFC 6455 5.7 masked pong \"Hello\" (raw bytes, still "
                  "masked)", &s, 1000, w, 1);
    b_free(&s);

    payload = malloc(64 * KIB);
    if (!payload)
        abort();
    unit_fill(payload, 64 * KIB, 0x6455u);

    b_hex(&s, "827e0100");
    b_put(&s, payload, 256);
    w[0] = w_msg(ZEQ_FRAME_BINARY, payload, 256);
    expect_events("RFC 6455 5.7 256-byte unmasked binary (82 7E 0100)", &s,
                  256, w, 1);
    b_free(&s);

    b_hex(&s, "827f0000000000010000");
    b_put(&s, payload, 64 * KIB);
    w[0] = w_msg(ZEQ_FRAME_BINARY, payload, 64 * KIB);
    expect_events("RFC 6455 5.7 64 KiB unmasked binary "
                  "(82 7F 0000000000010000)", &s, 64 * KIB, w, 1);
    b_free(&s);

    /* the same 64 KiB, masked with the RFC key */
    b_hex(&s, "82ff000000000001000037fa213d");
    for (i = 0; i < 64 * KIB; i++) {
        unsigned char c = payload[i] ^ rfc_key[i % 4];
        b_put(&s, &c, 1);
    }
    expect_events("64 KiB binary masked with 37fa213d", &s, 64 * KIB, w, 1);
    b_free(&s);
    free(payload);
}

/* ------------------------------------------------------------------ */
/* Length encodings at their boundaries */

static const size_t boundary_lens[] = { 0, 1, 125, 126, 127, 65535, 65536,
                                        65537, MIB };

static void test_lengths(void)
{
    unsigned char *payload = malloc(MIB + 1);
    static const unsigned char key[4] = { 0xa5, 0x00, 0xff, 0x5a };
    size_t i;
    int masked;

    if (!payload)
        abort();
    unit_fill(payload, MIB + 1, 0x1234567u);
    for (i = 0; i < sizeof boundary_lens / sizeof boundary_lens[0]; i++) {
        size_t len = boundary_lens[i];

        for (masked = 0; masked <= 1; masked++) {
            struct bytes s = { 0 };
            struct want w;
            char what[96];
            size_t hlen = (len < 126 ? 2 : len < 65536 ? 4 : 10)
                          + (masked ? 4 : 0);
            int op = len % 2 ? ZEQ_FRAME_TEXT : ZEQ_FRAME_BINARY;

            b_frame(&s, 0x80u | (unsigned)op, masked ? key : NULL, payload,
                    len);
            snprintf(what, sizeof what, "%s %s frame of %zu bytes",
                     masked ? "masked" : "unmasked",
                     op == ZEQ_FRAME_TEXT ? "text" : "binary", len);
            unit_int((long long)s.len, (long long)(hlen + len),
                     "%s: test encoder header is %zu bytes", what, hlen);
            w = w_msg(op, payload, len);
            /* max_message exactly the payload: accepted */
            expect_events_lim(what, &s, len, &w, 1, 70000);

            /* one byte under: 1009 as soon as the header is in */
            if (len > 0) {
                struct recs r;
                zeq_frame_reader rd;
                unsigned char *hdr = unit_dup(s.p, hlen);

                memset(&r, 0, sizeof r);
                zeq_frame_reader_init(&rd, len - 1);
                unit_int(zeq_frame_reader_feed(&rd, hdr, hlen), 0,
                         "%s, max_message %zu: header fed", what, len - 1);
                drain(&rd, &r, (size_t)-1);
                unit_int((long long)r.n, 1,
                         "%s, max_message %zu: one event from the header "
                         "alone", what, len - 1);
                if (r.n == 1) {
                    unit_int(r.v[0].type, ZEQ_FRAME_EV_ERROR,
                             "%s, max_message %zu: event is ERROR", what,
                             len - 1);
                    unit_int(r.v[0].code, ZEQ_FRAME_CLOSE_TOO_BIG,
                             "%s, max_message %zu: close code", what, len - 1);
                }
                zeq_frame_reader_free(&rd);
                recs_free(&r);
                free(hdr);
            }
            b_free(&s);
        }
    }
    free(payload);
}

/* ------------------------------------------------------------------ */
/* Several frames, fragmentation, control frames between fragments */

static void test_sequences(void)
{
    static const unsigned char k1[4] = { 1, 2, 3, 4 };
    static const unsigned char k2[4] = { 0xde, 0xad, 0xbe, 0xef };
    static const unsigned char k3[4] = { 0, 0, 0, 0 };
    unsigned char big[300], bin3[3] = { 0x00, 0xff, 0x80 };
    struct bytes s = { 0 }, ping = { 0 }, pong = { 0 }, closing = { 0 };
    struct want w[8];
    size_t ping_at, pong_at, close_at;

    unit_fill(big, sizeof big, 77);

    /* several whole frames in one stream */
    b_frame(&s, 0x81, NULL, hello, 5);
    b_frame(&s, 0x82, k1, bin3, 3);
    ping_at = s.len;
    b_frame(&s, 0x89, NULL, NULL, 0);
    b_frame(&s, 0x81, k2, NULL, 0);
    b_frame(&s, 0x82, NULL, big, 300);
    close_at = s.len;
    b_frame(&s, 0x88, k3, (const unsigned char *)"\x03\xe8", 2);
    w[0] = w_msg(ZEQ_FRAME_TEXT, hello, 5);
    w[1] = w_msg(ZEQ_FRAME_BINARY, bin3, 3);
    w[2] = w_ctl(ZEQ_FRAME_PING, s.p + ping_at, 2);
    w[3] = w_msg(ZEQ_FRAME_TEXT, "", 0);
    w[4] = w_msg(ZEQ_FRAME_BINARY, big, 300);
    w[5] = w_ctl(ZEQ_FRAME_CLOSE, s.p + close_at, 8);
    expect_events("six frames in one stream", &s, 1000, w, 6);
    b_free(&s);

    /* fragmented, masked, with ping and pong between the fragments */
    b_frame(&ping, 0x89, k2, (const unsigned char *)"pi", 2);
    b_frame(&pong, 0x8a, NULL, (const unsigned char *)"po", 2);
    b_frame(&closing, 0x88, k1, (const unsigned char *)"\x03\xe8" "bye", 5);
    b_frame(&s, 0x02, k1, big, 100);            /* binary, no FIN */
    ping_at = s.len;
    b_put(&s, ping.p, ping.len);
    b_frame(&s, 0x00, k2, big + 100, 1);        /* continuation */
    pong_at = s.len;
    b_put(&s, pong.p, pong.len);
    b_frame(&s, 0x00, NULL, big + 101, 0);      /* empty continuation */
    b_frame(&s, 0x00, k3, big + 101, 150);
    b_put(&s, ping.p, ping.len);
    b_frame(&s, 0x80, k2, big + 251, 49);       /* final */
    b_frame(&s, 0x81, k1, hello, 5);            /* then a whole message */
    close_at = s.len;
    b_put(&s, closing.p, closing.len);
    w[0] = w_ctl(ZEQ_FRAME_PING, s.p + ping_at, ping.len);
    w[1] = w_ctl(ZEQ_FRAME_PONG, s.p + pong_at, pong.len);
    w[2] = w_ctl(ZEQ_FRAME_PING, ping.p, ping.len);
    w[3] = w_msg(ZEQ_FRAME_BINARY, big, 300);
    w[4] = w_msg(ZEQ_FRAME_TEXT, hello, 5);
    w[5] = w_ctl(ZEQ_FRAME_CLOSE, s.p + close_at, closing.len);
    expect_events("fragmented masked binary of 5 frames with ping, pong, "
                  "ping between them, then text and close", &s, 300, w, 6);
    b_free(&s);

    /* two fragmented messages in a row, text then binary */
    b_frame(&s, 0x01, NULL, hello, 2);
    b_frame(&s, 0x80, NULL, hello + 2, 3);
    b_frame(&s, 0x02, k1, bin3, 1);
    b_frame(&s, 0x00, k2, bin3 + 1, 1);
    b_frame(&s, 0x80, k3, bin3 + 2, 1);
    w[0] = w_msg(ZEQ_FRAME_TEXT, hello, 5);
    w[1] = w_msg(ZEQ_FRAME_BINARY, bin3, 3);
    expect_events("fragmented text then fragmented binary", &s, 5, w, 2);
    b_free(&s);

    /* empty fragments */
    b_frame(&s, 0x01, NULL, NULL, 0);
    b_frame(&s, 0x80, NULL, hello, 5);
    b_frame(&s, 0x02, NULL, NULL, 0);
    b_frame(&s, 0x00, k1, NULL, 0);
    b_frame(&s, 0x80, NULL, NULL, 0);
    b_frame(&s, 0x01, k2, hello, 5);
    b_frame(&s, 0x80, NULL, NULL, 0);
    w[0] = w_msg(ZEQ_FRAME_TEXT, hello, 5);
    w[1] = w_msg(ZEQ_FRAME_BINARY, "", 0);
    w[2] = w_msg(ZEQ_FRAME_TEXT, hello, 5);
    expect_events("empty first fragment, all-empty fragments, empty last "
                  "fragment", &s, 5, w, 3);
    b_free(&s);

    /* a large fragmented message (1 MiB in fragments of 64 KiB - 1,
     * 16-bit and 64-bit lengths mixed), masked */
    {
        unsigned char *p = malloc(MIB);
        size_t off = 0, n, step = 0;

        if (!p)
            abort();
        unit_fill(p, MIB, 4242);
        while (off < MIB) {
            n = step % 3 == 0 ? 65535 : step % 3 == 1 ? 70000 : 125;
            if (n > MIB - off)
                n = MIB - off;
            b_frame(&s, (off == 0 ? 0x02u : 0x00u) | (off + n == MIB ? 0x80u : 0u),
                    step % 2 ? k1 : k2, p + off, n);
            if (step == 4)
                b_put(&s, ping.p, ping.len);
            off += n;
            step++;
        }
        w[0] = w_ctl(ZEQ_FRAME_PING, ping.p, ping.len);
        w[1] = w_msg(ZEQ_FRAME_BINARY, p, MIB);
        expect_events_lim("1 MiB binary in masked fragments of 65535, 70000 "
                          "and 125 bytes, a ping between", &s, MIB, w, 2, 0);
        b_free(&s);
        free(p);
    }

    /* a control frame of exactly 125 bytes, masked and unmasked */
    b_frame(&s, 0x89, NULL, big, 125);
    w[0] = w_ctl(ZEQ_FRAME_PING, s.p, s.len);
    expect_events("unmasked ping of 125 bytes", &s, 0, w, 1);
    b_free(&s);
    b_frame(&s, 0x8a, k2, big, 125);
    w[0] = w_ctl(ZEQ_FRAME_PONG, s.p, s.len);
    expect_events("masked pong of 125 bytes (max_message 0 does not apply "
                  "to control frames)", &s, 0, w, 1);
    b_free(&s);

    b_free(&ping);
    b_free(&pong);
    b_free(&closing);
}

/* ------------------------------------------------------------------ */
/* Protocol errors (1002) */

static void test_protocol_errors(void)
{
    static const unsigned char k1[4] = { 9, 8, 7, 6 };
    struct bytes s = { 0 }, ping = { 0 };
    struct want w[4];
    char hex[64], what[96];
    int op, bit;

    /* continuation without a message */
    expect_error_hex("continuation (FIN) without a message", "8000",
                     1000, ZEQ_FRAME_CLOSE_PROTOCOL);
    expect_error_hex("continuation (no FIN) without a message", "0003616263",
                     1000, ZEQ_FRAME_CLOSE_PROTOCOL);
    expect_error_hex("masked continuation without a message",
                     "808101020304ff", 1000, ZEQ_FRAME_CLOSE_PROTOCOL);

    /* a continuation right after a whole message */
    b_frame(&s, 0x81, NULL, hello, 5);
    b_frame(&s, 0x80, NULL, hello, 5);
    w[0] = w_msg(ZEQ_FRAME_TEXT, hello, 5);
    w[1] = w_err(ZEQ_FRAME_CLOSE_PROTOCOL);
    expect_events("continuation after a finished message", &s, 1000, w, 2);
    b_free(&s);

    /* a new data frame inside a fragmented message */
    b_frame(&ping, 0x89, k1, hello, 5);
    b_frame(&s, 0x01, NULL, hello, 3);
    b_frame(&s, 0x81, NULL, hello + 3, 2);
    w[0] = w_err(ZEQ_FRAME_CLOSE_PROTOCOL);
    expect_events("text frame (FIN) inside a fragmented text message", &s,
                  1000, w, 1);
    b_free(&s);
    b_frame(&s, 0x01, k1, hello, 3);
    b_put(&s, ping.p, ping.len);
    b_frame(&s, 0x02, NULL, hello + 3, 2);
    w[0] = w_ctl(ZEQ_FRAME_PING, ping.p, ping.len);
    w[1] = w_err(ZEQ_FRAME_CLOSE_PROTOCOL);
    expect_events("binary frame (no FIN) after a ping inside a fragmented "
                  "text message", &s, 1000, w, 2);
    b_free(&s);

    /* reserved bits, on every kind of frame */
    for (bit = 0x10; bit <= 0x40; bit <<= 1) {
        snprintf(hex, sizeof hex, "%02x0548656c6c6f", 0x81 | bit);
        snprintf(what, sizeof what, "text frame with RSV bit 0x%02x", bit);
        expect_error_hex(what, hex, 1000, ZEQ_FRAME_CLOSE_PROTOCOL);
        snprintf(hex, sizeof hex, "%02x00", 0x89 | bit);
        snprintf(what, sizeof what, "ping with RSV bit 0x%02x", bit);
        expect_error_hex(what, hex, 1000, ZEQ_FRAME_CLOSE_PROTOCOL);
    }
    expect_error_hex("binary frame with all RSV bits", "f2820102030400",
                     1000, ZEQ_FRAME_CLOSE_PROTOCOL);
    b_frame(&s, 0x01, NULL, hello, 3);
    b_frame(&s, 0xc0, NULL, hello + 3, 2);
    w[0] = w_err(ZEQ_FRAME_CLOSE_PROTOCOL);
    expect_events("continuation with RSV1 (permessage-deflate not "
                  "negotiated)", &s, 1000, w, 1);
    b_free(&s);
    /* RSV set on a frame that follows a good one: the good one first */
    b_frame(&s, 0x82, NULL, hello, 5);
    b_hex(&s, "a100");
    w[0] = w_msg(ZEQ_FRAME_BINARY, hello, 5);
    w[1] = w_err(ZEQ_FRAME_CLOSE_PROTOCOL);
    expect_events("good binary frame then a frame with RSV2", &s, 1000, w, 2);
    b_free(&s);

    /* unknown opcodes, with and without FIN, masked or not */
    for (op = 0x3; op <= 0xf; op++) {
        if (op >= 0x8 && op <= 0xa)
            continue;
        snprintf(hex, sizeof hex, "%02x0141", 0x80 | op);
        snprintf(what, sizeof what, "unknown opcode 0x%x (FIN)", op);
        expect_error_hex(what, hex, 1000, ZEQ_FRAME_CLOSE_PROTOCOL);
        snprintf(hex, sizeof hex, "%02x80a1b2c3d4", op);
        snprintf(what, sizeof what, "unknown opcode 0x%x (no FIN, masked)",
                 op);
        expect_error_hex(what, hex, 1000, ZEQ_FRAME_CLOSE_PROTOCOL);
    }

    /* control frames: payload over 125, or no FIN */
    b_hex(&s, "897e007e");
    {
        unsigned char z[126];
        memset(z, 'z', sizeof z);
        b_put(&s, z, sizeof z);
    }
    w[0] = w_err(ZEQ_FRAME_CLOSE_PROTOCOL);
    expect_events("ping with a 126-byte payload", &s, 1000, w, 1);
    b_free(&s);
    expect_error_hex("close with a 16-bit length of 65535 (header only)",
                     "887effff", 100000, ZEQ_FRAME_CLOSE_PROTOCOL);
    expect_error_hex("pong with a 64-bit length of 200, masked (header "
                     "only)", "8aff00000000000000c801020304", 1000,
                     ZEQ_FRAME_CLOSE_PROTOCOL);
    expect_error_hex("ping without FIN", "0900", 1000,
                     ZEQ_FRAME_CLOSE_PROTOCOL);
    expect_error_hex("pong without FIN", "0a0161", 1000,
                     ZEQ_FRAME_CLOSE_PROTOCOL);
    expect_error_hex("close without FIN, masked", "08820102030402ea", 1000,
                     ZEQ_FRAME_CLOSE_PROTOCOL);
    b_frame(&s, 0x01, NULL, hello, 3);
    b_hex(&s, "0900");
    w[0] = w_err(ZEQ_FRAME_CLOSE_PROTOCOL);
    expect_events("fragmented ping inside a fragmented message", &s, 1000, w,
                  1);
    b_free(&s);

    /* 64-bit length with the most significant bit set */
    expect_error_hex("64-bit length 0x8000000000000000",
                     "827f8000000000000000", (size_t)-1,
                     ZEQ_FRAME_CLOSE_PROTOCOL);
    expect_error_hex("64-bit length 0xffffffffffffffff, masked",
                     "82ffffffffffffffffff01020304", (size_t)-1,
                     ZEQ_FRAME_CLOSE_PROTOCOL);
    expect_error_hex("64-bit length 0x8000000000000005 on a continuation "
                     "after a first fragment",
                     "0100007f8000000000000005", (size_t)-1,
                     ZEQ_FRAME_CLOSE_PROTOCOL);

    b_free(&ping);
}

/* 64-bit lengths just under the MSB are not errors in themselves: the
 * reader waits for the payload (max_message permitting). */
static void test_huge_lengths(void)
{
    static const char *const hdrs[] = {
        "827f7fffffffffffffff",
        "82ff7fffffffffffffff01020304",
        "817f0000000100000000",
    };
    size_t i;

    for (i = 0; i < sizeof hdrs / sizeof hdrs[0]; i++) {
        zeq_frame_reader rd;
        zeq_frame_event ev;
        size_t n;
        unsigned char *h = unit_unhex(hdrs[i], &n), *d = unit_dup(h, n);

        zeq_frame_reader_init(&rd, (size_t)-1);
        unit_int(zeq_frame_reader_feed(&rd, d, n), 0, "header %s: fed",
                 hdrs[i]);
        zeq_frame_reader_next(&rd, &ev);
        unit_int(ev.type, ZEQ_FRAME_NEED_MORE,
                 "header %s with max_message SIZE_MAX: NEED_MORE", hdrs[i]);
        unit_bool(zeq_frame_reader_pending(&rd), 1,
                  "header %s: pending", hdrs[i]);
        zeq_frame_reader_free(&rd);
        zeq_frame_reader_init(&rd, 1000);
        zeq_frame_reader_feed(&rd, d, n);
        zeq_frame_reader_next(&rd, &ev);
        unit_int(ev.type, ZEQ_FRAME_EV_ERROR,
                 "header %s with max_message 1000: ERROR", hdrs[i]);
        unit_int(ev.close_code, ZEQ_FRAME_CLOSE_TOO_BIG,
                 "header %s with max_message 1000: close code", hdrs[i]);
        zeq_frame_reader_free(&rd);
        free(h);
        free(d);
    }
}

/* ------------------------------------------------------------------ */
/* Messages over max_message (1009) */

static void test_too_big(void)
{
    static const unsigned char k1[4] = { 0x11, 0x22, 0x33, 0x44 };
    unsigned char p[32];
    struct bytes s = { 0 };
    struct want w[4];

    unit_fill(p, sizeof p, 99);

    b_frame(&s, 0x82, NULL, p, 10);
    w[0] = w_msg(ZEQ_FRAME_BINARY, p, 10);
    expect_events("10-byte message, max_message 10", &s, 10, w, 1);
    b_free(&s);
    b_frame(&s, 0x82, k1, p, 11);
    w[0] = w_err(ZEQ_FRAME_CLOSE_TOO_BIG);
    expect_events("11-byte masked message, max_message 10", &s, 10, w, 1);
    b_free(&s);

    b_frame(&s, 0x81, NULL, NULL, 0);
    w[0] = w_msg(ZEQ_FRAME_TEXT, "", 0);
    expect_events("empty message, max_message 0", &s, 0, w, 1);
    b_free(&s);
    b_frame(&s, 0x81, NULL, p, 1);
    w[0] = w_err(ZEQ_FRAME_CLOSE_TOO_BIG);
    expect_events("1-byte message, max_message 0", &s, 0, w, 1);
    b_free(&s);

    /* across fragments */
    b_frame(&s, 0x02, NULL, p, 5);
    b_frame(&s, 0x80, k1, p + 5, 5);
    w[0] = w_msg(ZEQ_FRAME_BINARY, p, 10);
    expect_events("fragments 5+5, max_message 10", &s, 10, w, 1);
    b_free(&s);
    b_frame(&s, 0x02, NULL, p, 5);
    b_frame(&s, 0x80, k1, p + 5, 6);
    w[0] = w_err(ZEQ_FRAME_CLOSE_TOO_BIG);
    expect_events("fragments 5+6, max_message 10", &s, 10, w, 1);
    b_free(&s);
    b_frame(&s, 0x01, NULL, p, 4);
    b_frame(&s, 0x89, NULL, NULL, 0);
    b_frame(&s, 0x00, NULL, p + 4, 3);
    b_frame(&s, 0x00, NULL, p + 7, 3);
    b_frame(&s, 0x80, NULL, p + 10, 1);
    w[0] = w_ctl(ZEQ_FRAME_PING, s.p + 6, 2);
    w[1] = w_err(ZEQ_FRAME_CLOSE_TOO_BIG);
    expect_events("fragments 4+3+3+1 with a ping, max_message 10", &s, 10,
                  w, 2);
    b_free(&s);
    b_frame(&s, 0x02, NULL, p, 11);
    b_frame(&s, 0x80, NULL, NULL, 0);
    w[0] = w_err(ZEQ_FRAME_CLOSE_TOO_BIG);
    expect_events("first fragment of 11, max_message 10", &s, 10, w, 1);
    b_free(&s);

    /* the limit is per message: two 10-byte messages (one fragmented) */
    b_frame(&s, 0x82, NULL, p, 10);
    b_frame(&s, 0x01, NULL, p, 9);
    b_frame(&s, 0x80, NULL, p + 9, 1);
    b_frame(&s, 0x82, NULL, p, 10);
    w[0] = w_msg(ZEQ_FRAME_BINARY, p, 10);
    w[1] = w_msg(ZEQ_FRAME_TEXT, p, 10);
    w[2] = w_msg(ZEQ_FRAME_BINARY, p, 10);
    expect_events("three messages of 10 bytes, max_message 10", &s, 10, w, 3);
    b_free(&s);

    /* a good message, then one too big in a 16-bit header */
    b_frame(&s, 0x81, NULL, hello, 5);
    b_hex(&s, "827e00c8");
    w[0] = w_msg(ZEQ_FRAME_TEXT, hello, 5);
    w[1] = w_err(ZEQ_FRAME_CLOSE_TOO_BIG);
    expect_events("message, then a 200-byte header, max_message 199", &s, 199,
                  w, 2);
    b_free(&s);
}

/* ------------------------------------------------------------------ */
/* After an error, nothing more */

static void test_stays_failed(void)
{
    static const char *const bad[] = {
        "c100",                     /* RSV1 */
        "8000",                     /* continuation without a message */
        "8300",                     /* opcode 3 */
        "827e0400",                 /* 1024 bytes, max_message 100: 1009 */
    };
    static const unsigned char good[] = { 0x81, 0x05, 'H', 'e', 'l', 'l', 'o',
                                          0x89, 0x00 };
    size_t i;

    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        zeq_frame_reader rd;
        zeq_frame_event ev;
        size_t n, k;
        unsigned char *b = unit_unhex(bad[i], &n), *d = unit_dup(b, n);
        unsigned char *g = unit_dup(good, sizeof good);

        zeq_frame_reader_init(&rd, 100);
        zeq_frame_reader_feed(&rd, d, n);
        zeq_frame_reader_next(&rd, &ev);
        unit_int(ev.type, ZEQ_FRAME_EV_ERROR, "%s: ERROR", bad[i]);
        unit_bool(rd.failed, 1, "%s: reader marked failed", bad[i]);
        for (k = 0; k < 3; k++) {
            zeq_frame_reader_feed(&rd, g, sizeof good);
            zeq_frame_reader_next(&rd, &ev);
            unit_bool(ev.type == ZEQ_FRAME_EV_CONTROL
                          || ev.type == ZEQ_FRAME_EV_MESSAGE, 0,
                      "%s then a good text and ping (round %zu): no CONTROL "
                      "or MESSAGE (got %s)", bad[i], k + 1,
                      type_name(ev.type));
            zeq_frame_reader_next(&rd, &ev);
            unit_bool(ev.type == ZEQ_FRAME_EV_CONTROL
                          || ev.type == ZEQ_FRAME_EV_MESSAGE, 0,
                      "%s then a good text and ping (round %zu, second "
                      "next): no CONTROL or MESSAGE (got %s)", bad[i], k + 1,
                      type_name(ev.type));
        }
        unit_bool(rd.failed, 1, "%s: reader still failed", bad[i]);
        zeq_frame_reader_free(&rd);
        free(b);
        free(d);
        free(g);
    }
}

/* ------------------------------------------------------------------ */
/* zeq_frame_reader_pending */

static int feed_hex(zeq_frame_reader *rd, const char *hex)
{
    size_t n;
    unsigned char *b = unit_unhex(hex, &n), *d = unit_dup(b, n);
    int rc = zeq_frame_reader_feed(rd, d, n);

    free(b);
    free(d);
    return rc;
}

static void next_is(zeq_frame_reader *rd, int type, const char *what)
{
    zeq_frame_event ev;

    zeq_frame_reader_next(rd, &ev);
    unit_int(ev.type, type, "pending: %s gives %s", what, type_name(type));
}

static void test_pending(void)
{
    zeq_frame_reader rd;
    zeq_frame_event ev;

    zeq_frame_reader_init(&rd, 1000);
    unit_bool(zeq_frame_reader_pending(&rd), 0, "pending: fresh reader");
    next_is(&rd, ZEQ_FRAME_NEED_MORE, "next on a fresh reader");
    unit_int(zeq_frame_reader_feed(&rd, NULL, 0), 0,
             "pending: feeding nothing returns 0");
    unit_bool(zeq_frame_reader_pending(&rd), 0,
              "pending: after feeding nothing");

    feed_hex(&rd, "81");
    next_is(&rd, ZEQ_FRAME_NEED_MORE, "first header byte");
    unit_bool(zeq_frame_reader_pending(&rd), 1, "pending: 1 header byte");
    feed_hex(&rd, "05");
    next_is(&rd, ZEQ_FRAME_NEED_MORE, "whole header, no payload");
    unit_bool(zeq_frame_reader_pending(&rd), 1, "pending: header only");
    feed_hex(&rd, "48656c6c");
    next_is(&rd, ZEQ_FRAME_NEED_MORE, "4 of 5 payload bytes");
    unit_bool(zeq_frame_reader_pending(&rd), 1, "pending: 4 of 5 bytes");
    feed_hex(&rd, "6f");
    next_is(&rd, ZEQ_FRAME_EV_MESSAGE, "the last payload byte");
    unit_bool(zeq_frame_reader_pending(&rd), 0,
              "pending: whole message taken");
    next_is(&rd, ZEQ_FRAME_NEED_MORE, "next after the message");

    feed_hex(&rd, "010348656c");
    next_is(&rd, ZEQ_FRAME_NEED_MORE, "a first fragment");
    unit_bool(zeq_frame_reader_pending(&rd), 1,
              "pending: first fragment taken, message unfinished");
    feed_hex(&rd, "8900");
    next_is(&rd, ZEQ_FRAME_EV_CONTROL, "a ping between fragments");
    unit_bool(zeq_frame_reader_pending(&rd), 1,
              "pending: ping taken, message still unfinished");
    feed_hex(&rd, "80026c");
    next_is(&rd, ZEQ_FRAME_NEED_MORE, "part of the last fragment");
    unit_bool(zeq_frame_reader_pending(&rd), 1,
              "pending: part of the last fragment");
    feed_hex(&rd, "6f8a00");
    zeq_frame_reader_next(&rd, &ev);
    unit_int(ev.type, ZEQ_FRAME_EV_MESSAGE,
             "pending: rest of the last fragment gives MESSAGE");
    unit_mem(ev.data, ev.len, hello, 5,
             "pending: reassembled message is \"Hello\"");
    unit_bool(zeq_frame_reader_pending(&rd), 1,
              "pending: a pong still buffered after the message");
    next_is(&rd, ZEQ_FRAME_EV_CONTROL, "the buffered pong");
    unit_bool(zeq_frame_reader_pending(&rd), 0, "pending: all taken");
    zeq_frame_reader_free(&rd);
    unit_ok(rd.buf == NULL && rd.msg == NULL && rd.len == 0 && rd.cap == 0
                && rd.msg_cap == 0,
            "reader_free leaves no buffer behind");
}

/* ------------------------------------------------------------------ */
/* Header writer */

static void hdr_check(int opcode, const char *mask_hex, uint64_t len,
                      const char *expect_hex)
{
    unsigned char fill[ZEQ_FRAME_HEADER_MAX];
    unsigned char *out, *mask = NULL, *mraw = NULL, *expect;
    size_t explen, mlen, n;

    memset(fill, 0xee, sizeof fill);
    out = unit_dup(fill, sizeof fill);
    if (mask_hex) {
        mraw = unit_unhex(mask_hex, &mlen);
        mask = unit_dup(mraw, mlen);
    }
    expect = unit_unhex(expect_hex, &explen);
    n = zeq_frame_write_header(out, opcode, mask, len);
    unit_int((long long)n, (long long)explen,
             "write_header(opcode 0x%x, %s, %llu): length", opcode,
             mask_hex ? mask_hex : "unmasked", (unsigned long long)len);
    unit_mem(out, n <= sizeof fill ? n : sizeof fill, expect, explen,
             "write_header(opcode 0x%x, %s, %llu): bytes", opcode,
             mask_hex ? mask_hex : "unmasked", (unsigned long long)len);
    free(out);
    free(mask);
    free(mraw);
    free(expect);
}

static void test_write_header(void)
{
    hdr_check(ZEQ_FRAME_TEXT, NULL, 5, "8105");
    hdr_check(ZEQ_FRAME_TEXT, "37fa213d", 5, "818537fa213d");
    hdr_check(ZEQ_FRAME_BINARY, NULL, 256, "827e0100");
    hdr_check(ZEQ_FRAME_BINARY, NULL, 65536, "827f0000000000010000");
    hdr_check(ZEQ_FRAME_TEXT, NULL, 0, "8100");
    hdr_check(ZEQ_FRAME_BINARY, NULL, 125, "827d");
    hdr_check(ZEQ_FRAME_BINARY, NULL, 126, "827e007e");
    hdr_check(ZEQ_FRAME_BINARY, NULL, 127, "827e007f");
    hdr_check(ZEQ_FRAME_BINARY, NULL, 65535, "827effff");
    hdr_check(ZEQ_FRAME_BINARY, NULL, 65537, "827f0000000000010001");
    hdr_check(ZEQ_FRAME_BINARY, NULL, MIB, "827f0000000000100000");
    hdr_check(ZEQ_FRAME_BINARY, NULL, 0x0123456789abcdefULL,
              "827f0123456789abcdef");
    hdr_check(ZEQ_FRAME_TEXT, NULL, 0x7fffffffffffffffULL,
              "817f7fffffffffffffff");
    hdr_check(ZEQ_FRAME_TEXT, "00000000", 0, "818000000000");
    hdr_check(ZEQ_FRAME_BINARY, "a1b2c3d4", 125, "82fda1b2c3d4");
    hdr_check(ZEQ_FRAME_BINARY, "a1b2c3d4", 126, "82fe007ea1b2c3d4");
    hdr_check(ZEQ_FRAME_BINARY, "a1b2c3d4", 65535, "82feffffa1b2c3d4");
    hdr_check(ZEQ_FRAME_BINARY, "ffffffff", 65536,
              "82ff0000000000010000ffffffff");
    hdr_check(ZEQ_FRAME_BINARY, "01020304", 0x8000000000000000ULL,
              "82ff800000000000000001020304");
    hdr_check(ZEQ_FRAME_CONT, NULL, 3, "8003");
    hdr_check(ZEQ_FRAME_CLOSE, NULL, 2, "8802");
    hdr_check(ZEQ_FRAME_PING, NULL, 0, "8900");
    hdr_check(ZEQ_FRAME_PONG, "37fa213d", 5, "8a8537fa213d");
}

/* Writer + payload through the reader. */
static void test_header_round_trip(void)
{
    static const unsigned char key[4] = { 0x5c, 0x36, 0xa0, 0x0f };
    static const int data_ops[] = { ZEQ_FRAME_TEXT, ZEQ_FRAME_BINARY };
    static const int ctl_ops[] = { ZEQ_FRAME_CLOSE, ZEQ_FRAME_PING,
                                   ZEQ_FRAME_PONG };
    static const size_t ctl_lens[] = { 0, 1, 2, 125 };
    unsigned char *payload = malloc(MIB);
    size_t i, j;
    int masked;

    if (!payload)
        abort();
    unit_fill(payload, MIB, 0xabcdefu);
    for (i = 0; i < sizeof boundary_lens / sizeof boundary_lens[0]; i++) {
        for (j = 0; j < 2; j++) {
            for (masked = 0; masked <= 1; masked++) {
                struct bytes s = { 0 };
                unsigned char h[ZEQ_FRAME_HEADER_MAX];
                size_t len = boundary_lens[i], hl, k;
                char what[96];
                struct want w;

                hl = zeq_frame_write_header(h, data_ops[j],
                                            masked ? key : NULL, len);
                b_put(&s, h, hl);
                b_put(&s, payload, len);
                for (k = 0; k < len && masked; k++)
                    s.p[hl + k] ^= key[k % 4];
                snprintf(what, sizeof what,
                         "round trip: write_header(%s, %s, %zu) + payload",
                         data_ops[j] == ZEQ_FRAME_TEXT ? "text" : "binary",
                         masked ? "masked" : "unmasked", len);
                w = w_msg(data_ops[j], payload, len);
                expect_events_lim(what, &s, MIB, &w, 1, 300);
                b_free(&s);
            }
        }
    }
    for (i = 0; i < sizeof ctl_lens / sizeof ctl_lens[0]; i++) {
        for (j = 0; j < 3; j++) {
            for (masked = 0; masked <= 1; masked++) {
                struct bytes s = { 0 };
                unsigned char h[ZEQ_FRAME_HEADER_MAX];
                size_t hl, len = ctl_lens[i];
                char what[96];
                struct want w;

                hl = zeq_frame_write_header(h, ctl_ops[j],
                                            masked ? key : NULL, len);
                b_put(&s, h, hl);
                b_put(&s, payload, len);
                snprintf(what, sizeof what,
                         "round trip: write_header(opcode 0x%x, %s, %zu)",
                         ctl_ops[j], masked ? "masked" : "unmasked", len);
                w = w_ctl(ctl_ops[j], s.p, s.len);
                expect_events(what, &s, 0, &w, 1);
                b_free(&s);
            }
        }
    }
    free(payload);
}

/* ------------------------------------------------------------------ */
/* zeq_frame_mask */

static void test_mask(void)
{
    unsigned char data[11], ref[11], *d, *key = unit_dup(rfc_key, 4);
    size_t off, split, i;

    d = unit_dup(hello, 5);
    zeq_frame_mask(d, 5, key, 0);
    unit_mem(d, 5, (const unsigned char *)"\x7f\x9f\x4d\x51\x58", 5,
             "mask \"Hello\" with 37fa213d (RFC 6455 5.7)");
    zeq_frame_mask(d, 5, key, 0);
    unit_mem(d, 5, hello, 5, "masking twice gives \"Hello\" back");
    free(d);

    d = unit_dup("", 0);
    d[0] = 0x42;
    zeq_frame_mask(d, 0, key, 3);
    unit_int(d[0], 0x42, "masking 0 bytes changes nothing");
    free(d);

    unit_fill(data, sizeof data, 5);
    for (off = 0; off < 10; off++) {
        for (i = 0; i < sizeof data; i++)
            ref[i] = data[i] ^ rfc_key[(i + off) % 4];
        d = unit_dup(data, sizeof data);
        zeq_frame_mask(d, sizeof data, key, off);
        unit_mem(d, sizeof data, ref, sizeof data,
                 "mask 11 bytes from key offset %zu", off);
        free(d);
    }
    for (i = 0; i < sizeof data; i++)
        ref[i] = data[i] ^ rfc_key[i % 4];
    for (split = 0; split <= sizeof data; split++) {
        d = unit_dup(data, sizeof data);
        zeq_frame_mask(d, split, key, 0);
        zeq_frame_mask(d + split, sizeof data - split, key, split);
        unit_mem(d, sizeof data, ref, sizeof data,
                 "mask in two parts split at %zu equals masking at once",
                 split);
        free(d);
    }
    free(key);
}

/* ------------------------------------------------------------------ */
/* zeq_frame_close */

static void close_check(int code, const char *expect_hex)
{
    unsigned char fill[4] = { 0xee, 0xee, 0xee, 0xee };
    unsigned char *out = unit_dup(fill, 4), *expect;
    size_t explen, n;
    struct bytes s = { 0 };
    struct want w;
    char what[64];

    expect = unit_unhex(expect_hex, &explen);
    n = zeq_frame_close(out, code);
    unit_int((long long)n, 4, "close(%d): 4 bytes", code);
    unit_mem(out, 4, expect, explen, "close(%d): bytes", code);
    b_put(&s, out, 4);
    w = w_ctl(ZEQ_FRAME_CLOSE, expect, explen);
    snprintf(what, sizeof what, "close(%d) through the reader", code);
    expect_events(what, &s, 0, &w, 1);
    b_free(&s);
    free(out);
    free(expect);
}

static void test_close(void)
{
    close_check(ZEQ_FRAME_CLOSE_POLICY, "880203f0");
    close_check(ZEQ_FRAME_CLOSE_TOO_BIG, "880203f1");
    close_check(ZEQ_FRAME_CLOSE_PROTOCOL, "880203ea");
    close_check(ZEQ_FRAME_CLOSE_INTERNAL, "880203f3");
    close_check(1000, "880203e8");
    close_check(4999, "88021387");
    unit_int(ZEQ_FRAME_CLOSE_POLICY, 1008, "policy close code is 1008");
    unit_int(ZEQ_FRAME_CLOSE_TOO_BIG, 1009, "too-big close code is 1009");
    unit_int(ZEQ_FRAME_CLOSE_PROTOCOL, 1002, "protocol close code is 1002");
    unit_int(ZEQ_FRAME_CLOSE_INTERNAL, 1011, "internal close code is 1011");
}

/* A server's reader of client frames refuses unmasked ones (RFC 6455
 * section 5.1) and still takes masked ones. */
static void test_require_mask(void)
{
    static const unsigned char unmasked[] = { 0x81, 0x05, 'H', 'e', 'l', 'l',
                                              'o' };
    static const unsigned char masked[] = { 0x81, 0x85, 0x37, 0xfa, 0x21,
                                            0x3d, 0x7f, 0x9f, 0x4d, 0x51,
                                            0x58 };
    zeq_frame_reader rd;
    zeq_frame_event ev;

    zeq_frame_reader_init(&rd, 1000);
    rd.require_mask = 1;
    zeq_frame_reader_feed(&rd, masked, sizeof(masked));
    zeq_frame_reader_next(&rd, &ev);
    unit_int(ev.type, ZEQ_FRAME_EV_MESSAGE,
             "require_mask: a masked text frame is a message");
    unit_mem(ev.data, ev.len, hello, sizeof(hello),
             "require_mask: the masked frame's payload is unmasked");
    zeq_frame_reader_feed(&rd, unmasked, sizeof(unmasked));
    zeq_frame_reader_next(&rd, &ev);
    unit_int(ev.type, ZEQ_FRAME_EV_ERROR,
             "require_mask: an unmasked frame is an error");
    unit_int(ev.close_code, ZEQ_FRAME_CLOSE_PROTOCOL,
             "require_mask: an unmasked frame closes with 1002");
    zeq_frame_reader_free(&rd);
}

/* The response head before the frames: where its blank line ends it,
 * fed whole and one byte at a time, and its status. */
static void head_check(const char *what, const char *text, long end,
                       int status)
{
    zeq_frame_head h;
    size_t len = strlen(text), at, i;

    zeq_frame_head_reset(&h);
    at = zeq_frame_head_scan(&h, (const unsigned char *)text, len);
    unit_int(h.state == 3 ? (long long)at : -1, end, "head %s: whole, ends at %ld",
             what, end);
    unit_int(zeq_frame_head_status(&h), status, "head %s: status %d", what,
             status);
    zeq_frame_head_reset(&h);
    at = 0;
    for (i = 0; i < len && h.state != 3; i++) {
        at = i + zeq_frame_head_scan(&h, (const unsigned char *)text + i, 1);
    }
    unit_int(h.state == 3 ? (long long)at : -1, end,
             "head %s: byte by byte, ends at %ld", what, end);
}

static void test_head(void)
{
    head_check("CRLF", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\nFRAMES",
               56, 101);
    head_check("bare LF", "HTTP/1.1 200 OK\nContent-Length: 5\n\nBODY!", 35, 200);
    head_check("LF then CRLF", "HTTP/1.0 404 Not Found\nA: b\n\r\nrest", 30, 404);
    head_check("CRLF then LF", "HTTP/1.1 101 x\r\nA: b\r\n\nrest", 23, 101);
    head_check("no blank line yet", "HTTP/1.1 101 x\r\nA: b\r\n", -1, 0);
    head_check("not an HTTP/1.x status line", "MARKER\n\n", 8, 0);
    head_check("a CR alone ends nothing", "HTTP/1.1 200 x\r\rA\r\r\n", -1, 0);
}

int main(void)
{
    test_require_mask();
    test_rfc_examples();
    test_lengths();
    test_sequences();
    test_protocol_errors();
    test_huge_lengths();
    test_too_big();
    test_stays_failed();
    test_pending();
    test_write_header();
    test_header_round_trip();
    test_mask();
    test_close();
    test_head();
    return unit_done();
}
