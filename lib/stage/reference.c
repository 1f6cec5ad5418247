/* Reference stage logic: spacexr Reference(), process_cell_type_info, get_cell_type_info and
 * the random draws of create_downsampled_data.  See reference.h. */
#include "reference.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "progress.h"
#include "error.h"
#include "text.h"
#include "strlist.h"

int rctd_reference_profile_types(const rctd_ref_cells *cells, const char *const *code_names,
                                 const char *const *subset, int n_subset, int32_t *types_k,
                                 char *err, size_t err_len) {
  if (!subset || n_subset <= 0) {
    for (int l = 0; l < cells->n_levels; l++) types_k[l] = l;
    return cells->n_levels;
  }
  if (n_subset > cells->n_levels)
    return rctd_fail(err, err_len, "--cell-types lists %d types but the reference has %d", n_subset,
                     cells->n_levels);
  for (int i = 0; i < n_subset; i++) {
    int found = -1;
    for (int l = 0; l < cells->n_levels && found < 0; l++)
      if (strcmp(code_names[cells->level_code_l[l]], subset[i]) == 0) found = l;
    if (found < 0)
      return rctd_fail(err, err_len,
                       "cell type '%s' of --cell-types is not in the reference (or was dropped)",
                       subset[i]);
    for (int j = 0; j < i; j++)
      if (types_k[j] == found)
        return rctd_fail(err, err_len, "cell type '%s' is listed twice in --cell-types", subset[i]);
    types_k[i] = found;
  }
  if (n_subset < 2) return rctd_fail(err, err_len, "--cell-types must name at least 2 cell types");
  return n_subset;
}

int rctd_profile_acc_init(rctd_profile_acc *acc, int n_genes, const rctd_ref_cells *cells,
                          const int32_t *types_k, int n_types, char *err, size_t err_len) {
  memset(acc, 0, sizeof *acc);
  acc->n_genes = n_genes;
  acc->n_types = n_types;
  acc->type_of_level =
      malloc((size_t)(cells->n_levels ? cells->n_levels : 1) * sizeof *acc->type_of_level);
  acc->sum_gk = calloc((size_t)n_genes * (size_t)n_types, sizeof *acc->sum_gk);
  acc->cells_k = calloc((size_t)n_types, sizeof *acc->cells_k);
  if (!acc->type_of_level || !acc->sum_gk || !acc->cells_k) {
    rctd_profile_acc_free(acc);
    return rctd_fail(err, err_len, "out of memory for %d genes x %d types of profiles", n_genes,
                     n_types);
  }
  for (int l = 0; l < cells->n_levels; l++) acc->type_of_level[l] = -1;
  for (int k = 0; k < n_types; k++) acc->type_of_level[types_k[k]] = k;
  return 0;
}

void rctd_profile_acc_add(rctd_profile_acc *acc, const rctd_ref_cells *cells,
                          const int32_t *codes_n, const double *numi_n, int64_t row, int64_t nnz,
                          const int32_t *gene_idx, const double *values) {
  int32_t mult = cells->mult_n[row];
  if (mult == 0) return;
  int level = cells->level_of_code[codes_n[row]];
  int k = level < 0 ? -1 : acc->type_of_level[level];
  if (k < 0) return;
  int K = acc->n_types;
  double numi = numi_n[row];
  for (int32_t m = 0; m < mult; m++) {
    /* R: sweep(counts, 2, nUMI, "/") then rowSums: one double quotient added per cell. */
    for (int64_t i = 0; i < nnz; i++) acc->sum_gk[(size_t)gene_idx[i] * K + k] += values[i] / numi;
    acc->cells_k[k]++;
  }
}

void rctd_profile_acc_finish(const rctd_profile_acc *acc, double *profiles_gk) {
  int K = acc->n_types;
  for (int g = 0; g < acc->n_genes; g++)
    for (int k = 0; k < K; k++)
      profiles_gk[(size_t)g * K + k] = acc->sum_gk[(size_t)g * K + k] / (double)acc->cells_k[k];
}

void rctd_profile_acc_free(rctd_profile_acc *acc) {
  free(acc->type_of_level);
  free(acc->sum_gk);
  free(acc->cells_k);
  memset(acc, 0, sizeof *acc);
}

int rctd_reference_profiles_dense(const rctd_ref_cells *cells, const int32_t *codes_n,
                                  const int32_t *types_k, int n_types, int n_genes,
                                  const double *counts_ng, const double *numi_n,
                                  double *profiles_gk, char *err, size_t err_len) {
  rctd_profile_acc acc;
  if (rctd_profile_acc_init(&acc, n_genes, cells, types_k, n_types, err, err_len) < 0) return -1;
  int32_t *idx = malloc((size_t)(n_genes ? n_genes : 1) * sizeof *idx);
  double *val = malloc((size_t)(n_genes ? n_genes : 1) * sizeof *val);
  if (!idx || !val) {
    free(idx), free(val);
    rctd_profile_acc_free(&acc);
    return rctd_fail(err, err_len, "out of memory");
  }
  for (int64_t row = 0; row < cells->n_rows; row++) {
    int64_t nnz = 0;
    for (int g = 0; g < n_genes; g++) {
      double v = counts_ng[(size_t)row * n_genes + g];
      if (v == 0) continue;
      idx[nnz] = g;
      val[nnz++] = v;
    }
    rctd_profile_acc_add(&acc, cells, codes_n, numi_n, row, nnz, idx, val);
  }
  rctd_profile_acc_finish(&acc, profiles_gk);
  free(idx);
  free(val);
  rctd_profile_acc_free(&acc);
  return 0;
}

/* Trims blanks around a field in place. */
static char *ref_trim(char *field) {
  while (*field == ' ') field++;
  size_t n = strlen(field);
  while (n > 0 && field[n - 1] == ' ') field[--n] = '\0';
  return field;
}

int rctd_class_table_read(const char *path, const char *const *type_names, int n_types,
                          char ***class_names, char *err, size_t err_len) {
  *class_names = NULL;
  char open_err[512];
  input_text *text = input_text_open(path, open_err, sizeof open_err);
  if (!text) return rctd_fail(err, err_len, "%s (the class table)", open_err);
  char **classes = calloc((size_t)n_types, sizeof *classes);
  int line_no = 0, rc = -1;
  char sep = ',', *line;
  if (!classes) {
    rctd_fail(err, err_len, "out of memory");
    goto done;
  }
  while ((line = input_text_line(text, NULL, open_err, sizeof open_err))) {
    line_no++;
    if (line_no == 1) {
      sep = input_guess_delim(line);
      continue; /* header row */
    }
    char *fields[3];
    int n = (int)input_split(line, sep, fields, 3);
    if (n > 3) n = 3;
    for (int i = 0; i < n; i++) fields[i] = ref_trim(fields[i]);
    if (n == 1 && fields[0][0] == '\0') continue;
    if (n < 2 || fields[1][0] == '\0') {
      rctd_fail(err, err_len, "%s: line %d: expected 2 columns (cell type, class)", path, line_no);
      goto done;
    }
    for (int k = 0; k < n_types; k++) {
      if (strcmp(type_names[k], fields[0]) != 0) continue;
      if (classes[k] && strcmp(classes[k], fields[1]) != 0) {
        rctd_fail(err, err_len, "%s: line %d: cell type '%s' is given two classes", path, line_no,
                  fields[0]);
        goto done;
      }
      if (!classes[k] && !(classes[k] = strdup(fields[1]))) {
        rctd_fail(err, err_len, "out of memory");
        goto done;
      }
    }
  }
  if (open_err[0]) {
    rctd_fail(err, err_len, "%s", open_err);
    goto done;
  }
  char list[300] = "";
  int n_missing = 0;
  for (int k = 0; k < n_types; k++) {
    if (classes[k]) continue;
    size_t used = strlen(list);
    if (used + 4 < sizeof list)
      snprintf(list + used, sizeof list - used, "%s%s", n_missing ? ", " : "", type_names[k]);
    n_missing++;
  }
  if (n_missing) {
    rctd_fail(err, err_len, "%s: %d cell type(s) have no class: %s; add a row for each", path,
              n_missing, list);
    goto done;
  }
  *class_names = classes;
  classes = NULL;
  rc = 0;
done:
  rctd_strlist_free(classes, (size_t)n_types);
  input_text_close(text);
  return rc;
}

/* ------------------------------------------------------------ reference stream */

void rctd_reference_data_free(rctd_reference_data *ref) {
  if (!ref) return;
  rctd_strlist_free(ref->type_names, (size_t)ref->n_types);
  rctd_strlist_free(ref->class_names, (size_t)ref->n_types);
  free(ref->type_cells_k);
  rctd_strlist_free(ref->gene_names, (size_t)ref->n_genes);
  free(ref->profiles_gk);
  free(ref->rng_state);
  rctd_strlist_free(ref->config_keys, ref->n_config);
  rctd_strlist_free(ref->config_values, ref->n_config);
  for (size_t i = 0; i < ref->n_extra; i++) rctd_record_free(&ref->extra[i]);
  free(ref->extra);
  memset(ref, 0, sizeof *ref);
}

int rctd_reference_write(rctd_writer *w, const rctd_reference_data *ref) {
  char version[16], n_types[32], n_genes[32];
  snprintf(version, sizeof version, "%d", RCTD_REF_VERSION);
  snprintf(n_types, sizeof n_types, "%d", ref->n_types);
  snprintf(n_genes, sizeof n_genes, "%d", ref->n_genes);
  const char *keys[] = {"format", "version", "n_types", "n_genes"};
  const char *values[] = {RCTD_REF_FORMAT, version, n_types, n_genes};
  if (rctd_write_meta(w, RCTD_REF_REC_META, keys, values, 4) < 0 ||
      rctd_write_meta(w, RCTD_REF_REC_CONFIG, (const char *const *)ref->config_keys,
                      (const char *const *)ref->config_values, ref->n_config) < 0 ||
      rctd_write_string_list(w, RCTD_REF_REC_TYPES, (const char *const *)ref->type_names,
                             (uint64_t)ref->n_types) < 0 ||
      rctd_write_vector(w, RCTD_REF_REC_TYPE_CELLS, RCTD_I64, (uint64_t)ref->n_types,
                        ref->type_cells_k, RCTD_REF_REC_TYPES) < 0 ||
      rctd_write_string_list(w, RCTD_REF_REC_CLASSES, (const char *const *)ref->class_names,
                             (uint64_t)ref->n_types) < 0 ||
      rctd_write_string_list(w, RCTD_REF_REC_GENES, (const char *const *)ref->gene_names,
                             (uint64_t)ref->n_genes) < 0 ||
      rctd_write_dense(w, RCTD_REF_REC_PROFILES, RCTD_F64, (uint64_t)ref->n_genes,
                       (uint64_t)ref->n_types, ref->profiles_gk, RCTD_REF_REC_GENES,
                       RCTD_REF_REC_TYPES) < 0)
    return -1;
  if (ref->n_rng > 0 && rctd_write_vector(w, RCTD_REF_REC_RNG, RCTD_I32, (uint64_t)ref->n_rng,
                                          ref->rng_state, NULL) < 0)
    return -1;
  for (size_t i = 0; i < ref->n_extra; i++)
    if (rctd_write_record(w, &ref->extra[i]) < 0) return -1;
  return 0;
}

enum { R_META, R_CONFIG, R_TYPES, R_CELLS, R_CLASSES, R_GENES, R_PROFILES, R_RNG, R_COUNT };
static const char *const ref_rec_names[R_COUNT] = {
    RCTD_REF_REC_META,    RCTD_REF_REC_CONFIG, RCTD_REF_REC_TYPES,    RCTD_REF_REC_TYPE_CELLS,
    RCTD_REF_REC_CLASSES, RCTD_REF_REC_GENES,  RCTD_REF_REC_PROFILES, RCTD_REF_REC_RNG};

static int ref_from_records(const char *label, rctd_record *recs, const int *have,
                            rctd_reference_data *ref, char *err, size_t err_len) {
  if (!have[R_META])
    return rctd_fail(err, err_len,
                     "%s: not a reference stream (no %s record); make one with rctd-reference",
                     label, RCTD_REF_REC_META);
  const char *format = rctd_record_meta_get(&recs[R_META], "format");
  const char *version = rctd_record_meta_get(&recs[R_META], "version");
  if (!format || strcmp(format, RCTD_REF_FORMAT) != 0)
    return rctd_fail(err, err_len,
                     "%s: not a reference stream (format '%s'); make one with rctd-reference",
                     label, format ? format : "");
  char *end = NULL;
  long v = version ? strtol(version, &end, 10) : -1;
  if (!version || *end || v != RCTD_REF_VERSION)
    return rctd_fail(err, err_len,
                     "%s: reference format version %s, this build reads version %d; rebuild it "
                     "with this rctd-reference",
                     label, version ? version : "?", RCTD_REF_VERSION);
  for (int i = R_CONFIG; i < R_RNG; i++)
    if (!have[i])
      return rctd_fail(err, err_len, "%s: reference record '%s' is missing", label,
                       ref_rec_names[i]);
  for (int i = R_TYPES; i <= R_GENES; i++)
    if (i != R_CELLS && recs[i].kind != RCTD_STRINGS)
      return rctd_fail(err, err_len, "%s: record '%s' is not a strings record", label,
                       ref_rec_names[i]);
  int K = (int)recs[R_TYPES].rows, G = (int)recs[R_GENES].rows;
  rctd_record *cells = &recs[R_CELLS], *prof = &recs[R_PROFILES], *cfg = &recs[R_CONFIG];
  if ((int)recs[R_CLASSES].rows != K || cells->kind != RCTD_DENSE || cells->dtype != RCTD_I64 ||
      (int)cells->rows != K || prof->kind != RCTD_DENSE || prof->dtype != RCTD_F64 ||
      (int)prof->rows != G || (int)prof->cols != K || cfg->kind != RCTD_META)
    return rctd_fail(err, err_len, "%s: reference records disagree on %d types x %d genes", label,
                     K, G);
  if (K < 2 || G < 1)
    return rctd_fail(err, err_len, "%s: reference has %d types and %d genes", label, K, G);
  const char *dup = rctd_strlist_duplicate((const char *const *)recs[R_TYPES].strings, (size_t)K);
  if (dup)
    return rctd_fail(err, err_len, "%s: record '%s': cell type name '%s' appears twice: cell type names must be unique", label,
                     ref_rec_names[R_TYPES], dup);
  ref->n_types = K;
  ref->n_genes = G;
  ref->type_names = recs[R_TYPES].strings, recs[R_TYPES].strings = NULL;
  ref->class_names = recs[R_CLASSES].strings, recs[R_CLASSES].strings = NULL;
  ref->gene_names = recs[R_GENES].strings, recs[R_GENES].strings = NULL;
  ref->type_cells_k = cells->data, cells->data = NULL;
  ref->profiles_gk = prof->data, prof->data = NULL;
  ref->n_config = (size_t)cfg->rows;
  ref->config_keys = calloc(ref->n_config + 1, sizeof *ref->config_keys);
  ref->config_values = calloc(ref->n_config + 1, sizeof *ref->config_values);
  if (!ref->config_keys || !ref->config_values) {
    ref->n_config = 0;
    return rctd_fail(err, err_len, "out of memory");
  }
  for (size_t i = 0; i < ref->n_config; i++) {
    ref->config_keys[i] = strdup(cfg->strings[2 * i]);
    ref->config_values[i] = strdup(cfg->strings[2 * i + 1]);
    if (!ref->config_keys[i] || !ref->config_values[i]) return rctd_fail(err, err_len, "no memory");
  }
  if (have[R_RNG]) {
    rctd_record *rng = &recs[R_RNG];
    if (rng->kind != RCTD_DENSE || rng->dtype != RCTD_I32 || rng->cols != 1)
      return rctd_fail(err, err_len, "%s: record '%s' is not an i32 vector", label,
                       RCTD_REF_REC_RNG);
    ref->n_rng = (int)rng->rows;
    ref->rng_state = rng->data, rng->data = NULL;
  }
  for (size_t i = 0; i < (size_t)G * (size_t)K; i++)
    if (!isfinite(ref->profiles_gk[i]) || ref->profiles_gk[i] < 0)
      return rctd_fail(err, err_len, "%s: profile of gene '%s' is not a finite non-negative number",
                       label, ref->gene_names[i / (size_t)K]);
  return 0;
}

int rctd_reference_load(const char *path, rctd_reference_data *ref, char *err, size_t err_len) {
  memset(ref, 0, sizeof *ref);
  rctd_reader *r = rctd_reader_open(path, err, err_len);
  if (!r) return -1;
  rctd_record recs[R_COUNT];
  int have[R_COUNT] = {0};
  memset(recs, 0, sizeof recs);
  int rc = 0;
  const rctd_record_info *info;
  for (;;) {
    int got = rctd_reader_next(r, &info);
    if (got < 0) {
      rc = rctd_fail(err, err_len, "%s", rctd_reader_error(r));
      break;
    }
    if (got == 0) break;
    int which = -1;
    for (int i = 0; i < R_COUNT && which < 0; i++)
      if (strcmp(info->name, ref_rec_names[i]) == 0) which = i;
    if (which >= 0 && have[which]) {
      rc = rctd_fail(err, err_len, "%s: record '%s' appears twice", rctd_reader_label(r),
                     info->name);
      break;
    }
    rctd_record rec;
    if (rctd_reader_load(r, &rec) < 0) {
      rc = rctd_fail(err, err_len, "%s", rctd_reader_error(r));
      break;
    }
    if (which >= 0) {
      recs[which] = rec;
      have[which] = 1;
      continue;
    }
    rctd_record *grown = realloc(ref->extra, (ref->n_extra + 1) * sizeof *grown);
    if (!grown) {
      rctd_record_free(&rec);
      rc = rctd_fail(err, err_len, "out of memory");
      break;
    }
    ref->extra = grown;
    ref->extra[ref->n_extra++] = rec;
  }
  if (rc == 0) rc = ref_from_records(rctd_reader_label(r), recs, have, ref, err, err_len);
  for (int i = 0; i < R_COUNT; i++)
    if (have[i]) rctd_record_free(&recs[i]);
  rctd_reader_close(r);
  if (rc < 0) rctd_reference_data_free(ref);
  return rc;
}

/* ------------------------------------------------------------ streamed driver */

static void ref_build_warn(void *ctx, const char *message) {
  (void)ctx;
  rctd_log_warn("%s", message);
}

/* Splits a comma-separated list in place into *items (blank names dropped).  Returns the
 * number of names, or -1 when out of memory. */
static int ref_split_list(char *text, char ***items) {
  int n = 1;
  for (char *p = text; *p; p++) n += *p == ',';
  *items = calloc((size_t)n, sizeof **items);
  if (!*items) return -1;
  int k = 0;
  char *save = NULL;
  for (char *tok = strtok_r(text, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
    while (*tok == ' ') tok++;
    char *end = tok + strlen(tok);
    while (end > tok && end[-1] == ' ') *--end = '\0';
    if (*tok) (*items)[k++] = tok;
  }
  return k;
}

/* The effective options, under R's names, as the reference.config record. */
static int ref_set_config(rctd_reference_data *ref, const rctd_reference_opts *o) {
  static const char *const keys[] = {"min_UMI", "n_max_cells", "CELL_MIN_INSTANCE",
                                     "drop_small_types", "seed"};
  enum { N_KEYS = sizeof keys / sizeof *keys };
  char values[N_KEYS][40];
  snprintf(values[0], sizeof values[0], "%.17g", o->min_umi);
  snprintf(values[1], sizeof values[1], "%" PRId64, o->max_cells);
  snprintf(values[2], sizeof values[2], "%" PRId64, o->cell_min);
  snprintf(values[3], sizeof values[3], "%d", o->drop_small_types);
  snprintf(values[4], sizeof values[4], "%" PRId32, o->seed);
  ref->config_keys = calloc(N_KEYS, sizeof *ref->config_keys);
  ref->config_values = calloc(N_KEYS, sizeof *ref->config_values);
  if (!ref->config_keys || !ref->config_values) return -1;
  ref->n_config = N_KEYS;
  for (size_t i = 0; i < N_KEYS; i++) {
    ref->config_keys[i] = strdup(keys[i]);
    ref->config_values[i] = strdup(values[i]);
    if (!ref->config_keys[i] || !ref->config_values[i]) return -1;
  }
  return 0;
}

/* Streams the counts once into the profile accumulator. */
static int ref_accumulate(rctd_input *in, const rctd_ref_cells *cells, const int32_t *codes,
                          const double *numi, rctd_profile_acc *acc, char *err, size_t err_len) {
  rctd_csr_chunk chunk;
  rctd_csr_chunk_init(&chunk);
  rctd_input_rewind(in);
  rctd_progress *progress =
      rctd_progress_start("reference", (uint64_t)rctd_input_n_rows(in), "cells");
  int got;
  while ((got = rctd_input_next_chunk(in, 4096, &chunk, err, err_len)) > 0) {
    for (int64_t r = 0; r < chunk.n_rows; r++) {
      int64_t b = chunk.row_ptr[r];
      rctd_profile_acc_add(acc, cells, codes, numi, chunk.row_begin + r, chunk.row_ptr[r + 1] - b,
                           chunk.gene_idx + b, chunk.values + b);
    }
    rctd_progress_add(progress, (uint64_t)chunk.n_rows);
  }
  rctd_progress_finish(progress);
  rctd_csr_chunk_free(&chunk);
  return got < 0 ? -1 : 0;
}

/* Warns, as Reference() does, when a given nUMI differs from the count sums. */
static int ref_check_numi(rctd_input *in, const rctd_ref_cells *cells, const double *numi,
                          char *err, size_t err_len) {
  const double *sums;
  if (rctd_input_count_sums(in, &sums, err, err_len) < 0) return -1;
  int64_t differ = 0;
  for (int64_t i = 0; i < cells->n_ref; i++)
    differ += numi[cells->ref_rows[i]] != sums[cells->ref_rows[i]];
  if (differ)
    rctd_log_warn("%s: nUMI does not match the count sums for %" PRId64 " cells (fine if intended)",
                  rctd_input_path(in), differ);
  return 0;
}

/* Names, cell counts, genes and profiles of the K profile types; then their classes. */
static int ref_fill_types(rctd_input *in, const rctd_ref_cells *cells, const int32_t *types_k,
                          rctd_profile_acc *acc, const char *class_table, rctd_reference_data *ref,
                          char *err, size_t err_len) {
  const char *const *code_names = rctd_input_cell_type_names(in);
  int K = acc->n_types, G = acc->n_genes;
  ref->n_types = K;
  ref->n_genes = G;
  ref->type_names = calloc((size_t)K, sizeof *ref->type_names);
  ref->type_cells_k = malloc((size_t)K * sizeof *ref->type_cells_k);
  ref->profiles_gk = malloc((size_t)G * (size_t)K * sizeof *ref->profiles_gk);
  ref->gene_names = rctd_strlist_copy(rctd_input_gene_names(in), (size_t)G);
  if (!ref->type_names || !ref->type_cells_k || !ref->gene_names || !ref->profiles_gk) return 1;
  for (int k = 0; k < K; k++) {
    ref->type_names[k] = strdup(code_names[cells->level_code_l[types_k[k]]]);
    ref->type_cells_k[k] = acc->cells_k[k];
    if (!ref->type_names[k]) return 1;
  }
  rctd_profile_acc_finish(acc, ref->profiles_gk);
  if (class_table)
    return rctd_class_table_read(class_table, (const char *const *)ref->type_names, K,
                                 &ref->class_names, err, err_len);
  ref->class_names = rctd_strlist_copy((const char *const *)ref->type_names, (size_t)K);
  return ref->class_names ? 0 : 1;
}

int rctd_reference_build(rctd_input *in, const rctd_reference_build_opts *opts,
                         rctd_reference_data *out, char *err, size_t err_len) {
  memset(out, 0, sizeof *out);
  const char *label = opts->label ? opts->label : rctd_input_path(in);
  rctd_ref_cells cells = {0};
  rctd_profile_acc acc = {0};
  int32_t *types_k = NULL;
  char **subset = NULL, *subset_text = NULL;
  int n_subset = 0, rc = -1;
  char sub[RCTD_ERR_LEN - 64];

  const double *numi;
  if (rctd_input_numi(in, &numi, err, err_len) < 0) goto done;
  int n_codes = rctd_input_n_cell_types(in);
  const char *const *code_names = rctd_input_cell_type_names(in);
  const int32_t *codes = rctd_input_cell_type_codes(in);
  out->rng_state = malloc(RCTD_REF_RNG_WORDS * sizeof *out->rng_state);
  if (!out->rng_state) goto oom;
  out->n_rng = RCTD_REF_RNG_WORDS;
  if (rctd_reference_select(rctd_input_n_rows(in), n_codes, code_names, codes, numi, &opts->select,
                            &cells, out->rng_state, ref_build_warn, NULL, sub, sizeof sub) < 0) {
    rctd_fail(err, err_len, "%s: %s", label, sub);
    goto done;
  }
  if (opts->check_numi && ref_check_numi(in, &cells, numi, err, err_len) < 0) goto done;
  if (opts->cell_types) {
    subset_text = strdup(opts->cell_types);
    if (!subset_text || (n_subset = ref_split_list(subset_text, &subset)) < 0) goto oom;
  }
  types_k = malloc((size_t)cells.n_levels * sizeof *types_k);
  if (!types_k) goto oom;
  int K = rctd_reference_profile_types(&cells, code_names, (const char *const *)subset, n_subset,
                                       types_k, sub, sizeof sub);
  if (K < 0) {
    rctd_fail(err, err_len, "%s: %s", label, sub);
    goto done;
  }
  int G = (int)rctd_input_n_genes(in);
  if (rctd_profile_acc_init(&acc, G, &cells, types_k, K, err, err_len) < 0 ||
      ref_accumulate(in, &cells, codes, numi, &acc, err, err_len) < 0)
    goto done;
  int filled = ref_fill_types(in, &cells, types_k, &acc, opts->class_table, out, err, err_len);
  if (filled < 0) goto done;
  if (filled > 0 || ref_set_config(out, &opts->select) < 0) goto oom;
  rctd_log_info("reference: %" PRId64 " cells, %d genes, %d cell types (%" PRId64 " of %" PRId64
                " cells with nUMI >= %g%s)",
                cells.n_ref, G, K, cells.n_umi_kept, rctd_input_n_rows(in), opts->select.min_umi,
                cells.downsampled ? ", downsampled" : "");
  rc = 0;
  goto done;
oom:
  rctd_fail(err, err_len, "%s: out of memory", label);
done:
  rctd_profile_acc_free(&acc);
  rctd_ref_cells_free(&cells);
  free(types_k);
  free(subset);
  free(subset_text);
  return rc;
}
