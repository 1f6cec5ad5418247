/* Arrays of heap strings (see strlist.h). */
#include "strlist.h"

#include <stdlib.h>
#include <string.h>

void rctd_strlist_free(char **strings, size_t n) {
  if (!strings) return;
  for (size_t i = 0; i < n; i++) free(strings[i]);
  free(strings);
}

char **rctd_strlist_copy(const char *const *src, size_t n) {
  char **dst = calloc(n ? n : 1, sizeof *dst);
  if (!dst) return NULL;
  for (size_t i = 0; i < n; i++) {
    if (!(dst[i] = strdup(src[i]))) {
      rctd_strlist_free(dst, i);
      return NULL;
    }
  }
  return dst;
}

const char *rctd_strlist_duplicate(const char *const *names, size_t n) {
  for (size_t i = 1; i < n; i++)
    for (size_t j = 0; j < i; j++)
      if (strcmp(names[i], names[j]) == 0) return names[i];
  return NULL;
}
