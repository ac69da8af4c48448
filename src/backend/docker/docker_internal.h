/* Private to the Docker backend's files: its context and the pieces split
 * into their own files. */
#ifndef BERTH_DOCKER_INTERNAL_H
#define BERTH_DOCKER_INTERNAL_H

#include <stdatomic.h>
#include <stdint.h>

#include "berth/backend.h"
#include "berth/engine_client.h"

/* Immutable after docker_backend_new, so shared by all threads without a
 * lock; the engine client locks its own pool. */
struct docker_ctx {
    struct engine *engine; /* owned */
    char *publish_address; /* owned */
    int64_t pids_limit;    /* <= 0: no limit */
};

/* backend_ops.watch: follow GET /events for managed containers. */
int docker_events_watch(void *ctx, int64_t since_unix_ns, const atomic_int *stop,
                        backend_event_fn fn, void *arg, struct berth_err *err);

#endif
