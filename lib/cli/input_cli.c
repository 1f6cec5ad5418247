/* The reader options of the tools that read a count matrix (see input_cli.h). */
#include "input_cli.h"

#include <stdio.h>
#include <string.h>

int rctd_input_cli_add_opts(rctd_input_cli *v, const char *key_prefix, const char *format_what,
                            unsigned parts, rctd_opt *opts, size_t capacity) {
  snprintf(v->format_help_, sizeof v->format_help_, "%s: auto, h5ad, 10x-h5, mtx, csv",
           format_what);
  const struct {
    rctd_opt opt;
    unsigned part; /* 0: always */
    int prefixed;  /* config key = prefix + name with '_'; else the entry's own */
  } all[] = {
      {{"format", 0, RCTD_OPT_STRING, &v->format, "auto", v->format_help_, NULL, "FMT"}, 0, 1},
      {{"cell-type-col", 0, RCTD_OPT_STRING, &v->cell_type_col, NULL,
        "obs column or table column with the cell types (default cell_type)", NULL, "NAME"},
       RCTD_INPUT_CLI_CELL_TYPES,
       1},
      {{"numi-col", 0, RCTD_OPT_STRING, &v->numi_col, NULL,
        "obs column or table column with nUMI (default: count sums, as R)", NULL, "NAME"},
       0,
       1},
      {{"cell-type-table", 0, RCTD_OPT_STRING, &v->cell_type_table, NULL,
        "CSV table barcode, cell type (e.g. spacexr meta_data.csv)", NULL, "FILE"},
       RCTD_INPUT_CLI_CELL_TYPES,
       1},
      {{"numi-table", 0, RCTD_OPT_STRING, &v->numi_table, NULL, "CSV table barcode, nUMI", NULL,
        "FILE"},
       0,
       1},
      {{"coords-table", 0, RCTD_OPT_STRING, &v->coords_table, NULL,
        "CSV table barcode, x, y (e.g. BeadLocationsForR.csv)", "coords_table", "FILE"},
       RCTD_INPUT_CLI_COORDS,
       0},
      {{"layer", 0, RCTD_OPT_STRING, &v->layer, NULL, "h5ad: read layers/NAME instead of X", NULL,
        "NAME"},
       0,
       1},
      {{"gene-names", 0, RCTD_OPT_STRING, &v->gene_names, NULL, "10x: gene 'name' or 'id'", NULL,
        "KIND"},
       0,
       1},
      {{"allow-noninteger", 0, RCTD_OPT_FLAG, &v->allow_noninteger, "false",
        "accept non-integer counts (R's require_int = FALSE)", NULL, NULL},
       0,
       1},
      {{"tmp-dir", 0, RCTD_OPT_STRING, &v->tmp_dir, NULL, "directory for temporary files", NULL,
        "DIR"},
       0,
       0},
  };
  _Static_assert(sizeof all / sizeof *all <= RCTD_INPUT_CLI_MAX_OPTS, "RCTD_INPUT_CLI_MAX_OPTS");
  size_t n = 0;
  while (n < capacity && opts[n].name) n++;
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) {
    if (all[i].part && !(all[i].part & parts)) continue;
    if (n + 1 >= capacity) return -1;
    opts[n] = all[i].opt;
    if (all[i].prefixed) {
      char *key = v->keys_[i];
      snprintf(key, sizeof v->keys_[i], "%s%s", key_prefix, all[i].opt.name);
      for (char *c = key; *c; c++)
        if (*c == '-') *c = '_';
      opts[n].config_key = key;
    }
    n++;
  }
  opts[n] = (rctd_opt){0};
  return 0;
}

int rctd_input_cli_options(const rctd_input_cli *v, rctd_cell_type_need need,
                           rctd_input_options *options) {
  rctd_input_options_init(options);
  options->cell_types = need;
  options->cell_type_col = v->cell_type_col;
  options->numi_col = v->numi_col;
  options->layer = v->layer;
  options->gene_names = v->gene_names;
  options->allow_noninteger = v->allow_noninteger;
  options->cell_type_table = v->cell_type_table;
  options->numi_table = v->numi_table;
  options->coords_table = v->coords_table;
  options->tmp_dir = v->tmp_dir;
  return rctd_input_format_from_name(v->format, &options->format);
}
