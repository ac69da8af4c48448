/* The Connect error writer (always valid JSON, whatever the message holds)
 * and the log quoting every quoted log value goes through. */
#include <cjson/cJSON.h>
#include <string.h>

#include "berth/connect.h"
#include "berth/utf8.h"
#include "berth/log.h"
#include "testlib.h"

static int utf8_ok(const char *s, size_t len)
{
    for (size_t i = 0, n; i < len; i += n)
        if ((n = utf8_seq_len(s + i, len - i)) == 0)
            return 0;
    return 1;
}

static void test_error_body_is_valid_utf8(void)
{
    static const struct {
        const char *what;
        const char *msg;
        const char *want; /* the message as JSON reads it back */
    } rows[] = {
        {"plain", "vm 'a' not found", "vm 'a' not found"},
        {"stray bytes become U+FFFD", "vm '\xff\xfe\"\\' not found",
         "vm '\xef\xbf\xbd\xef\xbf\xbd\"\\' not found"},
        {"a cut sequence", "id '\xe2\x98'", "id '\xef\xbf\xbd\xef\xbf\xbd'"},
        {"an overlong form", "x\xc0\xafy", "x\xef\xbf\xbd\xef\xbf\xbdy"},
        {"a surrogate", "\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
        {"valid text stays", "caf\xc3\xa9 \xe2\x98\x83 \xf0\x9f\x98\x80",
         "caf\xc3\xa9 \xe2\x98\x83 \xf0\x9f\x98\x80"},
    };

    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct http_response resp;
        struct berth_err err;
        cJSON *root;

        memset(&resp, 0, sizeof(resp));
        buf_init(&resp.body, 1 << 16);
        berth_err_clear(&err);
        berth_err_set(&err, BERTH_NOT_FOUND, "%s", rows[i].msg);
        connect_write_error(&resp, &err);
        CHECK_MSG(resp.status == 404, "%s: status %d", rows[i].what, resp.status);
        CHECK_MSG(resp.body.data != NULL && utf8_ok(resp.body.data, resp.body.len),
                  "%s: body not UTF-8", rows[i].what);
        root = cJSON_ParseWithLength(resp.body.data, resp.body.len);
        CHECK_MSG(root != NULL, "%s: body not JSON", rows[i].what);
        if (root != NULL) {
            cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "message");
            CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(root, "code")),
                      "not_found");
            CHECK_STR(cJSON_GetStringValue(m), rows[i].want);
        }
        cJSON_Delete(root);
        buf_release(&resp.body);
    }
}

static void test_log_quote(void)
{
    static const struct {
        const char *what;
        const char *in;
        const char *want;
    } rows[] = {
        {"plain", "vm 'a' not found", "\"vm 'a' not found\""},
        {"quote and backslash", "a\"b\\c", "\"a\\\"b\\\\c\""},
        {"control bytes", "a\nb\rc\x01\x7f", "\"a\\x0ab\\x0dc\\x01\\x7f\""},
        {"NULL", NULL, "\"\""},
        {"UTF-8 kept", "caf\xc3\xa9", "\"caf\xc3\xa9\""},
    };
    struct log_quoted q;
    char big[LOG_QUOTE_MAX + 10];

    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        CHECK_STR(log_quote(&q, rows[i].in), rows[i].want);
    /* The worst case fits, and a cut is marked. */
    memset(big, '\x01', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    log_quote(&q, big);
    CHECK(strlen(q.text) == 1 + 4 * LOG_QUOTE_MAX + 3 + 1);
    CHECK(strcmp(q.text + strlen(q.text) - 4, "...\"") == 0);
}

int main(void)
{
    test_error_body_is_valid_utf8();
    test_log_quote();
    return test_summary("test_protocol");
}
