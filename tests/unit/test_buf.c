/* The capped growable string: appends up to the cap and not a byte past it,
 * printf, reset, detach, and the NUL that follows every successful append. */
#include <stdlib.h>
#include <string.h>

#include "berth/buf.h"
#include "berth/err.h"
#include "testlib.h"

#define ROWS(a) (sizeof(a) / sizeof((a)[0]))

/* Appends of given sizes into a buf with a cap: which succeed, and what
 * the buf holds after all of them. */
static void test_append_cap(void)
{
    static const struct {
        const char *desc;
        size_t max;
        size_t sizes[4];
        size_t n;
        int ok[4];
        size_t final_len;
    } rows[] = {
        {"empty append into a zero cap", 0, {0}, 1, {1}, 0},
        {"one byte past a zero cap", 0, {1}, 1, {0}, 0},
        {"exactly the cap in one append", 10, {10}, 1, {1}, 10},
        {"exactly the cap in two appends", 10, {4, 6}, 2, {1, 1}, 10},
        {"one byte past the cap is refused, the rest kept", 10, {4, 7, 6}, 3, {1, 0, 1}, 10},
        {"past the first growth (256 bytes)", 4096, {255, 1, 1, 3000}, 4, {1, 1, 1, 1}, 3257},
        {"a huge length does not wrap", 10, {5, (size_t)-1}, 2, {1, 0}, 5},
    };
    static char src[4096];

    memset(src, 'x', sizeof(src));
    for (size_t i = 0; i < ROWS(rows); i++) {
        struct buf b;
        struct berth_err err;

        buf_init(&b, rows[i].max);
        for (size_t k = 0; k < rows[i].n; k++) {
            int rc;

            berth_err_clear(&err);
            rc = buf_append(&b, src, rows[i].sizes[k], &err);
            CHECK_MSG((rc == 0) == rows[i].ok[k], "%s: append %zu", rows[i].desc, k);
            if (rows[i].ok[k])
                CHECK_MSG(err.code == BERTH_OK, "%s: append %zu", rows[i].desc, k);
            else
                CHECK_MSG(err.code == BERTH_RESOURCE_EXHAUSTED, "%s: append %zu: code %d",
                          rows[i].desc, k, err.code);
        }
        CHECK_MSG(b.len == rows[i].final_len, "%s: len %zu", rows[i].desc, b.len);
        /* NULL until the first successful append, NUL-terminated after it. */
        CHECK_MSG(b.data == NULL ? b.len == 0 : b.data[b.len] == '\0', "%s: NUL after the data",
                  rows[i].desc);
        CHECK_MSG(b.len <= rows[i].max, "%s: len within the cap", rows[i].desc);
        buf_release(&b);
        CHECK_MSG(b.data == NULL && b.len == 0, "%s: released", rows[i].desc);
    }
}

/* Content survives growth, and appends go at the end. */
static void test_append_content(void)
{
    struct buf b;
    struct berth_err err;
    int ok = 1;

    berth_err_clear(&err);
    buf_init(&b, 1 << 20);
    CHECK(b.data == NULL && b.len == 0);
    for (int i = 0; i < 1000 && ok; i++)
        ok = buf_appends(&b, "abc", &err) == 0;
    CHECK(ok);
    CHECK(b.len == 3000);
    for (size_t i = 0; ok && i < b.len; i++)
        ok = b.data[i] == "abc"[i % 3];
    CHECK_MSG(ok, "the bytes survive every growth");
    CHECK(strlen(b.data) == b.len);

    /* Binary data: a NUL inside is kept, len counts it. */
    buf_reset(&b);
    CHECK(b.len == 0 && b.data[0] == '\0');
    CHECK(buf_append(&b, "a\0b", 3, &err) == 0);
    CHECK(b.len == 3 && memcmp(b.data, "a\0b", 4) == 0);
    buf_release(&b);
    buf_release(&b); /* a second release is harmless */
    CHECK(b.data == NULL);
}

static void test_printf(void)
{
    static const struct {
        const char *desc;
        size_t max;
        const char *prefix;
        int ok;
        const char *want; /* the whole buf after the call */
    } rows[] = {
        {"into an empty buf", 64, "", 1, "vm 'web-1' has 3 ports"},
        {"after existing data", 64, "x=", 1, "x=vm 'web-1' has 3 ports"},
        {"exactly the cap", 22, "", 1, "vm 'web-1' has 3 ports"},
        {"one byte past the cap: refused, the buf unchanged", 23, "ab", 0, "ab"},
    };

    for (size_t i = 0; i < ROWS(rows); i++) {
        struct buf b;
        struct berth_err err;
        int rc;

        berth_err_clear(&err);
        buf_init(&b, rows[i].max);
        CHECK_MSG(buf_appends(&b, rows[i].prefix, &err) == 0, "%s: prefix", rows[i].desc);
        rc = buf_printf(&b, &err, "vm '%s' has %d ports", "web-1", 3);
        CHECK_MSG((rc == 0) == rows[i].ok, "%s: rc %d", rows[i].desc, rc);
        CHECK_MSG(rows[i].ok || err.code == BERTH_RESOURCE_EXHAUSTED, "%s: code %d", rows[i].desc,
                  err.code);
        CHECK_MSG(b.data != NULL && strcmp(b.data, rows[i].want) == 0, "%s: got '%s'", rows[i].desc,
                  b.data ? b.data : "(null)");
        CHECK_MSG(b.len == strlen(rows[i].want), "%s: len %zu", rows[i].desc, b.len);
        buf_release(&b);
    }
}

/* The error message names the cap, and a NULL err is allowed. */
static void test_errors(void)
{
    struct buf b;
    struct berth_err err;

    berth_err_clear(&err);
    buf_init(&b, 4);
    CHECK(buf_appends(&b, "hello", &err) == -1);
    CHECK(err.code == BERTH_RESOURCE_EXHAUSTED);
    CHECK_STR(err.msg, "data larger than 4 bytes");
    CHECK(buf_appends(&b, "hello", NULL) == -1);
    CHECK(buf_printf(&b, NULL, "%s", "hello") == -1);
    CHECK(b.len == 0);
    buf_release(&b);
}

static void test_detach(void)
{
    struct buf b;
    struct berth_err err;
    char *p;

    berth_err_clear(&err);
    /* An empty buf hands over an allocated "". */
    buf_init(&b, 16);
    p = buf_detach(&b);
    CHECK(p != NULL && p[0] == '\0');
    free(p);

    /* A filled one hands over its bytes and is left empty but usable. */
    CHECK(buf_appends(&b, "abc", &err) == 0);
    p = buf_detach(&b);
    CHECK_STR(p, "abc");
    CHECK(b.data == NULL && b.len == 0);
    free(p);
    CHECK(buf_appends(&b, "de", &err) == 0);
    CHECK_STR(b.data, "de");
    buf_release(&b);
}

/* Room taken at once: appends up to it keep the same memory, the cap
 * holds, and a reserve never shrinks. */
static void test_reserve(void)
{
    struct buf b;
    struct berth_err err;
    char *at;

    berth_err_clear(&err);
    buf_init(&b, 1000);
    CHECK(buf_reserve(&b, 1001, &err) == -1 && err.code == BERTH_RESOURCE_EXHAUSTED);
    CHECK(b.data == NULL);
    CHECK(buf_reserve(&b, 1000, NULL) == 0);
    CHECK(b.data != NULL && b.len == 0 && b.data[0] == '\0');
    at = b.data;
    for (int i = 0; i < 100; i++)
        CHECK(buf_appends(&b, "0123456789", NULL) == 0);
    CHECK(b.data == at && b.len == 1000);
    CHECK(buf_appends(&b, "x", NULL) == -1);
    CHECK(buf_reserve(&b, 10, NULL) == 0 && b.len == 1000);
    buf_release(&b);
}

int main(void)
{
    test_reserve();
    test_append_cap();
    test_append_content();
    test_printf();
    test_errors();
    test_detach();
    return test_summary("test_buf");
}
