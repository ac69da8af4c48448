/* What every exporter says about its own process: CPU time, resident
 * memory, file descriptors and start time, read from /proc/self. */
#ifndef BERTH_PROCESS_METRICS_H
#define BERTH_PROCESS_METRICS_H

#include <stdint.h>

#include "berth/err.h"

struct process_metrics {
    double cpu_seconds;        /* user + system */
    uint64_t resident_bytes;   /* RSS */
    uint64_t virtual_bytes;    /* address space */
    uint64_t open_fds;         /* entries of /proc/self/fd */
    uint64_t max_fds;          /* the soft RLIMIT_NOFILE */
    double start_time_seconds; /* unix time the process started */
    uint64_t threads;
};

/* Fill *out for this process; -1 with internal naming what could not be read. */
int process_metrics_read(struct process_metrics *out, struct berth_err *err) BERTH_MUST_USE;

#endif
