#!/usr/bin/env bash
# Webdataset loader throughput for several workers x lanes settings on the photo-like set.
#   scripts/bench_loader_wds.sh [DIR] [BATCHES] [WORKERSxLANES[:VIA] ...]
# VIA is how the shards are read: file (default), pipe (`pipe:cat SHARD`) or http (curl from a
# python3 http.server on 127.0.0.1). Interleave settings to compare them under the same load,
# e.g. 2x2 2x2:pipe 2x2:http 2x2 2x2:pipe 2x2:http.
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
server=""
trap 'rm -f "$out"; [ -z "$server" ] || kill "$server"' EXIT
RANGE="{00000000..00000007}.tar"
for s in "${SETTINGS[@]}"; do
  via=file; [[ "$s" == *:* ]] && via=${s#*:}
  s=${s%%:*}
  case "$via" in
    file) pattern="$SHARDS/$RANGE" ;;
    pipe) pattern="pipe:cat $SHARDS/$RANGE" ;;
    http)
      if [ -z "$server" ]; then
        port=$(( 20000 + RANDOM % 20000 ))
        ${AIM_PYTHON:-/usr/bin/python3} -m http.server --bind 127.0.0.1 --directory "$SHARDS" "$port" > /dev/null 2>&1 &
        server=$!
        for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/00000000.tar" -o /dev/null && break; sleep 0.1; done
      fi
      pattern="http://127.0.0.1:$port/$RANGE" ;;
    *) echo "unknown VIA '$via' (file, pipe or http)" >&2; exit 2 ;;
  esac
  "$BIN/aim-bench-loader" --shards "$pattern" --workers "${s%x*}" --lanes "${s#*x}" \
    --batches "$BATCHES" --mode full | sed "s/^{/{\"via\": \"$via\", /" | tee -a "$out"
done
${AIM_PYTHON:-/usr/bin/python3} - "$out" <<'PYEOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
base = rows[0]["img_per_s"]
print("workers x lanes  via    img/s   vs first")
for r in rows:
    print(f"{r['workers']:7d} x {r['lanes']:<5d}  {r['via']:5s} {r['img_per_s']:7.0f}   {r['img_per_s'] / base:5.2f}x")
PYEOF
