/* The protocol v2 sealed message (src/zeq_record.c), record by record.
 * The input is a message under FUZZ_KEY and FUZZ_AAD. The one-shot opener
 * (zeq_record_open_message) and the streaming reader fed whole, byte by
 * byte and in two pieces split at every byte boundary, as a stream parser
 * sees it, must agree: the same result, the same plaintext when it opens,
 * and, when it does not, the same records emitted before the failure (each
 * of them one that verified). An emit callback that refuses fails the
 * reader with ZEQ_ERR_CRYPTO exactly when a record held bytes.
 * libFuzzer options: -max_len=512 */
#include "fuzz.h"

#include "reader.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned char *one = malloc(size + 1);
    size_t onelen = 0, k;
    fuzz_sink whole = {0}, stop = {0};
    int rv, wrv;

    FUZZ_CHECK(one != NULL, "memory");
    rv = zeq_record_open_message(2, FUZZ_KEY, FUZZ_AAD, FUZZ_AAD_LEN, data,
                                 size, one, &onelen);
    FUZZ_CHECK(rv == ZEQ_OK || rv == ZEQ_ERR_AUTH || rv == ZEQ_ERR_BAD
               || rv == ZEQ_ERR_SHORT, "the one-shot open: OK, AUTH, BAD, SHORT");
    if (rv == ZEQ_OK) {
        FUZZ_CHECK(size >= ZEQ_RECORD_EMPTY_LEN
                   && onelen <= size - ZEQ_RECORD_EMPTY_LEN,
                   "the plaintext is shorter than the message by its overhead");
    }
    wrv = fuzz_reader_open(2, FUZZ_AAD, FUZZ_AAD_LEN, data, size, size, &whole);
    FUZZ_CHECK(wrv == rv, "the reader fed whole agrees with the one-shot open");
    if (rv == ZEQ_OK) {
        FUZZ_CHECK(fuzz_same(whole.buf, whole.len, one, onelen),
                   "the reader's plaintext is the one-shot's");
    }
    for (k = 0; k <= size + 1; k++) {
        fuzz_sink part = {0};
        size_t split = k == size + 1 ? FUZZ_BYTES : k;
        int prv = fuzz_reader_open(2, FUZZ_AAD, FUZZ_AAD_LEN, data, size,
                                   split, &part);
        FUZZ_CHECK(prv == rv, "the reader fed in pieces agrees");
        FUZZ_CHECK(fuzz_same(part.buf, part.len, whole.buf, whole.len),
                   "the reader fed in pieces emits what it emits fed whole");
        fuzz_sink_free(&part);
    }
    stop.stop = 1;
    wrv = fuzz_reader_open(2, FUZZ_AAD, FUZZ_AAD_LEN, data, size, size, &stop);
    FUZZ_CHECK(wrv == (whole.len > 0 ? ZEQ_ERR_CRYPTO : rv),
               "a refusing emit fails the reader at the first bytes");
    fuzz_sink_free(&stop);
    fuzz_sink_free(&whole);
    free(one);
    return 0;
}
