/* A VM's request -> the backend's container spec: image, command, ports,
 * environment, limits, and the labels (the config as created among them)
 * that let the registry be rebuilt from the container alone. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/docker/registry_auth.h"
#include "berth/buf.h"
#include "berth/json_codec.h"
#include "berth/labels.h"
#include "berth/service_util.h"
#include "vm_internal.h"

#define VM_NAME_PREFIX "berth-vm-"
#define MIN_MEMORY_BYTES (6 * 1024 * 1024) /* the Engine refuses less */
#define CONFIG_LABEL_MAX (256 * 1024)
#define VOLUME_NAME_MAX 63      /* [a-z0-9][a-z0-9_.-]{0,62} */
#define MOUNT_PATH_MAX 4096     /* PATH_MAX of the container's kernel */
#define MAX_VOLUMES 32          /* per VM */
#define HEALTH_DEFAULT_MS 30000 /* interval and timeout when left 0 */
#define HEALTH_DEFAULT_RETRIES 3
#define NS_PER_MS 1000000LL

static int plan_env(struct arena *a, const VmConfig *cfg, struct vm_plan *p, struct berth_err *err);
static int plan_health(const ContainerSpec *cs, struct vm_plan *p, struct berth_err *err);
static int plan_volumes(struct arena *a, const char *id, const ContainerSpec *cs, struct vm_plan *p,
                        struct berth_err *err);
static int volume_name_ok(const char *name);
static int mount_path_ok(const char *path);

/* Ports from config.container.ports, else metadata["exposed_ports"]. */
int vm_plan_ports(struct arena *a, const VmConfig *cfg, struct vm_plan *p, struct berth_err *err)
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

/* ContainerSpec.health_check -> the container's check: the command in exec
 * form with the documented defaults filled in (so an image's own timings
 * never stand in for them), `disable` -> no check at all. Without the
 * message the image's HEALTHCHECK applies as it is. */
static int plan_health(const ContainerSpec *cs, struct vm_plan *p, struct berth_err *err)
{
    const Metal__Vmprovisioner__V1__HealthCheck *hc = cs->health_check;
    struct backend_health_check *h = &p->health;

    if (hc == NULL)
        return 0;
    memset(h, 0, sizeof(*h));
    if (hc->disable) {
        if (hc->n_command > 0)
            return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                                 "field 'config.container.healthCheck.disable': a disabled check "
                                 "takes no command");
        h->disable = 1;
        p->spec.health = h;
        return 0;
    }
    for (size_t i = 0; i < hc->n_command; i++)
        if (hc->command[i][0] == '\0')
            return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                                 "field 'config.container.healthCheck.command[%zu]' is empty", i);
    if (hc->interval_ms < 0 || hc->timeout_ms < 0 || hc->start_period_ms < 0 || hc->retries < 0) {
        const char *f = hc->interval_ms < 0  ? "intervalMs"
                        : hc->timeout_ms < 0 ? "timeoutMs"
                        : hc->retries < 0    ? "retries"
                                             : "startPeriodMs";
        return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                             "field 'config.container.healthCheck.%s' is negative", f);
    }
    h->test = (const char *const *)hc->command;
    h->n_test = hc->n_command;
    h->interval_ns = (int64_t)(hc->interval_ms ? hc->interval_ms : HEALTH_DEFAULT_MS) * NS_PER_MS;
    h->timeout_ns = (int64_t)(hc->timeout_ms ? hc->timeout_ms : HEALTH_DEFAULT_MS) * NS_PER_MS;
    h->retries = hc->retries ? hc->retries : HEALTH_DEFAULT_RETRIES;
    h->start_period_ns = (int64_t)hc->start_period_ms * NS_PER_MS;
    p->spec.health = h;
    return 0;
}

/* [a-z0-9][a-z0-9_.-]{0,62} */
static int volume_name_ok(const char *name)
{
    size_t n = strlen(name);

    if (n == 0 || n > VOLUME_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        int alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');

        if (!alnum && (i == 0 || (c != '_' && c != '.' && c != '-')))
            return 0;
    }
    return 1;
}

/* Absolute, not "/" (nor only slashes), no ".." component, no control
 * characters, at most MOUNT_PATH_MAX bytes. */
static int mount_path_ok(const char *path)
{
    size_t n = strlen(path);
    int only_slashes = 1;

    if (n < 2 || n > MOUNT_PATH_MAX || path[0] != '/')
        return 0;
    for (const char *s = path; *s != '\0';) {
        size_t len;

        while (*s == '/')
            s++;
        len = strcspn(s, "/");
        if (len == 2 && s[0] == '.' && s[1] == '.')
            return 0;
        if (len > 0)
            only_slashes = 0;
        s += len;
    }
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)path[i] < 0x20 || path[i] == 0x7f)
            return 0;
    return !only_slashes;
}

/* ContainerSpec.volumes -> named volumes "berth-<id>-<name>" mounted at
 * their paths, each labelled with the VM it belongs to. */
static int plan_volumes(struct arena *a, const char *id, const ContainerSpec *cs, struct vm_plan *p,
                        struct berth_err *err)
{
    if (cs->n_volumes == 0)
        return 0;
    if (cs->n_volumes > MAX_VOLUMES)
        return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                             "field 'config.container.volumes': %zu volumes, more than %d",
                             cs->n_volumes, MAX_VOLUMES);
    p->volumes = arena_alloc(a, cs->n_volumes * sizeof(*p->volumes));
    if (p->volumes == NULL)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    for (size_t i = 0; i < cs->n_volumes; i++) {
        const Metal__Vmprovisioner__V1__Volume *v = cs->volumes[i];
        char quoted[80];

        if (!volume_name_ok(v->name)) {
            berth_err_quote(quoted, sizeof(quoted), v->name, 64);
            return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                                 "field 'config.container.volumes[%zu].name': '%s' is not "
                                 "[a-z0-9][a-z0-9_.-]{0,62}",
                                 i, quoted);
        }
        if (!mount_path_ok(v->mount_path)) {
            berth_err_quote(quoted, sizeof(quoted), v->mount_path, 64);
            return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                                 "field 'config.container.volumes[%zu].mountPath': '%s' is not an "
                                 "absolute path other than / without '..'",
                                 i, quoted);
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(cs->volumes[j]->name, v->name) == 0)
                return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                                     "field 'config.container.volumes[%zu].name': '%s' is "
                                     "volumes[%zu] already",
                                     i, v->name, j);
            if (strcmp(cs->volumes[j]->mount_path, v->mount_path) == 0) {
                berth_err_quote(quoted, sizeof(quoted), v->mount_path, 64);
                return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                                     "field 'config.container.volumes[%zu].mountPath': '%s' is "
                                     "the mount path of volumes[%zu] already",
                                     i, quoted, j);
            }
        }
        p->volumes[i].name = vm_plan_volume_name(a, id, v->name);
        p->volumes[i].target = v->mount_path;
        p->volumes[i].read_only = v->read_only;
        if (p->volumes[i].name == NULL)
            return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    }
    vm_plan_volume_labels(id, p->volume_labels);
    p->spec.volumes = p->volumes;
    p->spec.n_volumes = cs->n_volumes;
    p->spec.volume_labels = p->volume_labels;
    p->spec.n_volume_labels = 2;
    return 0;
}

const char *vm_plan_volume_name(struct arena *a, const char *id, const char *name)
{
    return arena_printf(a, "berth-%s-%s", id, name);
}

void vm_plan_volume_labels(const char *id, struct backend_label out[2])
{
    out[0] = (struct backend_label){LABEL_KIND, "vm"};
    out[1] = (struct backend_label){LABEL_VM_ID, id};
}

/* ContainerSpec.restart_policy, health_check and volumes -> the engine's
 * restart policy, health check and named volumes. */
static int plan_runtime(struct arena *a, const char *id, const ContainerSpec *cs, struct vm_plan *p,
                        struct berth_err *err)
{
    const Metal__Vmprovisioner__V1__RestartPolicy *rp;

    if (cs == NULL)
        return 0;
    if (plan_health(cs, p, err) < 0 || plan_volumes(a, id, cs, p, err) < 0)
        return -1;
    rp = cs->restart_policy;
    if (rp == NULL)
        return 0;
    switch (rp->mode) {
    case METAL__VMPROVISIONER__V1__RESTART_MODE__RESTART_MODE_UNSPECIFIED:
    case METAL__VMPROVISIONER__V1__RESTART_MODE__RESTART_MODE_NO:
        p->spec.restart_policy = "no";
        break;
    case METAL__VMPROVISIONER__V1__RESTART_MODE__RESTART_MODE_ON_FAILURE:
        p->spec.restart_policy = "on-failure";
        break;
    case METAL__VMPROVISIONER__V1__RESTART_MODE__RESTART_MODE_ALWAYS:
        p->spec.restart_policy = "always";
        break;
    case METAL__VMPROVISIONER__V1__RESTART_MODE__RESTART_MODE_UNLESS_STOPPED:
        p->spec.restart_policy = "unless-stopped";
        break;
    default:
        return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                             "field 'config.container.restartPolicy.mode' has unknown value %d",
                             (int)rp->mode);
    }
    if (rp->max_retries < 0)
        return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                             "field 'config.container.restartPolicy.maxRetries': %d is negative",
                             (int)rp->max_retries);
    if (rp->max_retries > 0 &&
        rp->mode != METAL__VMPROVISIONER__V1__RESTART_MODE__RESTART_MODE_ON_FAILURE)
        return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                             "field 'config.container.restartPolicy.maxRetries' is for "
                             "RESTART_MODE_ON_FAILURE only");
    p->spec.restart_max_retries = (int)rp->max_retries;
    return 0;
}

/* Validate a VmConfig and turn it into a container spec with our labels. */
int vm_plan_build(struct arena *a, const char *id, const char *customer, const VmConfig *cfg,
                  int64_t created, struct vm_plan *p, struct berth_err *err)
{
    const ContainerSpec *cs = cfg->container;
    const char *image = cs && cs->image[0] ? cs->image : NULL;
    struct image_ref ref;
    struct buf json;
    char *config_json;

    if (image == NULL)
        image = service_map_get((void *const *)cfg->metadata, cfg->n_metadata, "docker_image");
    if (image == NULL || image[0] == '\0')
        return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                             "field 'config.container.image' is required (or "
                             "config.metadata[\"docker_image\"])");
    if (image_ref_parse(image,
                        cs && cs->image[0] ? "config.container.image"
                                           : "config.metadata[\"docker_image\"]",
                        &ref, err) < 0)
        return -1;
    if (cs && (cs->pull_policy < METAL__VMPROVISIONER__V1__PULL_POLICY__PULL_POLICY_UNSPECIFIED ||
               cs->pull_policy > METAL__VMPROVISIONER__V1__PULL_POLICY__PULL_POLICY_NEVER))
        return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                             "field 'config.container.pullPolicy': %d is not a pull policy",
                             (int)cs->pull_policy);
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
    if (vm_plan_ports(a, cfg, p, err) < 0 || plan_env(a, cfg, p, err) < 0 ||
        plan_runtime(a, id, cs, p, err) < 0)
        return -1;
    p->spec.name = arena_printf(a, VM_NAME_PREFIX "%s", id);
    p->spec.image = image;
    if (cs && cs->n_command > 0) {
        p->spec.cmd = (const char *const *)cs->command;
        p->spec.n_cmd = cs->n_command;
    }
    p->spec.working_dir = cs ? cs->working_dir : NULL;
    if (cs && cs->pull_policy == METAL__VMPROVISIONER__V1__PULL_POLICY__PULL_POLICY_ALWAYS)
        p->spec.pull_policy = BACKEND_PULL_ALWAYS;
    else if (cs && cs->pull_policy == METAL__VMPROVISIONER__V1__PULL_POLICY__PULL_POLICY_NEVER)
        p->spec.pull_policy = BACKEND_PULL_NEVER;
    if (cfg->cpu && cfg->cpu->vcpu_count > 0)
        p->spec.nano_cpus = (int64_t)cfg->cpu->vcpu_count * 1000000000;
    if (cfg->memory)
        p->spec.memory_bytes = cfg->memory->size_bytes;

    /* The submitted config rides along as a label so a restart of berthd can
     * rebuild the record from the container alone. */
    buf_init(&json, CONFIG_LABEL_MAX);
    if (json_codec_encode(&cfg->base, &json, err) < 0) {
        buf_release(&json);
        /* Over the label's cap is the caller's config, not a lack of room. */
        if (err->code == BERTH_RESOURCE_EXHAUSTED && strncmp(err->msg, "data larger", 11) == 0) {
            berth_err_clear(err);
            return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                                 "field 'config': larger than the %d bytes of JSON a VM's config "
                                 "label may hold",
                                 CONFIG_LABEL_MAX);
        }
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
    /* One customer's VMs share a network no other customer's reach. */
    p->spec.network = service_network_name(a, "berth-c-", customer, "berth-default");
    if (p->spec.network == NULL)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    return 0;
}
