/* Configuration: defaults < config file < environment < flags, both flag
 * forms, the file's syntax and its errors naming file and line, errors
 * naming the option, the informational flags, re-reading and comparing
 * (SIGHUP), and docs/configuration.md kept equal to --config-markdown so the
 * docs cannot drift. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "berth/build_info.h"
#include "berth/config.h"
#include "testlib.h"

#define MAX_ARGS 16

/* Every variable the table declares; unset before each test so the
 * caller's environment cannot change the outcome. */
static const char *const all_env[] = {
    "BERTH_LISTEN",
    "BERTH_MAX_BODY_BYTES",
    "BERTH_LOG_LEVEL",
    "BERTH_LOG_FORMAT",
    "BERTH_LOG_TARGET",
    "BERTH_MAX_CONNECTIONS",
    "BERTH_IDLE_TIMEOUT",
    "BERTH_SHUTDOWN_GRACE",
    "BERTH_BACKEND",
    "BERTH_DOCKER_SOCKET",
    "BERTH_PUBLISH_ADDRESS",
    "BERTH_ADVERTISE_HOST",
    "BERTH_STOP_TIMEOUT",
    "BERTH_PIDS_LIMIT",
    "BERTH_GATEWAY_PORT",
    "BERTH_DEPLOYMENT_PORT",
    "BERTH_METRICS_INTERVAL",
    "BERTH_READY_WAIT_MS",
    "BERTH_READ_TIMEOUT",
    "BERTH_MAX_CONNECTIONS_PER_IP",
    "BERTH_CONNECTION_MEMORY",
    "BERTH_AUTH_TOKEN_FILE",
    "BERTH_METRICS_AUTH",
    "BERTH_TLS_CERT",
    "BERTH_TLS_KEY",
    "BERTH_TLS_CLIENT_CA",
    "BERTH_TLS_ALLOWED_IDS",
    "BERTH_SOCKET_MODE",
    "BERTH_SOCKET_GROUP",
    "BERTH_INSECURE_LISTEN",
    "BERTH_CAP_DROP",
    "BERTH_LOG_MAX_SIZE",
    "BERTH_LOG_MAX_FILES",
    "BERTH_DEFAULT_MEMORY_MIB",
    "BERTH_HOST_PORT_RANGE",
    "BERTH_INSTANCE_ID",
    "BERTH_MAX_VMS",
    "BERTH_MAX_VMS_PER_CUSTOMER",
    "BERTH_MAX_REPLICAS_TOTAL",
    "BERTH_ALLOWED_REGISTRIES",
    "BERTH_MAX_LOG_BYTES",
    "BERTH_REGISTRY_AUTH_FILE",
    "BERTH_PULL_PROGRESS_TIMEOUT",
    "BERTH_PULL_TIMEOUT",
    "BERTH_HTTP_THREADS",
    "BERTH_WORKERS",
    "BERTH_STREAM_QUEUE_BYTES",
    "BERTH_UPDATE_PARALLELISM",
    "BERTH_UPDATE_HEALTH_TIMEOUT",
    "BERTH_UPDATE_MIN_READY_MS",
    "BERTH_UPDATE_DRAIN_MS",
    "BERTH_CONFIG",
    "BERTH_METRICS_CGROUP_ROOT",
    "BERTH_METRICS_PROC_ROOT",
    "BERTH_SWARM_PUBLISH_MODE",
    "BERTH_REGION",
    "BERTH_VAULT_URL",
    "BERTH_VAULT_TOKEN_FILE",
    "BERTH_VAULT_CA_FILE",
    "BERTH_VAULT_CLIENT_CERT",
    "BERTH_VAULT_CLIENT_KEY",
    "BERTH_VAULT_TIMEOUT_MS",
};

/* One config_load run: argv from a NULL-terminated list, output captured. */
struct run {
    struct berth_config cfg;
    enum config_action action;
    struct berth_err err;
    int rc;
    char *out;
    size_t out_len;
};

static void clear_env(void);
static void run_load(struct run *r, const char *const *args);
static void run_release(struct run *r);
static char *read_file(const char *path, size_t *len);
static char *source_path(const char *rel);

static void test_defaults(void);
static void test_env_overrides_defaults(void);
static void test_flags_override_env(void);
static void test_flag_forms(void);
static void test_bad_values(void);
static void test_info_flags(void);
static void test_check_config(void);
static void test_docs_match_markdown(void);
static void test_validation(void);
static void test_new_options(void);
static char *write_temp(const char *text);
static void test_config_file(void);
static void test_config_file_errors(void);
static void test_reread_and_changes(void);

static void clear_env(void)
{
    for (size_t i = 0; i < sizeof(all_env) / sizeof(all_env[0]); i++)
        unsetenv(all_env[i]);
}

static void run_load(struct run *r, const char *const *args)
{
    char *argv[MAX_ARGS + 2];
    int argc = 0;
    FILE *out;

    memset(r, 0, sizeof(*r));
    argv[argc++] = "berthd";
    for (size_t i = 0; args && args[i] && argc < MAX_ARGS + 1; i++)
        argv[argc++] = (char *)args[i];
    argv[argc] = NULL;
    berth_err_clear(&r->err);
    r->action = (enum config_action) - 1;
    out = open_memstream(&r->out, &r->out_len);
    if (out == NULL) {
        CHECK(!"open_memstream");
        r->rc = -2;
        return;
    }
    r->rc = config_load(&r->cfg, argc, argv, out, &r->action, &r->err);
    fclose(out);
}

static void run_release(struct run *r)
{
    config_release(&r->cfg);
    free(r->out);
    r->out = NULL;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *data = NULL;
    size_t cap = 0;
    FILE *mem;

    *len = 0;
    if (f == NULL)
        return NULL;
    mem = open_memstream(&data, &cap);
    if (mem != NULL) {
        char chunk[4096];
        size_t got;
        while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0)
            fwrite(chunk, 1, got, mem);
        fclose(mem);
        *len = cap;
    }
    fclose(f);
    return data;
}

/* A path in the source tree, from this file's own location
 * (tests/unit/test_config.c -> ../../<rel>). NULL when __FILE__ is not
 * absolute (the build passes sources by absolute path). */
static char *source_path(const char *rel)
{
    const char *self = __FILE__;
    const char *tail = "tests/unit/test_config.c";
    size_t n = strlen(self), tn = strlen(tail);
    char *path;

    if (self[0] != '/' || n < tn || strcmp(self + n - tn, tail) != 0)
        return NULL;
    path = malloc(n - tn + strlen(rel) + 1);
    if (path == NULL)
        return NULL;
    memcpy(path, self, n - tn);
    memcpy(path + n - tn, rel, strlen(rel) + 1);
    return path;
}

static void test_defaults(void)
{
    struct run r;

    clear_env();
    run_load(&r, NULL);
    CHECK(r.rc == 0);
    CHECK(r.action == CONFIG_RUN);
    CHECK(r.err.code == BERTH_OK);
    CHECK(r.out_len == 0);
    CHECK_STR(r.cfg.listen, "127.0.0.1:8080");
    CHECK(r.cfg.max_body_bytes == 4194304);
    CHECK(r.cfg.log_level == LOG_LEVEL_INFO);
    CHECK(r.cfg.max_connections == 10000);
    CHECK(r.cfg.connection_memory == 32768);
    CHECK(r.cfg.idle_timeout_s == 60);
    CHECK(r.cfg.shutdown_grace_s == 30);
    CHECK_STR(r.cfg.backend, "docker");
    CHECK_STR(r.cfg.swarm_publish_mode, "host");
    CHECK_STR(r.cfg.docker_socket, "/var/run/docker.sock");
    CHECK_STR(r.cfg.publish_address, "127.0.0.1");
    CHECK_STR(r.cfg.advertise_host, "");
    CHECK(r.cfg.stop_timeout_s == 30);
    CHECK(r.cfg.pids_limit == 1024);
    CHECK(r.cfg.gateway_port == 8040);
    CHECK(r.cfg.deployment_port == 8080);
    CHECK(r.cfg.metrics_interval_s == 5);
    CHECK(r.cfg.ready_wait_ms == 10000);
    run_release(&r);
    /* Releasing twice is harmless: the strings were nulled. */
    config_release(&r.cfg);
    CHECK(r.cfg.listen == NULL && r.cfg.backend == NULL);
}

static void test_env_overrides_defaults(void)
{
    struct run r;

    clear_env();
    setenv("BERTH_LISTEN", "0.0.0.0:9000", 1);
    setenv("BERTH_LOG_LEVEL", "debug", 1);
    setenv("BERTH_BACKEND", "memory", 1);
    setenv("BERTH_STOP_TIMEOUT", "7", 1);
    setenv("BERTH_READY_WAIT_MS", "0", 1);
    setenv("BERTH_ADVERTISE_HOST", "host.example", 1);
    setenv("BERTH_INSECURE_LISTEN", "yes", 1);
    run_load(&r, NULL);
    CHECK(r.rc == 0);
    CHECK(r.cfg.insecure_listen == 1);
    CHECK(r.action == CONFIG_RUN);
    CHECK_STR(r.cfg.listen, "0.0.0.0:9000");
    CHECK(r.cfg.log_level == LOG_LEVEL_DEBUG);
    CHECK_STR(r.cfg.backend, "memory");
    CHECK(r.cfg.stop_timeout_s == 7);
    CHECK(r.cfg.ready_wait_ms == 0);
    CHECK_STR(r.cfg.advertise_host, "host.example");
    /* Untouched options keep their defaults. */
    CHECK(r.cfg.max_connections == 10000);
    CHECK_STR(r.cfg.docker_socket, "/var/run/docker.sock");
    run_release(&r);
    clear_env();
}

static void test_flags_override_env(void)
{
    static const char *const args[] = {"--listen",    "[::1]:7000", "--stop-timeout=3",
                                       "--log-level", "warn",       NULL};
    struct run r;

    clear_env();
    setenv("BERTH_LISTEN", "127.0.0.2:9000", 1);
    setenv("BERTH_STOP_TIMEOUT", "7", 1);
    setenv("BERTH_LOG_LEVEL", "debug", 1);
    setenv("BERTH_PIDS_LIMIT", "100", 1);
    run_load(&r, args);
    CHECK(r.rc == 0);
    CHECK_STR(r.cfg.listen, "[::1]:7000");
    CHECK(r.cfg.stop_timeout_s == 3);
    CHECK(r.cfg.log_level == LOG_LEVEL_WARN);
    CHECK(r.cfg.pids_limit == 100); /* from the environment, no flag */
    run_release(&r);

    /* The same flag twice: the last one wins. */
    {
        static const char *const twice[] = {"--stop-timeout", "1", "--stop-timeout=2", NULL};
        run_load(&r, twice);
        CHECK(r.rc == 0);
        CHECK(r.cfg.stop_timeout_s == 2);
        run_release(&r);
    }
    /* A bad environment value fails even when a flag would replace it:
     * nothing is silently ignored. */
    {
        static const char *const fix[] = {"--stop-timeout", "1", NULL};
        setenv("BERTH_STOP_TIMEOUT", "soon", 1);
        run_load(&r, fix);
        CHECK(r.rc == -1);
        CHECK(r.err.code == BERTH_INVALID_ARGUMENT);
        CHECK(strstr(r.err.msg, "stop-timeout") != NULL);
        CHECK(strstr(r.err.msg, "BERTH_STOP_TIMEOUT") != NULL);
        run_release(&r);
    }
    clear_env();
}

static void test_flag_forms(void)
{
    static const struct {
        const char *desc;
        const char *args[5];
        int64_t want_stop;
        const char *want_socket;
    } rows[] = {
        {"--flag=value",
         {"--stop-timeout=12", "--docker-socket=/run/d.sock", NULL},
         12,
         "/run/d.sock"},
        {"--flag value",
         {"--stop-timeout", "12", "--docker-socket", "/run/d.sock", NULL},
         12,
         "/run/d.sock"},
        {"mixed forms", {"--stop-timeout", "0", "--docker-socket=/x", NULL}, 0, "/x"},
        {"value holding '='", {"--docker-socket=/a=b", NULL}, 30, "/a=b"},
        {"empty string value", {"--docker-socket=", NULL}, 30, ""},
        {"upper bound is inclusive", {"--stop-timeout=3600", NULL}, 3600, "/var/run/docker.sock"},
        {"value that looks like a flag", {"--docker-socket", "--weird", NULL}, 30, "--weird"},
    };

    clear_env();
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct run r;
        run_load(&r, rows[i].args);
        CHECK_MSG(r.rc == 0, "%s: %s", rows[i].desc, r.err.msg);
        CHECK_MSG(r.action == CONFIG_RUN, "%s", rows[i].desc);
        CHECK_MSG(r.cfg.stop_timeout_s == rows[i].want_stop, "%s", rows[i].desc);
        CHECK_MSG(r.cfg.docker_socket && strcmp(r.cfg.docker_socket, rows[i].want_socket) == 0,
                  "%s: socket '%s'", rows[i].desc, r.cfg.docker_socket ? r.cfg.docker_socket : "");
        run_release(&r);
    }
}

static void test_bad_values(void)
{
    static const struct {
        const char *desc;
        const char *env_name, *env_value; /* optional */
        const char *args[4];
        const char *must_name; /* the option as the message must name it */
        const char *also;      /* another piece the message must hold, or NULL */
    } rows[] = {
        {"not an integer",
         NULL,
         NULL,
         {"--max-connections=lots", NULL},
         "max-connections",
         "'lots'"},
        {"trailing garbage", NULL, NULL, {"--idle-timeout", "12s", NULL}, "idle-timeout", "'12s'"},
        {"empty integer", NULL, NULL, {"--stop-timeout=", NULL}, "stop-timeout", NULL},
        {"below minimum",
         NULL,
         NULL,
         {"--max-connections=0", NULL},
         "max-connections",
         "1 to 100000"},
        {"above maximum", NULL, NULL, {"--gateway-port=65536", NULL}, "gateway-port", "1 to 65535"},
        {"connection buffer too small for any request",
         NULL,
         NULL,
         {"--connection-memory=1024", NULL},
         "connection-memory",
         "4096 to 1048576"},
        {"negative", NULL, NULL, {"--stop-timeout=-1", NULL}, "stop-timeout", "0 to 3600"},
        {"overflows int64",
         NULL,
         NULL,
         {"--max-body-bytes=99999999999999999999", NULL},
         "max-body-bytes",
         NULL},
        {"bad log level", NULL, NULL, {"--log-level=loud", NULL}, "log-level", "'loud'"},
        {"empty publish address",
         NULL,
         NULL,
         {"--publish-address=", NULL},
         "publish-address",
         "empty"},
        {"empty listen address from the environment",
         "BERTH_LISTEN",
         "",
         {NULL},
         "listen",
         "empty"},
        {"bad backend", NULL, NULL, {"--backend=podman", NULL}, "backend", "'podman'"},
        {"bad swarm publish mode",
         NULL,
         NULL,
         {"--swarm-publish-mode=mesh", NULL},
         "swarm-publish-mode",
         "'mesh'"},
        {"unknown option", NULL, NULL, {"--no-such-thing=1", NULL}, "--no-such-thing", NULL},
        {"unknown option, single dash", NULL, NULL, {"-x", NULL}, "-x", NULL},
        {"missing value at the end", NULL, NULL, {"--listen", NULL}, "--listen", "needs a value"},
        {"missing value after good flags",
         NULL,
         NULL,
         {"--stop-timeout", "5", "--pids-limit", NULL},
         "--pids-limit",
         "needs a value"},
        {"bad integer from the environment",
         "BERTH_PIDS_LIMIT",
         "many",
         {NULL},
         "pids-limit",
         "BERTH_PIDS_LIMIT"},
        {"out of bounds from the environment",
         "BERTH_PIDS_LIMIT",
         "15",
         {NULL},
         "pids-limit",
         "16 to 4194304"},
        {"bad level from the environment",
         "BERTH_LOG_LEVEL",
         "verbose",
         {NULL},
         "log-level",
         "BERTH_LOG_LEVEL"},
        {"bad backend from the environment", "BERTH_BACKEND", "lxc", {NULL}, "backend", "'lxc'"},
    };

    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct run r;
        clear_env();
        if (rows[i].env_name)
            setenv(rows[i].env_name, rows[i].env_value, 1);
        run_load(&r, rows[i].args);
        CHECK_MSG(r.rc == -1, "%s: accepted", rows[i].desc);
        CHECK_MSG(r.err.code == BERTH_INVALID_ARGUMENT, "%s: code %d", rows[i].desc,
                  (int)r.err.code);
        CHECK_MSG(strstr(r.err.msg, rows[i].must_name) != NULL, "%s: '%s' lacks '%s'", rows[i].desc,
                  r.err.msg, rows[i].must_name);
        if (rows[i].also)
            CHECK_MSG(strstr(r.err.msg, rows[i].also) != NULL, "%s: '%s' lacks '%s'", rows[i].desc,
                      r.err.msg, rows[i].also);
        /* Failure releases what was filled in. */
        CHECK_MSG(r.cfg.listen == NULL && r.cfg.backend == NULL, "%s: strings left", rows[i].desc);
        CHECK_MSG(r.out_len == 0, "%s: printed something", rows[i].desc);
        run_release(&r);
    }
    clear_env();
}

static void test_info_flags(void)
{
    static const struct {
        const char *desc;
        const char *args[3];
        const char *starts; /* the output begins with this */
        const char *holds;  /* and holds this */
    } rows[] = {
        {"--help", {"--help", NULL}, "usage: berthd", "--stop-timeout"},
        {"-h", {"-h", NULL}, "usage: berthd", "BERTH_READY_WAIT_MS"},
        {"--help lists --check-config", {"--help", NULL}, "usage: berthd", "--check-config"},
        {"--help wins over later bad flags",
         {"--help", "--bogus", NULL},
         "usage: berthd",
         "--version"},
        {"--version", {"--version", NULL}, "berthd " BERTH_VERSION " (commit ", NULL},
        {"--config-markdown",
         {"--config-markdown", NULL},
         "# Configuration\n",
         "| `--listen` | `BERTH_LISTEN` | `127.0.0.1:8080` |"},
    };

    clear_env();
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct run r;
        run_load(&r, rows[i].args);
        CHECK_MSG(r.rc == 0, "%s: %s", rows[i].desc, r.err.msg);
        CHECK_MSG(r.action == CONFIG_EXIT_OK, "%s", rows[i].desc);
        CHECK_MSG(r.out && strncmp(r.out, rows[i].starts, strlen(rows[i].starts)) == 0,
                  "%s: output '%.60s'", rows[i].desc, r.out ? r.out : "");
        if (rows[i].holds)
            CHECK_MSG(r.out && strstr(r.out, rows[i].holds) != NULL, "%s: lacks '%s'", rows[i].desc,
                      rows[i].holds);
        run_release(&r);
    }
    /* --version is one line. */
    {
        static const char *const v[] = {"--version", NULL};
        struct run r;
        run_load(&r, v);
        CHECK(r.out && strcmp(r.out, "berthd " BERTH_VERSION " (commit " BERTH_COMMIT
                                     ", built " BERTH_BUILD_DATE ")\n") == 0);
        run_release(&r);
    }
    /* tmpfile works as well as a memstream. */
    {
        static const char *const h[] = {"--help", NULL};
        struct berth_config cfg;
        enum config_action action = CONFIG_RUN;
        struct berth_err err;
        char *argv[] = {"berthd", (char *)h[0], NULL};
        FILE *f = tmpfile();
        long size;
        CHECK(f != NULL);
        if (f != NULL) {
            berth_err_clear(&err);
            CHECK(config_load(&cfg, 2, argv, f, &action, &err) == 0);
            CHECK(action == CONFIG_EXIT_OK);
            size = ftell(f);
            CHECK(size > 100);
            config_release(&cfg);
            fclose(f);
        }
    }
}

static void test_check_config(void)
{
    static const char *const args[] = {"--check-config", "--listen", "0.0.0.0:1",
                                       "--insecure-listen", NULL};
    struct run r;

    clear_env();
    setenv("BERTH_METRICS_INTERVAL", "9", 1);
    run_load(&r, args);
    CHECK(r.rc == 0);
    CHECK(r.action == CONFIG_EXIT_OK);
    /* The effective values: flags after --check-config still count, and the
     * environment shows through. */
    CHECK(r.out && strncmp(r.out, "listen=0.0.0.0:1\n", 17) == 0);
    CHECK(r.out && strstr(r.out, "\nmetrics-interval=9\n") != NULL);
    CHECK(r.out && strstr(r.out, "\nlog-level=info\n") != NULL);
    CHECK(r.out && strstr(r.out, "\nadvertise-host=\n") != NULL);
    CHECK(r.out && strstr(r.out, "\nready-wait-ms=10000\n") != NULL);
    /* One line per option, and the same text config_print writes. */
    {
        char *direct = NULL;
        size_t len = 0, lines = 0;
        FILE *f = open_memstream(&direct, &len);
        CHECK(f != NULL);
        if (f != NULL) {
            config_print(&r.cfg, f);
            fclose(f);
            CHECK(r.out && direct && strcmp(r.out, direct) == 0);
            free(direct);
        }
        for (const char *p = r.out; p && *p; p++)
            lines += *p == '\n';
        CHECK(lines == sizeof(all_env) / sizeof(all_env[0]));
    }
    run_release(&r);

    /* --check-config still validates: a bad value is an error, not output. */
    {
        static const char *const bad[] = {"--check-config", "--idle-timeout=0", NULL};
        run_load(&r, bad);
        CHECK(r.rc == -1);
        CHECK(r.err.code == BERTH_INVALID_ARGUMENT);
        CHECK(strstr(r.err.msg, "idle-timeout") != NULL);
        CHECK(r.out_len == 0);
        run_release(&r);
    }
    clear_env();
}

/* A temporary file holding text; the caller unlinks and frees the path. */
static char *write_temp(const char *text)
{
    char *path = strdup("/tmp/berth-test-config-XXXXXX");
    int fd;

    if (path == NULL)
        return NULL;
    fd = mkstemp(path);
    if (fd < 0) {
        free(path);
        return NULL;
    }
    if (write(fd, text, strlen(text)) != (ssize_t)strlen(text)) {
        close(fd);
        unlink(path);
        free(path);
        return NULL;
    }
    close(fd);
    return path;
}

/* The checks that span options or look at the system: each row is one
 * command line, whether it loads, and a word the error must hold. */
static void test_validation(void)
{
    char *tokens = write_temp("# tokens\nci:abc123\n\n");
    char *empty = write_temp("# nothing here\n");
    struct {
        const char *what;
        const char *args[6];
        int ok;
        const char *needle;
    } rows[] = {
        {"publish address not an IP", {"--publish-address", "not-an-ip"}, 0, "publish-address"},
        {"publish address v6", {"--publish-address", "::1"}, 1, NULL},
        {"listen port over 65535", {"--listen", "127.0.0.1:99999"}, 0, "65535"},
        {"listen port of 20 digits", {"--listen", "127.0.0.1:99999999999999999999"}, 0, "65535"},
        {"listen port not a number", {"--listen", "127.0.0.1:http"}, 0, "port"},
        {"listen without a port", {"--listen", "127.0.0.1"}, 0, "listen"},
        {"listen v6 without brackets", {"--listen", "::1:80"}, 0, "brackets"},
        {"listen port 65535", {"--listen", "127.0.0.1:65535"}, 1, NULL},
        {"listen v6 loopback", {"--listen", "[::1]:0"}, 1, NULL},
        {"listen unix", {"--listen", "unix:/tmp/x.sock"}, 1, NULL},
        {"listen unix without a path", {"--listen", "unix:"}, 0, "unix"},
        {"non-loopback without auth", {"--listen", "0.0.0.0:0"}, 0, "insecure-listen"},
        {"non-loopback v6 without auth", {"--listen", "[::]:0"}, 0, "insecure-listen"},
        {"non-loopback allowed", {"--listen", "0.0.0.0:0", "--insecure-listen"}, 1, NULL},
        {"non-loopback refused again",
         {"--listen", "0.0.0.0:0", "--insecure-listen=false"},
         0,
         "loopback"},
        {"tls cert without key", {"--tls-cert", "/etc/hostname"}, 0, "tls-key"},
        {"client ca without cert", {"--tls-client-ca", "/etc/hostname"}, 0, "tls-cert"},
        {"allowed ids without ca", {"--tls-allowed-ids", "x"}, 0, "tls-client-ca"},
        {"tls file missing",
         {"--tls-cert", "/nonexistent/c.pem", "--tls-key", "/nonexistent/k.pem"},
         0,
         "tls-cert"},
        {"socket mode octal", {"--socket-mode", "0600"}, 1, NULL},
        {"socket mode not octal", {"--socket-mode", "0999"}, 0, "socket-mode"},
        {"socket mode too wide", {"--socket-mode", "01777"}, 0, "socket-mode"},
        {"bool not a bool", {"--metrics-auth=maybe"}, 0, "metrics-auth"},
        {"read timeout 0", {"--read-timeout", "0"}, 0, "read-timeout"},
        {"per-ip limit 0 means none", {"--max-connections-per-ip", "0"}, 1, NULL},
        {"token file missing", {"--auth-token-file", "/nonexistent/tokens"}, 0, "auth-token-file"},
        {"vault url http", {"--vault-url", "http://127.0.0.1:8200"}, 1, NULL},
        {"vault url https with a path", {"--vault-url", "https://vault.example/api/"}, 1, NULL},
        {"vault url not http", {"--vault-url", "ftp://vault"}, 0, "vault-url"},
        {"vault url without a host", {"--vault-url", "https://"}, 0, "vault-url"},
        {"vault url with a query", {"--vault-url", "http://v/?a=b"}, 0, "vault-url"},
        {"vault url with a space", {"--vault-url", "http://v/a b"}, 0, "vault-url"},
        {"vault url with a password", {"--vault-url", "https://u:p@vault/"}, 0, "vault-token-file"},
        {"vault url with an @ in its path", {"--vault-url", "https://vault/a@b"}, 1, NULL},
        {"vault token without the vault", {"--vault-token-file", "/etc/hostname"}, 0, "vault-url"},
        {"vault token file missing",
         {"--vault-url", "http://v", "--vault-token-file", "/nonexistent/t"},
         0,
         "vault-token-file"},
        {"vault client cert without key",
         {"--vault-url", "https://v", "--vault-client-cert", "/etc/hostname"},
         0,
         "vault-client-key"},
        {"vault timeout too small", {"--vault-timeout-ms", "10"}, 0, "vault-timeout-ms"},
    };
    struct run r;

    clear_env();
    CHECK(tokens != NULL && empty != NULL);
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        run_load(&r, rows[i].args);
        CHECK_MSG((r.rc == 0) == rows[i].ok, "%s: rc %d (%s)", rows[i].what, r.rc, r.err.msg);
        if (!rows[i].ok && rows[i].needle != NULL)
            CHECK_MSG(strstr(r.err.msg, rows[i].needle) != NULL, "%s: '%s' lacks '%s'",
                      rows[i].what, r.err.msg, rows[i].needle);
        run_release(&r);
    }
    /* A token file makes a non-loopback listener safe; one without a
     * token is an error, as is one with a bad line. */
    if (tokens != NULL && empty != NULL) {
        const char *with_tokens[] = {"--listen", "0.0.0.0:0", "--auth-token-file", tokens, NULL};
        const char *no_tokens[] = {"--auth-token-file", empty, NULL};

        run_load(&r, with_tokens);
        CHECK_MSG(r.rc == 0, "token file: %s", r.err.msg);
        run_release(&r);
        run_load(&r, no_tokens);
        CHECK(r.rc == -1 && strstr(r.err.msg, "no tokens") != NULL);
        run_release(&r);
        unlink(tokens);
        unlink(empty);
    }
    free(tokens);
    free(empty);
    clear_env();
}

/* The new option types: defaults, bare boolean flags, octal modes. */
static void test_new_options(void)
{
    static const char *const args[] = {"--metrics-auth", "--socket-mode=0600", "--read-timeout",
                                       "3", NULL};
    struct run r;

    clear_env();
    run_load(&r, NULL);
    CHECK(r.rc == 0);
    CHECK(r.cfg.read_timeout_s == 10);
    CHECK(r.cfg.max_connections_per_ip == 64);
    CHECK(r.cfg.socket_mode == 0660);
    CHECK(r.cfg.metrics_auth == 0);
    CHECK(r.cfg.insecure_listen == 0);
    CHECK_STR(r.cfg.auth_token_file, "");
    run_release(&r);
    run_load(&r, args);
    CHECK(r.rc == 0);
    CHECK(r.cfg.metrics_auth == 1);
    CHECK(r.cfg.socket_mode == 0600);
    CHECK(r.cfg.read_timeout_s == 3);
    run_release(&r);
    clear_env();
}

/* docs/configuration.md is the output of --config-markdown, byte for byte. */
static void test_docs_match_markdown(void)
{
    static const char *const args[] = {"--config-markdown", NULL};
    char *path = source_path("docs/configuration.md");
    char *doc = NULL;
    size_t doc_len = 0;
    struct run r;

    CHECK_MSG(path != NULL, "cannot find the source tree from %s", __FILE__);
    if (path == NULL)
        return;
    doc = read_file(path, &doc_len);
    CHECK_MSG(doc != NULL, "cannot read %s", path);
    clear_env();
    run_load(&r, args);
    CHECK(r.rc == 0 && r.action == CONFIG_EXIT_OK);
    if (doc != NULL && r.out != NULL) {
        size_t at = 0;
        while (at < doc_len && at < r.out_len && doc[at] == r.out[at])
            at++;
        CHECK_MSG(doc_len == r.out_len && at == doc_len,
                  "%s differs from `berthd --config-markdown` at byte %zu (doc %zu bytes, "
                  "generated %zu); regenerate it",
                  path, at, doc_len, r.out_len);
    }
    run_release(&r);
    free(doc);
    free(path);
}

/* The file: comments, blank lines, quotes, spacing; defaults < file <
 * environment < flags; BERTH_CONFIG names it when no flag does. */
static void test_config_file(void)
{
    char *file = write_temp("# berthd settings\n"
                            "\n"
                            "   # an indented comment\n"
                            "stop-timeout = 11\n"
                            "pids-limit=2000\n"
                            "log-level = debug   # a comment after a value\n"
                            "docker-socket = \"/run/with space#hash.sock\"  # quoted\n"
                            "advertise-host = 'literal \\\\ \"kept\"'\n"
                            "cap-drop =\n"
                            "tls-allowed-ids = \"\"\n"
                            "allowed-registries = reg#1.example\r\n"
                            "\tmetrics-auth\t=\tyes\n"
                            "instance-id = \"a \\\"b\\\" \\\\c\"\n"
                            "max-vms = 7");
    struct run r;

    CHECK(file != NULL);
    if (file == NULL)
        return;
    clear_env();
    {
        const char *args[] = {"--config", file, NULL};
        run_load(&r, args);
        CHECK_MSG(r.rc == 0, "%s", r.err.msg);
        CHECK(r.cfg.stop_timeout_s == 11);
        CHECK(r.cfg.pids_limit == 2000);
        CHECK(r.cfg.log_level == LOG_LEVEL_DEBUG);
        CHECK_STR(r.cfg.docker_socket, "/run/with space#hash.sock");
        CHECK_STR(r.cfg.advertise_host, "literal \\\\ \"kept\"");
        CHECK_STR(r.cfg.cap_drop, "");
        CHECK_STR(r.cfg.tls_allowed_ids, "");
        CHECK_STR(r.cfg.allowed_registries, "reg#1.example");
        CHECK(r.cfg.metrics_auth == 1);
        CHECK_STR(r.cfg.instance_id, "a \"b\" \\c");
        CHECK(r.cfg.max_vms == 7);
        CHECK_STR(r.cfg.config_file, file);
        CHECK(r.cfg.max_connections == 10000); /* not in the file: the default */
        run_release(&r);
    }
    /* The environment wins over the file, a flag over both. */
    {
        char flag[300];
        const char *args[] = {flag, "--stop-timeout", "13", NULL};

        snprintf(flag, sizeof(flag), "--config=%s", file);
        setenv("BERTH_STOP_TIMEOUT", "12", 1);
        setenv("BERTH_PIDS_LIMIT", "3000", 1);
        run_load(&r, args);
        CHECK_MSG(r.rc == 0, "%s", r.err.msg);
        CHECK(r.cfg.stop_timeout_s == 13);
        CHECK(r.cfg.pids_limit == 3000);
        CHECK(r.cfg.log_level == LOG_LEVEL_DEBUG);
        run_release(&r);
        clear_env();
    }
    /* BERTH_CONFIG names the file; a --config flag names another (or none). */
    {
        const char *none[] = {"--config", "", NULL};

        setenv("BERTH_CONFIG", file, 1);
        run_load(&r, NULL);
        CHECK_MSG(r.rc == 0, "%s", r.err.msg);
        CHECK(r.cfg.stop_timeout_s == 11);
        run_release(&r);
        run_load(&r, none);
        CHECK_MSG(r.rc == 0, "%s", r.err.msg);
        CHECK(r.cfg.stop_timeout_s == 30);
        CHECK_STR(r.cfg.config_file, "");
        run_release(&r);
        clear_env();
    }
    /* --check-config shows what the file set. */
    {
        const char *args[] = {"--check-config", "--config", file, NULL};
        run_load(&r, args);
        CHECK(r.rc == 0 && r.action == CONFIG_EXIT_OK);
        CHECK(r.out && strstr(r.out, "\nstop-timeout=11\n") != NULL);
        CHECK(r.out && strstr(r.out, "\nconfig=") != NULL);
        run_release(&r);
    }
    unlink(file);
    free(file);
    clear_env();
}

/* Each bad file: rejected with invalid_argument naming the file's line (or
 * the file) and the problem; nothing of it is kept. */
static void test_config_file_errors(void)
{
    static const struct {
        const char *what;
        const char *text;
        const char *line; /* "line N" the message must name, or NULL */
        const char *needle;
    } rows[] = {
        {"unknown key", "stop-timeout = 1\nlisten-adress = 1.2.3.4:1\n", "line 2", "unknown key"},
        {"underscore spelling", "log_level = debug\n", "line 1", "'log-level'"},
        {"no equals sign", "\n\nlog-level debug\n", "line 3", "expected key = value"},
        {"a section header", "[berthd]\n", "line 1", "expected key = value"},
        {"empty key", "= x\n", "line 1", "expected key = value"},
        {"bad integer", "stop-timeout = soon\n", "line 1", "stop-timeout 'soon'"},
        {"out of bounds", "# c\npids-limit = 15\n", "line 2", "16 to 4194304"},
        {"bad bool", "metrics-auth = maybe\n", "line 1", "metrics-auth"},
        {"bad level", "log-level = loud\n", "line 1", "log-level 'loud'"},
        {"empty where not allowed", "listen =\n", "line 1", "must not be empty"},
        {"set twice", "max-vms = 1\nmax-vms = 2\n", "line 2", "already set on line 1"},
        {"quote not closed", "instance-id = \"abc\n", "line 1", "not closed"},
        {"text after the quote", "instance-id = \"abc\" def\n", "line 1", "after the closing"},
        {"unknown escape", "instance-id = \"a\\nb\"\n", "line 1", "backslash"},
        {"config in the file", "config = /etc/other.conf\n", "line 1", "cannot be set"},
        {"cross-option check", "tls-cert = /etc/hostname\n", NULL, "tls-key"},
    };
    struct run r;

    clear_env();
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        char *file = write_temp(rows[i].text);
        const char *args[] = {"--config", file, NULL};

        CHECK(file != NULL);
        if (file == NULL)
            continue;
        run_load(&r, args);
        CHECK_MSG(r.rc == -1, "%s: accepted", rows[i].what);
        CHECK_MSG(r.err.code == BERTH_INVALID_ARGUMENT, "%s: code %d", rows[i].what,
                  (int)r.err.code);
        if (rows[i].line != NULL)
            CHECK_MSG(strstr(r.err.msg, file) != NULL && strstr(r.err.msg, rows[i].line) != NULL,
                      "%s: '%s' lacks the file and %s", rows[i].what, r.err.msg, rows[i].line);
        CHECK_MSG(strstr(r.err.msg, rows[i].needle) != NULL, "%s: '%s' lacks '%s'", rows[i].what,
                  r.err.msg, rows[i].needle);
        CHECK_MSG(r.cfg.listen == NULL, "%s: strings left", rows[i].what);
        run_release(&r);
        unlink(file);
        free(file);
    }
    /* A file that cannot be read, by flag or by the environment. */
    {
        const char *args[] = {"--config", "/nonexistent/berthd.conf", NULL};
        run_load(&r, args);
        CHECK(r.rc == -1 && strstr(r.err.msg, "/nonexistent/berthd.conf") != NULL);
        run_release(&r);
        setenv("BERTH_CONFIG", "/nonexistent/env.conf", 1);
        run_load(&r, NULL);
        CHECK(r.rc == -1 && strstr(r.err.msg, "/nonexistent/env.conf") != NULL);
        run_release(&r);
        clear_env();
    }
    /* A bad environment value still fails when the file sets the option. */
    {
        char *file = write_temp("stop-timeout = 3\n");
        const char *args[] = {"--config", file, NULL};

        setenv("BERTH_STOP_TIMEOUT", "soon", 1);
        run_load(&r, args);
        CHECK(r.rc == -1 && strstr(r.err.msg, "BERTH_STOP_TIMEOUT") != NULL);
        run_release(&r);
        clear_env();
        if (file != NULL)
            unlink(file);
        free(file);
    }
}

struct changes {
    char names[512];
};

static void note_change(void *arg, const char *name)
{
    struct changes *c = arg;
    size_t n = strlen(c->names);

    snprintf(c->names + n, sizeof(c->names) - n, "%s%s", n ? "," : "", name);
}

/* config_reread sees an edited file; config_each_change names what
 * differs; config_copy and config_copy_option copy deeply. */
static void test_reread_and_changes(void)
{
    char *file = write_temp("log-level = info\nmax-vms = 5\n");
    const char *args[] = {"berthd", "--config", file, "--stop-timeout", "4", NULL};
    struct berth_config a, b, c;
    struct berth_err err;
    struct changes ch;
    FILE *f;

    clear_env();
    CHECK(file != NULL);
    if (file == NULL)
        return;
    berth_err_clear(&err);
    CHECK(config_reread(&a, 5, (char **)args, &err) == 0);
    CHECK(a.max_vms == 5 && a.stop_timeout_s == 4);
    f = fopen(file, "w");
    CHECK(f != NULL);
    if (f != NULL) {
        fputs("log-level = debug\nmax-vms = 6\nlisten = 127.0.0.1:9999\nstop-timeout = 9\n", f);
        fclose(f);
    }
    CHECK_MSG(config_reread(&b, 5, (char **)args, &err) == 0, "%s", err.msg);
    CHECK(b.log_level == LOG_LEVEL_DEBUG && b.max_vms == 6);
    CHECK(b.stop_timeout_s == 4); /* the flag still wins */
    memset(&ch, 0, sizeof(ch));
    config_each_change(&a, &b, note_change, &ch);
    CHECK_STR(ch.names, "listen,log-level,max-vms");
    memset(&ch, 0, sizeof(ch));
    config_each_change(&a, &a, note_change, &ch);
    CHECK_STR(ch.names, "");

    CHECK(config_copy(&c, &a, &err) == 0);
    CHECK(c.listen != a.listen && strcmp(c.listen, a.listen) == 0);
    memset(&ch, 0, sizeof(ch));
    config_each_change(&a, &c, note_change, &ch);
    CHECK_STR(ch.names, "");
    CHECK(config_copy_option(&c, &b, "listen", &err) == 0);
    CHECK(config_copy_option(&c, &b, "max-vms", &err) == 0);
    CHECK(config_copy_option(&c, &b, "log-level", &err) == 0);
    CHECK(config_copy_option(&c, &b, "no-such-option", &err) == -1);
    memset(&ch, 0, sizeof(ch));
    config_each_change(&b, &c, note_change, &ch);
    CHECK_STR(ch.names, "");
    config_release(&c);

    /* A broken file: -1 naming the line; nothing to release. */
    f = fopen(file, "w");
    if (f != NULL) {
        fputs("log-level = debug\nbogus = 1\n", f);
        fclose(f);
    }
    berth_err_clear(&err);
    CHECK(config_reread(&c, 5, (char **)args, &err) == -1);
    CHECK(strstr(err.msg, "line 2") != NULL && strstr(err.msg, "bogus") != NULL);
    config_release(&a);
    config_release(&b);
    unlink(file);
    free(file);
}

int main(void)
{
    test_defaults();
    test_env_overrides_defaults();
    test_flags_override_env();
    test_flag_forms();
    test_bad_values();
    test_info_flags();
    test_check_config();
    test_docs_match_markdown();
    test_validation();
    test_new_options();
    test_config_file();
    test_config_file_errors();
    test_reread_and_changes();
    clear_env();
    return test_summary("test_config");
}
