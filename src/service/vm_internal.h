/* Private to the VM service's files: the service struct, the container plan
 * of a VM, and what vm_service.c (handlers), vm_plan.c (request -> backend
 * spec), vm_sync.c (rebuild and events) and vm_view.c (responses) call in
 * one another. */
#ifndef BERTH_VM_INTERNAL_H
#define BERTH_VM_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "berth/arena.h"
#include "berth/backend.h"
#include "berth/vm_registry.h"
#include "berth/vm_service.h"
#include "metal/vmprovisioner/v1/vmprovisioner.pb-c.h"

typedef Metal__Vmprovisioner__V1__VmConfig VmConfig;
typedef Metal__Vmprovisioner__V1__ContainerSpec ContainerSpec;
typedef Metal__Vmprovisioner__V1__PortMapping PortMapping;

enum ready_state { READY_DOWN, READY_REBUILDING, READY_OK };

struct vm_service {
    struct vm_service_config cfg; /* immutable but for the two limits below */
    /* cfg.max_vms and cfg.max_vms_per_customer as a reload may change them */
    _Atomic int64_t max_vms;
    _Atomic int64_t max_vms_per_customer;
    struct backend *backend;      /* borrowed */
    struct vm_registry *registry; /* borrowed */
    pthread_mutex_t ready_lock;
    pthread_cond_t ready_cond;
    enum ready_state ready; /* guarded by ready_lock */
};

/* A container spec resolved from a VmConfig; everything in the call arena. */
struct vm_plan {
    struct backend_spec spec;
    struct backend_port *ports;
    const char **env;
    struct backend_label labels[6];
    struct backend_health_check health;
    struct backend_volume *volumes;
    struct backend_label volume_labels[2]; /* berth.kind=vm, berth.vm_id */
};

/* The Engine's name of volume `name` of VM `id`: "berth-<id>-<name>", in
 * the arena (NULL when out of memory). */
const char *vm_plan_volume_name(struct arena *a, const char *id, const char *name);
/* The labels every volume of VM `id` carries, into out[2]. */
void vm_plan_volume_labels(const char *id, struct backend_label out[2]);

/* vm_plan.c. Validate a VmConfig and turn it into the container spec of VM
 * `id` with berthd's labels, in the arena. */
int vm_plan_build(struct arena *a, const char *id, const char *customer, const VmConfig *cfg,
                  int64_t created, struct vm_plan *p, struct berth_err *err) BERTH_MUST_USE;
/* Only the ports of a VmConfig into p (spec.ports, spec.n_ports). */
int vm_plan_ports(struct arena *a, const VmConfig *cfg, struct vm_plan *p,
                  struct berth_err *err) BERTH_MUST_USE;

/* vm_view.c. The stored config of a VM, unpacked into the arena. */
int vm_view_config(struct arena *a, const struct vm_snapshot *snap, VmConfig **out,
                   struct berth_err *err) BERTH_MUST_USE;
/* The GetVmInfo answer of snap, in the arena. snap stays the caller's; its
 * ports and addresses may be changed to what the answer shows. */
int vm_view_info(struct arena *a, const char *backend_name, struct vm_snapshot *snap,
                 ProtobufCMessage **out, struct berth_err *err) BERTH_MUST_USE;
/* The ListVms answer: the page of list (n records sorted by id) after id
 * `after` (NULL: from the start), at most `page` of them, in the arena. */
int vm_view_list(struct arena *a, const Metal__Vmprovisioner__V1__ListVmsRequest *req,
                 const char *after, size_t page, const struct vm_snapshot *list, size_t n,
                 ProtobufCMessage **out, struct berth_err *err) BERTH_MUST_USE;

#endif
