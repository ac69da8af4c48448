/* GetLogs (see berth/log_service.h). One request names exactly one object;
 * a VM is its container (from the registry), a gateway or deployment every
 * replica of its set (or the one instance asked for). Each container's
 * lines come from the backend with the tail, since and stream filters and
 * the byte limit; the lists are merged oldest first, and when together they
 * pass the limit the oldest lines go and the answer says `truncated`. */
#include "berth/log_service.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "berth/arena.h"
#include "berth/clock.h"
#include "berth/lock.h"
#include "berth/log.h"
#include "berth/service_util.h"
#include "berth/v1/observe.pb-c.h"

#define LOG_NS_MAX 256                  /* as the krane services' namespace */
#define LOG_ENTRY_OVERHEAD ((size_t)32) /* what one entry costs besides its line */

struct log_service {
    struct log_service_config cfg;
    struct backend *backend;      /* borrowed */
    struct vm_registry *registry; /* borrowed */
    pthread_mutex_t follow_lock;
    pthread_cond_t follow_done;
    unsigned sessions; /* guarded by follow_lock: StreamLogs with followers left */
};

/* The lines of one container, with the instance they belong to. */
struct log_source {
    const char *instance_id; /* "" for a VM */
    unsigned index;
    struct backend_log_list lines;
    size_t next; /* merge position */
};

static int h_get_logs(void *ctx, struct rpc_call *call, const ProtobufCMessage *in,
                      ProtobufCMessage **out, struct berth_err *err);
static int h_stream_logs(void *ctx, struct rpc_call *call, const ProtobufCMessage *in,
                         struct rpc_stream *out, struct berth_err *err);

struct log_service *log_service_new(const struct log_service_config *cfg, struct backend *backend,
                                    struct vm_registry *registry)
{
    struct log_service *s = calloc(1, sizeof(*s));

    if (s == NULL)
        return NULL;
    s->cfg = *cfg;
    s->backend = backend;
    s->registry = registry;
    lock_init(&s->follow_lock);
    pthread_cond_init(&s->follow_done, NULL);
    return s;
}

void log_service_free(struct log_service *s)
{
    int64_t until = berth_now_ms() + 10000;

    if (s == NULL)
        return;
    /* Followers were told to stop with their streams; their Engine reads
     * end within about a second. */
    lock_take(&s->follow_lock);
    while (s->sessions > 0 && lock_wait_until(&s->follow_done, &s->follow_lock, until) == 0)
        ;
    if (s->sessions > 0) {
        lock_give(&s->follow_lock);
        return; /* a follower still runs: leave it what it uses */
    }
    lock_give(&s->follow_lock);
    pthread_cond_destroy(&s->follow_done);
    lock_destroy(&s->follow_lock);
    free(s);
}

int log_service_register(struct log_service *s, struct router *r)
{
    if (router_set_stream_handler(r, "/berth.v1.LogService/StreamLogs", h_stream_logs, s) < 0)
        return -1;
    return router_set_handler(r, "/berth.v1.LogService/GetLogs", h_get_logs, s);
}

/* ---- the request ------------------------------------------------------- */

static const char *ls_str(const char *s)
{
    return s != NULL ? s : "";
}

/* Exactly one of vmId, gatewayId, deploymentId; the checks of the rest. */
static int ls_check(const Berth__V1__GetLogsRequest *r, enum object_kind *kind, const char **id,
                    struct berth_err *err)
{
    const char *vm = ls_str(r->vm_id), *gw = ls_str(r->gateway_id);
    const char *dep = ls_str(r->deployment_id), *ns = ls_str(r->namespace_);
    int n = (vm[0] != '\0') + (gw[0] != '\0') + (dep[0] != '\0');

    if (n == 0)
        return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                             "field 'vmId' is required (or 'gatewayId' or 'deploymentId')");
    if (n > 1)
        return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                             "field '%s' is set with another object id: name exactly one of "
                             "'vmId', 'gatewayId', 'deploymentId'",
                             vm[0] != '\0' ? (gw[0] != '\0' ? "gatewayId" : "deploymentId")
                                           : "deploymentId");
    if (vm[0] != '\0') {
        *kind = OBJECT_VM;
        *id = vm;
        if (ns[0] != '\0')
            return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                                 "field 'namespace' is for gateways and deployments, not VMs");
        if (ls_str(r->instance_id)[0] != '\0')
            return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                                 "field 'instanceId' is for gateways and deployments, not VMs");
    } else {
        *kind = gw[0] != '\0' ? OBJECT_GATEWAY : OBJECT_DEPLOYMENT;
        *id = gw[0] != '\0' ? gw : dep;
    }
    if (service_check_id(*kind == OBJECT_VM        ? "vmId"
                         : *kind == OBJECT_GATEWAY ? "gatewayId"
                                                   : "deploymentId",
                         *id, err) < 0)
        return -1;
    if (strlen(ns) > LOG_NS_MAX)
        return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                             "field 'namespace' is longer than %d characters", LOG_NS_MAX);
    for (const char *p = ns; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                                 "field 'namespace' holds a control character");
    if (r->tail_lines < 0 || r->tail_lines > LOG_SERVICE_MAX_TAIL)
        return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                             "field 'tailLines' must be 0 (the default, %d) to %d, not %d",
                             LOG_SERVICE_DEFAULT_TAIL, LOG_SERVICE_MAX_TAIL, (int)r->tail_lines);
    if (r->since_unix_ms < 0)
        return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                             "field 'sinceUnixMs' must not be negative");
    if (r->stream != BERTH__V1__LOG_STREAM__LOG_STREAM_UNSPECIFIED &&
        r->stream != BERTH__V1__LOG_STREAM__LOG_STREAM_STDOUT &&
        r->stream != BERTH__V1__LOG_STREAM__LOG_STREAM_STDERR)
        return berth_err_set(err, BERTH_INVALID_ARGUMENT, "field 'stream' has unknown value %d",
                             (int)r->stream);
    return 0;
}

/* ---- the sources -------------------------------------------------------- */

static void ls_sources_release(struct log_source *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        backend_log_list_release(&src[i].lines);
    free(src);
}

/* The containers to read, with their instance ids (in the arena). */
static int ls_targets(struct log_service *s, struct arena *a, enum object_kind kind, const char *ns,
                      const char *id, const char *instance, int64_t deadline, char ***handles,
                      struct log_source **src, size_t *n, struct berth_err *err)
{
    struct backend_replica_set set = {0};
    size_t k = 0;
    int rc = -1;

    *n = 0;
    if (kind == OBJECT_VM) {
        struct vm_snapshot snap = {0};

        if (vm_registry_get(s->registry, id, &snap, err) < 0)
            return -1;
        if (snap.container_id == NULL || snap.container_id[0] == '\0') {
            vm_snapshot_release(&snap);
            return berth_err_set(err, BERTH_NOT_FOUND, "vm '%s' has no container yet", id);
        }
        *handles = arena_alloc(a, sizeof(char *));
        *src = calloc(1, sizeof(**src));
        if (*handles == NULL || *src == NULL ||
            ((*handles)[0] = arena_strdup(a, snap.container_id)) == NULL) {
            vm_snapshot_release(&snap);
            return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        }
        vm_snapshot_release(&snap);
        (*src)[0].instance_id = "";
        *n = 1;
        return 0;
    }
    if (s->backend->ops->replica_get == NULL)
        return berth_err_set(err, BERTH_UNIMPLEMENTED, "this backend has no replica sets");
    if (s->backend->ops->replica_get(s->backend->ctx, kind, ns, id, deadline, &set, err) < 0) {
        if (err->code == BERTH_NOT_FOUND)
            berth_err_set(err, BERTH_NOT_FOUND, "%s '%s' not found",
                          kind == OBJECT_GATEWAY ? "gateway" : "deployment", id);
        return -1;
    }
    *handles = arena_alloc(a, (set.n ? set.n : 1) * sizeof(char *));
    *src = calloc(set.n ? set.n : 1, sizeof(**src));
    if (*handles == NULL || *src == NULL) {
        berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < set.n; i++) {
        char *inst = arena_printf(a, "%s-%u", id, set.items[i].index);

        if (inst == NULL || ((*handles)[k] = arena_strdup(a, set.items[i].handle)) == NULL) {
            berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
            goto out;
        }
        if (instance[0] != '\0' && strcmp(inst, instance) != 0)
            continue;
        (*src)[k].instance_id = inst;
        (*src)[k].index = set.items[i].index;
        k++;
    }
    if (instance[0] != '\0' && k == 0) {
        berth_err_set(err, BERTH_NOT_FOUND, "instance '%s' of %s '%s' not found", instance,
                      kind == OBJECT_GATEWAY ? "gateway" : "deployment", id);
        goto out;
    }
    *n = k;
    rc = 0;
out:
    if (rc < 0) {
        free(*src);
        *src = NULL;
    }
    backend_replica_set_release(&set);
    return rc;
}

/* ---- the answer -------------------------------------------------------- */

/* The source whose next line is the oldest (ties: the lower index). */
static struct log_source *ls_oldest(struct log_source *src, size_t n)
{
    struct log_source *best = NULL;

    for (size_t i = 0; i < n; i++) {
        const struct backend_log_entry *e;

        if (src[i].next >= src[i].lines.n)
            continue;
        e = &src[i].lines.items[src[i].next];
        if (best == NULL || e->time_unix_ns < best->lines.items[best->next].time_unix_ns)
            best = &src[i];
    }
    return best;
}

static size_t ls_entry_cost(const struct log_source *src, const struct backend_log_entry *e)
{
    return e->len + strlen(src->instance_id) + LOG_ENTRY_OVERHEAD;
}

static int h_get_logs(void *ctx, struct rpc_call *call, const ProtobufCMessage *in,
                      ProtobufCMessage **out, struct berth_err *err)
{
    struct log_service *s = ctx;
    const Berth__V1__GetLogsRequest *r = (const Berth__V1__GetLogsRequest *)in;
    Berth__V1__GetLogsResponse *resp;
    struct backend_log_query q = {0};
    struct log_source *src = NULL;
    enum object_kind kind = OBJECT_VM;
    const char *id = "";
    char **handles = NULL;
    size_t n = 0, total = 0, skip = 0, budget = 0;
    int rc = -1;

    if (ls_check(r, &kind, &id, err) < 0)
        return -1;
    if (s->backend->ops->logs == NULL)
        return berth_err_set(err, BERTH_UNIMPLEMENTED, "this backend keeps no logs");
    q.tail_lines = r->tail_lines > 0 ? (unsigned)r->tail_lines : LOG_SERVICE_DEFAULT_TAIL;
    q.since_unix_ms = r->since_unix_ms;
    q.streams = r->stream == BERTH__V1__LOG_STREAM__LOG_STREAM_STDOUT   ? BACKEND_LOG_STDOUT
                : r->stream == BERTH__V1__LOG_STREAM__LOG_STREAM_STDERR ? BACKEND_LOG_STDERR
                                                                        : 0;
    q.max_bytes = s->cfg.max_bytes;
    if (ls_targets(s, call->arena, kind, ls_str(r->namespace_), id, ls_str(r->instance_id),
                   call->deadline, &handles, &src, &n, err) < 0)
        return -1;
    resp = arena_message(call->arena, &berth__v1__get_logs_response__descriptor);
    if (resp == NULL) {
        berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if (s->backend->ops->logs(s->backend->ctx, handles[i], &q, call->deadline, &src[i].lines,
                                  err) < 0) {
            /* A replica removed between the listing and its read printed nothing more. */
            if (kind != OBJECT_VM && err->code == BERTH_NOT_FOUND)
                continue;
            if (kind == OBJECT_VM && err->code == BERTH_NOT_FOUND)
                berth_err_set(err, BERTH_NOT_FOUND, "vm '%s' not found", id);
            goto out;
        }
        if (src[i].lines.truncated)
            resp->truncated = 1;
        total += src[i].lines.n;
    }
    /* Over the limit together: the oldest lines go. Count from the newest. */
    {
        size_t bytes = 0, kept = 0;

        for (size_t i = 0; i < n; i++)
            src[i].next = src[i].lines.n;
        while (kept < total) {
            struct log_source *best = NULL;

            for (size_t i = 0; i < n; i++) {
                const struct backend_log_entry *e;

                if (src[i].next == 0)
                    continue;
                e = &src[i].lines.items[src[i].next - 1];
                if (best == NULL ||
                    e->time_unix_ns >= best->lines.items[best->next - 1].time_unix_ns)
                    best = &src[i];
            }
            if (bytes + ls_entry_cost(best, &best->lines.items[best->next - 1]) > s->cfg.max_bytes)
                break;
            bytes += ls_entry_cost(best, &best->lines.items[best->next - 1]);
            best->next--;
            kept++;
        }
        skip = total - kept;
        budget = kept;
        if (skip > 0)
            resp->truncated = 1;
    }
    resp->entries = arena_alloc(call->arena, (budget ? budget : 1) * sizeof(*resp->entries));
    if (resp->entries == NULL) {
        berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    /* `next` now marks the first kept line of each source. */
    for (struct log_source *best; (best = ls_oldest(src, n)) != NULL;) {
        const struct backend_log_entry *e = &best->lines.items[best->next++];
        Berth__V1__LogEntry *le = arena_message(call->arena, &berth__v1__log_entry__descriptor);

        if (le == NULL || (le->line = arena_strndup(call->arena, e->line, e->len)) == NULL ||
            (le->instance_id = arena_strdup(call->arena, best->instance_id)) == NULL) {
            berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
            goto out;
        }
        le->time_unix_ns = e->time_unix_ns;
        le->stream = e->stream == BACKEND_LOG_STDERR ? BERTH__V1__LOG_STREAM__LOG_STREAM_STDERR
                                                     : BERTH__V1__LOG_STREAM__LOG_STREAM_STDOUT;
        resp->entries[resp->n_entries++] = le;
    }
    *out = &resp->base;
    rc = 0;
out:
    ls_sources_release(src, n);
    return rc;
}

/* ---- StreamLogs ----------------------------------------------------------
 * The answer GetLogs would give, then a follower per container: a thread
 * that reads the Engine's followed output and sends each new line. A line
 * at or before the last one already sent of its container is skipped (the
 * follow starts at that line's millisecond). The end hook only tells the
 * followers to stop; the last one to finish lets go of the session. When
 * every container's output has ended (the object was deleted, or stopped),
 * the stream ends cleanly. */

struct follow_session;

struct follower {
    struct follow_session *fs;
    char *handle;
    char *instance_id;
    int64_t last_ns; /* newest line already sent */
};

struct follow_session {
    struct log_service *svc;
    struct rpc_stream *out; /* a reference of the session's */
    atomic_int stop;
    _Atomic int running; /* followers still reading */
    _Atomic int refs;    /* followers and the end hook */
    struct backend_log_query q;
    int64_t start_unix_ms;
    int64_t deadline;
    size_t n;
    struct follower *f;
    pthread_mutex_t err_lock;
    struct berth_err first_err; /* guarded by err_lock */
};

static void session_unref(struct follow_session *fs)
{
    struct log_service *s;

    if (atomic_fetch_sub(&fs->refs, 1) != 1)
        return;
    s = fs->svc;
    rpc_stream_release(fs->out);
    for (size_t i = 0; i < fs->n; i++) {
        free(fs->f[i].handle);
        free(fs->f[i].instance_id);
    }
    free(fs->f);
    lock_destroy(&fs->err_lock);
    free(fs);
    lock_take(&s->follow_lock);
    if (--s->sessions == 0)
        pthread_cond_broadcast(&s->follow_done);
    lock_give(&s->follow_lock);
}

static void session_end_hook(void *arg)
{
    struct follow_session *fs = arg;

    atomic_store(&fs->stop, 1);
    session_unref(fs);
}

static int ls_send_entry(struct rpc_stream *out, const struct backend_log_entry *e,
                         const char *instance_id)
{
    Berth__V1__LogEntry le = BERTH__V1__LOG_ENTRY__INIT;

    le.time_unix_ns = e->time_unix_ns;
    le.stream = e->stream == BACKEND_LOG_STDERR ? BERTH__V1__LOG_STREAM__LOG_STREAM_STDERR
                                                : BERTH__V1__LOG_STREAM__LOG_STREAM_STDOUT;
    le.line = e->line; /* borrowed while it is encoded */
    le.instance_id = (char *)instance_id;
    return rpc_stream_send(out, &le.base);
}

static int follower_line(void *arg, const struct backend_log_entry *e)
{
    struct follower *f = arg;

    if (e->time_unix_ns <= f->last_ns)
        return 0;
    f->last_ns = e->time_unix_ns;
    return ls_send_entry(f->fs->out, e, f->instance_id) < 0;
}

static void *follower_main(void *arg)
{
    struct follower *f = arg;
    struct follow_session *fs = f->fs;
    struct backend *b = fs->svc->backend;
    struct backend_log_query q = fs->q;
    struct berth_err err;

    berth_err_clear(&err);
    q.since_unix_ms = f->last_ns > 0 ? f->last_ns / 1000000 : fs->start_unix_ms;
    if (b->ops->logs_follow(b->ctx, f->handle, &q, fs->deadline, &fs->stop, follower_line, f,
                            &err) < 0 &&
        err.code != BERTH_NOT_FOUND && !atomic_load(&fs->stop)) {
        lock_take(&fs->err_lock);
        if (fs->first_err.code == BERTH_OK)
            fs->first_err = err;
        lock_give(&fs->err_lock);
    }
    if (atomic_fetch_sub(&fs->running, 1) == 1 && !atomic_load(&fs->stop)) {
        /* Every output has ended: so does the stream. */
        lock_take(&fs->err_lock);
        err = fs->first_err;
        lock_give(&fs->err_lock);
        rpc_stream_finish(fs->out, &err);
    }
    session_unref(fs);
    return NULL;
}

static int h_stream_logs(void *ctx, struct rpc_call *call, const ProtobufCMessage *in,
                         struct rpc_stream *out, struct berth_err *err)
{
    struct log_service *s = ctx;
    const Berth__V1__GetLogsRequest *r = (const Berth__V1__GetLogsRequest *)in;
    ProtobufCMessage *first = NULL;
    const Berth__V1__GetLogsResponse *answer;
    struct follow_session *fs;
    struct log_source *src = NULL;
    enum object_kind kind = OBJECT_VM;
    const char *id = "";
    char **handles = NULL;
    size_t n = 0, started = 0;
    int64_t start_ms = berth_unix_ms();

    if (ls_check(r, &kind, &id, err) < 0)
        return -1;
    if (s->backend->ops->logs_follow == NULL)
        return berth_err_set(err, BERTH_UNIMPLEMENTED, "this backend cannot follow logs");
    /* What GetLogs would answer comes first. */
    if (h_get_logs(ctx, call, in, &first, err) < 0)
        return -1;
    answer = (const Berth__V1__GetLogsResponse *)first;
    if (ls_targets(s, call->arena, kind, ls_str(r->namespace_), id, ls_str(r->instance_id),
                   call->deadline, &handles, &src, &n, err) < 0)
        return -1;
    fs = calloc(1, sizeof(*fs));
    if (fs == NULL || (n > 0 && (fs->f = calloc(n, sizeof(*fs->f))) == NULL)) {
        free(fs);
        ls_sources_release(src, n);
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    }
    fs->svc = s;
    fs->out = out;
    rpc_stream_ref(out);
    atomic_init(&fs->stop, 0);
    lock_init(&fs->err_lock);
    berth_err_clear(&fs->first_err);
    fs->q.streams = r->stream == BERTH__V1__LOG_STREAM__LOG_STREAM_STDOUT   ? BACKEND_LOG_STDOUT
                    : r->stream == BERTH__V1__LOG_STREAM__LOG_STREAM_STDERR ? BACKEND_LOG_STDERR
                                                                            : 0;
    fs->start_unix_ms = start_ms;
    fs->deadline = call->deadline;
    fs->n = n;
    for (size_t i = 0; i < n; i++) {
        fs->f[i].fs = fs;
        fs->f[i].handle = strdup(handles[i]);
        fs->f[i].instance_id = strdup(src[i].instance_id);
    }
    ls_sources_release(src, n);
    for (size_t i = 0; i < answer->n_entries; i++) {
        const Berth__V1__LogEntry *le = answer->entries[i];
        struct backend_log_entry e = {le->time_unix_ns,
                                      le->stream == BERTH__V1__LOG_STREAM__LOG_STREAM_STDERR
                                          ? BACKEND_LOG_STDERR
                                          : BACKEND_LOG_STDOUT,
                                      le->line, strlen(le->line)};

        for (size_t k = 0; k < n; k++)
            if (fs->f[k].instance_id != NULL &&
                strcmp(fs->f[k].instance_id, le->instance_id) == 0 &&
                le->time_unix_ns > fs->f[k].last_ns)
                fs->f[k].last_ns = le->time_unix_ns;
        (void)ls_send_entry(out, &e, le->instance_id);
    }
    lock_take(&s->follow_lock);
    s->sessions++;
    lock_give(&s->follow_lock);
    /* The hook's reference, then one per follower that runs. */
    atomic_init(&fs->refs, 1);
    atomic_init(&fs->running, 0);
    for (size_t i = 0; i < n; i++) {
        pthread_t t;
        pthread_attr_t attr;

        if (fs->f[i].handle == NULL || fs->f[i].instance_id == NULL)
            continue;
        atomic_fetch_add(&fs->refs, 1);
        atomic_fetch_add(&fs->running, 1);
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &attr, follower_main, &fs->f[i]) != 0) {
            atomic_fetch_sub(&fs->refs, 1);
            atomic_fetch_sub(&fs->running, 1);
        } else {
            started++;
        }
        pthread_attr_destroy(&attr);
    }
    rpc_stream_on_end(out, session_end_hook, fs);
    if (started == 0) {
        /* Nothing to follow (no replica, or no thread): the stream is what
         * was sent. */
        struct berth_err none;

        berth_err_clear(&none);
        if (n > 0)
            berth_err_set(&none, BERTH_RESOURCE_EXHAUSTED, "cannot start a log follower");
        rpc_stream_finish(out, &none);
    }
    return 0;
}
