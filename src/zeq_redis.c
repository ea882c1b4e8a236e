/* The session store's redis client (see zeq_redis.h).
 *
 * One connection per thread and server: a thread never waits for another,
 * and no lock is needed. A cached connection that the server closed in the
 * meantime (a restart of redis) is readable before we write: it is
 * replaced before use. A call that fails on a connection that was cached
 * is tried once more on a new one when it is idempotent (GET, SET, DEL),
 * never for SET NX, whose first try may have been carried out. */
#include "zeq_redis.h"

#include <hiredis/hiredis.h>

#include <stdio.h>
#include <string.h>

typedef struct {
    const zeq_remote_server *owner;   /* the server of this connection */
    redisContext *c;
} zeq_redis_conn;

static _Thread_local zeq_redis_conn zeq_redis_conns[ZEQ_REMOTE_MAX_SERVERS];

static struct timeval zeq_redis_tv(apr_interval_time_t t)
{
    struct timeval tv;

    tv.tv_sec = (time_t)apr_time_sec(t);
    tv.tv_usec = (suseconds_t)apr_time_usec(t);
    return tv;
}

static void zeq_redis_drop(zeq_redis_conn *conn)
{
    if (conn->c != NULL) {
        redisFree(conn->c);
    }
    conn->c = NULL;
    conn->owner = NULL;
}

/* This thread's connection to srv; *cached says whether it was open
 * already. NULL when the server cannot be reached. */
static redisContext *zeq_redis_conn_get(zeq_remote *rl, zeq_remote_server *srv,
                                        int *cached)
{
    zeq_redis_conn *conn = &zeq_redis_conns[srv->index];
    struct timeval tv = zeq_redis_tv(rl->timeout);

    if (conn->c != NULL && (conn->owner != srv || conn->c->err != 0 || !zeq_remote_fd_idle(conn->c->fd))) {
        zeq_redis_drop(conn);
    }
    *cached = conn->c != NULL;
    if (conn->c == NULL) {
        redisContext *c = redisConnectWithTimeout(srv->host, srv->port, tv);
        if (c == NULL || c->err != 0 || redisSetTimeout(c, tv) != REDIS_OK) {
            if (c != NULL) {
                redisFree(c);
            }
            return NULL;
        }
        conn->c = c;
        conn->owner = srv;
    }
    return conn->c;
}

/* Runs one command on key's server: its reply (freeReplyObject), or NULL
 * with *rv set. retry: the command may be sent again after a failure on a
 * cached connection. */
static redisReply *zeq_redis_run(zeq_remote *rl, const char *key, int argc,
                                 const char **argv, const size_t *argvlen,
                                 int retry, apr_status_t *rv)
{
    zeq_remote_server *srv = zeq_remote_server_of(rl, key);
    redisReply *reply = NULL;
    int attempt, cached = 0;

    apr_time_t start = apr_time_now();

    if (zeq_remote_held(srv)) {
        *rv = APR_TIMEUP;
        return NULL;
    }
    for (attempt = 0; attempt < 2; attempt++) {
        redisContext *c = zeq_redis_conn_get(rl, srv, &cached);
        if (c == NULL) {
            break;
        }
        reply = redisCommandArgv(c, argc, argv, argvlen);
        if (reply != NULL && reply->type != REDIS_REPLY_ERROR) {
            zeq_remote_result(rl, srv, start, 1);
            return reply;
        }
        if (reply != NULL) {
            /* The server answered: it is up, the command is wrong (or
             * the server refuses writes). */
            freeReplyObject(reply);
            zeq_remote_result(rl, srv, start, 1);
            *rv = APR_EGENERAL;
            return NULL;
        }
        zeq_redis_drop(&zeq_redis_conns[srv->index]);
        if (!retry || !cached) {
            break;
        }
    }
    *rv = zeq_remote_result(rl, srv, start, 0);
    return NULL;
}

apr_status_t zeq_redis_get(zeq_remote *rl, const char *key, unsigned char *buf,
                           apr_size_t *len)
{
    const char *argv[2] = { "GET", key };
    size_t argvlen[2] = { 3, strlen(key) };
    apr_status_t rv = APR_SUCCESS;
    redisReply *reply = zeq_redis_run(rl, key, 2, argv, argvlen, 1, &rv);

    if (reply == NULL) {
        return rv;
    }
    if (reply->type == REDIS_REPLY_NIL) {
        rv = APR_NOTFOUND;
    }
    else if (reply->type != REDIS_REPLY_STRING) {
        rv = APR_EGENERAL;
    }
    else if (reply->len > *len) {
        rv = APR_ENOSPC;
    }
    else {
        memcpy(buf, reply->str, reply->len);
        *len = reply->len;
    }
    freeReplyObject(reply);
    return rv;
}

static apr_status_t zeq_redis_store(zeq_remote *rl, const char *key,
                                    const unsigned char *data, apr_size_t len,
                                    apr_interval_time_t ttl, int nx)
{
    char ms[32];
    const char *argv[6] = { "SET", key, (const char *)data, "PX", ms, "NX" };
    size_t argvlen[6];
    apr_status_t rv = APR_SUCCESS;
    redisReply *reply;
    long long t = (long long)(ttl / 1000);

    snprintf(ms, sizeof(ms), "%lld", t < 1 ? 1 : t);
    argvlen[0] = 3;
    argvlen[1] = strlen(key);
    argvlen[2] = len;
    argvlen[3] = 2;
    argvlen[4] = strlen(ms);
    argvlen[5] = 2;
    reply = zeq_redis_run(rl, key, nx ? 6 : 5, argv, argvlen, !nx, &rv);
    if (reply == NULL) {
        return rv;
    }
    if (reply->type == REDIS_REPLY_STATUS && strcmp(reply->str, "OK") == 0) {
        rv = APR_SUCCESS;
    }
    else if (nx && reply->type == REDIS_REPLY_NIL) {
        rv = APR_EEXIST;
    }
    else {
        rv = APR_EGENERAL;
    }
    freeReplyObject(reply);
    return rv;
}

apr_status_t zeq_redis_set(zeq_remote *rl, const char *key,
                           const unsigned char *data, apr_size_t len,
                           apr_interval_time_t ttl)
{
    return zeq_redis_store(rl, key, data, len, ttl, 0);
}

apr_status_t zeq_redis_add(zeq_remote *rl, const char *key,
                           const unsigned char *data, apr_size_t len,
                           apr_interval_time_t ttl)
{
    return zeq_redis_store(rl, key, data, len, ttl, 1);
}

apr_status_t zeq_redis_del(zeq_remote *rl, const char *key)
{
    const char *argv[2] = { "DEL", key };
    size_t argvlen[2] = { 3, strlen(key) };
    apr_status_t rv = APR_SUCCESS;
    redisReply *reply = zeq_redis_run(rl, key, 2, argv, argvlen, 1, &rv);

    if (reply == NULL) {
        return rv;
    }
    rv = reply->type == REDIS_REPLY_INTEGER ? APR_SUCCESS : APR_EGENERAL;
    freeReplyObject(reply);
    return rv;
}
