/* Space Ranger outs/ folders as input (lib/io/input_spaceranger.c): built here from the 10x
 * fixture (scripts/make_input_fixtures.py's 6 x 5 matrix) and positions files written by the
 * test, with and without a header, spots off the tissue dropped, bad positions refused. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "input.h"
#include "test.h"

#define FIX "tests/data/input/"

static const double sr_counts[6][5] = {{1, 0, 3, 0, 0}, {0, 2, 0, 0, 5},    {4, 0, 0, 1, 0},
                                       {0, 0, 0, 0, 0}, {7, 8, 0, 0, 1000}, {0, 0, 6, 3, 1}};
static const char *sr_cells[6] = {"AAAC-1", "AAAG-1", "AACT-1", "AAGG-1", "ACGT-1", "AGGA-1"};
static char sr_err[1024];

/* A folder NAME/ with filtered_feature_bc_matrix.h5 and spatial/FILE holding TEXT. */
static const char *sr_folder(const char *name, const char *file, const char *text) {
  static char dir[4096];
  snprintf(dir, sizeof dir, "%s/%s", test_tmp_dir(), name);
  if (test_sh("mkdir -p '%s/spatial' && cp '%s/" FIX "tenx_v3.h5' "
              "'%s/filtered_feature_bc_matrix.h5'",
              dir, test_repo_dir(), dir) != 0)
    return NULL;
  char path[4200];
  snprintf(path, sizeof path, "%s/spatial/%s", dir, file);
  FILE *f = fopen(path, "w");
  if (!f) return NULL;
  fputs(text, f);
  fclose(f);
  return dir;
}

/* Positions of the fixture's cells: array_row = 10 + i, array_col = 20 + 2 i; in_tissue from
 * IN (one char per cell); plus a spot the matrix does not hold. */
static void sr_positions(char *text, size_t size, int header, const char *in) {
  int used = snprintf(text, size, "%s",
                      header ? "barcode,in_tissue,array_row,array_col,pxl_row_in_fullres,"
                               "pxl_col_in_fullres\n"
                             : "");
  used += snprintf(text + used, size - (size_t)used, "TTTT-1,1,0,0,5,5\n");
  for (int i = 5; i >= 0; i--) /* not in matrix order */
    used += snprintf(text + used, size - (size_t)used, "%s,%c,%d,%d,%d,%d\n", sr_cells[i], in[i],
                     10 + i, 20 + 2 * i, 1000 + i, 2000 + i);
}

/* The rows of the input are the fixture's cells KEPT, with their counts and positions. */
static int sr_matches(rctd_input *input, const int *kept, int n_kept, const char **why) {
  if (rctd_input_n_rows(input) != n_kept || rctd_input_n_genes(input) != 5)
    return *why = "shape", 0;
  const double *xy = rctd_input_coords(input);
  if (!xy) return *why = "no coordinates", 0;
  for (int k = 0; k < n_kept; k++) {
    int i = kept[k];
    if (strcmp(rctd_input_barcodes(input)[k], sr_cells[i])) return *why = "barcodes", 0;
    if (xy[2 * k] != 10 + i || xy[2 * k + 1] != 20 + 2 * i) return *why = "coordinates", 0;
  }
  const double *sums;
  if (rctd_input_count_sums(input, &sums, sr_err, sizeof sr_err)) return *why = sr_err, 0;
  for (int64_t chunk_rows = 1; chunk_rows <= 8; chunk_rows *= 2) {
    rctd_csr_chunk c;
    rctd_csr_chunk_init(&c);
    rctd_input_rewind(input);
    int rc, same = 1;
    while ((rc = rctd_input_next_chunk(input, chunk_rows, &c, sr_err, sizeof sr_err)) == 1)
      for (int64_t r = 0; r < c.n_rows; r++) {
        double row[5] = {0};
        for (int64_t p = c.row_ptr[r]; p < c.row_ptr[r + 1]; p++) row[c.gene_idx[p]] = c.values[p];
        int i = kept[c.row_begin + r];
        double total = 0;
        for (int g = 0; g < 5; g++) same &= row[g] == sr_counts[i][g], total += sr_counts[i][g];
        same &= sums[c.row_begin + r] == total;
      }
    rctd_csr_chunk_free(&c);
    if (rc != 0) return *why = sr_err, 0;
    if (!same) return *why = "counts", 0;
  }
  return 1;
}

TEST(input_spaceranger_folder_with_header_drops_spots_off_tissue) {
  char text[2048];
  sr_positions(text, sizeof text, 1, "101011");
  const char *dir = sr_folder("sr_header", "tissue_positions.csv", text);
  CHECK(dir);
  rctd_input *input = rctd_input_open(dir, NULL, sr_err, sizeof sr_err);
  CHECK_MSG(input, "%s", sr_err);
  CHECK(rctd_input_get_format(input) == RCTD_INPUT_10X_H5);
  CHECK(strstr(rctd_input_path(input), "filtered_feature_bc_matrix.h5"));
  const int kept[4] = {0, 2, 4, 5};
  const char *why = "";
  int ok = sr_matches(input, kept, 4, &why);
  rctd_input_close(input);
  CHECK_MSG(ok, "%s", why);
}

TEST(input_spaceranger_folder_without_header_keeps_all_in_tissue) {
  char text[2048];
  sr_positions(text, sizeof text, 0, "111111");
  const char *dir = sr_folder("sr_list", "tissue_positions_list.csv", text);
  CHECK(dir);
  rctd_input *input = rctd_input_open(dir, NULL, sr_err, sizeof sr_err);
  CHECK_MSG(input, "%s", sr_err);
  const int kept[6] = {0, 1, 2, 3, 4, 5};
  const char *why = "";
  int ok = sr_matches(input, kept, 6, &why);
  rctd_input_close(input);
  CHECK_MSG(ok, "%s", why);
}

TEST(input_spaceranger_coords_table_overrides_positions) {
  char text[2048];
  sr_positions(text, sizeof text, 1, "011111");
  const char *dir = sr_folder("sr_table", "tissue_positions.csv", text);
  CHECK(dir);
  char table[4200];
  snprintf(table, sizeof table, "%s/xy.csv", dir);
  FILE *f = fopen(table, "w");
  CHECK(f);
  fputs("barcode,x,y\n", f);
  for (int i = 0; i < 6; i++) fprintf(f, "%s,%d.5,%d\n", sr_cells[i], i, -i);
  fclose(f);
  rctd_input_options o;
  rctd_input_options_init(&o);
  o.coords_table = table;
  rctd_input *input = rctd_input_open(dir, &o, sr_err, sizeof sr_err);
  CHECK_MSG(input, "%s", sr_err);
  int ok = rctd_input_n_rows(input) == 5 && rctd_input_coords(input)[0] == 1.5 &&
           rctd_input_coords(input)[1] == -1 && rctd_input_coords(input)[8] == 5.5;
  rctd_input_close(input);
  CHECK(ok);
}

TEST(input_spaceranger_bad_positions_are_refused) {
  struct {
    const char *name, *text, *message;
  } cases[] = {
      {"sr_missing", "AAAC-1,1,0,0,1,1\n", "barcode 'AAAG-1' of"},
      {"sr_nan",
       "AAAC-1,1,nan,0,1,1\nAAAG-1,1,1,0,1,1\nAACT-1,1,2,0,1,1\nAAGG-1,1,3,0,1,1\n"
       "ACGT-1,1,4,0,1,1\nAGGA-1,1,5,0,1,1\n",
       "not finite"},
      {"sr_short", "AAAC-1,1,0,0\n", "line 1: expected 6 fields"},
      {"sr_none",
       "AAAC-1,0,0,0,1,1\nAAAG-1,0,1,0,1,1\nAACT-1,0,2,0,1,1\nAAGG-1,0,3,0,1,1\n"
       "ACGT-1,0,4,0,1,1\nAGGA-1,0,5,0,1,1\n",
       "no spot of the matrix is in the tissue"},
      {"sr_header", "barcode,tissue,row,col,a,b\nAAAC-1,1,0,0,1,1\n", "header line lacks"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    const char *dir = sr_folder(cases[i].name, "tissue_positions_list.csv", cases[i].text);
    CHECK(dir);
    sr_err[0] = 0;
    rctd_input *input = rctd_input_open(dir, NULL, sr_err, sizeof sr_err);
    if (input) rctd_input_close(input);
    CHECK_MSG(!input && strstr(sr_err, cases[i].message), "%s: %s", cases[i].name, sr_err);
  }
}
