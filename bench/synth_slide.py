#!/usr/bin/python3
"""A synthetic reference and slide of realistic size for bench/workflow_shards.sh.

  synth_slide.py N_PIXELS K_TYPES N_GENES OUT_DIR [SEED]

OUT_DIR/reference.h5ad: 150 cells per type (obs cell_type), counts Poisson(profile x nUMI),
nUMI log-normal around 2,000; each type's profile is a shared log-normal background with 3% of
the genes raised 4-16 fold.  OUT_DIR/spatial.h5ad: N_PIXELS pixels (obsm spatial), each one
type (60%) or a mix of two (40%), nUMI log-normal around 800.  Deterministic for a seed.
"""
import sys

import anndata
import numpy as np
import scipy.sparse as sp


def main():
    n_pixels, k, g = (int(v) for v in sys.argv[1:4])
    out = sys.argv[4]
    rng = np.random.default_rng(int(sys.argv[5]) if len(sys.argv) > 5 else 1)
    background = rng.lognormal(0.0, 1.5, g)
    profiles = np.tile(background, (k, 1))
    for t in range(k):
        markers = rng.choice(g, max(1, g * 3 // 100), replace=False)
        profiles[t, markers] *= rng.uniform(4, 16, markers.size)
    profiles /= profiles.sum(axis=1, keepdims=True)
    genes = [f"gene{i}" for i in range(g)]

    cells_per_type = 150
    types = np.repeat(np.arange(k), cells_per_type)
    numi = rng.lognormal(np.log(2000), 0.4, types.size)
    ref = sp.csr_matrix(rng.poisson(profiles[types] * numi[:, None]).astype(np.float32))
    a = anndata.AnnData(X=ref, obs={"cell_type": [f"type{t}" for t in types]})
    a.obs_names = [f"cell{i}" for i in range(types.size)]
    a.var_names = genes
    a.write_h5ad(f"{out}/reference.h5ad")

    first = rng.integers(0, k, n_pixels)
    second = rng.integers(0, k, n_pixels)
    w = np.where(rng.random(n_pixels) < 0.6, 1.0, rng.uniform(0.3, 0.7, n_pixels))
    mix = w[:, None] * profiles[first] + (1 - w[:, None]) * profiles[second]
    numi = rng.lognormal(np.log(800), 0.5, n_pixels)
    counts = np.zeros((n_pixels, g), dtype=np.float32)
    for start in range(0, n_pixels, 2000):  # in blocks: bounded memory
        stop = min(n_pixels, start + 2000)
        counts[start:stop] = rng.poisson(mix[start:stop] * numi[start:stop, None])
    s = anndata.AnnData(X=sp.csr_matrix(counts))
    s.obs_names = [f"px{i}" for i in range(n_pixels)]
    s.var_names = genes
    side = int(np.ceil(np.sqrt(n_pixels)))
    s.obsm["spatial"] = np.stack([np.arange(n_pixels) % side, np.arange(n_pixels) // side], 1).astype(float)
    s.write_h5ad(f"{out}/spatial.h5ad")


if __name__ == "__main__":
    main()
