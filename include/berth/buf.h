/* A growable byte string with a cap set at init (past it: resource_exhausted).
 * Always NUL-terminated after any successful append. */
#ifndef BERTH_BUF_H
#define BERTH_BUF_H

#include <stddef.h>

#include "berth/err.h"

struct buf {
    char *data;   /* read-only for callers; NULL until the first append */
    size_t len;   /* read-only: bytes used, not counting the NUL */
    size_t alloc; /* private */
    size_t max;   /* private: cap on len */
};

void buf_init(struct buf *b, size_t max);
void buf_release(struct buf *b);
void buf_reset(struct buf *b);

/* 0, or -1 when the cap or memory ran out (err filled when not NULL). */
int buf_append(struct buf *b, const void *data, size_t len, struct berth_err *err) BERTH_MUST_USE;
int buf_appends(struct buf *b, const char *s, struct berth_err *err) BERTH_MUST_USE;
int buf_printf(struct buf *b, struct berth_err *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4))) BERTH_MUST_USE;

/* Room for len bytes in all, allocated at once (no doubling on the way):
 * for a size known ahead, such as a declared Content-Length. 0, or -1 when
 * the cap or memory ran out (the buf is then as it was). */
int buf_reserve(struct buf *b, size_t len, struct berth_err *err) BERTH_MUST_USE;

/* Hand the bytes over to the caller (free() them); the buf is left empty.
 * Returns "" allocated when the buf was empty, NULL on allocation failure. */
char *buf_detach(struct buf *b);

#endif
