/* 10x MTX directory reader: matrix.mtx(.gz) (Matrix Market coordinate, genes x cells as Cell
 * Ranger writes it, or cells x genes), features.tsv(.gz) (id, name, feature type) or genes.tsv
 * (id, name), barcodes.tsv(.gz).  Entries may come in any order, so they go through the
 * transpose file (input_transpose.c) in one pass at open. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "input_internal.h"

/* First of name, name.gz that exists in dir, into out. */
static int mtx_find(const char *dir, const char *name, char *out, size_t size) {
  const char *suffixes[2] = {".gz", ""};
  for (int i = 0; i < 2; i++) {
    snprintf(out, size, "%s/%s%s", dir, name, suffixes[i]);
    struct stat st;
    if (stat(out, &st) == 0 && S_ISREG(st.st_mode)) return 0;
  }
  return -1;
}

static int mtx_read_barcodes(rctd_input *input, const char *file, char *err, size_t err_size) {
  input_text *text = input_text_open(file, err, err_size);
  if (!text) return -1;
  size_t len;
  char *line;
  int rc = 0;
  while (rc == 0 && (line = input_text_line(text, &len, err, err_size))) {
    if (len == 0) continue;
    char *tab = strchr(line, '\t');
    if (tab) *tab = '\0';
    if (input_strings_push(&input->barcodes, line, strlen(line)) != 0)
      rc = input_fail(err, err_size, file, "out of memory");
  }
  if (rc == 0 && err[0]) rc = -1;
  input_text_close(text);
  if (rc == 0 && input_strings_seal(&input->barcodes) != 0)
    rc = input_fail(err, err_size, file, "out of memory");
  input->n_rows = input->barcodes.n;
  return rc;
}

/* Reads features; col_map[f] is the gene index of feature f, or -1 when dropped. */
static int mtx_read_features(rctd_input *input, const char *file, int32_t **col_map,
                             int64_t *n_features, char *err, size_t err_size) {
  const char *which = input->options.gene_names ? input->options.gene_names : "name";
  if (strcmp(which, "name") != 0 && strcmp(which, "id") != 0)
    return input_fail(err, err_size, file, "--gene-names must be 'id' or 'name', not '%s'", which);
  input_text *text = input_text_open(file, err, err_size);
  if (!text) return -1;
  int64_t cap = 1024, n = 0, kept = 0;
  *col_map = malloc((size_t)cap * sizeof **col_map);
  int rc = *col_map ? 0 : input_fail(err, err_size, file, "out of memory");
  size_t len;
  char *line;
  while (rc == 0 && (line = input_text_line(text, &len, err, err_size))) {
    if (len == 0) continue;
    char *fields[3] = {NULL, NULL, NULL};
    int64_t n_fields = input_split(line, '\t', fields, 3);
    const char *name = strcmp(which, "id") == 0 || n_fields < 2 ? fields[0] : fields[1];
    int keep = n_fields < 3 || strcmp(fields[2], "Gene Expression") == 0;
    if (n == cap) {
      cap *= 2;
      int32_t *grown = realloc(*col_map, (size_t)cap * sizeof *grown);
      if (!grown) {
        rc = input_fail(err, err_size, file, "out of memory");
        break;
      }
      *col_map = grown;
    }
    (*col_map)[n++] = keep ? (int32_t)kept : -1;
    if (!keep) continue;
    kept++;
    if (input_strings_push(&input->gene_names, name, strlen(name)) != 0)
      rc = input_fail(err, err_size, file, "out of memory");
  }
  if (rc == 0 && err[0]) rc = -1;
  input_text_close(text);
  if (rc == 0 && kept == 0 && n > 0)
    rc = input_fail(err, err_size, file,
                    "no feature has type 'Gene Expression': give a gene expression matrix");
  if (rc == 0 && input_strings_seal(&input->gene_names) != 0)
    rc = input_fail(err, err_size, file, "out of memory");
  input->n_genes = kept;
  *n_features = n;
  return rc;
}

/* Header line: %%MatrixMarket matrix coordinate integer|real general */
static int mtx_check_header(const char *file, char *line, char *err, size_t err_size) {
  char *words[5] = {0};
  int n = 0;
  for (char *tok = strtok(line, " \t"); tok && n < 5; tok = strtok(NULL, " \t")) words[n++] = tok;
  if (n < 5 || strcmp(words[0], "%%MatrixMarket") != 0 || strcmp(words[1], "matrix") != 0)
    return input_fail(err, err_size, file, "not a Matrix Market file (no %%%%MatrixMarket header)");
  if (strcmp(words[2], "coordinate") != 0)
    return input_fail(err, err_size, file,
                      "Matrix Market '%s' format: only sparse 'coordinate' matrices are read",
                      words[2]);
  if (strcmp(words[3], "integer") != 0 && strcmp(words[3], "real") != 0 &&
      strcmp(words[3], "double") != 0)
    return input_fail(err, err_size, file,
                      "Matrix Market field '%s': counts must be 'integer' or 'real'", words[3]);
  if (strcmp(words[4], "general") != 0)
    return input_fail(err, err_size, file,
                      "Matrix Market symmetry '%s': a count matrix must be 'general'", words[4]);
  return 0;
}

int input_mtx_open(rctd_input *input, const char *dir, char *err, size_t err_size) {
  char matrix[4096], features[4096], barcodes[4096];
  if (mtx_find(dir, "matrix.mtx", matrix, sizeof matrix) != 0)
    return input_fail(err, err_size, dir,
                      "no matrix.mtx or matrix.mtx.gz: not a 10x MTX directory");
  if (mtx_find(dir, "features.tsv", features, sizeof features) != 0 &&
      mtx_find(dir, "genes.tsv", features, sizeof features) != 0)
    return input_fail(err, err_size, dir,
                      "no features.tsv(.gz) or genes.tsv(.gz) beside matrix.mtx: copy the whole "
                      "10x directory");
  if (mtx_find(dir, "barcodes.tsv", barcodes, sizeof barcodes) != 0)
    return input_fail(err, err_size, dir,
                      "no barcodes.tsv(.gz) beside matrix.mtx: copy the whole 10x directory");
  free(input->path);
  input->path = strdup(matrix);
  if (!input->path) return input_fail(err, err_size, matrix, "out of memory");
  int32_t *col_map = NULL;
  int64_t n_features = 0;
  if (mtx_read_barcodes(input, barcodes, err, err_size) ||
      mtx_read_features(input, features, &col_map, &n_features, err, err_size)) {
    free(col_map);
    return -1;
  }
  input_text *text = input_text_open(matrix, err, err_size);
  int rc = text ? 0 : -1;
  size_t len;
  char *line = text ? input_text_line(text, &len, err, err_size) : NULL;
  if (rc == 0 && !line) rc = err[0] ? -1 : input_fail(err, err_size, matrix, "the file is empty");
  if (rc == 0) rc = mtx_check_header(matrix, line, err, err_size);
  while (rc == 0 && (line = input_text_line(text, &len, err, err_size)) &&
         (line[0] == '%' || len == 0))
    continue;
  long long n_r = 0, n_c = 0, nnz = 0;
  if (rc == 0 && (!line || sscanf(line, "%lld %lld %lld", &n_r, &n_c, &nnz) != 3))
    rc = err[0] ? -1 : input_fail(err, err_size, matrix, "no size line: the file is truncated");
  /* Cell Ranger writes genes x cells; accept the transpose when the sizes say so. */
  int genes_by_cells = 1;
  if (rc == 0) {
    if (n_r == n_features && n_c == input->n_rows)
      genes_by_cells = 1;
    else if (n_r == input->n_rows && n_c == n_features)
      genes_by_cells = 0;
    else
      rc = input_fail(err, err_size, matrix,
                      "matrix is %lld x %lld but there are %lld features and %lld barcodes: the "
                      "files do not belong together",
                      n_r, n_c, (long long)n_features, (long long)input->n_rows);
  }
  input_tx *tx = NULL;
  if (rc == 0) {
    tx = input_tx_create(matrix, input->n_rows, input->options.tmp_dir, err, err_size);
    if (!tx) rc = -1;
    input->backend_state = tx;
    input->backend.read_rows = input_tx_read_rows;
    input->backend.close = input_tx_free;
  }
  long long seen = 0;
  while (rc == 0 && (line = input_text_line(text, &len, err, err_size))) {
    if (len == 0 || line[0] == '%') continue;
    /* Three numbers, each present: "1 1" (no value) is an error, not a zero. */
    char *end, *start = line;
    long long i = strtoll(start, &end, 10);
    int complete = end != start;
    long long j = strtoll(start = end, &end, 10);
    complete &= end != start;
    double value = strtod(start = end, &end);
    complete &= end != start;
    while (*end == ' ' || *end == '\t') end++;
    if (!complete || *end != '\0' || i < 1 || i > n_r || j < 1 || j > n_c) {
      rc = input_fail(err, err_size, matrix,
                      "line %lld is not 'row col value' within %lld x %lld: the file is corrupt",
                      (long long)input_text_line_no(text), n_r, n_c);
      break;
    }
    seen++;
    long long feature = genes_by_cells ? i - 1 : j - 1, cell = genes_by_cells ? j - 1 : i - 1;
    if (col_map[feature] < 0 || value == 0) continue;
    rc = input_tx_add(tx, cell, col_map[feature], value, err, err_size);
  }
  if (rc == 0 && err[0]) rc = -1;
  if (rc == 0 && seen != nnz)
    rc = input_fail(err, err_size, matrix,
                    "%lld entries but the size line promises %lld: the file is truncated", seen,
                    nnz);
  if (rc == 0) rc = input_tx_finish(tx, err, err_size);
  input_text_close(text);
  free(col_map);
  return rc;
}
