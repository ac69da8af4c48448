/* Connect server-streaming envelopes (CONNECT.md "Server streaming"): a flag
 * byte, a 4-byte big-endian length, the payload. The last envelope of a
 * stream has flag 0x02 and a JSON payload: {} or {"error":{...}}, with the
 * trailers as "metadata". */
#include "berth/connect.h"

#include <stdint.h>

#define STREAM_FLAG_END 0x02

void connect_stream_write_error(struct http_response *resp, const char *content_type,
                                const struct berth_err *err, const char *request_id)
{
    struct buf payload, inner;
    unsigned char head[5];

    buf_init(&payload, 4 * BERTH_ERR_MSG_MAX + 512);
    buf_reset(&resp->body);
    resp->status = 200;
    resp->n_headers = 0;
    http_response_header(resp, "Content-Type", content_type);
    buf_init(&inner, 4 * BERTH_ERR_MSG_MAX);
    if (connect_error_json(err, NULL, &inner) < 0) {
        buf_reset(&inner);
        if (buf_appends(&inner, "{\"code\":\"internal\"}", NULL) < 0)
            goto fail;
    }
    /* The trailers hold the request id: a sane token, nothing to escape. */
    if (buf_printf(&payload, NULL, "{\"error\":%s", inner.data) < 0 ||
        (request_id != NULL &&
         buf_printf(&payload, NULL, ",\"metadata\":{\"x-request-id\":[\"%s\"]}", request_id) < 0) ||
        buf_appends(&payload, "}", NULL) < 0)
        goto fail;
    head[0] = STREAM_FLAG_END;
    head[1] = (unsigned char)(payload.len >> 24);
    head[2] = (unsigned char)(payload.len >> 16);
    head[3] = (unsigned char)(payload.len >> 8);
    head[4] = (unsigned char)payload.len;
    if (buf_append(&resp->body, head, sizeof(head), NULL) < 0 ||
        buf_append(&resp->body, payload.data, payload.len, NULL) < 0)
        goto fail;
    buf_release(&payload);
    buf_release(&inner);
    return;
fail:
    buf_release(&payload);
    buf_release(&inner);
    buf_reset(&resp->body);
    resp->status = 500;
}
