/* The Docker backend (see berth/docker_backend.h): backend operations as
 * Engine API calls, Engine answers mapped to Connect codes, and the rule
 * that a container without berth.managed=true is never read or touched
 * (not_found). Create lives in docker_create.c, reading Engine JSON in
 * docker_json.c, stats in docker_stats.c. */
#include "berth/docker_backend.h"
#include "berth/labels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "berth/buf.h"
#include "berth/clock.h"
#include "berth/engine_client.h"
#include "berth/log.h"
#include "docker_internal.h"

/* Stop and restart may take t seconds; the request gets this much more. */
#define DOCKER_STOP_MARGIN_MS 15000
/* Removing an emptied tenant network: its own budget, as the caller's
 * deadline may have passed with the container's removal. */
#define DOCKER_NETWORK_RELEASE_MS 5000

static int docker_backend_ping(void *ctx, int64_t deadline, struct berth_err *err);
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
static int docker_backend_fetch(struct docker_ctx *c, const char *id, int64_t deadline,
                                cJSON **root_out, struct berth_err *err);
static int docker_backend_action(struct docker_ctx *c, const char *id, const char *method,
                                 const char *suffix, const char *verb, int64_t deadline,
                                 struct berth_err *err);
static int docker_backend_action_root(struct docker_ctx *c, const char *id, const char *method,
                                      const char *suffix, const char *verb, int64_t deadline,
                                      cJSON **root_out, struct berth_err *err);
static int docker_backend_timed_action(struct docker_ctx *c, const char *id, const char *verb,
                                       int timeout_s, int64_t deadline, struct berth_err *err);

const struct backend_ops docker_backend_ops = {
    .name = "docker",
    .ping = docker_backend_ping,
    .create = docker_create_container,
    .start = docker_backend_start,
    .stop = docker_backend_stop,
    .kill = docker_backend_kill,
    .pause = docker_backend_pause,
    .unpause = docker_backend_unpause,
    .restart = docker_backend_restart,
    .remove = docker_backend_remove,
    .remove_volume = docker_volume_remove,
    .inspect = docker_backend_inspect,
    .list = docker_backend_list,
    .stats = docker_stats_one,
    .stats_sweep = docker_stats_sweep,
    .call_stats = docker_backend_call_stats,
    .pull_stats = docker_pull_stats,
    .watch = docker_events_watch,
    .replica_apply = docker_replica_apply,
    .replica_get = docker_replica_get,
    .replica_list = docker_replica_list,
    .replica_delete = docker_replica_delete,
    .replica_update = docker_replica_update,
    .replica_recover = docker_replica_recover,
    .logs = docker_logs,
    .logs_follow = docker_logs_follow,
    .cancel_all = docker_backend_cancel_all,
    .destroy = docker_backend_destroy,
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

/* *out (n entries) from a comma list; empty entries are skipped. -1: out
 * of memory (what was made is still in *out for the caller to free). */
static int docker_backend_split(const char *list, char ***out, size_t *n_out)
{
    size_t n = 1;

    for (const char *p = list; *p; p++)
        n += *p == ',';
    *out = calloc(n, sizeof(**out));
    if (*out == NULL)
        return -1;
    while (*list) {
        size_t len = strcspn(list, ",");

        if (len > 0) {
            (*out)[*n_out] = strndup(list, len);
            if ((*out)[*n_out] == NULL)
                return -1;
            (*n_out)++;
        }
        list += len;
        if (*list == ',')
            list++;
    }
    return 0;
}

int docker_backend_new(const struct docker_backend_config *cfg, struct backend *out,
                       struct berth_err *err)
{
    static const struct docker_backend_config defaults = {0};
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
    pthread_mutex_init(&c->net_lock, NULL);
    c->net_lock_made = 1;
    c->pids_limit = cfg->pids_limit == 0 ? DOCKER_BACKEND_DEFAULT_PIDS_LIMIT : cfg->pids_limit;
    c->default_memory_bytes = cfg->default_memory_bytes == 0 ? DOCKER_BACKEND_DEFAULT_MEMORY_BYTES
                                                             : cfg->default_memory_bytes;
    c->log_max_files =
        cfg->log_max_files > 0 ? cfg->log_max_files : DOCKER_BACKEND_DEFAULT_LOG_MAX_FILES;
    c->log_max_size = strdup(cfg->log_max_size != NULL && cfg->log_max_size[0] != '\0'
                                 ? cfg->log_max_size
                                 : DOCKER_BACKEND_DEFAULT_LOG_MAX_SIZE);
    c->instance_id = strdup(cfg->instance_id != NULL && cfg->instance_id[0] != '\0'
                                ? cfg->instance_id
                                : DOCKER_BACKEND_DEFAULT_INSTANCE);
    if (c->log_max_size == NULL || c->instance_id == NULL ||
        docker_backend_split(cfg->cap_drop != NULL ? cfg->cap_drop
                                                   : DOCKER_BACKEND_DEFAULT_CAP_DROP,
                             &c->cap_drop, &c->n_cap_drop) < 0 ||
        docker_backend_split(cfg->allowed_registries != NULL ? cfg->allowed_registries : "",
                             &c->allowed_registries, &c->n_allowed_registries) < 0) {
        berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    if (engine_new(sock, &c->engine, err) < 0)
        goto out;
    engine_set_stats(c->engine, c->calls);
    if (docker_stats_new(c, cfg->stats_interval_ms, cfg->cgroup_root, cfg->proc_root,
                         cfg->stats_max_open_files, &c->stats, err) < 0)
        goto out;
    if (docker_pulls_new(cfg->auth_file, cfg->auth_file_optional, cfg->pull_progress_timeout_ms,
                         cfg->pull_timeout_ms, &c->pulls, err) < 0)
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
    docker_pulls_free(c->pulls);
    engine_free(c->engine);
    engine_stats_free(c->calls);
    free(c->socket_path);
    free(c->publish_address);
    for (size_t i = 0; i < c->n_cap_drop; i++)
        free(c->cap_drop[i]);
    free(c->cap_drop);
    for (size_t i = 0; i < c->n_allowed_registries; i++)
        free(c->allowed_registries[i]);
    free(c->allowed_registries);
    free(c->log_max_size);
    free(c->instance_id);
    if (c->net_lock_made)
        pthread_mutex_destroy(&c->net_lock);
    free(c);
}

int docker_backend_reload_auth(const struct backend *b, const char *path, int optional,
                               struct berth_err *err)
{
    if (b == NULL || b->ops != &docker_backend_ops || b->ctx == NULL)
        return 0;
    return docker_pulls_reload_auth(((struct docker_ctx *)b->ctx)->pulls, path, optional, err);
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
    if (!docker_json_is_ours(cJSON_GetObjectItemCaseSensitive(config, "Labels"), c->instance_id)) {
        log_debug("docker.unmanaged", "container=%s", q);
        berth_err_set(err, BERTH_NOT_FOUND, "%s: No such container: %s", what, q);
        goto out;
    }
    if (docker_json_forged(root) != NULL) {
        /* Labelled as ours, but with host privileges berthd never grants:
         * made by someone else, so never adopted or acted on. */
        log_warn("docker.forged", "container=%s holds=\"%s\"", q, docker_json_forged(root));
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
    return docker_backend_action_root(c, id, method, suffix, verb, deadline, NULL, err);
}

/* docker_backend_action, handing the container's inspect (before the
 * action) to *root_out on success when root_out is not NULL. */
static int docker_backend_action_root(struct docker_ctx *c, const char *id, const char *method,
                                      const char *suffix, const char *verb, int64_t deadline,
                                      cJSON **root_out, struct berth_err *err)
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
    if (root_out != NULL) {
        *root_out = root;
        root = NULL;
    }
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
    cJSON *root = NULL;

    if (docker_backend_action_root(ctx, id, "DELETE", "?force=true&v=true", "remove", deadline,
                                   &root, err) == 0) {
        /* The last container of a tenant network takes the network along. */
        docker_network_release(ctx, root, berth_now_ms() + DOCKER_NETWORK_RELEASE_MS);
        cJSON_Delete(root);
        return 0;
    }
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
    rc = docker_json_from_inspect(root, out, err);
out:
    cJSON_Delete(root);
    return rc;
}

int docker_get_array(struct docker_ctx *c, const char *prefix, const char *filter_key,
                     const char *const *values, size_t n, const char *what, int64_t deadline,
                     cJSON **out, struct berth_err *err)
{
    struct engine_response resp;
    struct buf path;
    cJSON *filters = cJSON_CreateObject(), *list = NULL, *root = NULL;
    char *filters_json = NULL;
    int bad, rc = -1;

    engine_response_init(&resp);
    buf_init(&path, DOCKER_PATH_MAX);
    if (filters != NULL)
        list = cJSON_AddArrayToObject(filters, filter_key);
    bad = list == NULL;
    for (size_t i = 0; i < n && !bad; i++)
        bad = !cJSON_AddItemToArray(list, cJSON_CreateString(values[i]));
    if (!bad)
        filters_json = cJSON_PrintUnformatted(filters);
    if (filters_json == NULL) {
        berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    if (buf_appends(&path, prefix, err) < 0 || engine_append_escaped(&path, filters_json, err) < 0)
        goto out;
    if (engine_request(c->engine, "GET", path.data, NULL, deadline, &resp, err) < 0)
        goto out;
    if (resp.status != 200) {
        engine_fail(&resp, engine_status_code(resp.status), what, err);
        goto out;
    }
    root = cJSON_ParseWithLength(resp.body.data ? resp.body.data : "", resp.body.len);
    if (!cJSON_IsArray(root)) {
        berth_err_set(err, BERTH_UNKNOWN, "%s: docker engine sent malformed json", what);
        goto out;
    }
    *out = root;
    root = NULL;
    rc = 0;
out:
    cJSON_Delete(root);
    cJSON_free(filters_json);
    cJSON_Delete(filters);
    buf_release(&path);
    engine_response_release(&resp);
    return rc;
}

static int docker_backend_list(void *ctx, const char *label, int64_t deadline,
                               struct backend_container_list *out, struct berth_err *err)
{
    struct docker_ctx *c = ctx;
    struct backend_container_list l = {NULL, 0};
    const char *labels[2] = {LABEL_MANAGED "=" LABEL_MANAGED_VALUE, label};
    cJSON *root = NULL;
    const cJSON *item;
    int rc = -1;

    if (docker_get_array(c, "/containers/json?all=true&filters=", "label", labels,
                         label != NULL && label[0] != '\0' ? 2 : 1, "list containers", deadline,
                         &root, err) < 0)
        return -1;
    l.items = calloc((size_t)cJSON_GetArraySize(root) + 1, sizeof(*l.items));
    if (l.items == NULL) {
        berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    cJSON_ArrayForEach(item, root)
    {
        /* The filter already asks for our label; never trust one answer. */
        if (!docker_json_is_ours(cJSON_GetObjectItemCaseSensitive(item, "Labels"), c->instance_id))
            continue;
        if (docker_json_forged(item) != NULL) {
            const cJSON *cid = cJSON_GetObjectItemCaseSensitive(item, "Id");

            log_warn("docker.forged", "container=%.12s holds=\"%s\"",
                     cJSON_IsString(cid) ? cid->valuestring : "", docker_json_forged(item));
            continue;
        }
        if (docker_json_from_list_item(item, &l.items[l.n], err) < 0)
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
    return rc;
}

/* An Engine 5xx text that means "not in that state" (docker_state_markers). */
int docker_backend_is_state_text(const char *msg)
{
    for (size_t i = 0; i < sizeof(docker_state_markers) / sizeof(docker_state_markers[0]); i++)
        if (strstr(msg, docker_state_markers[i]) != NULL)
            return 1;
    return 0;
}
