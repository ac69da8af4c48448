/* Engine stats -> VM metrics (see berth/stats.h): the arithmetic of
 * `docker stats`, made total: every field read through one helper that
 * turns a missing or odd value into 0, every delta guarded against resets. */
#include "berth/stats.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static uint64_t stats_u64(const cJSON *obj, const char *name);
static const cJSON *stats_obj(const cJSON *obj, const char *name);
static int stats_has(const cJSON *obj, const char *name);
static int64_t stats_clamp_i64(uint64_t v);
static void stats_read_cpu(const cJSON *cpu_stats, struct stats_cpu *out);
static double stats_cpu_percent(const struct stats_cpu *cur, const struct stats_cpu *base);
static int64_t stats_memory(const cJSON *memory_stats);
static void stats_network(const cJSON *networks, struct vm_metrics *out);
static void stats_blkio(const cJSON *list, int64_t *read, int64_t *write);
static int stats_digits(const char **p, int n, int *out);

/* A non-negative number field as uint64; 0 when missing, not a number,
 * negative, NaN or too large. */
static uint64_t stats_u64(const cJSON *obj, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    double d;

    if (!cJSON_IsNumber(v))
        return 0;
    d = v->valuedouble;
    if (!(d >= 0.0) || d >= 18446744073709551615.0)
        return 0;
    return (uint64_t)d;
}

/* A child object, or NULL when missing or not an object. */
static const cJSON *stats_obj(const cJSON *obj, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);

    return cJSON_IsObject(v) ? v : NULL;
}

static int stats_has(const cJSON *obj, const char *name)
{
    return cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(obj, name));
}

static int64_t stats_clamp_i64(uint64_t v)
{
    return v > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v;
}

static void stats_read_cpu(const cJSON *cpu_stats, struct stats_cpu *out)
{
    const cJSON *usage = stats_obj(cpu_stats, "cpu_usage");
    const cJSON *percpu = cJSON_GetObjectItemCaseSensitive(usage, "percpu_usage");
    uint64_t online = stats_u64(cpu_stats, "online_cpus");

    memset(out, 0, sizeof(*out));
    out->total_ns = stats_u64(usage, "total_usage");
    out->system_ns = stats_u64(cpu_stats, "system_cpu_usage");
    /* Engines before API 1.27 send no online_cpus: the CLI counts percpu_usage. */
    if (online == 0 && cJSON_IsArray(percpu))
        online = (uint64_t)cJSON_GetArraySize(percpu);
    out->online_cpus = online > 4096 ? 4096 : (uint32_t)online;
    out->valid = out->total_ns > 0 && out->system_ns > 0;
}

/* delta(container cpu) / delta(host cpu, all cpus) * cpus * 100, so that
 * one busy host CPU is 100. A counter that went backwards or did not move
 * gives 0. */
static double stats_cpu_percent(const struct stats_cpu *cur, const struct stats_cpu *base)
{
    double pct;

    if (!cur->valid || base == NULL || !base->valid || cur->online_cpus == 0)
        return 0.0;
    if (cur->total_ns < base->total_ns || cur->system_ns <= base->system_ns)
        return 0.0;
    pct = (double)(cur->total_ns - base->total_ns) / (double)(cur->system_ns - base->system_ns) *
          (double)cur->online_cpus * 100.0;
    if (pct > (double)cur->online_cpus * 100.0)
        pct = (double)cur->online_cpus * 100.0;
    return pct;
}

/* Memory as `docker stats` shows it: usage without the page cache the
 * kernel can drop (cgroup v1: total_inactive_file; v2: inactive_file; old
 * engines without either: cache). */
static int64_t stats_memory(const cJSON *memory_stats)
{
    static const char *const reclaimable[] = {"total_inactive_file", "inactive_file", "cache"};
    const cJSON *st = stats_obj(memory_stats, "stats");
    uint64_t usage = stats_u64(memory_stats, "usage");

    for (size_t i = 0; i < sizeof(reclaimable) / sizeof(reclaimable[0]); i++) {
        uint64_t v;

        if (!stats_has(st, reclaimable[i]))
            continue;
        v = stats_u64(st, reclaimable[i]);
        if (v < usage)
            return stats_clamp_i64(usage - v);
    }
    return stats_clamp_i64(usage);
}

/* Sum over every interface of the "networks" object. */
static void stats_network(const cJSON *networks, struct vm_metrics *out)
{
    uint64_t rxb = 0, txb = 0, rxp = 0, txp = 0;
    const cJSON *ifc;

    cJSON_ArrayForEach(ifc, networks)
    {
        if (!cJSON_IsObject(ifc))
            continue;
        rxb += stats_u64(ifc, "rx_bytes");
        txb += stats_u64(ifc, "tx_bytes");
        rxp += stats_u64(ifc, "rx_packets");
        txp += stats_u64(ifc, "tx_packets");
    }
    out->rx_bytes = stats_clamp_i64(rxb);
    out->tx_bytes = stats_clamp_i64(txb);
    out->rx_packets = stats_clamp_i64(rxp);
    out->tx_packets = stats_clamp_i64(txp);
}

/* Sum the "Read" and "Write" entries of a blkio list over all devices;
 * cgroup v2 spells the ops in lower case. */
static void stats_blkio(const cJSON *list, int64_t *read, int64_t *write)
{
    uint64_t r = 0, w = 0;
    const cJSON *e;

    if (cJSON_IsArray(list)) {
        cJSON_ArrayForEach(e, list)
        {
            const cJSON *op = cJSON_GetObjectItemCaseSensitive(e, "op");

            if (!cJSON_IsString(op))
                continue;
            if (strcasecmp(op->valuestring, "read") == 0)
                r += stats_u64(e, "value");
            else if (strcasecmp(op->valuestring, "write") == 0)
                w += stats_u64(e, "value");
        }
    }
    *read = stats_clamp_i64(r);
    *write = stats_clamp_i64(w);
}

int stats_convert(const cJSON *root, const struct stats_cpu *prev, int64_t now_unix_ms,
                  struct vm_metrics *out, struct stats_cpu *cur)
{
    const cJSON *memory_stats, *blkio, *read;
    struct stats_cpu now_cpu, pre_cpu;
    const struct stats_cpu *base = NULL;
    struct vm_metrics m;
    int64_t at = -1;

    if (!cJSON_IsObject(root))
        return -1;
    memset(&m, 0, sizeof(m));
    stats_read_cpu(stats_obj(root, "cpu_stats"), &now_cpu);
    memory_stats = stats_obj(root, "memory_stats");
    /* A container that is not running answers with zeroed counters. */
    if (now_cpu.system_ns == 0 && !stats_has(memory_stats, "usage"))
        return STATS_EMPTY;

    /* The Engine's own previous reading is the better base (same loop,
     * one second apart); the first sample of a stream has an empty one. */
    stats_read_cpu(stats_obj(root, "precpu_stats"), &pre_cpu);
    if (pre_cpu.valid)
        base = &pre_cpu;
    else if (prev != NULL && prev->valid)
        base = prev;
    m.cpu_percent = stats_cpu_percent(&now_cpu, base);
    m.memory_bytes = stats_memory(memory_stats);
    stats_network(stats_obj(root, "networks"), &m);
    blkio = stats_obj(root, "blkio_stats");
    stats_blkio(cJSON_GetObjectItemCaseSensitive(blkio, "io_service_bytes_recursive"),
                &m.read_bytes, &m.write_bytes);
    stats_blkio(cJSON_GetObjectItemCaseSensitive(blkio, "io_serviced_recursive"), &m.read_ops,
                &m.write_ops);
    read = cJSON_GetObjectItemCaseSensitive(root, "read");
    if (cJSON_IsString(read))
        at = stats_parse_time_ms(read->valuestring);
    m.sampled_at_unix_ms = at > 0 ? at : now_unix_ms;

    *out = m;
    *cur = now_cpu;
    return base != NULL ? STATS_OK : STATS_NO_BASE;
}

/* n decimal digits at *p into *out; advances *p. -1 when short. */
static int stats_digits(const char **p, int n, int *out)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i]))
            return -1;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

int64_t stats_parse_time_ms(const char *s)
{
    struct tm tm;
    int year, mon, mday, hour, min, sec, ms = 0, off_h = 0, off_m = 0, sign = 0;
    const char *p = s;
    time_t t;

    if (s == NULL)
        return -1;
    if (stats_digits(&p, 4, &year) < 0 || *p++ != '-' || stats_digits(&p, 2, &mon) < 0 ||
        *p++ != '-' || stats_digits(&p, 2, &mday) < 0 || (*p != 'T' && *p != 't'))
        return -1;
    p++;
    if (stats_digits(&p, 2, &hour) < 0 || *p++ != ':' || stats_digits(&p, 2, &min) < 0 ||
        *p++ != ':' || stats_digits(&p, 2, &sec) < 0)
        return -1;
    if (*p == '.') {
        int scale = 100;

        p++;
        if (!isdigit((unsigned char)*p))
            return -1;
        for (; isdigit((unsigned char)*p); p++) {
            ms += (*p - '0') * scale;
            scale /= 10;
        }
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        sign = *p == '+' ? 1 : -1;
        p++;
        if (stats_digits(&p, 2, &off_h) < 0 || *p++ != ':' || stats_digits(&p, 2, &off_m) < 0)
            return -1;
    } else {
        return -1;
    }
    if (*p != '\0' || year < 1970 || mon < 1 || mon > 12 || mday < 1 || mday > 31 || hour > 23 ||
        min > 59 || sec > 60)
        return -1;
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = year - 1900;
    tm.tm_mon = mon - 1;
    tm.tm_mday = mday;
    tm.tm_hour = hour;
    tm.tm_min = min;
    tm.tm_sec = sec;
    t = timegm(&tm);
    if (t == (time_t)-1)
        return -1;
    t -= (time_t)sign * (off_h * 3600 + off_m * 60);
    if (t < 0)
        return -1;
    return (int64_t)t * 1000 + ms;
}
