/* `berthd logs ...` and `berthd watch`: berth.v1's LogService and
 * EventService from a shell; -f and watch follow server streams. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "berth/v1/observe.pb-c.h"
#include "cli_internal.h"

#define LOG_SVC "/berth.v1.LogService/"
#define EVENT_SVC "/berth.v1.EventService/"
#define OBSERVE_TAIL_MAX 10000

static int observe_logs(const struct cli_opts *o, int argc, char **argv);
static int observe_watch(const struct cli_opts *o, int argc, char **argv);
static void observe_print_entry(const struct cli_opts *o, const Berth__V1__LogEntry *e,
                                const char *json, size_t len);
static int observe_on_entry(void *arg, const ProtobufCMessage *msg, const char *json, size_t len);
static int observe_on_event(void *arg, const ProtobufCMessage *msg, const char *json, size_t len);

const struct cli_command cli_observe_commands[] = {
    {"logs", NULL, "VM | gw/ID | dep/ID [-f] [--tail N] [--instance ID] [--namespace NS]",
     "what a VM or the replicas of a gateway or deployment printed (-f: then follow)",
     observe_logs},
    {"watch", NULL, "[--kind vm|gateway|deployment]... [--namespace NS] [--id ID]",
     "every change of the objects berthd manages, as it happens", observe_watch},
    {NULL, NULL, NULL, NULL, NULL},
};

static void observe_print_entry(const struct cli_opts *o, const Berth__V1__LogEntry *e,
                                const char *json, size_t len)
{
    if (o->json && json != NULL) {
        fprintf(o->out, "%.*s\n", (int)len, json);
    } else if (e->instance_id[0] != '\0') {
        fprintf(o->out, "[%s] %s\n", e->instance_id, e->line);
    } else {
        fprintf(o->out, "%s\n", e->line);
    }
    fflush(o->out);
}

static int observe_on_entry(void *arg, const ProtobufCMessage *msg, const char *json, size_t len)
{
    observe_print_entry(arg, (const Berth__V1__LogEntry *)msg, json, len);
    return 0;
}

static int observe_logs(const struct cli_opts *o, int argc, char **argv)
{
    const struct cli_command *cmd = &cli_observe_commands[0];
    Berth__V1__GetLogsRequest req = BERTH__V1__GET_LOGS_REQUEST__INIT;
    const char *target = NULL;
    struct cli_opts so = *o;
    struct berth_err err;
    int follow = 0, rc = 0;

    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "-f") == 0 || strcmp(argv[i], "--follow") == 0) {
            follow = 1;
        } else if (cli_is_flag(argv[i], "--tail") || cli_is_flag(argv[i], "--instance") ||
                   cli_is_flag(argv[i], "--namespace")) {
            const char *flag = argv[i], *v = cli_take_value(argc, argv, &i);
            if (v == NULL)
                return cli_usage_error(o, cmd, "%s needs a value", flag);
            if (cli_is_flag(flag, "--tail")) {
                char *end;
                long n = strtol(v, &end, 10);
                if (*end != '\0' || n < 1 || n > OBSERVE_TAIL_MAX)
                    return cli_usage_error(o, cmd, "--tail '%s': expected 1 to %d", v,
                                           OBSERVE_TAIL_MAX);
                req.tail_lines = (int32_t)n;
            } else if (cli_is_flag(flag, "--instance")) {
                req.instance_id = (char *)v;
            } else {
                req.namespace_ = (char *)v;
            }
        } else if (target == NULL && argv[i][0] != '-') {
            target = argv[i];
        } else {
            return cli_usage_error(o, cmd, "unexpected argument '%s'", argv[i]);
        }
    }
    if (target == NULL || target[0] == '\0')
        return cli_usage_error(o, cmd, "expected a VM id, gw/ID or dep/ID");
    if (strncmp(target, "gw/", 3) == 0)
        req.gateway_id = (char *)target + 3;
    else if (strncmp(target, "dep/", 4) == 0)
        req.deployment_id = (char *)target + 4;
    else
        req.vm_id = (char *)target;
    berth_err_clear(&err);
    if (follow) {
        so.timeout_ms = 0;
        if (cli_stream(&so, LOG_SVC "StreamLogs", &req.base, &berth__v1__log_entry__descriptor,
                       observe_on_entry, &so, &err) < 0)
            rc = cli_fail(o, &err);
        return rc;
    }
    {
        struct arena *a = arena_new();
        ProtobufCMessage *out = NULL;
        struct buf raw;

        if (a == NULL)
            return BERTH_RESOURCE_EXHAUSTED;
        buf_init(&raw, (size_t)64 << 20);
        if (cli_call(o, LOG_SVC "GetLogs", &req.base, &berth__v1__get_logs_response__descriptor, a,
                     &out, &raw, &err) < 0) {
            rc = cli_fail(o, &err);
        } else if (o->json) {
            fprintf(o->out, "%s\n", raw.data);
        } else {
            const Berth__V1__GetLogsResponse *r = (const void *)out;
            for (size_t i = 0; i < r->n_entries; i++)
                observe_print_entry(o, r->entries[i], NULL, 0);
            if (r->truncated)
                fprintf(o->errout, "berthd: more lines matched than one answer holds\n");
        }
        buf_release(&raw);
        arena_free(a);
    }
    return rc;
}

static int observe_on_event(void *arg, const ProtobufCMessage *msg, const char *json, size_t len)
{
    const struct cli_opts *o = arg;
    const Berth__V1__Event *e = (const void *)msg;
    char type[32], kind[32], when[40];
    time_t secs = (time_t)(e->time_unix_ns / 1000000000);
    struct tm tm;

    if (o->json) {
        fprintf(o->out, "%.*s\n", (int)len, json);
        fflush(o->out);
        return 0;
    }
    cli_enum_word(&berth__v1__event_type__descriptor, e->type, "EVENT_TYPE_", type, sizeof(type));
    cli_enum_word(&berth__v1__object_kind__descriptor, e->kind, "OBJECT_KIND_", kind, sizeof(kind));
    if (e->time_unix_ns > 0 && gmtime_r(&secs, &tm) != NULL)
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    else
        snprintf(when, sizeof(when), "-");
    fprintf(o->out, "%s %-8s %-10s %s%s%s %s%s%s%s%s\n", when, type, kind,
            e->namespace_[0] ? e->namespace_ : "", e->namespace_[0] ? "/" : "", e->id,
            e->state[0] ? e->state : "-", e->health[0] ? " " : "", e->health,
            e->reason[0] ? " " : "", e->reason);
    fflush(o->out);
    return 0;
}

static int observe_watch(const struct cli_opts *o, int argc, char **argv)
{
    const struct cli_command *cmd = &cli_observe_commands[1];
    static const struct {
        const char *word;
        Berth__V1__ObjectKind kind;
    } kinds[] = {
        {"vm", BERTH__V1__OBJECT_KIND__OBJECT_KIND_VM},
        {"gateway", BERTH__V1__OBJECT_KIND__OBJECT_KIND_GATEWAY},
        {"gw", BERTH__V1__OBJECT_KIND__OBJECT_KIND_GATEWAY},
        {"deployment", BERTH__V1__OBJECT_KIND__OBJECT_KIND_DEPLOYMENT},
        {"dep", BERTH__V1__OBJECT_KIND__OBJECT_KIND_DEPLOYMENT},
    };
    Berth__V1__WatchRequest req = BERTH__V1__WATCH_REQUEST__INIT;
    Berth__V1__ObjectKind want[3];
    struct cli_opts so = *o;
    struct berth_err err;
    int rc = 0;

    for (int i = 0; i < argc; i++) {
        const char *flag = argv[i], *v;
        size_t k;

        if (!cli_is_flag(flag, "--kind") && !cli_is_flag(flag, "--namespace") &&
            !cli_is_flag(flag, "--id"))
            return cli_usage_error(o, cmd, "unexpected argument '%s'", flag);
        v = cli_take_value(argc, argv, &i);
        if (v == NULL)
            return cli_usage_error(o, cmd, "%s needs a value", flag);
        if (cli_is_flag(flag, "--namespace")) {
            req.namespace_ = (char *)v;
            continue;
        }
        if (cli_is_flag(flag, "--id")) {
            req.id = (char *)v;
            continue;
        }
        for (k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++)
            if (strcmp(kinds[k].word, v) == 0)
                break;
        if (k == sizeof(kinds) / sizeof(kinds[0]))
            return cli_usage_error(o, cmd, "--kind '%s': expected vm, gateway or deployment", v);
        if (req.n_kinds < 3)
            want[req.n_kinds++] = kinds[k].kind;
    }
    req.kinds = want;
    berth_err_clear(&err);
    so.timeout_ms = 0;
    if (cli_stream(&so, EVENT_SVC "Watch", &req.base, &berth__v1__event__descriptor,
                   observe_on_event, &so, &err) < 0)
        rc = cli_fail(o, &err);
    return rc;
}
