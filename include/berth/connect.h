/* Connect unary protocol over the HTTP front end: method, content type,
 * protocol version, timeout, compression, GET form, codec choice, errors to
 * HTTP statuses. Calls the router's handler for the procedure. */
#ifndef BERTH_CONNECT_H
#define BERTH_CONNECT_H

#include <stddef.h>

#include "berth/buf.h"
#include "berth/http_server.h"
#include "berth/router.h"
#include "berth/rpc_stream.h"

struct connect_config {
    struct router *router;       /* borrowed */
    size_t max_body_bytes;       /* after inflating */
    struct rpc_streams *streams; /* borrowed; NULL: streams answer unavailable */
};

/* Serve one request whose path is a procedure path (or unknown: 404). */
void connect_handle(const struct connect_config *cc, const struct http_request *req,
                    struct http_response *resp, struct arena *arena);

/* Where a request for this path should run: inline for a procedure whose
 * handler only reads memory (router_set_from_memory), else on a worker. */
enum http_run connect_classify(const struct connect_config *cc, const struct http_request *req);

/* Fill resp with the Connect error JSON for err (always application/json,
 * uncompressed), with the status of its code. */
void connect_write_error(struct http_response *resp, const struct berth_err *err);

/* The Connect error JSON of err appended to out: {"code","message"}, or
 * {"<wrap>":{...}} when wrap is not NULL. Messages are made valid UTF-8.
 * 0, or -1 when out ran out of room. */
int connect_error_json(const struct berth_err *err, const char *wrap,
                       struct buf *out) BERTH_MUST_USE;

/* Fill resp with a whole server stream that ends at once with err: HTTP 200,
 * Content-Type content_type, one end-of-stream envelope (flag 0x02) holding
 * {"error":{...}} and, when request_id is not NULL, the trailer
 * "metadata":{"x-request-id":[request_id]} (connect/stream.c). */
void connect_stream_write_error(struct http_response *resp, const char *content_type,
                                const struct berth_err *err, const char *request_id);

/* Longest X-Request-Id taken from a request. */
#define CONNECT_REQUEST_ID_MAX 128

/* The request's id: its X-Request-Id when that is a sane token (1 to
 * CONNECT_REQUEST_ID_MAX of [A-Za-z0-9._:-]), else a new uuid; into out.
 * Every answer carries it back in X-Request-Id. */
void connect_request_id(const struct http_request *req, char out[CONNECT_REQUEST_ID_MAX + 1]);

#endif
