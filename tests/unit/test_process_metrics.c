/* Unit tests for src/metrics/process_metrics.c: the figures of this very
 * process move the way they must when it opens files, allocates and works. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "berth/process_metrics.h"
#include "testlib.h"

int main(void)
{
    struct process_metrics a, b;
    struct berth_err err;
    int fds[8];
    char *mem;
    volatile double x = 0;
    time_t now = time(NULL);

    berth_err_clear(&err);
    CHECK(process_metrics_read(&a, &err) == 0);
    CHECK(a.resident_bytes > 0 && a.virtual_bytes >= a.resident_bytes);
    CHECK(a.max_fds > 0 && a.open_fds >= 3 && a.open_fds < a.max_fds);
    CHECK(a.threads >= 1);
    CHECK_MSG(a.start_time_seconds > (double)now - 600 && a.start_time_seconds <= (double)now + 2,
              "start %f now %ld", a.start_time_seconds, (long)now);

    for (int i = 0; i < 8; i++)
        fds[i] = open("/dev/null", O_RDONLY);
    mem = malloc(64 << 20);
    if (mem != NULL)
        memset(mem, 1, 64 << 20);
    for (long i = 0; i < 30000000; i++)
        x += (double)i * 0.5;
    CHECK(process_metrics_read(&b, &err) == 0);
    CHECK_MSG(b.open_fds == a.open_fds + 8, "fds %llu -> %llu", (unsigned long long)a.open_fds,
              (unsigned long long)b.open_fds);
    CHECK(b.resident_bytes >= a.resident_bytes + (60 << 20));
    CHECK(b.cpu_seconds > a.cpu_seconds);
    CHECK(b.start_time_seconds == a.start_time_seconds);
    for (int i = 0; i < 8; i++)
        close(fds[i]);
    free(mem);
    (void)x;
    return test_summary("test_process_metrics");
}
