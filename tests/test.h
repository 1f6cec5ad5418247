/* Minimal test framework: every tests/test_*.c registers TEST()s; tests/runner.c runs them
 * and prints "N passed, N failed".  A test fails on the first failed CHECK. */
#ifndef RCTD_TEST_H
#define RCTD_TEST_H
#include <math.h>
#include <stdio.h>
#include <string.h>

typedef void (*test_fn)(int *failed);
void test_register(const char *name, const char *file, test_fn fn);

#define TEST(name)                                                      \
  static void test_##name(int *failed_);                                \
  __attribute__((constructor)) static void test_register_##name(void) { \
    test_register(#name, __FILE__, test_##name);                        \
  }                                                                     \
  static void test_##name(int *failed_)

#define CHECK(cond)                                                              \
  do {                                                                           \
    if (!(cond)) {                                                               \
      fprintf(stderr, "  %s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      *failed_ = 1;                                                              \
      return;                                                                    \
    }                                                                            \
  } while (0)

#define CHECK_MSG(cond, ...)                                                     \
  do {                                                                           \
    if (!(cond)) {                                                               \
      fprintf(stderr, "  %s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                                              \
      fprintf(stderr, "\n");                                                     \
      *failed_ = 1;                                                              \
      return;                                                                    \
    }                                                                            \
  } while (0)

#define CHECK_NEAR(a, b, tol)                                                                   \
  do {                                                                                          \
    double a_ = (a), b_ = (b);                                                                  \
    if (!(fabs(a_ - b_) <= (tol))) {                                                            \
      fprintf(stderr, "  %s:%d: %s = %.17g, %s = %.17g, |diff| > %g\n", __FILE__, __LINE__, #a, \
              a_, #b, b_, (double)(tol));                                                       \
      *failed_ = 1;                                                                             \
      return;                                                                                   \
    }                                                                                           \
  } while (0)

/* Paths for tests that run binaries or read shared data (set by `make test`). */
const char *test_bin_dir(void);    /* $RCTD_BIN, default "bin" */
const char *test_repo_dir(void); /* the repository root: $RCTD_REPO, default "." */
const char *test_tmp_dir(void);    /* a fresh directory removed after the run */
/* Runs a shell command, returns its exit status (-1 when it could not run). */
int test_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
