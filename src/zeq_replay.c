/* The replay window (see zeq_replay.h). */
#include "zeq_replay.h"

#include <string.h>

#define ZEQ_REPLAY_FORMAT 1

void zeq_replay_init(zeq_replay *w)
{
    memset(w, 0, sizeof(*w));
}

static int zeq_replay_bit(const zeq_replay *w, uint64_t k)
{
    return (int)((w->bits[k / 64] >> (k % 64)) & 1);
}

int zeq_replay_check(const zeq_replay *w, uint64_t seq)
{
    uint64_t k;

    if (seq > ZEQ_SEQ_MAX) {
        return ZEQ_ERR_BAD;
    }
    if (!w->any || seq > w->highest) {
        return ZEQ_OK;
    }
    k = w->highest - seq;
    if (k >= ZEQ_REPLAY_WINDOW) {
        return ZEQ_ERR_REPLAY;          /* too old to tell: refused */
    }
    return zeq_replay_bit(w, k) ? ZEQ_ERR_REPLAY : ZEQ_OK;
}

/* Shifts the bitmap up by n (the new highest is n above the old). */
static void zeq_replay_shift(zeq_replay *w, uint64_t n)
{
    uint64_t words = n / 64;
    unsigned int bits = (unsigned int)(n % 64);
    size_t count = ZEQ_REPLAY_WINDOW / 64, i;

    if (n >= ZEQ_REPLAY_WINDOW) {
        memset(w->bits, 0, sizeof(w->bits));
        return;
    }
    for (i = count; i-- > 0;) {
        uint64_t v = 0;
        if (i >= words) {
            v = w->bits[i - words] << bits;
            if (bits > 0 && i >= words + 1) {
                v |= w->bits[i - words - 1] >> (64 - bits);
            }
        }
        w->bits[i] = v;
    }
}

int zeq_replay_accept(zeq_replay *w, uint64_t seq)
{
    int rv = zeq_replay_check(w, seq);

    if (rv != ZEQ_OK) {
        return rv;
    }
    if (!w->any) {
        memset(w->bits, 0, sizeof(w->bits));
        w->any = 1;
        w->highest = seq;
    }
    else if (seq > w->highest) {
        zeq_replay_shift(w, seq - w->highest);
        w->highest = seq;
    }
    {
        uint64_t k = w->highest - seq;
        w->bits[k / 64] |= (uint64_t)1 << (k % 64);
    }
    return ZEQ_OK;
}

void zeq_replay_encode(const zeq_replay *w,
                       unsigned char out[ZEQ_REPLAY_ENCODED_LEN])
{
    size_t i, k;

    out[0] = ZEQ_REPLAY_FORMAT;
    out[1] = w->any ? 1 : 0;
    for (i = 0; i < 8; i++) {
        out[2 + i] = (unsigned char)(w->highest >> (56 - 8 * i));
    }
    for (i = 0; i < ZEQ_REPLAY_WINDOW / 64; i++) {
        for (k = 0; k < 8; k++) {
            out[10 + 8 * i + k] = (unsigned char)(w->bits[i] >> (56 - 8 * k));
        }
    }
}

int zeq_replay_decode(zeq_replay *w, const unsigned char *in, size_t len)
{
    size_t i, k;

    if (len != ZEQ_REPLAY_ENCODED_LEN || in[0] != ZEQ_REPLAY_FORMAT
        || in[1] > 1) {
        return ZEQ_ERR_BAD;
    }
    zeq_replay_init(w);
    w->any = in[1];
    for (i = 0; i < 8; i++) {
        w->highest = (w->highest << 8) | in[2 + i];
    }
    for (i = 0; i < ZEQ_REPLAY_WINDOW / 64; i++) {
        for (k = 0; k < 8; k++) {
            w->bits[i] = (w->bits[i] << 8) | in[10 + 8 * i + k];
        }
    }
    if (w->highest > ZEQ_SEQ_MAX || (!w->any && w->highest != 0)) {
        return ZEQ_ERR_BAD;
    }
    return ZEQ_OK;
}
