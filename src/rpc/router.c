/* The RPC table, built from the generated service descriptors (one row per
 * method) plus the generated NO_SIDE_EFFECTS list (see berth/router.h). */
#include "berth/router.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/v1/observe.pb-c.h"
#include "krane/v1/deployment.pb-c.h"
#include "krane/v1/gateway.pb-c.h"
#include "metal/vmprovisioner/v1/vmprovisioner.pb-c.h"

/* Generated from proto/ by cmake/gen_idempotency.sh. */
extern const char *const berth_no_side_effects[];
extern const char *const berth_server_streaming[];

static const ProtobufCServiceDescriptor *const services[] = {
    &metal__vmprovisioner__v1__vm_service__descriptor,
    &krane__v1__gateway_service__descriptor,
    &krane__v1__deployment_service__descriptor,
    &berth__v1__log_service__descriptor,
    &berth__v1__event_service__descriptor,
};

struct router {
    struct rpc_route *routes;
    size_t n;
    char *services; /* "a.v1.S, b.v1.T": for the error of an unknown path */
};

static int route_listed(const char *const *list, const char *path);

static int route_listed(const char *const *list, const char *path)
{
    for (const char *const *p = list; *p; p++)
        if (strcmp(*p, path) == 0)
            return 1;
    return 0;
}

struct router *router_new(void)
{
    struct router *r = calloc(1, sizeof(*r));
    size_t total = 0, k = 0;

    if (r == NULL)
        return NULL;
    for (size_t s = 0; s < sizeof(services) / sizeof(services[0]); s++)
        total += services[s]->n_methods;
    r->routes = calloc(total, sizeof(*r->routes));
    if (r->routes == NULL)
        goto fail;
    for (size_t s = 0; s < sizeof(services) / sizeof(services[0]); s++) {
        const ProtobufCServiceDescriptor *svc = services[s];
        for (unsigned m = 0; m < svc->n_methods; m++) {
            struct rpc_route *rt = &r->routes[k];
            size_t len = strlen(svc->name) + strlen(svc->methods[m].name) + 3;
            rt->path = malloc(len);
            if (rt->path == NULL)
                goto fail;
            snprintf(rt->path, len, "/%s/%s", svc->name, svc->methods[m].name);
            rt->input = svc->methods[m].input;
            rt->output = svc->methods[m].output;
            rt->no_side_effects = route_listed(berth_no_side_effects, rt->path);
            rt->server_streaming = route_listed(berth_server_streaming, rt->path);
            k++;
            r->n = k;
        }
    }
    {
        size_t len = 1;
        for (size_t i = 0; i < sizeof(services) / sizeof(services[0]); i++)
            len += strlen(services[i]->name) + 2;
        r->services = calloc(1, len);
        if (r->services == NULL)
            goto fail;
        for (size_t i = 0; i < sizeof(services) / sizeof(services[0]); i++) {
            if (i > 0)
                strncat(r->services, ", ", len - strlen(r->services) - 1);
            strncat(r->services, services[i]->name, len - strlen(r->services) - 1);
        }
    }
    return r;
fail:
    router_free(r);
    return NULL;
}

void router_free(struct router *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->n; i++)
        free(r->routes[i].path);
    free(r->routes);
    free(r->services);
    free(r);
}

int router_set_handler(struct router *r, const char *path, rpc_handler_fn fn, void *ctx)
{
    struct rpc_route *rt = router_find(r, path, strlen(path));

    if (rt == NULL)
        return -1;
    rt->handler = fn;
    rt->handler_ctx = ctx;
    return 0;
}

int router_set_stream_handler(struct router *r, const char *path, rpc_stream_handler_fn fn,
                              void *ctx)
{
    struct rpc_route *rt = router_find(r, path, strlen(path));

    if (rt == NULL || !rt->server_streaming)
        return -1;
    rt->stream_handler = fn;
    rt->handler_ctx = ctx;
    return 0;
}

int router_set_from_memory(struct router *r, const char *path)
{
    struct rpc_route *rt = router_find(r, path, strlen(path));

    if (rt == NULL)
        return -1;
    rt->from_memory = 1;
    return 0;
}

struct rpc_route *router_find(struct router *r, const char *path, size_t len)
{
    for (size_t i = 0; i < r->n; i++)
        if (strlen(r->routes[i].path) == len && memcmp(r->routes[i].path, path, len) == 0)
            return &r->routes[i];
    return NULL;
}

const char *router_services(const struct router *r)
{
    return r->services;
}

size_t router_count(const struct router *r)
{
    return r->n;
}

struct rpc_route *router_at(struct router *r, size_t i)
{
    return i < r->n ? &r->routes[i] : NULL;
}

void rpc_stats_record(struct rpc_stats *s, enum berth_code code, int64_t duration_us)
{
    size_t b = latency_bucket(duration_us);

    if ((int)code >= 0 && code < BERTH_CODE_COUNT)
        atomic_fetch_add(&s->by_code[code], 1);
    if (b < RPC_LATENCY_BUCKETS)
        atomic_fetch_add(&s->latency_bucket[b], 1);
    atomic_fetch_add(&s->latency_sum_us, (uint64_t)(duration_us > 0 ? duration_us : 0));
}
