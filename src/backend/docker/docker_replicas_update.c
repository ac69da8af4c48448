/* Updates of replica sets made of containers (see berth/docker_replicas.h
 * and replicas_internal.h): scaling, the rolling start-first replacement
 * with its rollback, and the recovery of an update a crash cut short, from
 * what the set's records and labels say.
 *
 * An update of a set at generation G (count N, digest D) to count M and
 * digest D' writes the record of G (when the set has none yet) and the
 * record of G+1, makes the new replicas at G+1 (all M indexes for another
 * template, N..M-1 for a scale-up), each ready before the old one of its
 * index is drained and stopped (not removed: a rollback starts it again),
 * then commits by removing the record of G and cleans up what G+1 no
 * longer holds. Until the commit a crash leaves both records, and the next
 * recovery finishes the update when every new replica is there and ready,
 * else rolls it back. */
#include "berth/docker_replicas.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "berth/arena.h"
#include "berth/clock.h"
#include "berth/log.h"
#include "docker_internal.h"
#include "replicas_internal.h"

#define RP_POLL_MS 100      /* how often a new replica's state is read */
#define RP_RETIRE_STOP_S 10 /* an old replica gets this long to stop before it is killed */
#define RP_WHY_MAX 96

/* What a new replica's state says. */
enum rp_verdict { RP_WAIT, RP_READY, RP_FAILED };

/* One update under way: what it made and stopped, for its rollback. */
struct rp_update {
    const struct backend *b;
    const struct backend_replica_spec *spec;
    struct backend_update_opts opts;
    const char *kname;
    struct arena *a;
    unsigned from_gen, gen; /* the set's generation before, and the update's */
    unsigned from_n;        /* replicas before */
    const char *from_digest;
    char *made[BACKEND_MAX_REPLICAS]; /* heap: the new replicas */
    size_t n_made;
    char *retired[BACKEND_MAX_REPLICAS]; /* heap: old replicas this update stopped */
    size_t n_retired;
    char *intent;      /* heap: the record of the new state */
    char *prev_made;   /* heap: the record of the old state, when this update made it */
    int64_t hidden_at; /* when indexes past the new count left the answers */
};

static void rp_sleep_until(int64_t until, int64_t deadline);
static int rp_make_record(struct rp_update *u, unsigned gen, const char *digest, unsigned n,
                          int with_from, int64_t deadline, char **id_out, struct berth_err *err);
static enum rp_verdict rp_judge(const struct backend_container *c, int64_t *first_started,
                                int64_t min_ready_ms, char *why, size_t why_len);
static int rp_wait_ready(struct rp_update *u, char *const *ids, const unsigned *idx, size_t n,
                         int64_t deadline, struct berth_err *err);
static int rp_retire(struct rp_update *u, const struct rp_member *old, int64_t deadline,
                     struct berth_err *err);
static void rp_undo(struct rp_update *u);
static void rp_cleanup(struct rp_update *u);
static int rp_load_settled(const struct backend *b, const struct backend_replica_spec *spec,
                           int64_t deadline, struct rp_loaded *l, struct berth_err *err);
static int rp_target_met(const struct backend *b, const struct rp_view *v, int64_t deadline);
static int rp_remove_records(const struct backend *b, const struct rp_view *v, unsigned lo,
                             unsigned hi, int64_t deadline, struct berth_err *err);

/* Sleep until the monotonic time `until`, not past the deadline. */
static void rp_sleep_until(int64_t until, int64_t deadline)
{
    int64_t end = until < deadline ? until : deadline;
    int64_t left = end - berth_now_ms();
    struct timespec ts;

    if (left <= 0)
        return;
    ts.tv_sec = (time_t)(left / 1000);
    ts.tv_nsec = (long)(left % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* ---- records ------------------------------------------------------------ */

/* Create the record of generation gen (digest, n replicas; with_from: the
 * state it replaces too): a container that is never started, named
 * <prefix><id>-rec-g<gen>. *id_out is heap, the caller's. */
static int rp_make_record(struct rp_update *u, unsigned gen, const char *digest, unsigned n,
                          int with_from, int64_t deadline, char **id_out, struct berth_err *err)
{
    const struct backend_replica_spec *spec = u->spec;
    const struct object_kind_info *k = object_kind_info(spec->kind);
    struct backend_label labels[9];
    struct backend_spec cs = {0};
    size_t nl = 0;
    const char *name = arena_printf(u->a, "%s%s-rec-g%u", rp_prefix(spec->kind), spec->id, gen);
    const char *generation = arena_printf(u->a, "%u", gen);
    const char *count = arena_printf(u->a, "%u", n);
    const char *from_n = arena_printf(u->a, "%u", u->from_n);

    if (name == NULL || generation == NULL || count == NULL || from_n == NULL)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    labels[nl++] = (struct backend_label){LABEL_KIND, k->name};
    labels[nl++] = (struct backend_label){k->id_label, spec->id};
    labels[nl++] = (struct backend_label){LABEL_RECORD, LABEL_RECORD_VALUE};
    labels[nl++] = (struct backend_label){LABEL_GENERATION, generation};
    labels[nl++] = (struct backend_label){LABEL_SPEC, digest};
    labels[nl++] = (struct backend_label){LABEL_REPLICAS, count};
    if (spec->ns[0] != '\0')
        labels[nl++] = (struct backend_label){LABEL_NAMESPACE, spec->ns};
    if (with_from) {
        labels[nl++] = (struct backend_label){LABEL_FROM_SPEC, u->from_digest};
        labels[nl++] = (struct backend_label){LABEL_FROM_REPLICAS, from_n};
    }
    /* The update's image: it is needed anyway, and a record's image only
     * has to exist. No ports, network, environment or restart policy. */
    cs.name = name;
    cs.image = spec->tmpl.image;
    cs.labels = labels;
    cs.n_labels = nl;
    cs.pull_policy = BACKEND_PULL_IF_MISSING;
    return u->b->ops->create(u->b->ctx, &cs, deadline, id_out, err);
}

/* Remove the records of v with lo <= generation <= hi. */
static int rp_remove_records(const struct backend *b, const struct rp_view *v, unsigned lo,
                             unsigned hi, int64_t deadline, struct berth_err *err)
{
    for (size_t i = v->n_replicas; i < v->n; i++) {
        const struct rp_member *r = &v->m[i];
        struct berth_err e;

        if (r->generation < lo || r->generation > hi)
            continue;
        berth_err_clear(&e);
        if (b->ops->remove(b->ctx, r->c->id, deadline, &e) < 0 && e.code != BERTH_NOT_FOUND)
            return berth_err_set(err, e.code, "%s", e.msg);
    }
    return 0;
}

/* ---- readiness ---------------------------------------------------------- */

/* A new replica's state: ready (see rp_ready), still coming up, or failed
 * (why says how). *first_started holds the start time first seen, so a
 * restart in between is a failure. */
static enum rp_verdict rp_judge(const struct backend_container *c, int64_t *first_started,
                                int64_t min_ready_ms, char *why, size_t why_len)
{
    switch (c->state) {
    case BACKEND_STATE_RUNNING:
        if (*first_started == 0)
            *first_started = c->started_unix_ms;
        else if (c->started_unix_ms != *first_started) {
            snprintf(why, why_len, "restarted (exit code %d)", c->exit_code);
            return RP_FAILED;
        }
        /* With a health check, ready means healthy. */
        if (c->health == BACKEND_HEALTH_UNHEALTHY) {
            snprintf(why, why_len, "is unhealthy (its health check fails)");
            return RP_FAILED;
        }
        if (c->health == BACKEND_HEALTH_STARTING)
            return RP_WAIT;
        return rp_ready(c->state, c->started_unix_ms, min_ready_ms, berth_unix_ms()) ? RP_READY
                                                                                     : RP_WAIT;
    case BACKEND_STATE_CREATED:
        return RP_WAIT;
    case BACKEND_STATE_RESTARTING:
        snprintf(why, why_len, "keeps restarting (exit code %d)", c->exit_code);
        return RP_FAILED;
    case BACKEND_STATE_EXITED:
    case BACKEND_STATE_DEAD:
        if (c->oom_killed)
            snprintf(why, why_len, "was killed for want of memory");
        else
            snprintf(why, why_len, "exited with code %d", c->exit_code);
        return RP_FAILED;
    default:
        snprintf(why, why_len, "is %s", backend_state_name(c->state));
        return RP_FAILED;
    }
}

/* Wait until the n new replicas ids[] (of indexes idx[]) are all ready:
 * failed_precondition when one fails, deadline_exceeded when the ready
 * timeout or the deadline comes first. */
static int rp_wait_ready(struct rp_update *u, char *const *ids, const unsigned *idx, size_t n,
                         int64_t deadline, struct berth_err *err)
{
    int64_t timeout = u->opts.ready_timeout_ms;
    int64_t by = timeout > 0 ? berth_deadline_min(deadline, timeout) : deadline;
    int by_timeout = timeout > 0 && by < deadline;
    int64_t first[BACKEND_MAX_REPLICAS] = {0};
    char done[BACKEND_MAX_REPLICAS] = {0};

    for (;;) {
        size_t left = 0;

        for (size_t i = 0; i < n; i++) {
            struct backend_container c = {0};
            struct berth_err e;
            char why[RP_WHY_MAX] = "";
            enum rp_verdict v;

            if (done[i])
                continue;
            berth_err_clear(&e);
            if (u->b->ops->inspect(u->b->ctx, ids[i], deadline, &c, &e) < 0) {
                if (e.code != BERTH_NOT_FOUND)
                    return berth_err_set(err, e.code, "%s", e.msg);
                snprintf(why, sizeof(why), "was removed");
                v = RP_FAILED;
            } else {
                v = rp_judge(&c, &first[i], u->opts.min_ready_ms, why, sizeof(why));
            }
            backend_container_release(&c);
            if (v == RP_FAILED)
                return berth_err_set(err, BERTH_FAILED_PRECONDITION,
                                     "%s '%s': replica %u of the new spec %s; rolled back",
                                     u->kname, u->spec->id, idx[i], why);
            done[i] = v == RP_READY;
            left += v != RP_READY;
        }
        if (left == 0)
            return 0;
        if (berth_now_ms() >= by) {
            size_t late = 0;
            while (late < n && done[late])
                late++;
            if (by_timeout)
                return berth_err_set(err, BERTH_DEADLINE_EXCEEDED,
                                     "%s '%s': replica %u of the new spec was not ready within "
                                     "%" PRId64 " ms; rolled back",
                                     u->kname, u->spec->id, idx[late], timeout);
            return berth_err_set(err, BERTH_DEADLINE_EXCEEDED,
                                 "%s '%s': replica %u of the new spec was not ready by the "
                                 "deadline; rolled back",
                                 u->kname, u->spec->id, idx[late]);
        }
        rp_sleep_until(berth_now_ms() + RP_POLL_MS, by);
    }
}

/* ---- the steps of an update -------------------------------------------- */

/* Stop an old replica its new one replaced (noted first, so a rollback
 * starts it again whatever the stop did). One that was not running stays
 * as it is, for the clean-up to remove, and a rollback leaves it so. */
static int rp_retire(struct rp_update *u, const struct rp_member *old, int64_t deadline,
                     struct berth_err *err)
{
    enum backend_state st = old->c->state;
    char *id;

    if (st == BACKEND_STATE_CREATED || st == BACKEND_STATE_EXITED || st == BACKEND_STATE_DEAD)
        return 0;
    id = strdup(old->c->id);
    if (id == NULL)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    u->retired[u->n_retired++] = id;
    return u->b->ops->stop(u->b->ctx, id, RP_RETIRE_STOP_S, deadline, err);
}

/* Roll back an update that failed before its commit: the old replicas it
 * stopped start again (before the new ones go, so the set keeps serving),
 * every new replica goes, then its records. Best effort, a little past the
 * deadline; what fails is logged and left to a recovery (the update's
 * record stays while a new replica does). */
static void rp_undo(struct rp_update *u)
{
    int64_t deadline = berth_now_ms() + RP_ROLLBACK_MS;
    size_t woken = 0, removed;

    for (size_t i = 0; i < u->n_retired; i++) {
        struct berth_err e;
        berth_err_clear(&e);
        if (u->b->ops->start(u->b->ctx, u->retired[i], deadline, &e) == 0) {
            woken++;
        } else {
            struct log_quoted lq;
            log_warn("replicas.rollback", "kind=%s id=%s container=%.64s code=%s error=%s",
                     u->kname, u->spec->id, u->retired[i], berth_code_name(e.code),
                     log_quote(&lq, e.msg));
        }
    }
    removed = rp_remove_ids(u->b, u->kname, u->spec->id, "replicas.rollback", u->made, u->n_made);
    if (removed == u->n_made && u->intent != NULL &&
        rp_remove_ids(u->b, u->kname, u->spec->id, "replicas.rollback", &u->intent, 1) == 1 &&
        u->prev_made != NULL)
        (void)rp_remove_ids(u->b, u->kname, u->spec->id, "replicas.rollback", &u->prev_made, 1);
    log_info("replicas.update_rolled_back", "kind=%s id=%s restarted=%zu removed=%zu", u->kname,
             u->spec->id, woken, removed);
}

/* After the commit: what the new state no longer holds (the stopped old
 * replicas, indexes past the new count) goes. Failures are logged; the set
 * then shows unsettled and the next recovery finishes this. */
static void rp_cleanup(struct rp_update *u)
{
    int64_t deadline = berth_now_ms() + RP_ROLLBACK_MS;
    struct rp_loaded l;
    struct berth_err e;

    berth_err_clear(&e);
    if (rp_load(u->b, u->spec->kind, u->spec->ns, u->spec->id, deadline, &l, &e) == 0) {
        if (rp_settle(u->b, u->spec->kind, &l.v, deadline, NULL, &e) == 0) {
            rp_loaded_release(&l);
            return;
        }
        rp_loaded_release(&l);
    }
    {
        struct log_quoted lq;
        log_warn("replicas.cleanup", "kind=%s id=%s code=%s error=%s", u->kname, u->spec->id,
                 berth_code_name(e.code), log_quote(&lq, e.msg));
    }
}

/* The set of spec (kind, ns, id) into *l, settled first when a crash left
 * it unsettled. None: not_found. */
static int rp_load_settled(const struct backend *b, const struct backend_replica_spec *spec,
                           int64_t deadline, struct rp_loaded *l, struct berth_err *err)
{
    const char *kname = object_kind_info(spec->kind)->name;

    if (rp_load(b, spec->kind, spec->ns, spec->id, deadline, l, err) < 0)
        return -1;
    if (l->v.n > 0 && rp_view_unsettled(&l->v)) {
        int rc = rp_settle(b, spec->kind, &l->v, deadline, NULL, err);
        rp_loaded_release(l);
        if (rc < 0 || rp_load(b, spec->kind, spec->ns, spec->id, deadline, l, err) < 0)
            return -1;
    }
    if (l->v.n == 0) {
        rp_loaded_release(l);
        return berth_err_set(err, BERTH_NOT_FOUND, "%s '%s' not found", kname, spec->id);
    }
    return 0;
}

int docker_replicas_update(const struct backend *b, const struct backend_replica_spec *spec,
                           const struct backend_update_opts *opts, int64_t deadline,
                           struct backend_update_result *out, struct berth_err *err)
{
    struct rp_update u;
    struct rp_loaded l = {0};
    struct backend_update_result res = {0};
    const struct rp_member *old[BACKEND_MAX_REPLICAS] = {0};
    unsigned slots[BACKEND_MAX_REPLICAS];
    unsigned gen, wanted, m = spec->replicas, p;
    size_t n_slots = 0;
    char *keep = NULL;
    int scale, rc = -1;

    if (rp_check_kind(spec->kind, err) < 0)
        return -1;
    memset(&u, 0, sizeof(u));
    u.b = b;
    u.spec = spec;
    u.kname = object_kind_info(spec->kind)->name;
    if (opts != NULL)
        u.opts = *opts;
    p = u.opts.parallelism > 0 ? u.opts.parallelism : 1;
    if (m < 1 || m > BACKEND_MAX_REPLICAS)
        return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                             "%s '%s': %u replicas is not from 1 to %d", u.kname, spec->id, m,
                             BACKEND_MAX_REPLICAS);
    u.a = arena_new();
    if (u.a == NULL)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    if (rp_load_settled(b, spec, deadline, &l, err) < 0)
        goto out;
    if (strcmp(l.v.digest, spec->digest) == 0 && l.v.wanted == m) {
        rc = 0; /* the set is that already: nothing touched */
        goto done;
    }
    if (l.v.generation >= UINT_MAX - 1) {
        berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "%s '%s' has no generation left", u.kname,
                      spec->id);
        goto out;
    }
    scale = strcmp(l.v.digest, spec->digest) == 0;
    u.from_gen = l.v.generation;
    u.gen = l.v.generation + 1;
    u.from_digest = l.v.digest;
    rp_view_committed(&l.v, &gen, &wanted);
    keep = rp_keepers(&l.v, gen, wanted);
    if (keep == NULL) {
        berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < l.v.n_replicas; i++)
        if (keep[i]) {
            old[l.v.m[i].index] = &l.v.m[i];
            if (l.v.m[i].index >= u.from_n)
                u.from_n = l.v.m[i].index + 1;
        }
    if (l.v.wanted > 0)
        u.from_n = l.v.wanted;

    /* The records: from here on a crash is finished or undone at the next
     * start. Indexes past the new count leave the answers now. */
    if (l.v.record == NULL &&
        rp_make_record(&u, u.from_gen, u.from_digest, u.from_n, 0, deadline, &u.prev_made, err) < 0)
        goto fail;
    if (rp_make_record(&u, u.gen, spec->digest, m, 1, deadline, &u.intent, err) < 0)
        goto fail;
    u.hidden_at = berth_now_ms();

    /* The new replicas, p at a time, each batch ready before the old ones
     * of its indexes leave the answers, drain and stop. */
    for (unsigned i = scale ? u.from_n : 0; i < m; i++)
        slots[n_slots++] = i;
    for (size_t k = 0; k < n_slots; k += p) {
        size_t end = k + p < n_slots ? k + p : n_slots, first = u.n_made;
        int replacing = 0;

        for (size_t j = k; j < end; j++)
            if (rp_make(b, spec, u.a, slots[j], u.gen, u.opts.min_ready_ms, deadline, u.made,
                        &u.n_made, err) < 0)
                goto fail;
        if (rp_wait_ready(&u, u.made + first, slots + k, end - k, deadline, err) < 0)
            goto fail;
        for (size_t j = k; j < end; j++)
            replacing |= old[slots[j]] != NULL;
        if (!replacing) {
            res.added += end - k;
            continue;
        }
        rp_sleep_until(berth_now_ms() + u.opts.drain_ms, deadline);
        for (size_t j = k; j < end; j++) {
            if (old[slots[j]] == NULL) {
                res.added++;
                continue;
            }
            if (rp_retire(&u, old[slots[j]], deadline, err) < 0)
                goto fail;
            res.replaced++;
        }
    }
    if (m < u.from_n) {
        res.removed = u.from_n - m;
        rp_sleep_until(u.hidden_at + u.opts.drain_ms, deadline);
    }

    /* The commit: the old state's record goes. */
    {
        char *prev = u.prev_made ? u.prev_made : l.v.record->c->id;
        struct berth_err e;

        berth_err_clear(&e);
        if (b->ops->remove(b->ctx, prev, deadline, &e) < 0 && e.code != BERTH_NOT_FOUND) {
            berth_err_set(err, e.code, "%s", e.msg);
            goto fail;
        }
        free(u.prev_made);
        u.prev_made = NULL;
    }
    rp_cleanup(&u);
    log_info("replicas.updated", "kind=%s id=%s generation=%u replaced=%zu added=%zu removed=%zu",
             u.kname, spec->id, u.gen, res.replaced, res.added, res.removed);
    rc = 0;
done:
    if (out != NULL)
        *out = res;
    goto out;
fail:
    rp_undo(&u);
out:
    for (size_t i = 0; i < u.n_made; i++)
        free(u.made[i]);
    for (size_t i = 0; i < u.n_retired; i++)
        free(u.retired[i]);
    free(u.intent);
    free(u.prev_made);
    free(keep);
    rp_loaded_release(&l);
    arena_free(u.a);
    return rc;
}

/* ---- recovery ------------------------------------------------------------ */

/* An update under way (two records): is its new state whole, every index
 * below its count held by a ready replica of its spec? A scale-down needs
 * nothing new, so it always is. */
static int rp_target_met(const struct backend *b, const struct rp_view *v, int64_t deadline)
{
    const struct rp_member *to = v->record, *from = v->prev;
    char *keep;
    char seen[BACKEND_MAX_REPLICAS] = {0};
    int met = 1;

    if (strcmp(to->digest, from->digest) == 0 && to->replicas <= from->replicas)
        return 1;
    keep = rp_keepers(v, to->generation, to->replicas);
    if (keep == NULL)
        return 0;
    for (size_t i = 0; i < v->n_replicas && met; i++) {
        const struct rp_member *r = &v->m[i];
        struct backend_container c = {0};
        struct berth_err e;

        if (!keep[i])
            continue;
        berth_err_clear(&e);
        met = strcmp(r->digest, to->digest) == 0 &&
              b->ops->inspect(b->ctx, r->c->id, deadline, &c, &e) == 0 &&
              c.health != BACKEND_HEALTH_STARTING && c.health != BACKEND_HEALTH_UNHEALTHY &&
              rp_ready(c.state, c.started_unix_ms, r->min_ready_ms, berth_unix_ms());
        backend_container_release(&c);
        seen[r->index] = 1;
    }
    for (unsigned i = 0; i < to->replicas && met; i++)
        met = seen[i];
    free(keep);
    return met;
}

int rp_settle(const struct backend *b, enum object_kind kind, const struct rp_view *v,
              int64_t deadline, int *acted, struct berth_err *err)
{
    const char *kname = object_kind_info(kind)->name;
    const char *id = v->n > 0 ? v->m[0].id : "";
    const char *outcome = "cleaned";
    char *keep = NULL, **doomed = NULL;
    unsigned gen, wanted;
    size_t n_doomed = 0, woken = 0;
    int forward = 1, rc = -1;

    if (acted != NULL)
        *acted = 0;
    if (v->n == 0)
        return 0;
    if (v->prev != NULL) {
        forward = rp_target_met(b, v, deadline);
        outcome = forward ? "finished" : "rolled_back";
        /* Finishing commits first: the older records go. */
        if (forward && rp_remove_records(b, v, 0, v->record->generation - 1, deadline, err) < 0)
            return -1;
        gen = forward ? v->record->generation : v->prev->generation;
        wanted = forward ? v->record->replicas : v->prev->replicas;
    } else {
        rp_view_committed(v, &gen, &wanted);
    }
    keep = rp_keepers(v, gen, wanted);
    doomed = calloc(v->n_replicas + 1, sizeof(*doomed));
    if (keep == NULL || doomed == NULL) {
        berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < v->n_replicas; i++) {
        if (keep[i]) {
            /* Rolling back: the old replicas the update stopped serve again
             * before the new ones go. */
            int woke = forward ? 0 : rp_wake(b, v->m[i].c, deadline, err);
            if (woke < 0)
                goto out;
            woken += (size_t)woke;
        } else {
            doomed[n_doomed++] = v->m[i].c->id;
        }
    }
    if (rp_remove_ids(b, kname, id, "replicas.recover", doomed, n_doomed) < n_doomed) {
        berth_err_set(err, BERTH_UNAVAILABLE, "%s '%s': not every leftover replica could go", kname,
                      id);
        goto out;
    }
    /* Rolled back: the update's record goes last, once nothing of it is
     * left. */
    if (!forward && rp_remove_records(b, v, gen + 1, RP_NO_LIMIT, deadline, err) < 0)
        goto out;
    if (acted != NULL)
        *acted = v->prev != NULL || n_doomed > 0 || woken > 0;
    if (v->prev != NULL || n_doomed > 0 || woken > 0)
        log_info("replicas.recovered",
                 "kind=%s id=%s outcome=%s generation=%u removed=%zu restarted=%zu", kname, id,
                 outcome, gen, n_doomed, woken);
    rc = 0;
out:
    free(doomed);
    free(keep);
    return rc;
}

int docker_replicas_recover(const struct backend *containers, enum object_kind kind, const char *ns,
                            const char *id, int64_t deadline, int *acted, struct berth_err *err)
{
    struct rp_loaded l;
    int rc = 0;

    if (acted != NULL)
        *acted = 0;
    if (rp_check_kind(kind, err) < 0 || rp_load(containers, kind, ns, id, deadline, &l, err) < 0)
        return -1;
    if (l.v.n > 0 && rp_view_unsettled(&l.v))
        rc = rp_settle(containers, kind, &l.v, deadline, acted, err);
    rp_loaded_release(&l);
    return rc;
}

/* ---- the Docker backend's operations ------------------------------------ */

int docker_replica_update(void *ctx, const struct backend_replica_spec *spec,
                          const struct backend_update_opts *opts, int64_t deadline,
                          struct backend_update_result *out, struct berth_err *err)
{
    const struct backend self = {&docker_backend_ops, ctx};

    return docker_replicas_update(&self, spec, opts, deadline, out, err);
}

int docker_replica_recover(void *ctx, enum object_kind kind, const char *ns, const char *id,
                           int64_t deadline, int *acted, struct berth_err *err)
{
    const struct backend self = {&docker_backend_ops, ctx};

    return docker_replicas_recover(&self, kind, ns, id, deadline, acted, err);
}
