/* Fixture trees for the cgroup reader (header-only, static functions): a
 * temporary directory holding a cgroup root ("cgroup/") and a proc root
 * ("proc/") the tests fill with the files the kernel would show, for
 * cgroup v1 and v2 and both Engine cgroup drivers. */
#ifndef BERTH_CGROUP_TREE_H
#define BERTH_CGROUP_TREE_H

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CT_FN static __attribute__((unused))

/* Two container ids (the Engine's full form). */
#define CT_ID1 "1111111111111111111111111111111111111111111111111111111111111111"
#define CT_ID2 "2222222222222222222222222222222222222222222222222222222222222222"

struct cg_tree {
    char dir[64];     /* the temporary directory */
    char cgroup[128]; /* <dir>/cgroup */
    char proc[128];   /* <dir>/proc */
};

/* mkdir -p of the directory part of `path` (or of `path` itself when dir). */
CT_FN int ct_mkdirs(const char *path, int whole)
{
    char tmp[1024];
    size_t n = strlen(path);

    if (n >= sizeof(tmp))
        return -1;
    memcpy(tmp, path, n + 1);
    if (!whole) {
        char *slash = strrchr(tmp, '/');

        if (slash == NULL)
            return 0;
        *slash = '\0';
    }
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(tmp, 0755) < 0 && errno != EEXIST ? -1 : 0;
}

/* Write `text` to <dir>/<rel>, making the directories on the way. */
CT_FN int ct_write(const struct cg_tree *t, const char *rel, const char *text)
{
    char path[1024];
    FILE *f;

    if (snprintf(path, sizeof(path), "%s/%s", t->dir, rel) >= (int)sizeof(path) ||
        ct_mkdirs(path, 0) < 0)
        return -1;
    f = fopen(path, "w");
    if (f == NULL)
        return -1;
    fputs(text, f);
    return fclose(f) == 0 ? 0 : -1;
}

CT_FN int ct_mkdir(const struct cg_tree *t, const char *rel)
{
    char path[1024];

    if (snprintf(path, sizeof(path), "%s/%s", t->dir, rel) >= (int)sizeof(path))
        return -1;
    return ct_mkdirs(path, 1);
}

static int ct_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* rm -rf <dir>/<rel>. */
CT_FN int ct_remove(const struct cg_tree *t, const char *rel)
{
    char path[1024];

    if (snprintf(path, sizeof(path), "%s/%s", t->dir, rel) >= (int)sizeof(path))
        return -1;
    return nftw(path, ct_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* A fresh tree with the host files every test needs: /proc/stat of two
 * CPUs and /proc/meminfo of 1 GiB. */
CT_FN int ct_init(struct cg_tree *t)
{
    snprintf(t->dir, sizeof(t->dir), "/tmp/berth-cgtree-XXXXXX");
    if (mkdtemp(t->dir) == NULL)
        return -1;
    snprintf(t->cgroup, sizeof(t->cgroup), "%s/cgroup", t->dir);
    snprintf(t->proc, sizeof(t->proc), "%s/proc", t->dir);
    if (ct_mkdir(t, "cgroup") < 0 ||
        ct_write(t, "proc/stat",
                 "cpu  1000 10 200 8000 50 5 5 3 0 0\n"
                 "cpu0 500 5 100 4000 25 3 2 2 0 0\n"
                 "cpu1 500 5 100 4000 25 2 3 1 0 0\n"
                 "intr 12345 0 0 0\nctxt 999\nbtime 1700000000\n") < 0 ||
        ct_write(t, "proc/meminfo", "MemTotal:        1048576 kB\nMemFree:          524288 kB\n") <
            0)
        return -1;
    return 0;
}

CT_FN void ct_free(struct cg_tree *t)
{
    nftw(t->dir, ct_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* The proc files of a container process: its status (NSpid ending in
 * `nspid`), its network counters (lo, eth0 and eth1) and its cgroup file. */
CT_FN int ct_process(const struct cg_tree *t, int pid, int nspid, const char *cgroup_file)
{
    char rel[128], text[256];

    snprintf(rel, sizeof(rel), "proc/%d/status", pid);
    snprintf(text, sizeof(text), "Name:\tsleep\nState:\tS (sleeping)\nNSpid:\t%d\t%d\nUid:\t0\n",
             pid, nspid);
    if (ct_write(t, rel, text) < 0)
        return -1;
    snprintf(rel, sizeof(rel), "proc/%d/net/dev", pid);
    if (ct_write(t, rel,
                 "Inter-|   Receive                                                |  Transmit\n"
                 " face |bytes    packets errs drop fifo frame compressed multicast|bytes    "
                 "packets errs drop fifo colls carrier compressed\n"
                 "    lo:  999999    9999    0    0    0     0          0         0   999999    "
                 "9999    0    0    0     0       0          0\n"
                 "  eth0:    1000      10    0    0    0     0          0         0      400    "
                 "   4    0    0    0     0       0          0\n"
                 "  eth1:     736       8    0    0    0     0          0         0      100    "
                 "   1    0    0    0     0       0          0\n") < 0)
        return -1;
    snprintf(rel, sizeof(rel), "proc/%d/cgroup", pid);
    return cgroup_file != NULL ? ct_write(t, rel, cgroup_file) : 0;
}

/* A v1 container below <cgroup>/<mount>/<rel> for each controller (`cpu`:
 * the name cpuacct's hierarchy is mounted as), processes 4240 and 4242, the
 * second its init: 2 s of CPU, 64 MiB used of which 16 MiB inactive file
 * (total_), a 256 MiB limit, I/O on two devices, 3 pids. */
CT_FN int ct_v1(const struct cg_tree *t, const char *cpu, const char *rel)
{
    char p[512];
    int rc = 0;

#define CT_V1(ctrl, file, text)                                                                    \
    do {                                                                                           \
        snprintf(p, sizeof(p), "cgroup/%s/%s/%s", ctrl, rel, file);                                \
        rc |= ct_write(t, p, text);                                                                \
    } while (0)
    CT_V1(cpu, "cpuacct.usage", "2000000000\n");
    CT_V1(cpu, "cgroup.procs", "4240\n4242\n");
    CT_V1("memory", "memory.usage_in_bytes", "67108864\n");
    CT_V1("memory", "memory.stat",
          "cache 1000\nrss 2000\ninactive_file 1234\nactive_file 0\n"
          "hierarchical_memory_limit 268435456\ntotal_cache 20000000\ntotal_rss 40000000\n"
          "total_inactive_file 16777216\ntotal_active_file 1000\n");
    CT_V1("memory", "memory.limit_in_bytes", "268435456\n");
    CT_V1("memory", "cgroup.procs", "4240\n4242\n");
    CT_V1("blkio", "blkio.throttle.io_service_bytes_recursive",
          "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 0\n8:0 Async 12288\n8:0 Discard 0\n"
          "8:0 Total 12288\n8:16 Read 1024\n8:16 Write 2048\n8:16 Total 3072\nTotal 15360\n");
    CT_V1("blkio", "blkio.throttle.io_service_bytes", "8:0 Read 1\n8:0 Write 1\nTotal 2\n");
    CT_V1("blkio", "blkio.throttle.io_serviced_recursive",
          "8:0 Read 4\n8:0 Write 8\n8:0 Total 12\n8:16 Read 1\n8:16 Write 2\n8:16 Total 3\n"
          "Total 15\n");
    CT_V1("blkio", "blkio.throttle.io_serviced", "8:0 Read 1\n8:0 Write 1\nTotal 2\n");
    CT_V1("pids", "pids.current", "3\n");
    CT_V1("pids", "cgroup.procs", "4240\n4242\n");
#undef CT_V1
    rc |= ct_process(t, 4240, 5, NULL);
    rc |= ct_process(t, 4242, 1, NULL);
    return rc;
}

/* A v2 container at <cgroup>/<rel> (and cgroup.controllers at the root):
 * 1.5 s of CPU, 32 MiB used of which 8 MiB inactive file, no limit, I/O on
 * two devices, 2 pids; process 5151, its init. */
CT_FN int ct_v2(const struct cg_tree *t, const char *rel)
{
    char p[512];
    int rc = ct_write(t, "cgroup/cgroup.controllers", "cpuset cpu io memory pids\n");

#define CT_V2(file, text)                                                                          \
    do {                                                                                           \
        snprintf(p, sizeof(p), "cgroup/%s/%s", rel, file);                                         \
        rc |= ct_write(t, p, text);                                                                \
    } while (0)
    CT_V2("cpu.stat", "usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\n"
                      "nr_periods 0\nnr_throttled 0\nthrottled_usec 0\n");
    CT_V2("memory.current", "33554432\n");
    CT_V2("memory.stat", "anon 20000000\nfile 12000000\nactive_anon 0\ninactive_anon 100\n"
                         "active_file 1000\ninactive_file 8388608\n");
    CT_V2("memory.max", "max\n");
    CT_V2("io.stat", "8:0 rbytes=4096 wbytes=8192 rios=4 wios=8 dbytes=0 dios=0\n"
                     "8:16 rbytes=1024 wbytes=2048 rios=1 wios=2 dbytes=0 dios=0\n");
    CT_V2("pids.current", "2\n");
    CT_V2("cgroup.procs", "5151\n");
#undef CT_V2
    rc |= ct_process(t, 5151, 1, NULL);
    return rc;
}

#endif
