/* The server's side of a streamed response (see berth/http_server.h for the
 * producer's): what server.c needs to hand a stream to libmicrohttpd, to
 * find streams whose client left while suspended, and to stop them. */
#ifndef BERTH_HTTP_STREAM_H
#define BERTH_HTTP_STREAM_H

#include <microhttpd.h>
#include <stdatomic.h>

#include "berth/http_server.h"

/* A new stream with two references: the producer's and the request's. */
struct http_stream *http_stream_new(size_t max_queued, _Atomic int *suspended_count);
void http_stream_ref(struct http_stream *st);
void http_stream_unref(struct http_stream *st);
/* The libmicrohttpd response that sends the queue as it fills, `prefix`
 * first. Takes over the request's reference. NULL when out of memory
 * (then the reference is still the caller's). */
struct MHD_Response *http_stream_attach(struct http_stream *st, struct MHD_Connection *conn,
                                        const char *prefix, size_t prefix_len);
/* The request ends without the stream being sent: the producer's writes
 * fail from now on. Drops the request's reference. */
void http_stream_discard(struct http_stream *st);
/* 1 when the connection is suspended waiting for data. */
int http_stream_waiting(struct http_stream *st);
/* The client left (or the server must end the stream): the body ends with
 * an error at once, the producer's writes fail. */
void http_stream_abort(struct http_stream *st);
/* The server is stopping: the producer's stop hook runs (once). */
void http_stream_notify_stop(struct http_stream *st);

#endif
