/* The Docker backend's create (see docker_internal.h): the container spec
 * checked and turned into a create body with cJSON, the image pulled as the
 * spec's pull policy says (pull.c), and a create whose answer was lost followed up
 * by its create token, so a container it made anyway is removed. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <uuid/uuid.h>

#include "berth/buf.h"
#include "berth/clock.h"
#include "berth/labels.h"
#include "berth/log.h"
#include "docker_internal.h"
#include "registry_auth.h"

/* Bodies are ours; the cap only guards against bugs. */
#define DOCKER_BODY_MAX ((size_t)4 << 20)

/* Following up such a create: the backend's own budget (the caller's
 * deadline has usually passed by then) and the interval between looks. */
#define DOCKER_REAP_BUDGET_MS 5000
#define DOCKER_REAP_POLL_MS 50

/* One create call: what is sent, and the token its container carries. */
struct docker_create {
    const char *path;                /* /containers/create?name=... */
    const char *body;                /* the create body, labels included */
    const char *image;               /* for messages */
    const char *name;                /* NULL or "": the Engine picks one */
    const char *network;             /* NULL: the Engine's default; else made before each try */
    const struct backend_spec *spec; /* the body of a try on a network is made then */
    char token[37];                  /* the LABEL_CREATE_TOKEN value */
};

/* What the reaper found under the container's name. */
enum docker_reap_find {
    DOCKER_REAP_ERROR = -1, /* err says why */
    DOCKER_REAP_ABSENT,     /* nothing (yet) */
    DOCKER_REAP_OURS,       /* made by this call */
    DOCKER_REAP_OTHER,      /* someone else's: this call made nothing */
};

static int docker_create_validate_spec(const struct backend_spec *spec, struct berth_err *err);
static int docker_create_check_registry(const struct docker_ctx *c, const char *image,
                                        struct berth_err *err);
static int docker_create_body(const struct docker_ctx *c, const struct backend_spec *spec,
                              const char *network, const char *token, char **json_out,
                              struct berth_err *err);
static int docker_create_add_network(cJSON *root, cJSON *host, const struct backend_spec *spec,
                                     const char *network);
static int docker_create_add_strings(cJSON *obj, const char *key, const char *const *v, size_t n);
static int docker_create_add_confinement(const struct docker_ctx *c, cJSON *host);
static int docker_create_add_labels(cJSON *config, const struct backend_spec *spec,
                                    const char *instance, const char *token);
static int docker_create_add_ports(const struct docker_ctx *c, cJSON *config, cJSON *host,
                                   const struct backend_spec *spec, struct berth_err *err);
static int docker_create_add_int64(cJSON *obj, const char *key, int64_t v);
static int docker_create_try(struct docker_ctx *c, const struct docker_create *req,
                             int64_t deadline, char **id_out, int *missing_image,
                             struct berth_err *err);
static void docker_create_reap(struct docker_ctx *c, const struct docker_create *req);
static int docker_create_reap_find(struct docker_ctx *c, const struct docker_create *req,
                                   int64_t deadline, char **id_out, struct berth_err *err);
static int docker_create_reap_remove(struct docker_ctx *c, const char *id, int64_t deadline,
                                     struct berth_err *err);
static void docker_create_sleep_ms(int64_t ms);
static int docker_create_add_health(cJSON *config, const struct backend_health_check *h);
static int docker_create_add_mounts(cJSON *host, const struct backend_spec *spec);
static int docker_create_volumes(struct docker_ctx *c, const struct backend_spec *spec,
                                 int64_t deadline, char *made, struct berth_err *err);
static void docker_create_unmake_volumes(struct docker_ctx *c, const struct backend_spec *spec,
                                         const char *made);

/* Restart policies the Engine knows; anything else is invalid_argument. */
static const char *const docker_restart_policies[] = {"no", "always", "unless-stopped",
                                                      "on-failure"};

/* --- create ------------------------------------------------------------------- */

int docker_create_container(void *ctx, const struct backend_spec *spec, int64_t deadline,
                            char **id_out, struct berth_err *err)
{
    struct docker_ctx *c = ctx;
    struct docker_create req;
    struct buf path, net;
    char *body = NULL, *made_volumes = NULL;
    uuid_t uu;
    int missing = 0, rc = -1;

    buf_init(&path, DOCKER_PATH_MAX);
    buf_init(&net, DOCKER_PATH_MAX);
    memset(&req, 0, sizeof(req));
    uuid_generate_random(uu);
    uuid_unparse_lower(uu, req.token);
    if (docker_create_validate_spec(spec, err) < 0 ||
        docker_create_check_registry(c, spec->image, err) < 0)
        goto out;
    if (spec->network != NULL && spec->network[0] != '\0') {
        if (docker_network_full_name(c, spec->network, &net, err) < 0)
            goto out;
        req.network = net.data;
    }
    /* On a network, each try makes its body with the network's id. */
    if (req.network == NULL && docker_create_body(c, spec, NULL, req.token, &body, err) < 0)
        goto out;
    req.spec = spec;
    /* The volumes first: a mount of a missing name would make one without
     * berthd's labels. Those made here go again when the create fails. */
    made_volumes = calloc(spec->n_volumes + 1, 1);
    if (made_volumes == NULL) {
        berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    if (docker_create_volumes(c, spec, deadline, made_volumes, err) < 0)
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
    if (spec->pull_policy == BACKEND_PULL_ALWAYS) {
        if (docker_pull_image(c, spec->image, deadline, err) < 0)
            goto out;
        missing = 1; /* pulled: a create that still misses it is not_found below */
    } else if (spec->pull_policy == BACKEND_PULL_REFRESH) {
        struct berth_err pull_err;

        berth_err_clear(&pull_err);
        if (docker_pull_image(c, spec->image, deadline, &pull_err) == 0) {
            missing = 1;
        } else {
            /* Not refreshed: the image the Engine has, if it has one, is used. */
            char q[DOCKER_QUOTE_MAX + 8];

            if (pull_err.code == BERTH_DEADLINE_EXCEEDED) {
                *err = pull_err;
                goto out;
            }
            if (docker_create_try(c, &req, deadline, id_out, &missing, err) < 0)
                goto out;
            if (missing) {
                *err = pull_err;
                goto out;
            }
            berth_err_quote(q, sizeof(q), spec->image, DOCKER_QUOTE_MAX);
            log_warn("docker.pull_skipped",
                     "image=%s reason=\"pull failed, the local image is used\" code=%s", q,
                     berth_code_name(pull_err.code));
            rc = 0;
            goto out;
        }
    } else {
        if (docker_create_try(c, &req, deadline, id_out, &missing, err) < 0)
            goto out;
        if (missing && spec->pull_policy == BACKEND_PULL_NEVER) {
            char q[DOCKER_QUOTE_MAX + 8];

            berth_err_quote(q, sizeof(q), spec->image, DOCKER_QUOTE_MAX);
            berth_err_set(err, BERTH_FAILED_PRECONDITION,
                          "image '%s' is not on this host and the pull policy is NEVER", q);
            goto out;
        }
    }
    if (missing) {
        /* The Engine lacks the image: pull it, then try once more. */
        if (spec->pull_policy != BACKEND_PULL_ALWAYS && spec->pull_policy != BACKEND_PULL_REFRESH &&
            docker_pull_image(c, spec->image, deadline, err) < 0)
            goto out;
        missing = 0;
        if (docker_create_try(c, &req, deadline, id_out, &missing, err) < 0)
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
    if (rc < 0 && made_volumes != NULL)
        docker_create_unmake_volumes(c, spec, made_volumes);
    free(made_volumes);
    free(body);
    buf_release(&net);
    buf_release(&path);
    return rc;
}

/* Ensure every volume of spec; made[i] = 1 for each one made here. */
static int docker_create_volumes(struct docker_ctx *c, const struct backend_spec *spec,
                                 int64_t deadline, char *made, struct berth_err *err)
{
    for (size_t i = 0; i < spec->n_volumes; i++) {
        int m = 0;

        if (docker_volume_ensure(c, spec, &spec->volumes[i], deadline, &m, err) < 0)
            return -1;
        made[i] = (char)m;
    }
    return 0;
}

/* A failed create removes the volumes it made (on its own budget, as the
 * caller's deadline may be what failed it). Failures are logged. */
static void docker_create_unmake_volumes(struct docker_ctx *c, const struct backend_spec *spec,
                                         const char *made)
{
    int64_t budget = berth_now_ms() + DOCKER_REAP_BUDGET_MS;

    for (size_t i = 0; i < spec->n_volumes; i++) {
        struct berth_err e;

        if (!made[i])
            continue;
        berth_err_clear(&e);
        if (docker_volume_remove(c, spec->volumes[i].name, spec->volume_labels,
                                 spec->n_volume_labels, budget, &e) < 0) {
            struct log_quoted lq;
            char q[DOCKER_QUOTE_MAX + 8];

            berth_err_quote(q, sizeof(q), spec->volumes[i].name, DOCKER_QUOTE_MAX);
            log_warn("docker.volume_rollback", "volume=%s code=%s error=%s", q,
                     berth_code_name(e.code), log_quote(&lq, e.msg));
        }
    }
}

static int docker_create_validate_spec(const struct backend_spec *spec, struct berth_err *err)
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
    if (spec->restart_max_retries < 0 ||
        (spec->restart_max_retries > 0 &&
         (spec->restart_policy == NULL || strcmp(spec->restart_policy, "on-failure") != 0)))
        return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                             "restart_max_retries must be 0, or positive with on-failure");
    if (spec->health != NULL) {
        const struct backend_health_check *h = spec->health;

        if (h->disable && h->n_test > 0)
            return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                                 "health: a disabled check has no command");
        for (size_t i = 0; i < h->n_test; i++)
            if (h->test[i] == NULL)
                return berth_err_set(err, BERTH_INVALID_ARGUMENT, "health.test[%zu] is missing", i);
        if (h->interval_ns < 0 || h->timeout_ns < 0 || h->start_period_ns < 0 || h->retries < 0)
            return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                                 "health: times and retries must not be negative");
    }
    for (size_t i = 0; i < spec->n_volumes; i++) {
        const struct backend_volume *v = &spec->volumes[i];

        if (v->name == NULL || v->name[0] == '\0')
            return berth_err_set(err, BERTH_INVALID_ARGUMENT, "volumes[%zu].name is empty", i);
        if (v->target == NULL || v->target[0] != '/' || v->target[1] == '\0')
            return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                                 "volumes[%zu].target must be an absolute path other than /", i);
    }
    for (size_t i = 0; i < spec->n_volume_labels; i++)
        if (spec->volume_labels[i].key == NULL || spec->volume_labels[i].key[0] == '\0' ||
            spec->volume_labels[i].value == NULL)
            return berth_err_set(err, BERTH_INVALID_ARGUMENT, "volume_labels[%zu] is incomplete",
                                 i);
    return 0;
}

/* With --allowed-registries, the image's registry must be one of them
 * (compared without case, as host names are): permission_denied otherwise,
 * before the Engine is asked for anything. */
static int docker_create_check_registry(const struct docker_ctx *c, const char *image,
                                        struct berth_err *err)
{
    struct image_ref ref;
    char q[DOCKER_QUOTE_MAX + 8];

    if (c->n_allowed_registries == 0)
        return 0;
    if (image_ref_parse(image, "image", &ref, err) < 0)
        return -1;
    for (size_t i = 0; i < c->n_allowed_registries; i++)
        if (strcasecmp(ref.host, c->allowed_registries[i]) == 0)
            return 0;
    berth_err_quote(q, sizeof(q), image, DOCKER_QUOTE_MAX);
    return berth_err_set(err, BERTH_PERMISSION_DENIED,
                         "image '%s': registry '%s' is not one of --allowed-registries", q,
                         ref.host);
}

/* The create body. Only the fields below are ever sent: nothing that grants
 * host privileges (privileged mode, host namespaces, added capabilities,
 * devices, bind mounts, sysctls) can come from a spec (its volumes are
 * mounts of type "volume" by name, never a host path), and every container
 * is confined the same way (docker_create_add_confinement). `token` becomes
 * the create token label. *json_out is malloc'd, the caller's. */
static int docker_create_body(const struct docker_ctx *c, const struct backend_spec *spec,
                              const char *network, const char *token, char **json_out,
                              struct berth_err *err)
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
        bad |= docker_create_add_strings(root, "Cmd", spec->cmd, spec->n_cmd) < 0;
    bad |= docker_create_add_strings(root, "Env", spec->env, spec->n_env) < 0;
    if (spec->working_dir != NULL && spec->working_dir[0] != '\0')
        bad |= cJSON_AddStringToObject(root, "WorkingDir", spec->working_dir) == NULL;
    if (spec->health != NULL)
        bad |= docker_create_add_health(root, spec->health) < 0;
    bad |= docker_create_add_labels(root, spec, c->instance_id, token) < 0;
    if (bad)
        goto oom;
    if (docker_create_add_ports(c, root, host, spec, err) < 0)
        goto out;
    if (spec->nano_cpus > 0)
        bad |= docker_create_add_int64(host, "NanoCpus", spec->nano_cpus) < 0;
    if (spec->memory_bytes > 0)
        bad |= docker_create_add_int64(host, "Memory", spec->memory_bytes) < 0;
    else if (c->default_memory_bytes > 0)
        bad |= docker_create_add_int64(host, "Memory", c->default_memory_bytes) < 0;
    if (c->pids_limit > 0)
        bad |= docker_create_add_int64(host, "PidsLimit", c->pids_limit) < 0;
    bad |= docker_create_add_confinement(c, host) < 0;
    if (network != NULL)
        bad |= docker_create_add_network(root, host, spec, network) < 0;
    if (spec->restart_policy != NULL && spec->restart_policy[0] != '\0') {
        policy = cJSON_AddObjectToObject(host, "RestartPolicy");
        bad |=
            policy == NULL || cJSON_AddStringToObject(policy, "Name", spec->restart_policy) == NULL;
        if (!bad && spec->restart_max_retries > 0)
            bad |=
                docker_create_add_int64(policy, "MaximumRetryCount", spec->restart_max_retries) < 0;
    }
    if (spec->n_volumes > 0)
        bad |= docker_create_add_mounts(host, spec) < 0;
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

/* Config.Healthcheck: {"Test": ["CMD", ...]} with the times in ns, or
 * {"Test": ["NONE"]} for a disabled one. Fields left 0 are left out, so
 * the Engine takes the image's (or its defaults). -1 when out of memory. */
static int docker_create_add_health(cJSON *config, const struct backend_health_check *h)
{
    cJSON *hc = cJSON_AddObjectToObject(config, "Healthcheck"), *test;

    if (hc == NULL)
        return -1;
    if (h->disable || h->n_test > 0) {
        test = cJSON_AddArrayToObject(hc, "Test");
        if (test == NULL ||
            !cJSON_AddItemToArray(test, cJSON_CreateString(h->disable ? "NONE" : "CMD")))
            return -1;
        for (size_t i = 0; !h->disable && i < h->n_test; i++)
            if (!cJSON_AddItemToArray(test, cJSON_CreateString(h->test[i])))
                return -1;
        if (h->disable)
            return 0;
    }
    if ((h->interval_ns > 0 && docker_create_add_int64(hc, "Interval", h->interval_ns) < 0) ||
        (h->timeout_ns > 0 && docker_create_add_int64(hc, "Timeout", h->timeout_ns) < 0) ||
        (h->start_period_ns > 0 &&
         docker_create_add_int64(hc, "StartPeriod", h->start_period_ns) < 0) ||
        (h->retries > 0 && docker_create_add_int64(hc, "Retries", h->retries) < 0))
        return -1;
    return 0;
}

/* HostConfig.Mounts: each volume by name (Type "volume": never a host
 * path). -1 when out of memory. */
static int docker_create_add_mounts(cJSON *host, const struct backend_spec *spec)
{
    cJSON *mounts = cJSON_AddArrayToObject(host, "Mounts");

    if (mounts == NULL)
        return -1;
    for (size_t i = 0; i < spec->n_volumes; i++) {
        const struct backend_volume *v = &spec->volumes[i];
        cJSON *m = cJSON_CreateObject();

        if (m == NULL || !cJSON_AddItemToArray(mounts, m)) {
            cJSON_Delete(m);
            return -1;
        }
        if (cJSON_AddStringToObject(m, "Type", "volume") == NULL ||
            cJSON_AddStringToObject(m, "Source", v->name) == NULL ||
            cJSON_AddStringToObject(m, "Target", v->target) == NULL ||
            cJSON_AddBoolToObject(m, "ReadOnly", v->read_only ? 1 : 0) == NULL)
            return -1;
    }
    return 0;
}

/* What every container gets, whatever its spec: no new privileges,
 * c->cap_drop dropped, an init process, a private cgroup namespace and
 * rotated json-file logs. -1 when out of memory. */
static int docker_create_add_confinement(const struct docker_ctx *c, cJSON *host)
{
    static const char *const security[] = {"no-new-privileges"};
    cJSON *log, *log_cfg;
    char files[32];

    snprintf(files, sizeof(files), "%lld", (long long)c->log_max_files);
    if (docker_create_add_strings(host, "SecurityOpt", security, 1) < 0 ||
        docker_create_add_strings(host, "CapDrop", (const char *const *)c->cap_drop,
                                  c->n_cap_drop) < 0 ||
        cJSON_AddTrueToObject(host, "Init") == NULL ||
        cJSON_AddStringToObject(host, "CgroupnsMode", "private") == NULL)
        return -1;
    log = cJSON_AddObjectToObject(host, "LogConfig");
    if (log == NULL || cJSON_AddStringToObject(log, "Type", "json-file") == NULL)
        return -1;
    log_cfg = cJSON_AddObjectToObject(log, "Config");
    if (log_cfg == NULL || cJSON_AddStringToObject(log_cfg, "max-size", c->log_max_size) == NULL ||
        cJSON_AddStringToObject(log_cfg, "max-file", files) == NULL)
        return -1;
    return 0;
}

/* HostConfig.NetworkMode and NetworkingConfig.EndpointsConfig: the
 * container joins only `network` (an id: names need not be unique), where
 * the others reach it by its aliases. -1 when out of memory. */
static int docker_create_add_network(cJSON *root, cJSON *host, const struct backend_spec *spec,
                                     const char *network)
{
    cJSON *nc, *eps, *ep;

    if (cJSON_AddStringToObject(host, "NetworkMode", network) == NULL)
        return -1;
    nc = cJSON_AddObjectToObject(root, "NetworkingConfig");
    eps = nc ? cJSON_AddObjectToObject(nc, "EndpointsConfig") : NULL;
    ep = eps ? cJSON_AddObjectToObject(eps, network) : NULL;
    if (ep == NULL)
        return -1;
    if (spec->n_aliases > 0 &&
        docker_create_add_strings(ep, "Aliases", spec->aliases, spec->n_aliases) < 0)
        return -1;
    return 0;
}

/* obj[key] = [v...]. -1 when out of memory. */
static int docker_create_add_strings(cJSON *obj, const char *key, const char *const *v, size_t n)
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

/* Labels: the spec's (a later duplicate wins), then berth.managed=true,
 * this berthd's berth.instance and this call's create token, which a spec
 * cannot override. */
static int docker_create_add_labels(cJSON *config, const struct backend_spec *spec,
                                    const char *instance, const char *token)
{
    cJSON *labels = cJSON_AddObjectToObject(config, "Labels");

    if (labels == NULL)
        return -1;
    for (size_t i = 0; i < spec->n_labels; i++) {
        const char *k = spec->labels[i].key;

        if (strcmp(k, LABEL_MANAGED) == 0 || strcmp(k, LABEL_CREATE_TOKEN) == 0 ||
            strcmp(k, LABEL_INSTANCE) == 0)
            continue;
        cJSON_DeleteItemFromObjectCaseSensitive(labels, k);
        if (cJSON_AddStringToObject(labels, k, spec->labels[i].value) == NULL)
            return -1;
    }
    if (cJSON_AddStringToObject(labels, LABEL_MANAGED, LABEL_MANAGED_VALUE) == NULL ||
        cJSON_AddStringToObject(labels, LABEL_INSTANCE, instance) == NULL ||
        cJSON_AddStringToObject(labels, LABEL_CREATE_TOKEN, token) == NULL)
        return -1;
    return 0;
}

/* ExposedPorts {"80/tcp": {}} and HostConfig.PortBindings {"80/tcp":
 * [{"HostIp": publish_address, "HostPort": "" or "8080"}]}; several spec
 * entries for one container port add bindings to the same list. */
static int docker_create_add_ports(const struct docker_ctx *c, cJSON *config, cJSON *host,
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
static int docker_create_add_int64(cJSON *obj, const char *key, int64_t v)
{
    char num[32];

    snprintf(num, sizeof(num), "%lld", (long long)v);
    return cJSON_AddRawToObject(obj, key, num) == NULL ? -1 : 0;
}

/* One POST /containers/create. A missing image sets *missing_image and
 * returns 0 with no id; any other failure is mapped into err. When the
 * request got no answer, what the Engine may have made of it is reaped
 * before returning. */
static int docker_create_try(struct docker_ctx *c, const struct docker_create *req,
                             int64_t deadline, char **id_out, int *missing_image,
                             struct berth_err *err)
{
    struct engine_response resp;
    struct buf net_id;
    cJSON *root = NULL;
    const cJSON *id;
    char q[DOCKER_QUOTE_MAX + 8];
    char *copy, *net_body = NULL;
    const char *body = req->body;
    int sent, rc = -1;

    engine_response_init(&resp);
    buf_init(&net_id, DOCKER_PATH_MAX);
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
    if (req->network != NULL) {
        /* The network is made (or found) and joined with no removal of it
         * in between. */
        pthread_mutex_lock(&c->net_lock);
        if (docker_network_ensure(c, req->network, &net_id, deadline, err) < 0 ||
            docker_create_body(c, req->spec, net_id.data, req->token, &net_body, err) < 0) {
            pthread_mutex_unlock(&c->net_lock);
            goto out;
        }
        body = net_body;
    }
    sent = engine_request(c->engine, "POST", req->path, body, deadline, &resp, err);
    if (req->network != NULL)
        pthread_mutex_unlock(&c->net_lock);
    if (sent < 0) {
        /* No answer: the Engine may have the request and make the container
         * yet. A definite answer (below) never leaves anything behind. */
        if (err->code == BERTH_DEADLINE_EXCEEDED || err->code == BERTH_UNAVAILABLE)
            docker_create_reap(c, req);
        goto out;
    }
    if (resp.status == 404) {
        char text[BERTH_ERR_MSG_MAX];

        /* The image, or (made just before, under the lock) the network,
         * which only someone else can have removed meanwhile. */
        engine_error_text(&resp, text, sizeof(text));
        if (req->network != NULL && strstr(text, "network") != NULL) {
            berth_err_set(err, BERTH_UNAVAILABLE, "create container: %s", text);
            goto out;
        }
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
    free(net_body);
    buf_release(&net_id);
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
static void docker_create_reap(struct docker_ctx *c, const struct docker_create *req)
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
        found = docker_create_reap_find(c, req, budget, &id, &err);
        if (found != DOCKER_REAP_ABSENT || berth_deadline_left_ms(budget) <= DOCKER_REAP_POLL_MS)
            break;
        docker_create_sleep_ms(DOCKER_REAP_POLL_MS);
    }
    if (found == DOCKER_REAP_ABSENT)
        log_warn("docker.reap_gave_up", "name=%s token=%s waited_ms=%d", q, req->token,
                 DOCKER_REAP_BUDGET_MS);
    else if (found == DOCKER_REAP_OTHER)
        log_debug("docker.reap_not_ours", "name=%s token=%s", q, req->token);
    else if (found == DOCKER_REAP_OURS && docker_create_reap_remove(c, id, budget, &err) == 0)
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
static int docker_create_reap_find(struct docker_ctx *c, const struct docker_create *req,
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
    if (!docker_json_is_managed(labels) || !cJSON_IsString(token) ||
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
static int docker_create_reap_remove(struct docker_ctx *c, const char *id, int64_t deadline,
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

static void docker_create_sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}
