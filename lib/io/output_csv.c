/* CSV results in spacexr's layout, as R's write.csv writes them, so that R users can diff. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "atomic_out.h"
#include "log.h"
#include "progress.h"
#include "error.h"
#include "output.h"

enum { CSV_WEIGHTS, CSV_WEIGHTS_DOUBLET, CSV_RESULTS_DF, CSV_MULTI, CSV_N_FILES };

static const char *const csv_file_names[CSV_N_FILES] = {"weights.csv", "weights_doublet.csv",
                                                        "results_df.csv", "multi_results.csv"};

struct rctd_csv_writer {
  const rctd_results_info *info;
  FILE *files[CSV_N_FILES];
  char *paths[CSV_N_FILES];
  int64_t next_pixel;
};

/* A string field as write.csv quotes it (embedded quotes doubled). */
static void csv_put_string(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    if (*s == '"') fputc('"', f);
    fputc(*s, f);
  }
  fputc('"', f);
}

static void csv_put_double(FILE *f, double x, int digits) {
  char buf[64];
  rctd_out_format_double(x, digits, buf, sizeof buf);
  fputs(buf, f);
}

static const char *csv_bool(int v) {
  return v ? "TRUE" : "FALSE";
}

static const char *csv_type_name(const rctd_results_info *info, int32_t k) {
  return k >= 0 && k < info->n_types ? info->type_names[k] : "NA";
}

static int csv_want(const rctd_results_info *info, int file) {
  switch (file) {
    case CSV_WEIGHTS:
      return 1;
    case CSV_WEIGHTS_DOUBLET:
    case CSV_RESULTS_DF:
      return info->mode == RCTD_OUT_DOUBLET;
    case CSV_MULTI:
      return info->mode == RCTD_OUT_MULTI;
  }
  return 0;
}

static void csv_write_headers(rctd_csv_writer *w) {
  const rctd_results_info *info = w->info;
  FILE *f = w->files[CSV_WEIGHTS];
  fputs("\"\"", f);
  for (int k = 0; k < info->n_types; k++) {
    fputc(',', f);
    csv_put_string(f, info->type_names[k]);
  }
  fputc('\n', f);
  if (w->files[CSV_WEIGHTS_DOUBLET])
    fputs("\"\",\"first_type\",\"second_type\"\n", w->files[CSV_WEIGHTS_DOUBLET]);
  if (w->files[CSV_RESULTS_DF])
    fputs(
        "\"\",\"spot_class\",\"first_type\",\"second_type\",\"first_class\",\"second_class\","
        "\"min_score\",\"singlet_score\",\"conv_all\",\"conv_doublet\"\n",
        w->files[CSV_RESULTS_DF]);
  if (w->files[CSV_MULTI])
    fputs("\"barcode\",\"n_types\",\"cell_types\",\"conf\",\"sub_weights\",\"min_score\"\n",
          w->files[CSV_MULTI]);
}

rctd_csv_writer *rctd_csv_open(const char *dir, const rctd_results_info *info, char *err,
                               size_t err_len) {
  struct stat st;
  if (stat(dir, &st) == 0) {
    if (!S_ISDIR(st.st_mode)) {
      rctd_fail(err, err_len, "%s: exists and is not a directory (CSV output is a directory)", dir);
      return NULL;
    }
  } else if (mkdir(dir, 0777) != 0) {
    rctd_fail(err, err_len, "%s: cannot create the output directory: %s", dir, strerror(errno));
    return NULL;
  }
  rctd_csv_writer *w = calloc(1, sizeof *w);
  if (!w) {
    rctd_fail(err, err_len, "%s: out of memory", dir);
    return NULL;
  }
  w->info = info;
  for (int i = 0; i < CSV_N_FILES; i++) {
    if (!csv_want(info, i)) continue;
    size_t n = strlen(dir) + strlen(csv_file_names[i]) + 2;
    w->paths[i] = malloc(n);
    if (!w->paths[i]) {
      rctd_fail(err, err_len, "%s: out of memory", dir);
      rctd_csv_abort(w);
      return NULL;
    }
    snprintf(w->paths[i], n, "%s/%s", dir, csv_file_names[i]);
    w->files[i] = rctd_out_open(w->paths[i], err, err_len);
    if (!w->files[i]) {
      rctd_csv_abort(w);
      return NULL;
    }
  }
  csv_write_headers(w);
  return w;
}

static void csv_write_doublet_row(rctd_csv_writer *w, const rctd_results_chunk *c, int64_t i) {
  const rctd_results_info *info = w->info;
  FILE *f = w->files[CSV_WEIGHTS_DOUBLET];
  csv_put_string(f, c->barcode_n[i]);
  for (int j = 0; j < 2; j++) {
    fputc(',', f);
    csv_put_double(f, c->weights_doublet_n2[i * 2 + j], 15);
  }
  fputc('\n', f);
  f = w->files[CSV_RESULTS_DF];
  csv_put_string(f, c->barcode_n[i]);
  fputc(',', f);
  csv_put_string(f, rctd_out_spot_class_name(c->spot_class_n[i]));
  fputc(',', f);
  csv_put_string(f, csv_type_name(info, c->first_type_n[i]));
  fputc(',', f);
  csv_put_string(f, csv_type_name(info, c->second_type_n[i]));
  fprintf(f, ",%s,%s,", csv_bool(c->first_class_n[i]), csv_bool(c->second_class_n[i]));
  csv_put_double(f, c->min_score_n[i], 15);
  fputc(',', f);
  csv_put_double(f, c->singlet_score_n[i], 15);
  fprintf(f, ",%s,%s\n", csv_bool(c->conv_all_n[i]), csv_bool(c->conv_doublet_n[i]));
}

/* One multi_results.csv row: the selected types, flags and weights as ';'-joined lists. */
static void csv_write_multi_row(rctd_csv_writer *w, const rctd_results_chunk *c, int64_t i) {
  const rctd_results_info *info = w->info;
  const int M = info->multi_slots;
  FILE *f = w->files[CSV_MULTI];
  int n = c->n_types_n[i];
  if (n < 0) n = 0;
  if (n > M) n = M;
  csv_put_string(f, c->barcode_n[i]);
  fprintf(f, ",%d,\"", n);
  for (int j = 0; j < n; j++) {
    if (j) fputc(';', f);
    const char *name = csv_type_name(info, c->types_nm[i * M + j]);
    for (const char *p = name; *p; p++) {
      if (*p == '"') fputc('"', f);
      fputc(*p, f);
    }
  }
  fputs("\",\"", f);
  for (int j = 0; j < n; j++) fprintf(f, "%s%s", j ? ";" : "", csv_bool(c->conf_nm[i * M + j]));
  fputs("\",\"", f);
  /* R formats a pixel's weights together (format(x, digits = 17)): common decimals. */
  char bufs[64][40];
  rctd_out_format_doubles(c->sub_weights_nm + i * M, n < 64 ? n : 64, 17, bufs);
  for (int j = 0; j < n && j < 64; j++) fprintf(f, "%s%s", j ? ";" : "", bufs[j]);
  fputs("\",\"", f);
  csv_put_double(f, c->min_score_n[i], 17);
  fputs("\"\n", f);
}

int rctd_csv_write_chunk(rctd_csv_writer *w, const rctd_results_chunk *c, char *err,
                         size_t err_len) {
  const rctd_results_info *info = w->info;
  const int K = info->n_types;
  if (c->first != w->next_pixel)
    return rctd_fail(err, err_len, "%s: results out of order (pixel %lld where %lld was expected)",
                     w->paths[CSV_WEIGHTS], (long long)c->first, (long long)w->next_pixel);
  for (int64_t i = 0; i < c->n; i++) {
    FILE *f = w->files[CSV_WEIGHTS];
    csv_put_string(f, c->barcode_n[i]);
    for (int k = 0; k < K; k++) {
      fputc(',', f);
      csv_put_double(f, c->weights_nk[i * K + k], 15);
    }
    fputc('\n', f);
    if (info->mode == RCTD_OUT_DOUBLET) csv_write_doublet_row(w, c, i);
    if (info->mode == RCTD_OUT_MULTI) csv_write_multi_row(w, c, i);
  }
  w->next_pixel += c->n;
  for (int i = 0; i < CSV_N_FILES; i++)
    if (w->files[i] && ferror(w->files[i]))
      return rctd_fail(err, err_len, "%s: write failed: %s", w->paths[i], strerror(errno));
  return 0;
}

int rctd_csv_close(rctd_csv_writer *w, char *err, size_t err_len) {
  int rc = 0;
  for (int i = 0; i < CSV_N_FILES; i++) {
    if (!w->files[i]) continue;
    FILE *f = w->files[i];
    w->files[i] = NULL;
    if (rc == 0) {
      if (rctd_out_commit(f, err, err_len) != 0) rc = -1;
    } else {
      rctd_out_abort(f);
    }
  }
  for (int i = 0; i < CSV_N_FILES; i++) free(w->paths[i]);
  free(w);
  return rc;
}

void rctd_csv_abort(rctd_csv_writer *w) {
  if (!w) return;
  for (int i = 0; i < CSV_N_FILES; i++) {
    if (w->files[i]) rctd_out_abort(w->files[i]);
    free(w->paths[i]);
  }
  free(w);
}
