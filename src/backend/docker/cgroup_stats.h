/* A container's resource counters read straight from the kernel: its
 * cgroup files (v1 cpuacct, memory, blkio and pids, or the v2 unified
 * tree, as the cgroupfs or the systemd driver lays them out) and the
 * network counters of its init process's /proc/<pid>/net/dev, turned into
 * struct backend_stats the way the Engine's stats API and `docker stats`
 * read the same files. No Engine call: the Docker backend's sweep uses it
 * for the containers whose files this host shows (docker_stats.c).
 *
 * Files are kept open between reads while the fd budget allows it (a
 * cgroup file of a removed cgroup fails with ENODEV, so a stale one is
 * never read as fresh); past the budget each read opens and closes them.
 * Not thread-safe: one reader per sweep thread. Both roots are parameters
 * so tests run the reader on trees they make. */
#ifndef BERTH_CGROUP_STATS_H
#define BERTH_CGROUP_STATS_H

#include <stddef.h>

#include "berth/backend.h"
#include "berth/err.h"

enum cgroup_stats_driver {
    CGROUP_STATS_DRIVER_UNKNOWN = 0, /* try cgroupfs, then systemd */
    CGROUP_STATS_DRIVER_CGROUPFS,
    CGROUP_STATS_DRIVER_SYSTEMD,
};

/* Where the Engine puts its containers' cgroups (its /info: CgroupDriver,
 * CgroupVersion; its cgroup parent). Borrowed for the call it is given to. */
struct cgroup_stats_layout {
    int version; /* 1 or 2; 0: as the cgroup root shows (cgroup.controllers: 2) */
    enum cgroup_stats_driver driver;
    /* NULL or "": the driver's default, "/docker" (cgroupfs) or
     * "system.slice" (systemd) */
    const char *parent;
};

struct cgroup_stats;     /* the reader: roots, the host's counters, the fd budget */
struct cgroup_stats_ctr; /* one container's files */

/* A reader of the trees at `cgroup_root` (e.g. "/sys/fs/cgroup") and
 * `proc_root` (e.g. "/proc"), copied; at most `max_open_fds` files kept
 * open over all its containers. Reads the host's memory size once. */
int cgroup_stats_new(const char *cgroup_root, const char *proc_root, size_t max_open_fds,
                     struct cgroup_stats **out, struct berth_err *err) BERTH_MUST_USE;
/* Close everything of the reader's own; each container must have been
 * closed first. NULL: nothing. */
void cgroup_stats_free(struct cgroup_stats *cs);

/* The host's CPU counters now, as the Engine reads them: /proc/stat's
 * first line (user..softirq) in ns, and its cpuN lines as online CPUs. */
int cgroup_stats_host(struct cgroup_stats *cs, struct backend_cpu *out,
                      struct berth_err *err) BERTH_MUST_USE;

/* Find and open the files of container `id` (64 hex digits): its cgroup
 * directories from the layout (or, when that finds none and pid > 0, from
 * /proc/<pid>/cgroup, which must name the id) and the network counters of
 * pid (<= 0: the container's init, found among its cgroup's processes).
 * not_found: no cgroup directory for the id (not running here, another
 * layout or host); failed_precondition: no process in it; unavailable: a
 * file it needs is missing or unreadable; invalid_argument: not an id.
 * On success *out is the caller's, for cgroup_stats_close(). */
int cgroup_stats_open(struct cgroup_stats *cs, const struct cgroup_stats_layout *layout,
                      const char *id, int pid, struct cgroup_stats_ctr **out,
                      struct berth_err *err) BERTH_MUST_USE;
/* One sample of an open container into *out, against the host counters
 * `host` (cgroup_stats_host of the same pass), stamped now; precpu is left
 * zero. A file that cannot be read or parsed: -1, not_found when the
 * cgroup went (the container stopped or restarted: open it again),
 * unavailable otherwise; *out is set only on success. */
int cgroup_stats_read(struct cgroup_stats *cs, struct cgroup_stats_ctr *c,
                      const struct backend_cpu *host, struct backend_stats *out,
                      struct berth_err *err) BERTH_MUST_USE;
/* Close a container's files and free it. NULL: nothing. */
void cgroup_stats_close(struct cgroup_stats *cs, struct cgroup_stats_ctr *c);

/* Files kept open now, over all containers (for tests and the budget). */
size_t cgroup_stats_open_fds(const struct cgroup_stats *cs);
/* The cgroup version of container c's files: 1 or 2. */
int cgroup_stats_ctr_version(const struct cgroup_stats_ctr *c);
/* The pid whose network counters c reads. */
int cgroup_stats_ctr_pid(const struct cgroup_stats_ctr *c);

#endif
