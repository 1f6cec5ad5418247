/* Shared loader of the vignette's fitting inputs (fit_vignette.h). */
#include "fit_vignette.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "synth.h"

/* The column of COUNTS whose header is BC, or -1. */
static int fit_vignette_column(const rctd_synth_csv *counts, const char *bc) {
  for (int c = 1; c < counts->n_cols; c++)
    if (strcmp(rctd_synth_csv_at(counts, 0, c), bc) == 0) return c;
  return -1;
}

int rctd_test_fit_vignette_load(const char *sh, rctd_test_fit_vignette *v) {
  char path[1024];
  rctd_synth_csv weights, prof, counts;
  snprintf(path, sizeof path, "%s/tests/data/gold/vignette/full/weights.csv", sh);
  if (rctd_synth_csv_read(path, &weights, NULL, 0)) return -1;
  snprintf(path, sizeof path, "%s/tests/data/gold/vignette/doublet/norm_profiles.csv", sh);
  if (rctd_synth_csv_read(path, &prof, NULL, 0)) return -1;
  snprintf(path, sizeof path, "%s/data/vignette/csv/spatial/MappedDGEForR.csv", sh);
  if (rctd_synth_csv_read(path, &counts, NULL, 0)) return -1;
  snprintf(path, sizeof path, "%s/tests/data/gold/vignette/doublet/gene_list_reg.txt", sh);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  const int K = prof.n_cols - 1, N = weights.n_rows - 1, cap = 4096;
  v->n_types = K;
  v->n_pix = N;
  v->genes = calloc(cap, sizeof *v->genes);
  int *prof_row = malloc(cap * sizeof *prof_row), *count_row = malloc(cap * sizeof *count_row);
  char gene[256];
  int G = 0;
  while (G < cap && fscanf(f, "%255s", gene) == 1) {
    prof_row[G] = rctd_synth_csv_row_of(&prof, gene);
    count_row[G] = rctd_synth_csv_row_of(&counts, gene);
    if (prof_row[G] < 0 || count_row[G] < 0) return -1;
    v->genes[G++] = strdup(gene);
  }
  fclose(f);
  v->n_genes = G;
  v->types = calloc(K, sizeof *v->types);
  for (int k = 0; k < K; k++) v->types[k] = strdup(rctd_synth_csv_at(&prof, 0, k + 1));
  v->profiles_gk = malloc((size_t)G * K * sizeof(double));
  for (int g = 0; g < G; g++)
    for (int k = 0; k < K; k++)
      v->profiles_gk[(size_t)g * K + k] =
          strtod(rctd_synth_csv_at(&prof, prof_row[g], k + 1), NULL);
  v->barcodes = calloc(N, sizeof *v->barcodes);
  v->numi_n = malloc((size_t)N * sizeof(double));
  v->y_ng = malloc((size_t)N * G * sizeof(double));
  for (int n = 0; n < N; n++) {
    const char *bc = rctd_synth_csv_at(&weights, n + 1, 0);
    v->barcodes[n] = strdup(bc);
    int col = fit_vignette_column(&counts, bc);
    if (col < 0) return -1;
    long double numi = 0;
    for (int r = 1; r < counts.n_rows; r++)
      numi += strtod(rctd_synth_csv_at(&counts, r, col), NULL);
    v->numi_n[n] = (double)numi;
    for (int g = 0; g < G; g++)
      v->y_ng[(size_t)n * G + g] = strtod(rctd_synth_csv_at(&counts, count_row[g], col), NULL);
  }
  free(prof_row);
  free(count_row);
  rctd_synth_csv_free(&weights);
  rctd_synth_csv_free(&prof);
  rctd_synth_csv_free(&counts);
  return 0;
}

int rctd_test_fit_bool(const char *s) {
  return strcmp(s, "TRUE") == 0;
}

double rctd_test_fit_rel(double a, double b) {
  return fabs(a - b) / fmax(fabs(b), 1e-300);
}

int rctd_test_fit_verbose(void) {
  return getenv("RCTD_TEST_VERBOSE") != NULL;
}

int rctd_test_fit_split(char *s, char **out, int max) {
  int n = 0;
  if (!*s) return 0;
  for (char *tok = strtok(s, ";"); tok && n < max; tok = strtok(NULL, ";")) out[n++] = tok;
  return n;
}
