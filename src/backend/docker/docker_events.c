/* The Engine's event stream, filtered to berthd's containers, turned into
 * backend events (see backend_ops.watch). */
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "berth/buf.h"
#include "berth/labels.h"
#include "berth/clock.h"
#include "berth/docker_backend.h"
#include "berth/log.h"
#include "docker_internal.h"

#define EVENTS_PATH_MAX 2048

struct events_reader {
    backend_event_fn fn;
    void *arg;
    const char *instance; /* only this instance's containers */
};

static int events_on_line(void *arg, const char *line, size_t len);
static const char *events_attr(const cJSON *attrs, const char *key);
static const char *events_object_id(const cJSON *attrs, const char *kind);

static const char *events_attr(const cJSON *attrs, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(attrs, key);

    return cJSON_IsString(v) ? v->valuestring : "";
}

/* The id label that goes with a kind. */
static const char *events_object_id(const cJSON *attrs, const char *kind)
{
    if (strcmp(kind, "vm") == 0)
        return events_attr(attrs, LABEL_VM_ID);
    if (strcmp(kind, "gateway") == 0)
        return events_attr(attrs, LABEL_GATEWAY_ID);
    if (strcmp(kind, "deployment") == 0)
        return events_attr(attrs, LABEL_DEPLOYMENT_ID);
    return "";
}

static int events_on_line(void *arg, const char *line, size_t len)
{
    struct events_reader *r = arg;
    cJSON *root = cJSON_ParseWithLength(line, len);
    const cJSON *type, *action, *actor, *attrs, *id, *tnano;
    struct backend_event ev;
    const char *exit_code;

    if (root == NULL)
        return 0; /* a keep-alive blank line or garbage: skip */
    type = cJSON_GetObjectItemCaseSensitive(root, "Type");
    action = cJSON_GetObjectItemCaseSensitive(root, "Action");
    actor = cJSON_GetObjectItemCaseSensitive(root, "Actor");
    attrs = cJSON_GetObjectItemCaseSensitive(actor, "Attributes");
    id = cJSON_GetObjectItemCaseSensitive(actor, "ID");
    tnano = cJSON_GetObjectItemCaseSensitive(root, "timeNano");
    /* The filter asks for our label; still never act on another container. */
    if (!cJSON_IsString(type) || strcmp(type->valuestring, "container") != 0 ||
        !cJSON_IsString(action) || !cJSON_IsString(id) ||
        strcmp(events_attr(attrs, LABEL_MANAGED), LABEL_MANAGED_VALUE) != 0 ||
        strcmp(docker_json_instance_of(events_attr(attrs, LABEL_INSTANCE)), r->instance) != 0)
        goto out;
    memset(&ev, 0, sizeof(ev));
    ev.action = action->valuestring;
    ev.container_id = id->valuestring;
    ev.kind = events_attr(attrs, LABEL_KIND);
    ev.object_id = events_object_id(attrs, ev.kind);
    exit_code = events_attr(attrs, "exitCode");
    ev.exit_code = exit_code[0] ? (int)strtol(exit_code, NULL, 10) : -1;
    ev.time_unix_ns = cJSON_IsNumber(tnano) ? (int64_t)tnano->valuedouble : 0;
    log_debug("engine.event", "action=%s kind=%s object_id=%s container_id=%.12s", ev.action,
              ev.kind, ev.object_id, ev.container_id);
    r->fn(r->arg, &ev);
out:
    cJSON_Delete(root);
    return 0;
}

int docker_events_watch(void *ctx, int64_t since_unix_ns, const atomic_int *stop,
                        backend_event_fn fn, void *arg, struct berth_err *err)
{
    static const char filters[] =
        "{\"type\":[\"container\"],\"label\":[\"" LABEL_MANAGED "=" LABEL_MANAGED_VALUE "\"]}";
    struct docker_ctx *c = ctx;
    struct events_reader reader = {fn, arg, c->instance_id};
    struct engine_response resp;
    struct buf path;
    int rc = -1;

    engine_response_init(&resp);
    buf_init(&path, EVENTS_PATH_MAX);
    if (buf_printf(&path, err, "/events?since=%" PRId64 ".%09" PRId64 "&filters=",
                   since_unix_ns / 1000000000, since_unix_ns % 1000000000) < 0 ||
        engine_append_escaped(&path, filters, err) < 0)
        goto out;
    if (engine_stream(c->engine, "GET", path.data, NULL, BERTH_NO_DEADLINE, stop, events_on_line,
                      &reader, &resp, err) < 0)
        goto out;
    if (resp.status >= 300) {
        engine_fail(&resp, engine_status_code(resp.status), "events", err);
        goto out;
    }
    if (stop == NULL || !atomic_load(stop)) {
        berth_err_set(err, BERTH_UNAVAILABLE, "the engine closed its event stream");
        goto out;
    }
    rc = 0;
out:
    buf_release(&path);
    engine_response_release(&resp);
    return rc;
}
