/* Tenant networks of the Docker backend (see docker_internal.h): a
 * user-defined bridge made on demand for the first container that names it,
 * labelled as berthd's (managed, instance), and removed with the last
 * container on it. c->net_lock orders the two, so a network is never
 * removed between its check and a create that joins it. Containers join a
 * network by its id: the Engine does not keep names unique. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "berth/buf.h"
#include "berth/docker_backend.h"
#include "berth/labels.h"
#include "berth/log.h"
#include "docker_internal.h"

static int docker_net_list(struct docker_ctx *c, const char *name, int64_t deadline, cJSON **out,
                           struct berth_err *err);
static int docker_net_create(struct docker_ctx *c, const char *name, int64_t deadline,
                             struct berth_err *err);
static int docker_net_in_use(struct docker_ctx *c, const char *id, int64_t deadline,
                             struct berth_err *err);
static int docker_net_remove_if_empty(struct docker_ctx *c, const char *id, int64_t deadline,
                                      struct berth_err *err);

int docker_network_is_tenant(const char *name)
{
    return name != NULL && strncmp(name, "berth-", 6) == 0;
}

int docker_network_full_name(const struct docker_ctx *c, const char *network, struct buf *out,
                             struct berth_err *err)
{
    if (buf_appends(out, network, err) < 0)
        return -1;
    /* Another instance's tenants are other tenants: their own networks. */
    if (strcmp(c->instance_id, DOCKER_BACKEND_DEFAULT_INSTANCE) != 0 &&
        buf_printf(out, err, "-%s", c->instance_id) < 0)
        return -1;
    return 0;
}

/* GET /networks?filters={"name":[name]}: the array (a name filter matches
 * substrings; callers compare the names). */
static int docker_net_list(struct docker_ctx *c, const char *name, int64_t deadline, cJSON **out,
                           struct berth_err *err)
{
    return docker_get_array(c, "/networks?filters=", "name", &name, 1, "list networks", deadline,
                            out, err);
}

/* POST /networks/create: a bridge with our labels. */
static int docker_net_create(struct docker_ctx *c, const char *name, int64_t deadline,
                             struct berth_err *err)
{
    struct engine_response resp;
    cJSON *root = cJSON_CreateObject(), *labels = NULL;
    char *body = NULL;
    int rc = -1;

    engine_response_init(&resp);
    if (root != NULL)
        labels = cJSON_AddObjectToObject(root, "Labels");
    if (labels == NULL || cJSON_AddStringToObject(root, "Name", name) == NULL ||
        cJSON_AddStringToObject(root, "Driver", "bridge") == NULL ||
        cJSON_AddTrueToObject(root, "CheckDuplicate") == NULL ||
        cJSON_AddStringToObject(labels, LABEL_MANAGED, LABEL_MANAGED_VALUE) == NULL ||
        cJSON_AddStringToObject(labels, LABEL_INSTANCE, c->instance_id) == NULL ||
        (body = cJSON_PrintUnformatted(root)) == NULL) {
        berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    if (engine_request(c->engine, "POST", "/networks/create", body, deadline, &resp, err) < 0)
        goto out;
    /* 409: made meanwhile (by another berthd of ours, say); the next look
     * says whose. */
    if (resp.status != 201 && resp.status != 200 && resp.status != 409) {
        /* 404 here is no free address pool left, not a missing object. */
        engine_fail(&resp,
                    resp.status == 404 ? BERTH_RESOURCE_EXHAUSTED : engine_status_code(resp.status),
                    "create network", err);
        goto out;
    }
    if (resp.status != 409)
        log_info("docker.network_created", "network=%s", name);
    rc = 0;
out:
    cJSON_free(body);
    cJSON_Delete(root);
    engine_response_release(&resp);
    return rc;
}

int docker_network_ensure(struct docker_ctx *c, const char *name, struct buf *id_out,
                          int64_t deadline, struct berth_err *err)
{
    char q[DOCKER_QUOTE_MAX + 8];

    berth_err_quote(q, sizeof(q), name, DOCKER_QUOTE_MAX);
    for (int attempt = 0; attempt < 2; attempt++) {
        cJSON *list = NULL;
        const cJSON *net, *chosen = NULL;
        int other = 0, rc;

        if (docker_net_list(c, name, deadline, &list, err) < 0)
            return -1;
        /* Names need not be unique (two berthds may make one at once):
         * every berthd takes the one of least id, and the empty others go. */
        cJSON_ArrayForEach(net, list)
        {
            const cJSON *n = cJSON_GetObjectItemCaseSensitive(net, "Name");
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(net, "Id");

            if (!cJSON_IsString(n) || strcmp(n->valuestring, name) != 0 || !cJSON_IsString(id))
                continue;
            if (!docker_json_is_ours(cJSON_GetObjectItemCaseSensitive(net, "Labels"),
                                     c->instance_id)) {
                other = 1;
                continue;
            }
            if (chosen == NULL ||
                strcmp(id->valuestring,
                       cJSON_GetObjectItemCaseSensitive(chosen, "Id")->valuestring) < 0)
                chosen = net;
        }
        if (chosen != NULL) {
            cJSON_ArrayForEach(net, list)
            {
                const cJSON *n = cJSON_GetObjectItemCaseSensitive(net, "Name");
                const cJSON *id = cJSON_GetObjectItemCaseSensitive(net, "Id");
                struct berth_err ignored;

                berth_err_clear(&ignored);
                if (net != chosen && cJSON_IsString(n) && strcmp(n->valuestring, name) == 0 &&
                    cJSON_IsString(id) &&
                    docker_json_is_ours(cJSON_GetObjectItemCaseSensitive(net, "Labels"),
                                        c->instance_id))
                    (void)docker_net_remove_if_empty(c, id->valuestring, deadline, &ignored);
            }
            rc = buf_appends(id_out, cJSON_GetObjectItemCaseSensitive(chosen, "Id")->valuestring,
                             err);
            cJSON_Delete(list);
            return rc;
        }
        cJSON_Delete(list);
        if (other)
            return berth_err_set(err, BERTH_FAILED_PRECONDITION,
                                 "network '%s' exists and is not this berthd's", q);
        if (docker_net_create(c, name, deadline, err) < 0)
            return -1;
    }
    return berth_err_set(err, BERTH_UNAVAILABLE, "network '%s' could not be made", q);
}

/* Does any container (running or not) sit on network `id`? 1, 0, or -1. */
static int docker_net_in_use(struct docker_ctx *c, const char *id, int64_t deadline,
                             struct berth_err *err)
{
    cJSON *root = NULL;
    int used;

    if (docker_get_array(c, "/containers/json?all=true&filters=", "network", &id, 1,
                         "list containers of network", deadline, &root, err) < 0)
        return -1;
    used = cJSON_GetArraySize(root) > 0;
    cJSON_Delete(root);
    return used;
}

/* DELETE /networks/{id} unless a container is on it. 0 (removed, gone,
 * or kept because in use) or -1. The caller holds c->net_lock. */
static int docker_net_remove_if_empty(struct docker_ctx *c, const char *id, int64_t deadline,
                                      struct berth_err *err)
{
    struct engine_response resp;
    struct buf path;
    int used, rc = -1;

    used = docker_net_in_use(c, id, deadline, err);
    if (used != 0)
        return used < 0 ? -1 : 0;
    engine_response_init(&resp);
    buf_init(&path, DOCKER_PATH_MAX);
    if (buf_appends(&path, "/networks/", err) < 0 || engine_append_escaped(&path, id, err) < 0 ||
        engine_request(c->engine, "DELETE", path.data, NULL, deadline, &resp, err) < 0)
        goto out;
    /* 403/409: a container joined it after all (one of another process). */
    if (resp.status != 204 && resp.status != 200 && resp.status != 404 && resp.status != 403 &&
        resp.status != 409) {
        engine_fail(&resp, engine_status_code(resp.status), "remove network", err);
        goto out;
    }
    if (resp.status == 204 || resp.status == 200)
        log_info("docker.network_removed", "network_id=%.12s", id);
    rc = 0;
out:
    buf_release(&path);
    engine_response_release(&resp);
    return rc;
}

/* GET /networks/{id}: 1 when it is a tenant network of ours whose id is
 * `id` exactly, 0 when not (or gone), -1 on error. */
static int docker_net_is_ours(struct docker_ctx *c, const char *id, int64_t deadline,
                              struct berth_err *err)
{
    struct engine_response resp;
    struct buf path;
    cJSON *root = NULL;
    const cJSON *nid, *name;
    int rc = -1;

    engine_response_init(&resp);
    buf_init(&path, DOCKER_PATH_MAX);
    if (buf_appends(&path, "/networks/", err) < 0 || engine_append_escaped(&path, id, err) < 0 ||
        engine_request(c->engine, "GET", path.data, NULL, deadline, &resp, err) < 0)
        goto out;
    if (resp.status == 404) {
        rc = 0;
        goto out;
    }
    if (resp.status != 200) {
        engine_fail(&resp, engine_status_code(resp.status), "inspect network", err);
        goto out;
    }
    root = cJSON_ParseWithLength(resp.body.data ? resp.body.data : "", resp.body.len);
    nid = cJSON_GetObjectItemCaseSensitive(root, "Id");
    name = cJSON_GetObjectItemCaseSensitive(root, "Name");
    rc = cJSON_IsString(nid) && strcmp(nid->valuestring, id) == 0 && cJSON_IsString(name) &&
         docker_network_is_tenant(name->valuestring) &&
         docker_json_is_ours(cJSON_GetObjectItemCaseSensitive(root, "Labels"), c->instance_id);
out:
    cJSON_Delete(root);
    buf_release(&path);
    engine_response_release(&resp);
    return rc;
}

void docker_network_release(struct docker_ctx *c, const cJSON *inspect, int64_t deadline)
{
    /* berthd joins a container to one network, by id: HostConfig keeps it
     * (the network map of a container never started is keyed by it too). */
    const cJSON *mode = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(inspect, "HostConfig"), "NetworkMode");
    struct berth_err err;
    int ours;

    if (!cJSON_IsString(mode) || strlen(mode->valuestring) != 64 ||
        strspn(mode->valuestring, "0123456789abcdef") != 64)
        return;
    berth_err_clear(&err);
    pthread_mutex_lock(&c->net_lock);
    ours = docker_net_is_ours(c, mode->valuestring, deadline, &err);
    if (ours == 1)
        (void)docker_net_remove_if_empty(c, mode->valuestring, deadline, &err);
    pthread_mutex_unlock(&c->net_lock);
    if (err.code != BERTH_OK) {
        struct log_quoted lq;
        log_warn("docker.network_release_failed", "network_id=%.12s code=%s error=%s",
                 mode->valuestring, berth_code_name(err.code), log_quote(&lq, err.msg));
    }
}
