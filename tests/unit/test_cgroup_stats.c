/* The cgroup reader on fixture trees (tests/unit/cgroup_tree.h): where it
 * finds a container for cgroup v1 and v2 under the cgroupfs and the systemd
 * driver (default and given parents, co-mounted controllers, the layout
 * unknown, through /proc/<pid>/cgroup), the values of a sample by docker
 * stats' rules (memory without inactive file, limits capped at the host's
 * memory, Read/Write over devices, every interface but lo), the host's CPU
 * counters, the init among the container's processes, missing and
 * unreadable files (the cases where the backend falls back to the Engine),
 * and the budget of files kept open. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../src/backend/docker/cgroup_stats.h"
#include "berth/clock.h"
#include "cgroup_tree.h"
#include "testlib.h"

#define NO_BUDGET 1000

/* What a v1 or v2 fixture container reads as (see cgroup_tree.h). */
struct want {
    int version, pid;
    uint64_t cpu_ns;
    int64_t memory, limit, read_bytes, write_bytes, read_ops, write_ops, pids;
};

static const struct want want_v1 = {1,  4242, 2000000000ull, 50331648, 268435456, 5120, 10240, 5,
                                    10, 3};
static const struct want want_v2 = {2,  5151, 1500000000ull, 25165824, 1073741824, 5120, 10240, 5,
                                    10, 2};

static void check_sample(const char *desc, const struct backend_stats *st,
                         const struct cgroup_stats_ctr *c, const struct want *w)
{
    int64_t now = berth_unix_ms();

    CHECK_MSG(cgroup_stats_ctr_version(c) == w->version, "%s: version %d", desc,
              cgroup_stats_ctr_version(c));
    CHECK_MSG(cgroup_stats_ctr_pid(c) == w->pid, "%s: pid %d", desc, cgroup_stats_ctr_pid(c));
    CHECK_MSG(st->source == BACKEND_STATS_CGROUP, "%s", desc);
    CHECK_MSG(st->cpu.total_ns == w->cpu_ns, "%s: cpu %llu", desc,
              (unsigned long long)st->cpu.total_ns);
    CHECK_MSG(st->memory_bytes == w->memory, "%s: memory %lld", desc, (long long)st->memory_bytes);
    CHECK_MSG(st->memory_limit_bytes == w->limit, "%s: limit %lld", desc,
              (long long)st->memory_limit_bytes);
    CHECK_MSG(st->read_bytes == w->read_bytes && st->write_bytes == w->write_bytes,
              "%s: block bytes %lld/%lld", desc, (long long)st->read_bytes,
              (long long)st->write_bytes);
    CHECK_MSG(st->read_ops == w->read_ops && st->write_ops == w->write_ops,
              "%s: block ops %lld/%lld", desc, (long long)st->read_ops, (long long)st->write_ops);
    CHECK_MSG(st->pids == w->pids, "%s: pids %lld", desc, (long long)st->pids);
    /* eth0 and eth1, never lo. */
    CHECK_MSG(st->rx_bytes == 1736 && st->rx_packets == 18 && st->tx_bytes == 500 &&
                  st->tx_packets == 5,
              "%s: network %lld %lld %lld %lld", desc, (long long)st->rx_bytes,
              (long long)st->rx_packets, (long long)st->tx_bytes, (long long)st->tx_packets);
    CHECK_MSG(st->sampled_at_unix_ms > now - 5000 && st->sampled_at_unix_ms <= now, "%s", desc);
    CHECK_MSG(!backend_cpu_valid(&st->precpu), "%s: no precpu", desc);
}

/* --- where the files are ------------------------------------------------------- */

enum tree_kind { TREE_NONE, TREE_V1, TREE_V2 };

struct locate_row {
    const char *desc;
    enum tree_kind tree;
    const char *mount;       /* v1: the name cpuacct is mounted as */
    const char *rel;         /* the container's path below each root */
    const char *proc_cgroup; /* /proc/<init>/cgroup, or NULL */
    struct cgroup_stats_layout layout;
    const char *id;
    int pid; /* given to open; 0: found in cgroup.procs */
    enum berth_code code;
};

/* clang-format off */
static const struct locate_row locate_rows[] = {
    {"v1 cgroupfs, the default parent", TREE_V1, "cpuacct", "docker/" CT_ID1, NULL,
     {1, CGROUP_STATS_DRIVER_CGROUPFS, NULL}, CT_ID1, 0, BERTH_OK},
    {"v1, driver and version unknown: cgroupfs tried first", TREE_V1, "cpuacct",
     "docker/" CT_ID1, NULL, {0, CGROUP_STATS_DRIVER_UNKNOWN, NULL}, CT_ID1, 0, BERTH_OK},
    {"v1 cgroupfs, a parent of its own", TREE_V1, "cpuacct", "ci/engine/" CT_ID1, NULL,
     {1, CGROUP_STATS_DRIVER_CGROUPFS, "/ci/engine/"}, CT_ID1, 0, BERTH_OK},
    {"v1 systemd, cpuacct co-mounted with cpu", TREE_V1, "cpu,cpuacct",
     "system.slice/docker-" CT_ID1 ".scope", NULL, {1, CGROUP_STATS_DRIVER_SYSTEMD, NULL}, CT_ID1,
     0, BERTH_OK},
    {"v1 systemd, a nested parent slice", TREE_V1, "cpuacct",
     "my.slice/my-app.slice/docker-" CT_ID1 ".scope", NULL,
     {1, CGROUP_STATS_DRIVER_SYSTEMD, "my-app.slice"}, CT_ID1, 0, BERTH_OK},
    {"v1 systemd, driver unknown: systemd after cgroupfs", TREE_V1, "cpuacct",
     "system.slice/docker-" CT_ID1 ".scope", NULL, {1, CGROUP_STATS_DRIVER_UNKNOWN, NULL}, CT_ID1,
     0, BERTH_OK},
    {"v2 cgroupfs", TREE_V2, NULL, "docker/" CT_ID1, NULL,
     {2, CGROUP_STATS_DRIVER_CGROUPFS, NULL}, CT_ID1, 0, BERTH_OK},
    {"v2 systemd, the version read off the root", TREE_V2, NULL,
     "system.slice/docker-" CT_ID1 ".scope", NULL, {0, CGROUP_STATS_DRIVER_SYSTEMD, NULL}, CT_ID1,
     0, BERTH_OK},
    {"v1, not where the layout says: through /proc/<pid>/cgroup", TREE_V1, "cpuacct",
     "elsewhere/" CT_ID1,
     "12:pids:/elsewhere/" CT_ID1 "\n7:blkio:/elsewhere/" CT_ID1 "\n4:memory:/elsewhere/" CT_ID1
     "\n2:cpu,cpuacct:/elsewhere/" CT_ID1 "\n1:name=systemd:/elsewhere/" CT_ID1 "\n0::/\n",
     {1, CGROUP_STATS_DRIVER_CGROUPFS, NULL}, CT_ID1, 4242, BERTH_OK},
    {"v2, not where the layout says: through /proc/<pid>/cgroup", TREE_V2, NULL,
     "pods/p1/" CT_ID1, "0::/pods/p1/" CT_ID1 "\n", {2, CGROUP_STATS_DRIVER_SYSTEMD, NULL}, CT_ID1,
     5151, BERTH_OK},
    {"a pid whose cgroup names another container: not found", TREE_V1, "cpuacct",
     "elsewhere/" CT_ID2,
     "4:memory:/elsewhere/" CT_ID2 "\n2:cpu,cpuacct:/elsewhere/" CT_ID2 "\n",
     {1, CGROUP_STATS_DRIVER_CGROUPFS, NULL}, CT_ID1, 4242, BERTH_NOT_FOUND},
    {"a pid's cgroup outside berthd's namespace: not found", TREE_V1, "cpuacct",
     "elsewhere/" CT_ID1, "4:memory:/../elsewhere/" CT_ID1 "\n2:cpuacct:/../elsewhere/" CT_ID1 "\n",
     {1, CGROUP_STATS_DRIVER_CGROUPFS, NULL}, CT_ID1, 4242, BERTH_NOT_FOUND},
    {"another driver's tree only: not found", TREE_V1, "cpuacct",
     "system.slice/docker-" CT_ID1 ".scope", NULL, {1, CGROUP_STATS_DRIVER_CGROUPFS, NULL},
     CT_ID1, 0, BERTH_NOT_FOUND},
    {"no cgroup at all (a remote Engine): not found", TREE_NONE, NULL, NULL, NULL,
     {1, CGROUP_STATS_DRIVER_CGROUPFS, NULL}, CT_ID1, 0, BERTH_NOT_FOUND},
    {"a short id: invalid_argument", TREE_V1, "cpuacct", "docker/" CT_ID1, NULL,
     {1, CGROUP_STATS_DRIVER_CGROUPFS, NULL}, "111111111111", 0, BERTH_INVALID_ARGUMENT},
    {"an id with a path in it: invalid_argument", TREE_V1, "cpuacct", "docker/" CT_ID1, NULL,
     {1, CGROUP_STATS_DRIVER_CGROUPFS, NULL},
     "../../../../111111111111111111111111111111111111111111111111111111111111", 0,
     BERTH_INVALID_ARGUMENT},
};
/* clang-format on */

static void test_locate(void)
{
    for (size_t i = 0; i < sizeof(locate_rows) / sizeof(locate_rows[0]); i++) {
        const struct locate_row *r = &locate_rows[i];
        struct cg_tree t;
        struct cgroup_stats *cs = NULL;
        struct cgroup_stats_ctr *c = NULL;
        struct backend_cpu host;
        struct backend_stats st;
        struct berth_err err;
        int rc;

        CHECK_MSG(ct_init(&t) == 0, "%s: tree", r->desc);
        if (r->tree == TREE_V1)
            CHECK(ct_v1(&t, r->mount, r->rel) == 0);
        else if (r->tree == TREE_V2)
            CHECK(ct_v2(&t, r->rel) == 0);
        if (r->proc_cgroup != NULL) {
            char rel[64];

            snprintf(rel, sizeof(rel), "proc/%d/cgroup", r->pid);
            CHECK(ct_write(&t, rel, r->proc_cgroup) == 0);
        }
        berth_err_clear(&err);
        CHECK(cgroup_stats_new(t.cgroup, t.proc, NO_BUDGET, &cs, &err) == 0);
        rc = cgroup_stats_open(cs, &r->layout, r->id, r->pid, &c, &err);
        if (r->code != BERTH_OK) {
            CHECK_MSG(rc == -1 && err.code == r->code, "%s: rc %d %s: %s", r->desc, rc,
                      berth_code_name(err.code), err.msg);
            CHECK_MSG(cgroup_stats_open_fds(cs) == 0, "%s: nothing left open", r->desc);
        } else {
            CHECK_MSG(rc == 0, "%s: %s", r->desc, err.msg);
            CHECK(cgroup_stats_host(cs, &host, &err) == 0);
            if (rc == 0 && cgroup_stats_read(cs, c, &host, &st, &err) == 0)
                check_sample(r->desc, &st, c, r->tree == TREE_V2 ? &want_v2 : &want_v1);
            else
                CHECK_MSG(0, "%s: read: %s", r->desc, err.msg);
            cgroup_stats_close(cs, c);
        }
        cgroup_stats_free(cs);
        ct_free(&t);
    }
}

/* --- the host, the memory rule, the init ----------------------------------------- */

static void test_host(void)
{
    struct cg_tree t;
    struct cgroup_stats *cs = NULL;
    struct backend_cpu host;
    struct berth_err err;
    uint64_t tick_ns = 1000000000ull / (uint64_t)sysconf(_SC_CLK_TCK);

    CHECK(ct_init(&t) == 0);
    berth_err_clear(&err);
    CHECK(cgroup_stats_new(t.cgroup, t.proc, NO_BUDGET, &cs, &err) == 0);
    CHECK_MSG(cgroup_stats_host(cs, &host, &err) == 0, "%s", err.msg);
    /* user nice system idle iowait irq softirq; steal (3) left out. */
    CHECK_MSG(host.system_ns == 9270 * tick_ns, "system %llu", (unsigned long long)host.system_ns);
    CHECK(host.online_cpus == 2);
    CHECK(host.total_ns == 0);
    /* The file is kept open and read from its start each time. */
    CHECK(ct_write(&t, "proc/stat", "cpu  2000 0 0 0 0 0 0 0 0 0\ncpu0 1 1 1 1 1 1 1\n") == 0);
    CHECK(cgroup_stats_host(cs, &host, &err) == 0);
    CHECK(host.system_ns == 2000 * tick_ns && host.online_cpus == 1);
    CHECK(ct_write(&t, "proc/stat", "intr 1 2 3\n") == 0);
    berth_err_clear(&err);
    CHECK(cgroup_stats_host(cs, &host, &err) == -1 && err.code == BERTH_UNAVAILABLE);
    cgroup_stats_free(cs);

    /* No /proc/stat: unavailable. */
    CHECK(ct_remove(&t, "proc/stat") == 0);
    CHECK(cgroup_stats_new(t.cgroup, t.proc, NO_BUDGET, &cs, &err) == 0);
    berth_err_clear(&err);
    CHECK(cgroup_stats_host(cs, &host, &err) == -1 && err.code == BERTH_UNAVAILABLE);
    cgroup_stats_free(cs);
    ct_free(&t);
}

struct memory_row {
    const char *desc;
    int version;
    const char *usage;
    const char *stat;
    const char *limit;
    int64_t memory, limit_bytes;
};

/* clang-format off */
static const struct memory_row memory_rows[] = {
    {"v1: usage minus total_inactive_file", 1, "1000000\n",
     "inactive_file 10\ntotal_inactive_file 400000\n", "500000\n", 600000, 500000},
    {"v1: total_inactive_file above usage: inactive_file instead", 1, "1000000\n",
     "inactive_file 10\ntotal_inactive_file 2000000\n", "500000\n", 999990, 500000},
    {"v1: both above usage: usage", 1, "1000000\n",
     "inactive_file 3000000\ntotal_inactive_file 2000000\n", "500000\n", 1000000, 500000},
    {"v1: no limit: the host's memory", 1, "1000000\n", "total_inactive_file 0\n",
     "9223372036854771712\n", 1000000, 1073741824},
    {"v2: usage minus inactive_file", 2, "1000000\n", "inactive_file 250000\nactive_file 1\n",
     "2000000\n", 750000, 2000000},
    {"v2: inactive_file above usage: usage", 2, "1000000\n", "inactive_file 1000001\n", "max\n",
     1000000, 1073741824},
    {"v2: a limit above the host's memory: the host's", 2, "5\n", "inactive_file 0\n",
     "4294967296\n", 5, 1073741824},
};
/* clang-format on */

static void test_memory_rule(void)
{
    static const struct cgroup_stats_layout v1 = {1, CGROUP_STATS_DRIVER_CGROUPFS, NULL};
    static const struct cgroup_stats_layout v2 = {2, CGROUP_STATS_DRIVER_CGROUPFS, NULL};

    for (size_t i = 0; i < sizeof(memory_rows) / sizeof(memory_rows[0]); i++) {
        const struct memory_row *r = &memory_rows[i];
        struct cg_tree t;
        struct cgroup_stats *cs = NULL;
        struct cgroup_stats_ctr *c = NULL;
        struct backend_cpu host;
        struct backend_stats st;
        struct berth_err err;

        CHECK(ct_init(&t) == 0);
        if (r->version == 1) {
            CHECK(ct_v1(&t, "cpuacct", "docker/" CT_ID1) == 0);
            CHECK(ct_write(&t, "cgroup/memory/docker/" CT_ID1 "/memory.usage_in_bytes", r->usage) ==
                  0);
            CHECK(ct_write(&t, "cgroup/memory/docker/" CT_ID1 "/memory.stat", r->stat) == 0);
            CHECK(ct_write(&t, "cgroup/memory/docker/" CT_ID1 "/memory.limit_in_bytes", r->limit) ==
                  0);
        } else {
            CHECK(ct_v2(&t, "docker/" CT_ID1) == 0);
            CHECK(ct_write(&t, "cgroup/docker/" CT_ID1 "/memory.current", r->usage) == 0);
            CHECK(ct_write(&t, "cgroup/docker/" CT_ID1 "/memory.stat", r->stat) == 0);
            CHECK(ct_write(&t, "cgroup/docker/" CT_ID1 "/memory.max", r->limit) == 0);
        }
        berth_err_clear(&err);
        CHECK(cgroup_stats_new(t.cgroup, t.proc, NO_BUDGET, &cs, &err) == 0);
        CHECK(cgroup_stats_host(cs, &host, &err) == 0);
        if (cgroup_stats_open(cs, r->version == 1 ? &v1 : &v2, CT_ID1, 0, &c, &err) == 0 &&
            cgroup_stats_read(cs, c, &host, &st, &err) == 0) {
            CHECK_MSG(st.memory_bytes == r->memory, "%s: memory %lld, want %lld", r->desc,
                      (long long)st.memory_bytes, (long long)r->memory);
            CHECK_MSG(st.memory_limit_bytes == r->limit_bytes, "%s: limit %lld, want %lld", r->desc,
                      (long long)st.memory_limit_bytes, (long long)r->limit_bytes);
        } else {
            CHECK_MSG(0, "%s: %s", r->desc, err.msg);
        }
        cgroup_stats_close(cs, c);
        cgroup_stats_free(cs);
        ct_free(&t);
    }
}

/* The init: the process whose pid in its namespace is 1, else the lowest. */
static void test_init(void)
{
    static const struct cgroup_stats_layout v1 = {1, CGROUP_STATS_DRIVER_CGROUPFS, NULL};
    struct cg_tree t;
    struct cgroup_stats *cs = NULL;
    struct cgroup_stats_ctr *c = NULL;
    struct berth_err err;

    CHECK(ct_init(&t) == 0);
    CHECK(ct_v1(&t, "cpuacct", "docker/" CT_ID1) == 0);
    berth_err_clear(&err);
    CHECK(cgroup_stats_new(t.cgroup, t.proc, NO_BUDGET, &cs, &err) == 0);
    CHECK(cgroup_stats_open(cs, &v1, CT_ID1, 0, &c, &err) == 0);
    CHECK(c != NULL && cgroup_stats_ctr_pid(c) == 4242);
    cgroup_stats_close(cs, c);
    c = NULL;

    /* Nobody is 1 in its namespace: the lowest pid. */
    CHECK(ct_process(&t, 4242, 9, NULL) == 0);
    CHECK(cgroup_stats_open(cs, &v1, CT_ID1, 0, &c, &err) == 0);
    CHECK(c != NULL && cgroup_stats_ctr_pid(c) == 4240);
    cgroup_stats_close(cs, c);
    c = NULL;

    /* A pid given is used as it is. */
    CHECK(cgroup_stats_open(cs, &v1, CT_ID1, 4242, &c, &err) == 0);
    CHECK(c != NULL && cgroup_stats_ctr_pid(c) == 4242);
    cgroup_stats_close(cs, c);
    c = NULL;

    /* No process in the cgroup (it is being torn down): failed_precondition. */
    CHECK(ct_write(&t, "cgroup/pids/docker/" CT_ID1 "/cgroup.procs", "") == 0);
    berth_err_clear(&err);
    CHECK(cgroup_stats_open(cs, &v1, CT_ID1, 0, &c, &err) == -1);
    CHECK_MSG(err.code == BERTH_FAILED_PRECONDITION, "%s", err.msg);
    CHECK(cgroup_stats_open_fds(cs) == 0);
    cgroup_stats_free(cs);
    ct_free(&t);
}

/* --- missing and unreadable files ------------------------------------------------- */

struct missing_row {
    const char *desc;
    int version;
    const char *remove;              /* below the tree */
    enum berth_code code;            /* of open; BERTH_OK: opens */
    int64_t pids, read_bytes, limit; /* when it opens */
};

/* clang-format off */
static const struct missing_row missing_rows[] = {
    {"v1 without memory.stat: unavailable (the Engine's stream instead)", 1,
     "cgroup/memory/docker/" CT_ID1 "/memory.stat", BERTH_UNAVAILABLE, 0, 0, 0},
    {"v1 without cpuacct.usage: unavailable", 1, "cgroup/cpuacct/docker/" CT_ID1 "/cpuacct.usage",
     BERTH_UNAVAILABLE, 0, 0, 0},
    {"v1 without the memory hierarchy: not found", 1, "cgroup/memory", BERTH_NOT_FOUND, 0, 0, 0},
    {"v1 without the init's network counters: unavailable", 1, "proc/4242/net",
     BERTH_UNAVAILABLE, 0, 0, 0},
    {"v2 without memory.current: unavailable", 2, "cgroup/docker/" CT_ID1 "/memory.current",
     BERTH_UNAVAILABLE, 0, 0, 0},
    {"v1 without the pids hierarchy: pids 0 (optional)", 1, "cgroup/pids", BERTH_OK, 0, 5120,
     268435456},
    {"v1 without the blkio hierarchy: block I/O 0 (optional)", 1, "cgroup/blkio", BERTH_OK, 3, 0,
     268435456},
    {"v1 without the recursive blkio files: the plain ones", 1,
     "cgroup/blkio/docker/" CT_ID1 "/blkio.throttle.io_service_bytes_recursive", BERTH_OK, 3, 1,
     268435456},
    {"v1 without a limit file: limit 0 (not known)", 1,
     "cgroup/memory/docker/" CT_ID1 "/memory.limit_in_bytes", BERTH_OK, 3, 5120, 0},
    {"v2 without io.stat: block I/O 0 (optional)", 2, "cgroup/docker/" CT_ID1 "/io.stat",
     BERTH_OK, 2, 0, 1073741824},
};
/* clang-format on */

static void test_missing(void)
{
    static const struct cgroup_stats_layout v1 = {1, CGROUP_STATS_DRIVER_CGROUPFS, NULL};
    static const struct cgroup_stats_layout v2 = {2, CGROUP_STATS_DRIVER_CGROUPFS, NULL};

    for (size_t i = 0; i < sizeof(missing_rows) / sizeof(missing_rows[0]); i++) {
        const struct missing_row *r = &missing_rows[i];
        struct cg_tree t;
        struct cgroup_stats *cs = NULL;
        struct cgroup_stats_ctr *c = NULL;
        struct backend_cpu host;
        struct backend_stats st;
        struct berth_err err;
        int rc;

        CHECK(ct_init(&t) == 0);
        CHECK(r->version == 1 ? ct_v1(&t, "cpuacct", "docker/" CT_ID1) == 0
                              : ct_v2(&t, "docker/" CT_ID1) == 0);
        CHECK_MSG(ct_remove(&t, r->remove) == 0, "%s: remove", r->desc);
        berth_err_clear(&err);
        CHECK(cgroup_stats_new(t.cgroup, t.proc, NO_BUDGET, &cs, &err) == 0);
        CHECK(cgroup_stats_host(cs, &host, &err) == 0);
        rc = cgroup_stats_open(cs, r->version == 1 ? &v1 : &v2, CT_ID1, 0, &c, &err);
        if (r->code != BERTH_OK) {
            CHECK_MSG(rc == -1 && err.code == r->code, "%s: %d %s %s", r->desc, rc,
                      berth_code_name(err.code), err.msg);
            CHECK_MSG(cgroup_stats_open_fds(cs) == 0, "%s: nothing left open", r->desc);
        } else if (rc == 0 && cgroup_stats_read(cs, c, &host, &st, &err) == 0) {
            CHECK_MSG(st.pids == r->pids && st.read_bytes == r->read_bytes &&
                          st.memory_limit_bytes == r->limit,
                      "%s: pids %lld read %lld limit %lld", r->desc, (long long)st.pids,
                      (long long)st.read_bytes, (long long)st.memory_limit_bytes);
        } else {
            CHECK_MSG(0, "%s: %s", r->desc, err.msg);
        }
        cgroup_stats_close(cs, c);
        cgroup_stats_free(cs);
        ct_free(&t);
    }
}

/* Files kept open are read anew each time; a file that turns to garbage
 * is unavailable, a cgroup that went (files opened for each read) is
 * not_found; past the budget a container's files are opened each read. */
static void test_reads_and_budget(void)
{
    static const struct cgroup_stats_layout v1 = {1, CGROUP_STATS_DRIVER_CGROUPFS, NULL};
    struct cg_tree t;
    struct cgroup_stats *cs = NULL;
    struct cgroup_stats_ctr *a = NULL, *b = NULL;
    struct backend_cpu host;
    struct backend_stats st;
    struct berth_err err;

    CHECK(ct_init(&t) == 0);
    CHECK(ct_v1(&t, "cpuacct", "docker/" CT_ID1) == 0);
    CHECK(ct_v1(&t, "cpuacct", "docker/" CT_ID2) == 0);
    berth_err_clear(&err);
    /* Room for one container's seven files (the limit is read at open). */
    CHECK(cgroup_stats_new(t.cgroup, t.proc, 7, &cs, &err) == 0);
    CHECK(cgroup_stats_host(cs, &host, &err) == 0);
    CHECK(cgroup_stats_open(cs, &v1, CT_ID1, 0, &a, &err) == 0);
    CHECK_MSG(cgroup_stats_open_fds(cs) == 7, "kept %zu", cgroup_stats_open_fds(cs));
    CHECK(cgroup_stats_open(cs, &v1, CT_ID2, 0, &b, &err) == 0);
    CHECK_MSG(cgroup_stats_open_fds(cs) == 7, "past the budget: %zu", cgroup_stats_open_fds(cs));
    /* The limit is the one read at open, a later change is not seen. */
    CHECK(ct_write(&t, "cgroup/memory/docker/" CT_ID1 "/memory.limit_in_bytes", "1000\n") == 0);

    /* New values are seen through kept and through opened files. */
    CHECK(ct_write(&t, "cgroup/cpuacct/docker/" CT_ID1 "/cpuacct.usage", "3000000000\n") == 0);
    CHECK(ct_write(&t, "cgroup/cpuacct/docker/" CT_ID2 "/cpuacct.usage", "4000000000\n") == 0);
    CHECK(ct_write(&t, "cgroup/pids/docker/" CT_ID1 "/pids.current", "7\n") == 0);
    CHECK(a != NULL && cgroup_stats_read(cs, a, &host, &st, &err) == 0);
    CHECK(st.cpu.total_ns == 3000000000ull && st.pids == 7);
    CHECK(st.memory_limit_bytes == 268435456);
    CHECK(st.cpu.system_ns == host.system_ns && st.cpu.online_cpus == 2);
    CHECK(b != NULL && cgroup_stats_read(cs, b, &host, &st, &err) == 0);
    CHECK(st.cpu.total_ns == 4000000000ull && st.pids == 3);

    /* Garbage in a counter: unavailable, *out untouched. */
    CHECK(ct_write(&t, "cgroup/memory/docker/" CT_ID1 "/memory.usage_in_bytes", "lots\n") == 0);
    memset(&st, 0x5a, sizeof(st));
    berth_err_clear(&err);
    CHECK(cgroup_stats_read(cs, a, &host, &st, &err) == -1);
    CHECK_MSG(err.code == BERTH_UNAVAILABLE, "%s", err.msg);
    CHECK(st.pids == 0x5a5a5a5a5a5a5a5a);
    /* A negative number is no counter either. */
    CHECK(ct_write(&t, "cgroup/memory/docker/" CT_ID1 "/memory.usage_in_bytes", "-1\n") == 0);
    berth_err_clear(&err);
    CHECK(cgroup_stats_read(cs, a, &host, &st, &err) == -1 && err.code == BERTH_UNAVAILABLE);

    /* The second container's cgroup goes: not_found (open it again). */
    CHECK(ct_remove(&t, "cgroup/cpuacct/docker/" CT_ID2) == 0);
    berth_err_clear(&err);
    CHECK(cgroup_stats_read(cs, b, &host, &st, &err) == -1);
    CHECK_MSG(err.code == BERTH_NOT_FOUND, "%s", err.msg);

    cgroup_stats_close(cs, a);
    CHECK(cgroup_stats_open_fds(cs) == 0);
    cgroup_stats_close(cs, b);
    CHECK(cgroup_stats_open_fds(cs) == 0);
    cgroup_stats_free(cs);
    ct_free(&t);
}

int main(void)
{
    test_locate();
    test_host();
    test_memory_rule();
    test_init();
    test_missing();
    test_reads_and_budget();
    return test_summary("test_cgroup_stats");
}
