/* Unit tests of the per-process record cache (src/zeq_reccache.c): what it
 * answers and for how long (the record's expiry, the recheck after
 * ZEQ_RECCACHE_RECHECK seconds), ids that share a slot, drops, and readers
 * racing writers on one slot: a reader never gets a torn entry. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zeq_reccache.h"
#include "unit.h"

/* An entry whose every byte follows from its id's number n. */
static void entry_of(unsigned n, int64_t now, zeq_reccache_entry *e)
{
    memset(e, 0, sizeof(*e));
    /* Ids n and n + ZEQ_RECCACHE_SLOTS share a slot (the first 4 bytes). */
    e->hash[0] = (unsigned char)(n >> 24);
    e->hash[1] = (unsigned char)(n >> 16);
    e->hash[2] = (unsigned char)(n >> 8);
    e->hash[3] = (unsigned char)n;
    unit_fill(e->hash + 4, sizeof(e->hash) - 4, n);
    unit_fill(e->scope, sizeof(e->scope), n + 1);
    e->expires = now + 3600;
    e->checked = now;
    e->window = n;
    e->keys.version = 2;
    unit_fill(e->keys.c2s, sizeof(e->keys.c2s), n + 2);
    unit_fill(e->keys.s2c, sizeof(e->keys.s2c), n + 3);
}

static int same_entry(const zeq_reccache_entry *a, const zeq_reccache_entry *b)
{
    return memcmp(a->hash, b->hash, sizeof(a->hash)) == 0
           && memcmp(a->scope, b->scope, sizeof(a->scope)) == 0
           && a->expires == b->expires && a->checked == b->checked
           && a->window == b->window && a->keys.version == b->keys.version
           && memcmp(a->keys.c2s, b->keys.c2s, sizeof(a->keys.c2s)) == 0
           && memcmp(a->keys.s2c, b->keys.s2c, sizeof(a->keys.s2c)) == 0;
}

static int all_zero(const void *p, size_t n)
{
    const unsigned char *c = p;
    size_t i;

    for (i = 0; i < n; i++) {
        if (c[i] != 0) {
            return 0;
        }
    }
    return 1;
}

static void test_basics(void)
{
    const int64_t now = 1700000000;
    zeq_reccache_entry e, got, other;

    zeq_reccache_clear();
    entry_of(5, now, &e);
    unit_bool(zeq_reccache_get(e.hash, now, &got), 0,
              "an empty cache misses");
    unit_bool(all_zero(&got, sizeof(got)), 1, "and a miss zeroes its output");
    zeq_reccache_put(&e);
    unit_bool(zeq_reccache_get(e.hash, now, &got), 1, "a cached entry hits");
    unit_bool(same_entry(&got, &e), 1, "with every field as it was put");
    unit_bool(zeq_reccache_get(e.hash, now + ZEQ_RECCACHE_RECHECK - 1, &got),
              1, "it answers %d s after it was read from the store",
              ZEQ_RECCACHE_RECHECK - 1);
    unit_bool(zeq_reccache_get(e.hash, now + ZEQ_RECCACHE_RECHECK, &got), 0,
              "and misses at %d s: the store is read again",
              ZEQ_RECCACHE_RECHECK);
    unit_bool(zeq_reccache_get(e.hash, now - 1, &got), 0,
              "a clock that went back misses too");
    e.expires = now + 10;
    zeq_reccache_put(&e);
    unit_bool(zeq_reccache_get(e.hash, now + 9, &got), 1,
              "an entry expiring in 10 s answers at 9 s");
    unit_bool(zeq_reccache_get(e.hash, now + 10, &got), 0,
              "and never at its expiry");
    entry_of(6, now, &other);
    unit_bool(zeq_reccache_get(other.hash, now, &got), 0,
              "another id misses");
    entry_of(5 + ZEQ_RECCACHE_SLOTS, now, &other);
    zeq_reccache_put(&other);
    unit_bool(zeq_reccache_get(other.hash, now, &got), 1,
              "an id of the same slot replaces the first");
    unit_bool(zeq_reccache_get(e.hash, now, &got), 0,
              "which then misses (not the other's entry)");
    zeq_reccache_drop(other.hash);
    unit_bool(zeq_reccache_get(other.hash, now, &got), 0,
              "a dropped entry misses");
    zeq_reccache_put(&e);
    zeq_reccache_clear();
    unit_bool(zeq_reccache_get(e.hash, now, &got), 0,
              "after a clear every entry misses");
}

/* Writers fill one slot with entries of ids that share it while readers
 * read it: every hit must be whole (the entry of the id asked for). */
#define RACE_IDS 4
#define RACE_ROUNDS 200000

static atomic_int race_stop;
static atomic_long race_hits, race_torn;

static void *race_writer(void *arg)
{
    unsigned k = (unsigned)(uintptr_t)arg, i;
    zeq_reccache_entry e;

    for (i = 0; i < RACE_ROUNDS; i++) {
        entry_of(7 + ZEQ_RECCACHE_SLOTS * ((i + k) % RACE_IDS), 1700000000,
                 &e);
        zeq_reccache_put(&e);
    }
    return NULL;
}

static void *race_reader(void *arg)
{
    zeq_reccache_entry want[RACE_IDS], got;
    unsigned i = (unsigned)(uintptr_t)arg;

    for (unsigned k = 0; k < RACE_IDS; k++) {
        entry_of(7 + ZEQ_RECCACHE_SLOTS * k, 1700000000, &want[k]);
    }
    while (!atomic_load(&race_stop)) {
        unsigned k = i++ % RACE_IDS;
        if (zeq_reccache_get(want[k].hash, 1700000000, &got)) {
            atomic_fetch_add(&race_hits, 1);
            if (!same_entry(&got, &want[k])) {
                atomic_fetch_add(&race_torn, 1);
            }
        }
    }
    return NULL;
}

static void test_race(void)
{
    pthread_t w[2], r[2];
    unsigned i;

    zeq_reccache_clear();
    for (i = 0; i < 2; i++) {
        pthread_create(&r[i], NULL, race_reader, (void *)(uintptr_t)i);
    }
    for (i = 0; i < 2; i++) {
        pthread_create(&w[i], NULL, race_writer, (void *)(uintptr_t)i);
    }
    for (i = 0; i < 2; i++) {
        pthread_join(w[i], NULL);
    }
    atomic_store(&race_stop, 1);
    for (i = 0; i < 2; i++) {
        pthread_join(r[i], NULL);
    }
    printf("# race: %ld hits read\n", atomic_load(&race_hits));
    unit_ok(atomic_load(&race_hits) > 0,
            "readers racing two writers on one slot had hits");
    unit_int(atomic_load(&race_torn), 0,
             "and none of them was torn or another id's entry");
}

int main(void)
{
    test_basics();
    test_race();
    return unit_done();
}
