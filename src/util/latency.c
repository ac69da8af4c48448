/* The latency histogram bounds and bucket rule (see berth/latency.h). */
#include "berth/latency.h"

const double latency_bounds_s[LATENCY_BUCKETS] = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10,
};

size_t latency_bucket(int64_t duration_us)
{
    double secs = (double)(duration_us > 0 ? duration_us : 0) / 1e6;
    size_t b = 0;

    while (b < LATENCY_BUCKETS && secs > latency_bounds_s[b])
        b++;
    return b;
}
