/* `berthd vm ...`: VmService from a shell. Each command builds its request
 * message, calls it, and prints a table or line for people, or the Connect
 * JSON with -o json. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli_internal.h"
#include "metal/vmprovisioner/v1/vmprovisioner.pb-c.h"

#define VM_SVC "/metal.vmprovisioner.v1.VmService/"
#define VM_STATE_PREFIX "VM_STATE_"
#define VM_MAX_REPEATED 256

static int vm_ls(const struct cli_opts *o, int argc, char **argv);
static int vm_create(const struct cli_opts *o, int argc, char **argv);
static int vm_info(const struct cli_opts *o, int argc, char **argv);
static int vm_lifecycle(const struct cli_opts *o, int argc, char **argv, const char *verb);
static int vm_boot(const struct cli_opts *o, int argc, char **argv);
static int vm_shutdown(const struct cli_opts *o, int argc, char **argv);
static int vm_pause(const struct cli_opts *o, int argc, char **argv);
static int vm_resume(const struct cli_opts *o, int argc, char **argv);
static int vm_reboot(const struct cli_opts *o, int argc, char **argv);
static int vm_rm(const struct cli_opts *o, int argc, char **argv);
static int vm_print_raw(const struct cli_opts *o, const struct buf *raw);
static int vm_parse_memory(const char *s, int64_t *out);
static int vm_parse_port(const char *s, Metal__Vmprovisioner__V1__PortMapping *p);

const struct cli_command cli_vm_commands[] = {
    {"vm", "ls", "[--state created|running|paused|shutdown]...", "list the VMs", vm_ls},
    {"vm", "create",
     "ID --image IMAGE [--port PORT[:HOSTPORT][/udp]]... [--env K=V]... [--cpu N] "
     "[--memory 512m] [--customer ID] [--workdir DIR] [--] [CMD...]",
     "create a VM (a container of IMAGE; boot it to start it)", vm_create},
    {"vm", "info", "ID", "show a VM: state, image, network, ports, metrics", vm_info},
    {"vm", "boot", "ID", "start a created or shut down VM", vm_boot},
    {"vm", "shutdown", "ID [--force] [--timeout SECONDS]", "stop a running VM", vm_shutdown},
    {"vm", "pause", "ID", "freeze a running VM", vm_pause},
    {"vm", "resume", "ID", "unfreeze a paused VM", vm_resume},
    {"vm", "reboot", "ID [--force]", "restart a running VM", vm_reboot},
    {"vm", "rm", "ID [--force]", "delete a VM (a running or paused one needs --force)", vm_rm},
    {NULL, NULL, NULL, NULL, NULL},
};

static const struct cli_command *vm_command(const char *verb)
{
    for (const struct cli_command *c = cli_vm_commands; c->group != NULL; c++)
        if (strcmp(c->verb, verb) == 0)
            return c;
    return NULL;
}

static int vm_print_raw(const struct cli_opts *o, const struct buf *raw)
{
    fprintf(o->out, "%s\n", raw->data ? raw->data : "{}");
    return 0;
}

static int vm_ls(const struct cli_opts *o, int argc, char **argv)
{
    Metal__Vmprovisioner__V1__ListVmsRequest req = METAL__VMPROVISIONER__V1__LIST_VMS_REQUEST__INIT;
    Metal__Vmprovisioner__V1__VmState states[8];
    Metal__Vmprovisioner__V1__ListVmsResponse *resp;
    const ProtobufCEnumDescriptor *ed = &metal__vmprovisioner__v1__vm_state__descriptor;
    static const char *const header[] = {"ID", "STATE", "CUSTOMER", "CPUS", "MEMORY", "AGE"};
    ProtobufCMessage *out = NULL;
    struct arena *a = arena_new();
    struct cli_table t;
    struct berth_err err;
    struct buf raw;
    int rc;

    berth_err_clear(&err);
    buf_init(&raw, (size_t)64 << 20);
    if (a == NULL)
        return BERTH_RESOURCE_EXHAUSTED;
    for (int i = 0; i < argc; i++) {
        const char *v;
        char upper[64];
        const ProtobufCEnumValue *ev;

        if (!cli_is_flag(argv[i], "--state")) {
            rc = cli_usage_error(o, vm_command("ls"), "unexpected argument '%s'", argv[i]);
            goto out;
        }
        v = cli_take_value(argc, argv, &i);
        if (v == NULL || strlen(v) > 40 || req.n_state_filter >= 8) {
            rc = cli_usage_error(o, vm_command("ls"), "--state needs a state");
            goto out;
        }
        snprintf(upper, sizeof(upper), VM_STATE_PREFIX "%s", v);
        for (char *p = upper; *p; p++)
            if (*p >= 'a' && *p <= 'z')
                *p = (char)(*p - 'a' + 'A');
        ev = protobuf_c_enum_descriptor_get_value_by_name(ed, upper);
        if (ev == NULL || ev->value == 0) {
            rc = cli_usage_error(o, vm_command("ls"),
                                 "--state '%s': expected created, running, paused or shutdown", v);
            goto out;
        }
        states[req.n_state_filter++] = (Metal__Vmprovisioner__V1__VmState)ev->value;
    }
    req.state_filter = states;
    if (cli_call(o, VM_SVC "ListVms", &req.base,
                 &metal__vmprovisioner__v1__list_vms_response__descriptor, a, &out, &raw,
                 &err) < 0) {
        rc = cli_fail(o, &err);
        goto out;
    }
    if (o->json) {
        rc = vm_print_raw(o, &raw);
        goto out;
    }
    resp = (Metal__Vmprovisioner__V1__ListVmsResponse *)out;
    if (cli_table_init(&t, 6, header) < 0) {
        rc = BERTH_RESOURCE_EXHAUSTED;
        goto out;
    }
    rc = 0;
    for (size_t i = 0; i < resp->n_vms; i++) {
        const Metal__Vmprovisioner__V1__VmInfo *vm = resp->vms[i];
        char state[32], cpus[16], mem[32], age[32];
        const char *row[6];

        cli_enum_word(ed, vm->state, VM_STATE_PREFIX, state, sizeof(state));
        snprintf(cpus, sizeof(cpus), "%d", vm->vcpu_count);
        if (vm->vcpu_count == 0)
            snprintf(cpus, sizeof(cpus), "-");
        if (vm->memory_size_bytes > 0)
            cli_bytes(vm->memory_size_bytes, mem, sizeof(mem));
        else
            snprintf(mem, sizeof(mem), "-");
        cli_age((int64_t)time(NULL) - vm->created_timestamp, age, sizeof(age));
        row[0] = vm->vm_id;
        row[1] = state;
        row[2] = vm->customer_id[0] ? vm->customer_id : "-";
        row[3] = cpus;
        row[4] = mem;
        row[5] = age;
        if (cli_table_add(&t, row) < 0) {
            rc = BERTH_RESOURCE_EXHAUSTED;
            break;
        }
    }
    if (rc == 0)
        cli_table_print(&t, o->out);
    cli_table_release(&t);
out:
    buf_release(&raw);
    arena_free(a);
    return rc;
}

/* "512m", "1g", "1048576", "2Gi": bytes. */
static int vm_parse_memory(const char *s, int64_t *out)
{
    char *end;
    double v = strtod(s, &end);
    int64_t mult = 1;

    if (end == s || v < 0)
        return -1;
    if (*end == 'k' || *end == 'K')
        mult = 1024;
    else if (*end == 'm' || *end == 'M')
        mult = 1024 * 1024;
    else if (*end == 'g' || *end == 'G')
        mult = 1024 * 1024 * 1024;
    else if (*end != '\0')
        return -1;
    if (*end != '\0') {
        end++;
        if (*end == 'i')
            end++;
        if (*end == 'b' || *end == 'B')
            end++;
        if (*end != '\0')
            return -1;
    }
    if (v * (double)mult > 9.0e18)
        return -1;
    *out = (int64_t)(v * (double)mult);
    return 0;
}

/* "8080", "8080:30080", "53/udp", "8080:30080/tcp". */
static int vm_parse_port(const char *s, Metal__Vmprovisioner__V1__PortMapping *p)
{
    char *end;
    long c, h = 0;

    c = strtol(s, &end, 10);
    if (end == s || c < 1 || c > 65535)
        return -1;
    if (*end == ':') {
        const char *hs = end + 1;
        h = strtol(hs, &end, 10);
        if (end == hs || h < 0 || h > 65535)
            return -1;
    }
    p->protocol = "tcp";
    if (*end == '/') {
        if (strcmp(end + 1, "tcp") == 0)
            p->protocol = "tcp";
        else if (strcmp(end + 1, "udp") == 0)
            p->protocol = "udp";
        else
            return -1;
    } else if (*end != '\0') {
        return -1;
    }
    p->container_port = (int32_t)c;
    p->host_port = (int32_t)h;
    return 0;
}

static int vm_create(const struct cli_opts *o, int argc, char **argv)
{
    const struct cli_command *cmd = vm_command("create");
    Metal__Vmprovisioner__V1__CreateVmRequest req =
        METAL__VMPROVISIONER__V1__CREATE_VM_REQUEST__INIT;
    Metal__Vmprovisioner__V1__VmConfig cfg = METAL__VMPROVISIONER__V1__VM_CONFIG__INIT;
    Metal__Vmprovisioner__V1__ContainerSpec spec = METAL__VMPROVISIONER__V1__CONTAINER_SPEC__INIT;
    Metal__Vmprovisioner__V1__CpuConfig cpu = METAL__VMPROVISIONER__V1__CPU_CONFIG__INIT;
    Metal__Vmprovisioner__V1__MemoryConfig mem = METAL__VMPROVISIONER__V1__MEMORY_CONFIG__INIT;
    Metal__Vmprovisioner__V1__PortMapping ports[VM_MAX_REPEATED], *port_ptrs[VM_MAX_REPEATED];
    Metal__Vmprovisioner__V1__ContainerSpec__EnvEntry env[VM_MAX_REPEATED],
        *env_ptrs[VM_MAX_REPEATED];
    char *cmdv[VM_MAX_REPEATED];
    const ProtobufCEnumDescriptor *ed = &metal__vmprovisioner__v1__vm_state__descriptor;
    ProtobufCMessage *out = NULL;
    struct arena *a = arena_new();
    const char *id = NULL;
    struct berth_err err;
    struct buf raw;
    int rc = -1, dashdash = 0;

    berth_err_clear(&err);
    buf_init(&raw, (size_t)1 << 20);
    if (a == NULL)
        return BERTH_RESOURCE_EXHAUSTED;
    for (int i = 0; i < argc && rc < 0; i++) {
        const char *v = NULL;

        if (!dashdash && strcmp(argv[i], "--") == 0) {
            dashdash = 1;
            continue;
        }
        if (dashdash || argv[i][0] != '-') {
            if (id == NULL && !dashdash)
                id = argv[i];
            else if (spec.n_command < VM_MAX_REPEATED)
                cmdv[spec.n_command++] = argv[i];
            else
                rc = cli_usage_error(o, cmd, "more than %d command words", VM_MAX_REPEATED);
            continue;
        }
        if (cli_is_flag(argv[i], "--image") || cli_is_flag(argv[i], "--port") ||
            cli_is_flag(argv[i], "--env") || cli_is_flag(argv[i], "--cpu") ||
            cli_is_flag(argv[i], "--memory") || cli_is_flag(argv[i], "--customer") ||
            cli_is_flag(argv[i], "--workdir")) {
            const char *flag = argv[i];
            v = cli_take_value(argc, argv, &i);
            if (v == NULL) {
                rc = cli_usage_error(o, cmd, "%s needs a value", flag);
                break;
            }
            if (cli_is_flag(flag, "--image")) {
                spec.image = (char *)v;
            } else if (cli_is_flag(flag, "--customer")) {
                req.customer_id = (char *)v;
            } else if (cli_is_flag(flag, "--workdir")) {
                spec.working_dir = (char *)v;
            } else if (cli_is_flag(flag, "--port")) {
                Metal__Vmprovisioner__V1__PortMapping *p = &ports[spec.n_ports];
                if (spec.n_ports >= VM_MAX_REPEATED) {
                    rc = cli_usage_error(o, cmd, "more than %d ports", VM_MAX_REPEATED);
                    break;
                }
                metal__vmprovisioner__v1__port_mapping__init(p);
                if (vm_parse_port(v, p) < 0)
                    rc = cli_usage_error(o, cmd, "--port '%s': expected PORT[:HOSTPORT][/udp]", v);
                else
                    port_ptrs[spec.n_ports++] = p;
            } else if (cli_is_flag(flag, "--env")) {
                Metal__Vmprovisioner__V1__ContainerSpec__EnvEntry *e = &env[spec.n_env];
                const char *eq = strchr(v, '=');
                if (spec.n_env >= VM_MAX_REPEATED) {
                    rc = cli_usage_error(o, cmd, "more than %d --env", VM_MAX_REPEATED);
                    break;
                }
                if (eq == NULL || eq == v) {
                    rc = cli_usage_error(o, cmd, "--env needs NAME=VALUE");
                    break;
                }
                metal__vmprovisioner__v1__container_spec__env_entry__init(e);
                e->key = arena_strndup(a, v, (size_t)(eq - v));
                e->value = (char *)eq + 1;
                if (e->key == NULL)
                    rc = BERTH_RESOURCE_EXHAUSTED;
                else
                    env_ptrs[spec.n_env++] = e;
            } else if (cli_is_flag(flag, "--cpu")) {
                char *end;
                long n = strtol(v, &end, 10);
                if (*end != '\0' || n < 1 || n > 1024)
                    rc = cli_usage_error(o, cmd, "--cpu '%s': expected 1 to 1024", v);
                cpu.vcpu_count = (int32_t)n;
                cfg.cpu = &cpu;
            } else {
                if (vm_parse_memory(v, &mem.size_bytes) < 0)
                    rc = cli_usage_error(o, cmd, "--memory '%s': expected e.g. 512m or 2g", v);
                cfg.memory = &mem;
            }
            continue;
        }
        rc = cli_usage_error(o, cmd, "unknown option '%s'", argv[i]);
    }
    if (rc < 0 && (id == NULL || spec.image[0] == '\0'))
        rc = cli_usage_error(o, cmd, "an ID and --image are required");
    if (rc >= 0)
        goto out;
    req.vm_id = (char *)id;
    spec.command = cmdv;
    spec.ports = port_ptrs;
    spec.env = env_ptrs;
    cfg.container = &spec;
    req.config = &cfg;
    if (cli_call(o, VM_SVC "CreateVm", &req.base,
                 &metal__vmprovisioner__v1__create_vm_response__descriptor, a, &out, &raw,
                 &err) < 0) {
        rc = cli_fail(o, &err);
    } else if (o->json) {
        rc = vm_print_raw(o, &raw);
    } else {
        const Metal__Vmprovisioner__V1__CreateVmResponse *r = (const void *)out;
        char state[32];
        cli_enum_word(ed, r->state, VM_STATE_PREFIX, state, sizeof(state));
        fprintf(o->out, "%s %s\n", r->vm_id, state);
        rc = 0;
    }
out:
    buf_release(&raw);
    arena_free(a);
    return rc;
}

static int vm_info(const struct cli_opts *o, int argc, char **argv)
{
    Metal__Vmprovisioner__V1__GetVmInfoRequest req =
        METAL__VMPROVISIONER__V1__GET_VM_INFO_REQUEST__INIT;
    const Metal__Vmprovisioner__V1__GetVmInfoResponse *r;
    const ProtobufCEnumDescriptor *ed = &metal__vmprovisioner__v1__vm_state__descriptor;
    ProtobufCMessage *out = NULL;
    struct arena *a;
    struct berth_err err;
    struct buf raw;
    char word[48], num[48];
    int rc = 0;

    if (argc != 1 || argv[0][0] == '-')
        return cli_usage_error(o, vm_command("info"), "expected one VM id");
    a = arena_new();
    if (a == NULL)
        return BERTH_RESOURCE_EXHAUSTED;
    berth_err_clear(&err);
    buf_init(&raw, (size_t)16 << 20);
    req.vm_id = argv[0];
    if (cli_call(o, VM_SVC "GetVmInfo", &req.base,
                 &metal__vmprovisioner__v1__get_vm_info_response__descriptor, a, &out, &raw,
                 &err) < 0) {
        rc = cli_fail(o, &err);
        goto out;
    }
    if (o->json) {
        rc = vm_print_raw(o, &raw);
        goto out;
    }
    r = (const void *)out;
    cli_enum_word(ed, r->state, VM_STATE_PREFIX, word, sizeof(word));
    fprintf(o->out, "ID:        %s\nSTATE:     %s\n", r->vm_id, word);
    if (r->health != 0) {
        cli_enum_word(&metal__vmprovisioner__v1__health_state__descriptor, r->health,
                      "HEALTH_STATE_", word, sizeof(word));
        fprintf(o->out, "HEALTH:    %s\n", word);
    }
    if (r->config && r->config->container && r->config->container->image[0])
        fprintf(o->out, "IMAGE:     %s\n", r->config->container->image);
    if (r->network_info != NULL) {
        const Metal__Vmprovisioner__V1__VmNetworkInfo *n = r->network_info;
        if (n->ip_address[0])
            fprintf(o->out, "IP:        %s\n", n->ip_address);
        for (size_t i = 0; i < n->n_port_mappings; i++)
            fprintf(o->out, "PORT:      %d/%s -> %d\n", n->port_mappings[i]->container_port,
                    n->port_mappings[i]->protocol, n->port_mappings[i]->host_port);
    }
    if (r->metrics != NULL) {
        const Metal__Vmprovisioner__V1__VmMetrics *m = r->metrics;
        cli_bytes(m->memory_usage_bytes, num, sizeof(num));
        fprintf(o->out, "CPU:       %.1f%%\nMEMORY:    %s\n", m->cpu_usage_percent, num);
        cli_age(m->uptime_seconds, num, sizeof(num));
        fprintf(o->out, "UPTIME:    %s\n", num);
    }
    for (size_t i = 0; i < r->n_backend_info; i++)
        fprintf(o->out, "%s: %s\n", r->backend_info[i]->key, r->backend_info[i]->value);
out:
    buf_release(&raw);
    arena_free(a);
    return rc;
}

/* boot, shutdown, pause, resume, reboot, rm: one id, maybe --force and
 * --timeout, one answer line "ID STATE". */
static int vm_lifecycle(const struct cli_opts *o, int argc, char **argv, const char *verb)
{
    static const struct {
        const char *verb, *method;
        const ProtobufCMessageDescriptor *in, *out;
        int force, timeout;
    } rows[] = {
        {"boot", "BootVm", &metal__vmprovisioner__v1__boot_vm_request__descriptor,
         &metal__vmprovisioner__v1__boot_vm_response__descriptor, 0, 0},
        {"shutdown", "ShutdownVm", &metal__vmprovisioner__v1__shutdown_vm_request__descriptor,
         &metal__vmprovisioner__v1__shutdown_vm_response__descriptor, 1, 1},
        {"pause", "PauseVm", &metal__vmprovisioner__v1__pause_vm_request__descriptor,
         &metal__vmprovisioner__v1__pause_vm_response__descriptor, 0, 0},
        {"resume", "ResumeVm", &metal__vmprovisioner__v1__resume_vm_request__descriptor,
         &metal__vmprovisioner__v1__resume_vm_response__descriptor, 0, 0},
        {"reboot", "RebootVm", &metal__vmprovisioner__v1__reboot_vm_request__descriptor,
         &metal__vmprovisioner__v1__reboot_vm_response__descriptor, 1, 0},
        {"rm", "DeleteVm", &metal__vmprovisioner__v1__delete_vm_request__descriptor,
         &metal__vmprovisioner__v1__delete_vm_response__descriptor, 1, 0},
    };
    const struct cli_command *cmd = vm_command(verb);
    const ProtobufCMessageDescriptor *in_desc = NULL, *out_desc = NULL;
    const ProtobufCFieldDescriptor *f;
    const char *method = NULL, *id = NULL;
    ProtobufCMessage *in, *out = NULL;
    int force = 0, allow_force = 0, allow_timeout = 0, rc;
    long timeout = 0;
    struct arena *a;
    struct berth_err err;
    struct buf raw, path;

    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        if (strcmp(rows[i].verb, verb) == 0) {
            method = rows[i].method;
            in_desc = rows[i].in;
            out_desc = rows[i].out;
            allow_force = rows[i].force;
            allow_timeout = rows[i].timeout;
        }
    if (method == NULL)
        return CLI_EXIT_USAGE;
    for (int i = 0; i < argc; i++) {
        if (allow_force && strcmp(argv[i], "--force") == 0) {
            force = 1;
        } else if (allow_timeout && cli_is_flag(argv[i], "--timeout")) {
            const char *v = cli_take_value(argc, argv, &i);
            char *end;
            timeout = v ? strtol(v, &end, 10) : -1;
            if (v == NULL || *end != '\0' || timeout < 0 || timeout > 3600)
                return cli_usage_error(o, cmd, "--timeout: expected seconds from 0 to 3600");
        } else if (argv[i][0] != '-' && id == NULL) {
            id = argv[i];
        } else {
            return cli_usage_error(o, cmd, "unexpected argument '%s'", argv[i]);
        }
    }
    if (id == NULL)
        return cli_usage_error(o, cmd, "expected a VM id");
    a = arena_new();
    if (a == NULL)
        return BERTH_RESOURCE_EXHAUSTED;
    berth_err_clear(&err);
    buf_init(&raw, (size_t)1 << 20);
    buf_init(&path, 256);
    in = arena_message(a, in_desc);
    rc = in == NULL || buf_printf(&path, NULL, VM_SVC "%s", method) < 0;
    if (rc) {
        rc = BERTH_RESOURCE_EXHAUSTED;
        goto out;
    }
    /* Every request of the table has vm_id; some have force / timeout_seconds. */
    f = protobuf_c_message_descriptor_get_field_by_name(in_desc, "vm_id");
    *(const char **)((char *)in + f->offset) = id;
    f = protobuf_c_message_descriptor_get_field_by_name(in_desc, "force");
    if (f != NULL)
        *(protobuf_c_boolean *)((char *)in + f->offset) = force;
    f = protobuf_c_message_descriptor_get_field_by_name(in_desc, "timeout_seconds");
    if (f != NULL)
        *(int32_t *)((char *)in + f->offset) = (int32_t)timeout;
    if (cli_call(o, path.data, in, out_desc, a, &out, &raw, &err) < 0) {
        rc = cli_fail(o, &err);
    } else if (o->json) {
        rc = vm_print_raw(o, &raw);
    } else {
        f = protobuf_c_message_descriptor_get_field_by_name(out_desc, "state");
        if (f != NULL) {
            char state[32];
            cli_enum_word(&metal__vmprovisioner__v1__vm_state__descriptor,
                          *(int *)((char *)out + f->offset), VM_STATE_PREFIX, state, sizeof(state));
            fprintf(o->out, "%s %s\n", id, state);
        } else {
            fprintf(o->out, "%s deleted\n", id);
        }
        rc = 0;
    }
out:
    buf_release(&raw);
    buf_release(&path);
    arena_free(a);
    return rc;
}

static int vm_boot(const struct cli_opts *o, int argc, char **argv)
{
    return vm_lifecycle(o, argc, argv, "boot");
}

static int vm_shutdown(const struct cli_opts *o, int argc, char **argv)
{
    return vm_lifecycle(o, argc, argv, "shutdown");
}

static int vm_pause(const struct cli_opts *o, int argc, char **argv)
{
    return vm_lifecycle(o, argc, argv, "pause");
}

static int vm_resume(const struct cli_opts *o, int argc, char **argv)
{
    return vm_lifecycle(o, argc, argv, "resume");
}

static int vm_reboot(const struct cli_opts *o, int argc, char **argv)
{
    return vm_lifecycle(o, argc, argv, "reboot");
}

static int vm_rm(const struct cli_opts *o, int argc, char **argv)
{
    return vm_lifecycle(o, argc, argv, "rm");
}
