/* Structured log events: an event name plus key=value fields. Written as
 * one logfmt line (ts=... level=... msg=<event> k=v ...), one JSON object per
 * line, or, under journald, a journal entry whose fields are the keys in
 * upper case (VM_ID=web-1, PROCEDURE=..., BERTH_EVENT=<event>), so that
 * `journalctl VM_ID=web-1` finds them. The level, format and sink are the
 * one piece of global mutable state. */
#ifndef BERTH_LOG_H
#define BERTH_LOG_H

#include <stddef.h>
#include <sys/uio.h>

enum log_level { LOG_LEVEL_ERROR = 3, LOG_LEVEL_WARN = 4, LOG_LEVEL_INFO = 6, LOG_LEVEL_DEBUG = 7 };

enum log_format {
    LOG_FORMAT_LOGFMT, /* ts=2026-12-03T17:55:01.123Z level=info msg=vm.boot vm_id=web-1 */
    LOG_FORMAT_JSON,   /* {"ts":"...","level":"info","msg":"vm.boot","vm_id":"web-1"} */
};

enum log_target {
    LOG_TARGET_AUTO,   /* the journal when stderr is connected to it (JOURNAL_STREAM) */
    LOG_TARGET_STDERR, /* lines on stderr in the chosen format */
    LOG_TARGET_JOURNAL /* structured entries through the journal's native protocol */
};

void log_set_level(enum log_level level);
int log_level_parse(const char *name, enum log_level *out);
const char *log_level_name(enum log_level level);
int log_enabled(enum log_level level);

int log_format_parse(const char *name, enum log_format *out);
const char *log_format_name(enum log_format f);
int log_target_parse(const char *name, enum log_target *out);
const char *log_target_name(enum log_target t);
/* Choose the output; LOG_TARGET_AUTO is resolved here, once. */
void log_configure(enum log_format format, enum log_target target);

/* Test hooks: where finished output goes instead of stderr / the journal.
 * A line sink gets one whole line (with its newline); a journal sink gets
 * the entry's fields as "KEY=value" iovecs. NULL restores the default. */
typedef void (*log_line_sink_fn)(void *arg, const char *line, size_t len);
typedef void (*log_journal_sink_fn)(void *arg, const struct iovec *fields, size_t n);
void log_set_sinks(log_line_sink_fn line, log_journal_sink_fn journal, void *arg);

/* fmt is the event's fields in logfmt, e.g. "vm_id=%s code=%s"; values that
 * may hold spaces or come from outside go through log_quote. */
void log_emit(enum log_level level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Bytes of input log_quote keeps: the longest error message fits. */
#define LOG_QUOTE_MAX 512

/* Room for one quoted value: each byte may become \xNN, plus the quotes
 * and the "..." of a cut. */
struct log_quoted {
    char text[4 * LOG_QUOTE_MAX + 8];
};

/* `value` as one token of a log line, for every value that may hold spaces
 * or come from outside: in double quotes, '"' and '\' escaped with a
 * backslash, control bytes and DEL as \xNN, cut after LOG_QUOTE_MAX bytes
 * ("..." marks the cut). Returns q->text; NULL gives "". */
const char *log_quote(struct log_quoted *q, const char *value);

#define log_error(ev, ...) log_emit(LOG_LEVEL_ERROR, ev, __VA_ARGS__)
#define log_warn(ev, ...) log_emit(LOG_LEVEL_WARN, ev, __VA_ARGS__)
#define log_info(ev, ...) log_emit(LOG_LEVEL_INFO, ev, __VA_ARGS__)
#define log_debug(ev, ...) log_emit(LOG_LEVEL_DEBUG, ev, __VA_ARGS__)

#endif
