/* The vignette's inputs of fitPixels, read from R's gold files, for the fitting tests
 * (test_fit_modes.c, test_fit_stage.c): the gold doublet norm_profiles restricted to
 * gene_list_reg, the CSV counts of the gold pixels (in the order of gold full/weights.csv) over
 * those genes, and nUMI = column sums over all genes. */
#ifndef RCTD_TEST_FIT_VIGNETTE_H
#define RCTD_TEST_FIT_VIGNETTE_H

typedef struct {
  int n_genes, n_types, n_pix;
  char **genes;        /* G: gene_list_reg */
  char **types;        /* K: the profiles' column names */
  char **barcodes;     /* N */
  double *profiles_gk; /* G x K */
  double *y_ng;        /* N x G */
  double *numi_n;      /* N */
} rctd_test_fit_vignette;

/* 0, or -1 when a file under SHARED_DIR is missing or a gene or barcode is not found. */
int rctd_test_fit_vignette_load(const char *repo_dir, rctd_test_fit_vignette *v);

/* Helpers for comparing with R's gold CSVs: R's logical "TRUE"; |a - b| / |b|; whether
 * RCTD_TEST_VERBOSE asks for the measured differences; splits "a;b;c" (in place) into at most
 * MAX fields and returns their number. */
int rctd_test_fit_bool(const char *s);
double rctd_test_fit_rel(double a, double b);
int rctd_test_fit_verbose(void);
int rctd_test_fit_split(char *s, char **out, int max);

#endif
