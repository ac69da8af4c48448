/* Structured log events (see berth/log.h): logfmt or JSON lines on stderr,
 * each written with one write() call so threads do not interleave, or
 * journal entries with one field per key. */
#include "berth/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-journal.h>
#include <time.h>
#include <unistd.h>

/* One event's text: the fields as formatted, then each output form. */
#define LOG_FIELDS_MAX 4096
#define LOG_LINE_MAX (2 * LOG_FIELDS_MAX + 256)
#define LOG_MAX_PAIRS 48
#define LOG_JOURNAL_KEY_MAX 64

/* One key=value of an event, both parts cut out of a scratch copy. */
struct log_pair {
    const char *key;
    const char *value;
};

static void log_timestamp(char *out, size_t n);
static size_t log_parse_pairs(char *text, struct log_pair *pairs, size_t max);
static size_t log_json_escape(char *out, size_t room, const char *s);
static void log_write_line(enum log_level level, const char *event, const char *fields);
static void log_write_journal(enum log_level level, const char *event, const char *fields);
static int log_stderr_is_journal(void);

static _Atomic int log_level = LOG_LEVEL_INFO;
static _Atomic int log_format = LOG_FORMAT_LOGFMT;
static _Atomic int log_to_journal = 0;
/* Test hooks; set before any thread logs. */
static log_line_sink_fn log_line_sink;
static log_journal_sink_fn log_journal_sink;
static void *log_sink_arg;

static const struct {
    const char *name;
    enum log_level level;
} level_names[] = {
    {"error", LOG_LEVEL_ERROR},
    {"warn", LOG_LEVEL_WARN},
    {"info", LOG_LEVEL_INFO},
    {"debug", LOG_LEVEL_DEBUG},
};

static const char *const format_names[] = {
    [LOG_FORMAT_LOGFMT] = "logfmt", [LOG_FORMAT_JSON] = "json"};
static const char *const target_names[] = {
    [LOG_TARGET_AUTO] = "auto", [LOG_TARGET_STDERR] = "stderr", [LOG_TARGET_JOURNAL] = "journal"};

void log_set_level(enum log_level level)
{
    atomic_store(&log_level, (int)level);
}

int log_enabled(enum log_level level)
{
    return (int)level <= atomic_load(&log_level);
}

int log_level_parse(const char *name, enum log_level *out)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcmp(level_names[i].name, name) == 0) {
            *out = level_names[i].level;
            return 0;
        }
    }
    return -1;
}

const char *log_level_name(enum log_level level)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
        if (level_names[i].level == level)
            return level_names[i].name;
    return "info";
}

int log_format_parse(const char *name, enum log_format *out)
{
    for (size_t i = 0; i < sizeof(format_names) / sizeof(format_names[0]); i++) {
        if (strcmp(format_names[i], name) == 0) {
            *out = (enum log_format)i;
            return 0;
        }
    }
    return -1;
}

const char *log_format_name(enum log_format f)
{
    return (unsigned)f < sizeof(format_names) / sizeof(format_names[0]) ? format_names[f]
                                                                        : "logfmt";
}

int log_target_parse(const char *name, enum log_target *out)
{
    for (size_t i = 0; i < sizeof(target_names) / sizeof(target_names[0]); i++) {
        if (strcmp(target_names[i], name) == 0) {
            *out = (enum log_target)i;
            return 0;
        }
    }
    return -1;
}

const char *log_target_name(enum log_target t)
{
    return (unsigned)t < sizeof(target_names) / sizeof(target_names[0]) ? target_names[t] : "auto";
}

/* systemd sets JOURNAL_STREAM=<dev>:<inode> of the stream it connected to
 * stdout/stderr; it counts only while stderr is still that stream. */
static int log_stderr_is_journal(void)
{
    const char *env = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;
    char tail;

    if (env == NULL || sscanf(env, "%llu:%llu%c", &dev, &ino, &tail) != 2)
        return 0;
    if (fstat(STDERR_FILENO, &st) < 0)
        return 0;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void log_configure(enum log_format format, enum log_target target)
{
    atomic_store(&log_format, (int)format);
    if (target == LOG_TARGET_AUTO)
        atomic_store(&log_to_journal, log_stderr_is_journal());
    else
        atomic_store(&log_to_journal, target == LOG_TARGET_JOURNAL);
}

void log_set_sinks(log_line_sink_fn line, log_journal_sink_fn journal, void *arg)
{
    log_line_sink = line;
    log_journal_sink = journal;
    log_sink_arg = arg;
}

const char *log_quote(struct log_quoted *q, const char *value)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = 0, i;

    q->text[n++] = '"';
    for (i = 0; value != NULL && value[i] != '\0' && i < LOG_QUOTE_MAX; i++) {
        unsigned char c = (unsigned char)value[i];
        if (c == '"' || c == '\\') {
            q->text[n++] = '\\';
            q->text[n++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            q->text[n++] = '\\';
            q->text[n++] = 'x';
            q->text[n++] = hex[c >> 4];
            q->text[n++] = hex[c & 0xf];
        } else {
            q->text[n++] = (char)c;
        }
    }
    if (value != NULL && value[i] != '\0') {
        memcpy(q->text + n, "...", 3);
        n += 3;
    }
    q->text[n++] = '"';
    q->text[n] = '\0';
    return q->text;
}

/* RFC 3339 UTC with milliseconds: 2026-12-03T17:55:01.123Z. Each thread
 * keeps the text of the last second it wrote: a busy thread formats the
 * date once a second, not once a line. */
static void log_timestamp(char *out, size_t n)
{
    static _Thread_local time_t last_sec = (time_t)-1;
    static _Thread_local char last[40]; /* "2026-12-03T17:55:01" */
    struct timespec ts;
    int ms;

    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec != last_sec) {
        struct tm tm;

        gmtime_r(&ts.tv_sec, &tm);
        snprintf(last, sizeof(last), "%04d-%02d-%02dT%02d:%02d:%02d", (tm.tm_year + 1900) % 10000,
                 (tm.tm_mon + 1) % 100, tm.tm_mday % 100, tm.tm_hour % 100, tm.tm_min % 100,
                 tm.tm_sec % 100);
        last_sec = ts.tv_sec;
    }
    ms = (int)(ts.tv_nsec / 1000000);
    if (n < 25) { /* no room: no time rather than a cut one */
        if (n > 0)
            out[0] = '\0';
        return;
    }
    memcpy(out, last, 19);
    out[19] = '.';
    out[20] = (char)('0' + ms / 100);
    out[21] = (char)('0' + ms / 10 % 10);
    out[22] = (char)('0' + ms % 10);
    out[23] = 'Z';
    out[24] = '\0';
}

static int log_hex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Cut logfmt text ("k=v k=\"quoted \\\" v\"") into pairs in place: keys end
 * at '=', quoted values are unescaped (\" \\ \xNN, the forms log_quote
 * writes). A token without '=' is skipped. Returns the number of pairs. */
static size_t log_parse_pairs(char *text, struct log_pair *pairs, size_t max)
{
    char *p = text;
    size_t n = 0;

    while (*p != '\0' && n < max) {
        char *key, *val, *w;

        while (*p == ' ')
            p++;
        if (*p == '\0')
            break;
        key = p;
        while (*p != '\0' && *p != '=' && *p != ' ')
            p++;
        if (*p != '=') {
            while (*p != '\0' && *p != ' ')
                p++;
            continue;
        }
        *p++ = '\0';
        val = w = p;
        if (*p == '"') {
            p++;
            while (*p != '\0' && *p != '"') {
                if (p[0] == '\\' && (p[1] == '"' || p[1] == '\\')) {
                    *w++ = p[1];
                    p += 2;
                } else if (p[0] == '\\' && p[1] == 'x' && log_hex(p[2]) >= 0 &&
                           log_hex(p[3]) >= 0) {
                    *w++ = (char)(log_hex(p[2]) * 16 + log_hex(p[3]));
                    p += 4;
                } else {
                    *w++ = *p++;
                }
            }
            if (*p == '"')
                p++;
        } else {
            while (*p != '\0' && *p != ' ')
                *w++ = *p++;
        }
        if (*p == ' ')
            p++;
        *w = '\0';
        pairs[n].key = key;
        pairs[n].value = val;
        n++;
    }
    return n;
}

/* s as the inside of a JSON string into out (room bytes, NUL-terminated);
 * returns the bytes written, cut short when room runs out. */
static size_t log_json_escape(char *out, size_t room, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = 0;

    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[7];
        size_t k = 0;

        if (c == '"' || c == '\\') {
            esc[k++] = '\\';
            esc[k++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            memcpy(esc, "\\u00", 4);
            k = 4;
            esc[k++] = hex[c >> 4];
            esc[k++] = hex[c & 0xf];
        } else {
            esc[k++] = (char)c;
        }
        if (n + k + 1 > room)
            break;
        memcpy(out + n, esc, k);
        n += k;
    }
    if (room > 0)
        out[n] = '\0';
    return n;
}

static void log_write_line(enum log_level level, const char *event, const char *fields)
{
    char line[LOG_LINE_MAX], ts[40];
    size_t n = 0;

    log_timestamp(ts, sizeof(ts));
    if (atomic_load(&log_format) == LOG_FORMAT_JSON) {
        char scratch[LOG_FIELDS_MAX];
        struct log_pair pairs[LOG_MAX_PAIRS];
        size_t np;
        int m = snprintf(line, sizeof(line), "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"", ts,
                         log_level_name(level));

        if (m < 0)
            return;
        n = (size_t)m;
        n += log_json_escape(line + n, sizeof(line) - n, event);
        snprintf(scratch, sizeof(scratch), "%s", fields);
        np = log_parse_pairs(scratch, pairs, LOG_MAX_PAIRS);
        for (size_t i = 0; i < np && n + 8 < sizeof(line); i++) {
            memcpy(line + n, "\",\"", 3);
            n += 3;
            n += log_json_escape(line + n, sizeof(line) - n, pairs[i].key);
            if (n + 4 >= sizeof(line))
                break;
            memcpy(line + n, "\":\"", 3);
            n += 3;
            n += log_json_escape(line + n, sizeof(line) - n, pairs[i].value);
        }
        if (n + 3 >= sizeof(line))
            n = sizeof(line) - 3;
        memcpy(line + n, "\"}", 2);
        n += 2;
    } else {
        /* "ts=%s level=%s msg=%s %s", cut to leave room for the newline. */
        const char *parts[] = {"ts=",   ts,    " level=", log_level_name(level),
                               " msg=", event, " ",       fields};

        for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
            size_t k = strlen(parts[i]);

            if (k > sizeof(line) - 2 - n)
                k = sizeof(line) - 2 - n;
            memcpy(line + n, parts[i], k);
            n += k;
        }
        while (n > 0 && line[n - 1] == ' ')
            n--;
    }
    line[n++] = '\n';
    if (log_line_sink != NULL) {
        log_line_sink(log_sink_arg, line, n);
        return;
    }
    if (write(STDERR_FILENO, line, n) < 0)
        return;
}

/* One journal entry: MESSAGE (the logfmt text, for people), PRIORITY,
 * BERTH_EVENT and each key in upper case with '.' and '-' as '_'. Keys
 * that do not make a valid journal field name are left to MESSAGE. */
static void log_write_journal(enum log_level level, const char *event, const char *fields)
{
    char scratch[LOG_FIELDS_MAX], message[LOG_FIELDS_MAX + 128], prio[16], ev[128];
    char keys[LOG_MAX_PAIRS][LOG_JOURNAL_KEY_MAX + 1];
    char texts[LOG_MAX_PAIRS][LOG_FIELDS_MAX / 4];
    struct iovec iov[LOG_MAX_PAIRS + 4];
    struct log_pair pairs[LOG_MAX_PAIRS];
    size_t np, n = 0;
    int m;

    m = snprintf(message, sizeof(message), "MESSAGE=%s %s", event, fields);
    if (m < 0)
        return;
    iov[n++] = (struct iovec){message, strlen(message)};
    snprintf(prio, sizeof(prio), "PRIORITY=%d", (int)level);
    iov[n++] = (struct iovec){prio, strlen(prio)};
    snprintf(ev, sizeof(ev), "BERTH_EVENT=%s", event);
    iov[n++] = (struct iovec){ev, strlen(ev)};
    iov[n++] = (struct iovec){"SYSLOG_IDENTIFIER=berthd", strlen("SYSLOG_IDENTIFIER=berthd")};
    snprintf(scratch, sizeof(scratch), "%s", fields);
    np = log_parse_pairs(scratch, pairs, LOG_MAX_PAIRS);
    for (size_t i = 0; i < np; i++) {
        const char *k = pairs[i].key;
        size_t kl = strlen(k), j;
        int ok = kl > 0 && kl <= LOG_JOURNAL_KEY_MAX &&
                 ((k[0] >= 'a' && k[0] <= 'z') || (k[0] >= 'A' && k[0] <= 'Z'));

        for (j = 0; ok && j < kl; j++) {
            char c = k[j];
            if (c >= 'a' && c <= 'z')
                c = (char)(c - 'a' + 'A');
            else if (c == '.' || c == '-')
                c = '_';
            else if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'))
                ok = 0;
            keys[i][j] = c;
        }
        if (!ok || strcmp(k, "message") == 0 || strcmp(k, "priority") == 0)
            continue;
        keys[i][kl] = '\0';
        m = snprintf(texts[i], sizeof(texts[i]), "%s=%s", keys[i], pairs[i].value);
        if (m < 0)
            continue;
        iov[n++] = (struct iovec){texts[i], strlen(texts[i])};
    }
    if (log_journal_sink != NULL) {
        log_journal_sink(log_sink_arg, iov, n);
        return;
    }
    (void)sd_journal_sendv(iov, (int)n);
}

void log_emit(enum log_level level, const char *event, const char *fmt, ...)
{
    char fields[LOG_FIELDS_MAX];
    va_list ap;
    int m;

    if (!log_enabled(level))
        return;
    va_start(ap, fmt);
    m = vsnprintf(fields, sizeof(fields), fmt, ap);
    va_end(ap);
    if (m < 0)
        return;
    /* Never let a value break the one-line shape. */
    for (char *p = fields; *p != '\0'; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    if (atomic_load(&log_to_journal))
        log_write_journal(level, event, fields);
    else
        log_write_line(level, event, fields);
}
