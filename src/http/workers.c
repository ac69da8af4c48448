/* The worker pool (see workers.h): one mutex, one condition, a FIFO of
 * intrusive items. Stopping lets the threads empty the queue first, so a
 * suspended connection always gets its answer and is resumed. */
#include "workers.h"

#include <pthread.h>
#include <stdlib.h>

#include "berth/lock.h"

struct workers {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    struct work_item *head, *tail; /* guarded by lock */
    unsigned queued;               /* guarded by lock */
    int stopping;                  /* guarded by lock */
    unsigned n;                    /* threads started */
    pthread_t *threads;
};

static void *worker_main(void *arg)
{
    struct workers *w = arg;

    lock_take(&w->lock);
    for (;;) {
        struct work_item *it;

        while (w->head == NULL && !w->stopping)
            pthread_cond_wait(&w->wake, &w->lock);
        if (w->head == NULL)
            break; /* stopping, and nothing left to run */
        it = w->head;
        w->head = it->next;
        if (w->head == NULL)
            w->tail = NULL;
        w->queued--;
        lock_give(&w->lock);
        it->next = NULL;
        it->fn(it);
        lock_take(&w->lock);
    }
    lock_give(&w->lock);
    return NULL;
}

int workers_start(unsigned n, struct workers **out, struct berth_err *err)
{
    struct workers *w = calloc(1, sizeof(*w));

    if (w == NULL || n == 0 || (w->threads = calloc(n, sizeof(*w->threads))) == NULL) {
        free(w);
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    }
    lock_init(&w->lock);
    pthread_cond_init(&w->wake, NULL);
    for (; w->n < n; w->n++)
        if (pthread_create(&w->threads[w->n], NULL, worker_main, w) != 0) {
            berth_err_set(err, BERTH_INTERNAL, "cannot start worker thread %u of %u", w->n + 1, n);
            workers_stop(w);
            return -1;
        }
    *out = w;
    return 0;
}

void workers_submit(struct workers *w, struct work_item *item)
{
    item->next = NULL;
    lock_take(&w->lock);
    if (w->tail != NULL)
        w->tail->next = item;
    else
        w->head = item;
    w->tail = item;
    w->queued++;
    pthread_cond_signal(&w->wake);
    lock_give(&w->lock);
}

unsigned workers_queued(struct workers *w)
{
    unsigned n;

    lock_take(&w->lock);
    n = w->queued;
    lock_give(&w->lock);
    return n;
}

void workers_stop(struct workers *w)
{
    if (w == NULL)
        return;
    lock_take(&w->lock);
    w->stopping = 1;
    pthread_cond_broadcast(&w->wake);
    lock_give(&w->lock);
    for (unsigned i = 0; i < w->n; i++)
        pthread_join(w->threads[i], NULL);
    pthread_cond_destroy(&w->wake);
    lock_destroy(&w->lock);
    free(w->threads);
    free(w);
}
