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

#endif
