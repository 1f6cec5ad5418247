/* The IRWLS step and score of fits of one to four types in one pass over the genes (AVX-512,
 * eight genes at a time): the prediction, |.| and the floor, the spline's derivatives, the
 * gradient and the Hessian's lower triangle, with no array written and read back.  Doublet mode
 * runs ~25 two-type fits and a few one-type fits per pixel, ~13 steps each, multi mode fits of
 * one to four types, where the generic path (irwls.c) makes five passes and computes 4 x 4
 * Hessian tiles for three entries.  The spline comes from spline_fast_avx512.h's eight-wide
 * lanes (the interval from a table of lambda's bits instead of a division and a square root);
 * the counts' coefficient rows are found once per fit (rctd_spline_fast_rows), the step's
 * coefficients are loaded and transposed, and the loop is software-pipelined (sm_blocks, as
 * spline_fast_avx512.h describes).
 *
 * Same bits as the generic path:
 *   - the prediction is ((0 + S_0g s_0) + S_1g s_1) + ..., R's S %*% w in k order;
 *   - each lane computes spline_fast.c's sf_pair operations; a fit with a count off its fast
 *     path, or a step with a NaN prediction in a block of eight, takes the generic path instead
 *     (the genes past the last block go through rctd_spline_eval_fast, NaN or not);
 *   - sums are kept in irwls.c's four lanes (gene g in lane g mod 4): the two four-gene halves of
 *     an eight-gene vector are added one after the other, the genes past the last block of four
 *     go into lane 0 after the vector part, and the reduction is (l0 + l1) + (l2 + l3);
 *   - products and sums are separate roundings: explicit intrinsics, and the scalar tail is
 *     compiled without contraction (-std=c11 gives GCC -ffp-contract=off; clang gets the pragma).
 */
#include "cpu/irwls_small.h"

#include <math.h>
#include <stdint.h>

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
#include "cpu/spline_fast_avx512.h"

#define SM_TARGET RCTD_SF8_TARGET
#define SM_INLINE RCTD_SF8_INLINE

typedef rctd_sf8_ctx sm_ctx;

static int sm_ctx_init(const rctd_qtable *table, int n_types, sm_ctx *c) {
  if (!sm_on || !table || n_types < 1 || n_types > RCTD_IRWLS_SMALL_K_MAX) return 0;
  return rctd_sf8_ctx_init(table, c);
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

/* A front's lambdas (clamped) and intervals (4m). */
typedef struct {
  __m512d lam;
  __m512i m4;
} sm_front;

/* Constants of a step's fronts. */
typedef struct {
  const double *s[RCTD_IRWLS_SMALL_K_MAX];
  __m512d vw[RCTD_IRWLS_SMALL_K_MAX];
  __m512d lam_lo; /* max(floor, RCTD_SF8_LAM_LO): the floor and the clamp's lower end at once */
  __m512d lam_hi;
  const int64_t *rows_g;
} sm_step;

/* The front of the eight genes from g: the record offsets into rec8 (rows_g + 4m); 0 when a
 * prediction is NaN (nothing else written).  max(lo, |p|) and then min(., hi) is the floor
 * followed by calc_Q_all's clamp for every p that is not NaN. */
SM_TARGET static SM_INLINE int sm_front_of(const sm_ctx *c, const sm_step *st, const int K, int g,
                                           sm_front *f, int64_t *rec8) {
  __m512d pred = _mm512_mul_pd(_mm512_loadu_pd(st->s[0] + g), st->vw[0]); /* R's S %*% w: */
#pragma GCC unroll 4
  for (int k = 1; k < K; k++) /* k in order; 0 + x is x but for -0, which |.| makes +0 */
    pred = _mm512_add_pd(pred, _mm512_mul_pd(_mm512_loadu_pd(st->s[k] + g), st->vw[k]));
  if (_mm512_cmp_pd_mask(pred, pred, _CMP_ORD_Q) != 0xff) return 0;
  rctd_sf8_front(c->bk, _mm512_abs_pd(pred), st->lam_lo, st->lam_hi,
                 _mm512_loadu_si512(st->rows_g + g), &f->lam, &f->m4, rec8);
  return 1;
}

/* The back of the eight genes from g: d1 and c = -d2, the gradient and the Hessian's sums.  The
 * terms hold -diff1 (x[m - 1] - lambda, the same number negated): d1 uses diff1 only squared,
 * and c = zdi (-diff1) - zdi1 diff2 is -d2 but for the sign of a zero c, which changes no sum
 * (they start at +0 and never hold -0). */
SM_TARGET static SM_INLINE void sm_back(const sm_ctx *c, const sm_step *st, const int K, int g,
                                        const sm_front *f, const int64_t *rec8, __m256d *gk,
                                        __m256d *hk) {
  rctd_sf8_terms t;
  rctd_sf8_coefs(c->coef, rec8, &t);
  __m512d x_lo, x_hi;
  rctd_sf8_ends(c->x, f->m4, &x_lo, &x_hi);
  t.diff1 = _mm512_sub_pd(x_lo, f->lam);
  t.diff2 = _mm512_sub_pd(x_hi, f->lam);
  const __m512d d1 = rctd_sf8_d1(&t);
  const __m512d cg = _mm512_sub_pd(_mm512_mul_pd(t.zdi, t.diff1), _mm512_mul_pd(t.zdi1, t.diff2));
  __m512d a[RCTD_IRWLS_SMALL_K_MAX];
#pragma GCC unroll 4
  for (int k = 0; k < K; k++) a[k] = _mm512_loadu_pd(st->s[k] + g);
#pragma GCC unroll 4
  for (int i = 0; i < K; i++) {
    gk[i] = sm_add_halves(gk[i], _mm512_mul_pd(d1, a[i]));
    const __m512d u = _mm512_mul_pd(cg, a[i]); /* (c S_i) S_j, as irwls.c's row weights */
#pragma GCC unroll 4
    for (int j = 0; j <= i; j++)
      hk[SM_TRI(i, j)] = sm_add_halves(hk[SM_TRI(i, j)], _mm512_mul_pd(u, a[j]));
  }
}

/* The blocks of eight genes, fronts RCTD_SF8_AHEAD blocks ahead of the backs; 0 when a prediction
 * is NaN. */
SM_TARGET static SM_INLINE int sm_blocks(const sm_ctx *c, const sm_step *st, const int K,
                                         int n_blocks, __m256d *gk, __m256d *hk) {
  enum { RING = RCTD_SF8_AHEAD + 1 };
  sm_front fr[RING];
  int64_t rec8[RING][8] __attribute__((aligned(64)));
  for (int b = 0; b < RCTD_SF8_AHEAD && b < n_blocks; b++)
    if (!sm_front_of(c, st, K, 8 * b, &fr[b], rec8[b])) return 0;
  for (int b0 = 0; b0 < n_blocks; b0 += RING) {
#pragma GCC unroll 8
    for (int r = 0; r < RING; r++) { /* ring slots are constants: the fronts stay in registers */
      const int b = b0 + r, ahead = (r + RCTD_SF8_AHEAD) % RING;
      if (b >= n_blocks) break;
      if (b + RCTD_SF8_AHEAD < n_blocks &&
          !sm_front_of(c, st, K, 8 * (b + RCTD_SF8_AHEAD), &fr[ahead], rec8[ahead]))
        return 0;
      sm_back(c, st, K, 8 * b, &fr[r], rec8[r], gk, hk);
    }
  }
  return 1;
}

/* The genes past the last block of eight (from g): prediction and derivatives one by one, a
 * last block of four in the lanes, then the genes past it into lane 0; the reduction into dvec_k
 * and hess_kk. */
SM_TARGET static SM_INLINE void sm_tail(const sm_ctx *c, const int K, int G, int g,
                                        const double *const *s, const double *y, const double *s_k,
                                        double floor_pred, __m256d *gk, __m256d *hk, double *dvec_k,
                                        double *hess_kk) {
  enum { KM = RCTD_IRWLS_SMALL_K_MAX };
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

/* The step of K (1 to RCTD_IRWLS_SMALL_K_MAX) types: K is a constant in each instance, so the
 * loops over types unroll and the accumulators stay in registers.  0 when a prediction is NaN
 * (nothing written). */
SM_TARGET static SM_INLINE int sm_grad_hess_k(const sm_ctx *c, const int K, int G,
                                              const double *S_kg, const double *y,
                                              const int64_t *rows_g, const double *s_k,
                                              double floor_pred, double *dvec_k, double *hess_kk) {
  enum { KM = RCTD_IRWLS_SMALL_K_MAX };
  sm_step st;
  __m256d gk[KM], hk[SM_N_TRI];
  const double lam_lo = floor_pred > RCTD_SF8_LAM_LO ? floor_pred : RCTD_SF8_LAM_LO;
  st.lam_lo = _mm512_set1_pd(lam_lo);
  st.lam_hi = _mm512_set1_pd(c->x[RCTD_N_X - 1] - RCTD_SF8_LAM_LO);
  st.rows_g = rows_g;
#pragma GCC unroll 4
  for (int k = 0; k < K; k++) {
    st.s[k] = S_kg + (size_t)k * G;
    st.vw[k] = _mm512_set1_pd(s_k[k]);
    gk[k] = _mm256_setzero_pd();
  }
#pragma GCC unroll 10
  for (int e = 0; e < K * (K + 1) / 2; e++) hk[e] = _mm256_setzero_pd();
  if (!sm_blocks(c, &st, K, G / 8, gk, hk)) return 0;
  sm_tail(c, K, G, G / 8 * 8, st.s, y, s_k, floor_pred, gk, hk, dvec_k, hess_kk);
  return 1;
}

#define SM_GRAD_HESS(K)                                                                            \
  SM_TARGET static int sm_grad_hess_##K(const sm_ctx *c, int G, const double *S_kg,                \
                                        const double *y, const int64_t *rows_g, const double *s_k, \
                                        double floor_pred, double *dvec_k, double *hess_kk) {      \
    return sm_grad_hess_k(c, K, G, S_kg, y, rows_g, s_k, floor_pred, dvec_k, hess_kk);             \
  }
SM_GRAD_HESS(1)
SM_GRAD_HESS(2)
SM_GRAD_HESS(3)
SM_GRAD_HESS(4)
#undef SM_GRAD_HESS

/* The prediction sum_k S_kg w_k (k in order, no floor: calc_Q_all clamps lambda) into pred_g. */
SM_TARGET static void sm_predict(int K, int G, const double *S_kg, const double *w_k,
                                 double *pred_g) {
  int g = 0;
  for (; g + 8 <= G; g += 8) {
    __m512d pred = _mm512_setzero_pd();
    for (int k = 0; k < K; k++)
      pred = _mm512_add_pd(
          pred, _mm512_mul_pd(_mm512_loadu_pd(S_kg + (size_t)k * G + g), _mm512_set1_pd(w_k[k])));
    _mm512_storeu_pd(pred_g + g, pred);
  }
  for (; g < G; g++) {
    double p = 0;
    for (int k = 0; k < K; k++) p = p + S_kg[(size_t)k * G + g] * w_k[k];
    pred_g[g] = p;
  }
}

int rctd_irwls_small_grad_hess(const rctd_qtable *table, int n_genes, int n_types,
                               const double *S_kg, const double *y_g, const int64_t *rows_g,
                               const double *s_k, double floor_pred, double *dvec_k,
                               double *hess_kk) {
  sm_ctx c;
  if (n_genes < 1 || !rows_g || !sm_ctx_init(table, n_types, &c) || !c.bk->ok) return 0;
  static int (*const by_k[])(const sm_ctx *, int, const double *, const double *, const int64_t *,
                             const double *, double, double *, double *) = {
      sm_grad_hess_1, sm_grad_hess_2, sm_grad_hess_3, sm_grad_hess_4};
  return by_k[n_types - 1](&c, n_genes, S_kg, y_g, rows_g, s_k, floor_pred, dvec_k, hess_kk);
}

int rctd_irwls_small_score(const rctd_qtable *table, int n_genes, int n_types, const double *S_kg,
                           const double *y_g, const double *weights_k, double *pred_g, double *d0_g,
                           double *score) {
  sm_ctx c;
  if (n_genes < 1 || !sm_ctx_init(table, n_types, &c)) return 0;
  sm_predict(n_types, n_genes, S_kg, weights_k, pred_g);
  rctd_spline_eval_fast(table, n_genes, y_g, pred_g, d0_g, NULL, NULL);
  long double sum = 0; /* R's sum(): long double, in gene order */
  for (int g = 0; g < n_genes; g++) sum += d0_g[g];
  *score = -(double)sum;
  return 1;
}

#else /* no x86 intrinsics: the generic path always */

int rctd_irwls_small_grad_hess(const rctd_qtable *table, int n_genes, int n_types,
                               const double *S_kg, const double *y_g, const int64_t *rows_g,
                               const double *s_k, double floor_pred, double *dvec_k,
                               double *hess_kk) {
  (void)table, (void)n_genes, (void)n_types, (void)S_kg, (void)y_g, (void)rows_g, (void)s_k;
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
