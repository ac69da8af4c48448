/* The Swarm backend: its service spec, services, tasks and nodes read back
 * as replica sets (canned Engine JSON), and apply, get, list and delete
 * against a fake Engine. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "../../src/backend/swarm/swarm_internal.h"
#include "berth/backend.h"
#include "berth/clock.h"
#include "berth/labels.h"
#include "berth/swarm_backend.h"
#include "fake_engine.h"
#include "testlib.h"

#define SERVICE_GW_AT(status)                                                                      \
    "{\"ID\":\"svc1\",\"Version\":{\"Index\":7},\"Spec\":{\"Name\":\"berth-gw-g1\","               \
    "\"Labels\":{\"berth.managed\":\"true\",\"berth.kind\":\"gateway\",\"berth.gateway_id\":"      \
    "\"g1\","                                                                                      \
    "\"berth.spec\":\"d1\",\"berth.replicas\":\"3\",\"berth.namespace\":\"ns\"},"                  \
    "\"TaskTemplate\":{\"ContainerSpec\":{\"Image\":\"img\"}},"                                    \
    "\"Mode\":{\"Replicated\":{\"Replicas\":3}}}" status "}"
#define SERVICE_GW SERVICE_GW_AT("")
/* The same during and after an update that started at t2. */
#define UPDATE_AT(state) ",\"UpdateStatus\":{\"State\":\"" state "\",\"StartedAt\":\"t2\"}"

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
    "[{\"ID\":\"n1\",\"Description\":{\"Hostname\":\"h1\"},"                                       \
    "\"Status\":{\"State\":\"ready\",\"Addr\":\"10.0.0.11\"}},"                                    \
    "{\"ID\":\"n2\",\"Spec\":{\"Labels\":{\"berth.advertise\":\"gw.example\"}},"                   \
    "\"Status\":{\"State\":\"ready\",\"Addr\":\"10.0.0.12\"}}]"

/* Tasks of svc1 as an update sees them: `n` running of spec `digest`. */
static const char *tasks_of(const char *digest, int n)
{
    static char buf[4096];
    size_t len = 0;

    len += (size_t)snprintf(buf + len, sizeof(buf) - len, "[");
    for (int i = 0; i < n; i++)
        len +=
            (size_t)snprintf(buf + len, sizeof(buf) - len,
                             "%s{\"ID\":\"t%d\",\"ServiceID\":\"svc1\",\"Slot\":%d,"
                             "\"DesiredState\":\"running\",\"Status\":{\"State\":\"running\"},"
                             "\"Spec\":{\"ContainerSpec\":{\"Labels\":{\"berth.spec\":\"%s\"}}}}",
                             i ? "," : "", i, i + 1, digest);
    snprintf(buf + len, sizeof(buf) - len, "]");
    return buf;
}

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
        /* Its node's label berth.advertise wins over the address it joined with. */
        CHECK_STR(set.items[2].host, "gw.example");
        CHECK(set.items[2].n_ports == 0);
    }
    backend_replica_set_release(&set);
    CHECK_STR(swarm_node_name(nodes, "n1"), "h1");
    CHECK_STR(swarm_node_name(nodes, "n2"), "");
    CHECK_STR(swarm_node_addr(nodes, "n1"), "10.0.0.11");
    CHECK_STR(swarm_node_addr(nodes, "n7"), "");
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
        .instance_envs = (const char *const[]){"BERTH_INSTANCE_ID", "UNKEY_INSTANCE_ID", NULL},
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
    struct swarm_spec_opts so = {.pids_limit = 64, .parallelism = 2, .monitor_ms = 300};
    cJSON *j = swarm_json_service_spec(&spec, "berth-dep-d1", &so);
    const cJSON *labels, *cs, *env_j, *p, *limits, *uc;
    const char *ienv;

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
    CHECK(cJSON_GetArraySize(env_j) == 3);
    /* A caller's value is no template: Swarm expands it to itself. */
    CHECK_STR(cJSON_GetStringValue(cJSON_GetArrayItem(env_j, 0)),
              "A=x{{\"{{\"}}.Node.ID}}y{{\"{{\"}}");
    /* index = slot - 1, spelled out for every slot a service may have, so
     * a scale changes nothing of the task template. */
    ienv = cJSON_GetStringValue(cJSON_GetArrayItem(env_j, 1));
    {
        static const char head[] =
            "BERTH_INSTANCE_ID=d1-{{if eq .Task.Slot \"1\"}}0{{else if eq .Task.Slot \"2\"}}1"
            "{{else if eq .Task.Slot \"3\"}}2{{else if eq .Task.Slot \"4\"}}3{{else if";
        CHECK(ienv != NULL && strncmp(ienv, head, sizeof(head) - 1) == 0);
    }
    CHECK(ienv != NULL && strstr(ienv, "{{else if eq .Task.Slot \"100\"}}99{{end}}") != NULL);
    /* Every name of the list gets the same value. */
    {
        const char *u = cJSON_GetStringValue(cJSON_GetArrayItem(env_j, 2));
        CHECK(u != NULL && strncmp(u, "UNKEY_INSTANCE_ID=", 18) == 0 && ienv != NULL &&
              strcmp(u + 18, ienv + 18) == 0);
    }
    CHECK_STR(label_of(cJSON_GetObjectItemCaseSensitive(cs, "Labels"), LABEL_DEPLOYMENT_ID), "d1");
    /* Each task tells which spec it runs. */
    CHECK_STR(label_of(cJSON_GetObjectItemCaseSensitive(cs, "Labels"), LABEL_SPEC), "abc");
    /* Updates: start-first, rolled back on any failure; rollbacks alike. */
    uc = cJSON_GetObjectItemCaseSensitive(j, "UpdateConfig");
    CHECK(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(uc, "Parallelism")) == 2);
    CHECK_STR(label_of(uc, "Order"), "start-first");
    CHECK_STR(label_of(uc, "FailureAction"), "rollback");
    CHECK(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(uc, "Monitor")) == 3e8);
    CHECK(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(uc, "MaxFailureRatio")) == 0);
    CHECK(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(
              cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "TaskTemplate"),
                                               "RestartPolicy"),
              "Delay")) == 1e9);
    uc = cJSON_GetObjectItemCaseSensitive(j, "RollbackConfig");
    CHECK_STR(label_of(uc, "Order"), "start-first");
    CHECK_STR(label_of(uc, "FailureAction"), "pause");
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
    CHECK(cJSON_GetObjectItemCaseSensitive(cs, "HealthCheck") == NULL);
    cJSON_Delete(j);

    /* --swarm-publish-mode ingress: the routing mesh picks the port. */
    so.ingress = 1;
    j = swarm_json_service_spec(&spec, "berth-dep-d1", &so);
    p = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(
                               cJSON_GetObjectItemCaseSensitive(j, "EndpointSpec"), "Ports"),
                           0);
    CHECK_STR(label_of(p, "PublishMode"), "ingress");
    CHECK(cJSON_GetObjectItemCaseSensitive(p, "PublishedPort") == NULL);
    cJSON_Delete(j);

    /* A health check goes to the task's container, as with the Docker backend. */
    {
        const char *test[] = {"wget", "-q", "-O-", "http://127.0.0.1:8080/"};
        struct backend_health_check hc = {
            .test = test, .n_test = 4, .interval_ns = 2000000000, .retries = 3};
        const cJSON *h;
        char *txt;

        spec.tmpl.health = &hc;
        j = swarm_json_service_spec(&spec, "berth-dep-d1", &so);
        h = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "TaskTemplate"),
                                             "ContainerSpec"),
            "HealthCheck");
        txt = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(h, "Test"));
        CHECK_STR(txt, "[\"CMD\",\"wget\",\"-q\",\"-O-\",\"http://127.0.0.1:8080/\"]");
        cJSON_free(txt);
        CHECK(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(h, "Interval")) == 2e9);
        CHECK(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(h, "Retries")) == 3);
        CHECK(cJSON_GetObjectItemCaseSensitive(h, "Timeout") == NULL);
        cJSON_Delete(j);
        hc.disable = 1;
        hc.n_test = 0;
        j = swarm_json_service_spec(&spec, "berth-dep-d1", &so);
        h = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "TaskTemplate"),
                                             "ContainerSpec"),
            "HealthCheck");
        txt = cJSON_PrintUnformatted(h);
        CHECK_STR(txt, "{\"Test\":[\"NONE\"]}");
        cJSON_free(txt);
        cJSON_Delete(j);
        spec.tmpl.health = NULL;
    }
}

/* Ingress mode: tasks publish nothing of their own; each instance's
 * address is its node's with the mesh's port. */
static void test_mesh(void)
{
    cJSON *svcj = cJSON_Parse(
        "{\"ID\":\"svc1\",\"Spec\":{\"Name\":\"berth-gw-g1\",\"Labels\":{\"berth.managed\":"
        "\"true\",\"berth.kind\":\"gateway\",\"berth.gateway_id\":\"g1\",\"berth.replicas\":\"1\"}}"
        ","
        "\"Endpoint\":{\"Ports\":[{\"Protocol\":\"tcp\",\"TargetPort\":8040,\"PublishedPort\":"
        "30500,"
        "\"PublishMode\":\"ingress\"}]}}");
    cJSON *tasks =
        cJSON_Parse("[{\"ID\":\"t1\",\"ServiceID\":\"svc1\",\"Slot\":1,\"NodeID\":\"n1\","
                    "\"DesiredState\":\"running\",\"Status\":{\"State\":\"running\"},"
                    "\"Spec\":{\"ContainerSpec\":{\"Image\":\"img:2\"}}}]");
    cJSON *nodes = cJSON_Parse(NODES);
    struct swarm_service svc;
    struct backend_replica_set set;
    struct berth_err err;

    berth_err_clear(&err);
    CHECK(swarm_json_service(svcj, OBJECT_GATEWAY, &svc) == 0 && svc.mesh_ports != NULL);
    CHECK(swarm_json_fill_set(OBJECT_GATEWAY, &svc, tasks, nodes, &set, &err) == 0);
    CHECK(set.n == 1);
    if (set.n == 1) {
        CHECK_STR(set.items[0].host, "10.0.0.11");
        CHECK(set.items[0].n_ports == 1 && set.items[0].ports[0].host_port == 30500);
        CHECK_STR(set.items[0].image, "img:2");
    }
    backend_replica_set_release(&set);
    cJSON_Delete(svcj);
    cJSON_Delete(tasks);
    cJSON_Delete(nodes);
}

/* The pieces an update and the follower read. */
static void test_status(void)
{
    cJSON *svc = cJSON_Parse(SERVICE_GW_AT(UPDATE_AT("rollback_completed")));
    cJSON *plain = cJSON_Parse(SERVICE_GW);
    cJSON *tasks = cJSON_Parse(tasks_of("d9", 1));
    enum object_kind kind;
    const char *id;

    CHECK(swarm_json_version(svc) == 7);
    CHECK_STR(swarm_json_update_state(svc), "rollback_completed");
    CHECK_STR(swarm_json_update_started(svc), "t2");
    CHECK_STR(swarm_json_update_state(plain), "");
    CHECK_STR(swarm_json_task_digest(cJSON_GetArrayItem(tasks, 0)), "d9");
    /* A task without berthd's container labels is nobody's. */
    CHECK(swarm_json_task_object(cJSON_GetArrayItem(tasks, 0), &kind, &id) < 0);
    cJSON_Delete(tasks);
    tasks = cJSON_Parse("{\"Spec\":{\"ContainerSpec\":{\"Labels\":{\"berth.managed\":\"true\","
                        "\"berth.kind\":\"deployment\",\"berth.deployment_id\":\"d1\"}}}}");
    CHECK(swarm_json_task_object(tasks, &kind, &id) == 0 && kind == OBJECT_DEPLOYMENT &&
          strcmp(id, "d1") == 0);
    cJSON_Delete(tasks);
    cJSON_Delete(svc);
    cJSON_Delete(plain);
}

#define INFO_MANAGER "{\"Swarm\":{\"LocalNodeState\":\"active\",\"ControlAvailable\":true}}"

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
    fe_reply(&fe, 200, INFO_MANAGER);
    fe_reply(&fe, 404, "{\"message\":\"service berth-gw-g1 not found\"}");
    fe_reply(&fe, 200, "{\"Id\":\"sha256:abc\"}"); /* the image is here */
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
    CHECK_MSG(swarm_backend_new(&cfg, NULL, &b, &err) == 0, "%s", err.msg);
    CHECK_STR(b.ops->name, "swarm");
    CHECK(b.ops->create != NULL && b.ops->replica_update != NULL && b.ops->replica_recover == NULL);
    CHECK(b.ops->watch != NULL && b.ops->logs != NULL && b.ops->logs_follow != NULL);
    CHECK_STR(fe_req_line(&fe, 0, line, sizeof(line)), "GET /v1.41/info");
    dl = berth_now_ms() + 5000;

    memset(&res, 0, sizeof(res));
    CHECK_MSG(b.ops->replica_apply(b.ctx, &spec, dl, &res, &err) == 0, "%s", err.msg);
    CHECK(res.added == 3 && res.existing == 0);
    CHECK_STR(fe_req_line(&fe, 1, line, sizeof(line)), "GET /v1.41/services/berth-gw-g1");
    CHECK_STR(fe_req_line(&fe, 2, line, sizeof(line)), "GET /v1.41/images/img/json");
    CHECK_STR(fe_req_line(&fe, 3, line, sizeof(line)), "POST /v1.41/services/create");
    pthread_mutex_lock(&fe.mu);
    CHECK(strstr(fe.reqs[3].body, "\"PublishMode\":\"host\"") != NULL);
    CHECK(strstr(fe.reqs[3].body, "\"berth.managed\":\"true\"") != NULL);
    CHECK(strstr(fe.reqs[3].body, "\"Order\":\"start-first\"") != NULL);
    /* No credentials file: no credential sent. */
    CHECK(strcasestr(fe.reqs[3].head, "X-Registry-Auth") == NULL);
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
    CHECK(fe_n_reqs(&fe) == 7);

    berth_err_clear(&err);
    CHECK_MSG(b.ops->replica_get(b.ctx, OBJECT_GATEWAY, "ns", "g1", dl, &set, &err) == 0, "%s",
              err.msg);
    CHECK(set.n == 3 && set.wanted == 3);
    backend_replica_set_release(&set);
    CHECK_STR(
        fe_req_line(&fe, 8, line, sizeof(line)),
        "GET /v1.41/tasks?filters=%7B%22desired-state%22%3A%5B%22running%22%5D%2C%22service%22"
        "%3A%5B%22svc1%22%5D%7D");
    CHECK_STR(fe_req_line(&fe, 9, line, sizeof(line)), "GET /v1.41/nodes");

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
    CHECK_STR(fe_req_line(&fe, 15, line, sizeof(line)), "DELETE /v1.41/services/svc1");
    /* A service of that name without berth.managed is never touched. */
    CHECK(b.ops->replica_delete(b.ctx, OBJECT_GATEWAY, "ns", "g1", dl, &removed, &err) == 0);
    CHECK(removed == 0);
    CHECK(fe_n_reqs(&fe) == 17);

    backend_destroy(&b);
    fe_stop(&fe);
}

/* An Engine in no swarm, or a worker: refused at start, saying which. */
static void test_not_manager(void)
{
    struct fake_engine fe;
    struct docker_backend_config cfg = {0};
    struct backend b = {0};
    struct berth_err err;

    fe_init(&fe);
    fe_start(&fe);
    fe_reply(&fe, 200, "{\"Swarm\":{\"LocalNodeState\":\"inactive\"}}");
    fe_reply(&fe, 200, "{\"Swarm\":{\"LocalNodeState\":\"active\",\"ControlAvailable\":false}}");
    cfg.socket_path = fe.sock;
    berth_err_clear(&err);
    CHECK(swarm_backend_new(&cfg, NULL, &b, &err) < 0);
    CHECK(err.code == BERTH_FAILED_PRECONDITION && strstr(err.msg, "in no swarm") != NULL &&
          strstr(err.msg, fe.sock) != NULL);
    berth_err_clear(&err);
    CHECK(swarm_backend_new(&cfg, NULL, &b, &err) < 0);
    CHECK_MSG(err.code == BERTH_FAILED_PRECONDITION && strstr(err.msg, "worker") != NULL, "%s",
              err.msg);
    fe_stop(&fe);

    /* Readiness: the Engine answers and is still an active manager. */
    fe_init(&fe);
    fe_start(&fe);
    fe_reply(&fe, 200, INFO_MANAGER);
    fe_reply(&fe, 200, "OK"); /* /_ping */
    fe_reply(&fe, 200, INFO_MANAGER);
    fe_reply(&fe, 200, "OK");
    fe_reply(&fe, 200, "{\"Swarm\":{\"LocalNodeState\":\"active\",\"ControlAvailable\":false}}");
    cfg.socket_path = fe.sock;
    berth_err_clear(&err);
    CHECK_MSG(swarm_backend_new(&cfg, NULL, &b, &err) == 0, "%s", err.msg);
    CHECK_MSG(b.ops->ping(b.ctx, berth_now_ms() + 2000, &err) == 0, "%s", err.msg);
    CHECK(b.ops->ping(b.ctx, berth_now_ms() + 2000, &err) < 0 &&
          err.code == BERTH_FAILED_PRECONDITION);
    backend_destroy(&b);
    fe_stop(&fe);

    /* Nothing answers yet: made anyway, judged later. */
    fe_init(&fe);
    cfg.socket_path = fe.sock;
    berth_err_clear(&err);
    CHECK_MSG(swarm_backend_new(&cfg, NULL, &b, &err) == 0, "%s", err.msg);
    backend_destroy(&b);
    fe_stop(&fe);
}

/* Updates: a scale changes the count only; a new template is the Swarm's
 * rolling update, waited for until completed or rolled back; the
 * credential of the image's registry goes along. */
static void test_update(void)
{
    static char dir[] = "/tmp/berth-swarm-test-XXXXXX";
    struct fake_engine fe;
    struct docker_backend_config cfg = {0};
    struct backend b = {0};
    struct backend_update_result res;
    struct backend_update_opts opts = {.parallelism = 1, .min_ready_ms = 300};
    struct backend_port port = {8040, 0, "tcp"};
    struct backend_replica_spec spec = {
        .kind = OBJECT_GATEWAY,
        .ns = "ns",
        .id = "g1",
        .replicas = 5,
        .digest = "d1",
        .tmpl = {.image = "reg.example:5000/app:1", .ports = &port, .n_ports = 1},
    };
    struct berth_err err;
    char line[512], path[128];
    int64_t dl = berth_now_ms() + 10000;
    FILE *f;

    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof(path), "%s/config.json", dir);
    f = fopen(path, "w");
    CHECK(f != NULL);
    if (f == NULL)
        return;
    fputs("{\"auths\":{\"reg.example:5000\":{\"auth\":\"dTpzM2NyZXQ=\"}}}", f);
    fclose(f);

    fe_init(&fe);
    fe_start(&fe);
    fe_reply(&fe, 200, INFO_MANAGER);
    /* 3 -> 5 of the same template */
    fe_reply(&fe, 200, SERVICE_GW);
    fe_reply(&fe, 200, "{}"); /* the image is here */
    fe_reply(&fe, 200, SERVICE_GW);
    fe_reply(&fe, 200, "{\"Warnings\":null}");
    fe_reply(&fe, 200, tasks_of("d1", 4));
    fe_reply(&fe, 200, tasks_of("d1", 5));
    /* a new template, rolled out */
    fe_reply(&fe, 200, SERVICE_GW);
    fe_reply(&fe, 200, "{}");
    fe_reply(&fe, 200, "{\"Warnings\":null}");
    fe_reply(&fe, 200, SERVICE_GW_AT(UPDATE_AT("updating")));
    fe_reply(&fe, 200, tasks_of("d1", 3));
    fe_reply(&fe, 200, SERVICE_GW_AT(UPDATE_AT("completed")));
    fe_reply(&fe, 200, tasks_of("d2", 3));
    /* a new template whose task fails: the Swarm rolled back */
    fe_reply(&fe, 200, SERVICE_GW);
    fe_reply(&fe, 200, "{}");
    fe_reply(&fe, 200, "{\"Warnings\":null}");
    fe_reply(&fe, 200, SERVICE_GW_AT(UPDATE_AT("rollback_completed")));
    fe_reply(&fe, 200,
             "[{\"ID\":\"t9\",\"ServiceID\":\"svc1\",\"Slot\":1,\"DesiredState\":\"shutdown\","
             "\"Status\":{\"State\":\"failed\",\"Err\":\"task: non-zero exit (3)\"},"
             "\"Spec\":{\"ContainerSpec\":{\"Labels\":{\"berth.spec\":\"d3\"}}}}]");
    fe_reply(&fe, 200, tasks_of("d1", 3)); /* the old spec runs whole again */
    /* not ours in that namespace */
    fe_reply(&fe, 200, SERVICE_GW);
    cfg.socket_path = fe.sock;
    cfg.auth_file = path;
    berth_err_clear(&err);
    CHECK_MSG(swarm_backend_new(&cfg, NULL, &b, &err) == 0, "%s", err.msg);

    memset(&res, 0, sizeof(res));
    CHECK_MSG(b.ops->replica_update(b.ctx, &spec, &opts, dl, &res, &err) == 0, "%s", err.msg);
    CHECK(res.added == 2 && res.replaced == 0 && res.removed == 0);
    CHECK_STR(fe_req_line(&fe, 4, line, sizeof(line)),
              "POST /v1.41/services/svc1/update?version=7");
    pthread_mutex_lock(&fe.mu);
    /* Only the count: the task template is the service's own. */
    CHECK(strstr(fe.reqs[4].body, "\"Replicas\":5") != NULL);
    CHECK(strstr(fe.reqs[4].body, "\"berth.replicas\":\"5\"") != NULL);
    CHECK(strstr(fe.reqs[4].body, "\"TaskTemplate\":{\"ContainerSpec\":{\"Image\":\"img\"}}") !=
          NULL);
    CHECK(strcasestr(fe.reqs[4].head, "X-Registry-Auth: ") != NULL);
    pthread_mutex_unlock(&fe.mu);
    CHECK(fe_n_reqs(&fe) == 7);

    spec.replicas = 3;
    spec.digest = "d2";
    memset(&res, 0, sizeof(res));
    CHECK_MSG(b.ops->replica_update(b.ctx, &spec, &opts, dl, &res, &err) == 0, "%s", err.msg);
    CHECK(res.replaced == 3 && res.added == 0);
    CHECK_STR(fe_req_line(&fe, 9, line, sizeof(line)),
              "POST /v1.41/services/svc1/update?version=7");
    pthread_mutex_lock(&fe.mu);
    CHECK(strstr(fe.reqs[9].body, "\"FailureAction\":\"rollback\"") != NULL);
    CHECK(strstr(fe.reqs[9].body, "\"Monitor\":300000000") != NULL);
    CHECK(strstr(fe.reqs[9].body, "\"berth.spec\":\"d2\"") != NULL);
    CHECK(strcasestr(fe.reqs[9].head, "X-Registry-Auth: ") != NULL);
    /* The credential is a header, never part of the spec. */
    CHECK(strstr(fe.reqs[9].body, "dTpzM2NyZXQ") == NULL);
    pthread_mutex_unlock(&fe.mu);
    CHECK(fe_n_reqs(&fe) == 14);

    spec.digest = "d3";
    berth_err_clear(&err);
    CHECK(b.ops->replica_update(b.ctx, &spec, &opts, dl, &res, &err) < 0);
    CHECK_MSG(err.code == BERTH_FAILED_PRECONDITION &&
                  strstr(err.msg, "replica 0 of the new spec failed: task: non-zero exit (3)") !=
                      NULL &&
                  strstr(err.msg, "rolled back") != NULL,
              "%s", err.msg);
    CHECK_STR(fe_req_line(&fe, 18, line, sizeof(line)), "GET /v1.41/tasks?filters=%7B%22service%22"
                                                        "%3A%5B%22svc1%22%5D%7D");

    spec.ns = "other";
    berth_err_clear(&err);
    CHECK(b.ops->replica_update(b.ctx, &spec, &opts, dl, &res, &err) < 0);
    CHECK(err.code == BERTH_NOT_FOUND);
    CHECK(fe_n_reqs(&fe) == 21);

    backend_destroy(&b);
    fe_stop(&fe);
    unlink(path);
    rmdir(dir);
}

/* Logs of an instance are its task's, from whichever node runs it; a
 * task of no berthd set is not_found. */
static void test_logs(void)
{
    struct fake_engine fe;
    struct docker_backend_config cfg = {0};
    struct backend b = {0};
    struct backend_log_query q = {0};
    struct backend_log_list l = {0};
    struct berth_err err;
    char line[512];

    fe_init(&fe);
    fe_start(&fe);
    fe_reply(&fe, 200, INFO_MANAGER);
    /* A task with a TTY: its output comes unframed. */
    fe_reply(
        &fe, 200,
        "{\"ID\":\"t1\",\"Spec\":{\"ContainerSpec\":{\"TTY\":true,\"Labels\":{"
        "\"berth.managed\":\"true\",\"berth.kind\":\"gateway\",\"berth.gateway_id\":\"g1\"}}}}");
    fe_queue_raw(&fe,
                 "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.raw-stream\r\n"
                 "Content-Length: 37\r\n\r\n2024-01-02T03:04:05.000000006Z hello\n",
                 0);
    fe_reply(&fe, 200, "{\"ID\":\"t2\",\"Spec\":{\"ContainerSpec\":{\"Labels\":{}}}}");
    cfg.socket_path = fe.sock;
    berth_err_clear(&err);
    CHECK_MSG(swarm_backend_new(&cfg, NULL, &b, &err) == 0, "%s", err.msg);
    CHECK_MSG(b.ops->logs(b.ctx, "t1", &q, berth_now_ms() + 5000, &l, &err) == 0, "%s", err.msg);
    CHECK(l.n == 1 && strcmp(l.items[0].line, "hello") == 0);
    backend_log_list_release(&l);
    CHECK_STR(fe_req_line(&fe, 1, line, sizeof(line)), "GET /v1.41/tasks/t1");
    CHECK_STR(fe_req_line(&fe, 2, line, sizeof(line)),
              "GET /v1.41/tasks/t1/logs?timestamps=1&stdout=1&stderr=1");
    CHECK(b.ops->logs(b.ctx, "t2", &q, berth_now_ms() + 5000, &l, &err) < 0);
    CHECK_MSG(err.code == BERTH_NOT_FOUND, "%s", err.msg);
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
    test_mesh();
    test_status();
    test_engine();
    test_not_manager();
    test_update();
    test_logs();
    docker_backend_global_cleanup();
    return test_summary("swarm_backend");
}
