/* What the Connect layer's files share about server streams: opening one
 * over an HTTP stream, and the one log line of a finished call. */
#ifndef BERTH_CONNECT_STREAM_INTERNAL_H
#define BERTH_CONNECT_STREAM_INTERNAL_H

#include <stdint.h>

#include "berth/http_server.h"
#include "berth/router.h"
#include "berth/rpc_stream.h"

/* A stream over hs (which it takes over), registered with ss. Two
 * references: the producer's and the set's. NULL when out of memory (hs is
 * then ended). */
struct rpc_stream *rpc_stream_open(struct rpc_streams *ss, struct http_stream *hs,
                                   struct rpc_route *route, int json, int64_t deadline,
                                   const char *request_id, const char *caller, int64_t start_us);
/* The handler has returned: from now on an ended stream's hook runs (and
 * the set lets go of it). */
void rpc_stream_arm(struct rpc_stream *s);
size_t rpc_streams_queue_bytes(const struct rpc_streams *ss);

/* The envelope of a stream's end: flag 0x02 and {} or {"error":{...}},
 * with the request id in the trailers ("metadata") when not NULL. */
int connect_end_envelope(const struct berth_err *err, const char *request_id,
                         struct buf *out) BERTH_MUST_USE;

void connect_log_call(const struct rpc_route *route, const char *path, int status,
                      const struct berth_err *err, int64_t start_us, const char *request_id,
                      const char *caller);

#endif
