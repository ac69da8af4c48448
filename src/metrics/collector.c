/* The metrics collector (see berth/collector.h): one thread that runs
 * rounds of copy (under the registry lock), sweep (the backend, without
 * it) and write back (under it), keeping per VM only what the CPU
 * arithmetic needs between samples. */
#include "berth/collector.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "berth/clock.h"
#include "berth/lock.h"
#include "berth/log.h"
#include "berth/sorted.h"

/* A round never starts sooner after the one before: a backend whose sweep
 * has nothing to wait for (no running VM, a failing engine) is not asked in
 * a busy loop, and a VM that starts is swept within about this long. */
#define COLLECTOR_ROUND_MIN_MS 250
/* The shortest pause between two rounds, whatever the backend asks. */
#define COLLECTOR_ROUND_MIN_GAP_MS 10
/* One sweep call waits at most this long (about one Engine period), so a
 * slow container never holds back the samples the others delivered. */
#define COLLECTOR_ROUND_MAX_MS 1000

/* What the collector keeps of one VM: the base of the next CPU figure.
 * Collector thread only. */
struct collector_vm {
    char *vm_id;             /* owned */
    char *container_id;      /* owned */
    int64_t started_ms;      /* the VM's start time (unix ms) `prev` belongs to; 0 unknown */
    struct backend_cpu prev; /* the last reading; zero when none */
    int64_t last_sampled_ms; /* sampled_at of the last sample written */
    int seen;                /* in the last registry read (any state) */
    int running;             /* RUNNING in the last registry read: swept */
    int pending;             /* owes the current counted sweep an answer */
};

struct collector {
    /* Immutable after collector_start. */
    const struct backend *backend; /* borrowed */
    struct vm_registry *vms;       /* borrowed */
    int64_t interval_ms;
    pthread_t thread;

    /* Collector thread only. */
    struct collector_vm **vm; /* owned, each owned */
    size_t n_vm, cap_vm;
    int sweep_active;
    int64_t sweep_start_us; /* monotonic */
    size_t sweep_pending;
    uint64_t registry_gen; /* vm_registry_generation() at the last full reconcile */
    int reconciled;        /* the kept VMs matched the registry at registry_gen */

    pthread_mutex_t lock;
    pthread_cond_t wake;
    int stopping;    /* lock */
    atomic_int stop; /* set with stopping: ends a sweep under way */

    /* Shared: atomics, read by /metrics from any thread. */
    _Atomic uint64_t sweeps;
    _Atomic uint64_t errors;
    _Atomic uint64_t streams_open;
    _Atomic int64_t last_sweep_us;
};

static void *collector_main(void *arg);
static int64_t collector_round(struct collector *c);
static int collector_reconcile(struct collector *c);
static int collector_cmp(const void *a, const void *b);
static struct collector_vm *collector_find(struct collector *c, size_t n_sorted, const char *vm_id);
static struct collector_vm *collector_add(struct collector *c, const char *vm_id,
                                          const char *container_id);
static void collector_drop(struct collector *c, size_t i);
static void collector_publish(struct collector *c, struct collector_vm *v,
                              const struct backend_stats *st);
static void collector_sweep_tick(struct collector *c, int64_t now_us);
static void collector_answered(struct collector *c, struct collector_vm *v);
static int collector_pause(struct collector *c, int64_t until);

/* --- start and stop --------------------------------------------------------- */

int collector_start(const struct collector_config *cfg, const struct backend *backend,
                    struct vm_registry *vms, struct collector **out, struct berth_err *err)
{
    struct collector *c;

    if (!backend_has_stats(backend))
        return berth_err_set(err, BERTH_INTERNAL, "the backend offers no stats");
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    c->backend = backend;
    c->vms = vms;
    c->interval_ms = cfg->interval_ms > 0 ? cfg->interval_ms : 1000;
    atomic_init(&c->stop, 0);
    lock_init(&c->lock);
    pthread_cond_init(&c->wake, NULL);
    if (pthread_create(&c->thread, NULL, collector_main, c) != 0) {
        pthread_cond_destroy(&c->wake);
        lock_destroy(&c->lock);
        free(c);
        return berth_err_set(err, BERTH_INTERNAL, "cannot start the metrics collector thread");
    }
    log_info("collector.started", "interval_ms=%lld backend=%s", (long long)c->interval_ms,
             backend->ops->name);
    *out = c;
    return 0;
}

void collector_stop(struct collector *c)
{
    if (c == NULL)
        return;
    lock_take(&c->lock);
    c->stopping = 1;
    atomic_store(&c->stop, 1);
    pthread_cond_broadcast(&c->wake);
    lock_give(&c->lock);
    pthread_join(c->thread, NULL);
    while (c->n_vm > 0)
        collector_drop(c, c->n_vm - 1);
    free(c->vm);
    pthread_cond_destroy(&c->wake);
    lock_destroy(&c->lock);
    free(c);
}

void collector_read_stats(struct collector *c, struct collector_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (c == NULL)
        return;
    out->sweeps = atomic_load(&c->sweeps);
    out->errors = atomic_load(&c->errors);
    out->streams = atomic_load(&c->streams_open);
    out->last_sweep_s = (double)atomic_load(&c->last_sweep_us) / 1e6;
}

/* --- the loop ------------------------------------------------------------------ */

static void *collector_main(void *arg)
{
    struct collector *c = arg;

    for (;;) {
        int64_t start = berth_now_ms();
        int64_t until = start + COLLECTOR_ROUND_MIN_MS;
        int64_t due = collector_round(c);

        /* A backend pass that falls due sooner is met on time: a sample
         * must be renewed before it is an interval old, and waiting out
         * the round would add up to a round to its age. */
        if (due > 0 && due < until)
            until =
                due > start + COLLECTOR_ROUND_MIN_GAP_MS ? due : start + COLLECTOR_ROUND_MIN_GAP_MS;
        if (collector_pause(c, until) < 0)
            break;
    }
    return NULL;
}

/* Wait until `until` (monotonic ms) or stop: 0, or -1 when stopping. */
static int collector_pause(struct collector *c, int64_t until)
{
    int rc = 0;

    lock_take(&c->lock);
    while (!c->stopping && lock_wait_until(&c->wake, &c->lock, until) == 0)
        ;
    if (c->stopping)
        rc = -1;
    lock_give(&c->lock);
    return rc;
}

/* One round: the running VMs' containers (copied from the registry), one
 * sweep over them, each new sample written back. Returns when the
 * backend's next pass is due (0: when the collector likes). */
static int64_t collector_round(struct collector *c)
{
    const char **ids = NULL;
    struct collector_vm **swept = NULL;
    struct backend_stats_result *res = NULL;
    struct backend_sweep_info info = {0};
    struct berth_err err;
    size_t n = 0;

    if (collector_reconcile(c) < 0)
        return 0;
    ids = calloc(c->n_vm > 0 ? c->n_vm : 1, sizeof(*ids));
    swept = calloc(c->n_vm > 0 ? c->n_vm : 1, sizeof(*swept));
    res = calloc(c->n_vm > 0 ? c->n_vm : 1, sizeof(*res));
    if (ids == NULL || swept == NULL || res == NULL) {
        atomic_fetch_add(&c->errors, 1);
        log_debug("collector.error", "error=\"out of memory\"");
        goto out;
    }
    for (size_t i = 0; i < c->n_vm; i++) {
        if (!c->vm[i]->running)
            continue;
        swept[n] = c->vm[i];
        ids[n++] = c->vm[i]->container_id;
    }
    collector_sweep_tick(c, berth_now_us());
    memset(&info, 0, sizeof(info));
    berth_err_clear(&err);
    if (c->backend->ops->stats_sweep(c->backend->ctx, ids, n,
                                     berth_now_ms() + COLLECTOR_ROUND_MAX_MS, &c->stop, res, &info,
                                     &err) < 0) {
        atomic_fetch_add(&c->errors, 1);
        log_debug("collector.error", "code=%s error=\"%s\"", berth_code_name(err.code), err.msg);
        goto out;
    }
    atomic_fetch_add(&c->errors, info.errors);
    atomic_store(&c->streams_open, info.open);
    for (size_t i = 0; i < n; i++) {
        if (res[i].status == BACKEND_SAMPLE_NEW)
            collector_publish(c, swept[i], &res[i].stats);
        if (res[i].status != BACKEND_SAMPLE_NONE)
            collector_answered(c, swept[i]);
    }
out:
    free(res);
    free(swept);
    free(ids);
    return info.next_due_ms;
}

/* Make the kept VMs match the registry: the registry is copied under its
 * lock (vm_registry_list), compared here without it. RUNNING VMs are swept;
 * paused and stopped ones keep their entry, and with it the last CPU
 * reading; deleted or recreated ones are forgotten. -1 when the registry
 * could not be read. */
static int collector_reconcile(struct collector *c)
{
    struct vm_snapshot *list = NULL;
    struct berth_err err;
    size_t n = 0, n_sorted;
    /* Taken before the copy: a change made while it is made is seen by the
     * next round. */
    uint64_t gen = vm_registry_generation(c->vms);
    int complete = 1;

    if (c->reconciled && gen == c->registry_gen)
        return 0; /* nothing but samples changed: the kept VMs still match */
    berth_err_clear(&err);
    if (vm_registry_list(c->vms, &list, &n, &err) < 0) {
        atomic_fetch_add(&c->errors, 1);
        log_debug("collector.error", "error=\"registry list failed\"");
        return -1;
    }
    /* Sorted by VM id for the lookups (linear ones cost more than the
     * sweep with a thousand VMs); entries added below go after. */
    if (c->n_vm > 1)
        qsort(c->vm, c->n_vm, sizeof(*c->vm), collector_cmp);
    n_sorted = c->n_vm;
    for (size_t i = 0; i < c->n_vm; i++)
        c->vm[i]->seen = 0;
    for (size_t i = 0; i < n; i++) {
        const struct vm_snapshot *vm = &list[i];
        struct collector_vm *v;

        if (vm->container_id == NULL || vm->container_id[0] == '\0')
            continue;
        v = collector_find(c, n_sorted, vm->id);
        if (v != NULL && strcmp(v->container_id, vm->container_id) != 0)
            v = NULL; /* recreated under the same id: the old entry goes below */
        if (v == NULL && vm->state != VM_STATE_RUNNING)
            continue;
        if (v == NULL) {
            v = collector_add(c, vm->id, vm->container_id);
            if (v == NULL) {
                complete = 0;
                atomic_fetch_add(&c->errors, 1);
                log_debug("collector.error", "error=\"out of memory\"");
                continue;
            }
        }
        v->seen = 1;
        v->running = vm->state == VM_STATE_RUNNING;
        if (!v->running && v->pending)
            collector_answered(c, v); /* nothing more is coming this sweep */
        /* Started again: its CPU counters began anew. 0 is "not known". */
        if (vm->started_unix_ms != 0 && v->started_ms != 0 && vm->started_unix_ms != v->started_ms)
            memset(&v->prev, 0, sizeof(v->prev));
        if (vm->started_unix_ms != 0)
            v->started_ms = vm->started_unix_ms;
    }
    for (size_t i = c->n_vm; i-- > 0;)
        if (!c->vm[i]->seen)
            collector_drop(c, i);
    vm_snapshot_list_free(list, n);
    c->registry_gen = gen;
    c->reconciled = complete; /* a VM left out for want of memory is tried again */
    return 0;
}

/* --- the VM table -------------------------------------------------------------- */

static int collector_cmp(const void *a, const void *b)
{
    const struct collector_vm *const *x = a, *const *y = b;

    return strcmp((*x)->vm_id, (*y)->vm_id);
}

/* The entry of `vm_id` not yet seen in this reconcile among the first
 * n_sorted (sorted by VM id, one entry per id), or NULL. */
static const char *collector_vm_id(const void *elem)
{
    return (*(struct collector_vm *const *)elem)->vm_id;
}

static struct collector_vm *collector_find(struct collector *c, size_t n_sorted, const char *vm_id)
{
    int found;
    size_t at = sorted_slot(c->vm, n_sorted, sizeof(*c->vm), vm_id, collector_vm_id, &found);

    return found && c->vm[at]->seen == 0 ? c->vm[at] : NULL;
}

/* A new entry without a CPU reading; NULL when out of memory. */
static struct collector_vm *collector_add(struct collector *c, const char *vm_id,
                                          const char *container_id)
{
    struct collector_vm *v;

    if (c->n_vm == c->cap_vm) {
        size_t cap = c->cap_vm ? c->cap_vm * 2 : 16;
        struct collector_vm **grown = realloc(c->vm, cap * sizeof(*grown));

        if (grown == NULL)
            return NULL;
        c->vm = grown;
        c->cap_vm = cap;
    }
    v = calloc(1, sizeof(*v));
    if (v == NULL)
        return NULL;
    v->vm_id = strdup(vm_id);
    v->container_id = strdup(container_id);
    if (v->vm_id == NULL || v->container_id == NULL) {
        free(v->vm_id);
        free(v->container_id);
        free(v);
        return NULL;
    }
    c->vm[c->n_vm++] = v;
    return v;
}

/* Forget entry i (order is not kept). */
static void collector_drop(struct collector *c, size_t i)
{
    struct collector_vm *v = c->vm[i];

    if (v->pending)
        collector_answered(c, v);
    free(v->vm_id);
    free(v->container_id);
    free(v);
    c->vm[i] = c->vm[--c->n_vm];
}

/* --- samples ------------------------------------------------------------------- */

/* A new sample into the registry (which takes its lock for the copy only).
 * The base of its CPU figure: the source's own earlier reading, else the
 * VM's last one, else none (0). A sample not newer than the last one is
 * not new. */
static void collector_publish(struct collector *c, struct collector_vm *v,
                              const struct backend_stats *st)
{
    const struct backend_cpu *base = NULL;
    struct vm_metrics m;

    if (st->sampled_at_unix_ms <= 0 || st->sampled_at_unix_ms <= v->last_sampled_ms)
        return;
    if (backend_cpu_valid(&st->precpu))
        base = &st->precpu;
    else if (backend_cpu_valid(&v->prev))
        base = &v->prev;
    memset(&m, 0, sizeof(m));
    m.cpu_percent = base != NULL ? backend_cpu_percent(&st->cpu, base) : 0.0;
    m.cpu_total_ns = st->cpu.total_ns;
    m.memory_bytes = st->memory_bytes;
    m.rx_bytes = st->rx_bytes;
    m.tx_bytes = st->tx_bytes;
    m.rx_packets = st->rx_packets;
    m.tx_packets = st->tx_packets;
    m.read_bytes = st->read_bytes;
    m.write_bytes = st->write_bytes;
    m.read_ops = st->read_ops;
    m.write_ops = st->write_ops;
    m.pids = st->pids;
    m.sampled_at_unix_ms = st->sampled_at_unix_ms;
    m.source = st->source;
    (void)vm_registry_set_metrics(c->vms, v->vm_id, &m); /* -1: deleted meanwhile */
    v->prev = st->cpu;
    v->last_sampled_ms = st->sampled_at_unix_ms;
}

/* A counted sweep starts at most once an interval and ends when every VM
 * running at its start had an answer (a sample or a failure) or stopped
 * running: its duration is the age a cached sample can reach beyond the
 * backend's own period. */
static void collector_sweep_tick(struct collector *c, int64_t now_us)
{
    size_t pending = 0;

    if (c->sweep_active || now_us - c->sweep_start_us < c->interval_ms * 1000)
        return;
    for (size_t i = 0; i < c->n_vm; i++) {
        struct collector_vm *v = c->vm[i];

        v->pending = v->running;
        pending += (size_t)v->pending;
    }
    c->sweep_start_us = now_us;
    c->sweep_pending = pending;
    c->sweep_active = pending > 0;
}

static void collector_answered(struct collector *c, struct collector_vm *v)
{
    if (!v->pending)
        return;
    v->pending = 0;
    if (!c->sweep_active || c->sweep_pending == 0)
        return;
    if (--c->sweep_pending == 0) {
        atomic_store(&c->last_sweep_us, berth_now_us() - c->sweep_start_us);
        atomic_fetch_add(&c->sweeps, 1);
        c->sweep_active = 0;
    }
}
