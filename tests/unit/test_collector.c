/* The metrics collector against a fake Engine: the stall limit for a range
 * of intervals, a silent stream reopened within it, every sample published
 * (a stream's first too), the CPU reading kept across a reopen and a pause
 * but not across a new start, and each stream counted as an Engine call. */
#include <math.h>
#include <time.h>

#include "berth/clock.h"
#include "berth/collector.h"
#include "berth/engine_client.h"
#include "berth/stats.h"
#include "berth/vm_registry.h"
#include "fake_engine.h"
#include "testlib.h"

#define INTERVAL_MS 1000
#define STALL_MS 3000 /* collector_stall_limit_ms(INTERVAL_MS) */
/* What a loaded machine (sanitizers, parallel tests) may add to a wait. */
#define SLACK_MS 700
#define STATS_OP "GET /containers/{id}/stats"

/* Two samples one "second" of host time apart, neither with precpu_stats
 * (as every first sample of a stream): between them the container used
 * one of two CPUs, 100 %. C is from a restarted container (counters anew). */
#define SAMPLE_A                                                                                   \
    "{\"read\":\"2024-03-01T12:00:01Z\",\"cpu_stats\":{\"cpu_usage\":{\"total_usage\":"            \
    "1000000000},\"system_cpu_usage\":10000000000000,\"online_cpus\":2},\"precpu_stats\":"         \
    "{\"cpu_usage\":{\"total_usage\":0}},\"memory_stats\":{\"usage\":1048576}}\n"
#define SAMPLE_B                                                                                   \
    "{\"read\":\"2024-03-01T12:00:05Z\",\"cpu_stats\":{\"cpu_usage\":{\"total_usage\":"            \
    "2000000000},\"system_cpu_usage\":10002000000000,\"online_cpus\":2},\"precpu_stats\":"         \
    "{\"cpu_usage\":{\"total_usage\":0}},\"memory_stats\":{\"usage\":2097152}}\n"
#define SAMPLE_C                                                                                   \
    "{\"read\":\"2024-03-01T12:00:09Z\",\"cpu_stats\":{\"cpu_usage\":{\"total_usage\":"            \
    "3000000000},\"system_cpu_usage\":10004000000000,\"online_cpus\":2},\"precpu_stats\":"         \
    "{\"cpu_usage\":{\"total_usage\":0}},\"memory_stats\":{\"usage\":4194304}}\n"

struct limit_row {
    const char *desc;
    int64_t interval_ms;
    int64_t stall_ms;
};

static const struct limit_row limit_rows[] = {
    {"one second: the floor, above a busy Engine's period", 1000, 3000},
    {"four seconds: still the floor", 4000, 3000},
    {"just above the floor", 4100, 3100},
    {"the default five seconds: one Engine period less", 5000, 4000},
    {"an hour: one Engine period less", 3600000, 3599000},
};

static void test_stall_limit(void)
{
    for (size_t i = 0; i < sizeof(limit_rows) / sizeof(limit_rows[0]); i++) {
        const struct limit_row *r = &limit_rows[i];
        int64_t got = collector_stall_limit_ms(r->interval_ms);

        CHECK_MSG(got == r->stall_ms, "%s: %lld, want %lld", r->desc, (long long)got,
                  (long long)r->stall_ms);
        /* A stall plus the Engine's next sample stays within the interval. */
        CHECK_MSG(r->interval_ms < 4000 || got + 1000 <= r->interval_ms, "%s", r->desc);
    }
}

/* A short pause inside a wait with a deadline. */
static void nap(void)
{
    struct timespec ts = {0, 5 * 1000 * 1000};

    nanosleep(&ts, NULL);
}

/* Wait until `n` stats requests reached the fake Engine; 0, or -1 at the
 * deadline (monotonic ms). */
static int wait_reqs(struct fake_engine *fe, size_t n, int64_t deadline)
{
    int rc = 0;

    pthread_mutex_lock(&fe->mu);
    while (fe->n_reqs < n && rc == 0) {
        struct timespec ts;
        int64_t left = berth_deadline_left_ms(deadline);

        if (left == 0) {
            rc = -1;
            break;
        }
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += left / 1000;
        ts.tv_nsec += (left % 1000) * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&fe->cv, &fe->mu, &ts);
    }
    pthread_mutex_unlock(&fe->mu);
    return rc;
}

/* Wait until the registry holds the sample read at `read` (RFC 3339); its
 * metrics into *out. 0, or -1 at the deadline. */
static int wait_sample(struct vm_registry *r, const char *id, const char *read, int64_t deadline,
                       struct vm_metrics *out)
{
    int64_t want = stats_parse_time_ms(read);

    for (;;) {
        struct vm_snapshot snap;
        struct berth_err err;
        int found = 0;

        berth_err_clear(&err);
        if (vm_registry_get(r, id, &snap, &err) == 0) {
            found = snap.metrics.sampled_at_unix_ms == want;
            if (found)
                *out = snap.metrics;
            vm_snapshot_release(&snap);
        }
        if (found)
            return 0;
        if (berth_now_ms() >= deadline)
            return -1;
        nap();
    }
}

/* Wait until the stats streams were counted at least ok / transport times.
 * 0, or -1 at the deadline; the last counts seen into *ok and *transport. */
static int wait_counted(struct engine_stats *st, uint64_t ok, uint64_t transport, int64_t deadline,
                        uint64_t *got_ok, uint64_t *got_transport)
{
    for (;;) {
        struct engine_op_stats *ops = NULL;
        size_t n = 0;

        *got_ok = *got_transport = 0;
        if (engine_stats_snapshot(st, &ops, &n) == 0) {
            for (size_t i = 0; i < n; i++) {
                if (strcmp(ops[i].op, STATS_OP) != 0)
                    continue;
                *got_ok = ops[i].by_outcome[ENGINE_OUTCOME_OK];
                *got_transport = ops[i].by_outcome[ENGINE_OUTCOME_TRANSPORT_ERROR];
            }
            free(ops);
        }
        if (*got_ok >= ok && *got_transport >= transport)
            return 0;
        if (berth_now_ms() >= deadline)
            return -1;
        nap();
    }
}

struct rig {
    struct fake_engine fe;
    struct vm_registry *vms;
    struct engine_stats *stats;
    struct collector *c;
};

/* A fake Engine, a registry with one RUNNING VM "vm-1" (container "c1")
 * and a collector at INTERVAL_MS; the replies are queued by the caller
 * before rig_start_collector. */
static void rig_init(struct rig *g)
{
    struct vm_snapshot init;
    struct vm_record *rec = NULL;
    struct berth_err err;

    memset(g, 0, sizeof(*g));
    fe_init(&g->fe);
    fe_start(&g->fe);
    g->vms = vm_registry_new();
    g->stats = engine_stats_new();
    if (g->vms == NULL || g->stats == NULL)
        abort();
    memset(&init, 0, sizeof(init));
    init.id = "vm-1";
    init.container_id = "c1";
    init.state = VM_STATE_RUNNING;
    init.started_unix_ms = 1000;
    berth_err_clear(&err);
    if (vm_registry_reserve(g->vms, &init, &rec, &err) < 0)
        abort();
    vm_registry_publish(g->vms, rec);
    vm_registry_release(g->vms, rec);
}

static void rig_start_collector(struct rig *g)
{
    struct collector_config cfg = {g->fe.sock, INTERVAL_MS, g->stats};
    struct berth_err err;

    berth_err_clear(&err);
    CHECK_MSG(collector_start(&cfg, g->vms, &g->c, &err) == 0, "%s", err.msg);
}

static void rig_release(struct rig *g)
{
    collector_stop(g->c);
    vm_registry_free(g->vms);
    engine_stats_free(g->stats);
    fe_stop(&g->fe);
}

/* A stream that goes silent after its first sample: that sample is
 * published at once (cpu 0: nothing to compare with), the stream is reopened
 * once the stall limit passed (not two intervals), and the new stream's
 * first sample gets its CPU from the reading kept from the old one. The
 * stalled stream counts as a transport error, the one that ended as ok. */
static void test_first_sample_and_stall(void)
{
    static const char *const a[] = {SAMPLE_A};
    static const char *const b[] = {SAMPLE_B};
    struct rig g;
    struct vm_metrics m;
    uint64_t ok = 0, transport = 0;
    int64_t t_a, t_reopen;
    char line[256];

    rig_init(&g);
    fe_reply_chunked(&g.fe, a, 1, 1);
    fe_reply_chunked(&g.fe, b, 1, 0);
    rig_start_collector(&g);

    CHECK(wait_sample(g.vms, "vm-1", "2024-03-01T12:00:01Z", berth_now_ms() + 5000, &m) == 0);
    t_a = berth_now_ms();
    CHECK_MSG(m.cpu_percent == 0.0, "cpu %f", m.cpu_percent);
    CHECK(m.memory_bytes == 1048576);
    CHECK_STR(fe_req_line(&g.fe, 0, line, sizeof(line)),
              "GET /v1.41/containers/c1/stats?stream=true");

    CHECK(wait_reqs(&g.fe, 2, t_a + STALL_MS + 5000) == 0);
    t_reopen = berth_now_ms();
    CHECK_MSG(t_reopen - t_a >= STALL_MS - 100 && t_reopen - t_a <= STALL_MS + SLACK_MS,
              "reopened %lld ms after the last sample, stall limit %d ms",
              (long long)(t_reopen - t_a), STALL_MS);
    CHECK_STR(fe_req_line(&g.fe, 1, line, sizeof(line)),
              "GET /v1.41/containers/c1/stats?stream=true");

    CHECK(wait_sample(g.vms, "vm-1", "2024-03-01T12:00:05Z", berth_now_ms() + 5000, &m) == 0);
    CHECK_MSG(fabs(m.cpu_percent - 100.0) < 1e-6, "cpu %f from the kept reading", m.cpu_percent);
    CHECK(m.memory_bytes == 2097152);

    CHECK_MSG(wait_counted(g.stats, 1, 1, berth_now_ms() + 5000, &ok, &transport) == 0,
              "%s ok=%llu transport_error=%llu", STATS_OP, (unsigned long long)ok,
              (unsigned long long)transport);
    rig_release(&g);
}

/* Paused, the stream is closed (and counted ok) but the VM's reading is
 * kept: resumed, the first sample has a real CPU figure. Started anew, the
 * container's counters restart, so the reading is dropped: cpu 0. */
static void test_pause_and_new_start(void)
{
    static const char *const a[] = {SAMPLE_A};
    static const char *const b[] = {SAMPLE_B};
    static const char *const c[] = {SAMPLE_C};
    struct vm_observed o = {"c1", VM_STATE_RUNNING, -1, -1, NULL};
    struct rig g;
    struct vm_metrics m;
    uint64_t ok = 0, transport = 0;

    rig_init(&g);
    fe_reply_chunked(&g.fe, a, 1, 1);
    rig_start_collector(&g);
    CHECK(wait_sample(g.vms, "vm-1", "2024-03-01T12:00:01Z", berth_now_ms() + 5000, &m) == 0);

    CHECK(vm_registry_set_state(g.vms, "vm-1", VM_STATE_PAUSED, 0, 0) == 0);
    CHECK_MSG(wait_counted(g.stats, 1, 0, berth_now_ms() + 5000, &ok, &transport) == 0,
              "the paused VM's stream closed: ok=%llu", (unsigned long long)ok);
    fe_reply_chunked(&g.fe, b, 1, 1);
    CHECK(vm_registry_set_state(g.vms, "vm-1", VM_STATE_RUNNING, 0, 0) == 0);
    CHECK(wait_sample(g.vms, "vm-1", "2024-03-01T12:00:05Z", berth_now_ms() + 5000, &m) == 0);
    CHECK_MSG(fabs(m.cpu_percent - 100.0) < 1e-6, "cpu %f after the pause", m.cpu_percent);

    /* Stopped (the start time goes) and started again (a new one). */
    CHECK(vm_registry_set_state(g.vms, "vm-1", VM_STATE_SHUTDOWN, 0, 0) == 0);
    CHECK_MSG(wait_counted(g.stats, 2, 0, berth_now_ms() + 5000, &ok, &transport) == 0,
              "the stopped VM's stream closed: ok=%llu", (unsigned long long)ok);
    fe_reply_chunked(&g.fe, c, 1, 1);
    CHECK(vm_registry_observe(g.vms, "vm-1", &o) == 0);
    CHECK(wait_sample(g.vms, "vm-1", "2024-03-01T12:00:09Z", berth_now_ms() + 5000, &m) == 0);
    CHECK_MSG(m.cpu_percent == 0.0, "cpu %f after a new start", m.cpu_percent);
    CHECK(transport == 0);
    rig_release(&g);
}

int main(void)
{
    struct berth_err err;

    berth_err_clear(&err);
    if (engine_global_init(&err) < 0)
        return 1;
    test_stall_limit();
    test_first_sample_and_stall();
    test_pause_and_new_start();
    engine_global_cleanup();
    return test_summary("test_collector");
}
