/* The handshake (PROTOCOL.md sections 3 and 18.1): v1 POST {"clientNonce"}
 * -> {"version": 1, "sessionId", "serverNonce", "expiresIn"}; v2 POST
 * {"version": 2, "clientNonce", "clientKey"[, "psk"]} -> {"version": 2,
 * "sessionId", "serverNonce", "serverKey", "expiresIn"[, "signature",
 * "signer"]}. Only the I/O and the policy are here: the parsers and the
 * answer are zeq_proto's, the keys zeq_kex's. Served by a handler that runs
 * before mod_proxy's, so it also answers inside a ProxyPass'd URL space.
 *
 * What a handshake costs is guarded (zeq_guard): the client address's rate
 * is checked before the body is read, a derivation slot is taken after it
 * was parsed and checked (so that no slot waits on a slow client) and
 * given back before the session is stored (so that none waits on the
 * store either), and the session pushed out of the address's ring of
 * unused sessions is dropped once the new one is stored. */
#include "zeq_handshake.h"
#include "zeq_config.h"
#include "zeq_error.h"
#include "zeq_guard.h"
#include "zeq_kex.h"
#include "zeq_proto.h"
#include "zeq_session.h"
#include "zeq_stats.h"

#include "apr_strings.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

/* Reads at most ZEQ_PROTO_HANDSHAKE_MAX bytes of body: ZEQ_OK, ZEQ_ERR_BAD
 * when it is larger, or the HTTP status of a read error (408 when the body
 * does not come in time, mod_reqtimeout's RequestReadTimeout; 413 over
 * LimitRequestBody). ap_get_client_block would lose that status. */
static int zeq_handshake_read(request_rec *r, char *buf, apr_size_t *len)
{
    const char *cl = apr_table_get(r->headers_in, "Content-Length");
    apr_bucket_brigade *bb;
    apr_size_t got = 0;
    apr_off_t n;
    int eos = 0;

    if (cl != NULL && ap_parse_strict_length(&n, cl)
        && n > ZEQ_PROTO_HANDSHAKE_MAX) {
        return ZEQ_ERR_BAD;
    }
    bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    while (!eos) {
        /* One byte more than allowed tells an oversized body apart. */
        apr_size_t room = ZEQ_PROTO_HANDSHAKE_MAX + 1 - got;
        apr_status_t rv = ap_get_brigade(r->input_filters, bb,
                                         AP_MODE_READBYTES, APR_BLOCK_READ,
                                         (apr_off_t)room);
        if (rv != APR_SUCCESS) {
            apr_brigade_cleanup(bb);
            return ap_map_http_request_error(rv, HTTP_BAD_REQUEST);
        }
        eos = !APR_BRIGADE_EMPTY(bb)
              && APR_BUCKET_IS_EOS(APR_BRIGADE_LAST(bb));
        rv = apr_brigade_flatten(bb, buf + got, &room);
        apr_brigade_cleanup(bb);
        if (rv != APR_SUCCESS) {
            return HTTP_BAD_REQUEST;
        }
        got += room;
        if (got > ZEQ_PROTO_HANDSHAKE_MAX) {
            return ZEQ_ERR_BAD;
        }
    }
    *len = got;
    return ZEQ_OK;
}

static int zeq_handshake_refuse(request_rec *r, int status, const char *code,
                                const char *message)
{
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, ZEQLOG(30002)
                  "handshake refused (%d %s): %s", status, code, message);
    return zeq_error_send(r, status, code, message);
}

static int zeq_handshake_failed(request_rec *r, apr_status_t rv,
                                const char *what)
{
    ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, ZEQLOG(30003)
                  "handshake failed: %s", what);
    return zeq_error_send(r, HTTP_SERVICE_UNAVAILABLE, ZEQ_E2E_ERR_UNAVAILABLE,
                          "the server could not create a session");
}

/* The policy of a virtual host for a handshake whose body is valid: OK, or
 * the refusal answered. No secret comes before "not offered". */
static int zeq_handshake_policy(request_rec *r, const zeq_srv_conf *sc,
                                const zeq_proto_handshake *hs)
{
    int offered = zeq_config_protocols(sc);

    if (hs->version == 1 || hs->psk) {
        if (sc->secret == NULL) {
            return zeq_error_unconfigured(r);
        }
    }
    if (!(offered & (hs->version == 1 ? ZEQ_PROTOCOL_V1 : ZEQ_PROTOCOL_V2))) {
        return zeq_handshake_refuse(r, HTTP_BAD_REQUEST, ZEQ_E2E_ERR_VERSION,
                                    hs->version == 1
                                    ? "this server does not offer protocol 1"
                                    : "this server does not offer protocol 2");
    }
    if (hs->version == 2 && !hs->psk && zeq_config_require_psk(sc)) {
        return zeq_handshake_refuse(r, HTTP_BAD_REQUEST,
                                    ZEQ_E2E_ERR_PSK_REQUIRED,
                                    "this server requires the pre-shared key "
                                    "(\"psk\": true)");
    }
    return OK;
}

/* Protocol v2: an ephemeral key pair, ECDH with the client's point (as
 * decoded and checked with the body) and HKDF; the pair is freed (its
 * private key cleansed) as soon as the keys are derived. */
static int zeq_handshake_v2_keys(const zeq_srv_conf *sc,
                                 const zeq_proto_handshake *hs,
                                 const zeq_kex_peer *client,
                                 const unsigned char sn[ZEQ_KEX_NONCE_LEN],
                                 unsigned char server_key[ZEQ_KEX_POINT_LEN],
                                 zeq_keys *keys)
{
    zeq_kex_pair *pair = zeq_kex_pair_generate();
    int rv = ZEQ_ERR_CRYPTO;

    if (pair != NULL
        && zeq_kex_pair_public(pair, server_key) == ZEQ_OK) {
        rv = zeq_kex_v2_peer(pair, client,
                             hs->psk ? sc->secret->psk : NULL,
                             hs->client_nonce, sn, keys);
    }
    zeq_kex_pair_free(pair);
    return rv;
}

static apr_status_t zeq_handshake_peer_free(void *data)
{
    zeq_kex_peer_free(data);
    return APR_SUCCESS;
}

/* The client's point of a v2 handshake, decoded and checked once, freed
 * with the request; NULL when it is not a P-256 point. */
static zeq_kex_peer *zeq_handshake_peer(request_rec *r,
                                        const zeq_proto_handshake *hs)
{
    zeq_kex_peer *peer = zeq_kex_peer_new(hs->client_key);

    if (peer != NULL) {
        apr_pool_cleanup_register(r->pool, peer, zeq_handshake_peer_free,
                                  apr_pool_cleanup_null);
    }
    return peer;
}

/* Signs the transcript with the first ZeqE2EServerKey. */
static int zeq_handshake_sign(request_rec *r, const zeq_srv_conf *sc,
                              const zeq_proto_handshake *hs,
                              const unsigned char sn[ZEQ_KEX_NONCE_LEN],
                              const unsigned char sk[ZEQ_KEX_POINT_LEN],
                              const char *sid,
                              unsigned char sig[ZEQ_KEX_SIG_LEN],
                              unsigned char signer[ZEQ_KEX_SIGNER_LEN])
{
    const zeq_kex_signer *key = APR_ARRAY_IDX(sc->signers, 0, zeq_kex_signer *);
    apr_size_t idlen = strlen(sid);
    unsigned char *tr = apr_palloc(r->pool, zeq_kex_transcript_len(idlen));
    apr_size_t n = zeq_kex_transcript(tr, hs->client_nonce, sn, hs->client_key,
                                      sk, sid, idlen);

    return zeq_kex_sign(key, tr, n, sig) == ZEQ_OK
           && zeq_kex_signer_id(key, signer) == ZEQ_OK;
}

/* Drops the client's session that the new one pushed out of its ring, if
 * no request has named it yet. */
static void zeq_handshake_drop_unused(request_rec *r,
                                      const unsigned char hash[32])
{
    char tag[13];
    apr_status_t rv = zeq_session_drop_unused(r, hash);

    ap_bin2hex(hash, 6, tag);
    if (rv == APR_SUCCESS) {
        zeq_stats_add(ZEQ_STAT_UNUSED_DROPPED, 1);
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, ZEQLOG(30011)
                      "session %s dropped: never used, and its address has "
                      "made ZeqE2EUnusedSessions handshakes since", tag);
    }
    else if (rv != APR_EEXIST && rv != APR_NOTFOUND) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, rv, r, ZEQLOG(30012)
                      "cannot drop the unused session %s", tag);
    }
}

static int zeq_handshake_handler(request_rec *r)
{
    zeq_srv_conf *sc;
    zeq_proto_handshake hs;
    unsigned char server_nonce[ZEQ_KEX_NONCE_LEN];
    unsigned char server_key[ZEQ_KEX_POINT_LEN];
    unsigned char sig[ZEQ_KEX_SIG_LEN], signer[ZEQ_KEX_SIGNER_LEN];
    unsigned char hash[ZEQ_SESSION_HASH_LEN], old[ZEQ_SESSION_HASH_LEN];
    char body[ZEQ_PROTO_HANDSHAKE_MAX + 1];
    apr_size_t len = 0;
    const char *sid = NULL, *answer;
    zeq_guard_slot *slot;
    apr_uint64_t client;
    apr_int64_t expires = 0;
    zeq_proto_answer a;
    zeq_kex_peer *peer = NULL;
    zeq_keys keys;
    char *json;
    apr_status_t rv;
    int st;

    if (r->handler == NULL || strcmp(r->handler, ZEQ_HANDSHAKE_HANDLER) != 0) {
        return DECLINED;
    }
    sc = zeq_config_srv(r->server);
    if (r->method_number != M_POST) {
        r->allowed = AP_METHOD_BIT << M_POST;
        apr_table_setn(r->err_headers_out, "Allow", "POST");
        return zeq_error_send(r, HTTP_METHOD_NOT_ALLOWED,
                              ZEQ_E2E_ERR_METHOD,
                              "the handshake accepts POST only");
    }
    client = zeq_guard_client(r);
    st = zeq_guard_rate(r, sc, client);
    if (st != OK) {
        return st;
    }
    st = zeq_handshake_read(r, body, &len);
    if (st != ZEQ_OK && st != ZEQ_ERR_BAD) {
        return st;
    }
    /* The body first, then the policy. */
    st = st == ZEQ_OK ? zeq_proto_handshake_parse(body, len, &hs) : ZEQ_ERR_BAD;
    if (st == ZEQ_ERR_VERSION) {
        return zeq_handshake_refuse(r, HTTP_BAD_REQUEST, ZEQ_E2E_ERR_VERSION,
                                    "the protocol versions are 1 and 2");
    }
    if (st != ZEQ_OK
        || (hs.version == 2 && (peer = zeq_handshake_peer(r, &hs)) == NULL)) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, ZEQLOG(30001)
                      "handshake refused: malformed request body "
                      "(%" APR_SIZE_T_FMT " bytes)", len);
        return zeq_error_send(r, HTTP_BAD_REQUEST, ZEQ_E2E_ERR_BAD_HANDSHAKE,
                              "the body must be a JSON object with "
                              "clientNonce (64 hex characters) and, for "
                              "version 2, clientKey (a P-256 point in "
                              "base64url), at most 4096 bytes");
    }
    st = zeq_handshake_policy(r, sc, &hs);
    if (st != OK) {
        return st;
    }
    if (RAND_bytes(server_nonce, sizeof(server_nonce)) != 1) {
        return zeq_handshake_failed(r, APR_EGENERAL, "no random bytes");
    }
    st = zeq_guard_enter(r, client, &slot);
    if (st != OK) {
        return st;
    }
    st = hs.version == 1
         ? zeq_kex_v1(sc->secret->bytes, sc->secret->len, hs.client_nonce,
                      server_nonce, &keys)
         : zeq_handshake_v2_keys(sc, &hs, peer, server_nonce, server_key,
                                 &keys);
    if (st != ZEQ_OK) {
        zeq_keys_cleanse(&keys);
        return zeq_handshake_failed(r, APR_EGENERAL, "key agreement error");
    }
    sid = zeq_session_new_id(r->pool, hash);
    if (sid == NULL) {
        zeq_keys_cleanse(&keys);
        return zeq_handshake_failed(r, APR_EGENERAL, "no random bytes");
    }
    a.version = hs.version;
    a.session_id = sid;
    a.server_nonce = server_nonce;
    a.server_key = server_key;
    a.expires_in = zeq_config_ttl(sc);
    a.signature = NULL;
    a.signer = NULL;
    if (hs.version == 2 && sc->signers != NULL) {
        if (!zeq_handshake_sign(r, sc, &hs, server_nonce, server_key, sid, sig,
                                signer)) {
            zeq_keys_cleanse(&keys);
            return zeq_handshake_failed(r, APR_EGENERAL, "cannot sign");
        }
        a.signature = sig;
        a.signer = signer;
    }
    zeq_guard_leave(slot);
    rv = zeq_session_create(r, sc, &keys, hash, &expires);
    zeq_keys_cleanse(&keys);
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, ZEQLOG(30003)
                      "handshake failed: cannot store the session");
        return zeq_error_store_unavailable(r);
    }
    if (zeq_guard_created(r, client, hash, expires, old)) {
        zeq_handshake_drop_unused(r, old);
    }
    json = zeq_proto_answer_json(&a);
    if (json == NULL) {
        return zeq_handshake_failed(r, APR_ENOMEM, "cannot write the answer");
    }
    answer = apr_pstrcat(r->pool, json, "\n", NULL);
    zeq_proto_free(json);
    zeq_stats_add(hs.version == 1 ? ZEQ_STAT_HANDSHAKES_V1
                                  : ZEQ_STAT_HANDSHAKES_V2, 1);
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, ZEQLOG(30005)
                  "handshake from %s: version %d session %s%s%s, expires in "
                  "%ds", r->useragent_ip, hs.version,
                  zeq_session_tag(r->pool, sid),
                  hs.psk && hs.version == 2 ? " (PSK)" : "",
                  a.signature ? ", signed" : "", zeq_config_ttl(sc));
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    ap_set_content_type(r, "application/json");
    ap_set_content_length(r, (apr_off_t)strlen(answer));
    if (!r->header_only) {
        ap_rputs(answer, r);
    }
    return OK;
}

void zeq_handshake_register_hooks(apr_pool_t *p)
{
    (void)p;
    /* Before mod_proxy's handler (APR_HOOK_FIRST), which claims every
     * request in a ProxyPass'd space whatever r->handler says. */
    ap_hook_handler(zeq_handshake_handler, NULL, NULL, APR_HOOK_REALLY_FIRST);
}
