/* Space Ranger `outs/` folders as spatial input: the counts of filtered_feature_bc_matrix.h5
 * (raw_feature_bc_matrix.h5 when there is no filtered one) and the spots' positions from
 * spatial/tissue_positions.csv (Space Ranger 2+, with a header line) or
 * spatial/tissue_positions_list.csv (1.x, no header).
 *
 * Coordinates are array_row, array_col as spacexr's read.VisiumSpatialRNA takes them (columns
 * 3-4 of the positions file, named x and y there) unless a coordinates table is given.  Spots
 * with in_tissue = 0 are dropped: the input then presents only the spots under the tissue, in
 * matrix order, through a backend that reads the kept rows of the 10x matrix. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "input_internal.h"

static int sr_is_file(const char *dir, const char *name, char *out, size_t out_size) {
  int len = snprintf(out, out_size, "%s/%s", dir, name);
  if (len < 0 || (size_t)len >= out_size) return 0;
  struct stat st;
  return stat(out, &st) == 0 && S_ISREG(st.st_mode);
}

int input_spaceranger_dir(rctd_input *input, const char *dir_path) {
  char dir[4096], matrix[4200], positions[4200];
  snprintf(dir, sizeof dir, "%s", dir_path); /* dir_path may be input->path, replaced below */
  if (!sr_is_file(dir, "filtered_feature_bc_matrix.h5", matrix, sizeof matrix) &&
      !sr_is_file(dir, "raw_feature_bc_matrix.h5", matrix, sizeof matrix))
    return 0;
  if (!sr_is_file(dir, "spatial/tissue_positions.csv", positions, sizeof positions) &&
      !sr_is_file(dir, "spatial/tissue_positions_list.csv", positions, sizeof positions))
    return 0;
  char *path = strdup(matrix), *pos = strdup(positions);
  if (!path || !pos) {
    free(path);
    free(pos);
    return 0;
  }
  free(input->path);
  input->path = path;
  free(input->tissue_positions);
  input->tissue_positions = pos;
  return 1;
}

/* ---- the kept rows of the matrix ---- */

typedef struct {
  input_backend inner;
  void *inner_state;
  int64_t *row_n; /* kept row -> row of the matrix */
  rctd_csr_chunk part;
} sr_subset;

static int sr_read_rows(void *state, int64_t row_begin, int64_t row_end, rctd_csr_chunk *chunk,
                        char *err, size_t err_size) {
  sr_subset *s = state;
  int64_t n = row_end - row_begin, nnz = 0;
  if (input_chunk_reserve(chunk, n, 0) != 0)
    return input_fail(err, err_size, NULL, "out of memory");
  chunk->row_ptr[0] = 0;
  for (int64_t i = row_begin; i < row_end;) {
    int64_t j = i + 1; /* a run of consecutive matrix rows: one read */
    while (j < row_end && s->row_n[j] == s->row_n[j - 1] + 1) j++;
    s->part.row_begin = s->row_n[i];
    s->part.n_rows = j - i;
    if (s->inner.read_rows(s->inner_state, s->row_n[i], s->row_n[j - 1] + 1, &s->part, err,
                           err_size))
      return -1;
    const int64_t *ptr = s->part.row_ptr;
    int64_t part_nnz = ptr[j - i] - ptr[0];
    if (input_chunk_reserve(chunk, n, nnz + part_nnz) != 0)
      return input_fail(err, err_size, NULL, "out of memory");
    memcpy(chunk->gene_idx + nnz, s->part.gene_idx + ptr[0], (size_t)part_nnz * sizeof(int32_t));
    memcpy(chunk->values + nnz, s->part.values + ptr[0], (size_t)part_nnz * sizeof(double));
    for (int64_t r = 0; r < j - i; r++)
      chunk->row_ptr[i - row_begin + r + 1] = nnz + ptr[r + 1] - ptr[0];
    nnz += part_nnz;
    i = j;
  }
  return 0;
}

static void sr_close(void *state) {
  sr_subset *s = state;
  if (s->inner.close && s->inner_state) s->inner.close(s->inner_state);
  rctd_csr_chunk_free(&s->part);
  free(s->row_n);
  free(s);
}

/* Keeps the rows with keep_n[row] != 0: names, per-row values and the counts backend. */
static int sr_keep_rows(rctd_input *input, const unsigned char *keep_n, char *err,
                        size_t err_size) {
  int64_t n_kept = 0;
  for (int64_t r = 0; r < input->n_rows; r++) n_kept += keep_n[r] != 0;
  if (n_kept == input->n_rows) return 0;
  if (n_kept == 0)
    return input_fail(err, err_size, input->tissue_positions,
                      "no spot of the matrix is in the tissue (in_tissue = 1): check the folder");
  sr_subset *s = calloc(1, sizeof *s);
  input_strings names;
  input_strings_init(&names);
  if (!s || !(s->row_n = malloc((size_t)n_kept * sizeof *s->row_n)) ||
      input_strings_reserve(&names, n_kept) != 0) {
    if (s) free(s->row_n);
    free(s);
    input_strings_free(&names);
    return input_fail(err, err_size, input->path, "out of memory");
  }
  int64_t k = 0;
  for (int64_t r = 0; r < input->n_rows; r++) {
    if (!keep_n[r]) continue;
    s->row_n[k] = r;
    const char *name = input->barcodes.items[r];
    if (input_strings_push(&names, name, strlen(name)) != 0) {
      sr_close(s);
      input_strings_free(&names);
      return input_fail(err, err_size, input->path, "out of memory");
    }
    if (input->coords)
      input->coords[2 * k] = input->coords[2 * r],
                        input->coords[2 * k + 1] = input->coords[2 * r + 1];
    if (input->type_codes) input->type_codes[k] = input->type_codes[r];
    if (input->numi_given) input->numi_given[k] = input->numi_given[r];
    k++;
  }
  input_strings_free(&input->barcodes);
  input->barcodes = names;
  free(input->count_sums);
  input->count_sums = NULL;
  s->inner = input->backend;
  s->inner_state = input->backend_state;
  rctd_csr_chunk_init(&s->part);
  input->backend = (input_backend){sr_read_rows, sr_close};
  input->backend_state = s;
  input->n_rows = n_kept;
  return 0;
}

/* ---- the positions file ---- */

typedef struct {
  const char *name;
  int64_t row;
} sr_key;

static int sr_cmp_key(const void *a, const void *b) {
  return strcmp(((const sr_key *)a)->name, ((const sr_key *)b)->name);
}

static int sr_number(const char *s, double *value) {
  char *end;
  errno = 0;
  *value = strtod(s, &end);
  return *s && *end == '\0' && errno == 0;
}

/* Columns of barcode, in_tissue, array_row, array_col in a header line; -1 when missing. */
static void sr_header_columns(char **fields, int64_t n, int64_t *col_n) {
  static const char *const names[4] = {"barcode", "in_tissue", "array_row", "array_col"};
  for (int c = 0; c < 4; c++) {
    col_n[c] = -1;
    for (int64_t i = 0; i < n && i < 16; i++)
      if (strcmp(fields[i], names[c]) == 0) col_n[c] = i;
  }
}

int input_spaceranger_apply(rctd_input *input, char *err, size_t err_size) {
  const char *path = input->tissue_positions;
  int coords_given = input->options.coords_table != NULL;
  int64_t n = input->n_rows;
  sr_key *keys = malloc((size_t)(n ? n : 1) * sizeof *keys);
  unsigned char *seen_n = calloc((size_t)(n ? n : 1), 1), *keep_n = calloc((size_t)(n ? n : 1), 1);
  double *coords = coords_given ? NULL : malloc((size_t)(2 * (n ? n : 1)) * sizeof *coords);
  input_text *text = keys && seen_n && keep_n && (coords_given || coords)
                         ? input_text_open(path, err, err_size)
                         : NULL;
  int rc = text ? 0 : -1;
  if (!keys || !seen_n || !keep_n || (!coords_given && !coords))
    rc = input_fail(err, err_size, path, "out of memory");
  for (int64_t r = 0; rc == 0 && r < n; r++) keys[r] = (sr_key){input->barcodes.items[r], r};
  if (rc == 0) qsort(keys, (size_t)n, sizeof *keys, sr_cmp_key);
  int64_t col_n[4] = {0, 1, 2, 3}, width = 6;
  char *fields[16];
  size_t len;
  char *line;
  while (rc == 0 && (line = input_text_line(text, &len, err, err_size))) {
    if (len == 0) continue;
    int64_t nf = input_split(line, ',', fields, 16);
    double in_tissue, x, y;
    if (input_text_line_no(text) == 1 && nf >= 4 && !sr_number(fields[1], &in_tissue)) {
      sr_header_columns(fields, nf, col_n);
      width = nf;
      if (col_n[0] < 0) col_n[0] = 0;
      if (col_n[1] < 0 || col_n[2] < 0 || col_n[3] < 0)
        rc = input_fail(err, err_size, path,
                        "header line lacks in_tissue, array_row or array_col: give Space "
                        "Ranger's tissue positions file");
      continue;
    }
    if (nf != width || !sr_number(fields[col_n[1]], &in_tissue) ||
        !sr_number(fields[col_n[2]], &x) || !sr_number(fields[col_n[3]], &y)) {
      rc = input_fail(err, err_size, path,
                      "line %lld: expected %lld fields barcode, in_tissue, array_row, "
                      "array_col, pxl_row, pxl_col with numbers: give Space Ranger's tissue "
                      "positions file",
                      (long long)input_text_line_no(text), (long long)width);
      break;
    }
    sr_key key = {fields[col_n[0]], 0};
    const sr_key *hit = bsearch(&key, keys, (size_t)n, sizeof *keys, sr_cmp_key);
    if (!hit) continue; /* a spot the matrix does not hold */
    seen_n[hit->row] = 1;
    keep_n[hit->row] = in_tissue != 0;
    if (coords) coords[2 * hit->row] = x, coords[2 * hit->row + 1] = y;
  }
  if (rc == 0 && err && err[0]) rc = -1; /* a read error ended the loop */
  for (int64_t r = 0; rc == 0 && r < n; r++)
    if (!seen_n[r])
      rc = input_fail(err, err_size, path,
                      "barcode '%s' of %s has no position: give the positions file of the same "
                      "Space Ranger run",
                      input->barcodes.items[r], input->path);
  if (rc == 0 && coords) {
    free(input->coords);
    input->coords = coords;
    coords = NULL;
  }
  if (rc == 0) rc = sr_keep_rows(input, keep_n, err, err_size);
  if (text) input_text_close(text);
  free(keys);
  free(seen_n);
  free(keep_n);
  free(coords);
  return rc;
}
