/* UTF-8 as protobuf strings and JSON text need it: well-formed sequences
 * only (no overlong forms, no surrogates, nothing past U+10FFFF). */
#ifndef BERTH_UTF8_H
#define BERTH_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* Length of the well-formed UTF-8 sequence at p (1-4 bytes, at most
 * `avail`), or 0 when the bytes there are not one. */
size_t utf8_seq_len(const char *p, size_t avail);

/* Whether all `len` bytes at s are well-formed UTF-8. */
bool utf8_valid(const char *s, size_t len);

#endif
