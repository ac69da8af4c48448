/* Daemon configuration: every option declared once (flag, BERTH_* variable,
 * type, bounds, default, help) in config.c's table; the parser, --help and
 * docs/configuration.md all come from that table. Precedence: defaults <
 * environment < flags. Parsed once at start into one struct the rest reads. */
#ifndef BERTH_CONFIG_H
#define BERTH_CONFIG_H

#include <stdint.h>
#include <stdio.h>

#include "berth/err.h"
#include "berth/log.h"

struct berth_config {
    char *listen;           /* HOST:PORT; port 0 picks a free one */
    int64_t max_body_bytes; /* request body limit, after inflating */
    enum log_level log_level;
    int64_t max_connections;
    int64_t idle_timeout_s;   /* per-connection idle timeout */
    int64_t shutdown_grace_s; /* how long in-flight requests may finish */
    char *backend;            /* "docker" or "memory" */
    char *docker_socket;
    char *publish_address;  /* host IP that published ports bind to */
    char *advertise_host;   /* host written in gateway/deployment addresses; "" = publish address */
    int64_t stop_timeout_s; /* default grace period of ShutdownVm / RebootVm */
    int64_t pids_limit;     /* per container */
    int64_t gateway_port;   /* container port of gateway replicas */
    int64_t deployment_port; /* container port of deployment replicas */
    int64_t metrics_interval_s;
    int64_t ready_wait_ms;    /* how long an RPC waits for the start-up rebuild */
    char *registry_auth_file; /* Docker client config; "" = none */
    int64_t pull_progress_timeout_s;
    int64_t pull_timeout_s;
};

/* The registry credentials file read when it exists (and only then). */
#define CONFIG_DEFAULT_REGISTRY_AUTH_FILE "/root/.docker/config.json"

enum config_action {
    CONFIG_RUN,     /* start the daemon */
    CONFIG_EXIT_OK, /* --help / --version / --check-config printed; exit 0 */
};

/* Fill cfg from defaults, then the environment (getenv), then argv.
 * Prints --help, --version, --check-config and --config-markdown output to
 * `out`. On a bad value: -1 with invalid_argument naming the option. */
int config_load(struct berth_config *cfg, int argc, char **argv, FILE *out,
                enum config_action *action, struct berth_err *err) BERTH_MUST_USE;
void config_release(struct berth_config *cfg);

/* Write the effective configuration as option=value lines. */
void config_print(const struct berth_config *cfg, FILE *out);

#endif
