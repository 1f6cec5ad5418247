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
#include "reference.h"
#include "rrng.h"

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

int rctd_reference_select(int64_t n_rows, int n_codes, const char *const *code_names,
                          const int32_t *codes_n, const double *numi_n,
                          const rctd_reference_opts *opts, rctd_ref_cells *cells,
                          int32_t *rng_state, rctd_warn_fn warn, void *warn_ctx, char *err,
                          size_t err_len) {
  memset(cells, 0, sizeof *cells);
  cells->n_rows = n_rows;
  if (n_codes < 2)
    return rctd_fail(err, err_len, "the reference needs at least 2 cell types (found %d)", n_codes);
  size_t codes_sz = (size_t)n_codes;
  cells->level_code_l = malloc(codes_sz * sizeof *cells->level_code_l);
  cells->level_cells_l = malloc(codes_sz * sizeof *cells->level_cells_l);
  cells->level_of_code = malloc(codes_sz * sizeof *cells->level_of_code);
  cells->mult_n = calloc((size_t)(n_rows ? n_rows : 1), sizeof *cells->mult_n);
  cells->ref_rows = malloc((size_t)(n_rows ? n_rows : 1) * sizeof *cells->ref_rows);
  int64_t *count_c = calloc(codes_sz, sizeof *count_c);
  int32_t *ref_level_r = malloc((size_t)(n_rows ? n_rows : 1) * sizeof *ref_level_r);
  int64_t *keep = malloc((size_t)(n_rows ? n_rows : 1) * sizeof *keep);
  rctd_rrng rng_storage, *rng = &rng_storage;
  rctd_rrng_seed(rng, opts->seed);
  int rc = -1;
  char list[400] = "";
  if (!cells->level_code_l || !cells->level_cells_l || !cells->level_of_code || !cells->mult_n ||
      !cells->ref_rows || !count_c || !ref_level_r || !keep) {
    rctd_fail(err, err_len, "out of memory selecting reference cells");
    goto done;
  }

  /* 1. min_UMI filter (R keeps labelled cells with nUMI >= min_UMI, in input order). */
  for (int64_t row = 0; row < n_rows; row++) {
    int32_t code = codes_n[row];
    if (code < 0 || code >= n_codes || !(numi_n[row] >= opts->min_umi)) continue;
    cells->ref_rows[cells->n_ref++] = row;
    count_c[code]++;
  }
  cells->n_umi_kept = cells->n_ref;
  if (cells->n_ref == 0) {
    rctd_fail(err, err_len,
              "no cell has nUMI >= min_UMI = %g; lower --min-umi or check the nUMI column",
              opts->min_umi);
    goto done;
  }

  /* 2. Optional drop of small types, before anything random (as if removed from the input). */
  if (opts->drop_small_types) {
    cells->dropped_codes = malloc(codes_sz * sizeof *cells->dropped_codes);
    cells->dropped_cells = malloc(codes_sz * sizeof *cells->dropped_cells);
    if (!cells->dropped_codes || !cells->dropped_cells) {
      rctd_fail(err, err_len, "out of memory selecting reference cells");
      goto done;
    }
    for (int c = 0; c < n_codes; c++) {
      if (count_c[c] >= opts->cell_min) continue;
      ref_list_append(list, sizeof list, code_names[c], count_c[c], cells->n_dropped == 0);
      cells->dropped_codes[cells->n_dropped] = c;
      cells->dropped_cells[cells->n_dropped++] = count_c[c];
      count_c[c] = -1;
    }
    if (cells->n_dropped) {
      int64_t kept = 0;
      for (int64_t i = 0; i < cells->n_ref; i++)
        if (count_c[codes_n[cells->ref_rows[i]]] >= 0) cells->ref_rows[kept++] = cells->ref_rows[i];
      cells->n_ref = kept;
      if (warn) {
        char msg[600];
        snprintf(msg, sizeof msg, "dropping %d cell type(s) with fewer than %lld cells: %s",
                 cells->n_dropped, (long long)opts->cell_min, list);
        warn(warn_ctx, msg);
      }
    }
  }
  /* Without downsampling R keeps empty levels (and then stops on them in step 4). */
  ref_build_levels(cells, n_codes, count_c, 1);
  if (opts->drop_small_types && cells->n_levels < 2) {
    rctd_fail(err, err_len, "fewer than 2 cell types have at least %lld cells; lower --cell-min",
              (long long)opts->cell_min);
    goto done;
  }
  for (int64_t i = 0; i < cells->n_ref; i++)
    ref_level_r[i] = cells->level_of_code[codes_n[cells->ref_rows[i]]];

  /* 3. Reference(): downsample every type when one exceeds n_max_cells. */
  int64_t max_count = 0;
  for (int l = 0; l < cells->n_levels; l++)
    if (cells->level_cells_l[l] > max_count) max_count = cells->level_cells_l[l];
  if (max_count > opts->max_cells) {
    if (warn) {
      char msg[300];
      snprintf(msg, sizeof msg,
               "number of cells per cell type is %lld, larger than maximum allowable of %lld. "
               "Downsampling number of cells to: %lld",
               (long long)max_count, (long long)opts->max_cells, (long long)opts->max_cells);
      warn(warn_ctx, msg);
    }
    int64_t n_keep = 0;
    if (ref_downsample(rng, cells->n_ref, ref_level_r, cells->n_levels, opts->max_cells, keep,
                       &n_keep, err, err_len) < 0)
      goto done;
    /* New reference order = index_keep; a cell can appear twice only through R's
     * single-cell sample() quirk. */
    for (int64_t i = 0; i < n_keep; i++) keep[i] = cells->ref_rows[keep[i] - 1];
    memcpy(cells->ref_rows, keep, (size_t)n_keep * sizeof *keep);
    cells->n_ref = n_keep;
    cells->downsampled = 1;
    for (int c = 0; c < n_codes; c++)
      if (count_c[c] > 0) count_c[c] = 0;
    for (int64_t i = 0; i < n_keep; i++) count_c[codes_n[cells->ref_rows[i]]]++;
    ref_build_levels(cells, n_codes, count_c, 0); /* droplevels */
    for (int64_t i = 0; i < cells->n_ref; i++)
      ref_level_r[i] = cells->level_of_code[codes_n[cells->ref_rows[i]]];
  }

  /* 4. process_cell_type_info: every level needs CELL_MIN_INSTANCE cells. */
  int n_small = 0;
  list[0] = '\0';
  for (int l = 0; l < cells->n_levels; l++) {
    if (cells->level_cells_l[l] >= opts->cell_min) continue;
    ref_list_append(list, sizeof list, code_names[cells->level_code_l[l]], cells->level_cells_l[l],
                    n_small == 0);
    n_small++;
  }
  if (n_small) {
    rctd_fail(err, err_len,
              "need a minimum of %lld cells for each cell type; %d type(s) below: %s; use "
              "--drop-small-types to drop them or lower --cell-min",
              (long long)opts->cell_min, n_small, list);
    goto done;
  }

  /* 5. create.RCTD: create_downsampled_data(reference, n_samples = 5) draws. */
  if (ref_downsample(rng, cells->n_ref, ref_level_r, cells->n_levels, 5, NULL, NULL, err, err_len) <
      0)
    goto done;

  for (int64_t i = 0; i < cells->n_ref; i++) cells->mult_n[cells->ref_rows[i]]++;
  if (rng_state) rctd_rng_state_save(rng, rng_state);
  rc = 0;
done:
  free(count_c);
  free(ref_level_r);
  free(keep);
  if (rc < 0) rctd_ref_cells_free(cells);
  return rc;
}
