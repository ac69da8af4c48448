/* GatewayService and DeploymentService: a gateway or deployment is `replicas`
 * containers <prefix><id>-<i> of one image, labelled with the object's id,
 * the replica index and a digest of the spec. One set of handlers serves both
 * services: a per-kind table names what differs, and the request and response
 * fields are reached through the protobuf-c descriptors by their proto names.
 * Create and Delete of one object run one after the other; Get only reads. */
#include "berth/gateway_service.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "berth/clock.h"
#include "berth/lock.h"
#include "berth/log.h"
#include "berth/service_util.h"
#include "krane/v1/deployment.pb-c.h"
#include "krane/v1/gateway.pb-c.h"

#define GW_MAX_REPLICAS 100
#define GW_MIN_CPU_MILLICORES 10 /* the Engine refuses less than 0.01 CPU */
#define GW_MIN_MEMORY_MIB 6      /* the Engine refuses less than 6 MiB */
#define GW_MAX_MEMORY_MIB ((uint64_t)INT64_MAX / (1024 * 1024))
#define GW_TEXT_MAX 256 /* namespace, workspace, environment and build ids */
#define GW_IMAGE_MAX 1024
#define GW_MAX_ENV 1000
#define GW_ROLLBACK_MS 10000  /* removals after a failure get this long past the call */
#define GW_MAX_LABELS 12
#define GW_MAX_OWN_ENV 8
#define GW_SPEC_LABEL "berth.spec"
#define GW_REPLICA_LABEL "berth.replica"
#define GW_NAMESPACE_LABEL "berth.namespace"

/* Both wire enums share these numbers; the handlers use ours. */
enum gw_status {
    GW_STATUS_UNSPECIFIED = 0,
    GW_STATUS_PENDING = 1,
    GW_STATUS_RUNNING = 2,
    GW_STATUS_TERMINATING = 3,
};
_Static_assert((int)GW_STATUS_PENDING == (int)KRANE__V1__GATEWAY_STATUS__GATEWAY_STATUS_PENDING &&
                   (int)GW_STATUS_RUNNING ==
                       (int)KRANE__V1__GATEWAY_STATUS__GATEWAY_STATUS_RUNNING &&
                   (int)GW_STATUS_TERMINATING ==
                       (int)KRANE__V1__GATEWAY_STATUS__GATEWAY_STATUS_TERMINATING,
               "gw_status mirrors GatewayStatus");
_Static_assert((int)GW_STATUS_PENDING ==
                       (int)KRANE__V1__DEPLOYMENT_STATUS__DEPLOYMENT_STATUS_PENDING &&
                   (int)GW_STATUS_RUNNING ==
                       (int)KRANE__V1__DEPLOYMENT_STATUS__DEPLOYMENT_STATUS_RUNNING &&
                   (int)GW_STATUS_TERMINATING ==
                       (int)KRANE__V1__DEPLOYMENT_STATUS__DEPLOYMENT_STATUS_TERMINATING,
               "gw_status mirrors DeploymentStatus");

enum gw_kind_index { GW_KIND_GATEWAY, GW_KIND_DEPLOYMENT, GW_KIND_COUNT };

/* What differs between gateways and deployments. Field names are proto names. */
struct gw_kind {
    const char *name;         /* "gateway": messages, logs, the berth.kind label */
    const char *object_field; /* the Create request's field holding the object */
    const char *id_field;     /* "gateway_id" */
    const char *id_json;      /* "gatewayId", for error messages */
    const char *name_prefix;  /* container names: <prefix><id>-<i> */
    const char *id_label;     /* "berth.gateway_id" */
    const char *id_env;       /* "BERTH_GATEWAY_ID" */
    const ProtobufCMessageDescriptor *create_out;
    const ProtobufCMessageDescriptor *get_out;
    const ProtobufCMessageDescriptor *delete_out;
};

static const struct gw_kind gw_kinds[GW_KIND_COUNT] = {
    [GW_KIND_GATEWAY] = {"gateway", "gateway", "gateway_id", "gatewayId", "berth-gw-",
                         "berth.gateway_id", "BERTH_GATEWAY_ID",
                         &krane__v1__create_gateway_response__descriptor,
                         &krane__v1__get_gateway_response__descriptor,
                         &krane__v1__delete_gateway_response__descriptor},
    [GW_KIND_DEPLOYMENT] = {"deployment", "deployment", "deployment_id", "deploymentId",
                            "berth-dep-", "berth.deployment_id", "BERTH_DEPLOYMENT_ID",
                            &krane__v1__create_deployment_response__descriptor,
                            &krane__v1__get_deployment_response__descriptor,
                            &krane__v1__delete_deployment_response__descriptor},
};

struct gateway_service;

/* The handler context: one per kind. Read-only after gateway_service_new. */
struct gw_binding {
    struct gateway_service *s;
    const struct gw_kind *kind;
    int port; /* container port of this kind's replicas */
};

struct gateway_service {
    struct backend *backend; /* borrowed */
    char *advertise_host;    /* owned, read-only */
    struct gw_binding bind[GW_KIND_COUNT];
    pthread_mutex_t busy_lock;
    pthread_cond_t busy_cond;
    /* "<kind>/<id>" of every Create and Delete under way, borrowed from the
     * arena of the call that owns the entry. Guarded by busy_lock. */
    const char **busy;
    size_t n_busy;   /* guarded by busy_lock */
    size_t cap_busy; /* guarded by busy_lock */
};

/* The common view of a GatewayRequest or DeploymentRequest; strings are
 * borrowed from the decoded request (never NULL: "" when absent). */
struct gw_object {
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
    size_t secrets_len;
    const struct service_kv_entry **env; /* deduplicated (last wins), sorted by key */
    size_t n_env;
};

/* The container spec of one replica; replica_i switches it to replica i.
 * Everything lives in the call arena. */
struct gw_plan {
    struct gw_object obj;
    const char *digest; /* the berth.spec label */
    struct backend_spec spec;
    struct backend_label labels[GW_MAX_LABELS];
    size_t replica_label; /* index of berth.replica in labels */
    const char **env;
    size_t instance_env; /* index of BERTH_INSTANCE_ID in env */
    struct backend_port port;
};

/* One replica container found through the id label. */
struct gw_replica {
    unsigned index;
    const struct backend_container *c;
};

static const ProtobufCFieldDescriptor *gw_field(const ProtobufCMessageDescriptor *d,
                                                const char *name, ProtobufCType type, int repeated);
static const char *gw_get_str(const ProtobufCMessage *m, const char *name);
static uint64_t gw_get_uint(const ProtobufCMessage *m, const char *name);
static size_t gw_get_bytes_len(const ProtobufCMessage *m, const char *name);
static const ProtobufCMessage *gw_get_msg(const ProtobufCMessage *m, const char *name);
static void gw_get_map(const ProtobufCMessage *m, const char *name,
                       const struct service_kv_entry *const **items, size_t *n);
static void gw_set_str(ProtobufCMessage *m, const char *name, char *value);
static void gw_set_enum(ProtobufCMessage *m, const char *name, int value);

static int gw_check_text(const char *field, const char *value, size_t max, struct berth_err *err);
static int gw_env_cmp(const void *a, const void *b);
static int gw_read_env(struct arena *a, const char *field, const ProtobufCMessage *m,
                       struct gw_object *o, struct berth_err *err);
static int gw_read_object(struct arena *a, const struct gw_kind *k, const ProtobufCMessage *m,
                          struct gw_object *o, struct berth_err *err);
static uint64_t gw_hash_field(uint64_t h, const char *name, const char *sub, const char *value);
static const char *gw_digest(struct arena *a, const struct gw_object *o);
static int gw_plan_build(struct arena *a, const struct gw_binding *b, const struct gw_object *o,
                         struct gw_plan *p, struct berth_err *err);
static int gw_plan_replica(struct arena *a, const struct gw_kind *k, struct gw_plan *p, unsigned i,
                           struct berth_err *err);

static int gw_busy_take(struct gateway_service *s, const char *key, int64_t deadline,
                        struct berth_err *err);
static void gw_busy_give(struct gateway_service *s, const char *key);

static int gw_replica_index(const struct backend_container *c, unsigned *out);
static int gw_replica_cmp(const void *a, const void *b);
static int gw_find(struct gateway_service *s, const struct gw_kind *k, const char *ns,
                   const char *id, int64_t deadline, struct backend_container_list *list,
                   struct gw_replica **out, size_t *n, struct arena *a, struct berth_err *err);
static enum gw_status gw_status_of(const char *state);
static char *gw_address(struct arena *a, const struct gw_binding *b,
                        const struct backend_container *c);
static void gw_rollback(struct gateway_service *s, const struct gw_kind *k, const char *id,
                        char **made, size_t n_made);
static int gw_make_replica(struct gateway_service *s, struct rpc_call *call,
                           const struct gw_kind *k, struct gw_plan *p, unsigned i, char **made,
                           size_t *n_made, struct berth_err *err);
static int gw_read_id(const struct gw_kind *k, const ProtobufCMessage *in, const char **ns,
                      const char **id, struct berth_err *err);

static int h_create(void *ctx, struct rpc_call *call, const ProtobufCMessage *in,
                    ProtobufCMessage **out, struct berth_err *err);
static int h_get(void *ctx, struct rpc_call *call, const ProtobufCMessage *in,
                 ProtobufCMessage **out, struct berth_err *err);
static int h_delete(void *ctx, struct rpc_call *call, const ProtobufCMessage *in,
                    ProtobufCMessage **out, struct berth_err *err);

static const struct {
    const char *path;
    enum gw_kind_index kind;
    rpc_handler_fn fn;
} gw_routes[] = {
    {"/krane.v1.GatewayService/CreateGateway", GW_KIND_GATEWAY, h_create},
    {"/krane.v1.GatewayService/GetGateway", GW_KIND_GATEWAY, h_get},
    {"/krane.v1.GatewayService/DeleteGateway", GW_KIND_GATEWAY, h_delete},
    {"/krane.v1.DeploymentService/CreateDeployment", GW_KIND_DEPLOYMENT, h_create},
    {"/krane.v1.DeploymentService/GetDeployment", GW_KIND_DEPLOYMENT, h_get},
    {"/krane.v1.DeploymentService/DeleteDeployment", GW_KIND_DEPLOYMENT, h_delete},
};

/* ---- life of the service --------------------------------------------- */

struct gateway_service *gateway_service_new(const struct gateway_service_config *cfg,
                                            struct backend *backend)
{
    struct gateway_service *s = calloc(1, sizeof(*s));
    const char *host = cfg->advertise_host;

    if (s == NULL)
        return NULL;
    if (host == NULL || host[0] == '\0')
        host = cfg->publish_address ? cfg->publish_address : "";
    s->advertise_host = strdup(host);
    if (s->advertise_host == NULL) {
        free(s);
        return NULL;
    }
    s->backend = backend;
    for (int i = 0; i < GW_KIND_COUNT; i++) {
        s->bind[i].s = s;
        s->bind[i].kind = &gw_kinds[i];
    }
    s->bind[GW_KIND_GATEWAY].port = cfg->gateway_port;
    s->bind[GW_KIND_DEPLOYMENT].port = cfg->deployment_port;
    lock_init(&s->busy_lock);
    pthread_cond_init(&s->busy_cond, NULL);
    return s;
}

void gateway_service_free(struct gateway_service *s)
{
    if (s == NULL)
        return;
    lock_destroy(&s->busy_lock);
    pthread_cond_destroy(&s->busy_cond);
    free(s->busy);
    free(s->advertise_host);
    free(s);
}

int gateway_service_register(struct gateway_service *s, struct router *r)
{
    for (size_t i = 0; i < sizeof(gw_routes) / sizeof(gw_routes[0]); i++)
        if (router_set_handler(r, gw_routes[i].path, gw_routes[i].fn, &s->bind[gw_routes[i].kind]) <
            0)
            return -1;
    return 0;
}

/* ---- message fields by proto name ------------------------------------- */

/* The field `name` of type `type`, or NULL when this message has none. */
static const ProtobufCFieldDescriptor *gw_field(const ProtobufCMessageDescriptor *d,
                                                const char *name, ProtobufCType type, int repeated)
{
    const ProtobufCFieldDescriptor *fd = protobuf_c_message_descriptor_get_field_by_name(d, name);

    if (fd == NULL || fd->type != type || (fd->label == PROTOBUF_C_LABEL_REPEATED) != repeated)
        return NULL;
    return fd;
}

static const char *gw_get_str(const ProtobufCMessage *m, const char *name)
{
    const ProtobufCFieldDescriptor *fd = gw_field(m->descriptor, name, PROTOBUF_C_TYPE_STRING, 0);
    const char *v;

    if (fd == NULL)
        return "";
    v = *(char *const *)((const char *)m + fd->offset);
    return v ? v : "";
}

static uint64_t gw_get_uint(const ProtobufCMessage *m, const char *name)
{
    const ProtobufCFieldDescriptor *fd = gw_field(m->descriptor, name, PROTOBUF_C_TYPE_UINT32, 0);

    if (fd != NULL)
        return *(const uint32_t *)((const char *)m + fd->offset);
    fd = gw_field(m->descriptor, name, PROTOBUF_C_TYPE_UINT64, 0);
    if (fd != NULL)
        return *(const uint64_t *)((const char *)m + fd->offset);
    return 0;
}

static size_t gw_get_bytes_len(const ProtobufCMessage *m, const char *name)
{
    const ProtobufCFieldDescriptor *fd = gw_field(m->descriptor, name, PROTOBUF_C_TYPE_BYTES, 0);

    if (fd == NULL)
        return 0;
    return ((const ProtobufCBinaryData *)((const char *)m + fd->offset))->len;
}

static const ProtobufCMessage *gw_get_msg(const ProtobufCMessage *m, const char *name)
{
    const ProtobufCFieldDescriptor *fd = gw_field(m->descriptor, name, PROTOBUF_C_TYPE_MESSAGE, 0);

    if (fd == NULL)
        return NULL;
    return *(const ProtobufCMessage *const *)((const char *)m + fd->offset);
}

/* A map<string, string> field: its entries share service_kv_entry's layout. */
static void gw_get_map(const ProtobufCMessage *m, const char *name,
                       const struct service_kv_entry *const **items, size_t *n)
{
    const ProtobufCFieldDescriptor *fd = gw_field(m->descriptor, name, PROTOBUF_C_TYPE_MESSAGE, 1);

    *items = NULL;
    *n = 0;
    if (fd == NULL)
        return;
    *n = *(const size_t *)((const char *)m + fd->quantifier_offset);
    *items = *(const struct service_kv_entry *const *const *)((const char *)m + fd->offset);
}

/* Setters do nothing when the message has no such field (a deployment's Get
 * answer has no top-level address). value is borrowed from the arena. */
static void gw_set_str(ProtobufCMessage *m, const char *name, char *value)
{
    const ProtobufCFieldDescriptor *fd = gw_field(m->descriptor, name, PROTOBUF_C_TYPE_STRING, 0);

    if (fd != NULL && value != NULL)
        *(char **)((char *)m + fd->offset) = value;
}

static void gw_set_enum(ProtobufCMessage *m, const char *name, int value)
{
    const ProtobufCFieldDescriptor *fd = gw_field(m->descriptor, name, PROTOBUF_C_TYPE_ENUM, 0);

    if (fd != NULL)
        *(int *)((char *)m + fd->offset) = value;
}

/* ---- request -> plan -------------------------------------------------- */

/* Free-form ids of other systems become labels and environment: bounded,
 * printable. */
static int gw_check_text(const char *field, const char *value, size_t max, struct berth_err *err)
{
    size_t n = strlen(value);

    if (n > max)
        return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                             "field '%s' is longer than %zu characters", field, max);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)value[i];
        if (c < 0x20 || c == 0x7f)
            return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                                 "field '%s' holds a control character", field);
    }
    return 0;
}

static int gw_env_cmp(const void *a, const void *b)
{
    const struct service_kv_entry *const *x = a, *const *y = b;

    return strcmp((*x)->key, (*y)->key);
}

/* The request's env, checked, with the last of duplicate keys kept (map
 * semantics) and sorted by key, so the spec digest does not depend on the
 * order a client sent it in. */
static int gw_read_env(struct arena *a, const char *field, const ProtobufCMessage *m,
                       struct gw_object *o, struct berth_err *err)
{
    const struct service_kv_entry *const *items;
    size_t n;

    gw_get_map(m, "env", &items, &n);
    if (n > GW_MAX_ENV)
        return berth_err_set(err, BERTH_INVALID_ARGUMENT, "field '%s.env' has more than %d entries",
                             field, GW_MAX_ENV);
    o->env = arena_alloc(a, (n + 1) * sizeof(*o->env));
    if (o->env == NULL)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    for (size_t i = n; i-- > 0;) {
        const struct service_kv_entry *e = items[i];
        const char *k = e->key ? e->key : "";
        int seen = 0;
        char quoted[80];

        berth_err_quote(quoted, sizeof(quoted), k, 64);
        if (k[0] == '\0' || strchr(k, '=') != NULL)
            return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                                 "field '%s.env[\"%s\"]': a name must be non-empty and hold no "
                                 "'='",
                                 field, quoted);
        if (strncmp(k, "BERTH_", 6) == 0)
            return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                                 "field '%s.env[\"%s\"]': names starting with BERTH_ are set by "
                                 "berthd",
                                 field, quoted);
        for (size_t j = 0; j < o->n_env && !seen; j++)
            seen = strcmp(o->env[j]->key, k) == 0;
        if (!seen)
            o->env[o->n_env++] = e;
    }
    if (o->n_env > 1)
        qsort(o->env, o->n_env, sizeof(*o->env), gw_env_cmp);
    return 0;
}

/* Validate the object of a Create request into o. */
static int gw_read_object(struct arena *a, const struct gw_kind *k, const ProtobufCMessage *m,
                          struct gw_object *o, struct berth_err *err)
{
    char field[64];
    const struct {
        const char *proto, *json;
        const char **dst;
    } texts[] = {
        {"namespace", "namespace", &o->ns},
        {"workspace_id", "workspaceId", &o->workspace_id},
        {"environment_slug", "environmentSlug", &o->env_slug},
        {"environment_id", "environmentId", &o->env_id},
        {"build_id", "buildId", &o->build_id},
    };

    memset(o, 0, sizeof(*o));
    o->id = gw_get_str(m, k->id_field);
    o->image = gw_get_str(m, "image");
    o->replicas = gw_get_uint(m, "replicas");
    o->cpu_millicores = gw_get_uint(m, "cpu_millicores");
    o->memory_mib = gw_get_uint(m, "memory_size_mib");
    o->secrets_len = gw_get_bytes_len(m, "encrypted_secrets_blob");

    snprintf(field, sizeof(field), "%s.%s", k->name, k->id_json);
    if (service_check_id(field, o->id, err) < 0)
        return -1;
    /* Never dropped silently: a client that sends secrets must learn that
     * its containers would run without them. */
    if (o->secrets_len > 0)
        return berth_err_set(err, BERTH_UNIMPLEMENTED,
                             "field '%s.encryptedSecretsBlob': berthd cannot decrypt encrypted "
                             "secrets; send the request without them",
                             k->name);
    if (o->image[0] == '\0')
        return berth_err_set(err, BERTH_INVALID_ARGUMENT, "field '%s.image' is required", k->name);
    snprintf(field, sizeof(field), "%s.image", k->name);
    if (gw_check_text(field, o->image, GW_IMAGE_MAX, err) < 0)
        return -1;
    if (o->replicas < 1 || o->replicas > GW_MAX_REPLICAS)
        return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                             "field '%s.replicas': %" PRIu64 " is not from 1 to %d", k->name,
                             o->replicas, GW_MAX_REPLICAS);
    if (o->cpu_millicores > 0 && o->cpu_millicores < GW_MIN_CPU_MILLICORES)
        return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                             "field '%s.cpuMillicores': %" PRIu64
                             " is below the minimum of %d (0 means no limit)",
                             k->name, o->cpu_millicores, GW_MIN_CPU_MILLICORES);
    if (o->memory_mib > 0 && o->memory_mib < GW_MIN_MEMORY_MIB)
        return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                             "field '%s.memorySizeMib': %" PRIu64
                             " is below the minimum of %d (0 means no limit)",
                             k->name, o->memory_mib, GW_MIN_MEMORY_MIB);
    if (o->memory_mib > GW_MAX_MEMORY_MIB)
        return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                             "field '%s.memorySizeMib': %" PRIu64 " is too large", k->name,
                             o->memory_mib);
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        *texts[i].dst = gw_get_str(m, texts[i].proto);
        snprintf(field, sizeof(field), "%s.%s", k->name, texts[i].json);
        if (gw_check_text(field, *texts[i].dst, GW_TEXT_MAX, err) < 0)
            return -1;
    }
    return gw_read_env(a, k->name, m, o, err);
}

/* Feed one field into an FNV-1a (64 bits) hash as name=length:value\n, so
 * no two different field lists hash the same text. */
static uint64_t gw_hash_field(uint64_t h, const char *name, const char *sub, const char *value)
{
    char len[24];
    const char *pieces[5];

    snprintf(len, sizeof(len), "=%zu:", strlen(value));
    pieces[0] = name;
    pieces[1] = sub;
    pieces[2] = len;
    pieces[3] = value;
    pieces[4] = "\n";
    for (size_t p = 0; p < sizeof(pieces) / sizeof(pieces[0]); p++)
        for (const unsigned char *c = (const unsigned char *)pieces[p]; *c; c++) {
            h ^= *c;
            h *= 0x100000001b3ULL;
        }
    return h;
}

/* The berth.spec label: a digest of every field that shapes the replicas, in
 * a fixed order, env sorted. It tells a retry of the same Create from a
 * different one; it is no protection against a client that crafts
 * collisions between its own requests. */
static const char *gw_digest(struct arena *a, const struct gw_object *o)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    char replicas[24], cpu[24], mem[24];

    snprintf(replicas, sizeof(replicas), "%" PRIu64, o->replicas);
    snprintf(cpu, sizeof(cpu), "%" PRIu64, o->cpu_millicores);
    snprintf(mem, sizeof(mem), "%" PRIu64, o->memory_mib);
    h = gw_hash_field(h, "namespace", "", o->ns);
    h = gw_hash_field(h, "image", "", o->image);
    h = gw_hash_field(h, "replicas", "", replicas);
    h = gw_hash_field(h, "cpu_millicores", "", cpu);
    h = gw_hash_field(h, "memory_size_mib", "", mem);
    h = gw_hash_field(h, "workspace_id", "", o->workspace_id);
    h = gw_hash_field(h, "environment_slug", "", o->env_slug);
    h = gw_hash_field(h, "environment_id", "", o->env_id);
    h = gw_hash_field(h, "build_id", "", o->build_id);
    for (size_t i = 0; i < o->n_env; i++)
        h = gw_hash_field(h, "env.", o->env[i]->key, o->env[i]->value ? o->env[i]->value : "");
    return arena_printf(a, "fnv1a64:%016" PRIx64, h);
}

/* Everything every replica shares: labels, env, port, limits. */
static int gw_plan_build(struct arena *a, const struct gw_binding *b, const struct gw_object *o,
                         struct gw_plan *p, struct berth_err *err)
{
    const struct gw_kind *k = b->kind;
    const struct {
        const char *label, *env, *value;
    } extra[] = {
        {GW_NAMESPACE_LABEL, "BERTH_NAMESPACE", o->ns},
        {"berth.workspace_id", "BERTH_WORKSPACE_ID", o->workspace_id},
        {"berth.environment_slug", "BERTH_ENVIRONMENT_SLUG", o->env_slug},
        {"berth.environment_id", "BERTH_ENVIRONMENT_ID", o->env_id},
        {"berth.build_id", "BERTH_BUILD_ID", o->build_id},
    };
    size_t nl = 0, ne = 0;

    memset(p, 0, sizeof(*p));
    p->obj = *o;
    p->digest = gw_digest(a, o);
    p->env = arena_alloc(a, (GW_MAX_OWN_ENV + o->n_env) * sizeof(*p->env));
    if (p->digest == NULL || p->env == NULL)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");

    p->labels[nl++] = (struct backend_label){"berth.kind", k->name};
    p->labels[nl++] = (struct backend_label){k->id_label, o->id};
    p->replica_label = nl;
    p->labels[nl++] = (struct backend_label){GW_REPLICA_LABEL, "0"};
    p->labels[nl++] = (struct backend_label){GW_SPEC_LABEL, p->digest};
    p->env[ne++] = arena_printf(a, "%s=%s", k->id_env, o->id);
    p->instance_env = ne;
    p->env[ne++] = "";
    for (size_t i = 0; i < sizeof(extra) / sizeof(extra[0]); i++) {
        if (extra[i].value[0] == '\0')
            continue;
        p->labels[nl++] = (struct backend_label){extra[i].label, extra[i].value};
        p->env[ne++] = arena_printf(a, "%s=%s", extra[i].env, extra[i].value);
    }
    for (size_t i = 0; i < o->n_env; i++)
        p->env[ne++] =
            arena_printf(a, "%s=%s", o->env[i]->key, o->env[i]->value ? o->env[i]->value : "");
    for (size_t i = 0; i < ne; i++)
        if (p->env[i] == NULL)
            return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");

    p->port.container_port = b->port;
    p->port.host_port = 0; /* the Engine picks a free one */
    memcpy(p->port.protocol, "tcp", 4);
    p->spec.image = o->image;
    p->spec.env = p->env;
    p->spec.n_env = ne;
    p->spec.ports = &p->port;
    p->spec.n_ports = 1;
    p->spec.labels = p->labels;
    p->spec.n_labels = nl;
    p->spec.nano_cpus = (int64_t)o->cpu_millicores * 1000000;
    p->spec.memory_bytes = (int64_t)o->memory_mib * 1024 * 1024;
    p->spec.restart_policy = "unless-stopped";
    return 0;
}

/* Point the plan's name, replica label and instance env at replica i. */
static int gw_plan_replica(struct arena *a, const struct gw_kind *k, struct gw_plan *p, unsigned i,
                           struct berth_err *err)
{
    const char *name = arena_printf(a, "%s%s-%u", k->name_prefix, p->obj.id, i);
    const char *index = arena_printf(a, "%u", i);
    const char *env = arena_printf(a, "BERTH_INSTANCE_ID=%s-%u", p->obj.id, i);

    if (name == NULL || index == NULL || env == NULL)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    p->spec.name = name;
    p->labels[p->replica_label].value = index;
    p->env[p->instance_env] = env;
    return 0;
}

/* ---- one Create or Delete per object at a time ------------------------- */

/* Mark key busy, waiting while another call holds it. key is borrowed until
 * gw_busy_give (it lives in the caller's arena). */
static int gw_busy_take(struct gateway_service *s, const char *key, int64_t deadline,
                        struct berth_err *err)
{
    int rc = -1;

    lock_take(&s->busy_lock);
    for (;;) {
        int held = 0;
        for (size_t i = 0; i < s->n_busy && !held; i++)
            held = strcmp(s->busy[i], key) == 0;
        if (!held)
            break;
        if (lock_wait_until(&s->busy_cond, &s->busy_lock, deadline) < 0) {
            berth_err_set(err, BERTH_DEADLINE_EXCEEDED,
                          "'%s': another create or delete of it is still under way", key);
            goto out;
        }
    }
    if (s->n_busy == s->cap_busy) {
        size_t cap = s->cap_busy ? 2 * s->cap_busy : 8;
        const char **grown = realloc(s->busy, cap * sizeof(*grown));
        if (grown == NULL) {
            berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
            goto out;
        }
        s->busy = grown;
        s->cap_busy = cap;
    }
    s->busy[s->n_busy++] = key;
    rc = 0;
out:
    lock_give(&s->busy_lock);
    return rc;
}

static void gw_busy_give(struct gateway_service *s, const char *key)
{
    lock_take(&s->busy_lock);
    for (size_t i = 0; i < s->n_busy; i++)
        if (s->busy[i] == key) {
            s->busy[i] = s->busy[--s->n_busy];
            break;
        }
    pthread_cond_broadcast(&s->busy_cond);
    lock_give(&s->busy_lock);
}

/* ---- finding the replicas ---------------------------------------------- */

/* The berth.replica label as a number; -1 when missing or malformed. */
static int gw_replica_index(const struct backend_container *c, unsigned *out)
{
    const char *v = backend_container_label(c, GW_REPLICA_LABEL);
    char *end;
    unsigned long n;

    if (v == NULL || v[0] < '0' || v[0] > '9')
        return -1;
    n = strtoul(v, &end, 10);
    if (*end != '\0' || n >= GW_MAX_REPLICAS)
        return -1;
    *out = (unsigned)n;
    return 0;
}

static int gw_replica_cmp(const void *a, const void *b)
{
    const struct gw_replica *x = a, *y = b;

    return x->index < y->index ? -1 : x->index > y->index;
}

/* The replica containers of (ns, id), sorted by index: list holds them (the
 * caller releases it), *out points into it (arena memory). Containers of the
 * id in another namespace are not ours to see. A labelled container without
 * a readable replica index is logged and skipped. */
static int gw_find(struct gateway_service *s, const struct gw_kind *k, const char *ns,
                   const char *id, int64_t deadline, struct backend_container_list *list,
                   struct gw_replica **out, size_t *n, struct arena *a, struct berth_err *err)
{
    const char *filter = arena_printf(a, "%s=%s", k->id_label, id);
    struct gw_replica *r;
    size_t m = 0;

    if (filter == NULL)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    if (s->backend->ops->list(s->backend->ctx, filter, deadline, list, err) < 0)
        return -1;
    r = arena_alloc(a, (list->n + 1) * sizeof(*r));
    if (r == NULL)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    for (size_t i = 0; i < list->n; i++) {
        const struct backend_container *c = &list->items[i];
        const char *cns = backend_container_label(c, GW_NAMESPACE_LABEL);

        if (strcmp(cns ? cns : "", ns) != 0)
            continue;
        if (gw_replica_index(c, &r[m].index) < 0) {
            log_warn("krane.skip", "kind=%s id=%s container_id=%.12s reason=\"no replica index\"",
                     k->name, id, c->id);
            continue;
        }
        r[m++].c = c;
    }
    if (m > 1)
        qsort(r, m, sizeof(*r), gw_replica_cmp);
    *out = r;
    *n = m;
    return 0;
}

static enum gw_status gw_status_of(const char *state)
{
    static const struct {
        const char *state;
        enum gw_status status;
    } map[] = {
        {"running", GW_STATUS_RUNNING},      {"created", GW_STATUS_PENDING},
        {"restarting", GW_STATUS_PENDING},   {"paused", GW_STATUS_TERMINATING},
        {"exited", GW_STATUS_TERMINATING},   {"dead", GW_STATUS_TERMINATING},
        {"removing", GW_STATUS_TERMINATING},
    };

    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (strcmp(map[i].state, state) == 0)
            return map[i].status;
    return GW_STATUS_UNSPECIFIED;
}

/* "<advertise host>:<published host port>" of the kind's container port, or
 * NULL when the port is not published (yet). IPv6 hosts get brackets. */
static char *gw_address(struct arena *a, const struct gw_binding *b,
                        const struct backend_container *c)
{
    const char *host = b->s->advertise_host;
    int v6 = strchr(host, ':') != NULL && host[0] != '[';

    for (size_t i = 0; i < c->n_ports; i++) {
        const struct backend_port *p = &c->ports[i];
        if (p->container_port == b->port && p->host_port > 0 && strcmp(p->protocol, "tcp") == 0)
            return arena_printf(a, v6 ? "[%s]:%d" : "%s:%d", host, p->host_port);
    }
    return NULL;
}

/* ---- Create ------------------------------------------------------------ */

/* Remove the replicas this call made. Best effort: failures are logged. */
static void gw_rollback(struct gateway_service *s, const struct gw_kind *k, const char *id,
                        char **made, size_t n_made)
{
    int64_t deadline = berth_now_ms() + GW_ROLLBACK_MS;
    size_t removed = 0;

    for (size_t i = 0; i < n_made; i++) {
        struct berth_err e;
        berth_err_clear(&e);
        if (s->backend->ops->remove(s->backend->ctx, made[i], deadline, &e) == 0)
            removed++;
        else if (e.code != BERTH_NOT_FOUND)
            log_warn("krane.rollback", "kind=%s id=%s container=%.64s code=%s error=\"%s\"",
                     k->name, id, made[i], berth_code_name(e.code), e.msg);
    }
    if (removed > 0)
        log_info("krane.rollback", "kind=%s id=%s removed=%zu", k->name, id, removed);
}

/* Create and start replica i. What was created is appended to made (heap
 * strings the caller frees) before the start, so a failed start is rolled
 * back too. */
static int gw_make_replica(struct gateway_service *s, struct rpc_call *call,
                           const struct gw_kind *k, struct gw_plan *p, unsigned i, char **made,
                           size_t *n_made, struct berth_err *err)
{
    char *cid = NULL;

    if (gw_plan_replica(call->arena, k, p, i, err) < 0)
        return -1;
    if (s->backend->ops->create(s->backend->ctx, &p->spec, call->deadline, &cid, err) < 0) {
        /* Nothing to add to made: the backend removes what a create of
         * unknown outcome made, and the name may hold another's container. */
        if (err->code == BERTH_ALREADY_EXISTS) {
            berth_err_clear(err);
            berth_err_set(err, BERTH_ALREADY_EXISTS,
                          "%s '%s': a container named '%s' already exists", k->name, p->obj.id,
                          p->spec.name);
        }
        return -1;
    }
    made[(*n_made)++] = cid;
    return s->backend->ops->start(s->backend->ctx, cid, call->deadline, err);
}

/* Create: validate, take the id, compare with what exists, make the missing
 * replicas. All-or-nothing for what this call makes. */
static int h_create(void *ctx, struct rpc_call *call, const ProtobufCMessage *in,
                    ProtobufCMessage **out, struct berth_err *err)
{
    const struct gw_binding *b = ctx;
    const struct gw_kind *k = b->kind;
    struct gateway_service *s = b->s;
    const ProtobufCMessage *m = gw_get_msg(in, k->object_field);
    struct backend_container_list list = {0};
    struct gw_object o;
    struct gw_plan plan;
    ProtobufCMessage *resp;
    char present[GW_MAX_REPLICAS] = {0};
    char *made[GW_MAX_REPLICAS + 1];
    const char *key, *filter;
    size_t n_made = 0, started = 0;
    int rc = -1;

    if (m == NULL)
        return berth_err_set(err, BERTH_INVALID_ARGUMENT, "field '%s' is required", k->name);
    if (gw_read_object(call->arena, k, m, &o, err) < 0 ||
        gw_plan_build(call->arena, b, &o, &plan, err) < 0)
        return -1;
    key = arena_printf(call->arena, "%s/%s", k->name, o.id);
    filter = arena_printf(call->arena, "%s=%s", k->id_label, o.id);
    if (key == NULL || filter == NULL)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    if (gw_busy_take(s, key, call->deadline, err) < 0)
        return -1;

    /* Every container of the id counts, whatever its namespace: the names
     * hold the id alone, so an id is unique across namespaces. */
    if (s->backend->ops->list(s->backend->ctx, filter, call->deadline, &list, err) < 0)
        goto out;
    for (size_t i = 0; i < list.n; i++) {
        const struct backend_container *c = &list.items[i];
        const char *spec = backend_container_label(c, GW_SPEC_LABEL);
        const char *ns = backend_container_label(c, GW_NAMESPACE_LABEL);
        unsigned idx;

        if (spec == NULL || strcmp(spec, plan.digest) != 0 || strcmp(ns ? ns : "", o.ns) != 0 ||
            gw_replica_index(c, &idx) < 0 || idx >= o.replicas) {
            berth_err_set(err, BERTH_ALREADY_EXISTS, "%s '%s' already exists with a different spec",
                          k->name, o.id);
            goto out;
        }
        present[idx] = 1;
    }

    /* A retry completes a set that a crash or a removal behind our back left
     * short, and starts replicas that were made but never started. */
    for (size_t i = 0; i < list.n; i++) {
        const struct backend_container *c = &list.items[i];
        if (strcmp(c->state, "created") != 0 && strcmp(c->state, "exited") != 0)
            continue;
        if (s->backend->ops->start(s->backend->ctx, c->id, call->deadline, err) < 0)
            goto out;
        started++;
    }
    for (unsigned i = 0; i < o.replicas; i++) {
        if (present[i])
            continue;
        if (gw_make_replica(s, call, k, &plan, i, made, &n_made, err) < 0)
            goto out;
    }
    resp = arena_message(call->arena, k->create_out);
    if (resp == NULL) {
        berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    gw_set_enum(resp, "status", GW_STATUS_PENDING);
    *out = resp;
    if (list.n == 0)
        log_info("krane.created", "kind=%s id=%s replicas=%" PRIu64 " image=%s", k->name, o.id,
                 o.replicas, o.image);
    else
        log_info("krane.create_retry", "kind=%s id=%s existing=%zu added=%zu started=%zu", k->name,
                 o.id, list.n, n_made, started);
    rc = 0;
out:
    if (rc < 0) {
        log_info("krane.create_failed", "kind=%s id=%s code=%s", k->name, o.id,
                 berth_code_name(err->code));
        gw_rollback(s, k, o.id, made, n_made);
    }
    for (size_t i = 0; i < n_made; i++)
        free(made[i]);
    backend_container_list_release(&list);
    gw_busy_give(s, key);
    return rc;
}

/* ---- Get and Delete ---------------------------------------------------- */

static int gw_read_id(const struct gw_kind *k, const ProtobufCMessage *in, const char **ns,
                      const char **id, struct berth_err *err)
{
    *ns = gw_get_str(in, "namespace");
    *id = gw_get_str(in, k->id_field);
    if (service_check_id(k->id_json, *id, err) < 0)
        return -1;
    return gw_check_text("namespace", *ns, GW_TEXT_MAX, err);
}

static int h_get(void *ctx, struct rpc_call *call, const ProtobufCMessage *in,
                 ProtobufCMessage **out, struct berth_err *err)
{
    const struct gw_binding *b = ctx;
    const struct gw_kind *k = b->kind;
    struct arena *a = call->arena;
    struct backend_container_list list = {0};
    const ProtobufCFieldDescriptor *fd =
        gw_field(k->get_out, "instances", PROTOBUF_C_TYPE_MESSAGE, 1);
    struct gw_replica *r = NULL;
    ProtobufCMessage *resp, **items;
    const char *ns, *id;
    char *address = NULL;
    size_t n = 0;
    int rc = -1;

    if (gw_read_id(k, in, &ns, &id, err) < 0)
        return -1;
    if (fd == NULL)
        return berth_err_set(err, BERTH_INTERNAL, "%s answer has no instances", k->name);
    if (gw_find(b->s, k, ns, id, call->deadline, &list, &r, &n, a, err) < 0)
        goto out;
    if (n == 0) {
        berth_err_set(err, BERTH_NOT_FOUND, "%s '%s' not found", k->name, id);
        goto out;
    }
    resp = arena_message(a, k->get_out);
    items = arena_alloc(a, n * sizeof(*items));
    if (resp == NULL || items == NULL)
        goto oom;
    for (size_t i = 0; i < n; i++) {
        ProtobufCMessage *inst = arena_message(a, fd->descriptor);
        char *iid = arena_printf(a, "%s-%u", id, r[i].index);
        char *addr = gw_address(a, b, r[i].c);
        enum gw_status st = gw_status_of(r[i].c->state);

        if (inst == NULL || iid == NULL)
            goto oom;
        gw_set_str(inst, "id", iid);
        gw_set_str(inst, "address", addr);
        gw_set_enum(inst, "status", st);
        if (address == NULL && st == GW_STATUS_RUNNING)
            address = addr;
        items[i] = inst;
    }
    *(size_t *)((char *)resp + fd->quantifier_offset) = n;
    *(ProtobufCMessage ***)((char *)resp + fd->offset) = items;
    gw_set_str(resp, "address", address);
    *out = resp;
    rc = 0;
    goto out;
oom:
    berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
out:
    backend_container_list_release(&list);
    return rc;
}

/* Delete: every replica of (ns, id) goes; one already gone, or no replica at
 * all, is success. On a failure the other replicas are still tried. */
static int h_delete(void *ctx, struct rpc_call *call, const ProtobufCMessage *in,
                    ProtobufCMessage **out, struct berth_err *err)
{
    const struct gw_binding *b = ctx;
    const struct gw_kind *k = b->kind;
    struct gateway_service *s = b->s;
    struct backend_container_list list = {0};
    struct gw_replica *r = NULL;
    ProtobufCMessage *resp;
    const char *ns, *id, *key;
    size_t n = 0, removed = 0;
    int rc = -1, failed = 0;

    if (gw_read_id(k, in, &ns, &id, err) < 0)
        return -1;
    key = arena_printf(call->arena, "%s/%s", k->name, id);
    if (key == NULL)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    if (gw_busy_take(s, key, call->deadline, err) < 0)
        return -1;
    if (gw_find(s, k, ns, id, call->deadline, &list, &r, &n, call->arena, err) < 0)
        goto out;
    for (size_t i = 0; i < n; i++) {
        struct berth_err e;
        berth_err_clear(&e);
        if (s->backend->ops->remove(s->backend->ctx, r[i].c->id, call->deadline, &e) == 0)
            removed++;
        else if (e.code != BERTH_NOT_FOUND) {
            /* The first failure is the answer; the others are logged. */
            if (failed == 0)
                berth_err_set(err, e.code, "%s", e.msg);
            else
                log_warn("krane.delete", "kind=%s id=%s container_id=%.12s error=\"%s\"", k->name,
                         id, r[i].c->id, e.msg);
            failed++;
        }
    }
    if (failed)
        goto out;
    resp = arena_message(call->arena, k->delete_out);
    if (resp == NULL) {
        berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    *out = resp;
    log_info("krane.deleted", "kind=%s id=%s removed=%zu", k->name, id, removed);
    rc = 0;
out:
    backend_container_list_release(&list);
    gw_busy_give(s, key);
    return rc;
}
