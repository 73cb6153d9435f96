#!/usr/bin/env bash
# The optimizer step and clipping, per-tensor (torch::optim::AdamW::step, clip_grad_norm_)
# against multi-tensor (aim::optim::adamw_step, clip_grad_norm: what aim-train runs), in one
# aim-bench-model binary, interleaved ROUNDS times with the order alternating, plus an older
# build's binary when BEFORE_BIN is set (e.g. main's build before the change): the whole step
# must not get slower. Prints one JSON line per run; compare opt_s_median, clip_s_median and
# step_s_median. Usage: scripts/bench_optim.sh [rounds] [steps] [preset]
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
STEPS=${2:-30}
PRESET=${3:-aim-fmnist-tiny}
BIN=${AIM_BUILD_DIR:-build}/bin/aim-bench-model
[ -x "$BIN" ] || { echo "build first: bash scripts/build.sh" >&2; exit 1; }
args=(--preset "$PRESET" --batch 64 --steps "$STEPS" --warmup 3)
for ((r = 1; r <= ROUNDS; ++r)); do
  runs=(multi-tensor per-tensor)
  ((r % 2 == 0)) && runs=(per-tensor multi-tensor)
  for o in "${runs[@]}"; do echo "round $r $o: $("$BIN" "${args[@]}" --optimizer "$o")"; done
  if [ -n "${BEFORE_BIN:-}" ]; then echo "round $r before: $("$BEFORE_BIN" "${args[@]}")"; fi
done
