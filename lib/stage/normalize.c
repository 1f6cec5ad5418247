/* Normalisation stage logic: pixel filters, DE gene lists, fitBulk, get_norm_ref and the
 * streamed driver of rctd-normalize.  See normalize.h. */
#include "normalize.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atomic_out.h"
#include "error.h"
#include "log.h"
#include "progress.h"
#include "rctd_kernels.h"
#include "strlist.h"

#define NORM_READ_ROWS 4096
#define NORM_BLOCK_PIXELS 4096

void rctd_normalize_opts_default(rctd_normalize_opts *opts) {
  opts->umi_min = 100;
  opts->umi_max = 20000000;
  opts->counts_min = 10;
  opts->gene_cutoff = 0.000125;
  opts->fc_cutoff = 0.5;
  opts->gene_cutoff_reg = 0.0002;
  opts->fc_cutoff_reg = 0.75;
  opts->min_obs = 3;
  opts->min_genes = 10;
  opts->bulk_min_obs = 10;
  opts->bulk_max_iter = 100;
  opts->min_change_bulk = 1e-4;
  opts->block_pixels = NORM_BLOCK_PIXELS;
  opts->pixels_writer = (rctd_writer_opts){0};
}

static void norm_note(rctd_note_fn note, void *ctx, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void norm_note(rctd_note_fn note, void *ctx, const char *fmt, ...) {
  if (!note) return;
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  note(ctx, msg);
}

/* ------------------------------------------------------------------ gene matching */

static uint64_t norm_hash(const char *s) {
  uint64_t h = 1469598103934665603ULL;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
  return h;
}

int64_t rctd_gene_match(const char *const *a, int64_t n_a, const char *const *b, int64_t n_b,
                        int32_t *b_of_a) {
  uint64_t cap = 16;
  while (cap < 2 * (uint64_t)n_b + 1) cap <<= 1;
  int32_t *slots = malloc(cap * sizeof *slots);
  if (!slots) return -1;
  for (uint64_t i = 0; i < cap; i++) slots[i] = -1;
  for (int64_t j = 0; j < n_b; j++) {
    uint64_t h = norm_hash(b[j]) & (cap - 1);
    while (slots[h] >= 0 && strcmp(b[slots[h]], b[j]) != 0) h = (h + 1) & (cap - 1);
    if (slots[h] < 0) slots[h] = (int32_t)j; /* first occurrence wins */
  }
  int64_t matched = 0;
  for (int64_t i = 0; i < n_a; i++) {
    uint64_t h = norm_hash(a[i]) & (cap - 1);
    while (slots[h] >= 0 && strcmp(b[slots[h]], a[i]) != 0) h = (h + 1) & (cap - 1);
    b_of_a[i] = slots[h];
    if (slots[h] >= 0) matched++;
  }
  free(slots);
  return matched;
}

/* ------------------------------------------------------------------ DE genes */

int rctd_de_genes(const double *profiles_gk, int n_genes, int n_types, const char *const *genes,
                  const int32_t *sp_of_ref, const double *sp_totals, int64_t n_sp_genes,
                  double fc_thresh, double expr_thresh, double min_obs, int32_t *out_g, int *n_out,
                  char *err, size_t err_len) {
  *n_out = 0;
  int K = n_types;
  if (K < 2) return rctd_fail(err, err_len, "DE genes need at least 2 cell types");
  int32_t *list = malloc((size_t)(n_genes ? n_genes : 1) * sizeof *list);
  unsigned char *found = calloc((size_t)(n_genes ? n_genes : 1), 1);
  if (!list || !found) {
    free(list), free(found);
    return rctd_fail(err, err_len, "out of memory");
  }
  /* Reference order; no "mt-" anywhere in the name (R: grep, not a prefix test); present in
   * the spatial data; then observed at least MIN_OBS times. */
  int n_common = 0, n_list = 0;
  for (int g = 0; g < n_genes; g++) {
    if (strstr(genes[g], "mt-") || sp_of_ref[g] < 0) continue;
    n_common++;
    if (sp_totals[sp_of_ref[g]] >= min_obs) list[n_list++] = g;
  }
  int64_t prev = (int64_t)n_genes < n_sp_genes ? (int64_t)n_genes : n_sp_genes;
  int rc = 0;
  if (n_common == 0) {
    rc = rctd_fail(err, err_len,
                   "no gene in common between the reference and the spatial data (genes "
                   "containing 'mt-' excluded); check that both use the same gene names");
  } else if (n_list < 0.1 * (double)prev && n_common >= 0.1 * (double)prev) {
    /* The names match; the spatial data are too small to observe the genes (a few pixels). */
    rc = rctd_fail(err, err_len,
                   "only %d of the %d genes shared with the reference are observed at least "
                   "MIN_OBS = %g times in the spatial data, fewer than 10%% of %" PRId64
                   ": too few pixels or counts; give more pixels or lower --min-obs",
                   n_list, n_common, min_obs, prev);
  } else if (n_list < 0.1 * (double)prev) {
    rc = rctd_fail(err, err_len,
                   "only %d genes are shared with the reference and observed at least MIN_OBS "
                   "= %g times, fewer than 10%% of %" PRId64
                   " (at least 90%% of genes do not match); check the gene names or remove "
                   "the missing genes from the reference",
                   n_list, min_obs, prev);
  }
  if (rc < 0) {
    free(list), free(found);
    return -1;
  }
  for (int k = 0; k < K; k++) {
    for (int i = 0; i < n_list; i++) {
      const double *row = profiles_gk + (size_t)list[i] * K;
      /* rowMeans over the other types: long double sum, long double division. */
      long double other = 0;
      for (int j = 0; j < K; j++)
        if (j != k) other += row[j];
      other /= (K - 1);
      double log_fc = log(row[k] + 1e-9) - log((double)other + 1e-9);
      if (log_fc > fc_thresh && row[k] > expr_thresh && !found[i]) {
        found[i] = 1;
        out_g[(*n_out)++] = list[i];
      }
    }
  }
  free(list);
  free(found);
  return 0;
}

/* ------------------------------------------------------------------ fitBulk */

int rctd_fit_bulk(const double *profiles_gk, int n_types, const int32_t *genes_b, int n_bulk,
                  const double *totals_b, double sum_numi, const rctd_normalize_opts *opts,
                  double *weights_k, int *converged, int *n_used, char *err, size_t err_len) {
  int K = n_types, n = 0;
  for (int b = 0; b < n_bulk; b++)
    if (totals_b[b] >= opts->bulk_min_obs) n++;
  if (n_used) *n_used = n;
  if (n == 0)
    return rctd_fail(err, err_len,
                     "fitBulk: no gene of gene_list_bulk has %g or more counts over the kept "
                     "pixels",
                     opts->bulk_min_obs);
  double *S_gk = malloc((size_t)n * (size_t)K * sizeof *S_gk);
  double *y_g = malloc((size_t)n * sizeof *y_g);
  void *ws = malloc(rctd_irwls_workspace_bytes(n, K));
  if (!S_gk || !y_g || !ws) {
    free(S_gk), free(y_g), free(ws);
    return rctd_fail(err, err_len, "out of memory for fitBulk (%d genes x %d types)", n, K);
  }
  /* prepareBulkData: genes of the bulk list (its order) with total >= MIN_OBS (10);
   * X = profiles * sum(nUMI), b = totals. */
  int i = 0;
  for (int b = 0; b < n_bulk; b++) {
    if (!(totals_b[b] >= opts->bulk_min_obs)) continue;
    const double *row = profiles_gk + (size_t)genes_b[b] * K;
    for (int k = 0; k < K; k++) S_gk[(size_t)i * K + k] = row[k] * sum_numi;
    y_g[i++] = totals_b[b];
  }
  rctd_irwls_opts iopts = {.n_iter = opts->bulk_max_iter,
                           .min_change = opts->min_change_bulk,
                           .constrain = 0,
                           .bulk_mode = 1};
  int conv = rctd_irwls_fit(NULL, n, K, S_gk, y_g, sum_numi, &iopts, NULL, weights_k, ws);
  free(S_gk);
  free(y_g);
  free(ws);
  if (conv < 0) return rctd_fail(err, err_len, "fitBulk: the bulk IRWLS failed");
  for (int k = 0; k < K; k++)
    if (!isfinite(weights_k[k]))
      return rctd_fail(err, err_len, "fitBulk: the bulk IRWLS gave a non-finite proportion");
  if (converged) *converged = conv == 1;
  return 0;
}

void rctd_norm_ref(const double *profiles_gk, int n_types, const int32_t *genes, int n,
                   const double *totals, double sum_numi, const double *weights_k,
                   double *renorm_nk) {
  int K = n_types;
  long double sum_w = 0; /* R's sum() */
  for (int k = 0; k < K; k++) sum_w += weights_k[k];
  for (int i = 0; i < n; i++) {
    const double *row = profiles_gk + (size_t)genes[i] * K;
    /* rowSums(sweep(profiles, 2, w / sum(w), "*")): double products, long double sum. */
    long double avg = 0;
    for (int k = 0; k < K; k++) avg += row[k] * (weights_k[k] / (double)sum_w);
    double target = totals[i] / sum_numi;
    double factor = (double)avg / target;
    for (int k = 0; k < K; k++) renorm_nk[(size_t)i * K + k] = row[k] / factor;
  }
}

/* ------------------------------------------------------------------ driver */

void rctd_normalize_plan_free(rctd_normalize_plan *plan) {
  free(plan->bulk_pos_s);
  free(plan->reg_pos_s);
  if (plan->pixels_spill) fclose(plan->pixels_spill);
  memset(plan, 0, sizeof *plan);
}

/* Sum of a pixel's counts over every gene (R: colSums over all genes, gene order). */
static double norm_row_sum(const rctd_csr_chunk *c, int64_t r) {
  double s = 0;
  for (int64_t i = c->row_ptr[r]; i < c->row_ptr[r + 1]; i++) s += c->values[i];
  return s;
}

/* Sum over the bulk genes only. */
static double norm_bulk_sum(const rctd_csr_chunk *c, int64_t r, const int32_t *bulk_pos_s) {
  double s = 0;
  for (int64_t i = c->row_ptr[r]; i < c->row_ptr[r + 1]; i++)
    if (bulk_pos_s[c->gene_idx[i]] >= 0) s += c->values[i];
  return s;
}

int rctd_normalize_keeps_pixel(const rctd_normalize_opts *o, double numi, double count_sum) {
  return numi >= o->umi_min && numi <= o->umi_max && count_sum >= o->counts_min;
}

static int norm_config_double(rctd_model *m, const char *key, double v) {
  char text[40];
  snprintf(text, sizeof text, "%.17g", v);
  return rctd_model_config_set(m, key, text);
}

int rctd_normalize_class_table(rctd_model *model, const char *path, char *err, size_t err_len) {
  char **classes;
  if (rctd_class_table_read(path, (const char *const *)model->type_names, model->n_types, &classes,
                            err, err_len) < 0)
    return -1;
  rctd_strlist_free(model->class_names, (size_t)model->n_types);
  model->class_names = classes;
  if (rctd_model_class_ids(model) < 0) return rctd_fail(err, err_len, "out of memory");
  return 0;
}

int rctd_normalize_config(const rctd_normalize_opts *o, rctd_model *m) {
  int rc = 0;
  rc |= norm_config_double(m, "UMI_min", o->umi_min);
  rc |= norm_config_double(m, "UMI_max", o->umi_max);
  rc |= norm_config_double(m, "counts_MIN", o->counts_min);
  rc |= norm_config_double(m, "gene_cutoff", o->gene_cutoff);
  rc |= norm_config_double(m, "fc_cutoff", o->fc_cutoff);
  rc |= norm_config_double(m, "gene_cutoff_reg", o->gene_cutoff_reg);
  rc |= norm_config_double(m, "fc_cutoff_reg", o->fc_cutoff_reg);
  rc |= norm_config_double(m, "MIN_OBS", o->min_obs);
  rc |= norm_config_double(m, "min_genes", o->min_genes);
  rc |= norm_config_double(m, "bulk_MIN_OBS", o->bulk_min_obs);
  rc |= norm_config_double(m, "bulk_n_iter", o->bulk_max_iter);
  rc |= norm_config_double(m, "MIN_CHANGE_BULK", o->min_change_bulk);
  return rc ? -1 : 0;
}

/* Reads every chunk of the input; calls ROW_FN for each row with its nUMI: the given ones, or
 * the row's count sum (the same value rctd_input_numi would hold for every row).  0 or -1. */
typedef int (*norm_row_fn)(void *ctx, const rctd_csr_chunk *c, int64_t r, double numi);

static int norm_each_row(rctd_input *in, const char *pass_label, norm_row_fn fn, void *ctx,
                         char *err, size_t err_len) {
  const double *given_n = rctd_input_numi_given(in);
  rctd_csr_chunk chunk;
  rctd_csr_chunk_init(&chunk);
  rctd_input_rewind(in);
  rctd_progress *progress =
      rctd_progress_start(pass_label, (uint64_t)rctd_input_n_rows(in), "pixels");
  int got, rc = 0;
  while (rc == 0 && (got = rctd_input_next_chunk(in, NORM_READ_ROWS, &chunk, err, err_len)) > 0) {
    for (int64_t r = 0; r < chunk.n_rows && rc == 0; r++)
      rc = fn(ctx, &chunk, r,
              given_n ? given_n[chunk.row_begin + r] : rctd_csr_row_count_sum(&chunk, r));
    rctd_progress_add(progress, (uint64_t)chunk.n_rows);
  }
  if (rc == 0 && got < 0) rc = -1;
  rctd_progress_finish(progress);
  rctd_csr_chunk_free(&chunk);
  return rc;
}

/* ------------------------------------------------------------------ the pixel records */

/* The kept pixels, gathered in blocks and written as pixel records as pass 2 reads them, to a
 * temporary stream (rctd_normalize_write_pixels copies them after the model). */
typedef struct {
  const rctd_normalize_plan *plan;
  int n_reg;
  rctd_writer *w;
  const rctd_input *spatial; /* its names are read back row by row (rctd_input_barcode) */
  const double *coords_all;
  int64_t cap; /* pixels per block */
  int64_t n;   /* pixels held */
  int64_t first;
  const char **barcodes;
  char *names; /* the block's barcodes, copied back to back: names_len bytes used */
  size_t names_len, names_cap;
  size_t *name_at; /* offset of each held pixel's barcode in names */
  double *numi;
  int64_t *rows;
  double *coords;
  int64_t *indptr;
  int32_t *indices;
  double *values;
  int64_t nnz, cap_nnz;
  int failed_name; /* a barcode could not be read back from the input's temporary file */
} norm_pix_ctx;

static void norm_pix_free(norm_pix_ctx *ctx) {
  free(ctx->barcodes);
  free(ctx->names);
  free(ctx->name_at);
  free(ctx->numi);
  free(ctx->rows);
  free(ctx->indptr);
  free(ctx->coords);
  free(ctx->indices);
  free(ctx->values);
}

/* The block's arrays for CAP pixels.  0 or -1 (out of memory). */
static int norm_pix_alloc(norm_pix_ctx *ctx, int64_t cap, const double *coords_all) {
  ctx->cap = cap;
  ctx->coords_all = coords_all;
  size_t n = (size_t)cap;
  ctx->barcodes = malloc(n * sizeof *ctx->barcodes);
  ctx->name_at = malloc(n * sizeof *ctx->name_at);
  ctx->numi = malloc(n * sizeof *ctx->numi);
  ctx->rows = malloc(n * sizeof *ctx->rows);
  ctx->indptr = malloc((n + 1) * sizeof *ctx->indptr);
  if (coords_all) ctx->coords = malloc(2 * n * sizeof *ctx->coords);
  if (!ctx->barcodes || !ctx->name_at || !ctx->numi || !ctx->rows || !ctx->indptr ||
      (coords_all && !ctx->coords))
    return -1;
  ctx->indptr[0] = 0;
  return 0;
}

/* Copies row ROW's barcode as pixel K of the block: the input's pointer lasts one call. */
static int norm_hold_name(norm_pix_ctx *ctx, int64_t k, int64_t row) {
  const char *name = rctd_input_barcode(ctx->spatial, row);
  if (!name) {
    ctx->failed_name = 1;
    return -1;
  }
  size_t len = strlen(name) + 1;
  if (ctx->names_len + len > ctx->names_cap) {
    size_t cap = ctx->names_cap ? ctx->names_cap : 65536;
    while (cap < ctx->names_len + len) cap *= 2;
    char *names = realloc(ctx->names, cap);
    if (!names) return -1;
    ctx->names = names;
    ctx->names_cap = cap;
  }
  memcpy(ctx->names + ctx->names_len, name, len);
  ctx->name_at[k] = ctx->names_len;
  ctx->names_len += len;
  return 0;
}

static int norm_flush_block(norm_pix_ctx *ctx) {
  if (ctx->n == 0) return 0;
  for (int64_t k = 0; k < ctx->n; k++) ctx->barcodes[k] = ctx->names + ctx->name_at[k];
  rctd_pixel_block b;
  rctd_pixel_block_init(&b);
  b.first = ctx->first;
  b.n = ctx->n;
  b.barcodes = ctx->barcodes;
  b.numi_n = ctx->numi;
  b.row_n = ctx->rows;
  b.coords_n2 = ctx->coords;
  b.indptr = ctx->indptr;
  b.indices = ctx->indices;
  b.values = ctx->values;
  b.nnz = ctx->nnz;
  if (rctd_pixel_block_write(ctx->w, &b, ctx->n_reg) < 0) return -1;
  ctx->first += ctx->n;
  ctx->n = 0;
  ctx->nnz = 0;
  ctx->names_len = 0;
  ctx->indptr[0] = 0;
  return 0;
}

/* Room for NNZ more counts in the block.  0 or -1 (out of memory). */
static int norm_pix_reserve(norm_pix_ctx *ctx, int64_t nnz) {
  if (ctx->nnz + nnz <= ctx->cap_nnz) return 0;
  int64_t cap = ctx->cap_nnz ? ctx->cap_nnz : 4096;
  while (cap < ctx->nnz + nnz) cap *= 2;
  int32_t *gi = realloc(ctx->indices, (size_t)cap * sizeof *gi);
  if (gi) ctx->indices = gi;
  double *gv = gi ? realloc(ctx->values, (size_t)cap * sizeof *gv) : NULL;
  if (gv) ctx->values = gv;
  if (!gi || !gv) return -1;
  ctx->cap_nnz = cap;
  return 0;
}

/* Adds row R of C (a kept pixel of nUMI NUMI) to the block: its counts of the regression genes,
 * its barcode, nUMI, row and coordinates; writes the block when full. */
static int norm_hold_pixel(norm_pix_ctx *ctx, const rctd_csr_chunk *c, int64_t r, double numi) {
  if (norm_pix_reserve(ctx, c->row_ptr[r + 1] - c->row_ptr[r]) < 0) return -1;
  int64_t start = ctx->nnz;
  for (int64_t i = c->row_ptr[r]; i < c->row_ptr[r + 1]; i++) {
    int32_t pos = ctx->plan->reg_pos_s[c->gene_idx[i]];
    if (pos < 0) continue;
    /* Insertion in gene_list_reg order (R's row order of puck@counts[gene_list_reg, ]). */
    int64_t j = ctx->nnz++;
    while (j > start && ctx->indices[j - 1] > pos) {
      ctx->indices[j] = ctx->indices[j - 1];
      ctx->values[j] = ctx->values[j - 1];
      j--;
    }
    ctx->indices[j] = pos;
    ctx->values[j] = c->values[i];
  }
  int64_t row = c->row_begin + r, k = ctx->n;
  if (norm_hold_name(ctx, k, row) < 0) return -1;
  ctx->numi[k] = numi;
  ctx->rows[k] = row;
  if (ctx->coords) {
    ctx->coords[2 * k] = ctx->coords_all[2 * row];
    ctx->coords[2 * k + 1] = ctx->coords_all[2 * row + 1];
  }
  ctx->indptr[k + 1] = ctx->nnz;
  ctx->n++;
  if (ctx->n == ctx->cap) return norm_flush_block(ctx);
  return 0;
}

typedef struct {
  const rctd_normalize_opts *opts;
  double *totals_s; /* pass 1: spatial totals over puck.original */
  int64_t n_pass_umi;
  /* pass 2 */
  const int32_t *bulk_pos_s;
  double *totals_b; /* bulk totals over puck */
  long double sum_numi;
  FILE *numi_spill; /* the kept pixels' nUMI (the model's pixel_numi), raw doubles */
  int64_t n_pixels;
  norm_pix_ctx pix; /* the kept pixels' records */
} norm_pass_ctx;

static int norm_pass1_row(void *vctx, const rctd_csr_chunk *c, int64_t r, double numi) {
  norm_pass_ctx *ctx = vctx;
  if (!rctd_normalize_keeps_pixel(ctx->opts, numi, norm_row_sum(c, r))) return 0;
  ctx->n_pass_umi++;
  for (int64_t i = c->row_ptr[r]; i < c->row_ptr[r + 1]; i++)
    ctx->totals_s[c->gene_idx[i]] += c->values[i];
  return 0;
}

static int norm_pass2_row(void *vctx, const rctd_csr_chunk *c, int64_t r, double numi) {
  norm_pass_ctx *ctx = vctx;
  if (!rctd_normalize_keeps_pixel(ctx->opts, numi, norm_row_sum(c, r))) return 0;
  if (!(norm_bulk_sum(c, r, ctx->bulk_pos_s) >= ctx->opts->counts_min)) return 0;
  for (int64_t i = c->row_ptr[r]; i < c->row_ptr[r + 1]; i++) {
    int32_t b = ctx->bulk_pos_s[c->gene_idx[i]];
    if (b >= 0) ctx->totals_b[b] += c->values[i];
  }
  ctx->sum_numi += numi;
  ctx->n_pixels++;
  if (fwrite(&numi, sizeof numi, 1, ctx->numi_spill) != 1) return -1;
  return norm_hold_pixel(&ctx->pix, c, r, numi);
}

/* Builds gene -> list position maps over the spatial genes. */
static int norm_positions(const int32_t *sp_of_ref, const int32_t *list, int n, int64_t n_sp,
                          int32_t **pos_s) {
  *pos_s = malloc((size_t)(n_sp ? n_sp : 1) * sizeof **pos_s);
  if (!*pos_s) return -1;
  for (int64_t s = 0; s < n_sp; s++) (*pos_s)[s] = -1;
  for (int i = 0; i < n; i++) (*pos_s)[sp_of_ref[list[i]]] = i;
  return 0;
}

/* The state of rctd_normalize_prepare, shared by its steps. */
typedef struct {
  rctd_input *spatial;
  const rctd_reference_data *ref;
  const rctd_normalize_opts *opts;
  rctd_model *model;
  rctd_normalize_plan *plan;
  rctd_note_fn note;
  void *note_ctx;
  char *err;
  size_t err_len;
  const char *label;
  int K, G;
  int64_t n_sp;
  norm_pass_ctx ctx;
  int32_t *sp_of_ref, *reg_g, *bulk_g;
  int n_reg, n_bulk;
  double *renorm_bk;
  char sub[RCTD_ERR_LEN];
} norm_prep;

/* Pass 1: puck.original and its gene totals. */
static int norm_prep_pass1(norm_prep *p) {
  const rctd_normalize_opts *opts = p->opts;
  if (norm_each_row(p->spatial, "normalize: pixel filters", norm_pass1_row, &p->ctx, p->err,
                    p->err_len) < 0)
    return -1;
  if (p->ctx.n_pass_umi == 0)
    return rctd_fail(p->err, p->err_len,
                     "%s: every pixel is filtered out (none has UMI_min = %g <= nUMI <= UMI_max = "
                     "%g and counts_MIN = %g or more counts); lower --umi-min or --counts-min",
                     p->label, opts->umi_min, opts->umi_max, opts->counts_min);
  return 0;
}

/* Gene lists. */
static int norm_prep_gene_lists(norm_prep *p) {
  const rctd_normalize_opts *opts = p->opts;
  const rctd_reference_data *ref = p->ref;
  const char *label = p->label;
  int K = p->K, G = p->G;
  int64_t n_sp = p->n_sp;
  if (rctd_gene_match((const char *const *)ref->gene_names, G, rctd_input_gene_names(p->spatial),
                      n_sp, p->sp_of_ref) < 0)
    return rctd_fail(p->err, p->err_len, "%s: out of memory", label);
  if (rctd_de_genes(ref->profiles_gk, G, K, (const char *const *)ref->gene_names, p->sp_of_ref,
                    p->ctx.totals_s, n_sp, opts->fc_cutoff_reg, opts->gene_cutoff_reg,
                    opts->min_obs, p->reg_g, &p->n_reg, p->sub, sizeof p->sub) < 0 ||
      rctd_de_genes(ref->profiles_gk, G, K, (const char *const *)ref->gene_names, p->sp_of_ref,
                    p->ctx.totals_s, n_sp, opts->fc_cutoff, opts->gene_cutoff, opts->min_obs,
                    p->bulk_g, &p->n_bulk, p->sub, sizeof p->sub) < 0)
    return rctd_fail(p->err, p->err_len, "%s: %s", label, p->sub);
  int n_reg = p->n_reg, n_bulk = p->n_bulk;
  norm_note(p->note, p->note_ctx, "gene lists: reg=%d bulk=%d", n_reg, n_bulk);
  if (n_reg < opts->min_genes || n_bulk < opts->min_genes) {
    int few_reg = n_reg < opts->min_genes;
    return rctd_fail(p->err, p->err_len,
                     "%s: fewer than %d %s differentially expressed genes found (%d); lower "
                     "--%s or --%s",
                     label, opts->min_genes, few_reg ? "regression" : "bulk",
                     few_reg ? n_reg : n_bulk, few_reg ? "gene-cutoff-reg" : "gene-cutoff",
                     few_reg ? "fc-cutoff-reg" : "fc-cutoff");
  }
  if (norm_positions(p->sp_of_ref, p->bulk_g, n_bulk, n_sp, &p->plan->bulk_pos_s) < 0 ||
      norm_positions(p->sp_of_ref, p->reg_g, n_reg, n_sp, &p->plan->reg_pos_s) < 0)
    return rctd_fail(p->err, p->err_len, "%s: out of memory", label);
  /* The fits use renorm[gene_list_reg, ], and renorm only covers gene_list_bulk. */
  for (int i = 0; i < n_reg; i++) {
    if (p->plan->bulk_pos_s[p->sp_of_ref[p->reg_g[i]]] >= 0) continue;
    return rctd_fail(p->err, p->err_len,
                     "%s: regression gene '%s' is not in the bulk gene list; use cutoffs with "
                     "gene_cutoff_reg >= gene_cutoff and fc_cutoff_reg >= fc_cutoff",
                     label, ref->gene_names[p->reg_g[i]]);
  }
  return 0;
}

/* An anonymous temporary file in the input's tmp_dir.  0 or -1 (message in p->err). */
static int norm_temp(norm_prep *p, const char *prefix, FILE **f) {
  const char *tmp_dir = rctd_input_tmp_dir(p->spatial);
  *f = rctd_temp_file(tmp_dir, prefix);
  if (*f) return 0;
  return rctd_fail(p->err, p->err_len,
                   "%s: cannot create a temporary file there (%s): give a writable directory "
                   "with --tmp-dir",
                   rctd_temp_dir(tmp_dir), strerror(errno));
}

/* Pass 2's output: the nUMI spill and the temporary stream of pixel records (p->plan's
 * pixels_spill, written by p->ctx.pix.w). */
static int norm_prep_pass2_open(norm_prep *p) {
  rctd_normalize_plan *plan = p->plan;
  norm_pix_ctx *pix = &p->ctx.pix;
  p->ctx.bulk_pos_s = plan->bulk_pos_s;
  p->ctx.totals_b = calloc((size_t)p->n_bulk, sizeof *p->ctx.totals_b);
  int64_t cap = p->opts->block_pixels > 0 ? p->opts->block_pixels : NORM_BLOCK_PIXELS;
  if (cap > plan->n_rows) cap = plan->n_rows > 0 ? plan->n_rows : 1; /* (the same blocks) */
  pix->plan = plan;
  pix->n_reg = p->n_reg;
  pix->spatial = p->spatial;
  const double *coords = rctd_input_coords(p->spatial);
  if (!p->ctx.totals_b || norm_pix_alloc(pix, cap, coords) < 0)
    return rctd_fail(p->err, p->err_len, "%s: out of memory", p->label);
  if (norm_temp(p, "rctd-normalize", &p->ctx.numi_spill) < 0 ||
      norm_temp(p, "rctd-normalize-pixels", &plan->pixels_spill) < 0)
    return -1;
  /* the label names the directory: a full disk there is the likely failure */
  char label[600];
  snprintf(label, sizeof label, "%s: the temporary file of pixels",
           rctd_temp_dir(rctd_input_tmp_dir(p->spatial)));
  pix->w =
      rctd_writer_fopen(plan->pixels_spill, label, &p->opts->pixels_writer, p->err, p->err_len);
  return pix->w ? 0 : -1;
}

/* Why pass 2 failed, where norm_each_row left no message. */
static int norm_prep_pass2_error(norm_prep *p) {
  const norm_pix_ctx *pix = &p->ctx.pix;
  if (ferror(p->ctx.numi_spill))
    return rctd_fail(p->err, p->err_len,
                     "cannot write the temporary file of pixel nUMI (%s): free some space or "
                     "give another directory with --tmp-dir",
                     strerror(errno));
  if (pix->failed_name)
    return rctd_fail(p->err, p->err_len,
                     "%s: cannot read the barcodes back from their temporary file (%s)", p->label,
                     strerror(errno));
  if (rctd_writer_error(pix->w)[0])
    return rctd_fail(p->err, p->err_len,
                     "%s: free some space or give another directory with --tmp-dir",
                     rctd_writer_error(pix->w));
  if (!p->err[0]) return rctd_fail(p->err, p->err_len, "%s: out of memory", p->label);
  return -1;
}

/* Pass 2: puck (pixels re-filtered on their bulk-gene counts), its totals and nUMI (spilled to
 * an anonymous temporary file: one value per pixel is all normalize would otherwise hold), and
 * its pixel records (to a second one): the pixels need only the gene lists of pass 1, so they
 * are encoded in this pass rather than by a third read of the input. */
static int norm_prep_pass2(norm_prep *p) {
  rctd_normalize_plan *plan = p->plan;
  if (p->err_len) p->err[0] = '\0';
  if (norm_prep_pass2_open(p) < 0) return -1;
  if (norm_each_row(p->spatial, "normalize: bulk genes and pixels", norm_pass2_row, &p->ctx, p->err,
                    p->err_len) < 0 ||
      fflush(p->ctx.numi_spill) != 0 || norm_flush_block(&p->ctx.pix) < 0)
    return norm_prep_pass2_error(p);
  rctd_writer *w = p->ctx.pix.w;
  p->ctx.pix.w = NULL;
  if (rctd_writer_close(w, p->sub, sizeof p->sub) < 0)
    return rctd_fail(p->err, p->err_len,
                     "%s: free some space or give another directory with --tmp-dir", p->sub);
  plan->n_pass_umi = p->ctx.n_pass_umi;
  plan->n_pixels = p->ctx.n_pixels;
  norm_note(p->note, p->note_ctx,
            "pixels: %" PRId64 " read, %" PRId64
            " pass the UMI and counts "
            "filters, %" PRId64 " with counts_MIN over the bulk genes",
            plan->n_rows, plan->n_pass_umi, plan->n_pixels);
  if (p->ctx.n_pixels == 0)
    return rctd_fail(p->err, p->err_len,
                     "%s: every pixel is filtered out (none has counts_MIN = %g counts over the "
                     "%d bulk genes); lower --counts-min",
                     p->label, p->opts->counts_min, p->n_bulk);
  return 0;
}

/* fitBulk and get_norm_ref. */
static int norm_prep_fit_bulk(norm_prep *p) {
  rctd_model *model = p->model;
  int K = p->K, n_bulk = p->n_bulk;
  model->n_types = K;
  model->sum_numi = (double)p->ctx.sum_numi;
  model->bulk_weights_k = malloc((size_t)K * sizeof *model->bulk_weights_k);
  p->renorm_bk = malloc((size_t)n_bulk * (size_t)K * sizeof *p->renorm_bk);
  if (!model->bulk_weights_k || !p->renorm_bk)
    return rctd_fail(p->err, p->err_len, "%s: out of memory", p->label);
  if (rctd_fit_bulk(p->ref->profiles_gk, K, p->bulk_g, n_bulk, p->ctx.totals_b, model->sum_numi,
                    p->opts, model->bulk_weights_k, &model->bulk_converged, &p->plan->n_bulk_fit,
                    p->sub, sizeof p->sub) < 0)
    return rctd_fail(p->err, p->err_len, "%s: %s", p->label, p->sub);
  norm_note(p->note, p->note_ctx, "fitBulk: %d types over %d genes, %s", K, p->plan->n_bulk_fit,
            model->bulk_converged ? "converged" : "not converged");
  rctd_norm_ref(p->ref->profiles_gk, K, p->bulk_g, n_bulk, p->ctx.totals_b, model->sum_numi,
                model->bulk_weights_k, p->renorm_bk);
  return 0;
}

/* The model. */
static int norm_prep_model(norm_prep *p) {
  rctd_model *model = p->model;
  const rctd_reference_data *ref = p->ref;
  const char *label = p->label;
  int K = p->K, n_reg = p->n_reg, n_bulk = p->n_bulk;
  model->type_names = rctd_strlist_copy((const char *const *)ref->type_names, (size_t)K);
  model->class_names = rctd_strlist_copy((const char *const *)ref->class_names, (size_t)K);
  model->genes_reg = calloc((size_t)n_reg, sizeof *model->genes_reg);
  model->genes_bulk = calloc((size_t)n_bulk, sizeof *model->genes_bulk);
  model->profiles_gk = malloc((size_t)n_reg * (size_t)K * sizeof *model->profiles_gk);
  if (!model->type_names || !model->class_names || !model->genes_reg || !model->genes_bulk ||
      !model->profiles_gk || rctd_model_class_ids(model) < 0)
    return rctd_fail(p->err, p->err_len, "%s: out of memory", label);
  model->n_reg = n_reg;
  model->n_bulk = n_bulk;
  for (int i = 0; i < n_bulk; i++) model->genes_bulk[i] = strdup(ref->gene_names[p->bulk_g[i]]);
  for (int i = 0; i < n_reg; i++) {
    model->genes_reg[i] = strdup(ref->gene_names[p->reg_g[i]]);
    int b = p->plan->bulk_pos_s[p->sp_of_ref[p->reg_g[i]]];
    memcpy(model->profiles_gk + (size_t)i * K, p->renorm_bk + (size_t)b * K,
           (size_t)K * sizeof(double));
  }
  model->profiles_bulk_gk = p->renorm_bk;
  p->renorm_bk = NULL;
  model->n_pixels = p->ctx.n_pixels;
  model->pixel_numi_spill = p->ctx.numi_spill;
  p->ctx.numi_spill = NULL;
  model->has_coords = rctd_input_coords(p->spatial) != NULL;
  if (ref->n_rng > 0) {
    model->rng_state = malloc((size_t)ref->n_rng * sizeof *model->rng_state);
    if (!model->rng_state) return rctd_fail(p->err, p->err_len, "%s: out of memory", label);
    memcpy(model->rng_state, ref->rng_state, (size_t)ref->n_rng * sizeof *model->rng_state);
    model->n_rng = ref->n_rng;
  }
  for (size_t i = 0; i < ref->n_config; i++)
    if (rctd_model_config_set(model, ref->config_keys[i], ref->config_values[i]) < 0)
      return rctd_fail(p->err, p->err_len, "out of memory");
  if (rctd_normalize_config(p->opts, model) < 0)
    return rctd_fail(p->err, p->err_len, "out of memory");
  for (int i = 0; i < n_reg; i++)
    if (!model->genes_reg[i]) return rctd_fail(p->err, p->err_len, "out of memory");
  for (int i = 0; i < n_bulk; i++)
    if (!model->genes_bulk[i]) return rctd_fail(p->err, p->err_len, "out of memory");
  if (rctd_model_check(model, p->sub, sizeof p->sub) < 0)
    return rctd_fail(p->err, p->err_len, "%s: %s", label, p->sub);
  return 0;
}

int rctd_normalize_prepare(rctd_input *spatial, const rctd_reference_data *ref,
                           const rctd_normalize_opts *opts, rctd_model *model,
                           rctd_normalize_plan *plan, rctd_note_fn note, void *note_ctx, char *err,
                           size_t err_len) {
  memset(model, 0, sizeof *model);
  memset(plan, 0, sizeof *plan);
  norm_prep p = {.spatial = spatial,
                 .ref = ref,
                 .opts = opts,
                 .model = model,
                 .plan = plan,
                 .note = note,
                 .note_ctx = note_ctx,
                 .err = err,
                 .err_len = err_len,
                 .label = rctd_input_path(spatial),
                 .K = ref->n_types,
                 .G = ref->n_genes,
                 .n_sp = rctd_input_n_genes(spatial),
                 .ctx = {.opts = opts}};
  plan->n_rows = rctd_input_n_rows(spatial);
  plan->n_sp_genes = p.n_sp;
  p.sp_of_ref = malloc((size_t)p.G * sizeof *p.sp_of_ref);
  p.reg_g = malloc((size_t)p.G * sizeof *p.reg_g);
  p.bulk_g = malloc((size_t)p.G * sizeof *p.bulk_g);
  p.ctx.totals_s = calloc((size_t)(p.n_sp ? p.n_sp : 1), sizeof *p.ctx.totals_s);
  int rc = -1;
  if (!p.sp_of_ref || !p.reg_g || !p.bulk_g || !p.ctx.totals_s)
    rctd_fail(err, err_len, "%s: out of memory", p.label);
  else if (norm_prep_pass1(&p) == 0 && norm_prep_gene_lists(&p) == 0 && norm_prep_pass2(&p) == 0 &&
           norm_prep_fit_bulk(&p) == 0 && norm_prep_model(&p) == 0)
    rc = 0;
  free(p.sp_of_ref);
  free(p.reg_g);
  free(p.bulk_g);
  free(p.ctx.totals_s);
  free(p.ctx.totals_b);
  if (p.ctx.numi_spill) fclose(p.ctx.numi_spill);
  if (p.ctx.pix.w) rctd_writer_abort(p.ctx.pix.w);
  norm_pix_free(&p.ctx.pix);
  free(p.renorm_bk);
  if (rc < 0) {
    rctd_model_free(model);
    rctd_normalize_plan_free(plan);
  }
  return rc;
}

/* ------------------------------------------------------------------ the pixels out */

int rctd_normalize_write_pixels(const rctd_normalize_plan *plan, rctd_writer *w, char *err,
                                size_t err_len) {
  if (err_len) err[0] = '\0';
  FILE *spill = plan->pixels_spill;
  if (!spill || fflush(spill) != 0 || fseeko(spill, 0, SEEK_SET) != 0)
    return rctd_fail(err, err_len, "cannot read the temporary file of pixels back (%s)",
                     spill ? strerror(errno) : "none was written");
  rctd_reader *r = rctd_reader_fopen(spill, "the temporary file of pixels", err, err_len);
  if (!r) return -1;
  const rctd_record_info *info;
  int got;
  /* the copy decodes every frame to check it: as long as a pass at a million pixels */
  rctd_progress *progress =
      rctd_progress_start("normalize: pixels out", (uint64_t)plan->n_pixels, "pixels");
  while ((got = rctd_reader_next(r, &info)) > 0) {
    const uint64_t pixels =
        strcmp(info->name, RCTD_PIX_REC_COUNTS) == 0 && info->rows != RCTD_ROWS_UNKNOWN ? info->rows
                                                                                        : 0;
    if (rctd_reader_copy(r, w) < 0) break;
    rctd_progress_add(progress, pixels);
  }
  rctd_progress_finish(progress);
  int rc = 0;
  if (got != 0)
    rc = rctd_fail(err, err_len, "%s",
                   rctd_writer_error(w)[0] ? rctd_writer_error(w) : rctd_reader_error(r));
  rctd_reader_close(r);
  return rc;
}
