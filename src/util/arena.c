/* Per-request arena: a chain of blocks, freed in one call (see berth/arena.h). */
#include "berth/arena.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_BLOCK 8192

struct block {
    struct block *next;
    size_t used, size;
    _Alignas(16) unsigned char data[];
};

struct arena {
    struct block *head;
    ProtobufCAllocator pb;
};

static void *arena_pb_alloc(void *ctx, size_t size);
static void arena_pb_free(void *ctx, void *ptr);

struct arena *arena_new(void)
{
    struct arena *a = calloc(1, sizeof(*a));

    if (a == NULL)
        return NULL;
    a->pb.alloc = arena_pb_alloc;
    a->pb.free = arena_pb_free;
    a->pb.allocator_data = a;
    return a;
}

void arena_free(struct arena *a)
{
    struct block *b, *next;

    if (a == NULL)
        return;
    for (b = a->head; b; b = next) {
        next = b->next;
        free(b);
    }
    free(a);
}

void *arena_alloc(struct arena *a, size_t size)
{
    struct block *b = a->head;
    size_t need = (size + 15) & ~(size_t)15;
    void *p;

    if (need < size)
        return NULL;
    if (b == NULL || b->size - b->used < need) {
        size_t bsize = need > ARENA_BLOCK / 2 ? need : ARENA_BLOCK;
        if (bsize > SIZE_MAX - sizeof(*b))
            return NULL;
        b = malloc(sizeof(*b) + bsize);
        if (b == NULL)
            return NULL;
        b->size = bsize;
        b->used = 0;
        /* A big block goes behind the head so the head's free space stays usable. */
        if (need > ARENA_BLOCK / 2 && a->head) {
            b->next = a->head->next;
            a->head->next = b;
        } else {
            b->next = a->head;
            a->head = b;
        }
    }
    p = b->data + b->used;
    b->used += need;
    memset(p, 0, size);
    return p;
}

char *arena_strndup(struct arena *a, const char *s, size_t n)
{
    char *p = arena_alloc(a, n + 1);

    if (p == NULL)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *arena_strdup(struct arena *a, const char *s)
{
    return arena_strndup(a, s, strlen(s));
}

char *arena_printf(struct arena *a, const char *fmt, ...)
{
    va_list ap;
    int n;
    char *p;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    p = arena_alloc(a, (size_t)n + 1);
    if (p == NULL)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

ProtobufCAllocator *arena_allocator(struct arena *a)
{
    return &a->pb;
}

static void *arena_pb_alloc(void *ctx, size_t size)
{
    return arena_alloc(ctx, size);
}

static void arena_pb_free(void *ctx, void *ptr)
{
    (void)ctx;
    (void)ptr;
}

void *arena_message(struct arena *a, const ProtobufCMessageDescriptor *desc)
{
    void *m = arena_alloc(a, desc->sizeof_message);

    if (m != NULL)
        protobuf_c_message_init(desc, m);
    return m;
}
