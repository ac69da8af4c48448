/* gzip bodies both ways (zlib), with a cap on what inflating may produce. */
#ifndef BERTH_GZIP_H
#define BERTH_GZIP_H

#include <stddef.h>

#include "berth/buf.h"
#include "berth/err.h"

/* Inflate a gzip stream into out (whose cap bounds the result: past it,
 * resource_exhausted). A corrupt stream: invalid_argument. */
int gzip_inflate(const void *data, size_t len, struct buf *out,
                 struct berth_err *err) BERTH_MUST_USE;
/* Deflate data into out as a gzip stream. */
int gzip_deflate(const void *data, size_t len, struct buf *out,
                 struct berth_err *err) BERTH_MUST_USE;
/* 1 when an Accept-Encoding header value (NULL: none) lists gzip with a
 * q-value other than zero. */
int gzip_accepted(const char *accept_encoding);

#endif
