/* Replica sets as N containers (see berth/docker_replicas.h): apply with
 * rollback and waking, the instances of a set, listing and deletion, all
 * through a backend's container operations. The Docker backend's
 * replica-set operations call these with itself. */
#include "berth/docker_replicas.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "berth/arena.h"
#include "berth/clock.h"
#include "berth/log.h"
#include "docker_internal.h"

#define RP_ROLLBACK_MS 10000 /* removals after a failure get this long past the call */
#define RP_OWN_LABELS 6      /* kind, id, replica, spec, replicas, namespace */

/* One replica container found through the id label; ns and id are its
 * labels (borrowed from c). */
struct rp_found {
    const char *ns;
    const char *id;
    unsigned index;
    const struct backend_container *c;
};

static const char *rp_prefix(enum object_kind kind);
static int rp_check_kind(enum object_kind kind, struct berth_err *err);
static int rp_label_uint(const struct backend_container *c, const char *key, unsigned max,
                         unsigned *out);
static int rp_found_cmp(const void *a, const void *b);
static int rp_list(const struct backend *b, enum object_kind kind, const char *id, int64_t deadline,
                   struct backend_container_list *out, struct berth_err *err);
static int rp_collect(enum object_kind kind, const struct backend_container_list *list,
                      const char *ns, struct rp_found **out, size_t *n, struct berth_err *err);
static int rp_fill_set(const struct rp_found *r, size_t n, enum object_kind kind,
                       struct backend_replica_set *out, struct berth_err *err);
static int rp_wake(const struct backend *b, const struct backend_container *c, int64_t deadline,
                   struct berth_err *err);
static int rp_make(const struct backend *b, const struct backend_replica_spec *spec,
                   struct arena *a, unsigned i, int64_t deadline, char **made, size_t *n_made,
                   struct berth_err *err);
static void rp_rollback(const struct backend *b, const struct backend_replica_spec *spec,
                        char **made, size_t n_made);

/* Container names: <prefix><id>-<index>. */
static const char *rp_prefix(enum object_kind kind)
{
    return kind == OBJECT_GATEWAY ? "berth-gw-" : "berth-dep-";
}

static int rp_check_kind(enum object_kind kind, struct berth_err *err)
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

static int rp_found_cmp(const void *a, const void *b)
{
    const struct rp_found *x = a, *y = b;
    int c = strcmp(x->id, y->id);

    if (c == 0)
        c = strcmp(x->ns, y->ns);
    if (c == 0)
        c = x->index < y->index ? -1 : x->index > y->index;
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

/* The replica containers of kind in list (of namespace ns; NULL: any),
 * sorted by id, namespace and index: *out (malloc'd, the caller frees it)
 * points into list. A labelled container without an id or a readable
 * replica index is logged and skipped. */
static int rp_collect(enum object_kind kind, const struct backend_container_list *list,
                      const char *ns, struct rp_found **out, size_t *n, struct berth_err *err)
{
    const struct object_kind_info *k = object_kind_info(kind);
    struct rp_found *r = calloc(list->n + 1, sizeof(*r));
    size_t m = 0;

    if (r == NULL)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    for (size_t i = 0; i < list->n; i++) {
        const struct backend_container *c = &list->items[i];
        const char *cns = backend_container_label(c, LABEL_NAMESPACE);
        const char *id = backend_container_label(c, k->id_label);

        cns = cns ? cns : "";
        if (ns != NULL && strcmp(cns, ns) != 0)
            continue;
        if (id == NULL || id[0] == '\0' ||
            rp_label_uint(c, LABEL_REPLICA, BACKEND_MAX_REPLICAS, &r[m].index) < 0) {
            log_warn("replicas.skip",
                     "kind=%s id=%s container_id=%.12s reason=\"no id or replica index\"", k->name,
                     id ? id : "", c->id);
            continue;
        }
        r[m].ns = cns;
        r[m].id = id;
        r[m++].c = c;
    }
    if (m > 1)
        qsort(r, m, sizeof(*r), rp_found_cmp);
    *out = r;
    *n = m;
    return 0;
}

/* The set of the n > 0 containers r (one id and namespace, sorted by
 * index) into *out, heap-owned. The wanted count is the largest
 * berth.replicas label among them, 0 when none has one. */
static int rp_fill_set(const struct rp_found *r, size_t n, enum object_kind kind,
                       struct backend_replica_set *out, struct berth_err *err)
{
    struct backend_replica_set s = {0};

    s.kind = kind;
    s.ns = strdup(r[0].ns);
    s.id = strdup(r[0].id);
    s.items = calloc(n, sizeof(*s.items));
    if (s.ns == NULL || s.id == NULL || s.items == NULL)
        goto oom;
    for (size_t i = 0; i < n; i++) {
        const struct backend_container *c = r[i].c;
        struct backend_replica *it = &s.items[s.n++];
        unsigned w;

        it->index = r[i].index;
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
        if (rp_label_uint(c, LABEL_REPLICAS, BACKEND_MAX_REPLICAS + 1, &w) == 0 && w > s.wanted)
            s.wanted = w;
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
    struct backend_container_list list = {0};
    struct rp_found *r = NULL;
    size_t n = 0;
    int rc = -1;

    if (rp_check_kind(kind, err) < 0 || rp_list(containers, kind, id, deadline, &list, err) < 0 ||
        rp_collect(kind, &list, ns, &r, &n, err) < 0)
        goto out;
    /* Containers of the id in another namespace are not this set's. */
    if (n == 0) {
        berth_err_set(err, BERTH_NOT_FOUND, "%s '%s' not found", object_kind_info(kind)->name, id);
        goto out;
    }
    rc = rp_fill_set(r, n, kind, out, err);
out:
    free(r);
    backend_container_list_release(&list);
    return rc;
}

int docker_replicas_list(const struct backend *containers, enum object_kind kind, const char *id,
                         int64_t deadline, struct backend_replica_set_list *out,
                         struct berth_err *err)
{
    struct backend_container_list list = {0};
    struct backend_replica_set_list sets = {0};
    struct rp_found *r = NULL;
    size_t n = 0, next;
    int rc = -1;

    if (rp_check_kind(kind, err) < 0 || rp_list(containers, kind, id, deadline, &list, err) < 0 ||
        rp_collect(kind, &list, NULL, &r, &n, err) < 0)
        goto out;
    sets.items = calloc(n + 1, sizeof(*sets.items));
    if (sets.items == NULL) {
        berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i = next) {
        next = i + 1;
        while (next < n && strcmp(r[next].id, r[i].id) == 0 && strcmp(r[next].ns, r[i].ns) == 0)
            next++;
        if (rp_fill_set(r + i, next - i, kind, &sets.items[sets.n], err) < 0)
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
    struct backend_container_list list = {0};
    struct rp_found *r = NULL;
    size_t n = 0, gone = 0;
    int rc = -1, failed = 0;

    if (rp_check_kind(kind, err) < 0 || rp_list(containers, kind, id, deadline, &list, err) < 0 ||
        rp_collect(kind, &list, ns, &r, &n, err) < 0)
        goto out;
    for (size_t i = 0; i < n; i++) {
        struct berth_err e;
        berth_err_clear(&e);
        if (containers->ops->remove(containers->ctx, r[i].c->id, deadline, &e) == 0)
            gone++;
        else if (e.code != BERTH_NOT_FOUND) {
            /* The first failure is the answer; the others are logged. */
            if (failed == 0)
                berth_err_set(err, e.code, "%s", e.msg);
            else {
                struct log_quoted lq;
                log_warn("replicas.delete", "kind=%s id=%s container_id=%.12s error=%s", kname, id,
                         r[i].c->id, log_quote(&lq, e.msg));
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
    free(r);
    backend_container_list_release(&list);
    return rc;
}

/* ---- apply ------------------------------------------------------------- */

/* Bring a replica that exists back to running: start one that was made but
 * never started or that exited, unpause a paused one. 1 when it acted, 0
 * when there was nothing to do, -1 on failure. */
static int rp_wake(const struct backend *b, const struct backend_container *c, int64_t deadline,
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

/* Create and start replica i. What was created is appended to made (heap
 * strings the caller frees) before the start, so a failed start is rolled
 * back too. Transient strings live in a. */
static int rp_make(const struct backend *b, const struct backend_replica_spec *spec,
                   struct arena *a, unsigned i, int64_t deadline, char **made, size_t *n_made,
                   struct berth_err *err)
{
    const struct object_kind_info *k = object_kind_info(spec->kind);
    const struct backend_spec *t = &spec->tmpl;
    struct backend_spec cs = *t;
    struct backend_label *labels = arena_alloc(a, (RP_OWN_LABELS + t->n_labels) * sizeof(*labels));
    const char **env = arena_alloc(a, (t->n_env + 1) * sizeof(*env));
    const char *wanted = arena_printf(a, "%u", spec->replicas);
    const char *index = arena_printf(a, "%u", i);
    const char *name = arena_printf(a, "%s%s-%u", rp_prefix(spec->kind), spec->id, i);
    char *cid = NULL;
    size_t nl = 0;

    if (labels == NULL || env == NULL || wanted == NULL || index == NULL || name == NULL)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    labels[nl++] = (struct backend_label){LABEL_KIND, k->name};
    labels[nl++] = (struct backend_label){k->id_label, spec->id};
    labels[nl++] = (struct backend_label){LABEL_REPLICA, index};
    labels[nl++] = (struct backend_label){LABEL_SPEC, spec->digest};
    /* So a set that a crash left short shows its missing replicas. */
    labels[nl++] = (struct backend_label){LABEL_REPLICAS, wanted};
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

/* Remove the replicas this call made. Best effort: failures are logged. */
static void rp_rollback(const struct backend *b, const struct backend_replica_spec *spec,
                        char **made, size_t n_made)
{
    const char *kname = object_kind_info(spec->kind)->name;
    int64_t deadline = berth_now_ms() + RP_ROLLBACK_MS;
    size_t removed = 0;

    for (size_t i = 0; i < n_made; i++) {
        struct berth_err e;
        berth_err_clear(&e);
        if (b->ops->remove(b->ctx, made[i], deadline, &e) == 0)
            removed++;
        else if (e.code != BERTH_NOT_FOUND) {
            struct log_quoted lq;
            log_warn("replicas.rollback", "kind=%s id=%s container=%.64s code=%s error=%s", kname,
                     spec->id, made[i], berth_code_name(e.code), log_quote(&lq, e.msg));
        }
    }
    if (removed > 0)
        log_info("replicas.rollback", "kind=%s id=%s removed=%zu", kname, spec->id, removed);
}

int docker_replicas_apply(const struct backend *containers, const struct backend_replica_spec *spec,
                          int64_t deadline, struct backend_apply_result *out, struct berth_err *err)
{
    struct backend_container_list list = {0};
    struct backend_apply_result res = {0};
    struct arena *a = NULL;
    char present[BACKEND_MAX_REPLICAS] = {0};
    char *made[BACKEND_MAX_REPLICAS];
    const char *kname;
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
    if (rp_list(containers, spec->kind, spec->id, deadline, &list, err) < 0)
        goto out;
    for (size_t i = 0; i < list.n; i++) {
        const struct backend_container *c = &list.items[i];
        const char *digest = backend_container_label(c, LABEL_SPEC);
        const char *ns = backend_container_label(c, LABEL_NAMESPACE);
        unsigned idx;

        if (digest == NULL || strcmp(digest, spec->digest) != 0 ||
            strcmp(ns ? ns : "", spec->ns) != 0 ||
            rp_label_uint(c, LABEL_REPLICA, BACKEND_MAX_REPLICAS, &idx) < 0 ||
            idx >= spec->replicas) {
            berth_err_set(err, BERTH_ALREADY_EXISTS, "%s '%s' already exists with a different spec",
                          kname, spec->id);
            goto out;
        }
        present[idx] = 1;
    }
    res.existing = list.n;

    /* A retry completes a set that a crash or a removal behind our back left
     * short, starts replicas that were made but never started or exited, and
     * unpauses paused ones. */
    for (size_t i = 0; i < list.n; i++) {
        int woke = rp_wake(containers, &list.items[i], deadline, err);
        if (woke < 0)
            goto out;
        res.woken += (size_t)woke;
    }
    for (unsigned i = 0; i < spec->replicas; i++) {
        if (present[i])
            continue;
        if (rp_make(containers, spec, a, i, deadline, made, &n_made, err) < 0)
            goto out;
    }
    res.added = n_made;
    if (out != NULL)
        *out = res;
    rc = 0;
out:
    if (rc < 0)
        rp_rollback(containers, spec, made, n_made);
    for (size_t i = 0; i < n_made; i++)
        free(made[i]);
    backend_container_list_release(&list);
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
