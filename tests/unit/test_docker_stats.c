/* The Docker backend's stats: Engine stats JSON -> struct backend_stats on
 * recorded Engine answers (tests/unit/fixtures/stats_*.json: cgroup v1 and
 * v2, the first sample of a stream, counter resets, old engines, missing
 * and malformed fields, a stopped container) with the CPU figure the
 * collector computes from it; the stall limit for a range of intervals;
 * and the sweep against a fake Engine: a silent stream reopened within the
 * stall limit, each sample given once, each stream counted as an Engine
 * call; with a cgroup root (a fixture tree), a container with files is read
 * from them once a pass with no Engine call, one without falls back to its
 * stream after one inspect. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "../../src/backend/docker/docker_internal.h"
#include "berth/backend.h"
#include "berth/clock.h"
#include "berth/docker_backend.h"
#include "cgroup_tree.h"
#include "fake_engine.h"
#include "testlib.h"

#define NOW_MS 4242

/* What a row expects: a sample with a base for its CPU figure, one without
 * (cpu 0), or no sample at all. */
enum { STATS_OK, STATS_NO_BASE, STATS_EMPTY };

/* The collector's previous reading, and whether there is one. */
struct stats_cpu {
    uint64_t total_ns, system_ns;
    uint32_t online_cpus;
    int valid;
};

struct stats_row {
    const char *desc;
    const char *fixture;
    struct stats_cpu prev; /* valid == 0: no previous sample */
    int result;
    double cpu;
    int64_t memory, rx_bytes, tx_bytes, rx_packets, tx_packets;
    int64_t read_bytes, write_bytes, read_ops, write_ops;
    int64_t sampled_at;
};

/* One fixture per row; the columns line up with struct stats_row. */
/* clang-format off */
static const struct stats_row rows[] = {
    {"cgroup v1: busy cpu, memory minus total_inactive_file, two interfaces, two devices",
     "stats_v1.json", {0, 0, 0, 0}, STATS_OK, 99.9747654, 663552, 1736, 500, 18, 5, 5120, 10240, 4,
     6, 1795587002199},
    {"cgroup v1: precpu_stats wins over a previous sample", "stats_v1.json",
     {1, 1, 2, 1}, STATS_OK, 99.9747654, 663552, 1736, 500, 18, 5, 5120, 10240, 4, 6,
     1795587002199},
    {"cgroup v2: half of one cpu of four, minus inactive_file, lower-case blkio ops",
     "stats_v2.json", {0, 0, 0, 0}, STATS_OK, 50.0, 100663296, 2048, 1024, 20, 10, 1048576,
     2097152, 16, 32, 1709294405500},
    {"first stream sample without a previous one: cpu 0", "stats_first.json", {0, 0, 0, 0},
     STATS_NO_BASE, 0.0, 100663296, 2048, 1024, 20, 10, 1048576, 2097152, 16, 32, 1709294405250},
    {"first stream sample with the collector's previous: one busy cpu", "stats_first.json",
     {2000000000, 39998000000000, 2, 1}, STATS_OK, 100.0, 100663296, 2048, 1024, 20, 10,
     1048576, 2097152, 16, 32, 1709294405250},
    {"previous sample newer than this one (restart): cpu 0", "stats_first.json",
     {3500000000, 39998000000000, 2, 1}, STATS_OK, 0.0, 100663296, 2048, 1024, 20, 10, 1048576,
     2097152, 16, 32, 1709294405250},
    {"system cpu did not move: cpu 0", "stats_first.json", {2000000000, 40000000000000, 2, 1},
     STATS_OK, 0.0, 100663296, 2048, 1024, 20, 10, 1048576, 2097152, 16, 32, 1709294405250},
    {"counter reset against precpu_stats: cpu 0", "stats_reset.json", {0, 0, 0, 0}, STATS_OK,
     0.0, 663552, 1736, 500, 18, 5, 5120, 10240, 4, 6, 1795587002199},
    {"old engine: cpus counted from percpu_usage, memory minus cache", "stats_old_engine.json",
     {0, 0, 0, 0}, STATS_OK, 99.9747654, 6000000, 1736, 500, 18, 5, 5120, 10240, 4, 6,
     1795587002199},
    {"inactive file above usage in the hierarchy: falls back to inactive_file",
     "stats_v1_inactive_over.json", {0, 0, 0, 0}, STATS_OK, 99.9747654, 700000, 1736, 500, 18, 5,
     5120, 10240, 4, 6, 1795587002199},
    {"missing fields: zeros, sampled now", "stats_missing.json", {1000, 8000, 1, 1}, STATS_OK,
     0.0, 4096, 0, 7, 0, 0, 0, 0, 0, 0, NOW_MS},
    {"malformed numbers: zeros, never garbage", "stats_garbage.json", {0, 0, 0, 0}, STATS_NO_BASE,
     0.0, 0, 0, 0, 25, 0, 0, 0, 0, 0, 1709294405000},
    {"stopped container: empty answer, nothing filled", "stats_stopped.json", {0, 0, 0, 0},
     STATS_EMPTY, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
};
/* clang-format on */

/* The fixture directory: beside this file, wherever the build runs. */
static char *fixture_text(const char *name)
{
    const char *self = __FILE__;
    const char *slash = strrchr(self, '/');
    size_t dirlen = slash ? (size_t)(slash - self) : 1;
    char path[4096];
    char *text = NULL;
    long len;
    FILE *f;

    snprintf(path, sizeof(path), "%.*s/fixtures/%s", (int)dirlen, slash ? self : ".", name);
    f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "cannot open fixture %s\n", path);
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        text = malloc((size_t)len + 1);
        if (text != NULL && fread(text, 1, (size_t)len, f) == (size_t)len) {
            text[len] = '\0';
        } else {
            free(text);
            text = NULL;
        }
    }
    fclose(f);
    return text;
}

/* The base the collector takes: the Engine's precpu_stats, else its own
 * previous reading, else none. */
static const struct backend_cpu *row_base(const struct backend_stats *st,
                                          const struct stats_cpu *prev, struct backend_cpu *buf)
{
    if (backend_cpu_valid(&st->precpu))
        return &st->precpu;
    if (!prev->valid)
        return NULL;
    buf->total_ns = prev->total_ns;
    buf->system_ns = prev->system_ns;
    buf->online_cpus = prev->online_cpus;
    return buf;
}

static void test_rows(void)
{
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const struct stats_row *row = &rows[i];
        char *text = fixture_text(row->fixture);
        cJSON *root = text ? cJSON_Parse(text) : NULL;
        const struct backend_cpu *base = NULL;
        struct backend_stats st;
        struct backend_cpu buf;
        int rc, result = STATS_EMPTY;

        CHECK_MSG(root != NULL, "%s: fixture %s", row->desc, row->fixture);
        if (root == NULL) {
            free(text);
            continue;
        }
        memset(&st, 0x5a, sizeof(st));
        rc = docker_stats_parse(root, NOW_MS, &st);
        if (rc == DOCKER_STATS_SAMPLE) {
            base = row_base(&st, &row->prev, &buf);
            result = base != NULL ? STATS_OK : STATS_NO_BASE;
        }
        CHECK_MSG(rc >= 0 && result == row->result, "%s: result %d (%d)", row->desc, result, rc);
        if (rc == DOCKER_STATS_SAMPLE) {
            double cpu = base != NULL ? backend_cpu_percent(&st.cpu, base) : 0.0;

            CHECK_MSG(fabs(cpu - row->cpu) < 1e-4, "%s: cpu %f want %f", row->desc, cpu, row->cpu);
            CHECK_MSG(st.memory_bytes == row->memory, "%s: memory %lld", row->desc,
                      (long long)st.memory_bytes);
            CHECK_MSG(st.rx_bytes == row->rx_bytes && st.tx_bytes == row->tx_bytes &&
                          st.rx_packets == row->rx_packets && st.tx_packets == row->tx_packets,
                      "%s: net %lld %lld %lld %lld", row->desc, (long long)st.rx_bytes,
                      (long long)st.tx_bytes, (long long)st.rx_packets, (long long)st.tx_packets);
            CHECK_MSG(st.read_bytes == row->read_bytes && st.write_bytes == row->write_bytes &&
                          st.read_ops == row->read_ops && st.write_ops == row->write_ops,
                      "%s: blkio %lld %lld %lld %lld", row->desc, (long long)st.read_bytes,
                      (long long)st.write_bytes, (long long)st.read_ops, (long long)st.write_ops);
            CHECK_MSG(st.sampled_at_unix_ms == row->sampled_at, "%s: sampled_at %lld", row->desc,
                      (long long)st.sampled_at_unix_ms);
            CHECK_MSG(st.source == BACKEND_STATS_ENGINE, "%s: source", row->desc);
        } else {
            /* Untouched: still the pattern written above. */
            CHECK_MSG(st.memory_bytes == 0x5a5a5a5a5a5a5a5a, "%s: out written", row->desc);
        }
        cJSON_Delete(root);
        free(text);
    }
}

/* The reading of one sample is the base of the next one's delta. */
static void test_chain(void)
{
    char *text = fixture_text("stats_first.json");
    cJSON *root = text ? cJSON_Parse(text) : NULL;
    struct backend_stats first, second;
    cJSON *cpu, *usage;

    CHECK(root != NULL);
    if (root == NULL)
        goto out;
    CHECK(docker_stats_parse(root, NOW_MS, &first) == DOCKER_STATS_SAMPLE);
    CHECK(!backend_cpu_valid(&first.precpu));
    CHECK(backend_cpu_valid(&first.cpu) && first.cpu.total_ns == 3000000000u &&
          first.cpu.online_cpus == 2);
    cpu = cJSON_GetObjectItemCaseSensitive(root, "cpu_stats");
    usage = cJSON_GetObjectItemCaseSensitive(cpu, "cpu_usage");
    cJSON_SetNumberValue(cJSON_GetObjectItemCaseSensitive(usage, "total_usage"), 3500000000.0);
    cJSON_SetNumberValue(cJSON_GetObjectItemCaseSensitive(cpu, "system_cpu_usage"),
                         40002000000000.0);
    CHECK(docker_stats_parse(root, NOW_MS, &second) == DOCKER_STATS_SAMPLE);
    CHECK_MSG(fabs(backend_cpu_percent(&second.cpu, &first.cpu) - 50.0) < 1e-6, "chained cpu %f",
              backend_cpu_percent(&second.cpu, &first.cpu));
out:
    cJSON_Delete(root);
    free(text);
}

static void test_not_object(void)
{
    cJSON *arr = cJSON_Parse("[1,2]");
    struct backend_stats st;

    CHECK(docker_stats_parse(arr, NOW_MS, &st) == -1);
    CHECK(docker_stats_parse(NULL, NOW_MS, &st) == -1);
    cJSON_Delete(arr);
}

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
        int64_t got = docker_stats_stall_limit_ms(r->interval_ms);

        CHECK_MSG(got == r->stall_ms, "%s: %lld, want %lld", r->desc, (long long)got,
                  (long long)r->stall_ms);
        /* A stall plus the Engine's next sample stays within the interval. */
        CHECK_MSG(r->interval_ms < 4000 || got + 1000 <= r->interval_ms, "%s", r->desc);
    }
}

#define INTERVAL_MS 1000
#define STALL_MS 3000 /* docker_stats_stall_limit_ms(INTERVAL_MS) */
/* What a loaded machine (sanitizers, parallel tests) may add to a wait. */
#define SLACK_MS 700
#define STATS_OP "GET /containers/{id}/stats"

#define SAMPLE_A                                                                                   \
    "{\"read\":\"2024-03-01T12:00:01Z\",\"cpu_stats\":{\"cpu_usage\":{\"total_usage\":"            \
    "1000000000},\"system_cpu_usage\":10000000000000,\"online_cpus\":2},\"precpu_stats\":"         \
    "{\"cpu_usage\":{\"total_usage\":0}},\"memory_stats\":{\"usage\":1048576}}\n"
#define SAMPLE_B                                                                                   \
    "{\"read\":\"2024-03-01T12:00:05Z\",\"cpu_stats\":{\"cpu_usage\":{\"total_usage\":"            \
    "2000000000},\"system_cpu_usage\":10002000000000,\"online_cpus\":2},\"precpu_stats\":"         \
    "{\"cpu_usage\":{\"total_usage\":0}},\"memory_stats\":{\"usage\":2097152}}\n"
#define READ_A 1709294401000
#define READ_B 1709294405000

/* The counts of the stats streams among the backend's Engine calls. */
static void counted(struct backend *b, uint64_t *ok, uint64_t *transport)
{
    struct backend_call_stats *ops = NULL;
    size_t n = 0;

    *ok = *transport = 0;
    if (b->ops->call_stats(b->ctx, &ops, &n) < 0)
        return;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(ops[i].op, STATS_OP) != 0)
            continue;
        *ok = ops[i].by_outcome[BACKEND_OUTCOME_OK];
        *transport = ops[i].by_outcome[BACKEND_OUTCOME_TRANSPORT_ERROR];
    }
    free(ops);
}

/* Sweep "c1" until the sample read at `want` (unix ms) comes or the
 * deadline (monotonic ms) passes: 0 with it in *out, else -1. Samples are
 * given once: no other sample may come in between. */
static int sweep_until(struct backend *b, int64_t want, int64_t deadline, struct backend_stats *out,
                       uint64_t *errors)
{
    static const char *const ids[] = {"c1"};

    while (berth_now_ms() < deadline) {
        struct backend_stats_result res;
        struct backend_sweep_info info;
        struct berth_err err;

        berth_err_clear(&err);
        if (b->ops->stats_sweep(b->ctx, ids, 1, berth_now_ms() + 1000, NULL, &res, &info, &err) < 0)
            return -1;
        *errors += info.errors;
        if (res.status == BACKEND_SAMPLE_NEW) {
            if (res.stats.sampled_at_unix_ms == want) {
                *out = res.stats;
                return 0;
            }
            CHECK_MSG(0, "unexpected sample at %lld", (long long)res.stats.sampled_at_unix_ms);
        }
    }
    return -1;
}

/* A stream that goes silent after its first sample: the sample is given
 * once, the stream is reopened once the stall limit passed (not two
 * intervals), and the new stream's first sample follows; the stalled
 * stream counts as a transport error, the one that ended as ok. A sweep
 * over nothing closes what is open. */
static void test_sweep_stall(void)
{
    static const char *const a[] = {SAMPLE_A};
    static const char *const b2[] = {SAMPLE_B};
    struct docker_backend_config cfg = {.stats_interval_ms = INTERVAL_MS};
    struct fake_engine fe;
    struct backend b;
    struct backend_stats st;
    struct backend_stats_result none;
    struct backend_sweep_info info;
    struct berth_err err;
    uint64_t ok = 0, transport = 0, errors = 0;
    int64_t t_a, t_b;
    char line[256];

    fe_init(&fe);
    fe_start(&fe);
    fe_reply_chunked(&fe, a, 1, 1);
    fe_reply_chunked(&fe, b2, 1, 0);
    cfg.socket_path = fe.sock;
    berth_err_clear(&err);
    CHECK_MSG(docker_backend_new(&cfg, &b, &err) == 0, "%s", err.msg);

    CHECK(sweep_until(&b, READ_A, berth_now_ms() + 5000, &st, &errors) == 0);
    t_a = berth_now_ms();
    CHECK(st.memory_bytes == 1048576);
    CHECK(!backend_cpu_valid(&st.precpu));
    CHECK_STR(fe_req_line(&fe, 0, line, sizeof(line)),
              "GET /v1.41/containers/c1/stats?stream=true");

    CHECK(sweep_until(&b, READ_B, t_a + STALL_MS + 5000, &st, &errors) == 0);
    t_b = berth_now_ms();
    CHECK_MSG(t_b - t_a >= STALL_MS - 100 && t_b - t_a <= STALL_MS + SLACK_MS,
              "reopened %lld ms after the last sample, stall limit %d ms", (long long)(t_b - t_a),
              STALL_MS);
    CHECK_STR(fe_req_line(&fe, 1, line, sizeof(line)),
              "GET /v1.41/containers/c1/stats?stream=true");
    CHECK(st.memory_bytes == 2097152);
    CHECK_MSG(errors >= 1, "the stall counted: %llu", (unsigned long long)errors);

    /* Nothing asked for: the open stream closes (its end counted). */
    berth_err_clear(&err);
    CHECK(b.ops->stats_sweep(b.ctx, NULL, 0, berth_now_ms() + 1000, NULL, &none, &info, &err) == 0);
    CHECK(info.open == 0 && info.complete);
    counted(&b, &ok, &transport);
    CHECK_MSG(transport == 1 && ok >= 1, "%s ok=%llu transport_error=%llu", STATS_OP,
              (unsigned long long)ok, (unsigned long long)transport);
    backend_destroy(&b);
    fe_stop(&fe);
}

/* The one-shot sample: GET /containers/{id}/stats?stream=false, the JSON
 * read as a sweep reads it; a stopped container is failed_precondition, a
 * missing one not_found, and *out is set only on success. */
static void test_one_shot(void)
{
    struct docker_backend_config cfg = {.stats_interval_ms = INTERVAL_MS};
    char *v1 = fixture_text("stats_v1.json");
    char *stopped = fixture_text("stats_stopped.json");
    struct fake_engine fe;
    struct backend b;
    struct backend_stats st;
    struct berth_err err;
    char line[256];

    CHECK(v1 != NULL && stopped != NULL);
    fe_init(&fe);
    fe_start(&fe);
    fe_reply(&fe, 200, v1 ? v1 : "{}");
    fe_reply(&fe, 200, stopped ? stopped : "{}");
    fe_reply(&fe, 404, "{\"message\":\"No such container: gone\"}");
    cfg.socket_path = fe.sock;
    berth_err_clear(&err);
    CHECK_MSG(docker_backend_new(&cfg, &b, &err) == 0, "%s", err.msg);

    memset(&st, 0, sizeof(st));
    CHECK_MSG(b.ops->stats(b.ctx, "c1", berth_now_ms() + 5000, &st, &err) == 0, "%s", err.msg);
    CHECK(st.memory_bytes == 663552 && st.sampled_at_unix_ms == 1795587002199);
    CHECK(st.source == BACKEND_STATS_ENGINE && backend_cpu_valid(&st.precpu));
    CHECK_STR(fe_req_line(&fe, 0, line, sizeof(line)),
              "GET /v1.41/containers/c1/stats?stream=false");

    memset(&st, 0x5a, sizeof(st));
    berth_err_clear(&err);
    CHECK(b.ops->stats(b.ctx, "c2", berth_now_ms() + 5000, &st, &err) == -1);
    CHECK_MSG(err.code == BERTH_FAILED_PRECONDITION, "%s", err.msg);
    CHECK(st.memory_bytes == 0x5a5a5a5a5a5a5a5a);

    berth_err_clear(&err);
    CHECK(b.ops->stats(b.ctx, "gone", berth_now_ms() + 5000, &st, &err) == -1);
    CHECK_MSG(err.code == BERTH_NOT_FOUND, "%s", err.msg);
    backend_destroy(&b);
    fe_stop(&fe);
    free(v1);
    free(stopped);
}

/* Two containers, one whose cgroup files are in the tree and one whose are
 * not: the first is read from its files (the Engine asked only for its
 * /info, once), a pass about every 0.9 interval; the second is looked up
 * once (GET /containers/{id}/json for its pid, whose cgroup is not there
 * either) and then sampled through its stats stream. */
static void test_sweep_cgroup(void)
{
    static const char *const a[] = {SAMPLE_A};
    static const char *const ids[] = {CT_ID1, CT_ID2};
    struct docker_backend_config cfg = {.stats_interval_ms = INTERVAL_MS};
    struct cg_tree t;
    struct fake_engine fe;
    struct backend b;
    struct berth_err err;
    int64_t until, at[2] = {0, 0};
    int n1 = 0, n2 = 0, errors = 0;
    char line[256];

    CHECK(ct_init(&t) == 0);
    CHECK(ct_v1(&t, "cpuacct", "docker/" CT_ID1) == 0);
    fe_init(&fe);
    fe_start(&fe);
    fe_reply(&fe, 200, "{\"CgroupDriver\":\"cgroupfs\",\"CgroupVersion\":\"1\"}");
    fe_reply(&fe, 200, "{\"Id\":\"" CT_ID2 "\",\"State\":{\"Pid\":777}}");
    fe_reply_chunked(&fe, a, 1, 1);
    cfg.socket_path = fe.sock;
    cfg.cgroup_root = t.cgroup;
    cfg.proc_root = t.proc;
    berth_err_clear(&err);
    CHECK_MSG(docker_backend_new(&cfg, &b, &err) == 0, "%s", err.msg);

    until = berth_now_ms() + 5000;
    while ((n1 < 3 || n2 < 1) && berth_now_ms() < until) {
        struct backend_stats_result res[2];
        struct backend_sweep_info info;

        berth_err_clear(&err);
        if (b.ops->stats_sweep(b.ctx, ids, 2, berth_now_ms() + 1000, NULL, res, &info, &err) < 0)
            break;
        errors += (int)info.errors;
        CHECK(res[0].status != BACKEND_SAMPLE_ERROR && res[1].status != BACKEND_SAMPLE_ERROR);
        if (res[0].status == BACKEND_SAMPLE_NEW) {
            const struct backend_stats *st = &res[0].stats;

            CHECK(st->source == BACKEND_STATS_CGROUP);
            CHECK(st->cpu.total_ns == 2000000000ull && st->memory_bytes == 50331648 &&
                  st->pids == 3 && st->rx_bytes == 1736 && st->cpu.online_cpus == 2);
            at[0] = at[1];
            at[1] = berth_now_ms();
            n1++;
            /* The passes after the first come about 0.9 interval apart. */
            if (n1 >= 3)
                CHECK_MSG(at[1] - at[0] >= INTERVAL_MS * 8 / 10 &&
                              at[1] - at[0] <= INTERVAL_MS + SLACK_MS,
                          "passes %lld ms apart", (long long)(at[1] - at[0]));
        }
        if (res[1].status == BACKEND_SAMPLE_NEW) {
            CHECK(res[1].stats.source == BACKEND_STATS_ENGINE);
            CHECK(res[1].stats.memory_bytes == 1048576);
            CHECK(info.open == 1);
            n2++;
        }
    }
    CHECK_MSG(n1 >= 3 && n2 == 1, "samples: %d from files, %d from the stream", n1, n2);
    CHECK_MSG(errors == 0, "errors %d", errors);
    CHECK_STR(fe_req_line(&fe, 0, line, sizeof(line)), "GET /v1.41/info");
    CHECK_STR(fe_req_line(&fe, 1, line, sizeof(line)), "GET /v1.41/containers/" CT_ID2 "/json");
    CHECK_STR(fe_req_line(&fe, 2, line, sizeof(line)),
              "GET /v1.41/containers/" CT_ID2 "/stats?stream=true");
    /* Nothing else: no Engine call per sample. */
    CHECK_MSG(fe_n_reqs(&fe) == 3, "%zu requests", fe_n_reqs(&fe));
    backend_destroy(&b);
    fe_stop(&fe);
    ct_free(&t);
}

int main(void)
{
    struct berth_err err;

    berth_err_clear(&err);
    if (docker_backend_global_init(&err) < 0)
        return 1;
    test_rows();
    test_chain();
    test_not_object();
    test_stall_limit();
    test_sweep_stall();
    test_one_shot();
    test_sweep_cgroup();
    docker_backend_global_cleanup();
    return test_summary("test_docker_stats");
}
