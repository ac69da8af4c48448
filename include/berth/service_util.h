/* Helpers the services share: id rules, string maps in protobuf-c messages,
 * readable state names. */
#ifndef BERTH_SERVICE_UTIL_H
#define BERTH_SERVICE_UTIL_H

#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

#include "berth/arena.h"
#include "berth/err.h"

/* 1-63 characters of [a-zA-Z0-9_.-], starting with a letter or digit.
 * `field` names the field in the error (e.g. "vmId"). */
int service_check_id(const char *field, const char *id, struct berth_err *err) BERTH_MUST_USE;

/* The layout protobuf-c gives every map<string, string> entry. */
struct service_kv_entry {
    ProtobufCMessage base;
    char *key;
    char *value;
};

/* Append key=value to a map<string,string> field (entries array *entries with
 * *n items, grown in the arena). entry_desc is the map's entry descriptor.
 * Both strings are copied into the arena. */
int service_map_add(struct arena *a, const ProtobufCMessageDescriptor *entry_desc, void ***entries,
                    size_t *n, const char *key, const char *value,
                    struct berth_err *err) BERTH_MUST_USE;
/* The value of key in a map<string,string> field, or NULL. */
const char *service_map_get(void *const *entries, size_t n, const char *key);

/* The tenant network a container of `key` joins: prefix ("berth-c-",
 * "berth-ns-") + key, in the arena; an empty key gives `none`. Bytes a
 * network name cannot hold (anything but [A-Za-z0-9.-]) and '_' become
 * "_xx" (hex), so distinct keys get distinct names. NULL: out of memory. */
char *service_network_name(struct arena *a, const char *prefix, const char *key, const char *none);

#endif
