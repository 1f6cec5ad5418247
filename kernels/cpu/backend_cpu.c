/* The CPU backend: batches of IRWLS fits and likelihood table rows spread over pthreads.
 * Fits are handed out to the workers in small blocks as they finish (they differ in their
 * iteration counts), and every fit is computed independently from its own inputs, so results
 * do not depend on the thread count or on which worker ran a fit.  A worker advances up to
 * CPU_FIT_LANES fits of three or more types together, step by step, so that their psd()
 * eigensolvers (chains of dependent square roots and divisions) run interleaved; each fit
 * still computes exactly what it computes alone.  Each worker allocates its workspace once per
 * batch; nothing is allocated per fit. */
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/irwls.h"
#include "jobs.h"
#include "rctd_kernels.h"

#define CPU_FIT_BLOCK 8 /* fits handed out per grab (fits differ in their iterations) */
#define CPU_FIT_LANES 4 /* fits of three or more types advanced together by one worker */

/* Table rows are handed out in chunks growing with k: low rows cost several times more than
 * high ones, and every rctd_qtable_rows call pays a fixed setup (its Y grid). */
static int cpu_table_chunk(int k) {
  return 1 + k / 16;
}

typedef struct {
  const rctd_qtable *table;
  const rctd_fit_batch *batch;
  const rctd_irwls_opts *opts;
  const double *profiles_kg; /* K x G transpose of the batch's profiles */
  double *weights_fk;
  int32_t *conv_f;
  double *score_f;
  int n_fits;
  atomic_int *next_fit; /* fits are handed out in blocks of CPU_FIT_BLOCK */
  int status;
} cpu_fit_job;

/* S = profiles[, types] * nUMI of fit f, as process_bead_* scales the profiles before fitting. */
static void cpu_fit_design(const cpu_fit_job *job, int f, double *S_kg) {
  const rctd_fit_batch *b = job->batch;
  const int G = b->n_genes, k_sub = b->k_sub;
  const double numi = b->numi_n[b->pix_f[f]];
  for (int k = 0; k < k_sub; k++) {
    int type = b->types_fk ? b->types_fk[(size_t)f * k_sub + k] : k;
    const double *prof = job->profiles_kg + (size_t)type * G;
    double *row = S_kg + (size_t)k * G;
    for (int g = 0; g < G; g++) row[g] = prof[g] * numi;
  }
}

/* The next fit of this worker (blocks of CPU_FIT_BLOCK grabbed as needed), or -1. */
static int cpu_next_fit(cpu_fit_job *job, int *f_next, int *f_end) {
  if (*f_next >= *f_end) {
    const int f0 = atomic_fetch_add(job->next_fit, CPU_FIT_BLOCK);
    if (f0 >= job->n_fits) return -1;
    *f_next = f0;
    *f_end = f0 + CPU_FIT_BLOCK < job->n_fits ? f0 + CPU_FIT_BLOCK : job->n_fits;
  }
  return (*f_next)++;
}

static void cpu_fit_finish(cpu_fit_job *job, int f, const double *S_kg, int converged,
                           double *pred_g, double *d0_g) {
  const rctd_fit_batch *b = job->batch;
  const int pix = b->pix_f[f];
  const double *w_k = job->weights_fk + (size_t)f * b->k_sub;
  job->conv_f[f] = converged;
  if (job->score_f)
    job->score_f[f] =
        job->table ? rctd_irwls_score_kg(job->table, b->n_genes, b->k_sub, S_kg,
                                         b->y_ng + (size_t)pix * b->n_genes, w_k, pred_g, d0_g)
                   : NAN;
}

static void *cpu_fit_worker(void *arg) {
  cpu_fit_job *job = arg;
  const rctd_fit_batch *b = job->batch;
  const int G = b->n_genes, k_sub = b->k_sub;
  /* Fits of three or more types run CPU_FIT_LANES at a time, step by step (their eigensolvers
   * interleaved); smaller ones, whose psd() is closed-form, one after the other. */
  const int lanes = k_sub >= 3 ? CPU_FIT_LANES : 1;
  const size_t s_bytes = ((size_t)k_sub * G * sizeof(double) + 63) & ~(size_t)63;
  const size_t ws_bytes = (rctd_irwls_kg_workspace_bytes(G, k_sub) + 63) & ~(size_t)63;
  char *mem = malloc((size_t)lanes * (s_bytes + ws_bytes) + 2 * (size_t)G * sizeof(double) + 64);
  if (!mem) {
    job->status = -1;
    return NULL;
  }
  char *base = (char *)(((uintptr_t)mem + 63) & ~(uintptr_t)63);
  double *S_kg[CPU_FIT_LANES];
  void *ws[CPU_FIT_LANES];
  for (int l = 0; l < lanes; l++) {
    S_kg[l] = (double *)(base + (size_t)l * (s_bytes + ws_bytes));
    ws[l] = (char *)S_kg[l] + s_bytes;
  }
  double *pred_g = (double *)(base + (size_t)lanes * (s_bytes + ws_bytes));
  double *d0_g = pred_g + G;

  rctd_irwls_run runs[CPU_FIT_LANES];
  rctd_irwls_run *run_ptr[CPU_FIT_LANES];
  int fit_of[CPU_FIT_LANES];
  for (int l = 0; l < lanes; l++) fit_of[l] = -1;
  int f_next = 0, f_end = 0;
  for (;;) {
    int n_step = 0;
    for (int l = 0; l < lanes; l++) {
      while (fit_of[l] < 0) { /* an idle lane takes the next fit */
        const int f = cpu_next_fit(job, &f_next, &f_end);
        if (f < 0) break;
        const int pix = b->pix_f[f];
        cpu_fit_design(job, f, S_kg[l]);
        rctd_irwls_run_start(&runs[l], job->table, G, k_sub, S_kg[l], b->y_ng + (size_t)pix * G,
                             b->numi_n[pix], job->opts, NULL, job->weights_fk + (size_t)f * k_sub,
                             ws[l]);
        if (runs[l].running)
          fit_of[l] = f;
        else /* no step due (n_iter 0) */
          cpu_fit_finish(job, f, S_kg[l], runs[l].converged, pred_g, d0_g);
      }
      if (fit_of[l] >= 0) run_ptr[n_step++] = &runs[l];
    }
    if (n_step == 0) break;
    rctd_irwls_run_step(run_ptr, n_step);
    for (int l = 0; l < lanes; l++)
      if (fit_of[l] >= 0 && !runs[l].running) {
        cpu_fit_finish(job, fit_of[l], S_kg[l], runs[l].converged, pred_g, d0_g);
        fit_of[l] = -1;
      }
  }
  free(mem);
  job->status = 0;
  return NULL;
}

static int cpu_batch_valid(const rctd_qtable *table, const rctd_fit_batch *b,
                           const rctd_irwls_opts *opts) {
  if (!b || !opts || b->n_fits < 0 || b->n_genes < 1 || b->n_types < 1 || b->k_sub < 1) return 0;
  if (!table && !opts->bulk_mode) return 0;
  if (!b->types_fk && b->k_sub != b->n_types) return 0;
  for (int f = 0; f < b->n_fits; f++) {
    if (b->pix_f[f] < 0 || b->pix_f[f] >= b->n_pix) return 0;
    for (int k = 0; b->types_fk && k < b->k_sub; k++) {
      int32_t t = b->types_fk[(size_t)f * b->k_sub + k];
      if (t < 0 || t >= b->n_types) return 0;
    }
  }
  return 1;
}

/* Runs the jobs (rctd_run_jobs: every job runs, on a thread or here); returns the number of
 * jobs that failed. */
static int cpu_run_jobs(void *(*fn)(void *), void *jobs, size_t job_size, int n_jobs,
                        int *(*status_of)(void *)) {
  rctd_run_jobs(fn, jobs, job_size, n_jobs);
  int failed = 0;
  for (int t = 0; t < n_jobs; t++) failed += *status_of((char *)jobs + t * job_size) != 0;
  return failed;
}

static int *cpu_fit_status(void *job) {
  return &((cpu_fit_job *)job)->status;
}

static int cpu_irwls_batch(rctd_backend *be, const rctd_qtable *table, const rctd_fit_batch *batch,
                           const rctd_irwls_opts *opts, double *weights_fk, int32_t *conv_f,
                           double *score_f) {
  if (!cpu_batch_valid(table, batch, opts) || !weights_fk || !conv_f) return -1;
  if (batch->n_fits == 0) return 0;
  const int G = batch->n_genes, K = batch->n_types;
  double *profiles_kg = malloc((size_t)K * G * sizeof(double));
  int n_jobs = be->n_threads < batch->n_fits ? be->n_threads : batch->n_fits;
  if (n_jobs < 1) n_jobs = 1;
  cpu_fit_job *jobs = calloc((size_t)n_jobs, sizeof *jobs);
  if (!profiles_kg || !jobs) {
    free(profiles_kg);
    free(jobs);
    return -1;
  }
  for (int g = 0; g < G; g++)
    for (int k = 0; k < K; k++)
      profiles_kg[(size_t)k * G + g] = batch->profiles_gk[(size_t)g * K + k];
  atomic_int next_fit = 0;
  for (int t = 0; t < n_jobs; t++) {
    jobs[t] = (cpu_fit_job){table,  batch,   opts,          profiles_kg, weights_fk,
                            conv_f, score_f, batch->n_fits, &next_fit,   -1};
  }
  int failed = cpu_run_jobs(cpu_fit_worker, jobs, sizeof *jobs, n_jobs, cpu_fit_status);
  free(jobs);
  free(profiles_kg);
  return failed ? -1 : 0;
}

typedef struct {
  double sigma_c;
  const double *x_vals;
  int n_k;
  double *q_kx, *sq_kx;
  atomic_int *next_row;
  int status;
} cpu_table_job;

static void *cpu_table_worker(void *arg) {
  cpu_table_job *job = arg;
  job->status = 0;
  for (;;) {
    int k0 = atomic_load(job->next_row), k1;
    do {
      if (k0 >= job->n_k) return NULL;
      k1 = k0 + cpu_table_chunk(k0);
      if (k1 > job->n_k) k1 = job->n_k;
    } while (!atomic_compare_exchange_weak(job->next_row, &k0, k1));
    if (rctd_qtable_rows(job->sigma_c, job->x_vals, k0, k1, job->q_kx, job->sq_kx) != 0)
      job->status = -1;
  }
}

static int *cpu_table_status(void *job) {
  return &((cpu_table_job *)job)->status;
}

static int cpu_qtable(rctd_backend *be, double sigma_c, int n_k, double *q_kx, double *sq_kx) {
  if (n_k < 1 || !q_kx || !sq_kx) return -1;
  double x_vals[RCTD_N_X];
  rctd_x_grid(x_vals);
  atomic_int next_row = 0;
  int n_jobs = be->n_threads < n_k ? be->n_threads : n_k;
  cpu_table_job *jobs = calloc((size_t)n_jobs, sizeof *jobs);
  if (!jobs) return -1;
  for (int t = 0; t < n_jobs; t++)
    jobs[t] = (cpu_table_job){sigma_c, x_vals, n_k, q_kx, sq_kx, &next_row, -1};
  int failed = cpu_run_jobs(cpu_table_worker, jobs, sizeof *jobs, n_jobs, cpu_table_status);
  free(jobs);
  return failed ? -1 : 0;
}

static void cpu_destroy(rctd_backend *be) {
  free(be);
}

rctd_backend *rctd_backend_cpu(int n_threads) {
  rctd_backend *be = calloc(1, sizeof *be);
  if (!be) return NULL;
  be->name = "cpu";
  be->irwls_batch = cpu_irwls_batch;
  be->qtable = cpu_qtable;
  be->destroy = cpu_destroy;
  be->n_threads = n_threads > 0 ? n_threads : 1;
  be->impl = NULL;
  return be;
}
