/* The reference stage: spacexr's Reference() and the reference half of create.RCTD()
 * (process_cell_type_info, get_cell_type_info, create_downsampled_data), as library functions
 * over in-memory arrays, and the streamed driver behind rctd-reference (rctd_reference_build).
 *
 * Order of operations, as R runs set.seed(seed); Reference(); create.RCTD():
 *   1. cells with a label and nUMI >= min_UMI are kept (R: Reference's min_UMI filter);
 *   2. (option, not R) types below CELL_MIN_INSTANCE are dropped with their cells, as if the
 *      user had removed them from the input;
 *   3. when a type has more than n_max_cells cells, every type is resampled with R's
 *      sample() (create_downsampled_data(reference, n_max_cells)) and empty levels dropped;
 *   4. any type below CELL_MIN_INSTANCE is an error (process_cell_type_info);
 *   5. create.RCTD's create_downsampled_data(reference, 5) consumes its sample() draws (the
 *      profiles do not depend on it, but the random stream later stages continue does);
 *   6. profiles: per type, mean over its cells of counts / nUMI (get_cell_type_info), for the
 *      types of cell_type_names (all levels by default) in that order.
 *
 * Errors: functions return 0 or -1 with one line in err ("what is wrong and what to do"). */
#ifndef RCTD_REFERENCE_H
#define RCTD_REFERENCE_H
#include <stddef.h>
#include <stdint.h>

#include "input.h"
#include "reference_select.h"
#include "stream.h"

/* Record names and format of a reference stream (written by rctd-reference). */
#define RCTD_REF_FORMAT "rctd-reference"
#define RCTD_REF_VERSION 1
#define RCTD_REF_REC_META "reference.meta"             /* meta: format, version, counts */
#define RCTD_REF_REC_CONFIG "reference.config"         /* meta: effective options */
#define RCTD_REF_REC_TYPES "reference.type_names"      /* strings K */
#define RCTD_REF_REC_TYPE_CELLS "reference.type_cells" /* i64 vector K: cells per type */
#define RCTD_REF_REC_CLASSES "reference.type_classes"  /* strings K: class of each type */
#define RCTD_REF_REC_GENES "reference.gene_names"      /* strings G */
#define RCTD_REF_REC_PROFILES "reference.profiles"     /* f64 G x K */
#define RCTD_REF_REC_RNG "reference.rng_state"         /* i32 vector: R's .Random.seed */

/* The profile types (R's cell_type_names): the given names in their order, or every level.
 * types_k receives K level indices (caller allocates n_levels).  A name that is not a level
 * is an error.  Returns K or -1. */
int rctd_reference_profile_types(const rctd_ref_cells *cells, const char *const *code_names,
                                 const char *const *subset, int n_subset, int32_t *types_k,
                                 char *err, size_t err_len);

/* Step 6, streamed: a G x K accumulator of sums of counts / nUMI, fed one input row at a
 * time (rows without a profile type are ignored).  Sums are plain double sums in input order
 * (R's rowSums of a dense Matrix accumulates in double); with downsampling R sums in the
 * sampled order instead, which can differ in the last bit. */
typedef struct {
  int n_genes, n_types;
  int32_t *type_of_level; /* level -> profile column or -1 */
  double *sum_gk;         /* n_genes x n_types */
  int64_t *cells_k;
} rctd_profile_acc;

int rctd_profile_acc_init(rctd_profile_acc *acc, int n_genes, const rctd_ref_cells *cells,
                          const int32_t *types_k, int n_types, char *err, size_t err_len);
/* Adds input row ROW (its sparse counts; codes_n and numi_n as given to
 * rctd_reference_select) mult_n[row] times to its type's column. */
void rctd_profile_acc_add(rctd_profile_acc *acc, const rctd_ref_cells *cells,
                          const int32_t *codes_n, const double *numi_n, int64_t row, int64_t nnz,
                          const int32_t *gene_idx, const double *values);
/* profiles_gk = sum / number of cells (R's rowSums(normData) / dim(normData)[2]). */
void rctd_profile_acc_finish(const rctd_profile_acc *acc, double *profiles_gk);
void rctd_profile_acc_free(rctd_profile_acc *acc);

/* In-memory convenience (tests, small data): the whole of step 6 over a dense cells x genes
 * matrix counts_ng (n_rows x n_genes). */
int rctd_reference_profiles_dense(const rctd_ref_cells *cells, const int32_t *codes_n,
                                  const int32_t *types_k, int n_types, int n_genes,
                                  const double *counts_ng, const double *numi_n,
                                  double *profiles_gk, char *err, size_t err_len);

/* Cell type -> class table (spacexr class_df), read from a CSV/TSV file with a header row:
 * column 1 = cell type, column 2 = class.  Every type must have a row.  class_names receives
 * K malloc'd strings (free each, then the array).  Returns 0 or -1. */
int rctd_class_table_read(const char *path, const char *const *type_names, int n_types,
                          char ***class_names, char *err, size_t err_len);

/* ---- the reference stream ---- */

/* R's .Random.seed length for Mersenne-Twister (kind code, position, 624 state words). */
#define RCTD_REF_RNG_WORDS 626 /* = RCTD_R_SEED_WORDS of model.h */

typedef struct {
  int n_types;
  char **type_names;     /* K, profile column order (R's cell_type_names) */
  char **class_names;    /* K: class of each type (the type itself without a class table) */
  int64_t *type_cells_k; /* K: reference cells per type */
  int n_genes;
  char **gene_names;   /* G, reference order */
  double *profiles_gk; /* G x K: mean normalised expression */
  int n_rng;
  int32_t *rng_state; /* R's .Random.seed after Reference() and create.RCTD's draws */
  size_t n_config;    /* effective options (R names) */
  char **config_keys, **config_values;
  size_t n_extra; /* other records (provenance.*), in order */
  rctd_record *extra;
} rctd_reference_data;

void rctd_reference_data_free(rctd_reference_data *ref);
/* Writes the reference records and the extra ones.  0, or -1 (rctd_writer_error). */
int rctd_reference_write(rctd_writer *w, const rctd_reference_data *ref);
/* Loads a reference stream ("-" = stdin) and checks its format, version and sizes. */
int rctd_reference_load(const char *path, rctd_reference_data *ref, char *err, size_t err_len);

/* ---- streamed driver (rctd-reference) ---- */
typedef struct {
  rctd_reference_opts select; /* steps 1-5 */
  const char *cell_types;     /* cell_type_names: comma-separated (blanks around names ignored),
                                 or NULL: every level */
  const char *class_table;    /* class_df file (rctd_class_table_read), or NULL: each type is
                                 its own class */
  int check_numi;             /* nUMI was given (not count sums): warn where it differs from
                                 the count sums, as Reference() does */
  const char *label;          /* name of the input in messages; NULL: rctd_input_path */
} rctd_reference_build_opts;

/* The whole stage over IN (opened with cell types required): steps 1-5, the nUMI check, the
 * profile types, one streamed pass for step 6 (with progress), the classes, the effective
 * configuration (R names) and the random state.  Warnings and a summary line go through
 * rctd_log_warn / rctd_log_info.  OUT receives everything but extra records (free it with
 * rctd_reference_data_free, also after an error).  0, or -1 with one line in err. */
int rctd_reference_build(rctd_input *in, const rctd_reference_build_opts *opts,
                         rctd_reference_data *out, char *err, size_t err_len);

#endif
