#!/usr/bin/env bash
# Loader benchmark, ours next to the torchvision reference, same folder and worker count.
#   scripts/bench_loader.sh [DIR] [WORKERS] [BATCHES]
# DIR defaults to /tmp/aim-bench-photos, generated (2000 photo-like ~470x450 JPEGs) if absent.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-/tmp/aim-bench-photos}
WORKERS=${2:-2}
BATCHES=${3:-12}
BIN=${AIM_BUILD_DIR:-build}/bin
REF=${AIM_REF_LOADER:-scripts/reference/ref_loader.py}
PY=${AIM_PYTHON:-/usr/bin/python3}
if [ ! -d "$DIR" ]; then "$BIN/aim-bench-loader" --generate 2000 --dir "$DIR"; fi
echo "# $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores;" \
     "$(find "$DIR" -name '*.jpg' | wc -l) JPEGs in $DIR; workers $WORKERS, $BATCHES batches of 64"
out=$(mktemp)
"$BIN/aim-bench-loader" --dir "$DIR" --workers "$WORKERS" --batches "$BATCHES" --mode all | tee "$out"
"$PY" "$REF" "$DIR" "$WORKERS" "$BATCHES" | sed 's/^{/{"pipeline": "torchvision-ref", /' | tee -a "$out"
"$PY" - "$out" <<'PYEOF'
import json, sys
rows = {r["pipeline"]: r for r in map(json.loads, open(sys.argv[1]))}
ref = rows["torchvision-ref"]["img_per_s"]
for name, r in rows.items():
    print(f"{name:18s} {r['img_per_s']:8.0f} img/s  {r['img_per_s'] / ref:5.2f}x ref")
full, dec = rows["aim-full"]["img_per_s"], rows["aim-decode-only"]["img_per_s"]
print(f"aim-full reaches {100 * full / dec:.0f}% of the decode-only ceiling")
PYEOF
rm -f "$out"
