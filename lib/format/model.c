/* Model stream records: writing and reading the model and its pixel blocks.  See model.h. */
#include "model.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "atomic_out.h"
#include "error.h"
#include "strlist.h"

void rctd_model_free(rctd_model *model) {
  if (!model) return;
  rctd_strlist_free(model->type_names, (size_t)model->n_types);
  rctd_strlist_free(model->class_names, (size_t)model->n_types);
  free(model->class_k);
  rctd_strlist_free(model->genes_reg, (size_t)model->n_reg);
  rctd_strlist_free(model->genes_bulk, (size_t)model->n_bulk);
  free(model->profiles_gk);
  free(model->profiles_bulk_gk);
  free(model->bulk_weights_k);
  free(model->pixel_numi_n);
  if (model->pixel_numi_spill) fclose(model->pixel_numi_spill);
  rctd_strlist_free(model->config_keys, model->n_config);
  rctd_strlist_free(model->config_values, model->n_config);
  free(model->rng_state);
  for (size_t i = 0; i < model->n_extra; i++) rctd_record_free(&model->extra[i]);
  free(model->extra);
  memset(model, 0, sizeof *model);
}

const char *rctd_model_config(const rctd_model *model, const char *key) {
  for (size_t i = model->n_config; i-- > 0;)
    if (strcmp(model->config_keys[i], key) == 0) return model->config_values[i];
  return NULL;
}

int rctd_model_config_double(const rctd_model *model, const char *key, double *value) {
  const char *text = rctd_model_config(model, key);
  if (!text || !*text) return -1;
  char *end;
  errno = 0;
  double v = strtod(text, &end);
  if (*end || errno == ERANGE) return -1;
  *value = v;
  return 0;
}

int rctd_model_config_set(rctd_model *model, const char *key, const char *value) {
  char *v = strdup(value);
  if (!v) return -1;
  for (size_t i = 0; i < model->n_config; i++) {
    if (strcmp(model->config_keys[i], key) != 0) continue;
    free(model->config_values[i]);
    model->config_values[i] = v;
    return 0;
  }
  char *k = strdup(key);
  char **keys = realloc(model->config_keys, (model->n_config + 1) * sizeof *keys);
  if (keys) model->config_keys = keys;
  char **values =
      keys ? realloc(model->config_values, (model->n_config + 1) * sizeof *values) : NULL;
  if (values) model->config_values = values;
  if (!k || !keys || !values) {
    free(k);
    free(v);
    return -1;
  }
  model->config_keys[model->n_config] = k;
  model->config_values[model->n_config++] = v;
  return 0;
}

const rctd_record *rctd_model_extra(const rctd_model *model, const char *name) {
  for (size_t i = 0; i < model->n_extra; i++)
    if (strcmp(model->extra[i].name, name) == 0) return &model->extra[i];
  return NULL;
}

int rctd_model_add_extra(rctd_model *model, rctd_record *rec) {
  rctd_record *grown = realloc(model->extra, (model->n_extra + 1) * sizeof *grown);
  if (!grown) return -1;
  model->extra = grown;
  model->extra[model->n_extra++] = *rec;
  memset(rec, 0, sizeof *rec);
  return 0;
}

int rctd_model_type_index(const rctd_model *model, const char *name) {
  for (int k = 0; k < model->n_types; k++)
    if (strcmp(model->type_names[k], name) == 0) return k;
  return -1;
}

int rctd_model_class_ids(rctd_model *model) {
  free(model->class_k);
  model->class_k = malloc((size_t)(model->n_types ? model->n_types : 1) * sizeof *model->class_k);
  if (!model->class_k) return -1;
  model->n_classes = 0;
  for (int k = 0; k < model->n_types; k++) {
    int id = -1;
    for (int j = 0; j < k && id < 0; j++)
      if (strcmp(model->class_names[j], model->class_names[k]) == 0) id = model->class_k[j];
    model->class_k[k] = id >= 0 ? id : model->n_classes++;
  }
  return 0;
}

int rctd_model_check(const rctd_model *model, char *err, size_t err_len) {
  if (model->n_types < 2)
    return rctd_fail(err, err_len, "the model has %d cell types (at least 2 needed)",
                     model->n_types);
  if (!model->type_names || !model->class_names)
    return rctd_fail(err, err_len, "the model has no type names or classes");
  if (model->n_reg < 1 || model->n_bulk < 1 || !model->genes_reg || !model->genes_bulk)
    return rctd_fail(err, err_len, "the model has an empty gene list");
  if (!model->profiles_gk || !model->profiles_bulk_gk || !model->bulk_weights_k)
    return rctd_fail(err, err_len, "the model has no profiles or bulk weights");
  size_t n = (size_t)model->n_reg * (size_t)model->n_types;
  for (size_t i = 0; i < n; i++)
    if (!isfinite(model->profiles_gk[i]) || model->profiles_gk[i] < 0)
      return rctd_fail(err, err_len, "profile of gene '%s' is not a finite non-negative number",
                       model->genes_reg[i / (size_t)model->n_types]);
  if (model->n_pixels < 0 ||
      (model->n_pixels > 0 && !model->pixel_numi_n && !model->pixel_numi_spill))
    return rctd_fail(err, err_len, "the model has no pixel nUMI record");
  return 0;
}

void rctd_rng_state_save(const rctd_rrng *rng, int32_t seed[RCTD_R_SEED_WORDS]) {
  seed[0] = RCTD_R_SEED_KIND_MT;
  seed[1] = rng->mti;
  for (int i = 0; i < RCTD_RRNG_MT_N; i++) seed[i + 2] = (int32_t)rng->mt[i];
}

int rctd_rng_state_load(const int32_t *seed, int n, rctd_rrng *rng) {
  if (n != RCTD_R_SEED_WORDS || seed[0] != RCTD_R_SEED_KIND_MT || seed[1] < 0 ||
      seed[1] > RCTD_RRNG_MT_N)
    return -1;
  rng->mti = seed[1];
  for (int i = 0; i < RCTD_RRNG_MT_N; i++) rng->mt[i] = (uint32_t)seed[i + 2];
  return 0;
}

int rctd_model_rng(const rctd_model *model, rctd_rrng *rng) {
  if (!model->rng_state) return -1;
  return rctd_rng_state_load(model->rng_state, model->n_rng, rng);
}

/* ------------------------------------------------------------------ writing */

static int model_write_strings(rctd_writer *w, const char *name, char *const *strings, int n) {
  return rctd_write_string_list(w, name, (const char *const *)strings, (uint64_t)n);
}

static int model_write_numi_block(void *w, int64_t first, const double *numi, int64_t n) {
  (void)first;
  return rctd_write_rows(w, numi, (uint64_t)n) < 0 ? -1 : 0;
}

/* The pixel nUMI record, from memory or (pixel_numi_spill) read back piece by piece: the same
 * bytes either way, as the writer cuts chunks by its own chunk size. */
static int model_write_numi(rctd_writer *w, const rctd_model *model) {
  if (!model->pixel_numi_spill)
    return rctd_write_vector(w, RCTD_MODEL_REC_PIXEL_NUMI, RCTD_F64, (uint64_t)model->n_pixels,
                             model->pixel_numi_n, NULL);
  rctd_record_spec spec = {.name = RCTD_MODEL_REC_PIXEL_NUMI,
                           .kind = RCTD_DENSE,
                           .dtype = RCTD_F64,
                           .ndim = 1,
                           .cols = 1,
                           .rows = (uint64_t)model->n_pixels};
  if (rctd_write_begin(w, &spec) < 0) return -1;
  if (rctd_model_numi_blocks(model, model_write_numi_block, w) < 0) return -1;
  return rctd_write_end(w);
}

int rctd_model_pixel_numi(const rctd_model *model, int64_t first, int64_t n, double *out) {
  if (first < 0 || n < 0 || first + n > model->n_pixels) return -1;
  if (model->pixel_numi_n) {
    memcpy(out, model->pixel_numi_n + first, (size_t)n * sizeof *out);
    return 0;
  }
  if (!model->pixel_numi_spill) return -1;
  return rctd_pread_all(fileno(model->pixel_numi_spill), out, (size_t)n * sizeof *out,
                        (off_t)first * (off_t)sizeof *out);
}

int rctd_model_numi_blocks(const rctd_model *model,
                           int (*each)(void *ctx, int64_t first, const double *numi, int64_t n),
                           void *ctx) {
  double numi[RCTD_MODEL_NUMI_BLOCK];
  for (int64_t b = 0; b < model->n_pixels; b += RCTD_MODEL_NUMI_BLOCK) {
    int64_t n =
        model->n_pixels - b < RCTD_MODEL_NUMI_BLOCK ? model->n_pixels - b : RCTD_MODEL_NUMI_BLOCK;
    if (rctd_model_pixel_numi(model, b, n, numi) < 0) return -1;
    int rc = each(ctx, b, numi, n);
    if (rc != 0) return rc < 0 ? -1 : 0;
  }
  return 0;
}

int rctd_model_write(rctd_writer *w, const rctd_model *model) {
  char n_types[32], n_reg[32], n_bulk[32], n_pix[32], sum_numi[40], n_classes[32];
  snprintf(n_types, sizeof n_types, "%d", model->n_types);
  snprintf(n_reg, sizeof n_reg, "%d", model->n_reg);
  snprintf(n_bulk, sizeof n_bulk, "%d", model->n_bulk);
  snprintf(n_pix, sizeof n_pix, "%" PRId64, model->n_pixels);
  snprintf(sum_numi, sizeof sum_numi, "%.17g", model->sum_numi);
  snprintf(n_classes, sizeof n_classes, "%d", model->n_classes);
  char version[16];
  snprintf(version, sizeof version, "%d", RCTD_MODEL_VERSION);
  const char *keys[] = {"format", "version",  "n_types",  "n_classes",      "n_reg",
                        "n_bulk", "n_pixels", "sum_numi", "bulk_converged", "has_coords"};
  const char *values[] = {RCTD_MODEL_FORMAT,
                          version,
                          n_types,
                          n_classes,
                          n_reg,
                          n_bulk,
                          n_pix,
                          sum_numi,
                          model->bulk_converged ? "1" : "0",
                          model->has_coords ? "1" : "0"};
  if (rctd_write_meta(w, RCTD_MODEL_REC_META, keys, values, sizeof keys / sizeof *keys) < 0)
    return -1;
  if (rctd_write_meta(w, RCTD_MODEL_REC_CONFIG, (const char *const *)model->config_keys,
                      (const char *const *)model->config_values, model->n_config) < 0)
    return -1;
  if (model_write_strings(w, RCTD_MODEL_REC_TYPES, model->type_names, model->n_types) < 0 ||
      model_write_strings(w, RCTD_MODEL_REC_CLASSES, model->class_names, model->n_types) < 0 ||
      model_write_strings(w, RCTD_MODEL_REC_GENES_REG, model->genes_reg, model->n_reg) < 0 ||
      model_write_strings(w, RCTD_MODEL_REC_GENES_BULK, model->genes_bulk, model->n_bulk) < 0)
    return -1;
  if (rctd_write_dense(w, RCTD_MODEL_REC_PROFILES, RCTD_F64, (uint64_t)model->n_reg,
                       (uint64_t)model->n_types, model->profiles_gk, RCTD_MODEL_REC_GENES_REG,
                       RCTD_MODEL_REC_TYPES) < 0 ||
      rctd_write_dense(w, RCTD_MODEL_REC_PROFILES_BULK, RCTD_F64, (uint64_t)model->n_bulk,
                       (uint64_t)model->n_types, model->profiles_bulk_gk, RCTD_MODEL_REC_GENES_BULK,
                       RCTD_MODEL_REC_TYPES) < 0 ||
      rctd_write_vector(w, RCTD_MODEL_REC_BULK_WEIGHTS, RCTD_F64, (uint64_t)model->n_types,
                        model->bulk_weights_k, RCTD_MODEL_REC_TYPES) < 0 ||
      model_write_numi(w, model) < 0)
    return -1;
  if (model->n_rng > 0 && rctd_write_vector(w, RCTD_MODEL_REC_RNG, RCTD_I32, (uint64_t)model->n_rng,
                                            model->rng_state, NULL) < 0)
    return -1;
  for (size_t i = 0; i < model->n_extra; i++)
    if (rctd_write_record(w, &model->extra[i]) < 0) return -1;
  return 0;
}

void rctd_pixel_block_init(rctd_pixel_block *block) {
  memset(block, 0, sizeof *block);
}

void rctd_pixel_block_free(rctd_pixel_block *block) {
  for (int i = 0; i < 5; i++) rctd_record_free(&block->recs_[i]);
  memset(block, 0, sizeof *block);
}

void rctd_pixel_block_dense(const rctd_pixel_block *block, int n_genes, double *y_ng) {
  memset(y_ng, 0, (size_t)block->n * (size_t)n_genes * sizeof *y_ng);
  for (int64_t p = 0; p < block->n; p++)
    for (int64_t i = block->indptr[p]; i < block->indptr[p + 1]; i++)
      y_ng[(size_t)p * (size_t)n_genes + (size_t)block->indices[i]] += block->values[i];
}

int rctd_pixel_block_write(rctd_writer *w, const rctd_pixel_block *block, int n_genes) {
  char first[32];
  snprintf(first, sizeof first, "%" PRId64, block->first);
  const char *attr_keys[] = {"first"};
  const char *attr_values[] = {first};
  uint64_t n = (uint64_t)block->n;
  rctd_record_spec spec = {
      .n_attrs = 1, .attr_keys = attr_keys, .attr_values = attr_values, .rows = n};

  spec.name = RCTD_PIX_REC_BARCODES;
  spec.kind = RCTD_STRINGS;
  if (rctd_write_begin(w, &spec) < 0 || rctd_write_strings(w, block->barcodes, n) < 0 ||
      rctd_write_end(w) < 0)
    return -1;

  spec.name = RCTD_PIX_REC_NUMI;
  spec.kind = RCTD_DENSE;
  spec.dtype = RCTD_F64;
  spec.ndim = 1;
  spec.cols = 1;
  if (rctd_write_begin(w, &spec) < 0 || rctd_write_rows(w, block->numi_n, n) < 0 ||
      rctd_write_end(w) < 0)
    return -1;

  spec.name = RCTD_PIX_REC_ROW;
  spec.dtype = RCTD_I64;
  if (rctd_write_begin(w, &spec) < 0 || rctd_write_rows(w, block->row_n, n) < 0 ||
      rctd_write_end(w) < 0)
    return -1;

  if (block->coords_n2) {
    spec.name = RCTD_PIX_REC_COORDS;
    spec.dtype = RCTD_F64;
    spec.ndim = 2;
    spec.cols = 2;
    if (rctd_write_begin(w, &spec) < 0 || rctd_write_rows(w, block->coords_n2, n) < 0 ||
        rctd_write_end(w) < 0)
      return -1;
  }

  spec.name = RCTD_PIX_REC_COUNTS;
  spec.kind = RCTD_CSR;
  spec.dtype = RCTD_F64;
  spec.ndim = 2;
  spec.cols = (uint64_t)n_genes;
  spec.col_names = RCTD_MODEL_REC_GENES_REG;
  if (rctd_write_begin(w, &spec) < 0 ||
      rctd_write_csr(w, block->indptr, block->indices, block->values, n) < 0 ||
      rctd_write_end(w) < 0)
    return -1;
  return 0;
}

/* ------------------------------------------------------------------ reading */

struct rctd_model_reader {
  rctd_reader *r;
  rctd_model model;
  rctd_writer *pass;
  int pending; /* the current record header (a pixel record) is not consumed yet */
  int at_end;
  int64_t next_first;  /* first pixel expected in the next block */
  int saw_results;     /* a result.* record went by: a fit's output, not a model stream */
  int spill_numi;      /* the pixel nUMI record goes to model.pixel_numi_spill */
  uint64_t numi_rows;  /* rows of the spilled record */
  const char *tmp_dir; /* for the spill (NULL: $TMPDIR or /tmp) */
  char err[RCTD_ERR_LEN];
};

static int reader_fail(rctd_model_reader *mr, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int reader_fail(rctd_model_reader *mr, const char *fmt, ...) {
  char msg[RCTD_ERR_LEN - 64];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  snprintf(mr->err, sizeof mr->err, "%s: %s", rctd_reader_label(mr->r), msg);
  return -1;
}

static int reader_stream_fail(rctd_model_reader *mr) {
  snprintf(mr->err, sizeof mr->err, "%s", rctd_reader_error(mr->r));
  return -1;
}

/* Moves the strings of a loaded strings record into a new array of n_out strings. */
static int take_strings(rctd_record *rec, char ***out, int *n_out) {
  if (rec->kind != RCTD_STRINGS) return -1;
  *out = rec->strings;
  *n_out = (int)rec->rows;
  rec->strings = NULL;
  rec->rows = 0;
  return 0;
}

static int take_dense(rctd_record *rec, rctd_dtype dtype, uint64_t rows, uint64_t cols,
                      void **out) {
  if (rec->kind != RCTD_DENSE || rec->dtype != dtype || rec->rows != rows || rec->cols != cols)
    return -1;
  *out = rec->data;
  rec->data = NULL;
  return 0;
}

static int parse_i64(const char *text, int64_t *v) {
  if (!text || !*text) return -1;
  char *end;
  errno = 0;
  long long x = strtoll(text, &end, 10);
  if (*end || errno) return -1;
  *v = x;
  return 0;
}

/* Loaded model records, by kind of content, before they are moved into the model. */
enum {
  M_META,
  M_CONFIG,
  M_TYPES,
  M_CLASSES,
  M_REG,
  M_BULK,
  M_PROF,
  M_PROFB,
  M_W,
  M_NUMI,
  M_RNG,
  M_COUNT
};
static const char *const model_rec_names[M_COUNT] = {
    RCTD_MODEL_REC_META,         RCTD_MODEL_REC_CONFIG,
    RCTD_MODEL_REC_TYPES,        RCTD_MODEL_REC_CLASSES,
    RCTD_MODEL_REC_GENES_REG,    RCTD_MODEL_REC_GENES_BULK,
    RCTD_MODEL_REC_PROFILES,     RCTD_MODEL_REC_PROFILES_BULK,
    RCTD_MODEL_REC_BULK_WEIGHTS, RCTD_MODEL_REC_PIXEL_NUMI,
    RCTD_MODEL_REC_RNG};

static int model_from_records(rctd_model_reader *mr, rctd_record *recs, const int *have) {
  rctd_model *m = &mr->model;
  if (!have[M_META])
    return reader_fail(mr, "not a model stream (no %s record); make one with rctd-normalize",
                       RCTD_MODEL_REC_META);
  const char *format = rctd_record_meta_get(&recs[M_META], "format");
  const char *version = rctd_record_meta_get(&recs[M_META], "version");
  if (!format || strcmp(format, RCTD_MODEL_FORMAT) != 0)
    return reader_fail(mr, "not a model stream (format '%s'); make one with rctd-normalize",
                       format ? format : "");
  int64_t v;
  if (parse_i64(version, &v) < 0 || v != RCTD_MODEL_VERSION)
    return reader_fail(mr,
                       "model format version %s, this build reads version %d; rerun "
                       "rctd-normalize with this version",
                       version ? version : "?", RCTD_MODEL_VERSION);
  for (int i = M_CONFIG; i < M_RNG; i++)
    if (!have[i]) return reader_fail(mr, "model record '%s' is missing", model_rec_names[i]);
  int64_t n_pixels;
  if (parse_i64(rctd_record_meta_get(&recs[M_META], "n_pixels"), &n_pixels) < 0)
    return reader_fail(mr, "record '%s': bad n_pixels", RCTD_MODEL_REC_META);
  const char *sum_numi = rctd_record_meta_get(&recs[M_META], "sum_numi");
  const char *conv = rctd_record_meta_get(&recs[M_META], "bulk_converged");
  const char *coords = rctd_record_meta_get(&recs[M_META], "has_coords");
  m->sum_numi = sum_numi ? strtod(sum_numi, NULL) : 0;
  m->bulk_converged = conv && strcmp(conv, "1") == 0;
  m->has_coords = coords && strcmp(coords, "1") == 0;
  m->n_pixels = n_pixels;

  rctd_record *cfg = &recs[M_CONFIG];
  if (cfg->kind != RCTD_META) return reader_fail(mr, "record '%s' is not meta", cfg->name);
  for (uint64_t i = 0; i < cfg->rows; i++)
    if (rctd_model_config_set(m, cfg->strings[2 * i], cfg->strings[2 * i + 1]) < 0)
      return reader_fail(mr, "out of memory");

  int n_classes = 0;
  if (take_strings(&recs[M_TYPES], &m->type_names, &m->n_types) < 0 ||
      take_strings(&recs[M_CLASSES], &m->class_names, &n_classes) < 0 ||
      take_strings(&recs[M_REG], &m->genes_reg, &m->n_reg) < 0 ||
      take_strings(&recs[M_BULK], &m->genes_bulk, &m->n_bulk) < 0)
    return reader_fail(mr, "a model name record is not a strings record");
  const char *dup = rctd_strlist_duplicate((const char *const *)m->type_names, (size_t)m->n_types);
  if (dup)
    return reader_fail(
        mr, "record '%s': cell type name '%s' appears twice: cell type names must be unique",
        RCTD_MODEL_REC_TYPES, dup);
  if (n_classes != m->n_types)
    return reader_fail(mr, "record '%s' has %d rows for %d types", RCTD_MODEL_REC_CLASSES,
                       n_classes, m->n_types);
  uint64_t K = (uint64_t)m->n_types;
  if (take_dense(&recs[M_PROF], RCTD_F64, (uint64_t)m->n_reg, K, (void **)&m->profiles_gk) < 0)
    return reader_fail(mr, "record '%s' is not f64 %d x %d", RCTD_MODEL_REC_PROFILES, m->n_reg,
                       m->n_types);
  if (take_dense(&recs[M_PROFB], RCTD_F64, (uint64_t)m->n_bulk, K, (void **)&m->profiles_bulk_gk) <
      0)
    return reader_fail(mr, "record '%s' is not f64 %d x %d", RCTD_MODEL_REC_PROFILES_BULK,
                       m->n_bulk, m->n_types);
  if (take_dense(&recs[M_W], RCTD_F64, K, 1, (void **)&m->bulk_weights_k) < 0)
    return reader_fail(mr, "record '%s' is not an f64 vector of %d", RCTD_MODEL_REC_BULK_WEIGHTS,
                       m->n_types);
  if (mr->spill_numi ? mr->numi_rows != (uint64_t)n_pixels
                     : take_dense(&recs[M_NUMI], RCTD_F64, (uint64_t)n_pixels, 1,
                                  (void **)&m->pixel_numi_n) < 0)
    return reader_fail(mr, "record '%s' is not an f64 vector of %" PRId64,
                       RCTD_MODEL_REC_PIXEL_NUMI, n_pixels);
  if (have[M_RNG]) {
    rctd_record *rng = &recs[M_RNG];
    if (rng->kind != RCTD_DENSE || rng->dtype != RCTD_I32 || rng->cols != 1)
      return reader_fail(mr, "record '%s' is not an i32 vector", RCTD_MODEL_REC_RNG);
    m->n_rng = (int)rng->rows;
    m->rng_state = rng->data;
    rng->data = NULL;
  }
  if (rctd_model_class_ids(m) < 0) return reader_fail(mr, "out of memory");
  char err[RCTD_ERR_LEN - 64];
  if (rctd_model_check(m, err, sizeof err) < 0) return reader_fail(mr, "%s", err);
  return 0;
}

/* The pixel nUMI record, chunk by chunk, into the anonymous temporary file opened for it. */
static int reader_spill_numi(rctd_model_reader *mr, const rctd_record_info *info) {
  if (info->kind != RCTD_DENSE || info->dtype != RCTD_F64 || info->cols != 1)
    return reader_fail(mr, "record '%s' is not an f64 vector", RCTD_MODEL_REC_PIXEL_NUMI);
  FILE *f = mr->model.pixel_numi_spill;
  rctd_chunk c;
  int got;
  while ((got = rctd_reader_chunk(mr->r, &c)) > 0) {
    if (fwrite(c.data, sizeof(double), c.rows, f) != c.rows)
      return reader_fail(mr, "cannot write the temporary file of pixel nUMI (%s)", strerror(errno));
    mr->numi_rows += c.rows;
  }
  if (got < 0) return reader_stream_fail(mr);
  if (fflush(f) != 0)
    return reader_fail(mr, "cannot write the temporary file of pixel nUMI (%s)", strerror(errno));
  return 0;
}

rctd_model_reader *rctd_model_open(const char *path, char *err, size_t err_len) {
  return rctd_model_open_as(path, NULL, err, err_len);
}

rctd_model_reader *rctd_model_open_as(const char *path, const char *label, char *err,
                                      size_t err_len) {
  return rctd_model_open_spilled(path, label, 0, NULL, err, err_len);
}

rctd_model_reader *rctd_model_open_spilled(const char *path, const char *label, int spill_numi,
                                           const char *tmp_dir, char *err, size_t err_len) {
  rctd_model_reader *mr = calloc(1, sizeof *mr);
  if (!mr) {
    rctd_fail(err, err_len, "%s: out of memory", path);
    return NULL;
  }
  mr->r =
      label ? rctd_reader_open_as(path, label, err, err_len) : rctd_reader_open(path, err, err_len);
  if (!mr->r) {
    free(mr);
    return NULL;
  }
  mr->spill_numi = spill_numi;
  mr->tmp_dir = tmp_dir;
  rctd_record recs[M_COUNT];
  int have[M_COUNT] = {0};
  memset(recs, 0, sizeof recs);
  int rc = 0;
  const rctd_record_info *info;
  for (;;) {
    int got = rctd_reader_next(mr->r, &info);
    if (got < 0) {
      rc = reader_stream_fail(mr);
      break;
    }
    if (got == 0) {
      mr->at_end = 1;
      break;
    }
    if (strncmp(info->name, "pixels.", 7) == 0) {
      mr->pending = 1;
      break;
    }
    mr->saw_results |= strncmp(info->name, "result.", 7) == 0;
    int which = -1;
    for (int i = 0; i < M_COUNT && which < 0; i++)
      if (strcmp(info->name, model_rec_names[i]) == 0) which = i;
    if (which >= 0 && have[which]) {
      rc = reader_fail(mr, "model record '%s' appears twice", info->name);
      break;
    }
    /* Where no temporary file can be made the record is held (8 bytes a pixel, as before the
     * spill existed): an unwritable TMPDIR costs memory, not the run. */
    if (which == M_NUMI && mr->spill_numi &&
        !(mr->model.pixel_numi_spill = rctd_temp_file(mr->tmp_dir, "rctd-model")))
      mr->spill_numi = 0;
    if (which == M_NUMI && mr->spill_numi) {
      have[which] = 1;
      if ((rc = reader_spill_numi(mr, info)) < 0) break;
      continue;
    }
    rctd_record rec;
    if (rctd_reader_load(mr->r, &rec) < 0) {
      rc = reader_stream_fail(mr);
      break;
    }
    if (which >= 0) {
      recs[which] = rec;
      have[which] = 1;
    } else if (rctd_model_add_extra(&mr->model, &rec) < 0) {
      rctd_record_free(&rec);
      rc = reader_fail(mr, "out of memory");
      break;
    }
  }
  if (rc == 0) rc = model_from_records(mr, recs, have);
  for (int i = 0; i < M_COUNT; i++)
    if (have[i]) rctd_record_free(&recs[i]);
  if (rc < 0) {
    rctd_fail(err, err_len, "%s", mr->err);
    rctd_model_reader_close(mr);
    return NULL;
  }
  return mr;
}

rctd_model *rctd_model_reader_model(rctd_model_reader *mr) {
  return &mr->model;
}
void rctd_model_reader_set_pass(rctd_model_reader *mr, rctd_writer *pass) {
  mr->pass = pass;
}
const char *rctd_model_reader_error(const rctd_model_reader *mr) {
  return mr->err;
}
rctd_reader *rctd_model_reader_stream(rctd_model_reader *mr) {
  return mr->r;
}

void rctd_model_reader_close(rctd_model_reader *mr) {
  if (!mr) return;
  if (mr->r) rctd_reader_close(mr->r);
  rctd_model_free(&mr->model);
  free(mr);
}

/* Positions the reader on the next record header; 1, 0 at the end, -1. */
static int block_next_header(rctd_model_reader *mr, const rctd_record_info **info) {
  if (mr->pending) {
    mr->pending = 0;
    *info = NULL;
    return 2; /* the current header is still valid; caller re-reads it */
  }
  int got = rctd_reader_next(mr->r, info);
  if (got < 0) return reader_stream_fail(mr);
  return got;
}

/* Loads the current record as part FIELD of a block and checks its shape. */
static int block_load(rctd_model_reader *mr, rctd_record *rec, const char *name, int64_t first,
                      int64_t n) {
  if (rctd_reader_load(mr->r, rec) < 0) return reader_stream_fail(mr);
  if (strcmp(rec->name, name) != 0)
    return reader_fail(mr, "pixel block at %" PRId64 ": expected record '%s', found '%s'", first,
                       name, rec->name);
  const char *f = NULL;
  for (size_t i = 0; i < rec->n_attrs; i++)
    if (strcmp(rec->attr_keys[i], "first") == 0) f = rec->attr_values[i];
  int64_t rec_first;
  if (parse_i64(f, &rec_first) < 0 || rec_first != first)
    return reader_fail(mr, "record '%s': attribute first = %s, expected %" PRId64, name,
                       f ? f : "(none)", first);
  if (n >= 0 && (int64_t)rec->rows != n)
    return reader_fail(mr, "record '%s' at pixel %" PRId64 ": %" PRIu64 " rows, expected %" PRId64,
                       name, first, rec->rows, n);
  return 0;
}

int rctd_model_next_block(rctd_model_reader *mr, rctd_pixel_block *block) {
  const rctd_model *m = &mr->model;
  rctd_pixel_block_free(block);
  if (mr->at_end) goto end;
  for (;;) {
    const rctd_record_info *info;
    int got = block_next_header(mr, &info);
    if (got < 0) return -1;
    if (got == 0) {
      mr->at_end = 1;
      goto end;
    }
    if (got == 1 && strcmp(info->name, RCTD_PIX_REC_BARCODES) != 0) {
      /* Not a block start: somebody else's record (or a stray pixel record). */
      if (strncmp(info->name, "pixels.", 7) == 0)
        return reader_fail(mr, "record '%s' outside a pixel block", info->name);
      int rc = mr->pass ? rctd_reader_copy(mr->r, mr->pass) : rctd_reader_skip(mr->r);
      if (rc < 0) {
        if (mr->pass && rctd_writer_error(mr->pass)[0])
          snprintf(mr->err, sizeof mr->err, "%s", rctd_writer_error(mr->pass));
        else
          reader_stream_fail(mr);
        return -1;
      }
      continue;
    }
    break;
  }
  int64_t first = mr->next_first;
  rctd_record *recs = block->recs_;
  if (block_load(mr, &recs[0], RCTD_PIX_REC_BARCODES, first, -1) < 0) return -1;
  if (recs[0].kind != RCTD_STRINGS)
    return reader_fail(mr, "record '%s' is not a strings record", RCTD_PIX_REC_BARCODES);
  int64_t n = (int64_t)recs[0].rows;
  if (n == 0) return reader_fail(mr, "empty pixel block at %" PRId64, first);
  if (first + n > m->n_pixels)
    return reader_fail(mr, "more pixels than the %" PRId64 " the model declares", m->n_pixels);
  const char *names[4] = {RCTD_PIX_REC_NUMI, RCTD_PIX_REC_ROW, RCTD_PIX_REC_COORDS,
                          RCTD_PIX_REC_COUNTS};
  for (int i = 0; i < 4; i++) {
    if (i == 2 && !m->has_coords) continue;
    const rctd_record_info *info;
    int got = rctd_reader_next(mr->r, &info);
    if (got < 0) return reader_stream_fail(mr);
    if (got == 0) return reader_fail(mr, "pixel block at %" PRId64 " cut short", first);
    if (block_load(mr, &recs[i + 1], names[i], first, n) < 0) return -1;
  }
  rctd_record *numi = &recs[1], *row = &recs[2], *coords = &recs[3], *counts = &recs[4];
  if (numi->kind != RCTD_DENSE || numi->dtype != RCTD_F64 || numi->cols != 1 ||
      row->kind != RCTD_DENSE || row->dtype != RCTD_I64 || row->cols != 1)
    return reader_fail(mr, "pixel block at %" PRId64 ": bad numi or row record", first);
  if (m->has_coords &&
      (coords->kind != RCTD_DENSE || coords->dtype != RCTD_F64 || coords->cols != 2))
    return reader_fail(mr, "pixel block at %" PRId64 ": bad coords record", first);
  if (counts->kind != RCTD_CSR || counts->dtype != RCTD_F64 || counts->cols != (uint64_t)m->n_reg)
    return reader_fail(mr, "pixel block at %" PRId64 ": counts are not f64 CSR over %d genes",
                       first, m->n_reg);
  block->first = first;
  block->n = n;
  block->barcodes = (const char *const *)recs[0].strings;
  block->numi_n = numi->data;
  block->row_n = row->data;
  block->coords_n2 = m->has_coords ? coords->data : NULL;
  block->indptr = counts->indptr;
  block->indices = counts->indices;
  block->values = counts->values;
  block->nnz = (int64_t)counts->nnz;
  double model_numi[512];
  for (int64_t p0 = 0; p0 < n; p0 += 512) {
    int64_t len = n - p0 < 512 ? n - p0 : 512;
    if (rctd_model_pixel_numi(m, first + p0, len, model_numi) < 0)
      return reader_fail(mr, RCTD_MODEL_NUMI_READ_FAILED);
    for (int64_t p = p0; p < p0 + len; p++)
      if (block->numi_n[p] != model_numi[p - p0])
        return reader_fail(mr, "pixel %" PRId64 ": nUMI differs from the model's", first + p);
  }
  mr->next_first = first + n;
  return 1;
end:
  if (mr->next_first == 0 && mr->saw_results)
    return reader_fail(mr,
                       "a result stream of rctd-fit-*, not a model stream with pixels: give the "
                       "stream written by rctd-normalize (or rctd-sigma)");
  if (mr->next_first != m->n_pixels)
    return reader_fail(mr, "stream ends after %" PRId64 " of %" PRId64 " pixels", mr->next_first,
                       m->n_pixels);
  return 0;
}
