#include "aim/data/mixture.h"

#include <algorithm>
#include <cmath>

#include "aim/data/rng.h"
#include "aim/error.h"

namespace aim::data {

MixtureSampler::MixtureSampler(const std::vector<double>& weights,
                               const std::vector<std::string>& names, uint64_t seed)
    : seed_(seed) {
  if (weights.empty()) throw Error("data: no sources configured (data.sources is empty)");
  double total = 0;
  for (size_t i = 0; i < weights.size(); ++i) {
    std::string name = i < names.size() ? names[i] : std::to_string(i);
    if (!(weights[i] > 0) || !std::isfinite(weights[i]))
      throw Error("data: source '" + name + "' has weight " + std::to_string(weights[i]) +
                  "; weights must be > 0 (remove a source instead of zeroing it)");
    total += weights[i];
  }
  double acc = 0;
  for (double w : weights) cumulative_.push_back(acc += w / total);
  cumulative_.back() = 1.0;
}

int MixtureSampler::source_of(uint64_t g) const {
  if (cumulative_.size() == 1) return 0;
  double u = Rng(seed_, Stream::kMixture, g).uniform();
  return static_cast<int>(std::upper_bound(cumulative_.begin(), cumulative_.end(), u) -
                          cumulative_.begin());
}

std::vector<double> MixtureSampler::probabilities() const {
  std::vector<double> p(cumulative_.size());
  for (size_t i = 0; i < p.size(); ++i) p[i] = cumulative_[i] - (i ? cumulative_[i - 1] : 0.0);
  return p;
}

}  // namespace aim::data
