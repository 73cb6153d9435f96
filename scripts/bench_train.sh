#!/usr/bin/env bash
# aim-train's throughput against the bare model step (aim-bench-model) on the same model and
# batch, in one run, plus the 2-process Gloo scaling on this machine. The model is the demo's
# (aim-fmnist-tiny, batch 64) on real Fashion-MNIST data (IDX), no validation/checkpoints
# inside the timed window. Usage: scripts/bench_train.sh [steps]
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-80}
BIN=${AIM_BUILD_DIR:-build}/bin
PY=${AIM_PYTHON:-/usr/bin/python3}
OUT=$(mktemp -d /tmp/aim-bench-train.XXXXXX)
trap 'rm -rf "$OUT"' EXIT
COMMON=(--config configs/fmnist-scale-base.yaml model.width=128 train.steps="$STEPS" train.batch_size=64
        train.val_every=0 train.ckpt_every=0 train.log_every=10 probe.at_end=false)

bench=$("$BIN/aim-bench-model" --preset aim-fmnist-tiny --batch 64 --steps 60 --warmup 5)
echo "aim-bench-model (model step only):   $bench"
"$BIN/aim-train" "${COMMON[@]}" train.micro_batch_size=64 train.out_dir="$OUT/one" > "$OUT/one.log" 2>&1
"$BIN/aim-train" --nproc-per-node 2 "${COMMON[@]}" train.micro_batch_size=32 train.threads=1 \
    train.out_dir="$OUT/two" > "$OUT/two.log" 2>&1

"$PY" - "$bench" "$OUT/one/metrics.jsonl" "$OUT/two/metrics.jsonl" <<'PY'
import json, sys
bench = json.loads(sys.argv[1])["img_per_s_mean"]  # mean, like aim-train's windows
def steady(path):  # windows after the first (warm-up, thread start)
    rows = [json.loads(l) for l in open(path) if '"img_per_s"' in l]
    rows = rows[1:]
    return sum(r["img_per_s"] for r in rows) / len(rows), sum(r["data_wait"] for r in rows) / len(rows)
one, wait1 = steady(sys.argv[2])
two, wait2 = steady(sys.argv[3])
print(f"aim-train, 1 process:                {one:.1f} img/s (data wait {100*wait1:.1f} %) = {one/bench:.2f}x the bare step")
print(f"aim-train, 2 Gloo ranks x 1 thread:  {two:.1f} img/s (data wait {100*wait2:.1f} %) = {two/one:.2f}x one process")
PY
