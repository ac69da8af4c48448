/* berth.v1.EventService/Watch: a SNAPSHOT event per matching object, then
 * every change as the registry (VMs) and the replica service (gateways and
 * deployments) make it, through the event bus. A watcher is a bus sink that
 * sends into its stream without waiting; one too slow for its queue is cut
 * off (resource_exhausted) and the others go on unslowed. */
#ifndef BERTH_EVENT_SERVICE_H
#define BERTH_EVENT_SERVICE_H

#include "berth/event_bus.h"
#include "berth/router.h"
#include "berth/vm_registry.h"

struct event_service;

/* Snapshots of gateways and deployments, taken the way vm_registry_snapshot
 * takes the VMs' (each object, then `then`, with no change between). NULL
 * when there are none. */
typedef int (*replica_snapshot_fn)(void *ctx, void (*each)(void *arg, const struct watch_event *ev),
                                   void *arg, int (*then)(void *then_arg), void *then_arg);

struct event_service_sources {
    struct event_bus *bus;        /* borrowed */
    struct vm_registry *vms;      /* borrowed */
    replica_snapshot_fn replicas; /* NULL: VMs only */
    void *replicas_ctx;
};

/* NULL when out of memory. */
struct event_service *event_service_new(const struct event_service_sources *src);
void event_service_free(struct event_service *s); /* NULL does nothing */
int event_service_register(struct event_service *s, struct router *r) BERTH_MUST_USE;

/* The registry's listener (vm_registry_set_listener): publishes on the bus. */
void event_service_vm_changed(void *bus, enum vm_change what, const struct vm_snapshot *vm,
                              const char *reason);

#endif
