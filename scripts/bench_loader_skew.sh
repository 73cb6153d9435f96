#!/usr/bin/env bash
# Worker utilisation of the webdataset lanes with skewed decode costs (head-of-line blocking).
#   scripts/bench_loader_skew.sh [BATCHES] [WORKERSxLANES ...]
# Each setting runs `aim-bench-loader --skew`: tiny images whose "decode" is a 4 ms sleep, 10 %
# of them 10x longer (a sleep, so that 16 workers fit on a 2-core machine and only the
# scheduling is measured). Utilisation = time in decode / (workers x wall); 1.0 is ideal.
# AIM_BENCH_BINS="dirA dirB" runs every setting with each build's aim-bench-loader in turn
# (e.g. before and after a change), interleaved. Defaults: 20 batches; 2x2 4x4 16x8 16x16.
set -euo pipefail
cd "$(dirname "$0")/.."
BATCHES=${1:-20}
shift $(( $# < 1 ? $# : 1 ))
SETTINGS=("$@")
[ ${#SETTINGS[@]} -gt 0 ] || SETTINGS=(2x2 4x4 16x8 16x16)
BINS=(${AIM_BENCH_BINS:-${AIM_BUILD_DIR:-build}/bin})
echo "# $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for s in "${SETTINGS[@]}"; do
  for b in "${BINS[@]}"; do
    "$b/aim-bench-loader" --skew --workers "${s%x*}" --lanes "${s#*x}" --batches "$BATCHES" |
      sed "s|^{|{\"build\": \"$b\", |" | tee -a "$out"
  done
done
${AIM_PYTHON:-/usr/bin/python3} - "$out" <<'PYEOF'
import json, sys
print("build                          workers x lanes  utilisation   img/s  (ideal)")
for r in map(json.loads, open(sys.argv[1])):
    print(f"{r['build'][-30:]:30s} {r['workers']:5d} x {r['lanes']:<5d}  {r['utilisation']:9.3f}  {r['img_per_s']:7.0f}  ({r['ideal_img_per_s']:.0f})")
PYEOF
