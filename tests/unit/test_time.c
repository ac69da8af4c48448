/* RFC 3339 parsing (berth/rfc3339.h): fractions of any length, Z and
 * offsets, Go's zero time, and what does not parse. */
#include "berth/rfc3339.h"
#include "testlib.h"

struct time_row {
    const char *desc;
    const char *in;
    int ok;
    int64_t want;
};

static const struct time_row rows[] = {
    {"nanoseconds, Z", "2026-11-25T06:10:02.199660702Z", 1, 1795587002199},
    {"no fraction", "2024-03-01T12:00:05Z", 1, 1709294405000},
    {"lower-case t and z", "2024-03-01t12:00:05z", 1, 1709294405000},
    {"positive offset", "2024-03-01T14:00:05.25+02:00", 1, 1709294405250},
    {"negative offset", "2024-03-01T10:30:05.5-01:30", 1, 1709294405500},
    {"epoch plus 1 ms", "1970-01-01T00:00:00.001Z", 1, 1},
    {"before the epoch", "1969-12-31T23:59:59Z", 1, -1000},
    {"Go zero time", "0001-01-01T00:00:00Z", 1, -62135596800000},
    {"empty", "", 0, 0},
    {"no zone", "2024-03-01T12:00:05", 0, 0},
    {"empty fraction", "2024-03-01T12:00:05.Z", 0, 0},
    {"month 13", "2024-13-01T12:00:05Z", 0, 0},
    {"hour 24", "2024-03-01T24:00:05Z", 0, 0},
    {"trailing text", "2024-03-01T12:00:05Zjunk", 0, 0},
    {"short year", "24-03-01T12:00:05Z", 0, 0},
    {"offset without a colon", "2024-03-01T12:00:05+0200", 0, 0},
};

int main(void)
{
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        int64_t got = 42;
        int rc = rfc3339_parse_ms(rows[i].in, &got);

        CHECK_MSG((rc == 0) == rows[i].ok, "%s: rc %d", rows[i].desc, rc);
        if (rows[i].ok)
            CHECK_MSG(got == rows[i].want, "%s: got %lld", rows[i].desc, (long long)got);
        else
            CHECK_MSG(got == 42, "%s: out written", rows[i].desc);
    }
    {
        int64_t got = 42;

        CHECK(rfc3339_parse_ms(NULL, &got) == -1 && got == 42);
    }
    return test_summary("test_time");
}
