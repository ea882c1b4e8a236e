/* The replay window of a v2 session (docs/PROTOCOL.md): every sequence
 * number is accepted at most once; a number above the highest seen minus
 * ZEQ_REPLAY_WINDOW is accepted when not seen before, any older one is
 * refused (as IPsec ESP and DTLS keep theirs: the highest number and a
 * bitmap of the ones below it). The caller checks a number only after its
 * request has verified, and commits it in the same atomic step as it
 * stores the window.
 *
 * Pure C11, no library: unit-tested alone. */
#ifndef ZEQ_REPLAY_H
#define ZEQ_REPLAY_H

#include <stddef.h>
#include <stdint.h>

#include "zeq_result.h"

#define ZEQ_REPLAY_WINDOW 1024
#define ZEQ_SEQ_MAX ((((uint64_t)1) << 53) - 1)   /* exact in JavaScript */
/* version (1) || flags (1: any seen) || highest (8) || bitmap (128) */
#define ZEQ_REPLAY_ENCODED_LEN (2 + 8 + ZEQ_REPLAY_WINDOW / 8)

typedef struct {
    int any;                       /* a number was accepted */
    uint64_t highest;              /* the highest accepted */
    uint64_t bits[ZEQ_REPLAY_WINDOW / 64];  /* bit k: highest - k seen */
} zeq_replay;

/* An empty window. */
void zeq_replay_init(zeq_replay *w);
/* ZEQ_OK when seq may be accepted, ZEQ_ERR_REPLAY when it was seen or is
 * too old, ZEQ_ERR_BAD above ZEQ_SEQ_MAX. */
int zeq_replay_check(const zeq_replay *w, uint64_t seq);
/* Checks seq and records it: ZEQ_OK, or what zeq_replay_check says (the
 * window is then unchanged). */
int zeq_replay_accept(zeq_replay *w, uint64_t seq);
void zeq_replay_encode(const zeq_replay *w,
                       unsigned char out[ZEQ_REPLAY_ENCODED_LEN]);
/* ZEQ_OK, or ZEQ_ERR_BAD for bytes that are not a window of this
 * version. */
int zeq_replay_decode(zeq_replay *w, const unsigned char *in, size_t len);

#endif
