/* Watch (see berth/event_service.h). A watcher subscribes first with every
 * kind still "not live", then takes each kind's snapshot under that kind's
 * own lock and turns the kind live under the same lock: the publishers of a
 * kind publish under that lock, so each change is either in the snapshot or
 * sent after it, never lost, never twice. */
#include "berth/event_service.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/clock.h"
#include "berth/log.h"
#include "berth/service_util.h"
#include "berth/v1/observe.pb-c.h"

#define WATCH_NS_MAX 256
#define WATCH_ID_MAX 256

struct event_service {
    struct event_service_sources src;
};

struct watcher {
    struct event_service *svc;
    struct rpc_stream *out;
    unsigned kinds;              /* bit per enum object_kind */
    int live[OBJECT_KIND_COUNT]; /* guarded by the kind's publisher lock */
    char ns[WATCH_NS_MAX + 1];
    char id[WATCH_ID_MAX + 1];
};

static int h_watch(void *ctx, struct rpc_call *call, const ProtobufCMessage *in,
                   struct rpc_stream *out, struct berth_err *err);

struct event_service *event_service_new(const struct event_service_sources *src)
{
    struct event_service *s = calloc(1, sizeof(*s));

    if (s != NULL)
        s->src = *src;
    return s;
}

void event_service_free(struct event_service *s)
{
    free(s);
}

int event_service_register(struct event_service *s, struct router *r)
{
    return router_set_stream_handler(r, "/berth.v1.EventService/Watch", h_watch, s);
}

/* A VM's health as the HealthState name; "" before any verdict. */
static const char *vm_health_name(const struct vm_snapshot *vm)
{
    static const char *const names[] = {"", "HEALTH_STATE_NONE", "HEALTH_STATE_STARTING",
                                        "HEALTH_STATE_HEALTHY", "HEALTH_STATE_UNHEALTHY"};

    return (unsigned)vm->health < sizeof(names) / sizeof(names[0]) ? names[vm->health] : "";
}

void event_service_vm_changed(void *bus, enum vm_change what, const struct vm_snapshot *vm,
                              const char *reason)
{
    static const enum watch_event_type types[] = {
        [VM_CHANGE_SNAPSHOT] = WATCH_SNAPSHOT,
        [VM_CHANGE_CREATED] = WATCH_CREATED,
        [VM_CHANGE_CHANGED] = WATCH_CHANGED,
        [VM_CHANGE_DELETED] = WATCH_DELETED,
    };
    struct watch_event ev = {
        .type = types[what],
        .kind = OBJECT_VM,
        .id = vm->id,
        .ns = "",
        .state = vm_state_name(vm->state),
        .health = vm_health_name(vm),
        .instance_id = "",
        .reason = reason,
        .time_unix_ns = berth_unix_ms() * 1000000,
    };

    event_bus_publish(bus, &ev);
}

static const char *replica_state(enum object_kind kind, int status)
{
    static const char *const gw[] = {"GATEWAY_STATUS_UNSPECIFIED", "GATEWAY_STATUS_PENDING",
                                     "GATEWAY_STATUS_RUNNING", "GATEWAY_STATUS_TERMINATING"};
    static const char *const dep[] = {"DEPLOYMENT_STATUS_UNSPECIFIED", "DEPLOYMENT_STATUS_PENDING",
                                      "DEPLOYMENT_STATUS_RUNNING", "DEPLOYMENT_STATUS_TERMINATING"};

    if (status < 0 || status > 3)
        status = 0;
    return kind == OBJECT_GATEWAY ? gw[status] : dep[status];
}

static void replica_event(struct watch_event *ev, enum replica_change what, enum object_kind kind,
                          const char *ns, const char *id, const struct replica_cache_summary *sum)
{
    static const enum watch_event_type types[] = {
        [REPLICA_SNAPSHOT] = WATCH_SNAPSHOT,
        [REPLICA_CREATED] = WATCH_CREATED,
        [REPLICA_CHANGED] = WATCH_CHANGED,
        [REPLICA_DELETED] = WATCH_DELETED,
    };

    *ev = (struct watch_event){
        .type = types[what],
        .kind = kind,
        .id = id,
        .ns = ns,
        .state = replica_state(kind, sum != NULL ? sum->status : 0),
        .health = "",
        .instance_id = "",
        .reason = "",
        .time_unix_ns = berth_unix_ms() * 1000000,
    };
}

void event_service_replica_changed(void *bus, enum replica_change what, enum object_kind kind,
                                   const char *ns, const char *id,
                                   const struct replica_cache_summary *sum)
{
    struct watch_event ev;

    replica_event(&ev, what, kind, ns, id, sum);
    event_bus_publish(bus, &ev);
}

/* ---- one watcher ------------------------------------------------------- */

static int watcher_matches(const struct watcher *w, const struct watch_event *ev)
{
    if (!(w->kinds & (1u << ev->kind)))
        return 0;
    if (w->ns[0] != '\0' && (ev->kind == OBJECT_VM || strcmp(w->ns, ev->ns) != 0))
        return 0;
    return w->id[0] == '\0' || strcmp(w->id, ev->id) == 0;
}

static void watcher_send(struct watcher *w, const struct watch_event *ev)
{
    Berth__V1__Event msg = BERTH__V1__EVENT__INIT;

    if (!watcher_matches(w, ev))
        return;
    msg.type = (Berth__V1__EventType)ev->type;
    msg.kind = ev->kind == OBJECT_VM        ? BERTH__V1__OBJECT_KIND__OBJECT_KIND_VM
               : ev->kind == OBJECT_GATEWAY ? BERTH__V1__OBJECT_KIND__OBJECT_KIND_GATEWAY
                                            : BERTH__V1__OBJECT_KIND__OBJECT_KIND_DEPLOYMENT;
    /* The message only borrows the strings while it is encoded. */
    msg.id = (char *)ev->id;
    msg.namespace_ = (char *)(ev->ns ? ev->ns : "");
    msg.state = (char *)(ev->state ? ev->state : "");
    msg.health = (char *)(ev->health ? ev->health : "");
    msg.instance_id = (char *)(ev->instance_id ? ev->instance_id : "");
    msg.reason = (char *)(ev->reason ? ev->reason : "");
    msg.time_unix_ns = ev->time_unix_ns;
    /* A failed send ended the stream; the end hook unsubscribes. */
    (void)rpc_stream_send(w->out, &msg.base);
}

/* The bus's sink: changes of kinds whose snapshot has been sent. */
static void watcher_sink(void *arg, const struct watch_event *ev)
{
    struct watcher *w = arg;

    if (ev->kind < OBJECT_KIND_COUNT && w->live[ev->kind])
        watcher_send(w, ev);
}

static void watcher_vm_snapshot(void *arg, enum vm_change what, const struct vm_snapshot *vm,
                                const char *reason)
{
    struct watcher *w = arg;
    struct watch_event ev = {
        .type = WATCH_SNAPSHOT,
        .kind = OBJECT_VM,
        .id = vm->id,
        .ns = "",
        .state = vm_state_name(vm->state),
        .health = vm_health_name(vm),
        .instance_id = "",
        .reason = reason,
        .time_unix_ns = berth_unix_ms() * 1000000,
    };

    (void)what;
    watcher_send(w, &ev);
}

static void watcher_replica_snapshot(void *arg, enum replica_change what, enum object_kind kind,
                                     const char *ns, const char *id,
                                     const struct replica_cache_summary *sum)
{
    struct watch_event ev;

    replica_event(&ev, what, kind, ns, id, sum);
    watcher_send(arg, &ev);
}

static int watcher_vms_live(void *arg)
{
    ((struct watcher *)arg)->live[OBJECT_VM] = 1;
    return 0;
}

static int watcher_replicas_live(void *arg)
{
    struct watcher *w = arg;

    w->live[OBJECT_GATEWAY] = 1;
    w->live[OBJECT_DEPLOYMENT] = 1;
    return 0;
}

static void watcher_end(void *arg)
{
    struct watcher *w = arg;

    event_bus_unsubscribe(w->svc->src.bus, watcher_sink, w);
    free(w);
}

/* ---- the call ---------------------------------------------------------- */

static int watch_check(const Berth__V1__WatchRequest *r, unsigned *kinds, struct berth_err *err)
{
    const char *ns = r->namespace_ ? r->namespace_ : "", *id = r->id ? r->id : "";

    *kinds = 0;
    for (size_t i = 0; i < r->n_kinds; i++) {
        switch (r->kinds[i]) {
        case BERTH__V1__OBJECT_KIND__OBJECT_KIND_VM:
            *kinds |= 1u << OBJECT_VM;
            break;
        case BERTH__V1__OBJECT_KIND__OBJECT_KIND_GATEWAY:
            *kinds |= 1u << OBJECT_GATEWAY;
            break;
        case BERTH__V1__OBJECT_KIND__OBJECT_KIND_DEPLOYMENT:
            *kinds |= 1u << OBJECT_DEPLOYMENT;
            break;
        default:
            return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                                 "field 'kinds[%zu]': %d is not an ObjectKind", i,
                                 (int)r->kinds[i]);
        }
    }
    if (*kinds == 0)
        *kinds = (1u << OBJECT_VM) | (1u << OBJECT_GATEWAY) | (1u << OBJECT_DEPLOYMENT);
    if (strlen(ns) > WATCH_NS_MAX)
        return berth_err_set(err, BERTH_INVALID_ARGUMENT, "field 'namespace': longer than %d bytes",
                             WATCH_NS_MAX);
    if (strlen(id) > WATCH_ID_MAX)
        return berth_err_set(err, BERTH_INVALID_ARGUMENT, "field 'id': longer than %d bytes",
                             WATCH_ID_MAX);
    if (id[0] != '\0' && r->n_kinds != 1)
        return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                             "field 'id': needs exactly one kind in 'kinds'");
    if (ns[0] != '\0' && (*kinds & (1u << OBJECT_VM)) && r->n_kinds > 0)
        return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                             "field 'namespace': VMs have no namespace; ask for gateways or "
                             "deployments");
    if (ns[0] != '\0' && r->n_kinds == 0)
        *kinds &= ~(1u << OBJECT_VM);
    return 0;
}

static int h_watch(void *ctx, struct rpc_call *call, const ProtobufCMessage *in,
                   struct rpc_stream *out, struct berth_err *err)
{
    struct event_service *s = ctx;
    const Berth__V1__WatchRequest *r = (const void *)in;
    struct watcher *w;
    unsigned kinds;

    (void)call;
    if (watch_check(r, &kinds, err) < 0)
        return -1;
    w = calloc(1, sizeof(*w));
    if (w == NULL)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    w->svc = s;
    w->out = out;
    w->kinds = kinds;
    snprintf(w->ns, sizeof(w->ns), "%s", r->namespace_ ? r->namespace_ : "");
    snprintf(w->id, sizeof(w->id), "%s", r->id ? r->id : "");
    if (event_bus_subscribe(s->src.bus, watcher_sink, w) < 0) {
        free(w);
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    }
    rpc_stream_on_end(out, watcher_end, w);
    if (kinds & (1u << OBJECT_VM))
        (void)vm_registry_snapshot(s->src.vms, watcher_vm_snapshot, w, watcher_vms_live, w);
    if ((kinds & ((1u << OBJECT_GATEWAY) | (1u << OBJECT_DEPLOYMENT))) && s->src.replicas != NULL)
        (void)replica_cache_snapshot(s->src.replicas, watcher_replica_snapshot, w,
                                     watcher_replicas_live, w);
    return 0;
}
