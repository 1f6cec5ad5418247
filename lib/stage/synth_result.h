/* A synthetic doublet-mode result h5ad with a known layout, written through the h5ad writer
 * (lib/io/output.h), for the report's tests and benchmark (bench/report.c).
 *
 * Layout: S = ceil(sqrt(n_pixels)); pixel i sits at x = i mod S, y = i div S (obsm/spatial) and
 * its type is k = x K / S (vertical bands, types "type01".."typeKK").  Pixels with
 * i mod 10 = 7 are filtered (not fitted).  Rows with y < S / 10 are doublets of k and
 * (k + 1) mod K (proportions 0.6 / 0.4, doublet_certain); the others are pure singlets of k
 * (proportion 1).  nUMI = 100 + i mod 900. */
#ifndef RCTD_SYNTH_RESULT_H
#define RCTD_SYNTH_RESULT_H
#include <stddef.h>
#include <stdint.h>

/* WITH_COORDS 0: no obsm/spatial.  0, or -1 with a message in err. */
int rctd_synth_result_write(const char *path, int64_t n_pixels, int n_types, int with_coords,
                            char *err, size_t err_len);

#endif
