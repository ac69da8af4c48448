/* Connect server streams over the front end's streamed responses: each
 * message an envelope (flag 0, 4-byte big-endian length, the message in the
 * request's codec), the end one envelope of flag 0x02. One thread watches
 * every open stream for its deadline, its client and the server's stop, and
 * runs end hooks, so that a producer never runs one under its own locks.
 * Lock order: a stream's lock, then the HTTP stream's; the set's lock is
 * never held while a stream's is taken by the thread (see streams_main). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/buf.h"
#include "berth/clock.h"
#include "berth/connect.h"
#include "berth/json_codec.h"
#include "berth/lock.h"
#include "stream_internal.h"

#define STREAMS_TICK_MS 100
#define ENVELOPE_FLAG_END 0x02
#define STREAM_MESSAGE_MAX ((size_t)16 << 20)
#define CALLER_MAX 256

struct rpc_stream {
    pthread_mutex_t lock;
    struct http_stream *hs;    /* guarded by lock; NULL once ended */
    int ended;                 /* guarded by lock */
    struct berth_err end_err;  /* guarded by lock: how it ended */
    int hook_done;             /* the set's thread only */
    int armed;                 /* guarded by lock: the handler returned; the hook may run */
    void (*on_end)(void *arg); /* guarded by lock */
    void *on_end_arg;          /* guarded by lock */
    _Atomic int refs;
    struct rpc_streams *ss;         /* immutable */
    struct rpc_stream *prev, *next; /* guarded by ss->lock */
    struct rpc_route *route;        /* immutable */
    int json;                       /* immutable */
    int64_t deadline;               /* immutable */
    int64_t start_us;               /* immutable */
    char request_id[129];           /* immutable */
    char caller[CALLER_MAX];        /* immutable */
};

struct rpc_streams {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    struct rpc_stream *head; /* guarded by lock */
    size_t n;                /* guarded by lock */
    int stopping;            /* guarded by lock */
    int kick;                /* guarded by lock: a stream ended, run hooks now */
    size_t queue_bytes;      /* immutable */
    pthread_t thread;
};

static void stream_unref(struct rpc_stream *s);
static void end_locked(struct rpc_stream *s, const struct berth_err *err);
static void *streams_main(void *arg);

static void kick(struct rpc_streams *ss)
{
    lock_take(&ss->lock);
    ss->kick = 1;
    pthread_cond_signal(&ss->wake);
    lock_give(&ss->lock);
}

/* The HTTP stream's stop hook: the set's thread ends the stream. */
static void on_http_stop(void *arg)
{
    kick(arg);
}

int connect_end_envelope(const struct berth_err *err, const char *request_id, struct buf *out)
{
    struct buf payload, inner;
    unsigned char head[5];
    int rc = -1;

    buf_init(&payload, 4 * BERTH_ERR_MSG_MAX + 512);
    buf_init(&inner, 4 * BERTH_ERR_MSG_MAX + 64);
    if (err != NULL && err->code != BERTH_OK && connect_error_json(err, NULL, &inner) < 0) {
        buf_reset(&inner);
        if (buf_appends(&inner, "{\"code\":\"internal\"}", NULL) < 0)
            goto out;
    }
    /* The trailers hold the request id: a sane token, nothing to escape. */
    if (buf_appends(&payload, "{", NULL) < 0 ||
        (inner.len > 0 && buf_printf(&payload, NULL, "\"error\":%s", inner.data) < 0) ||
        (request_id != NULL && request_id[0] != '\0' &&
         buf_printf(&payload, NULL, "%s\"metadata\":{\"x-request-id\":[\"%s\"]}",
                    inner.len > 0 ? "," : "", request_id) < 0) ||
        buf_appends(&payload, "}", NULL) < 0)
        goto out;
    head[0] = ENVELOPE_FLAG_END;
    head[1] = (unsigned char)(payload.len >> 24);
    head[2] = (unsigned char)(payload.len >> 16);
    head[3] = (unsigned char)(payload.len >> 8);
    head[4] = (unsigned char)payload.len;
    if (buf_append(out, head, sizeof(head), NULL) < 0 ||
        buf_append(out, payload.data, payload.len, NULL) < 0)
        goto out;
    rc = 0;
out:
    buf_release(&payload);
    buf_release(&inner);
    return rc;
}

struct rpc_stream *rpc_stream_open(struct rpc_streams *ss, struct http_stream *hs,
                                   struct rpc_route *route, int json, int64_t deadline,
                                   const char *request_id, const char *caller, int64_t start_us)
{
    struct rpc_stream *s = calloc(1, sizeof(*s));

    if (s == NULL) {
        http_stream_end(hs);
        return NULL;
    }
    lock_init(&s->lock);
    berth_err_clear(&s->end_err);
    s->hs = hs;
    s->ss = ss;
    s->route = route;
    s->json = json;
    s->deadline = deadline;
    s->start_us = start_us;
    snprintf(s->request_id, sizeof(s->request_id), "%s", request_id ? request_id : "");
    snprintf(s->caller, sizeof(s->caller), "%s", caller ? caller : "");
    atomic_init(&s->refs, 2);
    atomic_fetch_add(&route->stats.in_flight, 1);
    lock_take(&ss->lock);
    s->next = ss->head;
    if (ss->head != NULL)
        ss->head->prev = s;
    ss->head = s;
    ss->n++;
    if (ss->stopping)
        ss->kick = 1;
    pthread_cond_signal(&ss->wake);
    lock_give(&ss->lock);
    http_stream_on_stop(hs, on_http_stop, ss);
    return s;
}

size_t rpc_streams_queue_bytes(const struct rpc_streams *ss)
{
    return ss->queue_bytes;
}

static void stream_unref(struct rpc_stream *s)
{
    if (s == NULL || atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    lock_destroy(&s->lock);
    free(s);
}

/* s->lock held: write the end envelope, hand the HTTP stream back, log. */
static void end_locked(struct rpc_stream *s, const struct berth_err *err)
{
    struct buf env;

    if (s->ended)
        return;
    s->ended = 1;
    if (err != NULL)
        s->end_err = *err;
    buf_init(&env, 8 * BERTH_ERR_MSG_MAX);
    /* A client that left gets nothing; the log still says why it ended. */
    if (!http_stream_closed(s->hs) && connect_end_envelope(err, s->request_id, &env) == 0)
        http_stream_end_with(s->hs, env.data, env.len);
    else
        http_stream_end(s->hs);
    buf_release(&env);
    s->hs = NULL;
    rpc_stats_record(&s->route->stats, s->end_err.code, berth_now_us() - s->start_us);
    atomic_fetch_sub(&s->route->stats.in_flight, 1);
    connect_log_call(s->route, s->route->path, 200, &s->end_err, s->start_us, s->request_id,
                     s->caller[0] ? s->caller : NULL);
}

int rpc_stream_send(struct rpc_stream *s, const ProtobufCMessage *msg)
{
    struct buf env;
    struct berth_err err;
    unsigned char head[5] = {0};
    size_t body_at;
    int rc = -1, ended = 0;

    berth_err_clear(&err);
    buf_init(&env, STREAM_MESSAGE_MAX);
    if (buf_append(&env, head, sizeof(head), &err) < 0)
        goto fail;
    body_at = env.len;
    if (s->json) {
        if (json_codec_encode(msg, &env, &err) < 0)
            goto fail;
    } else {
        size_t n = protobuf_c_message_get_packed_size(msg);
        uint8_t *bytes = malloc(n + 1);

        if (bytes == NULL) {
            berth_err_set(&err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
            goto fail;
        }
        protobuf_c_message_pack(msg, bytes);
        if (buf_append(&env, bytes, n, &err) < 0) {
            free(bytes);
            goto fail;
        }
        free(bytes);
    }
    {
        size_t n = env.len - body_at;
        unsigned char *h = (unsigned char *)env.data;

        h[1] = (unsigned char)(n >> 24);
        h[2] = (unsigned char)(n >> 16);
        h[3] = (unsigned char)(n >> 8);
        h[4] = (unsigned char)n;
    }
    lock_take(&s->lock);
    if (s->ended) {
        lock_give(&s->lock);
        buf_release(&env);
        return -1;
    }
    /* Never wait: a reader this far behind is cut off, not waited for. */
    if (http_stream_write(s->hs, env.data, env.len, berth_now_ms()) == 0) {
        rc = 0;
    } else {
        if (http_stream_closed(s->hs))
            berth_err_set(&err, BERTH_CANCELED, "the client went away");
        else
            berth_err_set(&err, BERTH_RESOURCE_EXHAUSTED,
                          "the client reads too slowly: more than %zu bytes wait for it",
                          s->ss->queue_bytes);
        end_locked(s, &err);
        ended = 1;
    }
    lock_give(&s->lock);
    buf_release(&env);
    if (ended)
        kick(s->ss);
    return rc;
fail:
    buf_release(&env);
    rpc_stream_finish(s, &err);
    return -1;
}

void rpc_stream_finish(struct rpc_stream *s, const struct berth_err *err)
{
    lock_take(&s->lock);
    end_locked(s, err);
    lock_give(&s->lock);
    kick(s->ss);
}

int rpc_stream_ended(struct rpc_stream *s)
{
    int e;

    lock_take(&s->lock);
    e = s->ended;
    lock_give(&s->lock);
    return e;
}

void rpc_stream_on_end(struct rpc_stream *s, void (*fn)(void *arg), void *arg)
{
    lock_take(&s->lock);
    s->on_end = fn;
    s->on_end_arg = arg;
    lock_give(&s->lock);
    kick(s->ss); /* it may have ended already */
}

void rpc_stream_arm(struct rpc_stream *s)
{
    lock_take(&s->lock);
    s->armed = 1;
    lock_give(&s->lock);
    kick(s->ss);
}

int64_t rpc_stream_deadline(const struct rpc_stream *s)
{
    return s->deadline;
}

void rpc_stream_ref(struct rpc_stream *s)
{
    atomic_fetch_add(&s->refs, 1);
}

void rpc_stream_release(struct rpc_stream *s)
{
    stream_unref(s);
}

/* ---- the set and its thread ------------------------------------------- */

int rpc_streams_start(size_t queue_bytes, struct rpc_streams **out, struct berth_err *err)
{
    struct rpc_streams *ss = calloc(1, sizeof(*ss));

    if (ss == NULL)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    lock_init(&ss->lock);
    pthread_cond_init(&ss->wake, NULL);
    ss->queue_bytes = queue_bytes;
    if (pthread_create(&ss->thread, NULL, streams_main, ss) != 0) {
        pthread_cond_destroy(&ss->wake);
        lock_destroy(&ss->lock);
        free(ss);
        return berth_err_set(err, BERTH_INTERNAL, "cannot start the streams thread");
    }
    *out = ss;
    return 0;
}

size_t rpc_streams_open(struct rpc_streams *ss)
{
    size_t n;

    lock_take(&ss->lock);
    n = ss->n;
    lock_give(&ss->lock);
    return n;
}

/* Look at one stream (a reference held, no set lock): end it when its
 * time is up; 1 when it has ended and its hook may run. */
static int stream_check(struct rpc_stream *s, int stopping)
{
    struct berth_err err;
    int ended;

    berth_err_clear(&err);
    lock_take(&s->lock);
    if (!s->ended) {
        if (stopping || http_stream_stopping(s->hs))
            berth_err_set(&err, BERTH_UNAVAILABLE, "berthd is stopping");
        else if (http_stream_closed(s->hs))
            berth_err_set(&err, BERTH_CANCELED, "the client went away");
        else if (berth_deadline_left_ms(s->deadline) == 0)
            berth_err_set(&err, BERTH_DEADLINE_EXCEEDED, "the call's deadline passed");
        if (err.code != BERTH_OK)
            end_locked(s, &err);
    }
    ended = s->ended && s->armed;
    lock_give(&s->lock);
    return ended;
}

static void *streams_main(void *arg)
{
    struct rpc_streams *ss = arg;

    lock_take(&ss->lock);
    for (;;) {
        struct rpc_stream **all;
        size_t n = 0;
        int stopping = ss->stopping;

        ss->kick = 0;
        all = ss->n > 0 ? calloc(ss->n, sizeof(*all)) : NULL;
        for (struct rpc_stream *s = ss->head; all != NULL && s != NULL; s = s->next) {
            atomic_fetch_add(&s->refs, 1);
            all[n++] = s;
        }
        lock_give(&ss->lock);
        for (size_t i = 0; i < n; i++) {
            struct rpc_stream *s = all[i];

            if (stream_check(s, stopping) && !s->hook_done) {
                void (*fn)(void *);
                void *fa;

                lock_take(&s->lock);
                fn = s->on_end;
                fa = s->on_end_arg;
                lock_give(&s->lock);
                s->hook_done = 1;
                if (fn != NULL)
                    fn(fa);
                lock_take(&ss->lock);
                if (s->prev != NULL)
                    s->prev->next = s->next;
                else
                    ss->head = s->next;
                if (s->next != NULL)
                    s->next->prev = s->prev;
                ss->n--;
                lock_give(&ss->lock);
                stream_unref(s); /* the set's */
            }
            stream_unref(s);
        }
        free(all);
        lock_take(&ss->lock);
        if (ss->stopping && ss->head == NULL)
            break;
        if (!ss->kick)
            lock_wait_until(&ss->wake, &ss->lock, berth_now_ms() + STREAMS_TICK_MS);
    }
    lock_give(&ss->lock);
    return NULL;
}

void rpc_streams_stop(struct rpc_streams *ss)
{
    if (ss == NULL)
        return;
    lock_take(&ss->lock);
    ss->stopping = 1;
    pthread_cond_signal(&ss->wake);
    lock_give(&ss->lock);
    pthread_join(ss->thread, NULL);
    pthread_cond_destroy(&ss->wake);
    lock_destroy(&ss->lock);
    free(ss);
}
