/* rctd-reference: cell type profiles from a single-cell reference (spacexr Reference() and
 * the reference half of create.RCTD()), written as a reference stream. */
#include <stdint.h>
#include <stdio.h>

#include "cli.h"
#include "input.h"
#include "input_cli.h"
#include "reference.h"
#include "stage_opts.h"
#include "stream.h"

static rctd_reference_cli ref_c;
static rctd_opt_table ref_t;

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
      .opts = ref_t.opts,
      .min_args = 1,
      .max_args = 1,
      .has_output = 1,
      .stream_output = 1};
  rctd_reference_cli_default(&ref_c);
  if (rctd_reference_add_opts(&ref_t, &ref_c) < 0) {
    fprintf(stderr, "%s: option table too small\n", cli.tool);
    return RCTD_EXIT_RUNTIME;
  }
  int rc = rctd_cli_parse(&cli, argc, argv);
  if (rc != RCTD_CLI_CONTINUE) {
    rctd_cli_free(&cli);
    return rc;
  }
  rctd_input_options in_opts;
  if (rctd_input_cli_options(&ref_c.in, RCTD_CELL_TYPES_REQUIRED, &in_opts) < 0) {
    rc = rctd_cli_usage_error(&cli, "option --format: unknown format '%s'", ref_c.in.format);
    rctd_cli_free(&cli);
    return rc;
  }
  if (ref_c.select.max_cells < 1 || ref_c.select.cell_min < 0 || ref_c.seed < INT32_MIN ||
      ref_c.seed > INT32_MAX) {
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
  ref_c.select.seed = (int32_t)ref_c.seed;
  rctd_reference_build_opts opts = {.select = ref_c.select,
                                    .cell_types = ref_c.cell_types,
                                    .class_table = ref_c.class_table,
                                    .check_numi = ref_c.in.numi_col || ref_c.in.numi_table,
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
