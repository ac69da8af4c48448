/* The event bus (berth/event_bus.h): an array of sinks under one mutex,
 * held while a change is handed to each, so unsubscribing waits for a
 * publication under way and order is the publishers' order. */
#include "berth/event_bus.h"

#include <pthread.h>
#include <stdlib.h>

#include "berth/lock.h"

struct sink {
    watch_sink_fn fn;
    void *arg;
};

struct event_bus {
    pthread_mutex_t lock;
    struct sink *sinks; /* guarded by lock */
    unsigned n, cap;    /* guarded by lock */
};

struct event_bus *event_bus_new(void)
{
    struct event_bus *b = calloc(1, sizeof(*b));

    if (b != NULL)
        lock_init(&b->lock);
    return b;
}

void event_bus_free(struct event_bus *b)
{
    if (b == NULL)
        return;
    lock_destroy(&b->lock);
    free(b->sinks);
    free(b);
}

int event_bus_subscribe(struct event_bus *b, watch_sink_fn fn, void *arg)
{
    int rc = 0;

    lock_take(&b->lock);
    if (b->n == b->cap) {
        unsigned cap = b->cap ? b->cap * 2 : 8;
        struct sink *s = realloc(b->sinks, cap * sizeof(*s));

        if (s == NULL)
            rc = -1;
        else {
            b->sinks = s;
            b->cap = cap;
        }
    }
    if (rc == 0)
        b->sinks[b->n++] = (struct sink){fn, arg};
    lock_give(&b->lock);
    return rc;
}

void event_bus_unsubscribe(struct event_bus *b, watch_sink_fn fn, void *arg)
{
    lock_take(&b->lock);
    for (unsigned i = 0; i < b->n; i++)
        if (b->sinks[i].fn == fn && b->sinks[i].arg == arg) {
            b->sinks[i] = b->sinks[--b->n];
            break;
        }
    lock_give(&b->lock);
}

void event_bus_publish(struct event_bus *b, const struct watch_event *ev)
{
    if (b == NULL)
        return;
    lock_take(&b->lock);
    for (unsigned i = 0; i < b->n; i++)
        b->sinks[i].fn(b->sinks[i].arg, ev);
    lock_give(&b->lock);
}

unsigned event_bus_subscribers(struct event_bus *b)
{
    unsigned n;

    lock_take(&b->lock);
    n = b->n;
    lock_give(&b->lock);
    return n;
}
