#!/usr/bin/python3
"""Writes the small input fixtures of tests/test_input.c into tests/data/input/.

Run with Debian's python3 (python3-anndata, python3-h5py):  /usr/bin/python3 scripts/make_input_fixtures.py
Every file holds the same 6 cells x 5 genes matrix (COUNTS below, also written out in
tests/test_input.c) in a different layout, so the tests can check each reader cell by cell.
"""
import gzip
import io
import os
import sys

import anndata
import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "input")

COUNTS = np.array([[1, 0, 3, 0, 0],
                   [0, 2, 0, 0, 5],
                   [4, 0, 0, 1, 0],
                   [0, 0, 0, 0, 0],
                   [7, 8, 0, 0, 1000],
                   [0, 0, 6, 3, 1]], dtype=np.int64)
CELLS = ["AAAC-1", "AAAG-1", "AACT-1", "AAGG-1", "ACGT-1", "AGGA-1"]
GENES = ["GeneA", "GeneB", "GeneC", "mt-Xyz", "GeneE"]
GENE_IDS = ["ENSG01", "ENSG02", "ENSG03", "ENSG04", "ENSG05"]
TYPES = ["beta", "alpha", "beta", "gamma", "alpha", "gamma"]
TYPE_ORDER = ["gamma", "beta", "alpha"]  # category order differs from sorted order on purpose
NUMI = COUNTS.sum(axis=1) + 10
COORDS = np.array([[1.5 * i, -float(i)] for i in range(6)])


def path(name):
    return os.path.join(OUT, name)


def adata(X):
    obs = pd.DataFrame(index=CELLS)
    obs["cell_type"] = pd.Categorical(TYPES, categories=TYPE_ORDER)
    obs["nUMI"] = NUMI
    obs["cluster"] = [2, 1, 2, 3, 1, 3]  # integer column as cell types: numeric order
    ad = anndata.AnnData(X=X, obs=obs, var=pd.DataFrame(index=GENES), dtype=X.dtype)
    ad.obsm["spatial"] = COORDS
    return ad


def write_h5ad():
    adata(sp.csr_matrix(COUNTS.astype(np.float32))).write_h5ad(path("csr.h5ad"))
    adata(sp.csc_matrix(COUNTS.astype(np.int32))).write_h5ad(path("csc.h5ad"))
    adata(COUNTS.astype(np.float64)).write_h5ad(path("dense.h5ad"))
    # X normalised (non-integer), raw counts in a layer
    ad = adata(sp.csr_matrix(COUNTS / np.maximum(COUNTS.sum(axis=1, keepdims=True), 1)))
    ad.layers["counts"] = sp.csr_matrix(COUNTS)
    ad.write_h5ad(path("layer.h5ad"))
    # no cells at all
    anndata.AnnData(np.zeros((0, 3), dtype=np.float32),
                    var=pd.DataFrame(index=["a", "b", "c"]), dtype=np.float32).write_h5ad(
                        path("empty.h5ad"))


def string_array(group, name, values):
    dt = h5py.string_dtype(encoding="utf-8")
    return group.create_dataset(name, data=np.array(values, dtype=object), dtype=dt)


def write_old_h5ad():
    """anndata 0.7-era layout written by hand: old categorical encoding (codes dataset with a
    `categories` object reference into obs/__categories), a plain string column, obs index
    named by the `_index` attribute, X as an h5sparse CSR group."""
    with h5py.File(path("old.h5ad"), "w") as f:
        X = sp.csr_matrix(COUNTS)
        g = f.create_group("X")
        g.attrs["h5sparse_format"] = "csr"
        g.attrs["h5sparse_shape"] = np.array(COUNTS.shape)
        g["data"] = X.data.astype(np.int64)
        g["indices"] = X.indices.astype(np.int64)
        g["indptr"] = X.indptr.astype(np.int64)
        obs = f.create_group("obs")
        obs.attrs["_index"] = "barcode"
        string_array(obs, "barcode", CELLS)
        cats = obs.create_group("__categories")
        categories = string_array(cats, "cell_type", TYPE_ORDER)
        codes = obs.create_dataset(
            "cell_type", data=np.array([TYPE_ORDER.index(t) for t in TYPES], dtype=np.int8))
        codes.attrs["categories"] = categories.ref
        string_array(obs, "label", TYPES)  # plain strings: factor() order
        obs["nUMI"] = NUMI.astype(np.float64)
        var = f.create_group("var")
        var.attrs["_index"] = "_index"
        string_array(var, "_index", GENES)


def write_10x(name, v2=False, duplicate_name=False):
    """Cell Ranger layout: CSC genes x cells, with one 'Antibody Capture' feature (index 2)
    whose counts must be dropped."""
    names = list(GENES)
    if duplicate_name:
        names[4] = names[0]
    feat_names = names[:2] + ["CD3_TotalSeqB"] + names[2:]
    feat_ids = GENE_IDS[:2] + ["CD3"] + GENE_IDS[2:]
    feat_types = ["Gene Expression"] * 2 + ["Antibody Capture"] + ["Gene Expression"] * 3
    full = np.insert(COUNTS, 2, [9, 9, 0, 9, 0, 9], axis=1)  # cells x features
    if v2:  # Cell Ranger 2: no feature types
        full = COUNTS
        feat_names, feat_ids = names, GENE_IDS
    M = sp.csc_matrix(full.T.astype(np.int32))  # features x cells, CSC
    with h5py.File(path(name), "w") as f:
        g = f.create_group("GRCh38" if v2 else "matrix")
        g.create_dataset("barcodes", data=np.array(CELLS, dtype="S"))
        g.create_dataset("data", data=M.data.astype(np.int32), compression="gzip")
        g.create_dataset("indices", data=M.indices.astype(np.int64), compression="gzip")
        g.create_dataset("indptr", data=M.indptr.astype(np.int64))
        g.create_dataset("shape", data=np.array(M.shape, dtype=np.int32))
        if v2:
            g.create_dataset("genes", data=np.array(feat_ids, dtype="S"))
            g.create_dataset("gene_names", data=np.array(feat_names, dtype="S"))
            return
        ft = g.create_group("features")
        ft.create_dataset("id", data=np.array(feat_ids, dtype="S"))
        ft.create_dataset("name", data=np.array(feat_names, dtype="S"))
        ft.create_dataset("feature_type", data=np.array(feat_types, dtype="S"))
        ft.create_dataset("genome", data=np.array(["GRCh38"] * len(feat_ids), dtype="S"))


def open_text(name, gz):
    if not gz:
        return open(name, "w")
    # mtime 0: the same bytes on every run
    return io.TextIOWrapper(gzip.GzipFile(name + ".gz", "wb", mtime=0))


def write_mtx(dirname, gz, v2, transposed=False):
    """Entries are written in a shuffled order: readers must not rely on Cell Ranger's."""
    d = path(dirname)
    os.makedirs(d, exist_ok=True)
    for old in os.listdir(d):
        os.remove(os.path.join(d, old))
    rng = np.random.default_rng(7)
    if v2:
        full, n_features = COUNTS, 5
        with open_text(os.path.join(d, "genes.tsv"), gz) as f:
            for i, n in zip(GENE_IDS, GENES):
                f.write(f"{i}\t{n}\n")
    else:
        full = np.insert(COUNTS, 2, [9, 9, 0, 9, 0, 9], axis=1)
        n_features = 6
        with open_text(os.path.join(d, "features.tsv"), gz) as f:
            rows = list(zip(GENE_IDS, GENES, ["Gene Expression"] * 5))
            rows.insert(2, ("CD3", "CD3_TotalSeqB", "Antibody Capture"))
            for r in rows:
                f.write("\t".join(r) + "\n")
    with open_text(os.path.join(d, "barcodes.tsv"), gz) as f:
        for c in CELLS:
            f.write(c + "\n")
    entries = [(g + 1, c + 1, int(full[c, g])) for c in range(6) for g in range(n_features)
               if full[c, g] != 0]
    entries = [entries[i] for i in rng.permutation(len(entries))]
    with open_text(os.path.join(d, "matrix.mtx"), gz) as f:
        f.write("%%MatrixMarket matrix coordinate integer general\n%metadata_json: {}\n")
        if transposed:
            f.write(f"{6} {n_features} {len(entries)}\n")
            for g, c, v in entries:
                f.write(f"{c} {g} {v}\n")
        else:
            f.write(f"{n_features} {6} {len(entries)}\n")
            for g, c, v in entries:
                f.write(f"{g} {c} {v}\n")


def write_csv():
    """spacexr layout: genes x cells counts, meta data (barcode, cluster, nUMI), coordinates."""
    df = pd.DataFrame(COUNTS.T, index=GENES, columns=CELLS)
    df.to_csv(path("counts.csv"))
    pd.DataFrame({"barcode": CELLS, "cluster": TYPES, "nUMI": NUMI}).to_csv(
        path("meta.csv"), index=False)
    pd.DataFrame({"barcodes": CELLS, "xcoord": COORDS[:, 0], "ycoord": COORDS[:, 1]}).to_csv(
        path("coords.csv"), index=False)


def main():
    if anndata.__version__.split(".")[:2] != ["0", "8"]:
        print("note: fixtures were made with anndata 0.8", file=sys.stderr)
    os.makedirs(OUT, exist_ok=True)
    write_h5ad()
    write_old_h5ad()
    write_10x("tenx_v3.h5")
    write_10x("tenx_v2.h5", v2=True)
    write_10x("tenx_dupname.h5", duplicate_name=True)
    write_mtx("mtx_v3_gz", gz=True, v2=False)
    write_mtx("mtx_v2", gz=False, v2=True)
    write_mtx("mtx_cells_by_genes", gz=False, v2=True, transposed=True)
    write_csv()


if __name__ == "__main__":
    main()
