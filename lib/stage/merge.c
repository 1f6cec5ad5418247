/* rctd-merge: result streams -> h5ad / CSV / JSON (see merge.h). */
#define _GNU_SOURCE
#include "merge.h"

#include <errno.h>
#include <hdf5.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atomic_out.h"
#include "error.h"
#include "fit_stage.h"
#include "h5guard.h"
#include "input.h"
#include "json.h"
#include "log.h"
#include "model.h"
#include "output.h"
#include "progress.h"
#include "sigma.h"
#include "stream.h"
#include "strlist.h"

/* ------------------------------------------------------------------ inputs */

typedef struct {
  const char *path;
  rctd_reader *reader; /* kept open for standard input; files are reopened in chunk order */
  char fingerprint[64], mode[16];
  double sigma;
  int64_t n_pixels, n_chunks, chunk_pixels, first_chunk, end_chunk, first_pixel, end_pixel;
  int shard_index, shard_count, n_types, multi_slots;
} mg_input;

static int mg_meta_i64(const rctd_record *rec, const char *key, int64_t *v) {
  const char *s = rctd_record_meta_get(rec, key);
  char *end = NULL;
  if (!s) return -1;
  errno = 0;
  long long x = strtoll(s, &end, 10);
  if (end == s || *end || errno) return -1;
  *v = x;
  return 0;
}

/* Reads result.meta, the first record of a result stream. */
static int mg_read_meta(mg_input *in, char *err, size_t err_len) {
  const rctd_record_info *info = NULL;
  int got = rctd_reader_next(in->reader, &info);
  if (got < 0) return rctd_fail(err, err_len, "%s", rctd_reader_error(in->reader));
  if (got == 0 || strcmp(info->name, RCTD_RES_REC_META) != 0)
    return rctd_fail(err, err_len,
                     "%s: not a result stream (%s%s%s); rctd-merge reads what rctd-fit-full, "
                     "rctd-fit-doublet or rctd-fit-multi write",
                     in->path, got ? "first record '" : "no records", got ? info->name : "",
                     got ? "'" : "");
  rctd_record meta = {0};
  if (rctd_reader_load(in->reader, &meta) < 0)
    return rctd_fail(err, err_len, "%s", rctd_reader_error(in->reader));
  const char *format = rctd_record_meta_get(&meta, "format");
  const char *fp = rctd_record_meta_get(&meta, "fingerprint");
  const char *mode = rctd_record_meta_get(&meta, "mode");
  const char *sigma = rctd_record_meta_get(&meta, "sigma");
  int64_t version = 0, shard_index = 0, shard_count = 0, n_types = 0, slots = 0;
  int rc = 0;
  if (!format || strcmp(format, RCTD_RESULT_FORMAT) != 0 || !fp || !mode || !sigma ||
      mg_meta_i64(&meta, "version", &version) || mg_meta_i64(&meta, "n_pixels", &in->n_pixels) ||
      mg_meta_i64(&meta, "n_chunks", &in->n_chunks) ||
      mg_meta_i64(&meta, "chunk_pixels", &in->chunk_pixels) ||
      mg_meta_i64(&meta, "first_chunk", &in->first_chunk) ||
      mg_meta_i64(&meta, "end_chunk", &in->end_chunk) ||
      mg_meta_i64(&meta, "first_pixel", &in->first_pixel) ||
      mg_meta_i64(&meta, "end_pixel", &in->end_pixel) ||
      mg_meta_i64(&meta, "shard_index", &shard_index) ||
      mg_meta_i64(&meta, "shard_count", &shard_count) || mg_meta_i64(&meta, "n_types", &n_types) ||
      mg_meta_i64(&meta, "multi_slots", &slots))
    rc = rctd_fail(err, err_len, "%s: result.meta is incomplete (not written by rctd-fit-*?)",
                   in->path);
  else if (version != RCTD_RESULT_VERSION)
    rc = rctd_fail(err, err_len,
                   "%s: result stream version %" PRId64 " (this rctd-merge reads version %d)",
                   in->path, version, RCTD_RESULT_VERSION);
  else if (in->first_chunk < 0 || in->end_chunk < in->first_chunk || in->end_chunk > in->n_chunks ||
           in->first_pixel < 0 || in->end_pixel < in->first_pixel || in->end_pixel > in->n_pixels ||
           n_types < 1 || slots < 0 || shard_index < 1 || shard_index > shard_count)
    rc = rctd_fail(err, err_len, "%s: result.meta holds an impossible shard layout", in->path);
  if (rc == 0) {
    snprintf(in->fingerprint, sizeof in->fingerprint, "%s", fp);
    snprintf(in->mode, sizeof in->mode, "%s", mode);
    in->sigma = strtod(sigma, NULL);
    in->shard_index = (int)shard_index;
    in->shard_count = (int)shard_count;
    in->n_types = (int)n_types;
    in->multi_slots = (int)slots;
  }
  rctd_record_free(&meta);
  return rc;
}

static int mg_open_input(mg_input *in, char *err, size_t err_len) {
  in->reader = rctd_reader_open(in->path, err, err_len);
  if (!in->reader) return -1;
  return mg_read_meta(in, err, err_len);
}

static int mg_cmp_input(const void *a, const void *b) {
  const mg_input *x = *(mg_input *const *)a, *y = *(mg_input *const *)b;
  if (x->first_chunk != y->first_chunk) return x->first_chunk < y->first_chunk ? -1 : 1;
  if (x->end_chunk != y->end_chunk) return x->end_chunk < y->end_chunk ? -1 : 1;
  return x->shard_index - y->shard_index;
}

/* Names the shards of a uniform N-way split that hold chunks [a, b). */
static void mg_missing_shards(const mg_input *const *order, int n, int64_t a, int64_t b, char *out,
                              size_t len) {
  out[0] = 0;
  int count = order[0]->shard_count;
  for (int i = 1; i < n; i++)
    if (order[i]->shard_count != count) return;
  size_t used = 0;
  for (int s = 1; s <= count && used < len; s++) {
    int64_t first, end;
    rctd_fit_shard_chunks(order[0]->n_chunks, s, count, &first, &end);
    if (first < b && end > a && end > first)
      used +=
          (size_t)snprintf(out + used, len - used, "%sshard %d/%d", used ? ", " : " (", s, count);
  }
  if (used && used < len) snprintf(out + used, len - used, ")");
}

/* Every input from the same run; chunk ranges covering [0, n_chunks) exactly once.  ORDER
 * receives the inputs sorted by chunk. */
static int mg_check_inputs(mg_input *ins, int n, mg_input **order, char *err, size_t err_len) {
  for (int i = 1; i < n; i++)
    if (strcmp(ins[i].fingerprint, ins[0].fingerprint) != 0)
      return rctd_fail(err, err_len,
                       "%s: foreign shard: it comes from another run (%s mode, sigma %.2f, %" PRId64
                       " pixels, fingerprint %s) than %s (%s mode, sigma %.2f, %" PRId64
                       " pixels, fingerprint %s); merge only the shards of one run",
                       ins[i].path, ins[i].mode, ins[i].sigma, ins[i].n_pixels, ins[i].fingerprint,
                       ins[0].path, ins[0].mode, ins[0].sigma, ins[0].n_pixels, ins[0].fingerprint);
  for (int i = 0; i < n; i++) order[i] = &ins[i];
  qsort(order, (size_t)n, sizeof *order, mg_cmp_input);
  for (int i = 0; i < n; i++)
    for (int j = 0; j < i; j++)
      if (order[i]->shard_index == order[j]->shard_index &&
          order[i]->shard_count == order[j]->shard_count)
        return rctd_fail(err, err_len, "%s: duplicated shard: shard %d/%d is also %s",
                         order[i]->path, order[i]->shard_index, order[i]->shard_count,
                         order[j]->path);
  int64_t next = 0;
  const mg_input *prev = NULL;
  for (int i = 0; i < n; i++) {
    const mg_input *in = order[i];
    if (in->end_chunk == in->first_chunk) continue; /* an empty shard (more shards than chunks) */
    if (in->first_chunk < next)
      return rctd_fail(err, err_len,
                       "%s: duplicated shard: chunks %" PRId64 "..%" PRId64
                       " (shard %d/%d) overlap those of %s (shard %d/%d)",
                       in->path, in->first_chunk, in->end_chunk - 1, in->shard_index,
                       in->shard_count, prev->path, prev->shard_index, prev->shard_count);
    if (in->first_chunk > next) {
      char names[256];
      mg_missing_shards((const mg_input *const *)order, n, next, in->first_chunk, names,
                        sizeof names);
      return rctd_fail(err, err_len,
                       "missing shard: chunks %" PRId64 "..%" PRId64 " (pixels %" PRId64
                       "..%" PRId64 ")%s are in none of the inputs; give every shard of the run",
                       next, in->first_chunk - 1, next * in->chunk_pixels, in->first_pixel - 1,
                       names);
    }
    next = in->end_chunk;
    prev = in;
  }
  if (next < ins[0].n_chunks) {
    char names[256];
    mg_missing_shards((const mg_input *const *)order, n, next, ins[0].n_chunks, names,
                      sizeof names);
    return rctd_fail(err, err_len,
                     "missing shard: chunks %" PRId64 "..%" PRId64 " (pixels %" PRId64 "..%" PRId64
                     ")%s are in none of the inputs; give every shard of the run",
                     next, ins[0].n_chunks - 1, next * ins[0].chunk_pixels, ins[0].n_pixels - 1,
                     names);
  }
  return 0;
}

/* ------------------------------------------------------------------ header */

typedef struct {
  rctd_record meta, config, types, classes, genes_reg, genes_bulk, bulk_weights, sigma;
  rctd_sigma_trace sigma_trace; /* from the sigma record, when there is one */
  size_t n_tools;
  char **tool_names, **tool_versions;
  rctd_results_info info;
  int done;
} mg_header;

static void mg_header_free(mg_header *h) {
  rctd_record *recs[] = {&h->meta,      &h->config,     &h->types,        &h->classes,
                         &h->genes_reg, &h->genes_bulk, &h->bulk_weights, &h->sigma};
  for (size_t i = 0; i < sizeof recs / sizeof *recs; i++) rctd_record_free(recs[i]);
  rctd_sigma_trace_free(&h->sigma_trace);
  for (size_t i = 0; i < h->n_tools; i++) {
    free(h->tool_names[i]);
    free(h->tool_versions[i]);
  }
  free(h->tool_names);
  free(h->tool_versions);
}

/* Keeps a header record the writers need; skips the others. */
static int mg_header_record(mg_header *h, rctd_reader *r, const rctd_record_info *info) {
  struct {
    const char *name;
    rctd_record *rec;
  } wanted[] = {{RCTD_MODEL_REC_META, &h->meta},
                {RCTD_MODEL_REC_CONFIG, &h->config},
                {RCTD_MODEL_REC_TYPES, &h->types},
                {RCTD_MODEL_REC_CLASSES, &h->classes},
                {RCTD_MODEL_REC_GENES_REG, &h->genes_reg},
                {RCTD_MODEL_REC_GENES_BULK, &h->genes_bulk},
                {RCTD_MODEL_REC_BULK_WEIGHTS, &h->bulk_weights},
                {RCTD_SIGMA_REC, &h->sigma}};
  for (size_t i = 0; i < sizeof wanted / sizeof *wanted; i++)
    if (strcmp(info->name, wanted[i].name) == 0 && !wanted[i].rec->name)
      return rctd_reader_load(r, wanted[i].rec);
  if (strncmp(info->name, "provenance.", 11) != 0) return rctd_reader_skip(r);
  rctd_record rec = {0};
  if (rctd_reader_load(r, &rec) < 0) return -1;
  const char *tool = rctd_record_meta_get(&rec, "tool");
  const char *version = rctd_record_meta_get(&rec, "version");
  int rc = 0;
  if (tool && version) {
    char **names = realloc(h->tool_names, (h->n_tools + 1) * sizeof *names);
    if (names) h->tool_names = names;
    char **versions = realloc(h->tool_versions, (h->n_tools + 1) * sizeof *versions);
    if (versions) h->tool_versions = versions;
    if (!names || !versions) rc = -1;
    if (rc == 0) {
      h->tool_names[h->n_tools] = strdup(tool);
      h->tool_versions[h->n_tools] = strdup(version);
      h->n_tools++;
    }
  }
  rctd_record_free(&rec);
  return rc;
}

/* Fills h->info from the header records (checked against result.meta). */
static int mg_header_finish(mg_header *h, const mg_input *in, char *err, size_t err_len) {
  const int K = in->n_types;
  if (!h->types.name || h->types.kind != RCTD_STRINGS || (int64_t)h->types.rows != K)
    return rctd_fail(err, err_len, "%s: the result stream lacks %s with %d names", in->path,
                     RCTD_MODEL_REC_TYPES, K);
  if (!h->genes_reg.name || !h->genes_bulk.name || h->genes_reg.kind != RCTD_STRINGS ||
      h->genes_bulk.kind != RCTD_STRINGS)
    return rctd_fail(err, err_len, "%s: the result stream lacks its gene lists", in->path);
  const char *dup = rctd_strlist_duplicate((const char *const *)h->types.strings, (size_t)K);
  if (dup)
    return rctd_fail(
        err, err_len,
        "%s: record '%s': cell type name '%s' appears twice: cell type names must be unique",
        in->path, RCTD_MODEL_REC_TYPES, dup);
  rctd_results_info *info = &h->info;
  memset(info, 0, sizeof *info);
  info->mode = strcmp(in->mode, "full") == 0      ? RCTD_OUT_FULL
               : strcmp(in->mode, "doublet") == 0 ? RCTD_OUT_DOUBLET
               : strcmp(in->mode, "multi") == 0   ? RCTD_OUT_MULTI
                                                  : -1;
  if (info->mode < 0)
    return rctd_fail(err, err_len, "%s: unknown fit mode '%s'", in->path, in->mode);
  if (info->mode == RCTD_OUT_MULTI && in->multi_slots < 1)
    return rctd_fail(err, err_len, "%s: multi mode without type slots", in->path);
  info->sigma = in->sigma;
  info->n_types = K;
  info->type_names = (const char *const *)h->types.strings;
  if (h->classes.name && h->classes.kind == RCTD_STRINGS && (int64_t)h->classes.rows == K)
    info->class_names = (const char *const *)h->classes.strings;
  info->multi_slots = in->multi_slots;
  info->n_fitted = in->n_pixels;
  info->n_reg = (int)h->genes_reg.rows;
  info->n_bulk = (int)h->genes_bulk.rows;
  info->genes_reg = (const char *const *)h->genes_reg.strings;
  info->genes_bulk = (const char *const *)h->genes_bulk.strings;
  if (h->bulk_weights.name && h->bulk_weights.kind == RCTD_DENSE &&
      h->bulk_weights.dtype == RCTD_F64 && (int64_t)h->bulk_weights.rows == K)
    info->bulk_weights_k = h->bulk_weights.data;
  if (h->config.name && h->config.kind == RCTD_META) {
    /* Keys once each, last value winning, in first-appearance order. */
    char **s = h->config.strings;
    size_t n = 0;
    const char **keys = calloc(h->config.rows + 1, sizeof *keys);
    const char **values = calloc(h->config.rows + 1, sizeof *values);
    if (!keys || !values) {
      free(keys);
      free(values);
      return rctd_fail(err, err_len, "out of memory");
    }
    for (uint64_t i = 0; i < h->config.rows; i++) {
      size_t j = 0;
      while (j < n && strcmp(keys[j], s[2 * i]) != 0) j++;
      keys[j] = s[2 * i];
      values[j] = s[2 * i + 1];
      if (j == n) n++;
    }
    info->n_config = n;
    info->config_keys = keys;
    info->config_values = values;
  }
  info->n_tools = h->n_tools;
  info->tool_names = (const char *const *)h->tool_names;
  info->tool_versions = (const char *const *)h->tool_versions;
  if (h->sigma.name) { /* rctd-sigma's record, passed on by the fit */
    if (h->sigma.kind != RCTD_META)
      return rctd_fail(err, err_len, "%s: record '%s' is not a table of keys and values", in->path,
                       RCTD_SIGMA_REC);
    if (rctd_sigma_trace_read(&h->sigma, in->path, &h->sigma_trace, err, err_len) < 0) return -1;
    if (h->sigma_trace.source[0] || h->sigma_trace.n_epochs) info->sigma_trace = &h->sigma_trace;
  }
  h->done = 1;
  return 0;
}

/* ------------------------------------------------------------------ chunk blocks */

enum {
  R_PIXEL,
  R_BARCODE,
  R_ROW,
  R_NUMI,
  R_WEIGHTS,
  R_CONV,
  R_SPOT_CLASS,
  R_FIRST_TYPE,
  R_SECOND_TYPE,
  R_FIRST_CLASS,
  R_SECOND_CLASS,
  R_MIN_SCORE,
  R_SINGLET_SCORE,
  R_CONV_ALL,
  R_CONV_DOUBLET,
  R_WEIGHTS_DOUBLET,
  R_N_CANDIDATES,
  R_MULTI_STATUS,
  R_N_TYPES,
  R_TYPES,
  R_CONF,
  R_SUB_WEIGHTS,
  R_CONV_SUB,
  R_COUNT
};

/* Record name, kind, dtype, columns (0 = K, -1 = M) and the modes that need it (bit mask). */
typedef struct {
  const char *name;
  rctd_kind kind;
  rctd_dtype dtype;
  int cols;
  unsigned modes;
} mg_rec_spec;

#define MG_ALL 7u
#define MG_FULL 1u
#define MG_DOUBLET 2u
#define MG_MULTI 4u

static const mg_rec_spec mg_specs[R_COUNT] = {
    [R_PIXEL] = {RCTD_RES_REC_PIXEL, RCTD_DENSE, RCTD_I64, 1, MG_ALL},
    [R_BARCODE] = {RCTD_RES_REC_BARCODE, RCTD_STRINGS, RCTD_U8, 1, MG_ALL},
    [R_ROW] = {RCTD_RES_REC_ROW, RCTD_DENSE, RCTD_I64, 1, MG_ALL},
    [R_NUMI] = {RCTD_RES_REC_NUMI, RCTD_DENSE, RCTD_F64, 1, MG_ALL},
    [R_WEIGHTS] = {RCTD_RES_REC_WEIGHTS, RCTD_DENSE, RCTD_F64, 0, MG_ALL},
    [R_CONV] = {RCTD_RES_REC_CONV, RCTD_DENSE, RCTD_U8, 1, MG_FULL},
    [R_SPOT_CLASS] = {RCTD_RES_REC_SPOT_CLASS, RCTD_DENSE, RCTD_U8, 1, MG_DOUBLET},
    [R_FIRST_TYPE] = {RCTD_RES_REC_FIRST_TYPE, RCTD_DENSE, RCTD_I32, 1, MG_DOUBLET},
    [R_SECOND_TYPE] = {RCTD_RES_REC_SECOND_TYPE, RCTD_DENSE, RCTD_I32, 1, MG_DOUBLET},
    [R_FIRST_CLASS] = {RCTD_RES_REC_FIRST_CLASS, RCTD_DENSE, RCTD_U8, 1, MG_DOUBLET},
    [R_SECOND_CLASS] = {RCTD_RES_REC_SECOND_CLASS, RCTD_DENSE, RCTD_U8, 1, MG_DOUBLET},
    [R_MIN_SCORE] = {RCTD_RES_REC_MIN_SCORE, RCTD_DENSE, RCTD_F64, 1, MG_DOUBLET | MG_MULTI},
    [R_SINGLET_SCORE] = {RCTD_RES_REC_SINGLET_SCORE, RCTD_DENSE, RCTD_F64, 1, MG_DOUBLET},
    [R_CONV_ALL] = {RCTD_RES_REC_CONV_ALL, RCTD_DENSE, RCTD_U8, 1, MG_DOUBLET | MG_MULTI},
    [R_CONV_DOUBLET] = {RCTD_RES_REC_CONV_DOUBLET, RCTD_DENSE, RCTD_U8, 1, MG_DOUBLET},
    [R_WEIGHTS_DOUBLET] = {RCTD_RES_REC_WEIGHTS_DOUBLET, RCTD_DENSE, RCTD_F64, 2, MG_DOUBLET},
    [R_N_CANDIDATES] = {RCTD_RES_REC_N_CANDIDATES, RCTD_DENSE, RCTD_I32, 1, MG_DOUBLET},
    [R_MULTI_STATUS] = {RCTD_RES_REC_MULTI_STATUS, RCTD_DENSE, RCTD_U8, 1, MG_MULTI},
    [R_N_TYPES] = {RCTD_RES_REC_N_TYPES, RCTD_DENSE, RCTD_I32, 1, MG_MULTI},
    [R_TYPES] = {RCTD_RES_REC_TYPES, RCTD_DENSE, RCTD_I32, -1, MG_MULTI},
    [R_CONF] = {RCTD_RES_REC_CONF, RCTD_DENSE, RCTD_U8, -1, MG_MULTI},
    [R_SUB_WEIGHTS] = {RCTD_RES_REC_SUB_WEIGHTS, RCTD_DENSE, RCTD_F64, -1, MG_MULTI},
    [R_CONV_SUB] = {RCTD_RES_REC_CONV_SUB, RCTD_DENSE, RCTD_U8, 1, MG_MULTI},
};

typedef struct {
  int active;
  int64_t first, chunk;
  rctd_record rec[R_COUNT];
} mg_block;

static void mg_block_clear(mg_block *b) {
  for (int i = 0; i < R_COUNT; i++) rctd_record_free(&b->rec[i]);
  memset(b, 0, sizeof *b);
}

static int mg_spec_index(const char *name) {
  for (int i = 0; i < R_COUNT; i++)
    if (strcmp(mg_specs[i].name, name) == 0) return i;
  return -1;
}

static int64_t mg_attr_i64(const rctd_record_info *info, const char *key) {
  const char *s = rctd_record_attr(info, key);
  char *end = NULL;
  if (!s || !*s) return -1;
  long long v = strtoll(s, &end, 10);
  return *end ? -1 : v;
}

/* ------------------------------------------------------------------ the run */

typedef struct {
  const rctd_merge_opts *o;
  mg_input *ins;
  int n_ins;
  mg_input **order;
  mg_header header;
  rctd_results_summary summary;
  int have_summary;
  rctd_input *spatial; /* non-h5ad spatial input (names, coordinates) */
  int spatial_is_h5ad;
  int64_t n_input; /* rows of the spatial input, or -1 */
  rctd_h5ad_writer *h5ad;
  rctd_csv_writer *csv;
  int writers_open;
  int64_t next_pixel, next_chunk;
  rctd_progress *progress;
  double t_start, t_read, t_write;
  char *err;
  size_t err_len;
} mg_run;

static int mg_spatial_h5ad(const char *path, const char *format) {
  if (format && strcmp(format, "auto") != 0) return strcmp(format, "h5ad") == 0;
  struct stat st;
  if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) return 0;
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  if (H5Fis_hdf5(path) <= 0) return 0;
  rctd_h5_guard_enter(path); /* a damaged file may crash libhdf5 (h5guard.h) */
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  int is =
      f >= 0 && H5Lexists(f, "obs", H5P_DEFAULT) > 0 && H5Lexists(f, "matrix", H5P_DEFAULT) <= 0;
  if (f >= 0) H5Fclose(f);
  rctd_h5_guard_leave();
  return is;
}

/* The spatial input: an h5ad is copied by the writer; another format is read for its names. */
static int mg_open_spatial(mg_run *r) {
  const rctd_merge_opts *o = r->o;
  r->n_input = -1;
  if (!o->spatial) return 0;
  r->spatial_is_h5ad = mg_spatial_h5ad(o->spatial, o->spatial_format);
  if (r->spatial_is_h5ad && o->h5ad_path) return 0;
  rctd_input_options opts;
  rctd_input_options_init(&opts);
  if (rctd_input_format_from_name(o->spatial_format, &opts.format) < 0)
    return rctd_fail(r->err, r->err_len,
                     "--spatial-format %s: unknown format (auto, h5ad, 10x-h5, mtx or csv)",
                     o->spatial_format);
  opts.cell_types = RCTD_CELL_TYPES_IGNORE;
  opts.coords_table = o->coords_table;
  r->spatial = rctd_input_open(o->spatial, &opts, r->err, r->err_len);
  if (!r->spatial) return -1;
  r->n_input = rctd_input_n_rows(r->spatial);
  return 0;
}

/* The spatial input's barcodes, read back from its temporary file row by row. */
static const char *mg_spatial_barcode(const void *spatial, int64_t row) {
  return rctd_input_barcode(spatial, row);
}

static int mg_open_writers(mg_run *r) {
  const rctd_merge_opts *o = r->o;
  const rctd_results_info *info = &r->header.info;
  if (rctd_results_summary_init(&r->summary, info) < 0)
    return rctd_fail(r->err, r->err_len, "out of memory");
  r->have_summary = 1;
  if (o->h5ad_path) {
    rctd_h5ad_target t = {0};
    if (r->spatial_is_h5ad) {
      t.spatial_h5ad = o->spatial;
    } else if (r->spatial) {
      t.n_rows = rctd_input_n_rows(r->spatial);
      t.barcode = mg_spatial_barcode;
      t.barcode_src = r->spatial;
      t.coords_n2 = rctd_input_coords(r->spatial);
    }
    r->h5ad = rctd_h5ad_open(o->h5ad_path, &t, info, r->err, r->err_len);
    if (!r->h5ad) return -1;
    if (r->spatial_is_h5ad) r->n_input = rctd_h5ad_n_rows(r->h5ad);
  }
  if (o->csv_dir) {
    r->csv = rctd_csv_open(o->csv_dir, info, r->err, r->err_len);
    if (!r->csv) return -1;
  }
  r->writers_open = 1;
  if (o->progress) r->progress = rctd_progress_start("merge", (uint64_t)info->n_fitted, "pixels");
  return 0;
}

/* Checks a complete block and hands it to the writers. */
static int mg_flush_block(mg_run *r, mg_block *b, const mg_input *in) {
  const rctd_results_info *info = &r->header.info;
  const unsigned mode_bit = 1u << info->mode;
  const rctd_record *pix = &b->rec[R_PIXEL];
  const int64_t n = (int64_t)pix->rows;
  for (int i = 0; i < R_COUNT; i++) {
    if (!(mg_specs[i].modes & mode_bit)) continue;
    const rctd_record *rec = &b->rec[i];
    if (!rec->name)
      return rctd_fail(r->err, r->err_len, "%s: chunk %" PRId64 " lacks record %s", in->path,
                       b->chunk, mg_specs[i].name);
    uint64_t cols = mg_specs[i].cols == 0    ? (uint64_t)info->n_types
                    : mg_specs[i].cols == -1 ? (uint64_t)info->multi_slots
                                             : (uint64_t)mg_specs[i].cols;
    int shape_ok =
        rec->kind == mg_specs[i].kind && (int64_t)rec->rows == n &&
        (rec->kind == RCTD_STRINGS || (rec->dtype == mg_specs[i].dtype && rec->cols == cols));
    if (!shape_ok)
      return rctd_fail(r->err, r->err_len,
                       "%s: chunk %" PRId64 ": record %s has the wrong type or shape", in->path,
                       b->chunk, mg_specs[i].name);
  }
  const int64_t *pixel_n = pix->data;
  for (int64_t i = 0; i < n; i++)
    if (pixel_n[i] != r->next_pixel + i)
      return rctd_fail(r->err, r->err_len,
                       "%s: pixel %" PRId64 " where pixel %" PRId64
                       " was expected: the shard is damaged or from another run",
                       in->path, pixel_n[i], r->next_pixel + i);
  if (r->next_pixel + n > info->n_fitted)
    return rctd_fail(r->err, r->err_len, "%s: more pixels than the %" PRId64 " fitted", in->path,
                     info->n_fitted);
  const rctd_record *rec = b->rec;
  rctd_results_chunk c = {
      .first = r->next_pixel,
      .n = n,
      .row_n = rec[R_ROW].data,
      .barcode_n = (const char *const *)rec[R_BARCODE].strings,
      .numi_n = rec[R_NUMI].data,
      .weights_nk = rec[R_WEIGHTS].data,
      .conv_n = rec[R_CONV].data,
      .spot_class_n = rec[R_SPOT_CLASS].data,
      .first_type_n = rec[R_FIRST_TYPE].data,
      .second_type_n = rec[R_SECOND_TYPE].data,
      .first_class_n = rec[R_FIRST_CLASS].data,
      .second_class_n = rec[R_SECOND_CLASS].data,
      .min_score_n = rec[R_MIN_SCORE].data,
      .singlet_score_n = rec[R_SINGLET_SCORE].data,
      .conv_all_n = rec[R_CONV_ALL].data,
      .conv_doublet_n = rec[R_CONV_DOUBLET].data,
      .weights_doublet_n2 = rec[R_WEIGHTS_DOUBLET].data,
      .n_candidates_n = rec[R_N_CANDIDATES].data,
      .multi_status_n = rec[R_MULTI_STATUS].data,
      .n_types_n = rec[R_N_TYPES].data,
      .types_nm = rec[R_TYPES].data,
      .conf_nm = rec[R_CONF].data,
      .sub_weights_nm = rec[R_SUB_WEIGHTS].data,
      .conv_sub_n = rec[R_CONV_SUB].data,
  };
  if (r->spatial) {
    for (int64_t i = 0; i < n; i++) {
      const int in_input = c.row_n[i] >= 0 && c.row_n[i] < r->n_input;
      const char *name = in_input ? rctd_input_barcode(r->spatial, c.row_n[i]) : NULL;
      if (in_input && !name)
        return rctd_fail(r->err, r->err_len,
                         "%s: cannot read the barcodes of %s back from their temporary file (%s)",
                         in->path, r->o->spatial, strerror(errno));
      if (!name || strcmp(name, c.barcode_n[i]) != 0)
        return rctd_fail(r->err, r->err_len,
                         "%s: pixel %s (row %" PRId64
                         ") is not that row of %s: give --spatial the "
                         "spatial input of this run",
                         in->path, c.barcode_n[i], c.row_n[i], r->o->spatial);
    }
  }
  if (rctd_results_chunk_check(info, &c, in->path, r->err, r->err_len) < 0) return -1;
  double t0 = rctd_now();
  if (r->h5ad && rctd_h5ad_write_chunk(r->h5ad, &c, r->err, r->err_len) < 0) return -1;
  if (r->csv && rctd_csv_write_chunk(r->csv, &c, r->err, r->err_len) < 0) return -1;
  r->t_write += rctd_now() - t0;
  rctd_results_summary_add(&r->summary, info, &c);
  r->next_pixel += n;
  r->next_chunk++;
  if (r->progress) rctd_progress_set(r->progress, (uint64_t)r->next_pixel);
  mg_block_clear(b);
  return 0;
}

static int mg_check_summary(mg_run *r, const mg_input *in, rctd_reader *rd) {
  rctd_record s = {0};
  if (rctd_reader_load(rd, &s) < 0)
    return rctd_fail(r->err, r->err_len, "%s", rctd_reader_error(rd));
  int64_t chunks = -1, pixels = -1;
  mg_meta_i64(&s, "chunks", &chunks);
  mg_meta_i64(&s, "pixels", &pixels);
  rctd_record_free(&s);
  if (chunks != in->end_chunk - in->first_chunk || pixels != in->end_pixel - in->first_pixel)
    return rctd_fail(r->err, r->err_len,
                     "%s: the shard's summary says %" PRId64 " chunks and %" PRId64
                     " pixels where %" PRId64 " and %" PRId64 " were expected",
                     in->path, chunks, pixels, in->end_chunk - in->first_chunk,
                     in->end_pixel - in->first_pixel);
  if (r->next_chunk != in->end_chunk || r->next_pixel != in->end_pixel)
    return rctd_fail(r->err, r->err_len,
                     "%s: the shard holds chunks up to %" PRId64 " where it should end at %" PRId64,
                     in->path, r->next_chunk, in->end_chunk);
  return 0;
}

/* Reads one input from its second record to its end. */
static int mg_read_input(mg_run *r, mg_input *in) {
  if (!in->reader && mg_open_input(in, r->err, r->err_len) < 0) return -1;
  rctd_reader *rd = in->reader;
  mg_block block;
  memset(&block, 0, sizeof block);
  int seen_summary = 0, rc = 0, got;
  const rctd_record_info *info = NULL;
  if (r->next_chunk != in->first_chunk || r->next_pixel != in->first_pixel)
    return rctd_fail(r->err, r->err_len, "%s: shard starts at pixel %" PRId64 ", expected %" PRId64,
                     in->path, in->first_pixel, r->next_pixel);
  while (rc == 0 && (got = rctd_reader_next(rd, &info)) > 0) {
    double t0 = rctd_now();
    int idx = mg_spec_index(info->name);
    int is_summary = strcmp(info->name, RCTD_RES_REC_SUMMARY) == 0;
    if (seen_summary) {
      rc = rctd_fail(r->err, r->err_len, "%s: record '%s' after result.summary", in->path,
                     info->name);
      break;
    }
    if ((idx == R_PIXEL || is_summary) && !r->header.done) {
      rc = mg_header_finish(&r->header, in, r->err, r->err_len);
      if (rc == 0) rc = mg_open_writers(r);
    }
    if (rc == 0 && (idx == R_PIXEL || is_summary) && block.active)
      rc = mg_flush_block(r, &block, in);
    if (rc != 0) break;
    if (is_summary) {
      rc = mg_check_summary(r, in, rd);
      seen_summary = 1;
    } else if (idx == R_PIXEL) {
      block.active = 1;
      block.first = mg_attr_i64(info, "first");
      block.chunk = mg_attr_i64(info, "chunk");
      if (block.chunk != r->next_chunk || block.first != r->next_pixel)
        rc = rctd_fail(r->err, r->err_len,
                       "%s: chunk %" PRId64 " (first pixel %" PRId64 ") where chunk %" PRId64
                       " was expected: the shard is damaged",
                       in->path, block.chunk, block.first, r->next_chunk);
      else if (rctd_reader_load(rd, &block.rec[R_PIXEL]) < 0)
        rc = rctd_fail(r->err, r->err_len, "%s", rctd_reader_error(rd));
    } else if (idx > 0 && block.active) {
      if (block.rec[idx].name || mg_attr_i64(info, "first") != block.first)
        rc = rctd_fail(r->err, r->err_len, "%s: chunk %" PRId64 ": unexpected record %s", in->path,
                       block.chunk, info->name);
      else if (rctd_reader_load(rd, &block.rec[idx]) < 0)
        rc = rctd_fail(r->err, r->err_len, "%s", rctd_reader_error(rd));
    } else if (!r->header.done && !block.active) {
      if (mg_header_record(&r->header, rd, info) < 0)
        rc = rctd_fail(r->err, r->err_len, "%s", rctd_reader_error(rd));
    } else if (rctd_reader_skip(rd) < 0) {
      rc = rctd_fail(r->err, r->err_len, "%s", rctd_reader_error(rd));
    }
    r->t_read += rctd_now() - t0;
  }
  if (rc == 0 && got < 0) rc = rctd_fail(r->err, r->err_len, "%s", rctd_reader_error(rd));
  if (rc == 0 && !seen_summary)
    rc = rctd_fail(r->err, r->err_len,
                   "%s: truncated shard: it ends after pixel %" PRId64
                   " without result.summary "
                   "(the fit did not finish); run shard %d/%d again",
                   in->path, r->next_pixel, in->shard_index, in->shard_count);
  mg_block_clear(&block);
  rctd_reader_close(rd);
  in->reader = NULL;
  return rc;
}

/* ------------------------------------------------------------------ summaries */

static void mg_json_counts(FILE *f, const char *name, const char *const *labels,
                           const int64_t *counts, int n) {
  fprintf(f, ",\n  ");
  rctd_json_string(f, name);
  fprintf(f, ": {");
  for (int i = 0; i < n; i++) {
    fprintf(f, "%s", i ? ", " : "");
    rctd_json_string(f, labels[i]);
    fprintf(f, ": %" PRId64, counts[i]);
  }
  fprintf(f, "}");
}

static void mg_write_json(mg_run *r, FILE *f) {
  const rctd_results_info *info = &r->header.info;
  const rctd_results_summary *s = &r->summary;
  static const char *const modes[] = {"full", "doublet", "multi"};
  fprintf(f, "{\n  \"mode\": \"%s\",\n  \"sigma\": %.2f,\n  \"n_types\": %d,\n", modes[info->mode],
          info->sigma, info->n_types);
  fprintf(f, "  \"shards\": %d,\n  \"pixels\": {\"input\": ", r->n_ins);
  if (r->n_input >= 0)
    fprintf(f, "%" PRId64 ", \"filtered\": %" PRId64, r->n_input, r->n_input - s->n_fitted);
  else
    fprintf(f, "null, \"filtered\": null");
  fprintf(f, ", \"fitted\": %" PRId64 "}", s->n_fitted);
  mg_json_counts(f, "dominant_type_counts", info->type_names, s->dominant_k, info->n_types);
  if (info->mode == RCTD_OUT_DOUBLET) {
    const char *names[RCTD_OUT_N_SPOT_CLASSES];
    for (int i = 0; i < RCTD_OUT_N_SPOT_CLASSES; i++) names[i] = rctd_out_spot_class_name(i);
    mg_json_counts(f, "spot_class_counts", names, s->spot_class, RCTD_OUT_N_SPOT_CLASSES);
  }
  if (info->mode == RCTD_OUT_MULTI) {
    const char *names[RCTD_OUT_N_MULTI_STATUS];
    for (int i = 0; i < RCTD_OUT_N_MULTI_STATUS; i++) names[i] = rctd_out_multi_status_name(i);
    mg_json_counts(f, "multi_status_counts", names, s->multi_status, RCTD_OUT_N_MULTI_STATUS);
    fprintf(f, ",\n  \"n_types_counts\": {");
    for (int t = 0; t <= s->multi_slots; t++)
      fprintf(f, "%s\"%d\": %" PRId64, t ? ", " : "", t, s->n_types_counts[t]);
    fprintf(f, "}");
  }
  fprintf(f, ",\n  \"outputs\": {");
  int first = 1;
  if (r->o->h5ad_path) {
    fprintf(f, "\"h5ad\": ");
    rctd_json_string(f, r->o->h5ad_path);
    first = 0;
  }
  if (r->o->csv_dir) {
    fprintf(f, "%s\"csv\": ", first ? "" : ", ");
    rctd_json_string(f, r->o->csv_dir);
  }
  fprintf(f, "},\n  \"timings\": {\"read_s\": %.3f, \"write_s\": %.3f, \"total_s\": %.3f}\n}\n",
          r->t_read, r->t_write, rctd_now() - r->t_start);
}

typedef struct {
  const char *label;
  int64_t count;
} mg_count;

static int mg_cmp_count(const void *a, const void *b) {
  const mg_count *x = a, *y = b;
  return x->count != y->count ? (x->count > y->count ? -1 : 1) : 0;
}

static void mg_write_text(mg_run *r, FILE *f) {
  const rctd_results_info *info = &r->header.info;
  const rctd_results_summary *s = &r->summary;
  static const char *const modes[] = {"full", "doublet", "multi"};
  fprintf(f, "RCTD %s mode: sigma %.2f, %d cell types, %d regression genes\n", modes[info->mode],
          info->sigma, info->n_types, info->n_reg);
  if (r->n_input >= 0)
    fprintf(f,
            "pixels: %" PRId64 " in the spatial input, %" PRId64 " removed by the filters, %" PRId64
            " fitted\n",
            r->n_input, r->n_input - s->n_fitted, s->n_fitted);
  else
    fprintf(f, "pixels: %" PRId64 " fitted\n", s->n_fitted);
  if (info->mode == RCTD_OUT_DOUBLET) {
    fprintf(f, "spot classes:");
    for (int i = 0; i < RCTD_OUT_N_SPOT_CLASSES; i++)
      fprintf(f, " %s %" PRId64 "%s", rctd_out_spot_class_name(i), s->spot_class[i],
              i + 1 < RCTD_OUT_N_SPOT_CLASSES ? "," : "\n");
  }
  if (info->mode == RCTD_OUT_MULTI) {
    fprintf(f, "types per pixel:");
    for (int t = 0; t <= s->multi_slots; t++)
      fprintf(f, " %d: %" PRId64 "%s", t, s->n_types_counts[t], t < s->multi_slots ? "," : "\n");
  }
  mg_count *counts = malloc((size_t)info->n_types * sizeof *counts);
  if (counts) {
    for (int k = 0; k < info->n_types; k++)
      counts[k] = (mg_count){info->type_names[k], s->dominant_k[k]};
    /* Stable order for equal counts: insertion sort keeps type order. */
    for (int i = 1; i < info->n_types; i++)
      for (int j = i; j > 0 && mg_cmp_count(&counts[j - 1], &counts[j]) > 0; j--) {
        mg_count t = counts[j];
        counts[j] = counts[j - 1];
        counts[j - 1] = t;
      }
    fprintf(f, "dominant types:");
    int shown = 0;
    for (int k = 0; k < info->n_types && shown < 10; k++) {
      if (!counts[k].count) continue;
      fprintf(f, "%s %s %" PRId64, shown ? "," : "", counts[k].label, counts[k].count);
      shown++;
    }
    fprintf(f, "%s\n", shown ? "" : " none");
    free(counts);
  }
  if (r->o->h5ad_path) fprintf(f, "wrote %s\n", r->o->h5ad_path);
  if (r->o->csv_dir) fprintf(f, "wrote %s/ (spacexr CSV layout)\n", r->o->csv_dir);
}

typedef void (*mg_writer_fn)(mg_run *r, FILE *f);

static int mg_write_report(mg_run *r, const char *path, mg_writer_fn fn) {
  if (!path) return 0;
  FILE *f = rctd_out_open(path, r->err, r->err_len);
  if (!f) return -1;
  fn(r, f);
  return rctd_out_commit(f, r->err, r->err_len);
}

/* --multiqc: the sample is named by --multiqc-sample, else by the output or spatial file. */
static int mg_write_multiqc(mg_run *r) {
  const rctd_merge_opts *o = r->o;
  char sample[256] = "rctd";
  const char *from = o->h5ad_path ? o->h5ad_path : o->csv_dir ? o->csv_dir : o->spatial;
  if (o->multiqc_sample) {
    snprintf(sample, sizeof sample, "%s", o->multiqc_sample);
  } else if (from && strcmp(from, "-") != 0) {
    const char *base = strrchr(from, '/');
    snprintf(sample, sizeof sample, "%s", base && base[1] ? base + 1 : from);
    size_t n = strlen(sample);
    if (n > 5 && strcmp(sample + n - 5, ".h5ad") == 0) sample[n - 5] = 0;
  }
  for (char *p = sample; *p; p++)
    if (*p == '\t' || *p == '\n' || *p == '\r') *p = ' ';
  const rctd_results_info *info = &r->header.info;
  rctd_multiqc_stats st = {.sample = sample,
                           .mode = info->mode,
                           .sigma = info->sigma,
                           .n_input = r->n_input,
                           .n_fitted = r->summary.n_fitted,
                           .spot_class = r->summary.spot_class,
                           .n_types = info->n_types,
                           .type_names = info->type_names,
                           .dominant_k = r->summary.dominant_k};
  FILE *f = rctd_out_open(o->multiqc_path, r->err, r->err_len);
  if (!f) return -1;
  rctd_multiqc_write(f, &st, rctd_multiqc_format(o->multiqc_path) == 1);
  return rctd_out_commit(f, r->err, r->err_len);
}

/* ------------------------------------------------------------------ driver */

static void mg_cleanup(mg_run *r, int failed) {
  if (failed) {
    rctd_h5ad_abort(r->h5ad);
    rctd_csv_abort(r->csv);
  }
  r->h5ad = NULL;
  r->csv = NULL;
  for (int i = 0; i < r->n_ins; i++)
    if (r->ins[i].reader) rctd_reader_close(r->ins[i].reader);
  if (r->progress) rctd_progress_finish(r->progress);
  if (r->spatial) rctd_input_close(r->spatial);
  if (r->have_summary) rctd_results_summary_free(&r->summary);
  free((void *)r->header.info.config_keys);
  free((void *)r->header.info.config_values);
  mg_header_free(&r->header);
  free(r->ins);
  free(r->order);
}

int rctd_merge_run(const rctd_merge_opts *o, char *err, size_t err_len) {
  mg_run r;
  memset(&r, 0, sizeof r);
  r.o = o;
  r.err = err;
  r.err_len = err_len;
  r.t_start = rctd_now();
  if (o->multiqc_path && rctd_multiqc_format(o->multiqc_path) < 0)
    return rctd_fail(err, err_len,
                     "%s: --multiqc needs a NAME_mqc.json or NAME_mqc.tsv file name (MultiQC "
                     "finds custom content by that suffix)",
                     o->multiqc_path);
  if (o->n_inputs < 1) return rctd_fail(err, err_len, "no result streams to merge");
  if (!o->h5ad_path && !o->csv_dir && !o->json_path && !o->summary_path && !o->multiqc_path)
    return rctd_fail(err, err_len, "nothing to write: give -o (h5ad or CSV) or --json");
  int n_stdin = 0;
  for (int i = 0; i < o->n_inputs; i++) n_stdin += strcmp(o->inputs[i], "-") == 0;
  if (n_stdin > 1) return rctd_fail(err, err_len, "standard input ('-') given more than once");
  r.n_ins = o->n_inputs;
  r.ins = calloc((size_t)r.n_ins, sizeof *r.ins);
  r.order = calloc((size_t)r.n_ins, sizeof *r.order);
  if (!r.ins || !r.order) {
    mg_cleanup(&r, 1);
    return rctd_fail(err, err_len, "out of memory");
  }
  rctd_out_defer(1);
  struct stat csv_st; /* a CSV directory the run makes goes again when it fails */
  const int csv_dir_new = o->csv_dir && stat(o->csv_dir, &csv_st) != 0;
  int rc = 0;
  for (int i = 0; i < r.n_ins && rc == 0; i++) {
    mg_input *in = &r.ins[i];
    in->path = o->inputs[i];
    rc = mg_open_input(in, err, err_len);
    /* A file is reopened in chunk order (few descriptors at a time); a pipe ('-', a FIFO,
     * /dev/fd/N) can be read only once: it stays open. */
    struct stat st;
    if (rc == 0 && strcmp(in->path, "-") != 0 && stat(in->path, &st) == 0 && S_ISREG(st.st_mode)) {
      rctd_reader_close(in->reader);
      in->reader = NULL;
    }
  }
  if (rc == 0) rc = mg_check_inputs(r.ins, r.n_ins, r.order, err, err_len);
  if (rc == 0) rc = mg_open_spatial(&r);
  for (int i = 0; i < r.n_ins && rc == 0; i++) rc = mg_read_input(&r, r.order[i]);
  if (rc == 0 && r.next_pixel != r.header.info.n_fitted)
    rc = rctd_fail(err, err_len, "%" PRId64 " of %" PRId64 " pixels were found in the inputs",
                   r.next_pixel, r.header.info.n_fitted);
  if (rc == 0 && r.h5ad) {
    rc = rctd_h5ad_close(r.h5ad, &r.summary, err, err_len);
    r.h5ad = NULL;
  }
  if (rc == 0 && r.csv) {
    rc = rctd_csv_close(r.csv, err, err_len);
    r.csv = NULL;
  }
  if (r.progress) {
    rctd_progress_finish(r.progress);
    r.progress = NULL;
  }
  if (rc == 0) rc = mg_write_report(&r, o->json_path, mg_write_json);
  if (rc == 0) rc = mg_write_report(&r, o->summary_path, mg_write_text);
  if (rc == 0 && o->multiqc_path) rc = mg_write_multiqc(&r);
  mg_cleanup(&r, rc != 0);
  /* The outputs appear together, and only when every one (a summary on stdout included) was
   * written. */
  if (rc == 0 && (fflush(stdout) != 0 || ferror(stdout)))
    rc = rctd_fail(err, err_len, "stdout: write failed: %s", strerror(errno ? errno : EIO));
  int finish_rc = rctd_out_finish(rc != 0, err, err_len);
  if ((rc != 0 || finish_rc != 0) && csv_dir_new) rmdir(o->csv_dir); /* (when left empty) */
  return rc == 0 ? finish_rc : rc;
}

char *rctd_merge_csv_dir_for(const char *h5ad_path) {
  size_t n = strlen(h5ad_path);
  char *s = malloc(n + 8);
  if (!s) return NULL;
  if (n > 5 && strcmp(h5ad_path + n - 5, ".h5ad") == 0)
    snprintf(s, n + 8, "%.*s", (int)(n - 5), h5ad_path);
  else
    snprintf(s, n + 8, "%s_csv", h5ad_path);
  return s;
}
