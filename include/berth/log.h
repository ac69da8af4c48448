/* key=value log lines on stderr with the <N> priority prefix journald reads.
 * The log level is the one piece of global mutable state. */
#ifndef BERTH_LOG_H
#define BERTH_LOG_H

enum log_level { LOG_LEVEL_ERROR = 3, LOG_LEVEL_WARN = 4, LOG_LEVEL_INFO = 6, LOG_LEVEL_DEBUG = 7 };

void log_set_level(enum log_level level);
int log_level_parse(const char *name, enum log_level *out);
const char *log_level_name(enum log_level level);
int log_enabled(enum log_level level);

/* fmt is the rest of the line after msg=<event>, e.g. "vm_id=%s code=%s". */
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
