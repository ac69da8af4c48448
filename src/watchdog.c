/* systemd's watchdog, fed only while the daemon serves (berth/watchdog.h). */
#include "berth/watchdog.h"

#include <stdint.h>
#include <string.h>

#include <curl/curl.h>
#include <systemd/sd-daemon.h>

#include "berth/buf.h"
#include "berth/log.h"

/* Wait between heartbeats; at most half the watchdog period. */
#define WATCHDOG_TICK_MS 1000
/* A /healthz probe that takes longer fails; at most half a tick. */
#define WATCHDOG_PROBE_TIMEOUT_MS 500

static size_t watchdog_discard(char *data, size_t size, size_t nmemb, void *userp);

void watchdog_init(struct watchdog *w)
{
    uint64_t usec = 0;
    long half;

    w->enabled = 0;
    w->healthy = 1;
    w->tick_ms = WATCHDOG_TICK_MS;
    w->probe_ms = WATCHDOG_PROBE_TIMEOUT_MS;
    if (sd_watchdog_enabled(0, &usec) <= 0)
        return;
    half = usec / 2000 < WATCHDOG_TICK_MS ? (long)(usec / 2000) : WATCHDOG_TICK_MS;
    if (half < 10)
        half = 10;
    w->tick_ms = half;
    if (w->probe_ms > half / 2)
        w->probe_ms = half / 2 > 1 ? half / 2 : 1;
    w->enabled = 1;
}

void watchdog_beat(struct watchdog *w, const struct berth_daemon *d)
{
    struct berth_err err;
    int ok;

    if (!w->enabled)
        return;
    berth_err_clear(&err);
    ok = watchdog_probe(daemon_address(d), w->probe_ms, &err) == 0 || daemon_saturated(d);
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

static size_t watchdog_discard(char *data, size_t size, size_t nmemb, void *userp)
{
    (void)data;
    (void)userp;
    return size * nmemb;
}

int watchdog_probe(const char *address, long timeout_ms, struct berth_err *err)
{
    struct buf url;
    CURL *h = NULL;
    char errbuf[CURL_ERROR_SIZE];
    long status = 0;
    int bad = 0, rc = -1;
    CURLcode crc;

    buf_init(&url, 1024);
    errbuf[0] = '\0';
    h = curl_easy_init();
    if (h == NULL) {
        berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    if (strncmp(address, "unix:", 5) == 0) {
        bad |= curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, address + 5) != CURLE_OK;
        bad |= buf_appends(&url, "http://localhost/healthz", err) < 0;
    } else if (strncmp(address, "0.0.0.0:", 8) == 0) {
        bad |= buf_printf(&url, err, "http://127.0.0.1:%s/healthz", address + 8) < 0;
    } else if (strncmp(address, "[::]:", 5) == 0) {
        bad |= buf_printf(&url, err, "http://[::1]:%s/healthz", address + 5) < 0;
    } else {
        bad |= buf_printf(&url, err, "http://%s/healthz", address) < 0;
    }
    bad |= curl_easy_setopt(h, CURLOPT_URL, url.data) != CURLE_OK;
    bad |= curl_easy_setopt(h, CURLOPT_PROXY, "") != CURLE_OK;
    bad |= curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms) != CURLE_OK;
    bad |= curl_easy_setopt(h, CURLOPT_USERAGENT, "berthd-watchdog") != CURLE_OK;
    bad |= curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf) != CURLE_OK;
    bad |= curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, watchdog_discard) != CURLE_OK;
    if (bad) {
        berth_err_set(err, BERTH_INTERNAL, "cannot set up the /healthz probe");
        goto out;
    }
    crc = curl_easy_perform(h);
    if (crc != CURLE_OK) {
        berth_err_set(err, BERTH_UNAVAILABLE, "/healthz: %s",
                      errbuf[0] ? errbuf : curl_easy_strerror(crc));
        goto out;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200) {
        berth_err_set(err, BERTH_UNAVAILABLE, "/healthz answered %ld", status);
        goto out;
    }
    rc = 0;
out:
    if (h != NULL)
        curl_easy_cleanup(h);
    buf_release(&url);
    return rc;
}
