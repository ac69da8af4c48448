/* Tenant networks of the Docker backend (see docker_internal.h): a
 * user-defined bridge made on demand for the first container that names it,
 * labelled as berthd's (managed, instance), and removed with the last
 * container on it. c->net_lock orders the two, so a network is never
 * removed between its check and a create that joins it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "berth/buf.h"
#include "berth/docker_backend.h"
#include "berth/labels.h"
#include "berth/log.h"
#include "docker_internal.h"

/* What a network under a name is, for berthd. */
enum docker_net_find {
    DOCKER_NET_ERROR = -1, /* err says why */
    DOCKER_NET_ABSENT,
    DOCKER_NET_OURS,
    DOCKER_NET_OTHER, /* someone else's (another instance, or not berthd's) */
};

static int docker_net_find(struct docker_ctx *c, const char *name, int64_t deadline,
                           struct berth_err *err);
static int docker_net_create(struct docker_ctx *c, const char *name, int64_t deadline,
                             struct berth_err *err);
static int docker_net_in_use(struct docker_ctx *c, const char *name, int64_t deadline,
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

/* GET /networks/{name}. */
static int docker_net_find(struct docker_ctx *c, const char *name, int64_t deadline,
                           struct berth_err *err)
{
    struct engine_response resp;
    struct buf path;
    cJSON *root = NULL;
    const cJSON *cname;
    int rc = DOCKER_NET_ERROR;

    engine_response_init(&resp);
    buf_init(&path, DOCKER_PATH_MAX);
    if (buf_appends(&path, "/networks/", err) < 0 || engine_append_escaped(&path, name, err) < 0)
        goto out;
    if (engine_request(c->engine, "GET", path.data, NULL, deadline, &resp, err) < 0)
        goto out;
    if (resp.status == 404) {
        rc = DOCKER_NET_ABSENT;
        goto out;
    }
    if (resp.status != 200) {
        engine_fail(&resp, engine_status_code(resp.status), "inspect network", err);
        goto out;
    }
    root = cJSON_ParseWithLength(resp.body.data ? resp.body.data : "", resp.body.len);
    cname = cJSON_GetObjectItemCaseSensitive(root, "Name");
    /* The Engine finds a network by an id prefix too: the name must match. */
    if (!cJSON_IsString(cname) || strcmp(cname->valuestring, name) != 0) {
        rc = DOCKER_NET_ABSENT;
        goto out;
    }
    rc = docker_json_is_ours(cJSON_GetObjectItemCaseSensitive(root, "Labels"), c->instance_id)
             ? DOCKER_NET_OURS
             : DOCKER_NET_OTHER;
out:
    cJSON_Delete(root);
    buf_release(&path);
    engine_response_release(&resp);
    return rc;
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
    if (resp.status == 409) {
        /* Made meanwhile (by another berthd of ours, say): find says whose. */
        rc = 1;
        goto out;
    }
    if (resp.status != 201 && resp.status != 200) {
        engine_fail(&resp, engine_status_code(resp.status), "create network", err);
        goto out;
    }
    log_info("docker.network_created", "network=%s", name);
    rc = 0;
out:
    cJSON_free(body);
    cJSON_Delete(root);
    engine_response_release(&resp);
    return rc;
}

int docker_network_ensure(struct docker_ctx *c, const char *name, int64_t deadline,
                          struct berth_err *err)
{
    char q[DOCKER_QUOTE_MAX + 8];

    berth_err_quote(q, sizeof(q), name, DOCKER_QUOTE_MAX);
    for (int attempt = 0; attempt < 2; attempt++) {
        int found = docker_net_find(c, name, deadline, err), made;

        if (found == DOCKER_NET_ERROR)
            return -1;
        if (found == DOCKER_NET_OURS)
            return 0;
        if (found == DOCKER_NET_OTHER)
            return berth_err_set(err, BERTH_FAILED_PRECONDITION,
                                 "network '%s' exists and is not this berthd's", q);
        made = docker_net_create(c, name, deadline, err);
        if (made < 0)
            return -1;
        if (made == 0)
            return 0;
    }
    return berth_err_set(err, BERTH_UNAVAILABLE, "network '%s' could not be made", q);
}

/* Does any container (running or not) sit on network `name`? 1, 0, or -1. */
static int docker_net_in_use(struct docker_ctx *c, const char *name, int64_t deadline,
                             struct berth_err *err)
{
    struct engine_response resp;
    struct buf path;
    cJSON *filters = cJSON_CreateObject(), *list = NULL, *root = NULL;
    char *filters_json = NULL;
    int rc = -1;

    engine_response_init(&resp);
    buf_init(&path, DOCKER_PATH_MAX);
    if (filters != NULL)
        list = cJSON_AddArrayToObject(filters, "network");
    if (list == NULL || !cJSON_AddItemToArray(list, cJSON_CreateString(name)) ||
        (filters_json = cJSON_PrintUnformatted(filters)) == NULL) {
        berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    if (buf_appends(&path, "/containers/json?all=true&filters=", err) < 0 ||
        engine_append_escaped(&path, filters_json, err) < 0)
        goto out;
    if (engine_request(c->engine, "GET", path.data, NULL, deadline, &resp, err) < 0)
        goto out;
    if (resp.status != 200) {
        engine_fail(&resp, engine_status_code(resp.status), "list containers of network", err);
        goto out;
    }
    root = cJSON_ParseWithLength(resp.body.data ? resp.body.data : "", resp.body.len);
    if (!cJSON_IsArray(root)) {
        berth_err_set(err, BERTH_UNKNOWN, "list containers: docker engine sent malformed json");
        goto out;
    }
    rc = cJSON_GetArraySize(root) > 0;
out:
    cJSON_Delete(root);
    cJSON_free(filters_json);
    cJSON_Delete(filters);
    buf_release(&path);
    engine_response_release(&resp);
    return rc;
}

void docker_network_release(struct docker_ctx *c, const char *name, int64_t deadline)
{
    struct engine_response resp;
    struct berth_err err;
    struct buf path;
    char q[DOCKER_QUOTE_MAX + 8];

    berth_err_clear(&err);
    engine_response_init(&resp);
    buf_init(&path, DOCKER_PATH_MAX);
    berth_err_quote(q, sizeof(q), name, DOCKER_QUOTE_MAX);
    pthread_mutex_lock(&c->net_lock);
    if (docker_net_find(c, name, deadline, &err) != DOCKER_NET_OURS ||
        docker_net_in_use(c, name, deadline, &err) != 0)
        goto out;
    if (buf_appends(&path, "/networks/", &err) < 0 ||
        engine_append_escaped(&path, name, &err) < 0 ||
        engine_request(c->engine, "DELETE", path.data, NULL, deadline, &resp, &err) < 0)
        goto out;
    if (resp.status != 204 && resp.status != 200 && resp.status != 404) {
        engine_fail(&resp, engine_status_code(resp.status), "remove network", &err);
        goto out;
    }
    log_info("docker.network_removed", "network=%s", q);
out:
    pthread_mutex_unlock(&c->net_lock);
    if (err.code != BERTH_OK) {
        struct log_quoted lq;
        log_warn("docker.network_release_failed", "network=%s code=%s error=%s", q,
                 berth_code_name(err.code), log_quote(&lq, err.msg));
    }
    buf_release(&path);
    engine_response_release(&resp);
}
