/* The fitting stage behind rctd-fit-full, rctd-fit-doublet and rctd-fit-multi: reads a model
 * stream (rctd-normalize | rctd-sigma), fits its pixels chunk by chunk with lib/stage/fit_modes.h and
 * writes a result stream chunk by chunk, so memory does not grow with the number of pixels.
 *
 * Chunks and shards: the pixels (in model order) are cut into fit chunks of chunk_pixels pixels
 * (the last one shorter), independently of how the input stream blocks them.  Of the T chunks,
 * shard I of N (1-based) fits chunks [floor(T (I-1) / N), floor(T I / N)).  Results do not depend
 * on the chunk size, the shard or the thread count: shard outputs concatenated in shard order
 * hold the same result records, byte for byte, as the unsharded run's.
 *
 * Result stream (documented in man/man5/rctd-stream.5, section RESULT STREAMS):
 *   result.meta      meta: format rctd-result, version, mode, sigma, thresholds, the chunking,
 *                    the shard and a fingerprint of model + settings (the same for every shard
 *                    of one run, so rctd-merge can tell foreign shards);
 *   the model records (as rctd_model_write writes them, without likelihood-table records);
 *   provenance.TOOL  (when the caller passes its rctd_cli);
 *   per chunk, a block of result.* records (attribute "first" = index of the chunk's first
 *   pixel, "chunk" = chunk index), beginning with result.pixel; see RCTD_RES_REC_*;
 *   result.summary   meta: chunks and pixels written (a truncated shard lacks it).
 *
 * Errors: functions return 0 or -1 with one line "FILE: what is wrong and what to do" in err. */
#ifndef RCTD_FIT_STAGE_H
#define RCTD_FIT_STAGE_H
#include <stddef.h>
#include <stdint.h>

#include "provenance.h"
#include "rctd_kernels.h"
#include "stream.h"

#define RCTD_RESULT_FORMAT "rctd-result"
#define RCTD_RESULT_VERSION 1

#define RCTD_RES_REC_META "result.meta"
#define RCTD_RES_REC_SUMMARY "result.summary"
/* Every mode, per chunk (n = pixels of the chunk). */
#define RCTD_RES_REC_PIXEL "result.pixel"     /* i64 n: index of the pixel in the model order */
#define RCTD_RES_REC_BARCODE "result.barcode" /* strings n */
#define RCTD_RES_REC_ROW "result.row"         /* i64 n: row in the spatial input (pixels.row) */
#define RCTD_RES_REC_NUMI "result.numi"       /* f64 n */
#define RCTD_RES_REC_WEIGHTS "result.weights" /* f64 n x K: the full fit's raw weights */
#define RCTD_RES_REC_CONV "result.conv"       /* u8 n: full fit converged (full mode) */
/* Doublet mode. */
#define RCTD_RES_REC_SPOT_CLASS                                        \
  "result.spot_class" /* u8 n: 0 reject, 1 singlet, 2 doublet_certain, \
                         3 doublet_uncertain */
#define RCTD_RES_REC_FIRST_TYPE "result.first_type"           /* i32 n: 0-based type index */
#define RCTD_RES_REC_SECOND_TYPE "result.second_type"         /* i32 n */
#define RCTD_RES_REC_FIRST_CLASS "result.first_class"         /* u8 n */
#define RCTD_RES_REC_SECOND_CLASS "result.second_class"       /* u8 n */
#define RCTD_RES_REC_MIN_SCORE "result.min_score"             /* f64 n (doublet and multi) */
#define RCTD_RES_REC_SINGLET_SCORE "result.singlet_score"     /* f64 n */
#define RCTD_RES_REC_CONV_ALL "result.conv_all"               /* u8 n (doublet and multi) */
#define RCTD_RES_REC_CONV_DOUBLET "result.conv_doublet"       /* u8 n */
#define RCTD_RES_REC_WEIGHTS_DOUBLET "result.weights_doublet" /* f64 n x 2, sum 1 */
#define RCTD_RES_REC_N_CANDIDATES "result.n_candidates"       /* i32 n */
/* Multi mode (M = max_multi_types; unused slots: type -1, conf 0, weight 0). */
#define RCTD_RES_REC_MULTI_STATUS                                                              \
  "result.multi_status"                               /* u8 n: 0 ok, 1 no candidate, 2 no type \
                                                       */
#define RCTD_RES_REC_N_TYPES "result.n_types"         /* i32 n */
#define RCTD_RES_REC_TYPES "result.types"             /* i32 n x M */
#define RCTD_RES_REC_CONF "result.conf"               /* u8 n x M */
#define RCTD_RES_REC_SUB_WEIGHTS "result.sub_weights" /* f64 n x M */
#define RCTD_RES_REC_CONV_SUB "result.conv_sub"       /* u8 n */

typedef enum { RCTD_FIT_FULL = 0, RCTD_FIT_DOUBLET = 1, RCTD_FIT_MULTI = 2 } rctd_fit_mode;

/* "full", "doublet", "multi". */
const char *rctd_fit_mode_name(rctd_fit_mode mode);

typedef struct {
  rctd_fit_mode mode;
  double sigma;                 /* > 0: use this sigma_c (0.84) instead of the stream's */
  double confidence_threshold;  /* CONFIDENCE_THRESHOLD */
  double doublet_threshold;     /* DOUBLET_THRESHOLD */
  int max_multi_types;          /* MAX_MULTI_TYPES */
  int shard_index, shard_count; /* 1-based shard I of N; 1/1 = every pixel */
  int chunk_pixels;             /* pixels per fit chunk */
  int n_threads;
  rctd_backend *backend;   /* NULL: a CPU backend with n_threads */
  const char *cache_dir;   /* likelihood-table cache (NULL default, "" none) */
  int progress;            /* report progress on stderr (lib/cli's reporter) */
  const rctd_provenance *provenance; /* provenance.TOOL to write, or NULL */
  rctd_writer_opts writer; /* compression level (chunk rows are set per chunk) */
} rctd_fit_stage_opts;

/* R's defaults, shard 1/1, 1024 pixels per chunk, 1 thread. */
void rctd_fit_stage_opts_default(rctd_fit_stage_opts *opts);

/* Parses "I/N" (1 <= I <= N).  0, or -1 with a message in err. */
int rctd_fit_parse_shard(const char *text, int *index, int *count, char *err, size_t err_len);

/* Chunks [*first, *end) of shard I of N among n_chunks. */
void rctd_fit_shard_chunks(int64_t n_chunks, int shard_index, int shard_count, int64_t *first,
                           int64_t *end);

/* Runs the stage: IN_PATH ("-" = stdin) to OUT_PATH ("-" = stdout; a file appears only when the
 * run succeeds).  Nothing is written before the model, the sigma and the first chunk of this
 * shard have been checked.  0 or -1 (message in err). */
int rctd_fit_stage_run(const char *in_path, const char *out_path, const rctd_fit_stage_opts *opts,
                       char *err, size_t err_len);

/* main() of rctd-fit-MODE: options (lib/cli conventions), then rctd_fit_stage_run.  Returns the
 * exit status. */
int rctd_fit_main(rctd_fit_mode mode, int argc, char **argv);

#endif
