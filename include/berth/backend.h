/* The backend interface: what the services need from whatever runs their
 * containers. A const table of operations plus an opaque context (the Docker
 * backend is the first implementation; an in-memory one serves unit tests).
 *
 * Every operation takes a deadline (berth/clock.h) it must respect, fills
 * `err` on failure and returns 0 or -1. Errors are already mapped to Connect
 * codes: not_found when the container is gone, unavailable when the engine
 * cannot be reached, deadline_exceeded, ... */
#ifndef BERTH_BACKEND_H
#define BERTH_BACKEND_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "berth/err.h"
#include "berth/labels.h"
#include "berth/latency.h"

struct backend_port {
    int container_port;
    int host_port;    /* 0 in a spec: the engine picks a free one */
    char protocol[4]; /* "tcp" or "udp" */
};

struct backend_label {
    const char *key;
    const char *value;
};

/* When create pulls the image. */
enum backend_pull_policy {
    BACKEND_PULL_IF_MISSING = 0, /* only when the engine lacks it */
    BACKEND_PULL_ALWAYS,         /* every create (a moved tag is picked up) */
    BACKEND_PULL_NEVER,          /* never: a missing image is failed_precondition */
    /* every create, but a failed pull of an image the engine has still
     * creates from that one (a ":latest" refreshed when its registry can
     * be reached) */
    BACKEND_PULL_REFRESH,
};

/* A container's health check (the Engine runs `test` inside it; exit 0 is
 * healthy). */
struct backend_health_check {
    int disable; /* 1: no check at all, not even the image's (test is then empty) */
    /* The command, exec form; n_test 0: the image's command with the
     * timings below. */
    const char *const *test;
    size_t n_test;
    int64_t interval_ns;     /* 0: the image's, else the Engine's default */
    int64_t timeout_ns;      /* 0: likewise */
    int64_t start_period_ns; /* 0: likewise */
    int retries;             /* 0: likewise */
};

/* A named volume a container mounts. The backend makes it, with its own
 * ownership labels and the spec's volume_labels, unless one of that name is
 * there already; one that is not the backend's own, or lacks one of the
 * volume_labels, or is not a plain local volume, is failed_precondition. */
struct backend_volume {
    const char *name;   /* the volume's name on the engine */
    const char *target; /* absolute path inside the container */
    int read_only;
};

/* What to create. Everything is borrowed for the duration of the call. */
struct backend_spec {
    const char *name;
    const char *image;
    const char *const *cmd; /* replaces the image's CMD when n_cmd > 0 */
    size_t n_cmd;
    const char *const *env; /* "KEY=VALUE" */
    size_t n_env;
    const char *working_dir; /* NULL or "": the image's */
    const struct backend_port *ports;
    size_t n_ports;
    const struct backend_label *labels; /* berth.managed=true is always added */
    size_t n_labels;
    int64_t nano_cpus;          /* 0: no limit */
    int64_t memory_bytes;       /* 0: no limit */
    const char *restart_policy; /* NULL: none; e.g. "unless-stopped" */
    /* The tenant network the container joins (NULL or "": the backend's
     * default; made on demand, removed with its last container) and the
     * names the others on it reach it by. */
    const char *network;
    const char *const *aliases;
    size_t n_aliases;
    int restart_max_retries; /* "on-failure" only: most restarts; 0: no limit */
    enum backend_pull_policy pull_policy;
    const struct backend_health_check *health; /* NULL: the image's check, if any */
    const struct backend_volume *volumes;      /* made (when missing) before the container */
    size_t n_volumes;
    /* Labels every volume of this spec carries: the owner's (kind, id). */
    const struct backend_label *volume_labels;
    size_t n_volume_labels;
};

/* A container's health as its engine reports it. */
enum backend_health {
    BACKEND_HEALTH_UNKNOWN = 0, /* the source does not say (a listing of a paused container) */
    BACKEND_HEALTH_NONE,        /* no check applies */
    BACKEND_HEALTH_STARTING,    /* a check applies; no verdict yet */
    BACKEND_HEALTH_HEALTHY,
    BACKEND_HEALTH_UNHEALTHY,
    BACKEND_HEALTH_COUNT,
};

/* "unknown", "none", "starting", "healthy", "unhealthy"; never NULL. */
const char *backend_health_name(enum backend_health h);
/* The health an engine word names ("starting", "healthy", "unhealthy",
 * "none"); BACKEND_HEALTH_UNKNOWN for any other. */
enum backend_health backend_health_parse(const char *name);

/* A container's state, in berthd's terms (every backend maps its own words
 * to these once). */
enum backend_state {
    BACKEND_STATE_UNKNOWN = 0, /* a word the backend did not know */
    BACKEND_STATE_CREATED,
    BACKEND_STATE_RUNNING,
    BACKEND_STATE_PAUSED,
    BACKEND_STATE_RESTARTING,
    BACKEND_STATE_REMOVING,
    BACKEND_STATE_EXITED,
    BACKEND_STATE_DEAD,
    BACKEND_STATE_COUNT,
};

/* "created", "running", ... ("unknown" for anything else); never NULL. */
const char *backend_state_name(enum backend_state st);
/* The state a name means; BACKEND_STATE_UNKNOWN for a word it is not. */
enum backend_state backend_state_parse(const char *name);

struct backend_kv {
    char *key;
    char *value;
};

/* A container as the backend sees it. Every pointer is heap-owned by the
 * struct; backend_container_release() frees them. Strings are never NULL
 * once filled (empty instead). */
struct backend_container {
    char *id;
    char *name;  /* without the leading '/' */
    char *image; /* the reference it was created from */
    enum backend_state state;
    int oom_killed;
    int exit_code;
    int64_t created_unix;     /* seconds */
    int64_t started_unix_ms;  /* 0 when never started */
    int64_t finished_unix_ms; /* 0 when not finished */
    enum backend_health health;
    int restart_count; /* restarts by the engine's policy; -1: the source does not say */
    char *ip_address;
    char *mac_address;
    char *gateway;
    struct backend_port *ports; /* published ports with their real host ports */
    size_t n_ports;
    struct backend_kv *labels;
    size_t n_labels;
};

struct backend_container_list {
    struct backend_container *items;
    size_t n;
};

void backend_container_release(struct backend_container *c);
void backend_container_list_release(struct backend_container_list *l);
/* The value of a label, or NULL. */
const char *backend_container_label(const struct backend_container *c, const char *key);

/* Something that happened to a managed container, as the engine reported it.
 * Strings are only valid during the callback. */
struct backend_event {
    /* start die oom pause unpause restart destroy ...; "changed": a replica
     * set changed in a way no container event of this Engine tells (a Swarm
     * task on another node), container_id "" and time 0 */
    const char *action;
    const char *container_id;
    const char *kind;      /* the berth.kind label, or "" */
    const char *object_id; /* berth.vm_id / gateway_id / deployment_id, or "" */
    int exit_code;         /* die: the exit code; otherwise -1 */
    int64_t time_unix_ns;  /* when it happened, by the engine's clock */
};

typedef void (*backend_event_fn)(void *arg, const struct backend_event *ev);

/* ---- logs -------------------------------------------------------------- */

/* Which output a log line came from. */
enum backend_log_stream {
    BACKEND_LOG_STDOUT = 1,
    BACKEND_LOG_STDERR = 2,
};

/* Which lines of one container to read. */
struct backend_log_query {
    unsigned tail_lines;   /* the last N lines; 0: every line */
    int64_t since_unix_ms; /* only lines at or after this time; 0: no bound */
    unsigned streams;      /* bits of enum backend_log_stream; 0: both */
    size_t max_bytes;      /* line bytes at most (the newest kept); 0: no bound */
};

/* One line a container printed. */
struct backend_log_entry {
    int64_t time_unix_ns; /* when the engine saw it */
    enum backend_log_stream stream;
    char *line; /* heap-owned, NUL-terminated, no newline, valid UTF-8 without NUL */
    size_t len;
};

/* Lines oldest first; backend_log_list_release() frees them. */
struct backend_log_list {
    struct backend_log_entry *items;
    size_t n;
    int truncated; /* max_bytes dropped older lines that matched */
};

void backend_log_list_release(struct backend_log_list *l);
/* Append a copy of `len` bytes as one line: invalid UTF-8 and NUL bytes are
 * replaced by U+FFFD, a trailing '\r' dropped. -1 (resource_exhausted) when
 * out of memory. */
int backend_log_list_add(struct backend_log_list *l, int64_t time_unix_ns,
                         enum backend_log_stream stream, const char *line, size_t len,
                         struct berth_err *err) BERTH_MUST_USE;
/* One line of a followed output; nonzero stops the following. */
typedef int (*backend_log_fn)(void *arg, const struct backend_log_entry *e);
/* Apply `q` to a list oldest first (the stream filter, since, tail, then
 * max_bytes keeping the newest), in place. */
void backend_log_list_filter(struct backend_log_list *l, const struct backend_log_query *q);

/* ---- replica sets ----------------------------------------------------- */

/* Gateways and deployments: N replicas of one spec, known by (kind, id). How
 * a backend makes them is its own business (N containers, one Swarm
 * service); the services only see the set and its instances. */

#define BACKEND_MAX_REPLICAS 100

/* What to apply. Everything is borrowed for the duration of the call. */
struct backend_replica_spec {
    enum object_kind kind; /* OBJECT_GATEWAY or OBJECT_DEPLOYMENT */
    const char *ns;        /* the namespace, "" for none */
    const char *id;        /* unique within the kind, whatever the namespace */
    unsigned replicas;     /* 1 .. BACKEND_MAX_REPLICAS */
    /* Names the template (everything but the replica count): an apply
     * with the digest and count the set has is a retry of the same spec;
     * an update with the same digest and another count only scales. */
    const char *digest;
    /* NULL, or a NULL-terminated list of environment names each replica
     * gets, every one set to "<id>-<index>" (a name and its aliases). */
    const char *const *instance_envs;
    /* What every replica runs. name is ignored (the backend names them);
     * labels are added to the backend's own (kind, id, namespace, index,
     * digest, replica count, generation). */
    struct backend_spec tmpl;
};

/* One instance of a set. Heap-owned by the set it is in. */
struct backend_replica {
    char *handle; /* the backend's name for it (a container id, a task id): for logs */
    unsigned index;
    enum backend_state state;
    char *host;                 /* where its ports are published; "": this host */
    struct backend_port *ports; /* published ports with their real host ports */
    size_t n_ports;
    char *image; /* the image reference it runs; "" when unknown */
    enum backend_health health;
};

/* A set as the backend sees it. Every pointer is heap-owned;
 * backend_replica_set_release() frees them. */
struct backend_replica_set {
    enum object_kind kind;
    char *ns;
    char *id;
    unsigned wanted;               /* replicas the set was applied with; 0: unknown */
    struct backend_replica *items; /* sorted by index; an index may repeat */
    size_t n;
    /* An update did not finish (berthd stopped half way) or left something
     * behind: replica_recover settles it. */
    int unsettled;
};

struct backend_replica_set_list {
    struct backend_replica_set *items; /* sorted by id, then namespace */
    size_t n;
};

/* What an apply did, for the caller's log. */
struct backend_apply_result {
    size_t existing; /* replicas that were there already */
    size_t added;    /* replicas this call made */
    size_t woken;    /* existing ones it started or unpaused */
};

/* How an update replaces instances. */
struct backend_update_opts {
    unsigned parallelism;     /* instances replaced at a time; 0: 1 */
    int64_t ready_timeout_ms; /* a new instance may take this long to be ready; 0: the deadline */
    /* A new instance is ready once it has run this long without a restart
     * (and, where it has a health check, is healthy); 0: once it runs. */
    int64_t min_ready_ms;
    /* An old instance leaves the set's answers this long before it is
     * stopped, so clients that just read its address still reach it. */
    int64_t drain_ms;
};

/* What an update did, for the caller's log. */
struct backend_update_result {
    size_t replaced; /* instances replaced by ones of the new spec */
    size_t added;    /* instances added at new indexes */
    size_t removed;  /* instances removed at the highest indexes */
};

void backend_replica_set_release(struct backend_replica_set *s);
void backend_replica_set_list_release(struct backend_replica_set_list *l);
/* --- resource samples --------------------------------------------------------- */

/* Cumulative CPU counters of one reading; a percent needs two of them. */
struct backend_cpu {
    uint64_t total_ns;    /* CPU time the container used since it started */
    uint64_t system_ns;   /* CPU time of the whole host (all CPUs) */
    uint32_t online_cpus; /* CPUs the host had at the reading */
};

/* 1 when both counters were read (nonzero), else 0. */
int backend_cpu_valid(const struct backend_cpu *c);
/* CPU use between `base` and `cur`, 100 being one busy host CPU (the way
 * docker stats computes it), capped at online_cpus * 100. 0 when either
 * reading is not valid, a counter went backwards (a restart) or the host's
 * did not move. */
double backend_cpu_percent(const struct backend_cpu *cur, const struct backend_cpu *base);

enum backend_stats_source {
    BACKEND_STATS_FAKE = 0, /* the memory backend's test values */
    BACKEND_STATS_ENGINE,   /* the Engine's stats API */
    BACKEND_STATS_CGROUP,   /* the kernel's cgroup and /proc files */
};

/* One resource sample of one container, in berthd's terms. */
struct backend_stats {
    int64_t sampled_at_unix_ms; /* when the source took it */
    enum backend_stats_source source;
    struct backend_cpu cpu;
    /* The source's own reading before `cpu`, when it keeps one (the
     * Engine's precpu_stats); all zero when not. The better base for a
     * percent than an older reading the caller kept. */
    struct backend_cpu precpu;
    int64_t memory_bytes;       /* usage without reclaimable page cache, as docker stats shows */
    int64_t memory_limit_bytes; /* 0: not known */
    int64_t rx_bytes, tx_bytes, rx_packets, tx_packets;   /* all interfaces */
    int64_t read_bytes, write_bytes, read_ops, write_ops; /* all block devices */
    int64_t pids;                                         /* processes and threads; 0: not known */
};

/* What a sweep found for one container. */
enum backend_sample {
    BACKEND_SAMPLE_NONE = 0, /* nothing new (yet, or it is not running) */
    BACKEND_SAMPLE_NEW,      /* `stats` holds a sample no earlier sweep gave */
    BACKEND_SAMPLE_ERROR,    /* `err` says why there is none */
};

struct backend_stats_result {
    enum backend_sample status;
    struct backend_stats stats; /* BACKEND_SAMPLE_NEW */
    struct berth_err err;       /* BACKEND_SAMPLE_ERROR */
};

/* What one sweep says about itself (the counters /metrics shows). */
struct backend_sweep_info {
    int complete;    /* every container had an answer (new, none or error) by the deadline */
    uint64_t errors; /* failures met during the sweep: failed or stalled reads, bad samples */
    uint64_t open;   /* connections kept open between sweeps (Engine stats streams) */
    /* Monotonic ms at which the backend's next pass over every container
     * is due (0: no time of its own): the caller sweeps again by then, so
     * the pass is not late by the caller's own pace. */
    int64_t next_due_ms;
};

/* --- call counters ------------------------------------------------------------ */

enum backend_outcome {
    BACKEND_OUTCOME_OK,              /* 1xx-3xx answer */
    BACKEND_OUTCOME_CLIENT_ERROR,    /* 4xx answer */
    BACKEND_OUTCOME_SERVER_ERROR,    /* 5xx answer */
    BACKEND_OUTCOME_TRANSPORT_ERROR, /* no answer: refused, timeout, canceled */
    BACKEND_OUTCOME_COUNT
};
const char *backend_outcome_name(enum backend_outcome o); /* "ok", "client_error", ... */

#define BACKEND_OP_NAME_MAX 64

/* The counters of one kind of call the backend makes to its engine, e.g.
 * "POST /containers/{id}/start". */
struct backend_call_stats {
    char op[BACKEND_OP_NAME_MAX];
    uint64_t by_outcome[BACKEND_OUTCOME_COUNT];
    uint64_t latency_bucket[LATENCY_BUCKETS]; /* non-cumulative, bounds in berth/latency.h */
    uint64_t count;                           /* all calls (the +Inf bucket) */
    double latency_sum_s;
};

/* --- image pulls ---------------------------------------------------------- */

enum backend_pull_outcome {
    BACKEND_PULL_OK,
    BACKEND_PULL_NOT_FOUND,   /* the registry has no such image */
    BACKEND_PULL_DENIED,      /* the registry refused the credential (or its absence) */
    BACKEND_PULL_UNAVAILABLE, /* registry or engine unreachable, stalled, cut short */
    BACKEND_PULL_TIMEOUT,     /* --pull-timeout or the caller's deadline */
    BACKEND_PULL_OTHER_ERROR, /* anything else */
    BACKEND_PULL_OUTCOME_COUNT
};
const char *backend_pull_outcome_name(enum backend_pull_outcome o); /* "ok", "not_found", ... */

/* The counters of the pulls a backend made (shared ones count once). */
struct backend_pull_stats {
    uint64_t by_outcome[BACKEND_PULL_OUTCOME_COUNT];
    uint64_t latency_bucket[LATENCY_BUCKETS]; /* non-cumulative, bounds in berth/latency.h */
    uint64_t count;
    double latency_sum_s;
    uint64_t bytes; /* layer bytes downloaded, as the engine's progress reported them */
};

struct backend_ops {
    const char *name; /* "docker", "memory" */

    /* Is the engine there? (readiness) */
    int (*ping)(void *ctx, int64_t deadline, struct berth_err *err);

    /* Create a container (pulling the image only when the engine lacks it).
     * On success *id_out is a malloc'd container id the caller frees. A name
     * in use: already_exists. A missing image: not_found naming it. On
     * failure nothing of this call is left: when the engine may have made the
     * container anyway (no answer before the deadline, a dropped connection)
     * the backend removes it, if it can, before returning; the caller must
     * not remove by name, as the name may hold someone else's container. */
    int (*create)(void *ctx, const struct backend_spec *spec, int64_t deadline, char **id_out,
                  struct berth_err *err);
    /* Already running / already stopped count as success. */
    int (*start)(void *ctx, const char *id, int64_t deadline, struct berth_err *err);
    int (*stop)(void *ctx, const char *id, int timeout_s, int64_t deadline, struct berth_err *err);
    int (*kill)(void *ctx, const char *id, int64_t deadline, struct berth_err *err);
    int (*pause)(void *ctx, const char *id, int64_t deadline, struct berth_err *err);
    int (*unpause)(void *ctx, const char *id, int64_t deadline, struct berth_err *err);
    int (*restart)(void *ctx, const char *id, int timeout_s, int64_t deadline,
                   struct berth_err *err);
    /* Force-remove with anonymous volumes. Gone already: not_found. */
    int (*remove)(void *ctx, const char *id, int64_t deadline, struct berth_err *err);
    /* Remove the named volume `name` when it is the backend's own and
     * carries every label of must[0..n_must); any other volume, or none, is
     * not_found (and left alone). One still mounted: failed_precondition.
     * NULL when the backend has no volumes. */
    int (*remove_volume)(void *ctx, const char *name, const struct backend_label *must,
                         size_t n_must, int64_t deadline, struct berth_err *err);
    /* Only containers labelled berth.managed=true: any other is not_found. */
    int (*inspect)(void *ctx, const char *id, int64_t deadline, struct backend_container *out,
                   struct berth_err *err);
    /* All containers labelled berth.managed=true (and `label`="k=v" when not
     * NULL), stopped ones included. */
    int (*list)(void *ctx, const char *label, int64_t deadline, struct backend_container_list *out,
                struct berth_err *err);

    /* One sample of running container `id` into *out, read now. Not
     * running: failed_precondition; *out is set only on success. NULL (with
     * stats_sweep) when the backend has no stats. */
    int (*stats)(void *ctx, const char *id, int64_t deadline, struct backend_stats *out,
                 struct berth_err *err);
    /* One sweep over the running containers ids[0..n): out[i] gets what is
     * new for ids[i] since the last sweep (each sample is given once), and
     * *info how the sweep went. Returns once every container has an answer,
     * at `deadline`, or soon after *stop (NULL: none) becomes nonzero; the
     * set may change between sweeps, and what a backend keeps for a
     * container (a stream) goes when it is no longer asked for. One caller
     * at a time. -1 only when no sweep could run at all (out untouched). */
    int (*stats_sweep)(void *ctx, const char *const *ids, size_t n, int64_t deadline,
                       const atomic_int *stop, struct backend_stats_result *out,
                       struct backend_sweep_info *info, struct berth_err *err);
    /* A copy of the counters of every kind of engine call made so far,
     * ordered by name; *out is the caller's to free(). -1 when out of
     * memory. NULL when the backend makes no such calls. */
    int (*call_stats)(void *ctx, struct backend_call_stats **out, size_t *n);
    /* A copy of the pull counters into *out. NULL when the backend never pulls. */
    void (*pull_stats)(void *ctx, struct backend_pull_stats *out);

    /* Follow what happens to managed containers from `since_unix_ns` on
     * (events already past are replayed), calling fn for each, until *stop
     * becomes nonzero (then 0, within about a second) or the stream breaks
     * (-1, unavailable). NULL when the backend has no event stream. */
    int (*watch)(void *ctx, int64_t since_unix_ns, const atomic_int *stop, backend_event_fn fn,
                 void *arg, struct berth_err *err);

    /* ---- replica sets (NULL when the backend has none) ---- */

    /* Make the set `spec` describes whole: replicas it lacks are made and
     * started, existing ones that were stopped, never started or paused are
     * woken; a retry of the same spec is success. A set of that (kind, id)
     * with another digest, namespace or replica count: already_exists,
     * nothing changed. On failure what this call made is removed again (best
     * effort, past the deadline by a little), what existed before stays.
     * *out, when not NULL, says what was done. Callers serialise apply and
     * delete of one set. */
    int (*replica_apply)(void *ctx, const struct backend_replica_spec *spec, int64_t deadline,
                         struct backend_apply_result *out, struct berth_err *err);
    /* The instances of (kind, ns, id), into *out (the caller releases it):
     * one per index, the one that serves it while an update replaces it.
     * None in that namespace: not_found, *out untouched. */
    int (*replica_get)(void *ctx, enum object_kind kind, const char *ns, const char *id,
                       int64_t deadline, struct backend_replica_set *out, struct berth_err *err);
    /* Every set of the kind (of that id, in any namespace, when id is not
     * NULL), into *out (the caller releases it); none is an empty list. */
    int (*replica_list)(void *ctx, enum object_kind kind, const char *id, int64_t deadline,
                        struct backend_replica_set_list *out, struct berth_err *err);
    /* Remove every instance of (kind, ns, id); none left, or none at all, is
     * success (*removed, when not NULL, counts what went). On a failure the
     * other instances are still tried; the first failure is the answer and
     * the instances that failed stay. */
    int (*replica_delete)(void *ctx, enum object_kind kind, const char *ns, const char *id,
                          int64_t deadline, size_t *removed, struct berth_err *err);
    /* Bring the existing set of (kind, spec->ns, spec->id) to `spec`: the
     * same digest and count is success with nothing touched; another count
     * of the same template adds instances at the next indexes or removes the
     * highest (a Swarm removes whichever it likes: replica_get then shows
     * the indexes left); anything else replaces instances opts->parallelism at a time,
     * each new one ready before the old one goes. When a new instance fails
     * to become ready (failed_precondition, or deadline_exceeded past
     * opts->ready_timeout_ms or the deadline) what was replaced is rolled
     * back and every new instance removed: the set is as before the call.
     * None in that namespace: not_found. What the update is doing survives
     * a crash of the caller: replica_recover finishes or undoes it. Callers
     * serialise update, apply, recover and delete of one set. NULL when the
     * backend cannot update sets. */
    int (*replica_update)(void *ctx, const struct backend_replica_spec *spec,
                          const struct backend_update_opts *opts, int64_t deadline,
                          struct backend_update_result *out, struct berth_err *err);
    /* Settle a set that replica_list or replica_get showed `unsettled`: an
     * update a crash interrupted is finished when every new instance is
     * there and ready, else rolled back; what an update left behind goes.
     * *acted (when not NULL) says whether anything changed. A settled set,
     * or none, is success. NULL when sets are never left unsettled. */
    int (*replica_recover)(void *ctx, enum object_kind kind, const char *ns, const char *id,
                           int64_t deadline, int *acted, struct berth_err *err);

    /* The lines container `id` printed that `q` asks for, oldest first,
     * into *out (the caller releases it). Only managed containers: any
     * other is not_found. NULL when the backend keeps no logs. */
    int (*logs)(void *ctx, const char *id, const struct backend_log_query *q, int64_t deadline,
                struct backend_log_list *out, struct berth_err *err);
    /* Follow container `id`'s output: each line printed at or after
     * q->since_unix_ms (q's stream filter applies; tail and max_bytes do
     * not) to on_line as the Engine sees it, until the output ends (the
     * container stopped or went: 0), *stop becomes nonzero (0, within about
     * a second), the deadline passes, or on_line returns nonzero (0). Only
     * managed containers. NULL when the backend cannot follow. */
    int (*logs_follow)(void *ctx, const char *id, const struct backend_log_query *q,
                       int64_t deadline, const atomic_int *stop, backend_log_fn on_line, void *arg,
                       struct berth_err *err);

    /* Shutdown: make the calls under way end soon and later ones fail at
     * once (unavailable). NULL when no call can block for long. */
    void (*cancel_all)(void *ctx);

    void (*destroy)(void *ctx);
};

struct backend {
    const struct backend_ops *ops;
    void *ctx;
};

/* Release a backend's context; a zeroed backend is fine. */
void backend_destroy(struct backend *b);
/* ops->cancel_all when the backend has one; a zeroed backend is fine. */
void backend_cancel_all(struct backend *b);
/* 1 when the backend offers stats (stats_sweep), else 0; a zeroed backend is fine. */
int backend_has_stats(const struct backend *b);

#endif
