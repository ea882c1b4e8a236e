/* A small redis client of the session store, on hiredis: GET, SET with PX,
 * SET NX PX (the atomic claim of a replay number), DEL, on one connection
 * per thread and server, each call bounded by the list's timeout. APR and
 * hiredis only, no httpd header. */
#ifndef ZEQ_REDIS_H
#define ZEQ_REDIS_H

#include "zeq_remote.h"

#include "apr_errno.h"

#define ZEQ_REDIS_PORT 6379

/* APR_SUCCESS with the value in buf (*len: its size in, the length out);
 * APR_NOTFOUND; APR_ENOSPC for a value larger than buf; another status
 * when the server cannot be reached or answers an error. */
apr_status_t zeq_redis_get(zeq_remote *rl, const char *key, unsigned char *buf,
                           apr_size_t *len);
/* Stores the value for ttl (at least 1 ms). */
apr_status_t zeq_redis_set(zeq_remote *rl, const char *key,
                           const unsigned char *data, apr_size_t len,
                           apr_interval_time_t ttl);
/* Stores the value for ttl only when key does not exist (SET NX PX):
 * APR_SUCCESS, or APR_EEXIST. */
apr_status_t zeq_redis_add(zeq_remote *rl, const char *key,
                           const unsigned char *data, apr_size_t len,
                           apr_interval_time_t ttl);
/* Removes key (APR_SUCCESS also when it was not there). */
apr_status_t zeq_redis_del(zeq_remote *rl, const char *key);

#endif
