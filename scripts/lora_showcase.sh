#!/usr/bin/env bash
# LoRA showcase (docs/probe_showcase.md, "LoRA adaptation"): the attentive probe on the frozen
# trunk against LoRA (rank 8, loralib's alpha 1, as the official LoraAttention) + the same
# attentive probe, same data, epochs, batch and learning rate, on Fashion-MNIST.
#   bash scripts/lora_showcase.sh [RUN_DIR]      (default runs/fmnist-demo; LIMIT, EPOCHS, LR, LORA_RANK)
# LIMIT training images (default 10000) keep it short on a CPU: LoRA runs the trunk forward and
# backward every step, where the frozen probe caches the features once.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${1:-runs/fmnist-demo}
BIN=${AIM_BUILD_DIR:-build}/bin
OUT=${OUT:-docs/probe_showcase.md}
LIMIT=${LIMIT:-10000} EPOCHS=${EPOCHS:-3} LR=${LR:-1.0e-2} LORA_RANK=${LORA_RANK:-8}
[ -f "$RUN/trunk.safetensors" ] || { echo "no $RUN/trunk.safetensors: run bash scripts/demo.sh first" >&2; exit 2; }
RECIPE=(--config "$RUN/config.yaml" probe.weights="$RUN" probe.kind=attentive
        "probe.train={kind: idx, split: train, limit: $LIMIT}" "probe.val={kind: idx, split: test}"
        probe.epochs="$EPOCHS" probe.batch_size=256 "probe.lrs=[$LR]" "probe.weight_decays=[0.05]")
echo "[lora-showcase] frozen trunk + attentive probe"
"$BIN/aim-probe" "${RECIPE[@]}" probe.out_dir=runs/lora-showcase/frozen | tail -n 1
echo "[lora-showcase] LoRA rank $LORA_RANK + attentive probe"
"$BIN/aim-probe" "${RECIPE[@]}" probe.lora_rank="$LORA_RANK" probe.out_dir=runs/lora-showcase/lora | tail -n 1

/usr/bin/python3 - "$RUN" "$OUT" "$LIMIT" "$EPOCHS" "$LR" "$LORA_RANK" <<'PY'
import json, sys
run, out, limit, epochs, lr, rank = sys.argv[1:]
rows = []
for name, what in (("frozen", "frozen trunk"), ("lora", f"LoRA rank {rank} (alpha 1) on q, v, proj")):
    r = json.load(open(f"runs/lora-showcase/{name}/results.json"))
    b = r["best"]
    extra = r.get("lora", {}).get("parameters", 0)
    rows.append(f"| {what} | attentive | {100*b['top1']:.2f} | {100*b['top5']:.2f} | {extra} | {r['seconds']:.0f} |")
section = [
    "## LoRA adaptation\n",
    f"Trunk: `{run}`. Both rows: the first {limit} training images, {epochs} epochs, batch 256, lr {lr}, "
    "wd 0.05, the center crop (no augmentation), evaluated on the 10k test images. The frozen row caches "
    "the features once; the LoRA row runs the trunk forward and backward every step (the seconds are "
    "wall time on a CPU shared with other jobs).\n",
    "| trunk | probe | top-1 % | top-5 % | LoRA parameters | seconds |", "|---|---|---|---|---|---|", *rows,
    f"\nReproduce: `bash scripts/demo.sh && LIMIT={limit} EPOCHS={epochs} LR={lr} LORA_RANK={rank} "
    f"bash scripts/lora_showcase.sh {run}`\n"]
try:
    text = open(out).read()
except FileNotFoundError:
    text = ""
head = text.split("## LoRA adaptation")[0].rstrip("\n")
open(out, "w").write((head + "\n\n" if head else "") + "\n".join(section) + "\n")
print("\n".join(section))
PY
