/* mod_zeq_e2e public header: protocol constants and the optional functions
 * other modules may call. Nothing here depends on the module's internals. */
#ifndef MOD_ZEQ_E2E_H
#define MOD_ZEQ_E2E_H

/* The module's version. The Debian package (debian/changelog), the npm
 * package (client/package.json) and the newest release of CHANGES.md carry
 * the same: t/version.t checks them, and make deb refuses to build when
 * debian/changelog differs. */
#define ZEQ_E2E_VERSION            "0.1.0"
#define ZEQ_E2E_PROTOCOL_VERSION   2      /* the newest the module speaks */
#define ZEQ_E2E_MEDIA_TYPE         "application/x-zeq-e2e"
#define ZEQ_E2E_HDR_SESSION        "X-E2E-Session"
#define ZEQ_E2E_HDR_SEQ            "X-E2E-Seq"
#define ZEQ_E2E_HDR_SEAL           "X-E2E-Seal"
#define ZEQ_E2E_HDR_CONTENT_TYPE   "X-E2E-Content-Type"
#define ZEQ_E2E_HDR_CONTENT_ENCODING "X-E2E-Content-Encoding"
#define ZEQ_E2E_DEFAULT_HANDSHAKE_PATH "/api/e2e/handshake"
#define ZEQ_E2E_DEFAULT_INNER_TYPE "application/json"

/* Error codes of the JSON error body {"error": CODE, "message": TEXT}. */
#define ZEQ_E2E_ERR_BAD_HANDSHAKE  "e2e_bad_handshake"
#define ZEQ_E2E_ERR_METHOD         "e2e_method_not_allowed"
#define ZEQ_E2E_ERR_UNAVAILABLE    "e2e_unavailable"
#define ZEQ_E2E_ERR_SESSION        "e2e_session_invalid"
#define ZEQ_E2E_ERR_DECRYPT        "e2e_decrypt_failed"
#define ZEQ_E2E_ERR_TOO_LARGE      "e2e_body_too_large"
#define ZEQ_E2E_ERR_REQUIRED       "e2e_required"
#define ZEQ_E2E_ERR_ENCRYPT        "e2e_encrypt_failed"
#define ZEQ_E2E_ERR_BAD_REQUEST    "e2e_bad_request"
#define ZEQ_E2E_ERR_REPLAYED       "e2e_replayed"
#define ZEQ_E2E_ERR_VERSION        "e2e_version_unsupported"
#define ZEQ_E2E_ERR_PSK_REQUIRED   "e2e_psk_required"
#define ZEQ_E2E_ERR_RATE_LIMITED   "e2e_rate_limited"
#define ZEQ_E2E_ERR_BUSY           "e2e_busy"

#if defined(AP_DECLARE) && defined(APR_OPTIONAL_H)
/* Optional functions (APR_RETRIEVE_OPTIONAL_FN):
 * zeq_e2e_request_decrypted: 1 when this request's body arrived as an
 *   envelope and was decrypted by the module;
 * zeq_e2e_response_encrypted: 1 when its response body will be sealed. */
APR_DECLARE_OPTIONAL_FN(int, zeq_e2e_request_decrypted, (request_rec *r));
APR_DECLARE_OPTIONAL_FN(int, zeq_e2e_response_encrypted, (request_rec *r));
#endif

#endif
