/* The v1 envelope (src/zeq_envelope.c) and the v1 side of the record
 * reader (src/zeq_record.c). The input is an envelope under FUZZ_KEY:
 * zeq_envelope_open (one-shot), the streaming open split at every byte
 * boundary, and the record reader fed in those two pieces and byte by byte
 * must agree (the same result; the same plaintext when it verifies). Then
 * the input as plaintext: sealed and opened again, and the keystream that
 * zeq_envelope_keystream_xor gives at offsets taken from the input (how
 * the spool encrypts a file region again) equals the ciphertext there.
 * libFuzzer options: -max_len=256 */
#include "fuzz.h"

#include "reader.h"
#include "zeq_envelope.h"

static int stream_open(const uint8_t *env, size_t size, size_t split,
                       unsigned char *out)
{
    zeq_envelope_ctx *ctx = zeq_envelope_ctx_new();
    size_t n = size - ZEQ_ENVELOPE_OVERHEAD;
    const uint8_t *ct = env + ZEQ_ENVELOPE_OVERHEAD;
    int rv;

    FUZZ_CHECK(ctx != NULL, "a context");
    rv = zeq_envelope_open_init(ctx, FUZZ_KEY, env, env + ZEQ_ENVELOPE_IV_LEN,
                                NULL, 0);
    if (rv == ZEQ_OK) {
        rv = zeq_envelope_open_update(ctx, ct, split, out);
    }
    if (rv == ZEQ_OK) {
        rv = zeq_envelope_open_update(ctx, ct + split, n - split, out + split);
    }
    if (rv == ZEQ_OK) {
        rv = zeq_envelope_open_final(ctx);
    }
    zeq_envelope_ctx_free(ctx);
    return rv;
}

static void check_open(const uint8_t *data, size_t size)
{
    unsigned char *one = malloc(size + 1), *st = malloc(size + 1);
    size_t onelen = 0, k;
    int rv = zeq_envelope_open(FUZZ_KEY, data, size, one, &onelen);

    FUZZ_CHECK(one != NULL && st != NULL, "memory");
    FUZZ_CHECK(rv == ZEQ_OK || rv == ZEQ_ERR_AUTH || rv == ZEQ_ERR_SHORT,
               "zeq_envelope_open: OK, AUTH or SHORT");
    FUZZ_CHECK((rv == ZEQ_ERR_SHORT) == (size < ZEQ_ENVELOPE_OVERHEAD),
               "SHORT exactly below 28 bytes");
    if (rv == ZEQ_OK) {
        FUZZ_CHECK(onelen == size - ZEQ_ENVELOPE_OVERHEAD, "plaintext length");
    }
    for (k = 0; size >= ZEQ_ENVELOPE_OVERHEAD
                && k <= size - ZEQ_ENVELOPE_OVERHEAD; k++) {
        int srv = stream_open(data, size, k, st);
        FUZZ_CHECK(srv == rv, "the streaming open agrees with the one-shot");
        if (rv == ZEQ_OK) {
            FUZZ_CHECK(fuzz_same(st, onelen, one, onelen),
                       "the streaming open's plaintext");
        }
    }
    for (k = 0; k <= size + 1; k++) {
        fuzz_sink sink = {0};
        size_t split = k == size + 1 ? FUZZ_BYTES : k;
        int rrv = fuzz_reader_open(1, NULL, 0, data, size, split, &sink);
        FUZZ_CHECK(rrv == rv, "the record reader (v1) agrees with the one-shot");
        if (rv == ZEQ_OK) {
            FUZZ_CHECK(fuzz_same(sink.buf, sink.len, one, onelen),
                       "the record reader's plaintext (v1)");
        }
        else {
            FUZZ_CHECK(sink.len <= (size > ZEQ_ENVELOPE_OVERHEAD
                                    ? size - ZEQ_ENVELOPE_OVERHEAD : 0),
                       "no more bytes emitted than the ciphertext holds");
        }
        fuzz_sink_free(&sink);
    }
    {
        size_t olen = 0;
        unsigned char *buf = malloc(size + 1);
        int orv;
        FUZZ_CHECK(buf != NULL, "memory");
        orv = zeq_record_open_message(1, FUZZ_KEY, NULL, 0, data, size, buf,
                                      &olen);
        FUZZ_CHECK(orv == rv, "zeq_record_open_message (v1) agrees");
        if (rv == ZEQ_OK) {
            FUZZ_CHECK(fuzz_same(buf, olen, one, onelen),
                       "zeq_record_open_message's plaintext (v1)");
        }
        free(buf);
    }
    free(one);
    free(st);
}

static void check_keystream(const uint8_t *data, size_t size)
{
    static const unsigned char iv[ZEQ_ENVELOPE_IV_LEN] = "fuzz iv 12b";
    unsigned char *env = malloc(size + ZEQ_ENVELOPE_OVERHEAD);
    unsigned char *back = malloc(size + 1), *part = malloc(size + 1);
    size_t backlen = 0, i;

    FUZZ_CHECK(env != NULL && back != NULL && part != NULL, "memory");
    FUZZ_CHECK(zeq_envelope_seal(FUZZ_KEY, iv, data, size, env) == ZEQ_OK,
               "sealing the input");
    FUZZ_CHECK(zeq_envelope_open(FUZZ_KEY, env, size + ZEQ_ENVELOPE_OVERHEAD,
                                 back, &backlen) == ZEQ_OK
               && fuzz_same(back, backlen, data, size),
               "the sealed input opens to the input");
    /* Three regions [off, off + len) of the plaintext, from its bytes. */
    for (i = 0; i < 3 && size > 0; i++) {
        size_t off = data[i % size] % (size + 1);
        size_t len = data[(i + 1) % size] % (size - off + 1);
        memcpy(part, data + off, len);
        FUZZ_CHECK(zeq_envelope_keystream_xor(FUZZ_KEY, iv, off, part, len)
                   == ZEQ_OK, "keystream_xor of a region");
        FUZZ_CHECK(fuzz_same(part, len, env + ZEQ_ENVELOPE_OVERHEAD + off, len),
                   "keystream_xor gives the sealed ciphertext of the region");
    }
    free(env);
    free(back);
    free(part);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_open(data, size);
    check_keystream(data, size);
    return 0;
}
