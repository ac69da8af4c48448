/* Naming the caller: token file lines (rows with a description each), the
 * bearer match, certificate identities against --tls-allowed-ids, unix
 * peers, and a reload that fails keeping the tokens in use. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "berth/auth.h"
#include "testlib.h"

static char *write_temp(const char *text);
static void rewrite(const char *path, const char *text);
static void test_token_files(void);
static void test_identify_tokens(void);
static void test_identify_certs(void);
static void test_unix_peer_and_open(void);
static void test_reload(void);
static void test_reload_file(void);

static char *write_temp(const char *text)
{
    char *path = strdup("/tmp/berth-test-auth-XXXXXX");
    int fd;

    if (path == NULL)
        return NULL;
    fd = mkstemp(path);
    if (fd < 0) {
        free(path);
        return NULL;
    }
    close(fd);
    rewrite(path, text);
    return path;
}

static void rewrite(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    CHECK(f != NULL);
    if (f == NULL)
        return;
    fputs(text, f);
    fclose(f);
}

static void test_token_files(void)
{
    static const struct {
        const char *what;
        const char *text;
        int ok;
        size_t n;
        const char *needle;
    } rows[] = {
        {"one bare token", "abc\n", 1, 1, NULL},
        {"no final newline", "abc", 1, 1, NULL},
        {"comments and blank lines", "# head\n\n  \nabc\n# tail\n", 1, 1, NULL},
        {"named and bare", "ci:abc\ndef\r\n", 2, 2, NULL},
        {"only comments", "# nothing\n\n", 0, 0, "no tokens"},
        {"empty file", "", 0, 0, "no tokens"},
        {"space inside a token", "abc def\n", 0, 0, "line 1"},
        {"empty name", ":abc\n", 0, 0, "line 1"},
        {"bad name", "ok\nna me:abc\n", 0, 0, "line 2"},
        {"empty token after a name", "ci:\n", 0, 0, "line 1"},
        {"control byte",
         "ab\x01"
         "c\n",
         0, 0, "line 1"},
    };

    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        char *path = write_temp(rows[i].text);
        struct berth_err err;
        size_t n = 0;
        int rc;

        berth_err_clear(&err);
        if (path == NULL) {
            CHECK(path != NULL);
            continue;
        }
        rc = auth_tokens_check(path, &n, &err);
        CHECK_MSG((rc == 0) == (rows[i].ok != 0), "%s: rc %d (%s)", rows[i].what, rc, err.msg);
        if (rc == 0)
            CHECK_MSG(n == rows[i].n, "%s: %zu tokens", rows[i].what, n);
        if (rows[i].needle != NULL)
            CHECK_MSG(strstr(err.msg, rows[i].needle) != NULL, "%s: '%s'", rows[i].what, err.msg);
        /* The error never shows the file's text. */
        if (rc < 0)
            CHECK_MSG(strstr(err.msg, "abc") == NULL, "%s: '%s'", rows[i].what, err.msg);
        unlink(path);
        free(path);
    }
    {
        struct berth_err err;
        size_t n;
        berth_err_clear(&err);
        CHECK(auth_tokens_check("/nonexistent/berth-tokens", &n, &err) < 0);
        CHECK(err.code == BERTH_INVALID_ARGUMENT);
    }
}

static void test_identify_tokens(void)
{
    char *path = write_temp("# callers\nsecret-one\nci:secret-two\n");
    struct auth_config cfg = {path, "", 0};
    struct auth *a = NULL;
    struct berth_err err;
    struct arena *arena = arena_new();
    static const struct {
        const char *what;
        const char *authz;
        const char *name; /* NULL: refused */
    } rows[] = {
        {"bare token", "Bearer secret-one", "token:line-2"},
        {"named token", "Bearer secret-two", "token:ci"},
        {"scheme in another case", "bearer secret-two", "token:ci"},
        {"trailing space", "Bearer secret-two  ", "token:ci"},
        {"prefix of a token", "Bearer secret-tw", NULL},
        {"token and more", "Bearer secret-twoo", NULL},
        {"another scheme", "Basic secret-two", NULL},
        {"no token", "Bearer ", NULL},
        {"no header", NULL, NULL},
    };

    berth_err_clear(&err);
    CHECK(path != NULL && arena != NULL);
    CHECK(auth_new(&cfg, &a, &err) == 0);
    CHECK(auth_required(a));
    for (size_t i = 0; a != NULL && i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct auth_peer peer = {.authorization = rows[i].authz};
        const char *name = NULL;
        int rc;

        berth_err_clear(&err);
        rc = auth_identify(a, &peer, arena, &name, &err);
        if (rows[i].name != NULL) {
            CHECK_MSG(rc == 0, "%s: %s", rows[i].what, err.msg);
            CHECK_STR(name, rows[i].name);
        } else {
            CHECK_MSG(rc < 0 && err.code == BERTH_UNAUTHENTICATED, "%s", rows[i].what);
        }
    }
    auth_free(a);
    arena_free(arena);
    if (path != NULL)
        unlink(path);
    free(path);
}

static void test_identify_certs(void)
{
    struct auth_config cfg = {NULL, "spiffe://berth.test/ci; CN=ops,O=berth", 1};
    struct auth *a = NULL;
    struct berth_err err;
    struct arena *arena = arena_new();
    static const struct {
        const char *what;
        int verified;
        const char *subject, *spiffe;
        enum berth_code code; /* BERTH_OK: allowed */
        const char *name;
    } rows[] = {
        {"allowed spiffe id", 1, "CN=ci", "spiffe://berth.test/ci", BERTH_OK,
         "spiffe://berth.test/ci"},
        {"allowed subject", 1, "CN=ops,O=berth", NULL, BERTH_OK, "CN=ops,O=berth"},
        {"verified, not allowed", 1, "CN=other", "spiffe://berth.test/other",
         BERTH_PERMISSION_DENIED, NULL},
        {"not verified", 0, "CN=ops,O=berth", NULL, BERTH_UNAUTHENTICATED, NULL},
        {"no certificate", 0, NULL, NULL, BERTH_UNAUTHENTICATED, NULL},
    };

    berth_err_clear(&err);
    CHECK(auth_new(&cfg, &a, &err) == 0);
    CHECK(auth_required(a));
    for (size_t i = 0; a != NULL && i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct auth_peer peer = {.tls_verified = rows[i].verified,
                                 .tls_subject = rows[i].subject,
                                 .tls_spiffe = rows[i].spiffe};
        const char *name = NULL;
        int rc;

        berth_err_clear(&err);
        rc = auth_identify(a, &peer, arena, &name, &err);
        if (rows[i].code == BERTH_OK) {
            CHECK_MSG(rc == 0, "%s: %s", rows[i].what, err.msg);
            CHECK_STR(name, rows[i].name);
        } else {
            CHECK_MSG(rc < 0 && err.code == rows[i].code, "%s: code %d", rows[i].what, err.code);
        }
    }
    auth_free(a);
    arena_free(arena);
}

static void test_unix_peer_and_open(void)
{
    struct auth_config cfg = {NULL, "", 0};
    struct auth *a = NULL;
    struct berth_err err;
    struct arena *arena = arena_new();
    struct auth_peer unix_peer = {.unix_peer = 1, .uid = 1000, .pid = 42};
    struct auth_peer tcp_peer = {.authorization = "Bearer whatever"};
    const char *name = NULL;

    berth_err_clear(&err);
    CHECK(auth_new(&cfg, &a, &err) == 0);
    CHECK(!auth_required(a));
    CHECK(auth_identify(a, &unix_peer, arena, &name, &err) == 0);
    CHECK_STR(name, "unix:uid=1000,pid=42");
    CHECK(auth_identify(a, &tcp_peer, arena, &name, &err) == 0);
    CHECK_STR(name, "anonymous");
    /* No auth object at all: everyone is anonymous. */
    CHECK(auth_identify(NULL, &tcp_peer, arena, &name, &err) == 0);
    CHECK_STR(name, "anonymous");
    auth_free(a);
    auth_free(NULL);
    arena_free(arena);
}

static void test_reload(void)
{
    char *path = write_temp("old-token\n");
    struct auth_config cfg = {path, "", 0};
    struct auth *a = NULL;
    struct berth_err err;
    struct arena *arena = arena_new();
    struct auth_peer old_peer = {.authorization = "Bearer old-token"};
    struct auth_peer new_peer = {.authorization = "Bearer new-token"};
    const char *name;

    berth_err_clear(&err);
    CHECK(path != NULL && auth_new(&cfg, &a, &err) == 0);
    if (a == NULL)
        goto out;
    rewrite(path, "rotated:new-token\n");
    CHECK(auth_reload(a, &err) == 0);
    CHECK(auth_identify(a, &new_peer, arena, &name, &err) == 0);
    CHECK_STR(name, "token:rotated");
    berth_err_clear(&err);
    CHECK(auth_identify(a, &old_peer, arena, &name, &err) < 0);
    /* A broken file at reload: an error, and the set in use stays. */
    rewrite(path, "# nothing\n");
    berth_err_clear(&err);
    CHECK(auth_reload(a, &err) < 0);
    CHECK(strstr(err.msg, "no tokens") != NULL);
    berth_err_clear(&err);
    CHECK(auth_identify(a, &new_peer, arena, &name, &err) == 0);
    unlink(path);
    berth_err_clear(&err);
    CHECK(auth_reload(a, &err) < 0);
    CHECK(auth_identify(a, &new_peer, arena, &name, &err) == 0);
out:
    auth_free(a);
    arena_free(arena);
    free(path);
}

/* Another token file at reload (a config change): it becomes the file of
 * later reloads once it loads; a broken one keeps file and set; tokens are
 * not turned on or off at run time. */
static void test_reload_file(void)
{
    char *one = write_temp("first-token\n");
    char *two = write_temp("second:second-token\nthird:third-token\n");
    struct auth_config cfg = {one, "", 0};
    struct auth_config open_cfg = {"", "", 0};
    struct auth *a = NULL, *open_auth = NULL;
    struct berth_err err;
    struct arena *arena = arena_new();
    struct auth_peer first = {.authorization = "Bearer first-token"};
    struct auth_peer second = {.authorization = "Bearer second-token"};
    const char *name;

    berth_err_clear(&err);
    CHECK(one != NULL && two != NULL && auth_new(&cfg, &a, &err) == 0);
    if (a == NULL)
        goto out;
    CHECK(auth_token_count(a) == 1);
    CHECK(auth_reload_file(a, two, &err) == 0);
    CHECK(auth_token_count(a) == 2);
    CHECK(auth_identify(a, &second, arena, &name, &err) == 0);
    CHECK_STR(name, "token:second");
    berth_err_clear(&err);
    CHECK(auth_identify(a, &first, arena, &name, &err) < 0);
    /* Later plain reloads read the new file, not the first one. */
    rewrite(one, "# broken now\n");
    rewrite(two, "second:second-token\n");
    berth_err_clear(&err);
    CHECK_MSG(auth_reload(a, &err) == 0, "%s", err.msg);
    CHECK(auth_token_count(a) == 1);
    /* A file that does not load: the file and the set in use stay. */
    berth_err_clear(&err);
    CHECK(auth_reload_file(a, "/nonexistent/tokens", &err) < 0);
    CHECK(auth_token_count(a) == 1);
    CHECK(auth_reload(a, &err) == 0 && auth_token_count(a) == 1);
    /* Off is a restart. */
    berth_err_clear(&err);
    CHECK(auth_reload_file(a, "", &err) < 0 && err.code == BERTH_FAILED_PRECONDITION);
    CHECK(auth_required(a));
    /* So is on. */
    berth_err_clear(&err);
    CHECK(auth_new(&open_cfg, &open_auth, &err) == 0);
    CHECK(auth_reload_file(open_auth, two, &err) < 0 && err.code == BERTH_FAILED_PRECONDITION);
    CHECK(!auth_required(open_auth));
    berth_err_clear(&err);
    CHECK(auth_reload_file(open_auth, NULL, &err) == 0);
out:
    auth_free(a);
    auth_free(open_auth);
    arena_free(arena);
    if (one != NULL)
        unlink(one);
    if (two != NULL)
        unlink(two);
    free(one);
    free(two);
}

int main(void)
{
    test_token_files();
    test_identify_tokens();
    test_identify_certs();
    test_unix_peer_and_open();
    test_reload();
    test_reload_file();
    return test_summary("test_auth");
}
