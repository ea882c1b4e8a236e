/* Configuration: per-directory and per-server records with unset markers
 * and real merges, the directive handlers, and the startup checks. */
#include "zeq_config.h"
#include "zeq_envelope.h"
#include "zeq_kex.h"
#include "zeq_limit.h"
#include "zeq_sessrec.h"
#include "zeq_store.h"

#include "http_core.h"
#include "apr_file_io.h"
#include "apr_strings.h"
#include "apr_lib.h"

#include <errno.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#define ZEQ_SECRET_MAX (64 * 1024)
#define ZEQ_SCOPE_MAX 256

void *zeq_config_create_dir(apr_pool_t *p, char *dir)
{
    zeq_dir_conf *d = apr_pcalloc(p, sizeof(*d));

    (void)dir;
    d->enabled = ZEQ_UNSET;
    d->require = ZEQ_UNSET;
    d->max_request = ZEQ_UNSET;
    d->max_response = ZEQ_UNSET;
    d->max_message = ZEQ_UNSET;
    return d;
}

void *zeq_config_merge_dir(apr_pool_t *p, void *basev, void *addv)
{
    const zeq_dir_conf *base = basev, *add = addv;
    zeq_dir_conf *d = apr_pcalloc(p, sizeof(*d));

    d->enabled = add->enabled != ZEQ_UNSET ? add->enabled : base->enabled;
    d->require = add->require != ZEQ_UNSET ? add->require : base->require;
    d->max_request = add->max_request != ZEQ_UNSET ? add->max_request
                                                   : base->max_request;
    d->max_response = add->max_response != ZEQ_UNSET ? add->max_response
                                                     : base->max_response;
    d->max_message = add->max_message != ZEQ_UNSET ? add->max_message
                                                   : base->max_message;
    return d;
}

void *zeq_config_create_srv(apr_pool_t *p, server_rec *s)
{
    zeq_srv_conf *c = apr_pcalloc(p, sizeof(*c));

    (void)s;
    c->ttl = ZEQ_UNSET;
    c->protocols = ZEQ_UNSET;
    c->require_psk = ZEQ_UNSET;
    c->cleanup_interval = ZEQ_UNSET;
    c->hs_rate = ZEQ_UNSET;
    c->hs_burst = ZEQ_UNSET;
    c->concurrency = ZEQ_UNSET;
    c->unused_sessions = ZEQ_UNSET;
    c->replay_windows = ZEQ_UNSET;
    return c;
}

void *zeq_config_merge_srv(apr_pool_t *p, void *basev, void *addv)
{
    const zeq_srv_conf *base = basev, *add = addv;
    zeq_srv_conf *c = apr_pcalloc(p, sizeof(*c));

    if (add->secret_origin != ZEQ_SECRET_NONE) {
        c->secret_origin = add->secret_origin;
        c->secret = add->secret;
    }
    /* else: the main server's, set in post_config (an environment default
     * is known only then). */
    /* Not inherited: a virtual host shares sessions with others only when
     * it says so itself (the default scope is its own name and port). */
    c->scope_name = add->scope_name;
    c->ttl = add->ttl != ZEQ_UNSET ? add->ttl : base->ttl;
    c->protocols = add->protocols != ZEQ_UNSET ? add->protocols
                                               : base->protocols;
    c->require_psk = add->require_psk != ZEQ_UNSET ? add->require_psk
                                                   : base->require_psk;
    c->signers = add->signers ? add->signers : base->signers;
    c->handshake_path = add->handshake_path ? add->handshake_path
                                            : base->handshake_path;
    c->client_path = add->client_path ? add->client_path : base->client_path;
    /* RATE and BURST go together. */
    c->hs_rate = add->hs_rate != ZEQ_UNSET ? add->hs_rate : base->hs_rate;
    c->hs_burst = add->hs_rate != ZEQ_UNSET ? add->hs_burst : base->hs_burst;
    /* Global only: a virtual host always shares the main server's. */
    c->cleanup_interval = base->cleanup_interval;
    c->concurrency = base->concurrency;
    c->unused_sessions = base->unused_sessions;
    c->replay_windows = base->replay_windows;
    /* Each server warns about its own directives only. */
    c->secret_notes = add->secret_notes;
    c->key_notes = add->key_notes;
    return c;
}

zeq_srv_conf *zeq_config_srv(const server_rec *s)
{
    return ap_get_module_config(s->module_config, &zeq_e2e_module);
}

zeq_dir_conf *zeq_config_dir(const request_rec *r)
{
    return ap_get_module_config(r->per_dir_config, &zeq_e2e_module);
}

int zeq_config_enabled(const zeq_dir_conf *d)
{
    return d != NULL && d->enabled == 1;
}

int zeq_config_required(const zeq_dir_conf *d)
{
    return d != NULL && d->require == 1;
}

apr_off_t zeq_config_max_request(const zeq_dir_conf *d)
{
    return d->max_request != ZEQ_UNSET ? d->max_request
                                       : ZEQ_DEFAULT_MAX_REQUEST;
}

apr_off_t zeq_config_max_response(const zeq_dir_conf *d)
{
    return d->max_response != ZEQ_UNSET ? d->max_response
                                        : ZEQ_DEFAULT_MAX_RESPONSE;
}

apr_off_t zeq_config_max_message(const zeq_dir_conf *d)
{
    return d->max_message != ZEQ_UNSET ? d->max_message
                                       : ZEQ_DEFAULT_MAX_MESSAGE;
}

int zeq_config_ttl(const zeq_srv_conf *c)
{
    return c->ttl != ZEQ_UNSET ? c->ttl : ZEQ_DEFAULT_TTL;
}

int zeq_config_protocols(const zeq_srv_conf *c)
{
    if (c->protocols != ZEQ_UNSET) {
        return c->protocols;
    }
    return ZEQ_PROTOCOL_V2 | (c->secret != NULL ? ZEQ_PROTOCOL_V1 : 0);
}

int zeq_config_require_psk(const zeq_srv_conf *c)
{
    return c->require_psk == 1;
}

const char *zeq_config_handshake_path(const zeq_srv_conf *c)
{
    return c->handshake_path ? c->handshake_path
                             : ZEQ_E2E_DEFAULT_HANDSHAKE_PATH;
}

const char *zeq_config_client_path(const zeq_srv_conf *c)
{
    return c->client_path ? c->client_path : ZEQ_DEFAULT_CLIENT_PATH;
}

int zeq_config_hs_rate(const zeq_srv_conf *c, double *rate, int *burst)
{
    if (c->hs_rate == ZEQ_UNSET) {
        *rate = ZEQ_DEFAULT_HS_RATE;
        *burst = ZEQ_DEFAULT_HS_BURST;
        return 1;
    }
    *rate = c->hs_rate;
    *burst = c->hs_burst;
    return c->hs_rate > 0;
}

int zeq_config_concurrency(const zeq_srv_conf *main_conf)
{
    return main_conf->concurrency != ZEQ_UNSET ? main_conf->concurrency : 0;
}

int zeq_config_unused_sessions(const zeq_srv_conf *main_conf)
{
    return main_conf->unused_sessions != ZEQ_UNSET
           ? main_conf->unused_sessions : ZEQ_DEFAULT_UNUSED_SESSIONS;
}

int zeq_config_replay_windows(const zeq_srv_conf *main_conf)
{
    return main_conf->replay_windows != ZEQ_UNSET
           ? main_conf->replay_windows : ZEQ_DEFAULT_REPLAY_WINDOWS;
}

static apr_status_t zeq_config_secret_cleanse(void *data)
{
    zeq_secret *sec = data;

    OPENSSL_cleanse(sec->bytes, sec->len);
    OPENSSL_cleanse(sec->psk, sizeof(sec->psk));
    sec->has_psk = 0;
    return APR_SUCCESS;
}

/* A copy of the secret bytes in p, zeroed when p is cleared. */
static zeq_secret *zeq_config_secret_new(apr_pool_t *p, const char *bytes,
                                         apr_size_t len)
{
    zeq_secret *sec = apr_pcalloc(p, sizeof(*sec));

    sec->bytes = apr_palloc(p, len);
    memcpy(sec->bytes, bytes, len);
    sec->len = len;
    apr_pool_cleanup_register(p, sec, zeq_config_secret_cleanse,
                              apr_pool_cleanup_null);
    return sec;
}

/* Replaces a server's secret; the copy it replaces is zeroed at once. */
static void zeq_config_secret_set(apr_pool_t *p, zeq_srv_conf *c,
                                  zeq_secret_origin origin,
                                  zeq_secret *sec)
{
    if (c->secret != NULL) {
        apr_pool_cleanup_kill(p, c->secret, zeq_config_secret_cleanse);
        zeq_config_secret_cleanse(c->secret);
    }
    c->secret = sec;
    c->secret_origin = origin;
}

/* Zeroes a string the configuration handed over (cast: its memory belongs
 * to the configuration pool, which reads it no more). */
static void zeq_config_wipe(const char *s)
{
    if (s != NULL) {
        OPENSSL_cleanse((char *)s, strlen(s));
    }
}

/* Adds a startup warning (when there is one) to a list. */
static void zeq_config_note(apr_pool_t *p, apr_array_header_t **list,
                            const char *note)
{
    if (note == NULL) {
        return;
    }
    if (*list == NULL) {
        *list = apr_array_make(p, 2, sizeof(note));
    }
    APR_ARRAY_PUSH(*list, const char *) = note;
}

int zeq_config_file_exposure(apr_fileperms_t prot)
{
    return (prot & APR_FPROT_WREAD) ? 2 : (prot & APR_FPROT_GREAD) ? 1 : 0;
}

/* Reads a whole file of 1 to ZEQ_SECRET_MAX bytes into the temporary
 * pool, zeroed when that pool goes, also when the read fails half-way.
 * what names the file in messages ("secret", "key"). A file other users
 * may read is refused; one its group may read gets *note, the startup
 * warning (else NULL). */
static const char *zeq_config_read_file(cmd_parms *cmd, const char *fpath,
                                        const char *what, zeq_secret **out,
                                        const char **note)
{
    apr_file_t *fd;
    apr_finfo_t fi;
    apr_status_t rv;
    zeq_secret *buf;
    apr_size_t len;

    *note = NULL;
    rv = apr_file_open(&fd, fpath, APR_FOPEN_READ | APR_FOPEN_BINARY,
                       APR_OS_DEFAULT, cmd->temp_pool);
    if (rv == APR_SUCCESS) {
        rv = apr_file_info_get(&fi, APR_FINFO_SIZE | APR_FINFO_PROT, fd);
        if (rv == APR_SUCCESS && (fi.size <= 0 || fi.size > ZEQ_SECRET_MAX)) {
            apr_file_close(fd);
            return apr_psprintf(cmd->pool, "%s: the %s file '%s' must hold "
                                "1 to %d bytes", cmd->cmd->name, what, fpath,
                                ZEQ_SECRET_MAX);
        }
        if (rv == APR_SUCCESS
            && zeq_config_file_exposure(fi.protection) == 2) {
            apr_file_close(fd);
            return apr_psprintf(cmd->pool, "%s: the %s file '%s' is readable "
                                "by other users (mode %04x): make it "
                                "readable by its owner only (chmod 600, "
                                "owned by the user who starts Apache)",
                                cmd->cmd->name, what, fpath,
                                ZEQ_CONFIG_MODE(fi.protection));
        }
        if (rv == APR_SUCCESS
            && zeq_config_file_exposure(fi.protection) == 1) {
            *note = apr_psprintf(cmd->pool, "%s: the %s file '%s' is "
                                 "readable by its group (mode %04x): only "
                                 "the user who starts Apache needs to read "
                                 "it (chmod 600)", cmd->cmd->name, what,
                                 fpath, ZEQ_CONFIG_MODE(fi.protection));
        }
        if (rv != APR_SUCCESS) {
            apr_file_close(fd);
        }
    }
    if (rv != APR_SUCCESS) {
        return apr_psprintf(cmd->pool, "%s: cannot read the %s file '%s': "
                            "%pm", cmd->cmd->name, what, fpath, &rv);
    }
    buf = apr_pcalloc(cmd->temp_pool, sizeof(*buf));
    buf->len = (apr_size_t)fi.size;
    buf->bytes = apr_palloc(cmd->temp_pool, buf->len);
    apr_pool_cleanup_register(cmd->temp_pool, buf, zeq_config_secret_cleanse,
                              apr_pool_cleanup_null);
    rv = apr_file_read_full(fd, buf->bytes, buf->len, &len);
    apr_file_close(fd);
    if (rv != APR_SUCCESS) {
        zeq_config_secret_cleanse(buf);
        return apr_psprintf(cmd->pool, "%s: cannot read the %s file '%s': "
                            "%pm", cmd->cmd->name, what, fpath, &rv);
    }
    *out = buf;
    return NULL;
}

/* The warning for a secret shorter than ZEQ_SECRET_MIN bytes (where it
 * came from and its length, never its bytes), or NULL. */
static const char *zeq_config_short_secret(apr_pool_t *p, const char *name,
                                           const char *origin, apr_size_t len)
{
    if (len >= ZEQ_SECRET_MIN) {
        return NULL;
    }
    return apr_psprintf(p, "%s: the secret %s is %" APR_SIZE_T_FMT " bytes "
                        "long, shorter than %d: whoever records a v1 "
                        "handshake can try guesses offline; use %d random "
                        "bytes or more (openssl rand -hex 32)", name, origin,
                        len, ZEQ_SECRET_MIN, ZEQ_SECRET_MIN);
}

/* Reads a file: secret; one trailing line end (LF or CRLF) is not part of
 * the secret. Every copy of the bytes read is zeroed, whatever happens. */
static const char *zeq_config_read_secret_file(cmd_parms *cmd,
                                               zeq_srv_conf *c,
                                               const char *path)
{
    const char *fpath = ap_server_root_relative(cmd->temp_pool, path);
    const char *err, *note;
    zeq_secret *buf = NULL;
    apr_size_t len;

    if (fpath == NULL || *path == '\0') {
        return apr_psprintf(cmd->pool, "%s: invalid file: path '%s'",
                            cmd->cmd->name, path);
    }
    err = zeq_config_read_file(cmd, fpath, "secret", &buf, &note);
    if (err != NULL) {
        return err;
    }
    zeq_config_note(cmd->pool, &c->secret_notes, note);
    len = buf->len;
    if (len > 0 && buf->bytes[len - 1] == '\n') {
        len--;
        if (len > 0 && buf->bytes[len - 1] == '\r') {
            len--;
        }
    }
    if (len == 0) {
        zeq_config_secret_cleanse(buf);
        return apr_psprintf(cmd->pool, "%s: the secret file '%s' is empty",
                            cmd->cmd->name, fpath);
    }
    zeq_config_secret_set(cmd->pool, c, ZEQ_SECRET_FILE,
                          zeq_config_secret_new(cmd->pool,
                                                (const char *)buf->bytes,
                                                len));
    zeq_config_secret_cleanse(buf);
    zeq_config_note(cmd->pool, &c->secret_notes,
                    zeq_config_short_secret(cmd->pool, cmd->cmd->name,
                                            apr_psprintf(cmd->temp_pool,
                                                         "of the file '%s'",
                                                         fpath), len));
    return NULL;
}

const char *zeq_config_set_secret(cmd_parms *cmd, void *dc, const char *arg)
{
    zeq_srv_conf *c = zeq_config_srv(cmd->server);
    const char *err = ap_check_cmd_context(cmd, NOT_IN_DIR_CONTEXT);

    (void)dc;
    if (err != NULL) {
        return err;
    }
    if (*arg == '\0') {
        return apr_psprintf(cmd->pool, "%s: the secret must not be empty; "
                            "use VALUE, env:NAME or file:PATH",
                            cmd->cmd->name);
    }
    c->secret_notes = NULL;         /* a later line replaces an earlier */
    if (strncmp(arg, "env:", 4) == 0) {
        const char *v = getenv(arg + 4);
        if (arg[4] == '\0' || v == NULL || *v == '\0') {
            return apr_psprintf(cmd->pool, "%s: the environment variable "
                                "'%s' is not set or empty", cmd->cmd->name,
                                arg + 4);
        }
        zeq_config_secret_set(cmd->pool, c, ZEQ_SECRET_ENV,
                              zeq_config_secret_new(cmd->pool, v,
                                                    strlen(v)));
        zeq_config_note(cmd->pool, &c->secret_notes,
                        zeq_config_short_secret(
                            cmd->pool, cmd->cmd->name,
                            apr_psprintf(cmd->temp_pool, "of the environment "
                                         "variable %s", arg + 4), strlen(v)));
        return NULL;
    }
    if (strncmp(arg, "file:", 5) == 0) {
        return zeq_config_read_secret_file(cmd, c, arg + 5);
    }
    zeq_config_secret_set(cmd->pool, c, ZEQ_SECRET_LITERAL,
                          zeq_config_secret_new(cmd->pool, arg,
                                                strlen(arg)));
    zeq_config_note(cmd->pool, &c->secret_notes,
                    zeq_config_short_secret(cmd->pool, cmd->cmd->name,
                                            "configured literally",
                                            strlen(arg)));
    /* The literal also sits in the argument copy and in the configuration
     * tree (which mod_info shows): zero both. */
    zeq_config_wipe(arg);
    if (cmd->directive != NULL) {
        zeq_config_wipe(cmd->directive->args);
    }
    return NULL;
}

const char *zeq_config_set_cache(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);

    (void)dc;
    if (err == NULL) {
        err = zeq_store_configure(cmd->pool, cmd->temp_pool, arg);
        if (err != NULL) {
            err = apr_psprintf(cmd->pool, "%s: %s", cmd->cmd->name, err);
        }
    }
    return err;
}

const char *zeq_config_set_cache_timeout(cmd_parms *cmd, void *dc,
                                         const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    apr_interval_time_t t;

    (void)dc;
    if (err != NULL) {
        return err;
    }
    if (ap_timeout_parameter_parse(arg, &t, "s") != APR_SUCCESS
        || t < apr_time_from_msec(10) || t > apr_time_from_sec(60)) {
        return apr_psprintf(cmd->pool, "%s: '%s' is not a time from 10ms to "
                            "60s (2, 2s, 500ms)", cmd->cmd->name, arg);
    }
    zeq_store_timeout_set(t);
    return NULL;
}

const char *zeq_config_set_record_key(cmd_parms *cmd, void *dc,
                                      const char *arg)
{
    zeq_srv_conf *c = zeq_config_srv(cmd->server);
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    const char *fpath, *note;
    zeq_secret *buf = NULL;
    apr_size_t len;

    (void)dc;
    if (err != NULL) {
        return err;
    }
    if (strncmp(arg, "file:", 5) != 0 || arg[5] == '\0'
        || (fpath = ap_server_root_relative(cmd->temp_pool, arg + 5)) == NULL) {
        return apr_psprintf(cmd->pool, "%s: '%s' must be file:PATH of a "
                            "file of at least %d random bytes (openssl rand "
                            "-hex 32)", cmd->cmd->name, arg,
                            ZEQ_SESSREC_MIN_IKM);
    }
    err = zeq_config_read_file(cmd, fpath, "record key", &buf, &note);
    if (err != NULL) {
        return err;
    }
    c->record_key_notes = NULL;
    zeq_config_note(cmd->pool, &c->record_key_notes, note);
    len = buf->len;
    if (len > 0 && buf->bytes[len - 1] == '\n') {
        len--;
    }
    if (len < ZEQ_SESSREC_MIN_IKM) {
        zeq_config_secret_cleanse(buf);
        return apr_psprintf(cmd->pool, "%s: the record key file '%s' holds "
                            "%" APR_SIZE_T_FMT " bytes, fewer than %d "
                            "(openssl rand -hex 32 > FILE)", cmd->cmd->name,
                            fpath, len, ZEQ_SESSREC_MIN_IKM);
    }
    if (c->record_key != NULL) {
        apr_pool_cleanup_kill(cmd->pool, c->record_key,
                              zeq_config_secret_cleanse);
        zeq_config_secret_cleanse(c->record_key);
    }
    c->record_key = zeq_config_secret_new(cmd->pool, (const char *)buf->bytes,
                                          len);
    zeq_config_secret_cleanse(buf);
    return NULL;
}

/* A whole number in [min, max] into *out: 1, or 0 when arg is none. */
static int zeq_config_int(const char *arg, apr_int64_t min, apr_int64_t max,
                          int *out)
{
    char *end;
    apr_int64_t v;

    errno = 0;
    v = apr_strtoi64(arg, &end, 10);
    if (errno != 0 || end == arg || *end != '\0' || v < min || v > max) {
        return 0;
    }
    *out = (int)v;
    return 1;
}

/* Parses a whole number of seconds in [1, max]. */
static const char *zeq_config_seconds(cmd_parms *cmd, const char *arg,
                                      int max, int *out)
{
    if (!zeq_config_int(arg, 1, max, out)) {
        return apr_psprintf(cmd->pool, "%s: '%s' is not a number of seconds "
                            "from 1 to %d", cmd->cmd->name, arg, max);
    }
    return NULL;
}

const char *zeq_config_set_ttl(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, NOT_IN_DIR_CONTEXT);

    (void)dc;
    if (err != NULL) {
        return err;
    }
    return zeq_config_seconds(cmd, arg, ZEQ_MAX_TTL,
                              &zeq_config_srv(cmd->server)->ttl);
}

const char *zeq_config_set_cleanup(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);

    (void)dc;
    if (err != NULL) {
        return err;
    }
    return zeq_config_seconds(cmd, arg, 86400,
                              &zeq_config_srv(cmd->server)->cleanup_interval);
}

const char *zeq_config_set_path(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, NOT_IN_DIR_CONTEXT);
    char *conf = (char *)zeq_config_srv(cmd->server);

    (void)dc;
    if (err != NULL) {
        return err;
    }
    if (arg[0] != '/' || ap_strchr_c(arg, '?') || ap_strchr_c(arg, '#')) {
        return apr_psprintf(cmd->pool, "%s: '%s' must be a URL path "
                            "starting with '/', without query or fragment",
                            cmd->cmd->name, arg);
    }
    *(const char **)(conf + (apr_size_t)cmd->info) = arg;
    return NULL;
}

const char *zeq_config_set_scope(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, NOT_IN_DIR_CONTEXT);
    const char *p;

    (void)dc;
    if (err != NULL) {
        return err;
    }
    for (p = arg; *p != '\0'; p++) {
        if (!apr_isgraph(*p)) {
            break;
        }
    }
    if (*arg == '\0' || *p != '\0' || strlen(arg) > ZEQ_SCOPE_MAX) {
        return apr_psprintf(cmd->pool, "%s: '%s' must be a name of 1 to %d "
                            "visible characters", cmd->cmd->name, arg,
                            ZEQ_SCOPE_MAX);
    }
    zeq_config_srv(cmd->server)->scope_name = arg;
    return NULL;
}

const char *zeq_config_set_limit(cmd_parms *cmd, void *dc, const char *arg)
{
    apr_size_t slot = (apr_size_t)cmd->info;
    apr_off_t v, max;

    if (!ap_parse_strict_length(&v, arg) || v < 1) {
        return apr_psprintf(cmd->pool, "%s: '%s' is not a positive number "
                            "of bytes", cmd->cmd->name, arg);
    }
    max = slot == APR_OFFSETOF(zeq_dir_conf, max_message)
          ? ZEQ_MAX_MESSAGE_LIMIT : (apr_off_t)ZEQ_ENVELOPE_MAX_PLAINTEXT;
    if (v > max) {
        return apr_psprintf(cmd->pool, "%s: at most %" APR_OFF_T_FMT
                            " bytes (%s)", cmd->cmd->name, max, arg);
    }
    *(apr_off_t *)((char *)dc + slot) = v;
    return NULL;
}

const char *zeq_config_set_hs_rate(cmd_parms *cmd, void *dc, const char *a1,
                                   const char *a2)
{
    zeq_srv_conf *c = zeq_config_srv(cmd->server);
    const char *err = ap_check_cmd_context(cmd, NOT_IN_DIR_CONTEXT);
    char *end;
    double rate;
    int burst;

    (void)dc;
    if (err != NULL) {
        return err;
    }
    if (strcasecmp(a1, "off") == 0 && a2 == NULL) {
        c->hs_rate = 0;
        c->hs_burst = 0;
        return NULL;
    }
    errno = 0;
    rate = strtod(a1, &end);
    /* (the comparisons are false for NaN) */
    if (errno != 0 || end == a1 || *end != '\0' || !(rate >= ZEQ_HS_RATE_MIN)
        || !(rate <= ZEQ_HS_RATE_MAX)) {
        return apr_psprintf(cmd->pool, "%s: '%s' is not a number of "
                            "handshakes per second from 0.01 to 10000 (or "
                            "off)", cmd->cmd->name, a1);
    }
    if (a2 == NULL) {
        /* Ten seconds' worth. */
        burst = (int)(rate * 10 + 0.999999);
        burst = burst < 1 ? 1 : burst;
    }
    else if (!zeq_config_int(a2, 1, ZEQ_HS_BURST_MAX, &burst)) {
        return apr_psprintf(cmd->pool, "%s: the burst '%s' is not a whole "
                            "number of handshakes from 1 to %d",
                            cmd->cmd->name, a2, ZEQ_HS_BURST_MAX);
    }
    c->hs_rate = rate;
    c->hs_burst = burst;
    return NULL;
}

/* A directive that takes a whole number of what from min to max into
 * *out; err: what the context check said (NULL: allowed here). */
static const char *zeq_config_count(cmd_parms *cmd, const char *err,
                                    const char *arg, int min, int max,
                                    const char *what, int *out)
{
    if (err != NULL) {
        return err;
    }
    if (!zeq_config_int(arg, min, max, out)) {
        return apr_psprintf(cmd->pool, "%s: '%s' is not a whole number of "
                            "%s from %d to %d", cmd->cmd->name, arg, what,
                            min, max);
    }
    return NULL;
}

const char *zeq_config_set_concurrency(cmd_parms *cmd, void *dc,
                                       const char *arg)
{
    (void)dc;
    return zeq_config_count(cmd, ap_check_cmd_context(cmd, GLOBAL_ONLY), arg,
                            1, ZEQ_LIMIT_SLOTS_MAX, "key derivations",
                            &zeq_config_srv(cmd->server)->concurrency);
}

const char *zeq_config_set_unused(cmd_parms *cmd, void *dc, const char *arg)
{
    zeq_srv_conf *c = zeq_config_srv(cmd->server);
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);

    (void)dc;
    if (err != NULL) {
        return err;
    }
    if (strcasecmp(arg, "off") == 0) {
        c->unused_sessions = 0;
        return NULL;
    }
    if (!zeq_config_int(arg, 1, ZEQ_LIMIT_RING_MAX, &c->unused_sessions)) {
        return apr_psprintf(cmd->pool, "%s: '%s' is not a whole number of "
                            "sessions from 1 to %d (or off)", cmd->cmd->name,
                            arg, ZEQ_LIMIT_RING_MAX);
    }
    return NULL;
}

const char *zeq_config_set_windows(cmd_parms *cmd, void *dc, const char *arg)
{
    (void)dc;
    return zeq_config_count(cmd, ap_check_cmd_context(cmd, GLOBAL_ONLY), arg,
                            ZEQ_MIN_REPLAY_WINDOWS, ZEQ_MAX_REPLAY_WINDOWS,
                            "windows",
                            &zeq_config_srv(cmd->server)->replay_windows);
}

/* One version of ZeqE2EProtocol: its bit, or 0. */
static int zeq_config_protocol_bit(const char *arg)
{
    return strcmp(arg, "1") == 0 ? ZEQ_PROTOCOL_V1
           : strcmp(arg, "2") == 0 ? ZEQ_PROTOCOL_V2 : 0;
}

const char *zeq_config_set_protocol(cmd_parms *cmd, void *dc, const char *a1,
                                    const char *a2)
{
    zeq_srv_conf *c = zeq_config_srv(cmd->server);
    const char *err = ap_check_cmd_context(cmd, NOT_IN_DIR_CONTEXT);
    int b1 = zeq_config_protocol_bit(a1), b2 = a2 ? zeq_config_protocol_bit(a2)
                                                  : 0;

    (void)dc;
    if (err != NULL) {
        return err;
    }
    if (b1 == 0 || (a2 != NULL && b2 == 0)) {
        return apr_psprintf(cmd->pool, "%s: unknown protocol version '%s' "
                            "(the versions are 1 and 2)", cmd->cmd->name,
                            b1 == 0 ? a1 : a2);
    }
    c->protocols = b1 | b2;
    return NULL;
}

const char *zeq_config_set_require_psk(cmd_parms *cmd, void *dc, int flag)
{
    const char *err = ap_check_cmd_context(cmd, NOT_IN_DIR_CONTEXT);

    (void)dc;
    if (err != NULL) {
        return err;
    }
    zeq_config_srv(cmd->server)->require_psk = flag ? 1 : 0;
    return NULL;
}

static apr_status_t zeq_config_signer_free(void *data)
{
    zeq_kex_signer_free(data);
    return APR_SUCCESS;
}

const char *zeq_config_set_server_key(cmd_parms *cmd, void *dc,
                                      const char *arg)
{
    zeq_srv_conf *c = zeq_config_srv(cmd->server);
    const char *err = ap_check_cmd_context(cmd, NOT_IN_DIR_CONTEXT);
    const char *fpath, *note;
    zeq_secret *pem = NULL;
    zeq_kex_signer *signer;
    int rv;

    (void)dc;
    if (err != NULL) {
        return err;
    }
    if (strncmp(arg, "file:", 5) != 0 || arg[5] == '\0'
        || (fpath = ap_server_root_relative(cmd->temp_pool, arg + 5)) == NULL) {
        return apr_psprintf(cmd->pool, "%s: '%s' must be file:PATH of a PEM "
                            "EC P-256 private key", cmd->cmd->name, arg);
    }
    err = zeq_config_read_file(cmd, fpath, "key", &pem, &note);
    if (err != NULL) {
        return err;
    }
    zeq_config_note(cmd->pool, &c->key_notes, note);
    rv = zeq_kex_signer_load((const char *)pem->bytes, pem->len, &signer);
    zeq_config_secret_cleanse(pem);
    if (rv == ZEQ_ERR_VERSION) {
        return apr_psprintf(cmd->pool, "%s: '%s' is not an EC P-256 key (the "
                            "handshake signs with ECDSA P-256)",
                            cmd->cmd->name, fpath);
    }
    if (rv != ZEQ_OK) {
        return apr_psprintf(cmd->pool, "%s: '%s' holds no PEM private key",
                            cmd->cmd->name, fpath);
    }
    apr_pool_cleanup_register(cmd->pool, signer, zeq_config_signer_free,
                              apr_pool_cleanup_null);
    if (c->signers == NULL) {
        c->signers = apr_array_make(cmd->pool, 2, sizeof(zeq_kex_signer *));
    }
    APR_ARRAY_PUSH(c->signers, zeq_kex_signer *) = signer;
    return NULL;
}

/* The scope that binds a virtual host's sessions: HMAC-SHA256 keyed with
 * its secret (empty without one) of "zeq-e2e session scope" 0x00 NAME,
 * truncated, where NAME is ZeqE2ESessionScope or the host's own
 * "ServerName:port". A session made on one host is found on another only
 * when both have the same NAME and the same secret. */
static int zeq_config_scope_id(server_rec *s, zeq_srv_conf *c,
                               apr_pool_t *ptemp)
{
    static const char label[] = "zeq-e2e session scope";
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    const char *name = c->scope_name;
    static const unsigned char none = 0;
    unsigned char *msg;
    apr_size_t nlen;

    if (name == NULL) {
        apr_port_t port = s->port;
        if (port == 0 && s->addrs != NULL) {
            port = s->addrs->host_port;
        }
        name = apr_psprintf(ptemp, "%s:%u",
                            s->server_hostname ? s->server_hostname : "",
                            (unsigned)port);
    }
    nlen = strlen(name);
    msg = apr_palloc(ptemp, sizeof(label) + nlen);
    memcpy(msg, label, sizeof(label));            /* the label and 0x00 */
    memcpy(msg + sizeof(label), name, nlen);
    if (HMAC(EVP_sha256(), c->secret ? c->secret->bytes : &none,
             c->secret ? (int)c->secret->len : 0, msg, sizeof(label) + nlen,
             mac, &maclen) == NULL
        || maclen < ZEQ_SCOPE_ID_LEN) {
        return 0;
    }
    memcpy(c->scope_id, mac, ZEQ_SCOPE_ID_LEN);
    OPENSSL_cleanse(mac, sizeof(mac));
    return 1;
}

/* Where a server's secret came from, for the startup log (never the
 * secret itself). */
static const char *zeq_config_secret_origin(const zeq_srv_conf *c,
                                            const char *env_name)
{
    if (c->secret == NULL) {
        return "not configured (handshakes answer 503)";
    }
    switch (c->secret_origin) {
    case ZEQ_SECRET_LITERAL:
        return "configured literally";
    case ZEQ_SECRET_ENV:
        return "from the environment";
    case ZEQ_SECRET_FILE:
        return "from a file";
    default:
        return env_name ? env_name : "from the environment";
    }
}

/* The default secret of a main server without ZeqE2ESecret: the value of
 * ZEQ_E2E_SECRET, else ZEQ_HITE_SECRET (its name in *name), or NULL. */
static const char *zeq_config_default_env(const zeq_srv_conf *main_conf,
                                          const char **name)
{
    static const char *const names[] = {"ZEQ_E2E_SECRET", "ZEQ_HITE_SECRET",
                                        NULL};
    int i;

    if (main_conf->secret_origin != ZEQ_SECRET_NONE) {
        return NULL;
    }
    for (i = 0; names[i] != NULL; i++) {
        const char *v = getenv(names[i]);
        if (v != NULL && *v != '\0') {
            *name = names[i];
            return v;
        }
    }
    return NULL;
}

/* Logs the startup warnings of every server's directives, and of a short
 * default secret: by httpd -t (test_config) and at each start or restart
 * (post_config). Never a secret. */
static void zeq_config_warn(apr_pool_t *p, server_rec *s)
{
    const char *env_name = NULL;
    const char *env = zeq_config_default_env(zeq_config_srv(s), &env_name);
    const char *note;
    server_rec *vs;
    int i, k;

    for (vs = s; vs != NULL; vs = vs->next) {
        const zeq_srv_conf *c = zeq_config_srv(vs);
        const apr_array_header_t *lists[] = {c->secret_notes,
                                             c->record_key_notes,
                                             c->key_notes};
        /* A virtual host's are named after it (the main server's are the
         * configuration's top level). */
        const char *where = vs == s ? ""
            : apr_psprintf(p, " (virtual host %s:%u)",
                           vs->server_hostname ? vs->server_hostname : "*",
                           (unsigned)(vs->addrs ? vs->addrs->host_port
                                                : vs->port));
        for (k = 0; k < 3; k++) {
            for (i = 0; lists[k] != NULL && i < lists[k]->nelts; i++) {
                ap_log_error(APLOG_MARK, APLOG_WARNING, 0, vs, ZEQLOG(10006)
                             "%s%s", APR_ARRAY_IDX(lists[k], i, const char *),
                             where);
            }
        }
    }
    if (env != NULL
        && (note = zeq_config_short_secret(p, "ZeqE2ESecret (not set)",
                                           apr_psprintf(p, "of the "
                                                        "environment "
                                                        "variable %s",
                                                        env_name),
                                           strlen(env))) != NULL) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, ZEQLOG(10006) "%s",
                     note);
    }
}

static void zeq_config_test_config(apr_pool_t *pconf, server_rec *s)
{
    zeq_config_warn(pconf, s);
}

static int zeq_config_post_config(apr_pool_t *pconf, apr_pool_t *plog,
                                  apr_pool_t *ptemp, server_rec *s)
{
    zeq_srv_conf *main_conf = zeq_config_srv(s);
    const char *env_name = NULL;
    const char *env_value = zeq_config_default_env(main_conf, &env_name);
    server_rec *vs;

    (void)plog;
    if (ap_state_query(AP_SQ_MAIN_STATE) != AP_SQ_MS_CREATE_PRE_CONFIG) {
        zeq_config_warn(ptemp, s);
    }
    if (env_value != NULL) {
        /* The default secret comes from the environment at startup. */
        main_conf->secret = zeq_config_secret_new(pconf, env_value,
                                                  strlen(env_value));
        main_conf->secret_origin = ZEQ_SECRET_DEFAULT_ENV;
    }
    if (main_conf->cleanup_interval != ZEQ_UNSET
        && ap_state_query(AP_SQ_MAIN_STATE) != AP_SQ_MS_CREATE_PRE_CONFIG) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, ZEQLOG(10003)
                     "ZeqE2ECleanupInterval has no effect any more: the "
                     "session cache expires sessions itself; remove it");
    }
    for (vs = s; vs != NULL; vs = vs->next) {
        zeq_srv_conf *c = zeq_config_srv(vs);
        if (vs != s && c->secret_origin == ZEQ_SECRET_NONE) {
            c->secret = main_conf->secret;
            c->secret_origin = main_conf->secret_origin;
        }
        if (c->secret != NULL && !c->secret->has_psk
            && ap_state_query(AP_SQ_MAIN_STATE) != AP_SQ_MS_CREATE_PRE_CONFIG) {
            /* Once per secret (virtual hosts that inherit it share it). */
            if (zeq_kex_psk(c->secret->bytes, c->secret->len, c->secret->psk)
                != ZEQ_OK) {
                ap_log_error(APLOG_MARK, APLOG_EMERG, 0, vs, ZEQLOG(10004)
                             "cannot derive the pre-shared key of the "
                             "secret");
                return HTTP_INTERNAL_SERVER_ERROR;
            }
            c->secret->has_psk = 1;
        }
        if ((zeq_config_protocols(c) & ZEQ_PROTOCOL_V1) && c->secret == NULL) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, vs, ZEQLOG(10005)
                         "ZeqE2EProtocol offers version 1, which needs a "
                         "secret, and this server has none: version 1 "
                         "handshakes answer 503");
        }
        if (!zeq_config_scope_id(vs, c, ptemp)) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, 0, vs, ZEQLOG(10001)
                         "cannot derive the session scope");
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, vs, ZEQLOG(10002)
                     "%s:%u: secret %s, protocol%s%s, %d signing key(s), "
                     "session TTL %ds, handshake at %s, session scope %s",
                     vs->server_hostname ? vs->server_hostname : "*",
                     (unsigned)vs->port, zeq_config_secret_origin(c, env_name),
                     zeq_config_protocols(c) & ZEQ_PROTOCOL_V1 ? " 1" : "",
                     zeq_config_protocols(c) & ZEQ_PROTOCOL_V2 ? " 2" : "",
                     c->signers ? c->signers->nelts : 0,
                     zeq_config_ttl(c), zeq_config_handshake_path(c),
                     c->scope_name ? c->scope_name : "of its own");
    }
    return OK;
}

void zeq_config_register_hooks(apr_pool_t *p)
{
    (void)p;
    /* Before zeq_session's post_config, which needs the secrets. */
    ap_hook_post_config(zeq_config_post_config, NULL, NULL,
                        APR_HOOK_MIDDLE - 1);
    ap_hook_test_config(zeq_config_test_config, NULL, NULL, APR_HOOK_MIDDLE);
}
