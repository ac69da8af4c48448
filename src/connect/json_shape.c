/* The shape of a JSON text, counted before cJSON builds a tree of it (see
 * berth/codec_limits.h): the values in all, and the elements of each array
 * and members of each object, with the keys that lead there for the error.
 * Syntax is cJSON's to judge: this only counts. */
#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "connect/json_internal.h"

/* cJSON refuses deeper text itself: no need to follow it further. */
#define SHAPE_MAX_FRAMES (CJSON_NESTING_LIMIT + 1)
/* Frames on the stack: every request berthd takes nests less than this, and
 * a heap stack of SHAPE_MAX_FRAMES zeroed for each request was a sizeable
 * part of a small call's cost. */
#define SHAPE_INLINE_FRAMES 16

/* One open array or object. */
struct shape_frame {
    bool object;
    bool want_key;   /* object: the next string is a member's key */
    size_t count;    /* elements or members so far */
    const char *key; /* the member's key that opened it; NULL: an array's element or the root */
    size_t key_len;
    size_t index; /* as an array's element: its index */
};

struct shape {
    const struct codec_limits *lim;
    struct shape_frame *frames; /* `inline_frames` until a request nests deeper */
    size_t depth, cap;
    size_t nodes;
    const char *key; /* the last key read */
    size_t key_len;
    struct berth_err *err;
};

static size_t string_end(const char *data, size_t len, size_t i);
static bool token_byte(char c);
static int shape_value(struct shape *s);
static int shape_grow(struct shape *s);
static void shape_path(const struct shape *s, struct buf *out);
static int shape_fail(struct shape *s, bool elements);

/* The index of the quote that ends the string whose text starts at i, or
 * len when it does not end. */
static size_t string_end(const char *data, size_t len, size_t i)
{
    while (i < len) {
        if (data[i] == '\\')
            i += 2;
        else if (data[i] == '"')
            return i;
        else
            i++;
    }
    return len;
}

/* Bytes of a number, true, false or null. */
static bool token_byte(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '.' ||
           c == '+' || c == '-';
}

/* A value begins: count it in all and in the array or object it is in. */
static int shape_value(struct shape *s)
{
    struct shape_frame *top = s->depth > 0 ? &s->frames[s->depth - 1] : NULL;

    if (++s->nodes > s->lim->max_nodes)
        return shape_fail(s, false);
    if (top != NULL && ++top->count > s->lim->max_elements)
        return shape_fail(s, true);
    return 0;
}

/* The keys and indexes down to the innermost open array or object, as the
 * client spelt the keys: "config.storage[2].options". */
static void shape_path(const struct shape *s, struct buf *out)
{
    char raw[JSON_ECHO_MAX + 2], echo[JSON_ECHO_MAX + 8];

    for (size_t k = 1; k < s->depth; k++) {
        const struct shape_frame *f = &s->frames[k];
        int rc;

        if (f->key != NULL) {
            size_t n = f->key_len < sizeof(raw) - 1 ? f->key_len : sizeof(raw) - 1;
            memcpy(raw, f->key, n);
            raw[n] = '\0';
            json_names_echo(echo, sizeof(echo), raw);
            rc = buf_printf(out, NULL, "%s%s", out->len > 0 ? "." : "", echo);
        } else {
            rc = buf_printf(out, NULL, "[%zu]", f->index);
        }
        if (rc < 0)
            return; /* a full buffer cuts the path */
    }
}

static int shape_fail(struct shape *s, bool elements)
{
    const struct shape_frame *top = &s->frames[s->depth > 0 ? s->depth - 1 : 0];
    const char *what = top->object ? "members" : "elements";
    struct buf path;

    buf_init(&path, JSON_PATH_MAX_BYTES);
    shape_path(s, &path);
    if (elements && path.len > 0)
        berth_err_set(s->err, BERTH_INVALID_ARGUMENT,
                      "invalid value for field '%s': more than %zu %s", path.data,
                      s->lim->max_elements, what);
    else if (elements)
        berth_err_set(s->err, BERTH_INVALID_ARGUMENT, "the request holds more than %zu %s",
                      s->lim->max_elements, what);
    else if (path.len > 0)
        berth_err_set(s->err, BERTH_RESOURCE_EXHAUSTED,
                      "request too large to decode: more than %zu values, at field '%s'",
                      s->lim->max_nodes, path.data);
    else
        berth_err_set(s->err, BERTH_RESOURCE_EXHAUSTED,
                      "request too large to decode: more than %zu values", s->lim->max_nodes);
    buf_release(&path);
    return -1;
}

int json_shape_check(const char *data, size_t len, const struct codec_limits *lim,
                     struct berth_err *err)
{
    struct shape_frame inline_frames[SHAPE_INLINE_FRAMES] = {{0}};
    struct shape s = {.lim = lim, .err = err, .frames = inline_frames, .cap = SHAPE_INLINE_FRAMES};
    int rc = -1;

    for (size_t i = 0; i < len; i++) {
        struct shape_frame *top = s.depth > 0 ? &s.frames[s.depth - 1] : NULL;
        char c = data[i];

        switch (c) {
        case ' ':
        case '\t':
        case '\n':
        case '\r':
        case ':':
            break;
        case ',':
            if (top != NULL && top->object)
                top->want_key = true;
            break;
        case ']':
        case '}':
            if (s.depth > 0)
                s.depth--;
            break;
        case '"': {
            size_t end = string_end(data, len, i + 1);
            if (top != NULL && top->object && top->want_key) {
                top->want_key = false;
                s.key = data + i + 1;
                s.key_len = end - (i + 1);
            } else if (shape_value(&s) < 0) {
                goto out;
            }
            i = end;
            break;
        }
        case '[':
        case '{':
            if (shape_value(&s) < 0)
                goto out;
            if (s.depth == SHAPE_MAX_FRAMES) {
                rc = 0; /* deeper than cJSON goes: it refuses the text */
                goto out;
            }
            if (s.depth == s.cap) {
                if (shape_grow(&s) < 0)
                    goto out;
                top = &s.frames[s.depth - 1]; /* the frames moved */
            }
            s.frames[s.depth] = (struct shape_frame){
                .object = c == '{',
                .want_key = c == '{',
                .key = top != NULL && top->object ? s.key : NULL,
                .key_len = top != NULL && top->object ? s.key_len : 0,
                .index = top != NULL && !top->object ? top->count - 1 : 0,
            };
            s.depth++;
            break;
        default:
            if (shape_value(&s) < 0)
                goto out;
            while (i + 1 < len && token_byte(data[i + 1]))
                i++;
            break;
        }
    }
    rc = 0;
out:
    if (s.frames != inline_frames)
        free(s.frames);
    return rc;
}

/* Room for more open arrays and objects, up to SHAPE_MAX_FRAMES. */
static int shape_grow(struct shape *s)
{
    size_t cap = s->cap * 4 < SHAPE_MAX_FRAMES ? s->cap * 4 : SHAPE_MAX_FRAMES;
    struct shape_frame *f = malloc(cap * sizeof(*f));

    if (f == NULL)
        return berth_err_set(s->err, BERTH_RESOURCE_EXHAUSTED, "out of memory decoding JSON");
    memcpy(f, s->frames, s->depth * sizeof(*f));
    if (s->cap != SHAPE_INLINE_FRAMES)
        free(s->frames);
    s->frames = f;
    s->cap = cap;
    return 0;
}
