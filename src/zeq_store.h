/* The session store: the one module-wide record of where sessions live,
 * as mod_ssl keeps one SSLModConfigRec. Either a socache provider (shmcb by
 * default, dbm, ...), called under the registered global mutex
 * zeq-e2e-cache when it is not MP-safe; or redis or memcached, spoken to
 * directly (zeq_redis, zeq_memcache): their socache providers answer
 * NOTFOUND for a server they cannot reach, which would turn an outage into
 * unknown sessions, and cannot add atomically. Entries are opaque bytes
 * under binary ids (the session layer's hashes). Besides store, retrieve
 * and remove: the atomic update a replay window needs on one server, and,
 * for the shared stores, the atomic add that claims a sequence number once
 * across servers. */
#ifndef ZEQ_STORE_H
#define ZEQ_STORE_H

#include "zeq_private.h"

/* Registers the mutexes (pre_config), sets the store up (post_config),
 * attaches children (child_init). */
void zeq_store_register_hooks(apr_pool_t *p);
/* ZeqE2ESessionCache PROVIDER[:ARGS]: NULL, or why not (without the
 * directive's name). p lives as long as the configuration. */
const char *zeq_store_configure(apr_pool_t *p, apr_pool_t *ptemp,
                                const char *arg);
/* ZeqE2ESessionCacheTimeout: how long one step of a shared store's call
 * may wait. */
void zeq_store_timeout_set(apr_interval_time_t timeout);
/* 1 when the store is redis or memcached: shared by several servers. */
int zeq_store_shared(void);
/* What the store is, for the status and the log ("redis 127.0.0.1:6379"). */
const char *zeq_store_describe(apr_pool_t *p);

/* The entry under id into buf (*len: its size in, the length out):
 * APR_SUCCESS; APR_NOTFOUND when there is none (or it does not fit);
 * another status when the store failed. */
apr_status_t zeq_store_get(server_rec *s, const unsigned char *id,
                           apr_size_t idlen, unsigned char *buf,
                           apr_size_t *len, apr_pool_t *p);
/* Stores data under id until expiry (absolute). */
apr_status_t zeq_store_put(server_rec *s, const unsigned char *id,
                           apr_size_t idlen, apr_time_t expiry,
                           const unsigned char *data, apr_size_t len,
                           apr_pool_t *p);
apr_status_t zeq_store_remove(server_rec *s, const unsigned char *id,
                              apr_size_t idlen, apr_pool_t *p);
/* The change of an entry: data (cap bytes of room) holds *len bytes; the
 * function may rewrite them and their expiry. APR_SUCCESS stores the
 * result, ZEQ_STORE_REMOVE removes the entry, anything else is returned as
 * it is and stores nothing. */
#define ZEQ_STORE_REMOVE (APR_OS_START_USERERR + 1)
typedef apr_status_t (*zeq_store_update_fn)(void *baton, unsigned char *data,
                                            apr_size_t *len, apr_size_t cap,
                                            apr_time_t *expiry);
/* Reads, changes and stores (or removes) the entry under id as one step for
 * every process and thread of this server (a socache store's mutex):
 * APR_SUCCESS, ZEQ_STORE_REMOVE once removed, what fn returned;
 * APR_NOTFOUND when there is none; APR_ENOTIMPL for a shared store, which
 * claims with zeq_store_add instead. */
apr_status_t zeq_store_update(server_rec *s, const unsigned char *id,
                              apr_size_t idlen, apr_size_t cap,
                              zeq_store_update_fn fn, void *baton,
                              apr_pool_t *p);
/* Shared stores: creates the entry id until expiry only if it does not
 * exist, atomically for every server of the store (SET NX PX, add):
 * APR_SUCCESS, APR_EEXIST; APR_ENOTIMPL for a socache store. */
apr_status_t zeq_store_add(server_rec *s, const unsigned char *id,
                           apr_size_t idlen, apr_time_t expiry, apr_pool_t *p);
/* The number of live entries, or -1 where the store cannot count them
 * (only socache providers that iterate can). */
long zeq_store_count(server_rec *s, apr_pool_t *p);
/* The provider's own status (socache), as mod_ssl shows its cache's. */
void zeq_store_status(request_rec *r, int flags);

#endif
