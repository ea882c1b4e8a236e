/* zeqload: the load generator of `make bench`. It speaks the protocol of
 * docs/PROTOCOL.md itself (v1: PBKDF2 handshake and envelopes; v2: ECDH
 * P-256 + HKDF handshakes, plain, pre-shared key and signed, sequence
 * numbers, seals, sealed records) over HTTP/1.1 keep-alive connections
 * driven by one epoll loop, with OpenSSL only: nothing of the module's own
 * code. Every answer is checked (status, headers, the decrypted body
 * against what was sent or the file served); a wrong answer ends the run
 * with exit status 2. It prints one line of key=value figures.
 *
 *   zeqload run  [options]   load: -k plain|v1|v2, -m GET|POST, ...
 *   zeqload hs   [options]   handshakes: -x v1|v2|psk|sig; -A counts the
 *                            guard's refusals (429 e2e_rate_limited, 503
 *                            e2e_busy, each with Retry-After) instead of
 *                            failing on them
 *   -B ADDR                  connect from this local address (127.0.0.2:
 *                            another client for the server)
 *   zeqload aes              one core's AES-256-GCM (16 KiB records, 1 MiB)
 *   zeqload kdf              one PBKDF2-HMAC-SHA256 of 100,000 iterations
 *   zeqload ecdh [-P pem]    one P-256 key generation + ECDH + HKDF (+ sign)
 *   zeqload gen FILE BYTES   a file of pseudo-random bytes
 *
 * Handshake runs derive the keys of one answer in -V (and use the session
 * for one sealed GET that must open): the client's own PBKDF2 or ECDH for
 * every answer would cost it as much CPU as the server, on the same cores.
 * Each answer is still checked field by field. v2 handshakes take their
 * client key from a pool of 64 fresh pairs in turn (the server's cost does
 * not depend on it; its own key is fresh for each). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#define MEDIA "application/x-zeq-e2e"
#define INNER "application/octet-stream"
#define REC 16384
#define MAXREC 1048576
#define RBUF (256 * 1024)
#define POOL 64

/* --- small helpers ---------------------------------------------------- */

static void die(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fprintf(stderr, "zeqload: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

/* A wrong answer: the run fails. */
static void wrong(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fprintf(stderr, "zeqload: WRONG ANSWER: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);

    if (p == NULL) {
        die("out of memory (%zu bytes)", n);
    }
    return p;
}

static void rnd(unsigned char *p, size_t n)
{
    if (RAND_bytes(p, (int)n) != 1) {
        die("RAND_bytes failed");
    }
}

static const char b64a[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static size_t b64url(const unsigned char *in, size_t n, char *out)
{
    size_t i, o = 0;

    for (i = 0; i + 2 < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
        out[o++] = b64a[v >> 18];
        out[o++] = b64a[(v >> 12) & 63];
        out[o++] = b64a[(v >> 6) & 63];
        out[o++] = b64a[v & 63];
    }
    if (n - i == 1) {
        unsigned v = (unsigned)in[i] << 16;
        out[o++] = b64a[v >> 18];
        out[o++] = b64a[(v >> 12) & 63];
    }
    else if (n - i == 2) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8;
        out[o++] = b64a[v >> 18];
        out[o++] = b64a[(v >> 12) & 63];
        out[o++] = b64a[(v >> 6) & 63];
    }
    out[o] = '\0';
    return o;
}

/* -1 on a character outside the alphabet or a bad length. */
static long unb64url(const char *in, size_t n, unsigned char *out, size_t cap)
{
    size_t i, o = 0;
    unsigned acc = 0;
    int bits = 0;

    if (n % 4 == 1) {
        return -1;
    }
    for (i = 0; i < n; i++) {
        const char *p = memchr(b64a, in[i], 64);
        if (p == NULL || in[i] == '\0') {
            return -1;
        }
        acc = acc << 6 | (unsigned)(p - b64a);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o >= cap) {
                return -1;
            }
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    return (long)o;
}

static void hex(const unsigned char *in, size_t n, char *out)
{
    static const char d[] = "0123456789abcdef";
    size_t i;

    for (i = 0; i < n; i++) {
        out[2 * i] = d[in[i] >> 4];
        out[2 * i + 1] = d[in[i] & 15];
    }
    out[2 * n] = '\0';
}

static int unhex(const char *in, size_t n, unsigned char *out)
{
    size_t i;

    for (i = 0; i < n; i++) {
        int hi = in[2 * i], lo = in[2 * i + 1], a, b;
        a = hi >= '0' && hi <= '9' ? hi - '0' : hi >= 'a' && hi <= 'f'
            ? hi - 'a' + 10 : hi >= 'A' && hi <= 'F' ? hi - 'A' + 10 : -1;
        b = lo >= '0' && lo <= '9' ? lo - '0' : lo >= 'a' && lo <= 'f'
            ? lo - 'a' + 10 : lo >= 'A' && lo <= 'F' ? lo - 'A' + 10 : -1;
        if (a < 0 || b < 0) {
            return 0;
        }
        out[i] = (unsigned char)(a << 4 | b);
    }
    return 1;
}

/* The string value of "name" in a flat JSON object (the server's answers
 * are cJSON's unformatted output); NULL when absent or not a string. */
static const char *json_str(const char *json, const char *name, size_t *len)
{
    char key[64];
    const char *p, *q;

    snprintf(key, sizeof(key), "\"%s\":", name);
    p = strstr(json, key);
    if (p == NULL) {
        return NULL;
    }
    p += strlen(key);
    while (*p == ' ') {
        p++;
    }
    if (*p != '"') {
        return NULL;
    }
    q = strchr(++p, '"');
    if (q == NULL) {
        return NULL;
    }
    *len = (size_t)(q - p);
    return p;
}

static long json_int(const char *json, const char *name)
{
    char key[64];
    const char *p;

    snprintf(key, sizeof(key), "\"%s\":", name);
    p = strstr(json, key);
    return p ? strtol(p + strlen(key), NULL, 10) : -1;
}

/* --- crypto ------------------------------------------------------------ */

static EVP_CIPHER *gcm;

static void hmac256(const unsigned char *key, size_t klen,
                    const unsigned char *a, size_t alen,
                    const unsigned char *b, size_t blen, unsigned char out[32])
{
    unsigned char msg[256];
    unsigned int n = 32;

    if (alen + blen > sizeof(msg)) {
        die("hmac input too long");
    }
    memcpy(msg, a, alen);
    memcpy(msg + alen, b, blen);
    if (HMAC(EVP_sha256(), key, (int)klen, msg, alen + blen, out, &n) == NULL) {
        die("HMAC failed");
    }
}

/* RFC 5869 with one block of output (32 bytes). */
static void hkdf32(const unsigned char *ikm, size_t ikmlen,
                   const unsigned char *salt, size_t saltlen,
                   const char *info, unsigned char out[32])
{
    unsigned char prk[32], one = 1;

    hmac256(salt, saltlen, ikm, ikmlen, NULL, 0, prk);
    hmac256(prk, 32, (const unsigned char *)info, strlen(info), &one, 1, out);
    OPENSSL_cleanse(prk, sizeof(prk));
}

static void pbkdf2(const char *secret, const unsigned char *salt,
                   size_t saltlen, unsigned char out[32])
{
    if (PKCS5_PBKDF2_HMAC(secret, (int)strlen(secret), salt, (int)saltlen,
                          100000, EVP_sha256(), 32, out) != 1) {
        die("PBKDF2 failed");
    }
}

/* AES-256-GCM of one message with a 12-byte nonce: ct (and the tag). */
static void gcm_seal(EVP_CIPHER_CTX *c, const unsigned char *key,
                     const unsigned char *iv, const unsigned char *aad,
                     size_t aadlen, const unsigned char *pt, size_t n,
                     unsigned char *ct, unsigned char tag[16])
{
    int l;

    if (EVP_EncryptInit_ex(c, gcm, NULL, key, iv) != 1
        || (aadlen && EVP_EncryptUpdate(c, NULL, &l, aad, (int)aadlen) != 1)
        || (n && EVP_EncryptUpdate(c, ct, &l, pt, (int)n) != 1)
        || EVP_EncryptFinal_ex(c, ct + n, &l) != 1
        || EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, tag) != 1) {
        die("AES-GCM seal failed");
    }
}

static int gcm_open(EVP_CIPHER_CTX *c, const unsigned char *key,
                    const unsigned char *iv, const unsigned char *aad,
                    size_t aadlen, const unsigned char *ct, size_t n,
                    const unsigned char *tag, unsigned char *pt)
{
    int l;

    if (EVP_DecryptInit_ex(c, gcm, NULL, key, iv) != 1
        || (aadlen && EVP_DecryptUpdate(c, NULL, &l, aad, (int)aadlen) != 1)
        || (n && EVP_DecryptUpdate(c, pt, &l, ct, (int)n) != 1)
        || EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, 16, (void *)tag) != 1) {
        die("AES-GCM open failed");
    }
    return EVP_DecryptFinal_ex(c, pt + n, &l) == 1;
}

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static void rec_nonce(const unsigned char *base, uint64_t i, unsigned char *out)
{
    int k;

    memcpy(out, base, 12);
    for (k = 0; k < 8; k++) {
        out[11 - k] ^= (unsigned char)(i >> (8 * k));
    }
}

static size_t sealed_len(size_t n)
{
    size_t recs = n == 0 ? 1 : (n + REC - 1) / REC;

    return 13 + 20 * recs + n;
}

/* A v2 sealed message of pt in 16 KiB records (PROTOCOL.md 18.5). */
static size_t v2_seal(EVP_CIPHER_CTX *c, const unsigned char *key,
                      const unsigned char *aad, size_t aadlen,
                      const unsigned char *pt, size_t n, unsigned char *out)
{
    unsigned char base[12], nonce[12], a[512];
    size_t done = 0, o = 13;
    uint64_t i = 0;

    if (aadlen + 4 > sizeof(a)) {
        die("AAD too long");
    }
    rnd(base, 12);
    out[0] = 0x02;
    memcpy(out + 1, base, 12);
    memcpy(a, aad, aadlen);
    do {
        size_t l = n - done > REC ? REC : n - done;
        int final = done + l == n;
        put32(out + o, (final ? 0x80000000u : 0) | (uint32_t)l);
        memcpy(a + aadlen, out + o, 4);
        rec_nonce(base, i++, nonce);
        gcm_seal(c, key, nonce, a, aadlen + 4, pt + done, l, out + o + 4,
                 out + o + 4 + l);
        o += 20 + l;
        done += l;
    } while (done < n);
    return o;
}

/* label 0x00 f1 0x00 f2 ... */
static size_t aad_build(unsigned char *out, size_t cap, const char *label,
                        const char **f, int n)
{
    size_t o = strlen(label);
    int i;

    memcpy(out, label, o);
    for (i = 0; i < n; i++) {
        size_t l = strlen(f[i]);
        if (o + 1 + l > cap) {
            die("AAD too long");
        }
        out[o++] = 0;
        memcpy(out + o, f[i], l);
        o += l;
    }
    return o;
}

/* --- configuration ------------------------------------------------------ */

enum { K_PLAIN, K_V1, K_V2 };
enum { X_NONE, X_V1, X_V2, X_PSK, X_SIG };

static struct {
    const char *host;
    int port;
    int conns;
    double duration;
    long total;             /* requests, 0: by duration */
    int kind;
    int post;
    const char *path;
    size_t body;
    const char *file;       /* what a GET must return */
    double rate;            /* open loop, 0: closed */
    int hs;                 /* X_* */
    const char *secret;
    const char *pubkey;
    long verify_every;
    const char *hs_path;
    int sessions;
    const char *verify_path;   /* the GET after a sampled handshake */
    const char *verify_file;
    const char *bind;          /* the local address, NULL: any */
    int refusals;              /* count 429 and 503 of the guard */
} cfg = {"127.0.0.1", 0, 16, 5.0, 0, K_PLAIN, 0, "/", 0, NULL, 0, X_NONE,
         NULL, NULL, 32, "/api/e2e/handshake", 32, NULL, NULL, NULL, 0};

static const unsigned char *expect;   /* the file, mapped */
static size_t expect_len;
static unsigned char psk[32];
static EVP_PKEY *server_pub;
static unsigned char server_signer[32];

/* The client key pool of v2 handshakes. */
static EVP_PKEY *pool[POOL];
static unsigned char pool_point[POOL][65];
static int pool_next;

static void point_of(EVP_PKEY *k, unsigned char out[65])
{
    size_t len = 0;

    if (EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY,
                                        out, 65, &len) != 1 || len != 65) {
        die("cannot encode a P-256 point");
    }
}

static EVP_PKEY *peer_of(const unsigned char point[65])
{
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    EVP_PKEY *pk = NULL;

    if (bld == NULL || ctx == NULL
        || !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
                                            "P-256", 0)
        || !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY,
                                             point, 65)
        || (params = OSSL_PARAM_BLD_to_param(bld)) == NULL) {
        die("OSSL_PARAM_BLD failed");
    }
    if (EVP_PKEY_fromdata_init(ctx) != 1
        || EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, params) != 1) {
        pk = NULL;
    }
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    EVP_PKEY_CTX_free(ctx);
    return pk;
}

/* Z = ECDH(mine, peer). */
static int ecdh_pk(EVP_PKEY *mine, EVP_PKEY *peer, unsigned char z[32])
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, mine, NULL);
    size_t len = 32;
    int ok = ctx != NULL && EVP_PKEY_derive_init(ctx) == 1
             && EVP_PKEY_derive_set_peer(ctx, peer) == 1
             && EVP_PKEY_derive(ctx, z, &len) == 1 && len == 32;

    EVP_PKEY_CTX_free(ctx);
    return ok;
}

/* Z = ECDH(mine, peer point); 0 when the point is not valid. */
static int ecdh(EVP_PKEY *mine, const unsigned char point[65],
                unsigned char z[32])
{
    EVP_PKEY *peer = peer_of(point);
    int ok = peer != NULL && ecdh_pk(mine, peer, z);

    EVP_PKEY_free(peer);
    return ok;
}

/* ECDSA P-256 r || s over msg with the server's public key. */
static int sig_verify(const unsigned char *sig, const unsigned char *msg,
                      size_t len)
{
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, 32, NULL), *s = BN_bin2bn(sig + 32, 32, NULL);
    unsigned char *der = NULL;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int dl, ok;

    if (es == NULL || r == NULL || s == NULL || md == NULL
        || ECDSA_SIG_set0(es, r, s) != 1) {
        die("ECDSA_SIG failed");
    }
    dl = i2d_ECDSA_SIG(es, &der);
    ok = dl > 0
         && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, server_pub) == 1
         && EVP_DigestVerify(md, der, (size_t)dl, msg, len) == 1;
    OPENSSL_free(der);
    ECDSA_SIG_free(es);
    EVP_MD_CTX_free(md);
    return ok;
}

/* --- results ------------------------------------------------------------ */

static float *lat;          /* microseconds */
static size_t nlat, caplat;
static long done_reqs, done_hs, verified_hs;
static unsigned long long rx_bytes, body_bytes;
static double t_start, t_end;
static int running;         /* the measured window is open */

static void record(double us)
{
    if (nlat == caplat) {
        caplat = caplat ? caplat * 2 : 65536;
        lat = realloc(lat, caplat * sizeof(*lat));
        if (lat == NULL) {
            die("out of memory");
        }
    }
    lat[nlat++] = (float)us;
}

static int cmpf(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;

    return x < y ? -1 : x > y;
}

static double pct(double p)
{
    size_t i;

    if (nlat == 0) {
        return 0;
    }
    i = (size_t)ceil(p / 100.0 * (double)nlat);
    if (i > 0) {
        i--;
    }
    if (i >= nlat) {
        i = nlat - 1;
    }
    return lat[i];
}

/* --- sessions ------------------------------------------------------------ */

typedef struct {
    int version;
    int ready;
    char sid[132];
    unsigned char c2s[32], s2c[32];
    uint64_t seq;
} session;

static session *sessions;

/* --- connections ---------------------------------------------------------- */

enum { R_DATA, R_HS, R_VERIFY };
enum { P_HEAD, P_BODY, P_CHUNK_SIZE, P_CHUNK_DATA, P_CHUNK_CRLF, P_TRAILER,
       P_DONE };
enum { B_PLAIN, B_V1, B_V2, B_JSON };

typedef struct conn {
    int fd;
    int id;
    int busy;
    int connected;
    session *s;              /* the session of data requests */
    session hs;              /* a handshake's own session */
    int req;                 /* R_* */
    double t_sched, t_sent;
    /* request */
    char head[2048];
    size_t headlen, headoff;
    unsigned char *body;     /* what is sent */
    size_t bodylen, bodyoff, bodycap;
    unsigned char *plain;    /* a POST's plaintext: what must come back */
    size_t plainlen;
    /* handshake request */
    unsigned char cn[32];
    int pool_i;
    uint64_t rseq;           /* the number the answer binds */
    int out_armed;
    int refused;             /* 429 or 503 of the guard (-A) */
    int has_retry;           /* ... with Retry-After */
    long served;             /* answers on this connection */
    int retrying;
    /* response */
    unsigned char *rbuf;
    size_t rlen;
    int pstate;
    int status;
    long long clen;          /* -1: none */
    int chunked;
    int close_after;
    long long chunk_left;
    char ctype[128], xctype[128], xcenc[64], seal[128];
    int has_xctype, has_xcenc, has_seal;
    /* body check */
    int btype;
    const unsigned char *want;    /* the plaintext expected */
    size_t wantlen;
    size_t got;              /* plaintext bytes checked */
    unsigned long long bodyin;    /* body bytes received */
    const unsigned char *key;
    unsigned char head28[28];
    size_t head28n;
    unsigned char *rec;      /* v2: the record being read */
    size_t recn, reccap;
    size_t reclen;           /* its plaintext length; -1 before header */
    int recfinal, rechave, v2done;
    uint64_t recidx;
    unsigned char base[12];
    unsigned char aad[600];
    size_t aadlen;
    unsigned char *ptbuf;
    size_t ptcap;
    char json[4200];
    size_t jsonlen;
    EVP_CIPHER_CTX *cipher;
} conn;

static conn *conns;
static int ep;
static struct sockaddr_in addr, local;
static long refused_429, refused_503;
static long next_id;            /* POST stamp */
static double next_send;        /* open loop */
static long sent_reqs;
static long retries;
static long hs_seen;             /* handshake answers, counted or not */
static int setup_phase;
static int draining;           /* after the end: verifying GETs only */

static void conn_connect(conn *c)
{
    int one = 1;
    struct epoll_event ev;

    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        die("socket: %s", strerror(errno));
    }
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (cfg.bind != NULL
        && bind(c->fd, (struct sockaddr *)&local, sizeof(local)) != 0) {
        die("bind to %s: %s", cfg.bind, strerror(errno));
    }
    if (connect(c->fd, (struct sockaddr *)&addr, sizeof(addr)) != 0
        && errno != EINPROGRESS) {
        die("connect to %s:%d: %s", cfg.host, cfg.port, strerror(errno));
    }
    ev.events = EPOLLIN | EPOLLOUT;
    ev.data.ptr = c;
    c->out_armed = 1;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
        die("epoll_ctl: %s", strerror(errno));
    }
    c->connected = 1;
}

static void conn_close(conn *c)
{
    if (c->fd >= 0) {
        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    c->fd = -1;
    c->connected = 0;
}

static void want_out(conn *c, int on)
{
    struct epoll_event ev;

    if (c->out_armed == on) {
        return;
    }
    c->out_armed = on;
    ev.events = EPOLLIN | (on ? EPOLLOUT : 0);
    ev.data.ptr = c;
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void body_reserve(conn *c, size_t n)
{
    if (n > c->bodycap) {
        free(c->body);
        c->body = xmalloc(n);
        c->bodycap = n;
    }
}

static size_t head_add(conn *c, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(c->head + c->headlen, sizeof(c->head) - c->headlen, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(c->head) - c->headlen) {
        die("request head too long");
    }
    c->headlen += (size_t)n;
    return c->headlen;
}

/* The request AAD of v2 (PROTOCOL.md 18.6). */
static size_t req_aad(const session *s, uint64_t seq, const char *method,
                      const char *target, const char *inner,
                      unsigned char *out, size_t cap)
{
    char sq[24];
    const char *f[5];

    snprintf(sq, sizeof(sq), "%llu", (unsigned long long)seq);
    f[0] = s->sid;
    f[1] = sq;
    f[2] = method;
    f[3] = target;
    f[4] = inner;
    return aad_build(out, cap, "zeq-e2e/2 request", f, 5);
}

/* A data request (or the verifying GET of a sampled handshake) on the
 * session s. */
static void build_data(conn *c, session *s, int post, const char *path,
                       const unsigned char *want, size_t wantlen)
{
    unsigned char aad[600];
    size_t aadlen;
    uint64_t seq = 0;

    c->headlen = c->headoff = 0;
    c->bodylen = c->bodyoff = 0;
    c->want = want;
    c->wantlen = wantlen;
    if (s != NULL && s->version == 2) {
        seq = s->seq++;
    }
    head_add(c, "%s %s HTTP/1.1\r\nHost: %s:%d\r\n", post ? "POST" : "GET",
             path, cfg.host, cfg.port);
    if (s == NULL) {
        c->btype = B_PLAIN;
        if (post) {
            head_add(c, "Content-Type: " INNER "\r\nContent-Length: %zu\r\n",
                     c->plainlen);
            c->body = NULL;
        }
        head_add(c, "\r\n");
        return;
    }
    c->key = s->s2c;
    head_add(c, "X-E2E-Session: %s\r\nAccept: " MEDIA "\r\n", s->sid);
    if (s->version == 1) {
        c->btype = B_V1;
        if (post) {
            size_t n = c->plainlen;
            body_reserve(c, n + 28);
            rnd(c->body, 12);
            gcm_seal(c->cipher, s->c2s, c->body, NULL, 0, c->plain, n,
                     c->body + 28, c->body + 12);
            c->bodylen = n + 28;
            head_add(c, "Content-Type: " MEDIA "\r\nX-E2E-Content-Type: " INNER
                     "\r\nContent-Length: %zu\r\n", c->bodylen);
        }
        head_add(c, "\r\n");
        return;
    }
    c->btype = B_V2;
    head_add(c, "X-E2E-Seq: %llu\r\n", (unsigned long long)seq);
    if (post) {
        size_t n = c->plainlen;
        aadlen = req_aad(s, seq, "POST", path, INNER, aad, sizeof(aad));
        body_reserve(c, sealed_len(n));
        c->bodylen = v2_seal(c->cipher, s->c2s, aad, aadlen, c->plain, n,
                             c->body);
        head_add(c, "Content-Type: " MEDIA "\r\nX-E2E-Content-Type: " INNER
                 "\r\nContent-Length: %zu\r\n", c->bodylen);
    }
    else {
        unsigned char msg[33];
        char b64[64];
        aadlen = req_aad(s, seq, "GET", path, "", aad, sizeof(aad));
        v2_seal(c->cipher, s->c2s, aad, aadlen, NULL, 0, msg);
        b64url(msg, 33, b64);
        head_add(c, "X-E2E-Seal: %s\r\n", b64);
    }
    /* The answer binds the same number. */
    c->rseq = seq;
    head_add(c, "\r\n");
}

static void build_hs(conn *c)
{
    char cn[65], key[100], json[400];
    int n;

    rnd(c->cn, 32);
    hex(c->cn, 32, cn);
    if (cfg.hs == X_V1) {
        n = snprintf(json, sizeof(json), "{\"clientNonce\":\"%s\"}", cn);
    }
    else {
        c->pool_i = pool_next++ % POOL;
        b64url(pool_point[c->pool_i], 65, key);
        n = snprintf(json, sizeof(json),
                     "{\"version\":2,\"clientNonce\":\"%s\",\"clientKey\":\"%s\"%s}",
                     cn, key, cfg.hs == X_PSK ? ",\"psk\":true" : "");
    }
    c->headlen = c->headoff = 0;
    c->bodyoff = 0;
    head_add(c, "POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: "
             "application/json\r\nContent-Length: %d\r\n\r\n", cfg.hs_path,
             cfg.host, cfg.port, n);
    body_reserve(c, (size_t)n);
    memcpy(c->body, json, (size_t)n);
    c->bodylen = (size_t)n;
    c->btype = B_JSON;
    c->jsonlen = 0;
}

static void stamp(conn *c)
{
    long id = ++next_id;

    if (c->plainlen >= sizeof(id)) {
        memcpy(c->plain, &id, sizeof(id));
    }
}

static void on_write(conn *c);

static void conn_start(conn *c, double sched)
{
    int fresh = !c->connected;

    if (fresh) {
        conn_connect(c);
    }
    c->busy = 1;
    c->t_sched = sched;
    c->t_sent = now();
    c->pstate = P_HEAD;
    c->rlen = 0;
    c->status = 0;
    c->clen = -1;
    c->chunked = 0;
    c->close_after = 0;
    c->has_xctype = c->has_xcenc = c->has_seal = 0;
    c->refused = c->has_retry = 0;
    c->ctype[0] = '\0';
    c->got = 0;
    c->bodyin = 0;
    c->head28n = 0;
    c->recn = 0;
    c->reclen = (size_t)-1;
    c->rechave = 0;
    c->recidx = 0;
    c->v2done = 0;
    if (c->req != R_VERIFY && !c->retrying) {
        sent_reqs++;
    }
    c->retrying = 0;
    if (setup_phase || c->req == R_HS) {
        if (setup_phase) {
            int keep = cfg.hs;
            cfg.hs = c->s->version == 1 ? X_V1 : X_V2;
            build_hs(c);
            cfg.hs = keep;
        }
        else {
            build_hs(c);
        }
    }
    else if (c->req == R_VERIFY) {
        build_data(c, &c->hs, 0, cfg.verify_path, expect, expect_len);
    }
    else {
        if (cfg.post) {
            stamp(c);
        }
        build_data(c, cfg.kind == K_PLAIN ? NULL : c->s, cfg.post, cfg.path,
                   cfg.post ? c->plain : expect,
                   cfg.post ? c->plainlen : expect_len);
        if (cfg.post && cfg.kind == K_PLAIN) {
            c->body = NULL;
            c->bodylen = c->plainlen;
        }
    }
    if (!fresh) {
        on_write(c);      /* most requests go out at once */
    }
}

/* --- answers ---------------------------------------------------------------- */

static void check_bytes(conn *c, const unsigned char *p, size_t n)
{
    if (c->got + n > c->wantlen) {
        wrong("conn %d: answer longer than the %zu bytes expected", c->id,
              c->wantlen);
    }
    if (memcmp(p, c->want + c->got, n) != 0) {
        size_t i = 0;
        while (i < n && p[i] == c->want[c->got + i]) {
            i++;
        }
        wrong("conn %d: answer differs from the expected at byte %zu",
              c->id, c->got + i);
    }
    c->got += n;
}

static void pt_reserve(conn *c, size_t n)
{
    if (n > c->ptcap) {
        free(c->ptbuf);
        c->ptbuf = xmalloc(n);
        c->ptcap = n;
    }
}

/* The response AAD, once the head is known. */
static void resp_aad(conn *c, session *s)
{
    char sq[24], st[8];
    const char *f[5];

    snprintf(sq, sizeof(sq), "%llu", (unsigned long long)c->rseq);
    snprintf(st, sizeof(st), "%03d", c->status);
    f[0] = s->sid;
    f[1] = sq;
    f[2] = st;
    f[3] = c->has_xctype ? c->xctype : "";
    f[4] = c->has_xcenc ? c->xcenc : "";
    c->aadlen = aad_build(c->aad, sizeof(c->aad) - 4, "zeq-e2e/2 response", f,
                          5);
}

/* Body bytes of the answer, as they come. */
static void body_feed(conn *c, const unsigned char *p, size_t n)
{
    int l;

    c->bodyin += n;
    switch (c->btype) {
    case B_PLAIN:
        check_bytes(c, p, n);
        return;
    case B_JSON:
        if (c->jsonlen + n >= sizeof(c->json)) {
            wrong("conn %d: handshake answer over 4 KiB", c->id);
        }
        memcpy(c->json + c->jsonlen, p, n);
        c->jsonlen += n;
        c->json[c->jsonlen] = '\0';
        return;
    case B_V1:
        while (n > 0 && c->head28n < 28) {
            c->head28[c->head28n++] = *p++;
            n--;
            if (c->head28n == 28
                && (EVP_DecryptInit_ex(c->cipher, gcm, NULL, c->key,
                                       c->head28) != 1
                    || EVP_CIPHER_CTX_ctrl(c->cipher, EVP_CTRL_GCM_SET_TAG,
                                           16, c->head28 + 12) != 1)) {
                die("AES-GCM init failed");
            }
        }
        if (n > 0) {
            pt_reserve(c, n);
            if (EVP_DecryptUpdate(c->cipher, c->ptbuf, &l, p, (int)n) != 1) {
                die("AES-GCM failed");
            }
            check_bytes(c, c->ptbuf, n);
        }
        return;
    case B_V2:
        while (n > 0) {
            size_t need, take;
            if (c->v2done) {
                wrong("conn %d: bytes after the final record", c->id);
            }
            if (c->head28n < 13) {
                c->head28[c->head28n++] = *p++;
                n--;
                if (c->head28n == 13) {
                    if (c->head28[0] != 0x02) {
                        wrong("conn %d: sealed answer does not start with 0x02",
                              c->id);
                    }
                    memcpy(c->base, c->head28 + 1, 12);
                }
                continue;
            }
            need = c->reclen == (size_t)-1 ? 4 : c->reclen + 16;
            if (c->reccap < need) {
                unsigned char *nr = xmalloc(need);
                memcpy(nr, c->rec, c->recn);
                free(c->rec);
                c->rec = nr;
                c->reccap = need;
            }
            take = need - c->recn < n ? need - c->recn : n;
            memcpy(c->rec + c->recn, p, take);
            c->recn += take;
            p += take;
            n -= take;
            if (c->recn < need) {
                continue;
            }
            if (c->reclen == (size_t)-1) {
                uint32_t h = (uint32_t)c->rec[0] << 24 | (uint32_t)c->rec[1] << 16
                             | (uint32_t)c->rec[2] << 8 | c->rec[3];
                if (h & 0x7f000000u || (h & 0xffffffu) > MAXREC) {
                    wrong("conn %d: bad record header %08x", c->id, h);
                }
                c->recfinal = (h & 0x80000000u) != 0;
                c->reclen = h & 0xffffffu;
                memcpy(c->aad + c->aadlen, c->rec, 4);
                c->recn = 0;
                continue;
            }
            {
                unsigned char nonce[12];
                pt_reserve(c, c->reclen + 16);
                rec_nonce(c->base, c->recidx++, nonce);
                if (!gcm_open(c->cipher, c->key, nonce, c->aad, c->aadlen + 4,
                              c->rec, c->reclen, c->rec + c->reclen,
                              c->ptbuf)) {
                    wrong("conn %d: record %llu does not verify", c->id,
                          (unsigned long long)(c->recidx - 1));
                }
                check_bytes(c, c->ptbuf, c->reclen);
                c->v2done = c->recfinal;
                c->reclen = (size_t)-1;
                c->recn = 0;
            }
        }
        return;
    }
}

static void verify_seal(conn *c, session *s)
{
    unsigned char msg[64], nonce[12], tag[16];
    long n = unb64url(c->seal, strlen(c->seal), msg, sizeof(msg));

    if (n != 33 || msg[0] != 0x02 || memcmp(msg + 13, "\x80\0\0\0", 4) != 0) {
        wrong("conn %d: X-E2E-Seal is not a sealed empty message", c->id);
    }
    resp_aad(c, s);
    memcpy(c->aad + c->aadlen, msg + 13, 4);
    rec_nonce(msg + 1, 0, nonce);
    memcpy(tag, msg + 17, 16);
    if (!gcm_open(c->cipher, s->s2c, nonce, c->aad, c->aadlen + 4, NULL, 0,
                  tag, c->ptbuf ? c->ptbuf : msg)) {
        wrong("conn %d: X-E2E-Seal does not verify", c->id);
    }
}

/* The head is in: check it and set up the body's check. */
static void head_done(conn *c)
{
    session *s = c->req == R_VERIFY ? &c->hs
                 : (setup_phase || cfg.kind == K_PLAIN) ? NULL : c->s;

    if (c->status != 200) {
        if (cfg.refusals && c->req == R_HS
            && (c->status == 429 || c->status == 503)) {
            c->refused = c->status;
            c->btype = B_JSON;
            if (!c->has_retry) {
                wrong("conn %d: a %d without Retry-After", c->id, c->status);
            }
            return;
        }
        wrong("conn %d: status %d (expected 200)", c->id, c->status);
    }
    if (c->btype == B_JSON) {
        return;
    }
    if (c->btype == B_PLAIN) {
        if (strncmp(c->ctype, MEDIA, strlen(MEDIA)) == 0) {
            wrong("conn %d: a sealed answer to a plaintext request", c->id);
        }
    }
    else if (strcmp(c->ctype, MEDIA) != 0) {
        wrong("conn %d: Content-Type \"%s\" where " MEDIA " was expected",
              c->id, c->ctype);
    }
    if (c->btype == B_V1 && c->clen >= 0
        && (size_t)c->clen != c->wantlen + 28) {
        wrong("conn %d: Content-Length %lld for an envelope of %zu bytes",
              c->id, c->clen, c->wantlen);
    }
    if (c->btype == B_V2) {
        if (c->clen >= 0 && (size_t)c->clen != sealed_len(c->wantlen)) {
            wrong("conn %d: Content-Length %lld for %zu bytes sealed", c->id,
                  c->clen, c->wantlen);
        }
        resp_aad(c, s);
    }
    if (c->btype == B_PLAIN && c->clen >= 0 && (size_t)c->clen != c->wantlen) {
        wrong("conn %d: Content-Length %lld, expected %zu", c->id, c->clen,
              c->wantlen);
    }
}

/* A handshake answer: every field checked; the keys derived for one in
 * verify_every (and for the sessions of a load run's set-up). */
static int hs_done(conn *c, int derive)
{
    const char *v;
    size_t len, i;
    unsigned char sn[32], sk[65], salt[64], ikm[64];
    long ver = json_int(c->json, "version");
    int want = c->s && setup_phase ? c->s->version
               : cfg.hs == X_V1 ? 1 : 2;
    session *s = setup_phase ? c->s : &c->hs;

    if (ver != want) {
        wrong("conn %d: handshake answer version %ld, expected %d", c->id, ver,
              want);
    }
    v = json_str(c->json, "sessionId", &len);
    if (v == NULL || len < 1 || len > 128) {
        wrong("conn %d: handshake answer without a valid sessionId", c->id);
    }
    for (i = 0; i < len; i++) {
        if (!memchr(b64a, v[i], 64)) {
            wrong("conn %d: sessionId has a character outside A-Za-z0-9-_",
                  c->id);
        }
    }
    memcpy(s->sid, v, len);
    s->sid[len] = '\0';
    v = json_str(c->json, "serverNonce", &len);
    if (v == NULL || len != 64 || !unhex(v, 32, sn)) {
        wrong("conn %d: serverNonce is not 64 hex characters", c->id);
    }
    if (json_int(c->json, "expiresIn") <= 0) {
        wrong("conn %d: expiresIn missing", c->id);
    }
    memcpy(salt, c->cn, 32);
    memcpy(salt + 32, sn, 32);
    s->version = (int)ver;
    s->seq = 0;
    if (ver == 1) {
        if (derive) {
            pbkdf2(cfg.secret, salt, 64, s->c2s);
            memcpy(s->s2c, s->c2s, 32);
        }
        return derive;
    }
    v = json_str(c->json, "serverKey", &len);
    if (v == NULL || unb64url(v, len, sk, sizeof(sk)) != 65 || sk[0] != 4) {
        wrong("conn %d: serverKey is not an uncompressed point", c->id);
    }
    if (!setup_phase && cfg.hs == X_SIG) {
        unsigned char sig[64], signer[32];
        v = json_str(c->json, "signature", &len);
        if (v == NULL || unb64url(v, len, sig, sizeof(sig)) != 64) {
            wrong("conn %d: a signed handshake answer without a signature",
                  c->id);
        }
        v = json_str(c->json, "signer", &len);
        if (v == NULL || unb64url(v, len, signer, sizeof(signer)) != 32
            || memcmp(signer, server_signer, 32) != 0) {
            wrong("conn %d: signer is not the server key's", c->id);
        }
        if (derive) {
            unsigned char tr[400];
            size_t o = 0, idl = strlen(s->sid);
            memcpy(tr, "zeq-e2e/2 handshake", 20);   /* with its 0x00 */
            o = 20;
            memcpy(tr + o, c->cn, 32); o += 32;
            memcpy(tr + o, sn, 32); o += 32;
            memcpy(tr + o, pool_point[c->pool_i], 65); o += 65;
            memcpy(tr + o, sk, 65); o += 65;
            memcpy(tr + o, s->sid, idl); o += idl;
            if (!sig_verify(sig, tr, o)) {
                wrong("conn %d: the handshake signature does not verify",
                      c->id);
            }
        }
    }
    if (!derive) {
        return 0;
    }
    if (!ecdh(pool[c->pool_i], sk, ikm)) {
        wrong("conn %d: serverKey is not on P-256", c->id);
    }
    len = 32;
    if (!setup_phase && cfg.hs == X_PSK) {
        memcpy(ikm + 32, psk, 32);
        len = 64;
    }
    hkdf32(ikm, len, salt, 64, "zeq-e2e/2 c2s", s->c2s);
    hkdf32(ikm, len, salt, 64, "zeq-e2e/2 s2c", s->s2c);
    OPENSSL_cleanse(ikm, sizeof(ikm));
    return 1;
}

static void schedule(conn *c);

/* The whole answer is in. */
static void answer_done(conn *c)
{
    double t = now();

    if (c->btype == B_V1) {
        int l;
        unsigned char dummy[16];
        if (c->head28n < 28) {
            wrong("conn %d: envelope shorter than 28 bytes", c->id);
        }
        if (EVP_DecryptFinal_ex(c->cipher, dummy, &l) != 1) {
            wrong("conn %d: the envelope's tag does not verify", c->id);
        }
    }
    if (c->btype == B_V2) {
        if (c->bodyin == 0 && c->has_seal) {
            verify_seal(c, c->req == R_VERIFY ? &c->hs : c->s);
        }
        else if (!c->v2done) {
            wrong("conn %d: sealed answer without its final record", c->id);
        }
    }
    if (c->btype != B_JSON && c->got != c->wantlen) {
        wrong("conn %d: answer of %zu bytes, expected %zu", c->id, c->got,
              c->wantlen);
    }
    c->busy = 0;
    c->served++;
    if (c->close_after) {
        conn_close(c);
    }
    if (setup_phase) {
        hs_done(c, 1);
        c->s->ready = 1;
        return;
    }
    if (c->refused) {
        /* The guard's refusal: its code, counted; nothing to derive. */
        size_t len;
        const char *code = json_str(c->json, "error", &len);
        const char *want = c->refused == 429 ? "e2e_rate_limited" : "e2e_busy";
        if (code == NULL || len != strlen(want) || memcmp(code, want, len) != 0) {
            wrong("conn %d: a %d whose error is not %s", c->id, c->refused,
                  want);
        }
        if (running && t <= t_end) {
            *(c->refused == 429 ? &refused_429 : &refused_503) += 1;
        }
        c->refused = 0;
        schedule(c);
        return;
    }
    if (c->req == R_HS) {
        /* The first answer, then one in verify_every. */
        int derive = cfg.verify_every > 0
                     && hs_seen++ % cfg.verify_every == 0;
        if (running && t <= t_end) {
            done_hs++;
            record((t - c->t_sched) * 1e6);
        }
        if (hs_done(c, derive) && cfg.verify_path != NULL) {
            c->req = R_VERIFY;   /* the next request uses the new keys */
        }
    }
    else if (c->req == R_VERIFY) {
        verified_hs++;
        c->req = R_HS;
    }
    else {
        if (running && t <= t_end) {
            done_reqs++;
            body_bytes += c->got;
            record((t - c->t_sched) * 1e6);
        }
    }
    schedule(c);
}

/* Parses the head in c->rbuf; returns the bytes it took, 0 if incomplete. */
static size_t parse_head(conn *c)
{
    char *end = memmem(c->rbuf, c->rlen, "\r\n\r\n", 4), *line, *next;

    if (end == NULL) {
        if (c->rlen > 16384) {
            wrong("conn %d: response head over 16 KiB", c->id);
        }
        return 0;
    }
    *end = '\0';
    line = (char *)c->rbuf;
    if (strncmp(line, "HTTP/1.1 ", 9) != 0) {
        wrong("conn %d: not an HTTP/1.1 answer", c->id);
    }
    c->status = atoi(line + 9);
    for (line = strstr(line, "\r\n"); line != NULL; line = next) {
        char *colon, *val;
        line += 2;
        next = strstr(line, "\r\n");
        if (next) {
            *next = '\0';
        }
        colon = strchr(line, ':');
        if (colon == NULL) {
            continue;
        }
        *colon = '\0';
        for (val = colon + 1; *val == ' ' || *val == '\t'; val++) {
        }
#define COPY(dst) snprintf(dst, sizeof(dst), "%s", val)
        if (strcasecmp(line, "Content-Length") == 0) {
            c->clen = atoll(val);
        }
        else if (strcasecmp(line, "Transfer-Encoding") == 0) {
            c->chunked = strcasestr(val, "chunked") != NULL;
        }
        else if (strcasecmp(line, "Connection") == 0) {
            c->close_after = strcasestr(val, "close") != NULL;
        }
        else if (strcasecmp(line, "Content-Type") == 0) {
            COPY(c->ctype);
        }
        else if (strcasecmp(line, "X-E2E-Content-Type") == 0) {
            COPY(c->xctype);
            c->has_xctype = 1;
        }
        else if (strcasecmp(line, "X-E2E-Content-Encoding") == 0) {
            COPY(c->xcenc);
            c->has_xcenc = 1;
        }
        else if (strcasecmp(line, "X-E2E-Seal") == 0) {
            COPY(c->seal);
            c->has_seal = 1;
        }
        else if (strcasecmp(line, "Retry-After") == 0) {
            c->has_retry = atoi(val) > 0;
        }
#undef COPY
        if (next) {
            next -= 0;
        }
        else {
            break;
        }
    }
    head_done(c);
    return (size_t)(end + 4 - (char *)c->rbuf);
}

/* Consumes what c->rbuf holds; returns 1 when the answer is complete. */
static int consume(conn *c)
{
    size_t at = 0;

    if (c->pstate == P_HEAD) {
        size_t h = parse_head(c);
        if (h == 0) {
            return 0;
        }
        at = h;
        c->pstate = c->chunked ? P_CHUNK_SIZE : P_BODY;
        if (!c->chunked && c->clen < 0) {
            wrong("conn %d: answer without Content-Length or chunking", c->id);
        }
        if (!c->chunked && c->clen == 0) {
            c->pstate = P_DONE;
        }
    }
    while (at < c->rlen && c->pstate != P_DONE) {
        size_t avail = c->rlen - at;
        if (c->pstate == P_BODY) {
            size_t left = (size_t)c->clen - c->bodyin, n = avail < left ? avail : left;
            body_feed(c, c->rbuf + at, n);
            at += n;
            if (c->bodyin == (unsigned long long)c->clen) {
                c->pstate = P_DONE;
            }
        }
        else if (c->pstate == P_CHUNK_SIZE || c->pstate == P_CHUNK_CRLF
                 || c->pstate == P_TRAILER) {
            unsigned char *nl = memchr(c->rbuf + at, '\n', avail);
            if (nl == NULL) {
                break;       /* keep the partial line */
            }
            if (c->pstate == P_CHUNK_SIZE) {
                c->chunk_left = strtoll((char *)c->rbuf + at, NULL, 16);
                c->pstate = c->chunk_left == 0 ? P_TRAILER : P_CHUNK_DATA;
            }
            else if (c->pstate == P_CHUNK_CRLF) {
                c->pstate = P_CHUNK_SIZE;
            }
            else if (nl - (c->rbuf + at) <= 1) {
                c->pstate = P_DONE;     /* the empty line after the trailer */
            }
            at = (size_t)(nl + 1 - c->rbuf);
        }
        else if (c->pstate == P_CHUNK_DATA) {
            size_t n = avail < (size_t)c->chunk_left ? avail : (size_t)c->chunk_left;
            body_feed(c, c->rbuf + at, n);
            at += n;
            c->chunk_left -= (long long)n;
            if (c->chunk_left == 0) {
                c->pstate = P_CHUNK_CRLF;
            }
        }
    }
    memmove(c->rbuf, c->rbuf + at, c->rlen - at);
    c->rlen -= at;
    if (c->pstate == P_DONE) {
        if (c->rlen != 0) {
            wrong("conn %d: bytes after the answer", c->id);
        }
        return 1;
    }
    return 0;
}

static void on_read(conn *c)
{
    for (;;) {
        ssize_t n = read(c->fd, c->rbuf + c->rlen, RBUF - c->rlen);
        if (n > 0) {
            if (running) {
                rx_bytes += (unsigned long long)n;
            }
            c->rlen += (size_t)n;
            if (!c->busy) {
                wrong("conn %d: bytes with no request outstanding", c->id);
            }
            if (consume(c)) {
                answer_done(c);
                return;
            }
            if (c->rlen == RBUF) {
                wrong("conn %d: a line over %d bytes", c->id, RBUF);
            }
            continue;
        }
        if (n == 0) {
            if (c->busy && c->served > 0 && c->rlen == 0
                && c->pstate == P_HEAD) {
                /* A keep-alive connection the server closed as the request
                 * went out (an idle child stopping): again on a new one,
                 * as HTTP clients do, with a new sequence number. */
                retries++;
                conn_close(c);
                c->served = 0;
                c->retrying = 1;
                conn_start(c, c->t_sched);
                return;
            }
            if (c->busy) {
                wrong("conn %d: connection closed in the middle of an answer "
                      "(%llu body bytes in)", c->id, c->bodyin);
            }
            conn_close(c);
            return;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return;
        }
        if (errno == EINTR) {
            continue;
        }
        wrong("conn %d: read: %s", c->id, strerror(errno));
    }
}

static void on_write(conn *c)
{
    while (c->busy && (c->headoff < c->headlen || c->bodyoff < c->bodylen)) {
        struct iovec iov[2];
        int k = 0;
        ssize_t n;
        const unsigned char *body = c->body ? c->body : c->plain;
        if (c->headoff < c->headlen) {
            iov[k].iov_base = c->head + c->headoff;
            iov[k++].iov_len = c->headlen - c->headoff;
        }
        if (c->bodyoff < c->bodylen) {
            iov[k].iov_base = (void *)(body + c->bodyoff);
            iov[k++].iov_len = c->bodylen - c->bodyoff;
        }
        n = writev(c->fd, iov, k);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                want_out(c, 1);
                return;
            }
            if (errno == EINTR) {
                continue;
            }
            wrong("conn %d: write: %s", c->id, strerror(errno));
        }
        if (c->headoff < c->headlen) {
            size_t h = c->headlen - c->headoff;
            if ((size_t)n < h) {
                c->headoff += (size_t)n;
                continue;
            }
            c->headoff = c->headlen;
            n -= (ssize_t)h;
        }
        c->bodyoff += (size_t)n;
    }
    want_out(c, 0);
}

/* --- the loop --------------------------------------------------------------- */

static int idle[65536], nidle;

static void schedule(conn *c)
{
    double t;

    if (setup_phase) {
        return;
    }
    t = now();
    if (c->req == R_VERIFY) {
        conn_start(c, t);
        return;
    }
    if (draining || (cfg.total > 0 && sent_reqs >= cfg.total)
        || (cfg.total == 0 && t >= t_end)) {
        return;
    }
    if (cfg.rate > 0) {
        if (t < next_send) {
            idle[nidle++] = c->id;
            return;
        }
        conn_start(c, next_send);
        next_send += 1.0 / cfg.rate;
        return;
    }
    conn_start(c, t);
}

static int any_busy(void)
{
    int i;

    for (i = 0; i < cfg.conns; i++) {
        if (conns[i].busy) {
            return 1;
        }
    }
    return 0;
}

static void loop(double until)
{
    struct epoll_event evs[256];

    for (;;) {
        struct timespec ts, *tp = NULL;
        int n, i;
        double t = now();

        if (!any_busy() && nidle == 0) {
            return;
        }
        if (t >= until) {
            return;
        }
        if (cfg.rate > 0 && nidle > 0 && !setup_phase) {
            while (nidle > 0 && t >= next_send
                   && (cfg.total == 0 || sent_reqs < cfg.total)) {
                conn *c = &conns[idle[--nidle]];
                conn_start(c, next_send);
                next_send += 1.0 / cfg.rate;
            }
            if (cfg.total == 0 && t >= t_end) {
                nidle = 0;
            }
            if (nidle > 0) {
                double w = next_send - t;
                if (w < 0) {
                    w = 0;
                }
                ts.tv_sec = (time_t)w;
                ts.tv_nsec = (long)((w - (double)ts.tv_sec) * 1e9);
                tp = &ts;
            }
        }
        if (tp == NULL) {
            double w = (cfg.total == 0 && running ? t_end : until) - t;
            if (w < 0) {
                w = 0;
            }
            if (w > 0.1) {
                w = 0.1;
            }
            ts.tv_sec = 0;
            ts.tv_nsec = (long)(w * 1e9);
            tp = &ts;
        }
        n = epoll_pwait2(ep, evs, 256, tp, NULL);
        if (n < 0 && errno != EINTR) {
            die("epoll_pwait2: %s", strerror(errno));
        }
        for (i = 0; i < n; i++) {
            conn *c = evs[i].data.ptr;
            if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
                if (c->fd >= 0) {
                    on_read(c);
                }
            }
            if ((evs[i].events & EPOLLOUT) && c->fd >= 0 && c->busy) {
                on_write(c);
            }
        }
        if (running && cfg.total == 0 && now() >= t_end) {
            /* In flight past the end: not counted, not waited for long. */
            if (until > t_end + 30) {
                until = t_end + 30;
            }
        }
    }
}

/* --- modes ---------------------------------------------------------------- */

static void load_pool(void)
{
    int i;

    for (i = 0; i < POOL; i++) {
        pool[i] = EVP_EC_gen("P-256");
        if (pool[i] == NULL) {
            die("EVP_EC_gen failed");
        }
        point_of(pool[i], pool_point[i]);
    }
}

static void load_pubkey(const char *path)
{
    FILE *f = fopen(path, "r");
    unsigned char *der = NULL;
    unsigned int n = 32;
    int dl;

    if (f == NULL) {
        die("%s: %s", path, strerror(errno));
    }
    server_pub = PEM_read_PUBKEY(f, NULL, NULL, NULL);
    fclose(f);
    if (server_pub == NULL) {
        die("%s: not a PEM public key", path);
    }
    dl = i2d_PUBKEY(server_pub, &der);
    if (dl <= 0 || EVP_Digest(der, (size_t)dl, server_signer, &n, EVP_sha256(),
                              NULL) != 1) {
        die("cannot hash the server key");
    }
    OPENSSL_free(der);
}

static void map_file(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;

    if (fd < 0 || fstat(fd, &st) != 0) {
        die("%s: %s", path, strerror(errno));
    }
    expect_len = (size_t)st.st_size;
    expect = expect_len ? mmap(NULL, expect_len, PROT_READ, MAP_PRIVATE, fd, 0)
                        : (const unsigned char *)"";
    if (expect == MAP_FAILED) {
        die("mmap %s: %s", path, strerror(errno));
    }
    close(fd);
}

static double cpu_seconds(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6
           + (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static int run(int handshakes)
{
    int i, nsess = cfg.sessions < cfg.conns ? cfg.sessions : cfg.conns;
    double cpu0, elapsed;

    ep = epoll_create1(EPOLL_CLOEXEC);
    conns = calloc((size_t)cfg.conns, sizeof(*conns));
    sessions = calloc((size_t)nsess, sizeof(*sessions));
    if (ep < 0 || conns == NULL || sessions == NULL) {
        die("set-up failed");
    }
    for (i = 0; i < nsess; i++) {
        sessions[i].version = cfg.kind == K_V1 ? 1 : 2;
    }
    for (i = 0; i < cfg.conns; i++) {
        conn *c = &conns[i];
        c->id = i;
        c->fd = -1;
        c->rbuf = xmalloc(RBUF);
        c->cipher = EVP_CIPHER_CTX_new();
        c->s = &sessions[i % nsess];
        c->req = handshakes ? R_HS : R_DATA;
        if (cfg.post) {
            c->plainlen = cfg.body;
            c->plain = xmalloc(cfg.body);
            rnd(c->plain, cfg.body);
        }
    }
    /* Set-up: one handshake per session, before the clock starts. */
    if (!handshakes && cfg.kind != K_PLAIN) {
        setup_phase = 1;
        for (i = 0; i < nsess; i++) {
            conn_start(&conns[i], now());
        }
        loop(now() + 120);
        for (i = 0; i < nsess; i++) {
            if (!sessions[i].ready) {
                die("set-up handshakes did not finish");
            }
        }
        setup_phase = 0;
    }
    sent_reqs = 0;
    cpu0 = cpu_seconds();
    t_start = now();
    t_end = cfg.total > 0 ? 1e300 : t_start + cfg.duration;
    next_send = t_start;
    running = 1;
    for (i = 0; i < cfg.conns; i++) {
        schedule(&conns[i]);
    }
    /* What is in flight at the end is not counted, nor waited for. */
    loop(cfg.total > 0 ? t_start + 3600 : t_end);
    elapsed = (cfg.total > 0 ? now() : t_end) - t_start;
    running = 0;
    if (handshakes) {
        /* Let the sealed GETs of sampled handshakes finish. */
        draining = 1;
        nidle = 0;
        loop(now() + 20);
    }
    if (cfg.total > 0 && (handshakes ? done_hs : done_reqs) < cfg.total) {
        die("only %ld of %ld requests completed", handshakes ? done_hs
                                                             : done_reqs,
            cfg.total);
    }
    qsort(lat, nlat, sizeof(*lat), cmpf);
    printf("requests=%ld handshakes=%ld verified=%ld seconds=%.3f rps=%.1f "
           "hps=%.1f body_bytes=%llu rx_bytes=%llu mbps=%.2f rx_mbps=%.2f "
           "p50=%.1f p90=%.1f p99=%.1f p999=%.1f max=%.1f client_cpu=%.3f retries=%ld "
           "refused_429=%ld refused_503=%ld\n",
           done_reqs, done_hs, verified_hs, elapsed, done_reqs / elapsed,
           done_hs / elapsed, body_bytes, rx_bytes,
           (double)body_bytes / elapsed / 1e6,
           (double)rx_bytes / elapsed / 1e6, pct(50), pct(90), pct(99),
           pct(99.9), nlat ? lat[nlat - 1] : 0.0, cpu_seconds() - cpu0, retries,
           refused_429, refused_503);
    if (handshakes && cfg.verify_every > 0 && cfg.verify_path != NULL
        && verified_hs == 0 && done_hs >= cfg.verify_every) {
        wrong("no sampled handshake was verified with a sealed request");
    }
    return 0;
}

/* One core's AES-256-GCM: 16 KiB records (v2's) and 1 MiB messages. */
static int mode_aes(void)
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    unsigned char key[32], iv[12], tag[16], *buf = xmalloc(1 << 20);
    size_t sizes[2] = {REC, 1 << 20};
    int k;

    rnd(key, 32);
    rnd(iv, 12);
    rnd(buf, 1 << 20);
    printf("aes");
    for (k = 0; k < 2; k++) {
        double t0 = now(), t;
        unsigned long long bytes = 0;
        do {
            int j;
            for (j = 0; j < (k ? 16 : 512); j++) {
                gcm_seal(c, key, iv, NULL, 0, buf, sizes[k], buf, tag);
                bytes += sizes[k];
            }
            t = now() - t0;
        } while (t < 0.4);
        printf(" %s_ns_per_byte=%.4f %s_mbps=%.1f", k ? "1m" : "16k",
               t * 1e9 / (double)bytes, k ? "1m" : "16k",
               (double)bytes / t / 1e6);
    }
    printf("\n");
    return 0;
}

/* One PBKDF2-HMAC-SHA256 of 100,000 iterations with OpenSSL's
 * PKCS5_PBKDF2_HMAC, and the floor of any implementation on this CPU:
 * 200,000 chained SHA-256 compressions (two per iteration), timed with
 * libcrypto's own compression function (deprecated in OpenSSL 3, kept, and
 * the fastest code it has for the CPU). */
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#endif
static int mode_kdf(void)
{
    unsigned char salt[64], out[32], block[64];
    double t0, pk = 1e9, floor = 1e9, t;
    SHA256_CTX c;
    int r, i, k;

    rnd(salt, 64);
    for (r = 0; r < 3; r++) {
        t0 = now();
        pbkdf2("zeq-e2e bench secret", salt, 64, out);
        t = now() - t0;
        pk = t < pk ? t : pk;
    }
    memset(block, 0, sizeof(block));
    SHA256_Init(&c);
    for (r = 0; r < 3; r++) {
        t0 = now();
        for (i = 0; i < 200000; i++) {
            SHA256_Transform(&c, block);
            for (k = 0; k < 8; k++) {     /* the next block depends on it */
                put32(block + 4 * k, c.h[k]);
            }
        }
        t = now() - t0;
        floor = t < floor ? t : floor;
    }
    printf("kdf pkcs5_ms=%.3f floor_ms=%.3f\n", pk * 1e3, floor * 1e3);
    return 0;
}
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

/* The same work on OpenSSL's lowest public level, as cheaply as it can be
 * done: a scalar below the order and its point on one EC_GROUP kept for
 * the whole run, the client's point decoded (the decoder checks that it is
 * on the curve) and multiplied, both points encoded, two HKDFs. Seconds. */
static double kex_floor(const unsigned char pt[65], const unsigned char salt[64])
{
    EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
    BN_CTX *bc = BN_CTX_new();
    BIGNUM *d = BN_new();
    EC_POINT *mine = g ? EC_POINT_new(g) : NULL;
    EC_POINT *peer = g ? EC_POINT_new(g) : NULL;
    unsigned char out[65], z[65], k[32];
    double t0, t, best = 1e9;
    int r, i;

    if (bc == NULL || d == NULL || mine == NULL || peer == NULL) {
        die("P-256: out of memory");
    }
    for (r = 0; r < 3; r++) {
        t0 = now();
        for (i = 0; i < 200; i++) {
            if (BN_priv_rand_range(d, EC_GROUP_get0_order(g)) != 1
                || BN_is_zero(d)
                || EC_POINT_mul(g, mine, d, NULL, NULL, bc) != 1
                || EC_POINT_point2oct(g, mine, POINT_CONVERSION_UNCOMPRESSED,
                                      out, 65, bc) != 65
                || EC_POINT_oct2point(g, peer, pt, 65, bc) != 1
                || EC_POINT_mul(g, peer, NULL, peer, d, bc) != 1
                || EC_POINT_point2oct(g, peer, POINT_CONVERSION_UNCOMPRESSED,
                                      z, 65, bc) != 65) {
                die("ECDH (EC_POINT) failed");
            }
            hkdf32(z + 1, 32, salt, 64, "zeq-e2e/2 c2s", k);
            hkdf32(z + 1, 32, salt, 64, "zeq-e2e/2 s2c", k);
        }
        t = (now() - t0) / 200;
        best = t < best ? t : best;
    }
    OPENSSL_cleanse(z, sizeof(z));
    OPENSSL_cleanse(k, sizeof(k));
    BN_clear_free(d);
    EC_POINT_free(mine);
    EC_POINT_free(peer);
    BN_CTX_free(bc);
    EC_GROUP_free(g);
    return best;
}

/* What a v2 handshake must cost the server at least: one P-256 key
 * generation, the client's point decoded and checked (on the curve: P-256
 * has cofactor 1, so that is the whole check), one ECDH, two HKDFs; and
 * the ECDSA signature of a transcript. Measured twice: through EVP
 * (kex_us), and at the floor of the EC_POINT level (floor_us). */
static int mode_ecdh(const char *pem)
{
    EVP_PKEY *peer = EVP_EC_gen("P-256"), *sk = NULL;
    unsigned char pt[65], z[32], k[32], salt[64], tr[300];
    double t0, best = 1e9, sbest = 1e9, t;
    int r, i;

    point_of(peer, pt);
    rnd(salt, 64);
    rnd(tr, sizeof(tr));
    for (r = 0; r < 3; r++) {
        t0 = now();
        for (i = 0; i < 200; i++) {
            EVP_PKEY *mine = EVP_EC_gen("P-256");
            EVP_PKEY *p = peer_of(pt);
            EVP_PKEY_CTX *pc = p ? EVP_PKEY_CTX_new_from_pkey(NULL, p, NULL)
                                 : NULL;
            if (mine == NULL || pc == NULL
                || EVP_PKEY_public_check_quick(pc) != 1
                || !ecdh_pk(mine, p, z)) {
                die("ECDH failed");
            }
            hkdf32(z, 32, salt, 64, "zeq-e2e/2 c2s", k);
            hkdf32(z, 32, salt, 64, "zeq-e2e/2 s2c", k);
            EVP_PKEY_CTX_free(pc);
            EVP_PKEY_free(p);
            EVP_PKEY_free(mine);
        }
        t = (now() - t0) / 200;
        best = t < best ? t : best;
    }
    if (pem != NULL) {
        FILE *f = fopen(pem, "r");
        if (f == NULL || (sk = PEM_read_PrivateKey(f, NULL, NULL, NULL)) == NULL) {
            die("%s: not a private key", pem);
        }
        fclose(f);
        for (r = 0; r < 3; r++) {
            t0 = now();
            for (i = 0; i < 200; i++) {
                EVP_MD_CTX *md = EVP_MD_CTX_new();
                unsigned char sig[80];
                size_t sl = sizeof(sig);
                if (EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, sk) != 1
                    || EVP_DigestSign(md, sig, &sl, tr, 257) != 1) {
                    die("sign failed");
                }
                EVP_MD_CTX_free(md);
            }
            t = (now() - t0) / 200;
            sbest = t < sbest ? t : sbest;
        }
    }
    printf("ecdh kex_us=%.2f floor_us=%.2f sign_us=%.2f\n", best * 1e6,
           kex_floor(pt, salt) * 1e6, pem ? sbest * 1e6 : 0.0);
    return 0;
}

static int mode_gen(const char *path, long long n)
{
    FILE *f = fopen(path, "wb");
    unsigned char buf[65536], key[32] = {7}, iv[12] = {9}, tag[16];
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    long long left = n;

    if (f == NULL) {
        die("%s: %s", path, strerror(errno));
    }
    memset(buf, 0, sizeof(buf));
    while (left > 0) {
        size_t k = left > (long long)sizeof(buf) ? sizeof(buf) : (size_t)left;
        iv[0]++;
        iv[1] += iv[0] == 0;
        gcm_seal(c, key, iv, NULL, 0, buf, k, buf, tag);
        if (fwrite(buf, 1, k, f) != k) {
            die("%s: write failed", path);
        }
        left -= (long long)k;
    }
    if (fclose(f) != 0) {
        die("%s: close failed", path);
    }
    return 0;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: zeqload run|hs -p PORT [-H host] [-c conns] [-d secs | -n reqs]\n"
            "         [-k plain|v1|v2] [-m GET|POST] [-u path] [-b bytes] [-f file]\n"
            "         [-r rate] [-x v1|v2|psk|sig] [-s secret] [-P pubkey.pem]\n"
            "         [-V every] [-w verify-path -W verify-file] [-o sessions]\n"
            "         [-B local-address] [-A]\n"
            "       zeqload aes | kdf | ecdh [-P key.pem] | gen FILE BYTES\n");
    exit(1);
}

int main(int argc, char **argv)
{
    const char *mode;
    int opt, handshakes;

    if (argc < 2) {
        usage();
    }
    mode = argv[1];
    signal(SIGPIPE, SIG_IGN);
    gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
    if (gcm == NULL) {
        die("no AES-256-GCM");
    }
    if (strcmp(mode, "aes") == 0) {
        return mode_aes();
    }
    if (strcmp(mode, "kdf") == 0) {
        return mode_kdf();
    }
    if (strcmp(mode, "gen") == 0) {
        if (argc != 4) {
            usage();
        }
        return mode_gen(argv[2], atoll(argv[3]));
    }
    optind = 2;
    while ((opt = getopt(argc, argv, "H:p:c:d:n:k:m:u:b:f:r:x:s:P:V:w:W:o:S:B:A"))
           != -1) {
        switch (opt) {
        case 'H': cfg.host = optarg; break;
        case 'p': cfg.port = atoi(optarg); break;
        case 'c': cfg.conns = atoi(optarg); break;
        case 'd': cfg.duration = atof(optarg); break;
        case 'n': cfg.total = atol(optarg); break;
        case 'k':
            cfg.kind = strcmp(optarg, "v1") == 0 ? K_V1
                       : strcmp(optarg, "v2") == 0 ? K_V2 : K_PLAIN;
            break;
        case 'm': cfg.post = strcmp(optarg, "POST") == 0; break;
        case 'u': cfg.path = optarg; break;
        case 'b': cfg.body = (size_t)atol(optarg); break;
        case 'f': cfg.file = optarg; break;
        case 'r': cfg.rate = atof(optarg); break;
        case 'x':
            cfg.hs = strcmp(optarg, "v1") == 0 ? X_V1
                     : strcmp(optarg, "psk") == 0 ? X_PSK
                     : strcmp(optarg, "sig") == 0 ? X_SIG : X_V2;
            break;
        case 's': cfg.secret = optarg; break;
        case 'P': cfg.pubkey = optarg; break;
        case 'V': cfg.verify_every = atol(optarg); break;
        case 'w': cfg.verify_path = optarg; break;
        case 'W': cfg.verify_file = optarg; break;
        case 'o': cfg.sessions = atoi(optarg); break;
        case 'S': cfg.hs_path = optarg; break;
        case 'B': cfg.bind = optarg; break;
        case 'A': cfg.refusals = 1; break;
        default: usage();
        }
    }
    if (strcmp(mode, "ecdh") == 0) {
        return mode_ecdh(cfg.pubkey);
    }
    handshakes = strcmp(mode, "hs") == 0;
    if ((!handshakes && strcmp(mode, "run") != 0) || cfg.port <= 0
        || cfg.conns < 1 || cfg.conns > 65536 || cfg.sessions < 1) {
        usage();
    }
    if (handshakes && cfg.hs == X_NONE) {
        cfg.hs = X_V2;
    }
    if ((cfg.kind == K_V1 || cfg.hs == X_V1 || cfg.hs == X_PSK)
        && cfg.secret == NULL) {
        die("v1 and the pre-shared key mode need -s secret");
    }
    if (cfg.hs == X_SIG) {
        if (cfg.pubkey == NULL) {
            die("signed handshakes need -P server-public-key.pem");
        }
        load_pubkey(cfg.pubkey);
    }
    if (cfg.hs == X_PSK) {
        pbkdf2(cfg.secret, (const unsigned char *)"zeq-e2e/2 psk", 13, psk);
    }
    if (handshakes ? cfg.verify_file != NULL : cfg.file != NULL) {
        map_file(handshakes ? cfg.verify_file : cfg.file);
    }
    else if (!cfg.post && !handshakes) {
        die("a GET run needs -f, the file the path serves");
    }
    if (handshakes && cfg.verify_path != NULL && cfg.verify_file == NULL) {
        die("-w needs -W, the file it serves");
    }
    if (handshakes || cfg.kind == K_V2) {
        load_pool();
    }
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)cfg.port);
    if (inet_pton(AF_INET, cfg.host, &addr.sin_addr) != 1) {
        die("%s: not an IPv4 address", cfg.host);
    }
    memset(&local, 0, sizeof(local));
    local.sin_family = AF_INET;
    if (cfg.bind != NULL && inet_pton(AF_INET, cfg.bind, &local.sin_addr) != 1) {
        die("-B %s: not an IPv4 address", cfg.bind);
    }
    return run(handshakes);
}
