/* metal.vmprovisioner.v1.VmService: validation, the VM state machine, the
 * registry, and the backend calls that make each VM a container. */
#ifndef BERTH_VM_SERVICE_H
#define BERTH_VM_SERVICE_H

#include <stdint.h>

#include "berth/backend.h"
#include "berth/router.h"
#include "berth/vm_registry.h"

struct vm_service_config {
    int stop_timeout_s;    /* ShutdownVm / RebootVm grace period by default */
    int64_t ready_wait_ms; /* how long a call waits for the start-up rebuild */
    /* What one caller may take (a CreateVm over is resource_exhausted
     * naming the limit); 0: no limit. */
    int64_t max_vms;
    int64_t max_vms_per_customer;
    /* Host ports a CreateVm may ask for (0 always: the backend picks);
     * both 0: any. */
    int host_port_min, host_port_max;
};

/* "LOW-HIGH" (1 <= LOW <= HIGH <= 65535) into *lo, *hi; -1 with
 * invalid_argument naming `option` otherwise. */
int vm_service_parse_port_range(const char *option, const char *text, int *lo, int *hi,
                                struct berth_err *err) BERTH_MUST_USE;

struct vm_service;

/* backend and registry are borrowed and must outlive the service. */
struct vm_service *vm_service_new(const struct vm_service_config *cfg, struct backend *backend,
                                  struct vm_registry *registry);
void vm_service_free(struct vm_service *s);
/* New --max-vms and --max-vms-per-customer (a reload); creates from now on
 * are held to them. Safe from any thread. */
void vm_service_set_limits(struct vm_service *s, int64_t max_vms, int64_t max_vms_per_customer);

/* Put the service's handlers into the RPC table. */
int vm_service_register(struct vm_service *s, struct router *r) BERTH_MUST_USE;

/* Bring the registry in line with the backend's containers labelled
 * berth.kind=vm: VMs it lacks are added (id, config, customer, state,
 * container, ports), known ones take the container's state, and entries whose
 * container is confirmed gone are dropped. Run at start and whenever the
 * engine comes back. Labelled containers that cannot be understood are logged
 * and left alone. */
int vm_service_rebuild(struct vm_service *s, int64_t deadline,
                       struct berth_err *err) BERTH_MUST_USE;

/* Apply one engine event (a container started, died, was paused, removed...
 * behind berthd's back or not). Called from the engine watcher thread; may
 * read the container from the backend, never takes a VM's op lock. */
void vm_service_on_event(struct vm_service *s, const struct backend_event *ev);

/* Readiness gate. Until vm_service_set_ready(s, 1), calls wait up to
 * ready_wait_ms while a rebuild is under way (set_rebuilding), and answer
 * unavailable at once when the backend is down. */
void vm_service_set_rebuilding(struct vm_service *s);
void vm_service_set_ready(struct vm_service *s, int ready);
int vm_service_is_ready(struct vm_service *s);

#endif
