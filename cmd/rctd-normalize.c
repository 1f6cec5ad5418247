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
#include "stage_opts.h"
#include "stream.h"

static rctd_normalize_cli norm_c;
static rctd_opt_table norm_t;

static void norm_note_cb(void *ctx, const char *message) {
  (void)ctx;
  rctd_log_info("%s", message);
}

/* The command line: options into norm_c, checked; the reader options into IN_OPTS. */
static int norm_parse(rctd_cli *cli, int argc, char **argv, rctd_input_options *in_opts) {
  rctd_normalize_cli_default(&norm_c);
  if (rctd_normalize_add_opts(&norm_t, &norm_c) < 0) {
    fprintf(stderr, "%s: option table too small\n", cli->tool);
    return RCTD_EXIT_RUNTIME;
  }
  cli->opts = norm_t.opts;
  int rc = rctd_cli_parse(cli, argc, argv);
  if (rc != RCTD_CLI_CONTINUE) return rc;
  if (rctd_input_cli_options(&norm_c.in, RCTD_CELL_TYPES_IGNORE, in_opts) < 0)
    return rctd_cli_usage_error(cli, "option --format: unknown format '%s'", norm_c.in.format);
  if (norm_c.min_genes < 1 || norm_c.bulk_max_iter < 1 || norm_c.o.block_pixels < 1)
    return rctd_cli_usage_error(cli,
                                "--min-genes, --bulk-max-iter and --block-pixels must be >= 1");
  norm_c.o.min_genes = (int)(norm_c.min_genes > 1000000 ? 1000000 : norm_c.min_genes);
  norm_c.o.bulk_max_iter = (int)(norm_c.bulk_max_iter > 1000000 ? 1000000 : norm_c.bulk_max_iter);
  return RCTD_CLI_CONTINUE;
}

/* The model (with the reference's provenance) and the filtered pixels to CLI's output. */
static int norm_write(const rctd_cli *cli, rctd_model *model, const rctd_normalize_plan *plan,
                      char *err, size_t err_len) {
  /* the options the pixel records were encoded with in pass 2: they are copied as they are */
  rctd_writer *w = rctd_writer_open(cli->output, &norm_c.o.pixels_writer, err, err_len);
  if (!w) return -1;
  if (rctd_model_write(w, model) < 0 || rctd_cli_write_provenance(cli, w) < 0) {
    const char *why = rctd_writer_error(w);
    /* the writer had no error: reading the pixel nUMI back from their temporary file failed */
    snprintf(err, err_len, "%s",
             why[0] ? why : "cannot read the temporary file of pixel nUMI back");
    rctd_writer_abort(w);
    return -1;
  }
  if (rctd_normalize_write_pixels(plan, w, err, err_len) < 0) {
    rctd_writer_abort(w);
    return -1;
  }
  return rctd_writer_close(w, err, err_len);
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
      .min_args = 1,
      .max_args = 2,
      .has_output = 1,
      .stream_output = 1};
  rctd_input_options in_opts;
  int rc = norm_parse(&cli, argc, argv, &in_opts);
  if (rc != RCTD_CLI_CONTINUE) {
    rctd_cli_free(&cli);
    return rc;
  }
  const char *spatial_path = cli.args[0];
  const char *ref_path = cli.n_args > 1 ? cli.args[1] : "-";

  char err[RCTD_ERR_LEN];
  rctd_reference_data ref = {0};
  rctd_input *in = NULL;
  rctd_model model = {0};
  rctd_normalize_plan plan = {0};
  rc = RCTD_EXIT_RUNTIME;

  if (rctd_reference_load(ref_path, &ref, err, sizeof err) < 0) goto fail;
  in = rctd_input_open(spatial_path, &in_opts, err, sizeof err);
  if (!in) goto fail;
  norm_c.o.pixels_writer = rctd_cli_writer_opts(&cli);
  if (rctd_normalize_prepare(in, &ref, &norm_c.o, &model, &plan, norm_note_cb, NULL, err,
                             sizeof err) < 0)
    goto fail;
  if (norm_c.class_table &&
      rctd_normalize_class_table(&model, norm_c.class_table, err, sizeof err) < 0)
    goto fail;
  /* The reference's provenance travels with the model. */
  for (size_t i = 0; i < ref.n_extra; i++)
    if (rctd_model_add_extra(&model, &ref.extra[i]) < 0) {
      snprintf(err, sizeof err, "out of memory");
      goto fail;
    }
  ref.n_extra = 0;
  if (norm_write(&cli, &model, &plan, err, sizeof err) < 0) goto fail;
  rc = RCTD_EXIT_OK;
  goto done;
fail:
  rctd_log_error("%s", err);
done:
  rctd_normalize_plan_free(&plan);
  rctd_model_free(&model);
  rctd_reference_data_free(&ref);
  rctd_input_close(in);
  rctd_cli_free(&cli);
  return rc;
}
