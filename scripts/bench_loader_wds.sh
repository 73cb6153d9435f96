#!/usr/bin/env bash
# Webdataset loader throughput for several workers x lanes settings on the photo-like set.
#   scripts/bench_loader_wds.sh [DIR] [BATCHES] [WORKERSxLANES ...]
# DIR (default /tmp/aim-bench-photos) is generated when absent (2000 ~470x450 JPEGs, see
# bench_loader.sh) and packed once into DIR-shards/ (8 shards of 250 samples, the original
# JPEG bytes). Default settings: 1x1 2x1 2x2 4x1 4x4. One JSON line per setting, then a table.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-/tmp/aim-bench-photos}
BATCHES=${2:-12}
shift $(( $# < 2 ? $# : 2 ))
SETTINGS=("$@")
[ ${#SETTINGS[@]} -gt 0 ] || SETTINGS=(1x1 2x1 2x2 4x1 4x4)
BIN=${AIM_BUILD_DIR:-build}/bin
if [ ! -d "$DIR" ]; then "$BIN/aim-bench-loader" --generate 2000 --dir "$DIR"; fi
SHARDS="$DIR-shards"
if [ ! -f "$SHARDS/00000007.tar" ]; then
  "$BIN/aim-data" pack --from image_folder --root "$DIR" --out "$SHARDS" --shard-size 250 > /dev/null
fi
echo "# $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg);" \
     "$(ls "$SHARDS"/*.tar | wc -l) shards in $SHARDS; $BATCHES batches of 64 after one warm-up batch"
out=$(mktemp)
for s in "${SETTINGS[@]}"; do
  "$BIN/aim-bench-loader" --shards "$SHARDS/{00000000..00000007}.tar" --workers "${s%x*}" --lanes "${s#*x}" \
    --batches "$BATCHES" --mode full | tee -a "$out"
done
${AIM_PYTHON:-/usr/bin/python3} - "$out" <<'PYEOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
base = rows[0]["img_per_s"]
print("workers x lanes   img/s   vs first")
for r in rows:
    print(f"{r['workers']:7d} x {r['lanes']:<5d} {r['img_per_s']:7.0f}   {r['img_per_s'] / base:5.2f}x")
PYEOF
rm -f "$out"
