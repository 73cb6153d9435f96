#pragma once
// The DFN-2B+ rule: global sample g comes from source i with probability weight_i / sum.
// The draw is a hash of (seed, g), so the mixture is identical for any world size, worker
// count or restart point, and nothing about it needs saving.
#include <cstdint>
#include <string>
#include <vector>

namespace aim::data {

class MixtureSampler {
 public:
  /// Throws aim::Error when a weight is <= 0 (or not finite) or there are no sources; names
  /// are used in the message.
  MixtureSampler(const std::vector<double>& weights, const std::vector<std::string>& names,
                 uint64_t seed);
  int source_of(uint64_t global_index) const;
  size_t size() const { return cumulative_.size(); }
  /// Normalized weights (they sum to 1).
  std::vector<double> probabilities() const;

 private:
  std::vector<double> cumulative_;
  uint64_t seed_;
};

}  // namespace aim::data
