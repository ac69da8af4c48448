/* Engine stats -> VM metrics on recorded Engine answers (tests/unit/fixtures/
 * stats_*.json): cgroup v1 and v2, the first sample of a stream, counter
 * resets, old engines, missing and malformed fields, a stopped container. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/stats.h"
#include "testlib.h"

#define NOW_MS 4242

struct stats_row {
    const char *desc;
    const char *fixture;
    struct stats_cpu prev; /* valid == 0: no previous sample */
    int result;
    double cpu;
    int64_t memory, rx_bytes, tx_bytes, rx_packets, tx_packets;
    int64_t read_bytes, write_bytes, read_ops, write_ops;
    int64_t sampled_at;
};

static const struct stats_cpu no_prev = {0, 0, 0, 0};

/* One fixture per row; the columns line up with struct stats_row. */
/* clang-format off */
static const struct stats_row rows[] = {
    {"cgroup v1: busy cpu, memory minus total_inactive_file, two interfaces, two devices",
     "stats_v1.json", {0, 0, 0, 0}, STATS_OK, 99.9747654, 663552, 1736, 500, 18, 5, 5120, 10240, 4,
     6, 1795587002199},
    {"cgroup v1: precpu_stats wins over a previous sample", "stats_v1.json",
     {1, 1, 2, 1}, STATS_OK, 99.9747654, 663552, 1736, 500, 18, 5, 5120, 10240, 4, 6,
     1795587002199},
    {"cgroup v2: half of one cpu of four, minus inactive_file, lower-case blkio ops",
     "stats_v2.json", {0, 0, 0, 0}, STATS_OK, 50.0, 100663296, 2048, 1024, 20, 10, 1048576,
     2097152, 16, 32, 1709294405500},
    {"first stream sample without a previous one: cpu 0", "stats_first.json", {0, 0, 0, 0},
     STATS_NO_BASE, 0.0, 100663296, 2048, 1024, 20, 10, 1048576, 2097152, 16, 32, 1709294405250},
    {"first stream sample with the collector's previous: one busy cpu", "stats_first.json",
     {2000000000, 39998000000000, 2, 1}, STATS_OK, 100.0, 100663296, 2048, 1024, 20, 10,
     1048576, 2097152, 16, 32, 1709294405250},
    {"previous sample newer than this one (restart): cpu 0", "stats_first.json",
     {3500000000, 39998000000000, 2, 1}, STATS_OK, 0.0, 100663296, 2048, 1024, 20, 10, 1048576,
     2097152, 16, 32, 1709294405250},
    {"system cpu did not move: cpu 0", "stats_first.json", {2000000000, 40000000000000, 2, 1},
     STATS_OK, 0.0, 100663296, 2048, 1024, 20, 10, 1048576, 2097152, 16, 32, 1709294405250},
    {"counter reset against precpu_stats: cpu 0", "stats_reset.json", {0, 0, 0, 0}, STATS_OK,
     0.0, 663552, 1736, 500, 18, 5, 5120, 10240, 4, 6, 1795587002199},
    {"old engine: cpus counted from percpu_usage, memory minus cache", "stats_old_engine.json",
     {0, 0, 0, 0}, STATS_OK, 99.9747654, 6000000, 1736, 500, 18, 5, 5120, 10240, 4, 6,
     1795587002199},
    {"inactive file above usage in the hierarchy: falls back to inactive_file",
     "stats_v1_inactive_over.json", {0, 0, 0, 0}, STATS_OK, 99.9747654, 700000, 1736, 500, 18, 5,
     5120, 10240, 4, 6, 1795587002199},
    {"missing fields: zeros, sampled now", "stats_missing.json", {1000, 8000, 1, 1}, STATS_OK,
     0.0, 4096, 0, 7, 0, 0, 0, 0, 0, 0, NOW_MS},
    {"malformed numbers: zeros, never garbage", "stats_garbage.json", {0, 0, 0, 0}, STATS_NO_BASE,
     0.0, 0, 0, 0, 25, 0, 0, 0, 0, 0, 1709294405000},
    {"stopped container: empty answer, nothing filled", "stats_stopped.json", {0, 0, 0, 0},
     STATS_EMPTY, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
};
/* clang-format on */

/* The fixture directory: beside this file, wherever the build runs. */
static char *fixture_text(const char *name)
{
    const char *self = __FILE__;
    const char *slash = strrchr(self, '/');
    size_t dirlen = slash ? (size_t)(slash - self) : 1;
    char path[4096];
    char *text = NULL;
    long len;
    FILE *f;

    snprintf(path, sizeof(path), "%.*s/fixtures/%s", (int)dirlen, slash ? self : ".", name);
    f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "cannot open fixture %s\n", path);
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        text = malloc((size_t)len + 1);
        if (text != NULL && fread(text, 1, (size_t)len, f) == (size_t)len) {
            text[len] = '\0';
        } else {
            free(text);
            text = NULL;
        }
    }
    fclose(f);
    return text;
}

static void test_rows(void)
{
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const struct stats_row *row = &rows[i];
        char *text = fixture_text(row->fixture);
        cJSON *root = text ? cJSON_Parse(text) : NULL;
        struct vm_metrics m;
        struct stats_cpu cur;
        int rc;

        CHECK_MSG(root != NULL, "%s: fixture %s", row->desc, row->fixture);
        if (root == NULL) {
            free(text);
            continue;
        }
        memset(&m, 0x5a, sizeof(m));
        memset(&cur, 0x5a, sizeof(cur));
        rc = stats_convert(root, row->prev.valid ? &row->prev : &no_prev, NOW_MS, &m, &cur);
        CHECK_MSG(rc == row->result, "%s: result %d", row->desc, rc);
        if (rc == STATS_OK || rc == STATS_NO_BASE) {
            CHECK_MSG(fabs(m.cpu_percent - row->cpu) < 1e-4, "%s: cpu %f want %f", row->desc,
                      m.cpu_percent, row->cpu);
            CHECK_MSG(m.memory_bytes == row->memory, "%s: memory %lld", row->desc,
                      (long long)m.memory_bytes);
            CHECK_MSG(m.rx_bytes == row->rx_bytes && m.tx_bytes == row->tx_bytes &&
                          m.rx_packets == row->rx_packets && m.tx_packets == row->tx_packets,
                      "%s: net %lld %lld %lld %lld", row->desc, (long long)m.rx_bytes,
                      (long long)m.tx_bytes, (long long)m.rx_packets, (long long)m.tx_packets);
            CHECK_MSG(m.read_bytes == row->read_bytes && m.write_bytes == row->write_bytes &&
                          m.read_ops == row->read_ops && m.write_ops == row->write_ops,
                      "%s: blkio %lld %lld %lld %lld", row->desc, (long long)m.read_bytes,
                      (long long)m.write_bytes, (long long)m.read_ops, (long long)m.write_ops);
            CHECK_MSG(m.sampled_at_unix_ms == row->sampled_at, "%s: sampled_at %lld", row->desc,
                      (long long)m.sampled_at_unix_ms);
        } else {
            /* Untouched: still the pattern written above. */
            CHECK_MSG(m.memory_bytes == 0x5a5a5a5a5a5a5a5a, "%s: out written", row->desc);
        }
        cJSON_Delete(root);
        free(text);
    }
}

/* The reading a sample returns feeds the next one's delta. */
static void test_chain(void)
{
    char *text = fixture_text("stats_first.json");
    cJSON *root = text ? cJSON_Parse(text) : NULL;
    struct stats_cpu first, second;
    struct vm_metrics m;
    cJSON *cpu, *usage;

    CHECK(root != NULL);
    if (root == NULL)
        goto out;
    CHECK(stats_convert(root, NULL, NOW_MS, &m, &first) == STATS_NO_BASE);
    CHECK(first.valid && first.total_ns == 3000000000u && first.online_cpus == 2);
    cpu = cJSON_GetObjectItemCaseSensitive(root, "cpu_stats");
    usage = cJSON_GetObjectItemCaseSensitive(cpu, "cpu_usage");
    cJSON_SetNumberValue(cJSON_GetObjectItemCaseSensitive(usage, "total_usage"), 3500000000.0);
    cJSON_SetNumberValue(cJSON_GetObjectItemCaseSensitive(cpu, "system_cpu_usage"),
                         40002000000000.0);
    CHECK(stats_convert(root, &first, NOW_MS, &m, &second) == STATS_OK);
    CHECK_MSG(fabs(m.cpu_percent - 50.0) < 1e-6, "chained cpu %f", m.cpu_percent);
out:
    cJSON_Delete(root);
    free(text);
}

static void test_not_object(void)
{
    cJSON *arr = cJSON_Parse("[1,2]");
    struct vm_metrics m;
    struct stats_cpu cur;

    CHECK(stats_convert(arr, NULL, NOW_MS, &m, &cur) == -1);
    CHECK(stats_convert(NULL, NULL, NOW_MS, &m, &cur) == -1);
    cJSON_Delete(arr);
}

static void test_times(void)
{
    static const struct {
        const char *desc;
        const char *in;
        int64_t want;
    } t[] = {
        {"nanoseconds, Z", "2026-11-25T06:10:02.199660702Z", 1795587002199},
        {"no fraction", "2024-03-01T12:00:05Z", 1709294405000},
        {"positive offset", "2024-03-01T14:00:05.25+02:00", 1709294405250},
        {"negative offset", "2024-03-01T10:30:05.5-01:30", 1709294405500},
        {"epoch plus 1 ms", "1970-01-01T00:00:00.001Z", 1},
        {"Go zero time", "0001-01-01T00:00:00Z", -1},
        {"empty", "", -1},
        {"no zone", "2024-03-01T12:00:05", -1},
        {"empty fraction", "2024-03-01T12:00:05.Z", -1},
        {"month 13", "2024-13-01T12:00:05Z", -1},
        {"trailing text", "2024-03-01T12:00:05Zjunk", -1},
        {"short year", "24-03-01T12:00:05Z", -1},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        int64_t got = stats_parse_time_ms(t[i].in);

        CHECK_MSG(got == t[i].want, "%s: got %lld", t[i].desc, (long long)got);
    }
    CHECK(stats_parse_time_ms(NULL) == -1);
}

int main(void)
{
    test_rows();
    test_chain();
    test_not_object();
    test_times();
    return test_summary("test_stats");
}
