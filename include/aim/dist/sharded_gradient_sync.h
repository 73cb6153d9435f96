#pragma once
#include <memory>
#include <vector>

#include <torch/types.h>

#include "aim/dist/communicator.h"

namespace aim::dist {

/// train.sharding=gradients (ZeRO-2): every rank keeps only the gradient of its own slice of
/// the flattened parameters (`bounds[r]`..`bounds[r+1]` for rank r, in the order of
/// `params`), summed over ranks and micro-batches.
///
/// As in GradientSync, a hook on every parameter copies its gradient into a flat bucket
/// while backward runs, and a bucket's reduction starts the moment its last gradient lands.
/// Buckets cover contiguous ranges of the flattened parameters, so each bucket splits into
/// at most a few owners' pieces; each piece is summed onto its owner (Communicator::
/// reduce_sum), which adds it into its slice. Unlike GradientSync, buckets exist only while
/// in flight (at most `max_in_flight`, the oldest is drained when another is launched) and
/// a parameter's own .grad is released as soon as the next gradient arrives, so no rank ever
/// holds the full gradient: 4 B/N per parameter plus a few buckets.
///
/// Buckets launch in index order (as DDP's reducer does): collectives pair up across ranks by
/// issue order, and a rank that gives a stalled step up fills nothing and launches every bucket
/// from finish(). A bucket still waiting for a gradient holds the later ones until it fills
/// (or finish()).
///
/// Every micro-batch reduces (arm() before its backward, finish() after): accumulating full
/// local gradients first would cost the memory this mode exists to save.
///
/// A bucket spread evenly over every rank's slice (a small model, or many ranks) goes out as
/// one reduce-scatter of zero-padded equal parts instead, where the backend has a native one
/// and it moves no more data than the reduces would (ReduceScatterPolicy::kAuto).
enum class ReduceScatterPolicy {
  kAuto,    // reduce-scatter where it is native and moves no more data than per-owner reduces
  kAlways,  // every bucket (tests: the padded path on any backend)
  kNever,   // per-owner reduces only
};

class ShardedGradientSync {
 public:
  ShardedGradientSync(std::vector<torch::Tensor> params, std::vector<int64_t> bounds, Communicator& comm,
                      double bucket_mb = 25.0, int max_in_flight = 2,
                      ReduceScatterPolicy reduce_scatter = ReduceScatterPolicy::kAuto);
  ~ShardedGradientSync();

  /// Zeroes this rank's gradient slice (start of an optimizer step).
  void zero();
  void arm();
  /// Reduces buckets whose parameters got no gradient (as zeros), waits for every reduction,
  /// adds this rank's pieces into its slice and releases every parameter's .grad.
  void finish();
  /// This rank's summed gradient, bounds[rank]..bounds[rank+1] of the flattened parameters.
  torch::Tensor& slice();
  size_t num_buckets() const;
  size_t overlapped_buckets() const;
  /// Buckets of the last backward that went out as one reduce-scatter.
  size_t scattered_buckets() const;
  /// The most bucket elements alive at once during the last finish()ed backward.
  int64_t peak_bucket_elements() const;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace aim::dist
