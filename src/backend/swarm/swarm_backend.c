/* The Swarm backend (see berth/swarm_backend.h): the Docker backend's
 * context and container operations, with replica sets as Swarm services
 * made and read through the same Engine client. Updates live in
 * swarm_update.c, following the swarm in swarm_follow.c, the JSON in
 * swarm_json.c. */
#include "berth/swarm_backend.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "../docker/docker_internal.h"
#include "berth/buf.h"
#include "berth/clock.h"
#include "berth/engine_client.h"
#include "berth/labels.h"
#include "berth/log.h"
#include "swarm_internal.h"

#define SW_ROLLBACK_MS 10000 /* removing a create of unknown outcome gets this long */
#define SW_INFO_MS 2000      /* the check at start that the Engine is a manager */
#define SW_ID_HEX 64         /* a full container id; a task id is shorter */

static struct backend_ops swarm_ops;
static pthread_once_t swarm_ops_once = PTHREAD_ONCE_INIT;

static void sw_ops_init(void);
static int sw_check_kind(enum object_kind kind, struct berth_err *err);
static int sw_check_manager(struct docker_ctx *c, int64_t deadline, struct berth_err *err);
static void sw_remove_unknown(struct docker_ctx *c, const struct backend_replica_spec *spec,
                              const char *name);
static int sw_ping(void *ctx, int64_t deadline, struct berth_err *err);
static int sw_apply(void *ctx, const struct backend_replica_spec *spec, int64_t deadline,
                    struct backend_apply_result *out, struct berth_err *err);
static int sw_get(void *ctx, enum object_kind kind, const char *ns, const char *id,
                  int64_t deadline, struct backend_replica_set *out, struct berth_err *err);
static int sw_list(void *ctx, enum object_kind kind, const char *id, int64_t deadline,
                   struct backend_replica_set_list *out, struct berth_err *err);
static int sw_delete(void *ctx, enum object_kind kind, const char *ns, const char *id,
                     int64_t deadline, size_t *removed, struct berth_err *err);
static int sw_logs(void *ctx, const char *id, const struct backend_log_query *q, int64_t deadline,
                   struct backend_log_list *out, struct berth_err *err);
static int sw_logs_follow(void *ctx, const char *id, const struct backend_log_query *q,
                          int64_t deadline, const atomic_int *stop, backend_log_fn on_line,
                          void *arg, struct berth_err *err);
static void sw_destroy(void *ctx);

/* The Docker backend's table with the replica-set operations, readiness,
 * events and logs replaced. */
static void sw_ops_init(void)
{
    swarm_ops = docker_backend_ops;
    swarm_ops.name = "swarm";
    swarm_ops.ping = sw_ping;
    swarm_ops.watch = sw_watch;
    swarm_ops.replica_apply = sw_apply;
    swarm_ops.replica_get = sw_get;
    swarm_ops.replica_list = sw_list;
    swarm_ops.replica_delete = sw_delete;
    swarm_ops.replica_update = sw_update;
    /* A service is one object of the Swarm's, and its updates the Swarm's
     * own: nothing is ever left half way for berthd to settle. */
    swarm_ops.replica_recover = NULL;
    swarm_ops.logs = sw_logs;
    swarm_ops.logs_follow = sw_logs_follow;
    swarm_ops.destroy = sw_destroy;
}

int swarm_publish_mode_parse(const char *text, enum swarm_publish_mode *out)
{
    if (text != NULL && strcmp(text, "host") == 0)
        *out = SWARM_PUBLISH_HOST;
    else if (text != NULL && strcmp(text, "ingress") == 0)
        *out = SWARM_PUBLISH_INGRESS;
    else
        return -1;
    return 0;
}

int swarm_backend_new(const struct docker_backend_config *cfg,
                      const struct swarm_backend_config *scfg, struct backend *out,
                      struct berth_err *err)
{
    struct docker_ctx *c;
    struct backend b = {0};

    if (pthread_once(&swarm_ops_once, sw_ops_init) != 0)
        return berth_err_set(err, BERTH_INTERNAL, "swarm backend: setup failed");
    if (docker_backend_new(cfg, &b, err) < 0)
        return -1;
    c = b.ctx;
    c->swarm = calloc(1, sizeof(*c->swarm));
    if (c->swarm == NULL) {
        backend_destroy(&b);
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    }
    c->swarm->ingress = scfg != NULL && scfg->publish_mode == SWARM_PUBLISH_INGRESS;
    b.ops = &swarm_ops;
    /* A berthd pointed at a worker, or at an Engine in no swarm, could
     * never serve a gateway: say so at once. An Engine that does not
     * answer yet is not judged now. */
    {
        struct berth_err e;

        berth_err_clear(&e);
        if (sw_check_manager(c, berth_now_ms() + SW_INFO_MS, &e) < 0) {
            if (e.code == BERTH_FAILED_PRECONDITION) {
                *err = e;
                backend_destroy(&b);
                return -1;
            }
            struct log_quoted lq;
            log_warn("swarm.unchecked", "code=%s error=%s reason=\"checked again when it answers\"",
                     berth_code_name(e.code), log_quote(&lq, e.msg));
        }
    }
    *out = b;
    return 0;
}

int swarm_backend_reload_auth(const struct backend *b, const char *path, int optional,
                              struct berth_err *err)
{
    if (b == NULL || b->ops != &swarm_ops || b->ctx == NULL)
        return 0;
    return docker_pulls_reload_auth(((struct docker_ctx *)b->ctx)->pulls, path, optional, err);
}

static void sw_destroy(void *ctx)
{
    struct docker_ctx *c = ctx;

    if (c == NULL)
        return;
    free(c->swarm);
    c->swarm = NULL;
    docker_backend_ops.destroy(c);
}

static int sw_check_kind(enum object_kind kind, struct berth_err *err)
{
    if (kind != OBJECT_GATEWAY && kind != OBJECT_DEPLOYMENT)
        return berth_err_set(err, BERTH_INTERNAL, "kind %d has no replica sets", (int)kind);
    return 0;
}

/* GET /info: the Engine must be an active manager of a swarm (a worker
 * cannot make or read services). Asked even while the Engine is marked as
 * not answering, as readiness wants to know how it is now. */
static int sw_check_manager(struct docker_ctx *c, int64_t deadline, struct berth_err *err)
{
    struct engine_response resp;
    cJSON *root = NULL;
    const cJSON *sw;
    const char *state;
    int rc = -1;

    engine_response_init(&resp);
    if (engine_request_anyway(c->engine, "GET", "/info", NULL, deadline, &resp, err) < 0)
        goto out;
    if (resp.status != 200) {
        engine_fail(&resp, engine_status_code(resp.status), "docker engine info", err);
        goto out;
    }
    root = cJSON_ParseWithLength(resp.body.data ? resp.body.data : "", resp.body.len);
    sw = cJSON_GetObjectItemCaseSensitive(root, "Swarm");
    state = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(sw, "LocalNodeState"));
    if (root == NULL || state == NULL) {
        berth_err_set(err, BERTH_UNKNOWN, "docker engine info: malformed json");
        goto out;
    }
    if (strcmp(state, "active") != 0) {
        berth_err_set(err, BERTH_FAILED_PRECONDITION,
                      "--backend swarm: the Docker Engine at %s is in no swarm (its swarm state "
                      "is '%.32s'); run `docker swarm init` there, or point --docker-socket at a "
                      "manager",
                      c->socket_path, state);
        goto out;
    }
    if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(sw, "ControlAvailable"))) {
        berth_err_set(err, BERTH_FAILED_PRECONDITION,
                      "--backend swarm: the Docker Engine at %s is a swarm worker, not a manager; "
                      "run berthd on a manager node, or point --docker-socket at one",
                      c->socket_path);
        goto out;
    }
    rc = 0;
out:
    cJSON_Delete(root);
    engine_response_release(&resp);
    return rc;
}

/* Ready: the Engine answers and is still an active manager. */
static int sw_ping(void *ctx, int64_t deadline, struct berth_err *err)
{
    struct docker_ctx *c = ctx;

    if (docker_backend_ops.ping(ctx, deadline, err) < 0)
        return -1;
    return sw_check_manager(c, deadline, err);
}

int sw_call(struct docker_ctx *c, const char *method, const char *path, const char *body,
            const char *const *headers, int64_t deadline, cJSON **root, const char *what,
            struct berth_err *err)
{
    struct engine_response resp;
    int rc = -1;

    engine_response_init(&resp);
    if (engine_request_with(c->engine, method, path, body, headers, deadline, &resp, err) < 0)
        goto out;
    if (resp.status == 404 || resp.status == 409) {
        rc = resp.status;
        goto out;
    }
    if (resp.status < 200 || resp.status >= 300) {
        char text[256];
        enum berth_code code = engine_status_code(resp.status);
        engine_error_text(&resp, text, sizeof(text));
        if (strstr(text, "not a swarm manager") != NULL || strstr(text, "swarm mode") != NULL)
            code = BERTH_FAILED_PRECONDITION;
        engine_fail(&resp, code, what, err);
        goto out;
    }
    if (root != NULL) {
        *root = cJSON_ParseWithLength(resp.body.data ? resp.body.data : "", resp.body.len);
        if (*root == NULL) {
            berth_err_set(err, BERTH_UNKNOWN, "%s: docker engine sent malformed json", what);
            goto out;
        }
    }
    rc = resp.status;
out:
    engine_response_release(&resp);
    return rc;
}

int sw_find(struct docker_ctx *c, enum object_kind kind, const char *id, int64_t deadline,
            cJSON **root, struct swarm_service *svc, struct berth_err *err)
{
    struct buf path, name;
    cJSON *r = NULL;
    int st, rc = -1;

    buf_init(&path, DOCKER_PATH_MAX);
    buf_init(&name, DOCKER_PATH_MAX);
    if (buf_printf(&name, err, "%s%s", swarm_name_prefix(kind), id) < 0 ||
        buf_appends(&path, "/services/", err) < 0 ||
        engine_append_escaped(&path, name.data, err) < 0)
        goto out;
    st = sw_call(c, "GET", path.data, NULL, NULL, deadline, &r, "inspect service", err);
    if (st < 0)
        goto out;
    if (st == 404 || st == 409) {
        rc = SW_NONE;
        goto out;
    }
    /* The Engine also answers an ID prefix: only the exact name counts. */
    if (swarm_json_service(r, kind, svc) < 0 || strcmp(svc->name, name.data) != 0 ||
        strcmp(svc->id, id) != 0) {
        rc = SW_FOREIGN;
        goto out;
    }
    *root = r;
    r = NULL;
    rc = SW_OURS;
out:
    cJSON_Delete(r);
    buf_release(&name);
    buf_release(&path);
    return rc;
}

int sw_inspect(struct docker_ctx *c, const char *service_id, int64_t deadline, cJSON **root,
               struct berth_err *err)
{
    struct buf path;
    int st, rc = -1;

    buf_init(&path, DOCKER_PATH_MAX);
    if (buf_appends(&path, "/services/", err) < 0 ||
        engine_append_escaped(&path, service_id, err) < 0)
        goto out;
    st = sw_call(c, "GET", path.data, NULL, NULL, deadline, root, "inspect service", err);
    if (st < 0)
        goto out;
    if (st != 200) {
        berth_err_set(err, BERTH_NOT_FOUND, "service %.64s is gone", service_id);
        goto out;
    }
    rc = 0;
out:
    buf_release(&path);
    return rc;
}

int sw_fetch_tasks(struct docker_ctx *c, const char *service_id, int running_only, int64_t deadline,
                   cJSON **tasks, cJSON **nodes, struct berth_err *err)
{
    struct buf path, filter;
    int rc = -1;

    buf_init(&path, DOCKER_PATH_MAX);
    buf_init(&filter, DOCKER_PATH_MAX);
    if (buf_appends(&filter, running_only ? "{\"desired-state\":[\"running\"]" : "{", err) < 0)
        goto out;
    if (service_id != NULL) {
        cJSON *s = cJSON_CreateString(service_id);
        char *q = s ? cJSON_PrintUnformatted(s) : NULL;
        int bad = q == NULL ||
                  buf_printf(&filter, err, "%s\"service\":[%s]", running_only ? "," : "", q) < 0;
        cJSON_free(q);
        cJSON_Delete(s);
        if (bad) {
            berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
            goto out;
        }
    }
    if (buf_appends(&filter, "}", err) < 0 || buf_appends(&path, "/tasks?filters=", err) < 0 ||
        engine_append_escaped(&path, filter.data, err) < 0)
        goto out;
    if (sw_call(c, "GET", path.data, NULL, NULL, deadline, tasks, "list tasks", err) != 200) {
        if (err->code == BERTH_OK)
            berth_err_set(err, BERTH_UNKNOWN, "list tasks: unexpected answer");
        goto out;
    }
    if (nodes != NULL &&
        sw_call(c, "GET", "/nodes", NULL, NULL, deadline, nodes, "list nodes", err) != 200) {
        if (err->code == BERTH_OK)
            berth_err_set(err, BERTH_UNKNOWN, "list nodes: unexpected answer");
        goto out;
    }
    rc = 0;
out:
    buf_release(&filter);
    buf_release(&path);
    return rc;
}

void sw_spec_opts(const struct docker_ctx *c, const struct backend_update_opts *u,
                  struct swarm_spec_opts *out)
{
    memset(out, 0, sizeof(*out));
    out->pids_limit = c->pids_limit;
    out->ingress = c->swarm != NULL && c->swarm->ingress;
    out->parallelism = u != NULL && u->parallelism > 0 ? u->parallelism : 1;
    out->monitor_ms = u != NULL ? u->min_ready_ms : 0;
}

void sw_wipe(struct buf *hdr)
{
    if (hdr->data != NULL)
        memset(hdr->data, 0, hdr->len);
    buf_release(hdr);
}

/* GET /images/{image}/json: 1 when this node has it, 0 when not. */
static int sw_has_image(struct docker_ctx *c, const char *image, int64_t deadline,
                        struct berth_err *err)
{
    struct engine_response resp;
    struct buf path;
    int rc = -1;

    engine_response_init(&resp);
    buf_init(&path, DOCKER_PATH_MAX);
    if (buf_appends(&path, "/images/", err) < 0 || engine_append_escaped(&path, image, err) < 0 ||
        buf_appends(&path, "/json", err) < 0 ||
        engine_request(c->engine, "GET", path.data, NULL, deadline, &resp, err) < 0)
        goto out;
    if (resp.status == 200 || resp.status == 404)
        rc = resp.status == 200;
    else
        engine_fail(&resp, engine_status_code(resp.status), "inspect image", err);
out:
    buf_release(&path);
    engine_response_release(&resp);
    return rc;
}

int sw_prepare_image(struct docker_ctx *c, const struct backend_spec *t, int64_t deadline,
                     struct buf *hdr, struct berth_err *err)
{
    char q[DOCKER_QUOTE_MAX + 8];
    char *auth = NULL;
    int have, rc = -1;

    berth_err_quote(q, sizeof(q), t->image != NULL ? t->image : "", DOCKER_QUOTE_MAX);
    if (t->image == NULL || t->image[0] == '\0')
        return berth_err_set(err, BERTH_INVALID_ARGUMENT, "image is required");
    if (docker_check_registry(c, t->image, err) < 0)
        return -1;
    switch (t->pull_policy) {
    case BACKEND_PULL_ALWAYS:
        if (docker_pull_image(c, t->image, deadline, err) < 0)
            return -1;
        break;
    case BACKEND_PULL_REFRESH: {
        struct berth_err pull_err;

        berth_err_clear(&pull_err);
        if (docker_pull_image(c, t->image, deadline, &pull_err) == 0)
            break;
        /* Not refreshed: the image this node has, if it has one, is used. */
        if (pull_err.code == BERTH_DEADLINE_EXCEEDED ||
            (have = sw_has_image(c, t->image, deadline, err)) < 0) {
            if (pull_err.code == BERTH_DEADLINE_EXCEEDED)
                *err = pull_err;
            return -1;
        }
        if (!have) {
            *err = pull_err;
            return -1;
        }
        log_warn("swarm.pull_skipped",
                 "image=%s reason=\"pull failed, the local image is used\" code=%s", q,
                 berth_code_name(pull_err.code));
        break;
    }
    case BACKEND_PULL_NEVER:
    case BACKEND_PULL_IF_MISSING:
        have = sw_has_image(c, t->image, deadline, err);
        if (have < 0)
            return -1;
        if (have)
            break;
        if (t->pull_policy == BACKEND_PULL_NEVER)
            return berth_err_set(err, BERTH_FAILED_PRECONDITION,
                                 "image '%s' is not on this host and the pull policy is NEVER", q);
        if (docker_pull_image(c, t->image, deadline, err) < 0)
            return -1;
        break;
    }
    if (docker_pulls_auth_header(c->pulls, t->image, deadline, &auth, err) < 0)
        return -1;
    if (auth == NULL || buf_printf(hdr, err, "X-Registry-Auth: %s", auth) == 0)
        rc = 0;
    if (auth != NULL) {
        memset(auth, 0, strlen(auth));
        free(auth);
    }
    return rc;
}

/* A create whose answer was lost may have made the service: remove it when
 * it is there with this spec (callers serialise apply and delete of a set,
 * so no one else made it meanwhile). Best effort, logged. */
static void sw_remove_unknown(struct docker_ctx *c, const struct backend_replica_spec *spec,
                              const char *name)
{
    int64_t deadline = berth_now_ms() + SW_ROLLBACK_MS;
    struct swarm_service svc;
    struct engine_response resp;
    struct berth_err e;
    struct buf path;
    cJSON *root = NULL;

    berth_err_clear(&e);
    engine_response_init(&resp);
    buf_init(&path, DOCKER_PATH_MAX);
    if (sw_find(c, spec->kind, spec->id, deadline, &root, &svc, &e) == SW_OURS &&
        strcmp(svc.digest, spec->digest) == 0 && buf_appends(&path, "/services/", &e) == 0 &&
        engine_append_escaped(&path, svc.service_id, &e) == 0 &&
        engine_request_anyway(c->engine, "DELETE", path.data, NULL, deadline, &resp, &e) == 0)
        log_info("swarm.rollback", "service=%s status=%d", name, resp.status);
    else if (e.code != BERTH_OK) {
        struct log_quoted lq;
        log_warn("swarm.rollback", "service=%s code=%s error=%s", name, berth_code_name(e.code),
                 log_quote(&lq, e.msg));
    }
    cJSON_Delete(root);
    buf_release(&path);
    engine_response_release(&resp);
}

static int sw_apply(void *ctx, const struct backend_replica_spec *spec, int64_t deadline,
                    struct backend_apply_result *out, struct berth_err *err)
{
    struct docker_ctx *c = ctx;
    struct backend_apply_result res = {0};
    struct swarm_service svc;
    struct swarm_spec_opts so;
    const char *kname;
    const char *headers[2] = {NULL, NULL};
    cJSON *root = NULL, *body = NULL;
    char *json = NULL;
    struct buf name, hdr;
    int found, st, prepared = 0, rc = -1;

    if (sw_check_kind(spec->kind, err) < 0)
        return -1;
    kname = object_kind_info(spec->kind)->name;
    if (spec->replicas < 1 || spec->replicas > BACKEND_MAX_REPLICAS)
        return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                             "%s '%s': %u replicas is not from 1 to %d", kname, spec->id,
                             spec->replicas, BACKEND_MAX_REPLICAS);
    buf_init(&name, DOCKER_PATH_MAX);
    buf_init(&hdr, DOCKER_PATH_MAX);
    sw_spec_opts(c, NULL, &so);
    if (buf_printf(&name, err, "%s%s", swarm_name_prefix(spec->kind), spec->id) < 0)
        goto out;
    for (int attempt = 0; attempt < 2; attempt++) {
        found = sw_find(c, spec->kind, spec->id, deadline, &root, &svc, err);
        if (found < 0)
            goto out;
        if (found == SW_FOREIGN) {
            berth_err_set(err, BERTH_ALREADY_EXISTS, "%s '%s': a service named '%s' already exists",
                          kname, spec->id, name.data);
            goto out;
        }
        if (found == SW_OURS) {
            /* Swarm itself keeps the tasks of a service whole: a retry of
             * the same spec has nothing to do. The digest leaves the count
             * out, so it is compared on its own. */
            if (strcmp(svc.digest, spec->digest) != 0 || strcmp(svc.ns, spec->ns) != 0 ||
                svc.wanted != spec->replicas) {
                berth_err_set(err, BERTH_ALREADY_EXISTS,
                              "%s '%s' already exists with a different spec", kname, spec->id);
                goto out;
            }
            res.existing = svc.wanted;
            break;
        }
        if (!prepared) {
            if (sw_prepare_image(c, &spec->tmpl, deadline, &hdr, err) < 0)
                goto out;
            headers[0] = hdr.len > 0 ? hdr.data : NULL;
            prepared = 1;
        }
        body = swarm_json_service_spec(spec, name.data, &so);
        json = body ? cJSON_PrintUnformatted(body) : NULL;
        if (json == NULL) {
            berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
            goto out;
        }
        st = sw_call(c, "POST", "/services/create", json, headers, deadline, NULL, "create service",
                     err);
        if (st < 0) {
            if (err->code == BERTH_UNAVAILABLE || err->code == BERTH_DEADLINE_EXCEEDED)
                sw_remove_unknown(c, spec, name.data);
            goto out;
        }
        if (st == 404) {
            berth_err_set(err, BERTH_NOT_FOUND, "%s '%s': create service: not found", kname,
                          spec->id);
            goto out;
        }
        if (st != 409) {
            res.added = spec->replicas;
            log_info("swarm.service_created",
                     "kind=%s id=%s service=%s replicas=%u publish=%s credential=%s", kname,
                     spec->id, name.data, spec->replicas, so.ingress ? "ingress" : "host",
                     headers[0] != NULL ? "yes" : "no");
            break;
        }
        /* Made meanwhile: look again once. */
        cJSON_Delete(body);
        cJSON_free(json);
        body = NULL;
        json = NULL;
        if (attempt == 1) {
            berth_err_set(err, BERTH_ALREADY_EXISTS, "%s '%s': service '%s' already exists", kname,
                          spec->id, name.data);
            goto out;
        }
    }
    if (out != NULL)
        *out = res;
    rc = 0;
out:
    cJSON_Delete(root);
    cJSON_Delete(body);
    cJSON_free(json);
    sw_wipe(&hdr);
    buf_release(&name);
    return rc;
}

static int sw_get(void *ctx, enum object_kind kind, const char *ns, const char *id,
                  int64_t deadline, struct backend_replica_set *out, struct berth_err *err)
{
    struct docker_ctx *c = ctx;
    struct swarm_service svc;
    cJSON *root = NULL, *tasks = NULL, *nodes = NULL;
    int found, rc = -1;

    if (sw_check_kind(kind, err) < 0)
        return -1;
    found = sw_find(c, kind, id, deadline, &root, &svc, err);
    if (found < 0)
        goto out;
    if (found != SW_OURS || strcmp(svc.ns, ns) != 0) {
        berth_err_set(err, BERTH_NOT_FOUND, "%s '%s' not found", object_kind_info(kind)->name, id);
        goto out;
    }
    if (sw_fetch_tasks(c, svc.service_id, 1, deadline, &tasks, &nodes, err) < 0)
        goto out;
    rc = swarm_json_fill_set(kind, &svc, tasks, nodes, out, err);
out:
    cJSON_Delete(nodes);
    cJSON_Delete(tasks);
    cJSON_Delete(root);
    return rc;
}

static int sw_set_cmp(const void *a, const void *b)
{
    const struct backend_replica_set *x = a, *y = b;
    int c = strcmp(x->id, y->id);

    return c != 0 ? c : strcmp(x->ns, y->ns);
}

static int sw_list(void *ctx, enum object_kind kind, const char *id, int64_t deadline,
                   struct backend_replica_set_list *out, struct berth_err *err)
{
    const struct object_kind_info *k = object_kind_info(kind);
    struct docker_ctx *c = ctx;
    struct backend_replica_set_list sets = {0};
    struct buf path;
    cJSON *filter = NULL, *labels, *services = NULL, *tasks = NULL, *nodes = NULL;
    const cJSON *s;
    char *fjson = NULL;
    int rc = -1, bad = 0;

    buf_init(&path, DOCKER_PATH_MAX);
    if (sw_check_kind(kind, err) < 0)
        goto out;
    filter = cJSON_CreateObject();
    labels = filter ? cJSON_AddArrayToObject(filter, "label") : NULL;
    bad = labels == NULL;
    if (!bad) {
        bad |= !cJSON_AddItemToArray(labels, cJSON_CreateString(LABEL_MANAGED "=true"));
        bad |= !cJSON_AddItemToArray(labels, cJSON_CreateString(k->kind_filter));
    }
    if (!bad && id != NULL) {
        struct buf l;
        buf_init(&l, DOCKER_PATH_MAX);
        bad |= buf_printf(&l, err, "%s=%s", k->id_label, id) < 0 ||
               !cJSON_AddItemToArray(labels, cJSON_CreateString(l.data));
        buf_release(&l);
    }
    fjson = bad ? NULL : cJSON_PrintUnformatted(filter);
    if (fjson == NULL) {
        berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    if (buf_appends(&path, "/services?filters=", err) < 0 ||
        engine_append_escaped(&path, fjson, err) < 0)
        goto out;
    if (sw_call(c, "GET", path.data, NULL, NULL, deadline, &services, "list services", err) !=
        200) {
        if (err->code == BERTH_OK)
            berth_err_set(err, BERTH_UNKNOWN, "list services: unexpected answer");
        goto out;
    }
    if (cJSON_GetArraySize(services) > 0 &&
        sw_fetch_tasks(c, NULL, 1, deadline, &tasks, &nodes, err) < 0)
        goto out;
    sets.items = calloc((size_t)cJSON_GetArraySize(services) + 1, sizeof(*sets.items));
    if (sets.items == NULL) {
        berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    cJSON_ArrayForEach(s, services)
    {
        struct swarm_service svc;
        /* The filter asked the Engine; the labels are checked here again. */
        if (swarm_json_service(s, kind, &svc) < 0 || (id != NULL && strcmp(svc.id, id) != 0))
            continue;
        if (swarm_json_fill_set(kind, &svc, tasks, nodes, &sets.items[sets.n], err) < 0)
            goto out;
        sets.n++;
    }
    if (sets.n > 1)
        qsort(sets.items, sets.n, sizeof(*sets.items), sw_set_cmp);
    *out = sets;
    sets.items = NULL;
    sets.n = 0;
    rc = 0;
out:
    backend_replica_set_list_release(&sets);
    cJSON_Delete(nodes);
    cJSON_Delete(tasks);
    cJSON_Delete(services);
    cJSON_Delete(filter);
    cJSON_free(fjson);
    buf_release(&path);
    return rc;
}

static int sw_delete(void *ctx, enum object_kind kind, const char *ns, const char *id,
                     int64_t deadline, size_t *removed, struct berth_err *err)
{
    struct docker_ctx *c = ctx;
    struct swarm_service svc;
    struct buf path;
    cJSON *root = NULL;
    size_t gone = 0;
    int found, st, rc = -1;

    buf_init(&path, DOCKER_PATH_MAX);
    if (sw_check_kind(kind, err) < 0)
        goto out;
    found = sw_find(c, kind, id, deadline, &root, &svc, err);
    if (found < 0)
        goto out;
    /* None of ours in that namespace: nothing to remove. */
    if (found == SW_OURS && strcmp(svc.ns, ns) == 0) {
        if (buf_appends(&path, "/services/", err) < 0 ||
            engine_append_escaped(&path, svc.service_id, err) < 0)
            goto out;
        st = sw_call(c, "DELETE", path.data, NULL, NULL, deadline, NULL, "remove service", err);
        if (st < 0)
            goto out;
        if (st != 404) {
            gone = svc.wanted;
            log_info("swarm.service_removed", "kind=%s id=%s service=%s",
                     object_kind_info(kind)->name, id, svc.name);
        }
    }
    if (removed != NULL)
        *removed = gone;
    rc = 0;
out:
    cJSON_Delete(root);
    buf_release(&path);
    return rc;
}

/* ---- logs ----------------------------------------------------------------- */

/* An instance's handle is its task id; a VM's a full container id. For a
 * task of a berthd set: 1 with *base = "/tasks/<id>" and *tty; 0 when
 * there is no such task (the id may be a container's); -1 with err. The
 * Engine fetches a task's output from whichever node runs it. */
static int sw_task_target(struct docker_ctx *c, const char *id, int64_t deadline, struct buf *base,
                          int *tty, struct berth_err *err)
{
    struct buf path;
    cJSON *task = NULL;
    enum object_kind kind;
    const char *oid;
    int st, rc = -1;

    buf_init(&path, DOCKER_PATH_MAX);
    if (strlen(id) == SW_ID_HEX) {
        rc = 0;
        goto out;
    }
    if (buf_appends(&path, "/tasks/", err) < 0 || engine_append_escaped(&path, id, err) < 0)
        goto out;
    st = sw_call(c, "GET", path.data, NULL, NULL, deadline, &task, "inspect task", err);
    if (st < 0)
        goto out;
    if (st != 200) {
        rc = 0;
        goto out;
    }
    if (swarm_json_task_object(task, &kind, &oid) < 0) {
        char q[DOCKER_QUOTE_MAX + 8];

        berth_err_quote(q, sizeof(q), id, DOCKER_QUOTE_MAX);
        berth_err_set(err, BERTH_NOT_FOUND, "task '%s': No such task", q);
        goto out;
    }
    *tty = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(task, "Spec"),
                                         "ContainerSpec"),
        "TTY"));
    if (buf_appends(base, path.data, err) < 0)
        goto out;
    rc = 1;
out:
    cJSON_Delete(task);
    buf_release(&path);
    return rc;
}

static int sw_logs(void *ctx, const char *id, const struct backend_log_query *q, int64_t deadline,
                   struct backend_log_list *out, struct berth_err *err)
{
    struct docker_ctx *c = ctx;
    struct buf base;
    int tty = 0, rc;

    if (id == NULL || id[0] == '\0')
        return berth_err_set(err, BERTH_INVALID_ARGUMENT, "container id is empty");
    buf_init(&base, DOCKER_PATH_MAX);
    rc = sw_task_target(c, id, deadline, &base, &tty, err);
    if (rc == 1)
        rc = docker_logs_read(c, base.data, tty, q, deadline, out, err);
    else if (rc == 0)
        rc = docker_backend_ops.logs(ctx, id, q, deadline, out, err);
    buf_release(&base);
    return rc;
}

static int sw_logs_follow(void *ctx, const char *id, const struct backend_log_query *q,
                          int64_t deadline, const atomic_int *stop, backend_log_fn on_line,
                          void *arg, struct berth_err *err)
{
    struct docker_ctx *c = ctx;
    struct buf base;
    int tty = 0, rc;

    if (id == NULL || id[0] == '\0')
        return berth_err_set(err, BERTH_INVALID_ARGUMENT, "container id is empty");
    buf_init(&base, DOCKER_PATH_MAX);
    rc = sw_task_target(c, id, deadline, &base, &tty, err);
    if (rc == 1)
        rc = docker_logs_stream(c, base.data, tty, q, deadline, stop, on_line, arg, err);
    else if (rc == 0)
        rc = docker_backend_ops.logs_follow(ctx, id, q, deadline, stop, on_line, arg, err);
    buf_release(&base);
    return rc;
}
