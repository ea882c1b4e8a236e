/* Private declarations shared by the parts of mod_zeq_e2e (not installed). */
#ifndef ZEQ_PRIVATE_H
#define ZEQ_PRIVATE_H

#include "httpd.h"
#include "http_config.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"
#include "util_filter.h"
#include "ap_socache.h"
#include "apr_global_mutex.h"
#include "apr_optional.h"

#include "mod_zeq_e2e.h"
#include "zeq_envelope.h"
#include "zeq_proto.h"

extern module AP_MODULE_DECLARE_DATA zeq_e2e_module;

/* The glue file declares the module with AP_DECLARE_MODULE, which does this
 * itself. */
#ifndef ZEQ_MODULE_GLUE
APLOG_USE_MODULE(zeq_e2e);
#endif

/* The module's own log tags: ZEQLOG(10001) -> "ZEQ10001: ". The numbers are
 * grouped by part: 1xxxx config, 2xxxx session, 3xxxx handshake,
 * 4xxxx request side, 5xxxx response side. */
#define ZEQLOG(n) "ZEQ" #n ": "

#define ZEQ_UNSET (-1)
#define ZEQ_DEFAULT_TTL 3600
#define ZEQ_DEFAULT_CLEANUP 600
#define ZEQ_DEFAULT_MAX_REQUEST  ((apr_off_t)16 * 1024 * 1024)
#define ZEQ_DEFAULT_MAX_RESPONSE ((apr_off_t)64 * 1024 * 1024)
#define ZEQ_DEFAULT_MAX_MESSAGE  ((apr_off_t)1024 * 1024)
#define ZEQ_DEFAULT_CACHE_SIZE 16777216   /* >= 100,000 sessions in shmcb */
#define ZEQ_MAX_TTL (86400 * 30)
#define ZEQ_SECRET_ID_LEN 16
#define ZEQ_HANDSHAKE_HANDLER "zeq-e2e-handshake"
#define ZEQ_CLIENT_HANDLER "zeq-e2e-client"
#define ZEQ_DEFAULT_CLIENT_PATH "/static/zeq-e2e-client.js"
#define ZEQ_MUTEX_TYPE "zeq-e2e-cache"

/* Per-directory configuration; every field has an unset marker. */
typedef struct {
    int enabled;            /* ZeqE2E: ZEQ_UNSET, 0, 1 */
    int require;            /* ZeqE2ERequire */
    apr_off_t max_request;  /* ZeqE2EMaxRequestBody, ZEQ_UNSET */
    apr_off_t max_response; /* ZeqE2EMaxResponseBody, ZEQ_UNSET */
    apr_off_t max_message;  /* ZeqE2EMaxMessage (WebSocket), ZEQ_UNSET */
} zeq_dir_conf;

/* The session cache: one per server tree, configured globally. */
typedef struct {
    const ap_socache_provider_t *provider;
    ap_socache_instance_t *instance;
    const char *name;        /* provider name as configured */
    const char *args;        /* its arguments (NULL: the module's default) */
    apr_global_mutex_t *mutex;   /* only for providers not MP-safe */
    int cleanup_interval;    /* seconds */
} zeq_session_cache;

/* Per-server configuration. */
typedef struct {
    const char *secret_spec;     /* "env:NAME", "file:PATH", literal; NULL unset */
    unsigned char *secret;       /* resolved bytes (pconf, cleansed at exit) */
    apr_size_t secret_len;
    unsigned char secret_id[ZEQ_SECRET_ID_LEN]; /* binds sessions to it */
    int ttl;                     /* seconds, ZEQ_UNSET */
    const char *handshake_path;  /* NULL unset */
    const char *client_path;     /* ZeqE2EClientScriptPath, NULL unset */
    int cleanup_interval;        /* global only, ZEQ_UNSET */
    zeq_session_cache *cache;    /* global only: the main server's, shared */
} zeq_srv_conf;

/* The state of one exchange, kept on the initial request so that internal
 * redirects see it (see zeq_request_state). */
typedef struct {
    int decrypted;                 /* the body arrived as an envelope */
    int encrypt;                   /* the response is to be sealed */
    unsigned char key[ZEQ_KEY_LEN];
    apr_bucket_brigade *plain;     /* decrypted body, served by the filter */
    apr_off_t plain_len;
} zeq_state;

/* zeq_config.c */
void *zeq_config_create_dir(apr_pool_t *p, char *dir);
void *zeq_config_merge_dir(apr_pool_t *p, void *basev, void *addv);
void *zeq_config_create_srv(apr_pool_t *p, server_rec *s);
void *zeq_config_merge_srv(apr_pool_t *p, void *basev, void *addv);
const char *zeq_config_set_secret(cmd_parms *cmd, void *dc, const char *arg);
const char *zeq_config_set_cache(cmd_parms *cmd, void *dc, const char *arg);
const char *zeq_config_set_ttl(cmd_parms *cmd, void *dc, const char *arg);
const char *zeq_config_set_cleanup(cmd_parms *cmd, void *dc, const char *arg);
const char *zeq_config_set_path(cmd_parms *cmd, void *dc, const char *arg);
const char *zeq_config_set_limit(cmd_parms *cmd, void *dc, const char *arg);
int zeq_config_post_config(apr_pool_t *pconf, apr_pool_t *plog,
                           apr_pool_t *ptemp, server_rec *s);
zeq_srv_conf *zeq_config_srv(const server_rec *s);
zeq_dir_conf *zeq_config_dir(const request_rec *r);
int zeq_config_enabled(const zeq_dir_conf *d);
int zeq_config_required(const zeq_dir_conf *d);
apr_off_t zeq_config_max_request(const zeq_dir_conf *d);
apr_off_t zeq_config_max_response(const zeq_dir_conf *d);
apr_off_t zeq_config_max_message(const zeq_dir_conf *d);
int zeq_config_ttl(const zeq_srv_conf *c);
const char *zeq_config_handshake_path(const zeq_srv_conf *c);
const char *zeq_config_client_path(const zeq_srv_conf *c);
/* True when a handler of the module's own (handshake, client script) will
 * answer r: such answers are never sealed. */
int zeq_config_own_handler(const request_rec *r);

/* zeq_session.c */
void zeq_session_register_hooks(apr_pool_t *p);
/* Creates a session for key; returns APR_SUCCESS and the id (base64url). */
apr_status_t zeq_session_create(request_rec *r, const zeq_srv_conf *sc,
                                const unsigned char key[ZEQ_KEY_LEN],
                                const char **id);
/* Finds a live session of this server's secret: APR_SUCCESS with the key,
 * APR_NOTFOUND when unknown, expired or of another secret, other values on
 * a cache failure. */
apr_status_t zeq_session_lookup(request_rec *r, const zeq_srv_conf *sc,
                                const char *id,
                                unsigned char key[ZEQ_KEY_LEN]);

/* zeq_error.c: answers {"error": code, "message": message} in plaintext and
 * returns DONE, for hooks and handlers to return. */
int zeq_error_send(request_rec *r, int status, const char *code,
                   const char *message);
/* 503 e2e_unavailable for a server without a secret (logged at info). */
int zeq_error_unconfigured(request_rec *r);

/* zeq_handshake.c */
void zeq_handshake_register_hooks(apr_pool_t *p);

/* zeq_client.c */
void zeq_client_register_hooks(apr_pool_t *p);

/* zeq_request.c */
void zeq_request_register_hooks(apr_pool_t *p);
zeq_state *zeq_request_state(request_rec *r);
/* Checks a session id (NULL: none usable) for r's server: OK with the key,
 * or DONE after answering 503 e2e_unavailable (no secret, cache failure) or
 * 401 e2e_session_invalid. */
int zeq_request_session(request_rec *r, const zeq_srv_conf *sc,
                        const char *id, unsigned char key[ZEQ_KEY_LEN]);

/* zeq_ws.c: for an Upgrade: websocket request, DECLINED when it is none,
 * OK when handled (armed, or a plaintext socket left alone), DONE after an
 * error answer. */
int zeq_ws_fixups(request_rec *r, const zeq_dir_conf *dc,
                  const zeq_srv_conf *sc);
void zeq_ws_register_hooks(apr_pool_t *p);

/* zeq_response.c */
void zeq_response_register_hooks(apr_pool_t *p);

#endif
