/* libmicrohttpd front end: our own listening socket (TCP v4/v6, TLS, or
 * unix), libmicrohttpd's epoll loop on a few threads, a worker pool for
 * handlers that wait (their connection suspended meanwhile), streamed
 * responses (stream.c), a reaper thread that enforces the read deadline and
 * notices clients that left a waiting stream, framing checks, the caller
 * named once per request, bodies buffered up to the limit and discarded
 * past it, one handler call per complete request (see berth/http_server.h). */
#include "berth/http_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <grp.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <linux/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <sys/un.h>
#include <unistd.h>

#include "berth/clock.h"
#include "berth/config.h"
#include "berth/lock.h"
#include "berth/log.h"
#include "stream.h"
#include "tls.h"
#include "workers.h"

#define REAPER_TICK_MS 250
/* Idle keep-alive connections and waiting streams are looked at once per
 * this many ticks: a syscall each, and there may be thousands. */
#define REAPER_SCAN_TICKS 4
/* rx_mark before the reaper has looked at a connection gone idle. */
#define RX_MARK_NONE UINT64_MAX
#define DEFAULT_WORKERS 32
#define STREAM_SNDBUF (64 * 1024)
#define MAX_EVENT_THREADS 16

/* Threads that may run our callbacks: the event threads, and the one that
 * stops the server. */
#define BUSY_SLOTS (MAX_EVENT_THREADS + 4)

/* Since when one of libmicrohttpd's threads is inside one of our callbacks
 * (0: it is not): what http_server_alive reads. Claimed by a thread the
 * first time it calls back; depth is that thread's alone. */
struct busy_slot {
    _Atomic uintptr_t owner; /* the thread's pthread_t; 0: free */
    _Atomic int64_t since_ms;
    int depth;
};

/* One client connection, MHD's socket context from its start to its close. */
struct http_conn {
    struct http_server *s;         /* immutable */
    struct http_conn *prev, *next; /* guarded by s->conns_lock */
    int fd;                        /* immutable */
    int tcp;                       /* immutable */
    int64_t read_deadline;         /* guarded by s->conns_lock; 0: none */
    int idle;                      /* guarded by s->conns_lock: between requests */
    uint64_t
        rx_mark; /* guarded by s->conns_lock: bytes in by the first scan after the last answer */
    struct http_stream *stream; /* guarded by s->conns_lock: the one it sends (a reference) */
    /* The connection thread only: */
    int peer_known;
    const char *target_problem; /* what on_uri found wrong with the request line; NULL: nothing */
    struct tls_peer tls;
    int unix_peer;
    uid_t uid;
    pid_t pid;
};

struct http_request {
    struct work_item work; /* first: the worker pool's item is the request */
    struct http_server *srv;
    struct MHD_Connection *conn;
    struct http_conn *hc; /* NULL when MHD gave none */
    const char *method;
    const char *path;
    struct arena *arena;
    struct buf body;
    int too_large;
    int counted;  /* in in_flight */
    int answered; /* answered before the body was read (declared over the limit) */
    int malformed;
    struct berth_err framing; /* set when malformed */
    const char *caller;       /* from the arena; NULL: none */
    struct berth_err auth_err;
    int64_t started_ms;
    struct http_response resp; /* the handler's answer */
    int dispatched;            /* handed to a worker, the connection suspended */
    int prepared;              /* resp is filled */
};

struct http_server {
    struct MHD_Daemon *mhd;
    int listen_fd;
    int quiesced;
    int is_unix, is_local;    /* immutable */
    unsigned max_connections; /* immutable */
    size_t max_body;
    int64_t read_timeout_ms; /* immutable */
    http_handler_fn handler;
    void *ctx;
    struct auth *auth;     /* borrowed */
    struct tls_state *tls; /* NULL: plain HTTP */
    char address[128];
    _Atomic int in_flight; /* requests between their first byte and their response */
    pthread_mutex_t idle_lock;
    pthread_cond_t idle_cond;
    pthread_mutex_t conns_lock;
    pthread_cond_t reaper_wake;
    struct http_conn *conns; /* guarded by conns_lock */
    int reaper_stop;         /* guarded by conns_lock */
    pthread_t reaper;
    int reaper_started;
    unsigned n_conns;          /* guarded by conns_lock */
    struct workers *workers;   /* handlers that wait */
    http_classify_fn classify; /* immutable */
    _Atomic int suspended;     /* connections suspended, or resumed and not yet run */
    struct busy_slot busy[BUSY_SLOTS];
    _Atomic int64_t reaper_tick_ms; /* when the reaper last went round */
};

static int listen_socket(struct http_server *s, const struct http_server_config *cfg,
                         struct berth_err *err);
static int listen_unix(struct http_server *s, const struct http_server_config *cfg,
                       const char *path, struct berth_err *err);
static int unix_path_free(const char *path, struct berth_err *err);
static int unix_socket_access(const char *path, const struct http_server_config *cfg,
                              struct berth_err *err);
static int addr_is_loopback(const struct sockaddr_storage *ss);
static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **req_cls);
static enum MHD_Result access_request(struct http_server *s, struct MHD_Connection *conn,
                                      const char *url, const char *method, const char *version,
                                      const char *upload_data, size_t *upload_data_size,
                                      void **req_cls);
static struct busy_slot *busy_enter(struct http_server *s);
static void busy_leave(struct busy_slot *b);
static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe);
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe);
static void conn_notified(struct http_server *s, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe);
static enum MHD_Result respond(struct http_server *s, struct http_request *req);
static enum MHD_Result dispatch(struct http_server *s, struct http_request *req);
static void run_handler(struct http_server *s, struct http_request *req);
static enum MHD_Result queue_response(struct http_server *s, struct http_request *req);
static void on_work(struct work_item *item);
static size_t collect_streams(struct http_server *s, struct http_stream ***out);
static void request_done(struct http_server *s, struct http_request *req);
static void request_check_framing(struct http_request *req, const char *method,
                                  const char *version);
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn);
static void request_identify(struct http_server *s, struct http_request *req);
static void conn_learn_peer(struct http_server *s, struct http_conn *hc,
                            struct MHD_Connection *conn);
static void conn_set_phase(struct http_conn *hc, int reading);
static uint64_t conn_rx_bytes(const struct http_conn *hc);
static void *reaper_main(void *arg);

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

const struct berth_err *http_request_malformed(const struct http_request *req)
{
    return req->malformed ? &req->framing : NULL;
}

const char *http_request_caller(const struct http_request *req, const struct berth_err **why)
{
    if (why != NULL)
        *why = req->caller == NULL ? &req->auth_err : NULL;
    return req->caller;
}

int64_t http_request_started_ms(const struct http_request *req)
{
    return req->started_ms;
}

struct http_stream *http_response_stream(const struct http_request *req, struct http_response *resp,
                                         size_t max_queued)
{
    struct http_stream *st;

    /* Without its connection record the reaper could not see the client
     * leave, and the stop could not reach the stream. */
    if (req->hc == NULL || resp->stream != NULL)
        return NULL;
    st = http_stream_new(max_queued, &req->srv->suspended);
    resp->stream = st;
    return st;
}

void http_response_header(struct http_response *resp, const char *name, const char *value)
{
    if (resp->n_headers >= HTTP_MAX_RESPONSE_HEADERS)
        return;
    resp->header_name[resp->n_headers] = name;
    resp->header_value[resp->n_headers] = value;
    resp->n_headers++;
}

/* A stale socket (nobody accepts on it) may be replaced; anything else at
 * the path is someone's file, and a live socket another daemon's. */
static int unix_path_free(const char *path, struct berth_err *err)
{
    struct sockaddr_un sun;
    struct stat st;
    int fd, rc;

    if (lstat(path, &st) < 0) {
        if (errno == ENOENT)
            return 0;
        return berth_err_set(err, BERTH_UNAVAILABLE, "listen on '%s': %s", path, strerror(errno));
    }
    if (!S_ISSOCK(st.st_mode))
        return berth_err_set(
            err, BERTH_FAILED_PRECONDITION,
            "listen on '%s': the path exists and is not a socket; not replacing it", path);
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    memcpy(sun.sun_path, path, strlen(path) + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return berth_err_set(err, BERTH_UNAVAILABLE, "listen: socket: %s", strerror(errno));
    rc = connect(fd, (struct sockaddr *)&sun, sizeof(sun));
    close(fd);
    if (rc == 0)
        return berth_err_set(err, BERTH_FAILED_PRECONDITION,
                             "listen on '%s': another process accepts on this socket", path);
    if (unlink(path) < 0 && errno != ENOENT)
        return berth_err_set(err, BERTH_UNAVAILABLE, "listen on '%s': %s", path, strerror(errno));
    return 0;
}

static int unix_socket_access(const char *path, const struct http_server_config *cfg,
                              struct berth_err *err)
{
    if (cfg->socket_group != NULL && cfg->socket_group[0] != '\0') {
        const char *g = cfg->socket_group;
        struct group grp, *found = NULL;
        char buf[4096], *end;
        long gid = strtol(g, &end, 10);

        if (end == g || *end != '\0') {
            if (getgrnam_r(g, &grp, buf, sizeof(buf), &found) != 0 || found == NULL)
                return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                                     "socket-group '%.64s': no such group", g);
            gid = (long)found->gr_gid;
        }
        if (gid < 0 || chown(path, (uid_t)-1, (gid_t)gid) < 0)
            return berth_err_set(err, BERTH_UNAVAILABLE, "socket-group '%.64s' on '%s': %s", g,
                                 path, strerror(errno));
    }
    if (chmod(path, (mode_t)cfg->socket_mode) < 0)
        return berth_err_set(err, BERTH_UNAVAILABLE, "socket-mode on '%s': %s", path,
                             strerror(errno));
    return 0;
}

static int listen_unix(struct http_server *s, const struct http_server_config *cfg,
                       const char *path, struct berth_err *err)
{
    struct sockaddr_un sun;
    mode_t old_mask;
    int fd, rc;

    if (strlen(path) >= sizeof(sun.sun_path))
        return berth_err_set(err, BERTH_INVALID_ARGUMENT, "listen: unix socket path too long");
    if (unix_path_free(path, err) < 0)
        return -1;
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    memcpy(sun.sun_path, path, strlen(path) + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return berth_err_set(err, BERTH_UNAVAILABLE, "listen: socket: %s", strerror(errno));
    /* Nobody may connect between bind and chmod: the socket is born closed. */
    old_mask = umask(0177);
    rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
    umask(old_mask);
    if (rc < 0 || listen(fd, 128) < 0) {
        berth_err_set(err, BERTH_UNAVAILABLE, "listen on '%s': %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    if (unix_socket_access(path, cfg, err) < 0) {
        close(fd);
        unlink(path);
        return -1;
    }
    snprintf(s->address, sizeof(s->address), "unix:%s", path);
    s->is_unix = 1;
    s->is_local = 1;
    return fd;
}

static int addr_is_loopback(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
    if (ss->ss_family == AF_INET6)
        return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)ss)->sin6_addr);
    return 0;
}

/* Bind HOST:PORT or [V6]:PORT (or unix:/path); returns the fd and writes the
 * bound address (port 0 resolved) to s->address. */
static int listen_socket(struct http_server *s, const struct http_server_config *cfg,
                         struct berth_err *err)
{
    struct addrinfo hints, *res = NULL;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char port[8], hostbuf[INET6_ADDRSTRLEN];
    char *host = NULL;
    unsigned portnum;
    int fd = -1, one = 1, rc;

    if (strncmp(cfg->listen, "unix:", 5) == 0)
        return listen_unix(s, cfg, cfg->listen + 5, err);
    if (config_split_listen(cfg->listen, &host, &portnum, err) < 0)
        return -1;
    snprintf(port, sizeof(port), "%u", portnum);
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
    if (rc != 0) {
        berth_err_set(err, BERTH_INVALID_ARGUMENT, "listen '%.64s:%s': %s", host, port,
                      gai_strerror(rc));
        free(host);
        return -1;
    }
    fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        berth_err_set(err, BERTH_UNAVAILABLE, "listen: socket: %s", strerror(errno));
        goto fail;
    }
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 128) < 0 ||
        getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
        berth_err_set(err, BERTH_UNAVAILABLE, "listen on '%.64s:%s': %s", host, port,
                      strerror(errno));
        goto fail;
    }
    if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &s6->sin6_addr, hostbuf, sizeof(hostbuf));
        snprintf(s->address, sizeof(s->address), "[%s]:%u", hostbuf, ntohs(s6->sin6_port));
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &s4->sin_addr, hostbuf, sizeof(hostbuf));
        snprintf(s->address, sizeof(s->address), "%s:%u", hostbuf, ntohs(s4->sin_port));
    }
    s->is_local = addr_is_loopback(&ss);
    freeaddrinfo(res);
    free(host);
    return fd;
fail:
    if (fd >= 0)
        close(fd);
    freeaddrinfo(res);
    free(host);
    return -1;
}

/* GnuTLS asks for the server's certificate at each handshake: the one of
 * the generation in use, so a reload reaches every new connection. */
static int on_tls_cert(gnutls_session_t session, const gnutls_datum_t *req_ca_dn, int nreqs,
                       const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
                       gnutls_pcert_st **pcert, unsigned int *pcert_length, gnutls_privkey_t *pkey)
{
    struct MHD_Connection *conn = gnutls_session_get_ptr(session);
    const union MHD_ConnectionInfo *ci;
    struct http_conn *hc;

    (void)req_ca_dn;
    (void)nreqs;
    (void)pk_algos;
    (void)pk_algos_length;
    if (conn == NULL)
        return -1;
    ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    hc = ci != NULL ? ci->socket_context : NULL;
    if (hc == NULL || hc->s->tls == NULL)
        return -1;
    tls_state_current(hc->s->tls, pcert, pcert_length, pkey);
    return 0;
}

int http_server_start(const struct http_server_config *cfg, http_handler_fn handler, void *ctx,
                      struct http_server **out, struct berth_err *err)
{
    struct http_server *s = calloc(1, sizeof(*s));
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME;
    unsigned per_ip, threads = cfg->event_threads;

    if (s == NULL)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    s->handler = handler;
    s->ctx = ctx;
    s->auth = cfg->auth;
    s->max_body = cfg->max_body_bytes;
    s->max_connections = cfg->max_connections;
    s->read_timeout_ms = (int64_t)cfg->read_timeout_s * 1000;
    s->classify = cfg->classify;
    if (threads == 0)
        threads = (unsigned)get_nprocs();
    if (threads < 1)
        threads = 1;
    if (threads > MAX_EVENT_THREADS)
        threads = MAX_EVENT_THREADS;
    lock_init(&s->idle_lock);
    pthread_cond_init(&s->idle_cond, NULL);
    lock_init(&s->conns_lock);
    pthread_cond_init(&s->reaper_wake, NULL);
    s->listen_fd = -1;
    if (cfg->tls_cert != NULL && cfg->tls_cert[0] != '\0') {
        if (!MHD_is_feature_supported(MHD_FEATURE_TLS) ||
            !MHD_is_feature_supported(MHD_FEATURE_HTTPS_CERT_CALLBACK)) {
            berth_err_set(err, BERTH_UNIMPLEMENTED, "this libmicrohttpd has no TLS support");
            goto fail;
        }
        if (tls_state_new(cfg->tls_cert, cfg->tls_key, cfg->tls_client_ca, &s->tls, err) < 0)
            goto fail;
        flags |= MHD_USE_TLS;
    }
    s->listen_fd = listen_socket(s, cfg, err);
    if (s->listen_fd < 0)
        goto fail;
    if (workers_start(cfg->workers > 0 ? cfg->workers : DEFAULT_WORKERS, &s->workers, err) < 0)
        goto fail;
    /* The reaper also ends streams whose client left: it runs always. */
    if (pthread_create(&s->reaper, NULL, reaper_main, s) != 0) {
        berth_err_set(err, BERTH_INTERNAL, "cannot start the connection reaper thread");
        goto fail;
    }
    s->reaper_started = 1;
    per_ip = s->is_unix ? 0 : cfg->max_connections_per_ip;
    /* MHD's own strictness (MHD_OPTION_STRICT_FOR_CLIENT above 0) answers
     * with its HTML page; request_check_framing refuses the same requests
     * with a Connect error instead. */
    {
        struct MHD_OptionItem opts[16];
        size_t n = 0;

#define OPT(o, v, p) (opts[n++] = (struct MHD_OptionItem){(o), (intptr_t)(v), (p)})
        OPT(MHD_OPTION_LISTEN_SOCKET, s->listen_fd, NULL);
        OPT(MHD_OPTION_THREAD_POOL_SIZE, threads, NULL);
        OPT(MHD_OPTION_CONNECTION_LIMIT, cfg->max_connections, NULL);
        OPT(MHD_OPTION_CONNECTION_TIMEOUT, cfg->idle_timeout_s, NULL);
        OPT(MHD_OPTION_PER_IP_CONNECTION_LIMIT, per_ip, NULL);
        OPT(MHD_OPTION_STRICT_FOR_CLIENT, 0, NULL);
        if (cfg->connection_memory > 0)
            OPT(MHD_OPTION_CONNECTION_MEMORY_LIMIT, cfg->connection_memory, NULL);
        OPT(MHD_OPTION_URI_LOG_CALLBACK, on_uri, s);
        OPT(MHD_OPTION_NOTIFY_COMPLETED, on_completed, s);
        OPT(MHD_OPTION_NOTIFY_CONNECTION, on_connection, s);
        if (s->tls != NULL)
            OPT(MHD_OPTION_HTTPS_CERT_CALLBACK, 0, (void *)on_tls_cert);
        if (s->tls != NULL && tls_state_trust_pem(s->tls) != NULL)
            OPT(MHD_OPTION_HTTPS_MEM_TRUST, 0, (void *)tls_state_trust_pem(s->tls));
        OPT(MHD_OPTION_END, 0, NULL);
#undef OPT
        s->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_access, s, MHD_OPTION_ARRAY, opts,
                                  MHD_OPTION_END);
    }
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

int http_server_is_local(const struct http_server *s)
{
    return s->is_local;
}

int http_server_reload_tls(struct http_server *s, struct berth_err *err)
{
    if (s == NULL || s->tls == NULL)
        return 0;
    return tls_state_reload(s->tls, err);
}

int http_server_reload_tls_files(struct http_server *s, const char *cert, const char *key,
                                 struct berth_err *err)
{
    if (s == NULL || s->tls == NULL)
        return berth_err_set(err, BERTH_FAILED_PRECONDITION,
                             "tls-cert: TLS was off at start; a restart turns it on");
    if ((cert != NULL && cert[0] == '\0') || (key != NULL && key[0] == '\0'))
        return berth_err_set(err, BERTH_FAILED_PRECONDITION,
                             "tls-cert: TLS was on at start; a restart turns it off");
    return tls_state_reload_files(s->tls, cert, key, err);
}

int http_server_tls_on(const struct http_server *s)
{
    return s != NULL && s->tls != NULL;
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
    /* Streams never end by themselves: their producers are told to end
     * them, so the drain that follows can finish. */
    {
        struct http_stream **sts = NULL;
        size_t n = collect_streams(s, &sts);

        for (size_t i = 0; i < n; i++) {
            http_stream_notify_stop(sts[i]);
            http_stream_unref(sts[i]);
        }
        free(sts);
    }
}

unsigned http_server_connections(struct http_server *s)
{
    unsigned n;

    lock_take(&s->conns_lock);
    n = s->n_conns;
    lock_give(&s->conns_lock);
    return n;
}

/* The streams open now, each with a reference the caller drops; *out is
 * the caller's to free. 0 streams (and *out NULL) when out of memory. */
static size_t collect_streams(struct http_server *s, struct http_stream ***out)
{
    struct http_stream **sts;
    size_t n = 0, cap;

    lock_take(&s->conns_lock);
    cap = s->n_conns;
    sts = cap > 0 ? calloc(cap, sizeof(*sts)) : NULL;
    for (struct http_conn *hc = s->conns; sts != NULL && hc != NULL && n < cap; hc = hc->next)
        if (hc->stream != NULL) {
            http_stream_ref(hc->stream);
            sts[n++] = hc->stream;
        }
    lock_give(&s->conns_lock);
    *out = sts;
    return n;
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
    if (s->mhd) {
        /* libmicrohttpd must not stop with a suspended connection: end the
         * streams still open, let the workers answer what they hold, and
         * wait for the event threads to take the connections back. */
        struct http_stream **sts = NULL;
        size_t n = collect_streams(s, &sts);
        int64_t until = berth_now_ms() + 5000;

        for (size_t i = 0; i < n; i++) {
            http_stream_abort(sts[i]);
            http_stream_unref(sts[i]);
        }
        free(sts);
        workers_stop(s->workers);
        s->workers = NULL;
        while (atomic_load(&s->suspended) > 0 && berth_now_ms() < until) {
            struct timespec ts = {0, 5 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        MHD_stop_daemon(s->mhd);
    }
    workers_stop(s->workers);
    if (s->reaper_started) {
        lock_take(&s->conns_lock);
        s->reaper_stop = 1;
        pthread_cond_broadcast(&s->reaper_wake);
        lock_give(&s->conns_lock);
        pthread_join(s->reaper, NULL);
    }
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    tls_state_free(s->tls);
    lock_destroy(&s->idle_lock);
    pthread_cond_destroy(&s->idle_cond);
    lock_destroy(&s->conns_lock);
    pthread_cond_destroy(&s->reaper_wake);
    free(s);
}

/* ---- liveness --------------------------------------------------------- */

/* The calling thread's slot, its clock started when it was not inside a
 * callback already; NULL when every slot is taken (it then goes unwatched). */
static struct busy_slot *busy_enter(struct http_server *s)
{
    pthread_t self = pthread_self();
    uintptr_t me = 0;
    struct busy_slot *b = NULL;

    _Static_assert(sizeof(pthread_t) <= sizeof(uintptr_t), "pthread_t fits a uintptr_t");
    memcpy(&me, &self, sizeof(self));
    for (size_t i = 0; i < BUSY_SLOTS && b == NULL; i++)
        if (atomic_load(&s->busy[i].owner) == me)
            b = &s->busy[i];
    for (size_t i = 0; i < BUSY_SLOTS && b == NULL; i++) {
        uintptr_t free_slot = 0;
        if (atomic_compare_exchange_strong(&s->busy[i].owner, &free_slot, me))
            b = &s->busy[i];
    }
    if (b != NULL && b->depth++ == 0)
        atomic_store(&b->since_ms, berth_now_ms());
    return b;
}

static void busy_leave(struct busy_slot *b)
{
    if (b != NULL && --b->depth == 0)
        atomic_store(&b->since_ms, 0);
}

int http_server_alive(struct http_server *s, int64_t stuck_ms, struct berth_err *err)
{
    int64_t now = berth_now_ms(), tick = atomic_load(&s->reaper_tick_ms);

    for (size_t i = 0; i < BUSY_SLOTS; i++) {
        int64_t since = atomic_load(&s->busy[i].since_ms);
        if (since != 0 && now - since > stuck_ms)
            return berth_err_set(err, BERTH_UNAVAILABLE,
                                 "an HTTP event thread has been inside one request for %lld ms",
                                 (long long)(now - since));
    }
    if (s->reaper_started && tick != 0 && now - tick > stuck_ms + REAPER_TICK_MS)
        return berth_err_set(err, BERTH_UNAVAILABLE,
                             "the HTTP connection reaper has not run for %lld ms",
                             (long long)(now - tick));
    return 0;
}

/* ---- connections and the read deadline -------------------------------- */

/* Bytes the kernel took in on a TCP connection so far (0 elsewhere): the
 * reaper sees a keep-alive connection's next request begin by it, as MHD
 * reads the bytes before anyone else could look at them. */
static uint64_t conn_rx_bytes(const struct http_conn *hc)
{
    struct tcp_info ti;
    socklen_t len = sizeof(ti);

    if (!hc->tcp || getsockopt(hc->fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0)
        return 0;
    return ti.tcpi_bytes_received;
}

/* reading: a request is being read, the deadline runs; else its answer is
 * on its way or the connection waits for the next one. */
static void conn_set_phase(struct http_conn *hc, int reading)
{
    struct http_server *s = hc->s;

    lock_take(&s->conns_lock);
    hc->idle = 0;
    hc->read_deadline = reading ? berth_now_ms() + s->read_timeout_ms : 0;
    lock_give(&s->conns_lock);
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    struct http_server *s = cls;
    struct busy_slot *b = busy_enter(s);

    conn_notified(s, conn, socket_context, toe);
    busy_leave(b);
}

static void conn_notified(struct http_server *s, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    struct http_conn *hc = *socket_context;

    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);

        hc = calloc(1, sizeof(*hc));
        if (hc == NULL)
            return;
        hc->s = s;
        hc->fd = ci != NULL ? ci->connect_fd : -1;
        hc->tcp = !s->is_unix;
        lock_take(&s->conns_lock);
        hc->read_deadline = s->read_timeout_ms > 0 ? berth_now_ms() + s->read_timeout_ms : 0;
        hc->next = s->conns;
        if (s->conns != NULL)
            s->conns->prev = hc;
        s->conns = hc;
        s->n_conns++;
        lock_give(&s->conns_lock);
        *socket_context = hc;
        return;
    }
    if (hc == NULL)
        return;
    /* MHD closes the socket only after this: the reaper, which shuts
     * sockets down under conns_lock, can never touch a reused fd. */
    lock_take(&s->conns_lock);
    if (hc->prev != NULL)
        hc->prev->next = hc->next;
    else
        s->conns = hc->next;
    if (hc->next != NULL)
        hc->next->prev = hc->prev;
    s->n_conns--;
    lock_give(&s->conns_lock);
    http_stream_unref(hc->stream);
    tls_peer_release(&hc->tls);
    free(hc);
    *socket_context = NULL;
}

/* Every tick: a connection whose request is not read in full by its
 * deadline is shut down (its event thread then sees the end and closes
 * it). Every REAPER_SCAN_TICKS ticks: an idle keep-alive connection that
 * took in bytes starts a new deadline, and a stream waiting for data whose
 * client hung up is ended (a suspended connection is not watched by the
 * event loop, so nothing else would notice). */
static void *reaper_main(void *arg)
{
    struct http_server *s = arg;
    unsigned tick = 0;

    lock_take(&s->conns_lock);
    while (!s->reaper_stop) {
        int64_t now = berth_now_ms();
        int scan = ++tick % REAPER_SCAN_TICKS == 0;

        atomic_store(&s->reaper_tick_ms, now);
        struct http_stream **waiting = NULL;
        struct pollfd *pfd = NULL;
        size_t n_waiting = 0;

        if (scan && s->n_conns > 0) {
            waiting = calloc(s->n_conns, sizeof(*waiting));
            pfd = calloc(s->n_conns, sizeof(*pfd));
        }
        for (struct http_conn *hc = s->conns; hc != NULL; hc = hc->next) {
            if (s->read_timeout_ms > 0 && scan && hc->idle && hc->tcp) {
                uint64_t rx = conn_rx_bytes(hc);

                if (hc->rx_mark == RX_MARK_NONE) {
                    hc->rx_mark = rx;
                } else if (rx != hc->rx_mark) {
                    hc->idle = 0;
                    hc->read_deadline = now + s->read_timeout_ms;
                }
            }
            if (hc->read_deadline != 0 && now >= hc->read_deadline && hc->fd >= 0) {
                hc->read_deadline = 0;
                log_info("http.read_timeout", "timeout_ms=%lld", (long long)s->read_timeout_ms);
                shutdown(hc->fd, SHUT_RDWR);
            }
            if (waiting != NULL && pfd != NULL && hc->stream != NULL && hc->fd >= 0 &&
                n_waiting < s->n_conns && http_stream_waiting(hc->stream)) {
                http_stream_ref(hc->stream);
                waiting[n_waiting] = hc->stream;
                pfd[n_waiting].fd = hc->fd;
                pfd[n_waiting].events = POLLRDHUP;
                n_waiting++;
            }
        }
        lock_give(&s->conns_lock);
        /* A hang-up ends the stream with an error. An fd closed and reused
         * meanwhile belongs to a stream that has already ended, for which
         * the abort does nothing. */
        if (n_waiting > 0 && poll(pfd, n_waiting, 0) > 0)
            for (size_t i = 0; i < n_waiting; i++)
                if (pfd[i].revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL))
                    http_stream_abort(waiting[i]);
        for (size_t i = 0; i < n_waiting; i++)
            http_stream_unref(waiting[i]);
        free(waiting);
        free(pfd);
        lock_take(&s->conns_lock);
        if (!s->reaper_stop)
            lock_wait_until(&s->reaper_wake, &s->conns_lock, berth_now_ms() + REAPER_TICK_MS);
    }
    lock_give(&s->conns_lock);
    return NULL;
}

/* ---- requests --------------------------------------------------------- */

static void request_done(struct http_server *s, struct http_request *req)
{
    if (!req->counted)
        return;
    req->counted = 0;
    lock_take(&s->idle_lock);
    if (atomic_fetch_sub(&s->in_flight, 1) == 1)
        pthread_cond_broadcast(&s->idle_cond);
    lock_give(&s->idle_lock);
}

struct framing_scan {
    struct http_request *req;
    const char *clen; /* the first Content-Length */
    size_t clen_len;
    const char *last_value; /* of the last header line */
    size_t last_len;
    const char *next_line; /* where the next line must begin after a CRLF */
};

static int framing_bad(struct http_request *req, const char *what)
{
    if (!req->malformed) {
        req->malformed = 1;
        berth_err_set(&req->framing, BERTH_INVALID_ARGUMENT, "malformed request: %s", what);
    }
    return -1;
}

#define LINE_PROBLEM "a line not ended by CRLF, or a NUL in a header"

/* libmicrohttpd 0.9.75 accepts a bare LF as a line end, joins obs-fold
 * lines into the header above and reads a header line only up to a NUL,
 * with no option to refuse them. What it leaves behind shows them: in its
 * read buffer each line's CR and LF are overwritten with NUL, and nothing
 * else is. So a line `value CR LF` leaves value, NUL, NUL and then the first
 * byte of the next line, which is neither a space nor a tab unless the next
 * line is an obs-fold. A bare LF (or a NUL inside the value) leaves one
 * NUL and then a byte of the line or the rest of the value. */
static const char *line_end_problem(const char *value, size_t len)
{
    if (value[len] != '\0' || value[len + 1] != '\0')
        return LINE_PROBLEM;
    if (value[len + 2] == ' ' || value[len + 2] == '\t')
        return "an obs-fold line (a header line that begins with a space or tab)";
    return NULL;
}

static enum MHD_Result framing_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                      size_t key_size, const char *value, size_t value_size)
{
    struct framing_scan *fs = cls;
    const char *problem;

    (void)kind;
    if (memchr(key, ' ', key_size) != NULL || memchr(key, '\t', key_size) != NULL) {
        framing_bad(fs->req, "a space in a header name");
        return MHD_NO;
    }
    if (value == NULL)
        return MHD_YES;
    problem = line_end_problem(value, value_size);
    /* Each line begins where the one before ended with its CRLF: a byte
     * more or less between them (a NUL that cut a value short, a bare
     * LF) shows as a gap. */
    if (problem == NULL && fs->next_line != NULL && key != fs->next_line)
        problem = LINE_PROBLEM;
    if (problem != NULL) {
        framing_bad(fs->req, problem);
        return MHD_NO;
    }
    fs->last_value = value;
    fs->last_len = value_size;
    fs->next_line = value + value_size + 2;
    if (key_size == 14 && strncasecmp(key, "Content-Length", 14) == 0) {
        if (fs->clen != NULL &&
            (fs->clen_len != value_size || memcmp(fs->clen, value, value_size) != 0)) {
            framing_bad(fs->req, "two different Content-Length headers");
            return MHD_NO;
        }
        fs->clen = value;
        fs->clen_len = value_size;
    }
    return MHD_YES;
}

/* What libmicrohttpd lets through but HTTP/1.1 (RFC 9112) forbids (see
 * line_end_problem and on_uri). The lines are chained: the first header
 * begins right after the request line's CRLF, each next one right after
 * the CRLF of the one before, and the header block, as libmicrohttpd
 * measured it, ends right after the empty line's CRLF.
 *
 * One thing cannot be caught here: a NUL in a header's name hides the
 * colon from libmicrohttpd, which refuses the line itself with its own
 * HTML 400 page before any of berthd's code sees the request (it has no
 * hook to answer otherwise; the connection is closed after it). */
static void request_check_framing(struct http_request *req, const char *method, const char *version)
{
    struct framing_scan fs = {.req = req};
    const union MHD_ConnectionInfo *ci;
    const char *problem, *end = NULL;

    if (req->hc != NULL && req->hc->target_problem != NULL) {
        framing_bad(req, req->hc->target_problem);
        return;
    }
    if (strchr(req->path, ' ') != NULL || strchr(req->path, '\t') != NULL) {
        framing_bad(req, "a space in the request target");
        return;
    }
    if (version != NULL && version[0] != '\0') {
        problem = line_end_problem(version, strlen(version));
        if (problem != NULL) {
            framing_bad(req, problem);
            return;
        }
        fs.last_value = version;
        fs.last_len = strlen(version);
        fs.next_line = version + fs.last_len + 2;
    }
    MHD_get_connection_values_n(req->conn, MHD_HEADER_KIND, framing_header, &fs);
    if (req->malformed || fs.last_value == NULL)
        return;
    ci = MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
    if (ci != NULL && method != NULL)
        end = method + ci->header_size;
    /* The empty line that ends the header block must be a CRLF too. */
    if (end != NULL ? fs.next_line + 2 != end : fs.last_value[fs.last_len + 3] != '\0')
        framing_bad(req, "the header block is not ended by CRLF");
}

/* libmicrohttpd's look at the request line before it changes it: what it
 * lets through there, found on the raw target. Its answer (NULL) is the
 * request's first *req_cls. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    struct http_conn *hc = ci != NULL ? ci->socket_context : NULL;
    size_t path_len = strcspn(uri, "?");

    (void)cls;
    if (hc == NULL)
        return NULL;
    hc->target_problem = NULL;
    for (const char *p = uri; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == ' ' || c == '\t') {
            hc->target_problem = "a space in the request target";
            break;
        }
        if (c < 0x20 || c == 0x7f) {
            hc->target_problem = "a control character in the request target";
            break;
        }
    }
    /* A NUL the path decodes to would cut it short: ".../GetVmInfo%00x"
     * must not reach GetVmInfo. */
    for (size_t i = 0; hc->target_problem == NULL && i + 2 < path_len; i++)
        if (uri[i] == '%' && uri[i + 1] == '0' && uri[i + 2] == '0')
            hc->target_problem = "a NUL (%00) in the request path";
    return NULL;
}

/* What the connection shows about the caller, learnt once per connection. */
static void conn_learn_peer(struct http_server *s, struct http_conn *hc,
                            struct MHD_Connection *conn)
{
    if (hc->peer_known)
        return;
    hc->peer_known = 1;
    if (s->tls != NULL) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
        if (ci != NULL)
            tls_peer_read(s->tls, ci->tls_session, &hc->tls);
    }
    if (s->is_unix && hc->fd >= 0) {
        struct ucred cred;
        socklen_t len = sizeof(cred);

        if (getsockopt(hc->fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
            hc->unix_peer = 1;
            hc->uid = cred.uid;
            hc->pid = cred.pid;
        }
    }
}

static void request_identify(struct http_server *s, struct http_request *req)
{
    struct auth_peer peer;
    const char *name = NULL;

    memset(&peer, 0, sizeof(peer));
    peer.authorization = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "Authorization");
    if (req->hc != NULL) {
        conn_learn_peer(s, req->hc, req->conn);
        peer.tls_verified = req->hc->tls.verified;
        peer.tls_subject = req->hc->tls.subject;
        peer.tls_spiffe = req->hc->tls.spiffe;
        peer.unix_peer = req->hc->unix_peer;
        peer.uid = req->hc->uid;
        peer.pid = req->hc->pid;
    }
    if (auth_identify(s->auth, &peer, req->arena, &name, &req->auth_err) == 0)
        req->caller = name;
}

/* Fill req->resp with the handler's answer (any thread). */
static void run_handler(struct http_server *s, struct http_request *req)
{
    memset(&req->resp, 0, sizeof(req->resp));
    req->resp.status = 500;
    buf_init(&req->resp.body, SIZE_MAX / 2);
    s->handler(s->ctx, req, &req->resp, req->arena);
    req->prepared = 1;
}

/* Hand req->resp to libmicrohttpd (the event thread). */
static enum MHD_Result queue_response(struct http_server *s, struct http_request *req)
{
    struct http_response *resp = &req->resp;
    struct MHD_Response *r;
    enum MHD_Result rc;

    if (resp->stream != NULL) {
        struct http_stream *st = resp->stream;

        r = http_stream_attach(st, req->conn, resp->body.data, resp->body.len);
        if (r == NULL)
            return MHD_NO; /* on_completed drops the stream */
        resp->stream = NULL;
        lock_take(&s->conns_lock);
        http_stream_ref(st);
        req->hc->stream = st; /* a stream always has its connection record */
        lock_give(&s->conns_lock);
        /* A client that stops reading must not park megabytes in the
         * kernel for us: the stream's own queue is the buffer that counts,
         * and its bound is what cuts a slow reader off. */
        if (req->hc->fd >= 0) {
            int sndbuf = STREAM_SNDBUF;
            (void)setsockopt(req->hc->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
        }
        buf_release(&resp->body);
    } else {
        size_t len = resp->body.len;
        char *data = buf_detach(&resp->body);

        if (data == NULL)
            return MHD_NO;
        r = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
        if (r == NULL) {
            free(data);
            return MHD_NO;
        }
    }
    for (size_t i = 0; i < resp->n_headers; i++)
        MHD_add_response_header(r, resp->header_name[i], resp->header_value[i]);
    /* The unread rest of the body is never read, and a malformed request
     * has no trustworthy end: the connection ends here. */
    if (req->answered || req->malformed)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    rc = MHD_queue_response(req->conn, (unsigned)resp->status, r);
    MHD_destroy_response(r);
    return rc;
}

/* Answer now, on the event thread: refusals made before the body. */
static enum MHD_Result respond(struct http_server *s, struct http_request *req)
{
    if (req->hc != NULL)
        conn_set_phase(req->hc, 0);
    run_handler(s, req);
    return queue_response(s, req);
}

/* The request is complete: answer it here when the handler only reads
 * memory, else park the connection and let a worker answer it. */
static enum MHD_Result dispatch(struct http_server *s, struct http_request *req)
{
    if (s->classify == NULL || s->classify(s->ctx, req) != HTTP_RUN_INLINE) {
        if (req->hc != NULL)
            conn_set_phase(req->hc, 0);
        req->dispatched = 1;
        atomic_fetch_add(&s->suspended, 1);
        MHD_suspend_connection(req->conn);
        workers_submit(s->workers, &req->work);
        return MHD_YES;
    }
    return respond(s, req);
}

static void on_work(struct work_item *item)
{
    struct http_request *req = (struct http_request *)item;

    run_handler(req->srv, req);
    /* libmicrohttpd calls on_access again, which queues the answer. */
    MHD_resume_connection(req->conn);
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **req_cls)
{
    struct http_server *s = cls;
    struct busy_slot *b = busy_enter(s);
    enum MHD_Result rc =
        access_request(s, conn, url, method, version, upload_data, upload_data_size, req_cls);

    busy_leave(b);
    return rc;
}

static enum MHD_Result access_request(struct http_server *s, struct MHD_Connection *conn,
                                      const char *url, const char *method, const char *version,
                                      const char *upload_data, size_t *upload_data_size,
                                      void **req_cls)
{
    struct http_request *req = *req_cls;

    if (req == NULL) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        const char *clen;
        req = calloc(1, sizeof(*req));
        if (req == NULL)
            return MHD_NO;
        req->arena = arena_new();
        if (req->arena == NULL) {
            free(req);
            return MHD_NO;
        }
        req->work.fn = on_work;
        req->srv = s;
        req->conn = conn;
        req->hc = ci != NULL ? ci->socket_context : NULL;
        req->method = method;
        req->path = url;
        req->started_ms = berth_now_ms();
        berth_err_clear(&req->framing);
        berth_err_clear(&req->auth_err);
        buf_init(&req->body, s->max_body);
        req->counted = 1;
        atomic_fetch_add(&s->in_flight, 1);
        *req_cls = req;
        request_identify(s, req);
        /* A malformed request is answered before its body, which has no
         * end to trust. */
        request_check_framing(req, method, version);
        if (req->malformed) {
            req->answered = 1;
            return respond(s, req);
        }
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
            /* The body's room at once: growing by doubling would copy it
             * on the way and leave twice its size behind. Pages the
             * client never sends are never touched. */
            if (end != clen && *end == '\0' && n > 0 &&
                buf_reserve(&req->body, (size_t)n, NULL) < 0)
                log_debug("http.body_reserve", "bytes=%llu", n); /* it grows as it comes */
        }
        return MHD_YES;
    }
    if (req->dispatched) {
        /* Back from the worker. */
        req->dispatched = 0;
        atomic_fetch_sub(&s->suspended, 1);
        *upload_data_size = 0;
        return queue_response(s, req);
    }
    if (req->answered || req->prepared) {
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
    return dispatch(s, req);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct http_server *s = cls;
    struct http_request *req = *req_cls;
    struct busy_slot *b;

    (void)conn;
    (void)toe;
    if (req == NULL)
        return;
    b = busy_enter(s);
    if (req->hc != NULL) {
        struct http_conn *hc = req->hc;
        struct http_stream *done;

        lock_take(&s->conns_lock);
        hc->read_deadline = 0;
        hc->idle = 1;
        /* The reaper's next scan takes the byte count (a system call each
         * request here was a few percent of a small call's cost). */
        hc->rx_mark = RX_MARK_NONE;
        done = hc->stream;
        hc->stream = NULL;
        lock_give(&s->conns_lock);
        http_stream_unref(done);
    }
    if (req->resp.stream != NULL)
        http_stream_discard(req->resp.stream);
    buf_release(&req->resp.body);
    request_done(s, req);
    buf_release(&req->body);
    arena_free(req->arena);
    free(req);
    *req_cls = NULL;
    busy_leave(b);
}
