/* The object-kind table of berth/labels.h. */
#include "berth/labels.h"

#include <string.h>

static const struct object_kind_info object_kinds[OBJECT_KIND_COUNT] = {
    {OBJECT_VM, "vm", LABEL_VM_ID, LABEL_KIND "=vm"},
    {OBJECT_GATEWAY, "gateway", LABEL_GATEWAY_ID, LABEL_KIND "=gateway"},
    {OBJECT_DEPLOYMENT, "deployment", LABEL_DEPLOYMENT_ID, LABEL_KIND "=deployment"},
};

const struct object_kind_info *object_kind_info(enum object_kind kind)
{
    return (unsigned)kind < OBJECT_KIND_COUNT ? &object_kinds[kind] : NULL;
}

const struct object_kind_info *object_kind_by_name(const char *name)
{
    if (name == NULL)
        return NULL;
    for (size_t i = 0; i < OBJECT_KIND_COUNT; i++)
        if (strcmp(object_kinds[i].name, name) == 0)
            return &object_kinds[i];
    return NULL;
}
