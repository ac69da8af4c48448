/* Options, declared once in opt_table[]: flags, BERTH_* variables, --help,
 * --check-config and the configuration docs all read this table. */
#include "berth/config.h"

#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

enum opt_type { OPT_STR, OPT_INT, OPT_LEVEL };

struct opt {
    const char *name; /* flag without "--" */
    const char *env;
    enum opt_type type;
    size_t offset;
    int64_t min, max; /* OPT_INT bounds; OPT_STR: min 1 = must not be empty */
    const char *def;
    const char *help;
};

#define OFF(f) offsetof(struct berth_config, f)

static const struct opt opt_table[] = {
    {"listen", "BERTH_LISTEN", OPT_STR, OFF(listen), 1, 0, "127.0.0.1:8080",
     "address the API listens on, HOST:PORT (port 0 picks a free port)"},
    {"max-body-bytes", "BERTH_MAX_BODY_BYTES", OPT_INT, OFF(max_body_bytes), 1, 1073741824,
     "4194304", "largest request body accepted, after inflating gzip"},
    {"log-level", "BERTH_LOG_LEVEL", OPT_LEVEL, OFF(log_level), 0, 0, "info",
     "error, warn, info or debug"},
    {"max-connections", "BERTH_MAX_CONNECTIONS", OPT_INT, OFF(max_connections), 1, 100000, "512",
     "concurrent client connections"},
    {"idle-timeout", "BERTH_IDLE_TIMEOUT", OPT_INT, OFF(idle_timeout_s), 1, 86400, "60",
     "seconds a client connection may stay idle"},
    {"shutdown-grace", "BERTH_SHUTDOWN_GRACE", OPT_INT, OFF(shutdown_grace_s), 0, 3600, "30",
     "seconds in-flight requests get to finish on SIGTERM"},
    {"backend", "BERTH_BACKEND", OPT_STR, OFF(backend), 0, 0, "docker",
     "where containers run: docker, or memory (an in-process fake for demos and tests)"},
    {"docker-socket", "BERTH_DOCKER_SOCKET", OPT_STR, OFF(docker_socket), 0, 0,
     "/var/run/docker.sock", "unix socket of the Docker Engine API"},
    {"publish-address", "BERTH_PUBLISH_ADDRESS", OPT_STR, OFF(publish_address), 1, 0, "127.0.0.1",
     "host IP that published container ports bind to"},
    {"advertise-host", "BERTH_ADVERTISE_HOST", OPT_STR, OFF(advertise_host), 0, 0, "",
     "host written in gateway and deployment addresses (empty: the publish address)"},
    {"stop-timeout", "BERTH_STOP_TIMEOUT", OPT_INT, OFF(stop_timeout_s), 0, 3600, "30",
     "default grace period in seconds of ShutdownVm and RebootVm"},
    {"pids-limit", "BERTH_PIDS_LIMIT", OPT_INT, OFF(pids_limit), 16, 4194304, "4096",
     "most processes a container may run"},
    {"gateway-port", "BERTH_GATEWAY_PORT", OPT_INT, OFF(gateway_port), 1, 65535, "8040",
     "container port gateway replicas serve on"},
    {"deployment-port", "BERTH_DEPLOYMENT_PORT", OPT_INT, OFF(deployment_port), 1, 65535, "8080",
     "container port deployment replicas serve on"},
    {"metrics-interval", "BERTH_METRICS_INTERVAL", OPT_INT, OFF(metrics_interval_s), 1, 3600, "5",
     "seconds a cached VM metrics sample may get old"},
    {"ready-wait-ms", "BERTH_READY_WAIT_MS", OPT_INT, OFF(ready_wait_ms), 0, 600000, "10000",
     "how long an RPC waits for the start-up registry rebuild"},
    {"registry-auth-file", "BERTH_REGISTRY_AUTH_FILE", OPT_STR, OFF(registry_auth_file), 0, 0,
     CONFIG_DEFAULT_REGISTRY_AUTH_FILE,
     "Docker client config with registry credentials (auths, credHelpers, credsStore), re-read "
     "on SIGHUP; the default is used only when it exists, \"\" for none"},
    {"pull-progress-timeout", "BERTH_PULL_PROGRESS_TIMEOUT", OPT_INT, OFF(pull_progress_timeout_s),
     1, 3600, "60", "seconds an image pull may go without progress before it is cut"},
    {"pull-timeout", "BERTH_PULL_TIMEOUT", OPT_INT, OFF(pull_timeout_s), 1, 86400, "900",
     "seconds an image pull may take at most (always within the call's deadline)"},
};

#define N_OPTS (sizeof(opt_table) / sizeof(opt_table[0]))

static int opt_set(struct berth_config *cfg, const struct opt *o, const char *val,
                   const char *source, struct berth_err *err);
static const struct opt *opt_find(const char *name, size_t len);
static void config_usage(FILE *out);
static void config_markdown(FILE *out);

static int opt_set(struct berth_config *cfg, const struct opt *o, const char *val,
                   const char *source, struct berth_err *err)
{
    void *field = (char *)cfg + o->offset;
    char quoted[80];

    berth_err_quote(quoted, sizeof(quoted), val, 64);
    switch (o->type) {
    case OPT_STR: {
        char *copy;

        if (o->min > 0 && val[0] == '\0')
            return berth_err_set(err, BERTH_INVALID_ARGUMENT, "%s: must not be empty (%s)", o->name,
                                 source);
        copy = strdup(val);
        if (copy == NULL)
            return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        free(*(char **)field);
        *(char **)field = copy;
        return 0;
    }
    case OPT_INT: {
        char *end;
        long long v;
        errno = 0;
        v = strtoll(val, &end, 10);
        if (errno || end == val || *end != '\0' || v < o->min || v > o->max)
            return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                                 "%s '%s': expected an integer from %" PRId64 " to %" PRId64
                                 " (%s)",
                                 o->name, quoted, o->min, o->max, source);
        *(int64_t *)field = v;
        return 0;
    }
    case OPT_LEVEL:
        if (log_level_parse(val, (enum log_level *)field) < 0)
            return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                                 "%s '%s': expected error, warn, info or debug (%s)", o->name,
                                 quoted, source);
        return 0;
    }
    return berth_err_set(err, BERTH_INTERNAL, "option type");
}

static const struct opt *opt_find(const char *name, size_t len)
{
    for (size_t i = 0; i < N_OPTS; i++)
        if (strlen(opt_table[i].name) == len && strncmp(opt_table[i].name, name, len) == 0)
            return &opt_table[i];
    return NULL;
}

static void config_usage(FILE *out)
{
    fprintf(out, "usage: berthd [options]\n\n"
                 "Serves the VM and gateway API and runs them as containers.\n\n");
    for (size_t i = 0; i < N_OPTS; i++) {
        const struct opt *o = &opt_table[i];
        fprintf(out, "  --%-18s %s\n  %-20s env %s, default '%s'\n", o->name, o->help, "", o->env,
                o->def);
    }
    fprintf(out, "  --%-18s %s\n", "check-config", "print the effective configuration and exit");
    fprintf(out, "  --%-18s %s\n", "help", "this text");
    fprintf(out, "  --%-18s %s\n", "version", "print the version and exit");
}

static void config_markdown(FILE *out)
{
    fprintf(out, "# Configuration\n\n"
                 "Every option is a flag and an environment variable; a flag wins over the\n"
                 "variable, the variable over the default. `berthd --check-config` prints the\n"
                 "effective values. This file is generated by `berthd --config-markdown`.\n\n"
                 "| flag | environment | default | meaning |\n| --- | --- | --- | --- |\n");
    for (size_t i = 0; i < N_OPTS; i++) {
        const struct opt *o = &opt_table[i];
        fprintf(out, "| `--%s` | `%s` | `%s` | %s", o->name, o->env, o->def, o->help);
        if (o->type == OPT_INT)
            fprintf(out, " (%" PRId64 " to %" PRId64 ")", o->min, o->max);
        fprintf(out, " |\n");
    }
}

void config_print(const struct berth_config *cfg, FILE *out)
{
    for (size_t i = 0; i < N_OPTS; i++) {
        const struct opt *o = &opt_table[i];
        const void *field = (const char *)cfg + o->offset;
        switch (o->type) {
        case OPT_STR:
            fprintf(out, "%s=%s\n", o->name, *(char *const *)field);
            break;
        case OPT_INT:
            fprintf(out, "%s=%" PRId64 "\n", o->name, *(const int64_t *)field);
            break;
        case OPT_LEVEL:
            fprintf(out, "%s=%s\n", o->name, log_level_name(*(const enum log_level *)field));
            break;
        }
    }
}

int config_load(struct berth_config *cfg, int argc, char **argv, FILE *out,
                enum config_action *action, struct berth_err *err)
{
    int check = 0;

    memset(cfg, 0, sizeof(*cfg));
    *action = CONFIG_RUN;
    for (size_t i = 0; i < N_OPTS; i++)
        if (opt_set(cfg, &opt_table[i], opt_table[i].def, "default", err) < 0)
            goto fail;
    for (size_t i = 0; i < N_OPTS; i++) {
        const char *v = getenv(opt_table[i].env);
        if (v != NULL && opt_set(cfg, &opt_table[i], v, opt_table[i].env, err) < 0)
            goto fail;
    }
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *name, *eq, *val;
        const struct opt *o;

        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            config_usage(out);
            *action = CONFIG_EXIT_OK;
            return 0;
        }
        if (strcmp(arg, "--version") == 0) {
            fprintf(out, "berthd %s\n", BERTH_VERSION);
            *action = CONFIG_EXIT_OK;
            return 0;
        }
        if (strcmp(arg, "--config-markdown") == 0) {
            config_markdown(out);
            *action = CONFIG_EXIT_OK;
            return 0;
        }
        if (strcmp(arg, "--check-config") == 0) {
            check = 1;
            continue;
        }
        if (strncmp(arg, "--", 2) != 0) {
            berth_err_set(err, BERTH_INVALID_ARGUMENT, "unexpected argument '%.64s'", arg);
            goto fail;
        }
        name = arg + 2;
        eq = strchr(name, '=');
        o = opt_find(name, eq ? (size_t)(eq - name) : strlen(name));
        if (o == NULL) {
            berth_err_set(err, BERTH_INVALID_ARGUMENT, "unknown option '%.64s'", arg);
            goto fail;
        }
        if (eq) {
            val = eq + 1;
        } else if (i + 1 < argc) {
            val = argv[++i];
        } else {
            berth_err_set(err, BERTH_INVALID_ARGUMENT, "option '--%s' needs a value", o->name);
            goto fail;
        }
        if (opt_set(cfg, o, val, "flag", err) < 0)
            goto fail;
    }
    if (strcmp(cfg->backend, "docker") != 0 && strcmp(cfg->backend, "memory") != 0) {
        berth_err_set(err, BERTH_INVALID_ARGUMENT, "backend '%.64s': expected docker or memory",
                      cfg->backend);
        goto fail;
    }
    if (check) {
        config_print(cfg, out);
        *action = CONFIG_EXIT_OK;
    }
    return 0;
fail:
    config_release(cfg);
    return -1;
}

void config_release(struct berth_config *cfg)
{
    for (size_t i = 0; i < N_OPTS; i++)
        if (opt_table[i].type == OPT_STR) {
            char **field = (char **)((char *)cfg + opt_table[i].offset);
            free(*field);
            *field = NULL;
        }
}
