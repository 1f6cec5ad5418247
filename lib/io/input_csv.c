/* spacexr CSV counts tables and the barcode-keyed side tables (cell types, nUMI, coordinates).
 *
 * The counts table is genes x cells (first column gene names, header row of barcodes), as
 * spacexr's vignettes ship it.  Rows of the stream are cells, i.e. columns of the text, so the
 * table is parsed once at open and its non-zero entries go through the transpose file
 * (input_transpose.c): one pass over the text, memory bounded by the buffers, not the table.
 * Text may be plain or gzip-compressed; fields may be "quoted". */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "input_internal.h"

/* ---- lines ---- */

struct input_text {
  gzFile gz;
  char *line;
  size_t cap;
  int64_t line_no;
  char *path;
};

input_text *input_text_open(const char *path, char *err, size_t err_size) {
  input_text *text = calloc(1, sizeof *text);
  if (!text) {
    input_fail(err, err_size, path, "out of memory");
    return NULL;
  }
  text->path = strdup(path);
  text->gz = gzopen(path, "rb");
  text->cap = 1 << 16;
  text->line = malloc(text->cap);
  if (!text->gz || !text->path || !text->line) {
    input_fail(err, err_size, path, "cannot open: %s: check the path",
               errno ? strerror(errno) : "out of memory");
    input_text_close(text);
    return NULL;
  }
  gzbuffer(text->gz, 1 << 18);
  return text;
}

char *input_text_line(input_text *text, size_t *len, char *err, size_t err_size) {
  size_t used = 0;
  for (;;) {
    if (used + 2 > text->cap) {
      char *grown = realloc(text->line, text->cap * 2);
      if (!grown) {
        input_fail(err, err_size, text->path, "out of memory");
        return NULL;
      }
      text->line = grown;
      text->cap *= 2;
    }
    if (!gzgets(text->gz, text->line + used,
                (int)(text->cap - used > (size_t)1 << 30 ? (size_t)1 << 30 : text->cap - used))) {
      int code;
      const char *message = gzerror(text->gz, &code);
      if (code != Z_OK && code != Z_STREAM_END) {
        input_fail(err, err_size, text->path, "cannot read line %lld: %s (truncated file?)",
                   (long long)text->line_no + 1, message);
        return NULL;
      }
      if (used == 0) {
        if (err && err_size) err[0] = '\0'; /* end of file, not an error */
        return NULL;
      }
      break;
    }
    used += strlen(text->line + used);
    if (used > 0 && text->line[used - 1] == '\n') break;
  }
  while (used > 0 && (text->line[used - 1] == '\n' || text->line[used - 1] == '\r'))
    text->line[--used] = '\0';
  text->line_no++;
  if (len) *len = used;
  if (err && err_size) err[0] = '\0';
  return text->line;
}

int64_t input_text_line_no(const input_text *text) {
  return text->line_no;
}

void input_text_close(input_text *text) {
  if (!text) return;
  if (text->gz) gzclose(text->gz);
  free(text->line);
  free(text->path);
  free(text);
}

int64_t input_split(char *line, char delim, char **fields, int64_t max_fields) {
  int64_t n = 0;
  char *p = line;
  for (;;) {
    char *out = p, *start = p;
    if (*p == '"') {
      p++;
      for (;;) {
        if (*p == '\0') break;
        if (*p == '"' && p[1] == '"') {
          *out++ = '"';
          p += 2;
        } else if (*p == '"') {
          p++;
          break;
        } else {
          *out++ = *p++;
        }
      }
      while (*p && *p != delim) *out++ = *p++;
    } else {
      while (*p && *p != delim) p++;
      out = p;
    }
    char next = *p;
    *out = '\0';
    if (n < max_fields) fields[n] = start;
    n++;
    if (next == '\0') break;
    p++;
  }
  return n;
}

char input_guess_delim(const char *line) {
  return strchr(line, '\t') && !strchr(line, ',') ? '\t' : ',';
}

/* A header line with no comma or tab but semicolons: a table written with ';' (write.csv2,
 * European spreadsheets), which would otherwise read as one column. */
static int csv_semicolon_header(const char *path, const char *line, char *err, size_t err_size) {
  if (strchr(line, ',') || strchr(line, '\t') || !strchr(line, ';')) return 0;
  return input_fail(err, err_size, path,
                    "the header has no comma or tab but has ';': the table seems separated by "
                    "';'; give a comma- or tab-separated table (R: write.csv)");
}

/* Parses a count field: "" and NA are NaN (refused later with the barcode and gene). */
static int csv_parse_value(const char *field, double *value) {
  if (field[0] == '0' && field[1] == '\0') {
    *value = 0;
    return 0;
  }
  while (*field == ' ') field++;
  if (*field == '\0' || strcmp(field, "NA") == 0 || strcmp(field, "NaN") == 0) {
    *value = NAN;
    return 0;
  }
  char *end;
  *value = strtod(field, &end);
  while (*end == ' ') end++;
  return *end == '\0' ? 0 : -1;
}

/* ---- the counts table ---- */

typedef struct {
  char **fields;
  int64_t cap;
} csv_fields;

static int csv_fields_reserve(csv_fields *f, int64_t n) {
  if (n <= f->cap) return 0;
  char **grown = realloc(f->fields, (size_t)n * sizeof *grown);
  if (!grown) return -1;
  f->fields = grown;
  f->cap = n;
  return 0;
}

/* Splits into f, growing it to fit every field. */
static int64_t csv_split_all(char *line, char delim, csv_fields *f) {
  int64_t guess = 1;
  for (const char *p = line; *p; p++) guess += *p == delim;
  if (csv_fields_reserve(f, guess) != 0) return -1;
  return input_split(line, delim, f->fields, f->cap);
}

/* At the first data line: whether the header names the gene column (read.csv / write.csv) or
 * not (R's write.table with row names), the barcodes, and the transposing backend. */
static int csv_start_table(rctd_input *input, const input_strings *header, int64_t n_header,
                           int64_t n_fields, int64_t *n_cells, char *err, size_t err_size) {
  const char *path = input->path;
  int rc = 0;
  int64_t skip = n_fields == n_header ? 1 : n_fields == n_header + 1 ? 0 : -1;
  if (skip < 0)
    return input_fail(err, err_size, path,
                      "line 2 has %lld fields but the header has %lld: give a genes x cells "
                      "table with gene names in the first column",
                      (long long)n_fields, (long long)n_header);
  *n_cells = n_header - skip;
  for (int64_t i = skip; i < n_header && rc == 0; i++)
    if (input_strings_push(&input->barcodes, header->items[i], strlen(header->items[i])) != 0)
      rc = input_fail(err, err_size, path, "out of memory");
  if (rc == 0 && input_strings_seal(&input->barcodes) != 0)
    rc = input_fail(err, err_size, path, "out of memory");
  input->n_rows = *n_cells;
  if (rc == 0) {
    input_tx *tx = input_tx_create(path, *n_cells, input->options.tmp_dir, err, err_size);
    if (!tx) rc = -1;
    input->backend_state = tx;
    input->backend.read_rows = input_tx_read_rows;
    input->backend.close = input_tx_free;
  }
  return rc;
}

/* One data line (split into f): the gene's name and its counts, cell by cell. */
static int csv_add_row(rctd_input *input, const input_text *text, const csv_fields *f,
                       int64_t n_fields, int64_t n_cells, int64_t gene, char *err,
                       size_t err_size) {
  const char *path = input->path;
  if (n_fields != n_cells + 1)
    return input_fail(err, err_size, path,
                      "line %lld has %lld fields, expected %lld: the table "
                      "is ragged or truncated",
                      (long long)input_text_line_no(text), (long long)n_fields,
                      (long long)n_cells + 1);
  if (input_strings_push(&input->gene_names, f->fields[0], strlen(f->fields[0])) != 0)
    return input_fail(err, err_size, path, "out of memory");
  int rc = 0;
  for (int64_t c = 0; c < n_cells && rc == 0; c++) {
    double value;
    if (csv_parse_value(f->fields[c + 1], &value) != 0)
      return input_fail(err, err_size, path,
                        "line %lld, column %lld: '%s' is not a number: give numeric counts",
                        (long long)input_text_line_no(text), (long long)c + 2, f->fields[c + 1]);
    if (value != 0) rc = input_tx_add(input->backend_state, c, (int32_t)gene, value, err, err_size);
  }
  return rc;
}

int input_csv_open(rctd_input *input, char *err, size_t err_size) {
  const char *path = input->path;
  input_text *text = input_text_open(path, err, err_size);
  if (!text) return -1;
  csv_fields f = {0};
  int rc = 0;
  size_t len;
  char *line = input_text_line(text, &len, err, err_size);
  if (!line) {
    rc = err[0] ? -1
                : input_fail(err, err_size, path,
                             "the file is empty: give a genes x cells counts table");
    goto done;
  }
  if (csv_semicolon_header(path, line, err, err_size)) {
    rc = -1;
    goto done;
  }
  char delim = input_guess_delim(line);
  int64_t n_header = csv_split_all(line, delim, &f);
  if (n_header < 0) {
    rc = input_fail(err, err_size, path, "out of memory");
    goto done;
  }
  /* Keep the header until the first data line tells whether it names the gene column. */
  input_strings header;
  input_strings_init(&header);
  for (int64_t i = 0; i < n_header && rc == 0; i++)
    if (input_strings_push(&header, f.fields[i], strlen(f.fields[i])) != 0)
      rc = input_fail(err, err_size, path, "out of memory");
  int64_t n_cells = -1;
  for (int64_t gene = 0; rc == 0; gene++) {
    line = input_text_line(text, &len, err, err_size);
    if (!line) {
      if (err[0]) rc = -1;
      break;
    }
    if (len == 0) {
      gene--;
      continue;
    }
    int64_t n_fields = csv_split_all(line, delim, &f);
    if (n_fields < 0) {
      rc = input_fail(err, err_size, path, "out of memory");
      break;
    }
    if (n_cells < 0 &&
        (rc = csv_start_table(input, &header, n_header, n_fields, &n_cells, err, err_size)) != 0)
      break;
    rc = csv_add_row(input, text, &f, n_fields, n_cells, gene, err, err_size);
  }
  input_strings_free(&header);
  if (rc == 0 && n_cells < 0) {
    /* Header only: an empty matrix (reported by validation). */
    for (int64_t i = 1; i < n_header && rc == 0; i++)
      rc = input_strings_push(&input->barcodes, f.fields[i], strlen(f.fields[i]));
    input->n_rows = n_header - 1;
    input_strings_seal(&input->barcodes);
  }
  if (rc == 0 && input_strings_seal(&input->gene_names) != 0)
    rc = input_fail(err, err_size, path, "out of memory");
  input->n_genes = input->gene_names.n;
  if (rc == 0 && input->backend_state) rc = input_tx_finish(input->backend_state, err, err_size);
done:
  free(f.fields);
  input_text_close(text);
  return rc;
}

/* ---- side tables ---- */

typedef struct {
  const char *name;
  int64_t row;
} csv_key;

static int csv_cmp_key(const void *a, const void *b) {
  return strcmp(((const csv_key *)a)->name, ((const csv_key *)b)->name);
}

typedef struct {
  const char *path;
  input_text *text;
  char delim;
  char *header_copy;
  csv_fields header;
  int64_t n_columns;   /* header fields */
  int64_t first_value; /* header index of the first value column: 1, or 0 when the header has
                          no name for the barcode column (R's write.table with row names) */
  char *pending;       /* first data line, read ahead to settle first_value */
  int headerless;      /* the first line was data */
  char *synthetic;     /* V1..Vn names of a headerless table */
  csv_fields row;
} csv_table;

static int csv_all_numbers(char *const *fields, int64_t n) {
  if (n < 1) return 0;
  for (int64_t i = 0; i < n; i++) {
    char *end;
    strtod(fields[i], &end);
    if (end == fields[i] || *end != '\0') return 0;
  }
  return 1;
}

static int csv_table_open(csv_table *t, const char *path, char *err, size_t err_size) {
  memset(t, 0, sizeof *t);
  t->path = path;
  t->first_value = 1;
  t->text = input_text_open(path, err, err_size);
  if (!t->text) return -1;
  size_t len;
  char *line = input_text_line(t->text, &len, err, err_size);
  if (!line)
    return err[0] ? -1 : input_fail(err, err_size, path, "the table is empty: it needs a header");
  if (csv_semicolon_header(path, line, err, err_size)) return -1;
  t->delim = input_guess_delim(line);
  t->header_copy = strdup(line);
  if (!t->header_copy) return input_fail(err, err_size, path, "out of memory");
  t->n_columns = csv_split_all(t->header_copy, t->delim, &t->header);
  if (t->n_columns < 0) return input_fail(err, err_size, path, "out of memory");
  if (csv_all_numbers(t->header.fields + 1, t->n_columns - 1)) {
    /* No header (Visium's tissue_positions_list.csv): the line is data, columns are V1..Vn
     * as R's read.csv(header = FALSE) names them. */
    t->headerless = 1;
    t->pending = strdup(line);
    t->synthetic = malloc((size_t)t->n_columns * 16);
    if (!t->pending || !t->synthetic) return input_fail(err, err_size, path, "out of memory");
    for (int64_t i = 0; i < t->n_columns; i++) {
      snprintf(t->synthetic + i * 16, 16, "V%d", (int)(i + 1) % 100000000);
      t->header.fields[i] = t->synthetic + i * 16;
    }
    return 0;
  }
  while ((line = input_text_line(t->text, &len, err, err_size)) && len == 0) continue;
  if (!line) return err[0] ? -1 : 0;
  t->pending = strdup(line);
  if (!t->pending) return input_fail(err, err_size, path, "out of memory");
  char *probe = strdup(line);
  int64_t n = probe ? csv_split_all(probe, t->delim, &t->row) : -1;
  free(probe);
  if (n < 0) return input_fail(err, err_size, path, "out of memory");
  if (n == t->n_columns + 1) t->first_value = 0;
  return 0;
}

static void csv_table_close(csv_table *t) {
  free(t->synthetic);
  free(t->header_copy);
  free(t->header.fields);
  free(t->row.fields);
  free(t->pending);
  input_text_close(t->text);
}

/* Field index in a data row of header column i. */
static int64_t csv_field_of(const csv_table *t, int64_t header_index) {
  return header_index + (t->first_value == 0);
}

static int64_t csv_table_column(const csv_table *t, const char *name) {
  for (int64_t i = t->first_value; i < t->n_columns; i++)
    if (strcmp(t->header.fields[i], name) == 0) return i;
  return -1;
}

static void csv_table_columns_text(const csv_table *t, char *buf, size_t size) {
  size_t len = 0;
  buf[0] = '\0';
  for (int64_t i = t->first_value; i < t->n_columns && len + 1 < size; i++) {
    snprintf(buf + len, size - len, "%s%s", i > t->first_value ? ", " : "", t->header.fields[i]);
    len = strlen(buf);
  }
}

/* Calls visit(row, fields) for each table line whose barcode is a matrix row. */
typedef int (*csv_visit_fn)(rctd_input *input, int64_t row, char **fields, void *data, char *err,
                            size_t err_size);

static int csv_table_scan(csv_table *t, rctd_input *input, const csv_key *keys, csv_visit_fn visit,
                          void *data, int64_t *matched, char *err, size_t err_size) {
  size_t len;
  char *line = t->pending;
  *matched = 0;
  int64_t expected = t->n_columns + (t->first_value == 0);
  for (int64_t line_no = 2; line; line_no++) {
    if (line != t->pending) line_no = input_text_line_no(t->text);
    int64_t n = csv_split_all(line, t->delim, &t->row);
    if (n < 0) return input_fail(err, err_size, t->path, "out of memory");
    if (n != expected)
      return input_fail(err, err_size, t->path,
                        "line %lld has %lld fields, expected %lld: the table is ragged",
                        (long long)line_no, (long long)n, (long long)expected);
    csv_key key = {t->row.fields[0], 0};
    const csv_key *hit = bsearch(&key, keys, (size_t)input->n_rows, sizeof *keys, csv_cmp_key);
    if (hit) {
      (*matched)++;
      if (visit(input, hit->row, t->row.fields, data, err, err_size)) return -1;
    }
    while ((line = input_text_line(t->text, &len, err, err_size)) && len == 0) continue;
  }
  return err[0] ? -1 : 0;
}

typedef struct {
  const csv_table *table;
  int64_t columns[2];
  const char **labels;
  double *values;
  unsigned char *seen; /* rows the table has a line for */
} csv_visit_data;

static int csv_visit_label(rctd_input *input, int64_t row, char **fields, void *data, char *err,
                           size_t err_size) {
  (void)input;
  (void)err;
  (void)err_size;
  csv_visit_data *d = data;
  char *copy = strdup(fields[csv_field_of(d->table, d->columns[0])]);
  if (!copy) return input_fail(err, err_size, d->table->path, "out of memory");
  free((char *)d->labels[row]);
  d->labels[row] = copy;
  return 0;
}

static int csv_visit_numbers(rctd_input *input, int64_t row, char **fields, void *data, char *err,
                             size_t err_size) {
  (void)input;
  csv_visit_data *d = data;
  int n = d->columns[1] >= 0 ? 2 : 1;
  if (d->seen) d->seen[row] = 1;
  for (int i = 0; i < n; i++) {
    const char *field = fields[csv_field_of(d->table, d->columns[i])];
    char *end;
    double value = strtod(field, &end);
    if (end == field || *end != '\0') {
      if (strcmp(field, "NA") != 0 && field[0] != '\0')
        return input_fail(err, err_size, d->table->path,
                          "'%s' for barcode '%s' is not a number: fix the table", field, fields[0]);
      value = NAN;
    }
    d->values[n * row + i] = value;
  }
  return 0;
}

/* Picks the value column: the named one, else `fallback` by name, else the only one. */
static int64_t csv_pick_column(const csv_table *t, const char *name, const char *fallback,
                               const char *option, char *err, size_t err_size) {
  const char *want = name ? name : fallback;
  int64_t col = csv_table_column(t, want);
  if (col >= 0) return col;
  if (!name && t->n_columns - t->first_value == 1) return t->first_value;
  char columns[512];
  csv_table_columns_text(t, columns, sizeof columns);
  input_fail(err, err_size, t->path, "no column '%s' (columns: %s): name it with %s", want, columns,
             option);
  return -1;
}

static int csv_apply_labels(rctd_input *input, const csv_key *keys, char *err, size_t err_size) {
  const char *path = input->options.cell_type_table;
  csv_table t;
  const char **labels = calloc((size_t)input->n_rows, sizeof *labels);
  int rc = labels ? csv_table_open(&t, path, err, err_size)
                  : input_fail(err, err_size, path, "out of memory");
  if (rc) {
    free(labels);
    if (labels) csv_table_close(&t);
    return -1;
  }
  csv_visit_data d = {&t, {-1, -1}, labels, NULL, NULL};
  d.columns[0] = csv_pick_column(&t, input->options.cell_type_col, "cell_type", "--cell-type-col",
                                 err, err_size);
  int64_t matched = 0;
  rc = d.columns[0] < 0
           ? -1
           : csv_table_scan(&t, input, keys, csv_visit_label, &d, &matched, err, err_size);
  if (rc == 0 && matched == 0)
    rc = input_fail(err, err_size, path,
                    "no barcode of the table is in the matrix: check that both name the same "
                    "cells");
  if (rc == 0) {
    input_strings_free(&input->type_names);
    free(input->type_codes);
    input->type_codes = NULL;
    rc = input_labels_to_factor(input, labels, input->n_rows, err, err_size);
  }
  for (int64_t i = 0; i < input->n_rows; i++) free((char *)labels[i]);
  free(labels);
  csv_table_close(&t);
  return rc;
}

static int csv_apply_numbers(rctd_input *input, const csv_key *keys, const char *path, int coords,
                             char *err, size_t err_size) {
  csv_table t;
  if (csv_table_open(&t, path, err, err_size)) {
    csv_table_close(&t);
    return -1;
  }
  int n = coords ? 2 : 1;
  double *values = malloc((size_t)(n * input->n_rows) * sizeof *values);
  unsigned char *seen = calloc((size_t)input->n_rows + 1, 1);
  int rc = values && seen ? 0 : input_fail(err, err_size, path, "out of memory");
  for (int64_t i = 0; rc == 0 && i < n * input->n_rows; i++) values[i] = NAN;
  csv_visit_data d = {&t, {-1, -1}, NULL, values, seen};
  if (rc == 0 && coords) {
    /* spacexr takes columns 2 and 3 (renamed x and y), whatever their names */
    static const char *const names[3][2] = {
        {"x", "y"}, {"xcoord", "ycoord"}, {"array_row", "array_col"}};
    int64_t x = -1, y = -1;
    for (int i = 0; i < 3 && (x < 0 || y < 0); i++)
      x = csv_table_column(&t, names[i][0]), y = csv_table_column(&t, names[i][1]);
    if ((x < 0 || y < 0) && t.headerless && t.n_columns == 6)
      x = 2, y = 3; /* Visium tissue_positions_list.csv: array_row, array_col (as spacexr) */
    if (x < 0 || y < 0) x = t.first_value, y = t.first_value + 1;
    d.columns[0] = x;
    d.columns[1] = y;
    if (t.n_columns - t.first_value < 2)
      rc = input_fail(err, err_size, path, "a coordinates table needs barcode, x and y columns");
  } else if (rc == 0) {
    d.columns[0] =
        csv_pick_column(&t, input->options.numi_col, "nUMI", "--numi-col", err, err_size);
    if (d.columns[0] < 0) rc = -1;
  }
  int64_t matched = 0;
  if (rc == 0) rc = csv_table_scan(&t, input, keys, csv_visit_numbers, &d, &matched, err, err_size);
  if (rc == 0 && matched == 0)
    rc = input_fail(err, err_size, path,
                    "no barcode of the table is in the matrix: check that both name the same "
                    "cells");
  /* A barcode of the matrix without a line here: this table's gap, named as such. */
  for (int64_t r = 0; rc == 0 && r < input->n_rows; r++)
    if (!seen[r])
      rc = input_fail(err, err_size, path,
                      "barcode '%s' of %s has no line in this table (%lld of %lld have one): "
                      "give every barcode its %s",
                      input->barcodes.items[r], input->path, (long long)matched,
                      (long long)input->n_rows, coords ? "x and y" : "nUMI");
  free(seen);
  if (rc == 0 && coords) {
    free(input->coords);
    input->coords = values;
    values = NULL;
  } else if (rc == 0) {
    free(input->numi_given);
    input->numi_given = values;
    values = NULL;
  }
  free(values);
  csv_table_close(&t);
  return rc;
}

static int csv_labels_given(const rctd_input_options *o) {
  return o->cell_type_table && o->cell_types != RCTD_CELL_TYPES_IGNORE;
}

int input_tables_given(const rctd_input_options *o) {
  return csv_labels_given(o) || o->numi_table || o->coords_table;
}

int input_apply_tables(rctd_input *input, char *err, size_t err_size) {
  const rctd_input_options *o = &input->options;
  int labels = csv_labels_given(o);
  if (!input_tables_given(o)) return 0;
  csv_key *keys = malloc((size_t)(input->n_rows ? input->n_rows : 1) * sizeof *keys);
  if (!keys) return input_fail(err, err_size, input->path, "out of memory");
  for (int64_t r = 0; r < input->n_rows; r++) keys[r] = (csv_key){input->barcodes.items[r], r};
  qsort(keys, (size_t)input->n_rows, sizeof *keys, csv_cmp_key);
  int rc = 0;
  if (labels) rc = csv_apply_labels(input, keys, err, err_size);
  if (rc == 0 && o->numi_table)
    rc = csv_apply_numbers(input, keys, o->numi_table, 0, err, err_size);
  if (rc == 0 && o->coords_table)
    rc = csv_apply_numbers(input, keys, o->coords_table, 1, err, err_size);
  free(keys);
  return rc;
}
