/* Private to the Swarm backend's files: reading and writing the Engine's
 * Swarm JSON (swarm_json.c), kept apart from the calls so unit tests can
 * feed it canned answers. */
#ifndef BERTH_SWARM_INTERNAL_H
#define BERTH_SWARM_INTERNAL_H

#include <stdint.h>

#include <cjson/cJSON.h>

#include "berth/backend.h"

/* A berthd service as its labels describe it (strings borrowed from the
 * service JSON). */
struct swarm_service {
    const char *service_id; /* the Swarm service ID */
    const char *name;       /* Spec.Name */
    const char *ns;         /* berth.namespace, "" when none */
    const char *id;         /* the kind's id label */
    const char *digest;     /* berth.spec, "" when none */
    unsigned wanted;        /* berth.replicas; 0 when missing or malformed */
};

/* Service names: berth-gw-<id>, berth-dep-<id>. */
const char *swarm_name_prefix(enum object_kind kind);

/* One item of GET /services (or GET /services/{id}) into *out when it is
 * labelled berth.managed=true and berth.kind=<kind> and has an ID and an
 * id label: 0. -1 when it is not berthd's service of that kind (nothing
 * about it may be read or touched then). */
int swarm_json_service(const cJSON *svc, enum object_kind kind, struct swarm_service *out);

/* The body of POST /services/create for spec, named `name`: one replicated
 * service whose tasks publish the template's ports in host mode (an Engine-
 * chosen port on the node that runs the task). pids_limit <= 0: none. NULL
 * when out of memory; the caller deletes it. */
cJSON *swarm_json_service_spec(const struct backend_replica_spec *spec, const char *name,
                               int64_t pids_limit);

/* A task's Status.State in berthd's terms. */
enum backend_state swarm_task_state(const char *state);

/* The address of node `node_id` in GET /nodes' answer, "" when unknown (the
 * caller then means this host). Borrowed from nodes. */
const char *swarm_node_addr(const cJSON *nodes, const char *node_id);

/* The set of service svc from GET /tasks' answer (tasks of any service; only
 * svc's whose desired state is running count) and GET /nodes' (NULL: every
 * task runs here) into *out, heap-owned, items sorted by index (slot - 1).
 * *out is set only on success. */
int swarm_json_fill_set(enum object_kind kind, const struct swarm_service *svc, const cJSON *tasks,
                        const cJSON *nodes, struct backend_replica_set *out, struct berth_err *err);

#endif
