/* GatewayService and DeploymentService: a gateway or deployment is `replicas`
 * containers <prefix><id>-<i> of one image, labelled with the object's id,
 * the replica index and a digest of the spec. One set of handlers serves both
 * services: a per-kind table names what differs, and the request and response
 * fields are reached through the protobuf-c descriptors by their proto names.
 * Create and Delete of one object run one after the other; Get only reads.
 * The last known Get answer of every object is cached (filled by live Gets,
 * Creates, engine events and a full sync when the Engine (re)appears), so Get
 * still answers while the Engine cannot be reached. */
#include "berth/gateway_service.h"
#include "berth/labels.h"

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
#define GW_ROLLBACK_MS 10000 /* removals after a failure get this long past the call */
#define GW_MAX_LABELS 12
#define GW_MAX_OWN_ENV 8
#define GW_SPEC_LABEL LABEL_SPEC
#define GW_REPLICA_LABEL LABEL_REPLICA
#define GW_NAMESPACE_LABEL LABEL_NAMESPACE
#define GW_REPLICAS_LABEL LABEL_REPLICAS /* the wanted replica count */
#define GW_EVENT_MS 2000                 /* an event's re-list gets this long */
#define GW_ID_MAX 63                     /* service_check_id's limit */

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
    const char *id_label;     /* LABEL_GATEWAY_ID */
    const char *id_env;       /* "BERTH_GATEWAY_ID" */
    const ProtobufCMessageDescriptor *create_out;
    const ProtobufCMessageDescriptor *get_out;
    const ProtobufCMessageDescriptor *delete_out;
};

static const struct gw_kind gw_kinds[GW_KIND_COUNT] = {
    [GW_KIND_GATEWAY] = {"gateway", "gateway", "gateway_id", "gatewayId", "berth-gw-",
                         LABEL_GATEWAY_ID, "BERTH_GATEWAY_ID",
                         &krane__v1__create_gateway_response__descriptor,
                         &krane__v1__get_gateway_response__descriptor,
                         &krane__v1__delete_gateway_response__descriptor},
    [GW_KIND_DEPLOYMENT] = {"deployment", "deployment", "deployment_id", "deploymentId",
                            "berth-dep-", LABEL_DEPLOYMENT_ID, "BERTH_DEPLOYMENT_ID",
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

/* The last known Get answer of one object, or a tombstone: what a listing
 * (or Delete) with this ticket saw, so a slower, older listing never
 * overwrites it. */
struct gw_cached {
    const struct gw_kind *kind;
    char *ns;        /* owned */
    char *id;        /* owned */
    uint8_t *answer; /* owned: the packed Get response; NULL: known gone */
    size_t len;
    uint64_t ticket;
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

    /* The cache of last known answers. cache_lock guards every field below;
     * it is never held across Engine I/O nor while taking busy_lock (nor
     * the other way round). Each listing takes a ticket before it asks the
     * Engine and stores with it; an entry only takes a newer ticket's news.
     * Tombstones keep a forgotten object's ticket while older listings may
     * still be under way, and go once every listing older than them ended. */
    pthread_mutex_t cache_lock;
    struct gw_cached *cache; /* owned */
    size_t n_cache;
    size_t cap_cache;
    size_t n_dead;    /* tombstones among cache */
    uint64_t ticket;  /* the last ticket handed out */
    uint64_t *flying; /* owned: tickets between gw_cache_begin and gw_cache_end */
    size_t n_flying, cap_flying;
    /* The object the last event re-listed, and when (wall clock, ns, as the
     * Engine's event times on this host): its events from before that need
     * no second listing. */
    const struct gw_kind *last_kind;
    char last_id[GW_ID_MAX + 1];
    int64_t last_began_ns;
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

/* One replica container found through the id label; ns and id are its
 * labels (borrowed from c). */
struct gw_replica {
    const char *ns;
    const char *id;
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
static int gw_collect(const struct gw_kind *k, const struct backend_container_list *list,
                      const char *ns, struct arena *a, struct gw_replica **out, size_t *n,
                      struct berth_err *err);
static int gw_find(struct gateway_service *s, const struct gw_kind *k, const char *ns,
                   const char *id, int64_t deadline, struct backend_container_list *list,
                   struct gw_replica **out, size_t *n, struct arena *a, struct berth_err *err);
static enum gw_status gw_status_of(enum backend_state state);
static char *gw_address(struct arena *a, const struct gw_binding *b,
                        const struct backend_container *c);
static unsigned gw_wanted(const struct gw_replica *r, size_t n);
static ProtobufCMessage *gw_instance(struct arena *a, const struct gw_binding *b,
                                     const ProtobufCMessageDescriptor *d, const char *id,
                                     unsigned index, const struct backend_container *c,
                                     enum gw_status *st, char **addr);
static int gw_compose(struct arena *a, const struct gw_binding *b, const struct gw_replica *r,
                      size_t n, ProtobufCMessage **out, struct berth_err *err);

static uint64_t gw_cache_begin(struct gateway_service *s);
static void gw_cache_end(struct gateway_service *s, uint64_t ticket);
static struct gw_cached *gw_cache_find(struct gateway_service *s, const struct gw_kind *k,
                                       const char *ns, const char *id);
static void gw_cache_bury(struct gateway_service *s, struct gw_cached *e, uint64_t ticket);
static struct gw_cached *gw_cache_add(struct gateway_service *s, const struct gw_kind *k,
                                      const char *ns, const char *id);
static void gw_cache_put(struct gateway_service *s, const struct gw_kind *k, const char *ns,
                         const char *id, const ProtobufCMessage *answer, uint64_t ticket);
static void gw_cache_drop(struct gateway_service *s, const struct gw_kind *k, const char *ns,
                          const char *id, uint64_t ticket);
static void gw_cache_sweep(struct gateway_service *s, const struct gw_kind *k, const char *id,
                           uint64_t ticket);
static int gw_cache_answer(struct gateway_service *s, const struct gw_kind *k, const char *ns,
                           const char *id, struct arena *a, ProtobufCMessage **out);
static int gw_store_list(struct gateway_service *s, const struct gw_binding *b,
                         const struct backend_container_list *list, uint64_t ticket,
                         struct arena *a, size_t *stored, struct berth_err *err);
static int gw_refresh(struct gateway_service *s, const struct gw_binding *b, const char *id,
                      int64_t deadline, struct berth_err *err);
static int gw_sync_kind(struct gateway_service *s, const struct gw_binding *b, uint64_t ticket,
                        int64_t deadline, struct arena *a, size_t *stored, struct berth_err *err);
static int gw_event_is_news(struct gateway_service *s, const struct gw_kind *k,
                            const struct backend_event *ev);
static void gw_rollback(struct gateway_service *s, const struct gw_kind *k, const char *id,
                        char **made, size_t n_made);
static int gw_wake(struct gateway_service *s, const struct backend_container *c, int64_t deadline,
                   struct berth_err *err);
static void gw_created(struct gateway_service *s, const struct gw_binding *b, const char *id,
                       int64_t deadline);
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
    lock_init(&s->cache_lock);
    return s;
}

void gateway_service_free(struct gateway_service *s)
{
    if (s == NULL)
        return;
    lock_destroy(&s->busy_lock);
    pthread_cond_destroy(&s->busy_cond);
    free(s->busy);
    for (size_t i = 0; i < s->n_cache; i++) {
        free(s->cache[i].ns);
        free(s->cache[i].id);
        free(s->cache[i].answer);
    }
    free(s->cache);
    free(s->flying);
    lock_destroy(&s->cache_lock);
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
        {LABEL_WORKSPACE_ID, "BERTH_WORKSPACE_ID", o->workspace_id},
        {LABEL_ENVIRONMENT_SLUG, "BERTH_ENVIRONMENT_SLUG", o->env_slug},
        {LABEL_ENVIRONMENT_ID, "BERTH_ENVIRONMENT_ID", o->env_id},
        {LABEL_BUILD_ID, "BERTH_BUILD_ID", o->build_id},
    };
    const char *replicas = arena_printf(a, "%" PRIu64, o->replicas);
    size_t nl = 0, ne = 0;

    memset(p, 0, sizeof(*p));
    p->obj = *o;
    p->digest = gw_digest(a, o);
    p->env = arena_alloc(a, (GW_MAX_OWN_ENV + o->n_env) * sizeof(*p->env));
    if (p->digest == NULL || p->env == NULL || replicas == NULL)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");

    p->labels[nl++] = (struct backend_label){LABEL_KIND, k->name};
    p->labels[nl++] = (struct backend_label){k->id_label, o->id};
    p->replica_label = nl;
    p->labels[nl++] = (struct backend_label){GW_REPLICA_LABEL, "0"};
    p->labels[nl++] = (struct backend_label){GW_SPEC_LABEL, p->digest};
    /* So a set that a crash left short shows its missing replicas. */
    p->labels[nl++] = (struct backend_label){GW_REPLICAS_LABEL, replicas};
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
    int c = strcmp(x->id, y->id);

    if (c == 0)
        c = strcmp(x->ns, y->ns);
    if (c == 0)
        c = x->index < y->index ? -1 : x->index > y->index;
    return c;
}

/* The replica containers of kind k in list (of namespace ns; NULL: any),
 * sorted by id, namespace and index: *out points into list (arena memory).
 * A labelled container without an id or a readable replica index is logged
 * and skipped. */
static int gw_collect(const struct gw_kind *k, const struct backend_container_list *list,
                      const char *ns, struct arena *a, struct gw_replica **out, size_t *n,
                      struct berth_err *err)
{
    struct gw_replica *r = arena_alloc(a, (list->n + 1) * sizeof(*r));
    size_t m = 0;

    if (r == NULL)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    for (size_t i = 0; i < list->n; i++) {
        const struct backend_container *c = &list->items[i];
        const char *cns = backend_container_label(c, GW_NAMESPACE_LABEL);
        const char *id = backend_container_label(c, k->id_label);

        cns = cns ? cns : "";
        if (ns != NULL && strcmp(cns, ns) != 0)
            continue;
        if (id == NULL || id[0] == '\0' || gw_replica_index(c, &r[m].index) < 0) {
            log_warn("krane.skip",
                     "kind=%s id=%s container_id=%.12s reason=\"no id or replica index\"", k->name,
                     id ? id : "", c->id);
            continue;
        }
        r[m].ns = cns;
        r[m].id = id;
        r[m++].c = c;
    }
    if (m > 1)
        qsort(r, m, sizeof(*r), gw_replica_cmp);
    *out = r;
    *n = m;
    return 0;
}

/* The replica containers of (ns, id), sorted by index: list holds them (the
 * caller releases it), *out points into it (arena memory). Containers of the
 * id in another namespace are not ours to see. */
static int gw_find(struct gateway_service *s, const struct gw_kind *k, const char *ns,
                   const char *id, int64_t deadline, struct backend_container_list *list,
                   struct gw_replica **out, size_t *n, struct arena *a, struct berth_err *err)
{
    const char *filter = arena_printf(a, "%s=%s", k->id_label, id);

    if (filter == NULL)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    if (s->backend->ops->list(s->backend->ctx, filter, deadline, list, err) < 0)
        return -1;
    return gw_collect(k, list, ns, a, out, n, err);
}

static enum gw_status gw_status_of(enum backend_state state)
{
    static const enum gw_status map[BACKEND_STATE_COUNT] = {
        [BACKEND_STATE_UNKNOWN] = GW_STATUS_UNSPECIFIED,
        [BACKEND_STATE_CREATED] = GW_STATUS_PENDING,
        [BACKEND_STATE_RUNNING] = GW_STATUS_RUNNING,
        [BACKEND_STATE_PAUSED] = GW_STATUS_TERMINATING,
        [BACKEND_STATE_RESTARTING] = GW_STATUS_PENDING,
        [BACKEND_STATE_REMOVING] = GW_STATUS_TERMINATING,
        [BACKEND_STATE_EXITED] = GW_STATUS_TERMINATING,
        [BACKEND_STATE_DEAD] = GW_STATUS_TERMINATING,
    };

    return (unsigned)state < BACKEND_STATE_COUNT ? map[state] : GW_STATUS_UNSPECIFIED;
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

/* ---- composing a Get answer --------------------------------------------- */

/* The replica count the set wants: the largest berth.replicas label among
 * its containers, 0 when none has one (made before the label existed). */
static unsigned gw_wanted(const struct gw_replica *r, size_t n)
{
    unsigned wanted = 0;

    for (size_t i = 0; i < n; i++) {
        const char *v = backend_container_label(r[i].c, GW_REPLICAS_LABEL);
        char *end;
        unsigned long w;

        if (v == NULL || v[0] < '0' || v[0] > '9')
            continue;
        w = strtoul(v, &end, 10);
        if (*end == '\0' && w <= GW_MAX_REPLICAS && w > wanted)
            wanted = (unsigned)w;
    }
    return wanted;
}

/* One instance of the answer, in the arena: replica `index` of `id` as c
 * shows it, or PENDING without an address when c is NULL (not made yet).
 * NULL when out of memory. */
static ProtobufCMessage *gw_instance(struct arena *a, const struct gw_binding *b,
                                     const ProtobufCMessageDescriptor *d, const char *id,
                                     unsigned index, const struct backend_container *c,
                                     enum gw_status *st, char **addr)
{
    ProtobufCMessage *inst = arena_message(a, d);
    char *iid = arena_printf(a, "%s-%u", id, index);

    if (inst == NULL || iid == NULL)
        return NULL;
    *addr = c ? gw_address(a, b, c) : NULL;
    *st = c ? gw_status_of(c->state) : GW_STATUS_PENDING;
    gw_set_str(inst, "id", iid);
    gw_set_str(inst, "address", *addr);
    gw_set_enum(inst, "status", *st);
    return inst;
}

/* The Get answer of one object from its n > 0 replicas (sorted by index):
 * one instance per container, plus a PENDING one for every index below the
 * wanted count that has no container, so a short set never looks whole. */
static int gw_compose(struct arena *a, const struct gw_binding *b, const struct gw_replica *r,
                      size_t n, ProtobufCMessage **out, struct berth_err *err)
{
    const struct gw_kind *k = b->kind;
    const ProtobufCFieldDescriptor *fd =
        gw_field(k->get_out, "instances", PROTOBUF_C_TYPE_MESSAGE, 1);
    unsigned wanted = gw_wanted(r, n);
    ProtobufCMessage *resp = arena_message(a, k->get_out);
    ProtobufCMessage **items = arena_alloc(a, (n + wanted) * sizeof(*items));
    char *address = NULL;
    size_t m = 0, j = 0;

    if (fd == NULL)
        return berth_err_set(err, BERTH_INTERNAL, "%s answer has no instances", k->name);
    if (resp == NULL || items == NULL)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    for (unsigned i = 0; j < n || i < wanted; i++) {
        int seen = 0;
        for (; j < n && r[j].index == i; j++, seen = 1) {
            enum gw_status st;
            char *addr;
            items[m] = gw_instance(a, b, fd->descriptor, r[j].id, i, r[j].c, &st, &addr);
            if (items[m++] == NULL)
                return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
            if (address == NULL && st == GW_STATUS_RUNNING)
                address = addr;
        }
        if (!seen && i < wanted) {
            enum gw_status st;
            char *addr;
            items[m] = gw_instance(a, b, fd->descriptor, r[0].id, i, NULL, &st, &addr);
            if (items[m++] == NULL)
                return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        }
    }
    *(size_t *)((char *)resp + fd->quantifier_offset) = m;
    *(ProtobufCMessage ***)((char *)resp + fd->offset) = items;
    gw_set_str(resp, "address", address);
    *out = resp;
    return 0;
}

size_t gateway_service_cached(struct gateway_service *s)
{
    size_t n;

    lock_take(&s->cache_lock);
    n = s->n_cache;
    lock_give(&s->cache_lock);
    return n;
}

/* ---- the cache of last known answers ----------------------------------- */

/* A ticket for a listing about to be made; gw_cache_end(ticket) when it is
 * done. Out of memory to note it, the ticket is 0, older than any entry's:
 * its listing then overwrites nothing. */
static uint64_t gw_cache_begin(struct gateway_service *s)
{
    uint64_t t = 0;

    lock_take(&s->cache_lock);
    if (s->n_flying == s->cap_flying) {
        size_t cap = s->cap_flying ? 2 * s->cap_flying : 16;
        uint64_t *grown = realloc(s->flying, cap * sizeof(*grown));
        if (grown != NULL) {
            s->flying = grown;
            s->cap_flying = cap;
        }
    }
    if (s->n_flying < s->cap_flying) {
        t = ++s->ticket;
        s->flying[s->n_flying++] = t;
    }
    lock_give(&s->cache_lock);
    return t;
}

/* The listing of `ticket` is done. A tombstone no listing older than it is
 * still under way can overwrite has done its job and goes. */
static void gw_cache_end(struct gateway_service *s, uint64_t ticket)
{
    uint64_t oldest = UINT64_MAX;

    lock_take(&s->cache_lock);
    for (size_t i = 0; i < s->n_flying; i++) {
        if (s->flying[i] == ticket) {
            s->flying[i] = s->flying[--s->n_flying];
            break;
        }
    }
    for (size_t i = 0; i < s->n_flying; i++)
        if (s->flying[i] < oldest)
            oldest = s->flying[i];
    /* From the end down, so the entry moved into a freed slot was seen. */
    for (size_t i = s->n_cache; s->n_dead > 0 && i-- > 0;) {
        struct gw_cached *e = &s->cache[i];
        if (e->answer != NULL || e->ticket > oldest)
            continue;
        free(e->ns);
        free(e->id);
        *e = s->cache[--s->n_cache];
        s->n_dead--;
    }
    lock_give(&s->cache_lock);
}

/* The entry of (k, ns, id), tombstones included; NULL when none. Called with
 * cache_lock held. */
static struct gw_cached *gw_cache_find(struct gateway_service *s, const struct gw_kind *k,
                                       const char *ns, const char *id)
{
    for (size_t i = 0; i < s->n_cache; i++) {
        struct gw_cached *e = &s->cache[i];
        if (e->kind == k && strcmp(e->id, id) == 0 && strcmp(e->ns, ns) == 0)
            return e;
    }
    return NULL;
}

/* Make e a tombstone of `ticket`. Called with cache_lock held. */
static void gw_cache_bury(struct gateway_service *s, struct gw_cached *e, uint64_t ticket)
{
    if (e->answer != NULL)
        s->n_dead++;
    free(e->answer);
    e->answer = NULL;
    e->len = 0;
    e->ticket = ticket;
}

/* A new tombstone of (k, ns, id) with ticket 0; NULL when out of memory.
 * Called with cache_lock held. */
static struct gw_cached *gw_cache_add(struct gateway_service *s, const struct gw_kind *k,
                                      const char *ns, const char *id)
{
    struct gw_cached *e;

    if (s->n_cache == s->cap_cache) {
        size_t cap = s->cap_cache ? 2 * s->cap_cache : 16;
        struct gw_cached *grown = realloc(s->cache, cap * sizeof(*grown));
        if (grown == NULL)
            return NULL;
        s->cache = grown;
        s->cap_cache = cap;
    }
    e = &s->cache[s->n_cache];
    memset(e, 0, sizeof(*e));
    e->kind = k;
    e->ns = strdup(ns);
    e->id = strdup(id);
    if (e->ns == NULL || e->id == NULL) {
        free(e->ns);
        free(e->id);
        return NULL;
    }
    s->n_cache++;
    s->n_dead++;
    return e;
}

/* Store answer as what the listing of `ticket` saw of (k, ns, id), unless a
 * newer listing was stored already. Best effort: out of memory, the cache
 * keeps what it had. */
static void gw_cache_put(struct gateway_service *s, const struct gw_kind *k, const char *ns,
                         const char *id, const ProtobufCMessage *answer, uint64_t ticket)
{
    size_t len = protobuf_c_message_get_packed_size(answer);
    uint8_t *bytes = malloc(len ? len : 1);
    struct gw_cached *e;

    if (bytes == NULL)
        return;
    protobuf_c_message_pack(answer, bytes);
    lock_take(&s->cache_lock);
    e = gw_cache_find(s, k, ns, id);
    if (e == NULL)
        e = gw_cache_add(s, k, ns, id);
    if (e != NULL && e->ticket <= ticket) {
        if (e->answer == NULL)
            s->n_dead--;
        free(e->answer);
        e->answer = bytes;
        e->len = len;
        e->ticket = ticket;
        bytes = NULL;
    }
    lock_give(&s->cache_lock);
    free(bytes);
}

/* (k, ns, id) is gone as of `ticket`: its entry becomes a tombstone (one is
 * made when there is none), which gw_cache_end clears. */
static void gw_cache_drop(struct gateway_service *s, const struct gw_kind *k, const char *ns,
                          const char *id, uint64_t ticket)
{
    struct gw_cached *e;

    lock_take(&s->cache_lock);
    e = gw_cache_find(s, k, ns, id);
    if (e == NULL)
        e = gw_cache_add(s, k, ns, id);
    if (e != NULL && e->ticket <= ticket)
        gw_cache_bury(s, e, ticket);
    lock_give(&s->cache_lock);
}

/* Every entry (of kind k and id when not NULL) that the listing of `ticket`
 * did not store is gone: it becomes a tombstone. */
static void gw_cache_sweep(struct gateway_service *s, const struct gw_kind *k, const char *id,
                           uint64_t ticket)
{
    lock_take(&s->cache_lock);
    for (size_t i = 0; i < s->n_cache; i++) {
        struct gw_cached *e = &s->cache[i];
        if ((k == NULL || e->kind == k) && (id == NULL || strcmp(e->id, id) == 0) &&
            e->ticket < ticket)
            gw_cache_bury(s, e, ticket);
    }
    lock_give(&s->cache_lock);
}

/* The cached answer of (k, ns, id), unpacked into the arena: 0, or -1 when
 * there is none (or out of memory). */
static int gw_cache_answer(struct gateway_service *s, const struct gw_kind *k, const char *ns,
                           const char *id, struct arena *a, ProtobufCMessage **out)
{
    struct gw_cached *e;
    uint8_t *bytes = NULL;
    size_t len = 0;

    lock_take(&s->cache_lock);
    e = gw_cache_find(s, k, ns, id);
    if (e != NULL && e->answer != NULL) {
        len = e->len;
        bytes = arena_alloc(a, len ? len : 1);
        if (bytes != NULL)
            memcpy(bytes, e->answer, len);
    }
    lock_give(&s->cache_lock);
    if (bytes == NULL)
        return -1;
    *out = protobuf_c_message_unpack(k->get_out, arena_allocator(a), len, bytes);
    return *out != NULL ? 0 : -1;
}

/* Compose and store every object of b's kind in list with `ticket`; *stored
 * counts them. */
static int gw_store_list(struct gateway_service *s, const struct gw_binding *b,
                         const struct backend_container_list *list, uint64_t ticket,
                         struct arena *a, size_t *stored, struct berth_err *err)
{
    struct gw_replica *r;
    size_t n, next;

    if (gw_collect(b->kind, list, NULL, a, &r, &n, err) < 0)
        return -1;
    for (size_t i = 0; i < n; i = next) {
        ProtobufCMessage *answer;

        next = i + 1;
        while (next < n && strcmp(r[next].id, r[i].id) == 0 && strcmp(r[next].ns, r[i].ns) == 0)
            next++;
        if (gw_compose(a, b, r + i, next - i, &answer, err) < 0)
            return -1;
        gw_cache_put(s, b->kind, r[i].ns, r[i].id, answer, ticket);
        (*stored)++;
    }
    return 0;
}

/* List the object `id` of b's kind again and store what the Engine shows
 * (forgetting it in every namespace where it has no container left). */
static int gw_refresh(struct gateway_service *s, const struct gw_binding *b, const char *id,
                      int64_t deadline, struct berth_err *err)
{
    struct backend_container_list list = {0};
    struct arena *a = arena_new();
    uint64_t ticket = gw_cache_begin(s);
    const char *filter = a ? arena_printf(a, "%s=%s", b->kind->id_label, id) : NULL;
    size_t stored = 0;
    int rc = -1;

    if (filter == NULL) {
        berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    if (s->backend->ops->list(s->backend->ctx, filter, deadline, &list, err) < 0 ||
        gw_store_list(s, b, &list, ticket, a, &stored, err) < 0)
        goto out;
    gw_cache_sweep(s, b->kind, id, ticket);
    rc = 0;
out:
    gw_cache_end(s, ticket);
    backend_container_list_release(&list);
    arena_free(a);
    return rc;
}

/* List every container of b's kind and store each object with `ticket`. */
static int gw_sync_kind(struct gateway_service *s, const struct gw_binding *b, uint64_t ticket,
                        int64_t deadline, struct arena *a, size_t *stored, struct berth_err *err)
{
    struct backend_container_list list = {0};
    const char *filter = arena_printf(a, LABEL_KIND "=%s", b->kind->name);
    int rc = -1;

    if (filter == NULL)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    if (s->backend->ops->list(s->backend->ctx, filter, deadline, &list, err) == 0)
        rc = gw_store_list(s, b, &list, ticket, a, stored, err);
    backend_container_list_release(&list);
    return rc;
}

int gateway_service_sync(struct gateway_service *s, int64_t deadline, struct berth_err *err)
{
    struct arena *a = arena_new();
    uint64_t ticket = gw_cache_begin(s);
    size_t stored = 0;
    int rc = -1;

    if (a == NULL) {
        berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    for (int i = 0; i < GW_KIND_COUNT; i++)
        if (gw_sync_kind(s, &s->bind[i], ticket, deadline, a, &stored, err) < 0)
            goto out;
    /* Only once both kinds were listed: a failed sync forgets nothing. */
    gw_cache_sweep(s, NULL, NULL, ticket);
    log_debug("krane.sync", "objects=%zu", stored);
    rc = 0;
out:
    gw_cache_end(s, ticket);
    arena_free(a);
    return rc;
}

/* Does ev change what Get shows, and is it newer than the last re-list of
 * its object? Notes ev's object as re-listed now when so. */
static int gw_event_is_news(struct gateway_service *s, const struct gw_kind *k,
                            const struct backend_event *ev)
{
    static const char *const actions[] = {"start", "restart", "die", "pause", "unpause", "destroy"};
    size_t len = strlen(ev->object_id);
    int news = 0;

    for (size_t i = 0; i < sizeof(actions) / sizeof(actions[0]) && !news; i++)
        news = strcmp(ev->action, actions[i]) == 0;
    if (!news)
        return 0;
    lock_take(&s->cache_lock);
    /* The listing began after the event happened: it saw it already. */
    if (s->last_kind == k && strcmp(s->last_id, ev->object_id) == 0 && ev->time_unix_ns > 0 &&
        ev->time_unix_ns < s->last_began_ns)
        news = 0;
    if (news) {
        s->last_kind = len <= GW_ID_MAX ? k : NULL;
        memcpy(s->last_id, ev->object_id, len <= GW_ID_MAX ? len + 1 : 1);
        s->last_began_ns = berth_unix_ms() * 1000000;
    }
    lock_give(&s->cache_lock);
    return news;
}

void gateway_service_on_event(struct gateway_service *s, const struct backend_event *ev)
{
    struct berth_err err;

    if (ev->object_id[0] == '\0')
        return;
    for (int i = 0; i < GW_KIND_COUNT; i++) {
        const struct gw_binding *b = &s->bind[i];
        if (strcmp(ev->kind, b->kind->name) != 0 || !gw_event_is_news(s, b->kind, ev))
            continue;
        berth_err_clear(&err);
        if (gw_refresh(s, b, ev->object_id, berth_now_ms() + GW_EVENT_MS, &err) < 0) {
            struct log_quoted lq;
            /* The listing did not see what the events since it began tell:
             * the next event of this object must list again. */
            lock_take(&s->cache_lock);
            s->last_kind = NULL;
            lock_give(&s->cache_lock);
            log_debug("krane.event", "kind=%s id=%s action=%s code=%s error=%s", b->kind->name,
                      ev->object_id, ev->action, berth_code_name(err.code),
                      log_quote(&lq, err.msg));
        }
    }
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
        else if (e.code != BERTH_NOT_FOUND) {
            struct log_quoted lq;
            log_warn("krane.rollback", "kind=%s id=%s container=%.64s code=%s error=%s", k->name,
                     id, made[i], berth_code_name(e.code), log_quote(&lq, e.msg));
        }
    }
    if (removed > 0)
        log_info("krane.rollback", "kind=%s id=%s removed=%zu", k->name, id, removed);
}

/* Bring a replica that exists back to running: start one that was made but
 * never started or that exited, unpause a paused one. 1 when it acted, 0
 * when there was nothing to do, -1 on failure. */
static int gw_wake(struct gateway_service *s, const struct backend_container *c, int64_t deadline,
                   struct berth_err *err)
{
    const struct backend_ops *ops = s->backend->ops;
    int rc;

    if (c->state == BACKEND_STATE_PAUSED)
        rc = ops->unpause(s->backend->ctx, c->id, deadline, err);
    else if (c->state == BACKEND_STATE_CREATED || c->state == BACKEND_STATE_EXITED)
        rc = ops->start(s->backend->ctx, c->id, deadline, err);
    else
        return 0;
    return rc < 0 ? -1 : 1;
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

/* After a Create: one listing of the object, so the cache knows it. Its
 * failure does not fail the Create. */
static void gw_created(struct gateway_service *s, const struct gw_binding *b, const char *id,
                       int64_t deadline)
{
    struct berth_err e;

    berth_err_clear(&e);
    if (gw_refresh(s, b, id, deadline, &e) < 0) {
        struct log_quoted lq;
        log_debug("krane.cache", "kind=%s id=%s code=%s error=%s", b->kind->name, id,
                  berth_code_name(e.code), log_quote(&lq, e.msg));
    }
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
     * short, starts replicas that were made but never started or exited, and
     * unpauses paused ones. */
    for (size_t i = 0; i < list.n; i++) {
        int woke = gw_wake(s, &list.items[i], call->deadline, err);
        if (woke < 0)
            goto out;
        started += (size_t)woke;
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
    gw_created(s, b, o.id, call->deadline);
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

/* Get: live from the Engine, so changes show at once; the answer is
 * cached. While the Engine is unreachable, the last known answer. */
static int h_get(void *ctx, struct rpc_call *call, const ProtobufCMessage *in,
                 ProtobufCMessage **out, struct berth_err *err)
{
    const struct gw_binding *b = ctx;
    const struct gw_kind *k = b->kind;
    struct gateway_service *s = b->s;
    struct backend_container_list list = {0};
    struct gw_replica *r = NULL;
    ProtobufCMessage *resp;
    const char *ns, *id;
    uint64_t ticket;
    size_t n = 0;
    int rc = -1;

    if (gw_read_id(k, in, &ns, &id, err) < 0)
        return -1;
    ticket = gw_cache_begin(s);
    if (gw_find(s, k, ns, id, call->deadline, &list, &r, &n, call->arena, err) < 0) {
        if (err->code == BERTH_UNAVAILABLE &&
            gw_cache_answer(s, k, ns, id, call->arena, out) == 0) {
            struct log_quoted lq;
            log_debug("krane.cached", "kind=%s id=%s reason=%s", k->name, id,
                      log_quote(&lq, err->msg));
            berth_err_clear(err);
            rc = 0;
        }
        goto out;
    }
    if (n == 0) {
        gw_cache_drop(s, k, ns, id, ticket);
        berth_err_set(err, BERTH_NOT_FOUND, "%s '%s' not found", k->name, id);
        goto out;
    }
    if (gw_compose(call->arena, b, r, n, &resp, err) < 0)
        goto out;
    gw_cache_put(s, k, ns, id, resp, ticket);
    *out = resp;
    rc = 0;
out:
    gw_cache_end(s, ticket);
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
    uint64_t ticket;
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
            else {
                struct log_quoted lq;
                log_warn("krane.delete", "kind=%s id=%s container_id=%.12s error=%s", k->name, id,
                         r[i].c->id, log_quote(&lq, e.msg));
            }
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
    ticket = gw_cache_begin(s);
    gw_cache_drop(s, k, ns, id, ticket);
    gw_cache_end(s, ticket);
    log_info("krane.deleted", "kind=%s id=%s removed=%zu", k->name, id, removed);
    rc = 0;
out:
    backend_container_list_release(&list);
    gw_busy_give(s, key);
    return rc;
}
