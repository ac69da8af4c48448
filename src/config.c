/* Options, declared once in opt_table[]: flags, BERTH_* variables, --help,
 * --check-config and the configuration docs all read this table. */
#include "berth/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "berth/auth.h"
#include "berth/build_info.h"

extern char **environ;

/* OPT_BOOL: true/false, 1/0, yes/no; a bare flag means true. OPT_MODE:
 * octal permission bits up to 0777. */
enum opt_type { OPT_STR, OPT_INT, OPT_LEVEL, OPT_BOOL, OPT_MODE };

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
     "address the API listens on, HOST:PORT (port 0 picks a free port, 0 to 65535) or unix:PATH"},
    {"max-body-bytes", "BERTH_MAX_BODY_BYTES", OPT_INT, OFF(max_body_bytes), 1, 1073741824,
     "4194304", "largest request body accepted, after inflating gzip"},
    {"log-level", "BERTH_LOG_LEVEL", OPT_LEVEL, OFF(log_level), 0, 0, "info",
     "error, warn, info or debug"},
    {"log-format", "BERTH_LOG_FORMAT", OPT_STR, OFF(log_format), 1, 0, "logfmt",
     "log lines on stderr: logfmt (ts=... level=... msg=...) or json"},
    {"log-target", "BERTH_LOG_TARGET", OPT_STR, OFF(log_target), 1, 0, "auto",
     "auto (the journal when stderr is connected to it), stderr, or journal"},
    {"max-connections", "BERTH_MAX_CONNECTIONS", OPT_INT, OFF(max_connections), 1, 100000, "10000",
     "concurrent client connections"},
    {"idle-timeout", "BERTH_IDLE_TIMEOUT", OPT_INT, OFF(idle_timeout_s), 1, 86400, "60",
     "seconds a client connection may stay idle"},
    {"shutdown-grace", "BERTH_SHUTDOWN_GRACE", OPT_INT, OFF(shutdown_grace_s), 0, 3600, "30",
     "seconds in-flight requests get to finish on SIGTERM"},
    {"backend", "BERTH_BACKEND", OPT_STR, OFF(backend), 0, 0, "docker",
     "where containers run: docker, swarm (gateways and deployments as Swarm services), or memory "
     "(an in-process fake for demos and tests)"},
    {"docker-socket", "BERTH_DOCKER_SOCKET", OPT_STR, OFF(docker_socket), 0, 0,
     "/var/run/docker.sock", "unix socket of the Docker Engine API"},
    {"publish-address", "BERTH_PUBLISH_ADDRESS", OPT_STR, OFF(publish_address), 1, 0, "127.0.0.1",
     "host IP that published container ports bind to"},
    {"advertise-host", "BERTH_ADVERTISE_HOST", OPT_STR, OFF(advertise_host), 0, 0, "",
     "host written in gateway and deployment addresses (empty: the publish address)"},
    {"stop-timeout", "BERTH_STOP_TIMEOUT", OPT_INT, OFF(stop_timeout_s), 0, 3600, "30",
     "default grace period in seconds of ShutdownVm and RebootVm"},
    {"pids-limit", "BERTH_PIDS_LIMIT", OPT_INT, OFF(pids_limit), 16, 4194304, "1024",
     "most processes a container may run"},
    {"gateway-port", "BERTH_GATEWAY_PORT", OPT_INT, OFF(gateway_port), 1, 65535, "8040",
     "container port gateway replicas serve on"},
    {"deployment-port", "BERTH_DEPLOYMENT_PORT", OPT_INT, OFF(deployment_port), 1, 65535, "8080",
     "container port deployment replicas serve on"},
    {"metrics-interval", "BERTH_METRICS_INTERVAL", OPT_INT, OFF(metrics_interval_s), 1, 3600, "5",
     "seconds a cached VM metrics sample may get old"},
    {"ready-wait-ms", "BERTH_READY_WAIT_MS", OPT_INT, OFF(ready_wait_ms), 0, 600000, "10000",
     "how long an RPC waits for the start-up registry rebuild"},
    {"read-timeout", "BERTH_READ_TIMEOUT", OPT_INT, OFF(read_timeout_s), 1, 3600, "10",
     "seconds a client gets to send one request's headers and body, apart from the idle timeout"},
    {"max-connections-per-ip", "BERTH_MAX_CONNECTIONS_PER_IP", OPT_INT, OFF(max_connections_per_ip),
     0, 100000, "64", "concurrent connections from one client address (0: no limit)"},
    {"connection-memory", "BERTH_CONNECTION_MEMORY", OPT_INT, OFF(connection_memory), 4096, 1048576,
     "32768",
     "bytes of each connection's buffer: its request line and headers must fit, and an idle "
     "keep-alive connection holds it all"},
    {"auth-token-file", "BERTH_AUTH_TOKEN_FILE", OPT_STR, OFF(auth_token_file), 0, 0, "",
     "file of bearer tokens, one `token` or `name:token` a line, re-read on SIGHUP (empty: no "
     "tokens)"},
    {"metrics-auth", "BERTH_METRICS_AUTH", OPT_BOOL, OFF(metrics_auth), 0, 0, "false",
     "/metrics needs a caller as the RPCs do"},
    {"tls-cert", "BERTH_TLS_CERT", OPT_STR, OFF(tls_cert), 0, 0, "",
     "PEM certificate chain of the TLS listener, re-read on SIGHUP (empty: plain HTTP)"},
    {"tls-key", "BERTH_TLS_KEY", OPT_STR, OFF(tls_key), 0, 0, "",
     "PEM private key of --tls-cert, re-read on SIGHUP"},
    {"tls-client-ca", "BERTH_TLS_CLIENT_CA", OPT_STR, OFF(tls_client_ca), 0, 0, "",
     "PEM CA bundle; a client certificate signed by it is then required"},
    {"tls-allowed-ids", "BERTH_TLS_ALLOWED_IDS", OPT_STR, OFF(tls_allowed_ids), 0, 0, "",
     "client certificate SPIFFE ids or subjects (as `CN=ci,O=example`) allowed to call, separated "
     "by `;` (empty: any)"},
    {"socket-mode", "BERTH_SOCKET_MODE", OPT_MODE, OFF(socket_mode), 0, 0777, "0660",
     "permission bits of a unix socket listener, octal"},
    {"socket-group", "BERTH_SOCKET_GROUP", OPT_STR, OFF(socket_group), 0, 0, "",
     "group (name or id) of a unix socket listener (empty: berthd's own)"},
    {"insecure-listen", "BERTH_INSECURE_LISTEN", OPT_BOOL, OFF(insecure_listen), 0, 0, "false",
     "allow a TCP listener on a non-loopback address without tokens or mTLS"},
    {"cap-drop", "BERTH_CAP_DROP", OPT_STR, OFF(cap_drop), 0, 0, "NET_RAW,MKNOD",
     "comma list of capabilities every container loses"},
    {"log-max-size", "BERTH_LOG_MAX_SIZE", OPT_STR, OFF(log_max_size), 1, 0, "10m",
     "size of one json-file log file of a container before it rotates (k, m or g)"},
    {"log-max-files", "BERTH_LOG_MAX_FILES", OPT_INT, OFF(log_max_files), 1, 100, "3",
     "json-file log files kept per container"},
    {"default-memory-mib", "BERTH_DEFAULT_MEMORY_MIB", OPT_INT, OFF(default_memory_mib), 0, 1048576,
     "1024", "memory limit in MiB of a container whose request gives none (0: none)"},
    {"host-port-range", "BERTH_HOST_PORT_RANGE", OPT_STR, OFF(host_port_range), 1, 0, "30000-39999",
     "host ports a request may ask for, LOW-HIGH (0 still lets the Engine pick)"},
    {"instance-id", "BERTH_INSTANCE_ID", OPT_STR, OFF(instance_id), 1, 0, "default",
     "berth.instance label of everything this berthd makes; it acts on nothing else"},
    {"max-vms", "BERTH_MAX_VMS", OPT_INT, OFF(max_vms), 1, 1000000, "1000", "VMs in all"},
    {"max-vms-per-customer", "BERTH_MAX_VMS_PER_CUSTOMER", OPT_INT, OFF(max_vms_per_customer), 0,
     1000000, "0", "VMs of one customer_id (0: no limit)"},
    {"max-replicas-total", "BERTH_MAX_REPLICAS_TOTAL", OPT_INT, OFF(max_replicas_total), 1, 1000000,
     "1000", "gateway and deployment replicas in all"},
    {"allowed-registries", "BERTH_ALLOWED_REGISTRIES", OPT_STR, OFF(allowed_registries), 0, 0, "",
     "comma list of registries (host[:port]) images may come from (empty: any)"},
    {"max-log-bytes", "BERTH_MAX_LOG_BYTES", OPT_INT, OFF(max_log_bytes), 1024, 268435456,
     "4194304", "most bytes of log lines one GetLogs answer holds (older lines are cut)"},
    {"registry-auth-file", "BERTH_REGISTRY_AUTH_FILE", OPT_STR, OFF(registry_auth_file), 0, 0,
     CONFIG_DEFAULT_REGISTRY_AUTH_FILE,
     "Docker client config with registry credentials (auths, credHelpers, credsStore), re-read "
     "on SIGHUP; the default is used only when it exists, \"\" for none"},
    {"pull-progress-timeout", "BERTH_PULL_PROGRESS_TIMEOUT", OPT_INT, OFF(pull_progress_timeout_s),
     1, 3600, "60", "seconds an image pull may go without progress before it is cut"},
    {"pull-timeout", "BERTH_PULL_TIMEOUT", OPT_INT, OFF(pull_timeout_s), 1, 86400, "900",
     "seconds an image pull may take at most (always within the call's deadline)"},
    {"http-threads", "BERTH_HTTP_THREADS", OPT_INT, OFF(http_threads), 0, 16, "0",
     "threads of the HTTP event loop (0: one per CPU)"},
    {"workers", "BERTH_WORKERS", OPT_INT, OFF(workers), 1, 1024, "32",
     "threads that run the calls which wait on the Engine; more calls queue"},
    {"stream-queue-bytes", "BERTH_STREAM_QUEUE_BYTES", OPT_INT, OFF(stream_queue_bytes), 4096,
     268435456, "1048576",
     "bytes a stream's reader may fall behind before it is cut off (resource_exhausted)"},
    {"update-parallelism", "BERTH_UPDATE_PARALLELISM", OPT_INT, OFF(update_parallelism), 1, 100,
     "1", "replicas an Update of a gateway or deployment replaces at a time"},
    {"update-health-timeout", "BERTH_UPDATE_HEALTH_TIMEOUT", OPT_INT, OFF(update_health_timeout_s),
     1, 3600, "60",
     "seconds a new replica of an Update may take to be ready before the Update is rolled back"},
    {"update-min-ready-ms", "BERTH_UPDATE_MIN_READY_MS", OPT_INT, OFF(update_min_ready_ms), 0,
     600000, "1000", "ms a new replica of an Update must run without a restart to count as ready"},
    {"update-drain-ms", "BERTH_UPDATE_DRAIN_MS", OPT_INT, OFF(update_drain_ms), 0, 600000, "1000",
     "ms an old replica an Update replaced is left out of answers before it is stopped"},
    {"config", "BERTH_CONFIG", OPT_STR, OFF(config_file), 0, 0, "",
     "file of `key = value` lines setting any option but this one (see below); the environment "
     "and flags win over it, it is read again on SIGHUP (empty: none)"},
    {"metrics-cgroup-root", "BERTH_METRICS_CGROUP_ROOT", OPT_STR, OFF(metrics_cgroup_root), 0, 0,
     "/sys/fs/cgroup",
     "the host's cgroup tree: running VMs whose cgroup files are there are sampled from them, "
     "the others through the Engine's stats streams (empty: all through the Engine)"},
    {"metrics-proc-root", "BERTH_METRICS_PROC_ROOT", OPT_STR, OFF(metrics_proc_root), 1, 0, "/proc",
     "the host's proc tree, for the host's CPU counters and each VM's network counters"},
    {"swarm-publish-mode", "BERTH_SWARM_PUBLISH_MODE", OPT_STR, OFF(swarm_publish_mode), 1, 0,
     "host",
     "--backend swarm: host (each replica's port on the node that runs it, an address per "
     "replica) or ingress (the routing mesh: one port of the swarm's range on every node)"},
    {"region", "BERTH_REGION", OPT_STR, OFF(region), 0, 0, "",
     "region every deployment replica finds in UNKEY_REGION"},
    {"vault-url", "BERTH_VAULT_URL", OPT_STR, OFF(vault_url), 0, 0, "",
     "base URL (http:// or https://) of the vault's Connect API that decrypts a deployment's "
     "encryptedSecretsBlob into environment variables (empty: the blob is passed to every "
     "replica as UNKEY_SECRETS_BLOB)"},
    {"vault-token-file", "BERTH_VAULT_TOKEN_FILE", OPT_STR, OFF(vault_token_file), 0, 0, "",
     "file holding the bearer token sent to the vault, re-read on SIGHUP (empty: none)"},
    {"vault-ca-file", "BERTH_VAULT_CA_FILE", OPT_STR, OFF(vault_ca_file), 0, 0, "",
     "PEM CA bundle that an https vault's certificate must chain to (empty: the system's)"},
    {"vault-client-cert", "BERTH_VAULT_CLIENT_CERT", OPT_STR, OFF(vault_client_cert), 0, 0, "",
     "PEM client certificate shown to an https vault, read for each new connection (empty: "
     "none)"},
    {"vault-client-key", "BERTH_VAULT_CLIENT_KEY", OPT_STR, OFF(vault_client_key), 0, 0, "",
     "PEM private key of --vault-client-cert"},
    {"vault-timeout-ms", "BERTH_VAULT_TIMEOUT_MS", OPT_INT, OFF(vault_timeout_ms), 100, 600000,
     "10000", "ms one call to the vault may take (always within the call's deadline)"},
};

#define N_OPTS (sizeof(opt_table) / sizeof(opt_table[0]))

static int opt_set(struct berth_config *cfg, const struct opt *o, const char *val,
                   const char *source, struct berth_err *err);
static const struct opt *opt_find(const char *name, size_t len);
static void config_usage(FILE *out);
static void config_markdown(FILE *out);
static void warn_unknown_env(void);
static int config_build(struct berth_config *cfg, int argc, char **argv, FILE *out,
                        enum config_action *action, int quiet, struct berth_err *err);
static int config_read_file(struct berth_config *cfg, const char *path, struct berth_err *err);
static int config_file_line(struct berth_config *cfg, char *line, const char *source,
                            unsigned *seen, unsigned lineno, struct berth_err *err);
static int opt_equal(const struct berth_config *a, const struct berth_config *b,
                     const struct opt *o);
static int check_ip_literal(const char *name, const char *value, struct berth_err *err);
static int check_listen(const struct berth_config *cfg, struct berth_err *err);
static int check_readable(const char *name, const char *path, struct berth_err *err);
static int check_tls(const struct berth_config *cfg, struct berth_err *err);
static int check_vault(const struct berth_config *cfg, struct berth_err *err);
static int host_is_loopback(const char *host);

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
    case OPT_BOOL:
        if (strcasecmp(val, "true") == 0 || strcmp(val, "1") == 0 || strcasecmp(val, "yes") == 0)
            *(int *)field = 1;
        else if (strcasecmp(val, "false") == 0 || strcmp(val, "0") == 0 ||
                 strcasecmp(val, "no") == 0)
            *(int *)field = 0;
        else
            return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                                 "%s '%s': expected true or false (%s)", o->name, quoted, source);
        return 0;
    case OPT_MODE: {
        char *end;
        long v;
        errno = 0;
        v = strtol(val, &end, 8);
        if (errno || end == val || *end != '\0' || val[0] == '-' || v < o->min || v > o->max)
            return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                                 "%s '%s': expected octal permission bits up to 0777 (%s)", o->name,
                                 quoted, source);
        *(int64_t *)field = v;
        return 0;
    }
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
    fprintf(out, "  --%-18s %s\n", "check-config",
            "check the flags, the environment and the config file, print the effective "
            "configuration and exit");
    fprintf(out, "  --%-18s %s\n", "help", "this text");
    fprintf(out, "  --%-18s %s\n", "version", "print the version and exit");
}

static void config_markdown(FILE *out)
{
    fprintf(out, "# Configuration\n\n"
                 "Every option is a flag, an environment variable and a key of the\n"
                 "configuration file (`--config`): a flag wins over the variable, the variable\n"
                 "over the file, the file over the default. `berthd --check-config` checks all\n"
                 "three and prints the effective values. This file is generated by\n"
                 "`berthd --config-markdown`.\n\n"
                 "| flag | environment | default | meaning |\n| --- | --- | --- | --- |\n");
    for (size_t i = 0; i < N_OPTS; i++) {
        const struct opt *o = &opt_table[i];
        fprintf(out, "| `--%s` | `%s` | `%s` | %s", o->name, o->env, o->def, o->help);
        if (o->type == OPT_INT)
            fprintf(out, " (%" PRId64 " to %" PRId64 ")", o->min, o->max);
        fprintf(out, " |\n");
    }
    fprintf(out,
            "\n## The configuration file\n\n"
            "`--config FILE` (or `BERTH_CONFIG=FILE`) names a file of `key = value` lines;\n"
            "each key is an option's flag without the dashes:\n\n"
            "```\n"
            "# /etc/berthd.conf\n"
            "listen = 127.0.0.1:8080\n"
            "log-level = info\n"
            "auth-token-file = \"/etc/berthd/tokens\"   # quoted: may hold spaces or #\n"
            "max-vms = 200\n"
            "```\n\n"
            "- Blank lines and lines starting with `#` are skipped; after a value, ` #`\n"
            "  (a space or tab, then `#`) starts a comment.\n"
            "- A value may be in double quotes (`\\\"` and `\\\\` inside stand for `\"` and `\\`)\n"
            "  or single quotes (taken as written); `key =` or `key = \"\"` is the empty value.\n"
            "  Spaces around the key, the `=` and an unquoted value are not part of them.\n"
            "- A key that names no option, a key given twice, a line without `=` and a bad\n"
            "  value are errors naming the file and the line; berthd then does not start\n"
            "  (and a SIGHUP keeps the configuration in use).\n"
            "- `config` itself cannot be set in the file.\n\n"
            "## Reloading (SIGHUP)\n"
            "\n"
            "On SIGHUP berthd reads its configuration again: the file anew, with the\n"
            "environment and flags it started with. These take effect at once:\n"
            "`log-level`, `log-format`, `max-vms`, `max-vms-per-customer`,\n"
            "`max-replicas-total`, `registry-auth-file`, and `auth-token-file`, `tls-cert`\n"
            "and `tls-key` while tokens or TLS stay on. The token file, the certificate and\n"
            "key and the registry credentials are read again even when their names did not\n"
            "change. A change of any other option is logged as needing a restart\n"
            "(`config.restart_needed`, naming the options) and left alone until then. The\n"
            "log names the options that changed, never their values. A token, TLS or\n"
            "credentials file that does not load is a warning (`config.reload_failed`) and\n"
            "the one in use stays. A configuration file that does not load is logged as an\n"
            "error (`config.reload`) and the configuration in use stays; berthd never\n"
            "exits on SIGHUP.\n");
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
        case OPT_BOOL:
            fprintf(out, "%s=%s\n", o->name, *(const int *)field ? "true" : "false");
            break;
        case OPT_MODE:
            fprintf(out, "%s=0%03" PRIo64 "\n", o->name, *(const int64_t *)field);
            break;
        }
    }
}

/* One option named on the command line, applied after the file and the
 * environment. */
struct flag_value {
    const struct opt *o;
    const char *val;
};

/* Defaults, then the file, then the environment, then the flags. The
 * command line is read first: the informational flags act at once, and
 * the file's name may be one of its options. */
static int config_build(struct berth_config *cfg, int argc, char **argv, FILE *out,
                        enum config_action *action, int quiet, struct berth_err *err)
{
    struct flag_value *flags = calloc((size_t)(argc > 0 ? argc : 1), sizeof(*flags));
    const struct opt *config_opt = opt_find("config", 6);
    const char *file = NULL;
    size_t n_flags = 0;
    int check = 0;

    memset(cfg, 0, sizeof(*cfg));
    *action = CONFIG_RUN;
    if (flags == NULL)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *name, *eq, *val;
        const struct opt *o;

        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            if (out != NULL)
                config_usage(out);
            *action = CONFIG_EXIT_OK;
            free(flags);
            return 0;
        }
        if (strcmp(arg, "--version") == 0) {
            if (out != NULL)
                fprintf(out, "berthd %s (commit %s, built %s)\n", BERTH_VERSION, BERTH_COMMIT,
                        BERTH_BUILD_DATE);
            *action = CONFIG_EXIT_OK;
            free(flags);
            return 0;
        }
        if (strcmp(arg, "--config-markdown") == 0) {
            if (out != NULL)
                config_markdown(out);
            *action = CONFIG_EXIT_OK;
            free(flags);
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
        } else if (o->type == OPT_BOOL) {
            val = "true";
        } else if (i + 1 < argc) {
            val = argv[++i];
        } else {
            berth_err_set(err, BERTH_INVALID_ARGUMENT, "option '--%s' needs a value", o->name);
            goto fail;
        }
        flags[n_flags++] = (struct flag_value){o, val};
        if (o == config_opt)
            file = val;
    }
    for (size_t i = 0; i < N_OPTS; i++)
        if (opt_set(cfg, &opt_table[i], opt_table[i].def, "default", err) < 0)
            goto fail;
    if (file == NULL)
        file = getenv(config_opt->env);
    if (file != NULL && file[0] != '\0' && config_read_file(cfg, file, err) < 0)
        goto fail;
    for (size_t i = 0; i < N_OPTS; i++) {
        const char *v = getenv(opt_table[i].env);
        if (v != NULL && opt_set(cfg, &opt_table[i], v, opt_table[i].env, err) < 0)
            goto fail;
    }
    for (size_t i = 0; i < n_flags; i++)
        if (opt_set(cfg, flags[i].o, flags[i].val, "flag", err) < 0)
            goto fail;
    free(flags);
    flags = NULL;
    if (!quiet)
        warn_unknown_env();
    if (config_validate(cfg, err) < 0)
        goto fail;
    if (check && out != NULL) {
        config_print(cfg, out);
        *action = CONFIG_EXIT_OK;
    }
    return 0;
fail:
    free(flags);
    config_release(cfg);
    return -1;
}

int config_load(struct berth_config *cfg, int argc, char **argv, FILE *out,
                enum config_action *action, struct berth_err *err)
{
    return config_build(cfg, argc, argv, out, action, 0, err);
}

int config_reread(struct berth_config *cfg, int argc, char **argv, struct berth_err *err)
{
    enum config_action action;

    return config_build(cfg, argc, argv, NULL, &action, 1, err);
}

/* Keys are flag names: lower case letters, digits and '-' ('_' is read
 * only to point at the spelling that works). */
static int key_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.';
}

/* One line of the file, already without its newline. seen[i] is the line
 * option i was set on (0: not yet). */
static int config_file_line(struct berth_config *cfg, char *line, const char *source,
                            unsigned *seen, unsigned lineno, struct berth_err *err)
{
    char *p = line, *key, *val, *w;
    size_t key_len;
    const struct opt *o;
    char quoted[80];

    while (*p == ' ' || *p == '\t')
        p++;
    if (*p == '\0' || *p == '#')
        return 0;
    key = p;
    while (key_char(*p))
        p++;
    key_len = (size_t)(p - key);
    while (*p == ' ' || *p == '\t')
        p++;
    if (key_len == 0 || *p != '=')
        return berth_err_set(err, BERTH_INVALID_ARGUMENT, "%s: expected key = value", source);
    key[key_len] = '\0';
    p++;
    while (*p == ' ' || *p == '\t')
        p++;
    val = w = p;
    if (*p == '"' || *p == '\'') {
        char q = *p++;

        for (;;) {
            if (*p == '\0')
                return berth_err_set(err, BERTH_INVALID_ARGUMENT, "%s: %s: the quote is not closed",
                                     source, key);
            if (*p == q) {
                p++;
                break;
            }
            if (q == '"' && *p == '\\') {
                if (p[1] != '"' && p[1] != '\\')
                    return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                                         "%s: %s: only \\\" and \\\\ may follow a backslash",
                                         source, key);
                p++;
            }
            *w++ = *p++;
        }
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p != '\0' && *p != '#')
            return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                                 "%s: %s: text after the closing quote", source, key);
        *w = '\0';
    } else {
        /* An unquoted value ends at " #" or the end of the line; spaces
         * around it are not part of it. */
        for (w = p; *w != '\0'; w++)
            if (*w == '#' && w > p && (w[-1] == ' ' || w[-1] == '\t'))
                break;
        while (w > p && (w[-1] == ' ' || w[-1] == '\t'))
            w--;
        *w = '\0';
    }
    o = opt_find(key, key_len);
    if (o == NULL) {
        char alt[64];
        const struct opt *near = NULL;

        if (key_len < sizeof(alt)) {
            for (size_t i = 0; i <= key_len; i++)
                alt[i] = key[i] == '_' ? '-' : key[i];
            near = opt_find(alt, key_len);
        }
        berth_err_quote(quoted, sizeof(quoted), key, 64);
        if (near != NULL)
            return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                                 "%s: unknown key '%s' (keys are spelt as flags: '%s')", source,
                                 quoted, near->name);
        return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                             "%s: unknown key '%s' (see berthd --help)", source, quoted);
    }
    if (strcmp(o->name, "config") == 0)
        return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                             "%s: config cannot be set in the configuration file", source);
    if (seen[o - opt_table] != 0)
        return berth_err_set(err, BERTH_INVALID_ARGUMENT, "%s: %s was already set on line %u",
                             source, o->name, seen[o - opt_table]);
    seen[o - opt_table] = lineno;
    return opt_set(cfg, o, val, source, err);
}

static int config_read_file(struct berth_config *cfg, const char *path, struct berth_err *err)
{
    unsigned seen[N_OPTS];
    char quoted[80], source[120];
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    unsigned lineno = 0;
    int rc = 0;
    FILE *f;

    berth_err_quote(quoted, sizeof(quoted), path, 64);
    f = fopen(path, "re");
    if (f == NULL)
        return berth_err_set(err, BERTH_INVALID_ARGUMENT, "config '%s': %s", quoted,
                             strerror(errno));
    memset(seen, 0, sizeof(seen));
    while (rc == 0 && (n = getline(&line, &cap, f)) >= 0) {
        lineno++;
        snprintf(source, sizeof(source), "%s line %u", quoted, lineno);
        if (memchr(line, '\0', (size_t)n) != NULL) {
            rc = berth_err_set(err, BERTH_INVALID_ARGUMENT, "%s: a NUL byte", source);
            break;
        }
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        rc = config_file_line(cfg, line, source, seen, lineno, err);
    }
    if (rc == 0 && ferror(f))
        rc = berth_err_set(err, BERTH_INVALID_ARGUMENT, "config '%s': %s", quoted, strerror(errno));
    free(line);
    fclose(f);
    return rc;
}

static int opt_equal(const struct berth_config *a, const struct berth_config *b,
                     const struct opt *o)
{
    const void *fa = (const char *)a + o->offset, *fb = (const char *)b + o->offset;

    switch (o->type) {
    case OPT_STR: {
        const char *sa = *(char *const *)fa, *sb = *(char *const *)fb;
        return strcmp(sa ? sa : "", sb ? sb : "") == 0;
    }
    case OPT_INT:
    case OPT_MODE:
        return *(const int64_t *)fa == *(const int64_t *)fb;
    case OPT_LEVEL:
        return *(const enum log_level *)fa == *(const enum log_level *)fb;
    case OPT_BOOL:
        return *(const int *)fa == *(const int *)fb;
    }
    return 0;
}

void config_each_change(const struct berth_config *a, const struct berth_config *b,
                        void (*fn)(void *arg, const char *name), void *arg)
{
    for (size_t i = 0; i < N_OPTS; i++)
        if (!opt_equal(a, b, &opt_table[i]))
            fn(arg, opt_table[i].name);
}

int config_copy_option(struct berth_config *dst, const struct berth_config *src, const char *name,
                       struct berth_err *err)
{
    const struct opt *o = opt_find(name, strlen(name));
    void *fd;
    const void *fs;

    if (o == NULL)
        return berth_err_set(err, BERTH_INTERNAL, "no option '%.64s'", name);
    fd = (char *)dst + o->offset;
    fs = (const char *)src + o->offset;
    switch (o->type) {
    case OPT_STR: {
        const char *v = *(char *const *)fs;
        char *copy = strdup(v ? v : "");

        if (copy == NULL)
            return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        free(*(char **)fd);
        *(char **)fd = copy;
        return 0;
    }
    case OPT_INT:
    case OPT_MODE:
        *(int64_t *)fd = *(const int64_t *)fs;
        return 0;
    case OPT_LEVEL:
        *(enum log_level *)fd = *(const enum log_level *)fs;
        return 0;
    case OPT_BOOL:
        *(int *)fd = *(const int *)fs;
        return 0;
    }
    return berth_err_set(err, BERTH_INTERNAL, "option type");
}

int config_copy(struct berth_config *dst, const struct berth_config *src, struct berth_err *err)
{
    memset(dst, 0, sizeof(*dst));
    for (size_t i = 0; i < N_OPTS; i++)
        if (config_copy_option(dst, src, opt_table[i].name, err) < 0) {
            config_release(dst);
            return -1;
        }
    return 0;
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

/* A BERTH_* variable that names no option is most likely a typo: say so,
 * naming the variable (never its value). The command line's own variables
 * (the same binary's client) are not typos. */
static void warn_unknown_env(void)
{
    static const char *const client_env[] = {"BERTH_ADDR", "BERTH_TOKEN"};

    for (char **e = environ; e != NULL && *e != NULL; e++) {
        const char *eq = strchr(*e, '=');
        size_t len = eq ? (size_t)(eq - *e) : strlen(*e);
        int known = 0;
        struct log_quoted lq;
        char *name;

        if (strncmp(*e, "BERTH_", 6) != 0)
            continue;
        for (size_t i = 0; i < N_OPTS && !known; i++)
            known = strlen(opt_table[i].env) == len && strncmp(opt_table[i].env, *e, len) == 0;
        for (size_t i = 0; i < sizeof(client_env) / sizeof(client_env[0]) && !known; i++)
            known = strlen(client_env[i]) == len && strncmp(client_env[i], *e, len) == 0;
        if (known)
            continue;
        name = strndup(*e, len);
        log_warn("config.unknown_env", "name=%s reason=\"names no option\"",
                 log_quote(&lq, name ? name : "BERTH_"));
        free(name);
    }
}

static int check_ip_literal(const char *name, const char *value, struct berth_err *err)
{
    unsigned char addr[sizeof(struct in6_addr)];
    char quoted[80];

    if (inet_pton(AF_INET, value, addr) == 1 || inet_pton(AF_INET6, value, addr) == 1)
        return 0;
    berth_err_quote(quoted, sizeof(quoted), value, 64);
    return berth_err_set(err, BERTH_INVALID_ARGUMENT, "%s '%s': expected an IP address", name,
                         quoted);
}

int config_split_listen(const char *spec, char **host, unsigned *port, struct berth_err *err)
{
    const char *colon = strrchr(spec, ':'), *h = spec;
    size_t hlen, plen;
    unsigned long v = 0;
    char quoted[80];

    berth_err_quote(quoted, sizeof(quoted), spec, 64);
    if (colon == NULL || colon == spec)
        return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                             "listen '%s': expected HOST:PORT or unix:PATH", quoted);
    plen = strlen(colon + 1);
    /* Count the digits before adding them up: no overflow, whatever the length. */
    if (plen == 0 || plen > 5 || strspn(colon + 1, "0123456789") != plen)
        return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                             "listen '%s': the port must be a number from 0 to 65535", quoted);
    for (size_t i = 0; i < plen; i++)
        v = v * 10 + (unsigned long)(colon[1 + i] - '0');
    if (v > 65535)
        return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                             "listen '%s': the port must be a number from 0 to 65535", quoted);
    hlen = (size_t)(colon - spec);
    if (spec[0] == '[') {
        if (hlen < 3 || spec[hlen - 1] != ']')
            return berth_err_set(err, BERTH_INVALID_ARGUMENT, "listen '%s': expected [IPV6]:PORT",
                                 quoted);
        h = spec + 1;
        hlen -= 2;
    } else if (memchr(spec, ':', hlen) != NULL) {
        return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                             "listen '%s': an IPv6 address goes in brackets, [V6]:PORT", quoted);
    }
    *host = strndup(h, hlen);
    if (*host == NULL)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    *port = (unsigned)v;
    return 0;
}

/* 1 when every address the host stands for is a loopback one. */
static int host_is_loopback(const char *host)
{
    struct addrinfo hints, *res = NULL;
    int all = 1;

    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    if (getaddrinfo(host[0] ? host : NULL, "0", &hints, &res) != 0 || res == NULL)
        return 0;
    for (struct addrinfo *ai = res; ai != NULL && all; ai = ai->ai_next) {
        if (ai->ai_family == AF_INET) {
            const struct sockaddr_in *s4 = (const struct sockaddr_in *)ai->ai_addr;
            all = (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
        } else if (ai->ai_family == AF_INET6) {
            const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ai->ai_addr;
            all = IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr);
        } else {
            all = 0;
        }
    }
    freeaddrinfo(res);
    return all;
}

static int check_listen(const struct berth_config *cfg, struct berth_err *err)
{
    char *host = NULL;
    unsigned port;
    int secured;

    if (strncmp(cfg->listen, "unix:", 5) == 0) {
        if (cfg->listen[5] == '\0')
            return berth_err_set(err, BERTH_INVALID_ARGUMENT, "listen 'unix:': expected unix:PATH");
        return 0;
    }
    if (config_split_listen(cfg->listen, &host, &port, err) < 0)
        return -1;
    secured = cfg->auth_token_file[0] != '\0' || cfg->tls_client_ca[0] != '\0';
    if (!secured && !host_is_loopback(host)) {
        char quoted[80];

        free(host);
        if (cfg->insecure_listen)
            return 0;
        berth_err_quote(quoted, sizeof(quoted), cfg->listen, 64);
        return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                             "listen '%s' is not a loopback address: configure --auth-token-file "
                             "or --tls-client-ca, or allow it with --insecure-listen",
                             quoted);
    }
    free(host);
    return 0;
}

static int check_readable(const char *name, const char *path, struct berth_err *err)
{
    char quoted[80];

    if (path[0] == '\0' || access(path, R_OK) == 0)
        return 0;
    berth_err_quote(quoted, sizeof(quoted), path, 64);
    return berth_err_set(err, BERTH_INVALID_ARGUMENT, "%s '%s': %s", name, quoted, strerror(errno));
}

static int check_tls(const struct berth_config *cfg, struct berth_err *err)
{
    if ((cfg->tls_cert[0] == '\0') != (cfg->tls_key[0] == '\0'))
        return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                             "tls-cert and tls-key: give both or neither");
    if (cfg->tls_client_ca[0] != '\0' && cfg->tls_cert[0] == '\0')
        return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                             "tls-client-ca needs tls-cert and tls-key");
    if (cfg->tls_allowed_ids[0] != '\0' && cfg->tls_client_ca[0] == '\0')
        return berth_err_set(err, BERTH_INVALID_ARGUMENT, "tls-allowed-ids needs tls-client-ca");
    if (cfg->tls_cert[0] != '\0' && strncmp(cfg->listen, "unix:", 5) == 0)
        return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                             "tls-cert: a unix socket listener has no TLS");
    if (check_readable("tls-cert", cfg->tls_cert, err) < 0 ||
        check_readable("tls-key", cfg->tls_key, err) < 0 ||
        check_readable("tls-client-ca", cfg->tls_client_ca, err) < 0)
        return -1;
    return 0;
}

/* The vault options: a URL berthd can call, files that can be read, and
 * no vault option without the vault. */
static int check_vault(const struct berth_config *cfg, struct berth_err *err)
{
    const char *url = cfg->vault_url;

    if (url[0] == '\0') {
        if (cfg->vault_token_file[0] != '\0' || cfg->vault_ca_file[0] != '\0' ||
            cfg->vault_client_cert[0] != '\0' || cfg->vault_client_key[0] != '\0')
            return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                                 "vault-token-file, vault-ca-file, vault-client-cert and "
                                 "vault-client-key need vault-url");
        return 0;
    }
    if ((strncmp(url, "http://", 7) != 0 || url[7] == '\0') &&
        (strncmp(url, "https://", 8) != 0 || url[8] == '\0'))
        return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                             "vault-url: expected http://HOST[:PORT][/PATH] or https://...");
    for (const char *p = url; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f || *p == '?' || *p == '#')
            return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                                 "vault-url: spaces, control characters, a query or a fragment "
                                 "do not belong in it");
    {
        /* A password in the URL would be printed wherever the
         * configuration is: the token goes in its file. */
        const char *host = strstr(url, "//") + 2;
        size_t authority = strcspn(host, "/");

        if (memchr(host, '@', authority) != NULL)
            return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                                 "vault-url: no user or password in it; the vault's token goes "
                                 "in --vault-token-file");
    }
    if ((cfg->vault_client_cert[0] == '\0') != (cfg->vault_client_key[0] == '\0'))
        return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                             "vault-client-cert and vault-client-key: give both or neither");
    if (check_readable("vault-token-file", cfg->vault_token_file, err) < 0 ||
        check_readable("vault-ca-file", cfg->vault_ca_file, err) < 0 ||
        check_readable("vault-client-cert", cfg->vault_client_cert, err) < 0 ||
        check_readable("vault-client-key", cfg->vault_client_key, err) < 0)
        return -1;
    return 0;
}

int config_validate(const struct berth_config *cfg, struct berth_err *err)
{
    enum log_format lf;
    enum log_target lt;

    if (log_format_parse(cfg->log_format, &lf) < 0)
        return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                             "log-format '%.64s': expected logfmt or json", cfg->log_format);
    if (log_target_parse(cfg->log_target, &lt) < 0)
        return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                             "log-target '%.64s': expected auto, stderr or journal",
                             cfg->log_target);
    if (strcmp(cfg->backend, "docker") != 0 && strcmp(cfg->backend, "swarm") != 0 &&
        strcmp(cfg->backend, "memory") != 0)
        return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                             "backend '%.64s': expected docker, swarm or memory", cfg->backend);
    if (strcmp(cfg->swarm_publish_mode, "host") != 0 &&
        strcmp(cfg->swarm_publish_mode, "ingress") != 0)
        return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                             "swarm-publish-mode '%.64s': expected host or ingress",
                             cfg->swarm_publish_mode);
    if (check_ip_literal("publish-address", cfg->publish_address, err) < 0)
        return -1;
    if (check_tls(cfg, err) < 0 || check_listen(cfg, err) < 0)
        return -1;
    if (cfg->auth_token_file[0] != '\0') {
        size_t n = 0;

        if (auth_tokens_check(cfg->auth_token_file, &n, err) < 0)
            return -1;
    }
    return check_vault(cfg, err);
}
