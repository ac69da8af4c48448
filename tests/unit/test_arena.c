/* The per-request arena: zeroed, aligned memory that no later allocation
 * overlaps, the string helpers, sizes that cannot be served, and the
 * protobuf-c allocator whose messages die with the arena. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "berth/arena.h"
#include "metal/vmprovisioner/v1/vmprovisioner.pb-c.h"
#include "testlib.h"

#define ROWS(a) (sizeof(a) / sizeof((a)[0]))

/* Allocations of a shape: each is zeroed and 16-byte aligned, and after all
 * of them are filled with their own byte, each still holds its byte (no two
 * overlap, whether served from a block or from a block of their own). */
static void test_alloc_shapes(void)
{
    static const struct {
        const char *desc;
        size_t sizes[6];
        size_t n_sizes; /* sizes cycle */
        size_t count;
    } rows[] = {
        {"one byte at a time", {1}, 1, 5000},
        {"zero bytes", {0, 1}, 2, 100},
        {"odd sizes across block ends", {7, 13, 100, 3, 250}, 5, 2000},
        {"just under and over half a block", {4095, 4096, 4097, 4111, 4112}, 5, 60},
        {"big ones between small ones", {16, 100000, 24, 9000, 8, 1}, 6, 60},
    };

    for (size_t i = 0; i < ROWS(rows); i++) {
        struct arena *a = arena_new();
        unsigned char **ptrs = calloc(rows[i].count, sizeof(*ptrs));
        int zeroed = 1, aligned = 1, kept = 1, got = 1;

        CHECK_MSG(a != NULL && ptrs != NULL, "%s: setup", rows[i].desc);
        if (a == NULL || ptrs == NULL) {
            arena_free(a);
            free(ptrs);
            continue;
        }
        for (size_t k = 0; k < rows[i].count; k++) {
            size_t size = rows[i].sizes[k % rows[i].n_sizes];
            unsigned char *p = arena_alloc(a, size);

            ptrs[k] = p;
            if (p == NULL) {
                got = 0;
                break;
            }
            if (((uintptr_t)p & 15) != 0)
                aligned = 0;
            for (size_t j = 0; j < size; j++)
                if (p[j] != 0)
                    zeroed = 0;
            memset(p, (int)(k % 251) + 1, size);
        }
        for (size_t k = 0; got && k < rows[i].count; k++) {
            size_t size = rows[i].sizes[k % rows[i].n_sizes];

            for (size_t j = 0; j < size; j++)
                if (ptrs[k][j] != (unsigned char)((k % 251) + 1))
                    kept = 0;
        }
        CHECK_MSG(got, "%s: every allocation served", rows[i].desc);
        CHECK_MSG(aligned, "%s: 16-byte aligned", rows[i].desc);
        CHECK_MSG(zeroed, "%s: zeroed", rows[i].desc);
        CHECK_MSG(kept, "%s: no two allocations overlap", rows[i].desc);
        free(ptrs);
        arena_free(a);
    }
}

/* A size the arena cannot serve is NULL, and the arena stays usable. */
static void test_alloc_too_big(void)
{
    static const struct {
        const char *desc;
        size_t size;
    } rows[] = {
        {"SIZE_MAX (rounding up wraps)", SIZE_MAX},
        {"SIZE_MAX - 8 (rounding up wraps)", SIZE_MAX - 8},
        {"SIZE_MAX - 15 (the block header does not fit)", SIZE_MAX - 15},
    };
    struct arena *a = arena_new();

    CHECK(a != NULL);
    if (a == NULL)
        return;
    for (size_t i = 0; i < ROWS(rows); i++)
        CHECK_MSG(arena_alloc(a, rows[i].size) == NULL, "%s", rows[i].desc);
    CHECK(arena_strdup(a, "still fine") != NULL);
    arena_free(a);
}

static void test_strings(void)
{
    struct arena *a = arena_new();
    const char *src = "vm-1234";
    char *s;

    CHECK(a != NULL);
    if (a == NULL)
        return;
    s = arena_strdup(a, src);
    CHECK_STR(s, "vm-1234");
    CHECK(s != src);
    CHECK_STR(arena_strdup(a, ""), "");
    CHECK_STR(arena_strndup(a, src, 2), "vm");
    CHECK_STR(arena_strndup(a, src, 0), "");
    /* strndup copies n bytes even past a NUL: the caller's length rules. */
    s = arena_strndup(a, "a\0b", 3);
    CHECK(s != NULL && memcmp(s, "a\0b", 4) == 0);
    CHECK_STR(arena_printf(a, "%s-%d", "web", 42), "web-42");
    CHECK_STR(arena_printf(a, "%s", ""), "");
    s = arena_printf(a, "%0*d", 20000, 7); /* longer than a block */
    CHECK(s != NULL && strlen(s) == 20000 && s[19999] == '7' && s[0] == '0');
    arena_free(a);
    arena_free(NULL); /* does nothing */
}

/* protobuf-c unpacks into the arena: no free of the message is needed, and
 * LeakSanitizer would see one that escaped it. */
static void test_protobuf_allocator(void)
{
    Metal__Vmprovisioner__V1__CreateVmRequest req =
        METAL__VMPROVISIONER__V1__CREATE_VM_REQUEST__INIT;
    Metal__Vmprovisioner__V1__CreateVmRequest *back;
    Metal__Vmprovisioner__V1__VmConfig cfg = METAL__VMPROVISIONER__V1__VM_CONFIG__INIT;
    struct arena *a = arena_new();
    uint8_t *packed;
    size_t len;

    CHECK(a != NULL);
    if (a == NULL)
        return;
    req.vm_id = "vm-1";
    req.config = &cfg;
    len = metal__vmprovisioner__v1__create_vm_request__get_packed_size(&req);
    packed = arena_alloc(a, len);
    CHECK(packed != NULL);
    if (packed != NULL) {
        CHECK(metal__vmprovisioner__v1__create_vm_request__pack(&req, packed) == len);
        back = metal__vmprovisioner__v1__create_vm_request__unpack(arena_allocator(a), len, packed);
        CHECK(back != NULL && back->vm_id != NULL && strcmp(back->vm_id, "vm-1") == 0);
        CHECK(back != NULL && back->config != NULL);
        /* Freeing through the arena's allocator does nothing, and is allowed. */
        if (back != NULL)
            metal__vmprovisioner__v1__create_vm_request__free_unpacked(back, arena_allocator(a));
    }
    back = arena_message(a, &metal__vmprovisioner__v1__create_vm_request__descriptor);
    CHECK(back != NULL &&
          back->base.descriptor == &metal__vmprovisioner__v1__create_vm_request__descriptor);
    CHECK(back != NULL && back->vm_id != NULL && back->vm_id[0] == '\0');
    arena_free(a);
}

int main(void)
{
    test_alloc_shapes();
    test_alloc_too_big();
    test_strings();
    test_protobuf_allocator();
    return test_summary("test_arena");
}
