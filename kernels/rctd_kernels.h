/* rctd kernel interface: pure compute on plain arrays (no I/O, no allocation in hot loops).
 *
 * Two layers:
 *  - CPU primitives (kernels/cpu/): likelihood tables, spline evaluation, the per-fit IRWLS
 *    with its exact QP, used directly by lib/ and by tests;
 *  - the backend table (rctd_backend): batched operations that the pipeline stages call, with a
 *    CPU implementation and a CUDA one (kernels/cuda/).  Stages never know which one runs.
 *
 * Array conventions: row-major; shape suffixes name the dimensions (g genes, k types, n pixels
 * or fits, x the 439-point lambda grid).  profiles_gk[g * n_types + k]. */
#ifndef RCTD_KERNELS_H
#define RCTD_KERNELS_H
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Likelihood tables (spacexr get_Q / solve_sq / calc_Q_all) ---- */
#define RCTD_N_SIGMA 126   /* sigma grid: 10..70 by 1, 72..200 by 2 (sigma_c = value / 100) */
#define RCTD_N_X 439       /* lambda grid X_vals */
#define RCTD_K_VAL 1000    /* counts are clipped at K_val */
#define RCTD_N_K_FULL 1003 /* rows k = 0..1002 of a full table */

/* Fills the sigma grid (integers 10..200). */
void rctd_sigma_grid(int sigma_vals[RCTD_N_SIGMA]);
/* Index of sigma value (e.g. 84) in the grid, or -1. */
int rctd_sigma_index(int sigma_value);
/* Fills X_vals exactly as spacexr builds it. */
void rctd_x_grid(double x_vals[RCTD_N_X]);

/* One sigma's table: rows k = 0..n_k-1 over the X grid, and the natural cubic spline second
 * derivatives along x for every row.  Counts above n_k-1 must not be looked up (callers build
 * tables with n_k > min(max count, K_VAL)). */
typedef struct {
  int n_k;
  const double *x_vals; /* RCTD_N_X */
  const double *q_kx;   /* n_k x RCTD_N_X: log(max(P(Y = k | x), 1e-300)) */
  const double *sq_kx;  /* n_k x RCTD_N_X: spline second derivatives of q along x */
} rctd_qtable;

/* Computes rows [k_begin, k_end) of the table for sigma_c (e.g. 0.84) into q_kx/sq_kx (which
 * hold rows from 0; only the requested rows are written).  Rows are independent, so callers
 * split them across threads.  Returns 0, or -1 for an invalid argument. */
int rctd_qtable_rows(double sigma_c, const double x_vals[RCTD_N_X], int k_begin, int k_end,
                     double *q_kx, double *sq_kx);

/* calc_Q_all: for each i, the spline value d0, first d1 and second d2 derivative in lambda of
 * log P(Y = y[i] | lambda[i]), with y clipped at K_VAL and lambda to [1e-4, 1600 - 1e-4], and
 * R's interval lookup.  d1 or d2 may be NULL. */
void rctd_spline_eval(const rctd_qtable *table, int n, const double *y, const double *lambda,
                      double *d0, double *d1, double *d2);

/* ---- IRWLS (spacexr solveIRWLS.weights / solveWLS) ---- */
typedef struct {
  int n_iter;        /* 50; 25 in score mode; 100 in bulk mode */
  double min_change; /* MIN_CHANGE_REG 1e-3, MIN_CHANGE_BULK 1e-4 */
  int constrain;     /* 1: sum(weights) = 1 (never used by pixel fits, which run unconstrained) */
  int bulk_mode;     /* 1: Gaussian on logs (fitBulk), no K_val clipping, no table needed */
} rctd_irwls_opts;

/* Bytes of workspace that rctd_irwls_fit needs for n_genes x n_types. */
size_t rctd_irwls_workspace_bytes(int n_genes, int n_types);

/* One fit.  S_gk: genes x types design (profiles * nUMI), y_g: counts, numi: the pixel's nUMI
 * (for the prediction floor max(1e-4, numi * 1e-7)).  init_k: initial solution, or NULL for the
 * 1/K start; weights_k: out = the solution (raw, as R's).  Returns 1 when converged (change <=
 * min_change, R's converged flag), 0 otherwise; non-finite derivatives (e.g. NaN counts) give
 * NaN weights and 0.  table may be NULL in bulk mode.  workspace: rctd_irwls_workspace_bytes,
 * malloc-aligned.  Thread-safe, allocation-free. */
int rctd_irwls_fit(const rctd_qtable *table, int n_genes, int n_types, const double *S_gk,
                   const double *y_g, double numi, const rctd_irwls_opts *opts,
                   const double *init_k, double *weights_k, void *workspace);

/* Exact strictly convex QP: min 1/2 x'Dx - d'x  s.t. x >= lower (elementwise) and, when
 * with_sum, sum(x) = sum_target.  D_kk symmetric positive definite (k x k).  Returns 0, or -1 if
 * infeasible or D is not positive definite.  Same minimiser as quadprog::solve.QP (primal active
 * set; bounds active at the solution are returned exactly).  workspace:
 * rctd_qp_workspace_bytes(k). */
size_t rctd_qp_workspace_bytes(int k);
int rctd_qp_solve(int k, const double *D_kk, const double *d_k, const double *lower_k, int with_sum,
                  double sum_target, double *x_k, void *workspace);

/* ---- Backend table: batched operations the stages call ---- */

/* A batch of fits of the same size k_sub, each over a subset of types of one pixel.
 * y_ng is dense counts for the n_pix pixels of the batch; fits refer to them by index. */
typedef struct {
  int n_genes, n_types;      /* G and total K */
  const double *profiles_gk; /* G x K normalised profiles (not multiplied by nUMI) */
  int n_pix;
  const double *y_ng;      /* n_pix x G counts */
  const double *numi_n;    /* n_pix */
  int n_fits, k_sub;       /* number of fits; types per fit */
  const int32_t *pix_f;    /* n_fits: pixel index of each fit */
  const int32_t *types_fk; /* n_fits x k_sub: type indices, or NULL = all K types (k_sub == K) */
} rctd_fit_batch;

typedef struct rctd_backend rctd_backend;
struct rctd_backend {
  const char *name; /* "cpu", "cuda:0" */
  /* Fits every fit of the batch: weights_fk (n_fits x k_sub, raw), conv_f (1 = converged),
   * score_f (may be NULL): -sum_g d0(y, profiles * nUMI * weights) at the solution, as
   * spacexr's calc_log_l_vec scores a fit.  Deterministic and independent of batch size. */
  int (*irwls_batch)(rctd_backend *be, const rctd_qtable *table, const rctd_fit_batch *batch,
                     const rctd_irwls_opts *opts, double *weights_fk, int32_t *conv_f,
                     double *score_f);
  /* Fills rows [0, n_k) of the table for sigma_c. */
  int (*qtable)(rctd_backend *be, double sigma_c, int n_k, double *q_kx, double *sq_kx);
  void (*destroy)(rctd_backend *be);
  int n_threads;
  void *impl;
};

/* CPU backend with n_threads worker threads (results do not depend on n_threads). */
rctd_backend *rctd_backend_cpu(int n_threads);
#ifdef RCTD_HAVE_CUDA
/* CUDA backend on the given devices; NULL with a message in err when none is usable. */
rctd_backend *rctd_backend_cuda(const int *devices, int n_devices, char *err, size_t err_len);
#endif

#ifdef __cplusplus
}
#endif

/* ---- the spline coefficient tables of the fast CPU evaluation (kernels/cpu/spline_fast.c) ---- */
/* Per (row, interval) spline coefficients {zi / h, z(i-1) / h, f(i) / h - zi h / 6,
 * f(i-1) / h - z(i-1) h / 6} computed with calc_Q_all's operations: n_k x (RCTD_N_X - 1) x 4
 * doubles (rctd_spline_coef_doubles). */
size_t rctd_spline_coef_doubles(int n_k);
void rctd_spline_coef_build(const rctd_qtable *table, double *coef);
/* The same for the rows k with row_used[k] != 0 only (row_used: table->n_k flags; NULL = every
 * row): the other rows' records are left untouched, so a caller whose values use few rows
 * (chooseSigma's sample) fills only their pages.  Only pairs whose row is flagged may then be
 * evaluated with COEF (the others' records are poisoned under AddressSanitizer: a read of one
 * fails loudly in the sanitizer build; kernels/common/poison.h).  Unpoison COEF's memory
 * (RCTD_UNPOISON) before using it otherwise, or build its rows again. */
void rctd_spline_coef_build_rows(const rctd_qtable *table, const unsigned char *row_used,
                                 double *coef);

/* Registers COEF (built for TABLE) so that rctd_spline_eval_fast uses it for every table whose
 * q_kx and sq_kx are TABLE's.  Detach before the table's arrays are freed or changed.  At most
 * 16 tables at once: 0, or -1 when full (evaluation then stays exact, only slower). */
int rctd_spline_coef_attach(const rctd_qtable *table, const double *coef);
void rctd_spline_coef_detach(const rctd_qtable *table);

/* spacexr calc_log_l_vec(X * mult[m], Y) for several tables at once (chooseSigma's scores):
 * out_tm[t * n_mult + m] = -sum over i of d0(tables[t], y[i], x[i] * mult[m]), summed in i order
 * in long double and rounded to double, as rctd_sigma_log_l on each (same bits: the same
 * operations as rctd_spline_eval_fast, which equals rctd_spline_eval).  coefs[t] is
 * rctd_spline_coef_build's table for tables[t]; the tables share the X grid.  The interval
 * search and cubes are done once per value and multiplier for all tables.  Returns 0, or -1
 * (nothing written) when a pair is off the fast path (NaN x, negative or off-table y, another
 * grid, more than 128 scores): the caller then scores table by table.  Thread-safe. */
int rctd_spline_score_many(const rctd_qtable *const *tables, const double *const *coefs,
                           int n_tables, const double *mult, int n_mult, int64_t n, const double *y,
                           const double *x, double *out_tm);

#endif
