/* Typed access to the krane.v1 gateway and deployment messages: one view of
 * a GatewayRequest or DeploymentRequest, the (namespace, id) of a Get or
 * Delete, and the responses, all through the generated protobuf-c structs,
 * so a renamed proto field is a compile error, not a run-time "field is
 * required". Only OBJECT_GATEWAY and OBJECT_DEPLOYMENT are krane kinds. */
#ifndef BERTH_KRANE_OBJECTS_H
#define BERTH_KRANE_OBJECTS_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "berth/arena.h"
#include "berth/labels.h"

/* GatewayStatus and DeploymentStatus share these numbers. */
enum krane_status {
    KRANE_STATUS_UNSPECIFIED = 0,
    KRANE_STATUS_PENDING = 1,
    KRANE_STATUS_RUNNING = 2,
    KRANE_STATUS_TERMINATING = 3,
};

struct krane_env {
    const char *key;   /* never NULL */
    const char *value; /* never NULL */
};

/* The common view of a GatewayRequest or DeploymentRequest. Strings are
 * borrowed from the decoded request, never NULL ("" when absent or when the
 * kind has no such field). */
struct krane_object {
    const char *ns;
    const char *id;
    const char *image;
    const char *workspace_id;
    const char *env_slug;
    const char *env_id;
    const char *build_id;
    uint64_t replicas;
    uint64_t cpu_millicores;
    uint64_t memory_mib;
    const uint8_t *secrets; /* encrypted_secrets_blob (deployments), borrowed */
    size_t secrets_len;
    const struct krane_env *env; /* in the order sent, in the arena */
    size_t n_env;
};

/* The lowerCamelCase name of the kind's id field ("gatewayId"), for errors. */
const char *krane_id_json(enum object_kind kind);

/* The object of a Create or Update request `in` (a Create/UpdateGatewayRequest
 * or Create/UpdateDeploymentRequest) into *o: 0, 1 when the request holds no object,
 * -1 when out of memory (the env view lives in a). */
int krane_create_object(enum object_kind kind, const ProtobufCMessage *in, struct arena *a,
                        struct krane_object *o);
/* The namespace and id of a Get or Delete request (borrowed, never NULL). */
void krane_ref(const ProtobufCMessage *in, const char **ns, const char **id);

/* One instance of a Get answer; strings borrowed (address may be NULL). */
struct krane_instance {
    const char *id;
    const char *address;
    enum krane_status status;
};

/* Responses in the arena; NULL when out of memory. A Get answer's strings
 * are borrowed; `address` goes where the kind has a top-level one. */
ProtobufCMessage *krane_create_response(enum object_kind kind, struct arena *a,
                                        enum krane_status status);
ProtobufCMessage *krane_delete_response(enum object_kind kind, struct arena *a);
ProtobufCMessage *krane_get_response(enum object_kind kind, struct arena *a,
                                     const struct krane_instance *inst, size_t n,
                                     const char *address);
/* A List request's fields (borrowed, strings never NULL). */
struct krane_list_request {
    const char *ns; /* "": every namespace */
    int32_t page_size;
    const char *page_token;
};
void krane_list_request(const ProtobufCMessage *in, struct krane_list_request *out);

/* One entry of a List answer; strings borrowed. */
struct krane_summary {
    const char *ns;
    const char *id;
    const char *image;
    unsigned replicas; /* desired */
    unsigned running;
    enum krane_status status;
};
/* A List answer of n summaries; next NULL: the last page. */
ProtobufCMessage *krane_list_response(enum object_kind kind, struct arena *a,
                                      const struct krane_summary *sum, size_t n, const char *next,
                                      int32_t total);
/* An Update answer with the instance ids after the update (borrowed). */
ProtobufCMessage *krane_update_response(enum object_kind kind, struct arena *a,
                                        const char *const *pod_ids, size_t n);

/* The Get response's descriptor (to unpack a cached answer). */
const ProtobufCMessageDescriptor *krane_get_descriptor(enum object_kind kind);

#endif
