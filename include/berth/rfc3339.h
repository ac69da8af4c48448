/* RFC 3339 timestamps as the Docker Engine and protobuf write them
 * ("2024-05-01T10:00:00.123456789Z", "+02:00" offsets too). */
#ifndef BERTH_RFC3339_H
#define BERTH_RFC3339_H

#include <stdint.h>

#include "berth/err.h"

/* Parse `s` (years 0000-9999, an optional fraction of any length, 'Z' or
 * ±hh:mm) into *unix_ms (negative before 1970; the fraction is cut to ms).
 * -1 when it does not parse (NULL, a missing zone, a bad field, trailing
 * text); *unix_ms is then untouched. */
int rfc3339_parse_ms(const char *s, int64_t *unix_ms) BERTH_MUST_USE;

#endif
