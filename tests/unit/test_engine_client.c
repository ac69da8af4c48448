/* The Engine client against a fake Engine on a unix socket: version
 * negotiation, request shape, keep-alive reuse, error mapping, deadlines,
 * streaming and cancellation. */
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "berth/clock.h"
#include "berth/engine_client.h"
#include "fake_engine.h"
#include "testlib.h"

static const char *req_body(struct fake_engine *fe, size_t i)
{
    const char *b;

    pthread_mutex_lock(&fe->mu);
    b = i < fe->n_reqs ? fe->reqs[i].body : "(none)";
    pthread_mutex_unlock(&fe->mu);
    return b;
}

static void test_version_prefix_and_keepalive(void)
{
    struct fake_engine fe;
    struct engine *e = NULL;
    struct engine_response resp;
    struct berth_err err;
    char line[512], ver[16];

    fe_init(&fe);
    fe.api_version = "1.40";
    fe_start(&fe);
    fe_reply(&fe, 200, "[]");
    fe_reply(&fe, 201, "{\"Id\":\"x\"}");
    berth_err_clear(&err);
    CHECK(engine_new(fe.sock, &e, &err) == 0);
    engine_response_init(&resp);
    CHECK(engine_request(e, "GET", "/containers/json?all=true", NULL, BERTH_NO_DEADLINE, &resp,
                         &err) == 0);
    CHECK(resp.status == 200);
    CHECK_STR(resp.body.data, "[]");
    engine_response_release(&resp);
    engine_response_init(&resp);
    CHECK(engine_request(e, "POST", "/containers/create", "{\"Image\":\"a\"}",
                         berth_now_ms() + 5000, &resp, &err) == 0);
    CHECK(resp.status == 201);
    engine_response_release(&resp);
    CHECK_MSG(err.code == BERTH_OK, "%s", err.msg);

    CHECK_STR(fe_req_line(&fe, 0, line, sizeof(line)), "GET /v1.40/containers/json?all=true");
    CHECK_STR(fe_req_line(&fe, 1, line, sizeof(line)), "POST /v1.40/containers/create");
    CHECK_STR(req_body(&fe, 1), "{\"Image\":\"a\"}");
    CHECK(fe_version_calls(&fe) == 1);
    /* /version and both calls went over one kept-alive connection. */
    CHECK_MSG(fe_n_conns(&fe) == 1, "connections: %d", fe_n_conns(&fe));
    CHECK(engine_api_version(e, BERTH_NO_DEADLINE, ver, sizeof(ver), &err) == 0);
    CHECK_STR(ver, "1.40");
    engine_free(e);
    fe_stop(&fe);
}

static void test_version_capped_and_too_old(void)
{
    static const struct {
        const char *desc;
        const char *engine_version;
        int ok;
        const char *want;
    } rows[] = {
        {"newer engine: our newest", "1.99", 1, "1.43"},
        {"same", "1.41", 1, "1.41"},
        {"too old", "1.12", 0, NULL},
        {"garbage", "v2", 0, NULL},
    };

    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct fake_engine fe;
        struct engine *e = NULL;
        struct berth_err err;
        char ver[16] = "";
        int rc;

        fe_init(&fe);
        fe.api_version = rows[i].engine_version;
        fe_start(&fe);
        berth_err_clear(&err);
        CHECK(engine_new(fe.sock, &e, &err) == 0);
        rc = engine_api_version(e, BERTH_NO_DEADLINE, ver, sizeof(ver), &err);
        CHECK_MSG((rc == 0) == rows[i].ok, "%s: %s", rows[i].desc, err.msg);
        if (rows[i].ok)
            CHECK_STR(ver, rows[i].want);
        else
            CHECK(err.code == BERTH_FAILED_PRECONDITION || err.code == BERTH_UNAVAILABLE);
        engine_free(e);
        fe_stop(&fe);
    }
}

static void test_unreachable_fast_then_lazy_negotiation(void)
{
    struct fake_engine fe;
    struct engine *e = NULL;
    struct engine_response resp;
    struct berth_err err;
    int64_t t0;
    char line[256];

    fe_init(&fe); /* socket file not there yet */
    berth_err_clear(&err);
    CHECK(engine_new(fe.sock, &e, &err) == 0);
    engine_response_init(&resp);
    t0 = berth_now_ms();
    CHECK(engine_request(e, "GET", "/_ping", NULL, BERTH_NO_DEADLINE, &resp, &err) < 0);
    CHECK(err.code == BERTH_UNAVAILABLE);
    CHECK(strstr(err.msg, "unreachable") != NULL);
    CHECK_MSG(berth_now_ms() - t0 < 1000, "took %lld ms", (long long)(berth_now_ms() - t0));
    engine_response_release(&resp);

    /* The Engine comes up: the next call negotiates and succeeds. */
    fe_start(&fe);
    fe_reply(&fe, 200, "\"OK\"");
    berth_err_clear(&err);
    engine_response_init(&resp);
    CHECK(engine_request(e, "GET", "/_ping", NULL, BERTH_NO_DEADLINE, &resp, &err) == 0);
    CHECK(resp.status == 200);
    CHECK_STR(fe_req_line(&fe, 0, line, sizeof(line)), "GET /v1.41/_ping");
    engine_response_release(&resp);
    engine_free(e);
    fe_stop(&fe);
}

static void test_refused(void)
{
    struct fake_engine fe;
    struct engine *e = NULL;
    struct engine_response resp;
    struct berth_err err;
    struct sockaddr_un sa;
    int fd;
    int64_t t0;

    /* A socket file nobody listens on: connection refused. */
    fe_init(&fe);
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", fe.sock);
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
    close(fd);

    berth_err_clear(&err);
    CHECK(engine_new(fe.sock, &e, &err) == 0);
    engine_response_init(&resp);
    t0 = berth_now_ms();
    CHECK(engine_request(e, "GET", "/_ping", NULL, berth_now_ms() + 10000, &resp, &err) < 0);
    CHECK_MSG(err.code == BERTH_UNAVAILABLE, "%s", err.msg);
    CHECK(berth_now_ms() - t0 < 1000);
    engine_response_release(&resp);
    engine_free(e);
    fe_stop(&fe);
}

static void test_deadline(void)
{
    struct fake_engine fe;
    struct engine *e = NULL;
    struct engine_response resp;
    struct berth_err err;
    int64_t t0, took;

    fe_init(&fe);
    fe_start(&fe);
    fe_reply_stall(&fe);
    berth_err_clear(&err);
    CHECK(engine_new(fe.sock, &e, &err) == 0);
    engine_response_init(&resp);
    t0 = berth_now_ms();
    CHECK(engine_request(e, "POST", "/containers/x/stop", NULL, t0 + 300, &resp, &err) < 0);
    took = berth_now_ms() - t0;
    CHECK_MSG(err.code == BERTH_DEADLINE_EXCEEDED, "%s", err.msg);
    CHECK_MSG(took >= 290 && took < 3000, "took %lld ms", (long long)took);
    engine_response_release(&resp);

    /* A deadline already passed: nothing is sent. */
    berth_err_clear(&err);
    engine_response_init(&resp);
    CHECK(engine_request(e, "GET", "/_ping", NULL, berth_now_ms() - 1, &resp, &err) < 0);
    CHECK(err.code == BERTH_DEADLINE_EXCEEDED);
    CHECK(fe_n_reqs(&fe) == 1);
    engine_response_release(&resp);
    engine_free(e);
    fe_stop(&fe);
}

static void test_error_text(void)
{
    static const struct {
        const char *desc;
        int status;
        const char *body;
        enum berth_code code;
        const char *text;
    } rows[] = {
        {"engine json", 404, "{\"message\":\"No such container: abc\"}", BERTH_NOT_FOUND,
         "No such container: abc"},
        {"conflict", 409, "{\"message\":\"Container abc is not running\"}",
         BERTH_FAILED_PRECONDITION, "Container abc is not running"},
        {"server error, plain body", 500, "boom\n", BERTH_UNAVAILABLE, "boom?"},
        {"empty body", 503, NULL, BERTH_UNAVAILABLE, "HTTP 503"},
        {"bad request", 400, "{\"message\":\"bad\"}", BERTH_INVALID_ARGUMENT, "bad"},
    };

    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct fake_engine fe;
        struct engine *e = NULL;
        struct engine_response resp;
        struct berth_err err;
        char text[128];

        fe_init(&fe);
        fe_start(&fe);
        fe_reply(&fe, rows[i].status, rows[i].body);
        berth_err_clear(&err);
        CHECK(engine_new(fe.sock, &e, &err) == 0);
        engine_response_init(&resp);
        CHECK(engine_request(e, "GET", "/x", NULL, BERTH_NO_DEADLINE, &resp, &err) == 0);
        CHECK_MSG(resp.status == rows[i].status, "%s", rows[i].desc);
        CHECK(engine_status_code(resp.status) == rows[i].code);
        engine_error_text(&resp, text, sizeof(text));
        CHECK_STR(text, rows[i].text);
        CHECK(engine_fail(&resp, rows[i].code, "do 'x'", &err) == -1);
        CHECK(err.code == rows[i].code);
        CHECK(strncmp(err.msg, "do 'x': ", 8) == 0);
        engine_response_release(&resp);
        engine_free(e);
        fe_stop(&fe);
    }
}

static void test_escape(void)
{
    static const struct {
        const char *in;
        const char *out;
    } rows[] = {
        {"plain-name_1.2", "plain-name_1.2"},
        {"a b/c?d&e=f#g", "a%20b%2Fc%3Fd%26e%3Df%23g"},
        {"{\"label\":[\"k=v\"]}", "%7B%22label%22%3A%5B%22k%3Dv%22%5D%7D"},
        {"..", ".."},
    };

    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct buf b;
        struct berth_err err;

        berth_err_clear(&err);
        buf_init(&b, 1024);
        CHECK(engine_append_escaped(&b, rows[i].in, &err) == 0);
        CHECK_STR(b.data, rows[i].out);
        buf_release(&b);
    }
}

/* What a stream callback saw. */
struct lines {
    char all[1024];
    int n;
    int stop_after;   /* return nonzero after this many lines (0: never) */
    atomic_int *flag; /* set after the first line, when not NULL */
};

static int collect_line(void *arg, const char *line, size_t len)
{
    struct lines *l = arg;
    size_t used = strlen(l->all);

    CHECK(strlen(line) == len);
    snprintf(l->all + used, sizeof(l->all) - used, "%s|", line);
    l->n++;
    if (l->flag != NULL)
        atomic_store(l->flag, 1);
    return l->stop_after != 0 && l->n >= l->stop_after;
}

static void test_stream(void)
{
    static const char *const chunks[] = {"{\"status\":\"a\"}\n{\"st", "atus\":\"b\"}\r\n",
                                         "\n{\"status\":\"c\"}"};
    struct fake_engine fe;
    struct engine *e = NULL;
    struct engine_response resp;
    struct berth_err err;
    struct lines l;
    atomic_int stop = 0;
    int64_t t0;

    fe_init(&fe);
    fe_start(&fe);
    berth_err_clear(&err);
    CHECK(engine_new(fe.sock, &e, &err) == 0);

    /* Lines split across chunks, CRLF, an empty line, a last line without '\n'. */
    fe_reply_chunked(&fe, chunks, 3, 0);
    memset(&l, 0, sizeof(l));
    engine_response_init(&resp);
    CHECK(engine_stream(e, "POST", "/images/create?fromImage=a&tag=b", NULL, BERTH_NO_DEADLINE,
                        NULL, collect_line, &l, &resp, &err) == 0);
    CHECK(resp.status == 200);
    CHECK_STR(l.all, "{\"status\":\"a\"}|{\"status\":\"b\"}|{\"status\":\"c\"}|");
    engine_response_release(&resp);

    /* The callback stops the stream. */
    fe_reply_chunked(&fe, chunks, 3, 0);
    memset(&l, 0, sizeof(l));
    l.stop_after = 1;
    engine_response_init(&resp);
    CHECK(engine_stream(e, "GET", "/events", NULL, BERTH_NO_DEADLINE, NULL, collect_line, &l, &resp,
                        &err) == 0);
    CHECK(l.n == 1);
    engine_response_release(&resp);

    /* A stalled stream ends soon after the stop flag is set (from the
     * callback here, so no other thread is needed). */
    fe_reply_chunked(&fe, chunks, 1, 1);
    memset(&l, 0, sizeof(l));
    l.flag = &stop;
    engine_response_init(&resp);
    t0 = berth_now_ms();
    CHECK(engine_stream(e, "GET", "/events", NULL, BERTH_NO_DEADLINE, &stop, collect_line, &l,
                        &resp, &err) == 0);
    CHECK(l.n == 1);
    CHECK_MSG(berth_now_ms() - t0 < 5000, "took %lld ms", (long long)(berth_now_ms() - t0));
    engine_response_release(&resp);

    /* A stalled stream with a deadline. */
    fe_reply_chunked(&fe, chunks, 1, 1);
    memset(&l, 0, sizeof(l));
    engine_response_init(&resp);
    CHECK(engine_stream(e, "GET", "/events", NULL, berth_now_ms() + 300, NULL, collect_line, &l,
                        &resp, &err) < 0);
    CHECK_MSG(err.code == BERTH_DEADLINE_EXCEEDED, "%s", err.msg);
    engine_response_release(&resp);

    /* A non-2xx answer is buffered, not streamed. */
    berth_err_clear(&err);
    fe_reply(&fe, 404, "{\"message\":\"pull access denied\"}");
    memset(&l, 0, sizeof(l));
    engine_response_init(&resp);
    CHECK(engine_stream(e, "POST", "/images/create?fromImage=x&tag=y", NULL, BERTH_NO_DEADLINE,
                        NULL, collect_line, &l, &resp, &err) == 0);
    CHECK(resp.status == 404);
    CHECK(l.n == 0);
    CHECK_STR(resp.body.data, "{\"message\":\"pull access denied\"}");
    engine_response_release(&resp);

    engine_free(e);
    fe_stop(&fe);
}

/* Several threads share one engine: every call answered, the pool bounded. */
struct worker {
    struct engine *e;
    int ok;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;

    for (int i = 0; i < 10; i++) {
        struct engine_response resp;
        struct berth_err err;

        berth_err_clear(&err);
        engine_response_init(&resp);
        if (engine_request(w->e, "GET", "/_ping", NULL, BERTH_NO_DEADLINE, &resp, &err) == 0 &&
            resp.status == 200)
            w->ok++;
        engine_response_release(&resp);
    }
    return NULL;
}

static void test_threads(void)
{
    struct fake_engine fe;
    struct engine *e = NULL;
    struct berth_err err;
    struct worker w[4];
    pthread_t t[4];
    int total = 0;

    fe_init(&fe);
    fe_start(&fe);
    for (int i = 0; i < 40; i++)
        fe_reply(&fe, 200, "\"OK\"");
    berth_err_clear(&err);
    CHECK(engine_new(fe.sock, &e, &err) == 0);
    for (int i = 0; i < 4; i++) {
        w[i].e = e;
        w[i].ok = 0;
        CHECK(pthread_create(&t[i], NULL, worker_main, &w[i]) == 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        total += w[i].ok;
    }
    CHECK_MSG(total == 40, "ok: %d", total);
    fe_wait_reqs(&fe, 40);
    /* At most one connection per concurrent caller (plus racing negotiations). */
    CHECK_MSG(fe_n_conns(&fe) <= 8, "connections: %d", fe_n_conns(&fe));
    engine_free(e);
    fe_stop(&fe);
}

struct stalled_call {
    struct engine *e;
    int rc;
    enum berth_code code;
};

static void *stalled_call_main(void *arg)
{
    struct stalled_call *sc = arg;
    struct engine_response resp;
    struct berth_err err;

    berth_err_clear(&err);
    engine_response_init(&resp);
    sc->rc = engine_request(sc->e, "POST", "/containers/x/start", NULL, berth_now_ms() + 20000,
                            &resp, &err);
    sc->code = err.code;
    engine_response_release(&resp);
    return NULL;
}

/* An Engine marked unresponsive: a call under way ends within about a
 * second, new calls fail at once without reaching it, engine_probe still
 * asks it, and once unmarked calls go through again. */
static void test_unresponsive(void)
{
    struct fake_engine fe;
    struct engine *e = NULL;
    struct engine_response resp;
    struct berth_err err;
    struct stalled_call sc = {0};
    pthread_t t;
    int64_t t0, took;
    size_t n;

    fe_init(&fe);
    fe_start(&fe);
    fe_reply_stall(&fe);
    fe_reply(&fe, 200, "OK");
    fe_reply(&fe, 200, "{}");
    fe_reply(&fe, 200, "\"OK\"");
    berth_err_clear(&err);
    CHECK(engine_new(fe.sock, &e, &err) == 0);
    sc.e = e;
    CHECK(pthread_create(&t, NULL, stalled_call_main, &sc) == 0);
    fe_wait_reqs(&fe, 1); /* the stalled start is under way */
    t0 = berth_now_ms();
    engine_set_unresponsive(e, 1);
    pthread_join(t, NULL);
    took = berth_now_ms() - t0;
    CHECK(sc.rc < 0 && sc.code == BERTH_UNAVAILABLE);
    CHECK_MSG(took < 2500, "the stalled call ended after %lld ms", (long long)took);

    n = fe_n_reqs(&fe);
    berth_err_clear(&err);
    engine_response_init(&resp);
    t0 = berth_now_ms();
    CHECK(engine_request(e, "GET", "/containers/json", NULL, BERTH_NO_DEADLINE, &resp, &err) < 0);
    CHECK(err.code == BERTH_UNAVAILABLE && strstr(err.msg, "not answering") != NULL);
    CHECK(berth_now_ms() - t0 < 100);
    CHECK(fe_n_reqs(&fe) == n);
    engine_response_release(&resp);

    berth_err_clear(&err);
    CHECK(engine_refuses_calls(e) == 1);
    CHECK(engine_probe(e, berth_now_ms() + 2000, &err) == 0);
    CHECK(fe_n_reqs(&fe) == n + 1);
    /* Cleanup that must be tried goes through too. */
    engine_response_init(&resp);
    CHECK(engine_request_anyway(e, "GET", "/containers/web/json", NULL, berth_now_ms() + 2000,
                                &resp, &err) == 0);
    CHECK(resp.status == 200 && fe_n_reqs(&fe) == n + 2);
    engine_response_release(&resp);
    engine_set_unresponsive(e, 0);
    CHECK(engine_refuses_calls(e) == 0);
    engine_response_init(&resp);
    CHECK(engine_request(e, "GET", "/_ping", NULL, berth_now_ms() + 2000, &resp, &err) == 0);
    CHECK(resp.status == 200);
    engine_response_release(&resp);
    engine_free(e);
    fe_stop(&fe);
}

int main(void)
{
    struct berth_err err;

    berth_err_clear(&err);
    if (engine_global_init(&err) < 0)
        return 1;
    test_version_prefix_and_keepalive();
    test_version_capped_and_too_old();
    test_unreachable_fast_then_lazy_negotiation();
    test_refused();
    test_deadline();
    test_error_text();
    test_escape();
    test_stream();
    test_threads();
    test_unresponsive();
    engine_global_cleanup();
    return test_summary("test_engine_client");
}
