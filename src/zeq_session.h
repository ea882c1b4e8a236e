/* The session policy: what a session is (its sealed record, zeq_sessrec),
 * under which id it is stored (a hash of its id), which virtual host it
 * serves (its scope), how long it lives, and how each v2 sequence number is
 * accepted once; the store (zeq_store) keeps the records. Also the record
 * key that seals them (ZeqE2ERecordKey, or one generated into the runtime
 * directory). */
#ifndef ZEQ_SESSION_H
#define ZEQ_SESSION_H

#include "zeq_config.h"
#include "zeq_kex.h"

#define ZEQ_SESSION_HASH_LEN 32

void zeq_session_register_hooks(apr_pool_t *p);
/* A fresh session id (base64url of 32 random bytes, in p) and the hash it
 * is stored under; NULL when no random bytes could be had. */
const char *zeq_session_new_id(apr_pool_t *p,
                               unsigned char hash[ZEQ_SESSION_HASH_LEN]);
/* Stores the session of the id whose hash zeq_session_new_id gave, with
 * keys (of their version), bound to r's virtual host (its scope and TTL),
 * as unused; returns APR_SUCCESS and its expiry (seconds since the epoch;
 * expires may be NULL). Another status: the store failed. */
apr_status_t zeq_session_create(request_rec *r, const zeq_srv_conf *sc,
                                const zeq_keys *keys,
                                const unsigned char hash[ZEQ_SESSION_HASH_LEN],
                                apr_int64_t *expires);
/* Finds a live session of this virtual host's scope: APR_SUCCESS with its
 * keys and expiry, APR_NOTFOUND when unknown, malformed, expired, of
 * another scope or stored in a record that does not open (logged at
 * info), other values on a store failure. The first lookup of a session
 * marks it used (its record is written again without the unused flag); on
 * a store of one server, a session dropped as unused before it was marked
 * is APR_NOTFOUND, and a used one is answered from the process's cache for
 * up to ZEQ_RECCACHE_RECHECK seconds. */
apr_status_t zeq_session_lookup(request_rec *r, const zeq_srv_conf *sc,
                                const char *id, zeq_keys *keys,
                                apr_int64_t *expires);
/* Accepts sequence number seq of a v2 session at most once, in every child
 * and thread of this server and, on a shared store, of every server that
 * shares it: APR_SUCCESS; APR_EEXIST when it was seen (or, in a window, is
 * too old); APR_NOTFOUND when the session is gone; other values on a store
 * failure. Call it only after the request verified. */
apr_status_t zeq_session_accept_seq(request_rec *r, const zeq_srv_conf *sc,
                                    const char *id, apr_uint64_t seq);
/* Removes the session stored under hash if no request has named it yet:
 * APR_SUCCESS when it was removed; APR_EEXIST when it has been used (it
 * stays); APR_NOTFOUND when it is gone or does not open; other values on
 * a store failure. On a shared store the check and the removal are two
 * calls: a first request between them loses its session (401). */
apr_status_t zeq_session_drop_unused(request_rec *r,
                                     const unsigned char
                                     hash[ZEQ_SESSION_HASH_LEN]);
/* A short tag of a session for logs: the first 12 hex digits of the hash
 * it is stored under (never the id itself), in p. */
const char *zeq_session_tag(apr_pool_t *p, const char *id);

#endif
