/* Unit tests of src/zeq_limit.c, the handshake guard's tables: the GCRA
 * token buckets (a burst passes, then RATE a second; the retry time is
 * exact; keys are independent; a full group gives up a bucket), the
 * derivation slots (the cap, an address's share, giving back, a slot whose
 * owner is gone or which is stale taken back, a give after a take-back
 * freeing nothing), the rings (the oldest session pushed out and handed
 * back, expired ones not, addresses apart, an entry freed by expiry or
 * given up when its group is full), and the buckets and slots under
 * processes that race on one shared mapping. */
#define _DEFAULT_SOURCE
#include "unit.h"
#include "zeq_limit.h"

#include <stdint.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define T (UINT64_C(1) * ZEQ_LIMIT_TICKS_PER_SEC)   /* ticks in a second */

static zeq_limit *table(int slots, int ring)
{
    size_t n = zeq_limit_size(slots, ring);
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                   -1, 0);

    if (p == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    return zeq_limit_init(p, slots, ring);
}

/* Keys in one rate group: equal bits 20 and up, other tags. */
static uint64_t group_key(uint64_t tag)
{
    return UINT64_C(77) << 20 | tag;
}

static void test_rate(void)
{
    zeq_limit *l = table(4, 0);
    uint64_t iv = zeq_limit_interval(20), tol = zeq_limit_tolerance(20, 200);
    uint64_t now = 1000 * T, retry = 0, k = 0x1234567890abcdefULL;
    int i, ok = 1, ev = 0;

    unit_int((long long)iv, 500, "20 per second: an interval of 500 ticks");
    unit_int((long long)tol, 199 * 500, "burst 200: tolerance 199 intervals");
    unit_int((long long)zeq_limit_interval(100000), 1,
             "a rate above the clock's resolution: one tick");
    unit_int((long long)zeq_limit_tolerance(5, 1), 0, "burst 1: no tolerance");
    for (i = 0; i < 200; i++) {
        ok &= zeq_limit_rate_take(l, k, now, iv, tol, &retry, &ev);
    }
    unit_bool(ok, 1, "a burst of 200 at one instant passes");
    unit_bool(zeq_limit_rate_take(l, k, now, iv, tol, &retry, &ev), 0,
              "the 201st at the same instant is refused");
    unit_int((long long)retry, (long long)iv,
             "and told to wait exactly one interval");
    unit_bool(zeq_limit_rate_take(l, k, now + iv - 1, iv, tol, &retry, &ev),
              0, "one tick before the interval: still refused");
    unit_int((long long)retry, 1, "with one tick to wait");
    unit_bool(zeq_limit_rate_take(l, k, now + iv, iv, tol, &retry, &ev), 1,
              "after the interval: one more passes");
    unit_bool(zeq_limit_rate_take(l, k, now + iv, iv, tol, &retry, &ev), 0,
              "and only one");
    /* 20 a second, sustained: over ten seconds, 200 pass. */
    {
        uint64_t t = now + iv;
        int passed = 0, j;
        for (j = 1; j <= 10 * 20 * 4; j++) {
            passed += zeq_limit_rate_take(l, k, t + (uint64_t)j * iv / 4, iv,
                                          tol, &retry, &ev);
        }
        unit_int(passed, 200, "four times the rate for ten seconds: the rate "
                              "passes (200)");
    }
    unit_bool(zeq_limit_rate_take(l, k ^ 1, now + iv, iv, tol, &retry, &ev),
              1, "another key has its own bucket");
    /* A bucket left alone refills to the burst, and its word is free. */
    ok = 1;
    for (i = 0; i < 200; i++) {
        ok &= zeq_limit_rate_take(l, k, now + 1000 * T, iv, tol, &retry, &ev);
    }
    unit_bool(ok, 1, "after a quiet while the whole burst passes again");
    unit_bool(zeq_limit_rate_take(l, k, now + 1000 * T, iv, tol, &retry, &ev),
              0, "and no more");
}

static void test_rate_group(void)
{
    zeq_limit *l = table(4, 0);
    uint64_t iv = zeq_limit_interval(1), tol = 0, now = 50 * T, retry;
    int i, ev = 0, evictions = 0;

    for (i = 0; i < ZEQ_LIMIT_RATE_WAYS; i++) {
        zeq_limit_rate_take(l, group_key((uint64_t)i), now + (uint64_t)i, iv,
                            tol, &retry, &ev);
        evictions += ev;
    }
    unit_int(evictions, 0, "eight keys of one group fit");
    for (i = 0; i < ZEQ_LIMIT_RATE_WAYS; i++) {
        if (zeq_limit_rate_take(l, group_key((uint64_t)i), now + 10, iv, tol,
                                &retry, &ev)) {
            break;
        }
    }
    unit_int(i, ZEQ_LIMIT_RATE_WAYS, "each of them is empty (burst 1)");
    unit_bool(zeq_limit_rate_take(l, group_key(100), now + 10, iv, tol,
                                  &retry, &ev), 1,
              "a ninth key of the full group passes");
    unit_bool(ev, 1, "by giving up another bucket");
    unit_bool(zeq_limit_rate_take(l, group_key(0), now + 10, iv, tol, &retry,
                                  &ev), 1,
              "the one nearest to full: the first key's, which passes again");
    unit_bool(zeq_limit_rate_take(l, group_key(7), now + 10, iv, tol, &retry,
                                  &ev), 0,
              "the others keep theirs");
}

static uint32_t dead_pid;
static int alive_but(uint32_t pid)
{
    return pid != dead_pid;
}

static void test_slots(void)
{
    zeq_limit *l = table(3, 0);
    uint64_t w[8], now = 1000;
    int a, b, c, d, rec = 0;

    unit_int(zeq_limit_slots(l), 3, "three slots");
    a = zeq_limit_slot_take(l, 1, 101, now, 2, NULL, &rec, &w[0]);
    b = zeq_limit_slot_take(l, 1, 102, now, 2, NULL, &rec, &w[1]);
    unit_bool(a >= 0 && b >= 0 && a != b, 1, "an address takes two slots");
    unit_int(zeq_limit_slot_take(l, 1, 103, now, 2, NULL, &rec, &w[2]),
             ZEQ_LIMIT_SHARE, "not a third: its share is two");
    c = zeq_limit_slot_take(l, 2, 103, now, 2, NULL, &rec, &w[2]);
    unit_bool(c >= 0, 1, "another address takes the third");
    unit_int(zeq_limit_slot_take(l, 3, 104, now, 2, NULL, &rec, &w[3]),
             ZEQ_LIMIT_BUSY, "a fourth is busy");
    unit_int(zeq_limit_slots_taken(l), 3, "three taken");
    zeq_limit_slot_give(l, b, w[1]);
    unit_int(zeq_limit_slots_taken(l), 2, "one given back");
    d = zeq_limit_slot_take(l, 3, 104, now, 2, NULL, &rec, &w[3]);
    unit_int(d, b, "and taken again");
    /* The owner of slot a dies. */
    dead_pid = 101;
    unit_int(zeq_limit_slot_take(l, 4, 105, now, 2, NULL, &rec, &w[4]),
             ZEQ_LIMIT_BUSY, "the cheap attempt does not look at owners");
    unit_int(zeq_limit_slot_take(l, 4, 105, now, 2, alive_but, &rec, &w[4]),
             a, "with the owners looked at, the dead one's slot is taken");
    unit_int(rec, 1, "and counted as taken back");
    zeq_limit_slot_give(l, a, w[0]);
    unit_int(zeq_limit_slots_taken(l), 3,
             "the dead owner's give (too late) frees nothing");
    /* Stale: held past ZEQ_LIMIT_SLOT_STALE seconds. */
    dead_pid = 0;
    rec = 0;
    unit_int(zeq_limit_slot_take(l, 5, 106, now + ZEQ_LIMIT_SLOT_STALE, 2,
                                 alive_but, &rec, &w[5]), ZEQ_LIMIT_BUSY,
             "a slot held exactly the stale time stays");
    a = zeq_limit_slot_take(l, 5, 106, now + ZEQ_LIMIT_SLOT_STALE + 1, 2,
                            alive_but, &rec, &w[5]);
    unit_bool(a >= 0, 1, "one held longer is taken back");
    unit_int(rec, 3, "all three were stale");
    unit_int(zeq_limit_slot_take(l, 6, 0, now, 2, NULL, &rec, &w[6]),
             ZEQ_LIMIT_BUSY, "pid 0 takes nothing");
    {
        zeq_limit *one = table(1, 0);
        unit_bool(zeq_limit_slot_take(one, 9, 200, now, 1, NULL, &rec,
                                      &w[7]) == 0, 1, "a cap of one");
        unit_int(zeq_limit_slot_take(one, 8, 201, now, 1, NULL, &rec, &w[6]),
                 ZEQ_LIMIT_BUSY, "is busy for everyone else");
    }
    unit_bool(zeq_limit_init(w, 0, 0) == NULL, 1, "no slots: refused");
    unit_bool(zeq_limit_init(w, 1, ZEQ_LIMIT_RING_MAX + 1) == NULL, 1,
              "a ring too long: refused");
}

static void id_of(unsigned char id[ZEQ_LIMIT_ID_LEN], int n)
{
    memset(id, 0, ZEQ_LIMIT_ID_LEN);
    id[0] = (unsigned char)n;
    id[31] = (unsigned char)(n >> 8);
}

static void test_rings(void)
{
    zeq_limit *l = table(1, 3);
    unsigned char id[ZEQ_LIMIT_ID_LEN], out[ZEQ_LIMIT_ID_LEN], want[32];
    int64_t now = 5000, exp = 0;
    int i, popped = 0, fg = 0;
    uint64_t a = UINT64_C(1) << 32 | 1, b = UINT64_C(2) << 32 | 2;

    unit_int(zeq_limit_ring_len(l), 3, "rings of three");
    for (i = 1; i <= 3; i++) {
        id_of(id, i);
        popped += zeq_limit_ring_push(l, a, id, now + 3600, now, out, &exp,
                                      &fg);
    }
    unit_int(popped, 0, "three sessions fit");
    id_of(id, 50);
    unit_int(zeq_limit_ring_push(l, b, id, now + 3600, now, out, &exp, &fg),
             0, "another address has its own ring");
    id_of(id, 4);
    unit_int(zeq_limit_ring_push(l, a, id, now + 3600, now + 1, out, &exp,
                                 &fg), 1, "a fourth pushes one out");
    id_of(want, 1);
    unit_mem(out, 32, want, 32, "the oldest");
    unit_int(exp, now + 3600, "with its expiry");
    id_of(id, 5);
    zeq_limit_ring_push(l, a, id, now + 3600, now + 2, out, &exp, &fg);
    id_of(want, 2);
    unit_mem(out, 32, want, 32, "then the next oldest");
    /* A session that expired is not handed back. */
    {
        zeq_limit *s = table(1, 1);
        id_of(id, 1);
        zeq_limit_ring_push(s, a, id, now + 10, now, out, &exp, &fg);
        id_of(id, 2);
        unit_int(zeq_limit_ring_push(s, a, id, now + 100, now + 10, out, &exp,
                                     &fg), 0,
                 "a session past its expiry is not handed back");
        /* All of an address's sessions expired: its entry is free. */
        id_of(id, 3);
        unit_int(zeq_limit_ring_push(s, a, id, now + 300, now + 100, out,
                                     &exp, &fg), 0,
                 "an entry whose sessions all expired starts afresh");
        unit_int(fg, 0, "without giving anyone up");
    }
    /* A full group: five addresses in one group of four. */
    {
        zeq_limit *g = table(1, 2);
        uint64_t k;
        int forgot = 0;
        for (k = 0; k < 5; k++) {
            uint64_t key = k * (ZEQ_LIMIT_RING_ENTRIES / ZEQ_LIMIT_RING_WAYS)
                           << 32;
            id_of(id, (int)k + 1);
            zeq_limit_ring_push(g, key, id, now + 3600, now + (int64_t)k, out,
                                &exp, &fg);
            forgot += fg;
        }
        unit_int(forgot, 1, "a fifth address in a full group gives one up");
        id_of(id, 9);
        unit_int(zeq_limit_ring_push(g, 0, id, now + 3600, now + 9, out, &exp,
                                     &fg), 0,
                 "the one seen longest ago: the first address starts afresh");
        unit_int(fg, 1, "giving up the next oldest");
    }
    {
        zeq_limit *none = table(1, 0);
        unit_int(zeq_limit_ring_push(none, a, id, now + 1, now, out, &exp,
                                     &fg), 0, "no rings: nothing kept");
    }
}

/* Processes racing on one mapping: the buckets let through no more than
 * the burst (plus at most one per racing process: two of them may claim
 * two words for one new key), the slots never more than the cap. */
#define RACERS 4
static void test_processes(void)
{
    zeq_limit *l = table(2, 0);
    _Atomic long *passed = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                                MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    uint64_t iv = zeq_limit_interval(1), tol = zeq_limit_tolerance(1, 100);
    pid_t kids[RACERS];
    int i, status, clean = 1;

    for (i = 0; i < RACERS; i++) {
        kids[i] = fork();
        if (kids[i] == 0) {
            uint64_t retry, w;
            int j, ev, rec = 0;
            for (j = 0; j < 10000; j++) {
                passed[0] += zeq_limit_rate_take(l, 42, 10 * T, iv, tol,
                                                 &retry, &ev);
                int s = zeq_limit_slot_take(l, (uint64_t)(i + 1),
                                            (uint32_t)getpid(), 10, 2, NULL,
                                            &rec, &w);
                if (s >= 0) {
                    long now_held = ++passed[1];
                    if (now_held > passed[2]) {
                        passed[2] = now_held;
                    }
                    passed[1]--;
                    zeq_limit_slot_give(l, s, w);
                }
            }
            _exit(0);
        }
    }
    for (i = 0; i < RACERS; i++) {
        waitpid(kids[i], &status, 0);
        clean &= WIFEXITED(status) && WEXITSTATUS(status) == 0;
    }
    unit_bool(clean, 1, "the racing processes ran");
    unit_bool(passed[0] >= 100 && passed[0] <= 100 + RACERS, 1,
              "%d processes, 40,000 takes at one instant: %ld passed "
              "(burst 100, at most %d more)", RACERS, passed[0], RACERS);
    unit_bool(passed[2] >= 1 && passed[2] <= 2, 1,
              "never more than two slots held at once (held at most: %ld)",
              passed[2]);
    unit_int(zeq_limit_slots_taken(l), 0, "every slot given back");
}

int main(void)
{
    test_rate();
    test_rate_group();
    test_slots();
    test_rings();
    test_processes();
    return unit_done();
}
