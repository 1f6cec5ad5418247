/* Shared pieces of the result writers: names, summary counts, R's number formatting. */
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

/* R's formatReal for one finite non-zero value: significant digits needed (at most DIGITS) and
 * the decimal exponent after rounding, then the narrower of fixed and scientific notation. */
void rctd_out_format_double(double x, int digits, char *buf, size_t len) {
  if (isnan(x)) {
    snprintf(buf, len, "NA");
    return;
  }
  if (isinf(x)) {
    snprintf(buf, len, x > 0 ? "Inf" : "-Inf");
    return;
  }
  if (x == 0) {
    snprintf(buf, len, "0");
    return;
  }
  if (digits < 1) digits = 1;
  if (digits > 17) digits = 17;
  char sci[64];
  snprintf(sci, sizeof sci, "%.*e", digits - 1, fabs(x));
  char *e = strchr(sci, 'e');
  int kpower = atoi(e + 1);
  int nsig = digits;
  for (char *p = e - 1; nsig > 1 && *p == '0'; p--) nsig--;
  const int neg = x < 0;
  /* Rounding up to a power of ten (9.99.. -> 10) leaves one digit fewer left of the point. */
  int left = kpower + 1;
  if (kpower > 0 && fabs(x) < pow(10.0, kpower)) left--;
  int sleft = neg + (left <= 0 ? 1 : left);
  int rgt = nsig - left;
  if (rgt < 0) rgt = 0;
  int width_fixed = sleft + rgt + (rgt != 0);
  int exp_digits = (kpower >= 100 || kpower <= -99) ? 2 : 1;
  int width_sci = neg + (nsig > 1) + (nsig - 1) + 4 + exp_digits;
  if (width_fixed <= width_sci)
    snprintf(buf, len, "%.*f", rgt, x);
  else
    snprintf(buf, len, "%.*e", nsig - 1, x);
}
