/* Input readers: every format gives the same known matrix (fixtures from
 * scripts/make_input_fixtures.py), labels/nUMI/coordinates, the vignette h5ad equals the
 * vignette CSVs, and bad inputs are refused with their own messages. */
#include <hdf5.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "input.h"
#include "input_cli.h"
#include "test.h"

#define FIX "tests/data/input/"

/* The fixture matrix (6 cells x 5 genes), as make_input_fixtures.py writes it. */
static const double known_counts[6][5] = {{1, 0, 3, 0, 0}, {0, 2, 0, 0, 5},    {4, 0, 0, 1, 0},
                                          {0, 0, 0, 0, 0}, {7, 8, 0, 0, 1000}, {0, 0, 6, 3, 1}};
static const char *known_cells[6] = {"AAAC-1", "AAAG-1", "AACT-1", "AAGG-1", "ACGT-1", "AGGA-1"};
static const char *known_genes[5] = {"GeneA", "GeneB", "GeneC", "mt-Xyz", "GeneE"};
static const char *known_types[6] = {"beta", "alpha", "beta", "gamma", "alpha", "gamma"};

static char err[1024];

static rctd_input *open_with(const char *path, const rctd_input_options *options) {
  err[0] = '\0';
  return rctd_input_open(path, options, err, sizeof err);
}

static rctd_input *open_plain(const char *path) {
  return open_with(path, NULL);
}

/* Streams the whole input in chunks of chunk_rows into a dense n_rows x n_genes array, checking
 * the chunk invariants on the way.  Returns NULL (err set) on a read error. */
static double *read_dense(rctd_input *input, int64_t chunk_rows) {
  int64_t n_rows = rctd_input_n_rows(input), n_genes = rctd_input_n_genes(input);
  double *dense = calloc((size_t)(n_rows * n_genes), sizeof *dense);
  rctd_csr_chunk chunk;
  rctd_csr_chunk_init(&chunk);
  rctd_input_rewind(input);
  int64_t next = 0;
  int rc;
  while ((rc = rctd_input_next_chunk(input, chunk_rows, &chunk, err, sizeof err)) == 1) {
    if (chunk.row_begin != next || chunk.n_rows > chunk_rows || chunk.row_ptr[0] != 0) rc = -2;
    for (int64_t r = 0; rc == 1 && r < chunk.n_rows; r++)
      for (int64_t p = chunk.row_ptr[r]; p < chunk.row_ptr[r + 1]; p++) {
        if (p > chunk.row_ptr[r] && chunk.gene_idx[p] <= chunk.gene_idx[p - 1]) rc = -2;
        if (chunk.values[p] == 0) rc = -2;
        dense[(chunk.row_begin + r) * n_genes + chunk.gene_idx[p]] = chunk.values[p];
      }
    if (rc == -2) break;
    next += chunk.n_rows;
  }
  rctd_csr_chunk_free(&chunk);
  if (rc == -2) snprintf(err, sizeof err, "chunk invariant broken");
  if (rc != 0 || next != n_rows) {
    free(dense);
    return NULL;
  }
  return dense;
}

/* Checks names and counts against the fixture matrix, for several chunk sizes. */
static int matches_known(rctd_input *input, const char **why) {
  if (rctd_input_n_rows(input) != 6 || rctd_input_n_genes(input) != 5) return *why = "shape", 0;
  for (int i = 0; i < 6; i++)
    if (strcmp(rctd_input_barcodes(input)[i], known_cells[i])) return *why = "barcodes", 0;
  for (int g = 0; g < 5; g++)
    if (strcmp(rctd_input_gene_names(input)[g], known_genes[g])) return *why = "genes", 0;
  const int64_t chunk_sizes[3] = {1, 4, 100};
  for (int c = 0; c < 3; c++) {
    double *dense = read_dense(input, chunk_sizes[c]);
    if (!dense) return *why = err, 0;
    int same = 1;
    for (int i = 0; i < 6; i++)
      for (int g = 0; g < 5; g++) same &= dense[i * 5 + g] == known_counts[i][g];
    free(dense);
    if (!same) return *why = "counts", 0;
  }
  return 1;
}

TEST(input_every_format_reads_the_known_matrix) {
  struct {
    const char *path;
    rctd_input_format format;
  } cases[] = {
      {FIX "csr.h5ad", RCTD_INPUT_H5AD},          {FIX "csc.h5ad", RCTD_INPUT_H5AD},
      {FIX "dense.h5ad", RCTD_INPUT_H5AD},        {FIX "old.h5ad", RCTD_INPUT_H5AD},
      {FIX "tenx_v3.h5", RCTD_INPUT_10X_H5},      {FIX "tenx_v2.h5", RCTD_INPUT_10X_H5},
      {FIX "mtx_v3_gz", RCTD_INPUT_MTX},          {FIX "mtx_v2", RCTD_INPUT_MTX},
      {FIX "mtx_cells_by_genes", RCTD_INPUT_MTX}, {FIX "mtx_v2/matrix.mtx", RCTD_INPUT_MTX},
      {FIX "counts.csv", RCTD_INPUT_CSV},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    rctd_input *input = open_plain(cases[i].path);
    CHECK_MSG(input, "%s: %s", cases[i].path, err);
    CHECK_MSG(rctd_input_get_format(input) == cases[i].format, "%s detected as %s", cases[i].path,
              rctd_input_format_name(rctd_input_get_format(input)));
    const char *why = "";
    int ok = matches_known(input, &why);
    rctd_input_close(input);
    CHECK_MSG(ok, "%s: %s", cases[i].path, why);
  }
}

static int types_are(rctd_input *input, const char *const *levels, int n_levels) {
  if (rctd_input_n_cell_types(input) != n_levels) return 0;
  const char *const *names = rctd_input_cell_type_names(input);
  for (int k = 0; k < n_levels; k++)
    if (strcmp(names[k], levels[k])) return 0;
  const int32_t *codes = rctd_input_cell_type_codes(input);
  for (int i = 0; i < 6; i++)
    if (codes[i] < 0 || strcmp(names[codes[i]], known_types[i])) return 0;
  return 1;
}

TEST(input_format_names_round_trip) {
  const rctd_input_format all[] = {RCTD_INPUT_AUTO, RCTD_INPUT_H5AD, RCTD_INPUT_10X_H5,
                                   RCTD_INPUT_MTX, RCTD_INPUT_CSV};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) {
    rctd_input_format got = RCTD_INPUT_CSV + 1;
    CHECK(rctd_input_format_from_name(rctd_input_format_name(all[i]), &got) == 0);
    CHECK_MSG(got == all[i], "%s read back as %d", rctd_input_format_name(all[i]), (int)got);
  }
  rctd_input_format got = RCTD_INPUT_CSV;
  CHECK(rctd_input_format_from_name(NULL, &got) == 0 && got == RCTD_INPUT_AUTO);
  got = RCTD_INPUT_MTX;
  CHECK(rctd_input_format_from_name("H5AD", &got) < 0 && got == RCTD_INPUT_MTX);
  CHECK(rctd_input_format_from_name("", &got) < 0 && got == RCTD_INPUT_MTX);
}

TEST(input_h5ad_categorical_keeps_category_order) {
  const char *category_order[3] = {"gamma", "beta", "alpha"};
  const char *files[3] = {FIX "csr.h5ad", FIX "csc.h5ad", FIX "old.h5ad"};
  rctd_input_options options;
  rctd_input_options_init(&options);
  options.cell_types = RCTD_CELL_TYPES_REQUIRED;
  for (int f = 0; f < 3; f++) {
    rctd_input *input = open_with(files[f], &options);
    CHECK_MSG(input, "%s", err);
    int ok = types_are(input, category_order, 3);
    rctd_input_close(input);
    CHECK_MSG(ok, "%s: cell types", files[f]);
  }
}

TEST(input_plain_columns_use_factor_order) {
  rctd_input_options options;
  rctd_input_options_init(&options);
  options.cell_types = RCTD_CELL_TYPES_REQUIRED;
  options.cell_type_col = "label"; /* strings, not categorical: sorted like factor() */
  rctd_input *input = open_with(FIX "old.h5ad", &options);
  CHECK_MSG(input, "%s", err);
  const char *sorted[3] = {"alpha", "beta", "gamma"};
  CHECK(types_are(input, sorted, 3));
  rctd_input_close(input);
  options.cell_type_col = "cluster"; /* integers 2 1 2 3 1 3: numeric order */
  input = open_with(FIX "csr.h5ad", &options);
  CHECK_MSG(input, "%s", err);
  CHECK(rctd_input_n_cell_types(input) == 3);
  CHECK(!strcmp(rctd_input_cell_type_names(input)[0], "1"));
  CHECK(!strcmp(rctd_input_cell_type_names(input)[2], "3"));
  CHECK(rctd_input_cell_type_codes(input)[0] == 1 && rctd_input_cell_type_codes(input)[3] == 2);
  rctd_input_close(input);
}

TEST(input_numi_column_or_count_sums) {
  const double sums[6] = {4, 7, 5, 0, 1015, 10};
  rctd_input_options options;
  rctd_input_options_init(&options);
  const char *files[3] = {FIX "csr.h5ad", FIX "dense.h5ad", FIX "old.h5ad"};
  for (int f = 0; f < 3; f++) {
    options.numi_col = NULL;
    rctd_input *input = open_with(files[f], &options);
    CHECK_MSG(input, "%s", err);
    const double *numi;
    CHECK_MSG(rctd_input_numi(input, &numi, err, sizeof err) == 0, "%s", err);
    for (int i = 0; i < 6; i++) CHECK_NEAR(numi[i], sums[i], 0);
    rctd_input_close(input);
    options.numi_col = "nUMI";
    input = open_with(files[f], &options);
    CHECK_MSG(input, "%s", err);
    CHECK(rctd_input_numi(input, &numi, err, sizeof err) == 0);
    for (int i = 0; i < 6; i++) CHECK_NEAR(numi[i], sums[i] + 10, 0);
    const double *count_sums;
    CHECK(rctd_input_count_sums(input, &count_sums, err, sizeof err) == 0);
    CHECK_NEAR(count_sums[4], 1015, 0);
    rctd_input_close(input);
  }
}

TEST(input_coordinates_from_obsm_and_table) {
  rctd_input_options options;
  rctd_input_options_init(&options);
  rctd_input *input = open_with(FIX "csr.h5ad", &options);
  CHECK_MSG(input, "%s", err);
  const double *coords = rctd_input_coords(input);
  CHECK(coords);
  for (int i = 0; i < 6; i++) {
    CHECK_NEAR(coords[2 * i], 1.5 * i, 0);
    CHECK_NEAR(coords[2 * i + 1], -i, 0);
  }
  rctd_input_close(input);
  input = open_with(FIX "tenx_v3.h5", &options);
  CHECK(input && !rctd_input_coords(input) && rctd_input_n_cell_types(input) == 0);
  rctd_input_close(input);
  options.coords_table = FIX "coords.csv";
  input = open_with(FIX "mtx_v3_gz", &options);
  CHECK_MSG(input, "%s", err);
  coords = rctd_input_coords(input);
  CHECK(coords);
  CHECK_NEAR(coords[2 * 5], 7.5, 0);
  CHECK_NEAR(coords[2 * 5 + 1], -5, 0);
  rctd_input_close(input);
}

TEST(input_csv_with_spacexr_tables) {
  rctd_input_options options;
  rctd_input_options_init(&options);
  options.cell_types = RCTD_CELL_TYPES_REQUIRED;
  options.cell_type_table = FIX "meta.csv";
  options.cell_type_col = "cluster";
  options.numi_table = FIX "meta.csv";
  options.numi_col = "nUMI";
  rctd_input *input = open_with(FIX "counts.csv", &options);
  CHECK_MSG(input, "%s", err);
  const char *sorted[3] = {"alpha", "beta", "gamma"};
  CHECK(types_are(input, sorted, 3));
  const double *numi;
  CHECK(rctd_input_numi(input, &numi, err, sizeof err) == 0);
  CHECK_NEAR(numi[4], 1025, 0);
  const char *why = "";
  CHECK_MSG(matches_known(input, &why), "%s", why);
  rctd_input_close(input);
  /* the same table gives labels to a 10x matrix */
  input = open_with(FIX "tenx_v3.h5", &options);
  CHECK_MSG(input, "%s", err);
  CHECK(types_are(input, sorted, 3));
  rctd_input_close(input);
}

TEST(input_h5ad_layer_and_noninteger) {
  rctd_input *input = open_plain(FIX "layer.h5ad");
  CHECK_MSG(input, "%s", err);
  const double *sums;
  CHECK(rctd_input_count_sums(input, &sums, err, sizeof err) == -1);
  CHECK_MSG(strstr(err, "not an integer") && strstr(err, "--allow-noninteger") &&
                strstr(err, "layer.h5ad: "),
            "%s", err);
  rctd_input_close(input);
  rctd_input_options options;
  rctd_input_options_init(&options);
  options.allow_noninteger = 1;
  input = open_with(FIX "layer.h5ad", &options);
  CHECK(input && rctd_input_count_sums(input, &sums, err, sizeof err) == 0);
  CHECK_NEAR(sums[0], 1, 1e-6); /* rows of X were normalised to sum 1 */
  rctd_input_close(input);
  options.allow_noninteger = 0;
  options.layer = "counts";
  input = open_with(FIX "layer.h5ad", &options);
  CHECK_MSG(input, "%s", err);
  const char *why = "";
  CHECK_MSG(matches_known(input, &why), "%s", why);
  rctd_input_close(input);
  options.layer = "raw";
  CHECK(!open_with(FIX "layer.h5ad", &options));
  CHECK_MSG(strstr(err, "no layer 'raw'") && strstr(err, "counts"), "%s", err);
}

TEST(input_10x_gene_names_and_duplicates) {
  rctd_input_options options;
  rctd_input_options_init(&options);
  options.gene_names = "id";
  rctd_input *input = open_with(FIX "tenx_v3.h5", &options);
  CHECK_MSG(input, "%s", err);
  CHECK(rctd_input_n_genes(input) == 5);
  CHECK(!strcmp(rctd_input_gene_names(input)[2], "ENSG03"));
  rctd_input_close(input);
  CHECK(!open_plain(FIX "tenx_dupname.h5"));
  CHECK_MSG(
      strstr(err, "gene name 'GeneA' appears more than once") && strstr(err, "--gene-names id"),
      "%s", err);
  input = open_with(FIX "tenx_dupname.h5", &options);
  CHECK_MSG(input, "%s", err);
  rctd_input_close(input);
  options.gene_names = "symbol";
  CHECK(!open_with(FIX "tenx_v3.h5", &options) && strstr(err, "'id' or 'name'"));
  options.gene_names = "id";
  input = open_with(FIX "mtx_v3_gz", &options);
  CHECK(input && !strcmp(rctd_input_gene_names(input)[4], "ENSG05"));
  rctd_input_close(input);
}

TEST(input_gene_overlap_helper) {
  const char *a[4] = {"x", "y", "z", "w"}, *b[3] = {"z", "q", "x"};
  CHECK(rctd_gene_overlap(a, 4, b, 3) == 2);
  CHECK(rctd_gene_overlap(a, 4, b, 0) == 0);
}

/* ---- the vignette: h5ad (written by anndata) against spacexr's CSVs ---- */

static int64_t find_name(const char *const *names, int64_t n, const char *name) {
  for (int64_t i = 0; i < n; i++)
    if (!strcmp(names[i], name)) return i;
  return -1;
}

/* Same barcodes, genes and counts (matched by name); returns a message or NULL. */
static const char *same_matrix(rctd_input *a, rctd_input *b) {
  int64_t n_rows = rctd_input_n_rows(a), n_genes = rctd_input_n_genes(a);
  if (n_rows != rctd_input_n_rows(b) || n_genes != rctd_input_n_genes(b)) return "shape";
  int64_t *row_of = malloc((size_t)n_rows * sizeof *row_of);
  int64_t *gene_of = malloc((size_t)n_genes * sizeof *gene_of);
  for (int64_t i = 0; i < n_rows; i++)
    row_of[i] = find_name(rctd_input_barcodes(b), n_rows, rctd_input_barcodes(a)[i]);
  for (int64_t g = 0; g < n_genes; g++)
    gene_of[g] = find_name(rctd_input_gene_names(b), n_genes, rctd_input_gene_names(a)[g]);
  double *da = read_dense(a, 64), *db = read_dense(b, 33);
  const char *why = NULL;
  if (!da || !db) why = "read failed";
  for (int64_t i = 0; !why && i < n_rows; i++)
    for (int64_t g = 0; !why && g < n_genes; g++)
      if (row_of[i] < 0 || gene_of[g] < 0)
        why = "names differ";
      else if (da[i * n_genes + g] != db[row_of[i] * n_genes + gene_of[g]])
        why = "counts differ";
  free(da);
  free(db);
  free(row_of);
  free(gene_of);
  return why;
}

TEST(input_vignette_h5ad_equals_csv_reference) {
  char h5ad[1024], csv_dir[1024];
  snprintf(h5ad, sizeof h5ad, "%s/data/vignette/h5ad/reference.h5ad", test_repo_dir());
  snprintf(csv_dir, sizeof csv_dir, "%s/data/vignette/csv/reference", test_repo_dir());
  rctd_input_options options;
  rctd_input_options_init(&options);
  options.cell_types = RCTD_CELL_TYPES_REQUIRED;
  options.numi_col = "nUMI";
  rctd_input *a = open_with(h5ad, &options);
  CHECK_MSG(a, "%s", err);
  options.cell_type_col = "cluster"; /* spacexr's meta_data.csv: barcode, cluster, nUMI */
  rctd_input *b = open_with(csv_dir, &options); /* the directory: dge.csv + meta_data.csv */
  CHECK_MSG(b, "%s", err);
  CHECK(rctd_input_get_format(b) == RCTD_INPUT_CSV);
  CHECK(rctd_input_n_rows(a) == 475 && rctd_input_n_genes(a) == 384);
  const char *why = same_matrix(a, b);
  CHECK_MSG(!why, "%s", why);
  /* 19 types "1".."19" in numeric order in both */
  CHECK(rctd_input_n_cell_types(a) == 19 && rctd_input_n_cell_types(b) == 19);
  for (int k = 0; k < 19; k++) {
    char level[16];
    snprintf(level, sizeof level, "%d", k + 1);
    CHECK(!strcmp(rctd_input_cell_type_names(a)[k], level));
    CHECK(!strcmp(rctd_input_cell_type_names(b)[k], level));
  }
  const double *numi_a, *numi_b;
  CHECK(rctd_input_numi(a, &numi_a, err, sizeof err) == 0);
  CHECK(rctd_input_numi(b, &numi_b, err, sizeof err) == 0);
  int64_t differ_from_sums = 0;
  const double *sums;
  CHECK(rctd_input_count_sums(a, &sums, err, sizeof err) == 0);
  for (int64_t i = 0; i < 475; i++) {
    int64_t j = find_name(rctd_input_barcodes(b), 475, rctd_input_barcodes(a)[i]);
    CHECK(rctd_input_cell_type_codes(a)[i] == rctd_input_cell_type_codes(b)[j]);
    CHECK_NEAR(numi_a[i], numi_b[j], 0);
    differ_from_sums += numi_a[i] != sums[i];
  }
  CHECK(differ_from_sums > 0); /* the given nUMI is not the count sum in this dataset */
  rctd_input_close(a);
  rctd_input_close(b);
}

TEST(input_vignette_h5ad_equals_csv_spatial) {
  char h5ad[1024], csv_dir[1024];
  snprintf(h5ad, sizeof h5ad, "%s/data/vignette/h5ad/spatial.h5ad", test_repo_dir());
  snprintf(csv_dir, sizeof csv_dir, "%s/data/vignette/csv/spatial", test_repo_dir());
  rctd_input *a = open_plain(h5ad);
  CHECK_MSG(a, "%s", err);
  rctd_input *b = open_plain(csv_dir); /* MappedDGEForR.csv + BeadLocationsForR.csv */
  CHECK_MSG(b, "%s", err);
  CHECK(rctd_input_n_rows(a) == 100 && rctd_input_n_genes(a) == 378);
  const char *why = same_matrix(a, b);
  CHECK_MSG(!why, "%s", why);
  CHECK(rctd_input_coords(a) && rctd_input_coords(b));
  const double *numi_a, *numi_b;
  CHECK(rctd_input_numi(a, &numi_a, err, sizeof err) == 0);
  CHECK(rctd_input_numi(b, &numi_b, err, sizeof err) == 0);
  for (int64_t i = 0; i < 100; i++) {
    int64_t j = find_name(rctd_input_barcodes(b), 100, rctd_input_barcodes(a)[i]);
    CHECK(j >= 0);
    CHECK_NEAR(rctd_input_coords(a)[2 * i], rctd_input_coords(b)[2 * j], 1e-9);
    CHECK_NEAR(rctd_input_coords(a)[2 * i + 1], rctd_input_coords(b)[2 * j + 1], 1e-9);
    CHECK_NEAR(numi_a[i], numi_b[j], 0);
  }
  rctd_input_close(a);
  rctd_input_close(b);
}

TEST(input_visium_tissue_positions) {
  /* Space Ranger 1 (no header) and 2 (header): spacexr takes array_row, array_col as x, y */
  const char *dir = test_tmp_dir();
  char v1[1024], v2[1024];
  snprintf(v1, sizeof v1, "%s/tissue_positions_list.csv", dir);
  snprintf(v2, sizeof v2, "%s/tissue_positions.csv", dir);
  FILE *f1 = fopen(v1, "w"), *f2 = fopen(v2, "w");
  CHECK(f1 && f2);
  fprintf(f2, "barcode,in_tissue,array_row,array_col,pxl_row_in_fullres,pxl_col_in_fullres\n");
  for (int i = 0; i < 6; i++) {
    fprintf(f1, "%s,1,%d,%d,%d,%d\n", known_cells[i], 10 + i, 20 + i, 1000 + i, 2000 + i);
    fprintf(f2, "%s,1,%d,%d,%d,%d\n", known_cells[i], 10 + i, 20 + i, 1000 + i, 2000 + i);
  }
  fclose(f1);
  fclose(f2);
  rctd_input_options options;
  rctd_input_options_init(&options);
  const char *tables[2] = {v1, v2};
  for (int t = 0; t < 2; t++) {
    options.coords_table = tables[t];
    rctd_input *input = open_with(FIX "tenx_v3.h5", &options);
    CHECK_MSG(input, "%s", err);
    const double *coords = rctd_input_coords(input);
    for (int i = 0; i < 6; i++) {
      CHECK_NEAR(coords[2 * i], 10 + i, 0);
      CHECK_NEAR(coords[2 * i + 1], 20 + i, 0);
    }
    rctd_input_close(input);
  }
}

TEST(input_cli_options_have_prefixed_keys_and_fill_the_reader_options) {
  static rctd_input_cli v;
  rctd_opt opts[4 + RCTD_INPUT_CLI_MAX_OPTS] = {
      {"seed", 0, RCTD_OPT_I64, NULL, "1", "seed", NULL, NULL}};
  CHECK(rctd_input_cli_add_opts(&v, "spatial_", "spatial input format", RCTD_INPUT_CLI_COORDS, opts,
                                sizeof opts / sizeof *opts) == 0);
  const char *want[][2] = {{"seed", NULL},
                           {"format", "spatial_format"},
                           {"numi-col", "spatial_numi_col"},
                           {"numi-table", "spatial_numi_table"},
                           {"coords-table", "coords_table"},
                           {"layer", "spatial_layer"},
                           {"gene-names", "spatial_gene_names"},
                           {"allow-noninteger", "spatial_allow_noninteger"},
                           {"tmp-dir", NULL},
                           {NULL, NULL}};
  for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
    CHECK_MSG((!opts[i].name && !want[i][0]) ||
                  (opts[i].name && want[i][0] && strcmp(opts[i].name, want[i][0]) == 0),
              "entry %zu: %s, expected %s", i, opts[i].name, want[i][0]);
    if (!want[i][0]) break;
    CHECK_MSG((!opts[i].config_key && !want[i][1]) ||
                  (opts[i].config_key && want[i][1] && strcmp(opts[i].config_key, want[i][1]) == 0),
              "%s: config key %s", want[i][0], opts[i].config_key);
  }
  CHECK(strcmp(opts[1].help, "spatial input format: auto, h5ad, 10x-h5, mtx, csv") == 0);
  CHECK(strcmp(opts[1].default_value, "auto") == 0);
  /* No room left for another group: refused. */
  rctd_opt small[3] = {{"seed", 0, RCTD_OPT_I64, NULL, "1", "seed", NULL, NULL}};
  CHECK(rctd_input_cli_add_opts(&v, "x_", "input format", 0, small, 3) < 0);

  v.format = "10x-h5";
  v.numi_col = "n";
  v.coords_table = "xy.csv";
  v.allow_noninteger = 1;
  rctd_input_options o;
  CHECK(rctd_input_cli_options(&v, RCTD_CELL_TYPES_IGNORE, &o) == 0);
  CHECK(o.format == RCTD_INPUT_10X_H5 && o.cell_types == RCTD_CELL_TYPES_IGNORE);
  CHECK(o.numi_col == v.numi_col && o.coords_table == v.coords_table && o.allow_noninteger == 1);
  CHECK(!o.cell_type_col && !o.layer && !o.tmp_dir);
  v.format = "loom";
  CHECK(rctd_input_cli_options(&v, RCTD_CELL_TYPES_IGNORE, &o) < 0);
}
