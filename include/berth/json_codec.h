/* proto3 JSON <-> protobuf-c messages, driven only by descriptors: no
 * per-message code. The rules are those of the Connect protocol's JSON
 * mapping (lowerCamelCase out, both names in, 64-bit integers as strings, ...). */
#ifndef BERTH_JSON_CODEC_H
#define BERTH_JSON_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "berth/buf.h"
#include "berth/err.h"

/* Deepest message nesting accepted on input. */
#define JSON_CODEC_MAX_DEPTH 64

/* Parse `len` bytes of JSON into a new message of type `desc`, allocated with
 * `alloc` (usually the request arena: the caller frees nothing field by field;
 * with a NULL allocator free with protobuf_c_message_free_unpacked(msg, NULL)).
 * On failure: -1 and err holds invalid_argument naming the field path
 * (e.g. "config.cpu.vcpuCount"), or resource_exhausted; *out is untouched. */
int json_codec_decode(const ProtobufCMessageDescriptor *desc, const char *data, size_t len,
                      ProtobufCAllocator *alloc, ProtobufCMessage **out,
                      struct berth_err *err) BERTH_MUST_USE;

/* Append the proto3 JSON form of `msg` to `out` (default values omitted,
 * never null). -1 with err when `out`'s cap or memory ran out. */
int json_codec_encode(const ProtobufCMessage *msg, struct buf *out,
                      struct berth_err *err) BERTH_MUST_USE;

/* Check the strings of a binary protobuf message (`len` bytes, already
 * unpacked fine as `desc`) as connect-go does: string fields, at any depth
 * (nested, repeated, map keys and values), must be valid UTF-8 without NUL
 * bytes, which protobuf-c's char * would cut short. Nesting deeper than
 * JSON_CODEC_MAX_DEPTH is refused too. -1 with invalid_argument naming the
 * field path (as json_codec_decode does) when one is not. */
int json_codec_check_binary(const ProtobufCMessageDescriptor *desc, const uint8_t *data, size_t len,
                            struct berth_err *err) BERTH_MUST_USE;

/* Length of the well-formed UTF-8 sequence at p (1-4 bytes, at most
 * `avail`), or 0 when the bytes there are not one. */
size_t json_codec_utf8_len(const char *p, size_t avail);

/* The lowerCamelCase JSON name of a proto field name ("vm_id" -> "vmId")
 * written into out (size outsz, truncated). */
void json_codec_camel_name(const char *proto_name, char *out, size_t outsz);

#endif
