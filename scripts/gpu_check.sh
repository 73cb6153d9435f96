#!/usr/bin/env bash
# GPU checks for a CUDA build (LibTorch 2.x with CUDA; see docs/building.md), on one GPU:
#  0. the first real run's blockers, first: Communicator::barrier() on a world-size-1 NCCL group
#     does not return before kernels queued ahead of it end (an all-reduce + wait() does);
#     the shipped configs/aim-600m.yaml at the largest micro-batch its plan says fits one GPU
#     runs without out-of-memory, with its bf16 MFU and peak memory against the plan;
#  1. model step, aim-600m at 224 px, bf16 autocast: aim-bench-model next to the PyTorch
#     reference (scripts/reference/ref_aim_gpu.py = scripts/reference/ref_aim.py on the GPU), the latter
#     as written (explicit masked softmax, foreach AdamW) and with SDPA + fused AdamW;
#  2. aim-train in bf16 on CUDA (synthetic images through the real loader and augmentation,
#     ViT-B-sized trunk): loss falls, checkpoints are written, and a second invocation
#     resumes from the last checkpoint and finishes;
#  3. activation checkpointing on that run: losses against the plain run, step-time cost, the plan;
#  4. memory: the CUDA caching allocator's peak (peak_mem_gb) against the --dry-run plan for
#     the runs of 3 (one GPU; sharding needs ranks, NCCL refuses two ranks on one GPU);
#  5. with two or more GPUs: 2-rank NCCL runs in fp32 with train.sharding none, optimizer and
#     gradients, equal losses (1e-5 relative) and against one GPU with the same global batch (1e-4),
#     and each mode's peak memory against its plan;
#  6. aim-1b with train.sharding=gradients and activation_checkpointing=full on every GPU, a few
#     steps: it runs, the loss is finite, and its peak memory against the plan;
#  7. the same shape through aim-bench-model, so aim-train's overhead on the GPU is visible.
# Usage: scripts/gpu_check.sh [out_dir]   (env: AIM_BUILD_DIR, AIM_PYTHON, AIM_REF_AIM,
#        GPU_CHECK_BATCH, GPU_CHECK_STEPS, GPU_CHECK_DEADLINE_S: sections that would start
#        later than this many seconds after the start are skipped and named, default 420).
#        Exit status 1 if any check failed.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=${AIM_BUILD_DIR:-build}/bin
PY=${AIM_PYTHON:-python3}
REF=${AIM_REF_AIM:-scripts/reference/ref_aim.py}
DEADLINE=${GPU_CHECK_DEADLINE_S:-420}
OUT_DIR=${1:-runs/gpu-check}
BATCH=${GPU_CHECK_BATCH:-64}
STEPS=${GPU_CHECK_STEPS:-10}
failed=0
section() { echo; echo "=== $* ($(date +%T))"; }
in_time() {  # section name: false (and says so) once the deadline has passed
  if ((SECONDS > DEADLINE)); then echo; echo "=== SKIPPED (past GPU_CHECK_DEADLINE_S=$DEADLINE): $*"; return 1; fi
}
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

# Shared by the sections below (any of which the deadline may skip).
NGPU=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
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

# peak_mem_gb (GiB, the allocator's peak on CUDA) of a run's last record against the "total" line
# of the --dry-run plan for the same arguments (GB). Prints the ratio; outside 0.8-1.2 it says so.
plan_vs_peak() {  # label, run dir, aim-train arguments...
  local label=$1 dir=$2; shift 2
  local plan
  plan=$("$BIN/aim-train" "$@" --dry-run 2>/dev/null | sed -n 's/^    total \([0-9.]*\) GB$/\1/p' | head -1)
  "$PY" - "$label" "$dir/metrics.jsonl" "${plan:-nan}" <<'PY2' || failed=1
import json, sys
label, path, plan = sys.argv[1], sys.argv[2], float(sys.argv[3])
rows = [json.loads(l) for l in open(path) if '"peak_mem_gb"' in l]
peak = rows[-1]["peak_mem_gb"] * 2**30 / 1e9
ratio = peak / plan
flag = "" if 0.8 <= ratio <= 1.2 else "  (outside 20 %)"
print(f"memory {label}: measured {peak:.2f} GB (allocator peak), plan {plan:.2f} GB, measured/plan {ratio:.2f}{flag}")
PY2
}

section "device"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$PY" -c 'import torch; print("python torch", torch.__version__, "cuda", torch.version.cuda)' || true

section "NCCL barrier orders the host (world size 1)"
check "barrier() waits for kernels queued before it" "$BIN/aim-bench-collectives" --barrier-check

section "configs/aim-600m.yaml: the largest micro-batch the plan allows on this GPU, bf16"
# Synthetic 224 px images: the shipped config's model and recipe, the data replaced (the device
# has no dataset), one GPU (sharding needs ranks; its plan is the replicated one).
A600=(--config configs/aim-600m.yaml 'data.sources=[{name: synth, kind: synthetic, size: 100000, height: 256, width: 256}]'
      data.val=null train.device=cuda train.steps=6 train.log_every=1 train.ckpt_every=0 train.val_every=0
      data.workers=12 train.out_dir="$OUT_DIR/aim-600m")
M=$("$BIN/aim-train" "${A600[@]}" --dry-run 2>/dev/null | sed -n 's/.*largest micro-batch that fits: \([0-9]*\).*/\1/p' | head -1)
echo "plan: largest micro-batch on one GPU: ${M:-none}"
if [[ -n "$M" && "$M" -gt 0 ]]; then
  rm -rf "$OUT_DIR/aim-600m"
  check "aim-600m at micro-batch $M runs without out-of-memory" run_logged "$OUT_DIR/aim-600m.log" \
    "$BIN/aim-train" "${A600[@]}" train.batch_size="$M" train.micro_batch_size="$M"
  grep -h "MFU is measured against\|attention kernel" "$OUT_DIR/aim-600m.log" || true
  "$PY" - "$OUT_DIR/aim-600m/metrics.jsonl" <<'PY' || failed=1
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"loss"' in l]
last = rows[-1]
print(f"aim-600m bf16: {last['img_per_s']:.1f} img/s, MFU {100 * (last['mfu'] or 0):.1f}% "
      f"({last['tflops']:.1f} TFLOP/s executed), peak {last['peak_mem_gb'] * 2**30 / 1e9:.2f} GB")
PY
else
  echo "FAIL: the plan says no micro-batch of aim-600m fits one GPU"; failed=1
fi

if in_time "model step: aim-600m, 224 px, batch $BATCH, bf16"; then
section "model step: aim-600m, 224 px, batch $BATCH, bf16"
SHAPE=(--img 224 --patch 14 --ch 3 --width 1536 --depth 24 --heads 12 --head-blocks 12 --head-width 2048 --batch "$BATCH")
ours=$("$BIN/aim-bench-model" "${SHAPE[@]}" --device cuda --dtype bf16 --steps "$STEPS" --warmup 3) || failed=1
echo "aim (C++):               $ours"
ref=$("$PY" scripts/reference/ref_aim_gpu.py --ref "$REF" "${SHAPE[@]}" --steps "$STEPS") || failed=1
echo "ref_aim.py (as written): $ref"
ref_fast=$("$PY" scripts/reference/ref_aim_gpu.py --ref "$REF" "${SHAPE[@]}" --steps "$STEPS" --sdpa --fused) || failed=1
echo "ref_aim.py (sdpa+fused): $ref_fast"
"$PY" - "$ours" "$ref" "$ref_fast" <<'PY' || failed=1
import json, sys
a, b, c = (json.loads(s) for s in sys.argv[1:])
assert a["params"] == b["params"] == c["params"], (a["params"], b["params"], c["params"])
print(f"aim {a['img_per_s']:.1f} img/s (MFU {a['mfu']*100:.1f}%, optimizer {a['opt_s_median']*1e3:.1f} ms/step)")
print(f"ratio aim / ref as written: {a['img_per_s'] / b['img_per_s']:.2f}x; "
      f"aim / ref sdpa+fused: {a['img_per_s'] / c['img_per_s']:.2f}x")
PY

fi

if in_time "aim-train: bf16 on CUDA, synthetic data, resume"; then
section "aim-train: bf16 on CUDA, synthetic data, resume"
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

fi

if in_time "activation checkpointing: bf16 on CUDA, recompute under autocast"; then
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


fi

if in_time "memory: allocator peak against the plan (one GPU)"; then
section "memory: allocator peak against the plan (one GPU)"
for ck in none full; do
  plan_vs_peak "activation_checkpointing=$ck" "$OUT_DIR/ckpt-$ck" --config "$OUT_DIR/train.yaml" "${TRAIN_SHAPE[@]}" \
    train.activation_checkpointing=$ck
done

fi

if in_time "two-GPU checks"; then
if ((NGPU >= 2)); then
  section "2-rank NCCL: sharding none / optimizer / gradients in fp32, against one GPU"
  EQ=(--config "$OUT_DIR/train.yaml" "${TRAIN_SHAPE[@]}" train.steps=8 train.log_every=1 train.val_every=0
      train.ckpt_every=0 train.precision=fp32 train.batch_size=32 train.micro_batch_size=8 optim.grad_clip=0.05
      optim.warmup=0)
  rm -rf "$OUT_DIR"/nccl-*
  check "one GPU, same global batch" run_logged "$OUT_DIR/nccl-one.log" "$BIN/aim-train" "${EQ[@]}" \
    train.out_dir="$OUT_DIR/nccl-one"
  for mode in none optimizer gradients; do
    check "2 ranks, sharding=$mode" run_logged "$OUT_DIR/nccl-$mode.log" "$BIN/aim-train" --nproc-per-node 2 \
      "${EQ[@]}" train.sharding=$mode train.out_dir="$OUT_DIR/nccl-$mode"
    plan_vs_peak "2 ranks, sharding=$mode" "$OUT_DIR/nccl-$mode" --nproc-per-node 2 "${EQ[@]}" train.sharding=$mode
  done
  "$PY" - "$OUT_DIR" <<'PY2' || failed=1
import json, sys
d = sys.argv[1]
load = lambda n: [json.loads(l) for l in open(f"{d}/nccl-{n}/metrics.jsonl") if '"loss"' in l]
one, rep = load("one"), load("none")
for mode in ("optimizer", "gradients"):
    sh = load(mode)
    assert len(sh) == len(rep) == len(one) == 8, (mode, len(sh), len(rep), len(one))
    for key in ("loss", "grad_norm"):
        vs_rep = max(abs(a[key] - b[key]) / abs(b[key]) for a, b in zip(sh, rep))
        vs_one = max(abs(a[key] - b[key]) / abs(b[key]) for a, b in zip(sh, one))
        print(f"sharding={mode} {key}: max relative difference {vs_rep:.2e} vs replicated, {vs_one:.2e} vs one GPU")
        assert vs_rep < 1e-5 and vs_one < 1e-4, f"sharding={mode} {key} differs"
print("PASS: sharded NCCL runs match replicated and one GPU")
PY2
else
  section "2-rank NCCL: skipped ($NGPU GPU)"
fi

fi

if in_time "aim-1b: sharding=gradients + activation_checkpointing=full on $((NGPU > 0 ? NGPU : 1)) GPU(s)"; then
section "aim-1b: sharding=gradients + activation_checkpointing=full on $((NGPU > 0 ? NGPU : 1)) GPU(s)"
B1=(--config "$OUT_DIR/train.yaml" model.preset=aim-1b train.steps=5 train.log_every=1 train.val_every=0
    train.ckpt_every=0 train.sharding=gradients train.activation_checkpointing=full
    train.batch_size=$((BATCH * (NGPU > 0 ? NGPU : 1))) train.micro_batch_size=$BATCH)
launch=(); ((NGPU >= 2)) && launch=(--nproc-per-node "$NGPU")
rm -rf "$OUT_DIR/aim-1b"
check "aim-1b 5 steps" run_logged "$OUT_DIR/aim-1b.log" "$BIN/aim-train" "${launch[@]}" "${B1[@]}" \
  train.out_dir="$OUT_DIR/aim-1b"
"$BIN/aim-train" "${launch[@]}" "${B1[@]}" --dry-run | sed -n '/memory plan/,$p'
plan_vs_peak "aim-1b, sharding=gradients, checkpointing=full" "$OUT_DIR/aim-1b" "${launch[@]}" "${B1[@]}"

fi

if in_time "the same shape in aim-bench-model (aim-train overhead)"; then
section "the same shape in aim-bench-model (aim-train overhead)"
"$BIN/aim-bench-model" --img 224 --patch 14 --ch 3 --width 768 --depth 12 --heads 6 --head-blocks 4 \
  --head-width 1024 --batch "$BATCH" --device cuda --dtype bf16 --steps "$STEPS" --warmup 3 || failed=1

fi

section "done"
if ((failed)); then echo "some GPU checks FAILED"; exit 1; fi
echo "all GPU checks passed"
