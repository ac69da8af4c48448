/* The Swarm backend (see berth/swarm_backend.h): the Docker backend's
 * context and container operations, with replica sets as Swarm services
 * made and read through the same Engine client. */
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

/* What sw_find found under a set's service name. */
enum sw_found { SW_NONE = 0, SW_OURS, SW_FOREIGN };

static struct backend_ops swarm_ops;
static pthread_once_t swarm_ops_once = PTHREAD_ONCE_INIT;

static void sw_ops_init(void);
static int sw_check_kind(enum object_kind kind, struct berth_err *err);
static int sw_call(struct docker_ctx *c, const char *method, const char *path, const char *body,
                   int64_t deadline, cJSON **root, const char *what, struct berth_err *err);
static int sw_find(struct docker_ctx *c, enum object_kind kind, const char *id, int64_t deadline,
                   cJSON **root, struct swarm_service *svc, struct berth_err *err);
static int sw_fetch_tasks(struct docker_ctx *c, const char *service_id, int64_t deadline,
                          cJSON **tasks, cJSON **nodes, struct berth_err *err);
static void sw_remove_unknown(struct docker_ctx *c, const struct backend_replica_spec *spec,
                              const char *name);
static int sw_apply(void *ctx, const struct backend_replica_spec *spec, int64_t deadline,
                    struct backend_apply_result *out, struct berth_err *err);
static int sw_get(void *ctx, enum object_kind kind, const char *ns, const char *id,
                  int64_t deadline, struct backend_replica_set *out, struct berth_err *err);
static int sw_list(void *ctx, enum object_kind kind, const char *id, int64_t deadline,
                   struct backend_replica_set_list *out, struct berth_err *err);
static int sw_delete(void *ctx, enum object_kind kind, const char *ns, const char *id,
                     int64_t deadline, size_t *removed, struct berth_err *err);
static int sw_update(void *ctx, const struct backend_replica_spec *spec,
                     const struct backend_update_opts *opts, int64_t deadline,
                     struct backend_update_result *out, struct berth_err *err);

/* The Docker backend's table with the replica-set operations replaced. */
static void sw_ops_init(void)
{
    swarm_ops = docker_backend_ops;
    swarm_ops.name = "swarm";
    swarm_ops.replica_apply = sw_apply;
    swarm_ops.replica_get = sw_get;
    swarm_ops.replica_list = sw_list;
    swarm_ops.replica_delete = sw_delete;
    swarm_ops.replica_update = sw_update;
    /* A service is one object of the Engine's: never left half updated. */
    swarm_ops.replica_recover = NULL;
}

/* Swarm has rolling updates of its own (a service's UpdateConfig); berthd
 * does not drive them yet, so an update is refused before anything changes. */
static int sw_update(void *ctx, const struct backend_replica_spec *spec,
                     const struct backend_update_opts *opts, int64_t deadline,
                     struct backend_update_result *out, struct berth_err *err)
{
    (void)ctx;
    (void)opts;
    (void)deadline;
    (void)out;
    if (sw_check_kind(spec->kind, err) < 0)
        return -1;
    return berth_err_set(err, BERTH_UNIMPLEMENTED,
                         "%s '%s': the swarm backend cannot update a replica set yet; delete and "
                         "create it again",
                         object_kind_info(spec->kind)->name, spec->id);
}

int swarm_backend_new(const struct docker_backend_config *cfg, struct backend *out,
                      struct berth_err *err)
{
    if (pthread_once(&swarm_ops_once, sw_ops_init) != 0)
        return berth_err_set(err, BERTH_INTERNAL, "swarm backend: setup failed");
    if (docker_backend_new(cfg, out, err) < 0)
        return -1;
    out->ops = &swarm_ops;
    return 0;
}

static int sw_check_kind(enum object_kind kind, struct berth_err *err)
{
    if (kind != OBJECT_GATEWAY && kind != OBJECT_DEPLOYMENT)
        return berth_err_set(err, BERTH_INTERNAL, "kind %d has no replica sets", (int)kind);
    return 0;
}

/* One Engine call. A 2xx answer's JSON goes to *root (when root is not
 * NULL; the caller's), and the status is returned; so are 404 and 409,
 * which the callers read themselves. Any other answer fails with the
 * Engine's message: an Engine that is no Swarm manager is
 * failed_precondition, not a passing outage. */
static int sw_call(struct docker_ctx *c, const char *method, const char *path, const char *body,
                   int64_t deadline, cJSON **root, const char *what, struct berth_err *err)
{
    struct engine_response resp;
    int rc = -1;

    engine_response_init(&resp);
    if (engine_request(c->engine, method, path, body, deadline, &resp, err) < 0)
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

/* The service named for (kind, id): SW_OURS with *root (the caller's) and
 * *svc read from it, SW_FOREIGN when a service of that name is not
 * berthd's set of that kind and id, SW_NONE when there is none; -1 with err. */
static int sw_find(struct docker_ctx *c, enum object_kind kind, const char *id, int64_t deadline,
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
    st = sw_call(c, "GET", path.data, NULL, deadline, &r, "inspect service", err);
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

/* GET /tasks of a service (NULL: of every service) whose desired state is
 * running, and GET /nodes, for the addresses. */
static int sw_fetch_tasks(struct docker_ctx *c, const char *service_id, int64_t deadline,
                          cJSON **tasks, cJSON **nodes, struct berth_err *err)
{
    struct buf path, filter;
    int rc = -1;

    buf_init(&path, DOCKER_PATH_MAX);
    buf_init(&filter, DOCKER_PATH_MAX);
    if (buf_appends(&filter, "{\"desired-state\":[\"running\"]", err) < 0)
        goto out;
    if (service_id != NULL) {
        cJSON *s = cJSON_CreateString(service_id);
        char *q = s ? cJSON_PrintUnformatted(s) : NULL;
        int bad = q == NULL || buf_printf(&filter, err, ",\"service\":[%s]", q) < 0;
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
    if (sw_call(c, "GET", path.data, NULL, deadline, tasks, "list tasks", err) != 200) {
        if (err->code == BERTH_OK)
            berth_err_set(err, BERTH_UNKNOWN, "list tasks: unexpected answer");
        goto out;
    }
    if (sw_call(c, "GET", "/nodes", NULL, deadline, nodes, "list nodes", err) != 200) {
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
    const char *kname;
    cJSON *root = NULL, *body = NULL;
    char *json = NULL;
    struct buf name;
    int found, st, rc = -1;

    if (sw_check_kind(spec->kind, err) < 0)
        return -1;
    kname = object_kind_info(spec->kind)->name;
    if (spec->replicas < 1 || spec->replicas > BACKEND_MAX_REPLICAS)
        return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                             "%s '%s': %u replicas is not from 1 to %d", kname, spec->id,
                             spec->replicas, BACKEND_MAX_REPLICAS);
    buf_init(&name, DOCKER_PATH_MAX);
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
        body = swarm_json_service_spec(spec, name.data, c->pids_limit);
        json = body ? cJSON_PrintUnformatted(body) : NULL;
        if (json == NULL) {
            berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
            goto out;
        }
        st = sw_call(c, "POST", "/services/create", json, deadline, NULL, "create service", err);
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
            log_info("swarm.service_created", "kind=%s id=%s service=%s replicas=%u", kname,
                     spec->id, name.data, spec->replicas);
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
    if (sw_fetch_tasks(c, svc.service_id, deadline, &tasks, &nodes, err) < 0)
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
    if (sw_call(c, "GET", path.data, NULL, deadline, &services, "list services", err) != 200) {
        if (err->code == BERTH_OK)
            berth_err_set(err, BERTH_UNKNOWN, "list services: unexpected answer");
        goto out;
    }
    if (cJSON_GetArraySize(services) > 0 &&
        sw_fetch_tasks(c, NULL, deadline, &tasks, &nodes, err) < 0)
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
        st = sw_call(c, "DELETE", path.data, NULL, deadline, NULL, "remove service", err);
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
