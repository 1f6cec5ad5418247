/* rctd-sigma: estimates the likelihood's sigma (spacexr choose_sigma_c) and adds it, with its
 * likelihood table, to the model stream; the pixel records pass through unchanged. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cuda_select.h"
#include "sigma.h"

static rctd_sigma_stage_opts sig_o;
static int64_t sig_n_fit, sig_n_epoch;
static const char *sig_sigma_text, *sig_seed_text, *sig_cache_dir, *sig_tmp_dir, *sig_device;

static rctd_opt sig_opts[] = {
    {"sigma", 0, RCTD_OPT_STRING, &sig_sigma_text, NULL,
     "use this sigma (0.84, or the grid value 84) instead of estimating it", "sigma_c", "X"},
    {"n-fit", 0, RCTD_OPT_I64, &sig_n_fit, "1000", "pixels fitted to estimate sigma (at most)",
     "N_fit", "N"},
    {"umi-min-sigma", 0, RCTD_OPT_DOUBLE, &sig_o.sigma.umi_min_sigma, "300",
     "only pixels with nUMI > X are fitted", "UMI_min_sigma", "X"},
    {"n-epoch", 0, RCTD_OPT_I64, &sig_n_epoch, "8", "at most N rounds of fit and choice", "N_epoch",
     "N"},
    {"min-change", 0, RCTD_OPT_DOUBLE, &sig_o.sigma.min_change, "0.001",
     "IRWLS convergence threshold of the sigma fits (R: decompose_batch's MIN.CHANGE)",
     "sigma_min_change", "X"},
    {"seed", 0, RCTD_OPT_STRING, &sig_seed_text, NULL,
     "set.seed(N) before the draws (default: continue the model's random stream, or 1)",
     "sigma_seed", "N"},
    {"cache-dir", 0, RCTD_OPT_STRING, &sig_cache_dir, NULL,
     "likelihood-table cache (default $XDG_CACHE_HOME/rctd; '' = none)", "cache_dir", "DIR"},
    {"device", 0, RCTD_OPT_STRING, &sig_device, "cpu",
     "backend of the sigma fits: cpu, auto, cuda, cuda:N", "device", "DEV"},
    {"tmp-dir", 0, RCTD_OPT_STRING, &sig_tmp_dir, NULL,
     "directory for the copy of a piped input (default $TMPDIR or /tmp)", NULL, "DIR"},
    {0}};

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
      .opts = sig_opts,
      .min_args = 0,
      .max_args = 1,
      .has_output = 1,
      .stream_output = 1};
  rctd_sigma_stage_opts_default(&sig_o);
  int rc = rctd_cli_parse(&cli, argc, argv);
  if (rc != RCTD_CLI_CONTINUE) {
    rctd_cli_free(&cli);
    return rc;
  }
  double seed = 0;
  if (sig_sigma_text && (sig_parse_number(sig_sigma_text, &sig_o.fixed_sigma) < 0 ||
                         rctd_sigma_value_of(sig_o.fixed_sigma) < 0))
    rc = rctd_cli_usage_error(&cli,
                              "option --sigma: '%s' is not on the sigma grid (0.10..0.70 by "
                              "0.01, 0.72..2.00 by 0.02)",
                              sig_sigma_text);
  else if (sig_seed_text && (sig_parse_number(sig_seed_text, &seed) < 0 || seed != (int32_t)seed))
    rc = rctd_cli_usage_error(&cli, "option --seed: '%s' is not an integer", sig_seed_text);
  else if (sig_n_fit < 1 || sig_n_epoch < 1 || sig_n_epoch > 1000000)
    rc = rctd_cli_usage_error(&cli, "--n-fit and --n-epoch must be >= 1");
  if (rc != RCTD_CLI_CONTINUE) {
    rctd_cli_free(&cli);
    return rc;
  }
  if (sig_seed_text) {
    sig_o.have_seed = 1;
    sig_o.seed = (int32_t)seed;
  }
  sig_o.sigma.n_fit = sig_n_fit;
  sig_o.sigma.n_epoch = (int)sig_n_epoch;
  sig_o.sigma.n_threads = cli.threads;
  sig_o.cache_dir = sig_cache_dir;
  sig_o.tmp_dir = sig_tmp_dir;
  sig_o.cli = &cli;
  sig_o.writer = rctd_cli_writer_opts(&cli);

  char err[RCTD_ERR_LEN], note[512] = "";
  const char *in_path = cli.n_args > 0 ? cli.args[0] : "-";
  rc = RCTD_EXIT_OK;
  sig_o.backend = rctd_backend_open(sig_device, cli.threads, note, sizeof note, err, sizeof err);
  if (!sig_o.backend) {
    rctd_log_error("%s", err);
    rctd_cli_free(&cli);
    return RCTD_EXIT_USAGE;
  }
  if (note[0] && strcmp(sig_device, "cpu") != 0) rctd_log_info("%s", note);
  if (rctd_sigma_stage_run(in_path, cli.output, &sig_o, err, sizeof err) < 0) {
    rctd_log_error("%s", err);
    rc = RCTD_EXIT_RUNTIME;
  }
  sig_o.backend->destroy(sig_o.backend);
  rctd_cli_free(&cli);
  return rc;
}
