#!/usr/bin/env bash
# The README's demo command: install what is missing, build, then pre-train a small AIM on
# Fashion-MNIST (Debian's dataset-fashion-mnist) as a two-source mixture — the IDX files
# plus the same images packed as webdataset shards, the way DFN-2B+ mixes web shards with
# ImageNet — report the loss curve and validation loss, then train attentive probes on the
# frozen trunk (probe.at_end) and print the test accuracy. Extra arguments are passed to
# aim-train as overrides (e.g. train.steps=100 for a quick look).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --demo  # the parity tests' PyTorch and the plots' matplotlib come with scripts/test.sh
# Only what the demo runs: the test suite and the benchmarks build with scripts/test.sh.
bash scripts/build.sh aim-demo-tools  # aim-data and aim-train, built side by side
BIN=${AIM_BUILD_DIR:-build}/bin

if [ ! -f runs/fmnist-shards/00000005.tar ]; then
  echo "[demo] packing Fashion-MNIST train into webdataset shards (runs/fmnist-shards)"
  "$BIN/aim-data" pack --from idx --path /usr/share/datasets/fashion-mnist --split train \
      --out runs/fmnist-shards --shard-size 10000
fi
"$BIN/aim-data" check "runs/fmnist-shards/{00000000..00000005}.tar" --no-decode

echo "[demo] pre-training (configs/fmnist-demo.yaml); metrics in runs/fmnist-demo/metrics.jsonl"
"$BIN/aim-train" --config configs/fmnist-demo.yaml "$@"

/usr/bin/python3 - runs/fmnist-demo/metrics.jsonl <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
train = [r for r in rows if "loss" in r]
val = [r for r in rows if "val_loss" in r]
print(f"[demo] train loss {train[0]['loss']:.4f} (step {train[0]['step']}) -> {train[-1]['loss']:.4f} (step {train[-1]['step']})")
if val:
    print(f"[demo] validation loss {val[0]['val_loss']:.4f} (step {val[0]['step']}) -> {val[-1]['val_loss']:.4f} (step {val[-1]['step']})")
print(f"[demo] throughput {train[-1]['img_per_s']:.0f} img/s, data wait {100*train[-1]['data_wait']:.1f}%")
print("[demo] trunk weights (official naming): runs/fmnist-demo/trunk.safetensors")
PY
if [ -f runs/fmnist-demo/probe/results.json ]; then
  /usr/bin/python3 - runs/fmnist-demo/probe/results.json <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
b = r["best"]
sel = r.get("selection", {})
chosen = (f"chosen on {sel['samples']} held-out training images" if sel.get("split") == "train_holdout"
          else "chosen on the test images themselves")
print(f"[demo] attentive probe on the frozen trunk: top-1 {100*b['top1']:.2f} % on {r['val_samples']} Fashion-MNIST "
      f"test images (the best of {len(r['heads'])} heads {chosen}, lr {b['lr']:g}); details in {sys.argv[1]}")
print("[demo] compare with a random trunk and raw pixels: bash scripts/probe_showcase.sh")
PY
fi
