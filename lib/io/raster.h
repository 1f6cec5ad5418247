/* Indexed-colour rasters for the report's maps (lib/stage/report.c): points drawn as discs into a
 * byte per cell, a 256-entry palette, and a PNG encoder (zlib; colour type 3, pHYs for the dpi).
 *
 * Palettes: rctd_raster_qualitative gives up to 60 well separated colours (greedy farthest point
 * in CIELAB over an RGB grid, avoiding greys and the lightest and darkest colours, so that grey
 * can mark filtered pixels on a white background); rctd_raster_viridis maps [0, 1] to the
 * viridis scale (linear interpolation between its published key colours). */
#ifndef RCTD_RASTER_H
#define RCTD_RASTER_H
#include <stddef.h>
#include <stdint.h>

#define RCTD_RASTER_MAX_QUALITATIVE 60

typedef struct {
  uint8_t r, g, b;
} rctd_rgb;

/* Colour I (0-based, < RCTD_RASTER_MAX_QUALITATIVE) of the qualitative palette. */
rctd_rgb rctd_raster_qualitative(int i);
/* Viridis at T in [0, 1] (clamped). */
rctd_rgb rctd_raster_viridis(double t);

typedef struct {
  int width, height;
  uint8_t *cells; /* width x height palette indices, row 0 at the top; 0 = background */
} rctd_raster;

int rctd_raster_init(rctd_raster *r, int width, int height); /* 0, or -1 out of memory */
void rctd_raster_free(rctd_raster *r);
/* Fills a disc of RADIUS cells centred at (X, Y) (cell units, y down) with INDEX; a radius below
 * 0.75 fills the one cell.  ONLY_EMPTY: leaves cells already drawn. */
void rctd_raster_disc(rctd_raster *r, double x, double y, double radius, uint8_t index,
                      int only_empty);

/* Fills the cells that a square of half side HALF centred at (X, Y) touches (dense maps: no
 * gaps between neighbours one spacing apart). */
void rctd_raster_square(rctd_raster *r, double x, double y, double half, uint8_t index,
                        int only_empty);

/* Encodes R with PALETTE (N_COLOURS entries) as a PNG at DPI (0: no pHYs), with a tEXt chunk
 * KEY = TEXT when both are given, into a malloc'd buffer.  0, or -1 out of memory. */
int rctd_png_encode(const rctd_raster *r, const rctd_rgb *palette, int n_colours, int dpi,
                    const char *key, const char *text, unsigned char **out, size_t *out_len);

/* Base64 of DATA (RFC 4648, no line breaks), malloc'd and NUL-terminated; NULL out of memory. */
char *rctd_base64(const unsigned char *data, size_t len);

#endif
