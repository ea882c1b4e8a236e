/* The servers of a shared store (see zeq_remote.h). */
#include "zeq_remote.h"

#include "apr_atomic.h"
#include "apr_network_io.h"
#include "apr_lib.h"
#include "apr_strings.h"

#include <poll.h>
#include <string.h>

/* apr_parse_addr_port takes "host:word" for a host name: the port, when
 * given (after the last colon outside brackets), must be digits. */
static int zeq_remote_port_ok(const char *tok)
{
    const char *close = strrchr(tok, ']'), *colon = strrchr(tok, ':');

    if (colon == NULL || (close != NULL && colon < close)) {
        return 1;
    }
    if (colon[1] == '\0') {
        return 0;
    }
    for (colon++; *colon; colon++) {
        if (!apr_isdigit(*colon)) {
            return 0;
        }
    }
    return 1;
}

const char *zeq_remote_parse(apr_pool_t *p, const char *spec, int default_port,
                             zeq_remote **out)
{
    zeq_remote *rl = apr_pcalloc(p, sizeof(*rl));
    char *list = apr_pstrdup(p, spec ? spec : ""), *tok, *last = NULL;
    apr_status_t rv;

    rl->spec = apr_pstrdup(p, spec ? spec : "");
    for (tok = apr_strtok(list, ",", &last); tok != NULL;
         tok = apr_strtok(NULL, ",", &last)) {
        char *host = NULL, *scope = NULL;
        apr_port_t port = 0;

        if (rl->n == ZEQ_REMOTE_MAX_SERVERS) {
            return apr_psprintf(p, "at most %d servers",
                                ZEQ_REMOTE_MAX_SERVERS);
        }
        rv = apr_parse_addr_port(&host, &scope, &port, tok, p);
        if (rv != APR_SUCCESS || host == NULL || scope != NULL
            || !zeq_remote_port_ok(tok)) {
            return apr_psprintf(p, "'%s' is not HOST:PORT", tok);
        }
        rl->servers[rl->n].host = host;
        rl->servers[rl->n].port = port ? port : default_port;
        rl->servers[rl->n].index = rl->n;
        rl->n++;
    }
    if (rl->n == 0) {
        return "no server given (HOST:PORT[,HOST:PORT...])";
    }
    rl->timeout = apr_time_from_sec(2);
    *out = rl;
    return NULL;
}

zeq_remote_server *zeq_remote_server_of(zeq_remote *rl, const char *key)
{
    apr_uint32_t h = 2166136261u;
    const unsigned char *k = (const unsigned char *)key;

    while (*k) {
        h = (h ^ *k++) * 16777619u;
    }
    return &rl->servers[h % (apr_uint32_t)rl->n];
}

int zeq_remote_fd_idle(int fd)
{
    struct pollfd pfd;

    pfd.fd = fd;
    pfd.events = POLLIN;
    pfd.revents = 0;
    return poll(&pfd, 1, 0) == 0;
}

int zeq_remote_held(zeq_remote_server *srv)
{
    apr_uint64_t until = apr_atomic_read64(&srv->down_until);

    return until != 0 && (apr_time_t)until > apr_time_now();
}

apr_status_t zeq_remote_result(zeq_remote *rl, zeq_remote_server *srv,
                               apr_time_t start, int ok)
{
    int slow;

    if (ok) {
        apr_atomic_set64(&srv->down_until, 0);
        return APR_SUCCESS;
    }
    slow = apr_time_now() - start >= rl->timeout / 2;
    if (slow) {
        apr_atomic_set64(&srv->down_until,
                         (apr_uint64_t)(apr_time_now() + ZEQ_REMOTE_HOLD_DOWN));
    }
    return slow ? APR_TIMEUP : APR_ECONNREFUSED;
}
