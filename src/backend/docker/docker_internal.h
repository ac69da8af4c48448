/* Private to the Docker backend's files: its context and the pieces split
 * into their own files. */
#ifndef BERTH_DOCKER_INTERNAL_H
#define BERTH_DOCKER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "berth/backend.h"
#include "berth/engine_client.h"

/* Immutable after docker_backend_new (but for the probe's stop flag, which
 * has its lock), so shared by all threads; the engine client locks its own
 * pool. */
struct docker_ctx {
    struct engine *engine; /* owned */
    char *publish_address; /* owned */
    int64_t pids_limit;    /* <= 0: no limit */

    /* The probe thread (docker_backend_config.probe_interval_ms). */
    int64_t probe_interval_ms; /* immutable */
    pthread_t prober;
    int prober_started; /* immutable once docker_backend_new returned */
    pthread_mutex_t probe_lock;
    pthread_cond_t probe_wake;
    int probe_stop; /* probe_lock */
};

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

#endif
