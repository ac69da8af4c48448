/* Following the swarm (backend_ops.watch, see swarm_internal.h). The
 * Engine's event stream tells what happens to containers on this node,
 * VMs and the tasks that run here; what happens to tasks on other nodes
 * (and to a service itself) no event of the Engine tells. So, while the
 * stream is followed, a second thread reads the tasks of every berthd set
 * in the swarm each SF_POLL_MS and, for each set whose tasks changed (a
 * task came, went, changed state, node or published port, or its node's
 * address changed), hands the caller an event of action "changed" for it.
 * Each instance's change is logged with its node. The caller's function is
 * never called by both threads at once. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "../docker/docker_internal.h"
#include "berth/clock.h"
#include "berth/labels.h"
#include "berth/log.h"
#include "swarm_internal.h"

#define SF_POLL_MS 1000    /* how often the swarm's tasks are read */
#define SF_REQUEST_MS 5000 /* one reading of them gets this long */

/* A task of a berthd set as one reading saw it. Strings are heap-owned. */
struct sf_task {
    char *task;   /* the task id: the sort key */
    char *object; /* the set's id */
    enum object_kind kind;
    unsigned slot;
    char *state;
    char *node;  /* node id */
    char *where; /* the node's address and host name, for the log */
    int port;    /* the first published port, 0: none yet */
};

struct sf_follow {
    struct docker_ctx *c;
    backend_event_fn fn;
    void *arg;
    const atomic_int *stop;
    pthread_mutex_t fn_lock; /* one call of fn at a time */
    pthread_mutex_t lock;    /* done, and the poller's sleep */
    pthread_cond_t wake;
    int done;
    struct sf_task *seen; /* poller only: the last reading, sorted by task id */
    size_t n_seen;
    int primed; /* poller only: a reading was made (the first tells nothing) */
};

static void sf_tasks_free(struct sf_task *t, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(t[i].task);
        free(t[i].object);
        free(t[i].state);
        free(t[i].node);
        free(t[i].where);
    }
    free(t);
}

static int sf_task_cmp(const void *a, const void *b)
{
    return strcmp(((const struct sf_task *)a)->task, ((const struct sf_task *)b)->task);
}

/* The caller's function, never from both threads at once. */
static void sf_emit(void *arg, const struct backend_event *ev)
{
    struct sf_follow *f = arg;

    pthread_mutex_lock(&f->fn_lock);
    f->fn(f->arg, ev);
    pthread_mutex_unlock(&f->fn_lock);
}

/* One reading of the swarm's berthd tasks, sorted by task id. */
static int sf_read(struct sf_follow *f, struct sf_task **out, size_t *n_out, struct berth_err *err)
{
    cJSON *tasks = NULL, *nodes = NULL;
    const cJSON *t;
    struct sf_task *list = NULL;
    size_t n = 0;
    int rc = -1;

    if (sw_fetch_tasks(f->c, NULL, 1, berth_now_ms() + SF_REQUEST_MS, &tasks, &nodes, err) < 0)
        goto out;
    list = calloc((size_t)cJSON_GetArraySize(tasks) + 1, sizeof(*list));
    if (list == NULL) {
        berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    cJSON_ArrayForEach(t, tasks)
    {
        const cJSON *status = cJSON_GetObjectItemCaseSensitive(t, "Status");
        const cJSON *slot = cJSON_GetObjectItemCaseSensitive(t, "Slot");
        const cJSON *ports = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(status, "PortStatus"), "Ports");
        const cJSON *pub =
            cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(ports, 0), "PublishedPort");
        const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(t, "ID"));
        const char *state = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(status, "State"));
        const char *node = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(t, "NodeID"));
        struct sf_task *e = &list[n];
        enum object_kind kind;
        const char *object;
        char where[320];

        if (id == NULL || swarm_json_task_object(t, &kind, &object) < 0)
            continue;
        node = node != NULL ? node : "";
        snprintf(where, sizeof(where), "%s %s", swarm_node_addr(nodes, node),
                 swarm_node_name(nodes, node));
        e->task = strdup(id);
        e->object = strdup(object);
        e->kind = kind;
        e->slot = cJSON_IsNumber(slot) && slot->valuedouble >= 1 ? (unsigned)slot->valuedouble : 0;
        e->state = strdup(state != NULL ? state : "");
        e->node = strdup(node);
        e->where = strdup(where);
        e->port = cJSON_IsNumber(pub) ? (int)pub->valuedouble : 0;
        n++;
        if (e->task == NULL || e->object == NULL || e->state == NULL || e->node == NULL ||
            e->where == NULL) {
            berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
            goto out;
        }
    }
    if (n > 1)
        qsort(list, n, sizeof(*list), sf_task_cmp);
    *out = list;
    *n_out = n;
    list = NULL;
    n = 0;
    rc = 0;
out:
    sf_tasks_free(list, n);
    cJSON_Delete(nodes);
    cJSON_Delete(tasks);
    return rc;
}

/* Did task a (seen before) change into b? */
static int sf_changed(const struct sf_task *a, const struct sf_task *b)
{
    return strcmp(a->state, b->state) != 0 || strcmp(a->node, b->node) != 0 ||
           strcmp(a->where, b->where) != 0 || a->port != b->port;
}

static void sf_log(const struct sf_task *t, const char *what)
{
    struct log_quoted lq;

    log_info("swarm.instance",
             "kind=%s id=%s instance=%s-%u task=%.12s change=%s state=%s "
             "node_id=%.12s node=%s port=%d",
             object_kind_info(t->kind)->name, t->object, t->object, t->slot > 0 ? t->slot - 1 : 0,
             t->task, what, t->state, t->node, log_quote(&lq, t->where), t->port);
}

/* Add (kind, object) to the changed sets, once. */
static int sf_note(const struct sf_task ***changed, size_t *n, const struct sf_task *t)
{
    const struct sf_task **grown;

    for (size_t i = 0; i < *n; i++)
        if ((*changed)[i]->kind == t->kind && strcmp((*changed)[i]->object, t->object) == 0)
            return 0;
    grown = realloc(*changed, (*n + 1) * sizeof(**changed));
    if (grown == NULL)
        return -1;
    grown[(*n)++] = t;
    *changed = grown;
    return 0;
}

/* One reading compared with the last: each set with a change gets an
 * event. The first reading only primes (the caller has just listed). */
static void sf_poll(struct sf_follow *f)
{
    struct sf_task *now = NULL;
    const struct sf_task **changed = NULL;
    size_t n_now = 0, n_changed = 0, i = 0, j = 0;
    struct berth_err err;
    int oom = 0;

    berth_err_clear(&err);
    if (sf_read(f, &now, &n_now, &err) < 0) {
        struct log_quoted lq;
        log_debug("swarm.follow", "code=%s error=%s", berth_code_name(err.code),
                  log_quote(&lq, err.msg));
        return;
    }
    while (f->primed && (i < f->n_seen || j < n_now)) {
        int c = i == f->n_seen ? 1 : j == n_now ? -1 : strcmp(f->seen[i].task, now[j].task);

        if (c < 0) {
            sf_log(&f->seen[i], "gone");
            oom |= sf_note(&changed, &n_changed, &f->seen[i]);
            i++;
        } else if (c > 0) {
            sf_log(&now[j], "new");
            oom |= sf_note(&changed, &n_changed, &now[j]);
            j++;
        } else {
            if (sf_changed(&f->seen[i], &now[j])) {
                sf_log(&now[j], "changed");
                oom |= sf_note(&changed, &n_changed, &now[j]);
            }
            i++;
            j++;
        }
    }
    for (size_t k = 0; k < n_changed && !oom; k++) {
        struct backend_event ev = {
            .action = "changed",
            .container_id = "",
            .kind = object_kind_info(changed[k]->kind)->name,
            .object_id = changed[k]->object,
            .exit_code = -1,
            /* No Engine time: the caller's resume point stays the Engine's. */
            .time_unix_ns = 0,
        };
        sf_emit(f, &ev);
    }
    free(changed);
    /* Out of memory, the old reading stays, so the next one tells again. */
    if (oom) {
        sf_tasks_free(now, n_now);
        return;
    }
    sf_tasks_free(f->seen, f->n_seen);
    f->seen = now;
    f->n_seen = n_now;
    f->primed = 1;
}

static void *sf_main(void *arg)
{
    struct sf_follow *f = arg;

    for (;;) {
        struct timespec ts;
        int done;

        sf_poll(f);
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += SF_POLL_MS / 1000;
        ts.tv_nsec += (long)(SF_POLL_MS % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_mutex_lock(&f->lock);
        while (!f->done && !atomic_load(f->stop) &&
               pthread_cond_timedwait(&f->wake, &f->lock, &ts) == 0)
            ;
        done = f->done || atomic_load(f->stop);
        pthread_mutex_unlock(&f->lock);
        if (done)
            return NULL;
    }
}

int sw_watch(void *ctx, int64_t since_unix_ns, const atomic_int *stop, backend_event_fn fn,
             void *arg, struct berth_err *err)
{
    static const atomic_int never = 0;
    struct sf_follow f;
    pthread_condattr_t ca;
    pthread_t poller;
    int started, rc;

    memset(&f, 0, sizeof(f));
    f.c = ctx;
    f.fn = fn;
    f.arg = arg;
    f.stop = stop != NULL ? stop : &never;
    pthread_mutex_init(&f.fn_lock, NULL);
    pthread_mutex_init(&f.lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&f.wake, &ca);
    pthread_condattr_destroy(&ca);
    started = pthread_create(&poller, NULL, sf_main, &f) == 0;
    if (!started)
        log_warn("swarm.follow", "reason=\"no thread to read the swarm's tasks: only this node's "
                                 "events are followed\"");
    rc = docker_events_watch(ctx, since_unix_ns, stop, sf_emit, &f, err);
    if (started) {
        pthread_mutex_lock(&f.lock);
        f.done = 1;
        pthread_cond_broadcast(&f.wake);
        pthread_mutex_unlock(&f.lock);
        pthread_join(poller, NULL);
    }
    sf_tasks_free(f.seen, f.n_seen);
    pthread_cond_destroy(&f.wake);
    pthread_mutex_destroy(&f.lock);
    pthread_mutex_destroy(&f.fn_lock);
    return rc;
}
