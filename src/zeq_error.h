/* The module's own errors: plaintext JSON {"error": code, "message": text}
 * (docs/PROTOCOL.md section 10), answered before the application runs. */
#ifndef ZEQ_ERROR_H
#define ZEQ_ERROR_H

#include "zeq_private.h"

/* Answers {"error": code, "message": message} in plaintext and returns
 * DONE, for hooks and handlers to return. */
int zeq_error_send(request_rec *r, int status, const char *code,
                   const char *message);
/* 503 e2e_unavailable for a server without a secret (logged at info). */
int zeq_error_unconfigured(request_rec *r);
/* 503 e2e_unavailable with Retry-After: the session store failed, the
 * session may well exist (not 401). */
int zeq_error_store_unavailable(request_rec *r);

#endif
