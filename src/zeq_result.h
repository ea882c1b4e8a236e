/* The return codes the pure parts of mod_zeq_e2e share (envelope, kex,
 * record, replay, sessrec, proto, frame, wintab). No httpd or APR header. */
#ifndef ZEQ_RESULT_H
#define ZEQ_RESULT_H

#define ZEQ_OK          0
#define ZEQ_ERR_SHORT  (-1)   /* input shorter than the format allows */
#define ZEQ_ERR_AUTH   (-2)   /* a tag or a signature does not verify */
#define ZEQ_ERR_CRYPTO (-3)   /* libcrypto failure (allocation, ...) */
#define ZEQ_ERR_BAD    (-4)   /* malformed input */
#define ZEQ_ERR_REPLAY (-5)   /* a sequence number seen before or too old */
#define ZEQ_ERR_VERSION (-6)  /* a protocol version not implemented */
#define ZEQ_ERR_KEY    (-7)   /* sealed under another key (session records) */
#define ZEQ_ERR_GONE   (-8)   /* no longer held (a replay window's slot) */
#define ZEQ_ERR_BUSY   (-9)   /* a lock its live holder does not give back */

#endif
