/* Daemon configuration: every option declared once (flag, BERTH_* variable,
 * type, bounds, default, help) in config.c's table; the parser, --help and
 * docs/configuration.md all come from that table. Precedence: defaults <
 * the --config file < environment < flags. Parsed at start into one struct
 * the rest reads, and again on SIGHUP (config_reread). */
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
    char *log_format; /* "logfmt" or "json" */
    char *log_target; /* "auto", "stderr" or "journal" */
    int64_t max_connections;
    int64_t idle_timeout_s;   /* per-connection idle timeout */
    int64_t shutdown_grace_s; /* how long in-flight requests may finish */
    char *backend;            /* "docker", "swarm" or "memory" */
    char *docker_socket;
    char *publish_address;  /* host IP that published ports bind to */
    char *advertise_host;   /* host written in gateway/deployment addresses; "" = publish address */
    int64_t stop_timeout_s; /* default grace period of ShutdownVm / RebootVm */
    int64_t pids_limit;     /* per container */
    int64_t gateway_port;   /* container port of gateway replicas */
    int64_t deployment_port; /* container port of deployment replicas */
    int64_t metrics_interval_s;
    int64_t ready_wait_ms;          /* how long an RPC waits for the start-up rebuild */
    int64_t read_timeout_s;         /* deadline for one request's headers and body */
    int64_t max_connections_per_ip; /* 0: no limit */
    int64_t connection_memory;      /* bytes of one connection's buffer */
    char *auth_token_file;          /* "" = no tokens */
    int metrics_auth;               /* /metrics needs a caller */
    char *tls_cert;                 /* PEM; "" = plain HTTP */
    char *tls_key;
    char *tls_client_ca;          /* PEM; "" = no client certificate asked */
    char *tls_allowed_ids;        /* ;-separated subjects / SPIFFE ids; "" = any */
    int64_t socket_mode;          /* permission bits of a unix listener */
    char *socket_group;           /* group of a unix listener; "" = berthd's own */
    int insecure_listen;          /* a non-loopback TCP listener without auth is allowed */
    char *cap_drop;               /* comma list of capabilities every container loses */
    char *log_max_size;           /* json-file log rotation: one file's size ("10m") */
    int64_t log_max_files;        /* json-file log rotation: files kept */
    int64_t default_memory_mib;   /* memory limit when a request gives none; 0: none */
    char *host_port_range;        /* "LOW-HIGH": host ports a request may ask for */
    char *instance_id;            /* berth.instance of everything this berthd makes */
    int64_t max_vms;              /* VMs in all */
    int64_t max_vms_per_customer; /* VMs of one customer_id; 0: no limit */
    int64_t max_replicas_total;   /* gateway and deployment replicas in all */
    char *allowed_registries;     /* comma list of host[:port]; "": any */
    int64_t max_log_bytes;        /* log line bytes one GetLogs answer holds at most */
    char *registry_auth_file;     /* Docker client config; "" = none */
    int64_t pull_progress_timeout_s;
    int64_t pull_timeout_s;
    int64_t http_threads;            /* event loop threads; 0: one per CPU */
    int64_t workers;                 /* threads for calls that wait on the Engine */
    int64_t stream_queue_bytes;      /* a stream's reader may fall this far behind */
    int64_t update_parallelism;      /* replicas an update replaces at a time */
    int64_t update_health_timeout_s; /* a new replica may take this long to be ready */
    int64_t update_min_ready_ms;     /* a new replica must run this long to be ready */
    int64_t update_drain_ms;         /* an old replica leaves answers this long before it stops */
    char *config_file;               /* --config: key = value lines; "" = none */
    char *metrics_cgroup_root;       /* "": every VM sampled through the Engine */
    char *metrics_proc_root;
    char *swarm_publish_mode; /* "host" or "ingress" */
    char *region;             /* UNKEY_REGION of deployment replicas */
    char *vault_url;          /* "": secrets blobs are passed through */
    char *vault_token_file;   /* bearer token for the vault; "": none */
    char *vault_ca_file;      /* PEM CA bundle of an https vault; "": the system's */
    char *vault_client_cert;  /* PEM client certificate for the vault; "": none */
    char *vault_client_key;
    int64_t vault_timeout_ms; /* one vault call at most */
};

/* The registry credentials file read when it exists (and only then). */
#define CONFIG_DEFAULT_REGISTRY_AUTH_FILE "/root/.docker/config.json"

enum config_action {
    CONFIG_RUN,     /* start the daemon */
    CONFIG_EXIT_OK, /* --help / --version / --check-config printed; exit 0 */
};

/* Fill cfg from defaults, then the file of --config (or BERTH_CONFIG), then
 * the environment (getenv), then argv, then run config_validate. Prints
 * --help, --version, --check-config and --config-markdown output to `out`.
 * A BERTH_* variable that names no option is logged as a warning. On a bad
 * value: -1 with invalid_argument naming the option and where it came from
 * (the variable, or the file and line); cfg is then released. */
int config_load(struct berth_config *cfg, int argc, char **argv, FILE *out,
                enum config_action *action, struct berth_err *err) BERTH_MUST_USE;
/* The same sources again (SIGHUP), with the argv the daemon started with:
 * the file is read anew. Prints nothing, logs nothing. */
int config_reread(struct berth_config *cfg, int argc, char **argv,
                  struct berth_err *err) BERTH_MUST_USE;
void config_release(struct berth_config *cfg);

/* fn(arg, name) for each option whose value differs between a and b, in
 * table order; name is the flag without dashes (static). */
void config_each_change(const struct berth_config *a, const struct berth_config *b,
                        void (*fn)(void *arg, const char *name), void *arg);
/* dst's option `name` takes src's value (strings copied). */
int config_copy_option(struct berth_config *dst, const struct berth_config *src, const char *name,
                       struct berth_err *err) BERTH_MUST_USE;
/* A deep copy; dst is released with config_release. */
int config_copy(struct berth_config *dst, const struct berth_config *src,
                struct berth_err *err) BERTH_MUST_USE;

/* The checks that span options or read the system, the same for start and
 * --check-config: the backend's name, --publish-address an IP literal,
 * --listen HOST:PORT (port 0-65535) or unix:PATH, TLS files paired and
 * readable, the token file readable and well formed, no TCP listener on a
 * non-loopback address without tokens, mTLS or --insecure-listen, and the
 * vault: an http(s) URL without credentials, its files readable, no vault
 * option without --vault-url. */
int config_validate(const struct berth_config *cfg, struct berth_err *err) BERTH_MUST_USE;

/* Split a TCP listen spec HOST:PORT or [V6]:PORT into host (brackets
 * removed) and port. The caller frees *host. 0, or -1 naming the problem. */
int config_split_listen(const char *spec, char **host, unsigned *port,
                        struct berth_err *err) BERTH_MUST_USE;

/* Write the effective configuration as option=value lines. */
void config_print(const struct berth_config *cfg, FILE *out);

#endif
