/* What happens to the objects berthd manages, fanned out to watchers. A
 * publisher describes a change once; every subscriber's sink is called with
 * it, in the order of publication, on the publisher's thread. Sinks must be
 * quick and must never wait (they queue, or give up). Publishers call from
 * under their own lock (the registry's), so that a snapshot taken under that
 * lock and a subscription made under it miss and repeat nothing. */
#ifndef BERTH_EVENT_BUS_H
#define BERTH_EVENT_BUS_H

#include <stdint.h>

#include "berth/err.h"
#include "berth/labels.h"

enum watch_event_type {
    WATCH_SNAPSHOT = 1,
    WATCH_CREATED = 2,
    WATCH_CHANGED = 3,
    WATCH_DELETED = 4,
};

/* Strings are borrowed for the call. */
struct watch_event {
    enum watch_event_type type;
    enum object_kind kind;
    const char *id;
    const char *ns;          /* gateways and deployments */
    const char *state;       /* VmState or status name */
    const char *health;      /* "" when none */
    const char *instance_id; /* a replica's own change; "" else */
    const char *reason;      /* "" when none */
    int64_t time_unix_ns;
};

typedef void (*watch_sink_fn)(void *arg, const struct watch_event *ev);

struct event_bus;

struct event_bus *event_bus_new(void); /* NULL: out of memory */
void event_bus_free(struct event_bus *b);
/* Add a sink. 0, or -1 when out of memory. */
int event_bus_subscribe(struct event_bus *b, watch_sink_fn fn, void *arg) BERTH_MUST_USE;
/* Remove the sink of (fn, arg); when this returns it is not running and
 * will not run again. Never call it from a sink. */
void event_bus_unsubscribe(struct event_bus *b, watch_sink_fn fn, void *arg);
void event_bus_publish(struct event_bus *b, const struct watch_event *ev);
/* Subscribers now (for /metrics and tests). */
unsigned event_bus_subscribers(struct event_bus *b);

#endif
