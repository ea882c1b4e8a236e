/* The handshake guard: what a handshake must pass before it costs the
 * server anything (ZeqE2EHandshakeRate per client address and virtual
 * host, ZeqE2EHandshakeConcurrency for the whole server), and the bound on
 * the sessions an address leaves unused (ZeqE2EUnusedSessions), over the
 * shared tables of zeq_limit, which this part makes and keys. Called by
 * zeq_handshake; its refusals are module errors (zeq_error). */
#ifndef ZEQ_GUARD_H
#define ZEQ_GUARD_H

#include "zeq_config.h"

/* A derivation slot taken for a request (zeq_guard_enter). */
typedef struct zeq_guard_slot zeq_guard_slot;

void zeq_guard_register_hooks(apr_pool_t *p);
/* The key of r's client address (mod_remoteip's where it is configured):
 * an IPv4 address, or an IPv6 /64 prefix (an IPv4-mapped IPv6 address
 * counts as its IPv4 address), hashed with a key drawn at startup. */
apr_uint64_t zeq_guard_client(const request_rec *r);
/* Takes a token of the client's bucket on this virtual host: OK, or DONE
 * with 429 e2e_rate_limited and Retry-After answered. */
int zeq_guard_rate(request_rec *r, const zeq_srv_conf *sc,
                   apr_uint64_t client);
/* Takes a derivation slot (waiting a little for one): OK with *slot
 * (NULL when there is no guard), or DONE with 503 e2e_busy and
 * Retry-After answered. The slot is given back by zeq_guard_leave, or
 * when r's pool goes. */
int zeq_guard_enter(request_rec *r, apr_uint64_t client,
                    zeq_guard_slot **slot);
void zeq_guard_leave(zeq_guard_slot *slot);
/* Notes a session (stored under hash, expiring at expires) made for the
 * client: 1 when that pushed out one of the client's earlier sessions
 * which has not expired yet, its hash into out, for the caller to drop if
 * it is unused; 0 otherwise (also without ZeqE2EUnusedSessions). */
int zeq_guard_created(request_rec *r, apr_uint64_t client,
                      const unsigned char hash[32], apr_int64_t expires,
                      unsigned char out[32]);
/* The derivation slots taken now and their number: 1, or 0 before the
 * guard is set up. */
int zeq_guard_slots(int *taken, int *slots);

#endif
