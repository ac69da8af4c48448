/* Per-request memory: many allocations, one free. Also serves as the
 * protobuf-c allocator, so decoded messages die with the request. */
#ifndef BERTH_ARENA_H
#define BERTH_ARENA_H

#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

struct arena;

struct arena *arena_new(void);
/* Frees every block the arena handed out. arena_free(NULL) does nothing. */
void arena_free(struct arena *a);

/* Zeroed memory, 16-byte aligned, owned by the arena; NULL when out of memory. */
void *arena_alloc(struct arena *a, size_t size);
char *arena_strdup(struct arena *a, const char *s);
char *arena_strndup(struct arena *a, const char *s, size_t n);
char *arena_printf(struct arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A protobuf-c allocator drawing from the arena (its free does nothing). */
ProtobufCAllocator *arena_allocator(struct arena *a);

#endif

#ifndef BERTH_ARENA_MESSAGE
#define BERTH_ARENA_MESSAGE
/* A new, initialised protobuf-c message of type desc, in the arena. */
void *arena_message(struct arena *a, const ProtobufCMessageDescriptor *desc);
#endif
