/* This CPU's FP64 peak per core, measured: a loop of independent fused multiply-adds (enough
 * accumulators to hide the FMA latency) at each vector width the CPU has, one thread.  A
 * double FMA counts 2 flops per lane.  The figure bench/NOTES.md sets the fit kernels against.
 *   fma_peak [-s SECONDS per width (default 0.5)] */
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static double fp_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* 12 named accumulators (kept in registers), one FMA each per loop turn. */
#define FP_BODY(T, FMA, SET1, ADD, REDUCE)                                                \
  T a = SET1(1.0000001), b = SET1(0.9999999);                                             \
  T c0 = SET1(0.0), c1 = SET1(0.1), c2 = SET1(0.2), c3 = SET1(0.3), c4 = SET1(0.4);       \
  T c5 = SET1(0.5), c6 = SET1(0.6), c7 = SET1(0.7), c8 = SET1(0.8), c9 = SET1(0.9);       \
  T c10 = SET1(1.0), c11 = SET1(1.1);                                                     \
  for (long it = 0; it < n; it++) {                                                       \
    c0 = FMA(c0, a, b), c1 = FMA(c1, a, b), c2 = FMA(c2, a, b), c3 = FMA(c3, a, b);       \
    c4 = FMA(c4, a, b), c5 = FMA(c5, a, b), c6 = FMA(c6, a, b), c7 = FMA(c7, a, b);       \
    c8 = FMA(c8, a, b), c9 = FMA(c9, a, b), c10 = FMA(c10, a, b), c11 = FMA(c11, a, b);   \
  }                                                                                       \
  T s = ADD(ADD(ADD(c0, c1), ADD(c2, c3)), ADD(ADD(c4, c5), ADD(c6, c7)));                \
  return REDUCE(ADD(s, ADD(ADD(c8, c9), ADD(c10, c11))));

static double fp_scalar_fma(double x, double y, double z) {
  return __builtin_fma(x, y, z);
}
static double fp_scalar_set1(double x) {
  return x;
}
static double fp_scalar_add(double x, double y) {
  return x + y;
}
static double fp_scalar_reduce(double x) {
  return x;
}
__attribute__((target("fma"))) static double fp_scalar(long n) {
  FP_BODY(double, fp_scalar_fma, fp_scalar_set1, fp_scalar_add, fp_scalar_reduce)
}

__attribute__((target("avx2,fma"))) static double fp_avx2_reduce(__m256d x) {
  double v[4];
  _mm256_storeu_pd(v, x);
  return v[0] + v[1] + v[2] + v[3];
}
__attribute__((target("avx2,fma"))) static double fp_avx2(long n) {
  FP_BODY(__m256d, _mm256_fmadd_pd, _mm256_set1_pd, _mm256_add_pd, fp_avx2_reduce)
}

__attribute__((target("avx512f"))) static double fp_avx512(long n) {
  FP_BODY(__m512d, _mm512_fmadd_pd, _mm512_set1_pd, _mm512_add_pd, _mm512_reduce_add_pd)
}

typedef double (*fp_kernel)(long);

static void fp_measure(const char *name, fp_kernel k, int lanes, double seconds) {
  long n = 1000;
  double t = 0, sink = 0;
  while (t < seconds / 4 && n < (1L << 40)) { /* grow until a run is long enough */
    n *= 4;
    double t0 = fp_now();
    sink += k(n);
    t = fp_now() - t0;
  }
  double best = 1e300;
  for (int rep = 0; rep < 3; rep++) {
    double t0 = fp_now();
    sink += k(n);
    double dt = fp_now() - t0;
    if (dt < best) best = dt;
  }
  double flops = (double)n * 12 * lanes * 2;
  printf("fma_peak %-7s %6.2f GFLOP/s (one core, best of 3; checksum %.3g)\n", name,
         flops / best * 1e-9, sink);
}

int main(int argc, char **argv) {
  double seconds = 0.5;
  for (int c; (c = getopt(argc, argv, "s:")) != -1;) {
    if (c != 's') {
      fprintf(stderr, "usage: fma_peak [-s SECONDS]\n");
      return 2;
    }
    seconds = atof(optarg);
  }
  __builtin_cpu_init();
  if (__builtin_cpu_supports("fma")) fp_measure("scalar", fp_scalar, 1, seconds);
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    fp_measure("avx2", fp_avx2, 4, seconds);
  if (__builtin_cpu_supports("avx512f")) fp_measure("avx512", fp_avx512, 8, seconds);
  return 0;
}
