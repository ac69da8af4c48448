/* The metrics collector: a background thread that keeps a fresh resource
 * sample in the registry for every RUNNING VM, so that GetVmInfo never asks
 * the Engine. It holds one streaming stats connection per running VM
 * (GET /containers/{id}/stats?stream=true, one sample a second) on its own
 * curl multi handle, opening and closing streams as VMs start, pause and
 * stop: containers are never sampled one after another. */
#ifndef BERTH_COLLECTOR_H
#define BERTH_COLLECTOR_H

#include <stdint.h>

#include "berth/engine_client.h"
#include "berth/err.h"
#include "berth/vm_registry.h"

/* Borrowed for the duration of collector_start (strings are copied). */
struct collector_config {
    const char *socket_path; /* the Engine's unix socket */
    int64_t interval_ms;     /* --metrics-interval: how old a cached sample may get */
    struct engine_stats *engine_stats; /* NULL, or counters of its Engine calls */
};

/* What /metrics shows of the collector; read with collector_read_stats(). */
struct collector_stats {
    uint64_t sweeps;          /* completed sweeps: every open stream delivered a sample */
    uint64_t errors;          /* failed or stalled streams, bad samples, version queries */
    double last_sweep_s;      /* duration of the last completed sweep */
    uint64_t streams;         /* stats streams open now */
};

struct collector;

/* Start the thread. `vms` is borrowed and must outlive the collector. On
 * success *out is the caller's, stopped and freed with collector_stop(). */
int collector_start(const struct collector_config *cfg, struct vm_registry *vms,
                    struct collector **out, struct berth_err *err) BERTH_MUST_USE;
/* Stop the thread, join it and free every handle. NULL does nothing. */
void collector_stop(struct collector *c);
/* A consistent-enough copy of the counters (each field read atomically). A
 * NULL collector (memory backend) reads as all zeros. */
void collector_read_stats(struct collector *c, struct collector_stats *out);

#endif
