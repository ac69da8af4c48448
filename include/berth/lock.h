/* pthread mutex helpers that abort on a pthread error: a failed lock is a
 * bug, never a condition to handle. */
#ifndef BERTH_LOCK_H
#define BERTH_LOCK_H

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "berth/clock.h"

/* Longest single sleep of lock_wait_until: waiters re-check their condition
 * at least this often, whatever the wall clock does. */
#define LOCK_WAIT_SLICE_MS 1000

static inline void lock_init(pthread_mutex_t *m)
{
    if (pthread_mutex_init(m, NULL) != 0)
        abort();
}

static inline void lock_take(pthread_mutex_t *m)
{
    if (pthread_mutex_lock(m) != 0)
        abort();
}

static inline void lock_give(pthread_mutex_t *m)
{
    if (pthread_mutex_unlock(m) != 0)
        abort();
}

/* The wall-clock time (as pthread's timed waits want it) of the end of the
 * next wait: `left` ms from now, at most one slice, so that a step of the
 * wall clock cannot stretch a wait measured on the monotonic one. */
static inline void lock_slice_end(int64_t left, struct timespec *ts)
{
    if (left > LOCK_WAIT_SLICE_MS)
        left = LOCK_WAIT_SLICE_MS;
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += left / 1000;
    ts->tv_nsec += (left % 1000) * 1000000;
    if (ts->tv_nsec >= 1000000000) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000;
    }
}

/* Take m, waiting at most until the monotonic deadline (BERTH_NO_DEADLINE:
 * as long as it takes). 0 when taken, -1 once the deadline passed. */
static inline int lock_take_until(pthread_mutex_t *m, int64_t deadline)
{
    if (deadline == BERTH_NO_DEADLINE) {
        lock_take(m);
        return 0;
    }
    for (;;) {
        int64_t left = berth_deadline_left_ms(deadline);
        struct timespec ts;
        int rc;

        if (left == 0)
            return pthread_mutex_trylock(m) == 0 ? 0 : -1;
        lock_slice_end(left, &ts);
        rc = pthread_mutex_timedlock(m, &ts);
        if (rc == 0)
            return 0;
        if (rc != ETIMEDOUT)
            abort();
    }
}

/* Wait on c (m held) until signalled or the monotonic deadline passes, at
 * most one slice. 0 while time is left, -1 once the deadline passed; callers
 * loop on their own condition. */
static inline int lock_wait_until(pthread_cond_t *c, pthread_mutex_t *m, int64_t deadline)
{
    int64_t left = berth_deadline_left_ms(deadline);
    struct timespec ts;

    if (left == 0)
        return -1;
    lock_slice_end(left, &ts);
    pthread_cond_timedwait(c, m, &ts);
    return 0;
}

static inline void lock_destroy(pthread_mutex_t *m)
{
    if (pthread_mutex_destroy(m) != 0)
        abort();
}

#endif
