/* The cache of last known Get answers: put and get, tickets that keep an
 * older listing from overwriting a newer one, tombstones that go once no
 * older listing is under way, sweeps by kind and id, and the event
 * de-duplication. */
#include <stdint.h>
#include <string.h>

#include "berth/arena.h"
#include "berth/replica_cache.h"
#include "testlib.h"

static void test_put_get(void);
static void test_tickets(void);
static void test_tombstones(void);
static void test_sweep(void);
static void test_news(void);
static void test_list(void);
static int answer_is(struct replica_cache *c, enum object_kind k, const char *ns, const char *id,
                     const char *want);

/* 1 when (k, ns, id) answers exactly `want` (NULL: no answer). */
static int answer_is(struct replica_cache *c, enum object_kind k, const char *ns, const char *id,
                     const char *want)
{
    struct arena *a = arena_new();
    uint8_t *bytes = NULL;
    size_t len = 0;
    int rc = replica_cache_get(c, k, ns, id, a, &bytes, &len);
    int ok;

    if (want == NULL)
        ok = rc < 0;
    else
        ok = rc == 0 && len == strlen(want) && memcmp(bytes, want, len) == 0;
    arena_free(a);
    return ok;
}

static void test_put_get(void)
{
    static const struct {
        const char *desc;
        enum object_kind kind;
        const char *ns, *id, *want;
    } rows[] = {
        {"stored answer", OBJECT_GATEWAY, "ns", "a", "A"},
        {"other namespace", OBJECT_GATEWAY, "", "a", NULL},
        {"other kind", OBJECT_DEPLOYMENT, "ns", "a", NULL},
        {"other id", OBJECT_GATEWAY, "ns", "b", NULL},
        {"empty answer", OBJECT_DEPLOYMENT, "", "e", ""},
    };
    struct replica_cache *c = replica_cache_new();
    uint64_t t;

    CHECK(c != NULL);
    if (c == NULL)
        return;
    t = replica_cache_begin(c);
    CHECK(t > 0);
    replica_cache_put(c, OBJECT_GATEWAY, "ns", "a", (const uint8_t *)"A", 1, NULL, t);
    replica_cache_put(c, OBJECT_DEPLOYMENT, "", "e", (const uint8_t *)"", 0, NULL, t);
    replica_cache_end(c, t);
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        CHECK_MSG(answer_is(c, rows[i].kind, rows[i].ns, rows[i].id, rows[i].want), "%s",
                  rows[i].desc);
    CHECK(replica_cache_count(c) == 2);
    replica_cache_free(c);
    replica_cache_free(NULL);
}

/* A listing that began earlier stores nothing over a later one's news. */
static void test_tickets(void)
{
    struct replica_cache *c = replica_cache_new();
    uint64_t old, new;

    old = replica_cache_begin(c);
    new = replica_cache_begin(c);
    CHECK(new > old);
    replica_cache_put(c, OBJECT_GATEWAY, "", "g", (const uint8_t *)"new", 3, NULL, new);
    replica_cache_put(c, OBJECT_GATEWAY, "", "g", (const uint8_t *)"old", 3, NULL, old);
    CHECK(answer_is(c, OBJECT_GATEWAY, "", "g", "new"));
    /* An older listing's "gone" does not bury a newer answer either. */
    replica_cache_drop(c, OBJECT_GATEWAY, "", "g", old);
    CHECK(answer_is(c, OBJECT_GATEWAY, "", "g", "new"));
    replica_cache_end(c, old);
    replica_cache_end(c, new);
    replica_cache_free(c);
}

/* A drop leaves a tombstone that an older listing still under way cannot
 * overwrite; it goes when that listing ends. */
static void test_tombstones(void)
{
    struct replica_cache *c = replica_cache_new();
    uint64_t t1, t2, t3;

    t1 = replica_cache_begin(c);
    replica_cache_put(c, OBJECT_GATEWAY, "", "g", (const uint8_t *)"one", 3, NULL, t1);
    replica_cache_end(c, t1);

    t2 = replica_cache_begin(c); /* a slow listing that saw "g" */
    t3 = replica_cache_begin(c); /* a Delete */
    replica_cache_drop(c, OBJECT_GATEWAY, "", "g", t3);
    replica_cache_end(c, t3);
    CHECK(answer_is(c, OBJECT_GATEWAY, "", "g", NULL));
    CHECK_MSG(replica_cache_count(c) == 1, "tombstone kept while t2 flies");
    replica_cache_put(c, OBJECT_GATEWAY, "", "g", (const uint8_t *)"stale", 5, NULL, t2);
    CHECK(answer_is(c, OBJECT_GATEWAY, "", "g", NULL));
    replica_cache_end(c, t2);
    CHECK_MSG(replica_cache_count(c) == 0, "%zu entries left", replica_cache_count(c));

    /* A lookup of an unknown id that finds it gone leaves nothing behind. */
    t1 = replica_cache_begin(c);
    replica_cache_drop(c, OBJECT_DEPLOYMENT, "", "nope", t1);
    replica_cache_end(c, t1);
    CHECK(replica_cache_count(c) == 0);
    replica_cache_free(c);
}

static void test_sweep(void)
{
    struct replica_cache *c = replica_cache_new();
    uint64_t t;

    t = replica_cache_begin(c);
    replica_cache_put(c, OBJECT_GATEWAY, "a", "g", (const uint8_t *)"ga", 2, NULL, t);
    replica_cache_put(c, OBJECT_GATEWAY, "b", "g", (const uint8_t *)"gb", 2, NULL, t);
    replica_cache_put(c, OBJECT_GATEWAY, "", "h", (const uint8_t *)"h", 1, NULL, t);
    replica_cache_put(c, OBJECT_DEPLOYMENT, "", "d", (const uint8_t *)"d", 1, NULL, t);
    replica_cache_end(c, t);

    /* A re-listing of gateway g that saw it in namespace a only. */
    t = replica_cache_begin(c);
    replica_cache_put(c, OBJECT_GATEWAY, "a", "g", (const uint8_t *)"ga2", 3, NULL, t);
    replica_cache_sweep(c, 0, OBJECT_GATEWAY, "g", t);
    replica_cache_end(c, t);
    CHECK(answer_is(c, OBJECT_GATEWAY, "a", "g", "ga2"));
    CHECK(answer_is(c, OBJECT_GATEWAY, "b", "g", NULL));
    CHECK(answer_is(c, OBJECT_GATEWAY, "", "h", "h"));
    CHECK(answer_is(c, OBJECT_DEPLOYMENT, "", "d", "d"));

    /* A full listing of every kind that saw only deployment d. */
    t = replica_cache_begin(c);
    replica_cache_put(c, OBJECT_DEPLOYMENT, "", "d", (const uint8_t *)"d2", 2, NULL, t);
    replica_cache_sweep(c, 1, OBJECT_GATEWAY, NULL, t);
    replica_cache_end(c, t);
    CHECK(answer_is(c, OBJECT_GATEWAY, "a", "g", NULL));
    CHECK(answer_is(c, OBJECT_GATEWAY, "", "h", NULL));
    CHECK(answer_is(c, OBJECT_DEPLOYMENT, "", "d", "d2"));
    CHECK(replica_cache_count(c) == 1);
    replica_cache_free(c);
}

/* An event from before the last re-listing of its object is no news; one
 * of another object, or after a lost re-listing, is. */
static void test_news(void)
{
    struct replica_cache *c = replica_cache_new();
    char long_id[80];

    CHECK(replica_cache_is_news(c, OBJECT_GATEWAY, "g", 1));
    CHECK(!replica_cache_is_news(c, OBJECT_GATEWAY, "g", 2));
    CHECK(replica_cache_is_news(c, OBJECT_DEPLOYMENT, "g", 2));
    CHECK(replica_cache_is_news(c, OBJECT_GATEWAY, "g", 3));
    CHECK_MSG(replica_cache_is_news(c, OBJECT_GATEWAY, "g", 0), "no time: always news");
    replica_cache_news_lost(c);
    CHECK(replica_cache_is_news(c, OBJECT_GATEWAY, "g", 4));
    memset(long_id, 'x', sizeof(long_id) - 1);
    long_id[sizeof(long_id) - 1] = '\0';
    CHECK(replica_cache_is_news(c, OBJECT_GATEWAY, long_id, 5));
    CHECK_MSG(replica_cache_is_news(c, OBJECT_GATEWAY, long_id, 6), "long ids are not noted");
    replica_cache_free(c);
}

/* List: the summaries of one kind (one namespace or all), live entries
 * only, copied out; a newer summary replaces an older one; complete only
 * once said so. */
static void test_list(void)
{
    struct replica_cache *c = replica_cache_new();
    struct arena *a = arena_new();
    struct replica_cache_summary s1 = {"img:1", 3, 2, 1}, s2 = {"img:2", 1, 1, 2};
    struct replica_cache_item *items = NULL;
    size_t n = 0;
    uint64_t t;

    CHECK(c != NULL && a != NULL);
    CHECK(!replica_cache_complete(c));
    t = replica_cache_begin(c);
    replica_cache_put(c, OBJECT_DEPLOYMENT, "a", "d1", (const uint8_t *)"x", 1, &s1, t);
    replica_cache_put(c, OBJECT_DEPLOYMENT, "b", "d2", (const uint8_t *)"y", 1, &s2, t);
    replica_cache_put(c, OBJECT_GATEWAY, "a", "g1", (const uint8_t *)"z", 1, NULL, t);
    replica_cache_drop(c, OBJECT_DEPLOYMENT, "a", "gone", t);
    replica_cache_end(c, t);
    replica_cache_set_complete(c);
    CHECK(replica_cache_complete(c));

    CHECK(replica_cache_list(c, OBJECT_DEPLOYMENT, NULL, a, &items, &n) == 0 && n == 2);
    CHECK(replica_cache_list(c, OBJECT_DEPLOYMENT, "a", a, &items, &n) == 0 && n == 1);
    if (n == 1) {
        CHECK_STR(items[0].id, "d1");
        CHECK_STR(items[0].sum.image, "img:1");
        CHECK(items[0].sum.replicas == 3 && items[0].sum.running == 2 && items[0].sum.status == 1);
    }
    CHECK(replica_cache_list(c, OBJECT_GATEWAY, NULL, a, &items, &n) == 0 && n == 1);
    if (n == 1)
        CHECK_STR(items[0].sum.image, "");

    t = replica_cache_begin(c);
    replica_cache_put(c, OBJECT_DEPLOYMENT, "a", "d1", (const uint8_t *)"x", 1, &s2, t);
    replica_cache_end(c, t);
    CHECK(replica_cache_list(c, OBJECT_DEPLOYMENT, "a", a, &items, &n) == 0 && n == 1);
    if (n == 1)
        CHECK_STR(items[0].sum.image, "img:2");
    arena_free(a);
    replica_cache_free(c);
}

int main(void)
{
    test_put_get();
    test_tickets();
    test_tombstones();
    test_sweep();
    test_news();
    test_list();
    return test_summary("test_replica_cache");
}
