/* The browser library, client/zeq-e2e-client.js, embedded in the module at
 * build time and served at ZeqE2EClientScriptPath where ZeqE2E is On, with
 * an ETag and revalidation. */
#include "zeq_client.h"
#include "zeq_config.h"
#include "zeq_error.h"

#include "zeq_client_js.h"   /* generated: zeq_client_js[], its length, ETag */

static int zeq_client_handler(request_rec *r)
{
    int status;

    if (r->handler == NULL || strcmp(r->handler, ZEQ_CLIENT_HANDLER) != 0) {
        return DECLINED;
    }
    r->allowed = (AP_METHOD_BIT << M_GET);
    if (r->method_number != M_GET) {
        apr_table_setn(r->err_headers_out, "Allow", "GET, HEAD");
        return zeq_error_send(r, HTTP_METHOD_NOT_ALLOWED, ZEQ_E2E_ERR_METHOD,
                              "the client script accepts GET and HEAD");
    }
    apr_table_setn(r->headers_out, "ETag", ZEQ_CLIENT_JS_ETAG);
    apr_table_setn(r->headers_out, "Cache-Control", "no-cache");
    ap_set_content_type(r, "text/javascript; charset=utf-8");
    status = ap_meets_conditions(r);
    if (status != OK) {
        return status;
    }
    ap_set_content_length(r, (apr_off_t)sizeof(zeq_client_js));
    if (!r->header_only) {
        ap_rwrite(zeq_client_js, (int)sizeof(zeq_client_js), r);
    }
    return OK;
}

void zeq_client_register_hooks(apr_pool_t *p)
{
    (void)p;
    ap_hook_handler(zeq_client_handler, NULL, NULL, APR_HOOK_REALLY_FIRST);
}
