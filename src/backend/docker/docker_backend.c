/* The Docker backend (see berth/docker_backend.h): backend operations as
 * Engine API calls, the container spec as a create body built with cJSON,
 * Engine answers mapped to Connect codes, and the rule that a container
 * without berth.managed=true is never read or touched (not_found). */
#include "berth/docker_backend.h"
#include "berth/labels.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <uuid/uuid.h>

#include "berth/buf.h"
#include "berth/clock.h"
#include "berth/engine_client.h"
#include "berth/log.h"
#include "berth/rfc3339.h"
#include "docker_internal.h"

/* Small request paths and bodies are ours; caps only guard against bugs. */
#define DOCKER_PATH_MAX (64 * 1024)
#define DOCKER_BODY_MAX ((size_t)4 << 20)
/* Stop and restart may take t seconds; the request gets this much more. */
#define DOCKER_STOP_MARGIN_MS 15000
/* A pull without a caller deadline still ends. */
#define DOCKER_PULL_MAX_MS (30 * 60 * 1000)
/* Longest user string echoed in an error message. */
#define DOCKER_QUOTE_MAX 128
/* Following up such a create: the backend's own budget (the caller's
 * deadline has usually passed by then) and the interval between looks. */
#define DOCKER_REAP_BUDGET_MS 5000
#define DOCKER_REAP_POLL_MS 50

/* One create call: what is sent, and the token its container carries. */
struct docker_create {
    const char *path;  /* /containers/create?name=... */
    const char *body;  /* the create body, labels included */
    const char *image; /* for messages */
    const char *name;  /* NULL or "": the Engine picks one */
    char token[37];    /* the LABEL_CREATE_TOKEN value */
};

/* What the reaper found under the container's name. */
enum docker_reap_find {
    DOCKER_REAP_ERROR = -1, /* err says why */
    DOCKER_REAP_ABSENT,     /* nothing (yet) */
    DOCKER_REAP_OURS,       /* made by this call */
    DOCKER_REAP_OTHER,      /* someone else's: this call made nothing */
};

/* What the pull stream reader remembers. */
struct docker_pull {
    int failed;
    char msg[BERTH_ERR_MSG_MAX]; /* the first error line's message */
};

static int docker_backend_ping(void *ctx, int64_t deadline, struct berth_err *err);
static int docker_backend_create(void *ctx, const struct backend_spec *spec, int64_t deadline,
                                 char **id_out, struct berth_err *err);
static int docker_backend_start(void *ctx, const char *id, int64_t deadline, struct berth_err *err);
static int docker_backend_stop(void *ctx, const char *id, int timeout_s, int64_t deadline,
                               struct berth_err *err);
static int docker_backend_kill(void *ctx, const char *id, int64_t deadline, struct berth_err *err);
static int docker_backend_pause(void *ctx, const char *id, int64_t deadline, struct berth_err *err);
static int docker_backend_unpause(void *ctx, const char *id, int64_t deadline,
                                  struct berth_err *err);
static int docker_backend_restart(void *ctx, const char *id, int timeout_s, int64_t deadline,
                                  struct berth_err *err);
static int docker_backend_remove(void *ctx, const char *id, int64_t deadline,
                                 struct berth_err *err);
static int docker_backend_inspect(void *ctx, const char *id, int64_t deadline,
                                  struct backend_container *out, struct berth_err *err);
static int docker_backend_list(void *ctx, const char *label, int64_t deadline,
                               struct backend_container_list *out, struct berth_err *err);
static int docker_backend_call_stats(void *ctx, struct backend_call_stats **out, size_t *n);
static void docker_backend_cancel_all(void *ctx);
static void docker_backend_destroy(void *ctx);

/* create */
static int docker_backend_validate_spec(const struct backend_spec *spec, struct berth_err *err);
static int docker_backend_create_body(const struct docker_ctx *c, const struct backend_spec *spec,
                                      const char *token, char **json_out, struct berth_err *err);
static int docker_backend_add_strings(cJSON *obj, const char *key, const char *const *v, size_t n);
static int docker_backend_add_labels(cJSON *config, const struct backend_spec *spec,
                                     const char *token);
static int docker_backend_add_ports(const struct docker_ctx *c, cJSON *config, cJSON *host,
                                    const struct backend_spec *spec, struct berth_err *err);
static int docker_backend_add_int64(cJSON *obj, const char *key, int64_t v);
static int docker_backend_try_create(struct docker_ctx *c, const struct docker_create *req,
                                     int64_t deadline, char **id_out, int *missing_image,
                                     struct berth_err *err);
static void docker_backend_reap(struct docker_ctx *c, const struct docker_create *req);
static int docker_backend_reap_find(struct docker_ctx *c, const struct docker_create *req,
                                    int64_t deadline, char **id_out, struct berth_err *err);
static int docker_backend_reap_remove(struct docker_ctx *c, const char *id, int64_t deadline,
                                      struct berth_err *err);
static void docker_backend_sleep_ms(int64_t ms);
static int docker_backend_pull(struct docker_ctx *c, const char *image, int64_t deadline,
                               struct berth_err *err);
static int docker_backend_split_ref(const char *ref, struct buf *name, struct buf *tag,
                                    struct berth_err *err);
static int docker_backend_on_pull_line(void *arg, const char *line, size_t len);
static int docker_backend_is_not_found_text(const char *msg);
static int docker_backend_is_state_text(const char *msg);

/* lifecycle */
static int docker_backend_fetch(struct docker_ctx *c, const char *id, int64_t deadline,
                                cJSON **root_out, struct berth_err *err);
static int docker_backend_action(struct docker_ctx *c, const char *id, const char *method,
                                 const char *suffix, const char *verb, int64_t deadline,
                                 struct berth_err *err);
static int docker_backend_timed_action(struct docker_ctx *c, const char *id, const char *verb,
                                       int timeout_s, int64_t deadline, struct berth_err *err);

/* reading Engine JSON */
static int docker_backend_is_managed(const cJSON *labels);
static int docker_backend_from_inspect(const cJSON *root, struct backend_container *out,
                                       struct berth_err *err);
static int docker_backend_from_list_item(const cJSON *item, struct backend_container *out,
                                         struct berth_err *err);
static char *docker_backend_dup(const cJSON *obj, const char *key);
static int docker_backend_take_labels(const cJSON *labels, struct backend_container *out);
static int docker_backend_take_network(const cJSON *settings, struct backend_container *out);
static int docker_backend_take_port_map(const cJSON *map, struct backend_container *out,
                                        size_t *cap);
static int docker_backend_add_port(struct backend_container *out, size_t *cap, int cport, int hport,
                                   const char *proto);
static int docker_backend_parse_port_key(const char *key, int *port, const char **proto);
static int docker_backend_parse_int(const char *s, long max, long *out);
static int docker_backend_parse_time(const char *s, int64_t *unix_ms);

static const struct backend_ops docker_backend_ops = {
    .name = "docker",
    .ping = docker_backend_ping,
    .create = docker_backend_create,
    .start = docker_backend_start,
    .stop = docker_backend_stop,
    .kill = docker_backend_kill,
    .pause = docker_backend_pause,
    .unpause = docker_backend_unpause,
    .restart = docker_backend_restart,
    .remove = docker_backend_remove,
    .inspect = docker_backend_inspect,
    .list = docker_backend_list,
    .stats = docker_stats_one,
    .stats_sweep = docker_stats_sweep,
    .call_stats = docker_backend_call_stats,
    .watch = docker_events_watch,
    .cancel_all = docker_backend_cancel_all,
    .destroy = docker_backend_destroy,
};

/* Restart policies the Engine knows; anything else is invalid_argument. */
static const char *const docker_restart_policies[] = {"no", "always", "unless-stopped",
                                                      "on-failure"};

/* Pull errors that mean "there is no such image" rather than "try later". */
static const char *const docker_not_found_markers[] = {
    "not found", "does not exist", "manifest unknown", "pull access denied", "No such image",
};

/* Engine 5xx answers to a lifecycle call that really mean "not in that
 * state" (some Engine versions answer them with 500, not 409), or "the host
 * port asked for is taken": retrying the same call cannot help, so they are
 * failed_precondition, not unavailable. */
static const char *const docker_state_markers[] = {
    "is not running",         "is not paused",
    "is already paused",      "is paused",
    "is restarting",          "port is already allocated",
    "address already in use", "marked for removal",
};

/* --- setup ------------------------------------------------------------------- */

int docker_backend_global_init(struct berth_err *err)
{
    return engine_global_init(err);
}

void docker_backend_global_cleanup(void)
{
    engine_global_cleanup();
}

int docker_backend_new(const struct docker_backend_config *cfg, struct backend *out,
                       struct berth_err *err)
{
    static const struct docker_backend_config defaults = {NULL, NULL, 0, 0, 0};
    struct docker_ctx *c = NULL;
    const char *sock, *pub;
    int rc = -1;

    if (cfg == NULL)
        cfg = &defaults;
    sock = cfg->socket_path;
    pub = cfg->publish_address;

    if (sock == NULL || sock[0] == '\0')
        sock = DOCKER_BACKEND_DEFAULT_SOCKET;
    if (pub == NULL || pub[0] == '\0')
        pub = DOCKER_BACKEND_DEFAULT_PUBLISH;
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    c->publish_address = strdup(pub);
    c->socket_path = strdup(sock);
    c->calls = engine_stats_new();
    if (c->publish_address == NULL || c->socket_path == NULL || c->calls == NULL) {
        berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    c->pids_limit = cfg->pids_limit == 0 ? DOCKER_BACKEND_DEFAULT_PIDS_LIMIT : cfg->pids_limit;
    if (engine_new(sock, &c->engine, err) < 0)
        goto out;
    engine_set_stats(c->engine, c->calls);
    if (docker_stats_new(c, cfg->stats_interval_ms, &c->stats, err) < 0)
        goto out;
    c->probe_interval_ms = cfg->probe_interval_ms;
    if (docker_probe_start(c, err) < 0)
        goto out;
    out->ops = &docker_backend_ops;
    out->ctx = c;
    c = NULL;
    rc = 0;
out:
    docker_backend_destroy(c);
    return rc;
}

static void docker_backend_cancel_all(void *ctx)
{
    struct docker_ctx *c = ctx;

    engine_cancel_all(c->engine);
}

static void docker_backend_destroy(void *ctx)
{
    struct docker_ctx *c = ctx;

    if (c == NULL)
        return;
    docker_probe_stop(c);
    docker_stats_free(c->stats);
    engine_free(c->engine);
    engine_stats_free(c->calls);
    free(c->socket_path);
    free(c->publish_address);
    free(c);
}

static int docker_backend_call_stats(void *ctx, struct backend_call_stats **out, size_t *n)
{
    struct docker_ctx *c = ctx;

    return engine_stats_snapshot(c->calls, out, n);
}

/* --- ping --------------------------------------------------------------------- */

/* The Engine answers /_ping, whether or not it was marked as not answering
 * (readiness wants to know how it is now). */
static int docker_backend_ping(void *ctx, int64_t deadline, struct berth_err *err)
{
    struct docker_ctx *c = ctx;

    return engine_probe(c->engine, deadline, err);
}

/* --- create ------------------------------------------------------------------- */

static int docker_backend_create(void *ctx, const struct backend_spec *spec, int64_t deadline,
                                 char **id_out, struct berth_err *err)
{
    struct docker_ctx *c = ctx;
    struct docker_create req;
    struct buf path;
    char *body = NULL;
    uuid_t uu;
    int missing = 0, rc = -1;

    buf_init(&path, DOCKER_PATH_MAX);
    memset(&req, 0, sizeof(req));
    uuid_generate_random(uu);
    uuid_unparse_lower(uu, req.token);
    if (docker_backend_validate_spec(spec, err) < 0)
        goto out;
    if (docker_backend_create_body(c, spec, req.token, &body, err) < 0)
        goto out;
    if (buf_appends(&path, "/containers/create", err) < 0)
        goto out;
    if (spec->name != NULL && spec->name[0] != '\0') {
        if (buf_appends(&path, "?name=", err) < 0 ||
            engine_append_escaped(&path, spec->name, err) < 0)
            goto out;
    }
    req.path = path.data;
    req.body = body;
    req.image = spec->image;
    req.name = spec->name;
    if (docker_backend_try_create(c, &req, deadline, id_out, &missing, err) < 0)
        goto out;
    if (missing) {
        /* The Engine lacks the image: pull it, then try once more. */
        if (docker_backend_pull(c, spec->image, deadline, err) < 0)
            goto out;
        missing = 0;
        if (docker_backend_try_create(c, &req, deadline, id_out, &missing, err) < 0)
            goto out;
        if (missing) {
            char q[DOCKER_QUOTE_MAX + 8];

            berth_err_quote(q, sizeof(q), spec->image, DOCKER_QUOTE_MAX);
            berth_err_set(err, BERTH_NOT_FOUND, "image '%s' not found after pulling it", q);
            goto out;
        }
    }
    rc = 0;
out:
    free(body);
    buf_release(&path);
    return rc;
}

static int docker_backend_validate_spec(const struct backend_spec *spec, struct berth_err *err)
{
    if (spec->image == NULL || spec->image[0] == '\0')
        return berth_err_set(err, BERTH_INVALID_ARGUMENT, "image is required");
    for (size_t i = 0; i < spec->n_cmd; i++)
        if (spec->cmd[i] == NULL)
            return berth_err_set(err, BERTH_INVALID_ARGUMENT, "cmd[%zu] is missing", i);
    for (size_t i = 0; i < spec->n_env; i++)
        if (spec->env[i] == NULL || spec->env[i][0] == '=' || strchr(spec->env[i], '=') == NULL)
            return berth_err_set(err, BERTH_INVALID_ARGUMENT, "env[%zu] is not KEY=VALUE", i);
    for (size_t i = 0; i < spec->n_ports; i++) {
        const struct backend_port *p = &spec->ports[i];

        if (p->container_port < 1 || p->container_port > 65535)
            return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                                 "ports[%zu].container_port %d is out of range", i,
                                 p->container_port);
        if (p->host_port < 0 || p->host_port > 65535)
            return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                                 "ports[%zu].host_port %d is out of range", i, p->host_port);
        if (p->protocol[0] != '\0' && strcmp(p->protocol, "tcp") != 0 &&
            strcmp(p->protocol, "udp") != 0)
            return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                                 "ports[%zu].protocol must be tcp or udp", i);
    }
    for (size_t i = 0; i < spec->n_labels; i++)
        if (spec->labels[i].key == NULL || spec->labels[i].key[0] == '\0' ||
            spec->labels[i].value == NULL)
            return berth_err_set(err, BERTH_INVALID_ARGUMENT, "labels[%zu] is incomplete", i);
    if (spec->nano_cpus < 0)
        return berth_err_set(err, BERTH_INVALID_ARGUMENT, "nano_cpus must not be negative");
    if (spec->memory_bytes < 0)
        return berth_err_set(err, BERTH_INVALID_ARGUMENT, "memory_bytes must not be negative");
    if (spec->restart_policy != NULL && spec->restart_policy[0] != '\0') {
        size_t n = sizeof(docker_restart_policies) / sizeof(docker_restart_policies[0]);
        size_t i;

        for (i = 0; i < n; i++)
            if (strcmp(spec->restart_policy, docker_restart_policies[i]) == 0)
                break;
        if (i == n)
            return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                                 "restart_policy must be no, always, unless-stopped or "
                                 "on-failure");
    }
    return 0;
}

/* The create body. Only the fields below are ever sent: nothing that grants
 * host privileges (privileged mode, host namespaces, capabilities, devices,
 * bind mounts) can come from a spec. `token` becomes the create token label.
 * *json_out is malloc'd, the caller's. */
static int docker_backend_create_body(const struct docker_ctx *c, const struct backend_spec *spec,
                                      const char *token, char **json_out, struct berth_err *err)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *host = NULL, *policy;
    char *json = NULL;
    int bad = root == NULL;
    int rc = -1;

    if (!bad) {
        host = cJSON_AddObjectToObject(root, "HostConfig");
        bad |= host == NULL;
    }
    if (bad)
        goto oom;
    bad |= cJSON_AddStringToObject(root, "Image", spec->image) == NULL;
    if (spec->n_cmd > 0)
        bad |= docker_backend_add_strings(root, "Cmd", spec->cmd, spec->n_cmd) < 0;
    bad |= docker_backend_add_strings(root, "Env", spec->env, spec->n_env) < 0;
    if (spec->working_dir != NULL && spec->working_dir[0] != '\0')
        bad |= cJSON_AddStringToObject(root, "WorkingDir", spec->working_dir) == NULL;
    bad |= docker_backend_add_labels(root, spec, token) < 0;
    if (bad)
        goto oom;
    if (docker_backend_add_ports(c, root, host, spec, err) < 0)
        goto out;
    if (spec->nano_cpus > 0)
        bad |= docker_backend_add_int64(host, "NanoCpus", spec->nano_cpus) < 0;
    if (spec->memory_bytes > 0)
        bad |= docker_backend_add_int64(host, "Memory", spec->memory_bytes) < 0;
    if (c->pids_limit > 0)
        bad |= docker_backend_add_int64(host, "PidsLimit", c->pids_limit) < 0;
    if (spec->restart_policy != NULL && spec->restart_policy[0] != '\0') {
        policy = cJSON_AddObjectToObject(host, "RestartPolicy");
        bad |=
            policy == NULL || cJSON_AddStringToObject(policy, "Name", spec->restart_policy) == NULL;
    }
    if (bad)
        goto oom;
    json = cJSON_PrintUnformatted(root);
    if (json == NULL)
        goto oom;
    if (strlen(json) > DOCKER_BODY_MAX) {
        berth_err_set(err, BERTH_INVALID_ARGUMENT, "container spec larger than %zu bytes",
                      DOCKER_BODY_MAX);
        goto out;
    }
    *json_out = json;
    json = NULL;
    rc = 0;
    goto out;
oom:
    berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
out:
    cJSON_free(json);
    cJSON_Delete(root);
    return rc;
}

/* obj[key] = [v...]. -1 when out of memory. */
static int docker_backend_add_strings(cJSON *obj, const char *key, const char *const *v, size_t n)
{
    cJSON *arr = cJSON_AddArrayToObject(obj, key);

    if (arr == NULL)
        return -1;
    for (size_t i = 0; i < n; i++) {
        cJSON *s = cJSON_CreateString(v[i]);

        if (s == NULL || !cJSON_AddItemToArray(arr, s)) {
            cJSON_Delete(s);
            return -1;
        }
    }
    return 0;
}

/* Labels: the spec's (a later duplicate wins), then berth.managed=true and
 * this call's create token, which a spec cannot override. */
static int docker_backend_add_labels(cJSON *config, const struct backend_spec *spec,
                                     const char *token)
{
    cJSON *labels = cJSON_AddObjectToObject(config, "Labels");

    if (labels == NULL)
        return -1;
    for (size_t i = 0; i < spec->n_labels; i++) {
        const char *k = spec->labels[i].key;

        if (strcmp(k, LABEL_MANAGED) == 0 || strcmp(k, LABEL_CREATE_TOKEN) == 0)
            continue;
        cJSON_DeleteItemFromObjectCaseSensitive(labels, k);
        if (cJSON_AddStringToObject(labels, k, spec->labels[i].value) == NULL)
            return -1;
    }
    if (cJSON_AddStringToObject(labels, LABEL_MANAGED, LABEL_MANAGED_VALUE) == NULL ||
        cJSON_AddStringToObject(labels, LABEL_CREATE_TOKEN, token) == NULL)
        return -1;
    return 0;
}

/* ExposedPorts {"80/tcp": {}} and HostConfig.PortBindings {"80/tcp":
 * [{"HostIp": publish_address, "HostPort": "" or "8080"}]}; several spec
 * entries for one container port add bindings to the same list. */
static int docker_backend_add_ports(const struct docker_ctx *c, cJSON *config, cJSON *host,
                                    const struct backend_spec *spec, struct berth_err *err)
{
    cJSON *exposed, *bindings;
    struct buf key;
    int rc = -1;

    if (spec->n_ports == 0)
        return 0;
    buf_init(&key, 64);
    exposed = cJSON_AddObjectToObject(config, "ExposedPorts");
    bindings = cJSON_AddObjectToObject(host, "PortBindings");
    if (exposed == NULL || bindings == NULL)
        goto oom;
    for (size_t i = 0; i < spec->n_ports; i++) {
        const struct backend_port *p = &spec->ports[i];
        cJSON *list, *binding;
        char host_port[16] = "";

        buf_reset(&key);
        if (buf_printf(&key, err, "%d/%s", p->container_port,
                       p->protocol[0] != '\0' ? p->protocol : "tcp") < 0)
            goto out;
        if (cJSON_GetObjectItemCaseSensitive(exposed, key.data) == NULL &&
            cJSON_AddObjectToObject(exposed, key.data) == NULL)
            goto oom;
        list = cJSON_GetObjectItemCaseSensitive(bindings, key.data);
        if (list == NULL)
            list = cJSON_AddArrayToObject(bindings, key.data);
        binding = cJSON_CreateObject();
        if (list == NULL || binding == NULL || !cJSON_AddItemToArray(list, binding)) {
            cJSON_Delete(binding);
            goto oom;
        }
        if (p->host_port > 0)
            snprintf(host_port, sizeof(host_port), "%d", p->host_port);
        if (cJSON_AddStringToObject(binding, "HostIp", c->publish_address) == NULL ||
            cJSON_AddStringToObject(binding, "HostPort", host_port) == NULL)
            goto oom;
    }
    rc = 0;
    goto out;
oom:
    berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
out:
    buf_release(&key);
    return rc;
}

/* An exact 64-bit integer (a double would print large values as 1e+15,
 * which the Engine rejects). */
static int docker_backend_add_int64(cJSON *obj, const char *key, int64_t v)
{
    char num[32];

    snprintf(num, sizeof(num), "%lld", (long long)v);
    return cJSON_AddRawToObject(obj, key, num) == NULL ? -1 : 0;
}

/* One POST /containers/create. A missing image sets *missing_image and
 * returns 0 with no id; any other failure is mapped into err. When the
 * request got no answer, what the Engine may have made of it is reaped
 * before returning. */
static int docker_backend_try_create(struct docker_ctx *c, const struct docker_create *req,
                                     int64_t deadline, char **id_out, int *missing_image,
                                     struct berth_err *err)
{
    struct engine_response resp;
    cJSON *root = NULL;
    const cJSON *id;
    char q[DOCKER_QUOTE_MAX + 8];
    char *copy;
    int rc = -1;

    engine_response_init(&resp);
    berth_err_quote(q, sizeof(q), req->image, DOCKER_QUOTE_MAX);
    if (berth_deadline_left_ms(deadline) == 0) {
        /* Nothing sent, so nothing to reap. */
        berth_err_set(err, BERTH_DEADLINE_EXCEEDED,
                      "create container: deadline passed before sending it");
        goto out;
    }
    if (engine_refuses_calls(c->engine)) {
        /* Refused before sending: nothing to reap either. */
        berth_err_set(err, BERTH_UNAVAILABLE,
                      "create container: the docker engine is not answering");
        goto out;
    }
    if (engine_request(c->engine, "POST", req->path, req->body, deadline, &resp, err) < 0) {
        /* No answer: the Engine may have the request and make the container
         * yet. A definite answer (below) never leaves anything behind. */
        if (err->code == BERTH_DEADLINE_EXCEEDED || err->code == BERTH_UNAVAILABLE)
            docker_backend_reap(c, req);
        goto out;
    }
    if (resp.status == 404) {
        /* Nothing but the image can be missing: the body names no network
         * or volume. */
        *missing_image = 1;
        rc = 0;
        goto out;
    }
    if (resp.status == 409) {
        engine_fail(&resp, BERTH_ALREADY_EXISTS, "create container", err);
        goto out;
    }
    if (resp.status != 201 && resp.status != 200) {
        engine_fail(&resp, engine_status_code(resp.status), "create container", err);
        goto out;
    }
    root = cJSON_ParseWithLength(resp.body.data ? resp.body.data : "", resp.body.len);
    id = cJSON_GetObjectItemCaseSensitive(root, "Id");
    if (!cJSON_IsString(id) || id->valuestring[0] == '\0') {
        berth_err_set(err, BERTH_UNKNOWN, "docker engine created a container without an id");
        goto out;
    }
    copy = strdup(id->valuestring);
    if (copy == NULL) {
        berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    log_debug("docker.created", "image=%s container_id=%s", q, copy);
    *id_out = copy;
    rc = 0;
out:
    cJSON_Delete(root);
    engine_response_release(&resp);
    return rc;
}

/* A create whose POST got no answer may still be made by the Engine (its
 * lookups go through even while the Engine is marked unresponsive), and
 * the Engine gives no other signal when a create it received completes: so
 * look the name up every DOCKER_REAP_POLL_MS until the container shows or
 * DOCKER_REAP_BUDGET_MS (our own budget, not the caller's expired deadline)
 * pass, and remove it only if it carries this call's token. A container
 * under the name without the token is someone else's, and means this call
 * made nothing. Logs what it did; the caller's error stands either way. */
static void docker_backend_reap(struct docker_ctx *c, const struct docker_create *req)
{
    int64_t budget = berth_now_ms() + DOCKER_REAP_BUDGET_MS;
    struct berth_err err;
    char q[DOCKER_QUOTE_MAX + 8];
    char *id = NULL;
    int found;

    if (req->name == NULL || req->name[0] == '\0') {
        log_warn("docker.reap_skipped", "token=%s reason=\"no name to look up\"", req->token);
        return;
    }
    berth_err_quote(q, sizeof(q), req->name, DOCKER_QUOTE_MAX);
    berth_err_clear(&err);
    for (;;) {
        found = docker_backend_reap_find(c, req, budget, &id, &err);
        if (found != DOCKER_REAP_ABSENT || berth_deadline_left_ms(budget) <= DOCKER_REAP_POLL_MS)
            break;
        docker_backend_sleep_ms(DOCKER_REAP_POLL_MS);
    }
    if (found == DOCKER_REAP_ABSENT)
        log_warn("docker.reap_gave_up", "name=%s token=%s waited_ms=%d", q, req->token,
                 DOCKER_REAP_BUDGET_MS);
    else if (found == DOCKER_REAP_OTHER)
        log_debug("docker.reap_not_ours", "name=%s token=%s", q, req->token);
    else if (found == DOCKER_REAP_OURS && docker_backend_reap_remove(c, id, budget, &err) == 0)
        log_info("docker.reaped", "name=%s container_id=%.12s token=%s", q, id, req->token);
    if (err.code != BERTH_OK) {
        struct log_quoted lq;
        log_warn("docker.reap_failed", "name=%s token=%s code=%s error=%s", q, req->token,
                 berth_code_name(err.code), log_quote(&lq, err.msg));
    }
    free(id);
}

/* GET /containers/{name}/json: what is under the name now. *id_out (the
 * full id, malloc'd, the caller's) is set only for DOCKER_REAP_OURS. */
static int docker_backend_reap_find(struct docker_ctx *c, const struct docker_create *req,
                                    int64_t deadline, char **id_out, struct berth_err *err)
{
    struct engine_response resp;
    struct buf path;
    cJSON *root = NULL;
    const cJSON *labels, *token, *id;
    int rc = DOCKER_REAP_ERROR;

    engine_response_init(&resp);
    buf_init(&path, DOCKER_PATH_MAX);
    if (buf_appends(&path, "/containers/", err) < 0 ||
        engine_append_escaped(&path, req->name, err) < 0 || buf_appends(&path, "/json", err) < 0)
        goto out;
    if (engine_request_anyway(c->engine, "GET", path.data, NULL, deadline, &resp, err) < 0)
        goto out;
    if (resp.status == 404) {
        rc = DOCKER_REAP_ABSENT;
        goto out;
    }
    if (resp.status != 200) {
        engine_fail(&resp, engine_status_code(resp.status), "inspect created container", err);
        goto out;
    }
    root = cJSON_ParseWithLength(resp.body.data ? resp.body.data : "", resp.body.len);
    labels = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "Config"),
                                              "Labels");
    token = cJSON_GetObjectItemCaseSensitive(labels, LABEL_CREATE_TOKEN);
    if (!docker_backend_is_managed(labels) || !cJSON_IsString(token) ||
        strcmp(token->valuestring, req->token) != 0) {
        rc = DOCKER_REAP_OTHER;
        goto out;
    }
    id = cJSON_GetObjectItemCaseSensitive(root, "Id");
    if (!cJSON_IsString(id) || id->valuestring[0] == '\0') {
        berth_err_set(err, BERTH_UNKNOWN, "inspect created container: docker engine sent no id");
        goto out;
    }
    *id_out = strdup(id->valuestring);
    if (*id_out == NULL) {
        berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    rc = DOCKER_REAP_OURS;
out:
    cJSON_Delete(root);
    buf_release(&path);
    engine_response_release(&resp);
    return rc;
}

/* DELETE /containers/{full id}?force=true&v=true; gone already is fine. */
static int docker_backend_reap_remove(struct docker_ctx *c, const char *id, int64_t deadline,
                                      struct berth_err *err)
{
    struct engine_response resp;
    struct buf path;
    int rc = -1;

    engine_response_init(&resp);
    buf_init(&path, DOCKER_PATH_MAX);
    if (buf_appends(&path, "/containers/", err) < 0 || engine_append_escaped(&path, id, err) < 0 ||
        buf_appends(&path, "?force=true&v=true", err) < 0)
        goto out;
    if (engine_request_anyway(c->engine, "DELETE", path.data, NULL, deadline, &resp, err) < 0)
        goto out;
    if (resp.status != 204 && resp.status != 200 && resp.status != 404) {
        engine_fail(&resp, engine_status_code(resp.status), "remove created container", err);
        goto out;
    }
    rc = 0;
out:
    buf_release(&path);
    engine_response_release(&resp);
    return rc;
}

static void docker_backend_sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* POST /images/create?fromImage=&tag= and read the progress stream to its
 * end; an "error"/"errorDetail" line fails the pull with its message. */
static int docker_backend_pull(struct docker_ctx *c, const char *image, int64_t deadline,
                               struct berth_err *err)
{
    struct engine_response resp;
    struct docker_pull pull;
    struct buf name, tag, path;
    char q[DOCKER_QUOTE_MAX + 8], what[DOCKER_QUOTE_MAX + 32];
    int rc = -1;

    engine_response_init(&resp);
    buf_init(&name, DOCKER_PATH_MAX);
    buf_init(&tag, DOCKER_PATH_MAX);
    buf_init(&path, DOCKER_PATH_MAX);
    memset(&pull, 0, sizeof(pull));
    berth_err_quote(q, sizeof(q), image, DOCKER_QUOTE_MAX);
    snprintf(what, sizeof(what), "pull image '%s'", q);
    if (docker_backend_split_ref(image, &name, &tag, err) < 0)
        goto out;
    if (buf_appends(&path, "/images/create?fromImage=", err) < 0 ||
        engine_append_escaped(&path, name.data, err) < 0 || buf_appends(&path, "&tag=", err) < 0 ||
        engine_append_escaped(&path, tag.data, err) < 0)
        goto out;
    log_debug("docker.pull", "image=%s", q);
    if (engine_stream(c->engine, "POST", path.data, NULL,
                      berth_deadline_min(deadline, DOCKER_PULL_MAX_MS), NULL,
                      docker_backend_on_pull_line, &pull, &resp, err) < 0)
        goto out;
    if (resp.status < 200 || resp.status >= 300) {
        enum berth_code code = engine_status_code(resp.status);
        char text[BERTH_ERR_MSG_MAX];

        engine_error_text(&resp, text, sizeof(text));
        if (resp.status == 404 ||
            (code == BERTH_UNAVAILABLE && docker_backend_is_not_found_text(text)))
            code = BERTH_NOT_FOUND;
        berth_err_set(err, code, "%s: %s", what, text);
        goto out;
    }
    if (pull.failed) {
        berth_err_set(
            err, docker_backend_is_not_found_text(pull.msg) ? BERTH_NOT_FOUND : BERTH_UNAVAILABLE,
            "%s: %s", what, pull.msg);
        goto out;
    }
    rc = 0;
out:
    buf_release(&path);
    buf_release(&tag);
    buf_release(&name);
    engine_response_release(&resp);
    return rc;
}

/* A progress line: {"status": ...} goes by; {"errorDetail": {"message":
 * ...}, "error": ...} ends the stream as a failure. */
static int docker_backend_on_pull_line(void *arg, const char *line, size_t len)
{
    struct docker_pull *pull = arg;
    cJSON *root = cJSON_ParseWithLength(line, len);
    const cJSON *detail, *msg = NULL;
    int stop = 0;

    detail = cJSON_GetObjectItemCaseSensitive(root, "errorDetail");
    if (detail != NULL)
        msg = cJSON_GetObjectItemCaseSensitive(detail, "message");
    if (!cJSON_IsString(msg))
        msg = cJSON_GetObjectItemCaseSensitive(root, "error");
    if (cJSON_IsString(msg) || detail != NULL) {
        pull->failed = 1;
        berth_err_quote(pull->msg, sizeof(pull->msg),
                        cJSON_IsString(msg) ? msg->valuestring : "error without a message",
                        sizeof(pull->msg) - 8);
        stop = 1;
    }
    cJSON_Delete(root);
    return stop;
}

static int docker_backend_is_not_found_text(const char *msg)
{
    for (size_t i = 0; i < sizeof(docker_not_found_markers) / sizeof(docker_not_found_markers[0]);
         i++)
        if (strstr(msg, docker_not_found_markers[i]) != NULL)
            return 1;
    return 0;
}

static int docker_backend_is_state_text(const char *msg)
{
    for (size_t i = 0; i < sizeof(docker_state_markers) / sizeof(docker_state_markers[0]); i++)
        if (strstr(msg, docker_state_markers[i]) != NULL)
            return 1;
    return 0;
}

/* An image reference as the pull endpoint wants it: "reg:5000/a/b:1.2" ->
 * "reg:5000/a/b" + "1.2"; "a/b@sha256:..." -> "a/b" + "sha256:..." (a
 * digest wins over a tag); no tag -> "latest". */
static int docker_backend_split_ref(const char *ref, struct buf *name, struct buf *tag,
                                    struct berth_err *err)
{
    const char *at = strchr(ref, '@');
    const char *slash, *colon, *name_end, *tag_start;

    if (at != NULL) {
        name_end = at;
        tag_start = at + 1;
        /* "name:tag@digest": the tag is dropped. */
        slash = memrchr(ref, '/', (size_t)(at - ref));
        colon = memrchr(ref, ':', (size_t)(at - ref));
        if (colon != NULL && (slash == NULL || colon > slash))
            name_end = colon;
    } else {
        slash = strrchr(ref, '/');
        colon = strrchr(ref, ':');
        if (colon != NULL && (slash == NULL || colon > slash)) {
            name_end = colon;
            tag_start = colon + 1;
        } else {
            name_end = ref + strlen(ref);
            tag_start = "latest";
        }
    }
    if (name_end == ref || tag_start[0] == '\0')
        return berth_err_set(err, BERTH_INVALID_ARGUMENT, "image reference is malformed");
    if (buf_append(name, ref, (size_t)(name_end - ref), err) < 0 ||
        buf_appends(tag, tag_start, err) < 0)
        return -1;
    return 0;
}

/* --- lifecycle ----------------------------------------------------------------- */

/* GET /containers/{id}/json, only for a managed container: anything else
 * answers exactly as a missing one does. *root_out is the caller's. */
static int docker_backend_fetch(struct docker_ctx *c, const char *id, int64_t deadline,
                                cJSON **root_out, struct berth_err *err)
{
    struct engine_response resp;
    struct buf path;
    cJSON *root = NULL;
    const cJSON *config;
    char q[DOCKER_QUOTE_MAX + 8], what[DOCKER_QUOTE_MAX + 32];
    int rc = -1;

    engine_response_init(&resp);
    buf_init(&path, DOCKER_PATH_MAX);
    berth_err_quote(q, sizeof(q), id != NULL ? id : "", DOCKER_QUOTE_MAX);
    snprintf(what, sizeof(what), "container '%s'", q);
    if (id == NULL || id[0] == '\0') {
        berth_err_set(err, BERTH_INVALID_ARGUMENT, "container id is empty");
        goto out;
    }
    if (buf_appends(&path, "/containers/", err) < 0 || engine_append_escaped(&path, id, err) < 0 ||
        buf_appends(&path, "/json", err) < 0)
        goto out;
    if (engine_request(c->engine, "GET", path.data, NULL, deadline, &resp, err) < 0)
        goto out;
    if (resp.status != 200) {
        engine_fail(&resp, engine_status_code(resp.status), what, err);
        goto out;
    }
    root = cJSON_ParseWithLength(resp.body.data ? resp.body.data : "", resp.body.len);
    if (!cJSON_IsObject(root)) {
        berth_err_set(err, BERTH_UNKNOWN, "%s: docker engine sent malformed json", what);
        goto out;
    }
    config = cJSON_GetObjectItemCaseSensitive(root, "Config");
    if (!docker_backend_is_managed(cJSON_GetObjectItemCaseSensitive(config, "Labels"))) {
        log_debug("docker.unmanaged", "container=%s", q);
        berth_err_set(err, BERTH_NOT_FOUND, "%s: No such container: %s", what, q);
        goto out;
    }
    *root_out = root;
    root = NULL;
    rc = 0;
out:
    cJSON_Delete(root);
    buf_release(&path);
    engine_response_release(&resp);
    return rc;
}

/* Check the container is ours, then `method` /containers/{full id}{suffix}.
 * 204/304 (done already) succeed; 404 not_found, 409 failed_precondition,
 * 5xx unavailable (failed_precondition when it names a wrong state), each
 * with the Engine's message. */
static int docker_backend_action(struct docker_ctx *c, const char *id, const char *method,
                                 const char *suffix, const char *verb, int64_t deadline,
                                 struct berth_err *err)
{
    struct engine_response resp;
    struct buf path;
    cJSON *root = NULL;
    const cJSON *full;
    char q[DOCKER_QUOTE_MAX + 8], what[DOCKER_QUOTE_MAX + 64];
    int rc = -1;

    engine_response_init(&resp);
    buf_init(&path, DOCKER_PATH_MAX);
    berth_err_quote(q, sizeof(q), id != NULL ? id : "", DOCKER_QUOTE_MAX);
    snprintf(what, sizeof(what), "%s container '%s'", verb, q);
    if (docker_backend_fetch(c, id, deadline, &root, err) < 0)
        goto out;
    /* Act on the full id, not on a name that could be taken over meanwhile. */
    full = cJSON_GetObjectItemCaseSensitive(root, "Id");
    if (!cJSON_IsString(full) || full->valuestring[0] == '\0') {
        berth_err_set(err, BERTH_UNKNOWN, "%s: docker engine sent no id", what);
        goto out;
    }
    if (buf_appends(&path, "/containers/", err) < 0 ||
        engine_append_escaped(&path, full->valuestring, err) < 0 ||
        buf_appends(&path, suffix, err) < 0)
        goto out;
    if (engine_request(c->engine, method, path.data, NULL, deadline, &resp, err) < 0)
        goto out;
    if (resp.status != 204 && resp.status != 304 && resp.status != 200) {
        enum berth_code code = engine_status_code(resp.status);
        char text[BERTH_ERR_MSG_MAX];

        engine_error_text(&resp, text, sizeof(text));
        if (code == BERTH_UNAVAILABLE && docker_backend_is_state_text(text))
            code = BERTH_FAILED_PRECONDITION;
        berth_err_set(err, code, "%s: %s", what, text);
        goto out;
    }
    log_debug("docker.action", "verb=%s container=%s status=%d", verb, q, resp.status);
    rc = 0;
out:
    cJSON_Delete(root);
    buf_release(&path);
    engine_response_release(&resp);
    return rc;
}

/* stop / restart with ?t=: the request may last t seconds plus a margin,
 * but never past the caller's deadline. timeout_s < 0: the Engine's default. */
static int docker_backend_timed_action(struct docker_ctx *c, const char *id, const char *verb,
                                       int timeout_s, int64_t deadline, struct berth_err *err)
{
    struct buf suffix;
    int64_t wait_ms = (timeout_s >= 0 ? (int64_t)timeout_s : 10) * 1000 + DOCKER_STOP_MARGIN_MS;
    int rc = -1;

    buf_init(&suffix, 64);
    if (buf_printf(&suffix, err, "/%s", verb) < 0)
        goto out;
    if (timeout_s >= 0 && buf_printf(&suffix, err, "?t=%d", timeout_s) < 0)
        goto out;
    rc = docker_backend_action(c, id, "POST", suffix.data, verb,
                               berth_deadline_min(deadline, wait_ms), err);
out:
    buf_release(&suffix);
    return rc;
}

static int docker_backend_start(void *ctx, const char *id, int64_t deadline, struct berth_err *err)
{
    return docker_backend_action(ctx, id, "POST", "/start", "start", deadline, err);
}

static int docker_backend_stop(void *ctx, const char *id, int timeout_s, int64_t deadline,
                               struct berth_err *err)
{
    return docker_backend_timed_action(ctx, id, "stop", timeout_s, deadline, err);
}

static int docker_backend_kill(void *ctx, const char *id, int64_t deadline, struct berth_err *err)
{
    return docker_backend_action(ctx, id, "POST", "/kill", "kill", deadline, err);
}

static int docker_backend_pause(void *ctx, const char *id, int64_t deadline, struct berth_err *err)
{
    return docker_backend_action(ctx, id, "POST", "/pause", "pause", deadline, err);
}

static int docker_backend_unpause(void *ctx, const char *id, int64_t deadline,
                                  struct berth_err *err)
{
    return docker_backend_action(ctx, id, "POST", "/unpause", "unpause", deadline, err);
}

static int docker_backend_restart(void *ctx, const char *id, int timeout_s, int64_t deadline,
                                  struct berth_err *err)
{
    return docker_backend_timed_action(ctx, id, "restart", timeout_s, deadline, err);
}

static int docker_backend_remove(void *ctx, const char *id, int64_t deadline, struct berth_err *err)
{
    if (docker_backend_action(ctx, id, "DELETE", "?force=true&v=true", "remove", deadline, err) ==
        0)
        return 0;
    /* Another removal of it is under way (one whose caller gave up, say):
     * the container goes either way, as asked. */
    if (err->code == BERTH_FAILED_PRECONDITION && strstr(err->msg, "already in progress") != NULL) {
        berth_err_clear(err);
        return 0;
    }
    return -1;
}

/* --- inspect and list ---------------------------------------------------------- */

static int docker_backend_inspect(void *ctx, const char *id, int64_t deadline,
                                  struct backend_container *out, struct berth_err *err)
{
    cJSON *root = NULL;
    int rc = -1;

    if (docker_backend_fetch(ctx, id, deadline, &root, err) < 0)
        goto out;
    rc = docker_backend_from_inspect(root, out, err);
out:
    cJSON_Delete(root);
    return rc;
}

static int docker_backend_list(void *ctx, const char *label, int64_t deadline,
                               struct backend_container_list *out, struct berth_err *err)
{
    struct docker_ctx *c = ctx;
    struct engine_response resp;
    struct backend_container_list l = {NULL, 0};
    struct buf path;
    cJSON *filters = NULL, *labels, *root = NULL;
    const cJSON *item;
    char *filters_json = NULL;
    int bad, rc = -1;

    engine_response_init(&resp);
    buf_init(&path, DOCKER_PATH_MAX);
    filters = cJSON_CreateObject();
    labels = cJSON_AddArrayToObject(filters, "label");
    bad = labels == NULL ||
          !cJSON_AddItemToArray(labels, cJSON_CreateString(LABEL_MANAGED "=" LABEL_MANAGED_VALUE));
    if (!bad && label != NULL && label[0] != '\0')
        bad = !cJSON_AddItemToArray(labels, cJSON_CreateString(label));
    if (!bad)
        filters_json = cJSON_PrintUnformatted(filters);
    if (filters_json == NULL) {
        berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    if (buf_appends(&path, "/containers/json?all=true&filters=", err) < 0 ||
        engine_append_escaped(&path, filters_json, err) < 0)
        goto out;
    if (engine_request(c->engine, "GET", path.data, NULL, deadline, &resp, err) < 0)
        goto out;
    if (resp.status != 200) {
        engine_fail(&resp, engine_status_code(resp.status), "list containers", err);
        goto out;
    }
    root = cJSON_ParseWithLength(resp.body.data ? resp.body.data : "", resp.body.len);
    if (!cJSON_IsArray(root)) {
        berth_err_set(err, BERTH_UNKNOWN, "list containers: docker engine sent malformed json");
        goto out;
    }
    l.items = calloc((size_t)cJSON_GetArraySize(root) + 1, sizeof(*l.items));
    if (l.items == NULL) {
        berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    cJSON_ArrayForEach(item, root)
    {
        /* The filter already asks for our label; never trust one answer. */
        if (!docker_backend_is_managed(cJSON_GetObjectItemCaseSensitive(item, "Labels")))
            continue;
        if (docker_backend_from_list_item(item, &l.items[l.n], err) < 0)
            goto out;
        l.n++;
    }
    *out = l;
    l.items = NULL;
    l.n = 0;
    rc = 0;
out:
    backend_container_list_release(&l);
    cJSON_Delete(root);
    cJSON_free(filters_json);
    cJSON_Delete(filters);
    buf_release(&path);
    engine_response_release(&resp);
    return rc;
}

/* --- reading Engine JSON --------------------------------------------------------- */

static int docker_backend_is_managed(const cJSON *labels)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(labels, LABEL_MANAGED);

    return cJSON_IsString(v) && strcmp(v->valuestring, LABEL_MANAGED_VALUE) == 0;
}

/* strdup of obj[key] when it is a string, else of "". NULL: out of memory. */
static char *docker_backend_dup(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

    return strdup(cJSON_IsString(v) ? v->valuestring : "");
}

/* The state a field of the Engine's JSON names: the Engine's words are the
 * names of enum backend_state. */
static enum backend_state docker_backend_state(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

    return backend_state_parse(cJSON_IsString(v) ? v->valuestring : NULL);
}

/* Fill *out from GET /containers/{id}/json; *out is only set on success. */
static int docker_backend_from_inspect(const cJSON *root, struct backend_container *out,
                                       struct berth_err *err)
{
    struct backend_container c;
    const cJSON *state, *config, *settings, *host, *v;
    const char *name;
    size_t cap = 0;
    int64_t ms = 0;

    memset(&c, 0, sizeof(c));
    state = cJSON_GetObjectItemCaseSensitive(root, "State");
    config = cJSON_GetObjectItemCaseSensitive(root, "Config");
    settings = cJSON_GetObjectItemCaseSensitive(root, "NetworkSettings");
    host = cJSON_GetObjectItemCaseSensitive(root, "HostConfig");

    v = cJSON_GetObjectItemCaseSensitive(root, "Name");
    name = cJSON_IsString(v) ? v->valuestring : "";
    if (name[0] == '/')
        name++;
    c.id = docker_backend_dup(root, "Id");
    c.name = strdup(name);
    c.image = docker_backend_dup(config, "Image");
    c.state = docker_backend_state(state, "Status");
    if (c.id == NULL || c.name == NULL || c.image == NULL)
        goto oom;
    c.oom_killed = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(state, "OOMKilled"));
    v = cJSON_GetObjectItemCaseSensitive(state, "ExitCode");
    c.exit_code = cJSON_IsNumber(v) ? v->valueint : 0;
    v = cJSON_GetObjectItemCaseSensitive(root, "Created");
    if (cJSON_IsString(v) && docker_backend_parse_time(v->valuestring, &ms) == 0)
        c.created_unix = ms / 1000;
    v = cJSON_GetObjectItemCaseSensitive(state, "StartedAt");
    if (cJSON_IsString(v) && docker_backend_parse_time(v->valuestring, &ms) == 0)
        c.started_unix_ms = ms;
    v = cJSON_GetObjectItemCaseSensitive(state, "FinishedAt");
    if (cJSON_IsString(v) && docker_backend_parse_time(v->valuestring, &ms) == 0)
        c.finished_unix_ms = ms;
    if (docker_backend_take_network(settings, &c) < 0)
        goto oom;
    /* Real host ports while running; the requested bindings otherwise. */
    if (docker_backend_take_port_map(cJSON_GetObjectItemCaseSensitive(settings, "Ports"), &c,
                                     &cap) < 0)
        goto oom;
    if (c.n_ports == 0 && docker_backend_take_port_map(
                              cJSON_GetObjectItemCaseSensitive(host, "PortBindings"), &c, &cap) < 0)
        goto oom;
    if (docker_backend_take_labels(cJSON_GetObjectItemCaseSensitive(config, "Labels"), &c) < 0)
        goto oom;
    *out = c;
    return 0;
oom:
    backend_container_release(&c);
    return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
}

/* Fill *out from one entry of GET /containers/json; set only on success. */
static int docker_backend_from_list_item(const cJSON *item, struct backend_container *out,
                                         struct berth_err *err)
{
    struct backend_container c;
    const cJSON *names, *ports, *port, *v;
    const char *name = "";
    size_t cap = 0;

    memset(&c, 0, sizeof(c));
    names = cJSON_GetObjectItemCaseSensitive(item, "Names");
    v = cJSON_GetArrayItem(names, 0);
    if (cJSON_IsString(v))
        name = v->valuestring[0] == '/' ? v->valuestring + 1 : v->valuestring;
    c.id = docker_backend_dup(item, "Id");
    c.name = strdup(name);
    c.image = docker_backend_dup(item, "Image");
    c.state = docker_backend_state(item, "State");
    if (c.id == NULL || c.name == NULL || c.image == NULL)
        goto oom;
    v = cJSON_GetObjectItemCaseSensitive(item, "Created");
    if (cJSON_IsNumber(v))
        c.created_unix = (int64_t)v->valuedouble;
    if (docker_backend_take_network(cJSON_GetObjectItemCaseSensitive(item, "NetworkSettings"), &c) <
        0)
        goto oom;
    ports = cJSON_GetObjectItemCaseSensitive(item, "Ports");
    cJSON_ArrayForEach(port, ports)
    {
        const cJSON *priv = cJSON_GetObjectItemCaseSensitive(port, "PrivatePort");
        const cJSON *pub = cJSON_GetObjectItemCaseSensitive(port, "PublicPort");
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(port, "Type");

        /* Exposed but not published: no host side to report. */
        if (!cJSON_IsNumber(priv) || !cJSON_IsNumber(pub) || !cJSON_IsString(type))
            continue;
        if (docker_backend_add_port(&c, &cap, priv->valueint, pub->valueint, type->valuestring) < 0)
            goto oom;
    }
    if (docker_backend_take_labels(cJSON_GetObjectItemCaseSensitive(item, "Labels"), &c) < 0)
        goto oom;
    *out = c;
    return 0;
oom:
    backend_container_release(&c);
    return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
}

/* All labels into out->labels. -1: out of memory (out keeps what it got,
 * for backend_container_release). */
static int docker_backend_take_labels(const cJSON *labels, struct backend_container *out)
{
    const cJSON *l;
    size_t n = 0;

    cJSON_ArrayForEach(l, labels)
    {
        n++;
    }
    out->labels = calloc(n + 1, sizeof(*out->labels));
    if (out->labels == NULL)
        return -1;
    cJSON_ArrayForEach(l, labels)
    {
        struct backend_kv *kv = &out->labels[out->n_labels];

        if (l->string == NULL)
            continue;
        kv->key = strdup(l->string);
        kv->value = strdup(cJSON_IsString(l) ? l->valuestring : "");
        out->n_labels++;
        if (kv->key == NULL || kv->value == NULL)
            return -1;
    }
    return 0;
}

/* IP, MAC and gateway: the first network with an address (the default
 * bridge also fills the top-level fields, read last). */
static int docker_backend_take_network(const cJSON *settings, struct backend_container *out)
{
    const cJSON *networks = cJSON_GetObjectItemCaseSensitive(settings, "Networks");
    const cJSON *net, *chosen = settings;

    cJSON_ArrayForEach(net, networks)
    {
        const cJSON *ip = cJSON_GetObjectItemCaseSensitive(net, "IPAddress");

        if (cJSON_IsString(ip) && ip->valuestring[0] != '\0') {
            chosen = net;
            break;
        }
    }
    out->ip_address = docker_backend_dup(chosen, "IPAddress");
    out->mac_address = docker_backend_dup(chosen, "MacAddress");
    out->gateway = docker_backend_dup(chosen, "Gateway");
    if (out->ip_address == NULL || out->mac_address == NULL || out->gateway == NULL)
        return -1;
    return 0;
}

/* {"80/tcp": [{"HostIp": "...", "HostPort": "49153"}], "81/tcp": null} ->
 * ports (one per container port and host port; IPv4 and IPv6 bindings of
 * one port count once). -1: out of memory. */
static int docker_backend_take_port_map(const cJSON *map, struct backend_container *out,
                                        size_t *cap)
{
    const cJSON *entry, *binding;

    cJSON_ArrayForEach(entry, map)
    {
        const char *proto;
        int cport;

        if (entry->string == NULL ||
            docker_backend_parse_port_key(entry->string, &cport, &proto) < 0)
            continue;
        cJSON_ArrayForEach(binding, entry)
        {
            const cJSON *hp = cJSON_GetObjectItemCaseSensitive(binding, "HostPort");
            long hport = 0;

            if (cJSON_IsString(hp) && hp->valuestring[0] != '\0' &&
                docker_backend_parse_int(hp->valuestring, 65535, &hport) < 0)
                continue;
            if (docker_backend_add_port(out, cap, cport, (int)hport, proto) < 0)
                return -1;
        }
    }
    return 0;
}

/* Append a port unless it is already there. -1: out of memory. */
static int docker_backend_add_port(struct backend_container *out, size_t *cap, int cport, int hport,
                                   const char *proto)
{
    struct backend_port *p;

    if (strcmp(proto, "tcp") != 0 && strcmp(proto, "udp") != 0)
        return 0; /* sctp: not something berthd creates */
    for (size_t i = 0; i < out->n_ports; i++) {
        p = &out->ports[i];
        if (p->container_port == cport && p->host_port == hport && strcmp(p->protocol, proto) == 0)
            return 0;
    }
    if (out->n_ports == *cap) {
        size_t ncap = *cap ? *cap * 2 : 4;

        p = realloc(out->ports, ncap * sizeof(*p));
        if (p == NULL)
            return -1;
        out->ports = p;
        *cap = ncap;
    }
    p = &out->ports[out->n_ports++];
    memset(p, 0, sizeof(*p));
    p->container_port = cport;
    p->host_port = hport;
    memcpy(p->protocol, proto, strlen(proto) + 1); /* "tcp"/"udp" fit */
    return 0;
}

/* "80/tcp" -> 80, "tcp". */
static int docker_backend_parse_port_key(const char *key, int *port, const char **proto)
{
    const char *slash = strchr(key, '/');
    char digits[8];
    size_t n;
    long v;

    if (slash == NULL)
        return -1;
    n = (size_t)(slash - key);
    if (n == 0 || n >= sizeof(digits))
        return -1;
    memcpy(digits, key, n);
    digits[n] = '\0';
    if (docker_backend_parse_int(digits, 65535, &v) < 0 || v == 0)
        return -1;
    *port = (int)v;
    *proto = slash + 1;
    return 0;
}

/* Decimal digits only, 0..max. */
static int docker_backend_parse_int(const char *s, long max, long *out)
{
    long v = 0;

    if (*s == '\0')
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        v = v * 10 + (*s - '0');
        if (v > max)
            return -1;
    }
    *out = v;
    return 0;
}

/* An Engine time (RFC 3339) as unix ms; Go's zero time (year 1) and
 * anything else before 1970 -> 0, "not set". */
static int docker_backend_parse_time(const char *s, int64_t *unix_ms)
{
    int64_t ms;

    if (rfc3339_parse_ms(s, &ms) < 0)
        return -1;
    *unix_ms = ms > 0 ? ms : 0;
    return 0;
}
