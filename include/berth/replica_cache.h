/* The last known Get answer of every gateway and deployment, so Get still
 * answers while the Engine cannot be reached, and what List shows of each
 * (List answers from here alone). Answers are opaque bytes (the packed
 * response) keyed by (kind, namespace, id), each with its summary. Filled by live Gets,
 * creates, engine events and full listings, which can race: each listing
 * takes a ticket before it asks the backend and stores with it, and an entry
 * only takes a newer ticket's news. A forgotten object stays as a tombstone
 * while older listings may still be under way. Thread-safe. */
#ifndef BERTH_REPLICA_CACHE_H
#define BERTH_REPLICA_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "berth/arena.h"
#include "berth/err.h"
#include "berth/labels.h"

struct replica_cache;

/* NULL when out of memory. */
struct replica_cache *replica_cache_new(void);
/* NULL does nothing. */
void replica_cache_free(struct replica_cache *c);

/* A ticket for a listing about to be made; replica_cache_end(ticket) when
 * it is done. Out of memory, the ticket is 0, older than any entry's: its
 * listing then overwrites nothing. */
uint64_t replica_cache_begin(struct replica_cache *c);
/* The listing of `ticket` is done: tombstones no listing still under way
 * could overwrite go. */
void replica_cache_end(struct replica_cache *c, uint64_t ticket);

/* What List shows of one object. */
struct replica_cache_summary {
    const char *image;
    unsigned replicas; /* desired */
    unsigned running;
    int status; /* enum krane_status */
};

/* Store a copy of answer and of sum (NULL: an empty one) as what the
 * listing of `ticket` saw, unless a newer listing was stored already. Best
 * effort: out of memory, the cache keeps what it had. */
void replica_cache_put(struct replica_cache *c, enum object_kind kind, const char *ns,
                       const char *id, const uint8_t *answer, size_t len,
                       const struct replica_cache_summary *sum, uint64_t ticket);
/* (kind, ns, id) is gone as of `ticket`. */
void replica_cache_drop(struct replica_cache *c, enum object_kind kind, const char *ns,
                        const char *id, uint64_t ticket);
/* Every entry (of kind when `all_kinds` is 0, of id when not NULL) that the
 * listing of `ticket` did not store is gone. */
void replica_cache_sweep(struct replica_cache *c, int all_kinds, enum object_kind kind,
                         const char *id, uint64_t ticket);
/* The answer of (kind, ns, id), copied into the arena: 0, or -1 when there
 * is none (or out of memory). */
int replica_cache_get(struct replica_cache *c, enum object_kind kind, const char *ns,
                      const char *id, struct arena *a, uint8_t **answer, size_t *len);
/* One object of replica_cache_list; strings in the caller's arena. */
struct replica_cache_item {
    const char *ns;
    const char *id;
    struct replica_cache_summary sum;
};
/* Every object of kind the cache knows (of namespace ns when not NULL), in
 * no order, copied into the arena: *out and *n. -1 when out of memory. */
int replica_cache_list(struct replica_cache *c, enum object_kind kind, const char *ns,
                       struct arena *a, struct replica_cache_item **out, size_t *n) BERTH_MUST_USE;
/* A listing of every object succeeded (complete = 1): from then on the
 * cache knows them all, and events keep it so. 0 before. */
void replica_cache_set_complete(struct replica_cache *c);
int replica_cache_complete(struct replica_cache *c);

/* Changes of live entries (an object appeared, its status or running
 * count moved, it went), told to one listener under the cache's lock so
 * they come in order; the listener must not call back into the cache. */
enum replica_change {
    REPLICA_SNAPSHOT,
    REPLICA_CREATED,
    REPLICA_CHANGED,
    REPLICA_DELETED,
};
typedef void (*replica_listener_fn)(void *arg, enum replica_change what, enum object_kind kind,
                                    const char *ns, const char *id,
                                    const struct replica_cache_summary *sum);
void replica_cache_set_listener(struct replica_cache *c, replica_listener_fn fn, void *arg);
/* Under the lock: each(arg, REPLICA_SNAPSHOT, ...) for every live entry,
 * then then(then_arg), with no change between. Answers what `then` did. */
int replica_cache_snapshot(struct replica_cache *c, replica_listener_fn each, void *arg,
                           int (*then)(void *then_arg), void *then_arg);

/* Entries, tombstones included (a lookup of an unknown id must not add one
 * that outlives its listing). */
size_t replica_cache_count(struct replica_cache *c);

/* Events: is an event of (kind, id) at time_unix_ns newer than the last
 * re-listing of that object? When so, notes a re-listing of it as begun now
 * and answers 1. replica_cache_news_lost() forgets the note (the re-listing
 * failed, so the next event must list again). */
int replica_cache_is_news(struct replica_cache *c, enum object_kind kind, const char *id,
                          int64_t time_unix_ns);
void replica_cache_news_lost(struct replica_cache *c);

#endif
