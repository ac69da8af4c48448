/* UTF-8: every boundary of the well-formed byte sequences (Unicode table
 * 3-7), and what is not one: overlong forms, surrogates, code points past
 * U+10FFFF, cut and stray bytes (berth/utf8.h). */
#include <string.h>

#include "berth/utf8.h"
#include "testlib.h"

#define ROWS(a) (sizeof(a) / sizeof((a)[0]))

static void test_seq_len(void)
{
    static const struct {
        const char *what, *bytes;
        size_t avail; /* 0: strlen */
        size_t len;   /* 0: not a sequence */
    } rows[] = {
        {"ASCII", "a", 0, 1},
        {"NUL counts as one byte", "\0", 1, 1},
        {"DEL", "\x7f", 0, 1},
        {"smallest two-byte", "\xc2\x80", 0, 2},
        {"largest two-byte", "\xdf\xbf", 0, 2},
        {"overlong two-byte C0", "\xc0\x80", 0, 0},
        {"overlong two-byte C1", "\xc1\xbf", 0, 0},
        {"two-byte without continuation", "\xc3(", 0, 0},
        {"two-byte cut", "\xc3", 0, 0},
        {"smallest three-byte", "\xe0\xa0\x80", 0, 3},
        {"overlong three-byte", "\xe0\x9f\xbf", 0, 0},
        {"last before surrogates", "\xed\x9f\xbf", 0, 3},
        {"high surrogate", "\xed\xa0\x80", 0, 0},
        {"low surrogate", "\xed\xbf\xbf", 0, 0},
        {"first after surrogates", "\xee\x80\x80", 0, 3},
        {"U+FFFF", "\xef\xbf\xbf", 0, 3},
        {"three-byte cut by avail", "\xe2\x98\x83", 2, 0},
        {"smallest four-byte", "\xf0\x90\x80\x80", 0, 4},
        {"overlong four-byte", "\xf0\x8f\xbf\xbf", 0, 0},
        {"U+10FFFF", "\xf4\x8f\xbf\xbf", 0, 4},
        {"past U+10FFFF", "\xf4\x90\x80\x80", 0, 0},
        {"F5 lead", "\xf5\x80\x80\x80", 0, 0},
        {"four-byte cut", "\xf0\x9f\x98", 0, 0},
        {"lone continuation", "\x80", 0, 0},
        {"FF", "\xff", 0, 0},
        {"ASCII with only its byte available", "ab", 1, 1},
    };

    for (size_t i = 0; i < ROWS(rows); i++) {
        size_t avail = rows[i].avail ? rows[i].avail : strlen(rows[i].bytes);
        size_t got = utf8_seq_len(rows[i].bytes, avail);
        CHECK_MSG(got == rows[i].len, "%s: %zu", rows[i].what, got);
    }
    CHECK(utf8_seq_len("a", 0) == 0);
}

static void test_valid(void)
{
    static const struct {
        const char *what, *s;
        bool valid;
    } rows[] = {
        {"empty", "", true},
        {"ASCII", "hello", true},
        {"mixed", "a\xc3\xa9\xe2\x98\x83\xf0\x9f\x98\x80z", true},
        {"cut at the end", "ab\xe2\x98", false},
        {"surrogate inside", "a\xed\xa0\x80z", false},
        {"stray continuation", "a\x80", false},
    };

    for (size_t i = 0; i < ROWS(rows); i++)
        CHECK_MSG(utf8_valid(rows[i].s, strlen(rows[i].s)) == rows[i].valid, "%s", rows[i].what);
    CHECK(utf8_valid("a\0b", 3)); /* NUL is valid UTF-8; callers refuse it */
}

int main(void)
{
    test_seq_len();
    test_valid();
    return test_summary("test_utf8");
}
