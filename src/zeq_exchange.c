/* The exchange record (see zeq_exchange.h). */
#include "zeq_exchange.h"
#include "zeq_record.h"

#include "apr_strings.h"

#include <openssl/crypto.h>

static apr_status_t zeq_exchange_cleanup(void *data)
{
    zeq_exchange *ex = data;

    zeq_keys_cleanse(&ex->keys);
    return APR_SUCCESS;
}

/* Subrequests lead to their main request, internal redirects to the
 * request they replaced. mod_dir's fast redirect keeps the request (and
 * its request_config). */
request_rec *zeq_exchange_initial(const request_rec *r)
{
    for (;;) {
        if (r->main != NULL) {
            r = r->main;
        }
        else if (r->prev != NULL) {
            r = r->prev;
        }
        else {
            return (request_rec *)r;
        }
    }
}

zeq_exchange *zeq_exchange_get(const request_rec *r)
{
    return ap_get_module_config(zeq_exchange_initial(r)->request_config,
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

static zeq_record_field zeq_exchange_field(const char *s)
{
    zeq_record_field f;

    f.data = s ? s : "";
    f.len = s ? strlen(s) : 0;
    return f;
}

static unsigned char *zeq_exchange_aad(apr_pool_t *p, const char *label,
                                       const zeq_record_field *f, size_t n,
                                       apr_size_t *len)
{
    apr_size_t need = zeq_record_aad_len(label, f, n);
    unsigned char *out = apr_palloc(p, need ? need : 1);

    *len = zeq_record_aad(out, need, label, f, n);
    return out;
}

unsigned char *zeq_exchange_request_aad(apr_pool_t *p, const zeq_exchange *ex,
                                        const char *method, apr_size_t *len)
{
    zeq_record_field f[5];

    f[0] = zeq_exchange_field(ex->sid);
    f[1] = zeq_exchange_field(apr_psprintf(p, "%" APR_UINT64_T_FMT, ex->seq));
    f[2] = zeq_exchange_field(method);
    f[3] = zeq_exchange_field(ex->target);
    f[4] = zeq_exchange_field(ex->inner_type);
    return zeq_exchange_aad(p, ZEQ_RECORD_AAD_REQUEST, f, 5, len);
}

unsigned char *zeq_exchange_response_aad(apr_pool_t *p, const zeq_exchange *ex,
                                         int status, const char *type,
                                         const char *encoding, apr_size_t *len)
{
    zeq_record_field f[5];

    f[0] = zeq_exchange_field(ex->sid);
    f[1] = zeq_exchange_field(apr_psprintf(p, "%" APR_UINT64_T_FMT, ex->seq));
    f[2] = zeq_exchange_field(apr_psprintf(p, "%03d", status));
    f[3] = zeq_exchange_field(type);
    f[4] = zeq_exchange_field(encoding);
    return zeq_exchange_aad(p, ZEQ_RECORD_AAD_RESPONSE, f, 5, len);
}

apr_size_t zeq_exchange_ws_aad(const zeq_exchange *ex, const char *direction,
                               apr_uint64_t counter, unsigned char *out,
                               apr_size_t cap)
{
    char seq[24], n[24];
    zeq_record_field f[4];

    apr_snprintf(seq, sizeof(seq), "%" APR_UINT64_T_FMT, ex->seq);
    apr_snprintf(n, sizeof(n), "%" APR_UINT64_T_FMT, counter);
    f[0] = zeq_exchange_field(ex->sid);
    f[1] = zeq_exchange_field(seq);
    f[2] = zeq_exchange_field(direction);
    f[3] = zeq_exchange_field(n);
    return zeq_record_aad(out, cap, ZEQ_RECORD_AAD_WS, f, 4);
}
