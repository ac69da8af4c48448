/* berthd: with a client subcommand (berth/cli.h), a client of a running
 * berthd; otherwise read the configuration, start the daemon, wait for
 * SIGTERM or SIGINT (feeding systemd's watchdog meanwhile, berth/watchdog.h;
 * a SIGHUP reads the configuration again and hands it to daemon_reload),
 * stop it. Nothing else happens here. */
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "berth/build_info.h"
#include "berth/buf.h"
#include "berth/cli.h"
#include "berth/config.h"
#include "berth/daemon.h"
#include "berth/log.h"
#include "berth/watchdog.h"

#define MAIN_MMAP_THRESHOLD (256 * 1024)

/* The start-up line: version, commit and every option's effective value as
 * a field of its own (the options hold file paths, never secrets). */
static void log_starting(const struct berth_config *cfg)
{
    char *text = NULL, *line, *next;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    struct buf fields;

    buf_init(&fields, 3500);
    if (f != NULL) {
        config_print(cfg, f);
        fclose(f);
    }
    for (line = text; line != NULL && *line != '\0'; line = next) {
        char *eq = strchr(line, '=');
        struct log_quoted lq;

        next = strchr(line, '\n');
        if (next != NULL)
            *next++ = '\0';
        if (eq == NULL)
            continue;
        *eq = '\0';
        if (buf_printf(&fields, NULL, " %s=%s", line, log_quote(&lq, eq + 1)) < 0)
            break;
    }
    log_info("daemon.starting", "version=%s commit=%s built=%s pid=%ld%s", BERTH_VERSION,
             BERTH_COMMIT, BERTH_BUILD_DATE, (long)getpid(), fields.data ? fields.data : "");
    buf_release(&fields);
    free(text);
}

/* SIGHUP: the configuration read again from the same sources; when it does
 * not load, the one in use stays (its files are still read again). */
static void reload(struct berth_daemon *d, int argc, char **argv)
{
    struct berth_config fresh;
    struct berth_err err;
    struct log_quoted lq;

    log_info("daemon.reload", "signal=%d", SIGHUP);
    berth_err_clear(&err);
    if (config_reread(&fresh, argc, argv, &err) < 0) {
        log_error("config.reload", "code=%s error=%s reason=\"keeping the configuration in use\"",
                  berth_code_name(err.code), log_quote(&lq, err.msg));
        daemon_reload(d, NULL);
        return;
    }
    daemon_reload(d, &fresh);
    config_release(&fresh);
}

int main(int argc, char **argv)
{
    struct berth_config cfg;
    struct berth_daemon *d = NULL;
    struct berth_err err;
    struct watchdog wd;
    enum config_action action;
    sigset_t sigs;
    int sig = 0;

    /* `berthd vm ls`, ...: a client of a running berthd. */
    if (argc > 1 && cli_is_command(argv[1]))
        return cli_main(argc - 1, argv + 1);
    /* Dozens of worker and event threads would each get a malloc arena of
     * their own, and every arena keeps the holes of what it freed: a VM's
     * records, made and copied on whichever thread ran the call, would be
     * spread over all of them (twice the memory a VM needs, measured by
     * tests/bench/rss). Two arenas, one a core on the machine kind berthd
     * is built for, keep the threads from queueing on one lock. The
     * environment's MALLOC_ARENA_MAX, when set, is the operator's word. */
    if (getenv("MALLOC_ARENA_MAX") == NULL)
        (void)mallopt(M_ARENA_MAX, 2);
    berth_err_clear(&err);
    if (config_load(&cfg, argc, argv, stdout, &action, &err) < 0) {
        fprintf(stderr, "berthd: %s\n", err.msg);
        return 2;
    }
    if (action == CONFIG_EXIT_OK) {
        config_release(&cfg);
        return 0;
    }
    log_set_level(cfg.log_level);
    {
        enum log_format lf = LOG_FORMAT_LOGFMT;
        enum log_target lt = LOG_TARGET_AUTO;
        /* Validated at load: a failed parse keeps the defaults. */
        (void)log_format_parse(cfg.log_format, &lf);
        (void)log_target_parse(cfg.log_target, &lt);
        log_configure(lf, lt);
    }
    log_starting(&cfg);
    /* Request bodies of megabytes come and go: mapped on their own, their
     * memory goes back to the system when they are freed. Set once, the
     * threshold stays (glibc would otherwise raise it after the first such
     * free and keep them in its heaps, where they pile up). */
    (void)mallopt(M_MMAP_THRESHOLD, MAIN_MMAP_THRESHOLD);

    /* Block the stop signals in every thread; this one waits for them. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (daemon_start(&cfg, &d, &err) < 0) {
        struct log_quoted lq;
        log_error("daemon.start", "code=%s error=%s", berth_code_name(err.code),
                  log_quote(&lq, err.msg));
        config_release(&cfg);
        return 1;
    }
    watchdog_init(&wd);
    for (;;) {
        struct timespec tick = {wd.tick_ms / 1000, (wd.tick_ms % 1000) * 1000000L};

        sig = sigtimedwait(&sigs, NULL, &tick);
        if (sig == SIGHUP) {
            reload(d, argc, argv);
            continue;
        }
        if (sig > 0)
            break;
        watchdog_beat(&wd, d);
    }
    log_info("daemon.stopping", "signal=%d", sig);
    daemon_stop(d);
    log_info("daemon.stopped", "code=ok");
    config_release(&cfg);
    return 0;
}
