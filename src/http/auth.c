/* Naming the caller (berth/auth.h): the token file's set, swapped whole on
 * reload, compared in constant time; certificate identities checked against
 * the allowed list; unix peers named by their credentials. */
#include "berth/auth.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "berth/buf.h"
#include "berth/lock.h"

#define TOKEN_FILE_MAX ((size_t)1 << 20)
#define TOKEN_MAX 4096
#define NAME_MAX_LEN 128

struct token {
    char *name;
    char *secret;
    size_t secret_len;
};

struct token_set {
    struct token *t;
    size_t n;
};

struct auth {
    int tokens_on;      /* immutable: a token file was given */
    char *token_file;   /* the reloading thread's only; NULL: no tokens */
    char **allowed_ids; /* immutable */
    size_t n_allowed;
    int client_ca; /* immutable */
    pthread_mutex_t lock;
    struct token_set tokens; /* guarded by lock */
};

static int read_whole(const char *path, struct buf *out, struct berth_err *err);
static int parse_tokens(const char *path, const char *text, size_t len, struct token_set *set,
                        struct berth_err *err);
static int parse_line(const char *line, size_t len, size_t lineno, const char *path,
                      struct token_set *set, struct berth_err *err);
static int load_tokens(const char *path, struct token_set *set, struct berth_err *err);
static void token_set_release(struct token_set *set);
static int split_allowed(struct auth *a, const char *list);
static int secret_equal(const char *a, size_t alen, const char *b, size_t blen);
static const char *match_token(struct auth *a, const char *authz, struct arena *arena);
static int id_allowed(const struct auth *a, const struct auth_peer *peer);

static int read_whole(const char *path, struct buf *out, struct berth_err *err)
{
    FILE *f = fopen(path, "re");
    char chunk[4096];
    size_t n;
    int rc = 0;

    if (f == NULL)
        return berth_err_set(err, BERTH_INVALID_ARGUMENT, "auth-token-file '%.200s': %s", path,
                             strerror(errno));
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        if (buf_append(out, chunk, n, NULL) < 0) {
            rc = berth_err_set(err, BERTH_INVALID_ARGUMENT,
                               "auth-token-file '%.200s': larger than %zu bytes", path,
                               TOKEN_FILE_MAX);
            break;
        }
    if (rc == 0 && ferror(f))
        rc = berth_err_set(err, BERTH_INVALID_ARGUMENT, "auth-token-file '%.200s': read error",
                           path);
    fclose(f);
    return rc;
}

/* One line: blank, a `#` comment, `token` or `name:token`. A token is
 * visible ASCII without spaces (RFC 6750's b64token and more); a name is
 * letters, digits and ._-@. Error messages name the line, never its text. */
static int parse_line(const char *line, size_t len, size_t lineno, const char *path,
                      struct token_set *set, struct berth_err *err)
{
    const char *colon, *secret = line;
    size_t slen = len;
    struct token *grown, *t;
    char *name;

    while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\t' || line[len - 1] == '\r'))
        len--;
    while (len > 0 && (line[0] == ' ' || line[0] == '\t')) {
        line++;
        len--;
    }
    if (len == 0 || line[0] == '#')
        return 0;
    colon = memchr(line, ':', len);
    if (colon != NULL) {
        size_t nlen = (size_t)(colon - line);
        if (nlen == 0 || nlen > NAME_MAX_LEN ||
            strspn(line, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-@") <
                nlen)
            return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                                 "auth-token-file '%.200s' line %zu: a name is 1 to %d of "
                                 "letters, digits and ._-@",
                                 path, lineno, NAME_MAX_LEN);
        secret = colon + 1;
        slen = len - nlen - 1;
        name = strndup(line, nlen);
    } else {
        secret = line;
        slen = len;
        name = malloc(32);
        if (name != NULL)
            snprintf(name, 32, "line-%zu", lineno);
    }
    if (name == NULL)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    for (size_t i = 0; i < slen; i++)
        if ((unsigned char)secret[i] <= ' ' || (unsigned char)secret[i] >= 0x7f)
            slen = 0;
    if (slen == 0 || slen > TOKEN_MAX) {
        free(name);
        return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                             "auth-token-file '%.200s' line %zu: a token is 1 to %d visible "
                             "ASCII characters without spaces",
                             path, lineno, TOKEN_MAX);
    }
    grown = realloc(set->t, (set->n + 1) * sizeof(*set->t));
    if (grown == NULL) {
        free(name);
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    }
    set->t = grown;
    t = &set->t[set->n];
    t->secret = strndup(secret, slen);
    if (t->secret == NULL) {
        free(name);
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    }
    t->name = name;
    t->secret_len = slen;
    set->n++;
    return 0;
}

static int parse_tokens(const char *path, const char *text, size_t len, struct token_set *set,
                        struct berth_err *err)
{
    size_t lineno = 0, i = 0;

    if (memchr(text, '\0', len) != NULL)
        return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                             "auth-token-file '%.200s': holds a NUL byte", path);
    while (i < len) {
        const char *nl = memchr(text + i, '\n', len - i);
        size_t n = nl ? (size_t)(nl - (text + i)) : len - i;

        lineno++;
        if (parse_line(text + i, n, lineno, path, set, err) < 0)
            return -1;
        i += n + (nl ? 1 : 0);
    }
    if (set->n == 0)
        return berth_err_set(err, BERTH_INVALID_ARGUMENT, "auth-token-file '%.200s': no tokens",
                             path);
    return 0;
}

static int load_tokens(const char *path, struct token_set *set, struct berth_err *err)
{
    struct buf text;
    int rc;

    memset(set, 0, sizeof(*set));
    buf_init(&text, TOKEN_FILE_MAX);
    rc = read_whole(path, &text, err);
    if (rc == 0)
        rc = parse_tokens(path, text.data ? text.data : "", text.len, set, err);
    /* The file's bytes are secrets: wipe them before giving them back. */
    if (text.data != NULL)
        explicit_bzero(text.data, text.len);
    buf_release(&text);
    if (rc < 0)
        token_set_release(set);
    return rc;
}

static void token_set_release(struct token_set *set)
{
    for (size_t i = 0; i < set->n; i++) {
        explicit_bzero(set->t[i].secret, set->t[i].secret_len);
        free(set->t[i].secret);
        free(set->t[i].name);
    }
    free(set->t);
    set->t = NULL;
    set->n = 0;
}

int auth_tokens_check(const char *path, size_t *n, struct berth_err *err)
{
    struct token_set set;

    if (load_tokens(path, &set, err) < 0)
        return -1;
    *n = set.n;
    token_set_release(&set);
    return 0;
}

static int split_allowed(struct auth *a, const char *list)
{
    const char *p = list;

    while (p != NULL && *p != '\0') {
        size_t n = strcspn(p, ";");
        size_t b = 0, e = n;
        char **grown;

        while (b < e && p[b] == ' ')
            b++;
        while (e > b && p[e - 1] == ' ')
            e--;
        if (e > b) {
            grown = realloc(a->allowed_ids, (a->n_allowed + 1) * sizeof(*grown));
            if (grown == NULL)
                return -1;
            a->allowed_ids = grown;
            a->allowed_ids[a->n_allowed] = strndup(p + b, e - b);
            if (a->allowed_ids[a->n_allowed] == NULL)
                return -1;
            a->n_allowed++;
        }
        p += n;
        if (*p == ';')
            p++;
    }
    return 0;
}

int auth_new(const struct auth_config *cfg, struct auth **out, struct berth_err *err)
{
    struct auth *a = calloc(1, sizeof(*a));

    if (a == NULL)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    lock_init(&a->lock);
    a->client_ca = cfg->client_ca;
    if (split_allowed(a, cfg->allowed_ids) < 0) {
        berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        goto fail;
    }
    if (cfg->token_file != NULL && cfg->token_file[0] != '\0') {
        a->tokens_on = 1;
        a->token_file = strdup(cfg->token_file);
        if (a->token_file == NULL) {
            berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
            goto fail;
        }
        if (load_tokens(a->token_file, &a->tokens, err) < 0)
            goto fail;
    }
    *out = a;
    return 0;
fail:
    auth_free(a);
    return -1;
}

int auth_reload(struct auth *a, struct berth_err *err)
{
    return auth_reload_file(a, NULL, err);
}

int auth_reload_file(struct auth *a, const char *path, struct berth_err *err)
{
    struct token_set fresh, old;
    char *copy = NULL;

    if (!a->tokens_on) {
        if (path != NULL && path[0] != '\0')
            return berth_err_set(err, BERTH_FAILED_PRECONDITION,
                                 "auth-token-file: tokens were off at start; a restart turns "
                                 "them on");
        return 0;
    }
    if (path != NULL && path[0] == '\0')
        return berth_err_set(err, BERTH_FAILED_PRECONDITION,
                             "auth-token-file: tokens were on at start; a restart turns them off");
    if (path != NULL && (copy = strdup(path)) == NULL)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    if (load_tokens(copy != NULL ? copy : a->token_file, &fresh, err) < 0) {
        free(copy);
        return -1;
    }
    lock_take(&a->lock);
    old = a->tokens;
    a->tokens = fresh;
    lock_give(&a->lock);
    token_set_release(&old);
    if (copy != NULL) {
        free(a->token_file);
        a->token_file = copy;
    }
    return 0;
}

size_t auth_token_count(struct auth *a)
{
    size_t n;

    lock_take(&a->lock);
    n = a->tokens.n;
    lock_give(&a->lock);
    return n;
}

int auth_required(const struct auth *a)
{
    return a != NULL && (a->tokens_on || a->client_ca);
}

/* Equal without a branch on the bytes: the time depends on the lengths
 * only, never on where the first difference lies. */
static int secret_equal(const char *a, size_t alen, const char *b, size_t blen)
{
    unsigned char diff = (unsigned char)(alen != blen);

    for (size_t i = 0; i < blen; i++)
        diff |= (unsigned char)b[i] ^ (unsigned char)(i < alen ? a[i] : 0);
    return diff == 0;
}

/* The name of the token in "Bearer <token>", or NULL. Every token is
 * compared, the match or not. */
static const char *match_token(struct auth *a, const char *authz, struct arena *arena)
{
    const char *tok, *found = NULL;
    char *name = NULL;
    size_t len;

    if (authz == NULL || strncasecmp(authz, "Bearer ", 7) != 0)
        return NULL;
    tok = authz + 7;
    while (*tok == ' ')
        tok++;
    len = strlen(tok);
    while (len > 0 && (tok[len - 1] == ' ' || tok[len - 1] == '\t'))
        len--;
    if (len == 0 || len > TOKEN_MAX)
        return NULL;
    lock_take(&a->lock);
    for (size_t i = 0; i < a->tokens.n; i++)
        if (secret_equal(tok, len, a->tokens.t[i].secret, a->tokens.t[i].secret_len) &&
            found == NULL)
            found = a->tokens.t[i].name;
    if (found != NULL)
        name = arena_printf(arena, "token:%s", found);
    lock_give(&a->lock);
    return name;
}

static int id_allowed(const struct auth *a, const struct auth_peer *peer)
{
    if (a->n_allowed == 0)
        return 1;
    for (size_t i = 0; i < a->n_allowed; i++)
        if ((peer->tls_spiffe != NULL && strcmp(a->allowed_ids[i], peer->tls_spiffe) == 0) ||
            (peer->tls_subject != NULL && strcmp(a->allowed_ids[i], peer->tls_subject) == 0))
            return 1;
    return 0;
}

int auth_identify(struct auth *a, const struct auth_peer *peer, struct arena *arena,
                  const char **name, struct berth_err *err)
{
    const char *who = NULL, *cert_id = NULL;

    if (a != NULL && a->client_ca) {
        if (!peer->tls_verified)
            return berth_err_set(err, BERTH_UNAUTHENTICATED,
                                 "a client certificate signed by the configured CA is required");
        if (!id_allowed(a, peer))
            return berth_err_set(err, BERTH_PERMISSION_DENIED,
                                 "client certificate identity is not allowed");
        cert_id = peer->tls_spiffe != NULL ? peer->tls_spiffe : peer->tls_subject;
    }
    if (a != NULL && a->tokens_on) {
        who = match_token(a, peer->authorization, arena);
        if (who == NULL)
            return berth_err_set(err, BERTH_UNAUTHENTICATED,
                                 peer->authorization == NULL ? "missing bearer token"
                                                             : "invalid bearer token");
    }
    if (who == NULL && cert_id != NULL)
        who = arena_strdup(arena, cert_id);
    if (who == NULL && peer->unix_peer)
        who = arena_printf(arena, "unix:uid=%u,pid=%d", (unsigned)peer->uid, (int)peer->pid);
    if (who == NULL)
        who = "anonymous";
    *name = who;
    return 0;
}

void auth_free(struct auth *a)
{
    if (a == NULL)
        return;
    token_set_release(&a->tokens);
    for (size_t i = 0; i < a->n_allowed; i++)
        free(a->allowed_ids[i]);
    free(a->allowed_ids);
    free(a->token_file);
    lock_destroy(&a->lock);
    free(a);
}
