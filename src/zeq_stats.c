/* The module's counters (see zeq_stats.h). */
#include "zeq_stats.h"
#include "zeq_exchange.h"

#include "http_core.h"
#include "apr_atomic.h"
#include "apr_shm.h"
#include "apr_strings.h"

/* The key of the block in the process pool, and its layout's version: a
 * module of another layout after a graceful restart makes its own. */
#define ZEQ_STATS_KEY "zeq_e2e-stats-2"

static const char *const zeq_stats_code_names[] = {
    ZEQ_E2E_ERR_BAD_HANDSHAKE, ZEQ_E2E_ERR_METHOD, ZEQ_E2E_ERR_UNAVAILABLE,
    ZEQ_E2E_ERR_SESSION, ZEQ_E2E_ERR_DECRYPT, ZEQ_E2E_ERR_TOO_LARGE,
    ZEQ_E2E_ERR_REQUIRED, ZEQ_E2E_ERR_ENCRYPT, ZEQ_E2E_ERR_BAD_REQUEST,
    ZEQ_E2E_ERR_REPLAYED, ZEQ_E2E_ERR_VERSION, ZEQ_E2E_ERR_PSK_REQUIRED,
    ZEQ_E2E_ERR_RATE_LIMITED, ZEQ_E2E_ERR_BUSY
};
#define ZEQ_STATS_NCODES \
    ((int)(sizeof(zeq_stats_code_names) / sizeof(zeq_stats_code_names[0])))
#define ZEQ_STATS_COUNT (ZEQ_STAT_REFUSED_FIRST + ZEQ_STATS_NCODES)

/* This generation's view of the block (NULL before post_config). */
static volatile apr_uint64_t *zeq_stats_slots;

int zeq_stats_codes(void)
{
    return ZEQ_STATS_NCODES;
}

const char *zeq_stats_code(int i)
{
    return i >= 0 && i < ZEQ_STATS_NCODES ? zeq_stats_code_names[i] : NULL;
}

int zeq_stats_ready(void)
{
    return zeq_stats_slots != NULL;
}

void zeq_stats_add(zeq_stat which, apr_uint64_t n)
{
    if (zeq_stats_slots != NULL && (int)which < ZEQ_STATS_COUNT) {
        apr_atomic_add64(&zeq_stats_slots[which], n);
    }
}

void zeq_stats_set(zeq_stat which, apr_uint64_t v)
{
    if (zeq_stats_slots != NULL && (int)which < ZEQ_STATS_COUNT) {
        apr_atomic_set64(&zeq_stats_slots[which], v);
    }
}

apr_uint64_t zeq_stats_get(zeq_stat which)
{
    if (zeq_stats_slots == NULL || (int)which >= ZEQ_STATS_COUNT) {
        return 0;
    }
    return apr_atomic_read64(&zeq_stats_slots[which]);
}

void zeq_stats_refused(const char *code)
{
    int i;

    for (i = 0; i < ZEQ_STATS_NCODES; i++) {
        if (strcmp(code, zeq_stats_code_names[i]) == 0) {
            zeq_stats_add((zeq_stat)(ZEQ_STAT_REFUSED_FIRST + i), 1);
            if (strcmp(code, ZEQ_E2E_ERR_REPLAYED) == 0) {
                zeq_stats_add(ZEQ_STAT_REPLAYS_REFUSED, 1);
            }
            return;
        }
    }
}

apr_uint64_t zeq_stats_refusals(int i)
{
    return i >= 0 && i < ZEQ_STATS_NCODES
           ? zeq_stats_get((zeq_stat)(ZEQ_STAT_REFUSED_FIRST + i)) : 0;
}

void zeq_stats_opened(apr_off_t n)
{
    zeq_stats_add(ZEQ_STAT_REQUESTS_OPENED, 1);
    if (n > 0) {
        zeq_stats_add(ZEQ_STAT_BYTES_OPENED, (apr_uint64_t)n);
    }
}

void zeq_stats_store(int ok)
{
    if (!ok) {
        zeq_stats_add(ZEQ_STAT_STORE_FAILURES, 1);
    }
    zeq_stats_set(ok ? ZEQ_STAT_STORE_LAST_OK : ZEQ_STAT_STORE_LAST_FAILURE,
                  (apr_uint64_t)apr_time_now());
}

/* The block lives in the process pool: the parent makes it once, and
 * every generation after a graceful restart finds it there again. Children
 * inherit the mapping. */
static int zeq_stats_post_config(apr_pool_t *pconf, apr_pool_t *plog,
                                 apr_pool_t *ptemp, server_rec *s)
{
    apr_pool_t *pp = s->process->pool;
    apr_shm_t *shm = NULL;
    void *data = NULL;
    apr_status_t rv;

    (void)pconf;
    (void)plog;
    (void)ptemp;
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG) {
        return OK;
    }
    apr_pool_userdata_get(&data, ZEQ_STATS_KEY, pp);
    if (data == NULL) {
        rv = apr_shm_create(&shm, ZEQ_STATS_COUNT * sizeof(apr_uint64_t), NULL,
                            pp);
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, ZEQLOG(80001)
                         "cannot create the shared memory of the counters");
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        data = apr_shm_baseaddr_get(shm);
        memset(data, 0, ZEQ_STATS_COUNT * sizeof(apr_uint64_t));
        apr_pool_userdata_set(data, ZEQ_STATS_KEY, apr_pool_cleanup_null, pp);
    }
    zeq_stats_slots = data;
    return OK;
}

/* Counts the answer of an exchange once it is logged: sealed, with the
 * bytes its body took on the wire. */
static int zeq_stats_log(request_rec *r)
{
    const zeq_exchange *ex;
    const request_rec *last = r;

    if (r->main != NULL || (ex = zeq_exchange_get(r)) == NULL
        || !zeq_exchange_sealed(ex) || !ex->answered) {
        return DECLINED;
    }
    while (last->next != NULL) {
        last = last->next;
    }
    zeq_stats_add(ZEQ_STAT_RESPONSES_SEALED, 1);
    zeq_stats_add(ZEQ_STAT_BYTES_SEALED, (apr_uint64_t)last->bytes_sent);
    return DECLINED;
}

void zeq_stats_register_hooks(apr_pool_t *p)
{
    (void)p;
    ap_hook_post_config(zeq_stats_post_config, NULL, NULL,
                        APR_HOOK_REALLY_FIRST);
    ap_hook_log_transaction(zeq_stats_log, NULL, NULL, APR_HOOK_MIDDLE);
}
