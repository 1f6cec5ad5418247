#!/usr/bin/python3
"""Writes the vignette's spatial counts (data/vignette/csv/spatial) in the two other input
formats the workflows accept, for the workflow tests:

  OUT/spatial.h5      10x Genomics HDF5 (v3: matrix/{data,indices,indptr,shape,barcodes,
                      features/{id,name,feature_type,genome}}), genes x beads, CSC by bead
  OUT/spatial_mtx/    10x MTX directory (matrix.mtx, barcodes.tsv, features.tsv)
  OUT/coords.csv      the bead coordinates (barcodes,xcoord,ycoord), as --coords-table

Same beads, genes and counts as the CSV, in the same order.
Usage: vignette_inputs.py VIGNETTE_CSV_SPATIAL_DIR OUT_DIR
"""
import csv
import os
import shutil
import sys

import h5py
import numpy as np


def read_dge(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    barcodes = rows[0][1:]
    genes = [r[0] for r in rows[1:]]
    counts_gb = np.array([[int(float(v)) for v in r[1:]] for r in rows[1:]], dtype=np.int64)
    return genes, barcodes, counts_gb


def write_10x_h5(path, genes, barcodes, counts_gb):
    data, indices, indptr = [], [], [0]
    for b in range(counts_gb.shape[1]):
        rows = np.nonzero(counts_gb[:, b])[0]
        indices.extend(rows.tolist())
        data.extend(counts_gb[rows, b].tolist())
        indptr.append(len(indices))
    with h5py.File(path, "w") as f:
        m = f.create_group("matrix")
        m.create_dataset("barcodes", data=np.array(barcodes, dtype="S"))
        m.create_dataset("data", data=np.array(data, dtype=np.int32))
        m.create_dataset("indices", data=np.array(indices, dtype=np.int64))
        m.create_dataset("indptr", data=np.array(indptr, dtype=np.int64))
        m.create_dataset("shape", data=np.array(counts_gb.shape, dtype=np.int32))
        feat = m.create_group("features")
        feat.create_dataset("id", data=np.array(genes, dtype="S"))
        feat.create_dataset("name", data=np.array(genes, dtype="S"))
        feat.create_dataset("feature_type", data=np.array(["Gene Expression"] * len(genes), dtype="S"))
        feat.create_dataset("genome", data=np.array(["mm10"] * len(genes), dtype="S"))


def write_mtx(directory, genes, barcodes, counts_gb):
    os.makedirs(directory, exist_ok=True)
    nz = np.nonzero(counts_gb)
    with open(os.path.join(directory, "matrix.mtx"), "w") as f:
        f.write("%%MatrixMarket matrix coordinate integer general\n")
        f.write(f"{counts_gb.shape[0]} {counts_gb.shape[1]} {len(nz[0])}\n")
        for g, b in sorted(zip(nz[0].tolist(), nz[1].tolist()), key=lambda gb: (gb[1], gb[0])):
            f.write(f"{g + 1} {b + 1} {counts_gb[g, b]}\n")
    with open(os.path.join(directory, "barcodes.tsv"), "w") as f:
        f.write("".join(b + "\n" for b in barcodes))
    with open(os.path.join(directory, "features.tsv"), "w") as f:
        f.write("".join(f"{g}\t{g}\tGene Expression\n" for g in genes))


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__.strip().split("\n")[-1])
    src, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    genes, barcodes, counts_gb = read_dge(os.path.join(src, "MappedDGEForR.csv"))
    write_10x_h5(os.path.join(out, "spatial.h5"), genes, barcodes, counts_gb)
    write_mtx(os.path.join(out, "spatial_mtx"), genes, barcodes, counts_gb)
    shutil.copyfile(os.path.join(src, "BeadLocationsForR.csv"), os.path.join(out, "coords.csv"))


if __name__ == "__main__":
    main()
