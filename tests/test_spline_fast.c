/* kernels/cpu/spline_fast: the IRWLS loop's calc_Q_all against the exact path (rctd_spline_eval,
 * R's bits), SIMD against scalar bit for bit, and the pairs it hands to the exact path. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/poison.h"
#include "cpu/irwls.h"
#include "cpu/spline_fast.h"
#include "cpu/spline_fast_avx512.h"
#include "rctd_kernels.h"
#include "test.h"

typedef struct {
  double x[RCTD_N_X];
  double *q, *sq;
  rctd_qtable table;
} sft_table;

static int sft_table_init(sft_table *t, double sigma, int n_k) {
  rctd_x_grid(t->x);
  t->q = malloc((size_t)n_k * RCTD_N_X * sizeof(double));
  t->sq = malloc((size_t)n_k * RCTD_N_X * sizeof(double));
  if (!t->q || !t->sq || rctd_qtable_rows(sigma, t->x, 0, n_k, t->q, t->sq) != 0) return -1;
  t->table = (rctd_qtable){n_k, t->x, t->q, t->sq};
  return 0;
}

static void sft_table_free(sft_table *t) {
  free(t->q);
  free(t->sq);
}

/* Pairs over the whole lambda range (clamps included), small and clipped counts. */
static void sft_pairs(int n, int n_k, double *y, double *lam) {
  srand(7);
  for (int i = 0; i < n; i++) {
    double u = rand() / (double)RAND_MAX;
    lam[i] = exp(log(1e-5) + u * (log(2000.0) - log(1e-5)));
    int r = rand() % 10;
    y[i] = r < 6 ? 0 : r < 9 ? rand() % 30 : rand() % (n_k + 200);
  }
  lam[0] = 0;
  lam[1] = 1e-4;
  lam[2] = 1600;
  lam[3] = 1e-6 * 2500; /* a node: l = 50 exactly */
}

/* One test's table and buffers: n pairs (y, lam), outputs a and b (3 n each: d0, d1, d2),
 * room for the table's coefficients. */
typedef struct {
  sft_table t;
  double *y, *lam, *a, *b, *coef;
} sft_case;

static int sft_case_init(sft_case *c, double sigma, int n, int n_k) {
  c->y = malloc(n * sizeof(double));
  c->lam = malloc(n * sizeof(double));
  c->a = malloc(3 * n * sizeof(double));
  c->b = malloc(3 * n * sizeof(double));
  c->coef = malloc(rctd_spline_coef_doubles(n_k) * sizeof(double));
  if (sft_table_init(&c->t, sigma, n_k) != 0 || !c->y || !c->lam || !c->a || !c->b || !c->coef)
    return -1;
  sft_pairs(n, n_k, c->y, c->lam);
  return 0;
}

static void sft_case_free(sft_case *c) {
  rctd_spline_coef_detach(&c->t.table);
  free(c->coef);
  free(c->y);
  free(c->lam);
  free(c->a);
  free(c->b);
  sft_table_free(&c->t);
}

/* Pairs whose values differ from the exact path's bits: only where glibc's pow(x, 3) is not
 * the correctly rounded cube, which random pairs essentially never meet. */
static int sft_bits_differ(int n, const double *a, const double *b) {
  int count = 0;
  for (int i = 0; i < n; i++) count += memcmp(&a[i], &b[i], sizeof(double)) != 0;
  return count;
}

TEST(spline_fast_equals_exact_path) {
  enum { N = 20000 };
  const int n_k = 300;
  sft_case c;
  CHECK(sft_case_init(&c, 0.84, N, n_k) == 0);
  double *y = c.y, *lam = c.lam, *a = c.a, *b = c.b, *coef = c.coef;
  for (int i = 0; i < N; i++)
    if (y[i] >= n_k) y[i] = n_k - 1; /* on the table */
  rctd_spline_eval(&c.t.table, N, y, lam, a, a + N, a + 2 * N);
  /* without coefficients (computed per pair), then with them attached */
  for (int attached = 0; attached < 2; attached++) {
    if (attached) {
      rctd_spline_coef_build(&c.t.table, coef);
      CHECK(rctd_spline_coef_attach(&c.t.table, coef) == 0);
    }
    memset(b, 0, 3 * N * sizeof(double));
    rctd_spline_eval_fast(&c.t.table, N, y, lam, b, b + N, b + 2 * N);
    int n0 = sft_bits_differ(N, a, b), n1 = sft_bits_differ(N, a + N, b + N),
        n2 = sft_bits_differ(N, a + 2 * N, b + 2 * N);
    if (getenv("RCTD_TEST_VERBOSE"))
      fprintf(stderr, "  spline_fast (%s coefficients) vs exact: %d, %d, %d of %d differ\n",
              attached ? "attached" : "no", n0, n1, n2, N);
    CHECK_MSG(n1 == 0 && n2 == 0 && n0 <= 2, "d0 %d, d1 %d, d2 %d values differ", n0, n1, n2);
  }
  sft_case_free(&c);
}

TEST(spline_fast_simd_equals_scalar_and_handles_odd_pairs) {
  enum { N = 4099 };
  const int n_k = 120;
  sft_case c;
  CHECK(sft_case_init(&c, 1.0, N, n_k) == 0);
  double *y = c.y, *lam = c.lam, *a = c.a, *b = c.b, *coef = c.coef;
  /* pairs the fast path must hand over: NaN lambda, negative count, counts off the table */
  lam[17] = NAN;
  y[33] = -1;
  y[34] = n_k;
  y[35] = n_k - 0.5;
  rctd_spline_coef_build(&c.t.table, coef);
  CHECK(rctd_spline_coef_attach(&c.t.table, coef) == 0);
  int had_simd = rctd_cpu_simd(1);
  rctd_spline_eval_fast(&c.t.table, N, y, lam, a, a + N, a + 2 * N);
  rctd_cpu_simd(0);
  rctd_spline_eval_fast(&c.t.table, N, y, lam, b, b + N, b + 2 * N);
  rctd_cpu_simd(had_simd);
  CHECK(memcmp(a, b, 3 * N * sizeof(double)) == 0);
  CHECK(isnan(a[17]) && isnan(a[33]) && isnan(a[34]) && !isnan(a[35]));
  for (int i = 0; i < N; i++) CHECK(y[i] >= n_k || y[i] < 0 || i == 17 || isfinite(a[i]));
  /* NULL d1 / d2 give the same d0 */
  rctd_spline_eval_fast(&c.t.table, N, y, lam, b, NULL, NULL);
  CHECK(memcmp(a, b, N * sizeof(double)) == 0);
  sft_case_free(&c);
}

/* The eight-wide AVX-512 lanes against the AVX2 lanes and the scalar path, bit for bit: every
 * length from 1 to 40 at every offset mod 8 (the tails after the groups of eight and four), the
 * clamps and the interval ends, and the pairs handed to the exact path (NaN lambda, negative
 * count, count without a row) in every position of a group of eight. */
TEST(spline_fast_avx512_equals_avx2_and_scalar) {
  enum { N = 600 };
  const int n_k = 50;
  sft_case c;
  CHECK(sft_case_init(&c, 0.84, N, n_k) == 0);
  double *y = c.y, *lam = c.lam, *coef = c.coef;
  for (int i = 4; i < N; i += 7) { /* nodes, their neighbours, the clamps */
    const double v = (double)(i * 13) * (i * 13) * 1e-6;
    lam[i] = i % 3 == 0 ? v : i % 3 == 1 ? nextafter(v, 0) : nextafter(v, 2e3);
  }
  lam[5] = -3, lam[6] = 1e-300, lam[7] = 1e9, lam[8] = INFINITY, lam[9] = 1600 - 1e-4;
  for (int p = 0; p < 8; p++) { /* off the fast path, lane p of groups at 200 + 8 (3 p + r) */
    lam[200 + 8 * (3 * p) + p] = NAN;
    y[200 + 8 * (3 * p + 1) + p] = -1;
    y[200 + 8 * (3 * p + 2) + p] = n_k;
  }
  rctd_spline_coef_build(&c.t.table, coef);
  CHECK(rctd_spline_coef_attach(&c.t.table, coef) == 0);
  const int had_simd = rctd_cpu_simd(1), had_512 = rctd_cpu_avx512(1);
  double *out[3];
  for (int mode = 0; mode < 3; mode++) { /* scalar, AVX2, AVX-512 */
    out[mode] = malloc(3 * N * sizeof(double));
    CHECK(out[mode]);
    rctd_cpu_simd(mode > 0);
    rctd_cpu_avx512(mode > 1);
    double *o = out[mode];
    for (int i = 0; i < 3 * N; i++) o[i] = -7;
    for (int len = 1; len <= 40; len++) /* pieces of every length, ends unaligned */
      for (int at = 0; at + len <= 120; at += 40)
        rctd_spline_eval_fast(&c.t.table, len, y + at + len % 8, lam + at + len % 8,
                              o + at + len % 8, o + N + at + len % 8, o + 2 * N + at + len % 8);
    rctd_spline_eval_fast(&c.t.table, N - 128, y + 128, lam + 128, o + 128, o + N + 128,
                          o + 2 * N + 128);
  }
  rctd_cpu_simd(had_simd);
  rctd_cpu_avx512(had_512);
  CHECK(memcmp(out[0], out[1], 3 * N * sizeof(double)) == 0);
  CHECK(memcmp(out[0], out[2], 3 * N * sizeof(double)) == 0);
  CHECK(isnan(out[2][200]) && isnan(out[2][200 + 8 + 0]) && isnan(out[2][200 + 16 + 0]));
  if (getenv("RCTD_TEST_VERBOSE"))
    fprintf(stderr, "  AVX-512 lanes %s\n", had_512 ? "compared" : "absent (AVX2 twice)");
  for (int mode = 0; mode < 3; mode++) free(out[mode]);
  sft_case_free(&c);
}

#if defined(__x86_64__) && defined(__GNUC__)
/* rctd_sf8_div6 against the division, eight values per call: counts the lanes that differ. */
RCTD_SF8_TARGET static int sft_div6_differ(int n, const double *p) {
  int bad = 0;
  for (int i = 0; i + 8 <= n; i += 8) {
    double a[8], b[8];
    const __m512d v = _mm512_loadu_pd(p + i);
    _mm512_storeu_pd(a, rctd_sf8_div6(v));
    _mm512_storeu_pd(b, _mm512_div_pd(v, _mm512_set1_pd(6)));
    for (int l = 0; l < 8; l++) bad += memcmp(&a[l], &b[l], sizeof(double)) != 0;
  }
  return bad;
}
#endif

/* The lanes' p / 6 without a division (the proof is at rctd_sf8_div6): its constants, and the
 * division's bits on edge values (zeros, subnormals, the 2^-900 threshold, DBL_MAX, inf, NaN,
 * exact quotients, their neighbours) and on random bit patterns of every exponent. */
TEST(spline_fast_div6_equals_division) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (!__builtin_cpu_supports("avx512f")) return;
  const double hi = 1.0 / 6;
  CHECK(RCTD_SF8_SIXTH_HI == hi && RCTD_SF8_SIXTH_LO == fma(-hi, 6, 1) / 6);
  enum { N = 1 << 21 };
  double *p = malloc(sizeof(double) * N);
  CHECK(p);
  int n = 0;
  const double edge[] = {0,
                         0x1p-1074,
                         0x1p-1022,
                         0x1p-900,
                         0x1.0000000000001p-900,
                         0x1.fffffffffffffp-901,
                         1,
                         3,
                         6,
                         0x1.fffffffffffffp+1023,
                         INFINITY,
                         NAN};
  for (size_t e = 0; e < sizeof edge / sizeof edge[0]; e++) {
    p[n++] = edge[e];
    p[n++] = -edge[e];
  }
  for (int k = -1074; k <= 1020; k++) /* exact quotients 6 2^k, 3 2^k and their neighbours */
    for (int f = 3; f <= 6; f += 3) {
      const double v = ldexp(f, k);
      p[n++] = v;
      p[n++] = nextafter(v, 0);
      p[n++] = -nextafter(v, INFINITY);
    }
  uint64_t st = 0x2545f4914f6cdd1dULL;
  while (n < N) {
    st ^= st << 13, st ^= st >> 7, st ^= st << 17;
    double v;
    uint64_t bits = st;
    if (n % 2) /* exponents in the threshold's and the results' working range */
      bits = (bits & 0x800fffffffffffffULL) | (uint64_t)(100 + (st >> 52) % 1900) << 52;
    memcpy(&v, &bits, sizeof v);
    p[n++] = v;
  }
  CHECK_MSG(sft_div6_differ(n - n % 8, p) == 0, "p / 6 differs from the division");
  free(p);
#endif
}

/* Whole IRWLS fits (Hessian, prediction and spline on their SIMD paths, or not): same bits. */
TEST(irwls_simd_equals_scalar) {
  const int G = 383, n_k = 200; /* G not a multiple of 4: the tails run too */
  sft_table t;
  CHECK(sft_table_init(&t, 0.84, n_k) == 0);
  static const int ks[] = {1, 2, 3, 7, 19};
  double *coef = malloc(rctd_spline_coef_doubles(n_k) * sizeof(double));
  rctd_spline_coef_build(&t.table, coef);
  CHECK(rctd_spline_coef_attach(&t.table, coef) == 0);
  srand(11);
  for (int a = 0; a < 5; a++) {
    const int K = ks[a];
    double *S = malloc((size_t)G * K * sizeof(double)), *y = malloc(G * sizeof(double));
    void *ws = malloc(rctd_irwls_workspace_bytes(G, K));
    double w_simd[19], w_plain[19], w_avx2[19];
    CHECK(S && y && ws);
    for (int rep = 0; rep < 4; rep++) {
      for (int i = 0; i < G * K; i++) S[i] = (rand() % 4 == 0) ? 0 : 3.0 * rand() / RAND_MAX;
      for (int g = 0; g < G; g++) y[g] = rand() % 3 == 0 ? rand() % 12 : 0;
      rctd_irwls_opts o = {.n_iter = 50, .min_change = 1e-3};
      int had = rctd_cpu_simd(1), had512 = rctd_irwls_avx512(-1);
      int c1 = rctd_irwls_fit(&t.table, G, K, S, y, 500, &o, NULL, w_simd, ws);
      rctd_irwls_avx512(0); /* AVX2 kernels */
      int c3 = rctd_irwls_fit(&t.table, G, K, S, y, 500, &o, NULL, w_avx2, ws);
      rctd_irwls_avx512(had512);
      rctd_cpu_simd(0);
      int c2 = rctd_irwls_fit(&t.table, G, K, S, y, 500, &o, NULL, w_plain, ws);
      rctd_cpu_simd(had);
      CHECK_MSG(c1 == c2 && c3 == c2 && memcmp(w_simd, w_plain, K * sizeof(double)) == 0 &&
                    memcmp(w_avx2, w_plain, K * sizeof(double)) == 0,
                "K %d: SIMD and scalar fits differ (%.17g, AVX2 %.17g vs %.17g)", K, w_simd[0],
                w_avx2[0], w_plain[0]);
    }
    free(S);
    free(y);
    free(ws);
  }
  rctd_spline_coef_detach(&t.table);
  free(coef);
  sft_table_free(&t);
}

/* The warm-started QP (the previous solve's working set as the start) reaches the cold solve's
 * minimiser, whatever working set the workspace holds. */
TEST(qp_warm_start_reaches_the_same_minimiser) {
  enum { KMAX = 19 };
  double D[KMAX * KMAX], A[KMAX * KMAX], d[KMAX], lower[KMAX], x_cold[KMAX], x_warm[KMAX];
  void *ws = malloc(rctd_qp_workspace_bytes(KMAX));
  CHECK(ws);
  srand(5);
  double worst = 0;
  int n_bits_differ = 0;
  for (int rep = 0; rep < 300; rep++) {
    const int k = 3 + rep % (KMAX - 2);
    for (int i = 0; i < k * k; i++) A[i] = 2.0 * rand() / RAND_MAX - 1;
    for (int i = 0; i < k; i++)
      for (int j = 0; j < k; j++) {
        double sum = i == j ? 0.05 : 0;
        for (int p = 0; p < k; p++) sum += A[i * k + p] * A[j * k + p];
        D[i * k + j] = sum;
      }
    for (int i = 0; i < k; i++) {
      d[i] = 2.0 * rand() / RAND_MAX - 1;
      lower[i] = rand() % 2 ? 0 : -0.2 * rand() / RAND_MAX;
    }
    CHECK(rctd_qp_solve(k, D, d, lower, 0, 0, x_cold, ws) == 0);
    /* the workspace now holds the cold solve's set; also start from a scrambled one */
    for (int scramble = 0; scramble < 2; scramble++) {
      if (scramble) {
        double junk[KMAX];
        for (int i = 0; i < k; i++) junk[i] = 2.0 * rand() / RAND_MAX - 1;
        CHECK(rctd_qp_solve(k, D, junk, lower, 0, 0, x_warm, ws) == 0);
      }
      CHECK(rctd_qp_solve_warm(k, D, d, lower, 0, 0, x_warm, ws, 1) == 0);
      for (int i = 0; i < k; i++) {
        worst = fmax(worst, fabs(x_warm[i] - x_cold[i]));
        n_bits_differ += memcmp(&x_warm[i], &x_cold[i], sizeof(double)) != 0;
      }
    }
  }
  if (getenv("RCTD_TEST_VERBOSE"))
    fprintf(stderr, "  qp warm vs cold: worst |x| difference %.3g, %d values not bit-equal\n",
            worst, n_bits_differ);
  CHECK_MSG(worst < 1e-12, "warm and cold minimisers differ by %g", worst);
  free(ws);
}

/* Any output may be left out; the others keep their bits. */
TEST(spline_fast_optional_outputs) {
  enum { N = 1001 };
  const int n_k = 60;
  sft_case c;
  CHECK(sft_case_init(&c, 0.84, N, n_k) == 0);
  double *y = c.y, *lam = c.lam, *a = c.a, *b = c.b, *coef = c.coef;
  rctd_spline_coef_build(&c.t.table, coef);
  for (int attached = 0; attached < 2; attached++) {
    if (attached) CHECK(rctd_spline_coef_attach(&c.t.table, coef) == 0);
    rctd_spline_eval_fast(&c.t.table, N, y, lam, a, a + N, a + 2 * N);
    memset(b, 0, 3 * N * sizeof(double));
    rctd_spline_eval_fast(&c.t.table, N, y, lam, NULL, b + N, b + 2 * N);
    CHECK(memcmp(a + N, b + N, 2 * N * sizeof(double)) == 0);
    for (int i = 0; i < N; i++) CHECK(b[i] == 0);
    rctd_spline_eval_fast(&c.t.table, N, y, lam, b, NULL, NULL);
    CHECK(memcmp(a, b, N * sizeof(double)) == 0);
  }
  sft_case_free(&c);
}

/* Coefficients built for some rows only (chooseSigma's sample) equal the full build on those
 * rows, and leave the other rows' records untouched (poisoned in the sanitizer build, where
 * reading them would fail: there they are checked poisoned instead). */
TEST(spline_coef_build_rows_builds_only_flagged_rows) {
  const int n_k = 40;
  const size_t per_row = (RCTD_N_X - 1) * 4, n = rctd_spline_coef_doubles(n_k);
  sft_table t;
  double *all = malloc(n * sizeof(double)), *some = malloc(n * sizeof(double));
  unsigned char used[40] = {0};
  CHECK(all && some && sft_table_init(&t, 0.62, n_k) == 0);
  used[0] = used[1] = used[7] = used[n_k - 1] = 1;
  rctd_spline_coef_build(&t.table, all);
  for (size_t i = 0; i < n; i++) some[i] = -12345.0;
  rctd_spline_coef_build_rows(&t.table, used, some);
  int wrong = 0, touched = 0;
  for (int k = 0; k < n_k; k++)
    for (size_t i = k * per_row; i < (k + 1) * per_row; i++) {
      if (used[k])
        wrong += memcmp(&all[i], &some[i], sizeof(double)) != 0;
      else if (RCTD_ASAN_ON)
        touched += !RCTD_IS_POISONED(&some[i]);
      else
        touched += some[i] != -12345.0;
    }
  CHECK_MSG(wrong == 0 && touched == 0, "%d flagged values differ, %d others written", wrong,
            touched);
  sft_table_free(&t);
  free(all);
  free(some);
}

/* chooseSigma's one-pass scores equal calc_log_l_vec(X * m, Y) table by table (the exact path's
 * d0 summed in order, as rctd_sigma_log_l does), bit for bit, with or without SIMD, for a length
 * that is not a multiple of the blocks; an off-table count sends the caller back to the
 * table-by-table path.  The table counts cover every grouping of the sums: 17 (chooseSigma's
 * candidates: 4 + 4 + 3 + 3 + 3), 7 (4 + 3), 5 (4 + 1), 3, 2 (1 + 1) and 1. */
TEST(spline_score_many_equals_log_l) {
  enum { N = 1037, N_K = 12, N_TAB = 17, N_MULT = 5 }; /* few rows: 17 tables to compute */
  const int n_tabs[] = {17, 7, 5, 3, 2, 1};
  const double mult[N_MULT] = {0.8, 0.9, 1.0, 1.1, 1.2};
  sft_table t[N_TAB];
  double *coef[N_TAB], *y = malloc(N * sizeof(double)), *x = malloc(N * sizeof(double));
  double *lam = malloc(N * sizeof(double));
  CHECK(y && x && lam);
  for (int k = 0; k < N_TAB; k++) {
    CHECK(sft_table_init(&t[k], 0.3 + 0.09 * k, N_K) == 0);
    coef[k] = malloc(rctd_spline_coef_doubles(N_K) * sizeof(double));
    CHECK(coef[k]);
    rctd_spline_coef_build(&t[k].table, coef[k]);
  }
  sft_pairs(N, N_K, y, x);
  for (int i = 0; i < N; i++)
    if (y[i] >= N_K) y[i] = N_K - 1;
  const rctd_qtable *tabs[N_TAB];
  const double *coefs[N_TAB];
  for (int k = 0; k < N_TAB; k++) tabs[k] = &t[k].table, coefs[k] = coef[k];
  double want[N_TAB * N_MULT]; /* each score, whatever the number of tables scored with it */
  for (int k = 0; k < N_TAB; k++)
    for (int m = 0; m < N_MULT; m++) {
      long double sum = 0;
      for (int i = 0; i < N; i++) {
        double d0;
        lam[i] = x[i] * mult[m];
        rctd_spline_eval(tabs[k], 1, &y[i], &lam[i], &d0, NULL, NULL);
        sum += -d0;
      }
      want[k * N_MULT + m] = (double)sum;
    }
  const int was = rctd_cpu_simd(-1), was_512 = rctd_cpu_avx512(1);
  for (int simd = 0; simd < 3; simd++) { /* scalar, AVX2, AVX-512 (where the CPU has it) */
    rctd_cpu_simd(simd > 0);
    rctd_cpu_avx512(simd > 1);
    for (size_t c = 0; c < sizeof n_tabs / sizeof n_tabs[0]; c++) {
      const int n_tab = n_tabs[c];
      double out[N_TAB * N_MULT];
      CHECK(rctd_spline_score_many(tabs, coefs, n_tab, mult, N_MULT, N, y, x, out) == 0);
      for (int k = 0; k < n_tab * N_MULT; k++)
        CHECK_MSG(out[k] == want[k], "%d tables: table %d mult %d simd %d: %.17g vs %.17g", n_tab,
                  k / N_MULT, k % N_MULT, simd, out[k], want[k]);
    }
  }
  rctd_cpu_simd(was);
  rctd_cpu_avx512(was_512);
  double out[N_TAB * N_MULT] = {0};
  /* more than 128 scores (17 x 8); 2^16 tables x 2^16 multipliers, a product that wraps to 0 as
   * an int (no pixel: a wrong success would return at once) */
  CHECK(rctd_spline_score_many(tabs, coefs, N_TAB, mult, 8, N, y, x, out) == -1);
  enum { N_WRAP = 1 << 16 };
  const rctd_qtable **wrap_t = malloc(N_WRAP * sizeof *wrap_t);
  const double **wrap_c = malloc(N_WRAP * sizeof *wrap_c);
  CHECK(wrap_t && wrap_c);
  for (int k = 0; k < N_WRAP; k++) wrap_t[k] = tabs[0], wrap_c[k] = coefs[0];
  CHECK(rctd_spline_score_many(wrap_t, wrap_c, N_WRAP, mult, N_WRAP, 0, y, x, out) == -1);
  free(wrap_t);
  free(wrap_c);
  y[N / 2] = N_K; /* no row for it */
  CHECK(rctd_spline_score_many(tabs, coefs, N_TAB, mult, N_MULT, N, y, x, out) == -1 &&
        out[0] == 0);
  for (int k = 0; k < N_TAB; k++) {
    sft_table_free(&t[k]);
    free(coef[k]);
  }
  free(y);
  free(x);
  free(lam);
}
