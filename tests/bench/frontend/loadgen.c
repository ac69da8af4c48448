/* The load generator of the frontend benchmark: one thread, epoll,
 * non-blocking HTTP/1.1 keep-alive connections.
 *
 * Load mode: N connections each send one POST as soon as the last answer is
 * in (a closed loop), for --warmup then --duration seconds; the latency of
 * every answer completed in the measured window is kept, and one line gives
 * req/s, p50, p99 and max. Idle mode (--idle M): M connections each make one
 * request and are then held open without a word; with --server-pid the line
 * gives that process's VmRSS and thread count before and with them held.
 * Both modes first open every connection and see one answer on it (at most
 * --open-window handshakes at a time), so a server's accept backlog and
 * thread start-up are not in the measured window.
 *
 *   loadgen --port P --path /svc/Method --body JSON --connections N
 *           [--duration S] [--warmup S] [--host 127.0.0.1] [--server-pid SERVER]
 *   loadgen --port P --path /svc/Method --body JSON --idle M
 *           [--settle S] [--server-pid PID]
 *   loadgen --free-port      prints a port of 127.0.0.1 free right now
 *
 * Output (one line on stdout, key=value):
 *   load conns=64 open=64 requests=... rps=... p50_ms=... p99_ms=... max_ms=... errors=0
 *        closed_by_server=0 server_cpu_s=... gen_cpu_s=... busy_cpu_s=...
 *   (CPU seconds in the measured window: of --server-pid (-1 without), of the
 *   generator, and of the whole machine)
 *   idle asked=10000 open=... failed=... closed_by_server=... rss_before_kib=...
 *        rss_after_kib=... threads_before=... threads_after=... fds_before=... fds_after=...
 *        rss_closed_kib=... threads_closed=...
 *   (before opening, with them held --settle seconds, and --settle seconds
 *   after closing them; -1 without --server-pid) */
#define _GNU_SOURCE /* memmem */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum conn_state { C_CLOSED, C_CONNECTING, C_SENDING, C_READING, C_IDLE, C_FAILED };

struct conn {
    int fd;
    enum conn_state state;
    size_t sent;     /* bytes of the request written */
    char *rbuf;      /* the answer so far */
    size_t rlen;     /* bytes in rbuf */
    size_t rcap;     /* size of rbuf */
    size_t need;     /* header + body length once the header is in; 0 before */
    int close_after; /* the server said Connection: close */
    uint64_t t_sent; /* when the request went out, ns */
    uint32_t gen;    /* bumped at each connect: tells a stale event from a new socket's */
    int attempts;    /* connects made */
    int answered;    /* answers seen on this connection */
};

struct lat {
    uint64_t *v; /* ns */
    size_t n, cap;
};

struct gen {
    struct sockaddr_in addr;
    char *req; /* the whole request, sent as is every time */
    size_t req_len;
    struct conn *conns;
    int nconns;
    int ep;
    int loading;           /* the load phase: send again after each answer */
    uint64_t win_start;    /* measured window, ns; answers outside it are not kept */
    uint64_t win_end;      /* 0 while open-ended */
    struct lat lat;        /* answers in the window */
    long errors;           /* non-200 answers, resets, unparsable answers */
    long closed_by_server; /* connections the server closed */
    int opening;           /* connections in their handshake or first request */
    int next_to_open;      /* index of the next connection not yet opened */
    int open_window;
    int opened;   /* connections that saw their first answer */
    int given_up; /* connections that failed every attempt */
};

static int parse_long(const char *s, long lo, long hi, long *out);
static int parse_secs(const char *s, double *out);
static uint64_t now_ns(void);
static void raise_nofile(long want);
static int read_status(long pid, long *rss_kib, long *threads);
static long count_fds(long pid);
static double proc_cpu_s(long pid);
static double machine_busy_s(void);
static double self_cpu_s(void);
static uint64_t conn_key(const struct gen *g, const struct conn *c);
static int conn_open(struct gen *g, struct conn *c);
static void conn_close(struct gen *g, struct conn *c);
static void conn_lost(struct gen *g, struct conn *c);
static void conn_send(struct gen *g, struct conn *c);
static void conn_read(struct gen *g, struct conn *c);
static int conn_parse(struct gen *g, struct conn *c);
static void conn_answered(struct gen *g, struct conn *c, int status);
static void open_more(struct gen *g);
static void run_until(struct gen *g, uint64_t deadline, int stop_when_opened);
static int lat_add(struct lat *l, uint64_t ns);
static int cmp_u64(const void *a, const void *b);
static int print_free_port(void);
static double percentile_ms(const struct lat *l, double p);

#define MAX_ATTEMPTS 3
#define RBUF_INITIAL 2048
#define RBUF_MAX (1 << 20)

static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int parse_secs(const char *s, double *out)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || v < 0 || v > 86400)
        return -1;
    *out = v;
    return 0;
}

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Thousands of sockets need the soft limit of open files raised (to the hard
 * one at most); says so when even that is too low. */
static void raise_nofile(long want)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return;
    if (rl.rlim_cur != RLIM_INFINITY && (long)rl.rlim_cur < want) {
        rl.rlim_cur =
            rl.rlim_max == RLIM_INFINITY || (long)rl.rlim_max >= want ? (rlim_t)want : rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0 || (long)rl.rlim_cur < want)
            fprintf(stderr, "loadgen: open files limited to %ld, %ld wanted\n", (long)rl.rlim_cur,
                    want);
    }
}

/* VmRSS (KiB) and Threads of /proc/PID/status. */
static int read_status(long pid, long *rss_kib, long *threads)
{
    char path[64], line[256];
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%ld/status", pid);
    f = fopen(path, "r");
    if (f == NULL)
        return -1;
    *rss_kib = -1;
    *threads = -1;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "VmRSS:", 6) == 0)
            *rss_kib = strtol(line + 6, NULL, 10);
        else if (strncmp(line, "Threads:", 8) == 0)
            *threads = strtol(line + 8, NULL, 10);
    }
    fclose(f);
    return *rss_kib >= 0 ? 0 : -1;
}

/* The epoll key of a connection's current socket: its index and generation. */
static uint64_t conn_key(const struct gen *g, const struct conn *c)
{
    return ((uint64_t)c->gen << 32) | (uint64_t)(c - g->conns);
}

/* Open file descriptors of a process (its sockets among them), or -1. */
static long count_fds(long pid)
{
    char path[64];
    struct dirent *e;
    long n = 0;
    DIR *d;

    snprintf(path, sizeof(path), "/proc/%ld/fd", pid);
    d = opendir(path);
    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

/* CPU seconds (user + system, every thread) a process has used, or -1. */
static double proc_cpu_s(long pid)
{
    char path[64], line[1024], *p;
    unsigned long ut, st;
    FILE *f;
    int ok;

    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    f = fopen(path, "r");
    if (f == NULL)
        return -1;
    ok = fgets(line, sizeof(line), f) != NULL;
    fclose(f);
    /* The name in parentheses may hold spaces; the fields follow its end. */
    p = ok ? strrchr(line, ')') : NULL;
    if (p == NULL ||
        sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* CPU seconds the whole machine has spent busy (all but idle and iowait). */
static double machine_busy_s(void)
{
    unsigned long long v[8] = {0};
    FILE *f = fopen("/proc/stat", "r");
    int n;

    if (f == NULL)
        return -1;
    n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4],
               &v[5], &v[6], &v[7]);
    fclose(f);
    if (n < 7)
        return -1;
    return (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / (double)sysconf(_SC_CLK_TCK);
}

static double self_cpu_s(void)
{
    struct rusage ru;

    if (getrusage(RUSAGE_SELF, &ru) < 0)
        return -1;
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static int conn_open(struct gen *g, struct conn *c)
{
    struct epoll_event ev;
    int one = 1, rc;

    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        fprintf(stderr, "loadgen: socket: %s\n", strerror(errno));
        return -1;
    }
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->attempts++;
    c->sent = 0;
    c->rlen = 0;
    c->need = 0;
    c->close_after = 0;
    rc = connect(c->fd, (struct sockaddr *)&g->addr, sizeof(g->addr));
    if (rc < 0 && errno != EINPROGRESS) {
        fprintf(stderr, "loadgen: connect: %s\n", strerror(errno));
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    c->state = C_CONNECTING;
    c->gen++;
    ev.events = EPOLLOUT | EPOLLIN;
    ev.data.u64 = conn_key(g, c);
    if (epoll_ctl(g->ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
        fprintf(stderr, "loadgen: epoll_ctl: %s\n", strerror(errno));
        close(c->fd);
        c->fd = -1;
        c->state = C_CLOSED;
        return -1;
    }
    return 0;
}

static void conn_close(struct gen *g, struct conn *c)
{
    if (c->fd >= 0) {
        epoll_ctl(g->ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    c->fd = -1;
    c->state = C_CLOSED;
}

/* The server closed or reset the connection, or the answer made no sense.
 * Before its first answer a connection is tried MAX_ATTEMPTS times, then
 * given up; in the load phase it is opened again. */
static void conn_lost(struct gen *g, struct conn *c)
{
    int first = c->answered == 0;

    conn_close(g, c);
    if (first && c->attempts >= MAX_ATTEMPTS) {
        g->opening--;
        g->given_up++;
        c->state = C_FAILED;
        return;
    }
    if (!first && !g->loading) {
        c->state = C_FAILED; /* an idle connection the server let go */
        return;
    }
    if (conn_open(g, c) < 0) {
        if (first) {
            g->opening--;
            g->given_up++;
        }
        c->state = C_FAILED;
    }
}

static void conn_send(struct gen *g, struct conn *c)
{
    struct epoll_event ev;
    ssize_t n;

    if (c->sent == 0)
        c->t_sent = now_ns();
    while (c->sent < g->req_len) {
        n = send(c->fd, g->req + c->sent, g->req_len - c->sent, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            if (c->state != C_SENDING) {
                ev.events = EPOLLOUT | EPOLLIN;
                ev.data.u64 = conn_key(g, c);
                epoll_ctl(g->ep, EPOLL_CTL_MOD, c->fd, &ev);
            }
            c->state = C_SENDING;
            return;
        }
        if (n < 0) {
            g->errors++;
            conn_lost(g, c);
            return;
        }
        c->sent += (size_t)n;
    }
    if (c->state == C_SENDING || c->state == C_CONNECTING) {
        ev.events = EPOLLIN;
        ev.data.u64 = conn_key(g, c);
        epoll_ctl(g->ep, EPOLL_CTL_MOD, c->fd, &ev);
    }
    c->state = C_READING;
}

/* Returns 1 when an answer is complete, 0 when more is needed, -1 when it
 * cannot be read (no Content-Length: the servers measured here send one). */
static int conn_parse(struct gen *g, struct conn *c)
{
    char *end, *line, *eol;
    size_t hlen;
    long clen = -1;

    (void)g;
    if (c->need == 0) {
        end = memmem(c->rbuf, c->rlen, "\r\n\r\n", 4);
        if (end == NULL)
            return 0;
        hlen = (size_t)(end - c->rbuf) + 4;
        for (line = c->rbuf; line < end; line = eol + 2) {
            eol = memmem(line, (size_t)(end + 2 - line), "\r\n", 2);
            if (eol == NULL)
                break;
            if (eol - line > 15 && strncasecmp(line, "Content-Length:", 15) == 0)
                clen = strtol(line + 15, NULL, 10);
            else if (eol - line >= 17 && strncasecmp(line, "Connection:", 11) == 0 &&
                     memmem(line, (size_t)(eol - line), "close", 5) != NULL)
                c->close_after = 1;
        }
        if (clen < 0 || clen > RBUF_MAX)
            return -1;
        c->need = hlen + (size_t)clen;
    }
    return c->rlen >= c->need ? 1 : 0;
}

static void conn_answered(struct gen *g, struct conn *c, int status)
{
    uint64_t t = now_ns();

    if (status != 200)
        g->errors++;
    else if (g->loading && t >= g->win_start && (g->win_end == 0 || t <= g->win_end))
        lat_add(&g->lat, t - c->t_sent);
    if (c->answered++ == 0) {
        g->opening--;
        g->opened++;
    }
    /* One request at a time: nothing may follow the answer. */
    c->rlen = 0;
    c->need = 0;
    c->sent = 0;
    if (c->close_after) {
        g->closed_by_server++;
        conn_lost(g, c);
        return;
    }
    if (g->loading) {
        conn_send(g, c);
    } else {
        c->state = C_IDLE;
    }
}

static void conn_read(struct gen *g, struct conn *c)
{
    ssize_t n;
    int r, status;

    for (;;) {
        if (c->rlen == c->rcap) {
            size_t cap = c->rcap ? c->rcap * 2 : RBUF_INITIAL;
            char *p = cap > RBUF_MAX ? NULL : realloc(c->rbuf, cap);

            if (p == NULL) {
                g->errors++;
                conn_lost(g, c);
                return;
            }
            c->rbuf = p;
            c->rcap = cap;
        }
        n = recv(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        if (n <= 0) {
            /* A close between requests is the server's choice (a limit or
             * a timeout); one in the middle of an answer is an error. */
            if (n == 0 && (c->state == C_IDLE || (c->state == C_READING && c->rlen == 0)))
                g->closed_by_server++;
            else
                g->errors++;
            if (c->state == C_IDLE)
                g->opened--;
            conn_lost(g, c);
            return;
        }
        if (c->state == C_IDLE) {
            /* Nothing was asked: the server has no business talking. */
            g->errors++;
            c->rlen = 0;
            continue;
        }
        c->rlen += (size_t)n;
        r = conn_parse(g, c);
        if (r < 0) {
            g->errors++;
            conn_lost(g, c);
            return;
        }
        if (r == 1) {
            status = c->rlen > 12 && strncmp(c->rbuf, "HTTP/1.", 7) == 0
                         ? (int)strtol(c->rbuf + 9, NULL, 10)
                         : 0;
            conn_answered(g, c, status);
            return;
        }
    }
}

/* Opens connections up to the window of handshakes under way. */
static void open_more(struct gen *g)
{
    while (g->opening < g->open_window && g->next_to_open < g->nconns) {
        struct conn *c = &g->conns[g->next_to_open++];

        if (conn_open(g, c) < 0) {
            c->state = C_FAILED;
            g->given_up++;
            continue;
        }
        g->opening++;
    }
}

/* Runs the event loop until the deadline (ns), or until every connection
 * has seen its first answer or been given up when stop_when_opened. */
static void run_until(struct gen *g, uint64_t deadline, int stop_when_opened)
{
    struct epoll_event evs[256];
    int i, n;

    for (;;) {
        uint64_t t = now_ns();
        int ms;

        if (stop_when_opened) {
            open_more(g);
            if (g->opened + g->given_up >= g->nconns)
                return;
        }
        if (t >= deadline)
            return;
        ms = (int)((deadline - t) / 1000000u) + 1;
        n = epoll_wait(g->ep, evs, 256, ms > 100 ? 100 : ms);
        if (n < 0 && errno == EINTR)
            continue;
        for (i = 0; i < n; i++) {
            uint64_t key = evs[i].data.u64;
            struct conn *c = &g->conns[(uint32_t)key];

            /* An event of a socket closed earlier in this batch. */
            if (c->fd < 0 || (uint32_t)(key >> 32) != c->gen)
                continue;
            if (c->state == C_CONNECTING) {
                int err = 0;
                socklen_t el = sizeof(err);

                if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 || err != 0) {
                    g->errors++;
                    conn_lost(g, c);
                    continue;
                }
                conn_send(g, c);
                continue;
            }
            if (c->state == C_SENDING && (evs[i].events & EPOLLOUT)) {
                conn_send(g, c);
                continue;
            }
            if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                conn_read(g, c);
        }
    }
}

static int lat_add(struct lat *l, uint64_t ns)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 65536;
        uint64_t *p = realloc(l->v, cap * sizeof(*p));

        if (p == NULL)
            return -1;
        l->v = p;
        l->cap = cap;
    }
    l->v[l->n++] = ns;
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

/* The nearest-rank percentile of sorted samples, in ms. */
static double percentile_ms(const struct lat *l, double p)
{
    size_t i;

    if (l->n == 0)
        return 0;
    i = (size_t)(p / 100.0 * (double)l->n + 0.999999);
    i = i == 0 ? 0 : i - 1;
    if (i >= l->n)
        i = l->n - 1;
    return (double)l->v[i] / 1e6;
}

/* For a server that must be told its port: the kernel picks one, which is
 * free again once this returns (a race the benchmark can live with). */
static int print_free_port(void)
{
    struct sockaddr_in sin;
    socklen_t sl = sizeof(sin);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
        getsockname(fd, (struct sockaddr *)&sin, &sl) < 0) {
        fprintf(stderr, "loadgen: no free port: %s\n", strerror(errno));
        if (fd >= 0)
            close(fd);
        return 1;
    }
    printf("%u\n", ntohs(sin.sin_port));
    close(fd);
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: loadgen --port P [--host IP] [--path P] [--body S]\n"
                    "         (--connections N [--duration S] [--warmup S]\n"
                    "          | --idle M [--settle S] [--server-pid PID]) [--open-window N]\n"
                    "       loadgen --free-port\n");
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {{"host", required_argument, NULL, 'h'},
                                             {"port", required_argument, NULL, 'p'},
                                             {"path", required_argument, NULL, 'P'},
                                             {"body", required_argument, NULL, 'b'},
                                             {"connections", required_argument, NULL, 'c'},
                                             {"duration", required_argument, NULL, 'd'},
                                             {"warmup", required_argument, NULL, 'w'},
                                             {"idle", required_argument, NULL, 'i'},
                                             {"settle", required_argument, NULL, 's'},
                                             {"server-pid", required_argument, NULL, 'r'},
                                             {"open-window", required_argument, NULL, 'o'},
                                             {"free-port", no_argument, NULL, 'f'},
                                             {NULL, 0, NULL, 0}};
    const char *host = "127.0.0.1", *path = "/", *body = "{}";
    long port = -1, conns = 0, idle = 0, server_pid = 0, window = 128;
    long rss0 = -1, thr0 = -1, rss1 = -1, thr1 = -1, fds0 = -1, fds1 = -1, rss2 = -1, thr2 = -1;
    double duration = 5, warmup = 1, settle = 1;
    double srv0, srv1, gen0, gen1, busy0, busy1;
    struct gen g;
    int c, i, rc = 0, reqcap;
    uint64_t t;

    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        int bad = 0;

        switch (c) {
        case 'h':
            host = optarg;
            break;
        case 'p':
            bad = parse_long(optarg, 1, 65535, &port);
            break;
        case 'P':
            path = optarg;
            break;
        case 'b':
            body = optarg;
            break;
        case 'c':
            bad = parse_long(optarg, 1, 1000000, &conns);
            break;
        case 'd':
            bad = parse_secs(optarg, &duration);
            break;
        case 'w':
            bad = parse_secs(optarg, &warmup);
            break;
        case 'i':
            bad = parse_long(optarg, 1, 1000000, &idle);
            break;
        case 's':
            bad = parse_secs(optarg, &settle);
            break;
        case 'r':
            bad = parse_long(optarg, 1, 1L << 30, &server_pid);
            break;
        case 'o':
            bad = parse_long(optarg, 1, 100000, &window);
            break;
        case 'f':
            return print_free_port();
        default:
            bad = -1;
        }
        if (bad < 0) {
            usage();
            return 2;
        }
    }
    if (port < 0 || (conns == 0) == (idle == 0)) {
        usage();
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    memset(&g, 0, sizeof(g));
    g.addr.sin_family = AF_INET;
    g.addr.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &g.addr.sin_addr) != 1) {
        fprintf(stderr, "loadgen: --host must be an IPv4 address\n");
        return 2;
    }
    reqcap = (int)(strlen(path) + strlen(host) + strlen(body) + 160);
    g.req = malloc((size_t)reqcap);
    if (g.req == NULL)
        return 1;
    rc = snprintf(g.req, (size_t)reqcap,
                  "POST %s HTTP/1.1\r\nHost: %s:%ld\r\nContent-Type: application/json\r\n"
                  "Content-Length: %zu\r\n\r\n%s",
                  path, host, port, strlen(body), body);
    if (rc < 0 || rc >= reqcap)
        return 1;
    g.req_len = (size_t)rc;
    g.nconns = (int)(conns ? conns : idle);
    g.open_window = (int)window;
    raise_nofile(g.nconns + 64);
    g.conns = calloc((size_t)g.nconns, sizeof(*g.conns));
    g.ep = epoll_create1(EPOLL_CLOEXEC);
    if (g.conns == NULL || g.ep < 0) {
        fprintf(stderr, "loadgen: out of memory or epoll\n");
        return 1;
    }
    for (i = 0; i < g.nconns; i++)
        g.conns[i].fd = -1;
    if (server_pid > 0 && read_status(server_pid, &rss0, &thr0) < 0) {
        fprintf(stderr, "loadgen: cannot read /proc/%ld/status\n", server_pid);
        return 1;
    }
    if (server_pid > 0)
        fds0 = count_fds(server_pid);

    /* Every connection opened and answered once, 60 s at most. */
    run_until(&g, now_ns() + 60ull * 1000000000u, 1);

    if (idle) {
        run_until(&g, now_ns() + (uint64_t)(settle * 1e9), 0);
        if (server_pid > 0 && read_status(server_pid, &rss1, &thr1) < 0)
            rss1 = thr1 = -1;
        if (server_pid > 0)
            fds1 = count_fds(server_pid);
        /* And once they are gone again: what the server gives back. */
        for (i = 0; i < g.nconns; i++)
            conn_close(&g, &g.conns[i]);
        run_until(&g, now_ns() + (uint64_t)(settle * 1e9), 0);
        if (server_pid > 0 && read_status(server_pid, &rss2, &thr2) < 0)
            rss2 = thr2 = -1;
        printf("idle asked=%ld open=%d failed=%d closed_by_server=%ld errors=%ld"
               " rss_before_kib=%ld rss_after_kib=%ld threads_before=%ld threads_after=%ld"
               " fds_before=%ld fds_after=%ld rss_closed_kib=%ld threads_closed=%ld\n",
               idle, g.opened, g.nconns - g.opened, g.closed_by_server, g.errors, rss0, rss1, thr0,
               thr1, fds0, fds1, rss2, thr2);
    } else {
        int open_at_start = g.opened;

        /* The first answers set every connection idle; start them all. */
        g.loading = 1;
        t = now_ns();
        g.win_start = t + (uint64_t)(warmup * 1e9);
        for (i = 0; i < g.nconns; i++)
            if (g.conns[i].state == C_IDLE)
                conn_send(&g, &g.conns[i]);
        run_until(&g, g.win_start, 0);
        g.errors = 0;
        g.closed_by_server = 0;
        g.win_end = g.win_start + (uint64_t)(duration * 1e9);
        srv0 = server_pid > 0 ? proc_cpu_s(server_pid) : -1;
        gen0 = self_cpu_s();
        busy0 = machine_busy_s();
        run_until(&g, g.win_end, 0);
        srv1 = server_pid > 0 ? proc_cpu_s(server_pid) : -1;
        gen1 = self_cpu_s();
        busy1 = machine_busy_s();
        qsort(g.lat.v, g.lat.n, sizeof(*g.lat.v), cmp_u64);
        printf("load conns=%ld open=%d requests=%zu rps=%.1f p50_ms=%.3f p99_ms=%.3f "
               "max_ms=%.3f errors=%ld closed_by_server=%ld server_cpu_s=%.2f gen_cpu_s=%.2f "
               "busy_cpu_s=%.2f\n",
               conns, open_at_start, g.lat.n, duration > 0 ? (double)g.lat.n / duration : 0,
               percentile_ms(&g.lat, 50), percentile_ms(&g.lat, 99),
               g.lat.n ? (double)g.lat.v[g.lat.n - 1] / 1e6 : 0, g.errors, g.closed_by_server,
               srv0 >= 0 && srv1 >= 0 ? srv1 - srv0 : -1, gen1 - gen0, busy1 - busy0);
    }
    fflush(stdout);
    for (i = 0; i < g.nconns; i++) {
        conn_close(&g, &g.conns[i]);
        free(g.conns[i].rbuf);
    }
    close(g.ep);
    free(g.conns);
    free(g.lat.v);
    free(g.req);
    return 0;
}
