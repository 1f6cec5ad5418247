/* Indexed rasters, palettes and a PNG encoder (see raster.h). */
#include "raster.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* ---- palettes ---- */

static double raster_lab_f(double t) {
  return t > 216.0 / 24389.0 ? cbrt(t) : (24389.0 / 27.0 * t + 16.0) / 116.0;
}

static double raster_linear(double c) {
  return c <= 0.04045 ? c / 12.92 : pow((c + 0.055) / 1.055, 2.4);
}

/* sRGB to CIELAB (D65). */
static void raster_lab(const rctd_rgb *c, double *lab) {
  double r = raster_linear(c->r / 255.0), g = raster_linear(c->g / 255.0),
         b = raster_linear(c->b / 255.0);
  double x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047;
  double y = 0.2126 * r + 0.7152 * g + 0.0722 * b;
  double z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883;
  double fx = raster_lab_f(x), fy = raster_lab_f(y), fz = raster_lab_f(z);
  lab[0] = 116 * fy - 16;
  lab[1] = 500 * (fx - fy);
  lab[2] = 200 * (fy - fz);
}

static rctd_rgb raster_palette[RCTD_RASTER_MAX_QUALITATIVE];
static pthread_once_t raster_palette_once = PTHREAD_ONCE_INIT;

/* Greedy farthest point: each colour is the grid colour farthest (CIELAB distance) from those
 * already chosen and from white and grey; the first is a strong blue.  Deterministic. */
static void raster_palette_build(void) {
  enum { STEPS = 12, N = STEPS * STEPS * STEPS };
  static rctd_rgb cand[N];
  static double lab[N][3], dist[N];
  int n = 0;
  for (int i = 0; i < STEPS; i++)
    for (int j = 0; j < STEPS; j++)
      for (int k = 0; k < STEPS; k++) {
        rctd_rgb c = {(uint8_t)(i * 255 / (STEPS - 1)), (uint8_t)(j * 255 / (STEPS - 1)),
                      (uint8_t)(k * 255 / (STEPS - 1))};
        double l[3];
        raster_lab(&c, l);
        double chroma = sqrt(l[1] * l[1] + l[2] * l[2]);
        if (l[0] < 25 || l[0] > 88 || chroma < 25) continue; /* too dark, light or grey */
        cand[n] = c;
        memcpy(lab[n], l, sizeof l);
        dist[n] = 1e300;
        n++;
      }
  const rctd_rgb avoid[3] = {{255, 255, 255}, {190, 190, 190}, {0, 0, 0}};
  for (int a = 0; a < 4; a++) {
    double l[3];
    rctd_rgb first = {31, 119, 180};
    raster_lab(a < 3 ? &avoid[a] : &first, l);
    for (int c = 0; c < n; c++) {
      double d = 0;
      for (int t = 0; t < 3; t++) d += (lab[c][t] - l[t]) * (lab[c][t] - l[t]);
      if (d < dist[c]) dist[c] = d;
    }
    if (a == 3) raster_palette[0] = first;
  }
  for (int p = 1; p < RCTD_RASTER_MAX_QUALITATIVE; p++) {
    int best = 0;
    for (int c = 1; c < n; c++)
      if (dist[c] > dist[best]) best = c;
    raster_palette[p] = cand[best];
    for (int c = 0; c < n; c++) {
      double d = 0;
      for (int t = 0; t < 3; t++) d += (lab[c][t] - lab[best][t]) * (lab[c][t] - lab[best][t]);
      if (d < dist[c]) dist[c] = d;
    }
  }
}

rctd_rgb rctd_raster_qualitative(int i) {
  pthread_once(&raster_palette_once, raster_palette_build);
  if (i < 0) i = 0;
  return raster_palette[i % RCTD_RASTER_MAX_QUALITATIVE];
}

rctd_rgb rctd_raster_viridis(double t) {
  /* viridis' key colours at 0, 1/9, ..., 1 */
  static const uint8_t key[10][3] = {{68, 1, 84},    {72, 40, 120},  {62, 73, 137},  {49, 104, 142},
                                     {38, 130, 142}, {31, 158, 137}, {53, 183, 121}, {110, 206, 88},
                                     {181, 222, 43}, {253, 231, 37}};
  if (!(t > 0)) t = 0;
  if (t > 1) t = 1;
  double s = t * 9;
  int i = (int)s;
  if (i > 8) i = 8;
  double f = s - i;
  rctd_rgb c;
  c.r = (uint8_t)lround(key[i][0] + f * (key[i + 1][0] - key[i][0]));
  c.g = (uint8_t)lround(key[i][1] + f * (key[i + 1][1] - key[i][1]));
  c.b = (uint8_t)lround(key[i][2] + f * (key[i + 1][2] - key[i][2]));
  return c;
}

/* ---- rasters ---- */

int rctd_raster_init(rctd_raster *r, int width, int height) {
  r->width = width;
  r->height = height;
  r->cells = calloc((size_t)width * (size_t)height, 1);
  return r->cells ? 0 : -1;
}

void rctd_raster_free(rctd_raster *r) {
  free(r->cells);
  memset(r, 0, sizeof *r);
}

void rctd_raster_disc(rctd_raster *r, double x, double y, double radius, uint8_t index,
                      int only_empty) {
  if (radius < 0.75) {
    int cx = (int)floor(x), cy = (int)floor(y);
    if (cx < 0 || cy < 0 || cx >= r->width || cy >= r->height) return;
    uint8_t *cell = &r->cells[(size_t)cy * r->width + cx];
    if (!only_empty || *cell == 0) *cell = index;
    return;
  }
  int y0 = (int)floor(y - radius), y1 = (int)ceil(y + radius);
  int x0 = (int)floor(x - radius), x1 = (int)ceil(x + radius);
  if (y0 < 0) y0 = 0;
  if (x0 < 0) x0 = 0;
  if (y1 > r->height) y1 = r->height;
  if (x1 > r->width) x1 = r->width;
  double r2 = radius * radius;
  for (int cy = y0; cy < y1; cy++) {
    double dy = cy + 0.5 - y;
    uint8_t *row = r->cells + (size_t)cy * r->width;
    for (int cx = x0; cx < x1; cx++) {
      double dx = cx + 0.5 - x;
      if (dx * dx + dy * dy > r2) continue;
      if (!only_empty || row[cx] == 0) row[cx] = index;
    }
  }
}

void rctd_raster_square(rctd_raster *r, double x, double y, double half, uint8_t index,
                        int only_empty) {
  int x0 = (int)floor(x - half), x1 = (int)floor(x + half);
  int y0 = (int)floor(y - half), y1 = (int)floor(y + half);
  if (x0 < 0) x0 = 0;
  if (y0 < 0) y0 = 0;
  if (x1 >= r->width) x1 = r->width - 1;
  if (y1 >= r->height) y1 = r->height - 1;
  for (int cy = y0; cy <= y1; cy++) {
    uint8_t *row = r->cells + (size_t)cy * r->width;
    for (int cx = x0; cx <= x1; cx++)
      if (!only_empty || row[cx] == 0) row[cx] = index;
  }
}

/* ---- PNG ---- */

typedef struct {
  unsigned char *data;
  size_t len, cap;
  int failed;
} png_buf;

static void png_put(png_buf *b, const void *data, size_t len) {
  if (b->failed) return;
  if (b->len + len > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + len) cap *= 2;
    unsigned char *p = realloc(b->data, cap);
    if (!p) {
      b->failed = 1;
      return;
    }
    b->data = p;
    b->cap = cap;
  }
  memcpy(b->data + b->len, data, len);
  b->len += len;
}

static void png_u32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16);
  p[2] = (unsigned char)(v >> 8), p[3] = (unsigned char)v;
}

static void png_chunk(png_buf *b, const char *type, const unsigned char *data, size_t len) {
  unsigned char head[8], tail[4];
  png_u32(head, (uint32_t)len);
  memcpy(head + 4, type, 4);
  png_put(b, head, 8);
  if (len) png_put(b, data, len);
  uLong crc = crc32(0L, (const Bytef *)type, 4);
  if (len) crc = crc32(crc, data, (uInt)len);
  png_u32(tail, (uint32_t)crc);
  png_put(b, tail, 4);
}

int rctd_png_encode(const rctd_raster *r, const rctd_rgb *palette, int n_colours, int dpi,
                    const char *key, const char *text, unsigned char **out, size_t *out_len) {
  *out = NULL;
  *out_len = 0;
  size_t raw_len = (size_t)r->height * ((size_t)r->width + 1);
  unsigned char *raw = malloc(raw_len);
  uLongf z_len = compressBound((uLong)raw_len);
  unsigned char *z = malloc(z_len);
  png_buf b = {0};
  if (!raw || !z) b.failed = 1;
  for (int y = 0; !b.failed && y < r->height; y++) {
    unsigned char *row = raw + (size_t)y * ((size_t)r->width + 1);
    row[0] = 0; /* filter: none (indexed colour compresses well unfiltered) */
    memcpy(row + 1, r->cells + (size_t)y * r->width, (size_t)r->width);
  }
  if (!b.failed && compress2(z, &z_len, raw, (uLong)raw_len, 6) != Z_OK) b.failed = 1;
  static const unsigned char signature[8] = {137, 80, 78, 71, 13, 10, 26, 10};
  png_put(&b, signature, 8);
  unsigned char ihdr[13];
  png_u32(ihdr, (uint32_t)r->width);
  png_u32(ihdr + 4, (uint32_t)r->height);
  ihdr[8] = 8, ihdr[9] = 3, ihdr[10] = 0, ihdr[11] = 0, ihdr[12] = 0; /* 8-bit palette */
  png_chunk(&b, "IHDR", ihdr, 13);
  if (dpi > 0) {
    unsigned char phys[9];
    uint32_t ppm = (uint32_t)lround(dpi / 0.0254);
    png_u32(phys, ppm);
    png_u32(phys + 4, ppm);
    phys[8] = 1; /* metres */
    png_chunk(&b, "pHYs", phys, 9);
  }
  unsigned char plte[256 * 3];
  if (n_colours > 256) n_colours = 256;
  for (int i = 0; i < n_colours; i++)
    plte[3 * i] = palette[i].r, plte[3 * i + 1] = palette[i].g, plte[3 * i + 2] = palette[i].b;
  png_chunk(&b, "PLTE", plte, (size_t)n_colours * 3);
  if (key && text && strlen(key) < 80 && strlen(text) < 1024) {
    unsigned char t[1104];
    size_t kl = strlen(key), tl = strlen(text);
    memcpy(t, key, kl + 1); /* keyword, NUL, text (Latin-1) */
    memcpy(t + kl + 1, text, tl);
    png_chunk(&b, "tEXt", t, kl + 1 + tl);
  }
  if (!b.failed) png_chunk(&b, "IDAT", z, z_len);
  png_chunk(&b, "IEND", NULL, 0);
  free(raw);
  free(z);
  if (b.failed) {
    free(b.data);
    return -1;
  }
  *out = b.data;
  *out_len = b.len;
  return 0;
}

char *rctd_base64(const unsigned char *data, size_t len) {
  static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  char *out = malloc((len + 2) / 3 * 4 + 1), *p = out;
  if (!out) return NULL;
  size_t i = 0;
  for (; i + 2 < len; i += 3) {
    uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8 | data[i + 2];
    *p++ = digits[v >> 18], *p++ = digits[(v >> 12) & 63];
    *p++ = digits[(v >> 6) & 63], *p++ = digits[v & 63];
  }
  if (i < len) {
    uint32_t v = (uint32_t)data[i] << 16 | (i + 1 < len ? (uint32_t)data[i + 1] << 8 : 0);
    *p++ = digits[v >> 18], *p++ = digits[(v >> 12) & 63];
    *p++ = i + 1 < len ? digits[(v >> 6) & 63] : '=';
    *p++ = '=';
  }
  *p = 0;
  return out;
}
