/* libFuzzer harness for the binary protobuf path of a request, as the
 * Connect layer runs it: the limits counted on the wire (pb_check_limits),
 * protobuf-c's unpacking into the request arena, then pb_check_input. The
 * first byte picks the input type of one of berthd's methods; the rest is
 * the body. What passes must hold to the limits once unpacked (no list, map
 * or set of unknown fields longer than the bound, however the wire spread
 * it), pack again, and unpack from those bytes to the same bytes. The same
 * body also goes through the system allocator, so that LeakSanitizer sees
 * any error path that leaks. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "berth/arena.h"
#include "berth/codec_limits.h"
#include "berth/err.h"
#include "berth/pb_check.h"
#include "berth/v1/observe.pb-c.h"
#include "krane/v1/deployment.pb-c.h"
#include "krane/v1/gateway.pb-c.h"
#include "metal/vmprovisioner/v1/vmprovisioner.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const ProtobufCServiceDescriptor *const services[] = {
    &metal__vmprovisioner__v1__vm_service__descriptor,
    &krane__v1__gateway_service__descriptor,
    &krane__v1__deployment_service__descriptor,
    &berth__v1__log_service__descriptor,
    &berth__v1__event_service__descriptor,
};

#define MAX_TARGETS 64

/* Small bounds, so that inputs the fuzzer can reach pass them. */
static const struct codec_limits limits = {.max_elements = 40, .max_nodes = 400};

static const ProtobufCMessageDescriptor *targets[MAX_TARGETS];
static size_t n_targets;

static void collect_targets(void);
static size_t within_limits(const ProtobufCMessage *msg, int depth, size_t *elements);
static void check_repack(const ProtobufCMessage *msg);

static void collect_targets(void)
{
    for (size_t s = 0; s < sizeof(services) / sizeof(services[0]); s++) {
        for (unsigned m = 0; m < services[s]->n_methods; m++) {
            const ProtobufCMessageDescriptor *in = services[s]->methods[m].input;
            bool dup = false;
            for (size_t i = 0; i < n_targets; i++)
                dup = dup || targets[i] == in;
            if (!dup && n_targets < MAX_TARGETS)
                targets[n_targets++] = in;
        }
    }
}

/* Every list, map and set of unknown fields of msg, at any depth, holds at
 * most the bound; *elements adds them all up. 0 when one does not. */
static size_t within_limits(const ProtobufCMessage *msg, int depth, size_t *elements)
{
    const ProtobufCMessageDescriptor *desc = msg->descriptor;
    const char *base = (const char *)msg;

    if (depth > 200 || msg->n_unknown_fields > limits.max_elements)
        return 0;
    *elements += msg->n_unknown_fields;
    for (unsigned i = 0; i < desc->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &desc->fields[i];
        const void *slot = base + f->offset;

        if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
            *(const uint32_t *)(const void *)(base + f->quantifier_offset) != f->id)
            continue;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)(const void *)(base + f->quantifier_offset);
            if (n > limits.max_elements)
                return 0;
            *elements += n;
            if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
                ProtobufCMessage *const *arr = *(ProtobufCMessage *const *const *)slot;
                for (size_t k = 0; k < n; k++)
                    if (arr[k] != NULL && !within_limits(arr[k], depth + 1, elements))
                        return 0;
            }
        } else if (f->type == PROTOBUF_C_TYPE_MESSAGE && *(ProtobufCMessage *const *)slot != NULL &&
                   !within_limits(*(ProtobufCMessage *const *)slot, depth + 1, elements)) {
            return 0;
        }
    }
    return 1;
}

/* pack(msg) unpacks again, to a message that packs to the same bytes. */
static void check_repack(const ProtobufCMessage *msg)
{
    size_t n = protobuf_c_message_get_packed_size(msg), n2;
    uint8_t *bytes = malloc(n + 1), *again_bytes;
    ProtobufCMessage *again;

    if (bytes == NULL)
        abort();
    protobuf_c_message_pack(msg, bytes);
    again = protobuf_c_message_unpack(msg->descriptor, NULL, n, bytes);
    if (again == NULL)
        abort();
    n2 = protobuf_c_message_get_packed_size(again);
    again_bytes = malloc(n2 + 1);
    if (again_bytes == NULL)
        abort();
    protobuf_c_message_pack(again, again_bytes);
    if (n2 != n || memcmp(bytes, again_bytes, n) != 0)
        abort();
    free(again_bytes);
    free(bytes);
    protobuf_c_message_free_unpacked(again, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const ProtobufCMessageDescriptor *desc;
    ProtobufCMessage *msg;
    struct berth_err err;
    struct arena *arena;
    size_t elements = 0;

    if (n_targets == 0)
        collect_targets();
    if (size == 0)
        return 0;
    desc = targets[data[0] % n_targets];
    data++;
    size--;

    berth_err_clear(&err);
    if (pb_check_limits(desc, data, size, &limits, &err) < 0) {
        if (err.code != BERTH_INVALID_ARGUMENT && err.code != BERTH_RESOURCE_EXHAUSTED)
            abort();
        return 0;
    }

    /* As the server does it: into the request's arena. */
    arena = arena_new();
    if (arena == NULL)
        return 0;
    msg = protobuf_c_message_unpack(desc, arena_allocator(arena), size, data);
    if (msg != NULL) {
        /* What the count let through is what protobuf-c built. */
        if (!within_limits(msg, 1, &elements) || elements > limits.max_nodes)
            abort();
        berth_err_clear(&err);
        if (pb_check_input(desc, data, size, msg, arena_allocator(arena), &err) == 0)
            check_repack(msg);
        else if (err.code != BERTH_INVALID_ARGUMENT && err.code != BERTH_RESOURCE_EXHAUSTED)
            abort();
    }
    arena_free(arena);

    /* The system allocator: every error path must free what it made. */
    msg = protobuf_c_message_unpack(desc, NULL, size, data);
    if (msg != NULL) {
        berth_err_clear(&err);
        if (pb_check_input(desc, data, size, msg, NULL, &err) < 0 &&
            err.code != BERTH_INVALID_ARGUMENT && err.code != BERTH_RESOURCE_EXHAUSTED)
            abort();
        protobuf_c_message_free_unpacked(msg, NULL);
    }
    return 0;
}
