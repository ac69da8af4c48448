/* libFuzzer harness: binary protobuf -> JSON -> the same message. The first
 * byte picks a request type (every method input of berthd's services, and
 * the test message of the well-known types); the rest is unpacked as
 * binary, checked and reduced as the binary path does, encoded as JSON and
 * decoded again. The two must pack to the same bytes once the binary form is
 * normalised (unknown fields dropped, NaNs made one NaN, -0 as a proto3
 * default, an absent map value as its empty message). */
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "berth/buf.h"
#include "berth/err.h"
#include "berth/json_codec.h"
#include "berth/pb_check.h"
#include "berth/v1/observe.pb-c.h"
#include "krane/v1/deployment.pb-c.h"
#include "krane/v1/gateway.pb-c.h"
#include "metal/vmprovisioner/v1/vmprovisioner.pb-c.h"
#include "wkt_test.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const ProtobufCServiceDescriptor *const services[] = {
    &metal__vmprovisioner__v1__vm_service__descriptor,
    &krane__v1__gateway_service__descriptor,
    &krane__v1__deployment_service__descriptor,
    &berth__v1__log_service__descriptor,
    &berth__v1__event_service__descriptor,
};

#define MAX_TARGETS 128

static const ProtobufCMessageDescriptor *targets[MAX_TARGETS];
static size_t n_targets;

static void collect_targets(void);
static bool is_map(const ProtobufCFieldDescriptor *f);
static void normalise(ProtobufCMessage *msg);
static int same_packed(const ProtobufCMessage *a, const ProtobufCMessage *b);
static char *to_json(const ProtobufCMessage *msg, size_t *len);

/* Each input type once (methods share some). */
static void collect_targets(void)
{
    for (size_t s = 0; s < sizeof(services) / sizeof(services[0]); s++) {
        for (unsigned m = 0; m < services[s]->n_methods; m++) {
            const ProtobufCMessageDescriptor *in = services[s]->methods[m].input;
            bool dup = false;
            for (size_t i = 0; i < n_targets; i++)
                dup = dup || targets[i] == in;
            if (!dup && n_targets < MAX_TARGETS - 1)
                targets[n_targets++] = in;
        }
    }
    targets[n_targets++] = &berth__test__wkt_test__descriptor;
}

static bool is_map(const ProtobufCFieldDescriptor *f)
{
    const ProtobufCMessageDescriptor *e = f->descriptor;
    size_t n = strlen(e != NULL ? e->short_name : "");

    return f->label == PROTOBUF_C_LABEL_REPEATED && f->type == PROTOBUF_C_TYPE_MESSAGE &&
           e->n_fields == 2 && n > 5 && strcmp(e->short_name + n - 5, "Entry") == 0;
}

/* What JSON cannot carry, or carries one way only, made canonical in place. */
static void normalise(ProtobufCMessage *msg)
{
    const ProtobufCMessageDescriptor *desc = msg->descriptor;
    char *base = (char *)msg;

    for (unsigned i = 0; i < msg->n_unknown_fields; i++)
        free(msg->unknown_fields[i].data);
    free(msg->unknown_fields);
    msg->unknown_fields = NULL;
    msg->n_unknown_fields = 0;
    for (unsigned i = 0; i < desc->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &desc->fields[i];
        void *slot = base + f->offset;
        size_t n = 1;

        if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
            *(uint32_t *)(void *)(base + f->quantifier_offset) != f->id)
            continue;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            n = *(size_t *)(void *)(base + f->quantifier_offset);
            slot = *(void **)slot;
        }
        for (size_t k = 0; k < n; k++) {
            if (f->type == PROTOBUF_C_TYPE_DOUBLE) {
                double *x = (double *)slot + k;
                if (isnan(*x))
                    *x = NAN;
                else if (*x == 0 && f->label == PROTOBUF_C_LABEL_NONE &&
                         !(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
                    *x = 0;
            } else if (f->type == PROTOBUF_C_TYPE_FLOAT) {
                float *x = (float *)slot + k;
                if (isnan(*x))
                    *x = NAN;
                else if (*x == 0 && f->label == PROTOBUF_C_LABEL_NONE &&
                         !(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
                    *x = 0;
            } else if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
                ProtobufCMessage *sub = ((ProtobufCMessage **)slot)[k];
                if (sub == NULL)
                    continue;
                if (is_map(f)) {
                    /* A map entry without its message value says {} in JSON. */
                    const ProtobufCFieldDescriptor *vf = &sub->descriptor->fields[1];
                    ProtobufCMessage **val =
                        (ProtobufCMessage **)(void *)((char *)sub + vf->offset);
                    if (vf->type == PROTOBUF_C_TYPE_MESSAGE && *val == NULL) {
                        const ProtobufCMessageDescriptor *vd = vf->descriptor;
                        *val = calloc(1, vd->sizeof_message);
                        if (*val == NULL)
                            abort();
                        protobuf_c_message_init(vd, *val);
                    }
                }
                normalise(sub);
            }
        }
    }
}

static int same_packed(const ProtobufCMessage *a, const ProtobufCMessage *b)
{
    size_t na = protobuf_c_message_get_packed_size(a);
    size_t nb = protobuf_c_message_get_packed_size(b);
    uint8_t *pa = malloc(na + 1), *pb = malloc(nb + 1);
    int same = 0;

    if (pa == NULL || pb == NULL)
        abort();
    if (na == nb) {
        protobuf_c_message_pack(a, pa);
        protobuf_c_message_pack(b, pb);
        same = memcmp(pa, pb, na) == 0;
    }
    free(pa);
    free(pb);
    return same;
}

/* The JSON text of msg (free() it), or NULL when it has no JSON form. */
static char *to_json(const ProtobufCMessage *msg, size_t *len)
{
    struct buf out;
    struct berth_err err;

    buf_init(&out, (size_t)64 << 20);
    berth_err_clear(&err);
    if (json_codec_encode(msg, &out, &err) < 0) {
        /* Only a well-known type out of its range has no JSON form. */
        if (err.code != BERTH_INTERNAL)
            abort();
        buf_release(&out);
        return NULL;
    }
    *len = out.len;
    return buf_detach(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const ProtobufCMessageDescriptor *desc;
    ProtobufCMessage *msg, *again = NULL;
    struct berth_err err;
    char *json, *json2;
    size_t len = 0, len2 = 0;
    bool wkt;

    if (n_targets == 0)
        collect_targets();
    if (size == 0)
        return 0;
    desc = targets[data[0] % n_targets];
    wkt = desc == &berth__test__wkt_test__descriptor;
    data++;
    size--;
    msg = protobuf_c_message_unpack(desc, NULL, size, data);
    if (msg == NULL)
        return 0;
    berth_err_clear(&err);
    if (pb_check_input(desc, data, size, msg, NULL, &err) < 0) {
        if (err.code != BERTH_INVALID_ARGUMENT)
            abort();
        protobuf_c_message_free_unpacked(msg, NULL);
        return 0;
    }
    normalise(msg);
    json = to_json(msg, &len);
    if (json == NULL) {
        if (!wkt)
            abort();
        protobuf_c_message_free_unpacked(msg, NULL);
        return 0;
    }
    berth_err_clear(&err);
    if (json_codec_decode(desc, json, len, NULL, &again, &err) < 0)
        abort(); /* what the encoder wrote must decode */
    if (!wkt && !same_packed(msg, again))
        abort();
    /* An Any's bytes need not be canonical; its JSON must be stable. */
    json2 = to_json(again, &len2);
    if (json2 == NULL || len2 != len || memcmp(json, json2, len) != 0)
        abort();
    free(json2);
    free(json);
    protobuf_c_message_free_unpacked(again, NULL);
    protobuf_c_message_free_unpacked(msg, NULL);
    return 0;
}
