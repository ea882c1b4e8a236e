/* The request gate: the one place that decides what an exchange is (the
 * module's own resource, a WebSocket opening, a request naming a session,
 * plaintext), whether policy allows each request of it (ZeqE2ERequire,
 * nph- scripts, the session's virtual host), and what happens to its body
 * and its answer. The reader, the sealer and the WebSocket filters are its
 * siblings: they act on what it wrote into the exchange. */
#ifndef ZEQ_GATE_H
#define ZEQ_GATE_H

#include "zeq_private.h"

void zeq_gate_register_hooks(apr_pool_t *p);

#endif
