/* Unit tests for src/backend/docker/registry_auth.c: image references as the
 * Engine parses them, Docker client config files, credential helpers (real
 * scripts on PATH, with a deadline), and the X-Registry-Auth value. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/docker/registry_auth.h"
#include "berth/base64.h"
#include "berth/clock.h"
#include "testlib.h"

static char dir[] = "/tmp/berth-auth-test-XXXXXX";

static void test_refs(void)
{
    static const struct {
        const char *description;
        const char *in;
        int ok;
        const char *host, *path, *tag, *digest;
        int latest;
    } rows[] = {
        {"a bare name", "nginx", 1, "docker.io", "library/nginx", "latest", "", 1},
        {"a tag", "nginx:1.27", 1, "docker.io", "library/nginx", "1.27", "", 0},
        {"an explicit latest", "nginx:latest", 1, "docker.io", "library/nginx", "latest", "", 1},
        {"an org path", "team/app:v1", 1, "docker.io", "team/app", "v1", "", 0},
        {"a host with a port", "127.0.0.1:5000/team/app:v1", 1, "127.0.0.1:5000", "team/app", "v1",
         "", 0},
        {"localhost", "localhost/app", 1, "localhost", "app", "latest", "", 1},
        {"a dotted host", "ghcr.io/o/r/app", 1, "ghcr.io", "o/r/app", "latest", "", 1},
        {"a digest", "app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
         1, "docker.io", "library/app", "",
         "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", 0},
        {"separators", "team/a.b_c__d--e", 1, "docker.io", "team/a.b_c__d--e", "latest", "", 1},
        {"a dotted first part is a host", "a.b_c/f", 0, NULL, NULL, NULL, NULL, 0},
        {"empty", "", 0, NULL, NULL, NULL, NULL, 0},
        {"upper case path", "Team/App", 0, NULL, NULL, NULL, NULL, 0},
        {"a space", "nginx 1", 0, NULL, NULL, NULL, NULL, 0},
        {"an empty tag", "nginx:", 0, NULL, NULL, NULL, NULL, 0},
        {"a bad tag", "nginx:-x", 0, NULL, NULL, NULL, NULL, 0},
        {"a short digest", "nginx@sha256:abc", 0, NULL, NULL, NULL, NULL, 0},
        {"a trailing separator", "nginx-", 0, NULL, NULL, NULL, NULL, 0},
        {"a double slash", "team//app", 0, NULL, NULL, NULL, NULL, 0},
        {"a port out of range", "h:99999/app", 0, NULL, NULL, NULL, NULL, 0},
        {"a host ending in a dash", "h-.io/app", 0, NULL, NULL, NULL, NULL, 0},
        {"a newline", "nginx\n", 0, NULL, NULL, NULL, NULL, 0},
    };
    struct image_ref r;
    struct berth_err err;
    char longref[1100];

    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        int rc;
        berth_err_clear(&err);
        rc = image_ref_parse(rows[i].in, "config.container.image", &r, &err);
        CHECK_MSG((rc == 0) == rows[i].ok, "%s: %s", rows[i].description, err.msg);
        if (rc != 0) {
            CHECK_MSG(err.code == BERTH_INVALID_ARGUMENT &&
                          strstr(err.msg, "config.container.image") != NULL,
                      "%s: %s", rows[i].description, err.msg);
            continue;
        }
        CHECK_MSG(strcmp(r.host, rows[i].host) == 0, "%s: host %s", rows[i].description, r.host);
        CHECK_MSG(strcmp(r.path, rows[i].path) == 0, "%s: path %s", rows[i].description, r.path);
        CHECK_MSG(strcmp(r.tag, rows[i].tag) == 0, "%s: tag %s", rows[i].description, r.tag);
        CHECK_MSG(strcmp(r.digest, rows[i].digest) == 0, "%s: digest", rows[i].description);
        CHECK_MSG(image_ref_is_latest(&r) == rows[i].latest, "%s: latest", rows[i].description);
    }
    memset(longref, 'a', sizeof(longref) - 1);
    longref[sizeof(longref) - 1] = '\0';
    berth_err_clear(&err);
    CHECK(image_ref_parse(longref, "image", &r, &err) < 0 && strstr(err.msg, "longer") != NULL);
}

static char *write_file(const char *name, const char *text, int mode)
{
    static char path[256][4];
    static int k;
    char *p = path[k++ % 4];
    FILE *f;

    snprintf(p, 256, "%s/%s", dir, name);
    f = fopen(p, "w");
    if (f == NULL)
        return p;
    fputs(text, f);
    fclose(f);
    chmod(p, (mode_t)mode);
    return p;
}

/* The JSON an X-Registry-Auth value carries. */
static cJSON *decode_header(const char *h)
{
    struct buf b;
    cJSON *root = NULL;

    buf_init(&b, 1 << 16);
    if (h != NULL && strpbrk(h, "+/") == NULL && base64_decode(h, strlen(h), &b, NULL) == 0)
        root = cJSON_ParseWithLength(b.data, b.len);
    buf_release(&b);
    return root;
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void test_config_file(void)
{
    struct registry_auth *ra = NULL;
    struct berth_err err;
    char *h = NULL;
    cJSON *j;
    const char *path;

    /* user:pass = "alice:pa:ss" (a colon in the password) */
    path = write_file("config.json",
                      "{\"auths\": {"
                      "\"https://index.docker.io/v1/\": {\"auth\": \"YWxpY2U6cGE6c3M=\"},"
                      "\"http://127.0.0.1:5000/v2/\": {\"username\": \"bob\", \"password\": "
                      "\"pw?>/\"},"
                      "\"ghcr.io\": {\"identitytoken\": \"tok-1\"},"
                      "\"placeholder.io\": {}"
                      "}}",
                      0600);
    berth_err_clear(&err);
    CHECK(registry_auth_load(path, 0, &ra, &err) == 0);
    CHECK(registry_auth_count(ra) == 3);

    CHECK(registry_auth_header(ra, "docker.io", BERTH_NO_DEADLINE, &h, &err) == 0 && h != NULL);
    j = decode_header(h);
    CHECK_STR(jstr(j, "username"), "alice");
    CHECK_STR(jstr(j, "password"), "pa:ss");
    CHECK_STR(jstr(j, "serveraddress"), "docker.io");
    cJSON_Delete(j);
    free(h);

    CHECK(registry_auth_header(ra, "127.0.0.1:5000", BERTH_NO_DEADLINE, &h, &err) == 0);
    j = decode_header(h); /* base64url: no '+' or '/' even for "pw?>/" */
    CHECK_STR(jstr(j, "username"), "bob");
    CHECK_STR(jstr(j, "password"), "pw?>/");
    cJSON_Delete(j);
    free(h);

    CHECK(registry_auth_header(ra, "GHCR.io", BERTH_NO_DEADLINE, &h, &err) == 0);
    j = decode_header(h);
    CHECK_STR(jstr(j, "identitytoken"), "tok-1");
    CHECK(jstr(j, "password") == NULL);
    cJSON_Delete(j);
    free(h);

    /* Nothing for a host: anonymous. */
    h = (char *)"x";
    CHECK(registry_auth_header(ra, "quay.io", BERTH_NO_DEADLINE, &h, &err) == 0 && h == NULL);
    CHECK(registry_auth_header(ra, "placeholder.io", BERTH_NO_DEADLINE, &h, &err) == 0 &&
          h == NULL);
    registry_auth_free(ra);

    /* Missing: empty when optional, an error otherwise. */
    ra = NULL;
    CHECK(registry_auth_load("/nonexistent/config.json", 1, &ra, &err) == 0 && ra != NULL);
    registry_auth_free(ra);
    ra = NULL;
    berth_err_clear(&err);
    CHECK(registry_auth_load("/nonexistent/config.json", 0, &ra, &err) < 0 && ra == NULL);
    CHECK(err.code == BERTH_INVALID_ARGUMENT && strstr(err.msg, "/nonexistent") != NULL);

    /* Malformed: the error names the file, never its contents. */
    path = write_file("bad.json", "{\"auths\": {\"h.io\": {\"auth\": \"c2VjcmV0LW5vLWNvbG9u\"}}}",
                      0600);
    berth_err_clear(&err);
    CHECK(registry_auth_load(path, 0, &ra, &err) < 0);
    CHECK(strstr(err.msg, "h.io") != NULL && strstr(err.msg, "c2Vj") == NULL &&
          strstr(err.msg, "secret") == NULL);
    path = write_file("notjson.json", "secret-token", 0600);
    berth_err_clear(&err);
    CHECK(registry_auth_load(path, 0, &ra, &err) < 0 && strstr(err.msg, "secret") == NULL);
}

static void test_helpers(void)
{
    struct registry_auth *ra = NULL;
    struct berth_err err;
    char *h = NULL, *path_env = NULL;
    const char *old = getenv("PATH"), *cfg;
    cJSON *j;
    int64_t start;

    /* Helpers: one that answers a password, one a token, one that hangs,
     * a store that has nothing. */
    write_file("docker-credential-good",
               "#!/bin/sh\nread host\n[ \"$1\" = get ] || exit 3\n"
               "printf '{\"ServerURL\":\"%s\",\"Username\":\"carol\",\"Secret\":\"c-pass\"}' "
               "\"$host\"\n",
               0755);
    write_file("docker-credential-tok",
               "#!/bin/sh\nread host\nprintf '{\"Username\":\"<token>\",\"Secret\":\"id-tok\"}'\n",
               0755);
    write_file("docker-credential-slow", "#!/bin/sh\nexec sleep 30\n", 0755);
    write_file("docker-credential-empty",
               "#!/bin/sh\necho 'credentials not found in native keychain'\nexit 1\n", 0755);
    write_file("docker-credential-broken", "#!/bin/sh\necho oops >&2\nexit 2\n", 0755);
    if (asprintf(&path_env, "%s:%s", dir, old ? old : "/usr/bin:/bin") < 0)
        return;
    setenv("PATH", path_env, 1);

    cfg = write_file("helpers.json",
                     "{\"auths\": {\"inline.io\": {\"auth\": \"dTpw\"}},"
                     "\"credHelpers\": {\"good.io\": \"good\", \"tok.io\": \"tok\", "
                     "\"slow.io\": \"slow\", \"broken.io\": \"broken\", \"missing.io\": \"nope\"},"
                     "\"credsStore\": \"empty\"}",
                     0600);
    berth_err_clear(&err);
    CHECK(registry_auth_load(cfg, 0, &ra, &err) == 0);

    CHECK(registry_auth_header(ra, "good.io", berth_now_ms() + 5000, &h, &err) == 0);
    j = decode_header(h);
    CHECK_STR(jstr(j, "username"), "carol");
    CHECK_STR(jstr(j, "password"), "c-pass");
    CHECK_STR(jstr(j, "serveraddress"), "good.io");
    cJSON_Delete(j);
    free(h);

    CHECK(registry_auth_header(ra, "tok.io", berth_now_ms() + 5000, &h, &err) == 0);
    j = decode_header(h);
    CHECK_STR(jstr(j, "identitytoken"), "id-tok");
    cJSON_Delete(j);
    free(h);

    /* An inline credential wins over the store. */
    CHECK(registry_auth_header(ra, "inline.io", berth_now_ms() + 5000, &h, &err) == 0);
    j = decode_header(h);
    CHECK_STR(jstr(j, "username"), "u");
    cJSON_Delete(j);
    free(h);

    /* The store has nothing: anonymous, not an error. */
    h = (char *)"x";
    CHECK(registry_auth_header(ra, "other.io", berth_now_ms() + 5000, &h, &err) == 0 && h == NULL);

    /* A helper that hangs is killed at the deadline. */
    start = berth_now_ms();
    berth_err_clear(&err);
    CHECK(registry_auth_header(ra, "slow.io", berth_now_ms() + 300, &h, &err) < 0);
    CHECK(berth_now_ms() - start < 5000);
    CHECK(err.code == BERTH_UNAVAILABLE && strstr(err.msg, "in time") != NULL);

    berth_err_clear(&err);
    CHECK(registry_auth_header(ra, "broken.io", berth_now_ms() + 5000, &h, &err) < 0);
    CHECK(err.code == BERTH_UNAVAILABLE && strstr(err.msg, "failed") != NULL);
    berth_err_clear(&err);
    CHECK(registry_auth_header(ra, "missing.io", berth_now_ms() + 5000, &h, &err) < 0);
    CHECK(err.code == BERTH_UNAVAILABLE && strstr(err.msg, "not found on PATH") != NULL);
    registry_auth_free(ra);

    setenv("PATH", old ? old : "/usr/bin:/bin", 1);
    free(path_env);
}

int main(void)
{
    char cmd[300];

    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    test_refs();
    test_config_file();
    test_helpers();
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return test_summary("test_registry_auth");
}
