/* Batched IRWLS fits on the GPU (spacexr solveIRWLS.weights, unconstrained, table likelihood).
 *
 * Two kernels, both persistent with a work counter: a lane or warp that finishes its fit takes
 * the next one, so finished fits drop out at once and the device stays full until the batch
 * runs dry (the compaction of converged fits, without moving any state).
 *
 * fits_small (k_sub <= 2): one thread per fit, every operation in the order of the CPU kernel
 *   (kernels/cpu/irwls.c, psd.c closed forms, qp.c), so weights, flags and scores are the CPU
 *   ones bit for bit (scores: the long double sum is emulated exactly).
 *
 * fits_warp (3 <= k_sub <= 32): one warp per fit.  Genes are split over the lanes for the
 *   prediction and the spline; the Hessian S' diag(-d2) S and the gradient are one pass of FP64
 *   tensor-core products (mma.m8n8k4) with the gradient as an extra column; psd() is a
 *   parallel cyclic Jacobi eigensolver (round-robin pairs, each round one pass over 2 x 2 pair
 *   blocks) in shared memory, started from the previous step's eigenvectors; the QP is the
 *   CPU's active-set method with its decisions (lane i owns variable i; warm-started from the
 *   previous step's working set as the CPU's).  Results equal the CPU's to rounding: its
 *   eigenvectors come from another eigensolver (Householder + QL).
 *
 * Both follow the CPU kernel's QP warm start (FitLaunch.qp_warm).
 *
 * FitLaunch.float32 (--precision float32) instantiates fits_warp with T = float: the Hessian as
 *   stored, the Jacobi eigensolver, D and the QP in float (thresholds scaled to float's epsilon,
 *   Prec<T>); weights, prediction, spline and the tensor-core accumulation stay double. */
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "cuda/cuda_internal.h"
#include "common/irwls_step.h"
#include "cuda/cuda_math.cuh"

namespace rctd_cuda {

#define RCU_ALPHA RK_IRWLS_ALPHA /* kernels/common/irwls_step.h (shared with the CPU) */
#define RCU_RIDGE RK_IRWLS_RIDGE
#define RCU_FULL_MASK 0xffffffffu

__device__ __forceinline__ double rcu_nan() {
  return __longlong_as_double(0x7ff8000000000000LL);
}

/* ------------------------------------------------------------------ k <= 2: thread per fit */

template <int KS>
struct SmallFit {
  int f, pix, iter;
  int in_work[KS]; /* the QP's last working set (warm starts) */
  int32_t t[KS];
  double numi, change;
  double w[KS];
};

/* Count code of gene g of local pixel pix. */
__device__ __forceinline__ int rcu_count(const FitLaunch &p, int pix, int g) {
  return p.counts_transposed ? p.counts[(size_t)g * p.n_pix + pix]
                             : p.counts[(size_t)pix * p.n_genes + g];
}

/* One solveWLS step of a k <= 2 fit (irwls_step of the CPU kernel); returns the change or NaN. */
template <int KS>
__device__ double rcu_small_step(const FitLaunch &p, const double *prof, const double *x_vals,
                                 const SplineCoef *coef, SmallFit<KS> &st) {
  const int G = p.n_genes, ld = p.gene_stride;
  double s[KS];
  for (int k = 0; k < KS; k++) s[k] = st.w[k] > 0 ? st.w[k] : 0;
  const double floor_pred = rk_irwls_pred_floor(st.numi);
  const double *row0 = prof + (size_t)st.t[0] * ld;
  const double *row1 = prof + (size_t)st.t[KS - 1] * ld;
  /* irwls_dot's four partial sums for d_k = d1 . S_k and H_ij = c_i . S_j (c_i = -d2 S_i) */
  double dv0[4] = {0, 0, 0, 0}, dv1[4] = {0, 0, 0, 0};
  double h00[4] = {0, 0, 0, 0}, h10[4] = {0, 0, 0, 0}, h11[4] = {0, 0, 0, 0};
  const int G4 = G & ~3;
  for (int g = 0; g < G; g++) {
    const int r = g < G4 ? (g & 3) : 0;
    double S0 = row0[g] * st.numi;
    double S1 = KS > 1 ? row1[g] * st.numi : 0;
    double pred = 0;
    pred += S0 * s[0];
    if (KS > 1) pred += S1 * s[1];
    pred = fabs(pred);
    pred = pred < floor_pred ? floor_pred : pred;
    double d1, d2;
    rcu_spline_d12(x_vals, coef, p.n_k, rcu_count(p, st.pix, g), pred, d1, d2);
    double c0 = -d2 * S0;
    double a0 = d1 * S0, a1 = c0 * S0;
    /* r selects the accumulator; written as selects to keep the arrays in registers */
#pragma unroll
    for (int q = 0; q < 4; q++)
      if (q == r) {
        dv0[q] += a0;
        h00[q] += a1;
      }
    if (KS > 1) {
      double c1 = -d2 * S1;
      double b0 = d1 * S1, b1 = c1 * S0, b2 = c1 * S1;
#pragma unroll
      for (int q = 0; q < 4; q++)
        if (q == r) {
          dv1[q] += b0;
          h10[q] += b1;
          h11[q] += b2;
        }
    }
  }
  double dvec[KS], D[KS * KS], H00 = (h00[0] + h00[1]) + (h00[2] + h00[3]);
  dvec[0] = (dv0[0] + dv0[1]) + (dv0[2] + dv0[3]);
  double norm;
  if (KS == 1) {
    if (!isfinite(H00)) return rcu_nan();
    norm = rk_psd_one(H00, D);
  } else {
    dvec[KS - 1] = (dv1[0] + dv1[1]) + (dv1[2] + dv1[3]);
    double H10 = (h10[0] + h10[1]) + (h10[2] + h10[3]);
    double H11 = (h11[0] + h11[1]) + (h11[2] + h11[3]);
    if (!isfinite(H00) || !isfinite(H10) || !isfinite(H11)) return rcu_nan();
    norm = rk_psd_two(H00, H10, H11, D);
  }
  if (!(norm > 0)) return rcu_nan();
  double lower[KS], x[KS];
  for (int k = 0; k < KS; k++) {
    dvec[k] /= norm;
    D[k * KS + k] += RCU_RIDGE;
    lower[k] = -s[k];
    if (!isfinite(dvec[k])) return rcu_nan();
  }
  int free_idx[KS];
  double chol[KS * KS], rhs[KS], x_sub[KS];
  rk_qp_work w = {st.in_work, free_idx, chol, rhs, NULL, x_sub};
  if (rk_qp_solve(KS, KS, D, dvec, lower, 0, 0.0, x, &w, p.qp_warm && st.iter > 0) != 0)
    return rcu_nan();
  double change = 0;
  for (int k = 0; k < KS; k++) {
    double w_new = s[k] + RCU_ALPHA * x[k];
    change += fabs(w_new - st.w[k]);
    st.w[k] = w_new;
  }
  return change;
}

/* rctd_irwls_score_kg: -(double) sum_g d0(y_g, sum_k S_kg w_k), summed as a long double. */
template <int KS>
__device__ double rcu_small_score(const FitLaunch &p, const double *prof, const double *x_vals,
                                  const SplineCoef *coef, const SmallFit<KS> &st) {
  const int ld = p.gene_stride;
  Ext80 sum = {0, 0};
  for (int g = 0; g < p.n_genes; g++) {
    double pred = 0;
    for (int k = 0; k < KS; k++) pred += (prof[(size_t)st.t[k] * ld + g] * st.numi) * st.w[k];
    rcu_ext_add(sum, rcu_spline_d0(x_vals, coef, p.n_k, rcu_count(p, st.pix, g), pred));
  }
  return -sum.hi;
}

template <int KS>
__device__ void rcu_small_load(const FitLaunch &p, int f, SmallFit<KS> &st) {
  st.f = f;
  st.pix = p.pix_f[f];
  st.numi = p.numi[st.pix];
  for (int k = 0; k < KS; k++) {
    st.t[k] = p.types_fk ? p.types_fk[(size_t)f * KS + k] : k;
    st.w[k] = 1.0 / KS;
  }
  st.iter = 0;
  st.change = 1;
  for (int k = 0; k < KS; k++) st.in_work[k] = 0;
}

/* Hands out fits to the lanes of the warp that ask (one atomic per warp). */
__device__ __forceinline__ int rcu_grab(int *counter, bool want, int lane) {
  unsigned mask = __ballot_sync(RCU_FULL_MASK, want);
  if (!mask) return -1;
  int leader = __ffs(mask) - 1, base = 0;
  if (lane == leader) base = atomicAdd(counter, __popc(mask));
  base = __shfl_sync(RCU_FULL_MASK, base, leader);
  return want ? base + __popc(mask & ((1u << lane) - 1)) : -1;
}

template <int KS>
__global__ void __launch_bounds__(128) rcu_fits_small(FitLaunch p) {
  extern __shared__ double smem_small[];
  double *x_vals = smem_small;
  for (int i = threadIdx.x; i < RCTD_N_X; i += blockDim.x) x_vals[i] = p.x_vals[i];
  __syncthreads();
  const double *prof = p.profiles_kg;
  const SplineCoef *coef = reinterpret_cast<const SplineCoef *>(p.spline_coef);
  const int lane = threadIdx.x & 31;

  SmallFit<KS> st;
  int f = rcu_grab(p.work_counter, true, lane);
  bool active = f >= 0 && f < p.n_fits;
  if (active) rcu_small_load<KS>(p, f, st);
  for (;;) {
    if (!__any_sync(RCU_FULL_MASK, active)) break;
    bool done = false;
    if (active) {
      /* loop condition of rctd_irwls_fit_kg: change > min_change && iter < n_iter */
      if (st.change > p.min_change && st.iter < p.n_iter) {
        double change = rcu_small_step<KS>(p, prof, x_vals, coef, st);
        st.iter++;
        st.change = change;
        if (isnan(change)) {
          for (int k = 0; k < KS; k++) st.w[k] = rcu_nan();
          st.change = rcu_nan();
          done = true;
        }
      } else {
        done = true;
      }
      if (done) {
        for (int k = 0; k < KS; k++) p.weights_fk[(size_t)st.f * KS + k] = st.w[k];
        p.conv_f[st.f] = st.change <= p.min_change;
        if (p.iters_f) p.iters_f[st.f] = st.iter;
        if (p.score_f) p.score_f[st.f] = rcu_small_score<KS>(p, prof, x_vals, coef, st);
      }
    }
    int nf = rcu_grab(p.work_counter, done, lane);
    if (done) {
      active = nf < p.n_fits;
      if (active) rcu_small_load<KS>(p, nf, st);
    }
  }
}

/* ------------------------------------------------------------------ k >= 3: warp per fit */

/* Phase counters of the warp kernel (FitLaunch.prof, for tuning). */
enum {
  RCU_PROF_GENES,   /* prediction, spline, Hessian products */
  RCU_PROF_HESS,    /* Hessian to shared memory, checks */
  RCU_PROF_WARM,    /* rotation into the last eigenbasis */
  RCU_PROF_JACOBI,  /* eigensolver */
  RCU_PROF_PSD,     /* clamp, D = V diag V' */
  RCU_PROF_QP,      /* the QP and the update */
  RCU_PROF_SWEEPS,  /* Jacobi sweeps (count) */
  RCU_PROF_QP_ITER, /* subspace minimisations (count) */
  RCU_PROF_STEPS,   /* IRWLS steps (count) */
  RCU_PROF_N
};
static_assert(RCU_PROF_N == kProfCounters, "profile counters");

/* Per-warp shared memory, for k types and leading dimension ld.  T is the type of the per-step
 * linear algebra (Hessian, eigensolver, QP): double, or float with --precision float32; the
 * weights, the prediction, the spline and the Hessian's accumulation stay double. */
template <typename T>
struct WarpMem {
  T *H, *A, *V;                /* n x ld each */
  double *w, *s, *delta;       /* 32 each: weights, clipped weights, |change| per type */
  double *scalars;             /* 4 */
  unsigned long long *prof;    /* RCU_PROF_N */
  T *dvec, *lower, *xv, *eval; /* 32 each */
  T *rot;                      /* 16 x 6: c, s, t, app, aqq, apq */
  int *rot_pq;                 /* 16 x 2 */
  int *types, *fidx;           /* 32 each */
};

/* Jacobi works on n = k rounded up to even; rows are n + 1 long (odd: no bank conflicts). */
__host__ __device__ inline int rcu_warp_n(int k) {
  return k + (k & 1);
}
__host__ __device__ inline int rcu_warp_ld(int k) {
  return rcu_warp_n(k) + 1;
}

/* Bytes of one warp's WarpMem<T> (a multiple of 16). */
template <typename T>
__host__ __device__ inline size_t rcu_warp_bytes(int k) {
  const size_t nl = (size_t)rcu_warp_n(k) * rcu_warp_ld(k);
  const size_t b = sizeof(double) * (3 * 32 + 4) + sizeof(unsigned long long) * RCU_PROF_N +
                   sizeof(T) * (3 * nl + 4 * 32 + 16 * 6) + sizeof(int) * 3 * 32;
  return (b + 15) & ~(size_t)15;
}

/* The T arrays first (an even number of them: the doubles after them stay aligned), then the
 * doubles, the counters and the ints. */
template <typename T>
__device__ inline WarpMem<T> rcu_warp_carve(char *base, int k) {
  const size_t nl = (size_t)rcu_warp_n(k) * rcu_warp_ld(k);
  WarpMem<T> m;
  T *t = reinterpret_cast<T *>(base);
  m.H = t, t += nl;
  m.A = t, t += nl;
  m.V = t, t += nl;
  m.dvec = t, t += 32;
  m.lower = t, t += 32;
  m.xv = t, t += 32;
  m.eval = t, t += 32;
  m.rot = t, t += 16 * 6;
  double *q = reinterpret_cast<double *>(t);
  m.w = q, q += 32;
  m.s = q, q += 32;
  m.delta = q, q += 32;
  m.scalars = q, q += 4;
  m.prof = reinterpret_cast<unsigned long long *>(q);
  int *iq = reinterpret_cast<int *>(m.prof + RCU_PROF_N);
  m.rot_pq = iq, iq += 32;
  m.types = iq, iq += 32;
  m.fidx = iq, iq += 32;
  return m;
}

/* Constants of the per-step linear algebra that depend on its precision: the Jacobi threshold's
 * epsilon, where the rotation's t switches to 1 / (2 theta) (theta^2 finite), the QP's
 * multiplier tolerance (the float64 one scaled by the ratio of the epsilons) and its floor. */
template <typename T>
struct Prec;
template <>
struct Prec<double> {
  static constexpr double eps = 0x1p-53, theta_big = 1e150, mult_tol = RK_QP_MULT_TOL,
                          tiny = 1e-300;
};
template <>
struct Prec<float> {
  static constexpr float eps = 0x1p-24f, theta_big = 1e18f,
                         mult_tol = (float)(RK_QP_MULT_TOL * 0x1p29), tiny = 1e-30f;
};

__device__ __forceinline__ double rcu_rsqrt(double v) {
  return rsqrt(v);
}
__device__ __forceinline__ float rcu_rsqrt(float v) {
  return rsqrtf(v);
}

__device__ __forceinline__ void rcu_mma(double a, double b, double &c0, double &c1) {
  asm volatile("mma.sync.aligned.m8n8k4.row.col.f64.f64.f64.f64 {%0,%1}, {%2}, {%3}, {%0,%1};\n"
               : "+d"(c0), "+d"(c1)
               : "d"(a), "d"(b));
}

/* Warp-uniform: true when any lane's value is not finite. */
__device__ __forceinline__ bool rcu_any_nonfinite(bool bad) {
  return __any_sync(RCU_FULL_MASK, bad);
}

template <typename T>
__device__ __forceinline__ T rcu_warp_max(T v) {
  for (int o = 16; o > 0; o >>= 1) v = fmax(v, __shfl_xor_sync(RCU_FULL_MASK, v, o));
  return v;
}

template <typename T>
__device__ __forceinline__ T rcu_warp_min(T v) {
  for (int o = 16; o > 0; o >>= 1) v = fmin(v, __shfl_xor_sync(RCU_FULL_MASK, v, o));
  return v;
}

/* Parallel cyclic Jacobi on the symmetric A (n x n, n = k rounded up to even, the padding row
 * and column zero; leading dimension ld) accumulating the rotations into V.  Round-robin
 * ordering: every round rotates the n/2 disjoint pairs whose off-diagonal exceeds tol at once.
 * A round is one pass over the 2 x 2 blocks of pairs (i, j): off the diagonal J_i' B J_j, on it
 * the exact result (zero off the diagonal, app - t apq and aqq + t apq on it); V <- V J by rows.
 * Returns the sweeps run. */
template <typename T>
__device__ int rcu_jacobi(int k, int n, int ld, T *A, T *V, T *rot, int *rot_pq, T tol, int lane) {
  const int n_pairs = n / 2, n_rounds = n - 1, n_items = n_pairs * (n_pairs + 1) / 2;
  int sweep = 0;
  while (sweep < 40) {
    sweep++;
    bool any = false;
    for (int r = 0; r < n_rounds; r++) {
      bool rotate = false;
      if (lane < n_pairs) {
        int a = lane == 0 ? n - 1 : (r + lane) % (n - 1);
        int b = lane == 0 ? r : (r - lane + n - 1) % (n - 1);
        int pp = a < b ? a : b, qq = a < b ? b : a;
        rot_pq[2 * lane] = pp;
        rot_pq[2 * lane + 1] = qq;
        if (qq < k) {
          T apq = A[pp * ld + qq];
          if (fabs(apq) > tol) {
            T app = A[pp * ld + pp], aqq = A[qq * ld + qq];
            T theta = (aqq - app) / (T(2) * apq);
            T t = fabs(theta) > Prec<T>::theta_big
                      ? T(0.5) / theta
                      : copysign(T(1), theta) / (fabs(theta) + sqrt(fma(theta, theta, T(1))));
            T c = rcu_rsqrt(fma(t, t, T(1)));
            T *ro = rot + lane * 6;
            ro[0] = c;
            ro[1] = t * c;
            ro[2] = t;
            ro[3] = app;
            ro[4] = aqq;
            ro[5] = apq;
            rotate = true;
          }
        }
      }
      const unsigned mask = __ballot_sync(RCU_FULL_MASK, rotate);
      if (!mask) continue;
      any = true;
      __syncwarp();
      for (int item = lane; item < n_items; item += 32) {
        int i, j;
        if (item < n_pairs) {
          i = j = item;
        } else {
          const int e = item - n_pairs; /* e = j (j - 1) / 2 + i, i < j */
          j = (int)((1.0f + sqrtf(8.0f * e + 1.0f)) * 0.5f);
          while (j * (j - 1) / 2 > e) j--;
          while ((j + 1) * j / 2 <= e) j++;
          i = e - j * (j - 1) / 2;
        }
        const bool ri = (mask >> i) & 1u, rj = (mask >> j) & 1u;
        if (!ri && !rj) continue;
        const int pi = rot_pq[2 * i], qi = rot_pq[2 * i + 1];
        if (i == j) {
          const T *ro = rot + i * 6;
          const T d = ro[2] * ro[5];
          A[pi * ld + pi] = ro[3] - d;
          A[qi * ld + qi] = ro[4] + d;
          A[pi * ld + qi] = A[qi * ld + pi] = T(0);
          continue;
        }
        const int pj = rot_pq[2 * j], qj = rot_pq[2 * j + 1];
        T b00 = A[pi * ld + pj], b01 = A[pi * ld + qj];
        T b10 = A[qi * ld + pj], b11 = A[qi * ld + qj];
        if (ri) { /* rows: J_i' B */
          const T c = rot[i * 6], s = rot[i * 6 + 1];
          const T r00 = c * b00 - s * b10, r01 = c * b01 - s * b11;
          b10 = s * b00 + c * b10;
          b11 = s * b01 + c * b11;
          b00 = r00;
          b01 = r01;
        }
        if (rj) { /* columns: B J_j */
          const T c = rot[j * 6], s = rot[j * 6 + 1];
          const T c00 = c * b00 - s * b01, c10 = c * b10 - s * b11;
          b01 = s * b00 + c * b01;
          b11 = s * b10 + c * b11;
          b00 = c00;
          b10 = c10;
        }
        A[pi * ld + pj] = A[pj * ld + pi] = b00;
        A[pi * ld + qj] = A[qj * ld + pi] = b01;
        A[qi * ld + pj] = A[pj * ld + qi] = b10;
        A[qi * ld + qj] = A[qj * ld + qi] = b11;
      }
      if (lane < k) {
        unsigned mm = mask;
        while (mm) {
          const int i = __ffs(mm) - 1;
          mm &= mm - 1;
          const int pi = rot_pq[2 * i], qi = rot_pq[2 * i + 1];
          const T c = rot[i * 6], s = rot[i * 6 + 1];
          const T x = V[lane * ld + pi], y = V[lane * ld + qi];
          V[lane * ld + pi] = c * x - s * y;
          V[lane * ld + qi] = s * x + c * y;
        }
      }
      __syncwarp();
    }
    if (!any) break;
  }
  return sweep;
}

/* rcu_qp_solve on a warp: the same active-set method with the same decisions.  Lane i < k owns
 * variable i (x_i, x_sub_i); D (k x ld), d and lower live in shared memory; chol is k x k
 * shared scratch, fidx 32 ints.  The Cholesky factorisation, forward solve, right-hand sides
 * and multipliers sum in the CPU's order; the back solve runs right-looking (its sums in
 * reverse order).  Returns 0 or -1 (the same in every lane) and the number of subspace
 * minimisations in *n_sub. */
template <typename T>
__device__ int rcu_qpw_subspace(int k, int ld, const T *D, const T *d, const T *lower,
                                unsigned work, T *chol, int *fidx, T *xsub_s, int lane, T &xs_i) {
  const unsigned all = k == 32 ? 0xffffffffu : ((1u << k) - 1);
  const unsigned freem = all & ~work;
  const int m = __popc(freem);
  if (lane < m) {
    unsigned rem = freem; /* clear the lane lowest free bits: the next is free variable `lane` */
    for (int t = 0; t < lane; t++) rem &= rem - 1;
    fidx[lane] = __ffs(rem) - 1;
  }
  __syncwarp();
  /* rows of D_FF (lower triangle) */
  int fi = lane < m ? fidx[lane] : 0;
  if (lane < m)
    for (int b = 0; b <= lane; b++) chol[lane * m + b] = D[fi * ld + fidx[b]];
  __syncwarp();
  /* right-looking Cholesky: entry (a, b) subtracts L_ap L_bp for p = 0..b-1, as qp_cholesky */
  for (int p = 0; p < m; p++) {
    int ok = 1;
    if (lane == p) {
      T s = chol[p * m + p];
      ok = s > T(0);
      chol[p * m + p] = sqrt(s);
    }
    ok = __shfl_sync(RCU_FULL_MASK, ok, p);
    if (!ok) return -1;
    __syncwarp();
    if (lane > p && lane < m) chol[lane * m + p] = chol[lane * m + p] / chol[p * m + p];
    __syncwarp();
    if (lane > p && lane < m) {
      const T lap = chol[lane * m + p];
      for (int b = p + 1; b <= lane; b++) chol[lane * m + b] -= lap * chol[b * m + p];
    }
    __syncwarp();
  }
  /* right-hand side: d_i - sum over the working set (ascending) of D_ij lower_j */
  T v = 0;
  if (lane < m) {
    v = d[fi];
    for (int j = 0; j < k; j++)
      if ((work >> j) & 1u) v -= D[fi * ld + j] * lower[j];
  }
  for (int p = 0; p < m; p++) {
    if (lane == p) v = v / chol[p * m + p];
    T vp = __shfl_sync(RCU_FULL_MASK, v, p);
    if (lane > p && lane < m) v -= chol[lane * m + p] * vp;
  }
  for (int p = m - 1; p >= 0; p--) {
    if (lane == p) v = v / chol[p * m + p];
    T vp = __shfl_sync(RCU_FULL_MASK, v, p);
    if (lane < p) v -= chol[p * m + lane] * vp;
  }
  if (lane < k && ((work >> lane) & 1u)) xsub_s[lane] = lower[lane];
  if (lane < m) xsub_s[fi] = v;
  __syncwarp();
  xs_i = lane < k ? xsub_s[lane] : T(0);
  __syncwarp();
  return 0;
}

template <typename T>
__device__ int rcu_qp_warp(int k, int ld, const T *D, const T *d, const T *lower, T *chol,
                           int *fidx, T *x_s, int lane, T &x_i, int &n_sub, unsigned &work,
                           int warm) {
  const bool own = lane < k;
  const T d_i = own ? d[lane] : T(0), lower_i = own ? lower[lane] : T(0);
  T xs_i = 0;
  if (!warm) work = 0;
  n_sub = 1;
  if (rcu_qpw_subspace(k, ld, D, d, lower, work, chol, fidx, x_s, lane, xs_i) != 0) return -1;
  work |= __ballot_sync(RCU_FULL_MASK, own && xs_i < lower_i);
  x_i = ((work >> lane) & 1u) ? lower_i : xs_i;
  T sc = 0;
  if (own) {
    sc = fabs(d_i);
    for (int j = 0; j < k; j++) sc = fmax(sc, fabs(D[lane * ld + j]));
  }
  const T scale = rcu_warp_max(sc);
  int last_dropped = -1;
  for (int iter = 0; iter < 10 * k + 50; iter++) {
    n_sub++;
    if (rcu_qpw_subspace(k, ld, D, d, lower, work, chol, fidx, x_s, lane, xs_i) != 0) return -1;
    const bool in_w = (work >> lane) & 1u;
    /* walk towards x_sub until the first free variable hits its bound (first minimum) */
    T ratio = 2;
    if (own && !in_w && xs_i < lower_i) {
      T gap = x_i - lower_i;
      T r = gap > T(0) ? gap / (x_i - xs_i) : T(0);
      if (r < T(1)) ratio = r;
    }
    const T step = rcu_warp_min(ratio);
    if (step < T(1)) {
      const int blocking = __ffs(__ballot_sync(RCU_FULL_MASK, ratio == step)) - 1;
      if (step == T(0) && blocking == last_dropped) break;
      if (own && !in_w) x_i += step * (xs_i - x_i);
      if (lane == blocking) x_i = lower_i;
      work |= 1u << blocking;
      last_dropped = -1;
      continue;
    }
    x_i = xs_i;
    const T xmax = rcu_warp_max(own ? fabs(x_i) : T(0));
    const T nu = 0;
    T most_negative = -Prec<T>::mult_tol * fmax(scale * fmax(xmax, T(1)), Prec<T>::tiny);
    if (own) x_s[lane] = x_i;
    __syncwarp();
    T mult = INFINITY;
    if (own && in_w) {
      T s = -d_i - nu;
      for (int j = 0; j < k; j++) s += D[lane * ld + j] * x_s[j];
      if (s < most_negative) mult = s;
    }
    __syncwarp();
    const T mmin = rcu_warp_min(mult);
    if (!(mmin < most_negative)) return 0;
    const int drop = __ffs(__ballot_sync(RCU_FULL_MASK, mult == mmin)) - 1;
    work &= ~(1u << drop);
    last_dropped = drop;
  }
  return 0;
}

/* One IRWLS step of the warp's fit; returns the change (NaN: the fit failed), the same value in
 * every lane.  NTA / NTB: 8-type tiles of the Hessian rows / columns (the columns include the
 * gradient as column k). */
template <typename T, int NTA, int NTB>
__device__ double rcu_warp_step(const FitLaunch &p, const double *prof, const double *x_vals,
                                const SplineCoef *coef, WarpMem<T> &m, int k, int pix, double numi,
                                int iter, unsigned &work, int lane) {
  const int G = p.n_genes, ldp = p.gene_stride, ld = rcu_warp_ld(k);
  const bool timing = p.prof != NULL;
  long long c0 = timing ? clock64() : 0, c1;
  if (lane < k) m.s[lane] = m.w[lane] > 0 ? m.w[lane] : 0;
  __syncwarp();
  const double floor_pred = rk_irwls_pred_floor(numi);

  constexpr int NP = NTA * NTB - NTA * (NTA - 1) / 2; /* tile pairs TI <= TJ */
  double acc[NP][2];
#pragma unroll
  for (int i = 0; i < NP; i++) acc[i][0] = acc[i][1] = 0;
  const int frag_row = lane >> 2, frag_col = lane & 3;
  int t_row[NTB];
#pragma unroll
  for (int TI = 0; TI < NTB; TI++) {
    int j = 8 * TI + frag_row;
    t_row[TI] = j < k ? m.types[j] : -1;
  }
  bool bad = false;
  for (int g0 = 0; g0 < G; g0 += 32) {
    const int g = g0 + lane;
    double u = 0, d1 = 0;
    if (g < G) {
      double pred = 0;
      for (int j = 0; j < k; j++) pred += (prof[(size_t)m.types[j] * ldp + g] * numi) * m.s[j];
      pred = fabs(pred);
      pred = pred < floor_pred ? floor_pred : pred;
      double d2;
      rcu_spline_d12(x_vals, coef, p.n_k, p.counts[(size_t)pix * G + g], pred, d1, d2);
      u = -d2;
      bad |= !isfinite(u) || !isfinite(d1);
    }
#pragma unroll
    for (int sub = 0; sub < 8; sub++) {
      const int src = 4 * sub + frag_col;
      const double ug = __shfl_sync(RCU_FULL_MASK, u, src);
      const double d1g = __shfl_sync(RCU_FULL_MASK, d1, src);
      const int gg = g0 + src;
      double a[NTB], b[NTB];
#pragma unroll
      for (int TI = 0; TI < NTB; TI++) {
        a[TI] = t_row[TI] >= 0 ? prof[(size_t)t_row[TI] * ldp + gg] : 0.0;
        const int col = 8 * TI + frag_row;
        b[TI] = col < k ? ug * a[TI] : (col == k ? d1g : 0.0);
      }
      int pi = 0;
#pragma unroll
      for (int TI = 0; TI < NTA; TI++)
#pragma unroll
        for (int TJ = TI; TJ < NTB; TJ++) {
          rcu_mma(a[TI], b[TJ], acc[pi][0], acc[pi][1]);
          pi++;
        }
    }
  }
  if (timing) {
    c1 = clock64();
    if (lane == 0) m.prof[RCU_PROF_GENES] += c1 - c0;
    c0 = c1;
  }
  if (rcu_any_nonfinite(bad)) return rcu_nan();
  /* tiles -> H (lower triangle mirrored) and the gradient */
  const double n2 = numi * numi;
  {
    int pi = 0;
#pragma unroll
    for (int TI = 0; TI < NTA; TI++)
#pragma unroll
      for (int TJ = TI; TJ < NTB; TJ++) {
        const int r = 8 * TI + frag_row;
#pragma unroll
        for (int e = 0; e < 2; e++) {
          const int c = 8 * TJ + 2 * frag_col + e;
          if (r >= k) continue;
          if (c == k) {
            m.dvec[r] = (T)(acc[pi][e] * numi);
          } else if (c < k && (TJ > TI || c <= r)) {
            const T h = (T)(acc[pi][e] * n2);
            m.H[r * ld + c] = h;
            m.H[c * ld + r] = h;
          }
        }
        pi++;
      }
  }
  __syncwarp();
  bad = false;
  T fro = 0;
  if (lane < k)
    for (int j = 0; j < k; j++) {
      const T h = m.H[lane * ld + j];
      bad |= !isfinite(h);
      fro = fma(h, h, fro);
    }
  if (rcu_any_nonfinite(bad)) return rcu_nan();
  for (int o = 16; o > 0; o >>= 1) fro += __shfl_xor_sync(RCU_FULL_MASK, fro, o);
  const T tol = Prec<T>::eps * sqrt(fro);
  if (timing) {
    c1 = clock64();
    if (lane == 0) m.prof[RCU_PROF_HESS] += c1 - c0;
    c0 = c1;
  }

  /* psd(): eigendecomposition, started from the last iteration's eigenvectors */
  const int n = rcu_warp_n(k);
  if (iter == 0) {
    if (lane < n)
      for (int j = 0; j < n; j++) m.V[lane * ld + j] = lane == j ? T(1) : T(0);
  } else {
    /* A = H V (scratch), then H <- V' A: the matrix in the old eigenbasis */
    if (lane < k)
      for (int c = 0; c < k; c++) {
        T sum = 0;
        for (int j = 0; j < k; j++) sum = fma(m.H[lane * ld + j], m.V[j * ld + c], sum);
        m.A[lane * ld + c] = sum;
      }
    __syncwarp();
    if (lane < k)
      for (int c = 0; c <= lane; c++) {
        T sum = 0;
        for (int j = 0; j < k; j++) sum = fma(m.V[j * ld + lane], m.A[j * ld + c], sum);
        m.H[lane * ld + c] = sum;
        m.H[c * ld + lane] = sum;
      }
  }
  __syncwarp();
  if (n > k && lane < n) m.H[lane * ld + k] = m.H[k * ld + lane] = T(0); /* padding: zero */
  __syncwarp();
  if (timing) {
    c1 = clock64();
    if (lane == 0) m.prof[RCU_PROF_WARM] += c1 - c0;
    c0 = c1;
  }
  const int sweeps = rcu_jacobi(k, n, ld, m.H, m.V, m.rot, m.rot_pq, tol, lane);
  if (timing) {
    c1 = clock64();
    if (lane == 0) {
      m.prof[RCU_PROF_JACOBI] += c1 - c0;
      m.prof[RCU_PROF_SWEEPS] += sweeps;
    }
    c0 = c1;
  }
  /* eigenvalues clamped at 1e-3; norm = the largest (rctd_psd_scaled) */
  const T e_l = lane < k ? fmax(m.H[lane * ld + lane], T(RK_EIG_FLOOR)) : T(RK_EIG_FLOOR);
  const T norm = rcu_warp_max(e_l);
  if (lane < k) m.eval[lane] = e_l / norm;
  __syncwarp();
  /* D = V diag(eval) V' into A (lower triangle mirrored), + ridge; d /= norm */
  if (lane < k) {
    for (int c = 0; c <= lane; c++) {
      T sum = 0;
      for (int j = 0; j < k; j++) sum += m.V[lane * ld + j] * m.eval[j] * m.V[c * ld + j];
      if (c == lane) sum += T(RCU_RIDGE);
      m.A[lane * ld + c] = sum;
      m.A[c * ld + lane] = sum;
    }
    m.dvec[lane] /= norm;
    m.lower[lane] = (T)-m.s[lane];
  }
  __syncwarp();
  bad = lane < k && !isfinite(m.dvec[lane]);
  if (rcu_any_nonfinite(bad)) return rcu_nan();
  if (timing) {
    c1 = clock64();
    if (lane == 0) m.prof[RCU_PROF_PSD] += c1 - c0;
    c0 = c1;
  }

  /* the exact QP (the CPU's active-set method), H reused as the Cholesky workspace */
  T x_i = 0;
  int n_sub = 0;
  int rc = rcu_qp_warp(k, ld, m.A, m.dvec, m.lower, m.H, m.fidx, m.xv, lane, x_i, n_sub, work,
                       p.qp_warm && iter > 0);
  double change = rcu_nan();
  if (rc == 0) {
    double w_new = 0, delta = 0;
    if (lane < k) {
      w_new = m.s[lane] + RCU_ALPHA * (double)x_i;
      delta = fabs(w_new - m.w[lane]);
    }
    /* change = sum |w_new - w_old| in index order, as the CPU sums it */
    if (lane < k) m.delta[lane] = delta;
    __syncwarp();
    if (lane == 0) {
      double ch = 0;
      for (int j = 0; j < k; j++) ch += m.delta[j];
      m.scalars[0] = ch;
    }
    __syncwarp();
    change = m.scalars[0];
    if (lane < k) m.w[lane] = w_new;
  }
  __syncwarp();
  if (timing) {
    c1 = clock64();
    if (lane == 0) {
      m.prof[RCU_PROF_QP] += c1 - c0;
      m.prof[RCU_PROF_QP_ITER] += n_sub;
      m.prof[RCU_PROF_STEPS] += 1;
    }
  }
  return change;
}

template <typename T, int NTA, int NTB>
__device__ void rcu_warp_fit(const FitLaunch &p, const double *prof, const double *x_vals,
                             const SplineCoef *coef, WarpMem<T> &m, int f, int lane) {
  const int k = p.k_sub;
  const int pix = p.pix_f[f];
  const double numi = p.numi[pix];
  if (lane < k) {
    m.types[lane] = p.types_fk ? p.types_fk[(size_t)f * k + lane] : lane;
    m.w[lane] = 1.0 / k;
  }
  __syncwarp();
  double change = 1;
  int iter = 0;
  unsigned work = 0; /* the QP's working set, kept between steps (warm starts) */
  for (; change > p.min_change && iter < p.n_iter; iter++) {
    change = rcu_warp_step<T, NTA, NTB>(p, prof, x_vals, coef, m, k, pix, numi, iter, work, lane);
    if (isnan(change)) {
      if (lane < k) m.w[lane] = rcu_nan();
      iter++;
      break;
    }
  }
  __syncwarp();
  if (lane < k) p.weights_fk[(size_t)f * k + lane] = m.w[lane];
  if (lane == 0) {
    p.conv_f[f] = change <= p.min_change;
    if (p.iters_f) p.iters_f[f] = iter;
  }
  if (p.score_f) {
    /* prediction with the raw weights, d0 per gene, then the long double sum in gene order */
    Ext80 sum = {0, 0};
    for (int g0 = 0; g0 < p.n_genes; g0 += 32) {
      const int g = g0 + lane;
      double d0 = 0;
      if (g < p.n_genes) {
        double pred = 0;
        for (int j = 0; j < k; j++)
          pred += (prof[(size_t)m.types[j] * p.gene_stride + g] * numi) * m.w[j];
        d0 = rcu_spline_d0(x_vals, coef, p.n_k, p.counts[(size_t)pix * p.n_genes + g], pred);
      }
      const int n_here = min(32, p.n_genes - g0);
      for (int i = 0; i < n_here; i++) {
        double v = __shfl_sync(RCU_FULL_MASK, d0, i);
        if (lane == 0) rcu_ext_add(sum, v);
      }
    }
    if (lane == 0) p.score_f[f] = -sum.hi;
  }
  __syncwarp();
}

/* Registers capped so that MINW warps fit an SM (__launch_bounds__). */
template <typename T, int NTA, int NTB, int MINW>
__global__ void __launch_bounds__(32 * MINW, 1)
    rcu_fits_warp(FitLaunch p, int prof_in_smem, int warp_bytes) {
  extern __shared__ double smem_warp[];
  double *x_vals = smem_warp;
  double *prof_s = smem_warp + RCTD_N_X + 1;
  const size_t prof_doubles = prof_in_smem ? (size_t)p.n_types * p.gene_stride : 0;
  for (int i = threadIdx.x; i < RCTD_N_X; i += blockDim.x) x_vals[i] = p.x_vals[i];
  for (size_t i = threadIdx.x; i < prof_doubles; i += blockDim.x) prof_s[i] = p.profiles_kg[i];
  __syncthreads();
  const double *prof = prof_in_smem ? prof_s : p.profiles_kg;
  const SplineCoef *coef = reinterpret_cast<const SplineCoef *>(p.spline_coef);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  char *wbase = reinterpret_cast<char *>(prof_s + ((prof_doubles + 1) & ~(size_t)1)) +
                (size_t)warp * warp_bytes;
  WarpMem<T> m = rcu_warp_carve<T>(wbase, p.k_sub);
  if (lane < RCU_PROF_N) m.prof[lane] = 0;
  __syncwarp();
  for (;;) {
    int f = 0;
    if (lane == 0) f = atomicAdd(p.work_counter, 1);
    f = __shfl_sync(RCU_FULL_MASK, f, 0);
    if (f >= p.n_fits) break;
    rcu_warp_fit<T, NTA, NTB>(p, prof, x_vals, coef, m, f, lane);
  }
  if (p.prof && lane < RCU_PROF_N) atomicAdd(p.prof + lane, m.prof[lane]);
}

/* ------------------------------------------------------------------ launch */

template <typename T, int NTA, int NTB, int MINW>
static cudaError_t rcu_launch_warp_v(const FitLaunch &p, int n_sm, cudaStream_t stream) {
  int dev = 0;
  cudaGetDevice(&dev);
  int max_smem = 0;
  cudaDeviceGetAttribute(&max_smem, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
  const size_t base = (RCTD_N_X + 1) * sizeof(double);
  const size_t prof_bytes = (((size_t)p.n_types * p.gene_stride + 1) & ~(size_t)1) * sizeof(double);
  const size_t warp_bytes = rcu_warp_bytes<T>(p.k_sub);
  int prof_in_smem = 1;
  long long room = (long long)max_smem - (long long)base - (long long)prof_bytes;
  int warps = room > 0 ? (int)(room / (long long)warp_bytes) : 0;
  if (warps < 4) { /* profiles too large for shared memory: read them through L1 */
    prof_in_smem = 0;
    warps = (int)(((long long)max_smem - (long long)base) / (long long)warp_bytes);
  }
  cudaFuncAttributes attr;
  cudaError_t e = cudaFuncGetAttributes(&attr, rcu_fits_warp<T, NTA, NTB, MINW>);
  if (e != cudaSuccess) return e;
  if (warps > attr.maxThreadsPerBlock / 32) warps = attr.maxThreadsPerBlock / 32;
  if (warps > 16) warps = 16;
  if (warps < 1) return cudaErrorInvalidConfiguration;
  size_t smem = base + (prof_in_smem ? prof_bytes : 0) + (size_t)warps * warp_bytes;
  e = cudaFuncSetAttribute(rcu_fits_warp<T, NTA, NTB, MINW>,
                           cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
  if (e != cudaSuccess) return e;
  int per_sm = 0;
  e = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, rcu_fits_warp<T, NTA, NTB, MINW>,
                                                    warps * 32, smem);
  if (e != cudaSuccess) return e;
  if (per_sm < 1) per_sm = 1;
  long long blocks = (long long)per_sm * n_sm;
  long long needed = ((long long)p.n_fits + warps - 1) / warps;
  if (blocks > needed) blocks = needed;
  if (blocks < 1) blocks = 1;
  rcu_fits_warp<T, NTA, NTB, MINW>
      <<<(unsigned)blocks, warps * 32, smem, stream>>>(p, prof_in_smem, (int)warp_bytes);
  return cudaGetLastError();
}

/* Warps per SM the warp kernel's registers are sized for (3 or 4 per SM sub-partition: 168 or
 * 128 registers).  float64: 12 (16 do not fit the shared memory with K = 19 profiles);
 * float32 (half the shared memory per warp): 16.  RCTD_CUDA_WARPS=12 or 16 overrides (tuning). */
template <typename T, int NTA, int NTB>
static cudaError_t rcu_launch_warp_t(const FitLaunch &p, int n_sm, cudaStream_t stream) {
  const char *w = getenv("RCTD_CUDA_WARPS");
  int warps = sizeof(T) == sizeof(float) ? 16 : 12;
  if (w && (atoi(w) == 12 || atoi(w) == 16)) warps = atoi(w);
  if (warps == 16) return rcu_launch_warp_v<T, NTA, NTB, 16>(p, n_sm, stream);
  return rcu_launch_warp_v<T, NTA, NTB, 12>(p, n_sm, stream);
}

template <int NTA, int NTB>
static cudaError_t rcu_launch_warp(const FitLaunch &p, int n_sm, cudaStream_t stream) {
  if (p.float32) return rcu_launch_warp_t<float, NTA, NTB>(p, n_sm, stream);
  return rcu_launch_warp_t<double, NTA, NTB>(p, n_sm, stream);
}

template <int KS>
static cudaError_t rcu_launch_small(const FitLaunch &p, int n_sm, cudaStream_t stream) {
  const int threads = 128;
  size_t smem = RCTD_N_X * sizeof(double);
  int per_sm = 0;
  cudaError_t e =
      cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, rcu_fits_small<KS>, threads, smem);
  if (e != cudaSuccess) return e;
  if (per_sm < 1) per_sm = 1;
  long long blocks = (long long)per_sm * n_sm;
  long long needed = ((long long)p.n_fits + threads - 1) / threads;
  if (blocks > needed) blocks = needed;
  if (blocks < 1) blocks = 1;
  rcu_fits_small<KS><<<(unsigned)blocks, threads, smem, stream>>>(p);
  return cudaGetLastError();
}

cudaError_t launch_fits(const FitLaunch &p, int n_sm, cudaStream_t stream) {
  const int k = p.k_sub;
  if (k == 1) return rcu_launch_small<1>(p, n_sm, stream);
  if (k == 2) return rcu_launch_small<2>(p, n_sm, stream);
  if (k <= 7) return rcu_launch_warp<1, 1>(p, n_sm, stream);
  if (k == 8) return rcu_launch_warp<1, 2>(p, n_sm, stream);
  if (k <= 15) return rcu_launch_warp<2, 2>(p, n_sm, stream);
  if (k == 16) return rcu_launch_warp<2, 3>(p, n_sm, stream);
  if (k <= 23) return rcu_launch_warp<3, 3>(p, n_sm, stream);
  if (k == 24) return rcu_launch_warp<3, 4>(p, n_sm, stream);
  if (k <= 31) return rcu_launch_warp<4, 4>(p, n_sm, stream);
  if (k == 32) return rcu_launch_warp<4, 5>(p, n_sm, stream);
  return cudaErrorInvalidValue;
}

/* ------------------------------------------------------------------ inputs */

__global__ void rcu_spline_coef(const double *x_vals, const double *q_kx, const double *sq_kx,
                                int n_k, SplineCoef *coef) {
  const size_t n = (size_t)n_k * (RCTD_N_X - 1);
  for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < n;
       e += (size_t)gridDim.x * blockDim.x) {
    const size_t row = e / (RCTD_N_X - 1);
    const int m1 = (int)(e - row * (RCTD_N_X - 1)); /* m - 1 */
    const double *q = q_kx + row * RCTD_N_X, *sq = sq_kx + row * RCTD_N_X;
    double c4[4];
    rk_qt_spline_coef(x_vals, q, sq, m1 + 1, c4);
    SplineCoef c;
    c.zdi = c4[0];
    c.zdi1 = c4[1];
    c.diff3 = c4[2];
    c.diff4 = c4[3];
    coef[e] = c;
  }
}

cudaError_t launch_spline_coef(const double *x_vals, const double *q_kx, const double *sq_kx,
                               int n_k, void *coef, cudaStream_t stream) {
  const size_t n = (size_t)n_k * (RCTD_N_X - 1);
  int blocks = (int)((n + 255) / 256);
  if (blocks > 65535) blocks = 65535;
  if (blocks < 1) blocks = 1;
  rcu_spline_coef<<<blocks, 256, 0, stream>>>(x_vals, q_kx, sq_kx, n_k,
                                              reinterpret_cast<SplineCoef *>(coef));
  return cudaGetLastError();
}

__global__ void rcu_transpose_codes(const uint16_t *codes, int n_pix, int n_genes, uint16_t *out) {
  const size_t n = (size_t)n_pix * n_genes;
  for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < n;
       e += (size_t)gridDim.x * blockDim.x) {
    const size_t pix = e / n_genes, g = e - pix * n_genes;
    out[g * n_pix + pix] = codes[e];
  }
}

cudaError_t launch_transpose_codes(const uint16_t *codes, int n_pix, int n_genes, uint16_t *out,
                                   cudaStream_t stream) {
  const size_t n = (size_t)n_pix * n_genes;
  int blocks = (int)((n + 255) / 256);
  if (blocks > 65535) blocks = 65535;
  if (blocks < 1) blocks = 1;
  rcu_transpose_codes<<<blocks, 256, 0, stream>>>(codes, n_pix, n_genes, out);
  return cudaGetLastError();
}

}  // namespace rctd_cuda
