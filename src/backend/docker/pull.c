/* The Docker backend's image pulls (see docker_internal.h): the registry's
 * credential from the client config file as X-Registry-Auth, one pull per
 * reference however many creates wait for it, the progress stream read with
 * a silence limit and an overall limit, and the Engine's pull errors mapped
 * to what a caller can act on. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "berth/buf.h"
#include "berth/clock.h"
#include "berth/log.h"
#include "docker_internal.h"
#include "registry_auth.h"

/* Layers whose download sizes one pull keeps track of. */
#define DOCKER_PULL_LAYERS_MAX 256

/* One pull under way, shared by every create that needs the reference. */
struct docker_flight {
    char *ref; /* owned */
    int done;  /* pulls->lock */
    int rc;    /* pulls->lock: the pull's answer once done */
    struct berth_err err;
    unsigned refs; /* pulls->lock: the leader and every waiter */
    struct docker_flight *next;
};

struct docker_pulls {
    char *auth_path; /* owned, NULL: no file; the reloading thread's only */
    int auth_optional;
    int64_t progress_ms, total_ms;

    pthread_rwlock_t auth_lock; /* readers while a header is made, the writer to swap */
    struct registry_auth *auth; /* auth_lock */

    pthread_mutex_t lock;
    pthread_cond_t done_cv; /* CLOCK_MONOTONIC */
    struct docker_flight *flights;
    struct backend_pull_stats stats;
};

struct docker_layer {
    char id[72];
    int64_t current;
};

/* What the progress stream reader keeps. */
struct docker_pull_read {
    int failed;
    char msg[BERTH_ERR_MSG_MAX];
    struct docker_layer *layers;
    size_t n_layers;
};

static int docker_pull_run(struct docker_ctx *c, const char *image, int64_t deadline,
                           struct berth_err *err);
static int docker_pull_split_ref(const char *ref, struct buf *name, struct buf *tag,
                                 struct berth_err *err);
static int docker_pull_on_line(void *arg, const char *line, size_t len);
static enum berth_code docker_pull_text_code(const char *msg, enum berth_code fallback);
static void docker_pull_record(struct docker_pulls *p, const struct berth_err *err, int rc,
                               int64_t duration_us, uint64_t bytes);
static void docker_flight_put(struct docker_pulls *p, struct docker_flight *f);

/* Engine texts that mean the registry refused us. Checked first: they win
 * over the not-found ones. */
static const char *const docker_denied_markers[] = {
    "unauthorized", "no basic auth credentials",        "authentication required",
    "denied: ",     "access to the resource is denied", "incorrect username or password",
};
/* Texts that mean "there is no such image" rather than "try later". */
static const char *const docker_not_found_markers[] = {
    "not found",          "does not exist", "manifest unknown",
    "pull access denied", "No such image",  "name unknown",
};

const char *backend_pull_outcome_name(enum backend_pull_outcome o)
{
    static const char *const names[BACKEND_PULL_OUTCOME_COUNT] = {
        "ok", "not_found", "denied", "unavailable", "timeout", "error"};

    return (unsigned)o < BACKEND_PULL_OUTCOME_COUNT ? names[o] : "unknown";
}

/* --- setup -------------------------------------------------------------------- */

int docker_pulls_new(const char *auth_path, int auth_optional, int64_t progress_ms,
                     int64_t total_ms, struct docker_pulls **out, struct berth_err *err)
{
    struct docker_pulls *p = calloc(1, sizeof(*p));
    pthread_condattr_t ca;

    if (p == NULL)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    p->auth_optional = auth_optional;
    p->progress_ms = progress_ms > 0 ? progress_ms : DOCKER_PULL_PROGRESS_DEFAULT_MS;
    p->total_ms = total_ms > 0 ? total_ms : DOCKER_PULL_TOTAL_DEFAULT_MS;
    pthread_rwlock_init(&p->auth_lock, NULL);
    pthread_mutex_init(&p->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->done_cv, &ca);
    pthread_condattr_destroy(&ca);
    if (auth_path != NULL && auth_path[0] != '\0') {
        p->auth_path = strdup(auth_path);
        if (p->auth_path == NULL) {
            docker_pulls_free(p);
            return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        }
        if (registry_auth_load(p->auth_path, auth_optional, &p->auth, err) < 0) {
            docker_pulls_free(p);
            return -1;
        }
    }
    *out = p;
    return 0;
}

void docker_pulls_free(struct docker_pulls *p)
{
    if (p == NULL)
        return;
    registry_auth_free(p->auth);
    pthread_rwlock_destroy(&p->auth_lock);
    pthread_cond_destroy(&p->done_cv);
    pthread_mutex_destroy(&p->lock);
    free(p->auth_path);
    free(p);
}

int docker_pulls_reload_auth(struct docker_pulls *p, const char *path, int optional,
                             struct berth_err *err)
{
    struct registry_auth *fresh = NULL, *old;
    char *copy = NULL;

    if (path == NULL) { /* the file in use, if any */
        if (p->auth_path == NULL)
            return 0;
        path = p->auth_path;
        optional = p->auth_optional;
    }
    if (path[0] != '\0') {
        copy = strdup(path);
        if (copy == NULL)
            return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        if (registry_auth_load(copy, optional, &fresh, err) < 0) {
            free(copy);
            return -1; /* the credentials read before stay */
        }
    }
    pthread_rwlock_wrlock(&p->auth_lock);
    old = p->auth;
    p->auth = fresh;
    pthread_rwlock_unlock(&p->auth_lock);
    registry_auth_free(old);
    free(p->auth_path);
    p->auth_path = copy;
    p->auth_optional = optional;
    log_info("docker.registry_auth_loaded", "entries=%zu", registry_auth_count(fresh));
    return 0;
}

void docker_pull_stats(void *ctx, struct backend_pull_stats *out)
{
    struct docker_ctx *c = ctx;

    pthread_mutex_lock(&c->pulls->lock);
    *out = c->pulls->stats;
    pthread_mutex_unlock(&c->pulls->lock);
}

/* --- single flight ------------------------------------------------------------ */

int docker_pull_image(struct docker_ctx *c, const char *image, int64_t deadline,
                      struct berth_err *err)
{
    struct docker_pulls *p = c->pulls;

    for (;;) {
        struct docker_flight *f;
        int leader = 0, rc;

        pthread_mutex_lock(&p->lock);
        for (f = p->flights; f != NULL; f = f->next)
            if (strcmp(f->ref, image) == 0)
                break;
        if (f == NULL) {
            f = calloc(1, sizeof(*f));
            if (f != NULL)
                f->ref = strdup(image);
            if (f == NULL || f->ref == NULL) {
                pthread_mutex_unlock(&p->lock);
                free(f);
                return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
            }
            f->next = p->flights;
            p->flights = f;
            leader = 1;
        }
        f->refs++;
        pthread_mutex_unlock(&p->lock);

        if (leader) {
            struct docker_flight **pp;

            rc = docker_pull_run(c, image, deadline, err);
            pthread_mutex_lock(&p->lock);
            f->rc = rc;
            if (rc < 0)
                f->err = *err;
            f->done = 1;
            for (pp = &p->flights; *pp != NULL; pp = &(*pp)->next)
                if (*pp == f) {
                    *pp = f->next;
                    break;
                }
            pthread_cond_broadcast(&p->done_cv);
            pthread_mutex_unlock(&p->lock);
            docker_flight_put(p, f);
            return rc;
        }

        /* A waiter: the leader's answer, unless the caller's deadline comes first. */
        pthread_mutex_lock(&p->lock);
        while (!f->done) {
            if (deadline == BERTH_NO_DEADLINE) {
                pthread_cond_wait(&p->done_cv, &p->lock);
                continue;
            }
            int64_t left = berth_deadline_left_ms(deadline);
            struct timespec ts;

            if (left == 0)
                break;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            ts.tv_sec += (time_t)(left / 1000);
            ts.tv_nsec += (long)(left % 1000) * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&p->done_cv, &p->lock, &ts);
        }
        if (!f->done) {
            pthread_mutex_unlock(&p->lock);
            docker_flight_put(p, f);
            return berth_err_set(err, BERTH_DEADLINE_EXCEEDED,
                                 "deadline passed while the image was being pulled");
        }
        rc = f->rc;
        if (rc < 0)
            *err = f->err;
        pthread_mutex_unlock(&p->lock);
        docker_flight_put(p, f);
        /* The leader ran out of its own time: a waiter with time left tries
         * again (as the next leader, or joining one). */
        if (rc < 0 && (err->code == BERTH_DEADLINE_EXCEEDED || err->code == BERTH_CANCELED) &&
            berth_deadline_left_ms(deadline) > 0 && !engine_refuses_calls(c->engine))
            continue;
        return rc;
    }
}

static void docker_flight_put(struct docker_pulls *p, struct docker_flight *f)
{
    int last;

    pthread_mutex_lock(&p->lock);
    last = --f->refs == 0;
    pthread_mutex_unlock(&p->lock);
    if (last) {
        free(f->ref);
        free(f);
    }
}

/* --- one pull ----------------------------------------------------------------- */

/* POST /images/create?fromImage=&tag= with the registry's credential, its
 * progress stream read to the end. */
static int docker_pull_run(struct docker_ctx *c, const char *image, int64_t deadline,
                           struct berth_err *err)
{
    struct docker_pulls *p = c->pulls;
    struct engine_response resp;
    struct docker_pull_read pr;
    struct engine_stream_opts opts;
    struct image_ref ref;
    struct buf name, tag, path, hdr;
    const char *headers[2] = {NULL, NULL};
    char *auth = NULL;
    char q[DOCKER_QUOTE_MAX + 8], what[DOCKER_QUOTE_MAX + 32];
    int64_t start = berth_now_us(), limit;
    uint64_t bytes = 0;
    int rc = -1;

    engine_response_init(&resp);
    buf_init(&name, DOCKER_PATH_MAX);
    buf_init(&tag, DOCKER_PATH_MAX);
    buf_init(&path, DOCKER_PATH_MAX);
    buf_init(&hdr, DOCKER_PATH_MAX);
    memset(&pr, 0, sizeof(pr));
    berth_err_quote(q, sizeof(q), image, DOCKER_QUOTE_MAX);
    snprintf(what, sizeof(what), "pull image '%s'", q);
    if (image_ref_parse(image, "image", &ref, err) < 0 ||
        docker_pull_split_ref(image, &name, &tag, err) < 0)
        goto out;
    if (buf_appends(&path, "/images/create?fromImage=", err) < 0 ||
        engine_append_escaped(&path, name.data, err) < 0 || buf_appends(&path, "&tag=", err) < 0 ||
        engine_append_escaped(&path, tag.data, err) < 0)
        goto out;
    limit = berth_deadline_min(deadline, p->total_ms);
    pthread_rwlock_rdlock(&p->auth_lock);
    if (p->auth != NULL)
        rc = registry_auth_header(p->auth, ref.host, limit, &auth, err);
    else
        rc = 0;
    pthread_rwlock_unlock(&p->auth_lock);
    if (rc < 0)
        goto out;
    rc = -1;
    if (auth != NULL) {
        if (buf_printf(&hdr, err, "X-Registry-Auth: %s", auth) < 0)
            goto out;
        headers[0] = hdr.data;
    }
    opts.headers = headers;
    opts.idle_ms = p->progress_ms;
    log_info("docker.pull", "image=%s registry=%s credential=%s", q, ref.host,
             auth != NULL ? "yes" : "no");
    if (engine_stream_with(c->engine, "POST", path.data, NULL, limit, NULL, &opts,
                           docker_pull_on_line, &pr, &resp, err) < 0) {
        if (err->code == BERTH_DEADLINE_EXCEEDED && berth_deadline_left_ms(deadline) > 5)
            berth_err_set(err, BERTH_DEADLINE_EXCEEDED, "%s: took longer than the pull timeout",
                          what);
        else if (err->code == BERTH_UNAVAILABLE && strstr(err->msg, "nothing arrived") != NULL)
            berth_err_set(err, BERTH_UNAVAILABLE, "%s: no progress for %lld s", what,
                          (long long)(p->progress_ms / 1000));
        goto out;
    }
    if (resp.status < 200 || resp.status >= 300) {
        char text[BERTH_ERR_MSG_MAX];
        enum berth_code code;

        engine_error_text(&resp, text, sizeof(text));
        code = docker_pull_text_code(text, resp.status == 404 ? BERTH_NOT_FOUND
                                                              : engine_status_code(resp.status));
        if (code == BERTH_PERMISSION_DENIED)
            berth_err_set(err, code, "%s: registry '%s' refused the credential: %s", what, ref.host,
                          text);
        else
            berth_err_set(err, code, "%s: %s", what, text);
        goto out;
    }
    if (pr.failed) {
        enum berth_code code = docker_pull_text_code(pr.msg, BERTH_UNAVAILABLE);

        if (code == BERTH_PERMISSION_DENIED)
            berth_err_set(err, code, "%s: registry '%s' refused the credential: %s", what, ref.host,
                          pr.msg);
        else
            berth_err_set(err, code, "%s: %s", what, pr.msg);
        goto out;
    }
    rc = 0;
out:
    for (size_t i = 0; i < pr.n_layers; i++)
        bytes += pr.layers[i].current > 0 ? (uint64_t)pr.layers[i].current : 0;
    docker_pull_record(p, err, rc, berth_now_us() - start, bytes);
    if (rc < 0) {
        struct log_quoted lq;

        log_warn("docker.pull_failed", "image=%s code=%s error=%s", q, berth_code_name(err->code),
                 log_quote(&lq, err->msg));
    } else {
        log_info("docker.pulled", "image=%s bytes=%llu duration_ms=%lld", q,
                 (unsigned long long)bytes, (long long)((berth_now_us() - start) / 1000));
    }
    free(pr.layers);
    if (auth != NULL) {
        memset(auth, 0, strlen(auth));
        free(auth);
    }
    if (hdr.data != NULL)
        memset(hdr.data, 0, hdr.len);
    buf_release(&hdr);
    buf_release(&path);
    buf_release(&tag);
    buf_release(&name);
    engine_response_release(&resp);
    return rc;
}

static void docker_pull_record(struct docker_pulls *p, const struct berth_err *err, int rc,
                               int64_t duration_us, uint64_t bytes)
{
    enum backend_pull_outcome o = BACKEND_PULL_OK;

    if (rc < 0)
        switch (err->code) {
        case BERTH_NOT_FOUND:
            o = BACKEND_PULL_NOT_FOUND;
            break;
        case BERTH_PERMISSION_DENIED:
        case BERTH_UNAUTHENTICATED:
            o = BACKEND_PULL_DENIED;
            break;
        case BERTH_UNAVAILABLE:
        case BERTH_CANCELED:
            o = BACKEND_PULL_UNAVAILABLE;
            break;
        case BERTH_DEADLINE_EXCEEDED:
            o = BACKEND_PULL_TIMEOUT;
            break;
        default:
            o = BACKEND_PULL_OTHER_ERROR;
            break;
        }
    pthread_mutex_lock(&p->lock);
    p->stats.by_outcome[o]++;
    p->stats.latency_bucket[latency_bucket(duration_us)]++;
    p->stats.count++;
    p->stats.latency_sum_s += (double)duration_us / 1e6;
    p->stats.bytes += bytes;
    pthread_mutex_unlock(&p->lock);
}

/* A progress line: {"status": "Downloading", "id": ..., "progressDetail":
 * {"current": N}} counts bytes; {"errorDetail": {"message": ...}, "error":
 * ...} ends the stream as a failure. */
static int docker_pull_on_line(void *arg, const char *line, size_t len)
{
    struct docker_pull_read *pr = arg;
    cJSON *root = cJSON_ParseWithLength(line, len);
    const cJSON *detail, *msg = NULL, *status, *id, *progress, *cur;
    int stop = 0;

    detail = cJSON_GetObjectItemCaseSensitive(root, "errorDetail");
    if (detail != NULL)
        msg = cJSON_GetObjectItemCaseSensitive(detail, "message");
    if (!cJSON_IsString(msg))
        msg = cJSON_GetObjectItemCaseSensitive(root, "error");
    if (cJSON_IsString(msg) || detail != NULL) {
        pr->failed = 1;
        berth_err_quote(pr->msg, sizeof(pr->msg),
                        cJSON_IsString(msg) ? msg->valuestring : "error without a message",
                        sizeof(pr->msg) - 8);
        stop = 1;
        goto out;
    }
    status = cJSON_GetObjectItemCaseSensitive(root, "status");
    id = cJSON_GetObjectItemCaseSensitive(root, "id");
    progress = cJSON_GetObjectItemCaseSensitive(root, "progressDetail");
    cur = cJSON_GetObjectItemCaseSensitive(progress, "current");
    if (cJSON_IsString(status) && strcmp(status->valuestring, "Downloading") == 0 &&
        cJSON_IsString(id) && cJSON_IsNumber(cur) && strlen(id->valuestring) < 72) {
        size_t i;

        for (i = 0; i < pr->n_layers; i++)
            if (strcmp(pr->layers[i].id, id->valuestring) == 0)
                break;
        if (i == pr->n_layers && pr->n_layers < DOCKER_PULL_LAYERS_MAX) {
            struct docker_layer *more =
                realloc(pr->layers, (pr->n_layers + 1) * sizeof(*pr->layers));

            if (more != NULL) {
                pr->layers = more;
                snprintf(more[i].id, sizeof(more[i].id), "%s", id->valuestring);
                more[i].current = 0;
                pr->n_layers++;
            }
        }
        if (i < pr->n_layers && cur->valuedouble > (double)pr->layers[i].current)
            pr->layers[i].current = (int64_t)cur->valuedouble;
    }
out:
    cJSON_Delete(root);
    return stop;
}

static enum berth_code docker_pull_text_code(const char *msg, enum berth_code fallback)
{
    for (size_t i = 0; i < sizeof(docker_denied_markers) / sizeof(docker_denied_markers[0]); i++)
        if (strstr(msg, docker_denied_markers[i]) != NULL)
            return BERTH_PERMISSION_DENIED;
    for (size_t i = 0; i < sizeof(docker_not_found_markers) / sizeof(docker_not_found_markers[0]);
         i++)
        if (strstr(msg, docker_not_found_markers[i]) != NULL)
            return BERTH_NOT_FOUND;
    return fallback;
}

/* An image reference as the pull endpoint wants it: "reg:5000/a/b:1.2" ->
 * "reg:5000/a/b" + "1.2"; "a/b@sha256:..." -> "a/b" + "sha256:..." (a
 * digest wins over a tag); no tag -> "latest". */
static int docker_pull_split_ref(const char *ref, struct buf *name, struct buf *tag,
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
