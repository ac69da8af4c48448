/* krane.v1.GatewayService and krane.v1.DeploymentService: each gateway or
 * deployment is N identical replica containers of one image. One generic
 * implementation serves both through a per-kind table; the objects are found
 * again through container labels. Get answers live from the Engine; a cache
 * of the last known answers serves Get while the Engine is unreachable. */
#ifndef BERTH_GATEWAY_SERVICE_H
#define BERTH_GATEWAY_SERVICE_H

#include <stdint.h>

#include "berth/backend.h"
#include "berth/router.h"

struct gateway_service_config {
    int gateway_port;            /* container port of gateway replicas */
    int deployment_port;         /* container port of deployment replicas */
    const char *advertise_host;  /* host in addresses; NULL or "": publish_address */
    const char *publish_address; /* host IP published ports bind to */
};

struct gateway_service;

/* cfg's strings are copied; backend is borrowed and must outlive the
 * service. NULL when out of memory. */
struct gateway_service *gateway_service_new(const struct gateway_service_config *cfg,
                                            struct backend *backend);
/* Wait for nothing: callers stop the HTTP server first. NULL does nothing. */
void gateway_service_free(struct gateway_service *s);

/* Put the handlers of both services into the RPC table. */
int gateway_service_register(struct gateway_service *s, struct router *r) BERTH_MUST_USE;

/* Bring the cache of last known answers in line with the backend: list every
 * container labelled berth.kind=gateway or deployment, store each object's
 * answer and forget the objects that have no container left. Run at start
 * and whenever the engine comes back. On failure the cache is left as it was. */
int gateway_service_sync(struct gateway_service *s, int64_t deadline,
                         struct berth_err *err) BERTH_MUST_USE;

/* Entries in the cache, the forgotten objects it still remembers included
 * (for tests: lookups of unknown ids must not make it grow). */
size_t gateway_service_cached(struct gateway_service *s);

/* Apply one engine event: for a gateway or deployment container that
 * started, died, was paused, unpaused or removed, re-list its object (Engine
 * I/O, no lock held) and store the answer. Called from the engine watcher
 * thread; other kinds and other actions are ignored. */
void gateway_service_on_event(struct gateway_service *s, const struct backend_event *ev);

#endif
