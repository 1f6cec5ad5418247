/* A synthetic result h5ad with a known layout (see synth_result.h). */
#include "synth_result.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "output.h"

#define SR_CHUNK 8192

static const char *sr_barcode(const void *barcodes, int64_t row) {
  return ((char *const *)barcodes)[row];
}

int rctd_synth_result_write(const char *path, int64_t n_pixels, int n_types, int with_coords,
                            char *err, size_t err_len) {
  const int K = n_types;
  const int64_t S = (int64_t)ceil(sqrt((double)n_pixels));
  char **types = calloc((size_t)K, sizeof *types), **barcodes = calloc((size_t)n_pixels, 8);
  double *xy = malloc((size_t)n_pixels * 2 * sizeof *xy);
  const char *genes[2] = {"GeneA", "GeneB"};
  int rc = types && barcodes && xy ? 0 : rctd_fail(err, err_len, "out of memory");
  for (int k = 0; rc == 0 && k < K; k++)
    if (asprintf(&types[k], "type%02d", k + 1) < 0) rc = rctd_fail(err, err_len, "out of memory");
  for (int64_t i = 0; rc == 0 && i < n_pixels; i++) {
    if (asprintf(&barcodes[i], "px%07lld", (long long)i) < 0)
      rc = rctd_fail(err, err_len, "out of memory");
    xy[2 * i] = (double)(i % S), xy[2 * i + 1] = (double)(i / S);
  }
  int64_t n_fitted = n_pixels - (n_pixels + 2) / 10;
  rctd_results_info info = {.mode = RCTD_OUT_DOUBLET,
                            .sigma = 0.84,
                            .n_types = K,
                            .type_names = (const char *const *)types,
                            .n_fitted = n_fitted,
                            .n_reg = 2,
                            .n_bulk = 2,
                            .genes_reg = genes,
                            .genes_bulk = genes};
  rctd_h5ad_target target = {.n_rows = n_pixels,
                             .barcode = sr_barcode,
                             .barcode_src = barcodes,
                             .coords_n2 = with_coords ? xy : NULL};
  rctd_h5ad_writer *w = rc == 0 ? rctd_h5ad_open(path, &target, &info, err, err_len) : NULL;
  if (!w) rc = -1;
  rctd_results_summary summary;
  int have_summary = rc == 0 && rctd_results_summary_init(&summary, &info) == 0;
  if (rc == 0 && !have_summary) rc = rctd_fail(err, err_len, "out of memory");
  int64_t *row = malloc(SR_CHUNK * sizeof *row);
  const char **names = malloc(SR_CHUNK * sizeof *names);
  double *numi = malloc(SR_CHUNK * sizeof *numi), *weights = malloc(SR_CHUNK * K * sizeof(double));
  double *score = malloc(SR_CHUNK * sizeof *score), *wd = malloc(2 * SR_CHUNK * sizeof *wd);
  uint8_t *cls = malloc(SR_CHUNK), *ones = malloc(SR_CHUNK);
  int32_t *first = malloc(SR_CHUNK * sizeof *first), *second = malloc(SR_CHUNK * sizeof *second);
  if (!row || !names || !numi || !weights || !score || !wd || !cls || !ones || !first || !second)
    rc = rc ? rc : rctd_fail(err, err_len, "out of memory");
  int64_t next = 0, done = 0;
  while (rc == 0 && next < n_pixels) {
    int64_t n = 0;
    for (; next < n_pixels && n < SR_CHUNK; next++) {
      if (next % 10 == 7) continue;
      int64_t x = next % S, y = next / S;
      int k = (int)(x * K / S), k2 = (k + 1) % K, doublet = y < S / 10;
      row[n] = next, names[n] = barcodes[next], numi[n] = (double)(100 + next % 900);
      for (int j = 0; j < K; j++) weights[n * K + j] = 0;
      weights[n * K + k] = doublet ? 0.6 : 1;
      if (doublet) weights[n * K + k2] = 0.4;
      cls[n] = doublet ? 2 : 1, first[n] = k, second[n] = k2, ones[n] = 1;
      score[n] = 100, wd[2 * n] = doublet ? 0.6 : 1, wd[2 * n + 1] = doublet ? 0.4 : 0;
      n++;
    }
    rctd_results_chunk c = {.first = done,
                            .n = n,
                            .row_n = row,
                            .barcode_n = (const char *const *)names,
                            .numi_n = numi,
                            .weights_nk = weights,
                            .spot_class_n = cls,
                            .first_type_n = first,
                            .second_type_n = second,
                            .first_class_n = ones,
                            .second_class_n = ones,
                            .min_score_n = score,
                            .singlet_score_n = score,
                            .conv_all_n = ones,
                            .conv_doublet_n = ones,
                            .weights_doublet_n2 = wd,
                            .n_candidates_n = first};
    rc = rctd_h5ad_write_chunk(w, &c, err, err_len);
    rctd_results_summary_add(&summary, &info, &c);
    done += n;
  }
  if (w) {
    if (rc == 0)
      rc = rctd_h5ad_close(w, &summary, err, err_len);
    else
      rctd_h5ad_abort(w);
  }
  if (have_summary) rctd_results_summary_free(&summary);
  free(row), free(names), free(numi), free(weights), free(score), free(wd), free(cls), free(ones);
  free(first), free(second);
  for (int k = 0; types && k < K; k++) free(types[k]);
  for (int64_t i = 0; barcodes && i < n_pixels; i++) free(barcodes[i]);
  free(types), free(barcodes), free(xy);
  return rc;
}
