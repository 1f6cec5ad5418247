/* The three pixel modes (lib/fit_modes) with the CUDA backend against the CPU backend: on the
 * vignette (71 pixels, its R inputs) and on 100,000 synthetic pixels.  Both backends share one
 * likelihood table.  Every categorical output must be equal, weights within 1e-8, scores within
 * 1e-10 relative. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../test.h"
#include "fit_modes.h"
#include "gpu_synth.h"
#include "synth.h"
#include "rctd_kernels.h"
#ifdef RCTD_HAVE_CUDA
#include "cuda/rctd_cuda.h"

#define GM_WTOL 1e-8
#define GM_SRTOL 1e-10

static int gm_verbose(void) {
  return getenv("RCTD_TEST_VERBOSE") != NULL;
}

/* Inputs of one data set. */
typedef struct {
  int n_genes, n_types, n_pix;
  double *profiles_gk, *y_ng, *numi_n;
  gpu_table table;
} gm_data;

static void gm_data_free(gm_data *d) {
  free(d->profiles_gk);
  free(d->y_ng);
  free(d->numi_n);
  gpu_table_free(&d->table);
  memset(d, 0, sizeof *d);
}

/* The vignette as the fit_modes tests read it: gold profiles restricted to gene_list_reg, the
 * 71 gold pixels' counts over those genes, nUMI = sums over all genes, sigma 0.84. */
static int gm_vignette(rctd_backend *cpu, gm_data *d) {
  memset(d, 0, sizeof *d);
  char path[1024];
  const char *sh = test_repo_dir();
  rctd_synth_csv weights, prof, counts;
  snprintf(path, sizeof path, "%s/tests/data/gold/vignette/full/weights.csv", sh);
  if (rctd_synth_csv_read(path, &weights, NULL, 0)) return -1;
  snprintf(path, sizeof path, "%s/tests/data/gold/vignette/doublet/norm_profiles.csv", sh);
  if (rctd_synth_csv_read(path, &prof, NULL, 0)) return -1;
  snprintf(path, sizeof path, "%s/data/vignette/csv/spatial/MappedDGEForR.csv", sh);
  if (rctd_synth_csv_read(path, &counts, NULL, 0)) return -1;
  snprintf(path, sizeof path, "%s/tests/data/gold/vignette/doublet/gene_list_reg.txt", sh);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  d->n_types = prof.n_cols - 1;
  d->n_pix = weights.n_rows - 1;
  int cap = 8192, G = 0;
  int *prof_row = malloc(cap * sizeof *prof_row), *count_row = malloc(cap * sizeof *count_row);
  char gene[256];
  while (G < cap && fscanf(f, "%255s", gene) == 1) {
    prof_row[G] = rctd_synth_csv_row_of(&prof, gene);
    count_row[G] = rctd_synth_csv_row_of(&counts, gene);
    if (prof_row[G] < 0 || count_row[G] < 0) {
      fclose(f);
      return -1;
    }
    G++;
  }
  fclose(f);
  d->n_genes = G;
  const int K = d->n_types, N = d->n_pix;
  d->profiles_gk = malloc((size_t)G * K * sizeof(double));
  d->y_ng = malloc((size_t)N * G * sizeof(double));
  d->numi_n = malloc((size_t)N * sizeof(double));
  for (int g = 0; g < G; g++)
    for (int k = 0; k < K; k++)
      d->profiles_gk[(size_t)g * K + k] = strtod(rctd_synth_csv_at(&prof, prof_row[g], k + 1), NULL);
  double max_y = 0;
  for (int n = 0; n < N; n++) {
    const char *bc = rctd_synth_csv_at(&weights, n + 1, 0);
    int col = -1;
    for (int c = 1; c < counts.n_cols; c++)
      if (strcmp(rctd_synth_csv_at(&counts, 0, c), bc) == 0) col = c;
    if (col < 0) return -1;
    long double numi = 0;
    for (int r = 1; r < counts.n_rows; r++) numi += strtod(rctd_synth_csv_at(&counts, r, col), NULL);
    d->numi_n[n] = (double)numi;
    for (int g = 0; g < G; g++) {
      double y = strtod(rctd_synth_csv_at(&counts, count_row[g], col), NULL);
      d->y_ng[(size_t)n * G + g] = y;
      if (y > max_y) max_y = y;
    }
  }
  free(prof_row);
  free(count_row);
  rctd_synth_csv_free(&prof);
  rctd_synth_csv_free(&counts);
  rctd_synth_csv_free(&weights);
  return gpu_table_make(cpu, 0.84, gpu_table_rows_for(max_y), &d->table);
}

static int gm_synthetic(rctd_backend *cpu, int n_pix, gm_data *d, char *err, size_t err_len) {
  memset(d, 0, sizeof *d);
  gpu_ref ref;
  if (gpu_ref_load(test_repo_dir(), &ref, err, err_len) != 0) return -1;
  gpu_synth px;
  if (gpu_synth_make(&ref, n_pix, 2024, &px) != 0) return -1;
  d->n_genes = ref.n_genes;
  d->n_types = ref.n_types;
  d->n_pix = n_pix;
  d->profiles_gk = ref.profiles_gk;
  d->y_ng = px.y_ng;
  d->numi_n = px.numi_n;
  free(px.type1_n);
  free(px.type2_n);
  return gpu_table_make(cpu, 1.0, gpu_table_rows_for(px.max_count), &d->table);
}

static void gm_params(const gm_data *d, rctd_backend *be, rctd_fit_params *p) {
  rctd_fit_params_default(p);
  p->n_genes = d->n_genes;
  p->n_types = d->n_types;
  p->profiles_gk = d->profiles_gk;
  p->table = &d->table.table;
  p->backend = be;
}

static double gm_rel(double a, double b) {
  if (isnan(a) || isnan(b)) return isnan(a) && isnan(b) ? 0 : INFINITY;
  return fabs(a - b) / fmax(fabs(b), 1e-300);
}

static double gm_abs(double a, double b) {
  if (isnan(a) || isnan(b)) return isnan(a) && isnan(b) ? 0 : INFINITY;
  return fabs(a - b);
}

/* Full, doublet and multi on one data set with both backends; returns the number of failures
 * and prints what differs. */
static int gm_compare_modes(const char *name, const gm_data *d, rctd_backend *cpu,
                            rctd_backend *gpu) {
  const int N = d->n_pix, K = d->n_types;
  rctd_pixel_chunk chunk = {N, d->y_ng, d->numi_n};
  rctd_fit_params pc, pg;
  gm_params(d, cpu, &pc);
  gm_params(d, gpu, &pg);
  char err[512] = "";
  int failures = 0;
  double *wc = malloc((size_t)N * K * sizeof(double)), *wg = malloc((size_t)N * K * sizeof(double));
  int32_t *cc = malloc((size_t)N * sizeof(int32_t)), *cg = malloc((size_t)N * sizeof(int32_t));
  rctd_doublet_result *dc = malloc((size_t)N * sizeof *dc), *dg = malloc((size_t)N * sizeof *dg);
  rctd_multi_result *mc = malloc((size_t)N * sizeof *mc), *mg = malloc((size_t)N * sizeof *mg);
  if (!wc || !wg || !cc || !cg || !dc || !dg || !mc || !mg) return 1;

  /* full */
  double t0 = gpu_now();
  if (rctd_fit_full(&pc, &chunk, wc, cc, err, sizeof err))
    failures++, fprintf(stderr, "  %s\n", err);
  double t1 = gpu_now();
  if (rctd_fit_full(&pg, &chunk, wg, cg, err, sizeof err))
    failures++, fprintf(stderr, "  %s\n", err);
  double t2 = gpu_now();
  double w_max = 0;
  int n_cat = 0;
  for (int n = 0; n < N; n++) {
    n_cat += cc[n] != cg[n];
    for (int k = 0; k < K; k++)
      w_max = fmax(w_max, gm_abs(wg[(size_t)n * K + k], wc[(size_t)n * K + k]));
  }
  if (gm_verbose() || n_cat || !(w_max <= GM_WTOL))
    fprintf(stderr,
            "  %s full: %d pixels, cpu %.2fs gpu %.2fs: %d flags differ, max |w diff| %.3g\n", name,
            N, t1 - t0, t2 - t1, n_cat, w_max);
  failures += n_cat != 0 || !(w_max <= GM_WTOL);

  /* doublet */
  t0 = gpu_now();
  if (rctd_fit_doublet(&pc, &chunk, dc, wc, err, sizeof err))
    failures++, fprintf(stderr, "  %s\n", err);
  t1 = gpu_now();
  if (rctd_fit_doublet(&pg, &chunk, dg, wg, err, sizeof err))
    failures++, fprintf(stderr, "  %s\n", err);
  t2 = gpu_now();
  n_cat = 0;
  w_max = 0;
  double s_max = 0;
  for (int n = 0; n < N; n++) {
    const rctd_doublet_result *a = &dg[n], *b = &dc[n];
    int cat = a->spot_class != b->spot_class || a->first_type != b->first_type ||
              a->second_type != b->second_type || a->first_class != b->first_class ||
              a->second_class != b->second_class || a->conv_all != b->conv_all ||
              a->conv_doublet != b->conv_doublet || a->n_candidates != b->n_candidates;
    if (cat && n_cat < 5)
      fprintf(stderr, "  %s doublet pixel %d: class %d/%d types %d,%d/%d,%d\n", name, n,
              a->spot_class, b->spot_class, a->first_type, a->second_type, b->first_type,
              b->second_type);
    n_cat += cat;
    s_max = fmax(s_max, fmax(gm_rel(a->min_score, b->min_score),
                             gm_rel(a->singlet_score, b->singlet_score)));
    for (int j = 0; j < 2; j++)
      w_max = fmax(w_max, gm_abs(a->doublet_weights[j], b->doublet_weights[j]));
    for (int k = 0; k < K; k++)
      w_max = fmax(w_max, gm_abs(wg[(size_t)n * K + k], wc[(size_t)n * K + k]));
  }
  if (gm_verbose() || n_cat || !(w_max <= GM_WTOL) || !(s_max <= GM_SRTOL))
    fprintf(stderr,
            "  %s doublet: cpu %.2fs gpu %.2fs: %d pixels differ in a categorical, max |w diff| "
            "%.3g, max score rel diff %.3g\n",
            name, t1 - t0, t2 - t1, n_cat, w_max, s_max);
  failures += n_cat != 0 || !(w_max <= GM_WTOL) || !(s_max <= GM_SRTOL);

  /* multi */
  t0 = gpu_now();
  if (rctd_fit_multi(&pc, &chunk, mc, wc, err, sizeof err))
    failures++, fprintf(stderr, "  %s\n", err);
  t1 = gpu_now();
  if (rctd_fit_multi(&pg, &chunk, mg, wg, err, sizeof err))
    failures++, fprintf(stderr, "  %s\n", err);
  t2 = gpu_now();
  n_cat = 0;
  w_max = 0;
  s_max = 0;
  for (int n = 0; n < N; n++) {
    const rctd_multi_result *a = &mg[n], *b = &mc[n];
    int cat = a->status != b->status || a->n_types != b->n_types || a->conv_all != b->conv_all ||
              a->conv_sub != b->conv_sub;
    for (int t = 0; !cat && t < a->n_types; t++)
      cat |= a->types[t] != b->types[t] || a->conf[t] != b->conf[t];
    n_cat += cat;
    if (!cat) {
      for (int t = 0; t < a->n_types; t++)
        w_max = fmax(w_max, gm_abs(a->sub_weights[t], b->sub_weights[t]));
      if (a->n_types > 0) s_max = fmax(s_max, gm_rel(a->min_score, b->min_score));
    }
  }
  if (gm_verbose() || n_cat || !(w_max <= GM_WTOL) || !(s_max <= GM_SRTOL))
    fprintf(
        stderr,
        "  %s multi: cpu %.2fs gpu %.2fs: %d pixels differ in a categorical, max |w diff| %.3g, "
        "max score rel diff %.3g\n",
        name, t1 - t0, t2 - t1, n_cat, w_max, s_max);
  failures += n_cat != 0 || !(w_max <= GM_WTOL) || !(s_max <= GM_SRTOL);
  free(wc);
  free(wg);
  free(cc);
  free(cg);
  free(dc);
  free(dg);
  free(mc);
  free(mg);
  return failures;
}

/* ---- --precision float32 against float64 (both on the GPU; float64 equals the CPU above) ----
 *
 * Bounds from the measurements on an H100 (bench/gpu/NOTES.md), with margin: per mode, the share
 * of pixels whose categorical outputs all agree (full: convergence flag and the type of the
 * largest weight; doublet: class, types, class flags, convergence flags, candidates; multi:
 * status, types, confidences, flags), and the largest and the mean absolute weight difference
 * over the pixels that agree (full: all K weights of those whose fit converged; doublet and
 * multi: their doublet and sub weights).  Measured (100,000 synthetic pixels): agreement 99.998%
 * full, 99.962% doublet, 99.997% multi; full weights max 0.034 (a converged fit can stop at
 * another point of a flat valley), mean 2.3e-6; doublet weights equal (k <= 2 fits are float64
 * in both); multi max 3.1e-8.  Vignette: every categorical equal, weights within 6.9e-6. */
#define GM32_MIN_AGREE 0.999
#define GM32_MAX_WDIFF 0.1
#define GM32_MEAN_WDIFF 1e-5

typedef struct {
  double agree[3], w_max[3], w_mean[3], t64[3], t32[3];
  double w_max_all; /* full: over every pixel, unconverged and disagreeing ones too */
} gm32_result;

static int gm32_argmax(const double *w, int K) {
  int best = 0;
  for (int k = 1; k < K; k++)
    if (w[k] > w[best]) best = k;
  return best;
}

static int gm32_compare(const char *name, const gm_data *d, rctd_backend *g64, rctd_backend *g32,
                        gm32_result *r) {
  const int N = d->n_pix, K = d->n_types;
  rctd_pixel_chunk chunk = {N, d->y_ng, d->numi_n};
  rctd_fit_params p64, p32;
  gm_params(d, g64, &p64);
  gm_params(d, g32, &p32);
  char err[512] = "";
  double *wa = malloc((size_t)N * K * sizeof(double)), *wb = malloc((size_t)N * K * sizeof(double));
  int32_t *ca = malloc((size_t)N * sizeof(int32_t)), *cb = malloc((size_t)N * sizeof(int32_t));
  rctd_doublet_result *da = malloc((size_t)N * sizeof *da), *db = malloc((size_t)N * sizeof *db);
  rctd_multi_result *ma = malloc((size_t)N * sizeof *ma), *mb = malloc((size_t)N * sizeof *mb);
  if (!wa || !wb || !ca || !cb || !da || !db || !ma || !mb) return -1;
  memset(r, 0, sizeof *r);
  int rc = 0;
  for (int mode = 0; mode < 3 && rc == 0; mode++) {
    double t0 = gpu_now();
    if (mode == 0) rc |= rctd_fit_full(&p64, &chunk, wa, ca, err, sizeof err);
    if (mode == 1) rc |= rctd_fit_doublet(&p64, &chunk, da, wa, err, sizeof err);
    if (mode == 2) rc |= rctd_fit_multi(&p64, &chunk, ma, wa, err, sizeof err);
    double t1 = gpu_now();
    if (mode == 0) rc |= rctd_fit_full(&p32, &chunk, wb, cb, err, sizeof err);
    if (mode == 1) rc |= rctd_fit_doublet(&p32, &chunk, db, wb, err, sizeof err);
    if (mode == 2) rc |= rctd_fit_multi(&p32, &chunk, mb, wb, err, sizeof err);
    double t2 = gpu_now();
    if (rc) {
      fprintf(stderr, "  %s: %s\n", name, err);
      break;
    }
    r->t64[mode] = t1 - t0;
    r->t32[mode] = t2 - t1;
    long n_agree = 0, n_w = 0;
    double w_sum = 0, w_max = 0;
    for (int n = 0; n < N; n++) {
      int cat = 0;
      if (mode == 0) {
        cat = ca[n] != cb[n] ||
              gm32_argmax(wa + (size_t)n * K, K) != gm32_argmax(wb + (size_t)n * K, K);
        for (int k = 0; k < K; k++) {
          double e = gm_abs(wb[(size_t)n * K + k], wa[(size_t)n * K + k]);
          r->w_max_all = fmax(r->w_max_all, e);
          if (cat || !ca[n]) continue;
          w_max = fmax(w_max, e);
          w_sum += e;
          n_w++;
        }
      } else if (mode == 1) {
        const rctd_doublet_result *a = &da[n], *b = &db[n];
        cat = a->spot_class != b->spot_class || a->first_type != b->first_type ||
              a->second_type != b->second_type || a->first_class != b->first_class ||
              a->second_class != b->second_class || a->conv_all != b->conv_all ||
              a->conv_doublet != b->conv_doublet || a->n_candidates != b->n_candidates;
        for (int j = 0; !cat && j < 2; j++) {
          double e = gm_abs(b->doublet_weights[j], a->doublet_weights[j]);
          w_max = fmax(w_max, e);
          w_sum += e;
          n_w++;
        }
      } else {
        const rctd_multi_result *a = &ma[n], *b = &mb[n];
        cat = a->status != b->status || a->n_types != b->n_types || a->conv_all != b->conv_all ||
              a->conv_sub != b->conv_sub;
        for (int t = 0; !cat && t < a->n_types; t++)
          cat |= a->types[t] != b->types[t] || a->conf[t] != b->conf[t];
        for (int t = 0; !cat && t < a->n_types; t++) {
          double e = gm_abs(b->sub_weights[t], a->sub_weights[t]);
          w_max = fmax(w_max, e);
          w_sum += e;
          n_w++;
        }
      }
      n_agree += !cat;
    }
    r->agree[mode] = (double)n_agree / N;
    r->w_max[mode] = w_max;
    r->w_mean[mode] = n_w ? w_sum / n_w : 0;
    static const char *names[3] = {"full", "doublet", "multi"};
    fprintf(stderr,
            "  float32 vs float64, %s %s (%d pixels): categoricals agree %.4f%% (%ld differ), "
            "max |w diff| %.3g, mean %.3g; float64 %.3f s, float32 %.3f s\n",
            name, names[mode], N, 100.0 * r->agree[mode], N - n_agree, w_max, r->w_mean[mode],
            r->t64[mode], r->t32[mode]);
    if (mode == 0) fprintf(stderr, "    full, every pixel: max |w diff| %.3g\n", r->w_max_all);
  }
  rctd_cuda_stats st;
  if (rctd_cuda_last_stats(g32, &st) == 0 && st.n_refit_float64)
    fprintf(stderr, "  float32 %s: last batch refitted %d fits in float64\n", name,
            st.n_refit_float64);
  free(wa);
  free(wb);
  free(ca);
  free(cb);
  free(da);
  free(db);
  free(ma);
  free(mb);
  return rc ? -1 : 0;
}

/* float32 against float64 on d: how many of the three modes exceed a bound, or -1 when a run
 * fails. */
static int gm32_failures(const char *name, const gm_data *d, rctd_backend *g64, rctd_backend *g32) {
  gm32_result r;
  if (gm32_compare(name, d, g64, g32, &r) != 0) return -1;
  int failures = 0;
  for (int m = 0; m < 3; m++)
    failures += !(r.agree[m] >= GM32_MIN_AGREE) || !(r.w_max[m] <= GM32_MAX_WDIFF) ||
                !(r.w_mean[m] <= GM32_MEAN_WDIFF);
  return failures;
}

static rctd_backend *gm32_backend(char *err, size_t err_len) {
  rctd_cuda_opts o;
  rctd_cuda_opts_default(&o);
  o.precision = RCTD_CUDA_FLOAT32;
  return rctd_backend_cuda_ex(NULL, 0, &o, err, err_len);
}

TEST(gpu_float32_vignette_agrees_with_float64) {
  char err[256] = "";
  rctd_backend *cpu = rctd_backend_cpu(gpu_n_cpus());
  rctd_backend *g64 = rctd_backend_cuda(NULL, 0, err, sizeof err);
  CHECK_MSG(g64 != NULL, "%s", err);
  rctd_backend *g32 = gm32_backend(err, sizeof err);
  CHECK_MSG(g32 != NULL, "%s", err);
  gm_data d;
  CHECK_MSG(gm_vignette(cpu, &d) == 0, "cannot read the vignette under %s", test_repo_dir());
  int failures = gm32_failures("vignette", &d, g64, g32);
  CHECK(failures >= 0);
  CHECK_MSG(failures == 0, "%d float32 bounds exceeded (agree >= %g, max |w| <= %g, mean <= %g)",
            failures, GM32_MIN_AGREE, GM32_MAX_WDIFF, GM32_MEAN_WDIFF);
  gm_data_free(&d);
  g32->destroy(g32);
  g64->destroy(g64);
  cpu->destroy(cpu);
}

TEST(gpu_float32_synthetic_100k_agrees_with_float64) {
  char err[256] = "";
  rctd_backend *cpu = rctd_backend_cpu(gpu_n_cpus());
  rctd_backend *g64 = rctd_backend_cuda(NULL, 0, err, sizeof err);
  CHECK_MSG(g64 != NULL, "%s", err);
  rctd_backend *g32 = gm32_backend(err, sizeof err);
  CHECK_MSG(g32 != NULL, "%s", err);
  int n_pix = getenv("RCTD_GPU_TEST_PIXELS") ? atoi(getenv("RCTD_GPU_TEST_PIXELS")) : 100000;
  gm_data d;
  CHECK_MSG(gm_synthetic(cpu, n_pix, &d, err, sizeof err) == 0, "%s", err);
  int failures = gm32_failures("synthetic", &d, g64, g32);
  CHECK(failures >= 0);
  CHECK_MSG(failures == 0, "%d float32 bounds exceeded (agree >= %g, max |w| <= %g, mean <= %g)",
            failures, GM32_MIN_AGREE, GM32_MAX_WDIFF, GM32_MEAN_WDIFF);
  gm_data_free(&d);
  g32->destroy(g32);
  g64->destroy(g64);
  cpu->destroy(cpu);
}

TEST(gpu_modes_vignette_match_cpu) {
  char err[256] = "";
  rctd_backend *cpu = rctd_backend_cpu(gpu_n_cpus());
  rctd_backend *gpu = rctd_backend_cuda(NULL, 0, err, sizeof err);
  CHECK_MSG(gpu != NULL, "%s", err);
  gm_data d;
  CHECK_MSG(gm_vignette(cpu, &d) == 0, "cannot read the vignette under %s", test_repo_dir());
  CHECK(d.n_pix == 71 && d.n_types == 19);
  int failures = gm_compare_modes("vignette", &d, cpu, gpu);
  CHECK_MSG(failures == 0, "%d comparisons failed", failures);
  gm_data_free(&d);
  gpu->destroy(gpu);
  cpu->destroy(cpu);
}

TEST(gpu_modes_synthetic_100k_match_cpu) {
  char err[256] = "";
  rctd_backend *cpu = rctd_backend_cpu(gpu_n_cpus());
  rctd_backend *gpu = rctd_backend_cuda(NULL, 0, err, sizeof err);
  CHECK_MSG(gpu != NULL, "%s", err);
  int n_pix = getenv("RCTD_GPU_TEST_PIXELS") ? atoi(getenv("RCTD_GPU_TEST_PIXELS")) : 100000;
  gm_data d;
  CHECK_MSG(gm_synthetic(cpu, n_pix, &d, err, sizeof err) == 0, "%s", err);
  int failures = gm_compare_modes("synthetic", &d, cpu, gpu);
  CHECK_MSG(failures == 0, "%d comparisons failed", failures);
  gm_data_free(&d);
  gpu->destroy(gpu);
  cpu->destroy(cpu);
}

#endif
