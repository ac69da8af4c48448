/* /metrics rendering: label value escaping (table rows), the buffer cap,
 * the exposition's shape (HELP and TYPE once, before their samples), the
 * per-VM series (only RUNNING VMs with a sample, ids escaped), the Engine
 * call histogram (cumulative buckets, +Inf, sum), and Engine call latency
 * measured finer than a millisecond (against a fake Engine). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "berth/buf.h"
#include "berth/clock.h"
#include "berth/engine_client.h"
#include "berth/prometheus.h"
#include "berth/vm_registry.h"
#include "fake_engine.h"
#include "testlib.h"

struct escape_row {
    const char *desc;
    const char *in;
    const char *out;
};

static const struct escape_row escape_rows[] = {
    {"plain text stays", "web-1", "web-1"},
    {"empty stays empty", "", ""},
    {"backslash doubled", "a\\b", "a\\\\b"},
    {"double quote escaped", "say \"hi\"", "say \\\"hi\\\""},
    {"newline as backslash n", "line1\nline2", "line1\\nline2"},
    {"all three, adjacent", "\\\"\n", "\\\\\\\"\\n"},
    {"carriage return and tab are not escaped", "a\rb\tc", "a\rb\tc"},
    {"UTF-8 passes through", "caf\xc3\xa9", "caf\xc3\xa9"},
    {"a backslash before n is not a newline", "\\n", "\\\\n"},
};

static void test_label_escaping(void)
{
    for (size_t i = 0; i < sizeof(escape_rows) / sizeof(escape_rows[0]); i++) {
        const struct escape_row *r = &escape_rows[i];
        struct buf b;
        struct berth_err err;

        buf_init(&b, 1024);
        berth_err_clear(&err);
        CHECK_MSG(prometheus_append_label_value(&b, r->in, &err) == 0, "%s", r->desc);
        CHECK_MSG(strcmp(b.data != NULL ? b.data : "", r->out) == 0, "%s: got \"%s\"", r->desc,
                  b.data != NULL ? b.data : "");
        buf_release(&b);
    }
}

/* An escaped value that does not fit the buffer's cap: -1, resource_exhausted. */
static void test_label_escaping_cap(void)
{
    struct buf b;
    struct berth_err err;

    buf_init(&b, 4);
    berth_err_clear(&err);
    CHECK(prometheus_append_label_value(&b, "ab\"c", &err) == -1);
    CHECK(err.code == BERTH_RESOURCE_EXHAUSTED);
    buf_release(&b);
}

static void add_vm(struct vm_registry *r, const char *id, enum vm_state state, int64_t sampled_at,
                   double cpu)
{
    struct vm_snapshot init;
    struct vm_record *rec = NULL;
    struct vm_metrics m;
    struct berth_err err;

    memset(&init, 0, sizeof(init));
    init.id = (char *)id;
    init.container_id = "c";
    init.state = state;
    berth_err_clear(&err);
    if (vm_registry_reserve(r, &init, &rec, &err) < 0)
        abort();
    vm_registry_publish(r, rec);
    vm_registry_release(r, rec);
    memset(&m, 0, sizeof(m));
    m.cpu_percent = cpu;
    m.cpu_total_ns = 2500000000u;
    m.memory_bytes = 4096;
    m.rx_bytes = 7;
    m.sampled_at_unix_ms = sampled_at;
    if (sampled_at > 0)
        CHECK(vm_registry_set_metrics(r, id, &m) == 0);
}

/* Whether `text` has `line` as a whole line. */
static int has_line(const char *text, const char *line)
{
    size_t n = strlen(line);

    for (const char *p = text; p != NULL && *p != '\0';) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);

        if (len == n && memcmp(p, line, n) == 0)
            return 1;
        p = nl ? nl + 1 : NULL;
    }
    return 0;
}

/* The family a sample line belongs to: its name, less a histogram suffix
 * when the bare name was declared. */
static void family_of(const char *line, size_t len, const char *declared, char *out, size_t outsz)
{
    static const char *const suffixes[] = {"_bucket", "_sum", "_count"};
    size_t n = strcspn(line, "{ ");

    if (n > len)
        n = len;
    snprintf(out, outsz, "%.*s", (int)n, line);
    for (size_t i = 0; i < 3; i++) {
        size_t sl = strlen(suffixes[i]);

        if (n > sl && strcmp(out + n - sl, suffixes[i]) == 0 && strcmp(declared, out) != 0) {
            out[n - sl] = '\0';
            break;
        }
    }
}

/* Every sample follows the # HELP and # TYPE of its own family, each
 * family is declared once, and the text ends with a newline. */
static void check_shape(const char *text)
{
    char current[128] = "", seen[64][128];
    size_t n_seen = 0;

    CHECK(text[0] != '\0' && text[strlen(text) - 1] == '\n');
    for (const char *p = text; *p != '\0';) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        char name[128];

        if (strncmp(p, "# HELP ", 7) == 0) {
            snprintf(name, sizeof(name), "%.*s", (int)strcspn(p + 7, " \n"), p + 7);
            for (size_t i = 0; i < n_seen; i++)
                CHECK_MSG(strcmp(seen[i], name) != 0, "family %s declared twice", name);
            if (n_seen < 64)
                snprintf(seen[n_seen++], sizeof(seen[0]), "%s", name);
            snprintf(current, sizeof(current), "%s", name);
            CHECK_MSG(nl != NULL && strncmp(nl + 1, "# TYPE ", 7) == 0 &&
                          strncmp(nl + 8, name, strlen(name)) == 0,
                      "TYPE right after HELP of %s", name);
        } else if (strncmp(p, "# TYPE ", 7) != 0) {
            family_of(p, len, current, name, sizeof(name));
            CHECK_MSG(strcmp(name, current) == 0, "sample %.*s under family %s", (int)len, p,
                      current);
        }
        p = nl ? nl + 1 : p + len;
    }
}

/* The per-VM series: RUNNING VMs with a sample only, ids escaped; VM
 * counts by state; no collector, backend or router: their series are zero
 * or absent, and the text is still well formed. */
static void test_render_vms(void)
{
    struct vm_registry *r = vm_registry_new();
    struct prometheus_sources src;
    struct prometheus *p;
    struct buf out;
    struct berth_err err;

    if (r == NULL)
        abort();
    add_vm(r, "web-1", VM_STATE_RUNNING, berth_unix_ms(), 12.5);
    add_vm(r, "odd\"vm\\1\n", VM_STATE_RUNNING, berth_unix_ms(), 1);
    add_vm(r, "paused-1", VM_STATE_PAUSED, berth_unix_ms(), 3);
    add_vm(r, "fresh-1", VM_STATE_RUNNING, 0, 0);
    {
        struct vm_observed o = {"c", VM_STATE_UNSPECIFIED, -1, -1, NULL, BACKEND_HEALTH_HEALTHY};

        CHECK(vm_registry_observe(r, "web-1", &o) == 0);
        o.health = BACKEND_HEALTH_UNHEALTHY; /* paused: not among the running ones */
        CHECK(vm_registry_observe(r, "paused-1", &o) == 0);
        o.health = BACKEND_HEALTH_NONE;
        CHECK(vm_registry_observe(r, "fresh-1", &o) == 0);
    }
    memset(&src, 0, sizeof(src));
    src.vms = r;
    p = prometheus_new(&src);
    CHECK(p != NULL);
    buf_init(&out, 1 << 20);
    berth_err_clear(&err);
    CHECK_MSG(prometheus_render(p, &out, &err) == 0, "%s", err.msg);
    if (out.data != NULL) {
        check_shape(out.data);
        CHECK(has_line(out.data, "berth_vm_cpu_usage_percent{vm_id=\"web-1\"} 12.5"));
        CHECK(has_line(out.data, "berth_vm_cpu_seconds_total{vm_id=\"web-1\"} 2.5"));
        CHECK(strstr(out.data, "# TYPE berth_vm_cpu_seconds_total counter\n") != NULL);
        CHECK(has_line(out.data, "berth_vm_memory_usage_bytes{vm_id=\"web-1\"} 4096"));
        CHECK(has_line(out.data, "berth_vm_network_receive_bytes_total{vm_id=\"web-1\"} 7"));
        CHECK(has_line(out.data, "berth_vm_cpu_usage_percent{vm_id=\"odd\\\"vm\\\\1\\n\"} 1"));
        CHECK(strstr(out.data, "paused-1") == NULL);
        CHECK(strstr(out.data, "fresh-1") == NULL);
        CHECK(has_line(out.data, "berth_vms{state=\"running\"} 3"));
        CHECK(has_line(out.data, "berth_vms{state=\"paused\"} 1"));
        CHECK(has_line(out.data, "berth_vms{state=\"created\"} 0"));
        /* Each running VM once: 3 in all, as berth_vms{state="running"}. */
        CHECK(has_line(out.data, "berth_vms_health{health=\"healthy\"} 1"));
        CHECK(has_line(out.data, "berth_vms_health{health=\"none\"} 1"));
        CHECK(has_line(out.data, "berth_vms_health{health=\"unknown\"} 1"));
        CHECK(has_line(out.data, "berth_vms_health{health=\"unhealthy\"} 0"));
        CHECK(has_line(out.data, "berth_vms_health{health=\"starting\"} 0"));
        CHECK(has_line(out.data, "berth_gateways 0"));
        CHECK(has_line(out.data, "berth_collector_streams 0"));
        CHECK(has_line(out.data, "berth_metrics_scrape_errors_total 0"));
    }
    buf_release(&out);

    /* Past the buffer's cap: -1 with resource_exhausted, never a cut text. */
    buf_init(&out, 256);
    berth_err_clear(&err);
    CHECK(prometheus_render(p, &out, &err) == -1);
    CHECK(err.code == BERTH_RESOURCE_EXHAUSTED);
    buf_release(&out);
    prometheus_free(p);
    vm_registry_free(r);
}

/* A backend that only counts: its engine calls are `ctx`'s. */
static int stub_call_stats(void *ctx, struct backend_call_stats **out, size_t *n)
{
    return engine_stats_snapshot(ctx, out, n);
}

static const struct backend_ops stub_ops = {.name = "stub", .call_stats = stub_call_stats};

/* Non-cumulative counters become cumulative le buckets, +Inf is the count,
 * _sum the total; each outcome that happened is a series, ok always. */
static void test_render_engine_histogram(void)
{
    struct engine_stats *st = engine_stats_new();
    struct prometheus_sources src;
    struct backend stub;
    struct prometheus *p;
    struct buf out;
    struct berth_err err;
    static const char *const want[] = {
        "berth_engine_requests_total{operation=\"POST /containers/{id}/start\",outcome=\"ok\"} 3",
        "berth_engine_requests_total{operation=\"POST /containers/{id}/start\","
        "outcome=\"server_error\"} 1",
        "berth_engine_request_duration_seconds_bucket{operation=\"POST /containers/{id}/start\","
        "le=\"0.001\"} 1",
        "berth_engine_request_duration_seconds_bucket{operation=\"POST /containers/{id}/start\","
        "le=\"0.0025\"} 2",
        "berth_engine_request_duration_seconds_bucket{operation=\"POST /containers/{id}/start\","
        "le=\"1\"} 2",
        "berth_engine_request_duration_seconds_bucket{operation=\"POST /containers/{id}/start\","
        "le=\"2.5\"} 3",
        "berth_engine_request_duration_seconds_bucket{operation=\"POST /containers/{id}/start\","
        "le=\"10\"} 3",
        "berth_engine_request_duration_seconds_bucket{operation=\"POST /containers/{id}/start\","
        "le=\"+Inf\"} 4",
        "berth_engine_request_duration_seconds_sum{operation=\"POST /containers/{id}/start\"} "
        "32.0025",
        "berth_engine_request_duration_seconds_count{operation=\"POST /containers/{id}/start\"} 4",
    };

    if (st == NULL)
        abort();
    engine_stats_record(st, "POST", "/v1.41/containers/abc/start", BACKEND_OUTCOME_OK, 500);
    engine_stats_record(st, "POST", "/v1.41/containers/def/start", BACKEND_OUTCOME_OK, 2000);
    engine_stats_record(st, "POST", "/v1.41/containers/abc/start", BACKEND_OUTCOME_OK, 2000000);
    engine_stats_record(st, "POST", "/v1.41/containers/abc/start?x=1", BACKEND_OUTCOME_SERVER_ERROR,
                        30000000);
    memset(&src, 0, sizeof(src));
    stub.ops = &stub_ops;
    stub.ctx = st;
    src.backend = &stub;
    p = prometheus_new(&src);
    CHECK(p != NULL);
    buf_init(&out, 1 << 20);
    berth_err_clear(&err);
    CHECK_MSG(prometheus_render(p, &out, &err) == 0, "%s", err.msg);
    if (out.data != NULL) {
        check_shape(out.data);
        for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
            CHECK_MSG(has_line(out.data, want[i]), "missing: %s", want[i]);
        CHECK(strstr(out.data, "outcome=\"client_error\"") == NULL);
    }
    buf_release(&out);
    prometheus_free(p);
    engine_stats_free(st);
}

/* The sum of the latencies of one operation, in microseconds. */
static int64_t op_sum_us(struct engine_stats *st, const char *op)
{
    struct backend_call_stats *ops = NULL;
    size_t n = 0;
    int64_t us = -1;

    if (engine_stats_snapshot(st, &ops, &n) < 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (strcmp(ops[i].op, op) == 0)
            us = llround(ops[i].latency_sum_s * 1e6);
    free(ops);
    return us;
}

/* Engine calls are timed in microseconds, so the 1 ms and 2.5 ms buckets
 * mean something: of three calls to a local fake Engine, at least one
 * lasts a time that is not a whole number of milliseconds (with a
 * millisecond clock every one would). */
static void test_engine_latency_resolution(void)
{
    struct fake_engine fe;
    struct engine_stats *st = engine_stats_new();
    struct engine *e = NULL;
    struct berth_err err;
    int64_t before = 0, sub_ms = 0;

    if (st == NULL)
        abort();
    fe_init(&fe);
    fe_start(&fe);
    berth_err_clear(&err);
    CHECK(engine_new(fe.sock, &e, &err) == 0);
    engine_set_stats(e, st);
    for (int i = 0; i < 3 && e != NULL; i++) {
        struct engine_response resp;
        int64_t after;

        fe_reply(&fe, 200, "[]");
        engine_response_init(&resp);
        CHECK_MSG(engine_request(e, "GET", "/containers/json", NULL, berth_now_ms() + 5000, &resp,
                                 &err) == 0,
                  "%s", err.msg);
        engine_response_release(&resp);
        after = op_sum_us(st, "GET /containers/json");
        CHECK(after > before);
        if ((after - before) % 1000 != 0)
            sub_ms++;
        before = after;
    }
    CHECK_MSG(sub_ms > 0, "every call took a whole number of milliseconds: %lld us in all",
              (long long)before);
    engine_free(e);
    fe_stop(&fe);
    engine_stats_free(st);
}

int main(void)
{
    struct berth_err err;

    berth_err_clear(&err);
    if (engine_global_init(&err) < 0)
        return 1;
    test_label_escaping();
    test_label_escaping_cap();
    test_render_vms();
    test_render_engine_histogram();
    test_engine_latency_resolution();
    engine_global_cleanup();
    return test_summary("test_prometheus");
}
