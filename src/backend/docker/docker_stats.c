/* The Docker backend's stats (backend_ops.stats and stats_sweep). Each
 * swept container has one source at a time:
 *
 * - its cgroup files (cgroup_stats.c), read by the sweep itself once an
 *   interval for all of them in one pass, with no Engine call: every
 *   running container whose cgroup this host shows (the Engine's layout
 *   from its /info, else found through the container's pid, asked once);
 * - else (another layout, a remote Engine, files unreadable) a streaming
 *   stats connection (GET /containers/{id}/stats?stream=true) on one curl
 *   multi handle, and Docker's stats JSON turned into struct backend_stats
 *   the way `docker stats` reads it. The Engine samples every subscribed
 *   container in one loop and then sleeps a second, so a stream per
 *   container gets a sample a second for all of them at once. Each stream
 *   is counted with the Engine calls when it ends, like /events. A
 *   container on this source tries its files again every
 *   DOCKER_CGROUP_RETRY_MS.
 *
 * A stream silent for its stall limit (docker_stats_stall_limit_ms) is
 * reopened at once, and the new stream's first sample comes with the
 * Engine's next loop; a stream that stalls again before any sample gets
 * twice the time, up to max(limit, DOCKER_STATS_STALL_MAX_MS). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "berth/buf.h"
#include "berth/clock.h"
#include "berth/log.h"
#include "berth/rfc3339.h"
#include "berth/sorted.h"
#include "cgroup_stats.h"
#include "docker_internal.h"

/* Longest wait in curl_multi_poll: how late a stop request is seen. */
#define DOCKER_STATS_POLL_MS 250
/* The Engine's sample period: its one-second sleep (plus its loop). */
#define DOCKER_STATS_ENGINE_PERIOD_MS 1000
/* No stream is declared stalled sooner: a healthy one is silent for about
 * an Engine period between samples, more when the Engine is busy (its loop
 * over 200 running containers took up to 1.8 s here; a tighter floor cut
 * healthy streams and the reopens made samples older, not newer). */
#define DOCKER_STATS_STALL_MIN_MS 3000
/* A stream that stalls again before any sample gets twice the time, up to
 * max(stall limit, this), so an Engine slower than the floor still gets
 * through instead of being cut off before every first sample. */
#define DOCKER_STATS_STALL_MAX_MS 8000
/* Wait this long before reopening a stream that ended or failed: longer
 * would only age the samples, shorter would hammer a failing Engine. */
#define DOCKER_STATS_RETRY_MS 1000
/* The operation stats streams are counted under (ids are masked anyway). */
#define DOCKER_STATS_PATH "/containers/{id}/stats"
/* Kept of a non-200 answer, for the log line. */
#define DOCKER_STATS_ERRBODY_MAX 2048
/* A one-shot sample waits for the Engine's two readings (a second apart). */
#define DOCKER_STATS_ONE_MAX_MS 10000
/* A container whose files could not be read is sampled through the Engine
 * and tries its files again after this long. */
#define DOCKER_CGROUP_RETRY_MS 60000
/* A container read from its files before whose cgroup is gone (stopping,
 * restarting) tries again after this long, this many times, before it is
 * sampled through the Engine. */
#define DOCKER_CGROUP_REOPEN_MS 1000
#define DOCKER_CGROUP_MISSES 3
/* The Engine's /info (its cgroup driver and version) is asked again after
 * this long when it failed. */
#define DOCKER_CGROUP_INFO_RETRY_MS 60000
/* Engine calls one cgroup pass may make to learn containers' pids (when
 * the layout does not find their cgroup); the others wait for later passes. */
#define DOCKER_CGROUP_INSPECTS_PER_PASS 8
/* A pass of the cgroup source starts this much earlier than the interval
 * asks (at least), so the pass, the write back and a late wake-up still
 * leave every sample younger than the interval. */
#define DOCKER_CGROUP_SLACK_DIV 10

/* Where a container's samples come from. */
enum docker_source {
    DOCKER_SOURCE_CGROUP = 0, /* its cgroup files (opened at the next pass when not yet) */
    DOCKER_SOURCE_ENGINE,     /* its Engine stats stream */
};

/* One swept container: its source, its files or its stats stream, and what
 * it has for the sweep. Owned by the stats state; only the sweep's caller
 * touches it. */
struct docker_stream {
    struct docker_stats *ds; /* back pointer */
    char *id;                /* owned: the container id */
    enum docker_source source;
    struct cgroup_stats_ctr *cg; /* owned: its open files (cgroup source), or NULL */
    int64_t cg_retry_at_ms;      /* monotonic: open its files no earlier than this */
    int cg_read_once;            /* its files were read: a vanished cgroup is a restart */
    int cg_misses;               /* passes in a row that found its cgroup gone */
    int inspected;               /* its pid was asked of the Engine */
    CURL *h;                     /* owned; NULL while closed (waiting to reopen) */
    struct buf line;             /* the partial line of the stream */
    struct buf errbody;          /* a non-200 answer's body */
    int64_t opened_ms;           /* monotonic */
    int64_t opened_us;           /* monotonic: for the Engine call counters */
    int64_t last_data_ms;        /* monotonic: last sample, 0 none yet */
    int64_t retry_at_ms;         /* monotonic: reopen no earlier than this */
    int64_t stall_ms;            /* silence that counts as a stall now (backs off) */
    int wanted;                  /* asked for by the current sweep */
    int answered;                /* has an answer for the current sweep */
    int fresh;                   /* `sample` was not given yet */
    struct backend_stats sample;
    int failed;             /* a failure was not given yet */
    struct berth_err *fail; /* owned: the last failure (made at the first; NULL: none yet) */
    int bad;                /* a callback failed; the transfer was aborted */
    char *errbuf;           /* owned: curl's error text (made with the first stream) */
};

/* The stats state of one Docker backend; used by one sweep at a time. */
struct docker_stats {
    struct docker_ctx *c;           /* borrowed: engine, socket, counters */
    int64_t stall_ms;               /* docker_stats_stall_limit_ms(interval) */
    CURLM *multi;                   /* owned */
    struct docker_stream **streams; /* owned, each owned */
    size_t n_streams, cap_streams;
    struct docker_stream **slots; /* owned array: the stream of each id of the sweep */
    size_t cap_slots;
    uint64_t n_open;
    uint64_t errors;      /* of the sweep under way */
    char api_version[16]; /* "1.41", "" until known */

    /* The cgroup source; cg NULL: off (every container through the Engine). */
    struct cgroup_stats *cg;           /* owned */
    int64_t interval_ms;               /* the promise: no sample older than this */
    int64_t cg_next_ms;                /* monotonic: the next pass over every file */
    int64_t cg_pass_ms;                /* how long the last full pass took */
    int layout_known;                  /* the Engine's /info answered */
    int64_t info_retry_at_ms;          /* monotonic: ask /info again from then */
    struct cgroup_stats_layout layout; /* what /info said; else found on disk */
    int cg_ran;                        /* a pass ran in the sweep under way */
};

static uint64_t docker_stats_u64(const cJSON *obj, const char *name);
static const cJSON *docker_stats_obj(const cJSON *obj, const char *name);
static int docker_stats_has(const cJSON *obj, const char *name);
static int64_t docker_stats_clamp(uint64_t v);
static void docker_stats_read_cpu(const cJSON *cpu_stats, struct backend_cpu *out);
static int64_t docker_stats_memory(const cJSON *memory_stats);
static void docker_stats_network(const cJSON *networks, struct backend_stats *out);
static void docker_stats_blkio(const cJSON *list, int64_t *read, int64_t *write);
static int docker_stats_cmp(const void *a, const void *b);
static struct docker_stream *docker_stats_find(struct docker_stats *ds, size_t n_sorted,
                                               const char *id);
static struct docker_stream *docker_stats_add(struct docker_stats *ds, const char *id);
static void docker_stats_drop(struct docker_stats *ds, size_t i);
static int docker_stats_need_version(struct docker_stats *ds);
static void docker_stats_open_due(struct docker_stats *ds, int64_t now);
static int docker_stats_open(struct docker_stats *ds, struct docker_stream *s, int64_t now);
static void docker_stats_close(struct docker_stats *ds, struct docker_stream *s, int64_t retry_at,
                               enum backend_outcome outcome);
static enum backend_outcome docker_stats_outcome(CURLcode rc, long status);
static enum backend_outcome docker_stats_cut_outcome(const struct docker_stream *s);
static size_t docker_stats_on_write(char *data, size_t size, size_t nmemb, void *userp);
static void docker_stats_on_line(struct docker_stream *s, const char *line, size_t len);
static void docker_stats_done(struct docker_stats *ds);
static void docker_stats_check_stalls(struct docker_stats *ds, int64_t now);
static long docker_stats_wait_ms(struct docker_stats *ds, int64_t now, int64_t deadline);
static int docker_stats_all_answered(struct docker_stats *ds);
static void docker_stats_error(struct docker_stats *ds, struct docker_stream *s, const char *what);
static void docker_stats_set_fail(struct docker_stream *s, const char *what);
static int docker_stats_over(struct docker_stats *ds);
static size_t docker_stats_fd_budget(void);
static int docker_cg_due(const struct docker_stream *s, int64_t now);
static void docker_cg_step(struct docker_stats *ds, int64_t now, int64_t deadline);
static void docker_cg_pass(struct docker_stats *ds, int full, int64_t deadline);
static void docker_cg_sample(struct docker_stats *ds, struct docker_stream *s,
                             const struct backend_cpu *host, unsigned *inspects, int64_t deadline);
static int docker_cg_open(struct docker_stats *ds, struct docker_stream *s, unsigned *inspects,
                          int64_t deadline, struct berth_err *err);
static void docker_cg_to_engine(struct docker_stream *s, const struct berth_err *why);
static void docker_cg_learn_layout(struct docker_stats *ds, int64_t deadline);
static int docker_cg_inspect_pid(struct docker_stats *ds, const char *id, int64_t deadline,
                                 int *pid);

/* --- Docker's stats JSON ------------------------------------------------------ */

/* A non-negative number field as uint64; 0 when missing, not a number,
 * negative, NaN or too large. */
static uint64_t docker_stats_u64(const cJSON *obj, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    double d;

    if (!cJSON_IsNumber(v))
        return 0;
    d = v->valuedouble;
    if (!(d >= 0.0) || d >= 18446744073709551615.0)
        return 0;
    return (uint64_t)d;
}

/* A child object, or NULL when missing or not an object. */
static const cJSON *docker_stats_obj(const cJSON *obj, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);

    return cJSON_IsObject(v) ? v : NULL;
}

static int docker_stats_has(const cJSON *obj, const char *name)
{
    return cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(obj, name));
}

static int64_t docker_stats_clamp(uint64_t v)
{
    return v > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v;
}

static void docker_stats_read_cpu(const cJSON *cpu_stats, struct backend_cpu *out)
{
    const cJSON *usage = docker_stats_obj(cpu_stats, "cpu_usage");
    const cJSON *percpu = cJSON_GetObjectItemCaseSensitive(usage, "percpu_usage");
    uint64_t online = docker_stats_u64(cpu_stats, "online_cpus");

    memset(out, 0, sizeof(*out));
    out->total_ns = docker_stats_u64(usage, "total_usage");
    out->system_ns = docker_stats_u64(cpu_stats, "system_cpu_usage");
    /* Engines before API 1.27 send no online_cpus: the CLI counts percpu_usage. */
    if (online == 0 && cJSON_IsArray(percpu))
        online = (uint64_t)cJSON_GetArraySize(percpu);
    out->online_cpus = online > 4096 ? 4096 : (uint32_t)online;
}

/* Memory as `docker stats` shows it: usage without the page cache the
 * kernel can drop (cgroup v1: total_inactive_file; v2: inactive_file; old
 * engines without either: cache). */
static int64_t docker_stats_memory(const cJSON *memory_stats)
{
    static const char *const reclaimable[] = {"total_inactive_file", "inactive_file", "cache"};
    const cJSON *st = docker_stats_obj(memory_stats, "stats");
    uint64_t usage = docker_stats_u64(memory_stats, "usage");

    for (size_t i = 0; i < sizeof(reclaimable) / sizeof(reclaimable[0]); i++) {
        uint64_t v;

        if (!docker_stats_has(st, reclaimable[i]))
            continue;
        v = docker_stats_u64(st, reclaimable[i]);
        if (v < usage)
            return docker_stats_clamp(usage - v);
    }
    return docker_stats_clamp(usage);
}

/* Sum over every interface of the "networks" object. */
static void docker_stats_network(const cJSON *networks, struct backend_stats *out)
{
    uint64_t rxb = 0, txb = 0, rxp = 0, txp = 0;
    const cJSON *ifc;

    cJSON_ArrayForEach(ifc, networks)
    {
        if (!cJSON_IsObject(ifc))
            continue;
        rxb += docker_stats_u64(ifc, "rx_bytes");
        txb += docker_stats_u64(ifc, "tx_bytes");
        rxp += docker_stats_u64(ifc, "rx_packets");
        txp += docker_stats_u64(ifc, "tx_packets");
    }
    out->rx_bytes = docker_stats_clamp(rxb);
    out->tx_bytes = docker_stats_clamp(txb);
    out->rx_packets = docker_stats_clamp(rxp);
    out->tx_packets = docker_stats_clamp(txp);
}

/* Sum the "Read" and "Write" entries of a blkio list over all devices;
 * cgroup v2 spells the ops in lower case. */
static void docker_stats_blkio(const cJSON *list, int64_t *read, int64_t *write)
{
    uint64_t r = 0, w = 0;
    const cJSON *e;

    if (cJSON_IsArray(list)) {
        cJSON_ArrayForEach(e, list)
        {
            const cJSON *op = cJSON_GetObjectItemCaseSensitive(e, "op");

            if (!cJSON_IsString(op))
                continue;
            if (strcasecmp(op->valuestring, "read") == 0)
                r += docker_stats_u64(e, "value");
            else if (strcasecmp(op->valuestring, "write") == 0)
                w += docker_stats_u64(e, "value");
        }
    }
    *read = docker_stats_clamp(r);
    *write = docker_stats_clamp(w);
}

int docker_stats_parse(const cJSON *root, int64_t now_unix_ms, struct backend_stats *out)
{
    const cJSON *memory_stats, *blkio, *read;
    struct backend_stats st;
    int64_t at = -1;

    if (!cJSON_IsObject(root))
        return -1;
    memset(&st, 0, sizeof(st));
    st.source = BACKEND_STATS_ENGINE;
    docker_stats_read_cpu(docker_stats_obj(root, "cpu_stats"), &st.cpu);
    memory_stats = docker_stats_obj(root, "memory_stats");
    /* A container that is not running answers with zeroed counters. */
    if (st.cpu.system_ns == 0 && !docker_stats_has(memory_stats, "usage"))
        return DOCKER_STATS_EMPTY;
    /* The Engine's own previous reading (same loop, one second apart); the
     * first sample of a stream has an empty one. */
    docker_stats_read_cpu(docker_stats_obj(root, "precpu_stats"), &st.precpu);
    if (!backend_cpu_valid(&st.precpu))
        memset(&st.precpu, 0, sizeof(st.precpu));
    st.memory_bytes = docker_stats_memory(memory_stats);
    st.memory_limit_bytes = docker_stats_clamp(docker_stats_u64(memory_stats, "limit"));
    docker_stats_network(docker_stats_obj(root, "networks"), &st);
    blkio = docker_stats_obj(root, "blkio_stats");
    docker_stats_blkio(cJSON_GetObjectItemCaseSensitive(blkio, "io_service_bytes_recursive"),
                       &st.read_bytes, &st.write_bytes);
    docker_stats_blkio(cJSON_GetObjectItemCaseSensitive(blkio, "io_serviced_recursive"),
                       &st.read_ops, &st.write_ops);
    st.pids = docker_stats_clamp(docker_stats_u64(docker_stats_obj(root, "pids_stats"), "current"));
    read = cJSON_GetObjectItemCaseSensitive(root, "read");
    if (!cJSON_IsString(read) || rfc3339_parse_ms(read->valuestring, &at) < 0)
        at = -1;
    st.sampled_at_unix_ms = at > 0 ? at : now_unix_ms;
    *out = st;
    return DOCKER_STATS_SAMPLE;
}

/* --- setup ------------------------------------------------------------------- */

int64_t docker_stats_stall_limit_ms(int64_t interval_ms)
{
    int64_t limit = interval_ms - DOCKER_STATS_ENGINE_PERIOD_MS;

    return limit > DOCKER_STATS_STALL_MIN_MS ? limit : DOCKER_STATS_STALL_MIN_MS;
}

int docker_stats_new(struct docker_ctx *c, int64_t interval_ms, const char *cgroup_root,
                     const char *proc_root, int64_t max_open_files, struct docker_stats **out,
                     struct berth_err *err)
{
    struct docker_stats *ds = calloc(1, sizeof(*ds));
    size_t budget = max_open_files == 0  ? docker_stats_fd_budget()
                    : max_open_files < 0 ? 0
                                         : (size_t)max_open_files;

    if (ds == NULL)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    ds->c = c;
    ds->interval_ms = interval_ms > 0 ? interval_ms : 1000;
    ds->stall_ms = docker_stats_stall_limit_ms(ds->interval_ms);
    ds->multi = curl_multi_init();
    if (ds->multi == NULL) {
        free(ds);
        return berth_err_set(err, BERTH_INTERNAL, "cannot create a curl multi handle");
    }
    if (cgroup_root != NULL && cgroup_root[0] != '\0' &&
        cgroup_stats_new(cgroup_root,
                         proc_root != NULL && proc_root[0] != '\0' ? proc_root : "/proc", budget,
                         &ds->cg, err) < 0) {
        docker_stats_free(ds);
        return -1;
    }
    *out = ds;
    return 0;
}

void docker_stats_free(struct docker_stats *ds)
{
    if (ds == NULL)
        return;
    while (ds->n_streams > 0)
        docker_stats_drop(ds, ds->n_streams - 1);
    free(ds->streams);
    free(ds->slots);
    curl_multi_cleanup(ds->multi);
    cgroup_stats_free(ds->cg);
    free(ds);
}

/* Files the cgroup source may keep open: half of what berthd may open, the
 * rest left to connections (past it, files are opened for each read). */
static size_t docker_stats_fd_budget(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
        return 4096;
    return (size_t)rl.rlim_cur / 2;
}

/* --- the operations ----------------------------------------------------------- */

int docker_stats_sweep(void *ctx, const char *const *ids, size_t n, int64_t deadline,
                       const atomic_int *stop, struct backend_stats_result *out,
                       struct backend_sweep_info *info, struct berth_err *err)
{
    struct docker_ctx *c = ctx;
    struct docker_stats *ds = c->stats;
    size_t n_sorted;

    ds->errors = 0;
    if (n > ds->cap_slots) {
        struct docker_stream **grown = realloc(ds->slots, n * sizeof(*grown));

        if (grown == NULL)
            return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        ds->slots = grown;
        ds->cap_slots = n;
    }
    /* Sorted by id for the lookups (a thousand containers a second make a
     * linear search cost more than reading their files); new ones go after. */
    if (ds->n_streams > 1)
        qsort(ds->streams, ds->n_streams, sizeof(*ds->streams), docker_stats_cmp);
    n_sorted = ds->n_streams;
    for (size_t i = 0; i < ds->n_streams; i++)
        ds->streams[i]->wanted = 0;
    for (size_t i = 0; i < n; i++) {
        struct docker_stream *s = docker_stats_find(ds, n_sorted, ids[i]);

        if (s == NULL)
            s = docker_stats_add(ds, ids[i]);
        if (s == NULL)
            return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        s->wanted = 1;
        s->answered = 0;
        ds->slots[i] = s;
    }
    /* No longer asked for (paused, stopped, gone): close and forget. */
    for (size_t i = ds->n_streams; i-- > 0;)
        if (!ds->streams[i]->wanted)
            docker_stats_drop(ds, i);

    ds->cg_ran = 0;
    for (;;) {
        int64_t now = berth_now_ms();
        int running = 0;

        /* The files first: a container they fail for gets its stream now. */
        if (ds->cg != NULL)
            docker_cg_step(ds, now, deadline);
        docker_stats_check_stalls(ds, now);
        docker_stats_open_due(ds, now);
        if (curl_multi_perform(ds->multi, &running) != CURLM_OK)
            docker_stats_error(ds, NULL, "curl multi perform failed");
        docker_stats_done(ds);
        now = berth_now_ms();
        if (docker_stats_over(ds) || now >= deadline || (stop != NULL && atomic_load(stop) != 0))
            break;
        if (curl_multi_poll(ds->multi, NULL, 0, (int)docker_stats_wait_ms(ds, now, deadline),
                            NULL) != CURLM_OK)
            docker_stats_error(ds, NULL, "curl multi poll failed");
    }

    for (size_t i = 0; i < n; i++) {
        struct docker_stream *s = ds->slots[i];

        memset(&out[i], 0, sizeof(out[i]));
        if (s != NULL && s->fresh) {
            out[i].status = BACKEND_SAMPLE_NEW;
            out[i].stats = s->sample;
            s->fresh = 0;
        } else if (s != NULL && s->failed) {
            out[i].status = BACKEND_SAMPLE_ERROR;
            if (s->fail != NULL)
                out[i].err = *s->fail;
            else
                berth_err_set(&out[i].err, BERTH_UNAVAILABLE, "stats stream failed");
            s->failed = 0;
        }
    }
    info->complete = docker_stats_all_answered(ds);
    info->errors = ds->errors;
    info->open = ds->n_open;
    info->next_due_ms = ds->cg != NULL ? ds->cg_next_ms : 0;
    return 0;
}

int docker_stats_one(void *ctx, const char *id, int64_t deadline, struct backend_stats *out,
                     struct berth_err *err)
{
    struct docker_ctx *c = ctx;
    struct engine_response resp;
    struct buf path;
    cJSON *root = NULL;
    int rc = -1, got;

    if (deadline == BERTH_NO_DEADLINE)
        deadline = berth_now_ms() + DOCKER_STATS_ONE_MAX_MS;
    engine_response_init(&resp);
    buf_init(&path, 4096);
    if (buf_appends(&path, "/containers/", err) < 0 || engine_append_escaped(&path, id, err) < 0 ||
        buf_appends(&path, "/stats?stream=false", err) < 0)
        goto out;
    if (engine_request(c->engine, "GET", path.data, NULL, deadline, &resp, err) < 0)
        goto out;
    if (resp.status != 200) {
        engine_fail(&resp, engine_status_code(resp.status), "container stats", err);
        goto out;
    }
    root = cJSON_ParseWithLength(resp.body.data, resp.body.len);
    got = docker_stats_parse(root, berth_unix_ms(), out);
    if (got < 0) {
        berth_err_set(err, BERTH_UNAVAILABLE,
                      "docker engine sent stats that are not a JSON object");
        goto out;
    }
    if (got == DOCKER_STATS_EMPTY) {
        berth_err_set(err, BERTH_FAILED_PRECONDITION, "container is not running");
        goto out;
    }
    rc = 0;
out:
    cJSON_Delete(root);
    buf_release(&path);
    engine_response_release(&resp);
    return rc;
}

/* --- the stream table -------------------------------------------------------- */

static int docker_stats_cmp(const void *a, const void *b)
{
    const struct docker_stream *const *x = a, *const *y = b;

    return strcmp((*x)->id, (*y)->id);
}

/* The stream of `id` among the first n_sorted (sorted by id), or NULL. */
static const char *docker_stream_id(const void *elem)
{
    return (*(struct docker_stream *const *)elem)->id;
}

static struct docker_stream *docker_stats_find(struct docker_stats *ds, size_t n_sorted,
                                               const char *id)
{
    int found;
    size_t at =
        sorted_slot(ds->streams, n_sorted, sizeof(*ds->streams), id, docker_stream_id, &found);

    return found ? ds->streams[at] : NULL;
}

/* A closed stream for a container, ready to open; NULL when out of memory. */
static struct docker_stream *docker_stats_add(struct docker_stats *ds, const char *id)
{
    struct docker_stream *s;

    if (ds->n_streams == ds->cap_streams) {
        size_t cap = ds->cap_streams ? ds->cap_streams * 2 : 16;
        struct docker_stream **grown = realloc(ds->streams, cap * sizeof(*grown));

        if (grown == NULL)
            return NULL;
        ds->streams = grown;
        ds->cap_streams = cap;
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->ds = ds;
    s->id = strdup(id);
    if (s->id == NULL) {
        free(s);
        return NULL;
    }
    buf_init(&s->line, ENGINE_LINE_MAX);
    buf_init(&s->errbody, DOCKER_STATS_ERRBODY_MAX);
    s->stall_ms = ds->stall_ms;
    s->source = ds->cg != NULL ? DOCKER_SOURCE_CGROUP : DOCKER_SOURCE_ENGINE;
    ds->streams[ds->n_streams++] = s;
    return s;
}

/* Close and forget stream i (order is not kept). */
static void docker_stats_drop(struct docker_stats *ds, size_t i)
{
    struct docker_stream *s = ds->streams[i];

    docker_stats_close(ds, s, 0, docker_stats_cut_outcome(s));
    cgroup_stats_close(ds->cg, s->cg);
    buf_release(&s->line);
    buf_release(&s->errbody);
    free(s->errbuf);
    free(s->fail);
    free(s->id);
    free(s);
    ds->streams[i] = ds->streams[--ds->n_streams];
}

/* 1 once the Engine's API version is known (asked now if needed), else 0. */
static int docker_stats_need_version(struct docker_stats *ds)
{
    struct berth_err err;

    if (ds->api_version[0] != '\0')
        return 1;
    berth_err_clear(&err);
    if (engine_api_version(ds->c->engine, berth_now_ms() + 1000, ds->api_version,
                           sizeof(ds->api_version), &err) < 0) {
        ds->api_version[0] = '\0';
        ds->errors++;
        log_debug("stats.version", "code=%s error=\"%s\"", berth_code_name(err.code), err.msg);
        return 0;
    }
    return 1;
}

/* Open the stream of every wanted container that has none and whose retry
 * time came: right after a stall, a second after a failure. */
static void docker_stats_open_due(struct docker_stats *ds, int64_t now)
{
    int have_version = -1; /* -1: not asked yet this round */

    for (size_t i = 0; i < ds->n_streams; i++) {
        struct docker_stream *s = ds->streams[i];

        if (!s->wanted || s->source != DOCKER_SOURCE_ENGINE || s->h != NULL || now < s->retry_at_ms)
            continue;
        if (have_version < 0)
            have_version = docker_stats_need_version(ds);
        if (!have_version) {
            s->retry_at_ms = now + DOCKER_STATS_RETRY_MS; /* the Engine did not answer */
            docker_stats_set_fail(s, "docker engine version unknown");
            s->answered = 1;
            continue;
        }
        if (docker_stats_open(ds, s, now) < 0) {
            docker_stats_error(ds, s, "cannot open a stats stream");
            s->retry_at_ms = now + DOCKER_STATS_RETRY_MS;
        }
    }
}

/* Start GET /v<api>/containers/<id>/stats?stream=true on the multi handle. */
static int docker_stats_open(struct docker_stats *ds, struct docker_stream *s, int64_t now)
{
    struct buf url;
    CURL *h = NULL;
    int bad = 0, rc = -1;

    buf_init(&url, 4096);
    if (buf_printf(&url, NULL, "http://localhost/v%s/containers/", ds->api_version) < 0 ||
        engine_append_escaped(&url, s->id, NULL) < 0 ||
        buf_appends(&url, "/stats?stream=true", NULL) < 0)
        goto out;
    h = curl_easy_init();
    if (h == NULL)
        goto out;
    if (s->errbuf == NULL && (s->errbuf = calloc(1, CURL_ERROR_SIZE)) == NULL)
        goto out;
    s->errbuf[0] = '\0';
    bad |= curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, ds->c->socket_path) != CURLE_OK;
    bad |= curl_easy_setopt(h, CURLOPT_URL, url.data) != CURLE_OK;
    bad |= curl_easy_setopt(h, CURLOPT_PROXY, "") != CURLE_OK;
    bad |= curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
    bad |=
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)ENGINE_CONNECT_TIMEOUT_MS) != CURLE_OK;
    bad |= curl_easy_setopt(h, CURLOPT_USERAGENT, "berthd") != CURLE_OK;
    bad |= curl_easy_setopt(h, CURLOPT_ERRORBUFFER, s->errbuf) != CURLE_OK;
    bad |= curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, docker_stats_on_write) != CURLE_OK;
    bad |= curl_easy_setopt(h, CURLOPT_WRITEDATA, s) != CURLE_OK;
    bad |= curl_easy_setopt(h, CURLOPT_PRIVATE, s) != CURLE_OK;
    if (bad || curl_multi_add_handle(ds->multi, h) != CURLM_OK)
        goto out;
    s->h = h;
    h = NULL;
    buf_reset(&s->line);
    buf_reset(&s->errbody);
    s->bad = 0;
    s->opened_ms = now;
    s->opened_us = berth_now_us();
    s->last_data_ms = 0;
    ds->n_open++;
    rc = 0;
out:
    if (h != NULL)
        curl_easy_cleanup(h);
    buf_release(&url);
    return rc;
}

/* Close a stream's connection (if open), counting it as one Engine call
 * with `outcome` that lasted its whole life (as /events is counted); it may
 * reopen from retry_at. */
static void docker_stats_close(struct docker_stats *ds, struct docker_stream *s, int64_t retry_at,
                               enum backend_outcome outcome)
{
    if (s->h != NULL) {
        engine_stats_record(ds->c->calls, "GET", DOCKER_STATS_PATH, outcome,
                            berth_now_us() - s->opened_us);
        curl_multi_remove_handle(ds->multi, s->h);
        curl_easy_cleanup(s->h);
        s->h = NULL;
        ds->n_open--;
    }
    s->retry_at_ms = retry_at;
}

/* The outcome of a transfer that ended, as the Engine client counts it. */
static enum backend_outcome docker_stats_outcome(CURLcode rc, long status)
{
    if (rc != CURLE_OK || status == 0)
        return BACKEND_OUTCOME_TRANSPORT_ERROR;
    if (status >= 500)
        return BACKEND_OUTCOME_SERVER_ERROR;
    if (status >= 400)
        return BACKEND_OUTCOME_CLIENT_ERROR;
    return BACKEND_OUTCOME_OK;
}

/* The outcome of a stream we end ourselves (no longer asked for, the
 * backend goes): whatever the Engine answered; no answer yet is a
 * transport error. */
static enum backend_outcome docker_stats_cut_outcome(const struct docker_stream *s)
{
    long status = 0;

    if (s->h != NULL)
        curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &status);
    return docker_stats_outcome(CURLE_OK, status);
}

/* --- samples ------------------------------------------------------------------- */

/* curl's body callback: cut a 200 stream into lines; keep any other body
 * for the log. Returning less than given aborts the transfer. */
static size_t docker_stats_on_write(char *data, size_t size, size_t nmemb, void *userp)
{
    struct docker_stream *s = userp;
    size_t n = size * nmemb, i = 0;
    long status = 0;

    curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200) {
        if (buf_append(&s->errbody, data, n, NULL) < 0)
            s->bad = 1;
        return s->bad ? 0 : n;
    }
    while (i < n) {
        const char *nl = memchr(data + i, '\n', n - i);
        size_t seg = nl ? (size_t)(nl - (data + i)) : n - i;

        if (buf_append(&s->line, data + i, seg, NULL) < 0) {
            s->bad = 1;
            return 0;
        }
        i += seg;
        if (nl == NULL)
            break;
        i++;
        if (s->line.len > 0)
            docker_stats_on_line(s, s->line.data, s->line.len);
        buf_reset(&s->line);
    }
    return n;
}

/* One stats object: the stream's newest sample, given at the sweep's end.
 * The empty answer of a container that is not running answers the sweep
 * with nothing. */
static void docker_stats_on_line(struct docker_stream *s, const char *line, size_t len)
{
    struct docker_stats *ds = s->ds;
    cJSON *root = cJSON_ParseWithLength(line, len);
    struct backend_stats st;
    int rc;

    rc = docker_stats_parse(root, berth_unix_ms(), &st);
    cJSON_Delete(root);
    if (rc < 0) {
        docker_stats_error(ds, s, "stats sample is not a JSON object");
        return;
    }
    s->last_data_ms = berth_now_ms();
    s->stall_ms = ds->stall_ms;
    s->answered = 1;
    if (rc == DOCKER_STATS_SAMPLE) {
        s->sample = st;
        s->fresh = 1;
        s->failed = 0;
    }
}

/* Streams that ended: the container stopped, or the Engine failed. */
static void docker_stats_done(struct docker_stats *ds)
{
    CURLMsg *msg;
    int left;

    while ((msg = curl_multi_info_read(ds->multi, &left)) != NULL) {
        struct docker_stream *s = NULL;
        long status = 0;

        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&s);
        if (s == NULL)
            continue;
        curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &status);
        if (msg->data.result != CURLE_OK || status != 200 || s->bad) {
            char what[160];

            snprintf(what, sizeof(what), "stats stream failed: status=%ld curl=%d", status,
                     (int)msg->data.result);
            docker_stats_error(ds, s, what);
        }
        s->answered = 1;
        docker_stats_close(ds, s, berth_now_ms() + DOCKER_STATS_RETRY_MS,
                           docker_stats_outcome(msg->data.result, status));
    }
}

/* A stream silent for its stall limit is reopened at once. Silence counts
 * as a transport error of the call. */
static void docker_stats_check_stalls(struct docker_stats *ds, int64_t now)
{
    int64_t max_ms =
        ds->stall_ms > DOCKER_STATS_STALL_MAX_MS ? ds->stall_ms : DOCKER_STATS_STALL_MAX_MS;

    for (size_t i = 0; i < ds->n_streams; i++) {
        struct docker_stream *s = ds->streams[i];
        int64_t since;

        if (s->h == NULL)
            continue;
        since = s->last_data_ms ? s->last_data_ms : s->opened_ms;
        if (now - since <= s->stall_ms)
            continue;
        docker_stats_error(ds, s, "stats stream stalled");
        s->answered = 1;
        docker_stats_close(ds, s, now, BACKEND_OUTCOME_TRANSPORT_ERROR);
        /* Silent again before a first sample: give the next one longer. */
        if (s->last_data_ms == 0)
            s->stall_ms = s->stall_ms * 2 < max_ms ? s->stall_ms * 2 : max_ms;
    }
}

/* How long the loop may sleep in curl_multi_poll: until the next stall
 * deadline, reopen or the sweep's deadline, at most DOCKER_STATS_POLL_MS. */
static long docker_stats_wait_ms(struct docker_stats *ds, int64_t now, int64_t deadline)
{
    int64_t until = deadline;

    for (size_t i = 0; i < ds->n_streams; i++) {
        const struct docker_stream *s = ds->streams[i];
        int64_t at;

        if (s->h != NULL)
            at = (s->last_data_ms ? s->last_data_ms : s->opened_ms) + s->stall_ms + 1;
        else if (s->wanted && s->source == DOCKER_SOURCE_ENGINE)
            at = s->retry_at_ms;
        else
            at = until;
        if (at < until)
            until = at;
        /* The cgroup source: its files to open, its next pass. */
        if (ds->cg != NULL && s->wanted && s->cg == NULL && s->cg_retry_at_ms < until)
            until = s->cg_retry_at_ms;
        if (ds->cg != NULL && s->wanted && s->source == DOCKER_SOURCE_CGROUP &&
            ds->cg_next_ms < until)
            until = ds->cg_next_ms;
    }
    if (until - now > DOCKER_STATS_POLL_MS)
        return DOCKER_STATS_POLL_MS;
    return until > now ? (long)(until - now) : 0;
}

static int docker_stats_all_answered(struct docker_stats *ds)
{
    for (size_t i = 0; i < ds->n_streams; i++)
        if (ds->streams[i]->wanted && !ds->streams[i]->answered)
            return 0;
    return 1;
}

/* Count a failure; a stream's is kept for its result unless a sample
 * follows in the same sweep. */
static void docker_stats_error(struct docker_stats *ds, struct docker_stream *s, const char *what)
{
    ds->errors++;
    if (s == NULL) {
        log_debug("stats.error", "error=\"%s\"", what);
        return;
    }
    docker_stats_set_fail(s, what);
    log_debug("stats.error", "container_id=%s error=\"%s\" detail=\"%s%s\"", s->id, what,
              s->errbuf != NULL ? s->errbuf : "", s->errbody.data ? s->errbody.data : "");
}

/* Keep `what` as s's failure for its result. Out of memory: a failure
 * without its text. */
static void docker_stats_set_fail(struct docker_stream *s, const char *what)
{
    if (s->fail == NULL)
        s->fail = malloc(sizeof(*s->fail));
    if (s->fail != NULL) {
        berth_err_clear(s->fail);
        berth_err_set(s->fail, BERTH_UNAVAILABLE, "%s", what);
    }
    s->failed = 1;
}

/* Whether the sweep under way can return: at once after a cgroup pass (its
 * samples are to be written back now, the streams keep theirs for the
 * next sweep); else once every stream answered; with files only, at their
 * pass (or the deadline); with nothing to sample, at once. */
static int docker_stats_over(struct docker_stats *ds)
{
    size_t engine = 0, pending = 0, files = 0;

    if (ds->cg_ran)
        return 1;
    for (size_t i = 0; i < ds->n_streams; i++) {
        const struct docker_stream *s = ds->streams[i];

        if (!s->wanted)
            continue;
        if (s->source == DOCKER_SOURCE_ENGINE) {
            engine++;
            pending += !s->answered;
        } else {
            files++;
        }
    }
    if (engine > 0)
        return pending == 0;
    return files == 0;
}

/* --- the cgroup source --------------------------------------------------------- */

/* 1 when the files of s are to be opened now: a new container, a cgroup
 * that went and may be back, a stream's container trying its files again. */
static int docker_cg_due(const struct docker_stream *s, int64_t now)
{
    return s->wanted && s->cg == NULL && now >= s->cg_retry_at_ms;
}

/* The pass over every container's files once it is due; in between, one
 * over the containers whose files are to be opened only (a VM that just
 * started gets its first sample at once, not an interval later). */
static void docker_cg_step(struct docker_stats *ds, int64_t now, int64_t deadline)
{
    int64_t period, slack;

    if (now < ds->cg_next_ms) {
        for (size_t i = 0; i < ds->n_streams; i++) {
            if (docker_cg_due(ds->streams[i], now)) {
                docker_cg_pass(ds, 0, deadline);
                return;
            }
        }
        return;
    }
    docker_cg_pass(ds, 1, deadline);
    /* Passes a little more often than the interval: a sample is written
     * back after the pass, and the next one must come before it is an
     * interval old. */
    slack = ds->interval_ms / DOCKER_CGROUP_SLACK_DIV;
    if (slack < 2 * ds->cg_pass_ms)
        slack = 2 * ds->cg_pass_ms;
    if (slack > ds->interval_ms / 2)
        slack = ds->interval_ms / 2;
    period = ds->interval_ms - slack;
    ds->cg_next_ms += period;
    if (ds->cg_next_ms <= berth_now_ms())
        ds->cg_next_ms = berth_now_ms() + period; /* fell behind: start anew */
}

/* One pass: the host's CPU counters, then each container's files (full),
 * or those of the containers whose files are due to be opened only. */
static void docker_cg_pass(struct docker_stats *ds, int full, int64_t deadline)
{
    unsigned inspects = DOCKER_CGROUP_INSPECTS_PER_PASS;
    int64_t start = berth_now_ms();
    struct backend_cpu host;
    struct berth_err err;

    ds->cg_ran = 1;
    if (!ds->layout_known && start >= ds->info_retry_at_ms)
        docker_cg_learn_layout(ds, deadline);
    berth_err_clear(&err);
    if (cgroup_stats_host(ds->cg, &host, &err) < 0) {
        /* Without the host's counters no file gives a CPU figure: every
         * container goes to the Engine for a while. */
        ds->errors++;
        log_debug("stats.error", "error=\"%s\"", err.msg);
        for (size_t i = 0; i < ds->n_streams; i++) {
            struct docker_stream *s = ds->streams[i];

            if (s->wanted && (s->source == DOCKER_SOURCE_CGROUP || docker_cg_due(s, start)))
                docker_cg_to_engine(s, &err);
        }
        return;
    }
    for (size_t i = 0; i < ds->n_streams; i++) {
        struct docker_stream *s = ds->streams[i];

        if (!s->wanted)
            continue;
        if (docker_cg_due(s, start) || (full && s->cg != NULL))
            docker_cg_sample(ds, s, &host, &inspects, deadline);
        else if (full && s->source == DOCKER_SOURCE_CGROUP)
            s->answered = 1; /* its cgroup went a moment ago: nothing this pass */
    }
    if (full)
        ds->cg_pass_ms = berth_now_ms() - start;
}

/* Read s's files (opened first when they are not), or leave it to the
 * Engine: a cgroup that went is opened again at once (a restart makes a
 * new one) and, for a container read before, tried again for a few
 * passes (stopping, restarting) before it is. */
static void docker_cg_sample(struct docker_stats *ds, struct docker_stream *s,
                             const struct backend_cpu *host, unsigned *inspects, int64_t deadline)
{
    struct backend_stats st;
    struct berth_err err;
    int rc;

    berth_err_clear(&err);
    if (s->cg != NULL) {
        if (cgroup_stats_read(ds->cg, s->cg, host, &st, &err) == 0)
            goto got;
        cgroup_stats_close(ds->cg, s->cg);
        s->cg = NULL;
        if (err.code != BERTH_NOT_FOUND) {
            ds->errors++;
            log_debug("stats.error", "container_id=%s error=\"%s\"", s->id, err.msg);
        }
        berth_err_clear(&err);
    }
    rc = docker_cg_open(ds, s, inspects, deadline, &err);
    if (rc > 0)
        return; /* waits for a later pass to ask the Engine for its pid */
    if (rc == 0 && cgroup_stats_read(ds->cg, s->cg, host, &st, &err) == 0)
        goto got;
    cgroup_stats_close(ds->cg, s->cg);
    s->cg = NULL;
    if ((err.code == BERTH_NOT_FOUND || err.code == BERTH_FAILED_PRECONDITION) &&
        s->source == DOCKER_SOURCE_CGROUP && s->cg_read_once &&
        ++s->cg_misses < DOCKER_CGROUP_MISSES) {
        s->cg_retry_at_ms = berth_now_ms() + DOCKER_CGROUP_REOPEN_MS;
        s->answered = 1;
        return;
    }
    docker_cg_to_engine(s, &err);
    return;
got:
    if (s->source == DOCKER_SOURCE_ENGINE) {
        log_debug("stats.source", "container_id=%s source=cgroup", s->id);
        docker_stats_close(ds, s, 0, docker_stats_cut_outcome(s));
        s->source = DOCKER_SOURCE_CGROUP;
    }
    s->cg_read_once = 1;
    s->cg_misses = 0;
    s->sample = st;
    s->fresh = 1;
    s->failed = 0;
    s->answered = 1;
}

/* Open s's files: from the layout, else (their cgroup not found there)
 * through the container's pid, asked of the Engine once while the pass
 * still may. 0 opened, -1 not (err says why), 1 deferred to a later pass. */
static int docker_cg_open(struct docker_stats *ds, struct docker_stream *s, unsigned *inspects,
                          int64_t deadline, struct berth_err *err)
{
    int pid = 0;

    if (cgroup_stats_open(ds->cg, &ds->layout, s->id, 0, &s->cg, err) == 0)
        return 0;
    if (err->code != BERTH_NOT_FOUND || s->inspected)
        return -1;
    if (*inspects == 0)
        return 1;
    (*inspects)--;
    s->inspected = 1;
    if (docker_cg_inspect_pid(ds, s->id, deadline, &pid) < 0)
        return -1;
    berth_err_clear(err);
    return cgroup_stats_open(ds->cg, &ds->layout, s->id, pid, &s->cg, err) == 0 ? 0 : -1;
}

/* Sample s through its Engine stream from now on (opened in this loop),
 * trying its files again later. */
static void docker_cg_to_engine(struct docker_stream *s, const struct berth_err *why)
{
    if (s->source != DOCKER_SOURCE_ENGINE) {
        log_debug("stats.source", "container_id=%s source=engine reason=\"%s\"", s->id, why->msg);
        s->source = DOCKER_SOURCE_ENGINE;
        s->retry_at_ms = 0;
        s->answered = 0;
    }
    /* A container whose files were read once may have moved (a restart):
     * its pid may be asked again. */
    if (s->cg_read_once)
        s->inspected = 0;
    s->cg_misses = 0;
    s->cg_retry_at_ms = berth_now_ms() + DOCKER_CGROUP_RETRY_MS;
}

/* The Engine's cgroup driver and version (GET /info); when it does not
 * answer, both drivers are tried and the version is read off the cgroup
 * root until it does. */
static void docker_cg_learn_layout(struct docker_stats *ds, int64_t deadline)
{
    struct engine_response resp;
    struct berth_err err;
    cJSON *root = NULL;
    const cJSON *driver, *version;

    engine_response_init(&resp);
    berth_err_clear(&err);
    ds->info_retry_at_ms = berth_now_ms() + DOCKER_CGROUP_INFO_RETRY_MS;
    if (engine_request(ds->c->engine, "GET", "/info", NULL, deadline, &resp, &err) < 0 ||
        resp.status != 200 ||
        !cJSON_IsObject(root = cJSON_ParseWithLength(resp.body.data, resp.body.len))) {
        log_debug("stats.error", "error=\"engine info unavailable: %s\" status=%d", err.msg,
                  resp.status);
        goto out;
    }
    driver = cJSON_GetObjectItemCaseSensitive(root, "CgroupDriver");
    version = cJSON_GetObjectItemCaseSensitive(root, "CgroupVersion");
    ds->layout.driver = CGROUP_STATS_DRIVER_UNKNOWN;
    if (cJSON_IsString(driver) && strcmp(driver->valuestring, "cgroupfs") == 0)
        ds->layout.driver = CGROUP_STATS_DRIVER_CGROUPFS;
    else if (cJSON_IsString(driver) && strcmp(driver->valuestring, "systemd") == 0)
        ds->layout.driver = CGROUP_STATS_DRIVER_SYSTEMD;
    ds->layout.version = 0; /* engines before API 1.40 say nothing: the root tells */
    if (cJSON_IsString(version) && strcmp(version->valuestring, "1") == 0)
        ds->layout.version = 1;
    else if (cJSON_IsString(version) && strcmp(version->valuestring, "2") == 0)
        ds->layout.version = 2;
    ds->layout_known = 1;
    log_debug("stats.layout", "cgroup_driver=%s cgroup_version=%d",
              cJSON_IsString(driver) ? driver->valuestring : "unknown", ds->layout.version);
out:
    cJSON_Delete(root);
    engine_response_release(&resp);
}

/* The pid of container `id`'s init (GET /containers/{id}/json, State.Pid):
 * 0 with *pid > 0, or -1. */
static int docker_cg_inspect_pid(struct docker_stats *ds, const char *id, int64_t deadline,
                                 int *pid)
{
    struct engine_response resp;
    struct berth_err err;
    struct buf path;
    cJSON *root = NULL;
    const cJSON *p;
    int rc = -1;

    engine_response_init(&resp);
    buf_init(&path, DOCKER_PATH_MAX);
    berth_err_clear(&err);
    if (buf_appends(&path, "/containers/", &err) < 0 ||
        engine_append_escaped(&path, id, &err) < 0 || buf_appends(&path, "/json", &err) < 0 ||
        engine_request(ds->c->engine, "GET", path.data, NULL, deadline, &resp, &err) < 0 ||
        resp.status != 200)
        goto out;
    root = cJSON_ParseWithLength(resp.body.data, resp.body.len);
    p = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "State"), "Pid");
    if (cJSON_IsNumber(p) && p->valuedouble >= 1 && p->valuedouble <= 2147483647.0) {
        *pid = (int)p->valuedouble;
        rc = 0;
    }
out:
    cJSON_Delete(root);
    buf_release(&path);
    engine_response_release(&resp);
    return rc;
}
