/* Configuration of mod_zeq_e2e: per-directory and per-server records with
 * unset markers and real merges, the directive handlers, the startup
 * checks, and the getters every other part reads settings through. */
#ifndef ZEQ_CONFIG_H
#define ZEQ_CONFIG_H

#include "zeq_private.h"

#define ZEQ_UNSET (-1)
#define ZEQ_DEFAULT_TTL 3600
#define ZEQ_DEFAULT_MAX_REQUEST  ((apr_off_t)16 * 1024 * 1024)
#define ZEQ_DEFAULT_MAX_RESPONSE ((apr_off_t)64 * 1024 * 1024)
#define ZEQ_DEFAULT_MAX_MESSAGE  ((apr_off_t)1024 * 1024)
#define ZEQ_MAX_MESSAGE_LIMIT    ((apr_off_t)256 * 1024 * 1024)
#define ZEQ_MAX_TTL (86400 * 30)
#define ZEQ_SCOPE_ID_LEN 16
#define ZEQ_HANDSHAKE_HANDLER "zeq-e2e-handshake"
#define ZEQ_CLIENT_HANDLER "zeq-e2e-client"
#define ZEQ_DEFAULT_CLIENT_PATH "/static/zeq-e2e-client.js"
/* The handshake guard (zeq_guard): see docs/directives.md for why these. */
#define ZEQ_DEFAULT_HS_RATE 20.0
#define ZEQ_DEFAULT_HS_BURST 200
#define ZEQ_HS_RATE_MIN 0.01      /* (as the setter's message says) */
#define ZEQ_HS_RATE_MAX 10000.0
#define ZEQ_HS_BURST_MAX 100000
#define ZEQ_DEFAULT_UNUSED_SESSIONS 32
/* ZeqE2EReplayWindows: as many v2 sessions as the default store holds. */
#define ZEQ_DEFAULT_REPLAY_WINDOWS 100000
#define ZEQ_MIN_REPLAY_WINDOWS 16
#define ZEQ_MAX_REPLAY_WINDOWS 10000000

/* Per-directory configuration; every field has an unset marker. */
typedef struct {
    int enabled;            /* ZeqE2E: ZEQ_UNSET, 0, 1 */
    int require;            /* ZeqE2ERequire */
    apr_off_t max_request;  /* ZeqE2EMaxRequestBody, ZEQ_UNSET */
    apr_off_t max_response; /* ZeqE2EMaxResponseBody, ZEQ_UNSET */
    apr_off_t max_message;  /* ZeqE2EMaxMessage (WebSocket), ZEQ_UNSET */
} zeq_dir_conf;

/* A copy of the secret's bytes, zeroed when its pool is cleared, and the
 * v2 pre-shared key derived from it once (post_config). */
typedef struct {
    unsigned char *bytes;
    apr_size_t len;
    unsigned char psk[32];
    int has_psk;
} zeq_secret;

/* The protocol versions a virtual host offers (ZeqE2EProtocol). */
#define ZEQ_PROTOCOL_V1 0x1
#define ZEQ_PROTOCOL_V2 0x2

/* Where a secret came from (for the startup log; never the secret). */
typedef enum {
    ZEQ_SECRET_NONE = 0, ZEQ_SECRET_LITERAL, ZEQ_SECRET_ENV, ZEQ_SECRET_FILE,
    ZEQ_SECRET_DEFAULT_ENV
} zeq_secret_origin;

/* Per-server configuration. */
typedef struct {
    zeq_secret_origin secret_origin;   /* ZEQ_SECRET_NONE: unset */
    zeq_secret *secret;          /* NULL: none (v1 handshakes answer 503) */
    const char *scope_name;      /* ZeqE2ESessionScope, NULL unset */
    unsigned char scope_id[ZEQ_SCOPE_ID_LEN]; /* binds sessions (post_config) */
    int ttl;                     /* seconds, ZEQ_UNSET */
    const char *handshake_path;  /* NULL unset */
    const char *client_path;     /* ZeqE2EClientScriptPath, NULL unset */
    int protocols;               /* ZeqE2EProtocol: ZEQ_PROTOCOL_* bits, ZEQ_UNSET */
    int require_psk;             /* ZeqE2ERequirePSK, ZEQ_UNSET */
    apr_array_header_t *signers; /* ZeqE2EServerKey: zeq_kex_signer *, the
                                  * first signs; NULL unset */
    int cleanup_interval;        /* obsolete ZeqE2ECleanupInterval, ZEQ_UNSET */
    zeq_secret *record_key;      /* ZeqE2ERecordKey (main server only) */
    double hs_rate;              /* ZeqE2EHandshakeRate: per second, 0 off,
                                  * ZEQ_UNSET */
    int hs_burst;                /* its BURST (set with hs_rate) */
    int concurrency;             /* ZeqE2EHandshakeConcurrency (global),
                                  * ZEQ_UNSET: the CPUs online */
    int replay_windows;          /* ZeqE2EReplayWindows (global) */
    int unused_sessions;         /* ZeqE2EUnusedSessions (global), 0 off,
                                  * ZEQ_UNSET */
    /* Startup warnings of this server's own directives (a short secret, a
     * key file its group may read), logged once the configuration is
     * read: by httpd -t, and in post_config. Never the secret. */
    apr_array_header_t *secret_notes;     /* const char *, each list */
    apr_array_header_t *record_key_notes; /* replaced with its directive */
    apr_array_header_t *key_notes;        /* ZeqE2EServerKey: each key's */
} zeq_srv_conf;

/* A secret shorter than this is warned about at startup. */
#define ZEQ_SECRET_MIN 32

/* Who besides its owner may read a file of secrets, from its permission
 * bits: 2 other users (refused), 1 its group (warned about), 0 nobody. */
int zeq_config_file_exposure(apr_fileperms_t prot);
/* The permission bits as chmod writes them (apr_fileperms_t spells the
 * octal digits as hexadecimal ones: APR_FPROT_UREAD is 0x0400). */
#define ZEQ_CONFIG_MODE(prot) ((unsigned)((prot) & 0x0777))

void *zeq_config_create_dir(apr_pool_t *p, char *dir);
void *zeq_config_merge_dir(apr_pool_t *p, void *basev, void *addv);
void *zeq_config_create_srv(apr_pool_t *p, server_rec *s);
void *zeq_config_merge_srv(apr_pool_t *p, void *basev, void *addv);
const char *zeq_config_set_secret(cmd_parms *cmd, void *dc, const char *arg);
const char *zeq_config_set_cache(cmd_parms *cmd, void *dc, const char *arg);
const char *zeq_config_set_ttl(cmd_parms *cmd, void *dc, const char *arg);
const char *zeq_config_set_cleanup(cmd_parms *cmd, void *dc, const char *arg);
/* ZeqE2ERecordKey file:PATH (global only). */
const char *zeq_config_set_record_key(cmd_parms *cmd, void *dc,
                                      const char *arg);
/* ZeqE2ESessionCacheTimeout DURATION (global only; 2s, 500ms). */
const char *zeq_config_set_cache_timeout(cmd_parms *cmd, void *dc,
                                         const char *arg);
/* ZeqE2EHandshakePath, ZeqE2EClientScriptPath: cmd->info is the
 * APR_OFFSETOF slot in zeq_srv_conf. */
const char *zeq_config_set_path(cmd_parms *cmd, void *dc, const char *arg);
const char *zeq_config_set_scope(cmd_parms *cmd, void *dc, const char *arg);
/* ZeqE2EProtocol 1|2 [1|2]: the versions offered. */
const char *zeq_config_set_protocol(cmd_parms *cmd, void *dc, const char *a1,
                                    const char *a2);
/* ZeqE2EServerKey file:PATH (once for each key; the first signs). */
const char *zeq_config_set_server_key(cmd_parms *cmd, void *dc,
                                      const char *arg);
const char *zeq_config_set_require_psk(cmd_parms *cmd, void *dc, int flag);
/* ZeqE2EHandshakeRate RATE [BURST] | off. */
const char *zeq_config_set_hs_rate(cmd_parms *cmd, void *dc, const char *a1,
                                   const char *a2);
/* ZeqE2EHandshakeConcurrency N (global only). */
const char *zeq_config_set_concurrency(cmd_parms *cmd, void *dc,
                                       const char *arg);
/* ZeqE2EUnusedSessions N | off (global only). */
const char *zeq_config_set_unused(cmd_parms *cmd, void *dc, const char *arg);
/* ZeqE2EReplayWindows N (global only). */
const char *zeq_config_set_windows(cmd_parms *cmd, void *dc, const char *arg);
/* The byte limits: cmd->info is the APR_OFFSETOF slot in zeq_dir_conf. */
const char *zeq_config_set_limit(cmd_parms *cmd, void *dc, const char *arg);
void zeq_config_register_hooks(apr_pool_t *p);

zeq_srv_conf *zeq_config_srv(const server_rec *s);
zeq_dir_conf *zeq_config_dir(const request_rec *r);
int zeq_config_enabled(const zeq_dir_conf *d);
int zeq_config_required(const zeq_dir_conf *d);
apr_off_t zeq_config_max_request(const zeq_dir_conf *d);
apr_off_t zeq_config_max_response(const zeq_dir_conf *d);
apr_off_t zeq_config_max_message(const zeq_dir_conf *d);
int zeq_config_ttl(const zeq_srv_conf *c);
/* The versions offered: ZeqE2EProtocol, else 2, and 1 where a secret is
 * configured. */
int zeq_config_protocols(const zeq_srv_conf *c);
int zeq_config_require_psk(const zeq_srv_conf *c);
const char *zeq_config_handshake_path(const zeq_srv_conf *c);
/* The handshake rate of a virtual host: 1 with RATE per second and BURST,
 * 0 when off. */
int zeq_config_hs_rate(const zeq_srv_conf *c, double *rate, int *burst);
/* Of the main server's configuration: the derivation cap (0 for "the CPUs
 * online", which zeq_guard counts), the unused sessions an address may
 * hold (0: no bound). */
int zeq_config_concurrency(const zeq_srv_conf *main_conf);
int zeq_config_unused_sessions(const zeq_srv_conf *main_conf);
/* The slots of the replay window table (ZeqE2EReplayWindows or its
 * default), from the main server's configuration. */
int zeq_config_replay_windows(const zeq_srv_conf *main_conf);
const char *zeq_config_client_path(const zeq_srv_conf *c);

#endif
