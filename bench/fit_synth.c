/* Writes a synthetic model stream for the fit benchmark (recipe in lib/synth.h).
 *   fit_synth -n PIXELS [-s SEED] [-d DOUBLET_FRACTION] [-r REFERENCE_DIR] -o OUT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "synth.h"

int main(int argc, char **argv) {
  rctd_synth_opts o;
  rctd_synth_opts_default(&o);
  const char *ref_dir = "../shared/data/vignette/csv/reference", *out = NULL;
  for (int c; (c = getopt(argc, argv, "n:s:d:r:o:")) != -1;) {
    switch (c) {
      case 'n':
        o.n_pixels = atoll(optarg);
        break;
      case 's':
        o.seed = strtoull(optarg, NULL, 10);
        break;
      case 'd':
        o.doublet_fraction = atof(optarg);
        break;
      case 'r':
        ref_dir = optarg;
        break;
      case 'o':
        out = optarg;
        break;
      default:
        fprintf(stderr, "usage: fit_synth -n PIXELS [-s SEED] [-d FRACTION] [-r DIR] -o OUT\n");
        return 2;
    }
  }
  if (!out) {
    fprintf(stderr, "fit_synth: -o OUT is required\n");
    return 2;
  }
  char err[512];
  rctd_synth_reference ref;
  if (rctd_synth_reference_load(ref_dir, &ref, err, sizeof err) < 0) {
    fprintf(stderr, "fit_synth: %s\n", err);
    return 1;
  }
  rctd_writer *w = rctd_writer_open(out, NULL, err, sizeof err);
  int rc = w ? rctd_synth_write(&ref, &o, w, err, sizeof err) : -1;
  if (rc == 0)
    rc = rctd_writer_close(w, err, sizeof err);
  else if (w)
    rctd_writer_abort(w);
  rctd_synth_reference_free(&ref);
  if (rc < 0) {
    fprintf(stderr, "fit_synth: %s\n", err);
    return 1;
  }
  return 0;
}
