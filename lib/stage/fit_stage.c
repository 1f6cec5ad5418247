/* The fitting stage: model stream in, result stream out, chunk by chunk.  See fit_stage.h. */
#include "fit_stage.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "fit_modes.h"
#include "log.h"
#include "model.h"
#include "progress.h"
#include "qtable_cache.h"
#include "sigma.h"

#define FS_DEFAULT_CHUNK 1024
#define FS_MAX_CHUNK (1 << 22)

const char *rctd_fit_mode_name(rctd_fit_mode mode) {
  switch (mode) {
    case RCTD_FIT_FULL:
      return "full";
    case RCTD_FIT_DOUBLET:
      return "doublet";
    case RCTD_FIT_MULTI:
      return "multi";
  }
  return "?";
}

void rctd_fit_stage_opts_default(rctd_fit_stage_opts *opts) {
  memset(opts, 0, sizeof *opts);
  rctd_fit_params p;
  rctd_fit_params_default(&p);
  opts->mode = RCTD_FIT_DOUBLET;
  opts->confidence_threshold = p.confidence_threshold;
  opts->doublet_threshold = p.doublet_threshold;
  opts->max_multi_types = p.max_multi_types;
  opts->shard_index = 1;
  opts->shard_count = 1;
  opts->chunk_pixels = FS_DEFAULT_CHUNK;
  opts->n_threads = 1;
}

static int fs_parse_int(const char *s, const char *end, long *out) {
  if (s == end) return -1;
  long v = 0;
  for (const char *p = s; p < end; p++) {
    if (*p < '0' || *p > '9') return -1;
    v = v * 10 + (*p - '0');
    if (v > 1000000000L) return -1;
  }
  *out = v;
  return 0;
}

int rctd_fit_parse_shard(const char *text, int *index, int *count, char *err, size_t err_len) {
  const char *slash = text ? strchr(text, '/') : NULL;
  long i, n;
  if (!slash || fs_parse_int(text, slash, &i) || fs_parse_int(slash + 1, slash + strlen(slash), &n))
    return rctd_fail(err, err_len, "shard '%s' is not of the form I/N (e.g. 2/8)",
                     text ? text : "");
  if (n < 1 || i < 1 || i > n)
    return rctd_fail(err, err_len, "shard %ld/%ld is out of range: I must be 1..N and N >= 1", i,
                     n);
  *index = (int)i;
  *count = (int)n;
  return 0;
}

void rctd_fit_shard_chunks(int64_t n_chunks, int shard_index, int shard_count, int64_t *first,
                           int64_t *end) {
  *first = n_chunks * (shard_index - 1) / shard_count;
  *end = n_chunks * shard_index / shard_count;
}

/* ------------------------------------------------------------------ sigma and the table */

/* A value of a record: a meta key, or the single element of a numeric vector. */
static int fs_record_number(const rctd_record *rec, const char *const *keys, double *v) {
  if (rec->kind == RCTD_META) {
    for (const char *const *k = keys; *k; k++) {
      const char *text = rctd_record_meta_get(rec, *k);
      if (!text) continue;
      char *end;
      errno = 0;
      double x = strtod(text, &end);
      if (end == text || *end || errno) return -1;
      *v = x;
      return 0;
    }
    return -1;
  }
  if (rec->kind == RCTD_DENSE && rec->rows * rec->cols == 1) {
    if (rec->dtype == RCTD_F64)
      *v = *(const double *)rec->data;
    else if (rec->dtype == RCTD_I32)
      *v = *(const int32_t *)rec->data;
    else if (rec->dtype == RCTD_I64)
      *v = (double)*(const int64_t *)rec->data;
    else
      return -1;
    return 0;
  }
  return -1;
}

/* Sigma of the model stream as a grid value: a sigma record (rctd-sigma), the table's meta,
 * or the configuration key sigma_c.  0 when the stream has none, -1 when it is malformed. */
static int fs_stream_sigma(const rctd_model *m, const char *label, int *sigma_value, char *err,
                           size_t err_len) {
  static const char *const rec_names[] = {"sigma", "model.sigma", "sigma.meta", NULL};
  static const char *const keys[] = {"sigma_c", "sigma", NULL};
  for (const char *const *name = rec_names; *name; name++) {
    const rctd_record *rec = rctd_model_extra(m, *name);
    if (!rec) continue;
    double v;
    if (fs_record_number(rec, keys, &v) < 0 || (*sigma_value = rctd_sigma_value_of(v)) < 0)
      return rctd_fail(err, err_len, "%s: record '%s' does not hold a sigma on the grid", label,
                       *name);
    return 1;
  }
  const rctd_record *qmeta = rctd_model_extra(m, RCTD_QTABLE_REC_META);
  static const char *const qkeys[] = {"sigma", NULL};
  double v;
  if (qmeta && fs_record_number(qmeta, qkeys, &v) == 0 &&
      (*sigma_value = rctd_sigma_value_of(v)) > 0)
    return 1;
  if (rctd_model_config_double(m, "sigma_c", &v) == 0) {
    if ((*sigma_value = rctd_sigma_value_of(v)) < 0)
      return rctd_fail(err, err_len, "%s: configuration sigma_c = %g is not on the sigma grid",
                       label, v);
    return 1;
  }
  return 0;
}

typedef struct {
  int sigma_value;
  double x_vals[RCTD_N_X];
  rctd_qtable table; /* the view the fits use */
  rctd_qtable_owned owned;
  int have_owned;
  const char *cache_dir;
  int n_threads;
  rctd_backend *backend;
  double *coef; /* spline coefficients of the table, attached for the CPU kernels */
  int attached;
} fs_table;

/* Replaces the table's spline coefficients (after the table changed).  Without them the fits
 * give the same numbers, only slower, so a failure here is not an error. */
static void fs_table_coef(fs_table *t) {
  if (t->attached) rctd_spline_coef_detach(&t->table);
  t->attached = 0;
  free(t->coef);
  t->coef = malloc(rctd_spline_coef_doubles(t->table.n_k) * sizeof *t->coef);
  if (!t->coef) return;
  rctd_spline_coef_build(&t->table, t->coef);
  t->attached = rctd_spline_coef_attach(&t->table, t->coef) == 0;
}

/* The likelihood table records of the stream, when they are for sigma_value: 1 used, 0 none
 * (or another sigma's), -1 a table that fails its checks (message in err). */
static int fs_table_from_stream(fs_table *t, const rctd_model *m, const char *label, char *err,
                                size_t err_len) {
  const rctd_record *meta = rctd_model_extra(m, RCTD_QTABLE_REC_META);
  const rctd_record *x = rctd_model_extra(m, RCTD_QTABLE_REC_X);
  const rctd_record *q = rctd_model_extra(m, RCTD_QTABLE_REC_Q);
  const rctd_record *sq = rctd_model_extra(m, RCTD_QTABLE_REC_SQ);
  static const char *const keys[] = {"sigma", NULL};
  double v;
  if (!meta || !x || !q || !sq || fs_record_number(meta, keys, &v) < 0 ||
      rctd_sigma_value_of(v) != t->sigma_value)
    return 0;
  if (x->kind != RCTD_DENSE || x->dtype != RCTD_F64 || x->rows * x->cols != RCTD_N_X ||
      memcmp(x->data, t->x_vals, sizeof t->x_vals) != 0)
    return 0;
  if (q->kind != RCTD_DENSE || sq->kind != RCTD_DENSE || q->dtype != RCTD_F64 ||
      sq->dtype != RCTD_F64 || q->cols != RCTD_N_X || sq->cols != RCTD_N_X || q->rows != sq->rows ||
      q->rows < 1 || q->rows > RCTD_N_K_FULL)
    return 0;
  if (rctd_qtable_check_loaded(meta, q, sq, t->sigma_value, label, err, err_len) != 0) return -1;
  t->table = (rctd_qtable){(int)q->rows, t->x_vals, q->data, sq->data};
  fs_table_coef(t);
  return 1;
}

/* Makes sure the table has rows up to n_k - 1 (from the cache, or computed). */
static int fs_table_ensure(fs_table *t, int n_k, char *err, size_t err_len) {
  if (t->table.q_kx && t->table.n_k >= n_k) return 0;
  /* Grow geometrically: rows are deterministic, so when they are added does not matter. */
  int want = t->table.n_k * 2 > n_k ? t->table.n_k * 2 : n_k;
  if (want < 64) want = 64;
  if (want > RCTD_N_K_FULL) want = RCTD_N_K_FULL;
  rctd_qtable_opts qo = {
      .cache_dir = t->cache_dir, .n_threads = t->n_threads, .backend = t->backend};
  rctd_qtable_owned fresh;
  memset(&fresh, 0, sizeof fresh);
  char note[512] = "", msg[RCTD_ERR_LEN] = "";
  if (rctd_qtable_get(t->sigma_value, want, &qo, &fresh, note, sizeof note, msg, sizeof msg) != 0)
    return rctd_fail(err, err_len, "likelihood table: %s", msg);
  if (note[0]) rctd_log_info("%s", note);
  if (t->attached) rctd_spline_coef_detach(&t->table);
  t->attached = 0;
  if (t->have_owned) rctd_qtable_owned_free(&t->owned);
  t->owned = fresh;
  t->have_owned = 1;
  t->table = (rctd_qtable){fresh.table.n_k, t->x_vals, fresh.q_kx, fresh.sq_kx};
  fs_table_coef(t);
  return 0;
}

static void fs_table_free(fs_table *t) {
  if (t->attached) rctd_spline_coef_detach(&t->table);
  free(t->coef);
  if (t->have_owned) rctd_qtable_owned_free(&t->owned);
}

/* ------------------------------------------------------------------ fingerprint */

typedef struct {
  uint64_t h;
} fs_hash;

static void fs_hash_bytes(fs_hash *h, const void *data, size_t n) {
  const unsigned char *p = data;
  for (size_t i = 0; i < n; i++) {
    h->h ^= p[i];
    h->h *= 0x100000001b3ULL;
  }
}

static void fs_hash_str(fs_hash *h, const char *s) {
  fs_hash_bytes(h, s, strlen(s) + 1);
}

static void fs_hash_i64(fs_hash *h, int64_t v) {
  fs_hash_bytes(h, &v, sizeof v);
}

static int fs_hash_numi_block(void *h, int64_t first, const double *numi, int64_t n) {
  (void)first;
  fs_hash_bytes(h, numi, (size_t)n * sizeof *numi);
  return 0;
}

/* FNV-1a over what makes results of one run: the model, the sigma and the settings, into *OUT.
 * 0, or -1 when the model's pixel nUMI cannot be read back from their temporary file. */
static int fs_fingerprint(const rctd_model *m, const rctd_fit_stage_opts *o, int sigma_value,
                          int64_t n_chunks, uint64_t *out) {
  fs_hash h = {0xcbf29ce484222325ULL};
  fs_hash_str(&h, RCTD_RESULT_FORMAT);
  fs_hash_i64(&h, RCTD_RESULT_VERSION);
  fs_hash_str(&h, rctd_fit_mode_name(o->mode));
  fs_hash_i64(&h, sigma_value);
  fs_hash_bytes(&h, &o->confidence_threshold, sizeof(double));
  fs_hash_bytes(&h, &o->doublet_threshold, sizeof(double));
  fs_hash_i64(&h, o->max_multi_types);
  fs_hash_i64(&h, o->chunk_pixels);
  fs_hash_i64(&h, n_chunks);
  fs_hash_i64(&h, m->n_types);
  for (int k = 0; k < m->n_types; k++) {
    fs_hash_str(&h, m->type_names[k]);
    fs_hash_str(&h, m->class_names[k]);
  }
  fs_hash_i64(&h, m->n_reg);
  for (int g = 0; g < m->n_reg; g++) fs_hash_str(&h, m->genes_reg[g]);
  fs_hash_bytes(&h, m->profiles_gk, (size_t)m->n_reg * m->n_types * sizeof(double));
  fs_hash_i64(&h, m->n_pixels);
  /* the same bytes in order, from memory or the model's spill file */
  if (rctd_model_numi_blocks(m, fs_hash_numi_block, &h) < 0) return -1;
  for (size_t i = 0; i < m->n_config; i++) {
    fs_hash_str(&h, m->config_keys[i]);
    fs_hash_str(&h, m->config_values[i]);
  }
  *out = h.h;
  return 0;
}

/* ------------------------------------------------------------------ a chunk of pixels */

typedef struct {
  int cap, n, n_genes, n_types, m_slots;
  int64_t first;         /* model index of the chunk's first pixel */
  double *y_ng, *numi_n; /* dense counts, nUMI */
  int64_t *pixel_n, *row_n;
  char **barcode_n;
  /* results */
  double *weights_nk;
  int32_t *conv_n;
  rctd_doublet_result *dbl_n;
  rctd_multi_result *mul_n;
  /* output columns */
  uint8_t *u8_n;
  int32_t *i32_n;
  double *f64_n;
  int32_t *i32_nm;
  uint8_t *u8_nm;
  double *f64_nm;
} fs_chunk;

static void fs_chunk_free(fs_chunk *c) {
  for (int i = 0; c->barcode_n && i < c->n; i++) free(c->barcode_n[i]);
  free(c->barcode_n);
  free(c->y_ng);
  free(c->numi_n);
  free(c->pixel_n);
  free(c->row_n);
  free(c->weights_nk);
  free(c->conv_n);
  free(c->dbl_n);
  free(c->mul_n);
  free(c->u8_n);
  free(c->i32_n);
  free(c->f64_n);
  free(c->i32_nm);
  free(c->u8_nm);
  free(c->f64_nm);
  memset(c, 0, sizeof *c);
}

static int fs_chunk_alloc(fs_chunk *c, int cap, int n_genes, int n_types, int m_slots) {
  memset(c, 0, sizeof *c);
  c->cap = cap;
  c->n_genes = n_genes;
  c->n_types = n_types;
  c->m_slots = m_slots;
  size_t n = (size_t)cap;
  c->y_ng = malloc(n * n_genes * sizeof *c->y_ng);
  c->numi_n = malloc(n * sizeof *c->numi_n);
  c->pixel_n = malloc(n * sizeof *c->pixel_n);
  c->row_n = malloc(n * sizeof *c->row_n);
  c->barcode_n = calloc(n, sizeof *c->barcode_n);
  c->weights_nk = malloc(n * n_types * sizeof *c->weights_nk);
  c->conv_n = malloc(n * sizeof *c->conv_n);
  c->dbl_n = malloc(n * sizeof *c->dbl_n);
  c->mul_n = malloc(n * sizeof *c->mul_n);
  c->u8_n = malloc(n * sizeof *c->u8_n);
  c->i32_n = malloc(n * sizeof *c->i32_n);
  c->f64_n = malloc(n * 2 * sizeof *c->f64_n);
  c->i32_nm = malloc(n * m_slots * sizeof *c->i32_nm);
  c->u8_nm = malloc(n * m_slots * sizeof *c->u8_nm);
  c->f64_nm = malloc(n * m_slots * sizeof *c->f64_nm);
  if (!c->y_ng || !c->numi_n || !c->pixel_n || !c->row_n || !c->barcode_n || !c->weights_nk ||
      !c->conv_n || !c->dbl_n || !c->mul_n || !c->u8_n || !c->i32_n || !c->f64_n || !c->i32_nm ||
      !c->u8_nm || !c->f64_nm) {
    fs_chunk_free(c);
    return -1;
  }
  return 0;
}

static void fs_chunk_reset(fs_chunk *c, int64_t first) {
  for (int i = 0; i < c->n; i++) {
    free(c->barcode_n[i]);
    c->barcode_n[i] = NULL;
  }
  c->n = 0;
  c->first = first;
}

/* ------------------------------------------------------------------ the stage */

typedef struct {
  const rctd_fit_stage_opts *o;
  const char *in_label, *out_path;
  rctd_model_reader *mr;
  rctd_model *model;
  rctd_fit_params params;
  fs_table table;
  rctd_backend *backend, *own_backend;
  int64_t n_chunks, chunk_first, chunk_end, pix_first, pix_end;
  uint64_t fingerprint;
  fs_chunk chunk;
  rctd_writer *w;
  rctd_progress *progress;
  int64_t chunks_written, pixels_written;
  char *err;
  size_t err_len;
} fs_run;

static int fs_write_fail(fs_run *r) {
  return rctd_fail(r->err, r->err_len, "%s", rctd_writer_error(r->w));
}

/* One record of a chunk's block. */
static int fs_put(fs_run *r, const char *name, rctd_kind kind, rctd_dtype dtype, uint64_t cols,
                  const void *data, const char *col_names) {
  const fs_chunk *c = &r->chunk;
  char first[32], chunk[32];
  snprintf(first, sizeof first, "%" PRId64, c->first);
  snprintf(chunk, sizeof chunk, "%" PRId64, c->first / r->o->chunk_pixels);
  const char *keys[] = {"first", "chunk"};
  const char *values[] = {first, chunk};
  rctd_record_spec spec = {.name = name,
                           .kind = kind,
                           .dtype = dtype,
                           .ndim = cols == 1 ? 1 : 2,
                           .cols = cols,
                           .rows = (uint64_t)c->n,
                           .chunk_rows = (uint64_t)r->o->chunk_pixels,
                           .col_names = col_names,
                           .n_attrs = 2,
                           .attr_keys = keys,
                           .attr_values = values};
  if (rctd_write_begin(r->w, &spec) < 0) return fs_write_fail(r);
  int rc = kind == RCTD_STRINGS
               ? rctd_write_strings(r->w, (const char *const *)data, (uint64_t)c->n)
               : rctd_write_rows(r->w, data, (uint64_t)c->n);
  if (rc < 0 || rctd_write_end(r->w) < 0) return fs_write_fail(r);
  return 0;
}

/* Field COL of the chunk's result structs into a typed column, then its record (statement). */
#define FS_PUT_COL(dst, dtype, name, src, col)                 \
  for (int i_ = 0; i_ < c->n; i_++) (dst)[i_] = (src)[i_].col; \
  if (fs_put(r, name, RCTD_DENSE, dtype, 1, dst, NULL)) return -1
#define FS_PUT_U8(name, src, col) FS_PUT_COL(c->u8_n, RCTD_U8, name, src, col)
#define FS_PUT_I32(name, src, col) FS_PUT_COL(c->i32_n, RCTD_I32, name, src, col)
#define FS_PUT_F64(name, src, col) FS_PUT_COL(c->f64_n, RCTD_F64, name, src, col)

static int fs_write_doublet(fs_run *r) {
  fs_chunk *c = &r->chunk;
  const rctd_doublet_result *d = c->dbl_n;
  for (int i = 0; i < c->n; i++) {
    c->f64_n[2 * i] = d[i].doublet_weights[0];
    c->f64_n[2 * i + 1] = d[i].doublet_weights[1];
  }
  if (fs_put(r, RCTD_RES_REC_WEIGHTS_DOUBLET, RCTD_DENSE, RCTD_F64, 2, c->f64_n, NULL)) return -1;
  FS_PUT_U8(RCTD_RES_REC_SPOT_CLASS, d, spot_class);
  FS_PUT_I32(RCTD_RES_REC_FIRST_TYPE, d, first_type);
  FS_PUT_I32(RCTD_RES_REC_SECOND_TYPE, d, second_type);
  FS_PUT_U8(RCTD_RES_REC_FIRST_CLASS, d, first_class);
  FS_PUT_U8(RCTD_RES_REC_SECOND_CLASS, d, second_class);
  FS_PUT_F64(RCTD_RES_REC_MIN_SCORE, d, min_score);
  FS_PUT_F64(RCTD_RES_REC_SINGLET_SCORE, d, singlet_score);
  FS_PUT_U8(RCTD_RES_REC_CONV_ALL, d, conv_all);
  FS_PUT_U8(RCTD_RES_REC_CONV_DOUBLET, d, conv_doublet);
  FS_PUT_I32(RCTD_RES_REC_N_CANDIDATES, d, n_candidates);
  return 0;
}

static int fs_write_multi(fs_run *r) {
  fs_chunk *c = &r->chunk;
  const rctd_multi_result *m = c->mul_n;
  const int M = c->m_slots;
  for (int i = 0; i < c->n; i++) {
    for (int t = 0; t < M; t++) {
      int used = t < m[i].n_types;
      c->i32_nm[(size_t)i * M + t] = used ? m[i].types[t] : -1;
      c->u8_nm[(size_t)i * M + t] = used ? (uint8_t)m[i].conf[t] : 0;
      c->f64_nm[(size_t)i * M + t] = used ? m[i].sub_weights[t] : 0;
    }
  }
  FS_PUT_U8(RCTD_RES_REC_MULTI_STATUS, m, status);
  FS_PUT_I32(RCTD_RES_REC_N_TYPES, m, n_types);
  if (fs_put(r, RCTD_RES_REC_TYPES, RCTD_DENSE, RCTD_I32, (uint64_t)M, c->i32_nm, NULL) ||
      fs_put(r, RCTD_RES_REC_CONF, RCTD_DENSE, RCTD_U8, (uint64_t)M, c->u8_nm, NULL) ||
      fs_put(r, RCTD_RES_REC_SUB_WEIGHTS, RCTD_DENSE, RCTD_F64, (uint64_t)M, c->f64_nm, NULL))
    return -1;
  FS_PUT_F64(RCTD_RES_REC_MIN_SCORE, m, min_score);
  FS_PUT_U8(RCTD_RES_REC_CONV_ALL, m, conv_all);
  FS_PUT_U8(RCTD_RES_REC_CONV_SUB, m, conv_sub);
  return 0;
}

static int fs_write_chunk(fs_run *r) {
  fs_chunk *c = &r->chunk;
  if (fs_put(r, RCTD_RES_REC_PIXEL, RCTD_DENSE, RCTD_I64, 1, c->pixel_n, NULL) ||
      fs_put(r, RCTD_RES_REC_BARCODE, RCTD_STRINGS, RCTD_U8, 1, c->barcode_n, NULL) ||
      fs_put(r, RCTD_RES_REC_ROW, RCTD_DENSE, RCTD_I64, 1, c->row_n, NULL) ||
      fs_put(r, RCTD_RES_REC_NUMI, RCTD_DENSE, RCTD_F64, 1, c->numi_n, NULL) ||
      fs_put(r, RCTD_RES_REC_WEIGHTS, RCTD_DENSE, RCTD_F64, (uint64_t)c->n_types, c->weights_nk,
             RCTD_MODEL_REC_TYPES))
    return -1;
  switch (r->o->mode) {
    case RCTD_FIT_FULL:
      for (int i = 0; i < c->n; i++) c->u8_n[i] = (uint8_t)c->conv_n[i];
      return fs_put(r, RCTD_RES_REC_CONV, RCTD_DENSE, RCTD_U8, 1, c->u8_n, NULL);
    case RCTD_FIT_DOUBLET:
      return fs_write_doublet(r);
    case RCTD_FIT_MULTI:
      return fs_write_multi(r);
  }
  return -1;
}

/* result.meta, the model records (without table records) and provenance. */
static int fs_write_header(fs_run *r) {
  const rctd_fit_stage_opts *o = r->o;
  char s[16][48];
  snprintf(s[0], sizeof s[0], "%d", RCTD_RESULT_VERSION);
  snprintf(s[1], sizeof s[1], "%.2f", r->table.sigma_value / 100.0);
  snprintf(s[2], sizeof s[2], "%d", r->table.sigma_value);
  snprintf(s[3], sizeof s[3], "%d", r->model->n_types);
  snprintf(s[4], sizeof s[4], "%" PRId64, r->model->n_pixels);
  snprintf(s[5], sizeof s[5], "%d", o->chunk_pixels);
  snprintf(s[6], sizeof s[6], "%" PRId64, r->n_chunks);
  snprintf(s[7], sizeof s[7], "%d/%d", o->shard_index, o->shard_count);
  snprintf(s[8], sizeof s[8], "%d", o->shard_index);
  snprintf(s[9], sizeof s[9], "%d", o->shard_count);
  snprintf(s[10], sizeof s[10], "%" PRId64, r->chunk_first);
  snprintf(s[11], sizeof s[11], "%" PRId64, r->chunk_end);
  snprintf(s[12], sizeof s[12], "%" PRId64, r->pix_first);
  snprintf(s[13], sizeof s[13], "%" PRId64, r->pix_end);
  snprintf(s[14], sizeof s[14], "%016" PRIx64, r->fingerprint);
  snprintf(s[15], sizeof s[15], "%d", o->mode == RCTD_FIT_MULTI ? o->max_multi_types : 0);
  const char *keys[] = {"format",      "version",     "mode",         "sigma",     "sigma_value",
                        "n_types",     "n_pixels",    "chunk_pixels", "n_chunks",  "shard",
                        "shard_index", "shard_count", "first_chunk",  "end_chunk", "first_pixel",
                        "end_pixel",   "fingerprint", "multi_slots"};
  const char *values[] = {RCTD_RESULT_FORMAT,
                          s[0],
                          rctd_fit_mode_name(o->mode),
                          s[1],
                          s[2],
                          s[3],
                          s[4],
                          s[5],
                          s[6],
                          s[7],
                          s[8],
                          s[9],
                          s[10],
                          s[11],
                          s[12],
                          s[13],
                          s[14],
                          s[15]};
  if (rctd_write_meta(r->w, RCTD_RES_REC_META, keys, values, sizeof keys / sizeof *keys) < 0)
    return fs_write_fail(r);
  /* The model without the likelihood table (large, and rebuilt from sigma on demand). */
  rctd_model copy = *r->model;
  rctd_record *kept = malloc((r->model->n_extra + 1) * sizeof *kept);
  if (!kept) return rctd_fail(r->err, r->err_len, "out of memory");
  copy.n_extra = 0;
  for (size_t i = 0; i < r->model->n_extra; i++)
    if (strncmp(r->model->extra[i].name, "qtable.", 7) != 0)
      kept[copy.n_extra++] = r->model->extra[i];
  copy.extra = kept;
  int rc = rctd_model_write(r->w, &copy);
  free(kept);
  if (rc < 0) return fs_write_fail(r);
  if (o->provenance && o->provenance->write(o->provenance, r->w) < 0) return fs_write_fail(r);
  return 0;
}

static int fs_open_output(fs_run *r) {
  if (r->w) return 0;
  rctd_writer_opts wo = r->o->writer;
  wo.chunk_rows = (uint64_t)r->o->chunk_pixels;
  r->w = rctd_writer_open(r->out_path, &wo, r->err, r->err_len);
  if (!r->w) return -1;
  return fs_write_header(r);
}

static int fs_fit_chunk(fs_run *r) {
  fs_chunk *c = &r->chunk;
  if (c->n == 0) return 0;
  double max_y = 0;
  size_t n_vals = (size_t)c->n * c->n_genes;
  for (size_t i = 0; i < n_vals; i++)
    if (c->y_ng[i] > max_y) max_y = c->y_ng[i];
  int n_k = (int)fmin(max_y, RCTD_K_VAL) + 1;
  if (fs_table_ensure(&r->table, n_k, r->err, r->err_len) < 0) return -1;
  r->params.table = &r->table.table;
  rctd_pixel_chunk pc = {c->n, c->y_ng, c->numi_n};
  char msg[RCTD_ERR_LEN] = "";
  int rc = -1;
  switch (r->o->mode) {
    case RCTD_FIT_FULL:
      rc = rctd_fit_full(&r->params, &pc, c->weights_nk, c->conv_n, msg, sizeof msg);
      break;
    case RCTD_FIT_DOUBLET:
      rc = rctd_fit_doublet(&r->params, &pc, c->dbl_n, c->weights_nk, msg, sizeof msg);
      break;
    case RCTD_FIT_MULTI:
      rc = rctd_fit_multi(&r->params, &pc, c->mul_n, c->weights_nk, msg, sizeof msg);
      break;
  }
  if (rc < 0)
    return rctd_fail(r->err, r->err_len, "%s: pixels %" PRId64 "..%" PRId64 ": %s", r->in_label,
                     c->first, c->first + c->n - 1, msg);
  if (fs_open_output(r) < 0 || fs_write_chunk(r) < 0) return -1;
  r->chunks_written++;
  r->pixels_written += c->n;
  rctd_progress_add(r->progress, (uint64_t)c->n);
  fs_chunk_reset(c, c->first + c->n);
  return 0;
}

/* Adds pixel p of the block to the chunk, checking its counts. */
static int fs_take_pixel(fs_run *r, const rctd_pixel_block *b, int64_t p) {
  fs_chunk *c = &r->chunk;
  const int G = c->n_genes;
  const int64_t index = b->first + p;
  const double numi = b->numi_n[p];
  if (!isfinite(numi) || numi <= 0)
    return rctd_fail(r->err, r->err_len,
                     "%s: pixel '%s' (%" PRId64
                     ") has nUMI %g; it must be a "
                     "positive number (check the spatial input)",
                     r->in_label, b->barcodes[p], index, numi);
  double *y = c->y_ng + (size_t)c->n * G;
  memset(y, 0, (size_t)G * sizeof *y);
  for (int64_t i = b->indptr[p]; i < b->indptr[p + 1]; i++) {
    const double v = b->values[i];
    const int32_t g = b->indices[i];
    if (g < 0 || g >= G)
      return rctd_fail(r->err, r->err_len,
                       "%s: pixel '%s': gene index %d is outside the model's %d "
                       "genes",
                       r->in_label, b->barcodes[p], g, G);
    if (!isfinite(v) || v < 0)
      return rctd_fail(r->err, r->err_len,
                       "%s: pixel '%s': count of gene '%s' is %g; counts must "
                       "be finite and >= 0 (check the spatial input)",
                       r->in_label, b->barcodes[p], r->model->genes_reg[g], v);
    y[g] += v;
  }
  c->barcode_n[c->n] = strdup(b->barcodes[p]);
  if (!c->barcode_n[c->n]) return rctd_fail(r->err, r->err_len, "out of memory");
  c->numi_n[c->n] = numi;
  c->pixel_n[c->n] = index;
  c->row_n[c->n] = b->row_n ? b->row_n[p] : index;
  c->n++;
  return 0;
}

/* Reads every pixel block, fits this shard's chunks. */
static int fs_stream_pixels(fs_run *r) {
  rctd_pixel_block block;
  rctd_pixel_block_init(&block);
  fs_chunk_reset(&r->chunk, r->pix_first);
  const int64_t C = r->o->chunk_pixels;
  int got, rc = 0;
  while (rc == 0 && (got = rctd_model_next_block(r->mr, &block)) > 0) {
    for (int64_t p = 0; p < block.n && rc == 0; p++) {
      const int64_t index = block.first + p;
      if (index < r->pix_first || index >= r->pix_end) continue;
      rc = fs_take_pixel(r, &block, p);
      if (rc == 0 && (r->chunk.n == C || index + 1 == r->pix_end)) rc = fs_fit_chunk(r);
    }
  }
  if (rc == 0 && got < 0) rc = rctd_fail(r->err, r->err_len, "%s", rctd_model_reader_error(r->mr));
  rctd_pixel_block_free(&block);
  if (rc == 0 && r->pixels_written != r->pix_end - r->pix_first)
    rc = rctd_fail(r->err, r->err_len, "%s: the stream ended before pixel %" PRId64, r->in_label,
                   r->pix_first + r->pixels_written);
  return rc;
}

static int fs_write_summary(fs_run *r) {
  char chunks[32], pixels[32];
  snprintf(chunks, sizeof chunks, "%" PRId64, r->chunks_written);
  snprintf(pixels, sizeof pixels, "%" PRId64, r->pixels_written);
  const char *keys[] = {"chunks", "pixels"};
  const char *values[] = {chunks, pixels};
  if (rctd_write_meta(r->w, RCTD_RES_REC_SUMMARY, keys, values, 2) < 0) return fs_write_fail(r);
  return 0;
}

/* Settings into the effective configuration carried by the result's model records. */
static int fs_record_config(fs_run *r) {
  char text[64];
  int rc = 0;
  snprintf(text, sizeof text, "%.2f", r->table.sigma_value / 100.0);
  rc |= rctd_model_config_set(r->model, "sigma_c", text);
  rc |= rctd_model_config_set(r->model, "doublet_mode", rctd_fit_mode_name(r->o->mode));
  snprintf(text, sizeof text, "%.17g", r->o->confidence_threshold);
  rc |= rctd_model_config_set(r->model, "CONFIDENCE_THRESHOLD", text);
  snprintf(text, sizeof text, "%.17g", r->o->doublet_threshold);
  rc |= rctd_model_config_set(r->model, "DOUBLET_THRESHOLD", text);
  snprintf(text, sizeof text, "%d", r->o->max_multi_types);
  rc |= rctd_model_config_set(r->model, "MAX_MULTI_TYPES", text);
  snprintf(text, sizeof text, "%.17g", r->params.min_change);
  rc |= rctd_model_config_set(r->model, "MIN_CHANGE_REG", text);
  return rc ? rctd_fail(r->err, r->err_len, "out of memory") : 0;
}

static int fs_check_opts(const rctd_fit_stage_opts *o, char *err, size_t err_len) {
  if (o->mode != RCTD_FIT_FULL && o->mode != RCTD_FIT_DOUBLET && o->mode != RCTD_FIT_MULTI)
    return rctd_fail(err, err_len, "unknown fit mode %d", (int)o->mode);
  if (o->shard_count < 1 || o->shard_index < 1 || o->shard_index > o->shard_count)
    return rctd_fail(err, err_len, "shard %d/%d is out of range: I must be 1..N", o->shard_index,
                     o->shard_count);
  if (o->chunk_pixels < 1 || o->chunk_pixels > FS_MAX_CHUNK)
    return rctd_fail(err, err_len, "chunk size %d is out of range (1..%d pixels)", o->chunk_pixels,
                     FS_MAX_CHUNK);
  if (!isfinite(o->confidence_threshold) || !isfinite(o->doublet_threshold))
    return rctd_fail(err, err_len, "thresholds must be finite numbers");
  if (o->mode == RCTD_FIT_MULTI &&
      (o->max_multi_types < 1 || o->max_multi_types > RCTD_MULTI_TYPES_CAP))
    return rctd_fail(err, err_len, "MAX_MULTI_TYPES must be 1..%d, got %d", RCTD_MULTI_TYPES_CAP,
                     o->max_multi_types);
  if (o->sigma != 0 && rctd_sigma_value_of(o->sigma) < 0)
    return rctd_fail(err, err_len,
                     "sigma %g is not on the grid (0.10..0.70 by 0.01, 0.72..2.00 by 0.02)",
                     o->sigma);
  return 0;
}

/* Opens the model, resolves sigma, the table, the shard's range and the fit parameters. */
static int fs_setup(fs_run *r, const char *in_path) {
  const rctd_fit_stage_opts *o = r->o;
  r->mr = rctd_model_open_spilled(in_path, NULL, 1, NULL, r->err, r->err_len);
  if (!r->mr) return -1;
  r->model = rctd_model_reader_model(r->mr);
  rctd_model *m = r->model;
  if (o->mode == RCTD_FIT_DOUBLET && m->n_types < 2)
    return rctd_fail(r->err, r->err_len, "%s: doublet mode needs at least 2 cell types",
                     r->in_label);
  rctd_x_grid(r->table.x_vals);
  r->table.cache_dir = o->cache_dir;
  r->table.n_threads = o->n_threads;
  if (o->sigma != 0) {
    r->table.sigma_value = rctd_sigma_value_of(o->sigma);
  } else {
    int found = fs_stream_sigma(m, r->in_label, &r->table.sigma_value, r->err, r->err_len);
    if (found < 0) return -1;
    if (found == 0)
      return rctd_fail(
          r->err, r->err_len,
          "%s: the model stream has no sigma; run it through rctd-sigma first, or give "
          "--sigma (e.g. --sigma 0.84)",
          r->in_label);
  }
  if (fs_table_from_stream(&r->table, m, r->in_label, r->err, r->err_len) < 0) return -1;

  r->backend = o->backend;
  if (!r->backend) {
    r->own_backend = rctd_backend_cpu(o->n_threads);
    if (!r->own_backend) return rctd_fail(r->err, r->err_len, "out of memory");
    r->backend = r->own_backend;
  }
  r->table.backend = NULL; /* tables come from the cache or the CPU kernel */
  rctd_fit_params_default(&r->params);
  r->params.n_genes = m->n_reg;
  r->params.n_types = m->n_types;
  r->params.profiles_gk = m->profiles_gk;
  r->params.backend = r->backend;
  r->params.class_k = m->class_k;
  r->params.confidence_threshold = o->confidence_threshold;
  r->params.doublet_threshold = o->doublet_threshold;
  r->params.max_multi_types = o->max_multi_types;

  const int64_t C = o->chunk_pixels;
  r->n_chunks = (m->n_pixels + C - 1) / C;
  rctd_fit_shard_chunks(r->n_chunks, o->shard_index, o->shard_count, &r->chunk_first,
                        &r->chunk_end);
  r->pix_first = r->chunk_first * C;
  r->pix_end = r->chunk_end * C < m->n_pixels ? r->chunk_end * C : m->n_pixels;
  if (fs_record_config(r) < 0) return -1;
  if (fs_fingerprint(m, o, r->table.sigma_value, r->n_chunks, &r->fingerprint) < 0)
    return rctd_fail(r->err, r->err_len, "%s: " RCTD_MODEL_NUMI_READ_FAILED, in_path);
  int64_t cap = r->pix_end - r->pix_first < C ? r->pix_end - r->pix_first : C;
  if (fs_chunk_alloc(&r->chunk, cap > 0 ? (int)cap : 1, m->n_reg, m->n_types,
                     o->max_multi_types > 0 ? o->max_multi_types : 1) < 0)
    return rctd_fail(r->err, r->err_len, "out of memory for a chunk of %" PRId64 " pixels", C);
  return 0;
}

int rctd_fit_stage_run(const char *in_path, const char *out_path, const rctd_fit_stage_opts *opts,
                       char *err, size_t err_len) {
  if (fs_check_opts(opts, err, err_len) < 0) return -1;
  fs_run r;
  memset(&r, 0, sizeof r);
  r.o = opts;
  r.in_label = strcmp(in_path, "-") == 0 ? "stdin" : in_path;
  r.out_path = out_path;
  r.err = err;
  r.err_len = err_len;
  int rc = fs_setup(&r, in_path);
  if (rc == 0 && opts->progress)
    r.progress = rctd_progress_start(rctd_fit_mode_name(opts->mode),
                                     (uint64_t)(r.pix_end - r.pix_first), "pixels");
  if (rc == 0) rc = fs_stream_pixels(&r);
  if (rc == 0) rc = fs_open_output(&r); /* a shard without pixels still says so */
  if (rc == 0) rc = fs_write_summary(&r);
  rctd_progress_finish(r.progress);
  if (rc == 0) {
    rctd_writer *w = r.w;
    r.w = NULL;
    rc = rctd_writer_close(w, err, err_len);
  }
  if (r.w) rctd_writer_abort(r.w);
  fs_chunk_free(&r.chunk);
  fs_table_free(&r.table);
  if (r.own_backend) r.own_backend->destroy(r.own_backend);
  if (r.mr) rctd_model_reader_close(r.mr);
  return rc;
}
