#pragma once
// Bootstrap intervals: resample, refit, read the spread. Deterministic (a fixed generator and
// seed), so the same runs give the same report on every machine.
#include <cmath>
#include <cstdint>
#include <vector>

namespace aim::scale {

/// Resamples per interval: the 2.5th and 97.5th percentiles of 1000 draws move by well under
/// their own width between seeds.
inline constexpr int kBootstrapResamples = 1000;

/// SplitMix64: the same draws from the same seed with any standard library.
class Resampler {
 public:
  explicit Resampler(uint64_t seed = 0x5ca1ab1e5eedULL) : state_(seed) {}
  uint64_t next();
  /// Uniform in [0, n).
  size_t below(size_t n) { return static_cast<size_t>(next() % n); }

 private:
  uint64_t state_;
};

/// A central percentile interval. Invalid (NaN ends) when there were no samples, or when more
/// than (1 − level) of them were not finite (the quantity is undetermined on too many resamples).
struct Interval {
  double lo = NAN, hi = NAN;
  bool valid() const { return std::isfinite(lo) && std::isfinite(hi); }
  bool above_zero() const { return valid() && lo > 0; }
  bool below_zero() const { return valid() && hi < 0; }
  bool contains(double v) const { return valid() && lo <= v && v <= hi; }
};

/// The [(1 − level)/2, (1 + level)/2] quantiles (linear interpolation) of the finite samples.
Interval percentile_interval(std::vector<double> samples, double level = 0.95);

}  // namespace aim::scale
