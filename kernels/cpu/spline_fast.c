/* Fast calc_Q_all for the IRWLS hot loop (spline_fast.h).  The exact, operation-by-operation
 * path (R's bits) stays rctd_spline_eval in qtable.c; this one computes the same spline with
 * fewer and cheaper operations:
 *   - the interval m = f(l), l = floor(sqrt(lambda / 1e-6)) < 40000 after the clamp, is read from
 *     a table of calc_Q_all's formula evaluated at every l;
 *   - the divisions by h and the h / 6 of the formula use per-interval 1/h and h/6;
 *   - cubes are x*x*x rather than pow(x, 3). */
#include "cpu/spline_fast.h"

#include <math.h>
#include <pthread.h>

#define SF_EPSILON 1e-4 /* calc_Q_all's lambda clamp */
#define SF_N_L 40000    /* l = floor(sqrt(lambda * 1e6)) < 40000 for lambda < 1600 */

typedef struct {
  double x[RCTD_N_X], inv_h[RCTD_N_X], h6[RCTD_N_X];
  unsigned short m_of_l[SF_N_L];
} sf_tables;

static sf_tables sf_tab;
static pthread_once_t sf_once = PTHREAD_ONCE_INIT;

static void sf_init(void) {
  rctd_x_grid(sf_tab.x);
  for (int m = 1; m < RCTD_N_X; m++) {
    double h = sf_tab.x[m] - sf_tab.x[m - 1];
    sf_tab.inv_h[m] = 1 / h;
    sf_tab.h6[m] = h / 6;
  }
  for (int l = 0; l < SF_N_L; l++) {
    double ld = l;
    double m = fmin(ld - 9, 40) + fmax(ceil(sqrt(fmax(ld - 48.7499, 0) * 4)) - 2, 0);
    sf_tab.m_of_l[l] = (unsigned short)(m < 1 ? 1 : m > RCTD_N_X - 1 ? RCTD_N_X - 1 : m);
  }
}

/* The table's grid is the standard one (checked on three nodes; tables come from
 * rctd_x_grid). */
static int sf_standard_grid(const double *x) {
  return x[1] == sf_tab.x[1] && x[200] == sf_tab.x[200] &&
         x[RCTD_N_X - 1] == sf_tab.x[RCTD_N_X - 1];
}

void rctd_spline_eval_fast(const rctd_qtable *table, int n, const double *y, const double *lambda,
                           double *d0, double *d1, double *d2) {
  pthread_once(&sf_once, sf_init);
  const double *x = table->x_vals;
  if (!sf_standard_grid(x)) {
    rctd_spline_eval(table, n, y, lambda, d0, d1, d2);
    return;
  }
  const double lo = SF_EPSILON, hi = x[RCTD_N_X - 1] - SF_EPSILON, sixth = 1.0 / 6;
  const double max_row = table->n_k - 1 < RCTD_K_VAL ? table->n_k - 1 : RCTD_K_VAL;
  for (int i = 0; i < n; i++) {
    double yi = y[i], lam = lambda[i];
    if (isnan(lam) || !(yi >= 0) || (yi > max_row && max_row < RCTD_K_VAL)) {
      double v0, v1, v2;
      rctd_spline_eval(table, 1, &yi, &lam, &v0, &v1, &v2);
      d0[i] = v0;
      if (d1) d1[i] = v1;
      if (d2) d2[i] = v2;
      continue;
    }
    const int row = yi > RCTD_K_VAL ? RCTD_K_VAL : (int)yi;
    lam = lam < lo ? lo : lam > hi ? hi : lam;
    const int m = sf_tab.m_of_l[(int)sqrt(lam * 1e6)];
    const double *q = table->q_kx + (size_t)row * RCTD_N_X;
    const double *sq = table->sq_kx + (size_t)row * RCTD_N_X;
    const double ih = sf_tab.inv_h[m], hs = sf_tab.h6[m];
    const double diff1 = lam - x[m - 1], diff2 = x[m] - lam;
    const double diff3 = q[m] * ih - sq[m] * hs, diff4 = q[m - 1] * ih - sq[m - 1] * hs;
    const double zdi = sq[m] * ih, zdi1 = sq[m - 1] * ih;
    const double sq1 = diff1 * diff1, sq2 = diff2 * diff2;
    d0[i] = (zdi * (sq1 * diff1) + zdi1 * (sq2 * diff2)) * sixth + diff3 * diff1 + diff4 * diff2;
    if (d1) d1[i] = (zdi * sq1 - zdi1 * sq2) * 0.5 + diff3 - diff4;
    if (d2) d2[i] = zdi * diff1 + zdi1 * diff2;
  }
}
