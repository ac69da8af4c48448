/* ListGateways / ListDeployments and UpdateGateway / UpdateDeployment against
 * the memory backend: pages over many objects in (namespace, id) order, the
 * namespace filter, bad page sizes and tokens, summaries. */
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

static int fixture_init(struct fixture *f);
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
    struct replica_service_config cfg = {
        .gateway_port = 8040,
        .deployment_port = 8080,
        .publish_address = "127.0.0.1",
    };
    struct berth_err err;

    memset(f, 0, sizeof(*f));
    berth_err_clear(&err);
    if (memory_backend_new(&f->backend, &err) < 0)
        return -1;
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

int main(void)
{
    test_list_pages();
    test_list_namespace();
    test_list_errors();
    test_list_gateways();
    return test_summary("replica_update");
}
