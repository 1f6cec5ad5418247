#!/usr/bin/python3
"""Checks rctd report's output as a person would see it (used by tests/test_report.c).

  report_check.py png DIR --side S --types K --colours HEX,... [--dpi N]
      the PNG maps of a synthetic result (lib/stage/synth_result.h's layout: pixel i at
      (i mod S, i div S), type k = x K / S, doublets in rows y < S / 10, i mod 10 = 7 filtered):
      at the centre of each type's band, in a singlet row, dominant_type.png shows that type's
      colour and type_<name>.png shows viridis' top colour, the other types' maps its bottom one.
  report_check.py browser HTML SHOT.png --sections a,b --images N --colours HEX,...
                  [--min-pixels N] [--min-colours N]
      renders HTML in Debian's headless chromium (a fresh profile, no network), checks the DOM
      (sections, N embedded PNG images, no script, nothing fetched), the log (no console
      message, no failed load) and the screenshot (the type colours appear: the maps are drawn).
  report_check.py spaceranger SPATIAL.h5ad OUTDIR
      writes a Space Ranger outs/ folder from an h5ad (counts as filtered_feature_bc_matrix.h5,
      obsm/spatial as array_row/array_col of spatial/tissue_positions.csv, with a header, every
      5th spot in_tissue = 0 and one spot the matrix does not hold).
  report_check.py coords RESULT.h5ad OUTDIR
      the result's obs names and obsm/spatial are the in-tissue spots of that folder.
  report_check.py multiqc DIR SAMPLE=RESULT.h5ad ...
      runs MultiQC (Debian's multiqc) on the *_mqc.json / *_mqc.tsv files in DIR and checks that
      its General Statistics table has one row per sample with the values computed here from
      each result h5ad (pixels fitted, % filtered, % singlet / doublet / reject, sigma, top
      types).
Exit status 0 and "ok ..." when every check passes; otherwise 1 with the first failure."""
import os
import re
import shutil
import subprocess
import sys
import tempfile

VIRIDIS_TOP = (253, 231, 37)
VIRIDIS_BOTTOM = (68, 1, 84)


def fail(msg):
    print("report_check: " + msg)
    sys.exit(1)


def hex_rgb(h):
    h = h.lstrip("#")
    return tuple(int(h[i:i + 2], 16) for i in (0, 2, 4))


def arg(args, name, default=None):
    if name in args:
        return args[args.index(name) + 1]
    if default is None:
        fail("missing " + name)
    return default


def frame(img):
    text = img.info.get("rctd-frame")
    if not text:
        fail("no rctd-frame text chunk in the PNG")
    f = dict(kv.split("=") for kv in text.split())
    return float(f["x0"]), float(f["y0"]), float(f["scale"]), int(f["margin"])


def at(img, x, y):
    x0, y0, scale, margin = frame(img)
    col = int((x - x0) * scale + margin)
    row = int((y0 - y) * scale + margin)
    return img.convert("RGB").getpixel((col, row))


def check_png(d, args):
    from PIL import Image
    side, k_types = int(arg(args, "--side")), int(arg(args, "--types"))
    colours = [hex_rgb(c) for c in arg(args, "--colours").split(",")]
    dpi = int(arg(args, "--dpi", "0"))
    dom = Image.open(os.path.join(d, "dominant_type.png"))
    if dpi and abs(dom.info.get("dpi", (0, 0))[0] - dpi) > 1:
        fail("dominant_type.png: dpi %s, expected %d" % (dom.info.get("dpi"), dpi))
    y = side // 2  # a singlet row
    for k in range(k_types):
        x = (2 * k + 1) * side // (2 * k_types)  # centre of band k
        i = y * side + x
        if i % 10 == 7:
            x += 1
        got = at(dom, x, y)
        if got != colours[k]:
            fail("dominant_type.png at (%d, %d): %s, expected type %d's %s" % (x, y, got, k + 1,
                                                                               colours[k]))
        for j in (k, (k + 1) % k_types):
            img = Image.open(os.path.join(d, "type_type%02d.png" % (j + 1)))
            want = VIRIDIS_TOP if j == k else VIRIDIS_BOTTOM
            if at(img, x, y) != want:
                fail("type_type%02d.png at (%d, %d): %s, expected %s" % (j + 1, x, y,
                                                                         at(img, x, y), want))
    filtered = Image.open(os.path.join(d, "filtered.png"))
    for i in (7, 17, side * (side // 2) + 27):  # filtered pixels: drawn on top, dark grey
        x, y = i % side, i // side
        if at(filtered, x, y) != (82, 82, 82):
            fail("filtered.png at (%d, %d): %s, expected the filtered grey" % (x, y,
                                                                              at(filtered, x, y)))
    grey = at(dom, 0, 0)  # corner: drawn; the doublet rows are drawn too
    if grey == (255, 255, 255):
        fail("dominant_type.png: nothing drawn at (0, 0)")
    print("ok png: %d types at their band centres" % k_types)


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                  "--enable-logging=stderr", "--v=0"]


def chromium(extra, url):
    exe = shutil.which("chromium")
    if not exe:
        fail("chromium not found: run scripts/setup.sh (Debian package chromium)")
    with tempfile.TemporaryDirectory() as profile:
        cmd = [exe] + CHROMIUM_FLAGS + ["--user-data-dir=" + profile] + extra + [url]
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=180,
                           env=dict(os.environ, HOME=profile))
    if p.returncode != 0:
        fail("chromium exited %d: %s" % (p.returncode, p.stderr.decode()[-500:]))
    return p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def check_log(log):
    for line in log.splitlines():
        if "CONSOLE" in line or "net::ERR" in line or "Failed to load" in line:
            fail("browser log: " + line.strip())


def check_browser(html, shot, args):
    from PIL import Image
    sections = arg(args, "--sections").split(",")
    n_images = int(arg(args, "--images"))
    colours = [hex_rgb(c) for c in arg(args, "--colours").split(",")]
    min_pixels = int(arg(args, "--min-pixels", "20"))
    min_colours = int(arg(args, "--min-colours", str(len(colours))))
    url = "file://" + os.path.abspath(html)
    dom, log = chromium(["--dump-dom"], url)
    check_log(log)
    for s in sections:
        if 'id="%s"' % s not in dom:
            fail("no section %s in the rendered page" % s)
    images = re.findall(r'<img [^>]*src="data:image/png;base64,', dom)
    if len(images) != n_images:
        fail("%d embedded PNG images, expected %d" % (len(images), n_images))
    if "<script" in dom or re.search(r'(src|href)="(https?:)?//', dom):
        fail("the page has a script or fetches something")
    _, log = chromium(["--window-size=1280,2400", "--screenshot=" + os.path.abspath(shot)], url)
    check_log(log)
    img = Image.open(shot).convert("RGB")
    box = first_map_box(img)
    inside = img.crop((box[0] + 1, box[1] + 1, box[2], box[3]))
    counts = colour_counts(inside)
    seen = [c for c in colours if counts.get(c, 0) >= min_pixels]
    if len(seen) < min_colours:
        fail("the dominant type map %s shows %d of the type colours (>= %d pixels each), "
             "expected %d: the map looks blank" % (box, len(seen), min_pixels, min_colours))
    drawn = 1 - counts.get((255, 255, 255), 0) / (inside.width * inside.height)
    if drawn < 0.05:
        fail("the dominant type map is %.1f%% drawn" % (100 * drawn))
    everything = colour_counts(img)
    viridis = sum(n for c, n in everything.items() if c in (VIRIDIS_TOP, VIRIDIS_BOTTOM))
    if viridis < 20 * min_pixels:
        fail("no proportion map drawn (viridis ends: %d pixels)" % viridis)
    print("ok browser: %d sections, %d images, dominant map %dx%d %.0f%% drawn with %d type "
          "colours" % (len(sections), n_images, inside.width, inside.height, 100 * drawn,
                       len(seen)))


def colour_counts(img):
    counts = {}
    for n, c in img.getcolors(maxcolors=1 << 24):
        counts[c] = counts.get(c, 0) + n
    return counts


def first_map_box(img):
    """The first map's border (1 px #dddddd, the report's img.map): the topmost long run of
    that colour, then down its left edge.  (left, top, right, bottom), right/bottom on the
    border."""
    border = (221, 221, 221)
    px = img.load()
    for y in range(img.height):
        run_start, x = None, 0
        while x < img.width:
            if px[x, y] == border:
                start = x
                while x < img.width and px[x, y] == border:
                    x += 1
                if x - start >= 100:
                    run_start, run_end = start, x - 1
                    break
            x += 1
        if run_start is None:
            continue
        bottom = y + 1
        while bottom < img.height and px[run_start, bottom] == border:
            bottom += 1
        if bottom - y >= 50:
            return run_start, y, run_end, bottom - 1
    fail("no map found in the screenshot (no bordered image)")


def make_spaceranger(h5ad, out):
    import anndata
    import h5py
    import numpy as np
    import scipy.sparse as sp
    ad = anndata.read_h5ad(h5ad)
    os.makedirs(os.path.join(out, "spatial"), exist_ok=True)
    X = sp.csr_matrix(ad.X).astype(np.int32)  # cells x genes: 10x CSC (genes x cells) is this CSR
    with h5py.File(os.path.join(out, "filtered_feature_bc_matrix.h5"), "w") as f:
        m = f.create_group("matrix")
        m["barcodes"] = np.array(ad.obs_names, dtype="S")
        m["data"] = X.data
        m["indices"] = X.indices.astype(np.int64)
        m["indptr"] = X.indptr.astype(np.int64)
        m["shape"] = np.array([ad.n_vars, ad.n_obs], dtype=np.int32)
        g = m.create_group("features")
        g["name"] = np.array(ad.var_names, dtype="S")
        g["id"] = np.array(["ID%05d" % i for i in range(ad.n_vars)], dtype="S")
        g["feature_type"] = np.array(["Gene Expression"] * ad.n_vars, dtype="S")
        g["genome"] = np.array(["mm10"] * ad.n_vars, dtype="S")
    xy = np.asarray(ad.obsm["spatial"])
    with open(os.path.join(out, "spatial", "tissue_positions.csv"), "w") as f:
        f.write("barcode,in_tissue,array_row,array_col,pxl_row_in_fullres,pxl_col_in_fullres\n")
        f.write("NOTINMATRIX-1,1,0,0,0,0\n")
        for i, b in enumerate(ad.obs_names):
            f.write("%s,%d,%r,%r,%d,%d\n" % (b, 0 if i % 5 == 4 else 1, float(xy[i, 0]),
                                               float(xy[i, 1]), 10 * i, 20 * i))
    print("ok spaceranger: %d spots" % ad.n_obs)


def check_coords(result, folder):
    import anndata
    import numpy as np
    ad = anndata.read_h5ad(result)
    want = {}
    with open(os.path.join(folder, "spatial", "tissue_positions.csv")) as f:
        next(f)
        for line in f:
            b, t, x, y = line.strip().split(",")[:4]
            if t == "1" and b != "NOTINMATRIX-1":
                want[b] = (float(x), float(y))
    names = list(ad.obs_names)
    if sorted(names) != sorted(want):
        fail("obs names: %d spots, expected the %d in tissue" % (len(names), len(want)))
    xy = np.asarray(ad.obsm["spatial"])
    for i, b in enumerate(names):
        if tuple(xy[i]) != want[b]:
            fail("obsm/spatial of %s: %s, expected %s" % (b, tuple(xy[i]), want[b]))
    if "rctd_weights" not in ad.obsm:
        fail("no obsm/rctd_weights")
    print("ok coords: %d spots in tissue with their positions" % len(names))


def expected_stats(h5ad):
    import anndata
    ad = anndata.read_h5ad(h5ad)
    u = ad.uns["rctd"]
    fitted = int(u["n_pixels_fitted"])
    want = {"pixels_fitted": fitted, "sigma": float(u["sigma"]),
            "pct_filtered": 100.0 * int(u["n_pixels_filtered"]) / int(u["n_pixels_input"])}
    if "rctd_spot_class" in ad.obs:
        cls = ad.obs["rctd_spot_class"].astype(str).value_counts()
        want["pct_singlet"] = 100.0 * cls.get("singlet", 0) / fitted
        want["pct_doublet"] = 100.0 * (cls.get("doublet_certain", 0) +
                                       cls.get("doublet_uncertain", 0)) / fitted
        want["pct_reject"] = 100.0 * cls.get("reject", 0) / fitted
    dom = ad.obs["rctd_dominant_type"].astype(str)
    counts = dom[dom != "filtered"].value_counts()
    order = sorted(counts.items(), key=lambda kv: (-kv[1], list(u["cell_types"]).index(kv[0])))
    want["top_types"] = ", ".join("%s %.0f%%" % (t, 100.0 * n / fitted) for t, n in order[:3])
    return want


def check_multiqc(d, pairs):
    exe = shutil.which("multiqc")
    if not exe:
        fail("multiqc not found: run scripts/setup.sh (Debian package multiqc)")
    out = os.path.join(d, "multiqc_out")
    files = sorted(os.path.join(d, f) for f in os.listdir(d) if re.search(r"_mqc\.(json|tsv)$", f))
    p = subprocess.run([exe, "-q", "-f", "--no-ansi", "-o", out] + files, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=300)
    if p.returncode != 0:
        fail("multiqc exited %d: %s" % (p.returncode, p.stdout.decode()[-800:]))
    with open(os.path.join(out, "multiqc_data", "multiqc_general_stats.txt")) as f:
        rows = [line.rstrip("\n").split("\t") for line in f]
    header = [h.split("-")[-1] for h in rows[0]]
    table = {r[0]: dict(zip(header[1:], r[1:])) for r in rows[1:]}
    for pair in pairs:
        sample, h5ad = pair.split("=", 1)
        if sample not in table:
            fail("sample %s not in MultiQC's general statistics (%s)" % (sample, list(table)))
        for key, value in expected_stats(h5ad).items():
            got = table[sample].get(key)
            if got is None or got == "":
                fail("%s: no %s column in MultiQC's table" % (sample, key))
            ok = got == value if isinstance(value, str) else \
                abs(float(got) - value) <= 5e-4 * max(1.0, abs(value))
            if not ok:
                fail("%s: %s is %s in MultiQC's table, expected %s" % (sample, key, got, value))
    print("ok multiqc: %d samples in one general statistics table" % len(pairs))


def main():
    if len(sys.argv) < 3:
        fail(__doc__)
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "png":
        check_png(args[0], args[1:])
    elif cmd == "browser":
        check_browser(args[0], args[1], args[2:])
    elif cmd == "spaceranger":
        make_spaceranger(args[0], args[1])
    elif cmd == "coords":
        check_coords(args[0], args[1])
    elif cmd == "multiqc":
        check_multiqc(args[0], args[1:])
    else:
        fail("unknown check " + cmd)


if __name__ == "__main__":
    main()
