/* systemd's watchdog, fed only while the daemon really serves: each beat
 * asks the daemon's own /healthz over its listening address, on a new
 * connection, and sends WATCHDOG=1 when that answers 200 in time, or when
 * it could not get in because every connection slot is taken (a busy
 * daemon is not a hung one: restarting it would turn a full server into a
 * down one). A daemon that no longer serves HTTP stops the heartbeat, and
 * systemd restarts it after WatchdogSec. */
#ifndef BERTH_WATCHDOG_H
#define BERTH_WATCHDOG_H

#include "berth/daemon.h"
#include "berth/err.h"

/* Read-only for callers once watchdog_init filled it. */
struct watchdog {
    int enabled;   /* systemd asked for a heartbeat (WATCHDOG_USEC) */
    long tick_ms;  /* wait between beats: at most half the watchdog period */
    long probe_ms; /* a /healthz answer slower than this fails the beat */
    int healthy;   /* private: the last beat's outcome, for its log line */
};

void watchdog_init(struct watchdog *w);
/* One beat for daemon d (nothing when disabled). */
void watchdog_beat(struct watchdog *w, const struct berth_daemon *d);
/* GET /healthz at `address` (as daemon_address() spells it: HOST:PORT,
 * [V6]:PORT or unix:/path; a wildcard host is asked on loopback): 0 when
 * it answers 200 within timeout_ms. */
int watchdog_probe(const char *address, long timeout_ms, struct berth_err *err) BERTH_MUST_USE;

#endif
