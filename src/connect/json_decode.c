/* proto3 JSON <-> protobuf-c messages (see berth/json_codec.h): one codec
 * driven by the descriptors, cJSON for parsing, a struct buf for output.
 * Decoded messages live in the caller's ProtobufCAllocator alone. */
#include "berth/json_codec.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Doubles at or beyond this round to infinity as a float. */
#define FLOAT_ROUND_LIMIT 0x1.ffffffp+127
/* Cap on a rendered field path and on echoed input in messages. */
#define PATH_MAX_BYTES 1024
#define ECHO_MAX 32
#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)
#define DEPTH_TEXT STRINGIFY(JSON_CODEC_MAX_DEPTH)

/* Where the decoder stands: a chain of segments on the C stack, rendered
 * into text only when an error needs it. */
enum seg_kind { SEG_FIELD, SEG_INDEX, SEG_KEY };

struct path {
    const struct path *up;
    enum seg_kind kind;
    const ProtobufCFieldDescriptor *field; /* SEG_FIELD */
    size_t index;                          /* SEG_INDEX */
    const char *key;                       /* SEG_KEY: the JSON key as given */
};

/* A JSON number's literal text: cJSON keeps only a double, which holds
 * integers exactly only below 2^53, so integers are read from the text. */
struct num_text {
    const cJSON *node;
    const char *text; /* into the request body; not NUL-terminated */
    size_t len;
};

struct dec {
    ProtobufCAllocator *alloc; /* NULL: the system allocator */
    struct berth_err *err;
    struct num_text *nums; /* owned, sorted by node; NULL: use the doubles */
    size_t n_nums;
};

struct enc {
    struct buf *out;
    struct berth_err *err;
};

/* A decoded map key, for finding duplicates after sorting. */
struct key_ref {
    const char *str;   /* string keys */
    uint64_t ordered;  /* integer and bool keys, mapped to preserve order */
    const char *given; /* the JSON key, for the error path */
};

enum num_result { NUM_OK, NUM_SYNTAX, NUM_FRACTION, NUM_RANGE };

/* A cursor over protobuf wire bytes, and one field read from them. */
struct wire {
    const uint8_t *p;
    size_t len;
    size_t pos;
};

struct wire_field {
    uint32_t number;
    unsigned type;       /* wire type */
    const uint8_t *data; /* length-delimited (type 2) only */
    size_t len;
};

#define WIRE_LEN 2

/* --- names and descriptors --- */
static const char *camel_match(const char *name, bool up_first, const char *key);
static bool camel_equals(const char *proto_name, const char *key);
static bool map_entry_name_equals(const char *field_name, const char *entry_name);
static bool is_map_field(const ProtobufCFieldDescriptor *f);
static void entry_fields(const ProtobufCMessageDescriptor *entry,
                         const ProtobufCFieldDescriptor **key_f,
                         const ProtobufCFieldDescriptor **val_f);
static const ProtobufCFieldDescriptor *find_field(const ProtobufCMessageDescriptor *desc,
                                                  const char *key, unsigned *index);
static size_t type_size(ProtobufCType type);
static const char *type_name(ProtobufCType type);

/* --- text helpers shared by both directions --- */
static bool is_digit(char c);
static size_t utf8_seq_len(const unsigned char *p);
static bool utf8_valid(const char *s);
static void echo_quote(char *out, size_t outsz, const char *in);
static bool json_number_text(const char *s);
static enum num_result parse_decimal(const char *s, bool *neg, uint64_t *mag);
static int b64_value(unsigned char c, bool url);
static int b64_decode(const char *s, size_t n, unsigned char *out, size_t *outlen);

/* --- decoding --- */
static bool is_blank(const char *data, size_t len);
static int scan_raw(const char *data, size_t len, struct berth_err *err);
static int parse_json(const char *data, size_t len, cJSON **root, struct berth_err *err);
static size_t scan_numbers(const char *data, size_t len, struct num_text *out);
static void number_nodes(const cJSON *v, struct num_text *nums, size_t n, size_t *k);
static int num_text_cmp(const void *a, const void *b);
static int index_numbers(struct dec *d, const char *data, size_t len, const cJSON *root);
static const struct num_text *find_number(const struct dec *d, const cJSON *v);
static void path_render(const struct path *at, struct buf *b);
static const char *describe(const cJSON *v, char *tmp, size_t tmpsz);
static int dec_fail_at(struct dec *d, const struct path *at, const char *before, const char *after);
static int dec_fail(struct dec *d, const struct path *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int dec_fail_got(struct dec *d, const struct path *at, const char *expected, const cJSON *v);
static int dec_oom(struct dec *d);
static void *mem_alloc(struct dec *d, size_t size);
static ProtobufCMessage *new_message(struct dec *d, const ProtobufCMessageDescriptor *desc);
static char *copy_string(struct dec *d, const char *s);
static int dec_message(struct dec *d, const ProtobufCMessageDescriptor *desc, const cJSON *obj,
                       ProtobufCMessage *msg, const struct path *at, int depth);
static int dec_field(struct dec *d, const ProtobufCFieldDescriptor *f, const cJSON *v,
                     ProtobufCMessage *msg, const struct path *at, int depth);
static int dec_singular(struct dec *d, const ProtobufCFieldDescriptor *f, const cJSON *v,
                        ProtobufCMessage *msg, const struct path *at, int depth);
static int dec_repeated(struct dec *d, const ProtobufCFieldDescriptor *f, const cJSON *v,
                        ProtobufCMessage *msg, const struct path *at, int depth);
static int dec_map(struct dec *d, const ProtobufCFieldDescriptor *f, const cJSON *v,
                   ProtobufCMessage *msg, const struct path *at, int depth);
static int dec_map_entry(struct dec *d, const ProtobufCMessageDescriptor *entry_desc,
                         const cJSON *item, ProtobufCMessage *entry, struct key_ref *ref,
                         const struct path *at, int depth);
static int dec_map_key(struct dec *d, const ProtobufCFieldDescriptor *key_f, const char *key,
                       void *slot, struct key_ref *ref, const struct path *at);
static int check_duplicate_keys(struct dec *d, struct key_ref *refs, size_t n,
                                const struct path *at);
static int key_ref_cmp(const void *a, const void *b);
static int dec_value(struct dec *d, const ProtobufCFieldDescriptor *f, const cJSON *v, void *slot,
                     const struct path *at, int depth);
static int int_from_json(struct dec *d, const cJSON *v, ProtobufCType type, const struct path *at,
                         bool *neg, uint64_t *mag);
static int int_from_text(struct dec *d, const char *s, ProtobufCType type, const struct path *at,
                         bool *neg, uint64_t *mag);
static int int_store(struct dec *d, ProtobufCType type, bool neg, uint64_t mag, void *slot,
                     const struct path *at);
static int dec_integer(struct dec *d, ProtobufCType type, const cJSON *v, void *slot,
                       const struct path *at);
static int dec_floating(struct dec *d, ProtobufCType type, const cJSON *v, void *slot,
                        const struct path *at);
static int dec_enum(struct dec *d, const ProtobufCFieldDescriptor *f, const cJSON *v, void *slot,
                    const struct path *at);
static int dec_string(struct dec *d, const cJSON *v, void *slot, const struct path *at);
static int dec_bytes(struct dec *d, const cJSON *v, void *slot, const struct path *at);
static int dec_submessage(struct dec *d, const ProtobufCFieldDescriptor *f, const cJSON *v,
                          void *slot, const struct path *at, int depth);

/* --- strings of binary messages --- */
static int wire_varint(struct wire *w, uint64_t *v);
static int wire_next(struct wire *w, struct wire_field *f);
static const char *wire_string_problem(const uint8_t *data, size_t len);
static int bin_message(struct dec *d, const ProtobufCMessageDescriptor *desc, const uint8_t *data,
                       size_t len, const struct path *up, int depth);
static int bin_field(struct dec *d, const ProtobufCFieldDescriptor *f, const struct wire_field *wf,
                     const struct path *at, int depth);
static int bin_map_entry(struct dec *d, const ProtobufCFieldDescriptor *f,
                         const struct wire_field *wf, const struct path *at, int depth);

/* --- encoding --- */
static bool is_zeroish(const ProtobufCFieldDescriptor *f, const void *slot);
static bool field_present(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f);
static int enc_append(struct enc *e, const char *s, size_t n);
static int enc_puts(struct enc *e, const char *s);
static int enc_name(struct enc *e, const char *proto_name);
static int enc_message(struct enc *e, const ProtobufCMessage *msg, int depth);
static int enc_field(struct enc *e, const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f,
                     int depth);
static int enc_repeated(struct enc *e, const ProtobufCFieldDescriptor *f, const void *arr, size_t n,
                        int depth);
static int enc_map(struct enc *e, const ProtobufCFieldDescriptor *f,
                   const ProtobufCMessage *const *entries, size_t n, int depth);
static int enc_map_key(struct enc *e, const ProtobufCFieldDescriptor *key_f, const void *slot);
static int enc_value(struct enc *e, const ProtobufCFieldDescriptor *f, const void *slot, int depth);
static int enc_double(struct enc *e, double x);
static int enc_float(struct enc *e, float x);
static int enc_string(struct enc *e, const char *s);
static int enc_bytes(struct enc *e, const ProtobufCBinaryData *bd);

/* ===================================================================== */
/* names and descriptors                                                  */
/* ===================================================================== */

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
static bool camel_equals(const char *proto_name, const char *key)
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

static void entry_fields(const ProtobufCMessageDescriptor *entry,
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
static bool is_map_field(const ProtobufCFieldDescriptor *f)
{
    const ProtobufCMessageDescriptor *entry = f->descriptor;
    const ProtobufCFieldDescriptor *key_f, *val_f;

    if (f->label != PROTOBUF_C_LABEL_REPEATED || f->type != PROTOBUF_C_TYPE_MESSAGE ||
        entry == NULL || entry->n_fields != 2)
        return false;
    if (!map_entry_name_equals(f->name, entry->short_name))
        return false;
    entry_fields(entry, &key_f, &val_f);
    return key_f != NULL && val_f != NULL && key_f->label != PROTOBUF_C_LABEL_REPEATED &&
           val_f->label != PROTOBUF_C_LABEL_REPEATED;
}

/* Fields are few, so a linear scan over both spellings is cheapest. */
static const ProtobufCFieldDescriptor *find_field(const ProtobufCMessageDescriptor *desc,
                                                  const char *key, unsigned *index)
{
    if (key == NULL)
        return NULL;
    for (unsigned i = 0; i < desc->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &desc->fields[i];
        if (camel_equals(f->name, key) || strcmp(f->name, key) == 0) {
            *index = i;
            return f;
        }
    }
    return NULL;
}

/* Bytes one element takes in a repeated field's array. */
static size_t type_size(ProtobufCType type)
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

static const char *type_name(ProtobufCType type)
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

/* ===================================================================== */
/* text helpers                                                           */
/* ===================================================================== */

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Length of the well-formed UTF-8 sequence at p (1-4), or 0 when it is not
 * one (overlong forms, surrogates and code points past U+10FFFF included).
 * Stops at a NUL, which is never a continuation byte. */
static size_t utf8_seq_len(const unsigned char *p)
{
    return json_codec_utf8_len((const char *)p, strnlen((const char *)p, 4));
}

size_t json_codec_utf8_len(const char *s, size_t avail)
{
    const unsigned char *p = (const unsigned char *)s;
    unsigned char c;

    if (avail == 0)
        return 0;
    c = p[0];
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        return avail >= 2 && (p[1] & 0xc0) == 0x80 ? 2 : 0;
    if (c >= 0xe0 && c <= 0xef) {
        unsigned char lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
        if (avail < 3 || p[1] < lo || p[1] > hi || (p[2] & 0xc0) != 0x80)
            return 0;
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        unsigned char lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
        if (avail < 4 || p[1] < lo || p[1] > hi || (p[2] & 0xc0) != 0x80 || (p[3] & 0xc0) != 0x80)
            return 0;
        return 4;
    }
    return 0;
}

static bool utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;

    while (*p != '\0') {
        size_t n = utf8_seq_len(p);
        if (n == 0)
            return false;
        p += n;
    }
    return true;
}

/* Untrusted text for a message: capped, control characters and bytes that
 * are not UTF-8 (a cut sequence included) shown as '?'. */
static void echo_quote(char *out, size_t outsz, const char *in)
{
    unsigned char *p = (unsigned char *)out;

    berth_err_quote(out, outsz, in, ECHO_MAX);
    while (*p != '\0') {
        size_t n = utf8_seq_len(p);
        if (n == 0) {
            *p++ = '?';
            continue;
        }
        p += n;
    }
}

/* The JSON number grammar (leading zeros tolerated), for numeric strings. */
static bool json_number_text(const char *s)
{
    if (*s == '-')
        s++;
    if (!is_digit(*s))
        return false;
    while (is_digit(*s))
        s++;
    if (*s == '.') {
        s++;
        if (!is_digit(*s))
            return false;
        while (is_digit(*s))
            s++;
    }
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-')
            s++;
        if (!is_digit(*s))
            return false;
        while (is_digit(*s))
            s++;
    }
    return *s == '\0';
}

/* Exact integer value of a decimal in JSON number form ("12", "-3",
 * "1e2", "1.50e1"): sign and magnitude, no detour through double. */
static enum num_result parse_decimal(const char *s, bool *neg, uint64_t *mag)
{
    const char *intp, *frac = "";
    size_t nint, nfrac = 0, total, first, last;
    long exp = 0, exp10;
    bool exp_neg = false;
    uint64_t v = 0;

    if (!json_number_text(s))
        return NUM_SYNTAX;
    *neg = *s == '-';
    if (*neg)
        s++;
    intp = s;
    while (is_digit(*s))
        s++;
    nint = (size_t)(s - intp);
    if (*s == '.') {
        frac = ++s;
        while (is_digit(*s))
            s++;
        nfrac = (size_t)(s - frac);
    }
    if (*s == 'e' || *s == 'E') {
        s++;
        exp_neg = *s == '-';
        if (*s == '+' || *s == '-')
            s++;
        for (; is_digit(*s); s++)
            if (exp < 100000) /* saturate: anything this big is out of range */
                exp = exp * 10 + (*s - '0');
        if (exp_neg)
            exp = -exp;
    }
    /* Significant digits run from `first` to `last` across both parts. */
    total = nint + nfrac;
    for (first = 0; first < total; first++)
        if ((first < nint ? intp[first] : frac[first - nint]) != '0')
            break;
    if (first == total) {
        *mag = 0;
        return NUM_OK;
    }
    for (last = total - 1; last > first; last--)
        if ((last < nint ? intp[last] : frac[last - nint]) != '0')
            break;
    exp10 = exp - (long)nfrac + (long)(total - 1 - last);
    if (exp10 < 0)
        return NUM_FRACTION;
    if ((long)(last - first + 1) + exp10 > 20)
        return NUM_RANGE;
    for (size_t i = first; i <= last; i++) {
        unsigned digit = (unsigned)((i < nint ? intp[i] : frac[i - nint]) - '0');
        if (v > (UINT64_MAX - digit) / 10)
            return NUM_RANGE;
        v = v * 10 + digit;
    }
    for (long i = 0; i < exp10; i++) {
        if (v > UINT64_MAX / 10)
            return NUM_RANGE;
        v *= 10;
    }
    *mag = v;
    return NUM_OK;
}

static int b64_value(unsigned char c, bool url)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == (url ? '-' : '+'))
        return 62;
    if (c == (url ? '_' : '/'))
        return 63;
    return -1;
}

/* Standard or URL-safe base64 (one alphabet, not both), padded or not.
 * With out NULL only validates and sizes; 0, or -1 when invalid. */
static int b64_decode(const char *s, size_t n, unsigned char *out, size_t *outlen)
{
    size_t pad = 0, body, o = 0;
    bool url = strpbrk(s, "-_") != NULL;
    uint32_t acc = 0;

    while (pad < n && s[n - 1 - pad] == '=')
        pad++;
    body = n - pad;
    if (pad > 2 || (pad > 0 && n % 4 != 0) || body % 4 == 1)
        return -1;
    for (size_t i = 0; i < body; i++) {
        int v = b64_value((unsigned char)s[i], url);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        if (i % 4 == 3) {
            if (out) {
                out[o] = (unsigned char)(acc >> 16);
                out[o + 1] = (unsigned char)(acc >> 8);
                out[o + 2] = (unsigned char)acc;
            }
            o += 3;
            acc = 0;
        }
    }
    if (body % 4 == 2) {
        if (out)
            out[o] = (unsigned char)(acc >> 4);
        o += 1;
    } else if (body % 4 == 3) {
        if (out) {
            out[o] = (unsigned char)(acc >> 10);
            out[o + 1] = (unsigned char)(acc >> 2);
        }
        o += 2;
    }
    *outlen = o;
    return 0;
}

/* ===================================================================== */
/* decoding                                                               */
/* ===================================================================== */

int json_codec_decode(const ProtobufCMessageDescriptor *desc, const char *data, size_t len,
                      ProtobufCAllocator *alloc, ProtobufCMessage **out, struct berth_err *err)
{
    struct dec d = {alloc, err, NULL, 0};
    cJSON *root = NULL;
    ProtobufCMessage *msg = NULL;
    char tmp[64];
    int rc = -1;

    if (data == NULL || is_blank(data, len)) {
        berth_err_set(err, BERTH_INVALID_ARGUMENT, "empty JSON body; send {} for an empty message");
        goto out;
    }
    if (scan_raw(data, len, err) < 0 || parse_json(data, len, &root, err) < 0)
        goto out;
    if (!cJSON_IsObject(root)) {
        berth_err_set(err, BERTH_INVALID_ARGUMENT, "expected a JSON object, got %s",
                      describe(root, tmp, sizeof(tmp)));
        goto out;
    }
    if (index_numbers(&d, data, len, root) < 0)
        goto out;
    msg = new_message(&d, desc);
    if (msg == NULL || dec_message(&d, desc, root, msg, NULL, 1) < 0)
        goto out;
    *out = msg;
    msg = NULL;
    rc = 0;
out:
    if (msg != NULL)
        protobuf_c_message_free_unpacked(msg, alloc);
    free(d.nums);
    cJSON_Delete(root);
    return rc;
}

/* The number literals of a JSON text, in document order (outside strings
 * only numbers hold '-' or a digit). Counts them; fills `out` unless NULL. */
static size_t scan_numbers(const char *data, size_t len, struct num_text *out)
{
    bool in_string = false;
    size_t n = 0;

    for (size_t i = 0; i < len; i++) {
        char c = data[i];
        if (in_string) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_string = false;
            continue;
        }
        if (c == '"') {
            in_string = true;
        } else if (c == '-' || is_digit(c)) {
            size_t j = i + 1;
            while (j < len && (is_digit(data[j]) || data[j] == '.' || data[j] == 'e' ||
                               data[j] == 'E' || data[j] == '+' || data[j] == '-'))
                j++;
            if (out != NULL) {
                out[n].text = data + i;
                out[n].len = j - i;
            }
            n++;
            i = j - 1;
        }
    }
    return n;
}

/* The number nodes of a tree in document order, paired with the literals. */
static void number_nodes(const cJSON *v, struct num_text *nums, size_t n, size_t *k)
{
    for (; v != NULL; v = v->next) {
        if (cJSON_IsNumber(v)) {
            if (*k < n)
                nums[*k].node = v;
            (*k)++;
        }
        number_nodes(v->child, nums, n, k);
    }
}

static int num_text_cmp(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)((const struct num_text *)a)->node;
    uintptr_t y = (uintptr_t)((const struct num_text *)b)->node;

    return x < y ? -1 : x > y;
}

/* Pair each number node with its text. Should the two ever disagree on
 * the count, the table is dropped and the doubles are used. */
static int index_numbers(struct dec *d, const char *data, size_t len, const cJSON *root)
{
    size_t n = scan_numbers(data, len, NULL), k = 0;

    if (n == 0)
        return 0;
    d->nums = calloc(n, sizeof(*d->nums));
    if (d->nums == NULL)
        return dec_oom(d);
    scan_numbers(data, len, d->nums);
    number_nodes(root, d->nums, n, &k);
    if (k != n) {
        free(d->nums);
        d->nums = NULL;
        return 0;
    }
    qsort(d->nums, n, sizeof(*d->nums), num_text_cmp);
    d->n_nums = n;
    return 0;
}

static const struct num_text *find_number(const struct dec *d, const cJSON *v)
{
    struct num_text key = {.node = v};

    if (d->nums == NULL)
        return NULL;
    return bsearch(&key, d->nums, d->n_nums, sizeof(*d->nums), num_text_cmp);
}

static bool is_blank(const char *data, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (data[i] != ' ' && data[i] != '\t' && data[i] != '\n' && data[i] != '\r')
            return false;
    return true;
}

/* What cJSON lets through but JSON or protobuf-c cannot take: control
 * bytes (cJSON treats them as whitespace or string content) and \u0000,
 * which would silently cut a C string short. */
static int scan_raw(const char *data, size_t len, struct berth_err *err)
{
    bool in_string = false;

    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)data[i];
        if (c < 0x20 && (in_string || (c != '\t' && c != '\n' && c != '\r')))
            return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                                 "malformed JSON at byte %zu: unescaped control character", i);
        if (!in_string) {
            in_string = c == '"';
            continue;
        }
        if (c == '"') {
            in_string = false;
        } else if (c == '\\' && i + 1 < len) {
            if (data[i + 1] == 'u' && i + 5 < len && memcmp(data + i + 2, "0000", 4) == 0)
                return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                                     "unsupported JSON at byte %zu: strings may not hold "
                                     "\\u0000",
                                     i);
            i++;
        }
    }
    return 0;
}

/* Parse exactly one JSON value followed by nothing but whitespace. */
static int parse_json(const char *data, size_t len, cJSON **root, struct berth_err *err)
{
    const char *end = NULL;
    cJSON *tree = cJSON_ParseWithLengthOpts(data, len, &end, 0);
    size_t at;

    if (tree == NULL) {
        at = end != NULL && end >= data && end <= data + len ? (size_t)(end - data) : 0;
        return berth_err_set(err, BERTH_INVALID_ARGUMENT, "malformed JSON at byte %zu", at);
    }
    for (at = (size_t)(end - data); at < len; at++)
        if (!is_blank(data + at, 1))
            break;
    if (at < len) {
        cJSON_Delete(tree);
        return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                             "malformed JSON at byte %zu: data after the value", at);
    }
    *root = tree;
    return 0;
}

/* Append the lowerCamelCase path ("config.storage[0].path",
 * "config.metadata[\"k\"]"). Best effort: a full buffer truncates it. */
static void path_render(const struct path *at, struct buf *b)
{
    char name[128], key[ECHO_MAX + 8];

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
        echo_quote(key, sizeof(key), at->key);
        if (buf_printf(b, NULL, "[\"%s\"]", key) < 0)
            return;
        break;
    }
}

/* A short description of a JSON value for "got ..." in messages. */
static const char *describe(const cJSON *v, char *tmp, size_t tmpsz)
{
    char quoted[ECHO_MAX + 8];

    if (cJSON_IsString(v)) {
        echo_quote(quoted, sizeof(quoted), v->valuestring);
        snprintf(tmp, tmpsz, "'%s'", quoted);
        return tmp;
    }
    if (cJSON_IsNumber(v)) {
        snprintf(tmp, tmpsz, "%g", v->valuedouble);
        return tmp;
    }
    if (cJSON_IsTrue(v))
        return "true";
    if (cJSON_IsFalse(v))
        return "false";
    if (cJSON_IsNull(v))
        return "null";
    if (cJSON_IsArray(v))
        return "an array";
    return "an object";
}

/* invalid_argument: "<before>'<path>'<after>". */
static int dec_fail_at(struct dec *d, const struct path *at, const char *before, const char *after)
{
    struct buf path;

    buf_init(&path, PATH_MAX_BYTES);
    path_render(at, &path);
    berth_err_set(d->err, BERTH_INVALID_ARGUMENT, "%s'%s'%s", before,
                  path.data != NULL ? path.data : "", after);
    buf_release(&path);
    return -1;
}

/* invalid_argument: "invalid value for field '<path>': <detail>". */
static int dec_fail(struct dec *d, const struct path *at, const char *fmt, ...)
{
    char detail[256];
    va_list ap;

    detail[0] = ':';
    detail[1] = ' ';
    va_start(ap, fmt);
    vsnprintf(detail + 2, sizeof(detail) - 2, fmt, ap);
    va_end(ap);
    return dec_fail_at(d, at, "invalid value for field ", detail);
}

static int dec_fail_got(struct dec *d, const struct path *at, const char *expected, const cJSON *v)
{
    char tmp[64];

    return dec_fail(d, at, "expected %s, got %s", expected, describe(v, tmp, sizeof(tmp)));
}

static int dec_oom(struct dec *d)
{
    return berth_err_set(d->err, BERTH_RESOURCE_EXHAUSTED, "out of memory decoding JSON");
}

/* Zeroed memory from the caller's allocator (system allocator if NULL). */
static void *mem_alloc(struct dec *d, size_t size)
{
    void *p;

    if (size == 0)
        size = 1;
    p = d->alloc != NULL ? d->alloc->alloc(d->alloc->allocator_data, size) : malloc(size);
    if (p == NULL) {
        dec_oom(d);
        return NULL;
    }
    memset(p, 0, size);
    return p;
}

static ProtobufCMessage *new_message(struct dec *d, const ProtobufCMessageDescriptor *desc)
{
    ProtobufCMessage *m = mem_alloc(d, desc->sizeof_message);

    if (m != NULL)
        protobuf_c_message_init(desc, m);
    return m;
}

static char *copy_string(struct dec *d, const char *s)
{
    size_t n = strlen(s);
    char *p = mem_alloc(d, n + 1);

    if (p != NULL)
        memcpy(p, s, n + 1);
    return p;
}

/* Fill `msg` from the members of `obj`. Whatever is allocated is linked
 * into `msg` at once, so freeing the root message frees it on any error. */
static int dec_message(struct dec *d, const ProtobufCMessageDescriptor *desc, const cJSON *obj,
                       ProtobufCMessage *msg, const struct path *at, int depth)
{
    unsigned char small[64], *seen = small;
    int rc = -1;

    if (depth > JSON_CODEC_MAX_DEPTH)
        return dec_fail_at(d, at, "message nesting deeper than " DEPTH_TEXT " levels at field ",
                           "");
    if (desc->n_fields > sizeof(small)) {
        seen = calloc(desc->n_fields, 1);
        if (seen == NULL)
            return dec_oom(d);
    } else {
        memset(small, 0, sizeof(small));
    }
    for (const cJSON *item = obj->child; item != NULL; item = item->next) {
        unsigned i = 0;
        const ProtobufCFieldDescriptor *f = find_field(desc, item->string, &i);
        struct path here = {at, SEG_FIELD, f, 0, NULL};

        if (f == NULL)
            continue; /* unknown keys are ignored, whatever their value */
        if (seen[i]) {
            dec_fail_at(d, &here, "field ", " given more than once");
            goto out;
        }
        seen[i] = 1;
        if (cJSON_IsNull(item))
            continue;
        if (dec_field(d, f, item, msg, &here, depth) < 0)
            goto out;
    }
    rc = 0;
out:
    if (seen != small)
        free(seen);
    return rc;
}

static int dec_field(struct dec *d, const ProtobufCFieldDescriptor *f, const cJSON *v,
                     ProtobufCMessage *msg, const struct path *at, int depth)
{
    if (is_map_field(f))
        return dec_map(d, f, v, msg, at, depth);
    if (f->label == PROTOBUF_C_LABEL_REPEATED)
        return dec_repeated(d, f, v, msg, at, depth);
    return dec_singular(d, f, v, msg, at, depth);
}

/* A plain, optional or oneof field: sets has_ or the oneof case too. */
static int dec_singular(struct dec *d, const ProtobufCFieldDescriptor *f, const cJSON *v,
                        ProtobufCMessage *msg, const struct path *at, int depth)
{
    char *base = (char *)msg;
    uint32_t *oneof_case = NULL;
    protobuf_c_boolean *has = NULL;
    int r;

    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        oneof_case = (uint32_t *)(void *)(base + f->quantifier_offset);
        if (*oneof_case != 0 && *oneof_case != f->id) {
            const ProtobufCFieldDescriptor *other =
                protobuf_c_message_descriptor_get_field(msg->descriptor, (int)*oneof_case);
            char name[128];
            json_codec_camel_name(other != NULL ? other->name : "?", name, sizeof(name));
            return dec_fail(d, at, "its oneof is already set by '%s'", name);
        }
        /* Set before decoding, so a message or string is freed on error. */
        *oneof_case = f->id;
    } else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->type != PROTOBUF_C_TYPE_STRING &&
               f->type != PROTOBUF_C_TYPE_MESSAGE) {
        has = (protobuf_c_boolean *)(void *)(base + f->quantifier_offset);
    }
    r = dec_value(d, f, v, base + f->offset, at, depth);
    if (r < 0)
        return -1;
    if (r > 0) { /* an unknown enum name: the field stays unset */
        if (oneof_case != NULL)
            *oneof_case = 0;
        return 0;
    }
    if (has != NULL)
        *has = 1;
    return 0;
}

static int dec_repeated(struct dec *d, const ProtobufCFieldDescriptor *f, const cJSON *v,
                        ProtobufCMessage *msg, const struct path *at, int depth)
{
    char *base = (char *)msg;
    size_t *count = (size_t *)(void *)(base + f->quantifier_offset);
    size_t elsize = type_size(f->type), n, i = 0;
    char *arr;

    if (!cJSON_IsArray(v))
        return dec_fail_got(d, at, "an array", v);
    n = (size_t)cJSON_GetArraySize(v);
    if (n == 0)
        return 0;
    if (n > SIZE_MAX / elsize)
        return dec_oom(d);
    arr = mem_alloc(d, n * elsize);
    if (arr == NULL)
        return -1;
    *(void **)(void *)(base + f->offset) = arr;
    *count = 0;
    for (const cJSON *el = v->child; el != NULL; el = el->next, i++) {
        struct path here = {at, SEG_INDEX, NULL, i, NULL};
        int r;

        if (cJSON_IsNull(el))
            return dec_fail(d, &here, "null is not allowed in a list");
        /* Counted before decoding, so a half-built element is freed too
         * (the array is zeroed: NULL pointers free as nothing). */
        (*count)++;
        r = dec_value(d, f, el, arr + (*count - 1) * elsize, &here, depth);
        if (r < 0)
            return -1;
        if (r > 0) /* an unknown enum name: the element is dropped */
            (*count)--;
    }
    return 0;
}

static int dec_map(struct dec *d, const ProtobufCFieldDescriptor *f, const cJSON *v,
                   ProtobufCMessage *msg, const struct path *at, int depth)
{
    const ProtobufCMessageDescriptor *entry_desc = f->descriptor;
    char *base = (char *)msg;
    size_t *count = (size_t *)(void *)(base + f->quantifier_offset);
    ProtobufCMessage **arr;
    struct key_ref *refs = NULL;
    size_t n, nrefs = 0;
    int rc = -1;

    if (!cJSON_IsObject(v))
        return dec_fail_got(d, at, "an object", v);
    n = (size_t)cJSON_GetArraySize(v);
    if (n == 0)
        return 0;
    if (n > SIZE_MAX / sizeof(*refs))
        return dec_oom(d);
    arr = mem_alloc(d, n * sizeof(*arr));
    if (arr == NULL)
        return -1;
    *(void **)(void *)(base + f->offset) = arr;
    *count = 0;
    refs = malloc(n * sizeof(*refs));
    if (refs == NULL) {
        dec_oom(d);
        goto out;
    }
    for (const cJSON *item = v->child; item != NULL; item = item->next) {
        struct path here = {at, SEG_KEY, NULL, 0, item->string != NULL ? item->string : ""};
        ProtobufCMessage *entry;
        int r;

        if (cJSON_IsNull(item)) {
            dec_fail(d, &here, "null is not allowed as a map value");
            goto out;
        }
        entry = new_message(d, entry_desc);
        if (entry == NULL)
            goto out;
        arr[(*count)++] = entry;
        r = dec_map_entry(d, entry_desc, item, entry, &refs[nrefs], &here, depth);
        if (r < 0)
            goto out;
        if (r > 0) { /* an unknown enum name: the entry is dropped */
            arr[--(*count)] = NULL;
            protobuf_c_message_free_unpacked(entry, d->alloc);
            continue;
        }
        nrefs++;
    }
    rc = check_duplicate_keys(d, refs, nrefs, at);
out:
    free(refs);
    return rc;
}

/* Key and value of one entry; 1 when the value is an unknown enum name. */
static int dec_map_entry(struct dec *d, const ProtobufCMessageDescriptor *entry_desc,
                         const cJSON *item, ProtobufCMessage *entry, struct key_ref *ref,
                         const struct path *at, int depth)
{
    const ProtobufCFieldDescriptor *key_f, *val_f;
    char *base = (char *)entry;

    entry_fields(entry_desc, &key_f, &val_f);
    if (dec_map_key(d, key_f, at->key, base + key_f->offset, ref, at) < 0)
        return -1;
    return dec_value(d, val_f, item, base + val_f->offset, at, depth);
}

/* Map keys are JSON strings whatever the key type: parse per type. */
static int dec_map_key(struct dec *d, const ProtobufCFieldDescriptor *key_f, const char *key,
                       void *slot, struct key_ref *ref, const struct path *at)
{
    bool neg = false;
    uint64_t mag = 0;
    char *copy;

    ref->str = NULL;
    ref->ordered = 0;
    ref->given = key;
    switch (key_f->type) {
    case PROTOBUF_C_TYPE_STRING:
        if (!utf8_valid(key))
            return dec_fail(d, at, "expected a map key in valid UTF-8");
        copy = copy_string(d, key);
        if (copy == NULL)
            return -1;
        *(char **)slot = copy;
        ref->str = copy;
        return 0;
    case PROTOBUF_C_TYPE_BOOL:
        if (strcmp(key, "true") != 0 && strcmp(key, "false") != 0)
            return dec_fail(d, at, "expected a map key of true or false");
        *(protobuf_c_boolean *)slot = key[0] == 't';
        ref->ordered = key[0] == 't';
        return 0;
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        if (int_from_text(d, key, key_f->type, at, &neg, &mag) < 0 ||
            int_store(d, key_f->type, neg, mag, slot, at) < 0)
            return -1;
        /* Flip the sign bit so negative keys sort below positive ones. */
        ref->ordered = neg && mag != 0 ? (uint64_t)0 - mag : mag;
        ref->ordered ^= (uint64_t)1 << 63;
        return 0;
    default:
        return dec_fail(d, at, "map keys of type %s are not supported", type_name(key_f->type));
    }
}

static int key_ref_cmp(const void *a, const void *b)
{
    const struct key_ref *x = a, *y = b;

    if (x->str != NULL && y->str != NULL)
        return strcmp(x->str, y->str);
    return x->ordered < y->ordered ? -1 : x->ordered > y->ordered;
}

/* The same key twice ("1" and "01" are the same int key) is an error. */
static int check_duplicate_keys(struct dec *d, struct key_ref *refs, size_t n,
                                const struct path *at)
{
    if (n < 2)
        return 0;
    qsort(refs, n, sizeof(*refs), key_ref_cmp);
    for (size_t i = 1; i < n; i++) {
        if (key_ref_cmp(&refs[i - 1], &refs[i]) == 0) {
            struct path here = {at, SEG_KEY, NULL, 0, refs[i].given};
            return dec_fail(d, &here, "duplicate map key");
        }
    }
    return 0;
}

/* One value of field f's type into `slot`: 0, -1 on error, 1 when it is an
 * enum name this schema does not know (the caller leaves it unset). */
static int dec_value(struct dec *d, const ProtobufCFieldDescriptor *f, const cJSON *v, void *slot,
                     const struct path *at, int depth)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return dec_integer(d, f->type, v, slot, at);
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_DOUBLE:
        return dec_floating(d, f->type, v, slot, at);
    case PROTOBUF_C_TYPE_BOOL:
        if (!cJSON_IsBool(v))
            return dec_fail_got(d, at, "true or false", v);
        *(protobuf_c_boolean *)slot = cJSON_IsTrue(v) ? 1 : 0;
        return 0;
    case PROTOBUF_C_TYPE_ENUM:
        return dec_enum(d, f, v, slot, at);
    case PROTOBUF_C_TYPE_STRING:
        return dec_string(d, v, slot, at);
    case PROTOBUF_C_TYPE_BYTES:
        return dec_bytes(d, v, slot, at);
    case PROTOBUF_C_TYPE_MESSAGE:
        return dec_submessage(d, f, v, slot, at, depth);
    }
    return dec_fail(d, at, "unsupported field type");
}

/* Sign and magnitude of an integer given as a JSON number or string. */
static int int_from_json(struct dec *d, const cJSON *v, ProtobufCType type, const struct path *at,
                         bool *neg, uint64_t *mag)
{
    const struct num_text *lit;
    double x, ax;

    if (cJSON_IsString(v))
        return int_from_text(d, v->valuestring, type, at, neg, mag);
    if (!cJSON_IsNumber(v))
        return dec_fail_got(d, at, "an integer", v);
    lit = find_number(d, v);
    if (lit != NULL) {
        char *text = malloc(lit->len + 1);
        enum num_result r;
        if (text == NULL)
            return dec_oom(d);
        memcpy(text, lit->text, lit->len);
        text[lit->len] = '\0';
        r = parse_decimal(text, neg, mag);
        free(text);
        if (r == NUM_OK)
            return 0;
        if (r == NUM_RANGE)
            return dec_fail(d, at, "value out of range for %s", type_name(type));
        if (r == NUM_FRACTION)
            return dec_fail_got(d, at, "an integer", v);
    }
    /* No literal text (never expected): only what a double holds exactly,
     * integers below 2^53. */
    x = v->valuedouble;
    if (isinf(x))
        return dec_fail(d, at, "value out of range for %s", type_name(type));
    if (isnan(x) || x != trunc(x))
        return dec_fail_got(d, at, "an integer", v);
    ax = fabs(x);
    if (ax >= 0x1p53)
        return dec_fail(d, at, "integer beyond 2^53 in a JSON number; send it as a string");
    *neg = x < 0;
    *mag = (uint64_t)ax;
    return 0;
}

static int int_from_text(struct dec *d, const char *s, ProtobufCType type, const struct path *at,
                         bool *neg, uint64_t *mag)
{
    char quoted[ECHO_MAX + 8];

    switch (parse_decimal(s, neg, mag)) {
    case NUM_OK:
        return 0;
    case NUM_RANGE:
        return dec_fail(d, at, "value out of range for %s", type_name(type));
    case NUM_SYNTAX:
    case NUM_FRACTION:
        break;
    }
    echo_quote(quoted, sizeof(quoted), s);
    return dec_fail(d, at, "expected an integer, got '%s'", quoted);
}

/* Range-check for `type` and store into its slot. */
static int int_store(struct dec *d, ProtobufCType type, bool neg, uint64_t mag, void *slot,
                     const struct path *at)
{
    bool is_unsigned = type == PROTOBUF_C_TYPE_UINT32 || type == PROTOBUF_C_TYPE_FIXED32 ||
                       type == PROTOBUF_C_TYPE_UINT64 || type == PROTOBUF_C_TYPE_FIXED64;
    bool wide = type_size(type) == 8;
    uint64_t limit;

    if (is_unsigned) {
        if (neg && mag != 0)
            return dec_fail(d, at, "expected a non-negative integer for %s", type_name(type));
        limit = wide ? UINT64_MAX : UINT32_MAX;
    } else {
        limit = wide ? (uint64_t)INT64_MAX : (uint64_t)INT32_MAX;
        if (neg)
            limit++;
    }
    if (mag > limit)
        return dec_fail(d, at, "value out of range for %s", type_name(type));
    if (is_unsigned) {
        if (wide)
            *(uint64_t *)slot = mag;
        else
            *(uint32_t *)slot = (uint32_t)mag;
        return 0;
    }
    if (wide) {
        if (!neg)
            *(int64_t *)slot = (int64_t)mag;
        else
            *(int64_t *)slot = mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag;
    } else {
        *(int32_t *)slot = neg ? (int32_t)(-(int64_t)mag) : (int32_t)mag;
    }
    return 0;
}

static int dec_integer(struct dec *d, ProtobufCType type, const cJSON *v, void *slot,
                       const struct path *at)
{
    bool neg = false;
    uint64_t mag = 0;

    if (int_from_json(d, v, type, at, &neg, &mag) < 0)
        return -1;
    return int_store(d, type, neg, mag, slot, at);
}

/* Floats and doubles: numbers, numeric strings, "NaN", "Infinity",
 * "-Infinity". Finite input that overflows the type is out of range. */
static int dec_floating(struct dec *d, ProtobufCType type, const cJSON *v, void *slot,
                        const struct path *at)
{
    double x;

    if (cJSON_IsNumber(v)) {
        x = v->valuedouble;
        if (!isfinite(x)) /* cJSON turns 1e999 into infinity */
            return dec_fail(d, at, "value out of range for %s", type_name(type));
    } else if (cJSON_IsString(v)) {
        const char *s = v->valuestring;
        char *end = NULL;
        if (strcmp(s, "NaN") == 0) {
            x = NAN;
        } else if (strcmp(s, "Infinity") == 0) {
            x = INFINITY;
        } else if (strcmp(s, "-Infinity") == 0) {
            x = -INFINITY;
        } else {
            if (!json_number_text(s))
                return dec_fail_got(d, at, "a number", v);
            x = strtod(s, &end);
            if (end == NULL || *end != '\0')
                return dec_fail_got(d, at, "a number", v);
            if (!isfinite(x))
                return dec_fail(d, at, "value out of range for %s", type_name(type));
        }
    } else {
        return dec_fail_got(d, at, "a number", v);
    }
    if (type == PROTOBUF_C_TYPE_FLOAT) {
        if (isfinite(x) && fabs(x) >= FLOAT_ROUND_LIMIT)
            return dec_fail(d, at, "value out of range for float");
        *(float *)slot = (float)x;
    } else {
        *(double *)slot = x;
    }
    return 0;
}

/* By name (unknown: 1, left unset) or by number (kept even if unnamed). */
static int dec_enum(struct dec *d, const ProtobufCFieldDescriptor *f, const cJSON *v, void *slot,
                    const struct path *at)
{
    const ProtobufCEnumValue *ev;
    bool neg = false;
    uint64_t mag = 0;

    if (cJSON_IsString(v)) {
        ev = protobuf_c_enum_descriptor_get_value_by_name(f->descriptor, v->valuestring);
        if (ev == NULL)
            return 1;
        *(int32_t *)slot = ev->value;
        return 0;
    }
    if (!cJSON_IsNumber(v))
        return dec_fail_got(d, at, "an enum name or number", v);
    if (int_from_json(d, v, PROTOBUF_C_TYPE_INT32, at, &neg, &mag) < 0)
        return -1;
    return int_store(d, PROTOBUF_C_TYPE_INT32, neg, mag, slot, at);
}

static int dec_string(struct dec *d, const cJSON *v, void *slot, const struct path *at)
{
    char *copy;

    if (!cJSON_IsString(v))
        return dec_fail_got(d, at, "a string", v);
    if (!utf8_valid(v->valuestring))
        return dec_fail(d, at, "expected valid UTF-8");
    copy = copy_string(d, v->valuestring);
    if (copy == NULL)
        return -1;
    *(char **)slot = copy;
    return 0;
}

static int dec_bytes(struct dec *d, const cJSON *v, void *slot, const struct path *at)
{
    ProtobufCBinaryData *bd = slot;
    const char *s;
    size_t n, outlen = 0;
    unsigned char *data;

    if (!cJSON_IsString(v))
        return dec_fail_got(d, at, "a base64 string", v);
    s = v->valuestring;
    n = strlen(s);
    if (b64_decode(s, n, NULL, &outlen) < 0)
        return dec_fail(d, at, "expected standard or URL-safe base64");
    bd->len = 0;
    bd->data = NULL;
    if (outlen == 0)
        return 0;
    data = mem_alloc(d, outlen);
    if (data == NULL)
        return -1;
    if (b64_decode(s, n, data, &outlen) < 0) /* cannot fail: validated above */
        return dec_fail(d, at, "expected standard or URL-safe base64");
    bd->data = data;
    bd->len = outlen;
    return 0;
}

static int dec_submessage(struct dec *d, const ProtobufCFieldDescriptor *f, const cJSON *v,
                          void *slot, const struct path *at, int depth)
{
    ProtobufCMessage *sub;

    if (!cJSON_IsObject(v))
        return dec_fail_got(d, at, "an object", v);
    sub = new_message(d, f->descriptor);
    if (sub == NULL)
        return -1;
    *(ProtobufCMessage **)slot = sub;
    return dec_message(d, f->descriptor, v, sub, at, depth + 1);
}

/* ===================================================================== */
/* strings of binary messages                                             */
/* ===================================================================== */

int json_codec_check_binary(const ProtobufCMessageDescriptor *desc, const uint8_t *data, size_t len,
                            struct berth_err *err)
{
    struct dec d = {NULL, err, NULL, 0};

    return bin_message(&d, desc, data, len, NULL, 1);
}

static int wire_varint(struct wire *w, uint64_t *v)
{
    uint64_t x = 0;

    for (unsigned shift = 0; shift < 64 && w->pos < w->len; shift += 7) {
        uint8_t b = w->p[w->pos++];
        x |= (uint64_t)(b & 0x7f) << shift;
        if ((b & 0x80) == 0) {
            *v = x;
            return 0;
        }
    }
    return -1;
}

/* Read the next field's tag and skip its value; -1 when the bytes end early
 * or hold a wire type proto3 does not use. */
static int wire_next(struct wire *w, struct wire_field *f)
{
    uint64_t tag, n;

    if (wire_varint(w, &tag) < 0)
        return -1;
    f->number = (uint32_t)(tag >> 3);
    f->type = (unsigned)(tag & 7);
    f->data = NULL;
    f->len = 0;
    switch (f->type) {
    case 0:
        return wire_varint(w, &n);
    case 1:
        n = 8;
        break;
    case 5:
        n = 4;
        break;
    case WIRE_LEN:
        if (wire_varint(w, &n) < 0)
            return -1;
        break;
    default:
        return -1;
    }
    if (n > w->len - w->pos)
        return -1;
    if (f->type == WIRE_LEN) {
        f->data = w->p + w->pos;
        f->len = (size_t)n;
    }
    w->pos += (size_t)n;
    return 0;
}

/* Why string bytes cannot be a protobuf-c string, or NULL when they can. */
static const char *wire_string_problem(const uint8_t *data, size_t len)
{
    size_t i = 0;

    if (memchr(data, '\0', len) != NULL)
        return "a string may not hold a NUL byte";
    while (i < len) {
        size_t n = json_codec_utf8_len((const char *)data + i, len - i);
        if (n == 0)
            return "expected a string in valid UTF-8";
        i += n;
    }
    return NULL;
}

/* Check every string of a message, walking its wire bytes by descriptor:
 * protobuf-c hands strings over as char *, so a NUL inside one is only
 * visible here. `seen` counts the elements of each repeated field, for the
 * index in an error path. */
static int bin_message(struct dec *d, const ProtobufCMessageDescriptor *desc, const uint8_t *data,
                       size_t len, const struct path *up, int depth)
{
    struct wire w = {data, len, 0};
    struct wire_field wf;
    size_t *seen = NULL;
    int rc = -1;

    if (depth > JSON_CODEC_MAX_DEPTH) {
        dec_fail(d, up, "messages nested deeper than " DEPTH_TEXT " levels");
        goto out;
    }
    if (desc->n_fields > 0) {
        seen = calloc(desc->n_fields, sizeof(*seen));
        if (seen == NULL) {
            berth_err_set(d->err, BERTH_RESOURCE_EXHAUSTED, "out of memory checking strings");
            goto out;
        }
    }
    while (w.pos < w.len) {
        const ProtobufCFieldDescriptor *f;
        struct path at, elem;

        if (wire_next(&w, &wf) < 0) {
            berth_err_set(d->err, BERTH_INVALID_ARGUMENT, "malformed protobuf body for '%s'",
                          desc->name);
            goto out;
        }
        if (wf.type != WIRE_LEN)
            continue;
        f = protobuf_c_message_descriptor_get_field(desc, wf.number);
        if (f == NULL || (f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE))
            continue;
        at = (struct path){.up = up, .kind = SEG_FIELD, .field = f};
        if (is_map_field(f)) {
            if (bin_map_entry(d, f, &wf, &at, depth) < 0)
                goto out;
            continue;
        }
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            elem = (struct path){.up = &at, .kind = SEG_INDEX, .index = seen[f - desc->fields]++};
            if (bin_field(d, f, &wf, &elem, depth) < 0)
                goto out;
        } else if (bin_field(d, f, &wf, &at, depth) < 0) {
            goto out;
        }
    }
    rc = 0;
out:
    free(seen);
    return rc;
}

/* One string or message value of field f at path `at`. */
static int bin_field(struct dec *d, const ProtobufCFieldDescriptor *f, const struct wire_field *wf,
                     const struct path *at, int depth)
{
    const char *problem;

    if (f->type == PROTOBUF_C_TYPE_MESSAGE)
        return bin_message(d, f->descriptor, wf->data, wf->len, at, depth + 1);
    problem = wire_string_problem(wf->data, wf->len);
    return problem != NULL ? dec_fail(d, at, "%s", problem) : 0;
}

/* A map entry: the key first (its text goes into the path of the value when
 * it is a string), then the value. */
static int bin_map_entry(struct dec *d, const ProtobufCFieldDescriptor *f,
                         const struct wire_field *wf, const struct path *at, int depth)
{
    const ProtobufCFieldDescriptor *key_f, *val_f;
    struct wire w = {wf->data, wf->len, 0};
    struct wire_field kv, val = {0, 0, NULL, 0};
    struct path elem = {.up = at, .kind = SEG_KEY, .key = NULL};
    char key[ECHO_MAX + 2];
    int has_val = 0;

    entry_fields(f->descriptor, &key_f, &val_f);
    while (w.pos < w.len) {
        if (wire_next(&w, &kv) < 0)
            return berth_err_set(d->err, BERTH_INVALID_ARGUMENT, "malformed protobuf body for '%s'",
                                 ((const ProtobufCMessageDescriptor *)f->descriptor)->name);
        if (kv.type != WIRE_LEN)
            continue;
        if (kv.number == key_f->id && key_f->type == PROTOBUF_C_TYPE_STRING) {
            const char *problem = wire_string_problem(kv.data, kv.len);
            size_t n = kv.len < sizeof(key) - 1 ? kv.len : sizeof(key) - 1;
            if (problem != NULL)
                return dec_fail(d, at, "map key: %s", problem);
            memcpy(key, kv.data, n);
            key[n] = '\0';
            elem.key = key;
        } else if (kv.number == val_f->id) {
            val = kv;
            has_val = 1;
        }
    }
    if (!has_val ||
        (val_f->type != PROTOBUF_C_TYPE_STRING && val_f->type != PROTOBUF_C_TYPE_MESSAGE))
        return 0;
    return bin_field(d, val_f, &val, elem.key != NULL ? &elem : at, depth);
}

/* ===================================================================== */
/* encoding                                                               */
/* ===================================================================== */

int json_codec_encode(const ProtobufCMessage *msg, struct buf *out, struct berth_err *err)
{
    struct enc e = {out, err};

    if (msg == NULL || msg->descriptor == NULL)
        return berth_err_set(err, BERTH_INTERNAL, "no message to encode");
    return enc_message(&e, msg, 1);
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

static int enc_append(struct enc *e, const char *s, size_t n)
{
    return buf_append(e->out, s, n, e->err);
}

static int enc_puts(struct enc *e, const char *s)
{
    return buf_appends(e->out, s, e->err);
}

/* "\"vmId\":" from "vm_id"; proto names never need escaping. */
static int enc_name(struct enc *e, const char *proto_name)
{
    const char *p = proto_name;

    if (enc_append(e, "\"", 1) < 0)
        return -1;
    while (*p != '\0') {
        size_t run = strcspn(p, "_");
        if (enc_append(e, p, run) < 0)
            return -1;
        p += run;
        while (*p == '_')
            p++;
        if (*p != '\0') {
            char c = *p >= 'a' && *p <= 'z' ? (char)(*p - 'a' + 'A') : *p;
            if (enc_append(e, &c, 1) < 0)
                return -1;
            p++;
        }
    }
    return enc_append(e, "\":", 2);
}

static int enc_message(struct enc *e, const ProtobufCMessage *msg, int depth)
{
    const ProtobufCMessageDescriptor *desc = msg->descriptor;
    bool first = true;

    if (depth > JSON_CODEC_MAX_DEPTH)
        return berth_err_set(e->err, BERTH_INTERNAL, "message nesting deeper than %d levels",
                             JSON_CODEC_MAX_DEPTH);
    if (enc_append(e, "{", 1) < 0)
        return -1;
    for (unsigned i = 0; i < desc->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &desc->fields[i];
        if (!field_present(msg, f))
            continue;
        if ((!first && enc_append(e, ",", 1) < 0) || enc_name(e, f->name) < 0 ||
            enc_field(e, msg, f, depth) < 0)
            return -1;
        first = false;
    }
    return enc_append(e, "}", 1);
}

static int enc_field(struct enc *e, const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f,
                     int depth)
{
    const char *base = (const char *)msg;
    const void *slot = base + f->offset;

    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        size_t n = *(const size_t *)(const void *)(base + f->quantifier_offset);
        const void *arr = *(const void *const *)slot;
        if (is_map_field(f))
            return enc_map(e, f, arr, n, depth);
        return enc_repeated(e, f, arr, n, depth);
    }
    return enc_value(e, f, slot, depth);
}

static int enc_repeated(struct enc *e, const ProtobufCFieldDescriptor *f, const void *arr, size_t n,
                        int depth)
{
    size_t elsize = type_size(f->type);

    if (enc_append(e, "[", 1) < 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        if ((i > 0 && enc_append(e, ",", 1) < 0) ||
            enc_value(e, f, (const char *)arr + i * elsize, depth) < 0)
            return -1;
    return enc_append(e, "]", 1);
}

/* A map as an object; values are written even when they are defaults. */
static int enc_map(struct enc *e, const ProtobufCFieldDescriptor *f,
                   const ProtobufCMessage *const *entries, size_t n, int depth)
{
    const ProtobufCFieldDescriptor *key_f, *val_f;
    bool first = true;

    entry_fields(f->descriptor, &key_f, &val_f);
    if (enc_append(e, "{", 1) < 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        const char *entry = (const char *)entries[i];
        if (entry == NULL)
            continue;
        if ((!first && enc_append(e, ",", 1) < 0) ||
            enc_map_key(e, key_f, entry + key_f->offset) < 0 || enc_append(e, ":", 1) < 0 ||
            enc_value(e, val_f, entry + val_f->offset, depth) < 0)
            return -1;
        first = false;
    }
    return enc_append(e, "}", 1);
}

static int enc_map_key(struct enc *e, const ProtobufCFieldDescriptor *key_f, const void *slot)
{
    switch (key_f->type) {
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(const char *const *)slot;
        return enc_string(e, s != NULL ? s : "");
    }
    case PROTOBUF_C_TYPE_BOOL:
        return enc_puts(e, *(const protobuf_c_boolean *)slot ? "\"true\"" : "\"false\"");
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
                             type_name(key_f->type));
    }
}

static int enc_value(struct enc *e, const ProtobufCFieldDescriptor *f, const void *slot, int depth)
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
        return enc_puts(e, *(const protobuf_c_boolean *)slot ? "true" : "false");
    case PROTOBUF_C_TYPE_ENUM:
        ev = protobuf_c_enum_descriptor_get_value(f->descriptor, *(const int32_t *)slot);
        if (ev == NULL)
            return buf_printf(e->out, e->err, "%" PRId32, *(const int32_t *)slot);
        return buf_printf(e->out, e->err, "\"%s\"", ev->name);
    case PROTOBUF_C_TYPE_STRING:
        s = *(const char *const *)slot;
        return enc_string(e, s != NULL ? s : "");
    case PROTOBUF_C_TYPE_BYTES:
        return enc_bytes(e, slot);
    case PROTOBUF_C_TYPE_MESSAGE:
        sub = *(const ProtobufCMessage *const *)slot;
        if (sub == NULL)
            return enc_puts(e, "{}");
        return enc_message(e, sub, depth + 1);
    }
    return berth_err_set(e->err, BERTH_INTERNAL, "field '%s' has an unknown type", f->name);
}

/* Shortest text that reads back to the same double; integral values in
 * plain digits ("1000000", not "1e+06"). */
static int enc_double(struct enc *e, double x)
{
    char tmp[40];

    if (isnan(x))
        return enc_puts(e, "\"NaN\"");
    if (isinf(x))
        return enc_puts(e, x > 0 ? "\"Infinity\"" : "\"-Infinity\"");
    if (x == trunc(x) && fabs(x) < 1e17) {
        snprintf(tmp, sizeof(tmp), "%.0f", x);
        return enc_puts(e, tmp);
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*g", prec, x);
        if (strtod(tmp, NULL) == x)
            break;
    }
    return enc_puts(e, tmp);
}

static int enc_float(struct enc *e, float x)
{
    char tmp[40];

    if (isnan(x))
        return enc_puts(e, "\"NaN\"");
    if (isinf(x))
        return enc_puts(e, x > 0 ? "\"Infinity\"" : "\"-Infinity\"");
    if (x == truncf(x) && fabsf(x) < 1e17f) {
        snprintf(tmp, sizeof(tmp), "%.0f", (double)x);
        return enc_puts(e, tmp);
    }
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*g", prec, (double)x);
        if (strtof(tmp, NULL) == x)
            break;
    }
    return enc_puts(e, tmp);
}

/* A JSON string: quotes, backslashes and control characters escaped,
 * UTF-8 passed through, bytes that are not UTF-8 written as U+FFFD. */
static int enc_string(struct enc *e, const char *s)
{
    const unsigned char *p = (const unsigned char *)s, *run = p;

    if (enc_append(e, "\"", 1) < 0)
        return -1;
    while (*p != '\0') {
        const char *esc = NULL;
        char hex[8];
        size_t n = utf8_seq_len(p);

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
        if (enc_append(e, (const char *)run, (size_t)(p - run)) < 0 || enc_puts(e, esc) < 0)
            return -1;
        p++;
        run = p;
    }
    if (enc_append(e, (const char *)run, (size_t)(p - run)) < 0)
        return -1;
    return enc_append(e, "\"", 1);
}

/* Standard base64 with padding, written in chunks. */
static int enc_bytes(struct enc *e, const ProtobufCBinaryData *bd)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char chunk[64];
    size_t n = 0;

    if (enc_append(e, "\"", 1) < 0)
        return -1;
    for (size_t i = 0; i < bd->len; i += 3) {
        size_t left = bd->len - i;
        uint32_t v = (uint32_t)bd->data[i] << 16;
        if (left > 1)
            v |= (uint32_t)bd->data[i + 1] << 8;
        if (left > 2)
            v |= bd->data[i + 2];
        chunk[n++] = alphabet[(v >> 18) & 63];
        chunk[n++] = alphabet[(v >> 12) & 63];
        chunk[n++] = left > 1 ? alphabet[(v >> 6) & 63] : '=';
        chunk[n++] = left > 2 ? alphabet[v & 63] : '=';
        if (n == sizeof(chunk)) {
            if (enc_append(e, chunk, n) < 0)
                return -1;
            n = 0;
        }
    }
    if (enc_append(e, chunk, n) < 0)
        return -1;
    return enc_append(e, "\"", 1);
}
