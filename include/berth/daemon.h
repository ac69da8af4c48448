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
/* SIGHUP. `fresh` is the configuration read again (NULL when it did not
 * load): the options that can change at run time and differ from those in
 * effect are applied (log level and format, quotas, the token, TLS and
 * registry credential files while tokens and TLS stay on or off), the
 * others are logged as needing a restart. The token file, the TLS
 * certificate and key and the registry credentials are read again either
 * way. Logs the names of what changed, never values; what fails to load is
 * a warning and the old stays. fresh is borrowed for the call. */
void daemon_reload(struct berth_daemon *d, const struct berth_config *fresh);
/* Stop accepting, let requests under way finish (bounded by the configured
 * grace), then stop every module in reverse order and free. */
void daemon_stop(struct berth_daemon *d);

#endif
