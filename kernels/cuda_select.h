/* Backend selection for --device (all builds; the CUDA part only where nvcc built it). */
#ifndef RCTD_CUDA_SELECT_H
#define RCTD_CUDA_SELECT_H
#include <stddef.h>

#include "rctd_kernels.h"

/* The backend a --device value asks for:
 *   "auto" (or NULL / ""): the first CUDA device when this build has the CUDA backend and a
 *          usable device, else the CPU backend;
 *   "cpu": the CPU backend with n_threads threads;
 *   "cuda" (= "cuda:0"), "cuda:N", "cuda:0,1,...": those devices (batches split over them).
 * note (may be NULL) receives one line saying what was chosen and, for auto, why (e.g.
 * "device cuda:0 (NVIDIA H100 80GB HBM3)" or "no CUDA device found; using the CPU").  An
 * explicit cuda request that cannot be met, or a value that is none of these, returns NULL with
 * one line in err. */
rctd_backend *rctd_backend_open(const char *device, int n_threads, char *note, size_t note_len,
                                char *err, size_t err_len);

/* rctd_backend_open with a --precision value: "float64" (or NULL / "") or "float32", which the
 * CUDA backend honours (rctd_cuda.h: k_sub >= 3 steps solved in float).  With "cpu" float32 is
 * an error; "auto" that falls back to the CPU runs float64 and its note says so. */
rctd_backend *rctd_backend_open_precision(const char *device, const char *precision, int n_threads,
                                          char *note, size_t note_len, char *err, size_t err_len);

#endif
