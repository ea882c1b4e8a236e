/* Session store: session records in Apache's shared object cache (socache),
 * under a hash of the session id, guarded by a registered global mutex when
 * the provider is not MP-safe. Records are stored with their own expiry:
 * the provider drops them itself (shmcb and dbm when they next store,
 * memcache and redis by their TTL); a lookup checks the record's expiry
 * too. */
#include "zeq_session.h"
#include "zeq_proto.h"

#include "http_core.h"
#include "util_mutex.h"
#include "apr_strings.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

/* Session record, version 1 (all integers big-endian):
 *   0  version (1)
 *   1  flags (0)
 *   2  reserved (2 bytes, 0)
 *   4  scope (16 bytes): binds the session to its virtual host and secret
 *      (zeq_config.c, ZeqE2ESessionScope)
 *  20  created, seconds since the epoch (8 bytes)
 *  28  expires, seconds since the epoch (8 bytes)
 *  36  key (32 bytes)
 * Later versions may seal the record; readers reject versions they do not
 * know, which costs the client one new handshake. */
#define ZEQ_SESSION_RECORD_V1 1
#define ZEQ_SESSION_RECORD_LEN (36 + ZEQ_KEY_LEN)
#define ZEQ_SESSION_ID_HASH_LEN 32

typedef struct {
    unsigned char scope[ZEQ_SCOPE_ID_LEN];
    apr_int64_t created;
    apr_int64_t expires;
    unsigned char key[ZEQ_KEY_LEN];
} zeq_session_record;

static void zeq_session_put64(unsigned char *p, apr_int64_t v)
{
    int i;

    for (i = 7; i >= 0; i--) {
        p[i] = (unsigned char)(v & 0xff);
        v >>= 8;
    }
}

static apr_int64_t zeq_session_get64(const unsigned char *p)
{
    apr_uint64_t v = 0;
    int i;

    for (i = 0; i < 8; i++) {
        v = (v << 8) | p[i];
    }
    return (apr_int64_t)v;
}

static void zeq_session_encode(const zeq_session_record *rec,
                               unsigned char out[ZEQ_SESSION_RECORD_LEN])
{
    memset(out, 0, 4);
    out[0] = ZEQ_SESSION_RECORD_V1;
    memcpy(out + 4, rec->scope, ZEQ_SCOPE_ID_LEN);
    zeq_session_put64(out + 20, rec->created);
    zeq_session_put64(out + 28, rec->expires);
    memcpy(out + 36, rec->key, ZEQ_KEY_LEN);
}

static int zeq_session_decode(const unsigned char *in, apr_size_t len,
                              zeq_session_record *rec)
{
    if (len != ZEQ_SESSION_RECORD_LEN || in[0] != ZEQ_SESSION_RECORD_V1) {
        return 0;
    }
    memcpy(rec->scope, in + 4, ZEQ_SCOPE_ID_LEN);
    rec->created = zeq_session_get64(in + 20);
    rec->expires = zeq_session_get64(in + 28);
    memcpy(rec->key, in + 36, ZEQ_KEY_LEN);
    return 1;
}

/* The cache key: SHA-256 of the session id, so the cache never holds ids. */
static int zeq_session_id_hash(const char *id,
                               unsigned char out[ZEQ_SESSION_ID_HASH_LEN])
{
    unsigned int n = 0;

    return EVP_Digest(id, strlen(id), out, &n, EVP_sha256(), NULL) == 1
           && n == ZEQ_SESSION_ID_HASH_LEN;
}

static apr_status_t zeq_session_lock(zeq_session_cache *cache, server_rec *s)
{
    apr_status_t rv;

    if (cache->mutex == NULL) {
        return APR_SUCCESS;
    }
    rv = apr_global_mutex_lock(cache->mutex);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, s, ZEQLOG(20001)
                     "cannot lock the session cache mutex");
    }
    return rv;
}

static void zeq_session_unlock(zeq_session_cache *cache, server_rec *s)
{
    apr_status_t rv;

    if (cache->mutex != NULL
        && (rv = apr_global_mutex_unlock(cache->mutex)) != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, s, ZEQLOG(20002)
                     "cannot unlock the session cache mutex");
    }
}

apr_status_t zeq_session_create(request_rec *r, const zeq_srv_conf *sc,
                                const unsigned char key[ZEQ_KEY_LEN],
                                const char **id)
{
    zeq_session_cache *cache = sc->cache;
    unsigned char raw[ZEQ_PROTO_SESSION_ID_BYTES];
    unsigned char hash[ZEQ_SESSION_ID_HASH_LEN];
    unsigned char data[ZEQ_SESSION_RECORD_LEN];
    zeq_session_record rec;
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
    if (!zeq_session_id_hash(sid, hash)) {
        return APR_EGENERAL;
    }
    memcpy(rec.scope, sc->scope_id, ZEQ_SCOPE_ID_LEN);
    rec.created = apr_time_sec(r->request_time);
    rec.expires = rec.created + zeq_config_ttl(sc);
    memcpy(rec.key, key, ZEQ_KEY_LEN);
    zeq_session_encode(&rec, data);

    rv = zeq_session_lock(cache, r->server);
    if (rv == APR_SUCCESS) {
        rv = cache->provider->store(cache->instance, r->server, hash,
                                    sizeof(hash),
                                    apr_time_from_sec(rec.expires),
                                    data, sizeof(data), r->pool);
        zeq_session_unlock(cache, r->server);
    }
    OPENSSL_cleanse(&rec, sizeof(rec));
    OPENSSL_cleanse(data, sizeof(data));
    if (rv == APR_SUCCESS) {
        *id = sid;
    }
    return rv;
}

apr_status_t zeq_session_lookup(request_rec *r, const zeq_srv_conf *sc,
                                const char *id,
                                unsigned char key[ZEQ_KEY_LEN])
{
    zeq_session_cache *cache = sc->cache;
    unsigned char hash[ZEQ_SESSION_ID_HASH_LEN];
    /* Room for a larger record than ours, so a future version is read and
     * rejected instead of failing as a too-small buffer. */
    unsigned char data[4 * ZEQ_SESSION_RECORD_LEN];
    unsigned int len = sizeof(data);
    zeq_session_record rec;
    apr_status_t rv;

    if (cache == NULL || cache->instance == NULL) {
        return APR_EINIT;
    }
    if (!zeq_proto_session_id_valid(id)) {
        return APR_NOTFOUND;
    }
    if (!zeq_session_id_hash(id, hash)) {
        return APR_EGENERAL;
    }
    rv = zeq_session_lock(cache, r->server);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    rv = cache->provider->retrieve(cache->instance, r->server, hash,
                                   sizeof(hash), data, &len, r->pool);
    zeq_session_unlock(cache, r->server);
    if (rv != APR_SUCCESS) {
        /* shmcb and dbm say NOTFOUND, memcache and redis ENOMEM or ENOSPC
         * for a record that does not fit: all mean "no usable session". */
        return (rv == APR_NOTFOUND || APR_STATUS_IS_ENOSPC(rv)
                || APR_STATUS_IS_ENOMEM(rv)) ? APR_NOTFOUND : rv;
    }
    rv = APR_NOTFOUND;
    if (zeq_session_decode(data, len, &rec)
        && CRYPTO_memcmp(rec.scope, sc->scope_id, ZEQ_SCOPE_ID_LEN) == 0
        && rec.expires > apr_time_sec(apr_time_now())) {
        memcpy(key, rec.key, ZEQ_KEY_LEN);
        rv = APR_SUCCESS;
    }
    OPENSSL_cleanse(&rec, sizeof(rec));
    OPENSSL_cleanse(data, sizeof(data));
    return rv;
}

static int zeq_session_pre_config(apr_pool_t *pconf, apr_pool_t *plog,
                                  apr_pool_t *ptemp)
{
    (void)plog;
    (void)ptemp;
    return ap_mutex_register(pconf, ZEQ_MUTEX_TYPE, NULL, APR_LOCK_DEFAULT,
                             0);
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
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, ZEQLOG(20005)
                         "cannot create the session cache mutex");
            return HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    memset(&hints, 0, sizeof(hints));
    hints.avg_id_len = ZEQ_SESSION_ID_HASH_LEN;
    hints.avg_obj_size = ZEQ_SESSION_RECORD_LEN;
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

    if (cache != NULL && cache->mutex != NULL) {
        rv = apr_global_mutex_child_init(&cache->mutex,
                                         apr_global_mutex_lockfile(
                                             cache->mutex), p);
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, ZEQLOG(20008)
                         "cannot attach the session cache mutex in a child");
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
