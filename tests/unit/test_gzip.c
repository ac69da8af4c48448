/* gzip both ways: round trips of every size class, the cap that stops a
 * decompression bomb, corrupt and truncated streams, and empty input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "berth/buf.h"
#include "berth/err.h"
#include "berth/gzip.h"
#include "testlib.h"

#define ROWS(a) (sizeof(a) / sizeof((a)[0]))

/* Bytes of a kind: "text" compresses well, "noise" does not. */
static void fill(unsigned char *p, size_t n, int noise)
{
    uint32_t x = 2463534242u;

    for (size_t i = 0; i < n; i++) {
        if (noise) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            p[i] = (unsigned char)x;
        } else {
            p[i] = (unsigned char)"{\"vm_id\":\"web-1\"}"[i % 17];
        }
    }
}

static void test_round_trip(void)
{
    static const struct {
        const char *desc;
        size_t len;
        int noise;
    } rows[] = {
        {"empty body", 0, 0},
        {"one byte", 1, 0},
        {"small JSON", 100, 0},
        {"exactly one zlib chunk", 16384, 0},
        {"several chunks of text", 300000, 0},
        {"incompressible noise (output larger than input)", 70000, 1},
    };

    for (size_t i = 0; i < ROWS(rows); i++) {
        unsigned char *src = malloc(rows[i].len ? rows[i].len : 1);
        struct buf z, back;
        struct berth_err err;

        berth_err_clear(&err);
        buf_init(&z, 1 << 20);
        buf_init(&back, rows[i].len); /* the cap is exactly the original size */
        CHECK_MSG(src != NULL, "%s: setup", rows[i].desc);
        if (src == NULL)
            continue;
        fill(src, rows[i].len, rows[i].noise);
        CHECK_MSG(gzip_deflate(src, rows[i].len, &z, &err) == 0, "%s: deflate: %s", rows[i].desc,
                  err.msg);
        CHECK_MSG(z.len >= 18 && (unsigned char)z.data[0] == 0x1f &&
                      (unsigned char)z.data[1] == 0x8b,
                  "%s: a gzip header", rows[i].desc);
        CHECK_MSG(gzip_inflate(z.data, z.len, &back, &err) == 0, "%s: inflate: %s", rows[i].desc,
                  err.msg);
        CHECK_MSG(back.len == rows[i].len, "%s: %zu bytes back", rows[i].desc, back.len);
        CHECK_MSG(back.len == rows[i].len &&
                      (rows[i].len == 0 || memcmp(back.data, src, rows[i].len) == 0),
                  "%s: the same bytes back", rows[i].desc);
        buf_release(&z);
        buf_release(&back);
        free(src);
    }
}

/* A small stream that inflates to far more than the cap: resource_exhausted
 * after at most the cap (plus one chunk) of work, never the whole bomb. */
static void test_bomb(void)
{
    static const struct {
        const char *desc;
        size_t len, cap;
        int ok;
    } rows[] = {
        {"8 MiB of zeros under a 1 MiB cap", 8u << 20, 1u << 20, 0},
        {"8 MiB of zeros under an 8 MiB - 1 cap", 8u << 20, (8u << 20) - 1, 0},
        {"8 MiB of zeros under an 8 MiB cap", 8u << 20, 8u << 20, 1},
        {"one byte past a zero cap", 1, 0, 0},
    };

    for (size_t i = 0; i < ROWS(rows); i++) {
        unsigned char *src = calloc(1, rows[i].len);
        struct buf z, out;
        struct berth_err err;
        int rc;

        berth_err_clear(&err);
        buf_init(&z, 1 << 20);
        buf_init(&out, rows[i].cap);
        CHECK_MSG(src != NULL, "%s: setup", rows[i].desc);
        if (src == NULL)
            continue;
        CHECK_MSG(gzip_deflate(src, rows[i].len, &z, &err) == 0, "%s: deflate", rows[i].desc);
        CHECK_MSG(z.len < rows[i].len / 100 + 64, "%s: the bomb is small (%zu bytes)", rows[i].desc,
                  z.len);
        rc = gzip_inflate(z.data, z.len, &out, &err);
        CHECK_MSG((rc == 0) == rows[i].ok, "%s: rc %d", rows[i].desc, rc);
        if (!rows[i].ok) {
            CHECK_MSG(err.code == BERTH_RESOURCE_EXHAUSTED, "%s: code %d", rows[i].desc, err.code);
            CHECK_MSG(out.len <= rows[i].cap, "%s: no more than the cap kept", rows[i].desc);
        }
        buf_release(&z);
        buf_release(&out);
        free(src);
    }
}

/* Broken input of every kind is invalid_argument, and nothing leaks. */
static void test_corrupt(void)
{
    enum { TRUNCATE, FLIP, APPEND, REPLACE };
    static const struct {
        const char *desc;
        int how;
        size_t at; /* TRUNCATE: keep this many bytes; FLIP: this byte */
    } rows[] = {
        {"no bytes at all", TRUNCATE, 0},
        {"only the magic", TRUNCATE, 2},
        {"the header only", TRUNCATE, 10},
        {"cut in the deflate data", TRUNCATE, 30},
        {"cut in the trailer", TRUNCATE, SIZE_MAX},
        {"the magic flipped", FLIP, 0},
        {"the method flipped", FLIP, 2},
        {"a bit flipped in the CRC", FLIP, SIZE_MAX},
        {"trailing garbage after the stream", APPEND, 0},
        {"not gzip at all (plain JSON)", REPLACE, 0},
    };
    unsigned char src[2000];
    struct buf z;
    struct berth_err err;

    fill(src, sizeof(src), 1);
    berth_err_clear(&err);
    buf_init(&z, 1 << 20);
    CHECK(gzip_deflate(src, sizeof(src), &z, &err) == 0);
    for (size_t i = 0; i < ROWS(rows); i++) {
        struct buf in, out;
        int rc;

        berth_err_clear(&err);
        buf_init(&in, 1 << 20);
        buf_init(&out, 1 << 20);
        if (rows[i].how == REPLACE) {
            CHECK(buf_appends(&in, "{\"vm_id\":\"web-1\"}", &err) == 0);
        } else {
            size_t keep = z.len;

            if (rows[i].how == TRUNCATE)
                keep = rows[i].at == SIZE_MAX ? z.len - 3 : rows[i].at;
            CHECK(buf_append(&in, z.data, keep, &err) == 0);
            if (rows[i].how == FLIP)
                in.data[rows[i].at == SIZE_MAX ? in.len - 6 : rows[i].at] ^= 0x01;
            if (rows[i].how == APPEND)
                CHECK(buf_appends(&in, "junk", &err) == 0);
        }
        rc = gzip_inflate(in.data, in.len, &out, &err);
        CHECK_MSG(rc == -1, "%s: refused", rows[i].desc);
        CHECK_MSG(err.code == BERTH_INVALID_ARGUMENT, "%s: code %d (%s)", rows[i].desc, err.code,
                  err.msg);
        CHECK_MSG(strncmp(err.msg, "invalid gzip body: ", 19) == 0, "%s: message '%s'",
                  rows[i].desc, err.msg);
        buf_release(&in);
        buf_release(&out);
    }
    buf_release(&z);
}

/* Inflate appends to what the buf already holds. */
static void test_appends(void)
{
    struct buf z, out;
    struct berth_err err;

    berth_err_clear(&err);
    buf_init(&z, 1 << 16);
    buf_init(&out, 1 << 16);
    CHECK(gzip_deflate("world", 5, &z, &err) == 0);
    CHECK(buf_appends(&out, "hello ", &err) == 0);
    CHECK(gzip_inflate(z.data, z.len, &out, &err) == 0);
    CHECK_STR(out.data, "hello world");
    buf_release(&z);
    buf_release(&out);
}

/* Accept-Encoding values: gzip taken unless its q-value is zero or
 * unreadable; other codings, and none, are not gzip. */
static void test_accepted(void)
{
    static const struct {
        const char *value;
        int want;
    } rows[] = {
        {NULL, 0},
        {"", 0},
        {"gzip", 1},
        {"GZIP", 1},
        {"deflate, gzip", 1},
        {"gzip;q=0.5", 1},
        {" gzip ; q=1 ", 1},
        {"gzip;q=0", 0},
        {"gzip;q=0.000", 0},
        {"gzip;q=abc", 0},
        {"br, deflate", 0},
        {"x-gzip", 0},
        {"gzipx", 0},
        {"identity;q=1, gzip;q=0.1", 1},
    };

    for (size_t i = 0; i < ROWS(rows); i++)
        CHECK_MSG(gzip_accepted(rows[i].value) == rows[i].want, "'%s': want %d",
                  rows[i].value ? rows[i].value : "(none)", rows[i].want);
}

int main(void)
{
    test_accepted();
    test_round_trip();
    test_bomb();
    test_corrupt();
    test_appends();
    return test_summary("test_gzip");
}
