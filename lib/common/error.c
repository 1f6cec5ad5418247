#include "error.h"

#include <stdarg.h>
#include <stdio.h>

int rctd_fail(char *err, size_t err_len, const char *fmt, ...) {
  if (!err || !err_len) return -1;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, err_len, fmt, ap);
  va_end(ap);
  return -1;
}
