/* The handshake handler (PROTOCOL.md section 3). */
#ifndef ZEQ_HANDSHAKE_H
#define ZEQ_HANDSHAKE_H

#include "zeq_private.h"

void zeq_handshake_register_hooks(apr_pool_t *p);

#endif
