/* MultiQC custom content (general statistics) of one merged run: see rctd_multiqc_write. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "merge.h"
#include "output.h"

/* One column of the general statistics table. */
typedef struct {
  const char *key, *title, *description, *format, *suffix;
  double max; /* < 0: none */
} mq_column;

enum { MQ_FITTED, MQ_FILTERED, MQ_SINGLET, MQ_DOUBLET, MQ_REJECT, MQ_SIGMA, MQ_TOP, MQ_N };

static const mq_column mq_columns[MQ_N] = {
    {"pixels_fitted", "Pixels fitted", "RCTD: pixels that passed the filters and were fitted",
     "{:,.0f}", "", -1},
    {"pct_filtered", "% Filtered", "RCTD: pixels of the spatial input removed by the filters",
     "{:,.1f}", "%", 100},
    {"pct_singlet", "% Singlet", "RCTD doublet mode: fitted pixels classed singlet", "{:,.1f}", "%",
     100},
    {"pct_doublet", "% Doublet",
     "RCTD doublet mode: fitted pixels classed doublet (certain or "
     "uncertain)",
     "{:,.1f}", "%", 100},
    {"pct_reject", "% Reject", "RCTD doublet mode: fitted pixels classed reject", "{:,.1f}", "%",
     100},
    {"sigma", "Sigma", "RCTD: platform effect sigma (sigma_c) chosen by rctd-sigma", "{:,.2f}", "",
     -1},
    {"top_types", "Top types", "RCTD: the most frequent dominant cell types (% of fitted pixels)",
     NULL, "", -1},
};

static double mq_pct(int64_t part, int64_t whole) {
  return whole > 0 ? 100.0 * (double)part / (double)whole : 0;
}

/* The three most frequent dominant types, "A 40%, B 21%, C 9%" (ties in type order). */
static void mq_top_types(const rctd_multiqc_stats *s, char *buf, size_t len) {
  int used = 0, chosen[3] = {-1, -1, -1};
  buf[0] = 0;
  for (int t = 0; t < 3; t++) {
    for (int k = 0; k < s->n_types; k++) {
      if (s->dominant_k[k] == 0 || k == chosen[0] || k == chosen[1]) continue;
      if (chosen[t] < 0 || s->dominant_k[k] > s->dominant_k[chosen[t]]) chosen[t] = k;
    }
    if (chosen[t] < 0) break;
    used += snprintf(buf + used, len - (size_t)used, "%s%s %.0f%%", t ? ", " : "",
                     s->type_names[chosen[t]], mq_pct(s->dominant_k[chosen[t]], s->n_fitted));
    if (used >= (int)len) break;
  }
}

/* Which columns this run has: doublet-mode classes, filtered share when the input size is known. */
static int mq_has(const rctd_multiqc_stats *s, int c) {
  if (c == MQ_FILTERED) return s->n_input >= 0;
  if (c == MQ_SINGLET || c == MQ_DOUBLET || c == MQ_REJECT) return s->mode == RCTD_OUT_DOUBLET;
  return 1;
}

static double mq_value(const rctd_multiqc_stats *s, int c) {
  const int64_t *sc = s->spot_class;
  switch (c) {
    case MQ_FITTED:
      return (double)s->n_fitted;
    case MQ_FILTERED:
      return mq_pct(s->n_input - s->n_fitted, s->n_input);
    case MQ_SINGLET:
      return mq_pct(sc[1], s->n_fitted);
    case MQ_DOUBLET:
      return mq_pct(sc[2] + sc[3], s->n_fitted);
    case MQ_REJECT:
      return mq_pct(sc[0], s->n_fitted);
    default:
      return s->sigma;
  }
}

static void mq_write_json(FILE *f, const rctd_multiqc_stats *s, const char *top) {
  fputs(
      "{\n  \"id\": \"rctd\",\n  \"section_name\": \"RCTD\",\n  \"description\": \"Cell type "
      "decomposition of spatial transcriptomics pixels (rctd-merge)\",\n  \"plot_type\": "
      "\"generalstats\",\n  \"pconfig\": [",
      f);
  int first = 1;
  for (int c = 0; c < MQ_N; c++) {
    if (!mq_has(s, c)) continue;
    const mq_column *m = &mq_columns[c];
    fprintf(f, "%s\n    {\"%s\": {\"title\": ", first ? "" : ",", m->key);
    rctd_json_string(f, m->title);
    fputs(", \"description\": ", f);
    rctd_json_string(f, m->description);
    if (m->format) fprintf(f, ", \"format\": \"%s\"", m->format);
    if (m->suffix[0]) fprintf(f, ", \"suffix\": \"%s\"", m->suffix);
    if (m->max >= 0) fprintf(f, ", \"min\": 0, \"max\": %g", m->max);
    fputs("}}", f);
    first = 0;
  }
  fputs("\n  ],\n  \"data\": {\n    ", f);
  rctd_json_string(f, s->sample);
  fputs(": {", f);
  first = 1;
  for (int c = 0; c < MQ_N; c++) {
    if (!mq_has(s, c)) continue;
    fprintf(f, "%s\"%s\": ", first ? "" : ", ", mq_columns[c].key);
    if (c == MQ_TOP)
      rctd_json_string(f, top);
    else if (c == MQ_FITTED)
      fprintf(f, "%" PRId64, s->n_fitted);
    else
      fprintf(f, "%.4g", mq_value(s, c));
    first = 0;
  }
  fputs("}\n  }\n}\n", f);
}

/* TSV: MultiQC's YAML header in '#' lines, then one row. */
static void mq_write_tsv(FILE *f, const rctd_multiqc_stats *s, const char *top) {
  fputs("# id: 'rctd'\n# section_name: 'RCTD'\n# plot_type: 'generalstats'\n# pconfig:\n", f);
  for (int c = 0; c < MQ_N; c++) {
    if (!mq_has(s, c)) continue;
    const mq_column *m = &mq_columns[c];
    fprintf(f, "#     - %s:\n#         title: '%s'\n#         description: '%s'\n", m->key,
            m->title, m->description);
    if (m->format) fprintf(f, "#         format: '%s'\n", m->format);
    if (m->suffix[0]) fprintf(f, "#         suffix: '%s'\n", m->suffix);
    if (m->max >= 0) fprintf(f, "#         min: 0\n#         max: %g\n", m->max);
  }
  fputs("Sample", f);
  for (int c = 0; c < MQ_N; c++)
    if (mq_has(s, c)) fprintf(f, "\t%s", mq_columns[c].key);
  fprintf(f, "\n%s", s->sample);
  for (int c = 0; c < MQ_N; c++) {
    if (!mq_has(s, c)) continue;
    if (c == MQ_TOP)
      fprintf(f, "\t%s", top);
    else if (c == MQ_FITTED)
      fprintf(f, "\t%" PRId64, s->n_fitted);
    else
      fprintf(f, "\t%.4g", mq_value(s, c));
  }
  fputc('\n', f);
}

int rctd_multiqc_format(const char *path) {
  size_t n = strlen(path);
  if (n > 5 && strcmp(path + n - 5, ".json") == 0) return 0;
  if (n > 4 && strcmp(path + n - 4, ".tsv") == 0) return 1;
  return -1;
}

void rctd_multiqc_write(FILE *f, const rctd_multiqc_stats *s, int tsv) {
  char top[512];
  mq_top_types(s, top, sizeof top);
  for (char *p = top; *p; p++)
    if (*p == '\t' || *p == '\'') *p = ' '; /* keep the TSV row and YAML quoting intact */
  if (tsv)
    mq_write_tsv(f, s, top);
  else
    mq_write_json(f, s, top);
}
