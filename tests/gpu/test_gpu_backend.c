/* CUDA backend against the CPU backend (make test-gpu; needs an NVIDIA GPU).
 *
 * The fits use one likelihood table (the CPU's) for both backends, so any difference is the
 * fit kernels'.  k_sub <= 2 fits must be bit-identical; larger fits (whose psd() eigenvectors
 * come from different eigensolvers) must agree in every flag and to 1e-8 in every weight. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../test.h"
#include "gpu_synth.h"
#include "rctd_kernels.h"
#ifdef RCTD_HAVE_CUDA
#include "cuda/rctd_cuda.h"
#include "cuda_select.h"
#endif

#define GT_SIGMA 1.0
#define GT_N_PIX 4000
#define GT_WEIGHT_TOL 1e-8
#define GT_SCORE_RTOL 1e-10

#ifdef RCTD_HAVE_CUDA

static int gt_verbose(void) {
  return getenv("RCTD_TEST_VERBOSE") != NULL;
}

typedef struct {
  int ok;
  gpu_ref ref;
  gpu_synth px;
  gpu_table table;
  rctd_backend *cpu, *gpu;
} gt_fixture;

static gt_fixture gt;

static int gt_load(char *err, size_t err_len) {
  if (gt.ok) return 0;
  if (gpu_ref_load(test_repo_dir(), &gt.ref, err, err_len) != 0) return -1;
  if (gpu_synth_make(&gt.ref, GT_N_PIX, 42, &gt.px) != 0) {
    snprintf(err, err_len, "synthetic pixels");
    return -1;
  }
  gt.cpu = rctd_backend_cpu(gpu_n_cpus());
  gt.gpu = rctd_backend_cuda(NULL, 0, err, err_len);
  if (!gt.cpu || !gt.gpu) return -1;
  if (gpu_table_make(gt.cpu, GT_SIGMA, gpu_table_rows_for(gt.px.max_count), &gt.table) != 0) {
    snprintf(err, err_len, "CPU table");
    return -1;
  }
  gt.ok = 1;
  return 0;
}

/* Results of one batch on one backend. */
typedef struct {
  double *w, *score;
  int32_t *conv;
} gt_out;

static void gt_out_free(gt_out *o) {
  free(o->w);
  free(o->score);
  free(o->conv);
}

static int gt_run(rctd_backend *be, const rctd_fit_batch *b, int n_iter, int with_score,
                  gt_out *o) {
  o->w = malloc((size_t)b->n_fits * b->k_sub * sizeof(double));
  o->score = malloc((size_t)b->n_fits * sizeof(double));
  o->conv = malloc((size_t)b->n_fits * sizeof(int32_t));
  if (!o->w || !o->score || !o->conv) return -1;
  for (int i = 0; i < b->n_fits * b->k_sub; i++) o->w[i] = -12345;
  for (int i = 0; i < b->n_fits; i++) o->score[i] = -12345, o->conv[i] = -7;
  rctd_irwls_opts opts = {.n_iter = n_iter, .min_change = 1e-3, .constrain = 0, .bulk_mode = 0};
  return be->irwls_batch(be, &gt.table.table, b, &opts, o->w, o->conv,
                         with_score ? o->score : NULL);
}

/* A batch over the fixture pixels: n_fits fits of k_sub types (random distinct types, or all
 * types in order when k_sub == K), pixels in order with `per_pix` fits each. */
typedef struct {
  rctd_fit_batch b;
  int32_t *pix_f, *types_fk;
} gt_batch;

static void gt_batch_free(gt_batch *g) {
  free(g->pix_f);
  free(g->types_fk);
}

static int gt_batch_make(int k_sub, int n_pix, int per_pix, uint64_t seed, gt_batch *g) {
  const int K = gt.ref.n_types, n = n_pix * per_pix;
  memset(g, 0, sizeof *g);
  g->pix_f = malloc((size_t)n * sizeof(int32_t));
  g->types_fk = k_sub < K ? malloc((size_t)n * k_sub * sizeof(int32_t)) : NULL;
  if (!g->pix_f || (k_sub < K && !g->types_fk)) return -1;
  uint64_t x = seed * 2654435761u + 1;
  for (int f = 0; f < n; f++) {
    g->pix_f[f] = f / per_pix;
    for (int j = 0; g->types_fk && j < k_sub; j++) {
      for (;;) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        int t = (int)((x >> 33) % (uint64_t)K), dup = 0;
        for (int i = 0; i < j; i++) dup |= g->types_fk[(size_t)f * k_sub + i] == t;
        if (!dup) {
          g->types_fk[(size_t)f * k_sub + j] = t;
          break;
        }
      }
    }
  }
  g->b = (rctd_fit_batch){.n_genes = gt.ref.n_genes,
                          .n_types = K,
                          .profiles_gk = gt.ref.profiles_gk,
                          .n_pix = gt.px.n_pix,
                          .y_ng = gt.px.y_ng,
                          .numi_n = gt.px.numi_n,
                          .n_fits = n,
                          .k_sub = k_sub,
                          .pix_f = g->pix_f,
                          .types_fk = g->types_fk};
  return 0;
}

/* Compares two results: counts of bit-identical weights/scores, max differences. */
typedef struct {
  int n_conv_diff;
  long n_w_bits_diff, n_s_bits_diff;
  double w_max, s_rel_max;
} gt_cmp;

static gt_cmp gt_compare(const rctd_fit_batch *b, const gt_out *a, const gt_out *c,
                         int with_score) {
  gt_cmp r = {0, 0, 0, 0, 0};
  for (int f = 0; f < b->n_fits; f++) {
    r.n_conv_diff += a->conv[f] != c->conv[f];
    for (int j = 0; j < b->k_sub; j++) {
      double x = a->w[(size_t)f * b->k_sub + j], y = c->w[(size_t)f * b->k_sub + j];
      r.n_w_bits_diff += memcmp(&x, &y, sizeof x) != 0;
      double d = fabs(x - y);
      if (isnan(x) != isnan(y)) d = INFINITY;
      if (d > r.w_max) r.w_max = d;
    }
    if (with_score) {
      double x = a->score[f], y = c->score[f];
      r.n_s_bits_diff += memcmp(&x, &y, sizeof x) != 0;
      double d = fabs(x - y) / fmax(fabs(y), 1e-300);
      if (isnan(x) != isnan(y)) d = INFINITY;
      if (d > r.s_rel_max) r.s_rel_max = d;
    }
  }
  return r;
}

static void gt_report(const char *what, const rctd_fit_batch *b, gt_cmp r) {
  if (!gt_verbose()) return;
  fprintf(stderr,
          "  %s: %d fits k=%d: conv diffs %d, weights not bit-equal %ld (max |diff| %.3g), "
          "scores not bit-equal %ld (max rel %.3g)\n",
          what, b->n_fits, b->k_sub, r.n_conv_diff, r.n_w_bits_diff, r.w_max, r.n_s_bits_diff,
          r.s_rel_max);
}

TEST(gpu_backend_creates) {
  char err[256] = "";
  CHECK_MSG(rctd_cuda_device_count() > 0, "no CUDA device: make test-gpu needs an NVIDIA GPU");
  rctd_backend *be = rctd_backend_cuda(NULL, 0, err, sizeof err);
  CHECK_MSG(be != NULL, "%s", err);
  CHECK(strncmp(be->name, "cuda:", 5) == 0);
  CHECK(be->irwls_batch && be->qtable && be->destroy);
  be->destroy(be);
  char note[512] = "";
  be = rctd_backend_open("auto", 2, note, sizeof note, err, sizeof err);
  CHECK_MSG(be && strncmp(be->name, "cuda:0", 6) == 0, "auto chose: %s", note);
  CHECK(strncmp(note, "device cuda:0 (", 15) == 0);
  if (gt_verbose()) fprintf(stderr, "  --device auto: %s\n", note);
  be->destroy(be);
  int bad = 999;
  CHECK(rctd_backend_cuda(&bad, 1, err, sizeof err) == NULL);
  CHECK(strstr(err, "999") != NULL);
}

TEST(gpu_qtable_matches_cpu) {
  char err[256] = "";
  CHECK_MSG(gt_load(err, sizeof err) == 0, "%s", err);
  const double sigmas[] = {0.10, 0.84, 2.00};
  const int n_k = 160;
  for (int s = 0; s < 3; s++) {
    gpu_table c, g;
    CHECK(gpu_table_make(gt.cpu, sigmas[s], n_k, &c) == 0);
    CHECK(gpu_table_make(gt.gpu, sigmas[s], n_k, &g) == 0);
    double q_max = 0, sq_max = 0;
    long q_bits = 0, sq_bits = 0;
    for (int k = 0; k < n_k; k++) {
      double row_scale = 0;
      for (int i = 0; i < RCTD_N_X; i++)
        row_scale = fmax(row_scale, fabs(c.sq_kx[(size_t)k * RCTD_N_X + i]));
      for (int i = 0; i < RCTD_N_X; i++) {
        size_t e = (size_t)k * RCTD_N_X + i;
        q_bits += c.q_kx[e] != g.q_kx[e];
        sq_bits += c.sq_kx[e] != g.sq_kx[e];
        q_max = fmax(q_max, fabs(c.q_kx[e] - g.q_kx[e]) / fmax(1.0, fabs(c.q_kx[e])));
        sq_max = fmax(sq_max, fabs(c.sq_kx[e] - g.sq_kx[e]) / fmax(row_scale, 1e-300));
        CHECK(isfinite(g.q_kx[e]) && isfinite(g.sq_kx[e]));
      }
    }
    if (gt_verbose())
      fprintf(stderr,
              "  qtable sigma %.2f: q differs in %ld of %d cells (max rel %.3g), sq in %ld "
              "(max rel to row %.3g)\n",
              sigmas[s], q_bits, n_k * RCTD_N_X, q_max, sq_bits, sq_max);
    CHECK_MSG(q_max < 1e-13, "sigma %.2f: q differs by %g", sigmas[s], q_max);
    CHECK_MSG(sq_max < 1e-8, "sigma %.2f: sq differs by %g", sigmas[s], sq_max);
    gpu_table_free(&c);
    gpu_table_free(&g);
  }
}

/* k = 1 and k = 2 (doublet mode's singlet and pair fits): bit for bit. */
TEST(gpu_small_fits_bit_identical) {
  char err[256] = "";
  CHECK_MSG(gt_load(err, sizeof err) == 0, "%s", err);
  for (int k_sub = 1; k_sub <= 2; k_sub++) {
    for (int n_iter = 25; n_iter <= 50; n_iter += 25) {
      gt_batch g;
      CHECK(gt_batch_make(k_sub, GT_N_PIX, 2, 7 + k_sub, &g) == 0);
      gt_out a, c;
      CHECK(gt_run(gt.gpu, &g.b, n_iter, 1, &a) == 0);
      CHECK(gt_run(gt.cpu, &g.b, n_iter, 1, &c) == 0);
      gt_cmp r = gt_compare(&g.b, &a, &c, 1);
      gt_report(n_iter == 25 ? "small fits, score mode" : "small fits, 50 iterations", &g.b, r);
      CHECK_MSG(r.n_conv_diff == 0, "%d convergence flags differ", r.n_conv_diff);
      CHECK_MSG(r.n_w_bits_diff == 0, "%ld weights differ (max %g)", r.n_w_bits_diff, r.w_max);
      CHECK_MSG(r.s_rel_max <= 1e-15, "scores differ (max rel %g, %ld not bit-equal)", r.s_rel_max,
                r.n_s_bits_diff);
      gt_out_free(&a);
      gt_out_free(&c);
      gt_batch_free(&g);
    }
  }
}

/* Full fits (all K types) and multi-mode sized subsets with scores. */
TEST(gpu_large_fits_match_cpu) {
  char err[256] = "";
  CHECK_MSG(gt_load(err, sizeof err) == 0, "%s", err);
  const int ks[] = {19, 3, 4, 5, 8, 12};
  for (int i = 0; i < 6; i++) {
    int k_sub = ks[i] > gt.ref.n_types ? gt.ref.n_types : ks[i];
    int n_pix = k_sub == gt.ref.n_types ? GT_N_PIX : GT_N_PIX / 4;
    gt_batch g;
    CHECK(gt_batch_make(k_sub, n_pix, 1, 100 + k_sub, &g) == 0);
    int with_score = k_sub != gt.ref.n_types;
    int n_iter = with_score ? 25 : 50;
    gt_out a, c;
    CHECK(gt_run(gt.gpu, &g.b, n_iter, with_score, &a) == 0);
    CHECK(gt_run(gt.cpu, &g.b, n_iter, with_score, &c) == 0);
    gt_cmp r = gt_compare(&g.b, &a, &c, with_score);
    gt_report("large fits", &g.b, r);
    CHECK_MSG(r.n_conv_diff == 0, "k=%d: %d convergence flags differ", k_sub, r.n_conv_diff);
    CHECK_MSG(r.w_max <= GT_WEIGHT_TOL, "k=%d: weights differ by %g", k_sub, r.w_max);
    CHECK_MSG(r.s_rel_max <= GT_SCORE_RTOL, "k=%d: scores differ by %g", k_sub, r.s_rel_max);
    gt_out_free(&a);
    gt_out_free(&c);
    gt_batch_free(&g);
  }
}

/* Results do not depend on how a batch is cut into launches, nor on the run. */
TEST(gpu_results_independent_of_split) {
  char err[256] = "";
  CHECK_MSG(gt_load(err, sizeof err) == 0, "%s", err);
  rctd_cuda_opts o;
  rctd_cuda_opts_default(&o);
  o.max_fits_per_launch = 37;
  rctd_backend *split = rctd_backend_cuda_ex(NULL, 0, &o, err, sizeof err);
  CHECK_MSG(split != NULL, "%s", err);
  const int ks[] = {2, 19, 4};
  for (int i = 0; i < 3; i++) {
    gt_batch g;
    CHECK(gt_batch_make(ks[i], 600, 2, 5, &g) == 0);
    gt_out a, b2, c;
    CHECK(gt_run(gt.gpu, &g.b, 25, 1, &a) == 0);
    CHECK(gt_run(gt.gpu, &g.b, 25, 1, &b2) == 0);
    CHECK(gt_run(split, &g.b, 25, 1, &c) == 0);
    gt_cmp r1 = gt_compare(&g.b, &a, &b2, 1), r2 = gt_compare(&g.b, &a, &c, 1);
    CHECK(r1.n_conv_diff == 0 && r1.n_w_bits_diff == 0 && r1.n_s_bits_diff == 0);
    CHECK(r2.n_conv_diff == 0 && r2.n_w_bits_diff == 0 && r2.n_s_bits_diff == 0);
    gt_out_free(&a);
    gt_out_free(&b2);
    gt_out_free(&c);
    gt_batch_free(&g);
  }
  split->destroy(split);
}

/* A count beyond the table's rows or a NaN count: NaN weights and scores, flag 0, as the CPU. */
TEST(gpu_bad_counts_give_nan_as_cpu) {
  char err[256] = "";
  CHECK_MSG(gt_load(err, sizeof err) == 0, "%s", err);
  const int G = gt.ref.n_genes;
  double *y = malloc((size_t)3 * G * sizeof(double));
  CHECK(y != NULL);
  memcpy(y, gt.px.y_ng, (size_t)3 * G * sizeof(double));
  y[5] = gt.table.table.n_k + 3; /* pixel 0: off the table */
  y[G + 7] = NAN;                /* pixel 1 */
  int32_t pix[6] = {0, 1, 2, 0, 1, 2}, types[12] = {0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5};
  for (int k_sub = 1; k_sub <= 4; k_sub += 3) {
    rctd_fit_batch b = {G,   gt.ref.n_types, gt.ref.profiles_gk, 3, y, gt.px.numi_n, 3, k_sub,
                        pix, types};
    gt_out a, c;
    CHECK(gt_run(gt.gpu, &b, 25, 1, &a) == 0);
    CHECK(gt_run(gt.cpu, &b, 25, 1, &c) == 0);
    for (int f = 0; f < 3; f++) {
      CHECK(a.conv[f] == c.conv[f]);
      CHECK(isnan(a.score[f]) == isnan(c.score[f]));
      for (int j = 0; j < k_sub; j++) CHECK(isnan(a.w[f * k_sub + j]) == isnan(c.w[f * k_sub + j]));
    }
    CHECK(isnan(a.w[0]) && isnan(a.w[k_sub]) && !isnan(a.w[2 * k_sub]));
    gt_out_free(&a);
    gt_out_free(&c);
  }
  free(y);
}

#else

TEST(gpu_backend_creates) {
  CHECK_MSG(0, "this build has no CUDA backend (nvcc not found or NO_CUDA=1)");
}

#endif
