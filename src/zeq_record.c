/* Sealed messages (see zeq_record.h). Pure C11 + OpenSSL libcrypto. */
#include "zeq_record.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

/* --- AAD ------------------------------------------------------------------ */

size_t zeq_record_aad_len(const char *label, const zeq_record_field *fields,
                          size_t n)
{
    size_t len = strlen(label), i;

    for (i = 0; i < n; i++) {
        len += 1 + fields[i].len;
    }
    return len;
}

size_t zeq_record_aad(unsigned char *out, size_t cap, const char *label,
                      const zeq_record_field *fields, size_t n)
{
    size_t len = zeq_record_aad_len(label, fields, n), o, i;

    if (len > cap) {
        return 0;
    }
    o = strlen(label);
    memcpy(out, label, o);
    for (i = 0; i < n; i++) {
        out[o++] = 0x00;
        if (fields[i].len > 0) {
            memcpy(out + o, fields[i].data, fields[i].len);
            o += fields[i].len;
        }
    }
    return o;
}

/* --- records ------------------------------------------------------------- */

static void zeq_record_put32(unsigned char *p, unsigned long v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static unsigned long zeq_record_get32(const unsigned char *p)
{
    return ((unsigned long)p[0] << 24) | ((unsigned long)p[1] << 16)
           | ((unsigned long)p[2] << 8) | (unsigned long)p[3];
}

/* Record i's nonce: nonce_base XOR (0^32 || uint64(i)). */
static void zeq_record_nonce(const unsigned char base[ZEQ_RECORD_NONCE_LEN],
                             unsigned long long i,
                             unsigned char out[ZEQ_RECORD_NONCE_LEN])
{
    int k;

    memcpy(out, base, ZEQ_RECORD_NONCE_LEN);
    for (k = 0; k < 8; k++) {
        out[ZEQ_RECORD_NONCE_LEN - 1 - k] ^= (unsigned char)(i >> (8 * k));
    }
}

unsigned long long zeq_record_sealed_len(unsigned long long n,
                                         size_t record_size)
{
    unsigned long long records = n == 0 ? 1 : (n + record_size - 1) / record_size;

    return ZEQ_RECORD_PREFIX_LEN + records * ZEQ_RECORD_OVERHEAD + n;
}

int zeq_record_sealer_init(zeq_record_sealer *s,
                           const unsigned char key[ZEQ_KEY_LEN],
                           const unsigned char *nonce_base,
                           const unsigned char *aad, size_t aadlen)
{
    memset(s, 0, sizeof(*s));
    s->evp = zeq_envelope_evp_acquire();
    s->aad = malloc(aadlen + ZEQ_RECORD_HEADER_LEN);
    if (s->evp == NULL || s->aad == NULL
        || EVP_EncryptInit_ex(s->evp, NULL, NULL, key, NULL) != 1
        || (nonce_base == NULL
            && zeq_envelope_random(s->nonce_base, ZEQ_RECORD_NONCE_LEN)
               != ZEQ_OK)) {
        zeq_record_sealer_free(s);
        return ZEQ_ERR_CRYPTO;
    }
    if (nonce_base != NULL) {
        memcpy(s->nonce_base, nonce_base, ZEQ_RECORD_NONCE_LEN);
    }
    memcpy(s->key, key, ZEQ_KEY_LEN);
    if (aadlen > 0) {
        memcpy(s->aad, aad, aadlen);
    }
    s->aadlen = aadlen;
    return ZEQ_OK;
}

void zeq_record_sealer_free(zeq_record_sealer *s)
{
    zeq_envelope_evp_release(s->evp);
    if (s->aad != NULL) {
        OPENSSL_cleanse(s->aad, s->aadlen);
        free(s->aad);
    }
    OPENSSL_cleanse(s, sizeof(*s));
}

void zeq_record_sealer_prefix(const zeq_record_sealer *s,
                              unsigned char out[ZEQ_RECORD_PREFIX_LEN])
{
    out[0] = ZEQ_RECORD_V2;
    memcpy(out + 1, s->nonce_base, ZEQ_RECORD_NONCE_LEN);
}

int zeq_record_seal(zeq_record_sealer *s, const unsigned char *in,
                    size_t len, int final, unsigned char *out)
{
    unsigned char nonce[ZEQ_RECORD_NONCE_LEN];
    int n, ok;

    if (s->done || s->evp == NULL || len > ZEQ_RECORD_MAX) {
        return ZEQ_ERR_BAD;
    }
    zeq_record_put32(out, (final ? ZEQ_RECORD_FINAL : 0) | (unsigned long)len);
    memcpy(s->aad + s->aadlen, out, ZEQ_RECORD_HEADER_LEN);
    zeq_record_nonce(s->nonce_base, s->index, nonce);
    ok = EVP_EncryptInit_ex(s->evp, NULL, NULL, NULL, nonce) == 1
         && EVP_EncryptUpdate(s->evp, NULL, &n, s->aad,
                              (int)(s->aadlen + ZEQ_RECORD_HEADER_LEN)) == 1
         && (len == 0
             || (EVP_EncryptUpdate(s->evp, out + ZEQ_RECORD_HEADER_LEN, &n,
                                   in, (int)len) == 1 && (size_t)n == len))
         && EVP_EncryptFinal_ex(s->evp, out + ZEQ_RECORD_HEADER_LEN + len,
                                &n) == 1
         && EVP_CIPHER_CTX_ctrl(s->evp, EVP_CTRL_GCM_GET_TAG,
                                ZEQ_RECORD_TAG_LEN,
                                out + ZEQ_RECORD_HEADER_LEN + len) == 1;
    if (!ok) {
        return ZEQ_ERR_CRYPTO;
    }
    s->index++;
    s->done = final;
    return ZEQ_OK;
}

int zeq_record_seal_message(const unsigned char key[ZEQ_KEY_LEN],
                            const unsigned char *nonce_base,
                            const unsigned char *aad, size_t aadlen,
                            const unsigned char *in, size_t len,
                            size_t record_size, unsigned char *out)
{
    zeq_record_sealer s;
    size_t done = 0;
    int rv;

    if (record_size == 0 || record_size > ZEQ_RECORD_MAX) {
        return ZEQ_ERR_BAD;
    }
    rv = zeq_record_sealer_init(&s, key, nonce_base, aad, aadlen);
    if (rv != ZEQ_OK) {
        return rv;
    }
    zeq_record_sealer_prefix(&s, out);
    out += ZEQ_RECORD_PREFIX_LEN;
    do {
        size_t n = len - done > record_size ? record_size : len - done;
        rv = zeq_record_seal(&s, in + done, n, done + n == len, out);
        out += ZEQ_RECORD_OVERHEAD + n;
        done += n;
    } while (rv == ZEQ_OK && done < len);
    zeq_record_sealer_free(&s);
    return rv;
}

/* --- the reader ----------------------------------------------------------- */

enum {
    ZEQ_RD_PREFIX,    /* v2: 0x02 || nonce_base; v1: iv || tag */
    ZEQ_RD_HEADER,    /* v2: a record header */
    ZEQ_RD_BODY,      /* v2: ciphertext || tag of the record; v1: stream */
    ZEQ_RD_DONE,      /* v2: after the final record */
    ZEQ_RD_FAILED
};

struct zeq_record_reader {
    int version;
    int state;
    int error;
    EVP_CIPHER_CTX *evp;
    unsigned char key[ZEQ_KEY_LEN];
    unsigned char nonce_base[ZEQ_RECORD_NONCE_LEN];
    unsigned char *aad;               /* message AAD || header */
    size_t aadlen;
    size_t max_record;
    unsigned long long index;
    size_t record_len;                /* of the record being read */
    int record_final;
    unsigned char *buf;               /* bytes not yet consumed */
    size_t len, cap;
    unsigned char *out;               /* one record's plaintext */
    size_t out_cap;
    zeq_record_emit emit;
    void *baton;
};

zeq_record_reader *zeq_record_reader_new(int version,
                                         const unsigned char key[ZEQ_KEY_LEN],
                                         const unsigned char *aad,
                                         size_t aadlen, size_t max_record,
                                         zeq_record_emit emit, void *baton)
{
    zeq_record_reader *rd;

    if ((version != 1 && version != 2) || (version == 1 && aad != NULL)
        || max_record > ZEQ_RECORD_MAX) {
        return NULL;
    }
    rd = calloc(1, sizeof(*rd));
    if (rd == NULL) {
        return NULL;
    }
    rd->version = version;
    rd->max_record = max_record;
    rd->emit = emit;
    rd->baton = baton;
    memcpy(rd->key, key, ZEQ_KEY_LEN);
    rd->evp = zeq_envelope_evp_acquire();
    rd->aad = malloc(aadlen + ZEQ_RECORD_HEADER_LEN);
    /* v2: the key schedule once; each record sets its own nonce. */
    if (rd->evp == NULL || rd->aad == NULL
        || (version == 2
            && EVP_DecryptInit_ex(rd->evp, NULL, NULL, key, NULL) != 1)) {
        zeq_record_reader_free(rd);
        return NULL;
    }
    if (aadlen > 0) {
        memcpy(rd->aad, aad, aadlen);
    }
    rd->aadlen = aadlen;
    return rd;
}

void zeq_record_reader_free(zeq_record_reader *rd)
{
    if (rd == NULL) {
        return;
    }
    zeq_envelope_evp_release(rd->evp);
    if (rd->aad != NULL) {
        OPENSSL_cleanse(rd->aad, rd->aadlen + ZEQ_RECORD_HEADER_LEN);
        free(rd->aad);
    }
    if (rd->buf != NULL) {
        OPENSSL_cleanse(rd->buf, rd->cap);
        free(rd->buf);
    }
    if (rd->out != NULL) {
        OPENSSL_cleanse(rd->out, rd->out_cap);
        free(rd->out);
    }
    OPENSSL_cleanse(rd, sizeof(*rd));
    free(rd);
}

static int zeq_record_fail(zeq_record_reader *rd, int error)
{
    rd->state = ZEQ_RD_FAILED;
    rd->error = error;
    return error;
}

/* Makes room for cap bytes in *buf. */
static int zeq_record_reserve(unsigned char **buf, size_t *cap, size_t need)
{
    unsigned char *nb;
    size_t ncap = *cap ? *cap : 256;

    if (need <= *cap) {
        return 1;
    }
    while (ncap < need) {
        ncap *= 2;
    }
    nb = malloc(ncap);
    if (nb == NULL) {
        return 0;
    }
    if (*buf != NULL) {
        memcpy(nb, *buf, *cap);
        OPENSSL_cleanse(*buf, *cap);
        free(*buf);
    }
    *buf = nb;
    *cap = ncap;
    return 1;
}

/* v1: once iv || tag are in, decrypt as the bytes come. */
static int zeq_record_feed_v1(zeq_record_reader *rd, const unsigned char *data,
                              size_t len)
{
    int n;

    while (len > 0) {
        if (rd->state == ZEQ_RD_PREFIX) {
            size_t take = ZEQ_ENVELOPE_OVERHEAD - rd->len;
            if (take > len) {
                take = len;
            }
            if (!zeq_record_reserve(&rd->buf, &rd->cap, ZEQ_ENVELOPE_OVERHEAD)) {
                return zeq_record_fail(rd, ZEQ_ERR_CRYPTO);
            }
            memcpy(rd->buf + rd->len, data, take);
            rd->len += take;
            data += take;
            len -= take;
            if (rd->len == ZEQ_ENVELOPE_OVERHEAD) {
                if (EVP_DecryptInit_ex(rd->evp, NULL, NULL, rd->key,
                                       rd->buf) != 1
                    || EVP_CIPHER_CTX_ctrl(rd->evp, EVP_CTRL_GCM_SET_TAG,
                                           ZEQ_ENVELOPE_TAG_LEN,
                                           rd->buf + ZEQ_ENVELOPE_IV_LEN) != 1) {
                    return zeq_record_fail(rd, ZEQ_ERR_CRYPTO);
                }
                rd->state = ZEQ_RD_BODY;
            }
            continue;
        }
        {
            size_t chunk = len > 65536 ? 65536 : len;
            if (!zeq_record_reserve(&rd->out, &rd->out_cap, chunk)
                || EVP_DecryptUpdate(rd->evp, rd->out, &n, data,
                                     (int)chunk) != 1
                || (size_t)n != chunk) {
                return zeq_record_fail(rd, ZEQ_ERR_CRYPTO);
            }
            if (rd->emit != NULL && rd->emit(rd->baton, rd->out, chunk) != 0) {
                return zeq_record_fail(rd, ZEQ_ERR_CRYPTO);
            }
            data += chunk;
            len -= chunk;
        }
    }
    return ZEQ_OK;
}

/* v2: opens every complete record buffered. */
static int zeq_record_drain_v2(zeq_record_reader *rd)
{
    size_t at = 0;
    int rv = ZEQ_OK;

    for (;;) {
        size_t avail = rd->len - at;
        const unsigned char *p = rd->buf + at;

        if (rd->state == ZEQ_RD_PREFIX) {
            if (avail < ZEQ_RECORD_PREFIX_LEN) {
                break;
            }
            if (p[0] != ZEQ_RECORD_V2) {
                rv = zeq_record_fail(rd, ZEQ_ERR_BAD);
                break;
            }
            memcpy(rd->nonce_base, p + 1, ZEQ_RECORD_NONCE_LEN);
            at += ZEQ_RECORD_PREFIX_LEN;
            rd->state = ZEQ_RD_HEADER;
        }
        else if (rd->state == ZEQ_RD_HEADER) {
            unsigned long h;
            if (avail < ZEQ_RECORD_HEADER_LEN) {
                break;
            }
            h = zeq_record_get32(p);
            rd->record_final = (h & ZEQ_RECORD_FINAL) != 0;
            rd->record_len = (size_t)(h & 0xffffffu);
            if ((h & 0x7f000000u) != 0 || rd->record_len > rd->max_record) {
                rv = zeq_record_fail(rd, ZEQ_ERR_BAD);
                break;
            }
            memcpy(rd->aad + rd->aadlen, p, ZEQ_RECORD_HEADER_LEN);
            at += ZEQ_RECORD_HEADER_LEN;
            rd->state = ZEQ_RD_BODY;
        }
        else if (rd->state == ZEQ_RD_BODY) {
            unsigned char nonce[ZEQ_RECORD_NONCE_LEN];
            size_t L = rd->record_len;
            int n, ok;
            if (avail < L + ZEQ_RECORD_TAG_LEN) {
                break;
            }
            if (!zeq_record_reserve(&rd->out, &rd->out_cap, L ? L : 1)) {
                rv = zeq_record_fail(rd, ZEQ_ERR_CRYPTO);
                break;
            }
            zeq_record_nonce(rd->nonce_base, rd->index, nonce);
            ok = EVP_DecryptInit_ex(rd->evp, NULL, NULL, NULL, nonce) == 1
                 && EVP_DecryptUpdate(rd->evp, NULL, &n, rd->aad,
                                      (int)(rd->aadlen
                                            + ZEQ_RECORD_HEADER_LEN)) == 1
                 && (L == 0
                     || (EVP_DecryptUpdate(rd->evp, rd->out, &n, p, (int)L) == 1
                         && (size_t)n == L))
                 && EVP_CIPHER_CTX_ctrl(rd->evp, EVP_CTRL_GCM_SET_TAG,
                                        ZEQ_RECORD_TAG_LEN,
                                        (void *)(p + L)) == 1;
            if (!ok) {
                rv = zeq_record_fail(rd, ZEQ_ERR_CRYPTO);
                break;
            }
            if (EVP_DecryptFinal_ex(rd->evp, rd->out + L, &n) != 1) {
                OPENSSL_cleanse(rd->out, L);
                rv = zeq_record_fail(rd, ZEQ_ERR_AUTH);
                break;
            }
            at += L + ZEQ_RECORD_TAG_LEN;
            rd->index++;
            if (L > 0 && rd->emit != NULL && rd->emit(rd->baton, rd->out, L) != 0) {
                rv = zeq_record_fail(rd, ZEQ_ERR_CRYPTO);
                break;
            }
            OPENSSL_cleanse(rd->out, L);
            rd->state = rd->record_final ? ZEQ_RD_DONE : ZEQ_RD_HEADER;
        }
        else {   /* ZEQ_RD_DONE */
            if (avail > 0) {
                rv = zeq_record_fail(rd, ZEQ_ERR_BAD);   /* bytes after it */
            }
            break;
        }
    }
    if (at > 0) {
        OPENSSL_cleanse(rd->buf, at);
        memmove(rd->buf, rd->buf + at, rd->len - at);
        rd->len -= at;
    }
    return rv;
}

int zeq_record_reader_feed(zeq_record_reader *rd, const unsigned char *data,
                           size_t len)
{
    if (rd->state == ZEQ_RD_FAILED) {
        return rd->error;
    }
    if (rd->version == 1) {
        return zeq_record_feed_v1(rd, data, len);
    }
    if (len == 0) {
        return ZEQ_OK;
    }
    if (rd->state == ZEQ_RD_DONE) {
        return zeq_record_fail(rd, ZEQ_ERR_BAD);
    }
    if (!zeq_record_reserve(&rd->buf, &rd->cap, rd->len + len)) {
        return zeq_record_fail(rd, ZEQ_ERR_CRYPTO);
    }
    memcpy(rd->buf + rd->len, data, len);
    rd->len += len;
    return zeq_record_drain_v2(rd);
}

int zeq_record_reader_finish(zeq_record_reader *rd)
{
    int n;

    if (rd->state == ZEQ_RD_FAILED) {
        return rd->error;
    }
    if (rd->version == 1) {
        if (rd->state != ZEQ_RD_BODY) {
            return zeq_record_fail(rd, ZEQ_ERR_SHORT);
        }
        if (!zeq_record_reserve(&rd->out, &rd->out_cap, 16)
            || EVP_DecryptFinal_ex(rd->evp, rd->out, &n) != 1) {
            return zeq_record_fail(rd, ZEQ_ERR_AUTH);
        }
        rd->state = ZEQ_RD_DONE;
        return ZEQ_OK;
    }
    return rd->state == ZEQ_RD_DONE ? ZEQ_OK : zeq_record_fail(rd, ZEQ_ERR_SHORT);
}

typedef struct {
    unsigned char *out;
    size_t len, cap;
} zeq_record_sink;

static int zeq_record_to_buffer(void *baton, const unsigned char *data,
                                size_t len)
{
    zeq_record_sink *sink = baton;

    if (len > sink->cap - sink->len) {
        return 1;
    }
    memcpy(sink->out + sink->len, data, len);
    sink->len += len;
    return 0;
}

int zeq_record_open_message(int version, const unsigned char key[ZEQ_KEY_LEN],
                            const unsigned char *aad, size_t aadlen,
                            const unsigned char *in, size_t inlen,
                            unsigned char *out, size_t *outlen)
{
    zeq_record_sink sink = {out, 0, inlen};
    zeq_record_reader *rd = zeq_record_reader_new(version, key, aad, aadlen,
                                                  ZEQ_RECORD_MAX,
                                                  zeq_record_to_buffer, &sink);
    int rv;

    if (rd == NULL) {
        return ZEQ_ERR_CRYPTO;
    }
    rv = zeq_record_reader_feed(rd, in, inlen);
    if (rv == ZEQ_OK) {
        rv = zeq_record_reader_finish(rd);
    }
    zeq_record_reader_free(rd);
    if (rv != ZEQ_OK) {
        OPENSSL_cleanse(out, sink.len);
        return rv;
    }
    *outlen = sink.len;
    return ZEQ_OK;
}
