/* The WebSocket frame reader (src/zeq_frame.c). The first byte sets the
 * reader up (bit 0: a client's frames, which must be masked; bits 1-3: the
 * largest message), the rest is the byte stream. Fed whole, byte by byte
 * and in two pieces, the reader must give the same events; every event
 * keeps to the limits (a message within the maximum, a control frame of
 * at most 125 bytes of payload, an error closes with 1002 or 1009 and is
 * the last event).
 * libFuzzer options: -max_len=4096 */
#include "fuzz.h"

#include "zeq_frame.h"

typedef struct {
    int type, opcode, close_code;
    unsigned char *data;
    size_t len;
} fuzz_event;

typedef struct {
    fuzz_event *ev;
    size_t n, cap;
    int pending;
} fuzz_events;

static void take_events(zeq_frame_reader *rd, fuzz_events *out, size_t max)
{
    zeq_frame_event ev;

    for (;;) {
        zeq_frame_reader_next(rd, &ev);
        if (ev.type == ZEQ_FRAME_NEED_MORE) {
            return;
        }
        FUZZ_CHECK(out->n == 0 || out->ev[out->n - 1].type != ZEQ_FRAME_EV_ERROR,
                   "nothing after an error");
        if (out->n == out->cap) {
            out->cap = out->cap ? out->cap * 2 : 16;
            out->ev = realloc(out->ev, out->cap * sizeof(*out->ev));
            FUZZ_CHECK(out->ev != NULL, "memory");
        }
        out->ev[out->n].type = (int)ev.type;
        out->ev[out->n].opcode = ev.opcode;
        out->ev[out->n].close_code = ev.close_code;
        out->ev[out->n].len = ev.len;
        out->ev[out->n].data = fuzz_dup(ev.data, ev.len);
        out->n++;
        switch (ev.type) {
        case ZEQ_FRAME_EV_MESSAGE:
            FUZZ_CHECK(ev.len <= max, "a message within the maximum");
            FUZZ_CHECK(ev.opcode == ZEQ_FRAME_TEXT
                       || ev.opcode == ZEQ_FRAME_BINARY,
                       "a message is text or binary");
            break;
        case ZEQ_FRAME_EV_CONTROL:
            FUZZ_CHECK(ev.opcode == ZEQ_FRAME_CLOSE || ev.opcode == ZEQ_FRAME_PING
                       || ev.opcode == ZEQ_FRAME_PONG, "a control opcode");
            FUZZ_CHECK(ev.len >= 2, "a control frame has a header");
            {
                /* The raw frame, as received: any length form (RFC 6455
                 * asks senders for the shortest; the reader takes any). */
                size_t plen = ev.data[1] & 0x7fu, hlen = 2, i;
                if (plen == 126) {
                    FUZZ_CHECK(ev.len >= 4, "a control frame's length");
                    plen = ((size_t)ev.data[2] << 8) | ev.data[3];
                    hlen = 4;
                }
                else if (plen == 127) {
                    FUZZ_CHECK(ev.len >= 10, "a control frame's length");
                    for (plen = 0, i = 2; i < 10; i++) {
                        plen = (plen << 8) | ev.data[i];
                    }
                    hlen = 10;
                }
                hlen += (ev.data[1] & 0x80) ? 4 : 0;
                FUZZ_CHECK(plen <= 125 && ev.len == hlen + plen,
                           "a control frame: its header and up to 125 bytes");
            }
            break;
        case ZEQ_FRAME_EV_ERROR:
            FUZZ_CHECK(ev.close_code == ZEQ_FRAME_CLOSE_PROTOCOL
                       || ev.close_code == ZEQ_FRAME_CLOSE_TOO_BIG,
                       "an error closes with 1002 or 1009");
            zeq_frame_reader_next(rd, &ev);
            FUZZ_CHECK(ev.type == ZEQ_FRAME_NEED_MORE, "a failed reader stays quiet");
            return;
        default:
            FUZZ_CHECK(0, "an event type");
        }
    }
}

/* split: feed whole (== size), byte by byte ((size_t)-1), or in two. */
static void run(const uint8_t *s, size_t size, int mask, size_t max,
                size_t split, fuzz_events *out)
{
    zeq_frame_reader rd;
    size_t i;

    zeq_frame_reader_init(&rd, max);
    rd.require_mask = mask;
    if (split == (size_t)-1) {
        for (i = 0; i < size; i++) {
            FUZZ_CHECK(zeq_frame_reader_feed(&rd, s + i, 1) == 0, "feed");
            take_events(&rd, out, max);
        }
    }
    else {
        FUZZ_CHECK(zeq_frame_reader_feed(&rd, s, split) == 0, "feed");
        take_events(&rd, out, max);
        FUZZ_CHECK(zeq_frame_reader_feed(&rd, s + split, size - split) == 0,
                   "feed");
        take_events(&rd, out, max);
    }
    out->pending = zeq_frame_reader_pending(&rd);
    zeq_frame_reader_free(&rd);
}

static void events_free(fuzz_events *e)
{
    size_t i;

    for (i = 0; i < e->n; i++) {
        free(e->ev[i].data);
    }
    free(e->ev);
    memset(e, 0, sizeof(*e));
}

static void same_events(const fuzz_events *a, const fuzz_events *b)
{
    size_t i;

    FUZZ_CHECK(a->n == b->n, "the same number of events, however fed");
    for (i = 0; i < a->n; i++) {
        FUZZ_CHECK(a->ev[i].type == b->ev[i].type
                   && a->ev[i].opcode == b->ev[i].opcode
                   && a->ev[i].close_code == b->ev[i].close_code
                   && fuzz_same(a->ev[i].data, a->ev[i].len, b->ev[i].data,
                                b->ev[i].len), "the same events, however fed");
    }
    if (a->n == 0 || a->ev[a->n - 1].type != ZEQ_FRAME_EV_ERROR) {
        FUZZ_CHECK(a->pending == b->pending, "the same bytes pending");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t maxes[8] = {0, 1, 125, 126, 1000, 65535, 65536,
                                    1u << 20};
    fuzz_events whole = {0}, other = {0};
    const uint8_t *s = data + 1;
    size_t n = size > 0 ? size - 1 : 0, max, splits[3], i;
    int mask;

    if (size == 0) {
        return 0;
    }
    mask = data[0] & 1;
    max = maxes[(data[0] >> 1) & 7];
    run(s, n, mask, max, n, &whole);
    splits[0] = (size_t)-1;
    splits[1] = n / 2;
    splits[2] = n > 0 ? (data[0] * 7u) % n : 0;
    for (i = 0; i < 3; i++) {
        run(s, n, mask, max, splits[i], &other);
        same_events(&whole, &other);
        events_free(&other);
    }
    events_free(&whole);
    return 0;
}
