/* systemd's watchdog, fed only while the daemon serves (berth/watchdog.h). */
#include "berth/watchdog.h"

#include <stdint.h>

#include <systemd/sd-daemon.h>

#include "berth/log.h"

/* Wait between heartbeats; at most half the watchdog period. */
#define WATCHDOG_TICK_MS 1000
/* A lock held or a request handled longer than this fails the beat; at
 * most half a tick. */
#define WATCHDOG_STUCK_MS 500

void watchdog_init(struct watchdog *w)
{
    uint64_t usec = 0;
    long half;

    w->enabled = 0;
    w->healthy = 1;
    w->tick_ms = WATCHDOG_TICK_MS;
    w->stuck_ms = WATCHDOG_STUCK_MS;
    if (sd_watchdog_enabled(0, &usec) <= 0)
        return;
    half = usec / 2000 < WATCHDOG_TICK_MS ? (long)(usec / 2000) : WATCHDOG_TICK_MS;
    if (half < 10)
        half = 10;
    w->tick_ms = half;
    if (w->stuck_ms > half / 2)
        w->stuck_ms = half / 2 > 1 ? half / 2 : 1;
    w->enabled = 1;
}

void watchdog_beat(struct watchdog *w, const struct berth_daemon *d)
{
    struct berth_err err;
    int ok;

    if (!w->enabled)
        return;
    berth_err_clear(&err);
    ok = daemon_alive(d, w->stuck_ms, &err) == 0;
    if (ok)
        sd_notify(0, "WATCHDOG=1");
    if (ok == w->healthy)
        return;
    if (ok) {
        log_info("watchdog.healthy", "code=ok");
    } else {
        struct log_quoted lq;
        log_warn("watchdog.unhealthy", "code=%s error=%s", berth_code_name(err.code),
                 log_quote(&lq, err.msg));
    }
    w->healthy = ok;
}
