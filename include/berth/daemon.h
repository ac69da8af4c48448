/* The daemon: every module, wired together in start order, and the HTTP
 * routes that are not Connect procedures (/healthz, /readyz, /metrics). */
#ifndef BERTH_DAEMON_H
#define BERTH_DAEMON_H

#include "berth/config.h"
#include "berth/err.h"

struct berth_daemon;

/* Start every module in order: backend, registry, services, RPC table, HTTP
 * listener, Engine watcher. cfg is borrowed and must outlive the daemon. */
int daemon_start(const struct berth_config *cfg, struct berth_daemon **out,
                 struct berth_err *err) BERTH_MUST_USE;
/* The address the API listens on (port resolved). */
const char *daemon_address(const struct berth_daemon *d);
/* 1 while every connection slot of the API is taken. */
int daemon_saturated(const struct berth_daemon *d);
/* Re-read what SIGHUP re-reads: the registry credentials file. On failure
 * (logged by the caller) what was read before stays. */
int daemon_reload(struct berth_daemon *d, struct berth_err *err) BERTH_MUST_USE;
/* Stop accepting, let requests under way finish (bounded by the configured
 * grace), then stop every module in reverse order and free. */
void daemon_stop(struct berth_daemon *d);

#endif
