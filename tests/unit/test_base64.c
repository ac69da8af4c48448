/* base64: RFC 4648's vectors both ways, both alphabets in, padding optional
 * in, and every malformed input refused (berth/base64.h). */
#include <stdlib.h>
#include <string.h>

#include "berth/base64.h"
#include "testlib.h"

#define ROWS(a) (sizeof(a) / sizeof((a)[0]))

static void test_encode(void)
{
    static const struct {
        const char *what, *in, *out;
    } rows[] = {
        {"empty", "", ""},
        {"one byte", "f", "Zg=="},
        {"two bytes", "fo", "Zm8="},
        {"three bytes", "foo", "Zm9v"},
        {"four bytes", "foob", "Zm9vYg=="},
        {"five bytes", "fooba", "Zm9vYmE="},
        {"six bytes", "foobar", "Zm9vYmFy"},
        {"standard alphabet's last two", "\xfb\xff\xbf", "+/+/"},
        {"longer than one chunk", "0123456789012345678901234567890123456789012345678901234567",
         "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nw=="},
    };

    for (size_t i = 0; i < ROWS(rows); i++) {
        struct buf b;
        struct berth_err err;

        buf_init(&b, 1024);
        berth_err_clear(&err);
        CHECK_MSG(base64_encode(rows[i].in, strlen(rows[i].in), &b, &err) == 0, "%s", rows[i].what);
        CHECK_STR(b.data, rows[i].out);
        buf_release(&b);
    }
}

static void test_decode(void)
{
    static const struct {
        const char *what, *in;
        const char *out; /* NULL: refused */
        size_t out_len;
    } rows[] = {
        {"empty", "", "", 0},
        {"padded", "Zm9vYg==", "foob", 4},
        {"one pad", "Zm9vYmE=", "fooba", 5},
        {"unpadded two", "Zm9vYg", "foob", 4},
        {"unpadded three", "Zm9vYmE", "fooba", 5},
        {"no padding needed", "Zm9vYmFy", "foobar", 6},
        {"standard alphabet", "+/+/", "\xfb\xff\xbf", 3},
        {"URL-safe alphabet", "-_-_", "\xfb\xff\xbf", 3},
        {"URL-safe unpadded", "-_8", "\xfb\xff", 2},
        {"bytes with NUL", "AAEA", "\0\1\0", 3},
        {"longer than one chunk",
         "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nw==",
         "0123456789012345678901234567890123456789012345678901234567", 58},
        {"both alphabets mixed", "+_8A", NULL, 0},
        {"one character too many", "Zm9vY", NULL, 0},
        {"a single character", "Z", NULL, 0},
        {"three pads", "Zg===", NULL, 0},
        {"padding with a wrong length", "Zg=", NULL, 0},
        {"padding in the middle", "Zg==Zg==", NULL, 0},
        {"a space", "Zm9v Yg==", NULL, 0},
        {"a character of neither alphabet", "Zm9v*g==", NULL, 0},
        {"a newline", "Zm9v\nYg==", NULL, 0},
    };

    for (size_t i = 0; i < ROWS(rows); i++) {
        size_t len = strlen(rows[i].in), n = 0;
        struct buf b;
        struct berth_err err;
        int rc;

        buf_init(&b, 1024);
        berth_err_clear(&err);
        rc = base64_decode(rows[i].in, len, &b, &err);
        if (rows[i].out == NULL) {
            CHECK_MSG(rc == -1 && err.code == BERTH_INVALID_ARGUMENT, "%s: accepted", rows[i].what);
            CHECK_MSG(base64_check(rows[i].in, len, &n) == -1, "%s: checked fine", rows[i].what);
        } else {
            CHECK_MSG(rc == 0, "%s: refused", rows[i].what);
            CHECK_MSG(b.data != NULL && b.len == rows[i].out_len &&
                          memcmp(b.data, rows[i].out, b.len) == 0,
                      "%s: wrong bytes", rows[i].what);
            CHECK_MSG(base64_check(rows[i].in, len, &n) == 0 && n == rows[i].out_len,
                      "%s: size %zu", rows[i].what, n);
        }
        buf_release(&b);
    }
}

/* Every length round-trips, and a full buffer is resource_exhausted. */
static void test_round_trip_and_cap(void)
{
    unsigned char bytes[200];
    struct berth_err err;
    struct buf small;

    for (size_t i = 0; i < sizeof(bytes); i++)
        bytes[i] = (unsigned char)(i * 37 + 11);
    for (size_t len = 0; len <= sizeof(bytes); len++) {
        struct buf text, back;
        buf_init(&text, 1024);
        buf_init(&back, 1024);
        berth_err_clear(&err);
        CHECK(base64_encode(bytes, len, &text, &err) == 0);
        CHECK(text.len == (len + 2) / 3 * 4);
        CHECK(base64_decode(text.data, text.len, &back, &err) == 0);
        CHECK_MSG(back.len == len && (len == 0 || memcmp(back.data, bytes, len) == 0), "len %zu",
                  len);
        buf_release(&text);
        buf_release(&back);
    }
    buf_init(&small, 3);
    berth_err_clear(&err);
    CHECK(base64_encode("foo", 3, &small, &err) == -1 && err.code == BERTH_RESOURCE_EXHAUSTED);
    buf_release(&small);
    buf_init(&small, 2);
    berth_err_clear(&err);
    CHECK(base64_decode("Zm9v", 4, &small, &err) == -1 && err.code == BERTH_RESOURCE_EXHAUSTED);
    buf_release(&small);
}

int main(void)
{
    test_encode();
    test_decode();
    test_round_trip_and_cap();
    return test_summary("test_base64");
}
