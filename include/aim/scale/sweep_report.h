#pragma once
#include <string>
#include <utility>
#include <vector>

#include "aim/scale/scaling_fit.h"
#include "aim/scale/sweep.h"

namespace aim::scale {

struct CurvePoint {
  int64_t step = 0;
  double train_flops = 0;  // compute spent up to this step
  double val_loss = 0;
};

struct PointResult {
  std::string name;
  // done | diverged (finished, but its final loss is non-finite or above its first) | failed |
  // stale (its directory holds a run of another config) | running (partial metrics) | missing.
  // Only "done" points enter the fits and trends.
  std::string status;
  std::vector<std::pair<std::string, std::string>> values;
  int64_t trunk_params = 0, total_params = 0;
  double flops_per_image = 0;   // training FLOPs per image (forward + backward)
  int64_t steps = 0, batch_size = 0;
  double images_seen = 0, train_flops = 0;
  int64_t unique_images = -1;   // sum of the sources' `limit` (or synthetic sizes); -1 = unbounded
  double train_loss = 0, val_loss = 0, probe_top1 = 0;  // NaN when absent
  std::vector<CurvePoint> val_curve;
  std::string error;
  std::string note;  // why a point that is not "done" is left out of the fits (one line)
};

/// Reads each point's directory (metrics.jsonl, probe/results.json, point.json) and the run's
/// own config.yaml (parameters, FLOPs, steps, batch, unique images; the sweep's config only for
/// a point with no run yet). Works on runs made by aim-scale or by a scheduler running the
/// --plan lines.
std::vector<PointResult> collect_results(const SweepConfig& sweep, const std::vector<SweepPoint>& points);

struct ScalingFits {
  PowerLaw loss_vs_params;    // best final val loss per model size
  PowerLaw loss_vs_compute;   // Pareto frontier of all validation points (loss vs training FLOPs)
  std::vector<std::pair<int64_t, PowerLaw>> loss_vs_data;  // per model size (trunk params): vs unique images
  double accuracy_loss_pearson = 0;  // probe top-1 vs final val loss
  LinearFit accuracy_vs_loss;
  std::vector<std::pair<double, double>> frontier;  // (FLOPs, val loss)
};
/// Fits over the "done" points only (failed, diverged, stale and unfinished ones are left out);
/// per (model size, data size) the best final validation loss counts.
ScalingFits fit_scaling(const std::vector<PointResult>& results);

/// Writes results.csv, curves.csv, fits.json and report.md under sweep.out_dir, then draws
/// the plots with scripts/plot_scaling.py (matplotlib) when `python` is given. Returns the
/// report's path.
std::string write_report(const SweepConfig& sweep, const std::vector<PointResult>& results, const std::string& python,
                         const std::string& plot_script);

}  // namespace aim::scale
