// The statistics of aim-scale's report: saturating and pure power-law fits recover known
// parameters, bootstrap intervals cover the truth, AICc picks the right form, and no fit or
// verdict comes from too little (fewer than 3 points, or no replicate runs to measure noise).
#include <gtest/gtest.h>

#include <cmath>

#include "aim/scale/bootstrap.h"
#include "aim/scale/scaling_fit.h"
#include "aim/scale/study_fits.h"

using namespace aim;

namespace {

// A fixed, zero-mean wobble: replicate k of point i is off by this much (no RNG in the test).
double wobble(int i, int k) {
  static const double w[] = {0.004, -0.003, -0.001, 0.002, -0.002, 0.0005};
  return w[(i * 3 + k) % 6];
}

std::vector<scale::Setting> settings_from(double E, double A, double alpha, const std::vector<double>& xs,
                                          int replicates, double noise) {
  std::vector<scale::Setting> out;
  for (size_t i = 0; i < xs.size(); ++i) {
    scale::Setting s;
    s.name = "x=" + std::to_string(xs[i]);
    s.x = xs[i];
    for (int k = 0; k < replicates; ++k) s.losses.push_back(E + A * std::pow(xs[i], -alpha) + noise * wobble(int(i), k));
    out.push_back(s);
  }
  return out;
}

TEST(ScalingFit, SaturatingLawRecoversExactParametersAndPowerLawIsItsFloorlessCase) {
  // Noise-free points of L = 0.4 + 30·x^−0.3 over three decades: the fit lands on the truth.
  std::vector<std::pair<double, double>> xy;
  for (double x : {1e4, 3e4, 1e5, 3e5, 1e6, 1e7}) xy.emplace_back(x, 0.4 + 30.0 * std::pow(x, -0.3));
  const auto sat = scale::fit_scaling_law(xy, true);
  ASSERT_TRUE(sat.valid) << sat.why;
  EXPECT_NEAR(sat.E, 0.4, 1e-6);
  EXPECT_NEAR(sat.alpha, 0.3, 1e-6);
  EXPECT_NEAR(sat.A, 30.0, 1e-4);
  EXPECT_LT(sat.rss, 1e-16);
  EXPECT_NEAR(sat(1e5), 0.4 + 30.0 * std::pow(1e5, -0.3), 1e-9);

  // A pure power law 7·x^−0.25: the power-law form recovers it, and the saturating one puts
  // its floor at 0 (E ≥ 0) instead of going negative.
  xy.clear();
  for (double x : {1e3, 1e4, 1e5, 1e6}) xy.emplace_back(x, 7.0 * std::pow(x, -0.25));
  const auto pow = scale::fit_scaling_law(xy, false);
  ASSERT_TRUE(pow.valid);
  EXPECT_EQ(pow.E, 0.0);
  EXPECT_NEAR(pow.alpha, 0.25, 1e-6);
  EXPECT_NEAR(pow.A, 7.0, 1e-4);
  const auto floorless = scale::fit_scaling_law(xy, true);
  EXPECT_GE(floorless.E, 0.0);
  EXPECT_NEAR(floorless.E, 0.0, 1e-6);
  EXPECT_NEAR(floorless.alpha, 0.25, 1e-4);

  // A loss that falls ever faster (a negative floor, 2·x^−0.1 − 0.5) is not given a negative E.
  xy.clear();
  for (double x : {1e1, 1e2, 1e3, 1e4, 1e5}) xy.emplace_back(x, 2.0 * std::pow(x, -0.1) - 0.5);
  EXPECT_EQ(scale::fit_scaling_law(xy, true).E, 0.0);

  EXPECT_FALSE(sat.alpha_at_bound);
  // A step (one drop, then flat) is no power law: the exponent runs to the end of its range.
  const auto step = scale::fit_scaling_law({{1, 1.0}, {10, 0.5}, {100, 0.5}, {1000, 0.5}}, true);
  EXPECT_TRUE(step.alpha_at_bound) << step.alpha;
  EXPECT_NEAR(step.E, 0.5, 1e-3);

  // A loss that rises with x is flat under both forms (A = 0, no exponent), never a negative A.
  const auto flat = scale::fit_scaling_law({{1, 1.0}, {10, 1.1}, {100, 1.2}, {1000, 1.3}}, true);
  ASSERT_TRUE(flat.valid);
  EXPECT_EQ(flat.A, 0.0);
  EXPECT_EQ(flat.alpha, 0.0);
  EXPECT_NEAR(flat.E, 1.15, 1e-12);
}

TEST(ScalingFit, NoFitFromFewerThanThreeDistinctPoints) {
  const auto two = scale::fit_scaling_law({{1e5, 0.7376}, {4e5, 0.7325}}, false);
  EXPECT_FALSE(two.valid);
  EXPECT_NE(two.why.find("too few points to fit"), std::string::npos) << two.why;
  EXPECT_FALSE(scale::fit_scaling_law({{5, 1}, {5, 2}, {5, 3}, {6, 1}}, false).valid);  // two distinct x
  // Three points, three parameters: the saturating form has no residual left to judge it by.
  EXPECT_FALSE(scale::fit_scaling_law({{1, 3}, {10, 2}, {100, 1.5}}, true).valid);
  EXPECT_TRUE(scale::fit_scaling_law({{1, 3}, {10, 2}, {100, 1.5}}, false).valid);
  const auto f = scale::fit_axis(settings_from(0.4, 30, 0.3, {1e5, 1e6}, 2, 0.01), false, 50);
  EXPECT_NE(f.too_few.find("too few points to fit: 2 distinct values"), std::string::npos) << f.too_few;
  EXPECT_FALSE(f.saturating.law.valid);
  EXPECT_FALSE(f.power_law.law.valid);
}

TEST(Bootstrap, PercentileIntervalAndDeterministicDraws) {
  std::vector<double> v;
  for (int i = 1; i <= 101; ++i) v.push_back(i);
  const auto i95 = scale::percentile_interval(v);
  EXPECT_NEAR(i95.lo, 3.5, 1e-12);  // position 0.025 · 100 = 2.5: halfway between 3 and 4
  EXPECT_NEAR(i95.hi, 98.5, 1e-12);
  const auto small = scale::percentile_interval({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11});
  EXPECT_NEAR(small.lo, 1.25, 1e-12);  // position 0.025 · 10: a quarter of the way from 1 to 2
  EXPECT_NEAR(small.hi, 10.75, 1e-12);
  v.push_back(NAN);  // a few undetermined resamples are dropped...
  EXPECT_NEAR(scale::percentile_interval(v).lo, 3.5, 1e-12);
  for (int i = 0; i < 10; ++i) v.push_back(NAN);  // ...too many leave no interval
  EXPECT_FALSE(scale::percentile_interval(v).valid());
  scale::Resampler a, b;
  for (int i = 0; i < 5; ++i) EXPECT_EQ(a.below(1000), b.below(1000));
}

// Noisy replicates (3 per x, ±0.004) of L = 0.4 + 30·x^−0.3: every fitted parameter within a
// few noise widths of the truth, each 95 % interval containing it, and AICc preferring the
// floor. The same settings from a pure power law: the floor is not preferred.
TEST(ScalingFit, BootstrapIntervalsCoverTheTrueParametersAndAiccPicksTheForm) {
  const std::vector<double> xs = {1e4, 3e4, 1e5, 3e5, 1e6, 3e6, 1e7};
  const auto f = scale::fit_axis(settings_from(0.4, 30.0, 0.3, xs, 3, 1.0), false, 400);
  ASSERT_TRUE(f.too_few.empty()) << f.too_few;
  ASSERT_TRUE(f.no_interval.empty()) << f.no_interval;
  EXPECT_EQ(f.runs.size(), 21u);
  const auto& sat = f.saturating;
  ASSERT_TRUE(sat.law.valid);
  EXPECT_NEAR(sat.law.E, 0.4, 0.02);
  EXPECT_NEAR(sat.law.alpha, 0.3, 0.05);
  EXPECT_TRUE(sat.E.contains(0.4)) << sat.E.lo << " " << sat.E.hi;
  EXPECT_TRUE(sat.alpha.contains(0.3)) << sat.alpha.lo << " " << sat.alpha.hi;
  EXPECT_TRUE(sat.A.contains(30.0)) << sat.A.lo << " " << sat.A.hi;
  EXPECT_LT(sat.alpha.hi - sat.alpha.lo, 0.2);  // informative, not [0, 4]
  // The band is the curve's: it holds the true curve and the fit at every grid point.
  ASSERT_EQ(sat.band_x.size(), 41u);
  for (size_t g = 0; g < sat.band_x.size(); ++g) {
    const double truth = 0.4 + 30.0 * std::pow(sat.band_x[g], -0.3);
    EXPECT_LE(sat.band_lo[g], truth + 1e-3) << g;
    EXPECT_GE(sat.band_hi[g], truth - 1e-3) << g;
  }
  EXPECT_GT(f.delta_aicc, 2.0);
  EXPECT_NE(f.preferred().find("saturating"), std::string::npos) << f.preferred();

  const auto p = scale::fit_axis(settings_from(0.0, 7.0, 0.25, xs, 3, 0.2), false, 200);
  ASSERT_TRUE(p.power_law.law.valid);
  EXPECT_NEAR(p.power_law.law.alpha, 0.25, 0.01);
  EXPECT_TRUE(p.power_law.alpha.contains(0.25)) << p.power_law.alpha.lo << " " << p.power_law.alpha.hi;
  EXPECT_LT(p.delta_aicc, 2.0);
  EXPECT_EQ(p.preferred().find("saturating"), std::string::npos) << p.preferred();
}

// The compute frontier keeps, per x, the best setting, and only settings below every cheaper
// one; single runs give a fit but no intervals.
TEST(ScalingFit, FrontierChoiceAndNoIntervalsWithoutReplicates) {
  std::vector<scale::Setting> s = {{"a", 1, {5}}, {"b", 2, {3}}, {"c", 2, {3.5}}, {"d", 3, {4}},
                                   {"e", 4, {2}}, {"f", 8, {1}}};
  const auto f = scale::fit_axis(s, true, 50);
  const std::vector<std::pair<double, double>> frontier = {{1, 5}, {2, 3}, {4, 2}, {8, 1}};
  EXPECT_EQ(f.runs, frontier);  // c loses to b at x=2; d (4 at x=3) is above b's 3
  ASSERT_TRUE(f.power_law.law.valid);
  EXPECT_NE(f.no_interval.find("no intervals"), std::string::npos);
  EXPECT_FALSE(f.power_law.alpha.valid());

  auto pf = scale::pareto_frontier({{3, 0.5}, {1, 2.0}, {2, 2.5}, {2, 1.0}, {4, 0.7}, {5, 0.4}});
  ASSERT_EQ(pf.size(), 4u);
  EXPECT_EQ(pf[1], std::make_pair(2.0, 1.0));
  EXPECT_NEAR(scale::pearson({{1, 10}, {2, 8}, {3, 6}}), -1.0, 1e-12);
  EXPECT_TRUE(std::isnan(scale::pearson({{1, 1}})));
}

// A trend verdict needs the effect to exceed the run-to-run noise: well-separated replicates
// hold, overlapping ones are not resolved, single runs get no verdict at all.
TEST(Trend, VerdictOnlyWhereTheDifferenceExceedsItsInterval) {
  const auto clear = scale::trend("g", {{"w1", 1, {0.60, 0.61}}, {"w2", 2, {0.50, 0.51}}, {"w3", 3, {0.45, 0.46}}}, 200);
  ASSERT_EQ(clear.steps.size(), 2u);
  EXPECT_EQ(clear.verdict, "holds");
  EXPECT_TRUE(clear.steps[0].drop.contains(0.10));
  EXPECT_TRUE(clear.steps[0].drop.above_zero());

  // 0.001 apart with a 0.006 spread between seeds (the committed study's "more data" effect).
  const auto noisy = scale::trend("g", {{"d1", 1000, {0.5686, 0.5626}}, {"d2", 60000, {0.5674, 0.5634}}}, 200);
  EXPECT_EQ(noisy.steps[0].verdict, "within noise");
  EXPECT_EQ(noisy.verdict.rfind("not resolved", 0), 0u) << noisy.verdict;

  const auto reversed = scale::trend("g", {{"a", 1, {0.40, 0.41}}, {"b", 2, {0.50, 0.51}}}, 200);
  EXPECT_EQ(reversed.verdict, "reversed");

  const auto single = scale::trend("g", {{"w16", 1, {0.7376}}, {"w32", 2, {0.7325}}}, 200);
  EXPECT_EQ(single.steps[0].verdict.rfind("no interval", 0), 0u);
  EXPECT_EQ(single.verdict.rfind("no verdict", 0), 0u) << single.verdict;
}

TEST(Trend, CorrelationNeedsThreeRunsAndAnIntervalClearOfZero) {
  EXPECT_EQ(scale::loss_accuracy({{0.7376, 0.70}, {0.7325, 0.72}}).verdict.rfind("too few points", 0), 0u);
  std::vector<std::pair<double, double>> strong;
  for (int i = 0; i < 12; ++i) strong.emplace_back(0.5 + 0.01 * i, 0.8 - 0.02 * i + 0.003 * ((i * 7) % 3 - 1));
  const auto c = scale::loss_accuracy(strong, 300);
  EXPECT_LT(c.r, -0.95);
  EXPECT_TRUE(c.interval.below_zero());
  EXPECT_EQ(c.verdict, "holds");
  // Unrelated: the interval straddles 0.
  const auto none = scale::loss_accuracy({{1, 1}, {2, 3}, {3, 2}, {4, 1}, {5, 3}, {6, 2}}, 300);
  EXPECT_EQ(none.verdict.rfind("not resolved", 0), 0u) << none.verdict;
}

}  // namespace

namespace {

// fit_study over a sweep's results: only done points count; runs differing only in the seed
// are replicates of one setting (their mean, not their best, counts); of two settings at one
// (model size, data size) — two learning rates — the better mean counts.
TEST(StudyFits, OnlyDonePointsCountAndSeedsAreReplicatesOfOneSetting) {
  std::vector<scale::PointResult> rs;
  auto add = [&](const std::string& setting, int64_t seed, int64_t n, int64_t d, double loss, const char* status) {
    scale::PointResult r;
    r.name = setting + ",train.seed=" + std::to_string(seed);
    r.setting = setting;
    r.seed = seed;
    r.status = status;
    r.trunk_params = n;
    r.total_params = n + 1000;
    r.unique_images = d;
    r.train_flops = 1e12;
    r.trunk_train_flops = 1e11;
    r.val_loss = loss;
    r.probe_top1 = NAN;
    rs.push_back(r);
  };
  add("lr=a,d=1000", 0, 1000000, 1000, 2.0, "done");
  add("lr=a,d=1000", 1, 1000000, 1000, 2.1, "done");
  add("lr=b,d=1000", 0, 1000000, 1000, 5.0, "done");  // the worse learning rate
  add("lr=b,d=1000", 1, 1000000, 1000, 5.1, "done");
  add("lr=a,d=10000", 0, 1000000, 10000, 1.0, "done");
  add("lr=a,d=10000", 1, 1000000, 10000, 1.1, "done");
  add("lr=a,d=100000", 0, 1000000, 100000, 1e-3, "failed");
  add("lr=a,d=100000", 1, 1000000, 100000, 1e-4, "diverged");
  add("lr=a,d=1000,n=big", 0, 10000000, 1000, 1e-6, "stale");
  add("lr=a,d=1000,n=big", 1, 10000000, 1000, 1e-7, "running");
  const auto f = scale::fit_study(rs, 100);
  EXPECT_TRUE(f.wider.empty());  // one finished model size
  ASSERT_EQ(f.more_data.size(), 1u);
  const auto& t = f.more_data[0];
  ASSERT_EQ(t.steps.size(), 1u);  // 1k -> 10k: the 100k points did not finish
  EXPECT_DOUBLE_EQ(t.steps[0].loss_from, 2.05);
  EXPECT_DOUBLE_EQ(t.steps[0].loss_to, 1.05);
  EXPECT_TRUE(t.steps[0].drop.contains(1.0));
  EXPECT_EQ(t.verdict, "holds");
  bool data_fit = false;
  for (const auto& a : f.fits) {
    EXPECT_NE(a.id, "loss_vs_trunk_params");  // no model-size axis among done points
    EXPECT_NE(a.id, "loss_vs_compute");       // one compute value
    if (a.id != "loss_vs_data") continue;
    data_fit = true;
    EXPECT_EQ(a.distinct_x, 2);
    EXPECT_FALSE(a.too_few.empty());
    EXPECT_EQ(a.runs.size(), 4u);  // both seeds of the better setting at each data size
  }
  EXPECT_TRUE(data_fit);
}

}  // namespace
