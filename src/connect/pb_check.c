/* The binary path's checks (see berth/pb_check.h): strings walked on the
 * wire bytes by descriptor, and map entries reduced to the last per key on
 * the unpacked message. The JSON decoder shares the reduction. */
#include "berth/pb_check.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "berth/json_codec.h"
#include "berth/utf8.h"
#include "connect/json_internal.h"

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
#define WIRE_MAX_FIELD 536870911u /* 2^29 - 1 */

/* One entry while sorting by key: where it stood. */
struct entry_ref {
    const ProtobufCMessage *entry;
    size_t pos;
};

static int wire_varint(struct wire *w, uint64_t *v);
static int wire_next(struct wire *w, struct wire_field *f);
static const char *wire_string_problem(const uint8_t *data, size_t len);
static int bin_message(struct berth_err *err, const ProtobufCMessageDescriptor *desc,
                       const uint8_t *data, size_t len, const struct json_path *up, int depth);
static int bin_field(struct berth_err *err, const ProtobufCFieldDescriptor *f,
                     const struct wire_field *wf, const struct json_path *at, int depth);
static int bin_map_entry(struct berth_err *err, const ProtobufCFieldDescriptor *f,
                         const struct wire_field *wf, const struct json_path *at, int depth);
static size_t packed_count(ProtobufCType type, const uint8_t *data, size_t len);
static int limit_fail(struct berth_err *err, const struct codec_limits *lim, bool elements,
                      const ProtobufCFieldDescriptor *f, const struct json_path *at);
struct limit_state;
static struct limit_state *limit_state_new(const ProtobufCMessageDescriptor *desc);
static void limit_state_free(struct limit_state *st);
static int limit_message(struct berth_err *err, const struct codec_limits *lim, size_t *nodes,
                         const ProtobufCMessageDescriptor *desc, const uint8_t *data, size_t len,
                         const struct json_path *up, int depth, struct limit_state *st);
static int key_cmp(const void *a, const void *b, void *key_field);
static int dedupe_message(ProtobufCMessage *msg, ProtobufCAllocator *alloc, int depth);

int pb_check_strings(const ProtobufCMessageDescriptor *desc, const uint8_t *data, size_t len,
                     struct berth_err *err)
{
    return bin_message(err, desc, data, len, NULL, 1);
}

int pb_check_input(const ProtobufCMessageDescriptor *desc, const uint8_t *data, size_t len,
                   ProtobufCMessage *msg, ProtobufCAllocator *alloc, struct berth_err *err)
{
    if (pb_check_strings(desc, data, len, err) < 0)
        return -1;
    return pb_check_dedupe(msg, alloc, err);
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

/* Read the next field's tag and skip its value; -1 when the bytes end early,
 * hold a wire type proto3 does not use, or a field number outside 1 to
 * 2^29-1. protobuf-c takes a field number 0 spelt in two bytes ("80 00")
 * as an unknown field, which it packs again as "00" and then cannot read:
 * a VM's stored config would become unreadable. */
static int wire_next(struct wire *w, struct wire_field *f)
{
    uint64_t tag, n;

    if (wire_varint(w, &tag) < 0 || tag >> 3 == 0 || tag >> 3 > WIRE_MAX_FIELD)
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
        size_t n = utf8_seq_len((const char *)data + i, len - i);
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
static int bin_message(struct berth_err *err, const ProtobufCMessageDescriptor *desc,
                       const uint8_t *data, size_t len, const struct json_path *up, int depth)
{
    struct wire w = {data, len, 0};
    struct wire_field wf;
    size_t *seen = NULL;
    int rc = -1;

    if (depth > JSON_CODEC_MAX_DEPTH) {
        json_names_fail(err, up, "messages nested deeper than " JSON_DEPTH_TEXT " levels");
        goto out;
    }
    if (desc->n_fields > 0) {
        seen = calloc(desc->n_fields, sizeof(*seen));
        if (seen == NULL) {
            berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory checking strings");
            goto out;
        }
    }
    while (w.pos < w.len) {
        const ProtobufCFieldDescriptor *f;
        struct json_path at, elem;

        if (wire_next(&w, &wf) < 0) {
            berth_err_set(err, BERTH_INVALID_ARGUMENT, "malformed protobuf body for '%s'",
                          desc->name);
            goto out;
        }
        if (wf.type != WIRE_LEN)
            continue;
        f = protobuf_c_message_descriptor_get_field(desc, wf.number);
        if (f == NULL || (f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE))
            continue;
        at = (struct json_path){.up = up, .kind = SEG_FIELD, .field = f};
        if (json_names_is_map(f)) {
            if (bin_map_entry(err, f, &wf, &at, depth) < 0)
                goto out;
            continue;
        }
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            elem =
                (struct json_path){.up = &at, .kind = SEG_INDEX, .index = seen[f - desc->fields]++};
            if (bin_field(err, f, &wf, &elem, depth) < 0)
                goto out;
        } else if (bin_field(err, f, &wf, &at, depth) < 0) {
            goto out;
        }
    }
    rc = 0;
out:
    free(seen);
    return rc;
}

/* One string or message value of field f at path `at`. */
static int bin_field(struct berth_err *err, const ProtobufCFieldDescriptor *f,
                     const struct wire_field *wf, const struct json_path *at, int depth)
{
    const char *problem;

    if (f->type == PROTOBUF_C_TYPE_MESSAGE)
        return bin_message(err, f->descriptor, wf->data, wf->len, at, depth + 1);
    problem = wire_string_problem(wf->data, wf->len);
    return problem != NULL ? json_names_fail(err, at, "%s", problem) : 0;
}

/* A map entry: the key first (its text goes into the path of the value when
 * it is a string), then the value. */
static int bin_map_entry(struct berth_err *err, const ProtobufCFieldDescriptor *f,
                         const struct wire_field *wf, const struct json_path *at, int depth)
{
    const ProtobufCFieldDescriptor *key_f, *val_f;
    struct wire w = {wf->data, wf->len, 0};
    struct wire_field kv, val = {0, 0, NULL, 0};
    struct json_path elem = {.up = at, .kind = SEG_KEY, .key = NULL};
    char key[JSON_ECHO_MAX + 2];
    int has_val = 0;

    json_names_entry_fields(f->descriptor, &key_f, &val_f);
    while (w.pos < w.len) {
        if (wire_next(&w, &kv) < 0)
            return berth_err_set(err, BERTH_INVALID_ARGUMENT, "malformed protobuf body for '%s'",
                                 ((const ProtobufCMessageDescriptor *)f->descriptor)->name);
        if (kv.type != WIRE_LEN)
            continue;
        if (kv.number == key_f->id && key_f->type == PROTOBUF_C_TYPE_STRING) {
            const char *problem = wire_string_problem(kv.data, kv.len);
            size_t n = kv.len < sizeof(key) - 1 ? kv.len : sizeof(key) - 1;
            if (problem != NULL)
                return json_names_fail(err, at, "map key: %s", problem);
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
    return bin_field(err, val_f, &val, elem.key != NULL ? &elem : at, depth);
}

/* ===================================================================== */
/* limits: counted on the wire before protobuf-c builds anything          */
/* ===================================================================== */

/* Elements in a packed list of a scalar type: protobuf-c gives each its
 * slot (4 or 8 bytes for 1 on the wire). 0 for types that cannot pack. */
static size_t packed_count(ProtobufCType type, const uint8_t *data, size_t len)
{
    size_t n = 0;

    switch (type) {
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_FLOAT:
        return len / 4;
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        return len / 8;
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_BYTES:
    case PROTOBUF_C_TYPE_MESSAGE:
        return 0;
    default: /* varints: one ends at each byte without the high bit */
        for (size_t i = 0; i < len; i++)
            n += (data[i] & 0x80) == 0;
        return n;
    }
}

/* at is the field's path (f NULL: the message's, for its unknown fields). */
static int limit_fail(struct berth_err *err, const struct codec_limits *lim, bool elements,
                      const ProtobufCFieldDescriptor *f, const struct json_path *at)
{
    struct buf path;

    buf_init(&path, JSON_PATH_MAX_BYTES);
    json_names_path(at, &path);
    if (!elements)
        berth_err_set(err, BERTH_RESOURCE_EXHAUSTED,
                      "request too large to decode: more than %zu values%s%s%s", lim->max_nodes,
                      path.len > 0 ? ", at field '" : "", path.len > 0 ? path.data : "",
                      path.len > 0 ? "'" : "");
    else if (f == NULL && path.len > 0)
        berth_err_set(err, BERTH_INVALID_ARGUMENT,
                      "invalid value for field '%s': more than %zu unknown fields", path.data,
                      lim->max_elements);
    else if (f == NULL)
        berth_err_set(err, BERTH_INVALID_ARGUMENT, "the request holds more than %zu unknown fields",
                      lim->max_elements);
    else
        berth_err_set(err, BERTH_INVALID_ARGUMENT, "invalid value for field '%s': more than %zu %s",
                      path.data != NULL ? path.data : "", lim->max_elements,
                      f->label == PROTOBUF_C_LABEL_REPEATED ? "elements" : "occurrences");
    buf_release(&path);
    return -1;
}

/* The counts of one message, and the states of its singular message
 * fields: protobuf-c merges a singular message given more than once, so
 * their lists add up across the occurrences. */
struct limit_state {
    size_t *seen;             /* per field, the last one for the unknown fields */
    struct limit_state **sub; /* per field; NULL until that message field is seen */
    size_t n;                 /* fields of the message */
};

static struct limit_state *limit_state_new(const ProtobufCMessageDescriptor *desc)
{
    struct limit_state *st = calloc(1, sizeof(*st));

    if (st == NULL)
        return NULL;
    st->n = desc->n_fields;
    st->seen = calloc(st->n + 1, sizeof(*st->seen));
    st->sub = calloc(st->n + 1, sizeof(*st->sub));
    if (st->seen == NULL || st->sub == NULL) {
        free(st->seen);
        free(st->sub);
        free(st);
        return NULL;
    }
    return st;
}

static void limit_state_free(struct limit_state *st)
{
    if (st == NULL)
        return;
    for (size_t i = 0; i < st->n; i++)
        limit_state_free(st->sub[i]);
    free(st->sub);
    free(st->seen);
    free(st);
}

/* One occurrence of a message's bytes, counted into st. *nodes counts the
 * body's. */
static int limit_message(struct berth_err *err, const struct codec_limits *lim, size_t *nodes,
                         const ProtobufCMessageDescriptor *desc, const uint8_t *data, size_t len,
                         const struct json_path *up, int depth, struct limit_state *st)
{
    struct wire w = {data, len, 0};
    struct wire_field wf;

    /* Deeper is refused after unpacking (bin_message); the schemas bound
     * how deep protobuf-c itself goes. */
    if (depth > JSON_CODEC_MAX_DEPTH)
        return 0;
    while (w.pos < w.len) {
        const ProtobufCFieldDescriptor *f;
        struct json_path at, elem;
        struct limit_state *sub, *fresh = NULL;
        size_t slot, n = 1;
        int rc;

        /* Refused here, not left to protobuf-c: it takes some of what
         * wire_next does not, and would then unpack the rest uncounted. */
        if (wire_next(&w, &wf) < 0)
            return berth_err_set(err, BERTH_INVALID_ARGUMENT, "malformed protobuf body for '%s'",
                                 desc->name);
        f = protobuf_c_message_descriptor_get_field(desc, wf.number);
        slot = f != NULL ? (size_t)(f - desc->fields) : desc->n_fields;
        if (f != NULL && f->label == PROTOBUF_C_LABEL_REPEATED && wf.type == WIRE_LEN &&
            packed_count(f->type, wf.data, wf.len) > 0)
            n = packed_count(f->type, wf.data, wf.len);
        at = (struct json_path){.up = up, .kind = SEG_FIELD, .field = f};
        st->seen[slot] += n;
        *nodes += n;
        /* The field's own bound first, as the JSON count (one element at a
         * time) meets it first too. */
        if (st->seen[slot] > lim->max_elements)
            return limit_fail(err, lim, true, f, f != NULL ? &at : up);
        if (*nodes > lim->max_nodes)
            return limit_fail(err, lim, false, f, f != NULL ? &at : up);
        if (f == NULL || wf.type != WIRE_LEN || f->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            /* Each element (or map entry) a message of its own. */
            elem = (struct json_path){.up = &at, .kind = SEG_INDEX, .index = st->seen[slot] - 1};
            sub = fresh = limit_state_new(f->descriptor);
        } else {
            if (st->sub[slot] == NULL)
                st->sub[slot] = limit_state_new(f->descriptor);
            sub = st->sub[slot];
        }
        if (sub == NULL)
            return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory checking the body");
        rc = limit_message(err, lim, nodes, f->descriptor, wf.data, wf.len,
                           fresh != NULL && !json_names_is_map(f) ? &elem : &at, depth + 1, sub);
        limit_state_free(fresh);
        if (rc < 0)
            return -1;
    }
    return 0;
}

int pb_check_limits(const ProtobufCMessageDescriptor *desc, const uint8_t *data, size_t len,
                    const struct codec_limits *lim, struct berth_err *err)
{
    struct limit_state *st = limit_state_new(desc);
    size_t nodes = 0;
    int rc;

    if (st == NULL)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory checking the body");
    rc = limit_message(err, lim, &nodes, desc, data, len, NULL, 1, st);
    limit_state_free(st);
    return rc;
}

/* ===================================================================== */
/* map entries: the last one per key wins                                 */
/* ===================================================================== */

/* Order by key, then by position, so the last of equal keys sorts last. */
static int key_cmp(const void *a, const void *b, void *key_field)
{
    const ProtobufCFieldDescriptor *key_f = key_field;
    const struct entry_ref *x = a, *y = b;
    const void *ka = (const char *)x->entry + key_f->offset;
    const void *kb = (const char *)y->entry + key_f->offset;
    int c = 0;

    switch (key_f->type) {
    case PROTOBUF_C_TYPE_STRING: {
        const char *sa = *(const char *const *)ka, *sb = *(const char *const *)kb;
        c = strcmp(sa != NULL ? sa : "", sb != NULL ? sb : "");
        break;
    }
    case PROTOBUF_C_TYPE_BOOL:
        c = (*(const protobuf_c_boolean *)ka != 0) - (*(const protobuf_c_boolean *)kb != 0);
        break;
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        c = (*(const int32_t *)ka > *(const int32_t *)kb) -
            (*(const int32_t *)ka < *(const int32_t *)kb);
        break;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        c = (*(const uint32_t *)ka > *(const uint32_t *)kb) -
            (*(const uint32_t *)ka < *(const uint32_t *)kb);
        break;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        c = (*(const int64_t *)ka > *(const int64_t *)kb) -
            (*(const int64_t *)ka < *(const int64_t *)kb);
        break;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        c = (*(const uint64_t *)ka > *(const uint64_t *)kb) -
            (*(const uint64_t *)ka < *(const uint64_t *)kb);
        break;
    default: /* not a valid map key type: keep every entry */
        break;
    }
    if (c != 0)
        return c;
    return (x->pos > y->pos) - (x->pos < y->pos);
}

int pb_check_last_keys(const ProtobufCFieldDescriptor *f, const ProtobufCMessage *const *entries,
                       size_t n, bool *keep)
{
    const ProtobufCFieldDescriptor *key_f, *val_f;
    struct entry_ref *refs;
    size_t nonnull = 0;

    for (size_t i = 0; i < n; i++)
        keep[i] = entries[i] != NULL;
    if (n < 2)
        return 0;
    json_names_entry_fields(f->descriptor, &key_f, &val_f);
    refs = malloc(n * sizeof(*refs));
    if (refs == NULL)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (entries[i] != NULL)
            refs[nonnull++] = (struct entry_ref){entries[i], i};
    qsort_r(refs, nonnull, sizeof(*refs), key_cmp, (void *)key_f);
    /* Of each run of equal keys all but the last are dropped. */
    for (size_t i = 0; i + 1 < nonnull; i++) {
        struct entry_ref a = refs[i], b = refs[i + 1];
        a.pos = b.pos = 0;
        if (key_cmp(&a, &b, (void *)key_f) == 0)
            keep[refs[i].pos] = false;
    }
    free(refs);
    return 0;
}

int pb_check_dedupe_entries(const ProtobufCFieldDescriptor *f, ProtobufCMessage **entries,
                            size_t *n, ProtobufCAllocator *alloc)
{
    size_t kept = 0, count = *n;
    bool *keep;

    if (count < 2)
        return 0;
    keep = malloc(count * sizeof(*keep));
    if (keep == NULL ||
        pb_check_last_keys(f, (const ProtobufCMessage *const *)entries, count, keep) < 0) {
        free(keep);
        return -1;
    }
    for (size_t i = 0; i < count; i++) {
        if (keep[i]) {
            entries[kept++] = entries[i];
        } else if (entries[i] != NULL) {
            protobuf_c_message_free_unpacked(entries[i], alloc);
        }
    }
    for (size_t i = kept; i < count; i++)
        entries[i] = NULL;
    *n = kept;
    free(keep);
    return 0;
}

/* Every map of msg and of the messages in it; -1 out of memory, -2 when
 * nested too deep. */
static int dedupe_message(ProtobufCMessage *msg, ProtobufCAllocator *alloc, int depth)
{
    const ProtobufCMessageDescriptor *desc = msg->descriptor;
    char *base = (char *)msg;

    if (depth > JSON_CODEC_MAX_DEPTH)
        return -2;
    for (unsigned i = 0; i < desc->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &desc->fields[i];
        void *slot = base + f->offset;
        int r;

        if (f->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t *n = (size_t *)(void *)(base + f->quantifier_offset);
            ProtobufCMessage **arr = *(ProtobufCMessage ***)slot;
            if (json_names_is_map(f) && pb_check_dedupe_entries(f, arr, n, alloc) < 0)
                return -1;
            for (size_t k = 0; k < *n; k++)
                if (arr[k] != NULL && (r = dedupe_message(arr[k], alloc, depth + 1)) < 0)
                    return r;
            continue;
        }
        /* Members of a oneof share their storage: only the set one is read. */
        if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
            *(const uint32_t *)(const void *)(base + f->quantifier_offset) != f->id)
            continue;
        if (*(ProtobufCMessage **)slot != NULL &&
            (r = dedupe_message(*(ProtobufCMessage **)slot, alloc, depth + 1)) < 0)
            return r;
    }
    return 0;
}

int pb_check_dedupe(ProtobufCMessage *msg, ProtobufCAllocator *alloc, struct berth_err *err)
{
    int r = dedupe_message(msg, alloc, 1);

    if (r == -1)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory reducing map entries");
    if (r == -2)
        return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                             "messages nested deeper than " JSON_DEPTH_TEXT " levels");
    return 0;
}
