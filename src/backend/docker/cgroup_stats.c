/* The cgroup reader (see cgroup_stats.h): where a container's cgroup
 * directories are, which files a sample needs in each cgroup version, and
 * the parsers of those files. The rules follow the Engine's own reading
 * (runc's cgroup managers and the daemon's stats collector) so a sample
 * matches what GET /containers/{id}/stats says of the same moment:
 *
 *   CPU      v1 cpuacct.usage (ns); v2 cpu.stat usage_usec
 *   memory   v1 memory.usage_in_bytes minus memory.stat total_inactive_file;
 *            v2 memory.current minus memory.stat inactive_file (docker stats)
 *   limit    memory.limit_in_bytes / memory.max, at most the host's memory,
 *            read when the files are opened
 *   block    v1 blkio.throttle.io_service_bytes / io_serviced (the
 *            _recursive ones when there); v2 io.stat; Read/Write over devices
 *   pids     pids.current
 *   network  /proc/<init pid>/net/dev, every interface but lo
 *   host     /proc/stat: user..softirq of the cpu line, cpuN lines online */
#include "cgroup_stats.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "berth/buf.h"
#include "berth/clock.h"

/* The largest file read: /proc/stat of a machine with thousands of CPUs,
 * or cgroup.procs of a container with many processes. */
#define CG_READ_MAX (1u << 20)
#define CG_READ_FIRST 8192u
/* Paths are ours (roots, a controller, an id); the cap only guards against
 * a root or parent that is absurdly long. */
#define CG_PATH_MAX 4096
/* Processes of a container checked for its init (NSpid ending in 1). */
#define CG_INIT_CANDIDATES 64
/* A container id: 64 lower-case hex digits (the Engine's full ids). */
#define CG_ID_LEN 64

/* The directories of a container: one per v1 controller, one for v2. */
enum cg_dir { CG_DIR_CPU, CG_DIR_MEMORY, CG_DIR_BLKIO, CG_DIR_PIDS, CG_DIR_COUNT };

/* The files of one sample. */
enum cg_file {
    CG_F_CPU,
    CG_F_MEM,
    CG_F_MEMSTAT,
    CG_F_MEMLIMIT,
    CG_F_IO_BYTES,
    CG_F_IO_OPS,
    CG_F_PIDS,
    CG_F_NET, /* /proc/<pid>/net/dev: not in a cgroup directory */
    CG_F_COUNT
};

#define CG_ALT_NONE 0xff /* the file is absent (an optional one) */

struct cg_file_spec {
    enum cg_dir dir;
    const char *name[2]; /* alternatives: the first that opens is read */
    int required;        /* a sample needs it; optional ones read as 0 */
};

/* clang-format off */
static const struct cg_file_spec cg_v1_files[CG_F_NET] = {
    [CG_F_CPU] = {CG_DIR_CPU, {"cpuacct.usage", NULL}, 1},
    [CG_F_MEM] = {CG_DIR_MEMORY, {"memory.usage_in_bytes", NULL}, 1},
    [CG_F_MEMSTAT] = {CG_DIR_MEMORY, {"memory.stat", NULL}, 1},
    [CG_F_MEMLIMIT] = {CG_DIR_MEMORY, {"memory.limit_in_bytes", NULL}, 0},
    [CG_F_IO_BYTES] = {CG_DIR_BLKIO, {"blkio.throttle.io_service_bytes_recursive",
                                      "blkio.throttle.io_service_bytes"}, 0},
    [CG_F_IO_OPS] = {CG_DIR_BLKIO, {"blkio.throttle.io_serviced_recursive",
                                    "blkio.throttle.io_serviced"}, 0},
    [CG_F_PIDS] = {CG_DIR_PIDS, {"pids.current", NULL}, 0},
};
/* v2 has one directory (CG_DIR_CPU names it) and io.stat holds ops too. */
static const struct cg_file_spec cg_v2_files[CG_F_NET] = {
    [CG_F_CPU] = {CG_DIR_CPU, {"cpu.stat", NULL}, 1},
    [CG_F_MEM] = {CG_DIR_CPU, {"memory.current", NULL}, 1},
    [CG_F_MEMSTAT] = {CG_DIR_CPU, {"memory.stat", NULL}, 1},
    [CG_F_MEMLIMIT] = {CG_DIR_CPU, {"memory.max", NULL}, 0},
    [CG_F_IO_BYTES] = {CG_DIR_CPU, {"io.stat", NULL}, 0},
    [CG_F_IO_OPS] = {CG_DIR_CPU, {NULL, NULL}, 0},
    [CG_F_PIDS] = {CG_DIR_CPU, {"pids.current", NULL}, 0},
};
/* clang-format on */

/* The v1 controller a directory belongs to, and the names its hierarchy
 * may be mounted under (cpuacct is often co-mounted with cpu). */
static const char *const cg_v1_mounts[CG_DIR_COUNT][3] = {
    [CG_DIR_CPU] = {"cpuacct", "cpu,cpuacct", "cpuacct,cpu"},
    [CG_DIR_MEMORY] = {"memory", NULL, NULL},
    [CG_DIR_BLKIO] = {"blkio", NULL, NULL},
    [CG_DIR_PIDS] = {"pids", NULL, NULL},
};
static const char *const cg_v1_controllers[CG_DIR_COUNT] = {"cpuacct", "memory", "blkio", "pids"};

struct cgroup_stats {
    char *cgroup_root; /* owned */
    char *proc_root;   /* owned */
    size_t max_fds;    /* kept-open budget over all containers */
    size_t n_fds;      /* kept open now */
    int stat_fd;       /* /proc/stat, kept open; -1 until first read */
    uint64_t ns_per_tick;
    uint64_t mem_total; /* bytes of /proc/meminfo MemTotal; 0: unknown */
    char *rbuf;         /* owned: the text of the file read last */
    size_t rcap;
    struct buf path; /* scratch for building paths */
};

struct cgroup_stats_ctr {
    int version;
    int pid;
    char *dir[CG_DIR_COUNT];       /* owned; NULL when absent (v2: only CG_DIR_CPU) */
    int fd[CG_F_COUNT];            /* -1: not kept open (absent, or past the budget) */
    unsigned char alt[CG_F_COUNT]; /* which name of the spec; CG_ALT_NONE: absent */
    size_t kept;                   /* fds of ours counted in the reader's n_fds */
    int64_t limit;                 /* the memory limit read at open; 0: none known */
};

static const struct cg_file_spec *cg_spec(int version, enum cg_file f);
static int cg_path(struct cgroup_stats *cs, const struct cgroup_stats_ctr *c, enum cg_file f,
                   unsigned alt);
static int cg_read_fd(struct cgroup_stats *cs, int fd, size_t *len);
static int cg_read_path(struct cgroup_stats *cs, const char *path, size_t *len);
static int cg_read_file(struct cgroup_stats *cs, struct cgroup_stats_ctr *c, enum cg_file f,
                        const char **text, struct berth_err *err);
static int cg_is_dir(const char *path);
static int cg_valid_id(const char *id);
static int cg_rel_path(const struct cgroup_stats_layout *l, enum cgroup_stats_driver driver,
                       const char *id, struct buf *out);
static int cg_slice_path(const char *slice, struct buf *out);
static int cg_find_dirs(struct cgroup_stats *cs, struct cgroup_stats_ctr *c,
                        const struct cgroup_stats_layout *l, const char *id);
static int cg_dirs_from_rel(struct cgroup_stats *cs, struct cgroup_stats_ctr *c, const char *rel);
static int cg_names_id(const char *path, const char *id);
static int cg_has_controller(const char *ctrls, size_t n, const char *name);
static int cg_v1_dir_at(struct cgroup_stats *cs, struct cgroup_stats_ctr *c, enum cg_dir d,
                        const char *ctrls, size_t n, const char *path);
static int cg_dirs_from_pid(struct cgroup_stats *cs, struct cgroup_stats_ctr *c, int pid,
                            const char *id);
static int cg_find_init(struct cgroup_stats *cs, struct cgroup_stats_ctr *c, int *pid,
                        struct berth_err *err);
static int cg_open_files(struct cgroup_stats *cs, struct cgroup_stats_ctr *c,
                         struct berth_err *err);
static int64_t cg_limit(const struct cgroup_stats *cs, const char *text);
static void cg_free_ctr(struct cgroup_stats_ctr *c);
static const char *cg_u64(const char *s, uint64_t *out);
static const char *cg_skip_space(const char *s);
static const char *cg_next_line(const char *s);
static int cg_text_u64(const char *text, uint64_t *out);
static int cg_key_u64(const char *text, const char *key, uint64_t *out);
static void cg_blkio_v1(const char *text, uint64_t *read, uint64_t *write);
static void cg_io_v2(const char *text, uint64_t *rb, uint64_t *wb, uint64_t *rios, uint64_t *wios);
static int cg_netdev(const char *text, struct backend_stats *out);
static int64_t cg_clamp(uint64_t v);

/* --- the reader ----------------------------------------------------------- */

int cgroup_stats_new(const char *cgroup_root, const char *proc_root, size_t max_open_fds,
                     struct cgroup_stats **out, struct berth_err *err)
{
    struct cgroup_stats *cs = calloc(1, sizeof(*cs));
    long tck = sysconf(_SC_CLK_TCK);
    size_t len;

    if (cs == NULL)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    cs->stat_fd = -1;
    cs->max_fds = max_open_fds;
    cs->ns_per_tick = 1000000000ull / (uint64_t)(tck > 0 ? tck : 100);
    buf_init(&cs->path, CG_PATH_MAX);
    cs->cgroup_root = strdup(cgroup_root);
    cs->proc_root = strdup(proc_root);
    if (cs->cgroup_root == NULL || cs->proc_root == NULL) {
        cgroup_stats_free(cs);
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    }
    /* The Engine caps a container's reported limit at the host's memory. */
    if (buf_printf(&cs->path, NULL, "%s/meminfo", cs->proc_root) == 0 &&
        cg_read_path(cs, cs->path.data, &len) == 0) {
        uint64_t kib;

        if (cg_key_u64(cs->rbuf, "MemTotal:", &kib) == 0 && kib < UINT64_MAX / 1024)
            cs->mem_total = kib * 1024;
    }
    *out = cs;
    return 0;
}

void cgroup_stats_free(struct cgroup_stats *cs)
{
    if (cs == NULL)
        return;
    if (cs->stat_fd >= 0)
        close(cs->stat_fd);
    buf_release(&cs->path);
    free(cs->rbuf);
    free(cs->cgroup_root);
    free(cs->proc_root);
    free(cs);
}

size_t cgroup_stats_open_fds(const struct cgroup_stats *cs)
{
    return cs->n_fds;
}

int cgroup_stats_ctr_version(const struct cgroup_stats_ctr *c)
{
    return c->version;
}

int cgroup_stats_ctr_pid(const struct cgroup_stats_ctr *c)
{
    return c->pid;
}

int cgroup_stats_host(struct cgroup_stats *cs, struct backend_cpu *out, struct berth_err *err)
{
    const char *p;
    uint64_t ticks = 0, online = 0;
    size_t len;
    int rc;

    if (cs->stat_fd < 0) {
        buf_reset(&cs->path);
        if (buf_printf(&cs->path, NULL, "%s/stat", cs->proc_root) < 0)
            return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "path too long");
        cs->stat_fd = open(cs->path.data, O_RDONLY | O_CLOEXEC);
        if (cs->stat_fd < 0)
            return berth_err_set(err, BERTH_UNAVAILABLE, "cannot open '%s': %s", cs->path.data,
                                 strerror(errno));
    }
    rc = cg_read_fd(cs, cs->stat_fd, &len);
    if (rc < 0) {
        int e = errno;

        close(cs->stat_fd);
        cs->stat_fd = -1;
        return berth_err_set(err, BERTH_UNAVAILABLE, "cannot read the host's cpu counters: %s",
                             strerror(e));
    }
    p = cs->rbuf;
    if (strncmp(p, "cpu ", 4) != 0)
        return berth_err_set(err, BERTH_UNAVAILABLE, "the host's cpu counters are unreadable");
    /* user nice system idle iowait irq softirq: what the Engine adds up
     * (steal and guest are left out, as it does). */
    p += 4;
    for (int i = 0; i < 7; i++) {
        uint64_t v;

        p = cg_u64(cg_skip_space(p), &v);
        if (p == NULL || v > UINT64_MAX - ticks)
            return berth_err_set(err, BERTH_UNAVAILABLE, "the host's cpu counters are unreadable");
        ticks += v;
    }
    for (p = cg_next_line(p); p != NULL && strncmp(p, "cpu", 3) == 0; p = cg_next_line(p))
        if (p[3] >= '0' && p[3] <= '9')
            online++;
    memset(out, 0, sizeof(*out));
    out->system_ns = ticks > UINT64_MAX / cs->ns_per_tick ? UINT64_MAX : ticks * cs->ns_per_tick;
    out->online_cpus = online == 0 ? 1 : online > 4096 ? 4096 : (uint32_t)online;
    return 0;
}

/* --- one container ---------------------------------------------------------- */

int cgroup_stats_open(struct cgroup_stats *cs, const struct cgroup_stats_layout *layout,
                      const char *id, int pid, struct cgroup_stats_ctr **out, struct berth_err *err)
{
    struct cgroup_stats_ctr *c;
    int rc = -1, found;

    if (!cg_valid_id(id))
        return berth_err_set(err, BERTH_INVALID_ARGUMENT, "'%.80s' is not a full container id", id);
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    for (int f = 0; f < CG_F_COUNT; f++) {
        c->fd[f] = -1;
        c->alt[f] = CG_ALT_NONE;
    }
    found = cg_find_dirs(cs, c, layout, id);
    if (found < 0) {
        berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    if (!found && pid > 0) {
        found = cg_dirs_from_pid(cs, c, pid, id);
        if (found < 0) {
            berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
            goto out;
        }
    }
    if (!found) {
        berth_err_set(err, BERTH_NOT_FOUND, "no cgroup of container %.12s under '%s'", id,
                      cs->cgroup_root);
        goto out;
    }
    if (pid <= 0 && cg_find_init(cs, c, &pid, err) < 0)
        goto out;
    c->pid = pid;
    if (cg_open_files(cs, c, err) < 0)
        goto out;
    *out = c;
    c = NULL;
    rc = 0;
out:
    if (c != NULL)
        cgroup_stats_close(cs, c);
    return rc;
}

void cgroup_stats_close(struct cgroup_stats *cs, struct cgroup_stats_ctr *c)
{
    if (c == NULL)
        return;
    for (int f = 0; f < CG_F_COUNT; f++)
        if (c->fd[f] >= 0)
            close(c->fd[f]);
    cs->n_fds -= c->kept;
    cg_free_ctr(c);
}

int cgroup_stats_read(struct cgroup_stats *cs, struct cgroup_stats_ctr *c,
                      const struct backend_cpu *host, struct backend_stats *out,
                      struct berth_err *err)
{
    static const char *const reclaim_v1[] = {"total_inactive_file", "inactive_file", NULL};
    static const char *const reclaim_v2[] = {"inactive_file", NULL};
    const char *const *reclaim = c->version == 2 ? reclaim_v2 : reclaim_v1;
    struct backend_stats st;
    const char *text;
    uint64_t v, usage, rb = 0, wb = 0, rios = 0, wios = 0;

    memset(&st, 0, sizeof(st));
    st.source = BACKEND_STATS_CGROUP;
    st.cpu = *host;

    if (cg_read_file(cs, c, CG_F_CPU, &text, err) < 0)
        return -1;
    if (c->version == 2) {
        if (cg_key_u64(text, "usage_usec", &v) < 0 || v > UINT64_MAX / 1000)
            goto bad;
        v *= 1000;
    } else if (cg_text_u64(text, &v) < 0) {
        goto bad;
    }
    st.cpu.total_ns = v;

    if (cg_read_file(cs, c, CG_F_MEM, &text, err) < 0)
        return -1;
    if (cg_text_u64(text, &usage) < 0)
        goto bad;
    if (cg_read_file(cs, c, CG_F_MEMSTAT, &text, err) < 0)
        return -1;
    st.memory_bytes = cg_clamp(usage);
    /* docker stats: usage without the page cache the kernel can drop. */
    for (size_t i = 0; reclaim[i] != NULL; i++) {
        if (cg_key_u64(text, reclaim[i], &v) < 0)
            continue;
        if (v < usage) {
            st.memory_bytes = cg_clamp(usage - v);
            break;
        }
    }

    st.memory_limit_bytes = c->limit;

    if (c->alt[CG_F_IO_BYTES] != CG_ALT_NONE) {
        if (cg_read_file(cs, c, CG_F_IO_BYTES, &text, err) < 0)
            return -1;
        if (c->version == 2)
            cg_io_v2(text, &rb, &wb, &rios, &wios);
        else
            cg_blkio_v1(text, &rb, &wb);
    }
    if (c->version == 1 && c->alt[CG_F_IO_OPS] != CG_ALT_NONE) {
        if (cg_read_file(cs, c, CG_F_IO_OPS, &text, err) < 0)
            return -1;
        cg_blkio_v1(text, &rios, &wios);
    }
    st.read_bytes = cg_clamp(rb);
    st.write_bytes = cg_clamp(wb);
    st.read_ops = cg_clamp(rios);
    st.write_ops = cg_clamp(wios);

    if (c->alt[CG_F_PIDS] != CG_ALT_NONE) {
        if (cg_read_file(cs, c, CG_F_PIDS, &text, err) < 0)
            return -1;
        if (cg_text_u64(text, &v) < 0)
            goto bad;
        st.pids = cg_clamp(v);
    }

    if (cg_read_file(cs, c, CG_F_NET, &text, err) < 0)
        return -1;
    if (cg_netdev(text, &st) < 0)
        goto bad;
    st.sampled_at_unix_ms = berth_unix_ms();
    *out = st;
    return 0;
bad:
    return berth_err_set(err, BERTH_UNAVAILABLE, "unreadable counters in the cgroup of pid %d",
                         c->pid);
}

/* --- finding the directories -------------------------------------------------- */

static int cg_valid_id(const char *id)
{
    size_t n = strlen(id);

    if (n != CG_ID_LEN)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
            return 0;
    return 1;
}

static int cg_is_dir(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The directories from the layout (the driver's default parent unless
 * given; both drivers when it is unknown): 1 found, 0 none, -1 out of
 * memory. */
static int cg_find_dirs(struct cgroup_stats *cs, struct cgroup_stats_ctr *c,
                        const struct cgroup_stats_layout *l, const char *id)
{
    static const enum cgroup_stats_driver both[] = {CGROUP_STATS_DRIVER_CGROUPFS,
                                                    CGROUP_STATS_DRIVER_SYSTEMD};
    struct buf rel;
    int found = 0;

    c->version = l->version;
    if (c->version != 1 && c->version != 2) {
        buf_reset(&cs->path);
        if (buf_printf(&cs->path, NULL, "%s/cgroup.controllers", cs->cgroup_root) < 0)
            return -1;
        c->version = access(cs->path.data, F_OK) == 0 ? 2 : 1;
    }
    buf_init(&rel, CG_PATH_MAX);
    for (size_t i = 0; i < 2 && !found; i++) {
        enum cgroup_stats_driver d = both[i];

        if (l->driver != CGROUP_STATS_DRIVER_UNKNOWN && l->driver != d)
            continue;
        buf_reset(&rel);
        if (cg_rel_path(l, d, id, &rel) < 0) {
            found = -1;
            break;
        }
        found = cg_dirs_from_rel(cs, c, rel.data);
    }
    buf_release(&rel);
    return found;
}

/* The container's path below a hierarchy's root, as the driver names it:
 * cgroupfs <parent>/<id>; systemd <parent slice path>/docker-<id>.scope. */
static int cg_rel_path(const struct cgroup_stats_layout *l, enum cgroup_stats_driver driver,
                       const char *id, struct buf *out)
{
    const char *parent = l->parent != NULL && l->parent[0] != '\0' ? l->parent : NULL;

    if (driver == CGROUP_STATS_DRIVER_SYSTEMD) {
        size_t n;

        parent = parent ? parent : "system.slice";
        n = strlen(parent);
        if (n > 6 && strcmp(parent + n - 6, ".slice") == 0) {
            if (cg_slice_path(parent, out) < 0)
                return -1;
        } else if (buf_appends(out, parent, NULL) < 0) {
            return -1;
        }
        return buf_printf(out, NULL, "/docker-%s.scope", id);
    }
    parent = parent ? parent : "/docker";
    while (*parent == '/')
        parent++;
    if (buf_appends(out, parent, NULL) < 0)
        return -1;
    if (out->len > 0 && out->data[out->len - 1] == '/')
        return buf_appends(out, id, NULL);
    return buf_printf(out, NULL, "%s%s", out->len > 0 ? "/" : "", id);
}

/* systemd's path of a slice: "a-b-c.slice" is a.slice/a-b.slice/a-b-c.slice;
 * "-.slice" is the root. */
static int cg_slice_path(const char *slice, struct buf *out)
{
    size_t n = strlen(slice) - 6; /* without ".slice" */

    if (n == 0 || (n == 1 && slice[0] == '-'))
        return 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && slice[i] != '-')
            continue;
        if (buf_printf(out, NULL, "%s%.*s.slice", out->len > 0 ? "/" : "", (int)i, slice) < 0)
            return -1;
    }
    return 0;
}

/* Fill c->dir from a path below each hierarchy's root: 1 when the CPU and
 * memory directories are there, 0 when not, -1 out of memory. */
static int cg_dirs_from_rel(struct cgroup_stats *cs, struct cgroup_stats_ctr *c, const char *rel)
{
    for (int d = 0; d < CG_DIR_COUNT; d++) {
        free(c->dir[d]);
        c->dir[d] = NULL;
    }
    if (c->version == 2) {
        buf_reset(&cs->path);
        if (buf_printf(&cs->path, NULL, "%s/%s", cs->cgroup_root, rel) < 0)
            return -1;
        if (!cg_is_dir(cs->path.data))
            return 0;
        c->dir[CG_DIR_CPU] = strdup(cs->path.data);
        return c->dir[CG_DIR_CPU] != NULL ? 1 : -1;
    }
    for (int d = 0; d < CG_DIR_COUNT; d++) {
        for (size_t m = 0; m < 3 && cg_v1_mounts[d][m] != NULL && c->dir[d] == NULL; m++) {
            buf_reset(&cs->path);
            if (buf_printf(&cs->path, NULL, "%s/%s/%s", cs->cgroup_root, cg_v1_mounts[d][m], rel) <
                0)
                return -1;
            if (!cg_is_dir(cs->path.data))
                continue;
            c->dir[d] = strdup(cs->path.data);
            if (c->dir[d] == NULL)
                return -1;
        }
    }
    return c->dir[CG_DIR_CPU] != NULL && c->dir[CG_DIR_MEMORY] != NULL;
}

/* 1 when `path` (a cgroup path) ends in a part naming container `id` and
 * stays below the root berthd sees (no "/.." of another namespace). */
static int cg_names_id(const char *path, const char *id)
{
    const char *base = strrchr(path, '/');

    return base != NULL && strstr(base, id) != NULL && strstr(path, "/..") == NULL;
}

/* 1 when the comma list ctrls[0..n) holds `name`. */
static int cg_has_controller(const char *ctrls, size_t n, const char *name)
{
    size_t nl = strlen(name);

    for (const char *p = ctrls; p < ctrls + n;) {
        const char *comma = memchr(p, ',', (size_t)(ctrls + n - p));
        size_t len = comma ? (size_t)(comma - p) : (size_t)(ctrls + n - p);

        if (len == nl && memcmp(p, name, nl) == 0)
            return 1;
        p += len + 1;
    }
    return 0;
}

/* c->dir[d] for v1 controller d at `path` of the hierarchy mounted as
 * ctrls[0..n) ("cpu,cpuacct"), or as the controller's own name (a
 * symlink to it): 0 (set when there), -1 out of memory. */
static int cg_v1_dir_at(struct cgroup_stats *cs, struct cgroup_stats_ctr *c, enum cg_dir d,
                        const char *ctrls, size_t n, const char *path)
{
    buf_reset(&cs->path);
    if (buf_printf(&cs->path, NULL, "%s/%.*s%s", cs->cgroup_root, (int)n, ctrls, path) < 0)
        return -1;
    if (!cg_is_dir(cs->path.data)) {
        buf_reset(&cs->path);
        if (buf_printf(&cs->path, NULL, "%s/%s%s", cs->cgroup_root, cg_v1_controllers[d], path) < 0)
            return -1;
        if (!cg_is_dir(cs->path.data))
            return 0;
    }
    c->dir[d] = strdup(cs->path.data);
    return c->dir[d] != NULL ? 0 : -1;
}

/* Fill c->dir from /proc/<pid>/cgroup ("<id>:<controllers>:<path>" lines;
 * v2's has no controllers), taking only paths that name `id`, so a reused
 * pid never points at another cgroup: 1 found, 0 not, -1 out of memory. */
static int cg_dirs_from_pid(struct cgroup_stats *cs, struct cgroup_stats_ctr *c, int pid,
                            const char *id)
{
    size_t len;
    char *text;
    int rc = 0;

    buf_reset(&cs->path);
    if (buf_printf(&cs->path, NULL, "%s/%d/cgroup", cs->proc_root, pid) < 0)
        return -1;
    if (cg_read_path(cs, cs->path.data, &len) < 0)
        return 0;
    /* The reads below reuse cs->rbuf: work on a copy. */
    text = strdup(cs->rbuf);
    if (text == NULL)
        return -1;
    for (char *line = text, *next; line != NULL && *line != '\0' && rc >= 0; line = next) {
        char *ctrls = strchr(line, ':'), *path, *eol = strchr(line, '\n');
        size_t n;

        next = eol != NULL ? eol + 1 : NULL;
        if (eol != NULL)
            *eol = '\0';
        if (ctrls == NULL || (path = strchr(ctrls + 1, ':')) == NULL)
            continue;
        ctrls++;
        n = (size_t)(path - ctrls);
        path++;
        if (!cg_names_id(path, id))
            continue;
        if (c->version == 2) {
            if (n == 0 && c->dir[CG_DIR_CPU] == NULL)
                rc = cg_dirs_from_rel(cs, c, path + 1);
            continue;
        }
        for (int d = 0; d < CG_DIR_COUNT && rc >= 0; d++)
            if (c->dir[d] == NULL && cg_has_controller(ctrls, n, cg_v1_controllers[d]))
                rc = cg_v1_dir_at(cs, c, (enum cg_dir)d, ctrls, n, path);
    }
    free(text);
    if (rc < 0)
        return -1;
    return c->dir[CG_DIR_CPU] != NULL && (c->version == 2 || c->dir[CG_DIR_MEMORY] != NULL);
}

/* The container's init among the processes of its cgroup: the one whose
 * pid in its own namespace is 1 (NSpid ends in 1), else the lowest. */
static int cg_find_init(struct cgroup_stats *cs, struct cgroup_stats_ctr *c, int *pid,
                        struct berth_err *err)
{
    static const enum cg_dir order[] = {CG_DIR_PIDS, CG_DIR_MEMORY, CG_DIR_CPU};
    int cand[CG_INIT_CANDIDATES];
    size_t n_cand = 0, len;
    uint64_t lowest = 0;
    const char *dir = NULL, *p;

    for (size_t i = 0; i < 3 && dir == NULL; i++)
        dir = c->dir[order[i]];
    buf_reset(&cs->path);
    if (buf_printf(&cs->path, NULL, "%s/cgroup.procs", dir) < 0)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "path too long");
    if (cg_read_path(cs, cs->path.data, &len) < 0)
        return berth_err_set(
            err, errno == ENOENT || errno == ENODEV ? BERTH_NOT_FOUND : BERTH_UNAVAILABLE,
            "cannot read '%s': %s", cs->path.data, strerror(errno));
    for (p = cs->rbuf; p != NULL && *p != '\0'; p = cg_next_line(p)) {
        uint64_t v;

        if (cg_u64(p, &v) == NULL || v == 0 || v > INT32_MAX)
            continue;
        if (lowest == 0 || v < lowest)
            lowest = v;
        if (n_cand < CG_INIT_CANDIDATES)
            cand[n_cand++] = (int)v;
    }
    if (lowest == 0)
        return berth_err_set(err, BERTH_FAILED_PRECONDITION, "no process in the cgroup '%s'", dir);
    for (size_t i = 0; i < n_cand; i++) {
        const char *ns;

        buf_reset(&cs->path);
        if (buf_printf(&cs->path, NULL, "%s/%d/status", cs->proc_root, cand[i]) < 0)
            return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "path too long");
        if (cg_read_path(cs, cs->path.data, &len) < 0)
            continue;
        ns = strstr(cs->rbuf, "\nNSpid:");
        if (ns == NULL)
            continue;
        {
            const char *eol = strchr(ns + 1, '\n');
            size_t n = eol ? (size_t)(eol - ns) : strlen(ns);

            /* The last number of the line: the pid in the innermost namespace. */
            while (n > 0 && (ns[n - 1] == ' ' || ns[n - 1] == '\t'))
                n--;
            if (n >= 2 && ns[n - 1] == '1' && (ns[n - 2] == ' ' || ns[n - 2] == '\t')) {
                *pid = cand[i];
                return 0;
            }
        }
    }
    *pid = (int)lowest;
    return 0;
}

/* --- files -------------------------------------------------------------------- */

static const struct cg_file_spec *cg_spec(int version, enum cg_file f)
{
    return version == 2 ? &cg_v2_files[f] : &cg_v1_files[f];
}

/* The path of file f (name alternative `alt`) into cs->path: 0, or -1. */
static int cg_path(struct cgroup_stats *cs, const struct cgroup_stats_ctr *c, enum cg_file f,
                   unsigned alt)
{
    const struct cg_file_spec *s;

    buf_reset(&cs->path);
    if (f == CG_F_NET)
        return buf_printf(&cs->path, NULL, "%s/%d/net/dev", cs->proc_root, c->pid);
    s = cg_spec(c->version, f);
    if (c->dir[s->dir] == NULL || s->name[alt] == NULL)
        return -1;
    return buf_printf(&cs->path, NULL, "%s/%s", c->dir[s->dir], s->name[alt]);
}

/* Open every file a sample reads, keeping them open while the budget
 * allows: a missing required one is unavailable (another layout, or a
 * cgroup half made), a missing optional one is read as 0. */
static int cg_open_files(struct cgroup_stats *cs, struct cgroup_stats_ctr *c, struct berth_err *err)
{
    int fds[CG_F_COUNT];
    size_t n = 0;

    for (int f = 0; f < CG_F_COUNT; f++) {
        int required = f == CG_F_NET || cg_spec(c->version, (enum cg_file)f)->required;
        unsigned n_alt = f == CG_F_NET ? 1 : 2;

        fds[f] = -1;
        for (unsigned a = 0; a < n_alt && fds[f] < 0; a++) {
            if (cg_path(cs, c, (enum cg_file)f, a) < 0)
                continue;
            fds[f] = open(cs->path.data, O_RDONLY | O_CLOEXEC);
            if (fds[f] >= 0)
                c->alt[f] = (unsigned char)a;
        }
        if (fds[f] < 0 && required) {
            int e = errno;

            if (cg_path(cs, c, (enum cg_file)f, 0) < 0)
                buf_reset(&cs->path);
            for (int g = 0; g < f; g++)
                if (fds[g] >= 0)
                    close(fds[g]);
            return berth_err_set(err, BERTH_UNAVAILABLE, "cannot open '%s': %s",
                                 cs->path.data ? cs->path.data : "", strerror(e));
        }
        n += fds[f] >= 0;
    }
    /* The limit is read once, here: nothing asks for it with every sample,
     * and it changes only when someone updates the container. */
    if (fds[CG_F_MEMLIMIT] >= 0) {
        size_t len;

        if (cg_read_fd(cs, fds[CG_F_MEMLIMIT], &len) == 0)
            c->limit = cg_limit(cs, cs->rbuf);
        close(fds[CG_F_MEMLIMIT]);
        fds[CG_F_MEMLIMIT] = -1;
        c->alt[CG_F_MEMLIMIT] = CG_ALT_NONE;
        n--;
    }
    /* Keep them all or none: past the budget each read opens its files. */
    for (int f = 0; f < CG_F_COUNT; f++) {
        if (cs->n_fds + n <= cs->max_fds)
            c->fd[f] = fds[f];
        else if (fds[f] >= 0)
            close(fds[f]);
    }
    if (cs->n_fds + n <= cs->max_fds) {
        c->kept = n;
        cs->n_fds += n;
        /* Kept files need no paths (a failed read opens the container
         * anew): a thousand containers' directories are worth freeing. */
        for (int d = 0; d < CG_DIR_COUNT; d++) {
            free(c->dir[d]);
            c->dir[d] = NULL;
        }
    }
    return 0;
}

/* The text of file f of c, read now (from the kept fd, else opened for
 * this read) into cs->rbuf; *text points there. A file that went (ENODEV,
 * ENOENT, ESRCH: the cgroup or the process is gone) is not_found. */
static int cg_read_file(struct cgroup_stats *cs, struct cgroup_stats_ctr *c, enum cg_file f,
                        const char **text, struct berth_err *err)
{
    size_t len;
    int rc, e;

    if (c->fd[f] >= 0) {
        rc = cg_read_fd(cs, c->fd[f], &len);
    } else {
        if (c->alt[f] == CG_ALT_NONE || cg_path(cs, c, f, c->alt[f]) < 0)
            return berth_err_set(err, BERTH_UNAVAILABLE, "no such counter file");
        rc = cg_read_path(cs, cs->path.data, &len);
    }
    if (rc == 0) {
        *text = cs->rbuf;
        return 0;
    }
    e = errno;
    return berth_err_set(
        err, e == ENODEV || e == ENOENT || e == ESRCH ? BERTH_NOT_FOUND : BERTH_UNAVAILABLE,
        "cannot read the counters of pid %d: %s", c->pid, strerror(e));
}

/* The whole file behind fd from its start into cs->rbuf, NUL-terminated:
 * 0, or -1 with errno (EFBIG past CG_READ_MAX). */
static int cg_read_fd(struct cgroup_stats *cs, int fd, size_t *len)
{
    size_t have = 0;

    for (;;) {
        ssize_t got;

        if (cs->rcap - have < 2) {
            size_t cap = cs->rcap ? cs->rcap * 2 : CG_READ_FIRST;
            char *grown;

            if (cap > CG_READ_MAX) {
                errno = EFBIG;
                return -1;
            }
            grown = realloc(cs->rbuf, cap);
            if (grown == NULL) {
                errno = ENOMEM;
                return -1;
            }
            cs->rbuf = grown;
            cs->rcap = cap;
        }
        got = pread(fd, cs->rbuf + have, cs->rcap - have - 1, (off_t)have);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            return -1;
        if (got == 0)
            break;
        have += (size_t)got;
    }
    cs->rbuf[have] = '\0';
    *len = have;
    return 0;
}

static int cg_read_path(struct cgroup_stats *cs, const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC), rc, e;

    if (fd < 0)
        return -1;
    rc = cg_read_fd(cs, fd, len);
    e = errno;
    close(fd);
    errno = e;
    return rc;
}

/* A memory limit file's value, at most the host's memory (as the Engine
 * reports it); "max" (v2) is no limit: the host's memory; 0 when unreadable. */
static int64_t cg_limit(const struct cgroup_stats *cs, const char *text)
{
    uint64_t v;

    if (strncmp(text, "max", 3) == 0)
        v = UINT64_MAX;
    else if (cg_text_u64(text, &v) < 0)
        return 0;
    if (cs->mem_total > 0 && v > cs->mem_total)
        v = cs->mem_total;
    return v == UINT64_MAX ? 0 : cg_clamp(v);
}

static void cg_free_ctr(struct cgroup_stats_ctr *c)
{
    for (int d = 0; d < CG_DIR_COUNT; d++)
        free(c->dir[d]);
    free(c);
}

/* --- parsers ------------------------------------------------------------------- */

/* A decimal number at s: the end of it, or NULL when there is none or it
 * does not fit. */
static const char *cg_u64(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    const char *p = s;

    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');

        if (v > (UINT64_MAX - d) / 10)
            return NULL;
        v = v * 10 + d;
    }
    if (p == s)
        return NULL;
    *out = v;
    return p;
}

static const char *cg_skip_space(const char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    return s;
}

/* The start of the next line, or NULL after the last. */
static const char *cg_next_line(const char *s)
{
    const char *nl = strchr(s, '\n');

    return nl != NULL && nl[1] != '\0' ? nl + 1 : NULL;
}

/* A file that holds one number (and a newline). */
static int cg_text_u64(const char *text, uint64_t *out)
{
    const char *end = cg_u64(cg_skip_space(text), out);

    if (end == NULL)
        return -1;
    end = cg_skip_space(end);
    return *end == '\n' || *end == '\0' ? 0 : -1;
}

/* The number after `key` at the start of a line ("key value"): 0, or -1
 * when no line has it. */
static int cg_key_u64(const char *text, const char *key, uint64_t *out)
{
    size_t n = strlen(key);

    for (const char *p = text; p != NULL; p = cg_next_line(p)) {
        if (strncmp(p, key, n) != 0 || (p[n] != ' ' && p[n] != '\t'))
            continue;
        return cg_u64(cg_skip_space(p + n), out) != NULL ? 0 : -1;
    }
    return -1;
}

/* blkio "<major>:<minor> <Op> <value>" lines: Read and Write summed over
 * devices ("Total" and the other ops are left out). */
static void cg_blkio_v1(const char *text, uint64_t *read, uint64_t *write)
{
    *read = *write = 0;
    for (const char *p = text; p != NULL && *p != '\0'; p = cg_next_line(p)) {
        const char *op = strchr(p, ' '), *eol = strchr(p, '\n');
        uint64_t v;
        size_t n;

        if (op == NULL || (eol != NULL && op > eol))
            continue;
        op++;
        n = strcspn(op, " \n");
        if (op[n] != ' ' || cg_u64(op + n + 1, &v) == NULL)
            continue;
        if (n == 4 && strncasecmp(op, "read", 4) == 0)
            *read = v > UINT64_MAX - *read ? UINT64_MAX : *read + v;
        else if (n == 5 && strncasecmp(op, "write", 5) == 0)
            *write = v > UINT64_MAX - *write ? UINT64_MAX : *write + v;
    }
}

/* io.stat "<major>:<minor> rbytes=.. wbytes=.. rios=.. wios=.. ..." lines,
 * summed over devices. */
static void cg_io_v2(const char *text, uint64_t *rb, uint64_t *wb, uint64_t *rios, uint64_t *wios)
{
    static const char *const keys[] = {"rbytes=", "wbytes=", "rios=", "wios="};
    uint64_t *sums[] = {rb, wb, rios, wios};

    *rb = *wb = *rios = *wios = 0;
    for (const char *p = text; p != NULL && *p != '\0'; p = cg_next_line(p)) {
        const char *eol = strchr(p, '\n');
        const char *end = eol ? eol : p + strlen(p);

        for (const char *f = strchr(p, ' '); f != NULL && f < end; f = strchr(f, ' ')) {
            f++;
            for (size_t k = 0; k < 4; k++) {
                size_t n = strlen(keys[k]);
                uint64_t v;

                if (strncmp(f, keys[k], n) != 0 || cg_u64(f + n, &v) == NULL)
                    continue;
                *sums[k] = v > UINT64_MAX - *sums[k] ? UINT64_MAX : *sums[k] + v;
            }
        }
    }
}

/* /proc/<pid>/net/dev: "<ifname>: rx_bytes rx_packets ... (8 receive
 * fields) tx_bytes tx_packets ..." after two header lines; every
 * interface but lo. -1 when a line with a name has too few numbers. */
static int cg_netdev(const char *text, struct backend_stats *out)
{
    uint64_t rxb = 0, rxp = 0, txb = 0, txp = 0;

    for (const char *p = text; p != NULL && *p != '\0'; p = cg_next_line(p)) {
        const char *colon = strchr(p, ':'), *eol = strchr(p, '\n'), *name = cg_skip_space(p);
        uint64_t v[10];

        if (colon == NULL || (eol != NULL && colon > eol))
            continue; /* a header line */
        if (colon - name == 2 && strncmp(name, "lo", 2) == 0)
            continue;
        p = colon + 1;
        for (int i = 0; i < 10; i++) {
            p = cg_u64(cg_skip_space(p), &v[i]);
            if (p == NULL)
                return -1;
        }
        rxb += v[0];
        rxp += v[1];
        txb += v[8];
        txp += v[9];
    }
    out->rx_bytes = cg_clamp(rxb);
    out->rx_packets = cg_clamp(rxp);
    out->tx_bytes = cg_clamp(txb);
    out->tx_packets = cg_clamp(txp);
    return 0;
}

static int64_t cg_clamp(uint64_t v)
{
    return v > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v;
}
