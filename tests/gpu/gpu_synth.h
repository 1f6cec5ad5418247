/* Helpers of the GPU tests and benchmark: the vignette reference profiles, synthetic pixels (the
 * recipe of the fit benchmark, issue 6), likelihood tables and CSV reading. */
#ifndef RCTD_GPU_SYNTH_H
#define RCTD_GPU_SYNTH_H
#include <stddef.h>
#include <stdint.h>

#include "rctd_kernels.h"

/* Reference profiles: per type, the mean over its cells (nUMI >= 100) of counts / nUMI, from
 * SHARED/data/vignette/csv/reference (K = 19 types, G = 384 genes). */
typedef struct {
  int n_genes, n_types;
  double *profiles_gk; /* G x K */
} gpu_ref;

int gpu_ref_load(const char *repo_dir, gpu_ref *ref, char *err, size_t err_len);
void gpu_ref_free(gpu_ref *ref);

/* Synthetic pixels: each one type, or with probability 1/2 two types with proportion
 * U(0.25, 0.75); nUMI lognormal around 600 (sd 0.5 on the log scale) clipped to 100..5000; a
 * per-gene platform factor exp(N(0, 0.3)); per-pixel per-gene noise exp(N(0, 0.5)); Poisson
 * counts.  Deterministic for a seed (whatever the thread count). */
typedef struct {
  int n_pix, n_genes;
  double *y_ng;               /* n_pix x G */
  double *numi_n;             /* n_pix */
  int32_t *type1_n, *type2_n; /* truth; type2 = -1 for a singlet */
  double max_count;
} gpu_synth;

int gpu_synth_make(const gpu_ref *ref, int n_pix, uint64_t seed, gpu_synth *out);
/* n_copies copies of src one after the other (for runs larger than the data set). */
int gpu_synth_tile(const gpu_synth *src, int n_copies, gpu_synth *out);
void gpu_synth_free(gpu_synth *s);

/* A likelihood table for sigma_c with rows 0..n_k-1, built by the given backend. */
typedef struct {
  rctd_qtable table;
  double x_vals[RCTD_N_X];
  double *q_kx, *sq_kx;
} gpu_table;

int gpu_table_make(rctd_backend *be, double sigma_c, int n_k, gpu_table *t);
void gpu_table_free(gpu_table *t);

/* Rows of table rows needed for counts up to max_count (clipped at K_VAL). */
int gpu_table_rows_for(double max_count);

/* Monotonic seconds. */
double gpu_now(void);
/* Online CPUs. */
int gpu_n_cpus(void);

#endif
