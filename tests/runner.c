/* Test runner: runs every registered test, or one tier (--unit: tests of lib/ and kernels/, no
 * binary; --e2e: tests of the tools), or those whose name or file contains FILTER:
 *   rctd-tests [--unit | --e2e] [FILTER] */
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
  int e2e; /* 1: end-to-end (runs the binaries) */
} test_case;

static test_case *tests;
static int n_tests, cap_tests;
static char tmp_dir[256];
static int running_unit;    /* the running test is a unit test */
static int unit_asked_bins; /* ... and it asked for the binaries */

static void test_add(const char *name, const char *file, test_fn fn, int e2e) {
  if (n_tests == cap_tests) {
    cap_tests = cap_tests ? 2 * cap_tests : 64;
    tests = realloc(tests, (size_t)cap_tests * sizeof *tests);
    if (!tests) abort();
  }
  tests[n_tests++] = (test_case){name, file, fn, e2e};
}

void test_register(const char *name, const char *file, test_fn fn) {
  test_add(name, file, fn, 0);
}

void test_register_e2e(const char *name, const char *file, test_fn fn) {
  test_add(name, file, fn, 1);
}

const char *test_bin_dir(void) {
  if (running_unit) {
    /* the tiers stay apart: a unit test must not need the binaries */
    unit_asked_bins = 1;
    return "/nonexistent/unit-tests-run-no-binary";
  }
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

/* Unit tests first, then end to end; by file and name within each tier. */
static int by_tier_file_name(const void *a, const void *b) {
  const test_case *x = a, *y = b;
  if (x->e2e != y->e2e) return x->e2e - y->e2e;
  int c = strcmp(x->file, y->file);
  return c ? c : strcmp(x->name, y->name);
}

int main(int argc, char **argv) {
  int tier = -1; /* -1 all, 0 unit, 1 e2e */
  int a = 1;
  if (a < argc && strcmp(argv[a], "--unit") == 0)
    tier = 0, a++;
  else if (a < argc && strcmp(argv[a], "--e2e") == 0)
    tier = 1, a++;
  const char *filter = a < argc ? argv[a] : NULL;
  snprintf(tmp_dir, sizeof tmp_dir, "/tmp/rctd-tests.XXXXXX");
  if (!mkdtemp(tmp_dir)) {
    perror("mkdtemp");
    return 1;
  }
  qsort(tests, (size_t)n_tests, sizeof *tests, by_tier_file_name);
  int passed[2] = {0, 0}, failed[2] = {0, 0};
  for (int i = 0; i < n_tests; i++) {
    if (filter && !strstr(tests[i].name, filter) && !strstr(tests[i].file, filter)) continue;
    if (tier >= 0 && tests[i].e2e != tier) continue;
    int f = 0;
    running_unit = !tests[i].e2e;
    unit_asked_bins = 0;
    tests[i].fn(&f);
    running_unit = 0;
    if (unit_asked_bins) {
      fprintf(stderr, "  %s is a unit test but runs the binaries: make it TEST_E2E\n",
              tests[i].name);
      f = 1;
    }
    if (f) fprintf(stderr, "FAIL %s (%s)\n", tests[i].name, tests[i].file);
    (f ? failed : passed)[tests[i].e2e]++;
  }
  char rm[300];
  snprintf(rm, sizeof rm, "rm -rf '%s'", tmp_dir);
  if (system(rm) != 0) fprintf(stderr, "could not remove %s\n", tmp_dir);
  /* One line per tier run ("unit:", "e2e:"), then the plain total when both ran. */
  static const char *const tier_label[2] = {"unit", "e2e"};
  for (int t = 0; t < 2; t++)
    if (tier < 0 || tier == t)
      printf("%s: %d passed, %d failed\n", tier_label[t], passed[t], failed[t]);
  if (tier < 0) printf("%d passed, %d failed\n", passed[0] + passed[1], failed[0] + failed[1]);
  return failed[0] + failed[1] ? 1 : 0;
}
