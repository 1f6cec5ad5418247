/* The normalisation stage: create.RCTD's pixel filters and DE gene lists and fitBulk's
 * platform-effect normalisation (spacexr restrict_counts, get_de_genes, prepareBulkData,
 * decompose_full in bulk mode, get_norm_ref), as library functions over small arrays, plus
 * the streamed driver behind rctd-normalize.
 *
 * Numerics follow R: integer count sums are exact; R's base rowMeans/rowSums/sum accumulate
 * in long double (get_de_genes' other-type mean, get_norm_ref's weighted average and sums),
 * Matrix's sums of sparse counts in double.
 *
 * Errors: functions return 0 (or a count) or -1 with one line in err. */
#ifndef RCTD_NORMALIZE_H
#define RCTD_NORMALIZE_H
#include <stddef.h>
#include <stdint.h>

#include "input.h"
#include "model.h"
#include "reference.h"
#include "stream.h"

typedef struct {
  double umi_min;         /* UMI_min 100: pixels with nUMI >= UMI_min */
  double umi_max;         /* UMI_max 2e7: and nUMI <= UMI_max */
  double counts_min;      /* counts_MIN 10: and counts (all genes, then bulk genes) >= */
  double gene_cutoff;     /* gene_cutoff 0.000125: bulk list expression cutoff */
  double fc_cutoff;       /* fc_cutoff 0.5: bulk list log fold change cutoff */
  double gene_cutoff_reg; /* gene_cutoff_reg 0.0002 */
  double fc_cutoff_reg;   /* fc_cutoff_reg 0.75 */
  double min_obs;         /* MIN_OBS 3: spatial total a gene needs for the lists */
  int min_genes;          /* 10: fewer DE genes than this is an error (create.RCTD) */
  double bulk_min_obs;    /* 10: spatial total a bulk gene needs in fitBulk (prepareBulkData) */
  int bulk_max_iter;      /* 100: fitBulk's n.iter */
  double min_change_bulk; /* MIN_CHANGE_BULK 1e-4 */
  int64_t block_pixels;   /* pixels per output block: 4096 (0 also means 4096) */
  rctd_writer_opts pixels_writer; /* how the pixel records are encoded (the output's options) */
} rctd_normalize_opts;

void rctd_normalize_opts_default(rctd_normalize_opts *opts);
/* puck.original's filter: UMI_min <= nUMI <= UMI_max and count_sum (over all genes) >= counts_MIN.
 */
int rctd_normalize_keeps_pixel(const rctd_normalize_opts *opts, double numi, double count_sum);

/* Messages for the user (info lines); NULL to drop them. */
typedef void (*rctd_note_fn)(void *ctx, const char *message);

/* Index in b of each name of a (exact match), or -1.  Returns the number matched, -1 when out
 * of memory. */
int64_t rctd_gene_match(const char *const *a, int64_t n_a, const char *const *b, int64_t n_b,
                        int32_t *b_of_a);

/* get_de_genes.  profiles_gk: n_genes (reference genes, names genes) x n_types.  sp_of_ref[g]:
 * the spatial gene of reference gene g or -1; sp_totals: spatial totals over the filtered
 * pixels (n_sp_genes).  out_g (n_genes) receives reference gene indices in R's order (union
 * in order of discovery, type by type); *n_out their number.  Errors: no common gene, fewer
 * than 10% of min(n_genes, n_sp_genes) genes left. */
int rctd_de_genes(const double *profiles_gk, int n_genes, int n_types, const char *const *genes,
                  const int32_t *sp_of_ref, const double *sp_totals, int64_t n_sp_genes,
                  double fc_thresh, double expr_thresh, double min_obs, int32_t *out_g, int *n_out,
                  char *err, size_t err_len);

/* fitBulk.  genes_b: reference gene indices of gene_list_bulk (n_bulk), totals_b: their counts
 * summed over the final pixels, sum_numi: sum of the final pixels' nUMI.  Genes with total >=
 * opts->bulk_min_obs form S = profiles * sum_numi and B = totals; bulk-mode IRWLS (the kernel
 * rctd_irwls_fit), unconstrained.  weights_k: K proportions.  *converged, *n_used may be NULL. */
int rctd_fit_bulk(const double *profiles_gk, int n_types, const int32_t *genes_b, int n_bulk,
                  const double *totals_b, double sum_numi, const rctd_normalize_opts *opts,
                  double *weights_k, int *converged, int *n_used, char *err, size_t err_len);

/* get_norm_ref over genes (reference indices, n, with their totals): renorm_nk (n x K) =
 * profile / (weight_avg / target), weight_avg = sum_k profile * w_k / sum(w) (long double),
 * target = total / sum_numi. */
void rctd_norm_ref(const double *profiles_gk, int n_types, const int32_t *genes, int n,
                   const double *totals, double sum_numi, const double *weights_k,
                   double *renorm_nk);

/* ---- streamed driver (rctd-normalize) ----
 * rctd_normalize_prepare reads the spatial input twice: pass 1, the filters and gene totals;
 * pass 2 (once the gene lists are known), the bulk restriction and the pixel records, encoded
 * with opts->pixels_writer into an anonymous temporary stream (plan->pixels_spill) since the
 * model, which pass 2 completes, comes first in the output.  It fills MODEL (everything but
 * extra records); rctd_normalize_write_pixels then copies the pixel records to the output.
 * Memory: O(genes x types) and a block of pixels; the kept pixels' nUMI (the model's
 * pixel_numi) go to an anonymous temporary file in the input's tmp_dir
 * (model->pixel_numi_spill), nUMI that are count sums are summed per row as the counts stream
 * by, the names are read back from the input's temporary file row by row (rctd_input_barcode);
 * only what the input itself holds per row (given nUMI, coordinates, names where a side table
 * needs them) grows with the pixel count.  Disk: the pixel records, about the output's size.
 * Each pass reports its progress (rctd_progress: silent with --quiet). */
typedef struct {
  int64_t n_rows;     /* spatial rows read */
  int64_t n_pass_umi; /* after UMI_min, UMI_max, counts_MIN over all genes (puck.original) */
  int64_t n_pixels;   /* after counts_MIN over bulk genes (puck) */
  int64_t n_sp_genes;
  int32_t *bulk_pos_s; /* spatial gene -> position in gene_list_bulk, or -1 */
  int32_t *reg_pos_s;  /* spatial gene -> position in gene_list_reg, or -1 */
  int n_bulk_fit;      /* bulk genes used by fitBulk (total >= bulk_min_obs) */
  FILE *pixels_spill;  /* the pixel records (an rctd stream), closed by _plan_free */
} rctd_normalize_plan;

void rctd_normalize_plan_free(rctd_normalize_plan *plan);

int rctd_normalize_prepare(rctd_input *spatial, const rctd_reference_data *ref,
                           const rctd_normalize_opts *opts, rctd_model *model,
                           rctd_normalize_plan *plan, rctd_note_fn note, void *note_ctx, char *err,
                           size_t err_len);

/* Copies the pixel records of PLAN (rctd_normalize_prepare) to W.  0 or -1. */
int rctd_normalize_write_pixels(const rctd_normalize_plan *plan, rctd_writer *w, char *err,
                                size_t err_len);

/* Replaces the model's classes (from the reference) with those of a class table
 * (rctd_class_table_read: every type needs a row) and renumbers class_k.  0 or -1. */
int rctd_normalize_class_table(rctd_model *model, const char *path, char *err, size_t err_len);

/* The effective configuration as the model's config (R names, %.17g values). */
int rctd_normalize_config(const rctd_normalize_opts *opts, rctd_model *model);

#endif
