/* Reference stage, the random part: which cells form the reference (spacexr Reference()'s
 * min_UMI filter and downsampling, process_cell_type_info's minimum, create.RCTD's
 * create_downsampled_data draws), with R's random number stream.  See reference.h. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "model.h"
#include "reference_select.h"
#include "rrng.h"

void rctd_reference_opts_default(rctd_reference_opts *opts) {
  opts->min_umi = 100;
  opts->max_cells = 10000;
  opts->cell_min = 25;
  opts->drop_small_types = 0;
  opts->seed = 1;
}

void rctd_ref_cells_free(rctd_ref_cells *cells) {
  if (!cells) return;
  free(cells->level_code_l);
  free(cells->level_cells_l);
  free(cells->level_of_code);
  free(cells->ref_rows);
  free(cells->mult_n);
  free(cells->dropped_codes);
  free(cells->dropped_cells);
  memset(cells, 0, sizeof *cells);
}

/* Appends "name (count)" items to a message buffer, truncating politely. */
static void ref_list_append(char *buf, size_t len, const char *name, int64_t count, int first) {
  size_t used = strlen(buf);
  if (used + 8 >= len) return;
  int n =
      snprintf(buf + used, len - used, "%s%s (%lld)", first ? "" : ", ", name, (long long)count);
  if (n < 0 || used + (size_t)n >= len) snprintf(buf + (len > 5 ? len - 5 : 0), 5, "...");
}

/* R's sample(x, size, replace = FALSE) for a vector x of positions (1-based), appending the
 * chosen values to out.  R quirk kept: a length-one x (with x >= 1) samples from 1:x, as
 * sample() does for a single number. */
static int ref_sample_positions(rctd_rrng *rng, const int64_t *x, int64_t len, int64_t size,
                                int64_t *out, int *picked) {
  if (size <= 0) return 0;
  int64_t n = len == 1 ? x[0] : len;
  if (size > n || n > INT32_MAX) return -1;
  if (rctd_rrng_sample(rng, (int)n, (int)size, picked) < 0) return -1;
  for (int64_t i = 0; i < size; i++) out[i] = len == 1 ? picked[i] : x[picked[i] - 1];
  return 0;
}

/* create_downsampled_data(reference, n_samples): for each level in order, sample(positions of
 * its cells, min(n_samples, count)).  ref_level_r gives the level of each reference position;
 * when keep is not NULL the chosen positions (1-based) are appended to it. */
static int ref_downsample(rctd_rrng *rng, int64_t n_ref, const int32_t *ref_level_r, int n_levels,
                          int64_t n_samples, int64_t *keep, int64_t *n_keep, char *err,
                          size_t err_len) {
  size_t len = (size_t)(n_ref ? n_ref : 1);
  int64_t *pos = malloc(len * sizeof *pos); /* positions (1-based), grouped by level */
  int64_t *start = calloc((size_t)n_levels + 2, sizeof *start);
  int64_t *chosen = malloc(len * sizeof *chosen);
  int *picked = malloc(len * sizeof *picked);
  int rc = 0;
  if (!pos || !start || !chosen || !picked)
    rc = rctd_fail(err, err_len, "out of memory while downsampling");
  if (n_keep) *n_keep = 0;
  if (rc == 0) {
    /* Counting sort of the positions by level, ascending within a level (R's which()). */
    for (int64_t r = 0; r < n_ref; r++) start[ref_level_r[r] + 2]++;
    for (int l = 0; l < n_levels; l++) start[l + 2] += start[l + 1];
    for (int64_t r = 0; r < n_ref; r++) pos[start[ref_level_r[r] + 1]++] = r + 1;
  }
  for (int level = 0; level < n_levels && rc == 0; level++) {
    int64_t count = start[level + 1] - start[level];
    int64_t size = count < n_samples ? count : n_samples;
    if (ref_sample_positions(rng, pos + start[level], count, size, chosen, picked) < 0) {
      rc = rctd_fail(err, err_len, "cannot sample %lld of %lld reference cells", (long long)size,
                     (long long)count);
      break;
    }
    if (keep)
      for (int64_t i = 0; i < size; i++) keep[(*n_keep)++] = chosen[i];
  }
  free(pos);
  free(start);
  free(chosen);
  free(picked);
  return rc;
}

/* Levels present in the reference, in input code order (R's factor levels), after drops. */
static int ref_build_levels(rctd_ref_cells *cells, int n_codes, const int64_t *count_c,
                            int keep_empty) {
  cells->n_levels = 0;
  for (int c = 0; c < n_codes; c++) {
    cells->level_of_code[c] = -1;
    if (count_c[c] < 0 || (!keep_empty && count_c[c] == 0)) continue;
    cells->level_of_code[c] = cells->n_levels;
    cells->level_code_l[cells->n_levels] = c;
    cells->level_cells_l[cells->n_levels] = count_c[c];
    cells->n_levels++;
  }
  return cells->n_levels;
}

/* The state of rctd_reference_select, shared by its steps. */
typedef struct {
  int n_codes;
  const char *const *code_names;
  const int32_t *codes_n;
  const rctd_reference_opts *opts;
  rctd_ref_cells *cells;
  rctd_warn_fn warn;
  void *warn_ctx;
  char *err;
  size_t err_len;
  int64_t *count_c;
  int32_t *ref_level_r;
  int64_t *keep;
  rctd_rrng *rng;
  char list[400];
} ref_select;

/* 1. min_UMI filter (R keeps labelled cells with nUMI >= min_UMI, in input order). */
static int ref_select_min_umi(ref_select *q, const double *numi_n) {
  rctd_ref_cells *cells = q->cells;
  for (int64_t row = 0; row < cells->n_rows; row++) {
    int32_t code = q->codes_n[row];
    if (code < 0 || code >= q->n_codes || !(numi_n[row] >= q->opts->min_umi)) continue;
    cells->ref_rows[cells->n_ref++] = row;
    q->count_c[code]++;
  }
  cells->n_umi_kept = cells->n_ref;
  if (cells->n_ref == 0)
    return rctd_fail(q->err, q->err_len,
                     "no cell has nUMI >= min_UMI = %g; lower --min-umi or check the nUMI column",
                     q->opts->min_umi);
  return 0;
}

/* 2. Optional drop of small types, before anything random (as if removed from the input). */
static int ref_select_drop_small(ref_select *q) {
  rctd_ref_cells *cells = q->cells;
  const rctd_reference_opts *opts = q->opts;
  int64_t *count_c = q->count_c;
  size_t codes_sz = (size_t)q->n_codes;
  cells->dropped_codes = malloc(codes_sz * sizeof *cells->dropped_codes);
  cells->dropped_cells = malloc(codes_sz * sizeof *cells->dropped_cells);
  if (!cells->dropped_codes || !cells->dropped_cells)
    return rctd_fail(q->err, q->err_len, "out of memory selecting reference cells");
  for (int c = 0; c < q->n_codes; c++) {
    if (count_c[c] >= opts->cell_min) continue;
    ref_list_append(q->list, sizeof q->list, q->code_names[c], count_c[c], cells->n_dropped == 0);
    cells->dropped_codes[cells->n_dropped] = c;
    cells->dropped_cells[cells->n_dropped++] = count_c[c];
    count_c[c] = -1;
  }
  if (!cells->n_dropped) return 0;
  int64_t kept = 0;
  for (int64_t i = 0; i < cells->n_ref; i++)
    if (count_c[q->codes_n[cells->ref_rows[i]]] >= 0) cells->ref_rows[kept++] = cells->ref_rows[i];
  cells->n_ref = kept;
  if (q->warn) {
    char msg[600];
    snprintf(msg, sizeof msg, "dropping %d cell type(s) with fewer than %lld cells: %s",
             cells->n_dropped, (long long)opts->cell_min, q->list);
    q->warn(q->warn_ctx, msg);
  }
  return 0;
}

/* ref_level_r of every kept cell from its code. */
static void ref_select_levels_of_cells(ref_select *q) {
  rctd_ref_cells *cells = q->cells;
  for (int64_t i = 0; i < cells->n_ref; i++)
    q->ref_level_r[i] = cells->level_of_code[q->codes_n[cells->ref_rows[i]]];
}

/* 3. Reference(): downsample every type when one exceeds n_max_cells. */
static int ref_select_max_cells(ref_select *q) {
  rctd_ref_cells *cells = q->cells;
  const rctd_reference_opts *opts = q->opts;
  int64_t max_count = 0;
  for (int l = 0; l < cells->n_levels; l++)
    if (cells->level_cells_l[l] > max_count) max_count = cells->level_cells_l[l];
  if (max_count <= opts->max_cells) return 0;
  if (q->warn) {
    char msg[300];
    snprintf(msg, sizeof msg,
             "number of cells per cell type is %lld, larger than maximum allowable of %lld. "
             "Downsampling number of cells to: %lld",
             (long long)max_count, (long long)opts->max_cells, (long long)opts->max_cells);
    q->warn(q->warn_ctx, msg);
  }
  int64_t n_keep = 0, *keep = q->keep;
  if (ref_downsample(q->rng, cells->n_ref, q->ref_level_r, cells->n_levels, opts->max_cells, keep,
                     &n_keep, q->err, q->err_len) < 0)
    return -1;
  /* New reference order = index_keep; a cell can appear twice only through R's
   * single-cell sample() quirk. */
  for (int64_t i = 0; i < n_keep; i++) keep[i] = cells->ref_rows[keep[i] - 1];
  memcpy(cells->ref_rows, keep, (size_t)n_keep * sizeof *keep);
  cells->n_ref = n_keep;
  cells->downsampled = 1;
  for (int c = 0; c < q->n_codes; c++)
    if (q->count_c[c] > 0) q->count_c[c] = 0;
  for (int64_t i = 0; i < n_keep; i++) q->count_c[q->codes_n[cells->ref_rows[i]]]++;
  ref_build_levels(cells, q->n_codes, q->count_c, 0); /* droplevels */
  ref_select_levels_of_cells(q);
  return 0;
}

/* 4. process_cell_type_info: every level needs CELL_MIN_INSTANCE cells. */
static int ref_select_cell_min(ref_select *q) {
  rctd_ref_cells *cells = q->cells;
  int n_small = 0;
  q->list[0] = '\0';
  for (int l = 0; l < cells->n_levels; l++) {
    if (cells->level_cells_l[l] >= q->opts->cell_min) continue;
    ref_list_append(q->list, sizeof q->list, q->code_names[cells->level_code_l[l]],
                    cells->level_cells_l[l], n_small == 0);
    n_small++;
  }
  if (n_small)
    return rctd_fail(q->err, q->err_len,
                     "need a minimum of %lld cells for each cell type; %d type(s) below: %s; use "
                     "--drop-small-types to drop them or lower --cell-min",
                     (long long)q->opts->cell_min, n_small, q->list);
  return 0;
}

/* Steps 1 to 5 on allocated state. */
static int ref_select_run(ref_select *q, const double *numi_n, int32_t *rng_state) {
  rctd_ref_cells *cells = q->cells;
  const rctd_reference_opts *opts = q->opts;
  if (ref_select_min_umi(q, numi_n) < 0) return -1;
  if (opts->drop_small_types && ref_select_drop_small(q) < 0) return -1;
  /* Without downsampling R keeps empty levels (and then stops on them in step 4). */
  ref_build_levels(cells, q->n_codes, q->count_c, 1);
  if (opts->drop_small_types && cells->n_levels < 2)
    return rctd_fail(q->err, q->err_len,
                     "fewer than 2 cell types have at least %lld cells; lower --cell-min",
                     (long long)opts->cell_min);
  ref_select_levels_of_cells(q);
  if (ref_select_max_cells(q) < 0 || ref_select_cell_min(q) < 0) return -1;
  /* 5. create.RCTD: create_downsampled_data(reference, n_samples = 5) draws. */
  if (ref_downsample(q->rng, cells->n_ref, q->ref_level_r, cells->n_levels, 5, NULL, NULL, q->err,
                     q->err_len) < 0)
    return -1;
  for (int64_t i = 0; i < cells->n_ref; i++) cells->mult_n[cells->ref_rows[i]]++;
  if (rng_state) rctd_rng_state_save(q->rng, rng_state);
  return 0;
}

int rctd_reference_select(int64_t n_rows, int n_codes, const char *const *code_names,
                          const int32_t *codes_n, const double *numi_n,
                          const rctd_reference_opts *opts, rctd_ref_cells *cells,
                          int32_t *rng_state, rctd_warn_fn warn, void *warn_ctx, char *err,
                          size_t err_len) {
  memset(cells, 0, sizeof *cells);
  cells->n_rows = n_rows;
  if (n_codes < 2)
    return rctd_fail(err, err_len, "the reference needs at least 2 cell types (found %d)", n_codes);
  size_t codes_sz = (size_t)n_codes, rows_sz = (size_t)(n_rows ? n_rows : 1);
  cells->level_code_l = malloc(codes_sz * sizeof *cells->level_code_l);
  cells->level_cells_l = malloc(codes_sz * sizeof *cells->level_cells_l);
  cells->level_of_code = malloc(codes_sz * sizeof *cells->level_of_code);
  cells->mult_n = calloc(rows_sz, sizeof *cells->mult_n);
  cells->ref_rows = malloc(rows_sz * sizeof *cells->ref_rows);
  rctd_rrng rng;
  rctd_rrng_seed(&rng, opts->seed);
  ref_select q = {.n_codes = n_codes,
                  .code_names = code_names,
                  .codes_n = codes_n,
                  .opts = opts,
                  .cells = cells,
                  .warn = warn,
                  .warn_ctx = warn_ctx,
                  .err = err,
                  .err_len = err_len,
                  .count_c = calloc(codes_sz, sizeof(int64_t)),
                  .ref_level_r = malloc(rows_sz * sizeof(int32_t)),
                  .keep = malloc(rows_sz * sizeof(int64_t)),
                  .rng = &rng};
  int rc = -1;
  if (!cells->level_code_l || !cells->level_cells_l || !cells->level_of_code || !cells->mult_n ||
      !cells->ref_rows || !q.count_c || !q.ref_level_r || !q.keep)
    rctd_fail(err, err_len, "out of memory selecting reference cells");
  else
    rc = ref_select_run(&q, numi_n, rng_state);
  free(q.count_c);
  free(q.ref_level_r);
  free(q.keep);
  if (rc < 0) rctd_ref_cells_free(cells);
  return rc;
}
