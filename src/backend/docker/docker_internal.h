/* Private to the Docker backend's files: its context and the pieces split
 * into their own files. */
#ifndef BERTH_DOCKER_INTERNAL_H
#define BERTH_DOCKER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "berth/backend.h"
#include "berth/buf.h"
#include "berth/engine_client.h"

struct swarm_state;

/* Immutable after docker_backend_new (but for the probe's stop flag, which
 * has its lock), so shared by all threads; the engine client locks its own
 * pool. */
struct docker_ctx {
    struct engine *engine;      /* owned */
    char *socket_path;          /* owned */
    struct engine_stats *calls; /* owned: counters of every Engine call, stats streams too */
    struct docker_stats *stats; /* owned: the stats streams, used by one sweep at a time */
    char *publish_address;      /* owned */
    int64_t pids_limit;         /* <= 0: no limit */
    char **cap_drop;            /* owned, n_cap_drop entries */
    size_t n_cap_drop;
    char *log_max_size;           /* owned */
    int64_t log_max_files;        /* > 0 */
    int64_t default_memory_bytes; /* <= 0: no limit */
    char *instance_id;            /* owned, never empty */
    char **allowed_registries;    /* owned; none: any registry */
    size_t n_allowed_registries;
    /* Orders making and joining a tenant network against removing it. */
    pthread_mutex_t net_lock;
    int net_lock_made;
    struct docker_pulls *pulls; /* owned: credentials, pulls under way, their counters */
    /* The Swarm backend's settings when it runs on this context (it frees
     * them); NULL for the Docker backend. */
    struct swarm_state *swarm;

    /* The probe thread (docker_backend_config.probe_interval_ms). */
    int64_t probe_interval_ms; /* immutable */
    pthread_t prober;
    int prober_started; /* immutable once docker_backend_new returned */
    pthread_mutex_t probe_lock;
    pthread_cond_t probe_wake;
    int probe_stop; /* probe_lock */
};

/* Small request paths are ours; the cap only guards against bugs. */
#define DOCKER_PATH_MAX (64 * 1024)
/* Longest user string echoed in an error message. */
#define DOCKER_QUOTE_MAX 128

/* --- the operations (docker_backend.c) --- */

/* An Engine 5xx text that really means "not in that state" or "the host
 * port is taken": failed_precondition, not unavailable. */
int docker_backend_is_state_text(const char *msg);

/* --- create (docker_create.c) --- */

/* backend_ops.create: the spec checked and sent, the image pulled when the
 * Engine lacks it, a create whose answer was lost reaped by its token. */
int docker_create_container(void *ctx, const struct backend_spec *spec, int64_t deadline,
                            char **id_out, struct berth_err *err);

/* With --allowed-registries, the image's registry must be one of them:
 * permission_denied otherwise, before the Engine is asked for anything. */
int docker_check_registry(const struct docker_ctx *c, const char *image,
                          struct berth_err *err) BERTH_MUST_USE;

/* GET <prefix><escaped {"<filter_key>":[values...]}> that must answer a
 * JSON array: *out is the parsed array (the caller deletes it). Engine
 * failures are mapped once, naming `what`. */
int docker_get_array(struct docker_ctx *c, const char *prefix, const char *filter_key,
                     const char *const *values, size_t n, const char *what, int64_t deadline,
                     cJSON **out, struct berth_err *err) BERTH_MUST_USE;

/* --- named volumes (docker_volumes.c) --- */

/* Volume v of spec: there already and usable (this berthd's, with every
 * spec->volume_labels label, a plain local volume), or made now with those
 * labels (*made = 1). One that is there but not usable: failed_precondition. */
int docker_volume_ensure(struct docker_ctx *c, const struct backend_spec *spec,
                         const struct backend_volume *v, int64_t deadline, int *made,
                         struct berth_err *err) BERTH_MUST_USE;
/* backend_ops.remove_volume. */
int docker_volume_remove(void *ctx, const char *name, const struct backend_label *must,
                         size_t n_must, int64_t deadline, struct berth_err *err);

/* --- tenant networks (docker_networks.c) --- */

/* The Engine's name of a spec's network: as given for the default
 * instance, with "-<instance>" after it for any other. */
int docker_network_full_name(const struct docker_ctx *c, const char *network, struct buf *out,
                             struct berth_err *err);
/* The id of bridge `name` (full name) into id_out, made unless it is
 * there; a network of that name that is not this berthd's is
 * failed_precondition. The caller holds c->net_lock. */
int docker_network_ensure(struct docker_ctx *c, const char *name, struct buf *id_out,
                          int64_t deadline, struct berth_err *err);
/* After a container's removal: each tenant network of its inspect (taken
 * before) that is ours and has no container left is removed; failures are
 * logged. Takes c->net_lock. */
void docker_network_release(struct docker_ctx *c, const cJSON *inspect, int64_t deadline);
/* 1 when a network name is one berthd makes ("berth-..."). */
int docker_network_is_tenant(const char *name);
/* --- pulls (pull.c) --- */

#define DOCKER_PULL_PROGRESS_DEFAULT_MS (60 * 1000)
#define DOCKER_PULL_TOTAL_DEFAULT_MS (15 * 60 * 1000)

struct docker_pulls;

/* The pull state: the credentials of `auth_path` (NULL: none; a missing
 * file is an empty set when `auth_optional`), the silence limit and the
 * overall limit of a pull (ms; 0: the defaults above). */
int docker_pulls_new(const char *auth_path, int auth_optional, int64_t progress_ms,
                     int64_t total_ms, struct docker_pulls **out,
                     struct berth_err *err) BERTH_MUST_USE;
void docker_pulls_free(struct docker_pulls *p); /* NULL: nothing */
/* Read the credentials file again: `path` (NULL: the one in use; "": none
 * from now on); on failure the old credentials stay. */
int docker_pulls_reload_auth(struct docker_pulls *p, const char *path, int optional,
                             struct berth_err *err) BERTH_MUST_USE;
/* Pull `image`, sharing a pull of the same reference already under way.
 * Not in the registry: not_found naming it; refused: permission_denied
 * naming the registry; unreachable, stalled: unavailable. */
int docker_pull_image(struct docker_ctx *c, const char *image, int64_t deadline,
                      struct berth_err *err) BERTH_MUST_USE;
/* The X-Registry-Auth value for `image`'s registry from the credentials
 * (malloc'd into *out; the caller wipes and frees it), or *out = NULL when
 * there is none for it. A malformed reference is invalid_argument. */
int docker_pulls_auth_header(struct docker_pulls *p, const char *image, int64_t deadline,
                             char **out, struct berth_err *err) BERTH_MUST_USE;
/* backend_ops.pull_stats. */
void docker_pull_stats(void *ctx, struct backend_pull_stats *out);

/* --- Engine JSON (docker_json.c) --- */

/* 1 when a Labels object carries berth.managed=true, else 0. */
int docker_json_is_managed(const cJSON *labels);
/* 1 when a Labels object is managed and of `instance` (no berth.instance
 * label: the "default" instance), else 0. */
int docker_json_is_ours(const cJSON *labels, const char *instance);
/* The berth.instance of a label lookup's value (NULL or "": "default"). */
const char *docker_json_instance_of(const char *value);
/* NULL when a container's inspect (its HostConfig) or list item holds
 * nothing berthd would never create; else what it holds ("privileged",
 * "host network", ...), for the log line. */
const char *docker_json_forged(const cJSON *root);
/* GET /containers/{id}/json's answer, or one item of GET /containers/json,
 * into *out; *out is set only on success (err says why not). */
int docker_json_from_inspect(const cJSON *root, struct backend_container *out,
                             struct berth_err *err);
int docker_json_from_list_item(const cJSON *item, struct backend_container *out,
                               struct berth_err *err);

/* Start the probe thread when c->probe_interval_ms > 0 (0 or -1 with err);
 * stop and join it (nothing when it never started). */
int docker_probe_start(struct docker_ctx *c, struct berth_err *err);
void docker_probe_stop(struct docker_ctx *c);

/* backend_ops.watch: follow GET /events for managed containers. */
int docker_events_watch(void *ctx, int64_t since_unix_ns, const atomic_int *stop,
                        backend_event_fn fn, void *arg, struct berth_err *err);

/* The Docker backend's operations table (docker_backend.c), for the files
 * that call its container operations through the interface. */
extern const struct backend_ops docker_backend_ops;

/* backend_ops.replica_*: replica sets as containers (docker_replicas.c). */
int docker_replica_apply(void *ctx, const struct backend_replica_spec *spec, int64_t deadline,
                         struct backend_apply_result *out, struct berth_err *err);
int docker_replica_get(void *ctx, enum object_kind kind, const char *ns, const char *id,
                       int64_t deadline, struct backend_replica_set *out, struct berth_err *err);
int docker_replica_list(void *ctx, enum object_kind kind, const char *id, int64_t deadline,
                        struct backend_replica_set_list *out, struct berth_err *err);
int docker_replica_delete(void *ctx, enum object_kind kind, const char *ns, const char *id,
                          int64_t deadline, size_t *removed, struct berth_err *err);
/* backend_ops.replica_update and replica_recover (docker_replicas_update.c). */
int docker_replica_update(void *ctx, const struct backend_replica_spec *spec,
                          const struct backend_update_opts *opts, int64_t deadline,
                          struct backend_update_result *out, struct berth_err *err);
int docker_replica_recover(void *ctx, enum object_kind kind, const char *ns, const char *id,
                           int64_t deadline, int *acted, struct berth_err *err);

/* --- logs (docker_logs.c) --- */

/* The body of GET /containers/{id}/logs?timestamps=1 into *out, oldest
 * first: the multiplexed framing (tty 0) or a TTY's raw stream (tty 1,
 * every line stdout). A line split over frames is joined; one without a
 * timestamp gets time 0. -1 when a non-TTY body is not whole frames. */
int docker_logs_parse(const char *data, size_t len, int tty, struct backend_log_list *out,
                      struct berth_err *err) BERTH_MUST_USE;
/* backend_ops.logs. */
int docker_logs_follow(void *ctx, const char *id, const struct backend_log_query *q,
                       int64_t deadline, const atomic_int *stop, backend_log_fn on_line, void *arg,
                       struct berth_err *err);
int docker_logs(void *ctx, const char *id, const struct backend_log_query *q, int64_t deadline,
                struct backend_log_list *out, struct berth_err *err);
/* The same for the output of `base` ("/containers/<full id>", or a Swarm
 * task's "/tasks/<id>"), whose container has a TTY or not: no check that
 * it is berthd's (the caller made it). */
int docker_logs_read(struct docker_ctx *c, const char *base, int tty,
                     const struct backend_log_query *q, int64_t deadline,
                     struct backend_log_list *out, struct berth_err *err);
int docker_logs_stream(struct docker_ctx *c, const char *base, int tty,
                       const struct backend_log_query *q, int64_t deadline, const atomic_int *stop,
                       backend_log_fn on_line, void *arg, struct berth_err *err);

/* --- stats (docker_stats.c) --- */

struct docker_stats;

/* What docker_stats_parse found in one stats object. */
enum docker_stats_parsed {
    DOCKER_STATS_SAMPLE = 0,
    DOCKER_STATS_EMPTY = 1, /* the Engine's all-zero answer for a container that is not running */
};

/* How long a stats stream may stay silent before it is reopened, for a
 * given sample interval (ms): max(interval - 1 s, 3 s). */
int64_t docker_stats_stall_limit_ms(int64_t interval_ms);
/* One Engine stats object (GET /containers/{id}/stats) as *out, the way
 * `docker stats` reads it. Missing or non-numeric fields count as 0, so
 * nothing in *out is ever garbage; precpu is all zero unless the Engine sent
 * a usable one; sampled_at_unix_ms comes from the object's "read" time,
 * else `now_unix_ms`. DOCKER_STATS_SAMPLE: *out filled. DOCKER_STATS_EMPTY:
 * no sample, *out untouched. -1: `root` is not a JSON object. */
int docker_stats_parse(const cJSON *root, int64_t now_unix_ms,
                       struct backend_stats *out) BERTH_MUST_USE;
/* The stats state of c (borrowed; it must outlive the state): no I/O yet.
 * `cgroup_root` (NULL or "": off) and `proc_root` (NULL or "": /proc):
 * where the cgroup source reads running containers' files, keeping at
 * most `max_open_files` open (0: half the open-file limit; < 0: none). */
int docker_stats_new(struct docker_ctx *c, int64_t interval_ms, const char *cgroup_root,
                     const char *proc_root, int64_t max_open_files, struct docker_stats **out,
                     struct berth_err *err) BERTH_MUST_USE;
/* Close every stream (each counted as an Engine call) and free. NULL: nothing. */
void docker_stats_free(struct docker_stats *ds);
/* backend_ops.stats_sweep and backend_ops.stats. */
int docker_stats_sweep(void *ctx, const char *const *ids, size_t n, int64_t deadline,
                       const atomic_int *stop, struct backend_stats_result *out,
                       struct backend_sweep_info *info, struct berth_err *err);
int docker_stats_one(void *ctx, const char *id, int64_t deadline, struct backend_stats *out,
                     struct berth_err *err);

#endif
