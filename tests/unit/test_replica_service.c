/* GatewayService and DeploymentService against the memory backend, seen
 * through a thin wrapper backend (whose replica sets are the N-containers
 * code over the wrapper's container operations) that records the last spec, can fail the
 * n-th start and can hide published ports: validation, all-or-nothing
 * create, retries, Get's statuses and addresses, idempotent delete,
 * concurrent creates of one id, the cache of last known answers that Get
 * serves while the Engine is down, and short sets shown as such. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/arena.h"
#include "berth/clock.h"
#include "berth/docker_replicas.h"
#include "berth/replica_service.h"
#include "berth/memory_backend.h"
#include "berth/router.h"
#include "krane/v1/deployment.pb-c.h"
#include "krane/v1/gateway.pb-c.h"
#include "testlib.h"

#define GW "/krane.v1.GatewayService/"
#define DEP "/krane.v1.DeploymentService/"

typedef Krane__V1__GatewayRequest GatewayRequest;
typedef Krane__V1__GatewayRequest__EnvEntry EnvEntry;

/* The wrapper backend: the memory backend plus what the tests need to see. */
struct spy {
    struct backend inner;
    struct backend_ops ops;
    pthread_mutex_t lock;
    int starts;           /* guarded by lock */
    int fail_start_at;    /* guarded by lock: fail the n-th start (1-based), 0 never */
    int hide_ports;       /* guarded by lock */
    int64_t nano_cpus;    /* guarded by lock: of the last create */
    int64_t memory_bytes; /* guarded by lock */
    int container_port;   /* guarded by lock */
    char restart[32];     /* guarded by lock */
    char env[16][128];    /* guarded by lock */
    size_t n_env;         /* guarded by lock */
    struct backend self;  /* ops = &ops, ctx = this spy */
};

struct fixture {
    struct spy spy;
    struct backend backend; /* ops = &spy.ops, ctx = &spy */
    struct replica_service *svc;
    struct router *router;
    struct arena *arena;
};

static int spy_create(void *ctx, const struct backend_spec *spec, int64_t deadline, char **id_out,
                      struct berth_err *err);
static int spy_start(void *ctx, const char *id, int64_t deadline, struct berth_err *err);
static int spy_remove(void *ctx, const char *id, int64_t deadline, struct berth_err *err);
static int spy_unpause(void *ctx, const char *id, int64_t deadline, struct berth_err *err);
static int spy_list(void *ctx, const char *label, int64_t deadline,
                    struct backend_container_list *out, struct berth_err *err);
static int spy_replica_apply(void *ctx, const struct backend_replica_spec *spec, int64_t deadline,
                             struct backend_apply_result *out, struct berth_err *err);
static int spy_replica_get(void *ctx, enum object_kind kind, const char *ns, const char *id,
                           int64_t deadline, struct backend_replica_set *out,
                           struct berth_err *err);
static int spy_replica_list(void *ctx, enum object_kind kind, const char *id, int64_t deadline,
                            struct backend_replica_set_list *out, struct berth_err *err);
static int spy_replica_delete(void *ctx, enum object_kind kind, const char *ns, const char *id,
                              int64_t deadline, size_t *removed, struct berth_err *err);
static int fixture_init(struct fixture *f, const char *advertise_host);
static void fixture_release(struct fixture *f);
static int call(struct fixture *f, const char *path, const void *in, ProtobufCMessage **out,
                struct berth_err *err);
static GatewayRequest gw_request(const char *id, unsigned replicas);
static int create_gw(struct fixture *f, GatewayRequest *g, struct berth_err *err);
static Krane__V1__GetGatewayResponse *get_gw(struct fixture *f, const char *ns, const char *id,
                                             struct berth_err *err);
static int delete_gw(struct fixture *f, const char *ns, const char *id, struct berth_err *err);
static const char *container_id_of(struct fixture *f, const char *name);
static size_t count_label(struct fixture *f, const char *label);

static void test_validation(void);
static void test_missing_object(void);
static void test_secrets_refused(void);
static void test_spec_mapping(void);
static void test_rollback(void);
static void test_retry(void);
static void test_different_spec(void);
static void test_get_status_and_address(void);
static void test_advertise_host(void);
static void test_delete(void);
static void test_namespaces(void);
static void test_deployment(void);
static void test_concurrent_create(void);
static void test_cache_outage(void);
static void test_cache_sync(void);
static void test_cache_event(void);
static void test_short_set(void);
static void test_retry_unpauses(void);
static void test_memory_replica_sets(void);
static void test_max_replicas_total(void);
static int fail_list(struct fixture *f);
static int started_container(struct fixture *f, const char *name, const struct backend_label *l,
                             size_t n);

/* ---- the wrapper backend ------------------------------------------------ */

static int spy_create(void *ctx, const struct backend_spec *spec, int64_t deadline, char **id_out,
                      struct berth_err *err)
{
    struct spy *s = ctx;

    pthread_mutex_lock(&s->lock);
    s->nano_cpus = spec->nano_cpus;
    s->memory_bytes = spec->memory_bytes;
    s->container_port = spec->n_ports ? spec->ports[0].container_port : 0;
    snprintf(s->restart, sizeof(s->restart), "%s",
             spec->restart_policy ? spec->restart_policy : "");
    s->n_env = 0;
    for (size_t i = 0; i < spec->n_env && i < 16; i++)
        snprintf(s->env[s->n_env++], sizeof(s->env[0]), "%s", spec->env[i]);
    pthread_mutex_unlock(&s->lock);
    return s->inner.ops->create(s->inner.ctx, spec, deadline, id_out, err);
}

static int spy_start(void *ctx, const char *id, int64_t deadline, struct berth_err *err)
{
    struct spy *s = ctx;

    pthread_mutex_lock(&s->lock);
    if (++s->starts == s->fail_start_at)
        memory_backend_fail_next(&s->inner, "start", 1, BERTH_UNAVAILABLE);
    pthread_mutex_unlock(&s->lock);
    return s->inner.ops->start(s->inner.ctx, id, deadline, err);
}

static int spy_remove(void *ctx, const char *id, int64_t deadline, struct berth_err *err)
{
    struct spy *s = ctx;

    return s->inner.ops->remove(s->inner.ctx, id, deadline, err);
}

static int spy_unpause(void *ctx, const char *id, int64_t deadline, struct berth_err *err)
{
    struct spy *s = ctx;

    return s->inner.ops->unpause(s->inner.ctx, id, deadline, err);
}

static int spy_list(void *ctx, const char *label, int64_t deadline,
                    struct backend_container_list *out, struct berth_err *err)
{
    struct spy *s = ctx;
    int hide;

    if (s->inner.ops->list(s->inner.ctx, label, deadline, out, err) < 0)
        return -1;
    pthread_mutex_lock(&s->lock);
    hide = s->hide_ports;
    pthread_mutex_unlock(&s->lock);
    if (hide)
        for (size_t i = 0; i < out->n; i++)
            out->items[i].n_ports = 0;
    return 0;
}

/* Replica sets made of the spy's own containers, so it sees every call. */
static int spy_replica_apply(void *ctx, const struct backend_replica_spec *spec, int64_t deadline,
                             struct backend_apply_result *out, struct berth_err *err)
{
    struct spy *s = ctx;

    return docker_replicas_apply(&s->self, spec, deadline, out, err);
}

static int spy_replica_get(void *ctx, enum object_kind kind, const char *ns, const char *id,
                           int64_t deadline, struct backend_replica_set *out, struct berth_err *err)
{
    struct spy *s = ctx;

    return docker_replicas_get(&s->self, kind, ns, id, deadline, out, err);
}

static int spy_replica_list(void *ctx, enum object_kind kind, const char *id, int64_t deadline,
                            struct backend_replica_set_list *out, struct berth_err *err)
{
    struct spy *s = ctx;

    return docker_replicas_list(&s->self, kind, id, deadline, out, err);
}

static int spy_replica_delete(void *ctx, enum object_kind kind, const char *ns, const char *id,
                              int64_t deadline, size_t *removed, struct berth_err *err)
{
    struct spy *s = ctx;

    return docker_replicas_delete(&s->self, kind, ns, id, deadline, removed, err);
}

/* ---- fixture ------------------------------------------------------------ */

static int fixture_init_max(struct fixture *f, const char *advertise_host, int64_t max_replicas);

static int fixture_init(struct fixture *f, const char *advertise_host)
{
    return fixture_init_max(f, advertise_host, 0);
}

static int fixture_init_max(struct fixture *f, const char *advertise_host, int64_t max_replicas)
{
    struct replica_service_config cfg = {
        .gateway_port = 8040,
        .deployment_port = 8080,
        .advertise_host = advertise_host,
        .publish_address = "127.0.0.1",
        .max_replicas_total = max_replicas,
    };
    struct berth_err err;

    memset(f, 0, sizeof(*f));
    berth_err_clear(&err);
    pthread_mutex_init(&f->spy.lock, NULL);
    if (memory_backend_new(&f->spy.inner, &err) < 0)
        return -1;
    f->spy.ops = *f->spy.inner.ops;
    f->spy.ops.create = spy_create;
    f->spy.ops.start = spy_start;
    f->spy.ops.remove = spy_remove;
    f->spy.ops.unpause = spy_unpause;
    f->spy.ops.list = spy_list;
    f->spy.ops.replica_apply = spy_replica_apply;
    f->spy.ops.replica_get = spy_replica_get;
    f->spy.ops.replica_list = spy_replica_list;
    f->spy.ops.replica_delete = spy_replica_delete;
    f->spy.ops.destroy = NULL;
    f->spy.self.ops = &f->spy.ops;
    f->spy.self.ctx = &f->spy;
    f->backend.ops = &f->spy.ops;
    f->backend.ctx = &f->spy;
    f->svc = replica_service_new(&cfg, &f->backend);
    f->router = router_new();
    f->arena = arena_new();
    if (f->svc == NULL || f->router == NULL || f->arena == NULL ||
        replica_service_register(f->svc, f->router) < 0)
        return -1;
    return 0;
}

static void fixture_release(struct fixture *f)
{
    replica_service_free(f->svc);
    router_free(f->router);
    arena_free(f->arena);
    backend_destroy(&f->spy.inner);
    pthread_mutex_destroy(&f->spy.lock);
}

/* Run one handler as the router would. Output lives in f->arena. */
static int call(struct fixture *f, const char *path, const void *in, ProtobufCMessage **out,
                struct berth_err *err)
{
    struct rpc_route *r = router_find(f->router, path, strlen(path));
    struct rpc_call c = {
        .arena = f->arena,
        .deadline = berth_now_ms() + 10000,
        .procedure = path,
        .request_id = "test",
    };
    ProtobufCMessage *ignored = NULL;

    berth_err_clear(err);
    if (r == NULL || r->handler == NULL)
        return berth_err_set(err, BERTH_UNIMPLEMENTED, "no handler for %s", path);
    return r->handler(r->handler_ctx, &c, in, out ? out : &ignored, err);
}

static GatewayRequest gw_request(const char *id, unsigned replicas)
{
    GatewayRequest g = KRANE__V1__GATEWAY_REQUEST__INIT;

    g.gateway_id = (char *)id;
    g.image = "busybox:latest";
    g.replicas = replicas;
    return g;
}

static int create_gw(struct fixture *f, GatewayRequest *g, struct berth_err *err)
{
    Krane__V1__CreateGatewayRequest req = KRANE__V1__CREATE_GATEWAY_REQUEST__INIT;
    ProtobufCMessage *out = NULL;
    int rc;

    req.gateway = g;
    rc = call(f, GW "CreateGateway", &req, &out, err);
    if (rc == 0 && ((Krane__V1__CreateGatewayResponse *)out)->status !=
                       KRANE__V1__GATEWAY_STATUS__GATEWAY_STATUS_PENDING)
        return berth_err_set(err, BERTH_INTERNAL, "create answered a status other than PENDING");
    return rc;
}

static Krane__V1__GetGatewayResponse *get_gw(struct fixture *f, const char *ns, const char *id,
                                             struct berth_err *err)
{
    Krane__V1__GetGatewayRequest req = KRANE__V1__GET_GATEWAY_REQUEST__INIT;
    ProtobufCMessage *out = NULL;

    req.namespace_ = (char *)ns;
    req.gateway_id = (char *)id;
    if (call(f, GW "GetGateway", &req, &out, err) < 0)
        return NULL;
    return (Krane__V1__GetGatewayResponse *)out;
}

static int delete_gw(struct fixture *f, const char *ns, const char *id, struct berth_err *err)
{
    Krane__V1__DeleteGatewayRequest req = KRANE__V1__DELETE_GATEWAY_REQUEST__INIT;

    req.namespace_ = (char *)ns;
    req.gateway_id = (char *)id;
    return call(f, GW "DeleteGateway", &req, NULL, err);
}

/* The memory backend's id of the container named `name`, in f->arena; NULL
 * when there is none. */
static const char *container_id_of(struct fixture *f, const char *name)
{
    struct backend_container c = {0};
    struct berth_err err;
    const char *id = NULL;

    berth_err_clear(&err);
    if (f->spy.inner.ops->inspect(f->spy.inner.ctx, name, BERTH_NO_DEADLINE, &c, &err) == 0)
        id = arena_strdup(f->arena, c.id);
    backend_container_release(&c);
    return id;
}

static size_t count_label(struct fixture *f, const char *label)
{
    struct backend_container_list l = {0};
    struct berth_err err;
    size_t n;

    berth_err_clear(&err);
    if (f->spy.inner.ops->list(f->spy.inner.ctx, label, BERTH_NO_DEADLINE, &l, &err) < 0)
        return (size_t)-1;
    n = l.n;
    backend_container_list_release(&l);
    return n;
}

/* ---- tests -------------------------------------------------------------- */

static void test_validation(void)
{
    static EnvEntry empty_key = KRANE__V1__GATEWAY_REQUEST__ENV_ENTRY__INIT;
    static EnvEntry eq_key = KRANE__V1__GATEWAY_REQUEST__ENV_ENTRY__INIT;
    static EnvEntry reserved_key = KRANE__V1__GATEWAY_REQUEST__ENV_ENTRY__INIT;
    static const struct {
        const char *desc;
        const char *id;
        const char *image;
        unsigned replicas;
        unsigned cpu;
        uint64_t mib;
        const char *ns;
        EnvEntry *env;
        const char *want; /* substring of the message */
    } rows[] = {
        {"empty id", "", "busybox", 1, 0, 0, "", NULL, "'gateway.gatewayId' is required"},
        {"id with a slash", "a/b", "busybox", 1, 0, 0, "", NULL, "may only hold"},
        {"id starting with a dash", "-a", "busybox", 1, 0, 0, "", NULL, "must start with"},
        {"id of 64 characters", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
         "busybox", 1, 0, 0, "", NULL, "longer than 63"},
        {"no image", "g", "", 1, 0, 0, "", NULL, "'gateway.image' is required"},
        {"zero replicas", "g", "busybox", 0, 0, 0, "", NULL, "'gateway.replicas': 0 is not"},
        {"101 replicas", "g", "busybox", 101, 0, 0, "", NULL, "'gateway.replicas': 101"},
        {"cpu below 10 millicores", "g", "busybox", 1, 5, 0, "", NULL, "cpuMillicores"},
        {"memory below 6 MiB", "g", "busybox", 1, 0, 5, "", NULL, "memorySizeMib"},
        {"memory that overflows bytes", "g", "busybox", 1, 0, UINT64_MAX, "", NULL, "too large"},
        {"namespace with a newline", "g", "busybox", 1, 0, 0, "a\nb", NULL, "control character"},
        {"env name empty", "g", "busybox", 1, 0, 0, "", &empty_key, "non-empty"},
        {"env name with '='", "g", "busybox", 1, 0, 0, "", &eq_key, "non-empty"},
        {"env name reserved", "g", "busybox", 1, 0, 0, "", &reserved_key, "BERTH_"},
    };
    struct fixture f;

    empty_key.key = "";
    empty_key.value = "v";
    eq_key.key = "A=B";
    eq_key.value = "v";
    reserved_key.key = "BERTH_GATEWAY_ID";
    reserved_key.value = "other";
    if (fixture_init(&f, "") < 0) {
        CHECK(!"fixture");
        fixture_release(&f);
        return;
    }
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        GatewayRequest g = gw_request(rows[i].id, rows[i].replicas);
        EnvEntry *env[1] = {rows[i].env};
        struct berth_err err;
        int rc;

        g.image = (char *)rows[i].image;
        g.cpu_millicores = rows[i].cpu;
        g.memory_size_mib = rows[i].mib;
        g.namespace_ = (char *)rows[i].ns;
        if (rows[i].env) {
            g.env = env;
            g.n_env = 1;
        }
        rc = create_gw(&f, &g, &err);
        CHECK_MSG(rc < 0 && err.code == BERTH_INVALID_ARGUMENT, "%s: rc=%d code=%s", rows[i].desc,
                  rc, berth_code_name(err.code));
        CHECK_MSG(strstr(err.msg, rows[i].want) != NULL, "%s: message '%s' lacks '%s'",
                  rows[i].desc, err.msg, rows[i].want);
        CHECK_MSG(memory_backend_count(&f.spy.inner) == 0, "%s: nothing created", rows[i].desc);
    }
    fixture_release(&f);
}

static void test_missing_object(void)
{
    Krane__V1__CreateGatewayRequest req = KRANE__V1__CREATE_GATEWAY_REQUEST__INIT;
    Krane__V1__GetGatewayRequest get = KRANE__V1__GET_GATEWAY_REQUEST__INIT;
    struct fixture f;
    struct berth_err err;

    if (fixture_init(&f, "") < 0) {
        CHECK(!"fixture");
        fixture_release(&f);
        return;
    }
    CHECK(call(&f, GW "CreateGateway", &req, NULL, &err) < 0);
    CHECK(err.code == BERTH_INVALID_ARGUMENT);
    CHECK(strstr(err.msg, "'gateway' is required") != NULL);
    CHECK(call(&f, GW "GetGateway", &get, NULL, &err) < 0);
    CHECK(err.code == BERTH_INVALID_ARGUMENT);
    CHECK(delete_gw(&f, "", "", &err) < 0 && err.code == BERTH_INVALID_ARGUMENT);
    fixture_release(&f);
}

static void test_secrets_refused(void)
{
    Krane__V1__CreateDeploymentRequest req = KRANE__V1__CREATE_DEPLOYMENT_REQUEST__INIT;
    Krane__V1__DeploymentRequest d = KRANE__V1__DEPLOYMENT_REQUEST__INIT;
    uint8_t blob[] = {1, 2, 3};
    struct fixture f;
    struct berth_err err;

    if (fixture_init(&f, "") < 0) {
        CHECK(!"fixture");
        fixture_release(&f);
        return;
    }
    d.deployment_id = "dep-secret";
    d.image = "busybox";
    d.replicas = 2;
    d.encrypted_secrets_blob.data = blob;
    d.encrypted_secrets_blob.len = sizeof(blob);
    req.deployment = &d;
    CHECK(call(&f, DEP "CreateDeployment", &req, NULL, &err) < 0);
    CHECK(err.code == BERTH_UNIMPLEMENTED);
    CHECK_MSG(strstr(err.msg, "cannot decrypt") != NULL, "message: %s", err.msg);
    CHECK(memory_backend_count(&f.spy.inner) == 0);
    fixture_release(&f);
}

static void test_spec_mapping(void)
{
    EnvEntry e1 = KRANE__V1__GATEWAY_REQUEST__ENV_ENTRY__INIT;
    EnvEntry *env[1] = {&e1};
    GatewayRequest g = gw_request("map", 3);
    struct backend_container c = {0};
    struct fixture f;
    struct berth_err err;
    int has_gw = 0, has_inst = 0, has_ws = 0, has_greet = 0;

    if (fixture_init(&f, "") < 0) {
        CHECK(!"fixture");
        fixture_release(&f);
        return;
    }
    e1.key = "GREETING";
    e1.value = "hello";
    g.env = env;
    g.n_env = 1;
    g.namespace_ = "ns1";
    g.workspace_id = "ws_1";
    g.cpu_millicores = 250;
    g.memory_size_mib = 64;
    CHECK(create_gw(&f, &g, &err) == 0);
    CHECK(memory_backend_count(&f.spy.inner) == 3);
    /* The last create was replica 2. */
    CHECK(f.spy.nano_cpus == 250000000);
    CHECK(f.spy.memory_bytes == 64LL * 1024 * 1024);
    CHECK(f.spy.container_port == 8040);
    CHECK_STR(f.spy.restart, "unless-stopped");
    for (size_t i = 0; i < f.spy.n_env; i++) {
        has_gw |= strcmp(f.spy.env[i], "BERTH_GATEWAY_ID=map") == 0;
        has_inst |= strcmp(f.spy.env[i], "BERTH_INSTANCE_ID=map-2") == 0;
        has_ws |= strcmp(f.spy.env[i], "BERTH_WORKSPACE_ID=ws_1") == 0;
        has_greet |= strcmp(f.spy.env[i], "GREETING=hello") == 0;
    }
    CHECK(has_gw && has_inst && has_ws && has_greet);

    berth_err_clear(&err);
    CHECK(f.spy.inner.ops->inspect(f.spy.inner.ctx, "berth-gw-map-1", BERTH_NO_DEADLINE, &c,
                                   &err) == 0);
    CHECK_STR(backend_container_label(&c, "berth.managed"), "true");
    CHECK_STR(backend_container_label(&c, "berth.kind"), "gateway");
    CHECK_STR(backend_container_label(&c, "berth.gateway_id"), "map");
    CHECK_STR(backend_container_label(&c, "berth.replica"), "1");
    CHECK_STR(backend_container_label(&c, "berth.namespace"), "ns1");
    CHECK_STR(backend_container_label(&c, "berth.workspace_id"), "ws_1");
    CHECK(backend_container_label(&c, "berth.spec") != NULL);
    CHECK(backend_container_label(&c, "berth.environment_slug") == NULL);
    CHECK(c.state == BACKEND_STATE_RUNNING);
    backend_container_release(&c);

    /* 0 means no limit. */
    g = gw_request("nolimit", 1);
    CHECK(create_gw(&f, &g, &err) == 0);
    CHECK(f.spy.nano_cpus == 0 && f.spy.memory_bytes == 0);
    fixture_release(&f);
}

static void test_rollback(void)
{
    static const struct {
        const char *desc;
        const char *op; /* memory backend op to fail on the first try, or NULL */
        int fail_start_at;
        enum berth_code code;
    } rows[] = {
        {"first replica cannot start", "start", 0, BERTH_UNAVAILABLE},
        {"second replica cannot start", NULL, 2, BERTH_UNAVAILABLE},
        {"third replica cannot start", NULL, 3, BERTH_UNAVAILABLE},
        {"first replica cannot be created", "create", 0, BERTH_UNAVAILABLE},
        {"image missing", "create", 0, BERTH_NOT_FOUND},
    };

    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        GatewayRequest g = gw_request("rb", 3);
        struct fixture f;
        struct berth_err err;

        if (fixture_init(&f, "") < 0) {
            CHECK(!"fixture");
            fixture_release(&f);
            return;
        }
        if (rows[i].op)
            memory_backend_fail_next(&f.spy.inner, rows[i].op, 1, rows[i].code);
        f.spy.fail_start_at = rows[i].fail_start_at;
        CHECK_MSG(create_gw(&f, &g, &err) < 0 && err.code == rows[i].code, "%s: code %s",
                  rows[i].desc, berth_code_name(err.code));
        CHECK_MSG(memory_backend_count(&f.spy.inner) == 0, "%s: %zu containers left", rows[i].desc,
                  memory_backend_count(&f.spy.inner));
        CHECK_MSG(get_gw(&f, "", "rb", &err) == NULL && err.code == BERTH_NOT_FOUND,
                  "%s: Get after rollback", rows[i].desc);
        /* The id is free again: a retry succeeds. */
        CHECK_MSG(create_gw(&f, &g, &err) == 0, "%s: retry: %s", rows[i].desc, err.msg);
        CHECK(memory_backend_count(&f.spy.inner) == 3);
        fixture_release(&f);
    }
}

static void test_retry(void)
{
    GatewayRequest g = gw_request("again", 3);
    Krane__V1__GetGatewayResponse *r;
    struct fixture f;
    struct berth_err err;
    const char *id1;

    if (fixture_init(&f, "") < 0) {
        CHECK(!"fixture");
        fixture_release(&f);
        return;
    }
    CHECK(create_gw(&f, &g, &err) == 0);
    CHECK(create_gw(&f, &g, &err) == 0);
    CHECK(create_gw(&f, &g, &err) == 0);
    CHECK(memory_backend_count(&f.spy.inner) == 3);

    /* A replica removed behind berthd's back is made again by a retry; one
     * that was made but never started is started. */
    id1 = container_id_of(&f, "berth-gw-again-1");
    CHECK(id1 != NULL);
    CHECK(f.spy.inner.ops->remove(f.spy.inner.ctx, "berth-gw-again-1", BERTH_NO_DEADLINE, &err) ==
          0);
    CHECK(memory_backend_set_state(&f.spy.inner, container_id_of(&f, "berth-gw-again-2"),
                                   BACKEND_STATE_CREATED) == 0);
    CHECK(memory_backend_count(&f.spy.inner) == 2);
    CHECK(create_gw(&f, &g, &err) == 0);
    CHECK(memory_backend_count(&f.spy.inner) == 3);
    r = get_gw(&f, "", "again", &err);
    CHECK(r != NULL && r->n_instances == 3);
    for (size_t i = 0; r && i < r->n_instances; i++)
        CHECK(r->instances[i]->status == KRANE__V1__GATEWAY_STATUS__GATEWAY_STATUS_RUNNING);

    /* A failed completion removes only what it made. */
    CHECK(f.spy.inner.ops->remove(f.spy.inner.ctx, "berth-gw-again-0", BERTH_NO_DEADLINE, &err) ==
          0);
    memory_backend_fail_next(&f.spy.inner, "start", 1, BERTH_UNAVAILABLE);
    CHECK(create_gw(&f, &g, &err) < 0 && err.code == BERTH_UNAVAILABLE);
    CHECK(memory_backend_count(&f.spy.inner) == 2);
    fixture_release(&f);
}

/* --max-replicas-total counts every gateway's replicas but the retried
 * object's own. */
static void test_max_replicas_total(void)
{
    GatewayRequest a = gw_request("quota-a", 3), b = gw_request("quota-b", 3);
    struct fixture f;
    struct berth_err err;

    if (fixture_init_max(&f, "", 5) < 0) {
        CHECK(!"fixture");
        fixture_release(&f);
        return;
    }
    CHECK(create_gw(&f, &a, &err) == 0);
    berth_err_clear(&err);
    CHECK(create_gw(&f, &b, &err) < 0);
    CHECK(err.code == BERTH_RESOURCE_EXHAUSTED);
    CHECK_MSG(strstr(err.msg, "--max-replicas-total 5") != NULL, "%s", err.msg);
    CHECK(memory_backend_count(&f.spy.inner) == 3);
    berth_err_clear(&err);
    CHECK(create_gw(&f, &a, &err) == 0); /* a retry of the same 3 */
    b = gw_request("quota-b", 2);
    CHECK(create_gw(&f, &b, &err) == 0);
    CHECK(memory_backend_count(&f.spy.inner) == 5);
    fixture_release(&f);
}

static void test_different_spec(void)
{
    EnvEntry a = KRANE__V1__GATEWAY_REQUEST__ENV_ENTRY__INIT;
    EnvEntry b = KRANE__V1__GATEWAY_REQUEST__ENV_ENTRY__INIT;
    EnvEntry *ab[2] = {&a, &b}, *ba[2] = {&b, &a};
    static const struct {
        const char *desc;
        const char *image;
        unsigned replicas;
        unsigned cpu;
        const char *ns;
        int env; /* 0 none, 1 {A,B}, 2 {B,A} */
        int same;
    } rows[] = {
        {"identical", "busybox:latest", 2, 0, "", 1, 1},
        {"env in another order", "busybox:latest", 2, 0, "", 2, 1},
        {"other image", "busybox:other", 2, 0, "", 1, 0},
        {"more replicas", "busybox:latest", 3, 0, "", 1, 0},
        {"fewer replicas", "busybox:latest", 1, 0, "", 1, 0},
        {"a cpu limit", "busybox:latest", 2, 100, "", 1, 0},
        {"no env", "busybox:latest", 2, 0, "", 0, 0},
        {"another namespace", "busybox:latest", 2, 0, "other", 1, 0},
    };
    GatewayRequest g = gw_request("spec", 2);
    struct fixture f;
    struct berth_err err;

    if (fixture_init(&f, "") < 0) {
        CHECK(!"fixture");
        fixture_release(&f);
        return;
    }
    a.key = "A";
    a.value = "1";
    b.key = "B";
    b.value = "2";
    g.env = ab;
    g.n_env = 2;
    CHECK(create_gw(&f, &g, &err) == 0);
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        GatewayRequest h = gw_request("spec", rows[i].replicas);
        int rc;

        h.image = (char *)rows[i].image;
        h.cpu_millicores = rows[i].cpu;
        h.namespace_ = (char *)rows[i].ns;
        h.env = rows[i].env == 1 ? ab : rows[i].env == 2 ? ba : NULL;
        h.n_env = rows[i].env ? 2 : 0;
        rc = create_gw(&f, &h, &err);
        if (rows[i].same)
            CHECK_MSG(rc == 0, "%s: %s", rows[i].desc, err.msg);
        else
            CHECK_MSG(rc < 0 && err.code == BERTH_ALREADY_EXISTS, "%s: rc=%d code=%s", rows[i].desc,
                      rc, berth_code_name(err.code));
        CHECK_MSG(memory_backend_count(&f.spy.inner) == 2, "%s: still 2 containers", rows[i].desc);
    }
    fixture_release(&f);
}

static void test_get_status_and_address(void)
{
    static const struct {
        const char *state;
        Krane__V1__GatewayStatus want;
    } rows[] = {
        {"running", KRANE__V1__GATEWAY_STATUS__GATEWAY_STATUS_RUNNING},
        {"created", KRANE__V1__GATEWAY_STATUS__GATEWAY_STATUS_PENDING},
        {"restarting", KRANE__V1__GATEWAY_STATUS__GATEWAY_STATUS_PENDING},
        {"paused", KRANE__V1__GATEWAY_STATUS__GATEWAY_STATUS_TERMINATING},
        {"exited", KRANE__V1__GATEWAY_STATUS__GATEWAY_STATUS_TERMINATING},
        {"dead", KRANE__V1__GATEWAY_STATUS__GATEWAY_STATUS_TERMINATING},
        {"removing", KRANE__V1__GATEWAY_STATUS__GATEWAY_STATUS_TERMINATING},
    };
    GatewayRequest g = gw_request("st", 3);
    Krane__V1__GetGatewayResponse *r;
    struct fixture f;
    struct berth_err err;
    const char *c0, *c1, *c2;
    char want[64];

    if (fixture_init(&f, "") < 0) {
        CHECK(!"fixture");
        fixture_release(&f);
        return;
    }
    CHECK(create_gw(&f, &g, &err) == 0);
    c0 = container_id_of(&f, "berth-gw-st-0");
    c1 = container_id_of(&f, "berth-gw-st-1");
    c2 = container_id_of(&f, "berth-gw-st-2");
    CHECK(c0 && c1 && c2);
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        CHECK(memory_backend_set_state(&f.spy.inner, c1, backend_state_parse(rows[i].state)) == 0);
        r = get_gw(&f, "", "st", &err);
        CHECK_MSG(r != NULL && r->n_instances == 3, "%s: Get", rows[i].state);
        if (r == NULL || r->n_instances != 3)
            continue;
        CHECK_STR(r->instances[0]->id, "st-0");
        CHECK_STR(r->instances[1]->id, "st-1");
        CHECK_STR(r->instances[2]->id, "st-2");
        CHECK_MSG(r->instances[1]->status == rows[i].want, "%s: status %d", rows[i].state,
                  (int)r->instances[1]->status);
        CHECK(r->instances[0]->status == KRANE__V1__GATEWAY_STATUS__GATEWAY_STATUS_RUNNING);
        CHECK(strncmp(r->instances[1]->address, "127.0.0.1:", 10) == 0);
    }

    /* The gateway's address is the lowest-index running replica's. */
    r = get_gw(&f, "", "st", &err);
    CHECK(r != NULL && strcmp(r->address, r->instances[0]->address) == 0);
    CHECK(memory_backend_set_state(&f.spy.inner, c0, BACKEND_STATE_EXITED) == 0);
    CHECK(memory_backend_set_state(&f.spy.inner, c1, BACKEND_STATE_RESTARTING) == 0);
    r = get_gw(&f, "", "st", &err);
    CHECK(r != NULL && strcmp(r->address, r->instances[2]->address) == 0);
    snprintf(want, sizeof(want), "%s", r ? r->instances[2]->address : "");
    CHECK(strncmp(want, "127.0.0.1:", 10) == 0 && strtol(want + 10, NULL, 10) > 0);

    /* Nothing running: no gateway address. */
    CHECK(memory_backend_set_state(&f.spy.inner, c2, BACKEND_STATE_DEAD) == 0);
    r = get_gw(&f, "", "st", &err);
    CHECK(r != NULL && r->address[0] == '\0');

    /* No published port: instances without an address, no crash. */
    CHECK(memory_backend_set_state(&f.spy.inner, c2, BACKEND_STATE_RUNNING) == 0);
    f.spy.hide_ports = 1;
    r = get_gw(&f, "", "st", &err);
    CHECK(r != NULL && r->n_instances == 3);
    for (size_t i = 0; r && i < r->n_instances; i++)
        CHECK(r->instances[i]->address[0] == '\0');
    CHECK(r != NULL && r->address[0] == '\0');

    /* Unknown id. */
    CHECK(get_gw(&f, "", "nope", &err) == NULL && err.code == BERTH_NOT_FOUND);
    CHECK(strstr(err.msg, "gateway 'nope' not found") != NULL);
    fixture_release(&f);
}

/* A replica with a health check is RUNNING only while the check passes:
 * PENDING while it starts and while it fails; the gateway's address is the
 * lowest-index replica that is RUNNING; List counts only those. */
static void test_get_health(void)
{
    static const struct {
        enum backend_health h;
        Krane__V1__GatewayStatus want;
    } rows[] = {
        {BACKEND_HEALTH_STARTING, KRANE__V1__GATEWAY_STATUS__GATEWAY_STATUS_PENDING},
        {BACKEND_HEALTH_UNHEALTHY, KRANE__V1__GATEWAY_STATUS__GATEWAY_STATUS_PENDING},
        {BACKEND_HEALTH_HEALTHY, KRANE__V1__GATEWAY_STATUS__GATEWAY_STATUS_RUNNING},
        {BACKEND_HEALTH_NONE, KRANE__V1__GATEWAY_STATUS__GATEWAY_STATUS_RUNNING},
        {BACKEND_HEALTH_UNKNOWN, KRANE__V1__GATEWAY_STATUS__GATEWAY_STATUS_RUNNING},
    };
    GatewayRequest g = gw_request("hl", 3);
    Krane__V1__ListGatewaysRequest lreq = KRANE__V1__LIST_GATEWAYS_REQUEST__INIT;
    Krane__V1__GetGatewayResponse *r;
    ProtobufCMessage *out = NULL;
    struct fixture f;
    struct berth_err err;
    const char *c[3];

    if (fixture_init(&f, "") < 0) {
        CHECK(!"fixture");
        fixture_release(&f);
        return;
    }
    CHECK(create_gw(&f, &g, &err) == 0);
    c[0] = container_id_of(&f, "berth-gw-hl-0");
    c[1] = container_id_of(&f, "berth-gw-hl-1");
    c[2] = container_id_of(&f, "berth-gw-hl-2");
    CHECK(c[0] && c[1] && c[2]);
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        CHECK(memory_backend_set_health(&f.spy.inner, c[1], rows[i].h) == 0);
        r = get_gw(&f, "", "hl", &err);
        CHECK_MSG(r != NULL && r->n_instances == 3 && r->instances[1]->status == rows[i].want, "%s",
                  backend_health_name(rows[i].h));
    }
    /* A paused replica stays TERMINATING whatever its health said. */
    CHECK(memory_backend_set_state(&f.spy.inner, c[1], BACKEND_STATE_PAUSED) == 0);
    CHECK(memory_backend_set_health(&f.spy.inner, c[1], BACKEND_HEALTH_HEALTHY) == 0);
    r = get_gw(&f, "", "hl", &err);
    CHECK(r != NULL &&
          r->instances[1]->status == KRANE__V1__GATEWAY_STATUS__GATEWAY_STATUS_TERMINATING);
    CHECK(memory_backend_set_state(&f.spy.inner, c[1], BACKEND_STATE_RUNNING) == 0);

    for (int i = 0; i < 3; i++)
        CHECK(memory_backend_set_health(&f.spy.inner, c[i], BACKEND_HEALTH_HEALTHY) == 0);
    r = get_gw(&f, "", "hl", &err);
    CHECK(r != NULL && r->n_instances == 3 && strcmp(r->address, r->instances[0]->address) == 0);
    /* Replica 0 fails its check: the address moves to replica 1, then 2. */
    CHECK(memory_backend_set_health(&f.spy.inner, c[0], BACKEND_HEALTH_UNHEALTHY) == 0);
    r = get_gw(&f, "", "hl", &err);
    CHECK(r != NULL && r->n_instances == 3 && strcmp(r->address, r->instances[1]->address) == 0);
    CHECK(r != NULL && r->instances[0]->address[0] != '\0'); /* its own address stays */
    CHECK(memory_backend_set_health(&f.spy.inner, c[1], BACKEND_HEALTH_STARTING) == 0);
    r = get_gw(&f, "", "hl", &err);
    CHECK(r != NULL && r->n_instances == 3 && strcmp(r->address, r->instances[2]->address) == 0);
    CHECK(call(&f, GW "ListGateways", &lreq, &out, &err) == 0);
    if (out != NULL) {
        Krane__V1__ListGatewaysResponse *l = (Krane__V1__ListGatewaysResponse *)out;

        CHECK(l->n_gateways == 1 && l->gateways[0]->running == 1 &&
              l->gateways[0]->status == KRANE__V1__GATEWAY_STATUS__GATEWAY_STATUS_PENDING);
    }
    /* None healthy: no address. */
    CHECK(memory_backend_set_health(&f.spy.inner, c[2], BACKEND_HEALTH_UNHEALTHY) == 0);
    r = get_gw(&f, "", "hl", &err);
    CHECK(r != NULL && r->address[0] == '\0');
    fixture_release(&f);
}

static void test_advertise_host(void)
{
    static const struct {
        const char *desc;
        const char *advertise;
        const char *prefix;
    } rows[] = {
        {"empty: the publish address", "", "127.0.0.1:"},
        {"a name", "gw.example.internal", "gw.example.internal:"},
        {"an IPv6 address gets brackets", "fd00::1", "[fd00::1]:"},
    };

    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        GatewayRequest g = gw_request("adv", 1);
        Krane__V1__GetGatewayResponse *r;
        struct fixture f;
        struct berth_err err;

        if (fixture_init(&f, rows[i].advertise) < 0) {
            CHECK(!"fixture");
            fixture_release(&f);
            return;
        }
        CHECK(create_gw(&f, &g, &err) == 0);
        r = get_gw(&f, "", "adv", &err);
        CHECK_MSG(r != NULL && r->n_instances == 1 &&
                      strncmp(r->instances[0]->address, rows[i].prefix, strlen(rows[i].prefix)) ==
                          0,
                  "%s: address %s", rows[i].desc, r ? r->address : "(none)");
        fixture_release(&f);
    }
}

static void test_delete(void)
{
    GatewayRequest g = gw_request("del", 3);
    struct fixture f;
    struct berth_err err;

    if (fixture_init(&f, "") < 0) {
        CHECK(!"fixture");
        fixture_release(&f);
        return;
    }
    CHECK(create_gw(&f, &g, &err) == 0);
    /* One replica already gone is not an error. */
    CHECK(f.spy.inner.ops->remove(f.spy.inner.ctx, "berth-gw-del-2", BERTH_NO_DEADLINE, &err) == 0);
    CHECK(delete_gw(&f, "", "del", &err) == 0);
    CHECK(memory_backend_count(&f.spy.inner) == 0);
    CHECK(delete_gw(&f, "", "del", &err) == 0);
    CHECK(delete_gw(&f, "", "never-made", &err) == 0);
    CHECK(get_gw(&f, "", "del", &err) == NULL && err.code == BERTH_NOT_FOUND);

    /* A failing removal is reported, and a retry finishes the job. */
    CHECK(create_gw(&f, &g, &err) == 0);
    memory_backend_fail_next(&f.spy.inner, "remove", 1, BERTH_UNAVAILABLE);
    CHECK(delete_gw(&f, "", "del", &err) < 0 && err.code == BERTH_UNAVAILABLE);
    CHECK(memory_backend_count(&f.spy.inner) == 1);
    CHECK(delete_gw(&f, "", "del", &err) == 0);
    CHECK(memory_backend_count(&f.spy.inner) == 0);
    fixture_release(&f);
}

static void test_namespaces(void)
{
    GatewayRequest g = gw_request("nsgw", 2);
    struct fixture f;
    struct berth_err err;

    if (fixture_init(&f, "") < 0) {
        CHECK(!"fixture");
        fixture_release(&f);
        return;
    }
    g.namespace_ = "team-a";
    CHECK(create_gw(&f, &g, &err) == 0);
    /* (namespace, id) must match on Get and Delete. */
    CHECK(get_gw(&f, "team-a", "nsgw", &err) != NULL);
    CHECK(get_gw(&f, "team-b", "nsgw", &err) == NULL && err.code == BERTH_NOT_FOUND);
    CHECK(get_gw(&f, "", "nsgw", &err) == NULL && err.code == BERTH_NOT_FOUND);
    CHECK(delete_gw(&f, "team-b", "nsgw", &err) == 0);
    CHECK(memory_backend_count(&f.spy.inner) == 2);
    /* Container names hold the id alone: the id is taken in every namespace. */
    g.namespace_ = "team-b";
    CHECK(create_gw(&f, &g, &err) < 0 && err.code == BERTH_ALREADY_EXISTS);
    CHECK(delete_gw(&f, "team-a", "nsgw", &err) == 0);
    CHECK(memory_backend_count(&f.spy.inner) == 0);
    fixture_release(&f);
}

static void test_deployment(void)
{
    Krane__V1__CreateDeploymentRequest req = KRANE__V1__CREATE_DEPLOYMENT_REQUEST__INIT;
    Krane__V1__DeploymentRequest d = KRANE__V1__DEPLOYMENT_REQUEST__INIT;
    Krane__V1__GetDeploymentRequest get = KRANE__V1__GET_DEPLOYMENT_REQUEST__INIT;
    Krane__V1__DeleteDeploymentRequest del = KRANE__V1__DELETE_DEPLOYMENT_REQUEST__INIT;
    Krane__V1__GetDeploymentResponse *r;
    ProtobufCMessage *out = NULL;
    struct backend_container c = {0};
    struct fixture f;
    struct berth_err err;
    int has_id = 0, has_slug = 0, has_inst = 0;

    if (fixture_init(&f, "") < 0) {
        CHECK(!"fixture");
        fixture_release(&f);
        return;
    }
    d.namespace_ = "prod";
    d.deployment_id = "web";
    d.image = "busybox";
    d.replicas = 2;
    d.environment_slug = "production";
    d.environment_id = "env_1";
    d.build_id = "build_7";
    req.deployment = &d;
    CHECK(call(&f, DEP "CreateDeployment", &req, &out, &err) == 0);
    CHECK(out && ((Krane__V1__CreateDeploymentResponse *)out)->status ==
                     KRANE__V1__DEPLOYMENT_STATUS__DEPLOYMENT_STATUS_PENDING);
    CHECK(memory_backend_count(&f.spy.inner) == 2);
    CHECK(f.spy.container_port == 8080);
    for (size_t i = 0; i < f.spy.n_env; i++) {
        has_id |= strcmp(f.spy.env[i], "BERTH_DEPLOYMENT_ID=web") == 0;
        has_slug |= strcmp(f.spy.env[i], "BERTH_ENVIRONMENT_SLUG=production") == 0;
        has_inst |= strcmp(f.spy.env[i], "BERTH_INSTANCE_ID=web-1") == 0;
    }
    CHECK(has_id && has_slug && has_inst);
    CHECK(f.spy.inner.ops->inspect(f.spy.inner.ctx, "berth-dep-web-0", BERTH_NO_DEADLINE, &c,
                                   &err) == 0);
    CHECK_STR(backend_container_label(&c, "berth.kind"), "deployment");
    CHECK_STR(backend_container_label(&c, "berth.deployment_id"), "web");
    CHECK_STR(backend_container_label(&c, "berth.environment_slug"), "production");
    CHECK_STR(backend_container_label(&c, "berth.environment_id"), "env_1");
    CHECK_STR(backend_container_label(&c, "berth.build_id"), "build_7");
    backend_container_release(&c);
    /* Same id as a gateway: a different object. */
    CHECK(count_label(&f, "berth.gateway_id=web") == 0);

    CHECK(call(&f, DEP "CreateDeployment", &req, NULL, &err) == 0);
    CHECK(memory_backend_count(&f.spy.inner) == 2);
    d.replicas = 3;
    CHECK(call(&f, DEP "CreateDeployment", &req, NULL, &err) < 0 &&
          err.code == BERTH_ALREADY_EXISTS);
    d.replicas = 2;

    get.namespace_ = "prod";
    get.deployment_id = "web";
    CHECK(call(&f, DEP "GetDeployment", &get, &out, &err) == 0);
    r = (Krane__V1__GetDeploymentResponse *)out;
    CHECK(r->n_instances == 2);
    CHECK_STR(r->instances[0]->id, "web-0");
    CHECK_STR(r->instances[1]->id, "web-1");
    CHECK(r->instances[0]->status == KRANE__V1__DEPLOYMENT_STATUS__DEPLOYMENT_STATUS_RUNNING);
    CHECK(strncmp(r->instances[1]->address, "127.0.0.1:", 10) == 0);

    del.namespace_ = "prod";
    del.deployment_id = "web";
    CHECK(call(&f, DEP "DeleteDeployment", &del, NULL, &err) == 0);
    CHECK(memory_backend_count(&f.spy.inner) == 0);
    CHECK(call(&f, DEP "DeleteDeployment", &del, NULL, &err) == 0);
    CHECK(call(&f, DEP "GetDeployment", &get, NULL, &err) < 0 && err.code == BERTH_NOT_FOUND);

    /* The rollback holds for deployments too. */
    f.spy.starts = 0;
    f.spy.fail_start_at = 2;
    CHECK(call(&f, DEP "CreateDeployment", &req, NULL, &err) < 0);
    CHECK(memory_backend_count(&f.spy.inner) == 0);
    fixture_release(&f);
}

struct racer {
    struct fixture *f;
    int rc;
};

static void *race_create(void *arg);

static void *race_create(void *arg)
{
    struct racer *r = arg;
    struct rpc_route *route =
        router_find(r->f->router, GW "CreateGateway", strlen(GW "CreateGateway"));
    Krane__V1__CreateGatewayRequest req = KRANE__V1__CREATE_GATEWAY_REQUEST__INIT;
    GatewayRequest g = gw_request("race", 5);
    struct arena *a = arena_new();
    struct rpc_call c = {.arena = a, .deadline = berth_now_ms() + 20000, .procedure = "race"};
    ProtobufCMessage *out = NULL;
    struct berth_err err;

    berth_err_clear(&err);
    req.gateway = &g;
    r->rc = a ? route->handler(route->handler_ctx, &c, &req.base, &out, &err) : -1;
    arena_free(a);
    return NULL;
}

/* Retries racing each other never duplicate a replica. */
static void test_concurrent_create(void)
{
    enum { N = 8 };
    pthread_t t[N];
    struct racer r[N];
    struct fixture f;
    struct berth_err err;

    if (fixture_init(&f, "") < 0) {
        CHECK(!"fixture");
        fixture_release(&f);
        return;
    }
    for (int i = 0; i < N; i++) {
        r[i].f = &f;
        r[i].rc = -2;
        CHECK(pthread_create(&t[i], NULL, race_create, &r[i]) == 0);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        CHECK_MSG(r[i].rc == 0, "racer %d: rc %d", i, r[i].rc);
    }
    CHECK(memory_backend_count(&f.spy.inner) == 5);
    CHECK(delete_gw(&f, "", "race", &err) == 0);
    CHECK(memory_backend_count(&f.spy.inner) == 0);
    fixture_release(&f);
}

/* Make the next listing fail as if the Engine were gone. Always 0, so it
 * reads as a step inside CHECK expressions. */
static int fail_list(struct fixture *f)
{
    memory_backend_fail_next(&f->spy.inner, "list", 1, BERTH_UNAVAILABLE);
    return 0;
}

/* A running container made behind berthd's back with labels l. */
static int started_container(struct fixture *f, const char *name, const struct backend_label *l,
                             size_t n)
{
    struct backend_spec spec = {.name = name, .image = "busybox", .labels = l, .n_labels = n};
    struct berth_err err;
    char *id = NULL;
    int rc;

    berth_err_clear(&err);
    if (f->spy.inner.ops->create(f->spy.inner.ctx, &spec, BERTH_NO_DEADLINE, &id, &err) < 0)
        return -1;
    rc = f->spy.inner.ops->start(f->spy.inner.ctx, id, BERTH_NO_DEADLINE, &err);
    free(id);
    return rc;
}

/* While the Engine cannot be listed, Get answers the last known answer;
 * while it can, Get answers live and refreshes that answer. */
static void test_cache_outage(void)
{
    GatewayRequest g = gw_request("cache", 2);
    Krane__V1__GetGatewayResponse *r;
    struct fixture f;
    struct berth_err err;
    char addr[64];

    if (fixture_init(&f, "") < 0) {
        CHECK(!"fixture");
        fixture_release(&f);
        return;
    }
    /* Without anything cached, an outage is unavailable. */
    CHECK(fail_list(&f) == 0 && get_gw(&f, "", "cache", &err) == NULL &&
          err.code == BERTH_UNAVAILABLE);

    /* A Create fills the cache without any Get. */
    CHECK(create_gw(&f, &g, &err) == 0);
    r = (fail_list(&f), get_gw(&f, "", "cache", &err));
    CHECK_MSG(r != NULL && r->n_instances == 2, "cached after create: %s", err.msg);
    if (r == NULL || r->n_instances != 2) {
        fixture_release(&f);
        return;
    }
    CHECK_STR(r->instances[1]->id, "cache-1");
    CHECK(r->instances[1]->status == KRANE__V1__GATEWAY_STATUS__GATEWAY_STATUS_RUNNING);
    CHECK(strncmp(r->address, "127.0.0.1:", 10) == 0);
    snprintf(addr, sizeof(addr), "%s", r->address);

    /* Live when the Engine answers: a change shows at once, then is cached. */
    CHECK(memory_backend_set_state(&f.spy.inner, container_id_of(&f, "berth-gw-cache-0"),
                                   BACKEND_STATE_EXITED) == 0);
    r = get_gw(&f, "", "cache", &err);
    CHECK(r != NULL &&
          r->instances[0]->status == KRANE__V1__GATEWAY_STATUS__GATEWAY_STATUS_TERMINATING);
    r = (fail_list(&f), get_gw(&f, "", "cache", &err));
    CHECK(r != NULL && r->n_instances == 2 &&
          r->instances[0]->status == KRANE__V1__GATEWAY_STATUS__GATEWAY_STATUS_TERMINATING &&
          r->instances[1]->status == KRANE__V1__GATEWAY_STATUS__GATEWAY_STATUS_RUNNING);
    CHECK(r != NULL && strcmp(r->address, addr) != 0 && r->address[0] != '\0');

    /* Only (namespace, id) of the cached object answers; other errors stay. */
    CHECK(fail_list(&f) == 0 && get_gw(&f, "other", "cache", &err) == NULL &&
          err.code == BERTH_UNAVAILABLE);
    memory_backend_fail_next(&f.spy.inner, "list", 1, BERTH_INTERNAL);
    CHECK(get_gw(&f, "", "cache", &err) == NULL && err.code == BERTH_INTERNAL);

    /* Writes still need the Engine. */
    CHECK(fail_list(&f) == 0 && create_gw(&f, &g, &err) < 0 && err.code == BERTH_UNAVAILABLE);
    CHECK(fail_list(&f) == 0 && delete_gw(&f, "", "cache", &err) < 0 &&
          err.code == BERTH_UNAVAILABLE);

    /* A Delete forgets it; so does a live Get that finds nothing. */
    CHECK(delete_gw(&f, "", "cache", &err) == 0);
    CHECK(fail_list(&f) == 0 && get_gw(&f, "", "cache", &err) == NULL &&
          err.code == BERTH_UNAVAILABLE);
    CHECK(create_gw(&f, &g, &err) == 0);
    CHECK(f.spy.inner.ops->remove(f.spy.inner.ctx, "berth-gw-cache-0", BERTH_NO_DEADLINE, &err) ==
          0);
    CHECK(f.spy.inner.ops->remove(f.spy.inner.ctx, "berth-gw-cache-1", BERTH_NO_DEADLINE, &err) ==
          0);
    CHECK(get_gw(&f, "", "cache", &err) == NULL && err.code == BERTH_NOT_FOUND);
    CHECK(fail_list(&f) == 0 && get_gw(&f, "", "cache", &err) == NULL &&
          err.code == BERTH_UNAVAILABLE);
    fixture_release(&f);
}

/* A full sync fills the cache of a service that never saw the objects (a
 * restarted berthd) and forgets those whose containers went. */
static void test_cache_sync(void)
{
    Krane__V1__CreateDeploymentRequest req = KRANE__V1__CREATE_DEPLOYMENT_REQUEST__INIT;
    Krane__V1__DeploymentRequest d = KRANE__V1__DEPLOYMENT_REQUEST__INIT;
    Krane__V1__GetDeploymentRequest get = KRANE__V1__GET_DEPLOYMENT_REQUEST__INIT;
    struct replica_service_config cfg = {.gateway_port = 8040, .deployment_port = 8080};
    GatewayRequest g = gw_request("sync", 3);
    Krane__V1__GetGatewayResponse *r;
    ProtobufCMessage *out = NULL;
    struct fixture f;
    struct berth_err err;

    if (fixture_init(&f, "") < 0) {
        CHECK(!"fixture");
        fixture_release(&f);
        return;
    }
    g.namespace_ = "ns-a";
    d.namespace_ = "ns-b";
    d.deployment_id = "sync";
    d.image = "busybox";
    d.replicas = 1;
    req.deployment = &d;
    get.namespace_ = "ns-b";
    get.deployment_id = "sync";
    CHECK(create_gw(&f, &g, &err) == 0);
    CHECK(call(&f, DEP "CreateDeployment", &req, NULL, &err) == 0);

    /* A new service on the same containers: nothing cached until the sync. */
    replica_service_free(f.svc);
    router_free(f.router);
    f.svc = replica_service_new(&cfg, &f.backend);
    f.router = router_new();
    CHECK(f.svc && f.router && replica_service_register(f.svc, f.router) == 0);
    CHECK(fail_list(&f) == 0 && get_gw(&f, "ns-a", "sync", &err) == NULL &&
          err.code == BERTH_UNAVAILABLE);
    berth_err_clear(&err);
    CHECK(replica_service_sync(f.svc, berth_now_ms() + 10000, &err) == 0);
    r = (fail_list(&f), get_gw(&f, "ns-a", "sync", &err));
    CHECK_MSG(r != NULL && r->n_instances == 3, "gateway after sync: %s", err.msg);
    for (size_t i = 0; r && i < r->n_instances; i++)
        CHECK(r->instances[i]->status == KRANE__V1__GATEWAY_STATUS__GATEWAY_STATUS_RUNNING);
    CHECK(fail_list(&f) == 0 && call(&f, DEP "GetDeployment", &get, &out, &err) == 0);
    CHECK(out && ((Krane__V1__GetDeploymentResponse *)out)->n_instances == 1);
    CHECK(fail_list(&f) == 0 && get_gw(&f, "ns-b", "sync", &err) == NULL &&
          err.code == BERTH_UNAVAILABLE);

    /* A failed sync keeps what was known. */
    berth_err_clear(&err);
    CHECK(fail_list(&f) == 0 && replica_service_sync(f.svc, berth_now_ms() + 10000, &err) < 0 &&
          err.code == BERTH_UNAVAILABLE);
    CHECK(fail_list(&f) == 0 && get_gw(&f, "ns-a", "sync", &err) != NULL);

    /* Containers removed behind berthd's back: the next sync forgets them. */
    for (int i = 0; i < 3; i++) {
        char name[32];
        snprintf(name, sizeof(name), "berth-gw-sync-%d", i);
        CHECK(f.spy.inner.ops->remove(f.spy.inner.ctx, name, BERTH_NO_DEADLINE, &err) == 0);
    }
    berth_err_clear(&err);
    CHECK(replica_service_sync(f.svc, berth_now_ms() + 10000, &err) == 0);
    CHECK(fail_list(&f) == 0 && get_gw(&f, "ns-a", "sync", &err) == NULL &&
          err.code == BERTH_UNAVAILABLE);
    CHECK(fail_list(&f) == 0 && call(&f, DEP "GetDeployment", &get, &out, &err) == 0);
    fixture_release(&f);
}

/* An engine event re-lists its object, so the cache follows changes that no
 * Get saw; events of other kinds or actions change nothing. */
static void test_cache_event(void)
{
    GatewayRequest g = gw_request("ev", 2);
    Krane__V1__GetGatewayResponse *r;
    struct backend_event ev = {.action = "die",
                               .kind = "gateway",
                               .object_id = "ev",
                               .container_id = "",
                               .exit_code = 137};
    struct fixture f;
    struct berth_err err;

    if (fixture_init(&f, "") < 0) {
        CHECK(!"fixture");
        fixture_release(&f);
        return;
    }
    CHECK(create_gw(&f, &g, &err) == 0);
    CHECK(memory_backend_set_state(&f.spy.inner, container_id_of(&f, "berth-gw-ev-1"),
                                   BACKEND_STATE_EXITED) == 0);
    /* Not news for Get: ignored. */
    ev.action = "exec_start";
    replica_service_on_event(f.svc, &ev);
    ev.action = "die";
    ev.kind = "vm";
    replica_service_on_event(f.svc, &ev);
    r = (fail_list(&f), get_gw(&f, "", "ev", &err));
    CHECK(r != NULL && r->n_instances == 2 &&
          r->instances[1]->status == KRANE__V1__GATEWAY_STATUS__GATEWAY_STATUS_RUNNING);

    /* A re-list that fails does not count: the next event of the same
     * moment lists again. */
    ev.kind = "gateway";
    ev.time_unix_ns = berth_unix_ms() * 1000000 - 1000000;
    memory_backend_fail_next(&f.spy.inner, "list", 1, BERTH_UNAVAILABLE);
    replica_service_on_event(f.svc, &ev);
    r = (fail_list(&f), get_gw(&f, "", "ev", &err));
    CHECK(r != NULL &&
          r->instances[1]->status == KRANE__V1__GATEWAY_STATUS__GATEWAY_STATUS_RUNNING);
    replica_service_on_event(f.svc, &ev);
    r = (fail_list(&f), get_gw(&f, "", "ev", &err));
    CHECK(r != NULL && r->n_instances == 2 &&
          r->instances[1]->status == KRANE__V1__GATEWAY_STATUS__GATEWAY_STATUS_TERMINATING);

    /* Removed behind berthd's back: the destroy event forgets it. */
    CHECK(f.spy.inner.ops->remove(f.spy.inner.ctx, "berth-gw-ev-0", BERTH_NO_DEADLINE, &err) == 0);
    CHECK(f.spy.inner.ops->remove(f.spy.inner.ctx, "berth-gw-ev-1", BERTH_NO_DEADLINE, &err) == 0);
    ev.action = "destroy";
    ev.time_unix_ns = berth_unix_ms() * 1000000 + 1000000;
    replica_service_on_event(f.svc, &ev);
    CHECK(fail_list(&f) == 0 && get_gw(&f, "", "ev", &err) == NULL &&
          err.code == BERTH_UNAVAILABLE);
    fixture_release(&f);
}

/* Every replica carries the wanted count; Get shows the indices below it
 * that have no container as PENDING, so a set a crash left short never looks
 * whole. Containers without the count (older ones) show as they are. */
static void test_short_set(void)
{
    static const struct backend_label old[] = {
        {"berth.kind", "gateway"},
        {"berth.gateway_id", "old"},
        {"berth.replica", "1"},
        {"berth.spec", "fnv1a64:0"},
    };
    GatewayRequest g = gw_request("short", 4);
    Krane__V1__GetGatewayResponse *r;
    struct backend_container c = {0};
    struct fixture f;
    struct berth_err err;

    if (fixture_init(&f, "") < 0) {
        CHECK(!"fixture");
        fixture_release(&f);
        return;
    }
    CHECK(create_gw(&f, &g, &err) == 0);
    berth_err_clear(&err);
    CHECK(f.spy.inner.ops->inspect(f.spy.inner.ctx, "berth-gw-short-3", BERTH_NO_DEADLINE, &c,
                                   &err) == 0);
    CHECK_STR(backend_container_label(&c, "berth.replicas"), "4");
    backend_container_release(&c);

    /* As a crash in the middle of the Create would leave it: 0 and 2 only. */
    CHECK(f.spy.inner.ops->remove(f.spy.inner.ctx, "berth-gw-short-1", BERTH_NO_DEADLINE, &err) ==
          0);
    CHECK(f.spy.inner.ops->remove(f.spy.inner.ctx, "berth-gw-short-3", BERTH_NO_DEADLINE, &err) ==
          0);
    r = get_gw(&f, "", "short", &err);
    CHECK(r != NULL && r->n_instances == 4);
    for (size_t i = 0; r && r->n_instances == 4 && i < 4; i++) {
        char want[32];
        int missing = i == 1 || i == 3;
        snprintf(want, sizeof(want), "short-%zu", i);
        CHECK_STR(r->instances[i]->id, want);
        CHECK_MSG(r->instances[i]->status ==
                      (missing ? KRANE__V1__GATEWAY_STATUS__GATEWAY_STATUS_PENDING
                               : KRANE__V1__GATEWAY_STATUS__GATEWAY_STATUS_RUNNING),
                  "instance %zu: status %d", i, (int)r->instances[i]->status);
        CHECK(missing == (r->instances[i]->address[0] == '\0'));
    }
    CHECK(r != NULL && strcmp(r->address, r->instances[0]->address) == 0);

    /* A retry of the Create completes it. */
    CHECK(create_gw(&f, &g, &err) == 0);
    r = get_gw(&f, "", "short", &err);
    CHECK(r != NULL && r->n_instances == 4);
    for (size_t i = 0; r && i < r->n_instances; i++)
        CHECK(r->instances[i]->status == KRANE__V1__GATEWAY_STATUS__GATEWAY_STATUS_RUNNING);

    /* An older replica without the count: shown as it is, nothing added. */
    CHECK(started_container(&f, "berth-gw-old-1", old, sizeof(old) / sizeof(old[0])) == 0);
    r = get_gw(&f, "", "old", &err);
    CHECK(r != NULL && r->n_instances == 1);
    CHECK(r != NULL && r->n_instances == 1 && strcmp(r->instances[0]->id, "old-1") == 0);
    fixture_release(&f);
}

/* A retried Create starts exited replicas and unpauses paused ones. */
static void test_retry_unpauses(void)
{
    GatewayRequest g = gw_request("wake", 3);
    Krane__V1__GetGatewayResponse *r;
    struct fixture f;
    struct berth_err err;

    if (fixture_init(&f, "") < 0) {
        CHECK(!"fixture");
        fixture_release(&f);
        return;
    }
    CHECK(create_gw(&f, &g, &err) == 0);
    CHECK(f.spy.inner.ops->pause(f.spy.inner.ctx, container_id_of(&f, "berth-gw-wake-0"),
                                 BERTH_NO_DEADLINE, &err) == 0);
    CHECK(f.spy.inner.ops->stop(f.spy.inner.ctx, container_id_of(&f, "berth-gw-wake-2"), 0,
                                BERTH_NO_DEADLINE, &err) == 0);
    r = get_gw(&f, "", "wake", &err);
    CHECK(r != NULL && r->n_instances == 3 &&
          r->instances[0]->status == KRANE__V1__GATEWAY_STATUS__GATEWAY_STATUS_TERMINATING &&
          r->instances[2]->status == KRANE__V1__GATEWAY_STATUS__GATEWAY_STATUS_TERMINATING);
    CHECK(create_gw(&f, &g, &err) == 0);
    r = get_gw(&f, "", "wake", &err);
    CHECK(r != NULL && r->n_instances == 3);
    for (size_t i = 0; r && i < r->n_instances; i++)
        CHECK_MSG(r->instances[i]->status == KRANE__V1__GATEWAY_STATUS__GATEWAY_STATUS_RUNNING,
                  "instance %zu: status %d", i, (int)r->instances[i]->status);
    CHECK(memory_backend_count(&f.spy.inner) == 3);

    /* A failing unpause fails the retry. */
    CHECK(f.spy.inner.ops->pause(f.spy.inner.ctx, container_id_of(&f, "berth-gw-wake-1"),
                                 BERTH_NO_DEADLINE, &err) == 0);
    memory_backend_fail_next(&f.spy.inner, "unpause", 1, BERTH_UNAVAILABLE);
    CHECK(create_gw(&f, &g, &err) < 0 && err.code == BERTH_UNAVAILABLE);
    fixture_release(&f);
}

/* Gets and Deletes of ids that never existed leave nothing behind in the
 * cache: what a forgotten object leaves goes once no older listing is
 * under way. */
static void test_cache_stays_small(void)
{
    GatewayRequest g = gw_request("kept", 1);
    struct fixture f;
    struct berth_err err;
    char id[32];

    if (fixture_init(&f, "") < 0) {
        CHECK(!"fixture");
        fixture_release(&f);
        return;
    }
    CHECK(create_gw(&f, &g, &err) == 0);
    CHECK(replica_service_cached(f.svc) == 1);
    for (int i = 0; i < 200; i++) {
        snprintf(id, sizeof(id), "ghost-%d", i);
        CHECK(get_gw(&f, "", id, &err) == NULL && err.code == BERTH_NOT_FOUND);
        CHECK(delete_gw(&f, "", id, &err) == 0);
    }
    CHECK_MSG(replica_service_cached(f.svc) == 1, "%zu entries", replica_service_cached(f.svc));
    fixture_release(&f);
}

/* The memory backend's own replica-set operations, without the service:
 * apply, the instances, listing, another spec refused, delete idempotent.
 * (Updates: test_replica_update.c.) */
static void test_memory_replica_sets(void)
{
    struct backend b = {0};
    struct backend_replica_spec spec = {
        .kind = OBJECT_DEPLOYMENT,
        .ns = "team",
        .id = "api",
        .replicas = 2,
        .digest = "d1",
        .instance_env = "BERTH_INSTANCE_ID",
        .tmpl = {.image = "busybox:latest"},
    };
    struct backend_apply_result res = {0};
    struct backend_replica_set set = {0};
    struct backend_replica_set_list list = {0};
    struct berth_err err;
    size_t removed = 0;

    berth_err_clear(&err);
    CHECK(memory_backend_new(&b, &err) == 0);
    if (b.ops == NULL)
        return;
    CHECK(b.ops->replica_update != NULL && b.ops->replica_recover != NULL);
    CHECK(b.ops->replica_apply(b.ctx, &spec, BERTH_NO_DEADLINE, &res, &err) == 0);
    CHECK(res.existing == 0 && res.added == 2 && res.woken == 0);
    CHECK(b.ops->replica_apply(b.ctx, &spec, BERTH_NO_DEADLINE, &res, &err) == 0);
    CHECK_MSG(res.existing == 2 && res.added == 0, "a retry adds nothing");
    CHECK(memory_backend_count(&b) == 2);

    CHECK(b.ops->replica_get(b.ctx, OBJECT_DEPLOYMENT, "team", "api", BERTH_NO_DEADLINE, &set,
                             &err) == 0);
    CHECK(set.n == 2 && set.wanted == 2 && set.kind == OBJECT_DEPLOYMENT);
    if (set.n == 2) {
        CHECK(set.items[0].index == 0 && set.items[1].index == 1);
        CHECK(set.items[0].state == BACKEND_STATE_RUNNING);
        CHECK_STR(set.items[0].host, "");
    }
    CHECK_STR(set.ns, "team");
    backend_replica_set_release(&set);
    berth_err_clear(&err);
    CHECK_MSG(b.ops->replica_get(b.ctx, OBJECT_DEPLOYMENT, "", "api", BERTH_NO_DEADLINE, &set,
                                 &err) < 0 &&
                  err.code == BERTH_NOT_FOUND,
              "another namespace does not see it");
    berth_err_clear(&err);
    CHECK(b.ops->replica_list(b.ctx, OBJECT_DEPLOYMENT, NULL, BERTH_NO_DEADLINE, &list, &err) == 0);
    CHECK(list.n == 1);
    backend_replica_set_list_release(&list);
    CHECK(b.ops->replica_list(b.ctx, OBJECT_GATEWAY, NULL, BERTH_NO_DEADLINE, &list, &err) == 0);
    CHECK(list.n == 0);
    backend_replica_set_list_release(&list);

    spec.digest = "d2";
    CHECK(b.ops->replica_apply(b.ctx, &spec, BERTH_NO_DEADLINE, NULL, &err) < 0 &&
          err.code == BERTH_ALREADY_EXISTS);
    CHECK(memory_backend_count(&b) == 2);

    berth_err_clear(&err);
    CHECK(b.ops->replica_delete(b.ctx, OBJECT_DEPLOYMENT, "team", "api", BERTH_NO_DEADLINE,
                                &removed, &err) == 0 &&
          removed == 2);
    CHECK(b.ops->replica_delete(b.ctx, OBJECT_DEPLOYMENT, "team", "api", BERTH_NO_DEADLINE,
                                &removed, &err) == 0 &&
          removed == 0);
    CHECK(memory_backend_count(&b) == 0);
    backend_destroy(&b);
}

int main(void)
{
    test_validation();
    test_missing_object();
    test_secrets_refused();
    test_spec_mapping();
    test_rollback();
    test_retry();
    test_different_spec();
    test_get_status_and_address();
    test_get_health();
    test_advertise_host();
    test_delete();
    test_namespaces();
    test_deployment();
    test_concurrent_create();
    test_cache_outage();
    test_cache_sync();
    test_cache_event();
    test_short_set();
    test_retry_unpauses();
    test_cache_stays_small();
    test_memory_replica_sets();
    test_max_replicas_total();
    return test_summary("test_replica_service");
}
