/* proto3 JSON -> protobuf-c messages (see berth/json_codec.h): cJSON for
 * parsing, the descriptors for the shape, the well-known types through
 * wkt.c. Decoded messages live in the caller's ProtobufCAllocator alone. */
#include "berth/json_codec.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/base64.h"
#include "berth/pb_check.h"
#include "berth/utf8.h"
#include "connect/json_internal.h"

/* Doubles at or beyond this round to infinity as a float. */
#define FLOAT_ROUND_LIMIT 0x1.ffffffp+127

enum num_result { NUM_OK, NUM_SYNTAX, NUM_FRACTION, NUM_RANGE };

/* Bad \u escapes of a string token, found before cJSON parses the body. */
enum bad_escape { ESC_NOT_HEX = 1, ESC_LONE_SURROGATE };

static bool is_digit(char c);
static bool json_number_text(const char *s, bool leading_zeros);
static enum num_result parse_decimal(const char *s, bool leading_zeros, bool *neg, uint64_t *mag);
static bool is_blank(const char *data, size_t len);
static int scan_raw(const char *data, size_t len, struct berth_err *err);
static enum bad_escape escape_problem(const char *data, size_t len, size_t at, bool *pair);
static int patch_escapes(const char *data, size_t len, char **patched, size_t **bad_at,
                         size_t *n_bad, struct berth_err *err);
static void string_nodes(const cJSON *v, bool in_object, size_t *k, const size_t *bad_index,
                         size_t n_bad, struct json_bad_string *out, size_t *found);
static int node_cmp(const void *a, const void *b);
static int index_bad_strings(struct json_dec *d, const cJSON *root, const size_t *bad_at,
                             size_t n_bad);
static const struct json_bad_string *find_bad(const struct json_dec *d, const cJSON *v, bool key);
static int parse_json(const char *data, size_t len, cJSON **root, struct berth_err *err);
static size_t scan_numbers(const char *data, size_t len, struct json_num_text *out);
static void number_nodes(const cJSON *v, struct json_num_text *nums, size_t n, size_t *k);
static int index_numbers(struct json_dec *d, const char *data, size_t len, const cJSON *root);
static const struct json_num_text *find_number(const struct json_dec *d, const cJSON *v);
static int check_number_text(struct json_dec *d, const cJSON *v, const struct json_path *at);
static const char *describe(const cJSON *v, char *tmp, size_t tmpsz);
static int fail_escape(struct json_dec *d, const struct json_bad_string *bad,
                       const struct json_path *at);
static int dec_root(struct json_dec *d, const ProtobufCMessageDescriptor *desc, const cJSON *root,
                    ProtobufCMessage **out);
static int dec_singular(struct json_dec *d, const ProtobufCFieldDescriptor *f, const cJSON *v,
                        ProtobufCMessage *msg, const struct json_path *at, int depth);
static int dec_repeated(struct json_dec *d, const ProtobufCFieldDescriptor *f, const cJSON *v,
                        ProtobufCMessage *msg, const struct json_path *at, int depth);
static int dec_map(struct json_dec *d, const ProtobufCFieldDescriptor *f, const cJSON *v,
                   ProtobufCMessage *msg, const struct json_path *at, int depth);
static int dec_map_entry(struct json_dec *d, const ProtobufCMessageDescriptor *entry_desc,
                         const cJSON *item, ProtobufCMessage *entry, const struct json_path *at,
                         int depth);
static int dec_map_key(struct json_dec *d, const ProtobufCFieldDescriptor *key_f, const cJSON *item,
                       void *slot, const struct json_path *at);
static int dec_value(struct json_dec *d, const ProtobufCFieldDescriptor *f, const cJSON *v,
                     void *slot, const struct json_path *at, int depth);
static int int_from_json(struct json_dec *d, const cJSON *v, ProtobufCType type,
                         const struct json_path *at, bool *neg, uint64_t *mag);
static int int_from_text(struct json_dec *d, const char *s, bool map_key, ProtobufCType type,
                         const struct json_path *at, bool *neg, uint64_t *mag);
static int int_store(struct json_dec *d, ProtobufCType type, bool neg, uint64_t mag, void *slot,
                     const struct json_path *at);
static int dec_integer(struct json_dec *d, ProtobufCType type, const cJSON *v, void *slot,
                       const struct json_path *at);
static int dec_floating(struct json_dec *d, ProtobufCType type, const cJSON *v, void *slot,
                        const struct json_path *at);
static int dec_enum(struct json_dec *d, const ProtobufCFieldDescriptor *f, const cJSON *v,
                    void *slot, const struct json_path *at);
static int dec_string(struct json_dec *d, const cJSON *v, void *slot, const struct json_path *at);
static int dec_bytes(struct json_dec *d, const cJSON *v, void *slot, const struct json_path *at);

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* The JSON number grammar: no leading zeros ("01") unless asked to take
 * them (map keys, where "007" has always meant 7). */
static bool json_number_text(const char *s, bool leading_zeros)
{
    if (*s == '-')
        s++;
    if (!is_digit(*s) || (!leading_zeros && s[0] == '0' && is_digit(s[1])))
        return false;
    while (is_digit(*s))
        s++;
    if (*s == '.') {
        s++;
        if (!is_digit(*s))
            return false;
        while (is_digit(*s))
            s++;
    }
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-')
            s++;
        if (!is_digit(*s))
            return false;
        while (is_digit(*s))
            s++;
    }
    return *s == '\0';
}

/* Exact integer value of a decimal in JSON number form ("12", "-3",
 * "1e2", "1.50e1"): sign and magnitude, no detour through double. */
static enum num_result parse_decimal(const char *s, bool leading_zeros, bool *neg, uint64_t *mag)
{
    const char *intp, *frac = "";
    size_t nint, nfrac = 0, total, first, last;
    long exp = 0, exp10;
    bool exp_neg = false;
    uint64_t v = 0;

    if (!json_number_text(s, leading_zeros))
        return NUM_SYNTAX;
    *neg = *s == '-';
    if (*neg)
        s++;
    intp = s;
    while (is_digit(*s))
        s++;
    nint = (size_t)(s - intp);
    if (*s == '.') {
        frac = ++s;
        while (is_digit(*s))
            s++;
        nfrac = (size_t)(s - frac);
    }
    if (*s == 'e' || *s == 'E') {
        s++;
        exp_neg = *s == '-';
        if (*s == '+' || *s == '-')
            s++;
        for (; is_digit(*s); s++)
            if (exp < 100000) /* saturate: anything this big is out of range */
                exp = exp * 10 + (*s - '0');
        if (exp_neg)
            exp = -exp;
    }
    /* Significant digits run from `first` to `last` across both parts. */
    total = nint + nfrac;
    for (first = 0; first < total; first++)
        if ((first < nint ? intp[first] : frac[first - nint]) != '0')
            break;
    if (first == total) {
        *mag = 0;
        return NUM_OK;
    }
    for (last = total - 1; last > first; last--)
        if ((last < nint ? intp[last] : frac[last - nint]) != '0')
            break;
    exp10 = exp - (long)nfrac + (long)(total - 1 - last);
    if (exp10 < 0)
        return NUM_FRACTION;
    if ((long)(last - first + 1) + exp10 > 20)
        return NUM_RANGE;
    for (size_t i = first; i <= last; i++) {
        unsigned digit = (unsigned)((i < nint ? intp[i] : frac[i - nint]) - '0');
        if (v > (UINT64_MAX - digit) / 10)
            return NUM_RANGE;
        v = v * 10 + digit;
    }
    for (long i = 0; i < exp10; i++) {
        if (v > UINT64_MAX / 10)
            return NUM_RANGE;
        v *= 10;
    }
    *mag = v;
    return NUM_OK;
}

/* ===================================================================== */
/* decoding                                                               */
/* ===================================================================== */

int json_codec_decode(const ProtobufCMessageDescriptor *desc, const char *data, size_t len,
                      ProtobufCAllocator *alloc, ProtobufCMessage **out, struct berth_err *err)
{
    return json_codec_decode_limited(desc, data, len, NULL, alloc, out, err);
}

int json_codec_decode_limited(const ProtobufCMessageDescriptor *desc, const char *data, size_t len,
                              const struct codec_limits *limits, ProtobufCAllocator *alloc,
                              ProtobufCMessage **out, struct berth_err *err)
{
    struct json_dec d = {.alloc = alloc, .err = err, .root = desc};
    cJSON *root = NULL;
    ProtobufCMessage *msg = NULL;
    char *patched = NULL;
    size_t *bad_at = NULL, n_bad = 0;
    const char *text = data;
    int rc = -1;

    if (data == NULL || is_blank(data, len)) {
        berth_err_set(err, BERTH_INVALID_ARGUMENT, "empty JSON body; send {} for an empty message");
        goto out;
    }
    /* Counted before anything is built: the tree and the message cost
     * many times the text of tiny values. */
    if (scan_raw(data, len, err) < 0 ||
        (limits != NULL && json_shape_check(data, len, limits, err) < 0) ||
        patch_escapes(data, len, &patched, &bad_at, &n_bad, err) < 0)
        goto out;
    if (patched != NULL)
        text = patched;
    if (parse_json(text, len, &root, err) < 0)
        goto out;
    if (index_numbers(&d, text, len, root) < 0 || index_bad_strings(&d, root, bad_at, n_bad) < 0)
        goto out;
    if (dec_root(&d, desc, root, &msg) < 0)
        goto out;
    /* A bad escape the walk did not reach (an unknown field, a key). */
    if (n_bad > 0) {
        berth_err_set(err, BERTH_INVALID_ARGUMENT, "malformed JSON at byte %zu: invalid \\u escape",
                      bad_at[1]);
        goto out;
    }
    *out = msg;
    msg = NULL;
    rc = 0;
out:
    if (msg != NULL)
        protobuf_c_message_free_unpacked(msg, alloc);
    free(d.nums);
    free(d.bad);
    free(bad_at);
    free(patched);
    cJSON_Delete(root);
    return rc;
}

/* The root: an object, or any JSON value for a well-known type. */
static int dec_root(struct json_dec *d, const ProtobufCMessageDescriptor *desc, const cJSON *root,
                    ProtobufCMessage **out)
{
    ProtobufCMessage *msg = NULL;
    char tmp[64];

    if (!wkt_is_special(desc) && !cJSON_IsObject(root))
        return berth_err_set(d->err, BERTH_INVALID_ARGUMENT, "expected a JSON object, got %s",
                             describe(root, tmp, sizeof(tmp)));
    if (json_dec_submessage(d, desc, root, &msg, NULL, 1) < 0) {
        if (msg != NULL)
            protobuf_c_message_free_unpacked(msg, d->alloc);
        return -1;
    }
    *out = msg;
    return 0;
}

/* What is wrong with the \u escape at data[at] ("\\u" there), if anything:
 * four hex digits, and a UTF-16 surrogate only as a high-low pair. */
static enum bad_escape escape_problem(const char *data, size_t len, size_t at, bool *pair)
{
    unsigned long hi = 0, lo = 0;
    char *end = NULL;
    char hex[5];

    if (len - at < 6 || !isxdigit((unsigned char)data[at + 2]) ||
        !isxdigit((unsigned char)data[at + 3]) || !isxdigit((unsigned char)data[at + 4]) ||
        !isxdigit((unsigned char)data[at + 5]))
        return ESC_NOT_HEX;
    memcpy(hex, data + at + 2, 4);
    hex[4] = '\0';
    hi = strtoul(hex, &end, 16);
    if (hi >= 0xdc00 && hi <= 0xdfff)
        return ESC_LONE_SURROGATE;
    if (hi < 0xd800 || hi > 0xdbff)
        return 0;
    if (len - at < 12 || data[at + 6] != '\\' || data[at + 7] != 'u')
        return ESC_LONE_SURROGATE;
    for (size_t i = 0; i < 4; i++)
        if (!isxdigit((unsigned char)data[at + 8 + i]))
            return ESC_LONE_SURROGATE;
    memcpy(hex, data + at + 8, 4);
    lo = strtoul(hex, &end, 16);
    if (lo < 0xdc00 || lo > 0xdfff)
        return ESC_LONE_SURROGATE;
    *pair = true;
    return 0;
}

/* cJSON takes a bad \u escape quietly (a NUL that cuts the string) or
 * fails the whole body, so neither could name the field. Find them first:
 * each string token holding one is recorded as a triple in *bad_at (its
 * index among the string tokens in document order, the escape's byte, its
 * kind) and a copy of the body gets the escape's backslash replaced by '?',
 * so it parses. *patched stays NULL when there is nothing to patch. */
static int patch_escapes(const char *data, size_t len, char **patched, size_t **bad_at,
                         size_t *n_bad, struct berth_err *err)
{
    bool in_string = false, token_bad = false;
    size_t token = 0, n = 0, cap = 0;
    size_t *found = NULL;
    char *copy = NULL;

    for (size_t i = 0; i < len; i++) {
        enum bad_escape why;
        bool pair;
        if (!in_string) {
            if (data[i] == '"') {
                in_string = true;
                token_bad = false;
            }
            continue;
        }
        if (data[i] == '"') {
            in_string = false;
            token++;
            continue;
        }
        if (data[i] != '\\' || i + 1 >= len)
            continue;
        if (data[i + 1] != 'u') {
            i++;
            continue;
        }
        pair = false;
        why = escape_problem(data, len, i, &pair);
        if (why == 0) {
            i += pair ? 11 : 5;
            continue;
        }
        if (copy == NULL) {
            copy = malloc(len + 1);
            if (copy == NULL)
                goto oom;
            memcpy(copy, data, len);
            copy[len] = '\0';
        }
        copy[i] = '?';
        if (!token_bad) {
            if (n + 3 > cap) {
                size_t *grown = realloc(found, (cap * 2 + 6) * sizeof(*found));
                if (grown == NULL)
                    goto oom;
                found = grown;
                cap = cap * 2 + 6;
            }
            found[n++] = token;
            found[n++] = i;
            found[n++] = (size_t)why;
            token_bad = true;
        }
    }
    *patched = copy;
    *bad_at = found;
    *n_bad = n / 3;
    return 0;
oom:
    free(copy);
    free(found);
    return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory decoding JSON");
}

/* The string tokens of a tree in document order (a member's key, then its
 * value), the bad ones (bad_index: triples as patch_escapes left them)
 * written to out. */
static void string_nodes(const cJSON *v, bool in_object, size_t *k, const size_t *bad_index,
                         size_t n_bad, struct json_bad_string *out, size_t *found)
{
    for (; v != NULL; v = v->next) {
        for (int pass = 0; pass < 2; pass++) {
            bool key = pass == 0;
            if (key ? !in_object : !cJSON_IsString(v))
                continue;
            if (*found < n_bad && bad_index[*found * 3] == *k) {
                out[*found] = (struct json_bad_string){v, key, bad_index[*found * 3 + 1],
                                                       (int)bad_index[*found * 3 + 2]};
                (*found)++;
            }
            (*k)++;
        }
        string_nodes(v->child, cJSON_IsObject(v), k, bad_index, n_bad, out, found);
    }
}

static int node_cmp(const void *a, const void *b)
{
    const struct json_bad_string *x = a, *y = b;
    uintptr_t p = (uintptr_t)x->node, q = (uintptr_t)y->node;

    if (p != q)
        return p < q ? -1 : 1;
    return (int)x->key - (int)y->key;
}

/* Pair the bad string tokens with their nodes. Should the walk not find
 * them all, the body is refused at the first one's byte. */
static int index_bad_strings(struct json_dec *d, const cJSON *root, const size_t *bad_at,
                             size_t n_bad)
{
    size_t k = 0, found = 0;

    if (n_bad == 0)
        return 0;
    d->bad = calloc(n_bad, sizeof(*d->bad));
    if (d->bad == NULL)
        return json_dec_oom(d);
    string_nodes(root, false, &k, bad_at, n_bad, d->bad, &found);
    if (found != n_bad)
        return berth_err_set(d->err, BERTH_INVALID_ARGUMENT,
                             "malformed JSON at byte %zu: invalid \\u escape", bad_at[1]);
    qsort(d->bad, n_bad, sizeof(*d->bad), node_cmp);
    d->n_bad = n_bad;
    return 0;
}

static const struct json_bad_string *find_bad(const struct json_dec *d, const cJSON *v, bool key)
{
    struct json_bad_string probe = {.node = v, .key = key};

    if (d->bad == NULL)
        return NULL;
    return bsearch(&probe, d->bad, d->n_bad, sizeof(*d->bad), node_cmp);
}

static int fail_escape(struct json_dec *d, const struct json_bad_string *bad,
                       const struct json_path *at)
{
    return json_names_fail(d->err, at, "invalid \\u escape: %s",
                           bad->kind == ESC_LONE_SURROGATE ? "a lone UTF-16 surrogate"
                                                           : "expected 4 hex digits");
}

int json_dec_check_string(struct json_dec *d, const cJSON *v, const struct json_path *at)
{
    const struct json_bad_string *bad = find_bad(d, v, false);

    if (bad != NULL)
        return fail_escape(d, bad, at);
    if (!utf8_valid(v->valuestring, strlen(v->valuestring)))
        return json_names_fail(d->err, at, "expected valid UTF-8");
    return 0;
}

/* The number literals of a JSON text, in document order (outside strings
 * only numbers hold '-' or a digit). Counts them; fills `out` unless NULL. */
static size_t scan_numbers(const char *data, size_t len, struct json_num_text *out)
{
    bool in_string = false;
    size_t n = 0;

    for (size_t i = 0; i < len; i++) {
        char c = data[i];
        if (in_string) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_string = false;
            continue;
        }
        if (c == '"') {
            in_string = true;
        } else if (c == '-' || is_digit(c)) {
            size_t j = i + 1;
            while (j < len && (is_digit(data[j]) || data[j] == '.' || data[j] == 'e' ||
                               data[j] == 'E' || data[j] == '+' || data[j] == '-'))
                j++;
            if (out != NULL) {
                out[n].text = data + i;
                out[n].len = j - i;
            }
            n++;
            i = j - 1;
        }
    }
    return n;
}

/* The number nodes of a tree in document order, paired with the literals. */
static void number_nodes(const cJSON *v, struct json_num_text *nums, size_t n, size_t *k)
{
    for (; v != NULL; v = v->next) {
        if (cJSON_IsNumber(v)) {
            if (*k < n)
                nums[*k].node = v;
            (*k)++;
        }
        number_nodes(v->child, nums, n, k);
    }
}

static int num_text_cmp(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)((const struct json_num_text *)a)->node;
    uintptr_t y = (uintptr_t)((const struct json_num_text *)b)->node;

    return x < y ? -1 : x > y;
}

/* Pair each number node with its text. Should the two ever disagree on
 * the count, the table is dropped and the doubles are used. */
static int index_numbers(struct json_dec *d, const char *data, size_t len, const cJSON *root)
{
    size_t n = scan_numbers(data, len, NULL), k = 0;

    if (n == 0)
        return 0;
    d->nums = calloc(n, sizeof(*d->nums));
    if (d->nums == NULL)
        return json_dec_oom(d);
    scan_numbers(data, len, d->nums);
    number_nodes(root, d->nums, n, &k);
    if (k != n) {
        free(d->nums);
        d->nums = NULL;
        return 0;
    }
    qsort(d->nums, n, sizeof(*d->nums), num_text_cmp);
    d->n_nums = n;
    return 0;
}

static const struct json_num_text *find_number(const struct json_dec *d, const cJSON *v)
{
    struct json_num_text key = {.node = v};

    if (d->nums == NULL)
        return NULL;
    return bsearch(&key, d->nums, d->n_nums, sizeof(*d->nums), num_text_cmp);
}

/* A JSON number whose literal breaks the grammar cJSON is lenient about
 * (leading zeros). */
static int check_number_text(struct json_dec *d, const cJSON *v, const struct json_path *at)
{
    const struct json_num_text *lit = find_number(d, v);
    char quoted[JSON_ECHO_MAX + 8], *text;
    bool ok;

    if (lit == NULL)
        return 0;
    text = malloc(lit->len + 1);
    if (text == NULL)
        return json_dec_oom(d);
    memcpy(text, lit->text, lit->len);
    text[lit->len] = '\0';
    ok = json_number_text(text, false);
    json_names_echo(quoted, sizeof(quoted), text);
    free(text);
    return ok ? 0 : json_names_fail(d->err, at, "expected a number, got '%s'", quoted);
}

static bool is_blank(const char *data, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (data[i] != ' ' && data[i] != '\t' && data[i] != '\n' && data[i] != '\r')
            return false;
    return true;
}

/* What cJSON lets through but JSON or protobuf-c cannot take: control
 * bytes (cJSON treats them as whitespace or string content) and \u0000,
 * which would silently cut a C string short. */
static int scan_raw(const char *data, size_t len, struct berth_err *err)
{
    bool in_string = false;

    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)data[i];
        if (c < 0x20 && (in_string || (c != '\t' && c != '\n' && c != '\r')))
            return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                                 "malformed JSON at byte %zu: unescaped control character", i);
        if (!in_string) {
            in_string = c == '"';
            continue;
        }
        if (c == '"') {
            in_string = false;
        } else if (c == '\\' && i + 1 < len) {
            if (data[i + 1] == 'u' && i + 5 < len && memcmp(data + i + 2, "0000", 4) == 0)
                return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                                     "unsupported JSON at byte %zu: strings may not hold "
                                     "\\u0000",
                                     i);
            i++;
        }
    }
    return 0;
}

/* Parse exactly one JSON value followed by nothing but whitespace. */
static int parse_json(const char *data, size_t len, cJSON **root, struct berth_err *err)
{
    const char *end = NULL;
    cJSON *tree = cJSON_ParseWithLengthOpts(data, len, &end, 0);
    size_t at;

    if (tree == NULL) {
        at = end != NULL && end >= data && end <= data + len ? (size_t)(end - data) : 0;
        return berth_err_set(err, BERTH_INVALID_ARGUMENT, "malformed JSON at byte %zu", at);
    }
    for (at = (size_t)(end - data); at < len; at++)
        if (!is_blank(data + at, 1))
            break;
    if (at < len) {
        cJSON_Delete(tree);
        return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                             "malformed JSON at byte %zu: data after the value", at);
    }
    *root = tree;
    return 0;
}

/* A short description of a JSON value for "got ..." in messages. */
static const char *describe(const cJSON *v, char *tmp, size_t tmpsz)
{
    char quoted[JSON_ECHO_MAX + 8];

    if (cJSON_IsString(v)) {
        json_names_echo(quoted, sizeof(quoted), v->valuestring);
        snprintf(tmp, tmpsz, "'%s'", quoted);
        return tmp;
    }
    if (cJSON_IsNumber(v)) {
        snprintf(tmp, tmpsz, "%g", v->valuedouble);
        return tmp;
    }
    if (cJSON_IsTrue(v))
        return "true";
    if (cJSON_IsFalse(v))
        return "false";
    if (cJSON_IsNull(v))
        return "null";
    if (cJSON_IsArray(v))
        return "an array";
    return "an object";
}

/* invalid_argument: "<before>'<path>'<after>". */

int json_dec_fail_got(struct json_dec *d, const struct json_path *at, const char *expected,
                      const cJSON *v)
{
    char tmp[64];

    return json_names_fail(d->err, at, "expected %s, got %s", expected,
                           describe(v, tmp, sizeof(tmp)));
}

int json_dec_oom(struct json_dec *d)
{
    return berth_err_set(d->err, BERTH_RESOURCE_EXHAUSTED, "out of memory decoding JSON");
}

/* Zeroed memory from the caller's allocator (system allocator if NULL). */
void *json_dec_alloc(struct json_dec *d, size_t size)
{
    void *p;

    if (size == 0)
        size = 1;
    p = d->alloc != NULL ? d->alloc->alloc(d->alloc->allocator_data, size) : malloc(size);
    if (p == NULL) {
        json_dec_oom(d);
        return NULL;
    }
    memset(p, 0, size);
    return p;
}

ProtobufCMessage *json_dec_new_message(struct json_dec *d, const ProtobufCMessageDescriptor *desc)
{
    ProtobufCMessage *m = json_dec_alloc(d, desc->sizeof_message);

    if (m != NULL)
        protobuf_c_message_init(desc, m);
    return m;
}

char *json_dec_strndup(struct json_dec *d, const char *s, size_t n)
{
    char *p = json_dec_alloc(d, n + 1);

    if (p != NULL)
        memcpy(p, s, n);
    return p;
}

/* Fill `msg` from the members of `obj`. Whatever is allocated is linked
 * into `msg` at once, so freeing the root message frees it on any error. */
int json_dec_fields(struct json_dec *d, const ProtobufCMessageDescriptor *desc, const cJSON *obj,
                    ProtobufCMessage *msg, const struct json_path *at, int depth)
{
    unsigned char small[64], *seen = small;
    int rc = -1;

    if (desc->n_fields > sizeof(small)) {
        seen = calloc(desc->n_fields, 1);
        if (seen == NULL)
            return json_dec_oom(d);
    } else {
        memset(small, 0, sizeof(small));
    }
    for (const cJSON *item = obj->child; item != NULL; item = item->next) {
        unsigned i = 0;
        const ProtobufCFieldDescriptor *f = json_names_find_field(desc, item->string, &i);
        struct json_path here = {at, SEG_FIELD, f, 0, NULL};

        if (f == NULL)
            continue; /* unknown keys are ignored, whatever their value */
        if (seen[i]) {
            json_names_fail_at(d->err, &here, "field ", " given more than once");
            goto out;
        }
        seen[i] = 1;
        if (cJSON_IsNull(item) && !wkt_takes_null(f))
            continue;
        if (json_dec_field(d, f, item, msg, &here, depth) < 0)
            goto out;
    }
    rc = 0;
out:
    if (seen != small)
        free(seen);
    return rc;
}

int json_dec_field(struct json_dec *d, const ProtobufCFieldDescriptor *f, const cJSON *v,
                   ProtobufCMessage *msg, const struct json_path *at, int depth)
{
    if (json_names_is_map(f))
        return dec_map(d, f, v, msg, at, depth);
    if (f->label == PROTOBUF_C_LABEL_REPEATED)
        return dec_repeated(d, f, v, msg, at, depth);
    return dec_singular(d, f, v, msg, at, depth);
}

int json_dec_submessage(struct json_dec *d, const ProtobufCMessageDescriptor *desc, const cJSON *v,
                        ProtobufCMessage **slot, const struct json_path *at, int depth)
{
    ProtobufCMessage *sub;

    if (depth > JSON_CODEC_MAX_DEPTH)
        return json_names_fail_at(
            d->err, at, "message nesting deeper than " JSON_DEPTH_TEXT " levels at field ", "");
    if (!wkt_is_special(desc) && !cJSON_IsObject(v))
        return json_dec_fail_got(d, at, "an object", v);
    sub = json_dec_new_message(d, desc);
    if (sub == NULL)
        return -1;
    *slot = sub;
    if (wkt_is_special(desc))
        return wkt_decode(d, desc, v, sub, at, depth);
    return json_dec_fields(d, desc, v, sub, at, depth);
}

/* A plain, optional or oneof field: sets has_ or the oneof case too. */
static int dec_singular(struct json_dec *d, const ProtobufCFieldDescriptor *f, const cJSON *v,
                        ProtobufCMessage *msg, const struct json_path *at, int depth)
{
    char *base = (char *)msg;
    uint32_t *oneof_case = NULL;
    protobuf_c_boolean *has = NULL;
    int r;

    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        oneof_case = (uint32_t *)(void *)(base + f->quantifier_offset);
        if (*oneof_case != 0 && *oneof_case != f->id) {
            const ProtobufCFieldDescriptor *other =
                protobuf_c_message_descriptor_get_field(msg->descriptor, (int)*oneof_case);
            char name[128];
            json_codec_camel_name(other != NULL ? other->name : "?", name, sizeof(name));
            return json_names_fail(d->err, at, "its oneof is already set by '%s'", name);
        }
        /* Set before decoding, so a message or string is freed on error. */
        *oneof_case = f->id;
    } else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->type != PROTOBUF_C_TYPE_STRING &&
               f->type != PROTOBUF_C_TYPE_MESSAGE) {
        has = (protobuf_c_boolean *)(void *)(base + f->quantifier_offset);
    }
    r = dec_value(d, f, v, base + f->offset, at, depth);
    if (r < 0)
        return -1;
    if (r > 0) { /* an unknown enum name: the field stays unset */
        if (oneof_case != NULL)
            *oneof_case = 0;
        return 0;
    }
    if (has != NULL)
        *has = 1;
    return 0;
}

static int dec_repeated(struct json_dec *d, const ProtobufCFieldDescriptor *f, const cJSON *v,
                        ProtobufCMessage *msg, const struct json_path *at, int depth)
{
    char *base = (char *)msg;
    size_t *count = (size_t *)(void *)(base + f->quantifier_offset);
    size_t elsize = json_names_type_size(f->type), n, i = 0;
    char *arr;

    if (!cJSON_IsArray(v))
        return json_dec_fail_got(d, at, "an array", v);
    n = (size_t)cJSON_GetArraySize(v);
    if (n == 0)
        return 0;
    if (n > SIZE_MAX / elsize)
        return json_dec_oom(d);
    arr = json_dec_alloc(d, n * elsize);
    if (arr == NULL)
        return -1;
    *(void **)(void *)(base + f->offset) = arr;
    *count = 0;
    for (const cJSON *el = v->child; el != NULL; el = el->next, i++) {
        struct json_path here = {at, SEG_INDEX, NULL, i, NULL};
        int r;

        if (cJSON_IsNull(el) && !wkt_takes_null(f))
            return json_names_fail(d->err, &here, "null is not allowed in a list");
        /* Counted before decoding, so a half-built element is freed too
         * (the array is zeroed: NULL pointers free as nothing). */
        (*count)++;
        r = dec_value(d, f, el, arr + (*count - 1) * elsize, &here, depth);
        if (r < 0)
            return -1;
        if (r > 0) /* an unknown enum name: the element is dropped */
            (*count)--;
    }
    return 0;
}

/* A map from a JSON object: one entry per member, then the entries of keys
 * given twice ("1" and "1", or "true" twice) reduced to the last one. */
static int dec_map(struct json_dec *d, const ProtobufCFieldDescriptor *f, const cJSON *v,
                   ProtobufCMessage *msg, const struct json_path *at, int depth)
{
    const ProtobufCMessageDescriptor *entry_desc = f->descriptor;
    const ProtobufCFieldDescriptor *key_f, *val_f;
    char *base = (char *)msg;
    size_t *count = (size_t *)(void *)(base + f->quantifier_offset);
    ProtobufCMessage **arr;
    size_t n;

    if (!cJSON_IsObject(v))
        return json_dec_fail_got(d, at, "an object", v);
    n = (size_t)cJSON_GetArraySize(v);
    if (n == 0)
        return 0;
    if (n > SIZE_MAX / sizeof(*arr))
        return json_dec_oom(d);
    arr = json_dec_alloc(d, n * sizeof(*arr));
    if (arr == NULL)
        return -1;
    *(void **)(void *)(base + f->offset) = arr;
    *count = 0;
    json_names_entry_fields(entry_desc, &key_f, &val_f);
    for (const cJSON *item = v->child; item != NULL; item = item->next) {
        struct json_path here = {at, SEG_KEY, NULL, 0, item->string != NULL ? item->string : ""};
        ProtobufCMessage *entry;
        int r;

        if (cJSON_IsNull(item) && !wkt_takes_null(val_f))
            return json_names_fail(d->err, &here, "null is not allowed as a map value");
        entry = json_dec_new_message(d, entry_desc);
        if (entry == NULL)
            return -1;
        arr[(*count)++] = entry;
        r = dec_map_entry(d, entry_desc, item, entry, &here, depth);
        if (r < 0)
            return -1;
        if (r > 0) { /* an unknown enum name: the entry is dropped */
            arr[--(*count)] = NULL;
            protobuf_c_message_free_unpacked(entry, d->alloc);
        }
    }
    if (pb_check_dedupe_entries(f, arr, count, d->alloc) < 0)
        return json_dec_oom(d);
    return 0;
}

/* Key and value of one entry; 1 when the value is an unknown enum name. */
static int dec_map_entry(struct json_dec *d, const ProtobufCMessageDescriptor *entry_desc,
                         const cJSON *item, ProtobufCMessage *entry, const struct json_path *at,
                         int depth)
{
    const ProtobufCFieldDescriptor *key_f, *val_f;
    char *base = (char *)entry;

    json_names_entry_fields(entry_desc, &key_f, &val_f);
    if (dec_map_key(d, key_f, item, base + key_f->offset, at) < 0)
        return -1;
    return dec_value(d, val_f, item, base + val_f->offset, at, depth);
}

/* Map keys are JSON strings whatever the key type: parse per type. */
static int dec_map_key(struct json_dec *d, const ProtobufCFieldDescriptor *key_f, const cJSON *item,
                       void *slot, const struct json_path *at)
{
    const struct json_bad_string *bad = find_bad(d, item, true);
    const char *key = at->key;
    bool neg = false;
    uint64_t mag = 0;
    char *copy;

    if (bad != NULL)
        return fail_escape(d, bad, at);
    switch (key_f->type) {
    case PROTOBUF_C_TYPE_STRING:
        if (!utf8_valid(key, strlen(key)))
            return json_names_fail(d->err, at, "expected a map key in valid UTF-8");
        copy = json_dec_strndup(d, key, strlen(key));
        if (copy == NULL)
            return -1;
        *(char **)slot = copy;
        return 0;
    case PROTOBUF_C_TYPE_BOOL:
        if (strcmp(key, "true") != 0 && strcmp(key, "false") != 0)
            return json_names_fail(d->err, at, "expected a map key of true or false");
        *(protobuf_c_boolean *)slot = key[0] == 't';
        return 0;
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        if (int_from_text(d, key, true, key_f->type, at, &neg, &mag) < 0)
            return -1;
        return int_store(d, key_f->type, neg, mag, slot, at);
    default:
        return json_names_fail(d->err, at, "map keys of type %s are not supported",
                               json_names_type_name(key_f->type));
    }
}

/* One value of field f's type into `slot`: 0, -1 on error, 1 when it is an
 * enum name this schema does not know (the caller leaves it unset). */
static int dec_value(struct json_dec *d, const ProtobufCFieldDescriptor *f, const cJSON *v,
                     void *slot, const struct json_path *at, int depth)
{
    const struct json_bad_string *bad = cJSON_IsString(v) ? find_bad(d, v, false) : NULL;

    if (bad != NULL)
        return fail_escape(d, bad, at);
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return dec_integer(d, f->type, v, slot, at);
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_DOUBLE:
        return dec_floating(d, f->type, v, slot, at);
    case PROTOBUF_C_TYPE_BOOL:
        if (!cJSON_IsBool(v))
            return json_dec_fail_got(d, at, "true or false", v);
        *(protobuf_c_boolean *)slot = cJSON_IsTrue(v) ? 1 : 0;
        return 0;
    case PROTOBUF_C_TYPE_ENUM:
        return dec_enum(d, f, v, slot, at);
    case PROTOBUF_C_TYPE_STRING:
        return dec_string(d, v, slot, at);
    case PROTOBUF_C_TYPE_BYTES:
        return dec_bytes(d, v, slot, at);
    case PROTOBUF_C_TYPE_MESSAGE:
        return json_dec_submessage(d, f->descriptor, v, slot, at, depth + 1);
    }
    return json_names_fail(d->err, at, "unsupported field type");
}

/* Sign and magnitude of an integer given as a JSON number or string. */
static int int_from_json(struct json_dec *d, const cJSON *v, ProtobufCType type,
                         const struct json_path *at, bool *neg, uint64_t *mag)
{
    const struct json_num_text *lit;
    double x, ax;

    if (cJSON_IsString(v))
        return int_from_text(d, v->valuestring, false, type, at, neg, mag);
    if (!cJSON_IsNumber(v))
        return json_dec_fail_got(d, at, "an integer", v);
    lit = find_number(d, v);
    if (lit != NULL) {
        char *text = malloc(lit->len + 1);
        enum num_result r;
        if (text == NULL)
            return json_dec_oom(d);
        memcpy(text, lit->text, lit->len);
        text[lit->len] = '\0';
        r = parse_decimal(text, false, neg, mag);
        if (r == NUM_SYNTAX) { /* a leading zero: cJSON takes "01" */
            char quoted[JSON_ECHO_MAX + 8];
            json_names_echo(quoted, sizeof(quoted), text);
            free(text);
            return json_names_fail(d->err, at, "expected an integer, got '%s'", quoted);
        }
        free(text);
        if (r == NUM_OK)
            return 0;
        if (r == NUM_RANGE)
            return json_names_fail(d->err, at, "value out of range for %s",
                                   json_names_type_name(type));
        if (r == NUM_FRACTION)
            return json_dec_fail_got(d, at, "an integer", v);
    }
    /* No literal text (never expected): only what a double holds exactly,
     * integers below 2^53. */
    x = v->valuedouble;
    if (isinf(x))
        return json_names_fail(d->err, at, "value out of range for %s", json_names_type_name(type));
    if (isnan(x) || x != trunc(x))
        return json_dec_fail_got(d, at, "an integer", v);
    ax = fabs(x);
    if (ax >= 0x1p53)
        return json_names_fail(d->err, at,
                               "integer beyond 2^53 in a JSON number; send it as a string");
    *neg = x < 0;
    *mag = (uint64_t)ax;
    return 0;
}

static int int_from_text(struct json_dec *d, const char *s, bool map_key, ProtobufCType type,
                         const struct json_path *at, bool *neg, uint64_t *mag)
{
    char quoted[JSON_ECHO_MAX + 8];

    switch (parse_decimal(s, map_key, neg, mag)) {
    case NUM_OK:
        return 0;
    case NUM_RANGE:
        return json_names_fail(d->err, at, "value out of range for %s", json_names_type_name(type));
    case NUM_SYNTAX:
    case NUM_FRACTION:
        break;
    }
    json_names_echo(quoted, sizeof(quoted), s);
    return json_names_fail(d->err, at, "expected an integer, got '%s'", quoted);
}

/* Range-check for `type` and store into its slot. */
static int int_store(struct json_dec *d, ProtobufCType type, bool neg, uint64_t mag, void *slot,
                     const struct json_path *at)
{
    bool is_unsigned = type == PROTOBUF_C_TYPE_UINT32 || type == PROTOBUF_C_TYPE_FIXED32 ||
                       type == PROTOBUF_C_TYPE_UINT64 || type == PROTOBUF_C_TYPE_FIXED64;
    bool wide = json_names_type_size(type) == 8;
    uint64_t limit;

    if (is_unsigned) {
        if (neg && mag != 0)
            return json_names_fail(d->err, at, "expected a non-negative integer for %s",
                                   json_names_type_name(type));
        limit = wide ? UINT64_MAX : UINT32_MAX;
    } else {
        limit = wide ? (uint64_t)INT64_MAX : (uint64_t)INT32_MAX;
        if (neg)
            limit++;
    }
    if (mag > limit)
        return json_names_fail(d->err, at, "value out of range for %s", json_names_type_name(type));
    if (is_unsigned) {
        if (wide)
            *(uint64_t *)slot = mag;
        else
            *(uint32_t *)slot = (uint32_t)mag;
        return 0;
    }
    if (wide) {
        if (!neg)
            *(int64_t *)slot = (int64_t)mag;
        else
            *(int64_t *)slot = mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag;
    } else {
        *(int32_t *)slot = neg ? (int32_t)(-(int64_t)mag) : (int32_t)mag;
    }
    return 0;
}

static int dec_integer(struct json_dec *d, ProtobufCType type, const cJSON *v, void *slot,
                       const struct json_path *at)
{
    bool neg = false;
    uint64_t mag = 0;

    if (int_from_json(d, v, type, at, &neg, &mag) < 0)
        return -1;
    return int_store(d, type, neg, mag, slot, at);
}

/* Floats and doubles: numbers, numeric strings, "NaN", "Infinity",
 * "-Infinity". Finite input that overflows the type is out of range. */
static int dec_floating(struct json_dec *d, ProtobufCType type, const cJSON *v, void *slot,
                        const struct json_path *at)
{
    double x;

    if (cJSON_IsNumber(v)) {
        if (check_number_text(d, v, at) < 0)
            return -1;
        x = v->valuedouble;
        if (!isfinite(x)) /* cJSON turns 1e999 into infinity */
            return json_names_fail(d->err, at, "value out of range for %s",
                                   json_names_type_name(type));
    } else if (cJSON_IsString(v)) {
        const char *s = v->valuestring;
        char *end = NULL;
        if (strcmp(s, "NaN") == 0) {
            x = NAN;
        } else if (strcmp(s, "Infinity") == 0) {
            x = INFINITY;
        } else if (strcmp(s, "-Infinity") == 0) {
            x = -INFINITY;
        } else {
            if (!json_number_text(s, false))
                return json_dec_fail_got(d, at, "a number", v);
            x = strtod(s, &end);
            if (end == NULL || *end != '\0')
                return json_dec_fail_got(d, at, "a number", v);
            if (!isfinite(x))
                return json_names_fail(d->err, at, "value out of range for %s",
                                       json_names_type_name(type));
        }
    } else {
        return json_dec_fail_got(d, at, "a number", v);
    }
    if (type == PROTOBUF_C_TYPE_FLOAT) {
        if (isfinite(x) && fabs(x) >= FLOAT_ROUND_LIMIT)
            return json_names_fail(d->err, at, "value out of range for float");
        *(float *)slot = (float)x;
    } else {
        *(double *)slot = x;
    }
    return 0;
}

/* By name (unknown: 1, left unset) or by number (kept even if unnamed). */
static int dec_enum(struct json_dec *d, const ProtobufCFieldDescriptor *f, const cJSON *v,
                    void *slot, const struct json_path *at)
{
    const ProtobufCEnumValue *ev;
    bool neg = false;
    uint64_t mag = 0;

    if (cJSON_IsNull(v) && wkt_is_null_enum(f->descriptor)) {
        *(int32_t *)slot = 0;
        return 0;
    }
    if (cJSON_IsString(v)) {
        ev = protobuf_c_enum_descriptor_get_value_by_name(f->descriptor, v->valuestring);
        if (ev == NULL)
            return 1;
        *(int32_t *)slot = ev->value;
        return 0;
    }
    if (!cJSON_IsNumber(v))
        return json_dec_fail_got(d, at, "an enum name or number", v);
    if (int_from_json(d, v, PROTOBUF_C_TYPE_INT32, at, &neg, &mag) < 0)
        return -1;
    return int_store(d, PROTOBUF_C_TYPE_INT32, neg, mag, slot, at);
}

static int dec_string(struct json_dec *d, const cJSON *v, void *slot, const struct json_path *at)
{
    char *copy;

    if (!cJSON_IsString(v))
        return json_dec_fail_got(d, at, "a string", v);
    if (json_dec_check_string(d, v, at) < 0)
        return -1;
    copy = json_dec_strndup(d, v->valuestring, strlen(v->valuestring));
    if (copy == NULL)
        return -1;
    *(char **)slot = copy;
    return 0;
}

static int dec_bytes(struct json_dec *d, const cJSON *v, void *slot, const struct json_path *at)
{
    ProtobufCBinaryData *bd = slot;
    const char *s;
    size_t n, outlen = 0;
    unsigned char *data;

    if (!cJSON_IsString(v))
        return json_dec_fail_got(d, at, "a base64 string", v);
    s = v->valuestring;
    n = strlen(s);
    if (base64_check(s, n, &outlen) < 0)
        return json_names_fail(d->err, at, "expected standard or URL-safe base64");
    bd->len = 0;
    bd->data = NULL;
    if (outlen == 0)
        return 0;
    data = json_dec_alloc(d, outlen);
    if (data == NULL)
        return -1;
    base64_decode_into(s, n, data);
    bd->data = data;
    bd->len = outlen;
    return 0;
}
