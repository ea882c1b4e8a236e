/* The record reader (src/zeq_record.c) as the envelope and record
 * harnesses feed it: whole, in two pieces, or byte by byte. */
#ifndef ZEQ_FUZZ_READER_H
#define ZEQ_FUZZ_READER_H

#include "fuzz.h"
#include "zeq_record.h"

/* Feeds a reader of version (v2: under FUZZ_KEY with aad) the input in
 * two pieces split at split (size: whole), or byte by byte when split is
 * FUZZ_BYTES; what it emits goes to sink. Returns its result; a reader
 * that failed must keep its error. */
#define FUZZ_BYTES ((size_t)-1)

static inline int fuzz_reader_open(int version, const unsigned char *aad,
                                   size_t aadlen, const uint8_t *data,
                                   size_t size, size_t split,
                                   fuzz_sink *sink)
{
    zeq_record_reader *rd = zeq_record_reader_new(version, FUZZ_KEY, aad,
                                                  aadlen, ZEQ_RECORD_MAX,
                                                  fuzz_sink_emit, sink);
    int rv = ZEQ_OK;
    size_t i;

    FUZZ_CHECK(rd != NULL, "a reader");
    if (split == FUZZ_BYTES) {
        for (i = 0; i < size && rv == ZEQ_OK; i++) {
            rv = zeq_record_reader_feed(rd, data + i, 1);
        }
    }
    else {
        rv = zeq_record_reader_feed(rd, data, split);
        if (rv == ZEQ_OK) {
            rv = zeq_record_reader_feed(rd, data + split, size - split);
        }
    }
    if (rv == ZEQ_OK) {
        rv = zeq_record_reader_finish(rd);
    }
    if (rv != ZEQ_OK) {
        FUZZ_CHECK(zeq_record_reader_feed(rd, data, size) == rv
                   && zeq_record_reader_finish(rd) == rv,
                   "a failed reader keeps its error");
    }
    zeq_record_reader_free(rd);
    return rv;
}

#endif
