#!/usr/bin/python3
"""Compares a directory of rctd CSV results with spacexr's (the gold files of
tests/data/gold/vignette/MODE): same files, headers and row names; every categorical and logical
field equal; every number within --tol (scores: relative).

usage: csv_check.py DIR GOLD_DIR MODE [--tol X]"""
import argparse
import csv
import sys

FILES = {
    "full": ["weights.csv"],
    "doublet": ["weights.csv", "weights_doublet.csv", "results_df.csv"],
    "multi": ["weights.csv", "multi_results.csv"],
}
SCORES = {"min_score", "singlet_score"}


def rows(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def number(s):
    try:
        return float(s)
    except ValueError:
        return None


def compare(name, got, want, tol):
    if len(got) != len(want):
        return f"{name}: {len(got)} lines, R has {len(want)}"
    header = want[0]
    if got[0] != header:
        return f"{name}: header {got[0][:5]}... differs from R's {header[:5]}..."
    worst = 0.0
    for g, w in zip(got[1:], want[1:]):
        if len(g) != len(w) or g[0] != w[0]:
            return f"{name}: row {g[0]} differs in shape or name from R's {w[0]}"
        for j in range(1, len(w)):
            col = header[j]
            gv = g[j].split(";") if name == "multi_results.csv" else [g[j]]
            wv = w[j].split(";") if name == "multi_results.csv" else [w[j]]
            if len(gv) != len(wv):
                return f"{name}: {g[0]} {col}: {g[j]!r} vs R's {w[j]!r}"
            for a, b in zip(gv, wv):
                x, y = number(a), number(b)
                quoted_text = (name == "results_df.csv" and col in ("first_type", "second_type")) or (
                    col in ("spot_class", "cell_types"))
                if x is None or y is None or quoted_text:
                    if a != b:
                        return f"{name}: {g[0]} {col}: {a!r} vs R's {b!r}"
                    continue
                diff = abs(x - y) / (abs(y) if col in SCORES else 1.0)
                worst = max(worst, diff)
                if diff > tol:
                    return f"{name}: {g[0]} {col}: {x!r} vs R's {y!r} (diff {diff:g} > {tol:g})"
    print(f"{name}: {len(want) - 1} rows equal to R's (largest difference {worst:.3g})")
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("gold")
    ap.add_argument("mode")
    ap.add_argument("--tol", type=float, default=1e-6)
    a = ap.parse_args()
    for name in FILES[a.mode]:
        msg = compare(name, rows(f"{a.dir}/{name}"), rows(f"{a.gold}/{name}"), a.tol)
        if msg:
            print(f"csv_check: {msg}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
