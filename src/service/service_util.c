/* Helpers shared by the services (see berth/service_util.h). */
#include "berth/service_util.h"

#include <ctype.h>
#include <string.h>

int service_check_id(const char *field, const char *id, struct berth_err *err)
{
    size_t n = id ? strlen(id) : 0;
    char quoted[80];

    if (n == 0)
        return berth_err_set(err, BERTH_INVALID_ARGUMENT, "field '%s' is required", field);
    berth_err_quote(quoted, sizeof(quoted), id, 64);
    if (n > 63)
        return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                             "field '%s': '%s' is longer than 63 characters", field, quoted);
    if (!isalnum((unsigned char)id[0]))
        return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                             "field '%s': '%s' must start with a letter or digit", field, quoted);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)id[i];
        if (!(isalnum(c) || c == '_' || c == '.' || c == '-'))
            return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                                 "field '%s': '%s' may only hold letters, digits, '_', '.' "
                                 "and '-'",
                                 field, quoted);
    }
    return 0;
}

int service_map_add(struct arena *a, const ProtobufCMessageDescriptor *entry_desc, void ***entries,
                    size_t *n, const char *key, const char *value, struct berth_err *err)
{
    struct service_kv_entry *e = arena_message(a, entry_desc);
    void **grown;

    if (e == NULL)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    e->key = arena_strdup(a, key);
    e->value = arena_strdup(a, value);
    grown = arena_alloc(a, (*n + 1) * sizeof(*grown));
    if (e->key == NULL || e->value == NULL || grown == NULL)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    if (*n)
        memcpy(grown, *entries, *n * sizeof(*grown));
    grown[*n] = e;
    *entries = grown;
    (*n)++;
    return 0;
}

const char *service_map_get(void *const *entries, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++) {
        const struct service_kv_entry *e = entries[i];
        if (e->key && strcmp(e->key, key) == 0)
            return e->value;
    }
    return NULL;
}

char *service_network_name(struct arena *a, const char *prefix, const char *key, const char *none)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = strlen(prefix), k = key ? strlen(key) : 0, at;
    char *out;

    if (k == 0)
        return arena_strdup(a, none);
    out = arena_alloc(a, n + 3 * k + 1);
    if (out == NULL)
        return NULL;
    memcpy(out, prefix, n);
    at = n;
    for (size_t i = 0; i < k; i++) {
        unsigned char c = (unsigned char)key[i];

        if (isalnum(c) || c == '.' || c == '-') {
            out[at++] = (char)c;
        } else {
            out[at++] = '_';
            out[at++] = hex[c >> 4];
            out[at++] = hex[c & 15];
        }
    }
    out[at] = '\0';
    return out;
}
