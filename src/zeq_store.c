/* The session store (see zeq_store.h). */
#include "zeq_store.h"
#include "zeq_memcache.h"
#include "zeq_redis.h"
#include "zeq_stats.h"

#include "ap_provider.h"
#include "ap_socache.h"
#include "http_core.h"
#include "util_mutex.h"
#include "apr_global_mutex.h"
#include "apr_strings.h"

#include <openssl/crypto.h>

#define ZEQ_STORE_MUTEX "zeq-e2e-cache"
#define ZEQ_STORE_REPLAY_MUTEX "zeq-e2e-replay"
#define ZEQ_STORE_DEFAULT_SIZE 41943040   /* > 100,000 v2 sessions in shmcb */
#define ZEQ_STORE_PREFIX "zeq_e2e:"
#define ZEQ_STORE_MAX_ID 64               /* the longest id, in bytes */
#define ZEQ_STORE_MAX_ENTRY 1024          /* the largest entry read back */

/* The calls of a shared store's client (zeq_redis, zeq_memcache). */
typedef struct {
    const char *name;
    apr_status_t (*get)(zeq_remote *, const char *, unsigned char *,
                        apr_size_t *);
    apr_status_t (*set)(zeq_remote *, const char *, const unsigned char *,
                        apr_size_t, apr_interval_time_t);
    apr_status_t (*add)(zeq_remote *, const char *, const unsigned char *,
                        apr_size_t, apr_interval_time_t);
    apr_status_t (*del)(zeq_remote *, const char *);
} zeq_store_client;

static const zeq_store_client zeq_store_redis = {
    "redis", zeq_redis_get, zeq_redis_set, zeq_redis_add, zeq_redis_del
};
static const zeq_store_client zeq_store_memcache = {
    "memcache", zeq_memcache_get, zeq_memcache_set, zeq_memcache_add,
    zeq_memcache_del
};

/* The module-wide record, one per configuration generation (made in
 * pre_config from pconf, so each reading of the configuration starts
 * afresh). */
typedef struct {
    const zeq_store_client *client;  /* redis, memcache; NULL: socache */
    /* socache */
    const ap_socache_provider_t *provider;
    ap_socache_instance_t *instance;
    const char *name;             /* provider name as configured */
    const char *args;             /* its arguments (NULL: the default) */
    apr_global_mutex_t *mutex;    /* providers not MP-safe: every call */
    apr_global_mutex_t *replay_mutex; /* the others: updates */
    server_rec *server;           /* the main server, for destroy */
    /* redis, memcache */
    zeq_remote *remote;
    apr_interval_time_t timeout;  /* 0: unset */
} zeq_store_rec;

static zeq_store_rec *zeq_store_module;

static zeq_store_rec *zeq_store_rec_get(void)
{
    return zeq_store_module;
}

int zeq_store_shared(void)
{
    zeq_store_rec *st = zeq_store_rec_get();

    return st != NULL && st->client != NULL;
}

const char *zeq_store_describe(apr_pool_t *p)
{
    zeq_store_rec *st = zeq_store_rec_get();

    if (st == NULL) {
        return "none";
    }
    if (st->client != NULL) {
        return apr_psprintf(p, "%s %s", st->client->name, st->remote->spec);
    }
    return apr_psprintf(p, "%s%s%s", st->name ? st->name : "shmcb",
                        st->args ? " " : "", st->args ? st->args : "");
}

void zeq_store_timeout_set(apr_interval_time_t timeout)
{
    zeq_store_rec *st = zeq_store_rec_get();

    if (st != NULL) {
        st->timeout = timeout;
        if (st->remote != NULL) {
            st->remote->timeout = timeout;
        }
    }
}

const char *zeq_store_configure(apr_pool_t *p, apr_pool_t *ptemp,
                                const char *arg)
{
    zeq_store_rec *st = zeq_store_rec_get();
    const char *sep = ap_strchr_c(arg, ':'), *name, *args, *err;
    const ap_socache_provider_t *provider;

    if (st == NULL) {
        return "the module is not initialised";
    }
    name = sep ? apr_pstrmemdup(p, arg, (apr_size_t)(sep - arg)) : arg;
    args = sep ? sep + 1 : NULL;
    st->name = name;
    st->args = args;
    st->instance = NULL;
    st->provider = NULL;
    st->remote = NULL;
    st->client = NULL;
    if (strcmp(name, "redis") == 0 || strcmp(name, "memcache") == 0) {
        int redis = name[0] == 'r';
        err = zeq_remote_parse(p, args, redis ? ZEQ_REDIS_PORT
                                              : ZEQ_MEMCACHE_PORT,
                               &st->remote);
        if (err != NULL) {
            return apr_psprintf(p, "%s: %s", name, err);
        }
        st->client = redis ? &zeq_store_redis : &zeq_store_memcache;
        if (st->timeout > 0) {
            st->remote->timeout = st->timeout;
        }
        return NULL;
    }
    provider = ap_lookup_provider(AP_SOCACHE_PROVIDER_GROUP, name,
                                  AP_SOCACHE_PROVIDER_VERSION);
    if (provider == NULL) {
        apr_array_header_t *names = ap_list_provider_names(
            p, AP_SOCACHE_PROVIDER_GROUP, AP_SOCACHE_PROVIDER_VERSION);
        return apr_psprintf(p, "unknown session cache provider '%s'; "
                            "loaded providers: %s (load the mod_socache_* "
                            "module of the one you want), and redis and "
                            "memcache", name,
                            names->nelts ? apr_array_pstrcat(p, names, ',')
                                         : "none");
    }
    st->provider = provider;
    if (args == NULL && strcmp(name, "shmcb") == 0) {
        /* A bare shmcb gets the module's default size and place, set up
         * in post_config. */
        return NULL;
    }
    err = provider->create(&st->instance, args ? args : "", ptemp, p);
    return err ? apr_psprintf(p, "%s: %s", name, err) : NULL;
}

/* --- socache plumbing ------------------------------------------------------ */

static apr_status_t zeq_store_lock(apr_global_mutex_t *mutex, server_rec *s)
{
    apr_status_t rv;

    if (mutex == NULL) {
        return APR_SUCCESS;
    }
    rv = apr_global_mutex_lock(mutex);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, s, ZEQLOG(20001)
                     "cannot lock a session cache mutex");
    }
    return rv;
}

static void zeq_store_unlock(apr_global_mutex_t *mutex, server_rec *s)
{
    apr_status_t rv;

    if (mutex != NULL && (rv = apr_global_mutex_unlock(mutex)) != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, s, ZEQLOG(20002)
                     "cannot unlock a session cache mutex");
    }
}

/* shmcb and dbm say NOTFOUND, others ENOMEM or ENOSPC for an entry that
 * does not fit: all mean "nothing usable". */
static apr_status_t zeq_store_missing(apr_status_t rv)
{
    return (rv == APR_NOTFOUND || APR_STATUS_IS_ENOSPC(rv)
            || APR_STATUS_IS_ENOMEM(rv)) ? APR_NOTFOUND : rv;
}

/* Counts the outcome of a store operation: a missing entry or an existing
 * one (add) is an answer, not a failure. */
static apr_status_t zeq_store_outcome(apr_status_t rv)
{
    zeq_stats_store(rv == APR_SUCCESS || rv == APR_NOTFOUND
                    || rv == APR_EEXIST);
    return rv;
}

static apr_status_t zeq_store_socache_get(zeq_store_rec *st, server_rec *s,
                                          const unsigned char *id,
                                          apr_size_t idlen,
                                          unsigned char *buf, apr_size_t *len,
                                          apr_pool_t *p)
{
    unsigned int n = (unsigned int)*len;
    apr_status_t rv = st->provider->retrieve(st->instance, s, id,
                                             (unsigned int)idlen, buf, &n, p);

    *len = n;
    return zeq_store_missing(rv);
}

static apr_status_t zeq_store_socache_put(zeq_store_rec *st, server_rec *s,
                                          const unsigned char *id,
                                          apr_size_t idlen, apr_time_t expiry,
                                          const unsigned char *data,
                                          apr_size_t len, apr_pool_t *p)
{
    /* The provider's prototype takes non-const data it only reads. */
    return st->provider->store(st->instance, s, id, (unsigned int)idlen,
                               expiry, (unsigned char *)data,
                               (unsigned int)len, p);
}

/* --- redis and memcached ------------------------------------------------- */

/* The key of an id in a shared store: the prefix and the id in hex. */
static const char *zeq_store_key(const unsigned char *id, apr_size_t idlen,
                                 char out[sizeof(ZEQ_STORE_PREFIX)
                                          + 2 * ZEQ_STORE_MAX_ID])
{
    memcpy(out, ZEQ_STORE_PREFIX, sizeof(ZEQ_STORE_PREFIX) - 1);
    ap_bin2hex(id, idlen, out + sizeof(ZEQ_STORE_PREFIX) - 1);
    return out;
}

static apr_interval_time_t zeq_store_ttl(apr_time_t expiry)
{
    apr_interval_time_t t = expiry - apr_time_now();

    return t < 1000 ? 1000 : t;
}

/* --- the operations ------------------------------------------------------- */

static int zeq_store_usable(const zeq_store_rec *st, apr_size_t idlen)
{
    return st != NULL && idlen > 0 && idlen <= ZEQ_STORE_MAX_ID
           && (st->client != NULL || st->instance != NULL);
}

apr_status_t zeq_store_get(server_rec *s, const unsigned char *id,
                           apr_size_t idlen, unsigned char *buf,
                           apr_size_t *len, apr_pool_t *p)
{
    zeq_store_rec *st = zeq_store_rec_get();
    char key[sizeof(ZEQ_STORE_PREFIX) + 2 * ZEQ_STORE_MAX_ID];
    apr_status_t rv;

    if (!zeq_store_usable(st, idlen)) {
        return APR_EINIT;
    }
    if (st->client != NULL) {
        rv = zeq_store_missing(st->client->get(st->remote,
                                               zeq_store_key(id, idlen, key),
                                               buf, len));
    }
    else if ((rv = zeq_store_lock(st->mutex, s)) == APR_SUCCESS) {
        rv = zeq_store_socache_get(st, s, id, idlen, buf, len, p);
        zeq_store_unlock(st->mutex, s);
    }
    return zeq_store_outcome(rv);
}

apr_status_t zeq_store_put(server_rec *s, const unsigned char *id,
                           apr_size_t idlen, apr_time_t expiry,
                           const unsigned char *data, apr_size_t len,
                           apr_pool_t *p)
{
    zeq_store_rec *st = zeq_store_rec_get();
    char key[sizeof(ZEQ_STORE_PREFIX) + 2 * ZEQ_STORE_MAX_ID];
    apr_status_t rv;

    if (!zeq_store_usable(st, idlen)) {
        return APR_EINIT;
    }
    if (st->client != NULL) {
        rv = st->client->set(st->remote, zeq_store_key(id, idlen, key), data,
                             len, zeq_store_ttl(expiry));
    }
    else if ((rv = zeq_store_lock(st->mutex, s)) == APR_SUCCESS) {
        rv = zeq_store_socache_put(st, s, id, idlen, expiry, data, len, p);
        zeq_store_unlock(st->mutex, s);
    }
    return zeq_store_outcome(rv);
}

apr_status_t zeq_store_remove(server_rec *s, const unsigned char *id,
                              apr_size_t idlen, apr_pool_t *p)
{
    zeq_store_rec *st = zeq_store_rec_get();
    char key[sizeof(ZEQ_STORE_PREFIX) + 2 * ZEQ_STORE_MAX_ID];
    apr_status_t rv;

    if (!zeq_store_usable(st, idlen)) {
        return APR_EINIT;
    }
    if (st->client != NULL) {
        rv = st->client->del(st->remote, zeq_store_key(id, idlen, key));
    }
    else if ((rv = zeq_store_lock(st->mutex, s)) == APR_SUCCESS) {
        rv = zeq_store_missing(st->provider->remove(st->instance, s, id,
                                                    (unsigned int)idlen, p));
        zeq_store_unlock(st->mutex, s);
    }
    return zeq_store_outcome(rv == APR_NOTFOUND ? APR_SUCCESS : rv);
}

apr_status_t zeq_store_update(server_rec *s, const unsigned char *id,
                              apr_size_t idlen, apr_size_t cap,
                              zeq_store_update_fn fn, void *baton,
                              apr_pool_t *p)
{
    zeq_store_rec *st = zeq_store_rec_get();
    apr_global_mutex_t *mutex;
    unsigned char data[ZEQ_STORE_MAX_ENTRY];
    apr_size_t len = sizeof(data);
    apr_time_t expiry = 0;
    apr_status_t rv;

    if (!zeq_store_usable(st, idlen) || cap > sizeof(data)) {
        return APR_EINIT;
    }
    if (st->client != NULL) {
        return APR_ENOTIMPL;
    }
    /* One read-modify-write at a time in this server: the provider's own
     * mutex where it needs one (its calls are made under it), else the
     * replay mutex. */
    mutex = st->mutex ? st->mutex : st->replay_mutex;
    rv = zeq_store_lock(mutex, s);
    if (rv != APR_SUCCESS) {
        return zeq_store_outcome(rv);
    }
    rv = zeq_store_socache_get(st, s, id, idlen, data, &len, p);
    if (rv == APR_SUCCESS) {
        rv = len > cap ? APR_NOTFOUND : fn(baton, data, &len, cap, &expiry);
        if (rv == APR_SUCCESS) {
            rv = zeq_store_socache_put(st, s, id, idlen, expiry, data, len, p);
            zeq_stats_store(rv == APR_SUCCESS);
        }
        else if (rv == ZEQ_STORE_REMOVE) {
            apr_status_t rm = zeq_store_missing(
                st->provider->remove(st->instance, s, id, (unsigned int)idlen,
                                     p));
            zeq_store_outcome(rm);
            if (rm != APR_SUCCESS && rm != APR_NOTFOUND) {
                rv = rm;
            }
        }
    }
    else {
        zeq_store_outcome(rv);
    }
    zeq_store_unlock(mutex, s);
    OPENSSL_cleanse(data, sizeof(data));
    return rv;
}

apr_status_t zeq_store_add(server_rec *s, const unsigned char *id,
                           apr_size_t idlen, apr_time_t expiry, apr_pool_t *p)
{
    zeq_store_rec *st = zeq_store_rec_get();
    char key[sizeof(ZEQ_STORE_PREFIX) + 2 * ZEQ_STORE_MAX_ID];
    static const unsigned char one = '1';

    (void)s;
    (void)p;
    if (!zeq_store_usable(st, idlen)) {
        return APR_EINIT;
    }
    if (st->client == NULL) {
        return APR_ENOTIMPL;
    }
    return zeq_store_outcome(st->client->add(st->remote,
                                             zeq_store_key(id, idlen, key),
                                             &one, 1, zeq_store_ttl(expiry)));
}

static apr_status_t zeq_store_count_one(ap_socache_instance_t *instance,
                                        server_rec *s, void *userctx,
                                        const unsigned char *id,
                                        unsigned int idlen,
                                        const unsigned char *data,
                                        unsigned int datalen, apr_pool_t *p)
{
    (void)instance;
    (void)s;
    (void)id;
    (void)idlen;
    (void)data;
    (void)datalen;
    (void)p;
    (*(long *)userctx)++;
    return APR_SUCCESS;
}

long zeq_store_count(server_rec *s, apr_pool_t *p)
{
    zeq_store_rec *st = zeq_store_rec_get();
    long n = 0;
    apr_status_t rv;

    if (st == NULL || st->client != NULL || st->instance == NULL
        || st->provider->iterate == NULL) {
        return -1;
    }
    rv = zeq_store_lock(st->mutex, s);
    if (rv != APR_SUCCESS) {
        return -1;
    }
    rv = st->provider->iterate(st->instance, s, &n, zeq_store_count_one, p);
    zeq_store_unlock(st->mutex, s);
    return rv == APR_SUCCESS ? n : -1;
}

void zeq_store_status(request_rec *r, int flags)
{
    zeq_store_rec *st = zeq_store_rec_get();
    apr_status_t rv;

    if (st == NULL || st->client != NULL || st->instance == NULL) {
        return;
    }
    rv = zeq_store_lock(st->mutex, r->server);
    if (rv == APR_SUCCESS) {
        st->provider->status(st->instance, r, flags);
        zeq_store_unlock(st->mutex, r->server);
    }
}

/* --- hooks --------------------------------------------------------------- */

static int zeq_store_pre_config(apr_pool_t *pconf, apr_pool_t *plog,
                                apr_pool_t *ptemp)
{
    apr_status_t rv;

    (void)plog;
    (void)ptemp;
    zeq_store_module = apr_pcalloc(pconf, sizeof(*zeq_store_module));
    rv = ap_mutex_register(pconf, ZEQ_STORE_MUTEX, NULL, ZEQ_LOCK_MECH,
                           0);
    if (rv == APR_SUCCESS) {
        rv = ap_mutex_register(pconf, ZEQ_STORE_REPLAY_MUTEX, NULL,
                               ZEQ_LOCK_MECH, 0);
    }
    return rv;
}

static apr_status_t zeq_store_destroy(void *data)
{
    zeq_store_rec *st = data;

    if (st->instance != NULL) {
        /* The server, as mod_ssl passes it: providers may log with it. */
        st->provider->destroy(st->instance, st->server);
        st->instance = NULL;
    }
    if (zeq_store_module == st) {
        zeq_store_module = NULL;
    }
    return APR_SUCCESS;
}

/* A socache store: the provider (shmcb by default) set up with its mutex. */
static int zeq_store_socache_init(zeq_store_rec *st, apr_pool_t *pconf,
                                  apr_pool_t *ptemp, server_rec *s)
{
    struct ap_socache_hints hints;
    apr_status_t rv;
    const char *err;

    if (st->provider == NULL) {
        st->name = "shmcb";
        st->provider = ap_lookup_provider(AP_SOCACHE_PROVIDER_GROUP, "shmcb",
                                          AP_SOCACHE_PROVIDER_VERSION);
        if (st->provider == NULL) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, ZEQLOG(20003)
                         "ZeqE2ESessionCache is not set and the default "
                         "provider shmcb is not loaded: load "
                         "mod_socache_shmcb or set ZeqE2ESessionCache");
            return HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    if (st->instance == NULL) {
        /* No directive, or a bare "shmcb": shmcb in the runtime directory,
         * sized for at least 100,000 sessions (the runtime directory is
         * known only now). */
        st->args = apr_psprintf(pconf, "%s(%d)",
                                ap_runtime_dir_relative(ptemp,
                                                        "zeq_e2e-sessions"),
                                ZEQ_STORE_DEFAULT_SIZE);
        err = st->provider->create(&st->instance, st->args, ptemp, pconf);
        if (err != NULL) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, ZEQLOG(20004)
                         "default session cache: %s", err);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    if (st->provider->flags & AP_SOCACHE_FLAG_NOTMPSAFE) {
        rv = ap_global_mutex_create(&st->mutex, NULL, ZEQ_STORE_MUTEX, NULL, s,
                                    pconf, 0);
    }
    else {
        /* The provider serializes its own calls, not a read-modify-write
         * of a replay window. */
        rv = ap_global_mutex_create(&st->replay_mutex, NULL,
                                    ZEQ_STORE_REPLAY_MUTEX, NULL, s, pconf, 0);
    }
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, ZEQLOG(20005)
                     "cannot create the session cache mutex");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    memset(&hints, 0, sizeof(hints));
    hints.avg_id_len = 32;
    hints.avg_obj_size = 270;
    hints.expiry_interval = apr_time_from_sec(60);
    rv = st->provider->init(st->instance, "zeq_e2e", &hints, s, pconf);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, ZEQLOG(20006)
                     "cannot initialise the session cache (%s)", st->name);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    return OK;
}

static int zeq_store_post_config(apr_pool_t *pconf, apr_pool_t *plog,
                                 apr_pool_t *ptemp, server_rec *s)
{
    zeq_store_rec *st = zeq_store_rec_get();
    int rc;

    (void)plog;
    /* The first pass of startup only checks the configuration. */
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG
        || st == NULL) {
        return OK;
    }
    st->server = s;
    if (st->client == NULL) {
        rc = zeq_store_socache_init(st, pconf, ptemp, s);
        if (rc != OK) {
            return rc;
        }
    }
    apr_pool_cleanup_register(pconf, st, zeq_store_destroy,
                              apr_pool_cleanup_null);
    ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s, ZEQLOG(20007)
                 "session store %s ready, %s", zeq_store_describe(ptemp),
                 st->client != NULL
                 ? apr_psprintf(ptemp, "shared, timeout %" APR_TIME_T_FMT
                                " ms", apr_time_as_msec(st->remote->timeout))
                 : st->mutex ? "with a global mutex" : "MP-safe");
    return OK;
}

static void zeq_store_child_init(apr_pool_t *p, server_rec *s)
{
    zeq_store_rec *st = zeq_store_rec_get();
    apr_global_mutex_t **m[2];
    apr_status_t rv;
    int i;

    if (st == NULL) {
        return;
    }
    m[0] = &st->mutex;
    m[1] = &st->replay_mutex;
    for (i = 0; i < 2; i++) {
        if (*m[i] == NULL) {
            continue;
        }
        rv = apr_global_mutex_child_init(m[i], apr_global_mutex_lockfile(*m[i]),
                                         p);
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, ZEQLOG(20008)
                         "cannot attach a session cache mutex in a child");
        }
    }
}

void zeq_store_register_hooks(apr_pool_t *p)
{
    (void)p;
    ap_hook_pre_config(zeq_store_pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    /* After the providers (mod_socache_*) have set themselves up. */
    ap_hook_post_config(zeq_store_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(zeq_store_child_init, NULL, NULL, APR_HOOK_MIDDLE);
}
