#!/bin/sh
# Installs the Debian packages rctd needs to build and test, only those that are missing.
# As root it runs apt-get; otherwise it prints the exact command and exits non-zero.
#   scripts/setup.sh          what `make test` and `make demo` need
#   scripts/setup.sh slurm    also a single-node SLURM cluster's daemons (`make test-slurm`)
set -e
PKGS="libhdf5-dev libzstd-dev libgsl-dev libyaml-dev zlib1g-dev pkg-config r-base-core r-cran-quadprog r-cran-matrix python3-anndata snakemake python3-pil chromium procps xz-utils clang libclang-rt-14-dev"
# Installed without their recommended packages: multiqc recommends TeX Live; SLURM 22.05 and
# munge recommend dozens of optional plugins the test does not use.
PKGS_NO_RECOMMENDS="multiqc"
case "${1:-}" in
  "") ;;
  slurm) PKGS_NO_RECOMMENDS="$PKGS_NO_RECOMMENDS slurmctld slurmd slurm-client munge" ;;
  *)
    echo "rctd setup: unknown extra '$1' (known: slurm)" >&2
    exit 2
    ;;
esac

if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "rctd setup: dpkg-query not found; this script is for Debian/Ubuntu." >&2
  echo "rctd setup: install the equivalents of: $PKGS $PKGS_NO_RECOMMENDS" >&2
  exit 1
fi

# The packages of LIST that are not installed.
missing_of() {
  for pkg in $1; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    case "$status" in
      *"install ok installed"*) ;;
      *) printf ' %s' "$pkg" ;;
    esac
  done
}
missing=$(missing_of "$PKGS")
missing_norec=$(missing_of "$PKGS_NO_RECOMMENDS")
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
[ -z "$missing_norec" ] || echo "  apt-get update && apt-get install -y --no-install-recommends$missing_norec" >&2
exit 1
