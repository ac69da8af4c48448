/* base64: standard alphabet with padding out; standard or URL-safe, padded
 * or not, in. */
#ifndef BERTH_BASE64_H
#define BERTH_BASE64_H

#include <stddef.h>

#include "berth/buf.h"
#include "berth/err.h"

int base64_encode(const void *data, size_t len, struct buf *out,
                  struct berth_err *err) BERTH_MUST_USE;
/* -1 with invalid_argument on a character outside both alphabets, bad
 * padding or an impossible length. */
int base64_decode(const char *text, size_t len, struct buf *out,
                  struct berth_err *err) BERTH_MUST_USE;

#endif
