/* rctd run's forwarded options, assembled from the stages' tables (see stage_opts.h). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "stage_opts.h"

/* ------------------------------------------------------------------ rctd run */

static const char *const run_tools[RCTD_RUN_N_STAGES] = {"rctd-reference", "rctd-normalize",
                                                         "rctd-sigma", "rctd-fit-*", "rctd-merge"};

static int run_find(const rctd_opt_table *t, const char *name) {
  for (int j = 0; j < t->n; j++)
    if (strcmp(t->opts[j].name, name) == 0) return j;
  return -1;
}

/* rctd run's entry for entry I of stage S: a new one, or the one another stage created. */
static int run_link(rctd_run_opts *r, int s, int i) {
  const rctd_opt_table *st = &r->stage[s];
  const rctd_opt *o = &st->opts[i];
  r->run_of[s][i] = -1;
  if (st->fwd[i] == RCTD_FWD_NONE) return 0;
  char name[64];
  snprintf(name, sizeof name, "%s%s", st->fwd[i] == RCTD_FWD_PREFIX ? st->run_prefix : "", o->name);
  int j = run_find(&r->run, name);
  if (j < 0) {
    rctd_opt_table *t = &r->run;
    if (t->n >= RCTD_OPT_TABLE_MAX) return -1;
    j = t->n;
    snprintf(t->name_[j], sizeof t->name_[j], "%s", name);
    snprintf(t->default_[j], sizeof t->default_[j], "%s", o->default_value ? o->default_value : "");
    snprintf(t->help_[j], sizeof t->help_[j], "%s", o->help ? o->help : "");
    int flag = o->type == RCTD_OPT_FLAG;
    rctd_opt ro = {t->name_[j],
                   0,
                   flag ? RCTD_OPT_FLAG : RCTD_OPT_STRING,
                   flag ? (void *)&r->flag[j] : (void *)&r->text[j],
                   NULL,
                   t->help_[j],
                   st->run_key[i] ? st->run_key[i] : o->config_key,
                   o->metavar};
    t->opts[j] = ro;
    t->fwd[j] = RCTD_FWD_SAME;
    t->n++;
    t->opts[t->n] = (rctd_opt){0};
  }
  r->run_of[s][i] = j;
  /* the stages it goes to, listed in the help by run_help */
  char *tools = r->tools_[j];
  size_t used = strlen(tools);
  snprintf(tools + used, sizeof r->tools_[j] - used, "%s%s", used ? ", " : "", run_tools[s]);
  return 0;
}

/* snprintf that may truncate (help texts). */
static void run_print(char *dst, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void run_print(char *dst, size_t len, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(dst, len, fmt, ap);
  va_end(ap);
}

/* rctd run's help of entry J: the first stage's help, then the stages and their default. */
static void run_help(rctd_run_opts *r, int j) {
  rctd_opt_table *t = &r->run;
  char help[sizeof t->help_[j]];
  memcpy(help, t->help_[j], sizeof help);
  if (t->default_[j][0])
    run_print(t->help_[j], sizeof t->help_[j], "%s (%s: %s)", help, r->tools_[j], t->default_[j]);
  else
    run_print(t->help_[j], sizeof t->help_[j], "%s (%s)", help, r->tools_[j]);
}

int rctd_run_opts_init(rctd_run_opts *r) {
  memset(r, 0, sizeof *r);
  rctd_reference_cli_default(&r->ref);
  rctd_normalize_cli_default(&r->norm);
  rctd_sigma_cli_default(&r->sigma);
  rctd_fit_cli_default(&r->fit);
  rctd_merge_cli_default(&r->merge);
  for (int s = 0; s < RCTD_RUN_N_STAGES; s++) rctd_opt_table_init(&r->stage[s], NULL);
  rctd_opt_table_init(&r->run, NULL);
  if (rctd_reference_add_opts(&r->stage[RCTD_RUN_REFERENCE], &r->ref) < 0 ||
      rctd_normalize_add_opts(&r->stage[RCTD_RUN_NORMALIZE], &r->norm) < 0 ||
      rctd_sigma_add_opts(&r->stage[RCTD_RUN_SIGMA], &r->sigma) < 0 ||
      rctd_fit_add_opts(&r->stage[RCTD_RUN_FIT], &r->fit, RCTD_FIT_MULTI) < 0 ||
      rctd_merge_add_opts(&r->stage[RCTD_RUN_MERGE], &r->merge) < 0)
    return -1;
  for (int j = 0; j < RCTD_OPT_TABLE_MAX; j++) r->flag[j] = -1;
  for (int s = 0; s < RCTD_RUN_N_STAGES; s++)
    for (int i = 0; i < r->stage[s].n; i++)
      if (run_link(r, s, i) < 0) return -1;
  for (int j = 0; j < r->run.n; j++) run_help(r, j);
  return 0;
}

int rctd_run_opts_append(const rctd_run_opts *r, rctd_opt *opts, size_t capacity) {
  size_t n = 0;
  while (n < capacity && opts[n].name) n++;
  if (n + (size_t)r->run.n + 1 > capacity) return -1;
  memcpy(opts + n, r->run.opts, (size_t)r->run.n * sizeof *opts);
  opts[n + (size_t)r->run.n] = (rctd_opt){0};
  return 0;
}

int rctd_run_opts_apply(rctd_run_opts *r, int *bad, char *why, size_t why_len) {
  for (int s = 0; s < RCTD_RUN_N_STAGES; s++) {
    for (int i = 0; i < r->stage[s].n; i++) {
      int j = r->run_of[s][i];
      if (j < 0) continue;
      const rctd_opt *o = &r->stage[s].opts[i];
      if (o->type == RCTD_OPT_FLAG) {
        if (r->flag[j] >= 0) *(int *)o->dest = r->flag[j];
        continue;
      }
      if (r->text[j] && rctd_opt_set(o, r->text[j], why, why_len) != 0) {
        *bad = j;
        return -1;
      }
    }
  }
  return 0;
}

const char *rctd_run_opts_given(const rctd_run_opts *r, const char *name) {
  int j = run_find(&r->run, name);
  return j >= 0 && r->run.opts[j].type != RCTD_OPT_FLAG ? r->text[j] : NULL;
}

void rctd_run_opts_stage_args(const rctd_run_opts *r, int stage, rctd_fit_mode mode,
                              void (*add)(void *ctx, const char *arg), void *ctx) {
  const rctd_opt_table *st = &r->stage[stage];
  static rctd_opt_table mode_table; /* the fit stage: MODE's own table (main thread) */
  const rctd_opt_table *walk = st;
  if (stage == RCTD_RUN_FIT) {
    rctd_fit_cli scratch;
    rctd_fit_cli_default(&scratch);
    rctd_opt_table_init(&mode_table, NULL);
    if (rctd_fit_add_opts(&mode_table, &scratch, mode) == 0) walk = &mode_table;
  }
  for (int k = 0; k < walk->n; k++) {
    int i = run_find(st, walk->opts[k].name);
    int j = i >= 0 ? r->run_of[stage][i] : -1;
    if (j < 0) continue;
    char opt[96];
    if (st->opts[i].type == RCTD_OPT_FLAG) {
      if (r->flag[j] < 0) continue;
      snprintf(opt, sizeof opt, "--%s%s", r->flag[j] ? "" : "no-", st->opts[i].name);
      add(ctx, opt);
    } else if (r->text[j]) {
      snprintf(opt, sizeof opt, "--%s", st->opts[i].name);
      add(ctx, opt);
      add(ctx, r->text[j]);
    }
  }
}
