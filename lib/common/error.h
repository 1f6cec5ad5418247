/* The one error formatter of library code: functions that fail write one line into the
 * caller's buffer and return -1; frontends print it (see cli.h).  Never prints or exits. */
#ifndef RCTD_ERROR_H
#define RCTD_ERROR_H
#include <stddef.h>

/* Formats the message into err (when err and err_len are non-zero) and returns -1. */
int rctd_fail(char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
