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

#define log_error(ev, ...) log_emit(LOG_LEVEL_ERROR, ev, __VA_ARGS__)
#define log_warn(ev, ...) log_emit(LOG_LEVEL_WARN, ev, __VA_ARGS__)
#define log_info(ev, ...) log_emit(LOG_LEVEL_INFO, ev, __VA_ARGS__)
#define log_debug(ev, ...) log_emit(LOG_LEVEL_DEBUG, ev, __VA_ARGS__)

#endif
