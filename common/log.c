/*
 * log.c - leveled logging to stderr.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static int         log_lvl = LOG_INFO;
static const char *log_role = "ferry";

static const char *level_names[] = { "error", "warn", "info", "debug" };

void
log_init(const char *role, int level)
{
	if (role != NULL)
		log_role = role;
	if (level >= LOG_ERROR && level <= LOG_DEBUG)
		log_lvl = level;
}

int
log_level_get(void)
{
	return log_lvl;
}

int
log_level_parse(const char *s)
{
	for (int i = 0; i <= LOG_DEBUG; i++)
		if (strcmp(s, level_names[i]) == 0)
			return i;
	if (strcmp(s, "warning") == 0)
		return LOG_WARN;
	return -1;
}

const char *
log_level_name(int level)
{
	if (level < LOG_ERROR || level > LOG_DEBUG)
		return "?";
	return level_names[level];
}

void
log_write(int level, const char *fmt, ...)
{
	char           line[2048];
	struct timeval tv;
	struct tm      tm;
	size_t         n;
	va_list        ap;

	if (level > log_lvl)
		return;
	gettimeofday(&tv, NULL);
	localtime_r(&tv.tv_sec, &tm);
	n = strftime(line, sizeof(line), "%Y-%m-%d %H:%M:%S", &tm);
	n += (size_t)snprintf(line + n, sizeof(line) - n, ".%03d %s[%d] %s: ",
	    (int)(tv.tv_usec / 1000), log_role, (int)getpid(),
	    log_level_name(level));
	va_start(ap, fmt);
	if (n < sizeof(line))
		vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	va_end(ap);
	n = strlen(line);
	if (n + 1 < sizeof(line)) {
		line[n++] = '\n';
		line[n]   = '\0';
	} else {
		line[sizeof(line) - 2] = '\n';
		n                      = sizeof(line) - 1;
	}
	/* one write per line so lines from many processes do not interleave */
	if (write(STDERR_FILENO, line, n) < 0) {
		/* nowhere left to report it */
	}
}
