/* WebSocket framing; see zeq_frame.h. */
#include "zeq_frame.h"

#include <stdlib.h>
#include <string.h>

void zeq_frame_reader_init(zeq_frame_reader *rd, size_t max_message)
{
    memset(rd, 0, sizeof(*rd));
    rd->max_message = max_message;
}

static void zeq_frame_wipe_free(unsigned char *p, size_t cap)
{
    if (p != NULL) {
        volatile unsigned char *v = p;
        size_t i;
        for (i = 0; i < cap; i++) {
            v[i] = 0;
        }
        free(p);
    }
}

void zeq_frame_reader_free(zeq_frame_reader *rd)
{
    zeq_frame_wipe_free(rd->buf, rd->cap);
    zeq_frame_wipe_free(rd->msg, rd->msg_cap);
    memset(rd, 0, sizeof(*rd));
}

static int zeq_frame_reserve(unsigned char **p, size_t *cap, size_t need)
{
    size_t ncap;
    unsigned char *np;

    if (need <= *cap) {
        return 0;
    }
    ncap = *cap ? *cap : 4096;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2) {
            return -1;
        }
        ncap *= 2;
    }
    np = malloc(ncap);
    if (np == NULL) {
        return -1;
    }
    if (*p != NULL) {
        memcpy(np, *p, *cap);
        zeq_frame_wipe_free(*p, *cap);
    }
    *p = np;
    *cap = ncap;
    return 0;
}

int zeq_frame_reader_feed(zeq_frame_reader *rd, const unsigned char *data,
                          size_t len)
{
    if (len == 0) {
        return 0;
    }
    /* Drop consumed bytes first so the buffer holds at most one frame plus
     * what arrived after it. */
    if (rd->start > 0) {
        memmove(rd->buf, rd->buf + rd->start, rd->len - rd->start);
        rd->len -= rd->start;
        rd->start = 0;
    }
    if (len > SIZE_MAX - rd->len
        || zeq_frame_reserve(&rd->buf, &rd->cap, rd->len + len) != 0) {
        return -1;
    }
    memcpy(rd->buf + rd->len, data, len);
    rd->len += len;
    return 0;
}

int zeq_frame_reader_pending(const zeq_frame_reader *rd)
{
    return rd->len > rd->start || rd->msg_opcode != 0;
}

void zeq_frame_mask(unsigned char *data, size_t len,
                    const unsigned char mask[4], size_t offset)
{
    size_t i;

    for (i = 0; i < len; i++) {
        data[i] ^= mask[(i + offset) & 3];
    }
}

static void zeq_frame_error(zeq_frame_reader *rd, zeq_frame_event *ev,
                            int code)
{
    rd->failed = 1;
    ev->type = ZEQ_FRAME_EV_ERROR;
    ev->close_code = code;
}

void zeq_frame_reader_next(zeq_frame_reader *rd, zeq_frame_event *ev)
{
    memset(ev, 0, sizeof(*ev));
    while (!rd->failed) {
        const unsigned char *p;
        size_t avail = rd->len - rd->start, hlen = 2;
        uint64_t plen;
        int fin, opcode, masked;
        unsigned char *payload;

        if (avail < 2) {
            return;
        }
        p = rd->buf + rd->start;
        fin = (p[0] & 0x80) != 0;
        opcode = p[0] & 0x0f;
        masked = (p[1] & 0x80) != 0;
        plen = p[1] & 0x7f;
        if ((p[0] & 0x70) != 0             /* no extension is negotiated */
            || (rd->require_mask && !masked)) {
            zeq_frame_error(rd, ev, ZEQ_FRAME_CLOSE_PROTOCOL);
            return;
        }
        if (plen == 126) {
            if (avail < 4) {
                return;
            }
            plen = ((uint64_t)p[2] << 8) | p[3];
            hlen = 4;
        }
        else if (plen == 127) {
            int i;
            if (avail < 10) {
                return;
            }
            plen = 0;
            for (i = 0; i < 8; i++) {
                plen = (plen << 8) | p[2 + i];
            }
            if (plen >> 63) {
                zeq_frame_error(rd, ev, ZEQ_FRAME_CLOSE_PROTOCOL);
                return;
            }
            hlen = 10;
        }
        if (masked) {
            hlen += 4;
        }
        if (opcode >= 0x8) {
            if (!fin || plen > 125 || (opcode != ZEQ_FRAME_CLOSE
                                       && opcode != ZEQ_FRAME_PING
                                       && opcode != ZEQ_FRAME_PONG)) {
                zeq_frame_error(rd, ev, ZEQ_FRAME_CLOSE_PROTOCOL);
                return;
            }
        }
        else if (opcode != ZEQ_FRAME_CONT && opcode != ZEQ_FRAME_TEXT
                 && opcode != ZEQ_FRAME_BINARY) {
            zeq_frame_error(rd, ev, ZEQ_FRAME_CLOSE_PROTOCOL);
            return;
        }
        else if ((opcode == ZEQ_FRAME_CONT) != (rd->msg_opcode != 0)) {
            /* A continuation without a message, or a new message inside
             * one. */
            zeq_frame_error(rd, ev, ZEQ_FRAME_CLOSE_PROTOCOL);
            return;
        }
        else if (plen > rd->max_message
                 || rd->msg_len > rd->max_message - plen) {
            zeq_frame_error(rd, ev, ZEQ_FRAME_CLOSE_TOO_BIG);
            return;
        }
        if (avail < hlen || avail - hlen < plen) {
            return;
        }
        payload = rd->buf + rd->start + hlen;
        rd->start += hlen + (size_t)plen;
        if (opcode >= 0x8) {
            ev->type = ZEQ_FRAME_EV_CONTROL;
            ev->opcode = opcode;
            ev->data = p;
            ev->len = hlen + (size_t)plen;
            return;
        }
        if (masked) {
            zeq_frame_mask(payload, (size_t)plen, payload - 4, 0);
        }
        if (opcode != ZEQ_FRAME_CONT) {
            rd->msg_opcode = opcode;
            rd->msg_len = 0;
        }
        if (fin && rd->msg_len == 0) {
            /* An unfragmented message: no copy. */
            ev->type = ZEQ_FRAME_EV_MESSAGE;
            ev->opcode = rd->msg_opcode;
            ev->data = payload;
            ev->len = (size_t)plen;
            rd->msg_opcode = 0;
            return;
        }
        if (zeq_frame_reserve(&rd->msg, &rd->msg_cap,
                              rd->msg_len + (size_t)plen + 1) != 0) {
            zeq_frame_error(rd, ev, ZEQ_FRAME_CLOSE_TOO_BIG);
            return;
        }
        memcpy(rd->msg + rd->msg_len, payload, (size_t)plen);
        rd->msg_len += (size_t)plen;
        if (fin) {
            ev->type = ZEQ_FRAME_EV_MESSAGE;
            ev->opcode = rd->msg_opcode;
            ev->data = rd->msg;
            ev->len = rd->msg_len;
            rd->msg_opcode = 0;
            rd->msg_len = 0;
            return;
        }
    }
}

size_t zeq_frame_write_header(unsigned char out[ZEQ_FRAME_HEADER_MAX],
                              int opcode, const unsigned char *mask,
                              uint64_t len)
{
    size_t n = 2;
    unsigned char m = mask != NULL ? 0x80 : 0;

    out[0] = (unsigned char)(0x80 | (opcode & 0x0f));
    if (len < 126) {
        out[1] = (unsigned char)(m | len);
    }
    else if (len <= 0xffff) {
        out[1] = (unsigned char)(m | 126);
        out[2] = (unsigned char)(len >> 8);
        out[3] = (unsigned char)len;
        n = 4;
    }
    else {
        int i;
        out[1] = (unsigned char)(m | 127);
        for (i = 0; i < 8; i++) {
            out[2 + i] = (unsigned char)(len >> (56 - 8 * i));
        }
        n = 10;
    }
    if (mask != NULL) {
        memcpy(out + n, mask, 4);
        n += 4;
    }
    return n;
}

size_t zeq_frame_close(unsigned char out[4], int code)
{
    out[0] = 0x80 | ZEQ_FRAME_CLOSE;
    out[1] = 2;
    out[2] = (unsigned char)(code >> 8);
    out[3] = (unsigned char)code;
    return 4;
}

/* --- the response head before the frames -------------------------------- */

void zeq_frame_head_reset(zeq_frame_head *h)
{
    memset(h, 0, sizeof(*h));
}

size_t zeq_frame_head_scan(zeq_frame_head *h, const unsigned char *data,
                           size_t len)
{
    size_t i;

    for (i = 0; i < len && h->state != 3; i++) {
        unsigned char ch = data[i];

        if (h->first_len < sizeof(h->first)) {
            h->first[h->first_len++] = ch;
        }
        h->len++;
        switch (h->state) {
        case 1:
            h->state = ch == '\n' ? 3 : ch == '\r' ? 2 : 0;
            break;
        case 2:
            h->state = ch == '\n' ? 3 : 0;
            break;
        default:
            h->state = ch == '\n' ? 1 : 0;
            break;
        }
    }
    return i;
}

int zeq_frame_head_status(const zeq_frame_head *h)
{
    const unsigned char *s = h->first;

    if (h->state != 3 || h->first_len < 12 || memcmp(s, "HTTP/1.", 7) != 0
        || s[8] != ' ' || s[9] < '1' || s[9] > '5' || s[10] < '0'
        || s[10] > '9' || s[11] < '0' || s[11] > '9') {
        return 0;
    }
    return (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
}
