/* --device and --precision: backend selection (cuda_select.h). */
#include "cuda_select.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef RCTD_HAVE_CUDA
#include "cuda/rctd_cuda.h"
#endif

static rctd_backend *cs_cpu(int n_threads, int float32, char *note, size_t note_len,
                            const char *why) {
  rctd_backend *be = rctd_backend_cpu(n_threads);
  if (be && note && note_len)
    snprintf(note, note_len, "%s%sdevice cpu (%d threads)%s", why ? why : "", why ? "; " : "",
             be->n_threads, float32 ? ", float64 (float32 is for CUDA devices only)" : "");
  return be;
}

/* "cuda", "cuda:N" or "cuda:N,M,...": device ids into ids (at most max); -1 when malformed. */
static int cs_parse_cuda(const char *spec, int *ids, int max) {
  if (strncmp(spec, "cuda", 4) != 0) return -1;
  const char *p = spec + 4;
  if (*p == 0) {
    ids[0] = 0;
    return 1;
  }
  if (*p != ':') return -1;
  int n = 0;
  for (p++;;) {
    char *end;
    long v = strtol(p, &end, 10);
    if (end == p || v < 0 || v > 1023 || n == max) return -1;
    ids[n++] = (int)v;
    if (*end == 0) return n;
    if (*end != ',') return -1;
    p = end + 1;
  }
}

#ifdef RCTD_HAVE_CUDA
static rctd_backend *cs_cuda(const int *ids, int n, int float32, char *why, size_t why_len) {
  rctd_cuda_opts opts;
  rctd_cuda_opts_default(&opts);
  opts.precision = float32 ? RCTD_CUDA_FLOAT32 : RCTD_CUDA_FLOAT64;
  return rctd_backend_cuda_ex(ids, n, &opts, why, why_len);
}

static void cs_cuda_note(const rctd_backend *be, int device0, int n, int float32, char *note,
                         size_t note_len) {
  if (!note || !note_len) return;
  char name[256] = "";
  rctd_cuda_device_name(device0, name, sizeof name);
  snprintf(note, note_len, "device %s (%s%s%s)", be->name, name, n > 1 ? ", ..." : "",
           float32 ? ", float32" : "");
}
#endif

rctd_backend *rctd_backend_open_precision(const char *device, const char *precision, int n_threads,
                                          char *note, size_t note_len, char *err, size_t err_len) {
  if (note && note_len) note[0] = 0;
  int float32 = 0;
  if (precision && *precision && strcmp(precision, "float64") != 0) {
    if (strcmp(precision, "float32") != 0) {
      if (err && err_len)
        snprintf(err, err_len, "--precision %s: expected float64 or float32", precision);
      return NULL;
    }
    float32 = 1;
  }
  if (!device || !*device || strcmp(device, "auto") == 0) {
#ifdef RCTD_HAVE_CUDA
    if (rctd_cuda_device_count() < 1)
      return cs_cpu(n_threads, float32, note, note_len, "no CUDA device found");
    char why[320];
    rctd_backend *be = cs_cuda(NULL, 0, float32, why, sizeof why);
    if (!be) {
      char msg[400];
      snprintf(msg, sizeof msg, "CUDA not usable (%s)", why);
      return cs_cpu(n_threads, float32, note, note_len, msg);
    }
    cs_cuda_note(be, 0, 1, float32, note, note_len);
    return be;
#else
    return cs_cpu(n_threads, float32, note, note_len, "this build has no CUDA backend");
#endif
  }
  if (strcmp(device, "cpu") == 0) {
    if (float32) {
      if (err && err_len)
        snprintf(err, err_len,
                 "--precision float32 is for CUDA devices only; use --device cuda or auto, or "
                 "--precision float64");
      return NULL;
    }
    return cs_cpu(n_threads, 0, note, note_len, NULL);
  }
  int ids[64];
  int n = cs_parse_cuda(device, ids, 64);
  if (n < 0) {
    if (err && err_len)
      snprintf(err, err_len, "--device %s: expected auto, cpu, cuda, cuda:N or cuda:N,M,...",
               device);
    return NULL;
  }
#ifdef RCTD_HAVE_CUDA
  char why[320];
  rctd_backend *be = cs_cuda(ids, n, float32, why, sizeof why);
  if (!be) {
    if (err && err_len) snprintf(err, err_len, "--device %s: %s; use --device cpu", device, why);
    return NULL;
  }
  cs_cuda_note(be, ids[0], n, float32, note, note_len);
  return be;
#else
  (void)ids;
  if (err && err_len)
    snprintf(err, err_len,
             "--device %s: this build has no CUDA backend (nvcc was not found when it was "
             "built); use --device cpu",
             device);
  return NULL;
#endif
}

rctd_backend *rctd_backend_open(const char *device, int n_threads, char *note, size_t note_len,
                                char *err, size_t err_len) {
  return rctd_backend_open_precision(device, NULL, n_threads, note, note_len, err, err_len);
}
