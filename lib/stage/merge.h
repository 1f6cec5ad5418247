/* rctd-merge: gathers the result streams of one fit (rctd-fit-full, -doublet or -multi; one
 * stream, or the N shards of a run in any order, from files or standard input), checks that
 * they fit together and writes what users open (lib/io/output.h): an h5ad (into a copy of the
 * spatial h5ad, or a fresh file), spacexr's CSV layout, a JSON and a text summary.  The model
 * records the fit passed on come along: rctd-sigma's record gives the h5ad its
 * uns/rctd/sigma_epochs (the per-epoch trace; a damaged record is an error).
 *
 * Completeness: every input must carry the same fingerprint (model + settings, result.meta);
 * their chunk ranges must cover the run's chunks exactly once; every shard must end with its
 * result.summary; pixels must come in order, each once.  A foreign, duplicated, missing or
 * truncated shard is an error naming the file or the shard.
 *
 * Determinism: inputs are read in chunk order whatever their order on the command line, and
 * the writers write nothing that depends on the shard layout, the clock or the host, so the
 * output bytes are the same for 1 or N shards given in any order.
 *
 * Memory: one chunk of results at a time (plus names and O(pixels) bytes for a fresh h5ad's
 * obs names). */
#ifndef RCTD_MERGE_H
#define RCTD_MERGE_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct {
  const char *const *inputs; /* result streams ("-" = standard input, at most once) */
  int n_inputs;
  const char *spatial;        /* the spatial input of the run, or NULL */
  const char *spatial_format; /* "auto" (NULL), "h5ad", "10x-h5", "mtx", "csv" */
  const char *coords_table;   /* coordinates for a fresh h5ad from a non-h5ad input, or NULL */
  const char *h5ad_path;      /* write the h5ad here, or NULL */
  const char *csv_dir;        /* write CSV files into this directory, or NULL */
  const char *json_path;      /* JSON summary ("-" = standard output), or NULL */
  const char *summary_path;   /* text summary ("-" = standard output), or NULL */
  const char *multiqc_path;   /* MultiQC general statistics: NAME_mqc.json or NAME_mqc.tsv */
  const char *multiqc_sample; /* its sample name; NULL: -o's base name (less .h5ad), else
                                 --spatial's, else "rctd" */
  int progress;               /* progress on stderr */
} rctd_merge_opts;

/* 0, or -1 with one line "FILE: what is wrong and what to do" in err; no output file is left
 * behind on failure. */
int rctd_merge_run(const rctd_merge_opts *opts, char *err, size_t err_len);

/* MultiQC custom content (lib/stage/merge_multiqc.c): one sample's row of the General Statistics
 * table (pixels fitted, % filtered, % singlet / doublet / reject in doublet mode, sigma, the
 * three most frequent dominant types), as MultiQC's JSON or TSV (plot_type generalstats), so
 * that a pipeline's MultiQC report shows every sample in one table. */
typedef struct {
  const char *sample;
  int mode; /* RCTD_OUT_FULL, _DOUBLET, _MULTI */
  double sigma;
  int64_t n_input; /* -1 when unknown */
  int64_t n_fitted;
  const int64_t *spot_class; /* doublet: reject, singlet, doublet_certain, doublet_uncertain */
  int n_types;
  const char *const *type_names;
  const int64_t *dominant_k; /* pixels whose dominant type is k */
} rctd_multiqc_stats;

/* 0 for a .json path, 1 for .tsv, -1 for anything else. */
int rctd_multiqc_format(const char *path);
void rctd_multiqc_write(FILE *f, const rctd_multiqc_stats *s, int tsv);

/* The CSV directory used with --format h5ad,csv: H5AD_PATH without ".h5ad", else + "_csv".
 * Returns a malloc'd string. */
char *rctd_merge_csv_dir_for(const char *h5ad_path);

#endif
