/* The RPC table: "/pkg.Service/Method" -> descriptors, handler, whether GET
 * is allowed (NO_SIDE_EFFECTS, read from proto/ at build time) and the
 * counters /metrics reads. Built once from the service descriptors; the
 * services fill in their handlers before the server starts. */
#ifndef BERTH_ROUTER_H
#define BERTH_ROUTER_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "berth/arena.h"
#include "berth/err.h"
#include "berth/latency.h"
#include "berth/rpc_stream.h"

/* What a handler knows of the call it serves. */
struct rpc_call {
    struct arena *arena;   /* per-request memory: allocate the output here */
    int64_t deadline;      /* monotonic ms (berth/clock.h) every Engine call respects */
    const char *procedure; /* "/pkg.Service/Method" */
    const char *request_id;
};

/* Decoded input in, output out (allocated from call->arena, initialised with
 * protobuf_c_message_init). 0, or -1 with err set. */
typedef int (*rpc_handler_fn)(void *ctx, struct rpc_call *call, const ProtobufCMessage *in,
                              ProtobufCMessage **out, struct berth_err *err);

/* A server-streaming handler: validate, send what it has, arrange for the
 * rest (a subscription, a thread) and return 0; the stream goes on after
 * it returns, until someone ends it (berth/rpc_stream.h). -1 with err set:
 * the stream ends at once with err. `out` stays valid until its end hook
 * (rpc_stream_on_end) has returned. */
typedef int (*rpc_stream_handler_fn)(void *ctx, struct rpc_call *call, const ProtobufCMessage *in,
                                     struct rpc_stream *out, struct berth_err *err);

/* Buckets of the latency histogram, bounded by latency_bounds_s. */
#define RPC_LATENCY_BUCKETS LATENCY_BUCKETS

/* Counters of one procedure; all atomic, read by /metrics without a lock. */
struct rpc_stats {
    _Atomic uint64_t by_code[BERTH_CODE_COUNT];
    _Atomic uint64_t latency_bucket[RPC_LATENCY_BUCKETS]; /* non-cumulative */
    _Atomic uint64_t latency_sum_us;
    _Atomic int64_t in_flight;
};

struct rpc_route {
    char *path; /* read-only after router_new */
    const ProtobufCMessageDescriptor *input;
    const ProtobufCMessageDescriptor *output;
    int no_side_effects;
    int server_streaming;   /* answers a stream of messages (connect+json/proto) */
    int from_memory;        /* the handler only reads memory: it may run on an event thread */
    rpc_handler_fn handler; /* NULL: unimplemented */
    rpc_stream_handler_fn stream_handler; /* server streaming; NULL: unimplemented */
    void *handler_ctx;
    struct rpc_stats stats;
};

struct router;

struct router *router_new(void);
void router_free(struct router *r);

/* Set the handler of a procedure; -1 when the path is not in the table. */
int router_set_handler(struct router *r, const char *path, rpc_handler_fn fn,
                       void *ctx) BERTH_MUST_USE;
/* Set the handler of a server-streaming procedure; -1 when the path is not
 * in the table or the procedure is not server streaming. */
int router_set_stream_handler(struct router *r, const char *path, rpc_stream_handler_fn fn,
                              void *ctx) BERTH_MUST_USE;
/* Mark a procedure whose handler never waits on the Engine or a slow lock;
 * -1 when the path is not in the table. */
int router_set_from_memory(struct router *r, const char *path) BERTH_MUST_USE;
/* The route of a path (len bytes, need not be NUL-terminated), or NULL. */
struct rpc_route *router_find(struct router *r, const char *path, size_t len);
size_t router_count(const struct router *r);
/* The served services' names, comma separated ("metal.vmprovisioner.v1.VmService, ..."). */
const char *router_services(const struct router *r);
struct rpc_route *router_at(struct router *r, size_t i);

/* Record one finished call in the route's counters. */
void rpc_stats_record(struct rpc_stats *s, enum berth_code code, int64_t duration_us);

#endif
