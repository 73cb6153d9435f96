#pragma once
// What each point of a sweep produced, read from its run directory alone: the run's own
// config.yaml, metrics.jsonl, probe/results.json, run_status.json (aim-train's final status)
// and point.json (aim-scale's record of the child's exit).
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "aim/scale/sweep.h"

namespace aim::scale {

struct CurvePoint {
  int64_t step = 0;
  double train_flops = 0;        // compute spent up to this step: step × batch × FLOPs per image
  double trunk_train_flops = 0;  // the same for the trunk alone (no pre-training head)
  double val_loss = 0;
  bool final = false;  // the validation at the run's last step: intermediate ones sit above the
                       // frontier a run of that length would reach (its learning rate had not decayed)
};

struct PointResult {
  std::string name;
  // done | diverged (finished, but its final loss is non-finite or above its first) | failed
  // (aim-train said so, or its process is gone) | interrupted (stopped by a signal after a
  // checkpoint) | stale (its directory holds a run of another config) | running (partial
  // metrics) | missing. Only "done" points enter the fits and trends.
  std::string status;
  std::vector<std::pair<std::string, std::string>> values;
  std::string setting;  // the point's values without train.seed: runs of one setting are replicates
  int64_t seed = 0;
  int64_t trunk_params = 0, total_params = 0;
  double flops_per_image = 0;        // training FLOPs per image (forward + backward), head included
  double trunk_flops_per_image = 0;  // the trunk's share
  int64_t steps = 0, batch_size = 0;
  double images_seen = 0, train_flops = 0, trunk_train_flops = 0;
  int64_t unique_images = -1;  // sum of the sources' `limit` (or synthetic sizes); -1 = unbounded
  double train_loss = 0, val_loss = 0, probe_top1 = 0;  // NaN when absent
  std::vector<CurvePoint> val_curve;
  std::string error;
  std::string note;  // why a point that is not "done" is left out of the fits (one line)
};

/// Reads each point's directory and the run's own config.yaml (parameters, FLOPs, steps, batch,
/// unique images; the sweep's config only for a point with no run yet). Works on runs made by
/// aim-scale or by a scheduler running the --plan lines.
std::vector<PointResult> collect_results(const SweepConfig& sweep, const std::vector<SweepPoint>& points);

/// "12 points: 9 done, 1 failed, 2 missing".
std::string status_summary(const std::vector<PointResult>& results);

}  // namespace aim::scale
