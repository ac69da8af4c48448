/* The one latency histogram layout /metrics shows (RPCs and backend calls):
 * upper bounds in seconds, non-cumulative buckets, and +Inf beyond. */
#ifndef BERTH_LATENCY_H
#define BERTH_LATENCY_H

#include <stddef.h>
#include <stdint.h>

#define LATENCY_BUCKETS 12
extern const double latency_bounds_s[LATENCY_BUCKETS];

/* The bucket a duration falls in: the first whose bound it does not
 * exceed; LATENCY_BUCKETS when it exceeds them all (only +Inf counts it).
 * A negative duration counts as 0. */
size_t latency_bucket(int64_t duration_us);

#endif
