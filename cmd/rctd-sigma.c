/* rctd-sigma: estimates the likelihood's sigma (spacexr choose_sigma_c) and adds it, with its
 * likelihood table, to the model stream; the pixel records pass through unchanged. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cuda_select.h"
#include "sigma.h"
#include "stage_opts.h"

static rctd_sigma_cli sig_c;
static rctd_opt_table sig_t;

static int sig_parse_number(const char *text, double *v) {
  char *end;
  errno = 0;
  *v = strtod(text, &end);
  return end == text || *end || errno ? -1 : 0;
}

int main(int argc, char **argv) {
  rctd_cli cli = {
      .tool = "rctd-sigma",
      .args_usage = "[MODEL]",
      .summary = "estimate sigma of the likelihood (spacexr choose_sigma_c)",
      .description =
          "Reads a model stream from rctd-normalize (MODEL, default - = standard input), fits "
          "up to N_fit pixels with nUMI > UMI_min_sigma, picked with R's sample(), to choose "
          "sigma as spacexr does, and writes the model with the sigma and its likelihood table "
          "added, followed by the pixel records unchanged.",
      .opts = sig_t.opts,
      .min_args = 0,
      .max_args = 1,
      .has_output = 1,
      .stream_output = 1};
  rctd_sigma_cli_default(&sig_c);
  if (rctd_sigma_add_opts(&sig_t, &sig_c) < 0) {
    fprintf(stderr, "%s: option table too small\n", cli.tool);
    return RCTD_EXIT_RUNTIME;
  }
  rctd_sigma_stage_opts *sig_o = &sig_c.o;
  int rc = rctd_cli_parse(&cli, argc, argv);
  if (rc != RCTD_CLI_CONTINUE) {
    rctd_cli_free(&cli);
    return rc;
  }
  double seed = 0;
  if (sig_c.sigma_text && (sig_parse_number(sig_c.sigma_text, &sig_o->fixed_sigma) < 0 ||
                           rctd_sigma_value_of(sig_o->fixed_sigma) < 0))
    rc = rctd_cli_usage_error(&cli,
                              "option --sigma: '%s' is not on the sigma grid (0.10..0.70 by "
                              "0.01, 0.72..2.00 by 0.02)",
                              sig_c.sigma_text);
  else if (sig_c.seed_text &&
           (sig_parse_number(sig_c.seed_text, &seed) < 0 || seed != (int32_t)seed))
    rc = rctd_cli_usage_error(&cli, "option --seed: '%s' is not an integer", sig_c.seed_text);
  else if (sig_o->sigma.n_fit < 1 || sig_c.n_epoch < 1 || sig_c.n_epoch > 1000000)
    rc = rctd_cli_usage_error(&cli, "--n-fit must be >= 1 and --n-epoch 1..1000000");
  if (rc != RCTD_CLI_CONTINUE) {
    rctd_cli_free(&cli);
    return rc;
  }
  if (sig_c.seed_text) {
    sig_o->have_seed = 1;
    sig_o->seed = (int32_t)seed;
  }
  sig_o->sigma.n_epoch = (int)sig_c.n_epoch;
  sig_o->sigma.n_threads = cli.threads;
  rctd_provenance prov = rctd_cli_provenance(&cli);
  sig_o->provenance = &prov;
  sig_o->writer = rctd_cli_writer_opts(&cli);

  char err[RCTD_ERR_LEN], note[512] = "";
  const char *in_path = cli.n_args > 0 ? cli.args[0] : "-";
  rc = RCTD_EXIT_OK;
  sig_o->backend = rctd_backend_open(sig_c.device, cli.threads, note, sizeof note, err, sizeof err);
  if (!sig_o->backend) {
    rctd_log_error("%s", err);
    rctd_cli_free(&cli);
    return RCTD_EXIT_USAGE;
  }
  if (note[0] && strcmp(sig_c.device, "cpu") != 0) rctd_log_info("%s", note);
  if (rctd_sigma_stage_run(in_path, cli.output, sig_o, err, sizeof err) < 0) {
    rctd_log_error("%s", err);
    rc = RCTD_EXIT_RUNTIME;
  }
  sig_o->backend->destroy(sig_o->backend);
  rctd_cli_free(&cli);
  return rc;
}
