/* The process_* series of /metrics (berth/process_metrics.h), from
 * /proc/self/stat, /proc/self/fd, /proc/stat and getrlimit. */
#include "berth/process_metrics.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static int pm_read_file(const char *path, char *out, size_t n);
static int pm_boot_time(double *out);

static int pm_read_file(const char *path, char *out, size_t n)
{
    FILE *f = fopen(path, "re");
    size_t got;

    if (f == NULL)
        return -1;
    got = fread(out, 1, n - 1, f);
    fclose(f);
    out[got] = '\0';
    return got > 0 ? 0 : -1;
}

/* btime of /proc/stat: when the system booted, in unix seconds. */
static int pm_boot_time(double *out)
{
    FILE *f = fopen("/proc/stat", "re");
    char line[256];
    int rc = -1;

    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL) {
        unsigned long long bt;
        if (sscanf(line, "btime %llu", &bt) == 1) {
            *out = (double)bt;
            rc = 0;
            break;
        }
    }
    fclose(f);
    return rc;
}

int process_metrics_read(struct process_metrics *out, struct berth_err *err)
{
    struct process_metrics m = {0};
    char stat[2048], *p;
    unsigned long long utime, stime, starttime, vsize, threads;
    long long rss;
    long ticks = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    struct rlimit rl;
    struct dirent *de;
    double boot;
    DIR *d;

    if (pm_read_file("/proc/self/stat", stat, sizeof(stat)) < 0)
        return berth_err_set(err, BERTH_INTERNAL, "cannot read /proc/self/stat");
    /* The command name may hold spaces and parentheses: fields start after
     * the last ')'. Then: state(3) ... utime(14) stime(15) ... num_threads(20)
     * ... starttime(22) vsize(23) rss(24). */
    p = strrchr(stat, ')');
    if (p == NULL || ticks <= 0 || page <= 0 ||
        sscanf(p + 2,
               "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %llu %*d "
               "%llu %llu %lld",
               &utime, &stime, &threads, &starttime, &vsize, &rss) != 6)
        return berth_err_set(err, BERTH_INTERNAL, "cannot parse /proc/self/stat");
    m.cpu_seconds = (double)(utime + stime) / (double)ticks;
    m.resident_bytes = rss > 0 ? (uint64_t)rss * (uint64_t)page : 0;
    m.virtual_bytes = vsize;
    m.threads = threads;
    if (pm_boot_time(&boot) == 0)
        m.start_time_seconds = boot + (double)starttime / (double)ticks;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        m.max_fds = rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : (uint64_t)rl.rlim_cur;
    d = opendir("/proc/self/fd");
    if (d == NULL)
        return berth_err_set(err, BERTH_INTERNAL, "cannot list /proc/self/fd");
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.')
            m.open_fds++;
    closedir(d);
    /* The directory stream itself held one descriptor. */
    if (m.open_fds > 0)
        m.open_fds--;
    *out = m;
    return 0;
}
