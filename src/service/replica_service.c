/* GatewayService and DeploymentService (see berth/replica_service.h): a
 * gateway or deployment is one replica set of the backend. One set of
 * handlers serves both services: a per-kind table names what differs, the
 * krane messages are read and written through krane_objects.c. Create,
 * Update and Delete of one object run one after the other; Get only reads.
 * The last known Get answer and summary of every object is cached
 * (replica_cache.c); List reads the cache only. */
#include "berth/replica_service.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/docker/registry_auth.h"
#include "berth/clock.h"
#include "berth/krane_objects.h"
#include "berth/labels.h"
#include "berth/lock.h"
#include "berth/log.h"
#include "berth/replica_cache.h"
#include "berth/service_util.h"

#define RS_MIN_CPU_MILLICORES 10 /* the Engine refuses less than 0.01 CPU */
#define RS_MIN_MEMORY_MIB 6      /* the Engine refuses less than 6 MiB */
#define RS_MAX_MEMORY_MIB ((uint64_t)INT64_MAX / (1024 * 1024))
#define RS_TEXT_MAX 256 /* namespace, workspace, environment and build ids */
#define RS_IMAGE_MAX 1024
#define RS_MAX_ENV 1000
#define RS_MAX_LABELS 4     /* workspace, environment slug and id, build */
#define RS_MAX_OWN_ENV 6    /* the id, namespace and the four above */
#define RS_EVENT_MS 2000    /* an event's re-list gets this long */
#define RS_LIST_DEFAULT 100 /* a List page when the request names no size */
#define RS_LIST_MAX 1000    /* the largest List page */
/* A call waiting for an update of its object gives up this long before its
 * deadline, so its `aborted` reaches the client. */
#define RS_ABORT_MARGIN_MS 250

enum rs_kind_index { RS_KIND_GATEWAY, RS_KIND_DEPLOYMENT, RS_KIND_COUNT };

/* What differs between gateways and deployments. */
struct rs_kind {
    enum object_kind kind;
    const char *id_env; /* "BERTH_GATEWAY_ID" */
};

static const struct rs_kind rs_kinds[RS_KIND_COUNT] = {
    [RS_KIND_GATEWAY] = {OBJECT_GATEWAY, "BERTH_GATEWAY_ID"},
    [RS_KIND_DEPLOYMENT] = {OBJECT_DEPLOYMENT, "BERTH_DEPLOYMENT_ID"},
};

struct replica_service;

/* The handler context: one per kind. Read-only after replica_service_new. */
struct rs_binding {
    struct replica_service *s;
    const struct rs_kind *kind;
    const char *name; /* "gateway": messages and logs */
    int port;         /* container port of this kind's replicas */
};

/* One object a call is changing. */
struct rs_busy {
    const char *key; /* "<kind>/<id>", borrowed from the arena of the call */
    int update;      /* the call is an Update (or a recovery of one) */
};

struct replica_service {
    struct backend *backend; /* borrowed */
    char *advertise_host;    /* owned, read-only */
    struct rs_binding bind[RS_KIND_COUNT];
    struct replica_cache *cache;        /* owned; locks itself */
    _Atomic int64_t max_replicas_total; /* 0: no limit; a reload may change it */
    struct backend_update_opts opts;    /* read-only */
    pthread_mutex_t busy_lock;
    pthread_cond_t busy_cond;
    /* Every Create, Update, Delete and recovery under way, one per object.
     * Guarded by busy_lock, which is never held across backend I/O. */
    struct rs_busy *busy;
    size_t n_busy;   /* guarded by busy_lock */
    size_t cap_busy; /* guarded by busy_lock */
};

/* What a Create asks for, as the backend will be told. Everything lives in
 * the call arena. */
struct rs_plan {
    struct krane_object obj; /* env deduplicated (last wins), sorted by key */
    struct backend_replica_spec spec;
    struct backend_label labels[RS_MAX_LABELS];
    const char *alias; /* the object's id, the replicas' name on its network */
    const char **env;
    struct backend_port port;
};

static int rs_check_backend(struct replica_service *s, struct berth_err *err);
static int rs_check_text(const char *field, const char *value, size_t max, struct berth_err *err);
static int rs_env_cmp(const void *a, const void *b);
static int rs_read_env(struct arena *a, const char *kname, struct krane_object *o,
                       struct berth_err *err);
static int rs_read_object(struct arena *a, const struct rs_binding *b, struct krane_object *o,
                          struct berth_err *err);
static uint64_t rs_hash_field(uint64_t h, const char *name, const char *sub, const char *value);
static const char *rs_digest(struct arena *a, const struct krane_object *o);
static int rs_plan_build(struct arena *a, const struct rs_binding *b, const struct krane_object *o,
                         struct rs_plan *p, struct berth_err *err);
static int rs_busy_take(struct replica_service *s, const char *key, int update, int64_t deadline,
                        struct berth_err *err);
static int rs_busy_try(struct replica_service *s, const char *key);
static void rs_busy_give(struct replica_service *s, const char *key);
static enum krane_status rs_status_of(const struct backend_replica *r);
static char *rs_address(struct arena *a, const struct rs_binding *b,
                        const struct backend_replica *r);
static int rs_compose(struct arena *a, const struct rs_binding *b,
                      const struct backend_replica_set *set, ProtobufCMessage **out,
                      struct berth_err *err);
static int rs_store(struct replica_service *s, const struct rs_binding *b,
                    const struct backend_replica_set *set, uint64_t ticket, struct arena *a,
                    struct berth_err *err);
/* A set a listing showed unsettled, to recover once it is done. */
struct rs_pending {
    struct rs_pending *next;
    const struct rs_binding *b;
    const char *ns, *id; /* in the listing's arena */
};

static int rs_store_list(struct replica_service *s, const struct rs_binding *b, const char *id,
                         uint64_t ticket, int64_t deadline, struct arena *a, size_t *stored,
                         struct rs_pending **pending, struct berth_err *err);
static int rs_refresh(struct replica_service *s, const struct rs_binding *b, const char *id,
                      int64_t deadline, struct berth_err *err);
static int rs_cached_answer(struct replica_service *s, const struct rs_binding *b, const char *ns,
                            const char *id, struct arena *a, ProtobufCMessage **out);
static int rs_event_is_news(const struct backend_event *ev);
static void rs_created(struct replica_service *s, const struct rs_binding *b, const char *id,
                       int64_t deadline);
static int rs_read_ref(const struct rs_binding *b, const ProtobufCMessage *in, const char **ns,
                       const char **id, struct berth_err *err);
static int rs_summarise(struct arena *a, const struct backend_replica_set *set,
                        struct krane_summary *out);
static void rs_recover(struct replica_service *s, const struct rs_pending *p, int64_t deadline);
static int rs_sync(struct replica_service *s, int64_t deadline, int recover, struct berth_err *err);

static int h_create(void *ctx, struct rpc_call *call, const ProtobufCMessage *in,
                    ProtobufCMessage **out, struct berth_err *err);
static int h_get(void *ctx, struct rpc_call *call, const ProtobufCMessage *in,
                 ProtobufCMessage **out, struct berth_err *err);
static int h_delete(void *ctx, struct rpc_call *call, const ProtobufCMessage *in,
                    ProtobufCMessage **out, struct berth_err *err);
static int h_list(void *ctx, struct rpc_call *call, const ProtobufCMessage *in,
                  ProtobufCMessage **out, struct berth_err *err);
static int h_update(void *ctx, struct rpc_call *call, const ProtobufCMessage *in,
                    ProtobufCMessage **out, struct berth_err *err);

static const struct {
    const char *path;
    enum rs_kind_index kind;
    rpc_handler_fn fn;
} rs_routes[] = {
    {"/krane.v1.GatewayService/CreateGateway", RS_KIND_GATEWAY, h_create},
    {"/krane.v1.GatewayService/GetGateway", RS_KIND_GATEWAY, h_get},
    {"/krane.v1.GatewayService/DeleteGateway", RS_KIND_GATEWAY, h_delete},
    {"/krane.v1.GatewayService/ListGateways", RS_KIND_GATEWAY, h_list},
    {"/krane.v1.GatewayService/UpdateGateway", RS_KIND_GATEWAY, h_update},
    {"/krane.v1.DeploymentService/CreateDeployment", RS_KIND_DEPLOYMENT, h_create},
    {"/krane.v1.DeploymentService/GetDeployment", RS_KIND_DEPLOYMENT, h_get},
    {"/krane.v1.DeploymentService/DeleteDeployment", RS_KIND_DEPLOYMENT, h_delete},
    {"/krane.v1.DeploymentService/ListDeployments", RS_KIND_DEPLOYMENT, h_list},
    {"/krane.v1.DeploymentService/UpdateDeployment", RS_KIND_DEPLOYMENT, h_update},
};

/* ---- life of the service --------------------------------------------- */

struct replica_service *replica_service_new(const struct replica_service_config *cfg,
                                            struct backend *backend)
{
    struct replica_service *s = calloc(1, sizeof(*s));
    const char *host = cfg->advertise_host;

    if (s == NULL)
        return NULL;
    if (host == NULL || host[0] == '\0')
        host = cfg->publish_address ? cfg->publish_address : "";
    s->advertise_host = strdup(host);
    s->cache = replica_cache_new();
    if (s->advertise_host == NULL || s->cache == NULL) {
        replica_cache_free(s->cache);
        free(s->advertise_host);
        free(s);
        return NULL;
    }
    s->backend = backend;
    atomic_init(&s->max_replicas_total, cfg->max_replicas_total);
    s->opts.parallelism = cfg->update_parallelism > 0 ? cfg->update_parallelism : 1;
    s->opts.ready_timeout_ms = cfg->update_ready_timeout_ms;
    s->opts.min_ready_ms = cfg->update_min_ready_ms;
    s->opts.drain_ms = cfg->update_drain_ms;
    for (int i = 0; i < RS_KIND_COUNT; i++) {
        s->bind[i].s = s;
        s->bind[i].kind = &rs_kinds[i];
        s->bind[i].name = object_kind_info(rs_kinds[i].kind)->name;
    }
    s->bind[RS_KIND_GATEWAY].port = cfg->gateway_port;
    s->bind[RS_KIND_DEPLOYMENT].port = cfg->deployment_port;
    lock_init(&s->busy_lock);
    pthread_cond_init(&s->busy_cond, NULL);
    return s;
}

void replica_service_set_limit(struct replica_service *s, int64_t max_replicas_total)
{
    atomic_store(&s->max_replicas_total, max_replicas_total);
}

void replica_service_free(struct replica_service *s)
{
    if (s == NULL)
        return;
    lock_destroy(&s->busy_lock);
    pthread_cond_destroy(&s->busy_cond);
    free(s->busy);
    replica_cache_free(s->cache);
    free(s->advertise_host);
    free(s);
}

int replica_service_register(struct replica_service *s, struct router *r)
{
    for (size_t i = 0; i < sizeof(rs_routes) / sizeof(rs_routes[0]); i++)
        if (router_set_handler(r, rs_routes[i].path, rs_routes[i].fn, &s->bind[rs_routes[i].kind]) <
            0)
            return -1;
    return 0;
}

size_t replica_service_cached(struct replica_service *s)
{
    return replica_cache_count(s->cache);
}

struct replica_cache *replica_service_cache(struct replica_service *s)
{
    return s->cache;
}

/* A backend without replica sets cannot serve these services. */
static int rs_check_backend(struct replica_service *s, struct berth_err *err)
{
    const struct backend_ops *ops = s->backend->ops;

    if (ops->replica_apply == NULL || ops->replica_get == NULL || ops->replica_list == NULL ||
        ops->replica_delete == NULL)
        return berth_err_set(err, BERTH_UNIMPLEMENTED, "the '%s' backend has no replica sets",
                             ops->name);
    return 0;
}

/* ---- request -> plan -------------------------------------------------- */

/* Free-form ids of other systems become labels and environment: bounded,
 * printable. */
static int rs_check_text(const char *field, const char *value, size_t max, struct berth_err *err)
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

static int rs_env_cmp(const void *a, const void *b)
{
    const struct krane_env *x = a, *y = b;

    return strcmp(x->key, y->key);
}

/* The request's env, checked, with the last of duplicate keys kept (map
 * semantics) and sorted by key, so the spec digest does not depend on the
 * order a client sent it in. */
static int rs_read_env(struct arena *a, const char *kname, struct krane_object *o,
                       struct berth_err *err)
{
    struct krane_env *env;
    size_t n = 0;

    if (o->n_env > RS_MAX_ENV)
        return berth_err_set(err, BERTH_INVALID_ARGUMENT, "field '%s.env' has more than %d entries",
                             kname, RS_MAX_ENV);
    env = arena_alloc(a, (o->n_env + 1) * sizeof(*env));
    if (env == NULL)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    for (size_t i = o->n_env; i-- > 0;) {
        const struct krane_env *e = &o->env[i];
        int seen = 0;
        char quoted[80];

        berth_err_quote(quoted, sizeof(quoted), e->key, 64);
        if (e->key[0] == '\0' || strchr(e->key, '=') != NULL)
            return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                                 "field '%s.env[\"%s\"]': a name must be non-empty and hold no "
                                 "'='",
                                 kname, quoted);
        if (strncmp(e->key, "BERTH_", 6) == 0)
            return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                                 "field '%s.env[\"%s\"]': names starting with BERTH_ are set by "
                                 "berthd",
                                 kname, quoted);
        for (size_t j = 0; j < n && !seen; j++)
            seen = strcmp(env[j].key, e->key) == 0;
        if (!seen)
            env[n++] = *e;
    }
    if (n > 1)
        qsort(env, n, sizeof(*env), rs_env_cmp);
    o->env = env;
    o->n_env = n;
    return 0;
}

/* Validate the object of a Create request. */
static int rs_read_object(struct arena *a, const struct rs_binding *b, struct krane_object *o,
                          struct berth_err *err)
{
    const char *kname = b->name;
    char field[64];
    const struct {
        const char *json;
        const char *value;
    } texts[] = {
        {"namespace", o->ns},
        {"workspaceId", o->workspace_id},
        {"environmentSlug", o->env_slug},
        {"environmentId", o->env_id},
        {"buildId", o->build_id},
    };

    snprintf(field, sizeof(field), "%s.%s", kname, krane_id_json(b->kind->kind));
    if (service_check_id(field, o->id, err) < 0)
        return -1;
    /* Never dropped silently: a client that sends secrets must learn that
     * its containers would run without them. */
    if (o->secrets_len > 0)
        return berth_err_set(err, BERTH_UNIMPLEMENTED,
                             "field '%s.encryptedSecretsBlob': berthd cannot decrypt encrypted "
                             "secrets; send the request without them",
                             kname);
    if (o->image[0] == '\0')
        return berth_err_set(err, BERTH_INVALID_ARGUMENT, "field '%s.image' is required", kname);
    snprintf(field, sizeof(field), "%s.image", kname);
    if (rs_check_text(field, o->image, RS_IMAGE_MAX, err) < 0)
        return -1;
    {
        struct image_ref ref;

        if (image_ref_parse(o->image, field, &ref, err) < 0)
            return -1;
    }
    if (o->replicas < 1 || o->replicas > BACKEND_MAX_REPLICAS)
        return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                             "field '%s.replicas': %" PRIu64 " is not from 1 to %d", kname,
                             o->replicas, BACKEND_MAX_REPLICAS);
    if (o->cpu_millicores > 0 && o->cpu_millicores < RS_MIN_CPU_MILLICORES)
        return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                             "field '%s.cpuMillicores': %" PRIu64
                             " is below the minimum of %d (0 means no limit)",
                             kname, o->cpu_millicores, RS_MIN_CPU_MILLICORES);
    if (o->memory_mib > 0 && o->memory_mib < RS_MIN_MEMORY_MIB)
        return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                             "field '%s.memorySizeMib': %" PRIu64
                             " is below the minimum of %d (0 means no limit)",
                             kname, o->memory_mib, RS_MIN_MEMORY_MIB);
    if (o->memory_mib > RS_MAX_MEMORY_MIB)
        return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                             "field '%s.memorySizeMib': %" PRIu64 " is too large", kname,
                             o->memory_mib);
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        snprintf(field, sizeof(field), "%s.%s", kname, texts[i].json);
        if (rs_check_text(field, texts[i].value, RS_TEXT_MAX, err) < 0)
            return -1;
    }
    return rs_read_env(a, kname, o, err);
}

/* Feed one field into an FNV-1a (64 bits) hash as name=length:value\n, so
 * no two different field lists hash the same text. */
static uint64_t rs_hash_field(uint64_t h, const char *name, const char *sub, const char *value)
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

/* The spec digest: every field that shapes one replica, in a fixed order,
 * env sorted; the replica count is not one (the backend compares it on its
 * own), so an Update can tell scaling from a new template. It tells a retry
 * of the same Create from a different one; it is no protection against a
 * client that crafts collisions between its own requests. */
static const char *rs_digest(struct arena *a, const struct krane_object *o)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    char cpu[24], mem[24];

    snprintf(cpu, sizeof(cpu), "%" PRIu64, o->cpu_millicores);
    snprintf(mem, sizeof(mem), "%" PRIu64, o->memory_mib);
    h = rs_hash_field(h, "namespace", "", o->ns);
    h = rs_hash_field(h, "image", "", o->image);
    h = rs_hash_field(h, "cpu_millicores", "", cpu);
    h = rs_hash_field(h, "memory_size_mib", "", mem);
    h = rs_hash_field(h, "workspace_id", "", o->workspace_id);
    h = rs_hash_field(h, "environment_slug", "", o->env_slug);
    h = rs_hash_field(h, "environment_id", "", o->env_id);
    h = rs_hash_field(h, "build_id", "", o->build_id);
    for (size_t i = 0; i < o->n_env; i++)
        h = rs_hash_field(h, "env.", o->env[i].key, o->env[i].value);
    return arena_printf(a, "fnv1a64:%016" PRIx64, h);
}

/* The replica spec of a validated object: labels, env, port, limits. */
static int rs_plan_build(struct arena *a, const struct rs_binding *b, const struct krane_object *o,
                         struct rs_plan *p, struct berth_err *err)
{
    const struct {
        const char *label, *env, *value;
    } extra[] = {
        {NULL, "BERTH_NAMESPACE", o->ns},
        {LABEL_WORKSPACE_ID, "BERTH_WORKSPACE_ID", o->workspace_id},
        {LABEL_ENVIRONMENT_SLUG, "BERTH_ENVIRONMENT_SLUG", o->env_slug},
        {LABEL_ENVIRONMENT_ID, "BERTH_ENVIRONMENT_ID", o->env_id},
        {LABEL_BUILD_ID, "BERTH_BUILD_ID", o->build_id},
    };
    struct backend_spec *t = &p->spec.tmpl;
    size_t nl = 0, ne = 0;

    memset(p, 0, sizeof(*p));
    p->obj = *o;
    p->spec.kind = b->kind->kind;
    p->spec.ns = o->ns;
    p->spec.id = o->id;
    p->spec.replicas = (unsigned)o->replicas;
    p->spec.digest = rs_digest(a, o);
    p->spec.instance_env = "BERTH_INSTANCE_ID";
    /* A namespace's gateways and deployments share a network, where each
     * replica answers to its object's id. */
    t->network = service_network_name(a, "berth-ns-", o->ns, "berth-ns-default");
    p->alias = o->id;
    t->aliases = &p->alias;
    t->n_aliases = 1;
    if (t->network == NULL)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    p->env = arena_alloc(a, (RS_MAX_OWN_ENV + o->n_env) * sizeof(*p->env));
    if (p->spec.digest == NULL || p->env == NULL)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");

    p->env[ne++] = arena_printf(a, "%s=%s", b->kind->id_env, o->id);
    for (size_t i = 0; i < sizeof(extra) / sizeof(extra[0]); i++) {
        if (extra[i].value[0] == '\0')
            continue;
        /* The namespace label is the backend's: it is part of the set. */
        if (extra[i].label != NULL)
            p->labels[nl++] = (struct backend_label){extra[i].label, extra[i].value};
        p->env[ne++] = arena_printf(a, "%s=%s", extra[i].env, extra[i].value);
    }
    for (size_t i = 0; i < o->n_env; i++)
        p->env[ne++] = arena_printf(a, "%s=%s", o->env[i].key, o->env[i].value);
    for (size_t i = 0; i < ne; i++)
        if (p->env[i] == NULL)
            return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");

    p->port.container_port = b->port;
    p->port.host_port = 0; /* the Engine picks a free one */
    memcpy(p->port.protocol, "tcp", 4);
    t->image = o->image;
    {
        /* As Kubernetes does: a tag "latest" or none is pulled again on
         * every create, any other only when missing. An image only this
         * host has (its registry does not know it or cannot be reached)
         * is still used. */
        struct image_ref ref;

        if (image_ref_parse(o->image, "image", &ref, err) < 0)
            return -1;
        t->pull_policy = image_ref_is_latest(&ref) ? BACKEND_PULL_REFRESH : BACKEND_PULL_IF_MISSING;
    }
    t->env = p->env;
    t->n_env = ne;
    t->ports = &p->port;
    t->n_ports = 1;
    t->labels = p->labels;
    t->n_labels = nl;
    t->nano_cpus = (int64_t)o->cpu_millicores * 1000000;
    t->memory_bytes = (int64_t)o->memory_mib * 1024 * 1024;
    t->restart_policy = "unless-stopped";
    return 0;
}

/* ---- one Create, Update or Delete per object at a time ----------------- */

/* The entry of key, or NULL. Called with busy_lock held. */
static const struct rs_busy *rs_busy_find(const struct replica_service *s, const char *key)
{
    for (size_t i = 0; i < s->n_busy; i++)
        if (strcmp(s->busy[i].key, key) == 0)
            return &s->busy[i];
    return NULL;
}

/* Add key. Called with busy_lock held. */
static int rs_busy_add(struct replica_service *s, const char *key, int update,
                       struct berth_err *err)
{
    if (s->n_busy == s->cap_busy) {
        size_t cap = s->cap_busy ? 2 * s->cap_busy : 8;
        struct rs_busy *grown = realloc(s->busy, cap * sizeof(*grown));
        if (grown == NULL)
            return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        s->busy = grown;
        s->cap_busy = cap;
    }
    s->busy[s->n_busy++] = (struct rs_busy){key, update};
    return 0;
}

/* Mark key busy, waiting while another call holds it: behind an update
 * until shortly before the deadline, then `aborted` (an update may take
 * minutes, and the caller should learn why it was not served); behind a
 * Create or Delete until the deadline. key is borrowed until rs_busy_give
 * (it lives in the caller's arena). */
static int rs_busy_take(struct replica_service *s, const char *key, int update, int64_t deadline,
                        struct berth_err *err)
{
    const struct rs_busy *holder;
    int rc = -1;

    lock_take(&s->busy_lock);
    while ((holder = rs_busy_find(s, key)) != NULL) {
        if (holder->update) {
            int64_t until =
                deadline == BERTH_NO_DEADLINE ? deadline : deadline - RS_ABORT_MARGIN_MS;
            if (lock_wait_until(&s->busy_cond, &s->busy_lock, until) < 0) {
                berth_err_set(err, BERTH_ABORTED,
                              "'%s': an update of it is under way; try again once it is done", key);
                goto out;
            }
        } else if (lock_wait_until(&s->busy_cond, &s->busy_lock, deadline) < 0) {
            berth_err_set(err, BERTH_DEADLINE_EXCEEDED,
                          "'%s': another create, update or delete of it is still under way", key);
            goto out;
        }
    }
    rc = rs_busy_add(s, key, update, err);
out:
    lock_give(&s->busy_lock);
    return rc;
}

/* Mark key busy (as an update) unless a call holds it: 0, or -1 at once. */
static int rs_busy_try(struct replica_service *s, const char *key)
{
    struct berth_err err;
    int rc = -1;

    berth_err_clear(&err);
    lock_take(&s->busy_lock);
    if (rs_busy_find(s, key) == NULL)
        rc = rs_busy_add(s, key, 1, &err);
    lock_give(&s->busy_lock);
    return rc;
}

static void rs_busy_give(struct replica_service *s, const char *key)
{
    lock_take(&s->busy_lock);
    for (size_t i = 0; i < s->n_busy; i++)
        if (s->busy[i].key == key) {
            s->busy[i] = s->busy[--s->n_busy];
            break;
        }
    pthread_cond_broadcast(&s->busy_cond);
    lock_give(&s->busy_lock);
}

/* ---- composing a Get answer --------------------------------------------- */

/* An instance's status: its container's state, where a running one with
 * a health check is RUNNING only once and while the check passes (PENDING
 * while it starts and again while it fails). */
static enum krane_status rs_status_of(const struct backend_replica *r)
{
    static const enum krane_status map[BACKEND_STATE_COUNT] = {
        [BACKEND_STATE_UNKNOWN] = KRANE_STATUS_UNSPECIFIED,
        [BACKEND_STATE_CREATED] = KRANE_STATUS_PENDING,
        [BACKEND_STATE_RUNNING] = KRANE_STATUS_RUNNING,
        [BACKEND_STATE_PAUSED] = KRANE_STATUS_TERMINATING,
        [BACKEND_STATE_RESTARTING] = KRANE_STATUS_PENDING,
        [BACKEND_STATE_REMOVING] = KRANE_STATUS_TERMINATING,
        [BACKEND_STATE_EXITED] = KRANE_STATUS_TERMINATING,
        [BACKEND_STATE_DEAD] = KRANE_STATUS_TERMINATING,
    };

    enum krane_status st =
        (unsigned)r->state < BACKEND_STATE_COUNT ? map[r->state] : KRANE_STATUS_UNSPECIFIED;

    if (st == KRANE_STATUS_RUNNING &&
        (r->health == BACKEND_HEALTH_STARTING || r->health == BACKEND_HEALTH_UNHEALTHY))
        return KRANE_STATUS_PENDING;
    return st;
}

/* "<host>:<published host port>" of the kind's container port, or NULL when
 * the port is not published (yet). The host is the replica's, or the
 * advertised one when it runs here. IPv6 hosts get brackets. */
static char *rs_address(struct arena *a, const struct rs_binding *b,
                        const struct backend_replica *r)
{
    const char *host = r->host[0] != '\0' ? r->host : b->s->advertise_host;
    int v6 = strchr(host, ':') != NULL && host[0] != '[';

    for (size_t i = 0; i < r->n_ports; i++) {
        const struct backend_port *p = &r->ports[i];
        if (p->container_port == b->port && p->host_port > 0 && strcmp(p->protocol, "tcp") == 0)
            return arena_printf(a, v6 ? "[%s]:%d" : "%s:%d", host, p->host_port);
    }
    return NULL;
}

/* The Get answer of one set with n > 0 instances (sorted by index): one
 * instance per replica, plus a PENDING one for every index below the
 * wanted count that has none, so a short set never looks whole. The top
 * address is that of the lowest-index replica that is RUNNING (and so
 * healthy, where it has a check). */
static int rs_compose(struct arena *a, const struct rs_binding *b,
                      const struct backend_replica_set *set, ProtobufCMessage **out,
                      struct berth_err *err)
{
    struct krane_instance *inst = arena_alloc(a, (set->n + set->wanted + 1) * sizeof(*inst));
    const char *address = NULL;
    ProtobufCMessage *resp;
    size_t m = 0, j = 0;

    if (inst == NULL)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    for (unsigned i = 0; j < set->n || i < set->wanted; i++) {
        int seen = 0;
        for (; j < set->n && set->items[j].index == i; j++, seen = 1) {
            struct krane_instance *k = &inst[m++];
            k->id = arena_printf(a, "%s-%u", set->id, i);
            k->address = rs_address(a, b, &set->items[j]);
            k->status = rs_status_of(&set->items[j]);
            if (k->id == NULL)
                return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
            if (address == NULL && k->status == KRANE_STATUS_RUNNING)
                address = k->address;
        }
        if (!seen && i < set->wanted) {
            struct krane_instance *k = &inst[m++];
            k->id = arena_printf(a, "%s-%u", set->id, i);
            k->address = NULL;
            k->status = KRANE_STATUS_PENDING;
            if (k->id == NULL)
                return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        }
    }
    resp = krane_get_response(b->kind->kind, a, inst, m, address);
    if (resp == NULL)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    *out = resp;
    return 0;
}

/* ---- the cache of last known answers ----------------------------------- */

/* Compose the answer of set and store it with `ticket`. */
static int rs_store(struct replica_service *s, const struct rs_binding *b,
                    const struct backend_replica_set *set, uint64_t ticket, struct arena *a,
                    struct berth_err *err)
{
    ProtobufCMessage *answer;
    struct krane_summary ks;
    struct replica_cache_summary sum;
    uint8_t *bytes;
    size_t len;

    if (rs_compose(a, b, set, &answer, err) < 0)
        return -1;
    if (rs_summarise(a, set, &ks) < 0)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    sum = (struct replica_cache_summary){ks.image, ks.replicas, ks.running, (int)ks.status};
    len = protobuf_c_message_get_packed_size(answer);
    bytes = arena_alloc(a, len ? len : 1);
    if (bytes == NULL)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    protobuf_c_message_pack(answer, bytes);
    replica_cache_put(s->cache, b->kind->kind, set->ns, set->id, bytes, len, &sum, ticket);
    return 0;
}

/* List the sets of b's kind (of id when not NULL) and store each with
 * `ticket`; *stored counts them. The unsettled ones are put on *pending
 * (in a) when pending is not NULL. */
static int rs_store_list(struct replica_service *s, const struct rs_binding *b, const char *id,
                         uint64_t ticket, int64_t deadline, struct arena *a, size_t *stored,
                         struct rs_pending **pending, struct berth_err *err)
{
    struct backend_replica_set_list list = {0};
    int rc = -1;

    if (s->backend->ops->replica_list(s->backend->ctx, b->kind->kind, id, deadline, &list, err) < 0)
        goto out;
    for (size_t i = 0; i < list.n; i++) {
        const struct backend_replica_set *set = &list.items[i];

        if (rs_store(s, b, set, ticket, a, err) < 0)
            goto out;
        (*stored)++;
        if (pending != NULL && set->unsettled) {
            struct rs_pending *p = arena_alloc(a, sizeof(*p));
            if (p == NULL || (p->ns = arena_strdup(a, set->ns)) == NULL ||
                (p->id = arena_strdup(a, set->id)) == NULL) {
                berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
                goto out;
            }
            p->b = b;
            p->next = *pending;
            *pending = p;
        }
    }
    rc = 0;
out:
    backend_replica_set_list_release(&list);
    return rc;
}

/* List the object `id` of b's kind again and store what the backend shows
 * (forgetting it in every namespace where it has no replica left). */
static int rs_refresh(struct replica_service *s, const struct rs_binding *b, const char *id,
                      int64_t deadline, struct berth_err *err)
{
    struct arena *a = arena_new();
    uint64_t ticket = replica_cache_begin(s->cache);
    size_t stored = 0;
    int rc = -1;

    if (a == NULL) {
        berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    if (rs_check_backend(s, err) < 0 ||
        rs_store_list(s, b, id, ticket, deadline, a, &stored, NULL, err) < 0)
        goto out;
    replica_cache_sweep(s->cache, 0, b->kind->kind, id, ticket);
    rc = 0;
out:
    replica_cache_end(s->cache, ticket);
    arena_free(a);
    return rc;
}

int replica_service_sync(struct replica_service *s, int64_t deadline, struct berth_err *err)
{
    return rs_sync(s, deadline, 1, err);
}

/* replica_service_sync; recover 0: no recovery (List, which must change
 * nothing, fills the cache so before the first sync). */
static int rs_sync(struct replica_service *s, int64_t deadline, int recover, struct berth_err *err)
{
    struct arena *a = arena_new();
    uint64_t ticket = replica_cache_begin(s->cache);
    struct rs_pending *pending = NULL;
    size_t stored = 0;
    int rc = -1;

    if (a == NULL) {
        berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    if (rs_check_backend(s, err) < 0)
        goto out;
    for (int i = 0; i < RS_KIND_COUNT; i++)
        if (rs_store_list(s, &s->bind[i], NULL, ticket, deadline, a, &stored, &pending, err) < 0)
            goto out;
    /* Only once both kinds were listed: a failed sync forgets nothing. */
    replica_cache_sweep(s->cache, 1, OBJECT_GATEWAY, NULL, ticket);
    replica_cache_set_complete(s->cache);
    log_debug("krane.sync", "objects=%zu", stored);
    rc = 0;
out:
    replica_cache_end(s->cache, ticket);
    if (rc == 0 && recover)
        rs_recover(s, pending, deadline);
    arena_free(a);
    return rc;
}

/* The cached answer of (b's kind, ns, id), unpacked into the arena: 0, or
 * -1 when there is none. */
static int rs_cached_answer(struct replica_service *s, const struct rs_binding *b, const char *ns,
                            const char *id, struct arena *a, ProtobufCMessage **out)
{
    uint8_t *bytes;
    size_t len;

    if (replica_cache_get(s->cache, b->kind->kind, ns, id, a, &bytes, &len) < 0)
        return -1;
    *out = protobuf_c_message_unpack(krane_get_descriptor(b->kind->kind), arena_allocator(a), len,
                                     bytes);
    return *out != NULL ? 0 : -1;
}

/* Does ev change what Get shows? A health check's new verdict
 * ("health_status: unhealthy") does. */
static int rs_event_is_news(const struct backend_event *ev)
{
    static const char *const actions[] = {"start", "restart", "die", "pause", "unpause", "destroy"};

    for (size_t i = 0; i < sizeof(actions) / sizeof(actions[0]); i++)
        if (strcmp(ev->action, actions[i]) == 0)
            return 1;
    return strncmp(ev->action, "health_status:", 14) == 0;
}

void replica_service_on_event(struct replica_service *s, const struct backend_event *ev)
{
    struct berth_err err;

    if (ev->object_id[0] == '\0' || !rs_event_is_news(ev))
        return;
    for (int i = 0; i < RS_KIND_COUNT; i++) {
        const struct rs_binding *b = &s->bind[i];
        if (strcmp(ev->kind, b->name) != 0 ||
            !replica_cache_is_news(s->cache, b->kind->kind, ev->object_id, ev->time_unix_ns))
            continue;
        berth_err_clear(&err);
        if (rs_refresh(s, b, ev->object_id, berth_now_ms() + RS_EVENT_MS, &err) < 0) {
            struct log_quoted lq;
            /* The listing did not see what the events since it began tell:
             * the next event of this object must list again. */
            replica_cache_news_lost(s->cache);
            log_debug("krane.event", "kind=%s id=%s action=%s code=%s error=%s", b->name,
                      ev->object_id, ev->action, berth_code_name(err.code),
                      log_quote(&lq, err.msg));
        }
    }
}

/* ---- Create ------------------------------------------------------------ */

/* After a Create: one listing of the object, so the cache knows it. Its
 * failure does not fail the Create. */
static void rs_created(struct replica_service *s, const struct rs_binding *b, const char *id,
                       int64_t deadline)
{
    struct berth_err e;

    berth_err_clear(&e);
    if (rs_refresh(s, b, id, deadline, &e) < 0) {
        struct log_quoted lq;
        log_debug("krane.cache", "kind=%s id=%s code=%s error=%s", b->name, id,
                  berth_code_name(e.code), log_quote(&lq, e.msg));
    }
}

/* --max-replicas-total: the replicas of every other gateway and deployment
 * (as the backend lists them) plus this Create's must stay within it. A
 * retried Create of the same object does not count itself twice. */
static int rs_check_total(struct replica_service *s, const struct rs_binding *b,
                          const struct krane_object *o, int64_t deadline, struct berth_err *err)
{
    uint64_t total = o->replicas;
    int64_t max_total = atomic_load(&s->max_replicas_total);

    if (max_total <= 0)
        return 0;
    for (int k = 0; k < OBJECT_KIND_COUNT; k++) {
        struct backend_replica_set_list l = {NULL, 0};

        if (k == OBJECT_VM)
            continue;
        if (s->backend->ops->replica_list(s->backend->ctx, (enum object_kind)k, NULL, deadline, &l,
                                          err) < 0)
            return -1;
        for (size_t i = 0; i < l.n; i++) {
            const struct backend_replica_set *set = &l.items[i];

            if ((enum object_kind)k == b->kind->kind && strcmp(set->id, o->id) == 0)
                continue;
            total += set->n > set->wanted ? set->n : set->wanted;
        }
        backend_replica_set_list_release(&l);
    }
    if (total > (uint64_t)max_total)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED,
                             "field '%s.replicas': %" PRIu64 " more would make %" PRIu64
                             " replicas, over --max-replicas-total %" PRId64,
                             b->name, o->replicas, total, max_total);
    return 0;
}

/* Create: validate, take the id, apply the replica set. All-or-nothing for
 * what this call makes (the backend rolls back). */
static int h_create(void *ctx, struct rpc_call *call, const ProtobufCMessage *in,
                    ProtobufCMessage **out, struct berth_err *err)
{
    const struct rs_binding *b = ctx;
    struct replica_service *s = b->s;
    struct backend_apply_result res = {0};
    struct krane_object o;
    struct rs_plan plan;
    ProtobufCMessage *resp;
    const char *key;
    int got, rc = -1;

    got = krane_create_object(b->kind->kind, in, call->arena, &o);
    if (got < 0)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    if (got > 0)
        return berth_err_set(err, BERTH_INVALID_ARGUMENT, "field '%s' is required", b->name);
    if (rs_read_object(call->arena, b, &o, err) < 0 ||
        rs_plan_build(call->arena, b, &o, &plan, err) < 0 || rs_check_backend(s, err) < 0)
        return -1;
    key = arena_printf(call->arena, "%s/%s", b->name, o.id);
    if (key == NULL)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    if (rs_busy_take(s, key, 0, call->deadline, err) < 0)
        return -1;
    if (rs_check_total(s, b, &o, call->deadline, err) < 0)
        goto out;

    if (s->backend->ops->replica_apply(s->backend->ctx, &plan.spec, call->deadline, &res, err) <
        0) {
        log_info("krane.create_failed", "kind=%s id=%s code=%s", b->name, o.id,
                 berth_code_name(err->code));
        goto out;
    }
    resp = krane_create_response(b->kind->kind, call->arena, KRANE_STATUS_PENDING);
    if (resp == NULL) {
        berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    *out = resp;
    rs_created(s, b, o.id, call->deadline);
    if (res.existing == 0)
        log_info("krane.created", "kind=%s id=%s replicas=%" PRIu64 " image=%s", b->name, o.id,
                 o.replicas, o.image);
    else
        log_info("krane.create_retry", "kind=%s id=%s existing=%zu added=%zu started=%zu", b->name,
                 o.id, res.existing, res.added, res.woken);
    rc = 0;
out:
    rs_busy_give(s, key);
    return rc;
}

/* ---- Get and Delete ---------------------------------------------------- */

static int rs_read_ref(const struct rs_binding *b, const ProtobufCMessage *in, const char **ns,
                       const char **id, struct berth_err *err)
{
    krane_ref(in, ns, id);
    if (service_check_id(krane_id_json(b->kind->kind), *id, err) < 0)
        return -1;
    return rs_check_text("namespace", *ns, RS_TEXT_MAX, err);
}

/* Get: live from the backend, so changes show at once; the answer is
 * cached. While the Engine is unreachable, the last known answer. */
static int h_get(void *ctx, struct rpc_call *call, const ProtobufCMessage *in,
                 ProtobufCMessage **out, struct berth_err *err)
{
    const struct rs_binding *b = ctx;
    struct replica_service *s = b->s;
    struct backend_replica_set set = {0};
    ProtobufCMessage *resp;
    const char *ns, *id;
    uint64_t ticket;
    int rc = -1;

    if (rs_read_ref(b, in, &ns, &id, err) < 0 || rs_check_backend(s, err) < 0)
        return -1;
    ticket = replica_cache_begin(s->cache);
    if (s->backend->ops->replica_get(s->backend->ctx, b->kind->kind, ns, id, call->deadline, &set,
                                     err) < 0) {
        if (err->code == BERTH_NOT_FOUND) {
            replica_cache_drop(s->cache, b->kind->kind, ns, id, ticket);
            berth_err_clear(err);
            berth_err_set(err, BERTH_NOT_FOUND, "%s '%s' not found", b->name, id);
        } else if (err->code == BERTH_UNAVAILABLE &&
                   rs_cached_answer(s, b, ns, id, call->arena, out) == 0) {
            struct log_quoted lq;
            log_debug("krane.cached", "kind=%s id=%s reason=%s", b->name, id,
                      log_quote(&lq, err->msg));
            berth_err_clear(err);
            rc = 0;
        }
        goto out;
    }
    if (rs_compose(call->arena, b, &set, &resp, err) < 0 ||
        rs_store(s, b, &set, ticket, call->arena, err) < 0)
        goto out;
    *out = resp;
    rc = 0;
out:
    replica_cache_end(s->cache, ticket);
    backend_replica_set_release(&set);
    return rc;
}

/* Delete: every replica of (ns, id) goes; one already gone, or no replica at
 * all, is success. */
static int h_delete(void *ctx, struct rpc_call *call, const ProtobufCMessage *in,
                    ProtobufCMessage **out, struct berth_err *err)
{
    const struct rs_binding *b = ctx;
    struct replica_service *s = b->s;
    ProtobufCMessage *resp;
    const char *ns, *id, *key;
    size_t removed = 0;
    uint64_t ticket;
    int rc = -1;

    if (rs_read_ref(b, in, &ns, &id, err) < 0 || rs_check_backend(s, err) < 0)
        return -1;
    key = arena_printf(call->arena, "%s/%s", b->name, id);
    if (key == NULL)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    if (rs_busy_take(s, key, 0, call->deadline, err) < 0)
        return -1;
    if (s->backend->ops->replica_delete(s->backend->ctx, b->kind->kind, ns, id, call->deadline,
                                        &removed, err) < 0)
        goto out;
    resp = krane_delete_response(b->kind->kind, call->arena);
    if (resp == NULL) {
        berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    *out = resp;
    ticket = replica_cache_begin(s->cache);
    replica_cache_drop(s->cache, b->kind->kind, ns, id, ticket);
    replica_cache_end(s->cache, ticket);
    log_info("krane.deleted", "kind=%s id=%s removed=%zu", b->name, id, removed);
    rc = 0;
out:
    rs_busy_give(s, key);
    return rc;
}

/* ---- List --------------------------------------------------------------- */

static int rs_summary_cmp(const void *a, const void *b)
{
    const struct krane_summary *x = a, *y = b;
    int c = strcmp(x->ns, y->ns);

    return c != 0 ? c : strcmp(x->id, y->id);
}

/* A page token: where the last page ended, "p1." hex(namespace) "." hex(id).
 * Opaque to clients; only berthd reads it. */
static char *rs_token_make(struct arena *a, const char *ns, const char *id)
{
    static const char hex[] = "0123456789abcdef";
    size_t nn = strlen(ns), ni = strlen(id);
    char *t = arena_alloc(a, 3 + 2 * nn + 1 + 2 * ni + 1);
    size_t k = 0;

    if (t == NULL)
        return NULL;
    memcpy(t, "p1.", 3);
    k = 3;
    for (size_t i = 0; i < nn; i++) {
        t[k++] = hex[(unsigned char)ns[i] >> 4];
        t[k++] = hex[(unsigned char)ns[i] & 15];
    }
    t[k++] = '.';
    for (size_t i = 0; i < ni; i++) {
        t[k++] = hex[(unsigned char)id[i] >> 4];
        t[k++] = hex[(unsigned char)id[i] & 15];
    }
    t[k] = '\0';
    return t;
}

static int rs_hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* The hex text [p, end) decoded into the arena; NULL when malformed (odd
 * length, not hex, a NUL or control byte) or out of memory. */
static char *rs_hex_text(struct arena *a, const char *p, const char *end)
{
    size_t n = (size_t)(end - p);
    char *out;

    if (n % 2 != 0 || (out = arena_alloc(a, n / 2 + 1)) == NULL)
        return NULL;
    for (size_t i = 0; i < n / 2; i++) {
        int hi = rs_hex_digit(p[2 * i]), lo = rs_hex_digit(p[2 * i + 1]);
        if (hi < 0 || lo < 0 || (hi << 4 | lo) < 0x20)
            return NULL;
        out[i] = (char)(hi << 4 | lo);
    }
    out[n / 2] = '\0';
    return out;
}

/* Read a page token back: 0, or -1 when it is not one berthd made. */
static int rs_token_read(struct arena *a, const char *token, const char **ns, const char **id)
{
    const char *dot;
    size_t n = strlen(token);

    if (n < 4 || n > 4 * RS_TEXT_MAX || strncmp(token, "p1.", 3) != 0 ||
        (dot = strchr(token + 3, '.')) == NULL)
        return -1;
    *ns = rs_hex_text(a, token + 3, dot);
    *id = rs_hex_text(a, dot + 1, token + n);
    return *ns != NULL && *id != NULL && (*id)[0] != '\0' ? 0 : -1;
}

/* The summary of set: its image (the lowest instance's), the replicas it
 * was applied with, how many run (and pass their check, where they have one). RUNNING once that
 * many run, PENDING before. Strings borrowed from the set (copied by the caller). */
static int rs_summarise(struct arena *a, const struct backend_replica_set *set,
                        struct krane_summary *out)
{
    unsigned running = 0;

    for (size_t i = 0; i < set->n; i++)
        running += rs_status_of(&set->items[i]) == KRANE_STATUS_RUNNING;
    out->ns = arena_strdup(a, set->ns);
    out->id = arena_strdup(a, set->id);
    out->image = arena_strdup(a, set->n > 0 && set->items[0].image ? set->items[0].image : "");
    out->replicas = set->wanted > 0 ? set->wanted : (unsigned)set->n;
    out->running = running;
    out->status = running >= out->replicas ? KRANE_STATUS_RUNNING : KRANE_STATUS_PENDING;
    return out->ns != NULL && out->id != NULL && out->image != NULL ? 0 : -1;
}

/* List: every object of the kind the cache knows, one namespace or all,
 * ordered by (namespace, id), a page at a time. No backend call: the cache
 * is filled by the sync at start and kept by Creates, Updates, Deletes,
 * Gets and engine events; only before the first sync succeeded does List
 * run one itself (unavailable while the backend cannot be listed). */
static int h_list(void *ctx, struct rpc_call *call, const ProtobufCMessage *in,
                  ProtobufCMessage **out, struct berth_err *err)
{
    const struct rs_binding *b = ctx;
    struct replica_service *s = b->s;
    struct krane_list_request req;
    struct replica_cache_item *items = NULL;
    struct krane_summary *sum;
    const char *after_ns = NULL, *after_id = NULL, *next = NULL;
    size_t n = 0, first = 0, page;

    krane_list_request(in, &req);
    if (rs_check_text("namespace", req.ns, RS_TEXT_MAX, err) < 0)
        return -1;
    if (req.page_size < 0 || req.page_size > RS_LIST_MAX)
        return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                             "field 'pageSize': %" PRId32 " is not from 0 to %d (0 means %d)",
                             req.page_size, RS_LIST_MAX, RS_LIST_DEFAULT);
    if (req.page_token[0] != '\0' &&
        rs_token_read(call->arena, req.page_token, &after_ns, &after_id) < 0)
        return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                             "field 'pageToken' is not a token of a previous answer");
    if (rs_check_backend(s, err) < 0)
        return -1;
    page = req.page_size == 0 ? RS_LIST_DEFAULT : (size_t)req.page_size;

    if (!replica_cache_complete(s->cache) && rs_sync(s, call->deadline, 0, err) < 0)
        return -1;
    if (replica_cache_list(s->cache, b->kind->kind, req.ns[0] != '\0' ? req.ns : NULL, call->arena,
                           &items, &n) < 0 ||
        (sum = arena_alloc(call->arena, (n + 1) * sizeof(*sum))) == NULL)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    for (size_t i = 0; i < n; i++)
        sum[i] = (struct krane_summary){
            items[i].ns,           items[i].id,          items[i].sum.image,
            items[i].sum.replicas, items[i].sum.running, (enum krane_status)items[i].sum.status};
    if (n > 1)
        qsort(sum, n, sizeof(*sum), rs_summary_cmp);
    if (after_id != NULL) {
        struct krane_summary key = {.ns = after_ns, .id = after_id};
        while (first < n && rs_summary_cmp(&sum[first], &key) <= 0)
            first++;
    }
    if (page > n - first)
        page = n - first;
    if (first + page < n) {
        next = rs_token_make(call->arena, sum[first + page - 1].ns, sum[first + page - 1].id);
        if (next == NULL)
            return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    }
    *out = krane_list_response(b->kind->kind, call->arena, sum + first, page, next, (int32_t)n);
    if (*out == NULL)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    return 0;
}

/* ---- Update -------------------------------------------------------------- */

/* Update: validate as Create, then bring the existing set to the spec (the
 * backend scales it, or replaces its replicas a batch at a time and rolls
 * back on failure). One update of an object at a time; a Create, Update or
 * Delete of it meanwhile waits, or answers aborted. */
static int h_update(void *ctx, struct rpc_call *call, const ProtobufCMessage *in,
                    ProtobufCMessage **out, struct berth_err *err)
{
    const struct rs_binding *b = ctx;
    struct replica_service *s = b->s;
    struct backend_update_result res = {0};
    struct krane_object o;
    struct rs_plan plan;
    const char **pods;
    const char *key;
    int got, rc = -1;

    got = krane_create_object(b->kind->kind, in, call->arena, &o);
    if (got < 0)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    if (got > 0)
        return berth_err_set(err, BERTH_INVALID_ARGUMENT, "field '%s' is required", b->name);
    if (rs_read_object(call->arena, b, &o, err) < 0 ||
        rs_plan_build(call->arena, b, &o, &plan, err) < 0 || rs_check_backend(s, err) < 0)
        return -1;
    if (s->backend->ops->replica_update == NULL)
        return berth_err_set(err, BERTH_UNIMPLEMENTED, "the '%s' backend cannot update %ss",
                             s->backend->ops->name, b->name);
    key = arena_printf(call->arena, "%s/%s", b->name, o.id);
    pods = arena_alloc(call->arena, o.replicas * sizeof(*pods));
    if (key == NULL || pods == NULL)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    for (uint64_t i = 0; i < o.replicas; i++)
        if ((pods[i] = arena_printf(call->arena, "%s-%" PRIu64, o.id, i)) == NULL)
            return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    if (rs_busy_take(s, key, 1, call->deadline, err) < 0)
        return -1;
    if (rs_check_total(s, b, &o, call->deadline, err) < 0)
        goto out;
    if (s->backend->ops->replica_update(s->backend->ctx, &plan.spec, &s->opts, call->deadline, &res,
                                        err) < 0) {
        if (err->code == BERTH_NOT_FOUND) {
            berth_err_clear(err);
            berth_err_set(err, BERTH_NOT_FOUND, "%s '%s' not found", b->name, o.id);
        } else {
            log_info("krane.update_failed", "kind=%s id=%s code=%s", b->name, o.id,
                     berth_code_name(err->code));
            /* A rollback may have moved what Get shows (a restarted old
             * replica publishes a new port). */
            rs_created(s, b, o.id, berth_now_ms() + RS_EVENT_MS);
        }
        goto out;
    }
    *out = krane_update_response(b->kind->kind, call->arena, pods, (size_t)o.replicas);
    if (*out == NULL) {
        berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    rs_created(s, b, o.id, call->deadline);
    if (res.replaced + res.added + res.removed > 0)
        log_info("krane.updated",
                 "kind=%s id=%s replicas=%" PRIu64 " image=%s replaced=%zu added=%zu removed=%zu",
                 b->name, o.id, o.replicas, o.image, res.replaced, res.added, res.removed);
    rc = 0;
out:
    rs_busy_give(s, key);
    return rc;
}

/* ---- recovery ------------------------------------------------------------ */

/* Settle the sets a sync found unsettled (an update cut short by a crash,
 * or what one left behind), each under its object's busy mark, and store
 * what they are then; one a call of this process is changing is left to
 * that call. Failures are logged: the next sync tries again. */
static void rs_recover(struct replica_service *s, const struct rs_pending *p, int64_t deadline)
{
    if (s->backend->ops->replica_recover == NULL)
        return;
    for (; p != NULL; p = p->next) {
        struct arena *a = arena_new();
        const char *key = a ? arena_printf(a, "%s/%s", p->b->name, p->id) : NULL;
        struct berth_err err;
        int acted = 0;

        if (key == NULL || rs_busy_try(s, key) < 0) {
            arena_free(a);
            continue;
        }
        berth_err_clear(&err);
        if (s->backend->ops->replica_recover(s->backend->ctx, p->b->kind->kind, p->ns, p->id,
                                             deadline, &acted, &err) < 0) {
            struct log_quoted lq;
            log_warn("krane.recover", "kind=%s id=%s code=%s error=%s", p->b->name, p->id,
                     berth_code_name(err.code), log_quote(&lq, err.msg));
        } else if (acted) {
            log_info("krane.recovered", "kind=%s id=%s", p->b->name, p->id);
            rs_created(s, p->b, p->id, deadline);
        }
        rs_busy_give(s, key);
        arena_free(a);
    }
}
