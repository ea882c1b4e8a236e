/* mod_zeq_e2e: end-to-end encryption of HTTP bodies between the browser and
 * Apache (protocol v1: docs/PROTOCOL.md).
 *
 * This file is the glue: the module record, the directive table and hook
 * registration. Each part lives in src/ with its own header: zeq_config
 * (directives, merges, startup checks), zeq_store (where sessions live:
 * socache, redis through zeq_redis, memcached through zeq_memcache, their
 * servers in zeq_remote), zeq_session (the session policy), zeq_stats
 * (counters in shared memory), zeq_status (the mod_status section),
 * zeq_handshake, zeq_guard (what a handshake may cost: rates, derivation
 * slots, unused sessions), zeq_client (the embedded browser library),
 * zeq_gate (what each exchange is and whether policy allows it),
 * zeq_exchange (its state), zeq_request (the body reader), zeq_response
 * (the sealer), zeq_spool (a sealed body until its tag is known), zeq_ws
 * (WebSocket frames), zeq_error (JSON errors); pure parts without httpd:
 * zeq_envelope (AES-256-GCM, PBKDF2), zeq_proto (parsers), zeq_frame
 * (RFC 6455), zeq_sessrec (sealed session records), zeq_limit (the
 * guard's shared tables), zeq_reccache (each process's cache of opened
 * records), zeq_wintab (the replay window table). */
#define ZEQ_MODULE_GLUE
#include "zeq_private.h"
#include "zeq_client.h"
#include "zeq_config.h"
#include "zeq_gate.h"
#include "zeq_guard.h"
#include "zeq_handshake.h"
#include "zeq_request.h"
#include "zeq_response.h"
#include "zeq_session.h"
#include "zeq_stats.h"
#include "zeq_status.h"
#include "zeq_store.h"
#include "zeq_ws.h"
static const command_rec zeq_e2e_cmds[] = {
    AP_INIT_FLAG("ZeqE2E", ap_set_flag_slot,
                 (void *)APR_OFFSETOF(zeq_dir_conf, enabled),
                 RSRC_CONF | ACCESS_CONF,
                 "On|Off: encrypt and decrypt bodies here (default Off)"),
    AP_INIT_FLAG("ZeqE2ERequire", ap_set_flag_slot,
                 (void *)APR_OFFSETOF(zeq_dir_conf, require),
                 RSRC_CONF | ACCESS_CONF,
                 "On|Off: refuse plaintext requests here with 403 "
                 "(default Off)"),
    AP_INIT_TAKE1("ZeqE2EMaxRequestBody", zeq_config_set_limit,
                  (void *)APR_OFFSETOF(zeq_dir_conf, max_request),
                  RSRC_CONF | ACCESS_CONF,
                  "largest encrypted request body in bytes (default 16 MiB)"),
    AP_INIT_TAKE1("ZeqE2EMaxResponseBody", zeq_config_set_limit,
                  (void *)APR_OFFSETOF(zeq_dir_conf, max_response),
                  RSRC_CONF | ACCESS_CONF,
                  "largest response body to encrypt in bytes "
                  "(default 64 MiB)"),
    AP_INIT_TAKE1("ZeqE2EMaxMessage", zeq_config_set_limit,
                  (void *)APR_OFFSETOF(zeq_dir_conf, max_message),
                  RSRC_CONF | ACCESS_CONF,
                  "largest WebSocket message in bytes (default 1 MiB)"),
    AP_INIT_TAKE1("ZeqE2ESecret", zeq_config_set_secret, NULL, RSRC_CONF,
                  "the shared secret: VALUE, env:NAME or file:PATH "
                  "(default: the environment's ZEQ_E2E_SECRET, else "
                  "ZEQ_HITE_SECRET)"),
    AP_INIT_TAKE1("ZeqE2ESessionCache", zeq_config_set_cache, NULL,
                  RSRC_CONF,
                  "where sessions live: a socache PROVIDER[:ARGS], "
                  "redis:HOST:PORT[,...] or memcache:HOST:PORT[,...] "
                  "(default shmcb, 40 MB; global only)"),
    AP_INIT_TAKE1("ZeqE2ESessionCacheTimeout", zeq_config_set_cache_timeout,
                  NULL, RSRC_CONF,
                  "how long a call to redis or memcached may wait, e.g. 2s "
                  "or 500ms (default 2s; global only)"),
    AP_INIT_TAKE1("ZeqE2ERecordKey", zeq_config_set_record_key, NULL,
                  RSRC_CONF,
                  "file:PATH of the key session records are sealed with, "
                  "the same on every server sharing a store (default: one "
                  "generated in the runtime directory; global only)"),
    AP_INIT_TAKE1("ZeqE2ESessionTTL", zeq_config_set_ttl, NULL, RSRC_CONF,
                  "session lifetime in seconds (default 3600)"),
    AP_INIT_TAKE12("ZeqE2EProtocol", zeq_config_set_protocol, NULL,
                   RSRC_CONF,
                   "the protocol versions offered, 1 and/or 2 (default: 2, "
                   "and 1 where a secret is configured)"),
    AP_INIT_ITERATE("ZeqE2EServerKey", zeq_config_set_server_key, NULL,
                    RSRC_CONF,
                    "file:PATH of a PEM EC P-256 private key that signs v2 "
                    "handshakes; more for rotation (the first signs)"),
    AP_INIT_FLAG("ZeqE2ERequirePSK", zeq_config_set_require_psk, NULL,
                 RSRC_CONF,
                 "On|Off: refuse v2 handshakes without the pre-shared key "
                 "(default Off)"),
    AP_INIT_TAKE1("ZeqE2ESessionScope", zeq_config_set_scope, NULL,
                  RSRC_CONF,
                  "share sessions with the virtual hosts of the same NAME "
                  "(and secret); default: this host's own"),
    AP_INIT_TAKE1("ZeqE2ECleanupInterval", zeq_config_set_cleanup, NULL,
                  RSRC_CONF,
                  "obsolete, no effect: the session cache expires sessions "
                  "itself"),
    AP_INIT_TAKE1("ZeqE2EHandshakePath", zeq_config_set_path,
                  (void *)APR_OFFSETOF(zeq_srv_conf, handshake_path),
                  RSRC_CONF,
                  "URL path of the handshake (default /api/e2e/handshake)"),
    AP_INIT_TAKE12("ZeqE2EHandshakeRate", zeq_config_set_hs_rate, NULL,
                   RSRC_CONF,
                   "RATE [BURST] | off: handshakes per second from one "
                   "client address, and how many at once (default 20 200)"),
    AP_INIT_TAKE1("ZeqE2EHandshakeConcurrency", zeq_config_set_concurrency,
                  NULL, RSRC_CONF,
                  "how many key derivations may run at once in the server "
                  "(default: the CPUs online; global only)"),
    AP_INIT_TAKE1("ZeqE2EUnusedSessions", zeq_config_set_unused, NULL,
                  RSRC_CONF,
                  "N | off: a session still unused after N more handshakes "
                  "from its address is dropped (default 32; global only)"),
    AP_INIT_TAKE1("ZeqE2EReplayWindows", zeq_config_set_windows, NULL,
                  RSRC_CONF,
                  "how many v2 sessions keep their replay windows in shared "
                  "memory, with a store of one server (default 100000; "
                  "global only)"),
    AP_INIT_TAKE1("ZeqE2EClientScriptPath", zeq_config_set_path,
                  (void *)APR_OFFSETOF(zeq_srv_conf, client_path),
                  RSRC_CONF,
                  "URL path of the embedded browser library "
                  "(default /static/zeq-e2e-client.js)"),
    {NULL}
};

static void zeq_e2e_register_hooks(apr_pool_t *p)
{
    zeq_config_register_hooks(p);
    zeq_stats_register_hooks(p);
    zeq_store_register_hooks(p);
    zeq_session_register_hooks(p);
    zeq_status_register_hooks(p);
    zeq_guard_register_hooks(p);
    zeq_handshake_register_hooks(p);
    zeq_client_register_hooks(p);
    zeq_gate_register_hooks(p);
    zeq_request_register_hooks(p);
    zeq_response_register_hooks(p);
    zeq_ws_register_hooks(p);
}

AP_DECLARE_MODULE(zeq_e2e) = {
    STANDARD20_MODULE_STUFF,
    zeq_config_create_dir,
    zeq_config_merge_dir,
    zeq_config_create_srv,
    zeq_config_merge_srv,
    zeq_e2e_cmds,
    zeq_e2e_register_hooks,
#if defined(AP_MODULE_FLAG_ALWAYS_MERGE)
    AP_MODULE_FLAG_ALWAYS_MERGE
#endif
};
