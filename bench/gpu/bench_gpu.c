/* make bench-gpu: the CUDA backend on the synthetic recipe of the fit benchmark (K = 19,
 * G = 384 vignette genes, sigma 1.00, float64).
 *
 *   rctd-gpu-bench [--pixels N] [--million] [--tables] [--raw] [--device LIST]
 *                  [--precision both|float64|float32]
 *
 * Reports pixels/s of full, doublet and multi mode run through lib/fit_modes (one chunk, so
 * one batch per step as the tools issue them), the time of the sigma-1.00 table and, with
 * --tables, of all 126 full tables; --million also runs 1,000,000 pixels (the 100,000 tiled);
 * --raw times single irwls_batch calls per k_sub.  Times include host work and transfers.
 * --precision: the modes with the float64 backend, the float32 one, or both (default). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../tests/gpu/gpu_synth.h"
#include "fit_modes.h"
#include "rctd_kernels.h"
#ifdef RCTD_HAVE_CUDA
#include "cuda/rctd_cuda.h"
#endif

#ifndef RCTD_HAVE_CUDA
int main(void) {
  fprintf(stderr, "rctd-gpu-bench: this build has no CUDA backend (nvcc not found or NO_CUDA=1)\n");
  return 1;
}
#else

typedef struct {
  const char *what;
  int n_pix;
  double seconds;
} bg_row;

static bg_row bg_rows[32];
static int bg_n_rows;

static void bg_record(const char *what, int n_pix, double seconds) {
  if (bg_n_rows < 32) bg_rows[bg_n_rows++] = (bg_row){what, n_pix, seconds};
  fprintf(stderr, "  %-34s %9d px %8.3f s %12.0f px/s\n", what, n_pix, seconds, n_pix / seconds);
}

static void bg_stats(rctd_backend *be, const char *what) {
  rctd_cuda_stats st;
  if (rctd_cuda_last_stats(be, &st) != 0) return;
  fprintf(stderr,
          "    last batch of %s: upload %.3f s, kernels %.3f s, download %.3f s, %lld iterations, "
          "%d launches, counts reused %d, refitted in float64 %d\n",
          what, st.upload_s, st.kernel_s, st.download_s, st.n_iterations, st.n_launches,
          st.counts_reused, st.n_refit_float64);
}

static int bg_modes(const char *label, rctd_backend *be, const gpu_ref *ref, const gpu_synth *px,
                    const gpu_table *t, int with_multi) {
  const int N = px->n_pix, K = ref->n_types;
  rctd_fit_params p;
  rctd_fit_params_default(&p);
  p.n_genes = ref->n_genes;
  p.n_types = K;
  p.profiles_gk = ref->profiles_gk;
  p.table = &t->table;
  p.backend = be;
  rctd_pixel_chunk chunk = {N, px->y_ng, px->numi_n};
  double *w = malloc((size_t)N * K * sizeof(double));
  int32_t *conv = malloc((size_t)N * sizeof(int32_t));
  rctd_doublet_result *dr = malloc((size_t)N * sizeof *dr);
  rctd_multi_result *mr = with_multi ? malloc((size_t)N * sizeof *mr) : NULL;
  char err[512] = "", what[96];
  if (!w || !conv || !dr || (with_multi && !mr)) return -1;
  double t0 = gpu_now();
  if (rctd_fit_full(&p, &chunk, w, conv, err, sizeof err)) {
    fprintf(stderr, "full: %s\n", err);
    return -1;
  }
  double t1 = gpu_now();
  snprintf(what, sizeof what, "full %s", label);
  bg_record(strdup(what), N, t1 - t0);
  bg_stats(be, "full");
  long n_conv = 0;
  for (int n = 0; n < N; n++) n_conv += conv[n];
  fprintf(stderr, "    converged %ld of %d\n", n_conv, N);
  t0 = gpu_now();
  if (rctd_fit_doublet(&p, &chunk, dr, w, err, sizeof err)) {
    fprintf(stderr, "doublet: %s\n", err);
    return -1;
  }
  t1 = gpu_now();
  snprintf(what, sizeof what, "doublet %s", label);
  bg_record(strdup(what), N, t1 - t0);
  long n_class[4] = {0, 0, 0, 0};
  for (int n = 0; n < N; n++)
    if (dr[n].spot_class >= 0 && dr[n].spot_class < 4) n_class[dr[n].spot_class]++;
  fprintf(stderr, "    reject %ld singlet %ld certain %ld uncertain %ld\n", n_class[0], n_class[1],
          n_class[2], n_class[3]);
  if (with_multi) {
    t0 = gpu_now();
    if (rctd_fit_multi(&p, &chunk, mr, w, err, sizeof err)) {
      fprintf(stderr, "multi: %s\n", err);
      return -1;
    }
    t1 = gpu_now();
    snprintf(what, sizeof what, "multi %s", label);
    bg_record(strdup(what), N, t1 - t0);
  }
  free(w);
  free(conv);
  free(dr);
  free(mr);
  return 0;
}

/* One irwls_batch per k_sub over all pixels (types 0..k-1), for profiling the kernels: with a
 * profiling backend, the cycle split of the warp kernel's phases. */
static void bg_raw(rctd_backend *be, const gpu_ref *ref, const gpu_synth *px, const gpu_table *t,
                   const char *label) {
  const int N = px->n_pix, K = ref->n_types;
  const int ks[] = {1, 2, 3, 4, K};
  int32_t *pix = malloc((size_t)N * sizeof(int32_t));
  int32_t *types = malloc((size_t)N * K * sizeof(int32_t));
  double *w = malloc((size_t)N * K * sizeof(double)), *score = malloc((size_t)N * sizeof(double));
  int32_t *conv = malloc((size_t)N * sizeof(int32_t));
  if (!pix || !types || !w || !score || !conv) return;
  for (int i = 0; i < 5; i++) {
    int k = ks[i];
    for (int n = 0; n < N; n++) {
      pix[n] = n;
      for (int j = 0; j < k; j++) types[(size_t)n * k + j] = (px->type1_n[n] + j) % K;
    }
    rctd_fit_batch b = {
        ref->n_genes,         K, ref->profiles_gk, N, px->y_ng, px->numi_n, N, k, pix,
        k == K ? NULL : types};
    rctd_irwls_opts o = {k == K ? 50 : 25, 1e-3, 0, 0};
    double t0 = gpu_now();
    if (be->irwls_batch(be, &t->table, &b, &o, w, conv, k == K ? NULL : score) != 0) {
      fprintf(stderr, "raw k=%d failed\n", k);
      continue;
    }
    double t1 = gpu_now();
    rctd_cuda_stats st;
    rctd_cuda_last_stats(be, &st);
    fprintf(stderr,
            "  raw %s k=%-2d %8d fits %8.3f s %10.0f fits/s  (kernel %.3f s, %.1f iter/fit, %.0f "
            "fit-iter/s)\n",
            label, k, N, t1 - t0, N / (t1 - t0), st.kernel_s, (double)st.n_iterations / N,
            st.n_iterations / st.kernel_s);
    if (k >= 3 && st.prof[8] > 0) {
      const char *names[6] = {"genes+mma", "hessian", "warm", "jacobi", "psd", "qp"};
      double total = 0;
      for (int c = 0; c < 6; c++) total += (double)st.prof[c];
      fprintf(stderr, "      per step: %.0f cycles:", total / st.prof[8]);
      for (int c = 0; c < 6; c++)
        fprintf(stderr, " %s %.0f%%", names[c], 100.0 * st.prof[c] / total);
      fprintf(stderr, "; %.2f sweeps, %.2f QP solves per step\n", (double)st.prof[6] / st.prof[8],
              (double)st.prof[7] / st.prof[8]);
    }
  }
  free(pix);
  free(types);
  free(w);
  free(score);
  free(conv);
}

int main(int argc, char **argv) {
  int n_pix = 100000, million = 0, tables = 0, raw = 0, one = 0;
  int devices[16], n_dev = 0;
  int run64 = 1, run32 = 1;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--pixels") && i + 1 < argc)
      n_pix = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--million"))
      million = 1;
    else if (!strcmp(argv[i], "--tables"))
      tables = 1;
    else if (!strcmp(argv[i], "--raw"))
      raw = 1;
    else if (!strcmp(argv[i], "--one"))
      one = 1; /* one full-fit batch only (for a profiler) */
    else if (!strcmp(argv[i], "--precision") && i + 1 < argc) {
      i++;
      run64 = strcmp(argv[i], "float32") != 0;
      run32 = strcmp(argv[i], "float64") != 0;
    } else if (!strcmp(argv[i], "--device") && i + 1 < argc) {
      for (char *s = strtok(argv[++i], ","); s && n_dev < 16; s = strtok(NULL, ","))
        devices[n_dev++] = atoi(s);
    } else {
      fprintf(stderr,
              "usage: rctd-gpu-bench [--pixels N] [--million] [--tables] [--raw] [--one] [--device "
              "0,1] [--precision both|float64|float32]\n");
      return 2;
    }
  }
  const char *repo = getenv("RCTD_REPO") ? getenv("RCTD_REPO") : ".";
  char err[512] = "";
  gpu_ref ref;
  if (gpu_ref_load(repo, &ref, err, sizeof err)) {
    fprintf(stderr, "rctd-gpu-bench: %s\n", err);
    return 1;
  }
  rctd_backend *gpu = rctd_backend_cuda(n_dev ? devices : NULL, n_dev, err, sizeof err);
  if (!gpu) {
    fprintf(stderr, "rctd-gpu-bench: %s\n", err);
    return 1;
  }
  rctd_cuda_opts o32;
  rctd_cuda_opts_default(&o32);
  o32.precision = RCTD_CUDA_FLOAT32;
  rctd_backend *gpu32 =
      run32 ? rctd_backend_cuda_ex(n_dev ? devices : NULL, n_dev, &o32, err, sizeof err) : NULL;
  if (run32 && !gpu32) {
    fprintf(stderr, "rctd-gpu-bench: float32: %s\n", err);
    return 1;
  }
  fprintf(stderr, "rctd-gpu-bench: %s, K = %d, G = %d, sigma 1.00, %s\n", gpu->name, ref.n_types,
          ref.n_genes,
          run64 && run32 ? "float64 and float32"
          : run32        ? "float32"
                         : "float64");
  double t0 = gpu_now();
  gpu_synth px;
  if (gpu_synth_make(&ref, n_pix, 1, &px)) return 1;
  fprintf(stderr, "  synthetic pixels: %d in %.2f s (max count %.0f)\n", n_pix, gpu_now() - t0,
          px.max_count);
  /* warm-up: context, module load */
  gpu_table t;
  if (gpu_table_make(gpu, 1.0, 8, &t)) return 1;
  gpu_table_free(&t);
  t0 = gpu_now();
  if (gpu_table_make(gpu, 1.0, gpu_table_rows_for(px.max_count), &t)) {
    fprintf(stderr, "rctd-gpu-bench: table failed\n");
    return 1;
  }
  fprintf(stderr, "  table sigma 1.00, %d rows: %.3f s\n", t.table.n_k, gpu_now() - t0);
  if (one) {
    const int K = ref.n_types;
    int32_t *pix = malloc((size_t)n_pix * sizeof(int32_t));
    double *w = malloc((size_t)n_pix * K * sizeof(double));
    int32_t *conv = malloc((size_t)n_pix * sizeof(int32_t));
    for (int n = 0; n < n_pix; n++) pix[n] = n;
    rctd_fit_batch b = {ref.n_genes, K,   ref.profiles_gk, n_pix, px.y_ng, px.numi_n, n_pix, K,
                        pix,         NULL};
    rctd_irwls_opts o = {50, 1e-3, 0, 0};
    t0 = gpu_now();
    int rc = gpu->irwls_batch(gpu, &t.table, &b, &o, w, conv, NULL);
    fprintf(stderr, "  one full batch: %d fits, %.3f s, rc %d\n", n_pix, gpu_now() - t0, rc);
    free(pix);
    free(w);
    free(conv);
    gpu->destroy(gpu);
    return rc != 0;
  }
  {
    gpu_synth warm;
    if (gpu_synth_tile(&px, 1, &warm) == 0) {
      warm.n_pix = n_pix < 2000 ? n_pix : 2000;
      bg_modes("(warm-up)", gpu, &ref, &warm, &t, 1);
      if (gpu32) bg_modes("(warm-up) float32", gpu32, &ref, &warm, &t, 1);
      gpu_synth_free(&warm);
    }
  }
  bg_n_rows = 0;
  if (raw) {
    rctd_cuda_opts po;
    rctd_cuda_opts_default(&po);
    po.profile = 1;
    rctd_backend *pb = rctd_backend_cuda_ex(n_dev ? devices : NULL, n_dev, &po, err, sizeof err);
    if (pb) {
      setenv("RCTD_CUDA_WARPS", "16", 1);
      bg_raw(pb, &ref, &px, &t, "16w prof");
      unsetenv("RCTD_CUDA_WARPS");
      bg_raw(pb, &ref, &px, &t, "12w prof");
      pb->destroy(pb);
    }
    bg_raw(gpu, &ref, &px, &t, "12w");
    if (gpu32) {
      po.precision = RCTD_CUDA_FLOAT32;
      pb = rctd_backend_cuda_ex(n_dev ? devices : NULL, n_dev, &po, err, sizeof err);
      if (pb) {
        bg_raw(pb, &ref, &px, &t, "f32 16w prof");
        pb->destroy(pb);
      }
      bg_raw(gpu32, &ref, &px, &t, "f32 16w");
    }
  }
  if (run64 && bg_modes("", gpu, &ref, &px, &t, 1)) return 1;
  if (gpu32) {
    if (bg_modes("float32", gpu32, &ref, &px, &t, 1)) return 1;
  }
  if (million) {
    gpu_synth big;
    int copies = (1000000 + n_pix - 1) / n_pix;
    if (gpu_synth_tile(&px, copies, &big) == 0) {
      if (run64) bg_modes("(1M)", gpu, &ref, &big, &t, 0);
      if (gpu32) bg_modes("(1M) float32", gpu32, &ref, &big, &t, 0);
      gpu_synth_free(&big);
    }
  }
  if (tables) {
    int sig[RCTD_N_SIGMA];
    rctd_sigma_grid(sig);
    double *q = malloc((size_t)RCTD_N_K_FULL * RCTD_N_X * sizeof(double));
    double *sq = malloc((size_t)RCTD_N_K_FULL * RCTD_N_X * sizeof(double));
    t0 = gpu_now();
    int ok = q && sq;
    for (int s = 0; ok && s < RCTD_N_SIGMA; s++)
      ok = gpu->qtable(gpu, sig[s] / 100.0, RCTD_N_K_FULL, q, sq) == 0;
    double dt = gpu_now() - t0;
    fprintf(stderr, "  all %d tables (%d rows each): %.2f s%s\n", RCTD_N_SIGMA, RCTD_N_K_FULL, dt,
            ok ? "" : " (FAILED)");
    free(q);
    free(sq);
  }
  printf("mode,pixels,seconds,pixels_per_s\n");
  for (int i = 0; i < bg_n_rows; i++)
    printf("%s,%d,%.4f,%.0f\n", bg_rows[i].what, bg_rows[i].n_pix, bg_rows[i].seconds,
           bg_rows[i].n_pix / bg_rows[i].seconds);
  gpu_table_free(&t);
  gpu_synth_free(&px);
  gpu_ref_free(&ref);
  if (gpu32) gpu32->destroy(gpu32);
  gpu->destroy(gpu);
  return 0;
}
#endif
