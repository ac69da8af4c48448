/* libFuzzer harness for the JSON codec: decode arbitrary bytes into one of
 * several request types, and whatever decodes must encode, decode again and
 * encode to the same text and the same binary form. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "berth/arena.h"
#include "berth/buf.h"
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

static int same_packed(const ProtobufCMessage *a, const ProtobufCMessage *b);
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
        protobuf_c_message_free_unpacked(msg, NULL);
    } else if (err.code != BERTH_INVALID_ARGUMENT && err.code != BERTH_RESOURCE_EXHAUSTED) {
        abort();
    }

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
