/* An in-memory backend: containers that exist only in this process, with
 * the Engine's state rules. For unit tests of the services and for demos
 * (--backend memory). */
#ifndef BERTH_MEMORY_BACKEND_H
#define BERTH_MEMORY_BACKEND_H

#include "berth/backend.h"

int memory_backend_new(struct backend *out, struct berth_err *err) BERTH_MUST_USE;

/* Test hooks. Make the next `n` calls of operation `op` ("create", "start",
 * ...) fail with `code`, in place of whatever was armed before. */
void memory_backend_fail_next(struct backend *b, const char *op, int n, enum berth_code code);
/* Beside what is armed already (up to four operations): let `skip` calls of
 * `op` succeed, then fail the `n` after them with `code`. -1 when four
 * other operations are armed. */
int memory_backend_fail_later(struct backend *b, const char *op, int skip, int n,
                              enum berth_code code);
/* Containers of `image` (NULL or "": none) exit with exit_code right after
 * each start, as an image whose command fails does. */
void memory_backend_crash_image(struct backend *b, const char *image, int exit_code);
/* Number of containers that exist. */
size_t memory_backend_count(struct backend *b);
/* Change a container's state as if it happened behind berthd's back. */
int memory_backend_set_state(struct backend *b, const char *id, enum backend_state state);
/* The container's next sample (copied; source becomes BACKEND_STATS_FAKE):
 * the next sweep gives it once, while the container runs. -1 when no such
 * container. */
int memory_backend_set_stats(struct backend *b, const char *id, const struct backend_stats *st);
/* The lines container `id` has printed (copied, oldest first; each line
 * made valid as the backend's lines are): what logs then reads. -1 when no
 * such container or out of memory. */
int memory_backend_set_logs(struct backend *b, const char *id,
                            const struct backend_log_entry *entries, size_t n);
/* A container's health, as if its engine's check said so. -1 when no such
 * container. */
int memory_backend_set_health(struct backend *b, const char *id, enum backend_health health);
/* 1 when a volume of that name exists (a create mounting it made it). */
int memory_backend_has_volume(struct backend *b, const char *name);
/* Stats sweeps made so far. */
uint64_t memory_backend_sweeps(struct backend *b);

#endif
