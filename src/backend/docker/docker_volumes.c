/* Named volumes of the Docker backend (see docker_internal.h): made before
 * the container that mounts them, with berthd's ownership labels, and
 * removed only when they carry those labels. A volume berthd did not make
 * (no labels of its own, another berthd's, a local volume with driver
 * options, which may bind a host path) is never mounted or removed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "berth/buf.h"
#include "berth/labels.h"
#include "berth/log.h"
#include "docker_internal.h"

static int docker_volume_path(struct buf *path, const char *name, struct berth_err *err);
static int docker_volume_get(struct docker_ctx *c, const char *name, int64_t deadline,
                             cJSON **root_out, struct berth_err *err);
static const char *docker_volume_foreign(const struct docker_ctx *c, const cJSON *vol,
                                         const struct backend_label *must, size_t n_must);

/* /volumes/<escaped name>. */
static int docker_volume_path(struct buf *path, const char *name, struct berth_err *err)
{
    if (buf_appends(path, "/volumes/", err) < 0 || engine_append_escaped(path, name, err) < 0)
        return -1;
    return 0;
}

/* GET /volumes/{name}: 1 with *root_out (the caller's) when there is one,
 * 0 when there is none, -1 on failure. */
static int docker_volume_get(struct docker_ctx *c, const char *name, int64_t deadline,
                             cJSON **root_out, struct berth_err *err)
{
    struct engine_response resp;
    struct buf path;
    cJSON *root;
    int rc = -1;

    engine_response_init(&resp);
    buf_init(&path, DOCKER_PATH_MAX);
    if (docker_volume_path(&path, name, err) < 0 ||
        engine_request(c->engine, "GET", path.data, NULL, deadline, &resp, err) < 0)
        goto out;
    if (resp.status == 404) {
        rc = 0;
        goto out;
    }
    if (resp.status != 200) {
        engine_fail(&resp, engine_status_code(resp.status), "inspect volume", err);
        goto out;
    }
    root = cJSON_ParseWithLength(resp.body.data ? resp.body.data : "", resp.body.len);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        berth_err_set(err, BERTH_UNKNOWN, "inspect volume: docker engine sent malformed json");
        goto out;
    }
    *root_out = root;
    rc = 1;
out:
    buf_release(&path);
    engine_response_release(&resp);
    return rc;
}

/* NULL when the volume is this berthd's, carries every label of must and
 * is a plain local volume; else why not, for messages and logs. */
static const char *docker_volume_foreign(const struct docker_ctx *c, const cJSON *vol,
                                         const struct backend_label *must, size_t n_must)
{
    const cJSON *labels = cJSON_GetObjectItemCaseSensitive(vol, "Labels");
    const cJSON *driver = cJSON_GetObjectItemCaseSensitive(vol, "Driver");
    const cJSON *opts = cJSON_GetObjectItemCaseSensitive(vol, "Options");

    if (!docker_json_is_ours(labels, c->instance_id))
        return "it is not this berthd's";
    for (size_t i = 0; i < n_must; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(labels, must[i].key);

        if (!cJSON_IsString(v) || strcmp(v->valuestring, must[i].value) != 0)
            return "it belongs to another object";
    }
    if (!cJSON_IsString(driver) || strcmp(driver->valuestring, "local") != 0)
        return "its driver is not local";
    /* Options of the local driver can mount a device or a host path. */
    if (cJSON_IsObject(opts) && cJSON_GetArraySize(opts) > 0)
        return "it has driver options";
    return NULL;
}

int docker_volume_ensure(struct docker_ctx *c, const struct backend_spec *spec,
                         const struct backend_volume *v, int64_t deadline, int *made,
                         struct berth_err *err)
{
    struct engine_response resp;
    cJSON *root = NULL, *body = NULL, *labels;
    char *json = NULL;
    const char *why;
    char q[DOCKER_QUOTE_MAX + 8];
    int found, bad, rc = -1;

    *made = 0;
    engine_response_init(&resp);
    berth_err_quote(q, sizeof(q), v->name, DOCKER_QUOTE_MAX);
    found = docker_volume_get(c, v->name, deadline, &root, err);
    if (found < 0)
        goto out;
    if (found == 0) {
        body = cJSON_CreateObject();
        labels = body ? cJSON_AddObjectToObject(body, "Labels") : NULL;
        bad = labels == NULL || cJSON_AddStringToObject(body, "Name", v->name) == NULL ||
              cJSON_AddStringToObject(body, "Driver", "local") == NULL;
        for (size_t i = 0; !bad && i < spec->n_volume_labels; i++) {
            const char *k = spec->volume_labels[i].key;

            if (strcmp(k, LABEL_MANAGED) == 0 || strcmp(k, LABEL_INSTANCE) == 0)
                continue;
            bad = cJSON_AddStringToObject(labels, k, spec->volume_labels[i].value) == NULL;
        }
        bad = bad || cJSON_AddStringToObject(labels, LABEL_MANAGED, LABEL_MANAGED_VALUE) == NULL ||
              cJSON_AddStringToObject(labels, LABEL_INSTANCE, c->instance_id) == NULL;
        if (!bad)
            json = cJSON_PrintUnformatted(body);
        if (json == NULL) {
            berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
            goto out;
        }
        if (engine_request(c->engine, "POST", "/volumes/create", json, deadline, &resp, err) < 0)
            goto out;
        if (resp.status != 201 && resp.status != 200) {
            engine_fail(&resp, engine_status_code(resp.status), "create volume", err);
            goto out;
        }
        /* A create of a name that appeared meanwhile answers that volume. */
        root = cJSON_ParseWithLength(resp.body.data ? resp.body.data : "", resp.body.len);
        if (docker_volume_foreign(c, root, spec->volume_labels, spec->n_volume_labels) == NULL)
            *made = 1;
    }
    why = docker_volume_foreign(c, root, spec->volume_labels, spec->n_volume_labels);
    if (why != NULL) {
        log_warn("docker.volume_refused", "volume=%s reason=\"%s\"", q, why);
        berth_err_set(err, BERTH_FAILED_PRECONDITION, "volume '%s' exists and cannot be used: %s",
                      q, why);
        goto out;
    }
    if (*made)
        log_info("docker.volume_created", "volume=%s", q);
    rc = 0;
out:
    cJSON_free(json);
    cJSON_Delete(body);
    cJSON_Delete(root);
    engine_response_release(&resp);
    return rc;
}

int docker_volume_remove(void *ctx, const char *name, const struct backend_label *must,
                         size_t n_must, int64_t deadline, struct berth_err *err)
{
    struct docker_ctx *c = ctx;
    struct engine_response resp;
    struct buf path;
    cJSON *root = NULL;
    const char *why;
    char q[DOCKER_QUOTE_MAX + 8];
    int found, rc = -1;

    engine_response_init(&resp);
    buf_init(&path, DOCKER_PATH_MAX);
    berth_err_quote(q, sizeof(q), name != NULL ? name : "", DOCKER_QUOTE_MAX);
    if (name == NULL || name[0] == '\0') {
        berth_err_set(err, BERTH_INVALID_ARGUMENT, "volume name is empty");
        goto out;
    }
    found = docker_volume_get(c, name, deadline, &root, err);
    if (found < 0)
        goto out;
    why = found ? docker_volume_foreign(c, root, must, n_must) : "there is none";
    if (why != NULL) {
        if (found)
            log_debug("docker.volume_left", "volume=%s reason=\"%s\"", q, why);
        berth_err_set(err, BERTH_NOT_FOUND, "volume '%s' not found", q);
        goto out;
    }
    if (docker_volume_path(&path, name, err) < 0 ||
        engine_request(c->engine, "DELETE", path.data, NULL, deadline, &resp, err) < 0)
        goto out;
    if (resp.status == 404) {
        berth_err_set(err, BERTH_NOT_FOUND, "volume '%s' not found", q);
        goto out;
    }
    if (resp.status != 204 && resp.status != 200) {
        engine_fail(&resp, engine_status_code(resp.status), "remove volume", err);
        goto out;
    }
    log_info("docker.volume_removed", "volume=%s", q);
    rc = 0;
out:
    cJSON_Delete(root);
    buf_release(&path);
    engine_response_release(&resp);
    return rc;
}
