/* The request reader: reads an envelope body before the handler runs,
 * decrypts it into the exchange, and serves the plaintext to the handler
 * through a request-level input filter. Policy is the gate's. */
#ifndef ZEQ_REQUEST_H
#define ZEQ_REQUEST_H

#include "zeq_exchange.h"

void zeq_request_register_hooks(apr_pool_t *p);
/* Reads r's whole body (an envelope of at most limit bytes) and decrypts
 * it into ex->plain with ex->key; rewrites r->headers_in for the
 * plaintext. OK, or DONE after answering a module error (400, 413) or an
 * HTTP status to return. Nothing is released unless the tag verifies. */
int zeq_request_decrypt(request_rec *r, zeq_exchange *ex, apr_off_t limit);
/* Adds the plaintext input filter to r, once. */
void zeq_request_add_filter(request_rec *r, zeq_exchange *ex);

#endif
