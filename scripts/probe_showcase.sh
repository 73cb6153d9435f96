#!/usr/bin/env bash
# Probe showcase (README "Results"): the same probe recipe on
#   1. the pre-trained trunk of a run (default: the demo's runs/fmnist-demo),
#   2. the same architecture with random initialization (probe.weights=random),
#   3. raw pixels (a linear probe on the normalized image),
# attentive and linear probes for the trunks, on Fashion-MNIST, each row over SEEDS (probe
# initialization, shuffling and the held-out split), reported as mean ± sample standard
# deviation of the best head's top-1 — the head chosen on the held-out 10 % of the training
# split (probe.select_fraction), never on the test split — with DINO's kNN (k=20, T=0.07) on the
# same features beside it. A row whose best lr sits at the edge of its grid in any seed is
# marked. Linear heads take larger steps than attentive ones, so they get their own, wider grid
# (LINEAR_LRS; heads of one grid train together on one pass of the features, so a wider grid
# costs little).
# Writes docs/probe_showcase.md (override with OUT=...). Needs a finished run directory.
#   bash scripts/probe_showcase.sh [RUN_DIR] [extra aim-probe overrides...]
# Environment: SEEDS (default "0 1 2"), LRS (attentive heads; default [1e-3 .. 1e-1], 5 values),
# LINEAR_LRS (linear heads; default [1e-3 .. 1], 7 values), EPOCHS (10), LIMIT (training images;
# default the full 60k split), ROWS (which rows to run, default all five; the page is written
# from every row's results on disk, e.g. ROWS="pretrained-linear random-linear pixels-linear"
# re-runs the linear rows only).
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${1:-runs/fmnist-demo}
shift || true
BIN=${AIM_BUILD_DIR:-build}/bin
OUT=${OUT:-docs/probe_showcase.md}
SEEDS=${SEEDS:-0 1 2}
LRS=${LRS:-[1.0e-3,3.0e-3,1.0e-2,3.0e-2,1.0e-1]}
LINEAR_LRS=${LINEAR_LRS:-[1.0e-3,3.0e-3,1.0e-2,3.0e-2,1.0e-1,3.0e-1,1.0]}
ROWS=${ROWS:-pretrained-attentive random-attentive pretrained-linear random-linear pixels-linear}
EPOCHS=${EPOCHS:-10}
LIMIT=${LIMIT:--1}
[ -f "$RUN/trunk.safetensors" ] || { echo "no $RUN/trunk.safetensors: run bash scripts/demo.sh first" >&2; exit 2; }
RECIPE=(--config "$RUN/config.yaml" "probe.train={kind: idx, split: train, limit: $LIMIT}" "probe.val={kind: idx, split: test}"
        probe.epochs="$EPOCHS" probe.batch_size=256 "probe.weight_decays=[0.05]")

probe() {  # name, overrides...
  local name=$1; shift
  case " $ROWS " in *" $name "*) ;; *) return 0 ;; esac
  local grid=$LRS
  case $name in *-linear) grid=$LINEAR_LRS ;; esac
  for seed in $SEEDS; do
    echo "[showcase] $name, seed $seed"
    "$BIN/aim-probe" "${RECIPE[@]}" "probe.lrs=$grid" probe.seed="$seed" probe.out_dir="runs/probe-showcase/$name-s$seed" "$@" |
      tail -n 1
  done
}
probe pretrained-attentive probe.weights="$RUN" probe.kind=attentive "$@"
probe random-attentive probe.weights=random probe.kind=attentive "$@"
probe pretrained-linear probe.weights="$RUN" probe.kind=linear "$@"
probe random-linear probe.weights=random probe.kind=linear "$@"
probe pixels-linear probe.features=pixels probe.kind=linear "$@"

/usr/bin/python3 - "$RUN" "$OUT" "$SEEDS" "$LRS" "$LINEAR_LRS" "$EPOCHS" "$LIMIT" "$*" <<'PY'
import json, statistics, sys
run, out, seeds, lrs, linear_lrs, epochs, limit, extra = sys.argv[1:]
seeds = seeds.split()
rows = [("pretrained-attentive", "AIM trunk, pre-trained", "attentive"),
        ("random-attentive", "same architecture, random init", "attentive"),
        ("pretrained-linear", "AIM trunk, pre-trained", "linear"),
        ("random-linear", "same architecture, random init", "linear"),
        ("pixels-linear", "raw pixels (784-d)", "linear")]
def ms(values):
    m = statistics.mean(values)
    return f"{100*m:.2f} ± {100*statistics.stdev(values):.2f}" if len(values) > 1 else f"{100*m:.2f}"
cfg = open(f"{run}/config.yaml").read()
steps = next(l.split(":")[1].strip() for l in cfg.splitlines() if l.strip().startswith("steps:"))
train = "the full 60k train split" if int(limit) < 0 else f"the first {limit} training images"
lines = ["# Probe showcase: Fashion-MNIST, pre-trained vs random trunk vs pixels\n",
         f"Trunk: `{run}` ({steps} pre-training steps). Same recipe for every row: {train}, {epochs} epochs, "
         f"batch 256, AdamW betas (0.9, 0.999), attentive heads at lr {lrs} and linear heads at lr {linear_lrs} (each "
         f"grid in one pass), wd 0.05; the best head chosen on "
         f"the held-out ~10 % of the training split (never trained on) and reported on the 10k test images; kNN "
         f"(k=20, T=0.07, cosine on the token-averaged features) against the same training images. Mean ± sample "
         f"standard deviation over seeds {', '.join(seeds)} (probe init, shuffling, held-out split).\n",
         "| features | probe | top-1 % | kNN top-1 % | held-out top-1 % | best lrs | best lr at the grid's edge |",
         "|---|---|---|---|---|---|---|"]
for name, feat, kind in rows:
    rs = [json.load(open(f"runs/probe-showcase/{name}-s{s}/results.json")) for s in seeds]
    top1 = [r["best"]["top1"] for r in rs]
    knn = [r["knn"]["top1"] for r in rs if "knn" in r]
    sel = [r["best"]["select_top1"] for r in rs]
    best_lrs = ", ".join(f"{r['best']['lr']:g}" for r in rs)
    edge = "yes" if any(r.get("lr_at_edge") for r in rs) else "no"
    lines.append(f"| {feat} | {kind} | {ms(top1)} | {ms(knn) if knn else '-'} | {ms(sel)} | {best_lrs} | {edge} |")
env = f"SEEDS='{' '.join(seeds)}' LRS='{lrs}' LINEAR_LRS='{linear_lrs}' EPOCHS={epochs} LIMIT={limit}"
cmd = f"bash scripts/demo.sh && {env} bash scripts/probe_showcase.sh {run} {extra}".rstrip()
lines.append(f"\nReproduce: `{cmd}`\n")
try:  # keep the LoRA section that scripts/lora_showcase.sh writes
    lora = open(out).read().split("## LoRA adaptation", 1)
except FileNotFoundError:
    lora = [""]
tail = "\n## LoRA adaptation" + lora[1] if len(lora) == 2 else ""
open(out, "w").write("\n".join(lines) + "\n" + tail)
print("\n".join(lines))
PY
