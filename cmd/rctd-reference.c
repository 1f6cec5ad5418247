/* rctd-reference: cell type profiles from a single-cell reference (spacexr Reference() and
 * the reference half of create.RCTD()), written as a reference stream. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "input.h"
#include "input_cli.h"
#include "reference.h"
#include "stream.h"
#include "strlist.h"

static double ref_min_umi;
static int64_t ref_max_cells, ref_cell_min, ref_seed;
static int ref_drop_small;
static const char *ref_cell_types, *ref_class_table;
static rctd_input_cli ref_in;

/* The reader options (rctd_input_cli) are appended at the end. */
static rctd_opt ref_opts[8 + RCTD_INPUT_CLI_MAX_OPTS] = {
    {"min-umi", 0, RCTD_OPT_DOUBLE, &ref_min_umi, "100",
     "keep cells with nUMI >= X (Reference's min_UMI)", "min_UMI", "X"},
    {"max-cells", 0, RCTD_OPT_I64, &ref_max_cells, "10000",
     "cells per type; above it every type is downsampled with R's sample() (n_max_cells)",
     "n_max_cells", "N"},
    {"cell-min", 0, RCTD_OPT_I64, &ref_cell_min, "25",
     "cells a type needs (CELL_MIN_INSTANCE); fewer is an error", "CELL_MIN_INSTANCE", "N"},
    {"drop-small-types", 0, RCTD_OPT_FLAG, &ref_drop_small, "false",
     "drop types with fewer than --cell-min cells (warning) instead of failing", "drop_small_types",
     NULL},
    {"cell-types", 0, RCTD_OPT_STRING, &ref_cell_types, NULL,
     "profile only these types, comma-separated, in this order (cell_type_names)",
     "cell_type_names", "LIST"},
    {"class-table", 0, RCTD_OPT_STRING, &ref_class_table, NULL,
     "CSV/TSV (header; cell type, class) mapping types to classes (class_df)", "class_table",
     "FILE"},
    {"seed", 0, RCTD_OPT_I64, &ref_seed, "1", "R's set.seed() value for the random draws", "seed",
     "N"},
    {0}};

static void ref_warn(void *ctx, const char *message) {
  (void)ctx;
  rctd_log_warn("%s", message);
}

/* Splits a comma-separated list in place. */
static int ref_split_list(char *text, char ***items) {
  int n = 1;
  for (char *p = text; *p; p++) n += *p == ',';
  *items = calloc((size_t)n, sizeof **items);
  if (!*items) return -1;
  int k = 0;
  for (char *tok = strtok(text, ","); tok; tok = strtok(NULL, ",")) {
    while (*tok == ' ') tok++;
    char *end = tok + strlen(tok);
    while (end > tok && end[-1] == ' ') *--end = '\0';
    if (*tok) (*items)[k++] = tok;
  }
  return k;
}

static char *ref_fmt_double(double v) {
  char buf[40];
  snprintf(buf, sizeof buf, "%.17g", v);
  return strdup(buf);
}

static char *ref_fmt_i64(int64_t v) {
  char buf[32];
  snprintf(buf, sizeof buf, "%" PRId64, v);
  return strdup(buf);
}

static int ref_set_config(rctd_reference_data *ref) {
  const char *keys[] = {"min_UMI", "n_max_cells", "CELL_MIN_INSTANCE", "drop_small_types", "seed"};
  size_t n = sizeof keys / sizeof *keys;
  ref->config_keys = calloc(n, sizeof *ref->config_keys);
  ref->config_values = calloc(n, sizeof *ref->config_values);
  if (!ref->config_keys || !ref->config_values) return -1;
  ref->n_config = n;
  char *values[] = {ref_fmt_double(ref_min_umi), ref_fmt_i64(ref_max_cells),
                    ref_fmt_i64(ref_cell_min), ref_fmt_i64(ref_drop_small), ref_fmt_i64(ref_seed)};
  for (size_t i = 0; i < n; i++) {
    ref->config_keys[i] = strdup(keys[i]);
    ref->config_values[i] = values[i];
    if (!ref->config_keys[i] || !values[i]) return -1;
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

int main(int argc, char **argv) {
  rctd_cli cli = {
      .tool = "rctd-reference",
      .args_usage = "REFERENCE",
      .summary = "cell type profiles from a single-cell reference (spacexr Reference())",
      .description =
          "Reads cells x genes counts with cell type labels (h5ad, 10x HDF5, MTX "
          "directory or spacexr CSV) and writes a reference stream: cell types in "
          "the categorical's order, cells per type, gene names and per-type mean "
          "normalised expression (mean over cells of counts / nUMI).",
      .opts = ref_opts,
      .min_args = 1,
      .max_args = 1,
      .has_output = 1,
      .stream_output = 1};
  if (rctd_input_cli_add_opts(&ref_in, "reference_", "input format", RCTD_INPUT_CLI_CELL_TYPES,
                              ref_opts, sizeof ref_opts / sizeof *ref_opts) < 0) {
    fprintf(stderr, "%s: option table too small\n", cli.tool);
    return RCTD_EXIT_RUNTIME;
  }
  int rc = rctd_cli_parse(&cli, argc, argv);
  if (rc != RCTD_CLI_CONTINUE) {
    rctd_cli_free(&cli);
    return rc;
  }
  rctd_input_options in_opts;
  if (rctd_input_cli_options(&ref_in, RCTD_CELL_TYPES_REQUIRED, &in_opts) < 0) {
    rc = rctd_cli_usage_error(&cli, "option --format: unknown format '%s'", ref_in.format);
    rctd_cli_free(&cli);
    return rc;
  }
  if (ref_max_cells < 1 || ref_cell_min < 0 || ref_seed < INT32_MIN || ref_seed > INT32_MAX) {
    rc = rctd_cli_usage_error(&cli,
                              "--max-cells must be >= 1, --cell-min >= 0 and --seed a "
                              "32-bit integer");
    rctd_cli_free(&cli);
    return rc;
  }

  char err[RCTD_ERR_LEN];
  rctd_input *in = NULL;
  rctd_writer *w = NULL;
  rctd_ref_cells cells = {0};
  rctd_profile_acc acc = {0};
  rctd_reference_data ref = {0};
  int32_t *types_k = NULL;
  char **subset = NULL, *subset_text = NULL;
  int n_subset = 0;
  rc = RCTD_EXIT_RUNTIME;

  in = rctd_input_open(cli.args[0], &in_opts, err, sizeof err);
  if (!in) goto fail;
  const double *numi;
  if (rctd_input_numi(in, &numi, err, sizeof err) < 0) goto fail;
  int n_codes = rctd_input_n_cell_types(in);
  const char *const *code_names = rctd_input_cell_type_names(in);
  const int32_t *codes = rctd_input_cell_type_codes(in);
  rctd_reference_opts opts = {.min_umi = ref_min_umi,
                              .max_cells = ref_max_cells,
                              .cell_min = ref_cell_min,
                              .drop_small_types = ref_drop_small,
                              .seed = (int32_t)ref_seed};
  ref.rng_state = malloc(RCTD_REF_RNG_WORDS * sizeof *ref.rng_state);
  if (!ref.rng_state) goto oom;
  ref.n_rng = RCTD_REF_RNG_WORDS;
  char sub[RCTD_ERR_LEN - 64];
  if (rctd_reference_select(rctd_input_n_rows(in), n_codes, code_names, codes, numi, &opts, &cells,
                            ref.rng_state, ref_warn, NULL, sub, sizeof sub) < 0) {
    snprintf(err, sizeof err, "%s: %s", cli.args[0], sub);
    goto fail;
  }
  if (ref_in.numi_col || ref_in.numi_table)
    if (ref_check_numi(in, &cells, numi, err, sizeof err) < 0) goto fail;
  if (ref_cell_types) {
    subset_text = strdup(ref_cell_types);
    if (!subset_text || (n_subset = ref_split_list(subset_text, &subset)) < 0) goto oom;
  }
  types_k = malloc((size_t)cells.n_levels * sizeof *types_k);
  if (!types_k) goto oom;
  int K = rctd_reference_profile_types(&cells, code_names, (const char *const *)subset, n_subset,
                                       types_k, sub, sizeof sub);
  if (K < 0) {
    snprintf(err, sizeof err, "%s: %s", cli.args[0], sub);
    goto fail;
  }
  int G = (int)rctd_input_n_genes(in);
  if (rctd_profile_acc_init(&acc, G, &cells, types_k, K, err, sizeof err) < 0) goto fail;
  if (ref_accumulate(in, &cells, codes, numi, &acc, err, sizeof err) < 0) goto fail;

  ref.n_types = K;
  ref.n_genes = G;
  ref.type_names = calloc((size_t)K, sizeof *ref.type_names);
  ref.type_cells_k = malloc((size_t)K * sizeof *ref.type_cells_k);
  ref.profiles_gk = malloc((size_t)G * (size_t)K * sizeof *ref.profiles_gk);
  ref.gene_names = rctd_strlist_copy(rctd_input_gene_names(in), (size_t)G);
  if (!ref.type_names || !ref.type_cells_k || !ref.gene_names || !ref.profiles_gk) goto oom;
  for (int k = 0; k < K; k++) {
    ref.type_names[k] = strdup(code_names[cells.level_code_l[types_k[k]]]);
    ref.type_cells_k[k] = acc.cells_k[k];
    if (!ref.type_names[k]) goto oom;
  }
  rctd_profile_acc_finish(&acc, ref.profiles_gk);
  if (ref_class_table) {
    if (rctd_class_table_read(ref_class_table, (const char *const *)ref.type_names, K,
                              &ref.class_names, err, sizeof err) < 0)
      goto fail;
  } else {
    ref.class_names = rctd_strlist_copy((const char *const *)ref.type_names, (size_t)K);
    if (!ref.class_names) goto oom;
  }
  if (ref_set_config(&ref) < 0) goto oom;
  rctd_log_info("reference: %" PRId64 " cells, %d genes, %d cell types (%" PRId64 " of %" PRId64
                " cells with nUMI >= %g%s)",
                cells.n_ref, G, K, cells.n_umi_kept, rctd_input_n_rows(in), ref_min_umi,
                cells.downsampled ? ", downsampled" : "");

  rctd_writer_opts wopts = rctd_cli_writer_opts(&cli);
  w = rctd_writer_open(cli.output, &wopts, err, sizeof err);
  if (!w) goto fail;
  if (rctd_reference_write(w, &ref) < 0 || rctd_cli_write_provenance(&cli, w) < 0) {
    snprintf(err, sizeof err, "%s", rctd_writer_error(w));
    goto fail;
  }
  rctd_writer *closing = w;
  w = NULL;
  if (rctd_writer_close(closing, err, sizeof err) < 0) goto fail;
  rc = RCTD_EXIT_OK;
  goto done;
oom:
  snprintf(err, sizeof err, "%s: out of memory", cli.args[0]);
fail:
  rctd_log_error("%s", err);
  if (w) rctd_writer_abort(w);
done:
  rctd_profile_acc_free(&acc);
  rctd_ref_cells_free(&cells);
  rctd_reference_data_free(&ref);
  free(types_k);
  free(subset);
  free(subset_text);
  rctd_input_close(in);
  rctd_cli_free(&cli);
  return rc;
}
