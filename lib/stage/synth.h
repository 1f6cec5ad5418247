/* Synthetic model streams for benchmarks and tests of the fitting stage (issue 6's recipe).
 *
 * Profiles: the vignette reference (DGE CSV genes x cells, meta CSV barcode,cluster,nUMI, and
 * the cluster -> name CSV): per type, the mean over its cells of counts / nUMI, over all genes
 * (K = 19, G = 384).  Every gene is a regression gene.  Pixels, with a fixed seed (GSL mt19937):
 *   - one type (uniform), or with probability doublet_fraction two distinct types with
 *     proportion p ~ U(0.25, 0.75) of the first;
 *   - nUMI = round(exp(log(600) + 0.5 z)) clipped to 100..5000;
 *   - a per-gene platform factor exp(N(0, 0.3)) (one per dataset) and per-pixel per-gene noise
 *     exp(N(0, 0.5));
 *   - counts ~ Poisson(nUMI * factor * noise * (p profile_1 + (1 - p) profile_2)).
 * The stream is a model stream (lib/format/model.h) with a "sigma" meta record (sigma_c) and the pixel
 * blocks; rctd-fit-* read it directly. */
#ifndef RCTD_SYNTH_H
#define RCTD_SYNTH_H
#include <stddef.h>
#include <stdint.h>

#include "stream.h"

typedef struct {
  int64_t n_pixels;
  uint64_t seed;
  double doublet_fraction;   /* 0.5 */
  double sigma_c;            /* written as the stream's sigma: 1.00 */
  double numi_center;        /* 600 */
  double numi_sdlog;         /* 0.5 */
  double numi_min, numi_max; /* 100, 5000 */
  double platform_sdlog;     /* 0.3 */
  double noise_sdlog;        /* 0.5 */
  int block_pixels;          /* pixels per block of the stream: 4096 */
} rctd_synth_opts;

void rctd_synth_opts_default(rctd_synth_opts *opts);

/* Reference profiles from the vignette CSVs in REF_DIR (dge.csv, meta_data.csv,
 * cell_type_dict.csv).  Allocates type_names (K), gene_names (G) and profiles_gk (G x K).
 * 0, or -1 with a message in err. */
typedef struct {
  int n_types, n_genes;
  char **type_names, **gene_names;
  double *profiles_gk;
} rctd_synth_reference;

int rctd_synth_reference_load(const char *ref_dir, rctd_synth_reference *ref, char *err,
                              size_t err_len);
void rctd_synth_reference_free(rctd_synth_reference *ref);

/* A small CSV file (the vignette's and R's gold outputs) as rows of fields: comma-separated and
 * split by the readers' splitter (input_split: quotes around a field stripped), CRLF or LF.  Held
 * in memory whole. */
typedef struct {
  char *text;
  char **cell; /* n_rows x n_cols, into text */
  int n_rows, n_cols;
} rctd_synth_csv;

/* 0, or -1 with a message in err (nothing left allocated) when the file cannot be read or its
 * rows differ in their number of fields. */
int rctd_synth_csv_read(const char *path, rctd_synth_csv *c, char *err, size_t err_len);
void rctd_synth_csv_free(rctd_synth_csv *c);
const char *rctd_synth_csv_at(const rctd_synth_csv *c, int row, int col);
/* The row (from 1: row 0 is the header) whose first field is NAME, or -1. */
int rctd_synth_csv_row_of(const rctd_synth_csv *c, const char *name);

/* Writes the synthetic model stream to W (records only: the caller opens and closes W).
 * 0, or -1 with a message in err. */
int rctd_synth_write(const rctd_synth_reference *ref, const rctd_synth_opts *opts, rctd_writer *w,
                     char *err, size_t err_len);

#endif
