/* The vault client: how an answer of Decrypt is read (every status and
 * body a vault or a proxy may send), the token file (read, refused,
 * reloaded), and whole calls against a one-shot HTTP server on 127.0.0.1
 * that records the request, so the exact method, path, headers and body
 * are checked; an unreachable vault and a passed deadline. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "berth/arena.h"
#include "berth/clock.h"
#include "berth/vault_client.h"
#include "testlib.h"

static void test_read_answer(void);
static void test_token_file(void);
static void test_calls(void);
static void test_unreachable(void);

static char *write_temp(const char *text);

static char *write_temp(const char *text)
{
    char *path = strdup("/tmp/berth-test-vault-XXXXXX");
    int fd;
    FILE *f;

    if (path == NULL)
        return NULL;
    fd = mkstemp(path);
    if (fd < 0) {
        free(path);
        return NULL;
    }
    f = fdopen(fd, "w");
    if (f == NULL) {
        close(fd);
        free(path);
        return NULL;
    }
    fputs(text, f);
    fclose(f);
    return path;
}

static void test_read_answer(void)
{
    static const struct {
        const char *desc;
        long status;
        const char *body;
        enum berth_code want; /* BERTH_OK: plaintext below */
        const char *needle;   /* the plaintext, or a substring of the message */
    } rows[] = {
        {"plaintext", 200, "{\"plaintext\":\"s3cret\"}", BERTH_OK, "s3cret"},
        {"empty plaintext left out", 200, "{}", BERTH_OK, ""},
        {"plaintext with escapes", 200, "{\"plaintext\":\"a\\\"b\\u00e9\"}", BERTH_OK,
         "a\"b\xc3\xa9"},
        {"plaintext not a string", 200, "{\"plaintext\":5}", BERTH_FAILED_PRECONDITION,
         "not a string"},
        {"not JSON", 200, "plaintext", BERTH_FAILED_PRECONDITION, "not a JSON object"},
        {"empty body", 200, "", BERTH_FAILED_PRECONDITION, "not a JSON object"},
        {"refused", 401, "{\"code\":\"unauthenticated\",\"message\":\"bad token\"}",
         BERTH_FAILED_PRECONDITION, "unauthenticated: bad token"},
        {"unknown keyring", 404, "{\"code\":\"not_found\",\"message\":\"no keyring env_9\"}",
         BERTH_FAILED_PRECONDITION, "not_found: no keyring env_9"},
        {"vault unavailable", 503, "{\"code\":\"unavailable\",\"message\":\"sealed\"}",
         BERTH_UNAVAILABLE, "sealed"},
        {"vault out of time", 504, "{\"code\":\"deadline_exceeded\"}", BERTH_UNAVAILABLE, "504"},
        {"a proxy's 502", 502, "<html>bad gateway</html>", BERTH_UNAVAILABLE, "502"},
        {"a 500 without a code", 500, "oops", BERTH_FAILED_PRECONDITION, "HTTP 500"},
        {"a message with a newline", 400,
         "{\"code\":\"invalid_argument\",\"message\":\"line1\\nline2\"}", BERTH_FAILED_PRECONDITION,
         "line1?line2"},
    };
    struct arena *a = arena_new();

    CHECK(a != NULL);
    for (size_t i = 0; a != NULL && i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct buf body;
        struct berth_err err;
        char *plain = NULL;
        int rc;

        buf_init(&body, 4096);
        berth_err_clear(&err);
        CHECK(buf_appends(&body, rows[i].body, NULL) == 0);
        rc = vault_read_answer(rows[i].status, &body, a, &plain, &err);
        if (rows[i].want == BERTH_OK) {
            CHECK_MSG(rc == 0, "%s: %s", rows[i].desc, err.msg);
            CHECK_MSG(plain != NULL && strcmp(plain, rows[i].needle) == 0, "%s: '%s'", rows[i].desc,
                      plain ? plain : "(null)");
        } else {
            CHECK_MSG(rc < 0 && err.code == rows[i].want && plain == NULL, "%s: %s (%s)",
                      rows[i].desc, berth_code_name(err.code), err.msg);
            CHECK_MSG(strstr(err.msg, rows[i].needle) != NULL, "%s: '%s' lacks '%s'", rows[i].desc,
                      err.msg, rows[i].needle);
        }
        buf_release(&body);
    }
    arena_free(a);
}

/* ---- a one-shot HTTP server ---------------------------------------------- */

struct one_shot {
    int lfd;
    int port;
    char reply[1024]; /* the whole HTTP answer */
    char request[8192];
    size_t len;
    pthread_t thread;
};

static void *one_shot_main(void *arg)
{
    struct one_shot *o = arg;
    int fd = accept(o->lfd, NULL, NULL);
    size_t want = 0;

    if (fd < 0)
        return NULL;
    /* Headers, then Content-Length bytes of body. */
    while (o->len < sizeof(o->request) - 1) {
        ssize_t n = read(fd, o->request + o->len, sizeof(o->request) - 1 - o->len);
        char *end, *cl;

        if (n <= 0)
            break;
        o->len += (size_t)n;
        o->request[o->len] = '\0';
        end = strstr(o->request, "\r\n\r\n");
        if (end == NULL)
            continue;
        cl = strstr(o->request, "Content-Length: ");
        want = (size_t)(end + 4 - o->request) + (cl ? strtoul(cl + 16, NULL, 10) : 0);
        if (o->len >= want)
            break;
    }
    if (write(fd, o->reply, strlen(o->reply)) < 0)
        perror("write");
    close(fd);
    return NULL;
}

/* Answer one request with `status` ("200 OK") and a JSON body. */
static int one_shot_start(struct one_shot *o, const char *status, const char *body)
{
    struct sockaddr_in sa = {0};
    socklen_t sl = sizeof(sa);

    memset(o, 0, sizeof(*o));
    snprintf(o->reply, sizeof(o->reply),
             "HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
             "Connection: close\r\n\r\n%s",
             status, strlen(body), body);
    o->lfd = socket(AF_INET, SOCK_STREAM, 0);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (o->lfd < 0 || bind(o->lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        listen(o->lfd, 1) < 0 || getsockname(o->lfd, (struct sockaddr *)&sa, &sl) < 0)
        return -1;
    o->port = ntohs(sa.sin_port);
    return pthread_create(&o->thread, NULL, one_shot_main, o) == 0 ? 0 : -1;
}

static void one_shot_stop(struct one_shot *o)
{
    pthread_join(o->thread, NULL);
    close(o->lfd);
}

static void test_calls(void)
{
    char *token = write_temp("  tok-1\n");
    struct arena *a = arena_new();
    struct one_shot o;
    struct vault *v = NULL;
    struct berth_err err;
    char url[64], *plain = NULL;

    CHECK(token != NULL && a != NULL);
    if (token == NULL || a == NULL ||
        one_shot_start(&o, "200 OK", "{\"plaintext\":\"hunter2\"}") < 0) {
        CHECK(!"setup");
        free(token);
        arena_free(a);
        return;
    }
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/base/", o.port);
    berth_err_clear(&err);
    CHECK(vault_new(&(struct vault_config){url, token, "", "", "", 5000}, &v, &err) == 0);
    CHECK_MSG(v != NULL &&
                  vault_decrypt(v, "env_1", "ct\"1", berth_now_ms() + 5000, a, &plain, &err) == 0,
              "%s", err.msg);
    one_shot_stop(&o);
    CHECK(plain != NULL && strcmp(plain, "hunter2") == 0);
    /* The request as the vault sees it. */
    CHECK(strstr(o.request, "POST /base/vault.v1.VaultService/Decrypt HTTP/1.1\r\n") == o.request);
    CHECK(strstr(o.request, "\r\nContent-Type: application/json\r\n") != NULL);
    CHECK(strstr(o.request, "\r\nConnect-Protocol-Version: 1\r\n") != NULL);
    CHECK(strstr(o.request, "\r\nConnect-Timeout-Ms: ") != NULL);
    CHECK(strstr(o.request, "\r\nAuthorization: Bearer tok-1\r\n") != NULL);
    CHECK_MSG(strstr(o.request, "\r\n\r\n{\"keyring\":\"env_1\",\"encrypted\":\"ct\\\"1\"}") !=
                  NULL,
              "%s", o.request);

    /* A new token after a reload; the vault's refusal. */
    if (v != NULL) {
        FILE *f = fopen(token, "w");
        CHECK(f != NULL);
        if (f != NULL) {
            fputs("tok-2", f);
            fclose(f);
        }
        CHECK(vault_reload(v, &err) == 0);
        CHECK(one_shot_start(&o, "403 Forbidden",
                             "{\"code\":\"permission_denied\",\"message\":\"not yours\"}") == 0);
        snprintf(url, sizeof(url), "http://127.0.0.1:%d", o.port);
        vault_free(v);
        v = NULL;
        CHECK(vault_new(&(struct vault_config){url, token, NULL, NULL, NULL, 0}, &v, &err) == 0);
        plain = NULL;
        CHECK(v != NULL && vault_decrypt(v, "env_1", "x", BERTH_NO_DEADLINE, a, &plain, &err) < 0);
        one_shot_stop(&o);
        CHECK_MSG(err.code == BERTH_FAILED_PRECONDITION && strstr(err.msg, "not yours") != NULL,
                  "%s", err.msg);
        CHECK(plain == NULL);
        CHECK(strstr(o.request, "POST /vault.v1.VaultService/Decrypt ") == o.request);
        CHECK(strstr(o.request, "\r\nAuthorization: Bearer tok-2\r\n") != NULL);
    }
    vault_free(v);
    unlink(token);
    free(token);
    arena_free(a);
}

static void test_token_file(void)
{
    static const struct {
        const char *desc;
        const char *text; /* NULL: no such file */
        const char *needle;
    } bad[] = {
        {"missing", NULL, "vault-token-file"},
        {"empty", "", "holds no token"},
        {"blank", " \n\t\n", "holds no token"},
        {"a line break inside", "abc\ndef", "printable ASCII"},
        {"a byte past ASCII", "ab\xc3\xa9", "printable ASCII"},
    };
    struct vault *v = NULL;
    struct berth_err err;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *path = bad[i].text ? write_temp(bad[i].text) : strdup("/nonexistent/token");
        struct vault_config cfg = {"http://127.0.0.1:1", path, NULL, NULL, NULL, 1000};

        berth_err_clear(&err);
        v = NULL;
        CHECK_MSG(path != NULL && vault_new(&cfg, &v, &err) < 0 && v == NULL, "%s", bad[i].desc);
        CHECK_MSG(err.code == BERTH_INVALID_ARGUMENT && strstr(err.msg, bad[i].needle) != NULL,
                  "%s: %s", bad[i].desc, err.msg);
        /* Never the file's content. */
        CHECK(bad[i].text == NULL || bad[i].text[0] == '\0' || strstr(err.msg, "def") == NULL);
        if (bad[i].text)
            unlink(path);
        free(path);
    }
    /* A reload that fails keeps the client usable; no token file: 0. */
    {
        char *path = write_temp("good\n");
        struct vault_config cfg = {"http://127.0.0.1:1", path, NULL, NULL, NULL, 1000};

        CHECK(path != NULL && vault_new(&cfg, &v, &err) == 0);
        if (path != NULL && v != NULL) {
            FILE *f = fopen(path, "w");
            if (f != NULL)
                fclose(f);
            berth_err_clear(&err);
            CHECK(vault_reload(v, &err) < 0 && strstr(err.msg, "holds no token") != NULL);
        }
        vault_free(v);
        if (path)
            unlink(path);
        free(path);
        cfg.token_file = "";
        v = NULL;
        CHECK(vault_new(&cfg, &v, &err) == 0 && vault_reload(v, &err) == 0);
        vault_free(v);
    }
}

static void test_unreachable(void)
{
    struct vault_config cfg = {"http://127.0.0.1:1", NULL, NULL, NULL, NULL, 2000};
    struct arena *a = arena_new();
    struct vault *v = NULL;
    struct berth_err err;
    char *plain = NULL;

    berth_err_clear(&err);
    CHECK(a != NULL && vault_new(&cfg, &v, &err) == 0);
    if (v != NULL && a != NULL) {
        CHECK(vault_decrypt(v, "k", "c", berth_now_ms() + 2000, a, &plain, &err) < 0);
        CHECK_MSG(err.code == BERTH_UNAVAILABLE && strstr(err.msg, "cannot be reached") != NULL,
                  "%s", err.msg);
        berth_err_clear(&err);
        CHECK(vault_decrypt(v, "k", "c", berth_now_ms() - 1, a, &plain, &err) < 0);
        CHECK_MSG(err.code == BERTH_DEADLINE_EXCEEDED, "%s", err.msg);
        CHECK(plain == NULL);
    }
    vault_free(v);
    arena_free(a);
}

int main(void)
{
    test_read_answer();
    test_token_file();
    test_calls();
    test_unreachable();
    return test_summary("test_vault_client");
}
