/* lib/reference and rctd-reference: cell selection, R's downsampling and random stream,
 * profiles against R, options and bad input. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "reference.h"
#include "stream.h"
#include "test.h"

/* ---------------------------------------------------------------- helpers */

static void ref_test_warn(void *ctx, const char *msg) {
  char *buf = ctx;
  snprintf(buf, 1024, "%s", msg);
}

/* Reads a file of one number per line; returns the count (at most cap). */
static int ref_test_read_numbers(const char *path, double *out, int cap) {
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  int n = 0;
  while (n < cap && fscanf(f, "%lf", &out[n]) == 1) n++;
  fclose(f);
  return n;
}

static int ref_test_read_lines(const char *path, char lines[][64], int cap) {
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  int n = 0;
  while (n < cap && fgets(lines[n], 64, f)) {
    lines[n][strcspn(lines[n], "\r\n")] = '\0';
    n++;
  }
  fclose(f);
  return n;
}

/* Strips the quotes of a CSV field in place. */
static char *ref_test_unquote(char *s) {
  if (*s == '"') {
    s++;
    char *q = strchr(s, '"');
    if (q) *q = '\0';
  }
  return s;
}

/* The synthetic reference: ds_counts.csv (genes x cells) and ds_meta.csv. */
typedef struct {
  int n_genes, n_cells;
  double counts_ng[200 * 12]; /* cells x genes */
  double numi_n[200];
  int32_t codes_n[200];
  char barcodes[200][64];
  char levels[4][64];
} ref_test_ds;

static int ref_test_load_ds(ref_test_ds *ds) {
  char path[512], line[8192];
  const char *dir = "tests/data/reference";
  snprintf(path, sizeof path, "%s/ds_levels.txt", dir);
  if (ref_test_read_lines(path, ds->levels, 4) != 4) return -1;
  snprintf(path, sizeof path, "%s/ds_counts.csv", dir);
  FILE *f = fopen(path, "r");
  if (!f || !fgets(line, sizeof line, f)) return -1;
  ds->n_cells = 0;
  for (char *tok = strtok(line, ",\r\n"); tok; tok = strtok(NULL, ",\r\n"))
    if (strcmp(tok, "\"\"") != 0) ds->n_cells++;
  ds->n_genes = 0;
  while (fgets(line, sizeof line, f)) {
    char *tok = strtok(line, ",\r\n"); /* gene name */
    for (int c = 0; c < ds->n_cells && tok; c++) {
      tok = strtok(NULL, ",\r\n");
      ds->counts_ng[c * 12 + ds->n_genes] = tok ? atof(tok) : NAN;
    }
    ds->n_genes++;
  }
  fclose(f);
  snprintf(path, sizeof path, "%s/ds_meta.csv", dir);
  f = fopen(path, "r");
  if (!f || !fgets(line, sizeof line, f)) return -1;
  int c = 0;
  while (c < ds->n_cells && fgets(line, sizeof line, f)) {
    char *bc = ref_test_unquote(strtok(line, ","));
    char *type = ref_test_unquote(strtok(NULL, ","));
    char *numi = strtok(NULL, ",\r\n");
    snprintf(ds->barcodes[c], sizeof ds->barcodes[c], "%s", bc);
    ds->numi_n[c] = atof(numi);
    ds->codes_n[c] = -1;
    for (int l = 0; l < 4; l++)
      if (strcmp(ds->levels[l], type) == 0) ds->codes_n[c] = l;
    c++;
  }
  fclose(f);
  return ds->n_genes == 12 && c == ds->n_cells ? 0 : -1;
}

/* ---------------------------------------------------------------- unit tests */

TEST(reference_select_min_umi_and_cell_min) {
  /* 3 types; type 1 has 3 cells, one of them exactly at min_UMI (kept) and one just below. */
  const char *names[] = {"alpha", "beta", "gamma"};
  int32_t codes[] = {0, 0, 0, 1, 1, 1, 2, 2, 2, 2, -1};
  double numi[] = {150, 100, 99.5, 200, 300, 400, 100, 100, 100, 100, 1000};
  rctd_reference_opts o;
  rctd_reference_opts_default(&o);
  CHECK(o.min_umi == 100 && o.max_cells == 10000 && o.cell_min == 25 && o.seed == 1);
  o.cell_min = 3;
  rctd_ref_cells cells;
  char err[512], warn[1024] = "";
  int32_t state[RCTD_REF_RNG_WORDS];
  CHECK(rctd_reference_select(11, 3, names, codes, numi, &o, &cells, state, ref_test_warn, warn,
                              err, sizeof err) == -1);
  CHECK_MSG(strstr(err, "alpha (2)") && strstr(err, "minimum of 3"), "%s", err);
  CHECK(!strstr(err, "beta"));

  o.drop_small_types = 1;
  CHECK_MSG(rctd_reference_select(11, 3, names, codes, numi, &o, &cells, state, ref_test_warn, warn,
                                  err, sizeof err) == 0,
            "%s", err);
  CHECK_MSG(strstr(warn, "alpha (2)") != NULL, "%s", warn);
  CHECK(cells.n_levels == 2 && cells.level_code_l[0] == 1 && cells.level_code_l[1] == 2);
  CHECK(cells.level_cells_l[0] == 3 && cells.level_cells_l[1] == 4);
  CHECK(cells.n_umi_kept == 9 && cells.n_ref == 7 && !cells.downsampled);
  CHECK(cells.mult_n[0] == 0 && cells.mult_n[3] == 1 && cells.mult_n[10] == 0);
  CHECK(cells.level_of_code[0] == -1 && cells.level_of_code[2] == 1);

  /* Profile types: a subset in its own order; unknown and repeated names are errors. */
  int32_t types[3];
  const char *subset[] = {"gamma", "beta"};
  CHECK(rctd_reference_profile_types(&cells, names, subset, 2, types, err, sizeof err) == 2);
  CHECK(types[0] == 1 && types[1] == 0);
  const char *unknown[] = {"gamma", "alpha"};
  CHECK(rctd_reference_profile_types(&cells, names, unknown, 2, types, err, sizeof err) == -1);
  CHECK_MSG(strstr(err, "'alpha'") != NULL, "%s", err);
  const char *twice[] = {"beta", "beta"};
  CHECK(rctd_reference_profile_types(&cells, names, twice, 2, types, err, sizeof err) == -1);
  rctd_ref_cells_free(&cells);

  /* Nothing above min_UMI. */
  o.min_umi = 5000;
  CHECK(rctd_reference_select(11, 3, names, codes, numi, &o, &cells, NULL, NULL, NULL, err,
                              sizeof err) == -1);
  CHECK_MSG(strstr(err, "min_UMI") != NULL, "%s", err);
}

TEST(reference_empty_level_is_an_error_without_downsampling) {
  /* R keeps an empty factor level unless it downsamples, and then stops on it. */
  const char *names[] = {"a", "b", "empty"};
  int32_t codes[] = {0, 0, 1, 1};
  double numi[] = {200, 200, 200, 200};
  rctd_reference_opts o;
  rctd_reference_opts_default(&o);
  o.cell_min = 2;
  rctd_ref_cells cells;
  char err[512];
  CHECK(rctd_reference_select(4, 3, names, codes, numi, &o, &cells, NULL, NULL, NULL, err,
                              sizeof err) == -1);
  CHECK_MSG(strstr(err, "empty (0)") != NULL, "%s", err);
  /* With downsampling the level is dropped (droplevels) and the reference is fine. */
  o.max_cells = 1;
  o.cell_min = 1;
  CHECK_MSG(rctd_reference_select(4, 3, names, codes, numi, &o, &cells, NULL, NULL, NULL, err,
                                  sizeof err) == 0,
            "%s", err);
  CHECK(cells.n_levels == 2 && cells.downsampled && cells.n_ref == 2);
  rctd_ref_cells_free(&cells);
}

TEST(reference_profiles_are_means_of_normalised_counts) {
  const char *names[] = {"x", "y"};
  int32_t codes[] = {1, 0, 1, 0, 1};
  double numi[] = {100, 200, 300, 400, 50};
  double counts[5 * 3] = {1, 0, 2, /**/ 4, 4, 0, /**/ 3, 3, 3, /**/ 0, 8, 1, /**/ 5, 5, 5};
  rctd_reference_opts o;
  rctd_reference_opts_default(&o);
  o.cell_min = 2;
  rctd_ref_cells cells;
  char err[512];
  CHECK(rctd_reference_select(5, 2, names, codes, numi, &o, &cells, NULL, NULL, NULL, err,
                              sizeof err) == 0);
  int32_t types[2] = {0, 1};
  double prof[3 * 2];
  CHECK(rctd_reference_profiles_dense(&cells, codes, types, 2, 3, counts, numi, prof, err,
                                      sizeof err) == 0);
  /* Cell 4 (nUMI 50) is below min_UMI. */
  for (int g = 0; g < 3; g++) {
    CHECK(prof[g * 2 + 0] == (counts[1 * 3 + g] / 200 + counts[3 * 3 + g] / 400) / 2);
    CHECK(prof[g * 2 + 1] == (counts[0 * 3 + g] / 100 + counts[2 * 3 + g] / 300) / 2);
  }
  rctd_ref_cells_free(&cells);
}

TEST(reference_downsampling_matches_r) {
  static ref_test_ds ds;
  CHECK(ref_test_load_ds(&ds) == 0);
  const char *names[4] = {ds.levels[0], ds.levels[1], ds.levels[2], ds.levels[3]};
  int seeds[] = {1, 42};
  for (int s = 0; s < 2; s++) {
    rctd_reference_opts o;
    rctd_reference_opts_default(&o);
    o.max_cells = 30;
    o.seed = seeds[s];
    rctd_ref_cells cells;
    char err[512], warn[1024] = "", path[512];
    int32_t state[RCTD_REF_RNG_WORDS];
    CHECK_MSG(rctd_reference_select(ds.n_cells, 4, names, ds.codes_n, ds.numi_n, &o, &cells, state,
                                    ref_test_warn, warn, err, sizeof err) == 0,
              "%s", err);
    CHECK(cells.downsampled && strstr(warn, "Downsampling number of cells to: 30"));
    /* The reference cells in R's order (index_keep). */
    static char want_cells[200][64];
    snprintf(path, sizeof path, "tests/data/reference/ds_cells_seed%d.txt", seeds[s]);
    int n_want = ref_test_read_lines(path, want_cells, 200);
    CHECK(n_want == cells.n_ref);
    for (int i = 0; i < n_want; i++)
      CHECK_MSG(strcmp(ds.barcodes[cells.ref_rows[i]], want_cells[i]) == 0, "cell %d: %s vs %s", i,
                ds.barcodes[cells.ref_rows[i]], want_cells[i]);
    /* R's .Random.seed after Reference() and create.RCTD's draws. */
    double want_state[RCTD_REF_RNG_WORDS + 1];
    snprintf(path, sizeof path, "tests/data/reference/ds_rng_seed%d.txt", seeds[s]);
    CHECK(ref_test_read_numbers(path, want_state, RCTD_REF_RNG_WORDS + 1) == RCTD_REF_RNG_WORDS);
    for (int i = 0; i < RCTD_REF_RNG_WORDS; i++) CHECK(state[i] == (int32_t)want_state[i]);
    /* Profiles: R sums in the sampled order, we in input order (last-bit differences). */
    int32_t types[4] = {0, 1, 2, 3};
    double prof[12 * 4], want[12 * 4];
    CHECK(rctd_reference_profiles_dense(&cells, ds.codes_n, types, 4, 12, ds.counts_ng, ds.numi_n,
                                        prof, err, sizeof err) == 0);
    snprintf(path, sizeof path, "tests/data/reference/ds_profiles_seed%d.txt", seeds[s]);
    CHECK(ref_test_read_numbers(path, want, 48) == 48);
    for (int g = 0; g < 12; g++)
      for (int k = 0; k < 4; k++)
        CHECK_NEAR(prof[g * 4 + k], want[k * 12 + g], 1e-15 * fabs(want[k * 12 + g]));
    rctd_ref_cells_free(&cells);
  }
}

TEST(reference_class_table) {
  char path[512], err[512];
  snprintf(path, sizeof path, "%s/classes.csv", test_tmp_dir());
  FILE *f = fopen(path, "w");
  CHECK(f != NULL);
  fprintf(f,
          "cell_type,class\n\"Bergmann\",Astrocytes\nAstrocytes,Astrocytes\nMLI1,\"MLI\"\n"
          "unused,x\n");
  fclose(f);
  const char *types[] = {"Astrocytes", "Bergmann", "MLI1"};
  char **classes;
  CHECK_MSG(rctd_class_table_read(path, types, 3, &classes, err, sizeof err) == 0, "%s", err);
  CHECK(strcmp(classes[0], "Astrocytes") == 0 && strcmp(classes[1], "Astrocytes") == 0 &&
        strcmp(classes[2], "MLI") == 0);
  for (int k = 0; k < 3; k++) free(classes[k]);
  free(classes);
  const char *more[] = {"Astrocytes", "Purkinje"};
  CHECK(rctd_class_table_read(path, more, 2, &classes, err, sizeof err) == -1);
  CHECK_MSG(strstr(err, "Purkinje") != NULL, "%s", err);
  /* Gzipped, tab-separated, blanks around fields, CRLF line ends: the same classes. */
  snprintf(path, sizeof path, "%s/classes.tsv", test_tmp_dir());
  f = fopen(path, "w");
  CHECK(f != NULL);
  fprintf(f,
          "cell_type\tclass\r\n Bergmann \tAstrocytes\r\nAstrocytes\t Astrocytes\r\n"
          "MLI1\tMLI \r\n");
  fclose(f);
  CHECK(test_sh("gzip -f '%s'", path) == 0);
  strcat(path, ".gz");
  CHECK_MSG(rctd_class_table_read(path, types, 3, &classes, err, sizeof err) == 0, "%s", err);
  int same = strcmp(classes[0], "Astrocytes") == 0 && strcmp(classes[1], "Astrocytes") == 0 &&
             strcmp(classes[2], "MLI") == 0;
  for (int k = 0; k < 3; k++) free(classes[k]);
  free(classes);
  CHECK(same);
  snprintf(path, sizeof path, "%s/no-such-classes.csv", test_tmp_dir());
  CHECK(rctd_class_table_read(path, types, 3, &classes, err, sizeof err) == -1);
  CHECK_MSG(strstr(err, "no-such-classes.csv") && strstr(err, "class table"), "%s", err);
}

/* The library driver behind the tool: the same profiles and random state as R, a subset in its
 * order with its classes, the effective configuration, and errors named by the label. */
TEST(reference_build_vignette) {
  char path[512], classes[512], err[512];
  snprintf(path, sizeof path, "%s/data/vignette/h5ad/reference.h5ad", test_repo_dir());
  snprintf(classes, sizeof classes, "%s/build_classes.csv", test_tmp_dir());
  FILE *f = fopen(classes, "w");
  CHECK(f != NULL);
  fprintf(f, "type,class\n3,glia\n1,glia\n5,neuron\n");
  fclose(f);
  rctd_input_options in_opts;
  rctd_input_options_init(&in_opts);
  in_opts.cell_types = RCTD_CELL_TYPES_REQUIRED;
  in_opts.numi_col = "nUMI";
  rctd_input *in = rctd_input_open(path, &in_opts, err, sizeof err);
  CHECK_MSG(in != NULL, "%s", err);
  if (!in) return;
  rctd_reference_build_opts opts = {.cell_types = " 3, 1 ,5", .class_table = classes};
  rctd_reference_opts_default(&opts.select);
  rctd_reference_data ref;
  rctd_set_quiet(1); /* the summary line */
  int built = rctd_reference_build(in, &opts, &ref, err, sizeof err);
  rctd_set_quiet(0);
  CHECK_MSG(built == 0, "%s", err);
  CHECK(ref.n_types == 3 && ref.n_genes == 384 && ref.n_extra == 0);
  CHECK(strcmp(ref.type_names[0], "3") == 0 && strcmp(ref.type_names[1], "1") == 0 &&
        strcmp(ref.class_names[1], "glia") == 0 && strcmp(ref.class_names[2], "neuron") == 0);
  CHECK(ref.type_cells_k[0] == 25 && ref.type_cells_k[2] == 25);
  static double want[384 * 19];
  CHECK(ref_test_read_numbers("tests/data/reference/vignette_profiles.txt", want, 384 * 19) ==
        384 * 19);
  int cols[3] = {2, 0, 4}, differ = 0;
  for (int g = 0; g < 384; g++)
    for (int k = 0; k < 3; k++) differ += ref.profiles_gk[g * 3 + k] != want[cols[k] * 384 + g];
  CHECK_MSG(differ == 0, "%d profile values differ from R's", differ);
  static double want_state[RCTD_REF_RNG_WORDS];
  CHECK(ref_test_read_numbers("tests/data/reference/vignette_rng_after_create.txt", want_state,
                              RCTD_REF_RNG_WORDS) == RCTD_REF_RNG_WORDS);
  CHECK(ref.n_rng == RCTD_REF_RNG_WORDS);
  for (int i = 0; i < RCTD_REF_RNG_WORDS; i++) CHECK(ref.rng_state[i] == (int32_t)want_state[i]);
  CHECK(ref.n_config == 5 && strcmp(ref.config_keys[0], "min_UMI") == 0 &&
        strcmp(ref.config_values[0], "100") == 0 && strcmp(ref.config_values[1], "10000") == 0 &&
        strcmp(ref.config_keys[4], "seed") == 0 && strcmp(ref.config_values[4], "1") == 0);
  rctd_reference_data_free(&ref);

  opts.cell_types = "3,nosuch";
  opts.label = "REF";
  CHECK(rctd_reference_build(in, &opts, &ref, err, sizeof err) == -1);
  CHECK_MSG(strncmp(err, "REF: ", 5) == 0 && strstr(err, "'nosuch'") != NULL, "%s", err);
  rctd_reference_data_free(&ref);
  rctd_input_close(in);
}

/* ---------------------------------------------------------------- the tool */

TEST_E2E(reference_tool_vignette_matches_r) {
  const char *tmp = test_tmp_dir(), *bin = test_bin_dir(), *repo = test_repo_dir();
  char out[512], err[512];
  snprintf(out, sizeof out, "%s/vignette_ref.rctd", tmp);
  CHECK(test_sh("%s/rctd-reference %s/data/vignette/h5ad/reference.h5ad --numi-col nUMI -q -o %s",
                bin, repo, out) == 0);
  rctd_reference_data ref;
  CHECK_MSG(rctd_reference_load(out, &ref, err, sizeof err) == 0, "%s", err);
  CHECK(ref.n_types == 19 && ref.n_genes == 384);
  for (int k = 0; k < 19; k++) {
    char want[16];
    snprintf(want, sizeof want, "%d", k + 1);
    CHECK(strcmp(ref.type_names[k], want) == 0 && strcmp(ref.class_names[k], want) == 0);
    CHECK(ref.type_cells_k[k] == 25);
  }
  static double want[384 * 19];
  CHECK(ref_test_read_numbers("tests/data/reference/vignette_profiles.txt", want, 384 * 19) ==
        384 * 19);
  int differ = 0;
  for (int g = 0; g < 384; g++)
    for (int k = 0; k < 19; k++) differ += ref.profiles_gk[g * 19 + k] != want[k * 384 + g];
  CHECK_MSG(differ == 0, "%d profile values differ from R's", differ);
  static double want_state[RCTD_REF_RNG_WORDS];
  CHECK(ref_test_read_numbers("tests/data/reference/vignette_rng_after_create.txt", want_state,
                              RCTD_REF_RNG_WORDS) == RCTD_REF_RNG_WORDS);
  CHECK(ref.n_rng == RCTD_REF_RNG_WORDS);
  for (int i = 0; i < RCTD_REF_RNG_WORDS; i++) CHECK(ref.rng_state[i] == (int32_t)want_state[i]);
  CHECK(ref.n_extra == 1 && strcmp(ref.extra[0].name, "provenance.rctd-reference") == 0);

  /* The spacexr CSV files give the same stream content. */
  char csv_out[512];
  snprintf(csv_out, sizeof csv_out, "%s/vignette_ref_csv.rctd", tmp);
  CHECK(test_sh("%s/rctd-reference %s/data/vignette/csv/reference/dge.csv --cell-type-table "
                "%s/data/vignette/csv/reference/meta_data.csv --cell-type-col cluster "
                "--numi-table %s/data/vignette/csv/reference/meta_data.csv --numi-col nUMI -q "
                "-o %s",
                bin, repo, repo, repo, csv_out) == 0);
  rctd_reference_data ref_csv;
  CHECK_MSG(rctd_reference_load(csv_out, &ref_csv, err, sizeof err) == 0, "%s", err);
  CHECK(memcmp(ref_csv.profiles_gk, ref.profiles_gk, sizeof(double) * 384 * 19) == 0);
  CHECK(memcmp(ref_csv.rng_state, ref.rng_state, sizeof(int32_t) * RCTD_REF_RNG_WORDS) == 0);

  /* A subset in its own order: the same columns; a class table. */
  char sub_out[512], classes[512];
  snprintf(sub_out, sizeof sub_out, "%s/vignette_sub.rctd", tmp);
  snprintf(classes, sizeof classes, "%s/vignette_classes.tsv", tmp);
  FILE *f = fopen(classes, "w");
  fprintf(f, "type\tclass\n3\tglia\n1\tglia\n5\tneuron\n");
  fclose(f);
  CHECK(test_sh("%s/rctd-reference %s/data/vignette/h5ad/reference.h5ad --numi-col nUMI -q "
                "--cell-types 3,1,5 --class-table %s -o %s",
                bin, repo, classes, sub_out) == 0);
  rctd_reference_data sub;
  CHECK_MSG(rctd_reference_load(sub_out, &sub, err, sizeof err) == 0, "%s", err);
  CHECK(sub.n_types == 3 && strcmp(sub.type_names[0], "3") == 0 &&
        strcmp(sub.type_names[2], "5") == 0);
  CHECK(strcmp(sub.class_names[1], "glia") == 0 && strcmp(sub.class_names[2], "neuron") == 0);
  int cols[3] = {2, 0, 4};
  for (int g = 0; g < 384; g++)
    for (int k = 0; k < 3; k++)
      CHECK(sub.profiles_gk[g * 3 + k] == ref.profiles_gk[g * 19 + cols[k]]);
  /* The random draws do not depend on the subset (R draws over all reference levels). */
  CHECK(memcmp(sub.rng_state, ref.rng_state, sizeof(int32_t) * RCTD_REF_RNG_WORDS) == 0);
  rctd_reference_data_free(&sub);
  rctd_reference_data_free(&ref_csv);
  rctd_reference_data_free(&ref);
}

TEST_E2E(reference_tool_bad_input) {
  const char *tmp = test_tmp_dir(), *bin = test_bin_dir(), *repo = test_repo_dir();
  char out[512], log[512];
  snprintf(out, sizeof out, "%s/bad_ref.rctd", tmp);
  snprintf(log, sizeof log, "%s/bad_ref.log", tmp);
  const char *cases[] = {
      "--cell-min 30",                    /* every type has 25 cells */
      "--cell-min 30 --drop-small-types", /* ... and dropping them leaves none */
      "--min-umi 1e9",                    /* no cell left */
      "--cell-types 1,99",                /* unknown type */
  };
  const char *expect[] = {"need a minimum of 30 cells", "fewer than 2 cell types",
                          "no cell has nUMI >= min_UMI", "'99'"};
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    int rc = test_sh(
        "%s/rctd-reference %s/data/vignette/h5ad/reference.h5ad --numi-col nUMI %s "
        "-q -o %s 2> %s",
        bin, repo, cases[i], out, log);
    CHECK_MSG(rc != 0, "case %zu exited 0", i);
    CHECK_MSG(test_sh("test \"$(wc -l < '%s')\" -eq 1", log) == 0, "case %zu: stderr lines", i);
    CHECK_MSG(test_sh("grep -q \"^rctd-reference: .*%s\" %s", expect[i], log) == 0,
              "case %zu: message", i);
    CHECK_MSG(test_sh("test ! -e %s", out) == 0, "case %zu left an output", i);
  }
  /* Missing class for a type. */
  char classes[512];
  snprintf(classes, sizeof classes, "%s/partial_classes.csv", tmp);
  FILE *f = fopen(classes, "w");
  fprintf(f, "type,class\n1,a\n");
  fclose(f);
  CHECK(test_sh("%s/rctd-reference %s/data/vignette/h5ad/reference.h5ad --class-table %s -q -o %s "
                "2> %s",
                bin, repo, classes, out, log) != 0);
  CHECK(test_sh("test \"$(wc -l < '%s')\" -eq 1", log) == 0 &&
        test_sh("grep -q 'have no class' %s", log) == 0);
  CHECK(test_sh("test ! -e %s", out) == 0);
}

TEST(reference_single_cell_sample_quirk_matches_r) {
  /* R's sample(x, 1) with x a single position p draws from 1..p: type B's only cell (position
   * 40) is replaced by a random cell of another type, and B disappears (droplevels). */
  static char meta[80][64], want[80][64];
  int n = ref_test_read_lines("tests/data/reference/single_meta.csv", meta, 80) - 1;
  CHECK(n == 66);
  const char *names[] = {"A", "B", "C"};
  int32_t codes[66];
  double numi[66];
  char bc[66][16];
  for (int i = 0; i < n; i++) {
    char *line = meta[i + 1];
    char *b = ref_test_unquote(strtok(line, ","));
    char *t = ref_test_unquote(strtok(NULL, ","));
    snprintf(bc[i], sizeof bc[i], "%s", b);
    codes[i] = (int32_t)(t[0] - 'A');
    numi[i] = atof(strtok(NULL, ",\r\n"));
  }
  rctd_reference_opts o;
  rctd_reference_opts_default(&o);
  o.max_cells = 30;
  o.cell_min = 1;
  o.seed = 3;
  rctd_ref_cells cells;
  char err[512];
  int32_t state[RCTD_REF_RNG_WORDS];
  CHECK_MSG(rctd_reference_select(n, 3, names, codes, numi, &o, &cells, state, NULL, NULL, err,
                                  sizeof err) == 0,
            "%s", err);
  int n_want = ref_test_read_lines("tests/data/reference/single_cells.txt", want, 80);
  CHECK(n_want == cells.n_ref && n_want == 56);
  for (int i = 0; i < n_want; i++) CHECK(strcmp(bc[cells.ref_rows[i]], want[i]) == 0);
  CHECK(cells.n_levels == 2 && cells.level_code_l[1] == 2 && cells.level_cells_l[0] == 31);
  double want_state[RCTD_REF_RNG_WORDS];
  CHECK(ref_test_read_numbers("tests/data/reference/single_rng.txt", want_state,
                              RCTD_REF_RNG_WORDS) == RCTD_REF_RNG_WORDS);
  for (int i = 0; i < RCTD_REF_RNG_WORDS; i++) CHECK(state[i] == (int32_t)want_state[i]);
  rctd_ref_cells_free(&cells);
}
