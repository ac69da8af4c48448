/* Logs: lines made valid UTF-8 and the query filters (backend_logs.c); the
 * Engine's log bodies parsed (docker_logs.c) on recorded fixtures
 * (tests/unit/fixtures/logs_*.bin: the multiplexed framing with both
 * streams, a line split over frames, invalid UTF-8, NUL, CRLF and a last
 * line without newline; a TTY's raw stream; a cut-off frame); and GetLogs
 * (log_service.c) on the memory backend: the request checks, a VM's lines,
 * a deployment's replicas merged in time order with their instance ids, one
 * instance, the filters, the byte limit and unknown objects. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/backend/docker/docker_internal.h"
#include "berth/arena.h"
#include "berth/backend.h"
#include "berth/clock.h"
#include "berth/log_service.h"
#include "berth/memory_backend.h"
#include "berth/router.h"
#include "berth/v1/observe.pb-c.h"
#include "berth/vm_registry.h"
#include "testlib.h"

#define S_NS 1000000000LL
#define T0 1796292000LL /* 2026-12-03T10:00:00Z */

static char *fixture_bytes(const char *name, size_t *len)
{
    const char *self = __FILE__;
    const char *slash = strrchr(self, '/');
    size_t dirlen = slash ? (size_t)(slash - self) : 1;
    char path[4096];
    char *data = NULL;
    long n;
    FILE *f;

    snprintf(path, sizeof(path), "%.*s/fixtures/%s", (int)dirlen, slash ? self : ".", name);
    f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "cannot open fixture %s\n", path);
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        data = malloc((size_t)n + 1);
        if (data != NULL && fread(data, 1, (size_t)n, f) == (size_t)n) {
            *len = (size_t)n;
        } else {
            free(data);
            data = NULL;
        }
    }
    fclose(f);
    return data;
}

static void test_line_cleanup(void)
{
    struct backend_log_list l = {0};
    struct berth_err err;

    berth_err_clear(&err);
    CHECK(backend_log_list_add(&l, 1, BACKEND_LOG_STDOUT, "ok\r", 3, &err) == 0);
    CHECK(backend_log_list_add(&l, 2, BACKEND_LOG_STDERR, "a\xc3(b", 4, &err) == 0);
    CHECK(backend_log_list_add(&l, 3, BACKEND_LOG_STDOUT, "x\0y", 3, &err) == 0);
    CHECK(backend_log_list_add(&l, 4, BACKEND_LOG_STDOUT, "\xe2\x82\xac", 3, &err) == 0);
    CHECK(l.n == 4);
    CHECK_STR(l.items[0].line, "ok");
    CHECK(l.items[0].len == 2);
    CHECK_STR(l.items[1].line, "a\xef\xbf\xbd(b");
    CHECK_STR(l.items[2].line, "x\xef\xbf\xbdy");
    CHECK(l.items[2].len == 5);
    CHECK_STR(l.items[3].line, "\xe2\x82\xac");
    backend_log_list_release(&l);
}

static void fill(struct backend_log_list *l, size_t n)
{
    struct berth_err err;
    char line[32];

    for (size_t i = 0; i < n; i++) {
        int len = snprintf(line, sizeof(line), "line %zu", i);

        CHECK(backend_log_list_add(l, (int64_t)(i + 1) * 1000000,
                                   i % 2 ? BACKEND_LOG_STDERR : BACKEND_LOG_STDOUT, line,
                                   (size_t)len, &err) == 0);
    }
}

static void test_filter(void)
{
    struct backend_log_list l = {0};
    struct backend_log_query q = {0};

    /* Lines at 1..10 ms, even ones stdout. */
    fill(&l, 10);
    q.tail_lines = 3;
    backend_log_list_filter(&l, &q);
    CHECK(l.n == 3 && !l.truncated);
    CHECK_STR(l.items[0].line, "line 7");
    backend_log_list_release(&l);

    fill(&l, 10);
    q = (struct backend_log_query){.since_unix_ms = 7, .streams = BACKEND_LOG_STDOUT};
    backend_log_list_filter(&l, &q);
    CHECK(l.n == 2);
    CHECK_STR(l.items[0].line, "line 6");
    CHECK(l.items[0].stream == BACKEND_LOG_STDOUT && l.items[1].stream == BACKEND_LOG_STDOUT);
    backend_log_list_release(&l);

    /* 6 bytes per line: 20 bytes hold the newest three. */
    fill(&l, 10);
    q = (struct backend_log_query){.max_bytes = 20};
    backend_log_list_filter(&l, &q);
    CHECK(l.n == 3 && l.truncated);
    CHECK_STR(l.items[2].line, "line 9");
    backend_log_list_release(&l);

    /* Nothing matched: an empty list is fine. */
    fill(&l, 2);
    q = (struct backend_log_query){.since_unix_ms = 1000};
    backend_log_list_filter(&l, &q);
    CHECK(l.n == 0 && !l.truncated);
    backend_log_list_release(&l);
}

static void test_parse_multiplexed(void)
{
    size_t len = 0;
    char *data = fixture_bytes("logs_multiplexed.bin", &len);
    struct backend_log_list l = {0};
    struct berth_err err;

    CHECK(data != NULL);
    if (data == NULL)
        return;
    berth_err_clear(&err);
    CHECK(docker_logs_parse(data, len, 0, &l, &err) == 0);
    CHECK_MSG(l.n == 6, "%zu lines", l.n);
    if (l.n == 6) {
        CHECK_STR(l.items[0].line, "hello out");
        CHECK(l.items[0].stream == BACKEND_LOG_STDOUT);
        CHECK(l.items[0].time_unix_ns == (T0 + 1) * S_NS + 1);
        CHECK_STR(l.items[1].line, "oops err");
        CHECK(l.items[1].stream == BACKEND_LOG_STDERR);
        CHECK(l.items[1].time_unix_ns == (T0 + 1) * S_NS + 500000000);
        /* Split over two frames: joined, with the first frame's time. */
        CHECK_STR(l.items[2].line, "first half second half");
        CHECK(l.items[2].time_unix_ns == (T0 + 2) * S_NS + 123456789);
        CHECK_STR(l.items[3].line, "bad \xef\xbf\xbd\xef\xbf\xbd utf8 \xef\xbf\xbd\xef\xbf\xbd");
        CHECK(l.items[3].time_unix_ns == (T0 + 3) * S_NS);
        CHECK_STR(l.items[4].line, "nul\xef\xbf\xbd"
                                   "byte");
        CHECK(l.items[4].time_unix_ns == (T0 + 4) * S_NS + 100000000);
        CHECK_STR(l.items[5].line, "no newline");
    }
    backend_log_list_release(&l);
    free(data);
}

static void test_parse_tty_and_broken(void)
{
    size_t len = 0;
    char *data = fixture_bytes("logs_tty.bin", &len);
    struct backend_log_list l = {0};
    struct berth_err err;

    CHECK(data != NULL);
    if (data == NULL)
        return;
    berth_err_clear(&err);
    CHECK(docker_logs_parse(data, len, 1, &l, &err) == 0);
    CHECK(l.n == 2);
    if (l.n == 2) {
        CHECK_STR(l.items[0].line, "tty one");
        CHECK_STR(l.items[1].line, "tty two");
        CHECK(l.items[1].stream == BACKEND_LOG_STDOUT);
        CHECK(l.items[1].time_unix_ns == (T0 + 2) * S_NS);
    }
    backend_log_list_release(&l);
    free(data);

    data = fixture_bytes("logs_truncated.bin", &len);
    CHECK(data != NULL);
    if (data == NULL)
        return;
    CHECK(docker_logs_parse(data, len, 0, &l, &err) == -1);
    CHECK(err.code == BERTH_UNKNOWN);
    CHECK(l.n == 0);
    free(data);

    /* No output at all. */
    CHECK(docker_logs_parse("", 0, 0, &l, &err) == 0 && l.n == 0);
}

/* ---- GetLogs ------------------------------------------------------------- */

struct fixture {
    struct backend backend;
    struct vm_registry *vms;
    struct log_service *svc;
    struct router *router;
    struct arena *arena;
};

static int fixture_init(struct fixture *f, size_t max_bytes)
{
    struct log_service_config cfg = {max_bytes};
    struct berth_err err;

    memset(f, 0, sizeof(*f));
    if (memory_backend_new(&f->backend, &err) < 0)
        return -1;
    f->vms = vm_registry_new();
    f->svc = log_service_new(&cfg, &f->backend, f->vms);
    f->router = router_new();
    f->arena = arena_new();
    if (f->vms == NULL || f->svc == NULL || f->router == NULL || f->arena == NULL ||
        log_service_register(f->svc, f->router) < 0)
        return -1;
    return 0;
}

static void fixture_release(struct fixture *f)
{
    log_service_free(f->svc);
    router_free(f->router);
    arena_free(f->arena);
    vm_registry_free(f->vms);
    backend_destroy(&f->backend);
}

static int get_logs(struct fixture *f, const Berth__V1__GetLogsRequest *in,
                    Berth__V1__GetLogsResponse **out, struct berth_err *err)
{
    const char *path = "/berth.v1.LogService/GetLogs";
    struct rpc_route *r = router_find(f->router, path, strlen(path));
    struct rpc_call c = {f->arena, berth_now_ms() + 10000, path, "test"};
    ProtobufCMessage *o = NULL;
    int rc;

    berth_err_clear(err);
    if (r == NULL || r->handler == NULL)
        return berth_err_set(err, BERTH_UNIMPLEMENTED, "no handler");
    rc = r->handler(r->handler_ctx, &c, &in->base, &o, err);
    *out = (Berth__V1__GetLogsResponse *)o;
    return rc;
}

/* A VM record whose container is made in the backend with `n` lines. */
static void add_vm(struct fixture *f, const char *id, const struct backend_log_entry *lines,
                   size_t n)
{
    struct backend_spec spec = {.name = id, .image = "busybox"};
    struct vm_snapshot s = {0};
    struct vm_record *rec = NULL;
    struct berth_err err;
    char *cid = NULL;

    CHECK(f->backend.ops->create(f->backend.ctx, &spec, berth_now_ms() + 1000, &cid, &err) == 0);
    CHECK(memory_backend_set_logs(&f->backend, cid, lines, n) == 0);
    s.id = (char *)id;
    s.container_id = cid;
    CHECK(vm_registry_reserve(f->vms, &s, &rec, &err) == 0);
    if (rec != NULL) {
        vm_registry_publish(f->vms, rec);
        vm_registry_release(f->vms, rec);
    }
    free(cid);
}

#define E(t, st, text)                                                                             \
    {                                                                                              \
        (t), (st), (char *)(text), sizeof(text) - 1                                                \
    }

static void test_request_checks(void)
{
    struct fixture f;
    Berth__V1__GetLogsRequest r = BERTH__V1__GET_LOGS_REQUEST__INIT;
    Berth__V1__GetLogsResponse *out;
    struct berth_err err;

    CHECK(fixture_init(&f, 4 << 20) == 0);
    CHECK(get_logs(&f, &r, &out, &err) == -1 && err.code == BERTH_INVALID_ARGUMENT);
    CHECK(strstr(err.msg, "vmId") != NULL);
    r.vm_id = "a";
    r.gateway_id = "b";
    CHECK(get_logs(&f, &r, &out, &err) == -1 && err.code == BERTH_INVALID_ARGUMENT);
    CHECK(strstr(err.msg, "gatewayId") != NULL);
    r.gateway_id = "";
    r.tail_lines = 10001;
    CHECK(get_logs(&f, &r, &out, &err) == -1 && err.code == BERTH_INVALID_ARGUMENT);
    CHECK(strstr(err.msg, "tailLines") != NULL);
    r.tail_lines = 0;
    r.since_unix_ms = -1;
    CHECK(get_logs(&f, &r, &out, &err) == -1 && strstr(err.msg, "sinceUnixMs") != NULL);
    r.since_unix_ms = 0;
    r.stream = 7;
    CHECK(get_logs(&f, &r, &out, &err) == -1 && strstr(err.msg, "stream") != NULL);
    r.stream = 0;
    r.instance_id = "a-0";
    CHECK(get_logs(&f, &r, &out, &err) == -1 && strstr(err.msg, "instanceId") != NULL);
    r.instance_id = "";
    r.vm_id = "bad id";
    CHECK(get_logs(&f, &r, &out, &err) == -1 && strstr(err.msg, "vmId") != NULL);
    /* Unknown objects. */
    r.vm_id = "nope";
    CHECK(get_logs(&f, &r, &out, &err) == -1 && err.code == BERTH_NOT_FOUND);
    r.vm_id = "";
    r.deployment_id = "nope";
    CHECK(get_logs(&f, &r, &out, &err) == -1 && err.code == BERTH_NOT_FOUND);
    fixture_release(&f);
}

static void test_vm_logs(void)
{
    struct fixture f;
    Berth__V1__GetLogsRequest r = BERTH__V1__GET_LOGS_REQUEST__INIT;
    Berth__V1__GetLogsResponse *out = NULL;
    struct berth_err err;
    const struct backend_log_entry lines[] = {
        E(1 * S_NS, BACKEND_LOG_STDOUT, "one"),
        E(2 * S_NS, BACKEND_LOG_STDERR, "two"),
        E(3 * S_NS, BACKEND_LOG_STDOUT, "three"),
    };

    CHECK(fixture_init(&f, 4 << 20) == 0);
    add_vm(&f, "vm-1", lines, 3);
    r.vm_id = "vm-1";
    CHECK(get_logs(&f, &r, &out, &err) == 0);
    CHECK(out != NULL && out->n_entries == 3 && !out->truncated);
    if (out != NULL && out->n_entries == 3) {
        CHECK_STR(out->entries[0]->line, "one");
        CHECK(out->entries[1]->stream == BERTH__V1__LOG_STREAM__LOG_STREAM_STDERR);
        CHECK(out->entries[2]->time_unix_ns == 3 * S_NS);
        CHECK_STR(out->entries[2]->instance_id, "");
    }
    r.tail_lines = 1;
    CHECK(get_logs(&f, &r, &out, &err) == 0 && out->n_entries == 1);
    CHECK_STR(out->entries[0]->line, "three");
    r.tail_lines = 0;
    r.stream = BERTH__V1__LOG_STREAM__LOG_STREAM_STDERR;
    CHECK(get_logs(&f, &r, &out, &err) == 0 && out->n_entries == 1);
    CHECK_STR(out->entries[0]->line, "two");
    r.stream = 0;
    r.since_unix_ms = 2000;
    CHECK(get_logs(&f, &r, &out, &err) == 0 && out->n_entries == 2);
    CHECK_STR(out->entries[0]->line, "two");
    fixture_release(&f);
}

static void test_replica_logs(void)
{
    struct fixture f;
    Berth__V1__GetLogsRequest r = BERTH__V1__GET_LOGS_REQUEST__INIT;
    Berth__V1__GetLogsResponse *out = NULL;
    struct backend_replica_spec spec = {.kind = OBJECT_DEPLOYMENT,
                                        .ns = "ns1",
                                        .id = "dep",
                                        .replicas = 3,
                                        .digest = "d1",
                                        .tmpl = {.image = "busybox"}};
    struct backend_replica_set set = {0};
    struct berth_err err;
    int64_t dl = berth_now_ms() + 1000;

    CHECK(fixture_init(&f, 4 << 20) == 0);
    CHECK(f.backend.ops->replica_apply(f.backend.ctx, &spec, dl, NULL, &err) == 0);
    CHECK(f.backend.ops->replica_get(f.backend.ctx, OBJECT_DEPLOYMENT, "ns1", "dep", dl, &set,
                                     &err) == 0);
    CHECK(set.n == 3);
    for (size_t i = 0; i < set.n; i++) {
        /* Replica i prints at i, i+3, i+6 seconds. */
        char text[3][16];
        struct backend_log_entry e[3];

        for (int k = 0; k < 3; k++) {
            int len = snprintf(text[k], sizeof(text[k]), "r%u-%d", set.items[i].index, k);

            e[k] = (struct backend_log_entry){(int64_t)(set.items[i].index + 3 * k) * S_NS,
                                              BACKEND_LOG_STDOUT, text[k], (size_t)len};
        }
        CHECK(memory_backend_set_logs(&f.backend, set.items[i].handle, e, 3) == 0);
    }
    backend_replica_set_release(&set);

    r.deployment_id = "dep";
    r.namespace_ = "ns1";
    CHECK(get_logs(&f, &r, &out, &err) == 0);
    CHECK(out != NULL && out->n_entries == 9);
    for (size_t i = 0; out != NULL && i < out->n_entries; i++) {
        char want[48], inst[48];

        snprintf(want, sizeof(want), "r%zu-%zu", i % 3, i / 3);
        snprintf(inst, sizeof(inst), "dep-%zu", i % 3);
        CHECK_STR(out->entries[i]->line, want);
        CHECK_STR(out->entries[i]->instance_id, inst);
        CHECK(out->entries[i]->time_unix_ns == (int64_t)i * S_NS);
    }
    /* Tail counts per container. */
    r.tail_lines = 1;
    CHECK(get_logs(&f, &r, &out, &err) == 0 && out->n_entries == 3);
    CHECK_STR(out->entries[0]->line, "r0-2");
    r.tail_lines = 0;
    /* One instance. */
    r.instance_id = "dep-1";
    CHECK(get_logs(&f, &r, &out, &err) == 0 && out->n_entries == 3);
    CHECK_STR(out->entries[2]->line, "r1-2");
    r.instance_id = "dep-7";
    CHECK(get_logs(&f, &r, &out, &err) == -1 && err.code == BERTH_NOT_FOUND);
    r.instance_id = "";
    /* Another namespace: not there. */
    r.namespace_ = "ns2";
    CHECK(get_logs(&f, &r, &out, &err) == -1 && err.code == BERTH_NOT_FOUND);
    fixture_release(&f);

    /* A limit of 3 entries' worth: the newest three stay, truncated. */
    CHECK(fixture_init(&f, 3 * (4 + 5 + 32)) == 0);
    CHECK(f.backend.ops->replica_apply(f.backend.ctx, &spec, dl, NULL, &err) == 0);
    CHECK(f.backend.ops->replica_get(f.backend.ctx, OBJECT_DEPLOYMENT, "ns1", "dep", dl, &set,
                                     &err) == 0);
    for (size_t i = 0; i < set.n; i++) {
        const struct backend_log_entry e[] = {E(1 * S_NS, BACKEND_LOG_STDOUT, "aaaa"),
                                              E(5 * S_NS, BACKEND_LOG_STDOUT, "bbbb")};

        CHECK(memory_backend_set_logs(&f.backend, set.items[i].handle, e, 2) == 0);
    }
    backend_replica_set_release(&set);
    r.namespace_ = "ns1";
    CHECK(get_logs(&f, &r, &out, &err) == 0);
    CHECK(out->truncated && out->n_entries == 3);
    for (size_t i = 0; i < out->n_entries; i++)
        CHECK_STR(out->entries[i]->line, "bbbb");
    fixture_release(&f);
}

int main(void)
{
    test_line_cleanup();
    test_filter();
    test_parse_multiplexed();
    test_parse_tty_and_broken();
    test_request_checks();
    test_vm_logs();
    test_replica_logs();
    return test_summary("test_logs");
}
