/* The RPC table: every procedure of every service in proto/ is in it with
 * its message types, GET (NO_SIDE_EFFECTS) and server-streaming flags; a
 * path is found only when it matches exactly; handlers are set and unset. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/buf.h"
#include "berth/router.h"
#include "testlib.h"

#define ROWS(a) (sizeof(a) / sizeof((a)[0]))

/* The wire contract as proto/ writes it (the path is the row's description). */
static const struct {
    const char *path;
    const char *input, *output; /* short message names */
    int no_side_effects;
    int server_streaming;
} procedures[] = {
    {"/metal.vmprovisioner.v1.VmService/CreateVm", "CreateVmRequest", "CreateVmResponse", 0, 0},
    {"/metal.vmprovisioner.v1.VmService/DeleteVm", "DeleteVmRequest", "DeleteVmResponse", 0, 0},
    {"/metal.vmprovisioner.v1.VmService/BootVm", "BootVmRequest", "BootVmResponse", 0, 0},
    {"/metal.vmprovisioner.v1.VmService/ShutdownVm", "ShutdownVmRequest", "ShutdownVmResponse", 0,
     0},
    {"/metal.vmprovisioner.v1.VmService/PauseVm", "PauseVmRequest", "PauseVmResponse", 0, 0},
    {"/metal.vmprovisioner.v1.VmService/ResumeVm", "ResumeVmRequest", "ResumeVmResponse", 0, 0},
    {"/metal.vmprovisioner.v1.VmService/RebootVm", "RebootVmRequest", "RebootVmResponse", 0, 0},
    {"/metal.vmprovisioner.v1.VmService/GetVmInfo", "GetVmInfoRequest", "GetVmInfoResponse", 1, 0},
    {"/metal.vmprovisioner.v1.VmService/ListVms", "ListVmsRequest", "ListVmsResponse", 1, 0},
    {"/krane.v1.GatewayService/CreateGateway", "CreateGatewayRequest", "CreateGatewayResponse", 0,
     0},
    {"/krane.v1.GatewayService/GetGateway", "GetGatewayRequest", "GetGatewayResponse", 1, 0},
    {"/krane.v1.GatewayService/DeleteGateway", "DeleteGatewayRequest", "DeleteGatewayResponse", 0,
     0},
    {"/krane.v1.GatewayService/UpdateGateway", "UpdateGatewayRequest", "UpdateGatewayResponse", 0,
     0},
    {"/krane.v1.GatewayService/ListGateways", "ListGatewaysRequest", "ListGatewaysResponse", 1, 0},
    {"/krane.v1.DeploymentService/CreateDeployment", "CreateDeploymentRequest",
     "CreateDeploymentResponse", 0, 0},
    {"/krane.v1.DeploymentService/GetDeployment", "GetDeploymentRequest", "GetDeploymentResponse",
     1, 0},
    {"/krane.v1.DeploymentService/DeleteDeployment", "DeleteDeploymentRequest",
     "DeleteDeploymentResponse", 0, 0},
    {"/krane.v1.DeploymentService/UpdateDeployment", "UpdateDeploymentRequest",
     "UpdateDeploymentResponse", 0, 0},
    {"/krane.v1.DeploymentService/ListDeployments", "ListDeploymentsRequest",
     "ListDeploymentsResponse", 1, 0},
    {"/berth.v1.LogService/GetLogs", "GetLogsRequest", "GetLogsResponse", 1, 0},
    {"/berth.v1.LogService/StreamLogs", "GetLogsRequest", "LogEntry", 0, 1},
    {"/berth.v1.EventService/Watch", "WatchRequest", "Event", 0, 1},
};

static int procedure_row(const char *path)
{
    for (size_t i = 0; i < ROWS(procedures); i++)
        if (strcmp(procedures[i].path, path) == 0)
            return (int)i;
    return -1;
}

/* Each row is in the router with its types and flags, and the router has
 * nothing else. */
static void test_table(void)
{
    struct router *r = router_new();

    CHECK(r != NULL);
    if (r == NULL)
        return;
    CHECK_MSG(router_count(r) == ROWS(procedures), "%zu routes, %zu rows", router_count(r),
              ROWS(procedures));
    for (size_t i = 0; i < ROWS(procedures); i++) {
        const char *p = procedures[i].path;
        struct rpc_route *rt = router_find(r, p, strlen(p));

        CHECK_MSG(rt != NULL, "%s: in the table", p);
        if (rt == NULL)
            continue;
        CHECK_STR(rt->path, p);
        CHECK_MSG(rt->input != NULL && strcmp(rt->input->short_name, procedures[i].input) == 0,
                  "%s: input %s", p, rt->input ? rt->input->short_name : "(null)");
        CHECK_MSG(rt->output != NULL && strcmp(rt->output->short_name, procedures[i].output) == 0,
                  "%s: output %s", p, rt->output ? rt->output->short_name : "(null)");
        CHECK_MSG(rt->no_side_effects == procedures[i].no_side_effects, "%s: NO_SIDE_EFFECTS %d", p,
                  rt->no_side_effects);
        CHECK_MSG(rt->server_streaming == procedures[i].server_streaming, "%s: server streaming %d",
                  p, rt->server_streaming);
        CHECK_MSG(rt->handler == NULL && rt->handler_ctx == NULL, "%s: no handler at first", p);
    }
    for (size_t i = 0; i < router_count(r); i++) {
        struct rpc_route *rt = router_at(r, i);

        CHECK_MSG(rt != NULL && procedure_row(rt->path) >= 0, "route %zu '%s' is a row", i,
                  rt ? rt->path : "(null)");
    }
    CHECK(router_at(r, router_count(r)) == NULL);
    router_free(r);
    router_free(NULL);
}

/* ------------------------------------------------------------------------
 * proto/ itself: every `rpc` of every `service` in every .proto file is a
 * row of the table above (and so a route), so a method added to the
 * contract cannot be missed by the router or by this test.
 * ------------------------------------------------------------------------ */
struct proto_scan {
    struct router *router;
    int files;
    int rpcs;
};

/* The word at s (after spaces), up to a space or one of `stops`. */
static size_t proto_word(const char **s, const char *stops)
{
    size_t n = 0;

    while (**s == ' ' || **s == '\t')
        (*s)++;
    while ((*s)[n] && (*s)[n] != ' ' && (*s)[n] != '\t' && (*s)[n] != '\n' &&
           strchr(stops, (*s)[n]) == NULL)
        n++;
    return n;
}

static void proto_scan_file(struct proto_scan *ps, const char *file)
{
    FILE *f = fopen(file, "r");
    struct buf pkg, svc, path;
    struct berth_err err;
    char *line = NULL;
    size_t cap = 0;

    CHECK_MSG(f != NULL, "open %s", file);
    if (f == NULL)
        return;
    ps->files++;
    berth_err_clear(&err);
    buf_init(&pkg, 256);
    buf_init(&svc, 256);
    buf_init(&path, 1024);
    while (getline(&line, &cap, f) > 0) {
        char *comment = strstr(line, "//");
        const char *s = line;
        size_t n;

        if (comment)
            *comment = '\0';
        while (*s == ' ' || *s == '\t')
            s++;
        if (strncmp(s, "package ", 8) == 0) {
            s += 8;
            n = proto_word(&s, ";");
            buf_reset(&pkg);
            CHECK(buf_append(&pkg, s, n, &err) == 0);
        } else if (strncmp(s, "service ", 8) == 0) {
            s += 8;
            n = proto_word(&s, "{");
            buf_reset(&svc);
            CHECK(buf_append(&svc, s, n, &err) == 0);
        } else if (strncmp(s, "rpc ", 4) == 0) {
            s += 4;
            n = proto_word(&s, "(");
            buf_reset(&path);
            CHECK(buf_printf(&path, &err, "/%s.%s/%.*s", pkg.data ? pkg.data : "",
                             svc.data ? svc.data : "", (int)n, s) == 0);
            ps->rpcs++;
            CHECK_MSG(pkg.len > 0 && svc.len > 0, "%s: rpc before package/service", file);
            CHECK_MSG(procedure_row(path.data) >= 0, "%s: %s is not a row of the table", file,
                      path.data);
            CHECK_MSG(router_find(ps->router, path.data, path.len) != NULL, "%s: %s is not routed",
                      file, path.data);
        }
    }
    free(line);
    fclose(f);
    buf_release(&pkg);
    buf_release(&svc);
    buf_release(&path);
}

static void proto_scan_dir(struct proto_scan *ps, const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;

    CHECK_MSG(d != NULL, "open %s", dir);
    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        struct buf child;
        struct berth_err err;
        size_t len = strlen(e->d_name);

        if (e->d_name[0] == '.')
            continue;
        berth_err_clear(&err);
        buf_init(&child, 4096);
        if (buf_printf(&child, &err, "%s/%s", dir, e->d_name) == 0) {
            if (len > 6 && strcmp(e->d_name + len - 6, ".proto") == 0)
                proto_scan_file(ps, child.data);
            else if (e->d_type == DT_DIR)
                proto_scan_dir(ps, child.data);
        }
        buf_release(&child);
    }
    closedir(d);
}

static void test_every_proto_rpc(void)
{
    struct proto_scan ps = {.router = router_new()};

    CHECK(ps.router != NULL);
    if (ps.router == NULL)
        return;
    proto_scan_dir(&ps, BERTH_SOURCE_DIR "/proto");
    CHECK_MSG(ps.files >= 4, "%d .proto files found", ps.files);
    CHECK_MSG(ps.rpcs == (int)ROWS(procedures), "%d rpcs in proto/, %zu rows", ps.rpcs,
              ROWS(procedures));
    router_free(ps.router);
}

/* Only the exact path finds a route: no prefix, suffix, case or query
 * variant; the length given bounds the comparison (the path need not be
 * NUL-terminated). */
static void test_find_exact(void)
{
    static const struct {
        const char *desc;
        const char *path;
        size_t len;       /* 0: strlen(path) */
        const char *want; /* NULL: not found */
    } rows[] = {
        {"the exact path", "/metal.vmprovisioner.v1.VmService/ListVms", 0,
         "/metal.vmprovisioner.v1.VmService/ListVms"},
        {"a length that ends before trailing bytes", "/krane.v1.GatewayService/GetGatewayXYZ", 35,
         "/krane.v1.GatewayService/GetGateway"},
        {"empty", "", 0, NULL},
        {"a slash alone", "/", 0, NULL},
        {"a method's prefix", "/metal.vmprovisioner.v1.VmService/ListVm", 0, NULL},
        {"a longer method name", "/metal.vmprovisioner.v1.VmService/ListVmsX", 0, NULL},
        {"a trailing slash", "/metal.vmprovisioner.v1.VmService/ListVms/", 0, NULL},
        {"a query string", "/metal.vmprovisioner.v1.VmService/ListVms?x=1", 0, NULL},
        {"no leading slash", "metal.vmprovisioner.v1.VmService/ListVms", 0, NULL},
        {"a double leading slash", "//metal.vmprovisioner.v1.VmService/ListVms", 0, NULL},
        {"lowercase method", "/metal.vmprovisioner.v1.VmService/listvms", 0, NULL},
        {"the service alone", "/metal.vmprovisioner.v1.VmService", 0, NULL},
        {"the method alone", "/ListVms", 0, NULL},
        {"another package's service", "/metal.vmprovisioner.v2.VmService/ListVms", 0, NULL},
        {"a method of another service", "/krane.v1.GatewayService/ListVms", 0, NULL},
        {"a length one short", "/krane.v1.GatewayService/GetGateway", 34, NULL},
    };
    struct router *r = router_new();

    CHECK(r != NULL);
    if (r == NULL)
        return;
    for (size_t i = 0; i < ROWS(rows); i++) {
        size_t len = rows[i].len ? rows[i].len : strlen(rows[i].path);
        struct rpc_route *rt = router_find(r, rows[i].path, len);

        if (rows[i].want == NULL)
            CHECK_MSG(rt == NULL, "%s: found '%s'", rows[i].desc, rt ? rt->path : "");
        else
            CHECK_MSG(rt != NULL && strcmp(rt->path, rows[i].want) == 0, "%s: %s", rows[i].desc,
                      rt ? rt->path : "not found");
    }
    router_free(r);
}

static int handler_a(void *ctx, struct rpc_call *call, const ProtobufCMessage *in,
                     ProtobufCMessage **out, struct berth_err *err)
{
    (void)ctx;
    (void)call;
    (void)in;
    (void)out;
    return berth_err_set(err, BERTH_INTERNAL, "a");
}

static int handler_b(void *ctx, struct rpc_call *call, const ProtobufCMessage *in,
                     ProtobufCMessage **out, struct berth_err *err)
{
    (void)ctx;
    (void)call;
    (void)in;
    (void)out;
    return berth_err_set(err, BERTH_INTERNAL, "b");
}

/* Setting a handler touches only its route; an unknown path is -1 and
 * changes nothing; NULL unsets (the route answers unimplemented again). */
static void test_handlers(void)
{
    static const struct {
        const char *desc;
        const char *path;
        rpc_handler_fn fn;
        int ctx_id; /* index into ctxs */
        int rc;
    } steps[] = {
        {"set a", "/metal.vmprovisioner.v1.VmService/CreateVm", handler_a, 0, 0},
        {"set b on another route", "/berth.v1.EventService/Watch", handler_b, 1, 0},
        {"replace a by b", "/metal.vmprovisioner.v1.VmService/CreateVm", handler_b, 1, 0},
        {"an unknown path", "/metal.vmprovisioner.v1.VmService/Nope", handler_a, 0, -1},
        {"a prefix of a path", "/metal.vmprovisioner.v1.VmService/Create", handler_a, 0, -1},
        {"unset", "/metal.vmprovisioner.v1.VmService/CreateVm", NULL, 2, 0},
    };
    int ctxs[3];
    void *ctx_of[3] = {&ctxs[0], &ctxs[1], NULL};
    /* What each route should hold after each step. */
    const char *create = "/metal.vmprovisioner.v1.VmService/CreateVm";
    const char *watch = "/berth.v1.EventService/Watch";
    rpc_handler_fn want_create[] = {handler_a, handler_a, handler_b, handler_b, handler_b, NULL};
    rpc_handler_fn want_watch[] = {NULL, handler_b, handler_b, handler_b, handler_b, handler_b};
    struct router *r = router_new();

    CHECK(r != NULL);
    if (r == NULL)
        return;
    for (size_t i = 0; i < ROWS(steps); i++) {
        struct rpc_route *rc = router_find(r, create, strlen(create));
        struct rpc_route *rw = router_find(r, watch, strlen(watch));
        size_t others = 0;

        CHECK_MSG(router_set_handler(r, steps[i].path, steps[i].fn, ctx_of[steps[i].ctx_id]) ==
                      steps[i].rc,
                  "%s: rc", steps[i].desc);
        CHECK_MSG(rc != NULL && rc->handler == want_create[i], "%s: CreateVm's handler",
                  steps[i].desc);
        CHECK_MSG(rw != NULL && rw->handler == want_watch[i], "%s: Watch's handler", steps[i].desc);
        for (size_t k = 0; k < router_count(r); k++) {
            struct rpc_route *rt = router_at(r, k);
            if (rt != rc && rt != rw && (rt->handler != NULL || rt->handler_ctx != NULL))
                others++;
        }
        CHECK_MSG(others == 0, "%s: %zu other routes changed", steps[i].desc, others);
    }
    {
        struct rpc_route *rw = router_find(r, watch, strlen(watch));
        struct rpc_route *rc = router_find(r, create, strlen(create));
        struct berth_err err;

        CHECK(rw != NULL && rw->handler_ctx == &ctxs[1]);
        CHECK(rc != NULL && rc->handler == NULL && rc->handler_ctx == NULL);
        /* The route calls what was set. */
        berth_err_clear(&err);
        CHECK(rw != NULL && rw->handler(rw->handler_ctx, NULL, NULL, NULL, &err) == -1);
        CHECK_STR(err.msg, "b");
    }
    router_free(r);
}

int main(void)
{
    test_table();
    test_every_proto_rpc();
    test_find_exact();
    test_handlers();
    return test_summary("test_router");
}
