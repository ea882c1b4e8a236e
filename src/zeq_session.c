/* Session store: session records in Apache's shared object cache (socache),
 * under a hash of the session id, guarded by a registered global mutex when
 * the provider is not MP-safe. Records are stored with their own expiry:
 * the provider drops them itself (shmcb and dbm when they next store,
 * memcache and redis by their TTL); a lookup checks the record's expiry
 * too. */
#include "zeq_session.h"
#include "zeq_proto.h"
#include "zeq_replay.h"
#include "zeq_sessrec.h"

#include "http_core.h"
#include "util_mutex.h"
#include "apr_strings.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#define ZEQ_SESSION_ID_HASH_LEN 32

/* The cache keys: SHA-256 of the session id, so the cache never holds
 * ids; the replay window of a v2 session under SHA-256 of a label and the
 * id. */
static int zeq_session_hash(const char *label, const char *id,
                            unsigned char out[ZEQ_SESSION_ID_HASH_LEN])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned int n = 0;
    int ok = md != NULL && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1
             && (label == NULL
                 || EVP_DigestUpdate(md, label, strlen(label) + 1) == 1)
             && EVP_DigestUpdate(md, id, strlen(id)) == 1
             && EVP_DigestFinal_ex(md, out, &n) == 1
             && n == ZEQ_SESSION_ID_HASH_LEN;

    EVP_MD_CTX_free(md);
    return ok;
}

static apr_status_t zeq_session_lock(apr_global_mutex_t *mutex, server_rec *s)
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

static void zeq_session_unlock(apr_global_mutex_t *mutex, server_rec *s)
{
    apr_status_t rv;

    if (mutex != NULL && (rv = apr_global_mutex_unlock(mutex)) != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, s, ZEQLOG(20002)
                     "cannot unlock a session cache mutex");
    }
}

/* shmcb and dbm say NOTFOUND, memcache and redis ENOMEM or ENOSPC for a
 * record that does not fit: all mean "nothing usable". */
static apr_status_t zeq_session_missing(apr_status_t rv)
{
    return (rv == APR_NOTFOUND || APR_STATUS_IS_ENOSPC(rv)
            || APR_STATUS_IS_ENOMEM(rv)) ? APR_NOTFOUND : rv;
}

/* Reads the record of id into rec (under the caller's lock): APR_SUCCESS,
 * APR_NOTFOUND when missing, unreadable, of another scope or expired. */
static apr_status_t zeq_session_get(request_rec *r, const zeq_srv_conf *sc,
                                    const unsigned char *hash, zeq_sessrec *rec)
{
    zeq_session_cache *cache = sc->cache;
    /* Room for a larger record than ours, so a future version is read and
     * rejected instead of failing as a too-small buffer. */
    unsigned char data[2 * ZEQ_SESSREC_MAX_LEN];
    unsigned int len = sizeof(data);
    apr_status_t rv;

    rv = cache->provider->retrieve(cache->instance, r->server, hash,
                                   ZEQ_SESSION_ID_HASH_LEN, data, &len,
                                   r->pool);
    if (rv == APR_SUCCESS) {
        rv = APR_NOTFOUND;
        if (zeq_sessrec_decode(data, len, rec) == ZEQ_OK
            && CRYPTO_memcmp(rec->scope, sc->scope_id, ZEQ_SCOPE_ID_LEN) == 0
            && rec->expires > apr_time_sec(apr_time_now())) {
            rv = APR_SUCCESS;
        }
    }
    OPENSSL_cleanse(data, sizeof(data));
    return zeq_session_missing(rv);
}

static apr_status_t zeq_session_put(request_rec *r, const zeq_srv_conf *sc,
                                    const unsigned char *hash,
                                    const zeq_sessrec *rec)
{
    zeq_session_cache *cache = sc->cache;
    unsigned char data[ZEQ_SESSREC_MAX_LEN];
    size_t len = zeq_sessrec_encode(rec, data);
    apr_status_t rv;

    rv = cache->provider->store(cache->instance, r->server, hash,
                                ZEQ_SESSION_ID_HASH_LEN,
                                apr_time_from_sec(rec->expires), data,
                                (unsigned int)len, r->pool);
    OPENSSL_cleanse(data, sizeof(data));
    return rv;
}

apr_status_t zeq_session_create(request_rec *r, const zeq_srv_conf *sc,
                                const zeq_keys *keys, const char **id,
                                apr_int64_t *expires)
{
    zeq_session_cache *cache = sc->cache;
    unsigned char raw[ZEQ_PROTO_SESSION_ID_BYTES];
    unsigned char hash[ZEQ_SESSION_ID_HASH_LEN];
    zeq_sessrec rec;
    char *sid;
    apr_status_t rv;

    if (cache == NULL || cache->instance == NULL) {
        return APR_EINIT;
    }
    if (RAND_bytes(raw, sizeof(raw)) != 1) {
        return APR_EGENERAL;
    }
    sid = apr_palloc(r->pool, zeq_proto_b64url_len(sizeof(raw)) + 1);
    zeq_proto_b64url_encode(raw, sizeof(raw), sid);
    if (!zeq_session_hash(NULL, sid, hash)) {
        return APR_EGENERAL;
    }
    memset(&rec, 0, sizeof(rec));
    memcpy(rec.scope, sc->scope_id, ZEQ_SCOPE_ID_LEN);
    rec.created = apr_time_sec(r->request_time);
    rec.expires = rec.created + zeq_config_ttl(sc);
    rec.keys = *keys;
    zeq_replay_init(&rec.window);

    rv = zeq_session_lock(cache->mutex, r->server);
    if (rv == APR_SUCCESS) {
        rv = zeq_session_put(r, sc, hash, &rec);
        zeq_session_unlock(cache->mutex, r->server);
    }
    if (expires != NULL) {
        *expires = rec.expires;
    }
    OPENSSL_cleanse(&rec, sizeof(rec));
    if (rv == APR_SUCCESS) {
        *id = sid;
    }
    return rv;
}

apr_status_t zeq_session_lookup(request_rec *r, const zeq_srv_conf *sc,
                                const char *id, zeq_keys *keys,
                                apr_int64_t *expires)
{
    zeq_session_cache *cache = sc->cache;
    unsigned char hash[ZEQ_SESSION_ID_HASH_LEN];
    zeq_sessrec rec;
    apr_status_t rv;

    if (cache == NULL || cache->instance == NULL) {
        return APR_EINIT;
    }
    if (!zeq_proto_session_id_valid(id)) {
        return APR_NOTFOUND;
    }
    if (!zeq_session_hash(NULL, id, hash)) {
        return APR_EGENERAL;
    }
    rv = zeq_session_lock(cache->mutex, r->server);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    rv = zeq_session_get(r, sc, hash, &rec);
    zeq_session_unlock(cache->mutex, r->server);
    if (rv == APR_SUCCESS) {
        *keys = rec.keys;
        if (expires != NULL) {
            *expires = rec.expires;
        }
    }
    OPENSSL_cleanse(&rec, sizeof(rec));
    return rv;
}

apr_status_t zeq_session_accept_seq(request_rec *r, const zeq_srv_conf *sc,
                                    const char *id, apr_uint64_t seq)
{
    zeq_session_cache *cache = sc->cache;
    apr_global_mutex_t *mutex;
    unsigned char hash[ZEQ_SESSION_ID_HASH_LEN];
    zeq_sessrec rec;
    apr_status_t rv;

    if (cache == NULL || cache->instance == NULL) {
        return APR_EINIT;
    }
    if (!zeq_session_hash(NULL, id, hash)) {
        return APR_EGENERAL;
    }
    /* One read-modify-write at a time in this server: the provider's own
     * mutex where it needs one (its calls are made under it), else the
     * replay mutex. */
    mutex = cache->mutex ? cache->mutex : cache->replay_mutex;
    rv = zeq_session_lock(mutex, r->server);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    rv = zeq_session_get(r, sc, hash, &rec);
    if (rv == APR_SUCCESS) {
        if (rec.keys.version != 2 || zeq_replay_accept(&rec.window, seq) != ZEQ_OK) {
            rv = APR_EEXIST;
        }
        else {
            rv = zeq_session_put(r, sc, hash, &rec);
        }
    }
    zeq_session_unlock(mutex, r->server);
    OPENSSL_cleanse(&rec, sizeof(rec));
    return rv;
}

static int zeq_session_pre_config(apr_pool_t *pconf, apr_pool_t *plog,
                                  apr_pool_t *ptemp)
{
    (void)plog;
    (void)ptemp;
    apr_status_t rv = ap_mutex_register(pconf, ZEQ_MUTEX_TYPE, NULL,
                                        APR_LOCK_DEFAULT, 0);
    if (rv == APR_SUCCESS) {
        rv = ap_mutex_register(pconf, ZEQ_REPLAY_MUTEX_TYPE, NULL,
                               APR_LOCK_DEFAULT, 0);
    }
    return rv;
}

static apr_status_t zeq_session_destroy(void *data)
{
    zeq_session_cache *cache = data;

    if (cache->instance != NULL) {
        /* The server, as mod_ssl passes it: providers may log with it. */
        cache->provider->destroy(cache->instance, cache->server);
        cache->instance = NULL;
    }
    return APR_SUCCESS;
}

static int zeq_session_post_config(apr_pool_t *pconf, apr_pool_t *plog,
                                   apr_pool_t *ptemp, server_rec *s)
{
    zeq_srv_conf *mc = zeq_config_srv(s);
    zeq_session_cache *cache = mc->cache;
    struct ap_socache_hints hints;
    apr_status_t rv;
    server_rec *vs;
    const char *err;

    (void)plog;
    /* The first pass of startup only checks the configuration. */
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG) {
        return OK;
    }
    if (cache == NULL) {
        cache = mc->cache = apr_pcalloc(pconf, sizeof(*cache));
    }
    cache->server = s;
    if (cache->provider == NULL) {
        cache->name = "shmcb";
        cache->provider = ap_lookup_provider(AP_SOCACHE_PROVIDER_GROUP,
                                             "shmcb",
                                             AP_SOCACHE_PROVIDER_VERSION);
        if (cache->provider == NULL) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, ZEQLOG(20003)
                         "ZeqE2ESessionCache is not set and the default "
                         "provider shmcb is not loaded: load "
                         "mod_socache_shmcb or set ZeqE2ESessionCache");
            return HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    if (cache->instance == NULL) {
        /* No directive, or a bare "shmcb": shmcb in the runtime directory,
         * sized for at least 100,000 sessions (the runtime directory is
         * known only now). */
        cache->args = apr_psprintf(pconf, "%s(%d)",
                                   ap_runtime_dir_relative(ptemp,
                                                           "zeq_e2e-sessions"),
                                   ZEQ_DEFAULT_CACHE_SIZE);
        err = cache->provider->create(&cache->instance, cache->args, ptemp,
                                      pconf);
        if (err != NULL) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, ZEQLOG(20004)
                         "default session cache: %s", err);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    for (vs = s->next; vs != NULL; vs = vs->next) {
        zeq_config_srv(vs)->cache = cache;
    }

    if (cache->provider->flags & AP_SOCACHE_FLAG_NOTMPSAFE) {
        rv = ap_global_mutex_create(&cache->mutex, NULL, ZEQ_MUTEX_TYPE,
                                    NULL, s, pconf, 0);
    }
    else {
        /* The provider serializes its own calls, not a read-modify-write
         * of a replay window. */
        rv = ap_global_mutex_create(&cache->replay_mutex, NULL,
                                    ZEQ_REPLAY_MUTEX_TYPE, NULL, s, pconf, 0);
    }
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, ZEQLOG(20005)
                     "cannot create the session cache mutex");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    memset(&hints, 0, sizeof(hints));
    hints.avg_id_len = ZEQ_SESSION_ID_HASH_LEN;
    hints.avg_obj_size = ZEQ_SESSREC_MAX_LEN;
    hints.expiry_interval = apr_time_from_sec(60);
    rv = cache->provider->init(cache->instance, "zeq_e2e", &hints, s, pconf);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, ZEQLOG(20006)
                     "cannot initialise the session cache (%s)",
                     cache->name);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    apr_pool_cleanup_register(pconf, cache, zeq_session_destroy,
                              apr_pool_cleanup_null);
    ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s, ZEQLOG(20007)
                 "session cache %s%s%s ready, %s",
                 cache->name, cache->args ? ":" : "",
                 cache->args ? cache->args : "",
                 cache->mutex ? "with a global mutex" : "MP-safe");
    return OK;
}

static void zeq_session_child_init(apr_pool_t *p, server_rec *s)
{
    zeq_session_cache *cache = zeq_config_srv(s)->cache;
    apr_status_t rv;

    apr_global_mutex_t **m[2];
    int i;

    if (cache == NULL) {
        return;
    }
    m[0] = &cache->mutex;
    m[1] = &cache->replay_mutex;
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

void zeq_session_register_hooks(apr_pool_t *p)
{
    (void)p;
    ap_hook_pre_config(zeq_session_pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    /* After the providers (mod_socache_*) have set themselves up. */
    ap_hook_post_config(zeq_session_post_config, NULL, NULL,
                        APR_HOOK_MIDDLE);
    ap_hook_child_init(zeq_session_child_init, NULL, NULL, APR_HOOK_MIDDLE);
}
