/* The spline's AVX-512 lanes, eight pairs (y, lambda) at a time, shared by spline_fast.c
 * (rctd_spline_eval_fast, chooseSigma's scores) and irwls_small.c (the fused small fits).  Lane by
 * lane they compute spline_fast.c's sf_pair operations, so every lane equals the scalar result
 * bit for bit; x / 2 is computed as x * 0.5, the same number.
 *
 * The interval m = m_of_l[(int)sqrt(lambda / 1e-6)] of a clamped lambda comes without the
 * division and the square root: m is a non-decreasing step function of lambda (each operation is
 * monotonic), so it is read from buckets of lambda's bit pattern (exponent and
 * RCTD_SF8_BUCKET_BITS mantissa bits): a bucket's m at its first value and the first value of
 * the bucket where m steps up, found by bisection over the bucket's bit patterns with that exact
 * formula (spline_fast.c builds them).  Both in one 64-bit record (one gather): (s - 1) << 20 |
 * 4m, where s is the step's low 44 bits (its high bits are the bucket's; s >= 1), or
 * (2^44 - 1) << 20 | 4m when m does not step in the bucket.  With L lambda's low 44 bits,
 * L << 20 > record exactly when L >= s (4m < 2^20), so one shift and one compare decide the step,
 * and one mask gives 4m: the offset of interval m's record of four coefficients.  Valid when no
 * bucket holds two steps (checked when built; otherwise these lanes are off and the AVX2 lanes
 * run). */
#ifndef RCTD_CPU_SPLINE_FAST_AVX512_H
#define RCTD_CPU_SPLINE_FAST_AVX512_H
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#include <stdint.h>

#include "cpu/spline_fast.h"

#define RCTD_SF8_TARGET __attribute__((target("avx512f,avx2,fma")))
#define RCTD_SF8_INLINE __attribute__((always_inline)) inline

#define RCTD_SF8_BUCKET_BITS 8
#define RCTD_SF8_BUCKET_SHIFT (52 - RCTD_SF8_BUCKET_BITS)
#define RCTD_SF8_LOW_BITS (((int64_t)1 << RCTD_SF8_BUCKET_SHIFT) - 1)
#define RCTD_SF8_STEP_SHIFT 20 /* a record's step above 4m */
#define RCTD_SF8_M4_MASK (((int64_t)1 << RCTD_SF8_STEP_SHIFT) - 1)
/* calc_Q_all's clamp of lambda: [1e-4, x_max - 1e-4] (RK_QT_EPSILON; x_max = 1600 on the
 * standard grid); its scale 1e-6 is RK_QT_DELTA */
#define RCTD_SF8_LAM_LO 1e-4

/* The interval buckets (ok = 0: not usable, the lanes divide and take the root). */
typedef struct {
  int ok;
  int64_t first;        /* bucket index of RCTD_SF8_LAM_LO */
  const int64_t *rec_b; /* the records of buckets first, first + 1, ... */
  /* rec_b less first, indexed by lambda's bits >> RCTD_SF8_BUCKET_SHIFT (an address computed
   * as an integer: the gathers only read it at lambdas in [RCTD_SF8_LAM_LO, x_max]) */
  const int64_t *rec_of_bits;
} rctd_sf8_buckets;

/* What the lanes need of a table. */
typedef struct {
  const rctd_qtable *table;
  const double *coef, *x;
  const rctd_sf8_buckets *bk;
  double row_end; /* y at or past it has no table row */
} rctd_sf8_ctx;

/* Fills c for table: 1 when the eight-wide lanes apply (the CPU has AVX-512, the SIMD paths are
 * on, the grid is the standard one, the table's coefficients are attached, the interval buckets
 * were built), else 0. */
int rctd_sf8_ctx_init(const rctd_qtable *table, rctd_sf8_ctx *c);

/* The buckets (NULL without AVX-512). */
const rctd_sf8_buckets *rctd_sf8_buckets_get(void);

/* 4m for eight clamped lambdas from the buckets (bk->ok): the bucket's, plus 4 at or past its
 * step. */
RCTD_SF8_TARGET static RCTD_SF8_INLINE __m512i rctd_sf8_m4(const rctd_sf8_buckets *bk,
                                                           __m512d lam) {
  const __m512i bits = _mm512_castpd_si512(lam);
  const __m512i rec =
      _mm512_i64gather_epi64(_mm512_srli_epi64(bits, RCTD_SF8_BUCKET_SHIFT), bk->rec_of_bits, 8);
  const __mmask8 up =
      _mm512_cmp_epu64_mask(_mm512_slli_epi64(bits, RCTD_SF8_STEP_SHIFT), rec, _MM_CMPINT_NLE);
  const __m512i m4 = _mm512_and_si512(rec, _mm512_set1_epi64(RCTD_SF8_M4_MASK));
  return _mm512_mask_add_epi64(m4, up, m4, _mm512_set1_epi64(4));
}

/* The end of a front (the part of a pipelined block before its loads, below) shared by
 * spline_fast.c and irwls_small.c: eight lambdas V (not NaN) clamped to [LO, HI] into *LAM,
 * their intervals 4m into *M4, and the offsets of their coefficient records (ROW_OFF, the rows'
 * offsets, plus 4m) into REC8. */
RCTD_SF8_TARGET static RCTD_SF8_INLINE void rctd_sf8_front(const rctd_sf8_buckets *bk, __m512d v,
                                                           __m512d lo, __m512d hi, __m512i row_off,
                                                           __m512d *lam, __m512i *m4,
                                                           int64_t *rec8) {
  *lam = _mm512_min_pd(_mm512_max_pd(lo, v), hi);
  *m4 = rctd_sf8_m4(bk, *lam);
  _mm512_store_si512(rec8, _mm512_add_epi64(*m4, row_off));
}

/* The interval m of eight clamped lambdas from the buckets (bk->ok). */
RCTD_SF8_TARGET static RCTD_SF8_INLINE __m256i rctd_sf8_interval(const rctd_sf8_buckets *bk,
                                                                 __m512d lam) {
  return _mm512_cvtepi64_epi32(_mm512_srli_epi64(rctd_sf8_m4(bk, lam), 2));
}

/* The spline's terms at eight pairs: the interval's coefficients zdi, zdi1, diff3, diff4 and the
 * distances diff1, diff2 to its ends. */
typedef struct {
  __m512d zdi, zdi1, diff3, diff4, diff1, diff2;
} rctd_sf8_terms;

/* Loops over blocks of eight pairs are software-pipelined: the front of block b + RCTD_SF8_AHEAD
 * (lambda, interval, the records' offsets) is issued before the back of block b (coefficients,
 * derivatives), so that the back's loads find their offsets ready: a block's chain of dependent
 * loads and arithmetic (~150 cycles) is several times a block's throughput, and the core's
 * scheduler cannot hold enough blocks to hide it.  Replaying a realistic chunk's two-type IRWLS
 * steps (irwls_small.c): the plain loop 0.93x the time of the previous gathered kernel, 2 ahead
 * 0.73x, 4 ahead with rctd_sf8_coefs 0.62x; 5 and more no better. */
#define RCTD_SF8_AHEAD 4

/* The coefficients zdi, zdi1, diff3, diff4 of eight records (coef + rec8[i]: four doubles each),
 * by eight 32-byte loads and a 4 x 8 transpose (faster than four gathers). */
RCTD_SF8_TARGET static RCTD_SF8_INLINE void rctd_sf8_coefs(const double *coef, const int64_t *rec8,
                                                           rctd_sf8_terms *t) {
  __m512d r[4];
#pragma GCC unroll 4
  for (int i = 0; i < 4; i++) /* records i and i + 4 */
    r[i] = _mm512_insertf64x4(_mm512_castpd256_pd512(_mm256_loadu_pd(coef + rec8[i])),
                              _mm256_loadu_pd(coef + rec8[i + 4]), 1);
  const __m512d lo01 = _mm512_unpacklo_pd(r[0], r[1]), hi01 = _mm512_unpackhi_pd(r[0], r[1]);
  const __m512d lo23 = _mm512_unpacklo_pd(r[2], r[3]), hi23 = _mm512_unpackhi_pd(r[2], r[3]);
  const __m512i even = _mm512_set_epi64(13, 12, 5, 4, 9, 8, 1, 0);
  const __m512i odd = _mm512_set_epi64(15, 14, 7, 6, 11, 10, 3, 2);
  t->zdi = _mm512_permutex2var_pd(lo01, even, lo23);
  t->diff3 = _mm512_permutex2var_pd(lo01, odd, lo23);
  t->zdi1 = _mm512_permutex2var_pd(hi01, even, hi23);
  t->diff4 = _mm512_permutex2var_pd(hi01, odd, hi23);
}

/* The interval ends x[m - 1] and x[m] of eight intervals given as 4m (4m scaled by 2 bytes is m
 * doubles; x[m - 1]'s base is computed as an integer: x - 1 is no array). */
RCTD_SF8_TARGET static RCTD_SF8_INLINE void rctd_sf8_ends(const double *x, __m512i m4,
                                                          __m512d *x_lo, __m512d *x_hi) {
  *x_lo = _mm512_i64gather_pd(m4, (const double *)((uintptr_t)x - sizeof(double)), 2);
  *x_hi = _mm512_i64gather_pd(m4, x, 2);
}

/* x^3 rounded to nearest, as rk_cube (two FMA error terms) */
RCTD_SF8_TARGET static RCTD_SF8_INLINE __m512d rctd_sf8_cube(__m512d x) {
  const __m512d p = _mm512_mul_pd(x, x), pe = _mm512_fmsub_pd(x, x, p);
  const __m512d h = _mm512_mul_pd(p, x), he = _mm512_fmsub_pd(p, x, h);
  return _mm512_add_pd(h, _mm512_fmadd_pd(pe, x, he));
}

/* p / 6 correctly rounded (the division's bits), without a division when every lane has
 * 2^-900 <= |p| < inf (else the lanes divide):  q = RN(p r_h + RN(p r_l)), r_h = RN(1/6) =
 * 0x1.5555555555555p-3, r_l = RN(1/6 - r_h) = 0x1.5555555555555p-57.  Why it is the same number:
 *   - p = M 2^e with M an integer (p normal), so p / 6 = M 2^(e-1) / 3; with p / 6 in
 *     [2^k, 2^(k+1)), k <= e + 50, p / 6 is (M 2^(e-k+51) / 3) ulps of 2^(k-52): an integer
 *     over 3, whose fraction is 0, 1/3 or 2/3, so p / 6 is at least ulp / 6 > 2^(k-55) from every
 *     rounding boundary (midpoints in the binade; the one below 2^k is 2^(k-54) away);
 *   - the FMA rounds once the exact p r_h + RN(p r_l), which is within
 *     |p| |1/6 - r_h - r_l| + |RN(p r_l) - p r_l| <= |p| (2^-109 + 2^-53 2^-56) = |p| 2^-108
 *     < 12 2^k 2^-108 < 2^(k-104) of p / 6 (|r_l| < 2^-56, and p r_l is normal: |p r_l| >=
 *     2^-900 2^-57), far inside that margin, so it rounds to RN(p / 6);
 *   - p / 6 >= 2^-903 is normal, and |p| < inf neither overflows.
 * tests/test_spline_fast.c checks the constants and compares edge and random values. */
#define RCTD_SF8_SIXTH_HI 0x1.5555555555555p-3
#define RCTD_SF8_SIXTH_LO 0x1.5555555555555p-57
RCTD_SF8_TARGET static RCTD_SF8_INLINE __m512d rctd_sf8_div6(__m512d p) {
  const __m512d a = _mm512_abs_pd(p);
  const __mmask8 ok = _mm512_cmp_pd_mask(a, _mm512_set1_pd(0x1p-900), _CMP_GE_OQ) &
                      _mm512_cmp_pd_mask(a, _mm512_set1_pd(__builtin_inf()), _CMP_LT_OQ);
  if (__builtin_expect(ok != 0xff, 0)) return _mm512_div_pd(p, _mm512_set1_pd(6));
  return _mm512_fmadd_pd(p, _mm512_set1_pd(RCTD_SF8_SIXTH_HI),
                         _mm512_mul_pd(p, _mm512_set1_pd(RCTD_SF8_SIXTH_LO)));
}

/* calc_Q_all's d0, d1, d2 from the terms (rk_qt_spline_d0/d1/d2's operations). */
RCTD_SF8_TARGET static RCTD_SF8_INLINE __m512d rctd_sf8_d0(const rctd_sf8_terms *t) {
  const __m512d v = _mm512_add_pd(rctd_sf8_div6(_mm512_mul_pd(t->zdi, rctd_sf8_cube(t->diff1))),
                                  rctd_sf8_div6(_mm512_mul_pd(t->zdi1, rctd_sf8_cube(t->diff2))));
  return _mm512_add_pd(_mm512_add_pd(v, _mm512_mul_pd(t->diff3, t->diff1)),
                       _mm512_mul_pd(t->diff4, t->diff2));
}

RCTD_SF8_TARGET static RCTD_SF8_INLINE __m512d rctd_sf8_d1(const rctd_sf8_terms *t) {
  const __m512d half = _mm512_set1_pd(0.5);
  const __m512d a = _mm512_mul_pd(_mm512_mul_pd(t->zdi, _mm512_mul_pd(t->diff1, t->diff1)), half);
  const __m512d b = _mm512_mul_pd(_mm512_mul_pd(t->zdi1, _mm512_mul_pd(t->diff2, t->diff2)), half);
  return _mm512_sub_pd(_mm512_add_pd(_mm512_sub_pd(a, b), t->diff3), t->diff4);
}

RCTD_SF8_TARGET static RCTD_SF8_INLINE __m512d rctd_sf8_d2(const rctd_sf8_terms *t) {
  return _mm512_add_pd(_mm512_mul_pd(t->zdi, t->diff1), _mm512_mul_pd(t->zdi1, t->diff2));
}

#endif
#endif
