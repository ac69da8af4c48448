/* A fixed pool of threads that run queued jobs in order: the handlers that
 * wait on the Engine run here, so that the event threads never block. A job
 * is an item the caller embeds in its own struct (no allocation per job). */
#ifndef BERTH_HTTP_WORKERS_H
#define BERTH_HTTP_WORKERS_H

#include "berth/err.h"

struct work_item {
    struct work_item *next; /* the pool's, while queued */
    void (*fn)(struct work_item *item);
};

struct workers;

/* Start n threads. 0, or -1 with err set (no thread is left running). */
int workers_start(unsigned n, struct workers **out, struct berth_err *err) BERTH_MUST_USE;
/* Queue a job; it runs on one of the threads, after those queued before
 * it. Never fails: the queue is the callers' own items. */
void workers_submit(struct workers *w, struct work_item *item);
/* Jobs queued and not yet taken by a thread (for /metrics and tests). */
unsigned workers_queued(struct workers *w);
/* Run what is queued, then join every thread and free. NULL does nothing. */
void workers_stop(struct workers *w);

#endif
