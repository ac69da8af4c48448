/* backend_ops.logs on the Engine: GET /containers/{id}/logs with timestamps,
 * its body parsed into lines. A container without a TTY answers in the
 * multiplexed framing (8-byte headers: stream, three zero bytes, payload
 * length big-endian); one with a TTY answers its raw output. Every line
 * starts with the Engine's RFC 3339 timestamp (nanoseconds) and a space. A
 * line longer than the log driver's buffer comes in several frames, each
 * with its own timestamp: they are joined again. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "berth/buf.h"
#include "berth/engine_client.h"
#include "berth/rfc3339.h"
#include "docker_internal.h"

#define LOG_TS_MAX 64 /* longest timestamp prefix read */

/* A line that has not ended yet (its frame had no '\n'), per stream. */
struct log_pending {
    struct buf text;
    int64_t time_unix_ns;
    int open;
};

/* The timestamp at the start of p[0..n): its length with the space after
 * it, and *ns. 0 when there is none. */
static size_t log_timestamp(const char *p, size_t n, int64_t *ns)
{
    char ts[LOG_TS_MAX];
    const char *sp = memchr(p, ' ', n < LOG_TS_MAX ? n : LOG_TS_MAX);
    const char *dot, *end;
    int64_t ms, sub = 0;
    size_t len;
    int digits = 0;

    if (sp == NULL)
        return 0;
    len = (size_t)(sp - p);
    memcpy(ts, p, len);
    ts[len] = '\0';
    if (rfc3339_parse_ms(ts, &ms) < 0)
        return 0;
    /* rfc3339 cuts the fraction to milliseconds; the rest of it here. */
    dot = memchr(ts, '.', len);
    if (dot != NULL) {
        for (end = dot + 1; *end >= '0' && *end <= '9'; end++) {
            digits++;
            if (digits > 3 && digits <= 9)
                sub = sub * 10 + (*end - '0');
        }
        if (digits > 3)
            for (int d = digits; d < 9; d++)
                sub *= 10;
    }
    *ns = ms * 1000000 + sub;
    return len + 1;
}

/* One piece of output of `stream` (a frame's payload, or the raw body):
 * lines made, a part without its '\n' kept in *pend. */
static int log_piece(struct backend_log_list *out, enum backend_log_stream stream,
                     struct log_pending *pend, const char *p, size_t n, struct berth_err *err)
{
    while (n > 0) {
        const char *nl = memchr(p, '\n', n);
        size_t len = nl != NULL ? (size_t)(nl - p) : n;
        int64_t ns = 0;
        size_t ts = log_timestamp(p, len, &ns);

        if (!pend->open) {
            buf_reset(&pend->text);
            pend->time_unix_ns = ns;
            pend->open = 1;
        }
        if (buf_append(&pend->text, p + ts, len - ts, err) < 0)
            return -1;
        if (nl == NULL)
            return 0;
        pend->open = 0;
        if (backend_log_list_add(out, pend->time_unix_ns, stream,
                                 pend->text.data != NULL ? pend->text.data : "", pend->text.len,
                                 err) < 0)
            return -1;
        p += len + 1;
        n -= len + 1;
    }
    return 0;
}

/* 1 when data[0..len) is a whole sequence of stdout/stderr frames. */
static int log_is_framed(const unsigned char *d, size_t len)
{
    size_t at = 0;

    while (at < len) {
        uint32_t size;

        if (len - at < 8 || (d[at] != 1 && d[at] != 2) || d[at + 1] || d[at + 2] || d[at + 3])
            return 0;
        size = (uint32_t)d[at + 4] << 24 | (uint32_t)d[at + 5] << 16 | (uint32_t)d[at + 6] << 8 |
               d[at + 7];
        if (size > len - at - 8)
            return 0;
        at += 8 + size;
    }
    return 1;
}

int docker_logs_parse(const char *data, size_t len, int tty, struct backend_log_list *out,
                      struct berth_err *err)
{
    const unsigned char *d = (const unsigned char *)data;
    struct log_pending pend[2];
    struct backend_log_list list = {0};
    int rc = -1;

    for (int i = 0; i < 2; i++) {
        buf_init(&pend[i].text, ENGINE_BODY_MAX);
        pend[i].open = 0;
        pend[i].time_unix_ns = 0;
    }
    if (tty || !log_is_framed(d, len)) {
        if (tty == 0 && len > 0) {
            berth_err_set(err, BERTH_UNKNOWN, "docker engine sent a malformed log stream");
            goto out;
        }
        if (log_piece(&list, BACKEND_LOG_STDOUT, &pend[0], data, len, err) < 0)
            goto out;
    } else {
        for (size_t at = 0; at < len;) {
            uint32_t size = (uint32_t)d[at + 4] << 24 | (uint32_t)d[at + 5] << 16 |
                            (uint32_t)d[at + 6] << 8 | d[at + 7];
            enum backend_log_stream st = d[at] == 2 ? BACKEND_LOG_STDERR : BACKEND_LOG_STDOUT;

            if (log_piece(&list, st, &pend[st - 1], data + at + 8, size, err) < 0)
                goto out;
            at += 8 + (size_t)size;
        }
    }
    /* A last line without its newline still counts. */
    for (int i = 0; i < 2; i++)
        if (pend[i].open &&
            backend_log_list_add(&list, pend[i].time_unix_ns, (enum backend_log_stream)(i + 1),
                                 pend[i].text.data != NULL ? pend[i].text.data : "",
                                 pend[i].text.len, err) < 0)
            goto out;
    *out = list;
    list = (struct backend_log_list){0};
    rc = 0;
out:
    backend_log_list_release(&list);
    for (int i = 0; i < 2; i++)
        buf_release(&pend[i].text);
    return rc;
}

/* The full id and TTY flag of managed container `id`. */
static int log_target(struct docker_ctx *c, const char *id, int64_t deadline, char **full_id,
                      int *tty, struct berth_err *err)
{
    struct engine_response resp;
    struct buf path;
    cJSON *root = NULL;
    const cJSON *config, *cid;
    char q[DOCKER_QUOTE_MAX + 8];
    int rc = -1;

    engine_response_init(&resp);
    buf_init(&path, DOCKER_PATH_MAX);
    berth_err_quote(q, sizeof(q), id, DOCKER_QUOTE_MAX);
    if (buf_appends(&path, "/containers/", err) < 0 || engine_append_escaped(&path, id, err) < 0 ||
        buf_appends(&path, "/json", err) < 0 ||
        engine_request(c->engine, "GET", path.data, NULL, deadline, &resp, err) < 0)
        goto out;
    if (resp.status != 200) {
        char what[DOCKER_QUOTE_MAX + 32];

        snprintf(what, sizeof(what), "container '%s'", q);
        engine_fail(&resp, engine_status_code(resp.status), what, err);
        goto out;
    }
    root = cJSON_ParseWithLength(resp.body.data ? resp.body.data : "", resp.body.len);
    config = cJSON_GetObjectItemCaseSensitive(root, "Config");
    cid = cJSON_GetObjectItemCaseSensitive(root, "Id");
    if (!cJSON_IsString(cid)) {
        berth_err_set(err, BERTH_UNKNOWN, "container '%s': docker engine sent malformed json", q);
        goto out;
    }
    if (!docker_json_is_managed(cJSON_GetObjectItemCaseSensitive(config, "Labels"))) {
        berth_err_set(err, BERTH_NOT_FOUND, "container '%s': No such container: %s", q, q);
        goto out;
    }
    *tty = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(config, "Tty"));
    *full_id = strdup(cid->valuestring);
    if (*full_id == NULL) {
        berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    rc = 0;
out:
    cJSON_Delete(root);
    buf_release(&path);
    engine_response_release(&resp);
    return rc;
}

/* One GET /containers/{id}/logs of both streams, the last `tail` lines (0:
 * all), parsed into *out. */
static int log_fetch(struct docker_ctx *c, const char *full_id, int tty, unsigned tail,
                     int64_t since_unix_ms, int64_t deadline, struct backend_log_list *out,
                     struct berth_err *err)
{
    struct engine_response resp;
    struct buf path;
    int rc = -1;

    engine_response_init(&resp);
    buf_init(&path, DOCKER_PATH_MAX);
    if (buf_printf(&path, err, "/containers/%s/logs?timestamps=1&stdout=1&stderr=1", full_id) < 0)
        goto out;
    if (tail > 0 && buf_printf(&path, err, "&tail=%u", tail) < 0)
        goto out;
    if (since_unix_ms > 0 && buf_printf(&path, err, "&since=%" PRId64 ".%03" PRId64 "000000",
                                        since_unix_ms / 1000, since_unix_ms % 1000) < 0)
        goto out;
    if (engine_request(c->engine, "GET", path.data, NULL, deadline, &resp, err) < 0)
        goto out;
    if (resp.status != 200) {
        engine_fail(&resp, engine_status_code(resp.status), "container logs", err);
        goto out;
    }
    rc = docker_logs_parse(resp.body.data != NULL ? resp.body.data : "", resp.body.len, tty, out,
                           err);
out:
    buf_release(&path);
    engine_response_release(&resp);
    return rc;
}

/* Lines of the streams `q` asks for among `l`. */
static size_t log_count_wanted(const struct backend_log_list *l, unsigned streams)
{
    size_t n = 0;

    for (size_t i = 0; i < l->n; i++)
        if (streams == 0 || (streams & (unsigned)l->items[i].stream) != 0)
            n++;
    return n;
}

/* The Engine's tail counts the lines of both streams, whichever it is asked
 * to send; for the last N lines of one stream, both are read with a larger
 * tail until N of that one are there or the log has no more. */
#define LOG_TAIL_GROWTH 4u
#define LOG_TAIL_MAX 1000000u

int docker_logs(void *ctx, const char *id, const struct backend_log_query *q, int64_t deadline,
                struct backend_log_list *out, struct berth_err *err)
{
    struct docker_ctx *c = ctx;
    struct backend_log_list l = {0};
    char *full_id = NULL;
    int tty = 0, rc = -1;
    unsigned ask = q->tail_lines;

    if (id == NULL || id[0] == '\0')
        return berth_err_set(err, BERTH_INVALID_ARGUMENT, "container id is empty");
    if (log_target(c, id, deadline, &full_id, &tty, err) < 0)
        goto out;
    for (;;) {
        backend_log_list_release(&l);
        if (log_fetch(c, full_id, tty, ask, q->since_unix_ms, deadline, &l, err) < 0)
            goto out;
        if (ask == 0 || l.n < ask || log_count_wanted(&l, q->streams) >= q->tail_lines)
            break;
        if (ask >= LOG_TAIL_MAX / LOG_TAIL_GROWTH) {
            ask = 0; /* the whole log, once */
            continue;
        }
        ask *= LOG_TAIL_GROWTH;
    }
    backend_log_list_filter(&l, q);
    *out = l;
    l = (struct backend_log_list){0};
    rc = 0;
out:
    backend_log_list_release(&l);
    free(full_id);
    return rc;
}

/* ---- following ---------------------------------------------------------- */

/* A followed output arrives as the engine client's lines (split at '\n');
 * putting the '\n' back gives the byte stream again, parsed frame by frame
 * (or line by line with a TTY) as it comes. */
struct log_follow {
    int tty;
    unsigned streams; /* wanted, 0: both */
    struct buf acc;   /* framed bytes not yet parsed */
    struct log_pending pend[2];
    backend_log_fn on_line;
    void *arg;
    int stopped; /* on_line asked to stop */
    struct berth_err err;
};

/* Hand the lines of `l` to the caller. 1 when it asked to stop. */
static int follow_deliver(struct log_follow *f, struct backend_log_list *l)
{
    for (size_t i = 0; i < l->n && !f->stopped; i++)
        if (f->streams == 0 || (f->streams & (unsigned)l->items[i].stream) != 0)
            f->stopped = f->on_line(f->arg, &l->items[i]) != 0;
    backend_log_list_release(l);
    return f->stopped;
}

static int follow_bytes(struct log_follow *f, const char *p, size_t n)
{
    struct backend_log_list l = {0};

    if (f->tty) {
        if (log_piece(&l, BACKEND_LOG_STDOUT, &f->pend[0], p, n, &f->err) < 0)
            return 1;
        return follow_deliver(f, &l);
    }
    if (buf_append(&f->acc, p, n, &f->err) < 0)
        return 1;
    for (;;) {
        const unsigned char *d = (const unsigned char *)f->acc.data;
        uint32_t size;
        enum backend_log_stream st;
        size_t used;

        if (f->acc.len < 8)
            return 0;
        if ((d[0] != 1 && d[0] != 2) || d[1] || d[2] || d[3]) {
            berth_err_set(&f->err, BERTH_UNKNOWN, "docker engine sent a malformed log stream");
            return 1;
        }
        size = (uint32_t)d[4] << 24 | (uint32_t)d[5] << 16 | (uint32_t)d[6] << 8 | d[7];
        if (f->acc.len - 8 < size)
            return 0;
        st = d[0] == 2 ? BACKEND_LOG_STDERR : BACKEND_LOG_STDOUT;
        if (log_piece(&l, st, &f->pend[st - 1], f->acc.data + 8, size, &f->err) < 0)
            return 1;
        used = 8 + (size_t)size;
        memmove(f->acc.data, f->acc.data + used, f->acc.len - used);
        f->acc.len -= used;
        if (follow_deliver(f, &l))
            return 1;
    }
}

static int follow_line(void *arg, const char *line, size_t len)
{
    struct log_follow *f = arg;

    return follow_bytes(f, line, len) || follow_bytes(f, "\n", 1);
}

int docker_logs_follow(void *ctx, const char *id, const struct backend_log_query *q,
                       int64_t deadline, const atomic_int *stop, backend_log_fn on_line, void *arg,
                       struct berth_err *err)
{
    struct docker_ctx *c = ctx;
    struct engine_response resp;
    struct log_follow f = {0};
    struct buf path;
    char *full_id = NULL;
    int rc = -1;

    if (id == NULL || id[0] == '\0')
        return berth_err_set(err, BERTH_INVALID_ARGUMENT, "container id is empty");
    if (log_target(c, id, deadline, &full_id, &f.tty, err) < 0)
        return -1;
    f.streams = q->streams;
    f.on_line = on_line;
    f.arg = arg;
    berth_err_clear(&f.err);
    buf_init(&f.acc, ENGINE_BODY_MAX);
    for (int i = 0; i < 2; i++)
        buf_init(&f.pend[i].text, ENGINE_BODY_MAX);
    engine_response_init(&resp);
    buf_init(&path, DOCKER_PATH_MAX);
    if (buf_printf(&path, err, "/containers/%s/logs?follow=1&timestamps=1&stdout=%d&stderr=%d",
                   full_id, q->streams == 0 || (q->streams & BACKEND_LOG_STDOUT) != 0,
                   q->streams == 0 || (q->streams & BACKEND_LOG_STDERR) != 0) < 0)
        goto out;
    if (q->since_unix_ms > 0 && buf_printf(&path, err, "&since=%" PRId64 ".%03" PRId64 "000000",
                                           q->since_unix_ms / 1000, q->since_unix_ms % 1000) < 0)
        goto out;
    else if (q->since_unix_ms <= 0 && buf_appends(&path, "&tail=0", err) < 0)
        goto out;
    if (engine_stream(c->engine, "GET", path.data, NULL, deadline, stop, follow_line, &f, &resp,
                      err) < 0)
        goto out;
    if (resp.status < 200 || resp.status > 299) {
        engine_fail(&resp, engine_status_code(resp.status), "container logs", err);
        goto out;
    }
    if (f.err.code != BERTH_OK) {
        *err = f.err;
        goto out;
    }
    rc = 0;
out:
    buf_release(&path);
    engine_response_release(&resp);
    buf_release(&f.acc);
    for (int i = 0; i < 2; i++)
        buf_release(&f.pend[i].text);
    free(full_id);
    return rc;
}
