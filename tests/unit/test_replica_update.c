/* ListGateways / ListDeployments and UpdateGateway / UpdateDeployment against
 * the memory backend: pages over many objects in (namespace, id) order, the
 * namespace filter, bad page sizes and tokens, summaries, answers from the
 * cache; scaling, rolling replacement, rollback with the old replicas
 * untouched, one update at a time, recovery of updates left half way. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/arena.h"
#include "berth/clock.h"
#include "berth/memory_backend.h"
#include "berth/replica_service.h"
#include "berth/router.h"
#include "krane/v1/deployment.pb-c.h"
#include "krane/v1/gateway.pb-c.h"
#include "testlib.h"

#define GW "/krane.v1.GatewayService/"
#define DEP "/krane.v1.DeploymentService/"

struct fixture {
    struct backend backend;
    struct replica_service *svc;
    struct router *router;
    struct arena *arena;
};

/* The containers of one deployment, as the backend has them. */
struct dep_state {
    char ids[16][65]; /* replicas' container ids, by index, then generation */
    char image[16][64];
    enum backend_state state[16];
    size_t n;       /* replicas */
    size_t records; /* record containers */
};

static int fixture_init(struct fixture *f);
static int fixture_init_drain(struct fixture *f, int64_t drain_ms);
static int fixture_init_cfg(struct fixture *f, const struct replica_service_config *cfg);
static void fixture_release(struct fixture *f);
static int call(struct fixture *f, const char *path, const void *in, ProtobufCMessage **out,
                struct berth_err *err);
static int create_dep(struct fixture *f, const char *ns, const char *id, const char *image,
                      unsigned replicas, struct berth_err *err);
static Krane__V1__ListDeploymentsResponse *list_dep(struct fixture *f, const char *ns, int size,
                                                    const char *token, struct berth_err *err);

static int id_number(const char *id);
static void test_list_pages(void);
static void test_list_namespace(void);
static void test_list_errors(void);
static void test_list_gateways(void);

static int fixture_init(struct fixture *f)
{
    return fixture_init_drain(f, 0);
}

/* Updates with no minimum run time and the given drain. */
static int fixture_init_drain(struct fixture *f, int64_t drain_ms)
{
    struct replica_service_config cfg = {
        .gateway_port = 8040,
        .deployment_port = 8080,
        .publish_address = "127.0.0.1",
        .update_parallelism = 1,
        .update_ready_timeout_ms = 2000,
        .update_drain_ms = drain_ms,
    };

    return fixture_init_cfg(f, &cfg);
}

static int fixture_init_cfg(struct fixture *f, const struct replica_service_config *cfg)
{
    struct berth_err err;

    memset(f, 0, sizeof(*f));
    berth_err_clear(&err);
    if (memory_backend_new(&f->backend, &err) < 0)
        return -1;
    f->svc = replica_service_new(cfg, &f->backend);
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
    backend_destroy(&f->backend);
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

static int create_dep(struct fixture *f, const char *ns, const char *id, const char *image,
                      unsigned replicas, struct berth_err *err)
{
    Krane__V1__CreateDeploymentRequest req = KRANE__V1__CREATE_DEPLOYMENT_REQUEST__INIT;
    Krane__V1__DeploymentRequest d = KRANE__V1__DEPLOYMENT_REQUEST__INIT;

    d.namespace_ = (char *)ns;
    d.deployment_id = (char *)id;
    d.image = (char *)image;
    d.replicas = replicas;
    req.deployment = &d;
    return call(f, DEP "CreateDeployment", &req, NULL, err);
}

static Krane__V1__ListDeploymentsResponse *list_dep(struct fixture *f, const char *ns, int size,
                                                    const char *token, struct berth_err *err)
{
    Krane__V1__ListDeploymentsRequest req = KRANE__V1__LIST_DEPLOYMENTS_REQUEST__INIT;
    ProtobufCMessage *out = NULL;

    req.namespace_ = (char *)ns;
    req.page_size = size;
    req.page_token = (char *)token;
    if (call(f, DEP "ListDeployments", &req, &out, err) < 0)
        return NULL;
    return (Krane__V1__ListDeploymentsResponse *)out;
}

/* The number of "dep-NNN"; -1 for anything else. */
static int id_number(const char *id)
{
    char *end;
    long n;

    if (strncmp(id, "dep-", 4) != 0)
        return -1;
    n = strtol(id + 4, &end, 10);
    return *end == '\0' && n >= 0 && n < 1000 ? (int)n : -1;
}

/* 250 deployments in two namespaces, made in a shuffled order: pages of
 * 100 (the default) and of 7 see each exactly once, in (namespace, id)
 * order, with the total on every page. */
static void test_list_pages(void)
{
    struct fixture f;
    struct berth_err err;
    char seen[250] = {0};
    int ok = 1;

    CHECK(fixture_init(&f) == 0);
    for (int k = 0; k < 250 && ok; k++) {
        int i = (k * 37) % 250; /* 37 and 250 are coprime: every i once */
        char id[32];
        snprintf(id, sizeof(id), "dep-%03d", i);
        ok = create_dep(&f, i % 2 ? "ns-b" : "ns-a", id, "busybox:latest", 1, &err) == 0;
    }
    CHECK_MSG(ok, "%s", err.msg);

    for (int size = 0; size <= 7; size += 7) {
        const char *token = "";
        char last[80] = "";
        size_t pages = 0, total = 0;

        memset(seen, 0, sizeof(seen));
        for (;;) {
            Krane__V1__ListDeploymentsResponse *r = list_dep(&f, "", size, token, &err);
            CHECK_MSG(r != NULL, "%s", err.msg);
            if (r == NULL)
                break;
            pages++;
            CHECK(r->total_count == 250);
            CHECK(r->n_deployments == (size_t)(size ? size : 100) || r->next_page_token[0] == 0);
            for (size_t i = 0; i < r->n_deployments; i++) {
                const Krane__V1__DeploymentSummary *d = r->deployments[i];
                char key[80];
                int n = id_number(d->deployment_id);
                snprintf(key, sizeof(key), "%s/%s", d->namespace_, d->deployment_id);
                CHECK_MSG(strcmp(last, key) < 0, "%s after %s", key, last);
                snprintf(last, sizeof(last), "%s", key);
                CHECK(n >= 0 && n < 250 && !seen[n]);
                if (n >= 0 && n < 250)
                    seen[n] = 1;
                CHECK_STR(d->image, "busybox:latest");
                CHECK(d->replicas == 1);
                CHECK(d->running == 1);
                CHECK(d->status == KRANE__V1__DEPLOYMENT_STATUS__DEPLOYMENT_STATUS_RUNNING);
                total++;
            }
            if (r->next_page_token[0] == '\0')
                break;
            token = arena_strdup(f.arena, r->next_page_token);
        }
        CHECK(total == 250);
        CHECK(pages == (size ? 36u : 3u));
    }
    fixture_release(&f);
}

/* One namespace only; a namespace with none is an empty answer. */
static void test_list_namespace(void)
{
    struct fixture f;
    struct berth_err err;
    Krane__V1__ListDeploymentsResponse *r;

    CHECK(fixture_init(&f) == 0);
    CHECK(create_dep(&f, "a", "dep-1", "busybox:latest", 2, &err) == 0);
    CHECK(create_dep(&f, "b", "dep-2", "busybox:1", 3, &err) == 0);
    CHECK(create_dep(&f, "", "dep-3", "busybox:2", 1, &err) == 0);
    r = list_dep(&f, "b", 0, "", &err);
    CHECK(r != NULL && r->n_deployments == 1 && r->total_count == 1);
    if (r != NULL && r->n_deployments == 1) {
        CHECK_STR(r->deployments[0]->deployment_id, "dep-2");
        CHECK_STR(r->deployments[0]->image, "busybox:1");
        CHECK(r->deployments[0]->replicas == 3 && r->deployments[0]->running == 3);
        CHECK_STR(r->next_page_token, "");
    }
    r = list_dep(&f, "", 0, "", &err);
    CHECK(r != NULL && r->n_deployments == 3 && r->total_count == 3);
    if (r != NULL && r->n_deployments == 3) /* "" sorts first */
        CHECK_STR(r->deployments[0]->deployment_id, "dep-3");
    r = list_dep(&f, "none", 0, "", &err);
    CHECK(r != NULL && r->n_deployments == 0 && r->total_count == 0);
    fixture_release(&f);
}

/* Sizes out of range and tokens berthd did not make are refused. */
static void test_list_errors(void)
{
    static const char *const bad_tokens[] = {"x",      "p1.",      "p1.6",     "p1.61",
                                             "p1.61.", "p1.zz.61", "p1.61.6g", "p2.61.61"};
    struct fixture f;
    struct berth_err err;

    CHECK(fixture_init(&f) == 0);
    CHECK(create_dep(&f, "", "dep-1", "busybox:latest", 1, &err) == 0);
    CHECK(list_dep(&f, "", 1001, "", &err) == NULL && err.code == BERTH_INVALID_ARGUMENT &&
          strstr(err.msg, "pageSize") != NULL);
    CHECK(list_dep(&f, "", -1, "", &err) == NULL && err.code == BERTH_INVALID_ARGUMENT);
    CHECK(list_dep(&f, "", 1000, "", &err) != NULL);
    for (size_t i = 0; i < sizeof(bad_tokens) / sizeof(bad_tokens[0]); i++)
        CHECK_MSG(list_dep(&f, "", 0, bad_tokens[i], &err) == NULL &&
                      err.code == BERTH_INVALID_ARGUMENT && strstr(err.msg, "pageToken") != NULL,
                  "token %s", bad_tokens[i]);
    /* A token past the last object is an empty last page. */
    CHECK(list_dep(&f, "", 0, "p1..7a", &err) != NULL);
    fixture_release(&f);
}

/* ListGateways answers the same way with its own messages. */
static void test_list_gateways(void)
{
    Krane__V1__CreateGatewayRequest creq = KRANE__V1__CREATE_GATEWAY_REQUEST__INIT;
    Krane__V1__GatewayRequest g = KRANE__V1__GATEWAY_REQUEST__INIT;
    Krane__V1__ListGatewaysRequest req = KRANE__V1__LIST_GATEWAYS_REQUEST__INIT;
    Krane__V1__ListGatewaysResponse *r;
    ProtobufCMessage *out = NULL;
    struct fixture f;
    struct berth_err err;

    CHECK(fixture_init(&f) == 0);
    g.gateway_id = "gw-1";
    g.image = "busybox:latest";
    g.replicas = 2;
    creq.gateway = &g;
    CHECK(call(&f, GW "CreateGateway", &creq, NULL, &err) == 0);
    CHECK(create_dep(&f, "", "dep-1", "busybox:latest", 1, &err) == 0);
    CHECK(call(&f, GW "ListGateways", &req, &out, &err) == 0);
    r = (Krane__V1__ListGatewaysResponse *)out;
    CHECK(r != NULL && r->n_gateways == 1 && r->total_count == 1);
    if (r != NULL && r->n_gateways == 1) {
        CHECK_STR(r->gateways[0]->gateway_id, "gw-1");
        CHECK(r->gateways[0]->replicas == 2 && r->gateways[0]->running == 2);
        CHECK(r->gateways[0]->status == KRANE__V1__GATEWAY_STATUS__GATEWAY_STATUS_RUNNING);
    }
    fixture_release(&f);
}

/* ---- updates ------------------------------------------------------------- */

static int update_dep(struct fixture *f, const char *ns, const char *id, const char *image,
                      unsigned replicas, const char *env_value, int64_t timeout_ms,
                      Krane__V1__UpdateDeploymentResponse **resp, struct berth_err *err)
{
    Krane__V1__UpdateDeploymentRequest req = KRANE__V1__UPDATE_DEPLOYMENT_REQUEST__INIT;
    Krane__V1__DeploymentRequest d = KRANE__V1__DEPLOYMENT_REQUEST__INIT;
    Krane__V1__DeploymentRequest__EnvEntry e = KRANE__V1__DEPLOYMENT_REQUEST__ENV_ENTRY__INIT;
    Krane__V1__DeploymentRequest__EnvEntry *env[1] = {&e};
    struct rpc_route *r =
        router_find(f->router, DEP "UpdateDeployment", strlen(DEP "UpdateDeployment"));
    struct rpc_call c = {
        .arena = f->arena,
        .deadline = berth_now_ms() + timeout_ms,
        .procedure = DEP "UpdateDeployment",
        .request_id = "test",
    };
    ProtobufCMessage *out = NULL;
    int rc;

    d.namespace_ = (char *)ns;
    d.deployment_id = (char *)id;
    d.image = (char *)image;
    d.replicas = replicas;
    if (env_value != NULL) {
        e.key = "FLAVOUR";
        e.value = (char *)env_value;
        d.env = env;
        d.n_env = 1;
    }
    req.deployment = &d;
    berth_err_clear(err);
    if (r == NULL || r->handler == NULL)
        return berth_err_set(err, BERTH_UNIMPLEMENTED, "no UpdateDeployment handler");
    rc = r->handler(r->handler_ctx, &c, &req.base, &out, err);
    if (rc == 0 && resp != NULL)
        *resp = (Krane__V1__UpdateDeploymentResponse *)out;
    return rc;
}

static Krane__V1__GetDeploymentResponse *get_dep(struct fixture *f, const char *ns, const char *id,
                                                 struct berth_err *err)
{
    Krane__V1__GetDeploymentRequest req = KRANE__V1__GET_DEPLOYMENT_REQUEST__INIT;
    ProtobufCMessage *out = NULL;

    req.namespace_ = (char *)ns;
    req.deployment_id = (char *)id;
    if (call(f, DEP "GetDeployment", &req, &out, err) < 0)
        return NULL;
    return (Krane__V1__GetDeploymentResponse *)out;
}

static int delete_dep(struct fixture *f, const char *ns, const char *id, int64_t timeout_ms,
                      struct berth_err *err)
{
    Krane__V1__DeleteDeploymentRequest req = KRANE__V1__DELETE_DEPLOYMENT_REQUEST__INIT;
    struct rpc_route *r =
        router_find(f->router, DEP "DeleteDeployment", strlen(DEP "DeleteDeployment"));
    struct rpc_call c = {
        .arena = f->arena,
        .deadline = berth_now_ms() + timeout_ms,
        .procedure = DEP "DeleteDeployment",
        .request_id = "test",
    };
    ProtobufCMessage *out = NULL;

    req.namespace_ = (char *)ns;
    req.deployment_id = (char *)id;
    berth_err_clear(err);
    return r->handler(r->handler_ctx, &c, &req.base, &out, err);
}

static int dep_state_cmp(const void *a, const void *b)
{
    const struct backend_container *x = a, *y = b;
    const char *ix = backend_container_label(x, "berth.replica");
    const char *iy = backend_container_label(y, "berth.replica");
    const char *gx = backend_container_label(x, "berth.generation");
    const char *gy = backend_container_label(y, "berth.generation");
    int c = strcmp(ix ? ix : "~", iy ? iy : "~");

    return c != 0 ? c : strcmp(gx ? gx : "", gy ? gy : "");
}

/* What the backend holds of deployment id (indexes below 10 sort right). */
static int dep_state_read(struct fixture *f, const char *id, struct dep_state *st)
{
    struct backend_container_list l = {0};
    struct berth_err err;
    char filter[96];

    memset(st, 0, sizeof(*st));
    snprintf(filter, sizeof(filter), "berth.deployment_id=%s", id);
    berth_err_clear(&err);
    if (f->backend.ops->list(f->backend.ctx, filter, BERTH_NO_DEADLINE, &l, &err) < 0)
        return -1;
    qsort(l.items, l.n, sizeof(*l.items), dep_state_cmp);
    for (size_t i = 0; i < l.n; i++) {
        const struct backend_container *c = &l.items[i];
        if (backend_container_label(c, "berth.record") != NULL) {
            st->records++;
            continue;
        }
        if (st->n == 16)
            break;
        snprintf(st->ids[st->n], sizeof(st->ids[st->n]), "%s", c->id);
        snprintf(st->image[st->n], sizeof(st->image[st->n]), "%s", c->image);
        st->state[st->n++] = c->state;
    }
    backend_container_list_release(&l);
    return 0;
}

/* The same replica containers, in the same states (records aside). */
static int dep_same_replicas(const struct dep_state *a, const struct dep_state *b)
{
    if (a->n != b->n)
        return 0;
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->ids[i], b->ids[i]) != 0 || a->state[i] != b->state[i])
            return 0;
    return 1;
}

/* Every replica runs `image`, n of them, one record at most. */
static int dep_is(const struct dep_state *st, const char *image, size_t n)
{
    if (st->n != n || st->records > 1)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (strcmp(st->image[i], image) != 0 || st->state[i] != BACKEND_STATE_RUNNING)
            return 0;
    return 1;
}

/* The same spec again: success, pod ids, nothing touched; unknown ids,
 * other namespaces and invalid specs change nothing either. */
static void test_update_noop_and_errors(void)
{
    struct fixture f;
    struct berth_err err;
    struct dep_state before, after;
    Krane__V1__UpdateDeploymentResponse *r = NULL;

    CHECK(fixture_init(&f) == 0);
    CHECK(create_dep(&f, "team", "web", "img:a", 3, &err) == 0);
    CHECK(dep_state_read(&f, "web", &before) == 0 && before.n == 3 && before.records == 0);
    CHECK_MSG(update_dep(&f, "team", "web", "img:a", 3, NULL, 5000, &r, &err) == 0, "%s", err.msg);
    CHECK(r != NULL && r->n_pod_ids == 3);
    if (r != NULL && r->n_pod_ids == 3) {
        CHECK_STR(r->pod_ids[0], "web-0");
        CHECK_STR(r->pod_ids[2], "web-2");
    }
    CHECK(dep_state_read(&f, "web", &after) == 0 && memcmp(&before, &after, sizeof(before)) == 0);

    CHECK(update_dep(&f, "team", "nope", "img:a", 3, NULL, 5000, NULL, &err) < 0 &&
          err.code == BERTH_NOT_FOUND && strstr(err.msg, "'nope' not found") != NULL);
    CHECK(update_dep(&f, "other", "web", "img:b", 3, NULL, 5000, NULL, &err) < 0 &&
          err.code == BERTH_NOT_FOUND);
    CHECK(update_dep(&f, "team", "web", "img:b", 0, NULL, 5000, NULL, &err) < 0 &&
          err.code == BERTH_INVALID_ARGUMENT && strstr(err.msg, "replicas") != NULL);
    CHECK(update_dep(&f, "team", "web", "", 3, NULL, 5000, NULL, &err) < 0 &&
          err.code == BERTH_INVALID_ARGUMENT && strstr(err.msg, "image") != NULL);
    CHECK(dep_state_read(&f, "web", &after) == 0 && memcmp(&before, &after, sizeof(before)) == 0);
    fixture_release(&f);
}

/* 3 -> 5 adds indexes 3 and 4, 5 -> 2 removes the highest; the others are
 * the same containers throughout. Get, List and Create retries follow. */
static void test_update_scale(void)
{
    struct fixture f;
    struct berth_err err;
    struct dep_state s3, s5, s2;
    Krane__V1__GetDeploymentResponse *g;
    Krane__V1__ListDeploymentsResponse *l;

    CHECK(fixture_init(&f) == 0);
    CHECK(create_dep(&f, "", "web", "img:a", 3, &err) == 0);
    CHECK(dep_state_read(&f, "web", &s3) == 0 && s3.n == 3);
    CHECK_MSG(update_dep(&f, "", "web", "img:a", 5, NULL, 5000, NULL, &err) == 0, "%s", err.msg);
    CHECK(dep_state_read(&f, "web", &s5) == 0 && dep_is(&s5, "img:a", 5) && s5.records == 1);
    for (size_t i = 0; i < 3; i++)
        CHECK_STR(s5.ids[i], s3.ids[i]);
    g = get_dep(&f, "", "web", &err);
    CHECK(g != NULL && g->n_instances == 5);
    if (g != NULL && g->n_instances == 5)
        CHECK_STR(g->instances[4]->id, "web-4");
    l = list_dep(&f, "", 0, "", &err);
    CHECK(l != NULL && l->n_deployments == 1 && l->deployments[0]->replicas == 5 &&
          l->deployments[0]->running == 5);

    CHECK_MSG(update_dep(&f, "", "web", "img:a", 2, NULL, 5000, NULL, &err) == 0, "%s", err.msg);
    CHECK(dep_state_read(&f, "web", &s2) == 0 && dep_is(&s2, "img:a", 2) && s2.records == 1);
    CHECK_STR(s2.ids[0], s3.ids[0]);
    CHECK_STR(s2.ids[1], s3.ids[1]);
    g = get_dep(&f, "", "web", &err);
    CHECK_MSG(g != NULL && g->n_instances == 2, "no PENDING instance for a removed index");
    l = list_dep(&f, "", 0, "", &err);
    CHECK(l != NULL && l->n_deployments == 1 && l->deployments[0]->replicas == 2);

    /* The set is a 2-replica set of img:a now, for Create too. */
    CHECK(create_dep(&f, "", "web", "img:a", 2, &err) == 0);
    CHECK(create_dep(&f, "", "web", "img:a", 3, &err) < 0 && err.code == BERTH_ALREADY_EXISTS);
    CHECK(dep_state_read(&f, "web", &s5) == 0 && memcmp(&s2, &s5, sizeof(s2)) == 0);
    /* Delete takes the record along. */
    CHECK(delete_dep(&f, "", "web", 5000, &err) == 0);
    CHECK(memory_backend_count(&f.backend) == 0);
    fixture_release(&f);
}

/* A new template replaces every replica (one or two at a time): new
 * containers, the same instance ids, nothing of the old left. */
static void test_update_rolling(void)
{
    for (unsigned p = 1; p <= 2; p++) {
        struct replica_service_config cfg = {
            .gateway_port = 8040,
            .deployment_port = 8080,
            .publish_address = "127.0.0.1",
            .update_parallelism = p,
            .update_ready_timeout_ms = 2000,
        };
        struct fixture f;
        struct berth_err err;
        struct dep_state a, b;
        Krane__V1__UpdateDeploymentResponse *r = NULL;
        Krane__V1__GetDeploymentResponse *g;

        CHECK(fixture_init_cfg(&f, &cfg) == 0);
        CHECK(create_dep(&f, "", "web", "img:a", 3, &err) == 0);
        CHECK(dep_state_read(&f, "web", &a) == 0 && dep_is(&a, "img:a", 3));
        CHECK_MSG(update_dep(&f, "", "web", "img:b", 3, NULL, 5000, &r, &err) == 0, "%s", err.msg);
        CHECK(r != NULL && r->n_pod_ids == 3);
        CHECK(dep_state_read(&f, "web", &b) == 0 && dep_is(&b, "img:b", 3) && b.records == 1);
        for (size_t i = 0; i < 3; i++)
            CHECK(strcmp(a.ids[i], b.ids[i]) != 0);
        g = get_dep(&f, "", "web", &err);
        CHECK(g != NULL && g->n_instances == 3);
        for (size_t i = 0; g != NULL && i < g->n_instances; i++) {
            char want[32];
            snprintf(want, sizeof(want), "web-%zu", i);
            CHECK_STR(g->instances[i]->id, want);
            CHECK(g->instances[i]->status ==
                  KRANE__V1__DEPLOYMENT_STATUS__DEPLOYMENT_STATUS_RUNNING);
        }
        /* Another env is another template too; with a new count at once. */
        CHECK_MSG(update_dep(&f, "", "web", "img:b", 4, "x", 5000, NULL, &err) == 0, "%s", err.msg);
        CHECK(dep_state_read(&f, "web", &a) == 0 && dep_is(&a, "img:b", 4));
        for (size_t i = 0; i < 3; i++)
            CHECK(strcmp(a.ids[i], b.ids[i]) != 0);
        CHECK(memory_backend_count(&f.backend) == 5);
        fixture_release(&f);
    }
}

/* An image whose command fails: the first new replica never becomes
 * ready, the update answers failed_precondition naming it, and the set is
 * exactly as before (same containers, no record). A failure further on
 * starts the old replicas it had stopped again: still the same ones. */
static void test_update_rollback(void)
{
    struct fixture f;
    struct berth_err err;
    struct dep_state before, after;

    CHECK(fixture_init(&f) == 0);
    CHECK(create_dep(&f, "", "web", "img:a", 3, &err) == 0);
    CHECK(dep_state_read(&f, "web", &before) == 0);
    memory_backend_crash_image(&f.backend, "img:bad", 3);
    CHECK(update_dep(&f, "", "web", "img:bad", 3, NULL, 5000, NULL, &err) < 0);
    CHECK_MSG(err.code == BERTH_FAILED_PRECONDITION &&
                  strstr(err.msg, "replica 0 of the new spec exited with code 3") != NULL,
              "%s", err.msg);
    CHECK(dep_state_read(&f, "web", &after) == 0 && memcmp(&before, &after, sizeof(before)) == 0);
    CHECK(memory_backend_count(&f.backend) == 3);

    /* The third new replica cannot start: two old ones were stopped. */
    CHECK(memory_backend_fail_later(&f.backend, "start", 2, 1, BERTH_UNAVAILABLE) == 0);
    CHECK(update_dep(&f, "", "web", "img:b", 3, NULL, 5000, NULL, &err) < 0 &&
          err.code == BERTH_UNAVAILABLE);
    CHECK(dep_state_read(&f, "web", &after) == 0 && memcmp(&before, &after, sizeof(before)) == 0);
    CHECK(memory_backend_count(&f.backend) == 3);

    /* A scale-up whose new replica fails leaves the old ones alone. */
    memory_backend_crash_image(&f.backend, "img:a", 1);
    CHECK(update_dep(&f, "", "web", "img:a", 4, NULL, 5000, NULL, &err) < 0 &&
          err.code == BERTH_FAILED_PRECONDITION && strstr(err.msg, "replica 3") != NULL);
    memory_backend_crash_image(&f.backend, NULL, 0);
    CHECK(dep_state_read(&f, "web", &after) == 0 && memcmp(&before, &after, sizeof(before)) == 0);
    CHECK(memory_backend_count(&f.backend) == 3);
    fixture_release(&f);
}

/* A new replica must run a while to be ready: past the ready timeout, or
 * the call's deadline, the update answers deadline_exceeded, rolled back. */
static void test_update_ready_timeout(void)
{
    static const struct {
        const char *description;
        int64_t ready_timeout_ms, call_timeout_ms;
        const char *says;
    } rows[] = {
        {"the ready timeout comes first", 200, 5000, "not ready within 200 ms"},
        {"the call's deadline comes first", 0, 300, "not ready by the deadline"},
    };

    for (size_t k = 0; k < sizeof(rows) / sizeof(rows[0]); k++) {
        struct replica_service_config cfg = {
            .gateway_port = 8040,
            .deployment_port = 8080,
            .publish_address = "127.0.0.1",
            .update_ready_timeout_ms = rows[k].ready_timeout_ms,
            .update_min_ready_ms = 60000,
        };
        struct fixture f;
        struct berth_err err;
        struct dep_state before, after;
        int64_t t0;

        CHECK(fixture_init_cfg(&f, &cfg) == 0);
        CHECK(create_dep(&f, "", "web", "img:a", 2, &err) == 0);
        CHECK(dep_state_read(&f, "web", &before) == 0);
        t0 = berth_now_ms();
        CHECK_MSG(update_dep(&f, "", "web", "img:b", 2, NULL, rows[k].call_timeout_ms, NULL, &err) <
                          0 &&
                      err.code == BERTH_DEADLINE_EXCEEDED && strstr(err.msg, rows[k].says) != NULL,
                  "%s: %s %s", rows[k].description, berth_code_name(err.code), err.msg);
        CHECK_MSG(berth_now_ms() - t0 < 2000, "%s: gave up in time", rows[k].description);
        CHECK(dep_state_read(&f, "web", &after) == 0 &&
              memcmp(&before, &after, sizeof(before)) == 0);
        CHECK(memory_backend_count(&f.backend) == 2);
        fixture_release(&f);
    }
}

struct updater {
    struct fixture *f;
    int rc;
    struct berth_err err;
};

static void *run_update(void *arg)
{
    struct updater *u = arg;

    u->rc = update_dep(u->f, "", "web", "img:b", 2, NULL, 10000, NULL, &u->err);
    return NULL;
}

/* One update of an object at a time: a Delete with a short deadline
 * answers aborted, one with a longer deadline waits and then runs. */
static void test_update_busy(void)
{
    struct fixture f;
    struct berth_err err;
    struct updater u;
    pthread_t t;
    int64_t t0;

    CHECK(fixture_init_drain(&f, 300) == 0);
    CHECK(create_dep(&f, "", "web", "img:a", 2, &err) == 0);
    u.f = &f;
    u.rc = -2;
    CHECK(pthread_create(&t, NULL, run_update, &u) == 0);
    /* Wait until the update made its first new replica. */
    t0 = berth_now_ms();
    for (;;) {
        struct dep_state st;
        if (dep_state_read(&f, "web", &st) == 0 && st.n > 2)
            break;
        if (berth_now_ms() - t0 > 5000)
            break;
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
    t0 = berth_now_ms();
    CHECK(delete_dep(&f, "", "web", 400, &err) < 0);
    CHECK_MSG(err.code == BERTH_ABORTED && strstr(err.msg, "update") != NULL, "%s %s",
              berth_code_name(err.code), err.msg);
    CHECK_MSG(berth_now_ms() - t0 < 390, "aborted before the deadline");
    CHECK(delete_dep(&f, "", "web", 10000, &err) == 0);
    pthread_join(t, NULL);
    CHECK_MSG(u.rc == 0, "update: %s", u.err.msg);
    CHECK(memory_backend_count(&f.backend) == 0);
    fixture_release(&f);
}

/* Updates whose rollback or clean-up could not finish (as a crash leaves
 * them): the next sync settles them. A rollback cut short is undone; an
 * update whose new replicas were all ready is finished. */
static void test_update_recovery(void)
{
    struct fixture f;
    struct berth_err err;
    struct dep_state before, st;
    Krane__V1__GetDeploymentResponse *g;

    CHECK(fixture_init(&f) == 0);
    CHECK(create_dep(&f, "", "web", "img:a", 3, &err) == 0);
    CHECK(dep_state_read(&f, "web", &before) == 0);

    /* The second new replica fails; its rollback cannot remove anything:
     * the old replica 0 runs again, new 0 and 1 and both records stay. */
    CHECK(memory_backend_fail_later(&f.backend, "start", 1, 1, BERTH_UNAVAILABLE) == 0);
    CHECK(memory_backend_fail_later(&f.backend, "remove", 0, 100, BERTH_UNAVAILABLE) == 0);
    CHECK(update_dep(&f, "", "web", "img:b", 3, NULL, 5000, NULL, &err) < 0);
    memory_backend_fail_next(&f.backend, "remove", 0, BERTH_OK);
    CHECK(dep_state_read(&f, "web", &st) == 0 && st.n == 5 && st.records == 2);
    /* Meanwhile Get shows one instance per index. */
    g = get_dep(&f, "", "web", &err);
    CHECK(g != NULL && g->n_instances == 3);
    CHECK(replica_service_sync(f.svc, berth_now_ms() + 5000, &err) == 0);
    CHECK(dep_state_read(&f, "web", &st) == 0 && dep_same_replicas(&before, &st) &&
          st.records == 1);
    CHECK(dep_is(&st, "img:a", 3));

    /* Every new replica ready, then the commit fails and so does the whole
     * rollback: finished at the next sync. */
    CHECK(memory_backend_fail_later(&f.backend, "remove", 0, 100, BERTH_UNAVAILABLE) == 0);
    CHECK(memory_backend_fail_later(&f.backend, "start", 3, 100, BERTH_UNAVAILABLE) == 0);
    CHECK(update_dep(&f, "", "web", "img:b", 3, NULL, 5000, NULL, &err) < 0);
    memory_backend_fail_next(&f.backend, "remove", 0, BERTH_OK);
    CHECK(dep_state_read(&f, "web", &st) == 0 && st.n == 6 && st.records == 2);
    CHECK(replica_service_sync(f.svc, berth_now_ms() + 5000, &err) == 0);
    CHECK(dep_state_read(&f, "web", &st) == 0 && dep_is(&st, "img:b", 3) && st.records == 1);
    for (size_t i = 0; i < 3; i++)
        CHECK(strcmp(st.ids[i], before.ids[i]) != 0);

    /* A scale-down whose clean-up fails answers success; the sync removes
     * the replicas it left. */
    memcpy(&before, &st, sizeof(st));
    CHECK(memory_backend_fail_later(&f.backend, "remove", 1, 100, BERTH_UNAVAILABLE) == 0);
    CHECK_MSG(update_dep(&f, "", "web", "img:b", 1, NULL, 5000, NULL, &err) == 0, "%s", err.msg);
    memory_backend_fail_next(&f.backend, "remove", 0, BERTH_OK);
    g = get_dep(&f, "", "web", &err);
    CHECK(g != NULL && g->n_instances == 1);
    CHECK(dep_state_read(&f, "web", &st) == 0 && st.n == 3);
    CHECK(replica_service_sync(f.svc, berth_now_ms() + 5000, &err) == 0);
    CHECK(dep_state_read(&f, "web", &st) == 0 && dep_is(&st, "img:b", 1));
    CHECK_STR(st.ids[0], before.ids[0]);
    fixture_release(&f);
}

/* List answers from the cache: with the backend unreachable it still
 * does, once a sync succeeded; before that it answers unavailable. */
static void test_list_from_cache(void)
{
    struct fixture f;
    struct berth_err err;
    Krane__V1__ListDeploymentsResponse *r;

    CHECK(fixture_init(&f) == 0);
    memory_backend_fail_next(&f.backend, "list", 1, BERTH_UNAVAILABLE);
    CHECK(list_dep(&f, "", 0, "", &err) == NULL && err.code == BERTH_UNAVAILABLE);
    CHECK(create_dep(&f, "", "dep-1", "img:a", 2, &err) == 0);
    r = list_dep(&f, "", 0, "", &err);
    CHECK(r != NULL && r->total_count == 1);
    memory_backend_fail_next(&f.backend, "list", 100, BERTH_UNAVAILABLE);
    r = list_dep(&f, "", 0, "", &err);
    CHECK_MSG(r != NULL && r->total_count == 1 && r->n_deployments == 1, "%s", err.msg);
    if (r != NULL && r->n_deployments == 1) {
        CHECK_STR(r->deployments[0]->image, "img:a");
        CHECK(r->deployments[0]->replicas == 2 && r->deployments[0]->running == 2);
    }
    memory_backend_fail_next(&f.backend, "list", 0, BERTH_OK);
    /* An update shows at once. */
    CHECK(update_dep(&f, "", "dep-1", "img:b", 3, NULL, 5000, NULL, &err) == 0);
    r = list_dep(&f, "", 0, "", &err);
    CHECK(r != NULL && r->n_deployments == 1);
    if (r != NULL && r->n_deployments == 1) {
        CHECK_STR(r->deployments[0]->image, "img:b");
        CHECK(r->deployments[0]->replicas == 3 && r->deployments[0]->running == 3);
    }
    fixture_release(&f);
}

/* UpdateGateway: the same, with its own messages. */
static void test_update_gateway(void)
{
    Krane__V1__CreateGatewayRequest creq = KRANE__V1__CREATE_GATEWAY_REQUEST__INIT;
    Krane__V1__UpdateGatewayRequest ureq = KRANE__V1__UPDATE_GATEWAY_REQUEST__INIT;
    Krane__V1__GatewayRequest g = KRANE__V1__GATEWAY_REQUEST__INIT;
    Krane__V1__UpdateGatewayResponse *r;
    ProtobufCMessage *out = NULL;
    struct fixture f;
    struct berth_err err;

    CHECK(fixture_init(&f) == 0);
    g.gateway_id = "gw-1";
    g.image = "img:a";
    g.replicas = 2;
    creq.gateway = &g;
    CHECK(call(&f, GW "CreateGateway", &creq, NULL, &err) == 0);
    g.image = "img:b";
    g.replicas = 1;
    ureq.gateway = &g;
    CHECK_MSG(call(&f, GW "UpdateGateway", &ureq, &out, &err) == 0, "%s", err.msg);
    r = (Krane__V1__UpdateGatewayResponse *)out;
    CHECK(r != NULL && r->n_pod_ids == 1);
    if (r != NULL && r->n_pod_ids == 1)
        CHECK_STR(r->pod_ids[0], "gw-1-0");
    CHECK(memory_backend_count(&f.backend) == 2); /* the replica and the record */
    ureq.gateway = NULL;
    CHECK(call(&f, GW "UpdateGateway", &ureq, &out, &err) < 0 &&
          err.code == BERTH_INVALID_ARGUMENT && strstr(err.msg, "gateway") != NULL);
    fixture_release(&f);
}

int main(void)
{
    test_list_pages();
    test_list_namespace();
    test_list_errors();
    test_list_gateways();
    test_list_from_cache();
    test_update_noop_and_errors();
    test_update_scale();
    test_update_rolling();
    test_update_rollback();
    test_update_ready_timeout();
    test_update_busy();
    test_update_recovery();
    test_update_gateway();
    return test_summary("replica_update");
}
