/* The Docker backend against a fake Engine: the exact create body, the
 * pull-on-missing-image flow, the reaping of a create whose outcome is
 * unknown, status mapping of the lifecycle calls, the berth.managed rule,
 * and what inspect and list read. */
#include <cjson/cJSON.h>

#include "berth/clock.h"
#include "berth/docker_backend.h"
#include "berth/engine_client.h"
#include "fake_engine.h"
#include "testlib.h"

/* A managed container as inspect answers it. */
/* One pull error line, as the Engine sends it. */
#define PULL_ERROR_LINE(msg) "{\"errorDetail\":{\"message\":\"" msg "\"},\"error\":\"" msg "\"}\n"

#define INSPECT_MANAGED                                                                            \
    "{\"Id\":\"full123\",\"Name\":\"/web-1\",\"Config\":{\"Image\":\"busybox\","                   \
    "\"Labels\":{\"berth.managed\":\"true\"}},\"State\":{\"Status\":\"running\"}}"

struct fixture {
    struct fake_engine fe;
    struct backend b;
    struct berth_err err;
};

static void fx_start(struct fixture *fx)
{
    struct docker_backend_config cfg = {.publish_address = "10.1.2.3"};

    fe_init(&fx->fe);
    fe_start(&fx->fe);
    cfg.socket_path = fx->fe.sock;
    berth_err_clear(&fx->err);
    memset(&fx->b, 0, sizeof(fx->b));
    CHECK(docker_backend_new(&cfg, &fx->b, &fx->err) == 0);
}

static void fx_stop(struct fixture *fx)
{
    backend_destroy(&fx->b);
    fe_stop(&fx->fe);
}

static const char *fx_line(struct fixture *fx, size_t i)
{
    static char line[1024];

    return fe_req_line(&fx->fe, i, line, sizeof(line));
}

static const char *fx_body(struct fixture *fx, size_t i)
{
    const char *b;

    pthread_mutex_lock(&fx->fe.mu);
    b = i < fx->fe.n_reqs ? fx->fe.reqs[i].body : "(none)";
    pthread_mutex_unlock(&fx->fe.mu);
    return b;
}

/* The create token label in the body of request i, into out ("" if none). */
static const char *fx_token(struct fixture *fx, size_t i, char *out, size_t outsz)
{
    cJSON *root = cJSON_Parse(fx_body(fx, i));
    const cJSON *labels = cJSON_GetObjectItemCaseSensitive(root, "Labels");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(labels, "berth.create_token");

    snprintf(out, outsz, "%s", cJSON_IsString(t) ? t->valuestring : "");
    cJSON_Delete(root);
    return out;
}

/* A fresh lowercase uuid, as libuuid unparses one. */
static int is_uuid(const char *s)
{
    if (strlen(s) != 36)
        return 0;
    for (int i = 0; i < 36; i++) {
        int dash = i == 8 || i == 13 || i == 18 || i == 23;

        if (dash ? s[i] != '-' : strchr("0123456789abcdef", s[i]) == NULL)
            return 0;
    }
    return 1;
}

/* The body of request i with its create token (checked to be a uuid)
 * replaced by "TOKEN", for exact comparison. */
static const char *fx_body_untokened(struct fixture *fx, size_t i)
{
    static char out[8192];
    char token[64];
    const char *body = fx_body(fx, i), *at;

    fx_token(fx, i, token, sizeof(token));
    CHECK_MSG(is_uuid(token), "token '%s'", token);
    at = token[0] != '\0' ? strstr(body, token) : NULL;
    if (at == NULL)
        snprintf(out, sizeof(out), "%s", body);
    else
        snprintf(out, sizeof(out), "%.*sTOKEN%s", (int)(at - body), body, at + strlen(token));
    return out;
}

static void test_create_body(void)
{
    static const char *const cmd[] = {"sh", "-c", "echo hi"};
    static const char *const env[] = {"A=1", "B=two words"};
    static const struct backend_port ports[] = {
        {80, 0, "tcp"}, {53, 5353, "udp"}, {80, 8080, "tcp"}};
    static const struct backend_label labels[] = {{"berth.kind", "vm"},
                                                  {"berth.managed", "false"},
                                                  {"berth.vm_id", "web 1"},
                                                  {"berth.create_token", "forged"}};
    static const char *const forbidden[] = {"Privileged", "NetworkMode", "PidMode", "IpcMode",
                                            "CapAdd",     "Devices",     "Binds",   "Mounts",
                                            "UTSMode",    "UsernsMode",  "Sysctls", "VolumesFrom",
                                            "unconfined", "seccomp",     "apparmor"};
    struct backend_spec spec = {
        .name = "web 1/x?",
        .image = "busybox:1.36",
        .cmd = cmd,
        .n_cmd = 3,
        .env = env,
        .n_env = 2,
        .working_dir = "/srv",
        .ports = ports,
        .n_ports = 3,
        .labels = labels,
        .n_labels = 4,
        .nano_cpus = 1500000000,
        .memory_bytes = (int64_t)1 << 53 | 1, /* not exact as a double */
        .restart_policy = "unless-stopped",
    };
    struct fixture fx;
    char *id = NULL;
    const char *body;

    fx_start(&fx);
    fe_reply(&fx.fe, 201, "{\"Id\":\"abc123\",\"Warnings\":[]}");
    CHECK(fx.b.ops->create(fx.b.ctx, &spec, berth_now_ms() + 5000, &id, &fx.err) == 0);
    CHECK_STR(id, "abc123");
    free(id);
    CHECK_STR(fx_line(&fx, 0), "POST /v1.41/containers/create?name=web%201%2Fx%3F");
    body = fx_body_untokened(&fx, 0);
    CHECK_STR(body, "{\"HostConfig\":{"
                    "\"PortBindings\":{"
                    "\"80/tcp\":[{\"HostIp\":\"10.1.2.3\",\"HostPort\":\"\"},"
                    "{\"HostIp\":\"10.1.2.3\",\"HostPort\":\"8080\"}],"
                    "\"53/udp\":[{\"HostIp\":\"10.1.2.3\",\"HostPort\":\"5353\"}]},"
                    "\"NanoCpus\":1500000000,\"Memory\":9007199254740993,\"PidsLimit\":1024,"
                    "\"SecurityOpt\":[\"no-new-privileges\"],\"CapDrop\":[\"NET_RAW\",\"MKNOD\"],"
                    "\"Init\":true,\"CgroupnsMode\":\"private\","
                    "\"LogConfig\":{\"Type\":\"json-file\","
                    "\"Config\":{\"max-size\":\"10m\",\"max-file\":\"3\"}},"
                    "\"RestartPolicy\":{\"Name\":\"unless-stopped\"}},"
                    "\"Image\":\"busybox:1.36\",\"Cmd\":[\"sh\",\"-c\",\"echo hi\"],"
                    "\"Env\":[\"A=1\",\"B=two words\"],\"WorkingDir\":\"/srv\","
                    "\"Labels\":{\"berth.kind\":\"vm\",\"berth.vm_id\":\"web 1\","
                    "\"berth.managed\":\"true\",\"berth.instance\":\"default\","
                    "\"berth.create_token\":\"TOKEN\"},"
                    "\"ExposedPorts\":{\"80/tcp\":{},\"53/udp\":{}}}");
    for (size_t i = 0; i < sizeof(forbidden) / sizeof(forbidden[0]); i++)
        CHECK_MSG(strstr(body, forbidden[i]) == NULL, "%s", forbidden[i]);
    fx_stop(&fx);
}

/* on-failure with a retry limit: the Engine's MaximumRetryCount. */
static void test_create_restart_retries(void)
{
    struct backend_spec spec = {
        .image = "busybox", .restart_policy = "on-failure", .restart_max_retries = 3};
    struct fixture fx;
    char *id = NULL;

    fx_start(&fx);
    fe_reply(&fx.fe, 201, "{\"Id\":\"r1\"}");
    CHECK(fx.b.ops->create(fx.b.ctx, &spec, BERTH_NO_DEADLINE, &id, &fx.err) == 0);
    free(id);
    CHECK(strstr(fx_body_untokened(&fx, 0),
                 "\"RestartPolicy\":{\"Name\":\"on-failure\",\"MaximumRetryCount\":3}") != NULL);
    fx_stop(&fx);
}

static void test_create_minimal_and_invalid(void)
{
    static const struct backend_port bad_port[] = {{0, 0, "tcp"}};
    static const struct backend_port bad_proto[] = {{80, 0, "sctp"}};
    struct backend_spec ok = {.image = "busybox"};
    struct fixture fx;
    char *id = NULL;
    char t0[64], t1[64];

    fx_start(&fx);
    fe_reply(&fx.fe, 201, "{\"Id\":\"m1\"}");
    fe_reply(&fx.fe, 201, "{\"Id\":\"m2\"}");
    for (int i = 0; i < 2; i++) {
        CHECK(fx.b.ops->create(fx.b.ctx, &ok, BERTH_NO_DEADLINE, &id, &fx.err) == 0);
        free(id);
        id = NULL;
    }
    CHECK_STR(fx_line(&fx, 0), "POST /v1.41/containers/create");
    CHECK_STR(fx_body_untokened(&fx, 0),
              "{\"HostConfig\":{\"Memory\":1073741824,\"PidsLimit\":1024,"
              "\"SecurityOpt\":[\"no-new-privileges\"],\"CapDrop\":[\"NET_RAW\",\"MKNOD\"],"
              "\"Init\":true,\"CgroupnsMode\":\"private\","
              "\"LogConfig\":{\"Type\":\"json-file\","
              "\"Config\":{\"max-size\":\"10m\",\"max-file\":\"3\"}}},"
              "\"Image\":\"busybox\",\"Env\":[],"
              "\"Labels\":{\"berth.managed\":\"true\",\"berth.instance\":\"default\","
              "\"berth.create_token\":\"TOKEN\"}}");
    /* Each create call has its own token. */
    CHECK(strcmp(fx_token(&fx, 0, t0, sizeof(t0)), fx_token(&fx, 1, t1, sizeof(t1))) != 0);

    {
        static const struct {
            const char *desc;
            struct backend_spec spec;
        } rows[] = {
            {"no image", {.name = "x"}},
            {"container port 0", {.image = "a", .ports = bad_port, .n_ports = 1}},
            {"sctp", {.image = "a", .ports = bad_proto, .n_ports = 1}},
            {"restart policy", {.image = "a", .restart_policy = "sometimes"}},
            {"retries without on-failure",
             {.image = "a", .restart_policy = "always", .restart_max_retries = 2}},
            {"negative retries",
             {.image = "a", .restart_policy = "on-failure", .restart_max_retries = -1}},
            {"negative memory", {.image = "a", .memory_bytes = -1}},
        };

        for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
            berth_err_clear(&fx.err);
            CHECK_MSG(fx.b.ops->create(fx.b.ctx, &rows[i].spec, BERTH_NO_DEADLINE, &id, &fx.err) <
                          0,
                      "%s", rows[i].desc);
            CHECK_MSG(fx.err.code == BERTH_INVALID_ARGUMENT, "%s: %s", rows[i].desc, fx.err.msg);
        }
    }
    CHECK(fe_n_reqs(&fx.fe) == 2); /* nothing invalid reached the engine */
    fx_stop(&fx);
}

static void test_create_errors(void)
{
    static const struct {
        const char *desc;
        int status;
        const char *body;
        enum berth_code code;
    } rows[] = {
        {"name taken", 409,
         "{\"message\":\"Conflict. The container name \\\"/web\\\" is already in use\"}",
         BERTH_ALREADY_EXISTS},
        {"bad spec", 400, "{\"message\":\"invalid reference format\"}", BERTH_INVALID_ARGUMENT},
        {"engine broken", 500, "{\"message\":\"driver failed\"}", BERTH_UNAVAILABLE},
    };

    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct backend_spec spec = {.name = "web", .image = "busybox"};
        struct fixture fx;
        char *id = NULL;
        char msg[256];

        fx_start(&fx);
        fe_reply(&fx.fe, rows[i].status, rows[i].body);
        CHECK(fx.b.ops->create(fx.b.ctx, &spec, BERTH_NO_DEADLINE, &id, &fx.err) < 0);
        CHECK(id == NULL);
        CHECK_MSG(fx.err.code == rows[i].code, "%s: %s", rows[i].desc, fx.err.msg);
        /* The Engine's own words reach the message. */
        engine_error_text(
            &(struct engine_response){.status = rows[i].status,
                                      .body = {(char *)rows[i].body, strlen(rows[i].body), 0, 0}},
            msg, sizeof(msg));
        CHECK_MSG(strstr(fx.err.msg, msg) != NULL, "%s: %s", rows[i].desc, fx.err.msg);
        fx_stop(&fx);
    }
}

static void test_pull_on_missing_image(void)
{
    static const struct {
        const char *image;
        const char *pull;
    } rows[] = {
        {"busybox", "POST /v1.41/images/create?fromImage=busybox&tag=latest"},
        {"reg.example:5000/ns/app:1.2",
         "POST /v1.41/images/create?fromImage=reg.example%3A5000%2Fns%2Fapp&tag=1.2"},
        {"reg.example:5000/app", "POST /v1.41/images/create?fromImage=reg.example%3A5000%2Fapp"
                                 "&tag=latest"},
        {"app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
         "POST "
         "/v1.41/images/"
         "create?fromImage=app&tag=sha256%"
         "3A0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},
        {"app:1@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
         "POST "
         "/v1.41/images/"
         "create?fromImage=app&tag=sha256%"
         "3A0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},
    };
    static const char *const progress[] = {
        "{\"status\":\"Pulling from library/busybox\",\"id\":\"latest\"}\n",
        "{\"status\":\"Download complete\",\"progressDetail\":{},\"id\":\"a1\"}\n",
        "{\"status\":\"Status: Downloaded newer image\"}\n"};

    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct backend_spec spec = {.name = "web", .image = rows[i].image};
        struct fixture fx;
        char *id = NULL;

        fx_start(&fx);
        fe_reply(&fx.fe, 404, "{\"message\":\"No such image: x\"}");
        fe_reply_chunked(&fx.fe, progress, 3, 0);
        fe_reply(&fx.fe, 201, "{\"Id\":\"new1\"}");
        CHECK_MSG(fx.b.ops->create(fx.b.ctx, &spec, berth_now_ms() + 10000, &id, &fx.err) == 0,
                  "%s: %s", rows[i].image, fx.err.msg);
        CHECK_STR(id, "new1");
        free(id);
        CHECK(fe_n_reqs(&fx.fe) == 3);
        CHECK_STR(fx_line(&fx, 0), "POST /v1.41/containers/create?name=web");
        CHECK_STR(fx_line(&fx, 1), rows[i].pull);
        CHECK_STR(fx_line(&fx, 2), "POST /v1.41/containers/create?name=web");
        CHECK_STR(fx_body(&fx, 0), fx_body(&fx, 2));
        fx_stop(&fx);
    }
}

static void test_pull_errors(void)
{
    static const char *const denied[] = {"{\"status\":\"Pulling from library/nope\"}\n",
                                         PULL_ERROR_LINE("manifest for nope:latest not found"),
                                         "{\"status\":\"never read\"}\n"};
    static const char *const flaky[] = {PULL_ERROR_LINE("net/http: TLS handshake timeout")};
    struct backend_spec spec = {.name = "web", .image = "nope"};
    struct fixture fx;
    char *id = NULL;

    /* An error line in the stream: not_found with the Engine's message, no
     * second create. */
    fx_start(&fx);
    fe_reply(&fx.fe, 404, "{\"message\":\"No such image: nope:latest\"}");
    fe_reply_chunked(&fx.fe, denied, 3, 0);
    CHECK(fx.b.ops->create(fx.b.ctx, &spec, BERTH_NO_DEADLINE, &id, &fx.err) < 0);
    CHECK_MSG(fx.err.code == BERTH_NOT_FOUND, "%s", fx.err.msg);
    CHECK(strstr(fx.err.msg, "manifest for nope:latest not found") != NULL);
    CHECK(strstr(fx.err.msg, "'nope'") != NULL);
    CHECK(fe_n_reqs(&fx.fe) == 2);
    fx_stop(&fx);

    /* A transient failure is unavailable (worth retrying). */
    fx_start(&fx);
    fe_reply(&fx.fe, 404, "{\"message\":\"No such image: nope:latest\"}");
    fe_reply_chunked(&fx.fe, flaky, 1, 0);
    CHECK(fx.b.ops->create(fx.b.ctx, &spec, BERTH_NO_DEADLINE, &id, &fx.err) < 0);
    CHECK_MSG(fx.err.code == BERTH_UNAVAILABLE, "%s", fx.err.msg);
    CHECK(strstr(fx.err.msg, "TLS handshake timeout") != NULL);
    fx_stop(&fx);

    /* The pull itself refused (before any stream). */
    fx_start(&fx);
    fe_reply(&fx.fe, 404, "{\"message\":\"No such image: nope:latest\"}");
    fe_reply(&fx.fe, 404,
             "{\"message\":\"pull access denied for nope, repository does not exist\"}");
    CHECK(fx.b.ops->create(fx.b.ctx, &spec, BERTH_NO_DEADLINE, &id, &fx.err) < 0);
    CHECK_MSG(fx.err.code == BERTH_NOT_FOUND, "%s", fx.err.msg);
    CHECK(strstr(fx.err.msg, "pull access denied") != NULL);
    fx_stop(&fx);
}

/* A create call run in a thread, so the test can read the token from the
 * recorded body while the backend waits on the Engine. */
struct create_call {
    struct fixture *fx;
    int64_t deadline;
    int rc;
    char *id;
};

static void *create_call_main(void *arg)
{
    struct create_call *cc = arg;
    struct backend_spec spec = {.name = "web", .image = "busybox"};

    cc->rc = cc->fx->b.ops->create(cc->fx->b.ctx, &spec, cc->deadline, &cc->id, &cc->fx->err);
    return NULL;
}

/* An inspect answer for a container "web" with full id "full-web"; a NULL
 * token means no token label. malloc'd, the caller's. */
static char *inspect_with(int managed, const char *token)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *config = cJSON_AddObjectToObject(root, "Config");
    cJSON *labels = cJSON_AddObjectToObject(config, "Labels");
    char *json;

    cJSON_AddStringToObject(root, "Id", "full-web");
    cJSON_AddStringToObject(root, "Name", "/web");
    cJSON_AddStringToObject(config, "Image", "busybox");
    cJSON_AddStringToObject(labels, "berth.kind", "vm");
    if (managed)
        cJSON_AddStringToObject(labels, "berth.managed", "true");
    if (token != NULL)
        cJSON_AddStringToObject(labels, "berth.create_token", token);
    json = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (json == NULL)
        abort();
    return json;
}

enum token_kind { TOKEN_OURS, TOKEN_OTHER, TOKEN_NONE };

/* The create POST gets no answer before the deadline: the backend looks
 * the name up until the container shows and removes it, by its full id,
 * only when it carries this call's token. */
static void test_create_reap(void)
{
    static const struct {
        const char *desc;
        int absent; /* 404 answers before the container shows */
        int status; /* of the inspect that finds it */
        enum token_kind token;
        int managed;
        int removed;
    } rows[] = {
        {"ours, there at once", 0, 200, TOKEN_OURS, 1, 1},
        {"ours, after two looks", 2, 200, TOKEN_OURS, 1, 1},
        {"another call's token", 0, 200, TOKEN_OTHER, 1, 0},
        {"no token (a container made by someone else)", 1, 200, TOKEN_NONE, 1, 0},
        {"our token but not managed", 0, 200, TOKEN_OURS, 0, 0},
        {"inspect fails", 0, 500, TOKEN_OURS, 1, 0},
    };

    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct fixture fx;
        struct create_call cc;
        pthread_t th;
        char token[64];
        char *inspect;
        size_t want;
        int64_t t0;

        fx_start(&fx);
        fe_reply_stall(&fx.fe);
        t0 = berth_now_ms();
        cc = (struct create_call){&fx, t0 + 300, 0, NULL};
        if (pthread_create(&th, NULL, create_call_main, &cc) != 0)
            abort();
        /* The backend only looks once the deadline has passed. */
        fe_wait_reqs(&fx.fe, 1);
        fx_token(&fx, 0, token, sizeof(token));
        CHECK_MSG(is_uuid(token), "%s: token '%s'", rows[i].desc, token);
        for (int k = 0; k < rows[i].absent; k++)
            fe_reply(&fx.fe, 404, "{\"message\":\"No such container: web\"}");
        inspect = inspect_with(rows[i].managed, rows[i].token == TOKEN_OURS    ? token
                                                : rows[i].token == TOKEN_OTHER ? "0123-other"
                                                                               : NULL);
        fe_reply(&fx.fe, rows[i].status, rows[i].status == 200 ? inspect : "{\"message\":\"x\"}");
        fe_reply(&fx.fe, 204, NULL);
        pthread_join(th, NULL);
        free(inspect);

        CHECK_MSG(cc.rc < 0 && cc.id == NULL, "%s", rows[i].desc);
        CHECK_MSG(fx.err.code == BERTH_DEADLINE_EXCEEDED, "%s: %s", rows[i].desc, fx.err.msg);
        CHECK_MSG(berth_now_ms() - t0 < 3000, "%s: took %lld ms", rows[i].desc,
                  (long long)(berth_now_ms() - t0));
        want = 2 + (size_t)rows[i].absent + (size_t)rows[i].removed;
        CHECK_MSG(fe_n_reqs(&fx.fe) == want, "%s: %zu requests", rows[i].desc, fe_n_reqs(&fx.fe));
        CHECK_STR(fx_line(&fx, 0), "POST /v1.41/containers/create?name=web");
        for (size_t k = 1; k <= (size_t)rows[i].absent + 1; k++)
            CHECK_STR(fx_line(&fx, k), "GET /v1.41/containers/web/json");
        if (rows[i].removed)
            CHECK_STR(fx_line(&fx, want - 1),
                      "DELETE /v1.41/containers/full-web?force=true&v=true");
        free(cc.id);
        fx_stop(&fx);
    }
}

/* A garbled answer to the POST (a transport error) leaves the outcome
 * unknown too: the backend looks, and leaves a container without its
 * token alone. */
static void test_create_reap_transport_error(void)
{
    struct backend_spec spec = {.name = "web", .image = "busybox"};
    struct fixture fx;
    char *inspect = inspect_with(1, NULL);
    char *id = NULL;

    fx_start(&fx);
    fe_queue_raw(&fx.fe, "garbage\r\n\r\n", 0);
    fe_reply(&fx.fe, 200, inspect);
    CHECK(fx.b.ops->create(fx.b.ctx, &spec, berth_now_ms() + 5000, &id, &fx.err) < 0);
    CHECK_MSG(fx.err.code == BERTH_UNAVAILABLE, "%s", fx.err.msg);
    CHECK(fe_n_reqs(&fx.fe) == 2);
    CHECK_STR(fx_line(&fx, 1), "GET /v1.41/containers/web/json");
    free(inspect);
    fx_stop(&fx);
}

/* Failures with a definite answer, or before the create was sent, never
 * look for anything to reap. */
static void test_create_no_reap(void)
{
    enum fake { F_END, F_409, F_500, F_NO_IMAGE, F_PULL_REFUSED, F_PULL_ERROR, F_STALL };
    static const char *const pull_error[] = {PULL_ERROR_LINE("manifest unknown")};
    static const struct {
        const char *desc;
        enum fake replies[3];
        int64_t deadline_ms; /* from now */
        enum berth_code code;
        size_t reqs;
    } rows[] = {
        {"name taken (409)", {F_409}, 5000, BERTH_ALREADY_EXISTS, 1},
        {"engine error (500)", {F_500}, 5000, BERTH_UNAVAILABLE, 1},
        {"pull refused", {F_NO_IMAGE, F_PULL_REFUSED}, 5000, BERTH_NOT_FOUND, 2},
        {"pull stream error", {F_NO_IMAGE, F_PULL_ERROR}, 5000, BERTH_NOT_FOUND, 2},
        {"pull stalls past the deadline", {F_NO_IMAGE, F_STALL}, 300, BERTH_DEADLINE_EXCEEDED, 2},
        {"deadline passed before the create", {F_END}, -1, BERTH_DEADLINE_EXCEEDED, 0},
    };

    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct backend_spec spec = {.name = "web", .image = "busybox"};
        struct fixture fx;
        char *id = NULL;

        fx_start(&fx);
        for (size_t k = 0; k < 3 && rows[i].replies[k] != F_END; k++) {
            switch (rows[i].replies[k]) {
            case F_409:
                fe_reply(&fx.fe, 409, "{\"message\":\"name in use\"}");
                break;
            case F_500:
                fe_reply(&fx.fe, 500, "{\"message\":\"driver failed\"}");
                break;
            case F_NO_IMAGE:
                fe_reply(&fx.fe, 404, "{\"message\":\"No such image: busybox:latest\"}");
                break;
            case F_PULL_REFUSED:
                fe_reply(&fx.fe, 404, "{\"message\":\"pull access denied for busybox\"}");
                break;
            case F_PULL_ERROR:
                fe_reply_chunked(&fx.fe, pull_error, 1, 0);
                break;
            case F_STALL:
                fe_reply_stall(&fx.fe);
                break;
            case F_END:
                break;
            }
        }
        CHECK(fx.b.ops->create(fx.b.ctx, &spec, berth_now_ms() + rows[i].deadline_ms, &id,
                               &fx.err) < 0);
        CHECK_MSG(fx.err.code == rows[i].code, "%s: %s", rows[i].desc, fx.err.msg);
        CHECK_MSG(fe_n_reqs(&fx.fe) == rows[i].reqs, "%s: %zu requests, the last '%s'",
                  rows[i].desc, fe_n_reqs(&fx.fe), fx_line(&fx, fe_n_reqs(&fx.fe) - 1));
        fx_stop(&fx);
    }
}

enum op { OP_START, OP_STOP, OP_KILL, OP_PAUSE, OP_UNPAUSE, OP_RESTART, OP_REMOVE };

static int run_op(struct fixture *fx, enum op op, const char *id, int64_t deadline)
{
    void *c = fx->b.ctx;
    const struct backend_ops *o = fx->b.ops;

    switch (op) {
    case OP_START:
        return o->start(c, id, deadline, &fx->err);
    case OP_STOP:
        return o->stop(c, id, 5, deadline, &fx->err);
    case OP_KILL:
        return o->kill(c, id, deadline, &fx->err);
    case OP_PAUSE:
        return o->pause(c, id, deadline, &fx->err);
    case OP_UNPAUSE:
        return o->unpause(c, id, deadline, &fx->err);
    case OP_RESTART:
        return o->restart(c, id, 3, deadline, &fx->err);
    case OP_REMOVE:
        return o->remove(c, id, deadline, &fx->err);
    }
    return -1;
}

static void test_lifecycle_mapping(void)
{
    static const struct {
        const char *desc;
        enum op op;
        int status;
        const char *body;
        const char *want_line;
        enum berth_code code;
        const char *want_msg;
    } rows[] = {
        {"start", OP_START, 204, NULL, "POST /v1.41/containers/full123/start", BERTH_OK, NULL},
        {"start: already running", OP_START, 304, NULL, "POST /v1.41/containers/full123/start",
         BERTH_OK, NULL},
        {"stop with t", OP_STOP, 204, NULL, "POST /v1.41/containers/full123/stop?t=5", BERTH_OK,
         NULL},
        {"stop: already stopped", OP_STOP, 304, NULL, "POST /v1.41/containers/full123/stop?t=5",
         BERTH_OK, NULL},
        {"restart with t", OP_RESTART, 204, NULL, "POST /v1.41/containers/full123/restart?t=3",
         BERTH_OK, NULL},
        {"kill", OP_KILL, 204, NULL, "POST /v1.41/containers/full123/kill", BERTH_OK, NULL},
        {"pause a stopped one", OP_PAUSE, 409, "{\"message\":\"Container full123 is not running\"}",
         "POST /v1.41/containers/full123/pause", BERTH_FAILED_PRECONDITION,
         "Container full123 is not running"},
        {"unpause: engine fails", OP_UNPAUSE, 500, "{\"message\":\"cgroup trouble\"}",
         "POST /v1.41/containers/full123/unpause", BERTH_UNAVAILABLE, "cgroup trouble"},
        {"unpause: engine says 500 for a state", OP_UNPAUSE, 500,
         "{\"message\":\"Container full123 is not paused\"}",
         "POST /v1.41/containers/full123/unpause", BERTH_FAILED_PRECONDITION, "is not paused"},
        {"start: the host port is taken", OP_START, 500,
         "{\"message\":\"driver failed programming external connectivity on endpoint "
         "berth-vm-web-1: Bind for 127.0.0.1:18999 failed: port is already allocated\"}",
         "POST /v1.41/containers/full123/start", BERTH_FAILED_PRECONDITION,
         "port is already allocated"},
        {"restart: marked for removal", OP_RESTART, 500,
         "{\"message\":\"Cannot restart container full123: container is marked for removal "
         "and cannot be started\"}",
         "POST /v1.41/containers/full123/restart?t=3", BERTH_FAILED_PRECONDITION,
         "marked for removal"},
        {"remove: another removal under way", OP_REMOVE, 409,
         "{\"message\":\"removal of container full123 is already in progress\"}",
         "DELETE /v1.41/containers/full123?force=true&v=true", BERTH_OK, NULL},
        {"kill: vanished meanwhile", OP_KILL, 404, "{\"message\":\"No such container: full123\"}",
         "POST /v1.41/containers/full123/kill", BERTH_NOT_FOUND, "No such container: full123"},
        {"remove", OP_REMOVE, 204, NULL, "DELETE /v1.41/containers/full123?force=true&v=true",
         BERTH_OK, NULL},
        {"remove: gone", OP_REMOVE, 404, "{\"message\":\"No such container: full123\"}",
         "DELETE /v1.41/containers/full123?force=true&v=true", BERTH_NOT_FOUND,
         "No such container"},
    };

    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct fixture fx;
        int rc;

        fx_start(&fx);
        fe_reply(&fx.fe, 200, INSPECT_MANAGED);
        fe_reply(&fx.fe, rows[i].status, rows[i].body);
        rc = run_op(&fx, rows[i].op, "web-1", berth_now_ms() + 5000);
        CHECK_MSG((rc == 0) == (rows[i].code == BERTH_OK), "%s: %s", rows[i].desc, fx.err.msg);
        CHECK_MSG(fx.err.code == rows[i].code, "%s: %s", rows[i].desc, fx.err.msg);
        if (rows[i].want_msg != NULL)
            CHECK_MSG(strstr(fx.err.msg, rows[i].want_msg) != NULL, "%s: %s", rows[i].desc,
                      fx.err.msg);
        CHECK_STR(fx_line(&fx, 0), "GET /v1.41/containers/web-1/json");
        CHECK_STR(fx_line(&fx, 1), rows[i].want_line);
        fx_stop(&fx);
    }
}

static void test_not_ours(void)
{
    static const char *const unmanaged[] = {
        "{\"Id\":\"other\",\"Name\":\"/db\",\"Config\":{\"Image\":\"postgres\","
        "\"Labels\":{\"com.example\":\"x\"}},\"State\":{\"Status\":\"running\"}}",
        "{\"Id\":\"other\",\"Name\":\"/db\",\"Config\":{\"Image\":\"postgres\","
        "\"Labels\":{\"berth.managed\":\"false\"}},\"State\":{\"Status\":\"running\"}}",
        "{\"Id\":\"other\",\"Name\":\"/db\",\"Config\":{\"Image\":\"postgres\","
        "\"Labels\":null},\"State\":{\"Status\":\"running\"}}",
        /* Another berthd's (this one is the default instance). */
        "{\"Id\":\"other\",\"Name\":\"/db\",\"Config\":{\"Image\":\"postgres\","
        "\"Labels\":{\"berth.managed\":\"true\",\"berth.instance\":\"blue\"}},"
        "\"State\":{\"Status\":\"running\"}}",
        /* Labelled as ours, but with what berthd never grants: forged. */
        "{\"Id\":\"other\",\"Config\":{\"Labels\":{\"berth.managed\":\"true\"}},"
        "\"HostConfig\":{\"Privileged\":true},\"State\":{\"Status\":\"running\"}}",
        "{\"Id\":\"other\",\"Config\":{\"Labels\":{\"berth.managed\":\"true\"}},"
        "\"HostConfig\":{\"NetworkMode\":\"host\"},\"State\":{\"Status\":\"running\"}}",
        "{\"Id\":\"other\",\"Config\":{\"Labels\":{\"berth.managed\":\"true\"}},"
        "\"HostConfig\":{\"PidMode\":\"host\"},\"State\":{\"Status\":\"running\"}}",
        "{\"Id\":\"other\",\"Config\":{\"Labels\":{\"berth.managed\":\"true\"}},"
        "\"HostConfig\":{\"IpcMode\":\"host\"},\"State\":{\"Status\":\"running\"}}",
        "{\"Id\":\"other\",\"Config\":{\"Labels\":{\"berth.managed\":\"true\"}},"
        "\"HostConfig\":{\"Binds\":[\"/:/host\"]},\"State\":{\"Status\":\"running\"}}",
        "{\"Id\":\"other\",\"Config\":{\"Labels\":{\"berth.managed\":\"true\"}},"
        "\"HostConfig\":{\"CapAdd\":[\"SYS_ADMIN\"]},\"State\":{\"Status\":\"running\"}}",
        "{\"Id\":\"other\",\"Config\":{\"Labels\":{\"berth.managed\":\"true\"}},"
        "\"HostConfig\":{\"Devices\":[{\"PathOnHost\":\"/dev/kmsg\"}]},"
        "\"State\":{\"Status\":\"running\"}}",
        "{\"Id\":\"other\",\"Config\":{\"Labels\":{\"berth.managed\":\"true\"}},"
        "\"Mounts\":[{\"Type\":\"bind\",\"Source\":\"/etc\"}],"
        "\"State\":{\"Status\":\"running\"}}",
    };

    for (size_t i = 0; i < sizeof(unmanaged) / sizeof(unmanaged[0]); i++) {
        for (int op = OP_START; op <= OP_REMOVE + 1; op++) {
            struct backend_container c;
            struct fixture fx;
            int rc;

            fx_start(&fx);
            fe_reply(&fx.fe, 200, unmanaged[i]);
            memset(&c, 0, sizeof(c));
            if (op == OP_REMOVE + 1)
                rc = fx.b.ops->inspect(fx.b.ctx, "db", BERTH_NO_DEADLINE, &c, &fx.err);
            else
                rc = run_op(&fx, (enum op)op, "db", BERTH_NO_DEADLINE);
            CHECK(rc < 0);
            CHECK_MSG(fx.err.code == BERTH_NOT_FOUND, "op %d: %s", op, fx.err.msg);
            CHECK(c.id == NULL);
            /* Looked at it, touched nothing. */
            CHECK(fe_n_reqs(&fx.fe) == 1);
            fx_stop(&fx);
        }
    }
}

/* --allowed-registries: an image from another registry is permission_denied
 * before the Engine is asked anything; one from a listed registry (docker.io
 * for a short name, host:port as written) goes through. */
static void test_allowed_registries(void)
{
    static const char *const refused[] = {"busybox", "ghcr.io/team/app:1", "127.0.0.1:2375/x",
                                          "evil.example:5000/reg.example/a"};
    static const char *const allowed[] = {
        "reg.example/team/app:1", "REG.example/a",
        "127.0.0.1:5000/x@sha256:"
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"};
    struct docker_backend_config cfg = {.allowed_registries = "reg.example,,127.0.0.1:5000"};
    struct fixture fx;
    char *id = NULL;

    fe_init(&fx.fe);
    fe_start(&fx.fe);
    cfg.socket_path = fx.fe.sock;
    berth_err_clear(&fx.err);
    memset(&fx.b, 0, sizeof(fx.b));
    CHECK(docker_backend_new(&cfg, &fx.b, &fx.err) == 0);
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        struct backend_spec spec = {.image = refused[i]};

        berth_err_clear(&fx.err);
        CHECK(fx.b.ops->create(fx.b.ctx, &spec, BERTH_NO_DEADLINE, &id, &fx.err) < 0);
        CHECK_MSG(fx.err.code == BERTH_PERMISSION_DENIED, "%s: %s", refused[i], fx.err.msg);
        CHECK_MSG(strstr(fx.err.msg, "allowed-registries") != NULL, "%s", fx.err.msg);
    }
    CHECK(fe_n_reqs(&fx.fe) == 0);
    for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++) {
        struct backend_spec spec = {.image = allowed[i]};

        fe_reply(&fx.fe, 201, "{\"Id\":\"ok\"}");
        berth_err_clear(&fx.err);
        CHECK_MSG(fx.b.ops->create(fx.b.ctx, &spec, BERTH_NO_DEADLINE, &id, &fx.err) == 0, "%s: %s",
                  allowed[i], fx.err.msg);
        free(id);
        id = NULL;
    }
    CHECK(fe_n_reqs(&fx.fe) == 3);
    fx_stop(&fx);
}

/* --instance-id, --cap-drop, the log and memory options reach the body. */
static void test_create_options(void)
{
    struct docker_backend_config cfg = {.instance_id = "blue",
                                        .cap_drop = "",
                                        .log_max_size = "1m",
                                        .log_max_files = 7,
                                        .default_memory_bytes = -1,
                                        .pids_limit = 64};
    static const struct backend_label forged[] = {{"berth.instance", "default"}};
    struct backend_spec spec = {.image = "busybox", .labels = forged, .n_labels = 1};
    struct fixture fx;
    char *id = NULL;

    fe_init(&fx.fe);
    fe_start(&fx.fe);
    cfg.socket_path = fx.fe.sock;
    berth_err_clear(&fx.err);
    memset(&fx.b, 0, sizeof(fx.b));
    CHECK(docker_backend_new(&cfg, &fx.b, &fx.err) == 0);
    fe_reply(&fx.fe, 201, "{\"Id\":\"ok\"}");
    CHECK(fx.b.ops->create(fx.b.ctx, &spec, BERTH_NO_DEADLINE, &id, &fx.err) == 0);
    free(id);
    CHECK_STR(fx_body_untokened(&fx, 0),
              "{\"HostConfig\":{\"PidsLimit\":64,"
              "\"SecurityOpt\":[\"no-new-privileges\"],\"CapDrop\":[],"
              "\"Init\":true,\"CgroupnsMode\":\"private\","
              "\"LogConfig\":{\"Type\":\"json-file\","
              "\"Config\":{\"max-size\":\"1m\",\"max-file\":\"7\"}}},"
              "\"Image\":\"busybox\",\"Env\":[],"
              "\"Labels\":{\"berth.managed\":\"true\",\"berth.instance\":\"blue\","
              "\"berth.create_token\":\"TOKEN\"}}");
    /* An unlabelled container is the default instance's, not blue's. */
    fe_reply(&fx.fe, 200,
             "{\"Id\":\"old\",\"Config\":{\"Labels\":{\"berth.managed\":\"true\"}},"
             "\"State\":{\"Status\":\"running\"}}");
    CHECK(run_op(&fx, OP_REMOVE, "old", BERTH_NO_DEADLINE) < 0);
    CHECK(fx.err.code == BERTH_NOT_FOUND);
    CHECK(fe_n_reqs(&fx.fe) == 2);
    fx_stop(&fx);
}

/* A spec with a network: the bridge is made when missing (with berthd's
 * labels), the container joins it by id under its aliases, and its removal
 * takes the emptied network along. Of two networks of one name (made by two
 * berthds at once) the one of least id is taken and the other, empty, goes.
 * A network of that name that is not ours stops the create before anything
 * is made. */
#define N1 "1111111111111111111111111111111111111111111111111111111111111111"
#define N2 "2222222222222222222222222222222222222222222222222222222222222222"

static void test_networks(void)
{
    static const char *const aliases[] = {"gw-1"};
    static const char list_line[] = "GET /v1.41/networks?filters=%7B%22name%22%3A%5B%22berth-c-acme"
                                    "%22%5D%7D";
    struct backend_spec spec = {.name = "web",
                                .image = "busybox",
                                .network = "berth-c-acme",
                                .aliases = aliases,
                                .n_aliases = 1};
    struct fixture fx;
    char *id = NULL;
    const char *body;

    fx_start(&fx);
    fe_reply(&fx.fe, 200, "[]");
    fe_reply(&fx.fe, 201, "{\"Id\":\"" N1 "\"}");
    fe_reply(&fx.fe, 200,
             "[{\"Name\":\"berth-c-acme-x\",\"Id\":\"n0\",\"Labels\":{\"berth.managed\":"
             "\"true\"}},{\"Name\":\"berth-c-acme\",\"Id\":\"" N1 "\",\"Labels\":{"
             "\"berth.managed\":\"true\",\"berth.instance\":\"default\"}}]");
    fe_reply(&fx.fe, 201, "{\"Id\":\"c1\"}");
    CHECK(fx.b.ops->create(fx.b.ctx, &spec, BERTH_NO_DEADLINE, &id, &fx.err) == 0);
    free(id);
    id = NULL;
    CHECK_STR(fx_line(&fx, 0), list_line);
    CHECK_STR(fx_line(&fx, 1), "POST /v1.41/networks/create");
    CHECK_STR(fx_body(&fx, 1), "{\"Labels\":{\"berth.managed\":\"true\",\"berth.instance\":"
                               "\"default\"},\"Name\":\"berth-c-acme\",\"Driver\":\"bridge\","
                               "\"CheckDuplicate\":true}");
    CHECK_STR(fx_line(&fx, 2), list_line);
    body = fx_body(&fx, 3);
    CHECK_MSG(strstr(body, "\"NetworkMode\":\"" N1 "\"") != NULL, "%s", body);
    CHECK_MSG(strstr(body, "\"NetworkingConfig\":{\"EndpointsConfig\":{\"" N1 "\":{"
                           "\"Aliases\":[\"gw-1\"]}}}") != NULL,
              "%s", body);

    fe_reply(&fx.fe, 200,
             "{\"Id\":\"c1\",\"Config\":{\"Labels\":{\"berth.managed\":\"true\"}},"
             "\"HostConfig\":{\"NetworkMode\":\"" N1 "\"},\"State\":{\"Status\":"
             "\"created\"}}");
    fe_reply(&fx.fe, 204, "");
    fe_reply(&fx.fe, 200,
             "{\"Name\":\"berth-c-acme\",\"Id\":\"" N1 "\",\"Labels\":{\"berth.managed\":"
             "\"true\"}}");
    fe_reply(&fx.fe, 200, "[]");
    fe_reply(&fx.fe, 204, "");
    CHECK(run_op(&fx, OP_REMOVE, "c1", BERTH_NO_DEADLINE) == 0);
    CHECK_STR(fx_line(&fx, 6), "GET /v1.41/networks/" N1);
    CHECK_STR(fx_line(&fx, 7), "GET /v1.41/containers/json?all=true&filters=%7B%22network%22%3A%5B"
                               "%22" N1 "%22%5D%7D");
    CHECK_STR(fx_line(&fx, 8), "DELETE /v1.41/networks/" N1);
    CHECK(fe_n_reqs(&fx.fe) == 9);

    /* Someone else's network of that name: nothing is made. */
    fe_reply(&fx.fe, 200, "[{\"Name\":\"berth-c-acme\",\"Id\":\"z\",\"Labels\":{}}]");
    berth_err_clear(&fx.err);
    CHECK(fx.b.ops->create(fx.b.ctx, &spec, BERTH_NO_DEADLINE, &id, &fx.err) < 0);
    CHECK_MSG(fx.err.code == BERTH_FAILED_PRECONDITION, "%s", fx.err.msg);
    CHECK(fe_n_reqs(&fx.fe) == 10);

    /* Two of ours under the name: the least id is joined, the other goes. */
    fe_reply(&fx.fe, 200,
             "[{\"Name\":\"berth-c-acme\",\"Id\":\"" N2 "\",\"Labels\":{\"berth.managed\":"
             "\"true\"}},{\"Name\":\"berth-c-acme\",\"Id\":\"" N1 "\",\"Labels\":{"
             "\"berth.managed\":\"true\"}}]");
    fe_reply(&fx.fe, 200, "[]");
    fe_reply(&fx.fe, 204, "");
    fe_reply(&fx.fe, 201, "{\"Id\":\"c2\"}");
    berth_err_clear(&fx.err);
    CHECK(fx.b.ops->create(fx.b.ctx, &spec, BERTH_NO_DEADLINE, &id, &fx.err) == 0);
    free(id);
    CHECK_STR(fx_line(&fx, 11), "GET /v1.41/containers/json?all=true&filters=%7B%22network%22%3A%5B"
                                "%22" N2 "%22%5D%7D");
    CHECK_STR(fx_line(&fx, 12), "DELETE /v1.41/networks/" N2);
    CHECK_MSG(strstr(fx_body(&fx, 13), "\"NetworkMode\":\"" N1 "\"") != NULL, "%s",
              fx_body(&fx, 13));
    fx_stop(&fx);
}

#undef N1
#undef N2

static void test_inspect(void)
{
    static const char *const full =
        "{\"Id\":\"4f1e\",\"Created\":\"2026-11-25T06:00:02.123456789Z\","
        "\"Name\":\"/web-1\",\"Image\":\"sha256:aaaa\","
        "\"State\":{\"Status\":\"exited\",\"Running\":false,\"OOMKilled\":true,"
        "\"ExitCode\":137,\"StartedAt\":\"2026-11-25T06:00:03.5Z\","
        "\"FinishedAt\":\"2026-11-25T08:00:04.000000001+02:00\"},"
        "\"HostConfig\":{\"PortBindings\":{\"80/tcp\":[{\"HostIp\":\"127.0.0.1\","
        "\"HostPort\":\"\"}]}},"
        "\"Config\":{\"Image\":\"busybox:1.36\",\"Labels\":{\"berth.managed\":\"true\","
        "\"berth.kind\":\"vm\"}},"
        "\"NetworkSettings\":{\"IPAddress\":\"\",\"Ports\":{"
        "\"80/tcp\":[{\"HostIp\":\"127.0.0.1\",\"HostPort\":\"49153\"},"
        "{\"HostIp\":\"::\",\"HostPort\":\"49153\"}],\"9000/tcp\":null,"
        "\"53/udp\":[{\"HostIp\":\"127.0.0.1\",\"HostPort\":\"5353\"}]},"
        "\"Networks\":{\"berth\":{\"IPAddress\":\"172.18.0.5\",\"Gateway\":\"172.18.0.1\","
        "\"MacAddress\":\"02:42:ac:12:00:05\"}}}}";
    static const char *const stopped =
        "{\"Id\":\"4f1e\",\"Created\":\"2026-11-25T06:00:02Z\",\"Name\":\"/web-1\","
        "\"State\":{\"Status\":\"created\",\"StartedAt\":\"0001-01-01T00:00:00Z\","
        "\"FinishedAt\":\"0001-01-01T00:00:00Z\"},"
        "\"HostConfig\":{\"PortBindings\":{\"80/tcp\":[{\"HostIp\":\"127.0.0.1\","
        "\"HostPort\":\"\"}],\"81/tcp\":[{\"HostIp\":\"127.0.0.1\",\"HostPort\":\"8081\"}]}},"
        "\"Config\":{\"Image\":\"busybox\",\"Labels\":{\"berth.managed\":\"true\"}},"
        "\"NetworkSettings\":{\"IPAddress\":\"\",\"Ports\":{},\"Networks\":{\"bridge\":"
        "{\"IPAddress\":\"\"}}}}";
    struct backend_container c;
    struct fixture fx;

    fx_start(&fx);
    fe_reply(&fx.fe, 200, full);
    fe_reply(&fx.fe, 200, stopped);
    fe_reply(&fx.fe, 404, "{\"message\":\"No such container: a b/../c\"}");
    memset(&c, 0, sizeof(c));
    CHECK(fx.b.ops->inspect(fx.b.ctx, "web-1", BERTH_NO_DEADLINE, &c, &fx.err) == 0);
    CHECK_STR(c.id, "4f1e");
    CHECK_STR(c.name, "web-1");
    CHECK_STR(c.image, "busybox:1.36");
    CHECK(c.state == BACKEND_STATE_EXITED);
    CHECK(c.oom_killed == 1);
    CHECK(c.exit_code == 137);
    CHECK(c.created_unix == 1795586402);
    CHECK(c.started_unix_ms == 1795586403500);
    CHECK_MSG(c.finished_unix_ms == 1795586404000, "%lld", (long long)c.finished_unix_ms);
    CHECK_STR(c.ip_address, "172.18.0.5");
    CHECK_STR(c.gateway, "172.18.0.1");
    CHECK_STR(c.mac_address, "02:42:ac:12:00:05");
    CHECK(c.n_ports == 2);
    if (c.n_ports == 2) {
        CHECK(c.ports[0].container_port == 80 && c.ports[0].host_port == 49153);
        CHECK_STR(c.ports[0].protocol, "tcp");
        CHECK(c.ports[1].container_port == 53 && c.ports[1].host_port == 5353);
        CHECK_STR(c.ports[1].protocol, "udp");
    }
    CHECK_STR(backend_container_label(&c, "berth.kind"), "vm");
    CHECK(c.n_labels == 2);
    backend_container_release(&c);

    /* Never started: zero times, empty strings, requested bindings. */
    CHECK(fx.b.ops->inspect(fx.b.ctx, "web-1", BERTH_NO_DEADLINE, &c, &fx.err) == 0);
    CHECK(c.started_unix_ms == 0 && c.finished_unix_ms == 0);
    CHECK(c.created_unix == 1795586402);
    CHECK_STR(c.ip_address, "");
    CHECK_STR(c.mac_address, "");
    CHECK(c.n_ports == 2);
    if (c.n_ports == 2) {
        CHECK(c.ports[0].container_port == 80 && c.ports[0].host_port == 0);
        CHECK(c.ports[1].container_port == 81 && c.ports[1].host_port == 8081);
    }
    backend_container_release(&c);

    /* Ids are escaped in the path; 404 is not_found with the Engine's words. */
    CHECK(fx.b.ops->inspect(fx.b.ctx, "a b/../c", BERTH_NO_DEADLINE, &c, &fx.err) < 0);
    CHECK(fx.err.code == BERTH_NOT_FOUND);
    CHECK(strstr(fx.err.msg, "No such container") != NULL);
    CHECK_STR(fx_line(&fx, 2), "GET /v1.41/containers/a%20b%2F..%2Fc/json");
    fx_stop(&fx);
}

static void test_list(void)
{
    static const char *const answer =
        "[{\"Id\":\"c1\",\"Names\":[\"/web-1\"],\"Image\":\"busybox\",\"State\":\"running\","
        "\"Created\":1795586402,\"Labels\":{\"berth.managed\":\"true\",\"berth.kind\":\"vm\"},"
        "\"Ports\":[{\"IP\":\"127.0.0.1\",\"PrivatePort\":80,\"PublicPort\":49153,"
        "\"Type\":\"tcp\"},{\"IP\":\"::\",\"PrivatePort\":80,\"PublicPort\":49153,"
        "\"Type\":\"tcp\"},{\"PrivatePort\":9000,\"Type\":\"tcp\"}],"
        "\"NetworkSettings\":{\"Networks\":{\"bridge\":{\"IPAddress\":\"172.17.0.2\","
        "\"Gateway\":\"172.17.0.1\",\"MacAddress\":\"02:42:ac:11:00:02\"}}}},"
        "{\"Id\":\"c2\",\"Names\":[\"/sneaky\"],\"Image\":\"x\",\"State\":\"exited\","
        "\"Labels\":{\"berth.kind\":\"vm\"}},"
        "{\"Id\":\"c3\",\"Names\":[\"/gw\"],\"Image\":\"nginx\",\"State\":\"exited\","
        "\"Created\":1,\"Labels\":{\"berth.managed\":\"true\","
        "\"berth.instance\":\"default\"},\"Ports\":[],"
        "\"NetworkSettings\":{\"Networks\":{}}},"
        "{\"Id\":\"c4\",\"Names\":[\"/blue\"],\"Image\":\"x\",\"State\":\"exited\","
        "\"Labels\":{\"berth.managed\":\"true\",\"berth.instance\":\"blue\"}},"
        "{\"Id\":\"c5\",\"Names\":[\"/hostnet\"],\"Image\":\"x\",\"State\":\"exited\","
        "\"Labels\":{\"berth.managed\":\"true\"},\"HostConfig\":{\"NetworkMode\":\"host\"}},"
        "{\"Id\":\"c6\",\"Names\":[\"/bind\"],\"Image\":\"x\",\"State\":\"exited\","
        "\"Labels\":{\"berth.managed\":\"true\"},"
        "\"Mounts\":[{\"Type\":\"bind\",\"Source\":\"/\"}]}]";
    struct backend_container_list l = {NULL, 0};
    struct fixture fx;

    fx_start(&fx);
    fe_reply(&fx.fe, 200, answer);
    fe_reply(&fx.fe, 200, "[]");
    CHECK(fx.b.ops->list(fx.b.ctx, "berth.kind=vm", BERTH_NO_DEADLINE, &l, &fx.err) == 0);
    CHECK_STR(fx_line(&fx, 0),
              "GET /v1.41/containers/json?all=true&filters=%7B%22label%22%3A%5B%22berth.managed"
              "%3Dtrue%22%2C%22berth.kind%3Dvm%22%5D%7D");
    CHECK(l.n == 2);
    if (l.n == 2) {
        CHECK_STR(l.items[0].id, "c1");
        CHECK_STR(l.items[0].name, "web-1");
        CHECK(l.items[0].state == BACKEND_STATE_RUNNING);
        CHECK(l.items[0].created_unix == 1795586402);
        CHECK_STR(l.items[0].ip_address, "172.17.0.2");
        CHECK(l.items[0].n_ports == 1);
        CHECK(l.items[0].n_ports == 1 && l.items[0].ports[0].host_port == 49153);
        CHECK_STR(backend_container_label(&l.items[0], "berth.kind"), "vm");
        CHECK_STR(l.items[1].id, "c3");
        CHECK_STR(l.items[1].ip_address, "");
        CHECK(l.items[1].n_ports == 0);
    }
    backend_container_list_release(&l);

    CHECK(fx.b.ops->list(fx.b.ctx, NULL, BERTH_NO_DEADLINE, &l, &fx.err) == 0);
    CHECK(l.n == 0);
    CHECK_STR(fx_line(&fx, 1), "GET /v1.41/containers/json?all=true&filters=%7B%22label%22%3A"
                               "%5B%22berth.managed%3Dtrue%22%5D%7D");
    backend_container_list_release(&l);
    fx_stop(&fx);
}

/* ContainerSpec's health check: Config.Healthcheck in exec form with the
 * times in ns; a disabled one is ["NONE"]; timings alone tune the image's. */
static void test_create_health(void)
{
    static const char *const test[] = {"wget", "-q", "-O-", "http://127.0.0.1:8080/health"};
    struct backend_health_check full = {0, test, 4, 1500000000, 2000000000, 5000000000, 4};
    struct backend_health_check off = {.disable = 1};
    struct backend_health_check tune = {.interval_ns = 1000000000, .retries = 2};
    struct backend_spec spec = {.image = "busybox", .health = &full};
    struct fixture fx;
    char *id = NULL;

    fx_start(&fx);
    for (int i = 0; i < 3; i++)
        fe_reply(&fx.fe, 201, "{\"Id\":\"h1\"}");
    CHECK(fx.b.ops->create(fx.b.ctx, &spec, BERTH_NO_DEADLINE, &id, &fx.err) == 0);
    free(id);
    CHECK_MSG(strstr(fx_body_untokened(&fx, 0),
                     "\"Healthcheck\":{\"Test\":[\"CMD\",\"wget\",\"-q\",\"-O-\","
                     "\"http://127.0.0.1:8080/health\"],\"Interval\":1500000000,"
                     "\"Timeout\":2000000000,\"StartPeriod\":5000000000,\"Retries\":4}") != NULL,
              "%s", fx_body_untokened(&fx, 0));
    spec.health = &off;
    CHECK(fx.b.ops->create(fx.b.ctx, &spec, BERTH_NO_DEADLINE, &id, &fx.err) == 0);
    free(id);
    CHECK(strstr(fx_body_untokened(&fx, 1), "\"Healthcheck\":{\"Test\":[\"NONE\"]}") != NULL);
    spec.health = &tune;
    CHECK(fx.b.ops->create(fx.b.ctx, &spec, BERTH_NO_DEADLINE, &id, &fx.err) == 0);
    free(id);
    CHECK(strstr(fx_body_untokened(&fx, 2),
                 "\"Healthcheck\":{\"Interval\":1000000000,\"Retries\":2}") != NULL);
    {
        struct backend_health_check bad_off = {1, test, 1, 0, 0, 0, 0};
        struct backend_health_check bad_neg = {.interval_ns = -1};
        struct backend_spec b1 = {.image = "a", .health = &bad_off};
        struct backend_spec b2 = {.image = "a", .health = &bad_neg};

        berth_err_clear(&fx.err);

        CHECK(fx.b.ops->create(fx.b.ctx, &b1, BERTH_NO_DEADLINE, &id, &fx.err) < 0);
        CHECK(fx.err.code == BERTH_INVALID_ARGUMENT);
        berth_err_clear(&fx.err);
        CHECK(fx.b.ops->create(fx.b.ctx, &b2, BERTH_NO_DEADLINE, &id, &fx.err) < 0);
        CHECK(fx.err.code == BERTH_INVALID_ARGUMENT);
    }
    CHECK(fe_n_reqs(&fx.fe) == 3);
    fx_stop(&fx);
}

#define VOLUME_OURS(name)                                                                          \
    "{\"Name\":\"" name "\",\"Driver\":\"local\",\"Options\":null,"                                \
    "\"Labels\":{\"berth.kind\":\"vm\",\"berth.vm_id\":\"v1\",\"berth.managed\":\"true\","         \
    "\"berth.instance\":\"default\"}}"

/* ContainerSpec's volumes: made (when missing) with berthd's labels before
 * the container, mounted by name, never a foreign one; a failed create
 * removes the volumes it made. */
static void test_create_volumes(void)
{
    static const struct backend_volume vols[] = {{"berth-v1-data", "/data", 0},
                                                 {"berth-v1-kept", "/kept", 1}};
    static const struct backend_label vlabels[] = {{"berth.kind", "vm"}, {"berth.vm_id", "v1"}};
    struct backend_spec spec = {.image = "busybox",
                                .volumes = vols,
                                .n_volumes = 2,
                                .volume_labels = vlabels,
                                .n_volume_labels = 2};
    struct fixture fx;
    char *id = NULL;

    fx_start(&fx);
    /* data is missing and made; kept is there, ours, and mounted again. */
    fe_reply(&fx.fe, 404, "{\"message\":\"get berth-v1-data: no such volume\"}");
    fe_reply(&fx.fe, 201, VOLUME_OURS("berth-v1-data"));
    fe_reply(&fx.fe, 200, VOLUME_OURS("berth-v1-kept"));
    fe_reply(&fx.fe, 201, "{\"Id\":\"vc1\"}");
    CHECK(fx.b.ops->create(fx.b.ctx, &spec, BERTH_NO_DEADLINE, &id, &fx.err) == 0);
    free(id);
    id = NULL;
    CHECK_STR(fx_line(&fx, 0), "GET /v1.41/volumes/berth-v1-data");
    CHECK_STR(fx_line(&fx, 1), "POST /v1.41/volumes/create");
    CHECK_STR(fx_body(&fx, 1), "{\"Labels\":{\"berth.kind\":\"vm\",\"berth.vm_id\":\"v1\","
                               "\"berth.managed\":\"true\",\"berth.instance\":\"default\"},"
                               "\"Name\":\"berth-v1-data\",\"Driver\":\"local\"}");
    CHECK_STR(fx_line(&fx, 2), "GET /v1.41/volumes/berth-v1-kept");
    CHECK_STR(fx_line(&fx, 3), "POST /v1.41/containers/create");
    CHECK_MSG(strstr(fx_body(&fx, 3),
                     "\"Mounts\":[{\"Type\":\"volume\",\"Source\":\"berth-v1-data\","
                     "\"Target\":\"/data\",\"ReadOnly\":false},{\"Type\":\"volume\","
                     "\"Source\":\"berth-v1-kept\",\"Target\":\"/kept\",\"ReadOnly\":true}]") !=
                  NULL,
              "%s", fx_body(&fx, 3));
    CHECK(strstr(fx_body(&fx, 3), "Binds") == NULL);

    /* Volumes berthd must not mount: another berthd's, another VM's, one
     * that is not ours at all, one with driver options (a host path). */
    {
        static const char *const foreign[] = {
            "{\"Name\":\"berth-v1-data\",\"Driver\":\"local\",\"Labels\":{\"berth.kind\":"
            "\"vm\",\"berth.vm_id\":\"v1\",\"berth.managed\":\"true\",\"berth.instance\":"
            "\"blue\"}}",
            "{\"Name\":\"berth-v1-data\",\"Driver\":\"local\",\"Labels\":{\"berth.kind\":"
            "\"vm\",\"berth.vm_id\":\"v2\",\"berth.managed\":\"true\"}}",
            "{\"Name\":\"berth-v1-data\",\"Driver\":\"local\",\"Labels\":null}",
            "{\"Name\":\"berth-v1-data\",\"Driver\":\"local\",\"Options\":{\"type\":"
            "\"none\",\"o\":\"bind\",\"device\":\"/etc\"},\"Labels\":{\"berth.kind\":\"vm\","
            "\"berth.vm_id\":\"v1\",\"berth.managed\":\"true\"}}",
            "{\"Name\":\"berth-v1-data\",\"Driver\":\"nfs\",\"Labels\":{\"berth.kind\":\"vm\","
            "\"berth.vm_id\":\"v1\",\"berth.managed\":\"true\"}}",
        };

        for (size_t i = 0; i < sizeof(foreign) / sizeof(foreign[0]); i++) {
            size_t before = fe_n_reqs(&fx.fe);

            fe_reply(&fx.fe, 200, foreign[i]);
            berth_err_clear(&fx.err);
            berth_err_clear(&fx.err);
            CHECK(fx.b.ops->create(fx.b.ctx, &spec, BERTH_NO_DEADLINE, &id, &fx.err) < 0);
            CHECK_MSG(fx.err.code == BERTH_FAILED_PRECONDITION, "%zu: %s", i, fx.err.msg);
            CHECK(strstr(fx.err.msg, "berth-v1-data") != NULL);
            CHECK(fe_n_reqs(&fx.fe) == before + 1); /* the look, nothing else */
        }
    }

    /* The container cannot be made: the volume made for it goes again,
     * the one that was there stays. */
    {
        size_t base = fe_n_reqs(&fx.fe);

        fe_reply(&fx.fe, 404, "{\"message\":\"no such volume\"}");
        fe_reply(&fx.fe, 201, VOLUME_OURS("berth-v1-data"));
        fe_reply(&fx.fe, 200, VOLUME_OURS("berth-v1-kept"));
        fe_reply(&fx.fe, 400, "{\"message\":\"invalid mount config\"}");
        fe_reply(&fx.fe, 200, VOLUME_OURS("berth-v1-data"));
        fe_reply(&fx.fe, 204, NULL);
        berth_err_clear(&fx.err);
        berth_err_clear(&fx.err);
        CHECK(fx.b.ops->create(fx.b.ctx, &spec, BERTH_NO_DEADLINE, &id, &fx.err) < 0);
        CHECK(fx.err.code == BERTH_INVALID_ARGUMENT);
        CHECK(fe_n_reqs(&fx.fe) == base + 6);
        CHECK_STR(fx_line(&fx, base + 4), "GET /v1.41/volumes/berth-v1-data");
        CHECK_STR(fx_line(&fx, base + 5), "DELETE /v1.41/volumes/berth-v1-data");
    }
    {
        static const struct backend_volume rel[] = {{"berth-v1-x", "data", 0}};
        static const struct backend_volume root[] = {{"berth-v1-x", "/", 0}};
        static const struct backend_volume noname[] = {{"", "/x", 0}};
        struct backend_spec b1 = {.image = "a", .volumes = rel, .n_volumes = 1};
        struct backend_spec b2 = {.image = "a", .volumes = root, .n_volumes = 1};
        struct backend_spec b3 = {.image = "a", .volumes = noname, .n_volumes = 1};
        size_t before = fe_n_reqs(&fx.fe);

        berth_err_clear(&fx.err);

        CHECK(fx.b.ops->create(fx.b.ctx, &b1, BERTH_NO_DEADLINE, &id, &fx.err) < 0);
        CHECK(fx.err.code == BERTH_INVALID_ARGUMENT);
        berth_err_clear(&fx.err);
        CHECK(fx.b.ops->create(fx.b.ctx, &b2, BERTH_NO_DEADLINE, &id, &fx.err) < 0);
        CHECK(fx.err.code == BERTH_INVALID_ARGUMENT);
        berth_err_clear(&fx.err);
        CHECK(fx.b.ops->create(fx.b.ctx, &b3, BERTH_NO_DEADLINE, &id, &fx.err) < 0);
        CHECK(fx.err.code == BERTH_INVALID_ARGUMENT);
        CHECK(fe_n_reqs(&fx.fe) == before);
    }
    fx_stop(&fx);
}

/* remove_volume: only a volume of berthd's with the labels asked for. */
static void test_remove_volume(void)
{
    static const struct backend_label must[] = {{"berth.kind", "vm"}, {"berth.vm_id", "v1"}};
    static const struct backend_label other[] = {{"berth.vm_id", "v2"}};
    struct fixture fx;
    size_t n;

    fx_start(&fx);
    fe_reply(&fx.fe, 200, VOLUME_OURS("berth-v1-data"));
    fe_reply(&fx.fe, 204, NULL);
    CHECK(fx.b.ops->remove_volume(fx.b.ctx, "berth-v1-data", must, 2, BERTH_NO_DEADLINE, &fx.err) ==
          0);
    CHECK_STR(fx_line(&fx, 1), "DELETE /v1.41/volumes/berth-v1-data");
    /* Another VM's, or not berthd's: not_found, and no DELETE. */
    fe_reply(&fx.fe, 200, VOLUME_OURS("berth-v1-data"));
    fe_reply(&fx.fe, 200, "{\"Name\":\"berth-v1-data\",\"Driver\":\"local\",\"Labels\":{}}");
    fe_reply(&fx.fe, 404, "{\"message\":\"no such volume\"}");
    berth_err_clear(&fx.err);
    CHECK(fx.b.ops->remove_volume(fx.b.ctx, "berth-v1-data", other, 1, BERTH_NO_DEADLINE, &fx.err) <
          0);
    CHECK(fx.err.code == BERTH_NOT_FOUND);
    berth_err_clear(&fx.err);
    CHECK(fx.b.ops->remove_volume(fx.b.ctx, "berth-v1-data", must, 2, BERTH_NO_DEADLINE, &fx.err) <
          0);
    CHECK(fx.err.code == BERTH_NOT_FOUND);
    berth_err_clear(&fx.err);
    CHECK(fx.b.ops->remove_volume(fx.b.ctx, "berth-v1-data", must, 2, BERTH_NO_DEADLINE, &fx.err) <
          0);
    CHECK(fx.err.code == BERTH_NOT_FOUND);
    n = fe_n_reqs(&fx.fe);
    for (size_t i = 2; i < n; i++)
        CHECK(strncmp(fx_line(&fx, i), "GET ", 4) == 0);
    /* Still mounted: failed_precondition, the Engine's words. */
    fe_reply(&fx.fe, 200, VOLUME_OURS("berth-v1-data"));
    fe_reply(&fx.fe, 409, "{\"message\":\"remove berth-v1-data: volume is in use\"}");
    berth_err_clear(&fx.err);
    berth_err_clear(&fx.err);
    CHECK(fx.b.ops->remove_volume(fx.b.ctx, "berth-v1-data", must, 2, BERTH_NO_DEADLINE, &fx.err) <
          0);
    CHECK_MSG(fx.err.code == BERTH_FAILED_PRECONDITION && strstr(fx.err.msg, "in use") != NULL,
              "%s: %s", berth_code_name(fx.err.code), fx.err.msg);
    fx_stop(&fx);
}

/* Health from an inspect (State.Health, else whether Config.Healthcheck
 * has a check) and from a listing's Status text; RestartCount. */
static void test_health_and_restarts_read(void)
{
    static const char *const inspects[] = {
        "{\"Id\":\"a\",\"RestartCount\":3,\"State\":{\"Status\":\"running\","
        "\"Health\":{\"Status\":\"unhealthy\",\"FailingStreak\":3}},"
        "\"Config\":{\"Healthcheck\":{\"Test\":[\"CMD\",\"false\"]},"
        "\"Labels\":{\"berth.managed\":\"true\"}}}",
        "{\"Id\":\"a\",\"State\":{\"Status\":\"created\"},"
        "\"Config\":{\"Healthcheck\":{\"Test\":[\"CMD-SHELL\",\"true\"]},"
        "\"Labels\":{\"berth.managed\":\"true\"}}}",
        "{\"Id\":\"a\",\"State\":{\"Status\":\"running\"},"
        "\"Config\":{\"Healthcheck\":{\"Test\":[\"NONE\"]},"
        "\"Labels\":{\"berth.managed\":\"true\"}}}",
        "{\"Id\":\"a\",\"State\":{\"Status\":\"running\",\"Health\":{\"Status\":\"healthy\"}},"
        "\"Config\":{\"Labels\":{\"berth.managed\":\"true\"}}}",
        "{\"Id\":\"a\",\"State\":{\"Status\":\"running\"},"
        "\"Config\":{\"Labels\":{\"berth.managed\":\"true\"}}}",
    };
    static const enum backend_health want_inspect[] = {BACKEND_HEALTH_UNHEALTHY,
                                                       BACKEND_HEALTH_STARTING, BACKEND_HEALTH_NONE,
                                                       BACKEND_HEALTH_HEALTHY, BACKEND_HEALTH_NONE};
    static const char *const list =
        "[{\"Id\":\"1\",\"State\":\"running\",\"Status\":\"Up 2 minutes (healthy)\","
        "\"Labels\":{\"berth.managed\":\"true\"}},"
        "{\"Id\":\"2\",\"State\":\"running\",\"Status\":\"Up 3 seconds (health: starting)\","
        "\"Labels\":{\"berth.managed\":\"true\"}},"
        "{\"Id\":\"3\",\"State\":\"running\",\"Status\":\"Up About an hour (unhealthy)\","
        "\"Labels\":{\"berth.managed\":\"true\"}},"
        "{\"Id\":\"4\",\"State\":\"running\",\"Status\":\"Up 5 seconds\","
        "\"Labels\":{\"berth.managed\":\"true\"}},"
        "{\"Id\":\"5\",\"State\":\"paused\",\"Status\":\"Up 5 seconds (Paused)\","
        "\"Labels\":{\"berth.managed\":\"true\"}},"
        "{\"Id\":\"6\",\"State\":\"exited\",\"Status\":\"Exited (1) 2 seconds ago\","
        "\"Labels\":{\"berth.managed\":\"true\"}}]";
    static const enum backend_health want_list[] = {
        BACKEND_HEALTH_HEALTHY, BACKEND_HEALTH_STARTING, BACKEND_HEALTH_UNHEALTHY,
        BACKEND_HEALTH_NONE,    BACKEND_HEALTH_UNKNOWN,  BACKEND_HEALTH_UNKNOWN};
    struct backend_container_list l = {NULL, 0};
    struct backend_container c;
    struct fixture fx;

    fx_start(&fx);
    for (size_t i = 0; i < sizeof(inspects) / sizeof(inspects[0]); i++) {
        fe_reply(&fx.fe, 200, inspects[i]);
        memset(&c, 0, sizeof(c));
        CHECK(fx.b.ops->inspect(fx.b.ctx, "a", BERTH_NO_DEADLINE, &c, &fx.err) == 0);
        CHECK_MSG(c.health == want_inspect[i], "inspect %zu: %s", i, backend_health_name(c.health));
        CHECK(c.restart_count == (i == 0 ? 3 : 0));
        backend_container_release(&c);
    }
    fe_reply(&fx.fe, 200, list);
    CHECK(fx.b.ops->list(fx.b.ctx, NULL, BERTH_NO_DEADLINE, &l, &fx.err) == 0);
    CHECK(l.n == 6);
    for (size_t i = 0; i < l.n && i < 6; i++) {
        CHECK_MSG(l.items[i].health == want_list[i], "list %zu: %s", i,
                  backend_health_name(l.items[i].health));
        CHECK(l.items[i].restart_count == -1);
    }
    backend_container_list_release(&l);
    CHECK(backend_health_parse("healthy") == BACKEND_HEALTH_HEALTHY);
    CHECK(backend_health_parse("none") == BACKEND_HEALTH_NONE);
    CHECK(backend_health_parse("sideways") == BACKEND_HEALTH_UNKNOWN);
    CHECK(backend_health_parse(NULL) == BACKEND_HEALTH_UNKNOWN);
    CHECK_STR(backend_health_name(BACKEND_HEALTH_COUNT), "unknown");
    fx_stop(&fx);
}

static void test_ping_and_unavailable(void)
{
    struct fixture fx;
    struct docker_backend_config cfg = {0};
    struct backend b = {NULL, NULL};
    struct berth_err err;
    int64_t t0;

    fx_start(&fx);
    fe_reply(&fx.fe, 200, "OK");
    CHECK(fx.b.ops->ping(fx.b.ctx, BERTH_NO_DEADLINE, &fx.err) == 0);
    /* Unversioned: it asks whether the Engine answers at all. */
    CHECK_STR(fx_line(&fx, 0), "GET /_ping");
    CHECK_STR(fx.b.ops->name, "docker");

    /* No engine behind the socket path: unavailable, quickly. */
    cfg.socket_path = fx.fe.dir; /* a directory, not a socket */
    berth_err_clear(&err);
    CHECK(docker_backend_new(&cfg, &b, &err) == 0);
    t0 = berth_now_ms();
    CHECK(b.ops->ping(b.ctx, BERTH_NO_DEADLINE, &err) < 0);
    CHECK_MSG(err.code == BERTH_UNAVAILABLE, "%s", err.msg);
    CHECK(berth_now_ms() - t0 < 1000);
    backend_destroy(&b);
    fx_stop(&fx);
}

static void test_stop_deadline(void)
{
    struct fixture fx;
    int64_t t0;

    /* The caller's deadline wins over t plus margin. */
    fx_start(&fx);
    fe_reply(&fx.fe, 200, INSPECT_MANAGED);
    fe_reply_stall(&fx.fe);
    t0 = berth_now_ms();
    CHECK(fx.b.ops->stop(fx.b.ctx, "web-1", 30, t0 + 300, &fx.err) < 0);
    CHECK_MSG(fx.err.code == BERTH_DEADLINE_EXCEEDED, "%s", fx.err.msg);
    CHECK(berth_now_ms() - t0 < 3000);
    fx_stop(&fx);
}

int main(void)
{
    struct berth_err err;

    berth_err_clear(&err);
    if (engine_global_init(&err) < 0)
        return 1;
    test_create_body();
    test_create_minimal_and_invalid();
    test_create_restart_retries();
    test_create_errors();
    test_pull_on_missing_image();
    test_pull_errors();
    test_create_reap();
    test_create_reap_transport_error();
    test_create_no_reap();
    test_lifecycle_mapping();
    test_not_ours();
    test_allowed_registries();
    test_create_options();
    test_networks();
    test_inspect();
    test_list();
    test_create_health();
    test_create_volumes();
    test_remove_volume();
    test_health_and_restarts_read();
    test_ping_and_unavailable();
    test_stop_deadline();
    engine_global_cleanup();
    return test_summary("test_docker_backend");
}
