/* Synthetic slides of real-world shape (issue 13): a single-cell reference h5ad and a spatial
 * 10x HDF5, generated from a seed, read by the real readers so that a benchmark runs every stage.
 *
 * Recipe (defaults = the realistic recipe: K = 30, 20,000 reference genes, 19,000 spatial):
 *   - gene base expression b_g = exp(N(0, base_sdlog)) (heavy-tailed); each type picks
 *     markers_per_type marker genes (boost exp(U(log 4, log 30))) and varies every gene by
 *     exp(N(0, type_sdlog)); profile = that, normalised to sum 1 per type;
 *   - reference: cells_per_type cells per type, nUMI = round(exp(log(ref_numi_median) +
 *     ref_numi_sdlog z)) >= 100, counts multinomial from the type's profile;
 *   - spatial genes: shared_fraction of them are reference genes (markers first), the rest are
 *     spatial-only genes with their own base expression; a platform factor exp(N(0,
 *     platform_sdlog)) per gene; per type the spatial profile is renormalised to sum 1;
 *   - pixels: one uniform type or, with probability doublet_fraction, two distinct types with
 *     proportion p ~ U(0.25, 0.75) of the first; nUMI = round(exp(log(pixel_numi_median) +
 *     pixel_numi_sdlog z)) >= 1; counts Poisson(nUMI mix_g exp(N(0, noise_sdlog))) for the genes
 *     of either type's profile above 1/(4 G), multinomial for the (rarely drawn) rest.
 * The reference h5ad: X CSR float32 counts, obs/_index, obs/cell_type (categorical), var/_index.
 * The spatial 10x HDF5 (Cell Ranger 3 layout): matrix/{data,indices,indptr,shape,barcodes,
 * features/{id,name,feature_type,genome}}.  Both written in row blocks (memory independent of
 * the number of cells or pixels), deflate level 1. */
#ifndef RCTD_SYNTH_SLIDE_H
#define RCTD_SYNTH_SLIDE_H
#include <stddef.h>
#include <stdint.h>

typedef struct {
  uint64_t seed;
  int n_types;                    /* 30 */
  int markers_per_type;           /* 125 */
  double base_sdlog, type_sdlog;  /* 1.5, 0.3 */
  int ref_genes;                  /* 20000 */
  int cells_per_type;             /* 1500 */
  double ref_numi_median;         /* 3000 */
  double ref_numi_sdlog;          /* 0.4 */
  int spatial_genes;              /* 19000 */
  double shared_fraction;         /* 0.9 */
  double platform_sdlog;          /* 0.3 */
  int64_t n_pixels;               /* 10000 */
  double pixel_numi_median;       /* 350 */
  double pixel_numi_sdlog;        /* 0.6 */
  double doublet_fraction;        /* 0.5 */
  double noise_sdlog;             /* 0.5 */
} rctd_slide_opts;

/* The realistic recipe's defaults. */
void rctd_slide_opts_default(rctd_slide_opts *o);
/* A named recipe: "realistic" (the defaults), "k50" (K = 50), "xenium" (a 400-gene panel of
 * marker genes, K = 20, 20 markers per type, median nUMI 200).  0, or -1 for an unknown name. */
int rctd_slide_opts_recipe(rctd_slide_opts *o, const char *name);

/* Writes the reference h5ad to REF_PATH and the spatial 10x HDF5 to SPATIAL_PATH (either may be
 * NULL to skip it).  0, or -1 with a message in err. */
int rctd_slide_write(const rctd_slide_opts *o, const char *ref_path, const char *spatial_path,
                     char *err, size_t err_len);

#endif
