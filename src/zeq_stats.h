/* The module's counters: one block of shared memory made in post_config
 * by the parent, inherited by every child and kept across graceful
 * restarts (it lives in the process pool), updated atomically; and the
 * hook that counts what each exchange did when it is logged. Read by
 * zeq_status. */
#ifndef ZEQ_STATS_H
#define ZEQ_STATS_H

#include "zeq_private.h"

typedef enum {
    ZEQ_STAT_HANDSHAKES_V1 = 0,
    ZEQ_STAT_HANDSHAKES_V2,
    ZEQ_STAT_REQUESTS_OPENED,   /* session requests that verified */
    ZEQ_STAT_BYTES_OPENED,      /* plaintext bytes of their bodies */
    ZEQ_STAT_RESPONSES_SEALED,  /* answers sent sealed */
    ZEQ_STAT_BYTES_SEALED,      /* sealed body bytes sent */
    ZEQ_STAT_REPLAYS_REFUSED,   /* sequence numbers refused (e2e_replayed) */
    ZEQ_STAT_RECORDS_UNREADABLE, /* stored records that did not open */
    ZEQ_STAT_STORE_FAILURES,    /* store operations that failed */
    ZEQ_STAT_STORE_LAST_OK,     /* apr_time_t of the last success */
    ZEQ_STAT_STORE_LAST_FAILURE, /* apr_time_t of the last failure */
    ZEQ_STAT_UNUSED_DROPPED,    /* sessions dropped unused (zeq_guard) */
    ZEQ_STAT_SLOTS_RECLAIMED,   /* derivation slots taken back from
                                 * processes that were gone */
    ZEQ_STAT_REFUSED_FIRST      /* then one per error code */
} zeq_stat;

/* The module errors counted by code, in the order the status lists them. */
int zeq_stats_codes(void);
const char *zeq_stats_code(int i);

void zeq_stats_add(zeq_stat which, apr_uint64_t n);
void zeq_stats_set(zeq_stat which, apr_uint64_t v);
apr_uint64_t zeq_stats_get(zeq_stat which);
/* Counts one module error of the given code (ZEQ_E2E_ERR_*). */
void zeq_stats_refused(const char *code);
apr_uint64_t zeq_stats_refusals(int i);
/* A session request verified, with a body of n plaintext bytes. */
void zeq_stats_opened(apr_off_t n);
/* A store operation succeeded (ok) or failed. */
void zeq_stats_store(int ok);
/* 1 when counters are there (after the first real post_config). */
int zeq_stats_ready(void);
void zeq_stats_register_hooks(apr_pool_t *p);

#endif
