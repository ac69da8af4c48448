/* GET /metrics (see berth/prometheus.h): one writer that checks every
 * append once, the series families in the order they are documented in
 * docs/operations.md, label values escaped in one place. */
#include "berth/prometheus.h"

#include <inttypes.h>
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/build_info.h"
#include "berth/clock.h"
#include "berth/gzip.h"
#include "berth/labels.h"
#include "berth/process_metrics.h"

#define PROM_DEFAULT_LIST_TIMEOUT_MS 2000

struct prometheus {
    struct prometheus_sources src;  /* immutable after prometheus_new */
    _Atomic uint64_t scrape_errors; /* backend lists that failed at scrape time */
};

/* One label of a sample. */
struct prom_label {
    const char *key;
    const char *value;
};

/* The writer: the first failed append sticks, later calls do nothing. */
struct prom_writer {
    struct buf *out;
    struct berth_err *err;
    int failed;
};

/* Replicas of one gateway or deployment. */
struct prom_group {
    const char *id; /* borrowed from the container list */
    uint64_t total;
    uint64_t running;
    uint64_t health[BACKEND_HEALTH_COUNT]; /* of the running ones */
};

static void prom_raw(struct prom_writer *w, const char *s);
static void prom_family(struct prom_writer *w, const char *name, const char *type,
                        const char *help);
static void prom_sample(struct prom_writer *w, const char *name, const char *suffix,
                        const struct prom_label *labels, size_t n, const char *value);
static void prom_u64(struct prom_writer *w, const char *name, const char *suffix,
                     const struct prom_label *labels, size_t n, uint64_t v);
static void prom_f64(struct prom_writer *w, const char *name, const char *suffix,
                     const struct prom_label *labels, size_t n, double v);
static void prom_format_double(char *out, size_t outsz, double v);
static void prom_histogram(struct prom_writer *w, const char *name, struct prom_label *labels,
                           size_t n, const double *bounds, const uint64_t *buckets,
                           size_t n_buckets, uint64_t count, double sum);
static void prom_rpc(struct prometheus *p, struct prom_writer *w);
static void prom_engine(struct prometheus *p, struct prom_writer *w);
static void prom_vm_states(struct prometheus *p, struct prom_writer *w);
static void prom_vm_health(struct prometheus *p, struct prom_writer *w);
static void prom_groups(struct prometheus *p, struct prom_writer *w, enum object_kind kind);
static void prom_vms(struct prometheus *p, struct prom_writer *w);
static void prom_collector(struct prometheus *p, struct prom_writer *w);
static int prom_group_cmp(const void *a, const void *b);
static void prom_process(struct prometheus *p, struct prom_writer *w);

struct prometheus *prometheus_new(const struct prometheus_sources *src)
{
    struct prometheus *p = calloc(1, sizeof(*p));

    if (p == NULL)
        return NULL;
    p->src = *src;
    if (p->src.list_timeout_ms <= 0)
        p->src.list_timeout_ms = PROM_DEFAULT_LIST_TIMEOUT_MS;
    atomic_init(&p->scrape_errors, 0);
    return p;
}

void prometheus_free(struct prometheus *p)
{
    free(p);
}

/* --- the writer ------------------------------------------------------------------ */

static void prom_raw(struct prom_writer *w, const char *s)
{
    if (!w->failed && buf_appends(w->out, s, w->err) < 0)
        w->failed = 1;
}

/* # HELP and # TYPE of a family; help text is ours, never escaped input. */
static void prom_family(struct prom_writer *w, const char *name, const char *type, const char *help)
{
    if (!w->failed &&
        buf_printf(w->out, w->err, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type) < 0)
        w->failed = 1;
}

int prometheus_append_label_value(struct buf *out, const char *s, struct berth_err *err)
{
    for (const char *p = s; *p != '\0'; p++) {
        const char *esc = NULL;
        int rc;

        if (*p == '\\')
            esc = "\\\\";
        else if (*p == '"')
            esc = "\\\"";
        else if (*p == '\n')
            esc = "\\n";
        rc = esc ? buf_appends(out, esc, err) : buf_append(out, p, 1, err);
        if (rc < 0)
            return -1;
    }
    return 0;
}

static void prom_sample(struct prom_writer *w, const char *name, const char *suffix,
                        const struct prom_label *labels, size_t n, const char *value)
{
    prom_raw(w, name);
    prom_raw(w, suffix);
    for (size_t i = 0; i < n; i++) {
        prom_raw(w, i == 0 ? "{" : ",");
        prom_raw(w, labels[i].key);
        prom_raw(w, "=\"");
        if (!w->failed && prometheus_append_label_value(w->out, labels[i].value, w->err) < 0)
            w->failed = 1;
        prom_raw(w, "\"");
    }
    prom_raw(w, n > 0 ? "} " : " ");
    prom_raw(w, value);
    prom_raw(w, "\n");
}

static void prom_u64(struct prom_writer *w, const char *name, const char *suffix,
                     const struct prom_label *labels, size_t n, uint64_t v)
{
    char num[32];

    snprintf(num, sizeof(num), "%" PRIu64, v);
    prom_sample(w, name, suffix, labels, n, num);
}

static void prom_f64(struct prom_writer *w, const char *name, const char *suffix,
                     const struct prom_label *labels, size_t n, double v)
{
    char num[40];

    prom_format_double(num, sizeof(num), v);
    prom_sample(w, name, suffix, labels, n, num);
}

static void prom_format_double(char *out, size_t outsz, double v)
{
    if (isnan(v))
        snprintf(out, outsz, "NaN");
    else if (isinf(v))
        snprintf(out, outsz, v > 0 ? "+Inf" : "-Inf");
    else if (snprintf(out, outsz, "%.15g", v) > 0 && strtod(out, NULL) != v)
        snprintf(out, outsz, "%.17g", v); /* 15 digits did not round-trip */
}

/* A histogram from non-cumulative buckets: cumulative le buckets, +Inf,
 * _sum and _count. `labels` has room for one more (the le label). Counters
 * read one by one may disagree a little; +Inf is never below the last
 * bucket. */
static void prom_histogram(struct prom_writer *w, const char *name, struct prom_label *labels,
                           size_t n, const double *bounds, const uint64_t *buckets,
                           size_t n_buckets, uint64_t count, double sum)
{
    uint64_t cum = 0;
    char le[40];

    for (size_t i = 0; i < n_buckets; i++) {
        cum += buckets[i];
        snprintf(le, sizeof(le), "%g", bounds[i]);
        labels[n] = (struct prom_label){"le", le};
        prom_u64(w, name, "_bucket", labels, n + 1, cum);
    }
    if (count < cum)
        count = cum;
    labels[n] = (struct prom_label){"le", "+Inf"};
    prom_u64(w, name, "_bucket", labels, n + 1, count);
    prom_f64(w, name, "_sum", labels, n, sum);
    prom_u64(w, name, "_count", labels, n, count);
}

/* --- the families ------------------------------------------------------------ */

static void prom_rpc(struct prometheus *p, struct prom_writer *w)
{
    struct router *r = p->src.router;
    size_t n = r ? router_count(r) : 0;

    prom_family(w, "berth_rpc_requests_total", "counter",
                "RPCs finished, by procedure and Connect code.");
    for (size_t i = 0; i < n; i++) {
        struct rpc_route *route = router_at(r, i);

        for (int code = 0; code < BERTH_CODE_COUNT; code++) {
            uint64_t v = atomic_load(&route->stats.by_code[code]);
            struct prom_label l[2] = {{"procedure", route->path},
                                      {"code", berth_code_name((enum berth_code)code)}};

            if (v > 0 || code == BERTH_OK)
                prom_u64(w, "berth_rpc_requests_total", "", l, 2, v);
        }
    }
    prom_family(w, "berth_rpc_duration_seconds", "histogram",
                "Time from a decoded request to its encoded answer, by procedure.");
    for (size_t i = 0; i < n; i++) {
        struct rpc_route *route = router_at(r, i);
        uint64_t buckets[RPC_LATENCY_BUCKETS], count = 0;
        struct prom_label l[2] = {{"procedure", route->path}, {NULL, NULL}};

        for (size_t b = 0; b < RPC_LATENCY_BUCKETS; b++)
            buckets[b] = atomic_load(&route->stats.latency_bucket[b]);
        for (int code = 0; code < BERTH_CODE_COUNT; code++)
            count += atomic_load(&route->stats.by_code[code]);
        prom_histogram(w, "berth_rpc_duration_seconds", l, 1, latency_bounds_s, buckets,
                       RPC_LATENCY_BUCKETS, count,
                       (double)atomic_load(&route->stats.latency_sum_us) / 1e6);
    }
    prom_family(w, "berth_rpc_in_flight", "gauge", "RPCs being handled now, by procedure.");
    for (size_t i = 0; i < n; i++) {
        struct rpc_route *route = router_at(r, i);
        int64_t v = atomic_load(&route->stats.in_flight);
        struct prom_label l[1] = {{"procedure", route->path}};

        prom_u64(w, "berth_rpc_in_flight", "", l, 1, v > 0 ? (uint64_t)v : 0);
    }
}

static void prom_pulls(struct prometheus *p, struct prom_writer *w);

static void prom_engine(struct prometheus *p, struct prom_writer *w)
{
    const struct backend *b = p->src.backend;
    struct backend_call_stats *ops = NULL;
    size_t n = 0;

    if (b != NULL && b->ops != NULL && b->ops->call_stats != NULL &&
        b->ops->call_stats(b->ctx, &ops, &n) < 0) {
        w->failed = 1;
        berth_err_set(w->err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    prom_family(w, "berth_engine_requests_total", "counter",
                "Docker Engine API calls, by operation and outcome.");
    for (size_t i = 0; i < n; i++)
        for (int o = 0; o < BACKEND_OUTCOME_COUNT; o++) {
            struct prom_label l[2] = {{"operation", ops[i].op},
                                      {"outcome", backend_outcome_name((enum backend_outcome)o)}};

            if (ops[i].by_outcome[o] > 0 || o == BACKEND_OUTCOME_OK)
                prom_u64(w, "berth_engine_requests_total", "", l, 2, ops[i].by_outcome[o]);
        }
    prom_family(w, "berth_engine_request_duration_seconds", "histogram",
                "Docker Engine API call latency, by operation.");
    for (size_t i = 0; i < n; i++) {
        struct prom_label l[2] = {{"operation", ops[i].op}, {NULL, NULL}};

        prom_histogram(w, "berth_engine_request_duration_seconds", l, 1, latency_bounds_s,
                       ops[i].latency_bucket, LATENCY_BUCKETS, ops[i].count, ops[i].latency_sum_s);
    }
    free(ops);
    prom_pulls(p, w);
}

/* berth_image_pulls_total{outcome}, berth_image_pull_duration_seconds,
 * berth_image_pull_bytes_total: what the backend's pulls did. */
static void prom_pulls(struct prometheus *p, struct prom_writer *w)
{
    const struct backend *b = p->src.backend;
    struct backend_pull_stats st;
    struct prom_label le[1] = {{NULL, NULL}}; /* room for the "le" label */

    memset(&st, 0, sizeof(st));
    if (b == NULL || b->ops == NULL || b->ops->pull_stats == NULL)
        return;
    b->ops->pull_stats(b->ctx, &st);
    prom_family(w, "berth_image_pulls_total", "counter",
                "Image pulls, by outcome (creates sharing one pull count it once).");
    for (int o = 0; o < BACKEND_PULL_OUTCOME_COUNT; o++) {
        struct prom_label l[1] = {
            {"outcome", backend_pull_outcome_name((enum backend_pull_outcome)o)}};

        prom_u64(w, "berth_image_pulls_total", "", l, 1, st.by_outcome[o]);
    }
    prom_family(w, "berth_image_pull_duration_seconds", "histogram",
                "How long image pulls took, failed ones included.");
    prom_histogram(w, "berth_image_pull_duration_seconds", le, 0, latency_bounds_s,
                   st.latency_bucket, LATENCY_BUCKETS, st.count, st.latency_sum_s);
    prom_family(w, "berth_image_pull_bytes_total", "counter",
                "Layer bytes image pulls downloaded, as the engine reported them.");
    prom_u64(w, "berth_image_pull_bytes_total", "", NULL, 0, st.bytes);
}

static void prom_vm_states(struct prometheus *p, struct prom_writer *w)
{
    static const char *const names[5] = {"unspecified", "created", "running", "paused", "shutdown"};
    size_t counts[5] = {0, 0, 0, 0, 0};

    if (p->src.vms != NULL)
        vm_registry_count_states(p->src.vms, counts);
    prom_family(w, "berth_vms", "gauge", "VMs in the registry, by state.");
    for (size_t i = 1; i < 5; i++) {
        struct prom_label l[1] = {{"state", names[i]}};

        prom_u64(w, "berth_vms", "", l, 1, counts[i]);
    }
    prom_vm_health(p, w);
}

/* berth_vms_health{health}: every RUNNING VM once, by what its check says
 * ("none" without one): the values add up to berth_vms{state="running"}. */
static void prom_vm_health(struct prometheus *p, struct prom_writer *w)
{
    size_t counts[BACKEND_HEALTH_COUNT] = {0};

    if (p->src.vms != NULL)
        vm_registry_count_health(p->src.vms, counts);
    prom_family(w, "berth_vms_health", "gauge",
                "Running VMs, by health (none: no check); they add up to the running VMs.");
    for (size_t h = 0; h < BACKEND_HEALTH_COUNT; h++) {
        struct prom_label l[1] = {{"health", backend_health_name((enum backend_health)h)}};

        prom_u64(w, "berth_vms_health", "", l, 1, counts[h]);
    }
}

static int prom_group_cmp(const void *a, const void *b)
{
    return strcmp(((const struct prom_group *)a)->id, ((const struct prom_group *)b)->id);
}

/* berth_<noun>s and berth_<noun>_replicas{<noun>_id,state}: one Engine
 * list of the containers labelled berth.kind=<kind>, grouped by id label. */
static void prom_groups(struct prometheus *p, struct prom_writer *w, enum object_kind kind)
{
    const struct object_kind_info *ki = object_kind_info(kind);
    const char *noun = ki->name;
    const struct backend *b = p->src.backend;
    struct backend_container_list list = {NULL, 0};
    struct prom_group *groups = NULL;
    size_t n_groups = 0;
    char name[64], id_key[48], help[160];
    struct berth_err err;

    berth_err_clear(&err);
    snprintf(id_key, sizeof(id_key), "%s_id", noun);
    if (b != NULL && b->ops != NULL && b->ops->list != NULL &&
        b->ops->list(b->ctx, ki->kind_filter, berth_now_ms() + p->src.list_timeout_ms, &list,
                     &err) < 0) {
        atomic_fetch_add(&p->scrape_errors, 1);
        list.items = NULL;
        list.n = 0;
    }
    groups = calloc(list.n > 0 ? list.n : 1, sizeof(*groups));
    if (groups == NULL) {
        w->failed = 1;
        berth_err_set(w->err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < list.n; i++) {
        const char *id = backend_container_label(&list.items[i], ki->id_label);
        size_t g = 0;

        /* A set's record is no replica: it never runs. */
        if (id == NULL || id[0] == '\0' ||
            backend_container_label(&list.items[i], LABEL_RECORD) != NULL)
            continue;
        while (g < n_groups && strcmp(groups[g].id, id) != 0)
            g++;
        if (g == n_groups)
            groups[n_groups++].id = id;
        groups[g].total++;
        if (list.items[i].state == BACKEND_STATE_RUNNING) {
            groups[g].running++;
            if ((unsigned)list.items[i].health < BACKEND_HEALTH_COUNT)
                groups[g].health[list.items[i].health]++;
        }
    }
    qsort(groups, n_groups, sizeof(*groups), prom_group_cmp);

    snprintf(name, sizeof(name), "berth_%ss", noun);
    snprintf(help, sizeof(help), "%ss with at least one replica container.", noun);
    prom_family(w, name, "gauge", help);
    prom_u64(w, name, "", NULL, 0, n_groups);
    snprintf(name, sizeof(name), "berth_%s_replicas", noun);
    snprintf(help, sizeof(help),
             "Replica containers of each %s, running or not (the two add up to all of them).",
             noun);
    prom_family(w, name, "gauge", help);
    for (size_t g = 0; g < n_groups; g++) {
        struct prom_label l[2] = {{id_key, groups[g].id}, {"state", "running"}};

        prom_u64(w, name, "", l, 2, groups[g].running);
        l[1].value = "not_running";
        prom_u64(w, name, "", l, 2, groups[g].total - groups[g].running);
    }
    snprintf(name, sizeof(name), "berth_%s_replicas_health", noun);
    snprintf(help, sizeof(help),
             "Running replica containers of each %s, by health (none: no check); they add up to "
             "the running ones.",
             noun);
    prom_family(w, name, "gauge", help);
    for (size_t g = 0; g < n_groups; g++) {
        for (size_t h = 0; h < BACKEND_HEALTH_COUNT; h++) {
            struct prom_label l[2] = {{id_key, groups[g].id},
                                      {"health", backend_health_name((enum backend_health)h)}};

            prom_u64(w, name, "", l, 2, groups[g].health[h]);
        }
    }
out:
    free(groups);
    backend_container_list_release(&list);
}

/* One family per resource counter of the running VMs' cached samples. */
static void prom_vms(struct prometheus *p, struct prom_writer *w)
{
    static const struct {
        const char *name, *type, *help;
    } fam[] = {
        {"berth_vm_cpu_usage_percent", "gauge", "CPU use of a running VM; 100 is one host CPU."},
        {"berth_vm_cpu_seconds_total", "counter",
         "CPU time a running VM's container used since it started, in seconds."},
        {"berth_vm_memory_usage_bytes", "gauge",
         "Memory of a running VM without reclaimable page cache, as docker stats shows it."},
        {"berth_vm_network_receive_bytes_total", "counter", "Bytes received on all interfaces."},
        {"berth_vm_network_transmit_bytes_total", "counter", "Bytes sent on all interfaces."},
        {"berth_vm_network_receive_packets_total", "counter",
         "Packets received on all interfaces."},
        {"berth_vm_network_transmit_packets_total", "counter", "Packets sent on all interfaces."},
        {"berth_vm_block_read_bytes_total", "counter", "Bytes read from block devices."},
        {"berth_vm_block_write_bytes_total", "counter", "Bytes written to block devices."},
        {"berth_vm_block_read_ops_total", "counter", "Block device read operations."},
        {"berth_vm_block_write_ops_total", "counter", "Block device write operations."},
        {"berth_vm_pids", "gauge", "Processes and threads of a running VM (0: not known)."},
        {"berth_vm_metrics_age_seconds", "gauge", "Age of the cached resource sample."},
    };
    /* Running VMs by the source of their sample (enum backend_stats_source). */
    static const char *const source_names[] = {"fake", "engine", "cgroup"};
    uint64_t by_source[3] = {0, 0, 0};
    struct vm_snapshot *list = NULL;
    size_t n = 0;
    struct berth_err err;
    int64_t now = berth_unix_ms();

    berth_err_clear(&err);
    if (p->src.vms != NULL && vm_registry_list(p->src.vms, &list, &n, &err) < 0) {
        w->failed = 1;
        berth_err_set(w->err, err.code, "%s", err.msg);
        return;
    }
    for (size_t f = 0; f < sizeof(fam) / sizeof(fam[0]); f++) {
        prom_family(w, fam[f].name, fam[f].type, fam[f].help);
        for (size_t i = 0; i < n; i++) {
            const struct vm_metrics *m = &list[i].metrics;
            struct prom_label l[1] = {{"vm_id", list[i].id}};
            double age;

            if (list[i].state != VM_STATE_RUNNING || m->sampled_at_unix_ms <= 0)
                continue;
            switch (f) {
            case 0:
                prom_f64(w, fam[f].name, "", l, 1, m->cpu_percent);
                break;
            case 1:
                prom_f64(w, fam[f].name, "", l, 1, (double)m->cpu_total_ns / 1e9);
                break;
            case 2:
                prom_u64(w, fam[f].name, "", l, 1, (uint64_t)m->memory_bytes);
                break;
            case 3:
                prom_u64(w, fam[f].name, "", l, 1, (uint64_t)m->rx_bytes);
                break;
            case 4:
                prom_u64(w, fam[f].name, "", l, 1, (uint64_t)m->tx_bytes);
                break;
            case 5:
                prom_u64(w, fam[f].name, "", l, 1, (uint64_t)m->rx_packets);
                break;
            case 6:
                prom_u64(w, fam[f].name, "", l, 1, (uint64_t)m->tx_packets);
                break;
            case 7:
                prom_u64(w, fam[f].name, "", l, 1, (uint64_t)m->read_bytes);
                break;
            case 8:
                prom_u64(w, fam[f].name, "", l, 1, (uint64_t)m->write_bytes);
                break;
            case 9:
                prom_u64(w, fam[f].name, "", l, 1, (uint64_t)m->read_ops);
                break;
            case 10:
                prom_u64(w, fam[f].name, "", l, 1, (uint64_t)m->write_ops);
                break;
            case 11:
                prom_u64(w, fam[f].name, "", l, 1, (uint64_t)m->pids);
                if ((unsigned)m->source < 3)
                    by_source[m->source]++;
                break;
            default:
                age = (double)(now - m->sampled_at_unix_ms) / 1000.0;
                prom_f64(w, fam[f].name, "", l, 1, age > 0 ? age : 0);
                break;
            }
        }
    }
    prom_family(w, "berth_vm_metrics_source", "gauge",
                "Running VMs by where their sample came from: cgroup (the kernel's files), "
                "engine (the Engine's stats stream), fake (the memory backend).");
    for (size_t s = 0; s < 3; s++) {
        struct prom_label l[1] = {{"source", source_names[s]}};

        prom_u64(w, "berth_vm_metrics_source", "", l, 1, by_source[s]);
    }
    vm_snapshot_list_free(list, n);
}

static void prom_collector(struct prometheus *p, struct prom_writer *w)
{
    struct collector_stats cs;

    collector_read_stats(p->src.collector, &cs);
    prom_family(w, "berth_collector_sweep_duration_seconds", "gauge",
                "Time the last collector sweep took until every running VM had a fresh sample.");
    prom_f64(w, "berth_collector_sweep_duration_seconds", "", NULL, 0, cs.last_sweep_s);
    prom_family(w, "berth_collector_sweeps_total", "counter", "Completed collector sweeps.");
    prom_u64(w, "berth_collector_sweeps_total", "", NULL, 0, cs.sweeps);
    prom_family(w, "berth_collector_errors_total", "counter",
                "Failed or stalled stats streams and unreadable samples.");
    prom_u64(w, "berth_collector_errors_total", "", NULL, 0, cs.errors);
    prom_family(w, "berth_collector_streams", "gauge", "Open Engine stats streams.");
    prom_u64(w, "berth_collector_streams", "", NULL, 0, cs.streams);
    prom_family(w, "berth_metrics_scrape_errors_total", "counter",
                "Engine lists that failed while serving /metrics (their series were left out).");
    prom_u64(w, "berth_metrics_scrape_errors_total", "", NULL, 0, atomic_load(&p->scrape_errors));
}

/* What every exporter says of itself, the build, and whether the engine
 * answers a ping now. */
static void prom_process(struct prometheus *p, struct prom_writer *w)
{
    const struct backend *b = p->src.backend;
    struct process_metrics pm;
    struct berth_err perr;
    struct prom_label build[2] = {{"version", BERTH_VERSION}, {"commit", BERTH_COMMIT}};
    int up = 0;

    berth_err_clear(&perr);
    if (process_metrics_read(&pm, &perr) == 0) {
        prom_family(w, "process_cpu_seconds_total", "counter",
                    "User and system CPU time spent in seconds.");
        prom_f64(w, "process_cpu_seconds_total", "", NULL, 0, pm.cpu_seconds);
        prom_family(w, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
        prom_u64(w, "process_resident_memory_bytes", "", NULL, 0, pm.resident_bytes);
        prom_family(w, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
        prom_u64(w, "process_virtual_memory_bytes", "", NULL, 0, pm.virtual_bytes);
        prom_family(w, "process_open_fds", "gauge", "Number of open file descriptors.");
        prom_u64(w, "process_open_fds", "", NULL, 0, pm.open_fds);
        prom_family(w, "process_max_fds", "gauge", "Maximum number of open file descriptors.");
        prom_u64(w, "process_max_fds", "", NULL, 0, pm.max_fds);
        prom_family(w, "process_start_time_seconds", "gauge",
                    "Start time of the process since unix epoch in seconds.");
        prom_f64(w, "process_start_time_seconds", "", NULL, 0, pm.start_time_seconds);
        prom_family(w, "process_threads", "gauge", "Number of OS threads in the process.");
        prom_u64(w, "process_threads", "", NULL, 0, pm.threads);
    }
    prom_family(w, "berth_build_info", "gauge", "The running build: version and commit.");
    prom_u64(w, "berth_build_info", "", build, 2, 1);
    if (b != NULL && b->ops != NULL && b->ops->ping != NULL)
        up = b->ops->ping(b->ctx, berth_now_ms() + p->src.list_timeout_ms, &perr) == 0;
    prom_family(w, "berth_engine_up", "gauge", "1 when the container engine answered a ping now.");
    prom_u64(w, "berth_engine_up", "", NULL, 0, (uint64_t)up);
}

int prometheus_render(struct prometheus *p, struct buf *out, struct berth_err *err)
{
    struct prom_writer w = {out, err, 0};

    prom_rpc(p, &w);
    prom_engine(p, &w);
    prom_vm_states(p, &w);
    prom_groups(p, &w, OBJECT_GATEWAY);
    prom_groups(p, &w, OBJECT_DEPLOYMENT);
    prom_vms(p, &w);
    prom_collector(p, &w);
    prom_process(p, &w);
    return w.failed ? -1 : 0;
}

void prometheus_serve(struct prometheus *p, const struct http_request *req,
                      struct http_response *resp)
{
    const char *method = http_request_method(req);
    struct berth_err err;
    struct buf page;

    berth_err_clear(&err);
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        resp->status = 405;
        http_response_header(resp, "Allow", "GET, HEAD");
        http_response_header(resp, "Content-Type", "text/plain; charset=utf-8");
        if (buf_appends(&resp->body, "method not allowed\n", NULL) < 0)
            resp->status = 500;
        return;
    }
    /* The page differs by Accept-Encoding, compressed or not: caches must
     * keep the two apart. */
    http_response_header(resp, "Vary", "Accept-Encoding");
    buf_init(&page, SIZE_MAX / 2); /* no cap of its own, as the response body */
    if (prometheus_render(p, &page, &err) == 0) {
        int gz = page.len > 0 && gzip_accepted(http_request_header(req, "Accept-Encoding"));
        int rc = gz ? gzip_deflate(page.data, page.len, &resp->body, &err)
                    : buf_append(&resp->body, page.data ? page.data : "", page.len, &err);

        buf_release(&page);
        if (rc == 0) {
            resp->status = 200;
            http_response_header(resp, "Content-Type", PROMETHEUS_CONTENT_TYPE);
            if (gz)
                http_response_header(resp, "Content-Encoding", "gzip");
            return;
        }
    }
    buf_release(&page);
    buf_reset(&resp->body);
    resp->status = 500;
    http_response_header(resp, "Content-Type", "text/plain; charset=utf-8");
    if (buf_printf(&resp->body, NULL, "metrics unavailable: %s\n", err.msg) < 0)
        buf_reset(&resp->body);
}
