/* rctd-view: list the records of an rctd stream, or print one as TSV. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "stream.h"

static int view_dense_csr;
static int64_t view_head;

static rctd_opt view_opts[] = {{"dense", 0, RCTD_OPT_FLAG, &view_dense_csr, "false",
                                "print a CSR record as a dense table, not triplets", NULL, NULL},
                               {"head", 'n', RCTD_OPT_I64, &view_head, "0",
                                "print only the first N rows (0 = all)", NULL, "N"},
                               {0}};

/* Strings records seen so far, kept to print row/column names. */
typedef struct {
  rctd_record *items;
  size_t n, cap;
} view_names;

static const rctd_record *view_names_find(const view_names *names, const char *name) {
  if (!name) return NULL;
  for (size_t i = names->n; i-- > 0;)
    if (strcmp(names->items[i].name, name) == 0) return &names->items[i];
  return NULL;
}

static void view_names_free(view_names *names) {
  for (size_t i = 0; i < names->n; i++) rctd_record_free(&names->items[i]);
  free(names->items);
}

/* Writes S with tabs, newlines and backslashes escaped, so every TSV cell stays one cell. */
static void view_put_cell(FILE *out, const char *s) {
  for (; *s; s++) {
    switch (*s) {
      case '\t':
        fputs("\\t", out);
        break;
      case '\n':
        fputs("\\n", out);
        break;
      case '\r':
        fputs("\\r", out);
        break;
      case '\\':
        fputs("\\\\", out);
        break;
      default:
        fputc(*s, out);
    }
  }
}

static void view_put_value(FILE *out, rctd_dtype dtype, const void *base, uint64_t i) {
  switch (dtype) {
    case RCTD_F64:
      fprintf(out, "%.17g", ((const double *)base)[i]);
      break;
    case RCTD_F32:
      fprintf(out, "%.9g", (double)((const float *)base)[i]);
      break;
    case RCTD_I32:
      fprintf(out, "%" PRId32, ((const int32_t *)base)[i]);
      break;
    case RCTD_I64:
      fprintf(out, "%" PRId64, ((const int64_t *)base)[i]);
      break;
    case RCTD_U8:
      fprintf(out, "%u", (unsigned)((const uint8_t *)base)[i]);
      break;
  }
}

/* Name I of a names record, or the 0-based index when there is none (or it is too short). */
static void view_put_name(FILE *out, const rctd_record *names, uint64_t i) {
  if (names && i < names->rows)
    view_put_cell(out, names->strings[i]);
  else
    fprintf(out, "%" PRIu64, i);
}

/* Looks up a names reference; a missing one is reported once and printed as indices. */
static const rctd_record *view_names_for(const view_names *names, const char *ref,
                                         const char *label) {
  if (!ref) return NULL;
  const rctd_record *rec = view_names_find(names, ref);
  if (!rec)
    rctd_log_warn("%s: names record '%s' is not in the stream before this record; printing indices",
                  label, ref);
  return rec;
}

static void view_header_row(FILE *out, const rctd_record_info *info, const rctd_record *cols) {
  if (!cols) return;
  if (info->row_names) view_put_cell(out, info->row_names);
  for (uint64_t j = 0; j < info->cols; j++) {
    if (j || info->row_names) fputc('\t', out);
    view_put_name(out, cols, j);
  }
  fputc('\n', out);
}

/* Prints one row of a dense matrix given as an element array. */
static void view_dense_row(FILE *out, const rctd_record_info *info, const rctd_record *rows,
                           uint64_t row, const void *base, uint64_t offset) {
  if (info->row_names) {
    view_put_name(out, rows, row);
    fputc('\t', out);
  }
  for (uint64_t j = 0; j < info->cols; j++) {
    if (j) fputc('\t', out);
    view_put_value(out, info->dtype, base, offset + j);
  }
  fputc('\n', out);
}

/* Prints one CSR row densely: zeros except at its entries. */
static void view_csr_dense_row(FILE *out, const rctd_record_info *info, const rctd_record *rows,
                               uint64_t row, const rctd_chunk *c, uint64_t i, double *row_buf) {
  memset(row_buf, 0, info->cols * sizeof *row_buf);
  for (int64_t e = c->indptr[i]; e < c->indptr[i + 1]; e++) {
    double v = 0;
    switch (info->dtype) {
      case RCTD_F64:
        v = ((const double *)c->values)[e];
        break;
      case RCTD_F32:
        v = ((const float *)c->values)[e];
        break;
      case RCTD_I32:
        v = ((const int32_t *)c->values)[e];
        break;
      case RCTD_I64:
        v = (double)((const int64_t *)c->values)[e];
        break;
      case RCTD_U8:
        v = ((const uint8_t *)c->values)[e];
        break;
    }
    row_buf[c->indices[e]] += v;
  }
  if (info->row_names) {
    view_put_name(out, rows, row);
    fputc('\t', out);
  }
  for (uint64_t j = 0; j < info->cols; j++) fprintf(out, "%s%.17g", j ? "\t" : "", row_buf[j]);
  fputc('\n', out);
}

static void view_csr_triplets(FILE *out, const rctd_record *rows, const rctd_record *cols,
                              const rctd_record_info *info, uint64_t row, const rctd_chunk *c,
                              uint64_t i) {
  for (int64_t e = c->indptr[i]; e < c->indptr[i + 1]; e++) {
    view_put_name(out, rows, row);
    fputc('\t', out);
    view_put_name(out, cols, (uint64_t)c->indices[e]);
    fputc('\t', out);
    view_put_value(out, info->dtype, c->values, (uint64_t)e);
    fputc('\n', out);
  }
}

/* Across the records of one name (a pixel block's records repeat per block): the header is
 * printed once, rows are numbered on from the earlier records, --head counts them all. */
typedef struct {
  int n_printed;     /* records printed so far */
  uint64_t row_base; /* rows of those records */
} view_state;

/* Prints the current record of R chunk by chunk. */
static int view_print(rctd_reader *r, const rctd_record_info *info, const view_names *names,
                      view_state *st, FILE *out) {
  const char *label = rctd_reader_label(r);
  const rctd_record *rows = view_names_for(names, info->row_names, label);
  const rctd_record *cols = view_names_for(names, info->col_names, label);
  double *row_buf = NULL;
  const int header = st->n_printed++ == 0;
  if (info->kind == RCTD_DENSE && header) view_header_row(out, info, cols);
  if (info->kind == RCTD_CSR && view_dense_csr) {
    if (header) view_header_row(out, info, cols);
    row_buf = malloc((info->cols ? info->cols : 1) * sizeof *row_buf);
    if (!row_buf) {
      rctd_log_error("%s: out of memory", label);
      return -1;
    }
  }
  if (info->kind == RCTD_CSR && !view_dense_csr && header)
    fprintf(out, "%s\t%s\tvalue\n", info->row_names ? info->row_names : "row",
            info->col_names ? info->col_names : "col");
  const uint64_t limit = view_head > 0 ? (uint64_t)view_head : UINT64_MAX;
  const uint64_t base = st->row_base;
  if (base >= limit) {
    free(row_buf);
    return 0;
  }
  rctd_chunk c;
  int rc;
  while ((rc = rctd_reader_chunk(r, &c)) == 1) {
    st->row_base = base + c.first_row + c.rows;
    for (uint64_t i = 0; i < c.rows; i++) {
      uint64_t row = c.first_row + i;
      if (base + row >= limit) break;
      if (!rows) row += base; /* printed as an index: numbered on across the records */
      switch (info->kind) {
        case RCTD_DENSE:
          view_dense_row(out, info, rows, row, c.data, i * info->cols);
          break;
        case RCTD_CSR:
          if (view_dense_csr)
            view_csr_dense_row(out, info, rows, row, &c, i, row_buf);
          else
            view_csr_triplets(out, rows, cols, info, row, &c, i);
          break;
        case RCTD_STRINGS:
          view_put_cell(out, c.strings[i]);
          fputc('\n', out);
          break;
        case RCTD_META:
          view_put_cell(out, c.strings[2 * i]);
          fputc('\t', out);
          view_put_cell(out, c.strings[2 * i + 1]);
          fputc('\n', out);
          break;
      }
    }
    if (base + c.first_row + c.rows >= limit) {
      rc = 0;
      break;
    }
  }
  free(row_buf);
  if (rc < 0) rctd_log_error("%s", rctd_reader_error(r));
  return rc;
}

/* Lists every record; decodes every chunk so that the listing also verifies the stream. */
static int view_list(rctd_reader *r, FILE *out) {
  fprintf(out, "name\ttype\tshape\tchunks\tdetails\n");
  const rctd_record_info *info;
  int rc;
  while ((rc = rctd_reader_next(r, &info)) == 1) {
    uint64_t chunks = 0, nnz = 0;
    rctd_chunk c;
    int crc;
    while ((crc = rctd_reader_chunk(r, &c)) == 1) {
      chunks++;
      nnz += c.nnz;
    }
    if (crc < 0) {
      rc = -1;
      break;
    }
    uint64_t rows = rctd_reader_rows_read(r);
    view_put_cell(out, info->name);
    if (info->kind == RCTD_DENSE)
      fprintf(out, "\t%s %s\t", info->ndim == 1 ? "vector" : "dense", rctd_dtype_name(info->dtype));
    else if (info->kind == RCTD_CSR)
      fprintf(out, "\tcsr %s\t", rctd_dtype_name(info->dtype));
    else
      fprintf(out, "\t%s\t", rctd_kind_name(info->kind));
    if ((info->kind == RCTD_DENSE && info->ndim == 2) || info->kind == RCTD_CSR)
      fprintf(out, "%" PRIu64 "x%" PRIu64, rows, info->cols);
    else
      fprintf(out, "%" PRIu64, rows);
    fprintf(out, "\t%" PRIu64 "\t", chunks);
    int sep = 0;
    if (info->kind == RCTD_CSR) fprintf(out, "nnz=%" PRIu64, nnz), sep = 1;
    for (size_t i = 0; i < info->n_attrs; i++) {
      fprintf(out, "%s", sep ? " " : "");
      view_put_cell(out, info->attr_keys[i]);
      fputc('=', out);
      view_put_cell(out, info->attr_values[i]);
      sep = 1;
    }
    if (!sep) fputc('-', out);
    fputc('\n', out);
  }
  if (rc < 0) {
    rctd_log_error("%s", rctd_reader_error(r));
    return -1;
  }
  return 0;
}

/* Keeps the strings record just read for names, replacing an earlier one of the same name (a
 * pixel block's barcodes replace the previous block's), so memory stays one block's worth. */
static int view_names_keep(rctd_reader *r, view_names *names, const char *name) {
  rctd_record *slot = (rctd_record *)view_names_find(names, name);
  if (!slot && names->n == names->cap) {
    size_t cap = names->cap ? 2 * names->cap : 8;
    rctd_record *p = realloc(names->items, cap * sizeof *p);
    if (!p) {
      rctd_log_error("%s: out of memory", rctd_reader_label(r));
      return -2;
    }
    names->items = p;
    names->cap = cap;
  }
  rctd_record rec;
  if (rctd_reader_load(r, &rec) != 0) return -1;
  if (slot)
    rctd_record_free(slot);
  else
    slot = &names->items[names->n++];
  *slot = rec;
  return 0;
}

/* Prints every record named NAME (one per pixel block for the blocks' records), keeping the
 * strings records before each for its names. */
static int view_record(rctd_reader *r, const char *name, FILE *out) {
  view_names names = {0};
  view_state st = {0};
  const rctd_record_info *info;
  int rc;
  while ((rc = rctd_reader_next(r, &info)) == 1) {
    if (strcmp(info->name, name) == 0) {
      if (view_print(r, info, &names, &st, out) != 0) {
        rc = -3;
        break;
      }
      continue; /* its chunks are read */
    }
    if (info->kind != RCTD_STRINGS) continue;
    if ((rc = view_names_keep(r, &names, info->name)) != 0) break;
  }
  if (rc == 0 && st.n_printed == 0) {
    rctd_log_error("%s: no record named '%s' (run 'rctd-view %s' to list the records)",
                   rctd_reader_label(r), name, rctd_reader_label(r));
    rc = -1;
  } else if (rc == -1) {
    rctd_log_error("%s", rctd_reader_error(r));
  }
  view_names_free(&names);
  return rc < 0 ? -1 : 0;
}

int main(int argc, char **argv) {
  rctd_cli cli = {.tool = "rctd-view",
                  .args_usage = "STREAM [RECORD]",
                  .summary =
                      "List the records of an rctd stream ('-' = standard input), or print "
                      "RECORD as TSV.",
                  .description =
                      "The listing (name, type, shape, chunks, details) decodes and checks every "
                      "chunk.\nA record prints with its row and column names when it has them: "
                      "dense and vector records\nas a table, CSR records as row/column/value "
                      "triplets (--dense: a table), string lists\none per line, metadata as "
                      "key/value lines.  Tabs, newlines and backslashes in names are\nescaped "
                      "as \\t, \\n and \\\\.",
                  .opts = view_opts,
                  .min_args = 1,
                  .max_args = 2,
                  .has_output = 1};
  int rc = rctd_cli_parse(&cli, argc, argv);
  if (rc != RCTD_CLI_CONTINUE) {
    rctd_cli_free(&cli);
    return rc;
  }
  if (view_head < 0) {
    rc = rctd_cli_usage_error(&cli, "option --head: must be 0 or more");
    rctd_cli_free(&cli);
    return rc;
  }
  char err[RCTD_ERR_LEN];
  rctd_reader *r = rctd_reader_open(cli.args[0], err, sizeof err);
  if (!r) {
    rctd_log_error("%s", err);
    rctd_cli_free(&cli);
    return RCTD_EXIT_RUNTIME;
  }
  FILE *out = rctd_out_open(cli.output, err, sizeof err);
  if (!out) {
    rctd_log_error("%s", err);
    rctd_reader_close(r);
    rctd_cli_free(&cli);
    return RCTD_EXIT_RUNTIME;
  }
  rc = cli.n_args == 2 ? view_record(r, cli.args[1], out) : view_list(r, out);
  rctd_reader_close(r);
  if (rc != 0) {
    rctd_out_abort(out);
  } else if (rctd_out_commit(out, err, sizeof err) != 0) {
    rctd_log_error("%s", err);
    rc = -1;
  }
  rctd_cli_free(&cli);
  return rc == 0 ? RCTD_EXIT_OK : RCTD_EXIT_RUNTIME;
}
