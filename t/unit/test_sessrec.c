/* Unit tests of the session record codec (src/zeq_sessrec.c): the vectors
 * of docs/PROTOCOL.md section 19 (computed with Perl CryptX by
 * t/unit/vectors_sessrec.pl), round trips of every kind of record, and
 * every way a stored record can be wrong: another record key, another id,
 * each byte altered, truncated or lengthened, old clear records, unknown
 * versions and flags. None of them opens. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#include "zeq_sessrec.h"
#include "unit.h"

static const char v_ikm[] = "zeq-e2e test record key, 32 bytes or more";
static const char v_master[] =
    "cda08b72d3e7077aea252f549d1d4ad91bb386c0b3304a75633524c68d9c3b54";
static const char v_key_id[] = "ea974a02";
static const char v_sid[] = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
static const char v_id_hash[] =
    "ea866a757e4c38babfa8127cbe9a409d3e1f93a00ff1488ff735fcf917afffd0";
static const char v_rec1[] =
    "03010000ea974a020102030405060708090a0b0c524f2422ff522066c2902f8833f6"
    "9d27d1e4ebca1cc3927f3cd12854bb91a3e35cee64ac2428a09e4d7d3ea5b94396ad"
    "6281ac865c2265828b5ed27d847c999db5c93c894a54ba6b9b28082604dba80c";
static const char v_rec2[] =
    "03020000ea974a020102030405060708090a0b0c524f2422ff522066c2902f8833f6"
    "9d27d1e4ebca1cc3927f3cd12854bb91a3e35cee64ac2428a09e4d7d3ea5b94396ad"
    "6281ac865c2265828b5ed27d847c999d4dd0bfe7b0e7150f49b4a25b573878fc40e4"
    "dab404f17a58684f0e7b4d048591e6e267bf6f6a2fcad81b078651592c78";
/* The v2 record of a session no request has named yet (flags 0x02). */
static const char v_rec2_unused[] =
    "03020200ea974a020102030405060708090a0b0c524f2422ff522066c2902f8833f6"
    "9d27d1e4ebca1cc3927f3cd12854bb91a3e35cee64ac2428a09e4d7d3ea5b94396ad"
    "6281ac865c2265828b5ed27d847c999d4dd0bfe7b0e7150f49b4a25b573878fc40e4"
    "dab404f17a58684f0e7b4d04859192436e27593169d74e121ffe5e1863ad";
/* The v2 record of a session whose window is in the window table, at slot
 * 123456 (flags 0x04). */
static const char v_rec2_slot[] =
    "03020400ea974a020102030405060708090a0b0c524f2422ff522066c2902f8833f6"
    "9d27d1e4ebca1cc3927f3cd12854bb91a3e35cee64ac2428a09e4d7d3ea5b94396ad"
    "6281ac865c2265828b5ed27d847c999d4dd0bfe7b0e7150f49b4a25b573878fc40e4"
    "dab404f17a58684f0e7b4d0485912022411a50782905cf2399b2aa25d78b8b55e5da";

static void vector_record(zeq_sessrec *rec, int version)
{
    size_t n;
    unsigned char *scope = unit_unhex("00112233445566778899aabbccddeeff", &n);

    memset(rec, 0, sizeof(*rec));
    memcpy(rec->scope, scope, sizeof(rec->scope));
    free(scope);
    rec->created = 1700000000;
    rec->expires = 1700003600;
    rec->keys.version = version;
    memset(rec->keys.c2s, 0x1f, sizeof(rec->keys.c2s));
    memset(rec->keys.s2c, version == 2 ? 0x2e : 0x1f, sizeof(rec->keys.s2c));
}

static void id_hash_of(const char *sid, unsigned char out[32])
{
    SHA256((const unsigned char *)sid, strlen(sid), out);
}

static int same_record(const zeq_sessrec *a, const zeq_sessrec *b)
{
    return memcmp(a->scope, b->scope, sizeof(a->scope)) == 0
           && a->created == b->created && a->expires == b->expires
           && a->keys.version == b->keys.version
           && memcmp(a->keys.c2s, b->keys.c2s, sizeof(a->keys.c2s)) == 0
           && memcmp(a->keys.s2c, b->keys.s2c, sizeof(a->keys.s2c)) == 0
           && a->has_window == b->has_window && a->unused == b->unused
           && a->has_slot == b->has_slot && (!a->has_slot || a->slot == b->slot)
           && (!a->has_window
               || memcmp(&a->window, &b->window, sizeof(a->window)) == 0);
}

static void test_vectors(void)
{
    zeq_sessrec_key key;
    zeq_sessrec rec, got;
    unsigned char hash[32], out[ZEQ_SESSREC_MAX_LEN], *want, *nonce;
    size_t wl, nl, n;
    int v;

    unit_int(zeq_sessrec_key_derive((const unsigned char *)v_ikm,
                                    strlen(v_ikm), &key), ZEQ_OK,
             "vectors: the record key derives");
    want = unit_unhex(v_master, &wl);
    unit_mem(key.master, sizeof(key.master), want, wl, "vectors: master");
    free(want);
    want = unit_unhex(v_key_id, &wl);
    unit_mem(key.id, sizeof(key.id), want, wl, "vectors: key id");
    free(want);
    id_hash_of(v_sid, hash);
    want = unit_unhex(v_id_hash, &wl);
    unit_mem(hash, sizeof(hash), want, wl, "vectors: id hash = SHA-256(id)");
    free(want);
    nonce = unit_unhex("0102030405060708090a0b0c", &nl);
    for (v = 1; v <= 2; v++) {
        vector_record(&rec, v);
        n = zeq_sessrec_seal(&key, &rec, hash, nonce, out);
        want = unit_unhex(v == 1 ? v_rec1 : v_rec2, &wl);
        unit_int((long long)n, v == 1 ? 100 : 132,
                 "vectors: a v%d record is %d bytes", v, v == 1 ? 100 : 132);
        unit_mem(out, n, want, wl, "vectors: the v%d record, byte for byte", v);
        unit_int(zeq_sessrec_open(&key, want, wl, hash, &got), ZEQ_OK,
                 "vectors: the v%d record (CryptX) opens", v);
        unit_bool(same_record(&rec, &got), 1,
                  "vectors: it holds the v%d session", v);
        free(want);
    }
    vector_record(&rec, 2);
    rec.unused = 1;
    n = zeq_sessrec_seal(&key, &rec, hash, nonce, out);
    want = unit_unhex(v_rec2_unused, &wl);
    unit_mem(out, n, want, wl, "vectors: the unused v2 record, byte for byte");
    unit_int(zeq_sessrec_open(&key, want, wl, hash, &got), ZEQ_OK,
             "vectors: the unused v2 record (CryptX) opens");
    unit_bool(got.unused, 1, "vectors: and says it is unused");
    free(want);
    vector_record(&rec, 2);
    rec.has_slot = 1;
    rec.slot = 123456;
    n = zeq_sessrec_seal(&key, &rec, hash, nonce, out);
    want = unit_unhex(v_rec2_slot, &wl);
    unit_int((long long)n, 136, "vectors: a v2 record naming its window's "
                                "slot is 136 bytes");
    unit_mem(out, n, want, wl, "vectors: the v2 record of slot 123456, byte "
                               "for byte");
    unit_int(zeq_sessrec_open(&key, want, wl, hash, &got), ZEQ_OK,
             "vectors: the v2 record of slot 123456 (CryptX) opens");
    unit_bool(got.has_slot && got.slot == 123456 && !got.has_window, 1,
              "vectors: and names slot 123456, with no window of its own");
    unit_bool(same_record(&rec, &got), 1, "vectors: it holds the session");
    free(want);
    free(nonce);
    zeq_sessrec_key_cleanse(&key);
    unit_int(zeq_sessrec_key_derive((const unsigned char *)v_ikm, 31, &key),
             ZEQ_ERR_SHORT, "a record key of 31 bytes is refused");
}

/* Every record kind seals and opens; the window travels with v2. */
static void test_round_trips(void)
{
    zeq_sessrec_key key;
    zeq_sessrec rec, got;
    unsigned char hash[32], out[ZEQ_SESSREC_MAX_LEN], nonce[12];
    size_t n;

    unit_fill(nonce, sizeof(nonce), 7);
    zeq_sessrec_key_derive((const unsigned char *)v_ikm, strlen(v_ikm), &key);
    id_hash_of("round-trip-session", hash);
    vector_record(&rec, 2);
    rec.has_window = 1;
    zeq_replay_init(&rec.window);
    zeq_replay_accept(&rec.window, 0);
    zeq_replay_accept(&rec.window, 7);
    zeq_replay_accept(&rec.window, 3000);
    n = zeq_sessrec_seal(&key, &rec, hash, nonce, out);
    unit_int((long long)n, ZEQ_SESSREC_MAX_LEN,
             "a v2 record with its window is %d bytes", ZEQ_SESSREC_MAX_LEN);
    unit_int((long long)zeq_sessrec_len(&rec), (long long)n,
             "zeq_sessrec_len says so");
    unit_int(zeq_sessrec_open(&key, out, n, hash, &got), ZEQ_OK,
             "it opens");
    unit_bool(same_record(&rec, &got), 1, "keys, times, scope and window");
    unit_int(zeq_replay_check(&got.window, 7), ZEQ_ERR_REPLAY,
             "the opened window remembers 7");
    unit_int(zeq_replay_check(&got.window, 2999), ZEQ_OK,
             "and has not seen 2999");
    rec.has_window = 0;
    n = zeq_sessrec_seal(&key, &rec, hash, nonce, out);
    unit_int((long long)n, ZEQ_SESSREC_V2_LEN, "without its window: %d bytes",
             ZEQ_SESSREC_V2_LEN);
    unit_int(zeq_sessrec_open(&key, out, n, hash, &got), ZEQ_OK, "opens");
    unit_bool(got.has_window, 0, "and says it has no window");
    /* v1 ignores has_window. */
    vector_record(&rec, 1);
    rec.has_window = 1;
    n = zeq_sessrec_seal(&key, &rec, hash, nonce, out);
    unit_int((long long)n, ZEQ_SESSREC_V1_LEN, "a v1 record: %d bytes",
             ZEQ_SESSREC_V1_LEN);
    unit_int(zeq_sessrec_open(&key, out, n, hash, &got), ZEQ_OK,
             "a v1 record opens");
    unit_mem(got.keys.s2c, 32, got.keys.c2s, 32,
             "v1: one key for both directions");
    /* The unused flag travels with every kind. */
    {
        int v, w, all = 1;
        for (v = 1; v <= 2; v++) {
            for (w = 0; w <= 1; w++) {
                vector_record(&rec, v);
                rec.has_window = w;
                zeq_replay_init(&rec.window);
                rec.unused = 1;
                n = zeq_sessrec_seal(&key, &rec, hash, nonce, out);
                all &= out[2] == ((v == 2 && w ? ZEQ_SESSREC_FLAG_WINDOW : 0)
                                  | ZEQ_SESSREC_FLAG_UNUSED)
                       && zeq_sessrec_open(&key, out, n, hash, &got) == ZEQ_OK
                       && got.unused == 1 && got.has_window == (v == 2 && w);
                rec.unused = 0;
                n = zeq_sessrec_seal(&key, &rec, hash, nonce, out);
                all &= (out[2] & ZEQ_SESSREC_FLAG_UNUSED) == 0
                       && zeq_sessrec_open(&key, out, n, hash, &got) == ZEQ_OK
                       && got.unused == 0;
            }
        }
        unit_bool(all, 1, "v1 and v2, with and without a window: the unused "
                          "flag (0x02) seals and opens");
        vector_record(&rec, 1);
        n = zeq_sessrec_seal(&key, &rec, hash, nonce, out);
        out[2] = ZEQ_SESSREC_FLAG_WINDOW;
        unit_int(zeq_sessrec_open(&key, out, n, hash, &got), ZEQ_ERR_BAD,
                 "a v1 record with the window flag: ZEQ_ERR_BAD");
        out[2] = ZEQ_SESSREC_FLAG_SLOT;
        unit_int(zeq_sessrec_open(&key, out, n, hash, &got), ZEQ_ERR_BAD,
                 "a v1 record with the slot flag: ZEQ_ERR_BAD");
    }
    /* The slot flag: 4 bytes more, not with a window, with the unused
     * flag. */
    {
        vector_record(&rec, 2);
        rec.has_slot = 1;
        rec.slot = UINT32_MAX - 1;
        rec.unused = 1;
        n = zeq_sessrec_seal(&key, &rec, hash, nonce, out);
        unit_int((long long)n, ZEQ_SESSREC_V2_SLOT_LEN,
                 "a v2 record with a slot: %d bytes", ZEQ_SESSREC_V2_SLOT_LEN);
        unit_int(out[2], ZEQ_SESSREC_FLAG_SLOT | ZEQ_SESSREC_FLAG_UNUSED,
                 "flags 0x06: slot and unused");
        unit_int((long long)zeq_sessrec_len(&rec), (long long)n,
                 "zeq_sessrec_len says so");
        unit_int(zeq_sessrec_open(&key, out, n, hash, &got), ZEQ_OK, "opens");
        unit_bool(same_record(&rec, &got), 1, "with its slot and unused");
        out[2] = ZEQ_SESSREC_FLAG_SLOT | ZEQ_SESSREC_FLAG_WINDOW;
        unit_int(zeq_sessrec_open(&key, out, n, hash, &got), ZEQ_ERR_BAD,
                 "the slot and window flags together: ZEQ_ERR_BAD");
        out[2] = 0;
        unit_int(zeq_sessrec_open(&key, out, n, hash, &got), ZEQ_ERR_BAD,
                 "136 bytes without the slot flag: ZEQ_ERR_BAD (length)");
        out[2] = ZEQ_SESSREC_FLAG_SLOT;
        unit_int(zeq_sessrec_open(&key, out, n, hash, &got), ZEQ_ERR_AUTH,
                 "the unused flag cleared by hand: does not verify");
        rec.has_window = 1;
        n = zeq_sessrec_seal(&key, &rec, hash, nonce, out);
        unit_int(out[2] & ZEQ_SESSREC_FLAG_SLOT, 0,
                 "a record with its window never names a slot too");
    }
    zeq_sessrec_key_cleanse(&key);
}

/* Nothing but the record itself, under its own id and key, opens. */
static void test_refusals(void)
{
    static const char other_ikm[] = "another record key, after a rotation....";
    zeq_sessrec_key key, other;
    zeq_sessrec rec, got;
    unsigned char hash[32], hash2[32], out[ZEQ_SESSREC_MAX_LEN + 1];
    unsigned char bad[ZEQ_SESSREC_MAX_LEN + 1], nonce[12];
    size_t n, i;
    int all_auth = 1, zeroed = 1, rv;

    unit_fill(nonce, sizeof(nonce), 9);
    zeq_sessrec_key_derive((const unsigned char *)v_ikm, strlen(v_ikm), &key);
    zeq_sessrec_key_derive((const unsigned char *)other_ikm, strlen(other_ikm),
                           &other);
    id_hash_of("refusals", hash);
    id_hash_of("another id", hash2);
    vector_record(&rec, 2);
    rec.has_window = 1;
    zeq_replay_init(&rec.window);
    n = zeq_sessrec_seal(&key, &rec, hash, nonce, out);

    unit_int(zeq_sessrec_open(&other, out, n, hash, &got), ZEQ_ERR_KEY,
             "under another record key: ZEQ_ERR_KEY");
    unit_int(zeq_sessrec_open(&key, out, n, hash2, &got), ZEQ_ERR_AUTH,
             "moved to another id: ZEQ_ERR_AUTH");
    /* Same key id, other master (a collision of the 4-byte id): AUTH. */
    memcpy(other.id, key.id, sizeof(key.id));
    unit_int(zeq_sessrec_open(&other, out, n, hash, &got), ZEQ_ERR_AUTH,
             "another key with the same key id: ZEQ_ERR_AUTH");
    for (i = 0; i < n; i++) {
        memcpy(bad, out, n);
        bad[i] ^= 0x01;
        rv = zeq_sessrec_open(&key, bad, n, hash, &got);
        if (i >= 8 && rv != ZEQ_ERR_AUTH) {
            all_auth = 0;
        }
        if (i < 8 && rv == ZEQ_OK) {
            all_auth = 0;
        }
        if (rv != ZEQ_OK && (got.keys.version != 0 || got.expires != 0)) {
            zeroed = 0;
        }
    }
    unit_bool(all_auth, 1, "each of the %zu bytes altered: refused", n);
    unit_bool(zeroed, 1, "a refused record leaves nothing in rec");
    for (i = 0; i < n; i++) {
        if (zeq_sessrec_open(&key, out, i, hash, &got) == ZEQ_OK) {
            break;
        }
    }
    unit_int((long long)i, (long long)n, "no truncation opens");
    memcpy(bad, out, n);
    bad[n] = 0;
    unit_int(zeq_sessrec_open(&key, bad, n + 1, hash, &got), ZEQ_ERR_BAD,
             "one byte more: ZEQ_ERR_BAD");
    memcpy(bad, out, n);
    bad[0] = 2;
    unit_int(zeq_sessrec_open(&key, bad, n, hash, &got), ZEQ_ERR_VERSION,
             "record version 2 (the old clear record): ZEQ_ERR_VERSION");
    bad[0] = 4;
    unit_int(zeq_sessrec_open(&key, bad, n, hash, &got), ZEQ_ERR_VERSION,
             "record version 4: ZEQ_ERR_VERSION");
    memcpy(bad, out, n);
    bad[2] = 0x05;
    unit_int(zeq_sessrec_open(&key, bad, n, hash, &got), ZEQ_ERR_BAD,
             "an unknown flag: ZEQ_ERR_BAD");
    bad[2] = 0x81;
    unit_int(zeq_sessrec_open(&key, bad, n, hash, &got), ZEQ_ERR_BAD,
             "another unknown flag: ZEQ_ERR_BAD");
    memcpy(bad, out, n);
    bad[1] = 3;
    unit_int(zeq_sessrec_open(&key, bad, n, hash, &got), ZEQ_ERR_BAD,
             "protocol version 3: ZEQ_ERR_BAD");
    /* An old clear v2 record of 238 bytes (version byte 2). */
    memset(bad, 0, sizeof(bad));
    bad[0] = 2;
    unit_int(zeq_sessrec_open(&key, bad, 238, hash, &got), ZEQ_ERR_VERSION,
             "a clear record of the earlier format: ZEQ_ERR_VERSION");
    unit_int(zeq_sessrec_open(&key, bad, 0, hash, &got), ZEQ_ERR_VERSION,
             "an empty record: ZEQ_ERR_VERSION");
    /* The keys are nowhere in the record's bytes. */
    {
        int found = 0;
        for (i = 0; i + 32 <= n; i++) {
            if (memcmp(out + i, rec.keys.c2s, 32) == 0
                || memcmp(out + i, rec.keys.s2c, 32) == 0
                || memcmp(out + i, rec.scope, 16) == 0) {
                found = 1;
            }
        }
        unit_bool(found, 0, "neither key nor scope appears in the record");
    }
    zeq_sessrec_key_cleanse(&key);
    zeq_sessrec_key_cleanse(&other);
}

int main(void)
{
    test_vectors();
    test_round_trips();
    test_refusals();
    return unit_done();
}
