/* libFuzzer harness for the JSON codec: decode arbitrary bytes into one of
 * several request types, and whatever decodes must encode, decode again and
 * encode to the same text and the same binary form. Within small limits
 * (json_codec_decode_limited) a body decodes to the same message or is
 * refused for its size alone, and what decodes keeps to the limits. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "berth/arena.h"
#include "berth/buf.h"
#include "berth/codec_limits.h"
#include "berth/err.h"
#include "berth/json_codec.h"
#include "krane/v1/deployment.pb-c.h"
#include "krane/v1/gateway.pb-c.h"
#include "metal/vmprovisioner/v1/vmprovisioner.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const ProtobufCMessageDescriptor *const targets[] = {
    &metal__vmprovisioner__v1__create_vm_request__descriptor,
    &metal__vmprovisioner__v1__list_vms_request__descriptor,
    &metal__vmprovisioner__v1__list_vms_response__descriptor,
    &metal__vmprovisioner__v1__get_vm_info_response__descriptor,
    &metal__vmprovisioner__v1__shutdown_vm_request__descriptor,
    &krane__v1__create_deployment_request__descriptor,
    &krane__v1__create_gateway_request__descriptor,
};

/* Small bounds, so that inputs the fuzzer can reach pass them. */
static const struct codec_limits limits = {.max_elements = 40, .max_nodes = 400};

static int same_packed(const ProtobufCMessage *a, const ProtobufCMessage *b);
static int within_limits(const ProtobufCMessage *msg, int depth);
static void check_limited(const ProtobufCMessageDescriptor *desc, const char *data, size_t size,
                          const ProtobufCMessage *unlimited);
static void check_stable(const ProtobufCMessageDescriptor *desc, const ProtobufCMessage *msg);

static int same_packed(const ProtobufCMessage *a, const ProtobufCMessage *b)
{
    size_t na = protobuf_c_message_get_packed_size(a);
    size_t nb = protobuf_c_message_get_packed_size(b);
    uint8_t *pa = malloc(na + 1), *pb = malloc(nb + 1);
    int same = 0;

    if (pa != NULL && pb != NULL && na == nb) {
        protobuf_c_message_pack(a, pa);
        protobuf_c_message_pack(b, pb);
        same = memcmp(pa, pb, na) == 0;
    }
    free(pa);
    free(pb);
    return same;
}

/* No list or map of msg, at any depth, is longer than the bound. */
static int within_limits(const ProtobufCMessage *msg, int depth)
{
    const ProtobufCMessageDescriptor *desc = msg->descriptor;
    const char *base = (const char *)msg;

    if (depth > 200)
        return 0;
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
            if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
                ProtobufCMessage *const *arr = *(ProtobufCMessage *const *const *)slot;
                for (size_t k = 0; k < n; k++)
                    if (arr[k] != NULL && !within_limits(arr[k], depth + 1))
                        return 0;
            }
        } else if (f->type == PROTOBUF_C_TYPE_MESSAGE && *(ProtobufCMessage *const *)slot != NULL &&
                   !within_limits(*(ProtobufCMessage *const *)slot, depth + 1)) {
            return 0;
        }
    }
    return 1;
}

/* The limits only refuse: a body they let through decodes as without them
 * (unlimited: that message, or NULL when it did not decode). */
static void check_limited(const ProtobufCMessageDescriptor *desc, const char *data, size_t size,
                          const ProtobufCMessage *unlimited)
{
    struct berth_err err;
    ProtobufCMessage *msg = NULL;

    berth_err_clear(&err);
    if (json_codec_decode_limited(desc, data, size, &limits, NULL, &msg, &err) == 0) {
        if (unlimited == NULL || !same_packed(msg, unlimited) || !within_limits(msg, 1))
            abort();
        protobuf_c_message_free_unpacked(msg, NULL);
    } else if (err.code != BERTH_INVALID_ARGUMENT && err.code != BERTH_RESOURCE_EXHAUSTED) {
        abort();
    }
}

/* encode(msg) must decode again, to the same message and the same text. */
static void check_stable(const ProtobufCMessageDescriptor *desc, const ProtobufCMessage *msg)
{
    struct buf first, second;
    struct berth_err err;
    ProtobufCMessage *again = NULL;

    buf_init(&first, (size_t)64 << 20);
    buf_init(&second, (size_t)64 << 20);
    berth_err_clear(&err);
    if (json_codec_encode(msg, &first, &err) < 0)
        abort();
    if (json_codec_decode(desc, first.data, first.len, NULL, &again, &err) < 0)
        abort();
    if (json_codec_encode(again, &second, &err) < 0)
        abort();
    if (first.len != second.len || memcmp(first.data, second.data, first.len) != 0)
        abort();
    if (!same_packed(msg, again))
        abort();
    protobuf_c_message_free_unpacked(again, NULL);
    buf_release(&first);
    buf_release(&second);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const ProtobufCMessageDescriptor *desc;
    struct berth_err err;
    ProtobufCMessage *msg = NULL;
    struct arena *arena;

    if (size == 0)
        return 0;
    desc = targets[data[0] % (sizeof(targets) / sizeof(targets[0]))];
    data++;
    size--;

    /* The system allocator: LeakSanitizer sees any error path that leaks. */
    berth_err_clear(&err);
    if (json_codec_decode(desc, (const char *)data, size, NULL, &msg, &err) == 0) {
        check_stable(desc, msg);
    } else if (err.code != BERTH_INVALID_ARGUMENT && err.code != BERTH_RESOURCE_EXHAUSTED) {
        abort();
    }
    check_limited(desc, (const char *)data, size, msg);
    protobuf_c_message_free_unpacked(msg, NULL);

    /* The request arena, as the server uses it. */
    arena = arena_new();
    if (arena == NULL)
        return 0;
    msg = NULL;
    berth_err_clear(&err);
    if (json_codec_decode(desc, (const char *)data, size, arena_allocator(arena), &msg, &err) == 0)
        check_stable(desc, msg);
    arena_free(arena);
    return 0;
}
