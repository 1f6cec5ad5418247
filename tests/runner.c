/* Test runner: runs every registered test (or those whose name contains argv[1]). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdarg.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"

typedef struct {
  const char *name;
  const char *file;
  test_fn fn;
} test_case;

static test_case *tests;
static int n_tests, cap_tests;
static char tmp_dir[256];

void test_register(const char *name, const char *file, test_fn fn) {
  if (n_tests == cap_tests) {
    cap_tests = cap_tests ? 2 * cap_tests : 64;
    tests = realloc(tests, (size_t)cap_tests * sizeof *tests);
    if (!tests) abort();
  }
  tests[n_tests++] = (test_case){name, file, fn};
}

const char *test_bin_dir(void) {
  const char *d = getenv("RCTD_BIN");
  return d && *d ? d : "bin";
}

const char *test_repo_dir(void) {
  const char *d = getenv("RCTD_REPO");
  return d && *d ? d : ".";
}

const char *test_tmp_dir(void) {
  return tmp_dir;
}

int test_sh(const char *fmt, ...) {
  char cmd[8192];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  int status = system(cmd);
  if (status == -1 || !WIFEXITED(status)) return -1;
  return WEXITSTATUS(status);
}

static int by_file_then_name(const void *a, const void *b) {
  const test_case *x = a, *y = b;
  int c = strcmp(x->file, y->file);
  return c ? c : strcmp(x->name, y->name);
}

int main(int argc, char **argv) {
  const char *filter = argc > 1 ? argv[1] : NULL;
  snprintf(tmp_dir, sizeof tmp_dir, "/tmp/rctd-tests.XXXXXX");
  if (!mkdtemp(tmp_dir)) {
    perror("mkdtemp");
    return 1;
  }
  qsort(tests, (size_t)n_tests, sizeof *tests, by_file_then_name);
  int passed = 0, failed = 0;
  for (int i = 0; i < n_tests; i++) {
    if (filter && !strstr(tests[i].name, filter) && !strstr(tests[i].file, filter)) continue;
    int f = 0;
    tests[i].fn(&f);
    if (f) {
      fprintf(stderr, "FAIL %s (%s)\n", tests[i].name, tests[i].file);
      failed++;
    } else {
      passed++;
    }
  }
  char rm[300];
  snprintf(rm, sizeof rm, "rm -rf '%s'", tmp_dir);
  if (system(rm) != 0) fprintf(stderr, "could not remove %s\n", tmp_dir);
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
