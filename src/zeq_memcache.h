/* A small memcached client of the session store, on its text protocol
 * over plain sockets: get, set, add (atomic: the claim of a replay
 * number), delete, on one connection per thread and server, each step
 * bounded by the list's timeout. APR only, no httpd header. */
#ifndef ZEQ_MEMCACHE_H
#define ZEQ_MEMCACHE_H

#include "zeq_remote.h"

#include "apr_errno.h"

#define ZEQ_MEMCACHE_PORT 11211
/* memcached reads a relative expiry of more than 30 days as a date. */
#define ZEQ_MEMCACHE_MAX_TTL (86400 * 30)

/* As zeq_redis_get. */
apr_status_t zeq_memcache_get(zeq_remote *rl, const char *key,
                              unsigned char *buf, apr_size_t *len);
/* Stores the value for ttl (whole seconds, rounded up, at most 30 days). */
apr_status_t zeq_memcache_set(zeq_remote *rl, const char *key,
                              const unsigned char *data, apr_size_t len,
                              apr_interval_time_t ttl);
/* memcached's add: APR_SUCCESS, or APR_EEXIST when key exists. */
apr_status_t zeq_memcache_add(zeq_remote *rl, const char *key,
                              const unsigned char *data, apr_size_t len,
                              apr_interval_time_t ttl);
apr_status_t zeq_memcache_del(zeq_remote *rl, const char *key);

#endif
