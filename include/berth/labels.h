/* Every container label key berthd writes or reads, and the one table of the
 * object kinds it manages (vm, gateway, deployment), shared by the services,
 * the event stream and /metrics. Nothing else spells a "berth.*" key. */
#ifndef BERTH_LABELS_H
#define BERTH_LABELS_H

#include <stddef.h>

/* Ownership: every object berthd creates carries both. */
#define LABEL_MANAGED "berth.managed"
#define LABEL_MANAGED_VALUE "true"
#define LABEL_INSTANCE "berth.instance"

/* What the object is, and which of berthd's objects it belongs to. */
#define LABEL_KIND "berth.kind"
#define LABEL_VM_ID "berth.vm_id"
#define LABEL_GATEWAY_ID "berth.gateway_id"
#define LABEL_DEPLOYMENT_ID "berth.deployment_id"

/* VMs: the caller's customer, the config as created (JSON), creation time. */
#define LABEL_CUSTOMER_ID "berth.customer_id"
#define LABEL_CONFIG "berth.config"
#define LABEL_CREATED "berth.created"

/* Replica sets: the spec digest (of the template, not the count), the
 * replica's index, the namespace, the wanted replica count, the generation
 * (each update makes the next one), and how long a replica an update made
 * must run to count as ready. */
#define LABEL_SPEC "berth.spec"
#define LABEL_REPLICA "berth.replica"
#define LABEL_NAMESPACE "berth.namespace"
#define LABEL_REPLICAS "berth.replicas"
#define LABEL_GENERATION "berth.generation"
#define LABEL_MIN_READY "berth.min_ready_ms"
/* A set's record: a container that is never started and only carries the
 * state of the set in its labels (generation, spec, replicas), so an update
 * can be told from what it replaces after a crash. An update's record also
 * names the state it started from. */
#define LABEL_RECORD "berth.record"
#define LABEL_RECORD_VALUE "true"
#define LABEL_FROM_SPEC "berth.from_spec"
#define LABEL_FROM_REPLICAS "berth.from_replicas"

/* krane's pass-through identity of a deployment's workload. */
#define LABEL_WORKSPACE_ID "berth.workspace_id"
#define LABEL_ENVIRONMENT_SLUG "berth.environment_slug"
#define LABEL_ENVIRONMENT_ID "berth.environment_id"
#define LABEL_BUILD_ID "berth.build_id"

/* A per-create token, so a create whose answer was lost can find and reap
 * exactly the container it made. */
#define LABEL_CREATE_TOKEN "berth.create_token"

enum object_kind {
    OBJECT_VM,
    OBJECT_GATEWAY,
    OBJECT_DEPLOYMENT,
    OBJECT_KIND_COUNT,
};

struct object_kind_info {
    enum object_kind kind;
    const char *name;        /* the berth.kind value: "vm", "gateway", "deployment" */
    const char *id_label;    /* the label that holds the object's id */
    const char *kind_filter; /* "berth.kind=<name>", for backend list filters */
};

/* The row of a kind (kind < OBJECT_KIND_COUNT). */
const struct object_kind_info *object_kind_info(enum object_kind kind);
/* The row whose name is `name`, or NULL. */
const struct object_kind_info *object_kind_by_name(const char *name);

#endif
