/* Fast calc_Q_all for the IRWLS hot loop (spline_fast.h).  The exact, operation-by-operation
 * path (R's bits) stays rctd_spline_eval in qtable.c; this one computes the same spline with
 * fewer and cheaper operations:
 *   - the interval m = f(l), l = floor(sqrt(lambda / 1e-6)) < 40000 after the clamp, is read from
 *     a table of calc_Q_all's formula evaluated at every l;
 *   - the divisions by h and the h / 6 of the formula use per-interval 1/h and h/6;
 *   - cubes are x*x*x rather than pow(x, 3). */
#include "cpu/spline_fast.h"

#include <math.h>
#include <pthread.h>
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define SF_X86 1
#endif

#define SF_EPSILON 1e-4 /* calc_Q_all's lambda clamp */
#define SF_N_L 40000    /* l = floor(sqrt(lambda * 1e6)) < 40000 for lambda < 1600 */

typedef struct {
  double x[RCTD_N_X], inv_h[RCTD_N_X], h6[RCTD_N_X];
  unsigned short m_of_l[SF_N_L + 2]; /* +2: 32-bit gathers read one entry past l */
  int avx2;
} sf_tables;

static sf_tables sf_tab;
static pthread_once_t sf_once = PTHREAD_ONCE_INIT;
static int sf_simd_on = 1;

static void sf_init(void) {
  rctd_x_grid(sf_tab.x);
  for (int m = 1; m < RCTD_N_X; m++) {
    double h = sf_tab.x[m] - sf_tab.x[m - 1];
    sf_tab.inv_h[m] = 1 / h;
    sf_tab.h6[m] = h / 6;
  }
  for (int l = 0; l < SF_N_L; l++) {
    double ld = l;
    double m = fmin(ld - 9, 40) + fmax(ceil(sqrt(fmax(ld - 48.7499, 0) * 4)) - 2, 0);
    sf_tab.m_of_l[l] = (unsigned short)(m < 1 ? 1 : m > RCTD_N_X - 1 ? RCTD_N_X - 1 : m);
  }
#ifdef SF_X86
  __builtin_cpu_init();
  sf_tab.avx2 = __builtin_cpu_supports("avx2");
#endif
}

int rctd_cpu_simd(int enable) {
  pthread_once(&sf_once, sf_init);
  int was = sf_simd_on && sf_tab.avx2;
  if (enable >= 0) sf_simd_on = enable;
  return was;
}

/* The table's grid is the standard one (checked on three nodes; tables come from
 * rctd_x_grid). */
static int sf_standard_grid(const double *x) {
  return x[1] == sf_tab.x[1] && x[200] == sf_tab.x[200] &&
         x[RCTD_N_X - 1] == sf_tab.x[RCTD_N_X - 1];
}

/* One pair on the fast path (the caller has checked it is one). */
static inline void sf_one(const rctd_qtable *table, double yi, double lam, double *d0, double *d1,
                          double *d2) {
  const double *x = table->x_vals;
  const double lo = SF_EPSILON, hi = x[RCTD_N_X - 1] - SF_EPSILON, sixth = 1.0 / 6;
  const int row = yi > RCTD_K_VAL ? RCTD_K_VAL : (int)yi;
  lam = lam < lo ? lo : lam > hi ? hi : lam;
  const int m = sf_tab.m_of_l[(int)sqrt(lam * 1e6)];
  const double *q = table->q_kx + (size_t)row * RCTD_N_X;
  const double *sq = table->sq_kx + (size_t)row * RCTD_N_X;
  const double ih = sf_tab.inv_h[m], hs = sf_tab.h6[m];
  const double diff1 = lam - x[m - 1], diff2 = x[m] - lam;
  const double diff3 = q[m] * ih - sq[m] * hs, diff4 = q[m - 1] * ih - sq[m - 1] * hs;
  const double zdi = sq[m] * ih, zdi1 = sq[m - 1] * ih;
  const double sq1 = diff1 * diff1, sq2 = diff2 * diff2;
  *d0 = (zdi * (sq1 * diff1) + zdi1 * (sq2 * diff2)) * sixth + diff3 * diff1 + diff4 * diff2;
  if (d1) *d1 = (zdi * sq1 - zdi1 * sq2) * 0.5 + diff3 - diff4;
  if (d2) *d2 = zdi * diff1 + zdi1 * diff2;
}

/* Whether (y, lambda) can take the fast path: lambda not NaN, y >= 0 with a table row. */
static inline int sf_ok(const rctd_qtable *table, double yi, double lam) {
  const double max_row = table->n_k - 1 < RCTD_K_VAL ? table->n_k - 1 : RCTD_K_VAL;
  return !isnan(lam) && yi >= 0 && (yi < max_row + 1 || max_row >= RCTD_K_VAL);
}

static void sf_pair(const rctd_qtable *table, double yi, double lam, double *d0, double *d1,
                    double *d2) {
  if (sf_ok(table, yi, lam)) {
    sf_one(table, yi, lam, d0, d1, d2);
    return;
  }
  double v0, v1, v2;
  rctd_spline_eval(table, 1, &yi, &lam, &v0, &v1, &v2);
  *d0 = v0;
  if (d1) *d1 = v1;
  if (d2) *d2 = v2;
}

#ifdef SF_X86
/* Four pairs at a time with AVX2 gathers: the operations of sf_one in the same order, without
 * fused multiply-adds, so every lane equals the scalar result bit for bit.  Returns the number
 * of pairs done (groups with a pair off the fast path are left to the scalar loop). */
__attribute__((target("avx2"))) static int sf_avx2(const rctd_qtable *table, int n, const double *y,
                                                   const double *lambda, double *d0, double *d1,
                                                   double *d2) {
  const double *x = table->x_vals;
  const __m256d lo = _mm256_set1_pd(SF_EPSILON), hi = _mm256_set1_pd(x[RCTD_N_X - 1] - SF_EPSILON);
  const __m256d scale = _mm256_set1_pd(1e6), sixth = _mm256_set1_pd(1.0 / 6),
                half = _mm256_set1_pd(0.5), kval = _mm256_set1_pd(RCTD_K_VAL),
                zero = _mm256_setzero_pd();
  const double max_row = table->n_k - 1 < RCTD_K_VAL ? table->n_k - 1 : RCTD_K_VAL;
  const __m256d row_end = _mm256_set1_pd(max_row >= RCTD_K_VAL ? INFINITY : max_row + 1);
  const __m128i n_x = _mm_set1_epi32(RCTD_N_X), mask16 = _mm_set1_epi32(0xffff),
                one = _mm_set1_epi32(1);
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    __m256d yv = _mm256_loadu_pd(y + i), lam = _mm256_loadu_pd(lambda + i);
    /* lam == lam (not NaN), y >= 0, y < row_end: all four or leave the group to the scalar loop */
    __m256d ok = _mm256_and_pd(
        _mm256_cmp_pd(lam, lam, _CMP_EQ_OQ),
        _mm256_and_pd(_mm256_cmp_pd(yv, zero, _CMP_GE_OQ), _mm256_cmp_pd(yv, row_end, _CMP_LT_OQ)));
    if (_mm256_movemask_pd(ok) != 0xf) break;
    __m128i row = _mm256_cvttpd_epi32(_mm256_min_pd(yv, kval));
    lam = _mm256_min_pd(_mm256_max_pd(lam, lo), hi);
    __m128i l = _mm256_cvttpd_epi32(_mm256_sqrt_pd(_mm256_mul_pd(lam, scale)));
    __m128i m = _mm_and_si128(_mm_i32gather_epi32((const int *)sf_tab.m_of_l, l, 2), mask16);
    __m128i m1 = _mm_sub_epi32(m, one);
    __m128i idx = _mm_add_epi32(_mm_mullo_epi32(row, n_x), m), idx1 = _mm_sub_epi32(idx, one);
    __m256d q_m = _mm256_i32gather_pd(table->q_kx, idx, 8);
    __m256d q_m1 = _mm256_i32gather_pd(table->q_kx, idx1, 8);
    __m256d s_m = _mm256_i32gather_pd(table->sq_kx, idx, 8);
    __m256d s_m1 = _mm256_i32gather_pd(table->sq_kx, idx1, 8);
    __m256d ih = _mm256_i32gather_pd(sf_tab.inv_h, m, 8), hs = _mm256_i32gather_pd(sf_tab.h6, m, 8);
    __m256d x_m = _mm256_i32gather_pd(x, m, 8), x_m1 = _mm256_i32gather_pd(x, m1, 8);
    __m256d diff1 = _mm256_sub_pd(lam, x_m1), diff2 = _mm256_sub_pd(x_m, lam);
    __m256d diff3 = _mm256_sub_pd(_mm256_mul_pd(q_m, ih), _mm256_mul_pd(s_m, hs));
    __m256d diff4 = _mm256_sub_pd(_mm256_mul_pd(q_m1, ih), _mm256_mul_pd(s_m1, hs));
    __m256d zdi = _mm256_mul_pd(s_m, ih), zdi1 = _mm256_mul_pd(s_m1, ih);
    __m256d sq1 = _mm256_mul_pd(diff1, diff1), sq2 = _mm256_mul_pd(diff2, diff2);
    __m256d cubes = _mm256_add_pd(_mm256_mul_pd(zdi, _mm256_mul_pd(sq1, diff1)),
                                  _mm256_mul_pd(zdi1, _mm256_mul_pd(sq2, diff2)));
    __m256d v0 =
        _mm256_add_pd(_mm256_add_pd(_mm256_mul_pd(cubes, sixth), _mm256_mul_pd(diff3, diff1)),
                      _mm256_mul_pd(diff4, diff2));
    _mm256_storeu_pd(d0 + i, v0);
    if (d1) {
      __m256d sqd = _mm256_sub_pd(_mm256_mul_pd(zdi, sq1), _mm256_mul_pd(zdi1, sq2));
      _mm256_storeu_pd(d1 + i,
                       _mm256_sub_pd(_mm256_add_pd(_mm256_mul_pd(sqd, half), diff3), diff4));
    }
    if (d2)
      _mm256_storeu_pd(d2 + i,
                       _mm256_add_pd(_mm256_mul_pd(zdi, diff1), _mm256_mul_pd(zdi1, diff2)));
  }
  return i;
}
#endif

void rctd_spline_eval_fast(const rctd_qtable *table, int n, const double *y, const double *lambda,
                           double *d0, double *d1, double *d2) {
  pthread_once(&sf_once, sf_init);
  if (!sf_standard_grid(table->x_vals)) {
    rctd_spline_eval(table, n, y, lambda, d0, d1, d2);
    return;
  }
  int i = 0;
  while (i < n) {
#ifdef SF_X86
    if (sf_tab.avx2 && sf_simd_on)
      i += sf_avx2(table, n - i, y + i, lambda + i, d0 + i, d1 ? d1 + i : NULL, d2 ? d2 + i : NULL);
#endif
    /* the rest, or the group of four that held a pair off the fast path */
    int stop = i + 4 < n ? i + 4 : n;
    for (; i < stop; i++)
      sf_pair(table, y[i], lambda[i], d0 + i, d1 ? d1 + i : NULL, d2 ? d2 + i : NULL);
  }
}
