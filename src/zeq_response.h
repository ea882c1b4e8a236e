/* The sealer: the output filter that seals the answer of a sealed
 * exchange into a v1 envelope. Whether an answer is sealed is the gate's
 * decision, read from the exchange. */
#ifndef ZEQ_RESPONSE_H
#define ZEQ_RESPONSE_H

#include "zeq_exchange.h"

void zeq_response_register_hooks(apr_pool_t *p);
/* Adds the sealing filter to r (a main request of a sealed exchange). */
void zeq_response_add_filter(request_rec *r);

#endif
