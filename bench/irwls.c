/* Benchmark: IRWLS fits through the CPU backend on synthetic pixels (gamma profiles, counts
 * drawn from a two-type mixture at sigma 0.84), the shapes doublet mode runs: the full fit over
 * all K types (50 iterations), pair fits and singlet fits (score mode, 25 iterations).
 *   irwls [-t THREADS] [-n PIXELS] [-g GENES] [-k TYPES] [-s SEED] [-m all|full|pair|single]
 * Prints one line per fit shape: "irwls k=19 genes=384 fits=500 threads=1 us_per_fit=123.4
 * cpu_us_per_fit=120.1 converged=0.98", then (for -m all) the doublet-mode estimate: pixels per
 * CPU second for one full fit, three pair fits and two singlet fits per pixel. */
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rctd_kernels.h"

static double bi_clock(clockid_t id) {
  struct timespec t;
  clock_gettime(id, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Times one batch of n_fits fits of k_sub types each; returns wall microseconds per fit and
 * stores the CPU microseconds per fit (all threads; immune to time spent descheduled). */
static double bi_run(rctd_backend *be, const rctd_qtable *table, rctd_fit_batch *batch, int n_iter,
                     double *conv_rate, double *cpu_us) {
  rctd_irwls_opts opts = {n_iter, 1e-3, 0, 0};
  double *w = malloc(sizeof(double) * batch->n_fits * batch->k_sub);
  double *score = malloc(sizeof(double) * batch->n_fits);
  int32_t *conv = malloc(sizeof(int32_t) * batch->n_fits);
  double t0 = bi_clock(CLOCK_MONOTONIC), c0 = bi_clock(CLOCK_PROCESS_CPUTIME_ID);
  int rc = be->irwls_batch(be, table, batch, &opts, w, conv, n_iter == 25 ? score : NULL);
  double t1 = bi_clock(CLOCK_MONOTONIC), c1 = bi_clock(CLOCK_PROCESS_CPUTIME_ID);
  *cpu_us = 1e6 * (c1 - c0) / batch->n_fits;
  int n_conv = 0;
  for (int f = 0; f < batch->n_fits; f++) n_conv += conv[f];
  *conv_rate = (double)n_conv / batch->n_fits;
  free(w);
  free(score);
  free(conv);
  if (rc != 0) {
    fprintf(stderr, "irwls: batch failed\n");
    exit(1);
  }
  return 1e6 * (t1 - t0) / batch->n_fits;
}

int main(int argc, char **argv) {
  int n_threads = 1, n_pix = 500, G = 384, K = 19;
  unsigned long seed = 1;
  const char *mode = "all";
  int opt;
  while ((opt = getopt(argc, argv, "t:n:g:k:s:m:")) != -1) {
    switch (opt) {
      case 't':
        n_threads = atoi(optarg);
        break;
      case 'n':
        n_pix = atoi(optarg);
        break;
      case 'g':
        G = atoi(optarg);
        break;
      case 'k':
        K = atoi(optarg);
        break;
      case 's':
        seed = strtoul(optarg, NULL, 10);
        break;
      case 'm':
        mode = optarg;
        break;
      default:
        fprintf(stderr,
                "usage: irwls [-t THREADS] [-n PIXELS] [-g GENES] [-k TYPES] [-s SEED] "
                "[-m all|full|pair|single]\n");
        return 2;
    }
  }
  if (n_threads < 1 || n_pix < 1 || G < 1 || K < 2) {
    fprintf(stderr, "irwls: invalid option value\n");
    return 2;
  }
  gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
  gsl_rng_set(rng, seed);
  double *profiles = malloc(sizeof(double) * G * K);
  for (int k = 0; k < K; k++) {
    double sum = 0;
    for (int g = 0; g < G; g++) sum += profiles[g * K + k] = gsl_ran_gamma(rng, 0.4, 1.0);
    for (int g = 0; g < G; g++) profiles[g * K + k] /= sum;
  }
  double *y = malloc(sizeof(double) * n_pix * G), *numi = malloc(sizeof(double) * n_pix);
  int32_t *pix = malloc(sizeof(int32_t) * n_pix), *pairs = malloc(sizeof(int32_t) * 2 * n_pix);
  int32_t *single = malloc(sizeof(int32_t) * n_pix);
  double y_max = 0;
  for (int p = 0; p < n_pix; p++) {
    int a = (int)gsl_rng_uniform_int(rng, K), b = (int)gsl_rng_uniform_int(rng, K);
    double frac = gsl_rng_uniform(rng);
    numi[p] = 300 + gsl_rng_uniform(rng) * 2700;
    pix[p] = p;
    pairs[2 * p] = a < b ? a : b;
    pairs[2 * p + 1] = a < b ? b : (a + 1) % K;
    if (pairs[2 * p + 1] == pairs[2 * p]) pairs[2 * p + 1] = (pairs[2 * p] + 1) % K;
    single[p] = a;
    for (int g = 0; g < G; g++) {
      double lam = numi[p] * (frac * profiles[g * K + a] + (1 - frac) * profiles[g * K + b]);
      lam *= exp(gsl_ran_gaussian(rng, 0.84));
      y[p * G + g] = gsl_ran_poisson(rng, lam);
      y_max = fmax(y_max, y[p * G + g]);
    }
  }
  int n_k = (int)fmin(y_max, RCTD_K_VAL) + 1;
  double x_vals[RCTD_N_X];
  rctd_x_grid(x_vals);
  double *q = malloc(sizeof(double) * RCTD_N_X * n_k),
         *sq = malloc(sizeof(double) * RCTD_N_X * n_k);
  rctd_backend *be = rctd_backend_cpu(n_threads);
  if (be->qtable(be, 0.84, n_k, q, sq) != 0) {
    fprintf(stderr, "irwls: table failed\n");
    return 1;
  }
  rctd_qtable table = {n_k, x_vals, q, sq};

  rctd_fit_batch full = {G, K, profiles, n_pix, y, numi, n_pix, K, pix, NULL};
  rctd_fit_batch pair = {G, K, profiles, n_pix, y, numi, n_pix, 2, pix, pairs};
  rctd_fit_batch one = {G, K, profiles, n_pix, y, numi, n_pix, 1, pix, single};
  int all = strcmp(mode, "all") == 0;
  struct {
    const char *name;
    rctd_fit_batch *batch;
    int n_iter;
    double cpu_us;
  } shapes[3] = {{"full", &full, 50, 0}, {"pair", &pair, 25, 0}, {"single", &one, 25, 0}};
  for (int i = 0; i < 3; i++) {
    if (!all && strcmp(mode, shapes[i].name) != 0) continue;
    double conv, cpu_us;
    double wall_us = bi_run(be, &table, shapes[i].batch, shapes[i].n_iter, &conv, &cpu_us);
    shapes[i].cpu_us = cpu_us;
    printf(
        "irwls k=%d genes=%d fits=%d threads=%d us_per_fit=%.1f cpu_us_per_fit=%.1f "
        "converged=%.3f\n",
        shapes[i].batch->k_sub, G, n_pix, n_threads, wall_us, cpu_us, conv);
  }
  if (all) {
    /* Doublet mode per pixel: the full fit, ~3 candidate pairs and ~2 singlets (spacexr's final
     * doublet weights reuse the best pair's fit). */
    double cpu_doublet = shapes[0].cpu_us + 3 * shapes[1].cpu_us + 2 * shapes[2].cpu_us;
    printf("irwls doublet_estimate pixels_per_cpu_second=%.0f\n", 1e6 / cpu_doublet);
  }
  be->destroy(be);
  gsl_rng_free(rng);
  free(profiles);
  free(y);
  free(numi);
  free(pix);
  free(pairs);
  free(single);
  free(q);
  free(sq);
  return 0;
}
