/* Conventions shared by every rctd binary: option table parsing with --help/--version/--threads/
 * --quiet/--config (YAML, command line wins), messages "rctd-TOOL: FILE: message", exit status
 * 0 ok / 1 runtime error / 2 usage, atomic output files, progress reporting, provenance.
 *
 * A tool:
 *   static int max_iter; static double tol; static const char *mode;
 *   static rctd_opt opts[] = {
 *     {"max-iter", 0, RCTD_OPT_INT, &max_iter, "50", "iterations per fit"},
 *     {"tol", 0, RCTD_OPT_DOUBLE, &tol, "1e-3", "convergence threshold"},
 *     {"mode", 'm', RCTD_OPT_STRING, &mode, "full", "full, doublet or multi", .metavar = "MODE"},
 *     {0}};
 *   int main(int argc, char **argv) {
 *     rctd_cli cli = {.tool = "rctd-x", .args_usage = "STREAM", .summary = "...",
 *                     .opts = opts, .min_args = 1, .max_args = 1, .has_output = 1};
 *     int rc = rctd_cli_parse(&cli, argc, argv);
 *     if (rc != RCTD_CLI_CONTINUE) return rc;        // --help/--version (0) or usage error (2)
 *     ...  on failure: rctd_log_error("%s: ...", path); rctd_cli_free(&cli); return 1;
 *   }
 */
#ifndef RCTD_CLI_H
#define RCTD_CLI_H
#include <stdint.h>
#include <stdio.h>

#include "atomic_out.h"
#include "log.h"
#include "progress.h"
#include "provenance.h"
#include "stream.h"

#define RCTD_CLI_CONTINUE (-1)

typedef enum {
  RCTD_OPT_FLAG = 1, /* int * (0/1); "--NAME" sets, "--no-NAME" clears; YAML true/false */
  RCTD_OPT_INT,      /* int * */
  RCTD_OPT_I64,      /* int64_t * */
  RCTD_OPT_DOUBLE,   /* double * */
  RCTD_OPT_STRING,   /* const char ** (NULL default = unset); storage owned by the rctd_cli */
} rctd_opt_type;

/* One option, declared once: parsing, --help and the config file all come from this entry. */
typedef struct {
  const char *name; /* long name without dashes, e.g. "max-iter" */
  char short_name;  /* e.g. 'm', or 0 */
  rctd_opt_type type;
  void *dest;                /* where the value goes (see rctd_opt_type) */
  const char *default_value; /* as text, parsed like a command-line value; NULL = none */
  const char *help;          /* one line */
  const char *config_key;    /* YAML key; NULL = name with '-' -> '_'; "" = not in config.
                                Nested YAML mappings are flattened with '.' ("fit.max_iter") */
  const char *metavar;       /* placeholder in --help (default N, X or STR) */
} rctd_opt;

typedef struct {
  /* Set by the tool. */
  const char *tool;        /* "rctd-view": prefix of every message */
  const char *args_usage;  /* positional arguments in usage, e.g. "STREAM [RECORD]" */
  const char *summary;     /* one line for --help */
  const char *description; /* optional further paragraphs for --help */
  rctd_opt *opts;          /* tool options, terminated by an entry with name == NULL; may be NULL */
  int min_args, max_args;  /* positional argument count (max_args < 0: unlimited) */
  int has_output;          /* adds -o/--output FILE (default "-" = stdout) */
  int stream_output;       /* adds --chunk-rows N (rows per chunk of written streams) */
  /* Filled by rctd_cli_parse. */
  const char *output;      /* -o value ("-" default) */
  const char *config_path; /* --config value or NULL */
  int threads;             /* --threads, resolved: 0 on the command line = all online CPUs */
  int quiet;               /* --quiet */
  int64_t chunk_rows;      /* --chunk-rows (0 = automatic) */
  int n_args;
  char **args; /* positional arguments ("-" kept as is) */
  int argc;
  char **argv; /* original command line, for provenance */
  void *priv_; /* internal */
} rctd_cli;

/* Parses defaults, then --config FILE.yaml, then the command line (which wins).  Returns
 * RCTD_CLI_CONTINUE to go on, or an exit status to return from main at once: 0 after --help or
 * --version (printed to stdout), 2 after a usage or config error (printed to stderr as
 * "rctd-TOOL: message" plus a hint to run --help).  Also sets the tool name and quiet flag used by
 * rctd_log_* and rctd_progress_*, and installs the output-cleanup signal handlers.  On any return
 * but RCTD_CLI_CONTINUE the parser has already freed its state (rctd_cli_free is then a no-op). */
int rctd_cli_parse(rctd_cli *cli, int argc, char **argv);
/* The line of the --config file that set the option whose value is at DEST, or 0 when the
 * value came from the command line or the default (for messages naming where a value was). */
int rctd_cli_config_line(const rctd_cli *cli, const void *dest);
/* Frees what parsing allocated (string option values point into it). */
void rctd_cli_free(rctd_cli *cli);
/* Prints --help text to F. */
void rctd_cli_usage(const rctd_cli *cli, FILE *f);
/* Reports a usage problem found after parsing ("rctd-TOOL: message" + hint); returns 2. */
int rctd_cli_usage_error(const rctd_cli *cli, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Parses TEXT into O's dest as the command line would (rctd run checks the values it forwards
 * with the stages' own entries).  0, or -1 with "invalid number 'x'" (or the like) in err. */
int rctd_opt_set(const rctd_opt *o, const char *text, char *err, size_t err_len);
/* Writer options from the parsed command line (--chunk-rows). */
rctd_writer_opts rctd_cli_writer_opts(const rctd_cli *cli);
/* Writes a meta record "provenance.TOOL" with keys tool, version, command_line (shell-quoted
 * argv less --threads and --quiet, which cannot change results), config (the YAML file, if
 * any).  Nothing time-, host- or thread-count-dependent, so output bytes are reproducible. */
int rctd_cli_write_provenance(const rctd_cli *cli, rctd_writer *w);
/* The same for a stage (rctd_provenance: the tool's name and rctd_cli_write_provenance). */
rctd_provenance rctd_cli_provenance(const rctd_cli *cli);

#endif
