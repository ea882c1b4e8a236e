/* The session store's memcached client (see zeq_memcache.h). Connections
 * are cached per thread and replaced as the redis client's are
 * (zeq_redis.c). Keys are the store's hex keys: no blank, no control
 * character, far below memcached's 250 bytes. */
#include "zeq_memcache.h"

#include "apr_strings.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define ZEQ_MC_BUF 1024          /* the longest reply we read whole */

typedef struct {
    const zeq_remote_server *owner;
    int fd;                       /* -1: none */
    char in[ZEQ_MC_BUF];
    size_t have;                  /* bytes waiting in in */
} zeq_mc_conn;

static _Thread_local zeq_mc_conn zeq_mc_conns[ZEQ_REMOTE_MAX_SERVERS];
static _Thread_local int zeq_mc_ready;

static void zeq_mc_drop(zeq_mc_conn *conn)
{
    if (conn->fd >= 0) {
        close(conn->fd);
    }
    conn->fd = -1;
    conn->have = 0;
    conn->owner = NULL;
}

static int zeq_mc_wait(int fd, short events, apr_interval_time_t timeout)
{
    struct pollfd pfd;
    int ms = (int)(timeout / 1000), n;

    pfd.fd = fd;
    pfd.events = events;
    pfd.revents = 0;
    do {
        n = poll(&pfd, 1, ms < 1 ? 1 : ms);
    } while (n < 0 && errno == EINTR);
    return n == 1 && !(pfd.revents & POLLNVAL);
}

/* A non-blocking connection to srv within the timeout, or -1. */
static int zeq_mc_connect(const zeq_remote_server *srv,
                          apr_interval_time_t timeout)
{
    struct addrinfo hints, *res = NULL, *ai;
    char port[16];
    int fd = -1;

    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    snprintf(port, sizeof(port), "%d", srv->port);
    if (getaddrinfo(srv->host, port, &hints, &res) != 0) {
        return -1;
    }
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        int err = 0;
        socklen_t elen = sizeof(err);

        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
                    ai->ai_protocol);
        if (fd < 0) {
            continue;
        }
        if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == 0
            && (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0
                || (errno == EINPROGRESS && zeq_mc_wait(fd, POLLOUT, timeout)
                    && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) == 0
                    && err == 0))) {
            break;
        }
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

static int zeq_mc_send(int fd, const char *p, size_t n,
                       apr_interval_time_t timeout)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
        }
        else if (w < 0 && errno == EINTR) {
            continue;
        }
        else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!zeq_mc_wait(fd, POLLOUT, timeout)) {
                return 0;
            }
        }
        else {
            return 0;
        }
    }
    return 1;
}

/* Reads more into conn->in; 0 on EOF, error or timeout. */
static int zeq_mc_fill(zeq_mc_conn *conn, apr_interval_time_t timeout)
{
    ssize_t r;

    if (conn->have == sizeof(conn->in)) {
        return 0;
    }
    for (;;) {
        r = recv(conn->fd, conn->in + conn->have, sizeof(conn->in) - conn->have,
                 0);
        if (r > 0) {
            conn->have += (size_t)r;
            return 1;
        }
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)
            && zeq_mc_wait(conn->fd, POLLIN, timeout)) {
            continue;
        }
        return 0;
    }
}

/* The first line of the reply (without CRLF, NUL-terminated in line);
 * consumes it. */
static int zeq_mc_line(zeq_mc_conn *conn, char *line, size_t cap,
                       apr_interval_time_t timeout)
{
    for (;;) {
        char *eol = memchr(conn->in, '\n', conn->have);
        if (eol != NULL) {
            size_t n = (size_t)(eol - conn->in) + 1;
            size_t l = n >= 2 && eol[-1] == '\r' ? n - 2 : n - 1;
            if (l >= cap) {
                return 0;
            }
            memcpy(line, conn->in, l);
            line[l] = '\0';
            memmove(conn->in, conn->in + n, conn->have - n);
            conn->have -= n;
            return 1;
        }
        if (!zeq_mc_fill(conn, timeout)) {
            return 0;
        }
    }
}

/* Reads exactly n bytes of data (and its CRLF) into out (or discards
 * them with out NULL). */
static int zeq_mc_data(zeq_mc_conn *conn, unsigned char *out, size_t n,
                       apr_interval_time_t timeout)
{
    size_t want = n + 2, got = 0;

    while (got < want) {
        size_t k;
        if (conn->have == 0 && !zeq_mc_fill(conn, timeout)) {
            return 0;
        }
        k = conn->have < want - got ? conn->have : want - got;
        if (out != NULL && got < n) {
            size_t d = k < n - got ? k : n - got;
            memcpy(out + got, conn->in, d);
        }
        memmove(conn->in, conn->in + k, conn->have - k);
        conn->have -= k;
        got += k;
    }
    return 1;
}

static zeq_mc_conn *zeq_mc_conn_get(zeq_remote *rl, zeq_remote_server *srv,
                                    int *cached)
{
    zeq_mc_conn *conn;
    int i;

    if (!zeq_mc_ready) {
        for (i = 0; i < ZEQ_REMOTE_MAX_SERVERS; i++) {
            zeq_mc_conns[i].fd = -1;
        }
        zeq_mc_ready = 1;
    }
    conn = &zeq_mc_conns[srv->index];
    if (conn->fd >= 0 && (conn->owner != srv || conn->have != 0 || !zeq_remote_fd_idle(conn->fd))) {
        zeq_mc_drop(conn);
    }
    *cached = conn->fd >= 0;
    if (conn->fd < 0) {
        conn->fd = zeq_mc_connect(srv, rl->timeout);
        if (conn->fd < 0) {
            return NULL;
        }
        conn->owner = srv;
        conn->have = 0;
    }
    return conn;
}

/* One exchange: sends head (and data with its CRLF), reads the reply's
 * first line into line. For get, a VALUE line is followed by its data
 * into buf (*len) and END. Returns 1 when the server answered. */
typedef struct {
    const char *head;
    const unsigned char *data;
    apr_size_t datalen;
    unsigned char *buf;           /* get */
    apr_size_t *len;
    char line[256];
    int toolarge;
} zeq_mc_call;

static int zeq_mc_once(zeq_mc_conn *conn, zeq_mc_call *call,
                       apr_interval_time_t t)
{
    if (!zeq_mc_send(conn->fd, call->head, strlen(call->head), t)
        || (call->data != NULL
            && (!zeq_mc_send(conn->fd, (const char *)call->data,
                             call->datalen, t)
                || !zeq_mc_send(conn->fd, "\r\n", 2, t)))
        || !zeq_mc_line(conn, call->line, sizeof(call->line), t)) {
        return 0;
    }
    if (call->buf != NULL && strncmp(call->line, "VALUE ", 6) == 0) {
        char end[16], *sp = strrchr(call->line, ' ');
        char *stop = NULL;
        unsigned long n = sp ? strtoul(sp + 1, &stop, 10) : 0;
        int fits;

        if (sp == NULL || stop == sp + 1 || *stop != '\0' || n > 1048576) {
            return 0;
        }
        fits = n <= *call->len;
        if (!zeq_mc_data(conn, fits ? call->buf : NULL, n, t)
            || !zeq_mc_line(conn, end, sizeof(end), t)
            || strcmp(end, "END") != 0) {
            return 0;
        }
        if (fits) {
            *call->len = n;
        }
        call->toolarge = !fits;
    }
    return 1;
}

static int zeq_mc_run(zeq_remote *rl, const char *key, zeq_mc_call *call,
                      int retry, apr_status_t *rv)
{
    zeq_remote_server *srv = zeq_remote_server_of(rl, key);
    int attempt, cached = 0;

    apr_time_t start = apr_time_now();

    if (zeq_remote_held(srv)) {
        *rv = APR_TIMEUP;
        return 0;
    }
    for (attempt = 0; attempt < 2; attempt++) {
        zeq_mc_conn *conn = zeq_mc_conn_get(rl, srv, &cached);
        if (conn == NULL) {
            break;
        }
        if (zeq_mc_once(conn, call, rl->timeout)) {
            zeq_remote_result(rl, srv, start, 1);
            return 1;
        }
        zeq_mc_drop(conn);
        if (!retry || !cached) {
            break;
        }
    }
    *rv = zeq_remote_result(rl, srv, start, 0);
    return 0;
}

apr_status_t zeq_memcache_get(zeq_remote *rl, const char *key,
                              unsigned char *buf, apr_size_t *len)
{
    char head[300];
    zeq_mc_call call;
    apr_status_t rv = APR_SUCCESS;

    memset(&call, 0, sizeof(call));
    snprintf(head, sizeof(head), "get %s\r\n", key);
    call.head = head;
    call.buf = buf;
    call.len = len;
    if (!zeq_mc_run(rl, key, &call, 1, &rv)) {
        return rv;
    }
    if (strcmp(call.line, "END") == 0) {
        return APR_NOTFOUND;
    }
    if (strncmp(call.line, "VALUE ", 6) == 0) {
        return call.toolarge ? APR_ENOSPC : APR_SUCCESS;
    }
    return APR_EGENERAL;
}

static apr_status_t zeq_mc_store(zeq_remote *rl, const char *cmd,
                                 const char *key, const unsigned char *data,
                                 apr_size_t len, apr_interval_time_t ttl,
                                 int retry)
{
    char head[300];
    zeq_mc_call call;
    apr_status_t rv = APR_SUCCESS;
    long long secs = (long long)((ttl + APR_USEC_PER_SEC - 1)
                                 / APR_USEC_PER_SEC);

    if (secs < 1) {
        secs = 1;
    }
    if (secs > ZEQ_MEMCACHE_MAX_TTL) {
        secs = ZEQ_MEMCACHE_MAX_TTL;
    }
    memset(&call, 0, sizeof(call));
    snprintf(head, sizeof(head), "%s %s 0 %lld %" APR_SIZE_T_FMT "\r\n", cmd,
             key, secs, len);
    call.head = head;
    call.data = data;
    call.datalen = len;
    if (!zeq_mc_run(rl, key, &call, retry, &rv)) {
        return rv;
    }
    if (strcmp(call.line, "STORED") == 0) {
        return APR_SUCCESS;
    }
    if (strcmp(call.line, "NOT_STORED") == 0) {
        return APR_EEXIST;
    }
    return APR_EGENERAL;
}

apr_status_t zeq_memcache_set(zeq_remote *rl, const char *key,
                              const unsigned char *data, apr_size_t len,
                              apr_interval_time_t ttl)
{
    return zeq_mc_store(rl, "set", key, data, len, ttl, 1);
}

apr_status_t zeq_memcache_add(zeq_remote *rl, const char *key,
                              const unsigned char *data, apr_size_t len,
                              apr_interval_time_t ttl)
{
    return zeq_mc_store(rl, "add", key, data, len, ttl, 0);
}

apr_status_t zeq_memcache_del(zeq_remote *rl, const char *key)
{
    char head[300];
    zeq_mc_call call;
    apr_status_t rv = APR_SUCCESS;

    memset(&call, 0, sizeof(call));
    snprintf(head, sizeof(head), "delete %s\r\n", key);
    call.head = head;
    if (!zeq_mc_run(rl, key, &call, 1, &rv)) {
        return rv;
    }
    return strcmp(call.line, "DELETED") == 0
           || strcmp(call.line, "NOT_FOUND") == 0 ? APR_SUCCESS
                                                  : APR_EGENERAL;
}
