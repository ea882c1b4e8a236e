/* Sessions of mod_zeq_e2e in Apache's shared object cache (socache): the
 * record codec, the cache's set-up, and lookups. */
#ifndef ZEQ_SESSION_H
#define ZEQ_SESSION_H

#include "zeq_config.h"
#include "zeq_envelope.h"

void zeq_session_register_hooks(apr_pool_t *p);
/* Creates a session for key, bound to r's virtual host (its scope and
 * TTL); returns APR_SUCCESS and the id (base64url, in r->pool). */
apr_status_t zeq_session_create(request_rec *r, const zeq_srv_conf *sc,
                                const unsigned char key[ZEQ_KEY_LEN],
                                const char **id);
/* Finds a live session of this virtual host's scope: APR_SUCCESS with the
 * key, APR_NOTFOUND when unknown, malformed, expired or of another scope,
 * other values on a cache failure. */
apr_status_t zeq_session_lookup(request_rec *r, const zeq_srv_conf *sc,
                                const char *id,
                                unsigned char key[ZEQ_KEY_LEN]);

#endif
