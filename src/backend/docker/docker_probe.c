/* The Docker backend's probe: a thread that pings the Engine and, while it
 * does not answer, makes every call fail fast instead of hanging on a socket
 * that accepts connections but never replies (a frozen or wedged Engine). */
#include <stdlib.h>

#include "berth/clock.h"
#include "berth/docker_backend.h"
#include "berth/lock.h"
#include "berth/log.h"
#include "docker_internal.h"

static void *docker_probe_main(void *arg);
static int docker_probe_wait(struct docker_ctx *c);

int docker_probe_start(struct docker_ctx *c, struct berth_err *err)
{
    if (c->probe_interval_ms <= 0)
        return 0;
    lock_init(&c->probe_lock);
    if (pthread_cond_init(&c->probe_wake, NULL) != 0) {
        lock_destroy(&c->probe_lock);
        return berth_err_set(err, BERTH_INTERNAL, "docker probe: condition variable");
    }
    if (pthread_create(&c->prober, NULL, docker_probe_main, c) != 0) {
        pthread_cond_destroy(&c->probe_wake);
        lock_destroy(&c->probe_lock);
        return berth_err_set(err, BERTH_INTERNAL, "docker probe: cannot start its thread");
    }
    c->prober_started = 1;
    return 0;
}

void docker_probe_stop(struct docker_ctx *c)
{
    if (!c->prober_started)
        return;
    lock_take(&c->probe_lock);
    c->probe_stop = 1;
    pthread_cond_broadcast(&c->probe_wake);
    lock_give(&c->probe_lock);
    pthread_join(c->prober, NULL);
    pthread_cond_destroy(&c->probe_wake);
    lock_destroy(&c->probe_lock);
    c->prober_started = 0;
}

/* One ping per interval. A single miss may be a busy moment; several in a
 * row mean the Engine is not answering. The first answer ends it. */
static void *docker_probe_main(void *arg)
{
    struct docker_ctx *c = arg;
    int misses = 0, marked = 0;

    do {
        struct berth_err err;

        berth_err_clear(&err);
        if (engine_canceled(c->engine))
            break; /* shutting down: a refused ping says nothing of the Engine */
        if (engine_probe(c->engine, berth_now_ms() + DOCKER_BACKEND_PROBE_TIMEOUT_MS, &err) == 0) {
            misses = 0;
            if (marked) {
                engine_set_unresponsive(c->engine, 0);
                marked = 0;
                log_info("engine.answering", "reason=\"a ping was answered\"");
            }
        } else if (engine_canceled(c->engine)) {
            break;
        } else if (++misses >= DOCKER_BACKEND_MISSES && !marked) {
            struct log_quoted lq;
            engine_set_unresponsive(c->engine, 1);
            marked = 1;
            log_warn("engine.unresponsive", "misses=%d error=%s", misses, log_quote(&lq, err.msg));
        }
    } while (docker_probe_wait(c) == 0);
    return NULL;
}

/* Sleep one interval; -1 once asked to stop. */
static int docker_probe_wait(struct docker_ctx *c)
{
    int64_t until = berth_now_ms() + c->probe_interval_ms;
    int stop;

    lock_take(&c->probe_lock);
    while (!c->probe_stop && lock_wait_until(&c->probe_wake, &c->probe_lock, until) == 0)
        ;
    stop = c->probe_stop;
    lock_give(&c->probe_lock);
    return stop ? -1 : 0;
}
