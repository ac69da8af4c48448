/* Unit tests for src/log.c: the logfmt and JSON line shapes, the journal
 * fields (through the journal sink hook), quoting and level filtering. */
#include <stdlib.h>
#include <string.h>

#include "berth/log.h"
#include "testlib.h"

struct capture {
    char line[16384];
    size_t lines;
    char fields[64][1100];
    size_t n_fields;
    size_t entries;
};

static void capture_line(void *arg, const char *line, size_t len)
{
    struct capture *c = arg;

    if (len >= sizeof(c->line))
        len = sizeof(c->line) - 1;
    memcpy(c->line, line, len);
    c->line[len] = '\0';
    c->lines++;
}

static void capture_journal(void *arg, const struct iovec *fields, size_t n)
{
    struct capture *c = arg;

    c->entries++;
    c->n_fields = 0;
    for (size_t i = 0; i < n && i < 64; i++) {
        size_t len = fields[i].iov_len < 1099 ? fields[i].iov_len : 1099;
        memcpy(c->fields[i], fields[i].iov_base, len);
        c->fields[i][len] = '\0';
        c->n_fields++;
    }
}

/* The value of journal field KEY in the last entry, or NULL. */
static const char *journal_field(const struct capture *c, const char *key)
{
    size_t kl = strlen(key);

    for (size_t i = 0; i < c->n_fields; i++)
        if (strncmp(c->fields[i], key, kl) == 0 && c->fields[i][kl] == '=')
            return c->fields[i] + kl + 1;
    return NULL;
}

static void test_logfmt(void)
{
    struct capture c = {0};
    struct log_quoted q;
    const char *p;

    log_set_sinks(capture_line, capture_journal, &c);
    log_configure(LOG_FORMAT_LOGFMT, LOG_TARGET_STDERR);
    log_set_level(LOG_LEVEL_INFO);
    log_info("vm.boot", "vm_id=%s duration_ms=%d error=%s", "web-1", 231,
             log_quote(&q, "a \"b\"\nc"));
    CHECK(c.lines == 1);
    /* ts= first (RFC 3339 UTC, milliseconds), then level=, then msg=. */
    CHECK(strncmp(c.line, "ts=", 3) == 0);
    CHECK(strlen(c.line) > 27 && c.line[7] == '-' && c.line[13] == 'T' && c.line[26] == 'Z');
    p = strstr(c.line, " level=info msg=vm.boot vm_id=web-1 duration_ms=231 ");
    CHECK_MSG(p != NULL, "line: %s", c.line);
    CHECK(strstr(c.line, "error=\"a \\\"b\\\"\\x0ac\"\n") != NULL);
    /* No syslog priority prefix outside the journal, one line only. */
    CHECK(strchr(c.line, '<') == NULL);
    CHECK(strchr(c.line, '\n') == c.line + strlen(c.line) - 1);

    /* Below the level: nothing. */
    log_debug("vm.noise", "x=%d", 1);
    CHECK(c.lines == 1);
    log_set_level(LOG_LEVEL_DEBUG);
    log_debug("vm.noise", "x=%d", 1);
    CHECK(c.lines == 2);
    CHECK(strstr(c.line, "level=debug msg=vm.noise x=1") != NULL);
    log_set_level(LOG_LEVEL_INFO);

    /* An event without fields ends without a trailing space. */
    log_warn("daemon.hup", "%s", "");
    CHECK(strstr(c.line, "level=warn msg=daemon.hup\n") != NULL);
    log_set_sinks(NULL, NULL, NULL);
}

static void test_json(void)
{
    struct capture c = {0};
    struct log_quoted q;

    log_set_sinks(capture_line, capture_journal, &c);
    log_configure(LOG_FORMAT_JSON, LOG_TARGET_STDERR);
    log_error("rpc", "procedure=%s code=%s error=%s", "/p.S/M", "internal",
              log_quote(&q, "tab\there \"q\" back\\slash"));
    CHECK(c.lines == 1);
    CHECK(strncmp(c.line, "{\"ts\":\"", 7) == 0);
    CHECK_MSG(strstr(c.line, "\"level\":\"error\",\"msg\":\"rpc\",\"procedure\":\"/p.S/M\","
                             "\"code\":\"internal\",\"error\":\"tab\\u0009here \\\"q\\\" "
                             "back\\\\slash\"}\n") != NULL,
              "line: %s", c.line);
    log_configure(LOG_FORMAT_LOGFMT, LOG_TARGET_STDERR);
    log_set_sinks(NULL, NULL, NULL);
}

static void test_journal(void)
{
    struct capture c = {0};
    struct log_quoted q;

    log_set_sinks(capture_line, capture_journal, &c);
    log_configure(LOG_FORMAT_LOGFMT, LOG_TARGET_JOURNAL);
    log_warn("vm.boot", "vm_id=%s request_id=%s error=%s bad$key=1 gateway.id=g", "web-1", "r-1",
             log_quote(&q, "engine said \"no\""));
    CHECK(c.lines == 0);
    CHECK(c.entries == 1);
    CHECK_STR(journal_field(&c, "PRIORITY"), "4");
    CHECK_STR(journal_field(&c, "BERTH_EVENT"), "vm.boot");
    CHECK_STR(journal_field(&c, "VM_ID"), "web-1");
    CHECK_STR(journal_field(&c, "REQUEST_ID"), "r-1");
    CHECK_STR(journal_field(&c, "ERROR"), "engine said \"no\"");
    CHECK_STR(journal_field(&c, "GATEWAY_ID"), "g");
    CHECK(journal_field(&c, "BAD$KEY") == NULL);
    CHECK(journal_field(&c, "MESSAGE") != NULL &&
          strncmp(journal_field(&c, "MESSAGE"), "vm.boot vm_id=web-1", 19) == 0);
    log_configure(LOG_FORMAT_LOGFMT, LOG_TARGET_STDERR);
    log_set_sinks(NULL, NULL, NULL);
}

static void test_auto_target(void)
{
    struct capture c = {0};

    /* JOURNAL_STREAM naming another stream than stderr: lines, not entries. */
    setenv("JOURNAL_STREAM", "1:1", 1);
    log_set_sinks(capture_line, capture_journal, &c);
    log_configure(LOG_FORMAT_LOGFMT, LOG_TARGET_AUTO);
    log_info("x", "a=%d", 1);
    CHECK(c.lines == 1 && c.entries == 0);
    unsetenv("JOURNAL_STREAM");
    log_configure(LOG_FORMAT_LOGFMT, LOG_TARGET_STDERR);
    log_set_sinks(NULL, NULL, NULL);
}

static void test_names(void)
{
    static const struct {
        const char *description;
        const char *name;
        int ok;
    } formats[] = {
        {"logfmt", "logfmt", 1},
        {"json", "json", 1},
        {"unknown", "xml", 0},
        {"case matters", "JSON", 0},
    };
    enum log_format f;
    enum log_target t;

    for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
        int rc = log_format_parse(formats[i].name, &f);
        CHECK_MSG((rc == 0) == formats[i].ok, "%s", formats[i].description);
        if (rc == 0)
            CHECK_STR(log_format_name(f), formats[i].name);
    }
    CHECK(log_target_parse("journal", &t) == 0 && t == LOG_TARGET_JOURNAL);
    CHECK(log_target_parse("auto", &t) == 0 && t == LOG_TARGET_AUTO);
    CHECK(log_target_parse("syslog", &t) < 0);
    CHECK_STR(log_target_name(LOG_TARGET_STDERR), "stderr");
}

int main(void)
{
    test_logfmt();
    test_json();
    test_journal();
    test_auto_target();
    test_names();
    return test_summary("test_log");
}
