/* The Docker implementation of the backend interface (berth/backend.h):
 * each operation becomes Engine API calls through the Engine client (its
 * calls counted, for backend_ops.call_stats).
 * Containers it creates carry berth.managed=true and berth.instance; it
 * never acts on a container without the first or of another instance
 * (not_found instead), never grants host privileges, and never adopts a
 * labelled container that has them (privileged, host namespaces, binds,
 * added capabilities, devices: not_found and a warning). */
#ifndef BERTH_DOCKER_BACKEND_H
#define BERTH_DOCKER_BACKEND_H

#include <stdint.h>

#include "berth/backend.h"
#include "berth/err.h"

#define DOCKER_BACKEND_DEFAULT_SOCKET "/var/run/docker.sock"
#define DOCKER_BACKEND_DEFAULT_PUBLISH "127.0.0.1"
#define DOCKER_BACKEND_DEFAULT_PIDS_LIMIT 1024
#define DOCKER_BACKEND_DEFAULT_CAP_DROP "NET_RAW,MKNOD"
#define DOCKER_BACKEND_DEFAULT_LOG_MAX_SIZE "10m"
#define DOCKER_BACKEND_DEFAULT_LOG_MAX_FILES 3
#define DOCKER_BACKEND_DEFAULT_MEMORY_BYTES ((int64_t)1024 << 20)
#define DOCKER_BACKEND_DEFAULT_INSTANCE "default"
/* Files the cgroup source keeps open for one running container. */
#define DOCKER_BACKEND_STATS_FILES_PER_VM 7

/* Borrowed for the duration of docker_backend_new (strings are copied);
 * a NULL config means all defaults. */
struct docker_backend_config {
    const char *socket_path;     /* NULL or "": DOCKER_BACKEND_DEFAULT_SOCKET */
    const char *publish_address; /* host IP for published ports; NULL or "": 127.0.0.1 */
    int64_t pids_limit;          /* per container; 0: default, < 0: no limit */
    /* How old a sample may get (--metrics-interval, ms): sets how long a
     * stats stream may stay silent before it is reopened. 0: one second. */
    int64_t stats_interval_ms;
    /* Where the kernel's cgroup tree (e.g. "/sys/fs/cgroup") and proc tree
     * (NULL or "": "/proc") are: running containers whose cgroup files are
     * there are sampled from them, the others through the Engine's stats
     * streams. NULL or "": every container through the Engine. */
    const char *cgroup_root;
    const char *proc_root;
    /* Files the cgroup source may keep open between reads (past it a read
     * opens and closes them): 0, half of the open-file limit; < 0, none. */
    int64_t stats_max_open_files;
    /* > 0: a thread pings the Engine this often; after DOCKER_BACKEND_MISSES
     * pings in a row without an answer, calls fail fast (unavailable) until
     * one answers again. 0: no such thread (unit tests). */
    int64_t probe_interval_ms;
    /* Capabilities every container loses, a comma list ("NET_RAW,MKNOD");
     * NULL: DOCKER_BACKEND_DEFAULT_CAP_DROP, "": none. */
    const char *cap_drop;
    /* json-file log rotation: size of one file ("10m"; NULL or "": the
     * default) and how many files (0: the default). */
    const char *log_max_size;
    int64_t log_max_files;
    /* Memory limit of a container whose spec gives none; 0: the default,
     * < 0: no limit. */
    int64_t default_memory_bytes;
    /* This berthd's berth.instance value (NULL or "": "default"): it
     * writes it on every container and acts only on containers carrying it
     * (a container without the label is the "default" instance's). */
    const char *instance_id;
    /* Registries (host[:port], as an image reference names them) images
     * may come from, a comma list; NULL or "": any. An image from another
     * is permission_denied before anything is pulled or created. */
    const char *allowed_registries;
    /* Docker client config file with registry credentials (NULL or "":
     * none); a missing file is no credentials when auth_file_optional. */
    const char *auth_file;
    int auth_file_optional;
    int64_t pull_progress_timeout_ms; /* 0: 60 s */
    int64_t pull_timeout_ms;          /* 0: 15 min */
};

#define DOCKER_BACKEND_PROBE_TIMEOUT_MS 1000
#define DOCKER_BACKEND_MISSES 2

/* The process-wide setup of the Engine client's library, once per process
 * before any Docker backend is made (the daemon's start), and its cleanup
 * (the daemon's stop, after every backend is gone). */
int docker_backend_global_init(struct berth_err *err) BERTH_MUST_USE;
void docker_backend_global_cleanup(void);

/* Fill *out with the Docker backend (ops + a context the caller releases
 * with backend_destroy()). Does no I/O: an Engine that is down now is
 * reached on a later call. */
int docker_backend_new(const struct docker_backend_config *cfg, struct backend *out,
                       struct berth_err *err) BERTH_MUST_USE;

/* Read the registry credentials file again (SIGHUP): `path` (NULL: the
 * file in use, when there is one; "": none from now on), `optional` as
 * auth_file_optional. Not a Docker backend: nothing, 0. On failure the
 * credentials read before stay. One reloading thread at a time. */
int docker_backend_reload_auth(const struct backend *b, const char *path, int optional,
                               struct berth_err *err) BERTH_MUST_USE;

#endif
