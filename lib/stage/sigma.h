/* The sigma stage: spacexr's choose_sigma_c (with chooseSigma), as library functions over
 * in-memory arrays, plus the streamed driver behind rctd-sigma.
 *
 * What R does, and this reproduces draw for draw and bit for bit where R's arithmetic is plain
 * double (sums of scores are long double, as R's sum()):
 *   N_fit = min(N_fit, #pixels with nUMI > UMI_min_sigma) (strict); 0 is an error;
 *   fit_ind = sample(candidates, N_fit) with R's stream (candidates in pixel order);
 *   sigma = 100 (grid value; sigma_c = sigma / 100); for each of at most N_epoch epochs:
 *     fit every fit pixel with all K types (unconstrained IRWLS, 50 iterations, MIN_CHANGE_REG)
 *     using the table of the current sigma; prediction = profiles %*% t(weights) * nUMI
 *     (genes fastest); report the likelihood calc_log_l_vec(prediction, counts);
 *     chooseSigma: X = pmax(prediction, 1e-4), Y = counts, permuted (or, above 1e6 values,
 *     subsampled) by sample(); for the grid values within 8 places of sigma, score = min over
 *     multipliers 0.8, 0.9, 1, 1.1, 1.2 of calc_log_l_vec(X * m, Y); the new sigma is the
 *     first minimum; stop when it equals the previous one.
 *
 * Errors: functions return 0 or -1 with one line in err ("what is wrong and what to do"). */
#ifndef RCTD_SIGMA_H
#define RCTD_SIGMA_H
#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "provenance.h"
#include "qtable_cache.h"
#include "rctd_kernels.h"
#include "rrng.h"
#include "sigma_trace.h"
#include "stream.h"

/* The record rctd-sigma adds to the model (meta): sigma_c ("0.84"), sigma_value (84), source
 * ("estimated" or "given"), and for an estimate n_fit, n_epochs, converged, the per-epoch
 * sigmas and likelihoods, and where the random stream came from.  The chosen sigma's table
 * follows as the qtable.* records (qtable_cache.h). */
#define RCTD_SIGMA_REC "sigma"
#define RCTD_SIGMA_START 100 /* choose_sigma_c's initial grid value */
#define RCTD_SIGMA_WINDOW 8  /* candidates: grid places i-8 .. i+8 */
#define RCTD_SIGMA_MAX_CAND (2 * RCTD_SIGMA_WINDOW + 1)
#define RCTD_SIGMA_MAX_SAMPLE 1000000 /* chooseSigma: at most this many values are scored */

typedef struct {
  int64_t n_fit;        /* N_fit 1000 */
  double umi_min_sigma; /* UMI_min_sigma 300 (pixels with nUMI > it) */
  int n_epoch;          /* N_epoch 8 */
  double min_change;    /* MIN_CHANGE_REG 0.001 */
  int n_iter;           /* IRWLS iterations, 50 */
  int start_value;      /* initial sigma grid value, 100 */
  int n_threads;        /* threads scoring the candidates and predicting; with 2 or more, each
                           epoch's draw and likelihood run beside other work (< 1: 1); the
                           tables load on the rctd_qtable_opts' threads */
} rctd_sigma_opts;

void rctd_sigma_opts_default(rctd_sigma_opts *opts);

/* fit_ind: N_fit of MODEL's pixels with nUMI > umi_min_sigma (read a block at a time, from
 * memory or the model's spill file: memory O(N_fit)), drawn with R's sample() from
 * RNG (which advances as R's stream).  *fit_n (malloc'd, *n_fit entries) receives 0-based pixel
 * indices in R's order (the order of the fit pixels' rows from then on).  No candidate is an
 * error whose message suggests lowering UMI_min_sigma, as R's. */
int rctd_sigma_pick_pixels(rctd_rrng *rng, const rctd_model *model, const rctd_sigma_opts *opts,
                           int64_t **fit_n, int64_t *n_fit, char *err, size_t err_len);

/* spacexr calc_log_l_vec(lambda, Y): -sum(d0(Y, lambda)), summed in order in long double and
 * rounded to double, as R's sum().  Every y must have a row in the table. */
double rctd_sigma_log_l(const rctd_qtable *table, int64_t n, const double *y, const double *lambda);

/* One epoch's outcome. */
typedef struct {
  int epoch;               /* 1-based */
  int sigma_fit;           /* grid value the pixels were fitted with */
  double log_l;            /* R's "Likelihood value" message */
  int n_converged;         /* fits whose IRWLS converged */
  int64_t n_obs, n_scored; /* values in the prediction; values chooseSigma scored */
  int n_cand;              /* candidates (<= RCTD_SIGMA_MAX_CAND) */
  int cand_value[RCTD_SIGMA_MAX_CAND];
  double cand_score[RCTD_SIGMA_MAX_CAND];
  int sigma_chosen; /* grid value chooseSigma returned */
} rctd_sigma_epoch;

/* chooseSigma on n_obs predictions and counts (genes fastest, as R's vectors): draws the
 * sample() permutation or subsample from RNG, scores the candidates around SIGMA_VALUE (tables
 * from rctd_qtable_get with QOPTS) and fills out's n_scored, n_cand, cand_*, sigma_chosen. */
int rctd_sigma_choose(rctd_rrng *rng, int64_t n_obs, const double *pred, const double *y,
                      int sigma_value, const rctd_qtable_opts *qopts, const rctd_sigma_opts *opts,
                      rctd_sigma_epoch *out, char *err, size_t err_len);

/* The fit pixels, in fit order. */
typedef struct {
  int n_genes, n_types;
  const double *profiles_gk; /* n_genes x n_types: the platform-normalised profiles (reg genes) */
  int64_t n_fit;
  const double *y_ng;   /* n_fit x n_genes counts */
  const double *numi_n; /* n_fit */
} rctd_sigma_problem;

typedef struct {
  int sigma_value;          /* the chosen grid value */
  int n_epochs;             /* epochs run */
  int converged;            /* 1: stopped because the sigma did not change */
  rctd_sigma_epoch *epochs; /* n_epochs */
} rctd_sigma_result;

void rctd_sigma_result_free(rctd_sigma_result *res);

/* Called after every epoch (for R's messages); may be NULL. */
typedef void (*rctd_sigma_epoch_fn)(void *ctx, const rctd_sigma_epoch *epoch);

/* The epochs of choose_sigma_c on the fit pixels, from opts->start_value.  BACKEND fits the
 * pixels; tables come from rctd_qtable_get with QOPTS (only the sigmas visited, rows up to the
 * largest count of the fit pixels).  RNG continues R's stream (one sample() per epoch). */
int rctd_sigma_estimate(const rctd_sigma_problem *prob, rctd_rrng *rng, rctd_backend *backend,
                        const rctd_qtable_opts *qopts, const rctd_sigma_opts *opts,
                        rctd_sigma_epoch_fn on_epoch, void *ctx, rctd_sigma_result *res, char *err,
                        size_t err_len);

/* REC (RCTD_SIGMA_REC) into T (arrays malloc'd).  0, or -1 with "LABEL: record 'sigma': ..."
 * in err when its epoch lists are damaged. */
int rctd_sigma_trace_read(const rctd_record *rec, const char *label, rctd_sigma_trace *t, char *err,
                          size_t err_len);
void rctd_sigma_trace_free(rctd_sigma_trace *t);

/* Grid value of a user's sigma: sigma_c (0.10 .. 2.00, e.g. 0.84) or a grid value (10 .. 200).
 * -1 when it is not on the grid. */
int rctd_sigma_value_of(double sigma);

/* ---- the streamed driver (rctd-sigma) ----
 * Reads a model stream (rctd-normalize), estimates sigma (or takes the given one) and writes
 * the model records with the sigma record and the chosen sigma's table added (R's random
 * state advanced past the draws), then the pixel records of the input, copied frame by frame.
 * The model and sigma must precede the pixels, so the input is read twice: a regular file is
 * opened twice; anything else (a pipe) is first copied, undecoded, to a temporary file in
 * tmp_dir that is unlinked as soon as it is open.  Memory: the model, the fit pixels' counts
 * (N_fit x genes) and one pixel block. */
typedef struct {
  rctd_sigma_opts sigma;
  double fixed_sigma;    /* > 0: use this sigma (sigma_c or grid value); no estimate */
  int have_seed;         /* 1: set.seed(seed) before the draws instead of the model's state */
  int32_t seed;          /* used also when the model has no random state */
  const char *cache_dir; /* likelihood-table cache (NULL default, "" none) */
  const char *tmp_dir;   /* for the copy of a piped input (NULL: $TMPDIR, else /tmp) */
  rctd_backend *backend; /* NULL: a CPU backend with sigma.n_threads threads */
  const rctd_provenance *provenance; /* provenance.TOOL to write, or NULL */
  rctd_writer_opts writer;           /* output stream options */
} rctd_sigma_stage_opts;

void rctd_sigma_stage_opts_default(rctd_sigma_stage_opts *opts);

/* IN_PATH ("-" = stdin) to OUT_PATH ("-" = stdout; a file appears only on success).  Messages
 * (R's per-epoch lines, cache notes) go through rctd_log_info.  0 or -1 (message in err). */
int rctd_sigma_stage_run(const char *in_path, const char *out_path,
                         const rctd_sigma_stage_opts *opts, char *err, size_t err_len);

#endif
