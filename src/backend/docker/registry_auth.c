/* Image references and registry credentials (see registry_auth.h). The
 * reference grammar is the Engine's: lower-case path components joined by
 * '.', '_', '__' or dashes; a first component with '.' or ':' (or
 * "localhost") is the registry host. */
#include "registry_auth.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#include "berth/base64.h"
#include "berth/buf.h"
#include "berth/clock.h"

#define REF_NAME_MAX 255
#define REF_TAG_MAX 128
#define AUTH_FILE_MAX ((size_t)1 << 20)
#define HELPER_OUTPUT_MAX ((size_t)64 << 10)
#define HELPER_NAME_MAX 64

struct auth_entry {
    char *host; /* normalised: "docker.io", "127.0.0.1:5000" */
    char *username;
    char *password;
    char *identity_token;
};

struct helper_entry {
    char *host;
    char *name; /* docker-credential-<name> */
};

struct registry_auth {
    struct auth_entry *auths;
    size_t n_auths;
    struct helper_entry *helpers;
    size_t n_helpers;
    char *store; /* credsStore, or NULL */
};

static int ref_path_component_ok(const char *s, size_t n);
static int ref_domain_ok(const char *s, size_t n);
static int ref_tag_ok(const char *s);
static int ref_digest_ok(const char *s);
static const char *ref_rebase(const struct image_ref *from, struct image_ref *to, const char *p);
static void auth_normalise_host(const char *in, char *out, size_t n);
static int auth_take_entry(struct registry_auth *ra, const char *key, const cJSON *v);
static int auth_encode(const char *user, const char *pass, const char *token, const char *host,
                       char **out, struct berth_err *err);
static int auth_run_helper(const char *name, const char *host, int64_t deadline, struct buf *out,
                           struct berth_err *err);
static int auth_from_helper(const char *name, const char *host, int64_t deadline, char **out,
                            struct berth_err *err);
static void auth_wipe_free(char *s);

/* alpha-numeric ([a-z0-9]+) runs joined by one separator: '.', '_', "__"
 * or any number of '-'. */
static int ref_path_component_ok(const char *s, size_t n)
{
    size_t i = 0;

    if (n == 0)
        return 0;
    while (i < n) {
        size_t run = 0;
        while (i < n && (islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]))) {
            i++;
            run++;
        }
        if (run == 0)
            return 0;
        if (i == n)
            return 1;
        if (s[i] == '.' || (s[i] == '_' && (i + 1 >= n || s[i + 1] != '_'))) {
            i++;
        } else if (s[i] == '_' && s[i + 1] == '_') {
            i += 2;
        } else if (s[i] == '-') {
            while (i < n && s[i] == '-')
                i++;
        } else {
            return 0;
        }
        if (i == n)
            return 0; /* a separator must be followed by alpha-numerics */
    }
    return 1;
}

/* host components ([A-Za-z0-9] or [A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])
 * joined by '.', then an optional :port. */
static int ref_domain_ok(const char *s, size_t n)
{
    size_t i = 0, host_end = n;
    const char *colon = memchr(s, ':', n);

    if (colon != NULL) {
        size_t p = (size_t)(colon - s) + 1;
        long port = 0;
        host_end = (size_t)(colon - s);
        if (p == n || n - p > 5)
            return 0;
        for (; p < n; p++) {
            if (!isdigit((unsigned char)s[p]))
                return 0;
            port = port * 10 + (s[p] - '0');
        }
        if (port < 1 || port > 65535)
            return 0;
    }
    if (host_end == 0)
        return 0;
    while (i < host_end) {
        size_t start = i;
        while (i < host_end && (isalnum((unsigned char)s[i]) || s[i] == '-'))
            i++;
        if (i == start || s[start] == '-' || s[i - 1] == '-')
            return 0;
        if (i < host_end) {
            if (s[i] != '.' || i + 1 == host_end)
                return 0;
            i++;
        }
    }
    return 1;
}

static int ref_tag_ok(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > REF_TAG_MAX || !(isalnum((unsigned char)s[0]) || s[0] == '_'))
        return 0;
    for (size_t i = 1; i < n; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == '.' || s[i] == '-'))
            return 0;
    return 1;
}

static int ref_digest_ok(const char *s)
{
    const char *colon = strchr(s, ':');
    size_t hex = 0;

    if (colon == NULL || colon == s || !isalpha((unsigned char)s[0]))
        return 0;
    for (const char *p = s; p < colon; p++)
        if (!(isalnum((unsigned char)*p) || *p == '-' || *p == '_' || *p == '+' || *p == '.'))
            return 0;
    for (const char *p = colon + 1; *p != '\0'; p++, hex++)
        if (!isxdigit((unsigned char)*p))
            return 0;
    return hex >= 32;
}

static const char *ref_rebase(const struct image_ref *from, struct image_ref *to, const char *p)
{
    if (p >= from->storage && p < from->storage + sizeof(from->storage))
        return to->storage + (p - from->storage);
    return p;
}

int image_ref_parse(const char *text, const char *field, struct image_ref *out,
                    struct berth_err *err)
{
    struct image_ref r;
    char *name, *at, *slash, *colon, *first_end, *host, *path;
    size_t n = text != NULL ? strlen(text) : 0, name_len;
    char quoted[80];

    berth_err_quote(quoted, sizeof(quoted), text ? text : "", 64);
    if (n == 0)
        return berth_err_set(err, BERTH_INVALID_ARGUMENT, "field '%s': an image is required",
                             field);
    if (n > IMAGE_REF_MAX)
        return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                             "field '%s': image reference longer than %d bytes", field,
                             IMAGE_REF_MAX);
    memset(&r, 0, sizeof(r));
    memcpy(r.storage, text, n + 1);
    name = r.storage;
    for (size_t i = 0; i < n; i++)
        if (isspace((unsigned char)name[i]) || iscntrl((unsigned char)name[i]))
            goto bad;
    r.digest = "";
    at = strchr(name, '@');
    if (at != NULL) {
        *at = '\0';
        r.digest = at + 1;
        if (!ref_digest_ok(r.digest))
            return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                                 "field '%s': image '%s' has a malformed digest", field, quoted);
    }
    slash = strrchr(name, '/');
    colon = strrchr(slash != NULL ? slash : name, ':');
    r.tag = "";
    if (colon != NULL) {
        *colon = '\0';
        r.tag = colon + 1;
        if (!ref_tag_ok(r.tag))
            return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                                 "field '%s': image '%s' has a malformed tag", field, quoted);
    } else if (r.digest[0] == '\0') {
        r.tag = "latest";
    }
    name_len = strlen(name);
    if (name_len == 0 || name_len > REF_NAME_MAX)
        goto bad;
    first_end = strchr(name, '/');
    host = NULL;
    path = name;
    if (first_end != NULL) {
        size_t fl = (size_t)(first_end - name);
        int is_domain = memchr(name, '.', fl) != NULL || memchr(name, ':', fl) != NULL ||
                        (fl == 9 && strncmp(name, "localhost", 9) == 0);
        for (size_t i = 0; i < fl && !is_domain; i++)
            if (isupper((unsigned char)name[i]))
                is_domain = 1;
        if (is_domain) {
            if (!ref_domain_ok(name, fl))
                return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                                     "field '%s': image '%s' names a malformed registry host",
                                     field, quoted);
            *first_end = '\0';
            host = name;
            path = first_end + 1;
        }
    }
    for (char *p = path;;) {
        char *end = strchr(p, '/');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        if (!ref_path_component_ok(p, len))
            return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                                 "field '%s': image '%s' is not a valid reference (lower-case "
                                 "letters, digits and . _ - in its path)",
                                 field, quoted);
        if (end == NULL)
            break;
        p = end + 1;
    }
    r.host = host != NULL ? host : IMAGE_REF_DEFAULT_HOST;
    r.path = path;
    if (host == NULL && strchr(path, '/') == NULL) {
        /* docker.io/nginx is docker.io/library/nginx; the room after the
         * copied text holds the longer path. */
        size_t used = n + 1;
        int m = snprintf(r.storage + used, sizeof(r.storage) - used, "library/%s", path);
        if (m < 0 || (size_t)m >= sizeof(r.storage) - used)
            goto bad;
        r.path = r.storage + used;
    }
    *out = r;
    /* The pointers into r.storage move to out->storage; constants stay. */
    out->host = ref_rebase(&r, out, r.host);
    out->path = ref_rebase(&r, out, r.path);
    out->tag = ref_rebase(&r, out, r.tag);
    out->digest = ref_rebase(&r, out, r.digest);
    return 0;
bad:
    return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                         "field '%s': image '%s' is not a valid reference", field, quoted);
}

int image_ref_is_latest(const struct image_ref *ref)
{
    return ref->digest[0] == '\0' && strcmp(ref->tag, "latest") == 0;
}

/* "https://index.docker.io/v1/" -> "docker.io", "http://h:5000/v2/" ->
 * "h:5000", "ghcr.io" -> "ghcr.io". */
static void auth_normalise_host(const char *in, char *out, size_t n)
{
    const char *p = in;
    size_t len;

    if (strncmp(p, "https://", 8) == 0)
        p += 8;
    else if (strncmp(p, "http://", 7) == 0)
        p += 7;
    len = strcspn(p, "/");
    if (len >= n)
        len = n - 1;
    for (size_t i = 0; i < len; i++)
        out[i] = (char)tolower((unsigned char)p[i]);
    out[len] = '\0';
    if (strcmp(out, "index.docker.io") == 0 || strcmp(out, "registry-1.docker.io") == 0 ||
        strcmp(out, "registry.hub.docker.com") == 0)
        snprintf(out, n, "%s", IMAGE_REF_DEFAULT_HOST);
}

static void auth_wipe_free(char *s)
{
    if (s != NULL) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

void registry_auth_free(struct registry_auth *ra)
{
    if (ra == NULL)
        return;
    for (size_t i = 0; i < ra->n_auths; i++) {
        free(ra->auths[i].host);
        auth_wipe_free(ra->auths[i].username);
        auth_wipe_free(ra->auths[i].password);
        auth_wipe_free(ra->auths[i].identity_token);
    }
    free(ra->auths);
    for (size_t i = 0; i < ra->n_helpers; i++) {
        free(ra->helpers[i].host);
        free(ra->helpers[i].name);
    }
    free(ra->helpers);
    free(ra->store);
    free(ra);
}

size_t registry_auth_count(const struct registry_auth *ra)
{
    return ra != NULL ? ra->n_auths + ra->n_helpers + (ra->store != NULL) : 0;
}

/* One `auths` entry: {"auth": base64(user:pass)}, {"username","password"}
 * or {"identitytoken"}. Entries with none of these (placeholders a
 * credsStore leaves) are skipped. -1 only when out of memory or malformed. */
static int auth_take_entry(struct registry_auth *ra, const char *key, const cJSON *v)
{
    const cJSON *auth = cJSON_GetObjectItemCaseSensitive(v, "auth");
    const cJSON *user = cJSON_GetObjectItemCaseSensitive(v, "username");
    const cJSON *pass = cJSON_GetObjectItemCaseSensitive(v, "password");
    const cJSON *tok = cJSON_GetObjectItemCaseSensitive(v, "identitytoken");
    struct auth_entry e = {0}, *grown;
    char host[256];
    int rc = -1;

    auth_normalise_host(key, host, sizeof(host));
    if (cJSON_IsString(auth) && auth->valuestring[0] != '\0') {
        struct buf plain;
        char *colon;

        buf_init(&plain, 8192);
        if (base64_decode(auth->valuestring, strlen(auth->valuestring), &plain, NULL) < 0 ||
            plain.data == NULL || (colon = memchr(plain.data, ':', plain.len)) == NULL) {
            if (plain.data != NULL)
                explicit_bzero(plain.data, plain.len);
            buf_release(&plain);
            return -1;
        }
        *colon = '\0';
        e.username = strdup(plain.data);
        e.password = strdup(colon + 1);
        explicit_bzero(plain.data, plain.len);
        buf_release(&plain);
        if (e.username == NULL || e.password == NULL)
            goto out;
    } else if (cJSON_IsString(user) && cJSON_IsString(pass)) {
        e.username = strdup(user->valuestring);
        e.password = strdup(pass->valuestring);
        if (e.username == NULL || e.password == NULL)
            goto out;
    }
    if (cJSON_IsString(tok) && tok->valuestring[0] != '\0') {
        e.identity_token = strdup(tok->valuestring);
        if (e.identity_token == NULL)
            goto out;
    }
    if (e.username == NULL && e.identity_token == NULL)
        return 0;
    e.host = strdup(host);
    grown = realloc(ra->auths, (ra->n_auths + 1) * sizeof(*grown));
    if (e.host == NULL || grown == NULL)
        goto out;
    ra->auths = grown;
    ra->auths[ra->n_auths++] = e;
    return 0;
out:
    free(e.host);
    auth_wipe_free(e.username);
    auth_wipe_free(e.password);
    auth_wipe_free(e.identity_token);
    return rc;
}

int registry_auth_load(const char *path, int optional, struct registry_auth **out,
                       struct berth_err *err)
{
    struct registry_auth *ra = calloc(1, sizeof(*ra));
    const cJSON *auths, *helpers, *store, *v;
    cJSON *root = NULL;
    struct buf text;
    FILE *f = NULL;
    char chunk[4096];
    size_t got;
    int rc = -1;

    buf_init(&text, AUTH_FILE_MAX);
    if (ra == NULL)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    if (path == NULL || path[0] == '\0') {
        *out = ra;
        return 0;
    }
    f = fopen(path, "re");
    if (f == NULL) {
        if (errno == ENOENT && optional) {
            *out = ra;
            return 0;
        }
        berth_err_set(err, BERTH_INVALID_ARGUMENT, "registry auth file '%s': %s", path,
                      strerror(errno));
        goto out;
    }
    while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0)
        if (buf_append(&text, chunk, got, NULL) < 0) {
            berth_err_set(err, BERTH_INVALID_ARGUMENT,
                          "registry auth file '%s': larger than %zu bytes", path, AUTH_FILE_MAX);
            goto out;
        }
    root = cJSON_ParseWithLength(text.data ? text.data : "", text.len);
    if (!cJSON_IsObject(root)) {
        berth_err_set(err, BERTH_INVALID_ARGUMENT, "registry auth file '%s': not a JSON object",
                      path);
        goto out;
    }
    auths = cJSON_GetObjectItemCaseSensitive(root, "auths");
    cJSON_ArrayForEach(v, auths)
    {
        if (cJSON_IsObject(v) && v->string != NULL && auth_take_entry(ra, v->string, v) < 0) {
            berth_err_set(err, BERTH_INVALID_ARGUMENT,
                          "registry auth file '%s': the entry of '%.100s' is malformed", path,
                          v->string);
            goto out;
        }
    }
    helpers = cJSON_GetObjectItemCaseSensitive(root, "credHelpers");
    cJSON_ArrayForEach(v, helpers)
    {
        struct helper_entry *grown;
        char host[256];

        if (!cJSON_IsString(v) || v->string == NULL)
            continue;
        if (strlen(v->valuestring) == 0 || strlen(v->valuestring) > HELPER_NAME_MAX ||
            strpbrk(v->valuestring, "/ \t") != NULL) {
            berth_err_set(err, BERTH_INVALID_ARGUMENT,
                          "registry auth file '%s': credHelpers entry '%.100s' names no helper",
                          path, v->string);
            goto out;
        }
        auth_normalise_host(v->string, host, sizeof(host));
        grown = realloc(ra->helpers, (ra->n_helpers + 1) * sizeof(*grown));
        if (grown == NULL)
            goto oom;
        ra->helpers = grown;
        ra->helpers[ra->n_helpers].host = strdup(host);
        ra->helpers[ra->n_helpers].name = strdup(v->valuestring);
        ra->n_helpers++;
        if (ra->helpers[ra->n_helpers - 1].host == NULL ||
            ra->helpers[ra->n_helpers - 1].name == NULL)
            goto oom;
    }
    store = cJSON_GetObjectItemCaseSensitive(root, "credsStore");
    if (cJSON_IsString(store) && store->valuestring[0] != '\0') {
        if (strlen(store->valuestring) > HELPER_NAME_MAX ||
            strpbrk(store->valuestring, "/ \t") != NULL) {
            berth_err_set(err, BERTH_INVALID_ARGUMENT,
                          "registry auth file '%s': credsStore names no helper", path);
            goto out;
        }
        ra->store = strdup(store->valuestring);
        if (ra->store == NULL)
            goto oom;
    }
    *out = ra;
    ra = NULL;
    rc = 0;
    goto out;
oom:
    berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
out:
    if (f != NULL)
        fclose(f);
    if (text.data != NULL)
        explicit_bzero(text.data, text.len);
    buf_release(&text);
    cJSON_Delete(root);
    registry_auth_free(ra);
    return rc;
}

/* The Engine's auth config JSON, base64url: {"username","password",
 * "serveraddress"} or {"identitytoken","serveraddress"}. */
static int auth_encode(const char *user, const char *pass, const char *token, const char *host,
                       char **out, struct berth_err *err)
{
    cJSON *root = cJSON_CreateObject();
    char *json = NULL;
    struct buf b64;
    int ok, rc = -1;

    buf_init(&b64, 64 << 10);
    ok = root != NULL;
    if (ok && token != NULL)
        ok = cJSON_AddStringToObject(root, "identitytoken", token) != NULL;
    else if (ok)
        ok = cJSON_AddStringToObject(root, "username", user) != NULL &&
             cJSON_AddStringToObject(root, "password", pass) != NULL;
    ok = ok && cJSON_AddStringToObject(root, "serveraddress", host) != NULL;
    json = ok ? cJSON_PrintUnformatted(root) : NULL;
    if (json == NULL || base64_encode(json, strlen(json), &b64, err) < 0) {
        berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < b64.len; i++) {
        if (b64.data[i] == '+')
            b64.data[i] = '-';
        else if (b64.data[i] == '/')
            b64.data[i] = '_';
    }
    *out = buf_detach(&b64);
    if (*out == NULL) {
        berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    rc = 0;
out:
    if (json != NULL) {
        explicit_bzero(json, strlen(json));
        cJSON_free(json);
    }
    if (b64.data != NULL)
        explicit_bzero(b64.data, b64.len);
    buf_release(&b64);
    /* cJSON's own copies of the strings go with the tree. */
    cJSON_Delete(root);
    return rc;
}

/* Run `docker-credential-<name> get` with host on stdin; its stdout into
 * out. Killed when the deadline passes. */
static int auth_run_helper(const char *name, const char *host, int64_t deadline, struct buf *out,
                           struct berth_err *err)
{
    char prog[HELPER_NAME_MAX + 32];
    int in_pipe[2] = {-1, -1}, out_pipe[2] = {-1, -1}, status = 0, rc = -1;
    pid_t pid;
    size_t hl = strlen(host);

    snprintf(prog, sizeof(prog), "docker-credential-%s", name);
    if (pipe2(in_pipe, O_CLOEXEC) < 0 || pipe2(out_pipe, O_CLOEXEC) < 0) {
        berth_err_set(err, BERTH_UNAVAILABLE, "credential helper '%s': %s", prog, strerror(errno));
        goto out;
    }
    /* posix_spawn, not fork: berthd is threaded. What a helper says on
     * stderr stays out of berthd's log. */
    {
        char *const argv[] = {prog, "get", NULL};
        posix_spawn_file_actions_t fa;
        int sr;

        if (posix_spawn_file_actions_init(&fa) != 0) {
            berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
            goto out;
        }
        sr = posix_spawn_file_actions_adddup2(&fa, in_pipe[0], STDIN_FILENO);
        if (sr == 0)
            sr = posix_spawn_file_actions_adddup2(&fa, out_pipe[1], STDOUT_FILENO);
        if (sr == 0)
            sr = posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
        if (sr == 0)
            sr = posix_spawnp(&pid, prog, &fa, NULL, argv, environ);
        posix_spawn_file_actions_destroy(&fa);
        if (sr != 0) {
            berth_err_set(err, BERTH_UNAVAILABLE,
                          sr == ENOENT
                              ? "credential helper '%s' was not found on PATH (registry '%s')"
                              : "credential helper '%s' could not run for registry '%s'",
                          prog, host);
            goto out;
        }
    }
    close(in_pipe[0]);
    in_pipe[0] = -1;
    close(out_pipe[1]);
    out_pipe[1] = -1;
    /* The host is a few bytes: the pipe takes it whole. A helper that exits
     * without reading must not raise SIGPIPE in berthd: block it for this
     * write and take a pending one away; the helper's status says why. */
    {
        sigset_t pipe_set, old_set;
        struct timespec zero = {0, 0};
        ssize_t wrote;

        sigemptyset(&pipe_set);
        sigaddset(&pipe_set, SIGPIPE);
        pthread_sigmask(SIG_BLOCK, &pipe_set, &old_set);
        wrote = write(in_pipe[1], host, hl);
        if (wrote < 0 && errno == EPIPE)
            while (sigtimedwait(&pipe_set, NULL, &zero) == SIGPIPE)
                ;
        pthread_sigmask(SIG_SETMASK, &old_set, NULL);
    }
    close(in_pipe[1]);
    in_pipe[1] = -1;
    for (;;) {
        struct pollfd p = {out_pipe[0], POLLIN, 0};
        int64_t left = berth_deadline_left_ms(deadline);
        char chunk[4096];
        ssize_t got;
        int pr;

        if (left == 0) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            berth_err_set(err, BERTH_UNAVAILABLE,
                          "credential helper '%s' did not answer for registry '%s' in time", prog,
                          host);
            goto out;
        }
        pr = poll(&p, 1, left < 0 || left > 1000 ? 1000 : (int)left);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            continue;
        got = read(out_pipe[0], chunk, sizeof(chunk));
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        if (buf_append(out, chunk, (size_t)got, NULL) < 0) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            berth_err_set(err, BERTH_UNAVAILABLE, "credential helper '%s' said too much", prog);
            goto out;
        }
    }
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        berth_err_set(err, BERTH_UNAVAILABLE,
                      WIFEXITED(status) && WEXITSTATUS(status) == 127
                          ? "credential helper '%s' was not found on PATH (registry '%s')"
                          : "credential helper '%s' failed for registry '%s'",
                      prog, host);
        goto out;
    }
    rc = 0;
out:
    for (int i = 0; i < 2; i++) {
        if (in_pipe[i] >= 0)
            close(in_pipe[i]);
        if (out_pipe[i] >= 0)
            close(out_pipe[i]);
    }
    return rc;
}

/* A helper's {"ServerURL","Username","Secret"} as an X-Registry-Auth
 * value; Username "<token>" means Secret is an identity token. */
static int auth_from_helper(const char *name, const char *host, int64_t deadline, char **out,
                            struct berth_err *err)
{
    struct buf answer;
    cJSON *root = NULL;
    const cJSON *user, *secret;
    int rc = -1;

    buf_init(&answer, HELPER_OUTPUT_MAX);
    if (auth_run_helper(name, host, deadline, &answer, err) < 0) {
        /* A store that holds nothing for the host says so and exits 1: the
         * pull is then anonymous. */
        if (answer.data != NULL && strstr(answer.data, "credentials not found") != NULL) {
            berth_err_clear(err);
            rc = 0;
        }
        goto out;
    }
    root = cJSON_ParseWithLength(answer.data ? answer.data : "", answer.len);
    user = cJSON_GetObjectItemCaseSensitive(root, "Username");
    secret = cJSON_GetObjectItemCaseSensitive(root, "Secret");
    if (!cJSON_IsString(user) || !cJSON_IsString(secret)) {
        berth_err_set(err, BERTH_UNAVAILABLE,
                      "credential helper 'docker-credential-%s' gave no credential for "
                      "registry '%s'",
                      name, host);
        goto out;
    }
    if (strcmp(user->valuestring, "<token>") == 0)
        rc = auth_encode(NULL, NULL, secret->valuestring, host, out, err);
    else
        rc = auth_encode(user->valuestring, secret->valuestring, NULL, host, out, err);
out:
    if (answer.data != NULL)
        explicit_bzero(answer.data, answer.len);
    buf_release(&answer);
    if (root != NULL && cJSON_IsString(cJSON_GetObjectItemCaseSensitive(root, "Secret")))
        explicit_bzero(cJSON_GetObjectItemCaseSensitive(root, "Secret")->valuestring,
                       strlen(cJSON_GetObjectItemCaseSensitive(root, "Secret")->valuestring));
    cJSON_Delete(root);
    return rc;
}

int registry_auth_header(const struct registry_auth *ra, const char *host, int64_t deadline,
                         char **out, struct berth_err *err)
{
    char norm[256];

    *out = NULL;
    if (ra == NULL)
        return 0;
    auth_normalise_host(host, norm, sizeof(norm));
    /* As the docker CLI: a helper named for the host first; then an inline
     * credential of `auths`; then the credential store. */
    for (size_t i = 0; i < ra->n_helpers; i++)
        if (strcmp(ra->helpers[i].host, norm) == 0)
            return auth_from_helper(ra->helpers[i].name, norm, deadline, out, err);
    for (size_t i = 0; i < ra->n_auths; i++) {
        const struct auth_entry *e = &ra->auths[i];
        if (strcmp(e->host, norm) == 0)
            return auth_encode(e->username, e->password, e->identity_token, norm, out, err);
    }
    if (ra->store != NULL)
        return auth_from_helper(ra->store, norm, deadline, out, err);
    return 0;
}
