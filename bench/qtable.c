/* Benchmark: one full likelihood table (rows 0..n_k-1 over the 439-point grid, with spline
 * coefficients) for one sigma, rows split across threads.
 *   qtable [-t THREADS] [-s SIGMA] [-k N_K] [-r REPEATS]
 * Prints one line per repeat: "qtable sigma=0.84 n_k=1003 threads=2 seconds=1.23". */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "rctd_kernels.h"

typedef struct {
  double sigma;
  int n_k;
  const double *x;
  double *q, *sq;
  atomic_int next_row;
  atomic_int failed;
} bq_job;

/* Rows are handed out in chunks that grow with k: low rows cost ten times more than high ones
 * (their sums are wider), and each call pays a fixed setup. */
static int bq_chunk(int k) {
  return 1 + k / 16;
}

static void *bq_worker(void *arg) {
  bq_job *job = arg;
  for (;;) {
    int k = atomic_load(&job->next_row), end;
    do {
      if (k >= job->n_k) return NULL;
      end = k + bq_chunk(k);
      if (end > job->n_k) end = job->n_k;
    } while (!atomic_compare_exchange_weak(&job->next_row, &k, end));
    if (rctd_qtable_rows(job->sigma, job->x, k, end, job->q, job->sq) != 0)
      atomic_store(&job->failed, 1);
  }
}

static double bq_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv) {
  int n_threads = 2, n_k = RCTD_N_K_FULL, repeats = 1, opt;
  double sigma = 0.84;
  while ((opt = getopt(argc, argv, "t:s:k:r:")) != -1) {
    if (opt == 't')
      n_threads = atoi(optarg);
    else if (opt == 's')
      sigma = atof(optarg);
    else if (opt == 'k')
      n_k = atoi(optarg);
    else if (opt == 'r')
      repeats = atoi(optarg);
    else {
      fprintf(stderr, "usage: qtable [-t THREADS] [-s SIGMA] [-k N_K] [-r REPEATS]\n");
      return 2;
    }
  }
  if (n_threads < 1 || n_threads > 256 || n_k < 1 || repeats < 1) {
    fprintf(stderr, "qtable: invalid option value\n");
    return 2;
  }
  double x[RCTD_N_X];
  rctd_x_grid(x);
  double *q = malloc(sizeof(double) * (size_t)n_k * RCTD_N_X);
  double *sq = malloc(sizeof(double) * (size_t)n_k * RCTD_N_X);
  pthread_t *threads = malloc(sizeof(pthread_t) * (size_t)n_threads);
  if (!q || !sq || !threads) {
    fprintf(stderr, "qtable: out of memory\n");
    return 1;
  }
  for (int r = 0; r < repeats; r++) {
    bq_job job = {.sigma = sigma, .n_k = n_k, .x = x, .q = q, .sq = sq};
    atomic_init(&job.next_row, 0);
    atomic_init(&job.failed, 0);
    double t0 = bq_now();
    for (int i = 0; i < n_threads; i++) pthread_create(&threads[i], NULL, bq_worker, &job);
    for (int i = 0; i < n_threads; i++) pthread_join(threads[i], NULL);
    double secs = bq_now() - t0;
    if (atomic_load(&job.failed)) {
      fprintf(stderr, "qtable: rctd_qtable_rows failed\n");
      return 1;
    }
    printf("qtable sigma=%g n_k=%d threads=%d seconds=%.3f\n", sigma, n_k, n_threads, secs);
  }
  free(q);
  free(sq);
  free(threads);
  return 0;
}
