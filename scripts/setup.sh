#!/bin/sh
# Installs the Debian packages rctd needs to build and test, only those that are missing.
# As root it runs apt-get; otherwise it prints the exact command and exits non-zero.
set -e
PKGS="libhdf5-dev libzstd-dev libgsl-dev libyaml-dev zlib1g-dev pkg-config r-base-core r-cran-quadprog r-cran-matrix python3-anndata snakemake python3-pil chromium"
# Installed without their recommended packages (multiqc recommends TeX Live).
PKGS_NO_RECOMMENDS="multiqc"

if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "rctd setup: dpkg-query not found; this script is for Debian/Ubuntu." >&2
  echo "rctd setup: install the equivalents of: $PKGS" >&2
  exit 1
fi

missing=""
missing_norec=""
for pkg in $PKGS_NO_RECOMMENDS; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  case "$status" in
    *"install ok installed"*) ;;
    *) missing_norec="$missing_norec $pkg" ;;
  esac
done
for pkg in $PKGS; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  case "$status" in
    *"install ok installed"*) ;;
    *) missing="$missing $pkg" ;;
  esac
done
[ -z "$missing$missing_norec" ] && exit 0

if [ "$(id -u)" = 0 ]; then
  echo "rctd setup: installing$missing$missing_norec" >&2
  apt-get update
  [ -z "$missing" ] || DEBIAN_FRONTEND=noninteractive apt-get install -y $missing
  [ -z "$missing_norec" ] ||
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing_norec
  exit 0
fi
echo "rctd setup: missing packages:$missing$missing_norec" >&2
echo "rctd setup: run as root:" >&2
[ -z "$missing" ] || echo "  apt-get update && apt-get install -y$missing" >&2
[ -z "$missing_norec" ] || echo "  apt-get install -y --no-install-recommends$missing_norec" >&2
exit 1
