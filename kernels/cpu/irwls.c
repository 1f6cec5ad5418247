/* spacexr's solveIRWLS.weights / solveWLS, step by step, on one pixel:
 *   s = max(w, 0); pred = |S s| floored at max(1e-4, nUMI 1e-7);
 *   d1, d2 = derivatives of log P(y | pred) (spline of the table, or bulk mode's Gaussian on logs);
 *   d = d1 S, H = S' diag(-d2) S; D = psd(H) / norm(psd(H), "2"), d /= that norm; D += 1e-7 I;
 *   x = argmin 1/2 x'Dx - d'x  s.t. x >= -s  [and sum(x) = 1 - sum(s) when constrained];
 *   w = s + 0.3 x; change = sum |w_new - w|; stop when change <= MIN_CHANGE or after n_iter steps.
 * The design is kept transposed (S_kg) so every loop over genes is a unit-stride loop. */
#include "cpu/irwls.h"

#include <math.h>
#include <string.h>

#include "cpu/psd.h"

#define IRWLS_ALPHA 0.3     /* solveWLS's damping */
#define IRWLS_RIDGE 1e-7    /* added to the scaled Hessian's diagonal */
#define IRWLS_PRED_MIN 1e-4 /* prediction floor: max(1e-4, nUMI * 1e-7) */
#define IRWLS_PRED_NUMI 1e-7

typedef struct {
  double *y_g, *pred_g, *d0_g, *d1_g, *d2_g, *cs_kg;
  double *hess_kk, *D_kk, *dvec_k, *lower_k, *x_k, *s_k;
  void *psd_ws, *qp_ws;
} irwls_ws;

static size_t irwls_align(size_t bytes) {
  return (bytes + 63) & ~(size_t)63;
}

size_t rctd_irwls_kg_workspace_bytes(int n_genes, int n_types) {
  size_t g = (size_t)(n_genes > 0 ? n_genes : 1), k = (size_t)(n_types > 0 ? n_types : 1);
  return 5 * irwls_align(g * sizeof(double)) + irwls_align(k * g * sizeof(double)) +
         2 * irwls_align(k * k * sizeof(double)) + 4 * irwls_align(k * sizeof(double)) +
         irwls_align(rctd_psd_workspace_bytes(n_types)) + rctd_qp_workspace_bytes(n_types);
}

size_t rctd_irwls_workspace_bytes(int n_genes, int n_types) {
  size_t g = (size_t)(n_genes > 0 ? n_genes : 1), k = (size_t)(n_types > 0 ? n_types : 1);
  return irwls_align(k * g * sizeof(double)) + rctd_irwls_kg_workspace_bytes(n_genes, n_types);
}

static irwls_ws irwls_ws_carve(int n_genes, int n_types, void *workspace) {
  size_t g = (size_t)n_genes, k = (size_t)n_types;
  char *p = workspace;
  irwls_ws ws;
  ws.y_g = (double *)p, p += irwls_align(g * sizeof(double));
  ws.pred_g = (double *)p, p += irwls_align(g * sizeof(double));
  ws.d0_g = (double *)p, p += irwls_align(g * sizeof(double));
  ws.d1_g = (double *)p, p += irwls_align(g * sizeof(double));
  ws.d2_g = (double *)p, p += irwls_align(g * sizeof(double));
  ws.cs_kg = (double *)p, p += irwls_align(k * g * sizeof(double));
  ws.hess_kk = (double *)p, p += irwls_align(k * k * sizeof(double));
  ws.D_kk = (double *)p, p += irwls_align(k * k * sizeof(double));
  ws.dvec_k = (double *)p, p += irwls_align(k * sizeof(double));
  ws.lower_k = (double *)p, p += irwls_align(k * sizeof(double));
  ws.x_k = (double *)p, p += irwls_align(k * sizeof(double));
  ws.s_k = (double *)p, p += irwls_align(k * sizeof(double));
  ws.psd_ws = p, p += irwls_align(rctd_psd_workspace_bytes(n_types));
  ws.qp_ws = p;
  return ws;
}

/* sum_g a_g b_g with four independent partial sums (a latency-bound single chain would dominate
 * the fit; the order differs from R's BLAS only at rounding level). */
static double irwls_dot(int n, const double *a, const double *b) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int g = 0;
  for (; g + 4 <= n; g += 4) {
    s0 += a[g] * b[g];
    s1 += a[g + 1] * b[g + 1];
    s2 += a[g + 2] * b[g + 2];
    s3 += a[g + 3] * b[g + 3];
  }
  for (; g < n; g++) s0 += a[g] * b[g];
  return (s0 + s1) + (s2 + s3);
}

/* pred_g = sum_k S_kg w_k (R's S %*% w: k in order). */
static void irwls_predict(int n_genes, int n_types, const double *S_kg, const double *w_k,
                          double *pred_g) {
  for (int g = 0; g < n_genes; g++) pred_g[g] = 0;
  for (int k = 0; k < n_types; k++) {
    const double wk = w_k[k];
    const double *row = S_kg + (size_t)k * n_genes;
    for (int g = 0; g < n_genes; g++) pred_g[g] += row[g] * wk;
  }
}

/* d1, d2 of get_der_fast's bulk mode: the Gaussian on logs. */
static void irwls_bulk_derivatives(int n_genes, const double *y_g, const double *pred_g,
                                   double *d1_g, double *d2_g) {
  for (int g = 0; g < n_genes; g++) {
    double p = pred_g[g], log_ratio = log(p) - log(y_g[g]);
    d1_g[g] = -2 * (log_ratio / p);
    d2_g[g] = -2 * ((1 - log(p) + log(y_g[g])) / (p * p));
  }
}

/* d_k = sum_g d1_g S_kg; hess (lower triangle) = sum_g (-d2_g) S_ig S_jg. */
static void irwls_grad_hess(int n_genes, int n_types, const double *S_kg, irwls_ws *ws) {
  size_t G = (size_t)n_genes;
  for (int i = 0; i < n_types; i++) {
    const double *si = S_kg + i * G;
    double *ci = ws->cs_kg + i * G;
    for (size_t g = 0; g < G; g++) ci[g] = -ws->d2_g[g] * si[g];
    ws->dvec_k[i] = irwls_dot(n_genes, ws->d1_g, si);
    for (int j = 0; j <= i; j++)
      ws->hess_kk[i * n_types + j] = irwls_dot(n_genes, ci, S_kg + j * G);
  }
}

/* One solveWLS step from w_k (in place); returns the L1 change, or NaN when the step cannot be
 * taken (non-finite derivatives or an infeasible QP). */
static double irwls_step(const rctd_qtable *table, int n_genes, int n_types, const double *S_kg,
                         double numi, const rctd_irwls_opts *opts, double *w_k, irwls_ws *ws) {
  const int K = n_types;
  double s_sum = 0;
  for (int k = 0; k < K; k++) {
    ws->s_k[k] = w_k[k] > 0 ? w_k[k] : 0;
    s_sum += ws->s_k[k];
  }
  irwls_predict(n_genes, K, S_kg, ws->s_k, ws->pred_g);
  const double floor_pred = fmax(IRWLS_PRED_MIN, numi * IRWLS_PRED_NUMI);
  for (int g = 0; g < n_genes; g++) {
    double p = fabs(ws->pred_g[g]);
    ws->pred_g[g] = p < floor_pred ? floor_pred : p;
  }
  if (opts->bulk_mode)
    irwls_bulk_derivatives(n_genes, ws->y_g, ws->pred_g, ws->d1_g, ws->d2_g);
  else
    rctd_spline_eval(table, n_genes, ws->y_g, ws->pred_g, ws->d0_g, ws->d1_g, ws->d2_g);
  irwls_grad_hess(n_genes, K, S_kg, ws);

  double norm = rctd_psd_scaled(K, ws->hess_kk, ws->D_kk, ws->psd_ws);
  if (!(norm > 0)) return NAN;
  for (int k = 0; k < K; k++) {
    ws->dvec_k[k] /= norm;
    ws->D_kk[k * K + k] += IRWLS_RIDGE;
    ws->lower_k[k] = -ws->s_k[k];
    if (!isfinite(ws->dvec_k[k])) return NAN;
  }
  if (rctd_qp_solve(K, ws->D_kk, ws->dvec_k, ws->lower_k, opts->constrain, 1 - s_sum, ws->x_k,
                    ws->qp_ws) != 0)
    return NAN;
  double change = 0;
  for (int k = 0; k < K; k++) {
    double w_new = ws->s_k[k] + IRWLS_ALPHA * ws->x_k[k];
    change += fabs(w_new - w_k[k]);
    w_k[k] = w_new;
  }
  return change;
}

int rctd_irwls_fit_kg(const rctd_qtable *table, int n_genes, int n_types, const double *S_kg,
                      const double *y_g, double numi, const rctd_irwls_opts *opts,
                      const double *init_k, double *weights_k, void *workspace) {
  irwls_ws ws = irwls_ws_carve(n_genes, n_types, workspace);
  for (int g = 0; g < n_genes; g++)
    ws.y_g[g] = (!opts->bulk_mode && y_g[g] > RCTD_K_VAL) ? RCTD_K_VAL : y_g[g];
  for (int k = 0; k < n_types; k++) weights_k[k] = init_k ? init_k[k] : 1.0 / n_types;

  double change = 1;
  for (int iter = 0; change > opts->min_change && iter < opts->n_iter; iter++) {
    change = irwls_step(table, n_genes, n_types, S_kg, numi, opts, weights_k, &ws);
    if (isnan(change)) {
      for (int k = 0; k < n_types; k++) weights_k[k] = NAN;
      return 0;
    }
  }
  return change <= opts->min_change;
}

int rctd_irwls_fit(const rctd_qtable *table, int n_genes, int n_types, const double *S_gk,
                   const double *y_g, double numi, const rctd_irwls_opts *opts,
                   const double *init_k, double *weights_k, void *workspace) {
  double *S_kg = workspace;
  for (int g = 0; g < n_genes; g++)
    for (int k = 0; k < n_types; k++) S_kg[(size_t)k * n_genes + g] = S_gk[(size_t)g * n_types + k];
  void *rest = (char *)workspace + irwls_align((size_t)n_types * n_genes * sizeof(double));
  return rctd_irwls_fit_kg(table, n_genes, n_types, S_kg, y_g, numi, opts, init_k, weights_k, rest);
}

double rctd_irwls_score_kg(const rctd_qtable *table, int n_genes, int n_types, const double *S_kg,
                           const double *y_g, const double *weights_k, double *pred_g,
                           double *d0_g) {
  irwls_predict(n_genes, n_types, S_kg, weights_k, pred_g);
  rctd_spline_eval(table, n_genes, y_g, pred_g, d0_g, NULL, NULL);
  long double sum = 0;
  for (int g = 0; g < n_genes; g++) sum += d0_g[g];
  return -(double)sum;
}
