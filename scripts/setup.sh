#!/bin/sh
# Installs the Debian packages rctd needs to build and test, only those that are missing.
# As root it runs apt-get; otherwise it prints the exact command and exits non-zero.
set -e
PKGS="libhdf5-dev libzstd-dev libgsl-dev libyaml-dev zlib1g-dev pkg-config r-base-core r-cran-quadprog r-cran-matrix python3-anndata snakemake procps xz-utils clang libclang-rt-14-dev"

if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "rctd setup: dpkg-query not found; this script is for Debian/Ubuntu." >&2
  echo "rctd setup: install the equivalents of: $PKGS" >&2
  exit 1
fi

missing=""
for pkg in $PKGS; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  case "$status" in
    *"install ok installed"*) ;;
    *) missing="$missing $pkg" ;;
  esac
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" = 0 ]; then
  echo "rctd setup: installing$missing" >&2
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y $missing
  exit 0
fi
echo "rctd setup: missing packages:$missing" >&2
echo "rctd setup: run as root:" >&2
echo "  apt-get update && apt-get install -y$missing" >&2
exit 1
