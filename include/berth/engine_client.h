/* The Docker Engine API client: HTTP/1.1 over the Engine's unix socket with
 * libcurl. A pool of curl easy handles keeps connections alive between calls;
 * the API version is negotiated from GET /version on first use (and again
 * after a failed attempt). Safe to use from any number of threads. */
#ifndef BERTH_ENGINE_CLIENT_H
#define BERTH_ENGINE_CLIENT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "berth/backend.h"
#include "berth/buf.h"
#include "berth/err.h"

/* Newest API version this client speaks; older engines are spoken to in
 * their own version, down to ENGINE_API_MIN. */
#define ENGINE_API_MAX_MINOR 43
#define ENGINE_API_MIN_MINOR 25

/* Cap on a buffered response body. */
#define ENGINE_BODY_MAX ((size_t)64 << 20)
/* Cap on one line of a streamed body. */
#define ENGINE_LINE_MAX ((size_t)1 << 20)
/* Request timeout when the caller passes BERTH_NO_DEADLINE (plain requests). */
#define ENGINE_DEFAULT_TIMEOUT_MS 120000
/* Connecting to the socket never waits longer than this. */
#define ENGINE_CONNECT_TIMEOUT_MS 1000

struct engine; /* opaque */

/* A response. `body` owns its bytes; engine_response_release() frees them. */
struct engine_response {
    int status;      /* HTTP status */
    struct buf body; /* NUL-terminated; for a stream only filled when status >= 300 */
};

/* curl_global_init / curl_global_cleanup, once per process, before any
 * thread uses an engine (the daemon's start and stop). */
int engine_global_init(struct berth_err *err) BERTH_MUST_USE;
void engine_global_cleanup(void);

/* A client for the Engine listening on `socket_path` (copied). Does no I/O:
 * an Engine that is not up yet is found on a later call. *out is the
 * caller's, freed with engine_free(). */
int engine_new(const char *socket_path, struct engine **out, struct berth_err *err) BERTH_MUST_USE;
void engine_free(struct engine *e);
/* Make every call under way end within about a second, and every later one
 * fail at once, with unavailable (for shutdown: nothing waits on the Engine
 * any more). Safe from any thread; there is no way back. */
void engine_cancel_all(struct engine *e);
/* 1 once engine_cancel_all was called. */
int engine_canceled(struct engine *e);
/* Mark the Engine as not answering (on = 1) or answering again (0). While
 * marked, every call but engine_probe fails at once with unavailable, and
 * calls under way end within about a second: nothing hangs on an Engine
 * that accepts connections but never answers. Safe from any thread. */
void engine_set_unresponsive(struct engine *e, int on);
/* engine_request, made even while the Engine is marked unresponsive: for
 * cleanup that must be tried (shutdown still refuses it). */
int engine_request_anyway(struct engine *e, const char *method, const char *path,
                          const char *json_body, int64_t deadline, struct engine_response *resp,
                          struct berth_err *err) BERTH_MUST_USE;
/* 1 while calls are refused before they are sent (marked unresponsive, or
 * shutting down), else 0. */
int engine_refuses_calls(struct engine *e);
/* GET /_ping, whether or not the Engine is marked: 0 when it answers 200. */
int engine_probe(struct engine *e, int64_t deadline, struct berth_err *err) BERTH_MUST_USE;

/* One request. `method` is "GET", "POST", "DELETE", ...; `path` is the part
 * after the version prefix, starting with '/', with an escaped query, e.g.
 * "/containers/json?all=true". `json_body` (NULL: none) is sent as
 * application/json. `deadline` is monotonic ms (berth/clock.h);
 * BERTH_NO_DEADLINE caps the call at ENGINE_DEFAULT_TIMEOUT_MS.
 *
 * 0: an HTTP answer of any status arrived; *resp (caller-initialised with
 * engine_response_init, released by the caller) holds it. -1 with err:
 * engine unreachable or transport failure (unavailable), deadline passed
 * (deadline_exceeded), body over the cap (resource_exhausted). */
int engine_request(struct engine *e, const char *method, const char *path, const char *json_body,
                   int64_t deadline, struct engine_response *resp,
                   struct berth_err *err) BERTH_MUST_USE;

/* Called for each line of a streamed body (without the '\n'; a last line
 * without one is delivered too). `line` is NUL-terminated and only valid
 * during the call. Return nonzero to stop the stream. */
typedef int (*engine_line_fn)(void *arg, const char *line, size_t len);

/* Like engine_request, but a 2xx body is delivered line by line as it
 * arrives instead of being buffered (/events, /images/create, stats).
 * BERTH_NO_DEADLINE means no time limit here. The stream ends at the end of
 * the body, when `on_line` returns nonzero, or soon (within about a second)
 * after *stop (NULL: none) becomes nonzero; all three return 0. A non-2xx
 * answer is buffered in resp->body for error reporting, as with
 * engine_request. */
int engine_stream(struct engine *e, const char *method, const char *path, const char *json_body,
                  int64_t deadline, const atomic_int *stop, engine_line_fn on_line, void *arg,
                  struct engine_response *resp, struct berth_err *err) BERTH_MUST_USE;

/* What engine_stream_with adds to a stream. */
struct engine_stream_opts {
    /* Extra request headers ("Name: value"), NULL-terminated; NULL: none.
     * Their values never reach a log line or an error message. */
    const char *const *headers;
    /* > 0: a stream on which no body byte arrives for this long (ms) is cut,
     * unavailable ("nothing arrived for N ms"). 0: no such limit. */
    int64_t idle_ms;
};

/* engine_stream with `opts` (NULL: as engine_stream). */
int engine_stream_with(struct engine *e, const char *method, const char *path,
                       const char *json_body, int64_t deadline, const atomic_int *stop,
                       const struct engine_stream_opts *opts, engine_line_fn on_line, void *arg,
                       struct engine_response *resp, struct berth_err *err) BERTH_MUST_USE;

void engine_response_init(struct engine_response *r);
void engine_response_release(struct engine_response *r);

/* Append `s` to `b`, escaped for a URL path segment or query value. */
int engine_append_escaped(struct buf *b, const char *s, struct berth_err *err) BERTH_MUST_USE;

/* The Engine's error text for a response: the "message" of its JSON body,
 * else the body itself; control characters replaced and capped to fit
 * `out` (size outsz). */
void engine_error_text(const struct engine_response *r, char *out, size_t outsz);

/* The usual Connect code for an Engine error status: 400 invalid_argument,
 * 401/403 permission_denied, 404 not_found, 409 failed_precondition, 5xx
 * unavailable, anything else unknown. */
enum berth_code engine_status_code(int status);

/* Fill err with `code` and "<what>: <engine error text>"; returns -1. */
int engine_fail(const struct engine_response *r, enum berth_code code, const char *what,
                struct berth_err *err);

/* The negotiated version ("1.41") into out, negotiating now if needed. */
int engine_api_version(struct engine *e, int64_t deadline, char *out, size_t outsz,
                       struct berth_err *err) BERTH_MUST_USE;

/* --- call counters for /metrics ------------------------------------------- */

/* Calls are counted with the backend's outcomes and counters
 * (berth/backend.h: enum backend_outcome, struct backend_call_stats). */

/* Distinct operations kept; calls of any later one count as "other". */
#define ENGINE_OP_MAX 64

/* Thread-safe counters of Engine calls; owned by whoever made them. */
struct engine_stats;

struct engine_stats *engine_stats_new(void); /* NULL when out of memory */
void engine_stats_free(struct engine_stats *s);
/* Count one call. `path` may carry the version prefix and a query. */
void engine_stats_record(struct engine_stats *s, const char *method, const char *path,
                         enum backend_outcome outcome, int64_t duration_us);
/* A copy of every operation's counters, ordered by name; *out is the
 * caller's to free(). -1 when out of memory. */
int engine_stats_snapshot(struct engine_stats *s, struct backend_call_stats **out,
                          size_t *n) BERTH_MUST_USE;
/* The operation name of a call, as recorded ("GET /containers/{id}/json"). */
void engine_op_name(const char *method, const char *path, char *out, size_t outsz);

/* Count this engine's calls into `s` (NULL: none), which must outlive it.
 * Set right after engine_new, before the engine is shared between threads. */
void engine_set_stats(struct engine *e, struct engine_stats *s);

#endif
