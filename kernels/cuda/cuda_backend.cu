/* The CUDA backend table (rctd_backend): device setup, batches split over devices and into
 * sub-batches that fit the device memory, inputs uploaded and converted, results copied back.
 *
 * A batch is split into contiguous ranges of fits, one per device (one host thread each).  A
 * range is cut into sub-batches from the device's free memory: each uploads the pixel rows its
 * fits refer to (pixels are contiguous in the fit modes' batches), converts counts to table-row
 * codes on the device and runs one persistent kernel.  Results do not depend on the split.
 *
 * Fits the device kernels do not cover (bulk mode, sum-constrained, more than 32 types) run on
 * the host through the CPU backend: RCTD issues them once per run. */
#include <cuda_runtime.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cuda/cuda_internal.h"
#include "cuda/rctd_cuda.h"
#include "rctd_kernels.h"

namespace rctd_cuda {

struct DevBuf {
  void *p;
  size_t bytes;
};

static cudaError_t rcb_reserve(DevBuf &b, size_t bytes) {
  if (bytes <= b.bytes && b.p) return cudaSuccess;
  if (b.p) cudaFree(b.p);
  b.p = NULL;
  b.bytes = 0;
  cudaError_t e = cudaMalloc(&b.p, bytes > 0 ? bytes : 16);
  if (e == cudaSuccess) b.bytes = bytes;
  return e;
}

static void rcb_release(DevBuf &b) {
  if (b.p) cudaFree(b.p);
  b.p = NULL;
  b.bytes = 0;
}

struct Device {
  int id, n_sm;
  cudaStream_t stream;
  DevBuf prof, xv, qraw, coef, codes, codes_t, numi, pix, types, weights, conv, score, iters,
      counter, profbuf;
  uint16_t *codes_host; /* pinned: the codes last sent (rows c_pmin.., c_n_pix x c_G) */
  size_t codes_host_cap;
  int c_valid, c_t_valid, c_pmin, c_n_pix, c_G;
  double *prof_host; /* last profiles uploaded (K x gene_stride, transposed, padded) */
  size_t prof_host_n;
  rctd_cuda_stats stats;
  char err[256];
};

struct Impl {
  int n_dev;
  Device *dev;
  rctd_cuda_opts opts;
  rctd_backend *cpu; /* host path for the fits the kernels do not cover */
  char name[128];
  rctd_cuda_stats stats;
};

static double rcb_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static int rcb_fail(Device &d, const char *what, cudaError_t e) {
  snprintf(d.err, sizeof d.err, "cuda:%d: %s: %s", d.id, what, cudaGetErrorString(e));
  return -1;
}

static int rcb_gene_stride(int n_genes) {
  return ((n_genes + 31) & ~31) + 4;
}

/* Profiles transposed to K x gene_stride with zero padding; uploaded when they changed. */
static int rcb_upload_profiles(Device &d, const rctd_fit_batch *b) {
  const int G = b->n_genes, K = b->n_types, ld = rcb_gene_stride(G);
  const size_t n = (size_t)K * ld;
  double *h = (double *)calloc(n, sizeof(double));
  if (!h) {
    snprintf(d.err, sizeof d.err, "cuda:%d: out of host memory", d.id);
    return -1;
  }
  for (int g = 0; g < G; g++)
    for (int k = 0; k < K; k++) h[(size_t)k * ld + g] = b->profiles_gk[(size_t)g * K + k];
  if (d.prof_host && d.prof_host_n == n && memcmp(d.prof_host, h, n * sizeof(double)) == 0) {
    free(h);
    return 0;
  }
  cudaError_t e = rcb_reserve(d.prof, n * sizeof(double));
  if (e == cudaSuccess) e = cudaMemcpy(d.prof.p, h, n * sizeof(double), cudaMemcpyHostToDevice);
  free(d.prof_host);
  d.prof_host = NULL;
  if (e != cudaSuccess) {
    free(h);
    return rcb_fail(d, "uploading profiles", e);
  }
  d.prof_host = h;
  d.prof_host_n = n;
  return 0;
}

/* The table's spline coefficients for every row. */
static int rcb_upload_table(Device &d, const rctd_qtable *t) {
  const size_t cells = (size_t)t->n_k * RCTD_N_X;
  cudaError_t e = rcb_reserve(d.xv, RCTD_N_X * sizeof(double));
  if (e == cudaSuccess) e = rcb_reserve(d.qraw, 2 * cells * sizeof(double));
  if (e == cudaSuccess)
    e = rcb_reserve(d.coef, (size_t)t->n_k * (RCTD_N_X - 1) * 4 * sizeof(double));
  if (e != cudaSuccess) return rcb_fail(d, "device memory for the table", e);
  double *q = (double *)d.qraw.p, *sq = q + cells;
  e = cudaMemcpyAsync(d.xv.p, t->x_vals, RCTD_N_X * sizeof(double), cudaMemcpyHostToDevice,
                      d.stream);
  if (e == cudaSuccess)
    e = cudaMemcpyAsync(q, t->q_kx, cells * sizeof(double), cudaMemcpyHostToDevice, d.stream);
  if (e == cudaSuccess)
    e = cudaMemcpyAsync(sq, t->sq_kx, cells * sizeof(double), cudaMemcpyHostToDevice, d.stream);
  if (e == cudaSuccess)
    e = launch_spline_coef((const double *)d.xv.p, q, sq, t->n_k, d.coef.p, d.stream);
  if (e != cudaSuccess) return rcb_fail(d, "uploading the table", e);
  return 0;
}

struct Job {
  Impl *impl;
  Device *dev;
  const rctd_qtable *table;
  const rctd_fit_batch *batch;
  const rctd_irwls_opts *opts;
  double *weights_fk;
  int32_t *conv_f;
  double *score_f;
  int f_begin, f_end;
  int status;
};

/* Count codes on the host: the table row each count selects (min(y, K_VAL) truncated; NaN or
 * negative -> kBadCount), all the kernels read.  With compare, codes already hold the cached
 * rows: they are updated in place and *changed tells whether any differed. */
struct CodeJob {
  const double *y;
  uint16_t *codes;
  size_t begin, end;
  int compare, changed;
};

static void *rcb_code_worker(void *arg) {
  CodeJob *j = (CodeJob *)arg;
  int changed = 0;
  for (size_t i = j->begin; i < j->end; i++) {
    const double v = j->y[i];
    uint16_t c = !(v >= 0) ? kBadCount : (uint16_t)(int)(v > RCTD_K_VAL ? RCTD_K_VAL : v);
    if (j->compare && j->codes[i] == c) continue;
    changed = 1;
    j->codes[i] = c;
  }
  j->changed = changed;
  return NULL;
}

static int rcb_codes(const double *y, size_t n, uint16_t *codes, int compare) {
  int n_threads = (int)(n / (1 << 20)) + 1;
  long n_cpu = sysconf(_SC_NPROCESSORS_ONLN);
  if (n_threads > n_cpu) n_threads = (int)n_cpu;
  if (n_threads > 16) n_threads = 16;
  if (n_threads < 1) n_threads = 1;
  CodeJob jobs[16];
  pthread_t threads[16];
  int started[16] = {0};
  for (int t = 0; t < n_threads; t++)
    jobs[t] = CodeJob{y, codes, n * t / n_threads, n * (t + 1) / n_threads, compare, 0};
  for (int t = 1; t < n_threads; t++)
    started[t] = pthread_create(&threads[t], NULL, rcb_code_worker, &jobs[t]) == 0;
  rcb_code_worker(&jobs[0]);
  int changed = jobs[0].changed;
  for (int t = 1; t < n_threads; t++) {
    if (started[t])
      pthread_join(threads[t], NULL);
    else
      rcb_code_worker(&jobs[t]);
    changed |= jobs[t].changed;
  }
  return changed;
}

/* Puts the codes of pixel rows [pmin, pmin + n_pix) on the device (row-major, and transposed
 * when asked).  The last rows sent stay cached: when the same range comes again with equal
 * codes (the steps of a mode on one chunk), nothing is sent. */
static int rcb_put_counts(Device &d, const rctd_fit_batch *b, int pmin, int n_pix, int transposed) {
  const int G = b->n_genes;
  const size_t n = (size_t)n_pix * G;
  cudaError_t e;
  if (n > d.codes_host_cap) {
    if (d.codes_host) cudaFreeHost(d.codes_host);
    d.codes_host = NULL;
    d.codes_host_cap = 0;
    d.c_valid = 0;
    e = cudaMallocHost((void **)&d.codes_host, n * sizeof(uint16_t));
    if (e != cudaSuccess) return rcb_fail(d, "pinned host memory for counts", e);
    d.codes_host_cap = n;
  }
  const int same = d.c_valid && d.c_G == G && d.c_pmin == pmin && d.c_n_pix == n_pix;
  d.c_valid = 0;
  int changed = rcb_codes(b->y_ng + (size_t)pmin * G, n, d.codes_host, same) || !same;
  if (changed) {
    e = rcb_reserve(d.codes, n * sizeof(uint16_t));
    if (e == cudaSuccess)
      e = cudaMemcpyAsync(d.codes.p, d.codes_host, n * sizeof(uint16_t), cudaMemcpyHostToDevice,
                          d.stream);
    if (e != cudaSuccess) return rcb_fail(d, "uploading counts", e);
    d.c_t_valid = 0;
  } else {
    d.stats.counts_reused++;
  }
  if (transposed && !d.c_t_valid) {
    e = rcb_reserve(d.codes_t, n * sizeof(uint16_t));
    if (e == cudaSuccess)
      e = launch_transpose_codes((const uint16_t *)d.codes.p, n_pix, G, (uint16_t *)d.codes_t.p,
                                 d.stream);
    if (e != cudaSuccess) return rcb_fail(d, "transposing counts", e);
    d.c_t_valid = 1;
  }
  d.c_valid = 1;
  d.c_G = G;
  d.c_pmin = pmin;
  d.c_n_pix = n_pix;
  return 0;
}

/* Fits [f_begin, f_end) of the batch on one device. */
static int rcb_run_range(Job &job) {
  Device &d = *job.dev;
  const rctd_fit_batch *b = job.batch;
  const int G = b->n_genes, k = b->k_sub;
  const int profile = job.impl->opts.profile;
  cudaError_t e = cudaSetDevice(d.id);
  if (e != cudaSuccess) return rcb_fail(d, "cudaSetDevice", e);
  double t0 = rcb_now();
  if (rcb_upload_profiles(d, b) != 0) return -1;
  if (rcb_upload_table(d, job.table) != 0) return -1;
  e = rcb_reserve(d.counter, sizeof(int));
  if (e == cudaSuccess && profile) e = rcb_reserve(d.profbuf, kProfCounters * sizeof(long long));
  if (e != cudaSuccess) return rcb_fail(d, "device memory", e);
  size_t free_b = 0, total_b = 0;
  e = cudaMemGetInfo(&free_b, &total_b);
  if (e != cudaSuccess) return rcb_fail(d, "cudaMemGetInfo", e);
  /* buffers already held count as available to this batch */
  const size_t held = d.codes.bytes + d.codes_t.bytes + d.numi.bytes + d.pix.bytes + d.types.bytes +
                      d.weights.bytes + d.conv.bytes + d.score.bytes + d.iters.bytes;
  const double budget = job.impl->opts.mem_fraction * (double)free_b + (double)held;
  const size_t per_pix = (size_t)G * 2 * sizeof(uint16_t) + sizeof(double);
  const size_t per_fit =
      sizeof(int32_t) * (2 + (b->types_fk ? k : 0) + 1) + sizeof(double) * ((size_t)k + 1);
  long long cap = (long long)(budget / (double)(per_pix + per_fit));
  if (job.impl->opts.max_fits_per_launch > 0 && cap > job.impl->opts.max_fits_per_launch)
    cap = job.impl->opts.max_fits_per_launch;
  if (cap < 1) cap = 1;
  const int transposed = k <= 2;
  int32_t *pix_local = NULL;
  int rc = 0;
  d.stats.upload_s += rcb_now() - t0;

  for (int f0 = job.f_begin; f0 < job.f_end && rc == 0;) {
    long long n = job.f_end - f0;
    if (n > cap) n = cap;
    int pmin = 0, pmax = 0;
    for (;;) {
      pmin = b->pix_f[f0], pmax = b->pix_f[f0];
      for (long long i = 1; i < n; i++) {
        int q = b->pix_f[f0 + i];
        pmin = q < pmin ? q : pmin;
        pmax = q > pmax ? q : pmax;
      }
      double need = (double)(pmax - pmin + 1) * per_pix + (double)n * per_fit;
      if (need <= budget || n == 1) break;
      n = (n + 1) / 2;
    }
    const int n_pix = pmax - pmin + 1;
    t0 = rcb_now();
    e = rcb_reserve(d.numi, (size_t)n_pix * sizeof(double));
    if (e == cudaSuccess) e = rcb_reserve(d.pix, (size_t)n * sizeof(int32_t));
    if (e == cudaSuccess && b->types_fk) e = rcb_reserve(d.types, (size_t)n * k * sizeof(int32_t));
    if (e == cudaSuccess) e = rcb_reserve(d.weights, (size_t)n * k * sizeof(double));
    if (e == cudaSuccess) e = rcb_reserve(d.conv, (size_t)n * sizeof(int32_t));
    if (e == cudaSuccess && job.score_f) e = rcb_reserve(d.score, (size_t)n * sizeof(double));
    if (e == cudaSuccess) e = rcb_reserve(d.iters, (size_t)n * sizeof(int32_t));
    if (e != cudaSuccess) {
      rc = rcb_fail(d, "device memory for a batch", e);
      break;
    }
    free(pix_local);
    pix_local = (int32_t *)malloc((size_t)n * sizeof(int32_t));
    if (!pix_local) {
      snprintf(d.err, sizeof d.err, "cuda:%d: out of host memory", d.id);
      rc = -1;
      break;
    }
    for (long long i = 0; i < n; i++) pix_local[i] = b->pix_f[f0 + i] - pmin;
    if (rcb_put_counts(d, b, pmin, n_pix, transposed) != 0) {
      rc = -1;
      break;
    }
    e = cudaMemcpyAsync(d.numi.p, b->numi_n + pmin, (size_t)n_pix * sizeof(double),
                        cudaMemcpyHostToDevice, d.stream);
    if (e == cudaSuccess)
      e = cudaMemcpyAsync(d.pix.p, pix_local, (size_t)n * sizeof(int32_t), cudaMemcpyHostToDevice,
                          d.stream);
    if (e == cudaSuccess && b->types_fk)
      e = cudaMemcpyAsync(d.types.p, b->types_fk + (size_t)f0 * k, (size_t)n * k * sizeof(int32_t),
                          cudaMemcpyHostToDevice, d.stream);
    if (e == cudaSuccess) e = cudaMemsetAsync(d.counter.p, 0, sizeof(int), d.stream);
    if (e == cudaSuccess && profile)
      e = cudaMemsetAsync(d.profbuf.p, 0, kProfCounters * sizeof(long long), d.stream);
    if (e == cudaSuccess) e = cudaStreamSynchronize(d.stream);
    if (e != cudaSuccess) {
      d.c_valid = 0;
      rc = rcb_fail(d, "uploading a batch", e);
      break;
    }
    double t1 = rcb_now();
    d.stats.upload_s += t1 - t0;

    FitLaunch p;
    memset(&p, 0, sizeof p);
    p.n_genes = G;
    p.n_types = b->n_types;
    p.gene_stride = rcb_gene_stride(G);
    p.profiles_kg = (const double *)d.prof.p;
    p.x_vals = (const double *)d.xv.p;
    p.spline_coef = d.coef.p;
    p.n_k = job.table->n_k;
    p.counts = (const uint16_t *)(transposed ? d.codes_t.p : d.codes.p);
    p.counts_transposed = transposed;
    p.n_pix = n_pix;
    p.numi = (const double *)d.numi.p;
    p.n_fits = (int)n;
    p.k_sub = k;
    p.pix_f = (const int32_t *)d.pix.p;
    p.types_fk = b->types_fk ? (const int32_t *)d.types.p : NULL;
    p.n_iter = job.opts->n_iter;
    p.min_change = job.opts->min_change;
    p.qp_warm = 1; /* the CPU kernel warm-starts its QPs */
    p.float32 = job.impl->opts.precision == RCTD_CUDA_FLOAT32;
    p.weights_fk = (double *)d.weights.p;
    p.conv_f = (int32_t *)d.conv.p;
    p.score_f = job.score_f ? (double *)d.score.p : NULL;
    p.iters_f = (int32_t *)d.iters.p;
    p.work_counter = (int *)d.counter.p;
    p.prof = profile ? (unsigned long long *)d.profbuf.p : NULL;
    e = launch_fits(p, d.n_sm, d.stream);
    if (e == cudaSuccess) e = cudaStreamSynchronize(d.stream);
    if (e != cudaSuccess) {
      d.c_valid = 0;
      rc = rcb_fail(d, "fit kernel", e);
      break;
    }
    double t2 = rcb_now();
    d.stats.kernel_s += t2 - t1;
    d.stats.n_launches++;

    unsigned long long prof[kProfCounters];
    e = cudaMemcpyAsync(job.weights_fk + (size_t)f0 * k, d.weights.p,
                        (size_t)n * k * sizeof(double), cudaMemcpyDeviceToHost, d.stream);
    if (e == cudaSuccess)
      e = cudaMemcpyAsync(job.conv_f + f0, d.conv.p, (size_t)n * sizeof(int32_t),
                          cudaMemcpyDeviceToHost, d.stream);
    if (e == cudaSuccess && job.score_f)
      e = cudaMemcpyAsync(job.score_f + f0, d.score.p, (size_t)n * sizeof(double),
                          cudaMemcpyDeviceToHost, d.stream);
    /* iteration counts for the statistics: reuse pix_local as the host copy */
    if (e == cudaSuccess)
      e = cudaMemcpyAsync(pix_local, d.iters.p, (size_t)n * sizeof(int32_t), cudaMemcpyDeviceToHost,
                          d.stream);
    if (e == cudaSuccess && profile)
      e = cudaMemcpyAsync(prof, d.profbuf.p, sizeof prof, cudaMemcpyDeviceToHost, d.stream);
    if (e == cudaSuccess) e = cudaStreamSynchronize(d.stream);
    if (e != cudaSuccess) {
      rc = rcb_fail(d, "copying results", e);
      break;
    }
    for (long long i = 0; i < n; i++) d.stats.n_iterations += pix_local[i];
    if (profile)
      for (int i = 0; i < kProfCounters; i++) d.stats.prof[i] += prof[i];
    d.stats.download_s += rcb_now() - t2;
    f0 += (int)n;
  }
  free(pix_local);
  return rc;
}

static void *rcb_job_thread(void *arg) {
  Job *job = (Job *)arg;
  job->status = rcb_run_range(*job);
  return NULL;
}

static int rcb_batch_valid(const rctd_qtable *table, const rctd_fit_batch *b,
                           const rctd_irwls_opts *opts) {
  if (!b || !opts || b->n_fits < 0 || b->n_genes < 1 || b->n_types < 1 || b->k_sub < 1) return 0;
  if (!table && !opts->bulk_mode) return 0;
  if (!b->types_fk && b->k_sub != b->n_types) return 0;
  if (b->n_fits > 0 && (!b->pix_f || !b->y_ng || !b->numi_n || !b->profiles_gk)) return 0;
  for (int f = 0; f < b->n_fits; f++) {
    if (b->pix_f[f] < 0 || b->pix_f[f] >= b->n_pix) return 0;
    for (int k = 0; b->types_fk && k < b->k_sub; k++) {
      int32_t t = b->types_fk[(size_t)f * b->k_sub + k];
      if (t < 0 || t >= b->n_types) return 0;
    }
  }
  if (table && !opts->bulk_mode &&
      (table->n_k < 1 || !table->q_kx || !table->sq_kx || !table->x_vals))
    return 0;
  return 1;
}

/* float32: a fit whose float step failed (a Cholesky pivot of the QP that rounding made
 * non-positive: the Hessian's eigenvalues span 1e-3 to 1 after psd's scaling, near float's
 * epsilon with the ridge) has NaN weights; such fits are fitted again on the host in float64, so
 * float32 gives NaN only where float64 does (NaN counts). */
static int rcb_refit_float64(Impl *impl, const rctd_qtable *table, const rctd_fit_batch *batch,
                             const rctd_irwls_opts *opts, double *weights_fk, int32_t *conv_f,
                             double *score_f) {
  const int k = batch->k_sub;
  int n_bad = 0;
  for (int f = 0; f < batch->n_fits; f++)
    if (isnan(weights_fk[(size_t)f * k])) n_bad++;
  impl->stats.n_refit_float64 = n_bad;
  if (n_bad == 0) return 0;
  int32_t *idx = (int32_t *)malloc((size_t)n_bad * sizeof(int32_t));
  int32_t *pix = (int32_t *)malloc((size_t)n_bad * sizeof(int32_t));
  int32_t *types = (int32_t *)malloc((size_t)n_bad * k * sizeof(int32_t));
  double *w = (double *)malloc((size_t)n_bad * k * sizeof(double));
  int32_t *conv = (int32_t *)malloc((size_t)n_bad * sizeof(int32_t));
  double *score = (double *)malloc((size_t)n_bad * sizeof(double));
  int rc = -1;
  if (idx && pix && types && w && conv && score) {
    int n = 0;
    for (int f = 0; f < batch->n_fits; f++) {
      if (!isnan(weights_fk[(size_t)f * k])) continue;
      idx[n] = f;
      pix[n] = batch->pix_f[f];
      for (int j = 0; j < k; j++)
        types[(size_t)n * k + j] = batch->types_fk ? batch->types_fk[(size_t)f * k + j] : j;
      n++;
    }
    rctd_fit_batch sub = *batch;
    sub.n_fits = n_bad;
    sub.pix_f = pix;
    sub.types_fk = types;
    rc = impl->cpu->irwls_batch(impl->cpu, table, &sub, opts, w, conv, score_f ? score : NULL);
    for (int i = 0; rc == 0 && i < n_bad; i++) {
      const int f = idx[i];
      memcpy(weights_fk + (size_t)f * k, w + (size_t)i * k, (size_t)k * sizeof(double));
      conv_f[f] = conv[i];
      if (score_f) score_f[f] = score[i];
    }
  }
  free(idx);
  free(pix);
  free(types);
  free(w);
  free(conv);
  free(score);
  return rc;
}

static int rcb_irwls_batch(rctd_backend *be, const rctd_qtable *table, const rctd_fit_batch *batch,
                           const rctd_irwls_opts *opts, double *weights_fk, int32_t *conv_f,
                           double *score_f) {
  Impl *impl = (Impl *)be->impl;
  memset(&impl->stats, 0, sizeof impl->stats);
  if (!rcb_batch_valid(table, batch, opts) || !weights_fk || !conv_f) return -1;
  if (batch->n_fits == 0) return 0;
  if (opts->bulk_mode || opts->constrain || batch->k_sub > kMaxDeviceTypes || opts->n_iter < 0)
    return impl->cpu->irwls_batch(impl->cpu, table, batch, opts, weights_fk, conv_f, score_f);

  int n_use = impl->n_dev;
  if (batch->n_fits < 4096 * n_use) n_use = 1;
  Job jobs[64];
  pthread_t threads[64];
  int started[64] = {0};
  for (int i = 0; i < n_use; i++) {
    Job &j = jobs[i];
    j.impl = impl;
    j.dev = &impl->dev[i];
    j.table = table;
    j.batch = batch;
    j.opts = opts;
    j.weights_fk = weights_fk;
    j.conv_f = conv_f;
    j.score_f = score_f;
    j.f_begin = (int)((long long)batch->n_fits * i / n_use);
    j.f_end = (int)((long long)batch->n_fits * (i + 1) / n_use);
    j.status = -1;
    memset(&j.dev->stats, 0, sizeof j.dev->stats);
    j.dev->err[0] = 0;
  }
  for (int i = 1; i < n_use; i++)
    started[i] = pthread_create(&threads[i], NULL, rcb_job_thread, &jobs[i]) == 0;
  rcb_job_thread(&jobs[0]);
  for (int i = 1; i < n_use; i++) {
    if (started[i])
      pthread_join(threads[i], NULL);
    else
      rcb_job_thread(&jobs[i]);
  }
  int failed = 0;
  for (int i = 0; i < n_use; i++) {
    const rctd_cuda_stats &s = impl->dev[i].stats;
    impl->stats.upload_s += s.upload_s;
    impl->stats.kernel_s += s.kernel_s;
    impl->stats.download_s += s.download_s;
    impl->stats.n_iterations += s.n_iterations;
    impl->stats.n_launches += s.n_launches;
    impl->stats.counts_reused += s.counts_reused;
    for (int c = 0; c < kProfCounters; c++) impl->stats.prof[c] += s.prof[c];
    if (jobs[i].status != 0) {
      failed = 1;
      fprintf(stderr, "rctd: %s\n", impl->dev[i].err[0] ? impl->dev[i].err : "cuda batch failed");
    }
  }
  if (failed) return -1;
  if (impl->opts.precision == RCTD_CUDA_FLOAT32 && batch->k_sub > 2)
    return rcb_refit_float64(impl, table, batch, opts, weights_fk, conv_f, score_f);
  return 0;
}

struct TableJob {
  Device *dev;
  double sigma_c;
  const double *x_vals;
  int k_begin, k_end;
  double *q_kx, *sq_kx;
  int status;
};

static void *rcb_table_thread(void *arg) {
  TableJob *j = (TableJob *)arg;
  j->status = -1;
  if (cudaSetDevice(j->dev->id) != cudaSuccess) return NULL;
  j->status = qtable_rows_device(j->sigma_c, j->x_vals, j->k_begin, j->k_end, j->q_kx, j->sq_kx,
                                 j->dev->stream, j->dev->err, sizeof j->dev->err);
  return NULL;
}

static int rcb_qtable(rctd_backend *be, double sigma_c, int n_k, double *q_kx, double *sq_kx) {
  Impl *impl = (Impl *)be->impl;
  if (n_k < 1 || !q_kx || !sq_kx || !(sigma_c > 0) || !isfinite(sigma_c)) return -1;
  double x_vals[RCTD_N_X];
  rctd_x_grid(x_vals);
  int n_use = impl->n_dev;
  if (n_k < 64 * n_use) n_use = 1;
  TableJob jobs[64];
  pthread_t threads[64];
  int started[64] = {0};
  for (int i = 0; i < n_use; i++)
    jobs[i] = TableJob{&impl->dev[i],
                       sigma_c,
                       x_vals,
                       (int)((long long)n_k * i / n_use),
                       (int)((long long)n_k * (i + 1) / n_use),
                       q_kx,
                       sq_kx,
                       -1};
  for (int i = 1; i < n_use; i++)
    started[i] = pthread_create(&threads[i], NULL, rcb_table_thread, &jobs[i]) == 0;
  rcb_table_thread(&jobs[0]);
  for (int i = 1; i < n_use; i++) {
    if (started[i])
      pthread_join(threads[i], NULL);
    else
      rcb_table_thread(&jobs[i]);
  }
  int failed = 0;
  for (int i = 0; i < n_use; i++) {
    if (jobs[i].status != 0) {
      failed = 1;
      fprintf(stderr, "rctd: %s\n", impl->dev[i].err[0] ? impl->dev[i].err : "cuda qtable failed");
    }
  }
  return failed ? -1 : 0;
}

static void rcb_destroy(rctd_backend *be) {
  if (!be) return;
  Impl *impl = (Impl *)be->impl;
  if (impl) {
    for (int i = 0; i < impl->n_dev; i++) {
      Device &d = impl->dev[i];
      if (cudaSetDevice(d.id) != cudaSuccess) continue;
      DevBuf *bufs[] = {&d.prof,    &d.xv,    &d.qraw,  &d.coef,    &d.codes,
                        &d.codes_t, &d.numi,  &d.pix,   &d.types,   &d.weights,
                        &d.conv,    &d.score, &d.iters, &d.counter, &d.profbuf};
      for (DevBuf *b : bufs) rcb_release(*b);
      if (d.stream) cudaStreamDestroy(d.stream);
      free(d.prof_host);
      if (d.codes_host) cudaFreeHost(d.codes_host);
    }
    free(impl->dev);
    if (impl->cpu) impl->cpu->destroy(impl->cpu);
    free(impl);
  }
  free(be);
}

}  // namespace rctd_cuda

using namespace rctd_cuda;

extern "C" void rctd_cuda_opts_default(rctd_cuda_opts *opts) {
  opts->precision = RCTD_CUDA_FLOAT64;
  opts->mem_fraction = 0.5;
  opts->max_fits_per_launch = 0;
  opts->profile = 0;
}

extern "C" int rctd_cuda_device_count(void) {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return n;
}

extern "C" int rctd_cuda_device_name(int device, char *name, size_t name_len) {
  cudaDeviceProp prop;
  if (cudaGetDeviceProperties(&prop, device) != cudaSuccess) {
    cudaGetLastError();
    if (name && name_len) name[0] = 0;
    return -1;
  }
  if (name && name_len) snprintf(name, name_len, "%s", prop.name);
  return 0;
}

extern "C" rctd_backend *rctd_backend_cuda_ex(const int *devices, int n_devices,
                                              const rctd_cuda_opts *opts_in, char *err,
                                              size_t err_len) {
  rctd_cuda_opts opts;
  rctd_cuda_opts_default(&opts);
  if (opts_in) opts = *opts_in;
  if (!(opts.mem_fraction > 0 && opts.mem_fraction <= 0.95)) opts.mem_fraction = 0.5;
  if (opts.precision != RCTD_CUDA_FLOAT64 && opts.precision != RCTD_CUDA_FLOAT32) {
    if (err && err_len) snprintf(err, err_len, "unknown precision %d", opts.precision);
    return NULL;
  }
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count < 1) {
    if (err && err_len)
      snprintf(err, err_len, "no usable CUDA device (%s)",
               e != cudaSuccess ? cudaGetErrorString(e) : "none found");
    cudaGetLastError();
    return NULL;
  }
  static const int dev0 = 0;
  if (!devices || n_devices < 1) {
    devices = &dev0;
    n_devices = 1;
  }
  if (n_devices > 64) n_devices = 64;
  for (int i = 0; i < n_devices; i++) {
    if (devices[i] < 0 || devices[i] >= count) {
      if (err && err_len)
        snprintf(err, err_len, "CUDA device %d does not exist (%d found)", devices[i], count);
      return NULL;
    }
    for (int j = 0; j < i; j++)
      if (devices[j] == devices[i]) {
        if (err && err_len) snprintf(err, err_len, "CUDA device %d given twice", devices[i]);
        return NULL;
      }
  }
  rctd_backend *be = (rctd_backend *)calloc(1, sizeof *be);
  Impl *impl = (Impl *)calloc(1, sizeof *impl);
  Device *dev = (Device *)calloc((size_t)n_devices, sizeof *dev);
  long n_cpu = sysconf(_SC_NPROCESSORS_ONLN);
  rctd_backend *cpu = rctd_backend_cpu(n_cpu > 0 ? (int)n_cpu : 1);
  if (!be || !impl || !dev || !cpu) {
    free(be);
    free(impl);
    free(dev);
    if (cpu) cpu->destroy(cpu);
    if (err && err_len) snprintf(err, err_len, "out of memory");
    return NULL;
  }
  impl->dev = dev;
  impl->opts = opts;
  impl->cpu = cpu;
  be->impl = impl;
  be->irwls_batch = rcb_irwls_batch;
  be->qtable = rcb_qtable;
  be->destroy = rcb_destroy;
  be->n_threads = n_devices;
  int len = snprintf(impl->name, sizeof impl->name, "cuda:");
  for (int i = 0; i < n_devices; i++) {
    Device &d = dev[i];
    d.id = devices[i];
    impl->n_dev = i + 1;
    cudaDeviceProp prop;
    e = cudaSetDevice(d.id);
    if (e == cudaSuccess) e = cudaGetDeviceProperties(&prop, d.id);
    if (e == cudaSuccess && prop.major < 9) {
      if (err && err_len)
        snprintf(err, err_len, "CUDA device %d (%s) is sm_%d%d; this build needs sm_90 (Hopper)",
                 d.id, prop.name, prop.major, prop.minor);
      rcb_destroy(be);
      return NULL;
    }
    if (e == cudaSuccess) e = cudaStreamCreateWithFlags(&d.stream, cudaStreamNonBlocking);
    if (e != cudaSuccess) {
      if (err && err_len) snprintf(err, err_len, "CUDA device %d: %s", d.id, cudaGetErrorString(e));
      rcb_destroy(be);
      return NULL;
    }
    d.n_sm = prop.multiProcessorCount;
    if (len < (int)sizeof impl->name)
      len += snprintf(impl->name + len, sizeof impl->name - len, "%s%d", i ? "," : "", d.id);
  }
  be->name = impl->name;
  return be;
}

extern "C" rctd_backend *rctd_backend_cuda(const int *devices, int n_devices, char *err,
                                           size_t err_len) {
  return rctd_backend_cuda_ex(devices, n_devices, NULL, err, err_len);
}

extern "C" int rctd_cuda_last_stats(const rctd_backend *be, rctd_cuda_stats *stats) {
  if (!be || !stats || be->irwls_batch != rcb_irwls_batch) return -1;
  *stats = ((const Impl *)be->impl)->stats;
  return 0;
}
