/* The handshake guard (see zeq_guard.h).
 *
 * The tables live in anonymous shared memory that the parent makes in
 * post_config, from the configuration pool: every child of a generation
 * shares them, and a restart (graceful too) makes new ones, so nothing
 * outlives the generation that took it. Buckets and slots change by
 * compare-and-swap, with no lock; the rings of sessions are changed under
 * the global mutex zeq-e2e-unused (the Mutex directive applies), held for
 * one push, on successful handshakes only.
 *
 * The cap on derivations: a handshake that finds every slot taken waits up
 * to ZEQ_GUARD_WAIT for one (a v2 derivation takes well under a
 * millisecond, a v1 one some 15; it looks again after 250 µs, then twice
 * as long each time, up to 8 ms), then gets 503 e2e_busy. One address
 * holds at most half of the slots (rounded up): however it floods, it
 * derives on half of the CPUs at most, and others find a slot. */
#include "zeq_guard.h"
#include "zeq_envelope.h"
#include "zeq_error.h"
#include "zeq_limit.h"
#include "zeq_stats.h"

#include "http_core.h"
#include "util_mutex.h"
#include "apr_global_mutex.h"
#include "apr_shm.h"
#include "apr_strings.h"

#include <errno.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#define ZEQ_GUARD_MUTEX "zeq-e2e-unused"
#define ZEQ_GUARD_WAIT apr_time_from_msec(100)
#define ZEQ_GUARD_POLL_FIRST 250           /* µs before the next attempt, */
#define ZEQ_GUARD_POLL_MAX 8000            /* doubled up to this */
#define ZEQ_GUARD_BUSY_RETRY "1"           /* Retry-After of e2e_busy */
#define ZEQ_GUARD_KEY_LEN 16

struct zeq_guard_slot {
    int index;
    apr_uint64_t word;
    int given;
};

/* This generation's guard (made in post_config, inherited by children). */
typedef struct {
    zeq_limit *table;
    apr_global_mutex_t *mutex;    /* the rings' (NULL without rings) */
    int share;                    /* slots one address may hold */
    unsigned char key[ZEQ_GUARD_KEY_LEN];   /* drawn at startup */
} zeq_guard_rec;

static zeq_guard_rec *zeq_guard_module;

/* --- clocks and keys ----------------------------------------------------- */

/* A monotonic clock: a clock set back must not make every bucket look
 * empty for as long. */
static apr_uint64_t zeq_guard_ticks(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (apr_uint64_t)ts.tv_sec * ZEQ_LIMIT_TICKS_PER_SEC
           + (apr_uint64_t)ts.tv_nsec / (1000000000 / ZEQ_LIMIT_TICKS_PER_SEC)
           + 1;
}

static apr_uint64_t zeq_guard_get64(const unsigned char *p)
{
    apr_uint64_t v = 0;
    int i;

    for (i = 0; i < 8; i++) {
        v = v << 8 | p[i];
    }
    return v;
}

apr_uint64_t zeq_guard_client(const request_rec *r)
{
    zeq_guard_rec *g = zeq_guard_module;
    const apr_sockaddr_t *sa = r->useragent_addr ? r->useragent_addr
                                                 : r->connection->client_addr;
    unsigned char msg[ZEQ_GUARD_KEY_LEN + 1 + 8], md[32];
    size_t n = ZEQ_GUARD_KEY_LEN + 1;

    if (g == NULL || sa == NULL) {
        return 0;
    }
    memcpy(msg, g->key, ZEQ_GUARD_KEY_LEN);
    msg[ZEQ_GUARD_KEY_LEN] = 0;
#if APR_HAVE_IPV6
    if (sa->family == APR_INET6) {
        const unsigned char *a = sa->sa.sin6.sin6_addr.s6_addr;
        if (IN6_IS_ADDR_V4MAPPED(&sa->sa.sin6.sin6_addr)) {
            memcpy(msg + n, a + 12, 4);
            n += 4;
        }
        else {
            /* One /64: what one customer line or host usually gets. */
            msg[ZEQ_GUARD_KEY_LEN] = 6;
            memcpy(msg + n, a, 8);
            n += 8;
        }
    }
    else
#endif
    if (sa->family == APR_INET) {
        memcpy(msg + n, &sa->sa.sin.sin_addr.s_addr, 4);
        n += 4;
    }
    if (zeq_envelope_sha256(msg, n, md) != ZEQ_OK) {
        return 0;
    }
    return zeq_guard_get64(md);
}

/* The client's key on one virtual host: its scope (the sessions it shares
 * are counted together), mixed in (splitmix64's finaliser). */
static apr_uint64_t zeq_guard_on_host(apr_uint64_t client,
                                      const zeq_srv_conf *sc)
{
    apr_uint64_t z = client ^ zeq_guard_get64(sc->scope_id);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* --- the rate ------------------------------------------------------------ */

int zeq_guard_rate(request_rec *r, const zeq_srv_conf *sc,
                   apr_uint64_t client)
{
    zeq_guard_rec *g = zeq_guard_module;
    apr_uint64_t retry = 0, secs;
    double rate;
    int burst, evicted = 0;

    if (g == NULL || !zeq_config_hs_rate(sc, &rate, &burst)
        || zeq_limit_rate_take(g->table, zeq_guard_on_host(client, sc),
                               zeq_guard_ticks(), zeq_limit_interval(rate),
                               zeq_limit_tolerance(rate, burst), &retry,
                               &evicted)) {
        return OK;
    }
    secs = (retry + ZEQ_LIMIT_TICKS_PER_SEC - 1) / ZEQ_LIMIT_TICKS_PER_SEC;
    if (secs < 1) {
        secs = 1;
    }
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, ZEQLOG(30007)
                  "handshake from %s refused: over ZeqE2EHandshakeRate (%.2f "
                  "a second, %d at once), retry after %" APR_UINT64_T_FMT
                  " s", r->useragent_ip, rate, burst, secs);
    apr_table_setn(r->err_headers_out, "Retry-After",
                   apr_psprintf(r->pool, "%" APR_UINT64_T_FMT, secs));
    return zeq_error_send(r, HTTP_TOO_MANY_REQUESTS, ZEQ_E2E_ERR_RATE_LIMITED,
                          "too many handshakes from this address; retry "
                          "after Retry-After seconds");
}

/* --- derivation slots ---------------------------------------------------- */

static int zeq_guard_alive(apr_uint32_t pid)
{
    return kill((pid_t)pid, 0) == 0 || errno != ESRCH;
}

static apr_status_t zeq_guard_give(void *data)
{
    zeq_guard_slot *slot = data;
    zeq_guard_rec *g = zeq_guard_module;

    if (!slot->given && g != NULL) {
        zeq_limit_slot_give(g->table, slot->index, slot->word);
    }
    slot->given = 1;
    return APR_SUCCESS;
}

int zeq_guard_enter(request_rec *r, apr_uint64_t client,
                    zeq_guard_slot **out)
{
    zeq_guard_rec *g = zeq_guard_module;
    apr_time_t deadline = apr_time_now() + ZEQ_GUARD_WAIT;
    apr_interval_time_t pause = ZEQ_GUARD_POLL_FIRST;
    apr_uint32_t pid = (apr_uint32_t)getpid();
    zeq_guard_slot *slot;
    apr_uint64_t word = 0;
    int i, reclaimed = 0, attempt = 0, last = 0;

    *out = NULL;
    if (g == NULL) {
        return OK;
    }
    /* Free slots first; the owners of taken ones are looked at on the
     * second attempt and the last. */
    for (;;) {
        apr_uint64_t now = zeq_guard_ticks() / ZEQ_LIMIT_TICKS_PER_SEC;
        i = zeq_limit_slot_take(g->table, client, pid, now, g->share,
                                attempt == 1 || last ? zeq_guard_alive : NULL,
                                &reclaimed, &word);
        if (i >= 0 || last) {
            break;
        }
        attempt++;
        if (apr_time_now() >= deadline) {
            last = 1;
            continue;
        }
        apr_sleep(pause);
        pause = pause >= ZEQ_GUARD_POLL_MAX / 2 ? ZEQ_GUARD_POLL_MAX
                                                : pause * 2;
    }
    if (reclaimed > 0) {
        zeq_stats_add(ZEQ_STAT_SLOTS_RECLAIMED, (apr_uint64_t)reclaimed);
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, ZEQLOG(30009)
                      "took back %d derivation slot(s) whose process was "
                      "gone (or held one over %d s)", reclaimed,
                      ZEQ_LIMIT_SLOT_STALE);
    }
    if (i < 0) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, ZEQLOG(30008)
                      "handshake from %s refused: %s", r->useragent_ip,
                      i == ZEQ_LIMIT_SHARE
                      ? "this address runs as many key derivations as it "
                        "may (half of ZeqE2EHandshakeConcurrency)"
                      : "every slot of ZeqE2EHandshakeConcurrency is taken");
        apr_table_setn(r->err_headers_out, "Retry-After",
                       ZEQ_GUARD_BUSY_RETRY);
        return zeq_error_send(r, HTTP_SERVICE_UNAVAILABLE, ZEQ_E2E_ERR_BUSY,
                              "the server is busy with other handshakes; "
                              "retry after Retry-After seconds");
    }
    slot = apr_palloc(r->pool, sizeof(*slot));
    slot->index = i;
    slot->word = word;
    slot->given = 0;
    apr_pool_cleanup_register(r->pool, slot, zeq_guard_give,
                              apr_pool_cleanup_null);
    *out = slot;
    /* (t/modules/mod_zeq_test.c holds a derivation here, on this line.) */
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, ZEQLOG(30006)
                  "deriving keys in derivation slot %d of %d", i + 1,
                  zeq_limit_slots(g->table));
    return OK;
}

void zeq_guard_leave(zeq_guard_slot *slot)
{
    if (slot != NULL) {
        zeq_guard_give(slot);
    }
}

int zeq_guard_slots(int *taken, int *slots)
{
    zeq_guard_rec *g = zeq_guard_module;

    if (g == NULL) {
        return 0;
    }
    *taken = zeq_limit_slots_taken(g->table);
    *slots = zeq_limit_slots(g->table);
    return 1;
}

/* --- unused sessions ----------------------------------------------------- */

int zeq_guard_created(request_rec *r, apr_uint64_t client,
                      const unsigned char hash[32], apr_int64_t expires,
                      unsigned char out[32])
{
    zeq_guard_rec *g = zeq_guard_module;
    apr_int64_t out_expires = 0;
    apr_status_t rv;
    int pushed_out, forgotten = 0;

    if (g == NULL || g->mutex == NULL) {
        return 0;
    }
    rv = apr_global_mutex_lock(g->mutex);
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, ZEQLOG(30010)
                      "cannot lock the mutex " ZEQ_GUARD_MUTEX);
        return 0;
    }
    pushed_out = zeq_limit_ring_push(g->table, client, hash, expires,
                                     apr_time_sec(apr_time_now()), out,
                                     &out_expires, &forgotten);
    apr_global_mutex_unlock(g->mutex);
    return pushed_out;
}

/* --- hooks --------------------------------------------------------------- */

static int zeq_guard_pre_config(apr_pool_t *pconf, apr_pool_t *plog,
                                apr_pool_t *ptemp)
{
    (void)plog;
    (void)ptemp;
    zeq_guard_module = NULL;
    return ap_mutex_register(pconf, ZEQ_GUARD_MUTEX, NULL, ZEQ_LOCK_MECH, 0);
}

static apr_status_t zeq_guard_gone(void *data)
{
    if (zeq_guard_module == data) {
        zeq_guard_module = NULL;
    }
    return APR_SUCCESS;
}

static int zeq_guard_post_config(apr_pool_t *pconf, apr_pool_t *plog,
                                 apr_pool_t *ptemp, server_rec *s)
{
    const zeq_srv_conf *mc = zeq_config_srv(s);
    int slots = zeq_config_concurrency(mc);
    int ring = zeq_config_unused_sessions(mc);
    zeq_guard_rec *g;
    apr_shm_t *shm;
    apr_status_t rv;

    (void)plog;
    (void)ptemp;
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG) {
        return OK;
    }
    if (slots <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        slots = n < 1 ? 1 : n > ZEQ_LIMIT_SLOTS_MAX ? ZEQ_LIMIT_SLOTS_MAX
                                                    : (int)n;
    }
    g = apr_pcalloc(pconf, sizeof(*g));
    g->share = (slots + 1) / 2;
    /* Anonymous shared memory (mmap) comes zeroed, as zeq_limit_init
     * needs: the rings' pages are only touched as they fill. */
    rv = apr_shm_create(&shm, zeq_limit_size(slots, ring), NULL, pconf);
    if (rv != APR_SUCCESS
        || (g->table = zeq_limit_init(apr_shm_baseaddr_get(shm), slots,
                                      ring)) == NULL) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, ZEQLOG(10011)
                     "cannot create the shared memory of the handshake "
                     "guard (%" APR_SIZE_T_FMT " bytes)",
                     zeq_limit_size(slots, ring));
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (RAND_bytes(g->key, sizeof(g->key)) != 1) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, ZEQLOG(10007)
                     "no random bytes for the handshake guard's key");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (ring > 0) {
        rv = ap_global_mutex_create(&g->mutex, NULL, ZEQ_GUARD_MUTEX, NULL, s,
                                    pconf, 0);
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, ZEQLOG(10008)
                         "cannot create the mutex " ZEQ_GUARD_MUTEX);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    zeq_guard_module = g;
    apr_pool_cleanup_register(pconf, g, zeq_guard_gone,
                              apr_pool_cleanup_null);
    ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s, ZEQLOG(10009)
                 "handshake guard: %d derivation slot(s), %d per address; "
                 "unused sessions per address: %s", slots, g->share,
                 ring > 0 ? apr_itoa(ptemp, ring) : "no bound");
    return OK;
}

static void zeq_guard_child_init(apr_pool_t *p, server_rec *s)
{
    zeq_guard_rec *g = zeq_guard_module;
    apr_status_t rv;

    if (g == NULL || g->mutex == NULL) {
        return;
    }
    rv = apr_global_mutex_child_init(&g->mutex,
                                     apr_global_mutex_lockfile(g->mutex), p);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, ZEQLOG(10010)
                     "cannot attach the mutex " ZEQ_GUARD_MUTEX
                     " in a child");
    }
}

void zeq_guard_register_hooks(apr_pool_t *p)
{
    (void)p;
    ap_hook_pre_config(zeq_guard_pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    /* After zeq_config's, which derives the scopes its keys mix in. */
    ap_hook_post_config(zeq_guard_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(zeq_guard_child_init, NULL, NULL, APR_HOOK_MIDDLE);
}
