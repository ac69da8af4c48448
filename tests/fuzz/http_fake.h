/* A request for the Connect layer without a server: what berth/http_server.h
 * reads, filled from a fuzzer's bytes. The format, line by line (LF, an
 * optional CR before it):
 *   METHOD TARGET            the target's path is percent-decoded, its query
 *   Name: value              split at & and = and decoded (+ as a space)
 *   ...
 *   (an empty line)
 *   the body                 everything after the empty line
 * Streamed responses are not offered (http_response_stream gives NULL). */
#ifndef BERTH_FUZZ_HTTP_FAKE_H
#define BERTH_FUZZ_HTTP_FAKE_H

#include <stddef.h>
#include <stdint.h>

#include "berth/http_server.h"

/* NULL when out of memory. A body past max_body is marked too large and
 * left out, as the server does. Free with http_fake_free. */
struct http_request *http_fake_parse(const uint8_t *data, size_t size, size_t max_body);
void http_fake_free(struct http_request *req);

#endif
