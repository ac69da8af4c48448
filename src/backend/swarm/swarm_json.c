/* The Engine's Swarm JSON (see swarm_internal.h): the service spec berthd
 * sends, and services, tasks and nodes read back into replica sets. */
#include "swarm_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/buf.h"
#include "berth/labels.h"

/* Swarm task states, in the order a task goes through them, as berthd
 * states: everything before running is a replica on its way. */
static const struct {
    const char *name;
    enum backend_state state;
} swarm_states[] = {
    {"new", BACKEND_STATE_CREATED},      {"allocated", BACKEND_STATE_CREATED},
    {"pending", BACKEND_STATE_CREATED},  {"assigned", BACKEND_STATE_CREATED},
    {"accepted", BACKEND_STATE_CREATED}, {"preparing", BACKEND_STATE_CREATED},
    {"ready", BACKEND_STATE_CREATED},    {"starting", BACKEND_STATE_RESTARTING},
    {"running", BACKEND_STATE_RUNNING},  {"complete", BACKEND_STATE_EXITED},
    {"shutdown", BACKEND_STATE_EXITED},  {"failed", BACKEND_STATE_DEAD},
    {"rejected", BACKEND_STATE_DEAD},    {"remove", BACKEND_STATE_REMOVING},
    {"orphaned", BACKEND_STATE_DEAD},
};

#define SWARM_RESTART_DELAY_NS 1e9

static const char *sj_string(const cJSON *obj, const char *key);
static int sj_uint(const char *v, unsigned max, unsigned *out);
static int sj_add_label(cJSON *labels, const char *key, const char *value);
static int sj_task_cmp(const void *a, const void *b);
static char *sj_instance_env(const struct backend_replica_spec *spec, const char *name);
static char *sj_literal(const char *s);
static int sj_fill_task(const cJSON *task, const cJSON *nodes, const cJSON *mesh_ports,
                        struct backend_replica *it);

const char *swarm_name_prefix(enum object_kind kind)
{
    return kind == OBJECT_GATEWAY ? "berth-gw-" : "berth-dep-";
}

/* The string member key of obj, or NULL. */
static const char *sj_string(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* A decimal number below max; -1 when missing or malformed. */
static int sj_uint(const char *v, unsigned max, unsigned *out)
{
    char *end;
    unsigned long n;

    if (v == NULL || v[0] < '0' || v[0] > '9')
        return -1;
    n = strtoul(v, &end, 10);
    if (*end != '\0' || n >= max)
        return -1;
    *out = (unsigned)n;
    return 0;
}

int swarm_json_service(const cJSON *svc, enum object_kind kind, struct swarm_service *out)
{
    const struct object_kind_info *k = object_kind_info(kind);
    const cJSON *spec = cJSON_GetObjectItemCaseSensitive(svc, "Spec");
    const cJSON *labels = cJSON_GetObjectItemCaseSensitive(spec, "Labels");
    const char *managed = sj_string(labels, LABEL_MANAGED);
    const char *kname = sj_string(labels, LABEL_KIND);
    struct swarm_service s = {0};

    if (managed == NULL || strcmp(managed, LABEL_MANAGED_VALUE) != 0 || kname == NULL ||
        strcmp(kname, k->name) != 0)
        return -1;
    s.service_id = sj_string(svc, "ID");
    s.name = sj_string(spec, "Name");
    s.id = sj_string(labels, k->id_label);
    s.ns = sj_string(labels, LABEL_NAMESPACE);
    s.digest = sj_string(labels, LABEL_SPEC);
    if (s.service_id == NULL || s.service_id[0] == '\0' || s.id == NULL || s.id[0] == '\0')
        return -1;
    if (s.name == NULL)
        s.name = "";
    if (s.ns == NULL)
        s.ns = "";
    if (s.digest == NULL)
        s.digest = "";
    if (sj_uint(sj_string(labels, LABEL_REPLICAS), BACKEND_MAX_REPLICAS + 1, &s.wanted) < 0)
        s.wanted = 0;
    s.mesh_ports = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(svc, "Endpoint"), "Ports");
    if (!cJSON_IsArray(s.mesh_ports))
        s.mesh_ports = NULL;
    *out = s;
    return 0;
}

static int sj_add_label(cJSON *labels, const char *key, const char *value)
{
    return cJSON_AddStringToObject(labels, key, value) == NULL ? -1 : 0;
}

/* s as a Swarm template that expands to s itself: Swarm expands templates
 * in every Env entry, and a caller's value must reach the task unchanged.
 * malloc'd; NULL when out of memory. */
static char *sj_literal(const char *s)
{
    struct buf b;
    struct berth_err err;
    const char *p;

    berth_err_clear(&err);
    buf_init(&b, (size_t)1 << 24);
    while ((p = strstr(s, "{{")) != NULL) {
        if (buf_append(&b, s, (size_t)(p - s), &err) < 0 ||
            buf_appends(&b, "{{\"{{\"}}", &err) < 0) {
            buf_release(&b);
            return NULL;
        }
        s = p + 2;
    }
    if (buf_appends(&b, s, &err) < 0) {
        buf_release(&b);
        return NULL;
    }
    return buf_detach(&b);
}

/* "<NAME>=<id>-<index>" as a template Swarm fills per task. Its slots count
 * from 1, are strings, and templates have no arithmetic: index = slot - 1
 * is spelled out for every slot a service may ever have, so that scaling
 * changes only the count and no task is replaced for it. malloc'd; NULL
 * when out of memory. */
static char *sj_instance_env(const struct backend_replica_spec *spec, const char *name)
{
    struct buf b;
    struct berth_err err;
    int bad;

    berth_err_clear(&err);
    buf_init(&b, (size_t)1 << 20);
    bad = buf_printf(&b, &err, "%s=%s-", name, spec->id) < 0;
    for (unsigned i = 0; !bad && i < BACKEND_MAX_REPLICAS; i++)
        bad =
            buf_printf(&b, &err, "{{%sif eq .Task.Slot \"%u\"}}%u", i ? "else " : "", i + 1, i) < 0;
    if (bad || buf_appends(&b, "{{end}}", &err) < 0) {
        buf_release(&b);
        return NULL;
    }
    return buf_detach(&b);
}

/* ContainerSpec.HealthCheck, as the Docker backend's Healthcheck: the
 * command in exec form or NONE, times in ns, fields left 0 left out (the
 * image's apply). A task with a check runs, for the Swarm and for an
 * update, only once it is healthy, and an unhealthy one is replaced. */
static int sj_add_health(cJSON *cs, const struct backend_health_check *h)
{
    cJSON *hc = cJSON_AddObjectToObject(cs, "HealthCheck"), *test;
    int bad = hc == NULL;

    if (bad)
        return -1;
    if (h->disable || h->n_test > 0) {
        test = cJSON_AddArrayToObject(hc, "Test");
        if (test == NULL ||
            !cJSON_AddItemToArray(test, cJSON_CreateString(h->disable ? "NONE" : "CMD")))
            return -1;
        for (size_t i = 0; !h->disable && i < h->n_test; i++)
            if (h->test[i] == NULL || !cJSON_AddItemToArray(test, cJSON_CreateString(h->test[i])))
                return -1;
        if (h->disable)
            return 0;
    }
    if (h->interval_ns > 0)
        bad |= cJSON_AddNumberToObject(hc, "Interval", (double)h->interval_ns) == NULL;
    if (h->timeout_ns > 0)
        bad |= cJSON_AddNumberToObject(hc, "Timeout", (double)h->timeout_ns) == NULL;
    if (h->start_period_ns > 0)
        bad |= cJSON_AddNumberToObject(hc, "StartPeriod", (double)h->start_period_ns) == NULL;
    if (h->retries > 0)
        bad |= cJSON_AddNumberToObject(hc, "Retries", h->retries) == NULL;
    return bad ? -1 : 0;
}

/* UpdateConfig or RollbackConfig: `parallelism` at a time, each new task
 * running before its old one stops, watched for `monitor_ms`; no failure
 * is tolerated. */
static int sj_add_update_config(cJSON *root, const char *key, const struct swarm_spec_opts *o,
                                const char *failure_action)
{
    cJSON *u = cJSON_AddObjectToObject(root, key);
    int bad = u == NULL;

    if (bad)
        return -1;
    bad |=
        cJSON_AddNumberToObject(u, "Parallelism", o->parallelism > 0 ? o->parallelism : 1) == NULL;
    bad |= cJSON_AddNumberToObject(u, "Delay", 0) == NULL;
    bad |= cJSON_AddStringToObject(u, "FailureAction", failure_action) == NULL;
    bad |= cJSON_AddNumberToObject(u, "Monitor",
                                   (double)(o->monitor_ms > 0 ? o->monitor_ms : 0) * 1e6) == NULL;
    bad |= cJSON_AddNumberToObject(u, "MaxFailureRatio", 0) == NULL;
    bad |= cJSON_AddStringToObject(u, "Order", "start-first") == NULL;
    return bad ? -1 : 0;
}

cJSON *swarm_json_service_spec(const struct backend_replica_spec *spec, const char *name,
                               const struct swarm_spec_opts *o)
{
    const struct object_kind_info *k = object_kind_info(spec->kind);
    const struct backend_spec *t = &spec->tmpl;
    cJSON *root = cJSON_CreateObject();
    cJSON *labels, *task, *cs, *clabels, *env, *limits, *res, *policy, *mode, *ep, *ports;
    char wanted[16];
    int bad = 0;

    if (root == NULL)
        return NULL;
    snprintf(wanted, sizeof(wanted), "%u", spec->replicas);
    bad |= cJSON_AddStringToObject(root, "Name", name) == NULL;
    labels = cJSON_AddObjectToObject(root, "Labels");
    task = cJSON_AddObjectToObject(root, "TaskTemplate");
    cs = task ? cJSON_AddObjectToObject(task, "ContainerSpec") : NULL;
    if (labels == NULL || cs == NULL)
        goto fail;
    /* The template's labels first, so berthd's own always win. */
    for (size_t i = 0; i < t->n_labels; i++)
        bad |= sj_add_label(labels, t->labels[i].key, t->labels[i].value);
    bad |= sj_add_label(labels, LABEL_MANAGED, LABEL_MANAGED_VALUE);
    bad |= sj_add_label(labels, LABEL_KIND, k->name);
    bad |= sj_add_label(labels, k->id_label, spec->id);
    bad |= sj_add_label(labels, LABEL_SPEC, spec->digest);
    bad |= sj_add_label(labels, LABEL_REPLICAS, wanted);
    if (spec->ns[0] != '\0')
        bad |= sj_add_label(labels, LABEL_NAMESPACE, spec->ns);

    bad |= cJSON_AddStringToObject(cs, "Image", t->image) == NULL;
    if (t->n_cmd > 0) {
        cJSON *args = cJSON_AddArrayToObject(cs, "Args");
        for (size_t i = 0; args != NULL && i < t->n_cmd; i++)
            bad |= !cJSON_AddItemToArray(args, cJSON_CreateString(t->cmd[i]));
        bad |= args == NULL;
    }
    env = cJSON_AddArrayToObject(cs, "Env");
    for (size_t i = 0; env != NULL && i < t->n_env; i++) {
        char *v = sj_literal(t->env[i]);
        bad |= v == NULL || !cJSON_AddItemToArray(env, cJSON_CreateString(v));
        free(v);
    }
    for (size_t i = 0; env != NULL && spec->instance_envs != NULL && spec->instance_envs[i]; i++) {
        char *v = sj_instance_env(spec, spec->instance_envs[i]);
        bad |= v == NULL || !cJSON_AddItemToArray(env, cJSON_CreateString(v));
        free(v);
    }
    bad |= env == NULL;
    if (t->working_dir != NULL && t->working_dir[0] != '\0')
        bad |= cJSON_AddStringToObject(cs, "Dir", t->working_dir) == NULL;
    if (t->health != NULL)
        bad |= sj_add_health(cs, t->health) < 0;
    /* The task containers carry the set's identity too, so their events
     * name the set. */
    clabels = cJSON_AddObjectToObject(cs, "Labels");
    if (clabels == NULL)
        goto fail;
    bad |= sj_add_label(clabels, LABEL_MANAGED, LABEL_MANAGED_VALUE);
    bad |= sj_add_label(clabels, LABEL_KIND, k->name);
    bad |= sj_add_label(clabels, k->id_label, spec->id);
    /* Which spec a task runs, so an update can tell its new tasks. */
    bad |= sj_add_label(clabels, LABEL_SPEC, spec->digest);
    if (spec->ns[0] != '\0')
        bad |= sj_add_label(clabels, LABEL_NAMESPACE, spec->ns);

    res = cJSON_AddObjectToObject(task, "Resources");
    limits = res ? cJSON_AddObjectToObject(res, "Limits") : NULL;
    if (limits == NULL)
        goto fail;
    if (t->nano_cpus > 0)
        bad |= cJSON_AddNumberToObject(limits, "NanoCPUs", (double)t->nano_cpus) == NULL;
    if (t->memory_bytes > 0)
        bad |= cJSON_AddNumberToObject(limits, "MemoryBytes", (double)t->memory_bytes) == NULL;
    if (o->pids_limit > 0)
        bad |= cJSON_AddNumberToObject(limits, "Pids", (double)o->pids_limit) == NULL;
    /* A task that ends, or whose node is drained or lost, is replaced a
     * second later (the Swarm's default waits five). */
    policy = cJSON_AddObjectToObject(task, "RestartPolicy");
    bad |= policy == NULL || cJSON_AddStringToObject(policy, "Condition", "any") == NULL ||
           cJSON_AddNumberToObject(policy, "Delay", SWARM_RESTART_DELAY_NS) == NULL;

    mode = cJSON_AddObjectToObject(root, "Mode");
    mode = mode ? cJSON_AddObjectToObject(mode, "Replicated") : NULL;
    bad |= mode == NULL || cJSON_AddNumberToObject(mode, "Replicas", spec->replicas) == NULL;
    bad |= sj_add_update_config(root, "UpdateConfig", o, "rollback") < 0;
    bad |= sj_add_update_config(root, "RollbackConfig", o, "pause") < 0;

    /* Host-mode publishing (the default): each task gets an Engine-chosen
     * port on its own node, and the routing mesh is not relied upon. In
     * ingress mode the mesh publishes one port of the swarm's range on
     * every node. */
    ep = cJSON_AddObjectToObject(root, "EndpointSpec");
    ports = ep ? cJSON_AddArrayToObject(ep, "Ports") : NULL;
    if (ports == NULL)
        goto fail;
    for (size_t i = 0; i < t->n_ports; i++) {
        cJSON *p = cJSON_CreateObject();
        if (p == NULL || !cJSON_AddItemToArray(ports, p))
            goto fail;
        bad |= cJSON_AddStringToObject(p, "Protocol", t->ports[i].protocol) == NULL;
        bad |= cJSON_AddNumberToObject(p, "TargetPort", t->ports[i].container_port) == NULL;
        if (t->ports[i].host_port > 0)
            bad |= cJSON_AddNumberToObject(p, "PublishedPort", t->ports[i].host_port) == NULL;
        bad |= cJSON_AddStringToObject(p, "PublishMode", o->ingress ? "ingress" : "host") == NULL;
    }
    if (!bad)
        return root;
fail:
    cJSON_Delete(root);
    return NULL;
}

enum backend_state swarm_task_state(const char *state)
{
    for (size_t i = 0; state != NULL && i < sizeof(swarm_states) / sizeof(swarm_states[0]); i++)
        if (strcmp(swarm_states[i].name, state) == 0)
            return swarm_states[i].state;
    return BACKEND_STATE_UNKNOWN;
}

/* The item of node_id in GET /nodes' answer, or NULL. */
static const cJSON *sj_node(const cJSON *nodes, const char *node_id)
{
    const cJSON *n;

    if (node_id == NULL || node_id[0] == '\0')
        return NULL;
    cJSON_ArrayForEach(n, nodes)
    {
        const char *id = sj_string(n, "ID");
        if (id != NULL && strcmp(id, node_id) == 0)
            return n;
    }
    return NULL;
}

const char *swarm_node_addr(const cJSON *nodes, const char *node_id)
{
    const cJSON *n = sj_node(nodes, node_id);
    const char *adv, *addr;

    if (n == NULL)
        return "";
    adv = sj_string(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(n, "Spec"), "Labels"),
        SWARM_LABEL_ADVERTISE);
    if (adv != NULL && adv[0] != '\0')
        return adv;
    addr = sj_string(cJSON_GetObjectItemCaseSensitive(n, "Status"), "Addr");
    /* A node that names no usable address is reached as this host. */
    if (addr == NULL || strcmp(addr, "0.0.0.0") == 0)
        return "";
    return addr;
}

const char *swarm_node_name(const cJSON *nodes, const char *node_id)
{
    const char *name = sj_string(
        cJSON_GetObjectItemCaseSensitive(sj_node(nodes, node_id), "Description"), "Hostname");

    return name != NULL ? name : "";
}

int64_t swarm_json_version(const cJSON *svc)
{
    const cJSON *v =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(svc, "Version"), "Index");

    return cJSON_IsNumber(v) && v->valuedouble >= 0 ? (int64_t)v->valuedouble : -1;
}

const char *swarm_json_update_state(const cJSON *svc)
{
    const char *st = sj_string(cJSON_GetObjectItemCaseSensitive(svc, "UpdateStatus"), "State");

    return st != NULL ? st : "";
}

const char *swarm_json_update_started(const cJSON *svc)
{
    const char *t = sj_string(cJSON_GetObjectItemCaseSensitive(svc, "UpdateStatus"), "StartedAt");

    return t != NULL ? t : "";
}

/* The container labels of a task's spec. */
static const cJSON *sj_task_labels(const cJSON *task)
{
    return cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(task, "Spec"),
                                         "ContainerSpec"),
        "Labels");
}

int swarm_json_task_object(const cJSON *task, enum object_kind *kind, const char **id)
{
    const cJSON *labels = sj_task_labels(task);
    const char *managed = sj_string(labels, LABEL_MANAGED);
    const char *kname = sj_string(labels, LABEL_KIND);
    const enum object_kind kinds[] = {OBJECT_GATEWAY, OBJECT_DEPLOYMENT};

    if (managed == NULL || strcmp(managed, LABEL_MANAGED_VALUE) != 0 || kname == NULL)
        return -1;
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        const struct object_kind_info *k = object_kind_info(kinds[i]);
        const char *v;

        if (strcmp(kname, k->name) != 0)
            continue;
        v = sj_string(labels, k->id_label);
        if (v == NULL || v[0] == '\0')
            return -1;
        *kind = kinds[i];
        *id = v;
        return 0;
    }
    return -1;
}

const char *swarm_json_task_digest(const cJSON *task)
{
    const char *d = sj_string(sj_task_labels(task), LABEL_SPEC);

    return d != NULL ? d : "";
}

static int sj_task_cmp(const void *a, const void *b)
{
    const struct backend_replica *x = a, *y = b;

    if (x->index != y->index)
        return x->index < y->index ? -1 : 1;
    return strcmp(x->handle, y->handle);
}

/* One task into *it (heap strings; the caller releases the set on failure):
 * 1 done, 0 not a replica to show (no slot), -1 out of memory. Its ports
 * are those published on its node, else the routing mesh's (mesh_ports,
 * NULL: none), which answer on every node. */
static int sj_fill_task(const cJSON *task, const cJSON *nodes, const cJSON *mesh_ports,
                        struct backend_replica *it)
{
    const cJSON *status = cJSON_GetObjectItemCaseSensitive(task, "Status");
    const cJSON *slot = cJSON_GetObjectItemCaseSensitive(task, "Slot");
    const cJSON *ports = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(status, "PortStatus"), "Ports");
    const char *id = sj_string(task, "ID");
    const char *image =
        sj_string(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(task, "Spec"),
                                                   "ContainerSpec"),
                  "Image");
    const cJSON *p;
    size_t np = 0;

    if (cJSON_GetArraySize(ports) == 0)
        ports = mesh_ports;

    if (!cJSON_IsNumber(slot) || slot->valuedouble < 1 || slot->valuedouble > BACKEND_MAX_REPLICAS)
        return 0;
    it->index = (unsigned)slot->valuedouble - 1;
    it->state = swarm_task_state(sj_string(status, "State"));
    it->handle = strdup(id != NULL ? id : "");
    it->image = strdup(image != NULL ? image : "");
    it->host = strdup(swarm_node_addr(nodes, sj_string(task, "NodeID")));
    it->ports = calloc((size_t)cJSON_GetArraySize(ports) + 1, sizeof(*it->ports));
    if (it->handle == NULL || it->host == NULL || it->ports == NULL || it->image == NULL)
        return -1;
    cJSON_ArrayForEach(p, ports)
    {
        const cJSON *target = cJSON_GetObjectItemCaseSensitive(p, "TargetPort");
        const cJSON *pub = cJSON_GetObjectItemCaseSensitive(p, "PublishedPort");
        const char *proto = sj_string(p, "Protocol");
        struct backend_port *bp = &it->ports[np];

        if (!cJSON_IsNumber(target) || !cJSON_IsNumber(pub) || pub->valuedouble < 1 ||
            pub->valuedouble > 65535)
            continue;
        bp->container_port = (int)target->valuedouble;
        bp->host_port = (int)pub->valuedouble;
        snprintf(bp->protocol, sizeof(bp->protocol), "%s",
                 proto != NULL && strcmp(proto, "udp") == 0 ? "udp" : "tcp");
        np++;
    }
    it->n_ports = np;
    return 1;
}

int swarm_json_fill_set(enum object_kind kind, const struct swarm_service *svc, const cJSON *tasks,
                        const cJSON *nodes, struct backend_replica_set *out, struct berth_err *err)
{
    struct backend_replica_set s = {0};
    const cJSON *t;

    s.kind = kind;
    s.wanted = svc->wanted;
    s.ns = strdup(svc->ns);
    s.id = strdup(svc->id);
    s.items = calloc((size_t)cJSON_GetArraySize(tasks) + 1, sizeof(*s.items));
    if (s.ns == NULL || s.id == NULL || s.items == NULL)
        goto oom;
    cJSON_ArrayForEach(t, tasks)
    {
        const char *sid = sj_string(t, "ServiceID");
        const char *desired = sj_string(t, "DesiredState");
        int rc;

        /* Tasks Swarm is shutting down or has replaced are history. */
        if (sid == NULL || strcmp(sid, svc->service_id) != 0 || desired == NULL ||
            strcmp(desired, "running") != 0)
            continue;
        rc = sj_fill_task(t, nodes, svc->mesh_ports, &s.items[s.n]);
        if (rc < 0) {
            s.n++;
            goto oom;
        }
        s.n += (size_t)rc;
    }
    if (s.n > 1)
        qsort(s.items, s.n, sizeof(*s.items), sj_task_cmp);
    *out = s;
    return 0;
oom:
    backend_replica_set_release(&s);
    return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
}
