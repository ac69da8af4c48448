/* Names of the proto3 JSON mapping: lowerCamelCase field names, map entry
 * descriptors, type sizes, and the field paths error messages name
 * ("config.storage[0].path"). Shared by the codec's files. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "berth/utf8.h"
#include "connect/json_internal.h"

static const char *camel_match(const char *name, bool up_first, const char *key);
static bool map_entry_name_equals(const char *field_name, const char *entry_name);
static void path_render(const struct json_path *at, struct buf *b);

void json_codec_camel_name(const char *proto_name, char *out, size_t outsz)
{
    bool up = false;
    size_t n = 0;

    if (outsz == 0)
        return;
    for (const char *p = proto_name; *p != '\0' && n + 1 < outsz; p++) {
        char c = *p;
        if (c == '_') {
            up = true;
            continue;
        }
        if (up && c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        up = false;
        out[n++] = c;
    }
    out[n] = '\0';
}

/* Walk `name` as protoc builds camel-case names (drop each '_', upper-case
 * what follows it, and the first letter too when up_first) against `key`.
 * The rest of key after the match, or NULL when they differ. */
static const char *camel_match(const char *name, bool up_first, const char *key)
{
    bool up = up_first;

    for (const char *p = name; *p != '\0'; p++) {
        char c = *p;
        if (c == '_') {
            up = true;
            continue;
        }
        if (up && c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        up = false;
        if (*key++ != c)
            return NULL;
    }
    return key;
}

/* Whether `key` is the lowerCamelCase form of `proto_name` (its json_name). */
bool json_names_camel_equals(const char *proto_name, const char *key)
{
    const char *rest = camel_match(proto_name, false, key);

    return rest != NULL && *rest == '\0';
}

/* protoc names the entry of map field "boot_options" "BootOptionsEntry". */
static bool map_entry_name_equals(const char *field_name, const char *entry_name)
{
    const char *rest = camel_match(field_name, true, entry_name);

    return rest != NULL && strcmp(rest, "Entry") == 0;
}

void json_names_entry_fields(const ProtobufCMessageDescriptor *entry,
                             const ProtobufCFieldDescriptor **key_f,
                             const ProtobufCFieldDescriptor **val_f)
{
    *key_f = NULL;
    *val_f = NULL;
    for (unsigned i = 0; i < entry->n_fields; i++) {
        if (entry->fields[i].id == 1 && strcmp(entry->fields[i].name, "key") == 0)
            *key_f = &entry->fields[i];
        else if (entry->fields[i].id == 2 && strcmp(entry->fields[i].name, "value") == 0)
            *val_f = &entry->fields[i];
    }
}

/* protobuf-c keeps no map flag: a map is a repeated <Field>Entry message
 * holding exactly key = 1 and value = 2. */
bool json_names_is_map(const ProtobufCFieldDescriptor *f)
{
    const ProtobufCMessageDescriptor *entry = f->descriptor;
    const ProtobufCFieldDescriptor *key_f, *val_f;

    if (f->label != PROTOBUF_C_LABEL_REPEATED || f->type != PROTOBUF_C_TYPE_MESSAGE ||
        entry == NULL || entry->n_fields != 2)
        return false;
    if (!map_entry_name_equals(f->name, entry->short_name))
        return false;
    json_names_entry_fields(entry, &key_f, &val_f);
    return key_f != NULL && val_f != NULL && key_f->label != PROTOBUF_C_LABEL_REPEATED &&
           val_f->label != PROTOBUF_C_LABEL_REPEATED;
}

/* Fields are few, so a linear scan over both spellings is cheapest. */
const ProtobufCFieldDescriptor *json_names_find_field(const ProtobufCMessageDescriptor *desc,
                                                      const char *key, unsigned *index)
{
    if (key == NULL)
        return NULL;
    for (unsigned i = 0; i < desc->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &desc->fields[i];
        if (json_names_camel_equals(f->name, key) || strcmp(f->name, key) == 0) {
            *index = i;
            return f;
        }
    }
    return NULL;
}

/* Bytes one element takes in a repeated field's array. */
size_t json_names_type_size(ProtobufCType type)
{
    switch (type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        return sizeof(int32_t);
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        return sizeof(uint32_t);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        return sizeof(int64_t);
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return sizeof(uint64_t);
    case PROTOBUF_C_TYPE_FLOAT:
        return sizeof(float);
    case PROTOBUF_C_TYPE_DOUBLE:
        return sizeof(double);
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_ENUM:
        return sizeof(int32_t); /* protobuf-c stores enums in 32 bits */
    case PROTOBUF_C_TYPE_STRING:
        return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(ProtobufCMessage *);
    }
    return 0;
}

const char *json_names_type_name(ProtobufCType type)
{
    switch (type) {
    case PROTOBUF_C_TYPE_INT32:
        return "int32";
    case PROTOBUF_C_TYPE_SINT32:
        return "sint32";
    case PROTOBUF_C_TYPE_SFIXED32:
        return "sfixed32";
    case PROTOBUF_C_TYPE_INT64:
        return "int64";
    case PROTOBUF_C_TYPE_SINT64:
        return "sint64";
    case PROTOBUF_C_TYPE_SFIXED64:
        return "sfixed64";
    case PROTOBUF_C_TYPE_UINT32:
        return "uint32";
    case PROTOBUF_C_TYPE_FIXED32:
        return "fixed32";
    case PROTOBUF_C_TYPE_UINT64:
        return "uint64";
    case PROTOBUF_C_TYPE_FIXED64:
        return "fixed64";
    case PROTOBUF_C_TYPE_FLOAT:
        return "float";
    case PROTOBUF_C_TYPE_DOUBLE:
        return "double";
    case PROTOBUF_C_TYPE_BOOL:
        return "bool";
    case PROTOBUF_C_TYPE_ENUM:
        return "enum";
    case PROTOBUF_C_TYPE_STRING:
        return "string";
    case PROTOBUF_C_TYPE_BYTES:
        return "bytes";
    case PROTOBUF_C_TYPE_MESSAGE:
        return "message";
    }
    return "unknown";
}

void json_names_echo(char *out, size_t outsz, const char *in)
{
    unsigned char *p = (unsigned char *)out;

    berth_err_quote(out, outsz, in, JSON_ECHO_MAX);
    while (*p != '\0') {
        size_t n = utf8_seq_len((const char *)p, strnlen((const char *)p, 4));
        if (n == 0) {
            *p++ = '?';
            continue;
        }
        p += n;
    }
}

/* Append the lowerCamelCase path ("config.storage[0].path",
 * "config.metadata[\"k\"]"). Best effort: a full buffer truncates it. */
static void path_render(const struct json_path *at, struct buf *b)
{
    char name[128], key[JSON_ECHO_MAX + 8];

    if (at == NULL)
        return;
    path_render(at->up, b);
    switch (at->kind) {
    case SEG_FIELD:
        json_codec_camel_name(at->field->name, name, sizeof(name));
        if (buf_printf(b, NULL, "%s%s", at->up != NULL ? "." : "", name) < 0)
            return;
        break;
    case SEG_INDEX:
        if (buf_printf(b, NULL, "[%zu]", at->index) < 0)
            return;
        break;
    case SEG_KEY:
        json_names_echo(key, sizeof(key), at->key);
        if (buf_printf(b, NULL, "[\"%s\"]", key) < 0)
            return;
        break;
    }
}

void json_names_path(const struct json_path *at, struct buf *out)
{
    path_render(at, out);
}

int json_names_fail_at(struct berth_err *err, const struct json_path *at, const char *before,
                       const char *after)
{
    struct buf path;

    buf_init(&path, JSON_PATH_MAX_BYTES);
    path_render(at, &path);
    berth_err_set(err, BERTH_INVALID_ARGUMENT, "%s'%s'%s", before,
                  path.data != NULL ? path.data : "", after);
    buf_release(&path);
    return -1;
}

int json_names_fail(struct berth_err *err, const struct json_path *at, const char *fmt, ...)
{
    char detail[256];
    va_list ap;

    detail[0] = ':';
    detail[1] = ' ';
    va_start(ap, fmt);
    vsnprintf(detail + 2, sizeof(detail) - 2, fmt, ap);
    va_end(ap);
    return json_names_fail_at(err, at, "invalid value for field ", detail);
}
