/* Encrypted WebSockets: the connection filters that seal and open every
 * message of a socket opened with a valid session (PROTOCOL.md section
 * 16). The gate decides what is an opening and arms them. */
#ifndef ZEQ_WS_H
#define ZEQ_WS_H

#include "zeq_exchange.h"

void zeq_ws_register_hooks(apr_pool_t *p);
/* Arms the filters on r's connection with ex's key: they stay transparent
 * until the 101 is out. OK, or DONE after a module error answer. */
int zeq_ws_arm(request_rec *r, zeq_exchange *ex, apr_size_t max_message);

#endif
