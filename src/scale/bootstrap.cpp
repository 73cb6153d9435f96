#include "aim/scale/bootstrap.h"

#include <algorithm>

namespace aim::scale {

uint64_t Resampler::next() {
  uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

Interval percentile_interval(std::vector<double> samples, double level) {
  const size_t total = samples.size();
  samples.erase(std::remove_if(samples.begin(), samples.end(), [](double v) { return !std::isfinite(v); }),
                samples.end());
  Interval out;
  if (samples.empty() || double(total - samples.size()) > (1 - level) * total) return out;
  std::sort(samples.begin(), samples.end());
  auto quantile = [&](double q) {
    const double pos = q * (samples.size() - 1);
    const size_t i = static_cast<size_t>(pos);
    const double frac = pos - i;
    return i + 1 < samples.size() ? samples[i] * (1 - frac) + samples[i + 1] * frac : samples[i];
  };
  out.lo = quantile((1 - level) / 2);
  out.hi = quantile((1 + level) / 2);
  return out;
}

}  // namespace aim::scale
