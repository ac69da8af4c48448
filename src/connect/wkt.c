/* The well-known types' special JSON forms (protobuf's JSON mapping):
 * Timestamp and Duration as strings, wrappers as bare values, Struct,
 * Value and ListValue as any JSON, FieldMask as one string, Any as its
 * message plus "@type"; and the registry Any's type URLs resolve in. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/pb_check.h"
#include "berth/v1/observe.pb-c.h"
#include "connect/json_internal.h"
#include "google/protobuf/any.pb-c.h"
#include "google/protobuf/duration.pb-c.h"
#include "google/protobuf/empty.pb-c.h"
#include "google/protobuf/field_mask.pb-c.h"
#include "google/protobuf/struct.pb-c.h"
#include "google/protobuf/timestamp.pb-c.h"
#include "google/protobuf/wrappers.pb-c.h"
#include "krane/v1/deployment.pb-c.h"
#include "krane/v1/gateway.pb-c.h"
#include "metal/vmprovisioner/v1/vmprovisioner.pb-c.h"

/* Timestamps span 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59.999999999Z. */
#define TS_MIN_SECONDS INT64_C(-62135596800)
#define TS_MAX_SECONDS INT64_C(253402300799)
/* Durations span about +-10000 years. */
#define DURATION_MAX_SECONDS INT64_C(315576000000)
#define NANOS_PER_SECOND 1000000000
#define TYPE_URL_PREFIX_SEP '/'

enum wkt_kind {
    WKT_NONE,
    WKT_TIMESTAMP,
    WKT_DURATION,
    WKT_WRAPPER,
    WKT_STRUCT,
    WKT_VALUE,
    WKT_LIST,
    WKT_FIELD_MASK,
    WKT_ANY,
    WKT_EMPTY,
};

/* The well-known types: their kind, and their descriptors for Any. */
static const struct {
    const ProtobufCMessageDescriptor *desc;
    enum wkt_kind kind;
} wkt_table[] = {
    {&google__protobuf__timestamp__descriptor, WKT_TIMESTAMP},
    {&google__protobuf__duration__descriptor, WKT_DURATION},
    {&google__protobuf__double_value__descriptor, WKT_WRAPPER},
    {&google__protobuf__float_value__descriptor, WKT_WRAPPER},
    {&google__protobuf__int64_value__descriptor, WKT_WRAPPER},
    {&google__protobuf__uint64_value__descriptor, WKT_WRAPPER},
    {&google__protobuf__int32_value__descriptor, WKT_WRAPPER},
    {&google__protobuf__uint32_value__descriptor, WKT_WRAPPER},
    {&google__protobuf__bool_value__descriptor, WKT_WRAPPER},
    {&google__protobuf__string_value__descriptor, WKT_WRAPPER},
    {&google__protobuf__bytes_value__descriptor, WKT_WRAPPER},
    {&google__protobuf__struct__descriptor, WKT_STRUCT},
    {&google__protobuf__value__descriptor, WKT_VALUE},
    {&google__protobuf__list_value__descriptor, WKT_LIST},
    {&google__protobuf__field_mask__descriptor, WKT_FIELD_MASK},
    {&google__protobuf__any__descriptor, WKT_ANY},
    {&google__protobuf__empty__descriptor, WKT_EMPTY},
};

/* The services berthd serves: every message reachable from them is a type
 * an Any may name. */
static const ProtobufCServiceDescriptor *const known_services[] = {
    &metal__vmprovisioner__v1__vm_service__descriptor,
    &krane__v1__gateway_service__descriptor,
    &krane__v1__deployment_service__descriptor,
    &berth__v1__log_service__descriptor,
    &berth__v1__event_service__descriptor,
};

/* Descriptors already looked at in a registry search. */
struct seen {
    const ProtobufCMessageDescriptor **d;
    size_t n, cap;
};

static enum wkt_kind kind_of(const ProtobufCMessageDescriptor *desc);
static void *field_slot(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f);
static const ProtobufCFieldDescriptor *field(const ProtobufCMessageDescriptor *desc, unsigned id);
static int search(const ProtobufCMessageDescriptor *from, const char *name, struct seen *seen,
                  const ProtobufCMessageDescriptor **found);
static int find_type(const char *type_url, const ProtobufCMessageDescriptor *root,
                     const ProtobufCMessageDescriptor **found);
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d);
static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d);
static bool digits(const char *s, size_t n, unsigned *out);
static int parse_fraction(const char *s, size_t *used, int32_t *nanos);
static int append_fraction(struct json_enc *e, int32_t nanos);
static int dec_timestamp(struct json_dec *d, const cJSON *v, ProtobufCMessage *msg,
                         const struct json_path *at);
static int enc_timestamp(struct json_enc *e, const ProtobufCMessage *msg);
static int dec_duration(struct json_dec *d, const cJSON *v, ProtobufCMessage *msg,
                        const struct json_path *at);
static int enc_duration(struct json_enc *e, const ProtobufCMessage *msg);
static int dec_value_kind(struct json_dec *d, const cJSON *v, ProtobufCMessage *msg,
                          const struct json_path *at, int depth);
static int enc_value_kind(struct json_enc *e, const ProtobufCMessage *msg, int depth);
static void camel_path(const char *s, struct buf *out, struct berth_err *err, int *rc);
static void snake_path(const char *s, size_t n, struct buf *out, struct berth_err *err, int *rc);
static int dec_field_mask(struct json_dec *d, const cJSON *v, ProtobufCMessage *msg,
                          const struct json_path *at);
static int enc_field_mask(struct json_enc *e, const ProtobufCMessage *msg);
static int dec_any(struct json_dec *d, const cJSON *v, ProtobufCMessage *msg,
                   const struct json_path *at, int depth);
static int enc_any(struct json_enc *e, const ProtobufCMessage *msg, int depth);

/* ===================================================================== */
/* kinds and the registry                                                 */
/* ===================================================================== */

static enum wkt_kind kind_of(const ProtobufCMessageDescriptor *desc)
{
    if (desc == NULL || strncmp(desc->name, "google.protobuf.", 16) != 0)
        return WKT_NONE;
    for (size_t i = 0; i < sizeof(wkt_table) / sizeof(wkt_table[0]); i++)
        if (strcmp(wkt_table[i].desc->name, desc->name) == 0)
            return wkt_table[i].kind;
    return WKT_NONE;
}

bool wkt_is_special(const ProtobufCMessageDescriptor *desc)
{
    enum wkt_kind k = kind_of(desc);

    return k != WKT_NONE && k != WKT_EMPTY;
}

bool wkt_is_null_enum(const ProtobufCEnumDescriptor *desc)
{
    return desc != NULL && strcmp(desc->name, "google.protobuf.NullValue") == 0;
}

bool wkt_takes_null(const ProtobufCFieldDescriptor *f)
{
    if (f->type == PROTOBUF_C_TYPE_MESSAGE)
        return kind_of(f->descriptor) == WKT_VALUE;
    return f->type == PROTOBUF_C_TYPE_ENUM && wkt_is_null_enum(f->descriptor);
}

static void *field_slot(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f)
{
    return (char *)msg + f->offset;
}

static const ProtobufCFieldDescriptor *field(const ProtobufCMessageDescriptor *desc, unsigned id)
{
    return protobuf_c_message_descriptor_get_field(desc, id);
}

/* Depth-first over the message types reachable from `from`: 1 and *found
 * when one is called `name`, 0 when none is, -1 out of memory. */
static int search(const ProtobufCMessageDescriptor *from, const char *name, struct seen *seen,
                  const ProtobufCMessageDescriptor **found)
{
    for (size_t i = 0; i < seen->n; i++)
        if (seen->d[i] == from)
            return 0;
    if (seen->n == seen->cap) {
        size_t cap = seen->cap * 2 + 32;
        const ProtobufCMessageDescriptor **grown = realloc(seen->d, cap * sizeof(*grown));
        if (grown == NULL)
            return -1;
        seen->d = grown;
        seen->cap = cap;
    }
    seen->d[seen->n++] = from;
    if (strcmp(from->name, name) == 0) {
        *found = from;
        return 1;
    }
    for (unsigned i = 0; i < from->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &from->fields[i];
        int r;
        if (f->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        r = search(f->descriptor, name, seen, found);
        if (r != 0)
            return r;
    }
    return 0;
}

/* The message type a type URL ("type.googleapis.com/pkg.Msg") names: a
 * well-known type, one reachable from the message being coded, or one
 * reachable from berthd's services. 1 found, 0 unknown, -1 out of memory. */
static int find_type(const char *type_url, const ProtobufCMessageDescriptor *root,
                     const ProtobufCMessageDescriptor **found)
{
    const char *name = strrchr(type_url, TYPE_URL_PREFIX_SEP);
    struct seen seen = {NULL, 0, 0};
    int r = 0;

    if (name == NULL || name[1] == '\0')
        return 0;
    name++;
    for (size_t i = 0; i < sizeof(wkt_table) / sizeof(wkt_table[0]); i++) {
        if (strcmp(wkt_table[i].desc->name, name) == 0) {
            *found = wkt_table[i].desc;
            return 1;
        }
    }
    if (root != NULL)
        r = search(root, name, &seen, found);
    for (size_t s = 0; r == 0 && s < sizeof(known_services) / sizeof(known_services[0]); s++) {
        const ProtobufCServiceDescriptor *svc = known_services[s];
        for (unsigned m = 0; r == 0 && m < svc->n_methods; m++) {
            r = search(svc->methods[m].input, name, &seen, found);
            if (r == 0)
                r = search(svc->methods[m].output, name, &seen, found);
        }
    }
    free(seen.d);
    return r;
}

/* ===================================================================== */
/* Timestamp and Duration                                                 */
/* ===================================================================== */

/* Days since 1970-01-01 of a proleptic Gregorian date. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    int64_t era, yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    int64_t era, doe, yoe, doy, mp;

    z += 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = z - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    *d = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
    *m = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

/* Exactly n decimal digits at s. */
static bool digits(const char *s, size_t n, unsigned *out)
{
    unsigned v = 0;

    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    *out = v;
    return true;
}

/* ".123" (1 to 9 digits) at s, as nanoseconds; *used 0 when s holds no '.'. */
static int parse_fraction(const char *s, size_t *used, int32_t *nanos)
{
    size_t n = 0;
    int32_t v = 0;

    *used = 0;
    *nanos = 0;
    if (*s != '.')
        return 0;
    while (s[1 + n] >= '0' && s[1 + n] <= '9')
        n++;
    if (n == 0 || n > 9)
        return -1;
    for (size_t i = 0; i < 9; i++)
        v = v * 10 + (i < n ? s[1 + i] - '0' : 0);
    *used = 1 + n;
    *nanos = v;
    return 0;
}

/* Nanoseconds as 0, 3, 6 or 9 fractional digits. */
static int append_fraction(struct json_enc *e, int32_t nanos)
{
    if (nanos == 0)
        return 0;
    if (nanos % 1000000 == 0)
        return buf_printf(e->out, e->err, ".%03" PRId32, nanos / 1000000);
    if (nanos % 1000 == 0)
        return buf_printf(e->out, e->err, ".%06" PRId32, nanos / 1000);
    return buf_printf(e->out, e->err, ".%09" PRId32, nanos);
}

/* RFC 3339: "1972-01-01T10:00:20.021Z", or with an offset ("+01:00"). */
static int dec_timestamp(struct json_dec *d, const cJSON *v, ProtobufCMessage *msg,
                         const struct json_path *at)
{
    static const unsigned mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const char *s;
    unsigned y, mo, da, h, mi, se, oh = 0, om = 0;
    int64_t secs, offset = 0;
    int32_t nanos;
    size_t used;

    if (!cJSON_IsString(v))
        return json_dec_fail_got(d, at, "an RFC 3339 timestamp string", v);
    if (json_dec_check_string(d, v, at) < 0)
        return -1;
    s = v->valuestring;
    if (strlen(s) < 20 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) ||
        s[7] != '-' || !digits(s + 8, 2, &da) || s[10] != 'T' || !digits(s + 11, 2, &h) ||
        s[13] != ':' || !digits(s + 14, 2, &mi) || s[16] != ':' || !digits(s + 17, 2, &se) ||
        parse_fraction(s + 19, &used, &nanos) < 0)
        goto bad;
    s += 19 + used;
    if (s[0] == 'Z' && s[1] == '\0') {
        offset = 0;
    } else if ((s[0] == '+' || s[0] == '-') && digits(s + 1, 2, &oh) && s[3] == ':' &&
               digits(s + 4, 2, &om) && s[6] == '\0' && oh < 24 && om < 60) {
        offset = (int64_t)(oh * 3600 + om * 60) * (s[0] == '-' ? -1 : 1);
    } else {
        goto bad;
    }
    if (y < 1 || mo < 1 || mo > 12 || da < 1 || da > mdays[mo - 1] || h > 23 || mi > 59 || se > 59)
        goto bad;
    if (mo == 2 && da == 29 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)))
        goto bad;
    secs = days_from_civil(y, mo, da) * 86400 + h * 3600 + mi * 60 + se - offset;
    if (secs < TS_MIN_SECONDS || secs > TS_MAX_SECONDS)
        return json_names_fail(d->err, at, "timestamp out of range (years 0001 to 9999)");
    *(int64_t *)field_slot(msg, field(msg->descriptor, 1)) = secs;
    *(int32_t *)field_slot(msg, field(msg->descriptor, 2)) = nanos;
    return 0;
bad:
    return json_dec_fail_got(d, at, "an RFC 3339 timestamp string", v);
}

static int enc_timestamp(struct json_enc *e, const ProtobufCMessage *msg)
{
    int64_t secs = *(const int64_t *)field_slot(msg, field(msg->descriptor, 1));
    int32_t nanos = *(const int32_t *)field_slot(msg, field(msg->descriptor, 2));
    int64_t days, rem, y;
    unsigned mo, da;

    if (secs < TS_MIN_SECONDS || secs > TS_MAX_SECONDS || nanos < 0 || nanos >= NANOS_PER_SECOND)
        return berth_err_set(e->err, BERTH_INTERNAL,
                             "google.protobuf.Timestamp out of range: %" PRId64 "s %" PRId32 "ns",
                             secs, nanos);
    days = secs / 86400;
    rem = secs % 86400;
    if (rem < 0) {
        rem += 86400;
        days--;
    }
    civil_from_days(days, &y, &mo, &da);
    if (buf_printf(e->out, e->err, "\"%04" PRId64 "-%02u-%02uT%02u:%02u:%02u", y, mo, da,
                   (unsigned)(rem / 3600), (unsigned)(rem / 60 % 60), (unsigned)(rem % 60)) < 0 ||
        append_fraction(e, nanos) < 0)
        return -1;
    return json_enc_puts(e, "Z\"");
}

/* "1.5s", "-0.000000001s": seconds with up to 9 fractional digits. */
static int dec_duration(struct json_dec *d, const cJSON *v, ProtobufCMessage *msg,
                        const struct json_path *at)
{
    const char *s, *p;
    bool neg;
    int64_t secs = 0;
    int32_t nanos;
    size_t used, n = 0;

    if (!cJSON_IsString(v))
        return json_dec_fail_got(d, at, "a duration string such as \"1.5s\"", v);
    if (json_dec_check_string(d, v, at) < 0)
        return -1;
    s = v->valuestring;
    neg = *s == '-';
    p = neg ? s + 1 : s;
    while (p[n] >= '0' && p[n] <= '9') {
        if (secs > DURATION_MAX_SECONDS)
            return json_names_fail(d->err, at, "duration out of range (+-315576000000s)");
        secs = secs * 10 + (p[n] - '0');
        n++;
    }
    if (n == 0 || parse_fraction(p + n, &used, &nanos) < 0 || p[n + used] != 's' ||
        p[n + used + 1] != '\0')
        return json_dec_fail_got(d, at, "a duration string such as \"1.5s\"", v);
    if (secs > DURATION_MAX_SECONDS)
        return json_names_fail(d->err, at, "duration out of range (+-315576000000s)");
    *(int64_t *)field_slot(msg, field(msg->descriptor, 1)) = neg ? -secs : secs;
    *(int32_t *)field_slot(msg, field(msg->descriptor, 2)) = neg ? -nanos : nanos;
    return 0;
}

static int enc_duration(struct json_enc *e, const ProtobufCMessage *msg)
{
    int64_t secs = *(const int64_t *)field_slot(msg, field(msg->descriptor, 1));
    int32_t nanos = *(const int32_t *)field_slot(msg, field(msg->descriptor, 2));

    if (secs < -DURATION_MAX_SECONDS || secs > DURATION_MAX_SECONDS || nanos <= -NANOS_PER_SECOND ||
        nanos >= NANOS_PER_SECOND || (secs > 0 && nanos < 0) || (secs < 0 && nanos > 0))
        return berth_err_set(e->err, BERTH_INTERNAL,
                             "google.protobuf.Duration out of range: %" PRId64 "s %" PRId32 "ns",
                             secs, nanos);
    if (buf_printf(e->out, e->err, "\"%s%" PRId64, secs < 0 || nanos < 0 ? "-" : "",
                   secs < 0 ? -secs : secs) < 0 ||
        append_fraction(e, nanos < 0 ? -nanos : nanos) < 0)
        return -1;
    return json_enc_puts(e, "s\"");
}

/* ===================================================================== */
/* Value                                                                  */
/* ===================================================================== */

/* Any JSON value into the matching member of Value's oneof. */
static int dec_value_kind(struct json_dec *d, const cJSON *v, ProtobufCMessage *msg,
                          const struct json_path *at, int depth)
{
    unsigned id;

    if (cJSON_IsNull(v))
        id = 1;
    else if (cJSON_IsNumber(v))
        id = 2;
    else if (cJSON_IsString(v))
        id = 3;
    else if (cJSON_IsBool(v))
        id = 4;
    else if (cJSON_IsObject(v))
        id = 5;
    else
        id = 6;
    return json_dec_field(d, field(msg->descriptor, id), v, msg, at, depth);
}

static int enc_value_kind(struct json_enc *e, const ProtobufCMessage *msg, int depth)
{
    const ProtobufCFieldDescriptor *null_f = field(msg->descriptor, 1), *f;
    uint32_t kind =
        *(const uint32_t *)(const void *)((const char *)msg + null_f->quantifier_offset);

    f = kind != 0 ? field(msg->descriptor, kind) : NULL;
    if (f == NULL)
        return berth_err_set(e->err, BERTH_INTERNAL, "google.protobuf.Value with no kind set");
    if (f->type == PROTOBUF_C_TYPE_DOUBLE && !isfinite(*(const double *)field_slot(msg, f)))
        return berth_err_set(e->err, BERTH_INTERNAL,
                             "google.protobuf.Value cannot hold NaN or Infinity");
    return json_enc_value(e, f, field_slot(msg, f), depth);
}

/* ===================================================================== */
/* FieldMask                                                              */
/* ===================================================================== */

/* "foo_bar" -> "fooBar": an underscore before a lowercase letter goes. */
static void camel_path(const char *s, struct buf *out, struct berth_err *err, int *rc)
{
    for (; *rc == 0 && *s != '\0'; s++) {
        char c = *s;
        if (c == '_' && s[1] >= 'a' && s[1] <= 'z') {
            c = (char)(s[1] - 'a' + 'A');
            s++;
        }
        *rc = buf_append(out, &c, 1, err);
    }
}

/* "fooBar" -> "foo_bar". */
static void snake_path(const char *s, size_t n, struct buf *out, struct berth_err *err, int *rc)
{
    for (size_t i = 0; *rc == 0 && i < n; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'Z') {
            char two[2] = {'_', (char)(c - 'A' + 'a')};
            *rc = buf_append(out, two, 2, err);
        } else {
            *rc = buf_append(out, &c, 1, err);
        }
    }
    if (*rc == 0)
        *rc = buf_append(out, "", 0, err);
}

static int dec_field_mask(struct json_dec *d, const cJSON *v, ProtobufCMessage *msg,
                          const struct json_path *at)
{
    const ProtobufCFieldDescriptor *paths_f = field(msg->descriptor, 1);
    size_t n = 1, k = 0;
    const char *s;
    char **paths;

    if (!cJSON_IsString(v))
        return json_dec_fail_got(d, at, "a field mask string", v);
    if (json_dec_check_string(d, v, at) < 0)
        return -1;
    s = v->valuestring;
    if (*s == '\0')
        return 0;
    if (strchr(s, '_') != NULL)
        return json_names_fail(d->err, at, "field mask paths are lowerCamelCase, without '_'");
    for (const char *p = s; *p != '\0'; p++)
        n += *p == ',';
    paths = json_dec_alloc(d, n * sizeof(*paths));
    if (paths == NULL)
        return -1;
    *(char ***)field_slot(msg, paths_f) = paths;
    *(size_t *)(void *)((char *)msg + paths_f->quantifier_offset) = 0;
    while (k < n) {
        size_t len = strcspn(s, ",");
        struct buf snake;
        int rc = 0;

        buf_init(&snake, (size_t)4 * len + 16);
        snake_path(s, len, &snake, d->err, &rc);
        paths[k] = rc == 0 ? json_dec_strndup(d, snake.data, snake.len) : NULL;
        buf_release(&snake);
        if (paths[k] == NULL)
            return rc < 0 ? -1 : json_dec_oom(d);
        *(size_t *)(void *)((char *)msg + paths_f->quantifier_offset) = ++k;
        s += len + (s[len] == ',');
    }
    return 0;
}

static int enc_field_mask(struct json_enc *e, const ProtobufCMessage *msg)
{
    const ProtobufCFieldDescriptor *paths_f = field(msg->descriptor, 1);
    size_t n = *(const size_t *)(const void *)((const char *)msg + paths_f->quantifier_offset);
    char *const *paths = *(char *const *const *)field_slot(msg, paths_f);
    struct buf camel, back, joined;
    int rc = 0;

    buf_init(&joined, (size_t)1 << 30);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const char *p = paths[i] != NULL ? paths[i] : "";
        buf_init(&camel, (size_t)1 << 30);
        buf_init(&back, (size_t)1 << 30);
        camel_path(p, &camel, e->err, &rc);
        if (rc == 0)
            rc = buf_append(&camel, "", 0, e->err);
        if (rc == 0)
            snake_path(camel.data, camel.len, &back, e->err, &rc);
        if (rc == 0 && (strcmp(back.data, p) != 0 || strpbrk(camel.data, ",_") != NULL)) {
            char quoted[JSON_ECHO_MAX + 8];
            json_names_echo(quoted, sizeof(quoted), p);
            rc = berth_err_set(e->err, BERTH_INTERNAL,
                               "field mask path '%s' has no lowerCamelCase form", quoted);
        }
        if (rc == 0 && i > 0)
            rc = buf_append(&joined, ",", 1, e->err);
        if (rc == 0)
            rc = buf_append(&joined, camel.data, camel.len, e->err);
        buf_release(&camel);
        buf_release(&back);
    }
    if (rc == 0)
        rc = json_enc_string(e, joined.data != NULL ? joined.data : "");
    buf_release(&joined);
    return rc;
}

/* ===================================================================== */
/* Any                                                                    */
/* ===================================================================== */

/* {"@type": "type.googleapis.com/pkg.Msg", ...Msg's fields} or, for a
 * well-known type, {"@type": ..., "value": <its JSON>}. */
static int dec_any(struct json_dec *d, const cJSON *v, ProtobufCMessage *msg,
                   const struct json_path *at, int depth)
{
    const ProtobufCFieldDescriptor *url_f = field(msg->descriptor, 1);
    const ProtobufCFieldDescriptor *value_f = field(msg->descriptor, 2);
    const ProtobufCMessageDescriptor *desc = NULL;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(v, "@type"), *body = v;
    ProtobufCMessage *inner = NULL;
    ProtobufCBinaryData *bd;
    char quoted[JSON_ECHO_MAX + 8];
    int rc = -1, r;

    if (!cJSON_IsObject(v))
        return json_dec_fail_got(d, at, "an object with \"@type\"", v);
    if (v->child == NULL)
        return 0;
    if (!cJSON_IsString(type))
        return json_names_fail(d->err, at, "expected \"@type\" naming the message in an Any");
    if (json_dec_check_string(d, type, at) < 0)
        return -1;
    r = find_type(type->valuestring, d->root, &desc);
    if (r < 0)
        return json_dec_oom(d);
    if (r == 0) {
        json_names_echo(quoted, sizeof(quoted), type->valuestring);
        return json_names_fail(d->err, at, "unknown type '%s' in an Any", quoted);
    }
    if (kind_of(desc) != WKT_NONE) {
        body = cJSON_GetObjectItemCaseSensitive(v, "value");
        if (body == NULL && kind_of(desc) != WKT_EMPTY)
            return json_names_fail(d->err, at, "expected \"value\" for the %s in an Any",
                                   desc->name);
        if (body == NULL)
            body = v;
    }
    if (json_dec_submessage(d, desc, body, &inner, at, depth + 1) < 0)
        goto out;
    *(char **)field_slot(msg, url_f) =
        json_dec_strndup(d, type->valuestring, strlen(type->valuestring));
    if (*(char **)field_slot(msg, url_f) == NULL)
        goto out;
    bd = field_slot(msg, value_f);
    bd->len = protobuf_c_message_get_packed_size(inner);
    bd->data = json_dec_alloc(d, bd->len);
    if (bd->data == NULL) {
        bd->len = 0;
        goto out;
    }
    protobuf_c_message_pack(inner, bd->data);
    rc = 0;
out:
    if (inner != NULL)
        protobuf_c_message_free_unpacked(inner, d->alloc);
    return rc;
}

static int enc_any(struct json_enc *e, const ProtobufCMessage *msg, int depth)
{
    const char *url = *(char *const *)field_slot(msg, field(msg->descriptor, 1));
    const ProtobufCBinaryData *bd = field_slot(msg, field(msg->descriptor, 2));
    const ProtobufCMessageDescriptor *desc = NULL;
    ProtobufCMessage *inner = NULL;
    bool first = false;
    int r, rc = -1;

    if ((url == NULL || url[0] == '\0') && bd->len == 0)
        return json_enc_puts(e, "{}");
    r = find_type(url != NULL ? url : "", e->root, &desc);
    if (r <= 0)
        return berth_err_set(e->err, r < 0 ? BERTH_RESOURCE_EXHAUSTED : BERTH_INTERNAL,
                             "an Any names a type this server does not know");
    inner = protobuf_c_message_unpack(desc, NULL, bd->len, bd->data);
    if (inner == NULL)
        return berth_err_set(e->err, BERTH_INTERNAL, "an Any's value is not a valid %s",
                             desc->name);
    if (pb_check_dedupe(inner, NULL, e->err) < 0 || json_enc_puts(e, "{\"@type\":") < 0 ||
        json_enc_string(e, url) < 0)
        goto out;
    if (kind_of(desc) != WKT_NONE) {
        if (json_enc_puts(e, ",\"value\":") < 0 || json_enc_message(e, inner, depth + 1) < 0)
            goto out;
    } else if (json_enc_fields(e, inner, &first, depth + 1) < 0) {
        goto out;
    }
    rc = json_enc_puts(e, "}");
out:
    protobuf_c_message_free_unpacked(inner, NULL);
    return rc;
}

/* ===================================================================== */
/* dispatch                                                               */
/* ===================================================================== */

int wkt_decode(struct json_dec *d, const ProtobufCMessageDescriptor *desc, const cJSON *v,
               ProtobufCMessage *msg, const struct json_path *at, int depth)
{
    switch (kind_of(desc)) {
    case WKT_TIMESTAMP:
        return dec_timestamp(d, v, msg, at);
    case WKT_DURATION:
        return dec_duration(d, v, msg, at);
    case WKT_WRAPPER:
        if (cJSON_IsNull(v) || cJSON_IsArray(v) || cJSON_IsObject(v))
            return json_dec_fail_got(d, at, "a bare value for a wrapper type", v);
        return json_dec_field(d, field(desc, 1), v, msg, at, depth);
    case WKT_STRUCT:
        return json_dec_field(d, field(desc, 1), v, msg, at, depth);
    case WKT_VALUE:
        return dec_value_kind(d, v, msg, at, depth);
    case WKT_LIST:
        return json_dec_field(d, field(desc, 1), v, msg, at, depth);
    case WKT_FIELD_MASK:
        return dec_field_mask(d, v, msg, at);
    case WKT_ANY:
        return dec_any(d, v, msg, at, depth);
    case WKT_EMPTY:
    case WKT_NONE:
        break;
    }
    if (!cJSON_IsObject(v))
        return json_dec_fail_got(d, at, "an object", v);
    return json_dec_fields(d, desc, v, msg, at, depth);
}

int wkt_encode(struct json_enc *e, const ProtobufCMessage *msg, int depth)
{
    const ProtobufCMessageDescriptor *desc = msg->descriptor;
    bool first = true;

    switch (kind_of(desc)) {
    case WKT_TIMESTAMP:
        return enc_timestamp(e, msg);
    case WKT_DURATION:
        return enc_duration(e, msg);
    case WKT_WRAPPER:
        return json_enc_value(e, field(desc, 1), field_slot(msg, field(desc, 1)), depth);
    case WKT_STRUCT:
    case WKT_LIST:
        return json_enc_field_value(e, msg, field(desc, 1), depth);
    case WKT_VALUE:
        return enc_value_kind(e, msg, depth);
    case WKT_FIELD_MASK:
        return enc_field_mask(e, msg);
    case WKT_ANY:
        return enc_any(e, msg, depth);
    case WKT_EMPTY:
    case WKT_NONE:
        break;
    }
    if (json_enc_puts(e, "{") < 0 || json_enc_fields(e, msg, &first, depth) < 0)
        return -1;
    return json_enc_puts(e, "}");
}
