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

static int plan_env(struct arena *a, const VmConfig *cfg, struct vm_plan *p, struct berth_err *err);
static const char *plan_item(const char *list, const char **item, size_t *len);

/* The next entry of a comma list from `list` on, with the blanks around it
 * dropped as metald dropped them ("8080/tcp, 9090/tcp"): *item and *len
 * (0 for an empty entry, which the caller refuses), and where to go on
 * from; NULL once the list is done (a trailing comma ends it). */
static const char *plan_item(const char *list, const char **item, size_t *len)
{
    size_t n;
    const char *start = list;

    if (*list == '\0')
        return NULL;
    n = strcspn(list, ",");
    list = list[n] == ',' ? list + n + 1 : list + n;
    while (n > 0 && (*start == ' ' || *start == '\t')) {
        start++;
        n--;
    }
    while (n > 0 && (start[n - 1] == ' ' || start[n - 1] == '\t'))
        n--;
    *item = start;
    *len = n;
    return list;
}

/* Ports from config.container.ports, else metadata["exposed_ports"]. */
int vm_plan_ports(struct arena *a, const VmConfig *cfg, struct vm_plan *p, struct berth_err *err)
{
    const ContainerSpec *cs = cfg->container;
    const char *meta;
    size_t n = 0, len;

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
    for (const char *rest = meta, *item; (rest = plan_item(rest, &item, &len)) != NULL;) {
        char *end;
        long port = strtol(item, &end, 10);
        const char *proto = "tcp";
        if (end == item || *item == '+' || *item == '-' || port < 1 || port > 65535)
            goto bad;
        if ((size_t)(end - item) < len) {
            size_t tail = len - (size_t)(end - item);
            if (tail == 4 && strncmp(end, "/tcp", 4) == 0)
                proto = "tcp";
            else if (tail == 4 && strncmp(end, "/udp", 4) == 0)
                proto = "udp";
            else
                goto bad;
        }
        p->ports[n].container_port = (int)port;
        p->ports[n].host_port = 0;
        memcpy(p->ports[n].protocol, proto, 4);
        n++;
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
    size_t n = 0, len;

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
    for (const char *rest = meta, *item; (rest = plan_item(rest, &item, &len)) != NULL;) {
        const char *eq = len > 0 ? memchr(item, '=', len) : NULL;
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
    }
    p->spec.env = p->env;
    p->spec.n_env = n;
    return 0;
}

/* The config as berthd keeps it, in the berth.config label and in the
 * record GetVmInfo answers from: the request's with every environment
 * value left out (config.container.env values become "", and
 * metadata["env_vars"] keeps its names: "K=,K2="). Env values may be
 * secrets, and a label is shown to anyone who may inspect the container;
 * the container itself has them. A copy in the arena. */
int vm_plan_kept(struct arena *a, const VmConfig *cfg, VmConfig **out, struct berth_err *err)
{
    size_t len = protobuf_c_message_get_packed_size(&cfg->base);
    uint8_t *bytes = arena_alloc(a, len + 1);
    VmConfig *copy;

    if (bytes == NULL)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    protobuf_c_message_pack(&cfg->base, bytes);
    copy = (VmConfig *)protobuf_c_message_unpack(&metal__vmprovisioner__v1__vm_config__descriptor,
                                                 arena_allocator(a), len, bytes);
    if (copy == NULL)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    for (size_t i = 0; copy->container != NULL && i < copy->container->n_env; i++)
        copy->container->env[i]->value = (char *)"";
    for (size_t i = 0; i < copy->n_metadata; i++) {
        Metal__Vmprovisioner__V1__VmConfig__MetadataEntry *m = copy->metadata[i];
        const char *item;
        size_t n;
        struct buf names;
        int bad = 0;

        if (m->key == NULL || strcmp(m->key, "env_vars") != 0 || m->value == NULL)
            continue;
        buf_init(&names, strlen(m->value) + 1);
        bad = buf_appends(&names, "", NULL) < 0;
        for (const char *rest = m->value; !bad && (rest = plan_item(rest, &item, &n)) != NULL;) {
            const char *eq = memchr(item, '=', n);
            bad = (names.len > 0 && buf_appends(&names, ",", NULL) < 0) ||
                  buf_append(&names, item, eq ? (size_t)(eq - item) + 1 : n, NULL) < 0;
        }
        m->value = bad ? NULL : arena_strndup(a, names.data, names.len);
        buf_release(&names);
        if (m->value == NULL)
            return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    }
    *out = copy;
    return 0;
}

/* ContainerSpec.restart_policy -> the engine's policy; health checks and
 * volumes are in the contract but not built yet: refused, never ignored. */
static int plan_runtime(const ContainerSpec *cs, struct vm_plan *p, struct berth_err *err)
{
    const Metal__Vmprovisioner__V1__RestartPolicy *rp;

    if (cs == NULL)
        return 0;
    if (cs->health_check != NULL)
        return berth_err_set(err, BERTH_UNIMPLEMENTED,
                             "field 'config.container.healthCheck' is not supported yet");
    if (cs->n_volumes > 0)
        return berth_err_set(err, BERTH_UNIMPLEMENTED,
                             "field 'config.container.volumes' is not supported yet");
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
        plan_runtime(cs, p, err) < 0)
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

    /* The submitted config (without env values) rides along as a label so a
     * restart of berthd can rebuild the record from the container alone. */
    if (vm_plan_kept(a, cfg, &p->kept, err) < 0)
        return -1;
    buf_init(&json, CONFIG_LABEL_MAX);
    if (json_codec_encode(&p->kept->base, &json, err) < 0) {
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
