/* protobuf-c message -> proto3 JSON (see berth/json_codec.h): descriptor
 * driven, defaults left out, written into a struct buf; the well-known
 * types through wkt.c. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/base64.h"
#include "berth/utf8.h"
#include "connect/json_internal.h"

static bool is_zeroish(const ProtobufCFieldDescriptor *f, const void *slot);
static bool field_present(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f);
static int enc_name(struct json_enc *e, const char *proto_name);
static int enc_repeated(struct json_enc *e, const ProtobufCFieldDescriptor *f, const void *arr,
                        size_t n, int depth);
static int enc_map(struct json_enc *e, const ProtobufCFieldDescriptor *f,
                   const ProtobufCMessage *const *entries, size_t n, int depth);
static int enc_map_key(struct json_enc *e, const ProtobufCFieldDescriptor *key_f, const void *slot);
static int enc_double(struct json_enc *e, double x);
static int enc_float(struct json_enc *e, float x);
static int enc_bytes(struct json_enc *e, const ProtobufCBinaryData *bd);
static int enc_default_message(struct json_enc *e, const ProtobufCMessageDescriptor *desc,
                               int depth);

int json_codec_encode(const ProtobufCMessage *msg, struct buf *out, struct berth_err *err)
{
    struct json_enc e = {out, err, NULL};

    if (msg == NULL || msg->descriptor == NULL)
        return berth_err_set(err, BERTH_INTERNAL, "no message to encode");
    e.root = msg->descriptor;
    return json_enc_message(&e, msg, 1);
}

/* The proto3 default, which JSON output leaves out. */
static bool is_zeroish(const ProtobufCFieldDescriptor *f, const void *slot)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_ENUM:
        return *(const int32_t *)slot == 0;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        return *(const uint32_t *)slot == 0;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        return *(const int64_t *)slot == 0;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return *(const uint64_t *)slot == 0;
    case PROTOBUF_C_TYPE_FLOAT:
        return *(const float *)slot == 0; /* -0 too, as protobuf-c packs it */
    case PROTOBUF_C_TYPE_DOUBLE:
        return *(const double *)slot == 0;
    case PROTOBUF_C_TYPE_BOOL:
        return !*(const protobuf_c_boolean *)slot;
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(const char *const *)slot;
        return s == NULL || s[0] == '\0';
    }
    case PROTOBUF_C_TYPE_BYTES:
        return ((const ProtobufCBinaryData *)slot)->len == 0;
    case PROTOBUF_C_TYPE_MESSAGE:
        return *(const void *const *)slot == NULL;
    }
    return true;
}

/* Presence as protobuf-c's packer sees it, so JSON and binary agree. */
static bool field_present(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f)
{
    const char *base = (const char *)msg;
    const void *slot = base + f->offset;
    const void *quant = base + f->quantifier_offset;
    bool pointer = f->type == PROTOBUF_C_TYPE_STRING || f->type == PROTOBUF_C_TYPE_MESSAGE;

    if (f->label == PROTOBUF_C_LABEL_REPEATED)
        return *(const size_t *)quant > 0;
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        if (*(const uint32_t *)quant != f->id)
            return false;
        if (!pointer)
            return true;
    } else if (f->label == PROTOBUF_C_LABEL_OPTIONAL) {
        if (!pointer)
            return *(const protobuf_c_boolean *)quant;
    } else if (f->label == PROTOBUF_C_LABEL_NONE) {
        return !is_zeroish(f, slot);
    } else if (!pointer) {
        return true; /* proto2 required */
    }
    return *(const void *const *)slot != NULL && *(const void *const *)slot != f->default_value;
}

int json_enc_append(struct json_enc *e, const char *s, size_t n)
{
    return buf_append(e->out, s, n, e->err);
}

int json_enc_puts(struct json_enc *e, const char *s)
{
    return buf_appends(e->out, s, e->err);
}

/* "\"vmId\":" from "vm_id"; proto names never need escaping. */
static int enc_name(struct json_enc *e, const char *proto_name)
{
    const char *p = proto_name;

    if (json_enc_append(e, "\"", 1) < 0)
        return -1;
    while (*p != '\0') {
        size_t run = strcspn(p, "_");
        if (json_enc_append(e, p, run) < 0)
            return -1;
        p += run;
        while (*p == '_')
            p++;
        if (*p != '\0') {
            char c = *p >= 'a' && *p <= 'z' ? (char)(*p - 'a' + 'A') : *p;
            if (json_enc_append(e, &c, 1) < 0)
                return -1;
            p++;
        }
    }
    return json_enc_append(e, "\":", 2);
}

int json_enc_message(struct json_enc *e, const ProtobufCMessage *msg, int depth)
{
    bool first = true;

    if (depth > JSON_CODEC_MAX_DEPTH)
        return berth_err_set(e->err, BERTH_INTERNAL, "message nesting deeper than %d levels",
                             JSON_CODEC_MAX_DEPTH);
    if (wkt_is_special(msg->descriptor))
        return wkt_encode(e, msg, depth);
    if (json_enc_append(e, "{", 1) < 0 || json_enc_fields(e, msg, &first, depth) < 0)
        return -1;
    return json_enc_append(e, "}", 1);
}

int json_enc_fields(struct json_enc *e, const ProtobufCMessage *msg, bool *first, int depth)
{
    const ProtobufCMessageDescriptor *desc = msg->descriptor;

    for (unsigned i = 0; i < desc->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &desc->fields[i];
        if (!field_present(msg, f))
            continue;
        if ((!*first && json_enc_append(e, ",", 1) < 0) || enc_name(e, f->name) < 0 ||
            json_enc_field_value(e, msg, f, depth) < 0)
            return -1;
        *first = false;
    }
    return 0;
}

int json_enc_field_value(struct json_enc *e, const ProtobufCMessage *msg,
                         const ProtobufCFieldDescriptor *f, int depth)
{
    const char *base = (const char *)msg;
    const void *slot = base + f->offset;

    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        size_t n = *(const size_t *)(const void *)(base + f->quantifier_offset);
        const void *arr = *(const void *const *)slot;
        if (json_names_is_map(f))
            return enc_map(e, f, arr, n, depth);
        return enc_repeated(e, f, arr, n, depth);
    }
    return json_enc_value(e, f, slot, depth);
}

static int enc_repeated(struct json_enc *e, const ProtobufCFieldDescriptor *f, const void *arr,
                        size_t n, int depth)
{
    size_t elsize = json_names_type_size(f->type);

    if (json_enc_append(e, "[", 1) < 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        if ((i > 0 && json_enc_append(e, ",", 1) < 0) ||
            json_enc_value(e, f, (const char *)arr + i * elsize, depth) < 0)
            return -1;
    return json_enc_append(e, "]", 1);
}

/* A map as an object; values are written even when they are defaults. A
 * key given twice is written once, with its last value (protobuf's rule). */
static int enc_map(struct json_enc *e, const ProtobufCFieldDescriptor *f,
                   const ProtobufCMessage *const *entries, size_t n, int depth)
{
    const ProtobufCFieldDescriptor *key_f, *val_f;
    bool first = true, *keep = malloc(n > 0 ? n : 1);
    int rc = -1;

    if (keep == NULL || pb_check_last_keys(f, entries, n, keep) < 0) {
        berth_err_set(e->err, BERTH_RESOURCE_EXHAUSTED, "out of memory encoding a map");
        goto out;
    }
    json_names_entry_fields(f->descriptor, &key_f, &val_f);
    if (json_enc_append(e, "{", 1) < 0)
        goto out;
    for (size_t i = 0; i < n; i++) {
        const char *entry = (const char *)entries[i];
        if (!keep[i])
            continue;
        if ((!first && json_enc_append(e, ",", 1) < 0) ||
            enc_map_key(e, key_f, entry + key_f->offset) < 0 || json_enc_append(e, ":", 1) < 0 ||
            json_enc_value(e, val_f, entry + val_f->offset, depth) < 0)
            goto out;
        first = false;
    }
    rc = json_enc_append(e, "}", 1);
out:
    free(keep);
    return rc;
}

static int enc_map_key(struct json_enc *e, const ProtobufCFieldDescriptor *key_f, const void *slot)
{
    switch (key_f->type) {
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(const char *const *)slot;
        return json_enc_string(e, s != NULL ? s : "");
    }
    case PROTOBUF_C_TYPE_BOOL:
        return json_enc_puts(e, *(const protobuf_c_boolean *)slot ? "\"true\"" : "\"false\"");
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        return buf_printf(e->out, e->err, "\"%" PRId32 "\"", *(const int32_t *)slot);
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        return buf_printf(e->out, e->err, "\"%" PRIu32 "\"", *(const uint32_t *)slot);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        return buf_printf(e->out, e->err, "\"%" PRId64 "\"", *(const int64_t *)slot);
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return buf_printf(e->out, e->err, "\"%" PRIu64 "\"", *(const uint64_t *)slot);
    default:
        return berth_err_set(e->err, BERTH_INTERNAL, "map key of type %s cannot be encoded",
                             json_names_type_name(key_f->type));
    }
}

int json_enc_value(struct json_enc *e, const ProtobufCFieldDescriptor *f, const void *slot,
                   int depth)
{
    const ProtobufCEnumValue *ev;
    const ProtobufCMessage *sub;
    const char *s;

    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        return buf_printf(e->out, e->err, "%" PRId32, *(const int32_t *)slot);
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        return buf_printf(e->out, e->err, "%" PRIu32, *(const uint32_t *)slot);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        return buf_printf(e->out, e->err, "\"%" PRId64 "\"", *(const int64_t *)slot);
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return buf_printf(e->out, e->err, "\"%" PRIu64 "\"", *(const uint64_t *)slot);
    case PROTOBUF_C_TYPE_FLOAT:
        return enc_float(e, *(const float *)slot);
    case PROTOBUF_C_TYPE_DOUBLE:
        return enc_double(e, *(const double *)slot);
    case PROTOBUF_C_TYPE_BOOL:
        return json_enc_puts(e, *(const protobuf_c_boolean *)slot ? "true" : "false");
    case PROTOBUF_C_TYPE_ENUM:
        /* NULL_VALUE is null; an unknown number stays a number. */
        if (wkt_is_null_enum(f->descriptor) && *(const int32_t *)slot == 0)
            return json_enc_puts(e, "null");
        ev = protobuf_c_enum_descriptor_get_value(f->descriptor, *(const int32_t *)slot);
        if (ev == NULL)
            return buf_printf(e->out, e->err, "%" PRId32, *(const int32_t *)slot);
        return buf_printf(e->out, e->err, "\"%s\"", ev->name);
    case PROTOBUF_C_TYPE_STRING:
        s = *(const char *const *)slot;
        return json_enc_string(e, s != NULL ? s : "");
    case PROTOBUF_C_TYPE_BYTES:
        return enc_bytes(e, slot);
    case PROTOBUF_C_TYPE_MESSAGE:
        sub = *(const ProtobufCMessage *const *)slot;
        if (sub == NULL)
            return enc_default_message(e, f->descriptor, depth + 1);
        return json_enc_message(e, sub, depth + 1);
    }
    return berth_err_set(e->err, BERTH_INTERNAL, "field '%s' has an unknown type", f->name);
}

/* A message field that holds NULL (a map value or list element): the
 * form of the empty message, "{}" but for the well-known types. */
static int enc_default_message(struct json_enc *e, const ProtobufCMessageDescriptor *desc,
                               int depth)
{
    ProtobufCMessage *m;
    int rc;

    if (!wkt_is_special(desc))
        return json_enc_puts(e, "{}");
    m = calloc(1, desc->sizeof_message);
    if (m == NULL)
        return berth_err_set(e->err, BERTH_RESOURCE_EXHAUSTED, "out of memory encoding");
    protobuf_c_message_init(desc, m);
    rc = json_enc_message(e, m, depth);
    free(m);
    return rc;
}

/* Shortest text that reads back to the same double; integral values in
 * plain digits ("1000000", not "1e+06"). */
static int enc_double(struct json_enc *e, double x)
{
    char tmp[40];

    if (isnan(x))
        return json_enc_puts(e, "\"NaN\"");
    if (isinf(x))
        return json_enc_puts(e, x > 0 ? "\"Infinity\"" : "\"-Infinity\"");
    if (x == trunc(x) && fabs(x) < 1e17) {
        snprintf(tmp, sizeof(tmp), "%.0f", x);
        return json_enc_puts(e, tmp);
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*g", prec, x);
        if (strtod(tmp, NULL) == x)
            break;
    }
    return json_enc_puts(e, tmp);
}

static int enc_float(struct json_enc *e, float x)
{
    char tmp[40];

    if (isnan(x))
        return json_enc_puts(e, "\"NaN\"");
    if (isinf(x))
        return json_enc_puts(e, x > 0 ? "\"Infinity\"" : "\"-Infinity\"");
    if (x == truncf(x) && fabsf(x) < 1e17f) {
        snprintf(tmp, sizeof(tmp), "%.0f", (double)x);
        return json_enc_puts(e, tmp);
    }
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*g", prec, (double)x);
        if (strtof(tmp, NULL) == x)
            break;
    }
    return json_enc_puts(e, tmp);
}

/* A JSON string: quotes, backslashes and control characters escaped,
 * UTF-8 passed through, bytes that are not UTF-8 written as U+FFFD. */
int json_enc_string(struct json_enc *e, const char *s)
{
    const unsigned char *p = (const unsigned char *)s, *run = p;

    if (json_enc_append(e, "\"", 1) < 0)
        return -1;
    while (*p != '\0') {
        const char *esc = NULL;
        char hex[8];
        size_t n;

        /* Plain ASCII, nearly every byte berthd writes, needs no look ahead. */
        if (*p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\') {
            p++;
            continue;
        }
        n = *p < 0x80 ? 1 : utf8_seq_len((const char *)p, strnlen((const char *)p, 4));

        if (n > 1 || (n == 1 && *p >= 0x20 && *p != '"' && *p != '\\')) {
            p += n;
            continue;
        }
        switch (*p) {
        case '"':
            esc = "\\\"";
            break;
        case '\\':
            esc = "\\\\";
            break;
        case '\b':
            esc = "\\b";
            break;
        case '\f':
            esc = "\\f";
            break;
        case '\n':
            esc = "\\n";
            break;
        case '\r':
            esc = "\\r";
            break;
        case '\t':
            esc = "\\t";
            break;
        default:
            if (n == 0) {
                esc = "\\ufffd";
            } else {
                snprintf(hex, sizeof(hex), "\\u%04x", *p);
                esc = hex;
            }
        }
        if (json_enc_append(e, (const char *)run, (size_t)(p - run)) < 0 ||
            json_enc_puts(e, esc) < 0)
            return -1;
        p++;
        run = p;
    }
    if (json_enc_append(e, (const char *)run, (size_t)(p - run)) < 0)
        return -1;
    return json_enc_append(e, "\"", 1);
}

/* Standard base64 with padding. */
static int enc_bytes(struct json_enc *e, const ProtobufCBinaryData *bd)
{
    if (json_enc_append(e, "\"", 1) < 0 || base64_encode(bd->data, bd->len, e->out, e->err) < 0)
        return -1;
    return json_enc_append(e, "\"", 1);
}
