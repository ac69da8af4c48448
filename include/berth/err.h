/* The one error type that crosses every layer: a Connect code and a message.
 * The Connect codes, their wire names and HTTP statuses live in one table
 * (err.c); nothing else spells them. */
#ifndef BERTH_ERR_H
#define BERTH_ERR_H

#include <stddef.h>

#define BERTH_MUST_USE __attribute__((warn_unused_result))

enum berth_code {
    BERTH_OK = 0,
    BERTH_CANCELED = 1,
    BERTH_UNKNOWN = 2,
    BERTH_INVALID_ARGUMENT = 3,
    BERTH_DEADLINE_EXCEEDED = 4,
    BERTH_NOT_FOUND = 5,
    BERTH_ALREADY_EXISTS = 6,
    BERTH_PERMISSION_DENIED = 7,
    BERTH_RESOURCE_EXHAUSTED = 8,
    BERTH_FAILED_PRECONDITION = 9,
    BERTH_ABORTED = 10,
    BERTH_OUT_OF_RANGE = 11,
    BERTH_UNIMPLEMENTED = 12,
    BERTH_INTERNAL = 13,
    BERTH_UNAVAILABLE = 14,
    BERTH_DATA_LOSS = 15,
    BERTH_UNAUTHENTICATED = 16,
};
#define BERTH_CODE_COUNT 17

#define BERTH_ERR_MSG_MAX 512

struct berth_err {
    enum berth_code code; /* BERTH_OK while nothing failed */
    char msg[BERTH_ERR_MSG_MAX];
};

/* Reset to "no error". */
void berth_err_clear(struct berth_err *err);

/* Record a failure. The first writer wins, so the deepest reason survives
 * the layers above it. CR and LF in the message become spaces; a message
 * cut at BERTH_ERR_MSG_MAX bytes is cut on a UTF-8 character boundary. Always
 * returns -1, so callers can write `return berth_err_set(...)`. */
int berth_err_set(struct berth_err *err, enum berth_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Wire name ("invalid_argument"), or "unknown" for an out-of-range code. */
const char *berth_code_name(enum berth_code code);

/* HTTP status for a code, as the Connect protocol maps them. */
int berth_code_http_status(enum berth_code code);

/* Code for a wire name; BERTH_UNKNOWN when the name is not one. */
enum berth_code berth_code_from_name(const char *name);

/* Copy at most `max` bytes of untrusted text into `out` (size outsz) for
 * echoing in a message: control characters become '?', and "..." marks a cut. */
void berth_err_quote(char *out, size_t outsz, const char *in, size_t max);

#endif
