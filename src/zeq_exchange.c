/* The exchange record (see zeq_exchange.h). */
#include "zeq_exchange.h"

#include <openssl/crypto.h>

static apr_status_t zeq_exchange_cleanup(void *data)
{
    zeq_exchange *ex = data;

    OPENSSL_cleanse(ex->key, sizeof(ex->key));
    return APR_SUCCESS;
}

/* The request that began r's exchange: subrequests lead to their main
 * request, internal redirects to the request they replaced. mod_dir's fast
 * redirect keeps the request (and its request_config). */
static const request_rec *zeq_exchange_root(const request_rec *r)
{
    for (;;) {
        if (r->main != NULL) {
            r = r->main;
        }
        else if (r->prev != NULL) {
            r = r->prev;
        }
        else {
            return r;
        }
    }
}

zeq_exchange *zeq_exchange_get(const request_rec *r)
{
    return ap_get_module_config(zeq_exchange_root(r)->request_config,
                                &zeq_e2e_module);
}

zeq_exchange *zeq_exchange_create(request_rec *r)
{
    zeq_exchange *ex = apr_pcalloc(r->pool, sizeof(*ex));

    apr_pool_cleanup_register(r->pool, ex, zeq_exchange_cleanup,
                              apr_pool_cleanup_null);
    ap_set_module_config(r->request_config, &zeq_e2e_module, ex);
    return ex;
}

int zeq_exchange_sealed(const zeq_exchange *ex)
{
    return ex != NULL && ex->encrypt && !ex->refused;
}
