#pragma once
// Internal to src/data: which sample fills which slot of an optimizer step's global batch in
// train mode, for one rank. World-size free: the global batch of optimizer step t holds the
// global samples g = t * GB + j (j < GB); g's source is the mixture's draw for g; a
// random-access source's item is the k-th of its seeded epoch permutation (k counted over all
// of the step's slots, in order); a streaming source's sample comes from the lane ("unit")
// whose block of the global batch holds j: unit u covers j in [u * GB / U, (u + 1) * GB / U),
// and serves its slots in order. Rank r of W owns slots [r * GB / W, (r + 1) * GB / W) and
// with them units [r * U / W, (r + 1) * U / W) when W divides U, so the same g gets the same
// sample on any such world size, and no rank reads another's lanes.
#include <cstdint>
#include <vector>

#include "aim/data/mixture.h"

namespace aim::data {

struct Slot {
  int64_t g = 0;         // global sample index (train); position in the pass (eval)
  int src = 0;
  int64_t item = -1;     // random-access item
  int lane = -1;         // streaming: this rank's lane and its ordinal
  int64_t lane_ord = -1;
};

struct TrainLayout {
  int64_t global_batch = 0;  // samples per optimizer step, over all ranks
  int rank = 0, world = 1;
  uint64_t seed = 0;
  std::vector<int64_t> sizes;  // per source: random-access items per epoch; -1 for streams
  std::vector<int64_t> units;  // per source: streaming lanes over all ranks; 0 for random access
};

/// This rank's slots of optimizer step t (global_batch / world of them, in order). `taken`
/// (per source, over all ranks) and `ordinal` (per streaming source, per lane of this rank)
/// enter as their values at the step's start and leave as those at its end.
std::vector<Slot> plan_train_step(const TrainLayout& layout, const MixtureSampler& mixture, int64_t t,
                                  std::vector<int64_t>& taken, std::vector<std::vector<int64_t>>& ordinal);

/// The unit (lane over all ranks) whose block of the global batch holds slot j.
inline int64_t unit_of_slot(int64_t j, int64_t units, int64_t global_batch) {
  return ((j + 1) * units - 1) / global_batch;
}

}  // namespace aim::data
