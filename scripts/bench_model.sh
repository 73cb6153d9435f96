#!/usr/bin/env bash
# Side-by-side model-step benchmark: aim-bench-model (C++) and ../shared/bench/ref_aim.py
# (PyTorch) on the same shapes, same machine, same ATen, in one run. Prints both JSON lines
# and the img/s ratio per configuration. Usage: scripts/bench_model.sh [steps]
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-10}
BIN=${AIM_BUILD_DIR:-build}/bin/aim-bench-model
REF=${AIM_REF_AIM:-../shared/bench/ref_aim.py}
PY=${AIM_PYTHON:-/usr/bin/python3}
[ -x "$BIN" ] || { echo "build first: bash scripts/build.sh" >&2; exit 1; }

run() {  # name, shared args
  local name=$1; shift
  local ours ref
  ours=$("$BIN" "$@" --steps "$STEPS")
  ref=$("$PY" "$REF" "$@" --steps "$STEPS")
  echo "== $name: $*"
  echo "aim (C++):        $ours"
  echo "ref_aim.py:       $ref"
  "$PY" - "$ours" "$ref" <<'PY'
import json, sys
a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
assert a["params"] == b["params"], f"parameter counts differ: {a['params']} vs {b['params']}"
print(f"ratio (aim / ref): {a['img_per_s'] / b['img_per_s']:.2f}x   aim MFU {a['mfu']*100:.1f}%")
PY
}

run "32px" --img 32 --patch 4 --ch 3 --width 192 --depth 6 --heads 3 --head-blocks 2 --head-width 384 --batch 64
run "224px" --img 224 --patch 14 --ch 3 --width 384 --depth 6 --heads 3 --head-blocks 2 --head-width 512 --batch 16
