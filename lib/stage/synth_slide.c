/* Synthetic slides of real-world shape (see synth_slide.h). */
#include "synth_slide.h"

#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

void rctd_slide_opts_default(rctd_slide_opts *o) {
  memset(o, 0, sizeof *o);
  o->seed = 20261205;
  o->n_types = 30;
  o->markers_per_type = 125;
  o->base_sdlog = 1.5;
  o->type_sdlog = 0.3;
  o->ref_genes = 20000;
  o->cells_per_type = 1500;
  o->ref_numi_median = 3000;
  o->ref_numi_sdlog = 0.4;
  o->spatial_genes = 19000;
  o->shared_fraction = 0.9;
  o->platform_sdlog = 0.3;
  o->n_pixels = 10000;
  o->pixel_numi_median = 350;
  o->pixel_numi_sdlog = 0.6;
  o->doublet_fraction = 0.5;
  o->noise_sdlog = 0.5;
}

int rctd_slide_opts_recipe(rctd_slide_opts *o, const char *name) {
  int64_t n_pixels = o->n_pixels;
  rctd_slide_opts_default(o);
  o->n_pixels = n_pixels;
  if (strcmp(name, "realistic") == 0) return 0;
  if (strcmp(name, "k50") == 0) {
    o->n_types = 50;
    return 0;
  }
  if (strcmp(name, "xenium") == 0) {
    o->n_types = 20;
    o->markers_per_type = 20;
    o->spatial_genes = 400;
    o->shared_fraction = 1.0;
    o->pixel_numi_median = 200;
    return 0;
  }
  return -1;
}

/* ------------------------------------------------------------------ random numbers */

/* xoshiro256** seeded by splitmix64: fast, and the same stream on every machine. */
typedef struct {
  uint64_t s[4];
  int have_gauss;
  double gauss;
} slide_rng;

static void slide_rng_seed(slide_rng *r, uint64_t seed) {
  memset(r, 0, sizeof *r);
  for (int i = 0; i < 4; i++) {
    uint64_t z = (seed += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    r->s[i] = z ^ (z >> 31);
  }
}

static uint64_t slide_next(slide_rng *r) {
  uint64_t *s = r->s, result = ((s[1] * 5) << 7 | (s[1] * 5) >> 57) * 9, t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = s[3] << 45 | s[3] >> 19;
  return result;
}

static double slide_uniform(slide_rng *r) { /* [0, 1) */
  return (double)(slide_next(r) >> 11) * 0x1.0p-53;
}

static int slide_below(slide_rng *r, int n) {
  return (int)(slide_uniform(r) * n);
}

static double slide_gauss(slide_rng *r) { /* Marsaglia's polar method */
  if (r->have_gauss) {
    r->have_gauss = 0;
    return r->gauss;
  }
  double u, v, s;
  do {
    u = 2 * slide_uniform(r) - 1;
    v = 2 * slide_uniform(r) - 1;
    s = u * u + v * v;
  } while (s >= 1 || s == 0);
  double f = sqrt(-2 * log(s) / s);
  r->gauss = v * f;
  r->have_gauss = 1;
  return u * f;
}

/* Poisson: inversion below 30, Hormann's PTRS above. */
static int64_t slide_poisson(slide_rng *r, double lambda) {
  if (lambda <= 0) return 0;
  if (lambda < 30) {
    double p = exp(-lambda), s = p, u = slide_uniform(r);
    int64_t x = 0;
    while (u > s && x < 1000) {
      x++;
      p *= lambda / (double)x;
      s += p;
    }
    return x;
  }
  double slam = sqrt(lambda), loglam = log(lambda), b = 0.931 + 2.53 * slam;
  double a = -0.059 + 0.02483 * b, invalpha = 1.1239 + 1.1328 / (b - 3.4);
  double vr = 0.9277 - 3.6224 / (b - 2);
  for (;;) {
    double u = slide_uniform(r) - 0.5, v = slide_uniform(r), us = 0.5 - fabs(u);
    double k = floor((2 * a / us + b) * u + lambda + 0.43);
    if (us >= 0.07 && v <= vr) return (int64_t)k;
    if (k < 0 || (us < 0.013 && v > us)) continue;
    if (log(v) + log(invalpha) - log(a / (us * us) + b) <= -lambda + k * loglam - lgamma(k + 1))
      return (int64_t)k;
  }
}

/* Walker's alias table over N weights (Vose's construction). */
typedef struct {
  int n;
  double *prob;
  int *alias;
} slide_alias;

static int slide_alias_build(slide_alias *t, const double *w, int n) {
  t->n = n;
  t->prob = malloc((size_t)(n ? n : 1) * sizeof *t->prob);
  t->alias = malloc((size_t)(n ? n : 1) * sizeof *t->alias);
  int *stack = malloc((size_t)(n ? n : 1) * sizeof *stack);
  if (!t->prob || !t->alias || !stack) {
    free(stack);
    return -1;
  }
  double total = 0;
  for (int i = 0; i < n; i++) total += w[i];
  int n_small = 0, n_large = n;
  for (int i = 0; i < n; i++) {
    t->prob[i] = total > 0 ? w[i] * n / total : 1;
    t->alias[i] = i;
    if (t->prob[i] < 1)
      stack[n_small++] = i;
    else
      stack[--n_large] = i;
  }
  /* small indices at the bottom, large at the top of STACK */
  while (n_small > 0 && n_large < n) {
    int s = stack[--n_small], l = stack[n_large];
    t->alias[s] = l;
    t->prob[l] -= 1 - t->prob[s];
    if (t->prob[l] < 1) {
      n_large++;
      stack[n_small++] = l;
    }
  }
  for (int i = 0; i < n; i++)
    if (t->prob[i] > 1) t->prob[i] = 1;
  free(stack);
  return 0;
}

static int slide_alias_draw(const slide_alias *t, slide_rng *r) {
  double u = slide_uniform(r) * t->n;
  int i = (int)u;
  if (i >= t->n) i = t->n - 1;
  return u - i < t->prob[i] ? i : t->alias[i];
}

static void slide_alias_free(slide_alias *t) {
  free(t->prob);
  free(t->alias);
}

/* ------------------------------------------------------------------ the model */

typedef struct {
  int K, G_ref, G_sp, n_shared;
  double *ref_tg;  /* K x G_ref reference profiles (sum 1 per type) */
  double *sp_tg;   /* K x G_sp spatial profiles (platform factor applied, sum 1 per type) */
  int *sp_ref;     /* G_sp: reference gene of a spatial gene, or -1 */
  /* per type: genes drawn with noise (profile >= tau) and an alias table of the rest */
  int **heavy_t, *n_heavy_t;
  int **tail_genes_t;
  slide_alias *tail_t;
  double *tail_mass_t;
} slide_model;

static void slide_model_free(slide_model *m) {
  for (int t = 0; m->heavy_t && t < m->K; t++) {
    free(m->heavy_t[t]);
    free(m->tail_genes_t[t]);
    slide_alias_free(&m->tail_t[t]);
  }
  free(m->heavy_t);
  free(m->n_heavy_t);
  free(m->tail_genes_t);
  free(m->tail_t);
  free(m->tail_mass_t);
  free(m->ref_tg);
  free(m->sp_tg);
  free(m->sp_ref);
  memset(m, 0, sizeof *m);
}

static void slide_normalise(double *x, int n) {
  double s = 0;
  for (int i = 0; i < n; i++) s += x[i];
  for (int i = 0; i < n; i++) x[i] /= s;
}

static void slide_shuffle(int *a, int n, slide_rng *r) {
  for (int i = n - 1; i > 0; i--) {
    int j = slide_below(r, i + 1), tmp = a[i];
    a[i] = a[j];
    a[j] = tmp;
  }
}

/* Heavy genes and the tail's alias table of type T. */
static int slide_model_split(slide_model *m, int t, double tau) {
  const double *s = m->sp_tg + (size_t)t * m->G_sp;
  int n_heavy = 0;
  for (int g = 0; g < m->G_sp; g++) n_heavy += s[g] >= tau;
  int n_tail = m->G_sp - n_heavy;
  m->heavy_t[t] = malloc((size_t)(n_heavy ? n_heavy : 1) * sizeof(int));
  m->tail_genes_t[t] = malloc((size_t)(n_tail ? n_tail : 1) * sizeof(int));
  double *w = malloc((size_t)(n_tail ? n_tail : 1) * sizeof *w);
  if (!m->heavy_t[t] || !m->tail_genes_t[t] || !w) {
    free(w);
    return -1;
  }
  int h = 0, l = 0;
  double mass = 0;
  for (int g = 0; g < m->G_sp; g++) {
    if (s[g] >= tau) {
      m->heavy_t[t][h++] = g;
      continue;
    }
    m->tail_genes_t[t][l] = g;
    w[l++] = s[g];
    mass += s[g];
  }
  m->n_heavy_t[t] = n_heavy;
  m->tail_mass_t[t] = mass;
  int rc = slide_alias_build(&m->tail_t[t], w, n_tail);
  free(w);
  return rc;
}

static int slide_model_build(const rctd_slide_opts *o, slide_model *m) {
  memset(m, 0, sizeof *m);
  int K = m->K = o->n_types, G = m->G_ref = o->ref_genes, S = m->G_sp = o->spatial_genes;
  m->n_shared = (int)lround(o->shared_fraction * S);
  if (m->n_shared > G) m->n_shared = G;
  int G_only = S - m->n_shared;
  slide_rng r;
  slide_rng_seed(&r, o->seed);
  double *base = malloc((size_t)(G + G_only) * sizeof *base);
  char *marker = calloc((size_t)G, 1);
  int *perm = malloc((size_t)G * sizeof *perm);
  double *only_tg = malloc((size_t)K * (G_only ? G_only : 1) * sizeof *only_tg);
  m->ref_tg = malloc((size_t)K * G * sizeof *m->ref_tg);
  m->sp_tg = malloc((size_t)K * S * sizeof *m->sp_tg);
  m->sp_ref = malloc((size_t)S * sizeof *m->sp_ref);
  m->heavy_t = calloc((size_t)K, sizeof *m->heavy_t);
  m->n_heavy_t = calloc((size_t)K, sizeof *m->n_heavy_t);
  m->tail_genes_t = calloc((size_t)K, sizeof *m->tail_genes_t);
  m->tail_t = calloc((size_t)K, sizeof *m->tail_t);
  m->tail_mass_t = calloc((size_t)K, sizeof *m->tail_mass_t);
  int rc = base && marker && perm && only_tg && m->ref_tg && m->sp_tg && m->sp_ref &&
                   m->heavy_t && m->n_heavy_t && m->tail_genes_t && m->tail_t && m->tail_mass_t
               ? 0
               : -1;
  if (rc == 0) {
    for (int g = 0; g < G + G_only; g++) base[g] = exp(o->base_sdlog * slide_gauss(&r));
    for (int t = 0; t < K; t++) {
      double *p = m->ref_tg + (size_t)t * G;
      for (int g = 0; g < G; g++) p[g] = base[g] * exp(o->type_sdlog * slide_gauss(&r));
      for (int g = 0; g < G_only; g++)
        only_tg[(size_t)t * G_only + g] = base[G + g] * exp(o->type_sdlog * slide_gauss(&r));
      for (int g = 0; g < G; g++) perm[g] = g;
      int n_mark = o->markers_per_type < G ? o->markers_per_type : G;
      for (int i = 0; i < n_mark; i++) { /* partial Fisher-Yates: N_MARK distinct genes */
        int j = i + slide_below(&r, G - i), g = perm[j];
        perm[j] = perm[i];
        perm[i] = g;
        p[g] *= exp(log(4.0) + (log(30.0) - log(4.0)) * slide_uniform(&r));
        marker[g] = 1;
      }
    }
    /* spatial genes: markers first, then the others, each group shuffled */
    int n = 0;
    for (int g = 0; g < G; g++)
      if (marker[g]) perm[n++] = g;
    int n_markers = n;
    for (int g = 0; g < G; g++)
      if (!marker[g]) perm[n++] = g;
    slide_shuffle(perm, n_markers, &r);
    slide_shuffle(perm + n_markers, G - n_markers, &r);
    for (int j = 0; j < S; j++) m->sp_ref[j] = j < m->n_shared ? perm[j] : -1;
    double *platform = base; /* base is no longer needed */
    for (int j = 0; j < S; j++) platform[j] = exp(o->platform_sdlog * slide_gauss(&r));
    for (int t = 0; t < K; t++) {
      double *sp = m->sp_tg + (size_t)t * S;
      for (int j = 0; j < S; j++)
        sp[j] = platform[j] * (j < m->n_shared ? m->ref_tg[(size_t)t * G + m->sp_ref[j]]
                                               : only_tg[(size_t)t * G_only + j - m->n_shared]);
      slide_normalise(sp, S);
      slide_normalise(m->ref_tg + (size_t)t * G, G);
    }
    double tau = 0.05 / o->pixel_numi_median; /* expected count 0.05 at the median nUMI */
    for (int t = 0; t < K && rc == 0; t++) rc = slide_model_split(m, t, tau);
  }
  free(base);
  free(marker);
  free(perm);
  free(only_tg);
  if (rc) slide_model_free(m);
  return rc;
}

/* ------------------------------------------------------------------ HDF5 writing */

static int slide_attr_string(hid_t obj, const char *name, const char *value) {
  hid_t type = H5Tcopy(H5T_C_S1);
  H5Tset_size(type, H5T_VARIABLE);
  H5Tset_cset(type, H5T_CSET_UTF8);
  hid_t space = H5Screate(H5S_SCALAR);
  hid_t attr = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
  int rc = attr >= 0 && H5Awrite(attr, type, &value) >= 0 ? 0 : -1;
  if (attr >= 0) H5Aclose(attr);
  H5Sclose(space);
  H5Tclose(type);
  return rc;
}

static int slide_attr_i64(hid_t obj, const char *name, const int64_t *v, hsize_t n) {
  hid_t space = H5Screate_simple(1, &n, NULL);
  hid_t attr = H5Acreate2(obj, name, H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT);
  int rc = attr >= 0 && H5Awrite(attr, H5T_NATIVE_INT64, v) >= 0 ? 0 : -1;
  if (attr >= 0) H5Aclose(attr);
  H5Sclose(space);
  return rc;
}

/* A 1-D dataset that grows by appends (chunked, deflate 1). */
typedef struct {
  hid_t dset, mem_type;
  hsize_t size;
} slide_col;

static int slide_col_open(slide_col *c, hid_t loc, const char *name, hid_t file_type,
                          hid_t mem_type) {
  hsize_t zero = 0, unlimited = H5S_UNLIMITED, chunk = 1 << 16;
  hid_t space = H5Screate_simple(1, &zero, &unlimited);
  hid_t plist = H5Pcreate(H5P_DATASET_CREATE);
  H5Pset_chunk(plist, 1, &chunk);
  H5Pset_deflate(plist, 1);
  c->dset = H5Dcreate2(loc, name, file_type, space, H5P_DEFAULT, plist, H5P_DEFAULT);
  c->mem_type = mem_type;
  c->size = 0;
  H5Pclose(plist);
  H5Sclose(space);
  return c->dset >= 0 ? 0 : -1;
}

static int slide_col_append(slide_col *c, const void *data, hsize_t n) {
  if (n == 0) return 0;
  hsize_t new_size = c->size + n;
  if (H5Dset_extent(c->dset, &new_size) < 0) return -1;
  hid_t file_space = H5Dget_space(c->dset), mem_space = H5Screate_simple(1, &n, NULL);
  H5Sselect_hyperslab(file_space, H5S_SELECT_SET, &c->size, NULL, &n, NULL);
  herr_t rc = H5Dwrite(c->dset, c->mem_type, mem_space, file_space, H5P_DEFAULT, data);
  H5Sclose(mem_space);
  H5Sclose(file_space);
  c->size = new_size;
  return rc < 0 ? -1 : 0;
}

static void slide_col_close(slide_col *c) {
  if (c->dset >= 0) H5Dclose(c->dset);
  c->dset = -1;
}

#define SLIDE_NAME_LEN 24
#define SLIDE_BLOCK 4096

/* Fixed-length strings FMT % (i + 1) for i < N, written in blocks. */
static int slide_names(hid_t loc, const char *name, const char *fmt, int64_t n) {
  hid_t type = H5Tcopy(H5T_C_S1);
  H5Tset_size(type, SLIDE_NAME_LEN);
  slide_col c;
  int rc = slide_col_open(&c, loc, name, type, type);
  char(*buf)[SLIDE_NAME_LEN] = malloc(SLIDE_BLOCK * SLIDE_NAME_LEN);
  if (!buf) rc = -1;
  for (int64_t i = 0; rc == 0 && i < n; i += SLIDE_BLOCK) {
    int64_t m = n - i < SLIDE_BLOCK ? n - i : SLIDE_BLOCK;
    memset(buf, 0, SLIDE_BLOCK * SLIDE_NAME_LEN);
    for (int64_t k = 0; k < m; k++) snprintf(buf[k], SLIDE_NAME_LEN, fmt, (long long)(i + k + 1));
    rc = slide_col_append(&c, buf, (hsize_t)m);
  }
  free(buf);
  slide_col_close(&c);
  H5Tclose(type);
  return rc;
}

/* The spatial gene names: reference genes keep their names, the others their own. */
static int slide_spatial_names(hid_t loc, const char *name, const slide_model *m) {
  hid_t type = H5Tcopy(H5T_C_S1);
  H5Tset_size(type, SLIDE_NAME_LEN);
  slide_col c;
  int rc = slide_col_open(&c, loc, name, type, type);
  char(*buf)[SLIDE_NAME_LEN] = calloc((size_t)m->G_sp, SLIDE_NAME_LEN);
  if (!buf) rc = -1;
  for (int j = 0; rc == 0 && j < m->G_sp; j++)
    if (m->sp_ref[j] >= 0)
      snprintf(buf[j], SLIDE_NAME_LEN, "Gene%05d", m->sp_ref[j] + 1);
    else
      snprintf(buf[j], SLIDE_NAME_LEN, "SpGene%05d", j - m->n_shared + 1);
  if (rc == 0) rc = slide_col_append(&c, buf, (hsize_t)m->G_sp);
  free(buf);
  slide_col_close(&c);
  H5Tclose(type);
  return rc;
}

static int slide_same_string(hid_t loc, const char *name, const char *value, int64_t n) {
  hid_t type = H5Tcopy(H5T_C_S1);
  H5Tset_size(type, SLIDE_NAME_LEN);
  slide_col c;
  int rc = slide_col_open(&c, loc, name, type, type);
  char(*buf)[SLIDE_NAME_LEN] = calloc((size_t)(n ? n : 1), SLIDE_NAME_LEN);
  if (!buf) rc = -1;
  for (int64_t i = 0; rc == 0 && i < n; i++) snprintf(buf[i], SLIDE_NAME_LEN, "%s", value);
  if (rc == 0) rc = slide_col_append(&c, buf, (hsize_t)n);
  free(buf);
  slide_col_close(&c);
  H5Tclose(type);
  return rc;
}

/* Sparse rows under construction: a dense count per gene, the genes touched. */
typedef struct {
  int64_t *count_g;
  int *touched;
  int n_touched;
} slide_row;

static int slide_int_cmp(const void *a, const void *b) {
  int x = *(const int *)a, y = *(const int *)b;
  return (x > y) - (x < y);
}

static void slide_row_add(slide_row *row, int g, int64_t n) {
  if (n == 0) return;
  if (row->count_g[g] == 0) row->touched[row->n_touched++] = g;
  row->count_g[g] += n;
}

/* Block buffers: indices and data of the block's rows, the row ends. */
typedef struct {
  int64_t *indices;
  double *data;
  int64_t n, cap;
  int64_t *indptr;
  int n_rows;
} slide_block;

static int slide_block_take(slide_block *b, slide_row *row, int64_t nnz_before) {
  if (b->n + row->n_touched > b->cap) {
    int64_t cap = 2 * (b->n + row->n_touched);
    int64_t *ind = realloc(b->indices, (size_t)cap * sizeof *ind);
    if (ind) b->indices = ind;
    double *dat = realloc(b->data, (size_t)cap * sizeof *dat);
    if (dat) b->data = dat;
    if (!ind || !dat) return -1;
    b->cap = cap;
  }
  qsort(row->touched, (size_t)row->n_touched, sizeof(int), slide_int_cmp);
  for (int i = 0; i < row->n_touched; i++) {
    int g = row->touched[i];
    b->indices[b->n] = g;
    b->data[b->n++] = (double)row->count_g[g];
    row->count_g[g] = 0;
  }
  row->n_touched = 0;
  b->indptr[b->n_rows++] = nnz_before + b->n;
  return 0;
}

/* ------------------------------------------------------------------ the reference h5ad */

static int slide_write_reference(const rctd_slide_opts *o, const slide_model *m, const char *path,
                                 char *err, size_t err_len) {
  int K = m->K, G = m->G_ref;
  int64_t n_cells = (int64_t)K * o->cells_per_type;
  hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (file < 0) return rctd_fail(err, err_len, "%s: cannot create", path);
  slide_alias *alias = calloc((size_t)K, sizeof *alias);
  slide_row row = {calloc((size_t)G, sizeof(int64_t)), malloc((size_t)G * sizeof(int)), 0};
  slide_block b = {0};
  b.indptr = malloc(SLIDE_BLOCK * sizeof *b.indptr);
  int16_t *codes = malloc(SLIDE_BLOCK * sizeof *codes);
  int rc = alias && row.count_g && row.touched && b.indptr && codes ? 0 : -1;
  for (int t = 0; t < K && rc == 0; t++)
    rc = slide_alias_build(&alias[t], m->ref_tg + (size_t)t * G, G);
  rc |= slide_attr_string(file, "encoding-type", "anndata");
  rc |= slide_attr_string(file, "encoding-version", "0.1.0");
  hid_t X = H5Gcreate2(file, "X", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  int64_t shape[2] = {n_cells, G};
  rc |= slide_attr_string(X, "encoding-type", "csr_matrix");
  rc |= slide_attr_string(X, "encoding-version", "0.1.0");
  rc |= slide_attr_i64(X, "shape", shape, 2);
  hid_t obs = H5Gcreate2(file, "obs", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  rc |= slide_attr_string(obs, "_index", "_index");
  rc |= slide_attr_string(obs, "encoding-type", "dataframe");
  rc |= slide_attr_string(obs, "encoding-version", "0.2.0");
  hid_t ct = H5Gcreate2(obs, "cell_type", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  rc |= slide_attr_string(ct, "encoding-type", "categorical");
  rc |= slide_attr_string(ct, "encoding-version", "0.2.0");
  rc |= slide_names(ct, "categories", "Type%02lld", K);
  slide_col data, indices, indptr, code_col;
  rc |= slide_col_open(&data, X, "data", H5T_IEEE_F32LE, H5T_NATIVE_DOUBLE);
  rc |= slide_col_open(&indices, X, "indices", H5T_STD_I32LE, H5T_NATIVE_INT64);
  rc |= slide_col_open(&indptr, X, "indptr", H5T_STD_I64LE, H5T_NATIVE_INT64);
  rc |= slide_col_open(&code_col, ct, "codes", H5T_STD_I16LE, H5T_NATIVE_INT16);
  int64_t zero = 0, nnz = 0;
  rc |= slide_col_append(&indptr, &zero, 1);
  slide_rng r;
  slide_rng_seed(&r, o->seed ^ 0x5eedce11ULL);
  for (int64_t c0 = 0; rc == 0 && c0 < n_cells; c0 += SLIDE_BLOCK) {
    int64_t n = n_cells - c0 < SLIDE_BLOCK ? n_cells - c0 : SLIDE_BLOCK;
    b.n = 0;
    b.n_rows = 0;
    for (int64_t i = 0; rc == 0 && i < n; i++) {
      int t = (int)((c0 + i) % K); /* types interleaved */
      codes[i] = (int16_t)t;
      double numi = nearbyint(exp(log(o->ref_numi_median) + o->ref_numi_sdlog * slide_gauss(&r)));
      if (numi < 100) numi = 100;
      for (int64_t u = 0; u < (int64_t)numi; u++) slide_row_add(&row, slide_alias_draw(&alias[t], &r), 1);
      rc = slide_block_take(&b, &row, nnz);
    }
    rc |= slide_col_append(&data, b.data, (hsize_t)b.n);
    rc |= slide_col_append(&indices, b.indices, (hsize_t)b.n);
    rc |= slide_col_append(&indptr, b.indptr, (hsize_t)b.n_rows);
    rc |= slide_col_append(&code_col, codes, (hsize_t)n);
    nnz += b.n;
  }
  slide_col_close(&data);
  slide_col_close(&indices);
  slide_col_close(&indptr);
  slide_col_close(&code_col);
  H5Gclose(ct);
  rc |= slide_names(obs, "_index", "cell%06lld", n_cells);
  H5Gclose(obs);
  H5Gclose(X);
  hid_t var = H5Gcreate2(file, "var", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  rc |= slide_attr_string(var, "_index", "_index");
  rc |= slide_attr_string(var, "encoding-type", "dataframe");
  rc |= slide_attr_string(var, "encoding-version", "0.2.0");
  rc |= slide_names(var, "_index", "Gene%05lld", G);
  H5Gclose(var);
  if (H5Fclose(file) < 0) rc = -1;
  for (int t = 0; alias && t < K; t++) slide_alias_free(&alias[t]);
  free(alias);
  free(row.count_g);
  free(row.touched);
  free(b.indices);
  free(b.data);
  free(b.indptr);
  free(codes);
  return rc ? rctd_fail(err, err_len, "%s: cannot write the reference (disk full?)", path) : 0;
}

/* ------------------------------------------------------------------ the spatial 10x HDF5 */

/* One pixel's counts into ROW: per type of the pixel, Poisson with noise on its heavy genes and
 * a multinomial over its tail. */
static void slide_pixel(const rctd_slide_opts *o, const slide_model *m, slide_rng *r,
                        slide_row *row) {
  int K = m->K, t[2];
  double w[2] = {1, 0};
  t[0] = t[1] = slide_below(r, K);
  if (slide_uniform(r) < o->doublet_fraction && K > 1) {
    t[1] = slide_below(r, K - 1);
    if (t[1] >= t[0]) t[1]++;
    w[0] = 0.25 + 0.5 * slide_uniform(r);
    w[1] = 1 - w[0];
  }
  double numi = nearbyint(exp(log(o->pixel_numi_median) + o->pixel_numi_sdlog * slide_gauss(r)));
  if (numi < 1) numi = 1;
  for (int k = 0; k < 2; k++) {
    if (w[k] == 0) continue;
    const double *s = m->sp_tg + (size_t)t[k] * m->G_sp;
    double scale = numi * w[k];
    for (int h = 0; h < m->n_heavy_t[t[k]]; h++) {
      int g = m->heavy_t[t[k]][h];
      slide_row_add(row, g, slide_poisson(r, scale * s[g] * exp(o->noise_sdlog * slide_gauss(r))));
    }
    int64_t n_tail = slide_poisson(r, scale * m->tail_mass_t[t[k]]);
    for (int64_t u = 0; u < n_tail && m->tail_t[t[k]].n > 0; u++)
      slide_row_add(row, m->tail_genes_t[t[k]][slide_alias_draw(&m->tail_t[t[k]], r)], 1);
  }
}

static int slide_write_spatial(const rctd_slide_opts *o, const slide_model *m, const char *path,
                               char *err, size_t err_len) {
  int S = m->G_sp;
  hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (file < 0) return rctd_fail(err, err_len, "%s: cannot create", path);
  slide_row row = {calloc((size_t)S, sizeof(int64_t)), malloc((size_t)S * sizeof(int)), 0};
  slide_block b = {0};
  b.indptr = malloc(SLIDE_BLOCK * sizeof *b.indptr);
  int rc = row.count_g && row.touched && b.indptr ? 0 : -1;
  hid_t mx = H5Gcreate2(file, "matrix", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  hid_t ft = H5Gcreate2(mx, "features", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  rc |= slide_spatial_names(ft, "id", m);
  rc |= slide_spatial_names(ft, "name", m);
  rc |= slide_same_string(ft, "feature_type", "Gene Expression", S);
  rc |= slide_same_string(ft, "genome", "synthetic", S);
  H5Gclose(ft);
  slide_col data, indices, indptr;
  rc |= slide_col_open(&data, mx, "data", H5T_STD_I32LE, H5T_NATIVE_DOUBLE);
  rc |= slide_col_open(&indices, mx, "indices", H5T_STD_I64LE, H5T_NATIVE_INT64);
  rc |= slide_col_open(&indptr, mx, "indptr", H5T_STD_I64LE, H5T_NATIVE_INT64);
  int64_t zero = 0, nnz = 0;
  rc |= slide_col_append(&indptr, &zero, 1);
  slide_rng r;
  slide_rng_seed(&r, o->seed ^ 0xb1a5e5ULL);
  for (int64_t p0 = 0; rc == 0 && p0 < o->n_pixels; p0 += SLIDE_BLOCK) {
    int64_t n = o->n_pixels - p0 < SLIDE_BLOCK ? o->n_pixels - p0 : SLIDE_BLOCK;
    b.n = 0;
    b.n_rows = 0;
    for (int64_t i = 0; rc == 0 && i < n; i++) {
      slide_pixel(o, m, &r, &row);
      rc = slide_block_take(&b, &row, nnz);
    }
    rc |= slide_col_append(&data, b.data, (hsize_t)b.n);
    rc |= slide_col_append(&indices, b.indices, (hsize_t)b.n);
    rc |= slide_col_append(&indptr, b.indptr, (hsize_t)b.n_rows);
    nnz += b.n;
  }
  slide_col_close(&data);
  slide_col_close(&indices);
  slide_col_close(&indptr);
  rc |= slide_names(mx, "barcodes", "px%08lld-1", o->n_pixels);
  int32_t shape[2] = {S, (int32_t)o->n_pixels};
  hsize_t two = 2;
  hid_t space = H5Screate_simple(1, &two, NULL);
  hid_t ds = H5Dcreate2(mx, "shape", H5T_STD_I32LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (ds < 0 || H5Dwrite(ds, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, shape) < 0) rc = -1;
  if (ds >= 0) H5Dclose(ds);
  H5Sclose(space);
  H5Gclose(mx);
  if (H5Fclose(file) < 0) rc = -1;
  free(row.count_g);
  free(row.touched);
  free(b.indices);
  free(b.data);
  free(b.indptr);
  return rc ? rctd_fail(err, err_len, "%s: cannot write the spatial file (disk full?)", path) : 0;
}

int rctd_slide_write(const rctd_slide_opts *o, const char *ref_path, const char *spatial_path,
                     char *err, size_t err_len) {
  if (o->n_types < 2 || o->ref_genes < 1 || o->spatial_genes < 1 || o->cells_per_type < 1 ||
      o->n_pixels < 1 || o->n_pixels > INT32_MAX)
    return rctd_fail(err, err_len, "synthetic slide: sizes out of range");
  slide_model m;
  if (slide_model_build(o, &m) != 0) return rctd_fail(err, err_len, "synthetic slide: out of memory");
  int rc = 0;
  if (ref_path) rc = slide_write_reference(o, &m, ref_path, err, err_len);
  if (rc == 0 && spatial_path) rc = slide_write_spatial(o, &m, spatial_path, err, err_len);
  slide_model_free(&m);
  return rc;
}
