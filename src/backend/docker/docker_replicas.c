/* Replica sets as N containers (see berth/docker_replicas.h): the set read
 * back from its containers' labels, apply with rollback and waking,
 * listing and deletion, all through a backend's container operations.
 * Updates and their recovery are in docker_replicas_update.c. The Docker
 * backend's replica-set operations call these with itself. */
#include "berth/docker_replicas.h"

#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "berth/arena.h"
#include "berth/clock.h"
#include "berth/log.h"
#include "docker_internal.h"
#include "replicas_internal.h"

#define RP_OWN_LABELS 8 /* kind, id, replica, spec, replicas, generation, min ready, namespace */

static int rp_label_uint(const struct backend_container *c, const char *key, unsigned max,
                         unsigned *out);
static int rp_member_read(enum object_kind kind, const struct backend_container *c,
                          struct rp_member *m);
static int rp_member_cmp(const void *a, const void *b);
static int rp_list(const struct backend *b, enum object_kind kind, const char *id, int64_t deadline,
                   struct backend_container_list *out, struct berth_err *err);
static int rp_collect(enum object_kind kind, const struct backend_container_list *list,
                      const char *ns, struct rp_member **out, size_t *n, size_t *n_other,
                      struct berth_err *err);
static void rp_view_init(struct rp_view *v, struct rp_member *m, size_t n);
static void rp_learn_started(const struct backend *b, struct rp_view *v, int64_t deadline);
static int rp_fill_set(const struct rp_view *v, enum object_kind kind,
                       struct backend_replica_set *out, struct berth_err *err);

/* ---- reading a set back ------------------------------------------------ */

const char *rp_prefix(enum object_kind kind)
{
    return kind == OBJECT_GATEWAY ? "berth-gw-" : "berth-dep-";
}

int rp_check_kind(enum object_kind kind, struct berth_err *err)
{
    if (kind != OBJECT_GATEWAY && kind != OBJECT_DEPLOYMENT)
        return berth_err_set(err, BERTH_INTERNAL, "kind %d has no replica sets", (int)kind);
    return 0;
}

/* The label `key` as a number below max; -1 when missing or malformed. */
static int rp_label_uint(const struct backend_container *c, const char *key, unsigned max,
                         unsigned *out)
{
    const char *v = backend_container_label(c, key);
    char *end;
    unsigned long n;

    if (v == NULL || v[0] < '0' || v[0] > '9')
        return -1;
    n = strtoul(v, &end, 10);
    if (*end != '\0' || n >= max)
        return -1;
    *out = (unsigned)n;
    return 0;
}

/* Read c's labels into *m: -1 when it is no member of a set (no id, or a
 * replica without a readable index). */
static int rp_member_read(enum object_kind kind, const struct backend_container *c,
                          struct rp_member *m)
{
    const struct object_kind_info *k = object_kind_info(kind);
    const char *ns = backend_container_label(c, LABEL_NAMESPACE);
    const char *id = backend_container_label(c, k->id_label);
    const char *record = backend_container_label(c, LABEL_RECORD);
    const char *digest = backend_container_label(c, LABEL_SPEC);
    unsigned ms = 0;

    memset(m, 0, sizeof(*m));
    if (id == NULL || id[0] == '\0')
        return -1;
    m->c = c;
    m->ns = ns ? ns : "";
    m->id = id;
    m->record = record != NULL && strcmp(record, LABEL_RECORD_VALUE) == 0;
    if (!m->record && rp_label_uint(c, LABEL_REPLICA, BACKEND_MAX_REPLICAS, &m->index) < 0)
        return -1;
    if (rp_label_uint(c, LABEL_GENERATION, UINT_MAX, &m->generation) < 0)
        m->generation = 0;
    if (rp_label_uint(c, LABEL_REPLICAS, BACKEND_MAX_REPLICAS + 1, &m->replicas) < 0)
        m->replicas = 0;
    if (rp_label_uint(c, LABEL_MIN_READY, 24 * 3600 * 1000, &ms) == 0)
        m->min_ready_ms = ms;
    m->digest = digest ? digest : "";
    m->started_ms = c->started_unix_ms;
    return 0;
}

/* By id, namespace; replicas (by index, generation) before records (by
 * generation). */
static int rp_member_cmp(const void *a, const void *b)
{
    const struct rp_member *x = a, *y = b;
    int c = strcmp(x->id, y->id);

    if (c == 0)
        c = strcmp(x->ns, y->ns);
    if (c == 0)
        c = x->record - y->record;
    if (c == 0 && !x->record)
        c = x->index < y->index ? -1 : x->index > y->index;
    if (c == 0)
        c = x->generation < y->generation ? -1 : x->generation > y->generation;
    return c;
}

/* The containers of kind (of id when not NULL), stopped ones included. */
static int rp_list(const struct backend *b, enum object_kind kind, const char *id, int64_t deadline,
                   struct backend_container_list *out, struct berth_err *err)
{
    const struct object_kind_info *k = object_kind_info(kind);
    struct arena *a = arena_new();
    const char *filter;
    int rc = -1;

    filter = a == NULL    ? NULL
             : id != NULL ? arena_printf(a, "%s=%s", k->id_label, id)
                          : k->kind_filter;
    if (filter == NULL)
        berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    else
        rc = b->ops->list(b->ctx, filter, deadline, out, err);
    arena_free(a);
    return rc;
}

/* The members of kind in list (of namespace ns; NULL: any), sorted by
 * rp_member_cmp: *out (malloc'd, the caller frees it) points into list;
 * *n_other (when not NULL) counts the members in other namespaces. A
 * labelled container that is no member is logged and skipped. */
static int rp_collect(enum object_kind kind, const struct backend_container_list *list,
                      const char *ns, struct rp_member **out, size_t *n, size_t *n_other,
                      struct berth_err *err)
{
    const struct object_kind_info *k = object_kind_info(kind);
    struct rp_member *r = calloc(list->n + 1, sizeof(*r));
    size_t m = 0, other = 0;

    if (r == NULL)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    for (size_t i = 0; i < list->n; i++) {
        const struct backend_container *c = &list->items[i];

        if (rp_member_read(kind, c, &r[m]) < 0) {
            const char *id = backend_container_label(c, k->id_label);
            log_warn("replicas.skip",
                     "kind=%s id=%s container_id=%.12s reason=\"no id or replica index\"", k->name,
                     id ? id : "", c->id);
            continue;
        }
        if (ns != NULL && strcmp(r[m].ns, ns) != 0) {
            other++;
            continue;
        }
        m++;
    }
    if (m > 1)
        qsort(r, m, sizeof(*r), rp_member_cmp);
    *out = r;
    *n = m;
    if (n_other != NULL)
        *n_other = other;
    return 0;
}

/* The view of the n members of one set, m sorted by rp_member_cmp. The
 * current state is the newest record's; a set never updated has none, and
 * its replicas' labels say it (the largest count among the newest). */
static void rp_view_init(struct rp_view *v, struct rp_member *m, size_t n)
{
    const struct rp_member *newest = NULL;

    memset(v, 0, sizeof(*v));
    v->m = m;
    v->n = n;
    v->digest = "";
    while (v->n_replicas < n && !m[v->n_replicas].record)
        v->n_replicas++;
    for (size_t i = 0; i < n; i++)
        if (m[i].generation > v->generation)
            v->generation = m[i].generation;
    for (size_t i = v->n_replicas; i < n; i++) {
        v->prev = v->record;
        v->record = &m[i];
    }
    if (v->record != NULL) {
        v->wanted = v->record->replicas;
        v->digest = v->record->digest;
        return;
    }
    for (size_t i = 0; i < v->n_replicas; i++) {
        if (m[i].generation != v->generation)
            continue;
        if (newest == NULL)
            newest = &m[i];
        if (m[i].replicas > v->wanted)
            v->wanted = m[i].replicas;
    }
    if (newest != NULL)
        v->digest = newest->digest;
}

void rp_view_committed(const struct rp_view *v, unsigned *gen, unsigned *wanted)
{
    *gen = v->record ? v->record->generation : RP_NO_LIMIT;
    *wanted = v->record ? v->record->replicas : 0;
}

char *rp_keepers(const struct rp_view *v, unsigned gen, unsigned wanted)
{
    char *keep = calloc(v->n_replicas + 1, 1);
    size_t last[BACKEND_MAX_REPLICAS];

    if (keep == NULL)
        return NULL;
    for (size_t i = 0; i < BACKEND_MAX_REPLICAS; i++)
        last[i] = SIZE_MAX;
    for (size_t i = 0; i < v->n_replicas; i++) {
        const struct rp_member *r = &v->m[i];
        /* Sorted by generation within an index: the last one wins. */
        if (r->generation <= gen && (wanted == 0 || r->index < wanted))
            last[r->index] = i;
    }
    for (size_t i = 0; i < BACKEND_MAX_REPLICAS; i++)
        if (last[i] != SIZE_MAX)
            keep[last[i]] = 1;
    return keep;
}

int rp_view_unsettled(const struct rp_view *v)
{
    unsigned gen, wanted;
    char *keep;
    int unsettled = 0;

    if (v->prev != NULL)
        return 1;
    rp_view_committed(v, &gen, &wanted);
    keep = rp_keepers(v, gen, wanted);
    if (keep == NULL)
        return 1;
    for (size_t i = 0; i < v->n_replicas && !unsettled; i++)
        unsettled = !keep[i];
    free(keep);
    return unsettled;
}

int rp_ready(enum backend_state state, int64_t started_ms, int64_t min_ready_ms,
             int64_t now_unix_ms)
{
    if (state != BACKEND_STATE_RUNNING)
        return 0;
    if (min_ready_ms <= 0)
        return 1;
    return started_ms > 0 && now_unix_ms - started_ms >= min_ready_ms;
}

/* A listing does not say when a container started: ask the backend for the
 * running replicas that share their index with another one and must run a
 * while to be ready (only while an update replaces them). Best effort: one
 * it cannot inspect stays "not known". */
static void rp_learn_started(const struct backend *b, struct rp_view *v, int64_t deadline)
{
    for (size_t i = 0; i < v->n_replicas; i++) {
        struct rp_member *r = &v->m[i];
        int shared = (i > 0 && v->m[i - 1].index == r->index) ||
                     (i + 1 < v->n_replicas && v->m[i + 1].index == r->index);
        struct backend_container c = {0};
        struct berth_err e;

        if (!shared || r->started_ms > 0 || r->min_ready_ms <= 0 ||
            r->c->state != BACKEND_STATE_RUNNING)
            continue;
        berth_err_clear(&e);
        if (b->ops->inspect(b->ctx, r->c->id, deadline, &c, &e) == 0 &&
            c.state == BACKEND_STATE_RUNNING)
            r->started_ms = c.started_unix_ms;
        backend_container_release(&c);
    }
}

int rp_load(const struct backend *b, enum object_kind kind, const char *ns, const char *id,
            int64_t deadline, struct rp_loaded *out, struct berth_err *err)
{
    size_t n = 0;

    memset(out, 0, sizeof(*out));
    if (rp_list(b, kind, id, deadline, &out->list, err) < 0 ||
        rp_collect(kind, &out->list, ns, &out->m, &n, &out->n_other, err) < 0) {
        rp_loaded_release(out);
        return -1;
    }
    rp_view_init(&out->v, out->m, n);
    rp_learn_started(b, &out->v, deadline);
    return 0;
}

void rp_loaded_release(struct rp_loaded *l)
{
    free(l->m);
    backend_container_list_release(&l->list);
    memset(l, 0, sizeof(*l));
}

/* The set of view v (one id and namespace, at least one member) into *out,
 * heap-owned: one instance per index below the wanted count, the one that
 * serves it. While an update replaces an index that is the newest ready
 * replica (so the old one leaves the answers once the new one is ready,
 * before it is stopped), else the newest running one, else the newest. */
static int rp_fill_set(const struct rp_view *v, enum object_kind kind,
                       struct backend_replica_set *out, struct berth_err *err)
{
    struct backend_replica_set s = {0};
    unsigned gen = v->record ? v->record->generation : RP_NO_LIMIT;
    unsigned cut = v->record ? v->wanted : 0;
    int64_t now = berth_unix_ms();

    s.kind = kind;
    s.ns = strdup(v->m[0].ns);
    s.id = strdup(v->m[0].id);
    s.items = calloc(v->n_replicas + 1, sizeof(*s.items));
    if (s.ns == NULL || s.id == NULL || s.items == NULL)
        goto oom;
    s.wanted = v->wanted;
    s.unsettled = rp_view_unsettled(v);
    for (size_t i = 0, next; i < v->n_replicas; i = next) {
        const struct rp_member *pick = NULL, *running = NULL, *newest = NULL;
        const struct backend_container *c;
        struct backend_replica *it;

        for (next = i; next < v->n_replicas && v->m[next].index == v->m[i].index; next++) {
            const struct rp_member *r = &v->m[next];
            if (r->generation > gen || (cut > 0 && r->index >= cut))
                continue;
            newest = r;
            if (r->c->state == BACKEND_STATE_RUNNING)
                running = r;
            if (rp_ready(r->c->state, r->started_ms, r->min_ready_ms, now))
                pick = r;
        }
        pick = pick ? pick : running ? running : newest;
        if (pick == NULL)
            continue;
        c = pick->c;
        it = &s.items[s.n++];
        it->index = pick->index;
        it->state = c->state;
        it->health = c->health;
        it->handle = strdup(c->id);
        it->host = strdup("");
        it->image = strdup(c->image ? c->image : "");
        it->ports = calloc(c->n_ports ? c->n_ports : 1, sizeof(*it->ports));
        if (it->handle == NULL || it->host == NULL || it->image == NULL || it->ports == NULL)
            goto oom;
        if (c->n_ports > 0)
            memcpy(it->ports, c->ports, c->n_ports * sizeof(*it->ports));
        it->n_ports = c->n_ports;
    }
    *out = s;
    return 0;
oom:
    backend_replica_set_release(&s);
    return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
}

int docker_replicas_get(const struct backend *containers, enum object_kind kind, const char *ns,
                        const char *id, int64_t deadline, struct backend_replica_set *out,
                        struct berth_err *err)
{
    struct rp_loaded l;
    int rc = -1;

    if (rp_check_kind(kind, err) < 0 || rp_load(containers, kind, ns, id, deadline, &l, err) < 0)
        return -1;
    /* Containers of the id in another namespace are not this set's. */
    if (l.v.n == 0)
        berth_err_set(err, BERTH_NOT_FOUND, "%s '%s' not found", object_kind_info(kind)->name, id);
    else
        rc = rp_fill_set(&l.v, kind, out, err);
    rp_loaded_release(&l);
    return rc;
}

int docker_replicas_list(const struct backend *containers, enum object_kind kind, const char *id,
                         int64_t deadline, struct backend_replica_set_list *out,
                         struct berth_err *err)
{
    struct backend_container_list list = {0};
    struct backend_replica_set_list sets = {0};
    struct rp_member *r = NULL;
    size_t n = 0, next;
    int rc = -1;

    if (rp_check_kind(kind, err) < 0 || rp_list(containers, kind, id, deadline, &list, err) < 0 ||
        rp_collect(kind, &list, NULL, &r, &n, NULL, err) < 0)
        goto out;
    sets.items = calloc(n + 1, sizeof(*sets.items));
    if (sets.items == NULL) {
        berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i = next) {
        struct rp_view v;

        next = i + 1;
        while (next < n && strcmp(r[next].id, r[i].id) == 0 && strcmp(r[next].ns, r[i].ns) == 0)
            next++;
        rp_view_init(&v, r + i, next - i);
        rp_learn_started(containers, &v, deadline);
        if (rp_fill_set(&v, kind, &sets.items[sets.n], err) < 0)
            goto out;
        sets.n++;
    }
    *out = sets;
    sets.items = NULL;
    sets.n = 0;
    rc = 0;
out:
    backend_replica_set_list_release(&sets);
    free(r);
    backend_container_list_release(&list);
    return rc;
}

int docker_replicas_delete(const struct backend *containers, enum object_kind kind, const char *ns,
                           const char *id, int64_t deadline, size_t *removed, struct berth_err *err)
{
    const char *kname = object_kind_info(kind) ? object_kind_info(kind)->name : "";
    struct rp_loaded l;
    size_t gone = 0;
    int rc = -1, failed = 0;

    if (rp_check_kind(kind, err) < 0 || rp_load(containers, kind, ns, id, deadline, &l, err) < 0)
        return -1;
    /* Replicas first, the record last: a failure half way still leaves a
     * set that knows its state. */
    for (size_t i = 0; i < l.v.n; i++) {
        const struct rp_member *m = &l.v.m[i];
        struct berth_err e;

        berth_err_clear(&e);
        if (containers->ops->remove(containers->ctx, m->c->id, deadline, &e) == 0) {
            gone += !m->record;
        } else if (e.code != BERTH_NOT_FOUND) {
            /* The first failure is the answer; the others are logged. */
            if (failed == 0)
                berth_err_set(err, e.code, "%s", e.msg);
            else {
                struct log_quoted lq;
                log_warn("replicas.delete", "kind=%s id=%s container_id=%.12s error=%s", kname, id,
                         m->c->id, log_quote(&lq, e.msg));
            }
            failed++;
        }
    }
    if (failed)
        goto out;
    if (removed != NULL)
        *removed = gone;
    rc = 0;
out:
    rp_loaded_release(&l);
    return rc;
}

/* ---- making replicas --------------------------------------------------- */

int rp_wake(const struct backend *b, const struct backend_container *c, int64_t deadline,
            struct berth_err *err)
{
    int rc;

    if (c->state == BACKEND_STATE_PAUSED)
        rc = b->ops->unpause(b->ctx, c->id, deadline, err);
    else if (c->state == BACKEND_STATE_CREATED || c->state == BACKEND_STATE_EXITED)
        rc = b->ops->start(b->ctx, c->id, deadline, err);
    else
        return 0;
    return rc < 0 ? -1 : 1;
}

int rp_make(const struct backend *b, const struct backend_replica_spec *spec, struct arena *a,
            unsigned i, unsigned gen, int64_t min_ready_ms, int64_t deadline, char **made,
            size_t *n_made, struct berth_err *err)
{
    const struct object_kind_info *k = object_kind_info(spec->kind);
    const struct backend_spec *t = &spec->tmpl;
    struct backend_spec cs = *t;
    struct backend_label *labels = arena_alloc(a, (RP_OWN_LABELS + t->n_labels) * sizeof(*labels));
    const char **env = arena_alloc(a, (t->n_env + 1) * sizeof(*env));
    const char *wanted = arena_printf(a, "%u", spec->replicas);
    const char *index = arena_printf(a, "%u", i);
    const char *generation = arena_printf(a, "%u", gen);
    const char *min_ready = arena_printf(a, "%" PRId64, min_ready_ms);
    /* Generation 0 keeps the name a Create has always given. */
    const char *name =
        gen == 0 ? arena_printf(a, "%s%s-%u", rp_prefix(spec->kind), spec->id, i)
                 : arena_printf(a, "%s%s-%u-g%u", rp_prefix(spec->kind), spec->id, i, gen);
    char *cid = NULL;
    size_t nl = 0;

    if (labels == NULL || env == NULL || wanted == NULL || index == NULL || generation == NULL ||
        min_ready == NULL || name == NULL)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    labels[nl++] = (struct backend_label){LABEL_KIND, k->name};
    labels[nl++] = (struct backend_label){k->id_label, spec->id};
    labels[nl++] = (struct backend_label){LABEL_REPLICA, index};
    labels[nl++] = (struct backend_label){LABEL_SPEC, spec->digest};
    /* So a set that a crash left short shows its missing replicas. */
    labels[nl++] = (struct backend_label){LABEL_REPLICAS, wanted};
    labels[nl++] = (struct backend_label){LABEL_GENERATION, generation};
    if (min_ready_ms > 0)
        labels[nl++] = (struct backend_label){LABEL_MIN_READY, min_ready};
    if (spec->ns[0] != '\0')
        labels[nl++] = (struct backend_label){LABEL_NAMESPACE, spec->ns};
    for (size_t j = 0; j < t->n_labels; j++)
        labels[nl++] = t->labels[j];
    for (size_t j = 0; j < t->n_env; j++)
        env[j] = t->env[j];
    cs.n_env = t->n_env;
    if (spec->instance_env != NULL) {
        env[cs.n_env] = arena_printf(a, "%s=%s-%u", spec->instance_env, spec->id, i);
        if (env[cs.n_env++] == NULL)
            return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    }
    cs.name = name;
    cs.labels = labels;
    cs.n_labels = nl;
    cs.env = env;

    if (b->ops->create(b->ctx, &cs, deadline, &cid, err) < 0) {
        /* Nothing to add to made: the backend removes what a create of
         * unknown outcome made, and the name may hold another's container. */
        if (err->code == BERTH_ALREADY_EXISTS) {
            berth_err_clear(err);
            berth_err_set(err, BERTH_ALREADY_EXISTS,
                          "%s '%s': a container named '%s' already exists", k->name, spec->id,
                          name);
        }
        return -1;
    }
    made[(*n_made)++] = cid;
    return b->ops->start(b->ctx, cid, deadline, err);
}

size_t rp_remove_ids(const struct backend *b, const char *kname, const char *id, const char *event,
                     char *const *ids, size_t n)
{
    int64_t deadline = berth_now_ms() + RP_ROLLBACK_MS;
    size_t removed = 0;

    for (size_t i = 0; i < n; i++) {
        struct berth_err e;
        berth_err_clear(&e);
        if (b->ops->remove(b->ctx, ids[i], deadline, &e) == 0 || e.code == BERTH_NOT_FOUND) {
            removed++;
        } else {
            struct log_quoted lq;
            log_warn(event, "kind=%s id=%s container=%.64s code=%s error=%s", kname, id, ids[i],
                     berth_code_name(e.code), log_quote(&lq, e.msg));
        }
    }
    return removed;
}

/* ---- apply ------------------------------------------------------------- */

int docker_replicas_apply(const struct backend *containers, const struct backend_replica_spec *spec,
                          int64_t deadline, struct backend_apply_result *out, struct berth_err *err)
{
    struct rp_loaded l = {0};
    struct backend_apply_result res = {0};
    struct arena *a = NULL;
    char present[BACKEND_MAX_REPLICAS] = {0};
    char *keep = NULL;
    char *made[BACKEND_MAX_REPLICAS];
    const char *kname;
    unsigned gen, wanted;
    size_t n_made = 0;
    int rc = -1;

    if (rp_check_kind(spec->kind, err) < 0)
        return -1;
    kname = object_kind_info(spec->kind)->name;
    if (spec->replicas < 1 || spec->replicas > BACKEND_MAX_REPLICAS)
        return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                             "%s '%s': %u replicas is not from 1 to %d", kname, spec->id,
                             spec->replicas, BACKEND_MAX_REPLICAS);
    a = arena_new();
    if (a == NULL)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");

    /* Every container of the id counts, whatever its namespace: the names
     * hold the id alone, so an id is unique across namespaces. */
    if (rp_load(containers, spec->kind, spec->ns, spec->id, deadline, &l, err) < 0)
        goto out;
    if (l.n_other > 0)
        goto exists;
    /* An update a crash cut short is finished or undone first, so the
     * spec is compared with what the set really is. */
    if (l.v.n > 0 && rp_view_unsettled(&l.v)) {
        rp_loaded_release(&l);
        if (rp_load(containers, spec->kind, spec->ns, spec->id, deadline, &l, err) < 0 ||
            rp_settle(containers, spec->kind, &l.v, deadline, NULL, err) < 0)
            goto out;
        rp_loaded_release(&l);
        if (rp_load(containers, spec->kind, spec->ns, spec->id, deadline, &l, err) < 0)
            goto out;
    }
    if (l.v.n > 0 && (strcmp(l.v.digest, spec->digest) != 0 || l.v.wanted != spec->replicas))
        goto exists;
    rp_view_committed(&l.v, &gen, &wanted);
    keep = rp_keepers(&l.v, gen, wanted);
    if (keep == NULL) {
        berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < l.v.n_replicas; i++) {
        if (!keep[i])
            continue;
        if (l.v.m[i].index >= spec->replicas || strcmp(l.v.m[i].digest, spec->digest) != 0)
            goto exists;
        present[l.v.m[i].index] = 1;
        res.existing++;
    }

    /* A retry completes a set that a crash or a removal behind our back left
     * short, starts replicas that were made but never started or exited, and
     * unpauses paused ones. */
    for (size_t i = 0; i < l.v.n_replicas; i++) {
        int woke;
        if (!keep[i])
            continue;
        woke = rp_wake(containers, l.v.m[i].c, deadline, err);
        if (woke < 0)
            goto out;
        res.woken += (size_t)woke;
    }
    for (unsigned i = 0; i < spec->replicas; i++) {
        if (present[i])
            continue;
        if (rp_make(containers, spec, a, i, l.v.generation, 0, deadline, made, &n_made, err) < 0)
            goto out;
    }
    res.added = n_made;
    if (out != NULL)
        *out = res;
    rc = 0;
    goto out;
exists:
    berth_err_set(err, BERTH_ALREADY_EXISTS, "%s '%s' already exists with a different spec", kname,
                  spec->id);
out:
    if (rc < 0 && n_made > 0) {
        size_t removed =
            rp_remove_ids(containers, kname, spec->id, "replicas.rollback", made, n_made);
        if (removed > 0)
            log_info("replicas.rollback", "kind=%s id=%s removed=%zu", kname, spec->id, removed);
    }
    for (size_t i = 0; i < n_made; i++)
        free(made[i]);
    free(keep);
    rp_loaded_release(&l);
    arena_free(a);
    return rc;
}

/* ---- the Docker backend's replica-set operations ----------------------- */

int docker_replica_apply(void *ctx, const struct backend_replica_spec *spec, int64_t deadline,
                         struct backend_apply_result *out, struct berth_err *err)
{
    const struct backend self = {&docker_backend_ops, ctx};

    return docker_replicas_apply(&self, spec, deadline, out, err);
}

int docker_replica_get(void *ctx, enum object_kind kind, const char *ns, const char *id,
                       int64_t deadline, struct backend_replica_set *out, struct berth_err *err)
{
    const struct backend self = {&docker_backend_ops, ctx};

    return docker_replicas_get(&self, kind, ns, id, deadline, out, err);
}

int docker_replica_list(void *ctx, enum object_kind kind, const char *id, int64_t deadline,
                        struct backend_replica_set_list *out, struct berth_err *err)
{
    const struct backend self = {&docker_backend_ops, ctx};

    return docker_replicas_list(&self, kind, id, deadline, out, err);
}

int docker_replica_delete(void *ctx, enum object_kind kind, const char *ns, const char *id,
                          int64_t deadline, size_t *removed, struct berth_err *err)
{
    const struct backend self = {&docker_backend_ops, ctx};

    return docker_replicas_delete(&self, kind, ns, id, deadline, removed, err);
}
