/* The module's own errors: plaintext JSON answered before the application
 * runs. They are never encrypted: the client may hold no key. */
#include "zeq_error.h"
#include "zeq_proto.h"
#include "zeq_stats.h"

#include "apr_strings.h"

/* How long clients are told to wait when the session store fails: a
 * little more than a shared store's hold-down (zeq_remote.h). */
#define ZEQ_ERROR_RETRY_AFTER 2

/* A message as the contents of a JSON string. */
static const char *zeq_error_json_escape(apr_pool_t *p, const char *s)
{
    char *out = apr_palloc(p, strlen(s) * 2 + 1);

    zeq_proto_json_escape(s, out);
    return out;
}

int zeq_error_send(request_rec *r, int status, const char *code,
                   const char *message)
{
    const char *body;

    zeq_stats_refused(code);
    /* An unread body is discarded after the answer the usual way, and
     * httpd closes the connection instead for 400, 413, 500 and 503. */
    r->status = status;
    r->status_line = NULL;
    r->content_encoding = NULL;
    apr_table_unset(r->headers_out, "Content-Encoding");
    apr_table_setn(r->err_headers_out, "Cache-Control", "no-store");
    ap_set_content_type(r, "application/json");
    body = apr_psprintf(r->pool, "{\"error\":\"%s\",\"message\":\"%s\"}\n",
                        code, zeq_error_json_escape(r->pool, message));
    ap_set_content_length(r, (apr_off_t)strlen(body));
    if (!r->header_only) {
        ap_rwrite(body, (int)strlen(body), r);
    }
    return DONE;
}

int zeq_error_unconfigured(request_rec *r)
{
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, ZEQLOG(40008)
                  "refused: no ZeqE2ESecret for this server");
    return zeq_error_send(r, HTTP_SERVICE_UNAVAILABLE, ZEQ_E2E_ERR_UNAVAILABLE,
                          "end-to-end encryption is not configured on this "
                          "server");
}

int zeq_error_store_unavailable(request_rec *r)
{
    apr_table_setn(r->err_headers_out, "Retry-After",
                   APR_STRINGIFY(ZEQ_ERROR_RETRY_AFTER));
    return zeq_error_send(r, HTTP_SERVICE_UNAVAILABLE, ZEQ_E2E_ERR_UNAVAILABLE,
                          "the session store is unavailable; retry later");
}
