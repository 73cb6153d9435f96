#!/usr/bin/env python3
"""Pictures of aim-train runs: training loss, validation loss, learning rate and throughput
against the step, one line per run, from each run directory's metrics.jsonl (matplotlib).

usage: plot_runs.py RUN_DIR [RUN_DIR ...] [--out DIR]
writes DIR/loss.png, DIR/val_loss.png, DIR/lr.png, DIR/throughput.png (DIR defaults to the
single run's directory, or the current directory for several runs); a panel with no data in
any run (no data.val, say) is skipped with a note; a missing metrics.jsonl is an error (exit 1)."""
import argparse
import json
import math
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

PANELS = [  # (file, metrics.jsonl key, y label, log scale)
    ("loss.png", "loss", "training loss", True),
    ("val_loss.png", "val_loss", "validation loss", True),
    ("lr.png", "lr", "learning rate", False),
    ("throughput.png", "img_per_s", "images / s", False),
]


def read_metrics(run_dir):
    """{key: [(step, value)]} from metrics.jsonl; torn or non-JSON lines and non-finite values
    (written as null) are skipped."""
    path = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.isfile(path):
        sys.exit(f"plot_runs.py: {path} does not exist (not an aim-train run directory?)")
    series = {}
    with open(path) as f:
        for line in f:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            step = rec.get("step")
            if not isinstance(step, (int, float)):
                continue
            for _, key, _, _ in PANELS:
                v = rec.get(key)
                if isinstance(v, (int, float)) and math.isfinite(v):
                    series.setdefault(key, {})[step] = v  # a resumed run rewrites steps: last wins
    return {k: sorted(v.items()) for k, v in series.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="aim-train run directories (train.out_dir)")
    ap.add_argument("--out", help="where the PNGs go")
    args = ap.parse_args()
    out = args.out or (args.runs[0] if len(args.runs) == 1 else ".")
    os.makedirs(out, exist_ok=True)
    names = [os.path.basename(os.path.normpath(r)) or r for r in args.runs]
    if len(set(names)) < len(names):  # same last component (a sweep point and its replaced run)
        names = [os.path.normpath(r) for r in args.runs]
    runs = [(name, read_metrics(r)) for name, r in zip(names, args.runs)]
    for file, key, label, log in PANELS:
        drawn = [(name, m[key]) for name, m in runs if m.get(key)]
        if not drawn:
            print(f"{label}: no data in {', '.join(args.runs)}; {file} not drawn")
            continue
        fig, ax = plt.subplots(figsize=(6.5, 4))
        for name, pts in drawn:
            steps, values = zip(*pts)
            ax.plot(steps, values, marker="o" if len(pts) < 30 else None, ms=3, label=name)
        if log and all(v > 0 for _, pts in drawn for _, v in pts):
            ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel(label)
        ax.set_title(f"{label} vs step")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(os.path.join(out, file), dpi=110)
        plt.close(fig)
        print(os.path.join(out, file))


if __name__ == "__main__":
    main()
