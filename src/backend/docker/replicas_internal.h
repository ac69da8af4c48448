/* What docker_replicas.c (the sets as they are, apply, delete) and
 * docker_replicas_update.c (updates and their recovery) share: a set's
 * containers read back from their labels, and how replicas are made.
 *
 * A set is its replicas plus, once it was updated, one record: a container
 * that never runs and only carries the set's generation, spec digest and
 * replica count in its labels. An update first writes the record of the new
 * state beside the old one; while both exist the update is under way (or
 * was cut short by a crash), and removing the old record commits it. */
#ifndef BERTH_REPLICAS_INTERNAL_H
#define BERTH_REPLICAS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "berth/arena.h"
#include "berth/backend.h"

#define RP_ROLLBACK_MS 10000 /* clean-ups after a failure get this long past the call */
#define RP_NO_LIMIT 0xffffffffu

/* One container of a set, as its labels describe it. Strings are borrowed
 * from c. */
struct rp_member {
    const struct backend_container *c;
    const char *ns;
    const char *id;
    int record;           /* a record, not a replica */
    unsigned index;       /* replicas only */
    unsigned generation;  /* 0 when not labelled (made by a Create) */
    unsigned replicas;    /* the wanted count it carries; 0 when not labelled */
    const char *digest;   /* "" when not labelled */
    int64_t min_ready_ms; /* how long it must run to be ready */
    int64_t started_ms;   /* when it last started (wall clock); 0: not known */
};

/* One set's members and what they say about its state. */
struct rp_view {
    struct rp_member *m; /* replicas by index, then generation; then records by generation */
    size_t n;
    size_t n_replicas;              /* m[0 .. n_replicas) are the replicas */
    unsigned generation;            /* the newest generation of any member */
    unsigned wanted;                /* replicas of the current state; 0: not known */
    const char *digest;             /* spec digest of the current state; "" when not known */
    const struct rp_member *record; /* the newest record; NULL: none (never updated) */
    /* The newest record older than that: an update is under way, or a
     * crash cut it short. NULL when none. */
    const struct rp_member *prev;
};

/* The containers of one (kind, ns, id), read back. */
struct rp_loaded {
    struct backend_container_list list; /* owns the containers */
    struct rp_member *m;                /* malloc'd; points into list */
    size_t n_other;                     /* containers of the id in other namespaces */
    struct rp_view v;                   /* over m */
};

/* Container names: <prefix><id>-<index>[-g<generation>], records
 * <prefix><id>-rec-g<generation>. */
const char *rp_prefix(enum object_kind kind);
int rp_check_kind(enum object_kind kind, struct berth_err *err) BERTH_MUST_USE;

/* The members of (kind, ns, id) into *out (rp_loaded_release frees it).
 * None is success with an empty view. */
int rp_load(const struct backend *b, enum object_kind kind, const char *ns, const char *id,
            int64_t deadline, struct rp_loaded *out, struct berth_err *err) BERTH_MUST_USE;
void rp_loaded_release(struct rp_loaded *l);

/* The state a committed set is in: the newest record's generation and
 * count, or no limits when it has none. */
void rp_view_committed(const struct rp_view *v, unsigned *gen, unsigned *wanted);
/* keep[i] for every replica v->m[i] (malloc'd, the caller frees it; NULL
 * when out of memory): 1 when it belongs to the state of generation `gen`
 * with `wanted` replicas (0: any count), that is when it is the newest
 * replica of its index no newer than gen, below wanted. */
char *rp_keepers(const struct rp_view *v, unsigned gen, unsigned wanted);
/* 1 when an update is under way or left something behind (or when that
 * cannot be told for want of memory). */
int rp_view_unsettled(const struct rp_view *v);

/* Is a container in `state`, last started at started_ms (wall clock; 0:
 * not known), ready to serve: running, for min_ready_ms at least? This is
 * the one place that decides readiness: once containers carry a health
 * check, a replica with one is ready only when healthy as well. */
int rp_ready(enum backend_state state, int64_t started_ms, int64_t min_ready_ms,
             int64_t now_unix_ms);

/* Start a stopped or never started container, unpause a paused one: 1 when
 * it acted, 0 when there was nothing to do, -1 on failure. */
int rp_wake(const struct backend *b, const struct backend_container *c, int64_t deadline,
            struct berth_err *err) BERTH_MUST_USE;
/* Create and start replica i of spec at generation gen (min_ready_ms, when
 * not 0, labelled on it). What was created is appended to made (heap
 * strings the caller frees) before the start, so a failed start is rolled
 * back too. Transient strings live in a. */
int rp_make(const struct backend *b, const struct backend_replica_spec *spec, struct arena *a,
            unsigned i, unsigned gen, int64_t min_ready_ms, int64_t deadline, char **made,
            size_t *n_made, struct berth_err *err) BERTH_MUST_USE;
/* Remove containers ids[0..n) (best effort, RP_ROLLBACK_MS from now; one
 * already gone counts as removed); failures are logged under `event`.
 * The number that is gone. */
size_t rp_remove_ids(const struct backend *b, const char *kname, const char *id, const char *event,
                     char *const *ids, size_t n);

/* Finish or roll back what v shows (see backend_ops.replica_recover). */
int rp_settle(const struct backend *b, enum object_kind kind, const struct rp_view *v,
              int64_t deadline, int *acted, struct berth_err *err) BERTH_MUST_USE;

#endif
