/* The Connect code table and the first-writer-wins error setter. */
#include "berth/buf.h"
#include "berth/err.h"
#include "berth/utf8.h"
#include "testlib.h"

static void test_codes(void)
{
    static const struct {
        enum berth_code code;
        const char *name;
        int status;
    } rows[] = {
        {BERTH_CANCELED, "canceled", 499},
        {BERTH_UNKNOWN, "unknown", 500},
        {BERTH_INVALID_ARGUMENT, "invalid_argument", 400},
        {BERTH_DEADLINE_EXCEEDED, "deadline_exceeded", 504},
        {BERTH_NOT_FOUND, "not_found", 404},
        {BERTH_ALREADY_EXISTS, "already_exists", 409},
        {BERTH_PERMISSION_DENIED, "permission_denied", 403},
        {BERTH_RESOURCE_EXHAUSTED, "resource_exhausted", 429},
        {BERTH_FAILED_PRECONDITION, "failed_precondition", 400},
        {BERTH_ABORTED, "aborted", 409},
        {BERTH_OUT_OF_RANGE, "out_of_range", 400},
        {BERTH_UNIMPLEMENTED, "unimplemented", 501},
        {BERTH_INTERNAL, "internal", 500},
        {BERTH_UNAVAILABLE, "unavailable", 503},
        {BERTH_DATA_LOSS, "data_loss", 500},
        {BERTH_UNAUTHENTICATED, "unauthenticated", 401},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        CHECK_STR(berth_code_name(rows[i].code), rows[i].name);
        CHECK(berth_code_http_status(rows[i].code) == rows[i].status);
        CHECK(berth_code_from_name(rows[i].name) == rows[i].code);
    }
    CHECK(berth_code_http_status((enum berth_code)99) == 500);
}

static void test_first_writer_wins(void)
{
    struct berth_err err;

    berth_err_clear(&err);
    CHECK(berth_err_set(&err, BERTH_NOT_FOUND, "vm '%s' not found", "a\r\nb") == -1);
    CHECK(berth_err_set(&err, BERTH_INTERNAL, "outer") == -1);
    CHECK(err.code == BERTH_NOT_FOUND);
    CHECK_STR(err.msg, "vm 'a  b' not found");
}

/* Valid UTF-8 by the rules of utf8_seq_len. */
static int utf8_ok(const char *s)
{
    size_t len = strlen(s);

    for (size_t i = 0, n; i < len; i += n)
        if ((n = utf8_seq_len(s + i, len - i)) == 0)
            return 0;
    return 1;
}

static void test_cut_on_char_boundary(void)
{
    static const struct {
        const char *what;
        const char *ch; /* repeated to overflow the message */
        size_t prefix;  /* ASCII bytes before, to move the cut */
    } rows[] = {
        {"2-byte at an odd offset", "\xc3\xa9", 1},
        {"2-byte at an even offset", "\xc3\xa9", 0},
        {"3-byte, cut after 1", "\xe2\x98\x83", 0},
        {"3-byte, cut after 2", "\xe2\x98\x83", 1},
        {"4-byte, cut after 3", "\xf0\x9f\x98\x80", 0},
        {"4-byte, cut after 1", "\xf0\x9f\x98\x80", 2},
    };
    char in[1600];
    struct berth_err err;

    for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++) {
        size_t n = 0, cl = strlen(rows[r].ch);
        for (; n < rows[r].prefix; n++)
            in[n] = 'x';
        while (n + cl < sizeof(in) - 1) {
            memcpy(in + n, rows[r].ch, cl);
            n += cl;
        }
        in[n] = '\0';
        berth_err_clear(&err);
        berth_err_set(&err, BERTH_NOT_FOUND, "vm '%s' not found", in);
        CHECK_MSG(utf8_ok(err.msg), "%s", rows[r].what);
        CHECK_MSG(strlen(err.msg) > BERTH_ERR_MSG_MAX - 1 - cl, "%s: cut too short (%zu)",
                  rows[r].what, strlen(err.msg));
    }
}

static void test_buf_cap(void)
{
    struct buf b;
    struct berth_err err;

    berth_err_clear(&err);
    buf_init(&b, 8);
    CHECK(buf_appends(&b, "12345678", &err) == 0);
    CHECK(buf_appends(&b, "9", &err) == -1);
    CHECK(err.code == BERTH_RESOURCE_EXHAUSTED);
    CHECK(b.len == 8);
    buf_release(&b);
}

int main(void)
{
    test_codes();
    test_first_writer_wins();
    test_cut_on_char_boundary();
    test_buf_cap();
    return test_summary("test_err");
}
