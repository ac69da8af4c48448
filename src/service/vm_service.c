/* VmService handlers: each VM is one container. A handler validates its
 * input, takes the VM's operation lock through the registry, checks the
 * state machine (one table of transitions), calls the backend (never under
 * the registry mutex) and writes the result back. GetVmInfo and ListVms
 * answer from the registry alone. The container spec comes from vm_plan.c,
 * the answers from vm_view.c, the rebuild and events are vm_sync.c's. */
#include "berth/vm_service.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uuid/uuid.h>

#include "berth/base64.h"
#include "berth/clock.h"
#include "berth/lock.h"
#include "berth/log.h"
#include "berth/service_util.h"
#include "vm_internal.h"

#define LIST_DEFAULT_PAGE 100
#define VM_CUSTOMER_ID_MAX 128 /* characters of customerId (a label value and a network name) */
#define LIST_MAX_PAGE 1000
#define MAX_STOP_TIMEOUT_S 3600 /* a grace period of an hour at most, as --stop-timeout */

_Static_assert((int)VM_STATE_SHUTDOWN == (int)METAL__VMPROVISIONER__V1__VM_STATE__VM_STATE_SHUTDOWN,
               "vm_state mirrors the wire enum");

static int wait_ready(struct vm_service *s, int64_t deadline, struct berth_err *err);
static const char *state_word(enum vm_state st);
static int state_error(const char *id, enum vm_state st, const char *hint, struct berth_err *err);
static int refresh_from_backend(struct vm_service *s, struct vm_snapshot *snap, int64_t deadline);
static void snap_set_ports(struct vm_snapshot *snap, const struct backend_container *c);
static int finish_transition(struct vm_service *s, struct vm_record *rec, struct vm_snapshot *snap,
                             enum vm_state next, uint64_t stamp, struct berth_err *err);

static void remove_volumes(struct vm_service *s, struct arena *a, const char *id,
                           const VmConfig *cfg);

static int h_create(void *ctx, struct rpc_call *call, const ProtobufCMessage *in,
                    ProtobufCMessage **out, struct berth_err *err);
static int check_host_ports(const struct vm_service *s, const struct vm_plan *p,
                            struct berth_err *err);
static int check_quota(struct vm_service *s, const char *customer, struct berth_err *err);
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
    atomic_init(&s->max_vms, cfg->max_vms);
    atomic_init(&s->max_vms_per_customer, cfg->max_vms_per_customer);
    s->backend = backend;
    s->registry = registry;
    s->ready = READY_REBUILDING;
    lock_init(&s->ready_lock);
    pthread_cond_init(&s->ready_cond, NULL);
    return s;
}

void vm_service_set_limits(struct vm_service *s, int64_t max_vms, int64_t max_vms_per_customer)
{
    atomic_store(&s->max_vms, max_vms);
    atomic_store(&s->max_vms_per_customer, max_vms_per_customer);
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
    /* They read the registry only (once it is rebuilt: see
     * vm_service_is_ready), so they may answer on an event thread. */
    if (router_set_from_memory(r, "/metal.vmprovisioner.v1.VmService/GetVmInfo") < 0 ||
        router_set_from_memory(r, "/metal.vmprovisioner.v1.VmService/ListVms") < 0)
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
    /* The call's own deadline cut the wait: that is its answer. */
    if (st == READY_REBUILDING && deadline != BERTH_NO_DEADLINE &&
        berth_deadline_left_ms(deadline) == 0)
        return berth_err_set(err, BERTH_DEADLINE_EXCEEDED,
                             "deadline exceeded while the vm registry was rebuilt");
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
    if (c.health != BACKEND_HEALTH_UNKNOWN)
        snap->health = c.health;
    if (c.restart_count >= 0)
        snap->restart_count = c.restart_count;
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

/* ---- what one caller may take ---------------------------------------- */

int vm_service_parse_port_range(const char *option, const char *text, int *lo, int *hi,
                                struct berth_err *err)
{
    char *end;
    long a, b;

    errno = 0;
    a = strtol(text, &end, 10);
    if (errno == 0 && end != text && *end == '-') {
        const char *rest = end + 1;

        b = strtol(rest, &end, 10);
        if (errno == 0 && end != rest && *end == '\0' && a >= 1 && a <= b && b <= 65535) {
            *lo = (int)a;
            *hi = (int)b;
            return 0;
        }
    }
    return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                         "%s '%.32s': expected LOW-HIGH with 1 <= LOW <= HIGH <= 65535", option,
                         text);
}

/* A host port other than 0 must lie in --host-port-range. */
static int check_host_ports(const struct vm_service *s, const struct vm_plan *p,
                            struct berth_err *err)
{
    if (s->cfg.host_port_min <= 0 && s->cfg.host_port_max <= 0)
        return 0;
    for (size_t i = 0; i < p->spec.n_ports; i++) {
        int port = p->spec.ports[i].host_port;

        if (port != 0 && (port < s->cfg.host_port_min || port > s->cfg.host_port_max))
            return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                                 "field 'config.container.ports[%zu].hostPort': %d is outside "
                                 "--host-port-range %d-%d (0 lets the host pick one)",
                                 i, port, s->cfg.host_port_min, s->cfg.host_port_max);
    }
    return 0;
}

/* --max-vms and --max-vms-per-customer against the registry's VMs. Two
 * creates at once may both pass at the edge: the limits bound what a caller
 * takes, they are not exact counts. */
static int check_quota(struct vm_service *s, const char *customer, struct berth_err *err)
{
    struct vm_snapshot *list = NULL;
    size_t n = 0, mine = 0;
    int64_t max_vms = atomic_load(&s->max_vms);
    int64_t per_customer = atomic_load(&s->max_vms_per_customer);

    if (max_vms <= 0 && per_customer <= 0)
        return 0;
    if (vm_registry_list(s->registry, &list, &n, err) < 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        mine += list[i].customer_id != NULL && strcmp(list[i].customer_id, customer) == 0;
    vm_snapshot_list_free(list, n);
    if (max_vms > 0 && n >= (size_t)max_vms)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED,
                             "--max-vms %" PRId64 " reached: %zu VMs exist", max_vms, n);
    if (per_customer > 0 && mine >= (size_t)per_customer)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED,
                             "--max-vms-per-customer %" PRId64
                             " reached: customer '%.128s' has %zu VMs",
                             per_customer, customer, mine);
    return 0;
}

/* The volumes of VM `id` that its config does not keep, removed after its
 * container: one already gone, or not berthd's, is left alone; a failure is
 * logged (the container is gone by then, so the VM goes either way; a later
 * VM of the same id mounts such a volume again). */
static void remove_volumes(struct vm_service *s, struct arena *a, const char *id,
                           const VmConfig *cfg)
{
    const ContainerSpec *cs = cfg->container;
    struct backend_label must[2];

    if (cs == NULL || cs->n_volumes == 0 || s->backend->ops->remove_volume == NULL)
        return;
    vm_plan_volume_labels(id, must);
    for (size_t i = 0; i < cs->n_volumes; i++) {
        const char *name = vm_plan_volume_name(a, id, cs->volumes[i]->name);
        struct berth_err e;

        if (cs->volumes[i]->keep || name == NULL)
            continue;
        berth_err_clear(&e);
        if (s->backend->ops->remove_volume(s->backend->ctx, name, must, 2, berth_now_ms() + 10000,
                                           &e) == 0)
            log_info("vm.volume_removed", "vm_id=%s volume=%s", id, name);
        else if (e.code != BERTH_NOT_FOUND) {
            struct log_quoted lq;
            log_warn("vm.volume_left", "vm_id=%s volume=%s code=%s error=%s", id, name,
                     berth_code_name(e.code), log_quote(&lq, e.msg));
        }
    }
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
    if (strlen(req->customer_id) > VM_CUSTOMER_ID_MAX)
        return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                             "field 'customerId': %zu characters, more than %d",
                             strlen(req->customer_id), VM_CUSTOMER_ID_MAX);
    init.created_unix = (int64_t)time(NULL);
    if (vm_plan_build(call->arena, id, req->customer_id, cfg, init.created_unix, &plan, err) < 0 ||
        check_host_ports(s, &plan, err) < 0)
        return -1;
    if (plan.spec.n_volumes > 0 && s->backend->ops->remove_volume == NULL)
        return berth_err_set(err, BERTH_UNIMPLEMENTED,
                             "field 'config.container.volumes': the '%s' backend has no volumes",
                             s->backend->ops->name);
    if (wait_ready(s, call->deadline, err) < 0 || check_quota(s, req->customer_id, err) < 0)
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
        remove_volumes(s, call->arena, id, cfg);
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
    /* A start may publish on new Engine-picked host ports. The inspect
     * that reads them is newer than any news of the action itself (a
     * restart's own "die"): only news after it may outvote this call. */
    if (act == ACT_BOOT || act == ACT_REBOOT) {
        stamp = vm_registry_stamp(s->registry, rec);
        refresh_from_backend(s, &snap, call->deadline);
    }
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
    VmConfig *cfg = NULL;
    uint64_t stamp;
    int rc = -1;

    if (lifecycle_begin(s, call, req->vm_id, &rec, &snap, &stamp, err) < 0)
        return -1;
    /* Read before anything goes: the volumes to remove are the config's. */
    if (vm_view_config(call->arena, &snap, &cfg, err) < 0)
        goto out;
    if ((snap.state == VM_STATE_RUNNING || snap.state == VM_STATE_PAUSED) && !req->force) {
        state_error(snap.id, snap.state, "pass force=true to delete it", err);
        goto out;
    }
    /* The entry goes only once the Engine confirmed removal or said the
     * container is already gone. */
    /* Its destroy event is this call's doing, not news from behind our back. */
    vm_registry_set_deleting(s->registry, rec, 1);
    if (s->backend->ops->remove(s->backend->ctx, snap.container_id, call->deadline, err) < 0) {
        if (err->code != BERTH_NOT_FOUND) {
            vm_registry_set_deleting(s->registry, rec, 0);
            goto out;
        }
        berth_err_clear(err);
    }
    remove_volumes(s, call->arena, snap.id, cfg);
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

static int h_get_info(void *ctx, struct rpc_call *call, const ProtobufCMessage *in,
                      ProtobufCMessage **out, struct berth_err *err)
{
    struct vm_service *s = ctx;
    const Metal__Vmprovisioner__V1__GetVmInfoRequest *req = (const void *)in;
    struct vm_snapshot snap = {0};
    int rc;

    if (service_check_id("vmId", req->vm_id, err) < 0)
        return -1;
    if (wait_ready(s, call->deadline, err) < 0)
        return -1;
    if (vm_registry_get(s->registry, req->vm_id, &snap, err) < 0)
        return -1;
    rc = vm_view_info(call->arena, s->backend->ops->name, &snap, out, err);
    vm_snapshot_release(&snap);
    return rc;
}

static int h_list(void *ctx, struct rpc_call *call, const ProtobufCMessage *in,
                  ProtobufCMessage **out, struct berth_err *err)
{
    struct vm_service *s = ctx;
    const Metal__Vmprovisioner__V1__ListVmsRequest *req = (const void *)in;
    struct arena *a = call->arena;
    struct vm_snapshot *list = NULL;
    size_t n = 0, page = LIST_DEFAULT_PAGE;
    char *after = NULL;
    int rc;

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
    rc = vm_view_list(a, req, after, page, list, n, out, err);
    vm_snapshot_list_free(list, n);
    return rc;
}
