/* Replica sets as N containers, written only against a backend's container
 * operations (create, start, unpause, remove, list), so the Docker backend
 * and the memory backend run the same code. Each replica is a container
 * named <prefix><id>-<index> (with -g<generation> once updates made it),
 * labelled with its kind, id, namespace, index, the spec digest, the wanted
 * replica count and its generation; an updated set also has one record, a
 * container that never runs and holds the set's state in its labels. The
 * set is found again through those labels. The contracts are backend_ops'
 * replica_* ones. */
#ifndef BERTH_DOCKER_REPLICAS_H
#define BERTH_DOCKER_REPLICAS_H

#include "berth/backend.h"

/* `containers` is borrowed: the backend whose container operations make the
 * replicas (its replica operations are not used). */
int docker_replicas_apply(const struct backend *containers, const struct backend_replica_spec *spec,
                          int64_t deadline, struct backend_apply_result *out,
                          struct berth_err *err) BERTH_MUST_USE;
int docker_replicas_get(const struct backend *containers, enum object_kind kind, const char *ns,
                        const char *id, int64_t deadline, struct backend_replica_set *out,
                        struct berth_err *err) BERTH_MUST_USE;
int docker_replicas_list(const struct backend *containers, enum object_kind kind, const char *id,
                         int64_t deadline, struct backend_replica_set_list *out,
                         struct berth_err *err) BERTH_MUST_USE;
int docker_replicas_delete(const struct backend *containers, enum object_kind kind, const char *ns,
                           const char *id, int64_t deadline, size_t *removed,
                           struct berth_err *err) BERTH_MUST_USE;
int docker_replicas_update(const struct backend *containers,
                           const struct backend_replica_spec *spec,
                           const struct backend_update_opts *opts, int64_t deadline,
                           struct backend_update_result *out, struct berth_err *err) BERTH_MUST_USE;
int docker_replicas_recover(const struct backend *containers, enum object_kind kind, const char *ns,
                            const char *id, int64_t deadline, int *acted,
                            struct berth_err *err) BERTH_MUST_USE;

#endif
