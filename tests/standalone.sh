#!/bin/sh
# The repository stands alone: a clone of it, in an empty directory with nothing beside it and
# with HOME and XDG_CACHE_HOME empty, passes `make test` ("N passed, 0 failed").  As a normal
# user on a machine that lacks packages, `make test` prints the exact apt-get line, exits
# non-zero and builds nothing.  Run by .ci/run (as root); usage: tests/standalone.sh [REPO]
set -u
repo=$(cd "${1:-$(dirname "$0")/..}" && pwd)
work=$(mktemp -d /tmp/rctd-standalone.XXXXXX)
trap 'rm -rf "$work"' EXIT INT TERM
fail() { echo "standalone: $*" >&2; exit 1; }

# 1. A normal user without the packages: the apt-get line, a non-zero exit, nothing built.
if [ "$(id -u)" = 0 ]; then
  mkdir -p "$work/user/fakebin" "$work/user/home"
  git clone -q "$repo" "$work/user/rctd" || fail "cannot clone $repo"
  # dpkg-query that knows no package: every package the setup needs is missing.
  printf '#!/bin/sh\nexit 1\n' > "$work/user/fakebin/dpkg-query"
  chmod 755 "$work/user/fakebin/dpkg-query" "$work"
  chown -R nobody "$work/user"
  out=$(cd "$work/user/rctd" && setpriv --reuid=nobody --regid=nogroup --clear-groups \
          env -i PATH="$work/user/fakebin:/usr/bin:/bin" HOME="$work/user/home" make test 2>&1)
  status=$?
  [ $status -ne 0 ] || fail "make test as a normal user without packages exited 0"
  echo "$out" | grep -q '^  apt-get update && apt-get install -y libhdf5-dev ' ||
    fail "make test as a normal user did not print the apt-get line: $out"
  [ ! -e "$work/user/rctd/build" ] && [ ! -e "$work/user/rctd/bin" ] ||
    fail "make test as a normal user without packages built something"
  echo "standalone: normal user without packages: apt-get line printed, exit $status, nothing built"
fi

# 2. A clone alone, empty HOME and cache: the whole suite passes.
mkdir -p "$work/alone/home" "$work/alone/cache"
git clone -q "$repo" "$work/alone/rctd" || fail "cannot clone $repo"
cd "$work/alone/rctd" || fail "no clone"
HOME="$work/alone/home" XDG_CACHE_HOME="$work/alone/cache" RCTD_REPO= make test \
  > "$work/alone/log" 2>&1
status=$?
tail -n 3 "$work/alone/log"
summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$work/alone/log" | tail -n 1)
[ $status -eq 0 ] || fail "make test in a lone clone exited $status"
echo "$summary" | grep -qE '^[1-9][0-9]* passed, 0 failed' ||
  fail "make test in a lone clone: '$summary'"
echo "standalone: lone clone: $summary"
