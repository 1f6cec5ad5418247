/* rctd-fit-{full,doublet,multi} as tools: the vignette against R's output (model stream built
 * from the gold files: gold profiles over gene_list_reg, the CSV counts, sigma 0.84), byte
 * identity across thread counts, shards against the unsharded run, bad input, and the
 * synthetic generator. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fit_modes.h"
#include "fit_stage.h"
#include "fit_vignette.h"
#include "model.h"
#include "synth.h"
#include "test.h"

/* ------------------------------------------------------------------ the vignette model */

typedef struct {
  int ok, n_genes, n_types, n_pix;
  char **genes, **types, **barcodes;
  double *profiles_gk, *numi_n;
  int64_t *indptr;
  int32_t *indices;
  double *values;
} fst_vignette;

static fst_vignette fstv;

static int fst_vignette_load(void) {
  if (fstv.ok) return 0;
  rctd_test_fit_vignette v;
  if (rctd_test_fit_vignette_load(test_repo_dir(), &v)) return -1;
  const int N = v.n_pix, G = v.n_genes;
  fstv.n_genes = G;
  fstv.n_types = v.n_types;
  fstv.n_pix = N;
  fstv.genes = v.genes;
  fstv.types = v.types;
  fstv.barcodes = v.barcodes;
  fstv.profiles_gk = v.profiles_gk;
  fstv.numi_n = v.numi_n;
  /* The counts as CSR (the stream's pixel blocks hold the non-zeros only). */
  fstv.indptr = malloc((N + 1) * sizeof(int64_t));
  fstv.indices = malloc((size_t)N * G * sizeof(int32_t));
  fstv.values = malloc((size_t)N * G * sizeof(double));
  int64_t nnz = 0;
  fstv.indptr[0] = 0;
  for (int n = 0; n < N; n++) {
    for (int g = 0; g < G; g++) {
      double y = v.y_ng[(size_t)n * G + g];
      if (y == 0) continue;
      fstv.indices[nnz] = g;
      fstv.values[nnz++] = y;
    }
    fstv.indptr[n + 1] = nnz;
  }
  free(v.y_ng);
  fstv.ok = 1;
  return 0;
}

/* How a test stream departs from the good one. */
typedef struct {
  int no_sigma;    /* leave out the sigma record */
  int no_profiles; /* leave out model.profiles */
  int counts_cols; /* counts over this many genes instead of G (0 = G) */
  int nan_pixel;   /* 1-based pixel whose first count becomes NaN (0 = none) */
  int block;       /* pixels per block (0 = 32) */
} fst_variant;

/* Writes the vignette model stream to PATH. */
static int fst_write_model(const char *path, const fst_variant *v) {
  if (fst_vignette_load() != 0) return -1;
  char err[512];
  rctd_writer *w = rctd_writer_open(path, NULL, err, sizeof err);
  if (!w) return -1;
  const int G = fstv.n_genes, K = fstv.n_types, N = fstv.n_pix;
  rctd_model m;
  memset(&m, 0, sizeof m);
  m.n_types = K;
  m.type_names = m.class_names = fstv.types;
  m.n_reg = m.n_bulk = G;
  m.genes_reg = m.genes_bulk = fstv.genes;
  m.profiles_gk = m.profiles_bulk_gk = fstv.profiles_gk;
  double bulk[64];
  for (int k = 0; k < K; k++) bulk[k] = 1.0 / K;
  m.bulk_weights_k = bulk;
  m.n_pixels = N;
  m.pixel_numi_n = fstv.numi_n;
  int rc = 0;
  if (v->no_profiles) {
    /* the model records by hand, without model.profiles */
    const char *keys[] = {"format", "version", "n_types", "n_reg", "n_bulk", "n_pixels"};
    char nk[16], ng[16], nn[16];
    snprintf(nk, sizeof nk, "%d", K);
    snprintf(ng, sizeof ng, "%d", G);
    snprintf(nn, sizeof nn, "%d", N);
    const char *values[] = {RCTD_MODEL_FORMAT, "1", nk, ng, ng, nn};
    rc |= rctd_write_meta(w, RCTD_MODEL_REC_META, keys, values, 6);
    rc |= rctd_write_meta(w, RCTD_MODEL_REC_CONFIG, NULL, NULL, 0);
    rc |= rctd_write_string_list(w, RCTD_MODEL_REC_TYPES, (const char *const *)fstv.types, K);
    rc |= rctd_write_string_list(w, RCTD_MODEL_REC_CLASSES, (const char *const *)fstv.types, K);
    rc |= rctd_write_string_list(w, RCTD_MODEL_REC_GENES_REG, (const char *const *)fstv.genes, G);
    rc |= rctd_write_string_list(w, RCTD_MODEL_REC_GENES_BULK, (const char *const *)fstv.genes, G);
  } else {
    rc |= rctd_model_write(w, &m);
  }
  if (!v->no_sigma) {
    const char *keys[] = {"sigma_c"}, *values[] = {"0.84"};
    rc |= rctd_write_meta(w, "sigma", keys, values, 1);
  }
  const int B = v->block ? v->block : 32;
  double *values = malloc(fstv.indptr[N] * sizeof(double) + 1);
  memcpy(values, fstv.values, fstv.indptr[N] * sizeof(double));
  if (v->nan_pixel) values[fstv.indptr[v->nan_pixel - 1]] = NAN;
  int64_t rows[4096];
  for (int first = 0; rc == 0 && first < N; first += B) {
    int n = N - first < B ? N - first : B;
    for (int p = 0; p < n; p++) rows[p] = 1000 + first + p;
    rctd_pixel_block b;
    memset(&b, 0, sizeof b);
    b.first = first;
    b.n = n;
    b.barcodes = (const char *const *)fstv.barcodes + first;
    b.numi_n = fstv.numi_n + first;
    b.row_n = rows;
    b.indptr = fstv.indptr + first;
    b.indices = fstv.indices;
    b.values = values;
    rc |= rctd_pixel_block_write(w, &b, v->counts_cols ? v->counts_cols : G);
  }
  free(values);
  if (rc) {
    rctd_writer_abort(w);
    return -1;
  }
  return rctd_writer_close(w, err, sizeof err);
}

/* ------------------------------------------------------------------ reading results */

/* Every record of a result stream, chunks of one name concatenated. */
typedef struct {
  char name[64];
  rctd_kind kind;
  rctd_dtype dtype;
  uint64_t cols, rows;
  unsigned char *data; /* dense: rows * cols elements; strings: NUL-separated */
  size_t bytes;
  int n_parts;
  rctd_record first; /* the first part as loaded (meta records are kept whole) */
} fst_column;

typedef struct {
  fst_column col[64];
  int n;
} fst_result;

static void fst_result_free(fst_result *r) {
  for (int i = 0; i < r->n; i++) {
    free(r->col[i].data);
    rctd_record_free(&r->col[i].first);
  }
  memset(r, 0, sizeof *r);
}

static fst_column *fst_get(fst_result *r, const char *name) {
  for (int i = 0; i < r->n; i++)
    if (strcmp(r->col[i].name, name) == 0) return &r->col[i];
  return NULL;
}

static int fst_result_read(const char *path, fst_result *res) {
  memset(res, 0, sizeof *res);
  char err[512];
  rctd_reader *r = rctd_reader_open(path, err, sizeof err);
  if (!r) {
    fprintf(stderr, "  %s\n", err);
    return -1;
  }
  const rctd_record_info *info;
  int got;
  while ((got = rctd_reader_next(r, &info)) > 0) {
    rctd_record rec;
    if (rctd_reader_load(r, &rec) < 0) break;
    fst_column *c = fst_get(res, rec.name);
    if (!c) {
      if (res->n == 64) break;
      c = &res->col[res->n++];
      snprintf(c->name, sizeof c->name, "%s", rec.name);
      c->kind = rec.kind;
      c->dtype = rec.dtype;
      c->cols = rec.cols;
    }
    size_t add = 0;
    if (rec.kind == RCTD_DENSE) add = rec.rows * rec.cols * rctd_dtype_size(rec.dtype);
    if (rec.kind == RCTD_STRINGS)
      for (uint64_t i = 0; i < rec.rows; i++) add += strlen(rec.strings[i]) + 1;
    c->data = realloc(c->data, c->bytes + add + 1);
    if (rec.kind == RCTD_DENSE) memcpy(c->data + c->bytes, rec.data, add);
    if (rec.kind == RCTD_STRINGS) {
      size_t at = c->bytes;
      for (uint64_t i = 0; i < rec.rows; i++) {
        size_t l = strlen(rec.strings[i]) + 1;
        memcpy(c->data + at, rec.strings[i], l);
        at += l;
      }
    }
    c->bytes += add;
    c->rows += rec.rows;
    if (c->n_parts++ == 0)
      c->first = rec;
    else
      rctd_record_free(&rec);
  }
  rctd_reader_close(r);
  return got == 0 ? 0 : -1;
}

static const double *fst_f64(fst_result *r, const char *name, uint64_t rows, uint64_t cols) {
  fst_column *c = fst_get(r, name);
  if (!c || c->kind != RCTD_DENSE || c->dtype != RCTD_F64 || c->rows != rows || c->cols != cols)
    return NULL;
  return (const double *)c->data;
}

static const int32_t *fst_i32(fst_result *r, const char *name, uint64_t rows, uint64_t cols) {
  fst_column *c = fst_get(r, name);
  if (!c || c->kind != RCTD_DENSE || c->dtype != RCTD_I32 || c->rows != rows || c->cols != cols)
    return NULL;
  return (const int32_t *)c->data;
}

static const uint8_t *fst_u8(fst_result *r, const char *name, uint64_t rows, uint64_t cols) {
  fst_column *c = fst_get(r, name);
  if (!c || c->kind != RCTD_DENSE || c->dtype != RCTD_U8 || c->rows != rows || c->cols != cols)
    return NULL;
  return c->data;
}

static const char *fst_meta(fst_result *r, const char *rec, const char *key) {
  fst_column *c = fst_get(r, rec);
  return c && c->kind == RCTD_META ? rctd_record_meta_get(&c->first, key) : NULL;
}

/* ------------------------------------------------------------------ helpers */

static char fst_model_path[1024];

static const char *fst_model(void) {
  if (!fst_model_path[0]) {
    char path[1024];
    snprintf(path, sizeof path, "%s/vignette-model.rctd", test_tmp_dir());
    fst_variant v = {0};
    if (fst_write_model(path, &v) != 0) return NULL;
    snprintf(fst_model_path, sizeof fst_model_path, "%s", path);
  }
  return fst_model_path;
}

/* Runs a fit tool with ARGS; the table cache lives in the test directory. */
static int fst_run(const char *mode, const char *args) {
  return test_sh("'%s/rctd-fit-%s' -q --cache-dir '%s/cache' %s", test_bin_dir(), mode,
                 test_tmp_dir(), args);
}

/* Max |ours - gold| over a gold weights CSV (pixels x K). */
static double fst_weights_diff(const char *file, const double *w_nk, const char *barcodes) {
  char path[1024];
  snprintf(path, sizeof path, "%s/tests/data/gold/vignette/%s", test_repo_dir(), file);
  rctd_synth_csv gold;
  if (rctd_synth_csv_read(path, &gold, NULL, 0) || gold.n_rows != fstv.n_pix + 1) return INFINITY;
  double diff = 0;
  const char *bc = barcodes;
  for (int n = 0; n < fstv.n_pix; n++, bc += strlen(bc) + 1) {
    if (strcmp(rctd_synth_csv_at(&gold, n + 1, 0), bc) != 0) diff = INFINITY;
    for (int k = 0; k < fstv.n_types; k++)
      diff = fmax(diff, fabs(w_nk[(size_t)n * fstv.n_types + k] -
                             strtod(rctd_synth_csv_at(&gold, n + 1, k + 1), NULL)));
  }
  rctd_synth_csv_free(&gold);
  return diff;
}

/* ------------------------------------------------------------------ vignette vs R */

TEST_E2E(fit_tool_vignette_full_matches_r) {
  const char *model = fst_model();
  CHECK_MSG(model, "cannot build the vignette model under %s", test_repo_dir());
  char args[4096];
  snprintf(args, sizeof args, "--chunk-pixels 16 --threads 2 '%s' -o '%s/full.rctd'", model,
           test_tmp_dir());
  CHECK(fst_run("full", args) == 0);
  char out[1024];
  snprintf(out, sizeof out, "%s/full.rctd", test_tmp_dir());
  fst_result res;
  CHECK(fst_result_read(out, &res) == 0);
  const int N = fstv.n_pix, K = fstv.n_types;
  const double *w = fst_f64(&res, RCTD_RES_REC_WEIGHTS, N, K);
  const uint8_t *conv = fst_u8(&res, RCTD_RES_REC_CONV, N, 1);
  fst_column *bc = fst_get(&res, RCTD_RES_REC_BARCODE);
  CHECK(w && conv && bc && bc->rows == (uint64_t)N);
  double diff = fst_weights_diff("full/weights.csv", w, (const char *)bc->data);
  if (rctd_test_fit_verbose()) fprintf(stderr, "  full (tool): max |weight - R| = %.3g\n", diff);
  CHECK_MSG(diff < 1e-6, "weights differ from R by %g", diff);
  CHECK(strcmp(fst_meta(&res, RCTD_RES_REC_META, "mode"), "full") == 0);
  CHECK(strcmp(fst_meta(&res, RCTD_RES_REC_META, "sigma"), "0.84") == 0);
  CHECK(strcmp(fst_meta(&res, RCTD_RES_REC_META, "n_chunks"), "5") == 0);
  CHECK(strcmp(fst_meta(&res, RCTD_RES_REC_SUMMARY, "pixels"), "71") == 0);
  const int64_t *pix = (const int64_t *)fst_get(&res, RCTD_RES_REC_PIXEL)->data;
  const int64_t *row = (const int64_t *)fst_get(&res, RCTD_RES_REC_ROW)->data;
  for (int n = 0; n < N; n++) CHECK(pix[n] == n && row[n] == 1000 + n);
  fst_result_free(&res);
}

/* Doublet mode against results_df.csv and weights_doublet.csv; EXTRA are further options. */
static void fst_doublet_vs_r(const char *model, const char *extra, int *failed_) {
  char args[4096], out[1024];
  snprintf(out, sizeof out, "%s/doublet.rctd", test_tmp_dir());
  snprintf(args, sizeof args, "--chunk-pixels 20 --threads 2 %s '%s' -o '%s'", extra, model, out);
  CHECK(fst_run("doublet", args) == 0);
  fst_result res;
  CHECK(fst_result_read(out, &res) == 0);
  const int N = fstv.n_pix, K = fstv.n_types;
  const double *w = fst_f64(&res, RCTD_RES_REC_WEIGHTS, N, K);
  const double *wd = fst_f64(&res, RCTD_RES_REC_WEIGHTS_DOUBLET, N, 2);
  const double *min_score = fst_f64(&res, RCTD_RES_REC_MIN_SCORE, N, 1);
  const double *singlet = fst_f64(&res, RCTD_RES_REC_SINGLET_SCORE, N, 1);
  const uint8_t *spot = fst_u8(&res, RCTD_RES_REC_SPOT_CLASS, N, 1);
  const int32_t *t1 = fst_i32(&res, RCTD_RES_REC_FIRST_TYPE, N, 1);
  const int32_t *t2 = fst_i32(&res, RCTD_RES_REC_SECOND_TYPE, N, 1);
  const uint8_t *c1 = fst_u8(&res, RCTD_RES_REC_FIRST_CLASS, N, 1);
  const uint8_t *c2 = fst_u8(&res, RCTD_RES_REC_SECOND_CLASS, N, 1);
  const uint8_t *conv_all = fst_u8(&res, RCTD_RES_REC_CONV_ALL, N, 1);
  const uint8_t *conv_dbl = fst_u8(&res, RCTD_RES_REC_CONV_DOUBLET, N, 1);
  fst_column *bc = fst_get(&res, RCTD_RES_REC_BARCODE);
  CHECK(w && wd && min_score && singlet && spot && t1 && t2 && c1 && c2 && conv_all && conv_dbl &&
        bc);
  double diff_all = fst_weights_diff("doublet/weights.csv", w, (const char *)bc->data);
  rctd_synth_csv df, gwd;
  char path[1024];
  snprintf(path, sizeof path, "%s/tests/data/gold/vignette/doublet/results_df.csv",
           test_repo_dir());
  CHECK(rctd_synth_csv_read(path, &df, NULL, 0) == 0 && df.n_rows == N + 1);
  snprintf(path, sizeof path, "%s/tests/data/gold/vignette/doublet/weights_doublet.csv",
           test_repo_dir());
  CHECK(rctd_synth_csv_read(path, &gwd, NULL, 0) == 0 && gwd.n_rows == N + 1);
  int mismatch = 0;
  double diff_wd = 0, rel = 0;
  const char *b = (const char *)bc->data;
  for (int n = 0; n < N; n++, b += strlen(b) + 1) {
    CHECK(strcmp(rctd_synth_csv_at(&df, n + 1, 0), b) == 0);
    int same = strcmp(rctd_spot_class_name(spot[n]), rctd_synth_csv_at(&df, n + 1, 1)) == 0 &&
               strcmp(fstv.types[t1[n]], rctd_synth_csv_at(&df, n + 1, 2)) == 0 &&
               strcmp(fstv.types[t2[n]], rctd_synth_csv_at(&df, n + 1, 3)) == 0 &&
               c1[n] == rctd_test_fit_bool(rctd_synth_csv_at(&df, n + 1, 4)) &&
               c2[n] == rctd_test_fit_bool(rctd_synth_csv_at(&df, n + 1, 5)) &&
               conv_all[n] == rctd_test_fit_bool(rctd_synth_csv_at(&df, n + 1, 8)) &&
               conv_dbl[n] == rctd_test_fit_bool(rctd_synth_csv_at(&df, n + 1, 9));
    if (!same) fprintf(stderr, "  %s differs from R\n", b);
    mismatch += !same;
    rel =
        fmax(rel, rctd_test_fit_rel(min_score[n], strtod(rctd_synth_csv_at(&df, n + 1, 6), NULL)));
    rel = fmax(rel, rctd_test_fit_rel(singlet[n], strtod(rctd_synth_csv_at(&df, n + 1, 7), NULL)));
    for (int i = 0; i < 2; i++)
      diff_wd =
          fmax(diff_wd, fabs(wd[2 * n + i] - strtod(rctd_synth_csv_at(&gwd, n + 1, i + 1), NULL)));
  }
  if (rctd_test_fit_verbose())
    fprintf(stderr,
            "  doublet (tool%s%s): %d/%d pixels differ in a categorical; max |all_weights - R| = "
            "%.3g, max |doublet weights - R| = %.3g, max relative score difference %.3g\n",
            *extra ? ", " : "", extra, mismatch, N, diff_all, diff_wd, rel);
  CHECK_MSG(mismatch == 0, "%d pixels differ from R in a categorical", mismatch);
  CHECK_MSG(diff_all < 1e-6, "all_weights differ by %g", diff_all);
  CHECK_MSG(diff_wd < 1e-6, "doublet weights differ by %g", diff_wd);
  CHECK_MSG(rel < 1e-6, "scores differ by %g (relative)", rel);
  rctd_synth_csv_free(&df);
  rctd_synth_csv_free(&gwd);
  fst_result_free(&res);
}

TEST_E2E(fit_tool_vignette_doublet_matches_r) {
  const char *model = fst_model();
  CHECK_MSG(model, "cannot build the vignette model under %s", test_repo_dir());
  fst_doublet_vs_r(model, "", failed_);
}

TEST_E2E(fit_tool_vignette_doublet_with_sigma_option) {
  /* a model stream without sigma, and --sigma 0.84 given directly */
  char path[1024];
  snprintf(path, sizeof path, "%s/nosigma.rctd", test_tmp_dir());
  fst_variant v = {.no_sigma = 1, .block = 7};
  CHECK(fst_write_model(path, &v) == 0);
  fst_doublet_vs_r(path, "--sigma 0.84", failed_);
}

TEST_E2E(fit_tool_vignette_multi_matches_r) {
  const char *model = fst_model();
  CHECK_MSG(model, "cannot build the vignette model under %s", test_repo_dir());
  char args[4096], out[1024];
  snprintf(out, sizeof out, "%s/multi.rctd", test_tmp_dir());
  snprintf(args, sizeof args, "--chunk-pixels 30 --threads 2 '%s' -o '%s'", model, out);
  CHECK(fst_run("multi", args) == 0);
  fst_result res;
  CHECK(fst_result_read(out, &res) == 0);
  const int N = fstv.n_pix, K = fstv.n_types, M = 4;
  const double *w = fst_f64(&res, RCTD_RES_REC_WEIGHTS, N, K);
  const double *sub = fst_f64(&res, RCTD_RES_REC_SUB_WEIGHTS, N, M);
  const double *min_score = fst_f64(&res, RCTD_RES_REC_MIN_SCORE, N, 1);
  const int32_t *n_types = fst_i32(&res, RCTD_RES_REC_N_TYPES, N, 1);
  const int32_t *types = fst_i32(&res, RCTD_RES_REC_TYPES, N, M);
  const uint8_t *conf = fst_u8(&res, RCTD_RES_REC_CONF, N, M);
  const uint8_t *status = fst_u8(&res, RCTD_RES_REC_MULTI_STATUS, N, 1);
  fst_column *bc = fst_get(&res, RCTD_RES_REC_BARCODE);
  CHECK(w && sub && min_score && n_types && types && conf && status && bc);
  double diff_all = fst_weights_diff("multi/weights.csv", w, (const char *)bc->data);
  rctd_synth_csv mr;
  char path[1024];
  snprintf(path, sizeof path, "%s/tests/data/gold/vignette/multi/multi_results.csv",
           test_repo_dir());
  CHECK(rctd_synth_csv_read(path, &mr, NULL, 0) == 0 && mr.n_rows == N + 1);
  int mismatch = 0;
  double diff_sub = 0, rel = 0;
  for (int n = 0; n < N; n++) {
    char *gt[16], *gc[16], *gs[16];
    int nt = atoi(rctd_synth_csv_at(&mr, n + 1, 1));
    int same = status[n] == 0 && n_types[n] == nt &&
               rctd_test_fit_split((char *)rctd_synth_csv_at(&mr, n + 1, 2), gt, 16) == nt &&
               rctd_test_fit_split((char *)rctd_synth_csv_at(&mr, n + 1, 3), gc, 16) == nt &&
               rctd_test_fit_split((char *)rctd_synth_csv_at(&mr, n + 1, 4), gs, 16) == nt;
    for (int t = 0; same && t < M; t++) {
      if (t >= nt) {
        same = types[n * M + t] == -1 && conf[n * M + t] == 0 && sub[n * M + t] == 0;
        continue;
      }
      same = strcmp(fstv.types[types[n * M + t]], gt[t]) == 0 &&
             conf[n * M + t] == rctd_test_fit_bool(gc[t]);
      diff_sub = fmax(diff_sub, fabs(sub[n * M + t] - strtod(gs[t], NULL)));
    }
    mismatch += !same;
    rel =
        fmax(rel, rctd_test_fit_rel(min_score[n], strtod(rctd_synth_csv_at(&mr, n + 1, 5), NULL)));
  }
  if (rctd_test_fit_verbose())
    fprintf(stderr,
            "  multi (tool): %d/%d pixels differ; max |all_weights - R| = %.3g, max |sub_weights "
            "- R| = %.3g, max relative min_score difference %.3g\n",
            mismatch, N, diff_all, diff_sub, rel);
  CHECK_MSG(mismatch == 0, "%d pixels differ from R", mismatch);
  CHECK_MSG(diff_all < 1e-6, "all_weights differ by %g", diff_all);
  CHECK_MSG(diff_sub < 1e-6, "sub_weights differ by %g", diff_sub);
  CHECK_MSG(rel < 1e-6, "min_score differs by %g (relative)", rel);
  rctd_synth_csv_free(&mr);
  fst_result_free(&res);
}

/* ------------------------------------------------------------------ invariance */

static int fst_files_equal(const char *a, const char *b) {
  return test_sh("cmp -s '%s' '%s'", a, b) == 0;
}

TEST_E2E(fit_tool_outputs_do_not_depend_on_threads) {
  const char *model = fst_model();
  CHECK(model);
  const char *modes[] = {"full", "doublet", "multi"};
  for (int m = 0; m < 3; m++) {
    char a[1024], b[1024], args[4096];
    for (int t = 1; t <= 3; t += 2) {
      snprintf(t == 1 ? a : b, 1024, "%s/%s-t%d.rctd", test_tmp_dir(), modes[m], t);
      snprintf(args, sizeof args, "--chunk-pixels 25 --threads %d '%s' > '%s'", t, model,
               t == 1 ? a : b);
      CHECK(fst_run(modes[m], args) == 0);
    }
    CHECK_MSG(fst_files_equal(a, b), "%s: --threads 1 and 3 give different bytes", modes[m]);
  }
}

/* The fit tools spill the pixel nUMI to a temporary file; where none can be made ($TMPDIR
 * missing) they hold the record instead, as they did before the spill: same bytes, no error. */
TEST_E2E(fit_tool_works_without_a_writable_tmpdir) {
  const char *model = fst_model();
  CHECK(model);
  char a[1024], b[1024], args[4096];
  snprintf(a, sizeof a, "%s/tmpdir-ok.rctd", test_tmp_dir());
  snprintf(b, sizeof b, "%s/tmpdir-missing.rctd", test_tmp_dir());
  snprintf(args, sizeof args, "--chunk-pixels 25 '%s' > '%s'", model, a);
  CHECK(fst_run("doublet", args) == 0);
  CHECK(test_sh("TMPDIR='%s/no-such-dir' '%s/rctd-fit-doublet' -q --cache-dir '%s/cache' "
                "--chunk-pixels 25 '%s' > '%s'",
                test_tmp_dir(), test_bin_dir(), test_tmp_dir(), model, b) == 0);
  CHECK_MSG(fst_files_equal(a, b), "an unwritable TMPDIR changed the output");
}

/* Result records (not meta) of shards 1..n, concatenated, against the unsharded run. */
TEST_E2E(fit_tool_shards_concatenate_to_the_whole) {
  const char *model = fst_model();
  CHECK(model);
  char whole[1024], args[4096];
  snprintf(whole, sizeof whole, "%s/whole.rctd", test_tmp_dir());
  snprintf(args, sizeof args, "--chunk-pixels 10 '%s' -o '%s'", model, whole);
  CHECK(fst_run("doublet", args) == 0);
  fst_result all;
  CHECK(fst_result_read(whole, &all) == 0);
  const int n_shards = 3;
  fst_result parts[3];
  char fp[64] = "";
  int64_t next_pixel = 0, next_chunk = 0;
  for (int s = 0; s < n_shards; s++) {
    char out[1024];
    snprintf(out, sizeof out, "%s/shard%d.rctd", test_tmp_dir(), s + 1);
    snprintf(args, sizeof args, "--chunk-pixels 10 --shard %d/%d --threads 2 '%s' -o '%s'", s + 1,
             n_shards, model, out);
    CHECK(fst_run("doublet", args) == 0);
    CHECK(fst_result_read(out, &parts[s]) == 0);
    const char *f = fst_meta(&parts[s], RCTD_RES_REC_META, "fingerprint");
    CHECK(f && strlen(f) == 16);
    if (s == 0) snprintf(fp, sizeof fp, "%s", f);
    CHECK_MSG(strcmp(fp, f) == 0, "shard %d has another fingerprint", s + 1);
    CHECK(strcmp(f, fst_meta(&all, RCTD_RES_REC_META, "fingerprint")) == 0);
    /* the shards tile the chunks and pixels in order */
    CHECK(atoll(fst_meta(&parts[s], RCTD_RES_REC_META, "first_chunk")) == next_chunk);
    CHECK(atoll(fst_meta(&parts[s], RCTD_RES_REC_META, "first_pixel")) == next_pixel);
    next_chunk = atoll(fst_meta(&parts[s], RCTD_RES_REC_META, "end_chunk"));
    next_pixel = atoll(fst_meta(&parts[s], RCTD_RES_REC_META, "end_pixel"));
    CHECK(atoll(fst_meta(&parts[s], RCTD_RES_REC_SUMMARY, "pixels")) ==
          next_pixel - atoll(fst_meta(&parts[s], RCTD_RES_REC_META, "first_pixel")));
    char want[16];
    snprintf(want, sizeof want, "%d/%d", s + 1, n_shards);
    CHECK(strcmp(fst_meta(&parts[s], RCTD_RES_REC_META, "shard"), want) == 0);
  }
  CHECK(next_chunk == 8 && next_pixel == fstv.n_pix);
  int n_compared = 0;
  for (int i = 0; i < all.n; i++) {
    fst_column *c = &all.col[i];
    if (strncmp(c->name, "result.", 7) != 0 || c->kind == RCTD_META) continue;
    size_t at = 0;
    for (int s = 0; s < n_shards; s++) {
      fst_column *p = fst_get(&parts[s], c->name);
      CHECK_MSG(p, "shard %d lacks %s", s + 1, c->name);
      CHECK(at + p->bytes <= c->bytes && memcmp(c->data + at, p->data, p->bytes) == 0);
      at += p->bytes;
    }
    CHECK_MSG(at == c->bytes, "%s: shards hold %zu of %zu bytes", c->name, at, c->bytes);
    n_compared++;
  }
  CHECK(n_compared >= 15);
  for (int s = 0; s < n_shards; s++) fst_result_free(&parts[s]);
  fst_result_free(&all);
}

TEST_E2E(fit_tool_empty_shard_and_chunk_size_invariance) {
  const char *model = fst_model();
  CHECK(model);
  /* 71 pixels in one chunk: shard 1/2 has no chunk but is a valid, empty shard */
  char out[1024], args[4096];
  snprintf(out, sizeof out, "%s/empty-shard.rctd", test_tmp_dir());
  snprintf(args, sizeof args, "--shard 1/2 '%s' -o '%s'", model, out);
  CHECK(fst_run("full", args) == 0);
  fst_result res;
  CHECK(fst_result_read(out, &res) == 0);
  CHECK(strcmp(fst_meta(&res, RCTD_RES_REC_SUMMARY, "pixels"), "0") == 0);
  CHECK(fst_get(&res, RCTD_RES_REC_WEIGHTS) == NULL);
  fst_result_free(&res);
  /* weights do not depend on the chunk size */
  fst_result a, b;
  for (int i = 0; i < 2; i++) {
    snprintf(out, sizeof out, "%s/chunk%d.rctd", test_tmp_dir(), i);
    snprintf(args, sizeof args, "--chunk-pixels %d '%s' -o '%s'", i ? 3 : 1000, model, out);
    CHECK(fst_run("multi", args) == 0);
    CHECK(fst_result_read(out, i ? &b : &a) == 0);
  }
  const char *names[] = {RCTD_RES_REC_WEIGHTS, RCTD_RES_REC_SUB_WEIGHTS, RCTD_RES_REC_TYPES,
                         RCTD_RES_REC_MIN_SCORE};
  for (int i = 0; i < 4; i++) {
    fst_column *x = fst_get(&a, names[i]), *y = fst_get(&b, names[i]);
    CHECK(x && y && x->bytes == y->bytes && memcmp(x->data, y->data, x->bytes) == 0);
  }
  CHECK(fst_get(&b, RCTD_RES_REC_WEIGHTS)->n_parts == 24);
  fst_result_free(&a);
  fst_result_free(&b);
}

/* ------------------------------------------------------------------ bad input */

/* Runs MODE on a variant stream: expects exit status RC, one line on stderr naming WHAT, and no
 * output file. */
static void fst_bad(const char *mode, const fst_variant *v, const char *extra, int want_rc,
                    const char *what, int *failed_) {
  static int n;
  char in[1024], out[1024], errf[1024], args[4096];
  snprintf(in, sizeof in, "%s/bad%d.rctd", test_tmp_dir(), ++n);
  snprintf(out, sizeof out, "%s/bad%d-out.rctd", test_tmp_dir(), n);
  snprintf(errf, sizeof errf, "%s/bad%d.err", test_tmp_dir(), n);
  if (v) CHECK(fst_write_model(in, v) == 0);
  snprintf(args, sizeof args, "%s '%s' -o '%s' 2> '%s'", extra, v ? in : fst_model(), out, errf);
  int rc = fst_run(mode, args);
  CHECK_MSG(rc == want_rc, "%s: exit status %d, expected %d", what, rc, want_rc);
  struct stat st;
  CHECK_MSG(stat(out, &st) != 0, "%s: an output file was left", what);
  FILE *f = fopen(errf, "r");
  CHECK(f);
  char line[2048] = "", second[64] = "";
  CHECK(fgets(line, sizeof line, f) != NULL);
  int more = fgets(second, sizeof second, f) != NULL;
  fclose(f);
  if (rctd_test_fit_verbose()) fprintf(stderr, "  %s", line);
  CHECK_MSG(strstr(line, "rctd-fit-") == line && strstr(line, what), "message: %s", line);
  CHECK_MSG(want_rc == 2 || !more, "more than one line: %s%s", line, second);
}

TEST_E2E(fit_tool_bad_input) {
  CHECK(fst_model());
  fst_variant no_sigma = {.no_sigma = 1};
  fst_bad("doublet", &no_sigma, "", 1, "no sigma", failed_);
  if (*failed_) return;
  fst_variant no_profiles = {.no_profiles = 1};
  fst_bad("full", &no_profiles, "", 1, "model.profiles", failed_);
  if (*failed_) return;
  fst_variant genes = {.counts_cols = 314};
  fst_bad("full", &genes, "", 1, "genes", failed_);
  if (*failed_) return;
  fst_variant nan = {.nan_pixel = 40, .block = 16};
  fst_bad("doublet", &nan, "--chunk-pixels 8", 1, "nan", failed_);
  if (*failed_) return;
  fst_bad("multi", NULL, "--shard 4/3", 2, "out of range", failed_);
  if (*failed_) return;
  fst_bad("multi", NULL, "--shard 0/3", 2, "out of range", failed_);
  if (*failed_) return;
  fst_bad("multi", NULL, "--shard 2", 2, "I/N", failed_);
  if (*failed_) return;
  fst_bad("full", NULL, "--sigma 0.71", 2, "grid", failed_);
  if (*failed_) return;
}

/* ------------------------------------------------------------------ synthetic data */

TEST_E2E(fit_synth_stream_is_seeded_and_fits) {
  char ref_dir[1024], a[1024], b[1024], err[512];
  snprintf(ref_dir, sizeof ref_dir, "%s/data/vignette/csv/reference", test_repo_dir());
  rctd_synth_reference ref;
  CHECK_MSG(rctd_synth_reference_load(ref_dir, &ref, err, sizeof err) == 0, "%s", err);
  CHECK(ref.n_types == 19 && ref.n_genes == 384);
  double sum = 0;
  for (int g = 0; g < ref.n_genes; g++) sum += ref.profiles_gk[(size_t)g * 19 + 3];
  CHECK(sum > 0.05 && sum <= 1);
  rctd_synth_opts o;
  rctd_synth_opts_default(&o);
  o.n_pixels = 150;
  o.block_pixels = 64;
  for (int i = 0; i < 2; i++) {
    snprintf(i ? b : a, 1024, "%s/synth%d.rctd", test_tmp_dir(), i);
    rctd_writer *w = rctd_writer_open(i ? b : a, NULL, err, sizeof err);
    CHECK(w && rctd_synth_write(&ref, &o, w, err, sizeof err) == 0);
    CHECK(rctd_writer_close(w, err, sizeof err) == 0);
  }
  rctd_synth_reference_free(&ref);
  CHECK(fst_files_equal(a, b));
  /* nUMI within the clip range; the stream fits in doublet mode */
  rctd_model_reader *mr = rctd_model_open(a, err, sizeof err);
  CHECK_MSG(mr, "%s", err);
  rctd_model *m = rctd_model_reader_model(mr);
  CHECK(m->n_pixels == 150 && m->n_reg == 384);
  for (int n = 0; n < 150; n++) CHECK(m->pixel_numi_n[n] >= 100 && m->pixel_numi_n[n] <= 5000);
  rctd_model_reader_close(mr);
  char out[1024], args[4096];
  snprintf(out, sizeof out, "%s/synth-doublet.rctd", test_tmp_dir());
  snprintf(args, sizeof args, "--threads 2 '%s' -o '%s'", a, out);
  CHECK(fst_run("doublet", args) == 0);
  fst_result res;
  CHECK(fst_result_read(out, &res) == 0);
  CHECK(strcmp(fst_meta(&res, RCTD_RES_REC_META, "sigma"), "1.00") == 0);
  const uint8_t *spot = fst_u8(&res, RCTD_RES_REC_SPOT_CLASS, 150, 1);
  CHECK(spot);
  int n_singlet = 0, n_doublet = 0;
  for (int n = 0; n < 150; n++) {
    n_singlet += spot[n] == RCTD_SPOT_SINGLET;
    n_doublet += spot[n] == RCTD_SPOT_DOUBLET_CERTAIN;
  }
  if (rctd_test_fit_verbose())
    fprintf(stderr, "  synth: %d singlets, %d doublets\n", n_singlet, n_doublet);
  CHECK(n_singlet > 20 && n_doublet > 20);
  fst_result_free(&res);
}

/* The real pipeline: rctd-reference | rctd-normalize | rctd-sigma, whose stream carries sigma
 * (estimated, 0.84) and its likelihood table, which the fit takes from the stream. */
TEST_E2E(fit_tool_pipeline_doublet_matches_r) {
  CHECK(fst_vignette_load() == 0);
  char model[1024];
  snprintf(model, sizeof model, "%s/pipeline-model.rctd", test_tmp_dir());
  const char *sh = test_repo_dir(), *bin = test_bin_dir(), *tmp = test_tmp_dir();
  CHECK_MSG(test_sh("'%s/rctd-reference' -q '%s/data/vignette/h5ad/reference.h5ad' --numi-col nUMI "
                    "| '%s/rctd-normalize' -q '%s/data/vignette/h5ad/spatial.h5ad' - | "
                    "'%s/rctd-sigma' -q --cache-dir '%s/cache' -o '%s'",
                    bin, sh, bin, sh, bin, tmp, model) == 0,
            "the pipeline to rctd-sigma failed");
  /* no cache and no message about computing a table: the table came with the stream */
  char args[4096], out[1024];
  snprintf(out, sizeof out, "%s/pipeline-doublet.rctd", tmp);
  snprintf(args, sizeof args, "'%s/rctd-fit-doublet' --cache-dir '' '%s' -o '%s' 2> '%s.log'", bin,
           model, out, out);
  CHECK(test_sh("%s", args) == 0);
  CHECK(test_sh("grep -q 'table' '%s.log'", out) == 1);
  fst_result res;
  CHECK(fst_result_read(out, &res) == 0);
  CHECK(strcmp(fst_meta(&res, RCTD_RES_REC_META, "sigma"), "0.84") == 0);
  fst_result_free(&res);
  fst_doublet_vs_r(model, "", failed_);
}
