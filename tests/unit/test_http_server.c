/* The HTTP front end's execution model, on a real socket: inline handlers
 * answer while a worker is busy, connections cost no thread, a stream sends
 * each write as it happens, a stream whose client hangs up is ended, and a
 * stop reaches every open stream. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "berth/clock.h"
#include "berth/http_server.h"
#include "berth/lock.h"
#include "testlib.h"

/* What the handlers share with the test. */
struct fixture {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int gate_open;          /* /slow waits for it */
    int slow_running;       /* /slow has started */
    struct http_stream *st; /* the latest /stream's */
    int stream_started;
    int stop_hook_ran;
    _Atomic int idle_streams;
    struct http_stream *idle[600];
};

static struct fixture fx;

static enum http_run classify(void *ctx, const struct http_request *req)
{
    (void)ctx;
    return strcmp(http_request_path(req), "/inline") == 0 ? HTTP_RUN_INLINE : HTTP_RUN_WORKER;
}

static void on_stop(void *arg)
{
    struct fixture *f = arg;

    lock_take(&f->lock);
    f->stop_hook_ran = 1;
    pthread_cond_broadcast(&f->cond);
    lock_give(&f->lock);
}

static void handler(void *ctx, const struct http_request *req, struct http_response *resp,
                    struct arena *arena)
{
    struct fixture *f = ctx;
    const char *path = http_request_path(req);

    (void)arena;
    resp->status = 200;
    http_response_header(resp, "Content-Type", "text/plain");
    if (strcmp(path, "/inline") == 0) {
        CHECK(buf_appends(&resp->body, "inline\n", NULL) == 0);
    } else if (strcmp(path, "/slow") == 0) {
        lock_take(&f->lock);
        f->slow_running = 1;
        pthread_cond_broadcast(&f->cond);
        while (!f->gate_open)
            pthread_cond_wait(&f->cond, &f->lock);
        lock_give(&f->lock);
        CHECK(buf_appends(&resp->body, "slow\n", NULL) == 0);
    } else if (strcmp(path, "/stream") == 0) {
        struct http_stream *st = http_response_stream(req, resp, 0);

        CHECK(st != NULL);
        CHECK(buf_appends(&resp->body, "first\n", NULL) == 0);
        lock_take(&f->lock);
        f->st = st;
        f->stream_started = 1;
        pthread_cond_broadcast(&f->cond);
        lock_give(&f->lock);
        http_stream_on_stop(st, on_stop, f);
    } else if (strcmp(path, "/idle") == 0) {
        struct http_stream *st = http_response_stream(req, resp, 0);
        int i = atomic_fetch_add(&f->idle_streams, 1);

        if (i < 600)
            f->idle[i] = st;
    } else {
        resp->status = 404;
    }
}

static int count_threads(void)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    int n = 0;

    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static int dial(const char *addr)
{
    struct sockaddr_in sin;
    struct timeval tv = {5, 0};
    char host[64];
    const char *colon = strrchr(addr, ':');
    int fd;

    if (colon == NULL || (size_t)(colon - addr) >= sizeof(host))
        return -1;
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)strtoul(colon + 1, NULL, 10));
    if (inet_pton(AF_INET, host, &sin.sin_addr) != 1)
        return -1;
    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int send_get(int fd, const char *path)
{
    char req[256];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", path);

    return write(fd, req, (size_t)n) == n ? 0 : -1;
}

/* Read until `want` appears in what was read (or EOF, timeout, full). */
static int read_until(int fd, char *buf, size_t cap, size_t *len, const char *want)
{
    while (*len + 1 < cap) {
        ssize_t n;

        buf[*len] = '\0';
        if (strstr(buf, want) != NULL)
            return 0;
        n = read(fd, buf + *len, cap - 1 - *len);
        if (n <= 0)
            return -1;
        *len += (size_t)n;
    }
    buf[*len] = '\0';
    return strstr(buf, want) != NULL ? 0 : -1;
}

static int wait_flag(int *flag, int64_t ms)
{
    int64_t deadline = berth_now_ms() + ms;
    int v;

    lock_take(&fx.lock);
    while (!*flag && lock_wait_until(&fx.cond, &fx.lock, deadline) == 0)
        ;
    v = *flag;
    lock_give(&fx.lock);
    return v;
}

static void test_inline_answers_while_worker_busy(struct http_server *s)
{
    char buf[4096];
    size_t len = 0;
    int slow = dial(http_server_address(s)), quick = dial(http_server_address(s));

    CHECK(slow >= 0 && quick >= 0);
    CHECK(send_get(slow, "/slow") == 0);
    CHECK(wait_flag(&fx.slow_running, 5000));
    /* The worker holds /slow; the event thread still answers. */
    CHECK(send_get(quick, "/inline") == 0);
    CHECK(read_until(quick, buf, sizeof(buf), &len, "inline\n") == 0);
    lock_take(&fx.lock);
    fx.gate_open = 1;
    pthread_cond_broadcast(&fx.cond);
    lock_give(&fx.lock);
    len = 0;
    CHECK(read_until(slow, buf, sizeof(buf), &len, "slow\n") == 0);
    CHECK(strncmp(buf, "HTTP/1.1 200", 12) == 0);
    close(slow);
    close(quick);
}

static void test_stream_sends_as_written(struct http_server *s)
{
    char buf[8192];
    size_t len = 0;
    int fd = dial(http_server_address(s));
    struct http_stream *st;

    CHECK(fd >= 0);
    CHECK(send_get(fd, "/stream") == 0);
    CHECK(wait_flag(&fx.stream_started, 5000));
    /* The handler's first bytes arrive before the producer wrote anything. */
    CHECK(read_until(fd, buf, sizeof(buf), &len, "first\n") == 0);
    CHECK(strstr(buf, "Transfer-Encoding: chunked") != NULL);
    lock_take(&fx.lock);
    st = fx.st;
    lock_give(&fx.lock);
    /* Each write reaches the client before the next is made. */
    for (int i = 0; i < 3; i++) {
        char line[32];
        snprintf(line, sizeof(line), "line %d\n", i);
        CHECK(http_stream_write(st, line, strlen(line), berth_now_ms() + 5000) == 0);
        CHECK(read_until(fd, buf, sizeof(buf), &len, line) == 0);
    }
    http_stream_end(st);
    /* The chunked body ends with the zero chunk. */
    CHECK(read_until(fd, buf, sizeof(buf), &len, "\r\n0\r\n\r\n") == 0);
    /* Keep-alive goes on after a stream. */
    len = 0;
    CHECK(send_get(fd, "/inline") == 0);
    CHECK(read_until(fd, buf, sizeof(buf), &len, "inline\n") == 0);
    close(fd);
}

static void test_stream_client_hangs_up(struct http_server *s)
{
    char buf[4096];
    size_t len = 0;
    int fd = dial(http_server_address(s));
    struct http_stream *st;
    int64_t deadline;

    fx.stream_started = 0;
    CHECK(fd >= 0);
    CHECK(send_get(fd, "/stream") == 0);
    CHECK(wait_flag(&fx.stream_started, 5000));
    CHECK(read_until(fd, buf, sizeof(buf), &len, "first\n") == 0);
    lock_take(&fx.lock);
    st = fx.st;
    lock_give(&fx.lock);
    close(fd);
    /* Nothing is written: only the reaper can see the hang-up. */
    deadline = berth_now_ms() + 5000;
    while (!http_stream_closed(st) && berth_now_ms() < deadline) {
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    CHECK(http_stream_closed(st));
    CHECK(http_stream_write(st, "x", 1, berth_now_ms() + 1000) == -1);
    http_stream_end(st);
}

static void test_waiting_streams_cost_no_thread(struct http_server *s)
{
    enum { N = 500 };
    static int fds[N];
    int before = count_threads(), during, opened = 0;
    int64_t deadline = berth_now_ms() + 10000;

    for (int i = 0; i < N; i++) {
        fds[i] = dial(http_server_address(s));
        if (fds[i] >= 0 && send_get(fds[i], "/idle") == 0)
            opened++;
    }
    CHECK(opened == N);
    while (atomic_load(&fx.idle_streams) < N && berth_now_ms() < deadline) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    CHECK(atomic_load(&fx.idle_streams) == N);
    CHECK(http_server_connections(s) >= N);
    during = count_threads();
    CHECK_MSG(during == before, "threads %d with %d waiting streams, %d before", during, N, before);
    for (int i = 0; i < N && i < 600; i++)
        http_stream_end(fx.idle[i]);
    for (int i = 0; i < N; i++)
        if (fds[i] >= 0)
            close(fds[i]);
}

static void test_stop_reaches_streams(struct http_server *s)
{
    char buf[4096];
    size_t len = 0;
    int fd = dial(http_server_address(s));
    struct http_stream *st;

    fx.stream_started = 0;
    CHECK(fd >= 0);
    CHECK(send_get(fd, "/stream") == 0);
    CHECK(wait_flag(&fx.stream_started, 5000));
    CHECK(read_until(fd, buf, sizeof(buf), &len, "first\n") == 0);
    lock_take(&fx.lock);
    st = fx.st;
    lock_give(&fx.lock);
    http_server_quiesce(s);
    CHECK(wait_flag(&fx.stop_hook_ran, 5000));
    CHECK(http_stream_stopping(st));
    /* The producer says goodbye and ends; the drain then completes. */
    CHECK(http_stream_write(st, "bye\n", 4, berth_now_ms() + 5000) == 0);
    http_stream_end(st);
    CHECK(read_until(fd, buf, sizeof(buf), &len, "\r\n0\r\n\r\n") == 0);
    CHECK(strstr(buf, "bye\n") != NULL);
    CHECK(http_server_wait_idle(s, berth_now_ms() + 5000) == 0);
    close(fd);
}

int main(void)
{
    struct http_server_config cfg;
    struct http_server *s = NULL;
    struct berth_err err;

    lock_init(&fx.lock);
    pthread_cond_init(&fx.cond, NULL);
    memset(&cfg, 0, sizeof(cfg));
    cfg.listen = "127.0.0.1:0";
    cfg.max_body_bytes = 1 << 20;
    cfg.max_connections = 2000;
    cfg.idle_timeout_s = 60;
    cfg.read_timeout_s = 10;
    cfg.event_threads = 2;
    cfg.workers = 2;
    cfg.classify = classify;
    berth_err_clear(&err);
    CHECK(http_server_start(&cfg, handler, &fx, &s, &err) == 0);
    if (s == NULL)
        return test_summary("test_http_server");
    test_inline_answers_while_worker_busy(s);
    test_stream_sends_as_written(s);
    test_stream_client_hangs_up(s);
    test_waiting_streams_cost_no_thread(s);
    test_stop_reaches_streams(s);
    http_server_free(s);
    pthread_cond_destroy(&fx.cond);
    lock_destroy(&fx.lock);
    return test_summary("test_http_server");
}
