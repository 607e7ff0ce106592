/*
 * log.h - leveled logging to stderr with a timestamp, role and pid.
 */
#ifndef FERRY_LOG_H
#define FERRY_LOG_H

enum log_level {
	LOG_ERROR = 0,
	LOG_WARN  = 1,
	LOG_INFO  = 2,
	LOG_DEBUG = 3,
};

/* Set the process-wide level and the role shown in each line. */
void log_init(const char *role, int level);

/* Current level. */
int log_level_get(void);

/* Parse "error", "warn", "info" or "debug"; -1 if none of them. */
int log_level_parse(const char *s);

/* Name of a level ("info"). */
const char *log_level_name(int level);

/* Write one line at level (printf format). */
void log_write(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_error(...) log_write(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_write(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_write(LOG_INFO, __VA_ARGS__)
#define log_debug(...)                                                   \
	do {                                                             \
		if (log_level_get() >= LOG_DEBUG)                        \
			log_write(LOG_DEBUG, __VA_ARGS__);               \
	} while (0)

#endif
