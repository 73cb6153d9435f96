#pragma once
// The loader's position, small enough to store in every checkpoint. Because all randomness
// is counter-based, (step, per-source counters, stream cursors) is all it takes to replay the
// exact batches an uninterrupted run would have seen.
//
// Train mode is world-size free. Random-access sources count the items taken over all ranks.
// A streaming source is read by `units` lanes in all (world_size x data.stream_lanes when the
// run first started); lane u reads the shards at positions u, u + units, ... of each epoch's
// shard order and serves block u of every optimizer step's global batch, and rank r owns lanes
// [r * units / W, (r + 1) * units / W). Merging every rank's state (merge_loader_states) gives
// all the lanes' cursors, from which any world size that divides `units` continues exactly:
// the same samples at the same global indices as the uninterrupted run.
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
  int64_t step = 0;          // batches delivered by this rank (train: micro-batches)
  int64_t next_global = 0;   // train: samples delivered by all ranks; at an optimizer step's end,
                             // the global index of the next step's first sample
  uint64_t seed = 0;
  int rank = 0;              // -1: every rank's state merged (merge_loader_states)
  int world_size = 1;
  int64_t batch_size = 0;    // per rank and micro-batch
  int64_t accumulation = 1;  // train: micro-batches per optimizer step
  bool train = true;
  std::vector<std::string> sources;  // names, checked on restore
  // Per source. taken: random-access items taken over all ranks up to the current optimizer
  // step's first sample (world-size free); 0 for streams.
  std::vector<int64_t> taken;
  std::vector<int64_t> delivered;            // samples handed out by this rank (merged: by all)
  std::vector<int64_t> units;                // train, streaming: the source's lanes over all ranks
  std::vector<std::vector<LaneState>> lanes;  // this rank's lanes (merged: all `units` of them)
  int64_t eval_stream = 0;                    // eval: index of the streaming source being read
};

void to_json(nlohmann::json& j, const LaneState& s);
void from_json(const nlohmann::json& j, LaneState& s);
void to_json(nlohmann::json& j, const LoaderState& s);
void from_json(const nlohmann::json& j, LoaderState& s);

/// Every rank's train-mode state (index = rank) as one: the counters they share, checked
/// equal, and every lane in unit order. Throws aim::Error naming what disagrees.
LoaderState merge_loader_states(const std::vector<LoaderState>& ranks);

/// Lanes [first, first + count) of a streaming source with `units` lanes that rank `rank` of
/// `world` owns (world must divide units).
inline std::pair<int64_t, int64_t> owned_units(int64_t units, int rank, int world) {
  return {units / world * rank, units / world};
}

}  // namespace aim::data
