/* CPU IRWLS internals shared by kernels/cpu/irwls.c, the CPU backend and the tests. */
#ifndef RCTD_CPU_IRWLS_H
#define RCTD_CPU_IRWLS_H
#include <stddef.h>

#include "rctd_kernels.h"

/* Bytes of workspace rctd_irwls_fit_kg needs (the design is supplied already transposed). */
size_t rctd_irwls_kg_workspace_bytes(int n_genes, int n_types);

/* rctd_irwls_fit with the design transposed: S_kg is types x genes (S_kg[k * G + g]).  The CPU
 * backend builds S_kg directly from the profiles; rctd_irwls_fit transposes into its workspace
 * and calls this. */
int rctd_irwls_fit_kg(const rctd_qtable *table, int n_genes, int n_types, const double *S_kg,
                      const double *y_g, double numi, const rctd_irwls_opts *opts,
                      const double *init_k, double *weights_k, void *workspace);

/* rctd_irwls_fit_kg step by step, so that several fits can be advanced together: the psd()
 * eigensolvers of fits of three or more types then run interleaved (rctd_psd_scaled_many),
 * which keeps the core busy where one fit's chain of dependent square roots and divisions
 * leaves it idle.  Every fit computes exactly what rctd_irwls_fit_kg computes alone. */
typedef struct {
  const rctd_qtable *table;
  int n_genes, n_types;
  const double *S_kg; /* must stay valid and unchanged while the run is running */
  double numi;
  const rctd_irwls_opts *opts;
  double *weights_k; /* the solution so far (NaN after a failed step) */
  void *workspace;   /* rctd_irwls_kg_workspace_bytes, owned by this run while it runs */
  double change;
  int iter;
  int running;   /* 1 while more steps are due */
  int converged; /* once not running: rctd_irwls_fit_kg's return value */
} rctd_irwls_run;

/* Starts a fit (arguments as rctd_irwls_fit_kg's; y_g is copied). */
void rctd_irwls_run_start(rctd_irwls_run *run, const rctd_qtable *table, int n_genes, int n_types,
                          const double *S_kg, const double *y_g, double numi,
                          const rctd_irwls_opts *opts, const double *init_k, double *weights_k,
                          void *workspace);

/* One IRWLS step of each running run of runs[0..n_runs) (all with the same n_types; at most
 * RCTD_PSD_MANY_MAX running ones are stepped, the others wait). */
void rctd_irwls_run_step(rctd_irwls_run *const *runs, int n_runs);

/* -sum_g d0(y_g, sum_k S_kg w_k): spacexr's calc_log_l_vec of the prediction S %*% weights
 * (no floor: calc_Q_all clamps lambda itself), summed in long double as R's sum().  pred_g and
 * d0_g are G-long scratch arrays. */
double rctd_irwls_score_kg(const rctd_qtable *table, int n_genes, int n_types, const double *S_kg,
                           const double *y_g, const double *weights_k, double *pred_g,
                           double *d0_g);

/* Whether a fit of n_types types forms its gradient and Hessian with fused multiply-adds (from
 * five types on: fits of up to four keep separate products and sums, those of one or two equal
 * the CUDA kernels).  The same on every path and CPU (portable fma(), AVX2 + FMA, AVX-512). */
int rctd_irwls_fused(int n_types);

/* For the tests: turns the AVX-512 kernels of irwls.c off (0; the AVX2 ones run instead) or on
 * (1), or only asks (-1); returns whether they were in use. */
int rctd_irwls_avx512(int enable);

/* For the tests: one step's prediction pred_g = S' w_k, gradient dvec_k and Hessian (lower
 * triangle of hess_kk, K x K) from given derivatives d1_g and d2_g, by the kernels a fit runs
 * (the SIMD ones unless rctd_cpu_simd(0)), so that each path can be checked against the
 * portable one bit for bit.  Returns rctd_irwls_fused(n_types).  workspace:
 * rctd_irwls_kg_workspace_bytes. */
int rctd_irwls_step_parts(int n_genes, int n_types, const double *S_kg, const double *w_k,
                          const double *d1_g, const double *d2_g, double *pred_g, double *dvec_k,
                          double *hess_kk, void *workspace);

/* rctd_qp_solve, unconstrained mode, starting from the working set the workspace kept from the
 * previous solve with the same k and workspace (warm = 1) instead of the empty one (0; the first
 * solve on a workspace must be cold).  The minimiser is the same; only the number of active-set
 * steps changes (and, where a bound is weakly active, rounding).  The sum-constrained mode
 * always starts cold. */
int rctd_qp_solve_warm(int k, const double *D_kk, const double *d_k, const double *lower_k,
                       int with_sum, double sum_target, double *x_k, void *workspace, int warm);

#endif
