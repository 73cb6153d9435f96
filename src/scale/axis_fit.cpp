// The statistics over settings (replicate runs at one x): fits with stratified bootstrap
// intervals, trend steps with a verdict only beyond the noise, and the loss -> accuracy
// correlation. fit_study (study_fits.cpp) builds the settings from a sweep's results.
#include <algorithm>
#include <cstdio>
#include <limits>
#include <map>

#include "aim/scale/study_fits.h"

namespace aim::scale {
namespace {

constexpr double kInfinity = std::numeric_limits<double>::infinity();
using Runs = std::vector<std::vector<double>>;  // per setting, its runs' losses

double mean(const std::vector<double>& v) {
  if (v.empty()) return NAN;
  double s = 0;
  for (double x : v) s += x;
  return s / v.size();
}

/// The settings a fit or trend uses, in increasing x: per x the lowest mean; with `frontier`
/// only those whose mean is below every chosen one at smaller x.
std::vector<size_t> choose(const std::vector<Setting>& settings, const Runs& runs, bool frontier) {
  std::map<double, size_t> best;
  std::vector<double> means(settings.size());
  for (size_t i = 0; i < settings.size(); ++i) {
    means[i] = mean(runs[i]);
    if (!std::isfinite(means[i])) continue;
    auto it = best.find(settings[i].x);
    if (it == best.end() || means[i] < means[it->second]) best[settings[i].x] = i;
  }
  std::vector<size_t> out;
  double lowest = kInfinity;
  for (const auto& [x, i] : best) {
    if (frontier && !(means[i] < lowest)) continue;
    out.push_back(i);
    lowest = std::min(lowest, means[i]);
  }
  return out;
}

Runs runs_of(const std::vector<Setting>& settings) {
  Runs out;
  for (const auto& s : settings) out.push_back(s.losses);
  return out;
}

/// Each setting's runs drawn again with replacement, within the setting.
Runs resample(const Runs& runs, Resampler& rng) {
  Runs out(runs.size());
  for (size_t i = 0; i < runs.size(); ++i)
    for (size_t k = 0; k < runs[i].size(); ++k) out[i].push_back(runs[i][rng.below(runs[i].size())]);
  return out;
}

std::vector<std::pair<double, double>> observations(const std::vector<Setting>& settings, const Runs& runs,
                                                    const std::vector<size_t>& chosen) {
  std::vector<std::pair<double, double>> out;
  for (size_t i : chosen)
    for (double y : runs[i]) out.emplace_back(settings[i].x, y);
  return out;
}

bool replicated(const std::vector<Setting>& settings, const std::vector<size_t>& chosen) {
  for (size_t i : chosen)
    if (settings[i].losses.size() < 2) return false;
  return !chosen.empty();
}

std::string fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

const char* kNoReplicates =
    "no intervals: a setting the fit uses has one run, so there is no run-to-run noise to resample (add a "
    "train.seed axis)";

}  // namespace

std::string AxisFit::preferred() const {
  if (!too_few.empty()) return too_few;
  if (!std::isfinite(delta_aicc))
    return "not compared: AICc needs at least 5 runs for 3 parameters (" + std::to_string(runs.size()) + " here)";
  const std::string d = "ΔAICc = " + fixed(delta_aicc, 1);
  if (delta_aicc > 2) return "saturating, with a floor E (" + d + ")";
  if (delta_aicc < -2) return "pure power law (" + d + ")";
  return "neither clearly (" + d + ", within ±2)";
}

AxisFit fit_axis(const std::vector<Setting>& settings, bool frontier, int resamples) {
  AxisFit f;
  const Runs runs = runs_of(settings);
  const auto chosen = choose(settings, runs, frontier);
  f.runs = observations(settings, runs, chosen);
  f.distinct_x = static_cast<int>(chosen.size());
  if (f.distinct_x < kMinDistinctX) {
    f.too_few = "too few points to fit: " + std::to_string(f.distinct_x) + " distinct value" +
                (f.distinct_x == 1 ? "" : "s") + " (a fit needs " + std::to_string(kMinDistinctX) + ")";
    return f;
  }
  f.saturating.law = fit_scaling_law(f.runs, true);
  f.power_law.law = fit_scaling_law(f.runs, false);
  f.delta_aicc = f.power_law.law.aicc() - f.saturating.law.aicc();
  if (!replicated(settings, chosen)) {
    f.no_interval = kNoReplicates;
    return f;
  }
  double lo = kInfinity, hi = 0;
  for (size_t i : chosen) lo = std::min(lo, settings[i].x), hi = std::max(hi, settings[i].x);
  const int grid = 41;
  std::vector<double> band_x(grid);
  for (int g = 0; g < grid; ++g) band_x[g] = lo * std::pow(hi / lo, double(g) / (grid - 1));
  struct Samples {
    std::vector<double> E, A, alpha;
    std::vector<std::vector<double>> band;
  } sat_draws, pow_draws;
  sat_draws.band.resize(grid);
  pow_draws.band.resize(grid);
  Resampler rng;
  for (int b = 0; b < resamples; ++b) {
    const Runs drawn = resample(runs, rng);
    const auto xy = observations(settings, drawn, choose(settings, drawn, frontier));
    for (auto* s : {&sat_draws, &pow_draws}) {
      const ScalingLaw law = fit_scaling_law(xy, s == &sat_draws);
      s->E.push_back(law.valid ? law.E : NAN);
      s->A.push_back(law.valid ? law.A : NAN);
      s->alpha.push_back(law.valid ? law.alpha : NAN);
      for (int g = 0; g < grid; ++g) s->band[g].push_back(law.valid ? law(band_x[g]) : NAN);
    }
  }
  for (auto [fit, s] : {std::make_pair(&f.saturating, &sat_draws), std::make_pair(&f.power_law, &pow_draws)}) {
    if (!fit->law.valid) continue;
    fit->E = percentile_interval(s->E);
    fit->A = percentile_interval(s->A);
    fit->alpha = percentile_interval(s->alpha);
    for (int g = 0; g < grid; ++g) {
      const Interval band = percentile_interval(s->band[g]);
      if (!band.valid()) continue;
      fit->band_x.push_back(band_x[g]);
      fit->band_lo.push_back(band.lo);
      fit->band_hi.push_back(band.hi);
    }
  }
  return f;
}

Trend trend(const std::string& group, const std::vector<Setting>& settings, int resamples) {
  Trend t;
  t.group = group;
  const Runs runs = runs_of(settings);
  const auto chosen = choose(settings, runs, false);
  // The best mean at one x, over the settings there (the same choice the fits make).
  auto best_at = [&](const Runs& r, double x) {
    double best = kInfinity;
    for (size_t i = 0; i < settings.size(); ++i)
      if (settings[i].x == x) best = std::min(best, mean(r[i]));
    return best;
  };
  std::vector<std::vector<double>> drops(chosen.size() > 0 ? chosen.size() - 1 : 0);
  for (size_t k = 1; k < chosen.size(); ++k) {
    TrendStep s;
    s.from = settings[chosen[k - 1]].x;
    s.to = settings[chosen[k]].x;
    s.loss_from = mean(runs[chosen[k - 1]]);
    s.loss_to = mean(runs[chosen[k]]);
    t.steps.push_back(s);
  }
  Resampler rng;
  for (int b = 0; b < resamples && !t.steps.empty(); ++b) {
    const Runs drawn = resample(runs, rng);
    for (size_t k = 0; k < t.steps.size(); ++k)
      drops[k].push_back(best_at(drawn, t.steps[k].from) - best_at(drawn, t.steps[k].to));
  }
  bool any_without = false, any_rises = false, all_fall = !t.steps.empty();
  for (size_t k = 0; k < t.steps.size(); ++k) {
    TrendStep& s = t.steps[k];
    if (!replicated(settings, {chosen[k], chosen[k + 1]})) {
      s.verdict = "no interval (one run per setting)";
      any_without = true;
      all_fall = false;
      continue;
    }
    s.drop = percentile_interval(drops[k]);
    s.verdict = s.drop.above_zero() ? "falls" : s.drop.below_zero() ? "rises" : "within noise";
    any_rises |= s.verdict == "rises";
    all_fall &= s.verdict == "falls";
  }
  t.verdict = t.steps.empty() ? "no verdict (one value)"
              : any_without  ? "no verdict (one run per setting: no noise estimate; add a train.seed axis)"
              : all_fall     ? "holds"
              : any_rises    ? "reversed"
                             : "not resolved (within the run-to-run noise)";
  return t;
}

Correlation loss_accuracy(const std::vector<std::pair<double, double>>& loss_top1, int resamples) {
  Correlation c;
  c.n = static_cast<int>(loss_top1.size());
  if (c.n < 3) {
    c.verdict = "too few points (" + std::to_string(c.n) + " runs with a probe; a correlation needs 3)";
    return c;
  }
  c.r = pearson(loss_top1);
  c.line = fit_line(loss_top1);
  Resampler rng;
  std::vector<double> rs;
  std::vector<std::pair<double, double>> drawn(loss_top1.size());
  for (int b = 0; b < resamples; ++b) {
    for (auto& p : drawn) p = loss_top1[rng.below(loss_top1.size())];
    rs.push_back(pearson(drawn));  // NaN when a draw repeats one point only
  }
  c.interval = percentile_interval(rs);
  c.verdict = c.interval.below_zero()   ? "holds"
              : c.interval.above_zero() ? "reversed"
                                        : "not resolved (the interval includes 0 or is undetermined)";
  return c;
}

}  // namespace aim::scale
