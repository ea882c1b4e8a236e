/* The servers of a store shared over the network (redis, memcached): the
 * list parsed from HOST:PORT[,HOST:PORT...], the server a key lives on, and
 * each server's hold-down after it timed out (in this process), during
 * which operations fail at once instead of waiting for the timeout again. APR
 * only, no httpd header. */
#ifndef ZEQ_REMOTE_H
#define ZEQ_REMOTE_H

#include "apr_pools.h"
#include "apr_time.h"

/* At most this many servers in one list. */
#define ZEQ_REMOTE_MAX_SERVERS 16
/* How long a server that timed out is left alone. */
#define ZEQ_REMOTE_HOLD_DOWN apr_time_from_sec(1)

typedef struct {
    const char *host;
    int port;
    int index;                     /* its place in the list */
    volatile apr_uint64_t down_until; /* apr_time_t; 0: up */
} zeq_remote_server;

typedef struct {
    int n;
    zeq_remote_server servers[ZEQ_REMOTE_MAX_SERVERS];
    apr_interval_time_t timeout;   /* connect, send and receive, each */
    const char *spec;              /* as configured */
} zeq_remote;

/* Parses spec into a list allocated from p: NULL, or why not. */
const char *zeq_remote_parse(apr_pool_t *p, const char *spec, int default_port,
                             zeq_remote **out);
/* The server of key (FNV-1a of the key over the list). */
zeq_remote_server *zeq_remote_server_of(zeq_remote *rl, const char *key);
/* 1 when the server is in its hold-down. */
int zeq_remote_held(zeq_remote_server *srv);
/* True when a cached connection's socket can still be used: nothing to
 * read (the server has not closed it, no stray reply waits). */
int zeq_remote_fd_idle(int fd);
/* After an operation on srv that began at start: success clears the
 * hold-down; a failure that took half the timeout or more (the server
 * hangs) starts it, a quick one (refused) does not, so that service
 * resumes at once when the server is back. Returns the status of the
 * failure (APR_TIMEUP or APR_ECONNREFUSED), APR_SUCCESS for ok. */
apr_status_t zeq_remote_result(zeq_remote *rl, zeq_remote_server *srv,
                               apr_time_t start, int ok);

#endif
