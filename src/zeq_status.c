/* The mod_status section (see zeq_status.h). ?auto prints one "Name:
 * value" line each, prefixed ZeqE2E; the HTML page a table. */
#include "zeq_status.h"
#include "zeq_guard.h"
#include "zeq_stats.h"
#include "zeq_store.h"

#include "mod_status.h"
#include "apr_strings.h"

typedef struct {
    const char *name;          /* ?auto name after "ZeqE2E" */
    const char *label;         /* HTML */
    zeq_stat stat;
} zeq_status_line;

static const zeq_status_line zeq_status_lines[] = {
    { "HandshakesV1", "handshakes, version 1", ZEQ_STAT_HANDSHAKES_V1 },
    { "HandshakesV2", "handshakes, version 2", ZEQ_STAT_HANDSHAKES_V2 },
    { "RequestsOpened", "encrypted requests opened",
      ZEQ_STAT_REQUESTS_OPENED },
    { "BytesOpened", "plaintext bytes opened", ZEQ_STAT_BYTES_OPENED },
    { "ResponsesSealed", "responses sealed", ZEQ_STAT_RESPONSES_SEALED },
    { "BytesSealed", "sealed bytes sent", ZEQ_STAT_BYTES_SEALED },
    { "ReplaysRefused", "replays refused", ZEQ_STAT_REPLAYS_REFUSED },
    { "RecordsUnreadable", "stored records that did not open",
      ZEQ_STAT_RECORDS_UNREADABLE },
    { "StoreFailures", "store failures", ZEQ_STAT_STORE_FAILURES },
    { "UnusedDropped", "sessions dropped unused (ZeqE2EUnusedSessions)",
      ZEQ_STAT_UNUSED_DROPPED },
    { "DerivationSlotsReclaimed",
      "derivation slots taken back from processes that were gone",
      ZEQ_STAT_SLOTS_RECLAIMED },
};

/* "up", "down" (the last operation failed) or "unused" (none yet). */
static const char *zeq_status_state(void)
{
    apr_uint64_t ok = zeq_stats_get(ZEQ_STAT_STORE_LAST_OK);
    apr_uint64_t failed = zeq_stats_get(ZEQ_STAT_STORE_LAST_FAILURE);

    if (ok == 0 && failed == 0) {
        return "unused";
    }
    return failed > ok ? "down" : "up";
}

static void zeq_status_row(request_rec *r, int flags, const char *name,
                           const char *label, const char *value)
{
    if (flags & AP_STATUS_SHORT) {
        ap_rprintf(r, "ZeqE2E%s: %s\n", name, value);
    }
    else {
        ap_rprintf(r, "<tr><td>%s</td><td>%s</td></tr>\n",
                   ap_escape_html(r->pool, label),
                   ap_escape_html(r->pool, value));
    }
}

static int zeq_status_hook(request_rec *r, int flags)
{
    apr_uint64_t created = zeq_stats_get(ZEQ_STAT_HANDSHAKES_V1)
                           + zeq_stats_get(ZEQ_STAT_HANDSHAKES_V2);
    long active;
    size_t i;
    int c, taken, slots;

    if (!zeq_stats_ready()) {
        return OK;
    }
    if (!(flags & AP_STATUS_SHORT)) {
        ap_rputs("<hr />\n<h2>mod_zeq_e2e</h2>\n<table border=\"0\">\n", r);
    }
    zeq_status_row(r, flags, "Store", "session store",
                   zeq_store_describe(r->pool));
    zeq_status_row(r, flags, "StoreState", "its state", zeq_status_state());
    zeq_status_row(r, flags, "SessionsCreated", "sessions created",
                   apr_psprintf(r->pool, "%" APR_UINT64_T_FMT, created));
    active = zeq_store_count(r->server, r->pool);
    if (active >= 0) {
        zeq_status_row(r, flags, "SessionsActive",
                       "entries in the store (sessions active)",
                       apr_psprintf(r->pool, "%ld", active));
    }
    if (zeq_guard_slots(&taken, &slots)) {
        zeq_status_row(r, flags, "Derivations",
                       "key derivations running now",
                       apr_psprintf(r->pool, "%d", taken));
        zeq_status_row(r, flags, "DerivationSlots",
                       "derivation slots (ZeqE2EHandshakeConcurrency)",
                       apr_psprintf(r->pool, "%d", slots));
    }
    for (i = 0; i < sizeof(zeq_status_lines) / sizeof(zeq_status_lines[0]);
         i++) {
        zeq_status_row(r, flags, zeq_status_lines[i].name,
                       zeq_status_lines[i].label,
                       apr_psprintf(r->pool, "%" APR_UINT64_T_FMT,
                                    zeq_stats_get(zeq_status_lines[i].stat)));
    }
    for (c = 0; c < zeq_stats_codes(); c++) {
        const char *code = zeq_stats_code(c);
        zeq_status_row(r, flags, apr_pstrcat(r->pool, "Refused_", code, NULL),
                       apr_pstrcat(r->pool, "refused: ", code, NULL),
                       apr_psprintf(r->pool, "%" APR_UINT64_T_FMT,
                                    zeq_stats_refusals(c)));
    }
    if (!(flags & AP_STATUS_SHORT)) {
        ap_rputs("</table>\n", r);
        zeq_store_status(r, flags);
    }
    return OK;
}

void zeq_status_register_hooks(apr_pool_t *p)
{
    (void)p;
    APR_OPTIONAL_HOOK(ap, status_hook, zeq_status_hook, NULL, NULL,
                      APR_HOOK_MIDDLE);
}
