/* proto3 JSON <-> protobuf-c messages, driven only by descriptors: no
 * per-message code. The rules are those of protobuf's JSON mapping as the
 * Connect protocol uses it (lowerCamelCase out, both names in, 64-bit
 * integers as strings, the last of a map key given twice wins, the
 * well-known types in their special forms, ...). The binary path's checks
 * are in berth/pb_check.h. */
#ifndef BERTH_JSON_CODEC_H
#define BERTH_JSON_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "berth/buf.h"
#include "berth/codec_limits.h"
#include "berth/err.h"

/* Deepest message nesting accepted on input. */
#define JSON_CODEC_MAX_DEPTH 64

/* Parse `len` bytes of JSON into a new message of type `desc` (an object,
 * or for a well-known type its JSON form), allocated with
 * `alloc` (usually the request arena: the caller frees nothing field by field;
 * with a NULL allocator free with protobuf_c_message_free_unpacked(msg, NULL)).
 * On failure: -1 and err holds invalid_argument naming the field path
 * (e.g. "config.cpu.vcpuCount"), or resource_exhausted; *out is untouched. */
int json_codec_decode(const ProtobufCMessageDescriptor *desc, const char *data, size_t len,
                      ProtobufCAllocator *alloc, ProtobufCMessage **out,
                      struct berth_err *err) BERTH_MUST_USE;

/* The same within limits (NULL: none), counted on the text before any of
 * it is parsed: past them, invalid_argument or resource_exhausted naming
 * the field (berth/codec_limits.h). What a request body goes through. */
int json_codec_decode_limited(const ProtobufCMessageDescriptor *desc, const char *data, size_t len,
                              const struct codec_limits *limits, ProtobufCAllocator *alloc,
                              ProtobufCMessage **out, struct berth_err *err) BERTH_MUST_USE;

/* Append the proto3 JSON form of `msg` to `out` (default values omitted;
 * null only for google.protobuf.NullValue). -1 with err when `out`'s cap or
 * memory ran out, or internal when a well-known type holds what its JSON
 * form cannot say (a Timestamp past year 9999, an Any of an unknown type). */
int json_codec_encode(const ProtobufCMessage *msg, struct buf *out,
                      struct berth_err *err) BERTH_MUST_USE;

/* The lowerCamelCase JSON name of a proto field name ("vm_id" -> "vmId")
 * written into out (size outsz, truncated). */
void json_codec_camel_name(const char *proto_name, char *out, size_t outsz);

#endif
