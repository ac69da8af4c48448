/* base64 (RFC 4648): the standard alphabet with padding out; in, the
 * standard or the URL-safe alphabet (one of them, not both), padded or not. */
#ifndef BERTH_BASE64_H
#define BERTH_BASE64_H

#include <stddef.h>

#include "berth/buf.h"
#include "berth/err.h"

/* Append the encoding of `len` bytes to out (out ends NUL-terminated, even
 * when len is 0). -1 with err when out's cap or memory ran out. */
int base64_encode(const void *data, size_t len, struct buf *out,
                  struct berth_err *err) BERTH_MUST_USE;

/* Whether `len` bytes of text are valid base64: 0 and the decoded size in
 * *decoded_len, or -1 (a character outside the alphabets, both alphabets
 * mixed, bad padding, an impossible length). */
int base64_check(const char *text, size_t len, size_t *decoded_len) BERTH_MUST_USE;

/* Decode text that base64_check accepted into out, which holds the size it
 * gave. */
void base64_decode_into(const char *text, size_t len, unsigned char *out);

/* Append the decoded bytes to out (NUL-terminated after them). -1 with
 * invalid_argument when text is not valid base64, or when out is full. */
int base64_decode(const char *text, size_t len, struct buf *out,
                  struct berth_err *err) BERTH_MUST_USE;

#endif
