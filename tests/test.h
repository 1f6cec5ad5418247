/* Minimal test framework: every tests/test_*.c registers TEST()s; tests/runner.c runs them
 * and prints "N passed, N failed".  A test fails on the first failed CHECK.
 *
 * Two tiers: TEST is a unit test of lib/ and kernels/ (in-process, no binary: `make
 * test-unit`, `rctd-tests --unit`); TEST_E2E is an end-to-end test of the tools (runs the binaries in bin:
 * `make test-e2e`, `rctd-tests --e2e`).  A unit test that asks for the binaries fails. */
#ifndef RCTD_TEST_H
#define RCTD_TEST_H
#include <math.h>
#include <stdio.h>
#include <string.h>

/* Whether a peak RSS measures the code: not under a sanitizer (AddressSanitizer quarantines
 * freed memory; ThreadSanitizer's allocator and shadow memory add their own). */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define TEST_MEASURES_RSS 0
#else
#define TEST_MEASURES_RSS 1
#endif

typedef void (*test_fn)(int *failed);
void test_register(const char *name, const char *file, test_fn fn);
void test_register_e2e(const char *name, const char *file, test_fn fn);

#define TEST(name)                                                      \
  static void test_##name(int *failed_);                                \
  __attribute__((constructor)) static void test_register_##name(void) { \
    test_register(#name, __FILE__, test_##name);                        \
  }                                                                     \
  static void test_##name(int *failed_)

#define TEST_E2E(name)                                                  \
  static void test_##name(int *failed_);                                \
  __attribute__((constructor)) static void test_register_##name(void) { \
    test_register_e2e(#name, __FILE__, test_##name);                    \
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
