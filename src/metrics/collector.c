/* The metrics collector (see berth/collector.h): one thread, one curl multi
 * handle, one streaming stats connection per RUNNING VM. The Engine samples
 * every subscribed container in one loop and then sleeps a second, so a
 * stream per VM gets a sample a second for all of them at once, where
 * one-shot calls made one after another would wait a second each. Each
 * stream is counted with the Engine calls when it ends, like /events. */
#include "berth/collector.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "berth/buf.h"
#include "berth/clock.h"
#include "berth/engine_client.h"
#include "berth/log.h"
#include "berth/stats.h"

/* How often the registry is read for VMs that started, paused or stopped. */
#define COLLECTOR_RECONCILE_MS 500
/* Longest wait in curl_multi_poll; the loop also wakes for the next stall
 * deadline or reopen, so this only bounds how late a registry read is. */
#define COLLECTOR_POLL_MS 250
/* The Engine's sample period: its one-second sleep (plus the time its loop
 * takes). A stream's first sample comes with the Engine's next loop, up to
 * this long after it opened. */
#define COLLECTOR_ENGINE_PERIOD_MS 1000
/* No stream is declared stalled sooner: a healthy one is silent for about
 * COLLECTOR_ENGINE_PERIOD_MS between samples, more when the Engine is busy
 * (its loop over 200 running containers took up to 1.8 s here; a tighter
 * floor cut healthy streams and the reopens made samples older, not newer). */
#define COLLECTOR_STALL_MIN_MS 3000
/* A stream that stalls again before any sample gets twice the time, up to
 * max(stall limit, this), so an Engine slower than the floor still gets
 * through instead of being cut off before every first sample. */
#define COLLECTOR_STALL_MAX_MS 8000
/* Wait this long before reopening a stream that ended or failed: longer
 * would only age the cache, shorter would hammer a failing Engine. */
#define COLLECTOR_RETRY_MS 1000
/* The operation stats streams are counted under (ids are masked anyway). */
#define COLLECTOR_STATS_PATH "/containers/{id}/stats"
/* Kept of a non-200 answer, for the log line. */
#define COLLECTOR_ERRBODY_MAX 2048
/* Connecting to the Engine socket never takes longer. */
#define COLLECTOR_CONNECT_MS 1000

/* One VM's stats stream. Owned by the collector thread; nothing else sees it. */
struct collector_stream {
    struct collector *c; /* back pointer */
    char *vm_id;         /* owned */
    char *container_id;  /* owned */
    CURL *h;             /* owned; NULL while closed (waiting to reopen) */
    struct buf line;     /* the partial line of the stream */
    struct buf errbody;  /* a non-200 answer's body */
    /* CPU reading of the last sample, kept across reopens and pauses (a
     * new start of the container drops it): the base of a stream's first
     * sample, which carries no precpu_stats of its own. */
    struct stats_cpu prev;
    int64_t started_ms;   /* the VM's start time (unix ms) `prev` belongs to; 0 unknown */
    int64_t opened_ms;    /* monotonic */
    int64_t opened_us;    /* monotonic: for the Engine call counters */
    int64_t last_data_ms; /* monotonic: last sample, 0 none yet */
    int64_t retry_at_ms;  /* monotonic: reopen no earlier than this */
    int64_t stall_ms;     /* silence that counts as a stall now (backs off) */
    int pending;          /* owes the current sweep a sample */
    int seen;             /* in the last registry read (any state) */
    int running;          /* RUNNING in the last registry read: keep a stream open */
    int bad;              /* a callback failed; the transfer was aborted */
    char errbuf[CURL_ERROR_SIZE];
};

struct collector {
    /* Immutable after collector_start. */
    char *socket_path;
    int64_t interval_ms;
    int64_t stall_ms;           /* collector_stall_limit_ms(interval_ms) */
    struct vm_registry *vms;    /* borrowed */
    struct engine_stats *stats; /* borrowed, may be NULL: counts the streams */
    pthread_t thread;

    /* Collector thread only (start and stop run before and after it). */
    struct engine *engine;             /* for the API version; owned */
    char api_version[16];              /* "1.41", "" until known */
    CURLM *multi;                      /* owned */
    struct collector_stream **streams; /* owned, each owned */
    size_t n_streams, cap_streams;
    int sweep_active;
    int64_t sweep_start_ms;
    size_t sweep_pending;

    /* Shared: atomics, read by /metrics from any thread. */
    atomic_int stop;
    _Atomic uint64_t sweeps;
    _Atomic uint64_t errors;
    _Atomic uint64_t streams_open;
    _Atomic int64_t last_sweep_us;
};

static void *collector_main(void *arg);
static void collector_reconcile(struct collector *c);
static void collector_open_due(struct collector *c, int64_t now);
static int collector_need_version(struct collector *c);
static struct collector_stream *collector_find(struct collector *c, const char *vm_id);
static struct collector_stream *collector_add(struct collector *c, const char *vm_id,
                                              const char *container_id);
static void collector_drop(struct collector *c, size_t i);
static int collector_open(struct collector *c, struct collector_stream *s, int64_t now);
static void collector_close(struct collector *c, struct collector_stream *s, int64_t retry_at,
                            enum engine_outcome outcome);
static enum engine_outcome collector_outcome(CURLcode rc, long status);
static enum engine_outcome collector_cut_outcome(const struct collector_stream *s);
static size_t collector_on_write(char *data, size_t size, size_t nmemb, void *userp);
static void collector_on_line(struct collector_stream *s, const char *line, size_t len);
static void collector_done(struct collector *c);
static void collector_check_stalls(struct collector *c, int64_t now);
static long collector_wait_ms(struct collector *c, int64_t now, int64_t next_reconcile);
static void collector_sweep_tick(struct collector *c, int64_t now);
static void collector_delivered(struct collector *c, struct collector_stream *s);
static void collector_error(struct collector *c, const struct collector_stream *s,
                            const char *what);

/* --- start and stop --------------------------------------------------------- */

int64_t collector_stall_limit_ms(int64_t interval_ms)
{
    int64_t limit = interval_ms - COLLECTOR_ENGINE_PERIOD_MS;

    return limit > COLLECTOR_STALL_MIN_MS ? limit : COLLECTOR_STALL_MIN_MS;
}

int collector_start(const struct collector_config *cfg, struct vm_registry *vms,
                    struct collector **out, struct berth_err *err)
{
    struct collector *c = calloc(1, sizeof(*c));

    if (c == NULL)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    c->vms = vms;
    c->interval_ms = cfg->interval_ms > 0 ? cfg->interval_ms : 1000;
    c->stall_ms = collector_stall_limit_ms(c->interval_ms);
    c->stats = cfg->engine_stats;
    atomic_init(&c->stop, 0);
    c->socket_path = strdup(cfg->socket_path != NULL ? cfg->socket_path : "");
    if (c->socket_path == NULL) {
        berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        goto fail;
    }
    if (engine_new(c->socket_path, &c->engine, err) < 0)
        goto fail;
    engine_set_stats(c->engine, cfg->engine_stats);
    c->multi = curl_multi_init();
    if (c->multi == NULL) {
        berth_err_set(err, BERTH_INTERNAL, "cannot create a curl multi handle");
        goto fail;
    }
    if (pthread_create(&c->thread, NULL, collector_main, c) != 0) {
        berth_err_set(err, BERTH_INTERNAL, "cannot start the metrics collector thread");
        goto fail;
    }
    log_info("collector.started", "interval_ms=%lld stall_ms=%lld", (long long)c->interval_ms,
             (long long)c->stall_ms);
    *out = c;
    return 0;
fail:
    if (c->multi != NULL)
        curl_multi_cleanup(c->multi);
    engine_free(c->engine);
    free(c->socket_path);
    free(c);
    return -1;
}

void collector_stop(struct collector *c)
{
    if (c == NULL)
        return;
    atomic_store(&c->stop, 1);
    curl_multi_wakeup(c->multi);
    pthread_join(c->thread, NULL);
    while (c->n_streams > 0)
        collector_drop(c, c->n_streams - 1);
    free(c->streams);
    curl_multi_cleanup(c->multi);
    engine_free(c->engine);
    free(c->socket_path);
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

/* Read the registry now and then; otherwise let curl deliver samples,
 * waking for the next stall deadline or reopen as well. */
static void *collector_main(void *arg)
{
    struct collector *c = arg;
    int64_t next_reconcile = 0;

    while (!atomic_load(&c->stop)) {
        int64_t now = berth_now_ms();
        int running = 0;

        if (now >= next_reconcile) {
            collector_reconcile(c);
            next_reconcile = now + COLLECTOR_RECONCILE_MS;
        }
        collector_check_stalls(c, now);
        collector_open_due(c, now);
        if (curl_multi_perform(c->multi, &running) != CURLM_OK)
            collector_error(c, NULL, "curl multi perform failed");
        collector_done(c);
        now = berth_now_ms();
        collector_sweep_tick(c, now);
        if (curl_multi_poll(c->multi, NULL, 0, (int)collector_wait_ms(c, now, next_reconcile),
                            NULL) != CURLM_OK)
            collector_error(c, NULL, "curl multi poll failed");
    }
    return NULL;
}

/* Make the set of streams match the registry: the registry is copied under
 * its lock (vm_registry_list), compared here without it. RUNNING VMs get a
 * stream (opened by collector_open_due); paused and stopped ones have theirs
 * closed but keep their entry, and with it the last CPU reading; deleted
 * or recreated ones are forgotten. */
static void collector_reconcile(struct collector *c)
{
    struct vm_snapshot *list = NULL;
    struct berth_err err;
    size_t n = 0;

    berth_err_clear(&err);
    if (vm_registry_list(c->vms, &list, &n, &err) < 0) {
        collector_error(c, NULL, "registry list failed");
        return;
    }
    for (size_t i = 0; i < c->n_streams; i++)
        c->streams[i]->seen = 0;
    for (size_t i = 0; i < n; i++) {
        const struct vm_snapshot *vm = &list[i];
        struct collector_stream *s;

        if (vm->container_id == NULL || vm->container_id[0] == '\0')
            continue;
        s = collector_find(c, vm->id);
        if (s != NULL && strcmp(s->container_id, vm->container_id) != 0)
            s = NULL; /* recreated under the same id: the old entry goes below */
        if (s == NULL && vm->state != VM_STATE_RUNNING)
            continue;
        if (s == NULL) {
            s = collector_add(c, vm->id, vm->container_id);
            if (s == NULL) {
                collector_error(c, NULL, "out of memory");
                continue;
            }
        }
        s->seen = 1;
        s->running = vm->state == VM_STATE_RUNNING;
        /* Started again: its CPU counters began anew. 0 is "not known". */
        if (vm->started_unix_ms != 0 && s->started_ms != 0 && vm->started_unix_ms != s->started_ms)
            memset(&s->prev, 0, sizeof(s->prev));
        if (vm->started_unix_ms != 0)
            s->started_ms = vm->started_unix_ms;
    }
    /* Paused or stopped: keep their last values, stop sampling (and keep
     * only the small entry). Deleted: forget them. */
    for (size_t i = c->n_streams; i-- > 0;) {
        struct collector_stream *s = c->streams[i];

        if (!s->seen) {
            collector_drop(c, i);
        } else if (!s->running && s->h != NULL) {
            collector_close(c, s, 0, collector_cut_outcome(s));
            buf_release(&s->line);
            buf_release(&s->errbody);
        }
    }
    vm_snapshot_list_free(list, n);
}

/* Open the stream of every RUNNING VM that has none and whose retry time
 * came: right after a stall, a second after a failure. */
static void collector_open_due(struct collector *c, int64_t now)
{
    int have_version = -1; /* -1: not asked yet this round */

    for (size_t i = 0; i < c->n_streams; i++) {
        struct collector_stream *s = c->streams[i];

        if (!s->running || s->h != NULL || now < s->retry_at_ms)
            continue;
        if (have_version < 0)
            have_version = collector_need_version(c);
        if (!have_version) {
            s->retry_at_ms = now + COLLECTOR_RETRY_MS; /* the Engine did not answer */
            continue;
        }
        if (collector_open(c, s, now) < 0) {
            collector_error(c, s, "cannot open a stats stream");
            s->retry_at_ms = now + COLLECTOR_RETRY_MS;
        }
    }
}

/* 1 once the Engine's API version is known (asked now if needed), else 0. */
static int collector_need_version(struct collector *c)
{
    struct berth_err err;

    if (c->api_version[0] != '\0')
        return 1;
    berth_err_clear(&err);
    if (engine_api_version(c->engine, berth_now_ms() + 1000, c->api_version, sizeof(c->api_version),
                           &err) < 0) {
        c->api_version[0] = '\0';
        atomic_fetch_add(&c->errors, 1);
        log_debug("collector.version", "code=%s error=\"%s\"", berth_code_name(err.code), err.msg);
        return 0;
    }
    return 1;
}

/* --- the stream table -------------------------------------------------------- */

static struct collector_stream *collector_find(struct collector *c, const char *vm_id)
{
    for (size_t i = 0; i < c->n_streams; i++)
        if (c->streams[i]->seen == 0 && strcmp(c->streams[i]->vm_id, vm_id) == 0)
            return c->streams[i];
    return NULL;
}

/* A closed stream for a VM, ready to open; NULL when out of memory. */
static struct collector_stream *collector_add(struct collector *c, const char *vm_id,
                                              const char *container_id)
{
    struct collector_stream *s;

    if (c->n_streams == c->cap_streams) {
        size_t cap = c->cap_streams ? c->cap_streams * 2 : 16;
        struct collector_stream **grown = realloc(c->streams, cap * sizeof(*grown));

        if (grown == NULL)
            return NULL;
        c->streams = grown;
        c->cap_streams = cap;
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->c = c;
    s->vm_id = strdup(vm_id);
    s->container_id = strdup(container_id);
    if (s->vm_id == NULL || s->container_id == NULL) {
        free(s->vm_id);
        free(s->container_id);
        free(s);
        return NULL;
    }
    buf_init(&s->line, ENGINE_LINE_MAX);
    buf_init(&s->errbody, COLLECTOR_ERRBODY_MAX);
    s->stall_ms = c->stall_ms;
    c->streams[c->n_streams++] = s;
    return s;
}

/* Close and forget stream i (order is not kept). */
static void collector_drop(struct collector *c, size_t i)
{
    struct collector_stream *s = c->streams[i];

    collector_close(c, s, 0, collector_cut_outcome(s));
    buf_release(&s->line);
    buf_release(&s->errbody);
    free(s->vm_id);
    free(s->container_id);
    free(s);
    c->streams[i] = c->streams[--c->n_streams];
}

/* Start GET /v<api>/containers/<id>/stats?stream=true on the multi handle. */
static int collector_open(struct collector *c, struct collector_stream *s, int64_t now)
{
    struct buf url;
    CURL *h = NULL;
    int bad = 0, rc = -1;

    buf_init(&url, 4096);
    if (buf_printf(&url, NULL, "http://localhost/v%s/containers/", c->api_version) < 0 ||
        engine_append_escaped(&url, s->container_id, NULL) < 0 ||
        buf_appends(&url, "/stats?stream=true", NULL) < 0)
        goto out;
    h = curl_easy_init();
    if (h == NULL)
        goto out;
    s->errbuf[0] = '\0';
    bad |= curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, c->socket_path) != CURLE_OK;
    bad |= curl_easy_setopt(h, CURLOPT_URL, url.data) != CURLE_OK;
    bad |= curl_easy_setopt(h, CURLOPT_PROXY, "") != CURLE_OK;
    bad |= curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)COLLECTOR_CONNECT_MS) != CURLE_OK;
    bad |= curl_easy_setopt(h, CURLOPT_USERAGENT, "berthd") != CURLE_OK;
    bad |= curl_easy_setopt(h, CURLOPT_ERRORBUFFER, s->errbuf) != CURLE_OK;
    bad |= curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collector_on_write) != CURLE_OK;
    bad |= curl_easy_setopt(h, CURLOPT_WRITEDATA, s) != CURLE_OK;
    bad |= curl_easy_setopt(h, CURLOPT_PRIVATE, s) != CURLE_OK;
    if (bad || curl_multi_add_handle(c->multi, h) != CURLM_OK)
        goto out;
    s->h = h;
    h = NULL;
    buf_reset(&s->line);
    buf_reset(&s->errbody);
    s->bad = 0;
    s->opened_ms = now;
    s->opened_us = berth_now_us();
    s->last_data_ms = 0;
    atomic_fetch_add(&c->streams_open, 1);
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
static void collector_close(struct collector *c, struct collector_stream *s, int64_t retry_at,
                            enum engine_outcome outcome)
{
    if (s->pending)
        collector_delivered(c, s); /* nothing more is coming this sweep */
    if (s->h != NULL) {
        if (c->stats != NULL)
            engine_stats_record(c->stats, "GET", COLLECTOR_STATS_PATH, outcome,
                                berth_now_us() - s->opened_us);
        curl_multi_remove_handle(c->multi, s->h);
        curl_easy_cleanup(s->h);
        s->h = NULL;
        atomic_fetch_sub(&c->streams_open, 1);
    }
    s->retry_at_ms = retry_at;
}

/* The outcome of a transfer that ended, as the Engine client counts it. */
static enum engine_outcome collector_outcome(CURLcode rc, long status)
{
    if (rc != CURLE_OK || status == 0)
        return ENGINE_OUTCOME_TRANSPORT_ERROR;
    if (status >= 500)
        return ENGINE_OUTCOME_SERVER_ERROR;
    if (status >= 400)
        return ENGINE_OUTCOME_CLIENT_ERROR;
    return ENGINE_OUTCOME_OK;
}

/* The outcome of a stream we end ourselves (its VM stopped, the daemon
 * stops): whatever the Engine answered; no answer yet is a transport error. */
static enum engine_outcome collector_cut_outcome(const struct collector_stream *s)
{
    long status = 0;

    if (s->h != NULL)
        curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &status);
    return collector_outcome(CURLE_OK, status);
}

/* --- samples ------------------------------------------------------------------- */

/* curl's body callback: cut a 200 stream into lines; keep any other body
 * for the log. Returning less than given aborts the transfer. */
static size_t collector_on_write(char *data, size_t size, size_t nmemb, void *userp)
{
    struct collector_stream *s = userp;
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
            collector_on_line(s, s->line.data, s->line.len);
        buf_reset(&s->line);
    }
    return n;
}

/* One stats object: convert it and write it to the registry (which takes
 * the registry lock for the copy only). Every sample is published, the
 * first of a stream too: its CPU comes from the reading kept from the
 * stream before, or is 0 when there is none (a VM's first second). */
static void collector_on_line(struct collector_stream *s, const char *line, size_t len)
{
    struct collector *c = s->c;
    cJSON *root = cJSON_ParseWithLength(line, len);
    struct vm_metrics m;
    struct stats_cpu cur;
    int rc;

    rc = stats_convert(root, &s->prev, berth_unix_ms(), &m, &cur);
    cJSON_Delete(root);
    if (rc < 0) {
        collector_error(c, s, "stats sample is not a JSON object");
        return;
    }
    s->last_data_ms = berth_now_ms();
    s->stall_ms = c->stall_ms;
    if (rc != STATS_EMPTY) {
        (void)vm_registry_set_metrics(c->vms, s->vm_id, &m); /* -1: deleted meanwhile */
        s->prev = cur;
    }
    if (s->pending)
        collector_delivered(c, s);
}

/* Streams that ended: the container stopped, or the Engine failed. */
static void collector_done(struct collector *c)
{
    CURLMsg *msg;
    int left;

    while ((msg = curl_multi_info_read(c->multi, &left)) != NULL) {
        struct collector_stream *s = NULL;
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
            collector_error(c, s, what);
        }
        collector_close(c, s, berth_now_ms() + COLLECTOR_RETRY_MS,
                        collector_outcome(msg->data.result, status));
    }
}

/* A stream silent for its stall limit is reopened at once (its kept CPU
 * reading makes the new stream's first sample a full one): with the limit
 * at interval - one Engine period, the new sample arrives before the
 * cached one is older than the interval (berth/collector.h). Silence
 * counts as a transport error of the call. */
static void collector_check_stalls(struct collector *c, int64_t now)
{
    int64_t max_ms = c->stall_ms > COLLECTOR_STALL_MAX_MS ? c->stall_ms : COLLECTOR_STALL_MAX_MS;

    for (size_t i = 0; i < c->n_streams; i++) {
        struct collector_stream *s = c->streams[i];
        int64_t since;

        if (s->h == NULL)
            continue;
        since = s->last_data_ms ? s->last_data_ms : s->opened_ms;
        if (now - since <= s->stall_ms)
            continue;
        collector_error(c, s, "stats stream stalled");
        collector_close(c, s, now, ENGINE_OUTCOME_TRANSPORT_ERROR);
        /* Silent again before a first sample: give the next one longer. */
        if (s->last_data_ms == 0)
            s->stall_ms = s->stall_ms * 2 < max_ms ? s->stall_ms * 2 : max_ms;
    }
}

/* How long the loop may sleep in curl_multi_poll: until the next registry
 * read, stall deadline, reopen or sweep, at most COLLECTOR_POLL_MS. */
static long collector_wait_ms(struct collector *c, int64_t now, int64_t next_reconcile)
{
    int64_t until = next_reconcile;

    for (size_t i = 0; i < c->n_streams; i++) {
        const struct collector_stream *s = c->streams[i];
        int64_t at;

        if (s->h != NULL)
            at = (s->last_data_ms ? s->last_data_ms : s->opened_ms) + s->stall_ms + 1;
        else if (s->running)
            at = s->retry_at_ms;
        else
            continue;
        if (at < until)
            until = at;
    }
    if (!c->sweep_active && c->sweep_start_ms + c->interval_ms < until)
        until = c->sweep_start_ms + c->interval_ms;
    if (until - now > COLLECTOR_POLL_MS)
        return COLLECTOR_POLL_MS;
    return until > now ? (long)(until - now) : 0;
}

/* A sweep starts at most once an interval and ends when every stream open
 * at its start delivered a fresh sample: its duration is the age a cached
 * sample can reach beyond the Engine's own one-second loop. */
static void collector_sweep_tick(struct collector *c, int64_t now)
{
    size_t pending = 0;

    if (c->sweep_active || now - c->sweep_start_ms < c->interval_ms)
        return;
    for (size_t i = 0; i < c->n_streams; i++) {
        struct collector_stream *s = c->streams[i];

        s->pending = s->h != NULL;
        pending += (size_t)s->pending;
    }
    c->sweep_start_ms = now;
    c->sweep_pending = pending;
    c->sweep_active = pending > 0;
}

static void collector_delivered(struct collector *c, struct collector_stream *s)
{
    s->pending = 0;
    if (!c->sweep_active || c->sweep_pending == 0)
        return;
    if (--c->sweep_pending == 0) {
        atomic_store(&c->last_sweep_us, (berth_now_ms() - c->sweep_start_ms) * 1000);
        atomic_fetch_add(&c->sweeps, 1);
        c->sweep_active = 0;
    }
}

static void collector_error(struct collector *c, const struct collector_stream *s, const char *what)
{
    atomic_fetch_add(&c->errors, 1);
    if (s == NULL) {
        log_debug("collector.error", "error=\"%s\"", what);
        return;
    }
    log_debug("collector.error", "vm_id=%s error=\"%s\" detail=\"%s%s\"", s->vm_id, what, s->errbuf,
              s->errbody.data ? s->errbody.data : "");
}
