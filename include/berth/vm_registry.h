/* The VM registry: id -> VM record, in memory, behind one mutex that is never
 * held across Engine I/O. Each record also carries an operation lock so that
 * lifecycle calls on one VM run one after another while calls on different
 * VMs run side by side. Lock order: a record's op lock, then the registry
 * mutex (never the other way round). */
#ifndef BERTH_VM_REGISTRY_H
#define BERTH_VM_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "berth/backend.h"
#include "berth/err.h"

/* Same numbers as metal.vmprovisioner.v1.VmState. */
enum vm_state {
    VM_STATE_UNSPECIFIED = 0,
    VM_STATE_CREATED = 1,
    VM_STATE_RUNNING = 2,
    VM_STATE_PAUSED = 3,
    VM_STATE_SHUTDOWN = 4,
};

const char *vm_state_name(enum vm_state s); /* "VM_STATE_RUNNING" */

/* The latest resource sample of a VM (filled by the metrics collector). */
struct vm_metrics {
    double cpu_percent;
    uint64_t cpu_total_ns; /* CPU time the container used since it started */
    int64_t memory_bytes;
    int64_t rx_bytes, tx_bytes, rx_packets, tx_packets;
    int64_t read_bytes, write_bytes, read_ops, write_ops;
    int64_t pids;                     /* processes and threads; 0: not known */
    int64_t sampled_at_unix_ms;       /* 0: never sampled */
    enum backend_stats_source source; /* where the sample came from */
};

/* A copy of a record's data, owned by whoever received it:
 * vm_snapshot_release() frees it. */
struct vm_snapshot {
    char *id;
    char *customer_id;
    enum vm_state state;
    uint8_t *config; /* packed VmConfig as submitted */
    size_t config_len;
    char *container_id;
    char *container_name;
    char *image;
    char *ip_address;
    char *mac_address;
    char *gateway;
    struct backend_port *ports; /* real host ports, once known */
    size_t n_ports;
    int32_t vcpu_count;
    int64_t memory_bytes;
    int64_t created_unix;
    int64_t modified_unix;
    int64_t started_unix_ms; /* 0: not running */
    int oom_killed;
    int exit_code;
    enum backend_health health; /* as the Engine last said */
    int restart_count;          /* restarts by the Engine's policy, from its inspect */
    struct vm_metrics metrics;
};

void vm_snapshot_release(struct vm_snapshot *s);
/* Deep copy; -1 when out of memory (dst then holds nothing to free). */
int vm_snapshot_copy(struct vm_snapshot *dst, const struct vm_snapshot *src) BERTH_MUST_USE;

struct vm_registry;
struct vm_record; /* opaque; held between acquire and release */

struct vm_registry *vm_registry_new(void);
void vm_registry_free(struct vm_registry *r);

/* Insert a new record for `init->id` (deep-copied) and return it with its
 * op lock held. The record stays invisible to lookups, lists and other
 * acquires until vm_registry_publish(). A known id: already_exists. */
int vm_registry_reserve(struct vm_registry *r, const struct vm_snapshot *init,
                        struct vm_record **out, struct berth_err *err) BERTH_MUST_USE;
/* Make a reserved record visible. */
void vm_registry_publish(struct vm_registry *r, struct vm_record *rec);

/* Find a visible record by id and take its op lock, waiting for calls under
 * way on the same VM until `deadline` (then deadline_exceeded). not_found
 * when unknown or removed meanwhile. */
int vm_registry_acquire(struct vm_registry *r, const char *id, int64_t deadline,
                        struct vm_record **out, struct berth_err *err) BERTH_MUST_USE;
/* Drop the op lock and the reference taken by reserve or acquire. */
void vm_registry_release(struct vm_registry *r, struct vm_record *rec);

/* How much Engine news (vm_registry_observe) a record has taken in: take it
 * when a call begins, hand it to vm_registry_commit when the call ends. */
uint64_t vm_registry_stamp(struct vm_registry *r, struct vm_record *rec);
/* vm_registry_write for a call that acted on the Engine: when news arrived
 * after `stamp`, the observed state, start time, exit code and OOM flag are
 * kept instead of the caller's, so a change the Engine reported meanwhile
 * (a container that died right after its start) is not overwritten. */
int vm_registry_commit(struct vm_registry *r, struct vm_record *rec, const struct vm_snapshot *data,
                       uint64_t stamp, struct berth_err *err) BERTH_MUST_USE;

/* A count that moves with every change to the records but a new metrics
 * sample: whoever copies the list to follow ids, containers and states
 * needs no new copy while it stays the same. */
uint64_t vm_registry_generation(struct vm_registry *r);

/* Copy a held record's data (under the registry mutex). */
int vm_registry_read(struct vm_registry *r, struct vm_record *rec, struct vm_snapshot *out,
                     struct berth_err *err) BERTH_MUST_USE;
/* Replace a held record's data with a copy of `data` (id is kept; metrics are
 * kept unless data->metrics.sampled_at_unix_ms is set). */
int vm_registry_write(struct vm_registry *r, struct vm_record *rec, const struct vm_snapshot *data,
                      struct berth_err *err) BERTH_MUST_USE;
/* Unlink a held record: later lookups answer not_found. */
void vm_registry_remove(struct vm_registry *r, struct vm_record *rec);

/* Copy one visible VM by id without taking its op lock. */
int vm_registry_get(struct vm_registry *r, const char *id, struct vm_snapshot *out,
                    struct berth_err *err) BERTH_MUST_USE;
/* Copy every visible VM, ordered by id. Free with vm_snapshot_list_free(). */
int vm_registry_list(struct vm_registry *r, struct vm_snapshot **out, size_t *n,
                     struct berth_err *err) BERTH_MUST_USE;
void vm_snapshot_list_free(struct vm_snapshot *list, size_t n);

/* Update fields from outside the op lock (events, collector). -1 when the id
 * is unknown. */
int vm_registry_set_metrics(struct vm_registry *r, const char *id, const struct vm_metrics *m);
int vm_registry_set_state(struct vm_registry *r, const char *id, enum vm_state state,
                          int oom_killed, int exit_code);
/* What the engine says about a VM's container, applied without the VM's op
 * lock (so a long call on one VM never delays news about another). */
struct vm_observed {
    const char *container_id; /* must be the record's container, else ignored */
    enum vm_state state;      /* VM_STATE_UNSPECIFIED: keep */
    int oom_killed;           /* -1: keep */
    int exit_code;            /* -1: keep */
    /* NULL, or details read from the engine: IP, MAC, gateway, ports (when
     * any), start time and restart count (when known). */
    const struct backend_container *details;
    enum backend_health health; /* BACKEND_HEALTH_UNKNOWN: keep */
};

/* 0 when applied; -1 when the id is unknown or names another container. */
int vm_registry_observe(struct vm_registry *r, const char *id, const struct vm_observed *o);
/* A DeleteVm holding rec is removing its container (1) or gave up (0):
 * meanwhile forget leaves the VM to it. */
void vm_registry_set_deleting(struct vm_registry *r, struct vm_record *rec, int on);
/* Drop the VM whose container is container_id (removed behind berthd's back).
 * Callers holding the record keep a valid (removed) record. -1 when no such. */
int vm_registry_forget(struct vm_registry *r, const char *id, const char *container_id);

/* Changes of visible VMs, told to one listener (the event bus) under the
 * registry's lock, so they come in the order they were made. The listener
 * must not call back into the registry. `reason` is "" when the change was
 * an API call's, else what the Engine said ("oom", "exited 137", "removed
 * behind berthd's back"). */
enum vm_change { VM_CHANGE_SNAPSHOT, VM_CHANGE_CREATED, VM_CHANGE_CHANGED, VM_CHANGE_DELETED };
typedef void (*vm_listener_fn)(void *arg, enum vm_change what, const struct vm_snapshot *vm,
                               const char *reason);
void vm_registry_set_listener(struct vm_registry *r, vm_listener_fn fn, void *arg);
/* Under the lock: each(arg, VM_CHANGE_SNAPSHOT, vm, "") for every visible
 * VM, then then(then_arg) (a subscription, say), with no change between
 * them. Answers what `then` answered. */
int vm_registry_snapshot(struct vm_registry *r, vm_listener_fn each, void *arg,
                         int (*then)(void *then_arg), void *then_arg);

/* Number of visible VMs in each state (index = enum vm_state). */
void vm_registry_count_states(struct vm_registry *r, size_t counts[5]);
/* Number of visible RUNNING VMs of each health (index = enum backend_health). */
void vm_registry_count_health(struct vm_registry *r, size_t counts[BACKEND_HEALTH_COUNT]);

/* 0 when the registry's lock could be taken (and given back) before the
 * monotonic deadline, -1 when something holds it past that: the watchdog's
 * sign of a registry stuck behind its lock. */
int vm_registry_alive(struct vm_registry *r, int64_t deadline) BERTH_MUST_USE;

#endif
