/* The YAML config file, through rctd_cli_parse with options of every type. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include "cli.h"
#include "common.h"

static int opt_int, opt_flag;
static int64_t opt_i64;
static double opt_double;
static const char *opt_string;
static rctd_opt fuzz_opts[] = {
    {"max-iter", 0, RCTD_OPT_INT, &opt_int, "50", "an integer", NULL, NULL},
    {"big", 0, RCTD_OPT_I64, &opt_i64, "5", "a 64-bit integer", NULL, NULL},
    {"tol", 0, RCTD_OPT_DOUBLE, &opt_double, "1e-3", "a number", "fit.tol", NULL},
    {"mode", 'm', RCTD_OPT_STRING, &opt_string, "full", "a string", "doublet_mode", NULL},
    {"strict", 0, RCTD_OPT_FLAG, &opt_flag, "false", "a flag", NULL, NULL},
    {0}};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = fuzz_write_file("config.yaml", data, size);
  if (!path) return 0;
  char *argv[] = {"rctd-fuzz", "--config", (char *)path, NULL};
  rctd_cli cli = {.tool = "rctd-fuzz", .opts = fuzz_opts, .min_args = 0, .max_args = 0,
                  .has_output = 1, .stream_output = 1};
  /* One line per bad file: kept off the fuzzer's own output. */
  fflush(stderr);
  int saved = dup(STDERR_FILENO), null = open("/dev/null", O_WRONLY);
  if (null >= 0) dup2(null, STDERR_FILENO);
  if (rctd_cli_parse(&cli, 3, argv) == RCTD_CLI_CONTINUE) rctd_cli_free(&cli);
  fflush(stderr);
  if (saved >= 0) dup2(saved, STDERR_FILENO);
  if (saved >= 0) close(saved);
  if (null >= 0) close(null);
  return 0;
}
