/* The Swarm backend: its service spec, services, tasks and nodes read back
 * as replica sets (canned Engine JSON), and apply, get, list and delete
 * against a fake Engine. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "../../src/backend/swarm/swarm_internal.h"
#include "berth/backend.h"
#include "berth/clock.h"
#include "berth/labels.h"
#include "berth/swarm_backend.h"
#include "fake_engine.h"
#include "testlib.h"

#define SERVICE_GW                                                                                 \
    "{\"ID\":\"svc1\",\"Spec\":{\"Name\":\"berth-gw-g1\",\"Labels\":{\"berth.managed\":\"true\","  \
    "\"berth.kind\":\"gateway\",\"berth.gateway_id\":\"g1\",\"berth.spec\":\"d1\","                \
    "\"berth.replicas\":\"3\",\"berth.namespace\":\"ns\"}}}"

/* Three running tasks of svc1 on two nodes (slot 2 on a node that is not
 * listed), one replaced task of slot 1 and one of another service. */
#define TASKS                                                                                      \
    "[{\"ID\":\"t3\",\"ServiceID\":\"svc1\",\"Slot\":3,\"NodeID\":\"n2\","                         \
    "\"DesiredState\":\"running\",\"Status\":{\"State\":\"starting\"}},"                           \
    "{\"ID\":\"t1\",\"ServiceID\":\"svc1\",\"Slot\":1,\"NodeID\":\"n1\","                          \
    "\"DesiredState\":\"running\",\"Status\":{\"State\":\"running\",\"PortStatus\":{\"Ports\":["   \
    "{\"Protocol\":\"tcp\",\"TargetPort\":8040,\"PublishedPort\":30001,"                           \
    "\"PublishMode\":\"host\"}]}}},"                                                               \
    "{\"ID\":\"t0\",\"ServiceID\":\"svc1\",\"Slot\":1,\"NodeID\":\"n1\","                          \
    "\"DesiredState\":\"shutdown\",\"Status\":{\"State\":\"failed\"}},"                            \
    "{\"ID\":\"t2\",\"ServiceID\":\"svc1\",\"Slot\":2,\"NodeID\":\"n9\","                          \
    "\"DesiredState\":\"running\",\"Status\":{\"State\":\"running\",\"PortStatus\":{\"Ports\":["   \
    "{\"Protocol\":\"tcp\",\"TargetPort\":8040,\"PublishedPort\":30002}]}}},"                      \
    "{\"ID\":\"x1\",\"ServiceID\":\"other\",\"Slot\":1,\"NodeID\":\"n1\","                         \
    "\"DesiredState\":\"running\",\"Status\":{\"State\":\"running\"}}]"

#define NODES                                                                                      \
    "[{\"ID\":\"n1\",\"Status\":{\"State\":\"ready\",\"Addr\":\"10.0.0.11\"}},"                    \
    "{\"ID\":\"n2\",\"Status\":{\"State\":\"ready\",\"Addr\":\"10.0.0.12\"}}]"

static const char *label_of(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void test_states(void)
{
    CHECK(swarm_task_state("running") == BACKEND_STATE_RUNNING);
    CHECK(swarm_task_state("pending") == BACKEND_STATE_CREATED);
    CHECK(swarm_task_state("preparing") == BACKEND_STATE_CREATED);
    CHECK(swarm_task_state("starting") == BACKEND_STATE_RESTARTING);
    CHECK(swarm_task_state("complete") == BACKEND_STATE_EXITED);
    CHECK(swarm_task_state("shutdown") == BACKEND_STATE_EXITED);
    CHECK(swarm_task_state("failed") == BACKEND_STATE_DEAD);
    CHECK(swarm_task_state("rejected") == BACKEND_STATE_DEAD);
    CHECK(swarm_task_state("remove") == BACKEND_STATE_REMOVING);
    CHECK(swarm_task_state("what") == BACKEND_STATE_UNKNOWN);
    CHECK(swarm_task_state(NULL) == BACKEND_STATE_UNKNOWN);
}

static void test_service(void)
{
    cJSON *ok = cJSON_Parse(SERVICE_GW);
    cJSON *foreign = cJSON_Parse("{\"ID\":\"s2\",\"Spec\":{\"Name\":\"berth-gw-g1\",\"Labels\":{"
                                 "\"berth.kind\":\"gateway\",\"berth.gateway_id\":\"g1\"}}}");
    cJSON *bare = cJSON_Parse("{\"ID\":\"s3\",\"Spec\":{\"Name\":\"berth-gw-g1\",\"Labels\":{"
                              "\"berth.managed\":\"true\",\"berth.kind\":\"gateway\","
                              "\"berth.gateway_id\":\"g1\",\"berth.replicas\":\"x\"}}}");
    struct swarm_service s;

    CHECK(swarm_json_service(ok, OBJECT_GATEWAY, &s) == 0);
    CHECK_STR(s.service_id, "svc1");
    CHECK_STR(s.name, "berth-gw-g1");
    CHECK_STR(s.id, "g1");
    CHECK_STR(s.ns, "ns");
    CHECK_STR(s.digest, "d1");
    CHECK(s.wanted == 3);
    /* Another kind's, or one without berth.managed, is never ours. */
    CHECK(swarm_json_service(ok, OBJECT_DEPLOYMENT, &s) < 0);
    CHECK(swarm_json_service(foreign, OBJECT_GATEWAY, &s) < 0);
    CHECK(swarm_json_service(bare, OBJECT_GATEWAY, &s) == 0);
    CHECK_STR(s.ns, "");
    CHECK_STR(s.digest, "");
    CHECK(s.wanted == 0);
    cJSON_Delete(ok);
    cJSON_Delete(foreign);
    cJSON_Delete(bare);
}

static void test_fill_set(void)
{
    cJSON *svcj = cJSON_Parse(SERVICE_GW), *tasks = cJSON_Parse(TASKS), *nodes = cJSON_Parse(NODES);
    struct swarm_service svc;
    struct backend_replica_set set;
    struct berth_err err;

    berth_err_clear(&err);
    CHECK(swarm_json_service(svcj, OBJECT_GATEWAY, &svc) == 0);
    CHECK_MSG(swarm_json_fill_set(OBJECT_GATEWAY, &svc, tasks, nodes, &set, &err) == 0, "%s",
              err.msg);
    CHECK(set.kind == OBJECT_GATEWAY);
    CHECK_STR(set.id, "g1");
    CHECK_STR(set.ns, "ns");
    CHECK(set.wanted == 3);
    CHECK_MSG(set.n == 3, "%zu instances", set.n);
    if (set.n == 3) {
        CHECK(set.items[0].index == 0);
        CHECK_STR(set.items[0].handle, "t1");
        CHECK(set.items[0].state == BACKEND_STATE_RUNNING);
        CHECK_STR(set.items[0].host, "10.0.0.11");
        CHECK(set.items[0].n_ports == 1);
        CHECK(set.items[0].ports[0].container_port == 8040);
        CHECK(set.items[0].ports[0].host_port == 30001);
        CHECK_STR(set.items[0].ports[0].protocol, "tcp");
        /* A node the listing does not know: this host. */
        CHECK(set.items[1].index == 1);
        CHECK_STR(set.items[1].host, "");
        CHECK(set.items[1].ports[0].host_port == 30002);
        CHECK(set.items[2].index == 2);
        CHECK(set.items[2].state == BACKEND_STATE_RESTARTING);
        CHECK_STR(set.items[2].host, "10.0.0.12");
        CHECK(set.items[2].n_ports == 0);
    }
    backend_replica_set_release(&set);
    /* No nodes listing: every address is this host's. */
    CHECK(swarm_json_fill_set(OBJECT_GATEWAY, &svc, tasks, NULL, &set, &err) == 0);
    CHECK(set.n == 3 && strcmp(set.items[0].host, "") == 0);
    backend_replica_set_release(&set);
    cJSON_Delete(svcj);
    cJSON_Delete(tasks);
    cJSON_Delete(nodes);
}

static void test_spec(void)
{
    const char *cmd[] = {"httpd", "-f"};
    const char *env[] = {"A=x{{.Node.ID}}y{{"};
    struct backend_port port = {8080, 0, "tcp"};
    struct backend_label extra = {"berth.workspace_id", "w1"};
    struct backend_replica_spec spec = {
        .kind = OBJECT_DEPLOYMENT,
        .ns = "prod",
        .id = "d1",
        .replicas = 4,
        .digest = "abc",
        .instance_env = "BERTH_INSTANCE_ID",
        .tmpl = {.image = "img:1",
                 .cmd = cmd,
                 .n_cmd = 2,
                 .env = env,
                 .n_env = 1,
                 .ports = &port,
                 .n_ports = 1,
                 .labels = &extra,
                 .n_labels = 1,
                 .nano_cpus = 500000000,
                 .memory_bytes = 1048576},
    };
    cJSON *j = swarm_json_service_spec(&spec, "berth-dep-d1", 64);
    const cJSON *labels, *cs, *env_j, *p, *limits;

    CHECK(j != NULL);
    if (j == NULL)
        return;
    CHECK_STR(label_of(j, "Name"), "berth-dep-d1");
    labels = cJSON_GetObjectItemCaseSensitive(j, "Labels");
    CHECK_STR(label_of(labels, LABEL_MANAGED), "true");
    CHECK_STR(label_of(labels, LABEL_KIND), "deployment");
    CHECK_STR(label_of(labels, LABEL_DEPLOYMENT_ID), "d1");
    CHECK_STR(label_of(labels, LABEL_SPEC), "abc");
    CHECK_STR(label_of(labels, LABEL_REPLICAS), "4");
    CHECK_STR(label_of(labels, LABEL_NAMESPACE), "prod");
    CHECK_STR(label_of(labels, "berth.workspace_id"), "w1");
    cs = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "TaskTemplate"),
                                          "ContainerSpec");
    CHECK_STR(label_of(cs, "Image"), "img:1");
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(cs, "Args")) == 2);
    env_j = cJSON_GetObjectItemCaseSensitive(cs, "Env");
    CHECK(cJSON_GetArraySize(env_j) == 2);
    /* A caller's value is no template: Swarm expands it to itself. */
    CHECK_STR(cJSON_GetStringValue(cJSON_GetArrayItem(env_j, 0)),
              "A=x{{\"{{\"}}.Node.ID}}y{{\"{{\"}}");
    /* index = slot - 1, spelled out per slot. */
    CHECK_STR(cJSON_GetStringValue(cJSON_GetArrayItem(env_j, 1)),
              "BERTH_INSTANCE_ID=d1-{{if eq .Task.Slot \"1\"}}0{{else if eq .Task.Slot \"2\"}}1"
              "{{else if eq .Task.Slot \"3\"}}2{{else if eq .Task.Slot \"4\"}}3{{end}}");
    CHECK_STR(label_of(cJSON_GetObjectItemCaseSensitive(cs, "Labels"), LABEL_DEPLOYMENT_ID), "d1");
    limits = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "TaskTemplate"),
                                         "Resources"),
        "Limits");
    CHECK(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(limits, "NanoCPUs")) == 5e8);
    CHECK(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(limits, "MemoryBytes")) == 1048576);
    CHECK(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(limits, "Pids")) == 64);
    CHECK(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(
              cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "Mode"),
                                               "Replicated"),
              "Replicas")) == 4);
    p = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(
                               cJSON_GetObjectItemCaseSensitive(j, "EndpointSpec"), "Ports"),
                           0);
    CHECK_STR(label_of(p, "PublishMode"), "host");
    CHECK(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(p, "TargetPort")) == 8080);
    CHECK(cJSON_GetObjectItemCaseSensitive(p, "PublishedPort") == NULL);
    cJSON_Delete(j);
}

/* Apply (create, retry, another spec), get, list and delete through a fake
 * Engine, checking the calls made. */
static void test_engine(void)
{
    struct fake_engine fe;
    struct docker_backend_config cfg = {0};
    struct backend b = {0};
    struct backend_apply_result res;
    struct backend_replica_set set;
    struct backend_replica_set_list list;
    struct backend_port port = {8040, 0, "tcp"};
    struct backend_replica_spec spec = {
        .kind = OBJECT_GATEWAY,
        .ns = "ns",
        .id = "g1",
        .replicas = 3,
        .digest = "d1",
        .tmpl = {.image = "img", .ports = &port, .n_ports = 1},
    };
    struct berth_err err;
    size_t removed = 0;
    char line[512];
    int64_t dl;

    fe_init(&fe);
    fe_start(&fe);
    fe_reply(&fe, 404, "{\"message\":\"service berth-gw-g1 not found\"}");
    fe_reply(&fe, 201, "{\"ID\":\"svc1\"}");
    fe_reply(&fe, 200, SERVICE_GW); /* the retry */
    fe_reply(&fe, 200, SERVICE_GW); /* another count */
    fe_reply(&fe, 200, SERVICE_GW); /* another digest */
    fe_reply(&fe, 200, SERVICE_GW); /* get */
    fe_reply(&fe, 200, TASKS);
    fe_reply(&fe, 200, NODES);
    fe_reply(&fe, 200, "[" SERVICE_GW "]"); /* list */
    fe_reply(&fe, 200, TASKS);
    fe_reply(&fe, 200, NODES);
    fe_reply(&fe, 200, SERVICE_GW); /* get in another namespace */
    fe_reply(&fe, 200, SERVICE_GW); /* delete */
    fe_reply(&fe, 200, "");
    fe_reply(&fe, 200, "{\"ID\":\"s9\",\"Spec\":{\"Name\":\"berth-gw-g1\",\"Labels\":{}}}");
    cfg.socket_path = fe.sock;
    berth_err_clear(&err);
    CHECK_MSG(swarm_backend_new(&cfg, &b, &err) == 0, "%s", err.msg);
    CHECK_STR(b.ops->name, "swarm");
    CHECK(b.ops->create != NULL && b.ops->replica_update != NULL && b.ops->replica_recover == NULL);
    dl = berth_now_ms() + 5000;
    /* Not driven yet: refused before any Engine call. */
    berth_err_clear(&err);
    CHECK(b.ops->replica_update(b.ctx, &spec, NULL, dl, NULL, &err) < 0 &&
          err.code == BERTH_UNIMPLEMENTED && strstr(err.msg, "swarm backend") != NULL);
    berth_err_clear(&err);

    memset(&res, 0, sizeof(res));
    CHECK_MSG(b.ops->replica_apply(b.ctx, &spec, dl, &res, &err) == 0, "%s", err.msg);
    CHECK(res.added == 3 && res.existing == 0);
    CHECK_STR(fe_req_line(&fe, 0, line, sizeof(line)), "GET /v1.41/services/berth-gw-g1");
    CHECK_STR(fe_req_line(&fe, 1, line, sizeof(line)), "POST /v1.41/services/create");
    pthread_mutex_lock(&fe.mu);
    CHECK(strstr(fe.reqs[1].body, "\"PublishMode\":\"host\"") != NULL);
    CHECK(strstr(fe.reqs[1].body, "\"berth.managed\":\"true\"") != NULL);
    pthread_mutex_unlock(&fe.mu);

    /* The same spec again: nothing to do. */
    CHECK_MSG(b.ops->replica_apply(b.ctx, &spec, dl, &res, &err) == 0, "%s", err.msg);
    CHECK(res.added == 0 && res.existing == 3);
    /* The digest leaves the count out: another count is another spec too. */
    spec.replicas = 2;
    CHECK(b.ops->replica_apply(b.ctx, &spec, dl, &res, &err) < 0);
    CHECK(err.code == BERTH_ALREADY_EXISTS);
    berth_err_clear(&err);
    spec.replicas = 3;
    spec.digest = "d2";
    CHECK(b.ops->replica_apply(b.ctx, &spec, dl, &res, &err) < 0);
    CHECK(err.code == BERTH_ALREADY_EXISTS);
    CHECK(fe_n_reqs(&fe) == 5);

    berth_err_clear(&err);
    CHECK_MSG(b.ops->replica_get(b.ctx, OBJECT_GATEWAY, "ns", "g1", dl, &set, &err) == 0, "%s",
              err.msg);
    CHECK(set.n == 3 && set.wanted == 3);
    backend_replica_set_release(&set);
    CHECK_STR(
        fe_req_line(&fe, 6, line, sizeof(line)),
        "GET /v1.41/tasks?filters=%7B%22desired-state%22%3A%5B%22running%22%5D%2C%22service%22"
        "%3A%5B%22svc1%22%5D%7D");
    CHECK_STR(fe_req_line(&fe, 7, line, sizeof(line)), "GET /v1.41/nodes");

    CHECK_MSG(b.ops->replica_list(b.ctx, OBJECT_GATEWAY, NULL, dl, &list, &err) == 0, "%s",
              err.msg);
    CHECK(list.n == 1 && list.items[0].n == 3);
    backend_replica_set_list_release(&list);

    CHECK(b.ops->replica_get(b.ctx, OBJECT_GATEWAY, "other", "g1", dl, &set, &err) < 0);
    CHECK(err.code == BERTH_NOT_FOUND);

    berth_err_clear(&err);
    CHECK_MSG(b.ops->replica_delete(b.ctx, OBJECT_GATEWAY, "ns", "g1", dl, &removed, &err) == 0,
              "%s", err.msg);
    CHECK(removed == 3);
    CHECK_STR(fe_req_line(&fe, 13, line, sizeof(line)), "DELETE /v1.41/services/svc1");
    /* A service of that name without berth.managed is never touched. */
    CHECK(b.ops->replica_delete(b.ctx, OBJECT_GATEWAY, "ns", "g1", dl, &removed, &err) == 0);
    CHECK(removed == 0);
    CHECK(fe_n_reqs(&fe) == 15);

    backend_destroy(&b);
    fe_stop(&fe);
}

int main(void)
{
    struct berth_err err;

    berth_err_clear(&err);
    if (docker_backend_global_init(&err) < 0)
        return 1;
    test_states();
    test_service();
    test_fill_set();
    test_spec();
    test_engine();
    docker_backend_global_cleanup();
    return test_summary("swarm_backend");
}
