/* The HTTP front end (libmicrohttpd): listener (TCP, TLS or unix socket),
 * connection limits and timeouts, request bodies buffered up to a limit, the
 * caller named through berth/auth.h. Connections live on a few event
 * threads (epoll) and cost no thread of their own; a handler that only
 * reads memory answers there, every other one runs on a bounded worker pool
 * while its connection is suspended. A response may be a stream, written as
 * its producer delivers data. It knows nothing of Connect: each complete
 * request goes to one handler. */
#ifndef BERTH_HTTP_SERVER_H
#define BERTH_HTTP_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "berth/arena.h"
#include "berth/auth.h"
#include "berth/buf.h"
#include "berth/err.h"

struct http_request; /* opaque: read through the functions below */

const char *http_request_method(const struct http_request *req);
const char *http_request_path(const struct http_request *req); /* without the query */
/* A request header (case-insensitive name), or NULL. */
const char *http_request_header(const struct http_request *req, const char *name);
/* A query parameter, percent-decoded, with its length (may hold NUL bytes).
 * 0 when present, -1 when absent. */
int http_request_query(const struct http_request *req, const char *key, const char **value,
                       size_t *len);
/* The buffered body. `too_large` is set when it passed the limit (then the
 * body is empty: the rest was discarded, never buffered). A declared
 * Content-Length over the limit reaches the handler before any of the body
 * is read, already too_large; the connection closes after the answer. */
const char *http_request_body(const struct http_request *req, size_t *len, int *too_large);
/* Framing the server refused (conflicting Content-Length headers, a header
 * line not ended by CRLF or holding a NUL, obs-fold, a space in a header
 * name, a space, control character or %00 in the request target):
 * invalid_argument to answer with, or NULL when the request is well
 * formed. The connection closes after the answer. (A NUL in a header's
 * name never gets here: libmicrohttpd answers it with its own 400.) */
const struct berth_err *http_request_malformed(const struct http_request *req);
/* The caller auth_identify named (see berth/auth.h), or NULL when it named
 * none; then *why (when not NULL) says why. */
const char *http_request_caller(const struct http_request *req, const struct berth_err **why);
/* When the request's headers were complete (monotonic ms, berth/clock.h):
 * deadlines count from here, not from when a worker took the request. */
int64_t http_request_started_ms(const struct http_request *req);

#define HTTP_MAX_RESPONSE_HEADERS 8

struct http_response {
    int status;
    struct buf body;
    const char *header_name[HTTP_MAX_RESPONSE_HEADERS]; /* static or arena strings */
    const char *header_value[HTTP_MAX_RESPONSE_HEADERS];
    size_t n_headers;
    struct http_stream *stream; /* set by http_response_stream */
};

/* Add a header to a response (names and values must outlive the call:
 * static or from the request arena). Silently drops past the maximum. */
void http_response_header(struct http_response *resp, const char *name, const char *value);

/* ---- streamed responses ------------------------------------------------
 * A handler turns its response into a stream: status and headers as usual,
 * resp->body (if any) sent first, then whatever the producer writes, as it
 * writes it, until it ends the stream. The producer may be any thread and
 * may go on long after the handler returned; while it has nothing to send
 * the connection waits without a thread. */
struct http_stream;

/* Make resp a stream; at most max_queued bytes wait unsent (0: 1 MiB)
 * before writes wait. The handle is the producer's until http_stream_end.
 * NULL when out of memory or the connection cannot stream. */
struct http_stream *http_response_stream(const struct http_request *req, struct http_response *resp,
                                         size_t max_queued);
/* Queue bytes to send (copied). Waits while the queue is full, up to the
 * monotonic deadline (BERTH_NO_DEADLINE: as long as it takes). 0, or -1
 * once the client is gone, the deadline passed or the stream ended. */
int http_stream_write(struct http_stream *st, const void *data, size_t len, int64_t deadline);
/* 1 once nothing more can reach the client (it left, or the server ended
 * the stream). */
int http_stream_closed(struct http_stream *st);
/* 1 once the server is stopping: the producer should end the stream soon. */
int http_stream_stopping(struct http_stream *st);
/* Have fn(arg) called once when the server begins to stop (at once when it
 * has begun). fn runs on the stopping thread: it should only wake the
 * producer. http_stream_end clears it. */
void http_stream_on_stop(struct http_stream *st, void (*fn)(void *arg), void *arg);
/* The producer is done: what is queued is sent and the body ends. The
 * handle is not the producer's any more. NULL does nothing. */
void http_stream_end(struct http_stream *st);
/* The same, with last bytes queued first whatever the queue holds (the
 * trailer of a stream cut off for being slow still reaches the client). */
void http_stream_end_with(struct http_stream *st, const void *data, size_t len);

/* Fills resp for req. The arena lives until the response is sent. */
typedef void (*http_handler_fn)(void *ctx, const struct http_request *req,
                                struct http_response *resp, struct arena *arena);

/* Where a request's handler runs: on the event thread (it only reads
 * memory and takes no lock that anything slow holds) or on a worker. */
enum http_run { HTTP_RUN_WORKER = 0, HTTP_RUN_INLINE };
typedef enum http_run (*http_classify_fn)(void *ctx, const struct http_request *req);

struct http_server_config {
    const char *listen; /* HOST:PORT, [V6]:PORT, or unix:/path */
    size_t max_body_bytes;
    unsigned max_connections;
    unsigned idle_timeout_s;
    unsigned read_timeout_s;         /* headers and body of one request */
    unsigned max_connections_per_ip; /* 0: no limit; TCP only */
    size_t connection_memory;        /* each connection's buffer; 0: libmicrohttpd's */
    unsigned socket_mode;            /* unix listener: permission bits */
    const char *socket_group;        /* unix listener: group name or id; "" or NULL: ours */
    const char *tls_cert;            /* PEM files; "" or NULL: plain HTTP */
    const char *tls_key;
    const char *tls_client_ca; /* "" or NULL: no client certificate asked */
    struct auth *auth;         /* borrowed; NULL: every caller is "anonymous" */
    unsigned event_threads;    /* threads of the event loop; 0: one per CPU */
    unsigned workers;          /* threads for handlers that wait; 0: 32 */
    http_classify_fn classify; /* NULL: every handler runs on a worker */
};

struct http_server;

/* Bind and start serving. On success *out owns threads and the socket. */
int http_server_start(const struct http_server_config *cfg, http_handler_fn handler, void *ctx,
                      struct http_server **out, struct berth_err *err) BERTH_MUST_USE;
/* The bound address, e.g. "127.0.0.1:43121" (port 0 resolved). */
const char *http_server_address(const struct http_server *s);
/* Re-read the TLS certificate, key and client CA: new handshakes use them,
 * connections under way keep theirs. On failure the ones in use stay. */
int http_server_reload_tls(struct http_server *s, struct berth_err *err) BERTH_MUST_USE;
/* The same from other files (NULL: the ones in use), which later reloads
 * read once they load. TLS cannot be turned on or off here
 * (failed_precondition). One reloading thread at a time. */
int http_server_reload_tls_files(struct http_server *s, const char *cert, const char *key,
                                 struct berth_err *err) BERTH_MUST_USE;
/* 1 when the listener speaks TLS. */
int http_server_tls_on(const struct http_server *s);
/* 1 when the listener is TCP on a loopback address or a unix socket. */
int http_server_is_local(const struct http_server *s);
/* Stop accepting new connections; requests under way go on, and every open
 * stream's stop hook runs. */
void http_server_quiesce(struct http_server *s);
/* Whether the server still serves, seen from inside: no event thread has
 * been inside one of its callbacks (an inline handler, the reading of a
 * request) for longer than stuck_ms, and the thread that enforces the
 * read deadline goes round. 0, or -1 with unavailable saying what is stuck.
 * It opens no connection, so it works whatever the listener (TLS, client
 * certificates, a unix socket) and counts against no limit. An idle event
 * thread waits in the kernel and is alive. */
int http_server_alive(struct http_server *s, int64_t stuck_ms,
                      struct berth_err *err) BERTH_MUST_USE;
/* Connections open now (all states, streams included). */
unsigned http_server_connections(struct http_server *s);
/* Wait until no request is being handled or the deadline passes. 0 when idle. */
int http_server_wait_idle(struct http_server *s, int64_t deadline);
/* Close everything and free. NULL does nothing. */
void http_server_free(struct http_server *s);

#endif
