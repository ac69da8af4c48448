/* The cache of last known Get answers (see berth/replica_cache.h): an array
 * of entries under one mutex, with the tickets of the listings under way. */
#include "berth/replica_cache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "berth/clock.h"
#include "berth/lock.h"

#define RC_ID_MAX 63 /* longer ids are never noted as re-listed */

/* One object's answer, or a tombstone (answer NULL): what a listing (or
 * Delete) with this ticket saw. */
struct rc_entry {
    enum object_kind kind;
    char *ns;        /* owned */
    char *id;        /* owned */
    uint8_t *answer; /* owned; NULL: known gone */
    size_t len;
    char *image;                      /* owned; NULL with answer */
    struct replica_cache_summary sum; /* sum.image is `image` */
    uint64_t ticket;
};

struct replica_cache {
    /* lock guards every field below; it is never held across backend I/O. */
    pthread_mutex_t lock;
    struct rc_entry *items; /* owned */
    size_t n, cap;
    size_t n_dead; /* tombstones among items */
    replica_listener_fn listener;
    void *listener_arg;
    uint64_t ticket;  /* the last ticket handed out */
    int complete;     /* a listing of every object succeeded once */
    uint64_t *flying; /* owned: tickets between begin and end */
    size_t n_flying, cap_flying;
    /* The object the last event re-listed, and when (wall clock, ns, as the
     * Engine's event times on this host): its events from before that need
     * no second listing. */
    int last_valid;
    enum object_kind last_kind;
    char last_id[RC_ID_MAX + 1];
    int64_t last_began_ns;
};

static struct rc_entry *rc_find(struct replica_cache *c, enum object_kind kind, const char *ns,
                                const char *id);
static struct rc_entry *rc_add(struct replica_cache *c, enum object_kind kind, const char *ns,
                               const char *id);
static void rc_bury(struct replica_cache *c, struct rc_entry *e, uint64_t ticket);

struct replica_cache *replica_cache_new(void)
{
    struct replica_cache *c = calloc(1, sizeof(*c));

    if (c != NULL)
        lock_init(&c->lock);
    return c;
}

void replica_cache_free(struct replica_cache *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->n; i++) {
        free(c->items[i].ns);
        free(c->items[i].id);
        free(c->items[i].answer);
        free(c->items[i].image);
    }
    free(c->items);
    free(c->flying);
    lock_destroy(&c->lock);
    free(c);
}

uint64_t replica_cache_begin(struct replica_cache *c)
{
    uint64_t t = 0;

    lock_take(&c->lock);
    if (c->n_flying == c->cap_flying) {
        size_t cap = c->cap_flying ? 2 * c->cap_flying : 16;
        uint64_t *grown = realloc(c->flying, cap * sizeof(*grown));
        if (grown != NULL) {
            c->flying = grown;
            c->cap_flying = cap;
        }
    }
    if (c->n_flying < c->cap_flying) {
        t = ++c->ticket;
        c->flying[c->n_flying++] = t;
    }
    lock_give(&c->lock);
    return t;
}

void replica_cache_end(struct replica_cache *c, uint64_t ticket)
{
    uint64_t oldest = UINT64_MAX;

    lock_take(&c->lock);
    for (size_t i = 0; i < c->n_flying; i++) {
        if (c->flying[i] == ticket) {
            c->flying[i] = c->flying[--c->n_flying];
            break;
        }
    }
    for (size_t i = 0; i < c->n_flying; i++)
        if (c->flying[i] < oldest)
            oldest = c->flying[i];
    /* From the end down, so the entry moved into a freed slot was seen. */
    for (size_t i = c->n; c->n_dead > 0 && i-- > 0;) {
        struct rc_entry *e = &c->items[i];
        if (e->answer != NULL || e->ticket > oldest)
            continue;
        free(e->ns);
        free(e->id);
        *e = c->items[--c->n];
        c->n_dead--;
    }
    lock_give(&c->lock);
}

/* The entry of (kind, ns, id), tombstones included; NULL when none. Called
 * with the lock held. */
static struct rc_entry *rc_find(struct replica_cache *c, enum object_kind kind, const char *ns,
                                const char *id)
{
    for (size_t i = 0; i < c->n; i++) {
        struct rc_entry *e = &c->items[i];
        if (e->kind == kind && strcmp(e->id, id) == 0 && strcmp(e->ns, ns) == 0)
            return e;
    }
    return NULL;
}

/* A new tombstone of (kind, ns, id) with ticket 0; NULL when out of memory.
 * Called with the lock held. */
static struct rc_entry *rc_add(struct replica_cache *c, enum object_kind kind, const char *ns,
                               const char *id)
{
    struct rc_entry *e;

    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 16;
        struct rc_entry *grown = realloc(c->items, cap * sizeof(*grown));
        if (grown == NULL)
            return NULL;
        c->items = grown;
        c->cap = cap;
    }
    e = &c->items[c->n];
    memset(e, 0, sizeof(*e));
    e->kind = kind;
    e->ns = strdup(ns);
    e->id = strdup(id);
    if (e->ns == NULL || e->id == NULL) {
        free(e->ns);
        free(e->id);
        return NULL;
    }
    c->n++;
    c->n_dead++;
    return e;
}

/* The lock held: tell the listener of e. */
static void rc_tell(struct replica_cache *c, enum replica_change what, const struct rc_entry *e)
{
    if (c->listener != NULL)
        c->listener(c->listener_arg, what, e->kind, e->ns, e->id, &e->sum);
}

void replica_cache_set_listener(struct replica_cache *c, replica_listener_fn fn, void *arg)
{
    lock_take(&c->lock);
    c->listener = fn;
    c->listener_arg = arg;
    lock_give(&c->lock);
}

int replica_cache_snapshot(struct replica_cache *c, replica_listener_fn each, void *arg,
                           int (*then)(void *then_arg), void *then_arg)
{
    int rc;

    lock_take(&c->lock);
    for (size_t i = 0; i < c->n; i++)
        if (c->items[i].answer != NULL)
            each(arg, REPLICA_SNAPSHOT, c->items[i].kind, c->items[i].ns, c->items[i].id,
                 &c->items[i].sum);
    rc = then != NULL ? then(then_arg) : 0;
    lock_give(&c->lock);
    return rc;
}

/* Make e a tombstone of `ticket`. Called with the lock held. */
static void rc_bury(struct replica_cache *c, struct rc_entry *e, uint64_t ticket)
{
    if (e->answer != NULL) {
        c->n_dead++;
        rc_tell(c, REPLICA_DELETED, e);
    }
    free(e->answer);
    free(e->image);
    e->answer = NULL;
    e->image = NULL;
    e->len = 0;
    memset(&e->sum, 0, sizeof(e->sum));
    e->ticket = ticket;
}

void replica_cache_put(struct replica_cache *c, enum object_kind kind, const char *ns,
                       const char *id, const uint8_t *answer, size_t len,
                       const struct replica_cache_summary *sum, uint64_t ticket)
{
    uint8_t *bytes = malloc(len ? len : 1);
    char *image = strdup(sum && sum->image ? sum->image : "");
    struct rc_entry *e;

    if (bytes == NULL || image == NULL) {
        free(bytes);
        free(image);
        return;
    }
    if (len > 0)
        memcpy(bytes, answer, len);
    lock_take(&c->lock);
    e = rc_find(c, kind, ns, id);
    if (e == NULL)
        e = rc_add(c, kind, ns, id);
    if (e != NULL && e->ticket <= ticket) {
        int was_live = e->answer != NULL;
        int old_status = e->sum.status;
        unsigned old_running = e->sum.running;

        if (e->answer == NULL)
            c->n_dead--;
        free(e->answer);
        free(e->image);
        e->answer = bytes;
        e->len = len;
        e->image = image;
        if (sum != NULL)
            e->sum = *sum;
        else
            memset(&e->sum, 0, sizeof(e->sum));
        e->sum.image = image;
        e->ticket = ticket;
        bytes = NULL;
        image = NULL;
        if (!was_live)
            rc_tell(c, REPLICA_CREATED, e);
        else if (old_status != e->sum.status || old_running != e->sum.running)
            rc_tell(c, REPLICA_CHANGED, e);
    }
    lock_give(&c->lock);
    free(bytes);
    free(image);
}

void replica_cache_drop(struct replica_cache *c, enum object_kind kind, const char *ns,
                        const char *id, uint64_t ticket)
{
    struct rc_entry *e;

    lock_take(&c->lock);
    e = rc_find(c, kind, ns, id);
    if (e == NULL)
        e = rc_add(c, kind, ns, id);
    if (e != NULL && e->ticket <= ticket)
        rc_bury(c, e, ticket);
    lock_give(&c->lock);
}

void replica_cache_sweep(struct replica_cache *c, int all_kinds, enum object_kind kind,
                         const char *id, uint64_t ticket)
{
    lock_take(&c->lock);
    for (size_t i = 0; i < c->n; i++) {
        struct rc_entry *e = &c->items[i];
        if ((all_kinds || e->kind == kind) && (id == NULL || strcmp(e->id, id) == 0) &&
            e->ticket < ticket)
            rc_bury(c, e, ticket);
    }
    lock_give(&c->lock);
}

int replica_cache_get(struct replica_cache *c, enum object_kind kind, const char *ns,
                      const char *id, struct arena *a, uint8_t **answer, size_t *len)
{
    struct rc_entry *e;
    uint8_t *bytes = NULL;
    size_t n = 0;

    lock_take(&c->lock);
    e = rc_find(c, kind, ns, id);
    if (e != NULL && e->answer != NULL) {
        n = e->len;
        bytes = arena_alloc(a, n ? n : 1);
        if (bytes != NULL && n > 0)
            memcpy(bytes, e->answer, n);
    }
    lock_give(&c->lock);
    if (bytes == NULL)
        return -1;
    *answer = bytes;
    *len = n;
    return 0;
}

int replica_cache_list(struct replica_cache *c, enum object_kind kind, const char *ns,
                       struct arena *a, struct replica_cache_item **out, size_t *n)
{
    struct replica_cache_item *items;
    size_t m = 0;
    int rc = -1;

    lock_take(&c->lock);
    items = arena_alloc(a, (c->n + 1) * sizeof(*items));
    if (items == NULL)
        goto out;
    for (size_t i = 0; i < c->n; i++) {
        const struct rc_entry *e = &c->items[i];
        struct replica_cache_item *it = &items[m];

        if (e->answer == NULL || e->kind != kind || (ns != NULL && strcmp(e->ns, ns) != 0))
            continue;
        it->ns = arena_strdup(a, e->ns);
        it->id = arena_strdup(a, e->id);
        it->sum = e->sum;
        it->sum.image = arena_strdup(a, e->image);
        if (it->ns == NULL || it->id == NULL || it->sum.image == NULL)
            goto out;
        m++;
    }
    *out = items;
    *n = m;
    rc = 0;
out:
    lock_give(&c->lock);
    return rc;
}

void replica_cache_set_complete(struct replica_cache *c)
{
    lock_take(&c->lock);
    c->complete = 1;
    lock_give(&c->lock);
}

int replica_cache_complete(struct replica_cache *c)
{
    int complete;

    lock_take(&c->lock);
    complete = c->complete;
    lock_give(&c->lock);
    return complete;
}

size_t replica_cache_count(struct replica_cache *c)
{
    size_t n;

    lock_take(&c->lock);
    n = c->n;
    lock_give(&c->lock);
    return n;
}

int replica_cache_is_news(struct replica_cache *c, enum object_kind kind, const char *id,
                          int64_t time_unix_ns)
{
    size_t len = strlen(id);
    int news = 1;

    lock_take(&c->lock);
    /* The listing began after the event happened: it saw it already. */
    if (c->last_valid && c->last_kind == kind && strcmp(c->last_id, id) == 0 && time_unix_ns > 0 &&
        time_unix_ns < c->last_began_ns)
        news = 0;
    if (news) {
        c->last_valid = len <= RC_ID_MAX;
        c->last_kind = kind;
        memcpy(c->last_id, id, len <= RC_ID_MAX ? len + 1 : 1);
        c->last_began_ns = berth_unix_ms() * 1000000;
    }
    lock_give(&c->lock);
    return news;
}

void replica_cache_news_lost(struct replica_cache *c)
{
    lock_take(&c->lock);
    c->last_valid = 0;
    lock_give(&c->lock);
}
