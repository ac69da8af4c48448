/* Streamed responses: a bounded byte queue between a producer (any thread)
 * and libmicrohttpd's content reader (an event thread). When the queue is
 * empty the reader suspends the connection and returns 0, and the next
 * write, the end or an abort resumes it: a waiting stream costs no thread
 * and no polling. Lock order: st->lock, then libmicrohttpd's own (suspend
 * and resume are only called with st->lock held). */
#include "stream.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "berth/buf.h"
#include "berth/lock.h"

#define STREAM_BLOCK_SIZE (16 * 1024)

struct http_stream {
    pthread_mutex_t lock;
    pthread_cond_t space;        /* the reader took bytes, or the stream ended */
    struct MHD_Connection *conn; /* guarded by lock; NULL until attached and once freed */
    struct buf q;                /* guarded by lock: bytes not yet sent are q.data[off..] */
    size_t off;                  /* guarded by lock */
    size_t max_queued;           /* immutable */
    int ended;                   /* guarded by lock: the producer is done */
    int gone;                    /* guarded by lock: nothing more will be sent */
    int suspended;               /* guarded by lock: the reader waits for data */
    int parked;                  /* guarded by lock: suspended, or resumed and not yet read */
    int stop_notified;           /* guarded by lock */
    void (*on_stop)(void *arg);  /* guarded by lock */
    void *on_stop_arg;           /* guarded by lock */
    _Atomic int refs;
    _Atomic int *suspended_count; /* the server's count of suspended connections */
};

struct http_stream *http_stream_new(size_t max_queued, _Atomic int *suspended_count)
{
    struct http_stream *st = calloc(1, sizeof(*st));

    if (st == NULL)
        return NULL;
    lock_init(&st->lock);
    pthread_cond_init(&st->space, NULL);
    /* A single write may pass max_queued when the queue is empty; the
     * queue's own cap only stops a runaway. */
    buf_init(&st->q, SIZE_MAX / 2);
    st->max_queued = max_queued > 0 ? max_queued : 1024 * 1024;
    st->suspended_count = suspended_count;
    atomic_init(&st->refs, 2);
    return st;
}

void http_stream_ref(struct http_stream *st)
{
    atomic_fetch_add(&st->refs, 1);
}

void http_stream_unref(struct http_stream *st)
{
    if (st == NULL || atomic_fetch_sub(&st->refs, 1) != 1)
        return;
    buf_release(&st->q);
    pthread_cond_destroy(&st->space);
    lock_destroy(&st->lock);
    free(st);
}

/* st->lock held: let the reader run again. */
static void stream_wake(struct http_stream *st)
{
    if (st->suspended && st->conn != NULL) {
        st->suspended = 0;
        MHD_resume_connection(st->conn);
    }
    pthread_cond_broadcast(&st->space);
}

/* st->lock held: a callback runs again after a suspension. */
static void stream_unpark(struct http_stream *st)
{
    if (st->parked) {
        st->parked = 0;
        atomic_fetch_sub(st->suspended_count, 1);
    }
}

static ssize_t stream_read(void *cls, uint64_t pos, char *out, size_t max)
{
    struct http_stream *st = cls;
    size_t avail;
    ssize_t rc;

    (void)pos;
    lock_take(&st->lock);
    stream_unpark(st);
    avail = st->q.len - st->off;
    if (avail > 0) {
        size_t n = avail < max ? avail : max;

        memcpy(out, st->q.data + st->off, n);
        st->off += n;
        if (st->off == st->q.len) {
            buf_reset(&st->q);
            st->off = 0;
        }
        pthread_cond_broadcast(&st->space);
        rc = (ssize_t)n;
    } else if (st->gone) {
        rc = MHD_CONTENT_READER_END_WITH_ERROR;
    } else if (st->ended) {
        rc = MHD_CONTENT_READER_END_OF_STREAM;
    } else {
        /* Nothing yet: park the connection until the producer writes. */
        st->suspended = 1;
        st->parked = 1;
        atomic_fetch_add(st->suspended_count, 1);
        MHD_suspend_connection(st->conn);
        rc = 0;
    }
    lock_give(&st->lock);
    return rc;
}

/* libmicrohttpd let go of the response: the connection ended or closed. */
static void stream_freed(void *cls)
{
    struct http_stream *st = cls;

    lock_take(&st->lock);
    stream_unpark(st);
    st->gone = 1;
    st->suspended = 0;
    st->conn = NULL;
    pthread_cond_broadcast(&st->space);
    lock_give(&st->lock);
    http_stream_unref(st);
}

struct MHD_Response *http_stream_attach(struct http_stream *st, struct MHD_Connection *conn,
                                        const char *prefix, size_t prefix_len)
{
    struct MHD_Response *r;

    lock_take(&st->lock);
    if (prefix_len > 0) {
        /* The handler's own first bytes go before anything produced since. */
        struct buf joined;

        buf_init(&joined, SIZE_MAX / 2);
        if (buf_append(&joined, prefix, prefix_len, NULL) < 0 ||
            buf_append(&joined, st->q.data ? st->q.data + st->off : "", st->q.len - st->off, NULL) <
                0) {
            buf_release(&joined);
            lock_give(&st->lock);
            return NULL;
        }
        buf_release(&st->q);
        st->q = joined;
        st->off = 0;
    }
    st->conn = conn;
    lock_give(&st->lock);
    r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, STREAM_BLOCK_SIZE, stream_read, st,
                                          stream_freed);
    if (r == NULL) {
        lock_take(&st->lock);
        st->conn = NULL;
        lock_give(&st->lock);
    }
    return r;
}

void http_stream_discard(struct http_stream *st)
{
    lock_take(&st->lock);
    st->gone = 1;
    pthread_cond_broadcast(&st->space);
    lock_give(&st->lock);
    http_stream_unref(st);
}

int http_stream_waiting(struct http_stream *st)
{
    int w;

    lock_take(&st->lock);
    w = st->suspended;
    lock_give(&st->lock);
    return w;
}

void http_stream_abort(struct http_stream *st)
{
    lock_take(&st->lock);
    st->gone = 1;
    stream_wake(st);
    lock_give(&st->lock);
}

void http_stream_notify_stop(struct http_stream *st)
{
    void (*fn)(void *) = NULL;
    void *arg = NULL;

    lock_take(&st->lock);
    if (!st->stop_notified) {
        st->stop_notified = 1;
        fn = st->on_stop;
        arg = st->on_stop_arg;
    }
    lock_give(&st->lock);
    if (fn != NULL)
        fn(arg);
}

/* ---- the producer's side (berth/http_server.h) ------------------------- */

int http_stream_write(struct http_stream *st, const void *data, size_t len, int64_t deadline)
{
    int rc = -1;

    lock_take(&st->lock);
    for (;;) {
        size_t pending = st->q.len - st->off;

        if (st->gone || st->ended)
            goto out;
        if (pending == 0 || pending + len <= st->max_queued)
            break;
        if (lock_wait_until(&st->space, &st->lock, deadline) < 0)
            goto out;
    }
    if (st->off > 0) {
        /* Keep the queue in one piece from its start. */
        memmove(st->q.data, st->q.data + st->off, st->q.len - st->off);
        st->q.len -= st->off;
        st->q.data[st->q.len] = '\0';
        st->off = 0;
    }
    if (len > 0 && buf_append(&st->q, data, len, NULL) < 0)
        goto out;
    stream_wake(st);
    rc = 0;
out:
    lock_give(&st->lock);
    return rc;
}

int http_stream_closed(struct http_stream *st)
{
    int c;

    lock_take(&st->lock);
    c = st->gone;
    lock_give(&st->lock);
    return c;
}

int http_stream_stopping(struct http_stream *st)
{
    int s;

    lock_take(&st->lock);
    s = st->stop_notified;
    lock_give(&st->lock);
    return s;
}

void http_stream_on_stop(struct http_stream *st, void (*fn)(void *arg), void *arg)
{
    int now;

    lock_take(&st->lock);
    st->on_stop = fn;
    st->on_stop_arg = arg;
    now = st->stop_notified;
    lock_give(&st->lock);
    /* Set after the server began to stop: the hook runs at once. */
    if (now && fn != NULL)
        fn(arg);
}

void http_stream_end_with(struct http_stream *st, const void *data, size_t len)
{
    if (st == NULL)
        return;
    lock_take(&st->lock);
    /* The last bytes (a stream's trailer) go in whatever the queue holds:
     * the bound is for the producer's pace, not for the end. */
    if (!st->gone && !st->ended && len > 0) {
        if (st->off > 0) {
            memmove(st->q.data, st->q.data + st->off, st->q.len - st->off);
            st->q.len -= st->off;
            st->q.data[st->q.len] = '\0';
            st->off = 0;
        }
        if (buf_append(&st->q, data, len, NULL) < 0)
            st->gone = 1; /* better cut short than wrongly complete */
    }
    st->ended = 1;
    st->on_stop = NULL;
    stream_wake(st);
    lock_give(&st->lock);
    http_stream_unref(st);
}

void http_stream_end(struct http_stream *st)
{
    if (st == NULL)
        return;
    lock_take(&st->lock);
    st->ended = 1;
    st->on_stop = NULL;
    stream_wake(st);
    lock_give(&st->lock);
    http_stream_unref(st);
}
