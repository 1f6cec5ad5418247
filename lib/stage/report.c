/* `rctd report`: the HTML report and PNG maps of a result h5ad (see report.h). */
#include "report.h"

#include <errno.h>
#include <hdf5.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atomic_out.h"
#include "log.h"
#include "progress.h"
#include "error.h"
#include "h5guard.h"
#include "h5_read.h"
#include "raster.h"
#include "sigma.h"
#include "stream.h"

#define RP_CHUNK 65536
#define RP_HTML_MAIN_W 392 /* HTML: main maps' width in cells (three to a row at 1280 px) */
#define RP_HTML_TYPE_W 220 /* HTML: per-type maps' width */
#define RP_GREY 190
#define RP_LEVELS 254 /* sequential scales: palette entries 2..255 */

/* ------------------------------------------------------------------ reading the result */

typedef struct {
  const char *path;
  hid_t file;
  int64_t n;                    /* rows of obs */
  int K;                        /* cell types */
  input_strings types, classes; /* type names; spot class or multi status categories */
  char mode[32], version[64];
  double sigma;
  int64_t n_input, n_filtered, n_fitted, n_reg, n_bulk;
  input_strings tool_names, tool_versions, config_keys, config_values;
  rctd_sigma_trace trace; /* uns/rctd/sigma_epochs (or --sigma-stream's record) */
  int have_trace;
  hid_t weights;       /* obsm/rctd_proportions (or rctd_weights, normalised here) */
  int normalise;       /* weights are raw: divide by the row sum */
  hid_t spatial;       /* obsm/spatial or -1 */
  hid_t dominant;      /* obs/rctd_dominant_type/codes */
  hid_t numi;          /* obs/rctd_numi or -1 */
  hid_t cls;           /* doublet: rctd_spot_class/codes; multi: rctd_n_types; else -1 */
  hid_t first, second; /* doublet: rctd_first_type/codes, rctd_second_type/codes, or -1 */
  char *err;
  size_t err_len;
} rp_result;

static int rp_fail(rp_result *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int rp_fail(rp_result *r, const char *fmt, ...) {
  int used = snprintf(r->err, r->err_len, "%s: ", r->path);
  if (used < 0 || (size_t)used >= r->err_len) return -1;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(r->err + used, r->err_len - (size_t)used, fmt, ap);
  va_end(ap);
  return -1;
}

static hid_t rp_open_dset(hid_t file, const char *name) {
  if (!input_h5_exists(file, name)) return -1;
  return H5Dopen2(file, name, H5P_DEFAULT); /* -1 for a group (errors are silenced) */
}

/* Rows and columns of a 1-D or 2-D dataset (columns 1 for 1-D); -1 when neither. */
static int rp_shape(hid_t dset, int64_t *rows, int64_t *cols) {
  hid_t space = H5Dget_space(dset);
  int nd = space < 0 ? -1 : H5Sget_simple_extent_ndims(space);
  hsize_t dims[2] = {0, 1};
  if (nd == 1 || nd == 2) H5Sget_simple_extent_dims(space, dims, NULL);
  if (space >= 0) H5Sclose(space);
  if (nd != 1 && nd != 2) return -1;
  *rows = (int64_t)dims[0];
  *cols = nd == 2 ? (int64_t)dims[1] : 1;
  return 0;
}

/* Rows [row0, row0 + n) of a 1-D or 2-D dataset, converted to MEM_TYPE. */
static int rp_read_rows(hid_t dset, int64_t row0, int64_t n, int64_t cols, hid_t mem_type,
                        void *out) {
  hid_t space = H5Dget_space(dset);
  if (space < 0) return -1;
  int nd = H5Sget_simple_extent_ndims(space);
  hsize_t start[2] = {(hsize_t)row0, 0}, count[2] = {(hsize_t)n, (hsize_t)cols};
  hid_t mem = H5Screate_simple(nd, count, NULL);
  rctd_h5_guard_tick();
  herr_t rc = H5Sselect_hyperslab(space, H5S_SELECT_SET, start, NULL, count, NULL);
  if (rc >= 0) rc = H5Dread(dset, mem_type, mem, space, H5P_DEFAULT, out);
  H5Sclose(mem);
  H5Sclose(space);
  return rc < 0 ? -1 : 0;
}

/* A scalar text dataset into BUF ("" when absent or not text). */
static void rp_scalar_string(hid_t loc, const char *name, char *buf, size_t len) {
  buf[0] = 0;
  hid_t dset = rp_open_dset(loc, name);
  if (dset < 0) return;
  hid_t type = H5Dget_type(dset);
  if (H5Tget_class(type) == H5T_STRING) {
    hid_t mem = H5Tcopy(H5T_C_S1);
    if (H5Tis_variable_str(type) > 0) {
      char *s = NULL;
      H5Tset_size(mem, H5T_VARIABLE);
      if (H5Dread(dset, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, &s) >= 0 && s) {
        snprintf(buf, len, "%s", s);
        hid_t space = H5Dget_space(dset);
        H5Dvlen_reclaim(mem, space, H5P_DEFAULT, &s);
        H5Sclose(space);
      }
    } else {
      size_t size = H5Tget_size(type);
      char *s = calloc(size + 1, 1);
      H5Tset_size(mem, size + 1);
      if (s && H5Dread(dset, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, s) >= 0)
        snprintf(buf, len, "%s", s);
      free(s);
    }
    H5Tclose(mem);
  }
  H5Tclose(type);
  H5Dclose(dset);
}

static double rp_scalar_f64(hid_t loc, const char *name, double missing) {
  hid_t dset = rp_open_dset(loc, name);
  if (dset < 0) return missing;
  double v = missing;
  if (H5Dread(dset, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, &v) < 0) v = missing;
  H5Dclose(dset);
  return v;
}

static int64_t rp_length(hid_t loc, const char *name) {
  hid_t dset = rp_open_dset(loc, name);
  int64_t rows = -1, cols;
  if (dset >= 0 && rp_shape(dset, &rows, &cols) < 0) rows = -1;
  if (dset >= 0) H5Dclose(dset);
  return rows;
}

/* The scalar strings of group NAME (a dict: uns/rctd/config, uns/rctd/tools). */
static int rp_dict(hid_t file, const char *name, input_strings *keys, input_strings *values) {
  input_strings_init(keys);
  input_strings_init(values);
  if (!input_h5_exists(file, name)) return 0;
  hid_t g = H5Gopen2(file, name, H5P_DEFAULT);
  if (g < 0) return 0;
  H5G_info_t info;
  int rc = 0;
  if (H5Gget_info(g, &info) < 0) info.nlinks = 0;
  for (hsize_t i = 0; rc == 0 && i < info.nlinks; i++) {
    char key[256], value[1024];
    if (H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, key, sizeof key, H5P_DEFAULT) < 0)
      continue;
    rp_scalar_string(g, key, value, sizeof value);
    rc = input_strings_push(keys, key, strlen(key)) |
         input_strings_push(values, value, strlen(value));
  }
  H5Gclose(g);
  return rc | input_strings_seal(keys) | input_strings_seal(values);
}

static void rp_close(rp_result *r) {
  hid_t *ids[] = {&r->weights, &r->spatial, &r->dominant, &r->numi, &r->cls, &r->first, &r->second};
  for (size_t i = 0; i < sizeof ids / sizeof *ids; i++)
    if (*ids[i] >= 0) H5Dclose(*ids[i]), *ids[i] = -1;
  if (r->file >= 0) H5Fclose(r->file), r->file = -1;
  input_strings *lists[] = {&r->types,         &r->classes,     &r->tool_names,
                            &r->tool_versions, &r->config_keys, &r->config_values};
  for (size_t i = 0; i < sizeof lists / sizeof *lists; i++) input_strings_free(lists[i]);
  rctd_sigma_trace_free(&r->trace);
}

static int rp_read_uns_trace(rp_result *r);

static int rp_open(rp_result *r) {
  r->weights = r->spatial = r->dominant = r->numi = r->cls = r->first = r->second = -1;
  input_h5_silence();
  char why[1024];
  r->file = input_h5_open_file(r->path, why, sizeof why);
  if (r->file < 0) return snprintf(r->err, r->err_len, "%s", why), -1;
  hid_t f = r->file;
  if (!input_h5_exists(f, "obsm/rctd_weights"))
    return rp_fail(r,
                   "no obsm/rctd_weights: not an rctd result; give the h5ad that rctd run or "
                   "rctd-merge wrote");
  if (!input_h5_exists(f, "uns/rctd/cell_types") ||
      input_h5_read_strings(r->path, f, "uns/rctd/cell_types", &r->types, why, sizeof why) < 0 ||
      input_strings_seal(&r->types) < 0)
    return rp_fail(r,
                   "no readable uns/rctd/cell_types: give the h5ad that rctd run or rctd-merge "
                   "wrote");
  r->K = (int)r->types.n;
  int have_props = input_h5_exists(f, "obsm/rctd_proportions");
  r->weights = rp_open_dset(f, have_props ? "obsm/rctd_proportions" : "obsm/rctd_weights");
  r->normalise = !have_props;
  r->dominant = rp_open_dset(f, "obs/rctd_dominant_type/codes");
  int64_t rows, cols;
  if (r->weights < 0 || rp_shape(r->weights, &rows, &cols) < 0 || cols != r->K || r->K < 1)
    return rp_fail(r,
                   "obsm/rctd_weights is not an n x %d array (one column per type of "
                   "uns/rctd/cell_types): the result is damaged",
                   r->K);
  r->n = rows;
  int64_t n_dom;
  if (r->dominant < 0 || rp_shape(r->dominant, &n_dom, &cols) < 0 || n_dom != r->n)
    return rp_fail(
        r, "obs/rctd_dominant_type is missing or has not %" PRId64 " rows: the result is damaged",
        r->n);
  if (input_h5_exists(f, "obsm/spatial")) {
    r->spatial = rp_open_dset(f, "obsm/spatial");
    int64_t sr, sc;
    if (r->spatial < 0 || rp_shape(r->spatial, &sr, &sc) < 0 || sc < 2)
      return rp_fail(r, "obsm/spatial is not an n x 2 array of coordinates: fix or remove it");
    if (sr != r->n)
      return rp_fail(r,
                     "obsm/spatial has %" PRId64 " rows but the result has %" PRId64
                     " pixels: give coordinates for every pixel",
                     sr, r->n);
  }
  r->numi = rp_open_dset(f, "obs/rctd_numi");
  rp_scalar_string(f, "uns/rctd/mode", r->mode, sizeof r->mode);
  rp_scalar_string(f, "uns/rctd/version", r->version, sizeof r->version);
  r->sigma = rp_scalar_f64(f, "uns/rctd/sigma", NAN);
  r->n_input = (int64_t)rp_scalar_f64(f, "uns/rctd/n_pixels_input", -1);
  r->n_filtered = (int64_t)rp_scalar_f64(f, "uns/rctd/n_pixels_filtered", -1);
  r->n_fitted = (int64_t)rp_scalar_f64(f, "uns/rctd/n_pixels_fitted", -1);
  r->n_reg = rp_length(f, "uns/rctd/genes_reg");
  r->n_bulk = rp_length(f, "uns/rctd/genes_bulk");
  const char *class_cats = NULL;
  if (strcmp(r->mode, "doublet") == 0) {
    r->cls = rp_open_dset(f, "obs/rctd_spot_class/codes");
    r->first = rp_open_dset(f, "obs/rctd_first_type/codes");
    r->second = rp_open_dset(f, "obs/rctd_second_type/codes");
    class_cats = "obs/rctd_spot_class/categories";
    if (r->cls < 0 || r->first < 0 || r->second < 0)
      return rp_fail(r,
                     "doublet mode without obs/rctd_spot_class, rctd_first_type or "
                     "rctd_second_type: the result is damaged");
  } else if (strcmp(r->mode, "multi") == 0) {
    r->cls = rp_open_dset(f, "obs/rctd_n_types");
    if (r->cls < 0) return rp_fail(r, "multi mode without obs/rctd_n_types: the result is damaged");
  }
  if (class_cats &&
      (input_h5_read_strings(r->path, f, class_cats, &r->classes, why, sizeof why) < 0 ||
       input_strings_seal(&r->classes) < 0))
    return rp_fail(r, "cannot read %s: the result is damaged", class_cats);
  if (rp_dict(f, "uns/rctd/tools", &r->tool_names, &r->tool_versions) ||
      rp_dict(f, "uns/rctd/config", &r->config_keys, &r->config_values))
    return rp_fail(r, "out of memory");
  return rp_read_uns_trace(r);
}

/* One chunk of rows, every column the report uses. */
typedef struct {
  int64_t row0, n;
  double *xy;   /* n x 2, or NULL without coordinates */
  double *w;    /* n x K proportions */
  int32_t *dom; /* dominant type code; K = filtered */
  double *numi; /* n */
  int32_t *cls; /* spot class code / n types */
  int32_t *first, *second;
} rp_chunk;

static int rp_chunk_alloc(rp_chunk *c, int K) {
  memset(c, 0, sizeof *c);
  c->xy = malloc(2 * RP_CHUNK * sizeof *c->xy);
  c->w = malloc((size_t)K * RP_CHUNK * sizeof *c->w);
  c->dom = malloc(RP_CHUNK * sizeof *c->dom);
  c->numi = malloc(RP_CHUNK * sizeof *c->numi);
  c->cls = malloc(RP_CHUNK * sizeof *c->cls);
  c->first = malloc(RP_CHUNK * sizeof *c->first);
  c->second = malloc(RP_CHUNK * sizeof *c->second);
  return c->xy && c->w && c->dom && c->numi && c->cls && c->first && c->second ? 0 : -1;
}

static void rp_chunk_free(rp_chunk *c) {
  free(c->xy), free(c->w), free(c->dom), free(c->numi), free(c->cls), free(c->first),
      free(c->second);
}

/* Reads rows [row0, row0 + n); RANGES_ONLY: coordinates, nUMI and dominant type (first pass). */
static int rp_chunk_read(rp_result *r, rp_chunk *c, int64_t row0, int64_t n, int ranges_only) {
  c->row0 = row0;
  c->n = n;
  int rc = 0;
  if (r->spatial >= 0) {
    int64_t rows, cols;
    rp_shape(r->spatial, &rows, &cols);
    double *buf = cols == 2 ? c->xy : malloc((size_t)(n * cols) * sizeof *buf);
    rc |= !buf || rp_read_rows(r->spatial, row0, n, cols, H5T_NATIVE_DOUBLE, buf);
    if (buf && buf != c->xy) {
      for (int64_t i = 0; rc == 0 && i < n; i++)
        c->xy[2 * i] = buf[i * cols], c->xy[2 * i + 1] = buf[i * cols + 1];
      free(buf);
    }
  }
  if (r->numi >= 0)
    rc |= rp_read_rows(r->numi, row0, n, 1, H5T_NATIVE_DOUBLE, c->numi);
  else
    for (int64_t i = 0; i < n; i++) c->numi[i] = NAN;
  rc |= rp_read_rows(r->dominant, row0, n, 1, H5T_NATIVE_INT32, c->dom);
  if (rc)
    return rp_fail(r, "cannot read rows %" PRId64 "-%" PRId64 ": the file is damaged", row0 + 1,
                   row0 + n);
  for (int64_t i = 0; r->spatial >= 0 && i < n; i++)
    if (!isfinite(c->xy[2 * i]) || !isfinite(c->xy[2 * i + 1]))
      return rp_fail(r,
                     "obsm/spatial: the coordinates of pixel %" PRId64
                     " are not finite (NaN or Inf): give every pixel x and y",
                     row0 + i + 1);
  if (ranges_only) return 0;
  rc |= rp_read_rows(r->weights, row0, n, r->K, H5T_NATIVE_DOUBLE, c->w);
  if (r->cls >= 0) rc |= rp_read_rows(r->cls, row0, n, 1, H5T_NATIVE_INT32, c->cls);
  if (r->first >= 0) rc |= rp_read_rows(r->first, row0, n, 1, H5T_NATIVE_INT32, c->first);
  if (r->second >= 0) rc |= rp_read_rows(r->second, row0, n, 1, H5T_NATIVE_INT32, c->second);
  if (rc)
    return rp_fail(r, "cannot read rows %" PRId64 "-%" PRId64 ": the file is damaged", row0 + 1,
                   row0 + n);
  for (int64_t i = 0; r->normalise && i < n; i++) {
    double *w = c->w + i * r->K, s = 0;
    for (int k = 0; k < r->K; k++) s += w[k];
    for (int k = 0; k < r->K; k++) w[k] = s > 0 ? w[k] / s : NAN;
  }
  return 0;
}

/* ------------------------------------------------------------------ drawing */

typedef struct {
  double xmin, xmax, ymin, ymax; /* coordinate ranges */
  double numi_lo, numi_hi;       /* log10 nUMI range of fitted pixels */
  int64_t n_fitted, n_filtered;
  /* statistics (drawing pass) */
  int64_t *dominant_k; /* K */
  double *prop_sum_k;  /* K */
  int64_t *pairs_kk;   /* K x K doublet pairs (first, second) */
  int64_t class_n[16]; /* spot class or n types */
} rp_stats;

typedef struct {
  double scale, x0, y0, radius; /* cell = (x - xmin) * scale + margin, ... */
  int width, height, margin;
  int square; /* dense: squares of half side radius (no gaps), else discs */
} rp_frame;

/* A frame of at most MAX_W x MAX_W cells (height at most 1.25 MAX_W) for the coordinate
 * ranges, with the point radius from the pixel density. */
static rp_frame rp_frame_for(const rp_stats *s, int64_t n_points, int max_w) {
  rp_frame fr;
  double xr = s->xmax - s->xmin, yr = s->ymax - s->ymin;
  if (!(xr > 0)) xr = yr > 0 ? yr : 1;
  if (!(yr > 0)) yr = xr;
  double max_h = 1.25 * max_w;
  fr.scale = fmin((max_w - 8) / xr, (max_h - 8) / yr);
  double area = xr * yr * fr.scale * fr.scale;
  double spacing = sqrt(area / (double)(n_points > 0 ? n_points : 1));
  fr.radius = fmax(0.5, fmin(0.45 * spacing, max_w / 25.0));
  fr.square = fr.radius < 1.5; /* discs of a few cells leave gaps: touching squares instead */
  if (fr.square) fr.radius = fmax(0.5, 0.5 * spacing);
  /* shrink the drawing area so that discs at the edges stay inside */
  fr.margin = (int)ceil(fr.radius) + 2;
  fr.scale = fmin((max_w - 2 * fr.margin) / xr, (max_h - 2 * fr.margin) / yr);
  fr.width = (int)ceil(xr * fr.scale) + 2 * fr.margin;
  fr.height = (int)ceil(yr * fr.scale) + 2 * fr.margin;
  fr.x0 = s->xmin;
  fr.y0 = s->ymax; /* y up, as spacexr's plots */
  return fr;
}

/* The frame as text (a PNG tEXt chunk "rctd-frame"), so that a cell can be traced back to
 * coordinates: column = (x - x0) * scale + margin, row = (y0 - y) * scale + margin. */
static void rp_frame_text(const rp_frame *fr, char *buf, size_t len) {
  snprintf(buf, len, "x0=%.17g y0=%.17g scale=%.17g margin=%d radius=%.17g shape=%s", fr->x0,
           fr->y0, fr->scale, fr->margin, fr->radius, fr->square ? "square" : "disc");
}

/* The maps: dominant type, spot class / number of types, nUMI, where the filtered pixels are
 * (on top of the fitted ones, which hide them on the other maps of a dense slide), then one per
 * type. */
enum { RP_MAP_DOMINANT, RP_MAP_CLASS, RP_MAP_NUMI, RP_MAP_FILTERED, RP_MAP_FIXED };
#define RP_FILTERED_RGB ((rctd_rgb){82, 82, 82})  /* filtered map: filtered pixels */
#define RP_FITTED_RGB ((rctd_rgb){190, 215, 238}) /* filtered map: fitted pixels */

typedef struct {
  rp_frame main, small;
  int n_maps; /* RP_MAP_FIXED + K */
  rctd_raster *maps;
  int has_class;
} rp_canvas;

static void rp_canvas_free(rp_canvas *cv) {
  for (int i = 0; cv->maps && i < cv->n_maps; i++) rctd_raster_free(&cv->maps[i]);
  free(cv->maps);
  memset(cv, 0, sizeof *cv);
}

static int rp_canvas_init(rp_canvas *cv, const rp_result *r, const rp_stats *s, int main_w,
                          int small_w) {
  memset(cv, 0, sizeof *cv);
  int64_t n_points = s->n_fitted + s->n_filtered;
  cv->main = rp_frame_for(s, n_points, main_w);
  cv->small = rp_frame_for(s, n_points, small_w);
  cv->n_maps = RP_MAP_FIXED + r->K;
  cv->has_class = r->cls >= 0;
  cv->maps = calloc((size_t)cv->n_maps, sizeof *cv->maps);
  if (!cv->maps) return -1;
  for (int i = 0; i < cv->n_maps; i++) {
    const rp_frame *fr = i < RP_MAP_FIXED ? &cv->main : &cv->small;
    if (i == RP_MAP_CLASS && !cv->has_class) continue;
    if (rctd_raster_init(&cv->maps[i], fr->width, fr->height) < 0) return -1;
  }
  return 0;
}

static void rp_point(rctd_raster *ras, const rp_frame *fr, double x, double y, uint8_t index,
                     int only_empty) {
  if (fr->square)
    rctd_raster_square(ras, x, y, fr->radius, index, only_empty);
  else
    rctd_raster_disc(ras, x, y, fr->radius, index, only_empty);
}

static uint8_t rp_level(double t) {
  if (!(t > 0)) t = 0;
  if (t > 1) t = 1;
  return (uint8_t)(2 + lround(t * (RP_LEVELS - 1)));
}

/* Palette index of a pixel's spot class (doublet) or number of types (multi): 2 + class. */
static uint8_t rp_class_index(const rp_result *r, int32_t code) {
  if (strcmp(r->mode, "multi") == 0) return (uint8_t)(2 + (code < 0 ? 0 : code > 12 ? 12 : code));
  return (uint8_t)(2 + (code < 0 || code > 12 ? 12 : code));
}

static void rp_draw_chunk(const rp_result *r, rp_canvas *cv, const rp_stats *s, const rp_chunk *c) {
  const int K = r->K;
  for (int64_t i = 0; i < c->n; i++) {
    int filtered = c->dom[i] < 0 || c->dom[i] >= K;
    for (int f = 0; f < 2; f++) {
      const rp_frame *fr = f == 0 ? &cv->main : &cv->small;
      double x = (c->xy[2 * i] - fr->x0) * fr->scale + fr->margin;
      double y = (fr->y0 - c->xy[2 * i + 1]) * fr->scale + fr->margin;
      if (f == 1) {
        for (int k = 0; k < K; k++) {
          uint8_t v = filtered ? 1 : rp_level(c->w[i * K + k]);
          rp_point(&cv->maps[RP_MAP_FIXED + k], fr, x, y, v, filtered);
        }
        continue;
      }
      uint8_t dom = filtered ? 1 : (uint8_t)(2 + (c->dom[i] % RCTD_RASTER_MAX_QUALITATIVE));
      rp_point(&cv->maps[RP_MAP_DOMINANT], fr, x, y, dom, filtered);
      if (cv->has_class)
        rp_point(&cv->maps[RP_MAP_CLASS], fr, x, y, filtered ? 1 : rp_class_index(r, c->cls[i]),
                 filtered);
      double t = s->numi_hi > s->numi_lo
                     ? (log10(c->numi[i]) - s->numi_lo) / (s->numi_hi - s->numi_lo)
                     : 0.5;
      int has_numi = !filtered && c->numi[i] > 0 && isfinite(c->numi[i]);
      rp_point(&cv->maps[RP_MAP_NUMI], fr, x, y, has_numi ? rp_level(t) : 1, !has_numi);
      rp_point(&cv->maps[RP_MAP_FILTERED], fr, x, y, filtered ? 1 : 2, !filtered);
    }
  }
}

/* Spot class colours: reject, singlet, doublet_certain, doublet_uncertain (by name). */
static rctd_rgb rp_class_colour(const rp_result *r, int code) {
  if (strcmp(r->mode, "multi") == 0) return rctd_raster_viridis(code / 4.0 > 1 ? 1 : code / 4.0);
  const char *name = code >= 0 && code < r->classes.n ? r->classes.items[code] : "";
  if (strcmp(name, "singlet") == 0) return (rctd_rgb){31, 119, 180};
  if (strcmp(name, "doublet_certain") == 0) return (rctd_rgb){255, 127, 14};
  if (strcmp(name, "doublet_uncertain") == 0) return (rctd_rgb){44, 160, 44};
  if (strcmp(name, "reject") == 0) return (rctd_rgb){214, 39, 40};
  return (rctd_rgb){148, 103, 189};
}

/* The palette of map M: 0 white, 1 grey (filtered), then the map's colours. */
static void rp_palette(const rp_result *r, int map, rctd_rgb *pal) {
  pal[0] = (rctd_rgb){255, 255, 255};
  pal[1] = (rctd_rgb){RP_GREY, RP_GREY, RP_GREY};
  if (map == RP_MAP_FILTERED) {
    for (int i = 1; i < 256; i++) pal[i] = i == 1 ? RP_FILTERED_RGB : RP_FITTED_RGB;
    return;
  }
  for (int i = 2; i < 256; i++) {
    if (map == RP_MAP_DOMINANT)
      pal[i] = rctd_raster_qualitative(i - 2);
    else if (map == RP_MAP_CLASS)
      pal[i] = rp_class_colour(r, i - 2);
    else
      pal[i] = rctd_raster_viridis((i - 2) / (double)(RP_LEVELS - 1));
  }
}

/* Both passes: ranges and counts, then drawing and statistics into CV (NULL: statistics only). */
static int rp_scan(rp_result *r, rp_stats *s, rp_canvas *cv, int drawing) {
  rp_chunk c;
  int rc = rp_chunk_alloc(&c, r->K) ? rp_fail(r, "out of memory") : 0;
  if (!drawing) {
    s->xmin = s->ymin = INFINITY, s->xmax = s->ymax = -INFINITY;
    s->numi_lo = INFINITY, s->numi_hi = -INFINITY;
  }
  for (int64_t row0 = 0; rc == 0 && row0 < r->n; row0 += RP_CHUNK) {
    int64_t n = r->n - row0 < RP_CHUNK ? r->n - row0 : RP_CHUNK;
    rctd_h5_guard_enter(r->path); /* a damaged file may crash libhdf5 (h5guard.h) */
    rc = rp_chunk_read(r, &c, row0, n, !drawing);
    rctd_h5_guard_leave();
    if (rc) break;
    if (!drawing) {
      for (int64_t i = 0; i < n; i++) {
        int filtered = c.dom[i] < 0 || c.dom[i] >= r->K;
        filtered ? s->n_filtered++ : s->n_fitted++;
        if (r->spatial >= 0) {
          s->xmin = fmin(s->xmin, c.xy[2 * i]), s->xmax = fmax(s->xmax, c.xy[2 * i]);
          s->ymin = fmin(s->ymin, c.xy[2 * i + 1]), s->ymax = fmax(s->ymax, c.xy[2 * i + 1]);
        }
        if (!filtered && c.numi[i] > 0 && isfinite(c.numi[i]))
          s->numi_lo = fmin(s->numi_lo, log10(c.numi[i])),
          s->numi_hi = fmax(s->numi_hi, log10(c.numi[i]));
      }
      continue;
    }
    for (int64_t i = 0; i < n; i++) {
      int32_t d = c.dom[i];
      if (d < 0 || d >= r->K) continue;
      s->dominant_k[d]++;
      for (int k = 0; k < r->K; k++)
        if (isfinite(c.w[i * r->K + k])) s->prop_sum_k[k] += c.w[i * r->K + k];
      if (r->cls >= 0) s->class_n[c.cls[i] < 0 ? 0 : c.cls[i] > 15 ? 15 : c.cls[i]]++;
      if (r->first < 0) continue;
      const char *cls = c.cls[i] >= 0 && c.cls[i] < r->classes.n ? r->classes.items[c.cls[i]] : "";
      int a = c.first[i], b = c.second[i];
      if (strncmp(cls, "doublet", 7) == 0 && a >= 0 && a < r->K && b >= 0 && b < r->K)
        s->pairs_kk[(int64_t)a * r->K + b]++;
    }
    if (cv) rp_draw_chunk(r, cv, s, &c);
  }
  rp_chunk_free(&c);
  return rc;
}

/* ------------------------------------------------------------------ sigma's trace */

#define RP_EPOCHS "uns/rctd/sigma_epochs"

/* uns/rctd/sigma_epochs (rctd-merge's copy of rctd-sigma's record, sigmas as sigma_c). */
static int rp_read_uns_trace(rp_result *r) {
  if (!input_h5_exists(r->file, RP_EPOCHS)) return 0;
  rctd_sigma_trace *t = &r->trace;
  rp_scalar_string(r->file, RP_EPOCHS "/source", t->source, sizeof t->source);
  t->n_fit = (int64_t)rp_scalar_f64(r->file, RP_EPOCHS "/n_fit", -1);
  t->converged = (int)rp_scalar_f64(r->file, RP_EPOCHS "/converged", -1);
  static const char *const names[3] = {RP_EPOCHS "/sigma", RP_EPOCHS "/likelihood",
                                       RP_EPOCHS "/sigma_chosen"};
  int64_t n = rp_length(r->file, names[1]);
  r->have_trace = 1;
  if (n < 0 && strcmp(t->source, "estimated") != 0) return 0; /* a given sigma */
  if (n < 1 || n > 1000000 || rp_length(r->file, names[0]) != n ||
      rp_length(r->file, names[2]) != n)
    return rp_fail(r, "%s: sigma, likelihood and sigma_chosen are not lists of one length: the "
                   "result is damaged", RP_EPOCHS);
  double *v = malloc(3 * (size_t)n * sizeof *v);
  t->sigma_fit = malloc((size_t)n * sizeof *t->sigma_fit);
  t->sigma_chosen = malloc((size_t)n * sizeof *t->sigma_chosen);
  t->log_l = malloc((size_t)n * sizeof *t->log_l);
  int rc = v && t->sigma_fit && t->sigma_chosen && t->log_l ? 0 : rp_fail(r, "out of memory");
  for (int i = 0; i < 3 && rc == 0; i++) {
    hid_t dset = rp_open_dset(r->file, names[i]);
    if (dset < 0 || rp_read_rows(dset, 0, n, 1, H5T_NATIVE_DOUBLE, v + i * n) < 0)
      rc = rp_fail(r, "cannot read %s: the result is damaged", names[i]);
    if (dset >= 0) H5Dclose(dset);
  }
  for (int64_t e = 0; e < n && rc == 0; e++) {
    t->sigma_fit[e] = (int)lround(fmin(fmax(v[e], 0), 100) * 100);
    t->log_l[e] = v[n + e];
    t->sigma_chosen[e] = (int)lround(fmin(fmax(v[2 * n + e], 0), 100) * 100);
  }
  free(v);
  t->n_epochs = rc == 0 ? (int)n : 0;
  return rc;
}

/* --sigma-stream: the record "sigma" of rctd-sigma's output replaces what the result holds. */
static int rp_read_stream_trace(rp_result *r, const char *path, char *err, size_t err_len) {
  rctd_reader *rd = rctd_reader_open(path, err, err_len);
  if (!rd) return -1;
  const rctd_record_info *info;
  int got, rc = -1;
  while ((got = rctd_reader_next(rd, &info)) == 1 && strcmp(info->name, RCTD_SIGMA_REC) != 0) {
  }
  rctd_record rec = {0};
  if (got < 0)
    rctd_fail(err, err_len, "%s", rctd_reader_error(rd));
  else if (got == 0)
    rctd_fail(err, err_len, "%s: no '%s' record: give the stream rctd-sigma wrote", path,
              RCTD_SIGMA_REC);
  else if (rctd_reader_load(rd, &rec) < 0)
    rctd_fail(err, err_len, "%s", rctd_reader_error(rd));
  else if (rec.kind != RCTD_META)
    rctd_fail(err, err_len, "%s: record '%s' is not a table of keys and values", path,
              RCTD_SIGMA_REC);
  else {
    rctd_sigma_trace_free(&r->trace);
    rc = rctd_sigma_trace_read(&rec, path, &r->trace, err, err_len);
    r->have_trace = rc == 0;
  }
  rctd_record_free(&rec);
  rctd_reader_close(rd);
  return rc;
}

/* The trace as a table and a line of log-likelihood per epoch. */
static void rp_trace_html(FILE *f, const rctd_sigma_trace *t) {
  fputs(
      "<div class=\"row\" id=\"sigma-trace\"><table class=\"summary\"><tr><td>epoch</td>"
      "<td>sigma of the fits</td><td>likelihood value (R's)</td><td>sigma chosen</td></tr>",
      f);
  for (int e = 0; e < t->n_epochs; e++)
    fprintf(f, "<tr><td>%d</td><td>%.2f</td><td>%.10g</td><td>%.2f</td></tr>", e + 1,
            t->sigma_fit[e] / 100.0, t->log_l[e], t->sigma_chosen[e] / 100.0);
  fputs("</table>", f);
  double lo = INFINITY, hi = -INFINITY;
  for (int e = 0; e < t->n_epochs; e++) lo = fmin(lo, t->log_l[e]), hi = fmax(hi, t->log_l[e]);
  if (!(hi > lo)) hi = lo + 1;
  const int w = 300, h = 140, pad = 30;
  fprintf(f,
          "<svg width=\"%d\" height=\"%d\" xmlns=\"http://www.w3.org/2000/svg\"><polyline "
          "fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"2\" points=\"",
          w, h);
  for (int e = 0; e < t->n_epochs; e++)
    fprintf(f, "%.1f,%.1f ", pad + (t->n_epochs > 1 ? (double)e / (t->n_epochs - 1) : 0.5) * (w - 2 * pad),
            pad / 2 + (hi - t->log_l[e]) / (hi - lo) * (h - 2 * pad));
  fputs("\"/>", f);
  for (int e = 0; e < t->n_epochs; e++)
    fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"#1f77b4\"/>",
            pad + (t->n_epochs > 1 ? (double)e / (t->n_epochs - 1) : 0.5) * (w - 2 * pad),
            pad / 2 + (hi - t->log_l[e]) / (hi - lo) * (h - 2 * pad));
  fprintf(f,
          "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">epoch 1 to %d; "
          "likelihood value %.6g to %.6g</text></svg></div>",
          w / 2, h - 4, t->n_epochs, lo, hi);
}

/* ------------------------------------------------------------------ HTML */

static void rp_esc(FILE *f, const char *s) {
  for (; *s; s++) {
    switch (*s) {
      case '<':
        fputs("&lt;", f);
        break;
      case '>':
        fputs("&gt;", f);
        break;
      case '&':
        fputs("&amp;", f);
        break;
      case '"':
        fputs("&quot;", f);
        break;
      default:
        fputc(*s, f);
    }
  }
}

static void rp_hex(FILE *f, rctd_rgb c) {
  fprintf(f, "#%02x%02x%02x", c.r, c.g, c.b);
}

/* An <img> of raster R with palette of map MAP, shown at DISPLAY_W CSS pixels. */
static int rp_img(FILE *f, const rp_result *r, const rctd_raster *ras, const rp_frame *fr, int map,
                  const char *id, const char *alt, int display_w) {
  rctd_rgb pal[256];
  rp_palette(r, map, pal);
  unsigned char *png;
  size_t len;
  char frame[256];
  rp_frame_text(fr, frame, sizeof frame);
  if (rctd_png_encode(ras, pal, 256, 0, "rctd-frame", frame, &png, &len) < 0) return -1;
  char *b64 = rctd_base64(png, len);
  free(png);
  if (!b64) return -1;
  fprintf(f, "<img id=\"%s\" class=\"map\" width=\"%d\" alt=\"", id, display_w);
  rp_esc(f, alt);
  fprintf(f, "\" src=\"data:image/png;base64,%s\">", b64);
  free(b64);
  return 0;
}

/* A horizontal viridis colour bar from LO to HI labelled LABEL. */
static void rp_colour_bar(FILE *f, const char *id, const char *lo, const char *hi,
                          const char *label) {
  fprintf(f,
          "<svg class=\"colourbar\" id=\"%s\" width=\"300\" height=\"52\" "
          "xmlns=\"http://www.w3.org/2000/svg\"><defs><linearGradient id=\"%s-g\">",
          id, id);
  for (int i = 0; i <= 10; i++) {
    fprintf(f, "<stop offset=\"%d%%\" stop-color=\"", i * 10);
    rp_hex(f, rctd_raster_viridis(i / 10.0));
    fputs("\"/>", f);
  }
  fprintf(f,
          "</linearGradient></defs><rect x=\"10\" y=\"4\" width=\"240\" height=\"14\" "
          "fill=\"url(#%s-g)\"/><text x=\"10\" y=\"32\">%s</text><text x=\"250\" y=\"32\" "
          "text-anchor=\"end\">%s</text><text x=\"130\" y=\"44\" text-anchor=\"middle\">",
          id, lo, hi);
  rp_esc(f, label);
  fputs("</text></svg>", f);
}

static void rp_legend_item(FILE *f, rctd_rgb c, const char *name, int64_t count) {
  fputs("<li><span class=\"sw\" style=\"background:", f);
  rp_hex(f, c);
  fputs("\"></span>", f);
  rp_esc(f, name);
  if (count >= 0) fprintf(f, " <small>(%" PRId64 ")</small>", count);
  fputs("</li>", f);
}

/* Horizontal bars, one per type, of VALUES (formatted with FMT), in the types' colours. */
static void rp_bars(FILE *f, const rp_result *r, const char *id, const double *values,
                    const char *fmt) {
  double max = 0;
  for (int k = 0; k < r->K; k++) max = fmax(max, values[k]);
  int row_h = 16, label_w = 170, bar_w = 300;
  fprintf(f,
          "<svg class=\"bars\" id=\"%s\" width=\"%d\" height=\"%d\" "
          "xmlns=\"http://www.w3.org/2000/svg\">",
          id, label_w + bar_w + 70, r->K * row_h + 4);
  for (int k = 0; k < r->K; k++) {
    double w = max > 0 ? values[k] / max * bar_w : 0;
    int y = 2 + k * row_h;
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">", label_w - 6, y + 12);
    rp_esc(f, r->types.items[k]);
    fprintf(f, "</text><rect x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"", label_w, y, w,
            row_h - 3);
    rp_hex(f, rctd_raster_qualitative(k));
    fprintf(f, "\"/><text x=\"%.1f\" y=\"%d\">", label_w + w + 4, y + 12);
    fprintf(f, fmt, values[k]);
    fputs("</text>", f);
  }
  fputs("</svg>", f);
}

/* Doublet pairs: K x K counts of (first type, second type), symmetric, as a heat map (counts
 * written in the cells when they fit). */
static void rp_pairs(FILE *f, const rp_result *r, const rp_stats *s) {
  const int K = r->K,
            cell = K > 40   ? 11
                   : K > 24 ? 16
                            : 24,
            label_w = 140, font = cell > 16 ? 11 : 9;
  int64_t max = 0;
  for (int a = 0; a < K; a++)
    for (int b = 0; b < K; b++) {
      int64_t v = s->pairs_kk[a * K + b] + (a != b ? s->pairs_kk[b * K + a] : 0);
      if (v > max) max = v;
    }
  fprintf(f,
          "<svg class=\"heatmap\" id=\"doublet-pairs\" width=\"%d\" height=\"%d\" "
          "xmlns=\"http://www.w3.org/2000/svg\">",
          label_w + K * cell + 120, label_w + K * cell + 10);
  for (int k = 0; k < K; k++) {
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\" font-size=\"%d\">", label_w - 4,
            label_w + k * cell + cell / 2 + font / 2 - 1, font);
    rp_esc(f, r->types.items[k]);
    fprintf(f, "</text><text transform=\"translate(%d,%d) rotate(-45)\" font-size=\"%d\">",
            label_w + k * cell + cell / 2 + font / 2 - 1, label_w - 4, font);
    rp_esc(f, r->types.items[k]);
    fputs("</text>", f);
  }
  for (int a = 0; a < K; a++)
    for (int b = 0; b < K; b++) {
      int64_t v = s->pairs_kk[a * K + b] + (a != b ? s->pairs_kk[b * K + a] : 0);
      double t = max > 0 ? (double)v / (double)max : 0;
      fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"", label_w + b * cell,
              label_w + a * cell, cell - 1, cell - 1);
      if (v == 0)
        fputs("#f2f2f2", f);
      else
        rp_hex(f, rctd_raster_viridis(t));
      fprintf(f, "\"><title>");
      rp_esc(f, r->types.items[a]);
      fputs(" + ", f);
      rp_esc(f, r->types.items[b]);
      fprintf(f, ": %" PRId64 "</title></rect>", v);
      if (v > 0 && cell >= 16)
        fprintf(f,
                "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" font-size=\"%d\" "
                "style=\"fill:%s\">%" PRId64 "</text>",
                label_w + b * cell + cell / 2, label_w + a * cell + cell / 2 + font / 2 - 1,
                font - 1, t > 0.6 ? "#222" : "#fff", v);
    }
  fprintf(f, "<text x=\"%d\" y=\"%d\">0 to %" PRId64 " pixels (viridis)</text>",
          label_w + K * cell + 8, label_w + 12, max);
  fputs("</svg>", f);
}

static const char rp_css[] =
    "body{font-family:sans-serif;margin:24px;color:#222;max-width:1280px}"
    "h1{margin-bottom:0}h2{border-bottom:1px solid #ccc;padding-bottom:4px;margin-top:32px}"
    ".sub{color:#666;margin-top:4px}table.summary td{padding:2px 12px 2px 0;vertical-align:top}"
    "table.summary td:first-child{color:#555}"
    ".row{display:flex;flex-wrap:wrap;gap:20px;align-items:flex-start}"
    "figure{margin:0}figcaption{font-weight:bold;margin-bottom:6px}"
    "img.map{image-rendering:pixelated;border:1px solid #ddd;display:block}"
    "ul.legend{list-style:none;padding:0;margin:8px 0;columns:2;font-size:13px}"
    "ul.legend li{margin:1px 0;break-inside:avoid}"
    ".sw{display:inline-block;width:12px;height:12px;margin-right:6px;vertical-align:middle;"
    "border:1px solid #0003}"
    ".grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(230px,1fr));gap:14px}"
    ".grid figcaption{font-weight:normal;font-size:13px}svg text{font-size:12px;fill:#222}"
    ".note{color:#666;font-style:italic}details{margin-top:8px}code{font-size:12px}";

static void rp_row(FILE *f, const char *key, const char *value) {
  fputs("<tr><td>", f);
  rp_esc(f, key);
  fputs("</td><td>", f);
  rp_esc(f, value);
  fputs("</td></tr>\n", f);
}

static void rp_summary(FILE *f, const rp_result *r, const rp_stats *s, const rctd_report_opts *o) {
  const rctd_sigma_trace *trace = r->have_trace ? &r->trace : NULL;
  char buf[512];
  fputs("<section id=\"summary\"><h2>Summary</h2><table class=\"summary\">\n", f);
  rp_row(f, "result", r->path);
  rp_row(f, "mode", r->mode[0] ? r->mode : "unknown");
  snprintf(buf, sizeof buf, "%.6g", r->sigma);
  rp_row(f, "sigma", isfinite(r->sigma) ? buf : "not recorded");
  if (!trace) {
    rp_row(f, "sigma likelihood per epoch",
           "not in the result (no uns/rctd/sigma_epochs; --sigma-stream gives rctd-sigma's "
           "output)");
  } else if (trace->n_epochs == 0) {
    rp_row(f, "sigma likelihood per epoch", "none: sigma was given, not estimated");
  } else {
    int used = snprintf(buf, sizeof buf, "%d epoch%s", trace->n_epochs,
                        trace->n_epochs == 1 ? "" : "s");
    if (trace->n_fit >= 0)
      used += snprintf(buf + used, sizeof buf - (size_t)used, " on %" PRId64 " fit pixels",
                       trace->n_fit);
    if (trace->converged >= 0)
      snprintf(buf + used, sizeof buf - (size_t)used, ", %s",
               trace->converged ? "converged (the sigma stopped changing)"
                                : "not converged (N_epoch reached)");
    rp_row(f, "sigma estimate", buf);
  }
  snprintf(buf, sizeof buf, "%d", r->K);
  rp_row(f, "cell types", buf);
  snprintf(buf, sizeof buf, "%" PRId64 " regression (genes_reg), %" PRId64 " bulk (genes_bulk)",
           r->n_reg, r->n_bulk);
  rp_row(f, "genes", buf);
  snprintf(buf, sizeof buf,
           "%" PRId64 " in the result; %" PRId64 " fitted, %" PRId64 " filtered (grey on the maps)",
           r->n, s->n_fitted, s->n_filtered);
  rp_row(f, "pixels", buf);
  if (r->n_input >= 0) {
    snprintf(buf, sizeof buf,
             "%" PRId64 " in the spatial input, %" PRId64
             " removed by the "
             "filters, %" PRId64 " fitted",
             r->n_input, r->n_filtered, r->n_fitted);
    rp_row(f, "run", buf);
  }
  if (r->cls >= 0 && strcmp(r->mode, "doublet") == 0) {
    int used = 0;
    buf[0] = 0;
    for (int c = 0; c < r->classes.n && c < 16 && used < (int)sizeof buf; c++)
      if (strcmp(r->classes.items[c], "filtered") != 0)
        used += snprintf(buf + used, sizeof buf - (size_t)used, "%s%s %" PRId64 " (%.1f%%)",
                         used ? ", " : "", r->classes.items[c], s->class_n[c],
                         s->n_fitted ? 100.0 * (double)s->class_n[c] / (double)s->n_fitted : 0);
    rp_row(f, "spot classes", buf);
  }
  rp_row(f, "coordinates",
         r->spatial >= 0 ? "obsm/spatial" : "none (no obsm/spatial): no maps, the rest is shown");
  rp_row(f, "command line",
         o->command ? o->command : "not recorded (rctd run --report records it)");
  if (o->n_timings > 0) {
    int used = 0;
    for (int i = 0; i < o->n_timings && used < (int)sizeof buf; i++)
      used += snprintf(buf + used, sizeof buf - (size_t)used, "%s%s %.1f s", i ? ", " : "",
                       o->timing_names[i], o->timing_s[i]);
    rp_row(f, "stage timings", buf);
  } else {
    rp_row(f, "stage timings", "not recorded (rctd run --report records them)");
  }
  snprintf(buf, sizeof buf, "rctd %s (result written by rctd %s)", RCTD_VERSION,
           r->version[0] ? r->version : "unknown");
  rp_row(f, "version", buf);
  fputs("</table>\n", f);
  if (r->tool_names.n || r->config_keys.n) {
    fputs("<details><summary>tools and configuration</summary><table class=\"summary\">\n", f);
    for (int64_t i = 0; i < r->tool_names.n; i++)
      rp_row(f, r->tool_names.items[i], r->tool_versions.items[i]);
    for (int64_t i = 0; i < r->config_keys.n; i++)
      rp_row(f, r->config_keys.items[i], r->config_values.items[i]);
    fputs("</table></details>\n", f);
  }
  if (trace && trace->n_epochs > 0) {
    fputs("<h3>Sigma: likelihood per epoch</h3>", f);
    rp_trace_html(f, trace);
  }
  fputs("</section>\n", f);
}

static int rp_maps(FILE *f, const rp_result *r, const rp_stats *s, const rp_canvas *cv) {
  fputs("<section id=\"maps\"><h2>Spatial maps</h2>\n", f);
  if (!cv) {
    fputs(
        "<p class=\"note\" id=\"no-coordinates\">This result has no coordinates "
        "(obsm/spatial): no maps. Give the spatial input's coordinates (an h5ad with "
        "obsm/spatial, --coords-table, or a Space Ranger folder) to rctd run.</p></section>\n",
        f);
    return 0;
  }
  int disp = cv->main.width;
  fprintf(f,
          "<div class=\"row\"><figure style=\"width:%dpx\"><figcaption>Dominant cell "
          "type</figcaption>",
          disp + 2);
  if (rp_img(f, r, &cv->maps[RP_MAP_DOMINANT], &cv->main, RP_MAP_DOMINANT, "map-dominant",
             "map of the dominant cell type", disp))
    return -1;
  fputs("<ul class=\"legend\" id=\"legend-dominant\">", f);
  for (int k = 0; k < r->K; k++)
    rp_legend_item(f, rctd_raster_qualitative(k), r->types.items[k], s->dominant_k[k]);
  rp_legend_item(f, (rctd_rgb){RP_GREY, RP_GREY, RP_GREY}, "filtered (not fitted)", s->n_filtered);
  fputs("</ul>", f);
  if (r->K > RCTD_RASTER_MAX_QUALITATIVE)
    fprintf(f,
            "<p class=\"note\">%d types: colours repeat after the first %d; see the per-type "
            "maps.</p>",
            r->K, RCTD_RASTER_MAX_QUALITATIVE);
  fputs("</figure>\n", f);
  if (cv->has_class) {
    int multi = strcmp(r->mode, "multi") == 0;
    fprintf(f, "<figure><figcaption>%s</figcaption>",
            multi ? "Number of cell types" : "Spot class");
    if (rp_img(f, r, &cv->maps[RP_MAP_CLASS], &cv->main, RP_MAP_CLASS,
               multi ? "map-n-types" : "map-class",
               multi ? "map of the number of cell types" : "map of the spot class", disp))
      return -1;
    fputs("<ul class=\"legend\" id=\"legend-class\">", f);
    int n_legend = (int)r->classes.n;
    if (multi) /* 0 .. MAX_MULTI_TYPES (4 by default), or more when the data has more */
      for (n_legend = 5; n_legend < 13 && s->class_n[n_legend] > 0;) n_legend++;
    for (int c = 0; c < n_legend; c++) {
      char name[64];
      if (!multi && strcmp(r->classes.items[c], "filtered") == 0) continue;
      snprintf(name, sizeof name, "%s", multi ? "" : r->classes.items[c]);
      if (multi) snprintf(name, sizeof name, "%d type%s", c, c == 1 ? "" : "s");
      rp_legend_item(f, rp_class_colour(r, c), name, s->class_n[c]);
    }
    rp_legend_item(f, (rctd_rgb){RP_GREY, RP_GREY, RP_GREY}, "filtered", s->n_filtered);
    fputs("</ul></figure>\n", f);
  }
  fprintf(f, "<figure style=\"width:%dpx\"><figcaption>nUMI</figcaption>", disp + 2);
  if (rp_img(f, r, &cv->maps[RP_MAP_NUMI], &cv->main, RP_MAP_NUMI, "map-numi", "map of nUMI", disp))
    return -1;
  char lo[32] = "", hi[32] = "";
  if (s->numi_hi >= s->numi_lo) {
    snprintf(lo, sizeof lo, "%.0f", pow(10, s->numi_lo));
    snprintf(hi, sizeof hi, "%.0f", pow(10, s->numi_hi));
  }
  rp_colour_bar(f, "colourbar-numi", lo, hi, "nUMI (log scale); grey: filtered");
  fprintf(f, "</figure><figure style=\"width:%dpx\"><figcaption>Filtered pixels</figcaption>",
          disp + 2);
  if (rp_img(f, r, &cv->maps[RP_MAP_FILTERED], &cv->main, RP_MAP_FILTERED, "map-filtered",
             "map of the pixels the filters removed", disp))
    return -1;
  fputs("<ul class=\"legend\" id=\"legend-filtered\">", f);
  rp_legend_item(f, RP_FITTED_RGB, "fitted", s->n_fitted);
  rp_legend_item(f, RP_FILTERED_RGB, "filtered (not fitted)", s->n_filtered);
  fputs("</ul></figure></div>\n</section>\n", f);
  fputs("<section id=\"type-maps\"><h2>Proportion of each cell type</h2>\n", f);
  rp_colour_bar(f, "colourbar-weights", "0", "1", "proportion (rctd_proportions); grey: filtered");
  fputs("<div class=\"grid\">\n", f);
  for (int k = 0; k < r->K; k++) {
    char id[32];
    snprintf(id, sizeof id, "map-type-%d", k + 1);
    fputs("<figure><figcaption>", f);
    rp_esc(f, r->types.items[k]);
    fputs("</figcaption>", f);
    if (rp_img(f, r, &cv->maps[RP_MAP_FIXED + k], &cv->small, RP_MAP_FIXED + k, id,
               r->types.items[k], cv->small.width))
      return -1;
    fputs("</figure>\n", f);
  }
  fputs("</div>\n</section>\n", f);
  return 0;
}

static void rp_types(FILE *f, const rp_result *r, const rp_stats *s) {
  fputs("<section id=\"types\"><h2>Cell types</h2><div class=\"row\">", f);
  double *v = malloc((size_t)r->K * sizeof *v);
  if (v) {
    for (int k = 0; k < r->K; k++) v[k] = (double)s->dominant_k[k];
    fputs("<figure><figcaption>Pixels by dominant type</figcaption>", f);
    rp_bars(f, r, "bars-dominant", v, "%.0f");
    for (int k = 0; k < r->K; k++) v[k] = s->n_fitted ? s->prop_sum_k[k] / (double)s->n_fitted : 0;
    fputs("</figure><figure><figcaption>Mean proportion over fitted pixels</figcaption>", f);
    rp_bars(f, r, "bars-proportion", v, "%.3f");
    fputs("</figure>", f);
    free(v);
  }
  fputs("</div></section>\n", f);
  if (r->first < 0) return;
  fputs(
      "<section id=\"doublets\"><h2>Doublet pairs</h2><p class=\"note\">Pixels classed "
      "doublet_certain or doublet_uncertain, by their first and second type (both "
      "orders counted together).</p>",
      f);
  rp_pairs(f, r, s);
  fputs("</section>\n", f);
}

static int rp_html(FILE *f, const rp_result *r, const rp_stats *s, const rp_canvas *cv,
                   const rctd_report_opts *o) {
  const char *base = strrchr(r->path, '/');
  base = base ? base + 1 : r->path;
  fputs(
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<meta name=\"viewport\" content=\"width=device-width\"><title>rctd report: ",
      f);
  rp_esc(f, base);
  fprintf(f, "</title><style>%s</style></head><body>\n<h1>rctd report</h1><p class=\"sub\">",
          rp_css);
  rp_esc(f, base);
  fprintf(f, " &middot; %s mode &middot; %d cell types &middot; %" PRId64 " pixels</p>\n",
          r->mode[0] ? r->mode : "unknown", r->K, r->n);
  rp_summary(f, r, s, o);
  if (rp_maps(f, r, s, cv)) return -1;
  rp_types(f, r, s);
  fprintf(f,
          "<footer><p class=\"note\">Made by rctd %s (rctd report). Maps: one disc per "
          "pixel at obsm/spatial, y up as in spacexr's plots.</p></footer>\n</body></html>\n",
          RCTD_VERSION);
  return ferror(f) ? -1 : 0;
}

/* ------------------------------------------------------------------ PNG files */

static void rp_file_name(char *out, size_t len, const char *dir, const char *name) {
  int used = snprintf(out, len, "%s/", dir);
  for (const char *p = name; *p && used + 5 < (int)len; p++)
    out[used++] = (char)((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                                 (*p >= '0' && *p <= '9') || *p == '-' || *p == '.'
                             ? *p
                             : '_');
  snprintf(out + used, len - (size_t)used, ".png");
}

static int rp_write_png(rp_result *r, const rctd_raster *ras, const rp_frame *fr, int map, int dpi,
                        const char *path) {
  rctd_rgb pal[256];
  rp_palette(r, map, pal);
  unsigned char *png;
  size_t len;
  char frame[256];
  rp_frame_text(fr, frame, sizeof frame);
  if (rctd_png_encode(ras, pal, 256, dpi, "rctd-frame", frame, &png, &len) < 0)
    return rp_fail(r, "out of memory");
  char why[1024];
  FILE *f = rctd_out_open(path, why, sizeof why);
  if (!f) {
    free(png);
    return snprintf(r->err, r->err_len, "%s", why), -1;
  }
  fwrite(png, 1, len, f);
  free(png);
  if (rctd_out_commit(f, why, sizeof why) < 0) return snprintf(r->err, r->err_len, "%s", why), -1;
  return 0;
}

/* The PNG files, each renamed into place as it is written (a slide may have more types than
 * outputs can be held back); on a failure those written are removed. */
static int rp_pngs(rp_result *r, const rp_canvas *cv, const rctd_report_opts *o) {
  int rc = 0, written = 0;
  char(*paths)[4200] = calloc((size_t)cv->n_maps, sizeof *paths);
  if (!paths) return rp_fail(r, "out of memory");
  for (int i = 0; rc == 0 && i < cv->n_maps; i++) {
    if (i == RP_MAP_CLASS && !cv->has_class) continue;
    char name[300];
    if (i == RP_MAP_DOMINANT) snprintf(name, sizeof name, "dominant_type");
    if (i == RP_MAP_CLASS)
      snprintf(name, sizeof name, strcmp(r->mode, "multi") == 0 ? "n_types" : "spot_class");
    if (i == RP_MAP_NUMI) snprintf(name, sizeof name, "numi");
    if (i == RP_MAP_FILTERED) snprintf(name, sizeof name, "filtered");
    if (i >= RP_MAP_FIXED) snprintf(name, sizeof name, "type_%s", r->types.items[i - RP_MAP_FIXED]);
    rp_file_name(paths[i], sizeof paths[i], o->png_dir, name);
    rc = rp_write_png(r, &cv->maps[i], i < RP_MAP_FIXED ? &cv->main : &cv->small, i, o->dpi,
                      paths[i]);
    if (rc == 0) written = i + 1;
  }
  for (int i = 0; rc != 0 && i < written; i++)
    if (paths[i][0]) unlink(paths[i]);
  free(paths);
  return rc;
}

/* ------------------------------------------------------------------ the report */

int rctd_report_write(const rctd_report_opts *o, char *err, size_t err_len) {
  rp_result r = {.path = o->result, .err = err, .err_len = err_len};
  rp_stats s = {0};
  rp_canvas html_cv = {0}, png_cv = {0};
  FILE *out = NULL;
  err[0] = 0;
  if (o->png_dir) {
    struct stat st;
    if (stat(o->png_dir, &st) != 0 && mkdir(o->png_dir, 0777) != 0)
      return rctd_fail(err, err_len, "%s: cannot create the directory: %s", o->png_dir,
                       strerror(errno));
    if (access(o->png_dir, W_OK) != 0)
      return rctd_fail(err, err_len, "%s: cannot write into the directory: %s", o->png_dir,
                       strerror(errno));
  }
  if (o->html) { /* first, so that an unwritable output fails before the work */
    out = rctd_out_open(o->html, err, err_len);
    if (!out) return -1;
  }
  rctd_h5_guard_enter(o->result); /* every read of the result, until the leave below */
  int rc = rp_open(&r);
  if (rc == 0) rc = rp_scan(&r, &s, NULL, 0);
  if (rc == 0) {
    s.dominant_k = calloc((size_t)r.K, sizeof *s.dominant_k);
    s.prop_sum_k = calloc((size_t)r.K, sizeof *s.prop_sum_k);
    s.pairs_kk = calloc((size_t)r.K * (size_t)r.K, sizeof *s.pairs_kk);
    if (!s.dominant_k || !s.prop_sum_k || !s.pairs_kk) rc = rp_fail(&r, "out of memory");
  }
  int maps = r.spatial >= 0;
  if (rc == 0 && o->png_dir && !maps)
    rc = rp_fail(&r, "no coordinates (obsm/spatial): no maps to write with --png");
  int main_w = o->html_width > 0 ? o->html_width : RP_HTML_MAIN_W;
  if (rc == 0 && maps && o->html &&
      rp_canvas_init(&html_cv, &r, &s, main_w, main_w * RP_HTML_TYPE_W / RP_HTML_MAIN_W) < 0)
    rc = rp_fail(&r, "out of memory");
  int dpi = o->dpi > 0 ? o->dpi : RCTD_REPORT_DEFAULT_DPI;
  if (rc == 0 && o->png_dir && rp_canvas_init(&png_cv, &r, &s, 6 * dpi, 3 * dpi) < 0)
    rc = rp_fail(&r, "out of memory");
  /* the drawing pass: statistics and the HTML maps, then the PNG maps if asked */
  if (rc == 0) rc = rp_scan(&r, &s, maps && o->html ? &html_cv : NULL, 1);
  if (rc == 0 && o->png_dir) {
    rp_stats again = s;
    again.dominant_k = calloc((size_t)r.K, sizeof *again.dominant_k);
    again.prop_sum_k = calloc((size_t)r.K, sizeof *again.prop_sum_k);
    again.pairs_kk = calloc((size_t)r.K * (size_t)r.K, sizeof *again.pairs_kk);
    rc = again.dominant_k && again.prop_sum_k && again.pairs_kk ? rp_scan(&r, &again, &png_cv, 1)
                                                                : rp_fail(&r, "out of memory");
    free(again.dominant_k), free(again.prop_sum_k), free(again.pairs_kk);
  }
  rctd_h5_guard_leave();
  if (rc == 0 && o->sigma_stream && rp_read_stream_trace(&r, o->sigma_stream, err, err_len) < 0)
    rc = -1;
  if (rc == 0 && out && rp_html(out, &r, &s, maps ? &html_cv : NULL, o) < 0)
    rc = rp_fail(&r, "cannot write the report (out of memory or disk full)");
  if (rc == 0 && o->png_dir) rc = rp_pngs(&r, &png_cv, o);
  if (rc == 0 && out) { /* last: a failure before leaves no report */
    rc = rctd_out_commit(out, err, err_len);
    out = NULL;
  }
  if (out) rctd_out_abort(out);
  rp_canvas_free(&html_cv);
  rp_canvas_free(&png_cv);
  free(s.dominant_k), free(s.prop_sum_k), free(s.pairs_kk);
  rp_close(&r);
  return rc;
}
