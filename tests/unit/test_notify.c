/* systemd notification, end to end: the built berthd (memory backend) runs
 * with NOTIFY_SOCKET at a datagram socket this test binds and the watchdog
 * on (WATCHDOG_USEC). It must send READY=1 once it listens, WATCHDOG=1
 * while it serves, also while every connection slot is taken (busy, not
 * hung), and STOPPING=1 on SIGTERM before it exits 0. The heartbeat asks
 * the daemon itself, not its listener: behind TLS with client certificates
 * it goes on, and so it does when a client holds the only connection its
 * address may have. The binary is $BERTHD, else ../berthd from this test. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "berth/clock.h"
#include "berth/watchdog.h"
#include "testlib.h"

/* The watchdog period given to berthd: it probes every half of it. */
#define WATCHDOG_USEC 1000000
#define MAX_CONNECTIONS 2
#define LOG_MAX 65536

struct run {
    char dir[64];
    char sock[96];
    int notify_fd; /* our datagram socket */
    int log_fd;    /* read end of berthd's stderr */
    pid_t pid;
    char log[LOG_MAX]; /* what berthd wrote on stderr */
    size_t log_len;
    char address[128]; /* from its server.listening line */
    int watchdogs;     /* WATCHDOG=1 received */
};

static int berthd_path(char *out, size_t outsz)
{
    const char *env = getenv("BERTHD");
    char self[PATH_MAX];
    ssize_t n;
    char *slash;

    if (env != NULL && env[0] != '\0') {
        snprintf(out, outsz, "%s", env);
        return 0;
    }
    /* tests/CMakeLists.txt builds this test in <build>/tests, the daemon in <build>. */
    n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0)
        return -1;
    self[n] = '\0';
    for (int i = 0; i < 2; i++) {
        slash = strrchr(self, '/');
        if (slash == NULL)
            return -1;
        *slash = '\0';
    }
    snprintf(out, outsz, "%s/berthd", self);
    return access(out, X_OK);
}

/* Keep what berthd logged; note its address once it says where it listens. */
static void read_log(struct run *r)
{
    const char *at;

    for (;;) {
        ssize_t n;

        if (r->log_len + 1 >= sizeof(r->log))
            r->log_len = 0; /* only the start and the end matter */
        n = read(r->log_fd, r->log + r->log_len, sizeof(r->log) - 1 - r->log_len);
        if (n <= 0)
            break;
        r->log_len += (size_t)n;
        r->log[r->log_len] = '\0';
    }
    at = strstr(r->log, "msg=server.listening address=");
    if (r->address[0] == '\0' && at != NULL) {
        at += strlen("msg=server.listening address=");
        snprintf(r->address, sizeof(r->address), "%.*s", (int)strcspn(at, " \n"), at);
    }
}

/* Wait for a notification line `want` (e.g. "READY=1") until the deadline
 * (monotonic ms), counting every WATCHDOG=1 on the way. 0 when it came. */
static int wait_notify(struct run *r, const char *want, int64_t deadline)
{
    for (;;) {
        struct pollfd pfd[2] = {{r->notify_fd, POLLIN, 0}, {r->log_fd, POLLIN, 0}};
        int64_t left = berth_deadline_left_ms(deadline);
        char msg[4096];
        ssize_t n;

        if (left == 0)
            return -1;
        if (poll(pfd, 2, (int)(left > 1000 ? 1000 : left)) < 0 && errno != EINTR)
            return -1;
        if (pfd[1].revents)
            read_log(r);
        if (!(pfd[0].revents & POLLIN))
            continue;
        n = recv(r->notify_fd, msg, sizeof(msg) - 1, 0);
        if (n <= 0)
            continue;
        msg[n] = '\0';
        for (char *line = msg, *next; line != NULL; line = next) {
            next = strchr(line, '\n');
            if (next != NULL)
                *next++ = '\0';
            if (strcmp(line, "WATCHDOG=1") == 0)
                r->watchdogs++;
            if (want != NULL && strcmp(line, want) == 0) {
                read_log(r); /* anything logged before it */
                return 0;
            }
        }
    }
}

/* A TCP connection to berthd's HOST:PORT; -1 when it cannot connect. */
static int dial(const char *address)
{
    char host[128];
    const char *colon = strrchr(address, ':');
    struct addrinfo hints, *res = NULL;
    int fd = -1;

    if (colon == NULL)
        return -1;
    snprintf(host, sizeof(host), "%.*s", (int)(colon - address), address);
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, colon + 1, &hints, &res) != 0)
        return -1;
    fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, res->ai_addr, res->ai_addrlen) < 0) {
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

/* GET /healthz on a new connection: the status, or -1. */
static int healthz(const char *address)
{
    static const char req[] = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    char answer[256];
    size_t len = 0;
    int fd = dial(address), status = -1;
    struct pollfd pfd;

    if (fd < 0)
        return -1;
    if (write(fd, req, sizeof(req) - 1) == (ssize_t)(sizeof(req) - 1)) {
        pfd.fd = fd;
        pfd.events = POLLIN;
        while (len < sizeof(answer) - 1 && poll(&pfd, 1, 5000) > 0) {
            ssize_t n = read(fd, answer + len, sizeof(answer) - 1 - len);

            if (n <= 0)
                break;
            len += (size_t)n;
        }
        answer[len] = '\0';
        if (strncmp(answer, "HTTP/1.1 ", 9) == 0)
            status = (int)strtol(answer + 9, NULL, 10);
    }
    close(fd);
    return status;
}

/* berthd with the watchdog on, on 127.0.0.1:0, with `extra` flags
 * (NULL-terminated) after the common ones. */
static int start(struct run *r, const char *bin, const char *const *extra)
{
    struct sockaddr_un sa;
    const char *tmp = getenv("TMPDIR");
    int logp[2];

    memset(r, 0, sizeof(*r));
    r->notify_fd = r->log_fd = -1;
    r->pid = -1;
    snprintf(r->dir, sizeof(r->dir), "%s/berth-notify-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (mkdtemp(r->dir) == NULL)
        return -1;
    snprintf(r->sock, sizeof(r->sock), "%s/notify.sock", r->dir);
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", r->sock);
    r->notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (r->notify_fd < 0 || bind(r->notify_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        return -1;
    if (pipe2(logp, O_CLOEXEC) < 0)
        return -1;
    r->pid = fork();
    if (r->pid == 0) {
        char usec[32], pid[32], conns[16];

        snprintf(usec, sizeof(usec), "%d", WATCHDOG_USEC);
        snprintf(pid, sizeof(pid), "%ld", (long)getpid());
        snprintf(conns, sizeof(conns), "%d", MAX_CONNECTIONS);
        setenv("NOTIFY_SOCKET", r->sock, 1);
        setenv("WATCHDOG_USEC", usec, 1);
        setenv("WATCHDOG_PID", pid, 1);
        const char *argv[32] = {bin,           "--backend",         "memory", "--listen",
                                "127.0.0.1:0", "--max-connections", conns,    "--idle-timeout",
                                "600",         "--shutdown-grace",  "1"};
        size_t n = 11;

        for (size_t i = 0; extra != NULL && extra[i] != NULL && n + 1 < 32; i++)
            argv[n++] = extra[i];
        argv[n] = NULL;
        dup2(logp[1], 2);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    close(logp[1]);
    r->log_fd = logp[0];
    if (r->pid < 0)
        return -1;
    fcntl(r->log_fd, F_SETFL, O_NONBLOCK);
    return 0;
}

/* Wait for the exit until the deadline: the wait status, or -1 (then it is killed). */
static int reap(struct run *r, int64_t deadline)
{
    int status = 0;

    while (r->pid > 0) {
        pid_t got = waitpid(r->pid, &status, WNOHANG);

        if (got == r->pid) {
            r->pid = -1;
            return status;
        }
        if (berth_now_ms() >= deadline) {
            kill(r->pid, SIGKILL);
            waitpid(r->pid, &status, 0);
            r->pid = -1;
            return -1;
        }
        wait_notify(r, NULL, berth_now_ms() + 20); /* drains its log meanwhile */
    }
    return -1;
}

static void finish(struct run *r)
{
    if (r->pid > 0)
        reap(r, berth_now_ms());
    if (r->log_fd >= 0) {
        read_log(r);
        close(r->log_fd);
    }
    if (r->notify_fd >= 0)
        close(r->notify_fd);
    unlink(r->sock);
    rmdir(r->dir);
    if (test_failures > 0)
        fprintf(stderr, "--- berthd's log (end) ---\n%s\n", r->log);
}

static void test_notify(void)
{
    static struct run r;
    char bin[PATH_MAX + 16];
    int hogs[MAX_CONNECTIONS], status, before;
    int64_t quiet_from;

    if (berthd_path(bin, sizeof(bin)) < 0) {
        CHECK_MSG(0, "no berthd binary beside the tests (%s); set BERTHD", bin);
        return;
    }
    if (start(&r, bin, NULL) < 0) {
        CHECK_MSG(0, "cannot start %s: %s", bin, strerror(errno));
        finish(&r);
        return;
    }

    /* READY=1 comes once it listens: it answers at once. */
    CHECK(wait_notify(&r, "READY=1", berth_now_ms() + 20000) == 0);
    CHECK_MSG(r.address[0] != '\0', "server.listening logged before READY=1");
    CHECK(healthz(r.address) == 200);

    /* Healthy: a heartbeat every half period. */
    CHECK(wait_notify(&r, "WATCHDOG=1", berth_now_ms() + 5000) == 0);

    /* Every connection slot taken by a half-sent request: its own probe
     * cannot get in, but a full server is a busy one, not a hung one, so
     * the heartbeat goes on (restarting it would only make it unreachable). */
    for (int i = 0; i < MAX_CONNECTIONS; i++) {
        hogs[i] = dial(r.address);
        CHECK(hogs[i] >= 0);
        if (hogs[i] >= 0)
            CHECK(write(hogs[i], "GET /healthz HTTP/1.1\r\n", 23) == 23);
    }
    wait_notify(&r, NULL, berth_now_ms() + WATCHDOG_USEC / 1000);
    before = r.watchdogs;
    quiet_from = berth_now_ms();
    wait_notify(&r, NULL, quiet_from + 2 * WATCHDOG_USEC / 1000);
    CHECK_MSG(r.watchdogs > before, "no WATCHDOG=1 in %lld ms while every slot was taken",
              (long long)(berth_now_ms() - quiet_from));

    /* The slots free again: the heartbeat is back. */
    for (int i = 0; i < MAX_CONNECTIONS; i++)
        if (hogs[i] >= 0)
            close(hogs[i]);
    CHECK(wait_notify(&r, "WATCHDOG=1", berth_now_ms() + 5000) == 0);

    /* SIGTERM: STOPPING=1, then a clean exit. */
    CHECK(kill(r.pid, SIGTERM) == 0);
    CHECK(wait_notify(&r, "STOPPING=1", berth_now_ms() + 10000) == 0);
    status = reap(&r, berth_now_ms() + 10000);
    CHECK_MSG(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0, "berthd exit status %d",
              status);
    finish(&r);
}

/* A fresh WATCHDOG=1 within two periods (one drained first). */
static int beats_on(struct run *r)
{
    wait_notify(r, NULL, berth_now_ms() + 20);
    return wait_notify(r, "WATCHDOG=1", berth_now_ms() + 2 * WATCHDOG_USEC / 1000) == 0;
}

/* A self-signed certificate and key in dir (cert.pem, key.pem), which also
 * serves as the client CA: the daemon then asks every client for a
 * certificate, which a probe over its listener would not have. */
static int make_cert(const char *dir)
{
    char cmd[1024];

    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
             "-keyout '%s/key.pem' -out '%s/cert.pem' -days 1 -subj /CN=localhost "
             "-addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1",
             dir, dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* With tls, behind TLS with client certificates; either way with one
 * connection per address, which a client holds. */
static void test_watchdog_needs_no_connection(int tls)
{
    static struct run r;
    char bin[PATH_MAX + 16], certdir[64], cert[128], key[128];
    const char *extra[12];
    const char *tmp = getenv("TMPDIR");
    int hog, status;

    if (berthd_path(bin, sizeof(bin)) < 0) {
        CHECK_MSG(0, "no berthd binary beside the tests (%s); set BERTHD", bin);
        return;
    }
    snprintf(certdir, sizeof(certdir), "%s/berth-wdtls-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    CHECK(mkdtemp(certdir) != NULL);
    snprintf(cert, sizeof(cert), "%s/cert.pem", certdir);
    snprintf(key, sizeof(key), "%s/key.pem", certdir);
    CHECK_MSG(make_cert(certdir) == 0, "openssl could not make a certificate");
    extra[0] = "--max-connections-per-ip";
    extra[1] = "1";
    extra[2] = tls ? "--tls-cert" : NULL;
    extra[3] = cert;
    extra[4] = "--tls-key";
    extra[5] = key;
    extra[6] = "--tls-client-ca";
    extra[7] = cert;
    extra[8] = NULL;
    if (start(&r, bin, extra) < 0) {
        CHECK_MSG(0, "cannot start %s: %s", bin, strerror(errno));
        finish(&r);
        goto out;
    }
    CHECK(wait_notify(&r, "READY=1", berth_now_ms() + 20000) == 0);
    CHECK_MSG(r.address[0] != '\0', "server.listening logged before READY=1");
    /* Plain HTTP on the TLS listener gets nowhere, as a plain probe would. */
    CHECK(healthz(r.address) == (tls ? -1 : 200));
    CHECK_MSG(beats_on(&r), "no WATCHDOG=1 (tls %d)", tls);

    /* This address's only connection taken: the heartbeat needs none. */
    hog = dial(r.address);
    CHECK(hog >= 0);
    CHECK_MSG(beats_on(&r), "no WATCHDOG=1 while the per-address limit was reached (tls %d)", tls);
    CHECK_MSG(strstr(r.log, "watchdog.unhealthy") == NULL, "an unhealthy beat:\n%s", r.log);
    if (hog >= 0)
        close(hog);

    CHECK(kill(r.pid, SIGTERM) == 0);
    CHECK(wait_notify(&r, "STOPPING=1", berth_now_ms() + 10000) == 0);
    status = reap(&r, berth_now_ms() + 10000);
    CHECK_MSG(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0, "berthd exit status %d",
              status);
    finish(&r);
out:
    unlink(cert);
    unlink(key);
    rmdir(certdir);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    test_notify();
    test_watchdog_needs_no_connection(0);
    test_watchdog_needs_no_connection(1);
    return test_summary("test_notify");
}
