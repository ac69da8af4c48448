/* RFC 3339 parsing (see berth/rfc3339.h): fixed-width fields checked for
 * range one by one, then timegm for the calendar arithmetic. */
#include "berth/rfc3339.h"

#include <string.h>
#include <time.h>

static int rfc3339_field(const char **p, int width, int lo, int hi, int *out);

/* A fixed-width decimal field at *p within [lo, hi]; advances *p. */
static int rfc3339_field(const char **p, int width, int lo, int hi, int *out)
{
    int v = 0;

    for (int i = 0; i < width; i++) {
        char ch = (*p)[i];

        if (ch < '0' || ch > '9')
            return -1;
        v = v * 10 + (ch - '0');
    }
    if (v < lo || v > hi)
        return -1;
    *p += width;
    *out = v;
    return 0;
}

int rfc3339_parse_ms(const char *s, int64_t *unix_ms)
{
    struct tm tm;
    const char *p = s;
    int year, mon, day, hour, min, sec, frac_ms = 0, off_min = 0;
    time_t t;

    if (s == NULL)
        return -1;
    if (rfc3339_field(&p, 4, 0, 9999, &year) < 0 || *p++ != '-')
        return -1;
    if (rfc3339_field(&p, 2, 1, 12, &mon) < 0 || *p++ != '-')
        return -1;
    if (rfc3339_field(&p, 2, 1, 31, &day) < 0 || (*p != 'T' && *p != 't'))
        return -1;
    p++;
    if (rfc3339_field(&p, 2, 0, 23, &hour) < 0 || *p++ != ':')
        return -1;
    if (rfc3339_field(&p, 2, 0, 59, &min) < 0 || *p++ != ':')
        return -1;
    if (rfc3339_field(&p, 2, 0, 60, &sec) < 0)
        return -1;
    if (*p == '.') {
        int digits = 0;

        for (p++; *p >= '0' && *p <= '9'; p++, digits++)
            if (digits < 3)
                frac_ms = frac_ms * 10 + (*p - '0');
        if (digits == 0)
            return -1;
        for (; digits < 3; digits++)
            frac_ms *= 10;
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p++ == '-' ? -1 : 1, oh, om;

        if (rfc3339_field(&p, 2, 0, 23, &oh) < 0 || *p++ != ':' ||
            rfc3339_field(&p, 2, 0, 59, &om) < 0)
            return -1;
        off_min = sign * (oh * 60 + om);
    } else {
        return -1;
    }
    if (*p != '\0')
        return -1;
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = year - 1900;
    tm.tm_mon = mon - 1;
    tm.tm_mday = day;
    tm.tm_hour = hour;
    tm.tm_min = min;
    tm.tm_sec = sec;
    t = timegm(&tm);
    *unix_ms = ((int64_t)t - (int64_t)off_min * 60) * 1000 + frac_ms;
    return 0;
}
