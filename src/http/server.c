/* libmicrohttpd front end: our own listening socket (TCP v4/v6 or unix),
 * one thread per connection, bodies buffered up to the limit and discarded
 * past it, one handler call per complete request (see berth/http_server.h). */
#include "berth/http_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "berth/clock.h"
#include "berth/lock.h"
#include "berth/log.h"

struct http_request {
    struct MHD_Connection *conn;
    const char *method;
    const char *path;
    struct arena *arena;
    struct buf body;
    int too_large;
    int counted;  /* in in_flight */
    int answered; /* answered before the body was read (declared over the limit) */
};

struct http_server {
    struct MHD_Daemon *mhd;
    int listen_fd;
    int quiesced;
    unsigned max_connections; /* immutable */
    size_t max_body;
    http_handler_fn handler;
    void *ctx;
    char address[128];
    _Atomic int in_flight; /* requests between their first byte and their response */
    pthread_mutex_t idle_lock;
    pthread_cond_t idle_cond;
};

static int listen_socket(const char *spec, char *addr_out, size_t addr_sz, struct berth_err *err);
static int listen_unix(const char *path, char *addr_out, size_t addr_sz, struct berth_err *err);
static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **req_cls);
static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe);
static enum MHD_Result respond(struct http_server *s, struct http_request *req);
static void request_done(struct http_server *s, struct http_request *req);

const char *http_request_method(const struct http_request *req)
{
    return req->method;
}

const char *http_request_path(const struct http_request *req)
{
    return req->path;
}

const char *http_request_header(const struct http_request *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

int http_request_query(const struct http_request *req, const char *key, const char **value,
                       size_t *len)
{
    const char *v = NULL;
    size_t n = 0;

    if (MHD_lookup_connection_value_n(req->conn, MHD_GET_ARGUMENT_KIND, key, strlen(key), &v, &n) !=
        MHD_YES)
        return -1;
    *value = v ? v : "";
    *len = v ? n : 0;
    return 0;
}

const char *http_request_body(const struct http_request *req, size_t *len, int *too_large)
{
    *len = req->body.len;
    *too_large = req->too_large;
    return req->body.data ? req->body.data : "";
}

void http_response_header(struct http_response *resp, const char *name, const char *value)
{
    if (resp->n_headers >= HTTP_MAX_RESPONSE_HEADERS)
        return;
    resp->header_name[resp->n_headers] = name;
    resp->header_value[resp->n_headers] = value;
    resp->n_headers++;
}

static int listen_unix(const char *path, char *addr_out, size_t addr_sz, struct berth_err *err)
{
    struct sockaddr_un sun;
    int fd;

    if (strlen(path) >= sizeof(sun.sun_path))
        return berth_err_set(err, BERTH_INVALID_ARGUMENT, "listen: unix socket path too long");
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    memcpy(sun.sun_path, path, strlen(path) + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return berth_err_set(err, BERTH_UNAVAILABLE, "listen: socket: %s", strerror(errno));
    unlink(path);
    if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 || listen(fd, 128) < 0) {
        berth_err_set(err, BERTH_UNAVAILABLE, "listen on '%s': %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    snprintf(addr_out, addr_sz, "unix:%s", path);
    return fd;
}

/* Bind HOST:PORT or [V6]:PORT (or unix:/path); returns the fd and writes the
 * bound address (port 0 resolved) to addr_out. */
static int listen_socket(const char *spec, char *addr_out, size_t addr_sz, struct berth_err *err)
{
    struct addrinfo hints, *res = NULL;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char host[64], port[16], hostbuf[INET6_ADDRSTRLEN];
    const char *colon;
    size_t hlen;
    int fd = -1, one = 1, rc;

    if (strncmp(spec, "unix:", 5) == 0)
        return listen_unix(spec + 5, addr_out, addr_sz, err);
    colon = strrchr(spec, ':');
    if (colon == NULL || colon == spec || strlen(colon + 1) == 0 ||
        strlen(colon + 1) >= sizeof(port))
        return berth_err_set(err, BERTH_INVALID_ARGUMENT, "listen '%.64s': expected HOST:PORT",
                             spec);
    hlen = (size_t)(colon - spec);
    if (spec[0] == '[' && hlen >= 2 && spec[hlen - 1] == ']') {
        spec++;
        hlen -= 2;
    }
    if (hlen >= sizeof(host))
        return berth_err_set(err, BERTH_INVALID_ARGUMENT, "listen: host too long");
    memcpy(host, spec, hlen);
    host[hlen] = '\0';
    memcpy(port, colon + 1, strlen(colon + 1) + 1);
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0)
        return berth_err_set(err, BERTH_INVALID_ARGUMENT, "listen '%s:%s': %s", host, port,
                             gai_strerror(rc));
    fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        berth_err_set(err, BERTH_UNAVAILABLE, "listen: socket: %s", strerror(errno));
        goto fail;
    }
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 128) < 0 ||
        getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
        berth_err_set(err, BERTH_UNAVAILABLE, "listen on '%s:%s': %s", host, port, strerror(errno));
        goto fail;
    }
    if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &s6->sin6_addr, hostbuf, sizeof(hostbuf));
        snprintf(addr_out, addr_sz, "[%s]:%u", hostbuf, ntohs(s6->sin6_port));
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &s4->sin_addr, hostbuf, sizeof(hostbuf));
        snprintf(addr_out, addr_sz, "%s:%u", hostbuf, ntohs(s4->sin_port));
    }
    freeaddrinfo(res);
    return fd;
fail:
    if (fd >= 0)
        close(fd);
    freeaddrinfo(res);
    return -1;
}

int http_server_start(const struct http_server_config *cfg, http_handler_fn handler, void *ctx,
                      struct http_server **out, struct berth_err *err)
{
    struct http_server *s = calloc(1, sizeof(*s));

    if (s == NULL)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    s->handler = handler;
    s->ctx = ctx;
    s->max_body = cfg->max_body_bytes;
    s->max_connections = cfg->max_connections;
    pthread_mutex_init(&s->idle_lock, NULL);
    pthread_cond_init(&s->idle_cond, NULL);
    s->listen_fd = listen_socket(cfg->listen, s->address, sizeof(s->address), err);
    if (s->listen_fd < 0)
        goto fail;
    s->mhd = MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC, 0, NULL,
        NULL, on_access, s, MHD_OPTION_LISTEN_SOCKET, s->listen_fd, MHD_OPTION_CONNECTION_LIMIT,
        cfg->max_connections, MHD_OPTION_CONNECTION_TIMEOUT, cfg->idle_timeout_s,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_END);
    if (s->mhd == NULL) {
        berth_err_set(err, BERTH_UNAVAILABLE, "http server did not start on '%s'", s->address);
        goto fail;
    }
    *out = s;
    return 0;
fail:
    http_server_free(s);
    return -1;
}

const char *http_server_address(const struct http_server *s)
{
    return s->address;
}

int http_server_saturated(struct http_server *s)
{
    const union MHD_DaemonInfo *info;

    if (s == NULL || s->mhd == NULL || s->max_connections == 0)
        return 0;
    info = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
    return info != NULL && info->num_connections >= s->max_connections;
}

void http_server_quiesce(struct http_server *s)
{
    if (s->mhd == NULL || s->quiesced)
        return;
    /* The daemon hands the listening socket back; closing it refuses new
     * connections (the kernel would otherwise still complete handshakes
     * into its backlog) while the ones under way finish. */
    MHD_quiesce_daemon(s->mhd);
    s->quiesced = 1;
    if (s->listen_fd >= 0) {
        close(s->listen_fd);
        s->listen_fd = -1;
    }
}

int http_server_wait_idle(struct http_server *s, int64_t deadline)
{
    int idle;

    lock_take(&s->idle_lock);
    while (atomic_load(&s->in_flight) > 0 &&
           lock_wait_until(&s->idle_cond, &s->idle_lock, deadline) == 0)
        ;
    idle = atomic_load(&s->in_flight) == 0;
    lock_give(&s->idle_lock);
    return idle ? 0 : -1;
}

void http_server_free(struct http_server *s)
{
    if (s == NULL)
        return;
    if (s->mhd)
        MHD_stop_daemon(s->mhd);
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    pthread_mutex_destroy(&s->idle_lock);
    pthread_cond_destroy(&s->idle_cond);
    free(s);
}

static void request_done(struct http_server *s, struct http_request *req)
{
    if (!req->counted)
        return;
    req->counted = 0;
    pthread_mutex_lock(&s->idle_lock);
    if (atomic_fetch_sub(&s->in_flight, 1) == 1)
        pthread_cond_broadcast(&s->idle_cond);
    pthread_mutex_unlock(&s->idle_lock);
}

static enum MHD_Result respond(struct http_server *s, struct http_request *req)
{
    struct http_response resp;
    struct MHD_Response *r;
    enum MHD_Result rc;
    size_t len;
    char *data;

    memset(&resp, 0, sizeof(resp));
    resp.status = 500;
    buf_init(&resp.body, SIZE_MAX / 2);
    s->handler(s->ctx, req, &resp, req->arena);
    len = resp.body.len;
    data = buf_detach(&resp.body);
    if (data == NULL)
        return MHD_NO;
    r = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
    if (r == NULL) {
        free(data);
        return MHD_NO;
    }
    for (size_t i = 0; i < resp.n_headers; i++)
        MHD_add_response_header(r, resp.header_name[i], resp.header_value[i]);
    /* The unread rest of the body is never read: the connection ends here. */
    if (req->answered)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    rc = MHD_queue_response(req->conn, (unsigned)resp.status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **req_cls)
{
    struct http_server *s = cls;
    struct http_request *req = *req_cls;

    (void)version;
    if (req == NULL) {
        const char *clen;
        req = calloc(1, sizeof(*req));
        if (req == NULL)
            return MHD_NO;
        req->arena = arena_new();
        if (req->arena == NULL) {
            free(req);
            return MHD_NO;
        }
        req->conn = conn;
        req->method = method;
        req->path = url;
        buf_init(&req->body, s->max_body);
        req->counted = 1;
        atomic_fetch_add(&s->in_flight, 1);
        *req_cls = req;
        /* A declared length over the limit is answered before one byte of
         * the body is read (the handler sees an empty body marked too
         * large, and routes, answers and logs as for any request); the
         * connection is closed after the answer. */
        clen = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        if (clen != NULL) {
            char *end;
            unsigned long long n = strtoull(clen, &end, 10);
            if (end != clen && *end == '\0' && n > s->max_body) {
                req->too_large = 1;
                req->answered = 1;
                return respond(s, req);
            }
        }
        return MHD_YES;
    }
    if (req->answered) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        if (!req->too_large && buf_append(&req->body, upload_data, *upload_data_size, NULL) < 0) {
            /* Past the limit: keep reading to the end but store nothing. */
            req->too_large = 1;
            buf_release(&req->body);
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    return respond(s, req);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct http_server *s = cls;
    struct http_request *req = *req_cls;

    (void)conn;
    (void)toe;
    if (req == NULL)
        return;
    request_done(s, req);
    buf_release(&req->body);
    arena_free(req->arena);
    free(req);
    *req_cls = NULL;
}
