/* Growable, capped byte strings (see berth/buf.h). */
#include "berth/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int buf_grow(struct buf *b, size_t need, struct berth_err *err);

void buf_init(struct buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->alloc = 0;
    b->max = max;
}

void buf_release(struct buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->alloc = 0;
}

void buf_reset(struct buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

static int buf_grow(struct buf *b, size_t need, struct berth_err *err)
{
    size_t want;
    char *p;

    if (need > b->max)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "data larger than %zu bytes", b->max);
    if (need + 1 <= b->alloc)
        return 0;
    want = b->alloc ? b->alloc : 256;
    while (want < need + 1)
        want *= 2;
    p = realloc(b->data, want);
    if (p == NULL)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    b->data = p;
    b->alloc = want;
    return 0;
}

int buf_reserve(struct buf *b, size_t len, struct berth_err *err)
{
    char *p;

    if (len > b->max)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "data larger than %zu bytes", b->max);
    if (len + 1 <= b->alloc)
        return 0;
    p = realloc(b->data, len + 1);
    if (p == NULL)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    if (b->data == NULL)
        p[0] = '\0';
    b->data = p;
    b->alloc = len + 1;
    return 0;
}

int buf_append(struct buf *b, const void *data, size_t len, struct berth_err *err)
{
    if (len > b->max || b->len > b->max - len)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "data larger than %zu bytes", b->max);
    if (buf_grow(b, b->len + len, err) < 0)
        return -1;
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return 0;
}

int buf_appends(struct buf *b, const char *s, struct berth_err *err)
{
    return buf_append(b, s, strlen(s), err);
}

int buf_printf(struct buf *b, struct berth_err *err, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return berth_err_set(err, BERTH_INTERNAL, "bad format");
    if (buf_grow(b, b->len + (size_t)n, err) < 0)
        return -1;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

char *buf_detach(struct buf *b)
{
    char *p = b->data;

    if (p == NULL)
        p = strdup("");
    b->data = NULL;
    b->len = 0;
    b->alloc = 0;
    return p;
}
