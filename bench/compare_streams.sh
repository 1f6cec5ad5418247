#!/bin/bash
# compare_streams.sh A B [RCTD_VIEW]: whether two rctd streams hold the same records, printed by
# rctd-view (every record but provenance.*, whose command line differs between runs).  Used for
# the before/after comparisons of bench/NOTES.md: build the old binaries from main in a scratch
# worktree, run the same stage with both on the same input, then compare the outputs.
set -eo pipefail
view=${3:-$(dirname "$0")/../bin/rctd-view}
command -v "$view" > /dev/null ||
  { echo "compare_streams.sh: $view: no viewer; build it (make bin/rctd-view)" >&2; exit 2; }
for f in "$1" "$2"; do
  "$view" "$f" > /dev/null || { echo "compare_streams.sh: $f: rctd-view cannot read it" >&2; exit 2; }
done
records() { "$view" "$1" | tail -n +2 | cut -f1 | grep -v '^provenance\.' || true; }
[ "$(records "$1")" == "$(records "$2")" ] || { echo "record lists differ"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
bad=0
for r in $(records "$1"); do
  "$view" "$1" "$r" > "$tmp/a" && "$view" "$2" "$r" > "$tmp/b" ||
    { echo "record $r: rctd-view failed"; exit 2; }
  cmp -s "$tmp/a" "$tmp/b" || { echo "record $r differs"; bad=1; }
done
[ $bad = 0 ] && echo "same records (provenance aside)"
exit $bad
