/* id -> VM record: a sorted array of records under one mutex, each record
 * with its own operation lock and a reference count so it outlives its
 * removal while a caller still holds it (see berth/vm_registry.h). */
#include "berth/vm_registry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/clock.h"
#include "berth/lock.h"
#include "berth/sorted.h"

struct vm_record {
    pthread_mutex_t op_lock; /* serialises lifecycle calls on this VM */
    struct vm_snapshot data; /* guarded by registry.lock */
    int visible;             /* guarded by registry.lock */
    int removed;             /* guarded by registry.lock */
    int refs;                /* guarded by registry.lock */
    uint64_t observed;       /* guarded by registry.lock: engine news taken in */
    int deleting;            /* guarded by registry.lock: a DeleteVm removes it */
};

/* Ids come from callers: echoed capped and cleaned. */
#define ID_QUOTE_MAX 80

struct vm_registry {
    pthread_mutex_t lock;
    struct vm_record **recs; /* guarded by lock; sorted by data.id */
    size_t n, cap;           /* guarded by lock */
    vm_listener_fn listener; /* guarded by lock */
    uint64_t gen;            /* guarded by lock: changes to the records but their metrics */
    void *listener_arg;      /* guarded by lock */
};

/* r->lock held: tell the listener. */
static void tell(struct vm_registry *r, enum vm_change what, const struct vm_snapshot *vm,
                 const char *reason)
{
    if (r->listener != NULL)
        r->listener(r->listener_arg, what, vm, reason ? reason : "");
}

/* Why a VM changed state behind any call: what its container did. */
static const char *observed_reason(const struct vm_snapshot *d, char *buf, size_t len)
{
    if (d->state != VM_STATE_SHUTDOWN)
        return "";
    if (d->oom_killed > 0)
        return "oom";
    snprintf(buf, len, "exited %d", d->exit_code);
    return buf;
}

void vm_registry_set_listener(struct vm_registry *r, vm_listener_fn fn, void *arg)
{
    lock_take(&r->lock);
    r->listener = fn;
    r->listener_arg = arg;
    lock_give(&r->lock);
}

int vm_registry_snapshot(struct vm_registry *r, vm_listener_fn each, void *arg,
                         int (*then)(void *then_arg), void *then_arg)
{
    int rc;

    lock_take(&r->lock);
    for (size_t i = 0; i < r->n; i++)
        if (r->recs[i]->visible)
            each(arg, VM_CHANGE_SNAPSHOT, &r->recs[i]->data, "");
    rc = then != NULL ? then(then_arg) : 0;
    lock_give(&r->lock);
    return rc;
}

static char *dup_or_empty(const char *s);
static int not_found(const char *id, struct berth_err *err);
static size_t find_slot(const struct vm_registry *r, const char *id, int *found);
static void record_free(struct vm_record *rec);
static void record_unref_locked(struct vm_registry *r, struct vm_record *rec, int *free_it);

static const char *const state_names[] = {
    "VM_STATE_UNSPECIFIED", "VM_STATE_CREATED",  "VM_STATE_RUNNING",
    "VM_STATE_PAUSED",      "VM_STATE_SHUTDOWN",
};

const char *vm_state_name(enum vm_state s)
{
    if ((int)s < 0 || (size_t)s >= sizeof(state_names) / sizeof(state_names[0]))
        return "VM_STATE_UNSPECIFIED";
    return state_names[s];
}

static char *dup_or_empty(const char *s)
{
    return strdup(s ? s : "");
}

void vm_snapshot_release(struct vm_snapshot *s)
{
    if (s == NULL)
        return;
    free(s->id);
    free(s->customer_id);
    free(s->config);
    free(s->container_id);
    free(s->container_name);
    free(s->image);
    free(s->ip_address);
    free(s->mac_address);
    free(s->gateway);
    free(s->ports);
    memset(s, 0, sizeof(*s));
}

int vm_snapshot_copy(struct vm_snapshot *dst, const struct vm_snapshot *src)
{
    struct vm_snapshot c = *src;

    c.id = dup_or_empty(src->id);
    c.customer_id = dup_or_empty(src->customer_id);
    c.container_id = dup_or_empty(src->container_id);
    c.container_name = dup_or_empty(src->container_name);
    c.image = dup_or_empty(src->image);
    c.ip_address = dup_or_empty(src->ip_address);
    c.mac_address = dup_or_empty(src->mac_address);
    c.gateway = dup_or_empty(src->gateway);
    c.config = malloc(src->config_len ? src->config_len : 1);
    c.ports = malloc(src->n_ports ? src->n_ports * sizeof(*src->ports) : 1);
    if (!c.id || !c.customer_id || !c.container_id || !c.container_name || !c.image ||
        !c.ip_address || !c.mac_address || !c.gateway || !c.config || !c.ports) {
        vm_snapshot_release(&c);
        return -1;
    }
    if (src->config_len)
        memcpy(c.config, src->config, src->config_len);
    if (src->n_ports)
        memcpy(c.ports, src->ports, src->n_ports * sizeof(*src->ports));
    *dst = c;
    return 0;
}

struct vm_registry *vm_registry_new(void)
{
    struct vm_registry *r = calloc(1, sizeof(*r));

    if (r == NULL)
        return NULL;
    lock_init(&r->lock);
    return r;
}

static void record_free(struct vm_record *rec)
{
    vm_snapshot_release(&rec->data);
    lock_destroy(&rec->op_lock);
    free(rec);
}

void vm_registry_free(struct vm_registry *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->n; i++)
        record_free(r->recs[i]);
    free(r->recs);
    lock_destroy(&r->lock);
    free(r);
}

static const char *record_id(const void *elem)
{
    return (*(struct vm_record *const *)elem)->data.id;
}

/* The index where id is or would go. Caller holds r->lock. */
static size_t find_slot(const struct vm_registry *r, const char *id, int *found)
{
    return sorted_slot(r->recs, r->n, sizeof(*r->recs), id, record_id, found);
}

int vm_registry_reserve(struct vm_registry *r, const struct vm_snapshot *init,
                        struct vm_record **out, struct berth_err *err)
{
    struct vm_record *rec = calloc(1, sizeof(*rec));
    size_t at;
    int found;

    if (rec == NULL || vm_snapshot_copy(&rec->data, init) < 0) {
        free(rec);
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    }
    lock_init(&rec->op_lock);
    rec->refs = 1;
    lock_take(&r->lock);
    at = find_slot(r, init->id, &found);
    if (found) {
        lock_give(&r->lock);
        record_free(rec);
        return berth_err_set(err, BERTH_ALREADY_EXISTS, "vm '%s' already exists", init->id);
    }
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        struct vm_record **recs = realloc(r->recs, cap * sizeof(*recs));
        if (recs == NULL) {
            lock_give(&r->lock);
            record_free(rec);
            return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        }
        r->recs = recs;
        r->cap = cap;
    }
    memmove(&r->recs[at + 1], &r->recs[at], (r->n - at) * sizeof(*r->recs));
    r->recs[at] = rec;
    r->n++;
    lock_give(&r->lock);
    /* Nobody else can see it yet, so this never waits. */
    lock_take(&rec->op_lock);
    *out = rec;
    return 0;
}

void vm_registry_publish(struct vm_registry *r, struct vm_record *rec)
{
    lock_take(&r->lock);
    rec->visible = 1;
    r->gen++;
    tell(r, VM_CHANGE_CREATED, &rec->data, "");
    lock_give(&r->lock);
}

static int not_found(const char *id, struct berth_err *err)
{
    char q[ID_QUOTE_MAX + 8];

    berth_err_quote(q, sizeof(q), id, ID_QUOTE_MAX);
    return berth_err_set(err, BERTH_NOT_FOUND, "vm '%s' not found", q);
}

int vm_registry_acquire(struct vm_registry *r, const char *id, int64_t deadline,
                        struct vm_record **out, struct berth_err *err)
{
    struct vm_record *rec;
    size_t at;
    int found, gone, free_it = 0;

    lock_take(&r->lock);
    at = find_slot(r, id, &found);
    if (!found || !r->recs[at]->visible) {
        lock_give(&r->lock);
        return not_found(id, err);
    }
    rec = r->recs[at];
    rec->refs++;
    lock_give(&r->lock);

    if (lock_take_until(&rec->op_lock, deadline) < 0) {
        lock_take(&r->lock);
        record_unref_locked(r, rec, &free_it);
        lock_give(&r->lock);
        if (free_it)
            record_free(rec);
        char q[ID_QUOTE_MAX + 8];

        berth_err_quote(q, sizeof(q), id, ID_QUOTE_MAX);
        return berth_err_set(
            err, BERTH_DEADLINE_EXCEEDED,
            "vm '%s' is busy with another call; the deadline passed waiting for it", q);
    }
    lock_take(&r->lock);
    gone = rec->removed;
    lock_give(&r->lock);
    if (gone) {
        /* Unlock before dropping our reference: once it is dropped, the
         * last holder may free the record (and its op lock) at any time. */
        lock_give(&rec->op_lock);
        lock_take(&r->lock);
        record_unref_locked(r, rec, &free_it);
        lock_give(&r->lock);
        if (free_it)
            record_free(rec);
        return not_found(id, err);
    }
    *out = rec;
    return 0;
}

/* Caller holds r->lock. A removed record is freed by whoever drops the
 * last reference, after unlocking. */
static void record_unref_locked(struct vm_registry *r, struct vm_record *rec, int *free_it)
{
    (void)r;
    rec->refs--;
    *free_it = rec->refs == 0 && rec->removed;
}

void vm_registry_release(struct vm_registry *r, struct vm_record *rec)
{
    int free_it;

    lock_give(&rec->op_lock);
    lock_take(&r->lock);
    record_unref_locked(r, rec, &free_it);
    lock_give(&r->lock);
    if (free_it)
        record_free(rec);
}

int vm_registry_read(struct vm_registry *r, struct vm_record *rec, struct vm_snapshot *out,
                     struct berth_err *err)
{
    int rc;

    lock_take(&r->lock);
    rc = vm_snapshot_copy(out, &rec->data);
    lock_give(&r->lock);
    if (rc < 0)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    return 0;
}

uint64_t vm_registry_stamp(struct vm_registry *r, struct vm_record *rec)
{
    uint64_t stamp;

    lock_take(&r->lock);
    stamp = rec->observed;
    lock_give(&r->lock);
    return stamp;
}

int vm_registry_write(struct vm_registry *r, struct vm_record *rec, const struct vm_snapshot *data,
                      struct berth_err *err)
{
    return vm_registry_commit(r, rec, data, UINT64_MAX, err);
}

int vm_registry_commit(struct vm_registry *r, struct vm_record *rec, const struct vm_snapshot *data,
                       uint64_t stamp, struct berth_err *err)
{
    struct vm_snapshot copy, old;
    char *id;

    if (vm_snapshot_copy(&copy, data) < 0)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    lock_take(&r->lock);
    old = rec->data;
    if (stamp != UINT64_MAX && rec->observed != stamp) {
        /* The Engine told of a change while the caller worked: what it said
         * is newer than the caller's idea of the state, and any news still
         * on its way will be applied after this write. */
        copy.state = old.state;
        copy.started_unix_ms = old.started_unix_ms;
        copy.oom_killed = old.oom_killed;
        copy.exit_code = old.exit_code;
        copy.health = old.health;
        copy.restart_count = old.restart_count;
        copy.modified_unix = old.modified_unix;
    }
    /* The id orders the array: it never changes. */
    id = copy.id;
    copy.id = old.id;
    old.id = id;
    if (data->metrics.sampled_at_unix_ms == 0)
        copy.metrics = old.metrics;
    rec->data = copy;
    r->gen++;
    if (rec->visible && old.state != copy.state)
        tell(r, VM_CHANGE_CHANGED, &rec->data, "");
    lock_give(&r->lock);
    vm_snapshot_release(&old);
    return 0;
}

void vm_registry_remove(struct vm_registry *r, struct vm_record *rec)
{
    size_t at;
    int found;

    lock_take(&r->lock);
    at = find_slot(r, rec->data.id, &found);
    if (found && r->recs[at] == rec) {
        memmove(&r->recs[at], &r->recs[at + 1], (r->n - at - 1) * sizeof(*r->recs));
        r->n--;
    }
    if (rec->visible)
        tell(r, VM_CHANGE_DELETED, &rec->data, "");
    r->gen++;
    rec->removed = 1;
    rec->visible = 0;
    lock_give(&r->lock);
}

int vm_registry_get(struct vm_registry *r, const char *id, struct vm_snapshot *out,
                    struct berth_err *err)
{
    size_t at;
    int found, rc;

    lock_take(&r->lock);
    at = find_slot(r, id, &found);
    if (!found || !r->recs[at]->visible) {
        lock_give(&r->lock);
        return not_found(id, err);
    }
    rc = vm_snapshot_copy(out, &r->recs[at]->data);
    lock_give(&r->lock);
    if (rc < 0)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    return 0;
}

int vm_registry_list(struct vm_registry *r, struct vm_snapshot **out, size_t *n,
                     struct berth_err *err)
{
    struct vm_snapshot *list;
    size_t k = 0;

    lock_take(&r->lock);
    list = calloc(r->n ? r->n : 1, sizeof(*list));
    if (list == NULL) {
        lock_give(&r->lock);
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    }
    for (size_t i = 0; i < r->n; i++) {
        if (!r->recs[i]->visible)
            continue;
        if (vm_snapshot_copy(&list[k], &r->recs[i]->data) < 0) {
            lock_give(&r->lock);
            vm_snapshot_list_free(list, k);
            return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        }
        k++;
    }
    lock_give(&r->lock);
    *out = list;
    *n = k;
    return 0;
}

void vm_snapshot_list_free(struct vm_snapshot *list, size_t n)
{
    if (list == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        vm_snapshot_release(&list[i]);
    free(list);
}

int vm_registry_set_metrics(struct vm_registry *r, const char *id, const struct vm_metrics *m)
{
    size_t at;
    int found;

    lock_take(&r->lock);
    at = find_slot(r, id, &found);
    if (found)
        r->recs[at]->data.metrics = *m;
    lock_give(&r->lock);
    return found ? 0 : -1;
}

int vm_registry_set_state(struct vm_registry *r, const char *id, enum vm_state state,
                          int oom_killed, int exit_code)
{
    size_t at;
    int found;

    lock_take(&r->lock);
    at = find_slot(r, id, &found);
    if (found) {
        struct vm_snapshot *d = &r->recs[at]->data;
        int changed = d->state != state;
        char why[32];

        r->gen++;
        d->state = state;
        d->oom_killed = oom_killed;
        d->exit_code = exit_code;
        if (state != VM_STATE_RUNNING && state != VM_STATE_PAUSED)
            d->started_unix_ms = 0;
        if (changed && r->recs[at]->visible)
            tell(r, VM_CHANGE_CHANGED, d, observed_reason(d, why, sizeof(why)));
    }
    lock_give(&r->lock);
    return found ? 0 : -1;
}

void vm_registry_count_states(struct vm_registry *r, size_t counts[5])
{
    memset(counts, 0, 5 * sizeof(counts[0]));
    lock_take(&r->lock);
    for (size_t i = 0; i < r->n; i++)
        if (r->recs[i]->visible && (int)r->recs[i]->data.state >= 0 &&
            r->recs[i]->data.state <= VM_STATE_SHUTDOWN)
            counts[r->recs[i]->data.state]++;
    lock_give(&r->lock);
}

void vm_registry_count_health(struct vm_registry *r, size_t counts[BACKEND_HEALTH_COUNT])
{
    memset(counts, 0, BACKEND_HEALTH_COUNT * sizeof(counts[0]));
    lock_take(&r->lock);
    for (size_t i = 0; i < r->n; i++) {
        const struct vm_snapshot *d = &r->recs[i]->data;

        if (r->recs[i]->visible && d->state == VM_STATE_RUNNING &&
            (unsigned)d->health < BACKEND_HEALTH_COUNT)
            counts[d->health]++;
    }
    lock_give(&r->lock);
}

int vm_registry_alive(struct vm_registry *r, int64_t deadline)
{
    if (lock_take_until(&r->lock, deadline) < 0)
        return -1;
    lock_give(&r->lock);
    return 0;
}

static int replace_str(char **field, const char *value);

/* Replace a string field with a copy; on allocation failure keep the old. */
static int replace_str(char **field, const char *value)
{
    char *copy = strdup(value ? value : "");

    if (copy == NULL)
        return -1;
    free(*field);
    *field = copy;
    return 0;
}

int vm_registry_observe(struct vm_registry *r, const char *id, const struct vm_observed *o)
{
    const struct backend_container *c = o->details;
    struct backend_port *ports = NULL;
    struct vm_snapshot *d;
    size_t at;
    int found, rc = -1, state_changed, health_changed, restarted;
    char why[32];

    /* Allocate outside the lock. */
    if (c && c->n_ports > 0) {
        ports = malloc(c->n_ports * sizeof(*ports));
        if (ports != NULL)
            memcpy(ports, c->ports, c->n_ports * sizeof(*ports));
    }
    lock_take(&r->lock);
    at = find_slot(r, id, &found);
    if (!found || !r->recs[at]->visible ||
        strcmp(r->recs[at]->data.container_id, o->container_id) != 0)
        goto out;
    d = &r->recs[at]->data;
    r->gen++;
    state_changed = o->state != VM_STATE_UNSPECIFIED && o->state != d->state;
    /* A first word that no check applies is not news: the record simply
     * did not know yet (watchers would hear "health none" after every
     * create). */
    health_changed = o->health != BACKEND_HEALTH_UNKNOWN && o->health != d->health &&
                     !(d->health == BACKEND_HEALTH_UNKNOWN && o->health == BACKEND_HEALTH_NONE);
    restarted = c != NULL && c->restart_count > d->restart_count;
    /* Only news that changes something counts against a call under way:
     * a periodic re-list that confirms the state must not void its write. */
    if ((o->state != VM_STATE_UNSPECIFIED && o->state != d->state) ||
        (o->oom_killed >= 0 && o->oom_killed != d->oom_killed) ||
        (o->exit_code >= 0 && o->exit_code != d->exit_code) ||
        (o->health != BACKEND_HEALTH_UNKNOWN && o->health != d->health) ||
        (c && c->restart_count >= 0 && c->restart_count != d->restart_count))
        r->recs[at]->observed++;
    if (o->state != VM_STATE_UNSPECIFIED && o->state != d->state) {
        if ((o->state == VM_STATE_RUNNING || o->state == VM_STATE_PAUSED) &&
            d->started_unix_ms == 0)
            d->started_unix_ms = berth_unix_ms();
        if (o->state != VM_STATE_RUNNING && o->state != VM_STATE_PAUSED)
            d->started_unix_ms = 0;
        d->state = o->state;
        d->modified_unix = berth_unix_ms() / 1000;
    }
    if (o->oom_killed >= 0)
        d->oom_killed = o->oom_killed;
    if (o->exit_code >= 0)
        d->exit_code = o->exit_code;
    if (o->health != BACKEND_HEALTH_UNKNOWN)
        d->health = o->health;
    if (c) {
        if (c->ip_address && c->ip_address[0])
            replace_str(&d->ip_address, c->ip_address);
        if (c->mac_address && c->mac_address[0])
            replace_str(&d->mac_address, c->mac_address);
        if (c->gateway && c->gateway[0])
            replace_str(&d->gateway, c->gateway);
        if (ports != NULL) {
            free(d->ports);
            d->ports = ports;
            d->n_ports = c->n_ports;
            ports = NULL;
        }
        if (c->started_unix_ms > 0 && d->state == VM_STATE_RUNNING)
            d->started_unix_ms = c->started_unix_ms;
        if (c->restart_count >= 0)
            d->restart_count = c->restart_count;
    }
    /* Watchers hear of a new state, a new health verdict and a restart
     * the Engine made by itself, each with what happened. */
    if (state_changed)
        tell(r, VM_CHANGE_CHANGED, d, observed_reason(d, why, sizeof(why)));
    else if (restarted) {
        snprintf(why, sizeof(why), "restarted (%d)", d->restart_count);
        tell(r, VM_CHANGE_CHANGED, d, why);
    } else if (health_changed) {
        snprintf(why, sizeof(why), "health %s", backend_health_name(d->health));
        tell(r, VM_CHANGE_CHANGED, d, why);
    }
    rc = 0;
out:
    lock_give(&r->lock);
    free(ports);
    return rc;
}

void vm_registry_set_deleting(struct vm_registry *r, struct vm_record *rec, int on)
{
    lock_take(&r->lock);
    rec->deleting = on;
    lock_give(&r->lock);
}

int vm_registry_forget(struct vm_registry *r, const char *id, const char *container_id)
{
    struct vm_record *rec;
    size_t at;
    int found, free_it;

    lock_take(&r->lock);
    at = find_slot(r, id, &found);
    if (!found || !r->recs[at]->visible || r->recs[at]->deleting ||
        strcmp(r->recs[at]->data.container_id, container_id) != 0) {
        lock_give(&r->lock);
        return -1;
    }
    rec = r->recs[at];
    tell(r, VM_CHANGE_DELETED, &rec->data, "removed behind berthd's back");
    r->gen++;
    memmove(&r->recs[at], &r->recs[at + 1], (r->n - at - 1) * sizeof(*r->recs));
    r->n--;
    rec->removed = 1;
    rec->visible = 0;
    free_it = rec->refs == 0;
    lock_give(&r->lock);
    if (free_it)
        record_free(rec);
    return 0;
}

uint64_t vm_registry_generation(struct vm_registry *r)
{
    uint64_t g;

    lock_take(&r->lock);
    g = r->gen;
    lock_give(&r->lock);
    return g;
}
