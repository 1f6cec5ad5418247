#!/bin/sh
# Installs the Debian packages rctd needs to build and test, only those that are missing.
# As root it runs apt-get; otherwise it prints the exact command and exits non-zero.
#   scripts/setup.sh          what `make test` and `make demo` need
#   scripts/setup.sh slurm    also a single-node SLURM cluster's daemons (`make test-slurm`)
set -e
PKGS="libhdf5-dev libzstd-dev libgsl-dev libyaml-dev zlib1g-dev pkg-config r-base-core r-cran-quadprog r-cran-matrix python3-anndata snakemake"
# SLURM 22.05 and munge without the recommended optional plugins (dozens of packages the test
# does not use).
SLURM_PKGS="slurmctld slurmd slurm-client munge"
APT_OPTS=""
case "${1:-}" in
  "") ;;
  slurm)
    PKGS="$PKGS $SLURM_PKGS"
    APT_OPTS="--no-install-recommends"
    ;;
  *)
    echo "rctd setup: unknown extra '$1' (known: slurm)" >&2
    exit 2
    ;;
esac

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
  DEBIAN_FRONTEND=noninteractive apt-get install -y $APT_OPTS $missing
  exit 0
fi
echo "rctd setup: missing packages:$missing" >&2
echo "rctd setup: run as root:" >&2
echo "  apt-get update && apt-get install -y${APT_OPTS:+ $APT_OPTS}$missing" >&2
exit 1
