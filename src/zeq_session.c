/* The session policy (see zeq_session.h).
 *
 * A session is stored under SHA-256 of its id, so the store never holds
 * ids, as a record sealed with the record key (zeq_sessrec.h), so it holds
 * no usable key either. Records carry their own expiry: the store drops
 * them itself (shmcb and dbm when they next store, redis and memcached by
 * their TTL), and a lookup checks it too.
 *
 * On a store of one server each process keeps the records it opened in its
 * own cache (zeq_reccache), read without a lock: a lookup reads the store
 * again after ZEQ_RECCACHE_RECHECK seconds, never past the record's expiry,
 * and caches only used sessions (an unused one is marked used in the store
 * first), so none that may be dropped as unused. A shared store is read at
 * every lookup: other servers change its records.
 *
 * Replays: on a socache store (one server) each v2 session's window is a
 * slot of the window table (zeq_wintab), in shared memory made in
 * post_config (ZeqE2EReplayWindows slots) that survives graceful restarts;
 * its record names the slot, and a number is checked under that slot's own
 * lock word, no global mutex. A session whose slot went to a newer one has
 * lost its window: it is removed and counts as unknown. Records of earlier
 * releases that carry their window are still updated under the store's
 * mutex (zeq_store_update). A
 * shared store (redis, memcached) has no compare-and-set through which
 * servers could update one window: each number is claimed instead with an
 * atomic add of an entry of its own (hash of the id || the number), which
 * lives as long as the session can (the host's TTL from now). The first
 * server to add it accepts the request, every other gets APR_EEXIST. */
#include "zeq_session.h"
#include "zeq_envelope.h"
#include "zeq_proto.h"
#include "zeq_reccache.h"
#include "zeq_replay.h"
#include "zeq_sessrec.h"
#include "zeq_stats.h"
#include "zeq_store.h"
#include "zeq_wintab.h"

#include "http_core.h"
#include "apr_file_io.h"
#include "apr_shm.h"
#include "apr_strings.h"

#include <errno.h>
#include <signal.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#define ZEQ_SESSION_ID_HASH_LEN ZEQ_SESSREC_ID_HASH_LEN
#if ZEQ_SESSION_ID_HASH_LEN != ZEQ_SESSION_HASH_LEN
#error "the store id of a session is the record's id hash"
#endif
#define ZEQ_SESSION_KEY_FILE "zeq_e2e-record.key"
#define ZEQ_SESSION_WINDOWS_KEY "zeq_e2e-windows"

/* The module-wide sealing key of this configuration generation. */
static zeq_sessrec_key zeq_session_key;
static int zeq_session_key_ready;
/* This process's handle of the replay window table (a store of one server;
 * mem is NULL for a shared store). */
static zeq_wintab zeq_session_windows;

static int zeq_session_hash(const char *id,
                            unsigned char out[ZEQ_SESSION_ID_HASH_LEN])
{
    return zeq_envelope_sha256(id, strlen(id), out) == ZEQ_OK;
}

const char *zeq_session_tag(apr_pool_t *p, const char *id)
{
    unsigned char hash[ZEQ_SESSION_ID_HASH_LEN];
    char *hex = apr_palloc(p, 13);

    if (id == NULL || !zeq_session_hash(id, hash)) {
        return "-";
    }
    ap_bin2hex(hash, 6, hex);
    return hex;
}

/* Seals rec into buf for the record under hash: its length, 0 on failure. */
static size_t zeq_session_seal(const zeq_sessrec *rec,
                               const unsigned char *hash,
                               unsigned char buf[ZEQ_SESSREC_MAX_LEN])
{
    unsigned char nonce[ZEQ_SESSREC_NONCE_LEN];

    if (!zeq_session_key_ready || RAND_bytes(nonce, sizeof(nonce)) != 1) {
        return 0;
    }
    return zeq_sessrec_seal(&zeq_session_key, rec, hash, nonce, buf);
}

/* Opens a stored record and checks it serves this host now: APR_SUCCESS or
 * APR_NOTFOUND. A record that does not open is logged once, at info. */
static apr_status_t zeq_session_open(request_rec *r, const zeq_srv_conf *sc,
                                     const unsigned char *hash,
                                     const unsigned char *data, apr_size_t len,
                                     zeq_sessrec *rec)
{
    int rv = zeq_session_key_ready
             ? zeq_sessrec_open(&zeq_session_key, data, len, hash, rec)
             : ZEQ_ERR_CRYPTO;

    if (rv != ZEQ_OK) {
        char tag[13];
        ap_bin2hex(hash, 6, tag);
        zeq_stats_add(ZEQ_STAT_RECORDS_UNREADABLE, 1);
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, ZEQLOG(20010)
                      "the record of session %s does not open (%s): it counts "
                      "as unknown", tag,
                      rv == ZEQ_ERR_KEY ? "sealed under another record key"
                      : rv == ZEQ_ERR_VERSION ? "a record version this "
                                                "server does not read"
                      : rv == ZEQ_ERR_AUTH ? "it does not verify"
                      : rv == ZEQ_ERR_BAD ? "malformed" : "libcrypto failed");
        return APR_NOTFOUND;
    }
    if (CRYPTO_memcmp(rec->scope, sc->scope_id, ZEQ_SCOPE_ID_LEN) != 0
        || rec->expires <= apr_time_sec(apr_time_now())) {
        OPENSSL_cleanse(rec, sizeof(*rec));
        return APR_NOTFOUND;
    }
    return APR_SUCCESS;
}

const char *zeq_session_new_id(apr_pool_t *p,
                               unsigned char hash[ZEQ_SESSION_HASH_LEN])
{
    unsigned char raw[ZEQ_PROTO_SESSION_ID_BYTES];
    char *sid;

    if (RAND_bytes(raw, sizeof(raw)) != 1) {
        return NULL;
    }
    sid = apr_palloc(p, zeq_proto_b64url_len(sizeof(raw)) + 1);
    zeq_proto_b64url_encode(raw, sizeof(raw), sid);
    OPENSSL_cleanse(raw, sizeof(raw));
    return zeq_session_hash(sid, hash) ? sid : NULL;
}

apr_status_t zeq_session_create(request_rec *r, const zeq_srv_conf *sc,
                                const zeq_keys *keys,
                                const unsigned char hash[ZEQ_SESSION_HASH_LEN],
                                apr_int64_t *expires)
{
    unsigned char data[ZEQ_SESSREC_MAX_LEN];
    zeq_sessrec rec;
    size_t len;
    apr_status_t rv;

    memset(&rec, 0, sizeof(rec));
    memcpy(rec.scope, sc->scope_id, ZEQ_SCOPE_ID_LEN);
    rec.created = apr_time_sec(r->request_time);
    rec.expires = rec.created + zeq_config_ttl(sc);
    rec.keys = *keys;
    rec.unused = 1;
    zeq_replay_init(&rec.window);
    if (keys->version == 2 && !zeq_store_shared()) {
        rec.has_slot = zeq_session_windows.mem != NULL;
        rec.has_window = !rec.has_slot;
    }
    if (rec.has_slot) {
        int evicted = 0;
        rec.slot = zeq_wintab_claim(&zeq_session_windows, hash, rec.expires,
                                    apr_time_sec(apr_time_now()), &evicted);
        if (evicted) {
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, ZEQLOG(20019)
                          "every replay window is in use "
                          "(ZeqE2EReplayWindows %u): the oldest live "
                          "session's went to the new one",
                          (unsigned)zeq_session_windows.slots);
        }
        if (rec.slot == ZEQ_WINTAB_NONE) {
            /* Every slot it tried is locked by a process that does not
             * give it back: the window travels in the record instead. */
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, ZEQLOG(20022)
                          "no replay window slot could be locked (held by a "
                          "live process that does not release them): this "
                          "session's window is kept in its record");
            rec.has_slot = 0;
            rec.has_window = 1;
        }
    }
    len = zeq_session_seal(&rec, hash, data);
    rv = len == 0 ? APR_EGENERAL
         : zeq_store_put(r->server, hash, ZEQ_SESSION_ID_HASH_LEN,
                         apr_time_from_sec(rec.expires), data, len, r->pool);
    if (rv != APR_SUCCESS && rec.has_slot) {
        zeq_wintab_release(&zeq_session_windows, rec.slot, hash);
    }
    if (expires != NULL) {
        *expires = rec.expires;
    }
    OPENSSL_cleanse(&rec, sizeof(rec));
    OPENSSL_cleanse(data, sizeof(data));
    return rv;
}

/* Seals a changed record back into an update's buffer (cap bytes):
 * APR_SUCCESS with its length and expiry, or APR_EGENERAL. */
static apr_status_t zeq_session_reseal(const zeq_sessrec *rec,
                                       const unsigned char *hash,
                                       unsigned char *data, apr_size_t *len,
                                       apr_size_t cap, apr_time_t *expiry)
{
    size_t n;

    if (cap < zeq_sessrec_len(rec)
        || (n = zeq_session_seal(rec, hash, data)) == 0) {
        return APR_EGENERAL;
    }
    *len = n;
    *expiry = apr_time_from_sec(rec->expires);
    return APR_SUCCESS;
}

/* What a change of a stored record under the store's mutex (socache)
 * does: clear its unused flag, or remove it if it is still unused. */
typedef struct {
    const unsigned char *hash;
    int drop;                   /* 0: mark used; 1: remove if unused */
    int has_slot;               /* removed: the slot of its window */
    uint32_t slot;
} zeq_session_use_ctx;

static apr_status_t zeq_session_use_one(void *baton, unsigned char *data,
                                        apr_size_t *len, apr_size_t cap,
                                        apr_time_t *expiry)
{
    zeq_session_use_ctx *ctx = baton;
    zeq_sessrec rec;
    apr_status_t rv = APR_EEXIST;
    int ok = zeq_session_key_ready
             && zeq_sessrec_open(&zeq_session_key, data, *len, ctx->hash,
                                 &rec) == ZEQ_OK;

    if (!ok) {
        return APR_NOTFOUND;
    }
    if (rec.unused && ctx->drop) {
        rv = ZEQ_STORE_REMOVE;
        ctx->has_slot = rec.has_slot;
        ctx->slot = rec.slot;
    }
    else if (rec.unused) {
        rec.unused = 0;
        rv = zeq_session_reseal(&rec, ctx->hash, data, len, cap, expiry);
    }
    OPENSSL_cleanse(&rec, sizeof(rec));
    return rv;
}

/* zeq_session_use_one on the record under hash (a socache store). */
static apr_status_t zeq_session_use(request_rec *r, const unsigned char *hash,
                                    int drop)
{
    zeq_session_use_ctx ctx;
    apr_status_t rv;

    ctx.hash = hash;
    ctx.drop = drop;
    ctx.has_slot = 0;
    rv = zeq_store_update(r->server, hash, ZEQ_SESSION_ID_HASH_LEN,
                          ZEQ_SESSREC_MAX_LEN, zeq_session_use_one, &ctx,
                          r->pool);
    if (rv == ZEQ_STORE_REMOVE && ctx.has_slot
        && zeq_session_windows.mem != NULL) {
        zeq_wintab_release(&zeq_session_windows, ctx.slot, hash);
    }
    return rv;
}

/* A shared store has no read-modify-write: the record is written again
 * whole (it holds no replay window there, so nothing a concurrent request
 * changed is lost). */
static apr_status_t zeq_session_mark_used(request_rec *r,
                                          const unsigned char *hash,
                                          zeq_sessrec *rec)
{
    unsigned char data[ZEQ_SESSREC_MAX_LEN];
    apr_status_t rv;
    size_t n;

    if (!zeq_store_shared()) {
        rv = zeq_session_use(r, hash, 0);
        return rv == APR_EEXIST ? APR_SUCCESS : rv;
    }
    rec->unused = 0;
    n = zeq_session_seal(rec, hash, data);
    rv = n == 0 ? APR_EGENERAL
         : zeq_store_put(r->server, hash, ZEQ_SESSION_ID_HASH_LEN,
                         apr_time_from_sec(rec->expires), data, n, r->pool);
    OPENSSL_cleanse(data, sizeof(data));
    return rv;
}

apr_status_t zeq_session_drop_unused(request_rec *r,
                                     const unsigned char
                                     hash[ZEQ_SESSION_HASH_LEN])
{
    unsigned char data[2 * ZEQ_SESSREC_MAX_LEN];
    apr_size_t len = sizeof(data);
    zeq_sessrec rec;
    apr_status_t rv;
    int unused;

    if (!zeq_store_shared()) {
        rv = zeq_session_use(r, hash, 1);
        if (rv == ZEQ_STORE_REMOVE) {
            zeq_reccache_drop(hash);
            return APR_SUCCESS;
        }
        return rv;
    }
    rv = zeq_store_get(r->server, hash, ZEQ_SESSION_ID_HASH_LEN, data, &len,
                       r->pool);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (!zeq_session_key_ready
        || zeq_sessrec_open(&zeq_session_key, data, len, hash, &rec)
           != ZEQ_OK) {
        OPENSSL_cleanse(data, sizeof(data));
        return APR_NOTFOUND;
    }
    unused = rec.unused;
    OPENSSL_cleanse(&rec, sizeof(rec));
    OPENSSL_cleanse(data, sizeof(data));
    if (!unused) {
        return APR_EEXIST;
    }
    return zeq_store_remove(r->server, hash, ZEQ_SESSION_ID_HASH_LEN, r->pool);
}

/* The cache entry of an opened record (a store of one server). */
static void zeq_session_cache_put(const unsigned char *hash,
                                  const zeq_sessrec *rec, apr_int64_t now)
{
    zeq_reccache_entry e;

    memset(&e, 0, sizeof(e));
    memcpy(e.hash, hash, sizeof(e.hash));
    memcpy(e.scope, rec->scope, sizeof(e.scope));
    e.expires = rec->expires;
    e.checked = now;
    e.window = rec->has_slot ? rec->slot : ZEQ_RECCACHE_NO_WINDOW;
    e.keys = rec->keys;
    zeq_reccache_put(&e);
    OPENSSL_cleanse(&e, sizeof(e));
}

/* A session found in this process's cache: APR_SUCCESS, APR_NOTFOUND (of
 * another scope), or APR_INCOMPLETE when the cache does not hold it. */
static apr_status_t zeq_session_cached(const zeq_srv_conf *sc,
                                       const unsigned char *hash,
                                       apr_int64_t now, zeq_keys *keys,
                                       apr_int64_t *expires)
{
    zeq_reccache_entry e;
    apr_status_t rv = APR_INCOMPLETE;

    if (!zeq_store_shared() && zeq_reccache_get(hash, now, &e)) {
        rv = CRYPTO_memcmp(e.scope, sc->scope_id, ZEQ_SCOPE_ID_LEN) == 0
             ? APR_SUCCESS : APR_NOTFOUND;
        if (rv == APR_SUCCESS) {
            *keys = e.keys;
            if (expires != NULL) {
                *expires = e.expires;
            }
        }
        OPENSSL_cleanse(&e, sizeof(e));
    }
    return rv;
}

apr_status_t zeq_session_lookup(request_rec *r, const zeq_srv_conf *sc,
                                const char *id, zeq_keys *keys,
                                apr_int64_t *expires)
{
    unsigned char hash[ZEQ_SESSION_ID_HASH_LEN];
    /* Room for a larger record than ours, so that a future version is read
     * and refused instead of failing as a too-small buffer. */
    unsigned char data[2 * ZEQ_SESSREC_MAX_LEN];
    apr_size_t len = sizeof(data);
    apr_int64_t now = apr_time_sec(apr_time_now());
    zeq_sessrec rec;
    apr_status_t rv, mark = APR_SUCCESS;

    if (!zeq_proto_session_id_valid(id)) {
        return APR_NOTFOUND;
    }
    if (!zeq_session_hash(id, hash)) {
        return APR_EGENERAL;
    }
    rv = zeq_session_cached(sc, hash, now, keys, expires);
    if (rv != APR_INCOMPLETE) {
        return rv;
    }
    rv = zeq_store_get(r->server, hash, sizeof(hash), data, &len, r->pool);
    if (rv == APR_SUCCESS) {
        rv = zeq_session_open(r, sc, hash, data, len, &rec);
    }
    OPENSSL_cleanse(data, sizeof(data));
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (rec.unused
        && (mark = zeq_session_mark_used(r, hash, &rec)) != APR_SUCCESS) {
        if (mark == APR_NOTFOUND && !zeq_store_shared()) {
            /* Dropped as unused between the read and the mark: gone. */
            OPENSSL_cleanse(&rec, sizeof(rec));
            return APR_NOTFOUND;
        }
        /* The request goes on with the keys it found; the session merely
         * stays counted as unused (and is not cached: the next request
         * tries again). */
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, mark, r, ZEQLOG(20018)
                      "cannot mark session %s used",
                      zeq_session_tag(r->pool, id));
    }
    if (mark == APR_SUCCESS && !zeq_store_shared()) {
        /* Only a used session is cached: none that may still be dropped
         * as unused. */
        zeq_session_cache_put(hash, &rec, now);
    }
    *keys = rec.keys;
    if (expires != NULL) {
        *expires = rec.expires;
    }
    OPENSSL_cleanse(&rec, sizeof(rec));
    return APR_SUCCESS;
}

typedef struct {
    request_rec *r;
    const zeq_srv_conf *sc;
    const unsigned char *hash;
    apr_uint64_t seq;
} zeq_session_accept_ctx;

/* The update of a record's window (under the store's mutex). */
static apr_status_t zeq_session_accept_one(void *baton, unsigned char *data,
                                           apr_size_t *len, apr_size_t cap,
                                           apr_time_t *expiry)
{
    zeq_session_accept_ctx *ctx = baton;
    zeq_sessrec rec;
    apr_status_t rv;

    rv = zeq_session_open(ctx->r, ctx->sc, ctx->hash, data, *len, &rec);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (rec.keys.version != 2 || !rec.has_window
        || zeq_replay_accept(&rec.window, ctx->seq) != ZEQ_OK) {
        rv = APR_EEXIST;
    }
    else {
        rv = zeq_session_reseal(&rec, ctx->hash, data, len, cap, expiry);
    }
    OPENSSL_cleanse(&rec, sizeof(rec));
    return rv;
}

/* The window slot of a live session of this host (a store of one server):
 * from the process's cache, else from its record. APR_SUCCESS with *slot,
 * ZEQ_RECCACHE_NO_WINDOW when the window travels in the record;
 * APR_NOTFOUND; a store failure. */
static apr_status_t zeq_session_window_slot(request_rec *r,
                                            const zeq_srv_conf *sc,
                                            const unsigned char *hash,
                                            uint32_t *slot)
{
    unsigned char data[2 * ZEQ_SESSREC_MAX_LEN];
    apr_size_t len = sizeof(data);
    zeq_reccache_entry e;
    zeq_sessrec rec;
    apr_status_t rv;

    if (zeq_reccache_get(hash, apr_time_sec(apr_time_now()), &e)) {
        rv = CRYPTO_memcmp(e.scope, sc->scope_id, ZEQ_SCOPE_ID_LEN) == 0
             ? APR_SUCCESS : APR_NOTFOUND;
        *slot = e.window;
        OPENSSL_cleanse(&e, sizeof(e));
        return rv;
    }
    rv = zeq_store_get(r->server, hash, ZEQ_SESSION_ID_HASH_LEN, data, &len,
                       r->pool);
    if (rv == APR_SUCCESS) {
        rv = zeq_session_open(r, sc, hash, data, len, &rec);
    }
    OPENSSL_cleanse(data, sizeof(data));
    if (rv == APR_SUCCESS) {
        *slot = rec.has_slot ? rec.slot : ZEQ_RECCACHE_NO_WINDOW;
        OPENSSL_cleanse(&rec, sizeof(rec));
    }
    return rv;
}

/* Accepts seq in the session's slot of the window table: APR_SUCCESS,
 * APR_EEXIST; APR_NOTFOUND when the slot went to another session (this
 * one is removed: without its window it cannot go on); APR_EAGAIN when
 * the slot's lock word could not be had (nothing accepted). */
static apr_status_t zeq_session_accept_slot(request_rec *r, const char *id,
                                            const unsigned char *hash,
                                            uint32_t slot, apr_uint64_t seq)
{
    int rv = zeq_wintab_accept(&zeq_session_windows, slot, hash, seq);

    if (rv == ZEQ_OK) {
        return APR_SUCCESS;
    }
    if (rv == ZEQ_ERR_BUSY) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, ZEQLOG(20023)
                      "the replay window of session %s is locked by a live "
                      "process that does not release it: its number is "
                      "neither accepted nor refused",
                      zeq_session_tag(r->pool, id));
        return APR_EAGAIN;
    }
    if (rv != ZEQ_ERR_GONE) {
        return APR_EEXIST;
    }
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, ZEQLOG(20020)
                  "session %s has lost its replay window (its slot went to a "
                  "newer session, or the table was made anew): it counts as "
                  "unknown", zeq_session_tag(r->pool, id));
    zeq_reccache_drop(hash);
    zeq_store_remove(r->server, hash, ZEQ_SESSION_ID_HASH_LEN, r->pool);
    return APR_NOTFOUND;
}

apr_status_t zeq_session_accept_seq(request_rec *r, const zeq_srv_conf *sc,
                                    const char *id, apr_uint64_t seq)
{
    unsigned char hash[ZEQ_SESSION_ID_HASH_LEN], claim[ZEQ_SESSION_ID_HASH_LEN + 8];
    zeq_session_accept_ctx ctx;
    uint32_t slot = ZEQ_RECCACHE_NO_WINDOW;
    apr_status_t rv;
    int i;

    if (!zeq_session_hash(id, hash)) {
        return APR_EGENERAL;
    }
    if (zeq_store_shared()) {
        if (seq > ZEQ_SEQ_MAX) {
            return APR_EEXIST;
        }
        memcpy(claim, hash, sizeof(hash));
        for (i = 0; i < 8; i++) {
            claim[sizeof(hash) + i] = (unsigned char)(seq >> (56 - 8 * i));
        }
        return zeq_store_add(r->server, claim, sizeof(claim),
                             apr_time_now()
                             + apr_time_from_sec(zeq_config_ttl(sc)),
                             r->pool);
    }
    if (zeq_session_windows.mem != NULL) {
        rv = zeq_session_window_slot(r, sc, hash, &slot);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        if (slot != ZEQ_RECCACHE_NO_WINDOW) {
            return zeq_session_accept_slot(r, id, hash, slot, seq);
        }
    }
    /* A record that carries its window (an earlier release's). */
    ctx.r = r;
    ctx.sc = sc;
    ctx.hash = hash;
    ctx.seq = seq;
    return zeq_store_update(r->server, hash, sizeof(hash), ZEQ_SESSREC_MAX_LEN,
                            zeq_session_accept_one, &ctx, r->pool);
}

/* --- the record key --------------------------------------------------------- */

/* Reads the generated record key of the runtime directory, creating it
 * first (32 random bytes in hex, readable by root only) when there is
 * none. Returns its bytes in p, or NULL (logged). */
static unsigned char *zeq_session_generated_key(apr_pool_t *p, server_rec *s,
                                                apr_size_t *len)
{
    const char *path = ap_runtime_dir_relative(p, ZEQ_SESSION_KEY_FILE);
    unsigned char raw[32], *buf = apr_palloc(p, 2 * sizeof(raw) + 2);
    apr_file_t *f;
    apr_size_t n = 0;
    apr_status_t rv;

    rv = apr_file_open(&f, path, APR_FOPEN_READ | APR_FOPEN_BINARY,
                       APR_OS_DEFAULT, p);
    if (APR_STATUS_IS_ENOENT(rv)) {
        if (RAND_bytes(raw, sizeof(raw)) != 1) {
            return NULL;
        }
        ap_bin2hex(raw, sizeof(raw), (char *)buf);
        OPENSSL_cleanse(raw, sizeof(raw));
        buf[2 * sizeof(raw)] = '\n';
        rv = apr_file_open(&f, path, APR_FOPEN_WRITE | APR_FOPEN_CREATE
                           | APR_FOPEN_EXCL | APR_FOPEN_BINARY,
                           APR_FPROT_UREAD | APR_FPROT_UWRITE, p);
        if (rv == APR_SUCCESS) {
            rv = apr_file_write_full(f, buf, 2 * sizeof(raw) + 1, NULL);
            apr_file_close(f);
        }
        if (rv != APR_SUCCESS) {
            OPENSSL_cleanse(buf, 2 * sizeof(raw) + 2);
            ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, ZEQLOG(20011)
                         "cannot write the session record key %s (set "
                         "ZeqE2ERecordKey)", path);
            return NULL;
        }
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, s, ZEQLOG(20012)
                     "generated a session record key in %s", path);
        *len = 2 * sizeof(raw);
        return buf;
    }
    if (rv == APR_SUCCESS) {
        apr_finfo_t fi;
        int exposed = apr_file_info_get(&fi, APR_FINFO_PROT, f) == APR_SUCCESS
                      ? zeq_config_file_exposure(fi.protection) : 0;
        if (exposed == 2) {
            apr_file_close(f);
            ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, ZEQLOG(20016)
                         "the session record key %s is readable by other "
                         "users (mode %04x): make it readable by its owner "
                         "only (chmod 600), or remove it to have a new one "
                         "made", path, ZEQ_CONFIG_MODE(fi.protection));
            return NULL;
        }
        if (exposed == 1) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, ZEQLOG(20017)
                         "the session record key %s is readable by its group "
                         "(mode %04x): only the user who starts Apache needs "
                         "to read it (chmod 600)", path,
                         ZEQ_CONFIG_MODE(fi.protection));
        }
        rv = apr_file_read_full(f, buf, 2 * sizeof(raw) + 1, &n);
        apr_file_close(f);
        if (rv == APR_EOF) {
            rv = APR_SUCCESS;
        }
    }
    if (n > 0 && buf[n - 1] == '\n') {
        n--;
    }
    if (rv != APR_SUCCESS || n < ZEQ_SESSREC_MIN_IKM) {
        OPENSSL_cleanse(buf, 2 * sizeof(raw) + 2);
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, ZEQLOG(20013)
                     "cannot read the session record key %s (at least %d "
                     "bytes; remove it to have a new one made)", path,
                     ZEQ_SESSREC_MIN_IKM);
        return NULL;
    }
    *len = n;
    return buf;
}

static apr_status_t zeq_session_key_cleanse(void *data)
{
    (void)data;
    zeq_sessrec_key_cleanse(&zeq_session_key);
    zeq_reccache_clear();
    zeq_session_key_ready = 0;
    return APR_SUCCESS;
}

static int zeq_session_alive(uint32_t pid)
{
    return kill((pid_t)pid, 0) == 0 || errno != ESRCH;
}

/* The replay window table of a store of one server: in the process pool,
 * made once and found again by every generation after a graceful restart
 * (made anew when ZeqE2EReplayWindows changed); children inherit it. */
static int zeq_session_windows_init(server_rec *s)
{
    apr_pool_t *pp = s->process->pool;
    int n = zeq_config_replay_windows(zeq_config_srv(s));
    apr_shm_t *shm = NULL;
    void *data = NULL;
    apr_status_t rv;

    memset(&zeq_session_windows, 0, sizeof(zeq_session_windows));
    if (zeq_store_shared()) {
        return OK;
    }
    apr_pool_userdata_get(&data, ZEQ_SESSION_WINDOWS_KEY, pp);
    shm = data;
    if (shm != NULL
        && (zeq_wintab_attach(&zeq_session_windows, apr_shm_baseaddr_get(shm),
                              apr_shm_size_get(shm)) != ZEQ_OK
            || zeq_session_windows.slots != (uint32_t)n)) {
        apr_pool_userdata_set(NULL, ZEQ_SESSION_WINDOWS_KEY,
                              apr_pool_cleanup_null, pp);
        apr_shm_destroy(shm);
        shm = NULL;
    }
    if (shm == NULL) {
        apr_size_t size = zeq_wintab_size((uint32_t)n);
        rv = apr_shm_create(&shm, size, NULL, pp);
        if (rv != APR_SUCCESS
            || zeq_wintab_format(&zeq_session_windows,
                                 apr_shm_baseaddr_get(shm), size,
                                 (uint32_t)n) != ZEQ_OK) {
            memset(&zeq_session_windows, 0, sizeof(zeq_session_windows));
            ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, ZEQLOG(20021)
                         "cannot create the shared memory of %d replay "
                         "windows (%" APR_SIZE_T_FMT " bytes; "
                         "ZeqE2EReplayWindows)", n, size);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        apr_pool_userdata_set(shm, ZEQ_SESSION_WINDOWS_KEY,
                              apr_pool_cleanup_null, pp);
    }
    zeq_session_windows.self = (uint32_t)getpid();
    zeq_session_windows.alive = zeq_session_alive;
    return OK;
}

static void zeq_session_child_init(apr_pool_t *p, server_rec *s)
{
    (void)p;
    (void)s;
    zeq_session_windows.self = (uint32_t)getpid();
    zeq_reccache_clear();
}

static int zeq_session_post_config(apr_pool_t *pconf, apr_pool_t *plog,
                                   apr_pool_t *ptemp, server_rec *s)
{
    const zeq_secret *rk = zeq_config_srv(s)->record_key;
    const unsigned char *ikm;
    unsigned char *generated = NULL;
    apr_size_t len = 0;
    int rv;

    (void)plog;
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG) {
        return OK;
    }
    if (rk != NULL) {
        ikm = rk->bytes;
        len = rk->len;
    }
    else {
        ikm = generated = zeq_session_generated_key(ptemp, s, &len);
        if (generated == NULL) {
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        if (zeq_store_shared()) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, ZEQLOG(20014)
                         "ZeqE2ESessionCache %s is meant to be shared, but "
                         "ZeqE2ERecordKey is not set: this server's records "
                         "open only here (give every server the same "
                         "ZeqE2ERecordKey file)", zeq_store_describe(ptemp));
        }
    }
    rv = zeq_sessrec_key_derive(ikm, len, &zeq_session_key);
    if (generated != NULL) {
        OPENSSL_cleanse(generated, len);
    }
    if (rv != ZEQ_OK) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, ZEQLOG(20015)
                     "cannot derive the session record key");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    zeq_session_key_ready = 1;
    apr_pool_cleanup_register(pconf, NULL, zeq_session_key_cleanse,
                              apr_pool_cleanup_null);
    return zeq_session_windows_init(s);
}

void zeq_session_register_hooks(apr_pool_t *p)
{
    (void)p;
    ap_hook_post_config(zeq_session_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(zeq_session_child_init, NULL, NULL, APR_HOOK_MIDDLE);
}
