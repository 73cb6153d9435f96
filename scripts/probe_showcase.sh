#!/usr/bin/env bash
# Probe showcase (README "Results"): the same probe recipe on
#   1. the pre-trained trunk of a run (default: the demo's runs/fmnist-demo),
#   2. the same architecture with random initialization (probe.weights=random),
#   3. raw pixels (a linear probe on the normalized image),
# attentive and linear probes for the trunks, on the full Fashion-MNIST train/test split.
# Writes docs/probe_showcase.md (override with OUT=...). Needs a finished run directory.
#   bash scripts/probe_showcase.sh [RUN_DIR] [extra aim-probe overrides...]
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${1:-runs/fmnist-demo}
shift || true
BIN=${AIM_BUILD_DIR:-build}/bin
OUT=${OUT:-docs/probe_showcase.md}
[ -f "$RUN/trunk.safetensors" ] || { echo "no $RUN/trunk.safetensors: run bash scripts/demo.sh first" >&2; exit 2; }
RECIPE=(--config "$RUN/config.yaml" "probe.train={kind: idx, split: train}" "probe.val={kind: idx, split: test}"
        probe.epochs=10 probe.batch_size=256 "probe.lrs=[3.0e-3,1.0e-2,3.0e-2]" "probe.weight_decays=[0.05]")

probe() {  # name, overrides...
  local name=$1; shift
  echo "[showcase] $name"
  "$BIN/aim-probe" "${RECIPE[@]}" probe.out_dir="runs/probe-showcase/$name" "$@" | tail -n 1
}
probe pretrained-attentive probe.weights="$RUN" probe.kind=attentive "$@"
probe random-attentive probe.weights=random probe.kind=attentive "$@"
probe pretrained-linear probe.weights="$RUN" probe.kind=linear "$@"
probe random-linear probe.weights=random probe.kind=linear "$@"
probe pixels-linear probe.features=pixels probe.kind=linear "$@"

/usr/bin/python3 - "$RUN" "$OUT" "$*" <<'PY'
import json, sys
run, out, extra = sys.argv[1], sys.argv[2], sys.argv[3]
rows = [("pretrained-attentive", "AIM trunk, pre-trained", "attentive"),
        ("random-attentive", "same architecture, random init", "attentive"),
        ("pretrained-linear", "AIM trunk, pre-trained", "linear"),
        ("random-linear", "same architecture, random init", "linear"),
        ("pixels-linear", "raw pixels (784-d)", "linear")]
cfg = open(f"{run}/config.yaml").read()
steps = next(l.split(":")[1].strip() for l in cfg.splitlines() if l.strip().startswith("steps:"))
lines = [f"# Probe showcase: Fashion-MNIST, pre-trained vs random trunk vs pixels\n",
         f"Trunk: `{run}` ({steps} pre-training steps). Same recipe for every row: full train split "
         f"(60k), 10 epochs, batch 256, heads at lr 3e-3 / 1e-2 / 3e-2 (best reported), wd 0.05, "
         f"evaluated on the 10k test images.\n",
         "| features | probe | top-1 % | top-5 % | best lr |", "|---|---|---|---|---|"]
for name, feat, kind in rows:
    r = json.load(open(f"runs/probe-showcase/{name}/results.json"))
    b = r["best"]
    lines.append(f"| {feat} | {kind} | {100*b['top1']:.2f} | {100*b['top5']:.2f} | {b['lr']:g} |")
cmd = f"bash scripts/demo.sh && bash scripts/probe_showcase.sh {run} {extra}".rstrip()
lines.append(f"\nReproduce: `{cmd}`\n")
try:  # keep the LoRA section that scripts/lora_showcase.sh writes
    lora = open(out).read().split("## LoRA adaptation", 1)
except FileNotFoundError:
    lora = [""]
tail = "\n## LoRA adaptation" + lora[1] if len(lora) == 2 else ""
open(out, "w").write("\n".join(lines) + "\n" + tail)
print("\n".join(lines))
PY
