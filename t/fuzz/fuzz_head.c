/* The scanner of the response head before a WebSocket's frames
 * (zeq_frame_head_scan and zeq_frame_head_status in src/zeq_frame.c),
 * against a reference written here: the head ends at the first LF that
 * follows an LF or an LF CR; its status is that of an HTTP/1.x status
 * line. Scanned whole, byte by byte and in two pieces, the scanner must
 * stop at the same byte and give the same status.
 * libFuzzer options: -max_len=1024 */
#include "fuzz.h"

#include "zeq_frame.h"

/* The offset just past the head, or 0 when it goes on. */
static size_t ref_end(const uint8_t *s, size_t n)
{
    size_t i;

    for (i = 1; i < n; i++) {
        if (s[i] == '\n'
            && (s[i - 1] == '\n' || (i >= 2 && s[i - 1] == '\r' && s[i - 2] == '\n'))) {
            return i + 1;
        }
    }
    return 0;
}

static int ref_status(const uint8_t *s, size_t n)
{
    int code = 0, i;

    if (n < 12 || memcmp(s, "HTTP/1.", 7) != 0 || s[8] != ' ') {
        return 0;
    }
    for (i = 9; i < 12; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return 0;
        }
        code = code * 10 + (s[i] - '0');
    }
    return code >= 100 && code <= 599 ? code : 0;
}

/* Scans in pieces of step bytes (0: whole); returns the head's length or
 * 0, and the status. */
static size_t scan(const uint8_t *s, size_t n, size_t step, int *status)
{
    zeq_frame_head h;
    size_t at = 0;

    zeq_frame_head_reset(&h);
    while (at < n) {
        size_t len = step == 0 || n - at < step ? n - at : step;
        size_t used = zeq_frame_head_scan(&h, s + at, len);
        FUZZ_CHECK(used <= len, "head_scan: at most what it was given");
        at += used;
        if (h.state == 3) {
            break;
        }
        FUZZ_CHECK(used == len, "head_scan: all of it while the head goes on");
    }
    FUZZ_CHECK(h.len == at, "head_scan: the bytes scanned");
    *status = zeq_frame_head_status(&h);
    FUZZ_CHECK(h.state == 3 || *status == 0, "no status before the head ends");
    return h.state == 3 ? at : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t end = ref_end(data, size), steps[4] = {0, 1, 2, 7}, i;
    int want = end ? ref_status(data, end) : 0;

    for (i = 0; i < 4; i++) {
        int status;
        size_t got = scan(data, size, steps[i], &status);
        FUZZ_CHECK(got == end, "head_scan: the head ends where the reference's does");
        FUZZ_CHECK(status == want, "head_status: the reference's status");
    }
    if (size > 0) {
        int status;
        zeq_frame_head h;
        size_t k = data[0] % size, a, b = 0;
        zeq_frame_head_reset(&h);
        a = zeq_frame_head_scan(&h, data, k);
        if (h.state != 3) {
            b = zeq_frame_head_scan(&h, data + k, size - k);
        }
        status = zeq_frame_head_status(&h);
        FUZZ_CHECK((h.state == 3 ? a + b : 0) == end && status == want,
                   "head_scan in two pieces");
    }
    return 0;
}
