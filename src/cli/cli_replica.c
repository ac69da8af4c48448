/* `berthd gw ...` and `berthd dep ...`: GatewayService and
 * DeploymentService from a shell (list, show the instances, delete, scale). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli_internal.h"
#include "krane/v1/deployment.pb-c.h"
#include "krane/v1/gateway.pb-c.h"

#define GW_SVC "/krane.v1.GatewayService/"
#define DEP_SVC "/krane.v1.DeploymentService/"

/* What a command read from its arguments: an id (or none for ls) and the
 * namespace. */
struct replica_args {
    const char *id;
    const char *ns;
};

static int replica_args(const struct cli_opts *o, const struct cli_command *cmd, int argc,
                        char **argv, int need_id, struct replica_args *out);
static const struct cli_command *replica_command(const char *group, const char *verb);
static int replica_summaries(const struct cli_opts *o, struct cli_table *t);
static int gw_ls(const struct cli_opts *o, int argc, char **argv);
static int gw_info(const struct cli_opts *o, int argc, char **argv);
static int gw_rm(const struct cli_opts *o, int argc, char **argv);
static int dep_ls(const struct cli_opts *o, int argc, char **argv);
static int dep_info(const struct cli_opts *o, int argc, char **argv);
static int dep_rm(const struct cli_opts *o, int argc, char **argv);
static int dep_scale(const struct cli_opts *o, int argc, char **argv);

const struct cli_command cli_replica_commands[] = {
    {"gw", "ls", "[--namespace NS]", "list the gateways", gw_ls},
    {"gw", "info", "ID [--namespace NS]", "show a gateway's replicas and addresses", gw_info},
    {"gw", "rm", "ID [--namespace NS]", "delete a gateway and every replica", gw_rm},
    {"dep", "ls", "[--namespace NS]", "list the deployments", dep_ls},
    {"dep", "info", "ID [--namespace NS]", "show a deployment's replicas and addresses", dep_info},
    {"dep", "rm", "ID [--namespace NS]", "delete a deployment and every replica", dep_rm},
    {"dep", "scale", "ID N [--namespace NS]",
     "run N replicas of a deployment (UpdateDeployment with its image and N)", dep_scale},
    {NULL, NULL, NULL, NULL, NULL},
};

static const struct cli_command *replica_command(const char *group, const char *verb)
{
    for (const struct cli_command *c = cli_replica_commands; c->group != NULL; c++)
        if (strcmp(c->group, group) == 0 && strcmp(c->verb, verb) == 0)
            return c;
    return NULL;
}

static int replica_args(const struct cli_opts *o, const struct cli_command *cmd, int argc,
                        char **argv, int need_id, struct replica_args *out)
{
    out->id = NULL;
    out->ns = "";
    for (int i = 0; i < argc; i++) {
        if (cli_is_flag(argv[i], "--namespace") || cli_is_flag(argv[i], "-n")) {
            const char *v = cli_take_value(argc, argv, &i);
            if (v == NULL)
                return cli_usage_error(o, cmd, "--namespace needs a value");
            out->ns = v;
        } else if (need_id && out->id == NULL && argv[i][0] != '-') {
            out->id = argv[i];
        } else {
            return cli_usage_error(o, cmd, "unexpected argument '%s'", argv[i]);
        }
    }
    if (need_id && out->id == NULL)
        return cli_usage_error(o, cmd, "expected an id");
    return 0;
}

static int replica_summaries(const struct cli_opts *o, struct cli_table *t)
{
    static const char *const header[] = {"NAMESPACE", "ID", "IMAGE", "RUNNING", "STATUS"};
    (void)o;
    return cli_table_init(t, 5, header);
}

/* Call `method` with `req`, then print the answer as JSON (-o json) or
 * with `print` (typed by the caller). The exit status. */
typedef int (*replica_print_fn)(const struct cli_opts *o, const ProtobufCMessage *answer,
                                const char *id);
static int replica_call(const struct cli_opts *o, const char *method, const ProtobufCMessage *req,
                        const ProtobufCMessageDescriptor *out_desc, replica_print_fn print,
                        const char *id)
{
    ProtobufCMessage *out = NULL;
    struct arena *a = arena_new();
    struct berth_err err;
    struct buf raw;
    int rc;

    if (a == NULL)
        return BERTH_RESOURCE_EXHAUSTED;
    berth_err_clear(&err);
    buf_init(&raw, (size_t)64 << 20);
    if (cli_call(o, method, req, out_desc, a, &out, &raw, &err) < 0)
        rc = cli_fail(o, &err);
    else if (o->json)
        rc = fprintf(o->out, "%s\n", raw.data ? raw.data : "{}") < 0;
    else
        rc = print(o, out, id);
    buf_release(&raw);
    arena_free(a);
    return rc;
}

/* One summary row: NAMESPACE ID IMAGE RUNNING/WANTED STATUS. */
static int replica_summary_row(struct cli_table *t, const char *ns, const char *id,
                               const char *image, unsigned running, unsigned wanted,
                               const ProtobufCEnumDescriptor *ed, int status, const char *prefix)
{
    char run[32], st[32];
    const char *row[5] = {ns[0] ? ns : "-", id, image, run, st};

    snprintf(run, sizeof(run), "%u/%u", running, wanted);
    cli_enum_word(ed, status, prefix, st, sizeof(st));
    return cli_table_add(t, row);
}

static int gw_print_list(const struct cli_opts *o, const ProtobufCMessage *answer, const char *id)
{
    const Krane__V1__ListGatewaysResponse *r = (const void *)answer;
    struct cli_table t;
    int rc = 0;

    (void)id;
    if (replica_summaries(o, &t) < 0)
        return BERTH_RESOURCE_EXHAUSTED;
    for (size_t i = 0; i < r->n_gateways && rc == 0; i++) {
        const Krane__V1__GatewaySummary *g = r->gateways[i];
        if (replica_summary_row(&t, g->namespace_, g->gateway_id, g->image, g->running, g->replicas,
                                &krane__v1__gateway_status__descriptor, g->status,
                                "GATEWAY_STATUS_") < 0)
            rc = BERTH_RESOURCE_EXHAUSTED;
    }
    if (rc == 0)
        cli_table_print(&t, o->out);
    cli_table_release(&t);
    return rc;
}

static int dep_print_list(const struct cli_opts *o, const ProtobufCMessage *answer, const char *id)
{
    const Krane__V1__ListDeploymentsResponse *r = (const void *)answer;
    struct cli_table t;
    int rc = 0;

    (void)id;
    if (replica_summaries(o, &t) < 0)
        return BERTH_RESOURCE_EXHAUSTED;
    for (size_t i = 0; i < r->n_deployments && rc == 0; i++) {
        const Krane__V1__DeploymentSummary *d = r->deployments[i];
        if (replica_summary_row(&t, d->namespace_, d->deployment_id, d->image, d->running,
                                d->replicas, &krane__v1__deployment_status__descriptor, d->status,
                                "DEPLOYMENT_STATUS_") < 0)
            rc = BERTH_RESOURCE_EXHAUSTED;
    }
    if (rc == 0)
        cli_table_print(&t, o->out);
    cli_table_release(&t);
    return rc;
}

static int gw_ls(const struct cli_opts *o, int argc, char **argv)
{
    Krane__V1__ListGatewaysRequest req = KRANE__V1__LIST_GATEWAYS_REQUEST__INIT;
    struct replica_args ra;
    int rc = replica_args(o, replica_command("gw", "ls"), argc, argv, 0, &ra);

    if (rc != 0)
        return rc;
    req.namespace_ = (char *)ra.ns;
    req.page_size = 1000;
    return replica_call(o, GW_SVC "ListGateways", &req.base,
                        &krane__v1__list_gateways_response__descriptor, gw_print_list, NULL);
}

static int dep_ls(const struct cli_opts *o, int argc, char **argv)
{
    Krane__V1__ListDeploymentsRequest req = KRANE__V1__LIST_DEPLOYMENTS_REQUEST__INIT;
    struct replica_args ra;
    int rc = replica_args(o, replica_command("dep", "ls"), argc, argv, 0, &ra);

    if (rc != 0)
        return rc;
    req.namespace_ = (char *)ra.ns;
    req.page_size = 1000;
    return replica_call(o, DEP_SVC "ListDeployments", &req.base,
                        &krane__v1__list_deployments_response__descriptor, dep_print_list, NULL);
}

/* INSTANCE STATUS ADDRESS rows, from either kind's instances. */
struct replica_instance {
    const char *id;
    int status;
    const char *address;
};

static int replica_print_instances(const struct cli_opts *o, const struct replica_instance *in,
                                   size_t n, const ProtobufCEnumDescriptor *ed, const char *prefix)
{
    static const char *const header[] = {"INSTANCE", "STATUS", "ADDRESS"};
    struct cli_table t;
    int rc = 0;

    if (cli_table_init(&t, 3, header) < 0)
        return BERTH_RESOURCE_EXHAUSTED;
    for (size_t i = 0; i < n && rc == 0; i++) {
        char status[32];
        const char *row[3] = {in[i].id, status, in[i].address[0] ? in[i].address : "-"};
        cli_enum_word(ed, in[i].status, prefix, status, sizeof(status));
        if (cli_table_add(&t, row) < 0)
            rc = BERTH_RESOURCE_EXHAUSTED;
    }
    if (rc == 0)
        cli_table_print(&t, o->out);
    cli_table_release(&t);
    return rc;
}

static int gw_print_info(const struct cli_opts *o, const ProtobufCMessage *answer, const char *id)
{
    const Krane__V1__GetGatewayResponse *r = (const void *)answer;
    struct replica_instance *rows = calloc(r->n_instances + 1, sizeof(*rows));
    int rc;

    (void)id;
    if (rows == NULL)
        return BERTH_RESOURCE_EXHAUSTED;
    for (size_t i = 0; i < r->n_instances; i++)
        rows[i] = (struct replica_instance){r->instances[i]->id, r->instances[i]->status,
                                            r->instances[i]->address};
    fprintf(o->out, "ADDRESS: %s\n", r->address[0] ? r->address : "-");
    rc = replica_print_instances(o, rows, r->n_instances, &krane__v1__gateway_status__descriptor,
                                 "GATEWAY_STATUS_");
    free(rows);
    return rc;
}

static int dep_print_info(const struct cli_opts *o, const ProtobufCMessage *answer, const char *id)
{
    const Krane__V1__GetDeploymentResponse *r = (const void *)answer;
    struct replica_instance *rows = calloc(r->n_instances + 1, sizeof(*rows));
    int rc;

    (void)id;
    if (rows == NULL)
        return BERTH_RESOURCE_EXHAUSTED;
    for (size_t i = 0; i < r->n_instances; i++)
        rows[i] = (struct replica_instance){r->instances[i]->id, r->instances[i]->status,
                                            r->instances[i]->address};
    rc = replica_print_instances(o, rows, r->n_instances, &krane__v1__deployment_status__descriptor,
                                 "DEPLOYMENT_STATUS_");
    free(rows);
    return rc;
}

static int gw_info(const struct cli_opts *o, int argc, char **argv)
{
    Krane__V1__GetGatewayRequest req = KRANE__V1__GET_GATEWAY_REQUEST__INIT;
    struct replica_args ra;
    int rc = replica_args(o, replica_command("gw", "info"), argc, argv, 1, &ra);

    if (rc != 0)
        return rc;
    req.namespace_ = (char *)ra.ns;
    req.gateway_id = (char *)ra.id;
    return replica_call(o, GW_SVC "GetGateway", &req.base,
                        &krane__v1__get_gateway_response__descriptor, gw_print_info, ra.id);
}

static int dep_info(const struct cli_opts *o, int argc, char **argv)
{
    Krane__V1__GetDeploymentRequest req = KRANE__V1__GET_DEPLOYMENT_REQUEST__INIT;
    struct replica_args ra;
    int rc = replica_args(o, replica_command("dep", "info"), argc, argv, 1, &ra);

    if (rc != 0)
        return rc;
    req.namespace_ = (char *)ra.ns;
    req.deployment_id = (char *)ra.id;
    return replica_call(o, DEP_SVC "GetDeployment", &req.base,
                        &krane__v1__get_deployment_response__descriptor, dep_print_info, ra.id);
}

static int replica_print_deleted(const struct cli_opts *o, const ProtobufCMessage *answer,
                                 const char *id)
{
    (void)answer;
    fprintf(o->out, "%s deleted\n", id);
    return 0;
}

static int gw_rm(const struct cli_opts *o, int argc, char **argv)
{
    Krane__V1__DeleteGatewayRequest req = KRANE__V1__DELETE_GATEWAY_REQUEST__INIT;
    struct replica_args ra;
    int rc = replica_args(o, replica_command("gw", "rm"), argc, argv, 1, &ra);

    if (rc != 0)
        return rc;
    req.namespace_ = (char *)ra.ns;
    req.gateway_id = (char *)ra.id;
    return replica_call(o, GW_SVC "DeleteGateway", &req.base,
                        &krane__v1__delete_gateway_response__descriptor, replica_print_deleted,
                        ra.id);
}

static int dep_rm(const struct cli_opts *o, int argc, char **argv)
{
    Krane__V1__DeleteDeploymentRequest req = KRANE__V1__DELETE_DEPLOYMENT_REQUEST__INIT;
    struct replica_args ra;
    int rc = replica_args(o, replica_command("dep", "rm"), argc, argv, 1, &ra);

    if (rc != 0)
        return rc;
    req.namespace_ = (char *)ra.ns;
    req.deployment_id = (char *)ra.id;
    return replica_call(o, DEP_SVC "DeleteDeployment", &req.base,
                        &krane__v1__delete_deployment_response__descriptor, replica_print_deleted,
                        ra.id);
}

/* The summary of deployment `id` (in namespace `ns`, or any when empty),
 * paging through ListDeployments; its strings live in arena `a`. not_found
 * when there is none; invalid_argument when, without a namespace, two
 * namespaces hold one of that id. */
static int dep_find(const struct cli_opts *o, const char *id, const char *ns, struct arena *a,
                    const Krane__V1__DeploymentSummary **out, struct berth_err *err)
{
    const char *token = "";

    *out = NULL;
    for (int page = 0; page < 1000; page++) {
        Krane__V1__ListDeploymentsRequest req = KRANE__V1__LIST_DEPLOYMENTS_REQUEST__INIT;
        Krane__V1__ListDeploymentsResponse *r = NULL;

        req.namespace_ = (char *)ns;
        req.page_size = 1000;
        req.page_token = (char *)token;
        if (cli_call(o, DEP_SVC "ListDeployments", &req.base,
                     &krane__v1__list_deployments_response__descriptor, a, (ProtobufCMessage **)&r,
                     NULL, err) < 0)
            return -1;
        for (size_t i = 0; i < r->n_deployments; i++) {
            const Krane__V1__DeploymentSummary *s = r->deployments[i];

            if (strcmp(s->deployment_id, id) != 0)
                continue;
            if (*out != NULL)
                return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                                     "deployment '%s' is in namespaces '%s' and '%s': pass "
                                     "--namespace",
                                     id, (*out)->namespace_, s->namespace_);
            *out = s;
        }
        if (r->next_page_token == NULL || r->next_page_token[0] == '\0')
            break;
        token = r->next_page_token;
    }
    if (*out == NULL)
        return berth_err_set(err, BERTH_NOT_FOUND, "deployment '%s' not found", id);
    return 0;
}

/* `dep scale ID N`: the API shows a deployment's image and replica count
 * (ListDeployments) and nothing else of its spec, so UpdateDeployment gets
 * the namespace, the id, the image and N. */
static int dep_scale(const struct cli_opts *o, int argc, char **argv)
{
    const struct cli_command *cmd = replica_command("dep", "scale");
    Krane__V1__UpdateDeploymentRequest req = KRANE__V1__UPDATE_DEPLOYMENT_REQUEST__INIT;
    Krane__V1__DeploymentRequest spec = KRANE__V1__DEPLOYMENT_REQUEST__INIT;
    Krane__V1__UpdateDeploymentResponse *answer = NULL;
    const Krane__V1__DeploymentSummary *found = NULL;
    const char *id = NULL, *count = NULL, *ns = "";
    unsigned long n;
    char *end;
    struct arena *a;
    struct berth_err err;
    struct buf raw;
    int rc;

    for (int i = 0; i < argc; i++) {
        if (cli_is_flag(argv[i], "--namespace") || cli_is_flag(argv[i], "-n")) {
            const char *v = cli_take_value(argc, argv, &i);
            if (v == NULL)
                return cli_usage_error(o, cmd, "--namespace needs a value");
            ns = v;
        } else if (argv[i][0] != '-' && id == NULL) {
            id = argv[i];
        } else if (argv[i][0] != '-' && count == NULL) {
            count = argv[i];
        } else {
            return cli_usage_error(o, cmd, "unexpected argument '%s'", argv[i]);
        }
    }
    if (id == NULL || count == NULL)
        return cli_usage_error(o, cmd, "expected an id and a replica count");
    errno = 0;
    n = strtoul(count, &end, 10);
    if (count[0] < '0' || count[0] > '9' || *end != '\0' || errno != 0 || n > 0xffffffffUL)
        return cli_usage_error(o, cmd, "replica count '%s': expected a whole number", count);

    a = arena_new();
    if (a == NULL)
        return BERTH_RESOURCE_EXHAUSTED;
    berth_err_clear(&err);
    buf_init(&raw, (size_t)1 << 20);
    if (dep_find(o, id, ns, a, &found, &err) < 0) {
        rc = cli_fail(o, &err);
        goto out;
    }
    spec.namespace_ = found->namespace_;
    spec.deployment_id = found->deployment_id;
    spec.image = found->image;
    spec.replicas = (uint32_t)n;
    req.deployment = &spec;
    if (cli_call(o, DEP_SVC "UpdateDeployment", &req.base,
                 &krane__v1__update_deployment_response__descriptor, a,
                 (ProtobufCMessage **)&answer, &raw, &err) < 0)
        rc = cli_fail(o, &err);
    else if (o->json)
        rc = fprintf(o->out, "%s\n", raw.data ? raw.data : "{}") < 0;
    else
        rc = fprintf(o->out, "%s scaled to %lu\n", id, n) < 0;
out:
    buf_release(&raw);
    arena_free(a);
    return rc;
}
