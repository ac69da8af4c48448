/* krane.v1.GatewayService and krane.v1.DeploymentService on the backend's
 * replica sets: each gateway or deployment is one set of N replicas of one
 * image. One set of handlers serves both services through a per-kind table:
 * validate, map the krane message to a replica spec, answer. Get answers
 * live from the backend; a cache of the last known answers
 * (berth/replica_cache.h) serves Get while the Engine is unreachable, and
 * List always. Update scales a set or replaces its replicas one batch at a
 * time, with the backend's replica_update. */
#ifndef BERTH_REPLICA_SERVICE_H
#define BERTH_REPLICA_SERVICE_H

#include <stdint.h>

#include "berth/backend.h"
#include "berth/replica_cache.h"
#include "berth/router.h"

struct replica_service_config {
    int gateway_port;            /* container port of gateway replicas */
    int deployment_port;         /* container port of deployment replicas */
    const char *advertise_host;  /* host in addresses; NULL or "": publish_address */
    const char *publish_address; /* host IP published ports bind to */
    /* Gateway and deployment replicas there may be in all (a Create that
     * would go over is resource_exhausted); 0: no limit. */
    int64_t max_replicas_total;
    /* Updates: replicas replaced at a time (0: 1), how long a new one may
     * take to be ready (0: the call's deadline), how long it must run to
     * be ready, how long an old one leaves the answers before it stops. */
    unsigned update_parallelism;
    int64_t update_ready_timeout_ms;
    int64_t update_min_ready_ms;
    int64_t update_drain_ms;
};

struct replica_service;

/* cfg's strings are copied; backend is borrowed and must outlive the
 * service. NULL when out of memory. */
struct replica_service *replica_service_new(const struct replica_service_config *cfg,
                                            struct backend *backend);
/* Wait for nothing: callers stop the HTTP server first. NULL does nothing. */
void replica_service_free(struct replica_service *s);
/* A new --max-replicas-total (a reload) for creates from now on. Safe from
 * any thread. */
void replica_service_set_limit(struct replica_service *s, int64_t max_replicas_total);

/* Put the handlers of both services into the RPC table. */
int replica_service_register(struct replica_service *s, struct router *r) BERTH_MUST_USE;

/* Bring the cache of last known answers in line with the backend: settle
 * the sets an update left half way when berthd stopped (finished or rolled
 * back, see backend_ops.replica_recover), then list every gateway and
 * deployment set, store each object's answer and forget the objects that
 * have none left. Run at start and whenever the engine comes back. On
 * failure the cache is left as it was. */
int replica_service_sync(struct replica_service *s, int64_t deadline,
                         struct berth_err *err) BERTH_MUST_USE;

/* Entries in the cache, the forgotten objects it still remembers included
 * (for tests: lookups of unknown ids must not make it grow). */
size_t replica_service_cached(struct replica_service *s);
/* The cache of last known answers (for watchers of its changes). */
struct replica_cache *replica_service_cache(struct replica_service *s);

/* Apply one engine event: for a gateway or deployment replica that
 * started, died, was paused, unpaused or removed, list its set again
 * (backend I/O, no lock held) and store the answer. Called from the engine
 * watcher thread; other kinds and other actions are ignored. */
void replica_service_on_event(struct replica_service *s, const struct backend_event *ev);

#endif
