/* Updates of Swarm services (backend_ops.replica_update, see
 * swarm_internal.h): POST /services/{id}/update?version=N and a wait for
 * the Swarm to finish.
 *
 * Another replica count of the same template changes only the count (the
 * task template, the instance ids' env included, covers every slot), so no
 * task is replaced; berthd waits until that many tasks run, and sets the
 * count back when they do not in time. Which tasks a scale-down stops is
 * the Swarm's choice (it keeps nodes balanced), so the instances left keep
 * their own ids, which need not be the lowest.
 *
 * Another template is the Swarm's rolling update: parallelism tasks at a
 * time, each new one running before its old one stops, rolled back by the
 * Swarm itself when a new task fails (its UpdateConfig). berthd waits for
 * UpdateStatus to say completed, with every running task of the new spec
 * (each task's container carries the spec digest), or rolled back; a new
 * task that does not run within the ready timeout, or a deadline that
 * passes, has berthd ask for the rollback itself. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "../docker/docker_internal.h"
#include "berth/buf.h"
#include "berth/clock.h"
#include "berth/engine_client.h"
#include "berth/labels.h"
#include "berth/log.h"
#include "swarm_internal.h"

#define SU_POLL_MS 200      /* how often the service and its tasks are read */
#define SU_RETRIES 3        /* updates that lost a race with another writer */
#define SU_ROLLBACK_MS 5000 /* asking for a rollback after the deadline gets this long */
#define SU_WHY_MAX 160

/* One update under way. */
struct su_update {
    struct docker_ctx *c;
    const struct backend_replica_spec *spec;
    struct backend_update_opts opts;
    const char *kname;
    const char *service_id; /* heap */
    const char *const *headers;
    unsigned from_n; /* replicas before */
};

/* What the tasks of the service say. */
struct su_tasks {
    unsigned desired;     /* tasks meant to run */
    unsigned running;     /* of those, running */
    unsigned new_desired; /* of those meant to run, of the new spec */
    unsigned new_running; /* running ones of the new spec */
};

static void su_sleep(int64_t ms, int64_t deadline);
static int su_post(struct su_update *u, const char *body, const char *query, int64_t deadline,
                   struct berth_err *err);
static int su_count(struct su_update *u, int64_t deadline, struct su_tasks *out,
                    struct berth_err *err);
static int su_scale_body(struct su_update *u, const cJSON *svc, unsigned replicas, char **out,
                         struct berth_err *err);
static int su_set_count(struct su_update *u, unsigned replicas, int64_t deadline,
                        struct berth_err *err);
static int su_wait_scale(struct su_update *u, int64_t deadline, struct berth_err *err);
static void su_why(struct su_update *u, int64_t deadline, const char *status_msg, char *why,
                   size_t len);
static void su_rollback(struct su_update *u);
static void su_wait_settled(struct su_update *u, int64_t deadline);
static int su_wait_rollout(struct su_update *u, const char *before, int64_t deadline,
                           struct berth_err *err);

/* Sleep ms, not past the deadline. */
static void su_sleep(int64_t ms, int64_t deadline)
{
    int64_t left = berth_deadline_left_ms(deadline);
    struct timespec ts;

    if (left < ms)
        ms = left;
    if (ms <= 0)
        return;
    ts.tv_sec = (time_t)(ms / 1000);
    ts.tv_nsec = (long)(ms % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) < 0)
        ;
}

/* POST /services/{id}/update?version=<current>[query] with body. A write
 * that lost the race with another one ("update out of sequence") is
 * aborted, for the caller to read the service again. */
static int su_post(struct su_update *u, const char *body, const char *query, int64_t deadline,
                   struct berth_err *err)
{
    struct engine_response resp;
    struct buf path;
    int rc = -1;

    engine_response_init(&resp);
    buf_init(&path, DOCKER_PATH_MAX);
    if (buf_appends(&path, "/services/", err) < 0 ||
        engine_append_escaped(&path, u->service_id, err) < 0 ||
        buf_printf(&path, err, "/update?%s", query) < 0)
        goto out;
    if (engine_request_with(u->c->engine, "POST", path.data, body, u->headers, deadline, &resp,
                            err) < 0)
        goto out;
    if (resp.status < 200 || resp.status >= 300) {
        char text[BERTH_ERR_MSG_MAX];
        enum berth_code code = engine_status_code(resp.status);

        engine_error_text(&resp, text, sizeof(text));
        if (strstr(text, "out of sequence") != NULL)
            code = BERTH_ABORTED;
        else if (resp.status == 404)
            code = BERTH_NOT_FOUND;
        berth_err_set(err, code, "%s '%s': update service: %s", u->kname, u->spec->id, text);
        goto out;
    }
    rc = 0;
out:
    buf_release(&path);
    engine_response_release(&resp);
    return rc;
}

/* The tasks of the service now. */
static int su_count(struct su_update *u, int64_t deadline, struct su_tasks *out,
                    struct berth_err *err)
{
    cJSON *tasks = NULL;
    const cJSON *t;

    memset(out, 0, sizeof(*out));
    if (sw_fetch_tasks(u->c, u->service_id, 1, deadline, &tasks, NULL, err) < 0)
        return -1;
    cJSON_ArrayForEach(t, tasks)
    {
        const char *sid = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(t, "ServiceID"));
        const char *desired =
            cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(t, "DesiredState"));
        const char *state = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(t, "Status"), "State"));
        int running = state != NULL && strcmp(state, "running") == 0;

        if (sid == NULL || strcmp(sid, u->service_id) != 0 || desired == NULL ||
            strcmp(desired, "running") != 0)
            continue;
        int fresh = strcmp(swarm_json_task_digest(t), u->spec->digest) == 0;

        out->desired++;
        out->running += running;
        out->new_desired += fresh;
        out->new_running += running && fresh;
    }
    cJSON_Delete(tasks);
    return 0;
}

/* The service's own spec with another replica count (and its label): only
 * the count changes, no task is replaced. *out is the caller's. */
static int su_scale_body(struct su_update *u, const cJSON *svc, unsigned replicas, char **out,
                         struct berth_err *err)
{
    cJSON *spec = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(svc, "Spec"), 1);
    cJSON *mode = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(spec, "Mode"),
                                                   "Replicated");
    cJSON *labels = cJSON_GetObjectItemCaseSensitive(spec, "Labels");
    char n[16];
    int bad;

    *out = NULL;
    if (!cJSON_IsObject(mode) || !cJSON_IsObject(labels)) {
        cJSON_Delete(spec);
        return berth_err_set(err, BERTH_FAILED_PRECONDITION,
                             "%s '%s': its service is no replicated service", u->kname,
                             u->spec->id);
    }
    snprintf(n, sizeof(n), "%u", replicas);
    cJSON_DeleteItemFromObjectCaseSensitive(mode, "Replicas");
    cJSON_DeleteItemFromObjectCaseSensitive(labels, LABEL_REPLICAS);
    bad = cJSON_AddNumberToObject(mode, "Replicas", replicas) == NULL ||
          cJSON_AddStringToObject(labels, LABEL_REPLICAS, n) == NULL;
    *out = bad ? NULL : cJSON_PrintUnformatted(spec);
    cJSON_Delete(spec);
    if (*out == NULL)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    return 0;
}

/* Set the service's replica count, retrying a lost race. */
static int su_set_count(struct su_update *u, unsigned replicas, int64_t deadline,
                        struct berth_err *err)
{
    for (int attempt = 0;; attempt++) {
        cJSON *svc = NULL;
        char *body = NULL;
        char query[48];
        int rc;

        berth_err_clear(err);
        if (sw_inspect(u->c, u->service_id, deadline, &svc, err) < 0)
            return -1;
        snprintf(query, sizeof(query), "version=%" PRId64, swarm_json_version(svc));
        if (su_scale_body(u, svc, replicas, &body, err) < 0) {
            cJSON_Delete(svc);
            return -1;
        }
        rc = su_post(u, body, query, deadline, err);
        cJSON_free(body);
        cJSON_Delete(svc);
        if (rc == 0 || err->code != BERTH_ABORTED || attempt + 1 >= SU_RETRIES)
            return rc;
    }
}

/* After a scale: until exactly the new count of tasks is meant to run and
 * runs. Past the ready timeout or the deadline the count goes back. */
static int su_wait_scale(struct su_update *u, int64_t deadline, struct berth_err *err)
{
    int64_t timeout = u->opts.ready_timeout_ms;
    int64_t by = timeout > 0 ? berth_deadline_min(deadline, timeout) : deadline;
    unsigned m = u->spec->replicas;
    struct su_tasks t;

    for (;;) {
        if (su_count(u, deadline, &t, err) < 0)
            return -1;
        if (t.desired == m && t.running == m)
            return 0;
        if (berth_now_ms() >= by)
            break;
        su_sleep(SU_POLL_MS, by);
    }
    {
        struct berth_err e;

        berth_err_clear(&e);
        if (su_set_count(u, u->from_n, berth_now_ms() + SU_ROLLBACK_MS, &e) < 0) {
            struct log_quoted lq;
            log_warn("swarm.scale_back", "kind=%s id=%s code=%s error=%s", u->kname, u->spec->id,
                     berth_code_name(e.code), log_quote(&lq, e.msg));
        }
    }
    return berth_err_set(err, BERTH_DEADLINE_EXCEEDED,
                         "%s '%s': %u of %u replicas ran by the %s; scaled back to %u", u->kname,
                         u->spec->id, t.running < m ? t.running : m, m,
                         by < deadline ? "ready timeout" : "deadline", u->from_n);
}

/* Why the Swarm rolled the update back: the failure of a task of the new
 * spec, else the update status's message. */
static void su_why(struct su_update *u, int64_t deadline, const char *status_msg, char *why,
                   size_t len)
{
    cJSON *tasks = NULL;
    const cJSON *t;
    struct berth_err e;

    berth_err_clear(&e);
    snprintf(why, len, "the update failed (%s)", status_msg[0] ? status_msg : "no reason given");
    if (sw_fetch_tasks(u->c, u->service_id, 0, deadline, &tasks, NULL, &e) < 0)
        return;
    cJSON_ArrayForEach(t, tasks)
    {
        const cJSON *status = cJSON_GetObjectItemCaseSensitive(t, "Status");
        const cJSON *slot = cJSON_GetObjectItemCaseSensitive(t, "Slot");
        const char *state = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(status, "State"));
        const char *text = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(status, "Err"));

        if (strcmp(swarm_json_task_digest(t), u->spec->digest) != 0 || state == NULL ||
            (strcmp(state, "failed") != 0 && strcmp(state, "rejected") != 0))
            continue;
        if (text == NULL || text[0] == '\0')
            text = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(status, "Message"));
        snprintf(why, len, "replica %d of the new spec %s: %.100s",
                 cJSON_IsNumber(slot) ? (int)slot->valuedouble - 1 : -1, state,
                 text != NULL ? text : "no reason given");
        break;
    }
    cJSON_Delete(tasks);
}

/* Ask the Swarm to roll the service back to its previous spec (the body is
 * required and ignored). Best effort, logged: the Swarm does the rest. */
static void su_rollback(struct su_update *u)
{
    int64_t deadline = berth_now_ms() + SU_ROLLBACK_MS;
    struct berth_err e;

    for (int attempt = 0; attempt < SU_RETRIES; attempt++) {
        cJSON *svc = NULL;
        char *body = NULL;
        char query[64];
        int rc = -1;

        berth_err_clear(&e);
        if (sw_inspect(u->c, u->service_id, deadline, &svc, &e) == 0) {
            snprintf(query, sizeof(query), "version=%" PRId64 "&rollback=previous",
                     swarm_json_version(svc));
            body = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(svc, "Spec"));
            if (body != NULL)
                rc = su_post(u, body, query, deadline, &e);
        }
        cJSON_free(body);
        cJSON_Delete(svc);
        if (rc == 0) {
            log_info("swarm.rollback_asked", "kind=%s id=%s", u->kname, u->spec->id);
            return;
        }
        if (e.code != BERTH_ABORTED)
            break;
    }
    struct log_quoted lq;
    log_warn("swarm.rollback_failed", "kind=%s id=%s code=%s error=%s", u->kname, u->spec->id,
             berth_code_name(e.code), log_quote(&lq, e.msg));
}

/* After the Swarm rolled an update back: until the old count of tasks of
 * the old spec runs again (a slot whose new task failed gets its old spec
 * back only after the restart delay), within the ready timeout and the
 * deadline. Whatever it finds then, the answer stays the rollback's. */
static void su_wait_settled(struct su_update *u, int64_t deadline)
{
    int64_t timeout = u->opts.ready_timeout_ms;
    int64_t by = timeout > 0 ? berth_deadline_min(deadline, timeout) : deadline;
    struct su_tasks t;
    struct berth_err e;

    for (;;) {
        berth_err_clear(&e);
        if (su_count(u, by, &t, &e) < 0)
            return;
        if (t.desired == u->from_n && t.running == u->from_n && t.new_desired == 0)
            return;
        if (berth_now_ms() >= by) {
            log_warn("swarm.rollback_unsettled", "kind=%s id=%s running=%u wanted=%u", u->kname,
                     u->spec->id, t.running, u->from_n);
            return;
        }
        su_sleep(SU_POLL_MS, by);
    }
}

/* After a new template: until the Swarm's update completed with every task
 * of the new spec running, or was rolled back. `before` is the update
 * status's start time before this update (a status still showing an older
 * update is not this one's). */
static int su_wait_rollout(struct su_update *u, const char *before, int64_t deadline,
                           struct berth_err *err)
{
    int64_t timeout = u->opts.ready_timeout_ms, progress_at = berth_now_ms();
    unsigned m = u->spec->replicas, best = 0;
    int rolling_back = 0;
    char why[SU_WHY_MAX];

    for (;;) {
        cJSON *svc = NULL;
        const char *state;
        struct su_tasks t;
        int fresh;

        if (sw_inspect(u->c, u->service_id, deadline, &svc, err) < 0)
            return -1;
        fresh = strcmp(swarm_json_update_started(svc), before) != 0;
        state = fresh ? swarm_json_update_state(svc) : "";
        if (strcmp(state, "rollback_completed") == 0 || strcmp(state, "rollback_paused") == 0 ||
            strcmp(state, "paused") == 0) {
            const char *msg = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(svc, "UpdateStatus"), "Message"));
            char st[32];

            snprintf(st, sizeof(st), "%s", state);
            su_why(u, deadline, msg != NULL ? msg : "", why, sizeof(why));
            cJSON_Delete(svc);
            if (strcmp(st, "rollback_completed") == 0) {
                su_wait_settled(u, deadline);
                return berth_err_set(err, BERTH_FAILED_PRECONDITION, "%s '%s': %s; rolled back",
                                     u->kname, u->spec->id, why);
            }
            return berth_err_set(err, BERTH_FAILED_PRECONDITION,
                                 "%s '%s': %s; the swarm %s the update", u->kname, u->spec->id, why,
                                 strcmp(st, "paused") == 0 ? "paused" : "paused rolling back");
        }
        rolling_back |= strcmp(state, "rollback_started") == 0;
        {
            int completed = strcmp(state, "completed") == 0;

            cJSON_Delete(svc);
            if (su_count(u, deadline, &t, err) < 0)
                return -1;
            if (completed && t.desired == m && t.new_running == m)
                return 0;
        }
        if (t.new_running > best) {
            best = t.new_running;
            progress_at = berth_now_ms();
        }
        if (!rolling_back && timeout > 0 && berth_now_ms() - progress_at >= timeout) {
            su_rollback(u);
            return berth_err_set(err, BERTH_DEADLINE_EXCEEDED,
                                 "%s '%s': replica %u of the new spec was not ready within %" PRId64
                                 " ms; rolled back",
                                 u->kname, u->spec->id, best, timeout);
        }
        if (berth_deadline_left_ms(deadline) == 0) {
            if (!rolling_back)
                su_rollback(u);
            return berth_err_set(err, BERTH_DEADLINE_EXCEEDED,
                                 "%s '%s': %u of %u replicas of the new spec ran by the deadline; "
                                 "rolled back",
                                 u->kname, u->spec->id, best, m);
        }
        su_sleep(SU_POLL_MS, deadline);
    }
}

int sw_update(void *ctx, const struct backend_replica_spec *spec,
              const struct backend_update_opts *opts, int64_t deadline,
              struct backend_update_result *out, struct berth_err *err)
{
    struct docker_ctx *c = ctx;
    struct backend_update_result res = {0};
    struct su_update u;
    struct swarm_service svc;
    struct swarm_spec_opts so;
    const char *headers[2] = {NULL, NULL};
    cJSON *root = NULL, *body = NULL;
    char *json = NULL, *before = NULL;
    struct buf hdr;
    int found, scale, rc = -1;

    memset(&u, 0, sizeof(u));
    buf_init(&hdr, DOCKER_PATH_MAX);
    u.c = c;
    u.spec = spec;
    u.kname = object_kind_info(spec->kind)->name;
    if (opts != NULL)
        u.opts = *opts;
    if (spec->kind != OBJECT_GATEWAY && spec->kind != OBJECT_DEPLOYMENT) {
        berth_err_set(err, BERTH_INTERNAL, "kind %d has no replica sets", (int)spec->kind);
        goto out;
    }
    if (spec->replicas < 1 || spec->replicas > BACKEND_MAX_REPLICAS) {
        berth_err_set(err, BERTH_INVALID_ARGUMENT, "%s '%s': %u replicas is not from 1 to %d",
                      u.kname, spec->id, spec->replicas, BACKEND_MAX_REPLICAS);
        goto out;
    }
    found = sw_find(c, spec->kind, spec->id, deadline, &root, &svc, err);
    if (found < 0)
        goto out;
    if (found != SW_OURS || strcmp(svc.ns, spec->ns) != 0) {
        berth_err_set(err, BERTH_NOT_FOUND, "%s '%s' not found", u.kname, spec->id);
        goto out;
    }
    if (strcmp(svc.digest, spec->digest) == 0 && svc.wanted == spec->replicas) {
        rc = 0; /* the set is that already: nothing touched */
        goto done;
    }
    scale = strcmp(svc.digest, spec->digest) == 0;
    u.from_n = svc.wanted > 0 ? svc.wanted : spec->replicas;
    u.service_id = strdup(svc.service_id);
    before = strdup(swarm_json_update_started(root));
    if (u.service_id == NULL || before == NULL) {
        berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    /* The image is checked and the credential sent even for a scale: a
     * node that never ran the service pulls with the credential as it is
     * now. */
    if (sw_prepare_image(c, &spec->tmpl, deadline, &hdr, err) < 0)
        goto out;
    headers[0] = hdr.len > 0 ? hdr.data : NULL;
    u.headers = headers;
    if (scale) {
        if (su_set_count(&u, spec->replicas, deadline, err) < 0 ||
            su_wait_scale(&u, deadline, err) < 0)
            goto out;
    } else {
        char query[48];

        sw_spec_opts(c, opts, &so);
        body = swarm_json_service_spec(spec, svc.name, &so);
        json = body != NULL ? cJSON_PrintUnformatted(body) : NULL;
        if (json == NULL) {
            berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
            goto out;
        }
        for (int attempt = 0;; attempt++) {
            snprintf(query, sizeof(query), "version=%" PRId64, swarm_json_version(root));
            berth_err_clear(err);
            if (su_post(&u, json, query, deadline, err) == 0)
                break;
            if (err->code != BERTH_ABORTED || attempt + 1 >= SU_RETRIES)
                goto out;
            cJSON_Delete(root);
            root = NULL;
            if (sw_inspect(c, u.service_id, deadline, &root, err) < 0)
                goto out;
        }
        log_info("swarm.update_started", "kind=%s id=%s replicas=%u parallelism=%u", u.kname,
                 spec->id, spec->replicas, so.parallelism);
        if (su_wait_rollout(&u, before, deadline, err) < 0)
            goto out;
    }
    if (scale) {
        res.added = spec->replicas > u.from_n ? spec->replicas - u.from_n : 0;
        res.removed = u.from_n > spec->replicas ? u.from_n - spec->replicas : 0;
    } else {
        res.replaced = u.from_n < spec->replicas ? u.from_n : spec->replicas;
        res.added = spec->replicas > u.from_n ? spec->replicas - u.from_n : 0;
        res.removed = u.from_n > spec->replicas ? u.from_n - spec->replicas : 0;
    }
    log_info("swarm.updated", "kind=%s id=%s replicas=%u replaced=%zu added=%zu removed=%zu",
             u.kname, spec->id, spec->replicas, res.replaced, res.added, res.removed);
    rc = 0;
done:
    if (out != NULL)
        *out = res;
out:
    cJSON_Delete(root);
    cJSON_Delete(body);
    cJSON_free(json);
    free(before);
    free((char *)u.service_id);
    sw_wipe(&hdr);
    return rc;
}
