/* A Connect server stream as its producer sees it: messages of the
 * procedure's output type, sent from any thread, never waiting (a reader too
 * slow for its queue is cut off with resource_exhausted). The stream ends
 * once: by the producer (rpc_stream_finish), or by the server when the
 * deadline passes, the client leaves, a send overflows or berthd stops.
 * However it ends, the producer's end hook then runs once, on the streams'
 * own thread with no lock held, so the producer can let go of what feeds it.
 * The handle stays valid until the hook has returned: the hook must leave
 * no producer that could still use it. */
#ifndef BERTH_RPC_STREAM_H
#define BERTH_RPC_STREAM_H

#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "berth/err.h"

struct rpc_stream;
struct rpc_streams; /* the set of open streams and their thread */

/* Send one message. 0, or -1 once the stream has ended (the end hook runs
 * or has run). */
int rpc_stream_send(struct rpc_stream *s, const ProtobufCMessage *msg);
/* End the stream: err NULL (or code ok) ends it cleanly, else with err. A
 * stream already ended stays as it ended. */
void rpc_stream_finish(struct rpc_stream *s, const struct berth_err *err);
/* 1 once the stream has ended. */
int rpc_stream_ended(struct rpc_stream *s);
/* The end hook: fn(arg) runs once after the stream ended, however it ended.
 * Set it before the handler returns. */
void rpc_stream_on_end(struct rpc_stream *s, void (*fn)(void *arg), void *arg);
/* The call's deadline (monotonic ms; BERTH_NO_DEADLINE: none). */
int64_t rpc_stream_deadline(const struct rpc_stream *s);
/* A reference of one's own, for a producer that may outlive the end hook
 * (a thread that is told to stop and finishes later); rpc_stream_release
 * drops it. Sends after the end simply fail. */
void rpc_stream_ref(struct rpc_stream *s);
void rpc_stream_release(struct rpc_stream *s);

/* The streams' thread: it ends streams whose deadline passed, whose client
 * left, or whose server stops, and runs end hooks. */
int rpc_streams_start(size_t queue_bytes, struct rpc_streams **out,
                      struct berth_err *err) BERTH_MUST_USE;
/* End every open stream (unavailable), run the hooks, join. NULL: nothing. */
void rpc_streams_stop(struct rpc_streams *ss);
/* Streams open now. */
size_t rpc_streams_open(struct rpc_streams *ss);

#endif
