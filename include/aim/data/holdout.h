#pragma once
// A seeded part of a dataset set aside by sample index (aim-probe chooses its best head on it,
// never training on it): sample i is held out when a hash of (seed, i) falls below the
// fraction. A pure function of the index, so the split is the same on every rank, world size,
// worker count and epoch, and the training side and the held-out side never share a sample.
#include <cstdint>

#include "aim/data/rng.h"

namespace aim::data {

struct HoldOut {
  double fraction = 0;  // share held out, in [0, 1); 0 = off (every sample on both sides)
  uint64_t seed = 0;
  bool held = false;    // which side a loader yields: false = the rest, true = the held-out part

  /// Whether sample `index` is held out. Random-access sources index their items (after
  /// `limit`); streams use stream_sample_key(shard position, offset).
  bool holds(int64_t index) const {
    const uint64_t h = hash_key(seed, kStream, static_cast<uint64_t>(index));
    return static_cast<double>(h >> 11) * 0x1.0p-53 < fraction;
  }
  /// Whether a loader on this side yields sample `index`.
  bool keeps(int64_t index) const { return !on() || holds(index) == held; }
  bool on() const { return fraction > 0; }

  static constexpr uint64_t kStream = 0x686f6c64;  // "hold": apart from every other draw
};

}  // namespace aim::data
