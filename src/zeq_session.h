/* Sessions of mod_zeq_e2e in Apache's shared object cache (socache): the
 * record codec, the cache's set-up, and lookups. */
#ifndef ZEQ_SESSION_H
#define ZEQ_SESSION_H

#include "zeq_config.h"
#include "zeq_kex.h"

void zeq_session_register_hooks(apr_pool_t *p);
/* Creates a session with keys (of their version), bound to r's virtual
 * host (its scope and TTL); returns APR_SUCCESS, the id (base64url, in
 * r->pool) and its expiry (seconds since the epoch; expires may be
 * NULL). */
apr_status_t zeq_session_create(request_rec *r, const zeq_srv_conf *sc,
                                const zeq_keys *keys, const char **id,
                                apr_int64_t *expires);
/* Finds a live session of this virtual host's scope: APR_SUCCESS with its
 * keys and expiry, APR_NOTFOUND when unknown, malformed, expired or of
 * another scope, other values on a cache failure. */
apr_status_t zeq_session_lookup(request_rec *r, const zeq_srv_conf *sc,
                                const char *id, zeq_keys *keys,
                                apr_int64_t *expires);
/* Accepts sequence number seq of a v2 session at most once (in every
 * child and thread of this server): APR_SUCCESS, APR_EEXIST when it was
 * seen or is too old, APR_NOTFOUND when the session is gone, other values
 * on a cache failure. The window lives in the session's record. Call it
 * only after the request verified. */
apr_status_t zeq_session_accept_seq(request_rec *r, const zeq_srv_conf *sc,
                                    const char *id, apr_uint64_t seq);

#endif
