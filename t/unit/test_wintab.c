/* Unit tests of src/zeq_wintab.c, the shared table of v2 replay windows:
 * numbers accepted once per session; a slot given to a new session refuses
 * every number of the old one and none of the new one's; more sessions
 * than slots (the oldest lose their windows, the others keep theirs);
 * expired and released slots taken first; a slot beyond the table; a lock
 * word left by a process that died taken back, its window emptied; one
 * a live process never gives back (its pid reused after its holder died)
 * waited for a bounded time only: the number refused as busy, the slot
 * skipped by claims, never a hang; and processes racing on one mapping
 * with the same numbers of the same sessions, exactly one of them
 * accepting each. */
#define _DEFAULT_SOURCE
#include "unit.h"
#include "zeq_wintab.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static void *shared(size_t n)
{
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                   -1, 0);

    if (p == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    return p;
}

static void table(zeq_wintab *t, uint32_t slots)
{
    size_t n = zeq_wintab_size(slots);

    memset(t, 0, sizeof(*t));
    if (zeq_wintab_format(t, shared(n), n, slots) != ZEQ_OK) {
        fprintf(stderr, "format failed\n");
        exit(1);
    }
    t->self = (uint32_t)getpid();
}

static void hash_of(unsigned n, unsigned char h[ZEQ_WINTAB_HASH_LEN])
{
    unit_fill(h, ZEQ_WINTAB_HASH_LEN, n + 1000);
}

static void test_basics(void)
{
    zeq_wintab t, u;
    unsigned char a[32], b[32];
    uint32_t s;
    int ev = -1;
    size_t n = zeq_wintab_size(4);
    void *m = shared(n);

    unit_int(zeq_wintab_format(&t, m, n, 0), ZEQ_ERR_BAD, "0 slots: refused");
    unit_int(zeq_wintab_format(&t, m, n - 1, 4), ZEQ_ERR_BAD,
             "too little memory: refused");
    unit_int(zeq_wintab_attach(&t, m, n), ZEQ_ERR_BAD,
             "attaching to memory that holds no table: refused");
    unit_int(zeq_wintab_format(&t, m, n, 4), ZEQ_OK, "a table of 4 slots");
    unit_int(zeq_wintab_attach(&u, m, n), ZEQ_OK, "attaching to it");
    unit_int(u.slots, 4, "finds its 4 slots");
    t.self = u.self = (uint32_t)getpid();
    t.alive = u.alive = NULL;
    hash_of(1, a);
    hash_of(2, b);
    s = zeq_wintab_claim(&t, a, 2000, 1000, &ev);
    unit_bool(s < 4 && ev == 0, 1, "a claim in an empty table evicts nothing");
    unit_int(zeq_wintab_accept(&u, s, a, 0), ZEQ_OK, "0 accepted");
    unit_int(zeq_wintab_accept(&t, s, a, 0), ZEQ_ERR_REPLAY,
             "0 again (through the other handle): refused");
    unit_int(zeq_wintab_accept(&t, s, a, 5000), ZEQ_OK, "5000 accepted");
    unit_int(zeq_wintab_accept(&t, s, a, 5000 - 1024), ZEQ_ERR_REPLAY,
             "a number 1,024 below the highest: too old");
    unit_int(zeq_wintab_accept(&t, s, a, 4999), ZEQ_OK, "4999 accepted");
    unit_int(zeq_wintab_accept(&t, s, a, ZEQ_SEQ_MAX + 1), ZEQ_ERR_BAD,
             "above 2^53 - 1: ZEQ_ERR_BAD");
    unit_int(zeq_wintab_accept(&t, s, b, 1), ZEQ_ERR_GONE,
             "another session's id on that slot: ZEQ_ERR_GONE");
    unit_int(zeq_wintab_accept(&t, 4, a, 1), ZEQ_ERR_GONE,
             "a slot beyond the table: ZEQ_ERR_GONE");
    zeq_wintab_release(&t, s, b);
    unit_int(zeq_wintab_accept(&t, s, a, 4998), ZEQ_OK,
             "a release naming another session leaves the window");
    zeq_wintab_release(&t, s, a);
    unit_int(zeq_wintab_accept(&t, s, a, 4997), ZEQ_ERR_GONE,
             "a released window is gone");
}

/* A slot given to a new session: the old one's numbers never pass again,
 * the new one's are all fresh. */
static void test_reuse(void)
{
    zeq_wintab t;
    unsigned char a[32], b[32];
    uint32_t sa, sb, q;
    int ev = -1, all = 1;

    table(&t, 1);
    hash_of(10, a);
    hash_of(11, b);
    sa = zeq_wintab_claim(&t, a, 2000, 1000, &ev);
    for (q = 1; q <= 5; q++) {
        all &= zeq_wintab_accept(&t, sa, a, q) == ZEQ_OK;
    }
    unit_bool(all, 1, "the old session accepts 1 to 5");
    sb = zeq_wintab_claim(&t, b, 2000, 1000, &ev);
    unit_bool(sb == sa && ev == 1, 1,
              "a second session in a table of one takes that slot from the "
              "live first (evicted)");
    unit_int(zeq_wintab_accept(&t, sa, a, 6), ZEQ_ERR_GONE,
             "the old session's next number: ZEQ_ERR_GONE");
    unit_int(zeq_wintab_accept(&t, sa, a, 3), ZEQ_ERR_GONE,
             "its numbers seen before: ZEQ_ERR_GONE, never accepted");
    all = 1;
    for (q = 1; q <= 5; q++) {
        all &= zeq_wintab_accept(&t, sb, b, q) == ZEQ_OK;
    }
    unit_bool(all, 1, "the new session accepts 1 to 5 (the old one's "
                      "numbers, not refused for it)");
    unit_int(zeq_wintab_accept(&t, sb, b, 3), ZEQ_ERR_REPLAY,
             "and refuses its own 3 again");
    unit_int(zeq_wintab_accept(&t, sb, a, 7), ZEQ_ERR_GONE,
             "the old session still cannot use the slot");
}

/* 100 sessions in 16 slots: the 16 latest keep their windows. */
static void test_overflow(void)
{
    zeq_wintab t;
    unsigned char h[100][32];
    uint32_t slot[100], i;
    int ev, evicted = 0, gone = 0, kept = 0, refused = 0;

    table(&t, 16);
    for (i = 0; i < 100; i++) {
        hash_of(100 + i, h[i]);
        slot[i] = zeq_wintab_claim(&t, h[i], 5000, 1000, &ev);
        evicted += ev;
        zeq_wintab_accept(&t, slot[i], h[i], 42);
    }
    for (i = 0; i < 100; i++) {
        int rv = zeq_wintab_accept(&t, slot[i], h[i], 43);
        if (i < 84) {
            gone += rv == ZEQ_ERR_GONE;
        }
        else {
            kept += rv == ZEQ_OK;
            refused += zeq_wintab_accept(&t, slot[i], h[i], 42)
                       == ZEQ_ERR_REPLAY;
        }
    }
    unit_int(evicted, 84, "100 live sessions in 16 slots: 84 claims took a "
                          "slot from a live session");
    unit_int(gone, 84, "the 84 oldest sessions have lost their windows");
    unit_int(kept, 16, "the 16 latest accept a new number");
    unit_int(refused, 16, "and still refuse the number they accepted");
}

/* Expired and released slots are taken before live ones. */
static void test_free_first(void)
{
    zeq_wintab t;
    unsigned char h[20][32];
    uint32_t slot[20], i;
    int ev, evicted = 0, live = 0;

    table(&t, 8);
    for (i = 0; i < 8; i++) {
        hash_of(200 + i, h[i]);
        /* Even ones expire at 1500, odd ones live on. */
        slot[i] = zeq_wintab_claim(&t, h[i], i % 2 ? 9000 : 1500, 1000, &ev);
    }
    for (i = 8; i < 12; i++) {
        hash_of(200 + i, h[i]);
        slot[i] = zeq_wintab_claim(&t, h[i], 9000, 2000, &ev);
        evicted += ev;
    }
    for (i = 1; i < 12; i++) {
        if (i >= 8 || i % 2 == 1) {
            live += zeq_wintab_accept(&t, slot[i], h[i], 1) == ZEQ_OK;
        }
    }
    unit_int(evicted, 0, "4 claims with 4 expired slots: none evicted");
    unit_int(live, 8, "the 4 live sessions and the 4 new ones keep their "
                      "windows");
    zeq_wintab_release(&t, slot[1], h[1]);
    hash_of(300, h[12]);
    slot[12] = zeq_wintab_claim(&t, h[12], 9000, 2000, &ev);
    unit_bool(slot[12] == slot[1] && ev == 0, 1,
              "a released slot is the one a full table's next claim takes");
}

/* A lock word left by a process that died is taken back; its slot is
 * emptied (the session loses its window, nothing is accepted twice). */
static int alive_never(uint32_t pid)
{
    (void)pid;
    return 0;
}

static void test_dead_holder(void)
{
    zeq_wintab t;
    unsigned char a[32];
    uint32_t s, dead;
    pid_t kid;
    int ev;
    _Atomic uint32_t *lock;

    table(&t, 1);
    hash_of(400, a);
    s = zeq_wintab_claim(&t, a, 9000, 1000, &ev);
    zeq_wintab_accept(&t, s, a, 1);
    kid = fork();
    if (kid == 0) {
        _exit(0);
    }
    waitpid(kid, NULL, 0);
    dead = (uint32_t)kid;
    /* The lock word is the first field of a slot, after the table's head
     * (zeq_wintab_size(0) bytes). */
    lock = (_Atomic uint32_t *)((char *)t.mem + zeq_wintab_size(0));
    atomic_store(lock, dead);
    t.alive = alive_never;
    unit_int(zeq_wintab_accept(&t, s, a, 1), ZEQ_ERR_GONE,
             "a slot whose lock a dead process held: taken back, its window "
             "gone (1 is not accepted again)");
    unit_int(atomic_load(lock), 0, "and the lock word is free again");
}

/* A lock word that a live process holds and never gives back (a dead
 * holder's pid given to another process): waiters give up after a bounded
 * wait instead of spinning for ever. The number is refused as busy (not
 * accepted, the session keeps its slot), a claim skips the slot, and a
 * claim that finds no slot it can lock says so. */
static int alive_always(uint32_t pid)
{
    (void)pid;
    return 1;
}

static void test_stuck_holder(void)
{
    zeq_wintab t;
    unsigned char a[32], b[32], c[32];
    uint32_t s, other;
    int ev;
    _Atomic uint32_t *lock;

    table(&t, 2);
    hash_of(450, a);
    hash_of(451, b);
    hash_of(452, c);
    s = zeq_wintab_claim(&t, a, 9000, 1000, &ev);
    unit_int(zeq_wintab_accept(&t, s, a, 1), ZEQ_OK, "a session's number 1");
    lock = (_Atomic uint32_t *)((char *)t.mem + zeq_wintab_size(s));
    atomic_store(lock, (uint32_t)getppid());
    t.alive = alive_always;
    unit_int(zeq_wintab_accept(&t, s, a, 2), ZEQ_ERR_BUSY,
             "its slot locked for good by a live process: ZEQ_ERR_BUSY, no "
             "hang");
    unit_int(atomic_load(lock), (uint32_t)getppid(),
             "the lock word stays its holder's");
    other = zeq_wintab_claim(&t, b, 9000, 1000, &ev);
    unit_int(other, s ^ 1, "a claim skips the stuck slot: the other one");
    unit_int(zeq_wintab_claim(&t, c, 9000, 1000, &ev), ZEQ_WINTAB_NONE,
             "with every other slot live and the stuck one unlockable, a "
             "claim takes none: ZEQ_WINTAB_NONE (b keeps its window)");
    unit_int(zeq_wintab_accept(&t, other, b, 1), ZEQ_OK,
             "and the session of the other slot accepts its numbers");
    zeq_wintab_release(&t, s, a);
    unit_int(atomic_load(lock), (uint32_t)getppid(),
             "a release of the stuck slot gives up too, leaving the word");
    atomic_store(lock, 0);
    unit_int(zeq_wintab_accept(&t, s, a, 2), ZEQ_OK,
             "once the word is free again the session goes on: 2 accepted");
    unit_int(zeq_wintab_accept(&t, s, a, 1), ZEQ_ERR_REPLAY,
             "and 1 still refused");
}

/* Processes race with the same numbers of the same sessions: each number
 * of each session is accepted exactly once. */
#define RACERS 4
#define RACE_SESSIONS 4
#define RACE_SEQS 3000
static void test_processes(void)
{
    zeq_wintab t;
    unsigned char h[RACE_SESSIONS][32];
    uint32_t slot[RACE_SESSIONS];
    _Atomic int *count = shared(sizeof(_Atomic int) * RACE_SESSIONS
                                * RACE_SEQS);
    pid_t kids[RACERS];
    int i, k, ev, status, clean = 1, once = 1, total = 0;

    table(&t, 8);
    for (k = 0; k < RACE_SESSIONS; k++) {
        hash_of(500 + (unsigned)k, h[k]);
        slot[k] = zeq_wintab_claim(&t, h[k], 9000, 1000, &ev);
    }
    for (i = 0; i < RACERS; i++) {
        kids[i] = fork();
        if (kids[i] == 0) {
            zeq_wintab mine = t;
            int q;
            mine.self = (uint32_t)getpid();
            for (q = 0; q < RACE_SEQS; q++) {
                for (k = 0; k < RACE_SESSIONS; k++) {
                    /* Each racer walks the numbers in its own order. */
                    int seq = (i % 2) ? q : RACE_SEQS - 1 - q;
                    if (zeq_wintab_accept(&mine, slot[k], h[k],
                                          (uint64_t)seq) == ZEQ_OK) {
                        count[k * RACE_SEQS + seq]++;
                    }
                }
            }
            _exit(0);
        }
    }
    for (i = 0; i < RACERS; i++) {
        waitpid(kids[i], &status, 0);
        clean &= WIFEXITED(status) && WEXITSTATUS(status) == 0;
    }
    for (i = 0; i < RACE_SESSIONS * RACE_SEQS; i++) {
        total += count[i];
        /* Racers walking down reach numbers 1,024 below the highest seen:
         * those may be refused by all (too old), never accepted twice. */
        once &= count[i] <= 1;
    }
    unit_bool(clean, 1, "the racing processes ran");
    unit_bool(once, 1, "%d processes, %d sessions, the same %d numbers: none "
                       "accepted twice", RACERS, RACE_SESSIONS, RACE_SEQS);
    unit_ok(total >= RACE_SESSIONS * 1024, "and each session accepted many "
                                           "(%d in all)", total);
    for (k = 0, once = 1; k < RACE_SESSIONS; k++) {
        once &= count[k * RACE_SEQS + RACE_SEQS - 1] == 1;
    }
    unit_bool(once, 1, "every session's highest number was accepted once");
}

int main(void)
{
    /* A waiter that never gives up ends the run instead of hanging it. */
    alarm(300);
    test_basics();
    test_reuse();
    test_overflow();
    test_free_first();
    test_dead_holder();
    test_stuck_holder();
    test_processes();
    return unit_done();
}
