/* psd()'s clamped path (D = H + sum over the clamped eigenvalues of (1e-3 - lambda) v v', the
 * vectors by inverse iteration) against the full eigendecomposition: the same norm bits, D within
 * a few eps ||H||, the same bits on every SIMD level and alone or interleaved, on matrices with
 * chosen spectra (clusters, exact repeats, zero eigenvalues, all negative, positive definite). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/psd.h"
#include "cpu/spline_fast.h"
#include "test.h"

static uint64_t pc_state = 0x2545F4914F6CDD1DULL;

static double pc_uniform(void) { /* xorshift64: [0, 1) */
  pc_state ^= pc_state << 13;
  pc_state ^= pc_state >> 7;
  pc_state ^= pc_state << 17;
  return (double)(pc_state >> 11) * 0x1p-53;
}

enum { PC_KMAX = 40, PC_KINDS = 9 };

/* The eigenvalues of kind `kind` (scale s = the largest magnitude):
 * 0 positive definite (nothing clamped), 1 one to three negative, 2 a cluster of three close
 * negative ones (1e-12 s apart) and a pair straddling the floor, 3 an exact triple repeat, 4
 * zeros of multiplicity k / 3 (rank-deficient), 5 all negative, 6 a negative majority, 7 the
 * realistic shape (eigenvalues from 1e-7 s to s, a few below the floor, one tiny negative), 8 a
 * random number of negative ones with a repeated pair. */
static void pc_spectrum(int k, int kind, double s, double *lam) {
  for (int i = 0; i < k; i++) lam[i] = s * (0.01 + 0.99 * pc_uniform());
  lam[0] = s;
  const int nneg = 1 + (int)(3 * pc_uniform());
  switch (kind) {
    case 1:
      for (int i = 1; i <= nneg && i < k; i++) lam[i] = -s * pc_uniform();
      break;
    case 2:
      lam[1] = -0.4 * s, lam[2] = -0.4 * s + 1e-12 * s, lam[k - 1] = -0.4 * s - 1e-12 * s;
      lam[k - 2] = 0.9e-3, lam[k - 3] = 1.1e-3;
      break;
    case 3:
      lam[1] = lam[2] = lam[3] = -0.3 * s;
      break;
    case 4:
      for (int i = 1; i <= k / 3; i++) lam[i] = 0;
      break;
    case 5:
      for (int i = 0; i < k; i++) lam[i] = -s * (0.01 + 0.99 * pc_uniform());
      break;
    case 6:
      for (int i = 1; i < k; i++) lam[i] = -lam[i];
      break;
    case 7:
      for (int i = 1; i < k; i++) lam[i] = s * pow(10, -7 * pc_uniform());
      lam[k / 2] = -1e-9 * s;
      break;
    case 8:
      for (int i = 1; i <= nneg + 1 && i < k; i++) lam[i] = -s * pc_uniform();
      if (k > 4) lam[k - 1] = lam[1];
      break;
    default:
      break;
  }
}

/* H = Q diag(lam) Q' for a random orthogonal Q (a product of k random reflectors). */
static void pc_matrix(int k, const double *lam, double *H) {
  static double Q[PC_KMAX * PC_KMAX];
  double v[PC_KMAX];
  for (int i = 0; i < k * k; i++) Q[i] = i % (k + 1) == 0;
  for (int r = 0; r < k; r++) {
    double vv = 0;
    for (int i = 0; i < k; i++) v[i] = 2 * pc_uniform() - 1, vv += v[i] * v[i];
    for (int j = 0; j < k; j++) { /* column j of Q <- (I - 2 v v' / v'v) column j */
      double dot = 0;
      for (int i = 0; i < k; i++) dot += v[i] * Q[i * k + j];
      for (int i = 0; i < k; i++) Q[i * k + j] -= 2 * dot / vv * v[i];
    }
  }
  for (int i = 0; i < k; i++)
    for (int j = 0; j <= i; j++) {
      double sum = 0;
      for (int m = 0; m < k; m++) sum += Q[i * k + m] * lam[m] * Q[j * k + m];
      H[i * k + j] = H[j * k + i] = sum;
    }
}

/* The clamped path against the full one: norms the same bits, |P - P_full| (P = D norm) within
 * 16 eps ||H||_2 (3.6e-15 ||H||: both paths err by up to about 10 eps ||H|| on these spectra),
 * positive definite matrices give D = H / norm exactly, and every SIMD level and the interleaved
 * form give the clamped path's bits. */
TEST(psd_clamped_vs_full) {
  static double H[RCTD_PSD_MANY_MAX][PC_KMAX * PC_KMAX], lam[PC_KMAX];
  static double D_full[PC_KMAX * PC_KMAX], D_new[PC_KMAX * PC_KMAX], D_alt[PC_KMAX * PC_KMAX];
  static double D_many[RCTD_PSD_MANY_MAX][PC_KMAX * PC_KMAX];
  void *ws[RCTD_PSD_MANY_MAX];
  for (int t = 0; t < RCTD_PSD_MANY_MAX; t++) ws[t] = malloc(rctd_psd_workspace_bytes(PC_KMAX));
  const int had_simd = rctd_cpu_simd(-1), had_clamped = rctd_psd_clamped_enable(-1);
  double worst = 0;
  int n_checked = 0, n_differ = 0;
  for (int k = 3; k <= PC_KMAX; k++)
    for (int rep = 0; rep < 2 * PC_KINDS; rep++) {
      const int kind = rep % PC_KINDS;
      const double scale = rep < PC_KINDS ? 1 : kind % 2 ? 3e4 : 2e-2;
      for (int t = 0; t < RCTD_PSD_MANY_MAX; t++) {
        pc_spectrum(k, (kind + t) % PC_KINDS, scale, lam);
        pc_matrix(k, lam, H[t]);
      }
      double hnorm = 0, lam_min = INFINITY;
      pc_spectrum(k, kind, scale, lam); /* H[0] again, for its 2-norm */
      pc_matrix(k, lam, H[0]);
      for (int i = 0; i < k; i++)
        hnorm = fmax(hnorm, fabs(lam[i])), lam_min = fmin(lam_min, lam[i]);
      rctd_cpu_simd(had_simd);
      rctd_psd_clamped_enable(0);
      const double norm_full = rctd_psd_scaled(k, H[0], D_full, ws[0]);
      rctd_psd_clamped_enable(1);
      const double norm_new = rctd_psd_scaled(k, H[0], D_new, ws[0]);
      CHECK_MSG(memcmp(&norm_full, &norm_new, sizeof norm_new) == 0,
                "k %d kind %d: norm %.17g vs %.17g", k, kind, norm_new, norm_full);
      double err = 0;
      for (int i = 0; i < k * k; i++) err = fmax(err, fabs(D_new[i] - D_full[i]) * norm_new);
      err /= 0x1p-52 * hnorm;
      worst = fmax(worst, err);
      CHECK_MSG(err <= 16, "k %d kind %d scale %g: |P - P_full| = %.3g eps ||H||", k, kind, scale,
                err);
      n_differ += memcmp(D_new, D_full, sizeof(double) * k * k) != 0;
      if (lam_min > 2e-3) /* nothing clamped */
        for (int i = 0; i < k * k; i++)
          CHECK_MSG(D_new[i] == H[0][i] / norm_new, "k %d: D != H / norm at %d", k, i);
      /* the plain C path, and eight matrices interleaved: the same bits */
      rctd_cpu_simd(0);
      const double norm_alt = rctd_psd_scaled(k, H[0], D_alt, ws[0]);
      CHECK(memcmp(&norm_alt, &norm_new, sizeof norm_new) == 0);
      CHECK_MSG(memcmp(D_alt, D_new, sizeof(double) * k * k) == 0, "k %d kind %d: plain C", k,
                kind);
      for (int simd = 0; simd <= 1; simd++) {
        rctd_cpu_simd(simd && had_simd);
        const double *Hp[RCTD_PSD_MANY_MAX];
        double *Dp[RCTD_PSD_MANY_MAX], norms[RCTD_PSD_MANY_MAX];
        for (int t = 0; t < RCTD_PSD_MANY_MAX; t++) Hp[t] = H[t], Dp[t] = D_many[t];
        rctd_psd_scaled_many(k, RCTD_PSD_MANY_MAX, Hp, Dp, ws, norms);
        CHECK(memcmp(&norms[0], &norm_new, sizeof norm_new) == 0);
        CHECK_MSG(memcmp(D_many[0], D_new, sizeof(double) * k * k) == 0, "k %d kind %d: many", k,
                  kind);
      }
      n_checked++;
    }
  rctd_cpu_simd(had_simd);
  rctd_psd_clamped_enable(had_clamped);
  for (int t = 0; t < RCTD_PSD_MANY_MAX; t++) free(ws[t]);
  fprintf(
      stderr,
      "  psd_clamped_vs_full: %d matrices (%d not the full path's bits), worst %.3g eps ||H||\n",
      n_checked, n_differ, worst);
  CHECK(n_checked == 38 * 2 * PC_KINDS && n_differ > n_checked / 2);
}
