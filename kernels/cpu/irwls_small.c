/* The IRWLS step and score of fits of one to four types in one pass over the genes (AVX-512,
 * eight genes at a time): the prediction, |.| and the floor, the spline's derivatives, the
 * gradient and the Hessian's lower triangle, with no array written and read back.  Doublet mode
 * runs ~25 two-type fits and a few one-type fits per pixel, ~13 steps each, multi mode fits of
 * one to four types, where the generic path (irwls.c) makes five passes and computes 4 x 4
 * Hessian tiles for three entries.  The spline's interval comes from a table of lambda's bits
 * instead of a division and a square root (sm_interval8), its coefficients by gathers.
 *
 * Same bits as the generic path:
 *   - the prediction is ((0 + S_0g s_0) + S_1g s_1) + ..., R's S %*% w in k order;
 *   - each lane computes spline_fast.c's sf_simd operations (the pairs off its fast path go
 *     through rctd_spline_eval_fast, as there); x / 2 is computed as x * 0.5, the same number;
 *   - sums are kept in irwls.c's four lanes (gene g in lane g mod 4): the two four-gene halves of
 *     an eight-gene vector are added one after the other, the genes past the last block of four
 *     go into lane 0 after the vector part, and the reduction is (l0 + l1) + (l2 + l3);
 *   - products and sums are separate roundings: explicit intrinsics, and the scalar tail is
 *     compiled without contraction (-std=c11 gives GCC -ffp-contract=off; clang gets the pragma).
 */
#include "cpu/irwls_small.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/spline_fast.h"

#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

static int sm_on = 1;

int rctd_irwls_small_enable(int enable) {
  int was = sm_on;
  if (enable >= 0) sm_on = enable;
  return was;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define SM_N_INT (RCTD_N_X - 1)
#define SM_TARGET __attribute__((target("avx512f,avx2,fma")))
#define SM_INLINE __attribute__((always_inline)) inline

/* The interval m of a clamped lambda without the division and square root of
 * m = m_of_l[(int)sqrt(lambda / 1e-6)] (sf_simd): m is a non-decreasing step function of lambda
 * (each operation is monotonic), so it is read from buckets of lambda's bit pattern (exponent
 * and SM_BUCKET_BITS mantissa bits): a bucket's m at its first value and the first value of the
 * bucket where m steps up, found by bisection over the bucket's bit patterns with that exact
 * formula.  Both in one 64-bit record (one gather): m << 45 | the step's low 44 bits (its high
 * bits are the bucket's), or 1 << 44 when m does not step in the bucket.  Valid when no bucket
 * holds two steps (checked when built; otherwise the lanes divide and take the root). */
#define SM_BUCKET_BITS 8
#define SM_BUCKET_SHIFT (52 - SM_BUCKET_BITS)
/* calc_Q_all's clamp of lambda: [1e-4, x_max - 1e-4] (RK_QT_EPSILON; x_max = 1600 on the
 * standard grid); its scale 1e-6 is RK_QT_DELTA */
#define SM_LAM_LO 1e-4
#define SM_LOW_BITS (((int64_t)1 << SM_BUCKET_SHIFT) - 1)
#define SM_LOW_BITS_NO_STEP ((int64_t)1 << SM_BUCKET_SHIFT)

static struct {
  int ok;
  double lam_hi;
  int64_t first;  /* bucket index of lam_lo */
  int64_t *rec_b; /* m at the bucket's first (clamped) value << 45 | where it steps */
} sm_iv;
static pthread_once_t sm_iv_once = PTHREAD_ONCE_INIT;

static int64_t sm_bits(double v) {
  int64_t b;
  memcpy(&b, &v, sizeof b);
  return b;
}

static double sm_double(int64_t b) {
  double v;
  memcpy(&v, &b, sizeof v);
  return v;
}

static int sm_m_exact(const unsigned short *m_of_l, double lam) { /* lam clamped */
  return m_of_l[(int)sqrt(lam / 1e-6)];
}

static void sm_iv_build(void) {
  const unsigned short *m_of_l = rctd_spline_fast_m_of_l();
  for (int l = 1; l < 40000; l++)
    if (m_of_l[l] < m_of_l[l - 1]) return; /* not monotonic: not usable */
  double x[RCTD_N_X];
  rctd_x_grid(x);
  sm_iv.lam_hi = x[RCTD_N_X - 1] - SM_LAM_LO;
  sm_iv.first = sm_bits(SM_LAM_LO) >> SM_BUCKET_SHIFT;
  const int64_t last = sm_bits(sm_iv.lam_hi) >> SM_BUCKET_SHIFT, n = last - sm_iv.first + 1;
  sm_iv.rec_b = malloc(sizeof(int64_t) * n);
  if (!sm_iv.rec_b) return;
  for (int64_t b = 0; b < n; b++) {
    const int64_t lo_bits = (sm_iv.first + b) << SM_BUCKET_SHIFT;
    const int64_t hi_bits = lo_bits + ((int64_t)1 << SM_BUCKET_SHIFT) - 1;
    const int64_t lo = lo_bits > sm_bits(SM_LAM_LO) ? lo_bits : sm_bits(SM_LAM_LO);
    const int64_t hi = hi_bits < sm_bits(sm_iv.lam_hi) ? hi_bits : sm_bits(sm_iv.lam_hi);
    const int m_lo = sm_m_exact(m_of_l, sm_double(lo)), m_hi = sm_m_exact(m_of_l, sm_double(hi));
    if (m_hi - m_lo > 1 || m_hi < m_lo) return; /* two steps in a bucket: not usable */
    sm_iv.rec_b[b] = (int64_t)m_lo << 45 | SM_LOW_BITS_NO_STEP;
    if (m_hi == m_lo) continue;
    int64_t a = lo, c = hi; /* m(a) = m_lo, m(c) = m_lo + 1 */
    while (c - a > 1) {
      const int64_t mid = a + (c - a) / 2;
      if (sm_m_exact(m_of_l, sm_double(mid)) > m_lo)
        c = mid;
      else
        a = mid;
    }
    sm_iv.rec_b[b] = (int64_t)m_lo << 45 | (c & SM_LOW_BITS);
  }
  sm_iv.ok = 1;
}

/* What the lanes need of the table. */
typedef struct {
  const rctd_qtable *table;
  const double *coef, *x;
  const unsigned short *m_of_l;
  double row_end; /* y at or past it has no table row */
} sm_ctx;

static int sm_ctx_init(const rctd_qtable *table, int n_types, sm_ctx *c) {
  if (!sm_on || !table || n_types < 1 || n_types > RCTD_IRWLS_SMALL_K_MAX ||
      !__builtin_cpu_supports("avx512f"))
    return 0;
  c->coef = rctd_spline_fast_coef(table);
  if (!c->coef) return 0;
  c->m_of_l = rctd_spline_fast_m_of_l();
  pthread_once(&sm_iv_once, sm_iv_build);
  c->table = table;
  c->x = table->x_vals;
  const double max_row = table->n_k - 1 < RCTD_K_VAL ? table->n_k - 1 : RCTD_K_VAL;
  c->row_end = max_row >= RCTD_K_VAL ? INFINITY : max_row + 1;
  return 1;
}

/* The interval m of eight clamped lambdas: from the buckets, or sf_simd's way. */
SM_TARGET static SM_INLINE __m256i sm_interval8(const unsigned short *m_of_l, __m512d lam) {
  if (sm_iv.ok) { /* the bucket's m, plus one at or past its step */
    const __m256i b = _mm512_cvtepi64_epi32(
        _mm512_sub_epi64(_mm512_srli_epi64(_mm512_castpd_si512(lam), SM_BUCKET_SHIFT),
                         _mm512_set1_epi64(sm_iv.first)));
    const __m512i rec = _mm512_i32gather_epi64(b, sm_iv.rec_b, 8);
    const __m512i low = _mm512_set1_epi64(SM_LOW_BITS);
    const __mmask8 up = _mm512_cmp_epu64_mask(
        _mm512_and_si512(_mm512_castpd_si512(lam), low),
        _mm512_and_si512(rec, _mm512_set1_epi64(2 * SM_LOW_BITS + 1)), _MM_CMPINT_NLT);
    const __m512i m = _mm512_srli_epi64(rec, 45);
    return _mm512_cvtepi64_epi32(_mm512_mask_add_epi64(m, up, m, _mm512_set1_epi64(1)));
  }
  const __m256i l = _mm512_cvttpd_epi32(_mm512_sqrt_pd(_mm512_div_pd(lam, _mm512_set1_pd(1e-6))));
  return _mm256_and_si256(_mm256_i32gather_epi32((const int *)m_of_l, l, 2),
                          _mm256_set1_epi32(0xffff));
}

/* The spline's terms at eight pairs (y, lambda), lane by lane sf_simd's operations: the
 * interval's coefficients zdi, zdi1, diff3, diff4 and the distances diff1, diff2.  Returns 0
 * (nothing computed) when a pair is off the fast path. */
typedef struct {
  __m512d zdi, zdi1, diff3, diff4, diff1, diff2;
} sm_terms;

SM_TARGET static SM_INLINE int sm_terms8(const sm_ctx *c, __m512d y, __m512d lam, sm_terms *t) {
  const __m512d zero = _mm512_setzero_pd();
  const __mmask8 ok = _mm512_cmp_pd_mask(lam, lam, _CMP_EQ_OQ) &
                      _mm512_cmp_pd_mask(y, zero, _CMP_GE_OQ) &
                      _mm512_cmp_pd_mask(y, _mm512_set1_pd(c->row_end), _CMP_LT_OQ);
  if (ok != 0xff) return 0;
  const __m256i row = _mm512_cvttpd_epi32(_mm512_min_pd(y, _mm512_set1_pd(RCTD_K_VAL)));
  lam = _mm512_min_pd(_mm512_max_pd(lam, _mm512_set1_pd(SM_LAM_LO)),
                      _mm512_set1_pd(c->x[RCTD_N_X - 1] - SM_LAM_LO));
  const __m256i m = sm_interval8(c->m_of_l, lam);
  const __m256i m1 = _mm256_sub_epi32(m, _mm256_set1_epi32(1));
  const __m256i rec = _mm256_add_epi32(_mm256_mullo_epi32(row, _mm256_set1_epi32(SM_N_INT)), m1);
  const __m256i rec4 = _mm256_slli_epi32(rec, 2); /* records of four doubles */
  t->zdi = _mm512_i32gather_pd(rec4, c->coef, 8);
  t->zdi1 = _mm512_i32gather_pd(rec4, c->coef + 1, 8);
  t->diff3 = _mm512_i32gather_pd(rec4, c->coef + 2, 8);
  t->diff4 = _mm512_i32gather_pd(rec4, c->coef + 3, 8);
  t->diff1 = _mm512_sub_pd(lam, _mm512_i32gather_pd(m1, c->x, 8));
  t->diff2 = _mm512_sub_pd(_mm512_i32gather_pd(m, c->x, 8), lam);
  return 1;
}

/* d1 and d2 of eight pairs (sf_simd's formulas); the pairs off the fast path through
 * rctd_spline_eval_fast. */
SM_TARGET static SM_INLINE void sm_d1d2_8(const sm_ctx *c, const double *y, __m512d lam,
                                          __m512d *d1, __m512d *d2) {
  sm_terms t;
  if (!sm_terms8(c, _mm512_loadu_pd(y), lam, &t)) {
    double lam8[8], d1_8[8], d2_8[8];
    _mm512_storeu_pd(lam8, lam);
    rctd_spline_eval_fast(c->table, 8, y, lam8, NULL, d1_8, d2_8);
    *d1 = _mm512_loadu_pd(d1_8);
    *d2 = _mm512_loadu_pd(d2_8);
    return;
  }
  const __m512d half = _mm512_set1_pd(0.5);
  const __m512d a = _mm512_mul_pd(_mm512_mul_pd(t.zdi, _mm512_mul_pd(t.diff1, t.diff1)), half);
  const __m512d b = _mm512_mul_pd(_mm512_mul_pd(t.zdi1, _mm512_mul_pd(t.diff2, t.diff2)), half);
  *d1 = _mm512_sub_pd(_mm512_add_pd(_mm512_sub_pd(a, b), t.diff3), t.diff4);
  *d2 = _mm512_add_pd(_mm512_mul_pd(t.zdi, t.diff1), _mm512_mul_pd(t.zdi1, t.diff2));
}

/* x^3 rounded to nearest, as sf_cube4 */
SM_TARGET static SM_INLINE __m512d sm_cube8(__m512d x) {
  const __m512d p = _mm512_mul_pd(x, x), pe = _mm512_fmsub_pd(x, x, p);
  const __m512d h = _mm512_mul_pd(p, x), he = _mm512_fmsub_pd(p, x, h);
  return _mm512_add_pd(h, _mm512_fmadd_pd(pe, x, he));
}

/* d0 of eight pairs into d0 (sf_simd's formula, or rctd_spline_eval_fast). */
SM_TARGET static SM_INLINE void sm_d0_8(const sm_ctx *c, const double *y, __m512d lam, double *d0) {
  sm_terms t;
  if (!sm_terms8(c, _mm512_loadu_pd(y), lam, &t)) {
    double lam8[8];
    _mm512_storeu_pd(lam8, lam);
    rctd_spline_eval_fast(c->table, 8, y, lam8, d0, NULL, NULL);
    return;
  }
  const __m512d six = _mm512_set1_pd(6);
  __m512d v = _mm512_add_pd(_mm512_div_pd(_mm512_mul_pd(t.zdi, sm_cube8(t.diff1)), six),
                            _mm512_div_pd(_mm512_mul_pd(t.zdi1, sm_cube8(t.diff2)), six));
  v = _mm512_add_pd(_mm512_add_pd(v, _mm512_mul_pd(t.diff3, t.diff1)),
                    _mm512_mul_pd(t.diff4, t.diff2));
  _mm512_storeu_pd(d0, v);
}

/* acc += the low four lanes of v, then the high four (genes g..g+3, then g+4..g+7). */
SM_TARGET static SM_INLINE __m256d sm_add_halves(__m256d acc, __m512d v) {
  acc = _mm256_add_pd(acc, _mm512_castpd512_pd256(v));
  return _mm256_add_pd(acc, _mm512_extractf64x4_pd(v, 1));
}

/* irwls.c's reduction of four lanes (lane 0 already holding the tail). */
static double sm_reduce(const double l[4]) {
  return (l[0] + l[1]) + (l[2] + l[3]);
}

/* Entry (i, j), j <= i, of the Hessian's lower triangle in the accumulators. */
#define SM_TRI(i, j) ((i) * ((i) + 1) / 2 + (j))
#define SM_N_TRI (RCTD_IRWLS_SMALL_K_MAX * (RCTD_IRWLS_SMALL_K_MAX + 1) / 2)

/* The step of K (1 to RCTD_IRWLS_SMALL_K_MAX) types: K is a constant in each instance, so the
 * loops over types unroll and the accumulators stay in registers. */
SM_TARGET static SM_INLINE void sm_grad_hess_k(const sm_ctx *c, const int K, int G,
                                               const double *S_kg, const double *y,
                                               const double *s_k, double floor_pred, double *dvec_k,
                                               double *hess_kk) {
  enum { KM = RCTD_IRWLS_SMALL_K_MAX };
  const double *s[KM];
  __m512d vw[KM];
  __m256d gk[KM], hk[SM_N_TRI];
  const __m512d vfloor = _mm512_set1_pd(floor_pred), zero = _mm512_setzero_pd();
  const __m512i sign = _mm512_set1_epi64((long long)0x8000000000000000ULL);
#pragma GCC unroll 4
  for (int k = 0; k < K; k++) {
    s[k] = S_kg + (size_t)k * G;
    vw[k] = _mm512_set1_pd(s_k[k]);
    gk[k] = _mm256_setzero_pd();
  }
#pragma GCC unroll 10
  for (int e = 0; e < K * (K + 1) / 2; e++) hk[e] = _mm256_setzero_pd();
  int g = 0;
  for (; g + 8 <= G; g += 8) {
    __m512d a[KM], pred = zero;
#pragma GCC unroll 4
    for (int k = 0; k < K; k++) {
      a[k] = _mm512_loadu_pd(s[k] + g);
      pred = _mm512_add_pd(pred, _mm512_mul_pd(a[k], vw[k])); /* R's S %*% w: k in order */
    }
    pred = _mm512_abs_pd(pred);
    pred = _mm512_mask_blend_pd(_mm512_cmp_pd_mask(pred, vfloor, _CMP_LT_OQ), pred, vfloor);
    __m512d d1, d2;
    sm_d1d2_8(c, y + g, pred, &d1, &d2);
    const __m512d cg = _mm512_castsi512_pd(_mm512_xor_si512(_mm512_castpd_si512(d2), sign));
#pragma GCC unroll 4
    for (int i = 0; i < K; i++) {
      gk[i] = sm_add_halves(gk[i], _mm512_mul_pd(d1, a[i]));
      const __m512d u = _mm512_mul_pd(cg, a[i]); /* (c S_i) S_j, as irwls.c's row weights */
#pragma GCC unroll 4
      for (int j = 0; j <= i; j++)
        hk[SM_TRI(i, j)] = sm_add_halves(hk[SM_TRI(i, j)], _mm512_mul_pd(u, a[j]));
    }
  }
  /* the rest (G mod 8 genes): prediction and derivatives one by one, a last block of four in
   * the lanes, then the genes past it into lane 0 */
  double d1_r[8], c_r[8];
  const int n_rest = G - g;
  if (n_rest > 0) {
    double pred_r[8];
    for (int h = 0; h < n_rest; h++) {
      double p = 0;
      for (int k = 0; k < K; k++) p = p + s[k][g + h] * s_k[k];
      p = fabs(p);
      pred_r[h] = p < floor_pred ? floor_pred : p;
    }
    rctd_spline_eval_fast(c->table, n_rest, y + g, pred_r, NULL, d1_r, c_r);
    for (int h = 0; h < n_rest; h++) c_r[h] = -c_r[h];
  }
  if (n_rest >= 4) {
    const __m256d d1v = _mm256_loadu_pd(d1_r), cv = _mm256_loadu_pd(c_r);
#pragma GCC unroll 4
    for (int i = 0; i < K; i++) {
      const __m256d ai = _mm256_loadu_pd(s[i] + g), u = _mm256_mul_pd(cv, ai);
      gk[i] = _mm256_add_pd(gk[i], _mm256_mul_pd(d1v, ai));
#pragma GCC unroll 4
      for (int j = 0; j <= i; j++)
        hk[SM_TRI(i, j)] =
            _mm256_add_pd(hk[SM_TRI(i, j)], _mm256_mul_pd(u, _mm256_loadu_pd(s[j] + g)));
    }
  }
  double l_g[KM][4], l_h[SM_N_TRI][4];
  for (int k = 0; k < K; k++) _mm256_storeu_pd(l_g[k], gk[k]);
  for (int e = 0; e < K * (K + 1) / 2; e++) _mm256_storeu_pd(l_h[e], hk[e]);
  for (int h = n_rest >= 4 ? 4 : 0; h < n_rest; h++)
    for (int i = 0; i < K; i++) {
      const double ai = s[i][g + h], u = c_r[h] * ai;
      l_g[i][0] += d1_r[h] * ai;
      for (int j = 0; j <= i; j++) l_h[SM_TRI(i, j)][0] += u * s[j][g + h];
    }
  for (int i = 0; i < K; i++) {
    dvec_k[i] = sm_reduce(l_g[i]);
    for (int j = 0; j <= i; j++) hess_kk[i * K + j] = sm_reduce(l_h[SM_TRI(i, j)]);
  }
}

#define SM_GRAD_HESS(K)                                                                         \
  SM_TARGET static void sm_grad_hess_##K(const sm_ctx *c, int G, const double *S_kg,            \
                                         const double *y, const double *s_k, double floor_pred, \
                                         double *dvec_k, double *hess_kk) {                     \
    sm_grad_hess_k(c, K, G, S_kg, y, s_k, floor_pred, dvec_k, hess_kk);                         \
  }
SM_GRAD_HESS(1)
SM_GRAD_HESS(2)
SM_GRAD_HESS(3)
SM_GRAD_HESS(4)
#undef SM_GRAD_HESS

/* d0 at the prediction sum_k S_kg w_k (k in order) into d0_g (pred_g: scratch for the rest). */
SM_TARGET static void sm_score_d0(const sm_ctx *c, int K, int G, const double *S_kg,
                                  const double *y, const double *w_k, double *pred_g,
                                  double *d0_g) {
  int g = 0;
  for (; g + 8 <= G; g += 8) {
    __m512d pred = _mm512_setzero_pd();
    for (int k = 0; k < K; k++)
      pred = _mm512_add_pd(
          pred, _mm512_mul_pd(_mm512_loadu_pd(S_kg + (size_t)k * G + g), _mm512_set1_pd(w_k[k])));
    sm_d0_8(c, y + g, pred, d0_g + g);
  }
  for (int h = g; h < G; h++) {
    double p = 0;
    for (int k = 0; k < K; k++) p = p + S_kg[(size_t)k * G + h] * w_k[k];
    pred_g[h] = p;
  }
  if (g < G) rctd_spline_eval_fast(c->table, G - g, y + g, pred_g + g, d0_g + g, NULL, NULL);
}

SM_TARGET static void sm_intervals(int n, const double *lam, int *m) {
  const unsigned short *m_of_l = rctd_spline_fast_m_of_l();
  int i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_si256((__m256i *)(m + i), sm_interval8(m_of_l, _mm512_loadu_pd(lam + i)));
  for (; i < n; i++) m[i] = m_of_l[(int)sqrt(lam[i] / 1e-6)];
}

int rctd_irwls_small_intervals(int n, const double *lam, int *m) {
  if (!__builtin_cpu_supports("avx512f")) return -1;
  pthread_once(&sm_iv_once, sm_iv_build);
  if (!sm_iv.ok) return -1;
  sm_intervals(n, lam, m);
  return 0;
}

int rctd_irwls_small_grad_hess(const rctd_qtable *table, int n_genes, int n_types,
                               const double *S_kg, const double *y_g, const double *s_k,
                               double floor_pred, double *dvec_k, double *hess_kk) {
  sm_ctx c;
  if (n_genes < 1 || !sm_ctx_init(table, n_types, &c)) return 0;
  static void (*const by_k[])(const sm_ctx *, int, const double *, const double *, const double *,
                              double, double *, double *) = {sm_grad_hess_1, sm_grad_hess_2,
                                                             sm_grad_hess_3, sm_grad_hess_4};
  by_k[n_types - 1](&c, n_genes, S_kg, y_g, s_k, floor_pred, dvec_k, hess_kk);
  return 1;
}

int rctd_irwls_small_score(const rctd_qtable *table, int n_genes, int n_types, const double *S_kg,
                           const double *y_g, const double *weights_k, double *pred_g, double *d0_g,
                           double *score) {
  sm_ctx c;
  if (n_genes < 1 || !sm_ctx_init(table, n_types, &c)) return 0;
  sm_score_d0(&c, n_types, n_genes, S_kg, y_g, weights_k, pred_g, d0_g);
  long double sum = 0; /* R's sum(): long double, in gene order */
  for (int g = 0; g < n_genes; g++) sum += d0_g[g];
  *score = -(double)sum;
  return 1;
}

#else /* no x86 intrinsics: the generic path always */

int rctd_irwls_small_intervals(int n, const double *lam, int *m) {
  (void)n, (void)lam, (void)m;
  return -1;
}

SM_TARGET static void sm_intervals(int n, const double *lam, int *m) {
  const unsigned short *m_of_l = rctd_spline_fast_m_of_l();
  int i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_si256((__m256i *)(m + i), sm_interval8(m_of_l, _mm512_loadu_pd(lam + i)));
  for (; i < n; i++) m[i] = m_of_l[(int)sqrt(lam[i] / 1e-6)];
}

int rctd_irwls_small_intervals(int n, const double *lam, int *m) {
  if (!__builtin_cpu_supports("avx512f")) return -1;
  pthread_once(&sm_iv_once, sm_iv_build);
  if (!sm_iv.ok) return -1;
  sm_intervals(n, lam, m);
  return 0;
}

int rctd_irwls_small_grad_hess(const rctd_qtable *table, int n_genes, int n_types,
                               const double *S_kg, const double *y_g, const double *s_k,
                               double floor_pred, double *dvec_k, double *hess_kk) {
  (void)table, (void)n_genes, (void)n_types, (void)S_kg, (void)y_g, (void)s_k;
  (void)floor_pred, (void)dvec_k, (void)hess_kk;
  return 0;
}

int rctd_irwls_small_score(const rctd_qtable *table, int n_genes, int n_types, const double *S_kg,
                           const double *y_g, const double *weights_k, double *pred_g, double *d0_g,
                           double *score) {
  (void)table, (void)n_genes, (void)n_types, (void)S_kg, (void)y_g, (void)weights_k;
  (void)pred_g, (void)d0_g, (void)score;
  return 0;
}

#endif
