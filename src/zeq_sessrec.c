/* The session record codec (see zeq_sessrec.h). */
#include "zeq_sessrec.h"

#include <string.h>

static void zeq_sessrec_put64(unsigned char *p, int64_t v)
{
    uint64_t u = (uint64_t)v;
    int i;

    for (i = 7; i >= 0; i--) {
        p[i] = (unsigned char)(u & 0xff);
        u >>= 8;
    }
}

static int64_t zeq_sessrec_get64(const unsigned char *p)
{
    uint64_t v = 0;
    int i;

    for (i = 0; i < 8; i++) {
        v = (v << 8) | p[i];
    }
    return (int64_t)v;
}

size_t zeq_sessrec_encode(const zeq_sessrec *rec,
                          unsigned char out[ZEQ_SESSREC_MAX_LEN])
{
    int v2 = rec->keys.version == 2;

    memset(out, 0, 4);
    out[0] = v2 ? 2 : 1;
    memcpy(out + 4, rec->scope, ZEQ_SESSREC_SCOPE_LEN);
    zeq_sessrec_put64(out + 20, rec->created);
    zeq_sessrec_put64(out + 28, rec->expires);
    memcpy(out + 36, rec->keys.c2s, ZEQ_KEX_KEY_LEN);
    if (!v2) {
        return ZEQ_SESSREC_V1_LEN;
    }
    memcpy(out + 68, rec->keys.s2c, ZEQ_KEX_KEY_LEN);
    zeq_replay_encode(&rec->window, out + 100);
    return ZEQ_SESSREC_V2_LEN;
}

int zeq_sessrec_decode(const unsigned char *in, size_t len, zeq_sessrec *rec)
{
    memset(rec, 0, sizeof(*rec));
    if (len < 4 || in[1] != 0 || in[2] != 0 || in[3] != 0
        || !((in[0] == 1 && len == ZEQ_SESSREC_V1_LEN)
             || (in[0] == 2 && len == ZEQ_SESSREC_V2_LEN))) {
        return ZEQ_ERR_BAD;
    }
    rec->keys.version = in[0];
    memcpy(rec->scope, in + 4, ZEQ_SESSREC_SCOPE_LEN);
    rec->created = zeq_sessrec_get64(in + 20);
    rec->expires = zeq_sessrec_get64(in + 28);
    memcpy(rec->keys.c2s, in + 36, ZEQ_KEX_KEY_LEN);
    memcpy(rec->keys.s2c, in[0] == 2 ? in + 68 : in + 36, ZEQ_KEX_KEY_LEN);
    if (in[0] == 2
        && zeq_replay_decode(&rec->window, in + 100, ZEQ_REPLAY_ENCODED_LEN)
               != ZEQ_OK) {
        memset(rec, 0, sizeof(*rec));
        return ZEQ_ERR_BAD;
    }
    return ZEQ_OK;
}
