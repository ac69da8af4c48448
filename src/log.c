/* One key=value line per event on stderr, prefixed <N> for journald; no
 * timestamp, journald adds it. Lines are written with one write() call so
 * threads do not interleave. */
#include "berth/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static _Atomic int log_level = LOG_LEVEL_INFO;

static const struct {
    const char *name;
    enum log_level level;
} level_names[] = {
    {"error", LOG_LEVEL_ERROR},
    {"warn", LOG_LEVEL_WARN},
    {"info", LOG_LEVEL_INFO},
    {"debug", LOG_LEVEL_DEBUG},
};

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

void log_emit(enum log_level level, const char *event, const char *fmt, ...)
{
    char line[4096];
    va_list ap;
    int n, m;

    if (!log_enabled(level))
        return;
    n = snprintf(line, sizeof(line), "<%d>msg=%s ", (int)level, event);
    if (n < 0 || (size_t)n >= sizeof(line))
        return;
    va_start(ap, fmt);
    m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    if (m < 0)
        return;
    n += m;
    if ((size_t)n >= sizeof(line) - 1)
        n = (int)sizeof(line) - 2;
    /* Never let a value break the one-line shape. */
    for (int i = 0; i < n; i++)
        if (line[i] == '\n' || line[i] == '\r')
            line[i] = ' ';
    line[n++] = '\n';
    if (write(STDERR_FILENO, line, (size_t)n) < 0)
        return;
}
