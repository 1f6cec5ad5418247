/* The sigma stage (spacexr choose_sigma_c / chooseSigma).  See sigma.h. */
#include "sigma.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "atomic_out.h"
#include "cpu/spline_fast.h"
#include "error.h"
#include "jobs.h"
#include "log.h"
#include "model.h"
#include "progress.h"

#define SIG_PRED_FLOOR 1e-4 /* chooseSigma's pmax(prediction, 1e-4) */
#define SIG_EVAL_CHUNK 1024 /* spline evaluations per call (stack buffers) */
#define SIG_N_MULT 5

/* chooseSigma's multipliers (8:12)/10: each quotient rounds to the same double as the literal. */
static const double sig_mult[SIG_N_MULT] = {0.8, 0.9, 1.0, 1.1, 1.2};

void rctd_sigma_opts_default(rctd_sigma_opts *opts) {
  memset(opts, 0, sizeof *opts);
  opts->n_fit = 1000;
  opts->umi_min_sigma = 300;
  opts->n_epoch = 8;
  opts->min_change = 0.001;
  opts->n_iter = 50;
  opts->start_value = RCTD_SIGMA_START;
  opts->n_threads = 1;
}

int rctd_sigma_value_of(double sigma) {
  if (!isfinite(sigma) || sigma <= 0) return -1;
  double v = sigma >= 10 ? sigma : sigma * 100;
  double r = nearbyint(v);
  if (fabs(v - r) > 1e-6 * r || r < 10 || r > 200) return -1;
  return rctd_sigma_index((int)r) >= 0 ? (int)r : -1;
}

/* ------------------------------------------------------------------ fit_ind */

typedef struct {
  int rank;  /* 1-based rank among the candidates, as sample.int drew it */
  int64_t i; /* position of the draw */
} sig_draw;

static int sig_cmp_rank(const void *a, const void *b) {
  int ra = ((const sig_draw *)a)->rank, rb = ((const sig_draw *)b)->rank;
  return (ra > rb) - (ra < rb);
}

/* The scans of the model's pixel nUMI (rctd_model_numi_blocks): the candidates' count, then
 * the pixels of the drawn ranks (ORDER sorted by rank) into OUT. */
typedef struct {
  double umi_min;
  int64_t n_cand, rank, next, n;
  const sig_draw *order;
  int64_t *out;
} sig_scan;

static int sig_count_block(void *ctx, int64_t first, const double *numi, int64_t len) {
  sig_scan *sc = ctx;
  (void)first;
  for (int64_t p = 0; p < len; p++) sc->n_cand += numi[p] > sc->umi_min;
  return 0;
}

static int sig_rank_block(void *ctx, int64_t first, const double *numi, int64_t len) {
  sig_scan *sc = ctx;
  for (int64_t p = 0; p < len && sc->next < sc->n; p++) {
    if (!(numi[p] > sc->umi_min)) continue;
    sc->rank++;
    while (sc->next < sc->n && sc->order[sc->next].rank == sc->rank)
      sc->out[sc->order[sc->next++].i] = first + p;
  }
  return sc->next < sc->n ? 0 : 1;
}

int rctd_sigma_pick_pixels(rctd_rrng *rng, const rctd_model *model, const rctd_sigma_opts *opts,
                           int64_t **fit_n, int64_t *n_fit, char *err, size_t err_len) {
  *fit_n = NULL;
  *n_fit = 0;
  const int64_t n_pixels = model->n_pixels;
  sig_scan sc = {.umi_min = opts->umi_min_sigma};
  if (rctd_model_numi_blocks(model, sig_count_block, &sc) < 0)
    return rctd_fail(err, err_len, RCTD_MODEL_NUMI_READ_FAILED);
  const int64_t n_cand = sc.n_cand;
  int64_t n = opts->n_fit < n_cand ? opts->n_fit : n_cand;
  if (n <= 0)
    return rctd_fail(err, err_len,
                     "choose_sigma_c determined a N_fit of 0: no pixel has nUMI above "
                     "UMI_min_sigma = %g (of %" PRId64
                     " pixels); lower it with --umi-min-sigma (or give --sigma)",
                     opts->umi_min_sigma, n_pixels);
  if (n_cand > INT32_MAX) return rctd_fail(err, err_len, "too many pixels for R's sample()");
  int *drawn = malloc((size_t)n * sizeof *drawn);
  int64_t *out = malloc((size_t)n * sizeof *out);
  sig_draw *order = malloc((size_t)n * sizeof *order);
  if (!drawn || !out || !order) {
    free(drawn), free(out), free(order);
    return rctd_fail(err, err_len, "out of memory choosing %" PRId64 " fit pixels", n);
  }
  /* sample(names(nUMI[nUMI > UMI_min_sigma]), N_fit) = candidates[sample.int(n_cand, N_fit)]. */
  if (rctd_rrng_sample(rng, (int)n_cand, (int)n, drawn) < 0) {
    free(drawn), free(out), free(order);
    return rctd_fail(err, err_len, "out of memory drawing %" PRId64 " fit pixels", n);
  }
  /* The candidates of the drawn ranks, found in one pass in rank order (no list of every
   * candidate: memory O(N_fit)). */
  for (int64_t i = 0; i < n; i++) order[i] = (sig_draw){drawn[i], i};
  qsort(order, (size_t)n, sizeof *order, sig_cmp_rank);
  sc.n = n, sc.order = order, sc.out = out;
  if (rctd_model_numi_blocks(model, sig_rank_block, &sc) < 0) {
    free(drawn), free(out), free(order);
    return rctd_fail(err, err_len, RCTD_MODEL_NUMI_READ_FAILED);
  }
  free(drawn);
  free(order);
  *fit_n = out;
  *n_fit = n;
  return 0;
}

/* ------------------------------------------------------------------ scores */

double rctd_sigma_log_l(const rctd_qtable *table, int64_t n, const double *y,
                        const double *lambda) {
  double d0[SIG_EVAL_CHUNK];
  long double sum = 0;
  for (int64_t i = 0; i < n; i += SIG_EVAL_CHUNK) {
    int m = (int)(n - i < SIG_EVAL_CHUNK ? n - i : SIG_EVAL_CHUNK);
    rctd_spline_eval(table, m, y + i, lambda + i, d0, NULL, NULL);
    for (int j = 0; j < m; j++) sum += -d0[j];
  }
  return (double)sum;
}

/* calc_log_l_vec(X * mult, Y) without materialising X * mult. */
static double sig_log_l_scaled(const rctd_qtable *table, int64_t n, const double *y,
                               const double *x, double mult) {
  double lambda[SIG_EVAL_CHUNK], d0[SIG_EVAL_CHUNK];
  long double sum = 0;
  for (int64_t i = 0; i < n; i += SIG_EVAL_CHUNK) {
    int m = (int)(n - i < SIG_EVAL_CHUNK ? n - i : SIG_EVAL_CHUNK);
    for (int j = 0; j < m; j++) lambda[j] = x[i + j] * mult;
    rctd_spline_eval(table, m, y + i, lambda, d0, NULL, NULL);
    for (int j = 0; j < m; j++) sum += -d0[j];
  }
  return (double)sum;
}

/* ------------------------------------------------------------------ tables */

/* The tables of the grid values in use, loaded on demand and dropped when out of the window. */
typedef struct {
  rctd_qtable_owned *by_index[RCTD_N_SIGMA];
  double *coef_by_index[RCTD_N_SIGMA]; /* rctd_spline_coef_build's terms, or NULL */
  int n_k;
  /* the rows the counts use (n_k flags): the fits and the scores read only their values and
   * coefficients, so only theirs are copied from the cache and built (132 of the 901 rows of
   * the vignette recipe's tables; the others' pages are never touched) */
  unsigned char *row_used;
  const rctd_qtable_opts *qopts;
} sig_tables;

static void sig_tables_drop(sig_tables *ts, int i) {
  if (!ts->by_index[i]) return;
  free(ts->coef_by_index[i]);
  ts->coef_by_index[i] = NULL;
  rctd_qtable_owned_free(ts->by_index[i]);
  free(ts->by_index[i]);
  ts->by_index[i] = NULL;
}

static void sig_tables_free(sig_tables *ts) {
  for (int i = 0; i < RCTD_N_SIGMA; i++) sig_tables_drop(ts, i);
  free(ts->row_used);
  ts->row_used = NULL;
}

/* One table of the window (grid place INDEX) and its coefficients, computed with N_THREADS
 * when not cached; NOTE receives the cache's line.  Touches only ts's entries of INDEX, so
 * several run at once. */
static int sig_tables_load(sig_tables *ts, int index, int n_threads, char *note, size_t note_len,
                           char *err, size_t err_len) {
  int grid[RCTD_N_SIGMA];
  rctd_sigma_grid(grid);
  rctd_qtable_owned *t = calloc(1, sizeof *t);
  if (!t) return rctd_fail(err, err_len, "out of memory");
  rctd_qtable_opts qo = {0};
  if (ts->qopts) qo = *ts->qopts;
  qo.n_threads = n_threads;
  qo.keep_rows = ts->row_used; /* the fits and scores read no other row (a backend that copies
                                  the whole table copies the others unread) */
  char msg[RCTD_ERR_LEN] = "";
  if (rctd_qtable_get(grid[index], ts->n_k, &qo, t, note, note_len, msg, sizeof msg) != 0) {
    free(t);
    return rctd_fail(err, err_len, "likelihood table for sigma %d: %s", grid[index], msg);
  }
  for (int k = 0; k < ts->n_k; k++) /* (the cache's promise; never a read of an unset row) */
    if (ts->row_used[k] && !rctd_qtable_row_loaded(t, k)) {
      rctd_qtable_owned_free(t);
      free(t);
      return rctd_fail(err, err_len, "likelihood table for sigma %d: row %d was not loaded",
                       grid[index], k);
    }
  ts->by_index[index] = t;
  /* the spline terms per (row, interval), for the one-pass scores and the fits' fast path
   * (same bits); without them (out of memory) both take the slower exact paths */
  ts->coef_by_index[index] = malloc(rctd_spline_coef_doubles(t->table.n_k) * sizeof(double));
  if (ts->coef_by_index[index])
    rctd_spline_coef_build_rows(&t->table, ts->row_used, ts->coef_by_index[index]);
  return 0;
}

/* A cache note saying a table was not cached, as a warning, unless the last one printed gave
 * the same reason (its last part: the cause, without the entry's path): a cache that cannot be
 * written would repeat it for every table of every window.  Main thread only. */
static void sig_warn_not_cached(const char *note) {
  static char last_cause[RCTD_ERR_LEN];
  const char *reason = strstr(note, "not cached: ");
  if (!reason) return;
  const char *cause = strrchr(reason, ':') + 1;
  if (strcmp(cause, last_cause) == 0) return;
  snprintf(last_cause, sizeof last_cause, "%s", cause);
  rctd_log_warn("%s", note);
}

/* The window's missing tables, loaded by up to qopts->n_threads threads, each taking the next
 * table not yet taken (a table's bits do not depend on who loads it or with how many
 * threads). */
typedef struct {
  sig_tables *ts;
  const int *index; /* the grid places to load */
  int n, n_threads_each;
  atomic_int next;
  int rc[RCTD_SIGMA_MAX_CAND];
  char note[RCTD_SIGMA_MAX_CAND][512];
  char err[RCTD_SIGMA_MAX_CAND][RCTD_ERR_LEN];
} sig_load_job;

static void *sig_load_run(void *arg) {
  sig_load_job *job = arg;
  for (int i; (i = atomic_fetch_add(&job->next, 1)) < job->n;)
    job->rc[i] = sig_tables_load(job->ts, job->index[i], job->n_threads_each, job->note[i],
                                 sizeof job->note[i], job->err[i], sizeof job->err[i]);
  return NULL;
}

static int sig_tables_load_many(sig_tables *ts, const int *index, int n, char *err,
                                size_t err_len) {
  if (n == 0) return 0;
  sig_load_job *job = calloc(1, sizeof *job);
  if (!job) return rctd_fail(err, err_len, "out of memory");
  const int n_threads = ts->qopts && ts->qopts->n_threads > 1 ? ts->qopts->n_threads : 1;
  /* a backend's table builds (a GPU) stay one at a time */
  const int n_workers = ts->qopts && ts->qopts->backend ? 1 : n_threads < n ? n_threads : n;
  job->ts = ts, job->index = index, job->n = n;
  job->n_threads_each = n_threads / n_workers; /* a cold build's rows split the rest */
  atomic_init(&job->next, 0);
  rctd_run_jobs(sig_load_run, job, 0, n_workers); /* the workers share the job's counter */
  int rc = 0;
  for (int i = 0; i < n; i++) { /* messages in grid order, whatever thread loaded what */
    /* Only a cache that cannot be written deserves a word; hits and rebuilds are routine. */
    if (job->rc[i] == 0) sig_warn_not_cached(job->note[i]);
    if (job->rc[i] != 0 && rc == 0) rc = rctd_fail(err, err_len, "%s", job->err[i]);
  }
  free(job);
  return rc;
}

/* Candidate window around grid place si (0-based): [*lo, *hi). */
static void sig_window(int si, int *lo, int *hi) {
  *lo = si - RCTD_SIGMA_WINDOW < 0 ? 0 : si - RCTD_SIGMA_WINDOW;
  *hi = si + RCTD_SIGMA_WINDOW + 1 > RCTD_N_SIGMA ? RCTD_N_SIGMA : si + RCTD_SIGMA_WINDOW + 1;
}

/* Loads the window's tables and drops the others. */
static int sig_tables_window(sig_tables *ts, int si, char *err, size_t err_len) {
  int lo, hi;
  sig_window(si, &lo, &hi);
  for (int i = 0; i < RCTD_N_SIGMA; i++)
    if (i < lo || i >= hi) sig_tables_drop(ts, i);
  int missing[RCTD_SIGMA_MAX_CAND], n_missing = 0;
  for (int i = lo; i < hi; i++)
    if (!ts->by_index[i]) missing[n_missing++] = i;
  return sig_tables_load_many(ts, missing, n_missing, err, err_len);
}

/* Rows a table needs for counts up to max_y (R indexes row Y + 1 after clipping at K_val). */
static int sig_n_k(double max_y) {
  if (!(max_y > 0)) return 1;
  double y = max_y > RCTD_K_VAL ? RCTD_K_VAL : max_y;
  return (int)y + 1;
}

static double sig_max(const double *v, int64_t n) {
  double m = 0;
  for (int64_t i = 0; i < n; i++)
    if (v[i] > m) m = v[i];
  return m;
}

/* The tables (ts->n_k rows) and the flags of the rows that the N counts Y use (the spline's row
 * of a count: min(y, K_val), truncated).  0, or -1 out of memory. */
static int sig_tables_init(sig_tables *ts, const double *y, int64_t n,
                           const rctd_qtable_opts *qopts) {
  memset(ts, 0, sizeof *ts);
  ts->n_k = sig_n_k(sig_max(y, n));
  ts->qopts = qopts;
  ts->row_used = calloc((size_t)ts->n_k, 1);
  if (!ts->row_used) return -1;
  for (int64_t i = 0; i < n; i++) {
    const double v = y[i] > RCTD_K_VAL ? RCTD_K_VAL : y[i];
    if (v >= 0 && v < ts->n_k) ts->row_used[(int)v] = 1; /* others take the exact path */
  }
  return 0;
}

/* ------------------------------------------------------------------ chooseSigma */

typedef struct {
  const sig_tables *ts;
  int lo, first, end; /* this job scores candidates [first, end) of the window from lo */
  int64_t n;
  const double *x, *y;
  double *score; /* the window's candidates */
} sig_score_job;

/* R's best over the multipliers: min(best_val, v) in multiplier order. */
static double sig_best(const double *v_m) {
  double best = v_m[0];
  for (int m = 1; m < SIG_N_MULT; m++)
    if (v_m[m] < best) best = v_m[m];
  return best;
}

static void *sig_score_run(void *arg) {
  sig_score_job *job = arg;
  const rctd_qtable *tables[RCTD_SIGMA_MAX_CAND];
  const double *coefs[RCTD_SIGMA_MAX_CAND];
  double v_cm[RCTD_SIGMA_MAX_CAND * SIG_N_MULT];
  int n_tab = job->end - job->first;
  for (int c = job->first; c < job->end; c++) {
    tables[c - job->first] = &job->ts->by_index[job->lo + c]->table;
    coefs[c - job->first] = job->ts->coef_by_index[job->lo + c];
  }
  /* one pass over the values for all the job's tables and multipliers (same sums) */
  if (n_tab > 0 && rctd_spline_score_many(tables, coefs, n_tab, sig_mult, SIG_N_MULT, job->n,
                                          job->y, job->x, v_cm) == 0) {
    for (int c = 0; c < n_tab; c++) job->score[job->first + c] = sig_best(v_cm + c * SIG_N_MULT);
    return NULL;
  }
  for (int c = 0; c < n_tab; c++) {
    for (int m = 0; m < SIG_N_MULT; m++)
      v_cm[m] = sig_log_l_scaled(tables[c], job->n, job->y, job->x, sig_mult[m]);
    job->score[job->first + c] = sig_best(v_cm);
  }
  return NULL;
}

/* Scores the window around grid place si on the (already permuted) x, y; fills out. */
static void sig_score_window(const sig_tables *ts, int si, int64_t n, const double *x,
                             const double *y, int n_threads, rctd_sigma_epoch *out) {
  int lo, hi, grid[RCTD_N_SIGMA];
  rctd_sigma_grid(grid);
  sig_window(si, &lo, &hi);
  int n_cand = hi - lo;
  int n_jobs = n_threads < 1 ? 1 : n_threads > n_cand ? n_cand : n_threads;
  sig_score_job jobs[RCTD_SIGMA_MAX_CAND];
  for (int t = 0; t < n_jobs; t++)
    jobs[t] = (sig_score_job){ts, lo, n_cand * t / n_jobs, n_cand * (t + 1) / n_jobs, n,
                              x,  y,  out->cand_score};
  rctd_run_jobs(sig_score_run, jobs, sizeof *jobs, n_jobs);
  out->n_cand = n_cand;
  int best = 0;
  for (int c = 0; c < n_cand; c++) {
    out->cand_value[c] = grid[lo + c];
    if (out->cand_score[c] < out->cand_score[best]) best = c; /* which.min: first minimum */
  }
  out->sigma_chosen = grid[lo + best];
}

/* chooseSigma's draw, sample(1:n_obs, min(1e6, n_obs)): the only use of the random stream in
 * an epoch, and independent of the fits, so the estimate runs it beside them. */
typedef struct {
  rctd_rrng *rng;
  int64_t n_obs, n;
  int *idx; /* 1-based, n values (malloc'd) */
  int rc;
} sig_draw_job;

static int sig_draw_init(sig_draw_job *d, rctd_rrng *rng, int64_t n_obs, char *err,
                         size_t err_len) {
  memset(d, 0, sizeof *d);
  if (n_obs < 1 || n_obs > INT32_MAX)
    return rctd_fail(err, err_len, "chooseSigma: %" PRId64 " values cannot be sampled", n_obs);
  d->rng = rng, d->n_obs = n_obs;
  d->n = n_obs < RCTD_SIGMA_MAX_SAMPLE ? n_obs : RCTD_SIGMA_MAX_SAMPLE;
  return 0;
}

static void *sig_draw_run(void *arg) {
  sig_draw_job *d = arg;
  d->idx = malloc((size_t)d->n * sizeof *d->idx);
  d->rc = !d->idx || rctd_rrng_sample(d->rng, (int)d->n_obs, (int)d->n, d->idx) < 0 ? -1 : 0;
  return NULL;
}

/* X = pmax(pred, 1e-4) and Y in the drawn order into *x_s and *y_s (malloc'd, d->n values);
 * frees the draw. */
static int sig_gather_obs(sig_draw_job *d, const double *pred, const double *y, double **x_s,
                          double **y_s, char *err, size_t err_len) {
  const int64_t n = d->n;
  double *xs = malloc((size_t)n * sizeof *xs), *ys = malloc((size_t)n * sizeof *ys);
  if (d->rc < 0 || !xs || !ys) {
    free(d->idx), free(xs), free(ys);
    d->idx = NULL;
    return rctd_fail(err, err_len, "out of memory sampling %" PRId64 " values", n);
  }
  for (int64_t i = 0; i < n; i++) {
    int64_t j = d->idx[i] - 1;
    xs[i] = pred[j] > SIG_PRED_FLOOR ? pred[j] : SIG_PRED_FLOOR;
    if (isnan(pred[j])) xs[i] = pred[j];
    ys[i] = y[j];
  }
  free(d->idx);
  d->idx = NULL;
  *x_s = xs, *y_s = ys;
  return 0;
}

/* Scores the window around SIGMA_VALUE on the N_S sampled values XS, YS (of N_OBS), which it
 * frees. */
static int sig_score_sample(sig_tables *ts, int64_t n_obs, int64_t n_s, double *xs, double *ys,
                            int sigma_value, int n_threads, rctd_sigma_epoch *out, char *err,
                            size_t err_len) {
  int si = rctd_sigma_index(sigma_value);
  int rc = si < 0 ? rctd_fail(err, err_len, "sigma %d is not on the grid", sigma_value)
                  : sig_tables_window(ts, si, err, err_len);
  if (rc == 0) {
    out->n_obs = n_obs;
    out->n_scored = n_s;
    sig_score_window(ts, si, n_s, xs, ys, n_threads, out);
  }
  free(xs);
  free(ys);
  return rc;
}

static int sig_choose(rctd_rrng *rng, sig_tables *ts, int64_t n_obs, const double *pred,
                      const double *y, int sigma_value, int n_threads, rctd_sigma_epoch *out,
                      char *err, size_t err_len) {
  if (rctd_sigma_index(sigma_value) < 0)
    return rctd_fail(err, err_len, "sigma %d is not on the grid", sigma_value);
  sig_draw_job d;
  double *xs, *ys;
  if (sig_draw_init(&d, rng, n_obs, err, err_len) < 0) return -1;
  sig_draw_run(&d);
  if (sig_gather_obs(&d, pred, y, &xs, &ys, err, err_len) < 0) return -1;
  return sig_score_sample(ts, n_obs, d.n, xs, ys, sigma_value, n_threads, out, err, err_len);
}

int rctd_sigma_choose(rctd_rrng *rng, int64_t n_obs, const double *pred, const double *y,
                      int sigma_value, const rctd_qtable_opts *qopts, const rctd_sigma_opts *opts,
                      rctd_sigma_epoch *out, char *err, size_t err_len) {
  sig_tables ts;
  if (sig_tables_init(&ts, y, n_obs, qopts) < 0) {
    sig_tables_free(&ts);
    return rctd_fail(err, err_len, "out of memory");
  }
  int rc = sig_choose(rng, &ts, n_obs, pred, y, sigma_value, opts->n_threads, out, err, err_len);
  sig_tables_free(&ts);
  return rc;
}

/* ------------------------------------------------------------------ choose_sigma_c */

void rctd_sigma_result_free(rctd_sigma_result *res) {
  free(res->epochs);
  memset(res, 0, sizeof *res);
}

/* prediction (genes fastest) = profiles %*% t(weights), each column times its pixel's nUMI.
 * The type sum runs in type order from 0, as the reference BLAS dgemm R calls; eight genes at
 * a time from the transposed profiles (profiles_kg), each gene's sum in that order (no fused
 * multiply-add: the build contracts nothing), pixels split across threads. */
typedef struct {
  const rctd_sigma_problem *p;
  const double *profiles_kg, *weights_nk;
  double *pred_ng;
  int64_t first, end;
} sig_predict_job;

#define SIG_PREDICT_GENES 8

static void *sig_predict_run(void *arg) {
  const sig_predict_job *job = arg;
  const int G = job->p->n_genes, K = job->p->n_types;
  for (int64_t n = job->first; n < job->end; n++) {
    const double *w = job->weights_nk + (size_t)n * K;
    const double numi = job->p->numi_n[n];
    double *out = job->pred_ng + (size_t)n * G;
    int g = 0;
    for (; g + SIG_PREDICT_GENES <= G; g += SIG_PREDICT_GENES) {
      double s[SIG_PREDICT_GENES] = {0};
      for (int k = 0; k < K; k++) {
        const double wk = w[k], *prof = job->profiles_kg + (size_t)k * G + g;
        for (int i = 0; i < SIG_PREDICT_GENES; i++) s[i] += wk * prof[i];
      }
      for (int i = 0; i < SIG_PREDICT_GENES; i++) out[g + i] = s[i] * numi;
    }
    for (; g < G; g++) {
      double s = 0;
      for (int k = 0; k < K; k++) s += w[k] * job->profiles_kg[(size_t)k * G + g];
      out[g] = s * numi;
    }
  }
  return NULL;
}

static void sig_predict(const rctd_sigma_problem *p, const double *profiles_kg,
                        const double *weights_nk, double *pred_ng, int n_threads) {
  enum { MAX_JOBS = 64 };
  const int64_t N = p->n_fit;
  int n_jobs = n_threads < 1 ? 1 : n_threads > MAX_JOBS ? MAX_JOBS : n_threads;
  if (n_jobs > N) n_jobs = (int)N;
  sig_predict_job jobs[MAX_JOBS];
  for (int t = 0; t < n_jobs; t++)
    jobs[t] = (sig_predict_job){p,       profiles_kg,    weights_nk,
                                pred_ng, N * t / n_jobs, N * (t + 1) / n_jobs};
  rctd_run_jobs(sig_predict_run, jobs, sizeof *jobs, n_jobs);
}

/* calc_log_l_vec(prediction, counts) of the epoch: x * 1.0 is x. */
typedef struct {
  const rctd_qtable *table;
  const double *coef, *y, *pred;
  int64_t n;
  double log_l;
} sig_log_l_job;

static void *sig_log_l_run(void *arg) {
  sig_log_l_job *j = arg;
  const double one = 1.0;
  if (!j->coef ||
      rctd_spline_score_many(&j->table, &j->coef, 1, &one, 1, j->n, j->y, j->pred, &j->log_l))
    j->log_l = rctd_sigma_log_l(j->table, j->n, j->y, j->pred);
  return NULL;
}

/* The epoch's fits: the backend's return code FIT_RC, finite weights.  0, or -1 with err. */
static int sig_epoch_check(int fit_rc, const rctd_backend *backend, int64_t N, int K,
                           const double *weights_nk, char *err, size_t err_len) {
  if (fit_rc < 0)
    return rctd_fail(err, err_len, "fitting the %" PRId64 " sigma pixels failed (%s backend)", N,
                     backend->name);
  for (int64_t i = 0; i < N * K; i++)
    if (!isfinite(weights_nk[i]))
      return rctd_fail(err, err_len, "fit pixel %" PRId64 " has non-finite weights", i / K);
  return 0;
}

/* What every epoch of rctd_sigma_estimate uses. */
typedef struct {
  const rctd_sigma_problem *prob;
  rctd_rrng *rng;
  rctd_backend *backend;
  sig_tables *ts;
  const rctd_fit_batch *batch;
  const rctd_irwls_opts *iopts;
  double *weights_nk, *pred_ng;
  int32_t *conv_n;
  const double *profiles_kg;
  int n_threads;
} sig_epoch_ctx;

/* One epoch at SIGMA into ep: the fits, their prediction and likelihood, the draw and the
 * window's scores.  With more than one thread, the draw runs beside the fits and the
 * likelihood beside the gathering of the draw (neither changes the other's numbers). */
static int sig_epoch(const sig_epoch_ctx *c, int sigma, rctd_sigma_epoch *ep, char *err,
                     size_t err_len) {
  const rctd_sigma_problem *prob = c->prob;
  const int64_t N = prob->n_fit, n_obs = N * prob->n_genes;
  const int K = prob->n_types, beside = c->n_threads > 1;
  ep->sigma_fit = sigma;
  if (sig_tables_window(c->ts, rctd_sigma_index(sigma), err, err_len) < 0) return -1;
  const rctd_qtable *table = &c->ts->by_index[rctd_sigma_index(sigma)]->table;
  const double *coef = c->ts->coef_by_index[rctd_sigma_index(sigma)];
  sig_draw_job draw;
  if (sig_draw_init(&draw, c->rng, n_obs, err, err_len) < 0) return -1;
  pthread_t draw_thread;
  const int draw_beside = beside && pthread_create(&draw_thread, NULL, sig_draw_run, &draw) == 0;
  if (!draw_beside) sig_draw_run(&draw);
  int attached = coef && rctd_spline_coef_attach(table, coef) == 0;
  int fit_rc = c->backend->irwls_batch(c->backend, table, c->batch, c->iopts, c->weights_nk,
                                       c->conv_n, NULL);
  if (attached) rctd_spline_coef_detach(table);
  if (draw_beside) pthread_join(draw_thread, NULL);
  if (sig_epoch_check(fit_rc, c->backend, N, K, c->weights_nk, err, err_len) < 0) {
    free(draw.idx);
    return -1;
  }
  for (int64_t n = 0; n < N; n++) ep->n_converged += c->conv_n[n] != 0;
  sig_predict(prob, c->profiles_kg, c->weights_nk, c->pred_ng, c->n_threads);
  sig_log_l_job log_l = {table, coef, prob->y_ng, c->pred_ng, n_obs, 0};
  pthread_t log_l_thread;
  const int log_l_beside =
      beside && pthread_create(&log_l_thread, NULL, sig_log_l_run, &log_l) == 0;
  if (!log_l_beside) sig_log_l_run(&log_l);
  double *xs = NULL, *ys = NULL;
  const int gather_rc = sig_gather_obs(&draw, c->pred_ng, prob->y_ng, &xs, &ys, err, err_len);
  if (log_l_beside) pthread_join(log_l_thread, NULL);
  ep->log_l = log_l.log_l;
  if (gather_rc < 0) return -1;
  return sig_score_sample(c->ts, n_obs, draw.n, xs, ys, sigma, c->n_threads, ep, err, err_len);
}

int rctd_sigma_estimate(const rctd_sigma_problem *prob, rctd_rrng *rng, rctd_backend *backend,
                        const rctd_qtable_opts *qopts, const rctd_sigma_opts *opts,
                        rctd_sigma_epoch_fn on_epoch, void *ctx, rctd_sigma_result *res, char *err,
                        size_t err_len) {
  memset(res, 0, sizeof *res);
  const int G = prob->n_genes, K = prob->n_types;
  const int64_t N = prob->n_fit;
  if (N < 1 || G < 1 || K < 1) return rctd_fail(err, err_len, "nothing to fit for sigma");
  if (N > INT32_MAX / 2 || (uint64_t)N * (uint64_t)G > INT32_MAX)
    return rctd_fail(err, err_len, "%" PRId64 " fit pixels x %d genes is too many", N, G);
  if (opts->n_epoch < 1) return rctd_fail(err, err_len, "N_epoch must be at least 1");
  if (rctd_sigma_index(opts->start_value) < 0)
    return rctd_fail(err, err_len, "start sigma %d is not on the grid", opts->start_value);

  const int64_t n_obs = N * G;
  sig_tables ts;
  const int ts_rc = sig_tables_init(&ts, prob->y_ng, n_obs, qopts);
  double *weights_nk = malloc((size_t)N * K * sizeof *weights_nk);
  int32_t *conv_n = malloc((size_t)N * sizeof *conv_n);
  int32_t *pix_n = malloc((size_t)N * sizeof *pix_n);
  double *pred_ng = malloc((size_t)n_obs * sizeof *pred_ng);
  double *profiles_kg = malloc((size_t)G * K * sizeof *profiles_kg);
  res->epochs = calloc((size_t)opts->n_epoch, sizeof *res->epochs);
  int rc = -1;
  if (ts_rc < 0 || !weights_nk || !conv_n || !pix_n || !pred_ng || !profiles_kg || !res->epochs) {
    rctd_fail(err, err_len, "out of memory for %" PRId64 " fit pixels", N);
    goto done;
  }
  for (int g = 0; g < G; g++)
    for (int k = 0; k < K; k++)
      profiles_kg[(size_t)k * G + g] = prob->profiles_gk[(size_t)g * K + k];
  for (int64_t n = 0; n < N; n++) pix_n[n] = (int32_t)n;
  rctd_fit_batch batch = {.n_genes = G,
                          .n_types = K,
                          .profiles_gk = prob->profiles_gk,
                          .n_pix = (int)N,
                          .y_ng = prob->y_ng,
                          .numi_n = prob->numi_n,
                          .n_fits = (int)N,
                          .k_sub = K,
                          .pix_f = pix_n,
                          .types_fk = NULL};
  rctd_irwls_opts iopts = {.n_iter = opts->n_iter, .min_change = opts->min_change};
  const sig_epoch_ctx ec = {prob,       rng,     backend, &ts,         &batch,         &iopts,
                            weights_nk, pred_ng, conv_n,  profiles_kg, opts->n_threads};
  int sigma = opts->start_value;
  for (int e = 0; e < opts->n_epoch; e++) {
    rctd_sigma_epoch *ep = &res->epochs[e];
    ep->epoch = e + 1;
    if (sig_epoch(&ec, sigma, ep, err, err_len) < 0) goto done;
    res->n_epochs = e + 1;
    if (on_epoch) on_epoch(ctx, ep);
    int prev = sigma;
    sigma = ep->sigma_chosen;
    if (sigma == prev) {
      res->converged = 1;
      break;
    }
  }
  res->sigma_value = sigma;
  rc = 0;
done:
  sig_tables_free(&ts);
  free(weights_nk);
  free(conv_n);
  free(pix_n);
  free(pred_ng);
  free(profiles_kg);
  if (rc < 0) rctd_sigma_result_free(res);
  return rc;
}

/* ------------------------------------------------------------------ the stage */

void rctd_sigma_stage_opts_default(rctd_sigma_stage_opts *opts) {
  memset(opts, 0, sizeof *opts);
  rctd_sigma_opts_default(&opts->sigma);
  opts->seed = 1;
}

/* Where the input comes from: PATH1 for the model and the fit pixels, PATH2 for the copy. */
typedef struct {
  rctd_model_reader *mr;
  rctd_reader *copy;
} sig_input;

static void sig_input_close(sig_input *in) {
  if (in->mr) rctd_model_reader_close(in->mr);
  if (in->copy) rctd_reader_close(in->copy);
  memset(in, 0, sizeof *in);
}

/* LABEL names PATH in messages (NULL: PATH).  The model's pixel nUMI go to a temporary file in
 * TMP_DIR (memory independent of the pixel count). */
static int sig_open_twice(sig_input *in, const char *path, const char *label, const char *tmp_dir,
                          char *err, size_t err_len) {
  in->mr = rctd_model_open_spilled(path, label, 1, tmp_dir, err, err_len);
  if (!in->mr) return -1;
  in->copy =
      label ? rctd_reader_open_as(path, label, err, err_len) : rctd_reader_open(path, err, err_len);
  if (!in->copy) return sig_input_close(in), -1;
  return 0;
}

/* Copies R's records (frames undecoded) to W; 0, or -1 with the message in err. */
static int sig_copy_records(rctd_reader *r, rctd_writer *w, char *err, size_t err_len) {
  const rctd_record_info *info;
  for (;;) {
    int got = rctd_reader_next(r, &info);
    if (got == 0) return 0;
    if (got > 0 && rctd_reader_copy(r, w) == 0) continue;
    if (got > 0 && rctd_writer_error(w)[0] && !rctd_reader_error(r)[0])
      return rctd_fail(err, err_len, "%s: free some space or give --tmp-dir another directory",
                       rctd_writer_error(w));
    return rctd_fail(err, err_len, "%s", rctd_reader_error(r));
  }
}

/* Where both readers reopen the anonymous spool FD, each with its own position: its
 * /proc/self/fd path, when /proc is mounted (it is not in some chroots and sandboxes).
 * 0, or -1. */
static int sig_spool_proc_path(int fd, char *path, size_t len) {
  struct stat a, b;
  snprintf(path, len, "/proc/self/fd/%d", fd);
  if (fstat(fd, &a) != 0 || stat(path, &b) != 0) return -1;
  return a.st_dev == b.st_dev && a.st_ino == b.st_ino ? 0 : -1;
}

/* Without /proc: a named spool in DIR (unique among processes sharing it, even across PID
 * namespaces) that the atomic writer removes on errors and signals until it is complete. */
static rctd_writer *sig_spool_named(const char *dir, char *path, size_t len, char *err,
                                    size_t err_len) {
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  if (snprintf(path, len, "%s/rctd-sigma-spool-%ld-%lld%09ld.rctd", dir, (long)getpid(),
               (long long)now.tv_sec, (long)now.tv_nsec) >= (int)len) {
    rctd_fail(err, err_len, "%s: temporary directory name too long", dir);
    return NULL;
  }
  rctd_writer_opts wo = {0};
  return rctd_writer_open(path, &wo, err, err_len);
}

/* A piped input is copied (record frames, undecoded) to a temporary file in tmp_dir that both
 * readers then open.  Anonymous (unlinked from the start, reopened through /proc/self/fd), it
 * vanishes with the process however it ends (SIGKILL included); without /proc it is named,
 * and unlinked as soon as the readers have it open. */
static int sig_open_spooled(sig_input *in, const char *path, const char *tmp_dir, char *err,
                            size_t err_len) {
  const char *dir = rctd_temp_dir(tmp_dir);
  rctd_reader *r = rctd_reader_open(path, err, err_len);
  if (!r) return -1;
  char spool_path[4096];
  FILE *spool = rctd_temp_file(dir, "rctd-sigma-spool");
  int named = spool && sig_spool_proc_path(fileno(spool), spool_path, sizeof spool_path) < 0;
  if (named) fclose(spool);
  if (!spool) {
    rctd_reader_close(r);
    return rctd_fail(err, err_len,
                     "%s: cannot write the temporary copy of the piped input there (%s): give "
                     "--tmp-dir a writable directory",
                     dir, strerror(errno));
  }
  char label[600];
  snprintf(label, sizeof label, "%s: the temporary copy of the piped input", dir);
  rctd_writer_opts wo = {0};
  rctd_writer *w = named ? sig_spool_named(dir, spool_path, sizeof spool_path, err, err_len)
                         : rctd_writer_fopen(spool, label, &wo, err, err_len);
  int rc = w ? sig_copy_records(r, w, err, err_len) : -1, made = w != NULL;
  rctd_reader_close(r);
  char werr[RCTD_ERR_LEN];
  if (rc == 0 && rctd_writer_close(w, werr, sizeof werr) < 0)
    rc = rctd_fail(err, err_len, "%s: free some space or give --tmp-dir another directory", werr);
  else if (rc != 0 && w)
    rctd_writer_abort(w);
  /* Messages name the input, not the temporary copy (but for opening the copy itself). */
  if (rc == 0)
    rc = sig_open_twice(in, spool_path, strcmp(path, "-") ? path : "stdin", tmp_dir, err, err_len);
  if (named && made) unlink(spool_path);
  if (!named) fclose(spool);
  return rc;
}

static int sig_open_input(sig_input *in, const char *path, const char *tmp_dir, char *err,
                          size_t err_len) {
  memset(in, 0, sizeof *in);
  struct stat st;
  if (strcmp(path, "-") != 0 && stat(path, &st) == 0 && S_ISREG(st.st_mode))
    return sig_open_twice(in, path, NULL, tmp_dir, err, err_len);
  if (strcmp(path, "-") != 0 && access(path, R_OK) != 0)
    return rctd_fail(err, err_len, "%s: %s", path, strerror(errno));
  return sig_open_spooled(in, path, tmp_dir, err, err_len);
}

/* Fit pixels sorted by pixel index, to find them as the blocks go by. */
typedef struct {
  int64_t pixel, row;
} sig_fit_ref;

static int sig_fit_ref_cmp(const void *a, const void *b) {
  int64_t x = ((const sig_fit_ref *)a)->pixel, y = ((const sig_fit_ref *)b)->pixel;
  return (x > y) - (x < y);
}

/* Pass 1: every pixel block is read (and checked); the fit pixels' counts land in y_ng (rows in
 * fit order) and *max_count receives the largest count of all pixels. */
static int sig_gather(rctd_model_reader *mr, const int64_t *fit_n, int64_t n_fit, double *y_ng,
                      double *max_count, char *err, size_t err_len) {
  const rctd_model *m = rctd_model_reader_model(mr);
  const int G = m->n_reg;
  sig_fit_ref *refs = malloc((size_t)(n_fit > 0 ? n_fit : 1) * sizeof *refs);
  if (!refs) return rctd_fail(err, err_len, "out of memory");
  for (int64_t i = 0; i < n_fit; i++) refs[i] = (sig_fit_ref){fit_n[i], i};
  qsort(refs, (size_t)n_fit, sizeof *refs, sig_fit_ref_cmp);
  rctd_progress *prog =
      rctd_progress_start("sigma: reading pixels", (uint64_t)m->n_pixels, "pixels");
  rctd_pixel_block block;
  rctd_pixel_block_init(&block);
  double mx = 0;
  int64_t at = 0; /* next fit ref to find */
  int rc;
  while ((rc = rctd_model_next_block(mr, &block)) == 1) {
    for (int64_t i = 0; i < block.nnz; i++) {
      double v = block.values[i];
      if (!(v >= 0) || !isfinite(v)) {
        rc = rctd_fail(err, err_len, "%s: pixel counts must be finite and non-negative",
                       rctd_reader_label(rctd_model_reader_stream(mr)));
        goto done;
      }
      if (v > mx) mx = v;
    }
    for (; at < n_fit && refs[at].pixel < block.first + block.n; at++) {
      int64_t p = refs[at].pixel - block.first;
      double *row = y_ng + (size_t)refs[at].row * G;
      for (int64_t j = block.indptr[p]; j < block.indptr[p + 1]; j++) {
        if (block.indices[j] < 0 || block.indices[j] >= G) {
          rc = rctd_fail(err, err_len, "%s: pixel %" PRId64 ": gene index %d out of range",
                         rctd_reader_label(rctd_model_reader_stream(mr)), refs[at].pixel,
                         (int)block.indices[j]);
          goto done;
        }
        row[block.indices[j]] += block.values[j];
      }
    }
    rctd_progress_add(prog, (uint64_t)block.n);
  }
  if (rc < 0) rctd_fail(err, err_len, "%s", rctd_model_reader_error(mr));
done:
  rctd_progress_finish(prog);
  rctd_pixel_block_free(&block);
  free(refs);
  *max_count = mx;
  return rc < 0 ? -1 : 0;
}

/* Pass 2: from the first pixel record on, every record is copied as it is. */
static int sig_copy_pixels(rctd_reader *r, rctd_writer *w, char *err, size_t err_len) {
  int copying = 0;
  const rctd_record_info *info;
  for (;;) {
    int got = rctd_reader_next(r, &info);
    if (got == 0) return 0;
    if (got < 0) return rctd_fail(err, err_len, "%s", rctd_reader_error(r));
    if (!copying && strncmp(info->name, "pixels.", 7) == 0) copying = 1;
    int rc = copying ? rctd_reader_copy(r, w) : rctd_reader_skip(r);
    if (rc < 0)
      return rctd_fail(err, err_len, "%s",
                       rctd_reader_error(r)[0] ? rctd_reader_error(r) : rctd_writer_error(w));
  }
}

/* Removes earlier sigma stages' records (sigma, its table, this tool's provenance). */
static void sig_drop_old_records(rctd_model *m, const char *tool) {
  char prov[256];
  snprintf(prov, sizeof prov, "provenance.%s", tool ? tool : "rctd-sigma");
  size_t kept = 0;
  for (size_t i = 0; i < m->n_extra; i++) {
    const char *name = m->extra[i].name;
    if (strcmp(name, RCTD_SIGMA_REC) == 0 || strncmp(name, "qtable.", 7) == 0 ||
        strcmp(name, prov) == 0) {
      rctd_record_free(&m->extra[i]);
      continue;
    }
    m->extra[kept++] = m->extra[i];
  }
  m->n_extra = kept;
}

static int sig_set_config_num(rctd_model *m, const char *key, double v) {
  char text[64];
  snprintf(text, sizeof text, "%.17g", v);
  return rctd_model_config_set(m, key, text);
}

/* The sigma record's keys and values (texts in text, epoch lists in lists). */
#define SIG_META_MAX 16
typedef struct {
  const char *keys[SIG_META_MAX];
  const char *values[SIG_META_MAX];
  char text[SIG_META_MAX][1024];
  char *lists[3]; /* the epoch lists, as long as the epochs need */
  size_t n, n_lists;
} sig_meta;

static void sig_meta_add(sig_meta *mm, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void sig_meta_add(sig_meta *mm, const char *key, const char *fmt, ...) {
  if (mm->n >= SIG_META_MAX) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(mm->text[mm->n], sizeof mm->text[mm->n], fmt, ap);
  va_end(ap);
  mm->keys[mm->n] = key;
  mm->values[mm->n] = mm->text[mm->n];
  mm->n++;
}

/* Adds KEY = "v1,v2,..." over the epochs (WHAT: 0 sigma fitted, 1 likelihood, 2 chosen); every
 * epoch, however many (a cut list would read as other values).  -1: out of memory. */
static int sig_meta_list(sig_meta *mm, const char *key, const rctd_sigma_result *res, int what) {
  const size_t cap = (size_t)res->n_epochs * 32 + 1;
  char *t = malloc(cap);
  if (!t || mm->n >= SIG_META_MAX || mm->n_lists >= 3) return free(t), -1;
  size_t len = 0;
  t[0] = 0;
  for (int e = 0; e < res->n_epochs; e++) {
    const rctd_sigma_epoch *ep = &res->epochs[e];
    const char *sep = e ? "," : "";
    int w = what == 0   ? snprintf(t + len, cap - len, "%s%d", sep, ep->sigma_fit)
            : what == 1 ? snprintf(t + len, cap - len, "%s%.17g", sep, ep->log_l)
                        : snprintf(t + len, cap - len, "%s%d", sep, ep->sigma_chosen);
    len += (size_t)w; /* at most 26 characters an entry */
  }
  mm->lists[mm->n_lists++] = t;
  mm->keys[mm->n] = key;
  mm->values[mm->n++] = t;
  return 0;
}

static void sig_meta_free(sig_meta *mm) {
  for (size_t i = 0; i < mm->n_lists; i++) free(mm->lists[i]);
}

/* A comma-separated list of N numbers into OUT (N entries); -1 when it is not that. */
static int sig_parse_list(const char *text, int n, double *out) {
  const char *p = text;
  for (int i = 0; i < n; i++) {
    char *end;
    errno = 0;
    out[i] = strtod(p, &end);
    if (end == p || errno == ERANGE || *end != (i + 1 < n ? ',' : '\0')) return -1;
    p = end + 1;
  }
  return 0;
}

/* A grid value written as a number, or -1. */
static int sig_grid_value(double v) {
  if (!(v >= 1 && v <= 1000) || v != floor(v)) return -1;
  return rctd_sigma_index((int)v) >= 0 ? (int)v : -1;
}

void rctd_sigma_trace_free(rctd_sigma_trace *t) {
  free(t->sigma_fit);
  free(t->sigma_chosen);
  free(t->log_l);
  memset(t, 0, sizeof *t);
}

int rctd_sigma_trace_read(const rctd_record *rec, const char *label, rctd_sigma_trace *t, char *err,
                          size_t err_len) {
  memset(t, 0, sizeof *t);
  t->n_fit = t->converged = -1;
  const char *src = rctd_record_meta_get(rec, "source");
  snprintf(t->source, sizeof t->source, "%s", src ? src : "");
  const char *n_fit = rctd_record_meta_get(rec, "n_fit");
  const char *conv = rctd_record_meta_get(rec, "converged");
  if (n_fit) t->n_fit = strtoll(n_fit, NULL, 10);
  if (conv) t->converged = atoi(conv) != 0;
  const char *lists[3] = {rctd_record_meta_get(rec, "epoch_sigma"),
                          rctd_record_meta_get(rec, "epoch_log_l"),
                          rctd_record_meta_get(rec, "epoch_chosen")};
  if (!lists[0] && !lists[1] && !lists[2]) return 0; /* a given sigma: no epochs */
  int n = lists[0] && *lists[0] ? 1 : 0;
  for (const char *p = lists[0]; p && *p; p++) n += *p == ',';
  double *v = malloc(3 * (size_t)(n ? n : 1) * sizeof *v);
  t->sigma_fit = malloc((size_t)(n ? n : 1) * sizeof *t->sigma_fit);
  t->sigma_chosen = malloc((size_t)(n ? n : 1) * sizeof *t->sigma_chosen);
  t->log_l = malloc((size_t)(n ? n : 1) * sizeof *t->log_l);
  if (!v || !t->sigma_fit || !t->sigma_chosen || !t->log_l) {
    free(v);
    rctd_sigma_trace_free(t);
    return rctd_fail(err, err_len, "out of memory");
  }
  int ok = n > 0;
  for (int i = 0; i < 3 && ok; i++) ok = lists[i] && sig_parse_list(lists[i], n, v + i * n) == 0;
  for (int e = 0; e < n && ok; e++) {
    t->sigma_fit[e] = sig_grid_value(v[e]);
    t->sigma_chosen[e] = sig_grid_value(v[2 * n + e]);
    t->log_l[e] = v[n + e];
    ok = t->sigma_fit[e] > 0 && t->sigma_chosen[e] > 0 && isfinite(t->log_l[e]);
  }
  free(v);
  if (!ok) {
    rctd_sigma_trace_free(t);
    return rctd_fail(err, err_len,
                     "%s: record '%s': damaged epoch lists (epoch_sigma, epoch_log_l, "
                     "epoch_chosen): run rctd-sigma again",
                     label, RCTD_SIGMA_REC);
  }
  t->n_epochs = n;
  return 0;
}

static void sig_on_epoch(void *ctx, const rctd_sigma_epoch *ep) {
  (void)ctx;
  rctd_log_info("epoch %d: Likelihood value: %.15g", ep->epoch, ep->log_l);
  rctd_log_info("epoch %d: Sigma value: %g", ep->epoch, ep->sigma_chosen / 100.0);
}

typedef struct {
  sig_input in;
  rctd_model *model;
  rctd_rrng rng;
  const char *rng_source;
  int64_t *fit_n, n_fit;
  double *y_ng, *numi_n;
  double max_count;
  rctd_sigma_result res;
  int sigma_value;
  rctd_qtable_owned table;
  int have_table;
  rctd_backend *own_backend;
  rctd_writer *w;
} sig_run;

/* R's random stream: set.seed(--seed) when asked, else the model's recorded state. */
static void sig_rng_init(sig_run *r, const rctd_sigma_stage_opts *o) {
  if (o->have_seed) {
    rctd_rrng_seed(&r->rng, o->seed);
    r->rng_source = "seed";
  } else if (rctd_model_rng(r->model, &r->rng) == 0) {
    r->rng_source = "model";
  } else {
    rctd_rrng_seed(&r->rng, o->seed);
    r->rng_source = "seed (the model has no random state)";
  }
}

static int sig_estimate_stage(sig_run *r, const rctd_sigma_stage_opts *o,
                              const rctd_qtable_opts *qo, char *err, size_t err_len) {
  const rctd_model *m = r->model;
  rctd_backend *be = o->backend;
  if (!be) be = r->own_backend = rctd_backend_cpu(o->sigma.n_threads < 1 ? 1 : o->sigma.n_threads);
  if (!be) return rctd_fail(err, err_len, "cannot start the CPU backend");
  r->numi_n = malloc((size_t)r->n_fit * sizeof *r->numi_n);
  if (!r->numi_n) return rctd_fail(err, err_len, "out of memory");
  for (int64_t i = 0; i < r->n_fit; i++)
    if (rctd_model_pixel_numi(m, r->fit_n[i], 1, &r->numi_n[i]) < 0)
      return rctd_fail(err, err_len, RCTD_MODEL_NUMI_READ_FAILED);
  rctd_log_info("chooseSigma: %" PRId64
                " fit pixels (nUMI > %g), random stream from the %s; "
                "using initial Q_mat with sigma = %g",
                r->n_fit, o->sigma.umi_min_sigma, r->rng_source, o->sigma.start_value / 100.0);
  rctd_sigma_problem prob = {m->n_reg, m->n_types, m->profiles_gk, r->n_fit, r->y_ng, r->numi_n};
  if (rctd_sigma_estimate(&prob, &r->rng, be, qo, &o->sigma, sig_on_epoch, NULL, &r->res, err,
                          err_len) < 0)
    return -1;
  r->sigma_value = r->res.sigma_value;
  return 0;
}

/* The model as it goes out: old sigma records dropped, config and random state updated. */
static int sig_update_model(sig_run *r, const rctd_sigma_stage_opts *o, int estimated) {
  rctd_model *m = r->model;
  sig_drop_old_records(m, o->provenance ? o->provenance->tool : NULL);
  if (!estimated) return 0;
  if (sig_set_config_num(m, "UMI_min_sigma", o->sigma.umi_min_sigma) < 0 ||
      sig_set_config_num(m, "N_fit", (double)o->sigma.n_fit) < 0 ||
      sig_set_config_num(m, "N_epoch", o->sigma.n_epoch) < 0)
    return -1;
  if (m->n_rng != RCTD_R_SEED_WORDS) {
    int32_t *s = realloc(m->rng_state, RCTD_R_SEED_WORDS * sizeof *s);
    if (!s) return -1;
    m->rng_state = s;
    m->n_rng = RCTD_R_SEED_WORDS;
  }
  rctd_rng_state_save(&r->rng, m->rng_state);
  return 0;
}

static int sig_write_sigma_record(sig_run *r, const rctd_sigma_stage_opts *o, int estimated) {
  sig_meta mm;
  mm.n = mm.n_lists = 0;
  sig_meta_add(&mm, "sigma_c", "%.2f", r->sigma_value / 100.0);
  sig_meta_add(&mm, "sigma_value", "%d", r->sigma_value);
  sig_meta_add(&mm, "source", "%s", estimated ? "estimated" : "given");
  if (estimated) {
    sig_meta_add(&mm, "n_fit", "%" PRId64, r->n_fit);
    sig_meta_add(&mm, "umi_min_sigma", "%.17g", o->sigma.umi_min_sigma);
    sig_meta_add(&mm, "n_epochs", "%d", r->res.n_epochs);
    sig_meta_add(&mm, "converged", "%d", r->res.converged);
    sig_meta_add(&mm, "random_stream", "%s", r->rng_source);
    if (o->have_seed) sig_meta_add(&mm, "seed", "%d", (int)o->seed);
    if (sig_meta_list(&mm, "epoch_sigma", &r->res, 0) < 0 ||
        sig_meta_list(&mm, "epoch_log_l", &r->res, 1) < 0 ||
        sig_meta_list(&mm, "epoch_chosen", &r->res, 2) < 0)
      return sig_meta_free(&mm), -1;
  }
  int rc = rctd_write_meta(r->w, RCTD_SIGMA_REC, mm.keys, mm.values, mm.n);
  sig_meta_free(&mm);
  return rc;
}

static int sig_write_output(sig_run *r, const char *out_path, const rctd_sigma_stage_opts *o,
                            int estimated, char *err, size_t err_len) {
  if (sig_update_model(r, o, estimated) < 0) return rctd_fail(err, err_len, "out of memory");
  r->w = rctd_writer_open(out_path, &o->writer, err, err_len);
  if (!r->w) return -1;
  if (rctd_model_write(r->w, r->model) < 0 ||
      (o->provenance && o->provenance->write(o->provenance, r->w) < 0) ||
      sig_write_sigma_record(r, o, estimated) < 0 || rctd_qtable_write_records(r->w, &r->table) < 0)
    return rctd_fail(err, err_len, "%s",
                     rctd_writer_error(r->w)[0] ? rctd_writer_error(r->w) : "out of memory");
  if (sig_copy_pixels(r->in.copy, r->w, err, err_len) < 0) return -1;
  rctd_writer *w = r->w;
  r->w = NULL;
  return rctd_writer_close(w, err, err_len);
}

int rctd_sigma_stage_run(const char *in_path, const char *out_path, const rctd_sigma_stage_opts *o,
                         char *err, size_t err_len) {
  sig_run r;
  memset(&r, 0, sizeof r);
  int estimated = !(o->fixed_sigma > 0);
  if (!estimated && (r.sigma_value = rctd_sigma_value_of(o->fixed_sigma)) < 0)
    return rctd_fail(err, err_len,
                     "sigma %g is not on the grid (0.10..0.70 by 0.01, 0.72..2.00 by 0.02, or the "
                     "same times 100)",
                     o->fixed_sigma);
  if (estimated &&
      (o->sigma.n_fit < 1 || o->sigma.n_epoch < 1 || rctd_sigma_index(o->sigma.start_value) < 0))
    return rctd_fail(err, err_len, "N_fit and N_epoch must be at least 1");
  rctd_qtable_opts qo = {.cache_dir = o->cache_dir,
                         .n_threads = o->sigma.n_threads < 1 ? 1 : o->sigma.n_threads,
                         .backend = NULL};
  int rc = -1;
  if (sig_open_input(&r.in, in_path, o->tmp_dir, err, err_len) < 0) goto done;
  r.model = rctd_model_reader_model(r.in.mr);
  const char *label = rctd_reader_label(rctd_model_reader_stream(r.in.mr));
  if (estimated) {
    sig_rng_init(&r, o);
    if (rctd_sigma_pick_pixels(&r.rng, r.model, &o->sigma, &r.fit_n, &r.n_fit, err, err_len) < 0) {
      char msg[RCTD_ERR_LEN];
      snprintf(msg, sizeof msg, "%s", err);
      rctd_fail(err, err_len, "%s: %s", label, msg);
      goto done;
    }
    size_t cells = (size_t)r.n_fit * (size_t)r.model->n_reg;
    r.y_ng = calloc(cells ? cells : 1, sizeof *r.y_ng);
    if (!r.y_ng) {
      rctd_fail(err, err_len, "out of memory for %" PRId64 " fit pixels", r.n_fit);
      goto done;
    }
  }
  if (sig_gather(r.in.mr, r.fit_n, r.n_fit, r.y_ng, &r.max_count, err, err_len) < 0) goto done;
  if (estimated && sig_estimate_stage(&r, o, &qo, err, err_len) < 0) goto done;
  if (!estimated) rctd_log_info("sigma = %g (given; no estimate)", r.sigma_value / 100.0);
  char msg[RCTD_ERR_LEN], note[512];
  if (rctd_qtable_get(r.sigma_value, sig_n_k(r.max_count), &qo, &r.table, note, sizeof note, msg,
                      sizeof msg) < 0) {
    rctd_fail(err, err_len, "likelihood table for sigma %d: %s", r.sigma_value, msg);
    goto done;
  }
  r.have_table = 1;
  sig_warn_not_cached(note);
  if (sig_write_output(&r, out_path, o, estimated, err, err_len) < 0) goto done;
  rc = 0;
done:
  if (r.w) rctd_writer_abort(r.w);
  if (r.have_table) rctd_qtable_owned_free(&r.table);
  if (r.own_backend) r.own_backend->destroy(r.own_backend);
  rctd_sigma_result_free(&r.res);
  free(r.fit_n);
  free(r.y_ng);
  free(r.numi_n);
  sig_input_close(&r.in);
  return rc;
}
