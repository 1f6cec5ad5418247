/* rctd-reference: cell type profiles from a single-cell reference (spacexr Reference() and
 * the reference half of create.RCTD()), written as a reference stream. */
#include <stdint.h>
#include <stdio.h>

#include "cli.h"
#include "input.h"
#include "input_cli.h"
#include "reference.h"
#include "stream.h"

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
  rctd_reference_data ref = {0};
  rctd_writer *w = NULL;
  rc = RCTD_EXIT_RUNTIME;
  rctd_input *in = rctd_input_open(cli.args[0], &in_opts, err, sizeof err);
  if (!in) goto fail;
  rctd_reference_build_opts opts = {.select = {.min_umi = ref_min_umi,
                                               .max_cells = ref_max_cells,
                                               .cell_min = ref_cell_min,
                                               .drop_small_types = ref_drop_small,
                                               .seed = (int32_t)ref_seed},
                                    .cell_types = ref_cell_types,
                                    .class_table = ref_class_table,
                                    .check_numi = ref_in.numi_col || ref_in.numi_table,
                                    .label = cli.args[0]};
  if (rctd_reference_build(in, &opts, &ref, err, sizeof err) < 0) goto fail;

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
fail:
  rctd_log_error("%s", err);
  if (w) rctd_writer_abort(w);
done:
  rctd_reference_data_free(&ref);
  rctd_input_close(in);
  rctd_cli_free(&cli);
  return rc;
}
