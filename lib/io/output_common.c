/* Shared pieces of the result writers: names, summary counts, R's number formatting. */
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "output.h"

const char *rctd_out_spot_class_name(int spot_class) {
  static const char *const names[RCTD_OUT_N_SPOT_CLASSES] = {"reject", "singlet", "doublet_certain",
                                                             "doublet_uncertain"};
  return spot_class >= 0 && spot_class < RCTD_OUT_N_SPOT_CLASSES ? names[spot_class] : "NA";
}

const char *rctd_out_multi_status_name(int status) {
  static const char *const names[RCTD_OUT_N_MULTI_STATUS] = {"ok", "no_candidate", "no_type"};
  return status >= 0 && status < RCTD_OUT_N_MULTI_STATUS ? names[status] : "NA";
}

int rctd_out_argmax(const double *w, int n) {
  int best = 0;
  for (int k = 1; k < n; k++)
    if (w[k] > w[best]) best = k;
  return best;
}

int rctd_results_summary_init(rctd_results_summary *s, const rctd_results_info *info) {
  memset(s, 0, sizeof *s);
  s->n_types = info->n_types;
  s->multi_slots = info->mode == RCTD_OUT_MULTI ? info->multi_slots : 0;
  s->dominant_k = calloc((size_t)info->n_types, sizeof *s->dominant_k);
  s->n_types_counts = calloc((size_t)s->multi_slots + 1, sizeof *s->n_types_counts);
  if (!s->dominant_k || !s->n_types_counts) {
    rctd_results_summary_free(s);
    return -1;
  }
  return 0;
}

void rctd_results_summary_add(rctd_results_summary *s, const rctd_results_info *info,
                              const rctd_results_chunk *c) {
  const int K = info->n_types;
  for (int64_t i = 0; i < c->n; i++) {
    s->n_fitted++;
    s->dominant_k[rctd_out_argmax(c->weights_nk + i * K, K)]++;
    if (info->mode == RCTD_OUT_DOUBLET && c->spot_class_n[i] < RCTD_OUT_N_SPOT_CLASSES)
      s->spot_class[c->spot_class_n[i]]++;
    if (info->mode == RCTD_OUT_MULTI) {
      if (c->multi_status_n[i] < RCTD_OUT_N_MULTI_STATUS) s->multi_status[c->multi_status_n[i]]++;
      int32_t t = c->n_types_n[i];
      if (t >= 0 && t <= s->multi_slots) s->n_types_counts[t]++;
    }
  }
}

void rctd_results_summary_free(rctd_results_summary *s) {
  free(s->dominant_k);
  free(s->n_types_counts);
  s->dominant_k = NULL;
  s->n_types_counts = NULL;
}

/* Significant digits (at most DIGITS) and decimal exponent of finite non-zero X after rounding
 * to DIGITS digits, as R's scientific(). */
static void out_sig_digits(double x, int digits, int *nsig, int *kpower) {
  char sci[64];
  snprintf(sci, sizeof sci, "%.*e", digits - 1, fabs(x));
  char *e = strchr(sci, 'e');
  *kpower = atoi(e + 1);
  *nsig = digits;
  for (char *p = e - 1; *nsig > 1 && *p == '0'; p--) (*nsig)--;
}

/* R's formatReal over a vector: one notation and one number of decimals for all, the narrower
 * of fixed and scientific (fixed on ties, scipen 0), each value padded to the common width. */
void rctd_out_format_doubles(const double *x, int n, int digits, char (*bufs)[40]) {
  if (digits < 1) digits = 1;
  if (digits > 17) digits = 17;
  int any = 0, neg = 0, mxsl = 1, rgt = 0, mxns = 1, mxe = INT_MIN, mne = INT_MAX, w_na = 0;
  for (int i = 0; i < n; i++) {
    if (!isfinite(x[i])) {
      int w = isnan(x[i]) ? 2 : x[i] > 0 ? 3 : 4;
      if (w > w_na) w_na = w;
      continue;
    }
    int nsig = 1, kpower = 0, neg_i = x[i] < 0;
    if (x[i] != 0) out_sig_digits(x[i], digits, &nsig, &kpower);
    /* Rounding up to a power of ten (9.99.. -> 10) leaves one digit fewer left of the point. */
    int left = kpower + 1;
    if (x[i] != 0 && kpower > 0 && fabs(x[i]) < pow(10.0, kpower)) left--;
    int sleft = neg_i + (left <= 0 ? 1 : left);
    int right = nsig - left;
    if (sleft > mxsl) mxsl = sleft;
    if (right > rgt) rgt = right;
    if (nsig > mxns) mxns = nsig;
    if (kpower > mxe) mxe = kpower;
    if (kpower < mne) mne = kpower;
    neg |= neg_i;
    any = 1;
  }
  int sci = 0, width = w_na, decimals = 0;
  if (any) {
    int width_fixed = mxsl + rgt + (rgt != 0);
    int exp_digits = (mxe >= 100 || mne <= -99) ? 2 : 1;
    int width_sci = neg + (mxns > 1) + (mxns - 1) + 4 + exp_digits;
    sci = width_fixed > width_sci;
    decimals = sci ? mxns - 1 : rgt;
    int w = sci ? width_sci : width_fixed;
    if (w > width) width = w;
  }
  for (int i = 0; i < n; i++) {
    if (isnan(x[i]))
      snprintf(bufs[i], 40, "%*s", width, "NA");
    else if (isinf(x[i]))
      snprintf(bufs[i], 40, "%*s", width, x[i] > 0 ? "Inf" : "-Inf");
    else if (sci)
      snprintf(bufs[i], 40, "%*.*e", width, decimals, x[i]);
    else
      snprintf(bufs[i], 40, "%*.*f", width, decimals, x[i]);
  }
}

void rctd_out_format_double(double x, int digits, char *buf, size_t len) {
  char one[1][40];
  rctd_out_format_doubles(&x, 1, digits, one);
  snprintf(buf, len, "%s", one[0]);
}

/* A code outside [lo, hi) at pixel I of record WHAT. */
static int out_bad_code(const rctd_results_chunk *c, int64_t i, const char *what, int64_t value,
                        int64_t lo, int64_t hi, const char *label, char *err, size_t err_len) {
  snprintf(err, err_len,
           "%s: pixel %" PRId64 " (%s): %s %" PRId64 " is outside [%" PRId64 ", %" PRId64
           "): the stream is damaged or was altered",
           label, c->first + i, c->barcode_n ? c->barcode_n[i] : "?", what, value, lo, hi);
  return -1;
}

#define OUT_CHECK(arr, what, lo, hi)                                                     \
  do {                                                                                   \
    if ((arr) && ((int64_t)(arr)[i] < (lo) || (int64_t)(arr)[i] >= (hi)))                \
      return out_bad_code(c, i, what, (int64_t)(arr)[i], lo, hi, label, err, err_len);   \
  } while (0)

int rctd_results_chunk_check(const rctd_results_info *info, const rctd_results_chunk *c,
                             const char *label, char *err, size_t err_len) {
  const int64_t K = info->n_types, M = info->multi_slots;
  for (int64_t i = 0; i < c->n; i++) {
    if (info->mode == RCTD_OUT_FULL) OUT_CHECK(c->conv_n, "converged flag", 0, 2);
    if (info->mode == RCTD_OUT_DOUBLET) {
      OUT_CHECK(c->spot_class_n, "spot class", 0, RCTD_OUT_N_SPOT_CLASSES);
      OUT_CHECK(c->first_type_n, "first type", 0, K);
      OUT_CHECK(c->second_type_n, "second type", 0, K);
      OUT_CHECK(c->first_class_n, "first class flag", 0, 2);
      OUT_CHECK(c->second_class_n, "second class flag", 0, 2);
      OUT_CHECK(c->conv_all_n, "converged flag", 0, 2);
      OUT_CHECK(c->conv_doublet_n, "converged flag", 0, 2);
      OUT_CHECK(c->n_candidates_n, "candidate count", 0, K + 1);
    }
    if (info->mode == RCTD_OUT_MULTI) {
      OUT_CHECK(c->multi_status_n, "multi status", 0, RCTD_OUT_N_MULTI_STATUS);
      OUT_CHECK(c->n_types_n, "type count", 0, M + 1);
      OUT_CHECK(c->conv_all_n, "converged flag", 0, 2);
      OUT_CHECK(c->conv_sub_n, "converged flag", 0, 2);
      for (int64_t j = 0; j < M; j++) {
        const int64_t at = i * M + j;
        if (c->types_nm && (c->types_nm[at] < -1 || c->types_nm[at] >= K))
          return out_bad_code(c, i, "type", c->types_nm[at], -1, K, label, err, err_len);
        if (c->conf_nm && c->conf_nm[at] > 1)
          return out_bad_code(c, i, "confidence flag", c->conf_nm[at], 0, 2, label, err, err_len);
      }
    }
  }
  return 0;
}
