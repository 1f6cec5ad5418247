/* Helpers of the GPU tests and benchmark (see gpu_synth.h). */
#include "gpu_synth.h"

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "synth.h"

double gpu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int gpu_n_cpus(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (int)n : 1;
}

void gpu_ref_free(gpu_ref *ref) {
  free(ref->profiles_gk);
  memset(ref, 0, sizeof *ref);
}

int gpu_ref_load(const char *repo_dir, gpu_ref *ref, char *err, size_t err_len) {
  memset(ref, 0, sizeof *ref);
  char path[1024];
  rctd_synth_csv dge, meta;
  snprintf(path, sizeof path, "%s/data/vignette/csv/reference/dge.csv", repo_dir);
  if (rctd_synth_csv_read(path, &dge, NULL, 0) != 0) {
    snprintf(err, err_len, "%s: cannot read", path);
    return -1;
  }
  snprintf(path, sizeof path, "%s/data/vignette/csv/reference/meta_data.csv", repo_dir);
  if (rctd_synth_csv_read(path, &meta, NULL, 0) != 0) {
    rctd_synth_csv_free(&dge);
    snprintf(err, err_len, "%s: cannot read", path);
    return -1;
  }
  const int G = dge.n_rows - 1, n_cells = dge.n_cols - 1;
  int K = 0;
  for (int r = 1; r < meta.n_rows; r++) {
    int t = atoi(rctd_synth_csv_at(&meta, r, 1));
    K = t > K ? t : K;
  }
  ref->n_genes = G;
  ref->n_types = K;
  ref->profiles_gk = calloc((size_t)G * K, sizeof(double));
  int *cells_k = calloc((size_t)K, sizeof(int));
  if (!ref->profiles_gk || !cells_k || G < 1 || K < 1) {
    free(cells_k);
    rctd_synth_csv_free(&dge);
    rctd_synth_csv_free(&meta);
    snprintf(err, err_len, "vignette reference: empty or out of memory");
    return -1;
  }
  for (int c = 1; c <= n_cells; c++) {
    int r = rctd_synth_csv_row_of(&meta, rctd_synth_csv_at(&dge, 0, c));
    if (r < 0) continue;
    int t = atoi(rctd_synth_csv_at(&meta, r, 1)) - 1;
    double numi = strtod(rctd_synth_csv_at(&meta, r, 2), NULL);
    if (t < 0 || numi < 100) continue;
    cells_k[t]++;
    for (int g = 0; g < G; g++)
      ref->profiles_gk[(size_t)g * K + t] += strtod(rctd_synth_csv_at(&dge, g + 1, c), NULL) / numi;
  }
  for (int g = 0; g < G; g++)
    for (int t = 0; t < K; t++)
      if (cells_k[t]) ref->profiles_gk[(size_t)g * K + t] /= cells_k[t];
  free(cells_k);
  rctd_synth_csv_free(&dge);
  rctd_synth_csv_free(&meta);
  return 0;
}

void gpu_synth_free(gpu_synth *s) {
  free(s->y_ng);
  free(s->numi_n);
  free(s->type1_n);
  free(s->type2_n);
  memset(s, 0, sizeof *s);
}

#define GPU_SYNTH_BLOCK 1024 /* pixels per random stream */

typedef struct {
  const gpu_ref *ref;
  const double *platform_g;
  gpu_synth *out;
  uint64_t seed;
  int next_block, n_blocks;
  pthread_mutex_t *lock;
} gpu_synth_job;

static void gpu_synth_block(const gpu_synth_job *job, int b, gsl_rng *rng) {
  const gpu_ref *ref = job->ref;
  gpu_synth *s = job->out;
  const int G = ref->n_genes, K = ref->n_types;
  gsl_rng_set(rng, (unsigned long)(job->seed * 1000003u + (uint64_t)b * 7919u + 1u));
  int p_end = (b + 1) * GPU_SYNTH_BLOCK < s->n_pix ? (b + 1) * GPU_SYNTH_BLOCK : s->n_pix;
  for (int p = b * GPU_SYNTH_BLOCK; p < p_end; p++) {
    int t1 = (int)gsl_rng_uniform_int(rng, (unsigned long)K), t2 = -1;
    double prop = 1;
    if (gsl_rng_uniform(rng) < 0.5 && K > 1) {
      t2 = (int)gsl_rng_uniform_int(rng, (unsigned long)(K - 1));
      if (t2 >= t1) t2++;
      prop = 0.25 + 0.5 * gsl_rng_uniform(rng);
    }
    double numi = exp(log(600.0) + gsl_ran_gaussian(rng, 0.5));
    numi = numi < 100 ? 100 : numi > 5000 ? 5000 : numi;
    s->numi_n[p] = floor(numi);
    s->type1_n[p] = t1;
    s->type2_n[p] = t2;
    for (int g = 0; g < G; g++) {
      double mix = prop * ref->profiles_gk[(size_t)g * K + t1];
      if (t2 >= 0) mix += (1 - prop) * ref->profiles_gk[(size_t)g * K + t2];
      double mean = s->numi_n[p] * mix * job->platform_g[g] * exp(gsl_ran_gaussian(rng, 0.5));
      s->y_ng[(size_t)p * G + g] = mean > 0 ? (double)gsl_ran_poisson(rng, mean) : 0.0;
    }
  }
}

static void *gpu_synth_worker(void *arg) {
  gpu_synth_job *job = arg;
  gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
  if (!rng) return NULL;
  for (;;) {
    pthread_mutex_lock(job->lock);
    int b = job->next_block++;
    pthread_mutex_unlock(job->lock);
    if (b >= job->n_blocks) break;
    gpu_synth_block(job, b, rng);
  }
  gsl_rng_free(rng);
  return NULL;
}

int gpu_synth_make(const gpu_ref *ref, int n_pix, uint64_t seed, gpu_synth *out) {
  memset(out, 0, sizeof *out);
  const int G = ref->n_genes;
  out->n_pix = n_pix;
  out->n_genes = G;
  out->y_ng = malloc((size_t)n_pix * G * sizeof(double));
  out->numi_n = malloc((size_t)n_pix * sizeof(double));
  out->type1_n = malloc((size_t)n_pix * sizeof(int32_t));
  out->type2_n = malloc((size_t)n_pix * sizeof(int32_t));
  double *platform_g = malloc((size_t)G * sizeof(double));
  gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
  if (!out->y_ng || !out->numi_n || !out->type1_n || !out->type2_n || !platform_g || !rng) {
    free(platform_g);
    if (rng) gsl_rng_free(rng);
    gpu_synth_free(out);
    return -1;
  }
  gsl_rng_set(rng, (unsigned long)seed);
  for (int g = 0; g < G; g++) platform_g[g] = exp(gsl_ran_gaussian(rng, 0.3));
  gsl_rng_free(rng);
  pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
  gpu_synth_job job = {
      ref, platform_g, out, seed, 0, (n_pix + GPU_SYNTH_BLOCK - 1) / GPU_SYNTH_BLOCK, &lock};
  int n_threads = gpu_n_cpus();
  if (n_threads > 64) n_threads = 64;
  pthread_t threads[64];
  int started[64] = {0};
  for (int t = 1; t < n_threads; t++)
    started[t] = pthread_create(&threads[t], NULL, gpu_synth_worker, &job) == 0;
  gpu_synth_worker(&job);
  for (int t = 1; t < n_threads; t++)
    if (started[t]) pthread_join(threads[t], NULL);
  free(platform_g);
  double max_count = 0;
  for (size_t i = 0; i < (size_t)n_pix * G; i++)
    max_count = out->y_ng[i] > max_count ? out->y_ng[i] : max_count;
  out->max_count = max_count;
  return 0;
}

int gpu_synth_tile(const gpu_synth *src, int n_copies, gpu_synth *out) {
  memset(out, 0, sizeof *out);
  const size_t N = (size_t)src->n_pix, G = (size_t)src->n_genes;
  out->n_pix = (int)(N * n_copies);
  out->n_genes = src->n_genes;
  out->max_count = src->max_count;
  out->y_ng = malloc(N * n_copies * G * sizeof(double));
  out->numi_n = malloc(N * n_copies * sizeof(double));
  out->type1_n = malloc(N * n_copies * sizeof(int32_t));
  out->type2_n = malloc(N * n_copies * sizeof(int32_t));
  if (!out->y_ng || !out->numi_n || !out->type1_n || !out->type2_n) {
    gpu_synth_free(out);
    return -1;
  }
  for (int c = 0; c < n_copies; c++) {
    memcpy(out->y_ng + c * N * G, src->y_ng, N * G * sizeof(double));
    memcpy(out->numi_n + c * N, src->numi_n, N * sizeof(double));
    memcpy(out->type1_n + c * N, src->type1_n, N * sizeof(int32_t));
    memcpy(out->type2_n + c * N, src->type2_n, N * sizeof(int32_t));
  }
  return 0;
}

int gpu_table_rows_for(double max_count) {
  return (int)fmin(max_count, RCTD_K_VAL) + 1;
}

int gpu_table_make(rctd_backend *be, double sigma_c, int n_k, gpu_table *t) {
  memset(t, 0, sizeof *t);
  rctd_x_grid(t->x_vals);
  t->q_kx = malloc((size_t)n_k * RCTD_N_X * sizeof(double));
  t->sq_kx = malloc((size_t)n_k * RCTD_N_X * sizeof(double));
  if (!t->q_kx || !t->sq_kx || be->qtable(be, sigma_c, n_k, t->q_kx, t->sq_kx) != 0) {
    gpu_table_free(t);
    return -1;
  }
  t->table = (rctd_qtable){n_k, t->x_vals, t->q_kx, t->sq_kx};
  return 0;
}

void gpu_table_free(gpu_table *t) {
  free(t->q_kx);
  free(t->sq_kx);
  memset(t, 0, sizeof *t);
}
