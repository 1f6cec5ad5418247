/* Fast calc_Q_all for the IRWLS hot loop (spline_fast.h).  qtable.c's rctd_spline_eval follows
 * R operation by operation; this computes the same numbers with less work:
 *   - the interval m = f(l), l = floor(sqrt(lambda / 1e-6)) (< 40000 after the clamp), is read
 *     from a table of calc_Q_all's formula evaluated at every l;
 *   - the per-(row, interval) terms zi / h, z(i-1) / h, fi / h - zi h / 6, f(i-1) / h - z(i-1) h /
 * 6 come from an attached coefficient table (computed with the same operations) instead of four
 * divisions per pair;
 *   - x^3 is the correctly rounded cube (two FMA error terms) instead of a pow call;
 *   - with AVX2 + FMA, four pairs at a time (gathers), lane by lane the scalar operations;
 *   - with AVX-512, eight at a time (spline_fast_avx512.h, shared with irwls_small.c), the
 *     interval from buckets of lambda's bits instead of the division and the square root; the
 *     same for chooseSigma's scores.  The AVX2 lanes remain for CPUs without AVX-512. */
#include "cpu/spline_fast.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define SF_X86 1
#endif

#include "common/poison.h"
#include "common/qtable_math.h"
#include "cpu/spline_fast_avx512.h"

#define SF_EPSILON RK_QT_EPSILON /* calc_Q_all's lambda clamp */
#define SF_DELTA RK_QT_DELTA     /* calc_Q_all's lambda scale */
#define SF_N_L 40000             /* l = floor(sqrt(lambda / 1e-6)) < 40000 for lambda < 1600 */
#define SF_N_INT (RCTD_N_X - 1)
#define SF_MAX_ATTACHED 16

typedef struct {
  double x[RCTD_N_X];
  unsigned short m_of_l[SF_N_L + 2]; /* +2: 32-bit gathers read one entry past l */
  int simd;                          /* AVX2 and FMA */
  int avx512;                        /* and AVX-512 (F) */
} sf_tables;

static sf_tables sf_tab;
static pthread_once_t sf_once = PTHREAD_ONCE_INIT;
static int sf_simd_on = 1;
static int sf_avx512_on = 1;

/* Attached coefficient tables, looked up by the table's q_kx and sq_kx. */
typedef struct {
  _Atomic(const double *) q;
  const double *sq;
  const double *coef;
  int n_k;
} sf_attached;
static sf_attached sf_att[SF_MAX_ATTACHED];
static pthread_mutex_t sf_att_lock = PTHREAD_MUTEX_INITIALIZER;

#ifdef SF_X86
/* The interval buckets of spline_fast_avx512.h. */
static rctd_sf8_buckets sf_bk;

static int64_t sf_bits(double v) {
  int64_t b;
  memcpy(&b, &v, sizeof b);
  return b;
}

static double sf_double(int64_t b) {
  double v;
  memcpy(&v, &b, sizeof v);
  return v;
}

static int sf_m_exact(double lam) { /* lam clamped: sf_pair's interval */
  return sf_tab.m_of_l[(int)sqrt(lam / SF_DELTA)];
}

/* A bucket's record (spline_fast_avx512.h): step' << RCTD_SF8_STEP_SHIFT | 4m. */
static int64_t sf_record(int64_t step_less_one, int m) {
  return (int64_t)((uint64_t)step_less_one << RCTD_SF8_STEP_SHIFT | (uint64_t)(4 * m));
}

/* Each bucket's m at its first value and the first value where m steps up (bisection with the
 * exact formula); leaves sf_bk.ok = 0 when m is not monotonic or a bucket holds two steps. */
static void sf_buckets_build(void) {
  for (int l = 1; l < SF_N_L; l++)
    if (sf_tab.m_of_l[l] < sf_tab.m_of_l[l - 1]) return;
  const double lam_hi = sf_tab.x[RCTD_N_X - 1] - RCTD_SF8_LAM_LO;
  const int64_t bits_lo = sf_bits(RCTD_SF8_LAM_LO), bits_hi = sf_bits(lam_hi);
  const int64_t first = bits_lo >> RCTD_SF8_BUCKET_SHIFT;
  const int64_t n = (bits_hi >> RCTD_SF8_BUCKET_SHIFT) - first + 1;
  int64_t *rec_b = malloc(sizeof(int64_t) * n);
  if (!rec_b) return;
  for (int64_t b = 0; b < n; b++) {
    const int64_t lo_bits = (first + b) << RCTD_SF8_BUCKET_SHIFT;
    const int64_t hi_bits = lo_bits + RCTD_SF8_LOW_BITS;
    const int64_t lo = lo_bits > bits_lo ? lo_bits : bits_lo;
    const int64_t hi = hi_bits < bits_hi ? hi_bits : bits_hi;
    const int m_lo = sf_m_exact(sf_double(lo)), m_hi = sf_m_exact(sf_double(hi));
    if (m_hi - m_lo > 1 || m_hi < m_lo) { /* two steps in a bucket: not usable */
      free(rec_b);
      return;
    }
    rec_b[b] = sf_record(RCTD_SF8_LOW_BITS, m_lo); /* no step */
    if (m_hi == m_lo) continue;
    int64_t a = lo, c = hi; /* m(a) = m_lo, m(c) = m_lo + 1 */
    while (c - a > 1) {
      const int64_t mid = a + (c - a) / 2;
      if (sf_m_exact(sf_double(mid)) > m_lo)
        c = mid;
      else
        a = mid;
    }
    rec_b[b] = sf_record((c & RCTD_SF8_LOW_BITS) - 1, m_lo);
  }
  sf_bk.first = first;
  sf_bk.rec_b = rec_b;
  sf_bk.rec_of_bits = (const int64_t *)((uintptr_t)rec_b - (uintptr_t)first * sizeof *rec_b);
  sf_bk.ok = 1;
}
#endif

static void sf_init(void) {
  rctd_x_grid(sf_tab.x);
  for (int l = 0; l < SF_N_L; l++) {
    double ld = l;
    double m = rk_qt_m_of_l(ld);
    sf_tab.m_of_l[l] = (unsigned short)(m < 1 ? 1 : m > RCTD_N_X - 1 ? RCTD_N_X - 1 : m);
  }
#ifdef SF_X86
  __builtin_cpu_init();
  sf_tab.simd = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  sf_tab.avx512 = sf_tab.simd && __builtin_cpu_supports("avx512f");
  if (sf_tab.avx512) sf_buckets_build();
#endif
}

int rctd_cpu_simd(int enable) {
  pthread_once(&sf_once, sf_init);
  int was = sf_simd_on && sf_tab.simd;
  if (enable >= 0) sf_simd_on = enable;
  return was;
}

int rctd_cpu_avx512(int enable) {
  pthread_once(&sf_once, sf_init);
  int was = sf_simd_on && sf_tab.avx512 && sf_avx512_on;
  if (enable >= 0) sf_avx512_on = enable;
  return was;
}

size_t rctd_spline_coef_doubles(int n_k) {
  return (size_t)(n_k > 0 ? n_k : 0) * SF_N_INT * 4;
}

/* The terms of calc_Q_all that do not depend on lambda (kernels/common/qtable_math.h). */
static void sf_coef_one(const double *x, const double *q, const double *sq, int m, double *c) {
  rk_qt_spline_coef(x, q, sq, m, c);
}

void rctd_spline_coef_build(const rctd_qtable *t, double *coef) {
  rctd_spline_coef_build_rows(t, NULL, coef);
}

void rctd_spline_coef_build_rows(const rctd_qtable *t, const unsigned char *row_used,
                                 double *coef) {
  const size_t row_bytes = sizeof(double) * 4 * SF_N_INT;
  for (int k = 0; k < t->n_k; k++) {
    double *row = coef + (size_t)k * SF_N_INT * 4;
    if (row_used && !row_used[k]) {
      RCTD_POISON(row, row_bytes); /* unset: a read fails under AddressSanitizer */
      continue;
    }
    RCTD_UNPOISON(row, row_bytes);
    const double *q = t->q_kx + (size_t)k * RCTD_N_X, *sq = t->sq_kx + (size_t)k * RCTD_N_X;
    for (int m = 1; m < RCTD_N_X; m++)
      sf_coef_one(t->x_vals, q, sq, m, coef + ((size_t)k * SF_N_INT + (m - 1)) * 4);
  }
}

int rctd_spline_coef_attach(const rctd_qtable *t, const double *coef) {
  pthread_mutex_lock(&sf_att_lock);
  int rc = -1;
  for (int i = 0; i < SF_MAX_ATTACHED && rc < 0; i++) {
    if (atomic_load(&sf_att[i].q) != NULL) continue;
    sf_att[i].sq = t->sq_kx;
    sf_att[i].coef = coef;
    sf_att[i].n_k = t->n_k;
    atomic_store(&sf_att[i].q, t->q_kx); /* published last */
    rc = 0;
  }
  pthread_mutex_unlock(&sf_att_lock);
  return rc;
}

void rctd_spline_coef_detach(const rctd_qtable *t) {
  pthread_mutex_lock(&sf_att_lock);
  for (int i = 0; i < SF_MAX_ATTACHED; i++)
    if (atomic_load(&sf_att[i].q) == t->q_kx && sf_att[i].sq == t->sq_kx)
      atomic_store(&sf_att[i].q, NULL);
  pthread_mutex_unlock(&sf_att_lock);
}

static const double *sf_find_coef(const rctd_qtable *t) {
  for (int i = 0; i < SF_MAX_ATTACHED; i++)
    if (atomic_load_explicit(&sf_att[i].q, memory_order_acquire) == t->q_kx &&
        sf_att[i].sq == t->sq_kx && sf_att[i].n_k >= t->n_k)
      return sf_att[i].coef;
  return NULL;
}

/* The table's grid is the standard one (checked on three nodes; tables come from
 * rctd_x_grid). */
static int sf_standard_grid(const double *x) {
  return x[1] == sf_tab.x[1] && x[200] == sf_tab.x[200] &&
         x[RCTD_N_X - 1] == sf_tab.x[RCTD_N_X - 1];
}

/* The lanes' bound on a count: y < row_end has a table row (every y when the table reaches
 * K_val, past which counts share its last row). */
static double sf_row_end(const rctd_qtable *table) {
  const double max_row = table->n_k - 1 < RCTD_K_VAL ? table->n_k - 1 : RCTD_K_VAL;
  return max_row >= RCTD_K_VAL ? INFINITY : max_row + 1;
}

/* Whether (y, lambda) can take the fast path: lambda not NaN, y >= 0 with a table row. */
static inline int sf_ok(const rctd_qtable *table, double yi, double lam) {
  const double max_row = table->n_k - 1 < RCTD_K_VAL ? table->n_k - 1 : RCTD_K_VAL;
  return !isnan(lam) && yi >= 0 && (yi < max_row + 1 || max_row >= RCTD_K_VAL);
}

/* Where row's coefficient records start, less 4m: record (row, m) is at row_off + 4m doubles
 * ((row * SF_N_INT + m - 1) * 4, sf_pair's). */
static inline int64_t sf_row_off(int row) {
  return ((int64_t)row * SF_N_INT - 1) * 4;
}

#ifdef SF_X86
/* sf_row_off of eight rows. */
RCTD_SF8_TARGET static RCTD_SF8_INLINE __m256i sf8_row_off(__m256i row) {
  return _mm256_slli_epi32(
      _mm256_sub_epi32(_mm256_mullo_epi32(row, _mm256_set1_epi32(SF_N_INT)), _mm256_set1_epi32(1)),
      2);
}

/* rctd_spline_fast_rows eight counts at a time (AVX-512): the genes done; *ok cleared when a
 * count has no row. */
RCTD_SF8_TARGET static int sf_rows8(int n, const double *y, double row_end, int64_t *rows,
                                    int *ok) {
  const __m512d zero = _mm512_setzero_pd(), end = _mm512_set1_pd(row_end);
  const __m512d kval = _mm512_set1_pd(RCTD_K_VAL);
  __mmask8 all = 0xff;
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m512d v = _mm512_loadu_pd(y + i);
    const __mmask8 ok8 =
        _mm512_cmp_pd_mask(v, zero, _CMP_GE_OQ) & _mm512_cmp_pd_mask(v, end, _CMP_LT_OQ);
    all &= ok8;
    const __m256i row = _mm512_cvttpd_epi32(_mm512_maskz_min_pd(ok8, v, kval)); /* 0 if not ok */
    _mm512_storeu_si512(rows + i, _mm512_cvtepi32_epi64(sf8_row_off(row)));
  }
  *ok &= all == 0xff;
  return i;
}
#endif

int rctd_spline_fast_rows(const rctd_qtable *table, int n, const double *y, int64_t *rows) {
  const double row_end = sf_row_end(table);
  int ok = 1, i = 0;
#ifdef SF_X86
  pthread_once(&sf_once, sf_init);
  if (sf_tab.avx512 && sf_simd_on && sf_avx512_on) i = sf_rows8(n, y, row_end, rows, &ok);
#endif
  for (; i < n; i++) {
    const int ok_i = y[i] >= 0 && y[i] < row_end;
    ok &= ok_i;
    const int row = !ok_i ? 0 : y[i] > RCTD_K_VAL ? RCTD_K_VAL : (int)y[i];
    rows[i] = sf_row_off(row);
  }
  return ok;
}

const double *rctd_spline_fast_coef(const rctd_qtable *table) {
  pthread_once(&sf_once, sf_init);
  if (!(sf_tab.simd && sf_simd_on) || !sf_standard_grid(table->x_vals)) return NULL;
  return sf_find_coef(table);
}

const unsigned short *rctd_spline_fast_m_of_l(void) {
  pthread_once(&sf_once, sf_init);
  return sf_tab.m_of_l;
}

#ifdef SF_X86
const rctd_sf8_buckets *rctd_sf8_buckets_get(void) {
  pthread_once(&sf_once, sf_init);
  return sf_tab.avx512 ? &sf_bk : NULL;
}

/* The lanes' context with the coefficients already found (coef non-NULL). */
static int sf8_ctx_fill(const rctd_qtable *table, const double *coef, rctd_sf8_ctx *c) {
  if (!(sf_tab.avx512 && sf_simd_on && sf_avx512_on && sf_bk.ok) || !coef) return 0;
  *c = (rctd_sf8_ctx){
      .table = table, .coef = coef, .x = table->x_vals, .bk = &sf_bk, .row_end = sf_row_end(table)};
  return 1;
}

int rctd_sf8_ctx_init(const rctd_qtable *table, rctd_sf8_ctx *c) {
  return sf8_ctx_fill(table, rctd_spline_fast_coef(table), c);
}

RCTD_SF8_TARGET static void sf_intervals8(int n, const double *lam, int *m) {
  int i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_si256((__m256i *)(m + i), rctd_sf8_interval(&sf_bk, _mm512_loadu_pd(lam + i)));
  for (; i < n; i++) m[i] = sf_m_exact(lam[i]);
}
#endif

int rctd_spline_fast_intervals(int n, const double *lam, int *m) {
  pthread_once(&sf_once, sf_init);
#ifdef SF_X86
  if (!sf_tab.avx512 || !sf_bk.ok) return -1;
  sf_intervals8(n, lam, m);
  return 0;
#else
  (void)n, (void)lam, (void)m;
  return -1;
#endif
}

/* One pair through the exact path (rctd_spline_eval), any of d0, d1, d2 NULL. */
static void sf_pair_exact(const rctd_qtable *table, double yi, double lam, double *d0, double *d1,
                          double *d2) {
  double v0, v1, v2;
  rctd_spline_eval(table, 1, &yi, &lam, &v0, &v1, &v2);
  if (d0) *d0 = v0;
  if (d1) *d1 = v1;
  if (d2) *d2 = v2;
}

/* One pair: calc_Q_all's formula in its order of operations. */
static void sf_pair(const rctd_qtable *table, const double *coef, double yi, double lam, double *d0,
                    double *d1, double *d2) {
  if (!sf_ok(table, yi, lam)) {
    sf_pair_exact(table, yi, lam, d0, d1, d2);
    return;
  }
  const double *x = table->x_vals;
  const int row = yi > RCTD_K_VAL ? RCTD_K_VAL : (int)yi;
  lam = rk_qt_clamp_lambda(lam, x[RCTD_N_X - 1]);
  const int m = sf_tab.m_of_l[(int)sqrt(lam / SF_DELTA)];
  double c_own[4];
  const double *c;
  if (coef) {
    c = coef + ((size_t)row * SF_N_INT + (m - 1)) * 4;
  } else {
    sf_coef_one(x, table->q_kx + (size_t)row * RCTD_N_X, table->sq_kx + (size_t)row * RCTD_N_X, m,
                c_own);
    c = c_own;
  }
  const double zdi = c[0], zdi1 = c[1], diff3 = c[2], diff4 = c[3];
  const double diff1 = lam - x[m - 1], diff2 = x[m] - lam;
  if (d0) *d0 = rk_qt_spline_d0(zdi, zdi1, diff3, diff4, diff1, diff2);
  if (d1) *d1 = rk_qt_spline_d1(zdi, zdi1, diff3, diff4, diff1, diff2);
  if (d2) *d2 = rk_qt_spline_d2(zdi, zdi1, diff1, diff2);
}

#ifdef SF_X86
#define SF_AVX __attribute__((target("avx2,fma")))

SF_AVX static inline __m256d sf_cube4(__m256d x) {
  __m256d p = _mm256_mul_pd(x, x), pe = _mm256_fmsub_pd(x, x, p);
  __m256d h = _mm256_mul_pd(p, x), he = _mm256_fmsub_pd(p, x, h);
  return _mm256_add_pd(h, _mm256_fmadd_pd(pe, x, he));
}

/* Four pairs at a time (coefficients attached): lane by lane sf_pair's operations, so every
 * lane equals the scalar result bit for bit.  Returns the number of pairs done; a group with a
 * pair off the fast path is left to the scalar loop. */
SF_AVX static int sf_simd(const rctd_qtable *table, const double *coef, int n, const double *y,
                          const double *lambda, double *d0, double *d1, double *d2) {
  const double *x = table->x_vals;
  const __m256d lo = _mm256_set1_pd(SF_EPSILON), hi = _mm256_set1_pd(x[RCTD_N_X - 1] - SF_EPSILON);
  const __m256d delta = _mm256_set1_pd(SF_DELTA), six = _mm256_set1_pd(6), two = _mm256_set1_pd(2);
  const __m256d kval = _mm256_set1_pd(RCTD_K_VAL), zero = _mm256_setzero_pd();
  const __m256d row_end = _mm256_set1_pd(sf_row_end(table));
  const __m128i n_int = _mm_set1_epi32(SF_N_INT), mask16 = _mm_set1_epi32(0xffff);
  const __m128i one = _mm_set1_epi32(1);
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    __m256d yv = _mm256_loadu_pd(y + i), lam = _mm256_loadu_pd(lambda + i);
    __m256d ok = _mm256_and_pd(
        _mm256_cmp_pd(lam, lam, _CMP_EQ_OQ),
        _mm256_and_pd(_mm256_cmp_pd(yv, zero, _CMP_GE_OQ), _mm256_cmp_pd(yv, row_end, _CMP_LT_OQ)));
    if (_mm256_movemask_pd(ok) != 0xf) break;
    __m128i row = _mm256_cvttpd_epi32(_mm256_min_pd(yv, kval));
    lam = _mm256_min_pd(_mm256_max_pd(lam, lo), hi);
    __m128i l = _mm256_cvttpd_epi32(_mm256_sqrt_pd(_mm256_div_pd(lam, delta)));
    __m128i m = _mm_and_si128(_mm_i32gather_epi32((const int *)sf_tab.m_of_l, l, 2), mask16);
    __m128i m1 = _mm_sub_epi32(m, one);
    __m128i rec = _mm_add_epi32(_mm_mullo_epi32(row, n_int), m1);
    int r[4];
    _mm_storeu_si128((__m128i *)r, rec);
    __m256d c0 = _mm256_loadu_pd(coef + (size_t)r[0] * 4),
            c1 = _mm256_loadu_pd(coef + (size_t)r[1] * 4);
    __m256d c2 = _mm256_loadu_pd(coef + (size_t)r[2] * 4),
            c3 = _mm256_loadu_pd(coef + (size_t)r[3] * 4);
    __m256d t0 = _mm256_unpacklo_pd(c0, c1), t1 = _mm256_unpackhi_pd(c0, c1);
    __m256d t2 = _mm256_unpacklo_pd(c2, c3), t3 = _mm256_unpackhi_pd(c2, c3);
    __m256d zdi = _mm256_permute2f128_pd(t0, t2, 0x20), zdi1 = _mm256_permute2f128_pd(t1, t3, 0x20);
    __m256d diff3 = _mm256_permute2f128_pd(t0, t2, 0x31),
            diff4 = _mm256_permute2f128_pd(t1, t3, 0x31);
    __m256d x_m1 = _mm256_i32gather_pd(x, m1, 8), x_m = _mm256_i32gather_pd(x, m, 8);
    __m256d diff1 = _mm256_sub_pd(lam, x_m1), diff2 = _mm256_sub_pd(x_m, lam);
    if (d0) {
      __m256d v0 = _mm256_add_pd(_mm256_div_pd(_mm256_mul_pd(zdi, sf_cube4(diff1)), six),
                                 _mm256_div_pd(_mm256_mul_pd(zdi1, sf_cube4(diff2)), six));
      v0 = _mm256_add_pd(_mm256_add_pd(v0, _mm256_mul_pd(diff3, diff1)),
                         _mm256_mul_pd(diff4, diff2));
      _mm256_storeu_pd(d0 + i, v0);
    }
    if (d1) {
      __m256d a = _mm256_div_pd(_mm256_mul_pd(zdi, _mm256_mul_pd(diff1, diff1)), two);
      __m256d b = _mm256_div_pd(_mm256_mul_pd(zdi1, _mm256_mul_pd(diff2, diff2)), two);
      _mm256_storeu_pd(d1 + i, _mm256_sub_pd(_mm256_add_pd(_mm256_sub_pd(a, b), diff3), diff4));
    }
    if (d2)
      _mm256_storeu_pd(d2 + i,
                       _mm256_add_pd(_mm256_mul_pd(zdi, diff1), _mm256_mul_pd(zdi1, diff2)));
  }
  return i;
}

/* A front of sf_simd8 (spline_fast_avx512.h's pipelining): the clamped lambdas, their intervals
 * (4m) and the records' offsets (rec8); 0 when a pair is off the fast path (NaN lambda, y < 0 or
 * without a table row). */
RCTD_SF8_TARGET static RCTD_SF8_INLINE int sf8_front(const rctd_sf8_ctx *c, const double *y,
                                                     const double *lambda, __m512d *lam,
                                                     __m512i *m4, int64_t *rec8) {
  const __m512d yv = _mm512_loadu_pd(y), lv = _mm512_loadu_pd(lambda);
  const __mmask8 ok = _mm512_cmp_pd_mask(lv, lv, _CMP_EQ_OQ) &
                      _mm512_cmp_pd_mask(yv, _mm512_setzero_pd(), _CMP_GE_OQ) &
                      _mm512_cmp_pd_mask(yv, _mm512_set1_pd(c->row_end), _CMP_LT_OQ);
  if (ok != 0xff) return 0;
  const __m256i row = _mm512_cvttpd_epi32(_mm512_min_pd(yv, _mm512_set1_pd(RCTD_K_VAL)));
  rctd_sf8_front(c->bk, lv, _mm512_set1_pd(RCTD_SF8_LAM_LO),
                 _mm512_set1_pd(c->x[RCTD_N_X - 1] - RCTD_SF8_LAM_LO),
                 _mm512_cvtepi32_epi64(sf8_row_off(row)), lam, m4, rec8);
  return 1;
}

/* The back of sf_simd8: d0, d1, d2 (those not NULL) of eight pairs. */
RCTD_SF8_TARGET static RCTD_SF8_INLINE void sf8_back(const rctd_sf8_ctx *c, __m512d lam, __m512i m4,
                                                     const int64_t *rec8, double *d0, double *d1,
                                                     double *d2) {
  rctd_sf8_terms t;
  rctd_sf8_coefs(c->coef, rec8, &t);
  __m512d x_lo, x_hi;
  rctd_sf8_ends(c->x, m4, &x_lo, &x_hi);
  t.diff1 = _mm512_sub_pd(lam, x_lo);
  t.diff2 = _mm512_sub_pd(x_hi, lam);
  if (d0) _mm512_storeu_pd(d0, rctd_sf8_d0(&t));
  if (d1) _mm512_storeu_pd(d1, rctd_sf8_d1(&t));
  if (d2) _mm512_storeu_pd(d2, rctd_sf8_d2(&t));
}

/* Eight pairs at a time up to the first block of eight with a pair off the fast path: the
 * number of pairs done. */
RCTD_SF8_TARGET static int sf_simd8(const rctd_sf8_ctx *c, int n, const double *y,
                                    const double *lambda, double *d0, double *d1, double *d2) {
  enum { AHEAD = RCTD_SF8_AHEAD, RING = RCTD_SF8_AHEAD + 1 };
  __m512d lam[RING];
  __m512i m4[RING];
  int64_t rec8[RING][8] __attribute__((aligned(64)));
  int stop = n / 8; /* blocks to do: up to the first off the fast path */
  for (int b = 0; b < AHEAD && b < stop; b++)
    if (!sf8_front(c, y + 8 * b, lambda + 8 * b, &lam[b], &m4[b], rec8[b])) stop = b;
  for (int b0 = 0; b0 < stop; b0 += RING) {
#pragma GCC unroll 8
    for (int r = 0; r < RING; r++) { /* ring slots are constants */
      const int b = b0 + r, i = 8 * b, ahead = (r + AHEAD) % RING, ia = 8 * (b + AHEAD);
      if (b >= stop) break;
      if (b + AHEAD < stop &&
          !sf8_front(c, y + ia, lambda + ia, &lam[ahead], &m4[ahead], rec8[ahead]))
        stop = b + AHEAD;
      sf8_back(c, lam[r], m4[r], rec8[r], d0 ? d0 + i : NULL, d1 ? d1 + i : NULL,
               d2 ? d2 + i : NULL);
    }
  }
  return 8 * stop;
}
#endif

void rctd_spline_eval_fast(const rctd_qtable *table, int n, const double *y, const double *lambda,
                           double *d0, double *d1, double *d2) {
  pthread_once(&sf_once, sf_init);
  if (!sf_standard_grid(table->x_vals)) {
    for (int i = 0; i < n; i++)
      sf_pair_exact(table, y[i], lambda[i], d0 ? d0 + i : NULL, d1 ? d1 + i : NULL,
                    d2 ? d2 + i : NULL);
    return;
  }
  const double *coef = sf_find_coef(table);
#ifdef SF_X86
  rctd_sf8_ctx c8;
  const int wide = sf8_ctx_fill(table, coef, &c8);
#endif
  int i = 0;
  while (i < n) {
#ifdef SF_X86
    if (wide)
      i += sf_simd8(&c8, n - i, y + i, lambda + i, d0 ? d0 + i : NULL, d1 ? d1 + i : NULL,
                    d2 ? d2 + i : NULL);
    if (coef && sf_tab.simd && sf_simd_on)
      i += sf_simd(table, coef, n - i, y + i, lambda + i, d0 ? d0 + i : NULL, d1 ? d1 + i : NULL,
                   d2 ? d2 + i : NULL);
#endif
    /* the rest, or the group of four that held a pair off the fast path */
    int stop = i + 4 < n ? i + 4 : n;
    for (; i < stop; i++)
      sf_pair(table, coef, y[i], lambda[i], d0 ? d0 + i : NULL, d1 ? d1 + i : NULL,
              d2 ? d2 + i : NULL);
  }
}

/* ------------------------------------------------------------------ chooseSigma's scores */

#define SF_SCORE_BLOCK 256
#define SF_SCORE_MAX 128

/* What a block of values shares across tables for one multiplier: the (row, interval) record,
 * the distances to the interval's ends and their cubes. */
typedef struct {
  int64_t rec4[SF_SCORE_BLOCK]; /* the record's first double: 4 (row SF_N_INT + m - 1) */
  double diff1[SF_SCORE_BLOCK], diff2[SF_SCORE_BLOCK];
  double cube1[SF_SCORE_BLOCK], cube2[SF_SCORE_BLOCK];
} sf_score_block;

/* sf_pair's lambda clamp, interval and cubes, for values [j0, n) of x times MULT. */
#define SF_SCORE_PREPARE_BODY                                       \
  const double lo = SF_EPSILON, hi = xg[RCTD_N_X - 1] - SF_EPSILON; \
  for (int j = j0; j < n; j++) {                                    \
    double lam = x[j] * mult;                                       \
    lam = lam < lo ? lo : lam > hi ? hi : lam;                      \
    const int m = sf_tab.m_of_l[(int)sqrt(lam / SF_DELTA)];         \
    const int row = y[j] > RCTD_K_VAL ? RCTD_K_VAL : (int)y[j];     \
    b->rec4[j] = ((int64_t)row * SF_N_INT + (m - 1)) * 4;           \
    const double diff1 = lam - xg[m - 1], diff2 = xg[m] - lam;      \
    b->diff1[j] = diff1;                                            \
    b->diff2[j] = diff2;                                            \
    b->cube1[j] = rk_cube(diff1);                                   \
    b->cube2[j] = rk_cube(diff2);                                   \
  }

static void sf_score_prepare(const double *xg, int j0, int n, const double *y, const double *x,
                             double mult, sf_score_block *b) {
  SF_SCORE_PREPARE_BODY
}

/* d0 of one table for values [j0, n) of the block: sf_pair's d0 with the block's shared terms. */
static void sf_score_d0(const double *coef, int j0, int n, const sf_score_block *b, double *d0) {
  for (int j = j0; j < n; j++) {
    const double *c = coef + b->rec4[j];
    d0[j] =
        c[0] * b->cube1[j] / 6 + c[1] * b->cube2[j] / 6 + c[2] * b->diff1[j] + c[3] * b->diff2[j];
  }
}

#ifdef SF_X86
SF_AVX static void sf_score_prepare_avx2(const double *xg, int j0, int n, const double *y,
                                         const double *x, double mult, sf_score_block *b){
    SF_SCORE_PREPARE_BODY /* compiled with FMA: sf_cube's fma() is one instruction */
}

/* sf_score_d0 four values at a time, lane by lane sf_simd's d0 operations. */
SF_AVX
    static void sf_score_d0_avx2(const double *coef, int n, const sf_score_block *b, double *d0) {
  const __m256d six = _mm256_set1_pd(6);
  int j = 0;
  for (; j + 4 <= n; j += 4) {
    __m256d c0 = _mm256_loadu_pd(coef + b->rec4[j]), c1 = _mm256_loadu_pd(coef + b->rec4[j + 1]);
    __m256d c2 = _mm256_loadu_pd(coef + b->rec4[j + 2]),
            c3 = _mm256_loadu_pd(coef + b->rec4[j + 3]);
    __m256d t0 = _mm256_unpacklo_pd(c0, c1), t1 = _mm256_unpackhi_pd(c0, c1);
    __m256d t2 = _mm256_unpacklo_pd(c2, c3), t3 = _mm256_unpackhi_pd(c2, c3);
    __m256d zdi = _mm256_permute2f128_pd(t0, t2, 0x20), zdi1 = _mm256_permute2f128_pd(t1, t3, 0x20);
    __m256d diff3 = _mm256_permute2f128_pd(t0, t2, 0x31),
            diff4 = _mm256_permute2f128_pd(t1, t3, 0x31);
    __m256d diff1 = _mm256_loadu_pd(b->diff1 + j), diff2 = _mm256_loadu_pd(b->diff2 + j);
    __m256d v0 =
        _mm256_add_pd(_mm256_div_pd(_mm256_mul_pd(zdi, _mm256_loadu_pd(b->cube1 + j)), six),
                      _mm256_div_pd(_mm256_mul_pd(zdi1, _mm256_loadu_pd(b->cube2 + j)), six));
    v0 = _mm256_add_pd(_mm256_add_pd(v0, _mm256_mul_pd(diff3, diff1)), _mm256_mul_pd(diff4, diff2));
    _mm256_storeu_pd(d0 + j, v0);
  }
  /* clean upper halves before scalar code (GCC leaves them dirty on a tail call, and libm's
   * SSE code then runs several times slower) */
  _mm256_zeroupper();
  sf_score_d0(coef, j, n, b, d0); /* the last few: same operations, scalar */
}

/* sf_score_prepare eight values at a time, the interval from the buckets (no division or square
 * root); a group of eight with a NaN product (0 x inf), which the lanes' clamp would not keep,
 * and the last few values go through the scalar body. */
RCTD_SF8_TARGET static void sf_score_prepare_avx512(const double *xg, int n, const double *y,
                                                    const double *x, double mult,
                                                    sf_score_block *b) {
  const __m512d vmult = _mm512_set1_pd(mult), kval = _mm512_set1_pd(RCTD_K_VAL);
  const __m512d lo = _mm512_set1_pd(SF_EPSILON), hi = _mm512_set1_pd(xg[RCTD_N_X - 1] - SF_EPSILON);
  const __m256i n_int = _mm256_set1_epi32(SF_N_INT), one = _mm256_set1_epi32(1);
  int j0 = 0;
  for (; j0 + 8 <= n; j0 += 8) {
    __m512d lam = _mm512_mul_pd(_mm512_loadu_pd(x + j0), vmult);
    if (_mm512_cmp_pd_mask(lam, lam, _CMP_EQ_OQ) != 0xff) break;
    lam = _mm512_min_pd(_mm512_max_pd(lam, lo), hi);
    const __m256i m = rctd_sf8_interval(&sf_bk, lam);
    const __m256i m1 = _mm256_sub_epi32(m, one);
    const __m256i row = _mm512_cvttpd_epi32(_mm512_min_pd(_mm512_loadu_pd(y + j0), kval));
    const __m256i rec = _mm256_add_epi32(_mm256_mullo_epi32(row, n_int), m1);
    _mm512_storeu_si512(b->rec4 + j0, _mm512_slli_epi64(_mm512_cvtepi32_epi64(rec), 2));
    const __m512d diff1 = _mm512_sub_pd(lam, _mm512_i32gather_pd(m1, xg, 8));
    const __m512d diff2 = _mm512_sub_pd(_mm512_i32gather_pd(m, xg, 8), lam);
    _mm512_storeu_pd(b->diff1 + j0, diff1);
    _mm512_storeu_pd(b->diff2 + j0, diff2);
    _mm512_storeu_pd(b->cube1 + j0, rctd_sf8_cube(diff1));
    _mm512_storeu_pd(b->cube2 + j0, rctd_sf8_cube(diff2));
  }
  _mm256_zeroupper();
  sf_score_prepare_avx2(xg, j0, n, y, x, mult, b); /* the rest: same operations, scalar */
}

/* sf_score_d0 eight values at a time, lane by lane its operations. */
RCTD_SF8_TARGET static void sf_score_d0_avx512(const double *coef, int n, const sf_score_block *b,
                                               double *d0) {
  int j = 0;
  for (; j + 8 <= n; j += 8) {
    rctd_sf8_terms t; /* the records loaded whole and transposed */
    rctd_sf8_coefs(coef, b->rec4 + j, &t);
    const __m512d zdi = t.zdi, zdi1 = t.zdi1, diff3 = t.diff3, diff4 = t.diff4;
    const __m512d v =
        _mm512_add_pd(rctd_sf8_div6(_mm512_mul_pd(zdi, _mm512_loadu_pd(b->cube1 + j))),
                      rctd_sf8_div6(_mm512_mul_pd(zdi1, _mm512_loadu_pd(b->cube2 + j))));
    const __m512d w = _mm512_add_pd(v, _mm512_mul_pd(diff3, _mm512_loadu_pd(b->diff1 + j)));
    _mm512_storeu_pd(d0 + j, _mm512_add_pd(w, _mm512_mul_pd(diff4, _mm512_loadu_pd(b->diff2 + j))));
  }
  _mm256_zeroupper();
  sf_score_d0(coef, j, n, b, d0); /* the last few: same operations, scalar */
}
#endif

/* How many of the REST tables left go into the next group whose scores are summed together:
 * fours while the rest is not a multiple of three, then threes (three chains already cover the
 * subtraction's latency; a lone chain would wait on it: 9 tables go 3 + 3 + 3, not 4 + 4 + 1),
 * and one only when one or two are left.  The group's d0 go through a buffer of that many
 * blocks, summed while in cache. */
static int sf_score_group(int rest) {
  return rest >= 4 && rest % 3 != 0 ? 4 : rest >= 3 ? 3 : 1;
}

/* sum[t * stride] -= d0_tj[t * SF_SCORE_BLOCK + j] for j = 0..n-1 in order, for the N_GROUP
 * (4, 3 or 1, from sf_score_group) tables of one group: each score's long double sum runs over
 * the values in order, as R's sum() does.  Four or three tables at a time keep their sums in x87
 * registers (independent chains); summing table by table instead of value by value changes no
 * sum's order, only the interleaving, and spares an 80-bit store per term.
 * s - a is s + (-a) exactly (IEEE subtraction is the addition of the negation; the values are
 * finite), and lets the subtraction read a straight from memory instead of negating it in an
 * SSE register and passing it through the stack. */
static void sf_score_sums(int n_group, int n, const double *d0_tj, long double *sum, int stride) {
  const double *a = d0_tj;
  if (n_group == 4) {
    long double s0 = sum[0], s1 = sum[stride], s2 = sum[2 * stride], s3 = sum[3 * stride];
    for (int j = 0; j < n; j++) {
      s0 -= a[j];
      s1 -= a[SF_SCORE_BLOCK + j];
      s2 -= a[2 * SF_SCORE_BLOCK + j];
      s3 -= a[3 * SF_SCORE_BLOCK + j];
    }
    sum[0] = s0, sum[stride] = s1, sum[2 * stride] = s2, sum[3 * stride] = s3;
  } else if (n_group == 3) {
    long double s0 = sum[0], s1 = sum[stride], s2 = sum[2 * stride];
    for (int j = 0; j < n; j++) {
      s0 -= a[j];
      s1 -= a[SF_SCORE_BLOCK + j];
      s2 -= a[2 * SF_SCORE_BLOCK + j];
    }
    sum[0] = s0, sum[stride] = s1, sum[2 * stride] = s2;
  } else {
    long double s = sum[0];
    for (int j = 0; j < n; j++) s -= a[j];
    sum[0] = s;
  }
}

int rctd_spline_score_many(const rctd_qtable *const *tables, const double *const *coefs,
                           int n_tables, const double *mult, int n_mult, int64_t n, const double *y,
                           const double *x, double *out_tm) {
  pthread_once(&sf_once, sf_init);
  /* the bound on the product by a division: a product that wrapped would pass it */
  if (n_tables < 1 || n_mult < 1 || n_tables > SF_SCORE_MAX / n_mult) return -1;
  const int n_scores = n_tables * n_mult;
  const double *xg = tables[0]->x_vals;
  for (int t = 0; t < n_tables; t++)
    if (!coefs[t] || !sf_standard_grid(tables[t]->x_vals)) return -1; /* then all equal xg */
  /* a pair on the fast path of the table with the fewest rows is on every table's */
  const rctd_qtable *fewest = tables[0];
  for (int t = 1; t < n_tables; t++)
    if (tables[t]->n_k < fewest->n_k) fewest = tables[t];
  for (int64_t i = 0; i < n; i++)
    if (!sf_ok(fewest, y[i], x[i])) return -1;
  /* 10 KiB and 8 KiB on the stack: nothing allocated; on cache lines, for the 64-byte loads */
  _Alignas(64) sf_score_block block;
  _Alignas(64) double d0_tj[4 * SF_SCORE_BLOCK];
  sf_score_block *b = &block;
#ifdef SF_X86
  const int simd = sf_tab.simd && sf_simd_on;
  const int wide = simd && sf_tab.avx512 && sf_avx512_on && sf_bk.ok;
#endif
  long double sum[SF_SCORE_MAX] = {0};
  for (int64_t i0 = 0; i0 < n; i0 += SF_SCORE_BLOCK) {
    const int nb = (int)(n - i0 < SF_SCORE_BLOCK ? n - i0 : SF_SCORE_BLOCK);
    for (int m = 0; m < n_mult; m++) {
#ifdef SF_X86
      if (wide)
        sf_score_prepare_avx512(xg, nb, y + i0, x + i0, mult[m], b);
      else if (simd)
        sf_score_prepare_avx2(xg, 0, nb, y + i0, x + i0, mult[m], b);
      else
#endif
        sf_score_prepare(xg, 0, nb, y + i0, x + i0, mult[m], b);
      for (int t0 = 0, n_group; t0 < n_tables; t0 += n_group) {
        n_group = sf_score_group(n_tables - t0);
        for (int t = t0; t < t0 + n_group; t++) {
          double *d0 = d0_tj + (size_t)(t - t0) * SF_SCORE_BLOCK;
#ifdef SF_X86
          if (wide) {
            sf_score_d0_avx512(coefs[t], nb, b, d0);
            continue;
          }
          if (simd) {
            sf_score_d0_avx2(coefs[t], nb, b, d0);
            continue;
          }
#endif
          sf_score_d0(coefs[t], 0, nb, b, d0);
        }
        sf_score_sums(n_group, nb, d0_tj, sum + t0 * n_mult + m, n_mult);
      }
    }
  }
  for (int k = 0; k < n_scores; k++) out_tm[k] = (double)sum[k];
  return 0;
}
