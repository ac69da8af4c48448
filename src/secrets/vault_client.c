/* The vault client (see berth/vault_client.h): one Connect unary JSON call,
 * vault.v1.VaultService/Decrypt, over libcurl; a few easy handles kept for
 * their connections; the bearer token read from a file and swapped under a
 * lock on reload. Errors are mapped once, here: the vault not reachable is
 * unavailable, the vault saying no is failed_precondition. */
#include "berth/vault_client.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "berth/clock.h"
#include "berth/lock.h"
#include "berth/log.h"

#define VAULT_DEFAULT_TIMEOUT_MS 10000
#define VAULT_CONNECT_TIMEOUT_MS 5000
#define VAULT_TOKEN_MAX 16384
#define VAULT_POOL_MAX 4
#define VAULT_PATH "/vault.v1.VaultService/Decrypt"
/* Bytes of the vault's own error message an error message quotes. */
#define VAULT_QUOTE_MAX 160

struct vault {
    /* Read-only after vault_new. */
    char *endpoint; /* <url>/vault.v1.VaultService/Decrypt */
    char *token_file;
    char *ca_file;
    char *client_cert;
    char *client_key;
    int64_t timeout_ms;

    pthread_mutex_t lock;
    char *token;                /* lock: "" when none; replaced whole on reload */
    CURL *idle[VAULT_POOL_MAX]; /* lock: idle handles (owned) */
    size_t n_idle;              /* lock */
};

static char *vault_strdup_opt(const char *s);
static int vault_read_token(const char *path, char **out, struct berth_err *err);
static CURL *vault_acquire(struct vault *v);
static void vault_release_handle(struct vault *v, CURL *h);
static size_t vault_on_body(char *data, size_t size, size_t n, void *arg);
static char *vault_request_json(const char *keyring, const char *encrypted);
static int vault_curl_error(CURLcode rc, int64_t deadline, const char *why, struct berth_err *err);

/* ---- life --------------------------------------------------------------- */

static char *vault_strdup_opt(const char *s)
{
    return strdup(s != NULL ? s : "");
}

/* The token of a file: its text with surrounding white space dropped;
 * printable ASCII only, so it cannot break the header it goes into.
 * *out malloc'd on success. */
static int vault_read_token(const char *path, char **out, struct berth_err *err)
{
    FILE *f = fopen(path, "re");
    struct buf b;
    char chunk[4096];
    size_t n, start = 0, end;
    char quoted[80];
    int rc = -1;

    berth_err_quote(quoted, sizeof(quoted), path, 64);
    if (f == NULL)
        return berth_err_set(err, BERTH_INVALID_ARGUMENT, "vault-token-file '%s': %s", quoted,
                             strerror(errno));
    buf_init(&b, VAULT_TOKEN_MAX);
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        if (buf_append(&b, chunk, n, NULL) < 0) {
            berth_err_set(err, BERTH_INVALID_ARGUMENT,
                          "vault-token-file '%s': larger than %d bytes", quoted, VAULT_TOKEN_MAX);
            goto out;
        }
    if (ferror(f)) {
        berth_err_set(err, BERTH_INVALID_ARGUMENT, "vault-token-file '%s': read error", quoted);
        goto out;
    }
    end = b.len;
    while (start < end && strchr(" \t\r\n", b.data[start]) != NULL)
        start++;
    while (end > start && strchr(" \t\r\n", b.data[end - 1]) != NULL)
        end--;
    if (start == end) {
        berth_err_set(err, BERTH_INVALID_ARGUMENT, "vault-token-file '%s': holds no token", quoted);
        goto out;
    }
    for (size_t i = start; i < end; i++)
        if ((unsigned char)b.data[i] < 0x20 || (unsigned char)b.data[i] > 0x7e) {
            berth_err_set(err, BERTH_INVALID_ARGUMENT,
                          "vault-token-file '%s': the token holds a character that is not "
                          "printable ASCII",
                          quoted);
            goto out;
        }
    *out = strndup(b.data + start, end - start);
    if (*out == NULL) {
        berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    rc = 0;
out:
    /* The token does not linger in freed memory. */
    if (b.data != NULL)
        memset(b.data, 0, b.alloc);
    buf_release(&b);
    memset(chunk, 0, sizeof(chunk));
    fclose(f);
    return rc;
}

int vault_new(const struct vault_config *cfg, struct vault **out, struct berth_err *err)
{
    struct vault *v = calloc(1, sizeof(*v));
    size_t ulen = strlen(cfg->url);

    if (v == NULL)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    lock_init(&v->lock);
    while (ulen > 0 && cfg->url[ulen - 1] == '/')
        ulen--;
    v->endpoint = malloc(ulen + sizeof(VAULT_PATH));
    v->token_file = vault_strdup_opt(cfg->token_file);
    v->ca_file = vault_strdup_opt(cfg->ca_file);
    v->client_cert = vault_strdup_opt(cfg->client_cert);
    v->client_key = vault_strdup_opt(cfg->client_key);
    v->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : VAULT_DEFAULT_TIMEOUT_MS;
    if (v->endpoint == NULL || v->token_file == NULL || v->ca_file == NULL ||
        v->client_cert == NULL || v->client_key == NULL) {
        berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        goto fail;
    }
    memcpy(v->endpoint, cfg->url, ulen);
    memcpy(v->endpoint + ulen, VAULT_PATH, sizeof(VAULT_PATH));
    if (v->token_file[0] != '\0') {
        if (vault_read_token(v->token_file, &v->token, err) < 0)
            goto fail;
    } else if ((v->token = strdup("")) == NULL) {
        berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        goto fail;
    }
    *out = v;
    return 0;
fail:
    vault_free(v);
    return -1;
}

void vault_free(struct vault *v)
{
    if (v == NULL)
        return;
    for (size_t i = 0; i < v->n_idle; i++)
        curl_easy_cleanup(v->idle[i]);
    if (v->token != NULL) {
        memset(v->token, 0, strlen(v->token));
        free(v->token);
    }
    free(v->endpoint);
    free(v->token_file);
    free(v->ca_file);
    free(v->client_cert);
    free(v->client_key);
    lock_destroy(&v->lock);
    free(v);
}

int vault_reload(struct vault *v, struct berth_err *err)
{
    char *token = NULL, *old;
    CURL *idle[VAULT_POOL_MAX];
    size_t n_idle;

    if (v->token_file[0] != '\0' && vault_read_token(v->token_file, &token, err) < 0)
        return -1;
    lock_take(&v->lock);
    old = token != NULL ? v->token : NULL;
    if (token != NULL)
        v->token = token;
    /* Connections opened with the files as they were go: the next call
     * reads the CA bundle and client certificate again. */
    n_idle = v->n_idle;
    memcpy(idle, v->idle, n_idle * sizeof(*idle));
    v->n_idle = 0;
    lock_give(&v->lock);
    for (size_t i = 0; i < n_idle; i++)
        curl_easy_cleanup(idle[i]);
    if (old != NULL) {
        memset(old, 0, strlen(old));
        free(old);
    }
    return 0;
}

/* ---- handles -------------------------------------------------------------- */

static CURL *vault_acquire(struct vault *v)
{
    CURL *h = NULL;

    lock_take(&v->lock);
    if (v->n_idle > 0)
        h = v->idle[--v->n_idle];
    lock_give(&v->lock);
    if (h != NULL) {
        curl_easy_reset(h);
        return h;
    }
    return curl_easy_init();
}

static void vault_release_handle(struct vault *v, CURL *h)
{
    lock_take(&v->lock);
    if (v->n_idle < VAULT_POOL_MAX) {
        v->idle[v->n_idle++] = h;
        h = NULL;
    }
    lock_give(&v->lock);
    if (h != NULL)
        curl_easy_cleanup(h);
}

/* ---- one call --------------------------------------------------------------- */

static size_t vault_on_body(char *data, size_t size, size_t n, void *arg)
{
    struct buf *b = arg;

    /* Past the cap the transfer stops with CURLE_WRITE_ERROR. */
    return buf_append(b, data, size * n, NULL) < 0 ? 0 : size * n;
}

/* {"keyring": ..., "encrypted": ...}, malloc'd; NULL when out of memory. */
static char *vault_request_json(const char *keyring, const char *encrypted)
{
    cJSON *root = cJSON_CreateObject();
    char *json = NULL;

    if (root != NULL && cJSON_AddStringToObject(root, "keyring", keyring) != NULL &&
        cJSON_AddStringToObject(root, "encrypted", encrypted) != NULL)
        json = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return json;
}

/* A transfer that got no HTTP answer. curl's words name the host or the
 * TLS problem, never the request. */
static int vault_curl_error(CURLcode rc, int64_t deadline, const char *why, struct berth_err *err)
{
    if (rc == CURLE_OPERATION_TIMEDOUT && deadline != BERTH_NO_DEADLINE &&
        berth_now_ms() >= deadline)
        return berth_err_set(err, BERTH_DEADLINE_EXCEEDED,
                             "the vault did not answer before the call's deadline");
    if (rc == CURLE_WRITE_ERROR)
        return berth_err_set(err, BERTH_FAILED_PRECONDITION,
                             "the vault answered more than %zu bytes", VAULT_BODY_MAX);
    return berth_err_set(err, BERTH_UNAVAILABLE, "the vault cannot be reached: %s",
                         why[0] != '\0' ? why : curl_easy_strerror(rc));
}

int vault_read_answer(long status, const struct buf *body, struct arena *a, char **plaintext,
                      struct berth_err *err)
{
    cJSON *root = body->data != NULL ? cJSON_ParseWithLength(body->data, body->len) : NULL;
    const cJSON *item;
    char quoted[VAULT_QUOTE_MAX + 8];
    int rc = -1;

    if (status == 200) {
        char *copy;

        if (!cJSON_IsObject(root)) {
            berth_err_set(err, BERTH_FAILED_PRECONDITION,
                          "the vault answered Decrypt with something that is not a JSON object");
            goto out;
        }
        /* proto3 JSON leaves an empty plaintext out. */
        item = cJSON_GetObjectItemCaseSensitive(root, "plaintext");
        if (item != NULL && !cJSON_IsString(item) && !cJSON_IsNull(item)) {
            berth_err_set(err, BERTH_FAILED_PRECONDITION,
                          "the vault answered Decrypt with a 'plaintext' that is not a string");
            goto out;
        }
        copy = arena_strdup(a, cJSON_IsString(item) ? item->valuestring : "");
        if (copy == NULL) {
            berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
            goto out;
        }
        *plaintext = copy;
        rc = 0;
        goto out;
    }
    /* A Connect error: {"code": "...", "message": "..."}. A proxy in the
     * way may answer with anything else. */
    {
        const cJSON *code = cJSON_GetObjectItemCaseSensitive(root, "code");
        const cJSON *msg = cJSON_GetObjectItemCaseSensitive(root, "message");
        enum berth_code c =
            cJSON_IsString(code) ? berth_code_from_name(code->valuestring) : BERTH_UNKNOWN;

        berth_err_quote(quoted, sizeof(quoted), cJSON_IsString(msg) ? msg->valuestring : "",
                        VAULT_QUOTE_MAX);
        if (c == BERTH_UNAVAILABLE || c == BERTH_DEADLINE_EXCEEDED ||
            (!cJSON_IsString(code) && (status == 502 || status == 503 || status == 504)))
            berth_err_set(err, BERTH_UNAVAILABLE, "the vault is unavailable (HTTP %ld%s%s)", status,
                          quoted[0] ? ": " : "", quoted);
        else if (cJSON_IsString(code))
            berth_err_set(err, BERTH_FAILED_PRECONDITION, "the vault refused to decrypt: %s%s%s",
                          berth_code_name(c), quoted[0] ? ": " : "", quoted);
        else
            berth_err_set(err, BERTH_FAILED_PRECONDITION,
                          "the vault answered Decrypt with HTTP %ld", status);
    }
out:
    cJSON_Delete(root);
    return rc;
}

int vault_decrypt(struct vault *v, const char *keyring, const char *encrypted, int64_t deadline,
                  struct arena *a, char **plaintext, struct berth_err *err)
{
    struct curl_slist *headers = NULL, *more;
    char errbuf[CURL_ERROR_SIZE] = "";
    char *body = NULL, *auth = NULL;
    struct buf answer;
    int64_t timeout = v->timeout_ms;
    char tmo[64];
    long status = 0;
    CURL *h = NULL;
    CURLcode rc;
    int ret = -1;

    buf_init(&answer, VAULT_BODY_MAX);
    if (deadline != BERTH_NO_DEADLINE) {
        int64_t left = deadline - berth_now_ms();
        if (left <= 0)
            return berth_err_set(err, BERTH_DEADLINE_EXCEEDED,
                                 "the call's deadline passed before the vault was asked");
        if (left < timeout)
            timeout = left;
    }
    body = vault_request_json(keyring, encrypted);
    lock_take(&v->lock);
    if (v->token[0] != '\0')
        auth = malloc(strlen(v->token) + sizeof("Authorization: Bearer "));
    if (auth != NULL)
        snprintf(auth, strlen(v->token) + sizeof("Authorization: Bearer "),
                 "Authorization: Bearer %s", v->token);
    lock_give(&v->lock);
    snprintf(tmo, sizeof(tmo), "Connect-Timeout-Ms: %" PRId64, timeout);
    h = vault_acquire(v);
    if (body == NULL || h == NULL || (v->token_file[0] != '\0' && auth == NULL)) {
        berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    {
        const char *lines[] = {"Content-Type: application/json", "Accept: application/json",
                               "Connect-Protocol-Version: 1", tmo, auth};
        for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
            if (lines[i] == NULL)
                continue;
            more = curl_slist_append(headers, lines[i]);
            if (more == NULL) {
                berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
                goto out;
            }
            headers = more;
        }
    }
    curl_easy_setopt(h, CURLOPT_URL, v->endpoint);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)timeout);
    curl_easy_setopt(
        h, CURLOPT_CONNECTTIMEOUT_MS,
        (long)(timeout < VAULT_CONNECT_TIMEOUT_MS ? timeout : VAULT_CONNECT_TIMEOUT_MS));
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, vault_on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &answer);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    if (v->ca_file[0] != '\0')
        curl_easy_setopt(h, CURLOPT_CAINFO, v->ca_file);
    if (v->client_cert[0] != '\0') {
        curl_easy_setopt(h, CURLOPT_SSLCERT, v->client_cert);
        curl_easy_setopt(h, CURLOPT_SSLKEY, v->client_key);
    }
    rc = curl_easy_perform(h);
    if (rc != CURLE_OK) {
        vault_curl_error(rc, deadline, errbuf, err);
        goto out;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    ret = vault_read_answer(status, &answer, a, plaintext, err);
out:
    if (h != NULL) {
        /* The handle must not point at what is freed below. */
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, NULL);
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
        vault_release_handle(v, h);
    }
    /* The token does not linger in freed memory. */
    for (struct curl_slist *l = headers; l != NULL; l = l->next)
        memset(l->data, 0, strlen(l->data));
    curl_slist_free_all(headers);
    if (auth != NULL) {
        memset(auth, 0, strlen(auth));
        free(auth);
    }
    if (answer.data != NULL)
        memset(answer.data, 0, answer.alloc);
    buf_release(&answer);
    free(body);
    return ret;
}
