/* VmService against the in-memory backend: the readiness gate, every legal
 * and illegal lifecycle transition, input validation, backend failures,
 * GetVmInfo and ListVms, rebuilding the registry from the backend, and
 * lifecycle calls from many threads at once. Handlers are called the way
 * the router calls them. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/arena.h"
#include "berth/backend.h"
#include "berth/clock.h"
#include "berth/log.h"
#include "berth/memory_backend.h"
#include "berth/router.h"
#include "berth/service_util.h"
#include "berth/vm_registry.h"
#include "berth/vm_service.h"
#include "metal/vmprovisioner/v1/vmprovisioner.pb-c.h"
#include "testlib.h"

typedef Metal__Vmprovisioner__V1__VmConfig VmConfig;
typedef Metal__Vmprovisioner__V1__ContainerSpec ContainerSpec;
typedef Metal__Vmprovisioner__V1__PortMapping PortMapping;
typedef Metal__Vmprovisioner__V1__ContainerSpec__EnvEntry EnvEntry;
typedef Metal__Vmprovisioner__V1__VmConfig__MetadataEntry MetaEntry;
typedef Metal__Vmprovisioner__V1__GetVmInfoResponse InfoResponse;
typedef Metal__Vmprovisioner__V1__ListVmsResponse ListResponse;

#define SVC "/metal.vmprovisioner.v1.VmService/"

/* The helpers below also run on worker threads, and testlib's counters are
 * plain ints: their checks take this lock. */
static pthread_mutex_t check_lock = PTHREAD_MUTEX_INITIALIZER;
#define LOCKED(stmt)                                                                               \
    do {                                                                                           \
        pthread_mutex_lock(&check_lock);                                                           \
        stmt;                                                                                      \
        pthread_mutex_unlock(&check_lock);                                                         \
    } while (0)
#define MIB (1024 * 1024)

/* ---- fixture: backend + registry + service + router -------------------- */

struct fx {
    struct backend own;      /* the memory backend, when this fixture made it */
    struct backend *backend; /* own, or borrowed from another fixture */
    struct vm_registry *reg;
    struct vm_service *svc;
    struct router *router;
};

static int fx_init(struct fx *f, struct backend *shared, int64_t ready_wait_ms, int ready);
static void fx_release(struct fx *f);
static int invoke(struct fx *f, const char *method, const void *in, struct arena *a,
                  int64_t deadline, void **out, struct berth_err *err);

/* ---- a VmConfig built on the stack ------------------------------------- */

struct cfgb {
    VmConfig cfg;
    ContainerSpec cs;
    Metal__Vmprovisioner__V1__CpuConfig cpu;
    Metal__Vmprovisioner__V1__MemoryConfig mem;
    PortMapping pm[4];
    PortMapping *pmp[4];
    EnvEntry env[4];
    EnvEntry *envp[4];
    MetaEntry md[4];
    MetaEntry *mdp[4];
};

static void cfgb_init(struct cfgb *b, const char *image);
static void cfgb_meta(struct cfgb *b, const char *k, const char *v);
static void cfgb_port(struct cfgb *b, int cport, int hport, const char *proto);
static void cfgb_env(struct cfgb *b, const char *k, const char *v);

/* ---- calls ------------------------------------------------------------- */

enum op {
    OP_BOOT,
    OP_SHUTDOWN,
    OP_SHUTDOWN_FORCE,
    OP_PAUSE,
    OP_RESUME,
    OP_REBOOT,
    OP_REBOOT_FORCE,
    OP_DELETE,
    OP_DELETE_FORCE,
    N_OPS
};

static const char *const op_names[N_OPS] = {
    "BootVm",   "ShutdownVm",      "ShutdownVm(force)", "PauseVm",         "ResumeVm",
    "RebootVm", "RebootVm(force)", "DeleteVm",          "DeleteVm(force)",
};

#define GONE ((enum vm_state) - 1)

static enum berth_code call_op(struct fx *f, enum op op, const char *id, int *resp_state, char *msg,
                               size_t msgsz);
static enum berth_code create_vm(struct fx *f, const char *id, const VmConfig *cfg,
                                 const char *customer, char *id_out, size_t id_out_sz, char *msg,
                                 size_t msgsz);
static enum berth_code create_simple(struct fx *f, const char *id);
static int make_vm_in_state(struct fx *f, const char *id, enum vm_state st);
static enum vm_state vm_state_of(struct fx *f, const char *id);
static int vm_snap(struct fx *f, const char *id, struct vm_snapshot *out);
static int container_state(struct fx *f, const char *cid, char *buf, size_t n);
static const char *container_word(enum vm_state st);
static size_t registry_count(struct fx *f);
static uint8_t *pack_msg(const ProtobufCMessage *m, size_t *len);
static int same_packed(const ProtobufCMessage *a, const ProtobufCMessage *b);
static const char *info_get(const InfoResponse *r, const char *key);
static int get_info(struct fx *f, struct arena *a, const char *id, InfoResponse **out,
                    struct berth_err *err);
static int list_vms(struct fx *f, struct arena *a, const int *filter, size_t n_filter,
                    int32_t page_size, const char *token, ListResponse **out,
                    struct berth_err *err);

/* ---- the tests ---------------------------------------------------------- */

static void test_readiness_gate(void);
static void test_transitions(void);
static void test_forced_shutdown_of_stopped_container(void);
static void test_unknown_and_empty_ids(void);
static void test_validation(void);
static void test_duplicate_id(void);
static void test_create_failures(void);
static void test_create_failure_removes_nothing(void);
static void test_lifecycle_backend_failures(void);
static void test_delete_when_container_gone(void);
static void test_get_info(void);
static void test_list(void);
static void test_list_page_limits(void);
static void test_rebuild(void);
static void test_sync_and_events(void);
static void test_concurrency(void);
static void test_limits(void);

/* ======================================================================== */

static int fx_init_cfg(struct fx *f, struct backend *shared, const struct vm_service_config *cfg,
                       int ready);

static int fx_init(struct fx *f, struct backend *shared, int64_t ready_wait_ms, int ready)
{
    struct vm_service_config cfg = {.stop_timeout_s = 1, .ready_wait_ms = ready_wait_ms};

    return fx_init_cfg(f, shared, &cfg, ready);
}

static int fx_init_cfg(struct fx *f, struct backend *shared, const struct vm_service_config *cfg,
                       int ready)
{
    struct berth_err err;

    memset(f, 0, sizeof(*f));
    berth_err_clear(&err);
    if (shared != NULL) {
        f->backend = shared;
    } else {
        if (memory_backend_new(&f->own, &err) < 0)
            return -1;
        f->backend = &f->own;
    }
    f->reg = vm_registry_new();
    f->svc = f->reg ? vm_service_new(cfg, f->backend, f->reg) : NULL;
    f->router = router_new();
    if (f->svc == NULL || f->router == NULL || vm_service_register(f->svc, f->router) < 0) {
        fx_release(f);
        return -1;
    }
    if (ready)
        vm_service_set_ready(f->svc, 1);
    return 0;
}

static void fx_release(struct fx *f)
{
    router_free(f->router);
    vm_service_free(f->svc);
    vm_registry_free(f->reg);
    if (f->backend == &f->own)
        backend_destroy(&f->own);
    memset(f, 0, sizeof(*f));
}

/* Call a VmService handler as the router does. Checks the conventions every
 * handler keeps: an output of the route's type on success, no output and a
 * code on failure. */
static int invoke(struct fx *f, const char *method, const void *in, struct arena *a,
                  int64_t deadline, void **out, struct berth_err *err)
{
    char path[128];
    struct rpc_route *rt;
    struct rpc_call call = {0};
    ProtobufCMessage *o = NULL;
    int rc;

    snprintf(path, sizeof(path), SVC "%s", method);
    rt = router_find(f->router, path, strlen(path));
    if (rt == NULL || rt->handler == NULL)
        return berth_err_set(err, BERTH_UNIMPLEMENTED, "no handler for %s", path);
    call.arena = a;
    call.deadline = deadline;
    call.procedure = rt->path;
    call.request_id = "unit";
    rc = rt->handler(rt->handler_ctx, &call, (const ProtobufCMessage *)in, &o, err);
    if (rc == 0) {
        LOCKED(CHECK_MSG(o != NULL && o->descriptor == rt->output, "%s: output of the wrong type",
                         method));
        LOCKED(CHECK_MSG(err->code == BERTH_OK, "%s: success with an error set", method));
    } else {
        LOCKED(CHECK_MSG(rc == -1, "%s: returned %d", method, rc));
        LOCKED(CHECK_MSG(err->code != BERTH_OK && err->msg[0] != '\0', "%s: failure without a code",
                         method));
        LOCKED(CHECK_MSG(o == NULL, "%s: output set on failure", method));
    }
    *out = o;
    return rc;
}

static void cfgb_init(struct cfgb *b, const char *image)
{
    static const VmConfig cfg0 = METAL__VMPROVISIONER__V1__VM_CONFIG__INIT;
    static const ContainerSpec cs0 = METAL__VMPROVISIONER__V1__CONTAINER_SPEC__INIT;
    static const Metal__Vmprovisioner__V1__CpuConfig cpu0 =
        METAL__VMPROVISIONER__V1__CPU_CONFIG__INIT;
    static const Metal__Vmprovisioner__V1__MemoryConfig mem0 =
        METAL__VMPROVISIONER__V1__MEMORY_CONFIG__INIT;

    memset(b, 0, sizeof(*b));
    b->cfg = cfg0;
    b->cs = cs0;
    b->cpu = cpu0;
    b->mem = mem0;
    if (image != NULL) {
        b->cs.image = (char *)image;
        b->cfg.container = &b->cs;
    }
}

static void cfgb_meta(struct cfgb *b, const char *k, const char *v)
{
    static const MetaEntry e0 = METAL__VMPROVISIONER__V1__VM_CONFIG__METADATA_ENTRY__INIT;
    size_t i = b->cfg.n_metadata;

    b->md[i] = e0;
    b->md[i].key = (char *)k;
    b->md[i].value = (char *)v;
    b->mdp[i] = &b->md[i];
    b->cfg.metadata = b->mdp;
    b->cfg.n_metadata = i + 1;
}

static void cfgb_port(struct cfgb *b, int cport, int hport, const char *proto)
{
    static const PortMapping p0 = METAL__VMPROVISIONER__V1__PORT_MAPPING__INIT;
    size_t i = b->cs.n_ports;

    b->pm[i] = p0;
    b->pm[i].container_port = cport;
    b->pm[i].host_port = hport;
    b->pm[i].protocol = (char *)proto;
    b->pmp[i] = &b->pm[i];
    b->cs.ports = b->pmp;
    b->cs.n_ports = i + 1;
    b->cfg.container = &b->cs;
}

static void cfgb_env(struct cfgb *b, const char *k, const char *v)
{
    static const EnvEntry e0 = METAL__VMPROVISIONER__V1__CONTAINER_SPEC__ENV_ENTRY__INIT;
    size_t i = b->cs.n_env;

    b->env[i] = e0;
    b->env[i].key = (char *)k;
    b->env[i].value = (char *)v;
    b->envp[i] = &b->env[i];
    b->cs.env = b->envp;
    b->cs.n_env = i + 1;
    b->cfg.container = &b->cs;
}

/* One lifecycle call in its own arena. Returns the code; *resp_state gets
 * the response's state (or -1), msg the error message. */
static enum berth_code call_op(struct fx *f, enum op op, const char *id, int *resp_state, char *msg,
                               size_t msgsz)
{
    struct arena *a = arena_new();
    struct berth_err err;
    void *out = NULL;
    enum berth_code code;
    int rc = -1, st = -1;

    berth_err_clear(&err);
    if (a == NULL)
        return BERTH_RESOURCE_EXHAUSTED;
    switch (op) {
    case OP_BOOT: {
        Metal__Vmprovisioner__V1__BootVmRequest req =
            METAL__VMPROVISIONER__V1__BOOT_VM_REQUEST__INIT;
        req.vm_id = (char *)id;
        rc = invoke(f, "BootVm", &req, a, BERTH_NO_DEADLINE, &out, &err);
        if (rc == 0) {
            Metal__Vmprovisioner__V1__BootVmResponse *r = out;
            LOCKED(CHECK(r->success));
            st = r->state;
        }
        break;
    }
    case OP_SHUTDOWN:
    case OP_SHUTDOWN_FORCE: {
        Metal__Vmprovisioner__V1__ShutdownVmRequest req =
            METAL__VMPROVISIONER__V1__SHUTDOWN_VM_REQUEST__INIT;
        req.vm_id = (char *)id;
        req.force = op == OP_SHUTDOWN_FORCE;
        rc = invoke(f, "ShutdownVm", &req, a, BERTH_NO_DEADLINE, &out, &err);
        if (rc == 0) {
            Metal__Vmprovisioner__V1__ShutdownVmResponse *r = out;
            LOCKED(CHECK(r->success));
            st = r->state;
        }
        break;
    }
    case OP_PAUSE: {
        Metal__Vmprovisioner__V1__PauseVmRequest req =
            METAL__VMPROVISIONER__V1__PAUSE_VM_REQUEST__INIT;
        req.vm_id = (char *)id;
        rc = invoke(f, "PauseVm", &req, a, BERTH_NO_DEADLINE, &out, &err);
        if (rc == 0) {
            Metal__Vmprovisioner__V1__PauseVmResponse *r = out;
            LOCKED(CHECK(r->success));
            st = r->state;
        }
        break;
    }
    case OP_RESUME: {
        Metal__Vmprovisioner__V1__ResumeVmRequest req =
            METAL__VMPROVISIONER__V1__RESUME_VM_REQUEST__INIT;
        req.vm_id = (char *)id;
        rc = invoke(f, "ResumeVm", &req, a, BERTH_NO_DEADLINE, &out, &err);
        if (rc == 0) {
            Metal__Vmprovisioner__V1__ResumeVmResponse *r = out;
            LOCKED(CHECK(r->success));
            st = r->state;
        }
        break;
    }
    case OP_REBOOT:
    case OP_REBOOT_FORCE: {
        Metal__Vmprovisioner__V1__RebootVmRequest req =
            METAL__VMPROVISIONER__V1__REBOOT_VM_REQUEST__INIT;
        req.vm_id = (char *)id;
        req.force = op == OP_REBOOT_FORCE;
        rc = invoke(f, "RebootVm", &req, a, BERTH_NO_DEADLINE, &out, &err);
        if (rc == 0) {
            Metal__Vmprovisioner__V1__RebootVmResponse *r = out;
            LOCKED(CHECK(r->success));
            st = r->state;
        }
        break;
    }
    case OP_DELETE:
    case OP_DELETE_FORCE: {
        Metal__Vmprovisioner__V1__DeleteVmRequest req =
            METAL__VMPROVISIONER__V1__DELETE_VM_REQUEST__INIT;
        req.vm_id = (char *)id;
        req.force = op == OP_DELETE_FORCE;
        rc = invoke(f, "DeleteVm", &req, a, BERTH_NO_DEADLINE, &out, &err);
        if (rc == 0) {
            Metal__Vmprovisioner__V1__DeleteVmResponse *r = out;
            LOCKED(CHECK(r->success));
        }
        break;
    }
    case N_OPS:
        break;
    }
    code = rc == 0 ? BERTH_OK : err.code;
    if (resp_state)
        *resp_state = st;
    if (msg && msgsz)
        snprintf(msg, msgsz, "%s", err.msg);
    arena_free(a);
    return code;
}

static enum berth_code create_vm(struct fx *f, const char *id, const VmConfig *cfg,
                                 const char *customer, char *id_out, size_t id_out_sz, char *msg,
                                 size_t msgsz)
{
    Metal__Vmprovisioner__V1__CreateVmRequest req =
        METAL__VMPROVISIONER__V1__CREATE_VM_REQUEST__INIT;
    struct arena *a = arena_new();
    struct berth_err err;
    void *out = NULL;
    enum berth_code code;

    if (a == NULL)
        return BERTH_RESOURCE_EXHAUSTED;
    berth_err_clear(&err);
    req.vm_id = (char *)id;
    req.config = (VmConfig *)cfg;
    if (customer)
        req.customer_id = (char *)customer;
    if (invoke(f, "CreateVm", &req, a, BERTH_NO_DEADLINE, &out, &err) == 0) {
        Metal__Vmprovisioner__V1__CreateVmResponse *r = out;
        LOCKED(CHECK(r->state == METAL__VMPROVISIONER__V1__VM_STATE__VM_STATE_CREATED));
        if (id[0] != '\0')
            LOCKED(CHECK_STR(r->vm_id, id));
        if (id_out)
            snprintf(id_out, id_out_sz, "%s", r->vm_id);
        code = BERTH_OK;
    } else {
        code = err.code;
    }
    if (msg && msgsz)
        snprintf(msg, msgsz, "%s", err.msg);
    arena_free(a);
    return code;
}

static enum berth_code create_simple(struct fx *f, const char *id)
{
    struct cfgb b;

    cfgb_init(&b, "busybox:latest");
    return create_vm(f, id, &b.cfg, "cust-1", NULL, 0, NULL, 0);
}

static int make_vm_in_state(struct fx *f, const char *id, enum vm_state st)
{
    if (create_simple(f, id) != BERTH_OK)
        return -1;
    if (st == VM_STATE_CREATED)
        return 0;
    if (call_op(f, OP_BOOT, id, NULL, NULL, 0) != BERTH_OK)
        return -1;
    if (st == VM_STATE_PAUSED && call_op(f, OP_PAUSE, id, NULL, NULL, 0) != BERTH_OK)
        return -1;
    if (st == VM_STATE_SHUTDOWN && call_op(f, OP_SHUTDOWN, id, NULL, NULL, 0) != BERTH_OK)
        return -1;
    return vm_state_of(f, id) == st ? 0 : -1;
}

static int vm_snap(struct fx *f, const char *id, struct vm_snapshot *out)
{
    struct berth_err err;

    berth_err_clear(&err);
    return vm_registry_get(f->reg, id, out, &err);
}

/* The registry's state of a VM, or GONE. */
static enum vm_state vm_state_of(struct fx *f, const char *id)
{
    struct vm_snapshot s = {0};
    enum vm_state st;

    if (vm_snap(f, id, &s) < 0)
        return GONE;
    st = s.state;
    vm_snapshot_release(&s);
    return st;
}

/* The backend's state word of a container; -1 when it does not exist. */
static int container_state(struct fx *f, const char *cid, char *buf, size_t n)
{
    struct backend_container c = {0};
    struct berth_err err;
    int rc = -1;

    berth_err_clear(&err);
    if (f->backend->ops->inspect(f->backend->ctx, cid, BERTH_NO_DEADLINE, &c, &err) == 0) {
        snprintf(buf, n, "%s", backend_state_name(c.state));
        rc = 0;
    }
    backend_container_release(&c);
    return rc;
}

/* What the Engine calls a container in each VM state. */
static const char *container_word(enum vm_state st)
{
    switch (st) {
    case VM_STATE_CREATED:
        return "created";
    case VM_STATE_RUNNING:
        return "running";
    case VM_STATE_PAUSED:
        return "paused";
    case VM_STATE_SHUTDOWN:
        return "exited";
    default:
        return "?";
    }
}

static size_t registry_count(struct fx *f)
{
    size_t counts[5], total = 0;

    vm_registry_count_states(f->reg, counts);
    for (int i = 0; i < 5; i++)
        total += counts[i];
    return total;
}

static uint8_t *pack_msg(const ProtobufCMessage *m, size_t *len)
{
    uint8_t *buf;

    *len = protobuf_c_message_get_packed_size(m);
    buf = malloc(*len ? *len : 1);
    if (buf != NULL)
        protobuf_c_message_pack(m, buf);
    return buf;
}

static int same_packed(const ProtobufCMessage *a, const ProtobufCMessage *b)
{
    size_t la, lb;
    uint8_t *pa = pack_msg(a, &la), *pb = pack_msg(b, &lb);
    int same = pa && pb && la == lb && memcmp(pa, pb, la) == 0;

    free(pa);
    free(pb);
    return same;
}

static const char *info_get(const InfoResponse *r, const char *key)
{
    for (size_t i = 0; i < r->n_backend_info; i++)
        if (strcmp(r->backend_info[i]->key, key) == 0)
            return r->backend_info[i]->value;
    return NULL;
}

static int get_info(struct fx *f, struct arena *a, const char *id, InfoResponse **out,
                    struct berth_err *err)
{
    Metal__Vmprovisioner__V1__GetVmInfoRequest req =
        METAL__VMPROVISIONER__V1__GET_VM_INFO_REQUEST__INIT;
    void *o = NULL;

    req.vm_id = (char *)id;
    if (invoke(f, "GetVmInfo", &req, a, BERTH_NO_DEADLINE, &o, err) < 0)
        return -1;
    *out = o;
    return 0;
}

static int list_vms(struct fx *f, struct arena *a, const int *filter, size_t n_filter,
                    int32_t page_size, const char *token, ListResponse **out, struct berth_err *err)
{
    Metal__Vmprovisioner__V1__ListVmsRequest req = METAL__VMPROVISIONER__V1__LIST_VMS_REQUEST__INIT;
    Metal__Vmprovisioner__V1__VmState states[8];
    void *o = NULL;

    for (size_t i = 0; i < n_filter && i < 8; i++)
        states[i] = (Metal__Vmprovisioner__V1__VmState)filter[i];
    req.n_state_filter = n_filter;
    req.state_filter = n_filter ? states : NULL;
    req.page_size = page_size;
    if (token)
        req.page_token = (char *)token;
    if (invoke(f, "ListVms", &req, a, BERTH_NO_DEADLINE, &o, err) < 0)
        return -1;
    *out = o;
    return 0;
}

/* ======================================================================== */

struct gate_arg {
    struct fx *f;
    int rc;
    enum berth_code code;
};

static void *gate_waiter(void *arg);

static void *gate_waiter(void *arg)
{
    struct gate_arg *g = arg;
    struct arena *a = arena_new();
    struct berth_err err;
    ListResponse *r = NULL;

    berth_err_clear(&err);
    g->rc = list_vms(g->f, a, NULL, 0, 0, NULL, &r, &err);
    g->code = err.code;
    arena_free(a);
    return NULL;
}

static void test_readiness_gate(void)
{
    struct fx f;
    struct arena *a = arena_new();
    struct berth_err err;
    InfoResponse *info = NULL;
    ListResponse *list = NULL;
    int64_t t0, took;
    char msg[BERTH_ERR_MSG_MAX];

    /* Backend down: unavailable at once, whatever ready_wait_ms says. */
    CHECK(fx_init(&f, NULL, 60000, 0) == 0);
    vm_service_set_ready(f.svc, 0);
    CHECK(vm_service_is_ready(f.svc) == 0);
    t0 = berth_now_ms();
    {
        struct cfgb b;
        cfgb_init(&b, "busybox");
        CHECK(create_vm(&f, "down-1", &b.cfg, NULL, NULL, 0, msg, sizeof(msg)) ==
              BERTH_UNAVAILABLE);
    }
    CHECK(strstr(msg, "not reachable") != NULL);
    CHECK(call_op(&f, OP_BOOT, "down-1", NULL, NULL, 0) == BERTH_UNAVAILABLE);
    berth_err_clear(&err);
    CHECK(list_vms(&f, a, NULL, 0, 0, NULL, &list, &err) == -1 && err.code == BERTH_UNAVAILABLE);
    took = berth_now_ms() - t0;
    CHECK_MSG(took < 5000, "a down backend made calls wait %lld ms", (long long)took);
    CHECK(memory_backend_count(f.backend) == 0);

    /* Ready: calls go through. */
    vm_service_set_ready(f.svc, 1);
    CHECK(vm_service_is_ready(f.svc) == 1);
    CHECK(create_simple(&f, "up-1") == BERTH_OK);

    /* Rebuilding: a call waits ready_wait_ms, then unavailable. */
    fx_release(&f);
    CHECK(fx_init(&f, NULL, 60, 0) == 0);
    vm_service_set_rebuilding(f.svc);
    CHECK(vm_service_is_ready(f.svc) == 0);
    t0 = berth_now_ms();
    berth_err_clear(&err);
    CHECK(get_info(&f, a, "any", &info, &err) == -1);
    took = berth_now_ms() - t0;
    CHECK(err.code == BERTH_UNAVAILABLE);
    CHECK(strstr(err.msg, "rebuilt") != NULL);
    CHECK_MSG(took >= 60, "gave up after %lld ms, before ready_wait_ms", (long long)took);
    CHECK_MSG(took < 10000, "waited %lld ms", (long long)took);

    /* The call's own deadline bounds the wait too. */
    {
        Metal__Vmprovisioner__V1__GetVmInfoRequest req =
            METAL__VMPROVISIONER__V1__GET_VM_INFO_REQUEST__INIT;
        struct fx g;
        void *o = NULL;
        CHECK(fx_init(&g, NULL, 60000, 0) == 0);
        req.vm_id = "any";
        berth_err_clear(&err);
        t0 = berth_now_ms();
        CHECK(invoke(&g, "GetVmInfo", &req, a, berth_now_ms() + 40, &o, &err) == -1);
        took = berth_now_ms() - t0;
        /* The call's own deadline cut the wait. */
        CHECK(err.code == BERTH_DEADLINE_EXCEEDED);
        CHECK_MSG(took >= 40 && took < 10000, "deadline wait took %lld ms", (long long)took);
        fx_release(&g);
    }

    /* A waiter is let through when the rebuild finishes, well before its
     * wait runs out (whichever of the two comes first). */
    fx_release(&f);
    CHECK(fx_init(&f, NULL, 60000, 0) == 0);
    {
        struct gate_arg g = {&f, -2, BERTH_OK};
        pthread_t t;
        t0 = berth_now_ms();
        pthread_create(&t, NULL, gate_waiter, &g);
        vm_service_set_ready(f.svc, 1);
        pthread_join(t, NULL);
        took = berth_now_ms() - t0;
        CHECK(g.rc == 0);
        CHECK(g.code == BERTH_OK);
        CHECK_MSG(took < 30000, "waiter woke after %lld ms", (long long)took);
    }
    /* Back to rebuilding: calls wait again (0 ms here: unavailable at once). */
    fx_release(&f);
    CHECK(fx_init(&f, NULL, 0, 1) == 0);
    vm_service_set_rebuilding(f.svc);
    CHECK(call_op(&f, OP_PAUSE, "x", NULL, NULL, 0) == BERTH_UNAVAILABLE);
    fx_release(&f);
    arena_free(a);
}

/* Every state x every call. */
static void test_transitions(void)
{
    static const struct {
        const char *desc;
        enum vm_state from;
        enum op op;
        enum berth_code want;
        enum vm_state to; /* GONE for a deleted VM */
    } rows[] = {
        {"boot a created vm", VM_STATE_CREATED, OP_BOOT, BERTH_OK, VM_STATE_RUNNING},
        {"shutdown a created vm", VM_STATE_CREATED, OP_SHUTDOWN, BERTH_FAILED_PRECONDITION,
         VM_STATE_CREATED},
        {"force-shutdown a created vm", VM_STATE_CREATED, OP_SHUTDOWN_FORCE,
         BERTH_FAILED_PRECONDITION, VM_STATE_CREATED},
        {"pause a created vm", VM_STATE_CREATED, OP_PAUSE, BERTH_FAILED_PRECONDITION,
         VM_STATE_CREATED},
        {"resume a created vm", VM_STATE_CREATED, OP_RESUME, BERTH_FAILED_PRECONDITION,
         VM_STATE_CREATED},
        {"reboot a created vm", VM_STATE_CREATED, OP_REBOOT, BERTH_FAILED_PRECONDITION,
         VM_STATE_CREATED},
        {"force-reboot a created vm", VM_STATE_CREATED, OP_REBOOT_FORCE, BERTH_FAILED_PRECONDITION,
         VM_STATE_CREATED},
        {"delete a created vm", VM_STATE_CREATED, OP_DELETE, BERTH_OK, GONE},
        {"force-delete a created vm", VM_STATE_CREATED, OP_DELETE_FORCE, BERTH_OK, GONE},

        {"boot a running vm", VM_STATE_RUNNING, OP_BOOT, BERTH_FAILED_PRECONDITION,
         VM_STATE_RUNNING},
        {"shutdown a running vm", VM_STATE_RUNNING, OP_SHUTDOWN, BERTH_OK, VM_STATE_SHUTDOWN},
        {"force-shutdown a running vm", VM_STATE_RUNNING, OP_SHUTDOWN_FORCE, BERTH_OK,
         VM_STATE_SHUTDOWN},
        {"pause a running vm", VM_STATE_RUNNING, OP_PAUSE, BERTH_OK, VM_STATE_PAUSED},
        {"resume a running vm", VM_STATE_RUNNING, OP_RESUME, BERTH_FAILED_PRECONDITION,
         VM_STATE_RUNNING},
        {"reboot a running vm", VM_STATE_RUNNING, OP_REBOOT, BERTH_OK, VM_STATE_RUNNING},
        {"force-reboot a running vm", VM_STATE_RUNNING, OP_REBOOT_FORCE, BERTH_OK,
         VM_STATE_RUNNING},
        {"delete a running vm without force", VM_STATE_RUNNING, OP_DELETE,
         BERTH_FAILED_PRECONDITION, VM_STATE_RUNNING},
        {"force-delete a running vm", VM_STATE_RUNNING, OP_DELETE_FORCE, BERTH_OK, GONE},

        {"boot a paused vm", VM_STATE_PAUSED, OP_BOOT, BERTH_FAILED_PRECONDITION, VM_STATE_PAUSED},
        {"shutdown a paused vm", VM_STATE_PAUSED, OP_SHUTDOWN, BERTH_FAILED_PRECONDITION,
         VM_STATE_PAUSED},
        {"force-shutdown a paused vm", VM_STATE_PAUSED, OP_SHUTDOWN_FORCE,
         BERTH_FAILED_PRECONDITION, VM_STATE_PAUSED},
        {"pause a paused vm", VM_STATE_PAUSED, OP_PAUSE, BERTH_FAILED_PRECONDITION,
         VM_STATE_PAUSED},
        {"resume a paused vm", VM_STATE_PAUSED, OP_RESUME, BERTH_OK, VM_STATE_RUNNING},
        {"reboot a paused vm", VM_STATE_PAUSED, OP_REBOOT, BERTH_FAILED_PRECONDITION,
         VM_STATE_PAUSED},
        {"force-reboot a paused vm", VM_STATE_PAUSED, OP_REBOOT_FORCE, BERTH_FAILED_PRECONDITION,
         VM_STATE_PAUSED},
        {"delete a paused vm without force", VM_STATE_PAUSED, OP_DELETE, BERTH_FAILED_PRECONDITION,
         VM_STATE_PAUSED},
        {"force-delete a paused vm", VM_STATE_PAUSED, OP_DELETE_FORCE, BERTH_OK, GONE},

        {"boot a shut-down vm", VM_STATE_SHUTDOWN, OP_BOOT, BERTH_OK, VM_STATE_RUNNING},
        {"shutdown a shut-down vm", VM_STATE_SHUTDOWN, OP_SHUTDOWN, BERTH_FAILED_PRECONDITION,
         VM_STATE_SHUTDOWN},
        {"force-shutdown a shut-down vm", VM_STATE_SHUTDOWN, OP_SHUTDOWN_FORCE,
         BERTH_FAILED_PRECONDITION, VM_STATE_SHUTDOWN},
        {"pause a shut-down vm", VM_STATE_SHUTDOWN, OP_PAUSE, BERTH_FAILED_PRECONDITION,
         VM_STATE_SHUTDOWN},
        {"resume a shut-down vm", VM_STATE_SHUTDOWN, OP_RESUME, BERTH_FAILED_PRECONDITION,
         VM_STATE_SHUTDOWN},
        {"reboot a shut-down vm", VM_STATE_SHUTDOWN, OP_REBOOT, BERTH_FAILED_PRECONDITION,
         VM_STATE_SHUTDOWN},
        {"force-reboot a shut-down vm", VM_STATE_SHUTDOWN, OP_REBOOT_FORCE,
         BERTH_FAILED_PRECONDITION, VM_STATE_SHUTDOWN},
        {"delete a shut-down vm", VM_STATE_SHUTDOWN, OP_DELETE, BERTH_OK, GONE},
        {"force-delete a shut-down vm", VM_STATE_SHUTDOWN, OP_DELETE_FORCE, BERTH_OK, GONE},
    };
    struct fx f;
    size_t covered[5][N_OPS] = {{0}};

    CHECK(fx_init(&f, NULL, 0, 1) == 0);
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const char *d = rows[i].desc;
        struct vm_snapshot before = {0}, after = {0};
        char id[32], cst_before[32] = "", cst_after[32] = "", msg[BERTH_ERR_MSG_MAX];
        size_t containers;
        enum berth_code code;
        int st = -1;

        covered[rows[i].from][rows[i].op]++;
        snprintf(id, sizeof(id), "sm-%02zu", i);
        if (make_vm_in_state(&f, id, rows[i].from) < 0 || vm_snap(&f, id, &before) < 0) {
            CHECK_MSG(0, "%s: setup failed", d);
            continue;
        }
        CHECK_MSG(container_state(&f, before.container_id, cst_before, sizeof(cst_before)) == 0 &&
                      strcmp(cst_before, container_word(rows[i].from)) == 0,
                  "%s: container is '%s' before", d, cst_before);
        containers = memory_backend_count(f.backend);

        code = call_op(&f, rows[i].op, id, &st, msg, sizeof(msg));
        CHECK_MSG(code == rows[i].want, "%s: %s answered %s (%s), want %s", d, op_names[rows[i].op],
                  berth_code_name(code), msg, berth_code_name(rows[i].want));
        if (rows[i].to == GONE) {
            CHECK_MSG(vm_state_of(&f, id) == GONE, "%s: still in the registry", d);
            CHECK_MSG(container_state(&f, before.container_id, cst_after, sizeof(cst_after)) < 0,
                      "%s: container left behind", d);
            CHECK_MSG(memory_backend_count(f.backend) == containers - 1, "%s", d);
        } else {
            CHECK_MSG(vm_snap(&f, id, &after) == 0, "%s: vm vanished", d);
            CHECK_MSG(after.state == rows[i].to, "%s: state %s, want %s", d,
                      vm_state_name(after.state), vm_state_name(rows[i].to));
            CHECK_MSG(container_state(&f, after.container_id, cst_after, sizeof(cst_after)) == 0 &&
                          strcmp(cst_after, container_word(rows[i].to)) == 0,
                      "%s: container is '%s' after", d, cst_after);
            CHECK_MSG(memory_backend_count(f.backend) == containers, "%s", d);
            if (code == BERTH_OK && rows[i].op != OP_DELETE && rows[i].op != OP_DELETE_FORCE)
                CHECK_MSG(st == (int)rows[i].to, "%s: response state %d", d, st);
            if (rows[i].to == VM_STATE_RUNNING)
                CHECK_MSG(after.started_unix_ms > 0, "%s: no start time", d);
            if (rows[i].to == VM_STATE_SHUTDOWN || rows[i].to == VM_STATE_CREATED)
                CHECK_MSG(after.started_unix_ms == 0, "%s: start time kept", d);
        }
        if (rows[i].want != BERTH_OK) {
            /* A refused call changes nothing, and says why. */
            CHECK_MSG(after.id != NULL && after.state == before.state &&
                          after.modified_unix == before.modified_unix &&
                          after.started_unix_ms == before.started_unix_ms &&
                          strcmp(after.container_id, before.container_id) == 0,
                      "%s: record changed", d);
            CHECK_MSG(strcmp(cst_before, cst_after) == 0, "%s: container went %s -> %s", d,
                      cst_before, cst_after);
            CHECK_MSG(strstr(msg, id) != NULL, "%s: '%s' does not name the vm", d, msg);
            CHECK_MSG(strstr(msg, vm_state_name(rows[i].from) + strlen("VM_STATE_")) != NULL,
                      "%s: '%s' does not name the state", d, msg);
        }
        vm_snapshot_release(&before);
        vm_snapshot_release(&after);
    }
    /* The table is complete: every state met every call exactly once. */
    for (int s = VM_STATE_CREATED; s <= VM_STATE_SHUTDOWN; s++)
        for (int o = 0; o < N_OPS; o++)
            CHECK_MSG(covered[s][o] == 1, "%s x %s: %zu rows", vm_state_name((enum vm_state)s),
                      op_names[o], covered[s][o]);
    fx_release(&f);
}

/* The container stopped by itself (behind berthd's back) while the registry
 * still says RUNNING: a forced shutdown is a shutdown done, not an error. */
static void test_forced_shutdown_of_stopped_container(void)
{
    struct fx f;
    struct vm_snapshot s = {0};
    int st = -1;

    CHECK(fx_init(&f, NULL, 0, 1) == 0);
    CHECK(make_vm_in_state(&f, "died", VM_STATE_RUNNING) == 0);
    CHECK(vm_snap(&f, "died", &s) == 0);
    CHECK(memory_backend_set_state(f.backend, s.container_id, BACKEND_STATE_EXITED) == 0);
    CHECK(call_op(&f, OP_SHUTDOWN_FORCE, "died", &st, NULL, 0) == BERTH_OK);
    CHECK(st == VM_STATE_SHUTDOWN);
    CHECK(vm_state_of(&f, "died") == VM_STATE_SHUTDOWN);
    /* And a killed-but-still-running failure is an error that changes nothing. */
    CHECK(make_vm_in_state(&f, "alive", VM_STATE_RUNNING) == 0);
    memory_backend_fail_next(f.backend, "kill", 1, BERTH_FAILED_PRECONDITION);
    CHECK(call_op(&f, OP_SHUTDOWN_FORCE, "alive", NULL, NULL, 0) == BERTH_FAILED_PRECONDITION);
    CHECK(vm_state_of(&f, "alive") == VM_STATE_RUNNING);
    vm_snapshot_release(&s);
    fx_release(&f);
}

static void test_unknown_and_empty_ids(void)
{
    struct fx f;
    struct arena *a = arena_new();
    struct berth_err err;
    InfoResponse *info = NULL;
    char msg[BERTH_ERR_MSG_MAX];

    CHECK(fx_init(&f, NULL, 0, 1) == 0);
    for (int o = 0; o < N_OPS; o++) {
        CHECK_MSG(call_op(&f, (enum op)o, "ghost", NULL, msg, sizeof(msg)) == BERTH_NOT_FOUND,
                  "%s on an unknown id", op_names[o]);
        CHECK_MSG(strstr(msg, "'ghost'") != NULL, "%s: '%s'", op_names[o], msg);
        CHECK_MSG(call_op(&f, (enum op)o, "", NULL, msg, sizeof(msg)) == BERTH_INVALID_ARGUMENT,
                  "%s on an empty id", op_names[o]);
        CHECK_MSG(strstr(msg, "'vmId'") != NULL, "%s: '%s'", op_names[o], msg);
    }
    berth_err_clear(&err);
    CHECK(get_info(&f, a, "ghost", &info, &err) == -1 && err.code == BERTH_NOT_FOUND);
    berth_err_clear(&err);
    CHECK(get_info(&f, a, "", &info, &err) == -1 && err.code == BERTH_INVALID_ARGUMENT);
    CHECK(strstr(err.msg, "'vmId'") != NULL);
    /* A negative grace period, or one over an hour, is refused before
     * anything happens. */
    CHECK(make_vm_in_state(&f, "t", VM_STATE_RUNNING) == 0);
    {
        Metal__Vmprovisioner__V1__ShutdownVmRequest req =
            METAL__VMPROVISIONER__V1__SHUTDOWN_VM_REQUEST__INIT;
        static const int32_t bad[] = {-1, 3601, INT32_MAX};
        void *o = NULL;
        req.vm_id = "t";
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            req.timeout_seconds = bad[i];
            berth_err_clear(&err);
            CHECK(invoke(&f, "ShutdownVm", &req, a, BERTH_NO_DEADLINE, &o, &err) == -1);
            CHECK_MSG(err.code == BERTH_INVALID_ARGUMENT, "timeoutSeconds %d", bad[i]);
            CHECK(strstr(err.msg, "'timeoutSeconds'") != NULL);
            CHECK(vm_state_of(&f, "t") == VM_STATE_RUNNING);
        }
        req.timeout_seconds = 5;
        berth_err_clear(&err);
        CHECK(invoke(&f, "ShutdownVm", &req, a, BERTH_NO_DEADLINE, &o, &err) == 0);
        CHECK(vm_state_of(&f, "t") == VM_STATE_SHUTDOWN);
    }
    fx_release(&f);
    arena_free(a);
}

/* CreateVm input rules, each with the field it must name. */
struct vrow {
    const char *desc;
    const char *id;
    const char *image;      /* NULL: no container spec */
    const char *meta[3][2]; /* metadata entries */
    int port;               /* 1: one container port below */
    int cport, hport;
    const char *proto;
    const char *env_k, *env_v; /* container env entry, when env_k */
    int has_cpu, vcpu;
    int has_mem;
    int64_t mem;
    enum berth_code want;
    const char *want_msg;   /* substring of the error */
    const char *want_image; /* for successes: backend_info image */
    size_t want_ports;      /* for successes: port mappings */
};

static void test_validation(void)
{
    static const char id63[] = "a23456789012345678901234567890123456789012345678901234567890123";
    static const char id64[] = "a234567890123456789012345678901234567890123456789012345678901234";
    static const struct vrow rows[] = {
        {"empty id: a uuid is generated",
         "",
         "busybox",
         {{0}},
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         BERTH_OK,
         NULL,
         "busybox",
         0},
        {"63 characters",
         id63,
         "busybox",
         {{0}},
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         BERTH_OK,
         NULL,
         "busybox",
         0},
        {"one character",
         "x",
         "busybox",
         {{0}},
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         BERTH_OK,
         NULL,
         "busybox",
         0},
        {"every allowed character",
         "A9_.-z",
         "busybox",
         {{0}},
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         BERTH_OK,
         NULL,
         "busybox",
         0},
        {"64 characters",
         id64,
         "busybox",
         {{0}},
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         BERTH_INVALID_ARGUMENT,
         "field 'vmId'",
         NULL,
         0},
        {"leading '-'",
         "-web",
         "busybox",
         {{0}},
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         BERTH_INVALID_ARGUMENT,
         "field 'vmId'",
         NULL,
         0},
        {"leading '.'",
         ".web",
         "busybox",
         {{0}},
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         BERTH_INVALID_ARGUMENT,
         "field 'vmId'",
         NULL,
         0},
        {"leading '_'",
         "_web",
         "busybox",
         {{0}},
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         BERTH_INVALID_ARGUMENT,
         "field 'vmId'",
         NULL,
         0},
        {"a slash",
         "web/1",
         "busybox",
         {{0}},
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         BERTH_INVALID_ARGUMENT,
         "field 'vmId'",
         NULL,
         0},
        {"a space",
         "web 1",
         "busybox",
         {{0}},
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         BERTH_INVALID_ARGUMENT,
         "field 'vmId'",
         NULL,
         0},
        {"a colon",
         "web:1",
         "busybox",
         {{0}},
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         BERTH_INVALID_ARGUMENT,
         "field 'vmId'",
         NULL,
         0},
        {"a newline",
         "web\n1",
         "busybox",
         {{0}},
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         BERTH_INVALID_ARGUMENT,
         "field 'vmId'",
         NULL,
         0},
        {"unicode",
         "caf\xc3\xa9",
         "busybox",
         {{0}},
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         BERTH_INVALID_ARGUMENT,
         "field 'vmId'",
         NULL,
         0},
        {"unicode first",
         "\xc3\xa9t\xc3\xa9",
         "busybox",
         {{0}},
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         BERTH_INVALID_ARGUMENT,
         "field 'vmId'",
         NULL,
         0},

        {"no config at all",
         "v-noimg1",
         NULL,
         {{0}},
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         BERTH_INVALID_ARGUMENT,
         "'config.container.image'",
         NULL,
         0},
        {"container without an image",
         "v-noimg2",
         "",
         {{0}},
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         BERTH_INVALID_ARGUMENT,
         "'config.container.image'",
         NULL,
         0},
        {"empty docker_image metadata",
         "v-noimg3",
         NULL,
         {{"docker_image", ""}},
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         BERTH_INVALID_ARGUMENT,
         "'config.container.image'",
         NULL,
         0},
        {"image from metadata docker_image",
         "v-meta-img",
         NULL,
         {{"docker_image", "nginx:1"}},
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         BERTH_OK,
         NULL,
         "nginx:1",
         0},
        {"empty container image falls back to metadata",
         "v-meta-img2",
         "",
         {{"docker_image", "nginx:2"}},
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         BERTH_OK,
         NULL,
         "nginx:2",
         0},
        {"container image wins over metadata",
         "v-img-wins",
         "alpine:3",
         {{"docker_image", "nginx:1"}},
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         BERTH_OK,
         NULL,
         "alpine:3",
         0},

        {"exposed_ports list",
         "v-ep-ok",
         "busybox",
         {{"exposed_ports", "8080/tcp,53/udp"}},
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         BERTH_OK,
         NULL,
         "busybox",
         2},
        {"exposed_ports without protocol",
         "v-ep-ok2",
         "busybox",
         {{"exposed_ports", "80,443/tcp,65535"}},
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         BERTH_OK,
         NULL,
         "busybox",
         3},
        {"exposed_ports empty",
         "v-ep-empty",
         "busybox",
         {{"exposed_ports", ""}},
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         BERTH_OK,
         NULL,
         "busybox",
         0},
        {"exposed_ports not a number",
         "v-ep-x",
         "busybox",
         {{"exposed_ports", "x"}},
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         BERTH_INVALID_ARGUMENT,
         "'config.metadata[\"exposed_ports\"]'",
         NULL,
         0},
        {"exposed_ports too big",
         "v-ep-big",
         "busybox",
         {{"exposed_ports", "70000"}},
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         BERTH_INVALID_ARGUMENT,
         "'config.metadata[\"exposed_ports\"]'",
         NULL,
         0},
        {"exposed_ports zero",
         "v-ep-zero",
         "busybox",
         {{"exposed_ports", "0/tcp"}},
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         BERTH_INVALID_ARGUMENT,
         "'config.metadata[\"exposed_ports\"]'",
         NULL,
         0},
        {"exposed_ports sctp",
         "v-ep-sctp",
         "busybox",
         {{"exposed_ports", "80/sctp"}},
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         BERTH_INVALID_ARGUMENT,
         "'config.metadata[\"exposed_ports\"]'",
         NULL,
         0},
        {"exposed_ports empty item",
         "v-ep-hole",
         "busybox",
         {{"exposed_ports", "80,,53"}},
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         BERTH_INVALID_ARGUMENT,
         "'config.metadata[\"exposed_ports\"]'",
         NULL,
         0},
        {"exposed_ports bad second item",
         "v-ep-2nd",
         "busybox",
         {{"exposed_ports", "8080/tcp,53/x"}},
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         BERTH_INVALID_ARGUMENT,
         "'config.metadata[\"exposed_ports\"]'",
         NULL,
         0},

        {"env_vars list",
         "v-ev-ok",
         "busybox",
         {{"env_vars", "A=1,B=two=2,C="}},
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         BERTH_OK,
         NULL,
         "busybox",
         0},
        {"env_vars without '='",
         "v-ev-noeq",
         "busybox",
         {{"env_vars", "A"}},
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         BERTH_INVALID_ARGUMENT,
         "'config.metadata[\"env_vars\"]'",
         NULL,
         0},
        {"env_vars empty name",
         "v-ev-noname",
         "busybox",
         {{"env_vars", "A=1,=2"}},
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         BERTH_INVALID_ARGUMENT,
         "'config.metadata[\"env_vars\"]'",
         NULL,
         0},
        {"container env name with '='",
         "v-env-eq",
         "busybox",
         {{0}},
         0,
         0,
         0,
         0,
         "A=B",
         "1",
         0,
         0,
         0,
         0,
         BERTH_INVALID_ARGUMENT,
         "'config.container.env[",
         NULL,
         0},
        {"container env empty name",
         "v-env-empty",
         "busybox",
         {{0}},
         0,
         0,
         0,
         0,
         "",
         "1",
         0,
         0,
         0,
         0,
         BERTH_INVALID_ARGUMENT,
         "'config.container.env[",
         NULL,
         0},
        {"container env value with anything",
         "v-env-ok",
         "busybox",
         {{0}},
         0,
         0,
         0,
         0,
         "K",
         "a=b,c\nd",
         0,
         0,
         0,
         0,
         BERTH_OK,
         NULL,
         "busybox",
         0},

        {"containerPort 0",
         "v-p-c0",
         "busybox",
         {{0}},
         1,
         0,
         0,
         "tcp",
         0,
         0,
         0,
         0,
         0,
         0,
         BERTH_INVALID_ARGUMENT,
         "'config.container.ports[0].containerPort'",
         NULL,
         0},
        {"containerPort 65536",
         "v-p-cbig",
         "busybox",
         {{0}},
         1,
         65536,
         0,
         "tcp",
         0,
         0,
         0,
         0,
         0,
         0,
         BERTH_INVALID_ARGUMENT,
         "'config.container.ports[0].containerPort'",
         NULL,
         0},
        {"hostPort -1",
         "v-p-hneg",
         "busybox",
         {{0}},
         1,
         80,
         -1,
         "tcp",
         0,
         0,
         0,
         0,
         0,
         0,
         BERTH_INVALID_ARGUMENT,
         "'config.container.ports[0].hostPort'",
         NULL,
         0},
        {"hostPort 65536",
         "v-p-hbig",
         "busybox",
         {{0}},
         1,
         80,
         65536,
         "tcp",
         0,
         0,
         0,
         0,
         0,
         0,
         BERTH_INVALID_ARGUMENT,
         "'config.container.ports[0].hostPort'",
         NULL,
         0},
        {"protocol sctp",
         "v-p-sctp",
         "busybox",
         {{0}},
         1,
         80,
         0,
         "sctp",
         0,
         0,
         0,
         0,
         0,
         0,
         BERTH_INVALID_ARGUMENT,
         "'config.container.ports[0].protocol'",
         NULL,
         0},
        {"protocol TCP in capitals",
         "v-p-caps",
         "busybox",
         {{0}},
         1,
         80,
         0,
         "TCP",
         0,
         0,
         0,
         0,
         0,
         0,
         BERTH_INVALID_ARGUMENT,
         "'config.container.ports[0].protocol'",
         NULL,
         0},
        {"protocol empty means tcp",
         "v-p-empty",
         "busybox",
         {{0}},
         1,
         80,
         0,
         "",
         0,
         0,
         0,
         0,
         0,
         0,
         BERTH_OK,
         NULL,
         "busybox",
         1},
        {"ports 1 and 65535 with a fixed host port",
         "v-p-edge",
         "busybox",
         {{0}},
         1,
         65535,
         65535,
         "udp",
         0,
         0,
         0,
         0,
         0,
         0,
         BERTH_OK,
         NULL,
         "busybox",
         1},
        {"container ports win over exposed_ports",
         "v-p-wins",
         "busybox",
         {{"exposed_ports", "not a list"}},
         1,
         80,
         0,
         "tcp",
         0,
         0,
         0,
         0,
         0,
         0,
         BERTH_OK,
         NULL,
         "busybox",
         1},

        {"negative vcpuCount",
         "v-cpu-neg",
         "busybox",
         {{0}},
         0,
         0,
         0,
         0,
         0,
         0,
         1,
         -1,
         0,
         0,
         BERTH_INVALID_ARGUMENT,
         "'config.cpu.vcpuCount'",
         NULL,
         0},
        {"vcpuCount 0",
         "v-cpu-0",
         "busybox",
         {{0}},
         0,
         0,
         0,
         0,
         0,
         0,
         1,
         0,
         0,
         0,
         BERTH_OK,
         NULL,
         "busybox",
         0},
        {"negative sizeBytes",
         "v-mem-neg",
         "busybox",
         {{0}},
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         1,
         -1,
         BERTH_INVALID_ARGUMENT,
         "'config.memory.sizeBytes'",
         NULL,
         0},
        {"sizeBytes below 6 MiB",
         "v-mem-small",
         "busybox",
         {{0}},
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         1,
         6 * MIB - 1,
         BERTH_INVALID_ARGUMENT,
         "'config.memory.sizeBytes'",
         NULL,
         0},
        {"sizeBytes 1",
         "v-mem-1",
         "busybox",
         {{0}},
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         1,
         1,
         BERTH_INVALID_ARGUMENT,
         "'config.memory.sizeBytes'",
         NULL,
         0},
        {"sizeBytes exactly 6 MiB",
         "v-mem-6",
         "busybox",
         {{0}},
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         1,
         6 * MIB,
         BERTH_OK,
         NULL,
         "busybox",
         0},
        {"sizeBytes 0: no limit",
         "v-mem-0",
         "busybox",
         {{0}},
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         0,
         1,
         0,
         BERTH_OK,
         NULL,
         "busybox",
         0},
    };
    struct fx f;

    CHECK(fx_init(&f, NULL, 0, 1) == 0);
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const struct vrow *r = &rows[i];
        struct cfgb b;
        char got_id[80] = "", msg[BERTH_ERR_MSG_MAX] = "";
        enum berth_code code;

        cfgb_init(&b, r->image);
        for (int m = 0; m < 3 && r->meta[m][0]; m++)
            cfgb_meta(&b, r->meta[m][0], r->meta[m][1]);
        if (r->port)
            cfgb_port(&b, r->cport, r->hport, r->proto);
        if (r->env_k)
            cfgb_env(&b, r->env_k, r->env_v);
        if (r->has_cpu) {
            b.cpu.vcpu_count = r->vcpu;
            b.cfg.cpu = &b.cpu;
        }
        if (r->has_mem) {
            b.mem.size_bytes = r->mem;
            b.cfg.memory = &b.mem;
        }
        code = create_vm(&f, r->id, r->image || r->meta[0][0] ? &b.cfg : NULL, "c", got_id,
                         sizeof(got_id), msg, sizeof(msg));
        CHECK_MSG(code == r->want, "%s: %s (%s), want %s", r->desc, berth_code_name(code), msg,
                  berth_code_name(r->want));
        if (r->want != BERTH_OK) {
            CHECK_MSG(r->want_msg == NULL || strstr(msg, r->want_msg) != NULL,
                      "%s: '%s' lacks \"%s\"", r->desc, msg, r->want_msg);
            CHECK_MSG(memory_backend_count(f.backend) == 0, "%s: a container was made", r->desc);
            CHECK_MSG(registry_count(&f) == 0, "%s: a vm was recorded", r->desc);
            continue;
        }
        if (code != BERTH_OK)
            continue;
        if (r->id[0] == '\0') {
            /* A random (version 4) uuid in lower case. */
            int ok = strlen(got_id) == 36 && got_id[14] == '4';
            for (int k = 0; k < 36 && ok; k++)
                ok = (k == 8 || k == 13 || k == 18 || k == 23)
                         ? got_id[k] == '-'
                         : (got_id[k] >= '0' && got_id[k] <= '9') ||
                               (got_id[k] >= 'a' && got_id[k] <= 'f');
            CHECK_MSG(ok, "%s: '%s' is not a uuid", r->desc, got_id);
        }
        {
            struct arena *a = arena_new();
            struct berth_err err;
            InfoResponse *info = NULL;
            berth_err_clear(&err);
            CHECK_MSG(get_info(&f, a, got_id, &info, &err) == 0, "%s: %s", r->desc, err.msg);
            if (info != NULL) {
                const char *img = info_get(info, "image");
                CHECK_MSG(img && strcmp(img, r->want_image) == 0, "%s: image '%s'", r->desc,
                          img ? img : "(none)");
                CHECK_MSG(info->network_info &&
                              info->network_info->n_port_mappings == r->want_ports,
                          "%s: %zu ports", r->desc,
                          info->network_info ? info->network_info->n_port_mappings : 0);
            }
            arena_free(a);
        }
        CHECK_MSG(memory_backend_count(f.backend) == 1, "%s", r->desc);
        CHECK_MSG(call_op(&f, OP_DELETE, got_id, NULL, NULL, 0) == BERTH_OK, "%s: delete", r->desc);
        CHECK_MSG(memory_backend_count(f.backend) == 0 && registry_count(&f) == 0, "%s", r->desc);
    }
    fx_release(&f);
}

static void test_duplicate_id(void)
{
    struct fx f;
    struct vm_snapshot s = {0};
    char msg[BERTH_ERR_MSG_MAX];
    struct cfgb b;

    CHECK(fx_init(&f, NULL, 0, 1) == 0);
    CHECK(make_vm_in_state(&f, "dup", VM_STATE_RUNNING) == 0);
    CHECK(vm_snap(&f, "dup", &s) == 0);
    cfgb_init(&b, "other:image");
    CHECK(create_vm(&f, "dup", &b.cfg, NULL, NULL, 0, msg, sizeof(msg)) == BERTH_ALREADY_EXISTS);
    CHECK(strstr(msg, "'dup'") != NULL);
    /* The first VM is untouched. */
    {
        struct vm_snapshot t = {0};
        CHECK(vm_snap(&f, "dup", &t) == 0);
        CHECK(t.state == VM_STATE_RUNNING);
        CHECK_STR(t.container_id, s.container_id);
        CHECK_STR(t.image, "busybox:latest");
        vm_snapshot_release(&t);
    }
    CHECK(memory_backend_count(f.backend) == 1);
    vm_snapshot_release(&s);
    fx_release(&f);
}

static void test_create_failures(void)
{
    static const struct {
        const char *desc;
        enum berth_code injected;
    } rows[] = {
        {"engine unreachable", BERTH_UNAVAILABLE},           {"image missing", BERTH_NOT_FOUND},
        {"deadline passed", BERTH_DEADLINE_EXCEEDED},        {"engine error", BERTH_INTERNAL},
        {"engine refused the spec", BERTH_INVALID_ARGUMENT},
    };
    struct fx f;
    char msg[BERTH_ERR_MSG_MAX];

    CHECK(fx_init(&f, NULL, 0, 1) == 0);
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        memory_backend_fail_next(f.backend, "create", 1, rows[i].injected);
        CHECK_MSG(create_vm(&f, "cf", NULL, NULL, NULL, 0, msg, sizeof(msg)) ==
                      BERTH_INVALID_ARGUMENT,
                  "%s: a config-less create must fail validation first", rows[i].desc);
        {
            struct cfgb b;
            cfgb_init(&b, "busybox");
            CHECK_MSG(create_vm(&f, "cf", &b.cfg, NULL, NULL, 0, msg, sizeof(msg)) ==
                          rows[i].injected,
                      "%s: %s", rows[i].desc, msg);
        }
        CHECK_MSG(strstr(msg, "injected create failure") != NULL, "%s: '%s'", rows[i].desc, msg);
        CHECK_MSG(vm_state_of(&f, "cf") == GONE, "%s: vm recorded", rows[i].desc);
        CHECK_MSG(registry_count(&f) == 0, "%s", rows[i].desc);
        CHECK_MSG(memory_backend_count(f.backend) == 0, "%s: container left", rows[i].desc);
    }
    /* The id is free afterwards. */
    CHECK(create_simple(&f, "cf") == BERTH_OK);
    CHECK(memory_backend_count(f.backend) == 1);

    /* A container already named berth-vm-<id> that is not ours: the create
     * fails with already_exists and that container is not touched. */
    {
        struct backend_spec spec = {0};
        struct berth_err err;
        char *cid = NULL, cst[32];
        spec.name = "berth-vm-taken";
        spec.image = "someone/else";
        berth_err_clear(&err);
        CHECK(f.backend->ops->create(f.backend->ctx, &spec, BERTH_NO_DEADLINE, &cid, &err) == 0);
        CHECK(create_simple(&f, "taken") == BERTH_ALREADY_EXISTS);
        CHECK(vm_state_of(&f, "taken") == GONE);
        CHECK(memory_backend_count(f.backend) == 2);
        CHECK(cid && container_state(&f, cid, cst, sizeof(cst)) == 0);
        free(cid);
    }
    fx_release(&f);
}

/* A backend whose create makes the container and then reports a failure (a
 * deadline that passed while the Engine worked). Removing what an uncertain
 * create made is the backend's job (it alone can tell its container from one
 * that merely has the name): CreateVm removes nothing by name and keeps no
 * entry. Delegates to a memory backend and counts removals. */
static int flaky_removals;
static int flaky_create(void *ctx, const struct backend_spec *spec, int64_t deadline, char **id_out,
                        struct berth_err *err);
static int flaky_remove(void *ctx, const char *id, int64_t deadline, struct berth_err *err);

static int flaky_create(void *ctx, const struct backend_spec *spec, int64_t deadline, char **id_out,
                        struct berth_err *err)
{
    struct backend *inner = ctx;
    char *id = NULL;

    (void)id_out;
    if (inner->ops->create(inner->ctx, spec, deadline, &id, err) < 0)
        return -1;
    free(id);
    return berth_err_set(err, BERTH_DEADLINE_EXCEEDED, "deadline passed during create");
}

static int flaky_remove(void *ctx, const char *id, int64_t deadline, struct berth_err *err)
{
    struct backend *inner = ctx;

    flaky_removals++;
    return inner->ops->remove(inner->ctx, id, deadline, err);
}

static void test_create_failure_removes_nothing(void)
{
    static const struct backend_ops flaky_ops = {
        .name = "flaky",
        .create = flaky_create,
        .remove = flaky_remove,
    };
    struct backend mem = {0};
    struct backend flaky;
    struct fx f;
    struct berth_err err;
    char msg[BERTH_ERR_MSG_MAX];

    berth_err_clear(&err);
    CHECK(memory_backend_new(&mem, &err) == 0);
    flaky.ops = &flaky_ops;
    flaky.ctx = &mem;
    CHECK(fx_init(&f, &flaky, 0, 1) == 0);
    flaky_removals = 0;
    CHECK(create_simple(&f, "half") == BERTH_DEADLINE_EXCEEDED);
    CHECK(create_vm(&f, "half", NULL, NULL, NULL, 0, msg, sizeof(msg)) == BERTH_INVALID_ARGUMENT);
    CHECK(flaky_removals == 0);
    CHECK(memory_backend_count(&mem) == 1);
    CHECK(vm_state_of(&f, "half") == GONE);
    CHECK(registry_count(&f) == 0);
    fx_release(&f);
    backend_destroy(&mem);
}

/* A backend failure on a legal call: the error comes back and nothing
 * changes, in the registry or the container. */
static void test_lifecycle_backend_failures(void)
{
    static const struct {
        const char *desc;
        enum vm_state from;
        enum op op;
        const char *backend_op;
        enum berth_code injected;
    } rows[] = {
        {"start fails", VM_STATE_CREATED, OP_BOOT, "start", BERTH_UNAVAILABLE},
        {"start fails from shutdown", VM_STATE_SHUTDOWN, OP_BOOT, "start", BERTH_INTERNAL},
        {"stop fails", VM_STATE_RUNNING, OP_SHUTDOWN, "stop", BERTH_DEADLINE_EXCEEDED},
        {"kill fails", VM_STATE_RUNNING, OP_SHUTDOWN_FORCE, "kill", BERTH_UNAVAILABLE},
        {"pause fails", VM_STATE_RUNNING, OP_PAUSE, "pause", BERTH_UNAVAILABLE},
        {"unpause fails", VM_STATE_PAUSED, OP_RESUME, "unpause", BERTH_UNAVAILABLE},
        {"restart fails", VM_STATE_RUNNING, OP_REBOOT, "restart", BERTH_UNAVAILABLE},
        {"forced restart fails", VM_STATE_RUNNING, OP_REBOOT_FORCE, "restart", BERTH_INTERNAL},
        {"remove fails", VM_STATE_SHUTDOWN, OP_DELETE, "remove", BERTH_UNAVAILABLE},
        {"forced remove fails", VM_STATE_RUNNING, OP_DELETE_FORCE, "remove",
         BERTH_DEADLINE_EXCEEDED},
    };
    struct fx f;

    CHECK(fx_init(&f, NULL, 0, 1) == 0);
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const char *d = rows[i].desc;
        struct vm_snapshot before = {0}, after = {0};
        char id[32], cb[32] = "", ca[32] = "", msg[BERTH_ERR_MSG_MAX];
        enum berth_code code;

        snprintf(id, sizeof(id), "bf-%02zu", i);
        if (make_vm_in_state(&f, id, rows[i].from) < 0 || vm_snap(&f, id, &before) < 0) {
            CHECK_MSG(0, "%s: setup", d);
            continue;
        }
        CHECK(container_state(&f, before.container_id, cb, sizeof(cb)) == 0);
        memory_backend_fail_next(f.backend, rows[i].backend_op, 1, rows[i].injected);
        code = call_op(&f, rows[i].op, id, NULL, msg, sizeof(msg));
        CHECK_MSG(code == rows[i].injected, "%s: %s (%s)", d, berth_code_name(code), msg);
        CHECK_MSG(vm_snap(&f, id, &after) == 0, "%s: entry gone", d);
        CHECK_MSG(after.state == before.state && after.modified_unix == before.modified_unix,
                  "%s: state %s", d, vm_state_name(after.state));
        CHECK_MSG(container_state(&f, before.container_id, ca, sizeof(ca)) == 0 &&
                      strcmp(ca, cb) == 0,
                  "%s: container %s -> %s", d, cb, ca);
        /* The failure was used up: the same call now works. */
        CHECK_MSG(call_op(&f, rows[i].op, id, NULL, msg, sizeof(msg)) == BERTH_OK, "%s: retry %s",
                  d, msg);
        vm_snapshot_release(&before);
        vm_snapshot_release(&after);
    }
    fx_release(&f);
}

static void test_delete_when_container_gone(void)
{
    static const struct {
        const char *desc;
        enum vm_state st;
        enum op op;
    } rows[] = {
        {"created vm, container removed behind our back", VM_STATE_CREATED, OP_DELETE},
        {"shut-down vm, container removed behind our back", VM_STATE_SHUTDOWN, OP_DELETE},
        {"running vm, container removed behind our back, force", VM_STATE_RUNNING, OP_DELETE_FORCE},
    };
    struct fx f;

    CHECK(fx_init(&f, NULL, 0, 1) == 0);
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct vm_snapshot s = {0};
        struct berth_err err;
        char id[32], msg[BERTH_ERR_MSG_MAX];

        snprintf(id, sizeof(id), "gone-%zu", i);
        CHECK(make_vm_in_state(&f, id, rows[i].st) == 0);
        CHECK(vm_snap(&f, id, &s) == 0);
        berth_err_clear(&err);
        CHECK(f.backend->ops->remove(f.backend->ctx, s.container_id, BERTH_NO_DEADLINE, &err) == 0);
        CHECK(memory_backend_count(f.backend) == 0);
        CHECK_MSG(call_op(&f, rows[i].op, id, NULL, msg, sizeof(msg)) == BERTH_OK, "%s: %s",
                  rows[i].desc, msg);
        CHECK_MSG(vm_state_of(&f, id) == GONE, "%s: entry kept", rows[i].desc);
        CHECK_MSG(call_op(&f, rows[i].op, id, NULL, NULL, 0) == BERTH_NOT_FOUND, "%s: again",
                  rows[i].desc);
        vm_snapshot_release(&s);
    }
    fx_release(&f);
}

static void test_get_info(void)
{
    static char *command[] = {"httpd", "-f", "-p", "8080"};
    static char *dns[] = {"1.1.1.1"};
    Metal__Vmprovisioner__V1__BootConfig boot = METAL__VMPROVISIONER__V1__BOOT_CONFIG__INIT;
    Metal__Vmprovisioner__V1__StorageDevice disk = METAL__VMPROVISIONER__V1__STORAGE_DEVICE__INIT;
    Metal__Vmprovisioner__V1__StorageDevice *disks[] = {&disk};
    Metal__Vmprovisioner__V1__NetworkInterface nic =
        METAL__VMPROVISIONER__V1__NETWORK_INTERFACE__INIT;
    Metal__Vmprovisioner__V1__NetworkInterface *nics[] = {&nic};
    Metal__Vmprovisioner__V1__IPv4Config v4 = METAL__VMPROVISIONER__V1__IPV4_CONFIG__INIT;
    Metal__Vmprovisioner__V1__ConsoleConfig console =
        METAL__VMPROVISIONER__V1__CONSOLE_CONFIG__INIT;
    Metal__Vmprovisioner__V1__CpuTopology topo = METAL__VMPROVISIONER__V1__CPU_TOPOLOGY__INIT;
    struct cfgb b;
    struct fx f;
    struct arena *a = arena_new();
    struct berth_err err;
    InfoResponse *info = NULL;
    struct backend_container c = {0};
    struct vm_snapshot s = {0};

    cfgb_init(&b, "busybox:latest");
    b.cpu.vcpu_count = 2;
    b.cpu.max_vcpu_count = 4;
    topo.sockets = 1;
    topo.cores_per_socket = 2;
    topo.threads_per_core = 1;
    b.cpu.topology = &topo;
    b.cfg.cpu = &b.cpu;
    b.mem.size_bytes = 64 * MIB;
    b.mem.hotplug_enabled = 1;
    b.cfg.memory = &b.mem;
    boot.kernel_path = "/boot/vmlinuz";
    boot.kernel_args = "console=ttyS0";
    b.cfg.boot = &boot;
    disk.id = "root";
    disk.path = "/var/lib/disk.img"; /* kept and returned, never mounted */
    disk.is_root_device = 1;
    b.cfg.storage = disks;
    b.cfg.n_storage = 1;
    v4.address = "10.0.0.2";
    v4.dns_servers = dns;
    v4.n_dns_servers = 1;
    nic.id = "eth0";
    nic.ipv4_config = &v4;
    nic.mode = METAL__VMPROVISIONER__V1__NETWORK_MODE__NETWORK_MODE_IPV4_ONLY;
    b.cfg.network = nics;
    b.cfg.n_network = 1;
    console.enabled = 1;
    console.console_type = "serial";
    b.cfg.console = &console;
    cfgb_meta(&b, "team", "edge");
    cfgb_meta(&b, "docker_image", "not-used:1");
    b.cs.command = command;
    b.cs.n_command = 4;
    b.cs.working_dir = "/srv";
    cfgb_env(&b, "GREETING", "hello, world");
    cfgb_port(&b, 8080, 0, "tcp");
    cfgb_port(&b, 53, 0, "udp");
    cfgb_port(&b, 9000, 19000, "");

    CHECK(fx_init(&f, NULL, 0, 1) == 0);
    CHECK(create_vm(&f, "info-1", &b.cfg, "cust-42", NULL, 0, NULL, 0) == BERTH_OK);
    berth_err_clear(&err);
    CHECK(get_info(&f, a, "info-1", &info, &err) == 0);
    if (info != NULL) {
        CHECK_STR(info->vm_id, "info-1");
        CHECK(info->state == METAL__VMPROVISIONER__V1__VM_STATE__VM_STATE_CREATED);
        CHECK(info->config != NULL && same_packed(&info->config->base, &b.cfg.base));
        CHECK(info->metrics == NULL); /* never sampled */
    }

    CHECK(call_op(&f, OP_BOOT, "info-1", NULL, NULL, 0) == BERTH_OK);
    CHECK(vm_snap(&f, "info-1", &s) == 0);
    berth_err_clear(&err);
    CHECK(f.backend->ops->inspect(f.backend->ctx, s.container_id, BERTH_NO_DEADLINE, &c, &err) ==
          0);
    info = NULL;
    CHECK(get_info(&f, a, "info-1", &info, &err) == 0);
    if (info != NULL) {
        const Metal__Vmprovisioner__V1__VmNetworkInfo *net = info->network_info;
        CHECK(info->state == METAL__VMPROVISIONER__V1__VM_STATE__VM_STATE_RUNNING);
        /* Config as submitted, byte for byte. */
        CHECK(info->config != NULL && same_packed(&info->config->base, &b.cfg.base));
        CHECK(info->config && info->config->container &&
              strcmp(info->config->container->ports[2]->protocol, "") == 0);
        CHECK_STR(info_get(info, "backend"), "memory");
        CHECK_STR(info_get(info, "container_id"), c.id);
        CHECK_STR(info_get(info, "container_name"), "berth-vm-info-1");
        CHECK_STR(info_get(info, "image"), "busybox:latest");
        CHECK_STR(info_get(info, "customer_id"), "cust-42");
        CHECK(info_get(info, "exit_code") == NULL);
        CHECK(net != NULL);
        if (net != NULL) {
            CHECK(net->n_port_mappings == 3);
            CHECK(c.n_ports == 3);
            for (size_t i = 0; i < net->n_port_mappings && i < c.n_ports; i++) {
                const PortMapping *pm = net->port_mappings[i];
                CHECK(pm->container_port == c.ports[i].container_port);
                CHECK(pm->host_port == c.ports[i].host_port);
                CHECK(pm->host_port > 0);
                CHECK_STR(pm->protocol, c.ports[i].protocol);
            }
            if (net->n_port_mappings == 3) {
                CHECK(net->port_mappings[0]->container_port == 8080);
                CHECK_STR(net->port_mappings[0]->protocol, "tcp");
                CHECK(net->port_mappings[1]->container_port == 53);
                CHECK_STR(net->port_mappings[1]->protocol, "udp");
                CHECK(net->port_mappings[2]->container_port == 9000);
                CHECK(net->port_mappings[2]->host_port == 19000);
                CHECK_STR(net->port_mappings[2]->protocol, "tcp");
            }
        }
    }

    /* Cached metrics show up once sampled. */
    {
        struct vm_metrics m = {0};
        m.cpu_percent = 42.5;
        m.memory_bytes = 1234567;
        m.rx_bytes = 10;
        m.write_ops = 3;
        m.sampled_at_unix_ms = berth_unix_ms();
        CHECK(vm_registry_set_metrics(f.reg, "info-1", &m) == 0);
        info = NULL;
        CHECK(get_info(&f, a, "info-1", &info, &err) == 0);
        CHECK(info && info->metrics);
        if (info && info->metrics) {
            CHECK(info->metrics->cpu_usage_percent == 42.5);
            CHECK(info->metrics->memory_usage_bytes == 1234567);
            CHECK(info->metrics->network_stats &&
                  info->metrics->network_stats->bytes_received == 10);
            CHECK(info->metrics->storage_stats &&
                  info->metrics->storage_stats->write_operations == 3);
            CHECK(info->metrics->sampled_at_unix_ms == m.sampled_at_unix_ms);
        }
    }
    /* Uptime counts from the container's start, paused or not; a shut-down
     * VM keeps its last sample with uptime 0 and reports its exit code. */
    {
        struct vm_snapshot vs = {0};
        struct backend_container bc = {0};
        static const enum op steps[] = {OP_PAUSE, OP_RESUME, OP_SHUTDOWN};
        static const int64_t want_min[] = {10, 10, 0}, want_max[] = {12, 12, 0};

        CHECK(vm_snap(&f, "info-1", &vs) == 0);
        bc.id = vs.container_id;
        bc.started_unix_ms = berth_unix_ms() - 10500;
        {
            struct vm_observed o = {vs.container_id,       VM_STATE_UNSPECIFIED, -1, -1, &bc,
                                    BACKEND_HEALTH_UNKNOWN};
            CHECK(vm_registry_observe(f.reg, "info-1", &o) == 0);
        }
        for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
            CHECK(call_op(&f, steps[i], "info-1", NULL, NULL, 0) == BERTH_OK);
            info = NULL;
            CHECK(get_info(&f, a, "info-1", &info, &err) == 0);
            CHECK(info && info->metrics);
            if (info && info->metrics)
                CHECK_MSG(info->metrics->uptime_seconds >= want_min[i] &&
                              info->metrics->uptime_seconds <= want_max[i],
                          "after %s: uptime %lld", op_names[steps[i]],
                          (long long)info->metrics->uptime_seconds);
        }
        CHECK(info && info_get(info, "exit_code") != NULL);
        vm_snapshot_release(&vs);
    }

    /* Ports from metadata exposed_ports get real host ports too. */
    {
        struct cfgb m;
        cfgb_init(&m, "busybox");
        cfgb_meta(&m, "exposed_ports", "8080/tcp,53/udp");
        CHECK(create_vm(&f, "info-2", &m.cfg, NULL, NULL, 0, NULL, 0) == BERTH_OK);
        CHECK(call_op(&f, OP_BOOT, "info-2", NULL, NULL, 0) == BERTH_OK);
        info = NULL;
        CHECK(get_info(&f, a, "info-2", &info, &err) == 0);
        CHECK(info && info->network_info && info->network_info->n_port_mappings == 2);
        if (info && info->network_info && info->network_info->n_port_mappings == 2) {
            CHECK(info->network_info->port_mappings[0]->container_port == 8080);
            CHECK(info->network_info->port_mappings[0]->host_port > 0);
            CHECK_STR(info->network_info->port_mappings[1]->protocol, "udp");
            CHECK(info->network_info->port_mappings[1]->host_port > 0);
        }
        CHECK(info && info->config && same_packed(&info->config->base, &m.cfg.base));
    }
    backend_container_release(&c);
    vm_snapshot_release(&s);
    fx_release(&f);
    arena_free(a);
}

static void test_list(void)
{
    enum { N = 25 };
    struct fx f;
    struct arena *a = arena_new();
    struct berth_err err;
    ListResponse *r = NULL, *again = NULL;
    char ids[N][16];
    size_t running = 0, paused = 0;

    CHECK(fx_init(&f, NULL, 0, 1) == 0);
    /* Created out of order; listed by id. */
    for (int i = 0; i < N; i++) {
        int k = (i * 7) % N;
        char id[16];
        struct cfgb b;
        snprintf(id, sizeof(id), "vm-%02d", k);
        cfgb_init(&b, "busybox");
        b.cpu.vcpu_count = k + 1;
        b.cfg.cpu = &b.cpu;
        cfgb_meta(&b, "index", id);
        CHECK(create_vm(&f, id, &b.cfg, "cust", NULL, 0, NULL, 0) == BERTH_OK);
    }
    for (int i = 0; i < N; i++) {
        snprintf(ids[i], sizeof(ids[i]), "vm-%02d", i);
        if (i % 3 == 0) {
            CHECK(call_op(&f, OP_BOOT, ids[i], NULL, NULL, 0) == BERTH_OK);
            running++;
        }
        if (i % 6 == 0) {
            CHECK(call_op(&f, OP_PAUSE, ids[i], NULL, NULL, 0) == BERTH_OK);
            running--;
            paused++;
        }
    }

    berth_err_clear(&err);
    CHECK(list_vms(&f, a, NULL, 0, 0, NULL, &r, &err) == 0);
    CHECK(r && r->n_vms == N && r->total_count == N);
    CHECK(r && r->next_page_token[0] == '\0');
    for (size_t i = 0; r && i < r->n_vms && i < N; i++) {
        CHECK_STR(r->vms[i]->vm_id, ids[i]);
        CHECK(r->vms[i]->vcpu_count == (int32_t)i + 1);
        CHECK_STR(r->vms[i]->customer_id, "cust");
        CHECK(r->vms[i]->created_timestamp > 0);
        CHECK(r->vms[i]->n_metadata == 1 && strcmp(r->vms[i]->metadata[0]->key, "index") == 0 &&
              strcmp(r->vms[i]->metadata[0]->value, ids[i]) == 0);
    }
    /* Stable: the same question gets the same answer. */
    CHECK(list_vms(&f, a, NULL, 0, 0, NULL, &again, &err) == 0);
    CHECK(r && again && same_packed(&r->base, &again->base));

    /* State filters. */
    {
        static const struct {
            const char *desc;
            int filter[3];
            size_t n_filter;
            int mod; /* which indexes: i % 3 == 0 running-or-paused */
        } rows[] = {
            {"running only", {VM_STATE_RUNNING}, 1, 0},
            {"paused only", {VM_STATE_PAUSED}, 1, 1},
            {"running or paused", {VM_STATE_RUNNING, VM_STATE_PAUSED}, 2, 2},
            {"created only", {VM_STATE_CREATED}, 1, 3},
            {"shutdown only: none", {VM_STATE_SHUTDOWN}, 1, 4},
            {"unspecified: none", {VM_STATE_UNSPECIFIED}, 1, 4},
        };
        for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
            size_t want = rows[i].mod == 0   ? running
                          : rows[i].mod == 1 ? paused
                          : rows[i].mod == 2 ? running + paused
                          : rows[i].mod == 3 ? N - running - paused
                                             : 0;
            r = NULL;
            berth_err_clear(&err);
            CHECK(list_vms(&f, a, rows[i].filter, rows[i].n_filter, 0, NULL, &r, &err) == 0);
            CHECK_MSG(r && r->n_vms == want && r->total_count == (int32_t)want,
                      "%s: %zu vms, total %d, want %zu", rows[i].desc, r ? r->n_vms : 0,
                      r ? r->total_count : -1, want);
            for (size_t k = 0; r && k < r->n_vms; k++) {
                int ok = 0;
                for (size_t x = 0; x < rows[i].n_filter; x++)
                    ok |= (int)r->vms[k]->state == rows[i].filter[x];
                CHECK_MSG(ok, "%s: %s is %d", rows[i].desc, r->vms[k]->vm_id,
                          (int)r->vms[k]->state);
                if (k > 0)
                    CHECK(strcmp(r->vms[k - 1]->vm_id, r->vms[k]->vm_id) < 0);
            }
        }
    }

    /* Page walk: 10, 10, 5, the token gone on the last page. */
    {
        static const size_t want[] = {10, 10, 5};
        char token[256] = "";
        size_t seen = 0;
        for (size_t page = 0; page < 3; page++) {
            r = NULL;
            berth_err_clear(&err);
            CHECK(list_vms(&f, a, NULL, 0, 10, token, &r, &err) == 0);
            if (r == NULL)
                break;
            CHECK_MSG(r->n_vms == want[page], "page %zu: %zu vms", page, r->n_vms);
            CHECK(r->total_count == N);
            for (size_t k = 0; k < r->n_vms && seen < N; k++, seen++)
                CHECK_STR(r->vms[k]->vm_id, ids[seen]);
            if (page < 2)
                CHECK_MSG(r->next_page_token[0] != '\0', "page %zu: no token", page);
            else
                CHECK_MSG(r->next_page_token[0] == '\0', "last page has a token");
            snprintf(token, sizeof(token), "%s", r->next_page_token);
        }
        CHECK(seen == N);
    }
    /* Exactly a multiple of the page: no token after the last full page. */
    {
        char token[256] = "";
        r = NULL;
        CHECK(list_vms(&f, a, NULL, 0, 5, NULL, &r, &err) == 0);
        for (int page = 1; r && page < 5; page++) {
            snprintf(token, sizeof(token), "%s", r->next_page_token);
            CHECK(token[0] != '\0');
            r = NULL;
            CHECK(list_vms(&f, a, NULL, 0, 5, token, &r, &err) == 0);
        }
        CHECK(r && r->n_vms == 5 && r->next_page_token[0] == '\0');
    }
    /* Paging a filtered list: the token continues within the filter. */
    {
        static const int filt[] = {VM_STATE_CREATED};
        size_t total = 0, pages = 0;
        char token[256] = "";
        do {
            r = NULL;
            berth_err_clear(&err);
            if (list_vms(&f, a, filt, 1, 4, token, &r, &err) < 0)
                break;
            for (size_t k = 0; k < r->n_vms; k++)
                CHECK(r->vms[k]->state == METAL__VMPROVISIONER__V1__VM_STATE__VM_STATE_CREATED);
            total += r->n_vms;
            pages++;
            snprintf(token, sizeof(token), "%s", r->next_page_token);
        } while (token[0] != '\0' && pages < 20);
        CHECK(total == N - running - paused);
        CHECK(pages == (N - running - paused + 3) / 4);
    }

    /* Bad requests. */
    {
        static const struct {
            const char *desc;
            int32_t page_size;
            const char *token;
            const char *field;
        } rows[] = {
            {"negative page size", -1, NULL, "'pageSize'"},
            {"very negative page size", INT32_MIN, NULL, "'pageSize'"},
            {"token not base64", 10, "!!!not-a-token!!!", "'pageToken'"},
            {"token decodes to a non-id", 10, "LXg=", "'pageToken'"}, /* "-x" */
            {"token decodes to a NUL", 10, "AA==", "'pageToken'"},
            {"token decodes to a slash", 10, "YS9i", "'pageToken'"}, /* "a/b" */
        };
        for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
            r = NULL;
            berth_err_clear(&err);
            CHECK_MSG(list_vms(&f, a, NULL, 0, rows[i].page_size, rows[i].token, &r, &err) == -1,
                      "%s: accepted", rows[i].desc);
            CHECK_MSG(err.code == BERTH_INVALID_ARGUMENT, "%s: %s", rows[i].desc,
                      berth_code_name(err.code));
            CHECK_MSG(strstr(err.msg, rows[i].field) != NULL, "%s: '%s'", rows[i].desc, err.msg);
        }
    }
    fx_release(&f);
    arena_free(a);
}

/* page_size: 0 means 100, anything above 1000 means 1000. */
static void test_list_page_limits(void)
{
    enum { N = 1001 };
    struct fx f;
    struct arena *a = arena_new();
    struct berth_err err;
    ListResponse *r = NULL;
    char token[256];

    CHECK(fx_init(&f, NULL, 0, 1) == 0);
    for (int i = 0; i < N; i++) {
        char id[16];
        snprintf(id, sizeof(id), "p%04d", i);
        if (create_simple(&f, id) != BERTH_OK) {
            CHECK_MSG(0, "create %s", id);
            break;
        }
    }
    berth_err_clear(&err);
    CHECK(list_vms(&f, a, NULL, 0, 0, NULL, &r, &err) == 0);
    CHECK(r && r->n_vms == 100 && r->total_count == N && r->next_page_token[0] != '\0');
    CHECK(r && r->n_vms == 100 && strcmp(r->vms[99]->vm_id, "p0099") == 0);
    r = NULL;
    CHECK(list_vms(&f, a, NULL, 0, 1000, NULL, &r, &err) == 0);
    CHECK(r && r->n_vms == 1000 && r->next_page_token[0] != '\0');
    r = NULL;
    CHECK(list_vms(&f, a, NULL, 0, INT32_MAX, NULL, &r, &err) == 0);
    CHECK(r && r->n_vms == 1000 && r->total_count == N && r->next_page_token[0] != '\0');
    if (r != NULL) {
        snprintf(token, sizeof(token), "%s", r->next_page_token);
        r = NULL;
        CHECK(list_vms(&f, a, NULL, 0, 5000, token, &r, &err) == 0);
        CHECK(r && r->n_vms == 1 && strcmp(r->vms[0]->vm_id, "p1000") == 0);
        CHECK(r && r->next_page_token[0] == '\0');
    }
    fx_release(&f);
    arena_free(a);
}

/* A restart of berthd: a NEW registry and service over the same backend,
 * rebuilt from the labelled containers, answer GetVmInfo exactly as the old
 * ones did. Labelled containers it cannot understand are skipped, never
 * deleted. */
static void test_rebuild(void)
{
    static const struct {
        const char *id;
        enum vm_state st;
        int ports;
    } vms[] = {
        {"r-created", VM_STATE_CREATED, 0},  {"r-running", VM_STATE_RUNNING, 1},
        {"r-paused", VM_STATE_PAUSED, 1},    {"r-shut", VM_STATE_SHUTDOWN, 0},
        {"r-rebooted", VM_STATE_RUNNING, 1},
    };
    static const struct {
        const char *desc;
        const char *name;
        const char *vm_id;  /* NULL: no berth.vm_id label */
        const char *config; /* NULL: no berth.config label */
    } junk[] = {
        {"corrupt berth.config", "berth-vm-corrupt", "corrupt", "{not json"},
        {"berth.config of the wrong shape", "berth-vm-shape", "shape", "{\"cpu\": 5}"},
        {"no berth.vm_id", "berth-vm-noid", NULL, "{}"},
        {"invalid berth.vm_id", "berth-vm-badid", "-bad id", "{}"},
        {"no berth.config", "berth-vm-nocfg", "nocfg", NULL},
    };
    struct fx f1, f2;
    struct arena *a = arena_new();
    struct berth_err err;
    size_t n_vms = sizeof(vms) / sizeof(vms[0]), before;

    CHECK(fx_init(&f1, NULL, 0, 1) == 0);
    for (size_t i = 0; i < n_vms; i++) {
        struct cfgb b;
        cfgb_init(&b, "busybox:1.36");
        b.cpu.vcpu_count = (int32_t)i + 1;
        b.cfg.cpu = &b.cpu;
        b.mem.size_bytes = 32 * MIB;
        b.cfg.memory = &b.mem;
        cfgb_meta(&b, "owner", vms[i].id);
        cfgb_env(&b, "K", "v, with = signs");
        if (vms[i].ports) {
            cfgb_port(&b, 8080, 0, "tcp");
            cfgb_port(&b, 53, 0, "udp");
        }
        CHECK(create_vm(&f1, vms[i].id, &b.cfg, "cust-r", NULL, 0, NULL, 0) == BERTH_OK);
        if (vms[i].st != VM_STATE_CREATED)
            CHECK(call_op(&f1, OP_BOOT, vms[i].id, NULL, NULL, 0) == BERTH_OK);
        if (vms[i].st == VM_STATE_PAUSED)
            CHECK(call_op(&f1, OP_PAUSE, vms[i].id, NULL, NULL, 0) == BERTH_OK);
        if (vms[i].st == VM_STATE_SHUTDOWN)
            CHECK(call_op(&f1, OP_SHUTDOWN, vms[i].id, NULL, NULL, 0) == BERTH_OK);
        if (strcmp(vms[i].id, "r-rebooted") == 0)
            CHECK(call_op(&f1, OP_REBOOT, vms[i].id, NULL, NULL, 0) == BERTH_OK);
    }
    /* A deleted VM stays deleted. */
    CHECK(create_simple(&f1, "r-deleted") == BERTH_OK);
    CHECK(call_op(&f1, OP_DELETE, "r-deleted", NULL, NULL, 0) == BERTH_OK);

    /* Containers labelled as VMs that cannot be understood. */
    for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
        struct backend_label labels[3];
        struct backend_spec spec = {0};
        size_t nl = 0;
        char *cid = NULL;
        labels[nl++] = (struct backend_label){"berth.kind", "vm"};
        if (junk[i].vm_id)
            labels[nl++] = (struct backend_label){"berth.vm_id", junk[i].vm_id};
        if (junk[i].config)
            labels[nl++] = (struct backend_label){"berth.config", junk[i].config};
        spec.name = junk[i].name;
        spec.image = "busybox";
        spec.labels = labels;
        spec.n_labels = nl;
        berth_err_clear(&err);
        CHECK_MSG(f1.backend->ops->create(f1.backend->ctx, &spec, BERTH_NO_DEADLINE, &cid, &err) ==
                      0,
                  "%s: %s", junk[i].desc, err.msg);
        free(cid);
    }
    /* A gateway's container is not a VM. */
    {
        struct backend_label gl[] = {
            {"berth.kind", "gateway"}, {"berth.vm_id", "gw"}, {"berth.config", "{}"}};
        struct backend_spec spec = {0};
        char *cid = NULL;
        spec.name = "berth-gw-1";
        spec.image = "busybox";
        spec.labels = gl;
        spec.n_labels = 3;
        CHECK(f1.backend->ops->create(f1.backend->ctx, &spec, BERTH_NO_DEADLINE, &cid, &err) == 0);
        free(cid);
    }
    before = memory_backend_count(f1.backend);
    CHECK(before == n_vms + sizeof(junk) / sizeof(junk[0]) + 1);

    /* The restart. */
    CHECK(fx_init(&f2, f1.backend, 0, 0) == 0);
    vm_service_set_rebuilding(f2.svc);
    berth_err_clear(&err);
    CHECK(vm_service_rebuild(f2.svc, BERTH_NO_DEADLINE, &err) == 0);
    vm_service_set_ready(f2.svc, 1);
    CHECK(memory_backend_count(f1.backend) == before); /* nothing deleted */
    CHECK_MSG(registry_count(&f2) == n_vms, "%zu vms rebuilt, want %zu", registry_count(&f2),
              n_vms);
    for (size_t i = 0; i < n_vms; i++) {
        InfoResponse *i1 = NULL, *i2 = NULL;
        berth_err_clear(&err);
        CHECK(get_info(&f1, a, vms[i].id, &i1, &err) == 0);
        CHECK_MSG(get_info(&f2, a, vms[i].id, &i2, &err) == 0, "%s not rebuilt: %s", vms[i].id,
                  err.msg);
        if (i1 && i2) {
            CHECK_MSG((int)i2->state == (int)vms[i].st, "%s: state %d", vms[i].id, (int)i2->state);
            CHECK_MSG(same_packed(&i1->config->base, &i2->config->base), "%s: config differs",
                      vms[i].id);
            CHECK_MSG(same_packed(&i1->base, &i2->base), "%s: GetVmInfo differs after rebuild",
                      vms[i].id);
        }
    }
    {
        static const char *const gone[] = {"r-deleted", "corrupt", "shape", "nocfg", "gw"};
        for (size_t i = 0; i < sizeof(gone) / sizeof(gone[0]); i++)
            CHECK_MSG(vm_state_of(&f2, gone[i]) == GONE, "%s rebuilt", gone[i]);
    }
    /* ListVms agrees on ids, states, sizes and customers. */
    {
        ListResponse *l1 = NULL, *l2 = NULL;
        CHECK(list_vms(&f1, a, NULL, 0, 0, NULL, &l1, &err) == 0);
        CHECK(list_vms(&f2, a, NULL, 0, 0, NULL, &l2, &err) == 0);
        CHECK(l1 && l2 && l1->n_vms == l2->n_vms);
        for (size_t i = 0; l1 && l2 && i < l1->n_vms && i < l2->n_vms; i++) {
            CHECK_STR(l1->vms[i]->vm_id, l2->vms[i]->vm_id);
            CHECK(l1->vms[i]->state == l2->vms[i]->state);
            CHECK(l1->vms[i]->vcpu_count == l2->vms[i]->vcpu_count);
            CHECK(l1->vms[i]->memory_size_bytes == l2->vms[i]->memory_size_bytes);
            CHECK(l1->vms[i]->created_timestamp == l2->vms[i]->created_timestamp);
            CHECK_STR(l1->vms[i]->customer_id, l2->vms[i]->customer_id);
        }
    }
    /* A second rebuild changes nothing. */
    CHECK(vm_service_rebuild(f2.svc, BERTH_NO_DEADLINE, &err) == 0);
    CHECK(registry_count(&f2) == n_vms);
    /* The rebuilt VMs work. */
    CHECK(call_op(&f2, OP_SHUTDOWN, "r-running", NULL, NULL, 0) == BERTH_OK);
    CHECK(call_op(&f2, OP_RESUME, "r-paused", NULL, NULL, 0) == BERTH_OK);
    CHECK(call_op(&f2, OP_BOOT, "r-shut", NULL, NULL, 0) == BERTH_OK);
    CHECK(call_op(&f2, OP_BOOT, "r-created", NULL, NULL, 0) == BERTH_OK);
    CHECK(call_op(&f2, OP_DELETE_FORCE, "r-rebooted", NULL, NULL, 0) == BERTH_OK);
    CHECK(memory_backend_count(f1.backend) == before - 1);

    /* The list fails: rebuild reports it. */
    memory_backend_fail_next(f1.backend, "list", 1, BERTH_UNAVAILABLE);
    berth_err_clear(&err);
    CHECK(vm_service_rebuild(f2.svc, BERTH_NO_DEADLINE, &err) == -1);
    CHECK(err.code == BERTH_UNAVAILABLE);

    fx_release(&f2);
    fx_release(&f1);
    arena_free(a);
}

/* Changes behind berthd's back: a later rebuild (the sync after an engine
 * reconnect) adopts the containers' states and drops VMs whose container is
 * confirmed gone; engine events do the same one at a time. */
static void test_sync_and_events(void)
{
    static const struct {
        const char *desc;
        const char *id;
        enum vm_state start;
        const char *behind_back; /* new container state, or "rm" */
        enum vm_state want;      /* after the sync */
    } rows[] = {
        {"stopped behind our back", "s-stopped", VM_STATE_RUNNING, "exited", VM_STATE_SHUTDOWN},
        {"paused behind our back", "s-paused", VM_STATE_RUNNING, "paused", VM_STATE_PAUSED},
        {"started behind our back", "s-started", VM_STATE_SHUTDOWN, "running", VM_STATE_RUNNING},
        {"removed behind our back", "s-removed", VM_STATE_RUNNING, "rm", GONE},
        {"untouched", "s-same", VM_STATE_CREATED, NULL, VM_STATE_CREATED},
    };
    struct fx f;
    struct arena *a = arena_new();
    struct berth_err err;
    char cid[80] = "";

    CHECK(fx_init(&f, NULL, 0, 1) == 0);
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct vm_snapshot s = {0};
        CHECK(make_vm_in_state(&f, rows[i].id, rows[i].start) == 0);
        CHECK(vm_snap(&f, rows[i].id, &s) == 0);
        berth_err_clear(&err);
        if (rows[i].behind_back && strcmp(rows[i].behind_back, "rm") == 0)
            CHECK(f.backend->ops->remove(f.backend->ctx, s.container_id, BERTH_NO_DEADLINE, &err) ==
                  0);
        else if (rows[i].behind_back)
            CHECK(memory_backend_set_state(f.backend, s.container_id,
                                           backend_state_parse(rows[i].behind_back)) == 0);
        vm_snapshot_release(&s);
    }
    /* While the engine cannot confirm the removal, the entry stays. Four
     * inspects fail: one per changed state (the listing's word is taken
     * then) and the one that would confirm the removal. */
    memory_backend_fail_next(f.backend, "inspect", 4, BERTH_UNAVAILABLE);
    berth_err_clear(&err);
    CHECK(vm_service_rebuild(f.svc, BERTH_NO_DEADLINE, &err) == 0);
    CHECK(vm_state_of(&f, "s-removed") != GONE);
    berth_err_clear(&err);
    CHECK(vm_service_rebuild(f.svc, BERTH_NO_DEADLINE, &err) == 0);
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        CHECK_MSG(vm_state_of(&f, rows[i].id) == rows[i].want, "%s: %s", rows[i].desc,
                  vm_state_name(vm_state_of(&f, rows[i].id)));
    /* The state machine follows the adopted states. */
    CHECK(call_op(&f, OP_SHUTDOWN, "s-stopped", NULL, NULL, 0) == BERTH_FAILED_PRECONDITION);
    CHECK(call_op(&f, OP_BOOT, "s-stopped", NULL, NULL, 0) == BERTH_OK);
    CHECK(call_op(&f, OP_RESUME, "s-paused", NULL, NULL, 0) == BERTH_OK);
    CHECK(call_op(&f, OP_SHUTDOWN, "s-started", NULL, NULL, 0) == BERTH_OK);
    CHECK(call_op(&f, OP_BOOT, "s-removed", NULL, NULL, 0) == BERTH_NOT_FOUND);

    /* Engine events for "s-stopped" (RUNNING again now). */
    {
        struct vm_snapshot s = {0};
        InfoResponse *info = NULL;
        CHECK(vm_snap(&f, "s-stopped", &s) == 0);
        if (s.container_id)
            snprintf(cid, sizeof(cid), "%s", s.container_id);
        vm_snapshot_release(&s);
        {
            static const struct {
                const char *desc, *action, *kind;
                int own_container;
                enum vm_state want;
            } ev_rows[] = {
                {"another container's event", "die", "vm", 0, VM_STATE_RUNNING},
                {"a gateway's event", "die", "gateway", 1, VM_STATE_RUNNING},
                {"an action we do not follow", "exec_start", "vm", 1, VM_STATE_RUNNING},
                {"pause", "pause", "vm", 1, VM_STATE_PAUSED},
                {"unpause", "unpause", "vm", 1, VM_STATE_RUNNING},
                {"die", "die", "vm", 1, VM_STATE_SHUTDOWN},
                {"start", "start", "vm", 1, VM_STATE_RUNNING},
                {"die again", "die", "vm", 1, VM_STATE_SHUTDOWN},
            };
            for (size_t i = 0; i < sizeof(ev_rows) / sizeof(ev_rows[0]); i++) {
                struct backend_event ev = {0};
                ev.action = ev_rows[i].action;
                ev.container_id = ev_rows[i].own_container ? cid : "0123456789ab";
                ev.kind = ev_rows[i].kind;
                ev.object_id = "s-stopped";
                ev.exit_code = strcmp(ev.action, "die") == 0 ? 3 : -1;
                vm_service_on_event(f.svc, &ev);
                CHECK_MSG(vm_state_of(&f, "s-stopped") == ev_rows[i].want, "%s: %s",
                          ev_rows[i].desc, vm_state_name(vm_state_of(&f, "s-stopped")));
            }
        }
        berth_err_clear(&err);
        CHECK(get_info(&f, a, "s-stopped", &info, &err) == 0);
        CHECK(info && info_get(info, "exit_code") && strcmp(info_get(info, "exit_code"), "3") == 0);
        {
            struct backend_event ev = {0};
            ev.action = "destroy";
            ev.container_id = cid;
            ev.kind = "vm";
            ev.object_id = "s-stopped";
            ev.exit_code = -1;
            vm_service_on_event(f.svc, &ev);
        }
        CHECK(vm_state_of(&f, "s-stopped") == GONE);
    }
    fx_release(&f);
    arena_free(a);
}

/* ---- many threads ------------------------------------------------------ */

enum { THREADS = 8, SHARED_CALLS = 150 };

struct worker {
    struct fx *f;
    int idx;
    unsigned seed;
    size_t ok[N_OPS];
    int unexpected; /* codes other than ok / failed_precondition */
    int own_failures;
    enum berth_code last_code;
};

static void *worker_main(void *arg);
static void *delete_racer(void *arg);
static void *create_racer(void *arg);

static void *worker_main(void *arg)
{
    static const enum op shared_ops[] = {OP_BOOT,  OP_SHUTDOWN, OP_SHUTDOWN_FORCE,
                                         OP_PAUSE, OP_RESUME,   OP_REBOOT};
    static const enum op own_seq[] = {OP_BOOT,     OP_PAUSE, OP_RESUME, OP_REBOOT_FORCE,
                                      OP_SHUTDOWN, OP_BOOT,  OP_PAUSE};
    struct worker *w = arg;
    char own[32];

    snprintf(own, sizeof(own), "own-%d", w->idx);
    for (int i = 0; i < SHARED_CALLS; i++) {
        enum op op = shared_ops[rand_r(&w->seed) % (sizeof(shared_ops) / sizeof(shared_ops[0]))];
        enum berth_code code = call_op(w->f, op, "shared", NULL, NULL, 0);
        if (code == BERTH_OK)
            w->ok[op]++;
        else if (code != BERTH_FAILED_PRECONDITION)
            w->unexpected++;
        /* Interleave this thread's own VM and some reads. */
        if (i < (int)(sizeof(own_seq) / sizeof(own_seq[0])) &&
            call_op(w->f, own_seq[i], own, NULL, NULL, 0) != BERTH_OK)
            w->own_failures++;
        if (i % 10 == 0) {
            struct arena *a = arena_new();
            struct berth_err err;
            InfoResponse *info = NULL;
            ListResponse *l = NULL;
            berth_err_clear(&err);
            if (get_info(w->f, a, "shared", &info, &err) < 0)
                w->unexpected++;
            berth_err_clear(&err);
            if (list_vms(w->f, a, NULL, 0, 0, NULL, &l, &err) < 0 || l->n_vms != THREADS + 1)
                w->unexpected++;
            arena_free(a);
        }
    }
    return NULL;
}

static void *delete_racer(void *arg)
{
    struct worker *w = arg;

    w->last_code = call_op(w->f, OP_DELETE_FORCE, "shared", NULL, NULL, 0);
    return NULL;
}

static void *create_racer(void *arg)
{
    struct worker *w = arg;

    w->last_code = create_simple(w->f, "contested");
    return NULL;
}

/* Lifecycle calls on one VM run one after another: with the VM starting
 * RUNNING, successful shutdowns minus boots must be 0 or 1, pauses minus
 * resumes 0 or 1, and the final state is the one those counts imply, in the
 * registry and in the container. Calls on different VMs go on meanwhile. */
static void test_concurrency(void)
{
    struct fx f;
    struct worker w[THREADS];
    pthread_t t[THREADS];
    size_t ok[N_OPS] = {0};
    long shut, paus;
    enum vm_state want;
    struct vm_snapshot s = {0};
    char cst[32] = "";
    int winners = 0;

    CHECK(fx_init(&f, NULL, 0, 1) == 0);
    CHECK(make_vm_in_state(&f, "shared", VM_STATE_RUNNING) == 0);
    for (int i = 0; i < THREADS; i++) {
        char own[32];
        snprintf(own, sizeof(own), "own-%d", i);
        CHECK(create_simple(&f, own) == BERTH_OK);
    }
    for (int i = 0; i < THREADS; i++) {
        memset(&w[i], 0, sizeof(w[i]));
        w[i].f = &f;
        w[i].idx = i;
        w[i].seed = 0x5eed + (unsigned)i * 7919u;
        pthread_create(&t[i], NULL, worker_main, &w[i]);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    /* Checks only once every thread is joined: testlib's counters are not
     * atomic. */
    for (int i = 0; i < THREADS; i++) {
        CHECK_MSG(w[i].unexpected == 0, "thread %d: %d unexpected answers", i, w[i].unexpected);
        CHECK_MSG(w[i].own_failures == 0, "thread %d: own vm failed %d times", i,
                  w[i].own_failures);
        for (int o = 0; o < N_OPS; o++)
            ok[o] += w[i].ok[o];
    }
    shut = (long)(ok[OP_SHUTDOWN] + ok[OP_SHUTDOWN_FORCE]) - (long)ok[OP_BOOT];
    paus = (long)ok[OP_PAUSE] - (long)ok[OP_RESUME];
    CHECK_MSG(shut == 0 || shut == 1, "shutdowns - boots = %ld", shut);
    CHECK_MSG(paus == 0 || paus == 1, "pauses - resumes = %ld", paus);
    CHECK_MSG(!(shut == 1 && paus == 1), "both shut down and paused");
    want = shut == 1 ? VM_STATE_SHUTDOWN : paus == 1 ? VM_STATE_PAUSED : VM_STATE_RUNNING;
    CHECK(vm_snap(&f, "shared", &s) == 0);
    CHECK_MSG(s.state == want, "final state %s, the successful calls imply %s",
              vm_state_name(s.state), vm_state_name(want));
    CHECK(s.container_id && container_state(&f, s.container_id, cst, sizeof(cst)) == 0);
    CHECK_MSG(strcmp(cst, container_word(want)) == 0, "container is %s, want %s", cst,
              container_word(want));
    CHECK(ok[OP_BOOT] + ok[OP_PAUSE] + ok[OP_REBOOT] > 0); /* the race did happen */
    for (int i = 0; i < THREADS; i++) {
        char own[32];
        snprintf(own, sizeof(own), "own-%d", i);
        CHECK_MSG(vm_state_of(&f, own) == VM_STATE_PAUSED, "%s ended %s", own,
                  vm_state_name(vm_state_of(&f, own)));
    }
    vm_snapshot_release(&s);

    /* Everyone deletes the same VM: one wins, the rest find it gone. */
    for (int i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, delete_racer, &w[i]);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < THREADS; i++) {
        if (w[i].last_code == BERTH_OK)
            winners++;
        else
            CHECK_MSG(w[i].last_code == BERTH_NOT_FOUND, "delete racer %d: %s", i,
                      berth_code_name(w[i].last_code));
    }
    CHECK(winners == 1);
    CHECK(vm_state_of(&f, "shared") == GONE);
    CHECK(memory_backend_count(&f.own) == THREADS);

    /* Everyone creates the same id: one wins, the rest already_exists. */
    winners = 0;
    for (int i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, create_racer, &w[i]);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < THREADS; i++) {
        if (w[i].last_code == BERTH_OK)
            winners++;
        else
            CHECK_MSG(w[i].last_code == BERTH_ALREADY_EXISTS, "create racer %d: %s", i,
                      berth_code_name(w[i].last_code));
    }
    CHECK(winners == 1);
    CHECK(vm_state_of(&f, "contested") == VM_STATE_CREATED);
    CHECK(memory_backend_count(&f.own) == THREADS + 1);
    fx_release(&f);
}

/* What one caller may take: --max-vms, --max-vms-per-customer, the host
 * port range, customerId's length and a config too large for its label. */
static void test_limits(void)
{
    struct vm_service_config cfg = {.stop_timeout_s = 1,
                                    .max_vms = 3,
                                    .max_vms_per_customer = 2,
                                    .host_port_min = 30000,
                                    .host_port_max = 30009};
    char msg[BERTH_ERR_MSG_MAX], long_id[130];
    struct berth_err err;
    struct cfgb b;
    struct fx f;
    int lo = 0, hi = 0;

    CHECK(fx_init_cfg(&f, NULL, &cfg, 1) == 0);
    cfgb_init(&b, "busybox");
    CHECK(create_vm(&f, "a1", &b.cfg, "acme", NULL, 0, msg, sizeof(msg)) == BERTH_OK);
    CHECK(create_vm(&f, "a2", &b.cfg, "acme", NULL, 0, msg, sizeof(msg)) == BERTH_OK);
    CHECK(create_vm(&f, "a3", &b.cfg, "acme", NULL, 0, msg, sizeof(msg)) ==
          BERTH_RESOURCE_EXHAUSTED);
    CHECK_MSG(strstr(msg, "--max-vms-per-customer 2") != NULL, "%s", msg);
    CHECK(create_vm(&f, "b1", &b.cfg, "beta", NULL, 0, msg, sizeof(msg)) == BERTH_OK);
    CHECK(create_vm(&f, "b2", &b.cfg, "beta", NULL, 0, msg, sizeof(msg)) ==
          BERTH_RESOURCE_EXHAUSTED);
    CHECK_MSG(strstr(msg, "--max-vms 3") != NULL, "%s", msg);
    CHECK(memory_backend_count(f.backend) == 3);
    /* A delete gives the room back. */
    CHECK(call_op(&f, OP_DELETE, "a1", NULL, msg, sizeof(msg)) == BERTH_OK);
    CHECK(create_vm(&f, "b2", &b.cfg, "beta", NULL, 0, msg, sizeof(msg)) == BERTH_OK);
    fx_release(&f);

    cfg.max_vms = 0;
    cfg.max_vms_per_customer = 0;
    CHECK(fx_init_cfg(&f, NULL, &cfg, 1) == 0);
    cfgb_init(&b, "busybox");
    cfgb_port(&b, 80, 8080, "tcp");
    CHECK(create_vm(&f, "p1", &b.cfg, NULL, NULL, 0, msg, sizeof(msg)) == BERTH_INVALID_ARGUMENT);
    CHECK_MSG(strstr(msg, "config.container.ports[0].hostPort") != NULL &&
                  strstr(msg, "30000-30009") != NULL,
              "%s", msg);
    cfgb_init(&b, "busybox");
    cfgb_port(&b, 80, 0, "tcp");
    cfgb_port(&b, 81, 30009, "tcp");
    cfgb_port(&b, 82, 30010, "udp");
    CHECK(create_vm(&f, "p2", &b.cfg, NULL, NULL, 0, msg, sizeof(msg)) == BERTH_INVALID_ARGUMENT);
    CHECK_MSG(strstr(msg, "ports[2].hostPort") != NULL, "%s", msg);
    cfgb_init(&b, "busybox");
    cfgb_port(&b, 80, 0, "tcp");
    cfgb_port(&b, 81, 30000, "tcp");
    CHECK(create_vm(&f, "p3", &b.cfg, NULL, NULL, 0, msg, sizeof(msg)) == BERTH_OK);

    memset(long_id, 'c', 129);
    long_id[129] = '\0';
    cfgb_init(&b, "busybox");
    CHECK(create_vm(&f, "c1", &b.cfg, long_id, NULL, 0, msg, sizeof(msg)) ==
          BERTH_INVALID_ARGUMENT);
    CHECK_MSG(strstr(msg, "customerId") != NULL, "%s", msg);
    long_id[128] = '\0';
    CHECK(create_vm(&f, "c1", &b.cfg, long_id, NULL, 0, msg, sizeof(msg)) == BERTH_OK);

    {
        /* 300 KiB of environment: more than the config label holds. */
        size_t n = 300 * 1024;
        char *big = malloc(n + 1);

        CHECK(big != NULL);
        if (big != NULL) {
            memset(big, 'x', n);
            big[n] = '\0';
            cfgb_init(&b, "busybox");
            cfgb_env(&b, "BIG", big);
            CHECK(create_vm(&f, "big", &b.cfg, NULL, NULL, 0, msg, sizeof(msg)) ==
                  BERTH_INVALID_ARGUMENT);
            CHECK_MSG(strstr(msg, "field 'config'") != NULL, "%s", msg);
            free(big);
        }
    }
    fx_release(&f);

    {
        struct arena *a = arena_new();

        CHECK(a != NULL);
        if (a != NULL) {
            CHECK_STR(service_network_name(a, "berth-c-", "acme.Co-1", "berth-default"),
                      "berth-c-acme.Co-1");
            CHECK_STR(service_network_name(a, "berth-c-", "a b_c/\xff", "berth-default"),
                      "berth-c-a_20b_5fc_2f_ff");
            CHECK_STR(service_network_name(a, "berth-c-", "", "berth-default"), "berth-default");
            CHECK_STR(service_network_name(a, "berth-c-", NULL, "berth-default"), "berth-default");
            arena_free(a);
        }
    }
    berth_err_clear(&err);
    CHECK(vm_service_parse_port_range("host-port-range", "30000-39999", &lo, &hi, &err) == 0);
    CHECK(lo == 30000 && hi == 39999);
    CHECK(vm_service_parse_port_range("host-port-range", "5-5", &lo, &hi, &err) == 0);
    CHECK(lo == 5 && hi == 5);
    {
        static const char *const bad[] = {"",        "1",   "0-10", "10-5",
                                          "1-65536", "a-b", "1-2x", "-1-2"};

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            berth_err_clear(&err);
            CHECK_MSG(vm_service_parse_port_range("host-port-range", bad[i], &lo, &hi, &err) < 0,
                      "'%s'", bad[i]);
            CHECK(err.code == BERTH_INVALID_ARGUMENT && strstr(err.msg, "host-port-range") != NULL);
        }
    }
}

/* ContainerSpec's restart policy is checked and taken. */
static void test_runtime_fields(void)
{
    Metal__Vmprovisioner__V1__RestartPolicy rp = METAL__VMPROVISIONER__V1__RESTART_POLICY__INIT;
    char msg[BERTH_ERR_MSG_MAX];
    struct fx f;
    struct cfgb b;

    CHECK(fx_init(&f, NULL, 0, 1) == 0);
    cfgb_init(&b, "busybox");
    b.cs.restart_policy = &rp;
    rp.mode = METAL__VMPROVISIONER__V1__RESTART_MODE__RESTART_MODE_ALWAYS;
    rp.max_retries = 2;
    CHECK(create_vm(&f, "rt-1", &b.cfg, NULL, NULL, 0, msg, sizeof(msg)) == BERTH_INVALID_ARGUMENT);
    CHECK(strstr(msg, "config.container.restartPolicy.maxRetries") != NULL);
    rp.mode = METAL__VMPROVISIONER__V1__RESTART_MODE__RESTART_MODE_ON_FAILURE;
    rp.max_retries = -1;
    CHECK(create_vm(&f, "rt-1", &b.cfg, NULL, NULL, 0, msg, sizeof(msg)) == BERTH_INVALID_ARGUMENT);
    rp.mode = 42;
    rp.max_retries = 0;
    CHECK(create_vm(&f, "rt-1", &b.cfg, NULL, NULL, 0, msg, sizeof(msg)) == BERTH_INVALID_ARGUMENT);
    CHECK(strstr(msg, "config.container.restartPolicy.mode") != NULL);
    rp.mode = METAL__VMPROVISIONER__V1__RESTART_MODE__RESTART_MODE_ON_FAILURE;
    rp.max_retries = 3;
    CHECK(create_vm(&f, "rt-1", &b.cfg, NULL, NULL, 0, msg, sizeof(msg)) == BERTH_OK);

    fx_release(&f);
}

/* The health a VM's GetVmInfo answers (UNSPECIFIED on failure). */
static int info_health(struct fx *f, const char *id, int *restart_count)
{
    struct arena *a = arena_new();
    struct berth_err err;
    InfoResponse *r = NULL;
    int h = -1;

    berth_err_clear(&err);
    if (a != NULL && get_info(f, a, id, &r, &err) == 0) {
        h = (int)r->health;
        if (restart_count)
            *restart_count = r->restart_count;
    }
    arena_free(a);
    return h;
}

/* An Engine event for VM `id`'s container. */
static void send_event(struct fx *f, const char *id, const char *action)
{
    struct vm_snapshot snap = {0};
    struct backend_event ev = {0};

    CHECK(vm_snap(f, id, &snap) == 0);
    ev.action = action;
    ev.container_id = snap.container_id;
    ev.kind = "vm";
    ev.object_id = id;
    ev.exit_code = -1;
    vm_service_on_event(f->svc, &ev);
    vm_snapshot_release(&snap);
}

/* ContainerSpec.health_check: checked, taken, and the VM's health follows
 * the Engine's inspect and health_status events while it runs. */
static void test_health(void)
{
    static char *cmd_true[] = {"true"};
    static char *cmd_empty[] = {"ok", ""};
    Metal__Vmprovisioner__V1__HealthCheck hc = METAL__VMPROVISIONER__V1__HEALTH_CHECK__INIT;
    char msg[BERTH_ERR_MSG_MAX];
    struct fx f;
    struct cfgb b;
    int rc = -1;

    CHECK(fx_init(&f, NULL, 0, 1) == 0);
    {
        static const struct {
            const char *desc, *field;
            int disable, interval, timeout, retries, start, empty_cmd;
        } bad[] = {
            {"disable with a command", "healthCheck.disable", 1, 0, 0, 0, 0, 0},
            {"an empty command word", "healthCheck.command[1]", 0, 0, 0, 0, 0, 1},
            {"negative interval", "healthCheck.intervalMs", 0, -1, 0, 0, 0, 0},
            {"negative timeout", "healthCheck.timeoutMs", 0, 0, -5, 0, 0, 0},
            {"negative retries", "healthCheck.retries", 0, 0, 0, -1, 0, 0},
            {"negative start period", "healthCheck.startPeriodMs", 0, 0, 0, 0, -1, 0},
        };

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            cfgb_init(&b, "busybox");
            hc =
                (Metal__Vmprovisioner__V1__HealthCheck)METAL__VMPROVISIONER__V1__HEALTH_CHECK__INIT;
            hc.command = bad[i].empty_cmd ? cmd_empty : cmd_true;
            hc.n_command = bad[i].empty_cmd ? 2 : 1;
            hc.disable = bad[i].disable;
            hc.interval_ms = bad[i].interval;
            hc.timeout_ms = bad[i].timeout;
            hc.retries = bad[i].retries;
            hc.start_period_ms = bad[i].start;
            b.cs.health_check = &hc;
            CHECK_MSG(create_vm(&f, "hc-bad", &b.cfg, NULL, NULL, 0, msg, sizeof(msg)) ==
                          BERTH_INVALID_ARGUMENT,
                      "%s", bad[i].desc);
            CHECK_MSG(strstr(msg, bad[i].field) != NULL, "%s: %s", bad[i].desc, msg);
        }
        CHECK(memory_backend_count(f.backend) == 0);
    }

    /* A VM with a check of its own: STARTING once it runs, then what the
     * Engine's events say; nothing of it while it does not run. */
    cfgb_init(&b, "busybox");
    hc = (Metal__Vmprovisioner__V1__HealthCheck)METAL__VMPROVISIONER__V1__HEALTH_CHECK__INIT;
    hc.command = cmd_true;
    hc.n_command = 1;
    b.cs.health_check = &hc;
    CHECK(create_vm(&f, "hc-1", &b.cfg, NULL, NULL, 0, msg, sizeof(msg)) == BERTH_OK);
    CHECK(info_health(&f, "hc-1", NULL) ==
          METAL__VMPROVISIONER__V1__HEALTH_STATE__HEALTH_STATE_UNSPECIFIED);
    CHECK(call_op(&f, OP_BOOT, "hc-1", NULL, NULL, 0) == BERTH_OK);
    CHECK(info_health(&f, "hc-1", &rc) ==
          METAL__VMPROVISIONER__V1__HEALTH_STATE__HEALTH_STATE_STARTING);
    CHECK(rc == 0);
    send_event(&f, "hc-1", "health_status: healthy");
    CHECK(info_health(&f, "hc-1", NULL) ==
          METAL__VMPROVISIONER__V1__HEALTH_STATE__HEALTH_STATE_HEALTHY);
    send_event(&f, "hc-1", "exec_die"); /* a check's run: no news */
    send_event(&f, "hc-1", "health_status: unhealthy");
    CHECK(info_health(&f, "hc-1", NULL) ==
          METAL__VMPROVISIONER__V1__HEALTH_STATE__HEALTH_STATE_UNHEALTHY);
    send_event(&f, "hc-1", "health_status: sideways"); /* a word berthd does not know: kept */
    CHECK(info_health(&f, "hc-1", NULL) ==
          METAL__VMPROVISIONER__V1__HEALTH_STATE__HEALTH_STATE_UNHEALTHY);
    CHECK(vm_state_of(&f, "hc-1") == VM_STATE_RUNNING); /* a VM runs, healthy or not */
    {
        size_t counts[BACKEND_HEALTH_COUNT];

        vm_registry_count_health(f.reg, counts);
        CHECK(counts[BACKEND_HEALTH_UNHEALTHY] == 1 && counts[BACKEND_HEALTH_HEALTHY] == 0);
    }
    CHECK(call_op(&f, OP_SHUTDOWN, "hc-1", NULL, NULL, 0) == BERTH_OK);
    CHECK(info_health(&f, "hc-1", NULL) ==
          METAL__VMPROVISIONER__V1__HEALTH_STATE__HEALTH_STATE_UNSPECIFIED);
    /* A new run starts from scratch. */
    CHECK(call_op(&f, OP_BOOT, "hc-1", NULL, NULL, 0) == BERTH_OK);
    CHECK(info_health(&f, "hc-1", NULL) ==
          METAL__VMPROVISIONER__V1__HEALTH_STATE__HEALTH_STATE_STARTING);

    /* Without a check: NONE while it runs. */
    CHECK(make_vm_in_state(&f, "hc-none", VM_STATE_RUNNING) == 0);
    CHECK(info_health(&f, "hc-none", NULL) ==
          METAL__VMPROVISIONER__V1__HEALTH_STATE__HEALTH_STATE_NONE);
    {
        struct arena *a = arena_new();
        struct berth_err err;
        ListResponse *l = NULL;

        berth_err_clear(&err);
        CHECK(a != NULL && list_vms(&f, a, NULL, 0, 0, NULL, &l, &err) == 0);
        for (size_t i = 0; l != NULL && i < l->n_vms; i++)
            CHECK(l->vms[i]->health ==
                  (strcmp(l->vms[i]->vm_id, "hc-1") == 0
                       ? METAL__VMPROVISIONER__V1__HEALTH_STATE__HEALTH_STATE_STARTING
                       : METAL__VMPROVISIONER__V1__HEALTH_STATE__HEALTH_STATE_NONE));
        arena_free(a);
    }
    fx_release(&f);
}

/* ContainerSpec.volumes: names and paths checked (the field named), the
 * volumes named after the VM, removed by DeleteVm unless kept. */
static void test_volumes(void)
{
    Metal__Vmprovisioner__V1__Volume v[3] = {METAL__VMPROVISIONER__V1__VOLUME__INIT,
                                             METAL__VMPROVISIONER__V1__VOLUME__INIT,
                                             METAL__VMPROVISIONER__V1__VOLUME__INIT};
    Metal__Vmprovisioner__V1__Volume *vp[3] = {&v[0], &v[1], &v[2]};
    char msg[BERTH_ERR_MSG_MAX];
    char long_name[70];
    struct fx f;
    struct cfgb b;

    memset(long_name, 'a', 64);
    long_name[64] = '\0';
    CHECK(fx_init(&f, NULL, 0, 1) == 0);
    {
        const struct {
            const char *name, *path, *field;
        } bad[] = {
            {"", "/b", "volumes[1].name"},
            {"Data", "/b", "volumes[1].name"},
            {"-x", "/b", "volumes[1].name"},
            {"_x", "/b", "volumes[1].name"},
            {"a/b", "/b", "volumes[1].name"},
            {"a b", "/b", "volumes[1].name"},
            {long_name, "/b", "volumes[1].name"},
            {"data", "/b", "volumes[1].name"},
            {"b", "relative", "volumes[1].mountPath"},
            {"b", "/", "volumes[1].mountPath"},
            {"b", "//", "volumes[1].mountPath"},
            {"b", "/a/../etc", "volumes[1].mountPath"},
            {"b", "/..", "volumes[1].mountPath"},
            {"b", "", "volumes[1].mountPath"},
            {"b", "/a\nb", "volumes[1].mountPath"},
            {"b", "/data", "volumes[1].mountPath"},
        };

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            cfgb_init(&b, "busybox");
            v[0].name = "data";
            v[0].mount_path = "/data";
            v[1].name = (char *)bad[i].name;
            v[1].mount_path = (char *)bad[i].path;
            b.cs.volumes = vp;
            b.cs.n_volumes = 2;
            CHECK_MSG(create_vm(&f, "vol-bad", &b.cfg, NULL, NULL, 0, msg, sizeof(msg)) ==
                          BERTH_INVALID_ARGUMENT,
                      "'%s' at '%s'", bad[i].name, bad[i].path);
            CHECK_MSG(strstr(msg, bad[i].field) != NULL, "'%s' at '%s': %s", bad[i].name,
                      bad[i].path, msg);
        }
        CHECK(memory_backend_count(f.backend) == 0);
        CHECK(!memory_backend_has_volume(f.backend, "berth-vol-bad-data"));
    }
    /* The longest name, dots, dashes and underscores are fine. */
    cfgb_init(&b, "busybox");
    long_name[63] = '\0';
    v[0] = (Metal__Vmprovisioner__V1__Volume)METAL__VMPROVISIONER__V1__VOLUME__INIT;
    v[0].name = "data";
    v[0].mount_path = "/var/lib/data";
    v[1] = (Metal__Vmprovisioner__V1__Volume)METAL__VMPROVISIONER__V1__VOLUME__INIT;
    v[1].name = "kept.v_1-x";
    v[1].mount_path = "/kept";
    v[1].keep = 1;
    v[2] = (Metal__Vmprovisioner__V1__Volume)METAL__VMPROVISIONER__V1__VOLUME__INIT;
    v[2].name = long_name;
    v[2].mount_path = "/ro/./x";
    v[2].read_only = 1;
    b.cs.volumes = vp;
    b.cs.n_volumes = 3;
    CHECK(create_vm(&f, "vol-1", &b.cfg, NULL, NULL, 0, msg, sizeof(msg)) == BERTH_OK);
    CHECK(memory_backend_has_volume(f.backend, "berth-vol-1-data"));
    CHECK(memory_backend_has_volume(f.backend, "berth-vol-1-kept.v_1-x"));
    CHECK(call_op(&f, OP_BOOT, "vol-1", NULL, NULL, 0) == BERTH_OK);
    CHECK(call_op(&f, OP_DELETE_FORCE, "vol-1", NULL, NULL, 0) == BERTH_OK);
    CHECK(!memory_backend_has_volume(f.backend, "berth-vol-1-data"));
    CHECK(memory_backend_has_volume(f.backend, "berth-vol-1-kept.v_1-x"));
    {
        char name[128];

        snprintf(name, sizeof(name), "berth-vol-1-%s", long_name);
        CHECK(!memory_backend_has_volume(f.backend, name));
    }
    /* A later VM of the same id mounts the kept one again. */
    CHECK(create_vm(&f, "vol-1", &b.cfg, NULL, NULL, 0, msg, sizeof(msg)) == BERTH_OK);
    CHECK(memory_backend_has_volume(f.backend, "berth-vol-1-kept.v_1-x"));
    /* A failed removal of a volume does not keep the VM. */
    memory_backend_fail_next(f.backend, "remove_volume", 1, BERTH_UNAVAILABLE);
    CHECK(call_op(&f, OP_DELETE, "vol-1", NULL, NULL, 0) == BERTH_OK);
    CHECK(vm_state_of(&f, "vol-1") == GONE);
    fx_release(&f);
}

int main(void)
{
    log_set_level(LOG_LEVEL_WARN);
    test_runtime_fields();
    test_health();
    test_volumes();
    test_readiness_gate();
    test_transitions();
    test_forced_shutdown_of_stopped_container();
    test_unknown_and_empty_ids();
    test_validation();
    test_duplicate_id();
    test_create_failures();
    test_create_failure_removes_nothing();
    test_lifecycle_backend_failures();
    test_delete_when_container_gone();
    test_get_info();
    test_list();
    test_list_page_limits();
    test_rebuild();
    test_sync_and_events();
    test_concurrency();
    test_limits();
    return test_summary("test_vm_service");
}
