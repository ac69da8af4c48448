/* VmService answers from registry records: GetVmInfo (config, network,
 * backend details, cached metrics) and the pages of ListVms. */
#include <stdlib.h>
#include <string.h>

#include "berth/base64.h"
#include "berth/buf.h"
#include "berth/clock.h"
#include "berth/service_util.h"
#include "vm_internal.h"

int vm_view_config(struct arena *a, const struct vm_snapshot *snap, VmConfig **out,
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
static Metal__Vmprovisioner__V1__HealthState view_health(const struct vm_snapshot *v);

/* While a VM runs (or is paused): NONE when no check applies, else what
 * the Engine's check says. A VM that does not run has no health to tell
 * (UNSPECIFIED: the field is left out), whatever the Engine kept of its
 * last run. */
static Metal__Vmprovisioner__V1__HealthState view_health(const struct vm_snapshot *v)
{
    if (v->state != VM_STATE_RUNNING && v->state != VM_STATE_PAUSED)
        return METAL__VMPROVISIONER__V1__HEALTH_STATE__HEALTH_STATE_UNSPECIFIED;
    switch (v->health) {
    case BACKEND_HEALTH_NONE:
        return METAL__VMPROVISIONER__V1__HEALTH_STATE__HEALTH_STATE_NONE;
    case BACKEND_HEALTH_STARTING:
        return METAL__VMPROVISIONER__V1__HEALTH_STATE__HEALTH_STATE_STARTING;
    case BACKEND_HEALTH_HEALTHY:
        return METAL__VMPROVISIONER__V1__HEALTH_STATE__HEALTH_STATE_HEALTHY;
    case BACKEND_HEALTH_UNHEALTHY:
        return METAL__VMPROVISIONER__V1__HEALTH_STATE__HEALTH_STATE_UNHEALTHY;
    default:
        return METAL__VMPROVISIONER__V1__HEALTH_STATE__HEALTH_STATE_UNSPECIFIED;
    }
}

static const char *vm_view_metrics_source(enum backend_stats_source source);

/* The backend_info value of a sample's source. */
static const char *vm_view_metrics_source(enum backend_stats_source source)
{
    switch (source) {
    case BACKEND_STATS_CGROUP:
        return "cgroup";
    case BACKEND_STATS_ENGINE:
        return "engine";
    case BACKEND_STATS_FAKE:
        break;
    }
    return "fake";
}

static int add_backend_info(struct arena *a, Metal__Vmprovisioner__V1__GetVmInfoResponse *r,
                            const char *key, const char *value, struct berth_err *err)
{
    return service_map_add(
        a, &metal__vmprovisioner__v1__get_vm_info_response__backend_info_entry__descriptor,
        (void ***)&r->backend_info, &r->n_backend_info, key, value, err);
}

int vm_view_info(struct arena *a, const char *backend_name, struct vm_snapshot *snap,
                 ProtobufCMessage **out, struct berth_err *err)
{
    Metal__Vmprovisioner__V1__GetVmInfoResponse *r;
    Metal__Vmprovisioner__V1__VmNetworkInfo *net;
    int rc = -1;

    r = arena_message(a, &metal__vmprovisioner__v1__get_vm_info_response__descriptor);
    net = arena_message(a, &metal__vmprovisioner__v1__vm_network_info__descriptor);
    if (r == NULL || net == NULL) {
        berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    r->vm_id = arena_strdup(a, snap->id);
    r->state = (Metal__Vmprovisioner__V1__VmState)snap->state;
    r->health = view_health(snap);
    r->restart_count = snap->restart_count;
    if (r->vm_id == NULL || vm_view_config(a, snap, &r->config, err) < 0)
        goto out;
    if (add_backend_info(a, r, "backend", backend_name, err) < 0 ||
        add_backend_info(a, r, "container_id", snap->container_id, err) < 0 ||
        add_backend_info(a, r, "container_name", snap->container_name, err) < 0 ||
        add_backend_info(a, r, "image", snap->image, err) < 0 ||
        add_backend_info(a, r, "customer_id", snap->customer_id, err) < 0)
        goto out;
    if (snap->oom_killed && add_backend_info(a, r, "oom_killed", "true", err) < 0)
        goto out;
    if (snap->state == VM_STATE_SHUTDOWN &&
        add_backend_info(a, r, "exit_code", arena_printf(a, "%d", snap->exit_code), err) < 0)
        goto out;

    if (snap->state != VM_STATE_RUNNING && snap->state != VM_STATE_PAUSED) {
        /* A VM that does not run has no address and publishes nothing: show
         * the ports as requested (host port 0: the Engine picks at boot), the
         * same before and after a restart of berthd. */
        struct vm_plan plan;
        memset(&plan, 0, sizeof(plan));
        if (vm_plan_ports(a, r->config, &plan, err) < 0)
            goto out;
        free(snap->ports);
        snap->ports = NULL;
        snap->n_ports = 0;
        if (plan.spec.n_ports > 0) {
            snap->ports = malloc(plan.spec.n_ports * sizeof(*snap->ports));
            if (snap->ports == NULL) {
                berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
                goto out;
            }
            memcpy(snap->ports, plan.ports, plan.spec.n_ports * sizeof(*snap->ports));
            snap->n_ports = plan.spec.n_ports;
        }
        snap->ip_address[0] = snap->mac_address[0] = snap->gateway[0] = '\0';
    }
    net->ip_address = arena_strdup(a, snap->ip_address);
    net->mac_address = arena_strdup(a, snap->mac_address);
    net->gateway = arena_strdup(a, snap->gateway);
    net->port_mappings = arena_alloc(a, (snap->n_ports + 1) * sizeof(*net->port_mappings));
    if (!net->ip_address || !net->mac_address || !net->gateway || !net->port_mappings) {
        berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < snap->n_ports; i++) {
        PortMapping *pm = arena_message(a, &metal__vmprovisioner__v1__port_mapping__descriptor);
        if (pm == NULL || (pm->protocol = arena_strdup(a, snap->ports[i].protocol)) == NULL) {
            berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
            goto out;
        }
        pm->container_port = snap->ports[i].container_port;
        pm->host_port = snap->ports[i].host_port;
        net->port_mappings[net->n_port_mappings++] = pm;
    }
    r->network_info = net;

    if (snap->metrics.sampled_at_unix_ms > 0) {
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
        m->cpu_usage_percent = snap->metrics.cpu_percent;
        m->memory_usage_bytes = snap->metrics.memory_bytes;
        ns->bytes_received = snap->metrics.rx_bytes;
        ns->bytes_transmitted = snap->metrics.tx_bytes;
        ns->packets_received = snap->metrics.rx_packets;
        ns->packets_transmitted = snap->metrics.tx_packets;
        ss->bytes_read = snap->metrics.read_bytes;
        ss->bytes_written = snap->metrics.write_bytes;
        ss->read_operations = snap->metrics.read_ops;
        ss->write_operations = snap->metrics.write_ops;
        m->network_stats = ns;
        m->storage_stats = ss;
        m->sampled_at_unix_ms = snap->metrics.sampled_at_unix_ms;
        /* Which reading the numbers are: the kernel's files or the Engine's. */
        if (add_backend_info(a, r, "metrics_source", vm_view_metrics_source(snap->metrics.source),
                             err) < 0)
            goto out;
        if (snap->started_unix_ms > 0 &&
            (snap->state == VM_STATE_RUNNING || snap->state == VM_STATE_PAUSED)) {
            int64_t up = (berth_unix_ms() - snap->started_unix_ms) / 1000;
            m->uptime_seconds = up > 0 ? up : 0;
        }
        r->metrics = m;
    }
    *out = &r->base;
    rc = 0;
out:
    return rc;
}

int vm_view_list(struct arena *a, const Metal__Vmprovisioner__V1__ListVmsRequest *req,
                 const char *after, size_t page, const struct vm_snapshot *list, size_t n,
                 ProtobufCMessage **out, struct berth_err *err)
{
    Metal__Vmprovisioner__V1__ListVmsResponse *r;
    size_t matched = 0;
    int rc = -1;

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
        info->health = view_health(v);
        info->vcpu_count = v->vcpu_count;
        info->memory_size_bytes = v->memory_bytes;
        info->created_timestamp = v->created_unix;
        info->modified_timestamp = v->modified_unix;
        if (vm_view_config(a, v, &cfg, err) < 0)
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
    return rc;
}
