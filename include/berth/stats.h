/* Engine stats -> VM metrics: the pure conversion of one Docker Engine stats
 * object (GET /containers/{id}/stats) into struct vm_metrics, the way
 * `docker stats` computes its columns. No I/O, no locks: the collector feeds
 * it samples and keeps the CPU reading it returns for the next call. */
#ifndef BERTH_STATS_H
#define BERTH_STATS_H

#include <stdint.h>

#include <cjson/cJSON.h>

#include "berth/vm_registry.h"

/* The CPU counters of one sample, kept between samples for the deltas. */
struct stats_cpu {
    uint64_t total_ns;  /* cpu_stats.cpu_usage.total_usage */
    uint64_t system_ns; /* cpu_stats.system_cpu_usage */
    uint32_t online_cpus;
    int valid; /* both counters were present and nonzero */
};

enum stats_result {
    STATS_OK = 0,
    STATS_EMPTY = 1,   /* the Engine's all-zero answer for a container that is not running */
    STATS_NO_BASE = 2, /* filled, but cpu_percent is 0: no earlier CPU reading to compare */
};

/* Convert `root` (one stats object). `prev` is the CPU reading of the sample
 * before (NULL or !valid: none); it is only used when the object carries no
 * usable precpu_stats. Missing or non-numeric fields count as 0 and a
 * counter that went backwards (a reset) gives 0 for its delta, so nothing
 * in *out is ever garbage. sampled_at_unix_ms comes from the object's
 * "read" time, else `now_unix_ms`.
 *
 * STATS_OK or STATS_NO_BASE: *out and *cur filled. STATS_EMPTY: the object holds no sample;
 * *out and *cur untouched. -1: `root` is not a JSON object. */
int stats_convert(const cJSON *root, const struct stats_cpu *prev, int64_t now_unix_ms,
                  struct vm_metrics *out, struct stats_cpu *cur) BERTH_MUST_USE;

/* An RFC 3339 time ("2024-05-01T10:00:00.123456789Z", "+02:00" offsets
 * too) as unix ms. -1 when it does not parse or is before 1970 (Go's zero
 * time "0001-01-01T00:00:00Z" included). */
int64_t stats_parse_time_ms(const char *s);

#endif
