/* The Docker Engine API client (see berth/engine_client.h): libcurl easy
 * handles over the Engine's unix socket, pooled so that each keeps its
 * keep-alive connection, the API version negotiated lazily from /version,
 * and curl and HTTP failures mapped to Connect codes once, here. */
#include "berth/engine_client.h"

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "berth/clock.h"
#include "berth/latency.h"
#include "berth/lock.h"
#include "berth/log.h"
#include "berth/sorted.h"

/* Idle handles kept for reuse; more than this many concurrent calls each
 * get a fresh handle that is closed afterwards. */
#define ENGINE_POOL_MAX 16

struct engine {
    char *socket_path; /* owned; immutable after engine_new */

    pthread_mutex_t lock;
    CURL **idle;                /* lock: idle handles (owned), ENGINE_POOL_MAX slots, LIFO */
    size_t n_idle;              /* lock */
    int api_minor;              /* lock: negotiated 1.N, 0 until known */
    struct engine_stats *stats; /* borrowed, may be NULL; immutable after engine_new */
    atomic_int canceled;        /* set once by engine_cancel_all, never cleared */
    atomic_int unresponsive;    /* engine_set_unresponsive: fail fast while set */
};

/* Counters of Engine calls (berth/engine_client.h). */
struct engine_stats {
    pthread_mutex_t lock;
    struct backend_call_stats ops[ENGINE_OP_MAX]; /* lock; sorted by op name */
    size_t n_ops;                                 /* lock */
    struct backend_call_stats other;              /* lock: calls past ENGINE_OP_MAX */
};

/* One transfer in flight: what the curl callbacks need. */
struct engine_xfer {
    CURL *h;
    struct engine_response *resp; /* borrowed */
    int streaming;
    engine_line_fn on_line;
    void *arg;
    const atomic_int *stop; /* borrowed, may be NULL */
    struct engine *e;       /* borrowed: canceled and unresponsive flags */
    int probe;              /* engine_probe, _anyway: runs while the engine is marked */
    int cut;                /* ended by the progress callback: why, below */
    struct buf line;        /* owned: the partial line of a stream */
    int stopped;            /* the caller ended the stream */
    int overflow;           /* a cap was hit; cb_err says which */
    struct berth_err cb_err;
    const char *const *headers; /* borrowed: extra request headers, NULL-terminated */
    int64_t idle_ms;            /* > 0: a stream silent this long is cut */
    int64_t last_data_ms;       /* when the last body bytes arrived */
    int idle_cut;               /* cut for its silence */
};

static int engine_seg_is_id(const char *seg, size_t len);
static CURL *engine_acquire(struct engine *e);
static void engine_release_handle(struct engine *e, CURL *h);
static int engine_negotiate(struct engine *e, int64_t deadline, int *minor_out,
                            struct berth_err *err);
static int engine_parse_api_version(const char *s, int *major, int *minor);
static int engine_perform(struct engine *e, const char *method, const char *url_path,
                          const char *json_body, int64_t deadline, struct engine_xfer *x,
                          struct berth_err *err);
static int engine_call(struct engine *e, const char *method, const char *path,
                       const char *json_body, int64_t deadline, struct engine_xfer *x,
                       struct berth_err *err);
static int engine_setup(CURL *h, const char *socket_path, const char *method, const char *url,
                        const char *json_body, struct curl_slist *headers, long timeout_ms,
                        long connect_ms, struct engine_xfer *x, char *errbuf);
static size_t engine_on_write(char *data, size_t size, size_t nmemb, void *userp);
static int engine_on_progress(void *userp, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                              curl_off_t ulnow);
static void engine_deliver_line(struct engine_xfer *x);
static const char *engine_refusal(struct engine *e, int probe);
static enum backend_outcome engine_outcome_of(CURLcode rc, long status, int stopped);
static void engine_op_add(struct backend_call_stats *o, enum backend_outcome outcome,
                          int64_t duration_us);
static int engine_map_curl(struct engine *e, CURLcode rc, const char *errbuf, int64_t deadline,
                           long timeout_ms, const char *method, const char *url_path,
                           struct berth_err *err);

/* --- process-wide setup -------------------------------------------------- */

int engine_global_init(struct berth_err *err)
{
    CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);

    if (rc != CURLE_OK)
        return berth_err_set(err, BERTH_INTERNAL, "curl init failed: %s", curl_easy_strerror(rc));
    return 0;
}

void engine_global_cleanup(void)
{
    curl_global_cleanup();
}

/* --- the engine object and its handle pool ------------------------------- */

int engine_new(const char *socket_path, struct engine **out, struct berth_err *err)
{
    struct engine *e = NULL;
    int rc = -1;

    if (socket_path == NULL || socket_path[0] == '\0') {
        berth_err_set(err, BERTH_INVALID_ARGUMENT, "engine socket path is empty");
        goto out;
    }
    e = calloc(1, sizeof(*e));
    if (e == NULL)
        goto oom;
    e->socket_path = strdup(socket_path);
    e->idle = calloc(ENGINE_POOL_MAX, sizeof(*e->idle));
    if (e->socket_path == NULL || e->idle == NULL)
        goto oom;
    if (pthread_mutex_init(&e->lock, NULL) != 0) {
        berth_err_set(err, BERTH_INTERNAL, "engine mutex init failed");
        goto out;
    }
    *out = e;
    e = NULL;
    rc = 0;
    goto out;
oom:
    berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
out:
    if (e != NULL) {
        free(e->socket_path);
        free(e->idle);
        free(e);
    }
    return rc;
}

void engine_free(struct engine *e)
{
    if (e == NULL)
        return;
    for (size_t i = 0; i < e->n_idle; i++)
        curl_easy_cleanup(e->idle[i]);
    lock_destroy(&e->lock);
    free(e->idle);
    free(e->socket_path);
    free(e);
}

void engine_cancel_all(struct engine *e)
{
    atomic_store(&e->canceled, 1);
}

int engine_canceled(struct engine *e)
{
    return atomic_load(&e->canceled) != 0;
}

void engine_set_unresponsive(struct engine *e, int on)
{
    atomic_store(&e->unresponsive, on ? 1 : 0);
}

int engine_probe(struct engine *e, int64_t deadline, struct berth_err *err)
{
    struct engine_response resp;
    struct engine_xfer x;
    int rc = -1;

    engine_response_init(&resp);
    memset(&x, 0, sizeof(x));
    x.resp = &resp;
    x.probe = 1;
    if (engine_perform(e, "GET", "/_ping", NULL, deadline, &x, err) < 0)
        goto out;
    if (resp.status != 200) {
        engine_fail(&resp, BERTH_UNAVAILABLE, "docker engine ping", err);
        goto out;
    }
    rc = 0;
out:
    engine_response_release(&resp);
    return rc;
}

/* Why a call (a probe or _anyway call when `probe`) must not start or go
 * on, or NULL when it may: the one place both flags are read. */
static const char *engine_refusal(struct engine *e, int probe)
{
    if (atomic_load(&e->canceled) != 0)
        return "shutting down";
    if (!probe && atomic_load(&e->unresponsive) != 0)
        return "the docker engine is not answering";
    return NULL;
}

/* A handle with default options but, when reused, its live connection.
 * NULL when curl cannot allocate one. The caller owns it until
 * engine_release_handle(). */
static CURL *engine_acquire(struct engine *e)
{
    CURL *h = NULL;

    lock_take(&e->lock);
    if (e->n_idle > 0)
        h = e->idle[--e->n_idle];
    lock_give(&e->lock);
    if (h != NULL) {
        curl_easy_reset(h); /* keeps the connection cache */
        return h;
    }
    return curl_easy_init();
}

/* Takes ownership of h back: to the pool, or closed when the pool is full. */
static void engine_release_handle(struct engine *e, CURL *h)
{
    if (h == NULL)
        return;
    lock_take(&e->lock);
    if (e->n_idle < ENGINE_POOL_MAX) {
        e->idle[e->n_idle++] = h;
        h = NULL;
    }
    lock_give(&e->lock);
    if (h != NULL)
        curl_easy_cleanup(h);
}

/* --- version negotiation -------------------------------------------------- */

/* "1.41" -> 1, 41. 0 on success. */
static int engine_parse_api_version(const char *s, int *major, int *minor)
{
    long v[2] = {0, 0};
    const char *p = s;

    for (int i = 0; i < 2; i++) {
        int digits = 0;

        while (*p >= '0' && *p <= '9') {
            if (v[i] > 100000)
                return -1;
            v[i] = v[i] * 10 + (*p - '0');
            p++;
            digits++;
        }
        if (digits == 0)
            return -1;
        if (i == 0 && *p++ != '.')
            return -1;
    }
    if (*p != '\0')
        return -1;
    *major = (int)v[0];
    *minor = (int)v[1];
    return 0;
}

/* The API minor version to speak: cached, or asked from GET /version (the
 * one unversioned path) now. The lock is never held across the request; two
 * threads negotiating at once get the same answer. */
static int engine_negotiate(struct engine *e, int64_t deadline, int *minor_out,
                            struct berth_err *err)
{
    struct engine_response resp;
    struct engine_xfer x;
    cJSON *root = NULL;
    const cJSON *ver;
    int major = 0, minor = 0, rc = -1;

    lock_take(&e->lock);
    minor = e->api_minor;
    lock_give(&e->lock);
    if (minor != 0) {
        *minor_out = minor;
        return 0;
    }

    engine_response_init(&resp);
    memset(&x, 0, sizeof(x));
    x.resp = &resp;
    if (engine_perform(e, "GET", "/version", NULL, deadline, &x, err) < 0)
        goto out;
    if (resp.status != 200) {
        char text[256];

        engine_error_text(&resp, text, sizeof(text));
        berth_err_set(err, BERTH_UNAVAILABLE, "docker engine version query answered %d: %s",
                      resp.status, text);
        goto out;
    }
    root = cJSON_Parse(resp.body.data ? resp.body.data : "");
    ver = cJSON_GetObjectItemCaseSensitive(root, "ApiVersion");
    if (!cJSON_IsString(ver) || engine_parse_api_version(ver->valuestring, &major, &minor) < 0) {
        berth_err_set(err, BERTH_UNAVAILABLE, "docker engine sent no usable ApiVersion");
        goto out;
    }
    if (major != 1 || minor < ENGINE_API_MIN_MINOR) {
        char quoted[32];

        berth_err_quote(quoted, sizeof(quoted), ver->valuestring, 16);
        berth_err_set(err, BERTH_FAILED_PRECONDITION,
                      "docker engine api '%s' is not supported (need 1.%d or newer)", quoted,
                      ENGINE_API_MIN_MINOR);
        goto out;
    }
    if (minor > ENGINE_API_MAX_MINOR)
        minor = ENGINE_API_MAX_MINOR;
    lock_take(&e->lock);
    e->api_minor = minor;
    lock_give(&e->lock);
    log_debug("engine.negotiated", "api_version=1.%d", minor);
    *minor_out = minor;
    rc = 0;
out:
    cJSON_Delete(root);
    engine_response_release(&resp);
    return rc;
}

int engine_api_version(struct engine *e, int64_t deadline, char *out, size_t outsz,
                       struct berth_err *err)
{
    int minor;

    if (engine_negotiate(e, deadline, &minor, err) < 0)
        return -1;
    snprintf(out, outsz, "1.%d", minor);
    return 0;
}

/* --- requests -------------------------------------------------------------- */

void engine_response_init(struct engine_response *r)
{
    r->status = 0;
    buf_init(&r->body, ENGINE_BODY_MAX);
}

void engine_response_release(struct engine_response *r)
{
    if (r == NULL)
        return;
    buf_release(&r->body);
    r->status = 0;
}

int engine_request(struct engine *e, const char *method, const char *path, const char *json_body,
                   int64_t deadline, struct engine_response *resp, struct berth_err *err)
{
    struct engine_xfer x;

    memset(&x, 0, sizeof(x));
    x.resp = resp;
    return engine_call(e, method, path, json_body, deadline, &x, err);
}

int engine_request_with(struct engine *e, const char *method, const char *path,
                        const char *json_body, const char *const *headers, int64_t deadline,
                        struct engine_response *resp, struct berth_err *err)
{
    struct engine_xfer x;

    memset(&x, 0, sizeof(x));
    x.resp = resp;
    x.headers = headers;
    return engine_call(e, method, path, json_body, deadline, &x, err);
}

int engine_request_anyway(struct engine *e, const char *method, const char *path,
                          const char *json_body, int64_t deadline, struct engine_response *resp,
                          struct berth_err *err)
{
    struct engine_xfer x;

    memset(&x, 0, sizeof(x));
    x.resp = resp;
    x.probe = 1;
    return engine_call(e, method, path, json_body, deadline, &x, err);
}

int engine_refuses_calls(struct engine *e)
{
    return engine_refusal(e, 0) != NULL;
}

int engine_stream(struct engine *e, const char *method, const char *path, const char *json_body,
                  int64_t deadline, const atomic_int *stop, engine_line_fn on_line, void *arg,
                  struct engine_response *resp, struct berth_err *err)
{
    return engine_stream_with(e, method, path, json_body, deadline, stop, NULL, on_line, arg, resp,
                              err);
}

int engine_stream_with(struct engine *e, const char *method, const char *path,
                       const char *json_body, int64_t deadline, const atomic_int *stop,
                       const struct engine_stream_opts *opts, engine_line_fn on_line, void *arg,
                       struct engine_response *resp, struct berth_err *err)
{
    struct engine_xfer x;
    int rc;

    memset(&x, 0, sizeof(x));
    if (opts != NULL) {
        x.headers = opts->headers;
        x.idle_ms = opts->idle_ms;
    }
    x.resp = resp;
    x.streaming = 1;
    x.on_line = on_line;
    x.arg = arg;
    x.stop = stop;
    buf_init(&x.line, ENGINE_LINE_MAX);
    rc = engine_call(e, method, path, json_body, deadline, &x, err);
    buf_release(&x.line);
    return rc;
}

/* Negotiate, then run one request on the versioned path. */
static int engine_call(struct engine *e, const char *method, const char *path,
                       const char *json_body, int64_t deadline, struct engine_xfer *x,
                       struct berth_err *err)
{
    struct buf url_path;
    int minor, rc = -1;

    buf_init(&url_path, 64 * 1024);
    if (path == NULL || path[0] != '/') {
        berth_err_set(err, BERTH_INTERNAL, "engine path must start with '/'");
        goto out;
    }
    if (engine_negotiate(e, deadline, &minor, err) < 0)
        goto out;
    if (buf_printf(&url_path, err, "/v1.%d%s", minor, path) < 0)
        goto out;
    rc = engine_perform(e, method, url_path.data, json_body, deadline, x, err);
out:
    buf_release(&url_path);
    return rc;
}

/* Run one transfer for `url_path` (already versioned, or /version). */
static int engine_perform(struct engine *e, const char *method, const char *url_path,
                          const char *json_body, int64_t deadline, struct engine_xfer *x,
                          struct berth_err *err)
{
    char errbuf[CURL_ERROR_SIZE];
    struct curl_slist *headers = NULL, *tmp;
    struct buf url;
    CURL *h = NULL;
    CURLcode crc;
    int64_t left, start;
    long timeout_ms, connect_ms, status = 0;
    const char *refused;
    int rc = -1;

    buf_init(&url, 64 * 1024);
    berth_err_clear(&x->cb_err);
    x->e = e;
    refused = engine_refusal(e, x->probe);
    if (refused != NULL) {
        berth_err_set(err, BERTH_UNAVAILABLE, "engine call '%s %s' not made: %s", method, url_path,
                      refused);
        goto out;
    }
    left = berth_deadline_left_ms(deadline);
    if (left == 0) {
        berth_err_set(err, BERTH_DEADLINE_EXCEEDED, "deadline passed before engine call '%s %s'",
                      method, url_path);
        goto out;
    }
    if (deadline == BERTH_NO_DEADLINE)
        timeout_ms = x->streaming ? 0 : ENGINE_DEFAULT_TIMEOUT_MS;
    else
        timeout_ms = left > LONG_MAX / 2 ? LONG_MAX / 2 : (long)left;
    connect_ms = ENGINE_CONNECT_TIMEOUT_MS;
    if (timeout_ms > 0 && timeout_ms < connect_ms)
        connect_ms = timeout_ms;

    if (buf_printf(&url, err, "http://localhost%s", url_path) < 0)
        goto out;
    if (json_body != NULL) {
        tmp = curl_slist_append(headers, "Content-Type: application/json");
        if (tmp == NULL)
            goto oom;
        headers = tmp;
    }
    tmp = curl_slist_append(headers, "Expect:");
    if (tmp == NULL)
        goto oom;
    headers = tmp;
    for (size_t i = 0; x->headers != NULL && x->headers[i] != NULL; i++) {
        tmp = curl_slist_append(headers, x->headers[i]);
        if (tmp == NULL)
            goto oom;
        headers = tmp;
    }

    h = engine_acquire(e);
    if (h == NULL)
        goto oom;
    x->h = h;
    errbuf[0] = '\0';
    if (engine_setup(h, e->socket_path, method, url.data, json_body, headers, timeout_ms,
                     connect_ms, x, errbuf) < 0) {
        berth_err_set(err, BERTH_INTERNAL, "curl refused an option");
        goto out;
    }

    start = berth_now_us();
    x->last_data_ms = berth_now_ms();
    crc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    log_debug("engine.request", "method=%s path=%s status=%ld curl=%d duration_ms=%lld", method,
              url_path, status, (int)crc, (long long)((berth_now_us() - start) / 1000));
    if (e->stats != NULL)
        engine_stats_record(e->stats, method, url_path, engine_outcome_of(crc, status, x->stopped),
                            berth_now_us() - start);

    if (x->overflow) {
        berth_err_set(err, x->cb_err.code, "engine answer to '%s %s': %s", method, url_path,
                      x->cb_err.msg);
        goto out;
    }
    if (crc != CURLE_OK && x->idle_cut) {
        berth_err_set(err, BERTH_UNAVAILABLE,
                      "engine call '%s %s' cut short: nothing arrived for %lld ms", method,
                      url_path, (long long)x->idle_ms);
        goto out;
    }
    if (crc != CURLE_OK && x->cut) {
        const char *why = engine_refusal(x->e, x->probe);
        berth_err_set(err, BERTH_UNAVAILABLE, "engine call '%s %s' cut short: %s", method, url_path,
                      why ? why : "canceled");
        goto out;
    }
    if (crc != CURLE_OK && !x->stopped) {
        engine_map_curl(e, crc, errbuf, deadline, timeout_ms, method, url_path, err);
        goto out;
    }
    if (x->streaming && !x->stopped && x->line.len > 0)
        engine_deliver_line(x); /* the last line had no '\n' */
    x->resp->status = (int)status;
    rc = 0;
    goto out;
oom:
    berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
out:
    if (h != NULL) {
        /* The handle must not point at our stack or headers once pooled. */
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
        engine_release_handle(e, h);
    }
    curl_slist_free_all(headers);
    buf_release(&url);
    return rc;
}

/* All options of one transfer. -1 when curl rejects one. */
static int engine_setup(CURL *h, const char *socket_path, const char *method, const char *url,
                        const char *json_body, struct curl_slist *headers, long timeout_ms,
                        long connect_ms, struct engine_xfer *x, char *errbuf)
{
    int bad = 0; /* any option curl rejected */

    bad |= curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, socket_path) != CURLE_OK;
    bad |= curl_easy_setopt(h, CURLOPT_URL, url) != CURLE_OK;
    bad |= curl_easy_setopt(h, CURLOPT_PROXY, "") != CURLE_OK; /* never one from the env */
    bad |= curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf) != CURLE_OK;
    bad |= curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers) != CURLE_OK;
    bad |= curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms) != CURLE_OK;
    bad |= curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, connect_ms) != CURLE_OK;
    bad |= curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, engine_on_write) != CURLE_OK;
    bad |= curl_easy_setopt(h, CURLOPT_WRITEDATA, x) != CURLE_OK;
    bad |= curl_easy_setopt(h, CURLOPT_USERAGENT, "berthd") != CURLE_OK;
    bad |= curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, engine_on_progress) != CURLE_OK;
    bad |= curl_easy_setopt(h, CURLOPT_XFERINFODATA, x) != CURLE_OK;
    bad |= curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L) != CURLE_OK;
    if (strcmp(method, "GET") == 0)
        bad |= curl_easy_setopt(h, CURLOPT_HTTPGET, 1L) != CURLE_OK;
    else if (strcmp(method, "POST") == 0)
        bad |= curl_easy_setopt(h, CURLOPT_POST, 1L) != CURLE_OK;
    else
        bad |= curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method) != CURLE_OK;
    if (json_body != NULL || strcmp(method, "POST") == 0) {
        const char *body = json_body != NULL ? json_body : "";

        bad |=
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body)) != CURLE_OK;
        bad |= curl_easy_setopt(h, CURLOPT_POSTFIELDS, body) != CURLE_OK;
    }
    return bad ? -1 : 0;
}

/* curl's body callback: buffer, or cut a 2xx stream into lines. Returning
 * anything but the size given aborts the transfer. */
static size_t engine_on_write(char *data, size_t size, size_t nmemb, void *userp)
{
    struct engine_xfer *x = userp;
    size_t n = size * nmemb, i = 0;
    long status = 0;

    x->last_data_ms = berth_now_ms();
    curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &status);
    if (!x->streaming || status < 200 || status >= 300) {
        if (buf_append(&x->resp->body, data, n, &x->cb_err) < 0) {
            x->overflow = 1;
            return 0;
        }
        return n;
    }
    while (i < n) {
        const char *nl = memchr(data + i, '\n', n - i);
        size_t seg = nl ? (size_t)(nl - (data + i)) : n - i;

        if (buf_append(&x->line, data + i, seg, &x->cb_err) < 0) {
            x->overflow = 1;
            return 0;
        }
        i += seg;
        if (nl == NULL)
            break;
        i++; /* the '\n' */
        engine_deliver_line(x);
        if (x->stopped)
            return 0;
    }
    return n;
}

/* Hand the buffered line (without a trailing '\r') to the caller and empty
 * it; empty lines are skipped. */
static void engine_deliver_line(struct engine_xfer *x)
{
    size_t len = x->line.len;
    const char *s = x->line.data ? x->line.data : "";

    if (len > 0 && s[len - 1] == '\r')
        len--;
    if (x->line.data != NULL)
        x->line.data[len] = '\0';
    if (len > 0 && x->on_line(x->arg, s, len) != 0)
        x->stopped = 1;
    buf_reset(&x->line);
}

/* curl's progress callback, called at least about once a second: the one
 * place a stalled transfer notices that the caller asked a stream to stop,
 * or that every call is being canceled. */
static int engine_on_progress(void *userp, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                              curl_off_t ulnow)
{
    struct engine_xfer *x = userp;

    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    if (engine_refusal(x->e, x->probe) != NULL) {
        x->cut = 1;
        return 1;
    }
    if (x->stop != NULL && atomic_load(x->stop) != 0) {
        x->stopped = 1;
        return 1;
    }
    if (x->idle_ms > 0 && berth_now_ms() - x->last_data_ms >= x->idle_ms) {
        x->idle_cut = 1;
        return 1;
    }
    return 0;
}

/* A curl failure as a Connect code: a timeout is deadline_exceeded when it
 * was the caller's deadline that ran out, unavailable when the default cap
 * or the connect timeout did; everything else is unavailable. */
static int engine_map_curl(struct engine *e, CURLcode rc, const char *errbuf, int64_t deadline,
                           long timeout_ms, const char *method, const char *url_path,
                           struct berth_err *err)
{
    const char *why = errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc);

    if (rc == CURLE_OPERATION_TIMEDOUT) {
        /* Within a few ms of the deadline counts as the deadline. */
        if (deadline != BERTH_NO_DEADLINE && berth_deadline_left_ms(deadline) <= 5)
            return berth_err_set(err, BERTH_DEADLINE_EXCEEDED,
                                 "engine call '%s %s' passed its deadline", method, url_path);
        return berth_err_set(err, BERTH_UNAVAILABLE,
                             "docker engine at '%s' did not answer '%s %s' in time (%ld ms): %s",
                             e->socket_path, method, url_path, timeout_ms, why);
    }
    if (rc == CURLE_ABORTED_BY_CALLBACK)
        return berth_err_set(err, BERTH_CANCELED, "engine call '%s %s' canceled", method, url_path);
    if (rc == CURLE_OUT_OF_MEMORY)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    return berth_err_set(err, BERTH_UNAVAILABLE, "docker engine at '%s' unreachable: %s",
                         e->socket_path, why);
}

/* --- helpers ---------------------------------------------------------------- */

int engine_append_escaped(struct buf *b, const char *s, struct berth_err *err)
{
    char *esc;
    int rc;

    /* The handle argument is ignored by libcurl 7.82 and later. */
    esc = curl_easy_escape(NULL, s, (int)strnlen(s, INT_MAX));
    if (esc == NULL)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    rc = buf_appends(b, esc, err);
    curl_free(esc);
    return rc;
}

void engine_error_text(const struct engine_response *r, char *out, size_t outsz)
{
    const char *body = r->body.data ? r->body.data : "";
    cJSON *root = cJSON_ParseWithLength(body, r->body.len);
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(root, "message");

    if (cJSON_IsString(msg))
        berth_err_quote(out, outsz, msg->valuestring, outsz > 8 ? outsz - 8 : 0);
    else if (body[0] != '\0')
        berth_err_quote(out, outsz, body, outsz > 8 ? outsz - 8 : 0);
    else
        snprintf(out, outsz, "HTTP %d", r->status);
    cJSON_Delete(root);
}

enum berth_code engine_status_code(int status)
{
    if (status == 400)
        return BERTH_INVALID_ARGUMENT;
    if (status == 401 || status == 403)
        return BERTH_PERMISSION_DENIED;
    if (status == 404)
        return BERTH_NOT_FOUND;
    if (status == 409)
        return BERTH_FAILED_PRECONDITION;
    if (status >= 500 && status <= 599)
        return BERTH_UNAVAILABLE;
    return BERTH_UNKNOWN;
}

int engine_fail(const struct engine_response *r, enum berth_code code, const char *what,
                struct berth_err *err)
{
    char text[BERTH_ERR_MSG_MAX];

    engine_error_text(r, text, sizeof(text));
    return berth_err_set(err, code, "%s: %s", what, text);
}

/* --- call counters ------------------------------------------------------------ */

void engine_set_stats(struct engine *e, struct engine_stats *s)
{
    e->stats = s;
}

/* A stream the caller stopped ended on purpose: that is not a failure. */
static enum backend_outcome engine_outcome_of(CURLcode rc, long status, int stopped)
{
    if (rc != CURLE_OK && !stopped)
        return BACKEND_OUTCOME_TRANSPORT_ERROR;
    if (status >= 500)
        return BACKEND_OUTCOME_SERVER_ERROR;
    if (status >= 400)
        return BACKEND_OUTCOME_CLIENT_ERROR;
    if (status == 0)
        return BACKEND_OUTCOME_TRANSPORT_ERROR;
    return BACKEND_OUTCOME_OK;
}

struct engine_stats *engine_stats_new(void)
{
    struct engine_stats *s = calloc(1, sizeof(*s));

    if (s == NULL)
        return NULL;
    if (pthread_mutex_init(&s->lock, NULL) != 0) {
        free(s);
        return NULL;
    }
    snprintf(s->other.op, sizeof(s->other.op), "other");
    return s;
}

void engine_stats_free(struct engine_stats *s)
{
    if (s == NULL)
        return;
    lock_destroy(&s->lock);
    free(s);
}

/* Whether a path segment after a collection names an object rather than
 * an action on the collection ("/containers/json", "/images/create"). */
static int engine_seg_is_id(const char *seg, size_t len)
{
    static const char *const verbs[] = {"json", "create", "prune", "load", "search", "get"};

    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
        if (strlen(verbs[i]) == len && memcmp(verbs[i], seg, len) == 0)
            return 0;
    return 1;
}

void engine_op_name(const char *method, const char *path, char *out, size_t outsz)
{
    struct buf b;
    const char *p = path, *end;
    int seg = 0;

    buf_init(&b, outsz > 0 ? outsz - 1 : 0);
    /* Drop the "/v1.41" prefix and the query. */
    if (p[0] == '/' && p[1] == 'v' && p[2] >= '0' && p[2] <= '9') {
        const char *q = strchr(p + 1, '/');
        p = q != NULL ? q : p + strlen(p);
    }
    end = p + strcspn(p, "?");
    if (buf_appends(&b, method, NULL) < 0 || buf_appends(&b, " ", NULL) < 0)
        goto out;
    while (p < end) {
        const char *s = p + 1;
        size_t len = strcspn(s, "/?");

        if (s + len > end)
            len = (size_t)(end - s);
        if (buf_appends(&b, "/", NULL) < 0)
            goto out;
        if (seg == 1 && engine_seg_is_id(s, len)) {
            if (buf_appends(&b, "{id}", NULL) < 0)
                goto out;
        } else if (buf_append(&b, s, len, NULL) < 0) {
            goto out;
        }
        p = s + len;
        seg++;
    }
out:
    snprintf(out, outsz, "%s", b.data != NULL ? b.data : method);
    buf_release(&b);
}

static void engine_op_add(struct backend_call_stats *o, enum backend_outcome outcome,
                          int64_t duration_us)
{
    double secs = (double)(duration_us > 0 ? duration_us : 0) / 1e6;
    size_t b;

    o->by_outcome[outcome]++;
    o->count++;
    o->latency_sum_s += secs;
    b = latency_bucket(duration_us);
    if (b < LATENCY_BUCKETS)
        o->latency_bucket[b]++;
}

static const char *call_stats_op(const void *elem)
{
    return ((const struct backend_call_stats *)elem)->op;
}

void engine_stats_record(struct engine_stats *s, const char *method, const char *path,
                         enum backend_outcome outcome, int64_t duration_us)
{
    char op[BACKEND_OP_NAME_MAX];
    size_t at;
    int found;
    struct backend_call_stats *o = NULL;

    if (s == NULL || (unsigned)outcome >= BACKEND_OUTCOME_COUNT)
        return;
    engine_op_name(method, path, op, sizeof(op));
    lock_take(&s->lock);
    at = sorted_slot(s->ops, s->n_ops, sizeof(s->ops[0]), op, call_stats_op, &found);
    if (found) {
        o = &s->ops[at];
    } else if (s->n_ops < ENGINE_OP_MAX) {
        memmove(&s->ops[at + 1], &s->ops[at], (s->n_ops - at) * sizeof(s->ops[0]));
        memset(&s->ops[at], 0, sizeof(s->ops[at]));
        snprintf(s->ops[at].op, sizeof(s->ops[at].op), "%s", op);
        s->n_ops++;
        o = &s->ops[at];
    }
    engine_op_add(o != NULL ? o : &s->other, outcome, duration_us);
    lock_give(&s->lock);
}

int engine_stats_snapshot(struct engine_stats *s, struct backend_call_stats **out, size_t *n)
{
    struct backend_call_stats *copy;
    size_t count;

    lock_take(&s->lock);
    count = s->n_ops + (s->other.count > 0 ? 1 : 0);
    copy = calloc(count > 0 ? count : 1, sizeof(*copy));
    if (copy != NULL) {
        memcpy(copy, s->ops, s->n_ops * sizeof(*copy));
        if (s->other.count > 0)
            copy[s->n_ops] = s->other;
    }
    lock_give(&s->lock);
    if (copy == NULL)
        return -1;
    *out = copy;
    *n = count;
    return 0;
}
