/* The Swarm backend: VMs are containers of the Engine berthd talks to,
 * exactly as with the Docker backend (its container operations, on the same
 * socket), while each gateway and deployment is one Swarm service of N
 * replicas on a Swarm that Engine manages. Instances are the service's
 * tasks: index = slot - 1, state from the task's status, address from the
 * task's published port on its node's address (the node's label
 * berth.advertise, else the address it joined the swarm with). Updates are
 * the Swarm's own rolling updates (start-first, rolled back on failure),
 * which berthd waits for. Only services labelled berth.managed=true are
 * ever read or touched. */
#ifndef BERTH_SWARM_BACKEND_H
#define BERTH_SWARM_BACKEND_H

#include "berth/backend.h"
#include "berth/docker_backend.h"
#include "berth/err.h"

/* How a service publishes its replicas' ports. */
enum swarm_publish_mode {
    /* On the node that runs each task, at an Engine-chosen port: every
     * instance has an address of its own. */
    SWARM_PUBLISH_HOST = 0,
    /* Through the routing mesh: one port of the swarm's range, answering on
     * every node and balanced over the tasks. */
    SWARM_PUBLISH_INGRESS,
};

/* "host" or "ingress" into *out: 0, or -1 for any other word. */
int swarm_publish_mode_parse(const char *text, enum swarm_publish_mode *out) BERTH_MUST_USE;

struct swarm_backend_config {
    enum swarm_publish_mode publish_mode;
};

/* Fill *out with the Swarm backend (released with backend_destroy()). The
 * Docker config is the Docker backend's: the socket must be a Swarm
 * manager's. Asks the Engine once (GET /info, briefly): one that answers
 * but is no active manager of a swarm is failed_precondition saying so;
 * one that does not answer yet is reached on a later call. scfg NULL: the
 * defaults. */
int swarm_backend_new(const struct docker_backend_config *cfg,
                      const struct swarm_backend_config *scfg, struct backend *out,
                      struct berth_err *err) BERTH_MUST_USE;

/* Read the registry credentials file again (SIGHUP), for the pulls on this
 * node and the credential sent with each service. Not a Swarm backend, or
 * no file: nothing, 0. On failure the credentials read before stay. */
int swarm_backend_reload_auth(const struct backend *b, const char *path, int optional,
                              struct berth_err *err) BERTH_MUST_USE;

#endif
