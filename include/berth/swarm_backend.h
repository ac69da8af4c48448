/* The Swarm backend: VMs are containers of the Engine berthd talks to,
 * exactly as with the Docker backend (its container operations, on the same
 * socket), while each gateway and deployment is one Swarm service of N
 * replicas on a Swarm that Engine manages. Instances are the service's
 * tasks: index = slot - 1, state from the task's status, address from the
 * task's host-mode published port on its node's address. Only services
 * labelled berth.managed=true are ever read or touched. */
#ifndef BERTH_SWARM_BACKEND_H
#define BERTH_SWARM_BACKEND_H

#include "berth/backend.h"
#include "berth/docker_backend.h"
#include "berth/err.h"

/* Fill *out with the Swarm backend (released with backend_destroy()). The
 * config is the Docker backend's: the socket must be a Swarm manager's.
 * Does no I/O. */
int swarm_backend_new(const struct docker_backend_config *cfg, struct backend *out,
                      struct berth_err *err) BERTH_MUST_USE;

#endif
