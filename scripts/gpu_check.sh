#!/usr/bin/env bash
# GPU checks for a CUDA build (LibTorch 2.x with CUDA; see docs/building.md), on one GPU:
#  1. model step, aim-600m at 224 px, bf16 autocast: aim-bench-model next to the PyTorch
#     reference (scripts/ref_aim_gpu.py = ../shared/bench/ref_aim.py on the GPU), the latter
#     as written (explicit masked softmax, foreach AdamW) and with SDPA + fused AdamW;
#  2. aim-train in bf16 on CUDA (synthetic images through the real loader and augmentation,
#     ViT-B-sized trunk): loss falls, checkpoints are written, and a second invocation
#     resumes from the last checkpoint and finishes;
#  3. activation checkpointing on that run: losses against the plain run, step-time cost, the plan;
#  4. the same shape through aim-bench-model, so aim-train's overhead on the GPU is visible.
# Usage: scripts/gpu_check.sh [out_dir]   (env: AIM_BUILD_DIR, AIM_PYTHON, AIM_REF_AIM,
#        GPU_CHECK_BATCH, GPU_CHECK_STEPS). Exit status 1 if any check failed.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=${AIM_BUILD_DIR:-build}/bin
PY=${AIM_PYTHON:-python3}
REF=${AIM_REF_AIM:-../shared/bench/ref_aim.py}
OUT_DIR=${1:-runs/gpu-check}
BATCH=${GPU_CHECK_BATCH:-64}
STEPS=${GPU_CHECK_STEPS:-10}
failed=0
section() { echo; echo "=== $* ($(date +%T))"; }
check() {  # description, command...
  local what=$1; shift
  if "$@"; then echo "PASS: $what"; else echo "FAIL: $what"; failed=1; fi
}
run_logged() {  # log file, command...: full output to the log, its tail to the console
  local log=$1; shift
  "$@" >"$log" 2>&1
  local rc=$?
  tail -n 25 "$log"
  return $rc
}
mkdir -p "$OUT_DIR"

section "device"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$PY" -c 'import torch; print("python torch", torch.__version__, "cuda", torch.version.cuda)' || true

section "model step: aim-600m, 224 px, batch $BATCH, bf16"
SHAPE=(--img 224 --patch 14 --ch 3 --width 1536 --depth 24 --heads 12 --head-blocks 12 --head-width 2048 --batch "$BATCH")
ours=$("$BIN/aim-bench-model" "${SHAPE[@]}" --device cuda --dtype bf16 --steps "$STEPS" --warmup 3) || failed=1
echo "aim (C++):               $ours"
ref=$("$PY" scripts/ref_aim_gpu.py --ref "$REF" "${SHAPE[@]}" --steps "$STEPS") || failed=1
echo "ref_aim.py (as written): $ref"
ref_fast=$("$PY" scripts/ref_aim_gpu.py --ref "$REF" "${SHAPE[@]}" --steps "$STEPS" --sdpa --fused) || failed=1
echo "ref_aim.py (sdpa+fused): $ref_fast"
"$PY" - "$ours" "$ref" "$ref_fast" <<'PY' || failed=1
import json, sys
a, b, c = (json.loads(s) for s in sys.argv[1:])
assert a["params"] == b["params"] == c["params"], (a["params"], b["params"], c["params"])
print(f"aim {a['img_per_s']:.1f} img/s (MFU {a['mfu']*100:.1f}%, optimizer {a['opt_s_median']*1e3:.1f} ms/step)")
print(f"ratio aim / ref as written: {a['img_per_s'] / b['img_per_s']:.2f}x; "
      f"aim / ref sdpa+fused: {a['img_per_s'] / c['img_per_s']:.2f}x")
PY

section "aim-train: bf16 on CUDA, synthetic data, resume"
TRAIN_SHAPE=(model.preset=aim-600m model.width=768 model.depth=12 model.heads=6 model.head_blocks=4 model.head_width=1024)
cat >"$OUT_DIR/train.yaml" <<EOF
# Written by scripts/gpu_check.sh: ViT-B-sized AIM on synthetic images, bf16 on one GPU.
model: {preset: aim-600m}
data:
  sources:
    - {name: synth, kind: synthetic, size: 100000, classes: 10, height: 256, width: 256}
  val: {name: synth-val, kind: synthetic, size: 512, classes: 10, height: 256, width: 256}
  workers: 12
train:
  steps: 60
  batch_size: $BATCH
  micro_batch_size: $BATCH
  precision: bf16
  device: cuda
  out_dir: $OUT_DIR/train
  log_every: 10
  ckpt_every: 20
  keep_checkpoints: 2
  val_every: 30
  val_batches: 4
EOF
rm -rf "$OUT_DIR/train"
check "aim-train 40 steps" run_logged "$OUT_DIR/train-1.log" \
  "$BIN/aim-train" --config "$OUT_DIR/train.yaml" "${TRAIN_SHAPE[@]}" train.steps=40
check "aim-train resumes and finishes 60 steps" run_logged "$OUT_DIR/train-2.log" \
  "$BIN/aim-train" --config "$OUT_DIR/train.yaml" "${TRAIN_SHAPE[@]}"
check "second run resumed from step 40" grep -q "resumed from .*(step 40)" "$OUT_DIR/train-2.log"
check "trunk exported" test -s "$OUT_DIR/train/trunk.safetensors"
"$PY" - "$OUT_DIR/train/metrics.jsonl" <<'PY' || failed=1
import json, math, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
train = [r for r in rows if "loss" in r and "step" in r]
assert train, "no training records"
assert all(math.isfinite(r["loss"]) for r in train), "non-finite loss"
first, last = train[0], train[-1]
print(f"loss {first['loss']:.4f} (step {first['step']}) -> {last['loss']:.4f} (step {last['step']}); "
      f"last: {last.get('img_per_s', 0):.1f} img/s, mfu {last.get('mfu')}, data_wait {last.get('data_wait')}")
assert last["loss"] < first["loss"], "loss did not fall"
print("PASS: loss falls and stays finite")
PY

section "activation checkpointing: bf16 on CUDA, recompute under autocast"
# train.activation_checkpointing=full recomputes each block in backward with autocast
# re-entered (compat::AutocastGuard): same losses as the plain run, about +1/3 step time.
for ck in none full; do
  rm -rf "$OUT_DIR/ckpt-$ck"
  check "aim-train 12 steps, activation_checkpointing=$ck" run_logged "$OUT_DIR/ckpt-$ck.log" \
    "$BIN/aim-train" --config "$OUT_DIR/train.yaml" "${TRAIN_SHAPE[@]}" train.steps=12 train.log_every=1 \
    train.val_every=0 train.ckpt_every=0 train.activation_checkpointing=$ck train.out_dir="$OUT_DIR/ckpt-$ck"
done
"$BIN/aim-train" --config "$OUT_DIR/train.yaml" "${TRAIN_SHAPE[@]}" train.activation_checkpointing=full --dry-run |
  sed -n '/memory plan/,$p'
"$PY" - "$OUT_DIR/ckpt-none/metrics.jsonl" "$OUT_DIR/ckpt-full/metrics.jsonl" <<'PY' || failed=1
import json, sys
a, b = ([json.loads(l) for l in open(p) if '"loss"' in l] for p in sys.argv[1:])
assert len(a) == len(b) == 12, (len(a), len(b))
worst = max(abs(x["loss"] - y["loss"]) / abs(x["loss"]) for x, y in zip(a, b))
t = lambda rows: sum(1 / r["img_per_s"] for r in rows[4:]) / len(rows[4:])
print(f"checkpointing: max relative loss difference {worst:.2e}; step time x{t(b) / t(a):.2f}")
assert worst < 1e-3, "checkpointed bf16 losses drift from the plain run"
print("PASS: checkpointed losses follow the plain run")
PY

section "the same shape in aim-bench-model (aim-train overhead)"
"$BIN/aim-bench-model" --img 224 --patch 14 --ch 3 --width 768 --depth 12 --heads 6 --head-blocks 4 \
  --head-width 1024 --batch "$BATCH" --device cuda --dtype bf16 --steps "$STEPS" --warmup 3 || failed=1

section "done"
if ((failed)); then echo "some GPU checks FAILED"; exit 1; fi
echo "all GPU checks passed"
