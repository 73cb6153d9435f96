"""Plots for aim-scale's report (matplotlib, Debian's python3-matplotlib).
usage: plot_scaling.py SWEEP_OUT_DIR   (reads results.csv, curves.csv, fits.json; writes PNGs)

Only done points are drawn (report.md lists the others). A plot with nothing to show is not
written. Fitted curves carry their 95 % bootstrap band (fits.json), shaded."""
import csv
import json
import math
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402


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


def law_text(law, symbol, saturating):
    if law["A"] == 0:
        return f"flat: L = {law['E']:.3g}"
    floor = f"{law['E']:.3g} + " if saturating else ""
    ci = law.get("alpha_ci")
    alpha = f"{law['alpha']:.3g}" + (f" [{ci[0]:.2g}, {ci[1]:.2g}]" if ci else "")
    edge = " (α at the search's edge: no power law)" if law.get("alpha_at_bound") else ""
    return f"L = {floor}A·{symbol}^−α, α = {alpha}{edge}"


def draw_fit(ax, fit, x_scale=1.0):
    """Both forms of one fits.json entry: lines over the fitted range, bands shaded."""
    if not fit or fit.get("too_few"):
        return
    for key, style, colour in (("saturating", "-", "black"), ("power_law", "--", "grey")):
        law = fit.get(key)
        if not law or not law.get("valid"):
            continue
        band = law.get("band") or {}
        if band.get("x"):
            ax.fill_between([x * x_scale for x in band["x"]], band["lo"], band["hi"], color=colour, alpha=0.15, lw=0)
        xs = [p[0] for p in fit["runs"]]
        lo, hi = min(xs), max(xs)
        grid = [lo * (hi / lo) ** (i / 60) for i in range(61)] if hi > lo else [lo]
        ys = [law["E"] + law["A"] * x ** (-law["alpha"]) for x in grid]
        name = "saturating" if key == "saturating" else "power law"
        ax.plot([x * x_scale for x in grid], ys, style, color=colour, lw=1.5,
                label=f"{name}: {law_text(law, fit['symbol'], key == 'saturating')}")


def label_log_axes(fig):
    # Short labels (60k, 1.2M) on every log x axis; over less than a decade the minor ticks
    # are the only ones, so they are labelled too (matplotlib's 1.2x10^6 labels overlap there).
    # Over less than two decades, 2x and 5x get a label as well.
    fmt = matplotlib.ticker.FuncFormatter(lambda v, _: human(v))
    fmt25 = matplotlib.ticker.FuncFormatter(
        lambda v, _: human(v) if v > 0 and round(v / 10 ** math.floor(math.log10(v))) in (2, 5) else "")
    for ax in fig.axes:
        if ax.get_xscale() != "log":
            continue
        lo, hi = ax.get_xlim()
        ax.xaxis.set_major_formatter(fmt)
        ax.xaxis.set_minor_formatter(fmt if hi < 10 * lo else fmt25 if hi < 100 * lo else matplotlib.ticker.NullFormatter())
        ax.tick_params(axis="x", which="minor", labelsize=7)


def finish(fig, path, title=None):
    if title:
        fig.suptitle(title, fontsize=10)
    label_log_axes(fig)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main():
    out = sys.argv[1]
    rows = [r for r in csv.DictReader(open(os.path.join(out, "results.csv"))) if r.get("status") == "done"]
    curves = [c for c in csv.DictReader(open(os.path.join(out, "curves.csv"))) if c.get("status") == "done"]
    fits = json.load(open(os.path.join(out, "fits.json")))
    by_id = {}
    for f in fits.get("fits", []):
        by_id.setdefault(f["id"], []).append(f)
    if not rows:
        return  # nothing finished: no empty axes
    sizes = sorted({int(r["trunk_params"]) for r in rows})
    cmap = plt.get_cmap("viridis", max(2, len(sizes)))
    colour = {n: cmap(i) for i, n in enumerate(sizes)}

    # 1. Validation loss vs compute (total, trunk): every record, intermediate ones dimmed;
    #    final points solid; the frontier fit over final points with its band.
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    for ax, column, fid, xlabel in ((axes[0], "train_flops", "loss_vs_compute", "training FLOPs (trunk + head)"),
                                    (axes[1], "trunk_train_flops", "loss_vs_trunk_compute", "trunk training FLOPs")):
        labelled = set()
        for r in rows:
            pts = [(fnum(c[column]), fnum(c["val_loss"]), c["final"] == "1") for c in curves if c["point"] == r["point"]]
            pts = [p for p in pts if p[0] and p[1]]
            if not pts:
                continue
            n = int(r["trunk_params"])
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "-", color=colour[n], alpha=0.25, lw=1)
            mid = [p for p in pts if not p[2]]
            ax.scatter([p[0] for p in mid], [p[1] for p in mid], s=8, color=colour[n], alpha=0.25)
            end = [p for p in pts if p[2]]
            ax.scatter([p[0] for p in end], [p[1] for p in end], s=30, color=colour[n],
                       label=None if n in labelled else f"{human(n)} trunk params (final)")
            labelled.add(n)
        for f in by_id.get(fid, []):
            draw_fit(ax, f)
            if not f.get("too_few"):
                ax.scatter([p[0] for p in f["runs"]], [p[1] for p in f["runs"]], s=60, facecolors="none",
                           edgecolors="red", label="frontier runs (final points)")
            else:
                ax.text(0.02, 0.02, f["too_few"], transform=ax.transAxes, fontsize=8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("validation loss")
        ax.legend(fontsize=7)
    finish(fig, os.path.join(out, "loss_vs_compute.png"),
           "validation loss vs compute: intermediate validations dimmed, frontier from final points")

    # 2. Final validation loss vs parameters (trunk, total): each run a point, one colour per
    #    data size; the fits at the largest data size.
    datas = sorted({r["unique_images"] for r in rows}, key=lambda d: fnum(d) or float("inf"))
    if len(sizes) >= 2:
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
        dcmap = plt.get_cmap("plasma", max(2, len(datas) + 1))
        for ax, column, fid, xlabel in ((axes[0], "trunk_params", "loss_vs_trunk_params", "trunk parameters"),
                                        (axes[1], "total_params", "loss_vs_total_params",
                                         "total parameters (trunk + head)")):
            for i, d in enumerate(datas):
                pts = [(int(r[column]), fnum(r["final_val_loss"])) for r in rows if r["unique_images"] == d]
                pts = [p for p in pts if p[1]]
                if pts:
                    ax.scatter(*zip(*pts), color=dcmap(i), s=20,
                               label=f"{human(fnum(d))} unique images" if d else "all images")
            for f in by_id.get(fid, []):
                draw_fit(ax, f)
                if f.get("too_few"):
                    ax.text(0.02, 0.02, f["too_few"], transform=ax.transAxes, fontsize=8)
                ax.set_title(f"fits {f['where']}", fontsize=9)
            ax.set_xscale("log")
            ax.set_xlabel(xlabel)
            ax.set_ylabel("final validation loss")
            ax.legend(fontsize=7)
        finish(fig, os.path.join(out, "loss_vs_params.png"), "validation loss vs model size")

    # 3. Final validation loss vs unique images, one panel per model size with a data axis.
    data_fits = by_id.get("loss_vs_data", [])
    if data_fits:
        fig, axes = plt.subplots(1, len(data_fits), figsize=(5.2 * len(data_fits), 5.4), squeeze=False)
        for ax, f in zip(axes[0], data_fits):
            ax.scatter([p[0] for p in f["runs"]], [p[1] for p in f["runs"]], s=20, color="tab:blue", label="runs")
            draw_fit(ax, f)
            if f.get("too_few"):
                ax.text(0.02, 0.02, f["too_few"] + " (points only)", transform=ax.transAxes, fontsize=8)
            ax.set_xscale("log")
            ax.set_xlabel("unique training images")
            ax.set_ylabel("final validation loss")
            ax.set_title(f["where"], fontsize=9)
            # Below the panel: the fit labels are longer than a panel is wide.
            ax.legend(fontsize=6.5, loc="upper center", bbox_to_anchor=(0.5, -0.16))
        finish(fig, os.path.join(out, "loss_vs_data.png"), "validation loss vs unique data")

    # 4. Probe accuracy vs validation loss.
    pts = [(fnum(r["final_val_loss"]), fnum(r["probe_top1"]), int(r["trunk_params"])) for r in rows]
    pts = [p for p in pts if p[0] is not None and p[1] is not None]
    if pts:
        fig, ax = plt.subplots(figsize=(6, 4.4))
        labelled = set()
        for x, y, n in pts:
            ax.scatter([x], [100 * y], color=colour[n], label=None if n in labelled else f"{human(n)} trunk params")
            labelled.add(n)
        acc = fits.get("accuracy_loss") or {}
        if acc.get("slope") is not None:
            xs = sorted(p[0] for p in pts)
            ci = acc.get("pearson_ci")
            r_text = f"Pearson r = {acc['pearson']:.3f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")
            ax.plot(xs, [100 * (acc["intercept"] + acc["slope"] * x) for x in xs], "k:", label=r_text)
        ax.set_xlabel("final validation loss")
        ax.set_ylabel("probe top-1 (%)")
        ax.set_title(f"lower pre-training loss, better probe? {acc.get('verdict', '')}", fontsize=9)
        ax.legend(fontsize=7)
        finish(fig, os.path.join(out, "accuracy_vs_loss.png"))


if __name__ == "__main__":
    main()
