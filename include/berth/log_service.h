/* berth.v1.LogService: GetLogs, what a VM or the replicas of a gateway or
 * deployment printed, read from the backend's logs operation and merged in
 * time order; StreamLogs, the same and then each new line as it is printed,
 * one follower thread (one Engine connection) per container, until the
 * client leaves, the deadline passes or the outputs end. */
#ifndef BERTH_LOG_SERVICE_H
#define BERTH_LOG_SERVICE_H

#include <stddef.h>

#include "berth/backend.h"
#include "berth/router.h"
#include "berth/vm_registry.h"

#define LOG_SERVICE_DEFAULT_TAIL 100
#define LOG_SERVICE_MAX_TAIL 10000

struct log_service_config {
    size_t max_bytes; /* bytes of lines one answer holds at most (--max-log-bytes) */
};

struct log_service;

/* backend and registry are borrowed and must outlive the service. NULL
 * when out of memory. */
struct log_service *log_service_new(const struct log_service_config *cfg, struct backend *backend,
                                    struct vm_registry *registry);
void log_service_free(struct log_service *s); /* NULL does nothing */

/* Put the GetLogs handler into the RPC table. */
int log_service_register(struct log_service *s, struct router *r) BERTH_MUST_USE;

#endif
