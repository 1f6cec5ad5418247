/* The sample stream: every record type, names, odd strings, empty records, several chunks. */
#include "test_stream_sample.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

static const char *const sample_genes[] = {
    "Actb", "", "Gene\twith tab", "line\nbreak", "back\\slash", "Mt-Co1", "\xc3\xa9t\xc3\xa9"};
static const char *const sample_types[] = {"B", "T_CD4", "Endothelial"};
static const char *const sample_barcodes[] = {"AAAC", "AAAG", "AACT", "ACGT", "TTTT"};
static const double sample_profiles[7 * 3] = {
    1,  0.5, 0.25, 1e-300, -0.0,   3.141592653589793, 1e300, 2, 3, 4, 5, 6, 7, 8, 9, 10,
    11, 12,  13,   14,     1.0 / 3};
static const float sample_numi[5] = {100.5f, 0, 1e-30f, 3e30f, -7};
static const int32_t sample_i32[5 * 4] = {0,  1,  2,  3,  INT32_MAX, INT32_MIN, -1, 7,  8,  9,
                                          10, 11, 12, 13, 14,        15,        16, 17, 18, 19};
static const int64_t sample_i64[3 * 2] = {INT64_MAX, INT64_MIN, 0, -1, 1234567890123LL, 42};
static const uint8_t sample_u8[6] = {0, 1, 2, 127, 128, 255};
/* CSR 5 x 7 (barcodes x genes), row 2 empty. */
static const int64_t sample_csr_indptr[6] = {0, 3, 4, 4, 7, 9};
static const int32_t sample_csr_indices[9] = {0, 3, 6, 5, 1, 2, 3, 0, 6};
static const int32_t sample_csr_counts[9] = {5, 1, 2, 100000, 1, 1, 3, 9, 4};
static const double sample_csr_norm[9] = {0.5, 0.1, 0.2, 1e-9, 0.1, 0.1, 0.3, 0.9, 0.4};
static const char *const sample_meta_keys[] = {"tool", "odd key", "empty", "UMI_min"};
static const char *const sample_meta_values[] = {"rctd-test", "tab\there\nnewline", "", "100"};

int rctd_test_sample_records(void) {
  return 13;
}

int rctd_test_sample_write(rctd_writer *w) {
  if (rctd_write_meta(w, "config", sample_meta_keys, sample_meta_values, 4) != 0) return -1;
  if (rctd_write_string_list(w, "genes", sample_genes, 7) != 0) return -1;
  if (rctd_write_string_list(w, "types", sample_types, 3) != 0) return -1;
  if (rctd_write_string_list(w, "barcodes", sample_barcodes, 5) != 0) return -1;
  rctd_record_spec profiles = {.name = "profiles",
                               .kind = RCTD_DENSE,
                               .dtype = RCTD_F64,
                               .cols = 3,
                               .rows = 7,
                               .chunk_rows = 2,
                               .row_names = "genes",
                               .col_names = "types"};
  if (rctd_write_begin(w, &profiles) != 0) return -1;
  /* Uneven pieces across chunk boundaries. */
  if (rctd_write_rows(w, sample_profiles, 1) != 0 ||
      rctd_write_rows(w, sample_profiles + 3, 5) != 0 ||
      rctd_write_rows(w, sample_profiles + 18, 1) != 0 || rctd_write_end(w) != 0)
    return -1;
  if (rctd_write_vector(w, "numi", RCTD_F32, 5, sample_numi, "barcodes") != 0) return -1;
  if (rctd_write_dense(w, "ints", RCTD_I32, 5, 4, sample_i32, "barcodes", NULL) != 0) return -1;
  if (rctd_write_dense(w, "longs", RCTD_I64, 3, 2, sample_i64, NULL, NULL) != 0) return -1;
  if (rctd_write_dense(w, "flags", RCTD_U8, 6, 1, sample_u8, NULL, NULL) != 0) return -1;
  /* Pixels: total unknown when writing starts, written row by row, 2 rows per chunk. */
  const char *keys[] = {"unit"}, *values[] = {"UMI"};
  rctd_record_spec counts = {.name = "counts",
                             .kind = RCTD_CSR,
                             .dtype = RCTD_I32,
                             .cols = 7,
                             .rows = RCTD_ROWS_UNKNOWN,
                             .chunk_rows = 2,
                             .row_names = "barcodes",
                             .col_names = "genes",
                             .n_attrs = 1,
                             .attr_keys = keys,
                             .attr_values = values};
  if (rctd_write_begin(w, &counts) != 0) return -1;
  for (int i = 0; i < 5; i++)
    if (rctd_write_csr(w, sample_csr_indptr + i, sample_csr_indices, sample_csr_counts, 1) != 0)
      return -1;
  if (rctd_write_end(w) != 0) return -1;
  rctd_record_spec norm = {
      .name = "norm", .kind = RCTD_CSR, .dtype = RCTD_F64, .cols = 7, .rows = 5};
  if (rctd_write_begin(w, &norm) != 0 ||
      rctd_write_csr(w, sample_csr_indptr, sample_csr_indices, sample_csr_norm, 5) != 0 ||
      rctd_write_end(w) != 0)
    return -1;
  if (rctd_write_dense(w, "empty", RCTD_F64, 0, 3, NULL, NULL, NULL) != 0) return -1;
  if (rctd_write_string_list(w, "nothing", NULL, 0) != 0) return -1;
  return 0;
}

int rctd_test_sample_write_path(const char *path, unsigned chunk_rows) {
  char err[RCTD_ERR_LEN];
  rctd_writer_opts opts = {.chunk_rows = chunk_rows};
  rctd_writer *w = rctd_writer_open(path, &opts, err, sizeof err);
  if (!w) {
    fprintf(stderr, "  %s\n", err);
    return -1;
  }
  if (rctd_test_sample_write(w) != 0) {
    fprintf(stderr, "  %s\n", rctd_writer_error(w));
    rctd_writer_abort(w);
    return -1;
  }
  if (rctd_writer_close(w, err, sizeof err) != 0) {
    fprintf(stderr, "  %s\n", err);
    return -1;
  }
  return 0;
}

/* Compares REC with the expected header and contents; returns a reason or NULL. */
static const char *sample_compare(const rctd_record *rec, const char *name, rctd_kind kind,
                                  rctd_dtype dtype, uint64_t rows, uint64_t cols,
                                  const char *row_names, const char *col_names) {
  if (strcmp(rec->name, name) != 0) return "name";
  if (rec->kind != kind) return "kind";
  if ((kind == RCTD_DENSE || kind == RCTD_CSR) && rec->dtype != dtype) return "dtype";
  if (rec->rows != rows || rec->cols != cols) return "shape";
  if ((row_names == NULL) != (rec->row_names == NULL)) return "row names presence";
  if (row_names && strcmp(row_names, rec->row_names) != 0) return "row names";
  if ((col_names == NULL) != (rec->col_names == NULL)) return "col names presence";
  if (col_names && strcmp(col_names, rec->col_names) != 0) return "col names";
  return NULL;
}

static const char *sample_strings_equal(const rctd_record *rec, const char *const *want,
                                        uint64_t n) {
  for (uint64_t i = 0; i < n; i++)
    if (strcmp(rec->strings[i], want[i]) != 0) return "string content";
  return NULL;
}

static const char *sample_attr(const rctd_record *rec, const char *key) {
  for (size_t i = 0; i < rec->n_attrs; i++)
    if (strcmp(rec->attr_keys[i], key) == 0) return rec->attr_values[i];
  return NULL;
}

static const char *sample_check_record(const rctd_record *rec, int index) {
  const char *why;
  switch (index) {
    case 0:
      if ((why = sample_compare(rec, "config", RCTD_META, RCTD_U8, 4, 2, NULL, NULL))) return why;
      for (int i = 0; i < 4; i++)
        if (strcmp(rctd_record_meta_get(rec, sample_meta_keys[i]), sample_meta_values[i]) != 0)
          return "meta value";
      return rctd_record_meta_get(rec, "absent") ? "absent meta key found" : NULL;
    case 1:
      if ((why = sample_compare(rec, "genes", RCTD_STRINGS, RCTD_U8, 7, 1, NULL, NULL))) return why;
      if (rctd_record_string_index(rec, "Mt-Co1") != 5) return "string index";
      return sample_strings_equal(rec, sample_genes, 7);
    case 2:
      if ((why = sample_compare(rec, "types", RCTD_STRINGS, RCTD_U8, 3, 1, NULL, NULL))) return why;
      return sample_strings_equal(rec, sample_types, 3);
    case 3:
      if ((why = sample_compare(rec, "barcodes", RCTD_STRINGS, RCTD_U8, 5, 1, NULL, NULL)))
        return why;
      return sample_strings_equal(rec, sample_barcodes, 5);
    case 4:
      if ((why = sample_compare(rec, "profiles", RCTD_DENSE, RCTD_F64, 7, 3, "genes", "types")))
        return why;
      if (rec->ndim != 2) return "ndim";
      return memcmp(rec->data, sample_profiles, sizeof sample_profiles) ? "profiles data" : NULL;
    case 5:
      if ((why = sample_compare(rec, "numi", RCTD_DENSE, RCTD_F32, 5, 1, "barcodes", NULL)))
        return why;
      if (rec->ndim != 1) return "vector ndim";
      return memcmp(rec->data, sample_numi, sizeof sample_numi) ? "numi data" : NULL;
    case 6:
      if ((why = sample_compare(rec, "ints", RCTD_DENSE, RCTD_I32, 5, 4, "barcodes", NULL)))
        return why;
      return memcmp(rec->data, sample_i32, sizeof sample_i32) ? "i32 data" : NULL;
    case 7:
      if ((why = sample_compare(rec, "longs", RCTD_DENSE, RCTD_I64, 3, 2, NULL, NULL))) return why;
      return memcmp(rec->data, sample_i64, sizeof sample_i64) ? "i64 data" : NULL;
    case 8:
      if ((why = sample_compare(rec, "flags", RCTD_DENSE, RCTD_U8, 6, 1, NULL, NULL))) return why;
      return memcmp(rec->data, sample_u8, sizeof sample_u8) ? "u8 data" : NULL;
    case 9:
    case 10: {
      int counts = index == 9;
      if ((why = sample_compare(rec, counts ? "counts" : "norm", RCTD_CSR,
                                counts ? RCTD_I32 : RCTD_F64, 5, 7, counts ? "barcodes" : NULL,
                                counts ? "genes" : NULL)))
        return why;
      const char *unit = sample_attr(rec, "unit");
      if (counts && (!unit || strcmp(unit, "UMI") != 0)) return "attribute";
      if (!counts && unit) return "attribute";
      if (rec->nnz != 9) return "nnz";
      if (memcmp(rec->indptr, sample_csr_indptr, sizeof sample_csr_indptr)) return "indptr";
      if (memcmp(rec->indices, sample_csr_indices, sizeof sample_csr_indices)) return "indices";
      if (counts)
        return memcmp(rec->values, sample_csr_counts, sizeof sample_csr_counts) ? "counts" : NULL;
      return memcmp(rec->values, sample_csr_norm, sizeof sample_csr_norm) ? "norm values" : NULL;
    }
    case 11:
      return sample_compare(rec, "empty", RCTD_DENSE, RCTD_F64, 0, 3, NULL, NULL);
    case 12:
      return sample_compare(rec, "nothing", RCTD_STRINGS, RCTD_U8, 0, 1, NULL, NULL);
  }
  return "unexpected extra record";
}

int rctd_test_sample_check(rctd_reader *r, char *msg, size_t msg_len) {
  const rctd_record_info *info;
  int index = 0, rc;
  while ((rc = rctd_reader_next(r, &info)) == 1) {
    rctd_record rec;
    if (rctd_reader_load(r, &rec) != 0) {
      snprintf(msg, msg_len, "%s", rctd_reader_error(r));
      return -1;
    }
    const char *why = sample_check_record(&rec, index);
    if (why) snprintf(msg, msg_len, "record %d (%s): %s differs", index, rec.name, why);
    rctd_record_free(&rec);
    if (why) return -1;
    index++;
  }
  if (rc < 0) {
    snprintf(msg, msg_len, "%s", rctd_reader_error(r));
    return -1;
  }
  if (index != rctd_test_sample_records()) {
    snprintf(msg, msg_len, "%d records read, %d expected", index, rctd_test_sample_records());
    return -1;
  }
  return 0;
}
