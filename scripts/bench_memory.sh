#!/usr/bin/env bash
# Activation checkpointing, optimizer sharding and the --dry-run memory plan, measured on this
# machine's CPU: a ~104 M-parameter model (width 768, depth 12, head 4 x 768; 32 px, patch 4 ->
# 64 tokens) for a few steps with train.activation_checkpointing none and full, on 1 process and
# on 2 Gloo ranks (1 thread each), and with train.sharding=optimizer or gradients on 2 ranks (AIM_BENCH_ROWS).
# Prints per run: the plan's total per rank, rank 0's peak RSS (the
# metrics' peak_mem_gb, GiB, shown in GB), their ratio, and the step time of the last windows.
# Usage: scripts/bench_memory.sh [steps] [micro_batch]   (AIM_BENCH_ROWS selects rows, see below)
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-6}
MB=${2:-32}
BIN=${AIM_BUILD_DIR:-build}/bin
PY=${AIM_PYTHON:-/usr/bin/python3}
OUT=$(mktemp -d /tmp/aim-bench-memory.XXXXXX)
trap 'rm -rf "$OUT"' EXIT
MODEL=(model.img_size=32 model.patch_size=4 model.width=768 model.depth=12 model.heads=12
       model.head_width=768 model.head_blocks=4)
COMMON=(--config configs/test-tiny.yaml "${MODEL[@]}" train.steps="$STEPS" train.micro_batch_size="$MB"
        train.val_every=0 train.ckpt_every=0 train.log_every=1 optim.warmup=0.5)

# Rows as RANKS:CHECKPOINTING:SHARDING (default: these five; e.g. "2:none:gradients 2:full:gradients").
ROWS=${AIM_BENCH_ROWS:-"1:none:none 1:full:none 2:none:none 2:full:none 2:none:optimizer"}
printf '%-6s %-5s %-9s %10s %14s %8s %12s\n' ranks ckpt sharding plan_GB measured_GB meas/plan s_per_step
for row in $ROWS; do
  IFS=: read -r ranks ckpt sharding <<<"$row"
  {
    args=("${COMMON[@]}" train.batch_size=$((MB * ranks)) train.activation_checkpointing=$ckpt
          train.sharding=$sharding train.out_dir="$OUT/r$ranks-$ckpt-$sharding")
    launch=()
    if ((ranks > 1)); then launch=(--nproc-per-node "$ranks"); args+=(train.threads=1); fi
    plan=$("$BIN/aim-train" "${launch[@]}" --dry-run "${args[@]}" | sed -n 's/^    total \([0-9.]*\) GB$/\1/p')
    "$BIN/aim-train" "${launch[@]}" "${args[@]}" > "$OUT/r$ranks-$ckpt-$sharding.log" 2>&1
    "$PY" - "$OUT/r$ranks-$ckpt-$sharding/metrics.jsonl" "$plan" "$ranks" "$ckpt" "$MB" "$sharding" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"loss"' in l]
plan, ranks, ckpt, mb, sharding = float(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6]
peak = max(r["peak_mem_gb"] for r in rows) * 2**30 / 1e9  # ru_maxrss in GiB -> GB
late = rows[len(rows) // 2:]  # steady windows (the first steps start threads and allocate)
sec = sum(mb * int(ranks) / r["img_per_s"] for r in late) / len(late)
print(f"{ranks:<6} {ckpt:<5} {sharding:<9} {plan:10.2f} {peak:14.2f} {peak / plan:8.2f} {sec:12.2f}")
PY
  }
done
