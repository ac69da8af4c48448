/* A deployment's secrets through the vault (see berth/krane_secrets.h):
 * decrypt the blob, read the SecretsConfig JSON it holds, decrypt each
 * value. Plaintexts only live in the call's arena and in the cJSON tree,
 * which is wiped before it is freed. */
#include "berth/krane_secrets.h"

#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "berth/utf8.h"

static int ks_name_ok(const char *name);
static int ks_cmp(const void *a, const void *b);
static void ks_wipe(cJSON *item);
static int ks_name_field(struct berth_err *err, const char *field, const char *secret);

/* The decrypter's error, prefixed with the field (and the secret) it was
 * about; the code stays. -1. */
static int ks_name_field(struct berth_err *err, const char *field, const char *secret)
{
    char why[BERTH_ERR_MSG_MAX];
    enum berth_code code = err->code;

    memcpy(why, err->msg, sizeof(why));
    berth_err_clear(err);
    if (secret != NULL)
        return berth_err_set(err, code, "field '%s': secret '%s': %s", field, secret, why);
    return berth_err_set(err, code, "field '%s': %s", field, why);
}

/* An environment name Docker and a shell accept: non-empty, no '=', no
 * control character. */
static int ks_name_ok(const char *name)
{
    if (name[0] == '\0')
        return 0;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        if (*p == '=' || *p < 0x20 || *p == 0x7f)
            return 0;
    return 1;
}

static int ks_cmp(const void *a, const void *b)
{
    const struct krane_env *x = a, *y = b;

    return strcmp(x->key, y->key);
}

/* Zero every string of a tree (the plaintext of the blob), before it is
 * freed. */
static void ks_wipe(cJSON *item)
{
    for (; item != NULL; item = item->next) {
        if (item->valuestring != NULL)
            memset(item->valuestring, 0, strlen(item->valuestring));
        ks_wipe(item->child);
    }
}

int krane_secrets_decrypt(const struct krane_decryptor *d, const char *field, const uint8_t *blob,
                          size_t len, const char *keyring, int64_t deadline, struct arena *a,
                          struct krane_env **out, size_t *n, struct berth_err *err)
{
    char *text = NULL, *plain = NULL;
    cJSON *root = NULL;
    const cJSON *secrets, *item;
    struct krane_env *env = NULL;
    size_t count = 0, k = 0;
    int rc = -1;

    if (d == NULL || d->decrypt == NULL)
        return berth_err_set(err, BERTH_INTERNAL, "no vault to decrypt '%s'", field);
    if (memchr(blob, '\0', len) != NULL || !utf8_valid((const char *)blob, len))
        return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                             "field '%s': the vault's ciphertexts are text; this one holds a NUL "
                             "byte or is not UTF-8",
                             field);
    text = arena_strndup(a, (const char *)blob, len);
    if (text == NULL)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    if (d->decrypt(d->ctx, keyring, text, deadline, a, &plain, err) < 0)
        return ks_name_field(err, field, NULL);

    root = cJSON_Parse(plain);
    memset(plain, 0, strlen(plain));
    secrets = cJSON_GetObjectItemCaseSensitive(root, "secrets");
    if (!cJSON_IsObject(root) ||
        (secrets != NULL && !cJSON_IsObject(secrets) && !cJSON_IsNull(secrets))) {
        berth_err_set(err, BERTH_FAILED_PRECONDITION,
                      "field '%s': the vault's plaintext is not the JSON of a SecretsConfig "
                      "({\"secrets\": {\"NAME\": \"<encrypted value>\"}})",
                      field);
        goto out;
    }
    if (!cJSON_IsObject(secrets))
        secrets = NULL; /* null or left out: no secrets */
    cJSON_ArrayForEach(item, secrets) count++;
    if (count > KRANE_SECRETS_MAX) {
        berth_err_set(err, BERTH_FAILED_PRECONDITION, "field '%s': more than %d secrets", field,
                      KRANE_SECRETS_MAX);
        goto out;
    }
    env = arena_alloc(a, (count + 1) * sizeof(*env));
    if (env == NULL) {
        berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    cJSON_ArrayForEach(item, secrets)
    {
        char quoted[80];
        char *name, *value = NULL;

        berth_err_quote(quoted, sizeof(quoted), item->string, 64);
        if (!ks_name_ok(item->string)) {
            berth_err_set(err, BERTH_FAILED_PRECONDITION,
                          "field '%s': secret '%s': a name must be non-empty and hold no '=' or "
                          "control character",
                          field, quoted);
            goto out;
        }
        for (size_t j = 0; j < k; j++)
            if (strcmp(env[j].key, item->string) == 0) {
                berth_err_set(err, BERTH_FAILED_PRECONDITION,
                              "field '%s': secret '%s' is there twice", field, quoted);
                goto out;
            }
        if (!cJSON_IsString(item)) {
            berth_err_set(err, BERTH_FAILED_PRECONDITION,
                          "field '%s': secret '%s': the encrypted value is not a string", field,
                          quoted);
            goto out;
        }
        name = arena_strdup(a, item->string);
        if (name == NULL) {
            berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
            goto out;
        }
        if (d->decrypt(d->ctx, keyring, item->valuestring, deadline, a, &value, err) < 0) {
            ks_name_field(err, field, quoted);
            goto out;
        }
        env[k++] = (struct krane_env){name, value};
    }
    if (k > 1)
        qsort(env, k, sizeof(*env), ks_cmp);
    *out = env;
    *n = k;
    rc = 0;
out:
    ks_wipe(root);
    cJSON_Delete(root);
    return rc;
}
