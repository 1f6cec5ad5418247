/* The synthetic slide generator (lib/stage/synth_slide.c) writes files the real readers take: the
 * reference h5ad with its cell types, the spatial 10x HDF5 with shared gene names; sizes,
 * count totals and determinism as the recipe says. */
#include <stdlib.h>

#include "input.h"
#include "synth_slide.h"
#include "test.h"

static void ss_opts(rctd_slide_opts *o) {
  rctd_slide_opts_default(o);
  o->n_types = 4;
  o->markers_per_type = 5;
  o->ref_genes = 60;
  o->cells_per_type = 30;
  o->ref_numi_median = 500;
  o->spatial_genes = 50;
  o->n_pixels = 5000; /* more than one write block */
}

/* Totals and shape of an input; -1 on a read error. */
static int ss_scan(const char *path, int cell_types, int64_t *rows, int64_t *genes, double *total,
                   double *min_row) {
  rctd_input_options io;
  rctd_input_options_init(&io);
  io.cell_types = cell_types ? RCTD_CELL_TYPES_REQUIRED : RCTD_CELL_TYPES_IGNORE;
  char err[512];
  rctd_input *in = rctd_input_open(path, &io, err, sizeof err);
  if (!in) {
    fprintf(stderr, "  %s\n", err);
    return -1;
  }
  *rows = rctd_input_n_rows(in);
  *genes = rctd_input_n_genes(in);
  *total = 0;
  *min_row = 1e300;
  rctd_csr_chunk ch;
  rctd_csr_chunk_init(&ch);
  int got;
  while ((got = rctd_input_next_chunk(in, 1000, &ch, err, sizeof err)) == 1)
    for (int64_t r = 0; r < ch.n_rows; r++) {
      double s = 0;
      for (int64_t k = ch.row_ptr[r]; k < ch.row_ptr[r + 1]; k++) s += ch.values[k];
      *total += s;
      if (s < *min_row) *min_row = s;
    }
  if (cell_types && rctd_input_n_cell_types(in) != 4) got = -1;
  rctd_csr_chunk_free(&ch);
  rctd_input_close(in);
  return got;
}

TEST(synth_slide_files_read_back) {
  rctd_slide_opts o;
  ss_opts(&o);
  char ref[4096], sp[4096], sp2[4096], err[512];
  snprintf(ref, sizeof ref, "%s/slide_ref.h5ad", test_tmp_dir());
  snprintf(sp, sizeof sp, "%s/slide_sp.h5", test_tmp_dir());
  snprintf(sp2, sizeof sp2, "%s/slide_sp2.h5", test_tmp_dir());
  CHECK_MSG(rctd_slide_write(&o, ref, sp, err, sizeof err) == 0, "%s", err);
  int64_t rows, genes;
  double total, min_row;
  CHECK(ss_scan(ref, 1, &rows, &genes, &total, &min_row) == 0);
  CHECK(rows == 120 && genes == 60);
  CHECK(min_row >= 100); /* nUMI floor */
  CHECK(total > 120 * 300.0 && total < 120 * 900.0);
  CHECK(ss_scan(sp, 0, &rows, &genes, &total, &min_row) == 0);
  CHECK(rows == 5000 && genes == 50);
  CHECK(total > 5000 * 250.0 && total < 5000 * 600.0); /* median nUMI 350, lognormal */
  /* the same seed gives the same counts; another seed others */
  double total2;
  CHECK_MSG(rctd_slide_write(&o, NULL, sp2, err, sizeof err) == 0, "%s", err);
  CHECK(ss_scan(sp2, 0, &rows, &genes, &total2, &min_row) == 0 && total2 == total);
  o.seed++;
  CHECK_MSG(rctd_slide_write(&o, NULL, sp2, err, sizeof err) == 0, "%s", err);
  CHECK(ss_scan(sp2, 0, &rows, &genes, &total2, &min_row) == 0 && total2 != total);
  CHECK(rctd_slide_opts_recipe(&o, "xenium") == 0 && o.spatial_genes == 400);
  CHECK(rctd_slide_opts_recipe(&o, "nonsense") == -1);
}
