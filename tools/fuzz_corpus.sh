#!/bin/sh
# Seeds the cargo-fuzz corpora (issue 11): every example scene for `scene`, and the bodies of
# snapshots of a few example runs cut mid-run for `snapshot` (the harness adds the header).
# Usage: tools/fuzz_corpus.sh [path/to/tapwheel]   (default: target/release/tapwheel)
set -eu
bin=${1:-target/release/tapwheel}
mkdir -p fuzz/corpus/scene fuzz/corpus/snapshot
for f in scenes/*.ron scenes/*/*.ron tests/malformed/*.ron; do
    cp "$f" "fuzz/corpus/scene/$(echo "$f" | tr '/' '_')"
done
tmp=$(mktemp -d)
for s in hello back_pressure gate_sync task_window slot_select thermal_throttle; do
    "$bin" run "scenes/$s.ron" --until 7 --out "$tmp/$s" --snapshot "$tmp/$s.twsnap" >/dev/null || true
    [ -f "$tmp/$s.twsnap" ] && tail -n +2 "$tmp/$s.twsnap" > "fuzz/corpus/snapshot/$s.json"
done
rm -rf "$tmp"
