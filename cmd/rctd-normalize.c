/* rctd-normalize: pixel filters, DE gene lists and platform-effect normalisation (spacexr
 * create.RCTD() and fitBulk()); writes the model and the pixels to fit. */
#include <stdint.h>
#include <stdio.h>

#include "cli.h"
#include "input.h"
#include "input_cli.h"
#include "model.h"
#include "normalize.h"
#include "reference.h"
#include "stream.h"

static rctd_normalize_opts norm_o;
static int64_t norm_min_genes, norm_bulk_iter;
static const char *norm_class_table;
static rctd_input_cli norm_in;

/* The reader options (rctd_input_cli) are appended at the end. */
static rctd_opt norm_opts[15 + RCTD_INPUT_CLI_MAX_OPTS] = {
    {"umi-min", 0, RCTD_OPT_DOUBLE, &norm_o.umi_min, "100", "keep pixels with nUMI >= X", "UMI_min",
     "X"},
    {"umi-max", 0, RCTD_OPT_DOUBLE, &norm_o.umi_max, "20000000", "and nUMI <= X", "UMI_max", "X"},
    {"counts-min", 0, RCTD_OPT_DOUBLE, &norm_o.counts_min, "10",
     "and at least X counts over all genes, then over the bulk genes", "counts_MIN", "X"},
    {"gene-cutoff", 0, RCTD_OPT_DOUBLE, &norm_o.gene_cutoff, "0.000125",
     "bulk gene list: minimum normalised expression", "gene_cutoff", "X"},
    {"fc-cutoff", 0, RCTD_OPT_DOUBLE, &norm_o.fc_cutoff, "0.5",
     "bulk gene list: minimum log fold change", "fc_cutoff", "X"},
    {"gene-cutoff-reg", 0, RCTD_OPT_DOUBLE, &norm_o.gene_cutoff_reg, "0.0002",
     "regression gene list: minimum normalised expression", "gene_cutoff_reg", "X"},
    {"fc-cutoff-reg", 0, RCTD_OPT_DOUBLE, &norm_o.fc_cutoff_reg, "0.75",
     "regression gene list: minimum log fold change", "fc_cutoff_reg", "X"},
    {"min-obs", 0, RCTD_OPT_DOUBLE, &norm_o.min_obs, "3",
     "gene lists: minimum spatial total of a gene", "MIN_OBS", "X"},
    {"min-genes", 0, RCTD_OPT_I64, &norm_min_genes, "10",
     "fewer genes in a list than N is an error", "min_genes", "N"},
    {"bulk-min-obs", 0, RCTD_OPT_DOUBLE, &norm_o.bulk_min_obs, "10",
     "fitBulk: minimum spatial total of a bulk gene", "bulk_MIN_OBS", "X"},
    {"bulk-max-iter", 0, RCTD_OPT_I64, &norm_bulk_iter, "100", "fitBulk: IRWLS iterations",
     "bulk_n_iter", "N"},
    {"min-change-bulk", 0, RCTD_OPT_DOUBLE, &norm_o.min_change_bulk, "1e-4",
     "fitBulk: convergence threshold", "MIN_CHANGE_BULK", "X"},
    {"block-pixels", 0, RCTD_OPT_I64, &norm_o.block_pixels, "4096",
     "pixels per output block (memory of the later stages)", "block_pixels", "N"},
    {"class-table", 0, RCTD_OPT_STRING, &norm_class_table, NULL,
     "CSV/TSV (header; cell type, class) replacing the reference's classes", "class_table", "FILE"},
    {0}};

static void norm_note_cb(void *ctx, const char *message) {
  (void)ctx;
  rctd_log_info("%s", message);
}

int main(int argc, char **argv) {
  rctd_cli cli = {
      .tool = "rctd-normalize",
      .args_usage = "SPATIAL [REFERENCE]",
      .summary = "pixel filters, DE gene lists and platform normalisation (create.RCTD, fitBulk)",
      .description =
          "Reads spatial counts (h5ad, 10x HDF5, MTX directory or spacexr CSV) and a reference "
          "stream from rctd-reference (REFERENCE, default - = standard input), and writes the "
          "model (gene lists, platform-normalised profiles, bulk proportions, configuration) "
          "followed by the filtered pixels in blocks.",
      .opts = norm_opts,
      .min_args = 1,
      .max_args = 2,
      .has_output = 1,
      .stream_output = 1};
  rctd_normalize_opts_default(&norm_o);
  if (rctd_input_cli_add_opts(&norm_in, "spatial_", "spatial input format", RCTD_INPUT_CLI_COORDS,
                              norm_opts, sizeof norm_opts / sizeof *norm_opts) < 0) {
    fprintf(stderr, "%s: option table too small\n", cli.tool);
    return RCTD_EXIT_RUNTIME;
  }
  int rc = rctd_cli_parse(&cli, argc, argv);
  if (rc != RCTD_CLI_CONTINUE) {
    rctd_cli_free(&cli);
    return rc;
  }
  rctd_input_options in_opts;
  if (rctd_input_cli_options(&norm_in, RCTD_CELL_TYPES_IGNORE, &in_opts) < 0)
    rc = rctd_cli_usage_error(&cli, "option --format: unknown format '%s'", norm_in.format);
  else if (norm_min_genes < 1 || norm_bulk_iter < 1 || norm_o.block_pixels < 1)
    rc = rctd_cli_usage_error(&cli, "--min-genes, --bulk-max-iter and --block-pixels must be >= 1");
  if (rc != RCTD_CLI_CONTINUE) {
    rctd_cli_free(&cli);
    return rc;
  }
  norm_o.min_genes = (int)(norm_min_genes > 1000000 ? 1000000 : norm_min_genes);
  norm_o.bulk_max_iter = (int)(norm_bulk_iter > 1000000 ? 1000000 : norm_bulk_iter);
  const char *spatial_path = cli.args[0];
  const char *ref_path = cli.n_args > 1 ? cli.args[1] : "-";

  char err[RCTD_ERR_LEN];
  rctd_reference_data ref = {0};
  rctd_input *in = NULL;
  rctd_model model = {0};
  rctd_normalize_plan plan = {0};
  rctd_writer *w = NULL;
  rc = RCTD_EXIT_RUNTIME;

  if (rctd_reference_load(ref_path, &ref, err, sizeof err) < 0) goto fail;
  in = rctd_input_open(spatial_path, &in_opts, err, sizeof err);
  if (!in) goto fail;
  if (rctd_normalize_prepare(in, &ref, &norm_o, &model, &plan, norm_note_cb, NULL, err,
                             sizeof err) < 0)
    goto fail;
  if (norm_class_table && rctd_normalize_class_table(&model, norm_class_table, err, sizeof err) < 0)
    goto fail;
  /* The reference's provenance travels with the model. */
  for (size_t i = 0; i < ref.n_extra; i++)
    if (rctd_model_add_extra(&model, &ref.extra[i]) < 0) {
      snprintf(err, sizeof err, "out of memory");
      goto fail;
    }
  ref.n_extra = 0;

  rctd_writer_opts wopts = rctd_cli_writer_opts(&cli);
  w = rctd_writer_open(cli.output, &wopts, err, sizeof err);
  if (!w) goto fail;
  if (rctd_model_write(w, &model) < 0 || rctd_cli_write_provenance(&cli, w) < 0) {
    snprintf(err, sizeof err, "%s", rctd_writer_error(w));
    goto fail;
  }
  if (rctd_normalize_write_pixels(in, &model, &plan, &norm_o, w, err, sizeof err) < 0) goto fail;
  rctd_writer *closing = w;
  w = NULL;
  if (rctd_writer_close(closing, err, sizeof err) < 0) goto fail;
  rc = RCTD_EXIT_OK;
  goto done;
fail:
  rctd_log_error("%s", err);
  if (w) rctd_writer_abort(w);
done:
  rctd_normalize_plan_free(&plan);
  rctd_model_free(&model);
  rctd_reference_data_free(&ref);
  rctd_input_close(in);
  rctd_cli_free(&cli);
  return rc;
}
