/* VmService: each VM is one container. A handler validates its input, takes
 * the VM's operation lock through the registry, checks the state machine,
 * calls the backend (never under the registry mutex) and writes the result
 * back. GetVmInfo and ListVms answer from the registry alone. */
#include "berth/vm_service.h"
#include "berth/labels.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uuid/uuid.h>

#include "berth/base64.h"
#include "berth/clock.h"
#include "berth/json_codec.h"
#include "berth/lock.h"
#include "berth/log.h"
#include "berth/service_util.h"
#include "metal/vmprovisioner/v1/vmprovisioner.pb-c.h"

typedef Metal__Vmprovisioner__V1__VmConfig VmConfig;
typedef Metal__Vmprovisioner__V1__ContainerSpec ContainerSpec;
typedef Metal__Vmprovisioner__V1__PortMapping PortMapping;

#define VM_NAME_PREFIX "berth-vm-"
#define LIST_DEFAULT_PAGE 100
#define LIST_MAX_PAGE 1000
#define MIN_MEMORY_BYTES (6 * 1024 * 1024) /* the Engine refuses less */
#define CONFIG_LABEL_MAX (256 * 1024)
#define MAX_STOP_TIMEOUT_S 3600 /* a grace period of an hour at most, as --stop-timeout */

_Static_assert((int)VM_STATE_SHUTDOWN == (int)METAL__VMPROVISIONER__V1__VM_STATE__VM_STATE_SHUTDOWN,
               "vm_state mirrors the wire enum");

enum ready_state { READY_DOWN, READY_REBUILDING, READY_OK };

struct vm_service {
    struct vm_service_config cfg;
    struct backend *backend;      /* borrowed */
    struct vm_registry *registry; /* borrowed */
    pthread_mutex_t ready_lock;
    pthread_cond_t ready_cond;
    enum ready_state ready; /* guarded by ready_lock */
};

/* A container spec resolved from a VmConfig; everything in the call arena. */
struct vm_plan {
    struct backend_spec spec;
    struct backend_port *ports;
    const char **env;
    struct backend_label labels[6];
};

static int wait_ready(struct vm_service *s, int64_t deadline, struct berth_err *err);
static const char *state_word(enum vm_state st);
static int state_error(const char *id, enum vm_state st, const char *hint, struct berth_err *err);
static int plan_ports(struct arena *a, const VmConfig *cfg, struct vm_plan *p,
                      struct berth_err *err);
static int plan_env(struct arena *a, const VmConfig *cfg, struct vm_plan *p, struct berth_err *err);
static int plan_vm(struct arena *a, const char *id, const char *customer, const VmConfig *cfg,
                   int64_t created, struct vm_plan *p, struct berth_err *err);
static int refresh_from_backend(struct vm_service *s, struct vm_snapshot *snap, int64_t deadline);
static void snap_set_ports(struct vm_snapshot *snap, const struct backend_container *c);
static int finish_transition(struct vm_service *s, struct vm_record *rec, struct vm_snapshot *snap,
                             enum vm_state next, uint64_t stamp, struct berth_err *err);
static int fill_vm_config(struct arena *a, const struct vm_snapshot *snap, VmConfig **out,
                          struct berth_err *err);
static int rebuild_one(struct vm_service *s, const struct backend_container *c, struct arena *a);
static void observe_container(struct vm_service *s, const char *id,
                              const struct backend_container *c, int inspected);
static void sync_one(struct vm_service *s, const struct backend_container *listed, int64_t deadline,
                     size_t *loaded, struct berth_err *err);
static void drop_if_gone(struct vm_service *s, const struct vm_snapshot *v, int64_t deadline);
static enum vm_state state_from_container(enum backend_state state);

static int h_create(void *ctx, struct rpc_call *call, const ProtobufCMessage *in,
                    ProtobufCMessage **out, struct berth_err *err);
static int h_delete(void *ctx, struct rpc_call *call, const ProtobufCMessage *in,
                    ProtobufCMessage **out, struct berth_err *err);
static int h_boot(void *ctx, struct rpc_call *call, const ProtobufCMessage *in,
                  ProtobufCMessage **out, struct berth_err *err);
static int h_shutdown(void *ctx, struct rpc_call *call, const ProtobufCMessage *in,
                      ProtobufCMessage **out, struct berth_err *err);
static int h_pause(void *ctx, struct rpc_call *call, const ProtobufCMessage *in,
                   ProtobufCMessage **out, struct berth_err *err);
static int h_resume(void *ctx, struct rpc_call *call, const ProtobufCMessage *in,
                    ProtobufCMessage **out, struct berth_err *err);
static int h_reboot(void *ctx, struct rpc_call *call, const ProtobufCMessage *in,
                    ProtobufCMessage **out, struct berth_err *err);
static int h_get_info(void *ctx, struct rpc_call *call, const ProtobufCMessage *in,
                      ProtobufCMessage **out, struct berth_err *err);
static int h_list(void *ctx, struct rpc_call *call, const ProtobufCMessage *in,
                  ProtobufCMessage **out, struct berth_err *err);

static const struct {
    const char *path;
    rpc_handler_fn fn;
} vm_routes[] = {
    {"/metal.vmprovisioner.v1.VmService/CreateVm", h_create},
    {"/metal.vmprovisioner.v1.VmService/DeleteVm", h_delete},
    {"/metal.vmprovisioner.v1.VmService/BootVm", h_boot},
    {"/metal.vmprovisioner.v1.VmService/ShutdownVm", h_shutdown},
    {"/metal.vmprovisioner.v1.VmService/PauseVm", h_pause},
    {"/metal.vmprovisioner.v1.VmService/ResumeVm", h_resume},
    {"/metal.vmprovisioner.v1.VmService/RebootVm", h_reboot},
    {"/metal.vmprovisioner.v1.VmService/GetVmInfo", h_get_info},
    {"/metal.vmprovisioner.v1.VmService/ListVms", h_list},
};

/* ---- life of the service --------------------------------------------- */

struct vm_service *vm_service_new(const struct vm_service_config *cfg, struct backend *backend,
                                  struct vm_registry *registry)
{
    struct vm_service *s = calloc(1, sizeof(*s));

    if (s == NULL)
        return NULL;
    s->cfg = *cfg;
    s->backend = backend;
    s->registry = registry;
    s->ready = READY_REBUILDING;
    lock_init(&s->ready_lock);
    pthread_cond_init(&s->ready_cond, NULL);
    return s;
}

void vm_service_free(struct vm_service *s)
{
    if (s == NULL)
        return;
    lock_destroy(&s->ready_lock);
    pthread_cond_destroy(&s->ready_cond);
    free(s);
}

int vm_service_register(struct vm_service *s, struct router *r)
{
    for (size_t i = 0; i < sizeof(vm_routes) / sizeof(vm_routes[0]); i++)
        if (router_set_handler(r, vm_routes[i].path, vm_routes[i].fn, s) < 0)
            return -1;
    return 0;
}

void vm_service_set_rebuilding(struct vm_service *s)
{
    lock_take(&s->ready_lock);
    s->ready = READY_REBUILDING;
    lock_give(&s->ready_lock);
}

void vm_service_set_ready(struct vm_service *s, int ready)
{
    lock_take(&s->ready_lock);
    s->ready = ready ? READY_OK : READY_DOWN;
    pthread_cond_broadcast(&s->ready_cond);
    lock_give(&s->ready_lock);
}

int vm_service_is_ready(struct vm_service *s)
{
    int ok;

    lock_take(&s->ready_lock);
    ok = s->ready == READY_OK;
    lock_give(&s->ready_lock);
    return ok;
}

/* Calls that arrive while the registry is rebuilt wait for it (bounded by
 * ready_wait_ms and the call's deadline) instead of answering from an empty
 * registry. */
static int wait_ready(struct vm_service *s, int64_t deadline, struct berth_err *err)
{
    int64_t until = berth_deadline_min(deadline, s->cfg.ready_wait_ms);
    enum ready_state st;

    lock_take(&s->ready_lock);
    while (s->ready == READY_REBUILDING &&
           lock_wait_until(&s->ready_cond, &s->ready_lock, until) == 0)
        ;
    st = s->ready;
    lock_give(&s->ready_lock);
    if (st == READY_OK)
        return 0;
    return berth_err_set(err, BERTH_UNAVAILABLE,
                         st == READY_DOWN ? "the container engine is not reachable"
                                          : "the vm registry is still being rebuilt");
}

/* ---- small helpers ---------------------------------------------------- */

static const char *state_word(enum vm_state st)
{
    return vm_state_name(st) + strlen("VM_STATE_");
}

static int state_error(const char *id, enum vm_state st, const char *hint, struct berth_err *err)
{
    return berth_err_set(err, BERTH_FAILED_PRECONDITION, "vm '%s' is %s; %s", id, state_word(st),
                         hint);
}

static void snap_set_ports(struct vm_snapshot *snap, const struct backend_container *c)
{
    struct backend_port *ports = malloc(c->n_ports ? c->n_ports * sizeof(*ports) : 1);

    if (ports == NULL)
        return;
    if (c->n_ports)
        memcpy(ports, c->ports, c->n_ports * sizeof(*ports));
    free(snap->ports);
    snap->ports = ports;
    snap->n_ports = c->n_ports;
}

/* After a start or restart: read back what only the Engine knows (real host
 * ports, IP, start time). A failure here does not undo the transition. */
static int refresh_from_backend(struct vm_service *s, struct vm_snapshot *snap, int64_t deadline)
{
    struct backend_container c = {0};
    struct berth_err err;
    char *ip, *mac, *gw;

    berth_err_clear(&err);
    if (s->backend->ops->inspect(s->backend->ctx, snap->container_id, deadline, &c, &err) < 0) {
        struct log_quoted lq;
        log_warn("vm.inspect", "vm_id=%s code=%s error=%s", snap->id, berth_code_name(err.code),
                 log_quote(&lq, err.msg));
        return -1;
    }
    ip = strdup(c.ip_address ? c.ip_address : "");
    mac = strdup(c.mac_address ? c.mac_address : "");
    gw = strdup(c.gateway ? c.gateway : "");
    if (ip && mac && gw) {
        free(snap->ip_address);
        free(snap->mac_address);
        free(snap->gateway);
        snap->ip_address = ip;
        snap->mac_address = mac;
        snap->gateway = gw;
        ip = mac = gw = NULL;
    }
    free(ip);
    free(mac);
    free(gw);
    snap_set_ports(snap, &c);
    snap->started_unix_ms = c.started_unix_ms ? c.started_unix_ms : berth_unix_ms();
    backend_container_release(&c);
    return 0;
}

static int finish_transition(struct vm_service *s, struct vm_record *rec, struct vm_snapshot *snap,
                             enum vm_state next, uint64_t stamp, struct berth_err *err)
{
    snap->state = next;
    snap->modified_unix = (int64_t)time(NULL);
    if (next != VM_STATE_RUNNING && next != VM_STATE_PAUSED)
        snap->started_unix_ms = 0;
    if (next == VM_STATE_RUNNING)
        snap->oom_killed = 0;
    return vm_registry_commit(s->registry, rec, snap, stamp, err);
}

/* ---- VmConfig -> container ------------------------------------------- */

/* Ports from config.container.ports, else metadata["exposed_ports"]. */
static int plan_ports(struct arena *a, const VmConfig *cfg, struct vm_plan *p,
                      struct berth_err *err)
{
    const ContainerSpec *cs = cfg->container;
    const char *meta;
    size_t n = 0;

    if (cs && cs->n_ports > 0) {
        p->ports = arena_alloc(a, cs->n_ports * sizeof(*p->ports));
        if (p->ports == NULL)
            return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        for (size_t i = 0; i < cs->n_ports; i++) {
            const PortMapping *pm = cs->ports[i];
            const char *proto = pm->protocol && pm->protocol[0] ? pm->protocol : "tcp";
            if (pm->container_port < 1 || pm->container_port > 65535)
                return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                                     "field 'config.container.ports[%zu].containerPort': %d is "
                                     "not a port from 1 to 65535",
                                     i, pm->container_port);
            if (pm->host_port < 0 || pm->host_port > 65535)
                return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                                     "field 'config.container.ports[%zu].hostPort': %d is not a "
                                     "port from 0 to 65535",
                                     i, pm->host_port);
            if (strcmp(proto, "tcp") != 0 && strcmp(proto, "udp") != 0)
                return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                                     "field 'config.container.ports[%zu].protocol': must be "
                                     "'tcp' or 'udp'",
                                     i);
            p->ports[i].container_port = pm->container_port;
            p->ports[i].host_port = pm->host_port;
            memcpy(p->ports[i].protocol, proto, strlen(proto) + 1);
        }
        p->spec.ports = p->ports;
        p->spec.n_ports = cs->n_ports;
        return 0;
    }
    meta = service_map_get((void *const *)cfg->metadata, cfg->n_metadata, "exposed_ports");
    if (meta == NULL || meta[0] == '\0')
        return 0;
    p->ports = arena_alloc(a, (strlen(meta) / 2 + 1) * sizeof(*p->ports));
    if (p->ports == NULL)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    for (const char *item = meta; *item;) {
        size_t len = strcspn(item, ",");
        char *end;
        long port = strtol(item, &end, 10);
        const char *proto = "tcp";
        if (end == item || port < 1 || port > 65535)
            goto bad;
        if ((size_t)(end - item) < len) {
            size_t rest = len - (size_t)(end - item);
            if (rest == 4 && strncmp(end, "/tcp", 4) == 0)
                proto = "tcp";
            else if (rest == 4 && strncmp(end, "/udp", 4) == 0)
                proto = "udp";
            else
                goto bad;
        }
        p->ports[n].container_port = (int)port;
        p->ports[n].host_port = 0;
        memcpy(p->ports[n].protocol, proto, 4);
        n++;
        item += len;
        if (*item == ',')
            item++;
    }
    p->spec.ports = p->ports;
    p->spec.n_ports = n;
    return 0;
bad : {
    char quoted[80];
    berth_err_quote(quoted, sizeof(quoted), meta, 64);
    return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                         "field 'config.metadata[\"exposed_ports\"]': '%s' is not a list like "
                         "'8080/tcp,53/udp'",
                         quoted);
}
}

/* Environment from config.container.env, else metadata["env_vars"]. */
static int plan_env(struct arena *a, const VmConfig *cfg, struct vm_plan *p, struct berth_err *err)
{
    const ContainerSpec *cs = cfg->container;
    const char *meta;
    size_t n = 0;

    if (cs && cs->n_env > 0) {
        p->env = arena_alloc(a, cs->n_env * sizeof(*p->env));
        if (p->env == NULL)
            return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        for (size_t i = 0; i < cs->n_env; i++) {
            const char *k = cs->env[i]->key, *v = cs->env[i]->value;
            if (k[0] == '\0' || strchr(k, '=') != NULL) {
                char quoted[80];
                berth_err_quote(quoted, sizeof(quoted), k, 64);
                return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                                     "field 'config.container.env[\"%s\"]': a name must be "
                                     "non-empty and hold no '='",
                                     quoted);
            }
            p->env[i] = arena_printf(a, "%s=%s", k, v);
            if (p->env[i] == NULL)
                return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        }
        p->spec.env = p->env;
        p->spec.n_env = cs->n_env;
        return 0;
    }
    meta = service_map_get((void *const *)cfg->metadata, cfg->n_metadata, "env_vars");
    if (meta == NULL || meta[0] == '\0')
        return 0;
    p->env = arena_alloc(a, (strlen(meta) + 1) * sizeof(*p->env));
    if (p->env == NULL)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    for (const char *item = meta; *item;) {
        size_t len = strcspn(item, ",");
        const char *eq = memchr(item, '=', len);
        if (eq == NULL || eq == item) {
            char quoted[80];
            berth_err_quote(quoted, sizeof(quoted), meta, 64);
            return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                                 "field 'config.metadata[\"env_vars\"]': '%s' is not a list "
                                 "like 'K=V,K2=V2'",
                                 quoted);
        }
        p->env[n] = arena_strndup(a, item, len);
        if (p->env[n] == NULL)
            return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        n++;
        item += len;
        if (*item == ',')
            item++;
    }
    p->spec.env = p->env;
    p->spec.n_env = n;
    return 0;
}

/* Validate a VmConfig and turn it into a container spec with our labels. */
static int plan_vm(struct arena *a, const char *id, const char *customer, const VmConfig *cfg,
                   int64_t created, struct vm_plan *p, struct berth_err *err)
{
    const ContainerSpec *cs = cfg->container;
    const char *image = cs && cs->image[0] ? cs->image : NULL;
    struct buf json;
    char *config_json;

    if (image == NULL)
        image = service_map_get((void *const *)cfg->metadata, cfg->n_metadata, "docker_image");
    if (image == NULL || image[0] == '\0')
        return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                             "field 'config.container.image' is required (or "
                             "config.metadata[\"docker_image\"])");
    if (cfg->cpu && cfg->cpu->vcpu_count < 0)
        return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                             "field 'config.cpu.vcpuCount': %d is negative", cfg->cpu->vcpu_count);
    if (cfg->memory && cfg->memory->size_bytes < 0)
        return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                             "field 'config.memory.sizeBytes': %" PRId64 " is negative",
                             cfg->memory->size_bytes);
    if (cfg->memory && cfg->memory->size_bytes > 0 && cfg->memory->size_bytes < MIN_MEMORY_BYTES)
        return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                             "field 'config.memory.sizeBytes': %" PRId64
                             " is below the minimum of %d bytes",
                             cfg->memory->size_bytes, MIN_MEMORY_BYTES);
    memset(p, 0, sizeof(*p));
    if (plan_ports(a, cfg, p, err) < 0 || plan_env(a, cfg, p, err) < 0)
        return -1;
    p->spec.name = arena_printf(a, VM_NAME_PREFIX "%s", id);
    p->spec.image = image;
    if (cs && cs->n_command > 0) {
        p->spec.cmd = (const char *const *)cs->command;
        p->spec.n_cmd = cs->n_command;
    }
    p->spec.working_dir = cs ? cs->working_dir : NULL;
    if (cfg->cpu && cfg->cpu->vcpu_count > 0)
        p->spec.nano_cpus = (int64_t)cfg->cpu->vcpu_count * 1000000000;
    if (cfg->memory)
        p->spec.memory_bytes = cfg->memory->size_bytes;

    /* The submitted config rides along as a label so a restart of berthd can
     * rebuild the record from the container alone. */
    buf_init(&json, CONFIG_LABEL_MAX);
    if (json_codec_encode(&cfg->base, &json, err) < 0) {
        buf_release(&json);
        return -1;
    }
    config_json = arena_strndup(a, json.data ? json.data : "{}", json.data ? json.len : 2);
    buf_release(&json);
    p->labels[0] = (struct backend_label){LABEL_KIND, "vm"};
    p->labels[1] = (struct backend_label){LABEL_VM_ID, id};
    p->labels[2] = (struct backend_label){LABEL_CUSTOMER_ID, customer};
    p->labels[3] = (struct backend_label){LABEL_CONFIG, config_json};
    p->labels[4] = (struct backend_label){LABEL_CREATED, arena_printf(a, "%" PRId64, created)};
    if (p->spec.name == NULL || config_json == NULL || p->labels[4].value == NULL)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    p->spec.labels = p->labels;
    p->spec.n_labels = 5;
    return 0;
}

/* ---- handlers --------------------------------------------------------- */

static int h_create(void *ctx, struct rpc_call *call, const ProtobufCMessage *in,
                    ProtobufCMessage **out, struct berth_err *err)
{
    struct vm_service *s = ctx;
    const Metal__Vmprovisioner__V1__CreateVmRequest *req = (const void *)in;
    Metal__Vmprovisioner__V1__CreateVmResponse *resp;
    static const VmConfig empty_config = METAL__VMPROVISIONER__V1__VM_CONFIG__INIT;
    const VmConfig *cfg = req->config ? req->config : &empty_config;
    struct vm_snapshot init = {0};
    struct vm_record *rec = NULL;
    struct vm_plan plan;
    char *container_id = NULL, gen_id[37];
    const char *id = req->vm_id;
    int rc = -1;

    if (id[0] == '\0') {
        uuid_t uu;
        uuid_generate_random(uu);
        uuid_unparse_lower(uu, gen_id);
        id = gen_id;
    } else if (service_check_id("vmId", id, err) < 0) {
        return -1;
    }
    init.created_unix = (int64_t)time(NULL);
    if (plan_vm(call->arena, id, req->customer_id, cfg, init.created_unix, &plan, err) < 0)
        return -1;
    if (wait_ready(s, call->deadline, err) < 0)
        return -1;

    init.id = (char *)id;
    init.customer_id = req->customer_id;
    init.state = VM_STATE_CREATED;
    init.modified_unix = init.created_unix;
    init.container_name = (char *)plan.spec.name;
    init.image = (char *)plan.spec.image;
    init.config_len = protobuf_c_message_get_packed_size(&cfg->base);
    init.config = arena_alloc(call->arena, init.config_len + 1);
    if (init.config == NULL)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    protobuf_c_message_pack(&cfg->base, init.config);
    init.vcpu_count = cfg->cpu ? cfg->cpu->vcpu_count : 0;
    init.memory_bytes = cfg->memory ? cfg->memory->size_bytes : 0;
    init.ports = plan.ports;
    init.n_ports = plan.spec.n_ports;
    if (vm_registry_reserve(s->registry, &init, &rec, err) < 0)
        return -1;

    if (s->backend->ops->create(s->backend->ctx, &plan.spec, call->deadline, &container_id, err) <
        0) {
        /* Nothing to undo: the backend removes what a create of unknown
         * outcome made, and a container under the name may be another's. */
        if (err->code == BERTH_ALREADY_EXISTS) {
            berth_err_clear(err);
            berth_err_set(err, BERTH_ALREADY_EXISTS,
                          "vm '%s': a container named '%s' already exists", id, plan.spec.name);
        }
        vm_registry_remove(s->registry, rec);
        goto out;
    }
    init.container_id = container_id;
    if (vm_registry_write(s->registry, rec, &init, err) < 0) {
        struct berth_err ignored;
        berth_err_clear(&ignored);
        if (s->backend->ops->remove(s->backend->ctx, container_id, berth_now_ms() + 5000,
                                    &ignored) < 0) {
            struct log_quoted lq;
            log_warn("vm.create_rollback", "vm_id=%s error=%s", id, log_quote(&lq, ignored.msg));
        }
        vm_registry_remove(s->registry, rec);
        goto out;
    }
    vm_registry_publish(s->registry, rec);
    log_info("vm.created", "vm_id=%s container_id=%.12s image=%s", id, container_id,
             plan.spec.image);

    resp = arena_message(call->arena, &metal__vmprovisioner__v1__create_vm_response__descriptor);
    if (resp == NULL || (resp->vm_id = arena_strdup(call->arena, id)) == NULL) {
        berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    resp->state = METAL__VMPROVISIONER__V1__VM_STATE__VM_STATE_CREATED;
    *out = &resp->base;
    rc = 0;
out:
    vm_registry_release(s->registry, rec);
    free(container_id);
    return rc;
}

/* The common walk of a lifecycle call: find and lock the VM, read it. */
static int lifecycle_begin(struct vm_service *s, struct rpc_call *call, const char *id,
                           struct vm_record **rec, struct vm_snapshot *snap, uint64_t *stamp,
                           struct berth_err *err);

/* *stamp is taken before the read: news that slips in between shows in
 * both, and the commit then keeps it. */
static int lifecycle_begin(struct vm_service *s, struct rpc_call *call, const char *id,
                           struct vm_record **rec, struct vm_snapshot *snap, uint64_t *stamp,
                           struct berth_err *err)
{
    /* No VM can have an id CreateVm would refuse: say what is wrong with it. */
    if (service_check_id("vmId", id, err) < 0)
        return -1;
    if (wait_ready(s, call->deadline, err) < 0)
        return -1;
    if (vm_registry_acquire(s->registry, id, call->deadline, rec, err) < 0)
        return -1;
    *stamp = vm_registry_stamp(s->registry, *rec);
    if (vm_registry_read(s->registry, *rec, snap, err) < 0) {
        vm_registry_release(s->registry, *rec);
        return -1;
    }
    return 0;
}

/* Fill a {success, state} response: every lifecycle response but DeleteVm
 * has that shape (fields 1 and 2). */
static int state_response(struct rpc_call *call, const ProtobufCMessageDescriptor *desc,
                          enum vm_state st, ProtobufCMessage **out, struct berth_err *err);

static int state_response(struct rpc_call *call, const ProtobufCMessageDescriptor *desc,
                          enum vm_state st, ProtobufCMessage **out, struct berth_err *err)
{
    /* BootVmResponse and its siblings share this layout. */
    Metal__Vmprovisioner__V1__BootVmResponse *r = arena_message(call->arena, desc);

    if (r == NULL)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    r->success = 1;
    r->state = (Metal__Vmprovisioner__V1__VmState)st;
    *out = &r->base;
    return 0;
}

/* The lifecycle calls that move a VM from one state to another, as data:
 * which states each accepts, where it leads, what it answers. */
enum vm_action { ACT_BOOT, ACT_SHUTDOWN, ACT_PAUSE, ACT_RESUME, ACT_REBOOT };

#define STATE_BIT(st) (1u << (st))

static const struct vm_transition {
    const char *method;
    const char *event; /* log line */
    unsigned from;     /* STATE_BITs of the states it accepts */
    enum vm_state to;
    const char *paused_hint; /* what to tell a PAUSED VM; NULL: what it needs */
    const ProtobufCMessageDescriptor *response;
} vm_transitions[] = {
    [ACT_BOOT] = {"BootVm", "vm.booted", STATE_BIT(VM_STATE_CREATED) | STATE_BIT(VM_STATE_SHUTDOWN),
                  VM_STATE_RUNNING, "resume it instead",
                  &metal__vmprovisioner__v1__boot_vm_response__descriptor},
    [ACT_SHUTDOWN] = {"ShutdownVm", "vm.shutdown", STATE_BIT(VM_STATE_RUNNING), VM_STATE_SHUTDOWN,
                      "resume it first",
                      &metal__vmprovisioner__v1__shutdown_vm_response__descriptor},
    [ACT_PAUSE] = {"PauseVm", "vm.paused", STATE_BIT(VM_STATE_RUNNING), VM_STATE_PAUSED, NULL,
                   &metal__vmprovisioner__v1__pause_vm_response__descriptor},
    [ACT_RESUME] = {"ResumeVm", "vm.resumed", STATE_BIT(VM_STATE_PAUSED), VM_STATE_RUNNING, NULL,
                    &metal__vmprovisioner__v1__resume_vm_response__descriptor},
    [ACT_REBOOT] = {"RebootVm", "vm.rebooted", STATE_BIT(VM_STATE_RUNNING), VM_STATE_RUNNING, NULL,
                    &metal__vmprovisioner__v1__reboot_vm_response__descriptor},
};

/* What a lifecycle call asks for beyond the VM id. */
struct vm_action_args {
    int force;
    int timeout_s; /* grace period of a stop or restart */
};

static int transition_refused(const char *id, enum vm_state st, const struct vm_transition *t,
                              struct berth_err *err);
static int run_action(struct vm_service *s, enum vm_action act, const char *container_id,
                      const struct vm_action_args *args, int64_t deadline, struct berth_err *err);
static int lifecycle(struct vm_service *s, struct rpc_call *call, enum vm_action act,
                     const char *id, const struct vm_action_args *args, ProtobufCMessage **out,
                     struct berth_err *err);

/* "vm 'x' is PAUSED; resume it first" or "...; BootVm needs CREATED or SHUTDOWN". */
static int transition_refused(const char *id, enum vm_state st, const struct vm_transition *t,
                              struct berth_err *err)
{
    char needs[96];
    size_t n = 0;

    if (st == VM_STATE_PAUSED && t->paused_hint != NULL)
        return state_error(id, st, t->paused_hint, err);
    needs[0] = '\0';
    for (int k = VM_STATE_CREATED; k <= VM_STATE_SHUTDOWN; k++) {
        if (!(t->from & STATE_BIT(k)))
            continue;
        n += (size_t)snprintf(needs + n, sizeof(needs) - n, "%s%s", n ? " or " : "",
                              state_word((enum vm_state)k));
        if (n >= sizeof(needs))
            break;
    }
    return berth_err_set(err, BERTH_FAILED_PRECONDITION, "vm '%s' is %s; %s needs %s", id,
                         state_word(st), t->method, needs);
}

/* The Engine side of each action. */
static int run_action(struct vm_service *s, enum vm_action act, const char *container_id,
                      const struct vm_action_args *args, int64_t deadline, struct berth_err *err)
{
    const struct backend_ops *ops = s->backend->ops;
    void *ctx = s->backend->ctx;
    struct backend_container c = {0};
    struct berth_err probe;
    int stopped;

    switch (act) {
    case ACT_BOOT:
        return ops->start(ctx, container_id, deadline, err);
    case ACT_PAUSE:
        return ops->pause(ctx, container_id, deadline, err);
    case ACT_RESUME:
        return ops->unpause(ctx, container_id, deadline, err);
    case ACT_REBOOT:
        return ops->restart(ctx, container_id, args->force ? 0 : args->timeout_s, deadline, err);
    case ACT_SHUTDOWN:
        if (!args->force)
            return ops->stop(ctx, container_id, args->timeout_s, deadline, err);
        if (ops->kill(ctx, container_id, deadline, err) == 0)
            return 0;
        if (err->code != BERTH_FAILED_PRECONDITION)
            return -1;
        /* Killing a container that already stopped by itself is a shutdown done. */
        berth_err_clear(&probe);
        stopped = ops->inspect(ctx, container_id, deadline, &c, &probe) == 0 &&
                  c.state != BACKEND_STATE_RUNNING && c.state != BACKEND_STATE_PAUSED;
        backend_container_release(&c);
        if (!stopped)
            return -1;
        berth_err_clear(err);
        return 0;
    }
    return berth_err_set(err, BERTH_INTERNAL, "unknown vm action");
}

/* One lifecycle call: lock the VM, check the state machine, act, record. */
static int lifecycle(struct vm_service *s, struct rpc_call *call, enum vm_action act,
                     const char *id, const struct vm_action_args *args, ProtobufCMessage **out,
                     struct berth_err *err)
{
    const struct vm_transition *t = &vm_transitions[act];
    struct vm_record *rec;
    struct vm_snapshot snap = {0};
    uint64_t stamp;
    int rc = -1;

    if (lifecycle_begin(s, call, id, &rec, &snap, &stamp, err) < 0)
        return -1;
    if (!(t->from & STATE_BIT(snap.state))) {
        transition_refused(snap.id, snap.state, t, err);
        goto out;
    }
    if (run_action(s, act, snap.container_id, args, call->deadline, err) < 0)
        goto out;
    /* A start may publish on new Engine-picked host ports. */
    if (act == ACT_BOOT || act == ACT_REBOOT)
        refresh_from_backend(s, &snap, call->deadline);
    if (finish_transition(s, rec, &snap, t->to, stamp, err) < 0)
        goto out;
    log_info(t->event, "vm_id=%s force=%d", snap.id, args->force ? 1 : 0);
    rc = state_response(call, t->response, t->to, out, err);
out:
    vm_registry_release(s->registry, rec);
    vm_snapshot_release(&snap);
    return rc;
}

static int h_boot(void *ctx, struct rpc_call *call, const ProtobufCMessage *in,
                  ProtobufCMessage **out, struct berth_err *err)
{
    const Metal__Vmprovisioner__V1__BootVmRequest *req = (const void *)in;
    struct vm_action_args args = {0, 0};

    return lifecycle(ctx, call, ACT_BOOT, req->vm_id, &args, out, err);
}

static int h_shutdown(void *ctx, struct rpc_call *call, const ProtobufCMessage *in,
                      ProtobufCMessage **out, struct berth_err *err)
{
    struct vm_service *s = ctx;
    const Metal__Vmprovisioner__V1__ShutdownVmRequest *req = (const void *)in;
    struct vm_action_args args = {req->force, req->timeout_seconds ? req->timeout_seconds
                                                                   : s->cfg.stop_timeout_s};

    if (req->timeout_seconds < 0 || req->timeout_seconds > MAX_STOP_TIMEOUT_S)
        return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                             "field 'timeoutSeconds': %d is outside 0..%d", req->timeout_seconds,
                             MAX_STOP_TIMEOUT_S);
    return lifecycle(s, call, ACT_SHUTDOWN, req->vm_id, &args, out, err);
}

static int h_pause(void *ctx, struct rpc_call *call, const ProtobufCMessage *in,
                   ProtobufCMessage **out, struct berth_err *err)
{
    const Metal__Vmprovisioner__V1__PauseVmRequest *req = (const void *)in;
    struct vm_action_args args = {0, 0};

    return lifecycle(ctx, call, ACT_PAUSE, req->vm_id, &args, out, err);
}

static int h_resume(void *ctx, struct rpc_call *call, const ProtobufCMessage *in,
                    ProtobufCMessage **out, struct berth_err *err)
{
    const Metal__Vmprovisioner__V1__ResumeVmRequest *req = (const void *)in;
    struct vm_action_args args = {0, 0};

    return lifecycle(ctx, call, ACT_RESUME, req->vm_id, &args, out, err);
}

static int h_reboot(void *ctx, struct rpc_call *call, const ProtobufCMessage *in,
                    ProtobufCMessage **out, struct berth_err *err)
{
    struct vm_service *s = ctx;
    const Metal__Vmprovisioner__V1__RebootVmRequest *req = (const void *)in;
    struct vm_action_args args = {req->force, s->cfg.stop_timeout_s};

    return lifecycle(s, call, ACT_REBOOT, req->vm_id, &args, out, err);
}

static int h_delete(void *ctx, struct rpc_call *call, const ProtobufCMessage *in,
                    ProtobufCMessage **out, struct berth_err *err)
{
    struct vm_service *s = ctx;
    const Metal__Vmprovisioner__V1__DeleteVmRequest *req = (const void *)in;
    Metal__Vmprovisioner__V1__DeleteVmResponse *resp;
    struct vm_record *rec;
    struct vm_snapshot snap = {0};
    uint64_t stamp;
    int rc = -1;

    if (lifecycle_begin(s, call, req->vm_id, &rec, &snap, &stamp, err) < 0)
        return -1;
    if ((snap.state == VM_STATE_RUNNING || snap.state == VM_STATE_PAUSED) && !req->force) {
        state_error(snap.id, snap.state, "pass force=true to delete it", err);
        goto out;
    }
    /* The entry goes only once the Engine confirmed removal or said the
     * container is already gone. */
    if (s->backend->ops->remove(s->backend->ctx, snap.container_id, call->deadline, err) < 0) {
        if (err->code != BERTH_NOT_FOUND)
            goto out;
        berth_err_clear(err);
    }
    vm_registry_remove(s->registry, rec);
    log_info("vm.deleted", "vm_id=%s", snap.id);
    resp = arena_message(call->arena, &metal__vmprovisioner__v1__delete_vm_response__descriptor);
    if (resp == NULL) {
        berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    resp->success = 1;
    *out = &resp->base;
    rc = 0;
out:
    vm_registry_release(s->registry, rec);
    vm_snapshot_release(&snap);
    return rc;
}

static int fill_vm_config(struct arena *a, const struct vm_snapshot *snap, VmConfig **out,
                          struct berth_err *err)
{
    *out =
        (VmConfig *)protobuf_c_message_unpack(&metal__vmprovisioner__v1__vm_config__descriptor,
                                              arena_allocator(a), snap->config_len, snap->config);
    if (*out == NULL)
        return berth_err_set(err, BERTH_INTERNAL, "stored config of vm '%s' is unreadable",
                             snap->id);
    return 0;
}

static int add_backend_info(struct arena *a, Metal__Vmprovisioner__V1__GetVmInfoResponse *r,
                            const char *key, const char *value, struct berth_err *err);

static int add_backend_info(struct arena *a, Metal__Vmprovisioner__V1__GetVmInfoResponse *r,
                            const char *key, const char *value, struct berth_err *err)
{
    return service_map_add(
        a, &metal__vmprovisioner__v1__get_vm_info_response__backend_info_entry__descriptor,
        (void ***)&r->backend_info, &r->n_backend_info, key, value, err);
}

static int h_get_info(void *ctx, struct rpc_call *call, const ProtobufCMessage *in,
                      ProtobufCMessage **out, struct berth_err *err)
{
    struct vm_service *s = ctx;
    const Metal__Vmprovisioner__V1__GetVmInfoRequest *req = (const void *)in;
    Metal__Vmprovisioner__V1__GetVmInfoResponse *r;
    Metal__Vmprovisioner__V1__VmNetworkInfo *net;
    struct arena *a = call->arena;
    struct vm_snapshot snap = {0};
    int rc = -1;

    if (service_check_id("vmId", req->vm_id, err) < 0)
        return -1;
    if (wait_ready(s, call->deadline, err) < 0)
        return -1;
    if (vm_registry_get(s->registry, req->vm_id, &snap, err) < 0)
        return -1;
    r = arena_message(a, &metal__vmprovisioner__v1__get_vm_info_response__descriptor);
    net = arena_message(a, &metal__vmprovisioner__v1__vm_network_info__descriptor);
    if (r == NULL || net == NULL) {
        berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    r->vm_id = arena_strdup(a, snap.id);
    r->state = (Metal__Vmprovisioner__V1__VmState)snap.state;
    if (r->vm_id == NULL || fill_vm_config(a, &snap, &r->config, err) < 0)
        goto out;
    if (add_backend_info(a, r, "backend", s->backend->ops->name, err) < 0 ||
        add_backend_info(a, r, "container_id", snap.container_id, err) < 0 ||
        add_backend_info(a, r, "container_name", snap.container_name, err) < 0 ||
        add_backend_info(a, r, "image", snap.image, err) < 0 ||
        add_backend_info(a, r, "customer_id", snap.customer_id, err) < 0)
        goto out;
    if (snap.oom_killed && add_backend_info(a, r, "oom_killed", "true", err) < 0)
        goto out;
    if (snap.state == VM_STATE_SHUTDOWN &&
        add_backend_info(a, r, "exit_code", arena_printf(a, "%d", snap.exit_code), err) < 0)
        goto out;

    if (snap.state != VM_STATE_RUNNING && snap.state != VM_STATE_PAUSED) {
        /* A VM that does not run has no address and publishes nothing: show
         * the ports as requested (host port 0: the Engine picks at boot), the
         * same before and after a restart of berthd. */
        struct vm_plan plan;
        memset(&plan, 0, sizeof(plan));
        if (plan_ports(a, r->config, &plan, err) < 0)
            goto out;
        free(snap.ports);
        snap.ports = NULL;
        snap.n_ports = 0;
        if (plan.spec.n_ports > 0) {
            snap.ports = malloc(plan.spec.n_ports * sizeof(*snap.ports));
            if (snap.ports == NULL) {
                berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
                goto out;
            }
            memcpy(snap.ports, plan.ports, plan.spec.n_ports * sizeof(*snap.ports));
            snap.n_ports = plan.spec.n_ports;
        }
        snap.ip_address[0] = snap.mac_address[0] = snap.gateway[0] = '\0';
    }
    net->ip_address = arena_strdup(a, snap.ip_address);
    net->mac_address = arena_strdup(a, snap.mac_address);
    net->gateway = arena_strdup(a, snap.gateway);
    net->port_mappings = arena_alloc(a, (snap.n_ports + 1) * sizeof(*net->port_mappings));
    if (!net->ip_address || !net->mac_address || !net->gateway || !net->port_mappings) {
        berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < snap.n_ports; i++) {
        PortMapping *pm = arena_message(a, &metal__vmprovisioner__v1__port_mapping__descriptor);
        if (pm == NULL || (pm->protocol = arena_strdup(a, snap.ports[i].protocol)) == NULL) {
            berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
            goto out;
        }
        pm->container_port = snap.ports[i].container_port;
        pm->host_port = snap.ports[i].host_port;
        net->port_mappings[net->n_port_mappings++] = pm;
    }
    r->network_info = net;

    if (snap.metrics.sampled_at_unix_ms > 0) {
        Metal__Vmprovisioner__V1__VmMetrics *m =
            arena_message(a, &metal__vmprovisioner__v1__vm_metrics__descriptor);
        Metal__Vmprovisioner__V1__NetworkStats *ns =
            arena_message(a, &metal__vmprovisioner__v1__network_stats__descriptor);
        Metal__Vmprovisioner__V1__StorageStats *ss =
            arena_message(a, &metal__vmprovisioner__v1__storage_stats__descriptor);
        if (m == NULL || ns == NULL || ss == NULL) {
            berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
            goto out;
        }
        m->cpu_usage_percent = snap.metrics.cpu_percent;
        m->memory_usage_bytes = snap.metrics.memory_bytes;
        ns->bytes_received = snap.metrics.rx_bytes;
        ns->bytes_transmitted = snap.metrics.tx_bytes;
        ns->packets_received = snap.metrics.rx_packets;
        ns->packets_transmitted = snap.metrics.tx_packets;
        ss->bytes_read = snap.metrics.read_bytes;
        ss->bytes_written = snap.metrics.write_bytes;
        ss->read_operations = snap.metrics.read_ops;
        ss->write_operations = snap.metrics.write_ops;
        m->network_stats = ns;
        m->storage_stats = ss;
        m->sampled_at_unix_ms = snap.metrics.sampled_at_unix_ms;
        if (snap.started_unix_ms > 0 &&
            (snap.state == VM_STATE_RUNNING || snap.state == VM_STATE_PAUSED)) {
            int64_t up = (berth_unix_ms() - snap.started_unix_ms) / 1000;
            m->uptime_seconds = up > 0 ? up : 0;
        }
        r->metrics = m;
    }
    *out = &r->base;
    rc = 0;
out:
    vm_snapshot_release(&snap);
    return rc;
}

static int h_list(void *ctx, struct rpc_call *call, const ProtobufCMessage *in,
                  ProtobufCMessage **out, struct berth_err *err)
{
    struct vm_service *s = ctx;
    const Metal__Vmprovisioner__V1__ListVmsRequest *req = (const void *)in;
    Metal__Vmprovisioner__V1__ListVmsResponse *r;
    struct arena *a = call->arena;
    struct vm_snapshot *list = NULL;
    size_t n = 0, page = LIST_DEFAULT_PAGE, matched = 0;
    char *after = NULL;
    int rc = -1;

    if (req->page_size < 0)
        return berth_err_set(err, BERTH_INVALID_ARGUMENT, "field 'pageSize': %d is negative",
                             req->page_size);
    if (req->page_size > 0)
        page = req->page_size > LIST_MAX_PAGE ? LIST_MAX_PAGE : (size_t)req->page_size;
    for (size_t f = 0; f < req->n_state_filter; f++) {
        /* A number without a name would match nothing and look like an
         * empty registry. */
        int st = (int)req->state_filter[f];
        if (st < VM_STATE_UNSPECIFIED || st > VM_STATE_SHUTDOWN)
            return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                                 "field 'stateFilter': %d is not a VmState", st);
    }
    if (req->page_token[0] != '\0') {
        /* The token is the base64 of the last id served: ids order the list. */
        struct buf tok;
        buf_init(&tok, 256);
        if (base64_decode(req->page_token, strlen(req->page_token), &tok, NULL) < 0 ||
            service_check_id("pageToken", tok.data, NULL) < 0) {
            buf_release(&tok);
            return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                                 "field 'pageToken': not a token this server issued");
        }
        after = arena_strdup(a, tok.data);
        buf_release(&tok);
        if (after == NULL)
            return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    }
    if (wait_ready(s, call->deadline, err) < 0)
        return -1;
    if (vm_registry_list(s->registry, &list, &n, err) < 0)
        return -1;
    r = arena_message(a, &metal__vmprovisioner__v1__list_vms_response__descriptor);
    if (r == NULL || (r->vms = arena_alloc(a, (page + 1) * sizeof(*r->vms))) == NULL) {
        berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const struct vm_snapshot *v = &list[i];
        Metal__Vmprovisioner__V1__VmInfo *info;
        VmConfig *cfg;
        int keep = req->n_state_filter == 0;

        for (size_t f = 0; f < req->n_state_filter; f++)
            if ((int)req->state_filter[f] == (int)v->state)
                keep = 1;
        if (!keep)
            continue;
        matched++;
        if ((after && strcmp(v->id, after) <= 0) || r->n_vms >= page)
            continue;
        info = arena_message(a, &metal__vmprovisioner__v1__vm_info__descriptor);
        if (info == NULL || (info->vm_id = arena_strdup(a, v->id)) == NULL ||
            (info->customer_id = arena_strdup(a, v->customer_id)) == NULL) {
            berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
            goto out;
        }
        info->state = (Metal__Vmprovisioner__V1__VmState)v->state;
        info->vcpu_count = v->vcpu_count;
        info->memory_size_bytes = v->memory_bytes;
        info->created_timestamp = v->created_unix;
        info->modified_timestamp = v->modified_unix;
        if (fill_vm_config(a, v, &cfg, err) < 0)
            goto out;
        /* VmInfo.metadata and VmConfig.metadata share the entry layout. */
        for (size_t k = 0; k < cfg->n_metadata; k++)
            if (service_map_add(a, &metal__vmprovisioner__v1__vm_info__metadata_entry__descriptor,
                                (void ***)&info->metadata, &info->n_metadata, cfg->metadata[k]->key,
                                cfg->metadata[k]->value, err) < 0)
                goto out;
        r->vms[r->n_vms++] = info;
    }
    r->total_count = (int32_t)matched;
    if (r->n_vms == page && r->n_vms > 0) {
        /* Is there anything after the last one served? */
        const char *last = r->vms[r->n_vms - 1]->vm_id;
        size_t after_last = 0;
        for (size_t i = 0; i < n; i++) {
            int keep = req->n_state_filter == 0;
            for (size_t f = 0; f < req->n_state_filter; f++)
                if ((int)req->state_filter[f] == (int)list[i].state)
                    keep = 1;
            if (keep && strcmp(list[i].id, last) > 0)
                after_last++;
        }
        if (after_last > 0) {
            struct buf tok;
            buf_init(&tok, 1024);
            if (base64_encode(last, strlen(last), &tok, err) < 0) {
                buf_release(&tok);
                goto out;
            }
            r->next_page_token = arena_strdup(a, tok.data);
            buf_release(&tok);
            if (r->next_page_token == NULL) {
                berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
                goto out;
            }
        }
    }
    *out = &r->base;
    rc = 0;
out:
    vm_snapshot_list_free(list, n);
    return rc;
}

/* ---- rebuild from the backend ----------------------------------------- */

static enum vm_state state_from_container(enum backend_state state)
{
    static const enum vm_state map[BACKEND_STATE_COUNT] = {
        [BACKEND_STATE_UNKNOWN] = VM_STATE_UNSPECIFIED,
        [BACKEND_STATE_CREATED] = VM_STATE_CREATED,
        [BACKEND_STATE_RUNNING] = VM_STATE_RUNNING,
        [BACKEND_STATE_PAUSED] = VM_STATE_PAUSED,
        [BACKEND_STATE_RESTARTING] = VM_STATE_RUNNING,
        [BACKEND_STATE_REMOVING] = VM_STATE_UNSPECIFIED,
        [BACKEND_STATE_EXITED] = VM_STATE_SHUTDOWN,
        [BACKEND_STATE_DEAD] = VM_STATE_SHUTDOWN,
    };

    return (unsigned)state < BACKEND_STATE_COUNT ? map[state] : VM_STATE_UNSPECIFIED;
}

/* One labelled container -> one registry record. -1 (logged) when the
 * container cannot be understood; it is then left alone. */
static int rebuild_one(struct vm_service *s, const struct backend_container *c, struct arena *a)
{
    const char *id = backend_container_label(c, LABEL_VM_ID);
    const char *json = backend_container_label(c, LABEL_CONFIG);
    const char *customer = backend_container_label(c, LABEL_CUSTOMER_ID);
    const char *created = backend_container_label(c, LABEL_CREATED);
    struct vm_snapshot init = {0};
    struct vm_record *rec;
    ProtobufCMessage *msg = NULL;
    const VmConfig *cfg;
    struct berth_err err;

    berth_err_clear(&err);
    if (id == NULL || service_check_id(LABEL_VM_ID, id, &err) < 0 || json == NULL ||
        json_codec_decode(&metal__vmprovisioner__v1__vm_config__descriptor, json, strlen(json),
                          arena_allocator(a), &msg, &err) < 0) {
        struct log_quoted lq;
        log_warn(
            "vm.rebuild_skip", "container_id=%.12s reason=%s", c->id,
            log_quote(&lq, err.msg[0] ? err.msg : "missing berth.vm_id or berth.config label"));
        return -1;
    }
    cfg = (const VmConfig *)msg;
    init.state = state_from_container(c->state);
    if (init.state == VM_STATE_UNSPECIFIED)
        return 0; /* being removed */
    init.id = (char *)id;
    init.customer_id = (char *)(customer ? customer : "");
    init.container_id = c->id;
    init.container_name = c->name;
    init.image = c->image;
    init.ip_address = c->ip_address;
    init.mac_address = c->mac_address;
    init.gateway = c->gateway;
    init.ports = c->ports;
    init.n_ports = c->n_ports;
    init.created_unix = created ? strtoll(created, NULL, 10) : c->created_unix;
    init.modified_unix = init.created_unix;
    init.started_unix_ms = init.state == VM_STATE_RUNNING || init.state == VM_STATE_PAUSED
                               ? (c->started_unix_ms ? c->started_unix_ms : berth_unix_ms())
                               : 0;
    init.oom_killed = c->oom_killed;
    init.exit_code = c->exit_code;
    init.vcpu_count = cfg->cpu ? cfg->cpu->vcpu_count : 0;
    init.memory_bytes = cfg->memory ? cfg->memory->size_bytes : 0;
    init.config_len = protobuf_c_message_get_packed_size(msg);
    init.config = arena_alloc(a, init.config_len + 1);
    if (init.config == NULL)
        return -1;
    protobuf_c_message_pack(msg, init.config);
    if (vm_registry_reserve(s->registry, &init, &rec, &err) < 0) {
        struct log_quoted lq;
        if (err.code != BERTH_ALREADY_EXISTS)
            log_warn("vm.rebuild_skip", "vm_id=%s reason=%s", id, log_quote(&lq, err.msg));
        return err.code == BERTH_ALREADY_EXISTS ? 0 : -1;
    }
    vm_registry_publish(s->registry, rec);
    vm_registry_release(s->registry, rec);
    return 0;
}

/* A known VM takes the state the engine reports for its container.
 * `inspected`: c came from an inspect; a listing has no OOM flag, exit code
 * or start time, so those are kept then. */
static void observe_container(struct vm_service *s, const char *id,
                              const struct backend_container *c, int inspected)
{
    struct vm_observed o = {
        .container_id = c->id,
        .state = state_from_container(c->state),
        .oom_killed = inspected ? c->oom_killed : -1,
        .exit_code = -1,
        .details = c,
    };

    if (inspected && o.state == VM_STATE_SHUTDOWN)
        o.exit_code = c->exit_code;
    vm_registry_observe(s->registry, id, &o);
}

/* An entry the listing did not show: drop it only once the backend confirms
 * its container is gone (it may have been created after the listing). */
static void drop_if_gone(struct vm_service *s, const struct vm_snapshot *v, int64_t deadline)
{
    struct backend_container c = {0};
    struct berth_err err;

    berth_err_clear(&err);
    if (s->backend->ops->inspect(s->backend->ctx, v->container_id, deadline, &c, &err) == 0) {
        observe_container(s, v->id, &c, 1);
        backend_container_release(&c);
        return;
    }
    if (err.code == BERTH_NOT_FOUND && vm_registry_forget(s->registry, v->id, v->container_id) == 0)
        log_info("vm.gone", "vm_id=%s container_id=%.12s reason=\"container removed\"", v->id,
                 v->container_id);
}

/* One listed container: a new VM is rebuilt from its inspect (the listing
 * lacks the OOM flag, exit code and start time); a known one whose state the
 * listing contradicts takes the inspect's word, else the listing's. */
static void sync_one(struct vm_service *s, const struct backend_container *listed, int64_t deadline,
                     size_t *loaded, struct berth_err *err)
{
    const char *id = backend_container_label(listed, LABEL_VM_ID);
    const struct backend_container *c = listed;
    struct backend_container full = {0};
    struct vm_snapshot existing = {0};
    struct berth_err probe;
    struct arena *a;
    int known, inspected;

    known = id != NULL && vm_registry_get(s->registry, id, &existing, NULL) == 0;
    if (known && existing.state == state_from_container(listed->state)) {
        observe_container(s, id, listed, 0);
        goto out;
    }
    berth_err_clear(&probe);
    inspected = s->backend->ops->inspect(s->backend->ctx, listed->id, deadline, &full, &probe) == 0;
    if (!inspected && probe.code == BERTH_NOT_FOUND)
        goto out; /* removed since the listing */
    if (inspected)
        c = &full;
    if (known) {
        observe_container(s, id, c, inspected);
        goto out;
    }
    a = arena_new();
    if (a == NULL) {
        berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    if (rebuild_one(s, c, a) == 0)
        (*loaded)++;
    arena_free(a);
out:
    backend_container_release(&full);
    vm_snapshot_release(&existing);
}

int vm_service_rebuild(struct vm_service *s, int64_t deadline, struct berth_err *err)
{
    struct backend_container_list list = {0};
    struct vm_snapshot *known = NULL;
    size_t loaded = 0, n_known = 0;
    int rc = -1;

    if (s->backend->ops->list(s->backend->ctx, object_kind_info(OBJECT_VM)->kind_filter, deadline,
                              &list, err) < 0)
        return -1;
    for (size_t i = 0; i < list.n; i++) {
        sync_one(s, &list.items[i], deadline, &loaded, err);
        if (err->code == BERTH_RESOURCE_EXHAUSTED)
            goto out;
    }
    if (vm_registry_list(s->registry, &known, &n_known, err) < 0)
        goto out;
    for (size_t k = 0; k < n_known; k++) {
        int listed = 0;
        for (size_t i = 0; i < list.n && !listed; i++)
            listed = strcmp(list.items[i].id, known[k].container_id) == 0;
        if (!listed)
            drop_if_gone(s, &known[k], deadline);
    }
    if (loaded > 0)
        log_info("vm.sync", "containers=%zu added=%zu", list.n, loaded);
    else
        log_debug("vm.sync", "containers=%zu added=0", list.n);
    rc = 0;
out:
    vm_snapshot_list_free(known, n_known);
    backend_container_list_release(&list);
    return rc;
}

/* ---- engine events ------------------------------------------------------ */

void vm_service_on_event(struct vm_service *s, const struct backend_event *ev)
{
    struct vm_observed o = {.container_id = ev->container_id, .oom_killed = -1, .exit_code = -1};
    struct backend_container c = {0};
    struct berth_err err;
    const char *a = ev->action;

    if (strcmp(ev->kind, "vm") != 0 || ev->object_id[0] == '\0')
        return;
    berth_err_clear(&err);
    if (strcmp(a, "destroy") == 0) {
        if (vm_registry_forget(s->registry, ev->object_id, ev->container_id) == 0)
            log_info("vm.gone", "vm_id=%s container_id=%.12s reason=\"container removed\"",
                     ev->object_id, ev->container_id);
        return;
    }
    if (strcmp(a, "start") == 0 || strcmp(a, "restart") == 0) {
        o.state = VM_STATE_RUNNING;
        o.oom_killed = 0;
        /* Engine-picked host ports are only known once it runs. */
        if (s->backend->ops->inspect(s->backend->ctx, ev->container_id, berth_now_ms() + 2000, &c,
                                     &err) == 0)
            o.details = &c;
    } else if (strcmp(a, "unpause") == 0) {
        o.state = VM_STATE_RUNNING;
    } else if (strcmp(a, "pause") == 0) {
        o.state = VM_STATE_PAUSED;
    } else if (strcmp(a, "die") == 0) {
        o.state = VM_STATE_SHUTDOWN;
        o.exit_code = ev->exit_code;
        if (s->backend->ops->inspect(s->backend->ctx, ev->container_id, berth_now_ms() + 2000, &c,
                                     &err) == 0 &&
            c.oom_killed)
            o.oom_killed = 1;
    } else if (strcmp(a, "oom") == 0) {
        o.oom_killed = 1;
    } else {
        return;
    }
    if (vm_registry_observe(s->registry, ev->object_id, &o) == 0)
        log_info("vm.observed", "vm_id=%s action=%s", ev->object_id, a);
    backend_container_release(&c);
}
