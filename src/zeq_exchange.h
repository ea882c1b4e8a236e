/* One exchange: the state the request gate decides once for an initial
 * request and that its internal redirects and subrequests share. The gate
 * (zeq_gate.c) creates and fills it; the reader (zeq_request.c), the sealer
 * (zeq_response.c) and the WebSocket filters (zeq_ws.c) only read it, and
 * set the few flags that say what they did. */
#ifndef ZEQ_EXCHANGE_H
#define ZEQ_EXCHANGE_H

#include "zeq_private.h"
#include "zeq_kex.h"

typedef enum {
    ZEQ_EXCHANGE_OFF = 0,    /* the module is off where the request began */
    ZEQ_EXCHANGE_PLAIN,      /* no session: passes untouched */
    ZEQ_EXCHANGE_HTTP,       /* a request naming a session */
    ZEQ_EXCHANGE_WEBSOCKET,  /* a WebSocket opening with e2e_session */
    ZEQ_EXCHANGE_OWN         /* the handshake or the client script */
} zeq_exchange_kind;

typedef enum {
    ZEQ_SESSION_NONE = 0,    /* no session id sent */
    ZEQ_SESSION_VALID,       /* a live session of this virtual host */
    ZEQ_SESSION_UNKNOWN,     /* unknown, expired, malformed, other host */
    ZEQ_SESSION_UNAVAILABLE, /* the session cache failed */
    ZEQ_SESSION_UNCONFIGURED /* no secret on this virtual host */
} zeq_session_state;

typedef struct zeq_exchange {
    zeq_exchange_kind kind;
    zeq_session_state session;
    const char *bad;          /* a malformed exchange: why (400) */
    const char *bad_code;     /* its error code */
    int version;              /* the session's protocol version (1, 2) */
    const char *sid;          /* the session id (v2 binds it) */
    apr_uint64_t seq;         /* v2: the request's sequence number */
    const char *seal;         /* v2: X-E2E-Seal (or e2e_seal), base64url */
    const char *target;       /* v2: the request target the seal binds */
    const char *inner_type;   /* v2: X-E2E-Content-Type as sent, trimmed */
    unsigned int opening:1;   /* a WebSocket opening (RFC 6455 4.1) */
    unsigned int envelope:1;  /* Content-Type is the envelope type */
    unsigned int has_body:1;  /* the request carries body bytes */
    unsigned int wants:1;     /* Accept lists the envelope type */
    unsigned int encrypt:1;   /* the answer is sealed */
    unsigned int meets_require:1; /* what ZeqE2ERequire On asks for */
    unsigned int decrypted:1; /* the body was an envelope and opened */
    unsigned int refused:1;   /* a module error answered after the sealer
                               * was inserted: the sealer steps aside */
    unsigned int answered:1;  /* the sealer has handled the answer */
    zeq_keys keys;            /* the session's keys */
    apr_bucket_brigade *plain;    /* decrypted body, served by the reader */
    apr_off_t plain_len;
} zeq_exchange;

/* The exchange of r: the record of the request that began it (up through
 * subrequests and internal redirects); NULL before the gate has seen it. */
zeq_exchange *zeq_exchange_get(const request_rec *r);
/* The request that began r's exchange (up through subrequests and
 * internal redirects). */
request_rec *zeq_exchange_initial(const request_rec *r);
/* Creates the exchange record of an initial request, zeroed, its key
 * cleansed when r->pool goes. */
zeq_exchange *zeq_exchange_create(request_rec *r);
/* True when its answer is sealed (and no module error replaced it). */
int zeq_exchange_sealed(const zeq_exchange *ex);
/* The v2 request AAD of the exchange (PROTOCOL.md 18.6) in p; *len gets
 * its length. */
unsigned char *zeq_exchange_request_aad(apr_pool_t *p, const zeq_exchange *ex,
                                        const char *method, apr_size_t *len);
/* The v2 response AAD for an answer of status with the given inner type
 * and encoding (NULL: absent) in p. */
unsigned char *zeq_exchange_response_aad(apr_pool_t *p, const zeq_exchange *ex,
                                         int status, const char *type,
                                         const char *encoding, apr_size_t *len);
/* The v2 WebSocket message AAD for a direction ("c2s", "s2c") and a
 * message counter, into out (cap bytes); returns the length or 0. */
apr_size_t zeq_exchange_ws_aad(const zeq_exchange *ex, const char *direction,
                               apr_uint64_t counter, unsigned char *out,
                               apr_size_t cap);

#endif
