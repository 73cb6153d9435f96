#pragma once
// The statistics of a scaling study over its finished runs: fits of both forms against every
// axis with bootstrap intervals, the trends the AIM paper claims with a verdict only where the
// effect exceeds its uncertainty, and the loss -> accuracy correlation.
//
// Replicates: runs whose point values differ only in train.seed are one *setting*; the spread
// between them is the run-to-run noise every interval is built from (stratified bootstrap:
// each setting's runs are resampled with replacement, within the setting, then everything is
// chosen and fitted again). Several settings at one x (other learning rates, say): the one with
// the lowest mean loss counts. With one run per setting there is no noise estimate, hence no
// interval and no verdict.
#include <string>
#include <utility>
#include <vector>

#include "aim/scale/bootstrap.h"
#include "aim/scale/point_results.h"
#include "aim/scale/scaling_fit.h"

namespace aim::scale {

/// The runs of one setting at one x.
struct Setting {
  std::string name;
  double x = 0;
  std::vector<double> losses;  // one per run (seed)
};

struct LawFit {
  ScalingLaw law;                                 // on every run of the chosen settings
  Interval E, A, alpha;                           // 95 % bootstrap intervals (invalid: none)
  std::vector<double> band_x, band_lo, band_hi;   // the fitted curve's 95 % band
};

struct AxisFit {
  std::string id;      // fits.json key: "loss_vs_trunk_params", ...
  std::string axis;    // "trunk parameters", "unique images", "training FLOPs", ...
  std::string symbol;  // N, D, C
  std::string where;   // "at 60k unique images", "frontier of final points", ...
  std::vector<std::pair<double, double>> runs;  // (x, final val loss) of every run the fit used
  int distinct_x = 0;
  std::string too_few;  // non-empty: no fit, and why ("too few points to fit: ...")
  LawFit saturating, power_law;
  double delta_aicc = NAN;  // AICc(power law) − AICc(saturating): > 2 favours the floor E
  std::string no_interval;  // non-empty: why there are no intervals (no replicates)
  /// "saturating (ΔAICc 7.1)", "power law", "neither (ΔAICc 0.8)", or why not compared.
  std::string preferred() const;
};

/// Fits both forms to the best setting per x (its lowest mean loss); with `frontier`, only the
/// settings on the lower envelope of (x, mean loss) (the compute-optimal frontier). Intervals
/// from `resamples` stratified bootstrap draws.
AxisFit fit_axis(const std::vector<Setting>& settings, bool frontier, int resamples = kBootstrapResamples);

/// One step along an axis: loss at `from` minus loss at `to` (the best setting's mean each),
/// with its bootstrap interval.
struct TrendStep {
  double from = 0, to = 0;
  double loss_from = 0, loss_to = 0;
  Interval drop;        // of loss_from − loss_to; positive: the loss falls
  std::string verdict;  // falls | rises | within noise | no interval (one run per setting)
};

struct Trend {
  std::string group;  // "60k unique images", "199k parameters"
  std::vector<TrendStep> steps;
  /// holds (every step falls beyond its uncertainty) | reversed (some step rises beyond it) |
  /// not resolved (a step within the noise) | no verdict (one run per setting: no noise estimate)
  std::string verdict;
};
Trend trend(const std::string& group, const std::vector<Setting>& settings, int resamples = kBootstrapResamples);

struct Correlation {
  int n = 0;  // runs with both a final val loss and a probe top-1
  double r = NAN;
  Interval interval;  // bootstrap over runs
  LinearFit line;     // top-1 = intercept + slope · loss
  /// holds (r's interval below 0) | reversed (above 0) | not resolved | too few points (n < 3)
  std::string verdict;
};
Correlation loss_accuracy(const std::vector<std::pair<double, double>>& loss_top1,
                          int resamples = kBootstrapResamples);

struct StudyFits {
  std::vector<AxisFit> fits;       // vs parameters (trunk, total), per model size vs data, vs compute (total, trunk)
  std::vector<Trend> wider;        // per data size: wider ⇒ lower loss
  std::vector<Trend> more_data;    // per model size: more unique data ⇒ lower loss
  Correlation accuracy;
  std::string params_data_group;   // the data size the parameter fits use ("60k unique images")
};

/// Every statistic of the report over the "done" points (failed, diverged, stale and
/// unfinished ones are no evidence).
StudyFits fit_study(const std::vector<PointResult>& results, int resamples = kBootstrapResamples);

/// "1.78M", "60k": three significant digits and an SI suffix.
std::string human(double v);

}  // namespace aim::scale
