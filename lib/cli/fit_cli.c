/* The command line shared by rctd-fit-full, rctd-fit-doublet and rctd-fit-multi: one option
 * table per mode, then lib/fit_stage. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "cuda_select.h"
#include "fit_stage.h"
#include "sigma.h"
#include "stage_opts.h"

static const char *const fit_cli_summary[] = {
    "fit every pixel with all cell types (RCTD full mode)",
    "classify every pixel as singlet or doublet and fit its types (RCTD doublet mode)",
    "fit every pixel with a greedy choice of up to MAX_MULTI_TYPES types (RCTD multi mode)"};

static const char *const fit_cli_description[] = {
    "Reads a model stream (rctd-normalize | rctd-sigma) from STREAM or stdin and writes a result "
    "stream: per pixel the raw (unnormalised) weights of the unconstrained IRWLS fit and its "
    "convergence flag.  Pixels are fitted chunk by chunk; --shard I/N fits one of N equal slices "
    "of the chunks for rctd-merge to gather.  See rctd-fit-full(1) and rctd-stream(5).",
    "Reads a model stream (rctd-normalize | rctd-sigma) from STREAM or stdin and writes a result "
    "stream: per pixel spacexr's results_df (spot_class, first_type, second_type, classes, "
    "scores, convergence flags), the full fit's weights and the doublet weights.  Pixels are "
    "fitted chunk by chunk; --shard I/N fits one of N equal slices of the chunks for rctd-merge "
    "to gather.  See rctd-fit-doublet(1) and rctd-stream(5).",
    "Reads a model stream (rctd-normalize | rctd-sigma) from STREAM or stdin and writes a result "
    "stream: per pixel the selected types, their confidence flags and weights, the score and the "
    "full fit's weights.  A pixel without any candidate type (R stops there) is flagged and the "
    "run goes on.  --shard I/N fits one of N equal slices of the chunks for rctd-merge to gather. "
    " See rctd-fit-multi(1) and rctd-stream(5)."};

/* Checks what the table cannot (shard syntax, sigma on the grid, chunk size): 0, or the usage
 * error's exit status. */
static int fit_cli_check(rctd_cli *cli, rctd_fit_cli *c) {
  char err[RCTD_ERR_LEN];
  rctd_fit_stage_opts *so = &c->o;
  if (rctd_fit_parse_shard(c->shard, &so->shard_index, &so->shard_count, err, sizeof err) < 0)
    return rctd_cli_usage_error(cli, "option --shard: %s", err);
  if (so->sigma != 0 && rctd_sigma_value_of(so->sigma) < 0)
    return rctd_cli_usage_error(cli,
                                "option --sigma: %g is not on the sigma grid (0.10..0.70 by "
                                "0.01, 0.72..2.00 by 0.02)",
                                so->sigma);
  if (so->chunk_pixels < 1)
    return rctd_cli_usage_error(cli, "option --chunk-pixels: must be at least 1");
  return 0;
}

/* Opens the backend and fits IN to the output. */
static int fit_cli_run(rctd_cli *cli, rctd_fit_cli *c) {
  rctd_fit_stage_opts *so = &c->o;
  char err[RCTD_ERR_LEN], note[512] = "";
  so->backend = rctd_backend_open_precision(c->device, c->precision, cli->threads, note,
                                            sizeof note, err, sizeof err);
  if (!so->backend) {
    rctd_log_error("%s", err);
    return RCTD_EXIT_USAGE;
  }
  if (note[0] && strcmp(c->device, "cpu") != 0) rctd_log_info("%s", note);
  const char *in = cli->n_args > 0 ? cli->args[0] : "-";
  int rc = RCTD_EXIT_OK;
  if (rctd_fit_stage_run(in, cli->output, so, err, sizeof err) < 0) {
    rctd_log_error("%s", err);
    rc = RCTD_EXIT_RUNTIME;
  }
  so->backend->destroy(so->backend);
  return rc;
}

int rctd_fit_main(rctd_fit_mode mode, int argc, char **argv) {
  static char tool[32];
  static rctd_fit_cli c;
  static rctd_opt_table t;
  snprintf(tool, sizeof tool, "rctd-fit-%s", rctd_fit_mode_name(mode));
  rctd_fit_cli_default(&c);
  c.o.mode = mode;
  if (rctd_fit_add_opts(&t, &c, mode) < 0) {
    fprintf(stderr, "%s: option table too small\n", tool);
    return RCTD_EXIT_RUNTIME;
  }
  rctd_cli cli = {.tool = tool,
                  .args_usage = "[STREAM]",
                  .summary = fit_cli_summary[mode],
                  .description = fit_cli_description[mode],
                  .opts = t.opts,
                  .min_args = 0,
                  .max_args = 1,
                  .has_output = 1};
  int rc = rctd_cli_parse(&cli, argc, argv);
  if (rc != RCTD_CLI_CONTINUE) return rc;
  c.o.n_threads = cli.threads;
  c.o.progress = !cli.quiet;
  rctd_provenance prov = rctd_cli_provenance(&cli);
  c.o.provenance = &prov;
  rc = fit_cli_check(&cli, &c);
  if (rc == 0) rc = fit_cli_run(&cli, &c);
  rctd_cli_free(&cli);
  return rc;
}
