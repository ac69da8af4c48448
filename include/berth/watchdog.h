/* systemd's watchdog, fed only while the daemon really serves: each beat
 * asks the daemon itself (daemon_alive: the VM registry's lock can be
 * taken, no HTTP event thread is stuck in a request) and sends WATCHDOG=1
 * when it is. No request goes over the listener, so a TLS listener, client
 * certificates, a full server or the per-address connection limit never
 * make a live daemon look hung. A daemon stuck behind a lock or in a
 * request stops the heartbeat, and systemd restarts it after WatchdogSec. */
#ifndef BERTH_WATCHDOG_H
#define BERTH_WATCHDOG_H

#include "berth/daemon.h"
#include "berth/err.h"

/* Read-only for callers once watchdog_init filled it. */
struct watchdog {
    int enabled;   /* systemd asked for a heartbeat (WATCHDOG_USEC) */
    long tick_ms;  /* wait between beats: at most half the watchdog period */
    long stuck_ms; /* a lock held or a request handled longer fails the beat */
    int healthy;   /* private: the last beat's outcome, for its log line */
};

void watchdog_init(struct watchdog *w);
/* One beat for daemon d (nothing when disabled). */
void watchdog_beat(struct watchdog *w, const struct berth_daemon *d);

#endif
