/* Synthetic model streams (see synth.h). */
#include "synth.h"

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "model.h"
#include "text.h"

void rctd_synth_opts_default(rctd_synth_opts *opts) {
  memset(opts, 0, sizeof *opts);
  opts->n_pixels = 10000;
  opts->seed = 20240601;
  opts->doublet_fraction = 0.5;
  opts->sigma_c = 1.0;
  opts->numi_center = 600;
  opts->numi_sdlog = 0.5;
  opts->numi_min = 100;
  opts->numi_max = 5000;
  opts->platform_sdlog = 0.3;
  opts->noise_sdlog = 0.5;
  opts->block_pixels = 4096;
}

/* ------------------------------------------------------------------ CSV (the vignette's) */

void rctd_synth_csv_free(rctd_synth_csv *c) {
  free(c->text);
  free(c->cell);
  memset(c, 0, sizeof *c);
}

/* Fills C from PATH; on failure C holds what was read so far. */
static int synth_csv_parse(const char *path, rctd_synth_csv *c, char *err, size_t err_len) {
  memset(c, 0, sizeof *c);
  FILE *f = fopen(path, "rb");
  if (!f) return rctd_fail(err, err_len, "%s: cannot open", path);
  size_t cap = 1 << 16, len = 0;
  c->text = malloc(cap);
  for (size_t got; c->text && (got = fread(c->text + len, 1, cap - len - 1, f)) > 0;) {
    len += got;
    if (len + 1 == cap) {
      char *bigger = realloc(c->text, cap *= 2);
      if (!bigger) free(c->text);
      c->text = bigger;
    }
  }
  fclose(f);
  if (!c->text) return rctd_fail(err, err_len, "%s: out of memory", path);
  c->text[len] = 0;
  size_t n_fields = 1;
  for (size_t i = 0; i < len; i++) n_fields += c->text[i] == ',' || c->text[i] == '\n';
  c->cell = malloc(n_fields * sizeof *c->cell);
  if (!c->cell) return rctd_fail(err, err_len, "%s: out of memory", path);
  size_t n = 0;
  for (char *p = c->text; *p;) {
    char *end = strchr(p, '\n');
    if (end) *end = 0;
    if (end && end > p && end[-1] == '\r') end[-1] = 0;
    int cols = (int)input_split(p, ',', c->cell + n, (int64_t)(n_fields - n));
    n += (size_t)cols;
    if (c->n_rows == 0) c->n_cols = cols;
    if (cols != c->n_cols)
      return rctd_fail(err, err_len, "%s: line %d has %d fields, expected %d", path, c->n_rows + 1,
                       cols, c->n_cols);
    c->n_rows++;
    if (!end) break;
    p = end + 1;
    if (!*p) break;
  }
  return 0;
}

int rctd_synth_csv_read(const char *path, rctd_synth_csv *c, char *err, size_t err_len) {
  if (synth_csv_parse(path, c, err, err_len) == 0) return 0;
  rctd_synth_csv_free(c);
  return -1;
}

const char *rctd_synth_csv_at(const rctd_synth_csv *c, int row, int col) {
  return c->cell[(size_t)row * (size_t)c->n_cols + (size_t)col];
}

int rctd_synth_csv_row_of(const rctd_synth_csv *c, const char *name) {
  for (int r = 1; r < c->n_rows; r++)
    if (strcmp(rctd_synth_csv_at(c, r, 0), name) == 0) return r;
  return -1;
}

/* ------------------------------------------------------------------ reference */

void rctd_synth_reference_free(rctd_synth_reference *ref) {
  for (int k = 0; ref->type_names && k < ref->n_types; k++) free(ref->type_names[k]);
  for (int g = 0; ref->gene_names && g < ref->n_genes; g++) free(ref->gene_names[g]);
  free(ref->type_names);
  free(ref->gene_names);
  free(ref->profiles_gk);
  memset(ref, 0, sizeof *ref);
}

static int synth_reference_fill(const rctd_synth_csv *dge, const rctd_synth_csv *meta,
                                const rctd_synth_csv *dict, rctd_synth_reference *ref, char *err,
                                size_t err_len) {
  const int K = dict->n_rows - 1, G = dge->n_rows - 1, n_cells = dge->n_cols - 1;
  if (K < 2 || G < 1 || n_cells < 1 || meta->n_cols < 3 || dict->n_cols < 2)
    return rctd_fail(err, err_len, "reference CSVs have an unexpected shape");
  ref->n_types = K;
  ref->n_genes = G;
  ref->type_names = calloc((size_t)K, sizeof *ref->type_names);
  ref->gene_names = calloc((size_t)G, sizeof *ref->gene_names);
  ref->profiles_gk = calloc((size_t)G * K, sizeof *ref->profiles_gk);
  int *type_c = malloc((size_t)n_cells * sizeof *type_c);
  double *numi_c = malloc((size_t)n_cells * sizeof *numi_c);
  int *cells_k = calloc((size_t)K, sizeof *cells_k);
  int rc = (ref->type_names && ref->gene_names && ref->profiles_gk && type_c && numi_c && cells_k)
               ? 0
               : rctd_fail(err, err_len, "out of memory");
  for (int k = 0; rc == 0 && k < K; k++)
    if (!(ref->type_names[k] = strdup(rctd_synth_csv_at(dict, k + 1, 1)))) rc = -1;
  for (int g = 0; rc == 0 && g < G; g++)
    if (!(ref->gene_names[g] = strdup(rctd_synth_csv_at(dge, g + 1, 0)))) rc = -1;
  for (int c = 0; rc == 0 && c < n_cells; c++) {
    const char *bc = rctd_synth_csv_at(dge, 0, c + 1);
    int row = -1;
    for (int r = 1; r < meta->n_rows && row < 0; r++)
      if (strcmp(rctd_synth_csv_at(meta, r, 0), bc) == 0) row = r;
    if (row < 0) {
      rc = rctd_fail(err, err_len, "cell '%s' is not in the meta data", bc);
      break;
    }
    const char *cluster = rctd_synth_csv_at(meta, row, 1);
    type_c[c] = -1;
    for (int k = 0; k < K; k++)
      if (strcmp(rctd_synth_csv_at(dict, k + 1, 0), cluster) == 0) type_c[c] = k;
    numi_c[c] = strtod(rctd_synth_csv_at(meta, row, 2), NULL);
    if (type_c[c] < 0 || !(numi_c[c] > 0))
      rc = rctd_fail(err, err_len, "cell '%s': unknown cluster or bad nUMI", bc);
    else
      cells_k[type_c[c]]++;
  }
  for (int g = 0; rc == 0 && g < G; g++)
    for (int c = 0; c < n_cells; c++)
      ref->profiles_gk[(size_t)g * K + type_c[c]] +=
          strtod(rctd_synth_csv_at(dge, g + 1, c + 1), NULL) / numi_c[c];
  for (int k = 0; rc == 0 && k < K; k++) {
    if (cells_k[k] == 0) {
      rc = rctd_fail(err, err_len, "type '%s' has no cells", ref->type_names[k]);
      break;
    }
    for (int g = 0; g < G; g++) ref->profiles_gk[(size_t)g * K + k] /= cells_k[k];
  }
  free(type_c);
  free(numi_c);
  free(cells_k);
  return rc;
}

int rctd_synth_reference_load(const char *ref_dir, rctd_synth_reference *ref, char *err,
                              size_t err_len) {
  memset(ref, 0, sizeof *ref);
  rctd_synth_csv dge, meta, dict;
  memset(&meta, 0, sizeof meta);
  memset(&dict, 0, sizeof dict);
  char path[4096];
  snprintf(path, sizeof path, "%s/dge.csv", ref_dir);
  int rc = rctd_synth_csv_read(path, &dge, err, err_len);
  snprintf(path, sizeof path, "%s/meta_data.csv", ref_dir);
  if (rc == 0) rc = rctd_synth_csv_read(path, &meta, err, err_len);
  snprintf(path, sizeof path, "%s/cell_type_dict.csv", ref_dir);
  if (rc == 0) rc = rctd_synth_csv_read(path, &dict, err, err_len);
  if (rc == 0) rc = synth_reference_fill(&dge, &meta, &dict, ref, err, err_len);
  if (rc) rctd_synth_reference_free(ref);
  rctd_synth_csv_free(&dge);
  rctd_synth_csv_free(&meta);
  rctd_synth_csv_free(&dict);
  return rc;
}

/* ------------------------------------------------------------------ the stream */

/* nUMI of every pixel (its own random stream, so the model record can precede the pixels). */
static void synth_numi(const rctd_synth_opts *o, double *numi_n) {
  gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
  gsl_rng_set(rng, o->seed * 2 + 1);
  const double mu = log(o->numi_center);
  for (int64_t n = 0; n < o->n_pixels; n++) {
    double v = nearbyint(exp(mu + o->numi_sdlog * gsl_ran_ugaussian(rng)));
    numi_n[n] = fmin(fmax(v, o->numi_min), o->numi_max);
  }
  gsl_rng_free(rng);
}

static int synth_model(const rctd_synth_reference *ref, const rctd_synth_opts *o, double *numi_n,
                       rctd_writer *w) {
  rctd_model m;
  memset(&m, 0, sizeof m);
  m.n_types = ref->n_types;
  m.type_names = ref->type_names;
  m.class_names = ref->type_names;
  m.n_reg = m.n_bulk = ref->n_genes;
  m.genes_reg = m.genes_bulk = ref->gene_names;
  m.profiles_gk = m.profiles_bulk_gk = ref->profiles_gk;
  double *bulk_k = malloc((size_t)ref->n_types * sizeof *bulk_k);
  if (!bulk_k) return -1;
  for (int k = 0; k < ref->n_types; k++) bulk_k[k] = 1.0 / ref->n_types;
  m.bulk_weights_k = bulk_k;
  m.bulk_converged = 1;
  m.n_pixels = o->n_pixels;
  m.pixel_numi_n = numi_n;
  long double sum = 0;
  for (int64_t n = 0; n < o->n_pixels; n++) sum += numi_n[n];
  m.sum_numi = (double)sum;
  char seed[32], n_pix[32];
  snprintf(seed, sizeof seed, "%" PRIu64, o->seed);
  snprintf(n_pix, sizeof n_pix, "%" PRId64, o->n_pixels);
  char *keys[] = {"synthetic", "synthetic_seed", "synthetic_pixels"};
  char *values[] = {"1", seed, n_pix};
  m.n_config = 3;
  m.config_keys = keys;
  m.config_values = values;
  int rc = rctd_model_write(w, &m);
  free(bulk_k);
  if (rc < 0) return -1;
  char sigma[32];
  snprintf(sigma, sizeof sigma, "%.2f", o->sigma_c);
  const char *skeys[] = {"sigma_c"};
  const char *svalues[] = {sigma};
  return rctd_write_meta(w, "sigma", skeys, svalues, 1);
}

/* One pixel's counts (sparse) into the block arrays. */
static void synth_pixel(const rctd_synth_reference *ref, const rctd_synth_opts *o, gsl_rng *rng,
                        const double *factor_g, double numi, int32_t *idx, double *val,
                        int64_t *nnz) {
  const int K = ref->n_types, G = ref->n_genes;
  int t1 = (int)gsl_rng_uniform_int(rng, (unsigned long)K), t2 = t1;
  double p = 1;
  if (gsl_rng_uniform(rng) < o->doublet_fraction) {
    t2 = (int)gsl_rng_uniform_int(rng, (unsigned long)(K - 1));
    if (t2 >= t1) t2++;
    p = 0.25 + 0.5 * gsl_rng_uniform(rng);
  }
  for (int g = 0; g < G; g++) {
    const double *prof = ref->profiles_gk + (size_t)g * K;
    double mix = p * prof[t1] + (1 - p) * prof[t2];
    double lambda = numi * factor_g[g] * exp(o->noise_sdlog * gsl_ran_ugaussian(rng)) * mix;
    unsigned int y = lambda > 0 ? gsl_ran_poisson(rng, lambda) : 0;
    if (y == 0) continue;
    idx[*nnz] = g;
    val[*nnz] = y;
    (*nnz)++;
  }
}

static int synth_blocks(const rctd_synth_reference *ref, const rctd_synth_opts *o,
                        const double *numi_n, rctd_writer *w, char *err, size_t err_len) {
  const int G = ref->n_genes, B = o->block_pixels > 0 ? o->block_pixels : 4096;
  gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
  double *factor_g = malloc((size_t)G * sizeof *factor_g);
  int64_t *indptr = malloc(((size_t)B + 1) * sizeof *indptr), *row_n = malloc((size_t)B * 8);
  int32_t *idx = malloc((size_t)B * G * sizeof *idx);
  double *val = malloc((size_t)B * G * sizeof *val);
  char *names = malloc((size_t)B * 32);
  const char **barcodes = malloc((size_t)B * sizeof *barcodes);
  int rc = 0;
  if (!rng || !factor_g || !indptr || !row_n || !idx || !val || !names || !barcodes)
    rc = rctd_fail(err, err_len, "out of memory");
  if (rc == 0) {
    gsl_rng_set(rng, o->seed);
    for (int g = 0; g < G; g++) factor_g[g] = exp(o->platform_sdlog * gsl_ran_ugaussian(rng));
  }
  for (int64_t first = 0; rc == 0 && first < o->n_pixels; first += B) {
    int64_t n = o->n_pixels - first < B ? o->n_pixels - first : B;
    int64_t nnz = 0;
    indptr[0] = 0;
    for (int64_t p = 0; p < n; p++) {
      synth_pixel(ref, o, rng, factor_g, numi_n[first + p], idx, val, &nnz);
      indptr[p + 1] = nnz;
      row_n[p] = first + p;
      snprintf(names + p * 32, 32, "synth_%08" PRId64, first + p);
      barcodes[p] = names + p * 32;
    }
    rctd_pixel_block block;
    memset(&block, 0, sizeof block);
    block.first = first;
    block.n = n;
    block.barcodes = barcodes;
    block.numi_n = numi_n + first;
    block.row_n = row_n;
    block.indptr = indptr;
    block.indices = idx;
    block.values = val;
    block.nnz = nnz;
    if (rctd_pixel_block_write(w, &block, G) < 0)
      rc = rctd_fail(err, err_len, "%s", rctd_writer_error(w));
  }
  gsl_rng_free(rng);
  free(factor_g);
  free(indptr);
  free(row_n);
  free(idx);
  free(val);
  free(names);
  free(barcodes);
  return rc;
}

int rctd_synth_write(const rctd_synth_reference *ref, const rctd_synth_opts *o, rctd_writer *w,
                     char *err, size_t err_len) {
  if (o->n_pixels < 0 || ref->n_types < 2)
    return rctd_fail(err, err_len, "synth: bad pixel count or reference");
  double *numi_n = malloc(((size_t)o->n_pixels + 1) * sizeof *numi_n);
  if (!numi_n) return rctd_fail(err, err_len, "out of memory");
  synth_numi(o, numi_n);
  int rc = 0;
  if (synth_model(ref, o, numi_n, w) < 0) rc = rctd_fail(err, err_len, "%s", rctd_writer_error(w));
  if (rc == 0) rc = synth_blocks(ref, o, numi_n, w, err, err_len);
  free(numi_n);
  return rc;
}
