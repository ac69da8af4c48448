/* Monotonic and wall-clock time, deadlines (see berth/clock.h). */
#include "berth/clock.h"

#include <time.h>

int64_t berth_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t berth_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t berth_unix_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t berth_deadline_left_ms(int64_t deadline)
{
    int64_t now;

    if (deadline == BERTH_NO_DEADLINE)
        return INT64_MAX;
    now = berth_now_ms();
    return deadline > now ? deadline - now : 0;
}

int64_t berth_deadline_min(int64_t deadline, int64_t ms_from_now)
{
    int64_t d = berth_now_ms() + ms_from_now;

    return d < deadline ? d : deadline;
}
