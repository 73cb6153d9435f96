#pragma once
// The loader's position, small enough to store in every checkpoint. Because all randomness
// is counter-based, (step, per-source counters, stream cursors) is all it takes to replay the
// exact batches an uninterrupted run would have seen.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "aim/data/webdataset_source.h"

namespace aim::data {

struct LaneState {
  LaneCursor cursor;     // reader position after the last sample this lane delivered
  int64_t ordinal = 0;   // samples this lane has delivered
};

struct LoaderState {
  int64_t step = 0;         // batches delivered by this rank (train: global batches so far)
  int64_t next_global = 0;  // train: global index of the next batch's first sample
  uint64_t seed = 0;
  int rank = 0, world_size = 1;
  int64_t batch_size = 0;   // per rank
  bool train = true;
  std::vector<std::string> sources;  // names, checked on restore
  // Per source: random-access sources count items taken over all ranks (world-size free);
  // streaming sources count this rank's samples.
  std::vector<int64_t> taken;
  std::vector<int64_t> delivered;            // samples handed out by this rank, per source
  std::vector<std::vector<LaneState>> lanes;  // per source; empty for random-access sources
  int64_t eval_stream = 0;                    // eval: index of the streaming source being read
};

void to_json(nlohmann::json& j, const LaneState& s);
void from_json(const nlohmann::json& j, LaneState& s);
void to_json(nlohmann::json& j, const LoaderState& s);
void from_json(const nlohmann::json& j, LoaderState& s);

}  // namespace aim::data
