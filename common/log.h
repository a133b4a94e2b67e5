/*
 * log.h - leveled logging to stderr, process-wide.
 *
 * Levels follow memcached's -v/-vv: warnings by default, -v adds info (errors
 * on connections, state changes), -vv adds per-command debug lines.
 * Thread-safe: one write(2) per line, so lines from workers never interleave.
 */
#pragma once

enum log_level {
    LOG_LVL_ERROR = 0,
    LOG_LVL_WARN = 1,
    LOG_LVL_INFO = 2,
    LOG_LVL_DEBUG = 3,
};

void log_setup(enum log_level level);
void log_teardown(void);

/* Current level; cheap (relaxed atomic), callable from any thread. */
enum log_level log_level(void);
void log_set_level(enum log_level level);

void log_write(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_write(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...) log_write(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...)                             \
    do {                                          \
        if (log_level() >= LOG_LVL_INFO)          \
            log_write(LOG_LVL_INFO, __VA_ARGS__); \
    } while (0)
#define log_debug(...)                             \
    do {                                           \
        if (log_level() >= LOG_LVL_DEBUG)          \
            log_write(LOG_LVL_DEBUG, __VA_ARGS__); \
    } while (0)
