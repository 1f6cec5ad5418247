/* The option tables of the stages, declared once (lib/cli/stage_opts.c), and what is built from them:
 *   - each stage tool's command line: rctd_<stage>_cli_default fills the values from the stage's
 *     *_opts_default (the one place a default is written), rctd_<stage>_add_opts appends the
 *     stage's options to a table (the help's "[default: X]" is the value the option points to);
 *   - rctd run's forwarded options (rctd_run_opts): the five stages' tables assembled, an
 *     option two stages share under one name (--cache-dir, --device, --tmp-dir, --coords-table)
 *     forwarded to both, the reader options prefixed by their input (--reference-numi-col,
 *     --spatial-format), each stage's command line built by walking its own table;
 *   - rctd validate: the given values parsed into the real option structs.
 * Adding an option to a stage: its field and default in the stage (*_opts_default), then one
 * OPT_ADD line in the stage's rctd_<stage>_add_opts (stage_opts.c; the reference's and
 * normalize's in stage_opts_input.c); the tool, rctd run, rctd validate, --help, the config file
 * and the man page check (tests/test_stage_opts.c) all follow. */
#ifndef RCTD_STAGE_OPTS_H
#define RCTD_STAGE_OPTS_H
#include <stddef.h>
#include <stdint.h>

#include "cli.h"
#include "fit_stage.h"
#include "input_cli.h"
#include "normalize.h"
#include "reference.h"
#include "sigma.h"

#define RCTD_OPT_TABLE_MAX 64

/* How rctd run exposes a stage option. */
typedef enum {
  RCTD_FWD_SAME = 0, /* under its own name (shared by the stages that have it) */
  RCTD_FWD_PREFIX,   /* under the table's run_prefix + its name (--reference-format) */
  RCTD_FWD_NONE      /* not at all (rctd run sets it, or another stage's option covers it) */
} rctd_fwd;

/* A NULL-terminated option table under construction, with what rctd run needs per entry. */
typedef struct {
  rctd_opt opts[RCTD_OPT_TABLE_MAX + 1];
  unsigned char fwd[RCTD_OPT_TABLE_MAX];
  const char *run_key[RCTD_OPT_TABLE_MAX]; /* rctd run's config key when not the entry's */
  int n;
  const char *run_prefix; /* "reference-", "spatial-", "sigma-" */
  /* storage: default texts; rctd run's names and helps */
  char default_[RCTD_OPT_TABLE_MAX][48];
  char name_[RCTD_OPT_TABLE_MAX][64];
  char help_[RCTD_OPT_TABLE_MAX][320];
} rctd_opt_table;

void rctd_opt_table_init(rctd_opt_table *t, const char *run_prefix);
/* Appends O (dest already holding the default) with rctd run's FWD.  O's default_value, when
 * NULL, is made from the value at dest (numbers, flags, strings set).  0, or -1 when full. */
int rctd_opt_table_add(rctd_opt_table *t, rctd_opt o, rctd_fwd fwd);
/* One line of a stage's table (in rctd_<stage>_add_opts): appends the rctd_opt of the other
 * arguments with rctd run's FWD, or returns -1 from the caller when the table is full. */
#define RCTD_OPT_ADD(t, fwd, ...)                                               \
  do {                                                                          \
    if (rctd_opt_table_add((t), (rctd_opt){__VA_ARGS__}, (fwd)) < 0) return -1; \
  } while (0)

/* The entry named NAME, or NULL. */
const rctd_opt *rctd_opt_table_find(const rctd_opt_table *t, const char *name);

/* ---- rctd-reference ---- */
typedef struct {
  rctd_reference_opts select;
  int64_t seed; /* parsed wide: --seed must be a 32-bit integer */
  const char *cell_types, *class_table;
  rctd_input_cli in;
} rctd_reference_cli;
void rctd_reference_cli_default(rctd_reference_cli *c);
int rctd_reference_add_opts(rctd_opt_table *t, rctd_reference_cli *c);

/* ---- rctd-normalize ---- */
typedef struct {
  rctd_normalize_opts o;
  int64_t min_genes, bulk_max_iter; /* parsed wide, then clamped into o */
  const char *class_table;
  rctd_input_cli in;
} rctd_normalize_cli;
void rctd_normalize_cli_default(rctd_normalize_cli *c);
int rctd_normalize_add_opts(rctd_opt_table *t, rctd_normalize_cli *c);

/* ---- rctd-sigma ---- */
typedef struct {
  rctd_sigma_stage_opts o;
  int64_t n_epoch;                    /* parsed wide */
  const char *sigma_text, *seed_text; /* checked by the tool (grid value, 32-bit integer) */
  const char *device;
} rctd_sigma_cli;
void rctd_sigma_cli_default(rctd_sigma_cli *c);
int rctd_sigma_add_opts(rctd_opt_table *t, rctd_sigma_cli *c);

/* ---- rctd-fit-{full,doublet,multi} ---- */
typedef struct {
  rctd_fit_stage_opts o;
  const char *shard, *device, *precision;
} rctd_fit_cli;
void rctd_fit_cli_default(rctd_fit_cli *c);
int rctd_fit_add_opts(rctd_opt_table *t, rctd_fit_cli *c, rctd_fit_mode mode);

/* ---- rctd-merge ---- */
typedef struct {
  const char *spatial, *format, *spatial_format, *coords_table, *csv_dir, *json_path, *summary_path,
      *multiqc_path, *multiqc_sample;
} rctd_merge_cli;
void rctd_merge_cli_default(rctd_merge_cli *c);
int rctd_merge_add_opts(rctd_opt_table *t, rctd_merge_cli *c);

/* ---- rctd run / rctd validate ---- */
enum { RCTD_RUN_REFERENCE, RCTD_RUN_NORMALIZE, RCTD_RUN_SIGMA, RCTD_RUN_FIT, RCTD_RUN_MERGE };
#define RCTD_RUN_N_STAGES 5

typedef struct {
  /* The stages' values: their defaults, then (rctd_run_opts_apply) the given values. */
  rctd_reference_cli ref;
  rctd_normalize_cli norm;
  rctd_sigma_cli sigma;
  rctd_fit_cli fit;
  rctd_merge_cli merge;
  rctd_opt_table stage[RCTD_RUN_N_STAGES]; /* fit: multi mode's table (all fit options) */
  /* rctd run's forwarded options: text as given (NULL = not given), flags -1 (not given), 0, 1 */
  rctd_opt_table run;
  const char *text[RCTD_OPT_TABLE_MAX];
  int flag[RCTD_OPT_TABLE_MAX];
  int run_of[RCTD_RUN_N_STAGES][RCTD_OPT_TABLE_MAX]; /* stage entry -> run entry, or -1 */
  char tools_[RCTD_OPT_TABLE_MAX][96];               /* the stages a run entry goes to */
} rctd_run_opts;

/* Builds the stage tables and rctd run's (R is large: keep it static).  0, or -1 (a table is
 * full: a programming error). */
int rctd_run_opts_init(rctd_run_opts *r);
/* Appends rctd run's forwarded options to OPTS (NULL-terminated, CAPACITY entries). */
int rctd_run_opts_append(const rctd_run_opts *r, rctd_opt *opts, size_t capacity);
/* After parsing: every given value parsed into the stages' values (the stages' own syntax
 * checks, so that a typo fails before any stage starts).  0, or -1 with the run option's index
 * in *BAD (r->run.opts[*bad]: its name, config key, dest) and what is wrong in WHY ("invalid
 * number 'abc'"). */
int rctd_run_opts_apply(rctd_run_opts *r, int *bad, char *why, size_t why_len);
/* The value given for the forwarded option NAME, or NULL. */
const char *rctd_run_opts_given(const rctd_run_opts *r, const char *name);
/* Calls ADD(ctx, arg) for the command-line arguments of STAGE that carry the given options, in
 * the stage's table order (fit: MODE's table). */
void rctd_run_opts_stage_args(const rctd_run_opts *r, int stage, rctd_fit_mode mode,
                              void (*add)(void *ctx, const char *arg), void *ctx);

#endif
