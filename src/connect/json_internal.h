/* What the files of the proto3 JSON codec share (json_names.c, json_decode.c,
 * json_encode.c, wkt.c, pb_check.c): field names and error paths, the
 * decoder's and encoder's state, and the well-known types. Not an API. */
#ifndef BERTH_JSON_INTERNAL_H
#define BERTH_JSON_INTERNAL_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "berth/buf.h"
#include "berth/codec_limits.h"
#include "berth/err.h"
#include "berth/json_codec.h"

/* Cap on a rendered field path and on echoed input in messages. */
#define JSON_PATH_MAX_BYTES 1024
#define JSON_ECHO_MAX 32
#define JSON_STRINGIFY_(x) #x
#define JSON_STRINGIFY(x) JSON_STRINGIFY_(x)
#define JSON_DEPTH_TEXT JSON_STRINGIFY(JSON_CODEC_MAX_DEPTH)

/* Where the decoder stands: a chain of segments on the C stack, rendered
 * into text only when an error needs it. */
enum json_seg_kind { SEG_FIELD, SEG_INDEX, SEG_KEY };

struct json_path {
    const struct json_path *up;
    enum json_seg_kind kind;
    const ProtobufCFieldDescriptor *field; /* SEG_FIELD */
    size_t index;                          /* SEG_INDEX */
    const char *key;                       /* SEG_KEY: the JSON key as given */
};

/* A JSON number's literal text: cJSON keeps only a double, which holds
 * integers exactly only below 2^53, so integers are read from the text. */
struct json_num_text {
    const cJSON *node;
    const char *text; /* into the request body; not NUL-terminated */
    size_t len;
};

/* A string token whose \u escapes are invalid (the body was patched so
 * cJSON parses it): the node, and whether the key of the node is meant. */
struct json_bad_string {
    const cJSON *node;
    bool key;
    size_t at; /* byte of the escape in the body */
    int kind;  /* what is wrong with it (json_decode.c) */
};

/* The decoder's state for one call. */
struct json_dec {
    ProtobufCAllocator *alloc; /* NULL: the system allocator */
    struct berth_err *err;
    const ProtobufCMessageDescriptor *root; /* for resolving Any type URLs */
    struct json_num_text *nums;             /* owned, sorted by node; NULL: use the doubles */
    size_t n_nums;
    struct json_bad_string *bad; /* owned, sorted by node */
    size_t n_bad;
};

struct json_enc {
    struct buf *out;
    struct berth_err *err;
    const ProtobufCMessageDescriptor *root; /* for resolving Any type URLs */
};

/* --- json_names.c: names, descriptors, error paths --- */
bool json_names_camel_equals(const char *proto_name, const char *key);
bool json_names_is_map(const ProtobufCFieldDescriptor *f);
void json_names_entry_fields(const ProtobufCMessageDescriptor *entry,
                             const ProtobufCFieldDescriptor **key_f,
                             const ProtobufCFieldDescriptor **val_f);
const ProtobufCFieldDescriptor *json_names_find_field(const ProtobufCMessageDescriptor *desc,
                                                      const char *key, unsigned *index);
size_t json_names_type_size(ProtobufCType type);
const char *json_names_type_name(ProtobufCType type);
/* Untrusted text for a message: capped, control characters and bytes that
 * are not UTF-8 shown as '?'. */
void json_names_echo(char *out, size_t outsz, const char *in);
/* The path as error messages spell it ("config.storage[0].path") appended
 * to out; a full buffer cuts it. */
void json_names_path(const struct json_path *at, struct buf *out);
/* invalid_argument: "<before>'<path>'<after>"; -1. */
int json_names_fail_at(struct berth_err *err, const struct json_path *at, const char *before,
                       const char *after);
/* invalid_argument: "invalid value for field '<path>': <detail>"; -1. */
int json_names_fail(struct berth_err *err, const struct json_path *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* --- json_decode.c: pieces the well-known types reuse --- */
void *json_dec_alloc(struct json_dec *d, size_t size);
ProtobufCMessage *json_dec_new_message(struct json_dec *d, const ProtobufCMessageDescriptor *desc);
char *json_dec_strndup(struct json_dec *d, const char *s, size_t n);
int json_dec_oom(struct json_dec *d);
int json_dec_fail_got(struct json_dec *d, const struct json_path *at, const char *expected,
                      const cJSON *v);
/* Decode the members of object `obj` into msg (fields of desc); keys that
 * name no field are ignored. */
int json_dec_fields(struct json_dec *d, const ProtobufCMessageDescriptor *desc, const cJSON *obj,
                    ProtobufCMessage *msg, const struct json_path *at, int depth);
/* One field of msg from v (map, repeated or singular, as f says). */
int json_dec_field(struct json_dec *d, const ProtobufCFieldDescriptor *f, const cJSON *v,
                   ProtobufCMessage *msg, const struct json_path *at, int depth);
/* A whole message of type desc from v, into a new message at *slot (freed
 * with its parent on any error). */
int json_dec_submessage(struct json_dec *d, const ProtobufCMessageDescriptor *desc, const cJSON *v,
                        ProtobufCMessage **slot, const struct json_path *at, int depth);
/* A string value (invalid escapes and UTF-8 refused); the text stays in v. */
int json_dec_check_string(struct json_dec *d, const cJSON *v, const struct json_path *at);

/* --- json_shape.c --- */
/* Count the values of a JSON text against lim before it is parsed: -1 with
 * invalid_argument or resource_exhausted naming the keys that lead to where
 * a bound was passed. Malformed text is left for the parser to refuse. */
int json_shape_check(const char *data, size_t len, const struct codec_limits *lim,
                     struct berth_err *err);

/* --- json_encode.c: pieces the well-known types reuse --- */
int json_enc_append(struct json_enc *e, const char *s, size_t n);
int json_enc_puts(struct json_enc *e, const char *s);
int json_enc_string(struct json_enc *e, const char *s);
/* The members of msg without the braces; *first says whether a comma is due. */
int json_enc_fields(struct json_enc *e, const ProtobufCMessage *msg, bool *first, int depth);
/* A value of field f read from slot (a message through its WKT form). */
int json_enc_value(struct json_enc *e, const ProtobufCFieldDescriptor *f, const void *slot,
                   int depth);
int json_enc_message(struct json_enc *e, const ProtobufCMessage *msg, int depth);
/* The value of field f of msg: a map's object, a list's array, or one value. */
int json_enc_field_value(struct json_enc *e, const ProtobufCMessage *msg,
                         const ProtobufCFieldDescriptor *f, int depth);

/* --- wkt.c: the well-known types' JSON forms, and the type registry --- */
bool wkt_is_special(const ProtobufCMessageDescriptor *desc);
/* Whether JSON null is a value of this field (google.protobuf.Value and
 * NullValue) rather than "unset". */
bool wkt_takes_null(const ProtobufCFieldDescriptor *f);
/* Whether an enum is google.protobuf.NullValue, whose JSON is null. */
bool wkt_is_null_enum(const ProtobufCEnumDescriptor *desc);
/* Decode v into msg (a new message of a well-known type). */
int wkt_decode(struct json_dec *d, const ProtobufCMessageDescriptor *desc, const cJSON *v,
               ProtobufCMessage *msg, const struct json_path *at, int depth);
/* Encode a message of a well-known type. */
int wkt_encode(struct json_enc *e, const ProtobufCMessage *msg, int depth);

/* --- pb_check.c --- */
/* keep[i] for each of the n entries of map field f: false for a NULL entry
 * and for one whose key a later entry repeats. -1 when memory ran out. */
int pb_check_last_keys(const ProtobufCFieldDescriptor *f, const ProtobufCMessage *const *entries,
                       size_t n, bool *keep);
/* Keep the last entry per key in a map field's entries (order of the kept
 * entries unchanged); the dropped ones are freed with alloc. -1 when memory
 * for sorting ran out (the map is then left as it was). */
int pb_check_dedupe_entries(const ProtobufCFieldDescriptor *f, ProtobufCMessage **entries,
                            size_t *n, ProtobufCAllocator *alloc);

#endif
