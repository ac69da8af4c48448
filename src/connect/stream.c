/* A server stream that ends before it began (a refusal, an unknown or
 * unimplemented procedure): the whole body is one end envelope (see
 * rpc_stream.c for the envelopes of a stream under way). */
#include "berth/connect.h"

#include "stream_internal.h"

void connect_stream_write_error(struct http_response *resp, const char *content_type,
                                const struct berth_err *err, const char *request_id)
{
    buf_reset(&resp->body);
    resp->status = 200;
    resp->n_headers = 0;
    http_response_header(resp, "Content-Type", content_type);
    if (connect_end_envelope(err, request_id, &resp->body) < 0) {
        buf_reset(&resp->body);
        resp->status = 500;
    }
}
