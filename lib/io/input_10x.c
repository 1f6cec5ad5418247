/* 10x Genomics HDF5 reader: Cell Ranger / Space Ranger filtered_feature_bc_matrix.h5 and Xenium
 * cell_feature_matrix.h5 (group `matrix`: data, indices, indptr, shape, barcodes, features/id,
 * features/name, features/feature_type), and Cell Ranger 2 files (one group per genome with
 * genes and gene_names).  The matrix is CSC genes x cells, which is CSR cells x genes, so rows
 * stream straight from disk; features other than "Gene Expression" are dropped. */
#include <stdlib.h>
#include <string.h>

#include "input_internal.h"

/* Group holding the matrix: "matrix", or the single genome group of Cell Ranger 2. */
static int tenx_find_group(hid_t file, char *name, size_t size) {
  if (input_h5_exists(file, "matrix")) {
    snprintf(name, size, "matrix");
    return 0;
  }
  H5G_info_t info;
  if (H5Gget_info(file, &info) < 0) return -1;
  for (hsize_t i = 0; i < info.nlinks; i++) {
    char link[256], probe[300];
    if (H5Lget_name_by_idx(file, ".", H5_INDEX_NAME, H5_ITER_INC, i, link, sizeof link,
                           H5P_DEFAULT) < 0)
      continue;
    snprintf(probe, sizeof probe, "%s/gene_names", link);
    if (input_h5_exists(file, probe)) {
      snprintf(name, size, "%s", link);
      return 0;
    }
  }
  return -1;
}

static int tenx_read_shape(const char *path, hid_t group, const char *group_name, int64_t shape[2],
                           char *err, size_t err_size) {
  if (!input_h5_exists(group, "shape") || input_h5_length(group, "shape") != 2)
    return input_fail(err, err_size, path, "%s/shape is missing or not 2 numbers: corrupt file",
                      group_name);
  hid_t dset = H5Dopen2(group, "shape", H5P_DEFAULT);
  int rc = input_h5_read_i64(path, dset, "shape", 0, 2, shape, err, err_size);
  H5Dclose(dset);
  return rc;
}

static int tenx_read_features(rctd_input *input, hid_t group, const char *group_name,
                              int64_t n_features, int32_t **col_map, char *err, size_t err_size) {
  const char *path = input->path;
  const char *which = input->options.gene_names ? input->options.gene_names : "name";
  if (strcmp(which, "name") != 0 && strcmp(which, "id") != 0)
    return input_fail(err, err_size, path, "--gene-names must be 'id' or 'name', not '%s'", which);
  int v3 = input_h5_exists(group, "features");
  const char *names_dset = v3 ? (strcmp(which, "id") == 0 ? "features/id" : "features/name")
                              : (strcmp(which, "id") == 0 ? "genes" : "gene_names");
  if (!input_h5_exists(group, names_dset))
    return input_fail(err, err_size, path, "%s/%s is missing: not a complete 10x matrix file",
                      group_name, names_dset);
  input_strings names, types;
  input_strings_init(&names);
  input_strings_init(&types);
  int rc = input_h5_read_strings(path, group, names_dset, &names, err, err_size);
  int have_types = v3 && input_h5_exists(group, "features/feature_type");
  if (rc == 0 && have_types)
    rc = input_h5_read_strings(path, group, "features/feature_type", &types, err, err_size);
  if (rc == 0 && (input_strings_seal(&names) != 0 || input_strings_seal(&types) != 0))
    rc = input_fail(err, err_size, path, "out of memory");
  if (rc == 0 && (names.n != n_features || (have_types && types.n != n_features)))
    rc = input_fail(err, err_size, path,
                    "%s has %lld feature names for %lld features: the file is corrupt", group_name,
                    (long long)names.n, (long long)n_features);
  *col_map = rc == 0 ? malloc((size_t)(n_features ? n_features : 1) * sizeof **col_map) : NULL;
  if (rc == 0 && !*col_map) rc = input_fail(err, err_size, path, "out of memory");
  int64_t kept = 0;
  for (int64_t f = 0; rc == 0 && f < n_features; f++) {
    if (have_types && strcmp(types.items[f], "Gene Expression") != 0) {
      (*col_map)[f] = -1;
      continue;
    }
    (*col_map)[f] = (int32_t)kept++;
    if (input_strings_push(&input->gene_names, names.items[f], strlen(names.items[f])) != 0)
      rc = input_fail(err, err_size, path, "out of memory");
  }
  if (rc == 0 && kept == 0 && n_features > 0)
    rc = input_fail(err, err_size, path,
                    "no feature has feature_type 'Gene Expression': give a gene expression "
                    "matrix");
  if (rc == 0 && input_strings_seal(&input->gene_names) != 0)
    rc = input_fail(err, err_size, path, "out of memory");
  input->n_genes = kept;
  input_strings_free(&names);
  input_strings_free(&types);
  return rc;
}

int input_10x_open(rctd_input *input, char *err, size_t err_size) {
  const char *path = input->path;
  hid_t file = input_h5_open_file(path, err, err_size);
  if (file < 0) return -1;
  char group_name[256];
  if (tenx_find_group(file, group_name, sizeof group_name) != 0) {
    H5Fclose(file);
    return input_fail(err, err_size, path,
                      "no 'matrix' group: not a 10x feature-barcode matrix file");
  }
  input_h5_csr *csr = calloc(1, sizeof *csr);
  if (!csr) {
    H5Fclose(file);
    return input_fail(err, err_size, path, "out of memory");
  }
  csr->file = file; /* the backend owns the file */
  input->backend_state = csr;
  input->backend.close = input_h5_csr_close;
  input->backend.read_rows = input_h5_csr_read_rows;
  hid_t group = H5Gopen2(file, group_name, H5P_DEFAULT);
  int64_t shape[2];
  int rc = tenx_read_shape(path, group, group_name, shape, err, err_size);
  if (rc == 0 && !input_h5_exists(group, "barcodes"))
    rc = input_fail(err, err_size, path, "%s/barcodes is missing: corrupt 10x file", group_name);
  if (rc == 0) rc = input_h5_read_strings(path, group, "barcodes", &input->barcodes, err, err_size);
  if (rc == 0 && input_strings_seal(&input->barcodes) != 0)
    rc = input_fail(err, err_size, path, "out of memory");
  if (rc == 0 && input->barcodes.n != shape[1])
    rc = input_fail(err, err_size, path,
                    "%lld barcodes but shape says %lld cells: the file is corrupt",
                    (long long)input->barcodes.n, (long long)shape[1]);
  input->n_rows = input->barcodes.n;
  if (rc == 0)
    rc = tenx_read_features(input, group, group_name, shape[0], &csr->col_map, err, err_size);
  if (rc == 0)
    rc = input_h5_csr_init(csr, path, file, group, group_name, shape[1], shape[0], err, err_size);
  H5Gclose(group);
  return rc;
}
