/* Connect unary protocol over the HTTP front end: method, content type,
 * protocol version, timeout, compression, GET form, codec choice, errors to
 * HTTP statuses. Calls the router's handler for the procedure. */
#ifndef BERTH_CONNECT_H
#define BERTH_CONNECT_H

#include <stddef.h>

#include "berth/http_server.h"
#include "berth/router.h"

struct connect_config {
    struct router *router; /* borrowed */
    size_t max_body_bytes; /* after inflating */
};

/* Serve one request whose path is a procedure path (or unknown: 404). */
void connect_handle(const struct connect_config *cc, const struct http_request *req,
                    struct http_response *resp, struct arena *arena);

/* Fill resp with the Connect error JSON for err (always application/json,
 * uncompressed), with the status of its code. */
void connect_write_error(struct http_response *resp, const struct berth_err *err);

#endif
