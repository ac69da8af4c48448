/* The metrics collector: a background thread that keeps a fresh resource
 * sample in the registry for every RUNNING VM, so that GetVmInfo never asks
 * the backend. It runs whenever the backend offers stats (stats_sweep), in
 * rounds: copy the running VMs under the registry lock, ask the backend for
 * one sweep over their containers without it, write what came back under
 * it. The backend paces the rounds (the Docker backend's sweep returns with
 * the Engine's next one-second loop of samples).
 *
 * CPU is computed here from the backend's cumulative counters: against the
 * source's own earlier reading when the sample carries one, else against
 * the VM's last reading, which is kept across pauses and across the
 * backend's reconnects (so every sample is published, a stream's first
 * too) and dropped when the VM starts anew; a VM's very first sample shows
 * 0. */
#ifndef BERTH_COLLECTOR_H
#define BERTH_COLLECTOR_H

#include <stdint.h>

#include "berth/backend.h"
#include "berth/err.h"
#include "berth/vm_registry.h"

/* Borrowed for the duration of collector_start. */
struct collector_config {
    int64_t interval_ms; /* --metrics-interval: at most one counted sweep starts per interval */
};

/* What /metrics shows of the collector; read with collector_read_stats(). */
struct collector_stats {
    uint64_t sweeps;     /* completed sweeps: every VM running at the start had an answer */
    uint64_t errors;     /* failures the backend met while sampling, failed registry reads */
    double last_sweep_s; /* duration of the last completed sweep */
    uint64_t streams;    /* connections the backend keeps open for sampling */
};

struct collector;

/* Start the thread. `backend` (which must offer stats_sweep) and `vms` are
 * borrowed and must outlive the collector. On success *out is the
 * caller's, stopped and freed with collector_stop(). */
int collector_start(const struct collector_config *cfg, const struct backend *backend,
                    struct vm_registry *vms, struct collector **out,
                    struct berth_err *err) BERTH_MUST_USE;
/* Stop the thread, join it and free what it kept. NULL does nothing. */
void collector_stop(struct collector *c);
/* A consistent-enough copy of the counters (each field read atomically). A
 * NULL collector (a backend without stats) reads as all zeros. */
void collector_read_stats(struct collector *c, struct collector_stats *out);

#endif
