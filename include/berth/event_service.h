/* berth.v1.EventService/Watch: a SNAPSHOT event per matching object, then
 * every change as the registry (VMs) and the replica service (gateways and
 * deployments) make it, through the event bus. A watcher is a bus sink that
 * sends into its stream without waiting; one too slow for its queue is cut
 * off (resource_exhausted) and the others go on unslowed. */
#ifndef BERTH_EVENT_SERVICE_H
#define BERTH_EVENT_SERVICE_H

#include "berth/event_bus.h"
#include "berth/replica_cache.h"
#include "berth/router.h"
#include "berth/vm_registry.h"

struct event_service;

struct event_service_sources {
    struct event_bus *bus;          /* borrowed */
    struct vm_registry *vms;        /* borrowed */
    struct replica_cache *replicas; /* borrowed; NULL: VMs only */
};

/* NULL when out of memory. */
struct event_service *event_service_new(const struct event_service_sources *src);
void event_service_free(struct event_service *s); /* NULL does nothing */
int event_service_register(struct event_service *s, struct router *r) BERTH_MUST_USE;

/* The registry's listener (vm_registry_set_listener): publishes on the bus. */
void event_service_vm_changed(void *bus, enum vm_change what, const struct vm_snapshot *vm,
                              const char *reason);
/* The replica cache's listener (replica_cache_set_listener): the same. */
void event_service_replica_changed(void *bus, enum replica_change what, enum object_kind kind,
                                   const char *ns, const char *id,
                                   const struct replica_cache_summary *sum);

#endif
