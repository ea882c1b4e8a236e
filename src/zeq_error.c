/* The module's own errors: plaintext JSON answered before the application
 * runs. They are never encrypted: the client may hold no key. */
#include "zeq_error.h"
#include "zeq_stats.h"

#include "apr_strings.h"

/* How long clients are told to wait when the session store fails: a
 * little more than a shared store's hold-down (zeq_remote.h). */
#define ZEQ_ERROR_RETRY_AFTER 2

/* Escapes a message for a JSON string (the messages are the module's own
 * ASCII texts; anything else is replaced). */
static const char *zeq_error_json_escape(apr_pool_t *p, const char *s)
{
    apr_size_t n = strlen(s), i, o = 0;
    char *out = apr_palloc(p, n * 2 + 1);

    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        }
        else if (c < 0x20 || c >= 0x7f) {
            out[o++] = '?';
        }
        else {
            out[o++] = (char)c;
        }
    }
    out[o] = '\0';
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
