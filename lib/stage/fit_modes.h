/* Per-pixel RCTD modes (spacexr fitPixels: full, doublet, multi) on a chunk of pixels.
 *
 * Every step of a mode is issued as ONE batch of fits for the whole chunk through the backend
 * (rctd_backend.irwls_batch), so a GPU backend sees large batches; the decisions between steps
 * (candidates, pair ranking, classes, greedy growth) run on the host and follow spacexr's
 * process_bead_doublet / process_bead_multi exactly, including R's first-minimum tie rules.
 * All pixel fits run unconstrained, as fitPixels calls them (constrain = FALSE).
 *
 * Type indices are 0-based positions in the profile columns (R's type order). */
#ifndef RCTD_FIT_MODES_H
#define RCTD_FIT_MODES_H
#include <stddef.h>
#include <stdint.h>

#include "rctd_kernels.h"

/* Largest MAX_MULTI_TYPES accepted (R's default is 4). */
#define RCTD_MULTI_TYPES_CAP 16

/* What a mode needs besides the pixels: the model, the table for the chosen sigma, the backend
 * and R's thresholds.  rctd_fit_params_default fills the thresholds with create.RCTD's. */
typedef struct {
  int n_genes, n_types;        /* G regression genes, K types */
  const double *profiles_gk;   /* G x K normalised profiles restricted to gene_list_reg */
  const rctd_qtable *table;    /* likelihood table for sigma */
  rctd_backend *backend;       /* runs the batches */
  const int32_t *class_k;      /* K class ids (class_df), or NULL: every type its own class */
  double min_change;           /* MIN_CHANGE_REG, 1e-3 */
  double confidence_threshold; /* CONFIDENCE_THRESHOLD, 5 */
  double doublet_threshold;    /* DOUBLET_THRESHOLD, 20 */
  int max_multi_types;         /* MAX_MULTI_TYPES, 4 (at most RCTD_MULTI_TYPES_CAP) */
} rctd_fit_params;

void rctd_fit_params_default(rctd_fit_params *params);

/* A chunk of pixels: dense counts over the G regression genes and each pixel's nUMI. */
typedef struct {
  int n_pix;
  const double *y_ng;   /* n_pix x G */
  const double *numi_n; /* n_pix */
} rctd_pixel_chunk;

/* ---- full mode ---- */

/* One unconstrained 50-iteration fit over all K types per pixel: raw weights (as R stores them,
 * not normalised) into weights_nk (n_pix x K) and the convergence flag into conv_n. */
int rctd_fit_full(const rctd_fit_params *params, const rctd_pixel_chunk *chunk, double *weights_nk,
                  int32_t *conv_n, char *err, size_t err_len);

/* ---- doublet mode ---- */

/* spot_class values: the order of R's factor levels. */
enum {
  RCTD_SPOT_REJECT = 0,
  RCTD_SPOT_SINGLET = 1,
  RCTD_SPOT_DOUBLET_CERTAIN = 2,
  RCTD_SPOT_DOUBLET_UNCERTAIN = 3
};
/* Names of the spot classes as R prints them ("reject", ...), or NULL when out of range. */
const char *rctd_spot_class_name(int spot_class);

/* One pixel of results_df plus weights_doublet. */
typedef struct {
  int32_t spot_class;
  int32_t first_type, second_type;   /* type indices */
  int32_t first_class, second_class; /* 1: the call refers to the type's class (R's TRUE) */
  int32_t conv_all, conv_doublet;
  int32_t n_candidates; /* types scored in pairs (not in R's results_df) */
  double min_score, singlet_score;
  double doublet_weights[2]; /* first_type, second_type; sum 1 */
} rctd_doublet_result;

/* process_bead_doublet for every pixel of the chunk: results into result_n (n_pix) and the
 * full fit's raw weights into all_weights_nk (n_pix x K; R's weights / all_weights).
 * doublet_weights and conv_doublet come from process_bead_doublet's final fit: after the call (and
 * the swap), the two types are refitted in their final order (first_type, second_type) with 50
 * iterations, not in score mode, and the weights normalised to sum 1.
 * Needs K >= 2. */
int rctd_fit_doublet(const rctd_fit_params *params, const rctd_pixel_chunk *chunk,
                     rctd_doublet_result *result_n, double *all_weights_nk, char *err,
                     size_t err_len);

/* ---- multi mode ---- */

/* Pixel status: R stops the whole run on a pixel whose type list stays empty (no weight of the
 * full fit above 0.01); here such a pixel is flagged, its list is empty, and the chunk goes on. */
enum {
  RCTD_MULTI_OK = 0,
  RCTD_MULTI_NO_CANDIDATE = 1, /* no type above 0.01 in the full fit */
  RCTD_MULTI_NO_TYPE = 2       /* candidates, but none improved on R's start score (1e10) */
};

typedef struct {
  int32_t status;                           /* RCTD_MULTI_OK, or why the list is empty */
  int32_t n_types;                          /* length of cell_type_list (0 when flagged) */
  int32_t types[RCTD_MULTI_TYPES_CAP];      /* cell_type_list, in order of selection */
  int32_t conf[RCTD_MULTI_TYPES_CAP];       /* conf_list */
  double sub_weights[RCTD_MULTI_TYPES_CAP]; /* final fit over types, normalised to sum 1 */
  double min_score;                         /* score of the selected list (R's min_score) */
  int32_t conv_all, conv_sub;
} rctd_multi_result;

/* process_bead_multi for every pixel of the chunk: results into result_n (n_pix) and the full
 * fit's raw weights into all_weights_nk (n_pix x K). */
int rctd_fit_multi(const rctd_fit_params *params, const rctd_pixel_chunk *chunk,
                   rctd_multi_result *result_n, double *all_weights_nk, char *err, size_t err_len);

#endif
