/* What protobuf-c does not do for a binary protobuf message and the proto3
 * rules need: strings checked (UTF-8, no NUL) and map keys given twice
 * reduced to the last entry. Not JSON: the binary path's checks. */
#ifndef BERTH_PB_CHECK_H
#define BERTH_PB_CHECK_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "berth/codec_limits.h"
#include "berth/err.h"

/* Check the strings of a binary protobuf message (`len` bytes, already
 * unpacked fine as `desc`) as connect-go does: string fields, at any depth
 * (nested, repeated, map keys and values), must be valid UTF-8 without NUL
 * bytes, which protobuf-c's char * would cut short. Nesting deeper than
 * JSON_CODEC_MAX_DEPTH is refused too. -1 with invalid_argument naming the
 * field path (as json_codec_decode does) when one is not. */
int pb_check_strings(const ProtobufCMessageDescriptor *desc, const uint8_t *data, size_t len,
                     struct berth_err *err) BERTH_MUST_USE;

/* Count the fields of a binary message (`len` bytes meant as `desc`) against
 * lim before protobuf-c unpacks it: the occurrences of each field (the
 * elements of a packed list one by one, unknown fields as one field) in
 * each message, and all of them in the body. -1 with invalid_argument or
 * resource_exhausted naming the field where a bound was passed, or
 * invalid_argument when the bytes are malformed (cut short, a wire type
 * proto3 does not use, a field number outside 1 to 2^29-1). */
int pb_check_limits(const ProtobufCMessageDescriptor *desc, const uint8_t *data, size_t len,
                    const struct codec_limits *lim, struct berth_err *err) BERTH_MUST_USE;

/* Keep only the last entry of each map key, at any depth of msg (protobuf-c
 * keeps them all; proto3 says the last one wins). Dropped entries are freed
 * with alloc (the one msg was unpacked with). -1 with resource_exhausted
 * when memory ran out (msg is then still whole, maybe partly reduced). */
int pb_check_dedupe(ProtobufCMessage *msg, ProtobufCAllocator *alloc,
                    struct berth_err *err) BERTH_MUST_USE;

/* Both, for a request body `data` unpacked into msg: what the binary path
 * runs after protobuf_c_message_unpack. */
int pb_check_input(const ProtobufCMessageDescriptor *desc, const uint8_t *data, size_t len,
                   ProtobufCMessage *msg, ProtobufCAllocator *alloc,
                   struct berth_err *err) BERTH_MUST_USE;

#endif
