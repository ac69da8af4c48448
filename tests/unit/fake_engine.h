/* A fake Docker Engine for unit tests (header-only, static functions): a
 * thread serving a unix socket in a temporary directory. It answers
 * GET /version itself, replays queued replies to every other request in
 * order, and records each request (method, target, body) and each
 * connection it accepted, for the test to check. */
#ifndef BERTH_FAKE_ENGINE_H
#define BERTH_FAKE_ENGINE_H

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* Not every test uses every helper. */
#define FE_FN static __attribute__((unused))

#define FE_MAX_REPLIES 64
#define FE_MAX_REQS 128
#define FE_MAX_CONNS 32

struct fe_reply {
    char *raw; /* owned: bytes to send; NULL: never answer (stall) */
    int hold;  /* after sending raw, keep the connection silent (a stalled stream) */
};

struct fe_req {
    char *method; /* owned */
    char *target; /* owned */
    char *body;   /* owned, "" when none */
    char *head;   /* owned: the header lines after the request line */
};

struct fe_conn {
    int fd;   /* -1: free slot */
    int held; /* stalled: read and discard, never answer */
    char *in; /* owned: bytes read, not yet parsed */
    size_t len;
};

struct fake_engine {
    char dir[64];
    char sock[80];
    int lfd;
    int wake[2];
    pthread_t thread;
    int running;

    /* mu guards everything below; cv signals a new request */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    const char *api_version;
    struct fe_reply replies[FE_MAX_REPLIES];
    size_t n_replies, next_reply;
    struct fe_req reqs[FE_MAX_REQS];
    size_t n_reqs;
    int n_conns;
    int version_calls;

    /* server thread only */
    struct fe_conn conns[FE_MAX_CONNS];
};

FE_FN char *fe_strndup(const char *s, size_t n)
{
    char *p = malloc(n + 1);

    if (p == NULL)
        abort();
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

/* A fresh temporary directory; sock is its "docker.sock" (not created). */
FE_FN void fe_init(struct fake_engine *fe)
{
    const char *tmp = getenv("TMPDIR");

    memset(fe, 0, sizeof(*fe));
    snprintf(fe->dir, sizeof(fe->dir), "%s/berth-fe-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (mkdtemp(fe->dir) == NULL)
        abort();
    snprintf(fe->sock, sizeof(fe->sock), "%s/docker.sock", fe->dir);
    fe->lfd = -1;
    fe->wake[0] = fe->wake[1] = -1;
    fe->api_version = "1.41";
    pthread_mutex_init(&fe->mu, NULL);
    pthread_cond_init(&fe->cv, NULL);
    for (int i = 0; i < FE_MAX_CONNS; i++)
        fe->conns[i].fd = -1;
}

FE_FN void fe_queue_raw(struct fake_engine *fe, const char *raw, int hold)
{
    pthread_mutex_lock(&fe->mu);
    if (fe->n_replies == FE_MAX_REPLIES)
        abort();
    fe->replies[fe->n_replies].raw = raw ? fe_strndup(raw, strlen(raw)) : NULL;
    fe->replies[fe->n_replies].hold = hold;
    fe->n_replies++;
    pthread_mutex_unlock(&fe->mu);
}

/* Queue "HTTP/1.1 <status>" with a JSON body (NULL: none). */
FE_FN void fe_reply(struct fake_engine *fe, int status, const char *body)
{
    char head[256];
    char *raw;
    size_t blen = body ? strlen(body) : 0;

    if (body != NULL)
        snprintf(head, sizeof(head),
                 "HTTP/1.1 %d Fake\r\nContent-Type: application/json\r\n"
                 "Api-Version: %s\r\nContent-Length: %zu\r\n\r\n",
                 status, fe->api_version, blen);
    else if (status == 204 || status == 304)
        snprintf(head, sizeof(head), "HTTP/1.1 %d Fake\r\n\r\n", status);
    else
        snprintf(head, sizeof(head), "HTTP/1.1 %d Fake\r\nContent-Length: 0\r\n\r\n", status);
    raw = malloc(strlen(head) + blen + 1);
    if (raw == NULL)
        abort();
    memcpy(raw, head, strlen(head));
    memcpy(raw + strlen(head), body ? body : "", blen + 1);
    fe_queue_raw(fe, raw, 0);
    free(raw);
}

/* Queue a chunked 200 whose chunks are `chunks` (the stream ends after
 * them unless hold: then the connection just goes silent). */
FE_FN void fe_reply_chunked(struct fake_engine *fe, const char *const *chunks, size_t n, int hold)
{
    size_t cap = 256, len = 0;
    char *raw = malloc(cap);

    if (raw == NULL)
        abort();
    len = (size_t)snprintf(raw, cap,
                           "HTTP/1.1 200 Fake\r\nContent-Type: application/json\r\n"
                           "Transfer-Encoding: chunked\r\n\r\n");
    for (size_t i = 0; i <= n; i++) {
        const char *c = i < n ? chunks[i] : "";
        size_t cl = strlen(c);

        if (i == n && hold)
            break;
        while (len + cl + 32 > cap) {
            cap *= 2;
            raw = realloc(raw, cap);
            if (raw == NULL)
                abort();
        }
        len += (size_t)snprintf(raw + len, cap - len, "%zx\r\n%s\r\n", cl, c);
    }
    fe_queue_raw(fe, raw, hold);
    free(raw);
}

/* Queue a request that is read and never answered. */
FE_FN void fe_reply_stall(struct fake_engine *fe)
{
    fe_queue_raw(fe, NULL, 1);
}

FE_FN void fe_write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

FE_FN void fe_close_conn(struct fe_conn *c)
{
    close(c->fd);
    free(c->in);
    memset(c, 0, sizeof(*c));
    c->fd = -1;
}

/* Parse and answer every complete request buffered on c. */
FE_FN void fe_serve_buffered(struct fake_engine *fe, struct fe_conn *c)
{
    for (;;) {
        char *end, *line_end, *sp1, *sp2, *cl;
        size_t head_len, body_len = 0, total;
        struct fe_reply reply = {NULL, 0};
        int is_version, have_reply = 0;
        char *answer = NULL;

        if (c->in == NULL || c->held)
            return;
        end = memmem(c->in, c->len, "\r\n\r\n", 4);
        if (end == NULL)
            return;
        head_len = (size_t)(end - c->in) + 4;
        *end = '\0';
        cl = strcasestr(c->in, "\r\nContent-Length:");
        if (cl != NULL)
            body_len = strtoul(cl + 17, NULL, 10);
        *end = '\r';
        total = head_len + body_len;
        if (c->len < total)
            return;
        line_end = memmem(c->in, head_len, "\r\n", 2);
        sp1 = memchr(c->in, ' ', (size_t)(line_end - c->in));
        sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(line_end - sp1 - 1)) : NULL;
        if (sp2 == NULL)
            abort();

        pthread_mutex_lock(&fe->mu);
        is_version =
            (size_t)(sp2 - sp1 - 1) == strlen("/version") && memcmp(sp1 + 1, "/version", 8) == 0;
        if (is_version) {
            char body[128], head[256];

            fe->version_calls++;
            snprintf(body, sizeof(body), "{\"Version\":\"20.10.24\",\"ApiVersion\":\"%s\"}",
                     fe->api_version);
            snprintf(head, sizeof(head),
                     "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n%s",
                     strlen(body), body);
            answer = fe_strndup(head, strlen(head));
        } else {
            if (fe->n_reqs < FE_MAX_REQS) {
                struct fe_req *r = &fe->reqs[fe->n_reqs++];

                r->method = fe_strndup(c->in, (size_t)(sp1 - c->in));
                r->target = fe_strndup(sp1 + 1, (size_t)(sp2 - sp1 - 1));
                r->body = fe_strndup(c->in + head_len, body_len);
                r->head = fe_strndup(line_end + 2, head_len - (size_t)(line_end + 2 - c->in));
            }
            if (fe->next_reply < fe->n_replies) {
                reply = fe->replies[fe->next_reply++];
                have_reply = 1;
            }
            if (have_reply && reply.raw != NULL)
                answer = fe_strndup(reply.raw, strlen(reply.raw));
            else if (!have_reply)
                answer = fe_strndup("HTTP/1.1 500 Fake\r\nContent-Length: 47\r\n\r\n"
                                    "{\"message\":\"fake engine: no reply queued here\"}",
                                    strlen("HTTP/1.1 500 Fake\r\nContent-Length: 47\r\n\r\n"
                                           "{\"message\":\"fake engine: no reply queued here\"}"));
        }
        pthread_cond_broadcast(&fe->cv);
        pthread_mutex_unlock(&fe->mu);

        memmove(c->in, c->in + total, c->len - total);
        c->len -= total;
        if (answer != NULL)
            fe_write_all(c->fd, answer, strlen(answer));
        free(answer);
        if (have_reply && reply.hold)
            c->held = 1;
    }
}

FE_FN void *fe_main(void *arg)
{
    struct fake_engine *fe = arg;

    for (;;) {
        struct pollfd pfd[FE_MAX_CONNS + 2];
        int map[FE_MAX_CONNS + 2];
        nfds_t n = 0;

        pfd[n].fd = fe->wake[0];
        pfd[n].events = POLLIN;
        map[n++] = -1;
        pfd[n].fd = fe->lfd;
        pfd[n].events = POLLIN;
        map[n++] = -1;
        for (int i = 0; i < FE_MAX_CONNS; i++) {
            if (fe->conns[i].fd < 0)
                continue;
            pfd[n].fd = fe->conns[i].fd;
            pfd[n].events = POLLIN;
            map[n++] = i;
        }
        if (poll(pfd, n, -1) < 0) {
            if (errno == EINTR)
                continue;
            abort();
        }
        if (pfd[0].revents)
            break;
        if (pfd[1].revents & POLLIN) {
            int fd = accept(fe->lfd, NULL, NULL);

            if (fd >= 0) {
                int slot = -1;

                for (int i = 0; i < FE_MAX_CONNS && slot < 0; i++)
                    if (fe->conns[i].fd < 0)
                        slot = i;
                if (slot < 0) {
                    close(fd);
                } else {
                    fe->conns[slot].fd = fd;
                    pthread_mutex_lock(&fe->mu);
                    fe->n_conns++;
                    pthread_mutex_unlock(&fe->mu);
                }
            }
        }
        for (nfds_t k = 2; k < n; k++) {
            struct fe_conn *c = &fe->conns[map[k]];
            char tmp[4096];
            ssize_t r;

            if (!pfd[k].revents)
                continue;
            r = read(c->fd, tmp, sizeof(tmp));
            if (r <= 0) {
                fe_close_conn(c);
                continue;
            }
            c->in = realloc(c->in, c->len + (size_t)r + 1);
            if (c->in == NULL)
                abort();
            memcpy(c->in + c->len, tmp, (size_t)r);
            c->len += (size_t)r;
            fe_serve_buffered(fe, c);
        }
    }
    return NULL;
}

/* Listen on fe->sock and serve in a thread. */
FE_FN void fe_start(struct fake_engine *fe)
{
    struct sockaddr_un sa;

    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", fe->sock);
    fe->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fe->lfd < 0 || bind(fe->lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        listen(fe->lfd, 16) < 0 || pipe(fe->wake) < 0)
        abort();
    if (pthread_create(&fe->thread, NULL, fe_main, fe) != 0)
        abort();
    fe->running = 1;
}

/* Stop serving, free everything, remove the directory. */
FE_FN void fe_stop(struct fake_engine *fe)
{
    if (fe->running) {
        fe_write_all(fe->wake[1], "x", 1);
        pthread_join(fe->thread, NULL);
        close(fe->wake[0]);
        close(fe->wake[1]);
        close(fe->lfd);
        fe->running = 0;
    }
    for (int i = 0; i < FE_MAX_CONNS; i++)
        if (fe->conns[i].fd >= 0)
            fe_close_conn(&fe->conns[i]);
    for (size_t i = 0; i < fe->n_replies; i++)
        free(fe->replies[i].raw);
    for (size_t i = 0; i < fe->n_reqs; i++) {
        free(fe->reqs[i].method);
        free(fe->reqs[i].target);
        free(fe->reqs[i].body);
        free(fe->reqs[i].head);
    }
    unlink(fe->sock);
    rmdir(fe->dir);
    pthread_cond_destroy(&fe->cv);
    pthread_mutex_destroy(&fe->mu);
}

/* Number of recorded requests (excluding /version), under the lock. */
FE_FN size_t fe_n_reqs(struct fake_engine *fe)
{
    size_t n;

    pthread_mutex_lock(&fe->mu);
    n = fe->n_reqs;
    pthread_mutex_unlock(&fe->mu);
    return n;
}

/* Connections accepted and /version calls so far, under the lock. */
FE_FN int fe_n_conns(struct fake_engine *fe)
{
    int n;

    pthread_mutex_lock(&fe->mu);
    n = fe->n_conns;
    pthread_mutex_unlock(&fe->mu);
    return n;
}

FE_FN int fe_version_calls(struct fake_engine *fe)
{
    int n;

    pthread_mutex_lock(&fe->mu);
    n = fe->version_calls;
    pthread_mutex_unlock(&fe->mu);
    return n;
}

/* Wait until at least n requests were recorded. */
FE_FN void fe_wait_reqs(struct fake_engine *fe, size_t n)
{
    pthread_mutex_lock(&fe->mu);
    while (fe->n_reqs < n)
        pthread_cond_wait(&fe->cv, &fe->mu);
    pthread_mutex_unlock(&fe->mu);
}

/* "METHOD target" of request i, or "" (copied into out). */
FE_FN const char *fe_req_line(struct fake_engine *fe, size_t i, char *out, size_t outsz)
{
    pthread_mutex_lock(&fe->mu);
    if (i < fe->n_reqs)
        snprintf(out, outsz, "%s %s", fe->reqs[i].method, fe->reqs[i].target);
    else
        snprintf(out, outsz, "(no request %zu)", i);
    pthread_mutex_unlock(&fe->mu);
    return out;
}

#endif
