#!/usr/bin/env bash
# Side-by-side model-step benchmark: aim-bench-model (C++) and scripts/reference/ref_aim.py
# (PyTorch) on the same shapes, same machine, same ATen, in one run. Each configuration is
# measured in PAIRS interleaved pairs, alternating which program runs first (on a small
# machine the second of two back-to-back runs tends to be faster), and the median ratio is
# reported. Usage: scripts/bench_model.sh [steps per run] [pairs] [32px|224px|all]
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-10}
PAIRS=${2:-1}
WHICH=${3:-all}
BIN=${AIM_BUILD_DIR:-build}/bin/aim-bench-model
REF=${AIM_REF_AIM:-scripts/reference/ref_aim.py}
PY=${AIM_PYTHON:-/usr/bin/python3}
[ -x "$BIN" ] || { echo "build first: bash scripts/build.sh" >&2; exit 1; }

run() {  # name, shared args
  local name=$1; shift
  echo "== $name: $* (steps $STEPS, pairs $PAIRS)"
  local results=()
  for ((p = 1; p <= PAIRS; ++p)); do
    local ours ref order
    if ((p % 2 == 1)); then
      order="aim first"
      ours=$("$BIN" "$@" --steps "$STEPS")
      ref=$("$PY" "$REF" "$@" --steps "$STEPS")
    else
      order="ref first"
      ref=$("$PY" "$REF" "$@" --steps "$STEPS")
      ours=$("$BIN" "$@" --steps "$STEPS")
    fi
    echo "pair $p ($order)"
    echo "  aim (C++):   $ours"
    echo "  ref_aim.py:  $ref"
    results+=("$ours" "$ref")
  done
  "$PY" - "${results[@]}" <<'PY'
import json, statistics, sys
runs = [json.loads(s) for s in sys.argv[1:]]
pairs = list(zip(runs[0::2], runs[1::2]))
for a, b in pairs:
    assert a["params"] == b["params"], f"parameter counts differ: {a['params']} vs {b['params']}"
ratios = [a["img_per_s"] / b["img_per_s"] for a, b in pairs]
print("ratios (aim / ref): " + " ".join(f"{r:.2f}" for r in ratios))
print(f"median ratio {statistics.median(ratios):.2f}x (min {min(ratios):.2f}, max {max(ratios):.2f}); "
      f"aim median {statistics.median(a['img_per_s'] for a, _ in pairs):.1f} img/s, "
      f"ref median {statistics.median(b['img_per_s'] for _, b in pairs):.1f} img/s, "
      f"aim MFU {statistics.median(a['mfu'] for a, _ in pairs) * 100:.1f}%")
PY
}

if [[ $WHICH == all || $WHICH == 32px ]]; then
  run "32px" --img 32 --patch 4 --ch 3 --width 192 --depth 6 --heads 3 --head-blocks 2 --head-width 384 --batch 64
fi
if [[ $WHICH == all || $WHICH == 224px ]]; then
  run "224px" --img 224 --patch 14 --ch 3 --width 384 --depth 6 --heads 3 --head-blocks 2 --head-width 512 --batch 16
fi
