/* The model stream shared by the stages after rctd-normalize (rctd-sigma, rctd-fit-*).
 *
 * Layout (record names below), in this order:
 *   1. model records: everything a stage needs in full, small (O(genes x types) plus one nUMI
 *      per pixel): types and classes, both gene lists, the platform-normalised profiles,
 *      fitBulk's proportions, the effective configuration, R's random state, the nUMI of
 *      every pixel, then any other records a stage added (provenance.*, sigma, ...);
 *   2. pixel blocks, each a group of records with the same names every block:
 *        pixels.barcodes  strings  n
 *        pixels.numi      f64      n        nUMI as given or summed at input, never recomputed
 *        pixels.row       i64      n        row of the pixel in the spatial input (0-based)
 *        pixels.coords    f64      n x 2    only when the model has coordinates
 *        pixels.counts    CSR f64  n x G    counts over genes_reg (col_names model.genes_reg)
 *      Every record of a block carries the attribute "first" = index of its first pixel.
 * A stage reads the model with rctd_model_open and then the pixels block by block with
 * rctd_model_next_block, so its memory is bounded by the block size.
 *
 * Pixel order is R's puck order (the spatial input's order after the filters), so pixel i of
 * the stream is colnames(RCTD@spatialRNA@counts)[i + 1]; model.pixel_numi lets a stage draw
 * R's samples over pixels (choose_sigma_c's fit_ind) before it reads any block, continuing
 * R's random stream from rctd_model_rng.
 *
 * Errors: functions return 0 (1 for "got one") or -1 with one line "FILE: what is wrong" in
 * err or in rctd_model_reader_error. */
#ifndef RCTD_MODEL_H
#define RCTD_MODEL_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "rrng.h"
#include "stream.h"

#define RCTD_MODEL_FORMAT "rctd-model"
#define RCTD_MODEL_VERSION 1

#define RCTD_MODEL_REC_META "model.meta"                   /* meta: format, version, sizes */
#define RCTD_MODEL_REC_CONFIG "model.config"               /* meta: effective configuration */
#define RCTD_MODEL_REC_TYPES "model.type_names"            /* strings K */
#define RCTD_MODEL_REC_CLASSES "model.type_classes"        /* strings K: class of each type */
#define RCTD_MODEL_REC_GENES_REG "model.genes_reg"         /* strings G_reg (gene_list_reg) */
#define RCTD_MODEL_REC_GENES_BULK "model.genes_bulk"       /* strings G_bulk (gene_list_bulk) */
#define RCTD_MODEL_REC_PROFILES "model.profiles"           /* f64 G_reg x K */
#define RCTD_MODEL_REC_PROFILES_BULK "model.profiles_bulk" /* f64 G_bulk x K */
#define RCTD_MODEL_REC_BULK_WEIGHTS "model.bulk_weights"   /* f64 K */
#define RCTD_MODEL_REC_PIXEL_NUMI "model.pixel_numi" /* f64 N: nUMI of every pixel, in order */
#define RCTD_MODEL_REC_RNG "model.rng_state"         /* i32: R's .Random.seed to continue */

#define RCTD_PIX_REC_BARCODES "pixels.barcodes"
#define RCTD_PIX_REC_NUMI "pixels.numi"
#define RCTD_PIX_REC_ROW "pixels.row"
#define RCTD_PIX_REC_COORDS "pixels.coords"
#define RCTD_PIX_REC_COUNTS "pixels.counts"

typedef struct {
  /* Cell types, in R's order (profile columns). */
  int n_types;
  char **type_names;  /* K */
  char **class_names; /* K: class of each type (R's class_df; the type itself by default) */
  int32_t *class_k;   /* K: class id of each type (first appearance order), for fit_modes */
  int n_classes;

  /* Gene lists in R's order. */
  int n_reg, n_bulk;
  char **genes_reg;  /* gene_list_reg */
  char **genes_bulk; /* gene_list_bulk */

  /* Platform-normalised profiles (R's cell_type_info$renorm[[1]]), row-major. */
  double *profiles_gk;      /* n_reg x K: renorm[gene_list_reg, ]: what the fits use */
  double *profiles_bulk_gk; /* n_bulk x K: renorm over gene_list_bulk */
  double *bulk_weights_k;   /* K: fitBulk proportions (R's internal_vars$proportions) */
  int bulk_converged;       /* fitBulk's IRWLS converged */

  /* Pixels (R's puck after every filter). */
  int64_t n_pixels;
  double *pixel_numi_n; /* n_pixels, in stream order */
  double sum_numi;      /* sum(puck@nUMI), long double accumulation as R's sum() */
  int has_coords;
  /* Or, when pixel_numi_n is NULL, the same n_pixels values as raw doubles from the start of
   * this (anonymous temporary) file: rctd-normalize spills them there so that its memory does
   * not grow with the pixel count.  Owned: closed by rctd_model_free. */
  FILE *pixel_numi_spill;

  /* Effective configuration: R's config names (UMI_min, counts_MIN, ...), values as text. */
  size_t n_config;
  char **config_keys, **config_values;

  /* R's random state (.Random.seed) to continue from, or n_rng == 0 when unknown. */
  int n_rng;
  int32_t *rng_state;

  /* Other records before the pixels (provenance.*, records later stages add), in order. */
  size_t n_extra;
  rctd_record *extra;
} rctd_model;

void rctd_model_free(rctd_model *model);

/* Configuration value for KEY (R's name, e.g. "UMI_min"), or NULL. */
const char *rctd_model_config(const rctd_model *model, const char *key);
/* Parses a numeric configuration value; 0, or -1 when missing or not a number. */
int rctd_model_config_double(const rctd_model *model, const char *key, double *value);
/* Sets (adds or replaces) a configuration value.  0 or -1 (out of memory). */
int rctd_model_config_set(rctd_model *model, const char *key, const char *value);
/* An extra record by name, or NULL. */
const rctd_record *rctd_model_extra(const rctd_model *model, const char *name);
/* Appends REC to the extra records (ownership moves; *rec is zeroed).  0 or -1. */
int rctd_model_add_extra(rctd_model *model, rctd_record *rec);
/* Sets class_k and n_classes from class_names: ids in order of first appearance over the
 * types.  0 or -1 (out of memory). */
int rctd_model_class_ids(rctd_model *model);
/* Index of a type or gene by name, or -1. */
int rctd_model_type_index(const rctd_model *model, const char *name);

/* Pixel nUMI [FIRST, FIRST + N) into OUT, from pixel_numi_n or the spill file.  0, or -1 (out
 * of range, or a read error). */
int rctd_model_pixel_numi(const rctd_model *model, int64_t first, int64_t n, double *out);
/* What a stage says when that read (or rctd_model_numi_blocks') fails. */
#define RCTD_MODEL_NUMI_READ_FAILED "cannot read the pixel nUMI back from their temporary file"

/* Every pixel's nUMI in order, RCTD_MODEL_NUMI_BLOCK at a time (from memory or the spill file):
 * each(ctx, first, numi, n) per block; it returns 0 to go on, 1 to stop.  0 (all read, or
 * stopped), or -1 (a read error, or each returned -1). */
#define RCTD_MODEL_NUMI_BLOCK 4096
int rctd_model_numi_blocks(const rctd_model *model,
                           int (*each)(void *ctx, int64_t first, const double *numi, int64_t n),
                           void *ctx);

/* Checks sizes and consistency (K >= 2, reg genes present, finite profiles, ...).  0 or -1. */
int rctd_model_check(const rctd_model *model, char *err, size_t err_len);

/* Writes the model records (and the extra records) to W.  0, or -1 (rctd_writer_error). */
int rctd_model_write(rctd_writer *w, const rctd_model *model);

/* R's .Random.seed for Mersenne-Twister: kind code 10403, the position (mti), 624 words.
 * This is the layout of the model.rng_state and reference.rng_state records. */
#define RCTD_R_SEED_WORDS 626
#define RCTD_R_SEED_KIND_MT 10403
void rctd_rng_state_save(const rctd_rrng *rng, int32_t seed[RCTD_R_SEED_WORDS]);
/* 0, or -1 when SEED (n words) is not a Mersenne-Twister .Random.seed. */
int rctd_rng_state_load(const int32_t *seed, int n, rctd_rrng *rng);
/* The model's random state (to continue R's stream): 0, or -1 when it has none. */
int rctd_model_rng(const rctd_model *model, rctd_rrng *rng);

/* ---- pixel blocks ---- */
typedef struct {
  int64_t first; /* index of the first pixel of the block among all pixels */
  int64_t n;     /* pixels in the block */
  const char *const *barcodes;
  const double *numi_n;    /* n */
  const int64_t *row_n;    /* n: rows in the spatial input */
  const double *coords_n2; /* n x 2 (x, y), or NULL */
  const int64_t *indptr;   /* n + 1, indptr[0] == 0 */
  const int32_t *indices;  /* nnz: index into genes_reg */
  const double *values;    /* nnz */
  int64_t nnz;
  rctd_record recs_[5]; /* private: storage */
} rctd_pixel_block;

void rctd_pixel_block_init(rctd_pixel_block *block);
void rctd_pixel_block_free(rctd_pixel_block *block);
/* Dense copy of the counts: y_ng (n x n_genes, zero-filled first). */
void rctd_pixel_block_dense(const rctd_pixel_block *block, int n_genes, double *y_ng);

/* Writes one block.  indptr may start at any offset (indptr[0] is subtracted).  coords_n2 may
 * be NULL only when the model has no coordinates.  0, or -1 (rctd_writer_error). */
int rctd_pixel_block_write(rctd_writer *w, const rctd_pixel_block *block, int n_genes);

/* ---- reading a model stream ---- */
typedef struct rctd_model_reader rctd_model_reader;

/* Opens PATH ("-" = stdin), reads and checks the model records, and stops before the first
 * pixel block.  NULL with err set on failure (not a model stream, another format version,
 * inconsistent records). */
rctd_model_reader *rctd_model_open(const char *path, char *err, size_t err_len);
/* The same, naming the stream LABEL in messages (a temporary copy of an input). */
rctd_model_reader *rctd_model_open_as(const char *path, const char *label, char *err,
                                      size_t err_len);
/* The same; with SPILL_NUMI the pixel nUMI record goes to an anonymous temporary file in
 * TMP_DIR (NULL: $TMPDIR or /tmp) (model->pixel_numi_spill, pixel_numi_n NULL; read it with
 * rctd_model_pixel_numi) instead of memory, so that a stage's memory does not grow with the pixel
 * count. */
rctd_model_reader *rctd_model_open_spilled(const char *path, const char *label, int spill_numi,
                                           const char *tmp_dir, char *err, size_t err_len);
/* The model read (owned by the reader). */
rctd_model *rctd_model_reader_model(rctd_model_reader *mr);
/* Copies every record the block reader does not know (records after the model that are not
 * pixel records) to PASS instead of skipping them.  PASS may be NULL (skip). */
void rctd_model_reader_set_pass(rctd_model_reader *mr, rctd_writer *pass);
/* Reads the next pixel block into BLOCK (its previous content is freed).  1 with a block, 0 at
 * the end of the stream (after checking that every pixel was seen), -1 on error. */
int rctd_model_next_block(rctd_model_reader *mr, rctd_pixel_block *block);
const char *rctd_model_reader_error(const rctd_model_reader *mr);
/* The underlying stream reader (for stages that read records of their own). */
rctd_reader *rctd_model_reader_stream(rctd_model_reader *mr);
void rctd_model_reader_close(rctd_model_reader *mr);

#endif
