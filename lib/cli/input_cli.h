/* The reader options of a tool that reads one count matrix (rctd-reference, rctd-normalize),
 * declared once: --format, --cell-type-col, --numi-col, --cell-type-table, --numi-table,
 * --coords-table, --layer, --gene-names, --allow-noninteger, --tmp-dir.  Their config keys carry
 * the input's prefix ("reference_", "spatial_"), but for --coords-table (coords_table) and
 * --tmp-dir (tmp_dir).
 *
 *   static rctd_input_cli in_cli;
 *   static rctd_opt opts[32] = {{"min-umi", ...}, {0}};
 *   rctd_input_cli_add_opts(&in_cli, "reference_", "input format", RCTD_INPUT_CLI_CELL_TYPES,
 *                           opts, sizeof opts / sizeof *opts);
 *   ... rctd_cli_parse ...
 *   rctd_input_options in_opts;
 *   if (rctd_input_cli_options(&in_cli, RCTD_CELL_TYPES_REQUIRED, &in_opts) < 0) usage error */
#ifndef RCTD_INPUT_CLI_H
#define RCTD_INPUT_CLI_H
#include <stddef.h>

#include "cli.h"
#include "input.h"

/* Optional groups of options. */
enum {
  RCTD_INPUT_CLI_CELL_TYPES = 1, /* --cell-type-col, --cell-type-table */
  RCTD_INPUT_CLI_COORDS = 2      /* --coords-table */
};

#define RCTD_INPUT_CLI_MAX_OPTS 10

typedef struct {
  /* Parsed values: text as given (NULL = not given), --format "auto" by default. */
  const char *format, *cell_type_col, *numi_col, *cell_type_table, *numi_table, *coords_table,
      *layer, *gene_names, *tmp_dir;
  int allow_noninteger;
  /* private: the prefixed config keys and --format's help */
  char keys_[RCTD_INPUT_CLI_MAX_OPTS][64];
  char format_help_[96];
} rctd_input_cli;

/* Appends the reader's options (those of PARTS, an or of the groups above) to the
 * NULL-terminated table OPTS of CAPACITY entries, after its last entry, with their values going
 * to V (which must outlive the parse).  FORMAT_WHAT starts --format's help ("input format").
 * Returns 0, or -1 when the table has no room (a programming error). */
int rctd_input_cli_add_opts(rctd_input_cli *v, const char *key_prefix, const char *format_what,
                            unsigned parts, rctd_opt *opts, size_t capacity);

/* Reader options from the parsed values, with cell types NEED.  Returns 0, or -1 when --format
 * names no format (OPTIONS then holds the rest). */
int rctd_input_cli_options(const rctd_input_cli *v, rctd_cell_type_need need,
                           rctd_input_options *options);

#endif
