/* The metrics collector: a background thread that keeps a fresh resource
 * sample in the registry for every RUNNING VM, so that GetVmInfo never asks
 * the Engine. It holds one streaming stats connection per running VM
 * (GET /containers/{id}/stats?stream=true, one sample a second) on its own
 * curl multi handle, opening and closing streams as VMs start, pause and
 * stop: containers are never sampled one after another.
 *
 * How old a cached sample may grow, with --metrics-interval the bound: while a
 * stream delivers, no older than the Engine's period (about a second). A
 * stream silent for collector_stall_limit_ms() = max(interval - 1 s, 3 s)
 * is reopened at once, and the new stream's first sample comes with the
 * Engine's next loop, within a period; so after a stall a sample is at most
 * max(interval, 4 s) old (plus how far the Engine's loop runs over its
 * second). The 3 s floor keeps a healthy stream from being cut between two
 * samples when the Engine's loop over many containers runs long. Every sample is published, a
 * stream's first too: its CPU is computed from the VM's last reading, kept across reopens and
 * pauses, and is 0 only for a container's first sample. Streams count as Engine calls (GET
 * /containers/{id}/stats) when they end. */
#ifndef BERTH_COLLECTOR_H
#define BERTH_COLLECTOR_H

#include <stdint.h>

#include "berth/engine_client.h"
#include "berth/err.h"
#include "berth/vm_registry.h"

/* Borrowed for the duration of collector_start (strings are copied). */
struct collector_config {
    const char *socket_path;           /* the Engine's unix socket */
    int64_t interval_ms;               /* --metrics-interval: how old a cached sample may get */
    struct engine_stats *engine_stats; /* NULL, or counters of its Engine calls */
};

/* What /metrics shows of the collector; read with collector_read_stats(). */
struct collector_stats {
    uint64_t sweeps;     /* completed sweeps: every open stream delivered a sample */
    uint64_t errors;     /* failed or stalled streams, bad samples, version queries */
    double last_sweep_s; /* duration of the last completed sweep */
    uint64_t streams;    /* stats streams open now */
};

struct collector;

/* How long a stats stream may stay silent before it is reopened, for a
 * given --metrics-interval (ms): max(interval - 1 s, 3 s). */
int64_t collector_stall_limit_ms(int64_t interval_ms);

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
