/* Private to the Swarm backend's files: reading and writing the Engine's
 * Swarm JSON (swarm_json.c), kept apart from the calls so unit tests can
 * feed it canned answers, and the calls its files share (swarm_backend.c,
 * swarm_update.c, swarm_follow.c). */
#ifndef BERTH_SWARM_INTERNAL_H
#define BERTH_SWARM_INTERNAL_H

#include <stdatomic.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "berth/backend.h"
#include "berth/buf.h"

/* A berthd service as its labels describe it (strings borrowed from the
 * service JSON). */
struct swarm_service {
    const char *service_id; /* the Swarm service ID */
    const char *name;       /* Spec.Name */
    const char *ns;         /* berth.namespace, "" when none */
    const char *id;         /* the kind's id label */
    const char *digest;     /* berth.spec, "" when none */
    unsigned wanted;        /* berth.replicas; 0 when missing or malformed */
    /* Endpoint.Ports: what the routing mesh publishes (ingress mode), on
     * every node; NULL when none. */
    const cJSON *mesh_ports;
};

/* How services are made, besides their replica spec. */
struct swarm_spec_opts {
    int64_t pids_limit;   /* <= 0: none */
    int ingress;          /* publish through the routing mesh, not on each task's node */
    unsigned parallelism; /* tasks an update or rollback replaces at a time; 0: 1 */
    int64_t monitor_ms;   /* a new task that fails this soon after it runs fails the update */
};

/* The node label that overrides a node's address in answers. */
#define SWARM_LABEL_ADVERTISE "berth.advertise"

/* Service names: berth-gw-<id>, berth-dep-<id>. */
const char *swarm_name_prefix(enum object_kind kind);

/* One item of GET /services (or GET /services/{id}) into *out when it is
 * labelled berth.managed=true and berth.kind=<kind> and has an ID and an
 * id label: 0. -1 when it is not berthd's service of that kind (nothing
 * about it may be read or touched then). */
int swarm_json_service(const cJSON *svc, enum object_kind kind, struct swarm_service *out);

/* The body of POST /services/create (and of a service update) for spec,
 * named `name`: one replicated service whose tasks publish the template's
 * ports in host mode (an Engine-chosen port on the node that runs the
 * task) or through the routing mesh, whose updates and rollbacks start
 * each new task before its old one stops, and whose failed update is
 * rolled back. NULL when out of memory; the caller deletes it. */
cJSON *swarm_json_service_spec(const struct backend_replica_spec *spec, const char *name,
                               const struct swarm_spec_opts *o);

/* A task's Status.State in berthd's terms. */
enum backend_state swarm_task_state(const char *state);

/* The address of node `node_id` in GET /nodes' answer: its label
 * berth.advertise when it has one, else the address it joined with; ""
 * when unknown (the caller then means this host). Borrowed from nodes. */
const char *swarm_node_addr(const cJSON *nodes, const char *node_id);
/* Its host name, "" when unknown. Borrowed from nodes. */
const char *swarm_node_name(const cJSON *nodes, const char *node_id);

/* Version.Index of a service (what an update must name), -1 when missing. */
int64_t swarm_json_version(const cJSON *svc);
/* UpdateStatus.State ("updating", "completed", "rollback_completed", ...)
 * and UpdateStatus.StartedAt of a service; "" when it has none. */
const char *swarm_json_update_state(const cJSON *svc);
const char *swarm_json_update_started(const cJSON *svc);

/* What a task belongs to, from its container labels: 0 with *kind and *id
 * (borrowed) when it is a replica of a berthd set, else -1. */
int swarm_json_task_object(const cJSON *task, enum object_kind *kind, const char **id);
/* The berth.spec its container carries (the digest of the spec it runs), "" when none. */
const char *swarm_json_task_digest(const cJSON *task);

/* The set of service svc from GET /tasks' answer (tasks of any service; only
 * svc's whose desired state is running count) and GET /nodes' (NULL: every
 * task runs here) into *out, heap-owned, items sorted by index (slot - 1).
 * *out is set only on success. */
int swarm_json_fill_set(enum object_kind kind, const struct swarm_service *svc, const cJSON *tasks,
                        const cJSON *nodes, struct backend_replica_set *out, struct berth_err *err);

/* ---- the backend's calls, shared by its files ------------------------ */

struct docker_ctx;

/* The Swarm backend's own part of the Docker context (docker_ctx.swarm). */
struct swarm_state {
    int ingress; /* --swarm-publish-mode ingress */
};

/* What sw_find found under a set's service name. */
enum sw_found { SW_NONE = 0, SW_OURS, SW_FOREIGN };

/* One Engine call with extra headers (NULL: none). A 2xx answer's JSON
 * goes to *root (when root is not NULL; the caller's), and the status is
 * returned; so are 404 and 409, which callers read themselves. Any other
 * answer fails with the Engine's message, naming `what`: an Engine that is
 * no Swarm manager is failed_precondition, not a passing outage. */
int sw_call(struct docker_ctx *c, const char *method, const char *path, const char *body,
            const char *const *headers, int64_t deadline, cJSON **root, const char *what,
            struct berth_err *err);
/* The service named for (kind, id): SW_OURS with *root (the caller's) and
 * *svc read from it, SW_FOREIGN when a service of that name is not berthd's
 * set of that kind and id, SW_NONE when there is none; -1 with err. */
int sw_find(struct docker_ctx *c, enum object_kind kind, const char *id, int64_t deadline,
            cJSON **root, struct swarm_service *svc, struct berth_err *err);
/* GET /services/{service_id}: 0 with *root, not_found when it is gone. */
int sw_inspect(struct docker_ctx *c, const char *service_id, int64_t deadline, cJSON **root,
               struct berth_err *err);
/* GET /tasks of a service (NULL: of every service), only those whose
 * desired state is running when `running_only`; and GET /nodes when nodes
 * is not NULL, for the addresses. */
int sw_fetch_tasks(struct docker_ctx *c, const char *service_id, int running_only, int64_t deadline,
                   cJSON **tasks, cJSON **nodes, struct berth_err *err);
/* The spec options of this backend for a create or an update. */
void sw_spec_opts(const struct docker_ctx *c, const struct backend_update_opts *u,
                  struct swarm_spec_opts *out);
/* Before a service runs `image`: its registry is allowed, and this node
 * has it as the pull policy wants (pulled with the registry's credential,
 * so a missing image or a refused credential fails the call as with the
 * Docker backend, not each task later). Then *hdr holds the
 * "X-Registry-Auth: ..." header the service is made or updated with, so
 * every other node pulls with it too; empty when there is no credential
 * for that registry. The caller wipes and releases hdr. */
int sw_prepare_image(struct docker_ctx *c, const struct backend_spec *t, int64_t deadline,
                     struct buf *hdr, struct berth_err *err);
/* Zero a header's bytes and release it. */
void sw_wipe(struct buf *hdr);

/* backend_ops.replica_update (swarm_update.c). */
int sw_update(void *ctx, const struct backend_replica_spec *spec,
              const struct backend_update_opts *opts, int64_t deadline,
              struct backend_update_result *out, struct berth_err *err);
/* backend_ops.watch (swarm_follow.c): the Engine's container events, and
 * the swarm's tasks polled for changes anywhere in the swarm. */
int sw_watch(void *ctx, int64_t since_unix_ns, const atomic_int *stop, backend_event_fn fn,
             void *arg, struct berth_err *err);

#endif
