#!/usr/bin/python3
"""Opens an rctd result h5ad with anndata and checks its slots and values against spacexr's CSV
results (the gold files of tests/data/gold/vignette, or files in that layout).

usage: h5ad_check.py H5AD GOLD_DIR MODE [--tol X] [--spatial SPATIAL.h5ad] [--fitted-only]

Exit status 0 and "ok ..." when every check passes; otherwise 1 with the first failure."""
import argparse
import csv
import sys

import anndata
import numpy as np


def read_matrix(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header = rows[0][1:]
    names = [r[0] for r in rows[1:]]
    values = np.array([[float(x) for x in r[1:]] for r in rows[1:]])
    return header, names, values


def read_table(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header = rows[0]
    return header, rows[1:]


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def close(a, b, tol):
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if tol == 0:
        return np.array_equal(a, b)
    return np.all(np.abs(a - b) <= tol)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("h5ad")
    ap.add_argument("gold")
    ap.add_argument("mode")
    ap.add_argument("--tol", type=float, default=1e-6)
    ap.add_argument("--spatial")
    ap.add_argument("--fitted-only", action="store_true")
    a = ap.parse_args()

    ad = anndata.read_h5ad(a.h5ad)
    types, names, weights = read_matrix(f"{a.gold}/weights.csv")
    K = len(types)
    check(list(ad.uns["rctd"]["cell_types"]) == types, "uns/rctd/cell_types != gold types")
    check(ad.uns["rctd"]["mode"] == a.mode, f"uns/rctd/mode {ad.uns['rctd']['mode']!r}")
    check(abs(float(ad.uns["rctd"]["sigma"]) - 0.84) < 1e-12, "uns/rctd/sigma")
    for key in ("genes_reg", "genes_bulk", "config", "version", "tools"):
        check(key in ad.uns["rctd"], f"uns/rctd/{key} missing")
    W = ad.obsm["rctd_weights"]
    check(W.shape == (ad.n_obs, K), f"obsm/rctd_weights shape {W.shape}")
    obs_names = list(ad.obs_names)
    row = {b: i for i, b in enumerate(obs_names)}
    check(all(b in row for b in names), "a gold barcode is not an obs name")
    idx = np.array([row[b] for b in names])
    check(close(W[idx], weights, a.tol), "rctd_weights differ from gold")
    P = ad.obsm["rctd_proportions"][idx]
    check(np.allclose(P, weights / weights.sum(1, keepdims=True), rtol=0, atol=1e-9 + a.tol),
          "rctd_proportions")
    dom = ad.obs["rctd_dominant_type"]
    check(str(dom.dtype) == "category", "rctd_dominant_type is not categorical")
    want_dom = [types[int(np.argmax(w))] for w in weights]
    check(list(dom.iloc[idx].astype(str)) == want_dom, "rctd_dominant_type")
    filtered = np.ones(ad.n_obs, dtype=bool)
    filtered[idx] = False
    check(ad.obs["rctd_filtered"].dtype == bool, "rctd_filtered is not bool")
    check(np.array_equal(ad.obs["rctd_filtered"].values, filtered), "rctd_filtered")
    if a.fitted_only:
        check(not filtered.any(), "rows beyond the fitted pixels")
    if filtered.any():
        check(np.isnan(W[filtered]).all(), "filtered rows must have NaN weights")
        check((dom[filtered].astype(str) == "filtered").all(), "filtered label")

    if a.mode == "doublet":
        header, rows = read_table(f"{a.gold}/results_df.csv")
        check([r[0] for r in rows] == names, "results_df barcodes")
        col = {h: j for j, h in enumerate(header)}
        obs = ad.obs.iloc[idx]
        for name in ("spot_class", "first_type", "second_type"):
            got = obs[f"rctd_{name}"]
            check(str(got.dtype) == "category", f"rctd_{name} is not categorical")
            check(list(got.astype(str)) == [r[col[name]] for r in rows], f"rctd_{name}")
        for name in ("first_class", "second_class", "conv_all", "conv_doublet"):
            got = obs[f"rctd_{name}"]
            check(got.dtype == bool, f"rctd_{name} is not bool")
            check(list(got) == [r[col[name]] == "TRUE" for r in rows], f"rctd_{name}")
        for name in ("min_score", "singlet_score"):
            want = [float(r[col[name]]) for r in rows]
            # Scores are sums over genes: compare relative to their size.
            got = obs[f"rctd_{name}"].values
            check(close(got / np.abs(want), np.array(want) / np.abs(want), a.tol),
                  f"rctd_{name}")
        _, names_d, wd = read_matrix(f"{a.gold}/weights_doublet.csv")
        check(names_d == names, "weights_doublet barcodes")
        check(close(ad.obsm["rctd_weights_doublet"][idx], wd, a.tol), "rctd_weights_doublet")
        if filtered.any():
            sc = ad.obs["rctd_spot_class"][filtered].astype(str)
            check((sc == "filtered").all(), "filtered spot class")

    if a.mode == "multi":
        header, rows = read_table(f"{a.gold}/multi_results.csv")
        check([r[0] for r in rows] == names, "multi_results barcodes")
        obs = ad.obs.iloc[idx]
        M = int(ad.uns["rctd"]["max_multi_types"])
        sub = ad.obsm["rctd_sub_weights"][idx]
        conf = ad.obsm["rctd_multi_conf"][idx]
        wm = ad.obsm["rctd_weights_multi"][idx]
        check(sub.shape[1] == M and conf.dtype == bool, "sub-weight slots")
        for i, r in enumerate(rows):
            n = int(r[1])
            check(int(obs["rctd_n_types"].iloc[i]) == n, f"rctd_n_types of {r[0]}")
            tl = r[2].split(";") if n else []
            cl = [x == "TRUE" for x in r[3].split(";")] if n else []
            sw = [float(x) for x in r[4].split(";")] if n else []
            for j in range(M):
                got = obs[f"rctd_type_{j + 1}"].iloc[i]
                if j < n:
                    check(str(got) == tl[j], f"rctd_type_{j + 1} of {r[0]}")
                    check(bool(conf[i, j]) == cl[j], f"conf of {r[0]}")
                    check(close(sub[i, j], sw[j], a.tol), f"sub_weights of {r[0]}")
                    check(close(wm[i, types.index(tl[j])], sw[j], a.tol), "rctd_weights_multi")
                else:
                    check(got != got or got is None, f"empty slot {j + 1} of {r[0]}")
            check(close(float(obs["rctd_min_score"].iloc[i]) / float(r[5]), 1.0, a.tol),
                  f"min_score of {r[0]}")

    if a.mode == "full":
        check(ad.obs["rctd_converged"].dtype == bool, "rctd_converged")

    if a.spatial:
        sp = anndata.read_h5ad(a.spatial)
        check(list(sp.obs_names) == obs_names, "obs names differ from the spatial input")
        check(sp.shape == ad.shape, "shape differs from the spatial input")
        check((sp.X != ad.X).nnz == 0, "X differs from the spatial input")
        for key in sp.obsm.keys():
            check(np.array_equal(sp.obsm[key], ad.obsm[key]), f"obsm/{key} changed")
    print(f"ok {a.mode}: {ad.n_obs} obs, {len(names)} fitted, {int(filtered.sum())} filtered")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"h5ad_check: {e}", file=sys.stderr)
        sys.exit(1)
