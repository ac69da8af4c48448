/* pthread mutex helpers that abort on a pthread error: a failed lock is a
 * bug, never a condition to handle. */
#ifndef BERTH_LOCK_H
#define BERTH_LOCK_H

#include <pthread.h>
#include <stdlib.h>

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

static inline void lock_destroy(pthread_mutex_t *m)
{
    if (pthread_mutex_destroy(m) != 0)
        abort();
}

#endif
