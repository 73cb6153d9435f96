"""Plots for aim-scale's report (matplotlib, Debian's python3-matplotlib).
usage: plot_scaling.py SWEEP_OUT_DIR   (reads results.csv, curves.csv, fits.json; writes PNGs)"""
import csv
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def fnum(s):
    try:
        return float(s)
    except (TypeError, ValueError):
        return None


def human(v):
    for unit in ["", "k", "M", "G", "T", "P"]:
        if abs(v) < 1000:
            return f"{v:.3g}{unit}"
        v /= 1000
    return f"{v:.3g}E"


def finish(fig, ax, path, xlabel, ylabel, title, legend=True):
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if legend:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main():
    out = sys.argv[1]
    # Only finished points are evidence (failed, diverged, stale and unfinished ones are left
    # out of the fits; report.md lists them).
    rows = [r for r in csv.DictReader(open(os.path.join(out, "results.csv"))) if r.get("status", "done") == "done"]
    curves = list(csv.DictReader(open(os.path.join(out, "curves.csv"))))
    fits = json.load(open(os.path.join(out, "fits.json")))

    # 1. Validation loss vs compute, one line per run, coloured by model size; fitted frontier.
    sizes = sorted({int(r["trunk_params"]) for r in rows})
    cmap = plt.get_cmap("viridis", max(2, len(sizes)))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    labelled = set()
    most = max([(fnum(x["unique_images"]) or 0) for x in rows] or [0])
    dashed = False
    for r in rows:
        pts = [(fnum(c["train_flops"]), fnum(c["val_loss"])) for c in curves if c["point"] == r["point"]]
        pts = [p for p in pts if p[0] and p[1]]
        if not pts:
            continue
        n = int(r["trunk_params"])
        label = None if n in labelled else f"{human(n)} params"
        labelled.add(n)
        style = "--" if r["unique_images"] and fnum(r["unique_images"]) < most else "-"
        dashed |= style == "--"
        ax.plot(*zip(*pts), style, marker="o", ms=3, color=cmap(sizes.index(n)), label=label, alpha=0.9)
    law = fits.get("loss_vs_compute")
    if law:
        xs = [p[0] for p in fits["frontier"]]
        lo, hi = min(xs), max(xs)
        grid = [lo * (hi / lo) ** (i / 50) for i in range(51)] if hi > lo else [lo]
        ax.plot(grid, [law["a"] * x ** law["b"] for x in grid], "k:", lw=2,
                label=f"frontier fit: L ∝ C^{law['b']:.3f}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    finish(fig, ax, os.path.join(out, "loss_vs_compute.png"), "training FLOPs", "validation loss",
           "AIM: validation loss vs compute" + (" (dashed: smaller data subsets)" if dashed else ""))

    # 2. Final validation loss vs parameters, one line per data size.
    fig, ax = plt.subplots(figsize=(6, 4.2))
    datas = sorted({r["unique_images"] for r in rows}, key=lambda d: fnum(d) or float("inf"))
    for d in datas:
        pts = sorted((int(r["trunk_params"]), fnum(r["final_val_loss"])) for r in rows
                     if r["unique_images"] == d and fnum(r["final_val_loss"]))
        if pts:
            ax.plot(*zip(*pts), marker="o", label=f"{human(fnum(d))} unique images" if d else "all images")
    law = fits.get("loss_vs_params")
    if law:
        xs = sorted({int(r["trunk_params"]) for r in rows})
        ax.plot(xs, [law["a"] * x ** law["b"] for x in xs], "k:", label=f"fit: L ∝ N^{law['b']:.3f}")
    ax.set_xscale("log")
    finish(fig, ax, os.path.join(out, "loss_vs_params.png"), "trunk parameters", "final validation loss",
           "validation loss vs model size")

    # 3. Probe accuracy vs validation loss.
    pts = [(fnum(r["final_val_loss"]), fnum(r["probe_top1"]), int(r["trunk_params"])) for r in rows]
    pts = [p for p in pts if p[0] is not None and p[1] is not None]
    if pts:
        fig, ax = plt.subplots(figsize=(6, 4.2))
        labelled = set()
        for x, y, n in pts:
            ax.scatter([x], [100 * y], color=cmap(sizes.index(n)), label=None if n in labelled else f"{human(n)} params")
            labelled.add(n)
        line = fits.get("accuracy_vs_loss")
        if line:
            xs = sorted(p[0] for p in pts)
            ax.plot(xs, [100 * (line["intercept"] + line["slope"] * x) for x in xs], "k:",
                    label=f"Pearson r = {fits['accuracy_loss_pearson']:.3f}" if fits.get("accuracy_loss_pearson") is not None else None)
        finish(fig, ax, os.path.join(out, "accuracy_vs_loss.png"), "final validation loss", "probe top-1 (%)",
               "lower pre-training loss, better probe?")


if __name__ == "__main__":
    main()
