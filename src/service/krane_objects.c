/* Typed access to the krane.v1 messages (see berth/krane_objects.h): each
 * accessor switches on the kind and reads the generated struct. */
#include "berth/krane_objects.h"

#include "krane/v1/deployment.pb-c.h"
#include "krane/v1/gateway.pb-c.h"

_Static_assert(
    (int)KRANE_STATUS_PENDING == (int)KRANE__V1__GATEWAY_STATUS__GATEWAY_STATUS_PENDING &&
        (int)KRANE_STATUS_RUNNING == (int)KRANE__V1__GATEWAY_STATUS__GATEWAY_STATUS_RUNNING &&
        (int)KRANE_STATUS_TERMINATING == (int)KRANE__V1__GATEWAY_STATUS__GATEWAY_STATUS_TERMINATING,
    "krane_status mirrors GatewayStatus");
_Static_assert((int)KRANE_STATUS_PENDING ==
                       (int)KRANE__V1__DEPLOYMENT_STATUS__DEPLOYMENT_STATUS_PENDING &&
                   (int)KRANE_STATUS_RUNNING ==
                       (int)KRANE__V1__DEPLOYMENT_STATUS__DEPLOYMENT_STATUS_RUNNING &&
                   (int)KRANE_STATUS_TERMINATING ==
                       (int)KRANE__V1__DEPLOYMENT_STATUS__DEPLOYMENT_STATUS_TERMINATING,
               "krane_status mirrors DeploymentStatus");

static const char *ko_str(const char *s);
static struct krane_env *ko_env_alloc(struct arena *a, size_t n);
static ProtobufCMessage *ko_gateway_answer(struct arena *a, const struct krane_instance *inst,
                                           size_t n, const char *address);
static ProtobufCMessage *ko_deployment_answer(struct arena *a, const struct krane_instance *inst,
                                              size_t n);

static const char *ko_str(const char *s)
{
    return s ? s : "";
}

/* The env view of n entries, in the arena; NULL when out of memory. */
static struct krane_env *ko_env_alloc(struct arena *a, size_t n)
{
    return arena_alloc(a, (n + 1) * sizeof(struct krane_env));
}

const char *krane_id_json(enum object_kind kind)
{
    return kind == OBJECT_GATEWAY ? "gatewayId" : "deploymentId";
}

int krane_create_object(enum object_kind kind, const ProtobufCMessage *in, struct arena *a,
                        struct krane_object *o)
{
    struct krane_env *env;

    *o = (struct krane_object){"", "", "", "", "", "", "", 0, 0, 0, NULL, 0, NULL, 0};
    if (kind == OBJECT_GATEWAY) {
        const Krane__V1__GatewayRequest *g =
            in->descriptor == &krane__v1__update_gateway_request__descriptor
                ? ((const Krane__V1__UpdateGatewayRequest *)in)->gateway
                : ((const Krane__V1__CreateGatewayRequest *)in)->gateway;
        if (g == NULL)
            return 1;
        o->ns = ko_str(g->namespace_);
        o->id = ko_str(g->gateway_id);
        o->image = ko_str(g->image);
        o->workspace_id = ko_str(g->workspace_id);
        o->replicas = g->replicas;
        o->cpu_millicores = g->cpu_millicores;
        o->memory_mib = g->memory_size_mib;
        env = ko_env_alloc(a, g->n_env);
        if (env == NULL)
            return -1;
        for (size_t i = 0; i < g->n_env; i++)
            env[i] = (struct krane_env){ko_str(g->env[i]->key), ko_str(g->env[i]->value)};
        o->env = env;
        o->n_env = g->n_env;
        return 0;
    }
    const Krane__V1__DeploymentRequest *d =
        in->descriptor == &krane__v1__update_deployment_request__descriptor
            ? ((const Krane__V1__UpdateDeploymentRequest *)in)->deployment
            : ((const Krane__V1__CreateDeploymentRequest *)in)->deployment;
    if (d == NULL)
        return 1;
    o->ns = ko_str(d->namespace_);
    o->id = ko_str(d->deployment_id);
    o->image = ko_str(d->image);
    o->env_slug = ko_str(d->environment_slug);
    o->env_id = ko_str(d->environment_id);
    o->build_id = ko_str(d->build_id);
    o->replicas = d->replicas;
    o->cpu_millicores = d->cpu_millicores;
    o->memory_mib = d->memory_size_mib;
    o->secrets = d->encrypted_secrets_blob.data;
    o->secrets_len = d->encrypted_secrets_blob.len;
    env = ko_env_alloc(a, d->n_env);
    if (env == NULL)
        return -1;
    for (size_t i = 0; i < d->n_env; i++)
        env[i] = (struct krane_env){ko_str(d->env[i]->key), ko_str(d->env[i]->value)};
    o->env = env;
    o->n_env = d->n_env;
    return 0;
}

void krane_ref(const ProtobufCMessage *in, const char **ns, const char **id)
{
    /* Get and Delete requests of one kind have the same two fields. */
    if (in->descriptor == &krane__v1__get_gateway_request__descriptor) {
        const Krane__V1__GetGatewayRequest *r = (const void *)in;
        *ns = ko_str(r->namespace_);
        *id = ko_str(r->gateway_id);
    } else if (in->descriptor == &krane__v1__delete_gateway_request__descriptor) {
        const Krane__V1__DeleteGatewayRequest *r = (const void *)in;
        *ns = ko_str(r->namespace_);
        *id = ko_str(r->gateway_id);
    } else if (in->descriptor == &krane__v1__get_deployment_request__descriptor) {
        const Krane__V1__GetDeploymentRequest *r = (const void *)in;
        *ns = ko_str(r->namespace_);
        *id = ko_str(r->deployment_id);
    } else if (in->descriptor == &krane__v1__delete_deployment_request__descriptor) {
        const Krane__V1__DeleteDeploymentRequest *r = (const void *)in;
        *ns = ko_str(r->namespace_);
        *id = ko_str(r->deployment_id);
    } else {
        *ns = "";
        *id = "";
    }
}

ProtobufCMessage *krane_create_response(enum object_kind kind, struct arena *a,
                                        enum krane_status status)
{
    if (kind == OBJECT_GATEWAY) {
        Krane__V1__CreateGatewayResponse *r =
            arena_message(a, &krane__v1__create_gateway_response__descriptor);
        if (r != NULL)
            r->status = (Krane__V1__GatewayStatus)status;
        return r ? &r->base : NULL;
    }
    Krane__V1__CreateDeploymentResponse *r =
        arena_message(a, &krane__v1__create_deployment_response__descriptor);
    if (r != NULL)
        r->status = (Krane__V1__DeploymentStatus)status;
    return r ? &r->base : NULL;
}

ProtobufCMessage *krane_delete_response(enum object_kind kind, struct arena *a)
{
    return arena_message(a, kind == OBJECT_GATEWAY
                                ? &krane__v1__delete_gateway_response__descriptor
                                : &krane__v1__delete_deployment_response__descriptor);
}

const ProtobufCMessageDescriptor *krane_get_descriptor(enum object_kind kind)
{
    return kind == OBJECT_GATEWAY ? &krane__v1__get_gateway_response__descriptor
                                  : &krane__v1__get_deployment_response__descriptor;
}

static ProtobufCMessage *ko_gateway_answer(struct arena *a, const struct krane_instance *inst,
                                           size_t n, const char *address)
{
    Krane__V1__GetGatewayResponse *r =
        arena_message(a, &krane__v1__get_gateway_response__descriptor);
    Krane__V1__GatewayInstance **items = arena_alloc(a, (n + 1) * sizeof(*items));

    if (r == NULL || items == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        items[i] = arena_message(a, &krane__v1__gateway_instance__descriptor);
        if (items[i] == NULL)
            return NULL;
        items[i]->id = (char *)inst[i].id;
        if (inst[i].address != NULL)
            items[i]->address = (char *)inst[i].address;
        items[i]->status = (Krane__V1__GatewayStatus)inst[i].status;
    }
    r->instances = items;
    r->n_instances = n;
    if (address != NULL)
        r->address = (char *)address;
    return &r->base;
}

static ProtobufCMessage *ko_deployment_answer(struct arena *a, const struct krane_instance *inst,
                                              size_t n)
{
    Krane__V1__GetDeploymentResponse *r =
        arena_message(a, &krane__v1__get_deployment_response__descriptor);
    Krane__V1__Instance **items = arena_alloc(a, (n + 1) * sizeof(*items));

    if (r == NULL || items == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        items[i] = arena_message(a, &krane__v1__instance__descriptor);
        if (items[i] == NULL)
            return NULL;
        items[i]->id = (char *)inst[i].id;
        if (inst[i].address != NULL)
            items[i]->address = (char *)inst[i].address;
        items[i]->status = (Krane__V1__DeploymentStatus)inst[i].status;
    }
    r->instances = items;
    r->n_instances = n;
    return &r->base;
}

ProtobufCMessage *krane_get_response(enum object_kind kind, struct arena *a,
                                     const struct krane_instance *inst, size_t n,
                                     const char *address)
{
    return kind == OBJECT_GATEWAY ? ko_gateway_answer(a, inst, n, address)
                                  : ko_deployment_answer(a, inst, n);
}

void krane_list_request(const ProtobufCMessage *in, struct krane_list_request *out)
{
    if (in->descriptor == &krane__v1__list_gateways_request__descriptor) {
        const Krane__V1__ListGatewaysRequest *r = (const void *)in;
        *out =
            (struct krane_list_request){ko_str(r->namespace_), r->page_size, ko_str(r->page_token)};
    } else if (in->descriptor == &krane__v1__list_deployments_request__descriptor) {
        const Krane__V1__ListDeploymentsRequest *r = (const void *)in;
        *out =
            (struct krane_list_request){ko_str(r->namespace_), r->page_size, ko_str(r->page_token)};
    } else {
        *out = (struct krane_list_request){"", 0, ""};
    }
}

static ProtobufCMessage *ko_gateway_list(struct arena *a, const struct krane_summary *sum, size_t n,
                                         const char *next, int32_t total)
{
    Krane__V1__ListGatewaysResponse *r =
        arena_message(a, &krane__v1__list_gateways_response__descriptor);
    Krane__V1__GatewaySummary **items = arena_alloc(a, (n + 1) * sizeof(*items));

    if (r == NULL || items == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        items[i] = arena_message(a, &krane__v1__gateway_summary__descriptor);
        if (items[i] == NULL)
            return NULL;
        items[i]->namespace_ = (char *)sum[i].ns;
        items[i]->gateway_id = (char *)sum[i].id;
        items[i]->image = (char *)sum[i].image;
        items[i]->replicas = sum[i].replicas;
        items[i]->running = sum[i].running;
        items[i]->status = (Krane__V1__GatewayStatus)sum[i].status;
    }
    r->gateways = items;
    r->n_gateways = n;
    if (next != NULL)
        r->next_page_token = (char *)next;
    r->total_count = total;
    return &r->base;
}

static ProtobufCMessage *ko_deployment_list(struct arena *a, const struct krane_summary *sum,
                                            size_t n, const char *next, int32_t total)
{
    Krane__V1__ListDeploymentsResponse *r =
        arena_message(a, &krane__v1__list_deployments_response__descriptor);
    Krane__V1__DeploymentSummary **items = arena_alloc(a, (n + 1) * sizeof(*items));

    if (r == NULL || items == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        items[i] = arena_message(a, &krane__v1__deployment_summary__descriptor);
        if (items[i] == NULL)
            return NULL;
        items[i]->namespace_ = (char *)sum[i].ns;
        items[i]->deployment_id = (char *)sum[i].id;
        items[i]->image = (char *)sum[i].image;
        items[i]->replicas = sum[i].replicas;
        items[i]->running = sum[i].running;
        items[i]->status = (Krane__V1__DeploymentStatus)sum[i].status;
    }
    r->deployments = items;
    r->n_deployments = n;
    if (next != NULL)
        r->next_page_token = (char *)next;
    r->total_count = total;
    return &r->base;
}

ProtobufCMessage *krane_list_response(enum object_kind kind, struct arena *a,
                                      const struct krane_summary *sum, size_t n, const char *next,
                                      int32_t total)
{
    return kind == OBJECT_GATEWAY ? ko_gateway_list(a, sum, n, next, total)
                                  : ko_deployment_list(a, sum, n, next, total);
}

ProtobufCMessage *krane_update_response(enum object_kind kind, struct arena *a,
                                        const char *const *pod_ids, size_t n)
{
    char **ids = arena_alloc(a, (n + 1) * sizeof(*ids));

    if (ids == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++)
        ids[i] = (char *)pod_ids[i];
    if (kind == OBJECT_GATEWAY) {
        Krane__V1__UpdateGatewayResponse *r =
            arena_message(a, &krane__v1__update_gateway_response__descriptor);
        if (r == NULL)
            return NULL;
        r->pod_ids = ids;
        r->n_pod_ids = n;
        return &r->base;
    }
    Krane__V1__UpdateDeploymentResponse *r =
        arena_message(a, &krane__v1__update_deployment_response__descriptor);
    if (r == NULL)
        return NULL;
    r->pod_ids = ids;
    r->n_pod_ids = n;
    return &r->base;
}
