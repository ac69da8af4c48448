/* The metrics collector on the memory backend's fake stats: every sample
 * is written to the registry (a VM's first with cpu 0), the CPU figure
 * comes from the source's own earlier reading when it has one, else from
 * the VM's last reading, kept across a pause but not across a new start;
 * a paused VM is not swept; failures are counted; sweeps complete. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "berth/backend.h"
#include "berth/clock.h"
#include "berth/collector.h"
#include "berth/memory_backend.h"
#include "berth/vm_registry.h"
#include "testlib.h"

#define INTERVAL_MS 1000
#define WAIT_MS 5000

struct rig {
    struct backend b;
    struct vm_registry *vms;
    struct collector *c;
    char *container_id; /* owned */
};

/* A short pause inside a wait with a deadline. */
static void nap(void)
{
    struct timespec ts = {0, 5 * 1000 * 1000};

    nanosleep(&ts, NULL);
}

/* A sample of `total_ns` container CPU and `system_ns` host CPU on two
 * CPUs, taken at `at` (unix ms); precpu only when pre_total_ns > 0. */
static struct backend_stats sample(int64_t at, uint64_t total_ns, uint64_t system_ns,
                                   uint64_t pre_total_ns, uint64_t pre_system_ns, int64_t memory)
{
    struct backend_stats st;

    memset(&st, 0, sizeof(st));
    st.sampled_at_unix_ms = at;
    st.cpu = (struct backend_cpu){total_ns, system_ns, 2};
    if (pre_total_ns > 0)
        st.precpu = (struct backend_cpu){pre_total_ns, pre_system_ns, 2};
    st.memory_bytes = memory;
    st.rx_bytes = 7;
    st.write_ops = 3;
    return st;
}

/* Wait until the registry holds the sample taken at `at`; its metrics into
 * *out. 0, or -1 at the deadline. */
static int wait_sample(struct vm_registry *r, const char *id, int64_t at, struct vm_metrics *out)
{
    int64_t deadline = berth_now_ms() + WAIT_MS;

    for (;;) {
        struct vm_snapshot snap;
        struct berth_err err;
        int found = 0;

        berth_err_clear(&err);
        if (vm_registry_get(r, id, &snap, &err) == 0) {
            found = snap.metrics.sampled_at_unix_ms == at;
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

/* Wait until the collector's counters satisfy sweeps >= and errors >=. */
static int wait_counters(struct collector *c, uint64_t sweeps, uint64_t errors,
                         struct collector_stats *out)
{
    int64_t deadline = berth_now_ms() + WAIT_MS;

    for (;;) {
        collector_read_stats(c, out);
        if (out->sweeps >= sweeps && out->errors >= errors)
            return 0;
        if (berth_now_ms() >= deadline)
            return -1;
        nap();
    }
}

/* Wait until a collector round that began after this call has swept: the
 * second sweep from now (the first may belong to a round under way). */
static void wait_round(struct rig *g)
{
    uint64_t want = memory_backend_sweeps(&g->b) + 2;
    int64_t deadline = berth_now_ms() + WAIT_MS;

    while (memory_backend_sweeps(&g->b) < want && berth_now_ms() < deadline)
        nap();
    CHECK(memory_backend_sweeps(&g->b) >= want);
}

/* For a few collector rounds, the registry's sample of vm-1 stays the one
 * taken at `at`. */
static void check_frozen(struct vm_registry *r, int64_t at)
{
    int64_t until = berth_now_ms() + 600;

    while (berth_now_ms() < until) {
        struct vm_snapshot snap;
        struct berth_err err;

        berth_err_clear(&err);
        if (vm_registry_get(r, "vm-1", &snap, &err) == 0) {
            CHECK_MSG(snap.metrics.sampled_at_unix_ms == at, "swept while paused: %lld",
                      (long long)snap.metrics.sampled_at_unix_ms);
            vm_snapshot_release(&snap);
        }
        nap();
    }
}

/* The memory backend with one running container and a registry with its
 * RUNNING VM "vm-1"; the collector is started by the caller. */
static void rig_init(struct rig *g)
{
    struct backend_spec spec;
    struct vm_snapshot init;
    struct vm_record *rec = NULL;
    struct berth_err err;

    memset(g, 0, sizeof(*g));
    memset(&spec, 0, sizeof(spec));
    spec.name = "vm-1";
    spec.image = "busybox";
    berth_err_clear(&err);
    if (memory_backend_new(&g->b, &err) < 0 ||
        g->b.ops->create(g->b.ctx, &spec, BERTH_NO_DEADLINE, &g->container_id, &err) < 0 ||
        g->b.ops->start(g->b.ctx, g->container_id, BERTH_NO_DEADLINE, &err) < 0)
        abort();
    g->vms = vm_registry_new();
    if (g->vms == NULL)
        abort();
    memset(&init, 0, sizeof(init));
    init.id = "vm-1";
    init.container_id = g->container_id;
    init.state = VM_STATE_RUNNING;
    init.started_unix_ms = 1000;
    if (vm_registry_reserve(g->vms, &init, &rec, &err) < 0)
        abort();
    vm_registry_publish(g->vms, rec);
    vm_registry_release(g->vms, rec);
}

static void rig_start(struct rig *g)
{
    struct collector_config cfg = {INTERVAL_MS};
    struct berth_err err;

    berth_err_clear(&err);
    CHECK_MSG(collector_start(&cfg, &g->b, g->vms, &g->c, &err) == 0, "%s", err.msg);
}

static void rig_release(struct rig *g)
{
    collector_stop(g->c);
    vm_registry_free(g->vms);
    backend_destroy(&g->b);
    free(g->container_id);
}

static void set(struct rig *g, struct backend_stats st)
{
    CHECK(memory_backend_set_stats(&g->b, g->container_id, &st) == 0);
}

/* A VM's first sample is written with cpu 0; the next, without precpu, is
 * computed from the kept reading (one of two CPUs: 100 %); a sample with
 * precpu uses that instead; the other figures are copied. */
static void test_samples_and_cpu(void)
{
    struct rig g;
    struct vm_metrics m;
    struct collector_stats cs;

    rig_init(&g);
    set(&g, sample(5000, 1000000000, 10000000000000, 0, 0, 1048576));
    rig_start(&g);
    CHECK(wait_sample(g.vms, "vm-1", 5000, &m) == 0);
    CHECK_MSG(m.cpu_percent == 0.0, "first sample: cpu %f", m.cpu_percent);
    CHECK(m.memory_bytes == 1048576 && m.rx_bytes == 7 && m.write_ops == 3);

    set(&g, sample(6000, 2000000000, 10002000000000, 0, 0, 2097152));
    CHECK(wait_sample(g.vms, "vm-1", 6000, &m) == 0);
    CHECK_MSG(fabs(m.cpu_percent - 100.0) < 1e-6, "cpu %f from the kept reading", m.cpu_percent);
    CHECK(m.memory_bytes == 2097152);

    /* precpu wins: a quarter of one CPU since the source's own reading. */
    set(&g, sample(7000, 3000000000, 10006000000000, 2500000000, 10004000000000, 2097152));
    CHECK(wait_sample(g.vms, "vm-1", 7000, &m) == 0);
    CHECK_MSG(fabs(m.cpu_percent - 50.0) < 1e-6, "cpu %f from precpu", m.cpu_percent);

    CHECK(wait_counters(g.c, 1, 0, &cs) == 0);
    CHECK_MSG(cs.sweeps >= 1 && cs.last_sweep_s >= 0, "sweeps %llu, last %f",
              (unsigned long long)cs.sweeps, cs.last_sweep_s);
    CHECK(cs.streams == 0);
    rig_release(&g);
}

/* Paused, the VM is not swept but its reading is kept: resumed, the first
 * sample has a real CPU figure. Started anew, its counters restart, so the
 * reading is dropped: cpu 0. */
static void test_pause_and_new_start(void)
{
    struct vm_observed o;
    struct backend_container details;
    struct rig g;
    struct vm_metrics m;

    rig_init(&g);
    set(&g, sample(5000, 1000000000, 10000000000000, 0, 0, 1));
    rig_start(&g);
    CHECK(wait_sample(g.vms, "vm-1", 5000, &m) == 0);

    /* Paused in the registry: once a round copied that, a new sample the
     * backend has is not swept. */
    CHECK(vm_registry_set_state(g.vms, "vm-1", VM_STATE_PAUSED, 0, 0) == 0);
    wait_round(&g);
    set(&g, sample(6000, 2000000000, 10002000000000, 0, 0, 2));
    check_frozen(g.vms, 5000);
    CHECK(vm_registry_set_state(g.vms, "vm-1", VM_STATE_RUNNING, 0, 0) == 0);
    CHECK(wait_sample(g.vms, "vm-1", 6000, &m) == 0);
    CHECK_MSG(fabs(m.cpu_percent - 100.0) < 1e-6, "cpu %f after the pause", m.cpu_percent);

    /* Stopped and started again (a new start time). */
    CHECK(vm_registry_set_state(g.vms, "vm-1", VM_STATE_SHUTDOWN, 0, 0) == 0);
    wait_round(&g);
    memset(&details, 0, sizeof(details));
    details.started_unix_ms = 2000;
    o = (struct vm_observed){g.container_id, VM_STATE_RUNNING,      -1, -1,
                             &details,       BACKEND_HEALTH_UNKNOWN};
    set(&g, sample(9000, 3000000000, 10004000000000, 0, 0, 3));
    CHECK(vm_registry_observe(g.vms, "vm-1", &o) == 0);
    CHECK(wait_sample(g.vms, "vm-1", 9000, &m) == 0);
    CHECK_MSG(m.cpu_percent == 0.0, "cpu %f after a new start", m.cpu_percent);
    rig_release(&g);
}

/* A failing sweep result is counted and the cached sample stays. */
static void test_errors_counted(void)
{
    struct rig g;
    struct vm_metrics m;
    struct collector_stats cs;

    rig_init(&g);
    set(&g, sample(5000, 1000000000, 10000000000000, 0, 0, 1));
    rig_start(&g);
    CHECK(wait_sample(g.vms, "vm-1", 5000, &m) == 0);
    memory_backend_fail_next(&g.b, "stats", 2, BERTH_UNAVAILABLE);
    CHECK(wait_counters(g.c, 0, 2, &cs) == 0);
    CHECK_MSG(cs.errors == 2, "errors %llu", (unsigned long long)cs.errors);
    CHECK(wait_sample(g.vms, "vm-1", 5000, &m) == 0);
    rig_release(&g);
}

/* A backend without stats has no collector. */
static void test_no_stats(void)
{
    static const struct backend_ops none = {.name = "none"};
    struct backend b = {&none, NULL};
    struct collector_config cfg = {INTERVAL_MS};
    struct collector *c = NULL;
    struct collector_stats cs;
    struct vm_registry *vms = vm_registry_new();
    struct berth_err err;

    berth_err_clear(&err);
    CHECK(!backend_has_stats(&b));
    CHECK(collector_start(&cfg, &b, vms, &c, &err) == -1 && c == NULL);
    collector_read_stats(NULL, &cs);
    CHECK(cs.sweeps == 0 && cs.errors == 0 && cs.streams == 0);
    vm_registry_free(vms);
}

int main(void)
{
    test_samples_and_cpu();
    test_pause_and_new_start();
    test_errors_counted();
    test_no_stats();
    return test_summary("test_collector");
}
