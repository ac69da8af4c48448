/* The registry from the backend: the rebuild of every VM from its labelled
 * container (at start and whenever the Engine comes back) and the engine
 * events that change a VM's state behind berthd's back. */
#include <stdlib.h>
#include <string.h>

#include "berth/clock.h"
#include "berth/json_codec.h"
#include "berth/labels.h"
#include "berth/log.h"
#include "berth/service_util.h"
#include "vm_internal.h"

/* The Engine's event when a check's verdict changes: this, then the verdict. */
#define HEALTH_ACTION "health_status: "

static enum vm_state state_from_container(enum backend_state state);
static int rebuild_one(struct vm_service *s, const struct backend_container *c, struct arena *a);
static void observe_container(struct vm_service *s, const char *id,
                              const struct backend_container *c, int inspected);
static void drop_if_gone(struct vm_service *s, const struct vm_snapshot *v, int64_t deadline);
static void adopt_if_unknown(struct vm_service *s, const struct backend_event *ev);
static void sync_one(struct vm_service *s, const struct backend_container *listed, int64_t deadline,
                     size_t *loaded, struct berth_err *err);

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
    init.health = c->health;
    init.restart_count = c->restart_count > 0 ? c->restart_count : 0;
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
        .health = c->health,
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

/* A VM container the registry does not know (one whose create finished
 * after the listing berthd started from, when the berthd that asked for it
 * died meanwhile) is adopted as the rebuild would. A CreateVm of this
 * berthd reserves its id first, so its own containers are never adopted
 * twice. */
static void adopt_if_unknown(struct vm_service *s, const struct backend_event *ev)
{
    struct backend_container c = {0};
    struct vm_snapshot existing = {0};
    struct berth_err err;
    struct arena *a;

    if (vm_registry_get(s->registry, ev->object_id, &existing, NULL) == 0) {
        vm_snapshot_release(&existing);
        return;
    }
    berth_err_clear(&err);
    if (s->backend->ops->inspect(s->backend->ctx, ev->container_id, berth_now_ms() + 2000, &c,
                                 &err) < 0)
        return;
    a = arena_new();
    if (a != NULL && rebuild_one(s, &c, a) == 0 &&
        vm_registry_get(s->registry, ev->object_id, &existing, NULL) == 0) {
        log_info("vm.adopted", "vm_id=%s container_id=%.12s action=%s", ev->object_id,
                 ev->container_id, ev->action);
        vm_snapshot_release(&existing);
    }
    arena_free(a);
    backend_container_release(&c);
}

void vm_service_on_event(struct vm_service *s, const struct backend_event *ev)
{
    struct vm_observed o = {.container_id = ev->container_id, .oom_killed = -1, .exit_code = -1};
    struct backend_container c = {0};
    struct berth_err err;
    const char *a = ev->action;

    if (strcmp(ev->kind, "vm") != 0 || ev->object_id[0] == '\0')
        return;
    /* Every run of a health check is an exec: nothing a VM shows. */
    if (strncmp(a, "exec_", 5) == 0)
        return;
    berth_err_clear(&err);
    if (strcmp(a, "destroy") != 0)
        adopt_if_unknown(s, ev);
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
                                     &err) == 0) {
            o.details = &c;
            o.health = c.health;
        }
    } else if (strncmp(a, HEALTH_ACTION, strlen(HEALTH_ACTION)) == 0) {
        /* "health_status: healthy": the check's verdict changed. */
        o.health = backend_health_parse(a + strlen(HEALTH_ACTION));
        if (o.health == BACKEND_HEALTH_UNKNOWN)
            return;
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
    if (vm_registry_observe(s->registry, ev->object_id, &o) == 0) {
        struct log_quoted lq;
        log_info("vm.observed", "vm_id=%s action=%s", ev->object_id, log_quote(&lq, a));
    }
    backend_container_release(&c);
}
