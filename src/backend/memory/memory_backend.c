/* The in-memory backend (see berth/memory_backend.h): a mutex-guarded list
 * of fake containers following the Engine's rules (start of a running
 * container is fine, pause of a stopped one is not, ...). */
#include "berth/memory_backend.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "berth/clock.h"
#include "berth/docker_replicas.h"
#include "berth/labels.h"
#include "berth/lock.h"
#include "berth/sorted.h"

struct mem_container {
    char id[65];
    struct backend_container c;   /* the data inspect copies out */
    struct backend_stats stats;   /* what memory_backend_set_stats gave; zero until then */
    int stats_fresh;              /* `stats` not given to a sweep yet */
    struct backend_log_list logs; /* what memory_backend_set_logs gave */
    int has_check;                /* the spec asked for a health check of its own */
};

#define MEM_FAILS 4 /* failures armed at once */

/* Calls of `op` to fail: `skip` succeed first, then `n` fail with `code`. */
struct mem_fail {
    char op[16];
    int skip;
    int n;
    enum berth_code code;
};

struct mem_ctx {
    pthread_mutex_t lock;
    /* The containers twice, for lookups in log time: `items` sorted by id
     * (ids only grow, so that is also the order they were made in),
     * `by_name` sorted by name. Both guarded by lock. */
    struct mem_container **items;
    struct mem_container **by_name;
    size_t n, cap;                    /* guarded by lock */
    uint64_t next_id;                 /* guarded by lock */
    int next_port;                    /* guarded by lock */
    struct mem_fail fails[MEM_FAILS]; /* guarded by lock */
    char crash_image[256];            /* guarded by lock: its containers exit once started */
    int crash_code;                   /* guarded by lock */
    uint64_t sweeps;                  /* guarded by lock: stats sweeps so far */
    char **volumes;                   /* guarded by lock: names of the volumes made */
    size_t n_volumes;                 /* guarded by lock */
};

static int mem_fail(struct mem_ctx *m, const char *op, struct berth_err *err);
static struct mem_container *mem_find(struct mem_ctx *m, const char *id);
static int mem_reserve(struct mem_ctx *m);
static void mem_insert(struct mem_ctx *m, struct mem_container *mc);
static void mem_unlink(struct mem_ctx *m, const struct mem_container *mc);
static int mem_copy(struct backend_container *dst, const struct backend_container *src);
static int mem_transition(void *ctx, const char *op, const char *id, struct berth_err *err);
static int mem_ping(void *ctx, int64_t deadline, struct berth_err *err);
static int mem_create(void *ctx, const struct backend_spec *spec, int64_t deadline, char **id_out,
                      struct berth_err *err);
static int mem_start(void *ctx, const char *id, int64_t deadline, struct berth_err *err);
static int mem_stop(void *ctx, const char *id, int t, int64_t deadline, struct berth_err *err);
static int mem_kill(void *ctx, const char *id, int64_t deadline, struct berth_err *err);
static int mem_pause(void *ctx, const char *id, int64_t deadline, struct berth_err *err);
static int mem_unpause(void *ctx, const char *id, int64_t deadline, struct berth_err *err);
static int mem_restart(void *ctx, const char *id, int t, int64_t deadline, struct berth_err *err);
static int mem_remove(void *ctx, const char *id, int64_t deadline, struct berth_err *err);
static int mem_inspect(void *ctx, const char *id, int64_t deadline, struct backend_container *out,
                       struct berth_err *err);
static int mem_list(void *ctx, const char *label, int64_t deadline,
                    struct backend_container_list *out, struct berth_err *err);
static int mem_stats(void *ctx, const char *id, int64_t deadline, struct backend_stats *out,
                     struct berth_err *err);
static int mem_stats_sweep(void *ctx, const char *const *ids, size_t n, int64_t deadline,
                           const atomic_int *stop, struct backend_stats_result *out,
                           struct backend_sweep_info *info, struct berth_err *err);
static int mem_logs(void *ctx, const char *id, const struct backend_log_query *q, int64_t deadline,
                    struct backend_log_list *out, struct berth_err *err);
static int mem_remove_volume(void *ctx, const char *name, const struct backend_label *must,
                             size_t n_must, int64_t deadline, struct berth_err *err);
static size_t mem_volume_find(const struct mem_ctx *m, const char *name);
static void mem_destroy(void *ctx);
static int mem_replica_apply(void *ctx, const struct backend_replica_spec *spec, int64_t deadline,
                             struct backend_apply_result *out, struct berth_err *err);
static int mem_replica_get(void *ctx, enum object_kind kind, const char *ns, const char *id,
                           int64_t deadline, struct backend_replica_set *out,
                           struct berth_err *err);
static int mem_replica_list(void *ctx, enum object_kind kind, const char *id, int64_t deadline,
                            struct backend_replica_set_list *out, struct berth_err *err);
static int mem_replica_delete(void *ctx, enum object_kind kind, const char *ns, const char *id,
                              int64_t deadline, size_t *removed, struct berth_err *err);
static int mem_replica_update(void *ctx, const struct backend_replica_spec *spec,
                              const struct backend_update_opts *opts, int64_t deadline,
                              struct backend_update_result *out, struct berth_err *err);
static int mem_replica_recover(void *ctx, enum object_kind kind, const char *ns, const char *id,
                               int64_t deadline, int *acted, struct berth_err *err);

static const struct backend_ops memory_ops = {
    .name = "memory",
    .ping = mem_ping,
    .create = mem_create,
    .start = mem_start,
    .stop = mem_stop,
    .kill = mem_kill,
    .pause = mem_pause,
    .unpause = mem_unpause,
    .restart = mem_restart,
    .remove = mem_remove,
    .remove_volume = mem_remove_volume,
    .inspect = mem_inspect,
    .list = mem_list,
    .replica_apply = mem_replica_apply,
    .replica_get = mem_replica_get,
    .replica_list = mem_replica_list,
    .replica_delete = mem_replica_delete,
    .replica_update = mem_replica_update,
    .replica_recover = mem_replica_recover,
    .stats = mem_stats,
    .stats_sweep = mem_stats_sweep,
    .logs = mem_logs,
    .destroy = mem_destroy,
};

int memory_backend_new(struct backend *out, struct berth_err *err)
{
    struct mem_ctx *m = calloc(1, sizeof(*m));

    if (m == NULL)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    lock_init(&m->lock);
    m->next_port = 32768;
    out->ops = &memory_ops;
    out->ctx = m;
    return 0;
}

/* Caller holds m->lock. */
static int mem_fail(struct mem_ctx *m, const char *op, struct berth_err *err)
{
    for (size_t i = 0; i < MEM_FAILS; i++) {
        struct mem_fail *f = &m->fails[i];
        if (f->n <= 0 || strcmp(f->op, op) != 0)
            continue;
        if (f->skip > 0) {
            f->skip--;
            continue;
        }
        f->n--;
        return berth_err_set(err, f->code, "injected %s failure", op);
    }
    return 0;
}

static const char *mem_id_of(const void *elem)
{
    return (*(struct mem_container *const *)elem)->id;
}

static const char *mem_name_of(const void *elem)
{
    return (*(struct mem_container *const *)elem)->c.name;
}

/* Where `key` is, or would go, in one of the indexes. */
#define mem_slot_by_id(m, key, found)                                                              \
    sorted_slot((m)->items, (m)->n, sizeof(*(m)->items), (key), mem_id_of, (found))
#define mem_slot_by_name(m, key, found)                                                            \
    sorted_slot((m)->by_name, (m)->n, sizeof(*(m)->by_name), (key), mem_name_of, (found))

/* Caller holds m->lock. By id or by name, like the Engine. */
static struct mem_container *mem_find(struct mem_ctx *m, const char *id)
{
    int found;
    size_t at = mem_slot_by_id(m, id, &found);

    if (found)
        return m->items[at];
    at = mem_slot_by_name(m, id, &found);
    return found ? m->by_name[at] : NULL;
}

/* Caller holds m->lock. Room for one more container in both indexes. */
static int mem_reserve(struct mem_ctx *m)
{
    size_t cap = m->cap ? m->cap * 2 : 16;
    struct mem_container **items, **by_name;

    if (m->n < m->cap)
        return 0;
    items = realloc(m->items, cap * sizeof(*items));
    if (items == NULL)
        return -1;
    m->items = items;
    by_name = realloc(m->by_name, cap * sizeof(*by_name));
    if (by_name == NULL)
        return -1;
    m->by_name = by_name;
    m->cap = cap;
    return 0;
}

/* Caller holds m->lock and made room (mem_reserve); no container has its
 * id or name yet. */
static void mem_insert(struct mem_ctx *m, struct mem_container *mc)
{
    int found;
    size_t at = mem_slot_by_id(m, mc->id, &found);

    memmove(&m->items[at + 1], &m->items[at], (m->n - at) * sizeof(*m->items));
    m->items[at] = mc;
    at = mem_slot_by_name(m, mc->c.name, &found);
    memmove(&m->by_name[at + 1], &m->by_name[at], (m->n - at) * sizeof(*m->by_name));
    m->by_name[at] = mc;
    m->n++;
}

/* Caller holds m->lock; mc is one of the containers (in both indexes, or
 * the indexes are broken: a bug, never a condition to handle). */
static void mem_unlink(struct mem_ctx *m, const struct mem_container *mc)
{
    int by_id, by_name;
    size_t at_id = mem_slot_by_id(m, mc->id, &by_id);
    size_t at_name = mem_slot_by_name(m, mc->c.name, &by_name);

    if (!by_id || !by_name)
        abort();
    memmove(&m->items[at_id], &m->items[at_id + 1], (m->n - at_id - 1) * sizeof(*m->items));
    memmove(&m->by_name[at_name], &m->by_name[at_name + 1],
            (m->n - at_name - 1) * sizeof(*m->by_name));
    m->n--;
}

static int mem_copy(struct backend_container *dst, const struct backend_container *src)
{
    struct backend_container c = *src;

    c.id = strdup(src->id);
    c.name = strdup(src->name);
    c.image = strdup(src->image);
    c.ip_address = strdup(src->ip_address);
    c.mac_address = strdup(src->mac_address);
    c.gateway = strdup(src->gateway);
    c.ports = calloc(src->n_ports ? src->n_ports : 1, sizeof(*c.ports));
    c.labels = calloc(src->n_labels ? src->n_labels : 1, sizeof(*c.labels));
    c.n_labels = 0;
    if (!c.id || !c.name || !c.image || !c.ip_address || !c.mac_address || !c.gateway || !c.ports ||
        !c.labels)
        goto fail;
    if (src->n_ports)
        memcpy(c.ports, src->ports, src->n_ports * sizeof(*c.ports));
    for (size_t i = 0; i < src->n_labels; i++) {
        c.labels[i].key = strdup(src->labels[i].key);
        c.labels[i].value = strdup(src->labels[i].value);
        c.n_labels++;
        if (!c.labels[i].key || !c.labels[i].value)
            goto fail;
    }
    *dst = c;
    return 0;
fail:
    backend_container_release(&c);
    return -1;
}

static int mem_ping(void *ctx, int64_t deadline, struct berth_err *err)
{
    struct mem_ctx *m = ctx;
    int rc;

    (void)deadline;
    lock_take(&m->lock);
    rc = mem_fail(m, "ping", err);
    lock_give(&m->lock);
    return rc;
}

static int mem_create(void *ctx, const struct backend_spec *spec, int64_t deadline, char **id_out,
                      struct berth_err *err)
{
    struct mem_ctx *m = ctx;
    struct mem_container *mc = NULL;
    struct backend_container proto = {0};
    int rc = -1;

    (void)deadline;
    lock_take(&m->lock);
    if (mem_fail(m, "create", err) < 0)
        goto out;
    if (mem_find(m, spec->name) != NULL) {
        berth_err_set(err, BERTH_ALREADY_EXISTS, "container name '%s' is already in use",
                      spec->name);
        goto out;
    }
    mc = calloc(1, sizeof(*mc));
    proto.labels = calloc(spec->n_labels + 1, sizeof(*proto.labels));
    if (mc == NULL || proto.labels == NULL || mem_reserve(m) < 0) {
        berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        goto fail;
    }
    snprintf(mc->id, sizeof(mc->id), "%064" PRIx64, ++m->next_id);
    proto.id = mc->id;
    proto.name = (char *)spec->name;
    proto.image = (char *)spec->image;
    proto.state = BACKEND_STATE_CREATED;
    proto.ip_address = "";
    proto.mac_address = "";
    proto.gateway = "";
    proto.created_unix = (int64_t)time(NULL);
    proto.restart_count = 0;
    mc->has_check = spec->health != NULL && !spec->health->disable && spec->health->n_test > 0;
    proto.health = mc->has_check ? BACKEND_HEALTH_STARTING : BACKEND_HEALTH_NONE;
    proto.ports = (struct backend_port *)spec->ports;
    proto.n_ports = spec->n_ports;
    for (size_t i = 0; i < spec->n_labels; i++) {
        proto.labels[i].key = (char *)spec->labels[i].key;
        proto.labels[i].value = (char *)spec->labels[i].value;
    }
    proto.labels[spec->n_labels].key = LABEL_MANAGED;
    proto.labels[spec->n_labels].value = LABEL_MANAGED_VALUE;
    proto.n_labels = spec->n_labels + 1;
    if (mem_copy(&mc->c, &proto) < 0) {
        berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < mc->c.n_ports; i++)
        if (mc->c.ports[i].host_port == 0)
            mc->c.ports[i].host_port = m->next_port++;
    /* Volumes as the Engine keeps them: by name, made when first mounted. */
    for (size_t i = 0; i < spec->n_volumes; i++) {
        char **grown;

        if (mem_volume_find(m, spec->volumes[i].name) < m->n_volumes)
            continue;
        grown = realloc(m->volumes, (m->n_volumes + 1) * sizeof(*grown));
        if (grown == NULL || (grown[m->n_volumes] = strdup(spec->volumes[i].name)) == NULL) {
            if (grown != NULL)
                m->volumes = grown;
            backend_container_release(&mc->c);
            berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
            goto fail;
        }
        m->volumes = grown;
        m->n_volumes++;
    }
    *id_out = strdup(mc->id);
    if (*id_out == NULL) {
        backend_container_release(&mc->c);
        berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        goto fail;
    }
    mem_insert(m, mc);
    mc = NULL;
    rc = 0;
fail:
    free(mc);
    free(proto.labels);
out:
    lock_give(&m->lock);
    return rc;
}

/* The Engine's rules for each operation, applied to a fake container. */
static int mem_transition(void *ctx, const char *op, const char *id, struct berth_err *err)
{
    struct mem_ctx *m = ctx;
    struct mem_container *mc;
    enum backend_state st, next = BACKEND_STATE_UNKNOWN;
    int rc = -1;

    lock_take(&m->lock);
    if (mem_fail(m, op, err) < 0)
        goto out;
    mc = mem_find(m, id);
    if (mc == NULL) {
        berth_err_set(err, BERTH_NOT_FOUND, "no such container: %s", id);
        goto out;
    }
    st = mc->c.state;
    if (strcmp(op, "start") == 0) {
        if (st == BACKEND_STATE_PAUSED) {
            berth_err_set(err, BERTH_FAILED_PRECONDITION, "cannot start a paused container");
            goto out;
        }
        next = BACKEND_STATE_RUNNING;
    } else if (strcmp(op, "stop") == 0 || strcmp(op, "kill") == 0) {
        if (strcmp(op, "kill") == 0 && st != BACKEND_STATE_RUNNING && st != BACKEND_STATE_PAUSED) {
            berth_err_set(err, BERTH_FAILED_PRECONDITION, "container %s is not running", id);
            goto out;
        }
        next = st == BACKEND_STATE_CREATED ? BACKEND_STATE_CREATED : BACKEND_STATE_EXITED;
    } else if (strcmp(op, "pause") == 0) {
        if (st != BACKEND_STATE_RUNNING) {
            berth_err_set(err, BERTH_FAILED_PRECONDITION, "container %s is not running", id);
            goto out;
        }
        next = BACKEND_STATE_PAUSED;
    } else if (strcmp(op, "unpause") == 0) {
        if (st != BACKEND_STATE_PAUSED) {
            berth_err_set(err, BERTH_FAILED_PRECONDITION, "container %s is not paused", id);
            goto out;
        }
        next = BACKEND_STATE_RUNNING;
    } else if (strcmp(op, "restart") == 0) {
        next = BACKEND_STATE_RUNNING;
    }
    if (next != BACKEND_STATE_UNKNOWN)
        mc->c.state = next;
    if (mc->c.state == BACKEND_STATE_RUNNING &&
        (strcmp(op, "start") == 0 || strcmp(op, "restart") == 0)) {
        mc->c.started_unix_ms = berth_unix_ms();
        if (mc->has_check)
            mc->c.health = BACKEND_HEALTH_STARTING; /* a new run checks from scratch */
        /* As the Engine: the start succeeds, then the command fails. */
        if (m->crash_image[0] != '\0' && strcmp(mc->c.image, m->crash_image) == 0) {
            mc->c.state = BACKEND_STATE_EXITED;
            mc->c.exit_code = m->crash_code;
            mc->c.finished_unix_ms = mc->c.started_unix_ms;
        }
    }
    rc = 0;
out:
    lock_give(&m->lock);
    return rc;
}

static int mem_start(void *ctx, const char *id, int64_t deadline, struct berth_err *err)
{
    (void)deadline;
    return mem_transition(ctx, "start", id, err);
}

static int mem_stop(void *ctx, const char *id, int t, int64_t deadline, struct berth_err *err)
{
    (void)t;
    (void)deadline;
    return mem_transition(ctx, "stop", id, err);
}

static int mem_kill(void *ctx, const char *id, int64_t deadline, struct berth_err *err)
{
    (void)deadline;
    return mem_transition(ctx, "kill", id, err);
}

static int mem_pause(void *ctx, const char *id, int64_t deadline, struct berth_err *err)
{
    (void)deadline;
    return mem_transition(ctx, "pause", id, err);
}

static int mem_unpause(void *ctx, const char *id, int64_t deadline, struct berth_err *err)
{
    (void)deadline;
    return mem_transition(ctx, "unpause", id, err);
}

static int mem_restart(void *ctx, const char *id, int t, int64_t deadline, struct berth_err *err)
{
    (void)t;
    (void)deadline;
    return mem_transition(ctx, "restart", id, err);
}

static int mem_remove(void *ctx, const char *id, int64_t deadline, struct berth_err *err)
{
    struct mem_ctx *m = ctx;
    struct mem_container *mc;
    int rc = -1;

    (void)deadline;
    lock_take(&m->lock);
    if (mem_fail(m, "remove", err) < 0)
        goto out;
    mc = mem_find(m, id);
    if (mc == NULL) {
        berth_err_set(err, BERTH_NOT_FOUND, "no such container: %s", id);
        goto out;
    }
    mem_unlink(m, mc);
    backend_container_release(&mc->c);
    backend_log_list_release(&mc->logs);
    free(mc);
    rc = 0;
out:
    lock_give(&m->lock);
    return rc;
}

static int mem_inspect(void *ctx, const char *id, int64_t deadline, struct backend_container *out,
                       struct berth_err *err)
{
    struct mem_ctx *m = ctx;
    struct mem_container *mc;
    int rc = -1;

    (void)deadline;
    lock_take(&m->lock);
    if (mem_fail(m, "inspect", err) < 0)
        goto out;
    mc = mem_find(m, id);
    if (mc == NULL) {
        berth_err_set(err, BERTH_NOT_FOUND, "no such container: %s", id);
        goto out;
    }
    if (mem_copy(out, &mc->c) < 0) {
        berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    rc = 0;
out:
    lock_give(&m->lock);
    return rc;
}

static int label_matches(const struct backend_container *c, const char *label);

/* "k=v" or just "k". */
static int label_matches(const struct backend_container *c, const char *label)
{
    const char *eq = strchr(label, '=');
    size_t klen = eq ? (size_t)(eq - label) : strlen(label);

    for (size_t j = 0; j < c->n_labels; j++) {
        const struct backend_kv *kv = &c->labels[j];
        if (strlen(kv->key) == klen && strncmp(kv->key, label, klen) == 0 &&
            (eq == NULL || strcmp(kv->value, eq + 1) == 0))
            return 1;
    }
    return 0;
}

static int mem_list(void *ctx, const char *label, int64_t deadline,
                    struct backend_container_list *out, struct berth_err *err)
{
    struct mem_ctx *m = ctx;
    struct backend_container_list l = {0};
    int rc = -1;

    (void)deadline;
    lock_take(&m->lock);
    if (mem_fail(m, "list", err) < 0)
        goto out;
    l.items = calloc(m->n ? m->n : 1, sizeof(*l.items));
    if (l.items == NULL) {
        berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < m->n; i++) {
        if (label != NULL && !label_matches(&m->items[i]->c, label))
            continue;
        if (mem_copy(&l.items[l.n], &m->items[i]->c) < 0) {
            backend_container_list_release(&l);
            berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
            goto out;
        }
        l.n++;
    }
    *out = l;
    rc = 0;
out:
    lock_give(&m->lock);
    return rc;
}

/* The sample set by the test hook (a zero one stamped now before any). */
static int mem_stats(void *ctx, const char *id, int64_t deadline, struct backend_stats *out,
                     struct berth_err *err)
{
    struct mem_ctx *m = ctx;
    struct mem_container *mc;
    int rc = -1;

    (void)deadline;
    lock_take(&m->lock);
    if (mem_fail(m, "stats", err) < 0)
        goto out;
    mc = mem_find(m, id);
    if (mc == NULL) {
        berth_err_set(err, BERTH_NOT_FOUND, "no such container: %s", id);
        goto out;
    }
    if (mc->c.state != BACKEND_STATE_RUNNING) {
        berth_err_set(err, BERTH_FAILED_PRECONDITION, "container %s is not running", id);
        goto out;
    }
    *out = mc->stats;
    if (out->sampled_at_unix_ms == 0)
        out->sampled_at_unix_ms = berth_unix_ms();
    rc = 0;
out:
    lock_give(&m->lock);
    return rc;
}

/* Each running container's sample set since the last sweep, once; an
 * injected "stats" failure fails the next container(s) asked for. */
static int mem_stats_sweep(void *ctx, const char *const *ids, size_t n, int64_t deadline,
                           const atomic_int *stop, struct backend_stats_result *out,
                           struct backend_sweep_info *info, struct berth_err *err)
{
    struct mem_ctx *m = ctx;

    (void)deadline;
    (void)stop;
    (void)err;
    memset(info, 0, sizeof(*info));
    lock_take(&m->lock);
    m->sweeps++;
    for (size_t i = 0; i < n; i++) {
        struct mem_container *mc;

        memset(&out[i], 0, sizeof(out[i]));
        berth_err_clear(&out[i].err);
        if (mem_fail(m, "stats", &out[i].err) < 0) {
            out[i].status = BACKEND_SAMPLE_ERROR;
            info->errors++;
            continue;
        }
        mc = mem_find(m, ids[i]);
        if (mc == NULL) {
            out[i].status = BACKEND_SAMPLE_ERROR;
            berth_err_set(&out[i].err, BERTH_NOT_FOUND, "no such container: %s", ids[i]);
            info->errors++;
        } else if (mc->c.state == BACKEND_STATE_RUNNING && mc->stats_fresh) {
            out[i].status = BACKEND_SAMPLE_NEW;
            out[i].stats = mc->stats;
            mc->stats_fresh = 0;
        }
    }
    lock_give(&m->lock);
    info->complete = 1;
    return 0;
}

static void mem_destroy(void *ctx)
{
    struct mem_ctx *m = ctx;

    if (m == NULL)
        return;
    for (size_t i = 0; i < m->n; i++) {
        backend_container_release(&m->items[i]->c);
        backend_log_list_release(&m->items[i]->logs);
        free(m->items[i]);
    }
    free(m->items);
    free(m->by_name);
    for (size_t i = 0; i < m->n_volumes; i++)
        free(m->volumes[i]);
    free(m->volumes);
    lock_destroy(&m->lock);
    free(m);
}

/* The index of volume `name`, or m->n_volumes. Caller holds m->lock. */
static size_t mem_volume_find(const struct mem_ctx *m, const char *name)
{
    size_t i = 0;

    while (i < m->n_volumes && strcmp(m->volumes[i], name) != 0)
        i++;
    return i;
}

/* Every volume here is this backend's own: `must` has nothing to refuse. */
static int mem_remove_volume(void *ctx, const char *name, const struct backend_label *must,
                             size_t n_must, int64_t deadline, struct berth_err *err)
{
    struct mem_ctx *m = ctx;
    size_t at;
    int rc = -1;

    (void)must;
    (void)n_must;
    (void)deadline;
    lock_take(&m->lock);
    if (mem_fail(m, "remove_volume", err) < 0)
        goto out;
    at = mem_volume_find(m, name);
    if (at == m->n_volumes) {
        berth_err_set(err, BERTH_NOT_FOUND, "volume '%s' not found", name);
        goto out;
    }
    free(m->volumes[at]);
    m->volumes[at] = m->volumes[--m->n_volumes];
    rc = 0;
out:
    lock_give(&m->lock);
    return rc;
}

int memory_backend_has_volume(struct backend *b, const char *name)
{
    struct mem_ctx *m = b->ctx;
    int found;

    lock_take(&m->lock);
    found = mem_volume_find(m, name) < m->n_volumes;
    lock_give(&m->lock);
    return found;
}

int memory_backend_set_health(struct backend *b, const char *id, enum backend_health health)
{
    struct mem_ctx *m = b->ctx;
    struct mem_container *mc;
    int rc = -1;

    lock_take(&m->lock);
    mc = mem_find(m, id);
    if (mc != NULL) {
        mc->c.health = health;
        rc = 0;
    }
    lock_give(&m->lock);
    return rc;
}

void memory_backend_fail_next(struct backend *b, const char *op, int n, enum berth_code code)
{
    struct mem_ctx *m = b->ctx;

    lock_take(&m->lock);
    memset(m->fails, 0, sizeof(m->fails));
    snprintf(m->fails[0].op, sizeof(m->fails[0].op), "%s", op);
    m->fails[0].n = n;
    m->fails[0].code = code;
    lock_give(&m->lock);
}

int memory_backend_fail_later(struct backend *b, const char *op, int skip, int n,
                              enum berth_code code)
{
    struct mem_ctx *m = b->ctx;
    int rc = -1;

    lock_take(&m->lock);
    for (size_t i = 0; i < MEM_FAILS && rc < 0; i++) {
        struct mem_fail *f = &m->fails[i];
        if (f->n > 0 && strcmp(f->op, op) != 0)
            continue;
        snprintf(f->op, sizeof(f->op), "%s", op);
        f->skip = skip;
        f->n = n;
        f->code = code;
        rc = 0;
    }
    lock_give(&m->lock);
    return rc;
}

void memory_backend_crash_image(struct backend *b, const char *image, int exit_code)
{
    struct mem_ctx *m = b->ctx;

    lock_take(&m->lock);
    snprintf(m->crash_image, sizeof(m->crash_image), "%s", image ? image : "");
    m->crash_code = exit_code;
    lock_give(&m->lock);
}

size_t memory_backend_count(struct backend *b)
{
    struct mem_ctx *m = b->ctx;
    size_t n;

    lock_take(&m->lock);
    n = m->n;
    lock_give(&m->lock);
    return n;
}

int memory_backend_set_state(struct backend *b, const char *id, enum backend_state state)
{
    struct mem_ctx *m = b->ctx;
    struct mem_container *mc;
    int rc = -1;

    lock_take(&m->lock);
    mc = mem_find(m, id);
    if (mc != NULL) {
        mc->c.state = state;
        rc = 0;
    }
    lock_give(&m->lock);
    return rc;
}

/* Replica sets: the same N-containers code as the Docker backend, over this
 * backend's container operations, so the services' tests run what runs in
 * production. */
static int mem_replica_apply(void *ctx, const struct backend_replica_spec *spec, int64_t deadline,
                             struct backend_apply_result *out, struct berth_err *err)
{
    const struct backend self = {&memory_ops, ctx};

    return docker_replicas_apply(&self, spec, deadline, out, err);
}

static int mem_replica_get(void *ctx, enum object_kind kind, const char *ns, const char *id,
                           int64_t deadline, struct backend_replica_set *out, struct berth_err *err)
{
    const struct backend self = {&memory_ops, ctx};

    return docker_replicas_get(&self, kind, ns, id, deadline, out, err);
}

static int mem_replica_list(void *ctx, enum object_kind kind, const char *id, int64_t deadline,
                            struct backend_replica_set_list *out, struct berth_err *err)
{
    const struct backend self = {&memory_ops, ctx};

    return docker_replicas_list(&self, kind, id, deadline, out, err);
}

static int mem_replica_delete(void *ctx, enum object_kind kind, const char *ns, const char *id,
                              int64_t deadline, size_t *removed, struct berth_err *err)
{
    const struct backend self = {&memory_ops, ctx};

    return docker_replicas_delete(&self, kind, ns, id, deadline, removed, err);
}

static int mem_replica_update(void *ctx, const struct backend_replica_spec *spec,
                              const struct backend_update_opts *opts, int64_t deadline,
                              struct backend_update_result *out, struct berth_err *err)
{
    const struct backend self = {&memory_ops, ctx};

    return docker_replicas_update(&self, spec, opts, deadline, out, err);
}

static int mem_replica_recover(void *ctx, enum object_kind kind, const char *ns, const char *id,
                               int64_t deadline, int *acted, struct berth_err *err)
{
    const struct backend self = {&memory_ops, ctx};

    return docker_replicas_recover(&self, kind, ns, id, deadline, acted, err);
}

int memory_backend_set_stats(struct backend *b, const char *id, const struct backend_stats *st)
{
    struct mem_ctx *m = b->ctx;
    struct mem_container *mc;
    int rc = -1;

    lock_take(&m->lock);
    mc = mem_find(m, id);
    if (mc != NULL) {
        mc->stats = *st;
        mc->stats.source = BACKEND_STATS_FAKE;
        mc->stats_fresh = 1;
        rc = 0;
    }
    lock_give(&m->lock);
    return rc;
}

uint64_t memory_backend_sweeps(struct backend *b)
{
    struct mem_ctx *m = b->ctx;
    uint64_t n;

    lock_take(&m->lock);
    n = m->sweeps;
    lock_give(&m->lock);
    return n;
}

int memory_backend_set_logs(struct backend *b, const char *id,
                            const struct backend_log_entry *entries, size_t n)
{
    struct mem_ctx *m = b->ctx;
    struct mem_container *mc;
    struct backend_log_list l = {0};
    struct berth_err err;
    int rc = -1;

    for (size_t i = 0; i < n; i++)
        if (backend_log_list_add(&l, entries[i].time_unix_ns, entries[i].stream, entries[i].line,
                                 entries[i].len, &err) < 0) {
            backend_log_list_release(&l);
            return -1;
        }
    lock_take(&m->lock);
    mc = mem_find(m, id);
    if (mc != NULL) {
        backend_log_list_release(&mc->logs);
        mc->logs = l;
        l = (struct backend_log_list){0};
        rc = 0;
    }
    lock_give(&m->lock);
    backend_log_list_release(&l);
    return rc;
}

static int mem_logs(void *ctx, const char *id, const struct backend_log_query *q, int64_t deadline,
                    struct backend_log_list *out, struct berth_err *err)
{
    struct mem_ctx *m = ctx;
    struct mem_container *mc;
    struct backend_log_list l = {0};
    int rc = -1;

    (void)deadline;
    lock_take(&m->lock);
    if (mem_fail(m, "logs", err) < 0)
        goto out;
    mc = mem_find(m, id);
    if (mc == NULL) {
        berth_err_set(err, BERTH_NOT_FOUND, "No such container: %s", id);
        goto out;
    }
    for (size_t i = 0; i < mc->logs.n; i++)
        if (backend_log_list_add(&l, mc->logs.items[i].time_unix_ns, mc->logs.items[i].stream,
                                 mc->logs.items[i].line, mc->logs.items[i].len, err) < 0)
            goto out;
    rc = 0;
out:
    lock_give(&m->lock);
    if (rc == 0) {
        backend_log_list_filter(&l, q);
        *out = l;
    } else {
        backend_log_list_release(&l);
    }
    return rc;
}
